//! The whole life cycle of a tenant through the real `provision` binary,
//! against the real Docker engine and the harness's Cassandra node: start,
//! gateway readings through the leased port, the admin panel, stop/start,
//! destroy, purge — once locally and once with the CLI as the client of
//! `provisiond` over TCP with a token, with the same assertions; reconcile
//! after a container is removed by hand; the note on a managed
//! Cassandra built from an older image; and `[health] checks =
//! "provisioner"`.

mod provision_support;

use provision_support::{is_running, tenant_containers, Env, Gateway};
use provision_testkit::containers::ingest_image;
use provision_testkit::http::{admin_login, request};
use provision_testkit::{docker, unique_id, CASSANDRA_CONTAINER};

async fn keyspace_exists(env: &Env, keyspace: &str) -> bool {
    let session = env.node.admin_session().await;
    let rows = session
        .query_unpaged(
            "SELECT keyspace_name FROM system_schema.keyspaces WHERE keyspace_name = ?",
            (keyspace,),
        )
        .await
        .unwrap()
        .into_rows_result()
        .unwrap();
    rows.rows_num() > 0
}

/// Every running container of `id` shows its memory under its limit, as
/// the engine's own stats count it (usage less the inactive page cache,
/// within 4 MiB: the two are read a moment apart), and a CPU figure.
async fn assert_usage_is_the_engines(env: &Env, id: &str) {
    let run = env.run(&["--json", "status", id]).await.ok();
    let status: serde_json::Value = serde_json::from_str(&run.stdout).expect("JSON");
    let containers = status["containers"].as_array().expect("containers");
    assert_eq!(containers.len(), 3, "{status}");
    let docker = docker().await;
    for c in containers {
        let name = c["name"].as_str().unwrap();
        let memory = c["memory_bytes"].as_u64().unwrap_or(0);
        let limit = c["memory_limit_bytes"].as_u64().unwrap_or(0);
        assert!(c["cpu_percent"].as_f64().is_some_and(|p| p >= 0.0), "{c}");
        // on an engine that runs no health checks (Podman without systemd)
        // too: the provisioner's own probe
        assert_eq!(c["health"], "healthy", "{c}");
        assert!(memory > 0 && memory < limit, "{c}");
        let options = bollard::query_parameters::StatsOptions {
            stream: false,
            one_shot: false,
        };
        let sample = futures::StreamExt::next(&mut docker.stats(name, Some(options)))
            .await
            .expect("a sample")
            .expect("stats");
        let mem = sample.memory_stats.expect("memory stats");
        let cache = mem
            .stats
            .as_ref()
            .and_then(|s| s.get("total_inactive_file").copied())
            .unwrap_or(0);
        let engine = mem.usage.unwrap().saturating_sub(cache);
        assert_eq!(limit, mem.limit.unwrap(), "{name}: the limit");
        assert!(
            memory.abs_diff(engine) < 4 << 20,
            "{name}: status says {memory} bytes, the engine {engine}"
        );
    }
}

async fn role_exists(env: &Env, role: &str) -> bool {
    let session = env.node.admin_session().await;
    let rows = session
        .query_unpaged("SELECT role FROM system_auth.roles WHERE role = ?", (role,))
        .await
        .unwrap()
        .into_rows_result()
        .unwrap();
    rows.rows_num() > 0
}

async fn readings_of(env: &Env, keyspace: &str, gateway: &str, day: &str) -> usize {
    let session = env.node.admin_session().await;
    let day = chrono_day(day);
    let rows = session
        .query_unpaged(
            format!("SELECT ts FROM {keyspace}.readings WHERE gateway_id = ? AND day = ?"),
            (gateway, day),
        )
        .await
        .unwrap()
        .into_rows_result()
        .unwrap();
    rows.rows_num()
}

fn chrono_day(day: &str) -> scylla::value::CqlDate {
    // Days since 1970-01-01, offset by 2^31 as CQL dates are.
    let (y, rest) = day.split_at(4);
    let y: i64 = y.parse().unwrap();
    let m: i64 = rest[1..3].parse().unwrap();
    let d: i64 = rest[4..6].parse().unwrap();
    // Howard Hinnant's days_from_civil.
    let y = if m <= 2 { y - 1 } else { y };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146097 + doe - 719468;
    scylla::value::CqlDate((days + (1i64 << 31)) as u32)
}

#[tokio::test]
async fn a_tenant_lives_from_start_to_purge_with_its_ports_and_data() {
    let env = Env::new("pvlife", (27001, 27009), (27101, 27109)).await;
    life_cycle(&env, 27001..=27009, 27101..=27109).await;
}

#[tokio::test]
async fn a_tenant_lives_the_same_life_through_the_daemon_over_tcp() {
    let mut env = Env::new("pvlifed", (29001, 29009), (29101, 29109)).await;
    let daemon = env.daemon(&[], None).await;
    env.through(&daemon);
    life_cycle(&env, 29001..=29009, 29101..=29109).await;
    // Every operation was asked with the token, and the log says so.
    let history = env.run(&["--json", "history"]).await.ok();
    let ops: Vec<serde_json::Value> = serde_json::from_str(&history.stdout).unwrap();
    let starts: Vec<_> = ops.iter().filter(|o| o["kind"] == "start").collect();
    assert!(!starts.is_empty(), "{}", history.stdout);
    for op in starts {
        assert!(
            op["requested_by"]
                .as_str()
                .is_some_and(|by| by.starts_with("token:ci-")),
            "{op}"
        );
        assert_eq!(op["state"], "succeeded", "{op}");
        assert!(op["result"].get("admin_password").is_none(), "{op}");
    }
}

async fn life_cycle(
    env: &Env,
    gateway_range: std::ops::RangeInclusive<u16>,
    admin_range: std::ops::RangeInclusive<u16>,
) {
    let id = unique_id("life");
    let keyspace = format!("tenant_{id}");

    // start: a running tenant, its endpoints, and its first admin password once.
    let first = env.run(&["--json", "start", &id]).await.ok();
    assert_eq!(first.field("provider").as_deref(), Some(id.as_str()));
    assert_eq!(first.field("state").as_deref(), Some("running"));
    assert_eq!(first.field("keyspace").as_deref(), Some(keyspace.as_str()));
    let gateway_port = first.port("gateway_port");
    let admin_port = first.port("admin_port");
    assert!(gateway_range.contains(&gateway_port), "{gateway_port}");
    assert!(admin_range.contains(&admin_port), "{admin_port}");
    assert_eq!(
        first.field("admin_url"),
        Some(format!("http://127.0.0.1:{admin_port}/"))
    );
    assert_eq!(first.field("admin_user").as_deref(), Some("admin"));
    let password = first
        .field("admin_password")
        .expect("the first start prints the admin password");
    assert!(is_running(&env.container(&id, "ingest")).await);
    assert!(is_running(&env.container(&id, "admin")).await);
    assert!(is_running(&env.container(&id, "notifier")).await);

    // A second start changes nothing and prints no password.
    let second = env.run(&["--json", "start", &id]).await.ok();
    assert_eq!(
        second.field("changed").as_deref(),
        Some("false"),
        "{}",
        second.stdout
    );
    assert_eq!(second.port("gateway_port"), gateway_port);
    assert_eq!(second.field("admin_password"), None);
    let plan = env.run(&["plan", &id]).await.ok();
    assert!(
        plan.stdout.contains("nothing to do") || plan.stdout.contains(" is healthy"),
        "{}",
        plan.stdout
    );

    // A gateway commissioned by the CLI sends readings through the leased port.
    let added = env
        .run(&["--json", "gateway", "add", &id, "gw-life-1"])
        .await
        .ok();
    assert_eq!(added.field("gateway").as_deref(), Some("gw-life-1"));
    let token = added.field("token").expect("a token");
    let duplicate = env.run(&["gateway", "add", &id, "gw-life-1"]).await;
    assert_ne!(duplicate.code, 0);
    assert!(
        duplicate.stderr.contains("already exists"),
        "{}",
        duplicate.stderr
    );
    // readings of yesterday: in the past, within the 30 days ingest accepts
    let day = (chrono::Utc::now().date_naive() - chrono::TimeDelta::days(1)).to_string();
    let mut gw = Gateway::connect(gateway_port, "gw-life-1", &token).await;
    for seq in 1..=3 {
        gw.reading(
            seq,
            &format!("{day}T06:00:0{seq}Z"),
            "inverter-1",
            "power",
            1000.0 + seq as f64,
        )
        .await;
    }
    drop(gw);
    assert_eq!(readings_of(env, &keyspace, "gw-life-1", &day).await, 3);

    // ... and they show on the admin panel, behind the first admin's login.
    let admin_addr = format!("127.0.0.1:{admin_port}");
    let cookies = admin_login(&admin_addr, "admin", &password).await;
    let dashboard = request(&admin_addr, "GET", "/", &cookies, None)
        .await
        .expect("the admin panel answers");
    assert_eq!(dashboard.status, 200, "{}", dashboard.body);
    assert!(
        dashboard.body.contains("gw-life-1"),
        "the dashboard does not name the gateway"
    );

    // stop keeps the ports and the data; start brings the same ports back.
    env.run(&["stop", &id]).await.ok();
    assert!(!is_running(&env.container(&id, "ingest")).await);
    assert!(!is_running(&env.container(&id, "admin")).await);
    assert!(!is_running(&env.container(&id, "notifier")).await);
    let stopped = env.run(&["--json", "status", &id]).await.ok();
    assert_eq!(
        stopped.field("state").as_deref(),
        Some("stopped"),
        "{}",
        stopped.stdout
    );
    assert_eq!(stopped.port("gateway_port"), gateway_port);
    let again = env.run(&["--json", "start", &id]).await.ok();
    assert_eq!(again.port("gateway_port"), gateway_port);
    assert_eq!(again.port("admin_port"), admin_port);
    assert_eq!(again.field("admin_password"), None);
    let mut gw = Gateway::connect(gateway_port, "gw-life-1", &token).await;
    gw.reading(
        4,
        &format!("{day}T06:00:04Z"),
        "inverter-1",
        "power",
        1004.0,
    )
    .await;
    drop(gw);
    assert_eq!(readings_of(env, &keyspace, "gw-life-1", &day).await, 4);
    admin_login(&admin_addr, "admin", &password).await;

    // status and list show health, uptime and resource use.
    let status = env.run(&["status", &id]).await.ok();
    assert!(
        status.stdout.contains(&id) && status.stdout.contains("MEMORY"),
        "{}",
        status.stdout
    );
    let list = env.run(&["--json", "list"]).await.ok();
    assert!(list.stdout.contains("\"memory_bytes\""), "{}", list.stdout);
    assert_usage_is_the_engines(env, &id).await;

    // destroy releases the ports and keeps the data; a new tenant can take them.
    let refused = env.run(&["destroy", &id]).await;
    assert_eq!(
        refused.code, 2,
        "destroy without --yes and no terminal must refuse"
    );
    env.run(&["destroy", &id, "--yes"]).await.ok();
    assert!(tenant_containers(&id).await.is_empty());
    let destroyed = env.run(&["--json", "status", &id]).await.ok();
    assert_eq!(
        destroyed.field("gateway_port").as_deref(),
        Some("null"),
        "{}",
        destroyed.stdout
    );
    assert!(keyspace_exists(env, &keyspace).await);
    let other = unique_id("life");
    let taker = env
        .run(&[
            "--json",
            "start",
            &other,
            "--gateway-port",
            &gateway_port.to_string(),
        ])
        .await
        .ok();
    assert_eq!(taker.port("gateway_port"), gateway_port);
    env.run(&["destroy", &other, "--yes", "--purge-data"])
        .await
        .ok();

    // --purge-data drops the keyspace and the role, and forgets the tenant.
    let plan = env
        .run(&["destroy", &id, "--purge-data", "--dry-run"])
        .await
        .ok();
    assert!(
        plan.stdout.contains(&format!("drop keyspace {keyspace}")),
        "{}",
        plan.stdout
    );
    env.run(&["destroy", &id, "--yes", "--purge-data"])
        .await
        .ok();
    assert!(!keyspace_exists(env, &keyspace).await);
    assert!(!role_exists(env, &keyspace).await);
    let gone = env.run(&["status", &id]).await;
    assert_eq!(gone.code, 8, "{}", gone.stderr);
}

#[tokio::test]
async fn reconcile_recreates_a_container_removed_by_hand_and_reports_orphans() {
    let env = Env::new("pvrec", (27011, 27019), (27111, 27119)).await;
    let id = unique_id("rec");
    let started = env.run(&["--json", "start", &id]).await.ok();
    let gateway_port = started.port("gateway_port");
    let docker = provision_testkit::docker().await;
    let ingest = env.container(&id, "ingest");
    docker
        .remove_container(
            &ingest,
            Some(bollard::query_parameters::RemoveContainerOptions {
                force: true,
                ..Default::default()
            }),
        )
        .await
        .unwrap();
    let admin = env.container(&id, "admin");
    docker.stop_container(&admin, None).await.unwrap();

    let dry = env.run(&["reconcile", "--dry-run"]).await.ok();
    assert_eq!(
        dry.stdout,
        format!(
            "plan for tenant {id}:\n  create and start container {ingest} from {} on port {gateway_port} (missing)\n  start container {admin}\n",
            provision_testkit::containers::ingest_image()
        ),
        "only this environment's containers count"
    );
    assert!(!is_running(&admin).await, "--dry-run changed something");

    env.run(&["reconcile"]).await.ok();
    assert!(is_running(&ingest).await);
    assert!(is_running(&admin).await);
    // The recreated ingest serves the same leased port.
    let again = env.run(&["--json", "start", &id]).await.ok();
    assert_eq!(again.port("gateway_port"), gateway_port);

    // A stopped tenant stays stopped.
    env.run(&["stop", &id]).await.ok();
    let plan = env.run(&["reconcile", "--dry-run"]).await.ok();
    assert_eq!(
        plan.stdout,
        format!("plan for tenant {id}:\n  nothing to do\n")
    );

    // A container with our labels whose tenant the store does not know is
    // reported, never removed.
    let ghost = unique_id("ghost");
    let other = Env::new("pvrec2", (27021, 27029), (27121, 27129)).await;
    let shared = other.config.clone();
    // Same container prefix as `env`, another state store: unknown to `env`.
    let text = std::fs::read_to_string(&shared)
        .unwrap()
        .replace(&other.prefix, &env.prefix);
    std::fs::write(&shared, text).unwrap();
    other.run(&["start", &ghost]).await.ok();
    let report = env.run(&["reconcile", "--dry-run"]).await.ok();
    assert!(
        report.stdout.contains(&format!(
            "report orphan container {} (tenant {ghost} is unknown; not removed)",
            env.container(&ghost, "admin")
        )),
        "{}",
        report.stdout
    );
    env.run(&["reconcile"]).await.ok();
    assert!(is_running(&env.container(&ghost, "admin")).await);

    other
        .run(&["destroy", &ghost, "--yes", "--purge-data"])
        .await
        .ok();
    env.run(&["destroy", &id, "--yes", "--purge-data"])
        .await
        .ok();
    assert!(tenant_containers(&id).await.is_empty());
}

/// A managed Cassandra container built from another build than the image the
/// config names is reported by `plan`, and nothing is planned for it: the
/// operator chooses when to recreate the node every tenant stores in.
#[tokio::test]
async fn a_managed_cassandra_from_another_build_is_noted_and_left_alone() {
    let env = Env::new("pvdrift", (27041, 27042), (27141, 27142)).await;
    let node = docker()
        .await
        .inspect_container(CASSANDRA_CONTAINER, None)
        .await
        .expect("the harness's node runs");
    let node_image = node.image.expect("a container has an image id");
    // The harness's node plays the managed container, named by its image id.
    env.edit_config(
        "mode = \"external\"",
        &format!(
            "mode = \"managed\"\ncontainer = \"{CASSANDRA_CONTAINER}\"\nimage = \"{node_image}\""
        ),
    );
    let id = unique_id("drift");
    let same = env.run(&["plan", &id]).await.ok();
    // (The harness's node is not hardened, which gets a note of its own.)
    assert!(!same.stdout.contains("older build"), "{}", same.stdout);
    assert!(
        !same.stdout.contains("cassandra container"),
        "{}",
        same.stdout
    );

    env.edit_config(&node_image, &ingest_image());
    let other = env.run(&["plan", &id]).await.ok();
    assert!(
        other.stdout.contains(&format!(
            "note: {CASSANDRA_CONTAINER} runs an older build of its image"
        )),
        "{}",
        other.stdout
    );
    assert!(
        !other.stdout.contains("cassandra container"),
        "{}",
        other.stdout
    );
    let json = env.run(&["--json", "plan", &id]).await.ok();
    let plan: serde_json::Value = serde_json::from_str(&json.stdout).expect("one JSON document");
    assert!(
        plan["notices"]
            .as_array()
            .is_some_and(|ns| ns.iter().any(|n| n
                .as_str()
                .is_some_and(|n| n.contains("runs an older build")))),
        "{}",
        json.stdout
    );
    assert!(is_running(CASSANDRA_CONTAINER).await);
}

/// Builds `tag` from the ingest image with one label more: a new image id
/// for the same binary, as `scripts/setup` makes after a rebuild.
fn build_ingest_variant(tag: &str, build: u32) {
    use std::io::Write;
    let mut child = std::process::Command::new("docker")
        .args(["build", "-q", "-t", tag, "-"])
        .env("DOCKER_BUILDKIT", "0")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("docker build runs");
    let dockerfile = format!(
        "FROM {}\nLABEL io.provision.test-build=\"{build}\"\n",
        ingest_image()
    );
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(dockerfile.as_bytes())
        .expect("write the Dockerfile");
    assert!(child.wait().expect("docker build ends").success());
}

/// An image rebuilt under the same tag is drift: `plan` shows the container
/// recreated, `reconcile` rolls the tenant onto the new build.
#[tokio::test]
async fn reconcile_rolls_a_tenant_onto_an_image_rebuilt_under_its_tag() {
    let env = Env::new("pvroll", (27051, 27052), (27151, 27152)).await;
    let tag = format!("provision/ingest:{}", env.prefix);
    build_ingest_variant(&tag, 1);
    env.edit_config(
        &format!("ingest = \"{}\"", ingest_image()),
        &format!("ingest = \"{tag}\""),
    );
    let id = unique_id("roll");
    env.run(&["start", &id]).await.ok();
    let ingest = env.container(&id, "ingest");
    let image_of = |name: String| async move {
        docker()
            .await
            .inspect_container(&name, None)
            .await
            .expect("the container exists")
            .image
            .expect("an image id")
    };
    let before = image_of(ingest.clone()).await;

    build_ingest_variant(&tag, 2);
    let rebuilt = docker()
        .await
        .inspect_image(&tag)
        .await
        .expect("the rebuilt image")
        .id
        .expect("an id");
    assert_ne!(before, rebuilt);
    let plan = env.run(&["plan", &id]).await.ok();
    assert!(
        plan.stdout.contains(&format!(
            "remove container {ingest} (configuration changed)"
        )),
        "{}",
        plan.stdout
    );
    env.run(&["reconcile"]).await.ok();
    assert_eq!(image_of(ingest.clone()).await, rebuilt);
    let again = env.run(&["--json", "start", &id]).await.ok();
    assert_eq!(again.field("state").as_deref(), Some("running"));

    env.run(&["destroy", &id, "--yes", "--purge-data"])
        .await
        .ok();
    let _ = docker()
        .await
        .remove_image(
            &tag,
            Some(bollard::query_parameters::RemoveImageOptions {
                force: true,
                ..Default::default()
            }),
            None,
        )
        .await;
}

/// `[health] checks = "provisioner"`: the engine runs no health check (the
/// images' own turned off), `start` waits on the provisioner's own probe,
/// `status` says each app is healthy by it, and a `reconcile` pass changes
/// nothing; back to the engine's checks, `reconcile` recreates the apps
/// with them.
#[tokio::test]
async fn with_provisioner_health_checks_the_engine_execs_nothing() {
    let env = Env::new("pvprobe", (27581, 27582), (27591, 27592)).await;
    env.edit_config(
        "timeout_secs = 90\n",
        "timeout_secs = 90\nchecks = \"provisioner\"\n",
    );
    let id = unique_id("probe");
    let started = env.run(&["--json", "start", &id]).await.ok();
    assert_eq!(started.field("state").as_deref(), Some("running"));
    let docker = docker().await;
    for role in ["ingest", "admin", "notifier"] {
        let inspect = docker
            .inspect_container(&env.container(&id, role), None)
            .await
            .unwrap();
        let test = inspect
            .config
            .and_then(|c| c.healthcheck)
            .and_then(|h| h.test);
        assert_eq!(test, Some(vec!["NONE".to_owned()]), "{role}");
        // Docker gives no health state at all; Podman one with no log
        let log = inspect.state.and_then(|s| s.health).and_then(|h| h.log);
        assert!(
            log.is_none_or(|l| l.is_empty()),
            "{role}: the engine ran a check"
        );
    }
    assert_usage_is_the_engines(&env, &id).await;
    let status = env.run(&["--json", "status", &id]).await.ok();
    let status: serde_json::Value = serde_json::from_str(&status.stdout).expect("JSON");
    assert_eq!(status["state"], "running", "{status}");
    let pass = env.run(&["--json", "reconcile"]).await.ok();
    let report: serde_json::Value = serde_json::from_str(&pass.stdout).expect("JSON");
    assert_eq!(report["tenants"][0]["result"], "unchanged", "{report}");

    env.edit_config("checks = \"provisioner\"\n", "");
    let back = env.run(&["reconcile"]).await.ok();
    assert!(
        back.stdout.contains("(configuration changed)"),
        "{}",
        back.stdout
    );
    let test = docker
        .inspect_container(&env.container(&id, "ingest"), None)
        .await
        .unwrap()
        .config
        .and_then(|c| c.healthcheck)
        .and_then(|h| h.test);
    assert_eq!(test.map(|t| t[0].clone()).as_deref(), Some("CMD"));
    env.run(&["destroy", &id, "--yes", "--purge-data"])
        .await
        .ok();
    assert!(tenant_containers(&id).await.is_empty());
}
