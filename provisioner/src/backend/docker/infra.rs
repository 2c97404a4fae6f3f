//! Changing the engine's networks (a tenant's bridge gets its subnet from
//! `[docker] tenant_subnets`) and the managed Cassandra container:
//! create (409 = exists), attach (attached = done), detach and remove
//! (404 = done), and the node's hardened container with its volume.

use std::collections::HashMap;
use std::path::Path;

use bollard::models::{
    ContainerCreateBody, EndpointSettings, HealthConfig, HostConfig, Ipam, IpamConfig,
    NetworkConnectRequest, NetworkCreateRequest, NetworkDisconnectRequest, NetworkingConfig,
    PortBinding, RestartPolicy, RestartPolicyNameEnum, VolumeCreateRequest,
};
use bollard::Docker;

use super::containers::{create_container, log_config, secs, start_container, ulimits};
use super::observe::{dedupe_network, networks_named, observe_network};
use super::{api, is_status, name_taken};
use crate::backend::{BackendError, Result};
use crate::config::Config;
use crate::domain::{subnets, ProviderId};
use crate::front::runtime::CONTAINER_DIR;
use crate::labels;
use tenant_common::trusted_proxies::{self, Network};

/// The labels of what the provisioner creates besides tenant containers:
/// `[docker].extra_labels`, ours, and the role.
pub(super) fn managed_labels(config: &Config, role: &str) -> HashMap<String, String> {
    let mut labels: HashMap<String, String> =
        config.docker.extra_labels.clone().into_iter().collect();
    labels.insert(labels::MANAGED.to_owned(), "1".to_owned());
    labels.insert(labels::ROLE.to_owned(), role.to_owned());
    labels
}

/// Creates a network (409 = exists): a bridge on one engine, an
/// attachable overlay in Swarm mode (services on every node and the
/// managed Cassandra container on the manager join it); `tenant` labels a
/// tenant's own.
pub(super) async fn create_network(
    docker: &Docker,
    config: &Config,
    on_this_host: bool,
    name: &str,
    tenant: Option<&ProviderId>,
) -> Result<()> {
    let mut labels = managed_labels(config, labels::ROLE_NETWORK);
    if let Some(t) = tenant {
        labels.insert(labels::TENANT.to_owned(), t.to_string());
    }
    let request = NetworkCreateRequest {
        name: name.to_owned(),
        driver: Some(if config.swarm() { "overlay" } else { "bridge" }.to_owned()),
        attachable: config.swarm().then_some(true),
        labels: Some(labels),
        ..Default::default()
    };
    let pool = match tenant {
        Some(_) => config
            .tenant_subnet_pool()
            .map_err(|why| BackendError::Api {
                what: format!("create network {name}"),
                why,
            })?,
        None => None,
    };
    if networks_named(docker, name).await?.is_empty() {
        let created = match pool {
            Some((pool, prefix)) => {
                create_in_pool(docker, request, &pool, prefix, on_this_host).await
            }
            None => docker
                .create_network(request)
                .await
                .map(|_| ())
                .map_err(CreateError::Docker),
        };
        match created {
            Ok(()) => {}
            Err(CreateError::Docker(e)) if name_taken(&e) => {}
            Err(CreateError::Docker(e)) => return Err(api(format!("create network {name}"), e)),
            Err(CreateError::PoolUsedUp { pool, prefix }) => {
                return Err(BackendError::SubnetsExhausted {
                    network: name.to_owned(),
                    pool,
                    prefix,
                })
            }
        }
    }
    dedupe_network(docker, name).await.map(|_| ())
}

/// Why a network in the pool was not made.
enum CreateError {
    Docker(bollard::errors::Error),
    PoolUsedUp { pool: String, prefix: u8 },
}

/// Another start may take the subnet chosen between the listing and the
/// create, and a network being removed holds its subnet a moment after it
/// left the listing: so many tries, each with a fresh listing and past
/// every subnet refused before (the suite's concurrent starts and destroys
/// used up 8 tries of the same subnet).
const SUBNET_TRIES: usize = 32;

/// Creates the network with the pool's first subnet that none of the
/// engine's networks overlaps ([`crate::domain::subnets::first_free`]),
/// nor, for an engine on this host, any network this host routes to
/// (another engine's bridges, such as Podman's, a VPN's, the LAN's),
/// as the engine's own default pools are chosen.
async fn create_in_pool(
    docker: &Docker,
    mut request: NetworkCreateRequest,
    pool: &Network,
    prefix: u8,
    on_this_host: bool,
) -> std::result::Result<(), CreateError> {
    let mut refused: Vec<Network> = Vec::new();
    for attempt in 1..=SUBNET_TRIES {
        let mut taken: Vec<Network> = docker
            .list_networks(None::<bollard::query_parameters::ListNetworksOptions>)
            .await
            .map_err(CreateError::Docker)?
            .into_iter()
            .flat_map(|n| n.ipam.and_then(|i| i.config).unwrap_or_default())
            .filter_map(|c| c.subnet?.parse().ok())
            .collect();
        if on_this_host {
            taken.extend(host_routes());
        }
        taken.extend(refused.iter().copied());
        let Some(subnet) = subnets::first_free(pool, prefix, &taken) else {
            return Err(CreateError::PoolUsedUp {
                pool: pool.to_string(),
                prefix,
            });
        };
        request.ipam = Some(Ipam {
            config: Some(vec![IpamConfig {
                subnet: Some(subnet.to_string()),
                ..Default::default()
            }]),
            ..Default::default()
        });
        match docker.create_network(request.clone()).await {
            Ok(_) => return Ok(()),
            Err(e) if subnet_taken(&e) && attempt < SUBNET_TRIES => {
                tracing::debug!(network = request.name, %subnet, error = %e, "subnet taken meanwhile; choosing again");
                refused.push(subnet);
            }
            Err(e) => return Err(CreateError::Docker(e)),
        }
    }
    unreachable!("the last try returns")
}

/// Whether a network create failed for its subnet: Docker's 403 "Pool
/// overlaps with other one on this address space", Podman's 500 "subnet
/// ... is already used on the host or by another config".
fn subnet_taken(e: &bollard::errors::Error) -> bool {
    match e {
        bollard::errors::Error::DockerResponseServerError {
            status_code,
            message,
        } => *status_code == 403 || (*status_code == 500 && message.contains("already used")),
        _ => false,
    }
}

/// The networks this host routes to (none if its route table cannot be
/// read: the engine's own check then stands alone).
fn host_routes() -> Vec<Network> {
    let table = std::fs::read_to_string(trusted_proxies::ROUTE_TABLE).unwrap_or_default();
    trusted_proxies::routed_networks(&table).unwrap_or_else(|why| {
        tracing::warn!(%why, "cannot read this host's routes");
        Vec::new()
    })
}

/// Attaches `container` to `network` under its own name as an alias; an
/// endpoint that exists already counts as done.
pub(super) async fn attach(docker: &Docker, container: &str, network: &str) -> Result<()> {
    let Some(id) = dedupe_network(docker, network).await? else {
        return Err(BackendError::NetworkGone {
            network: network.to_owned(),
        });
    };
    let request = NetworkConnectRequest {
        container: container.to_owned(),
        endpoint_config: Some(EndpointSettings {
            aliases: Some(vec![container.to_owned()]),
            ..Default::default()
        }),
    };
    match docker.connect_network(&id, request).await {
        Ok(()) => Ok(()),
        // Docker's 403 or 409, Podman's 500 "network is already
        // connected": attached already, if the network says so.
        Err(e) if is_status(&e, 403) || is_status(&e, 409) || is_status(&e, 500) => {
            if observe_network(docker, network, Some(container))
                .await?
                .cassandra_attached
            {
                Ok(())
            } else {
                Err(api(format!("attach {container} to {network}"), e))
            }
        }
        Err(e) => Err(api(format!("attach {container} to {network}"), e)),
    }
}

/// Detaches `container` (if given and attached) and removes `network`; a
/// network that is gone counts as done.
pub(super) async fn remove_network(
    docker: &Docker,
    network: &str,
    container: Option<&str>,
) -> Result<()> {
    let Some(id) = dedupe_network(docker, network).await? else {
        return Ok(());
    };
    if let Some(container) = container {
        let request = NetworkDisconnectRequest {
            container: container.to_owned(),
            force: Some(true),
        };
        match docker.disconnect_network(&id, request).await {
            Ok(()) => {}
            // not attached, or no such network or container
            Err(e) if is_status(&e, 404) || is_status(&e, 403) || is_status(&e, 500) => {}
            Err(e) => return Err(api(format!("detach {container} from {network}"), e)),
        }
    }
    match docker.remove_network(&id).await {
        Ok(()) => Ok(()),
        Err(e) if is_status(&e, 404) => Ok(()),
        Err(e) => Err(api(format!("remove network {network}"), e)),
    }
}

pub(super) async fn require_image(docker: &Docker, image: &str) -> Result<()> {
    match docker.inspect_image(image).await {
        Ok(_) => Ok(()),
        Err(e) if is_status(&e, 404) => Err(BackendError::ImageMissing {
            image: image.to_owned(),
        }),
        Err(e) => Err(api(format!("inspect image {image}"), e)),
    }
}

/// Creates (409 = exists) and starts (304 = running) the managed Cassandra
/// with its data on a named volume, CQL published on loopback only (in Swarm mode on the
/// manager's address: [`Config::managed_cql_host`]), and
/// hardened as far as Cassandra allows (README, "Security"): no
/// capabilities, no new privileges, a read-only root filesystem with a
/// tmpfs `/tmp` (the entrypoint renders `cassandra.yaml` there, the JVM
/// keeps its GC log there), memory and pids limits, a health check on the
/// CQL port.
pub(super) async fn ensure_cassandra(docker: &Docker, config: &Config) -> Result<()> {
    let c = &config.cassandra;
    let image = config.platform_image(&c.image);
    require_image(docker, &image).await?;
    let managed = managed_labels(config, labels::ROLE_CASSANDRA);
    let volume = VolumeCreateRequest {
        name: Some(c.volume.clone()),
        labels: Some(managed.clone()),
        ..Default::default()
    };
    docker
        .create_volume(volume)
        .await
        .map_err(|e| api(format!("create volume {}", c.volume), e))?;
    let body = ContainerCreateBody {
        image: Some(image),
        user: Some("999:999".to_owned()),
        labels: Some(managed),
        env: Some(vec![format!("CASSANDRA_HEAP={}", c.heap)]),
        exposed_ports: Some(vec!["9042/tcp".to_owned()]),
        host_config: Some(HostConfig {
            binds: Some(vec![format!("{}:/var/lib/cassandra", c.volume)]),
            port_bindings: Some(HashMap::from([(
                "9042/tcp".to_owned(),
                Some(vec![PortBinding {
                    host_ip: Some(config.managed_cql_host()),
                    host_port: Some(c.host_port.to_string()),
                }]),
            )])),
            network_mode: Some(config.docker.network.clone()),
            restart_policy: Some(RestartPolicy {
                name: Some(RestartPolicyNameEnum::UNLESS_STOPPED),
                maximum_retry_count: None,
            }),
            memory: Some(c.memory_mb * 1024 * 1024),
            memory_swap: Some(c.memory_mb * 1024 * 1024),
            pids_limit: Some(c.pids),
            // The host's hard limits: no engine's default above them.
            ulimits: ulimits(&[
                ("nofile", config.limits.nofile_max),
                ("nproc", config.limits.nproc_max),
            ]),
            readonly_rootfs: Some(true),
            tmpfs: Some(HashMap::from([(
                "/tmp".to_owned(),
                "rw,noexec,nosuid,nodev,size=64m".to_owned(),
            )])),
            cap_drop: Some(vec!["ALL".to_owned()]),
            security_opt: Some(vec!["no-new-privileges:true".to_owned()]),
            log_config: Some(log_config()),
            ..Default::default()
        }),
        healthcheck: Some(HealthConfig {
            // bash's /dev/tcp: the image has no CQL client, and the native
            // transport listens only once the node serves CQL.
            test: Some(vec![
                "CMD".into(),
                "bash".into(),
                "-c".into(),
                "exec 3<>/dev/tcp/127.0.0.1/9042".into(),
            ]),
            interval: Some(secs(config.health.interval_secs.max(1))),
            timeout: Some(secs(5)),
            retries: Some(3),
            start_period: Some(secs(180)),
            start_interval: None,
        }),
        networking_config: Some(NetworkingConfig {
            endpoints_config: Some(HashMap::from([(
                config.docker.network.clone(),
                EndpointSettings {
                    aliases: Some(vec![c.container.clone()]),
                    ..Default::default()
                },
            )])),
        }),
        ..Default::default()
    };
    create_container(docker, &c.container, body).await?;
    start_container(docker, &c.container).await
}

/// Creates (409 = exists) and starts (304 = running) the front: its image
/// runs HAProxy in master-worker mode on `CONTAINER_DIR/haproxy.cfg`
/// (`-W`: a SIGUSR2 reloads it, the new worker taking the listening
/// sockets over; images/front/README.md), with host networking so that it binds the
/// tenants' ports on the host, the host folder `dir` mounted at
/// [`CONTAINER_DIR`], and the hardening of the tenant containers: a
/// read-only root, no capabilities (the ports are above 1024), no new
/// privileges.
pub(super) async fn ensure_front(docker: &Docker, config: &Config, dir: &Path) -> Result<()> {
    let front = &config.front;
    require_image(docker, &front.image).await?;
    let body = ContainerCreateBody {
        image: Some(front.image.clone()),
        labels: Some(managed_labels(config, labels::ROLE_FRONT)),
        host_config: Some(HostConfig {
            network_mode: Some("host".to_owned()),
            binds: Some(vec![format!("{}:{CONTAINER_DIR}", dir.display())]),
            restart_policy: Some(RestartPolicy {
                name: Some(RestartPolicyNameEnum::UNLESS_STOPPED),
                maximum_retry_count: None,
            }),
            readonly_rootfs: Some(true),
            cap_drop: Some(vec!["ALL".to_owned()]),
            security_opt: Some(vec!["no-new-privileges:true".to_owned()]),
            log_config: Some(log_config()),
            ..Default::default()
        }),
        ..Default::default()
    };
    create_container(docker, &front.container, body).await?;
    start_container(docker, &front.container).await
}
