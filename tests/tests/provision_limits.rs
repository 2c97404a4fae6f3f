//! A tenant's noisy-neighbour limits through the real `provision` binary,
//! against the real Docker engine and the harness's Cassandra node:
//! `start --max-readings-per-sec --max-gateways` keeps them in the desired
//! state and hands them to the ingest container, the cap refuses the next
//! gateway with `busy`, `status` shows the limits and (from the ingest
//! container's health log) the open connections, and a later start without
//! the flags keeps them. The ingest container's open-files limit and memory
//! follow the cap, and a cap whose open files the host does not allow is
//! refused before anything changes.

mod provision_support;

use std::time::{Duration, Instant};

use provision_support::{Env, Gateway};
use provision_testkit::{docker, unique_id};

/// The ingest container's open-files limit (soft, hard) and memory limit
/// (MiB), as the engine keeps them.
async fn ingest_limits(env: &Env, id: &str) -> ((i64, i64), i64) {
    let inspect = docker()
        .await
        .inspect_container(&env.container(id, "ingest"), None)
        .await
        .expect("inspect the ingest container");
    let host = inspect.host_config.expect("a host config");
    let ulimits = host.ulimits.unwrap_or_default();
    let nofile = ulimits
        .iter()
        .find(|u| u.name.as_deref() == Some("nofile"))
        .unwrap_or_else(|| panic!("no nofile ulimit: {ulimits:?}"));
    (
        (nofile.soft.unwrap_or(0), nofile.hard.unwrap_or(0)),
        host.memory.unwrap_or(0) / (1024 * 1024),
    )
}

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
    // 2 gateways and 512 spare files; [limits] memory_mb (128) is enough.
    assert_eq!(ingest_limits(&env, &id).await, ((514, 514), 128));

    // More files than this host gives a process: refused, nothing changed.
    let too_many = env.run(&["start", &id, "--max-gateways", "100000"]).await;
    assert_eq!(too_many.code, 2, "{}", too_many.stderr);
    assert!(
        too_many
            .stderr
            .contains("--max-gateways 100000 needs 100512 open files"),
        "{}",
        too_many.stderr
    );
    assert_eq!(status(&env, &id).await["max_gateways"], 2);

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

    // A large cap: the files and the memory grow with it.
    env.run(&["start", &id, "--max-gateways", "12000"])
        .await
        .ok();
    let ((soft, hard), memory_mb) = ingest_limits(&env, &id).await;
    assert_eq!((soft, hard), (12512, 12512));
    assert!(memory_mb > 128, "{memory_mb} MiB for 12,000 gateways");

    env.run(&["destroy", &id, "--purge-data", "--yes"])
        .await
        .ok();
}
