//! `--neighbours`: one tenant's ack latency while another floods.
//!
//! Two tenant keyspaces on the one test Cassandra node, and in-process
//! ingest servers as their containers would run them: B's, and two of A's
//! (on A's keyspace: one unlimited, one limited to `--limit-a` readings/s,
//! as `provision start --max-readings-per-sec` sets it). B streams
//! `--b-gateways` gateways × `--b-rate` frames/s (one reading each: 200
//! readings/s by default) and its p50 / p99 / max ack latency is measured
//! in three phases of `--seconds` each: B alone, B while A floods unlimited
//! (`--a-gateways` gateways, as fast as their windows allow), and B while A
//! floods against its limit. The phases rotate round after round
//! (`--rounds`), so drifts of the machine hit each alike; each cell is the
//! median round by B's p99. A's achieved rate is printed per phase.

use std::sync::Arc;
use std::time::Duration;

use gateway_sim::sim::{self, SimConfig, Stop};
use ingest::metrics::Metrics;
use ingest::server::Limits;
use ingest::store::Store;
use provision_testkit::apps::{commission_gateway_with, spawn_ingest};
use provision_testkit::{cassandra, CassandraNode, TestTenant};
use tenant_schema::model::new_gateway_token;
use tokio_util::sync::CancellationToken;

use super::{median_by, ms, warm_up, Args, Run};

/// What `--neighbours` takes on top of the common flags.
#[derive(Debug, Clone, Copy)]
pub struct NeighbourArgs {
    /// A's limit in the limited phase, readings/s (`--limit-a`).
    pub limit_a: u32,
    /// A's flooding gateways (`--a-gateways`).
    pub a_gateways: usize,
    /// B's gateways (`--b-gateways`) and frames/s of each (`--b-rate`).
    pub b_gateways: usize,
    pub b_rate: f64,
}

impl Default for NeighbourArgs {
    fn default() -> Self {
        Self {
            limit_a: 1000,
            a_gateways: 10,
            b_gateways: 10,
            b_rate: 20.0,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Alone,
    Unlimited,
    Limited,
}

impl Phase {
    const ALL: [Phase; 3] = [Phase::Alone, Phase::Unlimited, Phase::Limited];

    fn label(self, n: &NeighbourArgs) -> String {
        match self {
            Phase::Alone => "B alone".to_owned(),
            Phase::Unlimited => "B while A floods, A unlimited".to_owned(),
            Phase::Limited => format!("B while A floods, A limited to {}/s", n.limit_a),
        }
    }
}

/// One tenant: its keyspace and its gateways (all with one token).
struct Tenant {
    tenant: TestTenant,
    store: Arc<Store>,
    token: String,
    gateways: Vec<String>,
}

impl Tenant {
    async fn create(node: &CassandraNode, prefix: &str, gateways: usize) -> Tenant {
        let tenant = TestTenant::create(node, prefix).await;
        let admin = node.admin_session().await;
        let token = new_gateway_token();
        let ids: Vec<String> = (0..gateways).map(|i| format!("{prefix}-{i}")).collect();
        for id in &ids {
            commission_gateway_with(&admin, &tenant.keyspace, id, &token).await;
        }
        let session = Arc::new(tenant.session(node).await);
        let store = Arc::new(Store::prepare(session, &tenant.keyspace).await.unwrap());
        Tenant {
            tenant,
            store,
            token,
            gateways: ids,
        }
    }

    /// An ingest server of this tenant with `limit` readings/s (0: none).
    async fn ingest(&self, a: &Args, limit: u32, shutdown: &CancellationToken) -> String {
        let limits = Limits {
            max_unauthenticated_per_address: 1000,
            max_readings_per_sec: limit,
            writes: a.grouping,
            ..Limits::from(&ingest::settings::Settings::default())
        };
        let metrics = Arc::new(Metrics::default());
        spawn_ingest(&self.store, &metrics, limits, shutdown)
            .await
            .0
    }

    fn sim(&self, addr: &str, rate: f64, run: Duration, window: usize) -> SimConfig {
        SimConfig {
            connector: Default::default(),
            addr: addr.to_owned(),
            gateways: self
                .gateways
                .iter()
                .map(|g| (g.clone(), self.token.clone()))
                .collect(),
            rate,
            stop: Stop::After(run),
            readings_per_frame: 1,
            values_per_reading: 2,
            window,
            drain_timeout: Duration::from_secs(30),
        }
    }
}

/// B's run of one phase, and A's readings/s meanwhile (none alone).
type PhaseRun = (Run, Option<f64>);

/// One phase: B's run, and A's readings/s meanwhile (none alone).
async fn phase(
    a: &Args,
    n: &NeighbourArgs,
    b: (&Tenant, &str),
    flood: Option<(&Tenant, &str)>,
) -> PhaseRun {
    let run = Duration::from_secs_f64(a.seconds);
    // A starts first and floods a second past B's end, so B's whole run
    // is under the flood.
    let a_run = flood.map(|(tenant, addr)| {
        let cfg = tenant.sim(addr, 0.0, run + Duration::from_secs(2), a.window);
        tokio::spawn(sim::run(cfg))
    });
    if a_run.is_some() {
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    let report = sim::run(b.0.sim(b.1, n.b_rate, run, a.window)).await;
    if let Some(e) = report.errors.first() {
        eprintln!("  B errors: {e}");
    }
    let a_rate = match a_run {
        Some(task) => {
            let r = task.await.expect("A's flood ran");
            if let Some(e) = r.errors.first() {
                eprintln!("  A errors: {e}");
            }
            Some(r.frames_per_sec())
        }
        None => None,
    };
    (Run::from(&report), a_rate)
}

pub async fn run(a: &Args, n: &NeighbourArgs) {
    let shared = cassandra().await;
    let direct = shared.direct().await;
    let node = direct.as_ref().unwrap_or(shared);
    eprintln!("neighbours: Cassandra at {}", node.host_addr);
    let tenant_a = Tenant::create(node, "nba", n.a_gateways).await;
    let tenant_b = Tenant::create(node, "nbb", n.b_gateways).await;
    let shutdown = CancellationToken::new();
    let b_addr = tenant_b.ingest(a, 0, &shutdown).await;
    let a_unlimited = tenant_a.ingest(a, 0, &shutdown).await;
    let a_limited = tenant_a.ingest(a, n.limit_a, &shutdown).await;
    eprintln!(
        "neighbours: B {} gateways x {} frames/s, A {} gateways flooding (window {}), {} s per phase, {} rounds",
        n.b_gateways, n.b_rate, n.a_gateways, a.window, a.seconds, a.rounds
    );
    warm_up(&tenant_a.store, a).await;

    let mut results: Vec<(Phase, Vec<PhaseRun>)> =
        Phase::ALL.iter().map(|p| (*p, Vec::new())).collect();
    for round in 0..a.rounds {
        for k in 0..Phase::ALL.len() {
            let p = Phase::ALL[(round + k) % Phase::ALL.len()];
            let flood = match p {
                Phase::Alone => None,
                Phase::Unlimited => Some((&tenant_a, a_unlimited.as_str())),
                Phase::Limited => Some((&tenant_a, a_limited.as_str())),
            };
            let (b_run, a_rate) = phase(a, n, (&tenant_b, &b_addr), flood).await;
            eprintln!(
                "  round {}, {}: B p50 / p99 / max {} / {} / {} ms, {:.0} frames/s; A {}",
                round + 1,
                p.label(n),
                ms(b_run.p50),
                ms(b_run.p99),
                ms(b_run.max),
                b_run.frames_per_sec,
                a_rate.map_or("idle".to_owned(), |r| format!("{r:.0} readings/s"))
            );
            let slot = results
                .iter_mut()
                .find(|(q, _)| *q == p)
                .expect("every phase");
            slot.1.push((b_run, a_rate));
        }
    }
    shutdown.cancel();

    println!("| phase | B ack p50 ms | B ack p99 ms | B ack max ms | B p99 per round ms | B frames/s | A readings/s (per round) | errors |");
    println!("|---|---:|---:|---:|---|---:|---|---:|");
    for (p, runs) in results {
        let p99s: Vec<String> = runs.iter().map(|(r, _)| ms(r.p99)).collect();
        let a_rates: Vec<String> = runs
            .iter()
            .map(|(_, a)| a.map_or("-".to_owned(), |r| format!("{r:.0}")))
            .collect();
        let errors: usize = runs.iter().map(|(r, _)| r.errors).sum();
        let median = median_by(runs.into_iter().map(|(r, _)| r).collect(), |r| {
            r.p99.as_secs_f64()
        });
        println!(
            "| {} | {} | {} | {} | {} | {:.0} | {} | {errors} |",
            p.label(n),
            ms(median.p50),
            ms(median.p99),
            ms(median.max),
            p99s.join(", "),
            median.frames_per_sec,
            a_rates.join(", "),
        );
    }
    println!();
    println!(
        "B: {} gateways x {} frames/s of 1 reading x 2 values ({:.0} readings/s); A: {} gateways flooding, window {} unacked frames each; two tenant keyspaces on one Cassandra node, an in-process ingest per tenant (A's limited one at {} readings/s); {} s per phase, phases rotating over {} rounds, each cell the median round by B's p99",
        n.b_gateways,
        n.b_rate,
        n.b_gateways as f64 * n.b_rate,
        n.a_gateways,
        a.window,
        n.limit_a,
        a.seconds,
        a.rounds
    );
    tenant_a.tenant.drop(node).await;
    tenant_b.tenant.drop(node).await;
}
