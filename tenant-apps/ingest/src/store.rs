//! Writing frames to the tenant keyspace with prepared statements: one
//! unlogged batch for a frame or a group of small frames
//! ([`Store::write_frames`], what [`crate::write_queue`] sends), or, for a
//! frame too big for one request, one single-partition batch per partition
//! touched ([`Store::write_frame`]).
//!
//! A frame's rows go to `readings` (partitioned by gateway and UTC day) and
//! to `latest` (partitioned by gateway; only the newest value per gateway,
//! sensor and name among the frames written together, written `USING
//! TIMESTAMP` the reading's time so a late, older reading never overwrites a
//! newer one). `readings` rows carry the reading's time as their write time
//! too, so a resent frame rewrites exactly the same cells: replays are
//! idempotent. `last_seen` (a static column of `latest`) is written with the
//! server's clock. Cassandra merges the rows of one partition in a batch
//! into one mutation, so frames of one gateway written together cost little
//! more than one.
//!
//! A write returns only after every statement succeeded at the store's
//! write consistency ([`Store::with_write_consistency`], `LOCAL_QUORUM`
//! unless set; `INGEST_WRITE_CONSISTENCY`): that is when its frames may be
//! acked. Bounding how many writes run at once is the
//! caller's job (the write queue in ingest, the bench's floor).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, NaiveDate, Utc};
use scylla::client::session::Session;
use scylla::errors::ExecutionError;
use scylla::serialize::row::SerializeRow;
use scylla::statement::batch::{Batch, BatchType};
use scylla::statement::prepared::PreparedStatement;
use scylla::statement::Consistency;
use scylla::value::MaybeUnset;
use tenant_common::{prepare_statement, PrepareFailed};
use tenant_schema::model::GatewayId;
use tenant_schema::registry::{self, GatewayEntry, GatewayRow};

use crate::protocol::{DataFrame, Reading, Value};

/// How long one statement may take before it counts as failed.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// Frames estimated at most this big may be written as one unlogged batch
/// across their partitions, alone or with others; bigger frames go as one
/// single-partition batch per partition, which Cassandra's batch size
/// thresholds do not apply to.
pub const ONE_REQUEST_BYTES: usize = 4 * 1024;

/// The most (estimated) bytes one batch of several frames may carry.
/// Cassandra refuses a batch across partitions above 50 KiB
/// (`batch_size_fail_threshold`); the node's image raises the 5 KiB warning
/// threshold to 40 KiB so that these batches are not logged.
pub const MAX_BATCH_BYTES: usize = 32 * 1024;

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
    #[error("cannot write {frames} frames of {gateways} gateways: {source}")]
    WriteBatch {
        frames: usize,
        gateways: usize,
        #[source]
        source: Box<ExecutionError>,
    },
    #[error("cannot read the gateways table: {source}")]
    ReadGateways {
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    #[error("cassandra does not answer: {0}")]
    Ping(String),
}

/// The tenant keyspace, seen by ingest.
pub struct Store {
    session: Arc<Session>,
    insert_reading: PreparedStatement,
    insert_latest: PreparedStatement,
    touch_gateway: PreparedStatement,
    select_gateway: PreparedStatement,
    select_gateways: PreparedStatement,
    ping: PreparedStatement,
    write_consistency: Consistency,
}

pub use tenant_schema::cql::parse_consistency;

/// One frame to write: whose it is, and whether to set its gateway's
/// `last_seen` too.
#[derive(Debug, Clone, Copy)]
pub struct FrameWrite<'a> {
    pub gateway: &'a GatewayId,
    pub frame: &'a DataFrame,
    pub touch: bool,
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

type TouchRow<'a> = (DateTime<Utc>, &'a str);

/// The rows of frames written together.
#[derive(Default)]
struct Rows<'a> {
    /// `readings`, by (gateway, day) partition
    readings: HashMap<(&'a str, NaiveDate), Vec<ReadingRow<'a>>>,
    latest: Vec<LatestRow<'a>>,
    touches: Vec<TouchRow<'a>>,
}

impl<'a> Rows<'a> {
    fn of(frames: &[FrameWrite<'a>]) -> Self {
        let mut rows = Rows::default();
        for w in frames {
            let gw = w.gateway.as_str();
            for reading in &w.frame.readings {
                let day = reading.day();
                let micros = reading.ts.timestamp_micros();
                let partition = rows.readings.entry((gw, day)).or_default();
                for v in &reading.values {
                    partition.push((
                        gw,
                        day,
                        reading.ts,
                        &reading.sensor,
                        &v.name,
                        v.value,
                        unit(&v.unit),
                        w.frame.seq,
                        micros,
                    ));
                }
            }
            if w.touch && !rows.touches.iter().any(|(_, g)| *g == gw) {
                rows.touches.push((Utc::now(), gw));
            }
        }
        let readings = frames
            .iter()
            .flat_map(|w| w.frame.readings.iter().map(|r| (w.gateway.as_str(), r)));
        rows.latest = newest_per_key(readings)
            .into_iter()
            .map(|(gw, reading, v)| {
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
        rows
    }
}

impl Store {
    /// Prepares every statement on `keyspace`.
    pub async fn prepare(session: Arc<Session>, keyspace: &str) -> Result<Self, StoreError> {
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
        let mut select_gateway = prepare("select gateway", registry::gateway(keyspace)).await?;
        select_gateway.set_request_timeout(Some(Duration::from_secs(5)));
        let mut select_gateways =
            prepare("select gateways", registry::list_gateways(keyspace)).await?;
        select_gateways.set_page_size(1000);
        select_gateways.set_request_timeout(Some(Duration::from_secs(5)));
        let mut ping = prepare(
            "ping",
            format!("SELECT name FROM {keyspace}.settings LIMIT 1"),
        )
        .await?;
        ping.set_request_timeout(Some(Duration::from_secs(2)));
        Ok(Self {
            session,
            insert_reading,
            insert_latest,
            touch_gateway,
            select_gateway,
            select_gateways,
            ping,
            write_consistency: Consistency::LocalQuorum,
        })
    }

    /// The same store writing at `consistency`: a frame is acked once that
    /// many replicas hold it.
    pub fn with_write_consistency(self, consistency: Consistency) -> Self {
        Store {
            write_consistency: consistency,
            ..self
        }
    }

    /// The consistency every write is made at.
    pub fn write_consistency(&self) -> Consistency {
        self.write_consistency
    }

    /// The gateway's row in the registry; `None` if no such gateway was
    /// commissioned.
    pub async fn gateway(&self, id: &GatewayId) -> Result<Option<GatewayEntry>, StoreError> {
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
            .maybe_first_row::<GatewayRow>()
            .map_err(|e| err(Box::new(e)))?;
        Ok(row.map(GatewayEntry::from_row))
    }

    /// Every commissioned gateway's row, by id: one paged read of the whole
    /// (small) `gateways` table.
    pub async fn gateway_records(&self) -> Result<HashMap<String, GatewayEntry>, StoreError> {
        use futures::TryStreamExt;
        let err =
            |source: Box<dyn std::error::Error + Send + Sync>| StoreError::ReadGateways { source };
        self.session
            .execute_iter(self.select_gateways.clone(), ())
            .await
            .map_err(|e| err(Box::new(e)))?
            .rows_stream::<GatewayRow>()
            .map_err(|e| err(Box::new(e)))?
            .map_ok(|row| {
                let entry = GatewayEntry::from_row(row);
                (entry.gateway_id.clone(), entry)
            })
            .try_collect()
            .await
            .map_err(|e| err(Box::new(e)))
    }

    /// Whether Cassandra answers a read on the tenant keyspace.
    pub async fn ping(&self) -> Result<(), StoreError> {
        self.session
            .execute_unpaged(&self.ping, ())
            .await
            .map(|_| ())
            .map_err(|e| StoreError::Ping(e.to_string()))
    }

    /// Writes every row of one frame (and, if `touch`, the gateway's
    /// `last_seen`); Ok only when all of it is written. A small frame is one
    /// request ([`Store::write_frames`]); a big one is one single-partition
    /// batch per partition, sent at once.
    pub async fn write_frame(
        &self,
        gateway: &GatewayId,
        frame: &DataFrame,
        touch: bool,
    ) -> Result<(), StoreError> {
        let one = [FrameWrite {
            gateway,
            frame,
            touch,
        }];
        if estimated_bytes(frame) <= ONE_REQUEST_BYTES {
            return self.write_frames(&one).await;
        }
        let rows = Rows::of(&one);
        let write_err = |table: &'static str| {
            move |source| StoreError::Write {
                table,
                gateway: gateway.to_string(),
                source: Box::new(source),
            }
        };
        let readings = futures::future::try_join_all(
            rows.readings
                .into_values()
                .map(|partition| self.write_rows(&self.insert_reading, partition)),
        );
        let latest = self.write_rows(&self.insert_latest, rows.latest);
        let touch = self.write_rows(&self.touch_gateway, rows.touches);
        let (readings, latest, touch) = tokio::join!(readings, latest, touch);
        readings.map_err(write_err("readings"))?;
        latest.map_err(write_err("latest"))?;
        touch.map_err(write_err("latest.last_seen"))?;
        Ok(())
    }

    /// Writes the rows of `frames` as one unlogged batch; Ok only when all
    /// of it is written. The frames must be small together (at most
    /// [`MAX_BATCH_BYTES`] by [`estimated_bytes`]): one request carries far
    /// less work for Cassandra per reading than one per frame, which is most
    /// of ingest's cost.
    pub async fn write_frames(&self, frames: &[FrameWrite<'_>]) -> Result<(), StoreError> {
        let rows = Rows::of(frames);
        let mut batch = Batch::new(BatchType::Unlogged);
        let mut values: Vec<&(dyn SerializeRow + Sync)> = Vec::new();
        for row in rows.readings.values().flatten() {
            batch.append_statement(self.insert_reading.clone());
            values.push(row);
        }
        for row in &rows.latest {
            batch.append_statement(self.insert_latest.clone());
            values.push(row);
        }
        for row in &rows.touches {
            batch.append_statement(self.touch_gateway.clone());
            values.push(row);
        }
        batch.set_request_timeout(Some(REQUEST_TIMEOUT));
        batch.set_consistency(self.write_consistency);
        let result = self.session.batch(&batch, values).await;
        result.map(|_| ()).map_err(|source| match frames {
            [one] => StoreError::Write {
                table: "readings and latest",
                gateway: one.gateway.to_string(),
                source: Box::new(source),
            },
            _ => StoreError::WriteBatch {
                frames: frames.len(),
                gateways: distinct_gateways(frames),
                source: Box::new(source),
            },
        })
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
                let mut statement = statement.clone();
                statement.set_consistency(self.write_consistency);
                self.session
                    .execute_unpaged(&statement, row)
                    .await
                    .map(|_| ())
            }
            n => {
                let mut batch = Batch::new(BatchType::Unlogged);
                for _ in 0..n {
                    batch.append_statement(statement.clone());
                }
                batch.set_request_timeout(Some(REQUEST_TIMEOUT));
                batch.set_consistency(self.write_consistency);
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

fn distinct_gateways(frames: &[FrameWrite<'_>]) -> usize {
    let mut ids: Vec<&str> = frames.iter().map(|w| w.gateway.as_str()).collect();
    ids.sort_unstable();
    ids.dedup();
    ids.len()
}

fn unit(unit: &Option<String>) -> MaybeUnset<&str> {
    match unit {
        Some(u) => MaybeUnset::Set(u.as_str()),
        None => MaybeUnset::Unset,
    }
}

/// The newest value per (gateway, sensor, name) among `readings`: what
/// `latest` needs. Ties keep the later one.
pub fn newest_per_key<'a>(
    readings: impl IntoIterator<Item = (&'a str, &'a Reading)>,
) -> Vec<(&'a str, &'a Reading, &'a Value)> {
    let mut newest: HashMap<(&str, &str, &str), (&Reading, &Value)> = HashMap::new();
    for (gw, reading) in readings {
        for v in &reading.values {
            let key = (gw, reading.sensor.as_str(), v.name.as_str());
            match newest.get(&key) {
                Some((old, _)) if old.ts > reading.ts => {}
                _ => {
                    newest.insert(key, (reading, v));
                }
            }
        }
    }
    let mut out: Vec<_> = newest
        .into_iter()
        .map(|((gw, _, _), (reading, v))| (gw, reading, v))
        .collect();
    out.sort_by(|a, b| (a.0, &a.1.sensor, &a.2.name).cmp(&(b.0, &b.1.sensor, &b.2.name)));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

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
    fn latest_keeps_only_the_newest_value_per_gateway_sensor_and_name() {
        let readings = [
            (
                "gw-1",
                reading("2026-01-01T00:00:10Z", "a", &[("p", 1.0), ("v", 2.0)]),
            ),
            ("gw-1", reading("2026-01-01T00:00:05Z", "a", &[("p", 3.0)])),
            ("gw-1", reading("2026-01-01T00:00:20Z", "b", &[("p", 4.0)])),
            ("gw-1", reading("2026-01-01T00:00:30Z", "a", &[("v", 5.0)])),
            ("gw-2", reading("2026-01-01T00:00:01Z", "a", &[("p", 6.0)])),
        ];
        let newest: Vec<(&str, String, String, f64)> =
            newest_per_key(readings.iter().map(|(gw, r)| (*gw, r)))
                .into_iter()
                .map(|(gw, r, v)| (gw, r.sensor.clone(), v.name.clone(), v.value))
                .collect();
        assert_eq!(
            newest,
            vec![
                ("gw-1", "a".into(), "p".into(), 1.0),
                ("gw-1", "a".into(), "v".into(), 5.0),
                ("gw-1", "b".into(), "p".into(), 4.0),
                ("gw-2", "a".into(), "p".into(), 6.0),
            ]
        );
    }

    #[test]
    fn frames_written_together_share_partitions_and_touch_each_gateway_once() {
        let gw1 = GatewayId::parse("gw-1").unwrap();
        let gw2 = GatewayId::parse("gw-2").unwrap();
        let frame = |seq, ts| DataFrame {
            seq,
            readings: vec![reading(
                ts,
                "inverter-1",
                &[("power", 1.0), ("voltage", 2.0)],
            )],
        };
        let (a, b, c) = (
            frame(1, "2026-01-01T00:00:10Z"),
            frame(2, "2026-01-01T00:00:20Z"),
            frame(1, "2026-01-02T00:00:00Z"),
        );
        let write = |gateway, frame, touch| FrameWrite {
            gateway,
            frame,
            touch,
        };
        let frames = [
            write(&gw1, &a, true),
            write(&gw1, &b, true),
            write(&gw2, &c, false),
        ];
        let rows = Rows::of(&frames);
        let day = |d: &str| NaiveDate::parse_from_str(d, "%Y-%m-%d").unwrap();
        assert_eq!(rows.readings.len(), 2, "one partition per gateway and day");
        assert_eq!(rows.readings[&("gw-1", day("2026-01-01"))].len(), 4);
        assert_eq!(rows.readings[&("gw-2", day("2026-01-02"))].len(), 2);
        // the newer frame of gw-1 wins in latest; gw-2 keeps its own
        let latest: Vec<(&str, &str, i64)> = rows
            .latest
            .iter()
            .map(|r| (r.0, r.2, r.3.timestamp()))
            .collect();
        let t = |s: &str| DateTime::parse_from_rfc3339(s).unwrap().timestamp();
        assert_eq!(
            latest,
            vec![
                ("gw-1", "power", t("2026-01-01T00:00:20Z")),
                ("gw-1", "voltage", t("2026-01-01T00:00:20Z")),
                ("gw-2", "power", t("2026-01-02T00:00:00Z")),
                ("gw-2", "voltage", t("2026-01-02T00:00:00Z")),
            ]
        );
        let touched: Vec<&str> = rows.touches.iter().map(|t| t.1).collect();
        assert_eq!(touched, vec!["gw-1"]);
    }
}
