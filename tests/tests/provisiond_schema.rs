//! The daemon's OpenAPI document is what it serves and what is committed
//! (`api/openapi.json`), and schemathesis (from PyPI: `scripts/test`
//! installs it) finds no 5xx and no answer off the document, on disposable
//! tenants of an environment of its own (small port pools, so at most a
//! few of its random starts get containers). The log route is left out:
//! with `follow` it streams for as long as the app runs.

mod provision_support;

use std::time::{Duration, Instant};

use provision_support::{api, Env};
use serde_json::Value;

/// The schemathesis of `scripts/test`'s virtualenv, or
/// `PROVISION_SCHEMATHESIS`.
fn schemathesis() -> std::path::PathBuf {
    if let Some(path) = std::env::var_os("PROVISION_SCHEMATHESIS") {
        return path.into();
    }
    let cache = std::env::var_os("PROVISION_CACHE")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| std::path::PathBuf::from("/root/.cache/provision"));
    cache.join("venv/bin/schemathesis")
}

#[tokio::test]
async fn schemathesis_finds_no_server_error_and_no_answer_off_the_document() {
    let env = Env::new("pvschema", (29221, 29223), (29321, 29323)).await;
    let daemon = env.daemon(&[], None).await;
    let (status, _, served) = api(
        &daemon.addr,
        "GET",
        "/v1/openapi.json",
        Some(&daemon.token),
        None,
    )
    .await;
    assert_eq!(status, 200);
    let committed = include_str!("../../api/openapi.json");
    let served: Value = serde_json::from_str(&served).unwrap();
    assert!(
        served == serde_json::from_str::<Value>(committed).unwrap(),
        "the served document is not api/openapi.json: run `provisiond --openapi > api/openapi.json`"
    );

    let bin = schemathesis();
    assert!(
        bin.exists(),
        "{} is missing: scripts/test installs it",
        bin.display()
    );
    let report = env.dir.join("schemathesis.txt");
    let out = tokio::process::Command::new(&bin)
        .args([
            "run",
            &format!("http://{}/v1/openapi.json", daemon.addr),
            "-H",
            &format!("Authorization: Bearer {}", daemon.token),
            "--checks",
            "not_a_server_error,response_schema_conformance,content_type_conformance,status_code_conformance",
            "--exclude-path",
            "/v1/tenants/{id}/logs",
            "--max-examples",
            "15",
            "--seed",
            "1",
            "--workers",
            "1",
            "--request-timeout",
            "30",
            "--no-color",
        ])
        .env("SCHEMATHESIS_HOOKS", "")
        .output()
        .await
        .expect("schemathesis runs");
    let text = format!(
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::write(&report, &text).unwrap();
    eprintln!(
        "{}",
        text.lines()
            .rev()
            .take(15)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect::<Vec<_>>()
            .join("\n")
    );

    // What its starts queued ends; then every tenant it made goes.
    let deadline = Instant::now() + Duration::from_secs(600);
    loop {
        let (_, _, body) = api(
            &daemon.addr,
            "GET",
            "/v1/operations",
            Some(&daemon.token),
            None,
        )
        .await;
        let ops: Vec<Value> = serde_json::from_str(&body).unwrap();
        if ops
            .iter()
            .all(|o| !matches!(o["state"].as_str(), Some("queued" | "running")))
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "schemathesis' operations did not end"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let p = env.provisioner().await;
    // Its requests got past the token and reached the operations.
    let logged = p.history(None).await.unwrap();
    assert!(
        logged.iter().any(|op| op.kind == "start"),
        "schemathesis queued no start: {text}"
    );
    for tenant in p.store.tenants().await.unwrap() {
        let id = tenant.id.to_string();
        let run = env.run(&["destroy", &id, "--yes", "--purge-data"]).await;
        assert_eq!(run.code, 0, "{id}: {}", run.stderr);
    }
    env.scope.cleanup().await;
    assert!(
        out.status.success(),
        "schemathesis failed:\n{text}\n{}",
        env.daemon_log()
    );
}
