//! The state store: a SQLite file (sqlx) holding the providers and their
//! desired state, their port leases, their containers, a log of operations
//! and a few settings (the managed Cassandra's superuser password).
//!
//! Concurrency: every write that must be atomic across processes (a new
//! provider plus its port leases) runs in a `BEGIN IMMEDIATE` transaction,
//! so writers queue on SQLite's lock (busy_timeout) instead of failing, and
//! `port_leases.port` is the primary key, so no two tenants can ever hold
//! the same port.

use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Row, SqlitePool};

use crate::error::{Error, Result};
use crate::plan::{Desired, Pool};

/// Schema versions of the store, applied in order inside one immediate
/// transaction; `PRAGMA user_version` records the applied one.
const MIGRATIONS: &[&str] = &[r#"
CREATE TABLE IF NOT EXISTS providers (
    id TEXT PRIMARY KEY,
    desired TEXT NOT NULL,
    cassandra_password TEXT NOT NULL,
    session_secret TEXT NOT NULL,
    schema_version INTEGER NOT NULL DEFAULT 0,
    role_ready INTEGER NOT NULL DEFAULT 0,
    admin_user_created INTEGER NOT NULL DEFAULT 0,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS port_leases (
    port INTEGER PRIMARY KEY,
    pool TEXT NOT NULL,
    provider TEXT NOT NULL REFERENCES providers(id),
    leased_at TEXT NOT NULL,
    UNIQUE (provider, pool)
);
CREATE TABLE IF NOT EXISTS containers (
    provider TEXT NOT NULL,
    role TEXT NOT NULL,
    name TEXT NOT NULL,
    container_id TEXT NOT NULL,
    config_hash TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    PRIMARY KEY (provider, role)
);
CREATE TABLE IF NOT EXISTS operations (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    provider TEXT,
    action TEXT NOT NULL,
    started_at TEXT NOT NULL,
    finished_at TEXT,
    outcome TEXT,
    detail TEXT
);
CREATE TABLE IF NOT EXISTS settings (
    name TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
"#];

/// One provider as the store knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProviderRecord {
    pub id: String,
    pub desired: Desired,
    pub cassandra_password: String,
    pub session_secret: String,
    pub schema_version: u32,
    pub role_ready: bool,
    pub admin_user_created: bool,
    pub gateway_port: Option<u16>,
    pub admin_port: Option<u16>,
    pub created_at: String,
}

/// A port the caller asked for, or `None` for "any from the pool".
#[derive(Debug, Clone, Copy, Default)]
pub struct PortRequest {
    pub gateway: Option<u16>,
    pub admin: Option<u16>,
}

/// Whether `e` is SQLite's "database is locked" (SQLITE_BUSY, code 5).
fn is_busy(e: &Error) -> bool {
    let busy = |db: &dyn sqlx::error::DatabaseError| db.code().as_deref() == Some("5");
    match e {
        Error::State { source, .. } => source.as_database_error().is_some_and(busy),
        Error::Migrate(sqlx::migrate::MigrateError::Execute(source)) => {
            source.as_database_error().is_some_and(busy)
        }
        _ => false,
    }
}

/// The state store.
#[derive(Debug, Clone)]
pub struct Store {
    pool: SqlitePool,
    url: String,
}

fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

impl Store {
    /// Opens (creating it and its directory if needed) the SQLite file at
    /// `path`, and brings its schema up to date.
    pub async fn open(path: &Path) -> Result<Store> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)
                .map_err(|e| Error::io("cannot create the state directory", dir, e))?;
        }
        let url = path.display().to_string();
        let options = SqliteConnectOptions::from_str(&format!("sqlite://{url}"))
            .map_err(|source| Error::State {
                url: url.clone(),
                source: Box::new(source),
            })?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(Duration::from_secs(60))
            .foreign_keys(true);
        // Many processes opening one new file at once (twenty concurrent
        // starts) can meet SQLITE_BUSY where SQLite does not wait out its
        // busy timeout (switching to WAL, a migration's read turning into a
        // write): opening is retried for as long as the busy timeout.
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        loop {
            match Store::open_once(path, &url, options.clone()).await {
                Err(e) if is_busy(&e) && std::time::Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                other => return other,
            }
        }
    }

    async fn open_once(path: &Path, url: &str, options: SqliteConnectOptions) -> Result<Store> {
        let pool = SqlitePoolOptions::new()
            .max_connections(2)
            .connect_with(options)
            .await
            .map_err(|source| Error::State {
                url: url.to_owned(),
                source: Box::new(source),
            })?;
        restrict_permissions(path);
        let store = Store {
            pool,
            url: url.to_owned(),
        };
        store.migrate().await?;
        Ok(store)
    }

    fn err(&self) -> impl Fn(sqlx::Error) -> Error + '_ {
        move |source| Error::State {
            url: self.url.clone(),
            source: Box::new(source),
        }
    }

    async fn migrate(&self) -> Result<()> {
        let mut tx = self
            .pool
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(self.err())?;
        let version: i64 = sqlx::query_scalar("PRAGMA user_version")
            .fetch_one(&mut *tx)
            .await
            .map_err(self.err())?;
        for (i, migration) in MIGRATIONS.iter().enumerate().skip(version as usize) {
            sqlx::raw_sql(migration)
                .execute(&mut *tx)
                .await
                .map_err(self.err())?;
            sqlx::raw_sql(&format!("PRAGMA user_version = {}", i + 1))
                .execute(&mut *tx)
                .await
                .map_err(self.err())?;
        }
        tx.commit().await.map_err(self.err())
    }

    pub fn path(&self) -> PathBuf {
        PathBuf::from(&self.url)
    }

    /// One provider with its leases, if known.
    pub async fn provider(&self, id: &str) -> Result<Option<ProviderRecord>> {
        let row = sqlx::query(
            "SELECT p.id, p.desired, p.cassandra_password, p.session_secret, p.schema_version, \
             p.role_ready, p.admin_user_created, p.created_at, \
             (SELECT port FROM port_leases WHERE provider = p.id AND pool = 'gateway') AS gw, \
             (SELECT port FROM port_leases WHERE provider = p.id AND pool = 'admin') AS ad \
             FROM providers p WHERE p.id = ?",
        )
        .bind(id)
        .fetch_optional(&self.pool)
        .await
        .map_err(self.err())?;
        Ok(row.map(|r| record_from_row(&r)))
    }

    /// Every provider, by id.
    pub async fn providers(&self) -> Result<Vec<ProviderRecord>> {
        let rows = sqlx::query(
            "SELECT p.id, p.desired, p.cassandra_password, p.session_secret, p.schema_version, \
             p.role_ready, p.admin_user_created, p.created_at, \
             (SELECT port FROM port_leases WHERE provider = p.id AND pool = 'gateway') AS gw, \
             (SELECT port FROM port_leases WHERE provider = p.id AND pool = 'admin') AS ad \
             FROM providers p ORDER BY p.id",
        )
        .fetch_all(&self.pool)
        .await
        .map_err(self.err())?;
        Ok(rows.iter().map(record_from_row).collect())
    }

    /// Records that `id` should run, creating it with fresh secrets if new,
    /// and leases the ports it lacks, all in one immediate transaction: on
    /// any error (a taken port, an exhausted pool) nothing is written.
    /// `host_free(port)` says whether nothing else on the host holds a port.
    pub async fn begin_start(
        &self,
        id: &str,
        request: PortRequest,
        pools: &crate::ports::Pools,
        host_free: &(dyn Fn(u16) -> Result<(), String> + Sync),
    ) -> Result<ProviderRecord> {
        let mut tx = self
            .pool
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(self.err())?;
        let t = now();
        sqlx::query(
            "INSERT INTO providers (id, desired, cassandra_password, session_secret, created_at, updated_at) \
             VALUES (?, 'running', ?, ?, ?, ?) \
             ON CONFLICT (id) DO UPDATE SET desired = 'running', updated_at = excluded.updated_at",
        )
        .bind(id)
        .bind(tenant_schema::model::new_password())
        .bind(new_secret())
        .bind(&t)
        .bind(&t)
        .execute(&mut *tx)
        .await
        .map_err(self.err())?;
        let leases: Vec<(i64, String, String)> =
            sqlx::query_as("SELECT port, pool, provider FROM port_leases")
                .fetch_all(&mut *tx)
                .await
                .map_err(self.err())?;
        let leases: Vec<crate::ports::Lease> = leases
            .into_iter()
            .filter_map(|(port, pool, provider)| {
                Some(crate::ports::Lease {
                    port: port as u16,
                    pool: Pool::parse(&pool)?,
                    provider,
                })
            })
            .collect();
        for (pool, requested) in [
            (Pool::Gateway, request.gateway),
            (Pool::Admin, request.admin),
        ] {
            let decision =
                crate::ports::choose(id, pool, requested, pools.range(pool), &leases, host_free)?;
            if let crate::ports::Choice::Lease(port) = decision {
                sqlx::query(
                    "INSERT INTO port_leases (port, pool, provider, leased_at) VALUES (?, ?, ?, ?)",
                )
                .bind(port as i64)
                .bind(pool.as_str())
                .bind(id)
                .bind(&t)
                .execute(&mut *tx)
                .await
                .map_err(self.err())?;
            }
        }
        tx.commit().await.map_err(self.err())?;
        Ok(self.provider(id).await?.expect("just written"))
    }

    pub async fn set_desired(&self, id: &str, desired: Desired) -> Result<()> {
        sqlx::query("UPDATE providers SET desired = ?, updated_at = ? WHERE id = ?")
            .bind(desired.as_str())
            .bind(now())
            .bind(id)
            .execute(&self.pool)
            .await
            .map_err(self.err())?;
        Ok(())
    }

    pub async fn set_schema_version(&self, id: &str, version: u32) -> Result<()> {
        self.set_column(id, "schema_version", version as i64).await
    }

    pub async fn set_role_ready(&self, id: &str, ready: bool) -> Result<()> {
        self.set_column(id, "role_ready", ready as i64).await
    }

    pub async fn set_admin_user_created(&self, id: &str) -> Result<()> {
        self.set_column(id, "admin_user_created", 1).await
    }

    async fn set_column(&self, id: &str, column: &'static str, value: i64) -> Result<()> {
        sqlx::query(&format!(
            "UPDATE providers SET {column} = ?, updated_at = ? WHERE id = ?"
        ))
        .bind(value)
        .bind(now())
        .bind(id)
        .execute(&self.pool)
        .await
        .map_err(self.err())?;
        Ok(())
    }

    /// Releases every port of `id`.
    pub async fn release_ports(&self, id: &str) -> Result<()> {
        sqlx::query("DELETE FROM port_leases WHERE provider = ?")
            .bind(id)
            .execute(&self.pool)
            .await
            .map_err(self.err())?;
        Ok(())
    }

    /// Forgets `id` entirely (its leases, containers and record).
    pub async fn forget(&self, id: &str) -> Result<()> {
        let mut tx = self
            .pool
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(self.err())?;
        for table in ["port_leases", "containers"] {
            sqlx::query(&format!("DELETE FROM {table} WHERE provider = ?"))
                .bind(id)
                .execute(&mut *tx)
                .await
                .map_err(self.err())?;
        }
        sqlx::query("DELETE FROM providers WHERE id = ?")
            .bind(id)
            .execute(&mut *tx)
            .await
            .map_err(self.err())?;
        tx.commit().await.map_err(self.err())
    }

    /// Records the container now serving `role` of `id`.
    pub async fn record_container(
        &self,
        id: &str,
        role: &str,
        name: &str,
        container_id: &str,
        config_hash: &str,
    ) -> Result<()> {
        sqlx::query(
            "INSERT INTO containers (provider, role, name, container_id, config_hash, updated_at) \
             VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (provider, role) DO UPDATE SET \
             name = excluded.name, container_id = excluded.container_id, \
             config_hash = excluded.config_hash, updated_at = excluded.updated_at",
        )
        .bind(id)
        .bind(role)
        .bind(name)
        .bind(container_id)
        .bind(config_hash)
        .bind(now())
        .execute(&self.pool)
        .await
        .map_err(self.err())?;
        Ok(())
    }

    pub async fn forget_containers(&self, id: &str) -> Result<()> {
        sqlx::query("DELETE FROM containers WHERE provider = ?")
            .bind(id)
            .execute(&self.pool)
            .await
            .map_err(self.err())?;
        Ok(())
    }

    /// Logs the start of an operation; returns its id for [`Store::finish_operation`].
    pub async fn begin_operation(&self, provider: Option<&str>, action: &str) -> Result<i64> {
        let id =
            sqlx::query("INSERT INTO operations (provider, action, started_at) VALUES (?, ?, ?)")
                .bind(provider)
                .bind(action)
                .bind(now())
                .execute(&self.pool)
                .await
                .map_err(self.err())?
                .last_insert_rowid();
        Ok(id)
    }

    pub async fn finish_operation(&self, op: i64, outcome: &str, detail: &str) -> Result<()> {
        sqlx::query("UPDATE operations SET finished_at = ?, outcome = ?, detail = ? WHERE id = ?")
            .bind(now())
            .bind(outcome)
            .bind(detail)
            .bind(op)
            .execute(&self.pool)
            .await
            .map_err(self.err())?;
        Ok(())
    }

    pub async fn setting(&self, name: &str) -> Result<Option<String>> {
        sqlx::query_scalar("SELECT value FROM settings WHERE name = ?")
            .bind(name)
            .fetch_optional(&self.pool)
            .await
            .map_err(self.err())
    }

    /// Stores `value` under `name` unless a value is there already, and
    /// returns the stored value (so concurrent writers agree on one).
    pub async fn setting_or_insert(&self, name: &str, value: &str) -> Result<String> {
        sqlx::query("INSERT OR IGNORE INTO settings (name, value) VALUES (?, ?)")
            .bind(name)
            .bind(value)
            .execute(&self.pool)
            .await
            .map_err(self.err())?;
        Ok(self.setting(name).await?.expect("just inserted"))
    }
}

fn record_from_row(r: &sqlx::sqlite::SqliteRow) -> ProviderRecord {
    ProviderRecord {
        id: r.get("id"),
        desired: Desired::parse(r.get::<String, _>("desired").as_str()).unwrap_or(Desired::Running),
        cassandra_password: r.get("cassandra_password"),
        session_secret: r.get("session_secret"),
        schema_version: r.get::<i64, _>("schema_version") as u32,
        role_ready: r.get::<i64, _>("role_ready") != 0,
        admin_user_created: r.get::<i64, _>("admin_user_created") != 0,
        created_at: r.get("created_at"),
        gateway_port: r.get::<Option<i64>, _>("gw").map(|p| p as u16),
        admin_port: r.get::<Option<i64>, _>("ad").map(|p| p as u16),
    }
}

/// 32 random bytes, hex: the admin panel's session secret.
fn new_secret() -> String {
    use rand::RngCore;
    let mut bytes = [0u8; 32];
    rand::thread_rng().fill_bytes(&mut bytes);
    hex::encode(bytes)
}

/// The store holds tenant secrets: readable by its owner only.
fn restrict_permissions(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    for p in [
        path.to_owned(),
        path.with_extension("db-wal"),
        path.with_extension("db-shm"),
    ] {
        let _ = std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600));
    }
}
