//! Daily energy and peak power per gateway, computed from power samples:
//! the one definition the admin panel's report (and its CSV export) and the
//! notifier's daily report mail share, so the mail's attachment is the
//! panel's export byte for byte.
//!
//! Everything but [`read_daily_rows`] is pure: samples go in (straight from
//! the Cassandra row stream, in either time order) and numbers come out.
//! [`read_daily_rows`] is the one read of `readings` both apps make: for
//! each (gateway, local day) the `power` values of the one or two UTC
//! partitions the day overlaps, a bounded number of reads at once.
//!
//! - Energy is the trapezoid integral of power over time, in Wh. Two
//!   consecutive samples further apart than [`MAX_GAP`] are not integrated:
//!   a gateway that was offline for an hour produced no known energy then,
//!   and drawing a straight line across the hole would invent some.
//! - Peak power is the largest single sample, in W.
//! - Each sensor is integrated on its own; a gateway's energy for a day is
//!   the sum over its sensors, and its peak is the largest peak of any of
//!   its sensors (sensors report at different instants, so summing their
//!   instantaneous powers would need resampling first).
//! - Values in kW or MW are converted to W; a power value with any other
//!   unit is ignored rather than guessed.

use std::collections::HashMap;
use std::fmt::Write as _;

use chrono::{DateTime, NaiveDate, Utc};
use futures::{StreamExt, TryStreamExt};
use scylla::client::session::Session;
use scylla::statement::prepared::PreparedStatement;

/// The longest interval between two samples that is still integrated.
pub const MAX_GAP: chrono::Duration = chrono::Duration::minutes(5);

/// The reading value name that carries power.
pub const POWER_NAME: &str = "power";

/// Converts a power value to watts, or `None` for a unit that is not a
/// power unit.
pub fn to_watts(value: f64, unit: &str) -> Option<f64> {
    let factor = match unit.trim() {
        "W" | "w" | "" => 1.0,
        "kW" | "KW" | "kw" => 1_000.0,
        "MW" | "mw" => 1_000_000.0,
        _ => return None,
    };
    let watts = value * factor;
    watts.is_finite().then_some(watts)
}

/// Energy and peak of one series of samples.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct PowerStats {
    pub energy_wh: f64,
    /// The largest sample, or `None` when there was no sample.
    pub peak_w: Option<f64>,
    pub samples: u64,
}

impl PowerStats {
    /// Adds another series' totals (another sensor of the same gateway).
    pub fn combine(&mut self, other: &PowerStats) {
        self.energy_wh += other.energy_wh;
        self.samples += other.samples;
        self.peak_w = match (self.peak_w, other.peak_w) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        };
    }
}

/// Integrates one sensor's power samples as they arrive. Samples must come
/// in time order, ascending or descending (Cassandra hands them out
/// newest first); a repeated timestamp adds nothing to the energy.
#[derive(Debug, Clone, Default)]
pub struct Integrator {
    last: Option<(i64, f64)>,
    stats: PowerStats,
}

impl Integrator {
    pub fn push(&mut self, ts_millis: i64, watts: f64) {
        if !watts.is_finite() {
            return;
        }
        if let Some((last_ts, last_w)) = self.last {
            let dt = (ts_millis - last_ts).abs();
            if dt <= MAX_GAP.num_milliseconds() {
                // W * ms -> Wh
                self.stats.energy_wh += (last_w + watts) / 2.0 * dt as f64 / 3_600_000.0;
            }
        }
        self.last = Some((ts_millis, watts));
        self.stats.samples += 1;
        self.stats.peak_w = Some(self.stats.peak_w.map_or(watts, |p| p.max(watts)));
    }

    pub fn finish(&self) -> PowerStats {
        self.stats
    }
}

/// Energy and peak of a set of samples (`(epoch millis, watts)`) in any
/// order.
pub fn power_stats(samples: &[(i64, f64)]) -> PowerStats {
    let mut sorted = samples.to_vec();
    sorted.sort_by_key(|s| s.0);
    let mut integrator = Integrator::default();
    for (ts, w) in sorted {
        integrator.push(ts, w);
    }
    integrator.finish()
}

/// Integrates the samples of one gateway for one day, sensor by sensor.
#[derive(Debug, Default)]
pub struct GatewayDay {
    sensors: HashMap<String, Integrator>,
}

impl GatewayDay {
    /// Adds one `power` value of `sensor`; values in a non-power unit are
    /// ignored.
    pub fn push(&mut self, sensor: &str, ts_millis: i64, value: f64, unit: &str) {
        let Some(watts) = to_watts(value, unit) else {
            return;
        };
        match self.sensors.get_mut(sensor) {
            Some(integrator) => integrator.push(ts_millis, watts),
            None => {
                let mut integrator = Integrator::default();
                integrator.push(ts_millis, watts);
                self.sensors.insert(sensor.to_owned(), integrator);
            }
        }
    }

    pub fn finish(&self) -> PowerStats {
        let mut total = PowerStats::default();
        for integrator in self.sensors.values() {
            total.combine(&integrator.finish());
        }
        total
    }
}

/// One line of the daily report.
#[derive(Debug, Clone, PartialEq)]
pub struct DailyRow {
    pub gateway_id: String,
    pub day: NaiveDate,
    pub stats: PowerStats,
}

/// The report as CSV: a header, then one line per gateway and day, energy
/// in Wh and peak in W with three decimals. A day without samples has an
/// empty peak.
pub fn to_csv(rows: &[DailyRow]) -> String {
    let mut out = String::from("gateway_id,day,energy_wh,peak_w,samples\n");
    for row in rows {
        let peak = row
            .stats
            .peak_w
            .map(|p| format!("{p:.3}"))
            .unwrap_or_default();
        // Gateway ids are letters, digits, '.', '_' and '-': nothing to quote.
        let _ = writeln!(
            out,
            "{},{},{:.3},{},{}",
            row.gateway_id, row.day, row.stats.energy_wh, peak, row.stats.samples
        );
    }
    out
}

/// `(gateway_id, day, from, to, name)`: the values of one name in one
/// `(gateway, UTC day)` partition within `[from, to)`, newest first.
/// `name` follows `sensor` in the clustering key, so restricting it needs
/// ALLOW FILTERING; the partition key is given, so the filter runs within
/// one partition and saves the transfer of every other value.
pub fn select_named_samples(keyspace: &str) -> String {
    format!(
        "SELECT ts, sensor, name, value, unit FROM {keyspace}.readings \
         WHERE gateway_id = ? AND day = ? AND ts >= ? AND ts < ? AND name = ? ALLOW FILTERING"
    )
}

/// The UTC days whose partitions hold readings of `[from, to)`.
pub fn partition_days(from: DateTime<Utc>, to: DateTime<Utc>) -> Vec<NaiveDate> {
    let last = (to - chrono::Duration::milliseconds(1)).date_naive();
    from.date_naive()
        .iter_days()
        .take_while(|d| *d <= last)
        .collect()
}

/// A read of `readings` that failed.
#[derive(Debug, thiserror::Error)]
#[error("cannot read the power samples of gateway {gateway_id} for {day}: {source}")]
pub struct ReadError {
    pub gateway_id: String,
    pub day: NaiveDate,
    #[source]
    pub source: Box<dyn std::error::Error + Send + Sync>,
}

/// Concurrent (gateway, day) reads of [`read_daily_rows`].
pub const PARALLEL_READS: usize = 8;

/// Energy and peak of one gateway over `[start, end)` (a local day), read
/// with `statement` ([`select_named_samples`], prepared); also answers how
/// many requests (pages) the read took.
pub async fn read_gateway_day(
    session: &Session,
    statement: &PreparedStatement,
    gateway_id: &str,
    day: NaiveDate,
    (start, end): (DateTime<Utc>, DateTime<Utc>),
) -> Result<(PowerStats, u64), ReadError> {
    type R = (DateTime<Utc>, String, String, Option<f64>, Option<String>);
    let err = |e: Box<dyn std::error::Error + Send + Sync>| ReadError {
        gateway_id: gateway_id.to_owned(),
        day,
        source: e,
    };
    let mut acc = GatewayDay::default();
    let mut requests = 0;
    // Newest partition first: each hands out its rows newest first, so the
    // integrator sees one descending series and the step across UTC
    // midnight (the last sample of one partition to the first of the
    // next) is integrated too.
    for partition in partition_days(start, end).into_iter().rev() {
        let pager = session
            .execute_iter(
                statement.clone(),
                (gateway_id, partition, start, end, POWER_NAME),
            )
            .await
            .map_err(|e| err(Box::new(e)))?;
        let mut rows = pager.rows_stream::<R>().map_err(|e| err(Box::new(e)))?;
        let mut seen = 0u64;
        while let Some((ts, sensor, _name, value, unit)) =
            rows.try_next().await.map_err(|e| err(Box::new(e)))?
        {
            seen += 1;
            if let Some(value) = value {
                acc.push(
                    &sensor,
                    ts.timestamp_millis(),
                    value,
                    unit.as_deref().unwrap_or(""),
                );
            }
        }
        // One request per page of 5000 rows (the driver's default).
        requests += 1 + seen / 5000;
    }
    Ok((acc.finish(), requests))
}

/// The report rows of `gateway_ids` for `days`, sorted by gateway then
/// day: each local day bounded by `bounds` (the tenant's timezone), read
/// [`PARALLEL_READS`] at a time. Also answers the number of requests made.
pub async fn read_daily_rows(
    session: &Session,
    statement: &PreparedStatement,
    gateway_ids: &[String],
    days: &[NaiveDate],
    bounds: impl Fn(NaiveDate) -> (DateTime<Utc>, DateTime<Utc>),
) -> Result<(Vec<DailyRow>, u64), ReadError> {
    type Job = (String, NaiveDate, (DateTime<Utc>, DateTime<Utc>));
    let jobs: Vec<Job> = gateway_ids
        .iter()
        .flat_map(|id| days.iter().map(|day| (id.clone(), *day, bounds(*day))))
        .collect();
    let results: Vec<(DailyRow, u64)> = futures::stream::iter(jobs)
        .map(|(id, day, range)| async move {
            let (stats, requests) = read_gateway_day(session, statement, &id, day, range).await?;
            Ok::<_, ReadError>((
                DailyRow {
                    gateway_id: id,
                    day,
                    stats,
                },
                requests,
            ))
        })
        .buffer_unordered(PARALLEL_READS)
        .try_collect()
        .await?;
    let requests = results.iter().map(|(_, r)| r).sum();
    let mut rows: Vec<DailyRow> = results.into_iter().map(|(row, _)| row).collect();
    rows.sort_by(|a, b| (&a.gateway_id, a.day).cmp(&(&b.gateway_id, b.day)));
    Ok((rows, requests))
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: i64 = 60_000;

    #[test]
    fn constant_power_for_an_hour_is_that_many_watt_hours() {
        // 1000 W sampled every 10 s for one hour.
        let samples: Vec<(i64, f64)> = (0..=360).map(|i| (i * 10_000, 1000.0)).collect();
        let stats = power_stats(&samples);
        assert!((stats.energy_wh - 1000.0).abs() < 1e-9, "{stats:?}");
        assert_eq!(stats.peak_w, Some(1000.0));
        assert_eq!(stats.samples, 361);
    }

    #[test]
    fn a_ramp_is_integrated_as_a_trapezoid() {
        // 0 W to 600 W over 2 minutes, one sample a minute: 0, 300, 600.
        let stats = power_stats(&[(0, 0.0), (MIN, 300.0), (2 * MIN, 600.0)]);
        // average 300 W for 2 min = 10 Wh
        assert!((stats.energy_wh - 10.0).abs() < 1e-9, "{stats:?}");
        assert_eq!(stats.peak_w, Some(600.0));
    }

    #[test]
    fn gaps_longer_than_five_minutes_are_not_integrated() {
        let stats = power_stats(&[
            (0, 600.0),
            (MIN, 600.0),
            (61 * MIN, 600.0),
            (62 * MIN, 600.0),
        ]);
        // two one-minute stretches of 600 W = 20 Wh, the hour between is unknown
        assert!((stats.energy_wh - 20.0).abs() < 1e-9, "{stats:?}");
        let exactly_five = power_stats(&[(0, 120.0), (5 * MIN, 120.0)]);
        assert!((exactly_five.energy_wh - 10.0).abs() < 1e-9);
    }

    #[test]
    fn newest_first_order_gives_the_same_result() {
        let ascending: Vec<(i64, f64)> = (0..100)
            .map(|i| (i * 7_000, (i * 13 % 50) as f64))
            .collect();
        let mut integrator = Integrator::default();
        for &(ts, w) in ascending.iter().rev() {
            integrator.push(ts, w);
        }
        let a = power_stats(&ascending);
        let b = integrator.finish();
        assert!((a.energy_wh - b.energy_wh).abs() < 1e-9);
        assert_eq!(a.peak_w, b.peak_w);
    }

    #[test]
    fn no_samples_means_no_energy_and_no_peak() {
        let stats = power_stats(&[]);
        assert_eq!(stats, PowerStats::default());
        let single = power_stats(&[(0, 42.0)]);
        assert_eq!(single.energy_wh, 0.0);
        assert_eq!(single.peak_w, Some(42.0));
    }

    #[test]
    fn sensors_are_integrated_separately_and_summed() {
        let mut day = GatewayDay::default();
        // Interleaved samples of two inverters must not be integrated as one series.
        for i in 0..=60 {
            day.push("inv-1", i * MIN, 1.0, "kW");
            day.push("inv-2", i * MIN + 30_000, 500.0, "W");
        }
        day.push("inv-3", 0, 10.0, "V"); // not a power unit: ignored
        let stats = day.finish();
        assert!((stats.energy_wh - 1500.0).abs() < 1e-9, "{stats:?}");
        assert_eq!(stats.peak_w, Some(1000.0));
        assert_eq!(stats.samples, 122);
    }

    #[test]
    fn units_are_converted_to_watts() {
        assert_eq!(to_watts(1.5, "kW"), Some(1500.0));
        assert_eq!(to_watts(2.0, "MW"), Some(2_000_000.0));
        assert_eq!(to_watts(7.0, "W"), Some(7.0));
        assert_eq!(to_watts(7.0, "V"), None);
        assert_eq!(to_watts(f64::NAN, "W"), None);
    }

    #[test]
    fn csv_has_a_header_and_one_line_per_gateway_day() {
        let day = NaiveDate::from_ymd_opt(2026, 11, 23).unwrap();
        let rows = vec![
            DailyRow {
                gateway_id: "gw-1".into(),
                day,
                stats: PowerStats {
                    energy_wh: 1234.5678,
                    peak_w: Some(900.0),
                    samples: 3,
                },
            },
            DailyRow {
                gateway_id: "gw-2".into(),
                day,
                stats: PowerStats::default(),
            },
        ];
        assert_eq!(
            to_csv(&rows),
            "gateway_id,day,energy_wh,peak_w,samples\n\
             gw-1,2026-11-23,1234.568,900.000,3\n\
             gw-2,2026-11-23,0.000,,0\n"
        );
    }
}
