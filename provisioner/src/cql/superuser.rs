//! The managed node's default superuser `cassandra`/`cassandra`: reading
//! its role (at QUORUM, as Cassandra reads it), retiring it (no login, no
//! superuser status, a random password) and checking that its login is
//! refused.

use std::time::{Duration, Instant};

use scylla::client::session::Session;

use super::session::connect_once;
use super::CqlError;
use crate::config::Config;

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

/// Retires the default superuser (the role read back), then checks that
/// `cassandra`/`cassandra` is refused. The node caches credentials for
/// `credentials_validity` (2 s in our image), so the check is repeated for
/// a few seconds before it counts as failed.
pub async fn retire_and_check(
    session: &Session,
    config: &Config,
    container: &str,
) -> Result<(), CqlError> {
    let insecure = |why: String| CqlError::DefaultSuperuserActive {
        container: container.to_owned(),
        why,
    };
    retire_default_superuser(session)
        .await
        .map_err(|e| insecure(e.to_string()))?;
    let deadline = Instant::now() + Duration::from_secs(10);
    while default_login_works(config).await {
        if Instant::now() >= deadline {
            return Err(insecure(
                "the role reads back as retired, yet the login is accepted".into(),
            ));
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    Ok(())
}
