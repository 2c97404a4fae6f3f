//! The real `provision/ingest:dev` image on the harness network: acked
//! readings survive a `docker restart` of the ingest container (SIGTERM:
//! in-flight frames are finished and acked, nothing acked is lost) and a
//! restart of Cassandra (ingest acks nothing while Cassandra is away, does
//! not crash, and recovers by itself). The Cassandra restart uses a private
//! Cassandra container of this test (same image, on the harness network,
//! carrying the test's Scope label), never the shared test node.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bollard::models::{
    ContainerCreateBody, EndpointSettings, HostConfig, NetworkingConfig, PortBinding,
};
use bollard::query_parameters::{CreateContainerOptionsBuilder, RestartContainerOptionsBuilder};
use bollard::Docker;
use chrono::{DateTime, NaiveDate, TimeDelta, Utc};
use gateway_sim::answer::Answer;
use gateway_sim::client::Gateway;
use provision_testkit::{
    cassandra, cassandra_image, docker, CassandraNode, Scope, TestTenant, TEST_NETWORK,
};
use scylla::client::session::Session;
use tenant_schema::model::{hash_gateway_token, new_gateway_token};
use tokio::sync::Mutex;

/// A tenant keyspace (through the provisioner's own `ensure_keyspace`) and
/// a tenant role with SELECT and MODIFY on it only.
///
/// Not `TestTenant::create` for now: its `ensure_role` runs `ALTER ROLE ..
/// WITH PASSWORD` right after `CREATE ROLE`, which Cassandra 5 refuses
/// ("can only be changed every 5000ms"). Switch back once that is fixed.
async fn create_tenant(node: &CassandraNode, prefix: &str) -> TestTenant {
    let id = provisioner::ProviderId::parse(&provision_testkit::unique_id(prefix)).unwrap();
    let admin = node.admin_session().await;
    provisioner::cassandra::ensure_keyspace(
        &admin,
        &id,
        &provisioner::cassandra::Replication::default(),
    )
    .await
    .unwrap_or_else(|e| panic!("cannot create the test keyspace: {e}"));
    let password = tenant_schema::model::new_password();
    let (role, keyspace) = (id.cassandra_role(), id.keyspace());
    admin
        .query_unpaged(
            format!("CREATE ROLE {role} WITH PASSWORD = '{password}' AND LOGIN = true"),
            (),
        )
        .await
        .unwrap();
    for permission in ["SELECT", "MODIFY"] {
        admin
            .query_unpaged(
                format!("GRANT {permission} ON KEYSPACE {keyspace} TO {role}"),
                (),
            )
            .await
            .unwrap();
    }
    TestTenant {
        id,
        keyspace,
        role,
        password,
    }
}

fn ingest_image() -> String {
    std::env::var("PROVISION_INGEST_IMAGE").unwrap_or_else(|_| "provision/ingest:dev".to_owned())
}

const BASE_TS: &str = "2026-11-23T08:00:00Z";

fn base() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(BASE_TS)
        .unwrap()
        .with_timezone(&Utc)
}

/// A free port on loopback, to publish a container port on a fixed host
/// port that stays the same across restarts.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn publish(container_port: &str, host_port: u16) -> HashMap<String, Option<Vec<PortBinding>>> {
    HashMap::from([(
        container_port.to_owned(),
        Some(vec![PortBinding {
            host_ip: Some("127.0.0.1".to_owned()),
            host_port: Some(host_port.to_string()),
        }]),
    )])
}

/// Starts an ingest container for `tenant`, reaching Cassandra at
/// `contact_point` on the harness network; returns the gateway address on
/// the host.
async fn start_ingest(
    docker: &Docker,
    scope: &Scope,
    tenant: &TestTenant,
    node: &CassandraNode,
    contact_point: &str,
) -> (String, String) {
    let name = scope.name("ingest");
    let port = free_port();
    let mut env = tenant.app_env(node);
    env.retain(|e| !e.starts_with("CASSANDRA_CONTACT_POINTS="));
    env.push(format!("CASSANDRA_CONTACT_POINTS={contact_point}"));
    env.push("LOG_FORMAT=json".to_owned());
    env.push("RUST_LOG=info,scylla=warn".to_owned());
    let config = ContainerCreateBody {
        image: Some(ingest_image()),
        env: Some(env),
        labels: Some(scope.labels()),
        exposed_ports: Some(vec!["6000/tcp".to_owned()]),
        host_config: Some(HostConfig {
            network_mode: Some(TEST_NETWORK.to_owned()),
            port_bindings: Some(publish("6000/tcp", port)),
            readonly_rootfs: Some(true),
            cap_drop: Some(vec!["ALL".to_owned()]),
            memory: Some(128 * 1024 * 1024),
            ..Default::default()
        }),
        ..Default::default()
    };
    docker
        .create_container(
            Some(CreateContainerOptionsBuilder::default().name(&name).build()),
            config,
        )
        .await
        .unwrap_or_else(|e| {
            panic!(
                "cannot create {name} from {} (run scripts/setup): {e}",
                ingest_image()
            )
        });
    docker.start_container(&name, None).await.unwrap();
    (name, format!("127.0.0.1:{port}"))
}

async fn commission(admin: &Session, keyspace: &str, id: &str) -> String {
    let token = new_gateway_token();
    admin
        .query_unpaged(
            format!("INSERT INTO {keyspace}.gateways (gateway_id, token_hash, created_at) VALUES (?, ?, ?)"),
            (id, hash_gateway_token(&token), Utc::now()),
        )
        .await
        .unwrap();
    token
}

async fn written_seqs(admin: &Session, keyspace: &str, gw: &str, day: NaiveDate) -> BTreeSet<i64> {
    admin
        .query_unpaged(
            format!("SELECT seq FROM {keyspace}.readings WHERE gateway_id = ? AND day = ?"),
            (gw, day),
        )
        .await
        .unwrap()
        .into_rows_result()
        .unwrap()
        .rows::<(i64,)>()
        .unwrap()
        .map(|r| r.unwrap().0)
        .collect()
}

async fn container_state(docker: &Docker, name: &str) -> (bool, String, Option<String>) {
    let state = docker
        .inspect_container(name, None)
        .await
        .unwrap()
        .state
        .unwrap();
    (
        state.running.unwrap_or(false),
        state.started_at.unwrap_or_default(),
        state.health.and_then(|h| h.status).map(|s| s.to_string()),
    )
}

async fn wait_healthy(docker: &Docker, name: &str, within: Duration) {
    let started = Instant::now();
    loop {
        let (running, _, health) = container_state(docker, name).await;
        assert!(running, "{name} stopped; see `docker logs {name}`");
        if health.as_deref() == Some("healthy") {
            return;
        }
        assert!(
            started.elapsed() < within,
            "{name} not healthy after {within:?} (health {health:?}); see `docker logs {name}`"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// What a gateway that resends unacked frames after every reconnect saw.
#[derive(Debug, Default)]
struct Delivery {
    acked: BTreeSet<i64>,
    connections: u32,
    errors: Vec<String>,
}

/// Sends `total` frames (one every `pace`), reconnecting and resending
/// every unacked frame whenever the connection ends, until all are acked
/// or `deadline`. Records every ack; an ack for a frame never sent, or a
/// second ack for the same frame from one connection, fails the test.
async fn deliver(
    addr: String,
    gw_id: String,
    token: String,
    total: i64,
    pace: Duration,
    deadline: Duration,
    progress: Arc<Mutex<Delivery>>,
) {
    let started = Instant::now();
    let mut unacked: BTreeMap<i64, String> = BTreeMap::new();
    let mut next_seq = 0i64;
    let frame = |seq: i64| {
        let ts = base() + TimeDelta::seconds(seq);
        format!(
            r#"<reading seq="{seq}" ts="{}" sensor="meter"><value name="energy" unit="Wh">{seq}</value></reading>"#,
            ts.to_rfc3339()
        )
    };
    while (next_seq < total || !unacked.is_empty()) && started.elapsed() < deadline {
        let mut gw = match tokio::time::timeout(
            Duration::from_secs(10),
            Gateway::login(&addr, &gw_id, &token),
        )
        .await
        {
            Ok(Ok(gw)) => gw,
            Ok(Err(e)) => {
                progress.lock().await.errors.push(format!("login: {e}"));
                tokio::time::sleep(Duration::from_millis(500)).await;
                continue;
            }
            Err(_) => {
                progress.lock().await.errors.push("login timed out".into());
                continue;
            }
        };
        progress.lock().await.connections += 1;
        let mut resend = Vec::new();
        for f in unacked.values() {
            resend.extend_from_slice(f.as_bytes());
        }
        if gw.frames.send(&resend).await.is_err() {
            continue;
        }
        let mut in_connection: BTreeSet<i64> = unacked.keys().copied().collect();
        let mut tick = tokio::time::interval(pace);
        loop {
            if next_seq >= total && unacked.is_empty() {
                break;
            }
            tokio::select! {
                _ = tick.tick(), if next_seq < total => {
                    let f = frame(next_seq);
                    unacked.insert(next_seq, f.clone());
                    in_connection.insert(next_seq);
                    next_seq += 1;
                    if gw.frames.send(f.as_bytes()).await.is_err() {
                        break;
                    }
                }
                answer = gw.answers.next() => match answer {
                    Ok(Some(Answer::Ack { seq })) => {
                        assert!(in_connection.remove(&seq), "ack for seq {seq}, which this connection did not send or already acked");
                        unacked.remove(&seq);
                        progress.lock().await.acked.insert(seq);
                    }
                    Ok(Some(other)) => {
                        assert!(!matches!(other, Answer::Nack { .. }), "unexpected nack: {other:?}");
                        progress.lock().await.errors.push(format!("{other:?}"));
                        break;
                    }
                    Ok(None) => break,
                    Err(e) => {
                        progress.lock().await.errors.push(e.to_string());
                        break;
                    }
                },
                _ = tokio::time::sleep(Duration::from_secs(20)) => {
                    progress.lock().await.errors.push("no answer for 20 s".into());
                    break;
                }
            }
        }
    }
}

async fn wait_for_acks(progress: &Arc<Mutex<Delivery>>, at_least: usize, within: Duration) {
    let started = Instant::now();
    while progress.lock().await.acked.len() < at_least {
        assert!(
            started.elapsed() < within,
            "fewer than {at_least} acks after {within:?}: {:?}",
            progress.lock().await
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn acked_readings_survive_a_restart_of_the_ingest_container() {
    let node = cassandra().await;
    let docker = docker().await;
    let scope = Scope::new("ingestrestart");
    let tenant = create_tenant(node, "ingestrestart").await;
    let admin = node.admin_session().await;
    let token = commission(&admin, &tenant.keyspace, "gw-r").await;
    let (name, addr) = start_ingest(&docker, &scope, &tenant, node, &node.in_network_addr).await;
    wait_healthy(&docker, &name, Duration::from_secs(90)).await;
    let (_, started_before, _) = container_state(&docker, &name).await;

    let progress = Arc::new(Mutex::new(Delivery::default()));
    let total = 400;
    let sender = tokio::spawn(deliver(
        addr.clone(),
        "gw-r".into(),
        token,
        total,
        Duration::from_millis(10),
        Duration::from_secs(120),
        progress.clone(),
    ));
    wait_for_acks(&progress, 100, Duration::from_secs(60)).await;
    // SIGTERM while frames are in flight; Docker kills after 10 s
    docker
        .restart_container(
            &name,
            Some(RestartContainerOptionsBuilder::default().t(10).build()),
        )
        .await
        .unwrap();
    sender.await.unwrap();

    let (running, started_after, _) = container_state(&docker, &name).await;
    assert!(running);
    assert_ne!(started_before, started_after, "the container did restart");
    let delivery = progress.lock().await;
    eprintln!(
        "ingest restart: {} acks over {} connections; first errors: {:?}",
        delivery.acked.len(),
        delivery.connections,
        delivery.errors.iter().take(3).collect::<Vec<_>>()
    );
    assert!(
        delivery.connections >= 2,
        "the gateway reconnected: {delivery:?}"
    );
    assert_eq!(
        delivery.acked.len(),
        total as usize,
        "every frame acked in the end: {delivery:?}"
    );
    let written = written_seqs(&admin, &tenant.keyspace, "gw-r", base().date_naive()).await;
    let lost: Vec<_> = delivery.acked.difference(&written).collect();
    assert!(lost.is_empty(), "acked but not in Cassandra: {lost:?}");
    drop(delivery);
    scope.cleanup().await;
    tenant.drop(node).await;
}

/// A private single Cassandra node of this test, reachable from the host
/// through a fixed published port and from containers by name.
async fn private_cassandra(docker: &Docker, scope: &Scope) -> CassandraNode {
    let name = scope.name("cassandra");
    let port = free_port();
    let config = ContainerCreateBody {
        image: Some(cassandra_image()),
        env: Some(vec!["CASSANDRA_HEAP=768M".to_owned()]),
        labels: Some(scope.labels()),
        exposed_ports: Some(vec!["9042/tcp".to_owned()]),
        host_config: Some(HostConfig {
            network_mode: Some(TEST_NETWORK.to_owned()),
            port_bindings: Some(publish("9042/tcp", port)),
            ..Default::default()
        }),
        networking_config: Some(NetworkingConfig {
            endpoints_config: Some(HashMap::from([(
                TEST_NETWORK.to_owned(),
                EndpointSettings {
                    aliases: Some(vec![name.clone()]),
                    ..Default::default()
                },
            )])),
        }),
        ..Default::default()
    };
    docker
        .create_container(
            Some(CreateContainerOptionsBuilder::default().name(&name).build()),
            config,
        )
        .await
        .unwrap_or_else(|e| {
            panic!(
                "cannot create a private Cassandra from {}: {e}",
                cassandra_image()
            )
        });
    docker.start_container(&name, None).await.unwrap();
    let node = CassandraNode {
        container: name.clone(),
        network: TEST_NETWORK.to_owned(),
        host_addr: ([127, 0, 0, 1], port).into(),
        in_network_addr: format!("{name}:9042"),
        admin_user: "cassandra".to_owned(),
        admin_password: "cassandra".to_owned(),
    };
    wait_for_cql(&node, Duration::from_secs(240)).await;
    node
}

async fn wait_for_cql(node: &CassandraNode, within: Duration) -> Session {
    let started = Instant::now();
    loop {
        match node
            .session_as(&node.admin_user, &node.admin_password)
            .await
        {
            Ok(session) => return session,
            Err(e) => assert!(
                started.elapsed() < within,
                "private Cassandra {} not answering after {within:?}: {e}",
                node.container
            ),
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

#[tokio::test]
async fn ingest_acks_nothing_while_cassandra_restarts_and_recovers_by_itself() {
    let docker = docker().await;
    let scope = Scope::new("ingestcass");
    let node = Box::leak(Box::new(private_cassandra(&docker, &scope).await));
    let tenant = create_tenant(node, "ingestcass").await;
    let admin = node.admin_session().await;
    let token = commission(&admin, &tenant.keyspace, "gw-c").await;
    let (name, addr) = start_ingest(&docker, &scope, &tenant, node, &node.in_network_addr).await;
    wait_healthy(&docker, &name, Duration::from_secs(90)).await;
    let (_, ingest_started, _) = container_state(&docker, &name).await;

    let progress = Arc::new(Mutex::new(Delivery::default()));
    let total = 300;
    let sender = tokio::spawn(deliver(
        addr.clone(),
        "gw-c".into(),
        token,
        total,
        Duration::from_millis(20),
        Duration::from_secs(300),
        progress.clone(),
    ));
    wait_for_acks(&progress, 50, Duration::from_secs(60)).await;
    let acked_before = progress.lock().await.acked.len();
    docker
        .restart_container(
            &node.container,
            Some(RestartContainerOptionsBuilder::default().t(30).build()),
        )
        .await
        .unwrap();
    sender.await.unwrap();

    // ingest neither crashed nor was restarted, and took every frame in the end
    let (running, started, _) = container_state(&docker, &name).await;
    assert!(running, "ingest stopped; see `docker logs {name}`");
    assert_eq!(started, ingest_started, "ingest was not restarted");
    let delivery = progress.lock().await;
    eprintln!(
        "cassandra restart: {} acks ({acked_before} before the restart) over {} connections; {} errors, first: {:?}",
        delivery.acked.len(),
        delivery.connections,
        delivery.errors.len(),
        delivery.errors.iter().take(3).collect::<Vec<_>>()
    );
    assert!(
        delivery.connections >= 2 && !delivery.errors.is_empty(),
        "the outage was seen by the gateway: {delivery:?}"
    );
    assert!(acked_before < total as usize);
    assert_eq!(
        delivery.acked.len(),
        total as usize,
        "every frame acked after recovery: {delivery:?}"
    );
    // every ack, including those just before the restart, is in Cassandra
    let admin = wait_for_cql(node, Duration::from_secs(120)).await;
    let written = written_seqs(&admin, &tenant.keyspace, "gw-c", base().date_naive()).await;
    let lost: Vec<_> = delivery.acked.difference(&written).collect();
    assert!(lost.is_empty(), "acked but not in Cassandra: {lost:?}");
    drop(delivery);
    scope.cleanup().await;
}
