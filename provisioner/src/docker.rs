//! The Docker driver (bollard): the shared network, the managed Cassandra
//! container with its named volume and its hardening, the tenant networks
//! (one per tenant, with the Cassandra container attached), and the tenant
//! containers: their desired configuration (and its hash), their secrets
//! as read-only files, observation by label, create, start, stop, remove,
//! health, restarts and OOM kills, logs and stats. A 404 on remove/stop and
//! a 409 on create count as done.

use std::collections::HashMap;

use bollard::errors::Error as DockerError;
use bollard::models::{
    ContainerCreateBody, EndpointSettings, HealthConfig, HealthStatusEnum, HostConfig,
    HostConfigLogConfig, NetworkConnectRequest, NetworkCreateRequest, NetworkDisconnectRequest,
    NetworkingConfig, PortBinding, RestartPolicy, RestartPolicyNameEnum, VolumeCreateRequest,
};
use bollard::query_parameters::{
    CreateContainerOptions, InspectContainerOptions, ListContainersOptions, RemoveContainerOptions,
    StatsOptions, StopContainerOptions,
};
use bollard::Docker;
use futures::StreamExt;
use sha2::{Digest, Sha256};

use crate::config::{CassandraMode, Config};
use crate::error::{Error, Result};
use crate::labels;
use crate::plan::{
    CassandraObserved, Health, NetworkObserved, ObservedContainer, ObservedInfra, Role,
};
use crate::state::ProviderRecord;

/// The container ports the tenant apps listen on.
pub const INGEST_PORT: u16 = 6000;
pub const INGEST_HEALTH_PORT: u16 = 9100;
pub const ADMIN_PORT: u16 = 8080;

/// Connects to the engine (config, `DOCKER_HOST` or the local socket) and
/// checks that it answers.
pub async fn connect(config: &Config) -> Result<Docker> {
    let host = config
        .docker
        .host
        .clone()
        .or_else(|| std::env::var("DOCKER_HOST").ok())
        .unwrap_or_else(|| "unix:///var/run/docker.sock".to_owned());
    let unreachable = |why: String| Error::EngineUnreachable {
        host: host.clone(),
        why,
    };
    let docker = if host.starts_with("unix://") || host.starts_with('/') {
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
    Ok(docker)
}

pub fn is_status(e: &DockerError, code: u16) -> bool {
    matches!(e, DockerError::DockerResponseServerError { status_code, .. } if *status_code == code)
}

fn label_filter(pairs: &[String]) -> HashMap<String, Vec<String>> {
    HashMap::from([("label".to_owned(), pairs.to_vec())])
}

/// Every tenant container (ours, by label), optionally of one tenant.
pub async fn observe_containers(
    docker: &Docker,
    tenant: Option<&str>,
) -> Result<Vec<ObservedContainer>> {
    let mut filter = vec![labels::TENANT.to_owned()];
    if let Some(t) = tenant {
        filter = vec![format!("{}={t}", labels::TENANT)];
    }
    let options = ListContainersOptions {
        all: true,
        filters: Some(label_filter(&filter)),
        ..Default::default()
    };
    let list = docker
        .list_containers(Some(options))
        .await
        .map_err(|e| Error::docker("list containers", e))?;
    let mut out: Vec<ObservedContainer> = list
        .into_iter()
        .map(|c| {
            let labels = c.labels.unwrap_or_default();
            let status = c.status.unwrap_or_default();
            let running = matches!(
                c.state,
                Some(bollard::models::ContainerSummaryStateEnum::RUNNING)
            );
            let health = if !running {
                Health::Unknown
            } else if status.contains("(healthy)") {
                Health::Healthy
            } else if status.contains("(unhealthy)") {
                Health::Unhealthy
            } else if status.contains("starting") {
                Health::Starting
            } else {
                Health::Unknown
            };
            ObservedContainer {
                id: c.id.unwrap_or_default(),
                name: c
                    .names
                    .and_then(|n| n.into_iter().next())
                    .unwrap_or_default()
                    .trim_start_matches('/')
                    .to_owned(),
                tenant: labels.get(labels::TENANT).cloned().unwrap_or_default(),
                role: labels.get(labels::ROLE).cloned().unwrap_or_default(),
                running,
                health,
                config_hash: labels.get(labels::CONFIG_HASH).cloned(),
            }
        })
        .collect();
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

/// The shared network, (managed mode) the Cassandra container, and the
/// network of `tenant`. Whether the default superuser logs in is left
/// false: that takes CQL, which the caller ([`crate::execute`]) asks.
pub async fn observe_infra(
    docker: &Docker,
    config: &Config,
    tenant: Option<&str>,
) -> Result<ObservedInfra> {
    let network = config.docker.network.clone();
    let network_exists = observe_network(docker, &network, None).await?.exists;
    let attach_container = config.attached_cassandra().map(str::to_owned);
    let tenant_network = match tenant {
        Some(t) => {
            observe_network(
                docker,
                &config.tenant_network(t),
                attach_container.as_deref(),
            )
            .await?
        }
        None => NetworkObserved::default(),
    };
    let container = config.cassandra.container.clone();
    let mut cassandra_outdated = false;
    let mut cassandra_unhardened = false;
    let cassandra = match config.cassandra.mode {
        CassandraMode::External => CassandraObserved::External,
        CassandraMode::Managed => match docker
            .inspect_container(&container, None::<InspectContainerOptions>)
            .await
        {
            Ok(i) => {
                cassandra_outdated =
                    built_from_other_image(docker, i.image.as_deref(), &config.cassandra.image)
                        .await?;
                // Created before the container was hardened (a read-only
                // root stands for the rest of it).
                cassandra_unhardened =
                    i.host_config.as_ref().and_then(|h| h.readonly_rootfs) != Some(true);
                if i.state.as_ref().and_then(|s| s.running).unwrap_or(false) {
                    CassandraObserved::Running
                } else {
                    CassandraObserved::Stopped
                }
            }
            Err(e) if is_status(&e, 404) => CassandraObserved::Missing,
            Err(e) => return Err(Error::docker(format!("inspect container {container}"), e)),
        },
    };
    Ok(ObservedInfra {
        network,
        network_exists,
        cassandra_container: container,
        cassandra,
        cassandra_outdated,
        cassandra_unhardened,
        default_superuser_login: false,
        attach_container,
        tenant_network,
    })
}

/// The ids of the networks named exactly `name`, the one to keep first.
///
/// The engine (API 1.41) lets two creates of one name both succeed, and a
/// create still in flight when its provisioner was killed can race the
/// next run's; every later call by name then fails as "ambiguous". The
/// oldest network (then the smallest id) is the one every caller keeps.
async fn networks_named(docker: &Docker, name: &str) -> Result<Vec<String>> {
    let options = bollard::query_parameters::ListNetworksOptions {
        filters: Some(HashMap::from([("name".to_owned(), vec![name.to_owned()])])),
    };
    let mut found: Vec<(String, String)> = docker
        .list_networks(Some(options))
        .await
        .map_err(|e| Error::docker(format!("list networks named {name}"), e))?
        .into_iter()
        // the filter matches substrings
        .filter(|n| n.name.as_deref() == Some(name))
        .filter_map(|n| Some((n.created.unwrap_or_default(), n.id?)))
        .collect();
    found.sort();
    Ok(found.into_iter().map(|(_, id)| id).collect())
}

/// Removes every network named `name` but the one to keep; returns its id.
/// A duplicate that something uses already stays (its removal fails); it is
/// tried again next time.
async fn dedupe_network(docker: &Docker, name: &str) -> Result<Option<String>> {
    let mut ids = networks_named(docker, name).await?.into_iter();
    let keep = ids.next();
    for extra in ids {
        match docker.remove_network(&extra).await {
            Ok(()) => tracing::info!(network = name, id = %extra, "removed a duplicate network"),
            Err(e) => {
                tracing::warn!(network = name, id = %extra, error = %e, "cannot remove a duplicate network")
            }
        }
    }
    Ok(keep)
}

/// Whether network `name` exists, and whether `container` is attached.
async fn observe_network(
    docker: &Docker,
    name: &str,
    container: Option<&str>,
) -> Result<NetworkObserved> {
    let Some(id) = networks_named(docker, name).await?.into_iter().next() else {
        return Ok(NetworkObserved::default());
    };
    match docker.inspect_network(&id, None).await {
        Ok(n) => Ok(NetworkObserved {
            exists: true,
            cassandra_attached: container.is_some_and(|c| {
                n.containers
                    .unwrap_or_default()
                    .values()
                    .any(|e| e.name.as_deref() == Some(c))
            }),
        }),
        Err(e) if is_status(&e, 404) => Ok(NetworkObserved::default()),
        Err(e) => Err(Error::docker(format!("inspect network {name}"), e)),
    }
}

/// Whether a container whose image id is `container_image` was created from
/// another build than the one `image` (a name) points at now. An image name
/// that no longer resolves is not a drift to report: `start` says it is
/// missing when it needs it.
async fn built_from_other_image(
    docker: &Docker,
    container_image: Option<&str>,
    image: &str,
) -> Result<bool> {
    let Some(container_image) = container_image else {
        return Ok(false);
    };
    match docker.inspect_image(image).await {
        Ok(current) => Ok(current
            .id
            .as_deref()
            .is_some_and(|id| id != container_image)),
        Err(e) if is_status(&e, 404) => Ok(false),
        Err(e) => Err(Error::docker(format!("inspect image {image}"), e)),
    }
}

/// The labels of what the provisioner creates besides tenant containers:
/// `[docker].extra_labels`, ours, and the role.
fn managed_labels(config: &Config, role: &str) -> HashMap<String, String> {
    let mut labels: HashMap<String, String> =
        config.docker.extra_labels.clone().into_iter().collect();
    labels.insert(labels::MANAGED.to_owned(), "1".to_owned());
    labels.insert(labels::ROLE.to_owned(), role.to_owned());
    labels
}

/// Creates a bridge network (409 = exists); `tenant` labels a tenant's own.
pub async fn create_network(
    docker: &Docker,
    config: &Config,
    name: &str,
    tenant: Option<&str>,
) -> Result<()> {
    let mut labels = managed_labels(config, labels::ROLE_NETWORK);
    if let Some(t) = tenant {
        labels.insert(labels::TENANT.to_owned(), t.to_owned());
    }
    let request = NetworkCreateRequest {
        name: name.to_owned(),
        driver: Some("bridge".to_owned()),
        labels: Some(labels),
        ..Default::default()
    };
    if networks_named(docker, name).await?.is_empty() {
        match docker.create_network(request).await {
            Ok(_) => {}
            Err(e) if is_status(&e, 409) => {}
            Err(e) => return Err(Error::docker(format!("create network {name}"), e)),
        }
    }
    dedupe_network(docker, name).await.map(|_| ())
}

/// Attaches `container` to `network` under its own name as an alias; an
/// endpoint that exists already counts as done.
pub async fn attach(docker: &Docker, container: &str, network: &str) -> Result<()> {
    let Some(id) = dedupe_network(docker, network).await? else {
        return Err(Error::Usage(format!(
            "network {network} is gone; run start again"
        )));
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
        Err(e) if is_status(&e, 403) || is_status(&e, 409) => {
            if observe_network(docker, network, Some(container))
                .await?
                .cassandra_attached
            {
                Ok(())
            } else {
                Err(Error::docker(format!("attach {container} to {network}"), e))
            }
        }
        Err(e) => Err(Error::docker(format!("attach {container} to {network}"), e)),
    }
}

/// Detaches `container` (if given and attached) and removes `network`; a
/// network that is gone counts as done.
pub async fn remove_network(docker: &Docker, network: &str, container: Option<&str>) -> Result<()> {
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
            Err(e) => {
                return Err(Error::docker(
                    format!("detach {container} from {network}"),
                    e,
                ))
            }
        }
    }
    match docker.remove_network(&id).await {
        Ok(()) => Ok(()),
        Err(e) if is_status(&e, 404) => Ok(()),
        Err(e) => Err(Error::docker(format!("remove network {network}"), e)),
    }
}

async fn require_image(docker: &Docker, image: &str) -> Result<()> {
    match docker.inspect_image(image).await {
        Ok(_) => Ok(()),
        Err(e) if is_status(&e, 404) => Err(Error::ImageMissing {
            image: image.to_owned(),
        }),
        Err(e) => Err(Error::docker(format!("inspect image {image}"), e)),
    }
}

/// Creates (409 = exists) and starts (304 = running) the managed Cassandra
/// with its data on a named volume, CQL published on loopback only, and
/// hardened as far as Cassandra allows (README, "Security"): no
/// capabilities, no new privileges, a read-only root filesystem with a
/// tmpfs `/tmp` (the entrypoint renders `cassandra.yaml` there, the JVM
/// keeps its GC log there), memory and pids limits, a health check on the
/// CQL port.
pub async fn ensure_cassandra(docker: &Docker, config: &Config) -> Result<()> {
    let c = &config.cassandra;
    require_image(docker, &c.image).await?;
    let managed = managed_labels(config, labels::ROLE_CASSANDRA);
    let volume = VolumeCreateRequest {
        name: Some(c.volume.clone()),
        labels: Some(managed.clone()),
        ..Default::default()
    };
    docker
        .create_volume(volume)
        .await
        .map_err(|e| Error::docker(format!("create volume {}", c.volume), e))?;
    let body = ContainerCreateBody {
        image: Some(c.image.clone()),
        user: Some("999:999".to_owned()),
        labels: Some(managed),
        env: Some(vec![format!("CASSANDRA_HEAP={}", c.heap)]),
        exposed_ports: Some(vec!["9042/tcp".to_owned()]),
        host_config: Some(HostConfig {
            binds: Some(vec![format!("{}:/var/lib/cassandra", c.volume)]),
            port_bindings: Some(HashMap::from([(
                "9042/tcp".to_owned(),
                Some(vec![PortBinding {
                    host_ip: Some("127.0.0.1".to_owned()),
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

fn secs(s: u64) -> i64 {
    (s * 1_000_000_000) as i64
}

/// Logs kept by the engine: 3 files of 10 MiB.
fn log_config() -> HostConfigLogConfig {
    HostConfigLogConfig {
        typ: Some("json-file".to_owned()),
        config: Some(HashMap::from([
            ("max-size".to_owned(), "10m".to_owned()),
            ("max-file".to_owned(), "3".to_owned()),
        ])),
    }
}

/// Where a tenant container finds its secrets: a read-only bind mount of
/// the host folder [`crate::secrets`] writes.
pub const SECRETS_MOUNT: &str = "/run/secrets";

/// The desired configuration of one tenant container, and its hash (put on
/// the container as a label, so drift shows as a different hash).
///
/// The secrets (the tenant role's password, the panel's session secret) are
/// not in the environment, where `docker inspect` shows them: they are files
/// in `secrets_dir` ([`crate::secrets::write`]), mounted read-only at
/// [`SECRETS_MOUNT`]. Their content is not part of the hash.
pub fn tenant_container(
    config: &Config,
    record: &ProviderRecord,
    role: Role,
    host_port: u16,
    secrets_dir: &std::path::Path,
) -> (ContainerCreateBody, String) {
    let id = &record.id;
    let keyspace = format!("tenant_{id}");
    let mut env = vec![
        format!("TENANT_ID={id}"),
        format!("TENANT_KEYSPACE={keyspace}"),
        format!(
            "CASSANDRA_CONTACT_POINTS={}",
            config.container_contact_points().join(",")
        ),
        format!("CASSANDRA_USERNAME={keyspace}"),
        format!(
            "CASSANDRA_PASSWORD_FILE={SECRETS_MOUNT}/{}",
            crate::secrets::CASSANDRA_PASSWORD
        ),
        format!("LOG_FORMAT={}", config.log_format),
    ];
    if config.attached_cassandra().is_some() {
        // The node advertises its address on its own network only.
        env.push("CASSANDRA_TRANSLATE_TO_CONTACT_POINT=true".to_owned());
    }
    let (port, binary) = match role {
        Role::Ingest => (INGEST_PORT, "/ingest"),
        Role::Admin => {
            env.push(format!(
                "ADMIN_SESSION_SECRET_FILE={SECRETS_MOUNT}/{}",
                crate::secrets::SESSION_SECRET
            ));
            (ADMIN_PORT, "/admin")
        }
    };
    let network = config.tenant_network(id);
    let mut labels: HashMap<String, String> =
        config.docker.extra_labels.clone().into_iter().collect();
    labels.extend([
        (labels::TENANT.to_owned(), id.clone()),
        (labels::ROLE.to_owned(), role.as_str().to_owned()),
        (labels::MANAGED.to_owned(), "1".to_owned()),
    ]);
    let port_key = format!("{port}/tcp");
    let mut body = ContainerCreateBody {
        image: Some(config.image(role).to_owned()),
        env: Some(env),
        user: Some("10001:10001".to_owned()),
        exposed_ports: Some(vec![port_key.clone()]),
        healthcheck: Some(HealthConfig {
            test: Some(vec!["CMD".into(), binary.into(), "healthcheck".into()]),
            interval: Some(secs(config.health.interval_secs.max(1))),
            timeout: Some(secs(5)),
            retries: Some(3),
            start_period: Some(secs(60)),
            start_interval: None,
        }),
        host_config: Some(HostConfig {
            port_bindings: Some(HashMap::from([(
                port_key,
                Some(vec![PortBinding {
                    host_ip: Some(config.ports.bind_address.clone()),
                    host_port: Some(host_port.to_string()),
                }]),
            )])),
            network_mode: Some(network),
            restart_policy: Some(RestartPolicy {
                name: Some(RestartPolicyNameEnum::UNLESS_STOPPED),
                maximum_retry_count: None,
            }),
            memory: Some(config.limits.memory_mb * 1024 * 1024),
            memory_swap: Some(config.limits.memory_mb * 1024 * 1024),
            pids_limit: Some(config.limits.pids),
            nano_cpus: (config.limits.cpus > 0.0).then_some((config.limits.cpus * 1e9) as i64),
            readonly_rootfs: Some(true),
            cap_drop: Some(vec!["ALL".to_owned()]),
            security_opt: Some(vec!["no-new-privileges:true".to_owned()]),
            log_config: Some(log_config()),
            binds: Some(vec![format!(
                "{}:{SECRETS_MOUNT}:ro",
                secrets_dir.display()
            )]),
            ..Default::default()
        }),
        labels: Some(labels.clone()),
        ..Default::default()
    };
    // serde_json's map is ordered, so the hash does not depend on HashMap order.
    let canonical = serde_json::to_value(&body)
        .expect("serializable")
        .to_string();
    let hash = hex::encode(&Sha256::digest(canonical.as_bytes())[..8]);
    labels.insert(labels::CONFIG_HASH.to_owned(), hash.clone());
    body.labels = Some(labels);
    (body, hash)
}

/// Creates a container; 409 (the name exists) counts as done. Returns the id
/// (or the name when it existed).
pub async fn create_container(
    docker: &Docker,
    name: &str,
    body: ContainerCreateBody,
) -> Result<String> {
    if let Some(image) = &body.image {
        require_image(docker, image).await?;
    }
    let options = CreateContainerOptions {
        name: Some(name.to_owned()),
        ..Default::default()
    };
    match docker.create_container(Some(options), body).await {
        Ok(r) => Ok(r.id),
        Err(e) if is_status(&e, 409) => Ok(name.to_owned()),
        Err(e) => Err(Error::docker(format!("create container {name}"), e)),
    }
}

pub async fn start_container(docker: &Docker, name: &str) -> Result<()> {
    match docker.start_container(name, None).await {
        Ok(()) => Ok(()),
        Err(e) if is_status(&e, 304) => Ok(()),
        Err(e) => Err(Error::docker(format!("start container {name}"), e)),
    }
}

pub async fn stop_container(docker: &Docker, name: &str) -> Result<()> {
    let options = StopContainerOptions {
        t: Some(10),
        ..Default::default()
    };
    match docker.stop_container(name, Some(options)).await {
        Ok(()) => Ok(()),
        Err(e) if is_status(&e, 304) || is_status(&e, 404) => Ok(()),
        Err(e) => Err(Error::docker(format!("stop container {name}"), e)),
    }
}

pub async fn remove_container(docker: &Docker, name: &str) -> Result<()> {
    let options = RemoveContainerOptions {
        force: true,
        v: true,
        ..Default::default()
    };
    match docker.remove_container(name, Some(options)).await {
        Ok(()) => Ok(()),
        Err(e) if is_status(&e, 404) => Ok(()),
        // 409: removal already in progress (another remover).
        Err(e) if is_status(&e, 409) => Ok(()),
        Err(e) => Err(Error::docker(format!("remove container {name}"), e)),
    }
}

/// What a status line needs about one container.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct ContainerDetails {
    pub name: String,
    pub state: String,
    pub health: String,
    pub ip: Option<String>,
    pub exit_code: Option<i64>,
    pub started_at: Option<String>,
    pub uptime_secs: Option<i64>,
    /// The last healthcheck output, when failing.
    pub health_log: Option<String>,
    /// How often the engine restarted the container (restart policy).
    pub restart_count: i64,
    /// Whether the kernel's OOM killer ended the container's last run, or
    /// any run the engine still has events of.
    pub oom_killed: bool,
}

/// Inspects a container; `None` when it does not exist.
pub async fn details(
    docker: &Docker,
    name: &str,
    network: &str,
) -> Result<Option<ContainerDetails>> {
    let inspect = match docker
        .inspect_container(name, None::<InspectContainerOptions>)
        .await
    {
        Ok(i) => i,
        Err(e) if is_status(&e, 404) => return Ok(None),
        Err(e) => return Err(Error::docker(format!("inspect container {name}"), e)),
    };
    let state = inspect.state.unwrap_or_default();
    let running = state.running.unwrap_or(false);
    let restart_count = inspect.restart_count.unwrap_or(0);
    let oom_killed = state.oom_killed.unwrap_or(false)
        || (restart_count > 0 && oom_events(docker, name, inspect.created.as_deref()).await > 0);
    let health = state.health.clone().unwrap_or_default();
    let health_str = match (running, health.status) {
        (false, _) => "-",
        (true, Some(HealthStatusEnum::HEALTHY)) => "healthy",
        (true, Some(HealthStatusEnum::UNHEALTHY)) => "unhealthy",
        (true, Some(HealthStatusEnum::STARTING)) => "starting",
        _ => "-",
    };
    let health_log = health
        .log
        .and_then(|l| l.into_iter().last())
        .and_then(|r| r.output)
        .map(|o| o.trim().to_owned());
    let started_at = state.started_at.clone().filter(|_| running);
    let uptime_secs = started_at
        .as_deref()
        .and_then(|s| chrono::DateTime::parse_from_rfc3339(s).ok())
        .map(|t| (chrono::Utc::now() - t.with_timezone(&chrono::Utc)).num_seconds());
    let ip = inspect
        .network_settings
        .and_then(|n| n.networks)
        .and_then(|n| n.get(network).cloned())
        .and_then(|e| e.ip_address)
        .filter(|ip| !ip.is_empty());
    Ok(Some(ContainerDetails {
        name: name.to_owned(),
        state: state.status.map(|s| s.to_string()).unwrap_or_default(),
        health: health_str.to_owned(),
        ip,
        // A running container's exit code is the engine's 0, not the
        // code of its last exit: only a stopped one has one to show.
        exit_code: state.exit_code.filter(|_| !running),
        started_at,
        uptime_secs,
        health_log,
        restart_count,
        oom_killed,
    }))
}

/// How many `oom` events the engine still holds for `container` since it
/// was created (the engine keeps its recent events in memory only).
async fn oom_events(docker: &Docker, container: &str, created: Option<&str>) -> usize {
    let since = created
        .and_then(|c| chrono::DateTime::parse_from_rfc3339(c).ok())
        .map(|t| t.timestamp().to_string());
    let options = bollard::query_parameters::EventsOptions {
        since,
        until: Some(chrono::Utc::now().timestamp().to_string()),
        filters: Some(HashMap::from([
            ("container".to_owned(), vec![container.to_owned()]),
            ("event".to_owned(), vec!["oom".to_owned()]),
        ])),
    };
    let events = docker.events(Some(options));
    tokio::time::timeout(std::time::Duration::from_secs(2), events.count())
        .await
        .unwrap_or(0)
}

/// CPU (percent of one core) and memory use of a running container, from
/// one stats sample (the engine measures over about a second).
#[derive(Debug, Clone, Copy, Default, serde::Serialize)]
pub struct Usage {
    pub cpu_percent: f64,
    pub memory_bytes: u64,
    pub memory_limit_bytes: u64,
}

pub async fn usage(docker: &Docker, name: &str) -> Result<Option<Usage>> {
    let options = StatsOptions {
        stream: false,
        one_shot: false,
    };
    let mut stream = docker.stats(name, Some(options));
    let Some(sample) = stream.next().await else {
        return Ok(None);
    };
    let sample = match sample {
        Ok(s) => s,
        Err(e) if is_status(&e, 404) || is_status(&e, 409) => return Ok(None),
        Err(e) => return Err(Error::docker(format!("stats of {name}"), e)),
    };
    let cpu = sample.cpu_stats.unwrap_or_default();
    let pre = sample.precpu_stats.unwrap_or_default();
    let total = |c: &bollard::models::ContainerCpuStats| {
        c.cpu_usage
            .as_ref()
            .and_then(|u| u.total_usage)
            .unwrap_or(0)
    };
    let cpu_delta = total(&cpu).saturating_sub(total(&pre)) as f64;
    let sys_delta = cpu
        .system_cpu_usage
        .unwrap_or(0)
        .saturating_sub(pre.system_cpu_usage.unwrap_or(0)) as f64;
    let cpus = cpu.online_cpus.unwrap_or(1).max(1) as f64;
    let cpu_percent = if sys_delta > 0.0 {
        cpu_delta / sys_delta * cpus * 100.0
    } else {
        0.0
    };
    let mem = sample.memory_stats.unwrap_or_default();
    // Like `docker stats`: usage minus the page cache.
    let cache = mem
        .stats
        .as_ref()
        .and_then(|s| {
            s.get("inactive_file")
                .or_else(|| s.get("total_inactive_file"))
                .copied()
        })
        .unwrap_or(0);
    Ok(Some(Usage {
        cpu_percent: (cpu_percent * 10.0).round() / 10.0,
        memory_bytes: mem.usage.unwrap_or(0).saturating_sub(cache),
        memory_limit_bytes: mem.limit.unwrap_or(0),
    }))
}

/// The log stream of a container.
pub fn logs(
    docker: &Docker,
    name: &str,
    follow: bool,
    tail: Option<u64>,
) -> impl futures::Stream<Item = std::result::Result<bollard::container::LogOutput, DockerError>> {
    let options = bollard::query_parameters::LogsOptions {
        follow,
        stdout: true,
        stderr: true,
        tail: tail
            .map(|t| t.to_string())
            .unwrap_or_else(|| "all".to_owned()),
        ..Default::default()
    };
    docker.logs(name, Some(options))
}
