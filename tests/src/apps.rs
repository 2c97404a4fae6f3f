//! The tenant apps as tests drive them without containers: an ingest server
//! in-process on a loopback port (the library's own `serve`, or
//! `serve_behind` with trusted fronts), and gateways
//! commissioned in a tenant keyspace the way the admin panel does it.

use std::sync::Arc;

use chrono::Utc;
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
