//! The notifier's Cassandra executor: the statements of [`crate::schema`]
//! (and the registry's, the settings', the report's) prepared once, every
//! read paged, every write that must land with another one a logged batch.
//! Every request is counted in [`Metrics::cassandra_requests_total`] (a
//! paged read counts one request per page), which is how the benchmark
//! shows that a check costs in proportion to gateways, not readings.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, NaiveDate, Utc};
use futures::TryStreamExt;
use scylla::client::session::Session;
use scylla::statement::batch::{Batch, BatchType};
use scylla::statement::prepared::PreparedStatement;
use scylla::value::{CqlTimestamp, CqlValue};
use tenant_common::{prepare_statement, PrepareFailed};
use tenant_schema::energy::{self, DailyRow};
use tenant_schema::registry::{self, GatewayEntry, GatewayRow};

use crate::check::{LatestRow, PairKey};
use crate::evaluate::PairState;
use crate::metrics::Metrics;
use crate::outbox::OutboxEntry;
use crate::rules::{AlertRule, RuleId};
use crate::store::{kind, ReportRequest, NO_BUCKET, PENDING};

/// The request timeout of every statement.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// The driver's page size: a paged read of `n` rows is `1 + n / PAGE` requests.
const PAGE: u64 = 5000;

/// A request to Cassandra that failed.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error(transparent)]
    Prepare(#[from] PrepareFailed),
    #[error("cannot {what}: {source}")]
    Query {
        what: &'static str,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    #[error("stored {kind} row {id:?} is unreadable: {reason}")]
    Row {
        kind: &'static str,
        id: String,
        reason: String,
    },
}

/// The report row of the `state` kind: the newest day reported.
pub const REPORT_STATE_ID: &str = "report";

#[derive(serde::Serialize, serde::Deserialize)]
struct ReportState {
    day: NaiveDate,
}

/// A mail of the outbox's pending partition.
#[derive(Debug, Clone, PartialEq)]
pub struct PendingMail {
    pub entry: OutboxEntry,
    pub message: Vec<u8>,
}

/// One write of a batch.
#[derive(Debug, Clone)]
pub enum Write {
    /// A pair's state, or the report's bookkeeping.
    State { id: String, body: String },
    /// A mail of the pending partition.
    Pending {
        entry: OutboxEntry,
        message: Vec<u8>,
        due: DateTime<Utc>,
    },
    /// A finished mail's record for its UTC day.
    Sent {
        day: NaiveDate,
        entry: OutboxEntry,
        message: Vec<u8>,
    },
    /// Deletes one row.
    Delete {
        kind: &'static str,
        bucket: String,
        id: String,
    },
}

impl Write {
    pub fn state(key: &PairKey, state: &PairState) -> Write {
        Write::State {
            id: crate::schema::state_id(key.rule_id.as_str(), &key.gateway_id),
            // Plain data with string keys: serializing cannot fail.
            body: serde_json::to_string(state).unwrap_or_default(),
        }
    }

    pub fn reported(day: NaiveDate) -> Write {
        Write::State {
            id: REPORT_STATE_ID.to_owned(),
            body: serde_json::to_string(&ReportState { day }).unwrap_or_default(),
        }
    }
}

fn ts(at: DateTime<Utc>) -> CqlValue {
    CqlValue::Timestamp(CqlTimestamp(at.timestamp_millis()))
}

fn text(s: &str) -> CqlValue {
    CqlValue::Text(s.to_owned())
}

fn entry_json(entry: &OutboxEntry) -> String {
    serde_json::to_string(entry).unwrap_or_default()
}

/// The prepared statements over one tenant keyspace.
pub struct Db {
    session: Arc<Session>,
    metrics: Arc<Metrics>,
    last_seen: PreparedStatement,
    latest: PreparedStatement,
    latest_one: PreparedStatement,
    registry: PreparedStatement,
    settings: PreparedStatement,
    kind: PreparedStatement,
    pending: PreparedStatement,
    upsert_row: PreparedStatement,
    upsert_body: PreparedStatement,
    insert_sent: PreparedStatement,
    delete_row: PreparedStatement,
    power: PreparedStatement,
}

impl Db {
    pub async fn prepare(
        session: Arc<Session>,
        keyspace: &str,
        metrics: Arc<Metrics>,
    ) -> Result<Self, DbError> {
        let ks = |t: &str| t.replace("{keyspace}", keyspace);
        let s = &session;
        let p = |what: &'static str, cql: String| async move {
            prepare_statement(s, what, cql, REQUEST_TIMEOUT).await
        };
        use crate::schema as q;
        let db = Db {
            last_seen: p("read last_seen", ks(q::SELECT_LAST_SEEN)).await?,
            latest: p("read latest", ks(q::SELECT_LATEST)).await?,
            latest_one: p("read latest of one gateway", ks(q::SELECT_LATEST_ONE)).await?,
            registry: p("list gateways", registry::list_gateways(keyspace)).await?,
            settings: p(
                "list settings",
                tenant_schema::settings::select_all(keyspace),
            )
            .await?,
            kind: p("read notifier rows", ks(q::SELECT_KIND)).await?,
            pending: p("read the outbox", ks(q::SELECT_PENDING)).await?,
            upsert_row: p("write an outbox row", ks(q::UPSERT_ROW)).await?,
            upsert_body: p("write a notifier row", ks(q::UPSERT_BODY)).await?,
            insert_sent: p("record a finished mail", ks(q::INSERT_SENT)).await?,
            delete_row: p("delete a notifier row", ks(q::DELETE_ROW)).await?,
            power: p("read power samples", energy::select_named_samples(keyspace)).await?,
            session: session.clone(),
            metrics: metrics.clone(),
        };
        // Twelve prepares.
        Metrics::add(&metrics.cassandra_requests_total, 12);
        Ok(db)
    }

    pub fn session(&self) -> &Session {
        &self.session
    }

    fn count(&self, n: u64) {
        Metrics::add(&self.metrics.cassandra_requests_total, n);
    }

    fn failed<E: std::error::Error + Send + Sync + 'static>(
        &self,
        what: &'static str,
    ) -> impl FnOnce(E) -> DbError + '_ {
        move |e| {
            Metrics::add(&self.metrics.cassandra_errors_total, 1);
            DbError::Query {
                what,
                source: Box::new(e),
            }
        }
    }

    async fn read<R>(
        &self,
        what: &'static str,
        statement: &PreparedStatement,
        values: impl scylla::serialize::row::SerializeRow,
    ) -> Result<Vec<R>, DbError>
    where
        R: for<'f, 'm> scylla::deserialize::row::DeserializeRow<'f, 'm> + Send + 'static,
    {
        let rows: Vec<R> = self
            .session
            .execute_iter(statement.clone(), values)
            .await
            .map_err(self.failed(what))?
            .rows_stream::<R>()
            .map_err(self.failed(what))?
            .try_collect()
            .await
            .map_err(self.failed(what))?;
        self.count(1 + rows.len() as u64 / PAGE);
        Ok(rows)
    }

    /// Whether the keyspace answers (the settings, a tiny table).
    pub async fn ping(&self) -> Result<(), DbError> {
        self.settings().await.map(|_| ())
    }

    /// The registry: `(gateway id, revoked)`.
    pub async fn registry(&self) -> Result<Vec<(String, bool)>, DbError> {
        let rows: Vec<GatewayRow> = self.read("list gateways", &self.registry, ()).await?;
        Ok(rows
            .into_iter()
            .map(GatewayEntry::from_row)
            .map(|g| {
                let revoked = g.revoked_at.is_some();
                (g.gateway_id, revoked)
            })
            .collect())
    }

    /// Every gateway's `last_seen`, as rows without values.
    pub async fn last_seen(&self) -> Result<Vec<LatestRow>, DbError> {
        let rows: Vec<(String, Option<DateTime<Utc>>)> =
            self.read("read last_seen", &self.last_seen, ()).await?;
        Ok(rows
            .into_iter()
            .map(|(gateway_id, last_seen)| LatestRow {
                gateway_id,
                last_seen,
                sensor: None,
                name: None,
                ts: None,
                value: None,
                unit: None,
            })
            .collect())
    }

    /// Every row of `latest`, or one gateway's.
    pub async fn latest(&self, gateway: Option<&str>) -> Result<Vec<LatestRow>, DbError> {
        type R = (
            String,
            Option<DateTime<Utc>>,
            Option<String>,
            Option<String>,
            Option<DateTime<Utc>>,
            Option<f64>,
            Option<String>,
        );
        let rows: Vec<R> = match gateway {
            None => self.read("read latest", &self.latest, ()).await?,
            Some(g) => self.read("read latest", &self.latest_one, (g,)).await?,
        };
        Ok(rows
            .into_iter()
            .map(
                |(gateway_id, last_seen, sensor, name, ts, value, unit)| LatestRow {
                    gateway_id,
                    last_seen,
                    sensor,
                    name,
                    ts,
                    value,
                    unit,
                },
            )
            .collect())
    }

    pub async fn settings(&self) -> Result<HashMap<String, String>, DbError> {
        let rows: Vec<(String, Option<String>)> =
            self.read("read the settings", &self.settings, ()).await?;
        Ok(rows
            .into_iter()
            .filter_map(|(k, v)| v.map(|v| (k, v)))
            .collect())
    }

    async fn bodies(
        &self,
        kind: &str,
        what: &'static str,
    ) -> Result<Vec<(String, String)>, DbError> {
        let rows: Vec<(String, Option<String>)> =
            self.read(what, &self.kind, (kind, NO_BUCKET)).await?;
        Ok(rows
            .into_iter()
            .map(|(id, body)| (id, body.unwrap_or_default()))
            .collect())
    }

    /// The rules; an unreadable one is skipped with a warning (one bad row
    /// must not stop the others).
    pub async fn rules(&self) -> Result<Vec<AlertRule>, DbError> {
        let mut rules = Vec::new();
        for (id, body) in self.bodies(kind::RULE, "read the alert rules").await? {
            match AlertRule::decode(&body) {
                Ok(rule) => rules.push(rule),
                Err(e) => tracing::warn!(rule = %id, error = %e, "skipping an unreadable rule"),
            }
        }
        rules.sort_by(|a, b| a.id.as_str().cmp(b.id.as_str()));
        Ok(rules)
    }

    /// The pairs' states and the newest day reported.
    pub async fn states(
        &self,
    ) -> Result<(BTreeMap<PairKey, PairState>, Option<NaiveDate>), DbError> {
        let mut states = BTreeMap::new();
        let mut reported = None;
        for (id, body) in self.bodies(kind::STATE, "read the alert states").await? {
            if id == REPORT_STATE_ID {
                reported = serde_json::from_str::<ReportState>(&body)
                    .ok()
                    .map(|r| r.day);
                continue;
            }
            let Some((rule, gateway)) = id.split_once('/') else {
                continue;
            };
            let row_error = |reason: String| DbError::Row {
                kind: kind::STATE,
                id: id.clone(),
                reason,
            };
            let rule_id = RuleId::parse(rule).map_err(|e| row_error(e.to_string()))?;
            let state: PairState =
                serde_json::from_str(&body).map_err(|e| row_error(e.to_string()))?;
            states.insert(
                PairKey {
                    rule_id,
                    gateway_id: gateway.to_owned(),
                },
                state,
            );
        }
        Ok((states, reported))
    }

    /// The report requests not yet taken; an unreadable one is answered
    /// with its id alone, to be deleted.
    pub async fn report_requests(&self) -> Result<Vec<Result<ReportRequest, String>>, DbError> {
        Ok(self
            .bodies(kind::REQUEST, "read the report requests")
            .await?
            .into_iter()
            .map(|(id, body)| serde_json::from_str(&body).map_err(|_| id))
            .collect())
    }

    /// The outbox's pending partition.
    pub async fn pending(&self) -> Result<Vec<PendingMail>, DbError> {
        type R = (
            String,
            Option<String>,
            Option<Vec<u8>>,
            Option<DateTime<Utc>>,
        );
        let rows: Vec<R> = self.read("read the outbox", &self.pending, ()).await?;
        let mut out = Vec::new();
        for (id, body, message, _due) in rows {
            match serde_json::from_str::<OutboxEntry>(body.as_deref().unwrap_or("")) {
                Ok(entry) => out.push(PendingMail {
                    entry,
                    message: message.unwrap_or_default(),
                }),
                Err(e) => {
                    tracing::warn!(mail = %id, error = %e, "skipping an unreadable outbox row")
                }
            }
        }
        Ok(out)
    }

    fn bind(&self, write: &Write) -> (&PreparedStatement, Vec<CqlValue>) {
        match write {
            Write::State { id, body } => (
                &self.upsert_body,
                vec![text(kind::STATE), text(NO_BUCKET), text(id), text(body)],
            ),
            Write::Pending {
                entry,
                message,
                due,
            } => (
                &self.upsert_row,
                vec![
                    text(kind::OUTBOX),
                    text(PENDING),
                    text(&entry.key),
                    text(&entry_json(entry)),
                    CqlValue::Blob(message.clone()),
                    ts(*due),
                ],
            ),
            Write::Sent {
                day,
                entry,
                message,
            } => (
                &self.insert_sent,
                vec![
                    text(&day.to_string()),
                    text(&entry.key),
                    text(&entry_json(entry)),
                    CqlValue::Blob(message.clone()),
                ],
            ),
            Write::Delete { kind, bucket, id } => {
                (&self.delete_row, vec![text(kind), text(bucket), text(id)])
            }
        }
    }

    /// Applies writes: one statement alone, several as one logged batch
    /// (all land or none).
    pub async fn apply(&self, what: &'static str, writes: &[Write]) -> Result<(), DbError> {
        match writes {
            [] => return Ok(()),
            [one] => {
                let (statement, values) = self.bind(one);
                self.session
                    .execute_unpaged(statement, values)
                    .await
                    .map_err(self.failed(what))?;
            }
            many => {
                let mut batch = Batch::new(BatchType::Logged);
                let mut values = Vec::with_capacity(many.len());
                for write in many {
                    let (statement, v) = self.bind(write);
                    batch.append_statement(statement.clone());
                    values.push(v);
                }
                batch.set_request_timeout(Some(REQUEST_TIMEOUT));
                self.session
                    .batch(&batch, values)
                    .await
                    .map_err(self.failed(what))?;
            }
        }
        self.count(1);
        Ok(())
    }

    /// The report rows of one local day (the panel's read, shared).
    pub async fn daily_rows(
        &self,
        gateway_ids: &[String],
        day: NaiveDate,
        bounds: (DateTime<Utc>, DateTime<Utc>),
    ) -> Result<Vec<DailyRow>, DbError> {
        let (rows, requests) =
            energy::read_daily_rows(&self.session, &self.power, gateway_ids, &[day], |_| bounds)
                .await
                .map_err(self.failed("read the day's power samples"))?;
        self.count(requests);
        Ok(rows)
    }
}
