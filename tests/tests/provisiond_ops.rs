//! `provisiond`'s operations against the real engine and the harness's
//! Cassandra node: tokens guard its TCP listener, twenty starts through the
//! API at once get forty distinct ports, the watcher brings back a
//! container removed by hand, and a daemon killed in the middle of a start
//! leaves an interrupted operation that a reconcile converges, with no
//! leaked container, port or role.

mod provision_support;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use provision_support::{api, healthy_within, tenant_containers, Env};
use provision_testkit::{docker, unique_id};
use serde_json::Value;

fn json(body: &str) -> Value {
    serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {body}"))
}

#[tokio::test]
async fn the_tcp_listener_wants_a_live_token_and_refuses_without_changing_anything() {
    let env = Env::new("pvtok", (29201, 29203), (29301, 29303)).await;
    let daemon = env.daemon(&[], None).await;
    let id = unique_id("tok");
    let start = format!("/v1/tenants/{id}/start");
    let revoked = env
        .run(&["--json", "token", "create", "soon-revoked"])
        .await
        .ok();
    let revoked = revoked.field("token").unwrap();
    env.run(&["token", "revoke", "soon-revoked"]).await.ok();
    let listed = env.run(&["--json", "token", "list"]).await.ok();
    assert!(
        !listed.stdout.contains(&revoked),
        "token list shows a token"
    );

    for (what, token) in [
        ("no token", None),
        (
            "a wrong token",
            Some("pvd_0000000000000000000000000000000000000000000000000000000000000000"),
        ),
        ("a revoked token", Some(revoked.as_str())),
    ] {
        for (method, path) in [
            ("POST", start.as_str()),
            ("GET", "/v1/tenants"),
            ("GET", "/metrics"),
        ] {
            let (status, content_type, body) = api(&daemon.addr, method, path, token, None).await;
            assert_eq!(status, 401, "{what} on {method} {path}: {body}");
            assert_eq!(content_type, "application/problem+json");
            assert_eq!(json(&body)["kind"], "unauthorized", "{body}");
        }
    }
    // Nothing changed: the tenant is unknown, and no operation was logged.
    let (status, _, _) = daemon.call("GET", &format!("/v1/tenants/{id}"), None).await;
    assert_eq!(status, 404);
    let history = env.run(&["--json", "history"]).await.ok();
    assert_eq!(
        json(&history.stdout),
        Value::Array(vec![]),
        "{}",
        history.stdout
    );
    // The CLI through the daemon with a wrong token: 401 is exit code 13.
    let mut bad = Env::new("pvtok2", (29204, 29205), (29304, 29305)).await;
    bad.server = Some((daemon.url(), "pvd_wrong".into()));
    let refused = bad.run(&["list"]).await;
    assert_eq!(refused.code, 13, "{}", refused.stderr);
    assert!(refused.stderr.contains("not valid"), "{}", refused.stderr);
    // A bad body is a 400 or 422 problem, and nothing is queued.
    for (body, code) in [("{not json", 400), (r#"{"gateway_port": "six"}"#, 422)] {
        let (status, _, answer) = daemon.call("POST", &start, Some(body)).await;
        assert_eq!(status, code, "{body}: {answer}");
    }
    let history = env.run(&["--json", "history"]).await.ok();
    assert_eq!(json(&history.stdout), Value::Array(vec![]));
}

#[tokio::test]
async fn twenty_starts_through_the_api_at_once_get_forty_distinct_ports() {
    let env = Env::new("pvapi20", (29401, 29440), (29501, 29540)).await;
    let daemon = env.daemon(&[], None).await;
    let ids: Vec<String> = (0..20).map(|_| unique_id("many")).collect();
    let started = Instant::now();
    let accepted = futures::future::join_all(ids.iter().map(|id| {
        let addr = daemon.addr.clone();
        let token = daemon.token.clone();
        let path = format!("/v1/tenants/{id}/start");
        async move { api(&addr, "POST", &path, Some(&token), None).await }
    }))
    .await;
    let mut ops = Vec::new();
    for (status, _, body) in accepted {
        assert_eq!(status, 202, "{body}");
        ops.push(json(&body)["operation"].as_str().unwrap().to_owned());
    }
    let mut ports = BTreeSet::new();
    for op in &ops {
        let record = daemon.follow(op).await;
        assert_eq!(record["state"], "succeeded", "{record}");
        ports.insert(record["result"]["gateway_port"].as_u64().unwrap());
        ports.insert(record["result"]["admin_port"].as_u64().unwrap());
        // The first admin password is in the answer, once.
        assert!(record["result"]["admin_password"].is_string(), "{record}");
        let (_, _, again) = daemon
            .call("GET", &format!("/v1/operations/{op}"), None)
            .await;
        assert!(
            json(&again)["result"].get("admin_password").is_none(),
            "{again}"
        );
    }
    eprintln!(
        "20 starts through the API: {:.1} s",
        started.elapsed().as_secs_f64()
    );
    assert_eq!(ports.len(), 40, "{ports:?}");
    let destroys = futures::future::join_all(ids.iter().map(|id| {
        let addr = daemon.addr.clone();
        let token = daemon.token.clone();
        let path = format!("/v1/tenants/{id}/destroy");
        async move {
            api(
                &addr,
                "POST",
                &path,
                Some(&token),
                Some(r#"{"purge_data": true}"#),
            )
            .await
        }
    }))
    .await;
    for (status, _, body) in destroys {
        assert_eq!(status, 202, "{body}");
        let record = daemon
            .follow(json(&body)["operation"].as_str().unwrap())
            .await;
        assert_eq!(record["state"], "succeeded", "{record}");
    }
}

#[tokio::test]
async fn the_watcher_brings_back_a_container_removed_by_hand_within_15_s() {
    let mut env = Env::new("pvwatch", (29601, 29602), (29701, 29702)).await;
    let daemon = env.daemon(&[], None).await;
    env.through(&daemon);
    let id = unique_id("watch");
    let started = env.run(&["start", &id]).await.ok();
    // Through the daemon, start shows each step as it is done.
    assert!(
        started.stderr.contains("] create and start container"),
        "{}",
        started.stderr
    );
    let ingest = env.container(&id, "ingest");
    let removed = Instant::now();
    docker()
        .await
        .remove_container(
            &ingest,
            Some(bollard::query_parameters::RemoveContainerOptions {
                force: true,
                ..Default::default()
            }),
        )
        .await
        .unwrap();
    let back = healthy_within(&ingest, Duration::from_secs(15)).await;
    assert!(
        back.is_some(),
        "{ingest} was not back and healthy within 15 s of its removal: {}",
        env.daemon_log()
    );
    eprintln!(
        "removed by hand, healthy again after {:.1} s",
        removed.elapsed().as_secs_f64()
    );
    // The repair is logged, by the watcher.
    let history = env.run(&["--json", "history", &id]).await.ok();
    assert!(
        json(&history.stdout)
            .as_array()
            .unwrap()
            .iter()
            .any(|op| op["requested_by"] == "watcher" && op["state"] == "succeeded"),
        "{}",
        history.stdout
    );
    // A tenant stopped through provision stays stopped.
    env.run(&["stop", &id]).await.ok();
    let record = daemon.operation("POST", "/v1/reconcile", None).await;
    assert_eq!(record["state"], "succeeded", "{record}");
    let status = env.run(&["--json", "status", &id]).await.ok();
    assert_eq!(
        status.field("state").as_deref(),
        Some("stopped"),
        "{}",
        status.stdout
    );
    env.run(&["destroy", &id, "--yes", "--purge-data"])
        .await
        .ok();
    assert!(tenant_containers(&id).await.is_empty());
}

#[tokio::test]
async fn a_daemon_killed_during_a_start_leaves_an_interrupted_operation_that_reconcile_converges() {
    let env = Env::new("pvkill", (29801, 29803), (29901, 29903)).await;
    let id = unique_id("kill");
    // The daemon exits (as if killed) right after the fifth step of the start.
    let mut daemon = env
        .daemon(&[("PROVISION_TEST_EXIT_AFTER_STEP", "5")], None)
        .await;
    let (status, _, body) = daemon
        .call("POST", &format!("/v1/tenants/{id}/start"), None)
        .await;
    assert_eq!(status, 202, "{body}");
    let op = json(&body)["operation"].as_str().unwrap().to_owned();
    let code = tokio::time::timeout(Duration::from_secs(120), daemon.child.wait())
        .await
        .expect("the daemon exits at the fault")
        .unwrap();
    assert_eq!(code.code(), Some(86), "{}", env.daemon_log());

    let daemon = env.daemon(&[], Some(&daemon.token)).await;
    let (_, _, body) = daemon
        .call("GET", &format!("/v1/operations/{op}"), None)
        .await;
    let record = json(&body);
    assert_eq!(record["state"], "interrupted", "{body}");
    assert_eq!(
        record["progress"].as_array().map(Vec::len),
        Some(5),
        "{body}"
    );

    let reconcile = daemon.operation("POST", "/v1/reconcile", None).await;
    assert_eq!(reconcile["state"], "succeeded", "{reconcile}");
    let (_, _, body) = daemon.call("GET", &format!("/v1/tenants/{id}"), None).await;
    let tenant = json(&body);
    assert!(
        matches!(tenant["state"].as_str(), Some("running" | "starting")),
        "{body}"
    );
    // Exactly its three containers and its two ports.
    let mut containers = tenant_containers(&id).await;
    containers.sort();
    assert_eq!(
        containers,
        [
            env.container(&id, "admin"),
            env.container(&id, "ingest"),
            env.container(&id, "notifier")
        ]
    );
    let p = env.provisioner().await;
    let leases: Vec<_> = p
        .store
        .leases()
        .await
        .unwrap()
        .into_iter()
        .filter(|l| l.provider.as_str() == id)
        .collect();
    assert_eq!(leases.len(), 2, "{leases:?}");
    // Destroyed with its data, nothing of it is left: no container, port or role.
    let (_, _, body) = daemon
        .call(
            "POST",
            &format!("/v1/tenants/{id}/destroy"),
            Some(r#"{"purge_data": true}"#),
        )
        .await;
    let destroyed = daemon
        .follow(json(&body)["operation"].as_str().unwrap())
        .await;
    assert_eq!(destroyed["state"], "succeeded", "{destroyed}");
    assert!(tenant_containers(&id).await.is_empty());
    assert!(p
        .store
        .leases()
        .await
        .unwrap()
        .iter()
        .all(|l| l.provider.as_str() != id));
    let session = env.node.admin_session().await;
    let roles = session
        .query_unpaged(
            "SELECT role FROM system_auth.roles WHERE role = ?",
            (format!("tenant_{id}"),),
        )
        .await
        .unwrap()
        .into_rows_result()
        .unwrap();
    assert_eq!(roles.rows_num(), 0, "the tenant's role leaked");
}

/// A CA and a certificate it signed for `localhost` and 127.0.0.1 (openssl).
fn certificates(dir: &std::path::Path) {
    let ext = dir.join("san.ext");
    std::fs::write(&ext, "subjectAltName=DNS:localhost,IP:127.0.0.1\n").unwrap();
    let run = |args: &[&str]| {
        let out = std::process::Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .output()
            .expect("openssl runs");
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    run(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
        "-days",
        "2",
        "-subj",
        "/CN=provision test CA",
    ]);
    run(&[
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "tls.key",
        "-out",
        "tls.csr",
        "-subj",
        "/CN=localhost",
    ]);
    run(&[
        "x509",
        "-req",
        "-in",
        "tls.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "tls.crt",
        "-days",
        "2",
        "-extfile",
        "san.ext",
    ]);
}

#[tokio::test]
async fn the_tcp_listener_speaks_tls_with_the_configured_certificate() {
    let env = Env::new("pvtls", (29206, 29207), (29306, 29307)).await;
    certificates(&env.dir);
    let mut config = std::fs::read_to_string(&env.config).unwrap();
    config.push_str(&format!(
        "\n[daemon]\ntls_cert = \"{}\"\ntls_key = \"{}\"\n",
        env.dir.join("tls.crt").display(),
        env.dir.join("tls.key").display()
    ));
    std::fs::write(&env.config, config).unwrap();
    let daemon = env.daemon(&[], None).await;
    let port = daemon.addr.rsplit_once(':').unwrap().1;
    let client = |server: String, ca: Option<std::path::PathBuf>| {
        let mut cmd = env.command(&["--json", "list"]);
        cmd.env("PROVISION_SERVER", server)
            .env("PROVISION_TOKEN", &daemon.token)
            .env_remove("PROVISION_CACERT");
        if let Some(ca) = ca {
            cmd.env("PROVISION_CACERT", ca);
        }
        async move { cmd.output().await.expect("provision runs") }
    };
    let ok = client(
        format!("https://localhost:{port}"),
        Some(env.dir.join("ca.pem")),
    )
    .await;
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    assert_eq!(
        json(&String::from_utf8_lossy(&ok.stdout)),
        Value::Array(vec![])
    );
    // A certificate no root vouches for, and plain HTTP to a TLS port: the
    // daemon is not reachable (exit 14), with one line saying why.
    for (server, ca) in [
        (format!("https://localhost:{port}"), None),
        (
            format!("http://127.0.0.1:{port}"),
            Some(env.dir.join("ca.pem")),
        ),
    ] {
        let refused = client(server.clone(), ca).await;
        let stderr = String::from_utf8_lossy(&refused.stderr);
        assert_eq!(refused.status.code(), Some(14), "{server}: {stderr}");
        assert!(stderr.contains("is not reachable"), "{server}: {stderr}");
    }
}

/// Polls the daemon's status of `id` until its state is `want`.
async fn state_within(
    daemon: &provision_support::Daemon,
    id: &str,
    want: &str,
    within: Duration,
) -> Value {
    let deadline = Instant::now() + within;
    loop {
        let (_, _, body) = daemon.call("GET", &format!("/v1/tenants/{id}"), None).await;
        let tenant = json(&body);
        if tenant["state"] == want {
            return tenant;
        }
        assert!(
            Instant::now() < deadline,
            "{id} was not {want} within {within:?}: {body}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

async fn container_ids(env: &Env, id: &str) -> Vec<String> {
    let docker = docker().await;
    let mut ids = Vec::new();
    for role in ["ingest", "admin"] {
        let c = docker
            .inspect_container(&env.container(id, role), None)
            .await
            .unwrap();
        ids.push(c.id.unwrap());
    }
    ids
}

#[tokio::test]
async fn a_cassandra_that_is_down_leaves_the_tenants_running_and_degraded() {
    let scope = provision_testkit::Scope::new("pvcqldown");
    let node = provision_testkit::private_cassandra(&docker().await, &scope).await;
    let env = Env::on_node(scope, (29208, 29209), (29308, 29309), &node, "").await;
    // The engine checks health every second, so a failing check shows soon.
    env.edit_config("timeout_secs = 90", "timeout_secs = 90\ninterval_secs = 1");
    let daemon = env.daemon(&[], None).await;
    let id = unique_id("cqldown");
    env.run(&["start", &id]).await.ok();
    state_within(&daemon, &id, "running", Duration::from_secs(30)).await;
    let before = container_ids(&env, &id).await;

    docker()
        .await
        .stop_container(&node.container, None)
        .await
        .unwrap();
    state_within(&daemon, &id, "degraded", Duration::from_secs(60)).await;
    // The watcher left the tenant alone: the same containers, still running.
    assert_eq!(container_ids(&env, &id).await, before);
    assert!(provision_support::is_running(&env.container(&id, "ingest")).await);
    assert!(provision_support::is_running(&env.container(&id, "admin")).await);
    assert!(provision_support::is_running(&env.container(&id, "notifier")).await);

    docker()
        .await
        .start_container(&node.container, None)
        .await
        .unwrap();
    node.wait_for_cql(Duration::from_secs(180)).await;
    state_within(&daemon, &id, "running", Duration::from_secs(120)).await;
    assert_eq!(container_ids(&env, &id).await, before);
    env.run(&["destroy", &id, "--yes", "--purge-data"])
        .await
        .ok();
    env.scope.cleanup().await;
}
