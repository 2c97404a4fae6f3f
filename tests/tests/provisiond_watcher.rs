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
use provision_testkit::unique_id;

/// The running dockerd's pid and command line.
fn dockerd() -> Option<(u32, Vec<String>)> {
    for entry in std::fs::read_dir("/proc").ok()?.flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) else {
            continue;
        };
        let args: Vec<String> = cmdline
            .split(|b| *b == 0)
            .filter(|a| !a.is_empty())
            .map(|a| String::from_utf8_lossy(a).into_owned())
            .collect();
        if args
            .first()
            .is_some_and(|a| a == "dockerd" || a.ends_with("/dockerd"))
        {
            return Some((pid, args));
        }
    }
    None
}

async fn engine_answers() -> bool {
    tokio::process::Command::new("docker")
        .args(["version", "--format", "{{.Server.Version}}"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .await
        .is_ok_and(|s| s.success())
}

/// Stops dockerd (SIGTERM: it stops every container) and starts it again
/// with the same command line, as `scripts/setup` started it; returns when
/// the engine answers.
async fn restart_dockerd() {
    let (pid, args) = dockerd().expect("a dockerd runs (scripts/setup starts one)");
    let status = std::process::Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let deadline = Instant::now() + Duration::from_secs(120);
    while std::path::Path::new(&format!("/proc/{pid}")).exists() {
        assert!(
            Instant::now() < deadline,
            "dockerd did not stop within 120 s"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open("/var/log/provision-dockerd.log")
        .unwrap();
    // dockerd outlives the test, as the engine it was: never waited on.
    #[allow(clippy::zombie_processes)]
    std::process::Command::new("setsid")
        .args(&args)
        .stdin(std::process::Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .expect("dockerd starts again");
    let deadline = Instant::now() + Duration::from_secs(60);
    while !engine_answers().await {
        assert!(
            Instant::now() < deadline,
            "dockerd did not answer within 60 s"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

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
        for role in ["ingest", "admin"] {
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
    let metrics =
        provision_support::api(&daemon.addr, "GET", "/metrics", Some(&daemon.token), None).await;
    assert!(
        metrics.2.contains("provisiond_engine_reconnects_total 1"),
        "{}",
        metrics.2
    );

    for id in running.iter().chain([&stopped]) {
        env.run(&["destroy", id, "--yes", "--purge-data"])
            .await
            .ok();
    }
    drop(daemon);
    env.scope.cleanup().await;
}
