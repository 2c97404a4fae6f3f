//! TLS on the gateway port, against the harness's Cassandra:
//! - in-process ingest with a certificate issued by the provisioner's CA:
//!   in `optional` mode a plain gateway and a TLS gateway are both acked
//!   on the one port; in `required` mode a plain connection gets
//!   `<error code="tls">` and is closed; a gateway trusting another CA
//!   fails its handshake;
//! - end to end on the real engine: `provision start --gateway-tls
//!   required`, `provision gateway ca`, a reading acked over TLS; an expired
//!   certificate put in place is reported by `reconcile`'s plan and renewed
//!   by it, and the running ingest serves the new one without a restart.

mod provision_support;

use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{TimeDelta, Utc};
use gateway_sim::answer::Answer;
use gateway_sim::client::{ClientError, Connector, Gateway};
use gateway_sim::frames::{self, SimValue};
use ingest::metrics::Metrics;
use ingest::server::Limits;
use ingest::settings::Settings;
use ingest::store::Store;
use ingest::tls::{CertificateFiles, GatewayTls, TlsMode};
use provision_support::Env;
use provision_testkit::apps::{commission_gateway, spawn_ingest_with_tls};
use provision_testkit::{cassandra, unique_id, TestTenant};
use provisioner::config::GatewayTlsConfig;
use provisioner::pki::Pki;
use provisioner::ProviderId;
use tokio_util::sync::CancellationToken;

/// A CA of the provisioner's in a fresh data directory, and a certificate
/// it issued for `localhost`: (data dir, chain file, key file, CA file).
fn issued(name: &str) -> (PathBuf, PathBuf, PathBuf, PathBuf) {
    let dir = std::env::temp_dir().join(format!("provision-tls-{}", unique_id(name)));
    std::fs::create_dir_all(&dir).unwrap();
    let pki = Pki::new(&dir, &GatewayTlsConfig::default());
    let id = ProviderId::parse("tls_test").unwrap();
    let pair = pki.issue(&id, "localhost").expect("the CA issues");
    let (cert, key, ca) = (
        dir.join("chain.pem"),
        dir.join("key.pem"),
        dir.join("ca.pem"),
    );
    std::fs::write(&cert, &pair.cert_pem).unwrap();
    std::fs::write(&key, &pair.key_pem).unwrap();
    std::fs::write(&ca, pki.trust_pem().unwrap()).unwrap();
    (dir, cert, key, ca)
}

fn reading(seq: i64) -> String {
    frames::reading(
        seq,
        Utc::now() - TimeDelta::minutes(1),
        "inverter",
        &[SimValue::new("power", "W", 42.0)],
    )
}

/// Logs in as `connector` says, sends one reading and expects its ack.
async fn acked_over(addr: &str, connector: &Connector, gateway: &str, token: &str, seq: i64) {
    let mut gw = Gateway::login_with(addr, connector, gateway, token)
        .await
        .unwrap_or_else(|e| panic!("{gateway} over {connector:?}: {e}"));
    gw.send(reading(seq).as_bytes()).await.unwrap();
    match gw.answer().await.unwrap() {
        Some(Answer::Ack { seq: s }) if s == seq => {}
        other => panic!("{gateway} over {connector:?}: no ack for {seq}: {other:?}"),
    }
}

struct Served {
    addr: String,
    metrics: Arc<Metrics>,
    shutdown: CancellationToken,
}

async fn serve(store: &Arc<Store>, mode: TlsMode, cert: &Path, key: &Path) -> Served {
    let files = CertificateFiles::open(cert.to_owned(), key.to_owned()).expect("the files load");
    let tls = GatewayTls::new(mode, files).expect("a TLS configuration");
    let metrics = Arc::new(Metrics::default());
    let shutdown = CancellationToken::new();
    let limits = Limits {
        hello_timeout: Duration::from_secs(5),
        ..Limits::from(&Settings::default())
    };
    let (addr, _server) = spawn_ingest_with_tls(store, &metrics, limits, tls, &shutdown).await;
    Served {
        addr,
        metrics,
        shutdown,
    }
}

#[tokio::test]
async fn optional_takes_plain_and_tls_on_one_port_required_refuses_plain_and_a_wrong_ca_fails() {
    let node = cassandra().await;
    let tenant = TestTenant::create(node, "tls").await;
    let admin = node.admin_session().await;
    let session = Arc::new(tenant.session(node).await);
    let store = Arc::new(Store::prepare(session, &tenant.keyspace).await.unwrap());
    let token = commission_gateway(&admin, &tenant.keyspace, "gw-tls-1").await;
    let (dir, cert, key, ca) = issued("ok");
    let tls = Connector::tls(&ca, "localhost").expect("the CA file loads");

    // optional: both, on the one port.
    let optional = serve(&store, TlsMode::Optional, &cert, &key).await;
    acked_over(&optional.addr, &Connector::Plain, "gw-tls-1", &token, 1).await;
    acked_over(&optional.addr, &tls, "gw-tls-1", &token, 2).await;
    assert_eq!(
        optional.metrics.connections_plain.load(Ordering::Relaxed),
        1
    );
    assert_eq!(optional.metrics.connections_tls.load(Ordering::Relaxed), 1);
    assert!(optional
        .metrics
        .render()
        .contains("ingest_connections_tls_total 1"));

    // required: a plain gateway is told why, and the connection closes.
    let required = serve(&store, TlsMode::Required, &cert, &key).await;
    let mut plain = Gateway::connect(&required.addr).await.unwrap();
    match plain.hello("gw-tls-1", &token).await {
        Ok(Answer::Error { code, why }) => {
            assert_eq!(code, "tls", "{why}");
            assert!(why.contains("TLS only"), "{why}");
        }
        other => panic!("a plain hello where TLS is required: {other:?}"),
    }
    assert!(
        plain.answer().await.unwrap().is_none(),
        "the connection closes"
    );
    assert_eq!(required.metrics.plain_refused.load(Ordering::Relaxed), 1);
    acked_over(&required.addr, &tls, "gw-tls-1", &token, 3).await;

    // A gateway that trusts another CA fails its handshake.
    let (other_dir, _, _, other_ca) = issued("other");
    let wrong = Connector::tls(&other_ca, "localhost").unwrap();
    match Gateway::connect_with(&required.addr, &wrong).await {
        Err(ClientError::Tls { source, .. }) => {
            assert!(source.to_string().contains("certificate"), "{source}")
        }
        Err(e) => panic!("another error than a failed handshake: {e}"),
        Ok(_) => panic!("a handshake with a certificate of an untrusted CA succeeded"),
    }
    // So does one that expects another name.
    let misnamed = Connector::tls(&ca, "gateways.example").unwrap();
    assert!(matches!(
        Gateway::connect_with(&required.addr, &misnamed).await,
        Err(ClientError::Tls { .. })
    ));
    for served in [optional, required] {
        served.shutdown.cancel();
    }
    let _ = std::fs::remove_dir_all(dir);
    let _ = std::fs::remove_dir_all(other_dir);
}

/// Whether a TLS handshake with `connector` succeeds on `addr` now.
async fn handshake(addr: &str, connector: &Connector) -> Result<(), String> {
    Gateway::connect_with(addr, connector)
        .await
        .map(|_| ())
        .map_err(|e| e.to_string())
}

#[tokio::test]
async fn a_required_tls_tenant_acks_over_tls_and_reconcile_renews_an_expired_certificate() {
    let env = Env::new("pvtls", (29821, 29829), (29921, 29929)).await;
    let id = unique_id("tls");
    let started = env
        .run(&["--json", "start", &id, "--gateway-tls", "required"])
        .await
        .ok();
    let port = started.port("gateway_port");
    let status = env.run(&["--json", "status", &id]).await.ok();
    assert_eq!(status.field("gateway_tls").as_deref(), Some("required"));
    let token = env
        .run(&["--json", "gateway", "add", &id, "gw-1"])
        .await
        .ok()
        .field("token")
        .expect("a token");
    let ca_pem = env.run(&["gateway", "ca", &id]).await.ok().stdout;
    assert!(
        ca_pem.starts_with("-----BEGIN CERTIFICATE-----"),
        "{ca_pem}"
    );
    let ca = env.dir.join("gateway-ca.pem");
    std::fs::write(&ca, &ca_pem).unwrap();
    // The test config's public_host is 127.0.0.1: the certificate names it.
    let tls = Connector::tls(&ca, "127.0.0.1").unwrap();
    let addr = format!("127.0.0.1:{port}");
    acked_over(&addr, &tls, "gw-1", &token, 1).await;

    // A plain gateway is refused with a clear error.
    let mut plain = Gateway::connect(&addr).await.unwrap();
    assert!(matches!(
        plain.hello("gw-1", &token).await,
        Ok(Answer::Error { code, .. }) if code == "tls"
    ));

    // A later start without the flag keeps the mode and the certificate
    // (at most it waits for the engine's first health checks).
    let again = env.run(&["plan", &id]).await.ok();
    for changed in ["gateway TLS", "certificate", "remove container"] {
        assert!(!again.stdout.contains(changed), "{}", again.stdout);
    }

    // An expired certificate in place (as if the host slept through its
    // renewal): the running ingest serves it, and handshakes fail.
    let p = env.provisioner().await;
    let tenant = ProviderId::parse(&id).unwrap();
    let now = Utc::now();
    let expired = p
        .pki()
        .issue_valid(
            &tenant,
            "127.0.0.1",
            now - TimeDelta::days(100),
            now - TimeDelta::days(1),
        )
        .unwrap();
    provisioner::secrets::renew_gateway_certificate(&env.dir, &tenant, &expired).unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        match handshake(&addr, &tls).await {
            Err(e) if e.contains("xpired") => break,
            outcome => assert!(
                Instant::now() < deadline,
                "ingest did not pick up the expired certificate: {outcome:?}"
            ),
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // reconcile says why, and issues a new one; ingest serves it at once.
    let dry = env.run(&["reconcile", "--dry-run"]).await.ok();
    assert!(
        dry.stdout
            .contains("issue the gateway certificate for 127.0.0.1 (expired)"),
        "{}",
        dry.stdout
    );
    env.run(&["reconcile"]).await.ok();
    let deadline = Instant::now() + Duration::from_secs(20);
    while let Err(e) = handshake(&addr, &tls).await {
        assert!(
            Instant::now() < deadline,
            "the renewed certificate is not served: {e}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    acked_over(&addr, &tls, "gw-1", &token, 2).await;
    let after = env.run(&["reconcile", "--dry-run"]).await.ok();
    assert!(
        !after.stdout.contains("issue the gateway certificate"),
        "renewed once, not again: {}",
        after.stdout
    );

    // Back to optional: plain is taken again.
    env.run(&["start", &id, "--gateway-tls", "optional"])
        .await
        .ok();
    acked_over(&addr, &Connector::Plain, "gw-1", &token, 3).await;
    env.run(&["destroy", &id, "--yes", "--purge-data"])
        .await
        .ok();
}
