//! The density benchmark (F4): tenants started one after another until
//! `--tenants` (200) run on this host, across as many single-node
//! Cassandra clusters as the table guardrail needs (a node holds at most
//! 57 tenants: 7 tables each, the image refuses a 400th table). Prints
//! markdown tables.
//!
//! Everything runs on the real engine with the real `provision` binary
//! next to this one (or `PROVISION_BIN`).
//!
//! - **Nodes.** n = ⌈tenants / `--per-cluster`⌉ single-node clusters.
//!   Node 1 is the benchmarks' shared node (`provision-bench-cassandra`,
//!   heap 1G: reused when it runs, removed at the end when this run
//!   started it, unless `--keep-nodes`); nodes 2..n are containers of the
//!   Cassandra image of the run's own, `provision-bench-density-<run>-<k>`
//!   on `provision-bench-net` (`CASSANDRA_HEAP` = `--heap`, CQL on a
//!   loopback port the engine picks, label `io.provision.bench=<run>-node`),
//!   started one at a time, each once the previous answers CQL as the
//!   superuser.
//! - **Config.** The run's own (state and data in its directory,
//!   containers `bench-<run>-…` labelled `io.provision.bench=<run>`), one
//!   `[[cassandra.clusters]]` per node (`n1`..`nN`, `capacity =
//!   --per-cluster`, external, published, the node attached to each
//!   tenant network), port pools 25400–25649 (gateway) and 25700–25949
//!   (admin), checked bindable first. Each new tenant goes to the cluster
//!   with the most room, so the nodes fill evenly.
//! - **Baseline.** Host memory used (MemTotal − MemAvailable), dockerd's
//!   and containerd's VmRSS, and per node its container's memory (cgroup
//!   usage − page cache) and its heap: `nodetool info`'s "Heap Memory
//!   (MB)" line (the image has no nodetool script: `java … NodeTool info`
//!   run in the node container against its local JMX port 7199), the
//!   median of 3 reads one after another (a read takes about 3 s; the heap
//!   in use moves with GC). The container memory is read before nodetool
//!   runs (its JVM runs in the node's cgroup).
//! - **Starts.** `provision --json start d<run>_<i>` one after another,
//!   each timed (the process's wall clock); progress every 10 to stderr.
//!   The first failure ends the starts: its exit code and stderr are
//!   reported, and what ran is measured and cleaned up.
//! - **After.** The same readings again, per tenant: host memory, the
//!   tenants' containers by role (cgroup usage − cache), their containerd
//!   shims (PSS), and per node its heap and container memory over the
//!   tenants on it (`provision --json capacity`).
//! - **Status and reconcile.** `provision --json status` (every tenant)
//!   `--status-runs` times (goal ≤ 2 s), checked: exit 0 and every tenant
//!   listed; then `provision --json reconcile` as often (goal ≤ 10 s),
//!   checked: exit 0, every tenant `unchanged`, no plan, no orphans.
//!   `--status-against PATH` times another `provision` binary's `status`
//!   just before each run of this one's, on the same tenants: two builds
//!   side by side.
//!
//! At the end every tenant started is destroyed (`--purge-data`, 5 at
//! once), whatever carries the run's labels is removed (the extra nodes
//! too, unless `--keep-nodes`), and the shared node if this run started
//! it. `--keep-tenants` skips all of that (and keeps the files, so that
//! `provision --config <dir>/provision.toml destroy …` works later).
//!
//! `[health] checks` is `--health-checks` (`provisioner` by default: the
//! engine's exec checks, 60 a second at 200 tenants, take most of this
//! 2-core host's CPU; `engine` measures them).
//!
//! `scripts/bench-density [--tenants 200] [--per-cluster 57] [--heap 1G]
//!    [--status-runs 3] [--health-checks provisioner|engine] [--keep-nodes]
//!    [--keep-files] [--keep-tenants] [--status-against PATH]`

use std::collections::{BTreeMap, HashMap};
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use bollard::query_parameters::CreateContainerOptionsBuilder;
use bollard::Docker;
use futures::StreamExt;
use provision_testkit::bench::{
    self, cgroup_usage_without_cache, ensure_node, kib_field, loadavg, median, node_body, proc_kib,
    published_cql, random_suffix, remove_node, sibling_binary, BENCH_LABEL, NODE,
};
use provision_testkit::containers::list_labelled_all;
use provision_testkit::{docker, remove_labelled};

/// The config's port pools (gateway, admin; inclusive): 250 each, apart
/// from every other bench's and test's, below the ephemeral range.
const POOLS: ((u16, u16), (u16, u16)) = ((25400, 25649), (25700, 25949));
/// Tenants destroyed at once at the end.
const DESTROY_AT_ONCE: usize = 5;
/// Heap reads per node (their median is reported).
const HEAP_READS: usize = 3;
/// Tenants per block of the starts' medians.
const BLOCK: usize = 50;
/// The goals of the issue.
const STATUS_GOAL: Duration = Duration::from_secs(2);
const RECONCILE_GOAL: Duration = Duration::from_secs(10);
/// `nodetool info` in a node container: the image has Cassandra's jars
/// but no nodetool script, so its class, with the module options of the
/// node's own JVM, a small heap, and its history file out of the data.
const NODETOOL_INFO: &str =
    "exec java $(grep -E '^--add-(exports|opens)' /etc/cassandra/jvm17.options) \
     -Xmx128m -XX:+UseSerialGC -XX:TieredStopAtLevel=1 -Duser.home=/tmp -Dcassandra.logdir=/tmp \
     -cp '/etc/cassandra:/opt/cassandra/lib/*' org.apache.cassandra.tools.NodeTool \
     -h 127.0.0.1 -p 7199 info";

const USAGE: &str = "usage: bench-density [--tenants 200] [--per-cluster 57] [--heap 1G] [--status-runs 3] [--health-checks provisioner|engine] [--keep-nodes] [--keep-files] [--keep-tenants] [--status-against PATH]";

#[derive(Debug, Clone)]
struct Args {
    tenants: usize,
    per_cluster: usize,
    heap: String,
    status_runs: usize,
    keep_nodes: bool,
    keep_files: bool,
    keep_tenants: bool,
    /// `[health] checks`: `engine` or `provisioner`.
    health_checks: String,
    /// Another `provision` binary whose `status` is timed just before each
    /// of this one's, with the same configuration: a side-by-side of two
    /// builds on the same tenants.
    status_against: Option<PathBuf>,
}

fn parse_args() -> Args {
    let mut a = Args {
        tenants: 200,
        per_cluster: 57,
        heap: "1G".to_owned(),
        status_runs: 3,
        keep_nodes: false,
        keep_files: false,
        keep_tenants: false,
        health_checks: "provisioner".to_owned(),
        status_against: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let mut value = || {
            it.next()
                .unwrap_or_else(|| panic!("{arg} needs a value\n{USAGE}"))
        };
        let count = |v: String| -> usize {
            v.parse()
                .unwrap_or_else(|_| panic!("{arg}: a whole number, not {v:?}\n{USAGE}"))
        };
        match arg.as_str() {
            "--tenants" => a.tenants = count(value()),
            "--per-cluster" => a.per_cluster = count(value()),
            "--heap" => a.heap = value(),
            "--status-runs" => a.status_runs = count(value()),
            "--keep-nodes" => a.keep_nodes = true,
            "--keep-files" => a.keep_files = true,
            "--keep-tenants" => a.keep_tenants = true,
            "--health-checks" => a.health_checks = value(),
            "--status-against" => a.status_against = Some(PathBuf::from(value())),
            "-h" | "--help" => {
                println!("{USAGE}");
                std::process::exit(0);
            }
            other => panic!("unknown argument {other}\n{USAGE}"),
        }
    }
    assert!(
        a.tenants > 0 && a.per_cluster > 0 && a.status_runs > 0,
        "--tenants, --per-cluster and --status-runs: at least 1\n{USAGE}"
    );
    assert!(
        a.tenants <= (POOLS.0 .1 - POOLS.0 .0 + 1) as usize,
        "--tenants: at most {} (the port pools)",
        POOLS.0 .1 - POOLS.0 .0 + 1
    );
    let digits = a.heap.trim_end_matches(['M', 'G', 'm', 'g']);
    assert!(
        digits.len() + 1 == a.heap.len() && !digits.is_empty() && digits.parse::<u32>().is_ok(),
        "--heap: a size such as 1G or 768M, not {:?}",
        a.heap
    );
    assert!(
        matches!(a.health_checks.as_str(), "engine" | "provisioner"),
        "--health-checks: engine or provisioner, not {:?}",
        a.health_checks
    );
    if a.keep_tenants {
        a.keep_nodes = true;
        a.keep_files = true;
    }
    a
}

fn utc_now() -> String {
    chrono::Utc::now()
        .format("%Y-%m-%d %H:%M:%S UTC")
        .to_string()
}

fn secs(d: Duration) -> String {
    format!("{:.2}", d.as_secs_f64())
}

fn mb(bytes: Option<u64>) -> String {
    bytes.map_or("?".to_owned(), |b| format!("{:.1}", b as f64 / 1e6))
}

/// `(after − before) / n` in MB, signed.
fn per(before: Option<u64>, after: Option<u64>, n: usize) -> String {
    match (before, after) {
        (Some(b), Some(a)) if n > 0 => format!("{:.1}", (a as f64 - b as f64) / 1e6 / n as f64),
        _ => "–".to_owned(),
    }
}

fn mb_f(v: Option<f64>) -> String {
    v.map_or("?".to_owned(), |v| format!("{v:.1}"))
}

/// A Cassandra node of the run: its container (its alias on [`bench::NETWORK`]),
/// its cluster's name, where the host reaches CQL.
#[derive(Debug, Clone)]
struct Node {
    name: String,
    cluster: String,
    addr: SocketAddr,
    /// How long it took from its start to answering CQL (None: reused).
    ready_in: Option<Duration>,
}

/// One node's readings at one point.
#[derive(Debug, Clone, Default)]
struct NodeMemory {
    /// cgroup usage − cache of the node's container.
    container: Option<u64>,
    /// "Heap Memory (MB)": the used figure of each read, and the heap's size.
    heap_reads: Vec<f64>,
    heap_max: Option<f64>,
    /// "Off Heap Memory (MB)" of the last read.
    off_heap: Option<f64>,
    error: Option<String>,
}

impl NodeMemory {
    fn heap(&self) -> Option<f64> {
        (!self.heap_reads.is_empty()).then(|| median(self.heap_reads.clone()))
    }
}

/// The host's readings at one point.
#[derive(Debug, Clone, Default)]
struct Snapshot {
    host_used: Option<u64>,
    dockerd: Option<u64>,
    containerd: Option<u64>,
    nodes: Vec<NodeMemory>,
}

/// Timed runs of a command and what was wrong with them.
#[derive(Debug, Clone, Default)]
struct Timed {
    runs: Vec<Duration>,
    problems: Vec<String>,
}

#[derive(Debug, Clone, Default)]
struct Outcome {
    began: String,
    ended: String,
    load_before: String,
    load_after: String,
    nodes: Vec<Node>,
    before: Snapshot,
    after: Snapshot,
    /// Each tenant started, in order, and how long its start took.
    starts: Vec<(String, Duration)>,
    failure: Option<String>,
    /// Per role: containers, sum of cgroup usage − cache (of those read).
    roles: BTreeMap<String, (usize, u64)>,
    /// The tenants' containerd shims: found, sum of PSS.
    shims: Option<(usize, u64)>,
    /// Per cluster: tenants, tables (from `capacity`).
    placed: HashMap<String, (u64, Option<u64>)>,
    status: Timed,
    /// `status` of the `--status-against` binary.
    status_against: Timed,
    /// Tenants by state in the last status.
    states: BTreeMap<String, usize>,
    reconcile: Timed,
    notes: Vec<String>,
}

struct Bench {
    args: Args,
    docker: Docker,
    provision: PathBuf,
    run: String,
    dir: PathBuf,
    config: PathBuf,
    /// The node containers of the run's own (removed at the end).
    extra_nodes: Mutex<Vec<String>>,
    /// Tenants whose start was begun (destroyed at the end).
    started: Mutex<Vec<String>>,
}

#[tokio::main]
async fn main() {
    let args = parse_args();
    let docker = docker().await;
    let busy: Vec<u16> = (POOLS.0 .0..=POOLS.0 .1)
        .chain(POOLS.1 .0..=POOLS.1 .1)
        .filter(|p| std::net::TcpListener::bind((Ipv4Addr::LOCALHOST, *p)).is_err())
        .collect();
    assert!(
        busy.is_empty(),
        "ports the bench needs are taken: {busy:?} (a leftover run? docker ps --filter label={BENCH_LABEL})"
    );
    let (node, node_created) = ensure_node(&docker).await;
    let run = random_suffix();
    let dir = std::env::temp_dir().join(format!("density-bench-{run}"));
    std::fs::create_dir_all(&dir).expect("create the bench directory");
    let bench = Bench {
        args: args.clone(),
        docker,
        provision: sibling_binary("provision", "PROVISION_BIN"),
        config: dir.join("provision.toml"),
        run,
        dir,
        extra_nodes: Mutex::new(Vec::new()),
        started: Mutex::new(Vec::new()),
    };
    eprintln!(
        "bench-density: run {}, files in {}, {} tenants on {} node(s) of at most {} each",
        bench.run,
        bench.dir.display(),
        args.tenants,
        args.tenants.div_ceil(args.per_cluster),
        args.per_cluster
    );
    let first = Node {
        name: NODE.to_owned(),
        cluster: "n1".to_owned(),
        addr: node,
        ready_in: None,
    };
    let outcome = bench::until_interrupted(bench.measure(first)).await;
    if outcome.is_none() {
        eprintln!("bench-density: interrupted; cleaning up");
    }
    if args.keep_tenants {
        eprintln!(
            "--keep-tenants: tenants, nodes and files kept; destroy them with\n  provision --config {} destroy <id> --yes --purge-data\n  (ids: {}), then docker rm -f -v $(docker ps -aq --filter label={BENCH_LABEL}={}-node)",
            bench.config.display(),
            bench.started.lock().unwrap().join(" "),
            bench.run
        );
    } else {
        bench.cleanup().await;
        if args.keep_files {
            eprintln!("the bench's config and state: {}", bench.dir.display());
        } else {
            let _ = std::fs::remove_dir_all(&bench.dir);
        }
        if !args.keep_nodes && node_created {
            remove_node(&bench.docker).await;
        }
    }
    match outcome {
        Some(Ok(outcome)) => print_report(&args, &outcome),
        Some(Err(panic)) => std::panic::resume_unwind(panic),
        None => std::process::exit(130),
    }
}

impl Bench {
    async fn measure(&self, first: Node) -> Outcome {
        let mut o = Outcome {
            began: utc_now(),
            load_before: loadavg(),
            ..Outcome::default()
        };
        o.nodes = self.nodes(first).await;
        std::fs::write(&self.config, self.config_text(&o.nodes)).expect("write the config");
        eprintln!("baseline: host memory, dockerd, and each node's container and heap");
        o.before = self.snapshot(&o.nodes).await;
        self.start_tenants(&mut o).await;
        eprintln!("after the starts: host memory, the tenants' containers, each node");
        o.after = self.snapshot(&o.nodes).await;
        (o.roles, o.shims) = self.tenant_memory().await;
        self.placement(&mut o).await;
        self.status(&mut o).await;
        self.reconcile(&mut o).await;
        o.ended = utc_now();
        o.load_after = loadavg();
        o
    }

    /// Node 1 (the shared one) and nodes 2..n of the run's own, each
    /// started once the previous answers CQL.
    async fn nodes(&self, first: Node) -> Vec<Node> {
        let n = self.args.tenants.div_ceil(self.args.per_cluster);
        let mut nodes = vec![first];
        for k in 2..=n {
            let name = format!("provision-bench-density-{}-{k}", self.run);
            let labels = HashMap::from([(BENCH_LABEL.to_owned(), format!("{}-node", self.run))]);
            let body = node_body(
                &name,
                labels,
                vec![format!("CASSANDRA_HEAP={}", self.args.heap)],
            );
            let options = CreateContainerOptionsBuilder::default().name(&name).build();
            self.extra_nodes.lock().unwrap().push(name.clone());
            self.docker
                .create_container(Some(options), body)
                .await
                .unwrap_or_else(|e| panic!("cannot create {name}: {e}"));
            eprintln!("starting node {k} of {n}: {name}");
            let started = Instant::now();
            self.docker
                .start_container(&name, None)
                .await
                .unwrap_or_else(|e| panic!("cannot start {name}: {e}"));
            let addr = published_cql(&self.docker, &name, started).await;
            let ready_in = started.elapsed();
            eprintln!(
                "  {name} answered CQL after {:.1} s",
                ready_in.as_secs_f64()
            );
            nodes.push(Node {
                name,
                cluster: format!("n{k}"),
                addr,
                ready_in: Some(ready_in),
            });
        }
        nodes
    }

    /// A config like [`bench::config_text`], with one cluster per node.
    fn config_text(&self, nodes: &[Node]) -> String {
        let clusters: String = nodes
            .iter()
            .map(|node| {
                format!(
                    r#"
[[cassandra.clusters]]
name = "{cluster}"
capacity = {capacity}
contact_points = ["{addr}"]
container_contact_points = ["{name}:9042"]
published = true
attach_container = "{name}"
"#,
                    cluster = node.cluster,
                    capacity = self.args.per_cluster,
                    addr = node.addr,
                    name = node.name,
                )
            })
            .collect();
        let config =
            bench::config_with_cassandra(&self.dir, &self.run, &clusters, POOLS.0, POOLS.1);
        // `[health]` is the config's last table.
        format!("{config}checks = \"{}\"\n", self.args.health_checks)
    }

    /// Runs `provision --config <config> <args>`: exit code, stdout,
    /// stderr, and how long the process took.
    async fn provision(&self, args: &[&str]) -> (i32, String, String, Duration) {
        self.provision_of(&self.provision, args).await
    }

    /// [`Self::provision`] with the binary `bin`.
    async fn provision_of(&self, bin: &Path, args: &[&str]) -> (i32, String, String, Duration) {
        let began = Instant::now();
        let out = tokio::process::Command::new(bin)
            .arg("--config")
            .arg(&self.config)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .output()
            .await
            .expect("provision runs");
        let took = began.elapsed();
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
            took,
        )
    }

    async fn start_tenants(&self, o: &mut Outcome) {
        let n = self.args.tenants;
        eprintln!("starting {n} tenants one after another");
        for i in 1..=n {
            let id = format!("d{}_{i}", self.run);
            self.started.lock().unwrap().push(id.clone());
            let (code, out, err, took) = self.provision(&["--json", "start", &id]).await;
            if code != 0 {
                let mut failure = format!(
                    "start of tenant {i} ({id}) failed after {} s with exit code {code}: {}",
                    secs(took),
                    err.trim()
                );
                if out.contains("\"error\"") {
                    failure.push_str(&format!(" (stdout: {})", out.trim()));
                }
                eprintln!("  {failure}");
                if code == 22 || err.contains("address pool") || err.contains("subnet") {
                    o.notes.push("each tenant has a bridge network of its own: the engine's default address pools hold about 30; `[docker] tenant_subnets` (a provision that has it) or dockerd's --default-address-pool take more".to_owned());
                }
                o.failure = Some(failure);
                break;
            }
            o.starts.push((id.clone(), took));
            if i % 10 == 0 || i == n {
                let last: Vec<f64> = o.starts[o.starts.len().saturating_sub(10)..]
                    .iter()
                    .map(|(_, d)| d.as_secs_f64())
                    .collect();
                eprintln!(
                    "  [{i}/{n}] {id}: {} s (median of the last {}: {:.2} s); host memory used {} MB; load {}",
                    secs(took),
                    last.len(),
                    median(last.clone()),
                    mb(host_used()),
                    loadavg()
                );
            }
        }
    }

    /// The host's and every node's readings now.
    async fn snapshot(&self, nodes: &[Node]) -> Snapshot {
        let mut s = Snapshot {
            host_used: host_used(),
            dockerd: named_process("dockerd").and_then(|p| proc_kib(p, "VmRSS:").map(|k| k * 1024)),
            containerd: named_process("containerd")
                .and_then(|p| proc_kib(p, "VmRSS:").map(|k| k * 1024)),
            nodes: Vec::new(),
        };
        // every container's memory first: nodetool's JVM runs in the node's cgroup
        for node in nodes {
            s.nodes.push(NodeMemory {
                container: self.container_memory(&node.name).await,
                ..NodeMemory::default()
            });
        }
        for (node, m) in nodes.iter().zip(&mut s.nodes) {
            for _ in 0..HEAP_READS {
                match nodetool_info(&node.name).await {
                    Ok((used, max, off)) => {
                        m.heap_reads.push(used);
                        m.heap_max = Some(max);
                        m.off_heap = off;
                    }
                    Err(e) => {
                        eprintln!("  nodetool info on {}: {e}", node.name);
                        m.error = Some(e);
                        break;
                    }
                }
            }
            eprintln!(
                "  {}: container {} MB, heap used {} MB (reads {:?}) of {} MB",
                node.name,
                mb(m.container),
                mb_f(m.heap()),
                m.heap_reads,
                mb_f(m.heap_max)
            );
        }
        s
    }

    async fn container_memory(&self, name: &str) -> Option<u64> {
        let pid = self
            .docker
            .inspect_container(name, None)
            .await
            .ok()?
            .state?
            .pid
            .filter(|p| *p > 0)?;
        cgroup_usage_without_cache(pid as u32)
    }

    /// The run's tenant containers by role (cgroup usage − cache, summed),
    /// and their containerd shims' PSS.
    async fn tenant_memory(&self) -> (BTreeMap<String, (usize, u64)>, Option<(usize, u64)>) {
        let labels = [
            format!("{BENCH_LABEL}={}", self.run),
            provisioner::labels::TENANT.to_owned(),
        ];
        let list = list_labelled_all(&self.docker, &labels)
            .await
            .expect("docker lists containers");
        let ids: Vec<(String, String)> = list
            .into_iter()
            .filter_map(|c| {
                let role = c.labels?.get(provisioner::labels::ROLE)?.clone();
                Some((c.id?, role))
            })
            .collect();
        let read: Vec<(String, Option<u64>)> = futures::stream::iter(ids.iter())
            .map(|(id, role)| async move { (role.clone(), self.container_memory(id).await) })
            .buffer_unordered(8)
            .collect()
            .await;
        let mut roles: BTreeMap<String, (usize, u64)> = BTreeMap::new();
        for (role, memory) in read {
            let entry = roles.entry(role).or_default();
            if let Some(m) = memory {
                entry.0 += 1;
                entry.1 += m;
            }
        }
        let shims = shim_pss(ids.iter().map(|(id, _)| id.as_str()));
        (roles, shims)
    }

    /// Tenants and tables per cluster, from `provision --json capacity`.
    async fn placement(&self, o: &mut Outcome) {
        let (code, out, err, _) = self.provision(&["--json", "capacity"]).await;
        let parsed: Option<serde_json::Value> = serde_json::from_str(&out).ok();
        let Some(clusters) = parsed.as_ref().and_then(|v| v["clusters"].as_array()) else {
            o.notes.push(format!(
                "provision capacity: exit {code}, no clusters: {}",
                err.trim()
            ));
            return;
        };
        for c in clusters {
            if let (Some(name), Some(tenants)) = (c["name"].as_str(), c["tenants"].as_u64()) {
                o.placed
                    .insert(name.to_owned(), (tenants, c["tables"].as_u64()));
            }
        }
    }

    /// `provision --json status` (every tenant), timed, checked.
    async fn status(&self, o: &mut Outcome) {
        let expected: Vec<&str> = o.starts.iter().map(|(id, _)| id.as_str()).collect();
        for run in 1..=self.args.status_runs {
            if let Some(against) = &self.args.status_against {
                let (code, _, err, took) = self.provision_of(against, &["--json", "status"]).await;
                eprintln!(
                    "status {run} of {}: {} s (exit {code})",
                    against.display(),
                    secs(took)
                );
                o.status_against.runs.push(took);
                if code != 0 {
                    o.status_against
                        .problems
                        .push(format!("run {run}: exit {code}: {}", err.trim()));
                }
            }
            let (code, out, err, took) = self.provision(&["--json", "status"]).await;
            eprintln!("status {run}: {} s (exit {code})", secs(took));
            o.status.runs.push(took);
            if code != 0 {
                o.status
                    .problems
                    .push(format!("run {run}: exit {code}: {}", err.trim()));
                continue;
            }
            let Ok(serde_json::Value::Array(list)) = serde_json::from_str(&out) else {
                o.status
                    .problems
                    .push(format!("run {run}: not a JSON array"));
                continue;
            };
            let listed: Vec<&str> = list.iter().filter_map(|t| t["provider"].as_str()).collect();
            let missing: Vec<&&str> = expected.iter().filter(|id| !listed.contains(id)).collect();
            if !missing.is_empty() {
                o.status.problems.push(format!(
                    "run {run}: {} of {} tenants not listed (first: {})",
                    missing.len(),
                    expected.len(),
                    missing[0]
                ));
            }
            o.states.clear();
            for t in &list {
                let state = t["state"].as_str().unwrap_or("?").to_owned();
                *o.states.entry(state).or_default() += 1;
            }
        }
    }

    /// `provision --json reconcile` (every tenant), timed, checked: it
    /// must change nothing.
    async fn reconcile(&self, o: &mut Outcome) {
        for run in 1..=self.args.status_runs {
            let (code, out, err, took) = self.provision(&["--json", "reconcile"]).await;
            eprintln!("reconcile {run}: {} s (exit {code})", secs(took));
            o.reconcile.runs.push(took);
            if code != 0 {
                o.reconcile
                    .problems
                    .push(format!("run {run}: exit {code}: {}", err.trim()));
            }
            let Ok(report) = serde_json::from_str::<serde_json::Value>(&out) else {
                o.reconcile
                    .problems
                    .push(format!("run {run}: no JSON report: {}", out.trim()));
                continue;
            };
            let changed: Vec<String> = report["tenants"]
                .as_array()
                .map(|ts| {
                    ts.iter()
                        .filter(|t| t["result"] != "unchanged")
                        .map(|t| {
                            format!(
                                "{} {} {}",
                                t["provider"].as_str().unwrap_or("?"),
                                t["result"].as_str().unwrap_or("?"),
                                t["plan"]
                            )
                        })
                        .collect()
                })
                .unwrap_or_default();
            let listed = report["tenants"].as_array().map_or(0, Vec::len);
            if listed != o.starts.len() {
                o.reconcile.problems.push(format!(
                    "run {run}: {listed} tenants in the report, {} started",
                    o.starts.len()
                ));
            }
            if !changed.is_empty() {
                let text = format!(
                    "run {run}: CHANGED {} tenant(s): {}",
                    changed.len(),
                    changed
                        .iter()
                        .take(5)
                        .cloned()
                        .collect::<Vec<_>>()
                        .join("; ")
                );
                eprintln!("  {text}");
                o.reconcile.problems.push(text);
            }
            let plan = report["plan"].as_array().map_or(0, Vec::len);
            if plan > 0 {
                o.reconcile.problems.push(format!(
                    "run {run}: a plan of {plan} step(s): {}",
                    report["plan"]
                ));
            }
            if report["orphans"].as_array().is_some_and(|a| !a.is_empty()) {
                o.reconcile
                    .problems
                    .push(format!("run {run}: orphans {}", report["orphans"]));
            }
        }
    }

    async fn destroy(&self, id: &str) {
        let (code, _, err, _) = self
            .provision(&["destroy", id, "--yes", "--purge-data"])
            .await;
        if code != 0 {
            eprintln!("destroy {id}: {}", err.trim());
        }
        self.started.lock().unwrap().retain(|t| t != id);
    }

    async fn cleanup(&self) {
        let started: Vec<String> = self.started.lock().unwrap().clone();
        if !started.is_empty() && self.config.exists() {
            eprintln!(
                "destroying {} tenants, {DESTROY_AT_ONCE} at once",
                started.len()
            );
            let began = Instant::now();
            futures::stream::iter(started)
                .map(|id| async move { self.destroy(&id).await })
                .buffer_unordered(DESTROY_AT_ONCE)
                .collect::<Vec<()>>()
                .await;
            eprintln!("  destroyed in {:.1} s", began.elapsed().as_secs_f64());
        }
        remove_labelled(&self.docker, &format!("{BENCH_LABEL}={}", self.run)).await;
        if !self.args.keep_nodes {
            remove_labelled(&self.docker, &format!("{BENCH_LABEL}={}-node", self.run)).await;
        } else if !self.extra_nodes.lock().unwrap().is_empty() {
            eprintln!(
                "--keep-nodes: the run's nodes are kept: {} (docker rm -f -v $(docker ps -aq --filter label={BENCH_LABEL}={}-node))",
                self.extra_nodes.lock().unwrap().join(", "),
                self.run
            );
        }
    }
}

/// MemTotal − MemAvailable of /proc/meminfo, in bytes.
fn host_used() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    let total = kib_field(&text, "MemTotal:")?;
    let available = kib_field(&text, "MemAvailable:")?;
    Some(total.saturating_sub(available) * 1024)
}

fn mem_total() -> Option<u64> {
    kib_field(&std::fs::read_to_string("/proc/meminfo").ok()?, "MemTotal:").map(|k| k * 1024)
}

/// The first process whose /proc/<pid>/comm is `comm`.
fn named_process(comm: &str) -> Option<u32> {
    std::fs::read_dir("/proc").ok()?.flatten().find_map(|e| {
        let pid: u32 = e.file_name().to_str()?.parse().ok()?;
        let name = std::fs::read_to_string(e.path().join("comm")).ok()?;
        (name.trim() == comm).then_some(pid)
    })
}

/// The containerd shims (`containerd-shim-runc-v2 … -id <container id>`)
/// of `containers`: how many were found, the sum of their PSS in bytes.
fn shim_pss<'a>(containers: impl Iterator<Item = &'a str>) -> Option<(usize, u64)> {
    let wanted: std::collections::HashSet<&str> = containers.collect();
    let mut found = 0;
    let mut pss = 0;
    for entry in std::fs::read_dir("/proc").ok()?.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|p| p.parse::<u32>().ok())
        else {
            continue;
        };
        let Ok(cmdline) = std::fs::read(format!("/proc/{pid}/cmdline")) else {
            continue;
        };
        let args: Vec<&[u8]> = cmdline.split(|b| *b == 0).collect();
        if !args
            .first()
            .is_some_and(|a| String::from_utf8_lossy(a).contains("containerd-shim"))
        {
            continue;
        }
        let id = args
            .windows(2)
            .find(|w| w[0] == b"-id")
            .map(|w| String::from_utf8_lossy(w[1]).into_owned());
        if !id.is_some_and(|id| wanted.contains(id.as_str())) {
            continue;
        }
        let rollup = std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup")).ok();
        if let Some(kib) = rollup.and_then(|t| kib_field(&t, "Pss:")) {
            found += 1;
            pss += kib * 1024;
        }
    }
    (found > 0).then_some((found, pss))
}

/// `nodetool info` in node container `node`: heap used and its size, and
/// off-heap memory, in MB as nodetool prints them.
async fn nodetool_info(node: &str) -> Result<(f64, f64, Option<f64>), String> {
    let out = tokio::process::Command::new("docker")
        .args(["exec", node, "bash", "-c", NODETOOL_INFO])
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .output()
        .await
        .map_err(|e| format!("docker exec: {e}"))?;
    let text = String::from_utf8_lossy(&out.stdout);
    let field = |name: &str| -> Option<&str> {
        text.lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_once(':'))
            .map(|(_, v)| v.trim())
    };
    let heap = field("Heap Memory (MB)").and_then(|v| {
        let (used, max) = v.split_once('/')?;
        Some((used.trim().parse().ok()?, max.trim().parse().ok()?))
    });
    match heap {
        Some((used, max)) => Ok((
            used,
            max,
            field("Off Heap Memory (MB)").and_then(|v| v.parse().ok()),
        )),
        None => Err(format!(
            "exit {:?}, no heap line: {}",
            out.status.code(),
            String::from_utf8_lossy(&out.stderr)
                .lines()
                .take(3)
                .collect::<Vec<_>>()
                .join(" | ")
        )),
    }
}

fn print_report(a: &Args, o: &Outcome) {
    let started = o.starts.len();
    println!(
        "\n## bench-density ({} – {}; load before {}, after {})\n",
        o.began, o.ended, o.load_before, o.load_after
    );
    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    println!(
        "- machine: {cpus} CPUs, MemTotal {} MB; {}",
        mb(mem_total()),
        docker_version()
    );
    println!(
        "- {} of {} tenants started, one after another, on {} single-node cluster(s) of at most {} tenants (`--heap {}` for the run's own nodes; the shared node {NODE} has its own heap, see below)",
        started,
        a.tenants,
        o.nodes.len(),
        a.per_cluster,
        a.heap
    );
    println!("- `[health] checks = \"{}\"`", a.health_checks);
    for node in &o.nodes {
        if let Some(d) = node.ready_in {
            println!(
                "- node {} answered CQL {:.1} s after its start",
                node.name,
                d.as_secs_f64()
            );
        }
    }
    if let Some(f) = &o.failure {
        println!("\n**STARTS STOPPED**: {f}");
    }

    if !o.starts.is_empty() {
        println!("\n### Starts (`provision start <id>`, the process's wall clock)\n");
        println!("| tenant | id | start s |");
        println!("|---:|---|---:|");
        let mut marks = vec![1, 100, a.tenants, started];
        marks.retain(|&m| m >= 1 && m <= started);
        marks.sort_unstable();
        marks.dedup();
        for m in marks {
            let (id, d) = &o.starts[m - 1];
            println!("| {m} | {id} | {} |", secs(*d));
        }
        println!("\n| tenants | median s | min s | max s |");
        println!("|---|---:|---:|---:|");
        for (b, chunk) in o.starts.chunks(BLOCK).enumerate() {
            let v: Vec<f64> = chunk.iter().map(|(_, d)| d.as_secs_f64()).collect();
            println!(
                "| {}–{} | {:.2} | {:.2} | {:.2} |",
                b * BLOCK + 1,
                b * BLOCK + chunk.len(),
                median(v.clone()),
                bench::min(&v),
                v.iter().copied().fold(0.0, f64::max)
            );
        }
    }

    println!("\n### Host memory ({started} tenants)\n");
    println!("| what | before MB | after MB | per tenant MB |");
    println!("|---|---:|---:|---:|");
    println!(
        "| host memory used (MemTotal − MemAvailable) | {} | {} | {} |",
        mb(o.before.host_used),
        mb(o.after.host_used),
        per(o.before.host_used, o.after.host_used, started)
    );
    for (role, (n, bytes)) in &o.roles {
        println!(
            "| {role} containers ({n}: cgroup usage − cache) | – | {} | {} |",
            mb(Some(*bytes)),
            per(Some(0), Some(*bytes), started)
        );
    }
    let apps: u64 = o.roles.values().map(|(_, b)| b).sum();
    if !o.roles.is_empty() {
        println!(
            "| all tenant containers | – | {} | {} |",
            mb(Some(apps)),
            per(Some(0), Some(apps), started)
        );
    }
    match o.shims {
        Some((n, pss)) => println!(
            "| their containerd shims ({n}: PSS) | – | {} | {} |",
            mb(Some(pss)),
            per(Some(0), Some(pss), started)
        ),
        None => println!("| their containerd shims | – | not found | – |"),
    }
    println!(
        "| dockerd VmRSS | {} | {} | {} |",
        mb(o.before.dockerd),
        mb(o.after.dockerd),
        per(o.before.dockerd, o.after.dockerd, started)
    );
    println!(
        "| containerd VmRSS | {} | {} | {} |",
        mb(o.before.containerd),
        mb(o.after.containerd),
        per(o.before.containerd, o.after.containerd, started)
    );
    let node_before: Option<u64> = o.before.nodes.iter().map(|n| n.container).sum();
    let node_after: Option<u64> = o.after.nodes.iter().map(|n| n.container).sum();
    println!(
        "| Cassandra node containers (cgroup usage − cache) | {} | {} | {} |",
        mb(node_before),
        mb(node_after),
        per(node_before, node_after, started)
    );
    println!("\nHost memory used counts everything on the host (other work on it too); 1 MB = 10⁶ bytes.");

    println!("\n### Cassandra per node\n");
    println!("| node | cluster | tenants | tables | heap size MB | heap used before MB | after MB | heap per tenant MB | off-heap before / after MB | container before MB | after MB | container per tenant MB |");
    println!("|---|---|---:|---:|---:|---:|---:|---:|---|---:|---:|---:|");
    for (i, node) in o.nodes.iter().enumerate() {
        let before = o.before.nodes.get(i).cloned().unwrap_or_default();
        let after = o.after.nodes.get(i).cloned().unwrap_or_default();
        let (tenants, tables) = o.placed.get(&node.cluster).copied().unwrap_or((0, None));
        let heap_per = match (before.heap(), after.heap()) {
            (Some(b), Some(a)) if tenants > 0 => format!("{:.1}", (a - b) / tenants as f64),
            _ => "–".to_owned(),
        };
        println!(
            "| {} | {} | {tenants} | {} | {} | {} | {} | {heap_per} | {} / {} | {} | {} | {} |",
            node.name,
            node.cluster,
            tables.map_or("?".to_owned(), |t| t.to_string()),
            mb_f(after.heap_max.or(before.heap_max)),
            mb_f(before.heap()),
            mb_f(after.heap()),
            mb_f(before.off_heap),
            mb_f(after.off_heap),
            mb(before.container),
            mb(after.container),
            per(before.container, after.container, tenants as usize)
        );
        for (when, m) in [("before", &before), ("after", &after)] {
            if let Some(e) = &m.error {
                println!("\nnote: nodetool on {} ({when}): {e}", node.name);
            }
        }
    }
    println!("\nHeap used: `nodetool info`'s \"Heap Memory (MB)\" (run in the node container as `java … org.apache.cassandra.tools.NodeTool info`: the image has no nodetool script), the median of {HEAP_READS} reads one after another (~3 s each; heap in use includes garbage not yet collected, so it is noisy); container: cgroup usage − page cache, read before nodetool runs. Tenants and tables per cluster: `provision capacity`.");

    println!("\n### `provision status` and `provision reconcile` with {started} tenants\n");
    println!("| command | runs | min s | median s | max s | goal | met | checks |");
    println!("|---|---:|---:|---:|---:|---|---|---|");
    let against = a
        .status_against
        .as_ref()
        .map(|bin| format!("`status`, `--status-against` {}", bin.display()));
    for (name, t, goal) in [
        ("`provision --json status`", &o.status, STATUS_GOAL),
        (
            against.as_deref().unwrap_or(""),
            &o.status_against,
            STATUS_GOAL,
        ),
        (
            "`provision --json reconcile` (changing nothing)",
            &o.reconcile,
            RECONCILE_GOAL,
        ),
    ] {
        if t.runs.is_empty() && t.problems.is_empty() {
            continue;
        }
        let v: Vec<f64> = t.runs.iter().map(Duration::as_secs_f64).collect();
        let med = median(v.clone());
        let met = !v.is_empty() && med <= goal.as_secs_f64() && t.problems.is_empty();
        println!(
            "| {name} | {} | {:.2} | {:.2} | {:.2} | ≤ {} s (median) | {} | {} |",
            v.len(),
            bench::min(&v),
            med,
            v.iter().copied().fold(0.0, f64::max),
            goal.as_secs(),
            if met { "yes" } else { "**no**" },
            if t.problems.is_empty() {
                "ok".to_owned()
            } else {
                format!("**{}**", t.problems.join("; "))
            }
        );
    }
    let states: Vec<String> = o.states.iter().map(|(s, n)| format!("{s} {n}")).collect();
    println!(
        "\nstatus: exit 0 and every started tenant listed (tenants by state in the last run: {}); reconcile: exit 0, every tenant `unchanged`, no plan, no orphans.",
        states.join(", ")
    );
    for n in &o.notes {
        println!("\nnote: {n}");
    }
}

fn docker_version() -> String {
    std::process::Command::new("docker")
        .args(["version", "--format", "{{.Server.Version}}"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| format!("Docker {}", String::from_utf8_lossy(&o.stdout).trim()))
        .unwrap_or_else(|| "Docker version unknown".to_owned())
}
