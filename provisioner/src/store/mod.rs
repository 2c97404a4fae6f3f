//! The state store: a SQLite file (sqlx) holding the tenants and their
//! desired state ([`tenants`]), their port leases, the Cassandra cluster
//! each is on ([`placements`]), the log of operations
//! ([`operations`], what `provision history` shows) and a few settings
//! (the managed Cassandra's superuser password), and the daemon's operator
//! tokens ([`tokens`]).
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
use sqlx::SqlitePool;

pub mod operations;
pub mod placements;
pub mod tenants;
pub mod tokens;

use crate::domain::Pool;

/// Schema versions of the store, applied in order inside one immediate
/// transaction; `PRAGMA user_version` records the applied one.
const MIGRATIONS: &[&str] = &[
    r#"
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
"#,
    // v2: the containers table was written and never read (the platform's
    // labels say what runs); operations say who asked what, and which
    // process ran them (so a dead one shows as interrupted).
    r#"
DROP TABLE IF EXISTS containers;
ALTER TABLE operations ADD COLUMN request TEXT;
ALTER TABLE operations ADD COLUMN requested_by TEXT;
ALTER TABLE operations ADD COLUMN process TEXT;
"#,
    // v3: operations queue in the daemon before they run, keep what they
    // answered (a report) or their error (kind and message), and the steps
    // done so far; operator tokens for the daemon's TCP listener (only
    // their SHA-256 is kept).
    r#"
ALTER TABLE operations ADD COLUMN state TEXT;
ALTER TABLE operations ADD COLUMN queued_at TEXT;
ALTER TABLE operations ADD COLUMN result TEXT;
ALTER TABLE operations ADD COLUMN error TEXT;
ALTER TABLE operations ADD COLUMN progress TEXT;
CREATE TABLE IF NOT EXISTS api_tokens (
    name TEXT PRIMARY KEY,
    hash TEXT NOT NULL UNIQUE,
    created_at TEXT NOT NULL,
    created_by TEXT,
    revoked_at TEXT
);
"#,
    r#"
ALTER TABLE providers ADD COLUMN gateway_tls TEXT NOT NULL DEFAULT 'optional';
"#,
    // NULL: no rate limit, and ingest's default cap on gateways.
    r#"
ALTER TABLE providers ADD COLUMN max_readings_per_sec INTEGER;
ALTER TABLE providers ADD COLUMN max_gateways INTEGER;
"#,
    // NULL: the configured images' tags; else the tag `provision upgrade
    // --image-tag` rolled the tenant's apps to.
    r#"
ALTER TABLE providers ADD COLUMN image_tag TEXT;
"#,
    // v7: the Cassandra cluster each tenant is on; every tenant known so
    // far is on the default one ([`placements`]).
    r#"
CREATE TABLE IF NOT EXISTS placements (
    provider TEXT PRIMARY KEY,
    cluster TEXT NOT NULL,
    placed_at TEXT NOT NULL
);
INSERT OR IGNORE INTO placements (provider, cluster, placed_at)
    SELECT id, 'default', created_at FROM providers;
"#,
];

/// What can go wrong in the state store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("state store {url}: {source}")]
    Sql {
        url: String,
        #[source]
        source: Box<sqlx::Error>,
    },
    #[error("state store {url}: cannot create its directory {dir}: {source}")]
    Directory {
        url: String,
        dir: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("state store {url} holds {what} {value:?}, which this version of provision does not know (written by a newer one?)")]
    Unknown {
        url: String,
        what: &'static str,
        value: String,
    },
    /// The port a plan meant to lease was leased by another tenant in the
    /// meantime: the operation plans again.
    #[error("{pool} port {port} was leased to tenant {holder} after this run planned")]
    LeaseTaken {
        pool: Pool,
        port: u16,
        holder: String,
    },
}

type Result<T, E = StoreError> = std::result::Result<T, E>;

/// Whether `e` is SQLite's "database is locked" (SQLITE_BUSY, code 5).
fn is_busy(e: &StoreError) -> bool {
    match e {
        StoreError::Sql { source, .. } => source
            .as_database_error()
            .is_some_and(|db| db.code().as_deref() == Some("5")),
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
            std::fs::create_dir_all(dir).map_err(|source| StoreError::Directory {
                url: path.display().to_string(),
                dir: dir.to_owned(),
                source,
            })?;
        }
        let url = path.display().to_string();
        let options = SqliteConnectOptions::from_str(&format!("sqlite://{url}"))
            .map_err(|source| StoreError::Sql {
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
            .map_err(|source| StoreError::Sql {
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

    fn err(&self) -> impl Fn(sqlx::Error) -> StoreError + '_ {
        move |source| StoreError::Sql {
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

/// 32 random bytes, hex: the admin panel's session secret.
pub(crate) fn new_secret() -> String {
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
