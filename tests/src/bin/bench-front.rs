//! Benchmarks the front (`[front] enabled = true`: the per-host HAProxy
//! that binds every tenant's public ports), three measures in one run,
//! each next to what it is compared with. Prints markdown tables.
//!
//! Everything runs on the real engine with the real `provision` binary
//! next to this one, against the benchmarks' own Cassandra node
//! (`provision-bench-cassandra` on `provision-bench-net`, shared with
//! bench-provision: reused when it runs, removed at the end when this run
//! started it, unless `--keep-node`), on configs of the run's own that
//! bind 127.0.0.1 only: **front** (`[front] enabled = true`, a front
//! container `bench-<run>-front…` of its own) and **direct** (`[front]
//! enabled = false`: each app publishes its own port).
//!
//! 1. **Ingest through the front against direct.** One tenant started in
//!    each config, the same N gateways commissioned in both (one token).
//!    gateway-sim's load generator (`gateway_sim::sim`, what
//!    `scripts/bench-ingest` drives) sends frames of 1 reading × 2 values
//!    to `127.0.0.1:<gateway port>`: for the front's tenant through
//!    HAProxy (TCP mode, a PROXY v2 header, to the ingest container on its
//!    bridge); for the direct tenant through the engine's forwarding of the
//!    published port (on an engine without the userland proxy, as
//!    scripts/setup starts it: the kernel's NAT, what a gateway on another
//!    host gets too). First saturated (W unacked frames per gateway), then
//!    at fixed rates in all (`--fixed-rates`, default 10,000 frames/s, the
//!    goal's), spread over the gateways. The two sides alternate round
//!    after round, taking turns going first, so drifts of the machine hit
//!    both; a cell is the median round, the rounds are printed in pairs,
//!    and the verdicts use the pairs' mean with its 95% interval. Each run
//!    notes the CPU (in cores) of this process (the gateways), the
//!    Cassandra JVM, the side's ingest container and, for the front,
//!    HAProxy's master and worker. All of it twice (`--commitlog`): on the
//!    benchmarks' node, which syncs its commit log as production does
//!    (group, 5 ms: a reading is acked once fsynced), then on a node of
//!    the run's own that syncs it every 10 s (periodic: acked before the
//!    fsync), where the node's own latency is small enough for the front's
//!    share to show; that node is removed after its rounds.
//! 2. **The front's RSS.** A configuration of K routes (K/2 tenants ×
//!    gateway + admin port on 127.0.0.1:26000+, no targets: every server
//!    disabled) rendered and written by the provisioner's own code
//!    (`provisioner::front::render` through `FrontDir::write`, the global
//!    section from `runtime::global`), run by the backend's `ensure_front`
//!    (the real `provision/front:dev` container: host network, read-only,
//!    no capabilities); once the admin socket reports its generation and
//!    every port accepts, 5 s idle: VmRSS and PSS of HAProxy's master and
//!    worker. K = 2 and 200 (`--rss-ports`), alternately, `--rss-rounds`
//!    times each.
//! 3. **Upgrade times.** T tenants (default 20) started behind the front
//!    (5 at once) on the benchmarks' node; the tenant images retagged
//!    twice (`FROM <image>` plus a label: new image ids, the same
//!    binaries); `provision --json upgrade <id> --image-tag A` for S
//!    tenants one after another, then `provision --json upgrade --all
//!    --image-tag B --parallelism P` for all of them: the wall clock of
//!    each command, and the per-tenant `secs` of its report. Also the real
//!    front's RSS with the T tenants' 2T ports.
//!
//! At the end every tenant is destroyed (`--purge-data`), whatever carries
//! the run's label (`io.provision.bench=<run>`: containers, networks) is
//! removed, and so are the image tags the run built; also after a failure
//! or Ctrl-C.
//!
//! `cargo run --release -p provision-testkit --bin bench-front -- [--parts ingest,rss,upgrade]
//!    [--gateways 10,100] [--fixed-rates 10000] [--commitlog group,periodic] [--seconds S]
//!    [--fixed-seconds S] [--warmup-seconds S] [--rounds R] [--window W] [--rss-ports 2,200]
//!    [--rss-rounds N] [--tenants T] [--singles S] [--parallelism P] [--keep-node] [--keep-files]`

use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use std::collections::HashMap;

use bollard::query_parameters::{CreateContainerOptionsBuilder, RemoveImageOptionsBuilder};
use bollard::Docker;
use futures::StreamExt;
use gateway_sim::sim::{self, Report, SimConfig, Stop};
use provision_testkit::apps::commission_gateway_with;
use provision_testkit::bench::{
    config_text, ensure_node, kib_field, loadavg, median, node_body, random_suffix, remove_node,
    sibling_binary, BENCH_LABEL, NODE, SUPERUSER,
};
use provision_testkit::containers::{
    admin_image, container_state, ingest_image, notifier_image, process_cpu_time,
};
use provision_testkit::{bench, docker, remove_labelled};
use provisioner::cql::tenant::drop_tenant;
use provisioner::front::runtime::{self, FrontDir};
use provisioner::front::{App, Front, Route};
use provisioner::{Config, ProviderId, Role};
use serde_json::Value;
use tenant_schema::cql::connect_published;
use tenant_schema::model::new_gateway_token;

/// The port pools (gateway, admin; inclusive) of the two configs, and the
/// first port of the RSS measure's routes: below the ephemeral range
/// (32768+), apart from every test's and every other bench's.
const FRONT_POOLS: ((u16, u16), (u16, u16)) = ((25000, 25049), (25100, 25149));
const DIRECT_POOLS: ((u16, u16), (u16, u16)) = ((25050, 25059), (25150, 25159));
/// The same on the periodic node.
const FRONT_POOLS_PERIODIC: ((u16, u16), (u16, u16)) = ((25060, 25069), (25160, 25169));
const DIRECT_POOLS_PERIODIC: ((u16, u16), (u16, u16)) = ((25070, 25079), (25170, 25179));
const RSS_BASE: u16 = 26000;
/// How long a front may take to serve its generation.
const FRONT_READY: Duration = Duration::from_secs(30);
/// Idle time before the RSS is read.
const SETTLE: Duration = Duration::from_secs(5);
/// Tenants started at once before the upgrades.
const START_AT_ONCE: usize = 5;

#[derive(Debug, Clone)]
struct Args {
    ingest: bool,
    rss: bool,
    upgrade: bool,
    gateways: Vec<usize>,
    /// Frames/s in all; the first is the goal's.
    fixed_rates: Vec<f64>,
    /// How the nodes of the ingest comparison sync their commit log.
    commitlogs: Vec<Commitlog>,
    seconds: f64,
    fixed_seconds: f64,
    warmup_seconds: f64,
    rounds: usize,
    window: usize,
    rss_ports: Vec<usize>,
    rss_rounds: usize,
    tenants: usize,
    singles: usize,
    parallelism: usize,
    keep_node: bool,
    keep_files: bool,
}

/// How a Cassandra node of the ingest comparison syncs its commit log
/// (the image's `CASSANDRA_COMMITLOG_SYNC`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Commitlog {
    /// The image's default, the production setting: an fsync every 5 ms,
    /// a write answered after it. The benchmarks' node.
    Group,
    /// An fsync every 10 s, a write answered before it: a node of the run's
    /// own.
    Periodic,
}

impl Commitlog {
    fn label(self) -> &'static str {
        match self {
            Commitlog::Group => "group 5 ms (the default: a reading is acked once fsynced)",
            Commitlog::Periodic => "periodic 10 s (acked before the fsync)",
        }
    }

    fn short(self) -> &'static str {
        match self {
            Commitlog::Group => "g",
            Commitlog::Periodic => "p",
        }
    }
}

const USAGE: &str = "usage: bench-front [--parts ingest,rss,upgrade] [--gateways 10,100] [--fixed-rates 10000] [--commitlog group,periodic] [--seconds S] [--fixed-seconds S] [--warmup-seconds S] [--rounds R] [--window W] [--rss-ports 2,200] [--rss-rounds N] [--tenants T] [--singles S] [--parallelism P] [--keep-node] [--keep-files]";

fn parse_args() -> Args {
    let mut args = Args {
        ingest: true,
        rss: true,
        upgrade: true,
        gateways: vec![10, 100],
        fixed_rates: vec![10_000.0],
        commitlogs: vec![Commitlog::Group, Commitlog::Periodic],
        seconds: 15.0,
        fixed_seconds: 15.0,
        warmup_seconds: 90.0,
        rounds: 6,
        window: 32,
        rss_ports: vec![2, 200],
        rss_rounds: 2,
        tenants: 20,
        singles: 3,
        parallelism: 5,
        keep_node: false,
        keep_files: false,
    };
    let list = |v: &str, name: &str| -> Vec<usize> {
        v.split(',')
            .map(|n| {
                n.parse()
                    .unwrap_or_else(|_| panic!("{name}: a list of numbers"))
            })
            .collect()
    };
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        let mut value = |name: &str| -> String {
            it.next()
                .unwrap_or_else(|| panic!("{name} needs a value\n{USAGE}"))
        };
        let number = |name: &str, v: String| -> f64 {
            v.parse()
                .unwrap_or_else(|_| panic!("{name} needs a number\n{USAGE}"))
        };
        match a.as_str() {
            "--parts" => {
                let parts = value("--parts");
                let parts: Vec<&str> = parts.split(',').collect();
                for p in &parts {
                    assert!(
                        ["ingest", "rss", "upgrade"].contains(p),
                        "--parts: ingest, rss, upgrade"
                    );
                }
                args.ingest = parts.contains(&"ingest");
                args.rss = parts.contains(&"rss");
                args.upgrade = parts.contains(&"upgrade");
            }
            "--commitlog" => {
                args.commitlogs = value("--commitlog")
                    .split(',')
                    .map(|m| match m {
                        "group" => Commitlog::Group,
                        "periodic" => Commitlog::Periodic,
                        _ => panic!("--commitlog: group, periodic"),
                    })
                    .collect()
            }
            "--gateways" => args.gateways = list(&value("--gateways"), "--gateways"),
            "--fixed-rates" => {
                args.fixed_rates = list(&value("--fixed-rates"), "--fixed-rates")
                    .into_iter()
                    .map(|r| r as f64)
                    .collect()
            }
            "--seconds" => args.seconds = number(&a, value(&a)),
            "--fixed-seconds" => args.fixed_seconds = number(&a, value(&a)),
            "--warmup-seconds" => args.warmup_seconds = number(&a, value(&a)),
            "--rounds" => args.rounds = number(&a, value(&a)) as usize,
            "--window" => args.window = number(&a, value(&a)) as usize,
            "--rss-ports" => args.rss_ports = list(&value("--rss-ports"), "--rss-ports"),
            "--rss-rounds" => args.rss_rounds = number(&a, value(&a)) as usize,
            "--tenants" => args.tenants = number(&a, value(&a)) as usize,
            "--singles" => args.singles = number(&a, value(&a)) as usize,
            "--parallelism" => args.parallelism = number(&a, value(&a)) as usize,
            "--keep-node" => args.keep_node = true,
            "--keep-files" => args.keep_files = true,
            "-h" | "--help" => {
                println!("{USAGE}");
                std::process::exit(0);
            }
            other => panic!("unknown argument {other}\n{USAGE}"),
        }
    }
    let pool = (FRONT_POOLS.0 .1 - FRONT_POOLS.0 .0) as usize;
    assert!(
        (1..pool).contains(&args.tenants),
        "--tenants must be 1..{pool}"
    );
    assert!(
        args.singles <= args.tenants,
        "--singles must not exceed --tenants"
    );
    assert!(args.rounds >= 1 && args.window >= 1 && args.parallelism >= 1);
    assert!(
        args.rss_ports
            .iter()
            .all(|k| k % 2 == 0 && (2..=200).contains(k)),
        "--rss-ports: even numbers of 2..=200 (gateway + admin per tenant)"
    );
    assert!(args.gateways.iter().all(|&n| n >= 1));
    assert!(
        !args.fixed_rates.is_empty() && args.fixed_rates.iter().all(|&r| r > 0.0),
        "--fixed-rates: frames/s in all, at least one"
    );
    args
}

/// One provisioner config of the run.
struct Env {
    name: &'static str,
    path: PathBuf,
    config: Config,
}

impl Env {
    /// A config on the bench node with its own data directory and pools,
    /// binding 127.0.0.1, with the front on or off.
    #[allow(clippy::too_many_arguments)]
    fn write(
        dir: &Path,
        run: &str,
        node: SocketAddr,
        node_name: &str,
        name: &'static str,
        pools: ((u16, u16), (u16, u16)),
        front: bool,
        front_container: &str,
    ) -> Env {
        let dir = dir.join(name);
        std::fs::create_dir_all(&dir).expect("the config's directory");
        let public = "public_host = \"127.0.0.1\"\n";
        let base = config_text(&dir, run, node, pools.0, pools.1);
        assert!(base.contains(public), "config_text changed: {base}");
        // config_text names the benchmarks' node; another node of the
        // network is named the same two ways (contact point, attached).
        let bench_node = format!("\"{NODE}");
        assert_eq!(
            base.matches(&bench_node).count(),
            2,
            "config_text changed: {base}"
        );
        let mut text = base
            .replace(&bench_node, &format!("\"{node_name}"))
            .replace(public, &format!("{public}bind_address = \"127.0.0.1\"\n"));
        text.push_str(&format!(
            "\n[front]\nenabled = {front}\ncontainer = \"{front_container}\"\n"
        ));
        let path = dir.join("provision.toml");
        std::fs::write(&path, text).expect("write the config");
        let config = Config::load(Some(&path)).expect("the bench config parses");
        Env { name, path, config }
    }

    fn ingest(&self, id: &str) -> String {
        self.config
            .container_name(&ProviderId::parse(id).expect("a valid id"), Role::Ingest)
    }
}

/// What one `provision` run gave.
struct Ran {
    code: i32,
    stdout: String,
    stderr: String,
    wall: Duration,
}

impl Ran {
    fn json(&self, what: &str) -> Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| {
            panic!(
                "{what}: no JSON ({e}), exit {}:\n{}\n{}",
                self.code, self.stdout, self.stderr
            )
        })
    }

    fn ok(self, what: &str) -> Ran {
        assert_eq!(
            self.code, 0,
            "{what} failed:\n{}\n{}",
            self.stdout, self.stderr
        );
        self
    }
}

/// One side of the ingest comparison.
struct Side {
    name: &'static str,
    addr: String,
    /// The side's ingest container.
    ingest: String,
    /// The front's container (its HAProxy master and worker), if any.
    front: Option<String>,
    /// The Cassandra node's container.
    cassandra: String,
}

/// One run of gateway-sim against one side.
#[derive(Debug, Clone)]
struct Sample {
    frames_per_sec: f64,
    p50: Duration,
    p90: Duration,
    p99: Duration,
    max: Duration,
    errors: usize,
    first_error: Option<String>,
    /// Cores used during the run: this process, Cassandra, the side's
    /// ingest, HAProxy (front side only).
    cores: [Option<f64>; 4],
}

impl Sample {
    fn new(r: &Report, cores: [Option<f64>; 4]) -> Sample {
        Sample {
            frames_per_sec: r.frames_per_sec(),
            p50: r.latency(0.50),
            p90: r.latency(0.90),
            p99: r.latency(0.99),
            max: r.max_latency(),
            errors: r.errors.len(),
            first_error: r.errors.first().cloned(),
            cores,
        }
    }

    fn cores_text(&self) -> String {
        let c = |v: Option<f64>| v.map_or("–".to_owned(), |v| format!("{v:.2}"));
        format!(
            "{} + {} + {} + {}",
            c(self.cores[0]),
            c(self.cores[1]),
            c(self.cores[2]),
            c(self.cores[3])
        )
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// The runs of one gateway count: per load (saturated, then each fixed
/// rate), `[front, direct]` round by round; and which side went first in
/// each round.
struct IngestRow {
    gateways: usize,
    loads: Vec<Load>,
    first: Vec<&'static str>,
    /// docker-proxy processes running while the direct tenant did (the
    /// engine's userland proxy: then "direct" is a user-space relay too).
    userland_proxies: usize,
}

struct Load {
    /// Frames/s in all; 0: saturated.
    rate: f64,
    runs: [Vec<Sample>; 2],
}

impl Load {
    fn label(&self) -> String {
        match self.rate {
            r if r > 0.0 => format!("{} frames/s", thousands(r)),
            _ => "saturated".to_owned(),
        }
    }

    /// The median round of each side: by frames/s saturated, by p99 at a
    /// fixed rate.
    fn medians(&self) -> [Sample; 2] {
        let key = |s: &Sample| match self.rate > 0.0 {
            true => s.p99.as_secs_f64(),
            false => s.frames_per_sec,
        };
        [median_by(&self.runs[0], key), median_by(&self.runs[1], key)]
    }
}

/// `12345.0` as `12,345`.
fn thousands(v: f64) -> String {
    let digits = format!("{:.0}", v);
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// The run whose `key` is the median of `runs` (the upper one of an even count).
fn median_by(runs: &[Sample], key: impl Fn(&Sample) -> f64) -> Sample {
    let mut sorted = runs.to_vec();
    sorted.sort_by(|a, b| key(a).total_cmp(&key(b)));
    sorted.swap_remove(sorted.len() / 2)
}

/// HAProxy's memory with K routes.
#[derive(Debug, Clone)]
struct RssSample {
    ports: usize,
    /// From `ensure_front` until the generation is served.
    ready: Duration,
    master_rss: u64,
    /// Every worker (one, unless a reload left an old one).
    worker_rss: u64,
    workers: usize,
    pss: u64,
    threads: u64,
}

/// The upgrade measure.
#[derive(Debug, Clone, Default)]
struct UpgradeOutcome {
    tenants: usize,
    start_wall: Duration,
    /// The real front with every tenant's two ports.
    front_rss: Option<RssSample>,
    /// `upgrade <id>`: the id, the wall clock, the report's `secs`, the result.
    singles: Vec<(String, Duration, f64, String)>,
    all_wall: Duration,
    all_secs: f64,
    all_code: i32,
    /// `upgrade --all`: per tenant, in the report's order: id, secs, result.
    per_tenant: Vec<(String, f64, String)>,
}

#[derive(Default)]
struct Outcome {
    ingest: Vec<(Commitlog, Vec<IngestRow>)>,
    rss: Vec<RssSample>,
    upgrade: Option<UpgradeOutcome>,
    began_utc: String,
    ended_utc: String,
    load_before: String,
    load_after: String,
}

struct Bench {
    args: Args,
    docker: Docker,
    run: String,
    dir: PathBuf,
    /// The benchmarks' node (group sync).
    node: SocketAddr,
    provision: PathBuf,
    /// The front-on config on the benchmarks' node (the upgrades run on it).
    front: Env,
    /// Every tenant a start was asked for: its config and id.
    started: Mutex<Vec<(PathBuf, String)>>,
    /// The image tags this run built.
    tags: Mutex<Vec<String>>,
}

fn utc_now() -> String {
    chrono::Utc::now()
        .format("%Y-%m-%d %H:%M:%S UTC")
        .to_string()
}

#[tokio::main]
async fn main() {
    let args = parse_args();
    let docker = docker().await;
    check_ports_free(&args);
    let (node, node_created) = ensure_node(&docker).await;
    let run = random_suffix();
    let dir = std::env::temp_dir().join(format!("front-bench-{run}"));
    std::fs::create_dir_all(&dir).expect("create the bench directory");
    let front_container = format!("bench-{run}-front");
    let front = Env::write(
        &dir,
        &run,
        node,
        NODE,
        "front",
        FRONT_POOLS,
        true,
        &front_container,
    );
    let bench = Bench {
        args: args.clone(),
        docker,
        provision: sibling_binary("provision", "PROVISION_BIN"),
        run,
        dir,
        node,
        front,
        started: Mutex::new(Vec::new()),
        tags: Mutex::new(Vec::new()),
    };
    eprintln!(
        "bench-front: run {}, files in {}, Cassandra {NODE} at {node}",
        bench.run,
        bench.dir.display()
    );
    let outcome = bench::until_interrupted(bench.measure()).await;
    if outcome.is_none() {
        eprintln!("bench-front: interrupted; cleaning up");
    }
    bench.cleanup().await;
    if args.keep_files {
        eprintln!("the bench's configs and state: {}", bench.dir.display());
    } else {
        let _ = std::fs::remove_dir_all(&bench.dir);
    }
    if !args.keep_node && node_created {
        remove_node(&bench.docker).await;
    }
    match outcome {
        Some(Ok(outcome)) => print_report(&args, &outcome),
        Some(Err(panic)) => std::panic::resume_unwind(panic),
        None => std::process::exit(130),
    }
}

/// Every port the bench binds must be free on 127.0.0.1.
fn check_ports_free(args: &Args) {
    let mut ports: Vec<u16> = Vec::new();
    for pools in [
        FRONT_POOLS,
        DIRECT_POOLS,
        FRONT_POOLS_PERIODIC,
        DIRECT_POOLS_PERIODIC,
    ] {
        ports.extend(pools.0 .0..=pools.0 .1);
        ports.extend(pools.1 .0..=pools.1 .1);
    }
    if args.rss {
        ports.extend(RSS_BASE..RSS_BASE + 200);
    }
    let busy: Vec<u16> = ports
        .into_iter()
        .filter(|p| std::net::TcpListener::bind((Ipv4Addr::LOCALHOST, *p)).is_err())
        .collect();
    assert!(
        busy.is_empty(),
        "ports the bench needs are taken: {busy:?} (a leftover run? docker ps --filter label={BENCH_LABEL})"
    );
}

impl Bench {
    async fn measure(&self) -> Outcome {
        let mut outcome = Outcome {
            began_utc: utc_now(),
            load_before: loadavg(),
            ..Outcome::default()
        };
        if self.args.rss {
            outcome.rss = self.rss_comparison().await;
        }
        if self.args.ingest {
            for &mode in &self.args.commitlogs {
                let rows = self.ingest_comparison(mode).await;
                outcome.ingest.push((mode, rows));
            }
        }
        if self.args.upgrade {
            outcome.upgrade = Some(self.upgrades().await);
        }
        outcome.ended_utc = utc_now();
        outcome.load_after = loadavg();
        outcome
    }

    /// Runs `provision --config <env> <args>`.
    async fn provision(&self, env: &Env, args: &[&str]) -> Ran {
        let began = Instant::now();
        let out = tokio::process::Command::new(&self.provision)
            .arg("--config")
            .arg(&env.path)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .output()
            .await
            .expect("provision runs");
        Ran {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
            wall: began.elapsed(),
        }
    }

    /// `provision --json start <id>` (noted first, so cleanup destroys it
    /// even if the start fails): its report.
    async fn start(&self, env: &Env, id: &str) -> Value {
        self.started
            .lock()
            .unwrap()
            .push((env.path.clone(), id.to_owned()));
        self.provision(env, &["--json", "start", id])
            .await
            .ok(&format!("start {id} ({})", env.name))
            .json("start")
    }

    /// `provision destroy <id> --yes --purge-data`; whether it succeeded.
    async fn destroy(&self, config: &Path, id: &str) -> bool {
        let out = tokio::process::Command::new(&self.provision)
            .arg("--config")
            .arg(config)
            .args(["destroy", id, "--yes", "--purge-data"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .output()
            .await
            .expect("provision runs");
        if !out.status.success() {
            eprintln!(
                "destroy {id}: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        out.status.success()
    }

    // ---- 1. ingest through the front against direct -------------------

    /// Part 1 on a node that syncs its commit log as `mode` says: the
    /// benchmarks' node for group, a node of the run's own for periodic
    /// (removed after).
    async fn ingest_comparison(&self, mode: Commitlog) -> Vec<IngestRow> {
        let (node, node_name) = match mode {
            Commitlog::Group => (self.node, NODE.to_owned()),
            Commitlog::Periodic => {
                let name = format!("bench-{}-cassandra-periodic", self.run);
                let env = ["CASSANDRA_COMMITLOG_SYNC=periodic".to_owned()];
                (self.private_node(&name, &env).await, name)
            }
        };
        let (front, direct) = match mode {
            Commitlog::Group => (FRONT_POOLS, DIRECT_POOLS),
            Commitlog::Periodic => (FRONT_POOLS_PERIODIC, DIRECT_POOLS_PERIODIC),
        };
        let m = mode.short();
        let envs = [
            Env::write(
                &self.dir,
                &self.run,
                node,
                &node_name,
                if m == "g" { "front-g" } else { "front-p" },
                front,
                true,
                &format!("bench-{}-front-{m}", self.run),
            ),
            Env::write(
                &self.dir,
                &self.run,
                node,
                &node_name,
                if m == "g" { "direct-g" } else { "direct-p" },
                direct,
                false,
                &format!("bench-{}-front-{m}-unused", self.run),
            ),
        ];
        eprintln!(
            "ingest, commit log {}: Cassandra {node_name} at {node}",
            mode.label()
        );
        let rows = self.ingest_on(&envs, node, &node_name, m).await;
        if mode == Commitlog::Periodic {
            remove_container(&self.docker, &node_name).await;
        }
        rows
    }

    async fn ingest_on(
        &self,
        envs: &[Env; 2],
        node: SocketAddr,
        node_name: &str,
        m: &str,
    ) -> Vec<IngestRow> {
        let a = &self.args;
        let f_id = format!("f{m}_{}", self.run);
        let d_id = format!("d{m}_{}", self.run);
        let (f, d) = tokio::join!(self.start(&envs[0], &f_id), self.start(&envs[1], &d_id));
        let port = |v: &Value| v["gateway_port"].as_u64().expect("a gateway port") as u16;
        let token = new_gateway_token();
        let admin = connect_published(node, SUPERUSER.0, SUPERUSER.1)
            .await
            .expect("the node's superuser");
        let max_n = a.gateways.iter().copied().max().unwrap_or(1);
        for id in [&f_id, &d_id] {
            let keyspace = ProviderId::parse(id).expect("a valid id").keyspace();
            for g in 0..max_n {
                commission_gateway_with(&admin, &keyspace, &format!("gw-{g}"), &token).await;
            }
        }
        let sides = [
            Side {
                name: "front",
                addr: format!("127.0.0.1:{}", port(&f)),
                ingest: envs[0].ingest(&f_id),
                front: Some(envs[0].config.front.container.clone()),
                cassandra: node_name.to_owned(),
            },
            Side {
                name: "direct",
                addr: format!("127.0.0.1:{}", port(&d)),
                ingest: envs[1].ingest(&d_id),
                front: None,
                cassandra: node_name.to_owned(),
            },
        ];
        for side in &sides {
            let r = sim::run(self.sim_config(&side.addr, 1, &token, 0.0, Stop::Count(10))).await;
            assert!(
                r.acked == 10 && r.errors.is_empty(),
                "{} ({}): 10 frames, {} acked: {:?}",
                side.name,
                side.addr,
                r.acked,
                r.errors
            );
        }
        let userland = userland_proxies();
        eprintln!(
            "ingest: front {} → {}, direct {} → {}; {} gateways commissioned in each; {userland} docker-proxy process(es)",
            sides[0].addr, sides[0].ingest, sides[1].addr, sides[1].ingest, max_n
        );
        self.warm_up(&sides, &token, max_n).await;
        let mut rows = Vec::new();
        for &n in &a.gateways {
            let mut row = IngestRow {
                gateways: n,
                loads: std::iter::once(0.0)
                    .chain(a.fixed_rates.iter().copied())
                    .map(|rate| Load {
                        rate,
                        runs: [Vec::new(), Vec::new()],
                    })
                    .collect(),
                first: Vec::new(),
                userland_proxies: 0,
            };
            for round in 0..a.rounds {
                // front first in even rounds, direct first in odd ones
                let order = if round % 2 == 0 { [0, 1] } else { [1, 0] };
                row.first.push(sides[order[0]].name);
                for load in &mut row.loads {
                    let secs = match load.rate > 0.0 {
                        true => a.fixed_seconds,
                        false => a.seconds,
                    };
                    for &s in &order {
                        let stop = Stop::After(Duration::from_secs_f64(secs));
                        let per_gateway = load.rate / n as f64;
                        let sample = self.measured(&sides[s], n, &token, per_gateway, stop).await;
                        eprintln!(
                            "  {n} gateways, round {}, {}, {}: {:.0} f/s, ack p50 / p99 / max {:.2} / {:.2} / {:.1} ms, {} errors; cores bench + cassandra + ingest + haproxy {}",
                            round + 1,
                            load.label(),
                            sides[s].name,
                            sample.frames_per_sec,
                            ms(sample.p50),
                            ms(sample.p99),
                            ms(sample.max),
                            sample.errors,
                            sample.cores_text()
                        );
                        if let Some(e) = &sample.first_error {
                            eprintln!("    first error: {e}");
                        }
                        load.runs[s].push(sample);
                    }
                }
            }
            rows.push(row);
        }
        if let Some(row) = rows.first_mut() {
            row.userland_proxies = userland;
        }
        for (env, id) in [(&envs[0], &f_id), (&envs[1], &d_id)] {
            if self.destroy(&env.path, id).await {
                self.started.lock().unwrap().retain(|(_, i)| i != id);
            }
        }
        rows
    }

    /// A Cassandra node of the run's own on the benchmarks' network, as
    /// the benchmarks' node is made (heap 1G, CQL on a loopback port),
    /// with `env` for its image; once CQL answers, where the host reaches it.
    async fn private_node(&self, name: &str, env: &[String]) -> SocketAddr {
        let labels = HashMap::from([(BENCH_LABEL.to_owned(), self.run.clone())]);
        let mut all = vec!["CASSANDRA_HEAP=1G".to_owned()];
        all.extend(env.iter().cloned());
        let body = node_body(name, labels, all);
        let options = CreateContainerOptionsBuilder::default().name(name).build();
        self.docker
            .create_container(Some(options), body)
            .await
            .unwrap_or_else(|e| panic!("cannot create {name}: {e}"));
        self.docker
            .start_container(name, None)
            .await
            .unwrap_or_else(|e| panic!("cannot start {name}: {e}"));
        let started = Instant::now();
        let port: u16 = loop {
            let port = self
                .docker
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
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
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
        eprintln!(
            "{name} answered CQL after {:.1} s",
            started.elapsed().as_secs_f64()
        );
        addr
    }

    fn sim_config(&self, addr: &str, n: usize, token: &str, rate: f64, stop: Stop) -> SimConfig {
        SimConfig {
            connector: Default::default(),
            addr: addr.to_owned(),
            gateways: (0..n)
                .map(|i| (format!("gw-{i}"), token.to_owned()))
                .collect(),
            rate,
            stop,
            readings_per_frame: 1,
            values_per_reading: 2,
            window: self.args.window,
            drain_timeout: Duration::from_secs(30),
        }
    }

    /// Saturates both sides in turn, 5 s each, with the most gateways, for
    /// at least `--warmup-seconds` and until each side's last two steps
    /// agree within 10% (three times that at most): the node's JIT, the
    /// ingest containers and HAProxy warm alike.
    async fn warm_up(&self, sides: &[Side; 2], token: &str, n: usize) {
        let began = Instant::now();
        let limit = self.args.warmup_seconds;
        let mut last: [Vec<f64>; 2] = [Vec::new(), Vec::new()];
        for step in 0.. {
            let s = step % 2;
            let cfg = self.sim_config(
                &sides[s].addr,
                n,
                token,
                0.0,
                Stop::After(Duration::from_secs(5)),
            );
            let r = sim::run(cfg).await;
            eprintln!(
                "  warm-up, {}: {:.0} frames/s{}",
                sides[s].name,
                r.frames_per_sec(),
                r.errors
                    .first()
                    .map_or(String::new(), |e| format!(" (error: {e})"))
            );
            last[s].push(r.frames_per_sec());
            let steady = last.iter().all(|v| match v.as_slice() {
                [.., a, b] => (a - b).abs() <= 0.1 * a.max(*b),
                _ => false,
            });
            let elapsed = began.elapsed().as_secs_f64();
            if (steady && elapsed >= limit) || elapsed >= 3.0 * limit {
                break;
            }
        }
    }

    /// One gateway-sim run against `side`, with the CPU each part used.
    async fn measured(&self, side: &Side, n: usize, token: &str, rate: f64, stop: Stop) -> Sample {
        let cassandra = self.pid_of(&side.cassandra).await;
        let ingest = self.pid_of(&side.ingest).await;
        let front = match &side.front {
            Some(name) => self.pid_of(name).await,
            None => None,
        };
        let times = || {
            [
                process_cpu_time("self"),
                cassandra.and_then(|p| process_cpu_time(&p.to_string())),
                ingest.and_then(|p| process_cpu_time(&p.to_string())),
                front.and_then(tree_cpu_time),
            ]
        };
        let before = times();
        let began = Instant::now();
        let report = sim::run(self.sim_config(&side.addr, n, token, rate, stop)).await;
        let wall = began.elapsed().as_secs_f64();
        let after = times();
        let mut cores = [None; 4];
        for (i, c) in cores.iter_mut().enumerate() {
            if let (Some(b), Some(a)) = (before[i], after[i]) {
                *c = Some(a.saturating_sub(b).as_secs_f64() / wall);
            }
        }
        // Nothing acked at all is a broken setup (an app, the front or the
        // engine gone), not a measure: stop, and clean up.
        assert!(
            report.acked > 0,
            "{}: no frame acked ({} errors, first: {:?}); is the engine up (docker ps)?",
            side.name,
            report.errors.len(),
            report.errors.first()
        );
        Sample::new(&report, cores)
    }

    async fn pid_of(&self, container: &str) -> Option<u32> {
        container_state(&self.docker, container)
            .await
            .ok()?
            .pid
            .filter(|&p| p > 0)
            .map(|p| p as u32)
    }

    // ---- 2. the front's RSS -------------------------------------------

    async fn rss_comparison(&self) -> Vec<RssSample> {
        let mut samples = Vec::new();
        for round in 0..self.args.rss_rounds {
            let mut order = self.args.rss_ports.clone();
            if round % 2 == 1 {
                order.reverse();
            }
            for &k in &order {
                let sample = self.front_rss(k, round).await;
                eprintln!(
                    "  front with {k} ports: ready in {:.2} s, RSS master {} + worker {} KiB ({} worker(s), {} threads), PSS {} KiB",
                    sample.ready.as_secs_f64(),
                    sample.master_rss,
                    sample.worker_rss,
                    sample.workers,
                    sample.threads,
                    sample.pss
                );
                samples.push(sample);
            }
        }
        samples
    }

    /// A front of its own with `k` routes, its memory once it serves, then
    /// removed.
    async fn front_rss(&self, k: usize, round: usize) -> RssSample {
        let dir = self.dir.join(format!("rss-{k}-{round}"));
        let mut config = Config {
            data_dir: Some(dir.clone()),
            ..Config::default()
        };
        config.front.container = format!("bench-{}-front-rss", self.run);
        config
            .docker
            .extra_labels
            .insert(BENCH_LABEL.to_owned(), self.run.clone());
        let routes: Vec<Route> = (0..k / 2)
            .flat_map(|t| {
                let tenant = ProviderId::parse(&format!("r{t:03}")).expect("a valid id");
                App::ALL.map(|app| {
                    let offset = match app {
                        App::Ingest => 0,
                        App::Admin => 100,
                    };
                    Route {
                        tenant: tenant.clone(),
                        app,
                        bind: SocketAddr::from((Ipv4Addr::LOCALHOST, RSS_BASE + offset + t as u16)),
                        target: None,
                        candidates: Vec::new(),
                    }
                })
            })
            .collect();
        let front = Front {
            global: runtime::global(&config, &routes),
            routes,
        };
        let front_dir = FrontDir::new(&dir);
        front_dir
            .write(&front)
            .expect("write the front's configuration");
        let backend = provisioner::backend::for_config(&config);
        let began = Instant::now();
        backend
            .ensure_front(front_dir.host())
            .await
            .expect("the front container starts");
        self.serving(
            &front_dir,
            &front.global.generation,
            &config.front.container,
        )
        .await;
        let ready = began.elapsed();
        for route in &front.routes {
            tokio::net::TcpStream::connect(route.bind)
                .await
                .unwrap_or_else(|e| panic!("the front does not accept on {}: {e}", route.bind));
        }
        tokio::time::sleep(SETTLE).await;
        let sample = self.haproxy_memory(&config.front.container, k, ready).await;
        remove_container(&self.docker, &config.front.container).await;
        let _ = std::fs::remove_dir_all(&dir);
        sample
    }

    /// Waits until the front's admin socket reports `generation`: how long
    /// that took.
    async fn serving(&self, dir: &FrontDir, generation: &str, container: &str) -> Duration {
        let began = Instant::now();
        let admin = dir.admin_socket();
        loop {
            let now = admin.generation().await;
            if matches!(&now, Ok(Some(g)) if g == generation) {
                return began.elapsed();
            }
            assert!(
                began.elapsed() < FRONT_READY,
                "the front {container} does not serve {generation} within {} s ({now:?}); see docker logs {container}",
                FRONT_READY.as_secs()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// VmRSS, PSS and threads of HAProxy's master (the container's main
    /// process) and its workers.
    async fn haproxy_memory(&self, container: &str, ports: usize, ready: Duration) -> RssSample {
        let master = self
            .pid_of(container)
            .await
            .unwrap_or_else(|| panic!("{container} runs no process"));
        let tree = process_tree(master);
        let status = |pid: u32, field: &str| {
            std::fs::read_to_string(format!("/proc/{pid}/status"))
                .ok()
                .and_then(|s| kib_field(&s, field))
                .unwrap_or(0)
        };
        let pss = |pid: u32| {
            std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup"))
                .ok()
                .and_then(|s| kib_field(&s, "Pss:"))
                .unwrap_or(0)
        };
        let workers: Vec<u32> = tree.iter().copied().filter(|&p| p != master).collect();
        RssSample {
            ports,
            ready,
            master_rss: status(master, "VmRSS:"),
            worker_rss: workers.iter().map(|&p| status(p, "VmRSS:")).sum(),
            workers: workers.len(),
            pss: tree.iter().map(|&p| pss(p)).sum(),
            threads: tree.iter().map(|&p| status(p, "Threads:")).sum(),
        }
    }

    // ---- 3. upgrade times -----------------------------------------------

    async fn upgrades(&self) -> UpgradeOutcome {
        let a = &self.args;
        let mut outcome = UpgradeOutcome {
            tenants: a.tenants,
            ..UpgradeOutcome::default()
        };
        let ids: Vec<String> = (0..a.tenants)
            .map(|i| format!("u{i:02}_{}", self.run))
            .collect();
        let began = Instant::now();
        futures::stream::iter(ids.iter())
            .map(|id| self.start(&self.front, id))
            .buffer_unordered(START_AT_ONCE)
            .collect::<Vec<_>>()
            .await;
        outcome.start_wall = began.elapsed();
        eprintln!(
            "upgrade: {} tenants started behind the front in {:.1} s ({START_AT_ONCE} at once)",
            a.tenants,
            outcome.start_wall.as_secs_f64()
        );
        let container = self.front.config.front.container.clone();
        tokio::time::sleep(SETTLE).await;
        outcome.front_rss = Some(
            self.haproxy_memory(&container, 2 * a.tenants, Duration::ZERO)
                .await,
        );
        let tag_a = format!("bench-front-{}-a", self.run);
        let tag_b = format!("bench-front-{}-b", self.run);
        for tag in [&tag_a, &tag_b] {
            self.build_tag(tag);
        }
        for id in ids.iter().take(a.singles) {
            let ran = self
                .provision(
                    &self.front,
                    &["--json", "upgrade", id, "--image-tag", &tag_a],
                )
                .await;
            let report = ran.json("upgrade");
            let tenant = &report["tenants"][0];
            let result = tenant["result"].as_str().unwrap_or("?").to_owned();
            let secs = tenant["secs"].as_f64().unwrap_or(f64::NAN);
            eprintln!(
                "  upgrade {id}: {result}, {:.2} s wall, {secs:.2} s in its report (exit {})",
                ran.wall.as_secs_f64(),
                ran.code
            );
            if ran.code != 0 {
                eprintln!("{}\n{}", ran.stdout, ran.stderr);
            }
            outcome.singles.push((id.clone(), ran.wall, secs, result));
        }
        let parallelism = a.parallelism.to_string();
        let ran = self
            .provision(
                &self.front,
                &[
                    "--json",
                    "upgrade",
                    "--all",
                    "--image-tag",
                    &tag_b,
                    "--parallelism",
                    &parallelism,
                ],
            )
            .await;
        let report = ran.json("upgrade --all");
        outcome.all_wall = ran.wall;
        outcome.all_code = ran.code;
        outcome.all_secs = report["secs"].as_f64().unwrap_or(f64::NAN);
        for t in report["tenants"].as_array().cloned().unwrap_or_default() {
            outcome.per_tenant.push((
                t["provider"].as_str().unwrap_or("?").to_owned(),
                t["secs"].as_f64().unwrap_or(f64::NAN),
                t["result"].as_str().unwrap_or("?").to_owned(),
            ));
        }
        eprintln!(
            "  upgrade --all --parallelism {}: {:.2} s wall, {:.2} s in its report, exit {}; per tenant {:?}",
            a.parallelism,
            ran.wall.as_secs_f64(),
            outcome.all_secs,
            ran.code,
            outcome.per_tenant
        );
        if ran.code != 0 {
            eprintln!("{}", ran.stderr);
        }
        outcome
    }

    /// Every tenant image under `tag`: `FROM <image>` plus a label, so
    /// another image id that runs the same binary.
    fn build_tag(&self, tag: &str) {
        for image in [ingest_image(), admin_image(), notifier_image()] {
            let repository = image.rsplit_once(':').map_or(image.as_str(), |(r, _)| r);
            let name = format!("{repository}:{tag}");
            self.tags.lock().unwrap().push(name.clone());
            let dockerfile = format!(
                "FROM {image}\nLABEL io.provision.bench.variant=\"{tag}\" {BENCH_LABEL}=\"{}\"\n",
                self.run
            );
            let mut child = std::process::Command::new("docker")
                .args(["build", "-q", "-t", &name, "-"])
                .env("DOCKER_BUILDKIT", "0")
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .expect("docker build runs");
            use std::io::Write;
            child
                .stdin
                .take()
                .expect("stdin")
                .write_all(dockerfile.as_bytes())
                .expect("write the Dockerfile");
            let out = child.wait_with_output().expect("docker build ends");
            assert!(
                out.status.success(),
                "docker build {name}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }

    // ---- cleanup --------------------------------------------------------

    /// Destroys every tenant started (`--purge-data`), removes what carries
    /// the run's label and the image tags it built; drops the keyspace and
    /// role of a tenant whose destroy failed.
    async fn cleanup(&self) {
        let started = std::mem::take(&mut *self.started.lock().unwrap());
        let failed: Vec<String> = futures::stream::iter(started)
            .map(|(config, id)| async move { (self.destroy(&config, &id).await, id) })
            .buffer_unordered(START_AT_ONCE)
            .filter_map(|(ok, id)| async move { (!ok).then_some(id) })
            .collect()
            .await;
        remove_labelled(&self.docker, &format!("{BENCH_LABEL}={}", self.run)).await;
        if !failed.is_empty() {
            eprintln!(
                "{} destroy(s) failed: dropping their keyspaces and roles directly",
                failed.len()
            );
            if let Ok(admin) = connect_published(self.node, SUPERUSER.0, SUPERUSER.1).await {
                for id in &failed {
                    if let Ok(pid) = ProviderId::parse(id) {
                        let _ = drop_tenant(&admin, &pid).await;
                    }
                }
            }
        }
        let tags = std::mem::take(&mut *self.tags.lock().unwrap());
        for tag in tags {
            let options = RemoveImageOptionsBuilder::default().force(true).build();
            let _ = self.docker.remove_image(&tag, Some(options), None).await;
        }
    }
}

async fn remove_container(docker: &Docker, name: &str) {
    let options = bollard::query_parameters::RemoveContainerOptionsBuilder::default()
        .force(true)
        .v(true)
        .build();
    let _ = docker.remove_container(name, Some(options)).await;
}

/// How many docker-proxy processes run (the engine's userland proxy).
fn userland_proxies() -> usize {
    std::fs::read_dir("/proc")
        .map(|entries| {
            entries
                .flatten()
                .filter(|e| {
                    std::fs::read_to_string(e.path().join("comm"))
                        .is_ok_and(|c| c.trim() == "docker-proxy")
                })
                .count()
        })
        .unwrap_or(0)
}

/// `root` and its descendants, from /proc.
fn process_tree(root: u32) -> Vec<u32> {
    let mut parent_of: Vec<(u32, u32)> = Vec::new();
    if let Ok(entries) = std::fs::read_dir("/proc") {
        for entry in entries.flatten() {
            let Some(pid) = entry.file_name().to_str().and_then(|n| n.parse().ok()) else {
                continue;
            };
            let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
                continue;
            };
            // after the command name: state, then the parent's pid
            let ppid = stat
                .rsplit_once(')')
                .and_then(|(_, rest)| rest.split_whitespace().nth(1))
                .and_then(|p| p.parse().ok());
            if let Some(ppid) = ppid {
                parent_of.push((pid, ppid));
            }
        }
    }
    let mut tree = vec![root];
    let mut i = 0;
    while i < tree.len() {
        let parent = tree[i];
        tree.extend(
            parent_of
                .iter()
                .filter(|(_, p)| *p == parent)
                .map(|(c, _)| *c),
        );
        i += 1;
    }
    tree
}

/// The CPU time of `root` and its descendants.
fn tree_cpu_time(root: u32) -> Option<Duration> {
    let tree = process_tree(root);
    let times: Vec<Duration> = tree
        .iter()
        .filter_map(|p| process_cpu_time(&p.to_string()))
        .collect();
    (!times.is_empty()).then(|| times.into_iter().sum())
}

fn mib(kib: u64) -> String {
    format!("{:.1} MiB", kib as f64 / 1024.0)
}

fn print_report(args: &Args, o: &Outcome) {
    println!();
    println!(
        "bench-front, {} – {}; load average before {}, after {}",
        o.began_utc, o.ended_utc, o.load_before, o.load_after
    );
    if !o.ingest.is_empty() {
        print_ingest(args, &o.ingest);
    }
    if !o.rss.is_empty() {
        print_rss(&o.rss);
    }
    if let Some(u) = &o.upgrade {
        print_upgrade(args, u);
    }
}

/// The mean of `v` and the half-width of its 95% confidence interval
/// (Student's t; NaN below two values).
fn mean_ci(v: &[f64]) -> (f64, f64) {
    const T95: [f64; 10] = [12.71, 4.30, 3.18, 2.78, 2.57, 2.45, 2.36, 2.31, 2.26, 2.23];
    let n = v.len();
    let mean = v.iter().sum::<f64>() / n.max(1) as f64;
    if n < 2 {
        return (mean, f64::NAN);
    }
    let variance = v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1) as f64;
    let t = T95.get(n - 2).copied().unwrap_or(2.0);
    (mean, t * (variance / n as f64).sqrt())
}

fn print_ingest(a: &Args, modes: &[(Commitlog, Vec<IngestRow>)]) {
    println!();
    println!("### Ingest through the front against direct");
    for (mode, rows) in modes {
        print_ingest_mode(a, *mode, rows);
    }
    println!();
    let userland = modes
        .iter()
        .flat_map(|(_, rows)| rows.first())
        .map(|r| r.userland_proxies)
        .max()
        .unwrap_or(0);
    println!(
        "Direct: the tenant's published port on 127.0.0.1, {}.",
        match userland {
            0 => "forwarded by the engine's NAT rules (no docker-proxy process ran: userland proxy off)".to_owned(),
            n => format!("through the engine's userland proxy ({n} docker-proxy processes ran): a user-space relay too"),
        }
    );
    println!(
        "Frames are 1 reading × 2 values; window {} unacked frames per gateway; {} s per saturated run, {} s per fixed-rate run, after a warm-up of at least {} s per node; {} rounds, the sides alternating and taking turns going first; a cell is the median round (saturated by frames/s, at a fixed rate by p99; the upper one of an even count). The verdicts use the rounds' own pairs (front against the direct run next to it): their mean and its 95% interval (Student's t). Cores: this process (gateway-sim), the Cassandra JVM, the side's ingest container, HAProxy's master + worker.",
        a.window, a.seconds, a.fixed_seconds, a.warmup_seconds, a.rounds
    );
}

fn print_ingest_mode(a: &Args, mode: Commitlog, rows: &[IngestRow]) {
    println!();
    println!("#### Commit log sync {}", mode.label());
    println!();
    println!("| gateways | load | side | frames/s | front / direct | ack p50 / p90 / p99 / max ms | p99 front − direct | p99 over the rounds, min – max | cores: bench + Cassandra + ingest + HAProxy | errors |");
    println!("|---:|---|---|---:|---:|---|---:|---|---|---:|");
    for row in rows {
        for load in &row.loads {
            let m = load.medians();
            for (s, name) in ["front", "direct"].iter().enumerate() {
                let errors: usize = load.runs[s].iter().map(|r| r.errors).sum();
                let p99s: Vec<f64> = load.runs[s].iter().map(|r| ms(r.p99)).collect();
                let ratio = m[0].frames_per_sec / m[1].frames_per_sec.max(1e-9);
                let diff = ms(m[0].p99) - ms(m[1].p99);
                let front_only = |text: String| if s == 0 { text } else { String::new() };
                println!(
                    "| {} | {} | {name} | {:.0} | {} | {:.2} / {:.2} / {:.2} / {:.1} | {} | {:.1} – {:.1} | {} | {errors} |",
                    row.gateways,
                    load.label(),
                    m[s].frames_per_sec,
                    front_only(format!("{ratio:.3}")),
                    ms(m[s].p50),
                    ms(m[s].p90),
                    ms(m[s].p99),
                    ms(m[s].max),
                    front_only(format!("{diff:+.2} ms")),
                    p99s.iter().copied().fold(f64::INFINITY, f64::min),
                    p99s.iter().copied().fold(f64::NEG_INFINITY, f64::max),
                    m[s].cores_text(),
                );
            }
        }
    }
    println!();
    println!("Rounds, front ; direct (the side named went first):");
    println!();
    println!("| gateways | load | round | first | frames/s | front / direct | ack p50 ms | ack p99 ms | p99 front − direct |");
    println!("|---:|---|---:|---|---|---:|---|---|---:|");
    for row in rows {
        for load in &row.loads {
            for (r, first) in row.first.iter().enumerate() {
                let (f, d) = (&load.runs[0][r], &load.runs[1][r]);
                println!(
                    "| {} | {} | {} | {first} | {:.0} ; {:.0} | {:.3} | {:.2} ; {:.2} | {:.2} ; {:.2} | {:+.2} |",
                    row.gateways,
                    load.label(),
                    r + 1,
                    f.frames_per_sec,
                    d.frames_per_sec,
                    f.frames_per_sec / d.frames_per_sec.max(1e-9),
                    ms(f.p50),
                    ms(d.p50),
                    ms(f.p99),
                    ms(d.p99),
                    ms(f.p99) - ms(d.p99),
                );
            }
        }
    }
    let goal_rate = a.fixed_rates[0];
    println!();
    println!(
        "Goal: through the front at most 10% less throughput (saturated, front / direct ≥ 0.90) and at most 1 ms more ack p99 at {} frames/s:",
        thousands(goal_rate)
    );
    println!();
    for row in rows {
        let saturated = &row.loads[0];
        let ratios: Vec<f64> = saturated.runs[0]
            .iter()
            .zip(&saturated.runs[1])
            .map(|(f, d)| f.frames_per_sec / d.frames_per_sec.max(1e-9))
            .collect();
        let (mean, hw) = mean_ci(&ratios);
        let throughput = if mean - hw >= 0.9 {
            "**met**"
        } else if mean + hw < 0.9 {
            "**NOT met**"
        } else {
            "**not resolved** (the interval holds 0.90)"
        };
        println!(
            "- {} gateways, saturated: front / direct {mean:.3} ± {hw:.3}: {throughput}",
            row.gateways
        );
        for load in &row.loads[1..] {
            let pairs = |f: fn(&Sample) -> f64| -> Vec<f64> {
                load.runs[0]
                    .iter()
                    .zip(&load.runs[1])
                    .map(|(a, b)| f(a) - f(b))
                    .collect()
            };
            let (p99, p99_hw) = mean_ci(&pairs(|s| ms(s.p99)));
            let (p50, p50_hw) = mean_ci(&pairs(|s| ms(s.p50)));
            let slowest = |s: usize| {
                load.runs[s]
                    .iter()
                    .map(|r| r.frames_per_sec)
                    .fold(f64::INFINITY, f64::min)
            };
            let sustained = [slowest(0), slowest(1)].map(|f| f >= 0.95 * load.rate);
            let verdict = if load.rate != goal_rate {
                String::new()
            } else if sustained != [true, true] {
                format!(
                    ": **not measurable**: {} did not sustain the rate (slowest rounds: front {:.0}, direct {:.0} frames/s)",
                    match sustained {
                        [false, false] => "neither side",
                        [false, true] => "the front",
                        _ => "direct",
                    },
                    slowest(0),
                    slowest(1)
                )
            } else if p99 + p99_hw <= 1.0 {
                ": **met**".to_owned()
            } else if p99 - p99_hw > 1.0 {
                ": **NOT met**".to_owned()
            } else {
                format!(
                    ": **not resolved**: the interval ({:+.1}, {:+.1}) ms holds +1 ms",
                    p99 - p99_hw,
                    p99 + p99_hw
                )
            };
            println!(
                "- {} gateways, {}: p99 front − direct {p99:+.2} ± {p99_hw:.2} ms (p50 {p50:+.2} ± {p50_hw:.2} ms){verdict}",
                row.gateways,
                load.label()
            );
        }
    }
}

fn print_rss(samples: &[RssSample]) {
    println!();
    println!("### The front's memory by ports bound (HAProxy master + worker, idle)");
    println!();
    println!("| ports bound | RSS master | RSS worker | RSS master + worker | PSS master + worker | threads | configuration to serving |");
    println!("|---:|---:|---:|---:|---:|---:|---:|");
    for s in samples {
        println!(
            "| {} | {} | {} | {} | {} | {} | {:.2} s |",
            s.ports,
            mib(s.master_rss),
            mib(s.worker_rss),
            mib(s.master_rss + s.worker_rss),
            mib(s.pss),
            s.threads,
            s.ready.as_secs_f64()
        );
    }
    let mut ports: Vec<usize> = samples.iter().map(|s| s.ports).collect();
    ports.sort_unstable();
    ports.dedup();
    if let [low, .., high] = ports.as_slice() {
        let rss = |k: usize| {
            median(
                samples
                    .iter()
                    .filter(|s| s.ports == k)
                    .map(|s| (s.master_rss + s.worker_rss) as f64)
                    .collect(),
            )
        };
        println!();
        println!(
            "Per port bound, {high} against {low}: {:.1} KiB of RSS ({} ports: {}, {} ports: {}; medians).",
            (rss(*high) - rss(*low)) / (*high - *low) as f64,
            low,
            mib(rss(*low) as u64),
            high,
            mib(rss(*high) as u64)
        );
    }
}

fn print_upgrade(a: &Args, u: &UpgradeOutcome) {
    println!();
    println!("### Upgrade times: {} tenants behind the front", u.tenants);
    println!();
    println!(
        "{} tenants started ({START_AT_ONCE} at once) in {:.1} s.",
        u.tenants,
        u.start_wall.as_secs_f64()
    );
    if let Some(r) = &u.front_rss {
        println!(
            "The front with their {} ports: RSS master {} + worker(s) {} = {}, PSS {}.",
            r.ports,
            mib(r.master_rss),
            mib(r.worker_rss),
            mib(r.master_rss + r.worker_rss),
            mib(r.pss)
        );
    }
    println!();
    println!("| command | wall clock | report `secs` | per tenant `secs`: min / median / max | results |");
    println!("|---|---:|---:|---|---|");
    for (id, wall, secs, result) in &u.singles {
        println!(
            "| `provision upgrade {id} --image-tag A` | {:.2} s | {secs:.2} s | | {result} |",
            wall.as_secs_f64()
        );
    }
    let secs: Vec<f64> = u.per_tenant.iter().map(|t| t.1).collect();
    let mut results: Vec<String> = u.per_tenant.iter().map(|t| t.2.clone()).collect();
    results.sort();
    let mut counted: Vec<(String, usize)> = Vec::new();
    for r in results {
        match counted.last_mut() {
            Some((last, n)) if *last == r => *n += 1,
            _ => counted.push((r, 1)),
        }
    }
    let counted: Vec<String> = counted.iter().map(|(r, n)| format!("{n} {r}")).collect();
    println!(
        "| `provision upgrade --all --image-tag B --parallelism {}` ({} tenants) | {:.2} s | {:.2} s | {:.2} / {:.2} / {:.2} s | {}{} |",
        a.parallelism,
        u.per_tenant.len(),
        u.all_wall.as_secs_f64(),
        u.all_secs,
        secs.iter().copied().fold(f64::INFINITY, f64::min),
        median(secs.clone()),
        secs.iter().copied().fold(f64::NEG_INFINITY, f64::max),
        counted.join(", "),
        if u.all_code == 0 {
            String::new()
        } else {
            format!(" (exit {})", u.all_code)
        }
    );
    println!();
    println!(
        "`--all`, per tenant in the report's order (batches of {}): {}",
        a.parallelism,
        u.per_tenant
            .iter()
            .map(|(_, s, _)| format!("{s:.1}"))
            .collect::<Vec<_>>()
            .join(", ")
    );
}
