//! The single-engine backend: one Docker engine through bollard, with the
//! API version negotiated (Debian's engine is API 1.41). It connects on
//! first use, so commands that need no engine work without one.
//!
//! - [`observe`]: containers by label, networks, the managed Cassandra;
//! - [`infra`]: networks and the managed Cassandra container;
//! - [`containers`]: tenant containers from their spec;
//! - [`inspect`]: details, stats, logs, health probes.

mod cgroup;
mod containers;
mod infra;
mod inspect;
mod observe;

use std::net::TcpListener;

use async_trait::async_trait;
use bollard::errors::Error as DockerError;
use bollard::models::SystemInfoCgroupVersionEnum;
use bollard::Docker;
use futures::stream::BoxStream;
use futures::StreamExt;
use tokio::sync::OnceCell;

pub use containers::create_body;
pub use containers::ulimits;
pub(crate) use containers::{health_check, spec_ulimits};
pub use inspect::http_ok;
pub(crate) use inspect::{log_chunks, log_options};

use super::{
    Backend, BackendError, ContainerDetails, ContainerEvent, LogChunk, Probe, Result, Usage,
};
use crate::config::Config;
use crate::domain::spec::ContainerSpec;
use crate::domain::state::{NetworkObserved, ObservedContainer, ObservedInfra};
use crate::domain::ProviderId;

/// One Docker engine.
#[derive(Debug)]
pub struct DockerBackend {
    config: Config,
    docker: OnceCell<Docker>,
}

pub(crate) fn is_status(e: &DockerError, code: u16) -> bool {
    matches!(e, DockerError::DockerResponseServerError { status_code, .. } if *status_code == code)
}

/// Whether a create failed because the name is taken: Docker's 409, or
/// Podman's 500 (a container's "... is already in use", a network's
/// "network already exists").
pub(crate) fn name_taken(e: &bollard::errors::Error) -> bool {
    match e {
        bollard::errors::Error::DockerResponseServerError {
            status_code,
            message,
        } => {
            *status_code == 409
                || (*status_code == 500
                    && (message.contains("already in use") || message.contains("already exists")))
        }
        _ => false,
    }
}

pub(crate) fn api(what: impl Into<String>, e: DockerError) -> BackendError {
    BackendError::Api {
        what: what.into(),
        why: e.to_string(),
    }
}

impl DockerBackend {
    pub fn new(config: Config) -> DockerBackend {
        DockerBackend {
            config,
            docker: OnceCell::new(),
        }
    }

    /// The engine's address: the config, `DOCKER_HOST` or the local socket.
    pub fn host(&self) -> String {
        self.config
            .docker
            .host
            .clone()
            .or_else(|| std::env::var("DOCKER_HOST").ok())
            .unwrap_or_else(|| "unix:///var/run/docker.sock".to_owned())
    }

    /// Whether the engine is reached through a socket, so runs on this
    /// host (its containers' processes and cgroups are this host's).
    fn on_this_host(&self) -> bool {
        let host = self.host();
        host.starts_with("unix://") || host.starts_with('/')
    }

    /// The engine, connected and version-negotiated on first use.
    pub async fn docker(&self) -> Result<&Docker> {
        self.docker.get_or_try_init(|| self.connect()).await
    }

    async fn connect(&self) -> Result<Docker> {
        let host = self.host();
        let unreachable = |why: String| BackendError::Unreachable {
            host: host.clone(),
            why,
        };
        let docker = if self.on_this_host() {
            Docker::connect_with_socket(&host, 120, bollard::API_DEFAULT_VERSION)
        } else {
            Docker::connect_with_http(&host, 120, bollard::API_DEFAULT_VERSION)
        }
        .map_err(|e| unreachable(e.to_string()))?;
        let docker = tokio::time::timeout(
            std::time::Duration::from_secs(10),
            docker.negotiate_version(),
        )
        .await
        .map_err(|_| unreachable("no answer within 10 s".into()))?
        .map_err(|e| unreachable(e.to_string()))?;
        let info = tokio::time::timeout(std::time::Duration::from_secs(10), docker.info())
            .await
            .map_err(|_| unreachable("no answer to /info within 10 s".into()))?
            .map_err(|e| unreachable(e.to_string()))?;
        let engine_uid = match self.on_this_host() {
            true => socket_owner_uid(&host).await,
            false => None,
        };
        if let Some(why) = cannot_run_tenants(&info, engine_uid) {
            return Err(BackendError::Unsupported { host, why });
        }
        Ok(docker)
    }
}

/// The user the engine behind the Unix socket `host` runs as (the
/// socket's peer credentials), `None` where they cannot be read.
async fn socket_owner_uid(host: &str) -> Option<u32> {
    let path = host.strip_prefix("unix://").unwrap_or(host);
    let stream = tokio::net::UnixStream::connect(path).await.ok()?;
    stream.peer_cred().ok().map(|c| c.uid())
}

/// Why an engine cannot run tenants as they must run, if it cannot: a
/// rootless one (Docker's says so in its security options; Podman's
/// compatible API does not, but its service then runs as a user other
/// than root: `engine_uid`). On cgroup v1 it drops the memory and pids
/// limits without a word; on cgroup v2 its containers' addresses are in
/// a network namespace of its own, where the provisioner's health probe
/// of a tenant's apps cannot reach (and an address that is not on this
/// host must not be probed: the traffic would leave the host).
fn cannot_run_tenants(
    info: &bollard::models::SystemInfo,
    engine_uid: Option<u32>,
) -> Option<String> {
    let rootless = engine_uid.is_some_and(|uid| uid != 0)
        || info
            .security_options
            .iter()
            .flatten()
            .any(|o| o.split(',').any(|field| field == "name=rootless"));
    if !rootless {
        return None;
    }
    let cgroup_v1 = info.cgroup_version == Some(SystemInfoCgroupVersionEnum::_1);
    Some(if cgroup_v1 {
        "it runs rootless on cgroup v1, which drops the tenants' memory and pids limits \
         (rootless limits need cgroup v2 with the memory and pids controllers delegated to \
         the engine's user); run a rootful engine (README, \"Podman\")"
            .to_owned()
    } else {
        "it runs rootless: its containers' addresses are in a network namespace of its own, \
         which the provisioner cannot reach to probe the tenant apps' health; run a rootful \
         engine (README, \"Podman\")"
            .to_owned()
    })
}

#[async_trait]
impl Backend for DockerBackend {
    async fn observe_infra(
        &self,
        tenant: Option<&ProviderId>,
        attach: Option<&str>,
    ) -> Result<ObservedInfra> {
        observe::observe_infra(self.docker().await?, &self.config, tenant, attach).await
    }

    async fn observe_containers(
        &self,
        tenant: Option<&ProviderId>,
    ) -> Result<Vec<ObservedContainer>> {
        observe::observe_containers(self.docker().await?, tenant).await
    }

    async fn observe_tenant_networks(
        &self,
        tenants: &[(ProviderId, Option<String>)],
    ) -> Result<Vec<NetworkObserved>> {
        let wanted: Vec<_> = tenants
            .iter()
            .map(|(t, attach)| (self.config.tenant_network(t), attach.clone()))
            .collect();
        observe::observe_networks(self.docker().await?, &wanted).await
    }

    async fn image_id(&self, image: &str) -> Result<String> {
        match self.docker().await?.inspect_image(image).await {
            Ok(i) => i.id.ok_or_else(|| BackendError::ImageMissing {
                image: image.to_owned(),
            }),
            Err(e) if is_status(&e, 404) => Err(BackendError::ImageMissing {
                image: image.to_owned(),
            }),
            Err(e) => Err(api(format!("inspect image {image}"), e)),
        }
    }

    /// A bind test on the address tenants publish on (the engine is local).
    fn host_port_free(&self, port: u16) -> std::result::Result<(), String> {
        TcpListener::bind((self.config.ports.bind_address.as_str(), port))
            .map(drop)
            .map_err(|e| e.to_string())
    }

    async fn create_network(&self, name: &str, tenant: Option<&ProviderId>) -> Result<()> {
        infra::create_network(
            self.docker().await?,
            &self.config,
            self.on_this_host(),
            name,
            tenant,
        )
        .await
    }

    async fn attach(&self, container: &str, network: &str) -> Result<()> {
        infra::attach(self.docker().await?, container, network).await
    }

    async fn remove_network(&self, network: &str, detach: Option<&str>) -> Result<()> {
        infra::remove_network(self.docker().await?, network, detach).await
    }

    async fn ensure_cassandra(&self) -> Result<()> {
        infra::ensure_cassandra(self.docker().await?, &self.config).await
    }

    async fn create_container(&self, spec: &ContainerSpec) -> Result<()> {
        let docker = self.docker().await?;
        containers::create_container(docker, &spec.name, create_body(spec)).await
    }

    async fn create_container_named(&self, spec: &ContainerSpec, name: &str) -> Result<()> {
        let docker = self.docker().await?;
        containers::create_container(docker, name, create_body(spec)).await
    }

    async fn rename_container(&self, name: &str, to: &str) -> Result<()> {
        containers::rename_container(self.docker().await?, name, to).await
    }

    async fn ensure_front(&self, dir: &std::path::Path) -> Result<()> {
        infra::ensure_front(self.docker().await?, &self.config, dir).await
    }

    async fn signal(&self, name: &str, signal: &str) -> Result<()> {
        containers::signal(self.docker().await?, name, signal).await
    }

    async fn start_container(&self, name: &str) -> Result<()> {
        containers::start_container(self.docker().await?, name).await
    }

    async fn stop_container(&self, name: &str) -> Result<()> {
        containers::stop_container(self.docker().await?, name).await
    }

    async fn remove_container(&self, name: &str) -> Result<()> {
        containers::remove_container(self.docker().await?, name).await
    }

    async fn probe_health(&self, name: &str, network: &str, port: u16) -> Result<Probe> {
        inspect::probe_health(
            self.docker().await?,
            self.on_this_host(),
            name,
            network,
            port,
        )
        .await
    }

    async fn details(&self, name: &str, network: &str) -> Result<Option<ContainerDetails>> {
        inspect::details(self.docker().await?, self.on_this_host(), name, network).await
    }

    async fn usage(&self, name: &str) -> Result<Option<Usage>> {
        inspect::usage(self.docker().await?, self.on_this_host(), name).await
    }

    async fn usage_of(&self, details: &ContainerDetails) -> Result<Option<Usage>> {
        inspect::usage_of(self.docker().await?, details).await
    }

    async fn logs(
        &self,
        name: &str,
        follow: bool,
        tail: Option<u64>,
    ) -> Result<BoxStream<'static, Result<LogChunk>>> {
        Ok(inspect::logs(self.docker().await?, name, follow, tail).boxed())
    }

    async fn events(&self) -> Result<BoxStream<'static, Result<ContainerEvent>>> {
        Ok(inspect::events(self.docker().await?).boxed())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(status_code: u16, message: &str) -> DockerError {
        DockerError::DockerResponseServerError {
            status_code,
            message: message.to_owned(),
        }
    }

    fn info(options: &[&str], cgroup: &str) -> bollard::models::SystemInfo {
        serde_json::from_value(serde_json::json!({
            "SecurityOptions": options,
            "CgroupVersion": cgroup,
        }))
        .unwrap()
    }

    #[test]
    fn a_rootless_engine_is_refused_naming_what_it_lacks() {
        let rootful = info(&["name=seccomp,profile=default"], "1");
        assert_eq!(cannot_run_tenants(&rootful, Some(0)), None);
        assert_eq!(cannot_run_tenants(&rootful, None), None);
        // Podman's service run by a user says nothing in its options
        assert!(cannot_run_tenants(&rootful, Some(1000))
            .unwrap()
            .contains("cgroup v1"));
        let v1 = info(&["name=seccomp,profile=default", "name=rootless"], "1");
        assert!(cannot_run_tenants(&v1, None).unwrap().contains("cgroup v1"));
        let v2 = info(&["name=rootless"], "2");
        assert!(cannot_run_tenants(&v2, None)
            .unwrap()
            .contains("network namespace of its own"));
    }

    #[test]
    fn a_taken_name_is_docker_s_409_or_podman_s_500() {
        assert!(name_taken(&answer(
            409,
            "Conflict. The container name is already in use"
        )));
        assert!(name_taken(&answer(
            500,
            "creating container storage: the container name \"pe-cassandra\" is already in use by 825badee1"
        )));
        assert!(name_taken(&answer(
            500,
            "network name pe-net already used: network already exists"
        )));
        assert!(!name_taken(&answer(500, "no space left on device")));
        assert!(!name_taken(&answer(404, "no such image")));
    }

    #[test]
    fn limits_are_soft_and_hard_alike_and_an_unset_one_is_left_out() {
        let list = containers::ulimits(&[("nofile", Some(4096)), ("nproc", None)]).unwrap();
        assert_eq!(list.len(), 1);
        assert_eq!(list[0].name.as_deref(), Some("nofile"));
        assert_eq!((list[0].soft, list[0].hard), (Some(4096), Some(4096)));
        assert!(containers::ulimits(&[("nproc", None)]).is_none());
    }
}
