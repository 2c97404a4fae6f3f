//! Benchmarks the daemon `provisiond` with N running tenants (default 20),
//! each measure next to its floor in the same run. Prints markdown tables.
//!
//! The bench starts its own `provisiond --config <bench config> --socket
//! <dir>/provisiond.sock --listen 127.0.0.1:34900` on its own Cassandra
//! node (`provision-bench-cassandra`, shared with bench-provision: reused
//! when running, removed at the end unless `--keep-node`), port pools
//! 33000-33199 (gateway) and 34000-34199 (admin), takes an operator token
//! (`provision token create bench --json`, locally on the same config) and
//! starts the N tenants through the daemon (`provision --server unix://…
//! start`: the first alone, its memory noted, then the others at once).
//! Then:
//!
//! 1. **Idle RSS**: after the starts, a few requests (3 `GET /v1/tenants`
//!    and 3 `GET /v1/tenants/{id}` over TCP, each timed) and 10 s without any,
//!    `VmRSS` and `VmHWM` of the daemon from /proc/<pid>/status (sampled
//!    every second; the last sample, and the largest RSS seen).
//! 2. **`GET /v1/tenants` under load**: `wrk -t T -c C -d D --latency
//!    --timeout 60s` with the bearer token over the TCP listener, after
//!    one timed request (the engine's view is cached 2 s and served stale
//!    while it refreshes; after a change, or a minute without a list, a
//!    request waits for a fresh copy: one is timed after the watcher's
//!    repairs), with a probe beside wrk, next to the same
//!    load on `GET /healthz` (the same listener, token check and HTTP
//!    stack, no tenant data): p50/p90/p99, requests/s, and the daemon's
//!    CPU over each run.
//! 3. **The watcher**: for each sample a different tenant (so no repair
//!    backoff is involved), alternately its ingest and admin container:
//!    `docker rm -f` through the engine API, then a 100 ms poll of the
//!    engine until a new container of that name exists (the repair) and
//!    until its HEALTHCHECK status is `healthy`; no command is typed. The
//!    config keeps the default `[health] interval_secs` (10), the
//!    engine's HEALTHCHECK interval: the first check runs one interval
//!    after the container starts.
//!
//! At the end every tenant is destroyed through the daemon with
//! `--purge-data`, the daemon gets SIGTERM, and what is left carrying the
//! run's label is removed.
//!
//! `cargo run --release -p provision-testkit --bin bench-provisiond -- \
//!    [--tenants N] [--samples N] [--duration SECS] [--connections N] [--threads N] [--keep-node] [--keep-files]`

use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use bollard::query_parameters::RemoveContainerOptionsBuilder;
use bollard::Docker;
use futures::future::join_all;
use provision_testkit::bench::{
    config_text, ensure_node, loadavg, median, proc_kib, random_suffix, remove_node,
    sibling_binary, tcp_get, Daemon, BENCH_LABEL, SUPERUSER,
};
use provision_testkit::containers::container_state;
use provision_testkit::{docker, is_not_found};
use provisioner::cql::tenant::drop_tenant;
use provisioner::{Config, ProviderId, Role};
use tenant_schema::cql::connect_published;

/// The daemon's port pools (inclusive) and its TCP listener: no test and
/// no other bench uses them.
const GATEWAY: (u16, u16) = (33000, 33199);
const ADMIN: (u16, u16) = (34000, 34199);
const LISTEN: &str = "127.0.0.1:34900";
/// How long a removed container may take to be healthy again.
const REPAIR_TIMEOUT: Duration = Duration::from_secs(120);
const POLL: Duration = Duration::from_millis(100);
/// How many `GET /v1/tenants/{id}` before the idle RSS.
const FEW: usize = 3;

#[derive(Debug, Clone)]
struct Args {
    tenants: usize,
    samples: usize,
    duration: u64,
    connections: usize,
    threads: usize,
    keep_node: bool,
    keep_files: bool,
}

fn parse_args() -> Args {
    let mut args = Args {
        tenants: 20,
        samples: 6,
        duration: 20,
        connections: 50,
        threads: 2,
        keep_node: false,
        keep_files: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        let mut value = |name: &str| -> u64 {
            it.next()
                .and_then(|v| v.parse().ok())
                .unwrap_or_else(|| panic!("{name} needs a number"))
        };
        match a.as_str() {
            "--tenants" => args.tenants = value("--tenants") as usize,
            "--samples" => args.samples = value("--samples") as usize,
            "--duration" => args.duration = value("--duration"),
            "--connections" => args.connections = value("--connections") as usize,
            "--threads" => args.threads = value("--threads") as usize,
            "--keep-node" => args.keep_node = true,
            "--keep-files" => args.keep_files = true,
            "-h" | "--help" => {
                println!("usage: bench-provisiond [--tenants N] [--samples N] [--duration SECS] [--connections N] [--threads N] [--keep-node] [--keep-files]");
                std::process::exit(0);
            }
            other => panic!("unknown argument {other} (see --help)"),
        }
    }
    assert!(
        (1..=190).contains(&args.tenants),
        "--tenants must be 1..=190"
    );
    assert!(
        args.samples <= args.tenants,
        "--samples must not exceed --tenants (one tenant per sample)"
    );
    args
}

/// What one wrk run printed, parsed.
#[derive(Debug, Clone, Default)]
struct Load {
    path: String,
    /// p50, p75, p90, p99, ms.
    latency: [f64; 4],
    /// The mean and the largest latency, ms.
    mean: f64,
    max: f64,
    requests_per_sec: f64,
    requests: u64,
    /// Non-2xx/3xx answers, socket errors.
    bad: u64,
    errors: String,
    /// The daemon's CPU over the run, % of one core.
    cpu_percent: f64,
    /// A probe beside wrk: one request on a new connection every 200 ms,
    /// each timed (ms); wrk times only the answers within its timeout.
    probe: Vec<f64>,
}

/// One watcher sample: since `docker rm -f`, when the new container
/// existed and when it was healthy.
#[derive(Debug, Clone)]
struct Repair {
    container: String,
    recreated: Duration,
    healthy: Duration,
}

/// The daemon's memory at one moment, KiB, from /proc/<pid>/status.
#[derive(Debug, Clone, Copy, Default)]
struct Memory {
    rss: u64,
    hwm: u64,
    /// VmRSS split: anonymous memory (heap, stacks) and file pages (the
    /// binary's own code and data, mapped).
    anon: u64,
    file: u64,
}

#[derive(Debug, Clone, Default)]
struct Outcome {
    /// As soon as the daemon answered, no tenant known.
    fresh: Memory,
    /// After the first tenant's start.
    one_tenant: Memory,
    /// The other tenants, started at once.
    start_wall: Duration,
    /// After the starts and a few requests, 10 s idle.
    idle: Memory,
    /// The requests before the idle time, and how long each took.
    first_requests: Vec<(String, Duration)>,
    /// The largest VmRSS sampled during those 10 s.
    idle_largest: u64,
    after_load: Memory,
    loads: Vec<Load>,
    repairs: Vec<Repair>,
    /// After the watcher samples.
    end: Memory,
    /// `GET /v1/tenants` alone, just before wrk on it, and after the
    /// watcher's repairs.
    warm_up: Duration,
    after_changes: Duration,
    load: String,
}

struct Bench {
    args: Args,
    docker: Docker,
    dir: PathBuf,
    config_path: PathBuf,
    config: Config,
    provision: PathBuf,
    wrk: PathBuf,
    daemon: Option<Daemon>,
    run: String,
    ids: Vec<String>,
}

#[tokio::main]
async fn main() {
    use futures::FutureExt;
    let args = parse_args();
    let docker = docker().await;
    let (node_addr, node_created) = ensure_node(&docker).await;
    let run = random_suffix();
    let dir = std::env::temp_dir().join(format!("provisiond-bench-{run}"));
    std::fs::create_dir_all(&dir).expect("create the bench directory");
    let config_path = dir.join("provision.toml");
    std::fs::write(
        &config_path,
        config_text(&dir, &run, node_addr, GATEWAY, ADMIN),
    )
    .expect("write the config");
    let config = Config::load(Some(&config_path)).expect("the bench config parses");
    check_ports_free(args.tenants);
    let provision = sibling_binary("provision", "PROVISION_BIN");
    let provisiond = sibling_binary("provisiond", "PROVISIOND_BIN");
    let wrk = std::env::var_os("WRK")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("wrk"));
    let daemon = Daemon::start(&provisiond, &config_path, &dir, Some(LISTEN)).await;
    let ids = (0..args.tenants)
        .map(|i| format!("d{i:02}_{run}"))
        .collect();
    let mut bench = Bench {
        args: args.clone(),
        docker,
        dir,
        config_path,
        config,
        provision,
        wrk,
        daemon: Some(daemon),
        run,
        ids,
    };
    let outcome = std::panic::AssertUnwindSafe(bench.measure())
        .catch_unwind()
        .await;
    bench.cleanup().await;
    if let Some(daemon) = bench.daemon.take() {
        let log = std::fs::read_to_string(&daemon.log).unwrap_or_default();
        for line in log
            .lines()
            .filter(|l| l.contains("WARN") || l.contains("ERROR"))
        {
            eprintln!("provisiond: {line}");
        }
        daemon.stop().await;
    }
    if args.keep_files {
        eprintln!(
            "the bench's config and the daemon's log: {}",
            bench.dir.display()
        );
    } else {
        let _ = std::fs::remove_dir_all(&bench.dir);
    }
    if !args.keep_node && node_created {
        remove_node(&bench.docker).await;
    }
    match outcome {
        Ok(outcome) => print_report(&args, &outcome),
        Err(panic) => std::panic::resume_unwind(panic),
    }
}

/// Every port the bench needs must be free on the host.
fn check_ports_free(tenants: usize) {
    let n = tenants as u16;
    let busy: Vec<u16> = (GATEWAY.0..GATEWAY.0 + n)
        .chain(ADMIN.0..ADMIN.0 + n)
        .chain([LISTEN
            .rsplit(':')
            .next()
            .and_then(|p| p.parse().ok())
            .expect("a port")])
        .filter(|port| std::net::TcpListener::bind(("0.0.0.0", *port)).is_err())
        .collect();
    assert!(
        busy.is_empty(),
        "ports the bench needs are taken: {busy:?} (a leftover bench run? docker ps --filter label={BENCH_LABEL})"
    );
}

/// Runs a command; its stdout, or a panic with its output.
async fn output(mut command: tokio::process::Command, what: &str) -> String {
    let out = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .output()
        .await
        .unwrap_or_else(|e| panic!("{what}: cannot run: {e}"));
    assert!(
        out.status.success(),
        "{what} failed ({}):\n{}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// User+system CPU ticks (1/100 s) of a process.
fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let rest = stat.rfind(')').map(|i| &stat[i + 1..]).unwrap_or("");
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // Fields 14 and 15 of stat; `rest` starts at field 3.
    let field = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
    };
    field(11) + field(12)
}

/// A wrk latency such as `1.23ms`, `850.00us` or `1.02s`, in ms.
fn wrk_ms(text: &str) -> Option<f64> {
    let (number, factor) = if let Some(n) = text.strip_suffix("us") {
        (n, 0.001)
    } else if let Some(n) = text.strip_suffix("ms") {
        (n, 1.0)
    } else if let Some(n) = text.strip_suffix('m') {
        (n, 60_000.0)
    } else if let Some(n) = text.strip_suffix('s') {
        (n, 1000.0)
    } else {
        return None;
    };
    number.parse::<f64>().ok().map(|v| v * factor)
}

fn parse_wrk(path: &str, text: &str) -> Load {
    let mut load = Load {
        path: path.to_owned(),
        ..Default::default()
    };
    for line in text.lines() {
        let words: Vec<&str> = line.split_whitespace().collect();
        match words.as_slice() {
            [p, v] if ["50%", "75%", "90%", "99%"].contains(p) => {
                let i = ["50%", "75%", "90%", "99%"]
                    .iter()
                    .position(|x| x == p)
                    .expect("listed");
                load.latency[i] = wrk_ms(v).unwrap_or(f64::NAN);
            }
            ["Latency", mean, _, max, _] => {
                load.mean = wrk_ms(mean).unwrap_or(f64::NAN);
                load.max = wrk_ms(max).unwrap_or(f64::NAN);
            }
            ["Requests/sec:", v] => load.requests_per_sec = v.parse().unwrap_or(f64::NAN),
            [n, "requests", "in", ..] => load.requests = n.parse().unwrap_or(0),
            ["Non-2xx", "or", "3xx", "responses:", n] => load.bad += n.parse::<u64>().unwrap_or(0),
            ["Socket", "errors:", ..] => load.errors = line.trim().to_owned(),
            _ => {}
        }
    }
    load
}

impl Bench {
    fn daemon(&self) -> &Daemon {
        self.daemon.as_ref().expect("the daemon runs")
    }

    fn provision(&self) -> tokio::process::Command {
        let mut command = tokio::process::Command::new(&self.provision);
        command.arg("--config").arg(&self.config_path);
        command
    }

    fn through_daemon(&self) -> tokio::process::Command {
        let mut command = self.provision();
        command.arg("--server").arg(self.daemon().server());
        command
    }

    fn memory(&self) -> Memory {
        let pid = self.daemon().pid();
        let kib = |field| proc_kib(pid, field).unwrap_or(0);
        Memory {
            rss: kib("VmRSS:"),
            hwm: kib("VmHWM:"),
            anon: kib("RssAnon:"),
            file: kib("RssFile:"),
        }
    }

    async fn measure(&mut self) -> Outcome {
        let load_before = loadavg();
        let begun = Instant::now();
        let mut outcome = Outcome {
            fresh: self.memory(),
            ..Default::default()
        };
        let mut token = self.provision();
        token.args(["token", "create", &format!("bench_{}", self.run), "--json"]);
        let token: serde_json::Value =
            serde_json::from_str(&output(token, "provision token create").await)
                .expect("token create prints JSON");
        let token = token["token"].as_str().expect("a token").to_owned();

        // The first tenant alone, to tell what the daemon holds for its
        // first tenant (a CQL session, the pools) from what grows per tenant.
        let mut first = self.through_daemon();
        first.args(["--json", "start", &self.ids[0]]);
        output(first, "provision --server … start").await;
        outcome.one_tenant = self.memory();
        eprintln!("1 tenant: {:?}", outcome.one_tenant);
        eprintln!(
            "starting {} more tenants through the daemon",
            self.ids.len() - 1
        );
        let started = Instant::now();
        join_all(self.ids[1..].iter().map(|id| {
            let mut command = self.through_daemon();
            command.args(["--json", "start", id]);
            output(command, "provision --server … start")
        }))
        .await;
        outcome.start_wall = started.elapsed();
        eprintln!(
            "{} tenants started in {:.1} s (load {})",
            self.ids.len() - 1,
            outcome.start_wall.as_secs_f64(),
            loadavg()
        );

        // A few requests, each checked and timed.
        for _ in 0..3 {
            let asked = Instant::now();
            let (status, body) = tcp_get(LISTEN, "/v1/tenants", &token)
                .await
                .expect("the daemon answers on TCP");
            assert_eq!(status, 200, "GET /v1/tenants: {body}");
            let list: Vec<serde_json::Value> =
                serde_json::from_str(&body).expect("GET /v1/tenants is a JSON array");
            assert_eq!(list.len(), self.ids.len(), "every tenant is listed");
            outcome
                .first_requests
                .push(("/v1/tenants".to_owned(), asked.elapsed()));
        }
        for id in self.ids.iter().take(FEW) {
            let path = format!("/v1/tenants/{id}");
            let asked = Instant::now();
            let (status, body) = tcp_get(LISTEN, &path, &token)
                .await
                .expect("the daemon answers on TCP");
            assert_eq!(status, 200, "GET {path}: {body}");
            outcome.first_requests.push((path, asked.elapsed()));
        }
        let mut largest = 0;
        for _ in 0..10 {
            tokio::time::sleep(Duration::from_secs(1)).await;
            largest = largest.max(self.memory().rss);
        }
        outcome.idle = self.memory();
        outcome.idle_largest = largest;
        eprintln!("idle: {:?}", outcome.idle);

        for path in ["/healthz", "/v1/tenants"] {
            if path == "/v1/tenants" {
                // The steady state: a copy of the engine's view exists (a
                // list after a change, or after a minute without one,
                // waits for a fresh copy; measured at the end).
                let asked = Instant::now();
                let (status, _) = tcp_get(LISTEN, path, &token).await.expect("answers");
                assert_eq!(status, 200);
                outcome.warm_up = asked.elapsed();
            }
            let load = self.wrk(path, &token).await;
            eprintln!(
                "wrk {path}: p50 {:.2} ms, p99 {:.2} ms, {:.0} req/s (load {})",
                load.latency[0],
                load.latency[3],
                load.requests_per_sec,
                loadavg()
            );
            outcome.loads.push(load);
        }
        outcome.after_load = self.memory();

        for k in 0..self.args.samples {
            let role = [Role::Ingest, Role::Admin][k % 2];
            let repair = self.repair_sample(&self.ids[k], role).await;
            eprintln!(
                "watcher: {} recreated after {:.2} s, healthy after {:.2} s",
                repair.container,
                repair.recreated.as_secs_f64(),
                repair.healthy.as_secs_f64()
            );
            outcome.repairs.push(repair);
        }
        outcome.end = self.memory();
        // After the watcher's repairs (changes): this one waits for a fresh
        // copy of the engine's view.
        let asked = Instant::now();
        let (status, _) = tcp_get(LISTEN, "/v1/tenants", &token)
            .await
            .expect("answers");
        assert_eq!(status, 200);
        outcome.after_changes = asked.elapsed();
        outcome.load = format!(
            "load average before {load_before}, after {}; bench took {:.0} s",
            loadavg(),
            begun.elapsed().as_secs_f64()
        );
        outcome
    }

    async fn wrk(&self, path: &str, token: &str) -> Load {
        let pid = self.daemon().pid();
        let mut command = tokio::process::Command::new(&self.wrk);
        command
            .arg(format!("-t{}", self.args.threads))
            .arg(format!("-c{}", self.args.connections))
            .arg(format!("-d{}s", self.args.duration))
            .arg("--latency")
            // Longer than any answer: wrk leaves a slower one out of the
            // latencies (and counts it a timeout).
            .args(["--timeout", "60s"])
            .args(["-H", &format!("Authorization: Bearer {token}")])
            .arg(format!("http://{LISTEN}{path}"));
        let (ticks, started) = (cpu_ticks(pid), Instant::now());
        let done = std::sync::atomic::AtomicBool::new(false);
        let probe = async {
            let mut times = Vec::new();
            while !done.load(std::sync::atomic::Ordering::Relaxed) {
                let asked = Instant::now();
                if let Some((200, _)) = tcp_get(LISTEN, path, token).await {
                    times.push(asked.elapsed().as_secs_f64() * 1000.0);
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            times
        };
        let run = async {
            let text = output(command, "wrk (apt-get install wrk)").await;
            done.store(true, std::sync::atomic::Ordering::Relaxed);
            text
        };
        let (text, probe) = tokio::join!(run, probe);
        let cpu = (cpu_ticks(pid) - ticks) as f64 * 10.0;
        eprintln!("{text}");
        let mut load = parse_wrk(path, &text);
        load.cpu_percent = cpu / started.elapsed().as_millis() as f64 * 100.0;
        load.probe = probe;
        load
    }

    /// Removes one tenant container and waits until the watcher has
    /// brought it back healthy.
    async fn repair_sample(&self, id: &str, role: Role) -> Repair {
        let name = self
            .config
            .container_name(&ProviderId::parse(id).expect("a valid id"), role);
        // Healthy first: a fresh container's first check is one interval in.
        let deadline = Instant::now() + REPAIR_TIMEOUT;
        loop {
            let state = container_state(&self.docker, &name).await;
            if state.is_ok_and(|s| s.health.as_deref() == Some("healthy")) {
                break;
            }
            assert!(Instant::now() < deadline, "{name} never became healthy");
            tokio::time::sleep(POLL).await;
        }
        let old = self
            .docker
            .inspect_container(&name, None)
            .await
            .expect("inspect")
            .id;
        let options = RemoveContainerOptionsBuilder::default().force(true).build();
        let removed = Instant::now();
        self.docker
            .remove_container(&name, Some(options))
            .await
            .unwrap_or_else(|e| panic!("docker rm -f {name}: {e}"));
        let mut recreated = None;
        loop {
            if let Ok(inspect) = self.docker.inspect_container(&name, None).await {
                if inspect.id != old {
                    recreated.get_or_insert_with(|| removed.elapsed());
                    let healthy = inspect
                        .state
                        .and_then(|s| s.health)
                        .and_then(|h| h.status)
                        .is_some_and(|s| s.to_string() == "healthy");
                    if healthy {
                        return Repair {
                            container: name,
                            recreated: recreated.expect("set above"),
                            healthy: removed.elapsed(),
                        };
                    }
                }
            }
            assert!(
                removed.elapsed() < REPAIR_TIMEOUT,
                "{name} was not healthy again within {} s of docker rm -f",
                REPAIR_TIMEOUT.as_secs()
            );
            tokio::time::sleep(POLL).await;
        }
    }

    /// Every tenant destroyed through the daemon (`--purge-data`); then
    /// whatever is left with the run's label, and the tenants' keyspaces
    /// and roles if a destroy failed.
    async fn cleanup(&self) {
        let destroyed = join_all(self.ids.iter().map(|id| async move {
            let mut command = self.through_daemon();
            command
                .args(["destroy", id, "--yes", "--purge-data"])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::piped());
            let out = command.output().await.expect("provision runs");
            (id, out)
        }))
        .await;
        let failed: Vec<&String> = destroyed
            .iter()
            .filter(|(_, out)| !out.status.success())
            .map(|(id, _)| *id)
            .collect();
        provision_testkit::remove_labelled(&self.docker, &format!("{BENCH_LABEL}={}", self.run))
            .await;
        if failed.is_empty() {
            return;
        }
        eprintln!(
            "{} destroy(s) failed (tenants never started?): dropping their data directly",
            failed.len()
        );
        let node = self.config.cassandra.contact_points[0]
            .parse()
            .expect("an address");
        if let Ok(admin) = connect_published(node, SUPERUSER.0, SUPERUSER.1).await {
            for id in failed {
                if let Ok(pid) = ProviderId::parse(id) {
                    let _ = drop_tenant(&admin, &pid).await;
                }
            }
        }
        for id in &self.ids {
            let network = self
                .config
                .tenant_network(&ProviderId::parse(id).expect("a valid id"));
            match self.docker.remove_network(&network).await {
                Ok(()) => {}
                Err(e) if is_not_found(&e) => {}
                Err(e) => eprintln!("cannot remove the network {network}: {e}"),
            }
        }
    }
}

fn mib(kib: u64) -> String {
    format!("{:.1} MiB", kib as f64 / 1024.0)
}

fn print_report(args: &Args, o: &Outcome) {
    let n = args.tenants;
    println!();
    println!(
        "### `GET /v1/tenants` with {n} running tenants: wrk -t{} -c{} -d{}s over TCP, with a token",
        args.threads, args.connections, args.duration
    );
    println!();
    println!("| route | p50 | p75 | p90 | p99 | max | mean | requests/s | requests | non-2xx | daemon CPU |");
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for l in &o.loads {
        println!(
            "| `GET {}` | {:.2} ms | {:.2} ms | {:.2} ms | {:.2} ms | {:.1} ms | {:.2} ms | {:.0} | {} | {} | {:.0} % |",
            l.path,
            l.latency[0],
            l.latency[1],
            l.latency[2],
            l.latency[3],
            l.max,
            l.mean,
            l.requests_per_sec,
            l.requests,
            l.bad,
            l.cpu_percent
        );
    }
    if let [floor, list] = o.loads.as_slice() {
        println!(
            "| ratio list / healthz | {:.2} | {:.2} | {:.2} | {:.2} | {:.2} | {:.2} | {:.2} | | | |",
            list.latency[0] / floor.latency[0],
            list.latency[1] / floor.latency[1],
            list.latency[2] / floor.latency[2],
            list.latency[3] / floor.latency[3],
            list.max / floor.max,
            list.mean / floor.mean,
            list.requests_per_sec / floor.requests_per_sec
        );
    }
    println!();
    println!("| probe beside wrk (one request on a new connection every 200 ms) | requests | p50 | p90 | max |");
    println!("|---|---:|---:|---:|---:|");
    for l in &o.loads {
        let mut v = l.probe.clone();
        v.sort_by(|a, b| a.total_cmp(b));
        let at = |q: f64| {
            v.get(((v.len() as f64 * q) as usize).min(v.len().saturating_sub(1)))
                .copied()
                .unwrap_or(f64::NAN)
        };
        println!(
            "| `GET {}` | {} | {:.1} ms | {:.1} ms | {:.1} ms |",
            l.path,
            v.len(),
            at(0.5),
            at(0.9),
            v.last().copied().unwrap_or(f64::NAN)
        );
    }
    for l in o.loads.iter().filter(|l| !l.errors.is_empty()) {
        println!();
        println!("wrk on `{}`: {}", l.path, l.errors);
    }
    println!();
    println!(
        "### The watcher: `docker rm -f` of a tenant container until it is healthy again ({} samples, [health] interval_secs 10)",
        o.repairs.len()
    );
    println!();
    println!("| sample | container | recreated after | healthy after |");
    println!("|---|---|---:|---:|");
    for (i, r) in o.repairs.iter().enumerate() {
        println!(
            "| {} | {} | {:.2} s | {:.2} s |",
            i + 1,
            r.container,
            r.recreated.as_secs_f64(),
            r.healthy.as_secs_f64()
        );
    }
    let recreated: Vec<f64> = o
        .repairs
        .iter()
        .map(|r| r.recreated.as_secs_f64())
        .collect();
    let healthy: Vec<f64> = o.repairs.iter().map(|r| r.healthy.as_secs_f64()).collect();
    let max = |v: &[f64]| v.iter().copied().fold(0.0, f64::max);
    println!(
        "| **median / max** | | {:.2} s / {:.2} s | **{:.2} s / {:.2} s** |",
        median(recreated.clone()),
        max(&recreated),
        median(healthy.clone()),
        max(&healthy)
    );
    println!();
    println!("### provisiond memory with {n} tenants");
    println!();
    println!("| when | VmRSS | VmHWM | RssAnon | RssFile |");
    println!("|---|---:|---:|---:|---:|");
    let row = |when: &str, m: &Memory| {
        println!(
            "| {when} | {} | {} | {} | {} |",
            mib(m.rss),
            mib(m.hwm),
            mib(m.anon),
            mib(m.file)
        );
    };
    row("just started (answers /healthz, no tenant)", &o.fresh);
    row("after the first tenant's start", &o.one_tenant);
    row(
        &format!(
            "**idle**: {n} tenants started through it, {} requests, then 10 s idle (largest VmRSS in those 10 s: {})",
            o.first_requests.len(),
            mib(o.idle_largest)
        ),
        &o.idle,
    );
    row("after the two wrk runs", &o.after_load);
    row("after the watcher samples", &o.end);
    println!();
    println!("| measure | value |");
    println!("|---|---|");
    println!(
        "| `GET /v1/tenants` alone just before wrk on it / after the watcher's repairs (a fresh copy) | {:.3} s / {:.3} s |",
        o.warm_up.as_secs_f64(),
        o.after_changes.as_secs_f64()
    );
    for (i, (path, took)) in o.first_requests.iter().enumerate() {
        println!(
            "| request {} before the idle time, alone: `GET {path}` | {:.3} s |",
            i + 1,
            took.as_secs_f64()
        );
    }
    println!(
        "| {} tenants started at once through the daemon (after the first alone) | {:.1} s |",
        n - 1,
        o.start_wall.as_secs_f64()
    );
    println!("| machine | {} |", o.load);
}
