//! Benchmarks `provision start` against what it has to do anyway (the
//! floor) and against what a user would otherwise do (docker-compose plus
//! cqlsh), in one run, so the result is a ratio. Prints markdown tables.
//!
//! Four routes, each ending when the tenant is usable (both apps answer
//! `GET /healthz` on their container address, the criterion `provision
//! start` itself waits for); `--routes` picks them (default `P,F,C`):
//!
//! - **P**: the real `provision --config <bench config> --json start <id>`
//!   binary, one process per tenant. Its peak RSS (`VmHWM`) and CPU time
//!   are sampled from /proc every 10 ms.
//! - **F** (floor): in this process, no state store, no lock, no plan: one
//!   Docker client and one CQL session, then per tenant the same CQL the
//!   provisioner issues (`provisioner::cql::tenant::ensure_keyspace`,
//!   `ensure_role`, `create_admin_user`) and the same backend calls
//!   (`provisioner::backend::docker::DockerBackend`: network, attach,
//!   create + start from the same `ContainerSpec`s), in the same order,
//!   then a tight poll of both health endpoints.
//! - **C** (compose): an equivalent compose file per tenant (generated from
//!   the same container bodies), `cqlsh -f` with the same CQL statements,
//!   then `docker-compose -p <tenant> up -d`, then the same readiness poll.
//! - **D** (daemon): the same `provision --json start <id>` as P, with
//!   `--server unix://<socket>`: the CLI asks a `provisiond --config <bench
//!   config> --socket <dir>/provisiond.sock` that the bench starts (when D
//!   is among the routes) before the first batch and ends after the last;
//!   D's tenants are destroyed through it too. D / P is its cost.
//!
//! Each route runs for 1 tenant and for N tenants at once (default 20), the
//! routes interleaved (and rotated) round after round so machine noise hits
//! them alike. Everything runs against a Cassandra node of its own
//! (`provision-bench-cassandra` on `provision-bench-net`, reused when it is
//! already running, removed at the end unless `--keep-node`), so the test
//! suite's node and its traffic are left alone. After the first N-tenant
//! batch of route P the host memory per tenant is measured: the two
//! containers (cgroup usage minus inactive page cache, as `docker stats`),
//! their containerd shims and docker-proxy processes (PSS), and the growth
//! of the Cassandra JVM's RSS.
//!
//! `cargo run --release -p provision-testkit --bin bench-provision -- \
//!    [--rounds N] [--rounds-many N] [--tenants N] [--routes P,F,C,D] [--poll-ms MS] [--keep-node] [--keep-files]`

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bollard::models::ContainerCreateBody;
use bollard::query_parameters::RemoveContainerOptionsBuilder;
use bollard::Docker;
use futures::future::join_all;
use provision_testkit::bench::{
    config_text, ensure_node, kib_field, loadavg, median, min, random_suffix, remove_node,
    sibling_binary, Daemon, BENCH_LABEL, NODE, SUPERUSER,
};
use provision_testkit::{docker, is_not_found};
use provisioner::backend::docker::{create_body, http_ok, DockerBackend};
use provisioner::backend::Backend;
use provisioner::cql::tenant::{create_admin_user, drop_tenant, ensure_keyspace, ensure_role};
use provisioner::domain::planner::FIRST_ADMIN_USER;
use provisioner::domain::spec::{tenant_container, ContainerSpec, SpecInputs};
use provisioner::domain::state::TenantRecord as ProviderRecord;
use provisioner::domain::Desired;
use provisioner::{Config, ProviderId, Role};
use rand::Rng;
use scylla::client::session::Session;
use serde_json::{json, Value};
use tenant_schema::cql::connect_published;
use tenant_schema::model::{hash_password, new_password};
use tenant_schema::{MIGRATIONS, SCHEMA_VERSION_SETTING};

/// Port pools of routes P and D (the provisioner leases from these), and the
/// fixed ports of routes F and C (`base + tenant index`).
const P_GATEWAY: (u16, u16) = (31000, 31199);
const P_ADMIN: (u16, u16) = (32000, 32199);
const F_BASE: (u16, u16) = (31200, 32200);
const C_BASE: (u16, u16) = (31400, 32400);
const READY_TIMEOUT: Duration = Duration::from_secs(240);

#[derive(Debug, Clone)]
struct Args {
    rounds: usize,
    rounds_many: usize,
    tenants: usize,
    poll: Duration,
    keep_node: bool,
    keep_files: bool,
    routes: Vec<Route>,
}

fn parse_args() -> Args {
    let mut args = Args {
        rounds: 3,
        rounds_many: 2,
        tenants: 20,
        poll: Duration::from_millis(20),
        keep_node: false,
        keep_files: false,
        routes: Route::DEFAULT.to_vec(),
    };
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        let mut value = |name: &str| -> u64 {
            it.next()
                .and_then(|v| v.parse().ok())
                .unwrap_or_else(|| panic!("{name} needs a number"))
        };
        match a.as_str() {
            "--rounds" => args.rounds = value("--rounds") as usize,
            "--rounds-many" => args.rounds_many = value("--rounds-many") as usize,
            "--tenants" => args.tenants = value("--tenants") as usize,
            "--poll-ms" => args.poll = Duration::from_millis(value("--poll-ms")),
            "--keep-node" => args.keep_node = true,
            "--keep-files" => args.keep_files = true,
            "--routes" => {
                let list = it.next().expect("--routes needs a list, e.g. P,D");
                args.routes = list
                    .split(',')
                    .map(|r| {
                        Route::parse(r.trim())
                            .unwrap_or_else(|| panic!("unknown route {r:?} (P, F, C or D)"))
                    })
                    .collect();
                args.routes.dedup();
                assert!(!args.routes.is_empty(), "--routes needs one route at least");
            }
            "-h" | "--help" => {
                println!("usage: bench-provision [--rounds N] [--rounds-many N] [--tenants N] [--routes P,F,C,D] [--poll-ms MS] [--keep-node] [--keep-files]");
                std::process::exit(0);
            }
            other => panic!("unknown argument {other} (see --help)"),
        }
    }
    assert!(
        (1..=190).contains(&args.tenants),
        "--tenants must be 1..=190"
    );
    args
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Route {
    Provision,
    Floor,
    Compose,
    Daemon,
}

impl Route {
    const ALL: [Route; 4] = [
        Route::Provision,
        Route::Floor,
        Route::Compose,
        Route::Daemon,
    ];
    /// Without `--routes`.
    const DEFAULT: [Route; 3] = [Route::Provision, Route::Floor, Route::Compose];

    fn letter(self) -> char {
        match self {
            Route::Provision => 'p',
            Route::Floor => 'f',
            Route::Compose => 'c',
            Route::Daemon => 'd',
        }
    }

    fn parse(name: &str) -> Option<Route> {
        Route::ALL
            .into_iter()
            .find(|r| name.eq_ignore_ascii_case(&r.letter().to_string()))
    }

    fn title(self) -> &'static str {
        match self {
            Route::Provision => "P: `provision start`",
            Route::Floor => "F: floor (same calls, direct)",
            Route::Compose => "C: `docker-compose up -d` + cqlsh",
            Route::Daemon => "D: `provision --server unix://… start`",
        }
    }
}

/// One route's batch: the wall time until every tenant was usable.
#[derive(Debug, Clone, Default)]
struct Batch {
    wall: Duration,
    /// Route P: the largest peak RSS (KiB) and the CPU time (ms) per process.
    peak_rss_kib: Vec<u64>,
    cpu_ms: Vec<u64>,
    /// Route F: where the time went (connect, CQL, Docker, health), for the
    /// slowest tenant.
    phases: Option<[Duration; 4]>,
    /// Routes P and D, per process, from the operations log: before the
    /// operation (process start until queued, or until started when run
    /// locally), queued, running, and from its end until the process exited.
    op_phases: Vec<[f64; 4]>,
}

struct Bench {
    args: Args,
    docker: Docker,
    /// The provisioner's own backend on the same engine (route F).
    backend: DockerBackend,
    node_addr: SocketAddr,
    dir: PathBuf,
    config_path: PathBuf,
    config: Config,
    provision: PathBuf,
    cqlsh: PathBuf,
    run: String,
    admin: Session,
    batches: usize,
    /// Tenants created and not yet removed.
    pending: Vec<String>,
    /// Route D's daemon.
    daemon: Option<Daemon>,
}

/// Everything measured, for the report.
struct Outcome {
    one: HashMap<&'static str, Vec<Batch>>,
    many: HashMap<&'static str, Vec<Batch>>,
    memory: Option<Memory>,
    load: String,
}

fn key(route: Route) -> &'static str {
    route.title()
}

#[tokio::main]
async fn main() {
    use futures::FutureExt;
    let args = parse_args();
    let docker = docker().await;
    let (node_addr, node_created) = ensure_node(&docker).await;
    let run = random_suffix();
    let dir = std::env::temp_dir().join(format!("provision-bench-{run}"));
    std::fs::create_dir_all(&dir).expect("create the bench directory");
    let config_path = dir.join("provision.toml");
    std::fs::write(
        &config_path,
        config_text(&dir, &run, node_addr, P_GATEWAY, P_ADMIN),
    )
    .expect("write the config");
    let config = Config::load(Some(&config_path)).expect("the bench config parses");
    let provision = sibling_binary("provision", "PROVISION_BIN");
    let daemon = match args.routes.contains(&Route::Daemon) {
        true => {
            let provisiond = sibling_binary("provisiond", "PROVISIOND_BIN");
            Some(Daemon::start(&provisiond, &config_path, &dir, None).await)
        }
        false => None,
    };
    let cqlsh = std::env::var_os("CQLSH")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("cqlsh"));
    check_ports_free(args.tenants);
    let admin = connect_published(node_addr, SUPERUSER.0, SUPERUSER.1)
        .await
        .expect("a superuser session on the bench node");
    let mut bench = Bench {
        args: args.clone(),
        backend: DockerBackend::new(config.clone()),
        docker,
        node_addr,
        dir,
        config_path,
        config,
        provision,
        cqlsh,
        run,
        admin,
        batches: 0,
        pending: Vec::new(),
        daemon,
    };
    let outcome = std::panic::AssertUnwindSafe(bench.measure())
        .catch_unwind()
        .await;
    bench.cleanup_all().await;
    if let Some(daemon) = bench.daemon.take() {
        let log = std::fs::read_to_string(&daemon.log).unwrap_or_default();
        for line in log
            .lines()
            .filter(|l| l.contains("WARN") || l.contains("ERROR"))
        {
            eprintln!("provisiond: {line}");
        }
        if args.keep_files {
            eprintln!("provisiond's log: {}", daemon.log.display());
        }
        daemon.stop().await;
    }
    if args.keep_files {
        eprintln!(
            "the bench's config and compose files: {}",
            bench.dir.display()
        );
    } else {
        let _ = std::fs::remove_dir_all(&bench.dir);
    }
    if !args.keep_node && node_created {
        remove_node(&bench.docker).await;
    }
    match outcome {
        Ok(outcome) => print_report(&args, &outcome),
        Err(panic) => std::panic::resume_unwind(panic),
    }
}

/// Every port the bench publishes must be free on the host.
fn check_ports_free(tenants: usize) {
    let mut busy = Vec::new();
    let fixed = [F_BASE, C_BASE]
        .into_iter()
        .flat_map(|(g, a)| (0..tenants as u16).flat_map(move |i| [g + i, a + i]));
    let pools =
        (P_GATEWAY.0..P_GATEWAY.0 + tenants as u16).chain(P_ADMIN.0..P_ADMIN.0 + tenants as u16);
    for port in fixed.chain(pools) {
        if std::net::TcpListener::bind(("0.0.0.0", port)).is_err() {
            busy.push(port);
        }
    }
    assert!(
        busy.is_empty(),
        "ports the bench needs are taken: {busy:?} (a leftover bench run? docker ps --filter label={BENCH_LABEL})"
    );
}

fn pid(id: &str) -> ProviderId {
    ProviderId::parse(id).expect("a valid id")
}

/// A provider record as the store would hand it out (fresh secrets).
fn record(id: &str, gateway: u16, admin: u16) -> ProviderRecord {
    let mut rng = rand::thread_rng();
    ProviderRecord {
        id: pid(id),
        desired: Desired::Running,
        cassandra_password: new_password(),
        session_secret: (0..32)
            .map(|_| format!("{:02x}", rng.gen::<u8>()))
            .collect(),
        schema_version: 0,
        role_ready: false,
        admin_user_created: false,
        gateway_port: Some(gateway),
        admin_port: Some(admin),
        created_at: String::new(),
        gateway_tls: provisioner::domain::GatewayTls::Off,
        limits: Default::default(),
        image_tag: None,
        cluster: provisioner::config::DEFAULT_CLUSTER.into(),
    }
}

/// `VmHWM` (KiB) and user+system CPU ticks of a process, while it lives.
fn proc_sample(pid: u32) -> Option<(u64, u64)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let hwm = kib_field(&status, "VmHWM:")?;
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // Fields 14 and 15 of stat; `rest` starts at field 3.
    let ticks = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    Some((hwm, ticks))
}

fn rss_kib(pid: i64) -> Option<u64> {
    kib_field(
        &std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?,
        "VmRSS:",
    )
}

fn pss_kib(pid: u32) -> Option<u64> {
    kib_field(
        &std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup")).ok()?,
        "Pss:",
    )
}

/// Every process's pid and argv.
fn processes() -> Vec<(u32, Vec<String>)> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.filter_map(|e| {
        let pid: u32 = e.ok()?.file_name().to_str()?.parse().ok()?;
        let raw = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
        let argv = raw
            .split(|b| *b == 0)
            .filter(|a| !a.is_empty())
            .map(|a| String::from_utf8_lossy(a).into_owned())
            .collect();
        Some((pid, argv))
    })
    .collect()
}

/// The value following `flag` in an argv.
fn arg_after<'a>(argv: &'a [String], flag: &str) -> Option<&'a str> {
    let at = argv.iter().position(|a| a == flag)?;
    argv.get(at + 1).map(String::as_str)
}

/// The container's address on its one network (its tenant's).
async fn container_ip(docker: &Docker, name: &str) -> Option<String> {
    docker
        .inspect_container(name, None)
        .await
        .ok()?
        .network_settings?
        .networks?
        .into_values()
        .find_map(|n| n.ip_address.filter(|ip| !ip.is_empty()))
}

/// Waits until both apps of a tenant answer `GET /healthz` on their
/// container address: what `provision start` waits for.
async fn wait_ready(docker: &Docker, config: &Config, id: &str, poll: Duration) {
    let checks = [
        (Role::Ingest, provisioner::domain::spec::INGEST_HEALTH_PORT),
        (Role::Admin, provisioner::domain::spec::ADMIN_PORT),
    ]
    .map(|(role, port)| {
        let name = config.container_name(&pid(id), role);
        async move {
            let deadline = Instant::now() + READY_TIMEOUT;
            let mut ip = None;
            loop {
                if ip.is_none() {
                    ip = container_ip(docker, &name).await;
                }
                if let Some(ip) = &ip {
                    if http_ok(&format!("{ip}:{port}"), "/healthz").await.is_ok() {
                        return;
                    }
                }
                assert!(
                    Instant::now() < deadline,
                    "{name} did not answer /healthz within {} s",
                    READY_TIMEOUT.as_secs()
                );
                tokio::time::sleep(poll).await;
            }
        }
    });
    join_all(checks).await;
}

/// The CQL that `provision start` issues for a new tenant, as a cqlsh
/// script (the reads it makes to stay idempotent left out).
fn tenant_cql(id: &ProviderId, password: &str, admin_hash: &str, config: &Config) -> String {
    let ks = id.keyspace();
    let role = id.cassandra_role();
    let mut statements = vec![format!(
        "CREATE KEYSPACE IF NOT EXISTS {ks} WITH replication = {}",
        config.replication().to_cql()
    )];
    for m in MIGRATIONS {
        statements.extend(m.statements_for(&ks));
        statements.push(format!(
            "INSERT INTO {ks}.settings (name, value) VALUES ('{SCHEMA_VERSION_SETTING}', '{}')",
            m.version
        ));
    }
    statements.push(format!(
        "CREATE ROLE IF NOT EXISTS {role} WITH PASSWORD = '{password}' AND LOGIN = true AND SUPERUSER = false"
    ));
    for permission in ["SELECT", "MODIFY"] {
        statements.push(format!("GRANT {permission} ON KEYSPACE {ks} TO {role}"));
    }
    statements.push(format!(
        "INSERT INTO {ks}.admin_users (username, password_hash, created_at) VALUES ('{FIRST_ADMIN_USER}', '{admin_hash}', toTimestamp(now()))"
    ));
    statements.join(";\n") + ";\n"
}

/// A compose service equivalent to a container body of the provisioner.
fn compose_service(name: &str, body: &ContainerCreateBody) -> Value {
    let host = body.host_config.clone().unwrap_or_default();
    let health = body.healthcheck.clone().unwrap_or_default();
    let secs = |ns: Option<i64>| format!("{}s", ns.unwrap_or(0) / 1_000_000_000);
    let ports: Vec<String> = host
        .port_bindings
        .iter()
        .flatten()
        .flat_map(|(container_port, bindings)| {
            bindings.iter().flatten().map(move |b| {
                format!(
                    "{}:{}:{container_port}",
                    b.host_ip.clone().unwrap_or_default(),
                    b.host_port.clone().unwrap_or_default()
                )
            })
        })
        .collect();
    let log = host.log_config.clone().unwrap_or_default();
    let mut service = json!({
        "image": body.image,
        "container_name": name,
        "user": body.user,
        "environment": body.env,
        "ports": ports,
        "labels": body.labels,
        "healthcheck": {
            "test": health.test,
            "interval": secs(health.interval),
            "timeout": secs(health.timeout),
            "retries": health.retries,
            "start_period": secs(health.start_period),
        },
        "restart": "unless-stopped",
        "mem_limit": host.memory,
        "memswap_limit": host.memory_swap,
        "pids_limit": host.pids_limit,
        "read_only": host.readonly_rootfs,
        "cap_drop": host.cap_drop,
        "security_opt": host.security_opt,
        "logging": { "driver": log.typ, "options": log.config },
        "networks": [host.network_mode],
        "volumes": host.binds,
    });
    if let Some(n) = host.nano_cpus {
        service["cpus"] = json!(n as f64 / 1e9);
    }
    service
}

/// Runs a command; panics with its output unless it succeeds.
async fn run_ok(mut command: tokio::process::Command, what: &str) {
    let out = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .output()
        .await
        .unwrap_or_else(|e| panic!("{what}: cannot run: {e}"));
    assert!(
        out.status.success(),
        "{what} failed ({}):\n{}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Host memory of the tenants just started (after they idled).
#[derive(Debug, Clone, Default)]
struct Memory {
    tenants: usize,
    /// Sums over the tenants, bytes.
    ingest: u64,
    admin: u64,
    notifier: u64,
    shims: (usize, u64),
    proxies: (usize, u64),
    cassandra_growth: i64,
}

impl Bench {
    async fn measure(&mut self) -> Outcome {
        let load_before = loadavg();
        let started = Instant::now();
        eprintln!("warm-up: one tenant per route (not recorded)");
        let routes = self.args.routes.clone();
        let k_routes = routes.len();
        for &route in &routes {
            self.batch(route, 1, false).await;
        }
        let mut one: HashMap<&'static str, Vec<Batch>> = HashMap::new();
        let mut many: HashMap<&'static str, Vec<Batch>> = HashMap::new();
        let mut memory = None;
        for round in 0..self.args.rounds {
            for k in 0..k_routes {
                let route = routes[(round + k) % k_routes];
                let (b, _) = self.batch(route, 1, false).await;
                one.entry(route.title()).or_default().push(b);
            }
        }
        for round in 0..self.args.rounds_many {
            for k in 0..k_routes {
                let route = routes[(round + k) % k_routes];
                let measure = route == Route::Provision && memory.is_none();
                let (b, m) = self.batch(route, self.args.tenants, measure).await;
                many.entry(route.title()).or_default().push(b);
                memory = memory.or(m);
            }
        }
        let load = format!(
            "load average before {load_before}, after {}; bench took {:.0} s",
            loadavg(),
            started.elapsed().as_secs_f64()
        );
        Outcome {
            one,
            many,
            memory,
            load,
        }
    }

    /// One route for `n` new tenants, then their cleanup.
    async fn batch(&mut self, route: Route, n: usize, measure: bool) -> (Batch, Option<Memory>) {
        self.batches += 1;
        let ids: Vec<String> = (0..n)
            .map(|i| format!("b{}{}_{i:02}_{}", route.letter(), self.batches, self.run))
            .collect();
        self.pending.extend(ids.iter().cloned());
        let cassandra_before = self.cassandra_rss().await;
        let batch = match route {
            Route::Provision | Route::Daemon => self.provision(route, &ids).await,
            Route::Floor => self.floor(&ids).await,
            Route::Compose => self.compose(&ids).await,
        };
        eprintln!(
            "{:<36} {n:>2} tenant(s): {:>6.2} s  (load {})",
            route.title(),
            batch.wall.as_secs_f64(),
            loadavg()
        );
        let memory = if measure {
            tokio::time::sleep(Duration::from_secs(5)).await;
            Some(self.memory(&ids, cassandra_before).await)
        } else {
            None
        };
        self.remove(route, &ids).await;
        self.pending.retain(|p| !ids.contains(p));
        (batch, memory)
    }

    async fn provision(&self, route: Route, ids: &[String]) -> Batch {
        let started = Instant::now();
        let runs = join_all(ids.iter().map(|id| self.provision_start(route, id))).await;
        let wall = started.elapsed();
        let mut op_phases = Vec::new();
        for (id, run) in ids.iter().zip(&runs) {
            op_phases.extend(self.op_phases(id, run.2, run.3).await);
        }
        Batch {
            wall,
            peak_rss_kib: runs.iter().map(|r| r.0).collect(),
            cpu_ms: runs.iter().map(|r| r.1).collect(),
            phases: None,
            op_phases,
        }
    }

    /// Where a start's time went, from its row in the operations log
    /// (`provision --json history <id>`, read locally).
    async fn op_phases(
        &self,
        id: &str,
        spawned: chrono::DateTime<chrono::Utc>,
        exited: chrono::DateTime<chrono::Utc>,
    ) -> Option<[f64; 4]> {
        let mut command = tokio::process::Command::new(&self.provision);
        command
            .arg("--config")
            .arg(&self.config_path)
            .args(["--json", "history", id]);
        let out = command.output().await.ok()?;
        let rows: Vec<Value> = serde_json::from_slice(&out.stdout).ok()?;
        let start = rows.iter().find(|r| r["kind"] == "start")?;
        let at = |field: &str| {
            start[field]
                .as_str()
                .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
                .map(|t| t.with_timezone(&chrono::Utc))
        };
        let (started, finished) = (at("started_at")?, at("finished_at")?);
        let queued = at("queued_at").unwrap_or(started);
        let secs = |a: chrono::DateTime<chrono::Utc>, b: chrono::DateTime<chrono::Utc>| {
            (b - a).num_microseconds().unwrap_or(0) as f64 / 1e6
        };
        Some([
            secs(spawned, queued),
            secs(queued, started),
            secs(started, finished),
            secs(finished, exited),
        ])
    }

    /// `provision` on the bench config: locally (route P) or through the
    /// daemon (route D).
    fn provision_command(&self, route: Route) -> tokio::process::Command {
        let mut command = tokio::process::Command::new(&self.provision);
        command.arg("--config").arg(&self.config_path);
        if route == Route::Daemon {
            let daemon = self.daemon.as_ref().expect("route D has its daemon");
            command.arg("--server").arg(daemon.server());
        }
        command
    }

    /// One `provision start` (the client's process with route D): its
    /// peak RSS (KiB), CPU time (ms), and when it was spawned and ended.
    async fn provision_start(
        &self,
        route: Route,
        id: &str,
    ) -> (
        u64,
        u64,
        chrono::DateTime<chrono::Utc>,
        chrono::DateTime<chrono::Utc>,
    ) {
        let mut command = self.provision_command(route);
        command
            .args(["--json", "start", id])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let spawned = chrono::Utc::now();
        let child = command.spawn().expect("provision runs");
        let pid = child.id().expect("a pid");
        let done = Arc::new(AtomicBool::new(false));
        let sampler = tokio::spawn({
            let done = done.clone();
            async move {
                let (mut peak, mut ticks) = (0, 0);
                while !done.load(Ordering::Relaxed) {
                    if let Some((hwm, t)) = proc_sample(pid) {
                        peak = peak.max(hwm);
                        ticks = ticks.max(t);
                    }
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
                (peak, ticks)
            }
        });
        let out = child.wait_with_output().await.expect("provision ends");
        let exited = chrono::Utc::now();
        done.store(true, Ordering::Relaxed);
        let (peak, ticks) = sampler.await.expect("sampler");
        assert!(
            out.status.success(),
            "provision start {id} failed:\n{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        // Linux's USER_HZ is 100.
        (peak, ticks * 10, spawned, exited)
    }

    async fn floor(&self, ids: &[String]) -> Batch {
        let started = Instant::now();
        let backend = &self.backend;
        backend.docker().await.expect("docker");
        let session = connect_published(self.node_addr, SUPERUSER.0, SUPERUSER.1)
            .await
            .expect("cql session");
        let connected = started.elapsed();
        let runs = join_all(
            ids.iter()
                .enumerate()
                .map(|(i, id)| self.floor_one(backend, &session, id, i as u16, started)),
        )
        .await;
        let wall = started.elapsed();
        let slowest = runs
            .into_iter()
            .max_by_key(|r| r[2])
            .expect("one tenant at least");
        Batch {
            wall,
            phases: Some([
                connected,
                slowest[0] - connected,
                slowest[1] - slowest[0],
                slowest[2] - slowest[1],
            ]),
            ..Default::default()
        }
    }

    /// The tenant's own network with the node attached: the calls `provision
    /// start` makes for it.
    async fn tenant_network(&self, backend: &DockerBackend, id: &str) {
        let network = self.config.tenant_network(&pid(id));
        backend
            .create_network(&network, Some(&pid(id)))
            .await
            .expect("create the tenant network");
        backend
            .attach(NODE, &network)
            .await
            .expect("attach the node to the tenant network");
    }

    /// A tenant container's spec, as `provision start` makes it.
    async fn spec(
        &self,
        backend: &DockerBackend,
        record: &ProviderRecord,
        role: Role,
    ) -> ContainerSpec {
        let secrets =
            provisioner::secrets::write(&self.dir, record, role, None, None).expect("secrets");
        let image_id = backend
            .image_id(self.config.image(role))
            .await
            .expect("the tenant image");
        tenant_container(
            &self.config,
            SpecInputs {
                tenant: &record.id,
                role,
                host_port: record.port(role),
                image_id: &image_id,
                image_tag: None,
                secrets_dir: secrets,
                gateway_tls: record.gateway_tls,
                limits: record.limits,
            },
        )
    }

    /// The floor for one tenant; returns when its CQL, its containers and
    /// its readiness were done (since `started`).
    async fn floor_one(
        &self,
        backend: &DockerBackend,
        session: &Session,
        id: &str,
        i: u16,
        started: Instant,
    ) -> [Duration; 3] {
        let pid = ProviderId::parse(id).expect("valid id");
        let (gateway, admin) = (F_BASE.0 + i, F_BASE.1 + i);
        let record = record(id, gateway, admin);
        ensure_keyspace(session, &pid, &self.config.replication())
            .await
            .expect("keyspace");
        ensure_role(session, &pid, &record.cassandra_password)
            .await
            .expect("role");
        create_admin_user(session, &pid, FIRST_ADMIN_USER, &new_password())
            .await
            .expect("admin user");
        let cql = started.elapsed();
        self.tenant_network(backend, id).await;
        for role in Role::ALL {
            let spec = self.spec(backend, &record, role).await;
            backend
                .create_container(&spec)
                .await
                .unwrap_or_else(|e| panic!("create {}: {e}", spec.name));
            backend
                .start_container(&spec.name)
                .await
                .unwrap_or_else(|e| panic!("start {}: {e}", spec.name));
        }
        let containers = started.elapsed();
        let docker = backend.docker().await.expect("docker");
        wait_ready(docker, &self.config, id, self.args.poll).await;
        [cql, containers, started.elapsed()]
    }

    async fn compose(&self, ids: &[String]) -> Batch {
        // The compose files exist before the user starts: not timed.
        let mut prepared: Vec<(String, PathBuf, ProviderRecord)> = Vec::new();
        for (i, id) in ids.iter().enumerate() {
            let record = record(id, C_BASE.0 + i as u16, C_BASE.1 + i as u16);
            let mut specs = Vec::new();
            for role in Role::ALL {
                specs.push(self.spec(&self.backend, &record, role).await);
            }
            prepared.push({
                let dir = self.dir.join(id);
                std::fs::create_dir_all(&dir).expect("compose dir");
                let mut services = serde_json::Map::new();
                for (role, spec) in Role::ALL.into_iter().zip(&specs) {
                    let body = create_body(spec);
                    let name = spec.name.clone();
                    services.insert(role.as_str().to_owned(), compose_service(&name, &body));
                }
                let file = json!({
                    "version": "2.4",
                    "services": services,
                    "networks": { self.config.tenant_network(&pid(id)): { "external": true } },
                });
                // JSON is YAML.
                std::fs::write(
                    dir.join("docker-compose.yml"),
                    serde_json::to_string_pretty(&file).expect("json"),
                )
                .expect("write the compose file");
                (id.clone(), dir, record)
            });
        }
        let started = Instant::now();
        join_all(
            prepared
                .iter()
                .map(|(id, dir, record)| self.compose_one(id, dir, record)),
        )
        .await;
        Batch {
            wall: started.elapsed(),
            ..Default::default()
        }
    }

    async fn compose_one(&self, id: &str, dir: &Path, record: &ProviderRecord) {
        let pid = ProviderId::parse(id).expect("valid id");
        let hash = tokio::task::spawn_blocking(|| hash_password(&new_password()))
            .await
            .expect("hash task")
            .expect("argon2");
        let script = dir.join("tenant.cql");
        tokio::fs::write(
            &script,
            tenant_cql(&pid, &record.cassandra_password, &hash, &self.config),
        )
        .await
        .expect("write the cql script");
        let mut cqlsh = tokio::process::Command::new(&self.cqlsh);
        cqlsh
            .arg(self.node_addr.ip().to_string())
            .arg(self.node_addr.port().to_string())
            .args(["-u", SUPERUSER.0, "-p", SUPERUSER.1])
            .args(["--connect-timeout=60", "--request-timeout=120", "-f"])
            .arg(&script);
        run_ok(cqlsh, &format!("cqlsh for {id}")).await;
        // The tenant's network, with the node attached, as provision makes it.
        self.tenant_network(&self.backend, id).await;
        let mut compose = tokio::process::Command::new("docker-compose");
        compose
            .args(["-p", id, "-f", "docker-compose.yml", "up", "-d"])
            .current_dir(dir);
        run_ok(compose, &format!("docker-compose up for {id}")).await;
        wait_ready(&self.docker, &self.config, id, self.args.poll).await;
    }

    /// Removes a batch's tenants: `provision destroy --purge-data` for
    /// routes P and D (through the daemon), containers and keyspace/role directly for the others.
    async fn remove(&self, route: Route, ids: &[String]) {
        if matches!(route, Route::Provision | Route::Daemon) {
            join_all(ids.iter().map(|id| {
                let mut command = self.provision_command(route);
                command.args(["destroy", id, "--yes", "--purge-data"]);
                run_ok(command, "provision destroy")
            }))
            .await;
        } else {
            join_all(ids.iter().map(|id| self.remove_direct(id))).await;
        }
    }

    async fn remove_direct(&self, id: &str) {
        for role in Role::ALL {
            let options = RemoveContainerOptionsBuilder::default()
                .force(true)
                .v(true)
                .build();
            let name = self.config.container_name(&pid(id), role);
            match self.docker.remove_container(&name, Some(options)).await {
                Ok(()) => {}
                Err(e) if is_not_found(&e) => {}
                Err(e) => panic!("remove {name}: {e}"),
            }
        }
        // The tenant's network too, as `provision destroy` removes it: the
        // engine's address pools hold about 30 networks.
        self.backend
            .remove_network(&self.config.tenant_network(&pid(id)), Some(NODE))
            .await
            .unwrap_or_else(|e| panic!("remove the network of {id}: {e}"));
        if let Ok(pid) = ProviderId::parse(id) {
            drop_tenant(&self.admin, &pid)
                .await
                .unwrap_or_else(|e| panic!("drop tenant {id}: {e}"));
        }
    }

    /// Whatever an interrupted batch left: containers by label, keyspaces
    /// and roles of the tenants not yet removed.
    async fn cleanup_all(&self) {
        provision_testkit::remove_labelled(&self.docker, &format!("{BENCH_LABEL}={}", self.run))
            .await;
        for id in &self.pending {
            if let Ok(pid) = ProviderId::parse(id) {
                let _ = drop_tenant(&self.admin, &pid).await;
            }
        }
    }

    async fn cassandra_rss(&self) -> Option<u64> {
        let pid = self
            .docker
            .inspect_container(NODE, None)
            .await
            .ok()?
            .state?
            .pid?;
        rss_kib(pid)
    }

    async fn memory(&self, ids: &[String], cassandra_before: Option<u64>) -> Memory {
        let mut m = Memory {
            tenants: ids.len(),
            ..Default::default()
        };
        let names: Vec<(Role, String)> = ids
            .iter()
            .flat_map(|id| Role::ALL.map(|r| (r, self.config.container_name(&pid(id), r))))
            .collect();
        let usages = join_all(names.iter().map(|(_, n)| self.backend.usage(n))).await;
        for ((role, name), usage) in names.iter().zip(usages) {
            let bytes = usage
                .ok()
                .flatten()
                .unwrap_or_else(|| panic!("no stats for {name}"))
                .memory_bytes;
            match role {
                Role::Ingest => m.ingest += bytes,
                Role::Admin => m.admin += bytes,
                Role::Notifier => m.notifier += bytes,
            }
        }
        let mut container_ids = Vec::new();
        let mut ips = Vec::new();
        for (_, name) in &names {
            let inspect = self
                .docker
                .inspect_container(name, None)
                .await
                .expect("inspect");
            container_ids.extend(inspect.id.clone());
            ips.extend(container_ip(&self.docker, name).await);
        }
        for (pid, argv) in processes() {
            let Some(exe) = argv.first() else { continue };
            let mine = if exe.ends_with("containerd-shim-runc-v2") {
                arg_after(&argv, "-id")
                    .is_some_and(|id| container_ids.iter().any(|c| c == id))
                    .then_some(&mut m.shims)
            } else if exe.ends_with("docker-proxy") {
                arg_after(&argv, "-container-ip")
                    .is_some_and(|ip| ips.iter().any(|i| i == ip))
                    .then_some(&mut m.proxies)
            } else {
                None
            };
            if let (Some(slot), Some(pss)) = (mine, pss_kib(pid)) {
                slot.0 += 1;
                slot.1 += pss * 1024;
            }
        }
        if let (Some(before), Some(after)) = (cassandra_before, self.cassandra_rss().await) {
            m.cassandra_growth = (after as i64 - before as i64) * 1024;
        }
        m
    }
}

fn mib(bytes: f64) -> String {
    format!("{:.1} MiB", bytes / 1048576.0)
}

fn print_report(args: &Args, o: &Outcome) {
    let secs = |batches: Option<&Vec<Batch>>| -> Vec<f64> {
        batches
            .map(|b| b.iter().map(|b| b.wall.as_secs_f64()).collect())
            .unwrap_or_default()
    };
    let n = args.tenants;
    println!();
    println!(
        "### `provision start`: 1 new tenant ({} rounds), {n} at once ({} rounds); wall time until every tenant answers /healthz",
        args.rounds, args.rounds_many
    );
    println!();
    println!(
        "| route | 1 tenant: min | 1 tenant: median | {n} at once: min | {n} at once: median |"
    );
    println!("|---|---|---|---|---|");
    let mut stats = HashMap::new();
    for &route in &args.routes {
        let a = secs(o.one.get(key(route)));
        let b = secs(o.many.get(key(route)));
        let s = [min(&a), median(a), min(&b), median(b)];
        println!(
            "| {} | {:.2} s | {:.2} s | {:.2} s | {:.2} s |",
            route.title(),
            s[0],
            s[1],
            s[2],
            s[3]
        );
        stats.insert(route.letter(), s);
    }
    for (label, this, other) in [
        ("P / F", 'p', 'f'),
        ("P / C", 'p', 'c'),
        ("D / P", 'd', 'p'),
    ] {
        let (Some(p), Some(x)) = (stats.get(&this), stats.get(&other)) else {
            continue;
        };
        println!(
            "| ratio {label} | {:.2} | {:.2} | {:.2} | {:.2} |",
            p[0] / x[0],
            p[1] / x[1],
            p[2] / x[2],
            p[3] / x[3]
        );
    }
    println!();
    println!("| measure | value |");
    println!("|---|---|");
    let p1 = o
        .one
        .get(key(Route::Provision))
        .cloned()
        .unwrap_or_default();
    let pn = o
        .many
        .get(key(Route::Provision))
        .cloned()
        .unwrap_or_default();
    let all = |b: &[Batch], f: fn(&Batch) -> &Vec<u64>| -> Vec<f64> {
        b.iter()
            .flat_map(|b| f(b).iter().map(|v| *v as f64))
            .collect()
    };
    let rss1 = all(&p1, |b| &b.peak_rss_kib);
    let rssn = all(&pn, |b| &b.peak_rss_kib);
    println!(
        "| `provision start` peak RSS (VmHWM), 1 tenant | median {}, max {} |",
        mib(median(rss1.clone()) * 1024.0),
        mib(rss1.iter().copied().fold(0.0, f64::max) * 1024.0)
    );
    println!(
        "| `provision start` peak RSS per process, {n} at once | median {}, max {} (all {n}: {} together) |",
        mib(median(rssn.clone()) * 1024.0),
        mib(rssn.iter().copied().fold(0.0, f64::max) * 1024.0),
        mib(pn.first().map(|b| b.peak_rss_kib.iter().sum::<u64>() as f64).unwrap_or(0.0) * 1024.0)
    );
    println!(
        "| `provision start` CPU time (user+sys), 1 tenant / {n} at once | median {:.0} ms / {:.0} ms |",
        median(all(&p1, |b| &b.cpu_ms)),
        median(all(&pn, |b| &b.cpu_ms))
    );
    if let (Some(d1), Some(dn)) = (
        o.one.get(key(Route::Daemon)),
        o.many.get(key(Route::Daemon)),
    ) {
        println!(
            "| D: the client `provision --server … start`, peak RSS / CPU time, 1 tenant | median {} / {:.0} ms |",
            mib(median(all(d1, |b| &b.peak_rss_kib)) * 1024.0),
            median(all(d1, |b| &b.cpu_ms))
        );
        println!(
            "| D: the same, each of {n} at once | median {} / {:.0} ms |",
            mib(median(all(dn, |b| &b.peak_rss_kib)) * 1024.0),
            median(all(dn, |b| &b.cpu_ms))
        );
    }
    for route in [Route::Provision, Route::Daemon] {
        for (label, batches) in [("1 tenant", &o.one), (&*format!("{n} at once"), &o.many)] {
            let phases: Vec<[f64; 4]> = batches
                .get(key(route))
                .map(|b| b.iter().flat_map(|b| b.op_phases.clone()).collect())
                .unwrap_or_default();
            if phases.is_empty() || !args.routes.contains(&route) {
                continue;
            }
            let ph = |i: usize| median(phases.iter().map(|p| p[i]).collect());
            println!(
                "| {}, {label}, medians from the operations log: process start → queued / queued → running / running / finished → process exit | {:.3} s / {:.3} s / {:.3} s / {:.3} s |",
                route.title(),
                ph(0),
                ph(1),
                ph(2),
                ph(3)
            );
        }
    }
    if let Some(m) = &o.memory {
        let t = m.tenants as f64;
        let total = (m.ingest + m.admin + m.notifier + m.shims.1 + m.proxies.1) as f64;
        println!(
            "| per tenant, after {} started with `provision` idled 5 s: ingest container | {} |",
            m.tenants,
            mib(m.ingest as f64 / t)
        );
        println!(
            "| per tenant: admin container | {} |",
            mib(m.admin as f64 / t)
        );
        println!(
            "| per tenant: notifier container | {} |",
            mib(m.notifier as f64 / t)
        );
        println!(
            "| per tenant: containerd shims ({:.0} per tenant, PSS) | {} |",
            m.shims.0 as f64 / t,
            mib(m.shims.1 as f64 / t)
        );
        println!(
            "| per tenant: docker-proxy ({:.0} per tenant, PSS) | {} |",
            m.proxies.0 as f64 / t,
            mib(m.proxies.1 as f64 / t)
        );
        println!(
            "| **host memory per tenant** (sum of the above) | **{}** |",
            mib(total / t)
        );
        println!(
            "| Cassandra JVM RSS growth per tenant (heap 1G, noisy) | {} |",
            mib(m.cassandra_growth as f64 / t)
        );
    }
    let phases: Vec<[Duration; 4]> = o
        .one
        .get(key(Route::Floor))
        .map(|b| b.iter().filter_map(|b| b.phases).collect())
        .unwrap_or_default();
    if !phases.is_empty() {
        let ph = |i: usize| median(phases.iter().map(|p| p[i].as_secs_f64()).collect());
        println!(
            "| floor, 1 tenant, medians: connect / CQL / create+start / until healthy | {:.2} s / {:.2} s / {:.2} s / {:.2} s |",
            ph(0),
            ph(1),
            ph(2),
            ph(3)
        );
    }
    println!("| machine | {} |", o.load);
}
