//! What tests and the chaos run share to break the stack and check what
//! survived:
//! - [`restart_dockerd`] stops the Docker engine (SIGTERM: it stops every
//!   container, no live restore) and starts it again with the command line
//!   it ran with, as `scripts/setup` started it;
//! - [`missing_acked`] looks every reading a gateway saw acked up in the
//!   tenant's `readings` table and returns those that are not there.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use chrono::{DateTime, NaiveDate, Utc};
use futures::TryStreamExt;
use gateway_sim::resilient::Ack;
use scylla::client::session::Session;

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

/// Whether the engine answers `docker version`.
pub async fn engine_answers() -> bool {
    tokio::process::Command::new("docker")
        .args(["version", "--format", "{{.Server.Version}}"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .await
        .is_ok_and(|s| s.success())
}

/// Stops dockerd (SIGTERM: it stops every container) and starts it again
/// with the same command line, in a session of its own that outlives the
/// caller, logging to `/var/log/provision-dockerd.log`; returns when the
/// engine answers. Panics if no dockerd runs or it does not come back
/// within 60 s.
pub async fn restart_dockerd() {
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
    let started = std::process::Command::new("setsid")
        .arg("-f")
        .args(&args)
        .stdin(std::process::Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .status()
        .expect("dockerd starts again");
    assert!(started.success());
    let deadline = Instant::now() + Duration::from_secs(60);
    while !engine_answers().await {
        assert!(
            Instant::now() < deadline,
            "dockerd did not answer within 60 s"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The acked readings of `acks` that `keyspace.readings` does not hold
/// (a row with the reading's gateway, day, time and seq), read one
/// partition (gateway, UTC day) at a time through `session`.
pub async fn missing_acked(
    session: &Session,
    keyspace: &str,
    acks: &[Ack],
) -> Result<Vec<Ack>, String> {
    let mut by_partition: BTreeMap<(&str, NaiveDate), Vec<&Ack>> = BTreeMap::new();
    for ack in acks {
        by_partition
            .entry((ack.gateway.as_str(), ack.ts.date_naive()))
            .or_default()
            .push(ack);
    }
    let cql = format!("SELECT ts, seq FROM {keyspace}.readings WHERE gateway_id = ? AND day = ?");
    let select = session
        .prepare(cql.clone())
        .await
        .map_err(|e| format!("{cql}: {e}"))?;
    let mut missing = Vec::new();
    for ((gateway, day), acked) in by_partition {
        let rows: BTreeSet<(DateTime<Utc>, i64)> = session
            .execute_iter(select.clone(), (gateway, day))
            .await
            .map_err(|e| format!("{cql} ({gateway}, {day}): {e}"))?
            .rows_stream::<(DateTime<Utc>, i64)>()
            .map_err(|e| format!("{cql}: {e}"))?
            .try_collect()
            .await
            .map_err(|e| format!("{cql} ({gateway}, {day}): {e}"))?;
        missing.extend(
            acked
                .into_iter()
                .filter(|a| !rows.contains(&(a.ts, a.seq)))
                .cloned(),
        );
    }
    Ok(missing)
}
