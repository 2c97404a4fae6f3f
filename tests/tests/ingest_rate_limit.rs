//! The tenant's rate limit (`INGEST_MAX_READINGS_PER_SEC`) against the real
//! test Cassandra: an in-process ingest (the library's own `serve`) on a
//! fresh tenant keyspace, and gateway-sim flooding it as fast as its window
//! allows. The limit must hold the flood to within 10% of it, by
//! backpressure: nothing is nacked or refused, every frame sent is acked.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use gateway_sim::sim::{self, SimConfig, Stop};
use ingest::metrics::Metrics;
use ingest::server::Limits;
use ingest::settings::Settings;
use provision_testkit::apps::{commission_gateway_with, Ingest};
use tenant_schema::model::new_gateway_token;

/// One flood at a time: two on the 2-core machine would starve each other.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Floods an ingest limited to `limit` readings/s with `gateways` gateways
/// of `readings_per_frame` readings a frame for `run`; answers the report
/// and ingest's metrics.
async fn flood(
    limit: u32,
    gateways: usize,
    readings_per_frame: usize,
    run: Duration,
) -> (sim::Report, Arc<Metrics>) {
    let _turn = ONE_AT_A_TIME.lock().await;
    let settings = Settings::from_lookup(|name| {
        (name == "INGEST_MAX_READINGS_PER_SEC").then(|| limit.to_string())
    })
    .expect("the limit is a valid setting");
    let limits = Limits::from(&settings);
    assert_eq!(limits.max_readings_per_sec, limit);
    let ingest = Ingest::start(limits).await;
    let token = new_gateway_token();
    let ids: Vec<String> = (0..gateways).map(|i| format!("flood-{i}")).collect();
    for id in &ids {
        commission_gateway_with(&ingest.admin, &ingest.tenant.keyspace, id, &token).await;
    }
    let report = sim::run(SimConfig {
        connector: Default::default(),
        addr: ingest.addr.clone(),
        gateways: ids.into_iter().map(|id| (id, token.clone())).collect(),
        rate: 0.0,
        stop: Stop::After(run),
        readings_per_frame,
        values_per_reading: 2,
        // 256 ms of frames at 500/s: a write that stalls for less does not
        // starve the connection (the gateway waits for acks to send more)
        window: 128,
        drain_timeout: Duration::from_secs(30),
    })
    .await;
    let metrics = ingest.metrics.clone();
    ingest.stop().await;
    (report, metrics)
}

/// Asserts the flood's acked readings per second are within 10% of
/// `limit`, and that nothing was refused.
fn assert_held(report: &sim::Report, metrics: &Metrics, limit: u32, readings_per_frame: usize) {
    assert!(report.errors.is_empty(), "{:?}", report.errors);
    assert_eq!(report.nacked, 0, "nothing is nacked for the rate");
    assert_eq!(
        report.acked, report.frames_sent,
        "every frame sent is acked"
    );
    let readings_per_sec =
        report.acked as f64 * readings_per_frame as f64 / report.elapsed.as_secs_f64();
    let limit = f64::from(limit);
    eprintln!(
        "flood: {} frames acked in {:.2} s: {readings_per_sec:.0} readings/s against a limit of {limit}",
        report.acked,
        report.elapsed.as_secs_f64()
    );
    assert!(
        (readings_per_sec - limit).abs() <= 0.1 * limit,
        "{readings_per_sec:.0} readings/s is not within 10% of {limit}"
    );
    let throttled = metrics.rate_limited_frames.load(Ordering::Relaxed);
    eprintln!(
        "  the connections waited {throttled} times, {:.2} s in all",
        metrics.rate_limited_micros.load(Ordering::Relaxed) as f64 / 1e6
    );
    assert!(throttled > 0, "the connections waited for the limiter");
    assert_eq!(metrics.nacks.load(Ordering::Relaxed), 0);
    assert!(
        metrics
            .render()
            .contains(&format!("ingest_rate_limit_readings_per_sec {limit}\n")),
        "{}",
        metrics.render()
    );
}

#[tokio::test]
async fn the_rate_limit_holds_a_flooding_gateway_to_within_10_percent() {
    let (report, metrics) = flood(500, 1, 1, Duration::from_secs(10)).await;
    assert_held(&report, &metrics, 500, 1);
}

#[tokio::test]
async fn the_limit_is_the_tenants_and_counts_the_readings_of_batches() {
    // four gateways sharing one limit, five readings a frame
    let (report, metrics) = flood(1000, 4, 5, Duration::from_secs(10)).await;
    assert_held(&report, &metrics, 1000, 5);
}
