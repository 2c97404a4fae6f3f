//! The operations: one file each (start, stop, destroy, reconcile, upgrade,
//! status and logs, gateways, alerts and reports, history; `clusters`, the
//! tenants' Cassandra clusters and their placement; `front`, the
//! per-host front's sync and the copy-update-switch), each observe → plan →
//! apply (the gateway, alert and report calls write the tenant's keyspace
//! directly, under its lock). Observing
//! reads the store and the backend; planning is [`crate::domain::planner`];
//! applying is the one [`executor`], which runs exactly the plan's steps.
//! An operation that changes something holds its tenant's lock and is
//! logged in the store's operations table, with what it answered. The
//! daemon queues an operation first and hands the library a handle that
//! runs it ([`Provisioner::for_operation`]): the first logged operation
//! of that handle is the queued one, and its steps are recorded as they
//! are done.

pub mod alerts;
pub mod clusters;
mod destroy;
mod endpoints;
pub mod executor;
pub mod export;
mod front;
mod gateways;
mod history;
pub mod nodes;
mod reconcile;
pub mod report;
mod start;
mod status;
mod stop;
mod tokens;
pub mod upgrade;

#[cfg(test)]
mod tests;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use tracing::Instrument;

pub use executor::Fault;
pub use front::FrontChange;
pub use report::{
    Answer, ContainerStatus, GatewayConnections, NotifierStatus, PlanReport, ReconcileReport,
    StartReport, TenantStatus,
};
pub use start::StartOptions;
pub use tokens::TokenCreated;
pub use upgrade::{UpgradeOptions, UpgradeReport};

use crate::backend::Backend;
use crate::config::Config;
use crate::cql::{Connector, CqlConnector};
use crate::domain::planner::TenantView;
use crate::domain::state::{ObservedInfra, TenantRecord};
use crate::domain::{ProviderId, Role};
use crate::error::{Error, ErrorInfo, Result};
use crate::lock;
use crate::store::operations::Request;
use crate::store::Store;

/// The provisioner: configuration, state store, a container backend and a
/// way to reach Cassandra. The backend and Cassandra are reached on first
/// use, so commands that need neither work without them. A clone shares
/// them all (the daemon makes one per request).
#[derive(Clone)]
pub struct Provisioner {
    pub config: Config,
    pub store: Store,
    backend: Arc<dyn Backend>,
    cql: Arc<dyn Connector>,
    data_dir: PathBuf,
    requested_by: String,
    fault: Option<Fault>,
    /// The queued operation this handle runs, if any.
    queued: Arc<std::sync::Mutex<Queued>>,
    /// Called whenever an operation of this handle changes (a step done,
    /// its end): the daemon's long polls wake on it.
    on_change: Option<Arc<dyn Fn() + Send + Sync>>,
}

/// Image names resolved to ids, each asked of the backend once for as
/// long as this lives: one start, or one whole reconcile pass (a pass over
/// 200 tenants asks for 3 images, not 600 times).
#[derive(Debug, Default)]
pub(crate) struct ImageIds(std::sync::Mutex<std::collections::HashMap<String, String>>);

impl ImageIds {
    /// The id `image` points at (asked once, then remembered).
    async fn resolve(&self, backend: &dyn Backend, image: &str) -> Result<String> {
        if let Some(id) = self.0.lock().expect("not poisoned").get(image) {
            return Ok(id.clone());
        }
        let id = backend.image_id(image).await?;
        self.0
            .lock()
            .expect("not poisoned")
            .insert(image.to_owned(), id.clone());
        Ok(id)
    }
}

/// A handle's queued operation: waiting for the first logged operation,
/// being run by it, or over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Queued {
    None,
    Waiting(i64),
    Running(i64),
}

impl std::fmt::Debug for Provisioner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Provisioner")
            .field("state", &self.store.path())
            .field("data_dir", &self.data_dir)
            .finish_non_exhaustive()
    }
}

/// Who runs this process (the operations log's `requested_by`): the
/// login behind `sudo`, the user's name, or the name of the process's uid
/// in `/etc/passwd` (or `uid <n>`).
fn current_user() -> String {
    if let Some(user) = ["SUDO_USER", "USER", "LOGNAME"]
        .iter()
        .find_map(|v| std::env::var(v).ok().filter(|u| !u.is_empty()))
    {
        return user;
    }
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let Some(uid) = status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|l| l.split_whitespace().next())
    else {
        return "unknown".to_owned();
    };
    user_name(uid)
}

/// The name of the user `uid` in `/etc/passwd` (or `uid <n>`): the
/// requester of an operation, for the CLI and the daemon's socket peers.
pub fn user_name(uid: &str) -> String {
    let passwd = std::fs::read_to_string("/etc/passwd").unwrap_or_default();
    passwd
        .lines()
        .map(|l| l.split(':').collect::<Vec<_>>())
        .find(|f| f.len() > 2 && f[2] == uid)
        .map(|f| f[0].to_owned())
        .unwrap_or_else(|| format!("uid {uid}"))
}

impl Provisioner {
    /// Opens the state store (creating it on first use) with the backend
    /// of `[docker] mode` and the configured Cassandra.
    pub async fn open(config: Config) -> Result<Provisioner> {
        let store = Store::open(&config.state_path()).await?;
        let backend = crate::backend::for_config(&config);
        let cql = Arc::new(CqlConnector);
        Ok(Provisioner::with_parts(config, store, backend, cql))
    }

    /// A provisioner on the given backend and Cassandra connector.
    pub fn with_parts(
        config: Config,
        store: Store,
        backend: Arc<dyn Backend>,
        cql: Arc<dyn Connector>,
    ) -> Provisioner {
        let data_dir = config.data_dir.clone().unwrap_or_else(|| {
            config
                .state_path()
                .parent()
                .map(PathBuf::from)
                .unwrap_or_else(|| config.data_dir())
        });
        Provisioner {
            config,
            store,
            backend,
            cql,
            data_dir,
            requested_by: current_user(),
            fault: Fault::from_env(),
            queued: Arc::new(std::sync::Mutex::new(Queued::None)),
            on_change: None,
        }
    }

    /// The backend this provisioner runs on (the daemon's watcher follows
    /// its events).
    pub fn backend(&self) -> &Arc<dyn Backend> {
        &self.backend
    }

    /// Calls `hook` whenever an operation changes (a step done, its end).
    pub fn on_change(mut self, hook: impl Fn() + Send + Sync + 'static) -> Provisioner {
        self.on_change = Some(Arc::new(hook));
        self
    }

    /// A handle that runs the queued operation `op` for `requested_by`:
    /// its first logged operation is `op`.
    pub fn for_operation(&self, requested_by: &str, op: i64) -> Provisioner {
        let mut handle = self.clone().requested_by(requested_by);
        handle.queued = Arc::new(std::sync::Mutex::new(Queued::Waiting(op)));
        handle
    }

    /// Ends the queued operation of this handle if no logged operation ran
    /// it (it failed before its turn began, e.g. on its lock).
    pub async fn settle_queued(&self, error: Option<&Error>) {
        let waiting = match *self.queued.lock().expect("not poisoned") {
            Queued::Waiting(op) => op,
            _ => return,
        };
        let error = error.map(ErrorInfo::from).unwrap_or_else(|| {
            ErrorInfo::new(
                crate::ErrorKind::Other,
                "the operation ended before it began",
            )
        });
        if let Err(e) = self
            .store
            .finish_operation(waiting, None, Some(&error))
            .await
        {
            tracing::warn!(error = %e, "cannot record the end of an operation");
        }
        *self.queued.lock().expect("not poisoned") = Queued::None;
        self.changed();
    }

    fn changed(&self) {
        if let Some(hook) = &self.on_change {
            hook();
        }
    }

    /// Whether this handle's queued operation has yet to begin.
    fn queued_waiting(&self) -> bool {
        matches!(
            *self.queued.lock().expect("not poisoned"),
            Queued::Waiting(_)
        )
    }

    /// Records a step done in the queued operation this handle runs.
    pub(crate) async fn progress(&self, step: &str) {
        let Queued::Running(op) = *self.queued.lock().expect("not poisoned") else {
            return;
        };
        if let Err(e) = self.store.record_progress(op, step).await {
            tracing::warn!(error = %e, "cannot record an operation's progress");
        }
        self.changed();
    }

    /// Who the operations log names as the requester (the CLI's user by
    /// default).
    pub fn requested_by(mut self, who: impl Into<String>) -> Provisioner {
        self.requested_by = who.into();
        self
    }

    /// Makes every operation stop right after step `n` (tests).
    pub fn with_fault(mut self, fault: Option<Fault>) -> Provisioner {
        self.fault = fault;
        self
    }

    pub(crate) fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// Where a tenant's panel answers, once it has a port.
    fn admin_url(&self, port: Option<u16>) -> Option<String> {
        port.map(|p| format!("http://{}:{p}/", self.config.ports.public_host))
    }

    async fn known(&self, id: &ProviderId) -> Result<TenantRecord> {
        self.store
            .tenant(id)
            .await?
            .ok_or_else(|| Error::UnknownProvider(id.clone()))
    }

    /// A tenant as plans see it.
    /// The gateway certificates of this data directory and configuration.
    pub fn pki(&self) -> crate::pki::Pki {
        crate::pki::Pki::new(&self.data_dir, &self.config.gateway_tls)
    }

    fn view(&self, id: &ProviderId, record: Option<TenantRecord>) -> TenantView {
        TenantView {
            id: id.clone(),
            record,
            network: self.config.tenant_network(id),
            names: Role::ALL
                .into_iter()
                .map(|role| (role, self.config.container_name(id, role)))
                .collect(),
        }
    }

    /// The shared infrastructure and `tenant`'s network, with (managed
    /// node, running) whether the default superuser logs in.
    async fn observe_infra(&self, tenant: Option<&ProviderId>) -> Result<ObservedInfra> {
        let mut infra = self.observe_backend_infra(tenant).await?;
        if infra.cassandra == crate::domain::state::CassandraObserved::Running {
            if let Some(managed) = self.config.managed_cluster() {
                infra.default_superuser_login = self.cql.default_login_works(&managed).await;
            }
        }
        Ok(infra)
    }

    /// The shared infrastructure and `tenant`'s network as the backend
    /// sees it, with the node of the tenant's cluster (if one is attached
    /// to tenant networks) as the one to attach.
    async fn observe_backend_infra(&self, tenant: Option<&ProviderId>) -> Result<ObservedInfra> {
        let attach = match tenant {
            Some(id) => self
                .cluster_config(id)
                .await?
                .attached_cassandra()
                .map(str::to_owned),
            None => None,
        };
        Ok(self
            .backend
            .observe_infra(tenant, attach.as_deref())
            .await?)
    }

    /// Runs `work` as a logged operation under `id`'s lock (when given).
    async fn operation<T: Answer>(
        &self,
        id: Option<&ProviderId>,
        action: &'static str,
        text: String,
        work: impl std::future::Future<Output = Result<T>>,
    ) -> Result<T> {
        let _lock = match id {
            Some(id) => Some(lock::acquire(&self.data_dir, id.as_str()).await?),
            None => None,
        };
        self.logged(id, action, text, work).await
    }

    /// Runs `work` as a logged operation (this handle's queued one, if it
    /// waits); the caller holds what locks it needs. The log keeps what
    /// the operation answered; what is shown once (the first admin
    /// password) only for a queued operation, whose requester has yet to
    /// read it ([`Provisioner::take_operation`]).
    async fn logged<T: Answer>(
        &self,
        id: Option<&ProviderId>,
        action: &'static str,
        text: String,
        work: impl std::future::Future<Output = Result<T>>,
    ) -> Result<T> {
        let request = Request {
            provider: id.cloned(),
            action,
            text,
            requested_by: self.requested_by.clone(),
        };
        let queued = {
            let mut queued = self.queued.lock().expect("not poisoned");
            match *queued {
                Queued::Waiting(op) => {
                    *queued = Queued::Running(op);
                    Some(op)
                }
                _ => None,
            }
        };
        let op = match queued {
            Some(op) => self.store.run_operation(op, &request).await.map(|()| op),
            None => self.store.begin_operation(&request).await,
        };
        let op = match op {
            Ok(op) => op,
            Err(e) => {
                self.settle_running(queued).await;
                return Err(e.into());
            }
        };
        self.changed();
        let span = tracing::info_span!("operation", action, provider = id.map(|i| i.as_str()));
        let outcome = work.instrument(span).await;
        let (result, error) = match &outcome {
            Ok(answer) => {
                let mut result = serde_json::to_value(answer).ok();
                if queued.is_none() {
                    result.iter_mut().for_each(report::forget_shown_once);
                }
                (result, answer.failure())
            }
            Err(e) => (None, Some(ErrorInfo::from(e))),
        };
        match &error {
            None => tracing::info!(action, "operation done"),
            Some(e) => tracing::warn!(action, error = %e.message, "operation failed"),
        }
        // The log is informational: it never masks the real outcome.
        if let Err(e) = self
            .store
            .finish_operation(op, result.as_ref(), error.as_ref())
            .await
        {
            tracing::warn!(error = %e, "cannot record the end of an operation");
        }
        if queued.is_some() {
            *self.queued.lock().expect("not poisoned") = Queued::None;
        }
        self.changed();
        outcome
    }

    /// A queued operation that could not be marked running is over.
    async fn settle_running(&self, queued: Option<i64>) {
        if let Some(op) = queued {
            *self.queued.lock().expect("not poisoned") = Queued::Waiting(op);
        }
    }
}
