//! The `serve` command as a library function: connect to Cassandra (with
//! retries), prepare the statements, listen, serve until the shutdown token
//! is cancelled, then give in-flight frames a grace period to be written
//! and acked.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tenant_common::{connect_cassandra_until, CassandraError, TenantConfig};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::metrics::Metrics;
use crate::server::{self, Limits};
use crate::settings::Settings;
use crate::store::{Store, StoreError};
use crate::tls::{CertificateFiles, GatewayTls, TlsError};
use crate::trusted_proxies::TrustedProxies;

/// How long in-flight frames get after SIGTERM (Docker waits 10 s).
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(8);

/// Why ingest could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Cassandra(#[from] CassandraError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Tls(#[from] TlsError),
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        addr: std::net::SocketAddr,
        #[source]
        source: std::io::Error,
    },
}

/// Runs ingest until `shutdown` is cancelled. Returns early (Ok) if the
/// shutdown comes while still waiting for Cassandra.
pub async fn run(
    cfg: TenantConfig,
    settings: Settings,
    shutdown: CancellationToken,
) -> Result<(), StartError> {
    // A certificate that cannot be read fails the start at once, before
    // the wait for Cassandra.
    let tls = gateway_tls(&settings)?;
    log_trusted_proxies(&settings.trusted_proxies);
    let deadline = Instant::now() + cfg.connect_timeout;
    let store = tokio::select! {
        _ = shutdown.cancelled() => return Ok(()),
        store = open_store(&cfg, deadline) => store?,
    };
    let store = Arc::new(store.with_write_consistency(settings.write_consistency));
    let metrics = Arc::new(Metrics::default());
    let listener = bind(settings.listen).await?;
    let http_listener = bind(settings.http_listen).await?;
    tracing::info!(
        tenant = %cfg.tenant_id,
        listen = %settings.listen,
        http = %settings.http_listen,
        idle_timeout_secs = settings.idle_timeout.as_secs(),
        hello_timeout_secs = settings.hello_timeout.as_secs(),
        max_connections = settings.max_connections,
        max_readings_per_sec = settings.max_readings_per_sec,
        max_unauthenticated = settings.max_unauthenticated,
        max_unauthenticated_per_address = settings.max_unauthenticated_per_address,
        max_reading_age_days = settings.max_reading_age.num_days(),
        write_concurrency = settings.write_concurrency,
        batch_frames = settings.batch_frames,
        tls = settings.tls.as_str(),
        trusted_proxies = %settings.trusted_proxies,
        write_consistency = tenant_schema::cql::consistency_name(settings.write_consistency),
        "ingest ready"
    );
    let http = tokio::spawn(crate::http::serve_http(
        http_listener,
        store.clone(),
        metrics.clone(),
        shutdown.clone(),
    ));
    let gateways = tokio::spawn(server::serve_behind(
        listener,
        store,
        metrics,
        Limits::from(&settings),
        tls,
        settings.trusted_proxies.clone(),
        shutdown.clone(),
    ));
    shutdown.cancelled().await;
    match tokio::time::timeout(SHUTDOWN_GRACE, gateways).await {
        Ok(_) => tracing::info!("all connections finished; bye"),
        Err(_) => {
            tracing::warn!(grace = ?SHUTDOWN_GRACE, "connections still open after the grace period; their unacked frames will be resent")
        }
    }
    http.abort();
    Ok(())
}

/// The fronts trusted to send a PROXY header, as resolved (with
/// `default-gateway`'s address), once at startup.
fn log_trusted_proxies(proxies: &TrustedProxies) {
    const WHAT: &str =
        "PROXY protocol v2 headers expected from these fronts (INGEST_TRUSTED_PROXIES)";
    if proxies.is_empty() {
        return;
    }
    match proxies.default_gateway() {
        Some(gateway) => {
            tracing::info!(trusted_proxies = %proxies, default_gateway = %gateway, "{WHAT}")
        }
        None => tracing::info!(trusted_proxies = %proxies, "{WHAT}"),
    }
}

fn gateway_tls(settings: &Settings) -> Result<GatewayTls, TlsError> {
    match (&settings.tls_cert, &settings.tls_key) {
        (Some(cert), Some(key)) if settings.tls != crate::tls::TlsMode::Off => {
            let files = CertificateFiles::open(cert.clone(), key.clone())?;
            Ok(GatewayTls::new(settings.tls, files)?)
        }
        _ => Ok(GatewayTls::off()),
    }
}

async fn bind(addr: std::net::SocketAddr) -> Result<TcpListener, StartError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| StartError::Listen { addr, source })
}

/// Connects and prepares, retrying both until `deadline` (Cassandra may
/// accept connections a moment before the keyspace is usable).
pub async fn open_store(cfg: &TenantConfig, deadline: Instant) -> Result<Store, StartError> {
    loop {
        let session = Arc::new(connect_cassandra_until(cfg, deadline).await?);
        match Store::prepare(session, &cfg.keyspace).await {
            Ok(store) => return Ok(store),
            Err(e) if Instant::now() + Duration::from_secs(2) < deadline => {
                tracing::warn!(error = %e, "cannot prepare statements yet; retrying");
                tokio::time::sleep(Duration::from_secs(2)).await;
            }
            Err(e) => return Err(e.into()),
        }
    }
}
