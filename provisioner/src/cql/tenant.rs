//! Cassandra administration for tenants: the keyspace, the tenant schema
//! migrations, the tenant role with rights on its own keyspace only, the
//! panel's first admin user, and dropping it all on purge.
//!
//! Every function here runs with an admin (superuser) session and is
//! idempotent: running it again after a crash halfway converges.

use std::time::{Duration, Instant};

use scylla::client::session::Session;
use scylla::errors::ExecutionError;
use scylla::statement::unprepared::Statement;
use tenant_schema::{MIGRATIONS, SCHEMA_VERSION_SETTING};

use super::{statement_error, Result};
use crate::domain::ProviderId;

/// How tenant keyspaces are replicated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Replication {
    /// `SimpleStrategy` with this replication factor (a single node: 1).
    Simple { factor: u32 },
    /// `NetworkTopologyStrategy` with a factor per datacenter.
    NetworkTopology { datacenters: Vec<(String, u32)> },
}

impl Default for Replication {
    fn default() -> Self {
        Replication::Simple { factor: 1 }
    }
}

impl Replication {
    /// The CQL map literal for `WITH replication = ...`.
    pub fn to_cql(&self) -> String {
        match self {
            Replication::Simple { factor } => {
                format!("{{'class': 'SimpleStrategy', 'replication_factor': {factor}}}")
            }
            Replication::NetworkTopology { datacenters } => {
                let dcs: Vec<String> = datacenters
                    .iter()
                    .map(|(dc, n)| format!("'{}': {n}", dc.replace('\'', "''")))
                    .collect();
                format!("{{'class': 'NetworkTopologyStrategy', {}}}", dcs.join(", "))
            }
        }
    }
}

/// A CQL string literal: single quotes doubled.
fn cql_string(value: &str) -> String {
    format!("'{}'", value.replace('\'', "''"))
}

/// How long one schema or role statement may take. Cassandra applies schema
/// changes one at a time, so twenty tenants created or dropped at once on a
/// loaded 2-core node queue behind each other well past the driver's 30 s.
const SCHEMA_STATEMENT_TIMEOUT: Duration = Duration::from_secs(120);
/// How often a statement that timed out on the client side is tried again.
/// Every statement sent by [`run`] is idempotent (`IF [NOT] EXISTS`, grants,
/// upserts), so a retry after a timeout that the node did apply converges.
const SCHEMA_STATEMENT_ATTEMPTS: u32 = 3;

/// Runs one idempotent schema, role or settings statement, retrying a
/// client-side timeout.
async fn run(session: &Session, tenant: &ProviderId, what: &str, cql: String) -> Result<()> {
    let mut statement = Statement::new(cql);
    statement.set_request_timeout(Some(SCHEMA_STATEMENT_TIMEOUT));
    let mut attempt = 1;
    loop {
        match session.query_unpaged(statement.clone(), ()).await {
            Ok(_) => return Ok(()),
            Err(ExecutionError::RequestTimeout(after)) if attempt < SCHEMA_STATEMENT_ATTEMPTS => {
                tracing::warn!(
                    %tenant, what, attempt, after_secs = after.as_secs(),
                    "schema statement timed out on the client side; trying it again"
                );
                attempt += 1;
            }
            Err(e) => return Err(statement_error(tenant, what, e)),
        }
    }
}

/// The schema version applied to a tenant keyspace: 0 while its settings
/// table does not exist; any other failure is an error.
async fn applied_schema_version(session: &Session, tenant: &ProviderId) -> Result<u32> {
    let keyspace = tenant.keyspace();
    let what = "read the schema version";
    let tables = session
        .query_unpaged(
            "SELECT table_name FROM system_schema.tables WHERE keyspace_name = ? AND table_name = 'settings'",
            (keyspace.as_str(),),
        )
        .await
        .map_err(|e| statement_error(tenant, what, e))?
        .into_rows_result()
        .map_err(|e| statement_error(tenant, what, e))?;
    if tables.rows_num() == 0 {
        return Ok(0);
    }
    let query = format!(
        "SELECT value FROM {keyspace}.settings WHERE name = {}",
        cql_string(SCHEMA_VERSION_SETTING)
    );
    let row = session
        .query_unpaged(query, ())
        .await
        .map_err(|e| statement_error(tenant, what, e))?
        .into_rows_result()
        .map_err(|e| statement_error(tenant, what, e))?
        .maybe_first_row::<(Option<String>,)>()
        .map_err(|e| statement_error(tenant, what, e))?;
    match row.and_then(|(value,)| value) {
        None => Ok(0),
        Some(v) => v.parse().map_err(|_| {
            statement_error(
                tenant,
                what,
                format!("the stored version {v:?} is no number"),
            )
        }),
    }
}

/// Creates the tenant's keyspace, brings its schema to the newest version
/// and returns the version now applied.
pub async fn ensure_keyspace(
    session: &Session,
    tenant: &ProviderId,
    replication: &Replication,
) -> Result<u32> {
    let keyspace = tenant.keyspace();
    run(
        session,
        tenant,
        "create keyspace",
        format!(
            "CREATE KEYSPACE IF NOT EXISTS {keyspace} WITH replication = {}",
            replication.to_cql()
        ),
    )
    .await?;
    let applied = applied_schema_version(session, tenant).await?;
    let mut version = applied;
    for migration in MIGRATIONS.iter().filter(|m| m.version > applied) {
        for statement in migration.statements_for(&keyspace) {
            run(
                session,
                tenant,
                &format!("migration {} {}", migration.version, migration.name),
                statement,
            )
            .await?;
        }
        run(
            session,
            tenant,
            "record schema version",
            format!(
                "INSERT INTO {keyspace}.settings (name, value) VALUES ({}, {})",
                cql_string(SCHEMA_VERSION_SETTING),
                cql_string(&migration.version.to_string())
            ),
        )
        .await?;
        version = migration.version;
    }
    Ok(version)
}

/// Creates (or updates the password of) the tenant's role, and grants it
/// reading and writing on its own keyspace only: no schema changes, no
/// other keyspace, no role management.
pub async fn ensure_role(session: &Session, tenant: &ProviderId, password: &str) -> Result<()> {
    let role = tenant.cassandra_role();
    let password = cql_string(password);
    // Cassandra 5 refuses a password change within 5 s of the last one, so
    // an existing role is altered, a new one only created.
    let exists = session
        .query_unpaged(
            "SELECT role FROM system_auth.roles WHERE role = ?",
            (role.as_str(),),
        )
        .await
        .map_err(|e| statement_error(tenant, "read the role", e))?
        .into_rows_result()
        .map_err(|e| statement_error(tenant, "read the role", e))?
        .rows_num()
        > 0;
    if exists {
        set_password(session, tenant, &role, &password).await?;
    } else {
        run(
            session,
            tenant,
            "create role",
            format!("CREATE ROLE IF NOT EXISTS {role} WITH PASSWORD = {password} AND LOGIN = true AND SUPERUSER = false"),
        )
        .await?;
    }
    for permission in ["SELECT", "MODIFY"] {
        run(
            session,
            tenant,
            "grant",
            format!(
                "GRANT {permission} ON KEYSPACE {} TO {role}",
                tenant.keyspace()
            ),
        )
        .await?;
    }
    Ok(())
}

/// How long Cassandra 5 refuses a second password change of a role
/// (`Password for role .. can only be changed every 5000ms`), plus a margin.
const PASSWORD_CHANGE_INTERVAL: Duration = Duration::from_millis(5500);

/// `ALTER ROLE .. WITH PASSWORD`. A provisioner killed right after it
/// created the role finds the role on its next run within Cassandra's
/// password-change interval: that refusal is waited out, not reported.
async fn set_password(
    session: &Session,
    tenant: &ProviderId,
    role: &str,
    password: &str,
) -> Result<()> {
    let deadline = Instant::now() + PASSWORD_CHANGE_INTERVAL;
    loop {
        let outcome = run(
            session,
            tenant,
            "set role password",
            format!("ALTER ROLE {role} WITH PASSWORD = {password}"),
        )
        .await;
        match outcome {
            Err(e)
                if e.to_string().contains("can only be changed every")
                    && Instant::now() < deadline =>
            {
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
            other => return other,
        }
    }
}

/// Inserts an admin user of the tenant's panel with an argon2 hash.
pub async fn create_admin_user(
    session: &Session,
    tenant: &ProviderId,
    username: &str,
    password: &str,
) -> Result<()> {
    let hash = tenant_schema::model::hash_password(password)?;
    let cql = format!(
        "INSERT INTO {}.admin_users (username, password_hash, created_at) VALUES (?, ?, ?)",
        tenant.keyspace()
    );
    session
        .query_unpaged(cql, (username, hash, chrono::Utc::now()))
        .await
        .map_err(|e| statement_error(tenant, "create admin user", e))?;
    Ok(())
}

/// Drops the tenant's keyspace (all its data) and its role.
pub async fn drop_tenant(session: &Session, tenant: &ProviderId) -> Result<()> {
    run(
        session,
        tenant,
        "drop keyspace",
        format!("DROP KEYSPACE IF EXISTS {}", tenant.keyspace()),
    )
    .await?;
    run(
        session,
        tenant,
        "drop role",
        format!("DROP ROLE IF EXISTS {}", tenant.cassandra_role()),
    )
    .await
}

/// Cassandra's own keyspaces, whose tables are not the tenants'.
const SYSTEM_KEYSPACES: [&str; 5] = [
    "system",
    "system_auth",
    "system_schema",
    "system_distributed",
    "system_traces",
];

/// The tables of the cluster outside Cassandra's own keyspaces (what its
/// table limits count).
pub async fn user_tables(session: &Session) -> std::result::Result<usize, String> {
    let rows = session
        .query_unpaged("SELECT keyspace_name FROM system_schema.tables", ())
        .await
        .map_err(|e| e.to_string())?
        .into_rows_result()
        .map_err(|e| e.to_string())?;
    let mut count = 0;
    for row in rows.rows::<(String,)>().map_err(|e| e.to_string())? {
        let (keyspace,) = row.map_err(|e| e.to_string())?;
        if !SYSTEM_KEYSPACES.contains(&keyspace.as_str()) {
            count += 1;
        }
    }
    Ok(count)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replication_renders_as_cql_maps() {
        assert_eq!(
            Replication::default().to_cql(),
            "{'class': 'SimpleStrategy', 'replication_factor': 1}"
        );
        let nts = Replication::NetworkTopology {
            datacenters: vec![("dc1".into(), 3), ("dc'2".into(), 2)],
        };
        assert_eq!(
            nts.to_cql(),
            "{'class': 'NetworkTopologyStrategy', 'dc1': 3, 'dc''2': 2}"
        );
    }

    #[test]
    fn string_literals_escape_quotes() {
        assert_eq!(cql_string("it's"), "'it''s'");
    }
}
