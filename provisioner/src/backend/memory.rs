//! A container platform in memory, for the executor's unit tests: networks,
//! the managed Cassandra and tenant containers are entries in a map, a
//! started container is healthy at once, and every call is idempotent as
//! the real backends' are. It checks what a real engine would refuse (a
//! container on a network that does not exist, attaching to a missing
//! network), so a plan in the wrong order fails here too.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;

use async_trait::async_trait;
use futures::stream::BoxStream;
use futures::StreamExt;

use super::{
    Backend, BackendError, ContainerDetails, ContainerEvent, LogChunk, Probe, Result, Usage,
};
use crate::config::Config;
use crate::domain::spec::ContainerSpec;
use crate::domain::state::{CassandraObserved, NetworkObserved, ObservedContainer, ObservedInfra};
use crate::domain::{ContainerState, Health, ProviderId};

/// One container in memory.
#[derive(Debug, Clone)]
pub struct MemoryContainer {
    pub spec: ContainerSpec,
    pub running: bool,
    /// What its newest health check printed (tests set it).
    pub health_log: Option<String>,
}

impl MemoryContainer {
    /// A started container is healthy at once.
    fn state(&self) -> (ContainerState, Health) {
        match self.running {
            true => (ContainerState::Running, Health::Healthy),
            false => (ContainerState::Exited, Health::Unknown),
        }
    }
}

/// Everything the memory backend holds.
#[derive(Debug, Default, Clone)]
pub struct World {
    /// Network name → the containers attached to it.
    pub networks: BTreeMap<String, BTreeSet<String>>,
    /// `None`: no managed Cassandra container; `Some(running)`.
    pub cassandra: Option<bool>,
    pub containers: BTreeMap<String, MemoryContainer>,
    /// Image name → id.
    pub images: BTreeMap<String, String>,
    /// Host ports something else holds.
    pub held_ports: BTreeSet<u16>,
    /// Containers whose create fails (a platform error).
    pub fail_create: BTreeSet<String>,
    /// How often each observing call was made (`observe_infra`,
    /// `observe_tenant_networks`, `observe_containers`, `image_id`).
    pub calls: BTreeMap<&'static str, usize>,
}

/// The in-memory platform.
#[derive(Debug)]
pub struct MemoryBackend {
    config: Config,
    pub world: Mutex<World>,
}

impl MemoryBackend {
    /// A fresh host with the configured tenant images built.
    pub fn new(config: Config) -> MemoryBackend {
        let world = World {
            images: [
                &config.images.ingest,
                &config.images.admin,
                &config.images.notifier,
            ]
            .into_iter()
            .map(|i| (i.clone(), format!("sha256:{i}-1")))
            .collect(),
            ..World::default()
        };
        MemoryBackend {
            config,
            world: Mutex::new(world),
        }
    }

    pub fn snapshot(&self) -> World {
        self.world.lock().expect("not poisoned").clone()
    }

    fn with<T>(&self, f: impl FnOnce(&mut World) -> T) -> T {
        f(&mut self.world.lock().expect("not poisoned"))
    }

    /// Counts one `call` in [`World::calls`].
    fn count(&self, call: &'static str) {
        self.with(|w| *w.calls.entry(call).or_default() += 1);
    }

    fn network_of(&self, w: &World, tenant: &ProviderId, attach: Option<&str>) -> NetworkObserved {
        w.networks
            .get(&self.config.tenant_network(tenant))
            .map(|attached| NetworkObserved {
                exists: true,
                cassandra_attached: attach.is_some_and(|c| attached.contains(c)),
            })
            .unwrap_or_default()
    }
}

fn missing(what: &str, name: &str) -> BackendError {
    BackendError::Api {
        what: format!("{what} {name}"),
        why: "no such object".into(),
    }
}

#[async_trait]
impl Backend for MemoryBackend {
    async fn observe_infra(
        &self,
        tenant: Option<&ProviderId>,
        attach: Option<&str>,
    ) -> Result<ObservedInfra> {
        self.count("observe_infra");
        Ok(self.with(|w| {
            let tenant_network = tenant
                .map(|t| self.network_of(w, t, attach))
                .unwrap_or_default();
            ObservedInfra {
                network: self.config.docker.network.clone(),
                network_exists: w.networks.contains_key(&self.config.docker.network),
                cassandra_container: self.config.cassandra.container.clone(),
                cassandra: match (self.config.runs_managed_node(), w.cassandra) {
                    (false, _) => CassandraObserved::External,
                    (_, None) => CassandraObserved::Missing,
                    (_, Some(false)) => CassandraObserved::Stopped,
                    (_, Some(true)) => CassandraObserved::Running,
                },
                cassandra_outdated: false,
                cassandra_unhardened: false,
                default_superuser_login: false,
                attach_container: attach.map(str::to_owned),
                tenant_network,
                front: Default::default(),
            }
        }))
    }

    async fn observe_tenant_networks(
        &self,
        tenants: &[(ProviderId, Option<String>)],
    ) -> Result<Vec<NetworkObserved>> {
        self.count("observe_tenant_networks");
        Ok(self.with(|w| {
            tenants
                .iter()
                .map(|(t, attach)| self.network_of(w, t, attach.as_deref()))
                .collect()
        }))
    }

    async fn observe_containers(
        &self,
        tenant: Option<&ProviderId>,
    ) -> Result<Vec<ObservedContainer>> {
        self.count("observe_containers");
        Ok(self.with(|w| {
            w.containers
                .values()
                .filter(|c| tenant.is_none_or(|t| &c.spec.tenant == t))
                .map(|c| ObservedContainer {
                    name: c.spec.name.clone(),
                    tenant: Some(c.spec.tenant.clone()),
                    state: c.state().0,
                    health: c.state().1,
                    spec_hash: Some(c.spec.hash()),
                    address: None,
                })
                .collect()
        }))
    }

    async fn image_id(&self, image: &str) -> Result<String> {
        self.count("image_id");
        self.with(|w| w.images.get(image).cloned())
            .ok_or_else(|| BackendError::ImageMissing {
                image: image.to_owned(),
            })
    }

    fn host_port_free(&self, port: u16) -> std::result::Result<(), String> {
        match self.with(|w| w.held_ports.contains(&port)) {
            true => Err("address in use".into()),
            false => Ok(()),
        }
    }

    async fn create_network(&self, name: &str, _tenant: Option<&ProviderId>) -> Result<()> {
        self.with(|w| {
            w.networks.entry(name.to_owned()).or_default();
        });
        Ok(())
    }

    async fn attach(&self, container: &str, network: &str) -> Result<()> {
        self.with(|w| match w.networks.get_mut(network) {
            Some(attached) => {
                attached.insert(container.to_owned());
                Ok(())
            }
            None => Err(BackendError::NetworkGone {
                network: network.to_owned(),
            }),
        })
    }

    async fn remove_network(&self, network: &str, _detach: Option<&str>) -> Result<()> {
        self.with(|w| {
            let in_use = w.containers.values().any(|c| c.spec.network == network);
            match in_use {
                true => Err(BackendError::Api {
                    what: format!("remove network {network}"),
                    why: "network has active endpoints".into(),
                }),
                false => {
                    w.networks.remove(network);
                    Ok(())
                }
            }
        })
    }

    async fn ensure_cassandra(&self) -> Result<()> {
        let network = self.config.docker.network.clone();
        self.with(|w| match w.networks.contains_key(&network) {
            true => {
                w.cassandra = Some(true);
                Ok(())
            }
            false => Err(BackendError::NetworkGone { network }),
        })
    }

    async fn create_container(&self, spec: &ContainerSpec) -> Result<()> {
        self.with(|w| {
            if w.fail_create.contains(&spec.name) {
                return Err(BackendError::Api {
                    what: format!("create container {}", spec.name),
                    why: "refused (a test's failure)".into(),
                });
            }
            if !w.networks.contains_key(&spec.network) {
                return Err(BackendError::NetworkGone {
                    network: spec.network.clone(),
                });
            }
            if !w.images.values().any(|id| id == &spec.image_id) {
                return Err(BackendError::ImageMissing {
                    image: spec.image.clone(),
                });
            }
            w.containers
                .entry(spec.name.clone())
                .or_insert_with(|| MemoryContainer {
                    spec: spec.clone(),
                    running: false,
                    health_log: None,
                });
            Ok(())
        })
    }

    async fn start_container(&self, name: &str) -> Result<()> {
        self.with(|w| match w.containers.get_mut(name) {
            Some(c) => {
                c.running = true;
                Ok(())
            }
            None => Err(missing("start container", name)),
        })
    }

    async fn stop_container(&self, name: &str) -> Result<()> {
        self.with(|w| {
            if let Some(c) = w.containers.get_mut(name) {
                c.running = false;
            }
        });
        Ok(())
    }

    async fn remove_container(&self, name: &str) -> Result<()> {
        self.with(|w| w.containers.remove(name));
        Ok(())
    }

    async fn probe_health(&self, name: &str, _network: &str, _port: u16) -> Result<Probe> {
        Ok(self.with(|w| match w.containers.get(name) {
            Some(c) if c.running => Probe::Healthy,
            Some(_) => Probe::NotYet("container is exited".into()),
            None => Probe::NotYet("container is gone".into()),
        }))
    }

    async fn details(&self, name: &str, _network: &str) -> Result<Option<ContainerDetails>> {
        Ok(self.with(|w| {
            w.containers.get(name).map(|c| ContainerDetails {
                name: name.to_owned(),
                state: c.state().0,
                health: c.state().1,
                health_log: c.health_log.clone(),
                ..ContainerDetails::default()
            })
        }))
    }

    async fn usage(&self, _name: &str) -> Result<Option<Usage>> {
        Ok(None)
    }

    async fn logs(
        &self,
        _name: &str,
        _follow: bool,
        _tail: Option<u64>,
    ) -> Result<BoxStream<'static, Result<LogChunk>>> {
        Ok(futures::stream::empty().boxed())
    }

    /// Nothing happens in memory that the caller did not do.
    async fn events(&self) -> Result<BoxStream<'static, Result<ContainerEvent>>> {
        Ok(futures::stream::pending().boxed())
    }
}
