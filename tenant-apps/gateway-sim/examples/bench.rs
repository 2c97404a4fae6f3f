//! Ingest throughput and ack latency against the floor, in one run.
//!
//! Against the harness's test Cassandra (started if needed), on a fresh
//! tenant keyspace:
//! - **floor**: N tasks ("gateways") write the same frames straight through
//!   the scylla driver, W frames in flight each, with ingest's prepared
//!   statements, grouped into requests the way ingest groups them (its
//!   `WriteQueue`, same `--in-flight`, `--batch-frames` and `--linger-ms`).
//!   No TCP, no XML:
//!   the ratio is what the gateway protocol costs. With `--floor per-frame`
//!   the floor sends one request per frame instead (an unlogged batch of its
//!   rows, `Store::write_frame`), at most `--write-concurrency` (64) at once:
//!   what an application that writes each reading as it comes would do.
//! - **ingest**: an in-process ingest server; gateway-sim drives N gateways
//!   over TCP with protocol v1, W unacked frames each. Its write queue
//!   groups waiting frames into requests (`--in-flight`, `--batch-frames`,
//!   `--linger-ms`, by default as the ingest container).
//!
//! Both run saturated (as fast as the window allows), then both at half of
//! ingest's saturated rate, for N = 1, 10 and 100; floor and ingest
//! alternate for `--rounds` rounds, taking turns going first, and each cell
//! is the median round. Finally the idle RSS of a real
//! `provision/ingest:dev` container. Prints a markdown table.
//!
//! Both reach Cassandra at its Docker network address when the host can
//! (as tenant containers do), not through docker-proxy's published port.
//! Half-rate runs list the 100 ms slices whose worst ack took over 20 ms,
//! with their UTC time, to line them up with Cassandra's log, and the p99
//! of ingest's own writes (frame decoded → durable, from its metrics): what
//! of the ack tail is the queue and Cassandra, and what is the rest. Every
//! round prints the CPU the bench process and the Cassandra node used, and
//! how many frames ingest's requests carried on average.
//!
//! Run with `scripts/bench-ingest` (`cargo run --release -p gateway-sim
//! --example bench -- [--seconds S] [--half-seconds S] [--warmup-seconds S]
//! [--rounds R] [--window W] [--gateways 1,10,100] [--fixed-rate F]
//! [--floor grouped|per-frame] [--write-concurrency C] [--in-flight N]
//! [--batch-frames N] [--linger-ms MS] [--commitlog MODES]`).
//!
//! With `--neighbours [--limit-a N] [--a-gateways N] [--b-gateways N]
//! [--b-rate F]` it measures one tenant's ack latency while another floods
//! instead ([`neighbours`]): B alone, with A flooding unlimited, and with A
//! flooding against its rate limit.
//!
//! With `--commitlog periodic,group:5ms,group:10ms,group:20ms` it compares
//! ways of syncing Cassandra's commit log instead: one private node per mode
//! (the test image, `CASSANDRA_COMMITLOG_SYNC` / `CASSANDRA_COMMITLOG_WINDOW`),
//! ingest's saturated throughput and its ack latency at one fixed rate on
//! each, the nodes taking turns round after round. No floor then: the first
//! mode is the baseline.

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use bollard::Docker;
use chrono::{TimeDelta, Utc};
use gateway_sim::sim::{self, make_frame, Report, SimConfig, Stop};
use gateway_sim::timeline::{Timeline, SLICE};
use ingest::metrics::Metrics;
use ingest::protocol::{parse_frame, DataFrame, Frame, TimeBounds};
use ingest::server::Limits;
use ingest::settings::Settings;
use ingest::store::Store;
use ingest::write_queue::{Grouping, WriteQueue};
use provision_testkit::apps::{commission_gateway_with, spawn_ingest};
use provision_testkit::containers::{
    container_cpu_time, container_rss_kib, ingest_image, process_cpu_time, wait_healthy,
    TestContainer,
};
use provision_testkit::{cassandra, docker, private_cassandra_with, Scope, TestTenant};
use tenant_schema::model::{new_gateway_token, GatewayId};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

#[path = "bench/neighbours.rs"]
mod neighbours;

/// Half-rate slices whose worst ack took longer than this are listed, with
/// their wall-clock time, to be lined up with Cassandra's log.
const STALL: Duration = Duration::from_millis(20);

struct Args {
    seconds: f64,
    half_seconds: f64,
    warmup_seconds: f64,
    rounds: usize,
    window: usize,
    gateways: Vec<usize>,
    /// How the floor sends its frames (`--floor grouped|per-frame`).
    floor: FloorWrites,
    /// The per-frame floor's bound on frames written at once.
    write_concurrency: usize,
    /// How ingest, and the grouped floor, group frames into requests
    /// (`--in-flight`, `--batch-frames`).
    grouping: Grouping,
    /// Frames/s in all for the half-rate runs, instead of half the measured
    /// saturation: compares configurations of the node at one rate.
    fixed_rate: Option<f64>,
    /// `--commitlog periodic,group:10ms,...`: compare ingest on one node
    /// per way of syncing the commit log instead of against the floor.
    commitlog: &'static [CommitlogMode],
    /// `--neighbours`: tenant B's latency while tenant A floods.
    neighbours: Option<neighbours::NeighbourArgs>,
}

impl Args {
    fn floor_label(&self) -> String {
        match self.floor {
            FloorWrites::Grouped => "grouped as ingest".to_owned(),
            FloorWrites::PerFrame => {
                format!("one request per frame, {} at once", self.write_concurrency)
            }
        }
    }

    /// How long one run lasts: `--seconds` for saturated runs (`rate` 0),
    /// `--half-seconds` for runs at a fixed rate. Both default to 20 s, long
    /// enough to hold several memtable flushes and GC cycles, which is what
    /// a sustained rate and a tail are made of.
    fn run_time(&self, rate: f64) -> Duration {
        Duration::from_secs_f64(if rate > 0.0 {
            self.half_seconds
        } else {
            self.seconds
        })
    }
}

fn args() -> Args {
    let mut a = Args {
        // long enough to hold memtable flushes: a 6 s burst outruns them
        // and overstates what the node sustains
        seconds: 20.0,
        half_seconds: 20.0,
        warmup_seconds: 90.0,
        rounds: 3,
        window: 32,
        gateways: vec![1, 10, 100],
        floor: FloorWrites::Grouped,
        write_concurrency: 64,
        grouping: Limits::from(&Settings::default()).writes,
        fixed_rate: None,
        commitlog: &[],
        neighbours: None,
    };
    let raw: Vec<String> = std::env::args().skip(1).collect();
    let (mut neighbours, mut neighbour_args) = (false, neighbours::NeighbourArgs::default());
    let mut i = 0;
    while i < raw.len() {
        let value = raw.get(i + 1).cloned().unwrap_or_default();
        let n = &mut neighbour_args;
        match raw[i].as_str() {
            "--neighbours" => {
                // a flag: no value
                neighbours = true;
                i += 1;
                continue;
            }
            "--limit-a" => n.limit_a = value.parse().expect("--limit-a N"),
            "--a-gateways" => n.a_gateways = value.parse().expect("--a-gateways N"),
            "--b-gateways" => n.b_gateways = value.parse().expect("--b-gateways N"),
            "--b-rate" => n.b_rate = value.parse().expect("--b-rate F"),
            "--seconds" => a.seconds = value.parse().expect("--seconds S"),
            "--half-seconds" => a.half_seconds = value.parse().expect("--half-seconds S"),
            "--warmup-seconds" => a.warmup_seconds = value.parse().expect("--warmup-seconds S"),
            "--window" => a.window = value.parse().expect("--window W"),
            "--rounds" => a.rounds = value.parse::<usize>().expect("--rounds R").max(1),
            "--floor" => {
                a.floor = match value.as_str() {
                    "grouped" => FloorWrites::Grouped,
                    "per-frame" => FloorWrites::PerFrame,
                    _ => panic!("--floor grouped|per-frame"),
                }
            }
            "--write-concurrency" => {
                a.write_concurrency = value.parse().expect("--write-concurrency C")
            }
            "--in-flight" => a.grouping.in_flight = value.parse().expect("--in-flight N"),
            "--batch-frames" => a.grouping.max_frames = value.parse().expect("--batch-frames N"),
            "--linger-ms" => {
                a.grouping.linger =
                    Duration::from_secs_f64(value.parse::<f64>().expect("--linger-ms MS") / 1000.0)
            }
            "--fixed-rate" => a.fixed_rate = Some(value.parse().expect("--fixed-rate F")),
            "--commitlog" => {
                let modes: Vec<CommitlogMode> = value
                    .split(',')
                    .map(|m| CommitlogMode::parse(m).unwrap_or_else(|e| panic!("--commitlog: {e}")))
                    .collect();
                a.commitlog = Vec::leak(modes);
            }
            "--gateways" => {
                a.gateways = value
                    .split(',')
                    .map(|n| n.parse().expect("--gateways 1,10,100"))
                    .collect()
            }
            other => panic!("unknown argument {other}"),
        }
        i += 2;
    }
    a.neighbours = neighbours.then_some(neighbour_args);
    a
}

/// How the floor sends its frames to Cassandra.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum FloorWrites {
    /// Through a `WriteQueue` grouped as ingest's.
    Grouped,
    /// One request per frame, `--write-concurrency` at once.
    PerFrame,
}

/// The floor's way to Cassandra for one run.
enum FloorWriter {
    Grouped(WriteQueue),
    PerFrame(Arc<Store>, Semaphore),
}

impl FloorWriter {
    fn new(store: Arc<Store>, a: &Args) -> Self {
        match a.floor {
            FloorWrites::Grouped => FloorWriter::Grouped(WriteQueue::start(
                store,
                Arc::new(Metrics::default()),
                a.grouping,
            )),
            FloorWrites::PerFrame => {
                FloorWriter::PerFrame(store, Semaphore::new(a.write_concurrency))
            }
        }
    }

    /// Writes one frame; true once it is durable.
    async fn write(&self, gateway: Arc<GatewayId>, frame: DataFrame, touch: bool) -> bool {
        match self {
            FloorWriter::Grouped(queue) => queue.write(gateway, frame, touch).await.is_ok(),
            FloorWriter::PerFrame(store, writing) => {
                let _writing = writing.acquire().await.expect("never closed");
                store.write_frame(&gateway, &frame, touch).await.is_ok()
            }
        }
    }
}

/// The run whose `key` is the median of `runs` (the upper one of an even count).
fn median_by(mut runs: Vec<Run>, key: impl Fn(&Run) -> f64) -> Run {
    runs.sort_by(|a, b| key(a).total_cmp(&key(b)));
    runs.swap_remove(runs.len() / 2)
}

/// What one side of a comparison measured.
struct Run {
    frames_per_sec: f64,
    p50: Duration,
    p99: Duration,
    max: Duration,
    errors: usize,
    timeline: Timeline,
    /// Ingest only: the bucket bound under which 99% of its writes (frame
    /// decoded → durable: the queue and Cassandra, without TCP or the wait
    /// for earlier acks) finished.
    writes_p99: Option<Duration>,
    /// Ingest only: frames per request to Cassandra during the run.
    frames_per_request: Option<f64>,
}

impl Run {
    fn frames_per_request_text(&self) -> String {
        self.frames_per_request
            .map_or("?".to_owned(), |f| format!("{f:.1}"))
    }
}

impl From<&Report> for Run {
    fn from(r: &Report) -> Self {
        Run {
            frames_per_sec: r.frames_per_sec(),
            p50: r.latency(0.5),
            p99: r.latency(0.99),
            max: r.max_latency(),
            errors: r.errors.len(),
            timeline: r.timeline.clone(),
            writes_p99: None,
            frames_per_request: None,
        }
    }
}

fn sim_config(addr: &str, n: usize, token: &str, rate: f64, a: &Args) -> SimConfig {
    SimConfig {
        connector: Default::default(),
        addr: addr.to_owned(),
        gateways: (0..n)
            .map(|i| (format!("gw-{i}"), token.to_owned()))
            .collect(),
        rate,
        stop: Stop::After(a.run_time(rate)),
        readings_per_frame: 1,
        values_per_reading: 2,
        window: a.window,
        drain_timeout: Duration::from_secs(30),
    }
}

/// The floor: the same frames written straight through the driver, with
/// N "gateways" of W frames in flight each (rate 0 = saturated).
async fn floor(store: Arc<Store>, n: usize, rate: f64, a: &Args) -> Run {
    let cfg = sim_config("", 1, "", rate, a);
    let writer = Arc::new(FloorWriter::new(store, a));
    let duration = a.run_time(rate);
    let start = Instant::now() + Duration::from_millis(50);
    let started = SystemTime::now() + Duration::from_millis(50);
    let mut tasks = Vec::new();
    for g in 0..n {
        let writer = writer.clone();
        let cfg = cfg.clone();
        let window = a.window;
        let offset = if rate > 0.0 {
            Duration::from_secs_f64(g as f64 / n as f64 / rate)
        } else {
            Duration::ZERO
        };
        tasks.push(tokio::spawn(async move {
            let gw = Arc::new(GatewayId::parse(&format!("floor-{g}")).unwrap());
            let slots = Arc::new(Semaphore::new(window));
            let mut writes = tokio::task::JoinSet::new();
            let mut latencies = Vec::new();
            let mut timeline = Timeline::new(started, SLICE);
            let mut errors = 0usize;
            let mut last_touch: Option<Instant> = None;
            let begin = start + offset;
            tokio::time::sleep_until(begin.into()).await;
            let mut seq = 0i64;
            let base = Utc::now();
            while begin.elapsed() < duration {
                let due = if rate > 0.0 {
                    let due = begin + Duration::from_secs_f64(seq as f64 / rate);
                    tokio::time::sleep_until(due.into()).await;
                    due
                } else {
                    Instant::now()
                };
                let permit = slots.clone().acquire_owned().await.unwrap();
                let due = if rate > 0.0 { due } else { Instant::now() };
                // the same frame gateway-sim sends, decoded outside the clock
                let ts = base + TimeDelta::milliseconds(seq);
                let xml = make_frame(&cfg, seq, ts);
                // checked as of the frame's own time: the floor may run ahead
                let window = TimeBounds::default().window(ts);
                let Ok(Frame::Data(frame)) = parse_frame(xml.as_bytes(), &window) else {
                    panic!("gateway-sim frame does not decode")
                };
                let touch = last_touch.is_none_or(|t| t.elapsed() >= Duration::from_secs(1));
                if touch {
                    last_touch = Some(Instant::now());
                }
                let writer = writer.clone();
                let gw = gw.clone();
                writes.spawn(async move {
                    let _permit = permit;
                    let ok = writer.write(gw, frame, touch).await;
                    (ok, due, due.elapsed(), Instant::now())
                });
                while let Some(Ok(done)) = writes.try_join_next() {
                    record(done, start, &mut latencies, &mut timeline, &mut errors);
                }
                seq += 1;
            }
            let mut last = Instant::now();
            while let Some(Ok(done)) = writes.join_next().await {
                last = done.3;
                record(done, start, &mut latencies, &mut timeline, &mut errors);
            }
            (latencies, timeline, errors, last)
        }));
    }
    let mut all = Vec::new();
    let mut merged = Timeline::new(started, SLICE);
    let mut errors = 0;
    let mut last = start;
    for t in tasks {
        let (lat, timeline, e, l) = t.await.unwrap();
        all.extend(lat);
        merged.merge(&timeline);
        errors += e;
        last = last.max(l);
    }
    all.sort_unstable();
    let report = Report {
        gateways: n,
        acked: all.len() as u64,
        elapsed: last.saturating_duration_since(start),
        latencies_us: all,
        values_per_frame: 2,
        timeline: merged,
        ..Report::default()
    };
    let mut run = Run::from(&report);
    run.errors = errors;
    run
}

/// Saturates the node through the floor in 5 s steps with the most gateways
/// of the run for at least `--warmup-seconds`, then until two steps in a row
/// agree within 10%, for three times that at most. A freshly started node's
/// JIT takes minutes under load to reach its rate (seen here: 1,900 frames/s
/// in the first step, 3,800 a minute later, 7,000 to 10,000 once warm), and
/// two cold steps can agree.
async fn warm_up(store: &Arc<Store>, a: &Args) {
    let step = Args {
        seconds: 5.0,
        gateways: vec![],
        ..*a
    };
    let n = a.gateways.iter().copied().max().unwrap_or(10);
    let began = Instant::now();
    let mut previous = 0.0f64;
    while began.elapsed().as_secs_f64() < 3.0 * a.warmup_seconds {
        let rate = floor(store.clone(), n, 0.0, &step).await.frames_per_sec;
        eprintln!("  warm-up: {rate:.0} frames/s");
        let steady = previous > 0.0 && (rate - previous).abs() <= 0.1 * previous;
        if steady && began.elapsed().as_secs_f64() >= a.warmup_seconds {
            break;
        }
        previous = rate;
    }
}

/// Ingest: gateway-sim drives N gateways over TCP (rate 0 = saturated).
/// `metrics` are the in-process server's, for the latency of its writes.
async fn ingest(addr: &str, n: usize, token: &str, rate: f64, a: &Args, metrics: &Metrics) -> Run {
    let before = metrics.write_latency_counts();
    let counter = |c: &AtomicU64| c.load(Ordering::Relaxed);
    let (frames_before, requests_before) =
        (counter(&metrics.frames), counter(&metrics.write_requests));
    let report = sim::run(sim_config(addr, n, token, rate, a)).await;
    if let Some(e) = report.errors.first() {
        eprintln!("ingest errors at {n} gateways: {e}");
    }
    let mut run = Run::from(&report);
    let requests = counter(&metrics.write_requests) - requests_before;
    run.frames_per_request =
        (requests > 0).then(|| (counter(&metrics.frames) - frames_before) as f64 / requests as f64);
    let during: Vec<(Duration, u64)> = metrics
        .write_latency_counts()
        .into_iter()
        .zip(before)
        .map(|((bound, after), (_, before))| (bound, after - before))
        .collect();
    let total: u64 = during.iter().map(|(_, c)| c).sum();
    let mut seen = 0;
    run.writes_p99 = during.into_iter().find_map(|(bound, c)| {
        seen += c;
        (total > 0 && seen * 100 >= total * 99).then_some(bound)
    });
    run
}

/// One run, and the CPU the bench process and the Cassandra node used
/// during it.
async fn measured(
    engine: &Docker,
    container: &str,
    run: impl Future<Output = Run>,
) -> (Run, String) {
    let cpu = CpuMeter::start(engine, container).await;
    let run = run.await;
    (run, cpu.finish().await)
}

/// What both sides of the comparison run against.
struct Sides<'a> {
    engine: &'a Docker,
    cassandra_container: &'a str,
    store: &'a Arc<Store>,
    ingest_addr: &'a str,
    token: &'a str,
    ingest_metrics: &'a Metrics,
    args: &'a Args,
}

impl Sides<'_> {
    /// One round at `rate` per gateway (0 = saturated): the floor's run and
    /// ingest's, each with the CPU it used, one after the other; the floor
    /// goes first in odd rounds and ingest in even ones.
    async fn round(&self, round: usize, n: usize, rate: f64) -> [(Run, String); 2] {
        let floor = || {
            let run = floor(self.store.clone(), n, rate, self.args);
            measured(self.engine, self.cassandra_container, run)
        };
        let ingest = || {
            let run = ingest(
                self.ingest_addr,
                n,
                self.token,
                rate,
                self.args,
                self.ingest_metrics,
            );
            measured(self.engine, self.cassandra_container, run)
        };
        if round % 2 == 1 {
            let f = floor().await;
            [f, ingest().await]
        } else {
            let i = ingest().await;
            [floor().await, i]
        }
    }
}

/// What one floor write ended with: ok, when it was due, its latency, when it ended.
type Done = (bool, Instant, Duration, Instant);

fn record(
    done: Done,
    start: Instant,
    latencies: &mut Vec<u64>,
    timeline: &mut Timeline,
    errors: &mut usize,
) {
    let (ok, due, latency, _) = done;
    if ok {
        let latency_us = latency.as_micros() as u64;
        latencies.push(latency_us);
        timeline.record(due.saturating_duration_since(start), latency_us);
    } else {
        *errors += 1;
    }
}

/// CPU used by this process (client, ingest and floor alike) and by the
/// Cassandra node during one run, in cores (2.0 = both cores of this machine).
struct CpuMeter<'a> {
    engine: &'a Docker,
    container: &'a str,
    began: Instant,
    bench: Option<Duration>,
    cassandra: Option<Duration>,
}

impl<'a> CpuMeter<'a> {
    async fn start(engine: &'a Docker, container: &'a str) -> Self {
        Self {
            engine,
            container,
            began: Instant::now(),
            bench: process_cpu_time("self"),
            cassandra: container_cpu_time(engine, container).await,
        }
    }

    /// `bench x.xx + cassandra y.yy cores`
    async fn finish(self) -> String {
        let wall = self.began.elapsed().as_secs_f64();
        let cores = |before: Option<Duration>, after: Option<Duration>| match (before, after) {
            (Some(b), Some(a)) => format!("{:.2}", (a - b).as_secs_f64() / wall),
            _ => "?".to_owned(),
        };
        let cassandra = container_cpu_time(self.engine, self.container).await;
        format!(
            "bench {} + cassandra {} cores",
            cores(self.bench, process_cpu_time("self")),
            cores(self.cassandra, cassandra)
        )
    }
}

fn ms(d: Duration) -> String {
    format!("{:.1}", d.as_secs_f64() * 1e3)
}

/// RSS of the ingest process in a real container, idle, in KiB.
async fn idle_rss_kib(node: &provision_testkit::CassandraNode, tenant: &TestTenant) -> Option<u64> {
    let docker = docker().await;
    let scope = Scope::new("benchrss");
    let name = TestContainer::scoped(&scope, "ingest", &ingest_image())
        .env(tenant.app_env(node))
        .on_test_network()
        .start(&docker)
        .await
        .ok()?;
    let rss = match wait_healthy(&docker, &name, Duration::from_secs(120)).await {
        Ok(()) => {
            // settle, then read the process's resident set from /proc
            tokio::time::sleep(Duration::from_secs(5)).await;
            container_rss_kib(&docker, &name).await
        }
        Err(_) => None,
    };
    scope.cleanup().await;
    rss
}

/// How one node of the commit-log comparison syncs its commit log before
/// it answers a write: `periodic[:PERIOD]`, `group[:WINDOW]` or `batch`,
/// given to the image as `CASSANDRA_COMMITLOG_SYNC` and
/// `CASSANDRA_COMMITLOG_WINDOW` (see images/cassandra/entrypoint.sh).
#[derive(Debug, Clone)]
struct CommitlogMode {
    sync: String,
    window: Option<String>,
}

impl CommitlogMode {
    fn parse(raw: &str) -> Result<CommitlogMode, String> {
        let (sync, window) = match raw.split_once(':') {
            Some((sync, window)) => (sync, Some(window.to_owned())),
            None => (raw, None),
        };
        if !["periodic", "group", "batch"].contains(&sync) {
            return Err(format!("{raw}: the sync is periodic, group or batch"));
        }
        if let Some(w) = &window {
            let digits = w.trim_end_matches("ms");
            if !w.ends_with("ms")
                || digits.is_empty()
                || !digits.bytes().all(|b| b.is_ascii_digit())
            {
                return Err(format!("{raw}: the window is milliseconds, such as 10ms"));
            }
        }
        Ok(CommitlogMode {
            sync: sync.to_owned(),
            window,
        })
    }

    fn label(&self) -> String {
        match (&self.sync[..], &self.window) {
            ("periodic", None) => "periodic 10000ms".to_owned(),
            ("group", None) => "group 5ms".to_owned(),
            (sync, Some(w)) => format!("{sync} {w}"),
            (sync, None) => sync.to_owned(),
        }
    }

    fn env(&self) -> Vec<String> {
        let mut env = vec![format!("CASSANDRA_COMMITLOG_SYNC={}", self.sync)];
        env.extend(
            self.window
                .iter()
                .map(|w| format!("CASSANDRA_COMMITLOG_WINDOW={w}")),
        );
        env
    }
}

/// One node of the commit-log comparison, with its tenant and its
/// in-process ingest.
struct CommitlogSide {
    mode: CommitlogMode,
    container: String,
    addr: String,
    metrics: Arc<Metrics>,
}

/// `--commitlog`: one private node per mode (same image and heap), a
/// tenant and an in-process ingest on each; for each gateway count, rounds
/// run every node in turn (each round starting one node later), saturated
/// and then all at one fixed rate (`--fixed-rate`, or half the slowest
/// node's saturated rate); each cell is the median round.
async fn commitlog_comparison(a: &Args) {
    let engine = docker().await;
    let scope = Scope::new("benchlog");
    let token = new_gateway_token();
    let max_n = a.gateways.iter().copied().max().unwrap_or(1);
    let shutdown = CancellationToken::new();
    let mut sides = Vec::new();
    for (i, mode) in a.commitlog.iter().enumerate() {
        eprintln!(
            "bench: starting a node with commitlog_sync {}",
            mode.label()
        );
        let started = Instant::now();
        let shared = private_cassandra_with(
            &engine,
            &scope,
            &format!("cassandra-{i}"),
            "2G",
            &mode.env(),
        )
        .await;
        let node = shared.direct().await.unwrap_or(shared);
        eprintln!(
            "bench: {} answered CQL at {} after {:.0} s",
            node.container,
            node.host_addr,
            started.elapsed().as_secs_f64()
        );
        let tenant = TestTenant::create(&node, "bench").await;
        let admin = node.admin_session().await;
        for g in 0..max_n {
            commission_gateway_with(&admin, &tenant.keyspace, &format!("gw-{g}"), &token).await;
        }
        let session = Arc::new(tenant.session(&node).await);
        let store = Arc::new(Store::prepare(session, &tenant.keyspace).await.unwrap());
        let limits = Limits {
            max_unauthenticated_per_address: 1000,
            writes: a.grouping,
            ..Limits::from(&Settings::default())
        };
        let metrics = Arc::new(Metrics::default());
        let (addr, _server) = spawn_ingest(&store, &metrics, limits, &shutdown).await;
        warm_up(&store, a).await;
        sides.push(CommitlogSide {
            mode: mode.clone(),
            container: node.container.clone(),
            addr,
            metrics,
        });
    }
    // every node runs in every round, each round starting one node later
    let rounds = |n: usize, rate: f64| {
        let sides = &sides;
        let engine = &engine;
        let token = &token;
        async move {
            let mut runs: Vec<Vec<Run>> = sides.iter().map(|_| Vec::new()).collect();
            for round in 0..a.rounds {
                for k in 0..sides.len() {
                    let j = (k + round) % sides.len();
                    let side = &sides[j];
                    let run = ingest(&side.addr, n, token, rate, a, &side.metrics);
                    let (run, cpu) = measured(engine, &side.container, run).await;
                    eprintln!(
                        "  {n} gateways {}, round {}, {}: {:.0} f/s, ack p50 / p99 / max {} / {} / {} ms ({cpu})",
                        if rate > 0.0 { "at a fixed rate" } else { "saturated" },
                        round + 1,
                        side.mode.label(),
                        run.frames_per_sec,
                        ms(run.p50),
                        ms(run.p99),
                        ms(run.max),
                    );
                    runs[j].push(run);
                }
            }
            runs
        }
    };
    let mut rows = Vec::new();
    for &n in &a.gateways {
        let saturated: Vec<Run> = rounds(n, 0.0)
            .await
            .into_iter()
            .map(|runs| median_by(runs, |r| r.frames_per_sec))
            .collect();
        let slowest = saturated
            .iter()
            .map(|r| r.frames_per_sec)
            .fold(f64::INFINITY, f64::min);
        let total_rate = a.fixed_rate.unwrap_or(slowest / 2.0);
        let fixed: Vec<Run> = rounds(n, total_rate / n as f64)
            .await
            .into_iter()
            .map(|runs| median_by(runs, |r| r.p99.as_secs_f64()))
            .collect();
        rows.push((n, saturated, total_rate, fixed));
    }
    shutdown.cancel();
    scope.cleanup().await;

    println!("| commit log sync | gateways | saturated frames/s | vs {} | saturated ack p50 / p99 ms | fixed rate frames/s | ack p50 / p99 / max ms at that rate | ingest writes p99 ms | errors |", sides[0].mode.label());
    println!("|---|---:|---:|---:|---|---:|---|---:|---:|");
    for (n, saturated, rate, fixed) in &rows {
        for (j, side) in sides.iter().enumerate() {
            let (s, f) = (&saturated[j], &fixed[j]);
            println!(
                "| {} | {n} | {:.0} | {:.2} | {} / {} | {:.0} | {} / {} / {} | {} | {} |",
                side.mode.label(),
                s.frames_per_sec,
                s.frames_per_sec / saturated[0].frames_per_sec.max(1e-9),
                ms(s.p50),
                ms(s.p99),
                rate,
                ms(f.p50),
                ms(f.p99),
                ms(f.max),
                f.writes_p99.map_or("?".to_owned(), ms),
                s.errors + f.errors,
            );
        }
    }
    println!();
    println!("frames are 1 reading x 2 values; one private node per row (heap 2G, the same image), each with its tenant and an in-process ingest ({} requests at once of up to {} frames); window {} unacked frames per gateway; {} s per saturated run, {} s per fixed-rate run, after a warm-up of at least {} s per node; median of {} rounds per cell, the nodes taking turns within each round", a.grouping.in_flight, a.grouping.max_frames, a.window, a.seconds, a.half_seconds, a.warmup_seconds, a.rounds);
}

#[tokio::main]
async fn main() {
    let a = args();
    if let Some(n) = &a.neighbours {
        neighbours::run(&a, n).await;
        return;
    }
    if !a.commitlog.is_empty() {
        commitlog_comparison(&a).await;
        return;
    }
    let engine = docker().await;
    let shared = cassandra().await;
    // like a tenant container, not through docker-proxy when the host can
    let direct = shared.direct().await;
    eprintln!(
        "bench: Cassandra at {}",
        direct.as_ref().map_or(shared.host_addr, |d| d.host_addr)
    );
    let node = direct.as_ref().unwrap_or(shared);
    let tenant = TestTenant::create(node, "bench").await;
    let admin = node.admin_session().await;
    let token = new_gateway_token();
    let max_n = a.gateways.iter().copied().max().unwrap_or(1);
    for i in 0..max_n {
        commission_gateway_with(&admin, &tenant.keyspace, &format!("gw-{i}"), &token).await;
    }
    let session = Arc::new(tenant.session(node).await);
    let store = Arc::new(Store::prepare(session, &tenant.keyspace).await.unwrap());
    let shutdown = CancellationToken::new();
    let limits = Limits {
        // every simulated gateway connects from 127.0.0.1 at once
        max_unauthenticated_per_address: 1000,
        writes: a.grouping,
        ..Limits::from(&ingest::settings::Settings::default())
    };
    let ingest_metrics = Arc::new(Metrics::default());
    let (addr, _server) = spawn_ingest(&store, &ingest_metrics, limits, &shutdown).await;

    eprintln!(
        "bench: {} s per saturated run, {} s per half-rate run, window {} frames per gateway, floor {}, ingest {} requests of up to {} frames, 1 reading x 2 values per frame",
        a.seconds, a.half_seconds, a.window, a.floor_label(), a.grouping.in_flight, a.grouping.max_frames
    );
    warm_up(&store, &a).await;

    let sides = Sides {
        engine: &engine,
        cassandra_container: &node.container,
        store: &store,
        ingest_addr: &addr,
        token: &token,
        ingest_metrics: &ingest_metrics,
        args: &a,
    };
    let mut rows = Vec::new();
    for &n in &a.gateways {
        // Floor and ingest alternate, round after round, and take turns
        // going first (floor first in odd rounds), so drifts of the machine
        // (compaction, GC, other load), and the flushes and compactions one
        // side's writes leave to the next run, hit both alike; each side
        // reports its median round.
        let mut floor_sats = Vec::new();
        let mut ingest_sats = Vec::new();
        for round in 1..=a.rounds {
            let [(f, floor_cpu), (i, ingest_cpu)] = sides.round(round, n, 0.0).await;
            eprintln!(
                "  {n} gateways saturated, round {round}: floor {:.0} f/s ({floor_cpu}), ingest {:.0} f/s ({ingest_cpu}; {} frames per request)",
                f.frames_per_sec,
                i.frames_per_sec,
                i.frames_per_request_text()
            );
            floor_sats.push(f);
            ingest_sats.push(i);
        }
        let floor_sat = median_by(floor_sats, |r| r.frames_per_sec);
        let ingest_sat = median_by(ingest_sats, |r| r.frames_per_sec);
        let half_rate = a.fixed_rate.unwrap_or(ingest_sat.frames_per_sec / 2.0) / n as f64;
        let mut floor_halves = Vec::new();
        let mut ingest_halves = Vec::new();
        for round in 1..=a.rounds {
            let [(f, floor_cpu), (i, ingest_cpu)] = sides.round(round, n, half_rate).await;
            eprintln!(
                "  {n} gateways at half rate, round {round}: p50 / p99 / max ms floor {} / {} / {} ({floor_cpu}), ingest {} / {} / {} ({ingest_cpu}; its writes p99 <= {} ms, {} frames per request)",
                ms(f.p50),
                ms(f.p99),
                ms(f.max),
                ms(i.p50),
                ms(i.p99),
                ms(i.max),
                i.writes_p99.map_or("?".to_owned(), ms),
                i.frames_per_request_text()
            );
            for (side, run) in [("floor", &f), ("ingest", &i)] {
                let stalls = run.timeline.stalls(STALL);
                if !stalls.is_empty() {
                    let list: Vec<String> = stalls.iter().map(|s| s.render()).collect();
                    eprintln!(
                        "    {side} acks over {} ms (UTC): {}",
                        STALL.as_millis(),
                        list.join(", ")
                    );
                }
            }
            floor_halves.push(f);
            ingest_halves.push(i);
        }
        let floor_half = median_by(floor_halves, |r| r.p99.as_secs_f64());
        let ingest_half = median_by(ingest_halves, |r| r.p99.as_secs_f64());
        eprintln!(
            "  {n} gateways: floor {:.0} f/s, ingest {:.0} f/s; at {:.0} f/s p99 floor {} ms, ingest {} ms",
            floor_sat.frames_per_sec,
            ingest_sat.frames_per_sec,
            half_rate * n as f64,
            ms(floor_half.p99),
            ms(ingest_half.p99)
        );
        rows.push((
            n,
            floor_sat,
            ingest_sat,
            half_rate * n as f64,
            floor_half,
            ingest_half,
        ));
    }
    shutdown.cancel();

    println!("| gateways | floor frames/s | ingest frames/s | ingest / floor | saturated ack p50 / p99 / max ms (floor; ingest) | half rate frames/s | half-rate p99 ms floor | half-rate p99 ms ingest | errors |");
    println!("|---:|---:|---:|---:|---|---:|---:|---:|---:|");
    for (n, fs, is, half, fh, ih) in &rows {
        println!(
            "| {n} | {:.0} | {:.0} | {:.2} | {} / {} / {} ; {} / {} / {} | {:.0} | {} | {} | {} |",
            fs.frames_per_sec,
            is.frames_per_sec,
            is.frames_per_sec / fs.frames_per_sec.max(1e-9),
            ms(fs.p50),
            ms(fs.p99),
            ms(fs.max),
            ms(is.p50),
            ms(is.p99),
            ms(is.max),
            half,
            ms(fh.p99),
            ms(ih.p99),
            fs.errors + is.errors + fh.errors + ih.errors,
        );
    }
    println!();
    println!("frames are 1 reading x 2 values (2 rows of readings + 2 of latest); window {} unacked frames per gateway; ingest sends {} requests at once of up to {} frames, lingering up to {} ms while others are in flight; floor {}; {} s per saturated run, {} s per half-rate run, after a warm-up of at least {} s; median of {} alternating rounds per cell", a.window, a.grouping.in_flight, a.grouping.max_frames, a.grouping.linger.as_millis(), a.floor_label(), a.seconds, a.half_seconds, a.warmup_seconds, a.rounds);
    match idle_rss_kib(node, &tenant).await {
        Some(kib) => println!(
            "\nidle RSS of the ingest container: {:.1} MiB",
            kib as f64 / 1024.0
        ),
        None => println!("\nidle RSS of the ingest container: not measured (no healthy container)"),
    }
    tenant.drop(node).await;
}
