//! Containers that tests start themselves: the images of the tenant apps,
//! a [`TestContainer`] description that creates and starts one (on the
//! harness network, published on loopback, hardened like the provisioner
//! runs tenant apps), and what tests then ask the engine about it: its
//! state, published port, health, exit, logs and resident and peak memory.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use bollard::errors::Error as DockerError;
use bollard::models::{
    ContainerCreateBody, ContainerSummary, EndpointSettings, HostConfig, NetworkingConfig,
    PortBinding,
};
use bollard::query_parameters::{
    CreateContainerOptionsBuilder, ListContainersOptionsBuilder, LogsOptionsBuilder,
    StatsOptionsBuilder,
};
use bollard::Docker;
use futures::StreamExt;

use crate::{Scope, TEST_NETWORK};

/// The ingest image: `PROVISION_INGEST_IMAGE`, or the one scripts/setup builds.
pub fn ingest_image() -> String {
    std::env::var("PROVISION_INGEST_IMAGE").unwrap_or_else(|_| "provision/ingest:dev".to_owned())
}

/// The admin panel image: `PROVISION_ADMIN_IMAGE`, or the one scripts/setup builds.
pub fn admin_image() -> String {
    std::env::var("PROVISION_ADMIN_IMAGE").unwrap_or_else(|_| "provision/admin:dev".to_owned())
}

/// The notifier image: `PROVISION_NOTIFIER_IMAGE`, or the one scripts/setup builds.
pub fn notifier_image() -> String {
    std::env::var("PROVISION_NOTIFIER_IMAGE")
        .unwrap_or_else(|_| "provision/notifier:dev".to_owned())
}

/// A free port on loopback, to publish a container port on a fixed host
/// port that stays the same across restarts.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind a port on loopback")
        .local_addr()
        .expect("a bound port has an address")
        .port()
}

/// What a test container runs with; [`TestContainer::start`] creates and
/// starts it. Only what is asked for is set: a bare description is the
/// engine's default container of `image`.
#[derive(Debug, Clone)]
pub struct TestContainer {
    name: String,
    image: String,
    labels: HashMap<String, String>,
    env: Option<Vec<String>>,
    cmd: Option<Vec<String>>,
    network: Option<String>,
    alias: bool,
    publish: Option<(String, Option<u16>)>,
    hardened: bool,
    memory: Option<i64>,
    no_swap: bool,
    extra_hosts: Vec<String>,
}

impl TestContainer {
    /// A container named `name` from `image`, carrying `labels`.
    pub fn new(name: &str, image: &str, labels: HashMap<String, String>) -> TestContainer {
        TestContainer {
            name: name.to_owned(),
            image: image.to_owned(),
            labels,
            env: None,
            cmd: None,
            network: None,
            alias: false,
            publish: None,
            hardened: false,
            memory: None,
            no_swap: false,
            extra_hosts: Vec::new(),
        }
    }

    /// A container of `scope`: named `scope.name(what)`, carrying its labels.
    pub fn scoped(scope: &Scope, what: &str, image: &str) -> TestContainer {
        TestContainer::new(&scope.name(what), image, scope.labels())
    }

    /// The container's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Its environment (`KEY=value`).
    pub fn env(mut self, env: Vec<String>) -> TestContainer {
        self.env = Some(env);
        self
    }

    /// Its command (the image's entrypoint arguments).
    pub fn cmd(mut self, cmd: Vec<String>) -> TestContainer {
        self.cmd = Some(cmd);
        self
    }

    /// Joins the harness network ([`TEST_NETWORK`]), where the test
    /// Cassandra answers by name.
    pub fn on_test_network(self) -> TestContainer {
        self.on_network(TEST_NETWORK)
    }

    /// Joins `network`.
    pub fn on_network(mut self, network: &str) -> TestContainer {
        self.network = Some(network.to_owned());
        self
    }

    /// Makes the container reachable by its name on its network (an alias).
    pub fn reachable_by_name(mut self) -> TestContainer {
        self.alias = true;
        self
    }

    /// Publishes `container_port` (`"8080/tcp"`) on 127.0.0.1: on
    /// `host_port`, or on a port the engine picks when `None` (read it back
    /// with [`published_port`]).
    pub fn publish(mut self, container_port: &str, host_port: Option<u16>) -> TestContainer {
        self.publish = Some((container_port.to_owned(), host_port));
        self
    }

    /// A read-only root filesystem and every capability dropped, as the
    /// provisioner runs tenant apps.
    pub fn hardened(mut self) -> TestContainer {
        self.hardened = true;
        self
    }

    /// A memory limit, in bytes.
    pub fn memory(mut self, bytes: i64) -> TestContainer {
        self.memory = Some(bytes);
        self
    }

    /// No swap beyond the memory limit (memory+swap = memory), as the
    /// provisioner runs tenant apps: over the limit the kernel OOM-kills
    /// instead of swapping.
    pub fn no_swap(mut self) -> TestContainer {
        self.no_swap = true;
        self
    }

    /// An extra `/etc/hosts` line (`host.docker.internal:host-gateway`,
    /// as `--add-host`).
    pub fn extra_host(mut self, entry: &str) -> TestContainer {
        self.extra_hosts.push(entry.to_owned());
        self
    }

    fn body(&self) -> ContainerCreateBody {
        let port_bindings = self.publish.as_ref().map(|(port, host_port)| {
            HashMap::from([(
                port.clone(),
                Some(vec![PortBinding {
                    host_ip: Some("127.0.0.1".to_owned()),
                    host_port: Some(host_port.map(|p| p.to_string()).unwrap_or_default()),
                }]),
            )])
        });
        let networking_config = match (&self.network, self.alias) {
            (Some(network), true) => Some(NetworkingConfig {
                endpoints_config: Some(HashMap::from([(
                    network.clone(),
                    EndpointSettings {
                        aliases: Some(vec![self.name.clone()]),
                        ..Default::default()
                    },
                )])),
            }),
            _ => None,
        };
        // What the provisioner gives its own containers: Podman's defaults
        // (1,048,576 open files) are above what this host allows, and such
        // a container does not start.
        let (nofile, nproc) = provisioner::config::host_limits();
        let ulimits =
            provisioner::backend::docker::ulimits(&[("nofile", nofile), ("nproc", Some(nproc))]);
        ContainerCreateBody {
            image: Some(self.image.clone()),
            env: self.env.clone(),
            cmd: self.cmd.clone(),
            labels: Some(self.labels.clone()),
            exposed_ports: self.publish.as_ref().map(|(port, _)| vec![port.clone()]),
            host_config: Some(HostConfig {
                port_bindings,
                network_mode: self.network.clone(),
                readonly_rootfs: self.hardened.then_some(true),
                cap_drop: self.hardened.then(|| vec!["ALL".to_owned()]),
                memory: self.memory,
                memory_swap: self.memory.filter(|_| self.no_swap),
                extra_hosts: (!self.extra_hosts.is_empty()).then(|| self.extra_hosts.clone()),
                ulimits,
                ..Default::default()
            }),
            networking_config,
            ..Default::default()
        }
    }

    /// Creates the container (not started).
    pub async fn create(&self, docker: &Docker) -> Result<(), DockerError> {
        let options = CreateContainerOptionsBuilder::default()
            .name(&self.name)
            .build();
        docker.create_container(Some(options), self.body()).await?;
        Ok(())
    }

    /// Creates and starts the container; returns its name.
    pub async fn start(&self, docker: &Docker) -> Result<String, DockerError> {
        self.create(docker).await?;
        docker.start_container(&self.name, None).await?;
        Ok(self.name.clone())
    }
}

/// What the engine says about a container's state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerState {
    pub running: bool,
    /// When it last started (RFC 3339), empty if never.
    pub started_at: String,
    /// The HEALTHCHECK status (`"healthy"`, `"starting"`...), if it has one.
    pub health: Option<String>,
    pub exit_code: Option<i64>,
    pub pid: Option<i64>,
    /// Whether the kernel's OOM killer ended it.
    pub oom_killed: bool,
}

/// The state of container `name`.
pub async fn container_state(docker: &Docker, name: &str) -> Result<ContainerState, DockerError> {
    let state = docker
        .inspect_container(name, None)
        .await?
        .state
        .unwrap_or_default();
    Ok(ContainerState {
        running: state.running.unwrap_or(false),
        started_at: state.started_at.unwrap_or_default(),
        health: state.health.and_then(|h| h.status).map(|s| s.to_string()),
        exit_code: state.exit_code,
        pid: state.pid,
        oom_killed: state.oom_killed.unwrap_or(false),
    })
}

/// Whether container `name` exists and runs.
pub async fn is_running(docker: &Docker, name: &str) -> bool {
    container_state(docker, name)
        .await
        .map(|s| s.running)
        .unwrap_or(false)
}

/// The host port that container `name` publishes `container_port`
/// (`"9042/tcp"`) on, once the engine knows it.
pub async fn published_port(docker: &Docker, name: &str, container_port: &str) -> Option<u16> {
    let inspect = docker.inspect_container(name, None).await.ok()?;
    let ports = inspect.network_settings?.ports?;
    let binding = ports.get(container_port)?.as_ref()?.first()?.clone();
    binding.host_port?.parse().ok()
}

/// The address of container `name` on its first Docker network, if it has one.
pub async fn network_ip(docker: &Docker, name: &str) -> Option<std::net::IpAddr> {
    let inspect = docker.inspect_container(name, None).await.ok()?;
    let networks = inspect.network_settings?.networks?;
    networks
        .values()
        .filter_map(|n| n.ip_address.as_deref()?.parse().ok())
        .next()
}

/// Waits until container `name` reports its HEALTHCHECK healthy. Fails if
/// it stops first or is not healthy within `within`.
pub async fn wait_healthy(docker: &Docker, name: &str, within: Duration) -> Result<(), String> {
    let started = Instant::now();
    loop {
        let state = container_state(docker, name)
            .await
            .map_err(|e| format!("cannot inspect {name}: {e}"))?;
        if !state.running {
            return Err(format!("{name} stopped; see `docker logs {name}`"));
        }
        if state.health.as_deref() == Some("healthy") {
            return Ok(());
        }
        if started.elapsed() >= within {
            return Err(format!(
                "{name} not healthy after {within:?} (health {:?}); see `docker logs {name}`",
                state.health
            ));
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Waits until container `name` has exited; returns its exit code (-1 if
/// the engine gives none). Panics after `within`.
pub async fn wait_for_exit(docker: &Docker, name: &str, within: Duration) -> i64 {
    let started = Instant::now();
    loop {
        let state = container_state(docker, name)
            .await
            .unwrap_or_else(|e| panic!("cannot inspect {name}: {e}"));
        if !state.running {
            return state.exit_code.unwrap_or(-1);
        }
        assert!(
            started.elapsed() < within,
            "{name} did not finish in {within:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Everything container `name` wrote to stdout and stderr, chunk by chunk.
pub async fn container_logs(docker: &Docker, name: &str) -> Result<Vec<String>, DockerError> {
    let options = LogsOptionsBuilder::default()
        .stdout(true)
        .stderr(true)
        .build();
    let mut logs = docker.logs(name, Some(options));
    let mut chunks = Vec::new();
    while let Some(chunk) = logs.next().await {
        chunks.push(chunk?.to_string());
    }
    Ok(chunks)
}

/// Every container (running or not) carrying `label` (`key=value`).
pub async fn list_labelled(
    docker: &Docker,
    label: &str,
) -> Result<Vec<ContainerSummary>, DockerError> {
    list_labelled_all(docker, &[label.to_owned()]).await
}

/// Every container (running or not) carrying all of `labels` (`key=value`,
/// or `key` for any value).
pub async fn list_labelled_all(
    docker: &Docker,
    labels: &[String],
) -> Result<Vec<ContainerSummary>, DockerError> {
    let filters = HashMap::from([("label".to_owned(), labels.to_vec())]);
    docker
        .list_containers(Some(
            ListContainersOptionsBuilder::default()
                .all(true)
                .filters(&filters)
                .build(),
        ))
        .await
}

/// The names of every container (running or not) carrying `label`
/// (`key=value`), sorted.
pub async fn labelled_containers(docker: &Docker, label: &str) -> Vec<String> {
    let list = list_labelled(docker, label)
        .await
        .expect("docker lists containers");
    let mut names: Vec<String> = list
        .into_iter()
        .filter_map(|c| c.names?.into_iter().next())
        .map(|n| n.trim_start_matches('/').to_owned())
        .collect();
    names.sort();
    names
}

/// The resident memory (VmRSS) of host process `pid`, in KiB, from /proc.
pub fn process_rss_kib(pid: i64) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// The CPU time (user + system, every thread) process `pid` has used, from
/// `/proc/<pid>/stat`; `"self"` is this process. Linux counts it in clock
/// ticks of 10 ms.
pub fn process_cpu_time(pid: &str) -> Option<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // the command name (field 2) may hold spaces; count from after it
    let mut fields = stat.rsplit_once(')')?.1.split_whitespace();
    let utime: u64 = fields.nth(11)?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some(Duration::from_millis((utime + stime) * 10))
}

/// The CPU time container `name`'s main process has used.
pub async fn container_cpu_time(docker: &Docker, name: &str) -> Option<Duration> {
    let pid = container_state(docker, name).await.ok()?.pid?;
    process_cpu_time(&pid.to_string())
}

/// The most memory container `name` has used since it started, in bytes:
/// its cgroup's maximum usage as the engine reports it (cgroups v1), else
/// the peak resident memory (VmHWM) of its main process.
pub async fn container_memory_peak_bytes(docker: &Docker, name: &str) -> Option<u64> {
    let options = StatsOptionsBuilder::default()
        .stream(false)
        .one_shot(true)
        .build();
    let sample = docker.stats(name, Some(options)).next().await;
    if let Some(peak) = sample
        .and_then(Result::ok)
        .and_then(|s| s.memory_stats?.max_usage)
    {
        return Some(peak);
    }
    let pid = container_state(docker, name).await.ok()?.pid?;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()?;
    Some(kib * 1024)
}

/// The resident memory of container `name`'s main process, in KiB.
pub async fn container_rss_kib(docker: &Docker, name: &str) -> Option<u64> {
    let pid = container_state(docker, name).await.ok()?.pid?;
    process_rss_kib(pid)
}
