//! `[docker] mode = "swarm"` on the 3-node Swarm of `scripts/swarm-up`
//! (three engines in containers, a registry, the managed Cassandra on the
//! manager): tenants as services spread over the nodes, their endpoints
//! acking readings, a node lost under load, a node drained, the N+1 gate,
//! the life cycle, and the front on every node (last: it takes the ports
//! of the shared tenants, which it destroys first).
//!
//! These tests need the bed, so `cargo test` skips them (`#[ignore]`);
//! `scripts/test-swarm` brings the bed up and runs them with `--ignored`
//! (`.ci/run` calls it after `scripts/test`). They share one state store
//! and the one managed Cassandra (its rotated superuser lives in that
//! store), and run one at a time: a node kill or a drain moves everyone's
//! tasks. libtest runs them in the order of their names, so the spread
//! test (`a_bed_s_...`) runs first, on the tenants it starts on a fresh
//! bed: the Swarm does not move tasks back onto a node that was drained
//! or lost and came back, so after those tests one node may run none.

mod provision_support;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use gateway_sim::resilient::{self, Endpoint, Progress, ResilientConfig};
use provision_support::{api, provision_bin, provisiond_bin, Run};
use provision_testkit::faults::missing_acked;
use provisioner::{Config, ProviderId, Provisioner};
use serde_json::Value;
use tokio::sync::Mutex;

/// One test at a time.
static SERIAL: Mutex<()> = Mutex::const_new(());

/// The six tenants the spread, loss and drain tests share.
const TENANTS: [&str; 6] = ["sw_a", "sw_b", "sw_c", "sw_d", "sw_e", "sw_f"];

/// The bed as `scripts/swarm-up` wrote it down.
struct Bed {
    manager: String,
    registry: String,
    /// Where the host pushes to the bed's registry.
    registry_push: String,
    /// The network the nodes' addresses are in, and the host's address
    /// on it (where the tests' gateways connect from).
    subnet: String,
    host: String,
    dir: PathBuf,
    config: PathBuf,
}

fn env_value(text: &str, key: &str) -> Option<String> {
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{key}=")))
        .map(|v| v.trim_matches('"').to_owned())
}

impl Bed {
    fn get() -> Bed {
        let path = std::env::var("PROVISION_SWARM_ENV")
            .unwrap_or_else(|_| "/run/provision-swarm/env".to_owned());
        let text = std::fs::read_to_string(&path).unwrap_or_else(|e| {
            panic!("{path}: {e}; bring the bed up with scripts/swarm-up (scripts/test-swarm does)")
        });
        let dir = PathBuf::from(
            std::env::var("PROVISION_SWARM_TEST_DIR")
                .unwrap_or_else(|_| "/run/provision-swarm/test".to_owned()),
        );
        std::fs::create_dir_all(&dir).unwrap();
        let bed = Bed {
            manager: env_value(&text, "PROVISION_SWARM_MANAGER").expect("the manager"),
            registry: env_value(&text, "PROVISION_SWARM_REGISTRY").expect("the registry"),
            registry_push: env_value(&text, "PROVISION_SWARM_REGISTRY_PUSH")
                .expect("the registry's push address"),
            subnet: env_value(&text, "PROVISION_SWARM_SUBNET")
                .unwrap_or_else(|| "10.231.0.0/24".to_owned()),
            host: env_value(&text, "PROVISION_SWARM_GATEWAY")
                .unwrap_or_else(|| "10.231.0.1".to_owned()),
            config: dir.join("provision.toml"),
            dir,
        };
        std::fs::write(&bed.config, bed.config_text("")).unwrap();
        bed
    }

    fn config_text(&self, swarm_extra: &str) -> String {
        format!(
            r#"state = "{dir}/state.db"
data_dir = "{dir}"
log_format = "text"

[docker]
host = "{manager}"
mode = "swarm"
extra_labels = {{ "io.provision.test" = "1" }}

[swarm]
registry = "{registry}"
{swarm_extra}

[cassandra]
mode = "managed"
heap = "768M"
memory_mb = 1536
connect_timeout_secs = 240

[ports]
gateway = "30001-30099"
admin = "30101-30199"

[health]
timeout_secs = 240
"#,
            dir = self.dir.display(),
            manager = self.manager,
            registry = self.registry,
        )
    }

    fn run_with(
        &self,
        config: &std::path::Path,
        args: &[&str],
    ) -> impl std::future::Future<Output = Run> {
        let mut cmd = tokio::process::Command::new(provision_bin());
        cmd.arg("--config")
            .arg(config)
            .args(args)
            .stdin(std::process::Stdio::null())
            .kill_on_drop(true);
        async move {
            let out = cmd.output().await.expect("provision runs");
            Run {
                code: out.status.code().unwrap_or(-1),
                stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
                stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
            }
        }
    }

    fn run(&self, args: &[&str]) -> impl std::future::Future<Output = Run> {
        self.run_with(&self.config, args)
    }

    async fn json(&self, args: &[&str]) -> Value {
        let mut all = vec!["--json"];
        all.extend_from_slice(args);
        let run = self.run(&all).await.ok();
        serde_json::from_str(&run.stdout)
            .unwrap_or_else(|e| panic!("{args:?}: {e}: {}", run.stdout))
    }

    /// The ids `docker <kind> ls -q --filter <filter>` lists on the manager.
    async fn on_manager(&self, kind: &str, filter: &str) -> String {
        let out = tokio::process::Command::new("docker")
            .args(["-H", &self.manager, kind, "ls", "-q", "--filter", filter])
            .output()
            .await
            .unwrap();
        assert!(out.status.success(), "docker {kind} ls on the manager");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    async fn provisioner(&self) -> Provisioner {
        let config = Config::load(Some(&self.config)).expect("the bed's config parses");
        Provisioner::open(config).await.expect("state store opens")
    }

    /// Starts the six shared tenants (a start of a running one changes
    /// nothing), each with one gateway; answers their tokens.
    async fn six_tenants(&self) -> Vec<(String, String)> {
        let mut out = Vec::new();
        for t in TENANTS {
            self.run(&["--json", "start", t]).await.ok();
            let list = self.json(&["gateway", "list", t]).await;
            let has = list.as_array().is_some_and(|l| {
                l.iter()
                    .any(|g| g["gateway"] == "gw-1" && g["live"] == true)
            });
            if has {
                self.run(&["gateway", "revoke", t, "gw-1"]).await.ok();
            }
            let token = self
                .run(&["--json", "gateway", "add", t, "gw-1"])
                .await
                .ok()
                .field("token")
                .expect("a token");
            out.push((t.to_owned(), token));
        }
        out
    }

    /// `provisiond` on the bed's config, on a Unix socket of the test
    /// directory (the socket's peer needs no token), its log beside it.
    async fn daemon(&self) -> BedDaemon {
        let socket = self.dir.join("provisiond.sock");
        let log = self.dir.join("provisiond.log");
        let _ = std::fs::remove_file(&socket);
        let child = tokio::process::Command::new(provisiond_bin())
            .arg("--config")
            .arg(&self.config)
            .arg("--socket")
            .arg(&socket)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .kill_on_drop(true)
            .spawn()
            .expect("provisiond starts");
        let daemon = BedDaemon { child, socket, log };
        let deadline = Instant::now() + Duration::from_secs(30);
        while tokio::net::UnixStream::connect(&daemon.socket)
            .await
            .is_err()
        {
            assert!(
                Instant::now() < deadline,
                "provisiond did not listen within 30 s:\n{}",
                daemon.log()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        daemon
    }

    async fn status(&self, tenant: &str) -> Value {
        self.json(&["status", tenant]).await
    }

    async fn nodes(&self) -> Vec<Value> {
        self.json(&["node", "list"])
            .await
            .as_array()
            .cloned()
            .expect("a list of nodes")
    }
}

struct BedDaemon {
    #[allow(dead_code)] // killed on drop
    child: tokio::process::Child,
    socket: PathBuf,
    log: PathBuf,
}

impl BedDaemon {
    async fn get(&self, path: &str) -> (u16, String) {
        let target = format!("unix:{}", self.socket.display());
        let (status, _, body) = api(&target, "GET", path, None, None).await;
        (status, body)
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// A counter of `/metrics` (0 while it has no sample).
    async fn counter(&self, sample: &str) -> u64 {
        let (_, metrics) = self.get("/metrics").await;
        metrics
            .lines()
            .find_map(|l| l.strip_prefix(sample)?.trim().parse().ok())
            .unwrap_or(0)
    }
}

/// The newest endpoint the daemon's watcher logged for the tenant's
/// ingest (`endpoint changed tenant=.. app=ingest from=.. to=..`), unless
/// that change was to none.
fn watcher_moved_to(log: &str, tenant: &str) -> Option<String> {
    let line = log.lines().rfind(|l| {
        l.contains("endpoint changed")
            && l.contains(&format!("tenant={tenant} "))
            && l.contains("app=ingest")
    })?;
    let to = line
        .split_whitespace()
        .find_map(|w| w.strip_prefix("to="))?;
    (to != "-").then(|| to.to_owned())
}

fn endpoint_of(status: &Value) -> Option<String> {
    status["gateway_endpoint"].as_str().map(str::to_owned)
}

/// The node (hostname) each of the tenant's apps runs on.
fn nodes_of(status: &Value) -> Vec<String> {
    status["containers"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|c| c["node"].as_str().map(str::to_owned))
        .collect()
}

/// Streams `rate` readings/s from each tenant's gateway until stopped;
/// answers the endpoints (to re-point) and the progress.
struct Stream {
    tenant: String,
    endpoint: Endpoint,
    progress: Arc<Progress>,
    task: tokio::task::JoinHandle<resilient::ResilientReport>,
}

fn stream(tenant: &str, addr: &str, token: &str, rate: f64) -> Stream {
    let endpoint = Endpoint::new(addr);
    let progress = Progress::new(1);
    let mut cfg = ResilientConfig::new(
        addr,
        vec![("gw-1".to_owned(), token.to_owned())],
        rate,
        Duration::from_secs(3600),
    );
    cfg.endpoint = Some(endpoint.clone());
    cfg.drain_timeout = Duration::from_secs(120);
    let task = tokio::spawn(resilient::run(cfg, progress.clone()));
    Stream {
        tenant: tenant.to_owned(),
        endpoint,
        progress,
        task,
    }
}

/// Waits until the stream's gateway got an ack after `since`.
async fn acked_since(s: &Stream, since: Instant, within: Duration) {
    let deadline = Instant::now() + within;
    while !s.progress.all_acked_since([0], since) {
        assert!(
            Instant::now() < deadline,
            "{}: no ack within {within:?} (endpoint {})",
            s.tenant,
            s.endpoint.get()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Stops the streams, waits for every made reading to be acked, and
/// checks that Cassandra holds each acked one.
async fn finish(bed: &Bed, streams: Vec<Stream>) {
    for s in &streams {
        s.progress.stop_making();
    }
    let provisioner = bed.provisioner().await;
    let session = provisioner::cql::session::admin_session(&provisioner.config, &provisioner.store)
        .await
        .unwrap();
    for s in streams {
        let report = s.task.await.unwrap();
        assert!(report.acked() > 0, "{}: nothing acked", s.tenant);
        assert_eq!(
            report.unacked(),
            0,
            "{}: unacked readings\n{}",
            s.tenant,
            report.render()
        );
        let keyspace = ProviderId::parse(&s.tenant).unwrap().keyspace();
        let missing = missing_acked(&session, &keyspace, &report.acks)
            .await
            .unwrap();
        assert!(
            missing.is_empty(),
            "{}: acked but not in Cassandra: {missing:?}",
            s.tenant
        );
    }
}

#[tokio::test]
#[ignore = "needs the Swarm test bed: scripts/test-swarm"]
async fn a_bed_s_six_tenants_spread_over_three_nodes_and_every_endpoint_acks() {
    let _serial = SERIAL.lock().await;
    let bed = Bed::get();
    let tokens = bed.six_tenants().await;

    let nodes = bed.nodes().await;
    assert_eq!(nodes.len(), 3, "{nodes:?}");
    for n in &nodes {
        assert!(
            n["tasks"].as_u64().unwrap() >= 1,
            "a node without a tenant app: {n}"
        );
        assert!(n["reserved_memory_bytes"].as_i64().unwrap() > 0, "{n}");
        assert!(n["memory_bytes"].as_i64().unwrap() > 0, "{n}");
    }
    let addresses: Vec<String> = nodes
        .iter()
        .filter_map(|n| n["address"].as_str().map(str::to_owned))
        .collect();

    let mut streams = Vec::new();
    let since = Instant::now();
    for (tenant, token) in &tokens {
        let status = bed.status(tenant).await;
        assert_eq!(status["state"], "running", "{status}");
        assert_eq!(status["mode"], "swarm");
        let endpoint = endpoint_of(&status).expect("a gateway endpoint");
        let host = endpoint.rsplit_once(':').unwrap().0;
        assert!(
            addresses.iter().any(|a| a == host),
            "{endpoint} is no node's address"
        );
        for c in status["containers"].as_array().unwrap() {
            assert_eq!(c["task_state"], "running", "{c}");
            assert!(c["node"].is_string(), "{c}");
        }
        streams.push(stream(tenant, &endpoint, token, 20.0));
    }
    for s in &streams {
        acked_since(s, since, Duration::from_secs(60)).await;
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    finish(&bed, streams).await;
}

#[tokio::test]
#[ignore = "needs the Swarm test bed: scripts/test-swarm"]
async fn a_lost_node_s_tenants_run_elsewhere_within_90_s_and_no_acked_reading_is_lost() {
    let _serial = SERIAL.lock().await;
    let bed = Bed::get();
    let tokens = bed.six_tenants().await;
    // The worker with the most ingest tasks is the one to lose.
    let mut on_node: std::collections::BTreeMap<String, Vec<(String, String, String)>> =
        Default::default();
    for (tenant, token) in &tokens {
        let status = bed.status(tenant).await;
        let ingest = status["containers"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["role"] == "ingest")
            .cloned()
            .unwrap();
        let node = ingest["node"].as_str().unwrap().to_owned();
        on_node.entry(node).or_default().push((
            tenant.clone(),
            token.clone(),
            endpoint_of(&status).unwrap(),
        ));
    }
    let victim = on_node
        .iter()
        .filter(|(n, _)| n.as_str() != "provision-swarm-1")
        .max_by_key(|(_, t)| t.len())
        .map(|(n, _)| n.clone())
        .expect("a worker with an ingest task");

    let victim_address = bed
        .nodes()
        .await
        .iter()
        .find(|n| n["hostname"] == victim.as_str())
        .and_then(|n| n["address"].as_str().map(str::to_owned))
        .expect("the victim's address");
    // The daemon's watcher is what sees the new placement.
    let daemon = bed.daemon().await;
    let (code, body) = daemon.get("/v1/endpoints").await;
    assert_eq!(code, 200, "{body}");
    let book: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(book["mode"], "swarm", "{book}");
    for (tenant, _, endpoint) in on_node.values().flatten() {
        assert!(
            book["endpoints"].as_array().unwrap().iter().any(|e| {
                e["tenant"] == tenant.as_str()
                    && e["app"] == "ingest"
                    && e["endpoint"] == endpoint.as_str()
            }),
            "{tenant} at {endpoint} not in the daemon's endpoints: {book}"
        );
    }

    let mut streams = Vec::new();
    let since = Instant::now();
    for (tenant, token, endpoint) in on_node.values().flatten() {
        streams.push(stream(tenant, endpoint, token, 20.0));
    }
    for s in &streams {
        acked_since(s, since, Duration::from_secs(60)).await;
    }
    let moved: Vec<String> = on_node[&victim].iter().map(|(t, _, _)| t.clone()).collect();

    let killed = Instant::now();
    let status = tokio::process::Command::new("docker")
        .args(["kill", &victim])
        .status()
        .await
        .unwrap();
    assert!(status.success(), "docker kill {victim}");

    // Within 90 s each of the victim's tenants runs elsewhere, healthy;
    // the daemon's watcher (nobody asks it meanwhile) logged its new
    // endpoint, and its gateway is re-pointed there.
    let deadline = killed + Duration::from_secs(90);
    let mut pending = moved.clone();
    while !pending.is_empty() {
        assert!(
            Instant::now() < deadline,
            "not moved off {victim} within 90 s: {pending:?}\n{}",
            daemon.log()
        );
        let log = daemon.log();
        let mut still = Vec::new();
        for tenant in pending {
            let to = watcher_moved_to(&log, &tenant)
                .filter(|to| !to.starts_with(&format!("{victim_address}:")));
            let Some(to) = to else {
                still.push(tenant);
                continue;
            };
            let status = bed.status(&tenant).await;
            let healthy = status["state"] == "running" && !nodes_of(&status).contains(&victim);
            if healthy && endpoint_of(&status).as_ref() == Some(&to) {
                let s = streams.iter().find(|s| s.tenant == tenant).unwrap();
                s.endpoint.set(&to);
            } else {
                still.push(tenant);
            }
        }
        pending = still;
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let moved_in = killed.elapsed();
    assert!(
        daemon
            .counter("provisiond_watcher_events_total{action=\"node down\"}")
            .await
            >= 1,
        "the watcher saw no node down:\n{}",
        daemon.log()
    );
    // At least each moved ingest to its new node.
    let changes = daemon.counter("provisiond_endpoint_changes_total").await;
    assert!(changes >= moved.len() as u64, "{changes} endpoint changes");
    let after = Instant::now();
    for s in &streams {
        acked_since(s, after, Duration::from_secs(90)).await;
    }
    eprintln!(
        "node {victim} killed: tenants {moved:?} healthy elsewhere after {:.1} s, acking again after {:.1} s",
        moved_in.as_secs_f64(),
        killed.elapsed().as_secs_f64()
    );
    finish(&bed, streams).await;

    // The bed as it was: the node back, and the tenants spread again.
    let up = tokio::process::Command::new("bash")
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/../scripts/swarm-up"))
        .status()
        .await
        .unwrap();
    assert!(up.success(), "scripts/swarm-up brings {victim} back");
}

#[tokio::test]
#[ignore = "needs the Swarm test bed: scripts/test-swarm"]
async fn a_drained_node_keeps_no_tenant_task_and_every_tenant_stays_healthy() {
    let _serial = SERIAL.lock().await;
    let bed = Bed::get();
    bed.six_tenants().await;
    let node = "provision-swarm-2";
    let report = bed.json(&["node", "drain", node, "--timeout", "240"]).await;
    assert_eq!(report["node"], node);
    let nodes = bed.nodes().await;
    let drained = nodes.iter().find(|n| n["hostname"] == node).unwrap();
    assert_eq!(drained["availability"], "drain");
    assert_eq!(drained["tasks"], 0, "{drained}");
    for t in TENANTS {
        let status = bed.status(t).await;
        assert_eq!(status["state"], "running", "{status}");
        assert!(!nodes_of(&status).iter().any(|n| n == node), "{status}");
    }
    let back = bed.json(&["node", "activate", node]).await;
    assert_eq!(back["availability"], "active");
    let unknown = bed.run(&["node", "drain", "no-such-node"]).await;
    assert_eq!(unknown.code, 17, "{unknown:?}");
    assert!(
        unknown.stderr.contains("no-such-node"),
        "{}",
        unknown.stderr
    );
}

#[tokio::test]
#[ignore = "needs the Swarm test bed: scripts/test-swarm"]
async fn a_start_that_would_break_n_plus_one_is_refused_and_leaves_nothing() {
    let _serial = SERIAL.lock().await;
    let bed = Bed::get();
    // Left by an earlier run that stopped midway, if any.
    bed.run(&["destroy", "sw_over", "--purge-data", "--yes"])
        .await;
    bed.six_tenants().await;
    let capacity = bed.json(&["capacity"]).await;
    assert_eq!(capacity["n_plus_one"], true, "{capacity}");
    assert!(
        capacity["more_tenants"].as_u64().unwrap() >= 1,
        "{capacity}"
    );
    assert_eq!(capacity["nodes"].as_array().unwrap().len(), 3);

    // The same cluster, with the room for tenant apps on each node capped
    // below half of what is reserved with one more tenant: whichever node
    // fails, the other two could not hold everything.
    let reserved: i64 = capacity["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["reserved_memory_bytes"].as_i64().unwrap())
        .sum();
    let tenant = capacity["tenant_memory_bytes"].as_i64().unwrap();
    let cap_mib = (reserved + tenant) / 2 / (1024 * 1024) - 1;
    let tight = bed.dir.join("tight.toml");
    std::fs::write(
        &tight,
        bed.config_text(&format!("node_memory_mb = {cap_mib}")),
    )
    .unwrap();
    let refused = bed.run_with(&tight, &["start", "sw_over"]).await;
    assert_eq!(refused.code, 16, "{refused:?}");
    assert!(refused.stderr.contains("N+1"), "{}", refused.stderr);
    let tight_capacity = bed.run_with(&tight, &["--json", "capacity"]).await.ok();
    assert!(
        tight_capacity.stdout.contains("\"more_tenants\": 0"),
        "{}",
        tight_capacity.stdout
    );

    // Nothing behind: no record, no service, no network.
    let status = bed.run(&["status", "sw_over"]).await;
    assert_eq!(status.code, 8, "{status:?}");
    let services = bed
        .on_manager("service", "label=io.provision.tenant=sw_over")
        .await;
    assert!(services.is_empty(), "{}", services);
    let networks = bed
        .on_manager("network", "name=provision-net-sw_over")
        .await;
    assert!(networks.is_empty());

    // --allow-overcommit starts it anyway; then it goes again.
    bed.run_with(&tight, &["start", "sw_over", "--allow-overcommit"])
        .await
        .ok();
    bed.run(&["destroy", "sw_over", "--purge-data", "--yes"])
        .await
        .ok();
}

#[tokio::test]
#[ignore = "needs the Swarm test bed: scripts/test-swarm"]
async fn start_stop_start_destroy_and_purge_as_on_one_engine() {
    let _serial = SERIAL.lock().await;
    let bed = Bed::get();
    let t = "sw_life";
    let first = bed.json(&["start", t]).await;
    let (gateway, admin) = (first["gateway_port"].clone(), first["admin_port"].clone());
    assert!(first["gateway_endpoint"]
        .as_str()
        .unwrap()
        .ends_with(&format!(":{gateway}")));
    let status = bed.status(t).await;
    assert_eq!(status["state"], "running", "{status}");
    assert_eq!(status["containers"].as_array().unwrap().len(), 3);

    bed.run(&["stop", t]).await.ok();
    let stopped = bed.status(t).await;
    assert_eq!(stopped["state"], "stopped", "{stopped}");
    assert!(stopped["gateway_endpoint"].is_null(), "{stopped}");

    let again = bed.json(&["start", t]).await;
    assert_eq!(
        (again["gateway_port"].clone(), again["admin_port"].clone()),
        (gateway, admin)
    );
    assert_eq!(bed.status(t).await["state"], "running");
    // A start of a running tenant changes nothing.
    let same = bed.json(&["start", t]).await;
    assert_eq!(same["changed"], false, "{same}");

    bed.run(&["destroy", t, "--purge-data", "--yes"]).await.ok();
    let gone = bed.run(&["status", t]).await;
    assert_eq!(gone.code, 8, "{gone:?}");
    let services = bed
        .on_manager("service", &format!("label=io.provision.tenant={t}"))
        .await;
    assert!(services.is_empty());
    let secrets = bed
        .on_manager("secret", &format!("label=io.provision.tenant={t}"))
        .await;
    assert!(secrets.is_empty(), "{}", secrets);
}

/// Whether `docker -H <manager> <args>` succeeds.
async fn on_manager_ok(bed: &Bed, args: &[&str]) -> bool {
    tokio::process::Command::new("docker")
        .args(["-H", &bed.manager])
        .args(args)
        .output()
        .await
        .is_ok_and(|o| o.status.success())
}

#[tokio::test]
#[ignore = "needs the Swarm test bed: scripts/test-swarm"]
async fn z_behind_the_front_any_node_serves_a_gateway_and_its_endpoint_stays_when_the_task_moves() {
    let _serial = SERIAL.lock().await;
    let bed = Bed::get();
    // The front binds every leased port on every node: the shared tenants,
    // which publish theirs on their nodes, go first (this test runs last).
    for t in TENANTS {
        bed.run(&["destroy", t, "--purge-data", "--yes"]).await;
    }
    let config = bed.dir.join("front.toml");
    std::fs::write(
        &config,
        format!(
            "{}\n[front]\nenabled = true\nnode_network = \"{}\"\n",
            bed.config_text(""),
            bed.subnet
        ),
    )
    .unwrap();
    let t = "sw_front";
    bed.run_with(&config, &["destroy", t, "--purge-data", "--yes"])
        .await;
    let started = bed.run_with(&config, &["--json", "start", t]).await.ok();
    let started: Value = serde_json::from_str(&started.stdout).unwrap();
    let port = started["gateway_port"].as_u64().expect("a gateway port");
    let admin_port = started["admin_port"].as_u64().expect("an admin port");
    let fixed = format!("localhost:{port}");
    assert_eq!(started["gateway_endpoint"], fixed.as_str(), "{started}");
    let token = bed
        .run_with(&config, &["--json", "gateway", "add", t, "gw-1"])
        .await
        .ok()
        .field("token")
        .expect("a token");
    let status = || async {
        let run = bed.run_with(&config, &["--json", "status", t]).await.ok();
        serde_json::from_str::<Value>(&run.stdout).unwrap()
    };
    let ingest_node = |status: &Value| {
        status["containers"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["role"] == "ingest")
            .and_then(|c| c["node"].as_str().map(str::to_owned))
    };
    let before = status().await;
    assert_eq!(before["state"], "running", "{before}");
    let first = ingest_node(&before).expect("ingest runs on a node");
    // A node the task does not run on, and its address.
    let nodes = bed.nodes().await;
    let other = nodes
        .iter()
        .find(|n| n["hostname"] != first.as_str() && n["availability"] == "active")
        .expect("another active node");
    let (other_name, other_addr) = (
        other["hostname"].as_str().unwrap().to_owned(),
        other["address"].as_str().unwrap().to_owned(),
    );

    // A gateway on that node is served: the front there forwards to the
    // task's node (it may take the fronts a moment to start and load the
    // configuration; the gateway connects again until it is acked).
    let since = Instant::now();
    let s = stream(t, &format!("{other_addr}:{port}"), &token, 20.0);
    acked_since(&s, since, Duration::from_secs(180)).await;
    // Ingest names the gateway's own address (the host's on the bed's
    // network), from the PROXY header of a front on another node.
    let logs = bed
        .run_with(&config, &["logs", t, "--tail", "200"])
        .await
        .ok();
    let host = &bed.host;
    assert!(
        logs.stdout
            .lines()
            .any(|l| l.contains("gateway connected") && l.contains(&format!("{host}:"))),
        "ingest does not name the gateway's address {host}:\n{}",
        logs.stdout
    );
    // The panel answers through the front of a third node too.
    let third = nodes
        .iter()
        .find(|n| n["hostname"] != other_name.as_str())
        .and_then(|n| n["address"].as_str())
        .unwrap()
        .to_owned();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let answer = tokio::net::TcpStream::connect(format!("{third}:{admin_port}")).await;
        let ok = match answer {
            Ok(mut conn) => {
                use tokio::io::{AsyncReadExt, AsyncWriteExt};
                let _ = conn
                    .write_all(b"GET /login HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                    .await;
                let mut text = String::new();
                let _ = conn.read_to_string(&mut text).await;
                text.starts_with("HTTP/1.1 200")
            }
            Err(_) => false,
        };
        if ok {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the panel did not answer on {third}:{admin_port}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }

    // The task moves (its node drained): the endpoint stays, and the
    // gateway, still pointed at the same node and port, is served again.
    if first == other_name {
        panic!("the gateway's node runs the task");
    }
    let drained = bed
        .run_with(
            &config,
            &["--json", "node", "drain", &first, "--timeout", "240"],
        )
        .await;
    let moved = status().await;
    bed.run_with(&config, &["node", "activate", &first])
        .await
        .ok();
    drained.ok();
    let now_on = ingest_node(&moved).expect("ingest runs on a node");
    assert_ne!(now_on, first, "{moved}");
    assert_eq!(moved["gateway_endpoint"], fixed.as_str(), "{moved}");
    assert_eq!(s.endpoint.get(), format!("{other_addr}:{port}"));
    let since = Instant::now();
    acked_since(&s, since, Duration::from_secs(90)).await;

    // An upgrade to other builds is the Swarm's start-first update behind
    // the fronts: the gateway, on the same node and port, is acked again
    // by the new ingest, and loses nothing.
    for app in ["ingest", "admin", "notifier"] {
        let pushed = format!("{}/provision/{app}:swup", bed.registry_push);
        for args in [
            vec![
                "tag".to_owned(),
                format!("provision/{app}:dev"),
                pushed.clone(),
            ],
            vec!["push".to_owned(), pushed],
        ] {
            let out = std::process::Command::new("docker")
                .args(&args)
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "docker {args:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }
    let before_upgrade = ingest_node(&status().await);
    let upgraded = bed
        .run_with(&config, &["--json", "upgrade", t, "--image-tag", "swup"])
        .await
        .ok();
    let report: Value = serde_json::from_str(&upgraded.stdout).unwrap();
    assert_eq!(report["tenants"][0]["result"], "upgraded", "{report}");
    let after = status().await;
    assert_eq!(after["gateway_endpoint"], fixed.as_str(), "{after}");
    assert_ne!(
        ingest_node(&after),
        before_upgrade,
        "start-first puts the new task on another node: {after}"
    );
    let since = Instant::now();
    acked_since(&s, since, Duration::from_secs(60)).await;
    finish(&bed, vec![s]).await;

    bed.run_with(&config, &["destroy", t, "--purge-data", "--yes"])
        .await
        .ok();
    // The front goes with the test: the next run's tenants publish their
    // own ports again.
    assert!(on_manager_ok(&bed, &["service", "rm", "provision-front"]).await);
}
