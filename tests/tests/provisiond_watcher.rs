//! The daemon's watcher across a restart of the Docker engine itself: the
//! engine stops every container (no live restore) and comes back; with no
//! command typed, the watcher sees the engine again, starts the managed
//! Cassandra and every tenant that should run, and leaves the stopped one
//! stopped. Restarting dockerd touches every container on the machine, so
//! this is the only test of its binary (cargo runs test binaries one after
//! another) and the harness's node is started again by the next binary.

mod provision_support;

use std::time::{Duration, Instant};

use provision_support::{healthy_within, is_running, Env};
use provision_testkit::faults::restart_dockerd;
use provision_testkit::unique_id;

#[tokio::test]
async fn after_a_dockerd_restart_every_tenant_that_should_run_is_healthy_again_within_90_s() {
    let mut env = Env::managed("pvengine", (29811, 29815), (29911, 29915)).await;
    let daemon = env.daemon(&[], None).await;
    env.through(&daemon);
    let running: Vec<String> = (0..2).map(|_| unique_id("eng")).collect();
    for id in &running {
        env.run(&["start", id]).await.ok();
    }
    let stopped = unique_id("engstop");
    env.run(&["start", &stopped]).await.ok();
    env.run(&["stop", &stopped]).await.ok();

    restart_dockerd().await;
    let restarted = Instant::now();
    for id in &running {
        for role in ["ingest", "admin", "notifier"] {
            let container = env.container(id, role);
            let left = Duration::from_secs(90).saturating_sub(restarted.elapsed());
            assert!(
                healthy_within(&container, left).await.is_some(),
                "{container} was not healthy within 90 s of the engine's restart:\n{}",
                env.daemon_log()
            );
        }
    }
    eprintln!(
        "every tenant healthy {:.1} s after the engine answered again",
        restarted.elapsed().as_secs_f64()
    );
    assert!(!is_running(&env.container(&stopped, "ingest")).await);
    assert!(!is_running(&env.container(&stopped, "admin")).await);
    assert!(!is_running(&env.container(&stopped, "notifier")).await);
    let (_, _, metrics) =
        provision_support::api(&daemon.addr, "GET", "/metrics", Some(&daemon.token), None).await;
    let reconnects: u64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("provisiond_engine_reconnects_total "))
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    assert!(reconnects >= 1, "{metrics}");

    for id in running.iter().chain([&stopped]) {
        env.run(&["destroy", id, "--yes", "--purge-data"])
            .await
            .ok();
    }
    drop(daemon);
    env.scope.cleanup().await;
}
