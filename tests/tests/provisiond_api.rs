//! `provisiond` serves the provisioner's read operations on its Unix
//! socket: the same JSON as the CLI's `--json`, and errors as problem
//! documents with the CLI's error kinds.

mod provision_support;

use std::path::Path;
use std::time::{Duration, Instant};

use provision_support::{api, provisiond_bin, Env};
use provision_testkit::unique_id;
use tokio::net::UnixStream;

/// One GET over the socket: the status, the content type, the body.
async fn get(socket: &Path, path: &str) -> (u16, String, String) {
    api(
        &format!("unix:{}", socket.display()),
        "GET",
        path,
        None,
        None,
    )
    .await
}

#[tokio::test]
async fn the_daemon_answers_what_the_cli_answers_and_errors_as_problems() {
    let env = Env::new("pvapi", (28601, 28609), (28701, 28709)).await;
    let socket = env.dir.join("provisiond.sock");
    let mut daemon = tokio::process::Command::new(provisiond_bin())
        .arg("--config")
        .arg(&env.config)
        .arg("--socket")
        .arg(&socket)
        .kill_on_drop(true)
        .spawn()
        .expect("provisiond starts");
    let deadline = Instant::now() + Duration::from_secs(20);
    while UnixStream::connect(&socket).await.is_err() {
        assert!(
            Instant::now() < deadline,
            "provisiond did not listen within 20 s"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mode =
        std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&socket).unwrap().permissions());
    assert_eq!(mode & 0o777, 0o660);
    assert_eq!(get(&socket, "/healthz").await.0, 200);

    let id = unique_id("api");
    env.run(&["start", &id]).await.ok();
    let (status, _, body) = get(&socket, &format!("/v1/tenants/{id}")).await;
    assert_eq!(status, 200, "{body}");
    let tenant: serde_json::Value = serde_json::from_str(&body).unwrap();
    let cli: serde_json::Value =
        serde_json::from_str(&env.run(&["--json", "status", &id]).await.ok().stdout).unwrap();
    for key in [
        "provider",
        "desired",
        "gateway_port",
        "admin_port",
        "keyspace",
    ] {
        assert_eq!(tenant[key], cli[key], "{key}: {body}");
    }
    // (`starting` until the engine's own health check has run once)
    assert!(
        tenant["state"] == "running" || tenant["state"] == "starting",
        "{body}"
    );

    let (status, _, body) = get(&socket, "/v1/tenants").await;
    assert_eq!(status, 200);
    assert!(body.contains(&format!("\"provider\":\"{id}\"")), "{body}");
    // On one engine the endpoints are the public host and the leased ports.
    let (status, _, body) = get(&socket, "/v1/endpoints").await;
    assert_eq!(status, 200, "{body}");
    let book: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(book["mode"], "engine", "{body}");
    for (app, port) in [
        ("ingest", &cli["gateway_port"]),
        ("admin", &cli["admin_port"]),
    ] {
        let entry = book["endpoints"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["tenant"] == id.as_str() && e["app"] == app)
            .unwrap_or_else(|| panic!("no {app} of {id}: {body}"));
        assert_eq!(entry["endpoint"], format!("127.0.0.1:{port}"), "{body}");
        assert!(entry["since"].is_string(), "{body}");
    }
    // Once the engine's own checks passed (its first runs an interval
    // after the start), the plan has nothing left to wait for.
    let docker = provision_testkit::docker().await;
    for role in ["ingest", "admin", "notifier"] {
        let name = env.container(&id, role);
        provision_testkit::containers::wait_healthy(&docker, &name, Duration::from_secs(90))
            .await
            .unwrap_or_else(|why| panic!("{name}: {why}"));
    }
    let (status, _, body) = get(&socket, &format!("/v1/tenants/{id}/plan")).await;
    assert_eq!(
        (status, body.contains("\"plan\":[]")),
        (200, true),
        "{body}"
    );
    let (status, _, body) = get(&socket, "/v1/operations").await;
    assert!(
        status == 200 && body.contains(&format!("\"request\":\"start {id}\"")),
        "{body}"
    );

    for (path, code, kind) in [
        (
            format!("/v1/tenants/{}", unique_id("nobody")),
            404,
            "unknown_provider",
        ),
        (
            "/v1/tenants/Not-An-Id".to_owned(),
            400,
            "invalid_provider_id",
        ),
    ] {
        let (status, content_type, body) = get(&socket, &path).await;
        assert_eq!(status, code, "{path}: {body}");
        assert_eq!(content_type, "application/problem+json", "{path}");
        let problem: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(problem["kind"], kind, "{body}");
        assert_eq!(problem["status"], code, "{body}");
    }

    daemon.start_kill().unwrap();
    let _ = daemon.wait().await;
    env.run(&["destroy", &id, "--yes", "--purge-data"])
        .await
        .ok();
    env.scope.cleanup().await;
}
