//! The executor: applies exactly the steps of a plan, in order, each under
//! a tracing span. Every step is idempotent, so an operation run again
//! after a crash at any step converges. The shared infrastructure's steps
//! run under its own lock; a Cassandra session is opened when the first
//! step needs one.
//!
//! The test hook `PROVISION_TEST_EXIT_AFTER_STEP=N` makes the process exit
//! (code [`FAULT_EXIT_CODE`]) right after the N-th step of an operation,
//! so a crash test can stop a run at each step in turn.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tracing::Instrument;

use super::Provisioner;
use crate::backend::Probe;
use crate::cql::TenantStorage;
use crate::domain::spec::health_port;
use crate::domain::state::TenantRecord;
use crate::domain::{Plan, ProviderId, Role, Step};
use crate::error::{Error, Result};
use crate::{lock, secrets};

/// The exit code of a process stopped by the test hook.
pub const FAULT_EXIT_CODE: i32 = 86;

/// How often a wait for health asks again (a direct HTTP GET: cheap, and a
/// container is usually up within a few hundred milliseconds).
const HEALTH_POLL: Duration = Duration::from_millis(50);

/// A test hook: stop right after step `after` (1-based) of an operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fault {
    pub after: usize,
    /// Exit the process (the real crash test) instead of failing the run
    /// with [`Error::Injected`] (the unit tests).
    pub exit: bool,
}

impl Fault {
    pub(crate) fn from_env() -> Option<Fault> {
        let after = std::env::var("PROVISION_TEST_EXIT_AFTER_STEP").ok()?;
        Some(Fault {
            after: after.trim().parse().ok()?,
            exit: true,
        })
    }
}

/// One run of the executor over the plans of one operation.
pub struct Execution<'a> {
    prov: &'a Provisioner,
    id: &'a ProviderId,
    storage: Option<Arc<dyn TenantStorage>>,
    /// Steps applied so far, as printed.
    pub applied: Vec<String>,
    /// The first admin user's password, when this run created it.
    pub admin_password: Option<String>,
}

impl<'a> Execution<'a> {
    pub fn new(prov: &'a Provisioner, id: &'a ProviderId) -> Execution<'a> {
        Execution {
            prov,
            id,
            storage: None,
            applied: Vec::new(),
            admin_password: None,
        }
    }

    /// Applies every step of `plan`, in order. A plan that needs
    /// Cassandra connects once the shared infrastructure is up (the plan's
    /// first steps), before anything of the tenant is written: an
    /// unreachable or refusing cluster leaves nothing behind.
    pub async fn apply(&mut self, plan: &Plan) -> Result<()> {
        let needs_cql = plan.steps.iter().any(Step::needs_cql);
        for step in &plan.steps {
            if needs_cql && !step.is_infrastructure() {
                self.storage().await?;
            }
            let n = self.applied.len() + 1;
            let span = tracing::info_span!("step", n, step = %step);
            let started = Instant::now();
            self.apply_step(step).instrument(span.clone()).await?;
            span.in_scope(|| {
                tracing::info!(ms = started.elapsed().as_millis() as u64, "step done")
            });
            self.applied.push(step.to_string());
            self.prov.progress(&step.to_string()).await;
            if let Some(fault) = self.prov.fault.filter(|f| f.after == n) {
                if fault.exit {
                    eprintln!("provision: test hook: exiting right after step {n} ({step})");
                    std::process::exit(FAULT_EXIT_CODE);
                }
                return Err(Error::Injected(n));
            }
        }
        Ok(())
    }

    async fn storage(&mut self) -> Result<Arc<dyn TenantStorage>> {
        if self.storage.is_none() {
            let cluster = self.prov.cluster_config(self.id).await?;
            self.storage = Some(self.prov.cql.connect(&cluster, &self.prov.store).await?);
        }
        Ok(self.storage.clone().expect("just connected"))
    }

    async fn record(&self) -> Result<TenantRecord> {
        self.prov.known(self.id).await
    }

    async fn apply_step(&mut self, step: &Step) -> Result<()> {
        let prov = self.prov;
        let (backend, store, id) = (prov.backend.as_ref(), &prov.store, self.id);
        let _infra = match step.is_infrastructure() {
            true => Some(lock::acquire(prov.data_dir(), "_infrastructure").await?),
            false => None,
        };
        match step {
            Step::CreateNetwork { name } => backend.create_network(name, None).await?,
            Step::CreateCassandra { .. } | Step::StartCassandra { .. } => {
                backend.ensure_cassandra().await?
            }
            Step::RetireDefaultSuperuser { container } => {
                // On the managed node, whichever cluster the tenant is on.
                let managed = prov.config.managed_cluster().ok_or_else(|| {
                    Error::Usage("the plan retires the managed node's superuser, and the config has no managed node".into())
                })?;
                prov.cql
                    .connect(&managed, store)
                    .await?
                    .retire_default_superuser(container)
                    .await?
            }
            Step::RegisterTenant { desired } => store.register(id, *desired).await?,
            Step::SetDesired { desired } => store.set_desired(id, *desired).await?,
            Step::SetGatewayTls { mode } => store.set_gateway_tls(id, *mode).await?,
            Step::SetLimits { limits } => store.set_limits(id, *limits).await?,
            Step::IssueGatewayCertificate { host, .. } => {
                let pair = prov.pki().issue(id, host)?;
                secrets::renew_gateway_certificate(prov.data_dir(), id, &pair)?;
            }
            Step::CreateTenantNetwork { name } => backend.create_network(name, Some(id)).await?,
            Step::AttachToNetwork { container, network } => {
                backend.attach(container, network).await?
            }
            Step::RemoveTenantNetwork { name, detach } => {
                backend.remove_network(name, detach.as_deref()).await?
            }
            Step::LeasePort { pool, port } => store.lease(id, *pool, *port).await?,
            Step::ApplySchema { .. } => {
                let version = self.storage().await?.ensure_keyspace(id).await?;
                store.set_schema_version(id, version).await?;
            }
            Step::EnsureRole { .. } => {
                let password = self.record().await?.cassandra_password;
                self.storage().await?.ensure_role(id, &password).await?;
                store.set_role_ready(id).await?;
            }
            Step::CreateAdminUser { username, .. } => {
                let password = tenant_schema::model::new_password();
                let storage = self.storage().await?;
                storage.create_admin_user(id, username, &password).await?;
                store.set_admin_user_created(id).await?;
                self.admin_password = Some(password);
            }
            Step::RemoveContainer { name, .. } => backend.remove_container(name).await?,
            Step::CreateContainer { spec, .. } => {
                self.write_secrets(spec.role).await?;
                backend.create_container(spec).await?;
                backend.start_container(&spec.name).await?;
            }
            Step::StartContainer { name, role } => {
                // The mounted secrets must exist (a wiped data dir).
                self.write_secrets(*role).await?;
                backend.start_container(name).await?;
            }
            Step::StopContainer { name } => backend.stop_container(name).await?,
            Step::WaitHealthy { role, name } => wait_healthy(prov, id, *role, name).await?,
            Step::SwitchContainer { spec, .. } => {
                self.write_secrets(spec.role).await?;
                prov.switch_container(id, spec).await?;
            }
            Step::SyncFront { .. } => {
                prov.sync_front().await?;
            }
            Step::ReleasePorts { .. } => store.release_ports(id).await?,
            Step::RemoveSecrets => {
                secrets::remove(prov.data_dir(), id)?;
                prov.pki().remove(id)?;
            }
            Step::DropData { .. } => self.storage().await?.drop_tenant(id).await?,
            Step::Forget => store.forget(id).await?,
            Step::ReportOrphan { .. } => {}
        }
        Ok(())
    }

    /// The secrets folder of `role`'s container, with ingest's gateway
    /// certificate when it has one, and the notifier's relay password.
    async fn write_secrets(&self, role: Role) -> Result<()> {
        let record = self.record().await?;
        let certificate = match role {
            Role::Ingest => self.prov.pki().tenant_pair(self.id)?,
            Role::Admin | Role::Notifier => None,
        };
        let smtp_password = self
            .prov
            .config
            .mail
            .as_ref()
            .and_then(|m| m.password.as_deref());
        secrets::write(
            self.prov.data_dir(),
            &record,
            role,
            certificate.as_ref(),
            smtp_password,
        )?;
        Ok(())
    }
}

/// Waits until `id`'s container `name` (of `role`) answers its health
/// endpoint, polling, for `[health] timeout_secs` at most.
pub(super) async fn wait_healthy(
    prov: &Provisioner,
    id: &ProviderId,
    role: Role,
    name: &str,
) -> Result<()> {
    let port = health_port(role);
    let timeout = Duration::from_secs(prov.config.health.timeout_secs);
    let deadline = Instant::now() + timeout;
    let network = prov.config.tenant_network(id);
    loop {
        let why = match prov.backend.probe_health(name, &network, port).await? {
            Probe::Healthy => return Ok(()),
            Probe::NotYet(why) => why,
        };
        if Instant::now() >= deadline {
            return Err(Error::Unhealthy {
                tenant: id.clone(),
                role,
                container: name.into(),
                secs: timeout.as_secs(),
                why,
            });
        }
        tokio::time::sleep(HEALTH_POLL).await;
    }
}
