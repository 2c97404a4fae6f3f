//! Writing frames to the tenant keyspace: prepared statements, one unlogged
//! batch per frame (or, for a frame too big for one, one single-partition
//! batch per partition touched), and a semaphore that bounds how many frames
//! are written at once across all connections.
//!
//! A frame's rows go to `readings` (partitioned by gateway and UTC day) and
//! to `latest` (partitioned by gateway; only the newest value per sensor
//! and name of the frame, written `USING TIMESTAMP` the reading's time so a
//! late, older reading never overwrites a newer one). `readings` rows carry
//! the reading's time as their write time too, so a resent frame rewrites
//! exactly the same cells: replays are idempotent. `last_seen` (a static
//! column of `latest`) is written with the server's clock.
//!
//! [`Store::write_frame`] returns only after every statement of the frame
//! succeeded: that is when the frame may be acked.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, NaiveDate, Utc};
use scylla::client::session::Session;
use scylla::errors::ExecutionError;
use scylla::serialize::row::SerializeRow;
use scylla::statement::batch::{Batch, BatchType};
use scylla::statement::prepared::PreparedStatement;
use scylla::value::MaybeUnset;
use tenant_common::{prepare_statement, PrepareFailed};
use tenant_schema::model::GatewayId;
use tokio::sync::Semaphore;

use crate::protocol::{DataFrame, Reading};

/// How long one statement may take before it counts as failed.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// Frames estimated at most this big are written as one unlogged batch
/// across their partitions. Cassandra logs a warning for a batch that spans
/// partitions above 5 KiB (`batch_size_warn_threshold`) and refuses it above
/// 50 KiB; bigger frames go as one single-partition batch per partition,
/// which those thresholds do not apply to.
pub const ONE_REQUEST_BYTES: usize = 4 * 1024;

/// Why the store could not prepare, read or write.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error(transparent)]
    Prepare(#[from] PrepareFailed),
    #[error("cannot read gateway {gateway}: {source}")]
    ReadGateway {
        gateway: String,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    #[error("cannot write to {table} for gateway {gateway}: {source}")]
    Write {
        table: &'static str,
        gateway: String,
        #[source]
        source: Box<ExecutionError>,
    },
    #[error("cassandra does not answer: {0}")]
    Ping(String),
}

/// A gateway's row in `gateways`, as far as authentication needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GatewayRecord {
    pub token_hash: Option<String>,
    pub revoked: bool,
}

/// The tenant keyspace, seen by ingest.
pub struct Store {
    session: Arc<Session>,
    insert_reading: PreparedStatement,
    insert_latest: PreparedStatement,
    touch_gateway: PreparedStatement,
    select_gateway: PreparedStatement,
    ping: PreparedStatement,
    permits: Arc<Semaphore>,
    write_concurrency: usize,
}

type ReadingRow<'a> = (
    &'a str,
    NaiveDate,
    DateTime<Utc>,
    &'a str,
    &'a str,
    f64,
    MaybeUnset<&'a str>,
    i64,
    i64,
);

type LatestRow<'a> = (
    &'a str,
    &'a str,
    &'a str,
    DateTime<Utc>,
    f64,
    MaybeUnset<&'a str>,
    i64,
);

impl Store {
    /// Prepares every statement on `keyspace`. `write_concurrency` bounds
    /// the frames written at once (at least 1).
    pub async fn prepare(
        session: Arc<Session>,
        keyspace: &str,
        write_concurrency: usize,
    ) -> Result<Self, StoreError> {
        let prepare = |what: &'static str, cql: String| {
            prepare_statement(&session, what, cql, REQUEST_TIMEOUT)
        };
        let insert_reading = prepare(
            "insert reading",
            format!(
                "INSERT INTO {keyspace}.readings (gateway_id, day, ts, sensor, name, value, unit, seq) \
                 VALUES (?, ?, ?, ?, ?, ?, ?, ?) USING TIMESTAMP ?"
            ),
        )
        .await?;
        let insert_latest = prepare(
            "insert latest",
            format!(
                "INSERT INTO {keyspace}.latest (gateway_id, sensor, name, ts, value, unit) \
                 VALUES (?, ?, ?, ?, ?, ?) USING TIMESTAMP ?"
            ),
        )
        .await?;
        let touch_gateway = prepare(
            "update last_seen",
            format!("UPDATE {keyspace}.latest SET last_seen = ? WHERE gateway_id = ?"),
        )
        .await?;
        let mut select_gateway = prepare(
            "select gateway",
            format!("SELECT token_hash, revoked_at FROM {keyspace}.gateways WHERE gateway_id = ?"),
        )
        .await?;
        select_gateway.set_request_timeout(Some(Duration::from_secs(5)));
        let mut ping = prepare(
            "ping",
            format!("SELECT name FROM {keyspace}.settings LIMIT 1"),
        )
        .await?;
        ping.set_request_timeout(Some(Duration::from_secs(2)));
        let write_concurrency = write_concurrency.max(1);
        Ok(Self {
            session,
            insert_reading,
            insert_latest,
            touch_gateway,
            select_gateway,
            ping,
            permits: Arc::new(Semaphore::new(write_concurrency)),
            write_concurrency,
        })
    }

    /// The bound on frames written at once.
    pub fn write_concurrency(&self) -> usize {
        self.write_concurrency
    }

    /// The gateway's stored token hash and whether it is revoked; `None` if
    /// no such gateway was commissioned.
    pub async fn gateway(&self, id: &GatewayId) -> Result<Option<GatewayRecord>, StoreError> {
        let err = |source: Box<dyn std::error::Error + Send + Sync>| StoreError::ReadGateway {
            gateway: id.to_string(),
            source,
        };
        let result = self
            .session
            .execute_unpaged(&self.select_gateway, (id.as_str(),))
            .await
            .map_err(|e| err(Box::new(e)))?;
        let rows = result.into_rows_result().map_err(|e| err(Box::new(e)))?;
        let row = rows
            .maybe_first_row::<(Option<String>, Option<DateTime<Utc>>)>()
            .map_err(|e| err(Box::new(e)))?;
        Ok(row.map(|(token_hash, revoked_at)| GatewayRecord {
            token_hash,
            revoked: revoked_at.is_some(),
        }))
    }

    /// Whether Cassandra answers a read on the tenant keyspace.
    pub async fn ping(&self) -> Result<(), StoreError> {
        self.session
            .execute_unpaged(&self.ping, ())
            .await
            .map(|_| ())
            .map_err(|e| StoreError::Ping(e.to_string()))
    }

    /// Writes every row of `frame` (and, if `touch`, the gateway's
    /// `last_seen`); Ok only when all of it is written. Waits for a write
    /// permit first.
    pub async fn write_frame(
        &self,
        gateway: &GatewayId,
        frame: &DataFrame,
        touch: bool,
    ) -> Result<(), StoreError> {
        let _permit = self
            .permits
            .acquire()
            .await
            .expect("the write semaphore is never closed");
        let gw = gateway.as_str();

        // readings: one batch per (gateway, day) partition
        let mut by_day: HashMap<NaiveDate, Vec<ReadingRow<'_>>> = HashMap::new();
        for reading in &frame.readings {
            let rows = by_day.entry(reading.day()).or_default();
            let micros = reading.ts.timestamp_micros();
            for v in &reading.values {
                rows.push((
                    gw,
                    reading.day(),
                    reading.ts,
                    &reading.sensor,
                    &v.name,
                    v.value,
                    unit(&v.unit),
                    frame.seq,
                    micros,
                ));
            }
        }
        let latest = newest_per_key(&frame.readings);
        let latest_rows: Vec<LatestRow<'_>> = latest
            .iter()
            .map(|(reading, v)| {
                (
                    gw,
                    reading.sensor.as_str(),
                    v.name.as_str(),
                    reading.ts,
                    v.value,
                    unit(&v.unit),
                    reading.ts.timestamp_micros(),
                )
            })
            .collect();

        let write_err = |table: &'static str| {
            move |source| StoreError::Write {
                table,
                gateway: gw.to_owned(),
                source: Box::new(source),
            }
        };
        let touch_row = touch.then(|| (Utc::now(), gw));

        // A small frame is one request: fewer round trips and far less work
        // for Cassandra per reading, which is most of ingest's cost.
        if estimated_bytes(frame) <= ONE_REQUEST_BYTES {
            let mut batch = Batch::new(BatchType::Unlogged);
            let mut values: Vec<&(dyn SerializeRow + Sync)> = Vec::new();
            for row in by_day.values().flatten() {
                batch.append_statement(self.insert_reading.clone());
                values.push(row);
            }
            for row in &latest_rows {
                batch.append_statement(self.insert_latest.clone());
                values.push(row);
            }
            if let Some(row) = &touch_row {
                batch.append_statement(self.touch_gateway.clone());
                values.push(row);
            }
            batch.set_request_timeout(Some(REQUEST_TIMEOUT));
            return self
                .session
                .batch(&batch, values)
                .await
                .map(|_| ())
                .map_err(write_err("readings and latest"));
        }

        // A big one: one single-partition batch per partition, at once.
        let readings = futures::future::try_join_all(
            by_day
                .into_values()
                .map(|rows| self.write_rows(&self.insert_reading, rows)),
        );
        let latest = self.write_rows(&self.insert_latest, latest_rows);
        let touch = async {
            match touch_row {
                Some(row) => self
                    .session
                    .execute_unpaged(&self.touch_gateway, row)
                    .await
                    .map(|_| ()),
                None => Ok(()),
            }
        };
        let (readings, latest, touch) = tokio::join!(readings, latest, touch);
        readings.map_err(write_err("readings"))?;
        latest.map_err(write_err("latest"))?;
        touch.map_err(write_err("latest.last_seen"))?;
        Ok(())
    }

    /// One statement for one row; one unlogged batch for several rows (all
    /// of one partition, so the batch is applied atomically and cheaply).
    async fn write_rows<R>(
        &self,
        statement: &PreparedStatement,
        rows: Vec<R>,
    ) -> Result<(), ExecutionError>
    where
        R: scylla::serialize::row::SerializeRow,
    {
        match rows.len() {
            0 => Ok(()),
            1 => {
                let row = rows.into_iter().next().expect("one row");
                self.session
                    .execute_unpaged(statement, row)
                    .await
                    .map(|_| ())
            }
            n => {
                let mut batch = Batch::new(BatchType::Unlogged);
                for _ in 0..n {
                    batch.append_statement(statement.clone());
                }
                batch.set_request_timeout(Some(REQUEST_TIMEOUT));
                self.session.batch(&batch, rows).await.map(|_| ())
            }
        }
    }
}

/// An upper estimate of the bytes Cassandra counts for a frame's rows
/// (`readings` and `latest`): every string twice, and for each value its
/// fixed-size columns and a write timestamp per cell in both tables (about
/// 100 bytes, rounded up), plus the partition keys (a gateway id of at most
/// 64 bytes in up to three partitions).
pub fn estimated_bytes(frame: &DataFrame) -> usize {
    const PER_VALUE: usize = 128;
    const PER_FRAME: usize = 256;
    PER_FRAME
        + frame
            .readings
            .iter()
            .flat_map(|r| r.values.iter().map(move |v| (r, v)))
            .map(|(r, v)| {
                2 * (r.sensor.len() + v.name.len() + v.unit.as_ref().map_or(0, String::len))
                    + PER_VALUE
            })
            .sum::<usize>()
}

fn unit(unit: &Option<String>) -> MaybeUnset<&str> {
    match unit {
        Some(u) => MaybeUnset::Set(u.as_str()),
        None => MaybeUnset::Unset,
    }
}

/// The newest value per (sensor, name) among the frame's readings: what
/// `latest` needs. Ties keep the later one in the frame.
pub fn newest_per_key(readings: &[Reading]) -> Vec<(&Reading, &crate::protocol::Value)> {
    let mut newest: HashMap<(&str, &str), (&Reading, &crate::protocol::Value)> = HashMap::new();
    for reading in readings {
        for v in &reading.values {
            let key = (reading.sensor.as_str(), v.name.as_str());
            match newest.get(&key) {
                Some((old, _)) if old.ts > reading.ts => {}
                _ => {
                    newest.insert(key, (reading, v));
                }
            }
        }
    }
    let mut out: Vec<_> = newest.into_values().collect();
    out.sort_by(|a, b| (&a.0.sensor, &a.1.name).cmp(&(&b.0.sensor, &b.1.name)));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::Value;

    fn reading(ts: &str, sensor: &str, values: &[(&str, f64)]) -> Reading {
        Reading {
            ts: DateTime::parse_from_rfc3339(ts)
                .unwrap()
                .with_timezone(&Utc),
            sensor: sensor.into(),
            values: values
                .iter()
                .map(|(n, v)| Value {
                    name: (*n).into(),
                    unit: None,
                    value: *v,
                })
                .collect(),
        }
    }

    #[test]
    fn a_typical_frame_is_one_request_and_a_frame_of_hundreds_of_readings_is_not() {
        let one = DataFrame {
            seq: 1,
            readings: vec![reading(
                "2026-01-01T00:00:10Z",
                "inverter-1",
                &[("power", 1.0), ("voltage", 2.0)],
            )],
        };
        assert!(estimated_bytes(&one) <= ONE_REQUEST_BYTES);
        let many = DataFrame {
            seq: 2,
            readings: (0..100)
                .map(|_| reading("2026-01-01T00:00:10Z", "inverter-1", &[("power", 1.0)]))
                .collect(),
        };
        assert!(estimated_bytes(&many) > ONE_REQUEST_BYTES);
    }

    #[test]
    fn latest_keeps_only_the_newest_value_per_sensor_and_name() {
        let readings = vec![
            reading("2026-01-01T00:00:10Z", "a", &[("p", 1.0), ("v", 2.0)]),
            reading("2026-01-01T00:00:05Z", "a", &[("p", 3.0)]),
            reading("2026-01-01T00:00:20Z", "b", &[("p", 4.0)]),
            reading("2026-01-01T00:00:30Z", "a", &[("v", 5.0)]),
        ];
        let newest: Vec<(String, String, f64)> = newest_per_key(&readings)
            .into_iter()
            .map(|(r, v)| (r.sensor.clone(), v.name.clone(), v.value))
            .collect();
        assert_eq!(
            newest,
            vec![
                ("a".into(), "p".into(), 1.0),
                ("a".into(), "v".into(), 5.0),
                ("b".into(), "p".into(), 4.0),
            ]
        );
    }
}
