//! How the provisioner reaches Cassandra as a superuser: an external
//! cluster with the configured credentials, or the managed node, whose
//! default `cassandra/cassandra` superuser is replaced on first use by
//! `provision_admin` with a random password kept in the state store, and
//! retired (checked, idempotent: [`retire_default_superuser`]) on every
//! session. Connecting retries until the configured timeout (a managed node
//! starting cold takes ~15-30 s), then fails with `CassandraUnreachable`.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use scylla::client::session::Session;
use scylla::client::session_builder::SessionBuilder;
use tenant_schema::cql::PublishedPortTranslator;

use crate::config::{CassandraMode, Config};
use crate::error::{Error, Result};
use crate::state::Store;

/// The superuser the provisioner creates on the managed node.
pub const MANAGED_ADMIN: &str = "provision_admin";
const MANAGED_ADMIN_SETTING: &str = "cassandra_admin_password";
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(5);

fn host_points(config: &Config) -> Vec<String> {
    match config.cassandra.mode {
        CassandraMode::Managed => vec![format!("127.0.0.1:{}", config.cassandra.host_port)],
        CassandraMode::External => config.cassandra.contact_points.clone(),
    }
}

async fn connect_once(
    config: &Config,
    user: &str,
    password: &str,
) -> std::result::Result<Session, String> {
    let points = host_points(config);
    let published = config.cassandra.mode == CassandraMode::Managed || config.cassandra.published;
    let mut builder = SessionBuilder::new().user(user, password);
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
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err(format!("no answer within {} s", ATTEMPT_TIMEOUT.as_secs())),
    }
}

/// A superuser session, retrying until `[cassandra].connect_timeout_secs`.
pub async fn admin_session(config: &Config, store: &Store) -> Result<Session> {
    let deadline = Instant::now() + Duration::from_secs(config.cassandra.connect_timeout_secs);
    let mut last;
    loop {
        let attempt = match config.cassandra.mode {
            CassandraMode::External => {
                connect_once(
                    config,
                    &config.cassandra.admin_user,
                    &config.cassandra.admin_password,
                )
                .await
            }
            CassandraMode::Managed => managed_session(config, store).await,
        };
        match attempt {
            Ok(s) if config.cassandra.mode == CassandraMode::Managed => {
                // Not retried: a node that answers but keeps the default
                // superuser is a finding, not an outage.
                retire_default_superuser(&s)
                    .await
                    .map_err(|e| Error::DefaultSuperuserActive {
                        container: config.cassandra.container.clone(),
                        why: e.to_string(),
                    })?;
                return Ok(s);
            }
            Ok(s) => return Ok(s),
            Err(e) => last = e,
        }
        if Instant::now() >= deadline {
            return Err(Error::CassandraUnreachable {
                contact_points: host_points(config).join(","),
                why: last,
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
async fn managed_session(config: &Config, store: &Store) -> std::result::Result<Session, String> {
    let stored = store
        .setting(MANAGED_ADMIN_SETTING)
        .await
        .map_err(|e| e.to_string())?;
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
) -> std::result::Result<Session, String> {
    let bootstrap = connect_once(config, DEFAULT_SUPERUSER, DEFAULT_SUPERUSER).await?;
    // Store first, so a crash after CREATE ROLE never loses the password.
    let password = store
        .setting_or_insert(MANAGED_ADMIN_SETTING, &tenant_schema::model::new_password())
        .await
        .map_err(|e| e.to_string())?;
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
        .map_err(|e| e.to_string())?
        .into_rows_result()
        .map_err(|e| e.to_string())?
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
        .map_err(|e| e.to_string())?;
    connect_once(config, MANAGED_ADMIN, &password).await
}

/// The role Cassandra creates on a fresh node, with password `cassandra`.
pub const DEFAULT_SUPERUSER: &str = "cassandra";

/// What `system_auth.roles` says about the default superuser.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DefaultRole {
    pub is_superuser: bool,
    pub can_login: bool,
}

/// Why the default superuser could not be retired.
#[derive(Debug, thiserror::Error)]
pub enum RetireError {
    #[error("cannot {what} the default superuser {DEFAULT_SUPERUSER}: {why}")]
    Statement { what: &'static str, why: String },
    #[error(
        "the default superuser {DEFAULT_SUPERUSER} still reads back as {0:?} after it was retired"
    )]
    NotRetired(DefaultRole),
}

/// Reads the default superuser's row (`None` when the role does not exist).
/// The read is at QUORUM, as Cassandra reads the default role itself.
pub async fn default_role(session: &Session) -> std::result::Result<Option<DefaultRole>, String> {
    let mut query = scylla::statement::unprepared::Statement::new(
        "SELECT is_superuser, can_login FROM system_auth.roles WHERE role = ?",
    );
    query.set_consistency(scylla::statement::Consistency::Quorum);
    let rows = session
        .query_unpaged(query, (DEFAULT_SUPERUSER,))
        .await
        .map_err(|e| e.to_string())?
        .into_rows_result()
        .map_err(|e| e.to_string())?;
    let row = rows
        .maybe_first_row::<(Option<bool>, Option<bool>)>()
        .map_err(|e| e.to_string())?;
    Ok(row.map(|(superuser, login)| DefaultRole {
        is_superuser: superuser.unwrap_or(false),
        can_login: login.unwrap_or(false),
    }))
}

/// Takes away the default superuser's superuser status and login and gives
/// it a random password, then reads the role back: the step is done only
/// when the row says so. Idempotent: a retired role is left alone.
pub async fn retire_default_superuser(session: &Session) -> std::result::Result<(), RetireError> {
    let read = |why| RetireError::Statement { what: "read", why };
    match default_role(session).await.map_err(read)? {
        None => return Ok(()),
        Some(DefaultRole {
            is_superuser: false,
            can_login: false,
        }) => return Ok(()),
        Some(_) => {}
    }
    let retired = tenant_schema::model::new_password();
    session
        .query_unpaged(
            format!("ALTER ROLE {DEFAULT_SUPERUSER} WITH PASSWORD = '{retired}' AND SUPERUSER = false AND LOGIN = false"),
            (),
        )
        .await
        .map_err(|e| RetireError::Statement {
            what: "retire",
            why: e.to_string(),
        })?;
    match default_role(session).await.map_err(read)? {
        None
        | Some(DefaultRole {
            is_superuser: false,
            can_login: false,
        }) => Ok(()),
        Some(still) => Err(RetireError::NotRetired(still)),
    }
}

/// Whether `cassandra`/`cassandra` logs in on the managed node now.
pub async fn default_login_works(config: &Config) -> bool {
    connect_once(config, DEFAULT_SUPERUSER, DEFAULT_SUPERUSER)
        .await
        .is_ok()
}
