//! The tenant keyspace schema, as versioned CQL migrations, and the shared
//! data model: the formats of what the tenant tables store.
//!
//! The provisioner applies the migrations with an admin session (tenant
//! roles cannot alter schema). Each statement names the keyspace through the
//! `{keyspace}` placeholder, which [`Migration::statements_for`] fills in.
//! The provisioner, ingest and the admin panel all read and write gateway
//! tokens and admin passwords through [`model`], and the `gateways` table
//! through [`registry`], so the stored formats and the registry's
//! statements have one definition. [`health`] is the line ingest's health
//! check prints and the provisioner reads back for `status`.

pub mod cql;
pub mod energy;
pub mod health;
pub mod local_time;
pub mod model;
pub mod registry;
pub mod settings;

/// One schema version: a number, a name, and the CQL statements that take a
/// keyspace from the previous version to this one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Migration {
    pub version: u32,
    pub name: &'static str,
    statements: &'static [&'static str],
}

impl Migration {
    /// The statements of this migration for one keyspace.
    pub fn statements_for(&self, keyspace: &str) -> Vec<String> {
        self.statements
            .iter()
            .map(|s| s.replace("{keyspace}", keyspace))
            .collect()
    }
}

/// Every migration, oldest first. Versions are strictly increasing.
///
/// Seven tables per tenant. Each Cassandra table costs the node about 1 MiB of
/// heap, so the count is kept small on purpose: the schema version lives in
/// `settings` (key [`SCHEMA_VERSION_SETTING`]) rather than a table of its
/// own, daily reports are computed from `readings` rather than stored, and
/// the admin panel's login limiter and session revocations share one table
/// (`auth_records`).
pub const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        name: "initial",
        statements: &[
            // Commissioned gateways. Tokens are 256-bit random strings, so a
            // SHA-256 hex digest is a sufficient hash; the token itself is never
            // stored.
            "CREATE TABLE IF NOT EXISTS {keyspace}.gateways (
            gateway_id text PRIMARY KEY,
            token_hash text,
            display_name text,
            created_at timestamp,
            revoked_at timestamp
        )",
            // One row per value of a reading, partitioned by gateway and UTC day
            // so no partition grows without bound. A resent frame writes the
            // same keys again: replays are idempotent.
            "CREATE TABLE IF NOT EXISTS {keyspace}.readings (
            gateway_id text,
            day date,
            ts timestamp,
            sensor text,
            name text,
            value double,
            unit text,
            seq bigint,
            PRIMARY KEY ((gateway_id, day), ts, sensor, name)
        ) WITH CLUSTERING ORDER BY (ts DESC, sensor ASC, name ASC)",
            // The newest value per gateway, sensor and name. Written with
            // USING TIMESTAMP set to the reading's time, so a late, older
            // reading never overwrites a newer one. `last_seen` is when ingest
            // last accepted a frame from the gateway.
            "CREATE TABLE IF NOT EXISTS {keyspace}.latest (
            gateway_id text,
            last_seen timestamp STATIC,
            sensor text,
            name text,
            ts timestamp,
            value double,
            unit text,
            PRIMARY KEY (gateway_id, sensor, name)
        )",
            // The provider's customizations (display name, timezone, alert
            // thresholds, ...) and the schema version, as key/value pairs.
            "CREATE TABLE IF NOT EXISTS {keyspace}.settings (
            name text PRIMARY KEY,
            value text
        )",
            // The provider's staff who may log in to the admin panel. Passwords
            // are argon2 PHC strings.
            "CREATE TABLE IF NOT EXISTS {keyspace}.admin_users (
            username text PRIMARY KEY,
            password_hash text,
            created_at timestamp
        )",
        ],
    },
    Migration {
        version: 2,
        name: "auth records",
        statements: &[
            // What the admin panel must remember across restarts about
            // logins, every row written with a TTL so it expires by itself:
            // - kind 'login-failure', subject 'user:<lowercased name>' or
            //   'address:<client ip>': one row per failed (or in-progress)
            //   login, TTL the limiter's window;
            // - kind 'revoked-session', subject the SHA-256 (hex) of a
            //   logged-out session cookie: one row, TTL the cookie's
            //   remaining lifetime.
            // A short gc_grace keeps the tombstones of expired rows from
            // piling up in a partition an attacker keeps writing to; losing
            // a delete to a down replica only brings back a record that
            // expires anyway.
            "CREATE TABLE IF NOT EXISTS {keyspace}.auth_records (
                kind text,
                subject text,
                at timestamp,
                id bigint,
                PRIMARY KEY ((kind, subject), at, id)
            ) WITH CLUSTERING ORDER BY (at DESC, id ASC)
              AND gc_grace_seconds = 10800",
        ],
    },
    Migration {
        version: 3,
        name: "notifier",
        statements: &[
            // The notifier's one table: alert rules, the state of every
            // (rule, gateway) pair, report requests and the outbox, told
            // apart by `kind` (see the notifier crate's `schema` module for
            // the rows). One table rather than four: each costs every node
            // about 1 MiB of heap per tenant.
            "CREATE TABLE IF NOT EXISTS {keyspace}.notifier (
                kind text,
                bucket text,
                id text,
                body text,
                message blob,
                due timestamp,
                PRIMARY KEY ((kind, bucket), id)
            ) WITH gc_grace_seconds = 86400",
        ],
    },
];

/// The `settings` key that records the applied schema version.
pub const SCHEMA_VERSION_SETTING: &str = "schema_version";

/// The tables every tenant keyspace holds at the latest version.
pub const TABLES: &[&str] = &[
    "gateways",
    "readings",
    "latest",
    "settings",
    "admin_users",
    "auth_records",
    "notifier",
];

/// The newest schema version.
pub fn latest_version() -> u32 {
    MIGRATIONS.last().map(|m| m.version).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statements_name_the_keyspace() {
        for migration in MIGRATIONS {
            for statement in migration.statements_for("acme") {
                assert!(statement.contains("acme."), "{statement}");
                assert!(!statement.contains("{keyspace}"), "{statement}");
            }
        }
    }

    #[test]
    fn every_listed_table_is_created() {
        let all: Vec<String> = MIGRATIONS
            .iter()
            .flat_map(|m| m.statements_for("k"))
            .collect();
        for table in TABLES {
            let create = format!("CREATE TABLE IF NOT EXISTS k.{table} (");
            assert!(all.iter().any(|s| s.starts_with(&create)), "{table}");
        }
    }

    #[test]
    fn versions_are_strictly_increasing() {
        for pair in MIGRATIONS.windows(2) {
            assert!(pair[0].version < pair[1].version);
        }
    }
}
