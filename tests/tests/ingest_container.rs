//! The real `provision/ingest:dev` image on the harness network: acked
//! readings survive a `docker restart` of the ingest container (SIGTERM:
//! in-flight frames are finished and acked, nothing acked is lost) and a
//! restart of Cassandra (ingest acks nothing while Cassandra is away, does
//! not crash, and recovers by itself). The Cassandra restart uses a private
//! Cassandra container of this test (same image, on the harness network,
//! carrying the test's Scope label), never the shared test node.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bollard::query_parameters::RestartContainerOptionsBuilder;
use bollard::Docker;
use chrono::{DateTime, NaiveDate, TimeDelta, Utc};
use gateway_sim::answer::Answer;
use gateway_sim::client::Gateway;
use provision_testkit::apps::commission_gateway;
use provision_testkit::containers::{
    container_state, free_port, ingest_image, wait_healthy, TestContainer,
};
use provision_testkit::{cassandra, docker, private_cassandra, CassandraNode, Scope, TestTenant};
use scylla::client::session::Session;
use tokio::sync::Mutex;
use tokio::task::JoinHandle;

/// 08:00 UTC yesterday: the readings' times start here, all on one day
/// partition, in the past and well within the 30 days ingest accepts.
fn base() -> DateTime<Utc> {
    let yesterday = Utc::now().date_naive() - TimeDelta::days(1);
    yesterday.and_hms_opt(8, 0, 0).unwrap().and_utc()
}

/// A tenant on `node` with one commissioned gateway, served by a healthy
/// ingest container of `scope` published on a fixed host port.
struct Served {
    tenant: TestTenant,
    admin: Session,
    gateway: String,
    token: String,
    /// The ingest container.
    name: String,
    /// The gateway address on the host.
    addr: String,
    /// When the ingest container started.
    started_at: String,
}

async fn serve_one_gateway(
    docker: &Docker,
    scope: &Scope,
    node: &CassandraNode,
    prefix: &str,
    gateway: &str,
) -> Served {
    let tenant = TestTenant::create(node, prefix).await;
    let admin = node.admin_session().await;
    let token = commission_gateway(&admin, &tenant.keyspace, gateway).await;
    let port = free_port();
    let mut env = tenant.app_env(node);
    env.push("LOG_FORMAT=json".to_owned());
    env.push("RUST_LOG=info,scylla=warn".to_owned());
    let image = ingest_image();
    let name = TestContainer::scoped(scope, "ingest", &image)
        .env(env)
        .publish("6000/tcp", Some(port))
        .on_test_network()
        .hardened()
        .memory(128 * 1024 * 1024)
        .start(docker)
        .await
        .unwrap_or_else(|e| {
            panic!("cannot start an ingest container from {image} (run scripts/setup): {e}")
        });
    wait_healthy(docker, &name, Duration::from_secs(90))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let started_at = container_state(docker, &name).await.unwrap().started_at;
    Served {
        tenant,
        admin,
        gateway: gateway.to_owned(),
        token,
        name,
        addr: format!("127.0.0.1:{port}"),
        started_at,
    }
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

impl Served {
    /// Spawns [`deliver`] of `total` frames from the gateway.
    fn deliver(
        &self,
        total: i64,
        pace: Duration,
        deadline: Duration,
    ) -> (Arc<Mutex<Delivery>>, JoinHandle<()>) {
        let progress = Arc::new(Mutex::new(Delivery::default()));
        let sender = tokio::spawn(deliver(
            self.addr.clone(),
            self.gateway.clone(),
            self.token.clone(),
            total,
            pace,
            deadline,
            progress.clone(),
        ));
        (progress, sender)
    }

    /// Asserts that every acked frame is in `readings`, read through `admin`.
    async fn assert_acked_are_written(&self, admin: &Session, delivery: &Delivery) {
        let written = written_seqs(
            admin,
            &self.tenant.keyspace,
            &self.gateway,
            base().date_naive(),
        )
        .await;
        let lost: Vec<_> = delivery.acked.difference(&written).collect();
        assert!(lost.is_empty(), "acked but not in Cassandra: {lost:?}");
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
    let served = serve_one_gateway(&docker, &scope, node, "ingestrestart", "gw-r").await;
    let name = &served.name;
    let total = 400;
    let (progress, sender) =
        served.deliver(total, Duration::from_millis(10), Duration::from_secs(120));
    wait_for_acks(&progress, 100, Duration::from_secs(60)).await;
    // SIGTERM while frames are in flight; Docker kills after 10 s
    docker
        .restart_container(
            name,
            Some(RestartContainerOptionsBuilder::default().t(10).build()),
        )
        .await
        .unwrap();
    sender.await.unwrap();

    let after = container_state(&docker, name).await.unwrap();
    assert!(after.running);
    assert_ne!(
        served.started_at, after.started_at,
        "the container did restart"
    );
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
    served
        .assert_acked_are_written(&served.admin, &delivery)
        .await;
    drop(delivery);
    scope.cleanup().await;
    served.tenant.drop(node).await;
}

#[tokio::test]
async fn ingest_acks_nothing_while_cassandra_restarts_and_recovers_by_itself() {
    let docker = docker().await;
    let scope = Scope::new("ingestcass");
    let node = Box::leak(Box::new(private_cassandra(&docker, &scope).await));
    let served = serve_one_gateway(&docker, &scope, node, "ingestcass", "gw-c").await;
    let name = &served.name;
    let total = 300;
    let (progress, sender) =
        served.deliver(total, Duration::from_millis(20), Duration::from_secs(300));
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
    let after = container_state(&docker, name).await.unwrap();
    assert!(after.running, "ingest stopped; see `docker logs {name}`");
    assert_eq!(
        after.started_at, served.started_at,
        "ingest was not restarted"
    );
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
    let admin = node.wait_for_cql(Duration::from_secs(120)).await;
    served.assert_acked_are_written(&admin, &delivery).await;
    drop(delivery);
    scope.cleanup().await;
}
