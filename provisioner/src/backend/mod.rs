//! The backend seam: what the operations need from a container platform,
//! as one trait. [`docker::DockerBackend`] implements it on one Docker
//! engine; [`swarm::SwarmBackend`] on a Swarm manager (tenant apps as
//! services, the rest through the manager's own engine);
//! [`memory::MemoryBackend`] in memory, for the executor's unit tests.
//! [`for_config`] picks one by `[docker] mode`.

pub mod docker;
pub mod memory;
pub mod swarm;

use std::sync::Arc;

use crate::config::Config;

/// The backend `[docker] mode` names.
pub fn for_config(config: &Config) -> Arc<dyn Backend> {
    if config.swarm() {
        Arc::new(swarm::SwarmBackend::new(config.clone()))
    } else {
        Arc::new(docker::DockerBackend::new(config.clone()))
    }
}

use async_trait::async_trait;
use futures::stream::BoxStream;
use serde::{Deserialize, Serialize};

use crate::domain::capacity::{Availability, NodeInventory};
use crate::domain::spec::ContainerSpec;
use crate::domain::state::{NetworkObserved, ObservedContainer, ObservedInfra};
use crate::domain::{ContainerState, Health, ProviderId};

/// What can go wrong on the container platform.
#[derive(Debug, thiserror::Error)]
pub enum BackendError {
    #[error("no Docker engine answers at {host} ({why}); start Docker or set [docker].host / DOCKER_HOST")]
    Unreachable { host: String, why: String },
    #[error("docker image {image} is missing; run scripts/setup (or set [images] in the config)")]
    ImageMissing { image: String },
    #[error("network {network} is gone; run start again")]
    NetworkGone { network: String },
    #[error("no Swarm node is named {node}; see provision node list")]
    NodeUnknown { node: String },
    #[error("docker {what} failed: {why}")]
    Api { what: String, why: String },
    #[error("no /{prefix} subnet of [docker] tenant_subnets {pool} is free for network {network}: the engine's networks use them all; widen the pool or remove unused networks")]
    SubnetsExhausted {
        network: String,
        pool: String,
        prefix: u8,
    },
    #[error("the engine at {host} cannot run tenants: {why}")]
    Unsupported { host: String, why: String },
}

pub type Result<T, E = BackendError> = std::result::Result<T, E>;

/// What a status line needs about one container.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ContainerDetails {
    pub name: String,
    pub state: ContainerState,
    pub health: Health,
    pub ip: Option<String>,
    pub exit_code: Option<i64>,
    pub started_at: Option<String>,
    pub uptime_secs: Option<i64>,
    /// The newest healthcheck output (a failing check's error, or a
    /// passing ingest's line of counters: [`tenant_schema::health`]).
    pub health_log: Option<String>,
    /// How often the platform restarted the container (restart policy).
    pub restart_count: i64,
    /// Whether the kernel's OOM killer ended the container's last run, or
    /// any run the platform still has events of.
    pub oom_killed: bool,
    /// Swarm mode: the node the app's task runs on (its hostname).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
    /// Swarm mode: where the app's published port answers, `address:port`
    /// of that node (ports are published in host mode, so the endpoint
    /// moves with the task).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
    /// Swarm mode: the state of the app's current task (`running`,
    /// `starting`, `pending`: no node has room, ...), with its error if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task_state: Option<String>,
    /// Where a running container's main process runs on this host, so
    /// that its usage is read from its cgroup without asking the engine
    /// again ([`Backend::usage_of`]). Set only where the engine runs on
    /// this host; never sent.
    #[serde(skip)]
    pub host_process: Option<HostProcess>,
}

/// A container's main process on this host, as its engine reported it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostProcess {
    pub pid: i64,
    /// The container's full id, which names its cgroup.
    pub container_id: String,
}

/// CPU (percent of one core) and memory use of a running container
/// (absent, field by field, for one that does not run).
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Usage {
    pub cpu_percent: f64,
    pub memory_bytes: u64,
    pub memory_limit_bytes: u64,
}

/// One chunk of a container's log.
#[derive(Debug, Clone)]
pub enum LogChunk {
    Stdout(Vec<u8>),
    Stderr(Vec<u8>),
}

/// Something that happened to one of our containers (the watcher's input).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerEvent {
    pub container: String,
    /// The tenant it belongs to (none for the managed Cassandra).
    pub tenant: Option<ProviderId>,
    /// What happened: `die`, `destroy`, `health_status: unhealthy`, ...
    pub action: String,
}

/// How a [`Backend::replace_beside`] ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Replacement {
    /// The copy runs healthy; the old app is gone.
    Done,
    /// The copy did not get healthy and was removed; the old app never
    /// stopped. Why.
    RolledBack(String),
}

/// Whether a container answers its health endpoint yet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Probe {
    Healthy,
    /// Not yet, and why (the last error, the container's state).
    NotYet(String),
}

/// Where one tenant app answers now.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppEndpoint {
    pub tenant: ProviderId,
    /// `ingest` (the gateway endpoint) or `admin` (the panel).
    pub app: String,
    /// Swarm mode: the node (hostname) its task runs on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
    /// `address:port` where its published port answers while the app
    /// runs; none while it is stopped or being moved.
    pub endpoint: Option<String>,
}

/// What a platform that spans nodes adds (Swarm): its nodes, with what
/// they have and what our tasks reserve on each, drain/activate, and
/// where each app's task runs now.
#[async_trait]
pub trait Cluster: Send + Sync {
    async fn nodes(&self) -> Result<Vec<NodeInventory>>;
    async fn set_availability(&self, node: &str, availability: Availability) -> Result<()>;
    /// The endpoint of every tenant app that publishes a port, from one
    /// listing of services, tasks and nodes.
    async fn endpoints(&self) -> Result<Vec<AppEndpoint>>;
    /// The front's configuration as published for every node's front now
    /// (none yet).
    async fn published_front(&self) -> Result<Option<String>>;
    /// Publishes `text` (of `generation`) as the front's configuration;
    /// each node's front loads it when it sees it.
    async fn publish_front(&self, text: &str, generation: &str) -> Result<()>;
}

/// What the operations need from the container platform. Every call that
/// changes something is idempotent: done already counts as done.
#[async_trait]
pub trait Backend: Send + Sync {
    /// The shared infrastructure, and the network of `tenant` with whether
    /// `attach` (the Cassandra container of the tenant's cluster, if one
    /// joins tenant networks) is on it. Whether the default superuser logs
    /// in is left false: that takes CQL.
    async fn observe_infra(
        &self,
        tenant: Option<&ProviderId>,
        attach: Option<&str>,
    ) -> Result<ObservedInfra>;
    /// The networks of several tenants at once, in `tenants`' order, each
    /// with whether its `attach` container is on it: what
    /// [`Backend::observe_infra`] says of one tenant's network, for a whole
    /// reconcile pass in a few engine calls rather than a few per tenant.
    async fn observe_tenant_networks(
        &self,
        tenants: &[(ProviderId, Option<String>)],
    ) -> Result<Vec<NetworkObserved>> {
        let mut out = Vec::with_capacity(tenants.len());
        for (tenant, attach) in tenants {
            out.push(
                self.observe_infra(Some(tenant), attach.as_deref())
                    .await?
                    .tenant_network,
            );
        }
        Ok(out)
    }
    /// The tenant containers (ours, by label), of one tenant or all.
    async fn observe_containers(
        &self,
        tenant: Option<&ProviderId>,
    ) -> Result<Vec<ObservedContainer>>;
    /// The id an image name points at now ([`BackendError::ImageMissing`]
    /// when none).
    async fn image_id(&self, image: &str) -> Result<String>;
    /// Whether nothing on the host holds `port` where tenants publish.
    fn host_port_free(&self, port: u16) -> std::result::Result<(), String>;

    /// A network; `tenant` marks a tenant's own.
    async fn create_network(&self, name: &str, tenant: Option<&ProviderId>) -> Result<()>;
    async fn attach(&self, container: &str, network: &str) -> Result<()>;
    /// Detaches `detach` (if given) and removes the network.
    async fn remove_network(&self, network: &str, detach: Option<&str>) -> Result<()>;
    /// Creates (if missing) and starts the managed Cassandra container.
    async fn ensure_cassandra(&self) -> Result<()>;

    /// Creates a container from its spec (not started).
    async fn create_container(&self, spec: &ContainerSpec) -> Result<()>;
    /// Creates a container from `spec` under another name (the new copy of
    /// an app beside the old one), labelled as `spec`'s own.
    async fn create_container_named(&self, spec: &ContainerSpec, name: &str) -> Result<()> {
        let _ = (spec, name);
        Err(self.unsupported("creating a copy of a tenant app"))
    }
    /// Renames a container (running or not).
    async fn rename_container(&self, name: &str, to: &str) -> Result<()> {
        let _ = (name, to);
        Err(self.unsupported("renaming a container"))
    }
    /// Replaces the running app by a copy from `spec` that the platform
    /// starts beside it and stops the old one only once the copy is
    /// healthy (a Swarm's `start-first` rolling update), or rolls back.
    async fn replace_beside(&self, spec: &ContainerSpec) -> Result<Replacement> {
        let _ = spec;
        Err(self.unsupported("replacing an app beside itself"))
    }
    /// Creates (if missing) and starts the front: `[front] image` with host
    /// networking, the host folder `dir` mounted at its
    /// [`crate::front::runtime::CONTAINER_DIR`] (its configuration, admin
    /// socket and pid file).
    async fn ensure_front(&self, dir: &std::path::Path) -> Result<()> {
        let _ = dir;
        Err(self.unsupported("the front"))
    }
    /// Sends `signal` (`SIGUSR2`, ...) to a container's main process.
    async fn signal(&self, name: &str, signal: &str) -> Result<()> {
        let _ = (name, signal);
        Err(self.unsupported("signalling a container"))
    }
    /// The error of a call this platform does not support.
    fn unsupported(&self, what: &str) -> BackendError {
        BackendError::Api {
            what: what.to_owned(),
            why: "not supported on this platform".to_owned(),
        }
    }
    async fn start_container(&self, name: &str) -> Result<()>;
    async fn stop_container(&self, name: &str) -> Result<()>;
    async fn remove_container(&self, name: &str) -> Result<()>;
    /// Asks the container's health endpoint directly (on `port`, on
    /// `network`), or the platform's health check.
    async fn probe_health(&self, name: &str, network: &str, port: u16) -> Result<Probe>;

    /// `None` when the container does not exist.
    async fn details(&self, name: &str, network: &str) -> Result<Option<ContainerDetails>>;
    async fn usage(&self, name: &str) -> Result<Option<Usage>>;
    /// [`Backend::usage`] of a container just looked at with
    /// [`Backend::details`], without looking it up again where the
    /// details say where its process runs (`status` asks for hundreds).
    async fn usage_of(&self, details: &ContainerDetails) -> Result<Option<Usage>> {
        self.usage(&details.name).await
    }
    async fn logs(
        &self,
        name: &str,
        follow: bool,
        tail: Option<u64>,
    ) -> Result<BoxStream<'static, Result<LogChunk>>>;
    /// The platform's events about our containers, from now on. The stream
    /// ends (or fails) when the platform goes away.
    async fn events(&self) -> Result<BoxStream<'static, Result<ContainerEvent>>>;

    /// The platform's nodes, when it spans several (Swarm); `None` on one
    /// engine.
    fn cluster(&self) -> Option<&dyn Cluster> {
        None
    }
}
