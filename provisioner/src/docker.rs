//! The Docker driver (bollard): the shared network, the managed Cassandra
//! container with its named volume, and the tenant containers: their
//! desired configuration (and its hash), observation by label, create,
//! start, stop, remove, health, logs and stats. A 404 on remove/stop and a
//! 409 on create count as done.

use std::collections::HashMap;

use bollard::errors::Error as DockerError;
use bollard::models::{
    ContainerCreateBody, EndpointSettings, HealthConfig, HealthStatusEnum, HostConfig,
    HostConfigLogConfig, NetworkCreateRequest, NetworkingConfig, PortBinding, RestartPolicy,
    RestartPolicyNameEnum, VolumeCreateRequest,
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
use crate::plan::{CassandraObserved, Health, ObservedContainer, ObservedInfra, Role};
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

/// The network and (managed mode) the Cassandra container.
pub async fn observe_infra(docker: &Docker, config: &Config) -> Result<ObservedInfra> {
    let network = config.docker.network.clone();
    let network_exists = match docker.inspect_network(&network, None).await {
        Ok(_) => true,
        Err(e) if is_status(&e, 404) => false,
        Err(e) => return Err(Error::docker(format!("inspect network {network}"), e)),
    };
    let container = config.cassandra.container.clone();
    let mut cassandra_outdated = false;
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
    })
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

pub async fn create_network(docker: &Docker, name: &str) -> Result<()> {
    let request = NetworkCreateRequest {
        name: name.to_owned(),
        driver: Some("bridge".to_owned()),
        labels: Some(HashMap::from([
            (labels::MANAGED.to_owned(), "1".to_owned()),
            (labels::ROLE.to_owned(), labels::ROLE_NETWORK.to_owned()),
        ])),
        ..Default::default()
    };
    match docker.create_network(request).await {
        Ok(_) => Ok(()),
        Err(e) if is_status(&e, 409) => Ok(()),
        Err(e) => Err(Error::docker(format!("create network {name}"), e)),
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
/// with its data on a named volume, CQL published on loopback only.
pub async fn ensure_cassandra(docker: &Docker, config: &Config) -> Result<()> {
    let c = &config.cassandra;
    require_image(docker, &c.image).await?;
    let managed = HashMap::from([
        (labels::MANAGED.to_owned(), "1".to_owned()),
        (labels::ROLE.to_owned(), labels::ROLE_CASSANDRA.to_owned()),
    ]);
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
            ..Default::default()
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

/// The desired configuration of one tenant container, and its hash (put on
/// the container as a label, so drift shows as a different hash).
pub fn tenant_container(
    config: &Config,
    record: &ProviderRecord,
    role: Role,
    host_port: u16,
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
        format!("CASSANDRA_PASSWORD={}", record.cassandra_password),
        format!("LOG_FORMAT={}", config.log_format),
    ];
    let (port, binary) = match role {
        Role::Ingest => (INGEST_PORT, "/ingest"),
        Role::Admin => {
            env.push(format!("ADMIN_SESSION_SECRET={}", record.session_secret));
            (ADMIN_PORT, "/admin")
        }
    };
    let secs = |s: u64| (s * 1_000_000_000) as i64;
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
            network_mode: Some(config.docker.network.clone()),
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
            log_config: Some(HostConfigLogConfig {
                typ: Some("json-file".to_owned()),
                config: Some(HashMap::from([
                    ("max-size".to_owned(), "10m".to_owned()),
                    ("max-file".to_owned(), "3".to_owned()),
                ])),
            }),
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
        exit_code: state.exit_code,
        started_at,
        uptime_secs,
        health_log,
    }))
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
