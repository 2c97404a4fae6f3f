//! What an attacker on the host or in a tenant tried, through the real
//! `provision` binary against the real engine and Cassandra:
//! - the managed node's default superuser `cassandra`/`cassandra` is
//!   refused after a start, a provisioner restart, a node restart and a
//!   second start, and the node runs hardened;
//! - a tenant's containers cannot reach another tenant's;
//! - tenant secrets are files, not environment variables;
//! - ingest and the panel see a client's own address (no userland proxy);
//! - `status` shows OOM kills and restarts, and errors come as JSON too;
//! - the CLI validates gateway names as the panel does and never prints
//!   control characters; its revoke leaves what the panel's leaves.

mod provision_support;

use std::net::SocketAddr;
use std::process::Command;
use std::time::{Duration, Instant};

use provision_support::{Env, Gateway};
use provision_testkit::containers::{container_logs, network_ip, wait_for_exit, TestContainer};
use provision_testkit::http::{csrf_field, request};
use provision_testkit::{docker, unique_id};
use tenant_schema::cql::connect_published;

/// How a login of the default superuser ends, once the node answers.
async fn default_superuser_login(addr: SocketAddr) -> Result<(), String> {
    match tokio::time::timeout(
        Duration::from_secs(10),
        connect_published(addr, "cassandra", "cassandra"),
    )
    .await
    {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err("no answer within 10 s".into()),
    }
}

fn is_auth_refusal(why: &str) -> bool {
    let why = why.to_lowercase();
    why.contains("authentication") || why.contains("incorrect") || why.contains("credentials")
}

/// Waits (the node may be restarting) until the node answers a login of
/// `cassandra`/`cassandra`, and asserts that the answer is a refusal.
async fn assert_default_superuser_refused(addr: SocketAddr, when: &str) {
    let deadline = Instant::now() + Duration::from_secs(180);
    loop {
        match default_superuser_login(addr).await {
            Ok(()) => panic!("{when}: cassandra/cassandra logged in on the managed node"),
            Err(why) if is_auth_refusal(&why) => return,
            Err(why) => assert!(
                Instant::now() < deadline,
                "{when}: the managed node did not answer within 180 s: {why}"
            ),
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

#[tokio::test]
async fn the_managed_default_superuser_stays_refused_and_the_node_runs_hardened() {
    let env = Env::managed("pvsuper", (27401, 27409), (27501, 27509)).await;
    let config = std::fs::read_to_string(&env.config).unwrap();
    let port: u16 = config
        .lines()
        .find_map(|l| l.strip_prefix("host_port = "))
        .and_then(|p| p.trim().parse().ok())
        .expect("the managed config names its host port");
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let node = format!("{}-cassandra", env.prefix);
    let id = unique_id("sup");

    env.run(&["--json", "start", &id]).await.ok();
    assert_default_superuser_refused(addr, "after the first start").await;

    // A new provisioner process, which finds everything in place.
    env.run(&["--json", "status", &id]).await.ok();
    let plan = env.run(&["plan", &id]).await.ok();
    assert!(!plan.stdout.contains("retire"), "{}", plan.stdout);
    assert_default_superuser_refused(addr, "after the provisioner restarted").await;

    // The node restarts with the same volume.
    docker()
        .await
        .restart_container(&node, None)
        .await
        .expect("restart the managed node");
    assert_default_superuser_refused(addr, "after the node restarted").await;

    env.run(&["--json", "start", &id]).await.ok();
    assert_default_superuser_refused(addr, "after a second start").await;

    // The node's hardening, and a health check that passes.
    let inspect = docker()
        .await
        .inspect_container(&node, None)
        .await
        .expect("inspect the managed node");
    let host = inspect.host_config.clone().expect("a host config");
    assert_eq!(host.cap_drop, Some(vec!["ALL".to_owned()]));
    assert_eq!(host.readonly_rootfs, Some(true));
    assert_eq!(host.memory, Some(1536 * 1024 * 1024));
    assert!(host.pids_limit.unwrap_or(0) > 0, "{:?}", host.pids_limit);
    assert!(
        host.security_opt
            .unwrap_or_default()
            .iter()
            .any(|o| o.starts_with("no-new-privileges")),
        "no-new-privileges"
    );
    provision_testkit::containers::wait_healthy(&docker().await, &node, Duration::from_secs(60))
        .await
        .expect("the managed node reports healthy");

    env.run(&["destroy", &id, "--yes", "--purge-data"])
        .await
        .ok();
    env.scope.cleanup().await;
}

#[tokio::test]
async fn a_tenants_containers_cannot_reach_another_tenants_and_hold_no_secrets_in_their_environment(
) {
    let env = Env::new("pviso", (27601, 27609), (27701, 27709)).await;
    let (a, b) = (unique_id("isoa"), unique_id("isob"));
    env.run(&["--json", "start", &a]).await.ok();
    env.run(&["--json", "start", &b]).await.ok();
    let engine = docker().await;
    let ip = |tenant: &str, role: &str| {
        let name = env.container(tenant, role);
        let engine = engine.clone();
        async move {
            network_ip(&engine, &name)
                .await
                .unwrap_or_else(|| panic!("{name} has an address"))
        }
    };
    let targets = [
        ("own ingest", ip(&a, "ingest").await, 6000),
        ("other ingest", ip(&b, "ingest").await, 6000),
        ("other admin", ip(&b, "admin").await, 8080),
    ];
    let script: String = targets
        .iter()
        .map(|(what, ip, port)| {
            format!(
                "if timeout 3 bash -c 'exec 3<>/dev/tcp/{ip}/{port}' 2>/dev/null; \
                 then echo '{what}: open'; else echo '{what}: closed'; fi; "
            )
        })
        .collect();
    let probe = TestContainer::scoped(&env.scope, "probe", "provision/jre17-base:bookworm")
        .on_network(&format!("{}-{a}", config_network(&env)))
        .cmd(vec!["bash".into(), "-c".into(), script]);
    let name = probe.start(&engine).await.expect("start the probe");
    wait_for_exit(&engine, &name, Duration::from_secs(30)).await;
    let out = container_logs(&engine, &name).await.unwrap().concat();
    assert!(out.contains("own ingest: open"), "{out}");
    assert!(out.contains("other ingest: closed"), "{out}");
    assert!(out.contains("other admin: closed"), "{out}");

    // The secrets are files in a read-only mount, not in the environment.
    let record = env
        .provisioner()
        .await
        .store
        .tenant(&provisioner::ProviderId::parse(&a).unwrap())
        .await
        .unwrap()
        .expect("a is known");
    for role in ["ingest", "admin", "notifier"] {
        let inspect = engine
            .inspect_container(&env.container(&a, role), None)
            .await
            .unwrap();
        let text = serde_json::to_string(&inspect).unwrap();
        assert!(
            !text.contains(&record.cassandra_password),
            "{role}: password shown"
        );
        assert!(
            !text.contains(&record.session_secret),
            "{role}: session secret shown"
        );
        let binds = inspect
            .host_config
            .and_then(|h| h.binds)
            .unwrap_or_default();
        assert!(
            binds.iter().any(|b| b.ends_with(":/run/secrets:ro")),
            "{role}: {binds:?}"
        );
    }

    env.run(&["destroy", &a, "--yes", "--purge-data"])
        .await
        .ok();
    env.run(&["destroy", &b, "--yes", "--purge-data"])
        .await
        .ok();
    let gone = engine
        .inspect_network(&format!("{}-{a}", config_network(&env)), None)
        .await;
    assert!(gone.is_err(), "destroy removes the tenant network");
    env.scope.cleanup().await;
}

/// The `[docker].network` of an environment's config.
fn config_network(env: &Env) -> String {
    let config = std::fs::read_to_string(&env.config).unwrap();
    config
        .lines()
        .find_map(|l| l.strip_prefix("network = \""))
        .map(|n| n.trim_end_matches('"').to_owned())
        .expect("the config names its network")
}

#[tokio::test]
async fn status_shows_oom_kills_and_restarts_and_errors_come_as_json() {
    // 6 MiB (the engine's minimum) holds an idle panel, not one argon2
    // verification (7 MiB and more): a login kills the panel for memory.
    let env = Env::with_extra(
        "pvoom",
        (27801, 27809),
        (27901, 27909),
        "[limits]\nmemory_mb = 6\n",
    )
    .await;
    let id = unique_id("oom");
    let started = env.run(&["--json", "start", &id]).await.ok();
    let admin = format!("127.0.0.1:{}", started.port("admin_port"));
    let form = request(&admin, "GET", "/login", &[], None)
        .await
        .expect("the login page answers");
    let body = format!(
        "username=admin&password=wrong&csrf={}",
        csrf_field(&form.body)
    );
    // The answer, if any, does not matter: the process dies computing it.
    let _ = request(&admin, "POST", "/login", &form.cookies(), Some(&body)).await;
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let status = env.run(&["--json", "status", &id]).await.ok();
        let json: serde_json::Value = serde_json::from_str(&status.stdout).unwrap();
        let containers = json["containers"].as_array().cloned().unwrap_or_default();
        let killed = containers.iter().any(|c| {
            c["role"] == "admin"
                && c["oom_killed"] == true
                && c["restart_count"].as_i64().unwrap_or(0) > 0
        });
        if killed {
            break;
        }
        assert!(Instant::now() < deadline, "no OOM kill reported: {json}");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let text = env.run(&["status", &id]).await.ok();
    assert!(text.stdout.contains("oom-killed"), "{}", text.stdout);

    let unknown = env.run(&["--json", "status", "nobody_here"]).await;
    assert_eq!(unknown.code, 8);
    let json: serde_json::Value = serde_json::from_str(&unknown.stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {:?}", unknown.stdout));
    assert_eq!(json["error"]["kind"], "unknown_provider");
    assert_eq!(json["error"]["exit_code"], 8);
    assert!(json["error"]["message"]
        .as_str()
        .unwrap()
        .contains("nobody_here"));

    env.run(&["destroy", &id, "--yes", "--purge-data"])
        .await
        .ok();
    env.scope.cleanup().await;
}

#[tokio::test]
async fn the_cli_validates_names_like_the_panel_prints_no_control_characters_and_revokes_like_the_panel(
) {
    let env = Env::new("pvnames", (28001, 28009), (28101, 28109)).await;
    let id = unique_id("names");
    env.run(&["--json", "start", &id]).await.ok();

    let escape = env
        .run(&["gateway", "add", &id, "gw-1", "--name", "x\u{1b}[2J\u{7}"])
        .await;
    assert_eq!(escape.code, 2, "{}", escape.stderr);
    assert!(
        escape.stderr.contains("control characters"),
        "{}",
        escape.stderr
    );
    let long = "n".repeat(5000);
    let long = env
        .run(&["gateway", "add", &id, "gw-1", "--name", &long])
        .await;
    assert_eq!(long.code, 2, "{}", long.stderr);
    assert!(long.stderr.contains("at most 100"), "{}", long.stderr);

    let first = env
        .run(&["--json", "gateway", "add", &id, "gw-1"])
        .await
        .ok();
    let token = first.field("token").expect("a token");
    let again = env.run(&["gateway", "add", &id, "gw-1"]).await;
    assert_eq!(
        again.code, 12,
        "a live gateway is not commissioned twice (a conflict): {}",
        again.stderr
    );

    // A name written by another client, with escapes in it.
    let session = env.node.admin_session().await;
    session
        .query_unpaged(
            format!(
                "INSERT INTO tenant_{id}.gateways (gateway_id, display_name) VALUES ('gw-2', ?)"
            ),
            ("evil\u{1b}]0;pwned\u{7}",),
        )
        .await
        .unwrap();
    let list = env.run(&["gateway", "list", &id]).await.ok();
    assert!(
        !list.stdout.chars().any(|c| c.is_control() && c != '\n'),
        "{:?}",
        list.stdout
    );
    assert!(
        list.stdout.contains("evil\u{fffd}]0;pwned\u{fffd}"),
        "{}",
        list.stdout
    );

    // Revoking deletes the hash (as the panel does), and ends the stream.
    let gateway_port = first_port(&env, &id).await;
    let mut gw = Gateway::connect(gateway_port, "gw-1", &token).await;
    env.run(&["gateway", "revoke", &id, "gw-1"]).await.ok();
    let row = session
        .query_unpaged(
            format!(
                "SELECT token_hash, revoked_at FROM tenant_{id}.gateways WHERE gateway_id = 'gw-1'"
            ),
            (),
        )
        .await
        .unwrap()
        .into_rows_result()
        .unwrap()
        .first_row::<(Option<String>, Option<chrono::DateTime<chrono::Utc>>)>()
        .unwrap();
    assert_eq!(row.0, None, "the token hash is deleted");
    assert!(row.1.is_some(), "revoked_at is set");
    let closed = tokio::time::timeout(Duration::from_secs(10), gw.read_element())
        .await
        .expect("ingest closes a revoked gateway's connection within 10 s");
    assert!(closed.contains(r#"code="auth""#), "{closed}");
    // ... and a revoked gateway can be commissioned again, with a new token.
    let renewed = env
        .run(&["--json", "gateway", "add", &id, "gw-1"])
        .await
        .ok();
    assert_ne!(renewed.field("token"), Some(token));
    let unknown = env.run(&["gateway", "revoke", &id, "gw-404"]).await;
    assert_eq!(unknown.code, 8, "{}", unknown.stderr);

    env.run(&["destroy", &id, "--yes", "--purge-data"])
        .await
        .ok();
    env.scope.cleanup().await;
}

async fn first_port(env: &Env, id: &str) -> u16 {
    env.run(&["--json", "status", id])
        .await
        .ok()
        .port("gateway_port")
}

/// A network namespace of the test's own with a veth pair to the host:
/// the host side is `10.77.<n>.1`, the namespace side `10.77.<n>.11`.
struct Namespace {
    name: String,
    host_ip: String,
    client_ip: String,
}

fn ip(args: &[&str]) {
    let out = Command::new("ip").args(args).output().expect("ip runs");
    assert!(
        out.status.success(),
        "ip {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
}

impl Namespace {
    fn create() -> Namespace {
        let n = 1 + (std::process::id() % 250);
        let name = format!("pvns{n}");
        let (host_if, ns_if) = (format!("pvh{n}"), format!("pvn{n}"));
        let _ = Command::new("ip").args(["netns", "del", &name]).output();
        ip(&["netns", "add", &name]);
        ip(&[
            "link", "add", &host_if, "type", "veth", "peer", "name", &ns_if,
        ]);
        ip(&["link", "set", &ns_if, "netns", &name]);
        let host_ip = format!("10.77.{n}.1");
        let client_ip = format!("10.77.{n}.11");
        ip(&["addr", "add", &format!("{host_ip}/24"), "dev", &host_if]);
        ip(&["link", "set", &host_if, "up"]);
        let inside = |args: &[&str]| {
            let mut all = vec!["netns", "exec", &name, "ip"];
            all.extend_from_slice(args);
            ip(&all);
        };
        inside(&["addr", "add", &format!("{client_ip}/24"), "dev", &ns_if]);
        inside(&["link", "set", &ns_if, "up"]);
        inside(&["link", "set", "lo", "up"]);
        Namespace {
            name,
            host_ip,
            client_ip,
        }
    }

    /// Runs `program args` inside the namespace; returns its stdout.
    fn run(&self, program: &str, args: &[&str]) -> String {
        let out = Command::new("ip")
            .args(["netns", "exec", &self.name, program])
            .args(args)
            .output()
            .expect("ip netns exec runs");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

impl Drop for Namespace {
    fn drop(&mut self) {
        // Deleting the namespace deletes the veth pair with it.
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .output();
    }
}

#[tokio::test]
async fn ingest_and_the_panel_see_a_clients_own_address() {
    let env = Env::new("pvaddr", (28201, 28209), (28301, 28309)).await;
    let id = unique_id("addr");
    let started = env.run(&["--json", "start", &id]).await.ok();
    let (gateway_port, admin_port) = (started.port("gateway_port"), started.port("admin_port"));
    let token = env
        .run(&["--json", "gateway", "add", &id, "gw-ns"])
        .await
        .ok()
        .field("token")
        .unwrap();
    let ns = Namespace::create();

    // A gateway in the namespace says hello.
    let hello = format!(
        r#"exec 3<>/dev/tcp/{}/{gateway_port}; printf '%s' '<hello gateway="gw-ns" token="{token}"/>' >&3; timeout 5 head -c 10 <&3"#,
        ns.host_ip
    );
    let answer = ns.run("bash", &["-c", &hello]);
    assert!(answer.starts_with("<welcome"), "hello answered {answer:?}");

    // A wrong password from the namespace, with a login form fetched on
    // loopback (the form's token is not bound to an address).
    let form = request(
        &format!("127.0.0.1:{admin_port}"),
        "GET",
        "/login",
        &[],
        None,
    )
    .await
    .expect("the login page answers on loopback");
    let nonce = form.cookies().into_iter().next().expect("a login cookie");
    let body = format!(
        "username=admin&password=wrong&csrf={}",
        csrf_field(&form.body)
    );
    let url = format!("http://{}:{admin_port}/login", ns.host_ip);
    let code = ns.run(
        "curl",
        &[
            "-s",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            "-b",
            &nonce,
            "--data",
            &body,
            &url,
        ],
    );
    assert_eq!(code, "401", "a wrong password from the namespace");

    let engine = docker().await;
    for role in ["ingest", "admin"] {
        let name = env.container(&id, role);
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let logs = container_logs(&engine, &name).await.unwrap().concat();
            if logs.contains(&ns.client_ip) {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "{role} never logged the client address {}:\n{logs}",
                ns.client_ip
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    env.run(&["destroy", &id, "--yes", "--purge-data"])
        .await
        .ok();
    env.scope.cleanup().await;
}
