//! The Swarm backend (`[docker] mode = "swarm"`): the engine is a Swarm
//! manager, and each tenant app is a service of one replica that the
//! Swarm places on a node, restarts, reschedules when its node is lost,
//! and moves off a drained node. The shared parts (the networks, now
//! attachable overlays; the managed Cassandra container on the manager)
//! go through the manager's own engine, as [`DockerBackend`] does them.
//!
//! - [`services`]: the service made from our [`ContainerSpec`] (the same
//!   hardening, limits that are also reservations, host-mode ports with
//!   dnsrr, spread over nodes), its secrets as Swarm secrets, images
//!   pinned by digest; create, scale, remove;
//! - [`tasks`]: what the operations observe: a service's current task,
//!   its node and its endpoint;
//! - [`nodes`]: the cluster's nodes, their capacity and what is reserved
//!   on them (`provision node`, `provision capacity`);
//! - [`front`]: with `[front] enabled`, the front as a global service on
//!   every node, and the configuration published for its agents.
//!
//! A container is named by its service: `stop_container` scales the
//! service to 0 replicas and `start_container` to 1.

mod front;
pub mod nodes;
mod services;
mod tasks;

use async_trait::async_trait;
use bollard::Docker;
use futures::stream::BoxStream;
use futures::StreamExt;

use super::docker::DockerBackend;
use super::{
    AppEndpoint, Backend, Cluster, ContainerDetails, ContainerEvent, LogChunk, Probe, Replacement,
    Result, Usage,
};
use crate::config::Config;
use crate::domain::capacity::{Availability, NodeInventory};
use crate::domain::spec::ContainerSpec;
use crate::domain::state::{FrontObserved, NetworkObserved, ObservedContainer, ObservedInfra};
use crate::domain::ProviderId;

/// A Swarm, through one of its managers.
#[derive(Debug)]
pub struct SwarmBackend {
    config: Config,
    manager: DockerBackend,
}

impl SwarmBackend {
    pub fn new(config: Config) -> SwarmBackend {
        SwarmBackend {
            manager: DockerBackend::new(config.clone()),
            config,
        }
    }

    /// The manager's engine, connected on first use.
    pub async fn docker(&self) -> Result<&Docker> {
        self.manager.docker().await
    }
}

#[async_trait]
impl Cluster for SwarmBackend {
    async fn nodes(&self) -> Result<Vec<NodeInventory>> {
        nodes::inventory(self.docker().await?, &self.config).await
    }

    async fn set_availability(&self, node: &str, availability: Availability) -> Result<()> {
        nodes::set_availability(self.docker().await?, node, availability).await
    }

    async fn endpoints(&self) -> Result<Vec<AppEndpoint>> {
        tasks::endpoints(self.docker().await?).await
    }

    async fn published_front(&self) -> Result<Option<String>> {
        front::newest(self.docker().await?).await
    }

    async fn publish_front(&self, text: &str, generation: &str) -> Result<()> {
        front::publish(self.docker().await?, &self.config, text, generation).await
    }
}

#[async_trait]
impl Backend for SwarmBackend {
    /// The manager's, but the front is a service on every node.
    async fn observe_infra(
        &self,
        tenant: Option<&ProviderId>,
        attach: Option<&str>,
    ) -> Result<ObservedInfra> {
        let mut infra = self.manager.observe_infra(tenant, attach).await?;
        if self.config.front.enabled {
            infra.front = match front::exists(self.docker().await?, &self.config).await? {
                true => FrontObserved::Running {
                    routes_current: false,
                },
                false => FrontObserved::Missing,
            };
        }
        Ok(infra)
    }

    async fn observe_tenant_networks(
        &self,
        tenants: &[(ProviderId, Option<String>)],
    ) -> Result<Vec<NetworkObserved>> {
        self.manager.observe_tenant_networks(tenants).await
    }

    async fn observe_containers(
        &self,
        tenant: Option<&ProviderId>,
    ) -> Result<Vec<ObservedContainer>> {
        tasks::observe_services(self.docker().await?, tenant).await
    }

    /// The image in the registry, pinned: `<registry>/<image>@<digest>`,
    /// so every node runs the same build.
    async fn image_id(&self, image: &str) -> Result<String> {
        services::pinned_image(self.docker().await?, &self.config.platform_image(image)).await
    }

    /// Ports are leased cluster-wide in the state store: a task may land
    /// on any node, and no node's listeners can be probed from here.
    fn host_port_free(&self, _port: u16) -> std::result::Result<(), String> {
        Ok(())
    }

    async fn create_network(&self, name: &str, tenant: Option<&ProviderId>) -> Result<()> {
        self.manager.create_network(name, tenant).await
    }

    async fn attach(&self, container: &str, network: &str) -> Result<()> {
        self.manager.attach(container, network).await
    }

    async fn remove_network(&self, network: &str, detach: Option<&str>) -> Result<()> {
        self.manager.remove_network(network, detach).await
    }

    /// The managed node runs as a container on the manager; its image is
    /// pulled from the registry when the manager lacks it.
    async fn ensure_cassandra(&self) -> Result<()> {
        let image = self.config.platform_image(&self.config.cassandra.image);
        services::pull_if_missing(self.docker().await?, &image).await?;
        self.manager.ensure_cassandra().await
    }

    async fn create_container(&self, spec: &ContainerSpec) -> Result<()> {
        services::create(self.docker().await?, &self.config, spec).await
    }

    async fn start_container(&self, name: &str) -> Result<()> {
        services::scale(self.docker().await?, name, 1).await
    }

    /// The Swarm's rolling update, `start-first`, rolled back on failure.
    async fn replace_beside(&self, spec: &ContainerSpec) -> Result<Replacement> {
        services::replace(self.docker().await?, &self.config, spec).await
    }

    /// The front's global service (the folder is the provisioner's
    /// host's: each node's front takes its configuration from the
    /// manager instead).
    async fn ensure_front(&self, _dir: &std::path::Path) -> Result<()> {
        front::ensure(self.docker().await?, &self.config).await
    }

    async fn stop_container(&self, name: &str) -> Result<()> {
        let docker = self.docker().await?;
        services::scale(docker, name, 0).await?;
        tasks::wait_stopped(docker, name).await
    }

    async fn remove_container(&self, name: &str) -> Result<()> {
        services::remove(self.docker().await?, name).await
    }

    /// The Swarm marks a task running only once its health check passed.
    async fn probe_health(&self, name: &str, _network: &str, _port: u16) -> Result<Probe> {
        tasks::probe(self.docker().await?, name).await
    }

    async fn details(&self, name: &str, _network: &str) -> Result<Option<ContainerDetails>> {
        tasks::details(self.docker().await?, name).await
    }

    /// A stats sample needs the engine of the task's node; the manager has
    /// none to give for the others.
    async fn usage(&self, _name: &str) -> Result<Option<Usage>> {
        Ok(None)
    }

    async fn logs(
        &self,
        name: &str,
        follow: bool,
        tail: Option<u64>,
    ) -> Result<BoxStream<'static, Result<LogChunk>>> {
        Ok(tasks::logs(self.docker().await?, name, follow, tail).boxed())
    }

    /// The manager's container events (the managed Cassandra) and the
    /// Swarm's own: a node going down or coming back, a service removed.
    async fn events(&self) -> Result<BoxStream<'static, Result<ContainerEvent>>> {
        let containers = self.manager.events().await?;
        let swarm = nodes::events(self.docker().await?, &self.config);
        Ok(futures::stream::select(containers, swarm.boxed()).boxed())
    }

    fn cluster(&self) -> Option<&dyn Cluster> {
        Some(self)
    }
}
