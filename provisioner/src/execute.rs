//! The operations behind the CLI: each takes the per-provider lock,
//! observes (store + Docker), computes a [`Plan`] with the pure functions of
//! [`crate::plan`], and, unless it is a dry run, executes the plan's steps
//! in order. Every step is idempotent, so running an operation again after
//! a crash at any step converges.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use bollard::Docker;
use futures::future::join_all;
use scylla::client::session::Session;
use serde::Serialize;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::cassandra::{drop_tenant, ensure_keyspace, ensure_role};
use crate::config::Config;
use crate::docker::{self, ContainerDetails, Usage};
use crate::error::{Error, Result};
use crate::lock;
use crate::plan::{self, Desired, ObservedInfra, Plan, Role, Step, TenantView};
use crate::ports::{host_port_free, Pools};
use crate::provider_id::ProviderId;
use crate::state::{PortRequest, ProviderRecord, Store};

/// How often `start` checks whether a new container answers its health
/// endpoint (a direct HTTP GET: cheap, and a container is usually up within
/// a few hundred milliseconds).
const HEALTH_POLL: Duration = Duration::from_millis(50);

/// The provisioner: configuration and state store; Docker and Cassandra
/// are reached per operation.
#[derive(Debug)]
pub struct Provisioner {
    pub config: Config,
    pub store: Store,
    data_dir: PathBuf,
}

/// What `start` asks for.
#[derive(Debug, Clone, Copy, Default)]
pub struct StartOptions {
    pub gateway_port: Option<u16>,
    pub admin_port: Option<u16>,
    pub dry_run: bool,
}

/// What `start` did, and where the tenant answers.
#[derive(Debug, Clone, Serialize)]
pub struct StartReport {
    pub provider: String,
    pub state: String,
    pub gateway_port: Option<u16>,
    pub admin_port: Option<u16>,
    pub gateway_endpoint: Option<String>,
    pub admin_url: Option<String>,
    pub keyspace: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub admin_user: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub admin_password: Option<String>,
    pub dry_run: bool,
    pub changed: bool,
    pub plan: Vec<String>,
    /// What the operator should know and `start` does not change.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub notices: Vec<String>,
    #[serde(skip)]
    pub plan_text: String,
}

/// What `stop`, `destroy` or `reconcile` did (or would do).
#[derive(Debug, Clone, Serialize)]
pub struct PlanReport {
    pub provider: Option<String>,
    pub dry_run: bool,
    pub plan: Vec<String>,
    #[serde(skip)]
    pub plan_text: String,
}

impl PlanReport {
    fn new(plans: &[Plan], dry_run: bool) -> PlanReport {
        PlanReport {
            provider: plans
                .first()
                .and_then(|p| p.tenant.clone())
                .filter(|_| plans.len() == 1),
            dry_run,
            plan: plans
                .iter()
                .flat_map(|p| {
                    p.steps.iter().map(|s| match &p.tenant {
                        Some(t) => format!("{t}: {s}"),
                        None => s.to_string(),
                    })
                })
                .collect(),
            plan_text: plans.iter().map(|p| p.to_string()).collect(),
        }
    }
}

/// One tenant as `status` and `list` show it.
#[derive(Debug, Clone, Serialize)]
pub struct TenantStatus {
    pub provider: String,
    pub desired: String,
    pub state: String,
    pub gateway_port: Option<u16>,
    pub admin_port: Option<u16>,
    pub admin_url: Option<String>,
    pub keyspace: String,
    pub containers: Vec<ContainerStatus>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ContainerStatus {
    pub role: String,
    #[serde(flatten)]
    pub details: ContainerDetails,
    #[serde(flatten)]
    pub usage: Option<Usage>,
}

/// One commissioned gateway.
#[derive(Debug, Clone, Serialize)]
pub struct GatewayInfo {
    pub gateway: String,
    pub display_name: Option<String>,
    pub created_at: Option<String>,
    pub revoked_at: Option<String>,
}

/// The first admin user's name.
pub const FIRST_ADMIN_USER: &str = "admin";

impl Provisioner {
    /// Opens the state store (creating it on first use).
    pub async fn open(config: Config) -> Result<Provisioner> {
        let store = Store::open(&config.state_path()).await?;
        let data_dir = config.data_dir.clone().unwrap_or_else(|| {
            config
                .state_path()
                .parent()
                .map(PathBuf::from)
                .unwrap_or_else(|| config.data_dir())
        });
        Ok(Provisioner {
            config,
            store,
            data_dir,
        })
    }

    fn pools(&self) -> Pools {
        Pools {
            gateway: self.config.gateway_ports(),
            admin: self.config.admin_ports(),
        }
    }

    async fn docker(&self) -> Result<Docker> {
        docker::connect(&self.config).await
    }

    async fn known(&self, id: &ProviderId) -> Result<ProviderRecord> {
        self.store
            .provider(id.as_str())
            .await?
            .ok_or_else(|| Error::UnknownProvider(id.to_string()))
    }

    fn endpoint(&self, port: Option<u16>) -> Option<String> {
        port.map(|p| format!("{}:{p}", self.config.ports.public_host))
    }

    fn admin_url(&self, port: Option<u16>) -> Option<String> {
        port.map(|p| format!("http://{}:{p}/", self.config.ports.public_host))
    }

    /// The store's view of a tenant with the container configuration it
    /// should have now.
    fn view(&self, id: &ProviderId, record: Option<&ProviderRecord>) -> TenantView {
        let containers = Role::ALL
            .into_iter()
            .map(|role| {
                let name = self.config.container_name(id.as_str(), role.as_str());
                let hash = record.and_then(|r| {
                    let port = match role {
                        Role::Ingest => r.gateway_port?,
                        Role::Admin => r.admin_port?,
                    };
                    let secrets = crate::secrets::dir(&self.data_dir, &r.id, role);
                    Some(docker::tenant_container(&self.config, r, role, port, &secrets).1)
                });
                (role, name, hash)
            })
            .collect();
        TenantView {
            id: id.to_string(),
            keyspace: id.keyspace(),
            gateway_port: record.and_then(|r| r.gateway_port),
            admin_port: record.and_then(|r| r.admin_port),
            schema_version: record.map(|r| r.schema_version).unwrap_or(0),
            role_ready: record.map(|r| r.role_ready).unwrap_or(false),
            admin_user_created: record.map(|r| r.admin_user_created).unwrap_or(false),
            network: self.config.tenant_network(id.as_str()),
            containers,
        }
    }

    /// The shared infrastructure and `tenant`'s network as observed, with
    /// (managed mode, node running) whether the default superuser logs in.
    async fn observe_infra(&self, docker: &Docker, tenant: Option<&str>) -> Result<ObservedInfra> {
        let mut infra = docker::observe_infra(docker, &self.config, tenant).await?;
        if infra.cassandra == plan::CassandraObserved::Running {
            infra.default_superuser_login = crate::session::default_login_works(&self.config).await;
        }
        Ok(infra)
    }

    /// What `start` would do, without doing it.
    pub async fn plan(&self, id: &ProviderId, options: StartOptions) -> Result<Plan> {
        let docker = self.docker().await?;
        let record = self.store.provider(id.as_str()).await?;
        let infra = self.observe_infra(&docker, Some(id.as_str())).await?;
        let observed = docker::observe_containers(&docker, Some(id.as_str())).await?;
        let view = self.view(id, record.as_ref());
        Ok(plan::plan_start(
            &view,
            (options.gateway_port, options.admin_port),
            &infra,
            &observed,
        ))
    }

    /// `start`: brings the tenant to running and healthy.
    pub async fn start(&self, id: &ProviderId, options: StartOptions) -> Result<StartReport> {
        let _lock = lock::acquire(&self.data_dir, id.as_str()).await?;
        let plan = self.plan(id, options).await?;
        let mut report = StartReport {
            state: "running".into(),
            dry_run: options.dry_run,
            changed: plan
                .steps
                .iter()
                .any(|s| !matches!(s, Step::WaitHealthy { .. })),
            plan: plan.steps.iter().map(|s| s.to_string()).collect(),
            notices: plan.notices.clone(),
            plan_text: plan.to_string(),
            ..Self::blank_report(id)
        };
        if options.dry_run {
            if let Some(r) = self.store.provider(id.as_str()).await? {
                report.gateway_port = r.gateway_port;
                report.admin_port = r.admin_port;
            }
            report.state = "planned".into();
        } else {
            let op = self
                .store
                .begin_operation(Some(id.as_str()), "start")
                .await?;
            let outcome = self
                .execute(id, &plan, Some(options), true, &mut report)
                .await;
            self.finish(op, &outcome).await;
            outcome?;
        }
        report.gateway_endpoint = self.endpoint(report.gateway_port);
        report.admin_url = self.admin_url(report.admin_port);
        Ok(report)
    }

    async fn finish<T>(&self, op: i64, outcome: &Result<T>) {
        let (result, detail) = match outcome {
            Ok(_) => ("ok", String::new()),
            Err(e) => ("error", e.to_string()),
        };
        // The operation log is informational: never mask the real outcome.
        let _ = self.store.finish_operation(op, result, &detail).await;
    }

    /// Runs a plan's steps. `start` is `Some` when ports may be leased and
    /// the desired state becomes running.
    async fn execute(
        &self,
        id: &ProviderId,
        plan: &Plan,
        start: Option<StartOptions>,
        wait: bool,
        report: &mut StartReport,
    ) -> Result<()> {
        let docker = self.docker().await?;
        // Shared infrastructure, under its own lock and observed again.
        if plan.steps.iter().any(|s| {
            matches!(
                s,
                Step::CreateNetwork { .. }
                    | Step::CreateCassandra { .. }
                    | Step::StartCassandra { .. }
            )
        }) {
            let _infra = lock::acquire(&self.data_dir, "_infrastructure").await?;
            let infra = docker::observe_infra(&docker, &self.config, None).await?;
            if !infra.network_exists {
                docker::create_network(&docker, &self.config, &infra.network, None).await?;
            }
            if matches!(
                infra.cassandra,
                plan::CassandraObserved::Missing | plan::CassandraObserved::Stopped
            ) {
                docker::ensure_cassandra(&docker, &self.config).await?;
            }
        }
        let session: Option<Session> = if plan.needs_cql() {
            Some(crate::session::admin_session(&self.config, &self.store).await?)
        } else {
            None
        };
        let mut record = match start {
            Some(o) => {
                let bind = self.config.ports.bind_address.clone();
                let free = move |port: u16| host_port_free(&bind, port);
                let request = PortRequest {
                    gateway: o.gateway_port,
                    admin: o.admin_port,
                };
                self.store
                    .begin_start(id.as_str(), request, &self.pools(), &free)
                    .await?
            }
            None => self.known(id).await?,
        };
        report.gateway_port = record.gateway_port;
        report.admin_port = record.admin_port;
        let mut waits = Vec::new();
        for step in &plan.steps {
            match step {
                Step::CreateNetwork { .. }
                | Step::CreateCassandra { .. }
                | Step::StartCassandra { .. } => {}
                Step::RetireDefaultSuperuser { container } => {
                    let s = session.as_ref().expect("needs_cql");
                    self.retire_default_superuser(s, container).await?;
                }
                Step::CreateTenantNetwork { name } => {
                    docker::create_network(&docker, &self.config, name, Some(id.as_str())).await?
                }
                Step::AttachToNetwork { container, network } => {
                    docker::attach(&docker, container, network).await?
                }
                Step::RemoveTenantNetwork { name } => {
                    docker::remove_network(&docker, name, self.config.attached_cassandra()).await?
                }
                Step::LeasePort { .. } => {}
                Step::ApplySchema { .. } => {
                    let s = session.as_ref().expect("needs_cql");
                    let version = ensure_keyspace(s, id, &self.config.replication()).await?;
                    self.store.set_schema_version(id.as_str(), version).await?;
                }
                Step::EnsureRole { .. } => {
                    let s = session.as_ref().expect("needs_cql");
                    ensure_role(s, id, &record.cassandra_password).await?;
                    self.store.set_role_ready(id.as_str(), true).await?;
                }
                Step::CreateAdminUser { .. } => {
                    let s = session.as_ref().expect("needs_cql");
                    let password = tenant_schema::model::new_password();
                    create_admin_user(s, id, FIRST_ADMIN_USER, &password).await?;
                    self.store.set_admin_user_created(id.as_str()).await?;
                    record.admin_user_created = true;
                    report.admin_user = Some(FIRST_ADMIN_USER.into());
                    report.admin_password = Some(password);
                }
                Step::RemoveContainer { name, .. } => {
                    docker::remove_container(&docker, name).await?
                }
                Step::CreateContainer { role, name, .. } => {
                    let port = match role {
                        Role::Ingest => record.gateway_port,
                        Role::Admin => record.admin_port,
                    };
                    let Some(port) = port else { continue };
                    let secrets = crate::secrets::write(&self.data_dir, &record, *role)?;
                    let (body, hash) =
                        docker::tenant_container(&self.config, &record, *role, port, &secrets);
                    let container_id = docker::create_container(&docker, name, body).await?;
                    docker::start_container(&docker, name).await?;
                    self.store
                        .record_container(id.as_str(), role.as_str(), name, &container_id, &hash)
                        .await?;
                }
                Step::StartContainer { name } => {
                    // The mounted secrets must exist (a wiped data dir).
                    for role in Role::ALL {
                        if self.config.container_name(id.as_str(), role.as_str()) == *name {
                            crate::secrets::write(&self.data_dir, &record, role)?;
                        }
                    }
                    docker::start_container(&docker, name).await?
                }
                Step::StopContainer { name } => docker::stop_container(&docker, name).await?,
                Step::WaitHealthy { names } => waits.extend(names.iter().cloned()),
                Step::ReleasePorts { .. } => {
                    self.store.release_ports(id.as_str()).await?;
                    self.store.forget_containers(id.as_str()).await?;
                    crate::secrets::remove(&self.data_dir, id.as_str())?;
                }
                Step::DropData { .. } => {
                    let s = session.as_ref().expect("needs_cql");
                    drop_tenant(s, id).await?;
                }
                Step::MarkDestroyed => {
                    self.store
                        .set_desired(id.as_str(), Desired::Destroyed)
                        .await?
                }
                Step::Forget => self.store.forget(id.as_str()).await?,
                Step::ReportOrphan { .. } => {}
            }
        }
        if wait && !waits.is_empty() {
            let results = join_all(
                waits
                    .iter()
                    .map(|name| self.wait_healthy(&docker, id, name)),
            )
            .await;
            results.into_iter().collect::<Result<Vec<()>>>()?;
        }
        Ok(())
    }

    /// Retires the managed node's default superuser (the role read back),
    /// then checks that `cassandra`/`cassandra` is refused. The node caches
    /// credentials for `credentials_validity` (2 s in our image), so the
    /// check is repeated for a few seconds before it counts as failed.
    async fn retire_default_superuser(&self, session: &Session, container: &str) -> Result<()> {
        let insecure = |why: String| Error::DefaultSuperuserActive {
            container: container.to_owned(),
            why,
        };
        crate::session::retire_default_superuser(session)
            .await
            .map_err(|e| insecure(e.to_string()))?;
        let deadline = Instant::now() + Duration::from_secs(10);
        while crate::session::default_login_works(&self.config).await {
            if Instant::now() >= deadline {
                return Err(insecure(
                    "the role reads back as retired, yet the login is accepted".into(),
                ));
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        Ok(())
    }

    /// Waits until a container answers its health endpoint (probed directly
    /// on its network address) or Docker reports it healthy.
    async fn wait_healthy(&self, docker: &Docker, id: &ProviderId, name: &str) -> Result<()> {
        let role = if name.ends_with("-admin") {
            Role::Admin
        } else {
            Role::Ingest
        };
        let port = match role {
            Role::Ingest => docker::INGEST_HEALTH_PORT,
            Role::Admin => docker::ADMIN_PORT,
        };
        let timeout = Duration::from_secs(self.config.health.timeout_secs);
        let deadline = Instant::now() + timeout;
        let network = self.config.tenant_network(id.as_str());
        let mut why;
        loop {
            if let Some(d) = docker::details(docker, name, &network).await? {
                if d.health == "healthy" {
                    return Ok(());
                }
                if let Some(ip) = &d.ip {
                    match http_ok(&format!("{ip}:{port}"), "/healthz").await {
                        Ok(()) => return Ok(()),
                        Err(e) => why = format!("GET /healthz: {e}"),
                    }
                } else {
                    why = format!(
                        "container is {} (exit code {})",
                        d.state,
                        d.exit_code.unwrap_or(0)
                    );
                }
                if let Some(log) = d.health_log.filter(|l| !l.is_empty()) {
                    why = format!("{why}; healthcheck said: {log}");
                }
            } else {
                why = "container is gone".into();
            }
            if Instant::now() >= deadline {
                return Err(Error::Unhealthy {
                    tenant: id.to_string(),
                    role: role.as_str().into(),
                    container: name.into(),
                    secs: timeout.as_secs(),
                    why,
                });
            }
            tokio::time::sleep(HEALTH_POLL).await;
        }
    }

    /// `stop`: stops the containers; ports and data stay.
    pub async fn stop(&self, id: &ProviderId, dry_run: bool) -> Result<PlanReport> {
        let _lock = lock::acquire(&self.data_dir, id.as_str()).await?;
        let record = self.known(id).await?;
        let docker = self.docker().await?;
        let observed = docker::observe_containers(&docker, Some(id.as_str())).await?;
        let plan = plan::plan_stop(&self.view(id, Some(&record)), &observed);
        if !dry_run {
            let op = self
                .store
                .begin_operation(Some(id.as_str()), "stop")
                .await?;
            let outcome = async {
                if record.desired != Desired::Destroyed {
                    self.store
                        .set_desired(id.as_str(), Desired::Stopped)
                        .await?;
                }
                self.execute(id, &plan, None, false, &mut Self::blank_report(id))
                    .await
            }
            .await;
            self.finish(op, &outcome).await;
            outcome?;
        }
        Ok(PlanReport::new(&[plan], dry_run))
    }

    /// A report with nothing filled in but the tenant's names.
    fn blank_report(id: &ProviderId) -> StartReport {
        StartReport {
            provider: id.to_string(),
            state: String::new(),
            gateway_port: None,
            admin_port: None,
            gateway_endpoint: None,
            admin_url: None,
            keyspace: id.keyspace(),
            admin_user: None,
            admin_password: None,
            dry_run: false,
            changed: false,
            plan: Vec::new(),
            notices: Vec::new(),
            plan_text: String::new(),
        }
    }

    /// `destroy`: removes the containers and releases the ports; with
    /// `purge`, drops the keyspace and the role and forgets the tenant.
    pub async fn destroy(&self, id: &ProviderId, purge: bool, dry_run: bool) -> Result<PlanReport> {
        let _lock = lock::acquire(&self.data_dir, id.as_str()).await?;
        let record = self.known(id).await?;
        let docker = self.docker().await?;
        let observed = docker::observe_containers(&docker, Some(id.as_str())).await?;
        let infra = docker::observe_infra(&docker, &self.config, Some(id.as_str())).await?;
        let plan = plan::plan_destroy(&self.view(id, Some(&record)), &infra, &observed, purge);
        if !dry_run {
            let op = self
                .store
                .begin_operation(Some(id.as_str()), "destroy")
                .await?;
            let outcome = self
                .execute(id, &plan, None, false, &mut Self::blank_report(id))
                .await;
            self.finish(op, &outcome).await;
            outcome?;
        }
        Ok(PlanReport::new(&[plan], dry_run))
    }

    /// `reconcile`: every known tenant to its desired state (recreating
    /// missing containers, restarting stopped ones), and the orphans
    /// (containers with our labels and no tenant in the store) reported.
    pub async fn reconcile(&self, dry_run: bool) -> Result<PlanReport> {
        let docker = self.docker().await?;
        let records = self.store.providers().await?;
        // Asked once per run: a CQL login attempt per tenant would cost the
        // node for nothing.
        let mut default_superuser_login = self
            .observe_infra(&docker, None)
            .await?
            .default_superuser_login;
        let mut plans = Vec::new();
        for record in &records {
            let Ok(id) = ProviderId::parse(&record.id) else {
                continue;
            };
            let _lock = lock::acquire(&self.data_dir, id.as_str()).await?;
            // Observed again under the lock: another process may have acted.
            let Some(record) = self.store.provider(id.as_str()).await? else {
                continue;
            };
            let mut infra = docker::observe_infra(&docker, &self.config, Some(id.as_str())).await?;
            infra.default_superuser_login = default_superuser_login;
            let observed = docker::observe_containers(&docker, Some(id.as_str())).await?;
            let plan = plan::plan_reconcile_tenant(
                &self.view(&id, Some(&record)),
                record.desired,
                &infra,
                &observed,
            );
            if !dry_run && !plan.is_empty() {
                let op = self
                    .store
                    .begin_operation(Some(id.as_str()), "reconcile")
                    .await?;
                let start = (record.desired == Desired::Running).then(StartOptions::default);
                let outcome = self
                    .execute(&id, &plan, start, false, &mut Self::blank_report(&id))
                    .await;
                self.finish(op, &outcome).await;
                outcome?;
                default_superuser_login = false;
            }
            plans.push(plan);
        }
        // Only containers named like ours: another provisioner (another
        // state store, another prefix) on the same engine is not an orphan.
        let prefix = format!("{}-", self.config.docker.container_prefix);
        let observed: Vec<_> = docker::observe_containers(&docker, None)
            .await?
            .into_iter()
            .filter(|c| c.name.starts_with(&prefix))
            .collect();
        let known: Vec<&str> = records.iter().map(|r| r.id.as_str()).collect();
        let orphans = plan::orphans(&known, &observed);
        if !orphans.is_empty() {
            plans.push(orphans);
        }
        Ok(PlanReport::new(&plans, dry_run))
    }

    /// `status` of one tenant, or of every tenant (`list`).
    pub async fn status(&self, id: Option<&ProviderId>) -> Result<Vec<TenantStatus>> {
        let records = match id {
            Some(id) => vec![self.known(id).await?],
            None => self.store.providers().await?,
        };
        let docker = self.docker().await?;
        let statuses = records.into_iter().map(|record| {
            let docker = docker.clone();
            let network = self.config.tenant_network(&record.id);
            async move {
                let mut containers = Vec::new();
                for role in Role::ALL {
                    let name = self.config.container_name(&record.id, role.as_str());
                    let Some(details) = docker::details(&docker, &name, &network).await? else {
                        continue;
                    };
                    let usage = if details.state == "running" {
                        docker::usage(&docker, &name).await?
                    } else {
                        None
                    };
                    containers.push(ContainerStatus {
                        role: role.as_str().into(),
                        details,
                        usage,
                    });
                }
                let running = containers
                    .iter()
                    .filter(|c| c.details.state == "running")
                    .count();
                let healthy = containers
                    .iter()
                    .filter(|c| c.details.health == "healthy")
                    .count();
                let state = match (record.desired, running, healthy) {
                    (Desired::Destroyed, 0, _) => "destroyed",
                    (_, 2, 2) => "running",
                    (_, 0, _) => "stopped",
                    (Desired::Running, _, _) if running == 2 => "starting",
                    _ => "degraded",
                };
                Ok::<_, Error>(TenantStatus {
                    keyspace: format!("tenant_{}", record.id),
                    provider: record.id.clone(),
                    desired: record.desired.as_str().into(),
                    state: state.into(),
                    gateway_port: record.gateway_port,
                    admin_port: record.admin_port,
                    admin_url: self.admin_url(record.admin_port),
                    containers,
                })
            }
        });
        join_all(statuses).await.into_iter().collect()
    }

    /// The container name of a tenant's app, once the tenant is known.
    pub async fn container_of(&self, id: &ProviderId, role: Role) -> Result<String> {
        self.known(id).await?;
        Ok(self.config.container_name(id.as_str(), role.as_str()))
    }

    /// `logs`: the log stream of a tenant's app.
    pub async fn logs(
        &self,
        id: &ProviderId,
        role: Role,
        follow: bool,
        tail: Option<u64>,
        mut out: impl FnMut(bollard::container::LogOutput),
    ) -> Result<()> {
        use futures::StreamExt;
        let name = self.container_of(id, role).await?;
        let docker = self.docker().await?;
        let mut stream = Box::pin(docker::logs(&docker, &name, follow, tail));
        while let Some(item) = stream.next().await {
            match item {
                Ok(line) => out(line),
                Err(e) => return Err(Error::docker(format!("logs of {name}"), e)),
            }
        }
        Ok(())
    }

    async fn gateway_session(&self, id: &ProviderId) -> Result<Session> {
        let record = self.known(id).await?;
        if record.schema_version == 0 {
            return Err(Error::Usage(format!(
                "tenant {id} has no keyspace yet; run `provision start {id}` first"
            )));
        }
        crate::session::admin_session(&self.config, &self.store).await
    }

    /// `gateway add`: commissions a gateway and returns its token (shown once;
    /// only its hash is stored). The same transactions as the panel's
    /// ([`tenant_schema::registry`]): a revoked gateway gets a new token, a
    /// live one is refused, and a race with the panel has one winner.
    pub async fn gateway_add(
        &self,
        id: &ProviderId,
        gateway: &str,
        display_name: Option<&str>,
    ) -> Result<String> {
        use tenant_schema::registry;
        let gateway = tenant_schema::model::GatewayId::parse(gateway)?;
        let name =
            tenant_schema::model::DisplayName::parse(display_name.unwrap_or(gateway.as_str()))?;
        let session = self.gateway_session(id).await?;
        let token = tenant_schema::model::new_gateway_token();
        let hash = tenant_schema::model::hash_gateway_token(&token);
        let now = chrono::Utc::now();
        let keyspace = id.keyspace();
        let applied = |r| registry::lwt_applied(r).map_err(|e| cql_error(id, "add gateway", e));
        let inserted = session
            .query_unpaged(
                registry::insert_gateway(&keyspace),
                (gateway.as_str(), &hash, name.as_str(), now),
            )
            .await
            .map_err(|e| cql_error(id, "add gateway", e))?;
        if applied(inserted)? {
            return Ok(token);
        }
        let renewed = session
            .query_unpaged(
                registry::recommission_gateway(&keyspace),
                (&hash, name.as_str(), now, gateway.as_str()),
            )
            .await
            .map_err(|e| cql_error(id, "add gateway", e))?;
        if applied(renewed)? {
            Ok(token)
        } else {
            Err(Error::GatewayExists {
                tenant: id.to_string(),
                gateway: gateway.to_string(),
            })
        }
    }

    /// `gateway list`.
    pub async fn gateway_list(&self, id: &ProviderId) -> Result<Vec<GatewayInfo>> {
        let session = self.gateway_session(id).await?;
        list_gateways(&session, id, None).await
    }

    /// `gateway revoke`: the token hash is deleted, so the token stops
    /// working and ingest closes the gateway's open connection; the readings
    /// stay. The panel's transaction ([`tenant_schema::registry`]).
    pub async fn gateway_revoke(&self, id: &ProviderId, gateway: &str) -> Result<()> {
        let gateway = tenant_schema::model::GatewayId::parse(gateway)?;
        let session = self.gateway_session(id).await?;
        let result = session
            .query_unpaged(
                tenant_schema::registry::revoke_gateway(&id.keyspace()),
                (chrono::Utc::now(), gateway.as_str()),
            )
            .await
            .map_err(|e| cql_error(id, "revoke gateway", e))?;
        let revoked = tenant_schema::registry::lwt_applied(result)
            .map_err(|e| cql_error(id, "revoke gateway", e))?;
        if revoked {
            Ok(())
        } else {
            Err(Error::UnknownGateway {
                tenant: id.to_string(),
                gateway: gateway.to_string(),
            })
        }
    }
}

fn cql_error(id: &ProviderId, what: &str, e: impl std::fmt::Display) -> Error {
    Error::CassandraQuery {
        tenant: id.to_string(),
        what: what.into(),
        why: e.to_string(),
    }
}

async fn list_gateways(
    session: &Session,
    id: &ProviderId,
    only: Option<&str>,
) -> Result<Vec<GatewayInfo>> {
    type Row = (
        String,
        Option<String>,
        Option<chrono::DateTime<chrono::Utc>>,
        Option<chrono::DateTime<chrono::Utc>>,
    );
    let base = format!(
        "SELECT gateway_id, display_name, created_at, revoked_at FROM {}.gateways",
        id.keyspace()
    );
    let result = match only {
        Some(g) => {
            session
                .query_unpaged(format!("{base} WHERE gateway_id = ?"), (g,))
                .await
        }
        None => session.query_unpaged(base, ()).await,
    }
    .map_err(|e| cql_error(id, "list gateways", e))?;
    let rows = result
        .into_rows_result()
        .map_err(|e| cql_error(id, "list gateways", e))?;
    let mut out: Vec<GatewayInfo> = rows
        .rows::<Row>()
        .map_err(|e| cql_error(id, "list gateways", e))?
        .filter_map(|r| r.ok())
        .map(|(gateway, display_name, created, revoked)| GatewayInfo {
            gateway,
            display_name,
            created_at: created.map(|t| t.to_rfc3339()),
            revoked_at: revoked.map(|t| t.to_rfc3339()),
        })
        .collect();
    out.sort_by(|a, b| a.gateway.cmp(&b.gateway));
    Ok(out)
}

/// Inserts an admin user of the tenant's panel with an argon2 hash.
pub async fn create_admin_user(
    session: &Session,
    id: &ProviderId,
    username: &str,
    password: &str,
) -> Result<()> {
    let hash = tenant_schema::model::hash_password(password)?;
    let cql = format!(
        "INSERT INTO {}.admin_users (username, password_hash, created_at) VALUES (?, ?, ?)",
        id.keyspace()
    );
    session
        .query_unpaged(cql, (username, hash, chrono::Utc::now()))
        .await
        .map_err(|e| cql_error(id, "create admin user", e))?;
    Ok(())
}

/// A plain HTTP/1.0 GET that succeeds on a 200 answer.
pub async fn http_ok(addr: &str, path: &str) -> std::result::Result<(), String> {
    let attempt = async {
        let mut stream = tokio::net::TcpStream::connect(addr)
            .await
            .map_err(|e| e.to_string())?;
        stream
            .write_all(
                format!("GET {path} HTTP/1.0\r\nHost: {addr}\r\nConnection: close\r\n\r\n")
                    .as_bytes(),
            )
            .await
            .map_err(|e| e.to_string())?;
        let mut buf = [0u8; 64];
        let mut n = 0;
        while n < 12 {
            let got = stream
                .read(&mut buf[n..])
                .await
                .map_err(|e| e.to_string())?;
            if got == 0 {
                break;
            }
            n += got;
        }
        let head = String::from_utf8_lossy(&buf[..n]).to_string();
        match head.split_whitespace().nth(1) {
            Some("200") => Ok(()),
            Some(code) => Err(format!("answered {code}")),
            None => Err("no HTTP answer".to_owned()),
        }
    };
    tokio::time::timeout(Duration::from_secs(2), attempt)
        .await
        .unwrap_or_else(|_| Err("timed out".into()))
}
