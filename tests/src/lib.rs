//! The shared harness for every test that runs against the real parts: a
//! Docker engine and an Apache Cassandra node.
//!
//! - [`docker`] gives a client of the local engine, or fails with one clear
//!   line saying that no engine answers and what to run.
//! - [`cassandra`] gives the shared test node: one container
//!   (`provision-test-cassandra`, from the locally built image) started once
//!   per test run, or reused if it is already running, on the network
//!   `provision-test-net`. It returns once CQL answers with the harness's
//!   superuser.
//! - [`unique_id`] gives each test names of its own, and [`Scope`] labels
//!   every Docker object a test creates so it can be removed by label.
//! - [`TestTenant`] makes a tenant keyspace and role through the
//!   provisioner's own code, so tests exercise the production path.
//! - [`private_cassandra`] gives a test a Cassandra node of its own (to
//!   restart or break), and [`wait_for_cql`] waits for any node to answer.
//! - [`containers`] starts the tenant app images and asks the engine about
//!   them; [`http`] talks HTTP to them; [`apps`] runs ingest in-process and
//!   commissions gateways.
//! - [`smtp`] runs a real SMTP server (aiosmtpd) and reads back what it
//!   received, for the notifier's tests.
//! - [`faults`] breaks the stack (a dockerd restart) and checks that every
//!   acked reading is in Cassandra.
//! - [`bench`] is what the benchmarks share: their own Cassandra node,
//!   their config, a `provisiond` they start and stop.

pub mod apps;
pub mod bench;
pub mod containers;
pub mod faults;
pub mod http;
pub mod smtp;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bollard::errors::Error as DockerError;
use bollard::models::NetworkCreateRequest;
use bollard::query_parameters::{
    ListNetworksOptionsBuilder, ListVolumesOptionsBuilder, RemoveContainerOptionsBuilder,
    RemoveVolumeOptionsBuilder,
};
use bollard::Docker;
use provisioner::cql::tenant::{drop_tenant, ensure_keyspace, ensure_role};
use provisioner::cql::{connect_published, Replication};
use provisioner::ProviderId;
use rand::Rng;
use scylla::client::session::Session;
use tokio::sync::OnceCell;

use crate::containers::{published_port, TestContainer};

/// The container of the shared test Cassandra node.
pub const CASSANDRA_CONTAINER: &str = "provision-test-cassandra";
/// The user-defined network the test node and test containers share.
pub const TEST_NETWORK: &str = "provision-test-net";
/// The label every object the harness creates carries.
pub const TEST_LABEL: &str = "io.provision.test";
/// The label a [`Scope`] puts on the objects of one test.
pub const SCOPE_LABEL: &str = "io.provision.test-scope";
/// The superuser the harness creates on the test node. The node is
/// throwaway and listens on loopback only, so a fixed password is fine.
pub const TEST_ADMIN_USER: &str = "provision_test_admin";
pub const TEST_ADMIN_PASSWORD: &str = "provision-test-admin-password";
/// How long one attempt to open a CQL session may take.
pub const CONNECT_ATTEMPT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a cold Cassandra may take to answer CQL.
const CASSANDRA_START_DEADLINE: Duration = Duration::from_secs(240);

/// The image of the test node: `PROVISION_CASSANDRA_IMAGE`, or the one
/// scripts/setup builds.
pub fn cassandra_image() -> String {
    std::env::var("PROVISION_CASSANDRA_IMAGE")
        .unwrap_or_else(|_| "provision/cassandra:5.0".to_owned())
}

/// A client of the local Docker engine (`DOCKER_HOST` or the default
/// socket), with the API version negotiated. Panics with one clear line
/// when no engine answers: such a test must fail, not skip.
pub async fn docker() -> Docker {
    let where_ = std::env::var("DOCKER_HOST").unwrap_or_else(|_| "/var/run/docker.sock".to_owned());
    let connected = async {
        let docker = Docker::connect_with_local_defaults()?
            .negotiate_version()
            .await?;
        docker.ping().await?;
        Ok::<_, DockerError>(docker)
    }
    .await;
    match connected {
        Ok(docker) => docker,
        Err(e) => panic!("no Docker engine answers at {where_} ({e}): run scripts/setup, which installs and starts one"),
    }
}

/// Whether a Docker error is the engine's 404.
pub fn is_not_found(e: &DockerError) -> bool {
    matches!(
        e,
        DockerError::DockerResponseServerError {
            status_code: 404,
            ..
        }
    )
}

/// Whether a Docker error is the engine's 409 (already exists / in
/// progress), or Podman's 500 saying the same ("already in use", "already
/// exists").
pub fn is_conflict(e: &DockerError) -> bool {
    match e {
        DockerError::DockerResponseServerError {
            status_code: 409, ..
        } => true,
        DockerError::DockerResponseServerError {
            status_code: 500,
            message,
        } => message.contains("already in use") || message.contains("already exists"),
        _ => false,
    }
}

/// The shared test Cassandra node, as the tests reach it.
#[derive(Debug, Clone)]
pub struct CassandraNode {
    /// The container's name.
    pub container: String,
    /// The network that containers must join to reach the node by name.
    pub network: String,
    /// Where code on the host reaches CQL (a port published on loopback).
    ///
    /// IMPORTANT: the node advertises its Docker-network address, so a
    /// driver session from the host must send every connection to this
    /// address: build it with `tenant_schema::cql::connect_published` or
    /// add `tenant_schema::cql::PublishedPortTranslator(host_addr)` as the
    /// session's address translator. A plain `known_node(host_addr)`
    /// session fails with "connection refused".
    pub host_addr: SocketAddr,
    /// Where containers on [`CassandraNode::network`] reach CQL.
    pub in_network_addr: String,
    pub admin_user: String,
    pub admin_password: String,
}

impl CassandraNode {
    /// The same node with [`CassandraNode::host_addr`] set to its address on
    /// the Docker network, when the host reaches it there (Linux bridge
    /// networks do): traffic then skips docker-proxy, the user-space relay
    /// behind loopback-published ports, as a tenant container's does.
    /// Benchmarks use it; `None` when that address cannot be reached.
    pub async fn direct(&self) -> Option<CassandraNode> {
        let ip = containers::network_ip(&docker().await, &self.container).await?;
        let addr = SocketAddr::new(ip, 9042);
        let reach = tokio::net::TcpStream::connect(addr);
        tokio::time::timeout(Duration::from_secs(2), reach)
            .await
            .ok()?
            .ok()?;
        Some(CassandraNode {
            host_addr: addr,
            ..self.clone()
        })
    }

    /// A session of the harness's superuser.
    pub async fn admin_session(&self) -> Session {
        self.session_as(&self.admin_user, &self.admin_password)
            .await
            .unwrap_or_else(|e| {
                panic!(
                    "the test Cassandra at {} refused the admin session: {e}",
                    self.host_addr
                )
            })
    }

    /// A session of any role. An attempt that hangs (a node still
    /// starting can accept a connection and never answer) fails after
    /// [`CONNECT_ATTEMPT_TIMEOUT`].
    pub async fn session_as(&self, user: &str, password: &str) -> Result<Session, String> {
        connect_bounded(self.host_addr, user, password).await
    }

    /// A session of [`CassandraNode::admin_user`], once the node answers;
    /// panics after `within`.
    pub async fn wait_for_cql(&self, within: Duration) -> Session {
        wait_for_cql(
            self.host_addr,
            &self.admin_user,
            &self.admin_password,
            within,
        )
        .await
    }
}

/// A session of `user` at `host_addr` (a CQL port published on the host),
/// or why not within [`CONNECT_ATTEMPT_TIMEOUT`].
async fn connect_bounded(
    host_addr: SocketAddr,
    user: &str,
    password: &str,
) -> Result<Session, String> {
    match tokio::time::timeout(
        CONNECT_ATTEMPT_TIMEOUT,
        connect_published(host_addr, user, password),
    )
    .await
    {
        Ok(result) => result.map_err(|e| e.to_string()),
        Err(_) => Err(format!(
            "no answer from {host_addr} within {} s",
            CONNECT_ATTEMPT_TIMEOUT.as_secs()
        )),
    }
}

/// A session of `user` at `host_addr` (a CQL port published on the host),
/// trying every 100 ms until one opens: for a node that is starting.
/// Panics after `within`.
pub async fn wait_for_cql(
    host_addr: SocketAddr,
    user: &str,
    password: &str,
    within: Duration,
) -> Session {
    let started = Instant::now();
    loop {
        match connect_bounded(host_addr, user, password).await {
            Ok(session) => return session,
            Err(e) => assert!(
                started.elapsed() < within,
                "the Cassandra at {host_addr} is not answering after {within:?}: {e}"
            ),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

static NODE: OnceCell<CassandraNode> = OnceCell::const_new();

/// The shared test Cassandra node, started if needed, once CQL answers.
pub async fn cassandra() -> &'static CassandraNode {
    NODE.get_or_init(start_cassandra).await
}

async fn ensure_network(docker: &Docker, name: &str, labels: HashMap<String, String>) {
    match docker.inspect_network(name, None).await {
        Ok(_) => return,
        Err(e) if is_not_found(&e) => {}
        Err(e) => panic!("cannot inspect docker network {name}: {e}"),
    }
    let request = NetworkCreateRequest {
        name: name.to_owned(),
        driver: Some("bridge".to_owned()),
        labels: Some(labels),
        ..Default::default()
    };
    match docker.create_network(request).await {
        Ok(_) => {}
        // Another test process created it between our inspect and create.
        Err(e) if is_conflict(&e) => {}
        Err(e) => panic!("cannot create docker network {name}: {e}"),
    }
}

fn harness_labels(role: &str) -> HashMap<String, String> {
    HashMap::from([
        (TEST_LABEL.to_owned(), "1".to_owned()),
        ("io.provision.role".to_owned(), role.to_owned()),
    ])
}

/// A Cassandra node container named `name`, with a `heap`, on the harness
/// network where containers reach it by name, its CQL port published on
/// loopback (on `host_port`, or one the engine picks).
fn cassandra_container(
    name: &str,
    image: &str,
    labels: HashMap<String, String>,
    heap: &str,
    host_port: Option<u16>,
    env: &[String],
) -> TestContainer {
    let mut all = vec![format!("CASSANDRA_HEAP={heap}")];
    all.extend(env.iter().cloned());
    TestContainer::new(name, image, labels)
        .env(all)
        .publish("9042/tcp", host_port)
        .on_test_network()
        .reachable_by_name()
}

async fn create_cassandra_container(docker: &Docker, image: &str) {
    if let Err(e) = docker.inspect_image(image).await {
        panic!("the image {image} is missing ({e}): run scripts/setup, which builds it");
    }
    let container = cassandra_container(
        CASSANDRA_CONTAINER,
        image,
        harness_labels("cassandra"),
        "2G",
        None,
        &[],
    );
    match container.create(docker).await {
        Ok(()) => {}
        Err(e) if is_conflict(&e) => {}
        Err(e) => panic!("cannot create the test Cassandra container: {e}"),
    }
}

/// A Cassandra node of one test only (to restart or break without touching
/// the shared node): a container of `scope`, on the harness network, its
/// CQL port published on a fixed host port that survives restarts. Returns
/// once CQL answers (the image's default superuser).
pub async fn private_cassandra(docker: &Docker, scope: &Scope) -> CassandraNode {
    private_cassandra_with(docker, scope, "cassandra", "768M", &[]).await
}

/// [`private_cassandra`] named `what` in `scope`, with a `heap` and more
/// of the image's environment (`KEY=value`, such as
/// `CASSANDRA_COMMITLOG_SYNC=periodic`): benchmarks compare nodes set up
/// differently side by side with it.
pub async fn private_cassandra_with(
    docker: &Docker,
    scope: &Scope,
    what: &str,
    heap: &str,
    env: &[String],
) -> CassandraNode {
    let name = scope.name(what);
    let port = containers::free_port();
    let image = cassandra_image();
    ensure_network(docker, TEST_NETWORK, harness_labels("network")).await;
    cassandra_container(&name, &image, scope.labels(), heap, Some(port), env)
        .start(docker)
        .await
        .unwrap_or_else(|e| panic!("cannot start a private Cassandra from {image}: {e}"));
    let node = CassandraNode {
        container: name.clone(),
        network: TEST_NETWORK.to_owned(),
        host_addr: ([127, 0, 0, 1], port).into(),
        in_network_addr: format!("{name}:9042"),
        admin_user: "cassandra".to_owned(),
        admin_password: "cassandra".to_owned(),
    };
    node.wait_for_cql(CASSANDRA_START_DEADLINE).await;
    node
}

async fn start_cassandra() -> CassandraNode {
    let docker = docker().await;
    let image = cassandra_image();
    ensure_network(&docker, TEST_NETWORK, harness_labels("network")).await;
    let running = match docker.inspect_container(CASSANDRA_CONTAINER, None).await {
        Ok(inspect) => inspect.state.and_then(|s| s.running).unwrap_or(false),
        Err(e) if is_not_found(&e) => {
            create_cassandra_container(&docker, &image).await;
            false
        }
        Err(e) => panic!("cannot inspect the test Cassandra container: {e}"),
    };
    let started = Instant::now();
    if !running {
        match docker.start_container(CASSANDRA_CONTAINER, None).await {
            Ok(()) => {}
            // 304: another test process started it first.
            Err(DockerError::DockerResponseServerError {
                status_code: 304, ..
            }) => {}
            Err(e) => panic!("cannot start the test Cassandra container: {e}"),
        }
    }
    let port = loop {
        if let Some(port) = published_port(&docker, CASSANDRA_CONTAINER, "9042/tcp").await {
            break port;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "the test Cassandra container published no port for 9042"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let node = CassandraNode {
        container: CASSANDRA_CONTAINER.to_owned(),
        network: TEST_NETWORK.to_owned(),
        host_addr: SocketAddr::from(([127, 0, 0, 1], port)),
        in_network_addr: format!("{CASSANDRA_CONTAINER}:9042"),
        admin_user: TEST_ADMIN_USER.to_owned(),
        admin_password: TEST_ADMIN_PASSWORD.to_owned(),
    };
    wait_for_admin_login(&docker, &node, started).await;
    node
}

/// Waits until the harness's superuser can log in, creating it with the
/// image's default superuser the first time.
async fn wait_for_admin_login(docker: &Docker, node: &CassandraNode, started: Instant) {
    let mut last_error = String::new();
    while started.elapsed() < CASSANDRA_START_DEADLINE {
        if node
            .session_as(TEST_ADMIN_USER, TEST_ADMIN_PASSWORD)
            .await
            .is_ok()
        {
            if !last_error.is_empty() {
                eprintln!(
                    "test Cassandra answered CQL {:.1} s after start",
                    started.elapsed().as_secs_f64()
                );
            }
            return;
        }
        match node.session_as("cassandra", "cassandra").await {
            Ok(session) => {
                let create = format!(
                    "CREATE ROLE IF NOT EXISTS {TEST_ADMIN_USER} WITH PASSWORD = '{TEST_ADMIN_PASSWORD}' \
                     AND SUPERUSER = true AND LOGIN = true"
                );
                if let Err(e) = session.query_unpaged(create, ()).await {
                    last_error = format!("cannot create the harness superuser: {e}");
                }
            }
            Err(e) => last_error = e,
        }
        let state = docker
            .inspect_container(CASSANDRA_CONTAINER, None)
            .await
            .ok()
            .and_then(|i| i.state)
            .and_then(|s| s.running);
        assert!(
            state != Some(false),
            "the test Cassandra container stopped while starting: see `docker logs {CASSANDRA_CONTAINER}`"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    panic!(
        "the test Cassandra did not answer CQL within {} s (last error: {last_error}); see `docker logs {CASSANDRA_CONTAINER}`",
        CASSANDRA_START_DEADLINE.as_secs()
    );
}

/// A fresh, valid provider id starting with `prefix`: unique per call, so
/// tests running at once never share a keyspace, role or container.
pub fn unique_id(prefix: &str) -> String {
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    let mut rng = rand::thread_rng();
    let suffix: String = (0..8)
        .map(|_| ALPHABET[rng.gen_range(0..ALPHABET.len())] as char)
        .collect();
    let id = format!("{prefix}_{suffix}");
    assert!(
        ProviderId::parse(&id).is_ok(),
        "unique_id({prefix:?}) made an invalid id {id:?}"
    );
    id
}

/// A tenant keyspace with the tenant schema and a tenant role with rights on
/// that keyspace only, made through the provisioner's own code.
#[derive(Debug, Clone)]
pub struct TestTenant {
    pub id: ProviderId,
    pub keyspace: String,
    pub role: String,
    pub password: String,
}

impl TestTenant {
    pub async fn create(node: &CassandraNode, prefix: &str) -> TestTenant {
        let id = ProviderId::parse(&unique_id(prefix)).expect("unique_id gives valid ids");
        let admin = node.admin_session().await;
        ensure_keyspace(&admin, &id, &Replication::default())
            .await
            .unwrap_or_else(|e| panic!("cannot create the test keyspace: {e}"));
        let password = tenant_schema::model::new_password();
        ensure_role(&admin, &id, &password)
            .await
            .unwrap_or_else(|e| panic!("cannot create the test role: {e}"));
        TestTenant {
            keyspace: id.keyspace(),
            role: id.cassandra_role(),
            id,
            password,
        }
    }

    /// A session of the tenant's own role.
    pub async fn session(&self, node: &CassandraNode) -> Session {
        node.session_as(&self.role, &self.password)
            .await
            .unwrap_or_else(|e| panic!("the tenant role {} cannot log in: {e}", self.role))
    }

    /// The environment a tenant app container gets (see tenant-common).
    pub fn app_env(&self, node: &CassandraNode) -> Vec<String> {
        vec![
            format!("TENANT_ID={}", self.id),
            format!("TENANT_KEYSPACE={}", self.keyspace),
            format!("CASSANDRA_CONTACT_POINTS={}", node.in_network_addr),
            format!("CASSANDRA_USERNAME={}", self.role),
            format!("CASSANDRA_PASSWORD={}", self.password),
        ]
    }

    /// Drops the keyspace and the role.
    pub async fn drop(&self, node: &CassandraNode) {
        let admin = node.admin_session().await;
        drop_tenant(&admin, &self.id)
            .await
            .unwrap_or_else(|e| panic!("cannot drop the test tenant {}: {e}", self.id));
    }
}

/// The label of one test's Docker objects. Everything a test creates
/// carries [`Scope::labels`]; [`Scope::cleanup`] (or drop) removes it all.
#[derive(Debug)]
pub struct Scope {
    pub id: String,
}

impl Scope {
    pub fn new(prefix: &str) -> Scope {
        Scope {
            id: unique_id(prefix),
        }
    }

    /// The labels to put on every container, network and volume of the test.
    pub fn labels(&self) -> HashMap<String, String> {
        HashMap::from([
            (TEST_LABEL.to_owned(), "1".to_owned()),
            (SCOPE_LABEL.to_owned(), self.id.clone()),
        ])
    }

    /// A name for a Docker object of this test.
    pub fn name(&self, what: &str) -> String {
        format!("{}-{what}", self.id)
    }

    /// Removes every container, network and volume carrying this scope's label.
    pub async fn cleanup(&self) {
        remove_labelled(&docker().await, &format!("{SCOPE_LABEL}={}", self.id)).await;
    }
}

impl Drop for Scope {
    fn drop(&mut self) {
        let label = format!("{SCOPE_LABEL}={}", self.id);
        // Drop may run inside an async test: clean up on a thread of its own.
        let _ = std::thread::spawn(move || {
            if let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                rt.block_on(async {
                    if let Ok(docker) = Docker::connect_with_local_defaults() {
                        if let Ok(docker) = docker.negotiate_version().await {
                            remove_labelled(&docker, &label).await;
                        }
                    }
                });
            }
        })
        .join();
    }
}

/// Removes every container, then network, then volume carrying `label`
/// (`key=value`). A 404 counts as removed.
pub async fn remove_labelled(docker: &Docker, label: &str) {
    let containers = containers::list_labelled(docker, label)
        .await
        .unwrap_or_default();
    let filters = HashMap::from([("label".to_owned(), vec![label.to_owned()])]);
    for container in containers {
        if let Some(id) = container.id {
            let options = RemoveContainerOptionsBuilder::default()
                .force(true)
                .v(true)
                .build();
            let _ = docker.remove_container(&id, Some(options)).await;
        }
    }
    let networks = docker
        .list_networks(Some(
            ListNetworksOptionsBuilder::default()
                .filters(&filters)
                .build(),
        ))
        .await
        .unwrap_or_default();
    for network in networks {
        let Some(id) = network.id else { continue };
        // A node attached to a tenant network (the provisioner attaches
        // Cassandra to each) would keep the network in use.
        if let Ok(inspect) = docker.inspect_network(&id, None).await {
            for endpoint in inspect.containers.unwrap_or_default().into_keys() {
                let request = bollard::models::NetworkDisconnectRequest {
                    container: endpoint,
                    force: Some(true),
                };
                let _ = docker.disconnect_network(&id, request).await;
            }
        }
        let _ = docker.remove_network(&id).await;
    }
    if let Ok(volumes) = docker
        .list_volumes(Some(
            ListVolumesOptionsBuilder::default()
                .filters(&filters)
                .build(),
        ))
        .await
    {
        for volume in volumes.volumes.unwrap_or_default() {
            let _ = docker
                .remove_volume(
                    &volume.name,
                    Some(RemoveVolumeOptionsBuilder::default().force(true).build()),
                )
                .await;
        }
    }
}

/// Every row `cql` returns, as `R`: for tests that assert on what landed in
/// a table. Panics on any error, naming the query.
pub async fn query_rows<R>(
    session: &Session,
    cql: String,
    values: impl scylla::serialize::row::SerializeRow,
) -> Vec<R>
where
    R: for<'frame, 'metadata> scylla::deserialize::row::DeserializeRow<'frame, 'metadata>,
{
    let result = session
        .query_unpaged(cql.clone(), values)
        .await
        .unwrap_or_else(|e| panic!("{cql}: {e}"));
    result
        .into_rows_result()
        .unwrap_or_else(|e| panic!("{cql}: {e}"))
        .rows::<R>()
        .unwrap_or_else(|e| panic!("{cql}: {e}"))
        .map(|row| row.unwrap_or_else(|e| panic!("{cql}: {e}")))
        .collect()
}
