//! `start` (and `plan`, what start would do): observe the store and the
//! backend, choose the ports, make the container specs, plan, apply. A
//! port that another tenant leased between the plan and its lease makes
//! the run plan again from what is there now (at most [`MAX_REPLANS`]
//! times); the steps already applied are then found done.

use super::executor::Execution;
use super::report::StartState;
use super::{ImageIds, Provisioner, StartReport};
use crate::domain::capacity::Reservation;
use crate::domain::planner::{self, StartTarget};
use crate::domain::ports::{choose, Choice};
use crate::domain::spec::{
    ingest_nofile, max_gateways, reservation, tenant_container, ContainerSpec, SpecInputs,
    INGEST_SPARE_FILES,
};
use crate::domain::state::TenantRecord;
use crate::domain::{GatewayTls, Plan, Pool, ProviderId, Role, TenantLimits};
use crate::error::{Error, Result};
use crate::store::StoreError;

/// How often a start plans again after losing a port to a concurrent one.
const MAX_REPLANS: usize = 64;

/// What `start` asks for.
#[derive(Debug, Clone, Default)]
pub struct StartOptions {
    pub gateway_port: Option<u16>,
    pub admin_port: Option<u16>,
    /// TLS on the gateway port; `None` keeps what the tenant has
    /// (`optional` for a new one).
    pub gateway_tls: Option<GatewayTls>,
    /// Readings per second at most; `Some(0)` is unlimited again, `None`
    /// keeps what the tenant has (unlimited for a new one).
    pub max_readings_per_sec: Option<u32>,
    /// Gateway connections at once; `Some(0)` is ingest's default again,
    /// `None` keeps what the tenant has.
    pub max_gateways: Option<u32>,
    /// Swarm mode: start even if the cluster is no longer N+1 afterwards.
    pub allow_overcommit: bool,
    pub dry_run: bool,
    /// The tag of the images to run (`provision upgrade --image-tag`);
    /// `None` keeps what the tenant runs.
    pub image_tag: Option<String>,
}

impl StartOptions {
    fn requested(&self, pool: Pool) -> Option<u16> {
        match pool {
            Pool::Gateway => self.gateway_port,
            Pool::Admin => self.admin_port,
        }
    }

    /// The request as the operations log shows it.
    fn describe(&self, id: &ProviderId) -> String {
        let mut text = format!("start {id}");
        if let Some(p) = self.gateway_port {
            text.push_str(&format!(" --gateway-port {p}"));
        }
        if let Some(p) = self.admin_port {
            text.push_str(&format!(" --admin-port {p}"));
        }
        if let Some(mode) = self.gateway_tls {
            text.push_str(&format!(" --gateway-tls {mode}"));
        }
        if let Some(n) = self.max_readings_per_sec {
            text.push_str(&format!(" --max-readings-per-sec {n}"));
        }
        if let Some(n) = self.max_gateways {
            text.push_str(&format!(" --max-gateways {n}"));
        }
        if self.allow_overcommit {
            text.push_str(" --allow-overcommit");
        }
        text
    }
}

impl Provisioner {
    /// The ports `id` gets and the specs of its containers on them.
    pub(super) async fn start_target(
        &self,
        id: &ProviderId,
        options: &StartOptions,
        images: &ImageIds,
    ) -> Result<StartTarget> {
        let leases = self.store.leases().await?;
        let pools = self.config.pools();
        let backend = self.backend.clone();
        let host_free = move |port: u16| backend.host_port_free(port);
        let mut ports = Vec::new();
        for pool in Pool::ALL {
            let range = pools.range(pool);
            let choice = choose(
                id,
                pool,
                options.requested(pool),
                range,
                &leases,
                &host_free,
            )?;
            ports.push((pool, choice));
        }
        let record = self.store.tenant(id).await?;
        let image_tag = match &options.image_tag {
            Some(tag) => Some(tag.clone()),
            None => record.as_ref().and_then(|r| r.image_tag.clone()),
        };
        let gateway_tls = options
            .gateway_tls
            .or(record.as_ref().map(|r| r.gateway_tls))
            .unwrap_or_default();
        let limits = record
            .map_or(TenantLimits::default(), |r| r.limits)
            .changed(options.max_readings_per_sec, options.max_gateways);
        self.check_open_files(limits)?;
        let cluster = self.cluster_config(id).await?;
        let mut specs = Vec::new();
        for role in Role::ALL {
            // A role with a pool has its port among `ports`; the notifier
            // has no pool and no port.
            let port = role.pool().and_then(|p| {
                ports
                    .iter()
                    .find(|(pool, _)| *pool == p)
                    .map(|(_, c)| Choice::port(*c))
            });
            specs.push(
                self.container_spec(
                    &cluster,
                    id,
                    role,
                    port,
                    gateway_tls,
                    limits,
                    image_tag.as_deref(),
                    images,
                )
                .await?,
            );
        }
        let public_host = self.config.ports.public_host.clone();
        let certificate = match gateway_tls {
            GatewayTls::Off => None,
            _ => Some(self.pki().observe(id, &public_host)?),
        };
        Ok(StartTarget {
            ports,
            specs,
            gateway_tls,
            limits,
            certificate,
            public_host,
        })
    }

    /// Refuses a cap on gateways whose open files the engine's host does
    /// not allow a container (it could not start).
    fn check_open_files(&self, limits: TenantLimits) -> Result<()> {
        let gateways = max_gateways(limits);
        let needed = ingest_nofile(gateways);
        match self.config.limits.nofile_max {
            Some(max) if needed > max => Err(Error::Usage(format!(
                "--max-gateways {gateways} needs {needed} open files in the ingest container, \
                 and the engine's host allows {max} ([limits] nofile_max): ask for at most {}",
                max.saturating_sub(INGEST_SPARE_FILES)
            ))),
            _ => Ok(()),
        }
    }

    /// The spec of `id`'s `role` container on `host_port` (none for the
    /// notifier), with its image resolved now (also what `export` writes
    /// out); `cluster` is the config as the tenant's Cassandra cluster
    /// sees it ([`Provisioner::cluster_config`], read once per tenant).
    #[allow(clippy::too_many_arguments)]
    pub(super) async fn container_spec(
        &self,
        cluster: &crate::config::Config,
        id: &ProviderId,
        role: Role,
        host_port: Option<u16>,
        gateway_tls: GatewayTls,
        limits: TenantLimits,
        image_tag: Option<&str>,
        images: &ImageIds,
    ) -> Result<ContainerSpec> {
        let image = self.config.image_tagged(role, image_tag);
        let image_id = images.resolve(&*self.backend, &image).await?;
        Ok(tenant_container(
            cluster,
            SpecInputs {
                tenant: id,
                role,
                host_port,
                image_id: &image_id,
                image_tag,
                secrets_dir: crate::secrets::dir(self.data_dir(), id, role),
                gateway_tls,
                limits,
            },
        ))
    }

    /// What the tenant's apps that do not run yet will reserve once they
    /// do (none on one engine, which has no reservations to check).
    async fn apps_to_place(
        &self,
        id: &ProviderId,
        options: &StartOptions,
    ) -> Result<Vec<Reservation>> {
        if self.backend.cluster().is_none() {
            return Ok(Vec::new());
        }
        let limits = self
            .store
            .tenant(id)
            .await?
            .map_or(TenantLimits::default(), |r| r.limits)
            .changed(options.max_readings_per_sec, options.max_gateways);
        let observed = self.backend.observe_containers(Some(id)).await?;
        Ok(Role::ALL
            .into_iter()
            .filter(|role| {
                let name = self.config.container_name(id, *role);
                !observed.iter().any(|c| c.name == name && c.running())
            })
            .map(|role| reservation(&self.config, role, limits))
            .collect())
    }

    /// What `start` would do now, without doing it.
    pub async fn plan(&self, id: &ProviderId, options: StartOptions) -> Result<Plan> {
        let record = self.store.tenant(id).await?;
        let mut infra = self.observe_infra(Some(id)).await?;
        let observed = self.backend.observe_containers(Some(id)).await?;
        self.observe_front(&mut infra, id, &observed).await?;
        let target = self
            .start_target(id, &options, &ImageIds::default())
            .await?;
        Ok(planner::plan_start(
            &self.view(id, record),
            &target,
            &infra,
            &observed,
        ))
    }

    /// `start`: brings the tenant to running and healthy.
    pub async fn start(&self, id: &ProviderId, options: StartOptions) -> Result<StartReport> {
        if options.dry_run {
            let plan = self.plan(id, options.clone()).await?;
            let record = self.store.tenant(id).await?;
            return Ok(self.start_report(id, &plan, plan.lines(), record.as_ref(), None, true));
        }
        self.operation(Some(id), "start", options.describe(id), async {
            self.place(id).await?;
            if !options.allow_overcommit {
                self.check_n_plus_one(id, &self.apps_to_place(id, &options).await?)
                    .await?;
            }
            let mut run = Execution::new(self, id);
            let mut replans = 0;
            let plan = loop {
                let plan = self.plan(id, options.clone()).await?;
                match run.apply(&plan).await {
                    Err(Error::Store(StoreError::LeaseTaken { pool, port, holder }))
                        if replans < MAX_REPLANS =>
                    {
                        replans += 1;
                        tracing::info!(%pool, port, %holder, "port leased meanwhile; planning again");
                    }
                    outcome => break outcome.map(|()| plan)?,
                }
            };
            let record = self.known(id).await?;
            let password = run.admin_password.take();
            let applied = std::mem::take(&mut run.applied);
            let mut report = self.start_report(id, &plan, applied, Some(&record), password, false);
            if self.config.swarm() {
                // Where the tasks landed.
                let status = self.status(Some(id)).await?;
                if let Some(s) = status.into_iter().next() {
                    report.gateway_endpoint = s.gateway_endpoint;
                    report.admin_url = s.admin_url;
                }
            }
            Ok(report)
        })
        .await
    }

    fn start_report(
        &self,
        id: &ProviderId,
        plan: &Plan,
        steps: Vec<String>,
        record: Option<&TenantRecord>,
        admin_password: Option<String>,
        dry_run: bool,
    ) -> StartReport {
        let gateway_port = record.and_then(|r| r.gateway_port);
        let admin_port = record.and_then(|r| r.admin_port);
        let host = &self.config.ports.public_host;
        StartReport {
            provider: id.clone(),
            state: match dry_run {
                true => StartState::Planned,
                false => StartState::Running,
            },
            gateway_port,
            admin_port,
            gateway_endpoint: gateway_port.map(|p| format!("{host}:{p}")),
            admin_url: self.admin_url(admin_port),
            keyspace: id.keyspace(),
            admin_user: admin_password
                .as_ref()
                .map(|_| planner::FIRST_ADMIN_USER.to_owned()),
            admin_password,
            dry_run,
            changed: plan.changes() || steps.len() > plan.steps.len(),
            plan: steps,
            notices: plan.notices.clone(),
            plan_text: plan.to_string(),
        }
    }
}
