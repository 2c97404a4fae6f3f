//! How the provisioner reaches Cassandra as a superuser: an external
//! cluster with the configured credentials, or the managed node, whose
//! default `cassandra/cassandra` superuser is replaced on first use by
//! `provision_admin` with a random password kept in the state store, and
//! retired ([`super::superuser`]) on every session.
//!
//! Connecting retries while the node does not answer, until the configured
//! timeout (a managed node starting cold takes ~15-30 s). A refused login
//! of an external cluster's configured user is never retried: it fails at
//! once with [`CqlError::AuthenticationFailed`]. (The managed node refuses
//! `cassandra/cassandra` for a few seconds after its first start, until it
//! has created the role, so there a refusal is retried.)

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use scylla::client::session::Session;
use scylla::client::session_builder::SessionBuilder;
use tenant_schema::cql::PublishedPortTranslator;

use super::superuser::{retire_default_superuser, DEFAULT_SUPERUSER};
use super::{CqlError, Result};
use crate::config::{CassandraMode, Config};
use crate::store::Store;

/// The superuser the provisioner creates on the managed node.
pub const MANAGED_ADMIN: &str = "provision_admin";
const MANAGED_ADMIN_SETTING: &str = "cassandra_admin_password";
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(5);

/// Where the provisioner reaches the cluster of `config`.
pub fn host_points(config: &Config) -> Vec<String> {
    match config.cassandra.mode {
        CassandraMode::Managed => vec![format!(
            "{}:{}",
            config.managed_cql_host(),
            config.cassandra.host_port
        )],
        CassandraMode::External => config.cassandra.contact_points.clone(),
    }
}

/// Why one login attempt failed.
#[derive(Debug, Clone)]
pub(crate) struct Failure {
    /// The node answered, and refused the credentials.
    pub refused: bool,
    pub why: String,
}

impl From<String> for Failure {
    fn from(why: String) -> Failure {
        // Cassandra's PasswordAuthenticator: "Provided username .. and/or
        // password are incorrect". ("Unable to perform authentication" is
        // a node not ready yet, and is retried.)
        Failure {
            refused: why.contains("are incorrect"),
            why,
        }
    }
}

pub(crate) async fn connect_once(
    config: &Config,
    user: &str,
    password: &str,
) -> std::result::Result<Session, Failure> {
    let points = host_points(config);
    let published = config.cassandra.mode == CassandraMode::Managed || config.cassandra.published;
    // The provisioner reads no driver metadata (it asks `system_schema`
    // itself where it must), and every operation opens a session: without
    // this each one would fetch every tenant keyspace's schema.
    let mut builder = SessionBuilder::new()
        .user(user, password)
        .fetch_schema_metadata(false);
    if published && points.len() == 1 {
        let addr: SocketAddr = tokio::net::lookup_host(&points[0])
            .await
            .map_err(|e| e.to_string())?
            .next()
            .ok_or_else(|| format!("{} resolves to nothing", points[0]))?;
        builder = builder
            .known_node_addr(addr)
            .address_translator(Arc::new(PublishedPortTranslator(addr)));
    } else {
        builder = builder.known_nodes(&points);
    }
    match tokio::time::timeout(ATTEMPT_TIMEOUT, builder.build()).await {
        Ok(Ok(s)) => Ok(s),
        Ok(Err(e)) => Err(e.to_string().into()),
        Err(_) => Err(format!("no answer within {} s", ATTEMPT_TIMEOUT.as_secs()).into()),
    }
}

fn contact_points(config: &Config) -> String {
    host_points(config).join(",")
}

/// A superuser session, retrying until `[cassandra].connect_timeout_secs`.
pub async fn admin_session(config: &Config, store: &Store) -> Result<Session> {
    let deadline = Instant::now() + Duration::from_secs(config.cassandra.connect_timeout_secs);
    let mut last: Failure;
    loop {
        let attempt = match config.cassandra.mode {
            CassandraMode::External => connect_once(
                config,
                &config.cassandra.admin_user,
                &config.cassandra.admin_password,
            )
            .await
            .map_err(Bootstrap::Login),
            CassandraMode::Managed => managed_session(config, store).await,
        };
        match attempt {
            Ok(s) if config.cassandra.mode == CassandraMode::Managed => {
                // Not retried: a node that answers but keeps the default
                // superuser is a finding, not an outage.
                retire_default_superuser(&s).await.map_err(|e| {
                    CqlError::DefaultSuperuserActive {
                        container: config.cassandra.container.clone(),
                        why: e.to_string(),
                    }
                })?;
                return Ok(s);
            }
            Ok(s) => return Ok(s),
            Err(Bootstrap::Store(why)) => return Err(CqlError::Store(why)),
            Err(Bootstrap::Login(f))
                if f.refused && config.cassandra.mode == CassandraMode::External =>
            {
                return Err(CqlError::AuthenticationFailed {
                    user: config.cassandra.admin_user.clone(),
                    contact_points: contact_points(config),
                    why: f.why,
                });
            }
            Err(Bootstrap::Login(f)) => last = f,
        }
        if Instant::now() >= deadline {
            return Err(match last.refused {
                true => CqlError::AuthenticationFailed {
                    user: format!("{MANAGED_ADMIN} (and the default {DEFAULT_SUPERUSER})"),
                    contact_points: contact_points(config),
                    why: format!(
                        "{}; the password of {MANAGED_ADMIN} is kept in the state store: was it replaced?",
                        last.why
                    ),
                },
                false => CqlError::Unreachable {
                    contact_points: contact_points(config),
                    why: last.why,
                },
            });
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// The managed node: log in as `provision_admin`, or bootstrap it with the
/// default superuser. [`admin_session`] then retires the default superuser,
/// whichever way the session was had, because a node can get the default
/// role back behind our back (a volume restored from a backup, a crash
/// between the bootstrap and the retirement).
async fn managed_session(
    config: &Config,
    store: &Store,
) -> std::result::Result<Session, Bootstrap> {
    let stored = store
        .setting(MANAGED_ADMIN_SETTING)
        .await
        .map_err(|e| Bootstrap::Store(e.to_string()))?;
    let mut session = None;
    if let Some(password) = &stored {
        session = connect_once(config, MANAGED_ADMIN, password).await.ok();
    }
    match session {
        Some(s) => Ok(s),
        None => bootstrap_managed_admin(config, store).await,
    }
}

/// Creates `provision_admin` with the default superuser (the only login a
/// fresh node has) and returns a session as `provision_admin`.
async fn bootstrap_managed_admin(
    config: &Config,
    store: &Store,
) -> std::result::Result<Session, Bootstrap> {
    let bootstrap = connect_once(config, DEFAULT_SUPERUSER, DEFAULT_SUPERUSER)
        .await
        .map_err(Bootstrap::Login)?;
    // Store first, so a crash after CREATE ROLE never loses the password.
    let password = store
        .setting_or_insert(MANAGED_ADMIN_SETTING, &tenant_schema::model::new_password())
        .await
        .map_err(|e| Bootstrap::Store(e.to_string()))?;
    let failed = |e: String| {
        Bootstrap::Login(Failure {
            refused: false,
            why: e,
        })
    };
    let quoted = password.replace('\'', "''");
    // Created, or (a role left by a run that crashed, or a state store that
    // lost its password) altered: never both, because Cassandra 5 refuses
    // a second password change of a role within 5 s ("can only be changed
    // every 5000ms"). That refusal, right after the CREATE, is what used to
    // end the bootstrap before the default superuser was retired; the retry
    // then logged in as `provision_admin` and never retired it.
    let exists = bootstrap
        .query_unpaged(
            "SELECT role FROM system_auth.roles WHERE role = ?",
            (MANAGED_ADMIN,),
        )
        .await
        .map_err(|e| failed(e.to_string()))?
        .into_rows_result()
        .map_err(|e| failed(e.to_string()))?
        .rows_num()
        > 0;
    let verb = if exists {
        "ALTER ROLE"
    } else {
        "CREATE ROLE IF NOT EXISTS"
    };
    bootstrap
        .query_unpaged(
            format!("{verb} {MANAGED_ADMIN} WITH PASSWORD = '{quoted}' AND SUPERUSER = true AND LOGIN = true"),
            (),
        )
        .await
        .map_err(|e| failed(e.to_string()))?;
    connect_once(config, MANAGED_ADMIN, &password)
        .await
        .map_err(Bootstrap::Login)
}

/// Why an attempt at a superuser session failed.
#[derive(Debug)]
enum Bootstrap {
    Login(Failure),
    /// Not retried: the store is local.
    Store(String),
}
