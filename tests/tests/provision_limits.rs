//! A tenant's noisy-neighbour limits through the real `provision` binary,
//! against the real Docker engine and the harness's Cassandra node:
//! `start --max-readings-per-sec --max-gateways` keeps them in the desired
//! state and hands them to the ingest container, the cap refuses the next
//! gateway with `busy`, `status` shows the limits and (from the ingest
//! container's health log) the open connections, and a later start without
//! the flags keeps them.

mod provision_support;

use std::time::{Duration, Instant};

use provision_support::{Env, Gateway};
use provision_testkit::unique_id;

/// `status --json` of `id`, parsed.
async fn status(env: &Env, id: &str) -> serde_json::Value {
    let run = env.run(&["--json", "status", id]).await.ok();
    serde_json::from_str(&run.stdout).unwrap_or_else(|e| panic!("{e}: {}", run.stdout))
}

#[tokio::test]
async fn start_limits_a_tenant_and_status_shows_its_limits_and_connections() {
    let env = Env::new("pvlimits", (29841, 29849), (29941, 29949)).await;
    let id = unique_id("lim");

    let started = env
        .run(&[
            "--json",
            "start",
            &id,
            "--max-readings-per-sec",
            "300",
            "--max-gateways",
            "2",
        ])
        .await
        .ok();
    let port = started.port("gateway_port");
    let s = status(&env, &id).await;
    assert_eq!(s["max_readings_per_sec"], 300, "{s}");
    assert_eq!(s["max_gateways"], 2, "{s}");

    // Two gateways get in; the third is over the cap.
    let mut tokens = Vec::new();
    for g in 0..3 {
        let gw = format!("gw-lim-{g}");
        let added = env.run(&["--json", "gateway", "add", &id, &gw]).await.ok();
        tokens.push((gw, added.field("token").expect("a token")));
    }
    let mut open = Vec::new();
    for (gw, token) in &tokens[..2] {
        open.push(Gateway::connect(port, gw, token).await);
    }
    let (gw, token) = &tokens[2];
    let refused = Gateway::hello(port, gw, token)
        .await
        .err()
        .expect("a third gateway is over --max-gateways 2");
    assert!(refused.starts_with(r#"<error code="busy""#), "{refused}");

    // The ingest health check (every 10 s) counts the two open connections.
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let s = status(&env, &id).await;
        if s["connections"]["plain"] == 2 {
            assert_eq!(s["connections"]["tls"], 0, "{s}");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "status never showed the two connections: {s}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let text = env.run(&["status", &id]).await.ok();
    assert!(
        text.stdout.contains(&format!(
            "{id}: gateway connections: plain 2, tls 0; max readings/s 300; max gateways 2"
        )),
        "{}",
        text.stdout
    );
    drop(open);

    // A later start without the flags keeps them (and changes nothing).
    let again = env.run(&["--json", "start", &id]).await.ok();
    assert_eq!(
        again.field("changed").as_deref(),
        Some("false"),
        "{}",
        again.stdout
    );
    let s = status(&env, &id).await;
    assert_eq!(s["max_readings_per_sec"], 300, "{s}");
    assert_eq!(s["max_gateways"], 2, "{s}");

    // 0 is unlimited again.
    env.run(&["start", &id, "--max-readings-per-sec", "0"])
        .await
        .ok();
    let s = status(&env, &id).await;
    assert!(s["max_readings_per_sec"].is_null(), "{s}");
    assert_eq!(s["max_gateways"], 2, "{s}");

    env.run(&["destroy", &id, "--purge-data", "--yes"])
        .await
        .ok();
}
