//! The front on the real engine (`[front] enabled = true`): the real
//! `provision` binary starts tenants behind a real HAProxy container that
//! owns their ports, and `provision upgrade` switches their apps behind it.
//!
//! - gateways stream to 3 tenants and a reader asks one panel over and
//!   over while `upgrade --all` switches every app to new images: every
//!   acked reading is in Cassandra, no connection attempt is refused, each
//!   gateway is acked again within 5 s, and the reader sees no failure;
//! - an upgrade to an image that never gets healthy rolls back, and the
//!   tenant keeps serving on its old app, its open connection included;
//! - starting and destroying another tenant (each a reload of the front)
//!   closes no connection of a tenant already there;
//! - a stopped tenant keeps its ports bound, pointed at nothing, and a
//!   start serves them again;
//! - ingest sees the gateway's own address through the front, and refuses
//!   a PROXY header from anyone but the front.

mod provision_support;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use gateway_sim::resilient::{self, Progress, ResilientConfig};
use provision_support::{Env, Gateway};
use provision_testkit::apps::eventually;
use provision_testkit::containers::{container_logs, ingest_image};
use provision_testkit::faults::missing_acked;
use provision_testkit::http::request;
use provision_testkit::{docker, unique_id, SCOPE_LABEL};

/// An environment whose tenants live behind a front of their own (its
/// container named after the scope, binding only this test's ports).
async fn front_env(name: &str, gateway: (u16, u16), admin: (u16, u16)) -> Env {
    let env = Env::new(name, gateway, admin).await;
    let front = format!("{}-front", env.prefix);
    std::fs::write(
        &env.config,
        std::fs::read_to_string(&env.config).unwrap()
            + &format!("\n[front]\nenabled = true\ncontainer = \"{front}\"\n"),
    )
    .unwrap();
    env
}

/// Builds `<repository of image>:<tag>` from `image` with one more label,
/// so that it is another image (another id) that runs the same binary;
/// `entrypoint` replaces the binary's command (a broken build).
fn build_variant(image: &str, tag: &str, entrypoint: Option<&str>) -> String {
    let name = tag_of(image, tag);
    let mut dockerfile = format!("FROM {image}\nLABEL io.provision.test.variant=\"{tag}\"\n");
    if let Some(entrypoint) = entrypoint {
        dockerfile.push_str(&format!("ENTRYPOINT {entrypoint}\n"));
    }
    let mut child = std::process::Command::new("docker")
        .args(["build", "-q", "-t", &name, "-"])
        .env("DOCKER_BUILDKIT", "0")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("docker build runs");
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(dockerfile.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "docker build {name}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    name
}

/// `image` (`repository:tag`) under another tag.
fn tag_of(image: &str, tag: &str) -> String {
    let repository = image.rsplit_once(':').map_or(image, |(r, _)| r);
    format!("{repository}:{tag}")
}

/// Every tenant image as a variant under `tag`.
fn build_tag(tag: &str) {
    for image in [
        ingest_image(),
        provision_testkit::containers::admin_image(),
        provision_testkit::containers::notifier_image(),
    ] {
        build_variant(&image, tag, None);
    }
}

async fn image_of(container: &str) -> String {
    docker()
        .await
        .inspect_container(container, None)
        .await
        .unwrap()
        .config
        .and_then(|c| c.image)
        .unwrap_or_default()
}

/// A reading's time: now, in protocol form.
fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// A tenant started behind the front with one gateway commissioned: its
/// id, gateway port and the gateway's token.
struct Started {
    id: String,
    port: u16,
    token: String,
}

impl Started {
    async fn new(env: &Env, prefix: &str) -> Started {
        let id = unique_id(prefix);
        let port = env
            .run(&["--json", "start", &id])
            .await
            .ok()
            .port("gateway_port");
        let token = add_gateway(env, &id, "gw-1").await;
        Started { id, port, token }
    }

    /// Its gateway, connected, with one reading acked.
    async fn streaming(&self) -> Gateway {
        let mut gateway = Gateway::connect(self.port, "gw-1", &self.token).await;
        gateway.reading(1, &now(), "power", "p", 1.0).await;
        gateway
    }
}

async fn add_gateway(env: &Env, tenant: &str, gateway: &str) -> String {
    env.run(&["--json", "gateway", "add", tenant, gateway])
        .await
        .ok()
        .field("token")
        .expect("a token")
}

/// Asks `GET /login` on `addr` until `stop`, each request on a new
/// connection (as `curl` in a loop): how many, and the failures.
async fn read_panel(addr: String, stop: Arc<AtomicBool>) -> (u64, Vec<String>) {
    let mut failures = Vec::new();
    let done = AtomicU64::new(0);
    while !stop.load(Ordering::Relaxed) {
        match request(&addr, "GET", "/login", &[], None).await {
            Ok(answer) if answer.status == 200 => {}
            Ok(answer) => failures.push(format!("status {}", answer.status)),
            Err(e) => failures.push(e.to_string()),
        }
        done.fetch_add(1, Ordering::Relaxed);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    (done.load(Ordering::Relaxed), failures)
}

#[tokio::test]
async fn gateways_and_a_reader_see_no_failure_while_upgrade_all_switches_three_tenants() {
    let env = front_env("pvfrontup", (29201, 29209), (29301, 29309)).await;
    let rate = 5.0;
    let mut tenants = Vec::new();
    let mut streams = Vec::new();
    for t in 0..3 {
        let id = unique_id(&format!("fup{t}"));
        let run = env.run(&["--json", "start", &id]).await.ok();
        let port = run.port("gateway_port");
        let admin = run.port("admin_port");
        let gateways = vec![
            ("gw-a".to_owned(), add_gateway(&env, &id, "gw-a").await),
            ("gw-b".to_owned(), add_gateway(&env, &id, "gw-b").await),
        ];
        let progress = Progress::new(gateways.len());
        let mut cfg = ResilientConfig::new(
            &format!("127.0.0.1:{port}"),
            gateways,
            rate,
            Duration::from_secs(3600),
        );
        cfg.max_backoff = Duration::from_secs(1);
        cfg.check().unwrap();
        streams.push(tokio::spawn(resilient::run(cfg, progress.clone())));
        tenants.push((id, admin, progress));
    }
    // Every gateway streams through the front before the upgrade.
    let streaming = Instant::now();
    eventually(
        Duration::from_secs(60),
        "every gateway is acked through the front",
        || {
            tenants
                .iter()
                .all(|(_, _, p)| p.all_acked_since(0..2, streaming))
        },
    )
    .await;
    let stop_reading = Arc::new(AtomicBool::new(false));
    let reader = tokio::spawn(read_panel(
        format!("127.0.0.1:{}", tenants[0].1),
        stop_reading.clone(),
    ));
    let before: Vec<String> = futures::future::join_all(
        tenants
            .iter()
            .map(|(id, _, _)| image_of_owned(env.container(id, "ingest"))),
    )
    .await;

    build_tag("front-next");
    let upgrade = env
        .run(&[
            "--json",
            "upgrade",
            "--all",
            "--image-tag",
            "front-next",
            "--parallelism",
            "2",
        ])
        .await
        .ok();
    eprintln!("{}", upgrade.stdout);
    // A few seconds on the new apps, then the readings' end.
    let upgraded = Instant::now();
    eventually(
        Duration::from_secs(30),
        "every gateway is acked on the new apps",
        || {
            tenants
                .iter()
                .all(|(_, _, p)| p.all_acked_since(0..2, upgraded))
        },
    )
    .await;
    stop_reading.store(true, Ordering::Relaxed);
    let (reads, failures) = reader.await.unwrap();
    for (_, _, progress) in &tenants {
        progress.stop_making();
    }
    let mut reports = Vec::new();
    for stream in streams {
        reports.push(stream.await.unwrap());
    }

    let next = docker()
        .await
        .inspect_image(&tag_of(&ingest_image(), "front-next"))
        .await
        .unwrap()
        .id
        .unwrap();
    for ((id, _, _), old) in tenants.iter().zip(&before) {
        let now = image_of(&env.container(id, "ingest")).await;
        assert_ne!(&now, old, "{id}'s ingest was not replaced");
        assert_eq!(now, next, "{id}'s ingest runs the new build");
        assert!(
            upgrade.stdout.contains(&format!("\"provider\": \"{id}\"")),
            "{}",
            upgrade.stdout
        );
    }
    assert!(reads > 50, "the reader asked only {reads} times");
    assert!(
        failures.is_empty(),
        "{} of {reads} panel requests failed: {failures:?}",
        failures.len()
    );
    let provisioner = env.provisioner().await;
    let session = provisioner::cql::session::admin_session(&provisioner.config, &provisioner.store)
        .await
        .unwrap();
    for ((id, _, _), report) in tenants.iter().zip(&reports) {
        eprintln!("{id}:\n{}", report.render());
        let keyspace = provisioner::ProviderId::parse(id).unwrap().keyspace();
        let lost = missing_acked(&session, &keyspace, &report.acks)
            .await
            .unwrap();
        assert!(lost.is_empty(), "{id}: {} acked readings lost", lost.len());
        assert_eq!(report.unacked(), 0, "{id}: readings left unacked");
        let breaks: BTreeMap<&String, &u32> =
            report.gateways.iter().flat_map(|g| &g.breaks).collect();
        assert!(
            !breaks.keys().any(|b| b.starts_with("connect")),
            "{id}: a connection attempt failed: {breaks:?}"
        );
        for gateway in &report.gateways {
            let acks: Vec<_> = report
                .acks
                .iter()
                .filter(|a| a.gateway == gateway.gateway)
                .collect();
            let longest = acks
                .windows(2)
                .map(|w| w[1].at - w[0].at)
                .max()
                .unwrap_or_default();
            assert!(
                longest <= chrono::Duration::seconds(5),
                "{id}/{}: {longest} without an ack",
                gateway.gateway
            );
        }
    }
}

async fn image_of_owned(container: String) -> String {
    image_of(&container).await
}

#[tokio::test]
async fn an_upgrade_to_an_image_that_never_gets_healthy_rolls_back_and_the_old_app_serves_on() {
    let env = front_env("pvfrontrb", (29211, 29219), (29311, 29319)).await;
    env.edit_config("timeout_secs = 90", "timeout_secs = 15");
    let tenant = Started::new(&env, "frb").await;
    let (id, port, token) = (&tenant.id, tenant.port, &tenant.token);
    let mut open = tenant.streaming().await;
    let ingest = env.container(id, "ingest");
    let before = image_of(&ingest).await;

    // The broken build runs its health check instead of the server.
    build_tag("front-broken");
    build_variant(
        &ingest_image(),
        "front-broken",
        Some(r#"["/ingest", "healthcheck"]"#),
    );
    let run = env
        .run(&["upgrade", id, "--image-tag", "front-broken"])
        .await;
    assert_eq!(run.code, 19, "{}\n{}", run.stdout, run.stderr);
    assert!(run.stdout.contains("rolled back"), "{}", run.stdout);
    assert!(
        run.stderr.contains("keeps running on the old container"),
        "{}",
        run.stderr
    );
    assert_eq!(image_of(&ingest).await, before, "the old ingest serves on");
    assert!(
        docker()
            .await
            .inspect_container(&format!("{ingest}-next"), None)
            .await
            .is_err(),
        "the new copy is removed"
    );
    // The connection opened before the upgrade still gets acks, and a
    // new one is welcomed by the old app.
    open.reading(2, &now(), "power", "p", 2.0).await;
    Gateway::connect(port, "gw-1", token).await;
    // The tenant keeps its tag: a reconcile changes nothing.
    let reconcile = env.run(&["reconcile"]).await.ok();
    assert!(
        reconcile.stdout.contains("nothing to do"),
        "{}",
        reconcile.stdout
    );
}

/// The targets the front was last given for `tenant`'s routes
/// (`<data dir>/front/routes.json`).
fn front_targets(env: &Env, tenant: &str) -> Vec<serde_json::Value> {
    let text = std::fs::read_to_string(env.dir.join("front/routes.json")).unwrap();
    let routes: Vec<serde_json::Value> = serde_json::from_str(&text).unwrap();
    routes
        .into_iter()
        .filter(|r| r["tenant"] == tenant)
        .map(|r| r["target"].clone())
        .collect()
}

/// A stopped tenant's ports stay bound behind the front, pointed at
/// nothing (not at the address its container had); a start points them
/// at the new containers and a gateway is acked again on the same port.
#[tokio::test]
async fn a_stopped_tenant_keeps_its_ports_behind_the_front_and_a_start_serves_them_again() {
    let env = front_env("pvfrontstop", (29261, 29269), (29361, 29369)).await;
    let tenant = Started::new(&env, "fstop").await;
    drop(tenant.streaming().await);
    assert!(front_targets(&env, &tenant.id)
        .iter()
        .all(|t| t.is_string()));
    env.run(&["stop", &tenant.id]).await.ok();
    let targets = front_targets(&env, &tenant.id);
    assert_eq!(targets.len(), 2, "{targets:?}");
    assert!(targets.iter().all(|t| t.is_null()), "{targets:?}");
    assert!(
        tokio::net::TcpStream::connect(("127.0.0.1", tenant.port))
            .await
            .is_ok(),
        "the stopped tenant's port stays bound"
    );
    env.run(&["start", &tenant.id]).await.ok();
    assert!(front_targets(&env, &tenant.id)
        .iter()
        .all(|t| t.is_string()));
    let mut again = Gateway::connect(tenant.port, "gw-1", &tenant.token).await;
    again.reading(2, &now(), "power", "p", 2.0).await;
}

#[tokio::test]
async fn starting_and_destroying_another_tenant_closes_no_connection_of_this_one() {
    let env = front_env("pvfrontadd", (29221, 29229), (29321, 29329)).await;
    let tenant = Started::new(&env, "fstay").await;
    let mut open = tenant.streaming().await;
    let other = Started::new(&env, "fnew").await;
    other.streaming().await;
    let (other, other_port) = (&other.id, other.port);
    open.reading(2, &now(), "power", "p", 2.0).await;
    env.run(&["destroy", other, "--yes"]).await.ok();
    assert!(
        tokio::net::TcpStream::connect(("127.0.0.1", other_port))
            .await
            .is_err(),
        "the destroyed tenant's port is closed"
    );
    open.reading(3, &now(), "power", "p", 3.0).await;
}

#[tokio::test]
async fn ingest_sees_the_gateway_s_own_address_through_the_front() {
    let env = front_env("pvfrontaddr", (29231, 29239), (29331, 29339)).await;
    let tenant = Started::new(&env, "faddr").await;
    let (id, port, token) = (&tenant.id, tenant.port, &tenant.token);
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind("127.0.0.9:0".parse().unwrap()).unwrap();
    let stream = socket
        .connect(format!("127.0.0.1:{port}").parse().unwrap())
        .await
        .unwrap();
    let mut gateway = Gateway::over(stream, "gw-1", token).await.unwrap();
    gateway.reading(1, &now(), "power", "p", 1.0).await;
    let ingest = env.container(id, "ingest");
    let logs = container_logs(&docker().await, &ingest).await.unwrap();
    assert!(
        logs.iter()
            .any(|l| l.contains("gateway connected") && l.contains("127.0.0.9")),
        "ingest does not name 127.0.0.9: {logs:#?}"
    );

    // Another container on the tenant's network sends a PROXY header
    // straight to ingest: it is not the front, so it is refused.
    let networks = docker()
        .await
        .inspect_container(&ingest, None)
        .await
        .unwrap()
        .network_settings
        .and_then(|n| n.networks)
        .unwrap_or_default();
    let (network, endpoint) = networks.into_iter().next().expect("ingest's network");
    let ip = endpoint.ip_address.expect("ingest's address");
    let header =
        r"\r\n\r\n\x00\r\nQUIT\n\x21\x11\x00\x0c\x7f\x00\x00\x01\x7f\x00\x00\x02\x30\x39\x17\x70";
    let script =
        format!("exec 3<>/dev/tcp/{ip}/6000; printf '{header}' >&3; timeout 5 cat <&3; true");
    let out = std::process::Command::new("docker")
        .args(["run", "--rm", "--network", &network])
        .args(["--label", &format!("{SCOPE_LABEL}={}", env.scope.id)])
        .args(["provision/jre17-base:bookworm", "bash", "-c", &script])
        .output()
        .unwrap();
    let answer = String::from_utf8_lossy(&out.stdout);
    assert!(
        answer.contains(r#"<error code="protocol">PROXY header from an untrusted address</error>"#),
        "a PROXY header from {network} answered {answer:?} ({})",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test]
async fn a_changed_limit_is_applied_by_a_switch_that_only_asks_gateways_to_reconnect() {
    let env = front_env("pvfrontlim", (29241, 29249), (29341, 29349)).await;
    let tenant = Started::new(&env, "flim").await;
    let (id, port, token) = (&tenant.id, tenant.port, &tenant.token);
    let mut open = tenant.streaming().await;
    let run = env
        .run(&["--json", "start", id, "--max-readings-per-sec", "500"])
        .await
        .ok();
    assert!(
        run.stdout
            .contains("then drain the old one (configuration changed)"),
        "{}",
        run.stdout
    );
    // The old ingest drained: it told the open connection to come back.
    let told = open.read_element().await;
    assert!(told.starts_with(r#"<error code="shutdown">"#), "{told}");
    let mut again = Gateway::connect(port, "gw-1", token).await;
    again.reading(2, &now(), "power", "p", 2.0).await;
    let ingest = env.container(id, "ingest");
    let env_vars = docker()
        .await
        .inspect_container(&ingest, None)
        .await
        .unwrap()
        .config
        .and_then(|c| c.env)
        .unwrap_or_default();
    assert!(
        env_vars.contains(&"INGEST_MAX_READINGS_PER_SEC=500".to_owned()),
        "{env_vars:?}"
    );
}

#[tokio::test]
async fn through_provisiond_an_upgrade_is_an_operation_like_the_others() {
    let mut env = front_env("pvfrontd", (29251, 29259), (29351, 29359)).await;
    let daemon = env.daemon(&[], None).await;
    env.through(&daemon);
    let tenant = Started::new(&env, "fdaemon").await;
    let mut open = tenant.streaming().await;
    build_tag("front-next");
    let run = env
        .run(&["--json", "upgrade", &tenant.id, "--image-tag", "front-next"])
        .await
        .ok();
    assert!(
        run.stdout.contains("\"result\": \"upgraded\""),
        "{}",
        run.stdout
    );
    let told = open.read_element().await;
    assert!(told.starts_with(r#"<error code="shutdown">"#), "{told}");
    Gateway::connect(tenant.port, "gw-1", &tenant.token).await;
    let history = env.run(&["--json", "history", &tenant.id]).await.ok();
    assert!(
        history.stdout.contains(&format!(
            "\"request\": \"upgrade {} --image-tag front-next\"",
            tenant.id
        )),
        "{}",
        history.stdout
    );
    assert!(
        history.stdout.contains("\"state\": \"succeeded\""),
        "{}",
        history.stdout
    );
    // The same through the daemon: an unknown tenant is its 404, exit 8.
    let unknown = env.run(&["upgrade", "nosuch_tenant"]).await;
    assert_eq!(unknown.code, 8, "{}", unknown.stderr);
}
