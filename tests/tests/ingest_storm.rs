//! A reconnect storm at CI size against an in-process ingest on the real
//! Cassandra: 2,000 gateways that reconnect by themselves
//! (`gateway_sim::resilient`) stream while ingest restarts (a graceful
//! stop, as `docker restart` gives it, then a new server on the same
//! port). Every gateway logs in again, every acked reading is in
//! Cassandra, and the 2,000 hellos of the storm are welcomed from the
//! gateway book (one read of the gateways table), not 2,000 token reads.
//!
//! A file of its own: its 4,000 sockets and its load would disturb the
//! other ingest tests if they ran beside it.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use gateway_sim::resilient::{self, Progress, ResilientConfig};
use ingest::server::Limits;
use ingest::settings::Settings;
use provision_testkit::apps::Ingest;
use provision_testkit::faults::missing_acked;

const GATEWAYS: usize = 2000;
/// Readings per second per gateway: 1 every 2 s.
const RATE: f64 = 0.5;

fn limits() -> Limits {
    Limits {
        max_connections: GATEWAYS + 100,
        // every gateway of the storm comes from 127.0.0.1 and says hello
        // at once: the caps on hellos in progress are not what is tested
        max_unauthenticated: GATEWAYS + 100,
        max_unauthenticated_per_address: GATEWAYS + 100,
        ..Limits::from(&Settings::default())
    }
}

/// Waits until every gateway got an ack after `since`; answers how long
/// that took from `since`.
async fn all_acked_since(progress: &Progress, since: Instant, within: Duration) -> Duration {
    let all: Vec<usize> = (0..GATEWAYS).collect();
    let deadline = since + within;
    while !progress.all_acked_since(all.iter().copied(), since) {
        let behind = all
            .iter()
            .filter(|&&i| progress.last_ack(i).is_none_or(|t| t < since))
            .count();
        assert!(
            Instant::now() < deadline,
            "{behind} of {GATEWAYS} gateways got no ack within {within:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    since.elapsed()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_thousand_gateways_are_back_after_an_ingest_restart_and_no_acked_reading_is_lost() {
    let mut ingest = Ingest::start(limits()).await;
    let token = ingest.commission("gw-storm-0").await;
    let mut gateways = vec![("gw-storm-0".to_owned(), token)];
    for i in 1..GATEWAYS {
        let id = format!("gw-storm-{i}");
        let token = ingest.commission(&id).await;
        gateways.push((id, token));
    }
    let mut cfg = ResilientConfig::new(&ingest.addr, gateways, RATE, Duration::from_secs(3600));
    cfg.drain_timeout = Duration::from_secs(60);
    let progress = Progress::new(GATEWAYS);
    let run = tokio::spawn(resilient::run(cfg, progress.clone()));

    let started = Instant::now();
    let first = all_acked_since(&progress, started, Duration::from_secs(120)).await;
    let reads_before = ingest.metrics.token_reads.load(Ordering::Relaxed);
    let book_reads_before = ingest.metrics.token_book_reads.load(Ordering::Relaxed);

    let gap = ingest.restart(limits()).await;
    let restarted = Instant::now();
    let back = all_acked_since(&progress, restarted, Duration::from_secs(60)).await;
    let token_reads = ingest.metrics.token_reads.load(Ordering::Relaxed) - reads_before;
    let book_reads = ingest.metrics.token_book_reads.load(Ordering::Relaxed) - book_reads_before;
    eprintln!(
        "{GATEWAYS} gateways: all acked {first:?} after the start; ingest stopped in {gap:?}; \
         all acked again {back:?} after the restart; the storm cost {token_reads} token reads \
         and {book_reads} reads of the gateways table"
    );

    progress.stop_making();
    let report = run.await.unwrap();
    assert_eq!(
        report.unacked(),
        0,
        "unacked readings:\n{}",
        report.render()
    );
    assert!(
        report.reconnects() >= GATEWAYS as u64,
        "every gateway reconnected"
    );
    let missing = missing_acked(&ingest.admin, &ingest.tenant.keyspace, &report.acks)
        .await
        .unwrap();
    assert!(
        missing.is_empty(),
        "acked, not in Cassandra: {:?}",
        &missing[..missing.len().min(10)]
    );
    // the storm's hellos came from the book
    assert!(
        token_reads < GATEWAYS as u64 / 20,
        "{token_reads} token reads for a storm of {GATEWAYS} hellos"
    );
    assert!(
        (1..=5).contains(&book_reads),
        "{book_reads} reads of the gateways table"
    );
    ingest.stop().await;
}
