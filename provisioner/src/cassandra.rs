//! Cassandra administration for tenants: the keyspace, the tenant schema
//! migrations and the tenant role with rights on its own keyspace only.
//!
//! Every function here runs with an admin (superuser) session and is
//! idempotent: running it again after a crash halfway converges.

use std::time::{Duration, Instant};

use scylla::client::session::Session;
use scylla::errors::ExecutionError;
pub use tenant_schema::cql::{connect_published, PublishedPortTranslator};
use tenant_schema::{MIGRATIONS, SCHEMA_VERSION_SETTING};

use crate::provider_id::ProviderId;

/// What went wrong while administering a tenant in Cassandra.
#[derive(Debug, thiserror::Error)]
pub enum CassandraError {
    #[error("cassandra statement for tenant {tenant} failed ({what}): {source}")]
    Statement {
        tenant: String,
        what: String,
        #[source]
        source: Box<ExecutionError>,
    },
}

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

async fn run(
    session: &Session,
    tenant: &ProviderId,
    what: &str,
    cql: String,
) -> Result<(), CassandraError> {
    session
        .query_unpaged(cql, ())
        .await
        .map(|_| ())
        .map_err(|source| CassandraError::Statement {
            tenant: tenant.to_string(),
            what: what.to_owned(),
            source: Box::new(source),
        })
}

/// The schema version applied to a tenant keyspace, 0 if none.
async fn applied_schema_version(session: &Session, tenant: &ProviderId) -> u32 {
    let query = format!(
        "SELECT value FROM {}.settings WHERE name = {}",
        tenant.keyspace(),
        cql_string(SCHEMA_VERSION_SETTING)
    );
    // A missing settings table means nothing was applied yet.
    let Ok(result) = session.query_unpaged(query, ()).await else {
        return 0;
    };
    result
        .into_rows_result()
        .ok()
        .and_then(|rows| rows.maybe_first_row::<(Option<String>,)>().ok().flatten())
        .and_then(|(value,)| value)
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// Creates the tenant's keyspace, brings its schema to the newest version
/// and returns the version now applied.
pub async fn ensure_keyspace(
    session: &Session,
    tenant: &ProviderId,
    replication: &Replication,
) -> Result<u32, CassandraError> {
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
    let applied = applied_schema_version(session, tenant).await;
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
pub async fn ensure_role(
    session: &Session,
    tenant: &ProviderId,
    password: &str,
) -> Result<(), CassandraError> {
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
        .ok()
        .and_then(|r| r.into_rows_result().ok())
        .map(|rows| rows.rows_num() > 0)
        .unwrap_or(false);
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
) -> Result<(), CassandraError> {
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

/// Drops the tenant's keyspace (all its data) and its role.
pub async fn drop_tenant(session: &Session, tenant: &ProviderId) -> Result<(), CassandraError> {
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
