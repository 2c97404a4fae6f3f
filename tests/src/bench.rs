//! What the benchmarks (`src/bin/bench-*.rs`) share: their own Cassandra
//! node, a config for it, a `provisiond` they start and stop, and small
//! statistics and /proc readers.
//!
//! - [`ensure_node`] starts (or reuses) `provision-bench-cassandra` on
//!   `provision-bench-net`, apart from the test suite's node, and waits
//!   until CQL answers ([`published_cql`], for any node container);
//!   [`remove_node`] removes both.
//! - [`config_text`] is a provision config on that node with the given
//!   port pools; every container it makes carries [`BENCH_LABEL`].
//! - [`Daemon`] runs `provisiond --config … --socket …` (and `--listen`),
//!   polls its `/healthz` until it answers, and ends it with SIGTERM.
//! - [`median`], [`min`], [`loadavg`], [`kib_field`], [`proc_kib`],
//!   [`cgroup_usage_without_cache`].

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use bollard::models::{
    ContainerCreateBody, EndpointSettings, HostConfig, NetworkCreateRequest, NetworkingConfig,
    PortBinding,
};
use bollard::query_parameters::{CreateContainerOptionsBuilder, RemoveContainerOptionsBuilder};
use bollard::Docker;
use rand::Rng;
use tenant_schema::cql::connect_published;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::{cassandra_image, is_conflict, is_not_found};

/// The benchmarks' Cassandra node and its network.
pub const NODE: &str = "provision-bench-cassandra";
pub const NETWORK: &str = "provision-bench-net";

/// A Cassandra node's container on [`NETWORK`] under `name` (its alias
/// there), with `labels` and `env`, CQL published on a loopback port the
/// engine picks.
pub fn node_body(
    name: &str,
    labels: HashMap<String, String>,
    env: Vec<String>,
) -> ContainerCreateBody {
    ContainerCreateBody {
        image: Some(cassandra_image()),
        labels: Some(labels),
        env: Some(env),
        exposed_ports: Some(vec!["9042/tcp".to_owned()]),
        host_config: Some(HostConfig {
            port_bindings: Some(HashMap::from([(
                "9042/tcp".to_owned(),
                Some(vec![PortBinding {
                    host_ip: Some("127.0.0.1".to_owned()),
                    host_port: Some(String::new()),
                }]),
            )])),
            network_mode: Some(NETWORK.to_owned()),
            ..Default::default()
        }),
        networking_config: Some(NetworkingConfig {
            endpoints_config: Some(HashMap::from([(
                NETWORK.to_owned(),
                EndpointSettings {
                    aliases: Some(vec![name.to_owned()]),
                    ..Default::default()
                },
            )])),
        }),
        ..Default::default()
    }
}
/// The label on everything a benchmark creates (value: the run's suffix,
/// or `node`).
pub const BENCH_LABEL: &str = "io.provision.bench";
/// The node's superuser (the image's default; the node is on loopback).
pub const SUPERUSER: (&str, &str) = ("cassandra", "cassandra");

/// A provision config for a bench run: state and data under `dir`,
/// containers named `bench-<run>-…` and labelled with the run, the bench
/// node as an external Cassandra, and the given port pools (inclusive).
pub fn config_text(
    dir: &Path,
    run: &str,
    node: SocketAddr,
    gateway: (u16, u16),
    admin: (u16, u16),
) -> String {
    let cassandra = format!(
        r#"mode = "external"
contact_points = ["{node}"]
container_contact_points = ["{NODE}:9042"]
published = true
attach_container = "{NODE}"
"#
    );
    config_with_cassandra(dir, run, &cassandra, gateway, admin)
}

/// Like [`config_text`], with `cassandra` (keys of `[cassandra]`, then
/// any `[[cassandra.clusters]]`) for the Cassandra part; the superuser
/// and a 60 s connect timeout are set in `[cassandra]`.
pub fn config_with_cassandra(
    dir: &Path,
    run: &str,
    cassandra: &str,
    gateway: (u16, u16),
    admin: (u16, u16),
) -> String {
    format!(
        r#"data_dir = "{dir}"
state = "{state}"

[docker]
network = "{NETWORK}"
container_prefix = "bench-{run}"
extra_labels = {{ "{BENCH_LABEL}" = "{run}" }}

[cassandra]
admin_user = "{user}"
admin_password = "{password}"
connect_timeout_secs = 60
{cassandra}
[ports]
gateway = "{g0}-{g1}"
admin = "{a0}-{a1}"
public_host = "127.0.0.1"

[health]
timeout_secs = 240
"#,
        dir = dir.display(),
        state = dir.join("state.db").display(),
        user = SUPERUSER.0,
        password = SUPERUSER.1,
        g0 = gateway.0,
        g1 = gateway.1,
        a0 = admin.0,
        a1 = admin.1,
    )
}

/// A binary next to the running one (the release directory), unless the
/// environment variable `env` names another.
pub fn sibling_binary(name: &str, env: &str) -> PathBuf {
    let path = std::env::var_os(env).map(PathBuf::from).unwrap_or_else(|| {
        let exe = std::env::current_exe().expect("own path");
        exe.parent().expect("release dir").join(name)
    });
    assert!(
        path.exists(),
        "no {name} binary at {} (cargo build --release -p provision-cli -p provisiond; or set {env})",
        path.display()
    );
    path
}

/// A `provisiond` this process started.
pub struct Daemon {
    child: tokio::process::Child,
    pub socket: PathBuf,
    pub log: PathBuf,
}

impl Daemon {
    /// Starts `provisiond --config <config> --socket <dir>/provisiond.sock`
    /// (and `--listen <listen>`), its log in `<dir>/provisiond.log`, and
    /// returns once `GET /healthz` on the socket answers 200.
    pub async fn start(
        provisiond: &Path,
        config: &Path,
        dir: &Path,
        listen: Option<&str>,
    ) -> Daemon {
        let socket = dir.join("provisiond.sock");
        let log = dir.join("provisiond.log");
        let mut command = tokio::process::Command::new(provisiond);
        command
            .arg("--config")
            .arg(config)
            .arg("--socket")
            .arg(&socket);
        if let Some(addr) = listen {
            command.args(["--listen", addr]);
        }
        let child = command
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).expect("the daemon's log file"))
            .kill_on_drop(true)
            .spawn()
            .expect("provisiond runs");
        let mut daemon = Daemon { child, socket, log };
        let started = Instant::now();
        loop {
            if let Ok(Some(status)) = daemon.child.try_wait() {
                panic!(
                    "provisiond exited ({status}):\n{}",
                    std::fs::read_to_string(&daemon.log).unwrap_or_default()
                );
            }
            if let Some((200, _)) = unix_get(&daemon.socket, "/healthz").await {
                break;
            }
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "provisiond did not answer on {} within 60 s",
                daemon.socket.display()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        eprintln!(
            "provisiond (pid {}) answered after {:.2} s",
            daemon.pid(),
            started.elapsed().as_secs_f64()
        );
        daemon
    }

    pub fn pid(&self) -> u32 {
        self.child.id().expect("provisiond runs")
    }

    /// `unix://<socket>`, for `provision --server`.
    pub fn server(&self) -> String {
        format!("unix://{}", self.socket.display())
    }

    /// SIGTERM, then waits (10 s at most, then SIGKILL).
    pub async fn stop(mut self) {
        if let Some(pid) = self.child.id() {
            let _ = std::process::Command::new("kill")
                .args(["-TERM", &pid.to_string()])
                .status();
        }
        if tokio::time::timeout(Duration::from_secs(10), self.child.wait())
            .await
            .is_err()
        {
            eprintln!("provisiond did not end within 10 s of SIGTERM: killed");
            let _ = self.child.kill().await;
        }
    }
}

/// `GET path` over a Unix socket (HTTP/1.1, connection closed): the status
/// and the body.
pub async fn unix_get(socket: &Path, path: &str) -> Option<(u16, String)> {
    let stream = tokio::net::UnixStream::connect(socket).await.ok()?;
    http_get(stream, path, None).await
}

/// `GET path` on a TCP address with a bearer token: the status and the body.
pub async fn tcp_get(addr: &str, path: &str, token: &str) -> Option<(u16, String)> {
    let stream = tokio::net::TcpStream::connect(addr).await.ok()?;
    http_get(stream, path, Some(token)).await
}

async fn http_get<S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin>(
    mut stream: S,
    path: &str,
    token: Option<&str>,
) -> Option<(u16, String)> {
    let auth = token
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    let request = format!("GET {path} HTTP/1.1\r\nHost: d\r\n{auth}Connection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.ok()?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).await.ok()?;
    let text = String::from_utf8_lossy(&raw);
    let status = text.split_whitespace().nth(1)?.parse().ok()?;
    let (head, body) = text.split_once("\r\n\r\n")?;
    let chunked = head
        .lines()
        .any(|l| l.eq_ignore_ascii_case("transfer-encoding: chunked"));
    let body = if chunked {
        dechunk(body)
    } else {
        body.to_owned()
    };
    Some((status, body))
}

fn dechunk(mut rest: &str) -> String {
    let mut out = String::new();
    while let Some((size, after)) = rest.split_once("\r\n") {
        let Ok(n) = usize::from_str_radix(size.trim(), 16) else {
            break;
        };
        if n == 0 || after.len() < n {
            break;
        }
        out.push_str(&after[..n]);
        rest = after[n..].trim_start_matches("\r\n");
    }
    out
}

/// Runs a bench's `measure` until it ends (or panics), or until the
/// process gets Ctrl-C or SIGTERM (`None`), so that the bench cleans up
/// what it made either way before it reports or re-raises the panic.
pub async fn until_interrupted<T>(
    measure: impl std::future::Future<Output = T>,
) -> Option<std::thread::Result<T>> {
    use futures::FutureExt;
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("a SIGTERM handler");
    tokio::select! {
        o = std::panic::AssertUnwindSafe(measure).catch_unwind() => Some(o),
        _ = tokio::signal::ctrl_c() => None,
        _ = term.recv() => None,
    }
}

/// A field of /proc/<pid>/status in KiB (`VmRSS:`, `VmHWM:`).
pub fn proc_kib(pid: u32, field: &str) -> Option<u64> {
    kib_field(
        &std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?,
        field,
    )
}

/// cgroup v1: the memory cgroup of `pid`, `memory.usage_in_bytes` −
/// `total_cache` of its `memory.stat` (what `docker stats` shows as usage
/// there); cgroup v2: `memory.current` − `file`.
pub fn cgroup_usage_without_cache(pid: u32) -> Option<u64> {
    let cgroups = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).ok()?;
    let stat_value = |stat: &str, key: &str| -> Option<u64> {
        stat.lines()
            .find_map(|l| l.strip_prefix(key)?.strip_prefix(' ')?.trim().parse().ok())
    };
    if let Some(path) = cgroups.lines().find_map(|l| {
        let mut f = l.splitn(3, ':');
        let (_, controllers, path) = (f.next()?, f.next()?, f.next()?);
        controllers
            .split(',')
            .any(|c| c == "memory")
            .then_some(path)
    }) {
        let dir = format!("/sys/fs/cgroup/memory{path}");
        let usage: u64 = std::fs::read_to_string(format!("{dir}/memory.usage_in_bytes"))
            .ok()?
            .trim()
            .parse()
            .ok()?;
        let stat = std::fs::read_to_string(format!("{dir}/memory.stat")).ok()?;
        return Some(usage.saturating_sub(stat_value(&stat, "total_cache").unwrap_or(0)));
    }
    let path = cgroups.lines().find_map(|l| l.strip_prefix("0::"))?;
    let dir = format!("/sys/fs/cgroup{path}");
    let current: u64 = std::fs::read_to_string(format!("{dir}/memory.current"))
        .ok()?
        .trim()
        .parse()
        .ok()?;
    let stat = std::fs::read_to_string(format!("{dir}/memory.stat")).ok()?;
    Some(current.saturating_sub(stat_value(&stat, "file").unwrap_or(0)))
}

pub fn random_suffix() -> String {
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    let mut rng = rand::thread_rng();
    (0..5)
        .map(|_| ALPHABET[rng.gen_range(0..ALPHABET.len())] as char)
        .collect()
}

/// The bench's own Cassandra node: reused when running, else created and
/// started. Returns where the host reaches CQL, and whether we started it.
pub async fn ensure_node(docker: &Docker) -> (SocketAddr, bool) {
    let labels = HashMap::from([(BENCH_LABEL.to_owned(), "node".to_owned())]);
    let network = NetworkCreateRequest {
        name: NETWORK.to_owned(),
        driver: Some("bridge".to_owned()),
        labels: Some(labels.clone()),
        ..Default::default()
    };
    // The engine allows two networks of one name: create only when missing.
    match docker.inspect_network(NETWORK, None).await {
        Ok(_) => {}
        Err(e) if is_not_found(&e) => match docker.create_network(network).await {
            Ok(_) => {}
            Err(e) if is_conflict(&e) => {}
            Err(e) => panic!("cannot create the network {NETWORK}: {e}"),
        },
        Err(e) => panic!("cannot inspect the network {NETWORK}: {e}"),
    }
    let running = match docker.inspect_container(NODE, None).await {
        Ok(i) => i.state.and_then(|s| s.running).unwrap_or(false),
        Err(e) if is_not_found(&e) => {
            let body = node_body(NODE, labels, vec!["CASSANDRA_HEAP=1G".to_owned()]);
            let options = CreateContainerOptionsBuilder::default().name(NODE).build();
            docker
                .create_container(Some(options), body)
                .await
                .unwrap_or_else(|e| panic!("cannot create {NODE}: {e}"));
            false
        }
        Err(e) => panic!("cannot inspect {NODE}: {e}"),
    };
    let started = Instant::now();
    if !running {
        eprintln!("starting the bench's Cassandra node {NODE}");
        docker
            .start_container(NODE, None)
            .await
            .unwrap_or_else(|e| panic!("cannot start {NODE}: {e}"));
    }
    let addr = published_cql(docker, NODE, started).await;
    if !running {
        eprintln!(
            "{NODE} answered CQL after {:.1} s",
            started.elapsed().as_secs_f64()
        );
    }
    (addr, !running)
}

/// Where the host reaches CQL on the started node container `name` (its
/// published 9042), once CQL answers as the [`SUPERUSER`]: polls the port
/// (30 s at most) and then a connection (240 s at most, both from
/// `started`).
pub async fn published_cql(docker: &Docker, name: &str, started: Instant) -> SocketAddr {
    let port: u16 = loop {
        let port = docker
            .inspect_container(name, None)
            .await
            .ok()
            .and_then(|i| i.network_settings?.ports)
            .and_then(|p| p.get("9042/tcp")?.as_ref()?.first()?.host_port.clone())
            .and_then(|p| p.parse().ok());
        if let Some(port) = port {
            break port;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "{name} published no port"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    loop {
        let attempt = connect_published(addr, SUPERUSER.0, SUPERUSER.1);
        if let Ok(Ok(_)) = tokio::time::timeout(Duration::from_secs(10), attempt).await {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(240),
            "{name} did not answer CQL within 240 s (docker logs {name})"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    addr
}

pub async fn remove_node(docker: &Docker) {
    let options = RemoveContainerOptionsBuilder::default()
        .force(true)
        .v(true)
        .build();
    let _ = docker.remove_container(NODE, Some(options)).await;
    let _ = docker.remove_network(NETWORK).await;
}

pub fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    if v.is_empty() {
        return f64::NAN;
    }
    v[v.len() / 2]
}

pub fn min(v: &[f64]) -> f64 {
    v.iter().copied().fold(f64::INFINITY, f64::min)
}

pub fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

pub fn kib_field(text: &str, name: &str) -> Option<u64> {
    text.lines()
        .find(|l| l.starts_with(name))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

/// What [`fleet_floor`] measured: frames written, their rate, the latency
/// of each from when it was due until it was durable (p50, p99, max), and
/// the writes that failed.
#[derive(Debug, Clone, Default)]
pub struct FloorRun {
    pub frames: u64,
    pub frames_per_sec: f64,
    pub p50: Duration,
    pub p99: Duration,
    pub max: Duration,
    pub errors: usize,
    /// Frames not written within [`FLOOR_GRACE`] after the run's end
    /// (an overloaded node): not waited for, not in the latencies.
    pub unfinished: u64,
}

/// How long after its duration [`fleet_floor`] waits for frames still
/// being written.
pub const FLOOR_GRACE: Duration = Duration::from_secs(30);

/// The floor of a fleet at a fixed rate: `gateways` writers
/// (`floor-0`, `floor-1`, ... as gateway ids, one partition each as the
/// fleet's gateways have), each making one frame per `1 / rate` seconds
/// from a phase spread evenly over the first interval, for `duration`,
/// and writing it straight through the driver with ingest's prepared
/// statements (`store`), grouped into requests as ingest groups them (a
/// [`WriteQueue`](ingest::write_queue::WriteQueue) with `grouping`; the
/// ingest container's is `Limits::from(&Settings::default()).writes`),
/// touching the gateway's `last_seen` at most once a second as ingest
/// does, at most `window` frames of a writer in flight (a gateway's
/// window: a writer whose window is full waits, and its next frames are
/// late). The frames are gateway-sim's (1 reading × `values` values),
/// decoded outside the clock. What `scripts/bench-ingest`'s floor
/// (`examples/bench.rs`, grouped) does at a fixed rate, without TCP, XML
/// or a gateway protocol: a frame's latency is from when it was due until
/// its request to Cassandra succeeded.
pub async fn fleet_floor(
    store: std::sync::Arc<ingest::store::Store>,
    grouping: ingest::write_queue::Grouping,
    gateways: usize,
    rate: f64,
    values: usize,
    duration: Duration,
    window: usize,
) -> FloorRun {
    use gateway_sim::sim::{make_frame, SimConfig, Stop};
    use ingest::protocol::{parse_frame, Frame, TimeBounds};
    use std::sync::Arc;
    use tenant_schema::model::GatewayId;

    assert!(rate > 0.0 && gateways > 0, "a fleet floor runs at a rate");
    let cfg = SimConfig {
        connector: Default::default(),
        addr: String::new(),
        gateways: Vec::new(),
        rate,
        stop: Stop::After(duration),
        readings_per_frame: 1,
        values_per_reading: values,
        window: 1,
        drain_timeout: Duration::from_secs(30),
    };
    let queue = ingest::write_queue::WriteQueue::start(
        store,
        Arc::new(ingest::metrics::Metrics::default()),
        grouping,
    );
    let start = Instant::now() + Duration::from_millis(50);
    let base = chrono::Utc::now();
    let interval = Duration::from_secs_f64(1.0 / rate);
    let mut writers = tokio::task::JoinSet::new();
    for g in 0..gateways {
        let queue = queue.clone();
        let cfg = cfg.clone();
        let begin = start + interval.mul_f64(g as f64 / gateways as f64);
        writers.spawn(async move {
            let gw = Arc::new(GatewayId::parse(&format!("floor-{g}")).expect("a valid id"));
            let slots = Arc::new(tokio::sync::Semaphore::new(window.max(1)));
            let mut writes = tokio::task::JoinSet::new();
            let mut last_touch: Option<Instant> = None;
            let mut seq = 0u32;
            loop {
                let due = begin + interval * seq;
                if due >= start + duration {
                    break;
                }
                tokio::time::sleep_until(due.into()).await;
                let Ok(slot) = tokio::time::timeout_at(
                    (start + duration).into(),
                    slots.clone().acquire_owned(),
                )
                .await
                else {
                    break;
                };
                let slot = slot.expect("never closed");
                let ts = base + chrono::TimeDelta::from_std(due - start).unwrap_or_default();
                let ts =
                    chrono::DateTime::from_timestamp_millis(ts.timestamp_millis()).unwrap_or(ts);
                let xml = make_frame(&cfg, i64::from(seq), ts);
                let window = TimeBounds::default().window(ts);
                let Ok(Frame::Data(frame)) = parse_frame(xml.as_bytes(), &window) else {
                    panic!("a gateway-sim frame does not decode")
                };
                let touch = last_touch.is_none_or(|t| t.elapsed() >= Duration::from_secs(1));
                if touch {
                    last_touch = Some(Instant::now());
                }
                let (queue, gw) = (queue.clone(), gw.clone());
                writes.spawn(async move {
                    let _slot = slot;
                    let ok = queue.write(gw, frame, touch).await.is_ok();
                    (ok, due.elapsed())
                });
                seq += 1;
            }
            let mut done = Vec::new();
            let grace = (start + duration + FLOOR_GRACE).into();
            while let Ok(Some(Ok(w))) = tokio::time::timeout_at(grace, writes.join_next()).await {
                done.push(w);
            }
            // what is left is not waited for (dropping the set aborts it)
            (done, writes.len() as u64)
        });
    }
    drop(queue);
    let mut latencies_us = Vec::new();
    let mut errors = 0;
    let mut unfinished = 0;
    while let Some(done) = writers.join_next().await {
        let (done, left) = done.expect("a floor writer");
        unfinished += left;
        for (ok, latency) in done {
            if ok {
                latencies_us.push(u64::try_from(latency.as_micros()).unwrap_or(u64::MAX));
            } else {
                errors += 1;
            }
        }
    }
    let elapsed = start.elapsed();
    latencies_us.sort_unstable();
    let q = |q: f64| quantile_us(&latencies_us, q);
    FloorRun {
        frames: latencies_us.len() as u64,
        frames_per_sec: latencies_us.len() as f64 / elapsed.as_secs_f64().max(1e-9),
        p50: q(0.5),
        p99: q(0.99),
        max: q(1.0),
        errors,
        unfinished,
    }
}

/// The `q` quantile (0..=1, nearest rank) of latencies in µs, sorted.
pub fn quantile_us(sorted_us: &[u64], q: f64) -> Duration {
    if sorted_us.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((q * sorted_us.len() as f64).ceil() as usize).clamp(1, sorted_us.len());
    Duration::from_micros(sorted_us[rank - 1])
}
