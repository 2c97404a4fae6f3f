//! Reading the engine: a container's details (state, health, address,
//! restarts and OOM kills), CPU and memory use, the log stream, the events
//! about our containers, and a direct probe of a container's health
//! endpoint.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};

use bollard::models::{
    ContainerCpuStats, ContainerInspectResponse, ContainerStateStatusEnum, ContainerStatsResponse,
    HealthStatusEnum,
};
use bollard::query_parameters::{InspectContainerOptions, StatsOptions};
use bollard::Docker;
use futures::StreamExt;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::{api, cgroup, is_status};
use crate::backend::{
    ContainerDetails, ContainerEvent, HostProcess, LogChunk, Probe, Result, Usage,
};
use crate::domain::spec::{health_port, APP_START_PERIOD_SECS};
use crate::domain::{ContainerState, Health, ProviderId, Role};
use crate::labels;
use tenant_common::trusted_proxies;

fn state_of(s: ContainerStateStatusEnum) -> ContainerState {
    match s {
        ContainerStateStatusEnum::CREATED => ContainerState::Created,
        ContainerStateStatusEnum::RUNNING => ContainerState::Running,
        ContainerStateStatusEnum::PAUSED => ContainerState::Paused,
        ContainerStateStatusEnum::RESTARTING => ContainerState::Restarting,
        ContainerStateStatusEnum::REMOVING => ContainerState::Removing,
        ContainerStateStatusEnum::EXITED => ContainerState::Exited,
        ContainerStateStatusEnum::DEAD => ContainerState::Dead,
        _ => ContainerState::Unknown,
    }
}

/// The engine's inspection of a container; `None` when it does not exist.
async fn inspect(docker: &Docker, name: &str) -> Result<Option<ContainerInspectResponse>> {
    match docker
        .inspect_container(name, None::<InspectContainerOptions>)
        .await
    {
        Ok(i) => Ok(Some(i)),
        Err(e) if is_status(&e, 404) => Ok(None),
        Err(e) => Err(api(format!("inspect container {name}"), e)),
    }
}

/// Inspects a container; `None` when it does not exist. Where the engine
/// says a running tenant app is still starting (or says nothing), the
/// provisioner's own probe ([`own_probe`]) has the last word: healthy if
/// the app answers now, and its answer either way where the engine has
/// run no check at all (Podman without systemd schedules none). Only
/// where `local` (an engine on this host) lets it reach the address.
pub(super) async fn details(
    docker: &Docker,
    local: bool,
    name: &str,
    network: &str,
) -> Result<Option<ContainerDetails>> {
    let Some(inspect) = inspect(docker, name).await? else {
        return Ok(None);
    };
    let state = inspect.state.unwrap_or_default();
    let running = state.running.unwrap_or(false);
    let restart_count = inspect.restart_count.unwrap_or(0);
    let oom_killed = state.oom_killed.unwrap_or(false)
        || (restart_count > 0 && oom_events(docker, name, inspect.created.as_deref()).await > 0);
    let health = state.health.clone().unwrap_or_default();
    let no_check_ran = health.log.as_ref().is_none_or(|l| l.is_empty());
    let mut health_of = match (running, health.status) {
        (true, Some(HealthStatusEnum::HEALTHY)) => Health::Healthy,
        (true, Some(HealthStatusEnum::UNHEALTHY)) => Health::Unhealthy,
        (true, Some(HealthStatusEnum::STARTING)) => Health::Starting,
        _ => Health::Unknown,
    };
    let mut health_log = health
        .log
        .and_then(|l| l.into_iter().last())
        .and_then(|r| r.output)
        .map(|o| o.trim().to_owned());
    let started_at = state.started_at.clone().filter(|_| running);
    let host_process = host_process(local && running, state.pid, inspect.id);
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
    let role = inspect
        .config
        .and_then(|c| c.labels)
        .and_then(|l| l.get(labels::ROLE).and_then(|r| Role::parse(r)));
    if running && matches!(health_of, Health::Starting | Health::Unknown) {
        if let Some((role, ip)) = role.zip(ip.as_deref().and_then(|ip| ip.parse().ok())) {
            match own_probe(local, ip, role, uptime_secs).await {
                // it answers now, whatever the engine's last check said
                Some(healthy @ (Health::Healthy, _)) => (health_of, health_log) = healthy,
                // it does not answer, and the engine has nothing to say
                Some(probed) if no_check_ran => (health_of, health_log) = probed,
                _ => {}
            }
        }
    }
    Ok(Some(ContainerDetails {
        name: name.to_owned(),
        state: state.status.map_or(ContainerState::Unknown, state_of),
        health: health_of,
        ip,
        // A running container's exit code is the engine's 0, not the
        // code of its last exit: only a stopped one has one to show.
        exit_code: state.exit_code.filter(|_| !running),
        started_at,
        uptime_secs,
        health_log,
        restart_count,
        oom_killed,
        host_process,
        ..ContainerDetails::default()
    }))
}

/// A running container's main process on this host (`here`: the engine
/// runs on this host), from its inspect.
fn host_process(here: bool, pid: Option<i64>, id: Option<String>) -> Option<HostProcess> {
    let pid = pid.filter(|pid| here && *pid > 0)?;
    Some(HostProcess {
        pid,
        container_id: id?,
    })
}

/// A tenant app's health by the provisioner's own `GET /healthz` (where
/// the engine has none to give): healthy with the app's line of
/// counters, or the error, starting within [`APP_START_PERIOD_SECS`] of
/// its start and unhealthy after. `None` where `ip` is not reachable
/// without leaving this host ([`reachable_here`]).
async fn own_probe(
    local: bool,
    ip: IpAddr,
    role: Role,
    uptime_secs: Option<i64>,
) -> Option<(Health, Option<String>)> {
    if !reachable_here(local, ip) {
        return None;
    }
    let addr = SocketAddr::new(ip, health_port(role)).to_string();
    Some(match http_get(&addr, "/healthz").await {
        Ok(body) => (Health::Healthy, Some(body.trim().to_owned())),
        Err(why) => {
            let starting = uptime_secs.is_none_or(|s| s < APP_START_PERIOD_SECS as i64);
            let health = if starting {
                Health::Starting
            } else {
                Health::Unhealthy
            };
            (health, Some(format!("GET /healthz: {why}")))
        }
    })
}

/// Whether this process reaches `ip` without the traffic leaving this
/// host: a loopback address, or, for an engine on this host (`local`),
/// an address on one of the host's own links (its bridges and veth
/// pairs: [`trusted_proxies::local_links`]). A rootless engine's
/// container addresses live in a namespace of their own, and a remote
/// engine's on another host: neither is probed directly.
pub(super) fn reachable_here(local: bool, ip: IpAddr) -> bool {
    if ip.is_loopback() {
        return true;
    }
    if !local {
        return false;
    }
    let table = std::fs::read_to_string(trusted_proxies::ROUTE_TABLE).unwrap_or_default();
    trusted_proxies::local_links(&table)
        .unwrap_or_default()
        .iter()
        .any(|n| n.contains(ip))
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

/// CPU and memory of a running container (`None` when it is not): from
/// its cgroup when the engine runs on this host (`local`: a socket
/// engine; [`super::cgroup`]), else from the engine's stats.
pub(super) async fn usage(docker: &Docker, local: bool, name: &str) -> Result<Option<Usage>> {
    let mut process = None;
    if local {
        let Some(inspect) = inspect(docker, name).await? else {
            return Ok(None);
        };
        let state = inspect.state.unwrap_or_default();
        if !state.running.unwrap_or(false) {
            return Ok(None);
        }
        process = host_process(true, state.pid, inspect.id);
    }
    measured_usage(docker, name, process.as_ref()).await
}

/// [`usage`] of the container `details` describes: from its cgroup where
/// the details say where its process runs, else from the engine's stats.
pub(super) async fn usage_of(docker: &Docker, details: &ContainerDetails) -> Result<Option<Usage>> {
    if !details.state.is_running() {
        return Ok(None);
    }
    measured_usage(docker, &details.name, details.host_process.as_ref()).await
}

/// CPU and memory of the container `name`: from the cgroup of `process`
/// where it is given and its cgroup is found, else from the engine's
/// stats.
async fn measured_usage(
    docker: &Docker,
    name: &str,
    process: Option<&HostProcess>,
) -> Result<Option<Usage>> {
    let counters = process.and_then(|p| cgroup::locate_on_host(p.pid, &p.container_id));
    if let Some(counters) = counters {
        if let Some(usage) = counters.usage().await {
            return Ok(Some(usage));
        }
    }
    engine_usage(docker, name).await
}

/// One stats sample of the engine's; `None` for a container that is gone
/// or does not run.
async fn engine_sample(docker: &Docker, name: &str) -> Result<Option<ContainerStatsResponse>> {
    let options = StatsOptions {
        stream: false,
        one_shot: false,
    };
    match docker.stats(name, Some(options)).next().await {
        None => Ok(None),
        Some(Ok(s)) => Ok(Some(s)),
        Some(Err(e)) if is_status(&e, 404) || is_status(&e, 409) => Ok(None),
        Some(Err(e)) => Err(api(format!("stats of {name}"), e)),
    }
}

/// The total CPU time and the system's, in one sample's CPU figures.
fn cpu_times(c: &ContainerCpuStats) -> (u64, u64) {
    let total = c
        .cpu_usage
        .as_ref()
        .and_then(|u| u.total_usage)
        .unwrap_or(0);
    (total, c.system_cpu_usage.unwrap_or(0))
}

/// CPU and memory from the engine's stats. Docker's sample carries the
/// previous one's CPU figures; where they are missing (Podman's are
/// zero) a second sample is taken and the two compared.
async fn engine_usage(docker: &Docker, name: &str) -> Result<Option<Usage>> {
    let Some(first) = engine_sample(docker, name).await? else {
        return Ok(None);
    };
    let cpu = first.cpu_stats.clone().unwrap_or_default();
    let pre = first.precpu_stats.clone().unwrap_or_default();
    let (latest, now, before) = match cpu_times(&pre) {
        (_, 0) => match engine_sample(docker, name).await? {
            Some(second) => {
                let now = second.cpu_stats.clone().unwrap_or_default();
                (second, now, cpu)
            }
            None => return Ok(None),
        },
        _ => (first, cpu, pre),
    };
    let (total, system) = cpu_times(&now);
    let (total_before, system_before) = cpu_times(&before);
    let cpu_delta = total.saturating_sub(total_before) as f64;
    let sys_delta = system.saturating_sub(system_before) as f64;
    let cpus = now.online_cpus.unwrap_or(1).max(1) as f64;
    let cpu_percent = if sys_delta > 0.0 {
        cpu_delta / sys_delta * cpus * 100.0
    } else {
        0.0
    };
    let mem = latest.memory_stats.unwrap_or_default();
    // Like `docker stats`: usage minus the page cache (none to subtract
    // where the engine gives no breakdown).
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
pub(super) fn logs(
    docker: &Docker,
    name: &str,
    follow: bool,
    tail: Option<u64>,
) -> impl futures::Stream<Item = Result<LogChunk>> {
    log_chunks(
        docker.logs(name, Some(log_options(follow, tail))),
        format!("logs of {name}"),
    )
}

/// The engine's log request: both streams, all or the last `tail` lines.
pub(crate) fn log_options(
    follow: bool,
    tail: Option<u64>,
) -> bollard::query_parameters::LogsOptions {
    bollard::query_parameters::LogsOptions {
        follow,
        stdout: true,
        stderr: true,
        tail: tail.map_or_else(|| "all".to_owned(), |t| t.to_string()),
        ..Default::default()
    }
}

/// A container's or a service's log stream as chunks.
pub(crate) fn log_chunks(
    stream: impl futures::Stream<
        Item = std::result::Result<bollard::container::LogOutput, bollard::errors::Error>,
    >,
    what: String,
) -> impl futures::Stream<Item = Result<LogChunk>> {
    use bollard::container::LogOutput;
    stream.map(move |item| match item {
        Ok(LogOutput::StdErr { message }) => Ok(LogChunk::Stderr(message.to_vec())),
        Ok(other) => Ok(LogChunk::Stdout(other.into_bytes().to_vec())),
        Err(e) => Err(api(&what, e)),
    })
}

/// The engine's events about containers with our label, from now on.
pub(super) fn events(docker: &Docker) -> impl futures::Stream<Item = Result<ContainerEvent>> {
    let filters = HashMap::from([
        ("type".to_owned(), vec!["container".to_owned()]),
        ("label".to_owned(), vec![format!("{}=1", labels::MANAGED)]),
    ]);
    let options = bollard::query_parameters::EventsOptions {
        filters: Some(filters),
        ..Default::default()
    };
    docker.events(Some(options)).map(|item| {
        let event = item.map_err(|e| api("events", e))?;
        let attributes = event.actor.and_then(|a| a.attributes).unwrap_or_default();
        Ok(ContainerEvent {
            container: attributes.get("name").cloned().unwrap_or_default(),
            tenant: attributes
                .get(labels::TENANT)
                .and_then(|t| ProviderId::parse(t).ok()),
            action: event.action.unwrap_or_default(),
        })
    })
}

/// Whether the container answers its health endpoint: a direct GET on its
/// address on `network` (cheap, and sooner than the engine's own check),
/// or the engine's check says healthy.
pub(super) async fn probe_health(
    docker: &Docker,
    local: bool,
    name: &str,
    network: &str,
    port: u16,
) -> Result<Probe> {
    let Some(d) = details(docker, local, name, network).await? else {
        return Ok(Probe::NotYet("container is gone".into()));
    };
    if d.health == Health::Healthy {
        return Ok(Probe::Healthy);
    }
    let ip = d.ip.as_deref().and_then(|ip| ip.parse::<IpAddr>().ok());
    let mut why = match ip {
        Some(ip) if reachable_here(local, ip) => {
            match http_ok(&SocketAddr::new(ip, port).to_string(), "/healthz").await {
                Ok(()) => return Ok(Probe::Healthy),
                Err(e) => format!("GET /healthz: {e}"),
            }
        }
        Some(ip) => format!(
            "its address {ip} is not on this host, so only the engine's health check counts (it says {})",
            d.health
        ),
        None => format!(
            "container is {} (exit code {})",
            d.state,
            d.exit_code.unwrap_or(0)
        ),
    };
    if let Some(log) = d.health_log.filter(|l| !l.is_empty()) {
        why = format!("{why}; healthcheck said: {log}");
    }
    Ok(Probe::NotYet(why))
}

/// A plain HTTP/1.0 GET that succeeds on a 200 answer.
pub async fn http_ok(addr: &str, path: &str) -> std::result::Result<(), String> {
    http_get(addr, path).await.map(|_| ())
}

/// A plain HTTP/1.0 GET: the body of a 200 answer (at most 4 KiB of it,
/// lossily decoded), within 2 s.
pub async fn http_get(addr: &str, path: &str) -> std::result::Result<String, String> {
    const MOST: usize = 4096;
    let attempt = async {
        let mut stream = tokio::net::TcpStream::connect(addr)
            .await
            .map_err(|e| e.to_string())?;
        stream
            .write_all(
                format!("GET {path} HTTP/1.0\r\nHost: {addr}\r\nConnection: close\r\n\r\n")
                    .as_bytes(),
            )
            .await
            .map_err(|e| e.to_string())?;
        let mut answer = Vec::with_capacity(256);
        let mut buf = [0u8; 1024];
        while answer.len() < MOST {
            let got = stream.read(&mut buf).await.map_err(|e| e.to_string())?;
            if got == 0 {
                break;
            }
            answer.extend_from_slice(&buf[..got]);
        }
        let answer = String::from_utf8_lossy(&answer).to_string();
        match answer.split_whitespace().nth(1) {
            Some("200") => Ok(answer
                .split_once("\r\n\r\n")
                .map(|(_, body)| body.to_owned())
                .unwrap_or_default()),
            Some(code) => Err(format!("answered {code}")),
            None => Err("no HTTP answer".to_owned()),
        }
    };
    tokio::time::timeout(std::time::Duration::from_secs(2), attempt)
        .await
        .unwrap_or_else(|_| Err("timed out".into()))
}
