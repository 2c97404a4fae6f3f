//! Shared by the `provision_*.rs` test files: a private provisioner
//! environment per test (its own state file, port ranges, container prefix
//! and cleanup scope) pointed at the harness's Cassandra node, a runner for
//! the real `provision` binary, and a small client for a tenant's gateway
//! port (XML over TCP). The admin panel is reached with the harness's
//! `provision_testkit::http`.

#![allow(dead_code)]

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use provision_testkit::containers::{self, labelled_containers};
use provision_testkit::{cassandra, docker, CassandraNode, Scope, SCOPE_LABEL};
use provisioner::{Config, Provisioner};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

/// The `provision` binary of this build (next to the test executable's
/// `deps/` folder). `cargo test --workspace` builds it; a run of this crate
/// alone builds it first.
pub fn provision_bin() -> PathBuf {
    let exe = std::env::current_exe().expect("the test executable's path");
    let release = exe
        .parent()
        .and_then(|d| d.parent())
        .expect("target/<triple>/release");
    let bin = release.join("provision");
    if !bin.exists() {
        let status = std::process::Command::new(env!("CARGO"))
            .args([
                "build",
                "--release",
                "-p",
                "provision-cli",
                "--bin",
                "provision",
            ])
            .status()
            .expect("cargo runs");
        assert!(status.success(), "cannot build the provision binary");
    }
    bin
}

/// The outcome of one `provision` run.
#[derive(Debug, Clone)]
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    /// Panics with the output unless the run succeeded.
    pub fn ok(self) -> Run {
        assert_eq!(
            self.code, 0,
            "provision failed:\nstdout: {}\nstderr: {}",
            self.stdout, self.stderr
        );
        self
    }

    /// A top-level field of the JSON output, as its raw text (strings unquoted).
    pub fn field(&self, key: &str) -> Option<String> {
        json_field(&self.stdout, key)
    }

    pub fn port(&self, key: &str) -> u16 {
        self.field(key)
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("no port {key} in {}", self.stdout))
    }
}

/// Finds `"key": value` in (pretty-printed) JSON and returns the value.
pub fn json_field(json: &str, key: &str) -> Option<String> {
    let needle = format!("\"{key}\": ");
    let start = json.find(&needle)? + needle.len();
    let rest = &json[start..];
    let end = rest.find([',', '\n']).unwrap_or(rest.len());
    Some(rest[..end].trim().trim_matches('"').to_owned())
}

/// A private provisioner environment.
pub struct Env {
    pub dir: PathBuf,
    pub config: PathBuf,
    pub scope: Scope,
    pub node: &'static CassandraNode,
    pub prefix: String,
    /// `PROVISION_SERVER` and `PROVISION_TOKEN` for every run: the CLI as
    /// the daemon's client ([`Env::through`]).
    pub server: Option<(String, String)>,
}

/// The `provisiond` binary of this build, next to `provision`.
pub fn provisiond_bin() -> PathBuf {
    let bin = provision_bin().with_file_name("provisiond");
    if !bin.exists() {
        let status = std::process::Command::new(env!("CARGO"))
            .args(["build", "--release", "-p", "provisiond"])
            .status()
            .expect("cargo runs");
        assert!(status.success(), "cannot build provisiond");
    }
    bin
}

/// A `provisiond` of an environment: its Unix socket, its TCP address and
/// an operator token for it.
pub struct Daemon {
    pub child: tokio::process::Child,
    pub socket: PathBuf,
    /// `127.0.0.1:<port>`.
    pub addr: String,
    pub token: String,
}

impl Daemon {
    /// `http://<addr>`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// One request over TCP with the daemon's token: the status, the
    /// content type and the body.
    pub async fn call(
        &self,
        method: &str,
        path: &str,
        body: Option<&str>,
    ) -> (u16, String, String) {
        api(&self.addr, method, path, Some(&self.token), body).await
    }

    /// Follows operation `op` (long polls) until it is over.
    pub async fn follow(&self, op: &str) -> serde_json::Value {
        let deadline = std::time::Instant::now() + Duration::from_secs(300);
        loop {
            let path = format!("/v1/operations/{op}?wait=30");
            let (status, _, body) = self.call("GET", &path, None).await;
            assert_eq!(status, 200, "{body}");
            let record: serde_json::Value = serde_json::from_str(&body).unwrap();
            if !matches!(record["state"].as_str(), Some("queued" | "running")) {
                return record;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "operation {op} did not end: {body}"
            );
        }
    }

    /// Queues an operation (202) and follows it to its end.
    pub async fn operation(
        &self,
        method: &str,
        path: &str,
        body: Option<&str>,
    ) -> serde_json::Value {
        let (status, _, answer) = self.call(method, path, body).await;
        assert_eq!(status, 202, "{method} {path}: {answer}");
        let accepted: serde_json::Value = serde_json::from_str(&answer).unwrap();
        self.follow(accepted["operation"].as_str().expect("an operation id"))
            .await
    }

    /// Kills the daemon (SIGKILL) and waits for it to end.
    pub async fn kill(&mut self) {
        let _ = self.child.start_kill();
        let _ = self.child.wait().await;
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
    }
}

/// The config keys that reach `node` as an external cluster, a line each.
fn external_keys(node: &CassandraNode) -> String {
    format!(
        r#"contact_points = ["{host}"]
container_contact_points = ["{in_network}"]
published = true
attach_container = "{container}"
admin_user = "{user}"
admin_password = "{password}"
"#,
        host = node.host_addr,
        in_network = node.in_network_addr,
        container = node.container,
        user = node.admin_user,
        password = node.admin_password,
    )
}

impl Env {
    /// A state file and config of its own, port pools `gateway` and `admin`
    /// (first, last), containers named `<scope>-<tenant>-<role>` and
    /// labelled with the test's scope, run from the harness's tenant images
    /// (`PROVISION_INGEST_IMAGE`, `PROVISION_ADMIN_IMAGE`,
    /// `PROVISION_NOTIFIER_IMAGE`).
    pub async fn new(name: &str, gateway: (u16, u16), admin: (u16, u16)) -> Env {
        Env::with_extra(name, gateway, admin, "").await
    }

    /// Like [`Env::new`], with extra TOML appended to the config.
    pub async fn with_extra(
        name: &str,
        gateway: (u16, u16),
        admin: (u16, u16),
        extra: &str,
    ) -> Env {
        Env::on_node(Scope::new(name), gateway, admin, cassandra().await, extra).await
    }

    /// Like [`Env::with_extra`], with `node` as its external Cassandra (a
    /// private one of `scope`, to stop and start).
    pub async fn on_node(
        scope: Scope,
        gateway: (u16, u16),
        admin: (u16, u16),
        node: &CassandraNode,
        extra: &str,
    ) -> Env {
        let cassandra = format!(
            "mode = \"external\"\n{}connect_timeout_secs = 30",
            external_keys(node)
        );
        Env::build(scope, gateway, admin, extra, &node.network, &cassandra).await
    }

    /// Like [`Env::on_node`], with every node of `clusters` (name,
    /// capacity, node) as a `[[cassandra.clusters]]` entry, in that order.
    pub async fn on_clusters(
        scope: Scope,
        gateway: (u16, u16),
        admin: (u16, u16),
        clusters: &[(&str, u32, &CassandraNode)],
    ) -> Env {
        let mut section = "connect_timeout_secs = 30\n".to_owned();
        for (name, capacity, node) in clusters {
            section.push_str(&format!(
                "\n[[cassandra.clusters]]\nname = \"{name}\"\ncapacity = {capacity}\n{}",
                external_keys(node)
            ));
        }
        let network = clusters[0].2.network.clone();
        Env::build(scope, gateway, admin, "", &network, &section).await
    }

    /// An environment whose Cassandra is a managed node of its own (a
    /// container `<scope>-cassandra` with a 512 MiB heap, its own volume,
    /// network and loopback port), created by the first `start`.
    pub async fn managed(name: &str, gateway: (u16, u16), admin: (u16, u16)) -> Env {
        let scope = Scope::new(name);
        let prefix = scope.id.replace('_', "-");
        let cassandra = format!(
            r#"mode = "managed"
container = "{prefix}-cassandra"
volume = "{prefix}-cassandra-data"
heap = "512M"
memory_mb = 1536
host_port = {port}
connect_timeout_secs = 180"#,
            port = containers::free_port(),
        );
        let network = format!("{prefix}-net");
        Env::build(scope, gateway, admin, "", &network, &cassandra).await
    }

    async fn build(
        scope: Scope,
        gateway: (u16, u16),
        admin: (u16, u16),
        extra: &str,
        network: &str,
        cassandra_section: &str,
    ) -> Env {
        let node = cassandra().await;
        let dir = std::env::temp_dir().join(format!("provision-test-{}", scope.id));
        std::fs::create_dir_all(&dir).unwrap();
        let config = dir.join("provision.toml");
        let prefix = scope.id.replace('_', "-");
        let text = format!(
            r#"state = "{state}"
log_format = "text"
{extra}
[docker]
network = "{network}"
container_prefix = "{prefix}"
extra_labels = {{ "{SCOPE_LABEL}" = "{scope}", "io.provision.test" = "1" }}

[cassandra]
{cassandra_section}

[ports]
gateway = "{g0}-{g1}"
admin = "{a0}-{a1}"
public_host = "127.0.0.1"

[health]
timeout_secs = 90

[images]
ingest = "{ingest}"
admin = "{admin}"
notifier = "{notifier}"
"#,
            state = dir.join("state.db").display(),
            scope = scope.id,
            g0 = gateway.0,
            g1 = gateway.1,
            a0 = admin.0,
            a1 = admin.1,
            ingest = containers::ingest_image(),
            admin = containers::admin_image(),
            notifier = containers::notifier_image(),
        );
        std::fs::write(&config, text).unwrap();
        Env {
            dir,
            config,
            scope,
            node,
            prefix,
            server: None,
        }
    }

    /// Starts `provisiond` on this environment's config, on a socket in its
    /// directory and on a free loopback port, with `env` in its
    /// environment; once it answers, makes an operator token for it (the
    /// first daemon of an environment; later ones reuse `token`).
    pub async fn daemon(&self, env: &[(&str, &str)], token: Option<&str>) -> Daemon {
        let socket = self.dir.join("provisiond.sock");
        let addr = format!("127.0.0.1:{}", containers::free_port());
        let log = std::fs::File::create(self.dir.join("provisiond.log")).unwrap();
        let child = tokio::process::Command::new(provisiond_bin())
            .arg("--config")
            .arg(&self.config)
            .arg("--socket")
            .arg(&socket)
            .args(["--listen", &addr])
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .expect("provisiond starts");
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while tokio::net::TcpStream::connect(&addr).await.is_err()
            || tokio::net::UnixStream::connect(&socket).await.is_err()
        {
            assert!(
                std::time::Instant::now() < deadline,
                "provisiond did not listen within 30 s: {}",
                self.daemon_log()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let token = match token {
            Some(token) => token.to_owned(),
            None => {
                let name = format!("ci-{}", containers::free_port());
                let made = self.run(&["--json", "token", "create", &name]).await.ok();
                made.field("token").expect("a token")
            }
        };
        Daemon {
            child,
            socket,
            addr,
            token,
        }
    }

    /// What the environment's daemon logged.
    pub fn daemon_log(&self) -> String {
        std::fs::read_to_string(self.dir.join("provisiond.log")).unwrap_or_default()
    }

    /// Every later run is the CLI as `daemon`'s client over TCP.
    pub fn through(&mut self, daemon: &Daemon) {
        self.server = Some((daemon.url(), daemon.token.clone()));
    }

    /// Runs `provision --config <ours> <args>`.
    /// The command is built before the future is returned, so the future
    /// borrows neither `self` nor `args`.
    pub fn run(&self, args: &[&str]) -> impl std::future::Future<Output = Run> + 'static {
        let mut command = self.command(args);
        async move {
            let out = command.output().await.expect("provision runs");
            Run {
                code: out.status.code().unwrap_or(-1),
                stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
                stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
            }
        }
    }

    pub fn command(&self, args: &[&str]) -> tokio::process::Command {
        let mut cmd = tokio::process::Command::new(provision_bin());
        cmd.arg("--config").arg(&self.config);
        if let Some((server, token)) = &self.server {
            // Token commands manage this machine's store: never remote.
            if args.iter().find(|a| !a.starts_with('-')) != Some(&"token") {
                cmd.env("PROVISION_SERVER", server)
                    .env("PROVISION_TOKEN", token);
            }
        }
        cmd.args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        cmd
    }

    /// Replaces the first `from` in the config file with `to`.
    pub fn edit_config(&self, from: &str, to: &str) {
        let text = std::fs::read_to_string(&self.config).unwrap();
        assert!(text.contains(from), "{from} not in the test config");
        std::fs::write(&self.config, text.replacen(from, to, 1)).unwrap();
    }

    /// The library over the same config and state.
    pub async fn provisioner(&self) -> Provisioner {
        let config = Config::load(Some(&self.config)).expect("test config parses");
        Provisioner::open(config).await.expect("state store opens")
    }

    pub fn container(&self, tenant: &str, role: &str) -> String {
        format!("{}-{tenant}-{role}", self.prefix)
    }
}

impl Drop for Env {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Names of the containers carrying `io.provision.tenant=<tenant>`.
pub async fn tenant_containers(tenant: &str) -> Vec<String> {
    labelled_containers(&docker().await, &format!("io.provision.tenant={tenant}")).await
}

/// Whether `container` is running.
pub async fn is_running(container: &str) -> bool {
    containers::is_running(&docker().await, container).await
}

/// A gateway connected to a tenant's gateway port, past the hello.
pub struct Gateway {
    reader: BufReader<tokio::net::tcp::OwnedReadHalf>,
    writer: tokio::net::tcp::OwnedWriteHalf,
}

impl Gateway {
    pub async fn connect(port: u16, gateway: &str, token: &str) -> Gateway {
        Gateway::hello(port, gateway, token)
            .await
            .unwrap_or_else(|answer| panic!("hello answered {answer}"))
    }

    /// Connects and says hello: the gateway, welcomed, or the answer that
    /// refused it.
    pub async fn hello(port: u16, gateway: &str, token: &str) -> Result<Gateway, String> {
        let stream = TcpStream::connect(("127.0.0.1", port))
            .await
            .expect("gateway port accepts");
        Gateway::over(stream, gateway, token).await
    }

    /// Says hello on a connection made by the caller (from an address of
    /// its choice).
    pub async fn over(stream: TcpStream, gateway: &str, token: &str) -> Result<Gateway, String> {
        let (r, w) = stream.into_split();
        let mut gw = Gateway {
            reader: BufReader::new(r),
            writer: w,
        };
        gw.send(&format!(r#"<hello gateway="{gateway}" token="{token}"/>"#))
            .await;
        let answer = gw.read_element().await;
        if answer.starts_with("<welcome") {
            Ok(gw)
        } else {
            Err(answer)
        }
    }

    pub async fn send(&mut self, xml: &str) {
        self.writer
            .write_all(xml.as_bytes())
            .await
            .expect("gateway write");
    }

    /// The next element the server sends (up to its closing `>`).
    pub async fn read_element(&mut self) -> String {
        let mut buf = Vec::new();
        let read = tokio::time::timeout(Duration::from_secs(20), async {
            loop {
                let n = self
                    .reader
                    .read_until(b'>', &mut buf)
                    .await
                    .expect("gateway read");
                assert!(
                    n > 0,
                    "the server closed the connection after {:?}",
                    String::from_utf8_lossy(&buf)
                );
                let text = String::from_utf8_lossy(&buf).trim().to_owned();
                // A self-closing element, or an element with its closing tag.
                if text.ends_with("/>") || (text.contains("</") && text.ends_with('>')) {
                    return text;
                }
            }
        })
        .await;
        read.expect("the server answered within 20 s")
    }

    /// Sends one reading and waits for its ack.
    pub async fn reading(&mut self, seq: u64, ts: &str, sensor: &str, name: &str, value: f64) {
        self.send(&format!(
            r#"<reading seq="{seq}" ts="{ts}" sensor="{sensor}"><value name="{name}" unit="W">{value}</value></reading>"#
        ))
        .await;
        let answer = self.read_element().await;
        assert_eq!(
            answer,
            format!(r#"<ack seq="{seq}"/>"#),
            "reading {seq} answered {answer}"
        );
    }
}

/// One HTTP/1.0 request to the daemon over TCP (`addr`) or its Unix socket
/// (`unix:<path>`), with a bearer `token` and a JSON `body`: the status,
/// the content type and the body.
pub async fn api(
    target: &str,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<&str>,
) -> (u16, String, String) {
    use tokio::io::AsyncReadExt;
    let mut request = format!("{method} {path} HTTP/1.0\r\nHost: provisiond\r\n");
    if let Some(token) = token {
        request.push_str(&format!("Authorization: Bearer {token}\r\n"));
    }
    let body = body.unwrap_or("");
    if !body.is_empty() {
        request.push_str("Content-Type: application/json\r\n");
    }
    request.push_str(&format!("Content-Length: {}\r\n\r\n{body}", body.len()));
    let mut raw = Vec::new();
    match target.strip_prefix("unix:") {
        Some(path) => {
            let mut s = tokio::net::UnixStream::connect(path)
                .await
                .expect("the socket accepts");
            s.write_all(request.as_bytes()).await.unwrap();
            s.read_to_end(&mut raw).await.unwrap();
        }
        None => {
            let mut s = TcpStream::connect(target)
                .await
                .expect("the daemon accepts");
            s.write_all(request.as_bytes()).await.unwrap();
            s.read_to_end(&mut raw).await.unwrap();
        }
    }
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").expect("a head and a body");
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("a status");
    let content_type = head
        .lines()
        .find_map(|l| {
            l.to_ascii_lowercase()
                .strip_prefix("content-type: ")
                .map(str::to_owned)
        })
        .unwrap_or_default();
    (status, content_type, body.to_owned())
}

/// Polls `container`'s engine health until it is `healthy` or `within`
/// passes; answers how long it took.
pub async fn healthy_within(container: &str, within: Duration) -> Option<Duration> {
    let docker = docker().await;
    let started = std::time::Instant::now();
    while started.elapsed() < within {
        if let Ok(c) = docker.inspect_container(container, None).await {
            let health = c
                .state
                .and_then(|s| s.health)
                .and_then(|h| h.status)
                .map(|s| s.to_string());
            if health.as_deref() == Some("healthy") {
                return Some(started.elapsed());
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    None
}
