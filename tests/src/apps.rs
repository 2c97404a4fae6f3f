//! The tenant apps as tests drive them without containers: an ingest server
//! in-process on a loopback port (the library's own `serve`, or
//! `serve_behind` with trusted fronts), alone or as an [`Ingest`] on a
//! fresh tenant keyspace of the test node, and gateways commissioned in a
//! tenant keyspace the way the admin panel does it; [`loopback`] addresses
//! to connect from, and [`eventually`] to wait on a metric.

use std::sync::Arc;
use std::time::Duration;

use chrono::{NaiveDate, Utc};
use gateway_sim::client::Gateway;
use ingest::metrics::Metrics;
use ingest::server::{serve_behind, Limits};
use ingest::store::Store;
use ingest::tls::GatewayTls;
use ingest::trusted_proxies::TrustedProxies;
use scylla::client::session::Session;
use tenant_schema::model::{hash_gateway_token, new_gateway_token};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::{cassandra, query_rows, CassandraNode, TestTenant};

/// Serves gateway protocol v1 over `store` on a fresh loopback port until
/// `shutdown`; returns the address (`127.0.0.1:PORT`) and the server task.
pub async fn spawn_ingest(
    store: &Arc<Store>,
    metrics: &Arc<Metrics>,
    limits: Limits,
    shutdown: &CancellationToken,
) -> (String, JoinHandle<()>) {
    spawn_ingest_with_tls(store, metrics, limits, GatewayTls::off(), shutdown).await
}

/// [`spawn_ingest`] behind the fronts in `proxies`: their connections must
/// start with a PROXY protocol v2 header, and nobody else's may.
pub async fn spawn_ingest_behind(
    store: &Arc<Store>,
    metrics: &Arc<Metrics>,
    limits: Limits,
    proxies: TrustedProxies,
    shutdown: &CancellationToken,
) -> (String, JoinHandle<()>) {
    spawn(store, metrics, limits, GatewayTls::off(), proxies, shutdown).await
}

/// [`spawn_ingest`] with TLS on the gateway port as `tls` says.
pub async fn spawn_ingest_with_tls(
    store: &Arc<Store>,
    metrics: &Arc<Metrics>,
    limits: Limits,
    tls: GatewayTls,
    shutdown: &CancellationToken,
) -> (String, JoinHandle<()>) {
    spawn(
        store,
        metrics,
        limits,
        tls,
        TrustedProxies::none(),
        shutdown,
    )
    .await
}

async fn spawn(
    store: &Arc<Store>,
    metrics: &Arc<Metrics>,
    limits: Limits,
    tls: GatewayTls,
    proxies: TrustedProxies,
    shutdown: &CancellationToken,
) -> (String, JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind a port on loopback");
    let addr = listener
        .local_addr()
        .expect("a bound port has an address")
        .to_string();
    let server = tokio::spawn(serve_behind(
        listener,
        store.clone(),
        metrics.clone(),
        limits,
        tls,
        proxies,
        shutdown.clone(),
    ));
    (addr, server)
}

/// Commissions gateway `id` in `keyspace` with `token` (only its hash is
/// stored; the display name is the id).
pub async fn commission_gateway_with(session: &Session, keyspace: &str, id: &str, token: &str) {
    session
        .query_unpaged(
            format!(
                "INSERT INTO {keyspace}.gateways (gateway_id, token_hash, display_name, created_at) VALUES (?, ?, ?, ?)"
            ),
            (id, hash_gateway_token(token), id, Utc::now()),
        )
        .await
        .unwrap_or_else(|e| panic!("cannot commission gateway {id} in {keyspace}: {e}"));
}

/// Commissions gateway `id` in `keyspace` with a fresh token; returns the token.
pub async fn commission_gateway(session: &Session, keyspace: &str, id: &str) -> String {
    let token = new_gateway_token();
    commission_gateway_with(session, keyspace, id, &token).await;
    token
}

/// A tenant keyspace, an in-process ingest on it, and the admin session
/// that commissions gateways and reads what landed (the ingest tests, and
/// the front's).
pub struct Ingest {
    pub node: &'static CassandraNode,
    pub tenant: TestTenant,
    pub admin: Session,
    pub store: Arc<Store>,
    pub metrics: Arc<Metrics>,
    pub addr: String,
    pub shutdown: CancellationToken,
    pub server: Option<JoinHandle<()>>,
}

impl Ingest {
    /// An ingest that trusts no front.
    pub async fn start(limits: Limits) -> Ingest {
        Ingest::start_behind(limits, TrustedProxies::none()).await
    }

    /// An ingest whose connections from `proxies` carry a PROXY v2 header.
    pub async fn start_behind(limits: Limits, proxies: TrustedProxies) -> Ingest {
        let node = cassandra().await;
        let tenant = TestTenant::create(node, "ingest").await;
        let admin = node.admin_session().await;
        let session = Arc::new(tenant.session(node).await);
        let store = Arc::new(
            Store::prepare(session, &tenant.keyspace)
                .await
                .expect("ingest prepares its statements as the tenant role"),
        );
        let metrics = Arc::new(Metrics::default());
        let shutdown = CancellationToken::new();
        let (addr, server) =
            spawn_ingest_behind(&store, &metrics, limits, proxies, &shutdown).await;
        Ingest {
            node,
            tenant,
            admin,
            store,
            metrics,
            addr,
            shutdown,
            server: Some(server),
        }
    }

    /// Commissions a gateway as the admin panel would; returns its token.
    pub async fn commission(&self, id: &str) -> String {
        commission_gateway(&self.admin, &self.tenant.keyspace, id).await
    }

    /// Revokes a gateway's token as the admin panel would.
    pub async fn revoke(&self, id: &str) {
        self.admin
            .query_unpaged(
                format!(
                    "UPDATE {}.gateways SET revoked_at = ? WHERE gateway_id = ?",
                    self.tenant.keyspace
                ),
                (Utc::now(), id),
            )
            .await
            .unwrap();
    }

    /// Connects and says hello as `id`; panics unless welcomed.
    pub async fn login(&self, id: &str, token: &str) -> Gateway {
        Gateway::login(&self.addr, id, token)
            .await
            .unwrap_or_else(|e| panic!("{id} cannot log in: {e}"))
    }

    /// `(sensor, name, value, unit, seq)` of a gateway's readings on a day.
    pub async fn readings(
        &self,
        gw: &str,
        day: NaiveDate,
    ) -> Vec<(String, String, f64, Option<String>, i64)> {
        let mut rows: Vec<(String, String, f64, Option<String>, i64)> = query_rows(
            &self.admin,
            format!(
                "SELECT sensor, name, value, unit, seq FROM {}.readings WHERE gateway_id = ? AND day = ?",
                self.tenant.keyspace
            ),
            (gw, day),
        )
        .await;
        rows.sort_by(|a, b| (a.4, &a.0, &a.1).cmp(&(b.4, &b.0, &b.1)));
        rows
    }

    /// How many readings of gateway `gw` landed on `day`.
    pub async fn reading_count(&self, gw: &str, day: NaiveDate) -> usize {
        self.readings(gw, day).await.len()
    }

    /// Restarts the server as a container restart does: a graceful stop
    /// (it acks what it holds and tells each gateway `<error
    /// code="shutdown">`), then a new server with `limits` on the same
    /// address, store and metrics (no front). Answers how long the
    /// gateways had no server.
    pub async fn restart(&mut self, limits: Limits) -> Duration {
        self.shutdown.cancel();
        let stopping = std::time::Instant::now();
        if let Some(server) = self.server.take() {
            tokio::time::timeout(Duration::from_secs(30), server)
                .await
                .expect("ingest stops within 30 s")
                .expect("the server task ends cleanly");
        }
        self.shutdown = CancellationToken::new();
        let listener = TcpListener::bind(&self.addr)
            .await
            .unwrap_or_else(|e| panic!("bind {} again: {e}", self.addr));
        self.server = Some(tokio::spawn(serve_behind(
            listener,
            self.store.clone(),
            self.metrics.clone(),
            limits,
            GatewayTls::off(),
            TrustedProxies::none(),
            self.shutdown.clone(),
        )));
        stopping.elapsed()
    }

    /// Stops the server (waiting up to 15 s) and drops the keyspace.
    pub async fn stop(mut self) {
        self.shutdown.cancel();
        if let Some(server) = self.server.take() {
            let _ = tokio::time::timeout(Duration::from_secs(15), server).await;
        }
        self.tenant.drop(self.node).await;
    }
}

/// 127.0.0.`last_three`: one of loopback's many addresses, to connect from.
pub fn loopback(last_three: u32) -> std::net::IpAddr {
    std::net::IpAddr::V4(std::net::Ipv4Addr::from(0x7f00_0000 | last_three))
}

/// Polls `done` every 20 ms until it holds or `within` passes.
pub async fn eventually(within: Duration, what: &str, mut done: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + within;
    while !done() {
        assert!(
            std::time::Instant::now() < deadline,
            "not within {within:?}: {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A counter's or gauge's value.
pub fn count(counter: &std::sync::atomic::AtomicU64) -> u64 {
    counter.load(std::sync::atomic::Ordering::Relaxed)
}
