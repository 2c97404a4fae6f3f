//! Chaos under load. gateway-sim's reconnecting gateways
//! (`gateway_sim::resilient`) stream to three tenants (each its own ingest,
//! all on one managed Cassandra node, watched by `provisiond`) while faults
//! hit the stack one after another:
//! 1. `docker kill` (SIGKILL) of the first tenant's ingest;
//! 2. `docker restart` of the second tenant's ingest;
//! 3. `docker restart` of the Cassandra node;
//! 4. `docker pause` of the Cassandra node for 20 s;
//! 5. a restart of dockerd itself.
//!
//! After each fault the run waits until every gateway of every tenant has
//! an ack again, then streams on for a while. At the end every gateway
//! has its readings acked, and every acked reading is looked up in
//! Cassandra: none may be missing. Per fault and tenant the longest stretch
//! one gateway went without an ack is reported, with the gateways'
//! reconnects.
//!
//! The CI-sized run is the default; `scripts/chaos` runs the same test
//! bigger, through `CHAOS_GATEWAYS` (per tenant, default 2), `CHAOS_RATE`
//! (readings/s per gateway, 10), `CHAOS_SETTLE_SECS` (streaming between
//! faults, 5), `CHAOS_PAUSE_SECS` (20) and `CHAOS_REPORT` (a file for
//! the markdown report). Restarting dockerd touches every container of the
//! machine, so this is the only test of its binary (cargo runs test
//! binaries one after another; the harness's node is started again by the
//! next one).

mod provision_support;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bollard::query_parameters::{KillContainerOptionsBuilder, RestartContainerOptionsBuilder};
use chrono::{DateTime, Utc};
use gateway_sim::resilient::{self, Ack, Progress, ResilientConfig, ResilientReport};
use provision_support::{Daemon, Env};
use provision_testkit::faults::{missing_acked, restart_dockerd};
use provision_testkit::{docker, unique_id};

/// How big the run is.
struct Size {
    gateways: usize,
    rate: f64,
    settle: Duration,
    pause: Duration,
    /// How long a tenant may take to accept readings again after a fault.
    recovery: Duration,
}

impl Size {
    fn from_env() -> Size {
        let number = |key: &str, default: f64| -> f64 {
            match std::env::var(key) {
                Ok(v) => v
                    .parse()
                    .unwrap_or_else(|_| panic!("{key}={v} is not a number")),
                Err(_) => default,
            }
        };
        Size {
            gateways: number("CHAOS_GATEWAYS", 2.0) as usize,
            rate: number("CHAOS_RATE", 10.0),
            settle: Duration::from_secs_f64(number("CHAOS_SETTLE_SECS", 5.0)),
            pause: Duration::from_secs_f64(number("CHAOS_PAUSE_SECS", 20.0)),
            recovery: Duration::from_secs(180),
        }
    }
}

#[derive(Debug, Clone, Copy)]
enum Fault {
    KillIngest(usize),
    RestartIngest(usize),
    RestartCassandra,
    PauseCassandra,
    RestartDockerd,
}

impl Fault {
    fn describe(&self, tenants: &[Tenant], size: &Size) -> String {
        match self {
            Fault::KillIngest(t) => format!("`docker kill` of {}'s ingest", tenants[*t].id),
            Fault::RestartIngest(t) => {
                format!("`docker restart` of {}'s ingest", tenants[*t].id)
            }
            Fault::RestartCassandra => "`docker restart` of the Cassandra node".into(),
            Fault::PauseCassandra => format!(
                "`docker pause` of the Cassandra node for {} s",
                size.pause.as_secs()
            ),
            Fault::RestartDockerd => "dockerd restarted".into(),
        }
    }
}

struct Tenant {
    id: String,
    gateways: usize,
    /// When each of its gateways last got an ack.
    progress: Arc<Progress>,
}

impl Tenant {
    fn acked_since(&self, since: Instant) -> bool {
        self.progress.all_acked_since(0..self.gateways, since)
    }
}

/// A fault as it happened: when it began and ended (wall clock, to line up
/// with the acks) and when every tenant accepted readings again.
struct Injected {
    fault: Fault,
    began: DateTime<Utc>,
    ended: DateTime<Utc>,
    /// Per tenant, from the fault's end until each of its gateways had an
    /// ack again.
    back_after: Vec<Duration>,
}

#[tokio::test]
async fn every_reading_acked_under_faults_is_in_cassandra() {
    let size = Size::from_env();
    let mut env = Env::managed("pvchaos", (29831, 29839), (29931, 29939)).await;
    let daemon = env.daemon(&[], None).await;
    env.through(&daemon);
    let node = format!("{}-cassandra", env.prefix);

    // Three tenants, each with its gateways, streaming.
    let mut tenants = Vec::new();
    let mut streams = Vec::new();
    for t in 0..3 {
        let id = unique_id(&format!("chaos{t}"));
        let port = env
            .run(&["--json", "start", &id])
            .await
            .ok()
            .port("gateway_port");
        let mut gateways = Vec::new();
        for g in 0..size.gateways {
            let gw = format!("gw-{g}");
            let token = env
                .run(&["--json", "gateway", "add", &id, &gw])
                .await
                .ok()
                .field("token")
                .expect("a token");
            gateways.push((gw, token));
        }
        let progress = Progress::new(size.gateways);
        tenants.push(Tenant {
            id: id.clone(),
            gateways: size.gateways,
            progress: progress.clone(),
        });
        let mut cfg = ResilientConfig::new(
            &format!("127.0.0.1:{port}"),
            gateways,
            size.rate,
            Duration::from_secs(3600),
        );
        cfg.check().unwrap();
        cfg.acked_file = Some(env.dir.join(format!("acked-{id}.log")));
        streams.push(tokio::spawn(resilient::run(cfg, progress)));
    }
    let streaming = Instant::now();
    wait_until_acked(&tenants, streaming, size.recovery, &env, &daemon).await;
    tokio::time::sleep(size.settle).await;

    let docker = docker().await;
    let faults = [
        Fault::KillIngest(0),
        Fault::RestartIngest(1),
        Fault::RestartCassandra,
        Fault::PauseCassandra,
        Fault::RestartDockerd,
    ];
    let mut injected = Vec::new();
    for fault in faults {
        eprintln!("chaos: {}", fault.describe(&tenants, &size));
        let began = Utc::now();
        match fault {
            Fault::KillIngest(t) => docker
                .kill_container(
                    &env.container(&tenants[t].id, "ingest"),
                    Some(
                        KillContainerOptionsBuilder::default()
                            .signal("SIGKILL")
                            .build(),
                    ),
                )
                .await
                .unwrap(),
            Fault::RestartIngest(t) => docker
                .restart_container(
                    &env.container(&tenants[t].id, "ingest"),
                    Some(RestartContainerOptionsBuilder::default().t(10).build()),
                )
                .await
                .unwrap(),
            Fault::RestartCassandra => docker
                .restart_container(
                    &node,
                    Some(RestartContainerOptionsBuilder::default().t(30).build()),
                )
                .await
                .unwrap(),
            Fault::PauseCassandra => {
                docker.pause_container(&node).await.unwrap();
                // the fault itself lasts this long
                tokio::time::sleep(size.pause).await;
                docker.unpause_container(&node).await.unwrap();
            }
            Fault::RestartDockerd => restart_dockerd().await,
        }
        let ended = Utc::now();
        let back_after =
            wait_until_acked(&tenants, Instant::now(), size.recovery, &env, &daemon).await;
        injected.push(Injected {
            fault,
            began,
            ended,
            back_after,
        });
        tokio::time::sleep(size.settle).await;
    }
    // Every gateway gets the rest of its readings acked, then the check.
    for tenant in &tenants {
        tenant.progress.stop_making();
    }
    let mut reports = Vec::new();
    for stream in streams {
        reports.push(stream.await.unwrap());
    }
    let provisioner = env.provisioner().await;
    let session = provisioner::cql::session::admin_session(&provisioner.config, &provisioner.store)
        .await
        .unwrap();
    let mut lost = Vec::new();
    for (tenant, report) in tenants.iter().zip(&reports) {
        let keyspace = provisioner::ProviderId::parse(&tenant.id)
            .unwrap()
            .keyspace();
        lost.push(
            missing_acked(&session, &keyspace, &report.acks)
                .await
                .unwrap(),
        );
    }

    let text = render(&size, &tenants, &reports, &injected, &lost);
    eprintln!("{text}");
    if let Ok(path) = std::env::var("CHAOS_REPORT") {
        std::fs::write(&path, &text).unwrap();
    }
    for ((tenant, report), lost) in tenants.iter().zip(&reports).zip(&lost) {
        assert!(
            lost.is_empty(),
            "{}: {} acked readings are not in Cassandra, the first: {:?}",
            tenant.id,
            lost.len(),
            lost.first()
        );
        assert_eq!(report.unacked(), 0, "{}: {}", tenant.id, report.render());
        for g in &report.gateways {
            assert!(g.violations.is_empty(), "{}: {:?}", tenant.id, g.violations);
        }
        assert!(report.file_error.is_none(), "{:?}", report.file_error);
    }
    for tenant in &tenants {
        env.run(&["destroy", &tenant.id, "--yes", "--purge-data"])
            .await
            .ok();
    }
    drop(daemon);
    env.scope.cleanup().await;
}

/// Waits until every gateway of every tenant has an ack later than
/// `since`; returns per tenant how long that took. Fails the test after
/// `within`, with the daemon's log.
async fn wait_until_acked(
    tenants: &[Tenant],
    since: Instant,
    within: Duration,
    env: &Env,
    daemon: &Daemon,
) -> Vec<Duration> {
    let mut back: Vec<Option<Duration>> = vec![None; tenants.len()];
    while back.iter().any(Option::is_none) {
        for (t, tenant) in tenants.iter().enumerate() {
            if back[t].is_none() && tenant.acked_since(since) {
                back[t] = Some(since.elapsed());
            }
        }
        assert!(
            since.elapsed() < within,
            "tenants did not accept readings again within {within:?} (per tenant: {back:?}); provisiond at {}:\n{}",
            daemon.addr,
            env.daemon_log()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    back.into_iter().map(Option::unwrap_or_default).collect()
}

/// The longest stretch one of `acks`' gateways went without an ack, of
/// those overlapping `from..to`.
fn longest_gap(acks: &[Ack], from: DateTime<Utc>, to: DateTime<Utc>) -> Duration {
    let mut by_gateway: BTreeMap<&str, Vec<DateTime<Utc>>> = BTreeMap::new();
    for ack in acks {
        by_gateway.entry(&ack.gateway).or_default().push(ack.at);
    }
    let mut longest = Duration::ZERO;
    for times in by_gateway.values_mut() {
        times.sort();
        for pair in times.windows(2) {
            let (a, b) = (pair[0], pair[1]);
            if b >= from && a <= to {
                longest = longest.max((b - a).to_std().unwrap_or_default());
            }
        }
    }
    longest
}

fn render(
    size: &Size,
    tenants: &[Tenant],
    reports: &[ResilientReport],
    injected: &[Injected],
    lost: &[Vec<Ack>],
) -> String {
    let mut out = format!(
        "Chaos run: 3 tenants × {} gateways × {} readings/s, {} s of streaming between faults.\n\n",
        size.gateways,
        size.rate,
        size.settle.as_secs_f64()
    );
    out.push_str("| fault | ");
    for t in tenants {
        out.push_str(&format!("{}: longest ack gap / acks again after | ", t.id));
    }
    out.push_str("\n|---|");
    out.push_str(&"---|".repeat(tenants.len()));
    out.push('\n');
    for i in injected {
        out.push_str(&format!("| {} | ", i.fault.describe(tenants, size)));
        for (t, report) in reports.iter().enumerate() {
            let until = i.ended
                + chrono::TimeDelta::from_std(i.back_after[t]).unwrap_or_default()
                + chrono::TimeDelta::seconds(1);
            out.push_str(&format!(
                "{:.1} s / {:.1} s | ",
                longest_gap(&report.acks, i.began, until).as_secs_f64(),
                i.back_after[t].as_secs_f64()
            ));
        }
        out.push('\n');
    }
    out.push_str(
        "\n| tenant | readings acked | acked but not in Cassandra | unacked at the end | reconnects | resent |\n|---|---|---|---|---|---|\n",
    );
    for ((t, report), lost) in tenants.iter().zip(reports).zip(lost) {
        out.push_str(&format!(
            "| {} | {} | {} | {} | {} | {} |\n",
            t.id,
            report.acked(),
            lost.len(),
            report.unacked(),
            report.reconnects(),
            report.gateways.iter().map(|g| g.resent).sum::<u64>()
        ));
    }
    for (t, report) in tenants.iter().zip(reports) {
        out.push_str(&format!("\n{}:\n{}", t.id, report.render()));
    }
    out
}
