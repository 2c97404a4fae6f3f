//! Reads and writes of the tenant tables, as statements prepared once at
//! start.
//!
//! The panel sees the tenant keyspace only through this module. Every
//! statement names the keyspace explicitly, so the session needs no
//! `USE`. Multi-row reads page through results (never one unbounded page),
//! and readings are read one (gateway, day) partition at a time.

use std::collections::{BTreeMap, HashMap};
use std::error::Error as StdError;
use std::time::Duration;

use chrono::{DateTime, NaiveDate, Utc};
use futures::TryStreamExt;
use scylla::client::session::Session;
use scylla::statement::prepared::PreparedStatement;
use tenant_common::{prepare_statement, PrepareFailed};
use tenant_schema::registry::{self, GatewayEntry, GatewayRow};

/// Why the store could not do what was asked.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error(transparent)]
    Prepare(#[from] PrepareFailed),
    #[error("cassandra query {what} failed: {source}")]
    Query {
        what: &'static str,
        #[source]
        source: Box<dyn StdError + Send + Sync>,
    },
}

fn query_err<E: StdError + Send + Sync + 'static>(
    what: &'static str,
) -> impl FnOnce(E) -> StoreError {
    move |e| StoreError::Query {
        what,
        source: Box::new(e),
    }
}

/// A row of the `gateways` table (the token hash never leaves the store).
#[derive(Debug, Clone, PartialEq)]
pub struct GatewayRecord {
    pub gateway_id: String,
    pub display_name: Option<String>,
    pub created_at: Option<DateTime<Utc>>,
    pub revoked_at: Option<DateTime<Utc>>,
    pub has_token: bool,
}

/// The newest value of one sensor and name.
#[derive(Debug, Clone, PartialEq)]
pub struct LatestValue {
    pub sensor: String,
    pub name: String,
    pub ts: Option<DateTime<Utc>>,
    pub value: Option<f64>,
    pub unit: Option<String>,
}

/// What `latest` holds about one gateway.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct LatestRecord {
    pub last_seen: Option<DateTime<Utc>>,
    pub values: Vec<LatestValue>,
}

/// One value of one reading.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub ts: DateTime<Utc>,
    pub sensor: String,
    pub name: String,
    pub value: f64,
    pub unit: String,
}

/// The outcome of commissioning.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Commissioned {
    /// The gateway was new (or revoked) and now has the new token.
    Created,
    /// The gateway exists with a valid token; nothing was changed.
    AlreadyActive,
}

const PAGE_SIZE: i32 = 5_000;
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// The prepared statements over one tenant keyspace.
#[derive(Debug)]
pub struct Store {
    session: Session,
    gateways: PreparedStatement,
    gateway: PreparedStatement,
    insert_gateway: PreparedStatement,
    recommission_gateway: PreparedStatement,
    revoke_gateway: PreparedStatement,
    latest_all: PreparedStatement,
    latest_one: PreparedStatement,
    readings: PreparedStatement,
    readings_named: PreparedStatement,
    settings: PreparedStatement,
    put_setting: PreparedStatement,
    delete_setting: PreparedStatement,
    admin_user: PreparedStatement,
    login_attempts: PreparedStatement,
    record_login_attempt: PreparedStatement,
    delete_login_attempt: PreparedStatement,
    clear_login_attempts: PreparedStatement,
    revoke_session: PreparedStatement,
    session_revoked: PreparedStatement,
    health: PreparedStatement,
}

/// The `auth_records` kind of login attempts (see the limiter).
const LOGIN_ATTEMPT: &str = "login-failure";
/// The `auth_records` kind of logged-out sessions.
const REVOKED_SESSION: &str = "revoked-session";

/// One login attempt's row in `auth_records`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttemptKey {
    pub subject: String,
    pub at: DateTime<Utc>,
    pub id: i64,
}

impl Store {
    /// Prepares every statement over `keyspace` (a validated tenant id, safe
    /// to put in CQL).
    pub async fn prepare(session: Session, keyspace: &str) -> Result<Self, StoreError> {
        let ks = keyspace;
        let prepare = |what: &'static str, cql: String| {
            let session = &session;
            async move {
                let mut statement = prepare_statement(session, what, cql, REQUEST_TIMEOUT).await?;
                statement.set_page_size(PAGE_SIZE);
                Ok::<_, StoreError>(statement)
            }
        };
        // The registry's reads and transactions, shared with the `provision`
        // CLI (and ingest's token check).
        let gateways = prepare("list gateways", registry::list_gateways(ks)).await?;
        let gateway = prepare("read gateway", registry::gateway(ks)).await?;
        let insert_gateway = prepare("commission gateway", registry::insert_gateway(ks)).await?;
        let recommission_gateway =
            prepare("recommission gateway", registry::recommission_gateway(ks)).await?;
        let revoke_gateway = prepare("revoke gateway", registry::revoke_gateway(ks)).await?;
        let latest_all = prepare(
            "list latest",
            format!("SELECT gateway_id, last_seen, sensor, name, ts, value, unit FROM {ks}.latest"),
        )
        .await?;
        let latest_one = prepare(
            "read latest",
            format!("SELECT gateway_id, last_seen, sensor, name, ts, value, unit FROM {ks}.latest WHERE gateway_id = ?"),
        )
        .await?;
        let readings = prepare(
            "read readings",
            format!(
                "SELECT ts, sensor, name, value, unit FROM {ks}.readings \
                 WHERE gateway_id = ? AND day = ? AND ts >= ? AND ts < ?"
            ),
        )
        .await?;
        // `name` follows `sensor` in the clustering key, so restricting it
        // needs ALLOW FILTERING; the partition key is given, so the filter
        // runs within one (gateway, day) partition and saves the transfer of
        // every other value.
        let readings_named = prepare(
            "read readings by name",
            format!(
                "SELECT ts, sensor, name, value, unit FROM {ks}.readings \
                 WHERE gateway_id = ? AND day = ? AND ts >= ? AND ts < ? AND name = ? ALLOW FILTERING"
            ),
        )
        .await?;
        let settings = prepare(
            "list settings",
            format!("SELECT name, value FROM {ks}.settings"),
        )
        .await?;
        let put_setting = prepare(
            "write setting",
            format!("INSERT INTO {ks}.settings (name, value) VALUES (?, ?)"),
        )
        .await?;
        let delete_setting = prepare(
            "delete setting",
            format!("DELETE FROM {ks}.settings WHERE name = ?"),
        )
        .await?;
        let admin_user = prepare(
            "read admin user",
            format!("SELECT password_hash FROM {ks}.admin_users WHERE username = ?"),
        )
        .await?;
        let login_attempts = prepare(
            "read login attempts",
            format!(
                "SELECT at FROM {ks}.auth_records WHERE kind = '{LOGIN_ATTEMPT}' AND subject = ? \
                 AND at > ? LIMIT ?"
            ),
        )
        .await?;
        let record_login_attempt = prepare(
            "record login attempt",
            format!(
                "INSERT INTO {ks}.auth_records (kind, subject, at, id) \
                 VALUES ('{LOGIN_ATTEMPT}', ?, ?, ?) USING TTL ?"
            ),
        )
        .await?;
        let delete_login_attempt = prepare(
            "delete login attempt",
            format!(
                "DELETE FROM {ks}.auth_records WHERE kind = '{LOGIN_ATTEMPT}' AND subject = ? \
                 AND at = ? AND id = ?"
            ),
        )
        .await?;
        let clear_login_attempts = prepare(
            "clear login attempts",
            format!("DELETE FROM {ks}.auth_records WHERE kind = '{LOGIN_ATTEMPT}' AND subject = ?"),
        )
        .await?;
        let revoke_session = prepare(
            "revoke session",
            format!(
                "INSERT INTO {ks}.auth_records (kind, subject, at, id) \
                 VALUES ('{REVOKED_SESSION}', ?, ?, 0) USING TTL ?"
            ),
        )
        .await?;
        let session_revoked = prepare(
            "read session revocation",
            format!(
                "SELECT at FROM {ks}.auth_records WHERE kind = '{REVOKED_SESSION}' AND subject = ? LIMIT 1"
            ),
        )
        .await?;
        let mut health = prepare(
            "health check",
            format!("SELECT value FROM {ks}.settings WHERE name = ?"),
        )
        .await?;
        health.set_request_timeout(Some(Duration::from_secs(3)));
        Ok(Store {
            session,
            gateways,
            gateway,
            insert_gateway,
            recommission_gateway,
            revoke_gateway,
            latest_all,
            latest_one,
            readings,
            readings_named,
            settings,
            put_setting,
            delete_setting,
            admin_user,
            login_attempts,
            record_login_attempt,
            delete_login_attempt,
            clear_login_attempts,
            revoke_session,
            session_revoked,
            health,
        })
    }

    pub fn session(&self) -> &Session {
        &self.session
    }

    /// The prepared read of one value name in a `(gateway, day)` partition
    /// ([`tenant_schema::energy::select_named_samples`]), for the shared
    /// report read [`tenant_schema::energy::read_daily_rows`].
    pub fn readings_named(&self) -> &PreparedStatement {
        &self.readings_named
    }

    /// Whether the tenant keyspace answers a read.
    pub async fn ping(&self) -> Result<(), StoreError> {
        self.session
            .execute_unpaged(&self.health, (tenant_schema::SCHEMA_VERSION_SETTING,))
            .await
            .map(|_| ())
            .map_err(query_err("health check"))
    }

    /// The argon2 hash of an admin user's password, if the user exists.
    pub async fn password_hash(&self, username: &str) -> Result<Option<String>, StoreError> {
        let what = "read admin user";
        let result = self
            .session
            .execute_unpaged(&self.admin_user, (username,))
            .await
            .map_err(query_err(what))?
            .into_rows_result()
            .map_err(query_err(what))?;
        let row = result
            .maybe_first_row::<(Option<String>,)>()
            .map_err(query_err(what))?;
        Ok(row.and_then(|(hash,)| hash))
    }

    /// The times of the login attempts recorded for `subject` after
    /// `since`, newest first, at most `limit`.
    pub async fn login_attempts(
        &self,
        subject: &str,
        since: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<DateTime<Utc>>, StoreError> {
        let what = "read login attempts";
        let limit = i32::try_from(limit).unwrap_or(i32::MAX);
        let result = self
            .session
            .execute_unpaged(&self.login_attempts, (subject, since, limit))
            .await
            .map_err(query_err(what))?
            .into_rows_result()
            .map_err(query_err(what))?;
        result
            .rows::<(DateTime<Utc>,)>()
            .map_err(query_err(what))?
            .map(|row| row.map(|(at,)| at).map_err(query_err(what)))
            .collect()
    }

    /// Records a login attempt; it expires after `ttl`.
    pub async fn record_login_attempt(
        &self,
        key: &AttemptKey,
        ttl: Duration,
    ) -> Result<(), StoreError> {
        self.session
            .execute_unpaged(
                &self.record_login_attempt,
                (&key.subject, key.at, key.id, ttl_seconds(ttl)),
            )
            .await
            .map(|_| ())
            .map_err(query_err("record login attempt"))
    }

    /// Deletes one recorded login attempt.
    pub async fn delete_login_attempt(&self, key: &AttemptKey) -> Result<(), StoreError> {
        self.session
            .execute_unpaged(&self.delete_login_attempt, (&key.subject, key.at, key.id))
            .await
            .map(|_| ())
            .map_err(query_err("delete login attempt"))
    }

    /// Deletes every recorded login attempt of `subject`.
    pub async fn clear_login_attempts(&self, subject: &str) -> Result<(), StoreError> {
        self.session
            .execute_unpaged(&self.clear_login_attempts, (subject,))
            .await
            .map(|_| ())
            .map_err(query_err("clear login attempts"))
    }

    /// Records that the session with `fingerprint` was logged out; the
    /// record expires after `ttl` (when the session would have).
    pub async fn revoke_session(
        &self,
        fingerprint: &str,
        now: DateTime<Utc>,
        ttl: Duration,
    ) -> Result<(), StoreError> {
        self.session
            .execute_unpaged(&self.revoke_session, (fingerprint, now, ttl_seconds(ttl)))
            .await
            .map(|_| ())
            .map_err(query_err("revoke session"))
    }

    /// Whether the session with `fingerprint` was logged out.
    pub async fn session_revoked(&self, fingerprint: &str) -> Result<bool, StoreError> {
        let what = "read session revocation";
        let result = self
            .session
            .execute_unpaged(&self.session_revoked, (fingerprint,))
            .await
            .map_err(query_err(what))?
            .into_rows_result()
            .map_err(query_err(what))?;
        Ok(result.rows_num() > 0)
    }

    /// Every row of a paged query, typed.
    async fn collect<R>(
        &self,
        what: &'static str,
        statement: &PreparedStatement,
        values: impl scylla::serialize::row::SerializeRow,
    ) -> Result<Vec<R>, StoreError>
    where
        R: for<'f, 'm> scylla::deserialize::row::DeserializeRow<'f, 'm> + Send + 'static,
    {
        self.session
            .execute_iter(statement.clone(), values)
            .await
            .map_err(query_err(what))?
            .rows_stream::<R>()
            .map_err(query_err(what))?
            .try_collect()
            .await
            .map_err(query_err(what))
    }

    /// Every commissioned gateway, sorted by id.
    pub async fn gateways(&self) -> Result<Vec<GatewayRecord>, StoreError> {
        let rows: Vec<GatewayRow> = self.collect("list gateways", &self.gateways, ()).await?;
        let mut out: Vec<GatewayRecord> = rows.into_iter().map(gateway_record).collect();
        out.sort_by(|a, b| a.gateway_id.cmp(&b.gateway_id));
        Ok(out)
    }

    /// One commissioned gateway.
    pub async fn gateway(&self, gateway_id: &str) -> Result<Option<GatewayRecord>, StoreError> {
        let rows: Vec<GatewayRow> = self
            .collect("read gateway", &self.gateway, (gateway_id,))
            .await?;
        Ok(rows.into_iter().next().map(gateway_record))
    }

    /// Stores a new gateway with the hash of its token, or gives a revoked
    /// one a new token. A gateway with a valid token is left alone.
    pub async fn commission(
        &self,
        gateway_id: &str,
        token_hash: &str,
        display_name: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<Commissioned, StoreError> {
        let what = "commission gateway";
        let result = self
            .session
            .execute_unpaged(
                &self.insert_gateway,
                (gateway_id, token_hash, display_name, now),
            )
            .await
            .map_err(query_err(what))?;
        if lwt_applied(result, what)? {
            return Ok(Commissioned::Created);
        }
        let what = "recommission gateway";
        let result = self
            .session
            .execute_unpaged(
                &self.recommission_gateway,
                (token_hash, display_name, now, gateway_id),
            )
            .await
            .map_err(query_err(what))?;
        Ok(if lwt_applied(result, what)? {
            Commissioned::Created
        } else {
            Commissioned::AlreadyActive
        })
    }

    /// Revokes a gateway's token (the hash is deleted). `false` when there
    /// is no such gateway.
    pub async fn revoke(&self, gateway_id: &str, now: DateTime<Utc>) -> Result<bool, StoreError> {
        let what = "revoke gateway";
        let result = self
            .session
            .execute_unpaged(&self.revoke_gateway, (now, gateway_id))
            .await
            .map_err(query_err(what))?;
        lwt_applied(result, what)
    }

    /// What `latest` holds, per gateway.
    pub async fn latest_all(&self) -> Result<BTreeMap<String, LatestRecord>, StoreError> {
        let rows: Vec<LatestRow> = self.collect("list latest", &self.latest_all, ()).await?;
        Ok(group_latest(rows))
    }

    /// What `latest` holds about one gateway.
    pub async fn latest_one(&self, gateway_id: &str) -> Result<LatestRecord, StoreError> {
        let rows: Vec<LatestRow> = self
            .collect("read latest", &self.latest_one, (gateway_id,))
            .await?;
        Ok(group_latest(rows).into_values().next().unwrap_or_default())
    }

    /// Calls `f` with every value of `gateway_id` in the partition `day`
    /// whose time is in `[from, to)`, newest first; only values called
    /// `name` if given.
    pub async fn for_each_sample(
        &self,
        gateway_id: &str,
        day: NaiveDate,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        name: Option<&str>,
        mut f: impl FnMut(Sample),
    ) -> Result<(), StoreError> {
        type R = (DateTime<Utc>, String, String, Option<f64>, Option<String>);
        let what = "read readings";
        let pager = match name {
            Some(name) => self
                .session
                .execute_iter(
                    self.readings_named.clone(),
                    (gateway_id, day, from, to, name),
                )
                .await
                .map_err(query_err(what))?,
            None => self
                .session
                .execute_iter(self.readings.clone(), (gateway_id, day, from, to))
                .await
                .map_err(query_err(what))?,
        };
        let mut rows = pager.rows_stream::<R>().map_err(query_err(what))?;
        while let Some((ts, sensor, name, value, unit)) =
            rows.try_next().await.map_err(query_err(what))?
        {
            if let Some(value) = value {
                f(Sample {
                    ts,
                    sensor,
                    name,
                    value,
                    unit: unit.unwrap_or_default(),
                });
            }
        }
        Ok(())
    }

    /// Every stored setting.
    pub async fn settings(&self) -> Result<HashMap<String, String>, StoreError> {
        let rows: Vec<(String, Option<String>)> =
            self.collect("list settings", &self.settings, ()).await?;
        Ok(rows
            .into_iter()
            .filter_map(|(k, v)| v.map(|v| (k, v)))
            .collect())
    }

    /// Writes (or, for `None`, deletes) settings.
    pub async fn put_settings(&self, pairs: &[(&str, Option<String>)]) -> Result<(), StoreError> {
        for (name, value) in pairs {
            match value {
                Some(value) => self
                    .session
                    .execute_unpaged(&self.put_setting, (name, value))
                    .await
                    .map(|_| ())
                    .map_err(query_err("write setting"))?,
                None => self
                    .session
                    .execute_unpaged(&self.delete_setting, (name,))
                    .await
                    .map(|_| ())
                    .map_err(query_err("delete setting"))?,
            }
        }
        Ok(())
    }
}

/// A TTL in whole seconds for CQL: at least 1 (0 would mean "no TTL").
fn ttl_seconds(ttl: Duration) -> i32 {
    i32::try_from(ttl.as_secs().max(1)).unwrap_or(i32::MAX)
}

/// A row of `latest` as selected.
type LatestRow = (
    String,
    Option<DateTime<Utc>>,
    Option<String>,
    Option<String>,
    Option<DateTime<Utc>>,
    Option<f64>,
    Option<String>,
);

fn gateway_record(row: GatewayRow) -> GatewayRecord {
    let entry = GatewayEntry::from_row(row);
    GatewayRecord {
        has_token: entry.has_token_hash(),
        gateway_id: entry.gateway_id,
        display_name: entry.display_name,
        created_at: entry.created_at,
        revoked_at: entry.revoked_at,
    }
}

fn group_latest(rows: Vec<LatestRow>) -> BTreeMap<String, LatestRecord> {
    let mut out: BTreeMap<String, LatestRecord> = BTreeMap::new();
    for (gateway_id, last_seen, sensor, name, ts, value, unit) in rows {
        let record = out.entry(gateway_id).or_default();
        if last_seen.is_some() {
            record.last_seen = last_seen;
        }
        // A partition with only its static column set has one row whose
        // clustering columns are null.
        if let (Some(sensor), Some(name)) = (sensor, name) {
            record.values.push(LatestValue {
                sensor,
                name,
                ts,
                value,
                unit,
            });
        }
    }
    out
}

/// Whether a lightweight transaction was applied.
fn lwt_applied(
    result: scylla::response::query_result::QueryResult,
    what: &'static str,
) -> Result<bool, StoreError> {
    registry::lwt_applied(result).map_err(query_err(what))
}
