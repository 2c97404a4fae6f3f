//! The tenant's Cassandra session: the tenant role's credentials, the
//! tenant keyspace, and retries with backoff so an app that starts before
//! Cassandra (or while it restarts) waits for it instead of crashing; and
//! [`prepare_statement`], how the apps prepare their statements at start.

use std::sync::Arc;
use std::time::{Duration, Instant};

use scylla::client::session::Session;
use scylla::client::session_builder::SessionBuilder;
use scylla::errors::{NewSessionError, PrepareError};
use scylla::statement::prepared::PreparedStatement;
use tenant_schema::cql::PublishedPortTranslator;

use crate::config::TenantConfig;

/// Why no Cassandra session could be made.
#[derive(Debug, thiserror::Error)]
pub enum CassandraError {
    #[error(
        "cannot connect to cassandra at {contact_points} as {username} within {waited:?}: {source}"
    )]
    Connect {
        contact_points: String,
        username: String,
        waited: Duration,
        #[source]
        source: NewSessionError,
    },
}

/// A statement that Cassandra would not prepare.
#[derive(Debug, thiserror::Error)]
#[error("cannot prepare the {what} statement: {source}")]
pub struct PrepareFailed {
    /// What the statement is for (`"insert reading"`).
    pub what: &'static str,
    #[source]
    pub source: Box<PrepareError>,
}

/// Prepares `cql`, named `what` in the error, with `timeout` as the
/// request timeout of every execution of it.
pub async fn prepare_statement(
    session: &Session,
    what: &'static str,
    cql: String,
    timeout: Duration,
) -> Result<PreparedStatement, PrepareFailed> {
    let mut statement = session.prepare(cql).await.map_err(|source| PrepareFailed {
        what,
        source: Box::new(source),
    })?;
    statement.set_request_timeout(Some(timeout));
    Ok(statement)
}

/// A session on the tenant keyspace, retried with backoff (0.5 s doubling
/// to 5 s) until `cfg.connect_timeout` has passed.
pub async fn connect_cassandra(cfg: &TenantConfig) -> Result<Session, CassandraError> {
    connect_cassandra_until(cfg, Instant::now() + cfg.connect_timeout).await
}

/// The session builder for `cfg`. With `translate_to_contact_point`, the
/// one contact point is resolved now (on every attempt, so a node that came
/// back with a new address is found) and every node address the cluster
/// advertises is replaced by it.
async fn builder(cfg: &TenantConfig, metadata: bool) -> Result<SessionBuilder, NewSessionError> {
    let mut builder = SessionBuilder::new()
        .fetch_schema_metadata(metadata)
        .user(cfg.username.clone(), cfg.password.clone())
        .use_keyspace(&cfg.keyspace, false)
        .connection_timeout(Duration::from_secs(5));
    if cfg.translate_to_contact_point {
        let point = &cfg.contact_points[0];
        let addr = tokio::net::lookup_host(point.as_str())
            .await
            .ok()
            .and_then(|mut addrs| addrs.next())
            .ok_or_else(|| NewSessionError::FailedToResolveAnyHostname(vec![point.clone()]))?;
        builder = builder
            .known_node_addr(addr)
            .address_translator(Arc::new(PublishedPortTranslator(addr)));
    } else {
        builder = builder.known_nodes(&cfg.contact_points);
    }
    Ok(builder)
}

/// A session on the tenant keyspace, retried with backoff until `deadline`.
pub async fn connect_cassandra_until(
    cfg: &TenantConfig,
    deadline: Instant,
) -> Result<Session, CassandraError> {
    connect(cfg, deadline, true).await
}

/// [`connect_cassandra_until`] without the driver's schema metadata: the
/// session does not fetch (and keep) the schema of every keyspace the node
/// holds, which grows with the tenants on the node. For an app that only
/// runs prepared statements and needs no metadata (the notifier, with its
/// 10 MB budget).
pub async fn connect_cassandra_lean(
    cfg: &TenantConfig,
    deadline: Instant,
) -> Result<Session, CassandraError> {
    connect(cfg, deadline, false).await
}

async fn connect(
    cfg: &TenantConfig,
    deadline: Instant,
    metadata: bool,
) -> Result<Session, CassandraError> {
    let started = Instant::now();
    let mut backoff = Duration::from_millis(500);
    let mut attempt = 1u32;
    loop {
        let result = match builder(cfg, metadata).await {
            Ok(builder) => builder.build().await,
            Err(e) => Err(e),
        };
        match result {
            Ok(session) => {
                tracing::info!(
                    keyspace = %cfg.keyspace,
                    contact_points = %cfg.contact_points.join(","),
                    attempt,
                    "connected to cassandra"
                );
                return Ok(session);
            }
            Err(source) => {
                let now = Instant::now();
                if now + backoff > deadline {
                    return Err(CassandraError::Connect {
                        contact_points: cfg.contact_points.join(","),
                        username: cfg.username.clone(),
                        waited: now - started,
                        source,
                    });
                }
                tracing::warn!(attempt, error = %source, retry_in = ?backoff, "cassandra not reachable yet");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(5));
                attempt += 1;
            }
        }
    }
}
