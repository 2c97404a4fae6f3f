//! The fleet-scale benchmark: many gateways on one tenant, a reconnect
//! storm, and many tenants at once. Prints markdown tables.
//!
//! Everything runs on the real engine with the real `provision` binary
//! next to this one (or `PROVISION_BIN`), against the benchmarks' own
//! Cassandra node (`provision-bench-cassandra`, shared with the other
//! benches: reused when it runs, removed at the end when this run started
//! it, unless `--keep-node`), on a config of the run's own (containers
//! `bench-<run>-…`, ports 25200–25239 and 25300–25339 on 127.0.0.1,
//! `[limits] memory_mb` from `--memory-mb`, default 512, so that a fleet's
//! ingest is measured, not killed). Tenants are started with `provision
//! start <id> --max-gateways <their fleet>`.
//!
//! **How the fleet reaches ingest.** Ingest caps connections without a
//! hello per source address (`INGEST_MAX_UNAUTHENTICATED_PER_ADDRESS`, 32),
//! and the engine here runs without the userland proxy: a connection to a
//! published port on 127.0.0.1 is masqueraded to the bridge's gateway
//! address, so a whole fleet would look like one host. A real fleet comes
//! from thousands. So the gateways connect straight to the ingest
//! container's address on the tenant's bridge network (port 6000), from
//! `--sources` addresses (default 64) at the top of that network's subnet,
//! which the bench adds to the bridge interface as /32 addresses (`ip addr
//! add A/32 dev br-…`) for its duration and removes at the end (also after
//! a failure or Ctrl-C; removing the tenant's network removes its bridge
//! and whatever addresses it still has). An engine without the userland
//! proxy masquerades everything the host itself sends into a bridge
//! (`-o br-… -m addrtype --src-type LOCAL -j MASQUERADE`, for hairpin
//! NAT), which would turn every source back into the bridge's address: so
//! the bench also inserts, first in the nat table's POSTROUTING, a `RETURN`
//! for those sources on that bridge (comment `bench-fleet-<run>`), deleted
//! with the addresses (scripts/bench-fleet deletes any left by a run that
//! was killed). Gateway `i` connects from address
//! `i mod n` (`gateway_sim::resilient`'s `source_addrs`, `gateway-sim
//! --source-addrs`). The bench counts the distinct peer addresses of the
//! established connections in the ingest container's own TCP table
//! (`/proc/<its pid>/net/tcp`), and reads ingest's `/metrics` on the
//! bridge for refusals by reason.
//!
//! **Gateways.** Commissioned with one token, straight into the tenant's
//! `gateways` table through CQL as the superuser (64 inserts at once: the
//! rows `provision gateway add` writes, without a process per gateway),
//! named `gw-0`, `gw-1`, … The fleet is `gateway_sim::resilient` in this
//! process (one task per gateway, reconnecting with backoff, resending
//! what was not acked, every ack appended to an acked file), readings of
//! 1 reading × 1 value, each gateway's first reading at a random point of
//! its first interval, later ones with a jitter of 10% of the interval.
//! An ack's latency counts from when its reading was due. Latencies are
//! those of readings due within a measuring window opened once every
//! gateway is logged in and has sent a reading.
//!
//! - **F1.** One tenant, `--gateways` (10,000). Ingest's memory with 0
//!   connections, then the fleet brought up in steps (`--steps`, default
//!   1,000 and 5,000, then all) at the first interval of `--intervals`
//!   (10 s): after each step's logins and `--settle` seconds (every
//!   connection has sent a reading), ingest's VmRSS (from /proc) and its
//!   container's memory cgroup (usage − page cache: what `docker stats`
//!   calls usage on cgroup v1), and KB per connection over the idle
//!   figure. Then the ack latency over `--seconds` at that interval; then
//!   (F2) the storm; then the fleet is stopped and the **floor** runs: the
//!   same rows (as many gateway partitions, the same rate) written straight
//!   through the driver grouped as ingest groups them
//!   (`provision_testkit::bench::fleet_floor`, the grouped floor of
//!   `scripts/bench-ingest` at a fixed rate). The same again at every
//!   further interval (1 s: 10,000 rows/s), a fleet of its own.
//! - **F2.** While F1's fleet runs at the first interval: `docker restart`
//!   of the ingest container (SIGTERM, the graceful stop, then a start).
//!   From the restart command until every gateway had a welcome again
//!   (and until every gateway had an ack again); then the fleet runs on
//!   for one interval and more, is stopped and drained, and every line of
//!   the acked files is looked up in Cassandra
//!   (`provision_testkit::faults::missing_acked`): acked readings lost.
//! - **F3.** `--tenants` (20) × `--per-tenant` (500) gateways at
//!   `--f3-interval` (10 s), all at once, each tenant's fleet from
//!   `--f3-sources` addresses of its own bridge (default: one per 16
//!   gateways): the p50/p99/max ack latency per tenant over `--seconds`,
//!   and the worst tenant's p99 over the best's.
//!
//! At the end every tenant is destroyed (`--purge-data`), whatever carries
//! the run's label is removed, and so are the addresses added.
//!
//! Needs `ulimit -n` above the largest fleet + a few hundred (the script
//! raises it to 20,000) and root (for `ip addr`).
//!
//! `scripts/bench-fleet [--parts f1,f2,f3] [--gateways N] [--intervals 10s,1s]
//!    [--seconds S] [--steps 1000,5000] [--settle S] [--sources K]
//!    [--tenants T] [--per-tenant P] [--f3-interval 10s] [--f3-sources K]
//!    [--memory-mb M] [--keep-node] [--keep-files]`

use std::collections::{BTreeSet, HashMap};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bollard::query_parameters::ListContainersOptionsBuilder;
use bollard::Docker;
use futures::StreamExt;
use gateway_sim::resilient::{
    self, parse_interval, Ack, Progress, ResilientConfig, ResilientReport,
};
use provision_testkit::apps::commission_gateway_with;
use provision_testkit::bench::{
    cgroup_usage_without_cache, config_text, ensure_node, fleet_floor, loadavg, quantile_us,
    random_suffix, remove_node, sibling_binary, tcp_get, FloorRun, BENCH_LABEL, NETWORK, NODE,
    SUPERUSER,
};
use provision_testkit::containers::{container_state, process_cpu_time};
use provision_testkit::faults::missing_acked;
use provision_testkit::{bench, docker, remove_labelled};
use scylla::client::session::Session;
use tenant_schema::cql::connect_published;
use tenant_schema::model::new_gateway_token;

/// The config's port pools (gateway, admin; inclusive): apart from every
/// other bench's and test's, below the ephemeral range.
const POOLS: ((u16, u16), (u16, u16)) = ((25200, 25239), (25300, 25339));
/// Ingest's gateway and HTTP ports inside its container.
const INGEST_PORT: u16 = 6000;
const INGEST_HTTP_PORT: u16 = 9100;
/// Tenants started at once (F3).
const START_AT_ONCE: usize = 5;
/// Gateways commissioned at once.
const COMMISSION_AT_ONCE: usize = 64;
/// How long a fleet (or a step of one) may take to log in.
const LOGIN_WITHIN: Duration = Duration::from_secs(180);
/// Unacked readings per gateway at most (gateway-sim's default), and the
/// floor's frames in flight per writer.
const FLEET_WINDOW: usize = 32;
/// After a window ends, how long late acks of its readings may still come.
const LATE_ACKS: Duration = Duration::from_secs(5);

const USAGE: &str = "usage: bench-fleet [--parts f1,f2,f3] [--gateways N] [--intervals 10s,1s] [--seconds S] [--steps 1000,5000] [--settle S] [--sources K] [--tenants T] [--per-tenant P] [--f3-interval 10s] [--f3-sources K] [--memory-mb M] [--keep-node] [--keep-files]";

#[derive(Debug, Clone)]
struct Args {
    f1: bool,
    f2: bool,
    f3: bool,
    gateways: usize,
    intervals: Vec<Duration>,
    seconds: f64,
    steps: Vec<usize>,
    settle: f64,
    sources: usize,
    tenants: usize,
    per_tenant: usize,
    f3_interval: Duration,
    f3_sources: Option<usize>,
    memory_mb: u32,
    keep_node: bool,
    keep_files: bool,
}

fn parse_args() -> Args {
    let mut a = Args {
        f1: true,
        f2: true,
        f3: true,
        gateways: 10_000,
        intervals: vec![Duration::from_secs(10), Duration::from_secs(1)],
        seconds: 60.0,
        steps: vec![1000, 5000],
        settle: 12.0,
        sources: 64,
        tenants: 20,
        per_tenant: 500,
        f3_interval: Duration::from_secs(10),
        f3_sources: None,
        memory_mb: 512,
        keep_node: false,
        keep_files: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let mut value = || {
            it.next()
                .unwrap_or_else(|| panic!("{arg} needs a value\n{USAGE}"))
        };
        let number = |v: String| -> f64 {
            v.parse()
                .unwrap_or_else(|_| panic!("{arg}: a number, not {v:?}\n{USAGE}"))
        };
        let list = |v: String| -> Vec<usize> {
            v.split(',')
                .filter(|s| !s.is_empty())
                .map(|n| {
                    n.parse()
                        .unwrap_or_else(|_| panic!("{arg}: a list of numbers"))
                })
                .collect()
        };
        match arg.as_str() {
            "--parts" => {
                let v = value();
                let parts: Vec<&str> = v.split(',').collect();
                for p in &parts {
                    assert!(
                        ["f1", "f2", "f3"].contains(p),
                        "--parts: f1, f2, f3\n{USAGE}"
                    );
                }
                a.f1 = parts.contains(&"f1");
                a.f2 = parts.contains(&"f2");
                a.f3 = parts.contains(&"f3");
            }
            "--gateways" => a.gateways = number(value()) as usize,
            "--intervals" => {
                a.intervals = value()
                    .split(',')
                    .map(|v| parse_interval(v).unwrap_or_else(|e| panic!("--intervals: {e}")))
                    .collect()
            }
            "--seconds" => a.seconds = number(value()),
            "--steps" => a.steps = list(value()),
            "--settle" => a.settle = number(value()),
            "--sources" => a.sources = number(value()) as usize,
            "--tenants" => a.tenants = number(value()) as usize,
            "--per-tenant" => a.per_tenant = number(value()) as usize,
            "--f3-interval" => {
                a.f3_interval =
                    parse_interval(&value()).unwrap_or_else(|e| panic!("--f3-interval: {e}"))
            }
            "--f3-sources" => a.f3_sources = Some(number(value()) as usize),
            "--memory-mb" => a.memory_mb = number(value()) as u32,
            "--keep-node" => a.keep_node = true,
            "--keep-files" => a.keep_files = true,
            "-h" | "--help" => {
                println!("{USAGE}");
                std::process::exit(0);
            }
            other => panic!("unknown argument {other}\n{USAGE}"),
        }
    }
    assert!(
        a.gateways > 0 && a.sources > 0 && !a.intervals.is_empty(),
        "--gateways, --sources and --intervals must not be empty\n{USAGE}"
    );
    assert!(
        a.tenants > 0 && a.tenants < 40 && a.per_tenant > 0,
        "--tenants from 1 to 39, --per-tenant at least 1"
    );
    a.steps.retain(|&s| s > 0 && s < a.gateways);
    a.steps.sort_unstable();
    a.steps.dedup();
    a
}

fn utc_now() -> String {
    chrono::Utc::now()
        .format("%Y-%m-%d %H:%M:%S UTC")
        .to_string()
}

fn secs(d: Duration) -> String {
    format!("{:.2}", d.as_secs_f64())
}

fn ms(d: Duration) -> String {
    format!("{:.1}", d.as_secs_f64() * 1e3)
}

fn mb(bytes: Option<u64>) -> String {
    bytes.map_or("?".to_owned(), |b| format!("{:.1}", b as f64 / 1e6))
}

/// A tenant of the run, as the fleet reaches it.
#[derive(Debug, Clone)]
struct Tenant {
    id: String,
    keyspace: String,
    ingest: String,
    /// The ingest container's address on the tenant network, port 6000.
    addr: SocketAddr,
    /// The host's interface on that network and the network's subnet.
    bridge: String,
    subnet: (Ipv4Addr, u8),
    sources: Vec<IpAddr>,
}

/// Latencies and counts of one measuring window.
#[derive(Debug, Clone, Default)]
struct Window {
    readings: usize,
    seconds: f64,
    p50: Duration,
    p99: Duration,
    max: Duration,
}

impl Window {
    fn of(sorted_us: &[u64], seconds: f64) -> Window {
        Window {
            readings: sorted_us.len(),
            seconds,
            p50: quantile_us(sorted_us, 0.5),
            p99: quantile_us(sorted_us, 0.99),
            max: quantile_us(sorted_us, 1.0),
        }
    }
}

/// Ingest's memory at one point.
#[derive(Debug, Clone, Default)]
struct Memory {
    connections: usize,
    /// Established connections on port 6000 in ingest's own TCP table, and
    /// their distinct peer addresses.
    established: Option<(usize, usize)>,
    vm_rss: Option<u64>,
    /// cgroup v1 `memory.usage_in_bytes` − `total_cache`.
    cgroup: Option<u64>,
    /// How long the step's logins took.
    login: Option<Duration>,
    /// `ingest_connections_rejected_total` by reason (and evictions).
    refusals: String,
}

/// One interval of F1.
#[derive(Debug, Clone)]
struct RateRow {
    interval: Duration,
    gateways: usize,
    ingest: Window,
    floor: FloorRun,
    login: Option<Duration>,
    memory: Memory,
    unacked: u64,
    failed_logins: u64,
    cpu: String,
}

#[derive(Debug, Clone, Default)]
struct Storm {
    gateways: usize,
    restart_call: Duration,
    /// From the restart command: every gateway welcomed again; 50/90/99 %.
    all_in: Option<Duration>,
    quantiles: Vec<(f64, Option<Duration>)>,
    /// From the restart command's return.
    all_in_after_return: Option<Duration>,
    all_acked: Option<Duration>,
    refusals: String,
    ingest_log_refusals: usize,
    failed_logins: u64,
    /// Why connections ended or failed (whole run), most frequent first.
    breaks: String,
    acked: u64,
    unacked: u64,
    lost: Option<usize>,
    lost_sample: Vec<String>,
    check_secs: f64,
    ip_changed: bool,
}

#[derive(Debug, Clone, Default)]
struct Outcome {
    began: String,
    ended: String,
    load_before: String,
    load_after: String,
    commission: Vec<(usize, Duration)>,
    memory: Vec<Memory>,
    rates: Vec<RateRow>,
    storm: Option<Storm>,
    f3: Vec<(String, Window, usize)>,
    f3_logins: Option<Duration>,
    f3_unacked: u64,
    f3_failed_logins: u64,
    notes: Vec<String>,
}

/// A fleet: parts started one after another, each a `resilient::run`.
struct Fleet {
    parts: Vec<FleetPart>,
}

struct FleetPart {
    gateways: usize,
    progress: Arc<Progress>,
    task: tokio::task::JoinHandle<ResilientReport>,
    acked_file: PathBuf,
}

impl Fleet {
    fn new() -> Fleet {
        Fleet { parts: Vec::new() }
    }

    /// Starts gateways `first..first + n` of `tenant` at one reading per
    /// `interval`, their acks appended to `acked_file`.
    fn start(
        &mut self,
        tenant: &Tenant,
        token: &str,
        first: usize,
        n: usize,
        interval: Duration,
        acked_file: PathBuf,
    ) {
        let gateways = (first..first + n)
            .map(|i| (format!("gw-{i}"), token.to_owned()))
            .collect();
        let mut cfg = ResilientConfig::new(
            &tenant.addr.to_string(),
            gateways,
            1.0 / interval.as_secs_f64(),
            Duration::from_secs(24 * 3600),
        );
        cfg.jitter = 0.1;
        cfg.random_phase = true;
        cfg.window = FLEET_WINDOW;
        cfg.keep_acks = false;
        cfg.acked_file = Some(acked_file.clone());
        cfg.drain_timeout = Duration::from_secs(60);
        cfg.seed = first as u64;
        // gateway i of the tenant from source i mod K, whatever part it is in
        let k = tenant.sources.len();
        cfg.source_addrs = (0..k.min(n))
            .map(|j| tenant.sources[(first + j) % k])
            .collect();
        cfg.check().expect("a valid fleet");
        let progress = Progress::new(n);
        let task = tokio::spawn(resilient::run(cfg, progress.clone()));
        self.parts.push(FleetPart {
            gateways: n,
            progress,
            task,
            acked_file,
        });
    }

    fn size(&self) -> usize {
        self.parts.iter().map(|p| p.gateways).sum()
    }

    /// Gateways of the parts from `from_part` on welcomed after `since`,
    /// and when the last of them was.
    fn logged_in_since(&self, from_part: usize, since: Instant) -> (usize, Option<Instant>) {
        self.parts[from_part..]
            .iter()
            .map(|p| p.progress.logged_in_since(since))
            .fold((0, None), |(n, last), (m, l)| (n + m, last.max(l)))
    }

    /// When each gateway last got a welcome after `since`, from `since`,
    /// sorted.
    fn logins_after(&self, since: Instant) -> Vec<Duration> {
        let mut v: Vec<Duration> = self
            .parts
            .iter()
            .flat_map(|p| (0..p.gateways).filter_map(|i| p.progress.last_login(i)))
            .filter(|t| *t > since)
            .map(|t| t - since)
            .collect();
        v.sort_unstable();
        v
    }

    fn acked_since(&self, since: Instant) -> usize {
        self.parts
            .iter()
            .map(|p| p.progress.acked_since(since))
            .sum()
    }

    /// Waits until every gateway of the parts from `from_part` on was
    /// welcomed after `since` (the time from `since` to the last welcome),
    /// or `within` passed (None). With `marks`, notes when each fraction
    /// of them was in.
    async fn wait_logged_in(
        &self,
        from_part: usize,
        since: Instant,
        within: Duration,
        marks: &mut [(f64, Option<Duration>)],
    ) -> Option<Duration> {
        let all: usize = self.parts[from_part..].iter().map(|p| p.gateways).sum();
        loop {
            let (n, last) = self.logged_in_since(from_part, since);
            for (fraction, at) in marks.iter_mut() {
                if at.is_none() && n as f64 >= *fraction * all as f64 {
                    *at = Some(since.elapsed());
                }
            }
            if n >= all {
                return last.map(|l| l.saturating_duration_since(since));
            }
            if since.elapsed() > within {
                eprintln!("  {n} of {all} gateways logged in within {within:?}");
                return None;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    async fn wait_acked(&self, since: Instant, within: Duration) -> Option<Duration> {
        let all = self.size();
        loop {
            if self.acked_since(since) >= all {
                return Some(since.elapsed());
            }
            if since.elapsed() > within {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Measures over `seconds`: the latencies of readings due in it.
    async fn window(&self, seconds: f64) -> Window {
        let from = Instant::now();
        for p in &self.parts {
            p.progress.measure_from(from);
        }
        tokio::time::sleep(Duration::from_secs_f64(seconds)).await;
        let until = Instant::now();
        for p in &self.parts {
            p.progress.measure_until(until);
        }
        tokio::time::sleep(LATE_ACKS).await;
        let mut all: Vec<u64> = self
            .parts
            .iter()
            .flat_map(|p| p.progress.measured())
            .collect();
        all.sort_unstable();
        Window::of(&all, seconds)
    }

    /// Stops making readings, waits for the drain; the reports.
    async fn finish(self) -> (Vec<ResilientReport>, Vec<PathBuf>) {
        for p in &self.parts {
            p.progress.stop_making();
        }
        let mut reports = Vec::new();
        let mut files = Vec::new();
        for p in self.parts {
            reports.push(p.task.await.expect("the fleet's task"));
            files.push(p.acked_file);
        }
        (reports, files)
    }
}

fn unacked(reports: &[ResilientReport]) -> u64 {
    reports.iter().map(ResilientReport::unacked).sum()
}

/// Why connections ended or failed, over every gateway: the 5 most
/// frequent reasons.
fn breaks(reports: &[ResilientReport]) -> String {
    let mut all: HashMap<&str, u64> = HashMap::new();
    for g in reports.iter().flat_map(|r| &r.gateways) {
        for (why, n) in &g.breaks {
            *all.entry(why.as_str()).or_default() += u64::from(*n);
        }
    }
    let mut v: Vec<(&str, u64)> = all.into_iter().collect();
    v.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
    v.iter()
        .take(5)
        .map(|(why, n)| format!("{n} × {why}"))
        .collect::<Vec<_>>()
        .join("; ")
}

fn failed_logins(reports: &[ResilientReport]) -> u64 {
    reports.iter().map(ResilientReport::failed_logins).sum()
}

struct Bench {
    args: Args,
    docker: Docker,
    provision: PathBuf,
    run: String,
    dir: PathBuf,
    config: PathBuf,
    node: SocketAddr,
    token: String,
    admin: Session,
    /// Tenants started (destroyed at the end).
    started: Mutex<Vec<String>>,
    /// Addresses added: (interface, address).
    added: Mutex<Vec<(String, Ipv4Addr)>>,
    /// NAT exemptions inserted: the rule's arguments after `-I POSTROUTING 1`.
    exempt: Mutex<Vec<(String, Vec<String>)>>,
}

#[tokio::main]
async fn main() {
    let args = parse_args();
    let docker = docker().await;
    let busy: Vec<u16> = (POOLS.0 .0..=POOLS.0 .1)
        .chain(POOLS.1 .0..=POOLS.1 .1)
        .filter(|p| std::net::TcpListener::bind((Ipv4Addr::LOCALHOST, *p)).is_err())
        .collect();
    assert!(
        busy.is_empty(),
        "ports the bench needs are taken: {busy:?} (a leftover run? docker ps --filter label={BENCH_LABEL})"
    );
    if let Some((soft, _)) = resilient::open_files_limit() {
        let need = (args.gateways.max(args.tenants * args.per_tenant) + 500) as u64;
        assert!(
            soft >= need,
            "ulimit -n is {soft}; the fleet needs {need} (scripts/bench-fleet raises it)"
        );
    }
    let (node, node_created) = ensure_node(&docker).await;
    let run = random_suffix();
    let dir = std::env::temp_dir().join(format!("fleet-bench-{run}"));
    std::fs::create_dir_all(&dir).expect("create the bench directory");
    let config = dir.join("provision.toml");
    let public = "public_host = \"127.0.0.1\"\n";
    let base = config_text(&dir, &run, node, POOLS.0, POOLS.1);
    assert!(base.contains(public), "config_text changed: {base}");
    let text = format!(
        "{}\n[limits]\nmemory_mb = {}\n",
        base.replace(public, &format!("{public}bind_address = \"127.0.0.1\"\n")),
        args.memory_mb
    );
    std::fs::write(&config, text).expect("write the config");
    let admin = connect_published(node, SUPERUSER.0, SUPERUSER.1)
        .await
        .expect("the node's superuser");
    let bench = Bench {
        args: args.clone(),
        docker,
        provision: sibling_binary("provision", "PROVISION_BIN"),
        run,
        dir,
        config,
        node,
        token: new_gateway_token(),
        admin,
        started: Mutex::new(Vec::new()),
        added: Mutex::new(Vec::new()),
        exempt: Mutex::new(Vec::new()),
    };
    eprintln!(
        "bench-fleet: run {}, files in {}, Cassandra {NODE} at {node}",
        bench.run,
        bench.dir.display()
    );
    let outcome = bench::until_interrupted(bench.measure()).await;
    if outcome.is_none() {
        eprintln!("bench-fleet: interrupted; cleaning up");
    }
    bench.cleanup().await;
    if args.keep_files {
        eprintln!(
            "the bench's config, state and acked files: {}",
            bench.dir.display()
        );
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

impl Bench {
    async fn measure(&self) -> Outcome {
        let mut o = Outcome {
            began: utc_now(),
            load_before: loadavg(),
            ..Outcome::default()
        };
        if self.args.f1 || self.args.f2 {
            self.fleet_on_one_tenant(&mut o).await;
        }
        if self.args.f3 {
            self.many_tenants(&mut o).await;
        }
        o.ended = utc_now();
        o.load_after = loadavg();
        o
    }

    /// Runs `provision --config <config> <args>`: exit code, stdout, stderr.
    async fn provision(&self, args: &[&str]) -> (i32, String, String) {
        let out = tokio::process::Command::new(&self.provision)
            .arg("--config")
            .arg(&self.config)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .output()
            .await
            .expect("provision runs");
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    /// Starts tenant `id` with `--max-gateways max`, commissions gateways
    /// `gw-0..gw-<gateways>` with the run's token, adds `sources`
    /// addresses to its bridge: how the fleet reaches it.
    async fn tenant(&self, id: &str, gateways: usize, sources: usize) -> (Tenant, Duration) {
        self.started.lock().unwrap().push(id.to_owned());
        let began = Instant::now();
        let max = gateways.to_string();
        let (code, out, err) = self
            .provision(&["--json", "start", id, "--max-gateways", &max])
            .await;
        assert_eq!(code, 0, "provision start {id} failed:\n{out}\n{err}");
        eprintln!("  {id}: started in {:.1} s", began.elapsed().as_secs_f64());
        let ingest = self.ingest_container(id).await;
        let (addr, bridge, subnet) = self.ingest_address(&ingest).await;
        let keyspace = provisioner::ProviderId::parse(id)
            .expect("a valid id")
            .keyspace();
        let began = Instant::now();
        futures::stream::iter(0..gateways)
            .map(|g| {
                let (admin, keyspace, token) = (&self.admin, &keyspace, &self.token);
                async move {
                    commission_gateway_with(admin, keyspace, &format!("gw-{g}"), token).await
                }
            })
            .buffer_unordered(COMMISSION_AT_ONCE)
            .collect::<Vec<()>>()
            .await;
        let commissioned = began.elapsed();
        eprintln!(
            "  {id}: {gateways} gateways commissioned in {:.1} s (CQL, {COMMISSION_AT_ONCE} at once)",
            commissioned.as_secs_f64()
        );
        let sources = self.add_sources(&bridge, subnet, addr.ip(), sources).await;
        let tenant = Tenant {
            id: id.to_owned(),
            keyspace,
            ingest,
            addr,
            bridge,
            subnet,
            sources,
        };
        (tenant, commissioned)
    }

    async fn ingest_container(&self, id: &str) -> String {
        let filters = HashMap::from([(
            "label".to_owned(),
            vec![
                format!("{BENCH_LABEL}={}", self.run),
                format!("io.provision.tenant={id}"),
                "io.provision.role=ingest".to_owned(),
            ],
        )]);
        let list = self
            .docker
            .list_containers(Some(
                ListContainersOptionsBuilder::default()
                    .all(true)
                    .filters(&filters)
                    .build(),
            ))
            .await
            .expect("docker lists containers");
        let names: Vec<String> = list
            .into_iter()
            .filter_map(|c| c.names?.into_iter().next())
            .map(|n| n.trim_start_matches('/').to_owned())
            .collect();
        assert_eq!(names.len(), 1, "one ingest container of {id}: {names:?}");
        names[0].clone()
    }

    /// The ingest container's address on its tenant network (port 6000),
    /// the host's bridge interface on that network, and its subnet.
    async fn ingest_address(&self, ingest: &str) -> (SocketAddr, String, (Ipv4Addr, u8)) {
        let inspect = self
            .docker
            .inspect_container(ingest, None)
            .await
            .expect("inspect ingest");
        let networks = inspect
            .network_settings
            .and_then(|n| n.networks)
            .unwrap_or_default();
        let (name, endpoint) = networks
            .into_iter()
            .find(|(name, _)| name != NETWORK)
            .expect("ingest is on its tenant network");
        let ip: Ipv4Addr = endpoint
            .ip_address
            .as_deref()
            .and_then(|a| a.parse().ok())
            .expect("ingest has an IPv4 address on its network");
        let network = self
            .docker
            .inspect_network(&name, None)
            .await
            .expect("inspect the tenant network");
        let id = network.id.clone().unwrap_or_default();
        let bridge = network
            .options
            .as_ref()
            .and_then(|o| o.get("com.docker.network.bridge.name").cloned())
            .unwrap_or_else(|| format!("br-{}", &id[..12]));
        let subnet = network
            .ipam
            .and_then(|i| i.config)
            .unwrap_or_default()
            .into_iter()
            .filter_map(|c| c.subnet)
            .find_map(|s| {
                let (a, bits) = s.split_once('/')?;
                Some((a.parse::<Ipv4Addr>().ok()?, bits.parse::<u8>().ok()?))
            })
            .expect("an IPv4 subnet on the tenant network");
        (SocketAddr::new(IpAddr::V4(ip), INGEST_PORT), bridge, subnet)
    }

    /// Adds `k` /32 addresses from the top of `subnet` (below its broadcast
    /// address) to `bridge`.
    async fn add_sources(
        &self,
        bridge: &str,
        subnet: (Ipv4Addr, u8),
        ingest: IpAddr,
        k: usize,
    ) -> Vec<IpAddr> {
        let mask = if subnet.1 == 0 {
            0
        } else {
            u32::MAX << (32 - u32::from(subnet.1))
        };
        let broadcast = (u32::from(subnet.0) & mask) | !mask;
        assert!(
            (k as u64) < u64::from(!mask) / 2,
            "{k} source addresses do not fit the top half of {}/{}",
            subnet.0,
            subnet.1
        );
        let mut out = Vec::new();
        for j in 1..=k as u32 {
            let a = Ipv4Addr::from(broadcast - j);
            assert_ne!(IpAddr::V4(a), ingest, "a source address is ingest's");
            let status = tokio::process::Command::new("ip")
                .args(["addr", "add", &format!("{a}/32"), "dev", bridge])
                .status()
                .await
                .expect("ip runs");
            assert!(status.success(), "ip addr add {a}/32 dev {bridge} failed");
            self.added.lock().unwrap().push((bridge.to_owned(), a));
            out.push(IpAddr::V4(a));
        }
        // Without the userland proxy the engine masquerades whatever the
        // host itself sends into a bridge (`-o br-… -m addrtype --src-type
        // LOCAL -j MASQUERADE`, for hairpin NAT): every source address
        // would become the bridge's own. These go out as they are.
        let rule: Vec<String> = [
            "-o",
            bridge,
            "-m",
            "iprange",
            "--src-range",
            &format!(
                "{}-{}",
                Ipv4Addr::from(broadcast - k as u32),
                Ipv4Addr::from(broadcast - 1)
            ),
            "-m",
            "comment",
            "--comment",
            &format!("bench-fleet-{}", self.run),
            "-j",
            "RETURN",
        ]
        .map(str::to_owned)
        .to_vec();
        let status = tokio::process::Command::new("iptables")
            .args(["-t", "nat", "-I", "POSTROUTING", "1"])
            .args(&rule)
            .status()
            .await
            .expect("iptables runs");
        assert!(
            status.success(),
            "iptables -t nat -I POSTROUTING 1 {rule:?} failed"
        );
        self.exempt.lock().unwrap().push((bridge.to_owned(), rule));
        out
    }

    async fn remove_sources(&self, bridge: &str) {
        let mine: Vec<(String, Ipv4Addr)> = {
            let mut added = self.added.lock().unwrap();
            let (mine, rest) = added.drain(..).partition(|(b, _)| b == bridge);
            *added = rest;
            mine
        };
        for (b, a) in mine {
            let _ = tokio::process::Command::new("ip")
                .args(["addr", "del", &format!("{a}/32"), "dev", &b])
                .status()
                .await;
        }
        let rules: Vec<Vec<String>> = {
            let mut exempt = self.exempt.lock().unwrap();
            let (mine, rest) = exempt.drain(..).partition(|(b, _)| b == bridge);
            *exempt = rest;
            mine.into_iter().map(|(_, r)| r).collect()
        };
        for rule in rules {
            let _ = tokio::process::Command::new("iptables")
                .args(["-t", "nat", "-D", "POSTROUTING"])
                .args(&rule)
                .status()
                .await;
        }
    }

    async fn destroy(&self, id: &str) {
        let (code, _, err) = self
            .provision(&["destroy", id, "--yes", "--purge-data"])
            .await;
        if code != 0 {
            eprintln!("destroy {id}: {}", err.trim());
        }
        self.started.lock().unwrap().retain(|t| t != id);
    }

    async fn cleanup(&self) {
        let added: Vec<String> = self
            .added
            .lock()
            .unwrap()
            .iter()
            .map(|(b, _)| b.clone())
            .chain(self.exempt.lock().unwrap().iter().map(|(b, _)| b.clone()))
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        for bridge in added {
            self.remove_sources(&bridge).await;
        }
        let started: Vec<String> = self.started.lock().unwrap().clone();
        futures::stream::iter(started)
            .map(|id| async move { self.destroy(&id).await })
            .buffer_unordered(START_AT_ONCE)
            .collect::<Vec<()>>()
            .await;
        remove_labelled(&self.docker, &format!("{BENCH_LABEL}={}", self.run)).await;
    }

    /// Ingest's memory and what it sees now.
    async fn memory(&self, tenant: &Tenant, connections: usize) -> Memory {
        let pid = container_state(&self.docker, &tenant.ingest)
            .await
            .ok()
            .and_then(|s| s.pid)
            .filter(|p| *p > 0);
        let vm_rss = pid
            .and_then(|p| provision_testkit::bench::proc_kib(p as u32, "VmRSS:").map(|k| k * 1024));
        let cgroup = pid.and_then(|p| cgroup_usage_without_cache(p as u32));
        let established = pid.and_then(|p| established_peers(p as u32, INGEST_PORT));
        Memory {
            connections,
            established,
            vm_rss,
            cgroup,
            login: None,
            refusals: self.refusals(tenant).await,
        }
    }

    /// Ingest's refusals since it started, from its `/metrics`.
    async fn refusals(&self, tenant: &Tenant) -> String {
        let addr = SocketAddr::new(tenant.addr.ip(), INGEST_HTTP_PORT).to_string();
        let Some((200, text)) = tcp_get(&addr, "/metrics", "-").await else {
            return "? (no /metrics)".to_owned();
        };
        let mut parts = Vec::new();
        for line in text.lines() {
            let Some(rest) = line.strip_prefix("ingest_connections_rejected_total{") else {
                continue;
            };
            let Some((labels, value)) = rest.split_once("} ") else {
                continue;
            };
            let reason = labels
                .split(',')
                .find_map(|l| l.strip_prefix("reason=\""))
                .map(|r| r.trim_end_matches('"'))
                .unwrap_or(labels);
            if value.trim() != "0" {
                parts.push(format!("{reason} {}", value.trim()));
            }
        }
        for name in [
            "ingest_connections_evicted_total",
            "ingest_hello_refusals_total",
            "ingest_auth_failures_total",
            "ingest_token_reads_total",
            "ingest_token_book_reads_total",
        ] {
            let value: f64 = text
                .lines()
                .filter(|l| l.starts_with(name) && !l.starts_with('#'))
                .filter_map(|l| l.rsplit_once(' ')?.1.parse::<f64>().ok())
                .sum();
            if value != 0.0 {
                let short = name
                    .trim_start_matches("ingest_")
                    .trim_end_matches("_total");
                parts.push(format!("{short} {value}"));
            }
        }
        if parts.is_empty() {
            "none".to_owned()
        } else {
            parts.join(", ")
        }
    }

    /// Floor at the fleet's rows and rate, on the tenant's keyspace.
    async fn floor(&self, tenant: &Tenant, gateways: usize, interval: Duration) -> FloorRun {
        let node = provision_testkit::containers::network_ip(&self.docker, NODE)
            .await
            .map_or(self.node, |ip| SocketAddr::new(ip, 9042));
        let session = connect_published(node, SUPERUSER.0, SUPERUSER.1)
            .await
            .expect("a floor session");
        let store = ingest::store::Store::prepare(Arc::new(session), &tenant.keyspace)
            .await
            .expect("ingest's statements");
        let grouping = ingest::server::Limits::from(&ingest::settings::Settings::default()).writes;
        fleet_floor(
            Arc::new(store),
            grouping,
            gateways,
            1.0 / interval.as_secs_f64(),
            1,
            Duration::from_secs_f64(self.args.seconds),
            FLEET_WINDOW,
        )
        .await
    }

    // ---- F1 and F2 --------------------------------------------------------

    async fn fleet_on_one_tenant(&self, o: &mut Outcome) {
        let a = &self.args;
        let n = a.gateways;
        let id = format!("fleet_{}", self.run);
        eprintln!(
            "F1/F2: tenant {id}, {n} gateways from {} addresses",
            a.sources
        );
        let (tenant, commissioned) = self.tenant(&id, n, a.sources).await;
        o.commission.push((n, commissioned));
        eprintln!(
            "  ingest {} at {} on {} ({}/{}), sources {}…{}",
            tenant.ingest,
            tenant.addr,
            tenant.bridge,
            tenant.subnet.0,
            tenant.subnet.1,
            tenant.sources[0],
            tenant.sources[tenant.sources.len() - 1]
        );
        tokio::time::sleep(Duration::from_secs(5)).await;
        let idle = self.memory(&tenant, 0).await;
        eprintln!("  idle: {idle:?}");
        o.memory.push(idle);

        let first_interval = a.intervals[0];
        let mut steps = a.steps.clone();
        if !a.f1 {
            steps.clear();
        }
        steps.push(n);
        let mut fleet = Fleet::new();
        let mut up = 0;
        for &step in &steps {
            let began = Instant::now();
            fleet.start(
                &tenant,
                &self.token,
                up,
                step - up,
                first_interval,
                self.dir.join(format!("acked-f1-{up}.txt")),
            );
            let part = fleet.parts.len() - 1;
            let login = fleet
                .wait_logged_in(part, began, LOGIN_WITHIN, &mut [])
                .await;
            eprintln!(
                "  {step} gateways at 1 per {first_interval:?}: {} more logged in after {}",
                step - up,
                login.map_or("never".to_owned(), secs)
            );
            up = step;
            tokio::time::sleep(Duration::from_secs_f64(a.settle)).await;
            let mut m = self.memory(&tenant, step).await;
            m.login = login;
            eprintln!("  {step} connections: {m:?}");
            o.memory.push(m);
        }
        let ingest_pid = container_state(&self.docker, &tenant.ingest)
            .await
            .ok()
            .and_then(|s| s.pid);
        if a.f1 {
            let cpu = Cpu::start(ingest_pid);
            let w = fleet.window(a.seconds).await;
            let cpu = cpu.finish(ingest_pid);
            eprintln!(
                "  window at 1 per {first_interval:?}: {} readings, p50 {} p99 {} max {} ms ({cpu})",
                w.readings,
                ms(w.p50),
                ms(w.p99),
                ms(w.max)
            );
            let memory = o.memory.last().cloned().unwrap_or_default();
            o.rates.push(RateRow {
                interval: first_interval,
                gateways: n,
                ingest: w,
                floor: FloorRun::default(),
                login: memory.login,
                memory,
                unacked: 0,
                failed_logins: 0,
                cpu,
            });
        }
        if a.f2 {
            let storm = self.storm(&tenant, &fleet).await;
            o.storm = Some(storm);
        }
        let (reports, files) = fleet.finish().await;
        let (un, failed) = (unacked(&reports), failed_logins(&reports));
        eprintln!("  fleet stopped: {un} unacked, {failed} failed logins");
        if let Some(storm) = o.storm.as_mut() {
            storm.unacked = un;
            storm.failed_logins = failed;
            storm.breaks = breaks(&reports);
            let began = Instant::now();
            let acks = read_acks(&files);
            storm.acked = acks.len() as u64;
            match missing_acked(&self.admin, &tenant.keyspace, &acks).await {
                Ok(missing) => {
                    storm.lost = Some(missing.len());
                    storm.lost_sample = missing.iter().take(5).map(Ack::line).collect();
                }
                Err(e) => o.notes.push(format!("F2: the loss check failed: {e}")),
            }
            storm.check_secs = began.elapsed().as_secs_f64();
            eprintln!(
                "  F2: {} acked readings, {:?} not in Cassandra (checked in {:.1} s)",
                storm.acked, storm.lost, storm.check_secs
            );
        }
        if let Some(row) = o.rates.first_mut() {
            row.unacked = un;
            row.failed_logins = failed;
            row.floor = self.floor(&tenant, n, first_interval).await;
            eprintln!(
                "  floor at {n} x 1 per {first_interval:?}: p50 {} p99 {} max {} ms, {} errors",
                ms(row.floor.p50),
                ms(row.floor.p99),
                ms(row.floor.max),
                row.floor.errors
            );
        }
        if a.f1 {
            for &interval in &a.intervals[1..] {
                let row = self.at_interval(&tenant, interval).await;
                o.rates.push(row);
            }
        }
        self.remove_sources(&tenant.bridge).await;
        self.destroy(&id).await;
    }

    /// A fleet of all the tenant's gateways at `interval`: logins, a
    /// window, the floor.
    async fn at_interval(&self, tenant: &Tenant, interval: Duration) -> RateRow {
        let n = self.args.gateways;
        let mut fleet = Fleet::new();
        let began = Instant::now();
        fleet.start(
            tenant,
            &self.token,
            0,
            n,
            interval,
            self.dir
                .join(format!("acked-f1-{}ms.txt", interval.as_millis())),
        );
        let login = fleet.wait_logged_in(0, began, LOGIN_WITHIN, &mut []).await;
        eprintln!(
            "  {n} gateways at 1 per {interval:?}: logged in after {}",
            login.map_or("never".to_owned(), secs)
        );
        let settle = self.args.settle.max(interval.as_secs_f64() * 1.5);
        tokio::time::sleep(Duration::from_secs_f64(settle)).await;
        let ingest_pid = container_state(&self.docker, &tenant.ingest)
            .await
            .ok()
            .and_then(|s| s.pid);
        let cpu = Cpu::start(ingest_pid);
        let w = fleet.window(self.args.seconds).await;
        let cpu = cpu.finish(ingest_pid);
        let mut memory = self.memory(tenant, n).await;
        memory.login = login;
        eprintln!(
            "  window at 1 per {interval:?}: {} readings, p50 {} p99 {} max {} ms ({cpu}); {memory:?}",
            w.readings,
            ms(w.p50),
            ms(w.p99),
            ms(w.max)
        );
        let (reports, _) = fleet.finish().await;
        let floor = self.floor(tenant, n, interval).await;
        eprintln!(
            "  floor at {n} x 1 per {interval:?}: p50 {} p99 {} max {} ms, {} errors",
            ms(floor.p50),
            ms(floor.p99),
            ms(floor.max),
            floor.errors
        );
        RateRow {
            interval,
            gateways: n,
            ingest: w,
            floor,
            login,
            memory,
            unacked: unacked(&reports),
            failed_logins: failed_logins(&reports),
            cpu,
        }
    }

    /// F2: `docker restart` of ingest under the running fleet.
    async fn storm(&self, tenant: &Tenant, fleet: &Fleet) -> Storm {
        let mut storm = Storm {
            gateways: fleet.size(),
            quantiles: vec![(0.5, None), (0.9, None), (0.99, None)],
            ..Storm::default()
        };
        eprintln!(
            "F2: docker restart {} under {} gateways",
            tenant.ingest, storm.gateways
        );
        let t0 = Instant::now();
        let restart = tokio::process::Command::new("docker")
            .args(["restart", &tenant.ingest])
            .stdout(Stdio::null())
            .status();
        // the marks are taken while the restart runs, too
        let mut marks = storm.quantiles.clone();
        let (status, all_in) = tokio::join!(
            async {
                let s = restart.await;
                (s, t0.elapsed())
            },
            fleet.wait_logged_in(0, t0, LOGIN_WITHIN, &mut marks)
        );
        let (status, returned) = status;
        assert!(
            status.map(|s| s.success()).unwrap_or(false),
            "docker restart {} failed",
            tenant.ingest
        );
        storm.restart_call = returned;
        // each gateway's welcome, for the 50/90/99% marks (polled marks
        // are 20 ms coarse; these are the welcomes' own times)
        let logins = fleet.logins_after(t0);
        storm.quantiles = marks
            .iter()
            .map(|(q, polled)| {
                let rank = ((q * storm.gateways as f64).ceil() as usize).max(1);
                (*q, logins.get(rank - 1).copied().or(*polled))
            })
            .collect();
        storm.all_in = all_in;
        storm.all_in_after_return = all_in.map(|d| d.saturating_sub(returned));
        // acks after the restart returned: the new ingest's (the old one
        // acks what it drains while it stops)
        storm.all_acked = fleet
            .wait_acked(t0 + returned, LOGIN_WITHIN)
            .await
            .map(|d| d + returned);
        let (addr, _, _) = self.ingest_address(&tenant.ingest).await;
        storm.ip_changed = addr != tenant.addr;
        storm.refusals = self.refusals(tenant).await;
        storm.ingest_log_refusals = ingest_log_count(&tenant.ingest, "connection refused").await;
        eprintln!("  F2: {storm:?}");
        // one interval and more on the new ingest before the fleet stops
        let after = self.args.intervals[0].as_secs_f64() * 1.5 + 2.0;
        tokio::time::sleep(Duration::from_secs_f64(after)).await;
        storm
    }

    // ---- F3 ------------------------------------------------------------------

    async fn many_tenants(&self, o: &mut Outcome) {
        let a = &self.args;
        let (t, p) = (a.tenants, a.per_tenant);
        let sources = a.f3_sources.unwrap_or(p.div_ceil(16)).max(1);
        eprintln!(
            "F3: {t} tenants x {p} gateways at 1 per {:?}, {sources} addresses each",
            a.f3_interval
        );
        let ids: Vec<String> = (0..t).map(|k| format!("t{k}_{}", self.run)).collect();
        let tenants: Vec<Tenant> = futures::stream::iter(ids.iter())
            .map(|id| async move { self.tenant(id, p, sources).await.0 })
            .buffer_unordered(START_AT_ONCE)
            .collect()
            .await;
        let mut tenants = tenants;
        tenants.sort_by(|x, y| x.id.cmp(&y.id));
        let began = Instant::now();
        let fleets: Vec<Fleet> = tenants
            .iter()
            .map(|tenant| {
                let mut fleet = Fleet::new();
                fleet.start(
                    tenant,
                    &self.token,
                    0,
                    p,
                    a.f3_interval,
                    self.dir.join(format!("acked-{}.txt", tenant.id)),
                );
                fleet
            })
            .collect();
        let logins = futures::future::join_all(
            fleets
                .iter()
                .map(|f| f.wait_logged_in(0, began, LOGIN_WITHIN, &mut [])),
        )
        .await;
        o.f3_logins = logins
            .iter()
            .try_fold(Duration::ZERO, |max, l| Some(max.max((*l)?)));
        eprintln!(
            "  {} gateways logged in after {}",
            t * p,
            o.f3_logins.map_or("never (some)".to_owned(), secs)
        );
        let settle = a.settle.max(a.f3_interval.as_secs_f64() * 1.2);
        tokio::time::sleep(Duration::from_secs_f64(settle)).await;
        let windows = futures::future::join_all(fleets.iter().map(|f| f.window(a.seconds))).await;
        let mut reports = Vec::new();
        for f in fleets {
            reports.extend(f.finish().await.0);
        }
        o.f3_unacked = unacked(&reports);
        o.f3_failed_logins = failed_logins(&reports);
        for (tenant, w) in tenants.iter().zip(windows) {
            eprintln!(
                "  {}: {} readings, p50 {} p99 {} max {} ms",
                tenant.id,
                w.readings,
                ms(w.p50),
                ms(w.p99),
                ms(w.max)
            );
            o.f3.push((tenant.id.clone(), w, p));
        }
        for tenant in &tenants {
            self.remove_sources(&tenant.bridge).await;
        }
        futures::stream::iter(ids.iter())
            .map(|id| async move { self.destroy(id).await })
            .buffer_unordered(START_AT_ONCE)
            .collect::<Vec<()>>()
            .await;
    }
}

/// CPU used by this process (the gateways) and by ingest during a window.
struct Cpu {
    began: Instant,
    bench: Option<Duration>,
    ingest: Option<Duration>,
}

impl Cpu {
    fn start(ingest: Option<i64>) -> Cpu {
        Cpu {
            began: Instant::now(),
            bench: process_cpu_time("self"),
            ingest: ingest.and_then(|p| process_cpu_time(&p.to_string())),
        }
    }

    fn finish(self, ingest: Option<i64>) -> String {
        let wall = self.began.elapsed().as_secs_f64();
        let cores = |b: Option<Duration>, a: Option<Duration>| match (b, a) {
            (Some(b), Some(a)) => format!("{:.2}", a.saturating_sub(b).as_secs_f64() / wall),
            _ => "?".to_owned(),
        };
        format!(
            "gateways {} + ingest {} cores",
            cores(self.bench, process_cpu_time("self")),
            cores(
                self.ingest,
                ingest.and_then(|p| process_cpu_time(&p.to_string()))
            )
        )
    }
}

/// In process `pid`'s network namespace: established TCP connections on
/// local port `port`, and their distinct peer addresses.
fn established_peers(pid: u32, port: u16) -> Option<(usize, usize)> {
    let local_port = format!(":{port:04X}");
    let mut peers = BTreeSet::new();
    let mut n = 0;
    let mut any = false;
    for file in ["tcp", "tcp6"] {
        let Ok(text) = std::fs::read_to_string(format!("/proc/{pid}/net/{file}")) else {
            continue;
        };
        any = true;
        for line in text.lines().skip(1) {
            let f: Vec<&str> = line.split_whitespace().collect();
            if f.len() < 4 || f[3] != "01" || !f[1].ends_with(&local_port) {
                continue;
            }
            n += 1;
            if let Some((peer, _)) = f[2].split_once(':') {
                peers.insert(peer.to_owned());
            }
        }
    }
    any.then_some((n, peers.len()))
}

/// Lines of `docker logs <container>` containing `needle`.
async fn ingest_log_count(container: &str, needle: &str) -> usize {
    let Ok(out) = tokio::process::Command::new("docker")
        .args(["logs", container])
        .output()
        .await
    else {
        return 0;
    };
    [out.stdout, out.stderr]
        .iter()
        .map(|b| {
            String::from_utf8_lossy(b)
                .lines()
                .filter(|l| l.contains(needle))
                .count()
        })
        .sum()
}

fn read_acks(files: &[PathBuf]) -> Vec<Ack> {
    let mut acks = Vec::new();
    for file in files {
        let text = std::fs::read_to_string(file)
            .unwrap_or_else(|e| panic!("the acked file {}: {e}", file.display()));
        acks.extend(
            text.lines()
                .map(|l| Ack::parse(l).unwrap_or_else(|e| panic!("{}: {e}", file.display()))),
        );
    }
    acks
}

fn per_connection_kb(now: Option<u64>, idle: Option<u64>, connections: usize) -> String {
    match (now, idle) {
        (Some(n), Some(i)) if connections > 0 => {
            format!("{:.1}", (n as f64 - i as f64) / 1e3 / connections as f64)
        }
        _ => "–".to_owned(),
    }
}

fn interval_text(d: Duration) -> String {
    if d.as_millis().is_multiple_of(1000) {
        format!("{} s", d.as_secs())
    } else {
        format!("{} ms", d.as_millis())
    }
}

fn print_report(a: &Args, o: &Outcome) {
    println!(
        "\n## bench-fleet ({} – {}; load before {}, after {})\n",
        o.began, o.ended, o.load_before, o.load_after
    );
    for (n, d) in &o.commission {
        println!(
            "- {n} gateways commissioned in {:.1} s (CQL inserts into the tenant's gateways table, {COMMISSION_AT_ONCE} at once; one token)",
            d.as_secs_f64()
        );
    }
    println!(
        "- config: `[limits] memory_mb = {}`; the fleet connects to ingest's address on the tenant bridge from {} source addresses (F1/F2)",
        a.memory_mb, a.sources
    );
    if !o.memory.is_empty() {
        let idle = &o.memory[0];
        println!(
            "\n### F1: ingest's memory by logged-in connections (1 reading per {} each)\n",
            interval_text(a.intervals[0])
        );
        println!("| connections | established (distinct peers) in ingest | VmRSS MB | KB/connection (VmRSS) | cgroup usage − cache MB | KB/connection (cgroup) | step's logins s | refusals since start |");
        println!("|---:|---|---:|---:|---:|---:|---:|---|");
        for m in &o.memory {
            println!(
                "| {} | {} | {} | {} | {} | {} | {} | {} |",
                m.connections,
                m.established
                    .map_or("?".to_owned(), |(n, p)| format!("{n} ({p})")),
                mb(m.vm_rss),
                per_connection_kb(m.vm_rss, idle.vm_rss, m.connections),
                mb(m.cgroup),
                per_connection_kb(m.cgroup, idle.cgroup, m.connections),
                m.login.map_or("–".to_owned(), secs),
                m.refusals
            );
        }
        println!("\nKB/connection: (memory − memory with 0 connections) / connections, 1 KB = 1000 bytes; goal: ingest with 10,000 connections at most 64 MB.");
    }
    if !o.rates.is_empty() {
        println!("\n### F1: ack latency of one tenant's fleet against the floor\n");
        println!("| gateways | 1 reading per | rows/s | window s | readings in window acked (of due) | ingest ack p50 / p99 / max ms | floor p50 / p99 / max ms | goal p99 | met | logins s | unacked | failed logins | CPU in the window | VmRSS MB |");
        println!("|---:|---:|---:|---:|---:|---|---|---:|---|---:|---:|---:|---|---:|");
        for r in &o.rates {
            let goal = if r.interval >= Duration::from_secs(10) {
                20.0
            } else {
                50.0
            };
            // readings due in the window, about: a fleet's rate times it
            let due = (r.gateways as f64 * r.ingest.seconds / r.interval.as_secs_f64()).round();
            // a window of which too little was acked in time has no p99
            // (the count due is about: phases and jitter move a few out)
            let complete = r.ingest.readings as f64 >= 0.9 * due;
            let met = if complete && r.ingest.p99.as_secs_f64() * 1e3 <= goal {
                "yes"
            } else {
                "no"
            };
            let latency = if r.ingest.readings == 0 {
                "none acked within 5 s of the window's end".to_owned()
            } else {
                format!(
                    "{} / {} / {}{}",
                    ms(r.ingest.p50),
                    ms(r.ingest.p99),
                    ms(r.ingest.max),
                    if complete { "" } else { " (of those acked)" }
                )
            };
            println!(
                "| {} | {} | {:.0} | {:.0} | {} of ~{due:.0} | {latency} | {} / {} / {}{} | {goal:.0} ms | {met} | {} | {} | {} | {} | {} |",
                r.gateways,
                interval_text(r.interval),
                r.gateways as f64 / r.interval.as_secs_f64(),
                r.ingest.seconds,
                r.ingest.readings,
                ms(r.floor.p50),
                ms(r.floor.p99),
                ms(r.floor.max),
                if r.floor.unfinished > 0 {
                    format!(
                        " ({} of {} frames not written {} s after the run)",
                        r.floor.unfinished,
                        r.floor.unfinished + r.floor.frames,
                        provision_testkit::bench::FLOOR_GRACE.as_secs()
                    )
                } else {
                    String::new()
                },
                r.login.map_or("–".to_owned(), secs),
                r.unacked,
                if o.storm.is_some() && r.interval == a.intervals[0] {
                    format!("{} (with F2's storm)", r.failed_logins)
                } else {
                    r.failed_logins.to_string()
                },
                r.cpu,
                mb(r.memory.vm_rss),
            );
        }
        println!("\nAck latency: from when a reading was due to its ack, readings due in the window (opened once every gateway was logged in and had sent); the floor: the same rows (as many gateway partitions, the same rate, 1 reading × 1 value) written through the driver with ingest's statements grouped as ingest groups them, no TCP/XML, for the same seconds, with the fleet stopped.");
    }
    if let Some(s) = &o.storm {
        println!(
            "\n### F2: `docker restart` of ingest under {} gateways at 1 reading per {}\n",
            s.gateways,
            interval_text(a.intervals[0])
        );
        println!("| docker restart took s | all logged in again, from the restart s | from its return s | 50% / 90% / 99% in s | all acked again (acks after its return) s | goal | met | refusals by ingest after the restart | acked readings (whole run) | lost | unacked at the end | failed logins (whole run) |");
        println!("|---:|---:|---:|---|---:|---|---|---|---:|---:|---:|---:|");
        let q = s
            .quantiles
            .iter()
            .map(|(_, d)| d.map_or("–".to_owned(), secs))
            .collect::<Vec<_>>()
            .join(" / ");
        let met = s.all_in.is_some_and(|d| d <= Duration::from_secs(10)) && s.lost == Some(0);
        println!(
            "| {} | {} | {} | {q} | {} | all in ≤ 10 s, 0 lost | {} | {} | {} | {} | {} | {} |",
            secs(s.restart_call),
            s.all_in.map_or("never".to_owned(), secs),
            s.all_in_after_return.map_or("never".to_owned(), secs),
            s.all_acked.map_or("never".to_owned(), secs),
            if met { "yes" } else { "no" },
            s.refusals,
            s.acked,
            s.lost.map_or("?".to_owned(), |l| l.to_string()),
            s.unacked,
            s.failed_logins
        );
        if !s.breaks.is_empty() {
            println!("\nconnections ended or failed (whole run): {}", s.breaks);
        }
        if !s.lost_sample.is_empty() {
            println!("\nlost (first 5): {}", s.lost_sample.join("; "));
        }
        if s.ip_changed {
            println!("\nnote: ingest's address changed across the restart");
        }
        println!("\n`docker restart` = SIGTERM (ingest's graceful stop) then a start; times are from when the command was issued; a gateway counts as in once it got a welcome after that. Loss: every line of the acked files looked up in `readings` ({:.1} s). 'connection refused' lines in ingest's log after the restart: {}.", s.check_secs, s.ingest_log_refusals);
    }
    if !o.f3.is_empty() {
        println!(
            "\n### F3: {} tenants × {} gateways at 1 reading per {}, all at once\n",
            a.tenants,
            a.per_tenant,
            interval_text(a.f3_interval)
        );
        println!("| tenant | readings in window acked (of due) | ack p50 / p99 / max ms |");
        println!("|---|---:|---|");
        for (id, w, p) in &o.f3 {
            let due = (*p as f64 * w.seconds / a.f3_interval.as_secs_f64()).round();
            println!(
                "| {id} | {} of ~{due:.0} | {} / {} / {} |",
                w.readings,
                ms(w.p50),
                ms(w.p99),
                ms(w.max)
            );
        }
        let p99s: Vec<f64> = o.f3.iter().map(|(_, w, _)| w.p99.as_secs_f64()).collect();
        let best = p99s.iter().copied().fold(f64::INFINITY, f64::min);
        let worst = p99s.iter().copied().fold(0.0, f64::max);
        let ratio = worst / best.max(1e-9);
        println!(
            "\nworst p99 {:.1} ms / best p99 {:.1} ms = {ratio:.2} (goal ≤ 2: {}); all {} gateways logged in after {}; unacked {}, failed logins {}",
            worst * 1e3,
            best * 1e3,
            if ratio <= 2.0 { "met" } else { "not met" },
            a.tenants * a.per_tenant,
            o.f3_logins.map_or("never".to_owned(), secs),
            o.f3_unacked,
            o.f3_failed_logins
        );
    }
    for n in &o.notes {
        println!("\nnote: {n}");
    }
}
