//! The front on this host (`[front] enabled`), as operations use it:
//!
//! - [`Provisioner::sync_front`] brings the running HAProxy to every
//!   tenant's routes now, under the front's own lock (so concurrent
//!   operations of different tenants take turns, each from what is there
//!   then): started with them when it does not run; a changed target only
//!   through the admin socket (`set server`: no reload, no connection
//!   touched); a changed set of ports through a seamless reload (SIGUSR2
//!   to the master, which hands the listening sockets to the new worker;
//!   the old worker keeps its established connections), confirmed by the
//!   generation the new worker reports.
//! - On a Swarm the switch is the Swarm's rolling update in `start-first`
//!   order (the new task beside the old one, on another node, healthy
//!   before the old one stops), rolled back when the new task fails.
//! - On a Swarm the front is a service on every node, and a sync
//!   publishes the configuration (every tenant's routes, to every node's
//!   internal port) when it is not the newest already; each node's agent
//!   loads it with a seamless reload. A task that moves changes nothing:
//!   each front's health checks find the node it runs on.
//! - [`Provisioner::switch_container`] is the copy-update-switch: the new
//!   copy of an app beside the old one, healthy, then the front switched to
//!   it and the old one drained (SIGTERM: ingest acks what it holds, then
//!   sends `<error code="shutdown">`) and removed. A copy that does not get
//!   healthy is removed, and the front never left the old one.

use std::net::IpAddr;
use std::time::{Duration, Instant};

use super::executor::wait_healthy;
use super::Provisioner;
use crate::backend::{Cluster, Replacement};
use crate::domain::spec::ContainerSpec;
use crate::domain::state::{FrontObserved, ObservedContainer, ObservedInfra};
use crate::domain::ProviderId;
use crate::error::{Error, Result};
use crate::front::runtime::{self, FrontDir};
use crate::front::{render, Front, FrontError};
use crate::lock;

/// How long a started or reloaded front may take to serve its new
/// generation.
const RELOAD_TIMEOUT: Duration = Duration::from_secs(30);
const RELOAD_POLL: Duration = Duration::from_millis(50);

/// What a sync did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrontChange {
    Unchanged,
    /// Targets changed through the admin socket.
    Retargeted,
    /// A new set of ports, by a seamless reload.
    Reloaded,
    Started,
}

impl Provisioner {
    fn front_dir(&self) -> FrontDir {
        FrontDir::new(self.data_dir())
    }

    /// `infra.front`, with whether the front's routes of `id` are what
    /// its record and `observed` containers say now.
    pub(super) async fn observe_front(
        &self,
        infra: &mut ObservedInfra,
        id: &ProviderId,
        observed: &[ObservedContainer],
    ) -> Result<()> {
        if !matches!(infra.front, FrontObserved::Running { .. }) {
            return Ok(());
        }
        if let Some(cluster) = self.backend.cluster() {
            let wanted = render(&self.swarm_front(cluster).await?)?;
            infra.front = FrontObserved::Running {
                routes_current: cluster.published_front().await?.as_deref() == Some(&*wanted),
            };
            return Ok(());
        }
        let records: Vec<_> = self.store.tenant(id).await?.into_iter().collect();
        let wanted = runtime::routes(&self.config, &records, observed)?;
        let given: Vec<_> = self
            .front_dir()
            .read_routes()?
            .unwrap_or_default()
            .into_iter()
            .filter(|r| &r.tenant == id)
            .collect();
        infra.front = FrontObserved::Running {
            routes_current: wanted == given,
        };
        Ok(())
    }

    /// Brings the front to every tenant's routes now (see the module).
    pub async fn sync_front(&self) -> Result<FrontChange> {
        let _lock = lock::acquire(self.data_dir(), "_front").await?;
        self.sync_front_locked().await
    }

    async fn sync_front_locked(&self) -> Result<FrontChange> {
        if let Some(cluster) = self.backend.cluster() {
            return self.sync_swarm_front(cluster).await;
        }
        let dir = self.front_dir();
        let tenants = self.store.tenants().await?;
        let containers = self.backend.observe_containers(None).await?;
        let routes = runtime::routes(&self.config, &tenants, &containers)?;
        let front = Front {
            global: runtime::global(&self.config, &routes),
            routes,
        };
        let running = matches!(
            self.backend.observe_infra(None, None).await?.front,
            FrontObserved::Running { .. }
        );
        if !running {
            dir.write(&front)?;
            self.backend.ensure_front(dir.host()).await?;
            self.await_generation(&dir, &front.global.generation)
                .await?;
            tracing::info!(generation = %front.global.generation, "front started");
            return Ok(FrontChange::Started);
        }
        let given = dir.read_routes()?;
        if given.as_ref() == Some(&front.routes) {
            return Ok(FrontChange::Unchanged);
        }
        let same_ports = given
            .as_ref()
            .is_some_and(|g| runtime::binds(g) == runtime::binds(&front.routes));
        if same_ports {
            let admin = dir.admin_socket();
            let given = given.unwrap_or_default();
            for route in front.routes.iter().filter(|r| !given.contains(r)) {
                admin.set_target(route).await?;
                tracing::info!(route = %route.name(), target = ?route.target, "front target set");
            }
            dir.write(&front)?;
            return Ok(FrontChange::Retargeted);
        }
        dir.write(&front)?;
        self.backend
            .signal(&self.config.front.container, "SIGUSR2")
            .await?;
        self.await_generation(&dir, &front.global.generation)
            .await?;
        tracing::info!(generation = %front.global.generation, "front reloaded");
        Ok(FrontChange::Reloaded)
    }

    /// What every node's front should run on a Swarm: every tenant's
    /// routes, each to its app's internal port on every node.
    async fn swarm_front(&self, cluster: &dyn Cluster) -> Result<Front> {
        let tenants = self.store.tenants().await?;
        let nodes: Vec<IpAddr> = cluster
            .nodes()
            .await?
            .iter()
            .filter_map(|n| n.address.as_deref()?.parse().ok())
            .filter(|ip: &IpAddr| !ip.is_unspecified())
            .collect();
        let routes = runtime::swarm_routes(&self.config, &tenants, &nodes)?;
        Ok(Front {
            global: runtime::global(&self.config, &routes),
            routes,
        })
    }

    /// On a Swarm: publishes the configuration unless it is the newest
    /// already, and starts the front's service when it does not run.
    async fn sync_swarm_front(&self, cluster: &dyn Cluster) -> Result<FrontChange> {
        let front = self.swarm_front(cluster).await?;
        let text = render(&front)?;
        let changed = cluster.published_front().await?.as_deref() != Some(&*text);
        if changed {
            cluster
                .publish_front(&text, &front.global.generation)
                .await?;
            tracing::info!(generation = %front.global.generation, "front configuration published");
        }
        let running = matches!(
            self.backend.observe_infra(None, None).await?.front,
            FrontObserved::Running { .. }
        );
        if !running {
            self.backend.ensure_front(self.front_dir().host()).await?;
            tracing::info!(generation = %front.global.generation, "front started on every node");
            return Ok(FrontChange::Started);
        }
        Ok(match changed {
            true => FrontChange::Reloaded,
            false => FrontChange::Unchanged,
        })
    }

    /// Polls the admin socket until the serving worker reports
    /// `generation`.
    async fn await_generation(&self, dir: &FrontDir, generation: &str) -> Result<()> {
        let admin = dir.admin_socket();
        let deadline = Instant::now() + RELOAD_TIMEOUT;
        loop {
            let serving = match admin.generation().await {
                Ok(Some(g)) if g == generation => return Ok(()),
                Ok(Some(g)) => g,
                Ok(None) => "no generation".to_owned(),
                Err(e) => e.to_string(),
            };
            if Instant::now() >= deadline {
                return Err(FrontError::NotReloaded {
                    generation: generation.to_owned(),
                    serving,
                    secs: RELOAD_TIMEOUT.as_secs(),
                }
                .into());
            }
            tokio::time::sleep(RELOAD_POLL).await;
        }
    }

    /// The copy-update-switch of one app of `id` to `spec` (see the
    /// module). The old container keeps its name until the switch:
    /// `<name>-next` is the copy, `<name>-old` the one draining. On a
    /// Swarm the platform does the same
    /// ([`crate::backend::Backend::replace_beside`]).
    pub(super) async fn switch_container(
        &self,
        id: &ProviderId,
        spec: &ContainerSpec,
    ) -> Result<()> {
        let backend = self.backend.as_ref();
        if backend.cluster().is_some() {
            return match backend.replace_beside(spec).await? {
                Replacement::Done => {
                    tracing::info!(service = %spec.name, "switched to the new task; the old one drained");
                    Ok(())
                }
                Replacement::RolledBack(why) => {
                    tracing::warn!(service = %spec.name, %why, "the new task is not healthy; rolled back");
                    Err(Error::RolledBack {
                        tenant: id.clone(),
                        role: spec.role,
                        why,
                    })
                }
            };
        }
        let next = format!("{}-next", spec.name);
        let old = format!("{}-old", spec.name);
        // What an interrupted switch left.
        backend.remove_container(&next).await?;
        backend.remove_container(&old).await?;
        let copy = async {
            backend.create_container_named(spec, &next).await?;
            backend.start_container(&next).await?;
            wait_healthy(self, id, spec.role, &next).await
        };
        if let Err(e) = copy.await {
            let why = match &e {
                Error::Unhealthy { why, secs, .. } => format!("not healthy within {secs} s: {why}"),
                other => other.full_message(),
            };
            tracing::warn!(container = %next, %why, "the new copy is not healthy; rolling back");
            backend.remove_container(&next).await?;
            return Err(Error::RolledBack {
                tenant: id.clone(),
                role: spec.role,
                why,
            });
        }
        {
            // The names change under the front's lock, so that every sync
            // sees either the old app or the new one under the app's name.
            let _lock = lock::acquire(self.data_dir(), "_front").await?;
            backend.rename_container(&spec.name, &old).await?;
            backend.rename_container(&next, &spec.name).await?;
            self.sync_front_locked().await?;
        }
        let drain = Instant::now();
        backend.stop_container(&old).await?;
        backend.remove_container(&old).await?;
        tracing::info!(
            container = %spec.name,
            drained_ms = drain.elapsed().as_millis() as u64,
            "switched to the new copy; the old one drained and removed"
        );
        Ok(())
    }
}
