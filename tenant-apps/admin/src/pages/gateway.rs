//! `GET /gateways/{id}?day=YYYY-MM-DD`: one gateway's status, an SVG chart
//! per sensor and value name over one local day, and its latest values.

use std::collections::BTreeMap;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use chrono::{Datelike, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use tenant_schema::model::GatewayId;

use crate::charts::Chart;
use crate::error::AppError;
use crate::session::Session;
use crate::AppState;

use super::dashboard::value_view;
use super::{html, load_settings, status, Chrome, Nav};

/// At most this many series are charted (sensor × value name); a gateway
/// with more gets the first ones by name.
const MAX_CHARTS: usize = 24;

#[derive(Debug, Deserialize)]
pub(super) struct DayQuery {
    pub(super) day: Option<String>,
}

#[derive(Debug, Serialize)]
struct ChartView {
    title: String,
    svg: String,
    samples: u64,
}

/// The UTC days whose partitions hold readings of `[from, to)`.
pub(super) fn partition_days(
    from: chrono::DateTime<Utc>,
    to: chrono::DateTime<Utc>,
) -> Vec<NaiveDate> {
    let last = (to - chrono::Duration::milliseconds(1)).date_naive();
    from.date_naive()
        .iter_days()
        .take_while(|d| *d <= last)
        .collect()
}

/// A day from a query (`default` if none), of a year from 1 to 9999: far
/// from the ends of `NaiveDate`, so the day's bounds in any timezone, the
/// days around it and a report's default start can be computed (a day
/// near the ends made them overflow and panic).
pub(super) fn parse_day(raw: Option<&str>, default: NaiveDate) -> Result<NaiveDate, AppError> {
    match raw.map(str::trim).filter(|s| !s.is_empty()) {
        None => Ok(default),
        Some(s) => NaiveDate::parse_from_str(s, "%Y-%m-%d")
            .ok()
            .filter(|day| (1..=9999).contains(&day.year()))
            .ok_or_else(|| {
                AppError::BadRequest(format!("day {s:?} is not a date like 2026-11-23"))
            }),
    }
}

pub(super) async fn show(
    State(state): State<AppState>,
    session: Session,
    Path(raw_id): Path<String>,
    Query(query): Query<DayQuery>,
) -> Result<Response, AppError> {
    let id = GatewayId::parse(&raw_id).map_err(|e| AppError::BadRequest(e.to_string()))?;
    let store = state.store();
    let (settings, gateway, latest) = tokio::join!(
        load_settings(&state),
        store.gateway(id.as_str()),
        store.latest_one(id.as_str())
    );
    let (settings, gateway, latest) = (settings?, gateway?, latest?);
    if gateway.is_none() && latest.last_seen.is_none() && latest.values.is_empty() {
        return Err(AppError::NotFound(format!("gateway {id}")));
    }
    let now = Utc::now();
    let tz = settings.timezone;
    let today = tz.local_day(now);
    let day = parse_day(query.day.as_deref(), today)?;
    let (from, to) = tz.day_bounds(day);

    let mut series: BTreeMap<(String, String), (Chart, String)> = BTreeMap::new();
    for partition in partition_days(from, to) {
        store
            .for_each_sample(id.as_str(), partition, from, to, None, |s| {
                let key = (s.sensor, s.name);
                if let Some((chart, _)) = series.get_mut(&key) {
                    chart.push(s.ts.timestamp_millis(), s.value);
                } else if series.len() < MAX_CHARTS {
                    let mut chart = Chart::new(from.timestamp_millis(), to.timestamp_millis());
                    chart.push(s.ts.timestamp_millis(), s.value);
                    series.insert(key, (chart, s.unit));
                }
            })
            .await?;
    }
    let offset = tz.offset().local_minus_utc();
    let charts: Vec<ChartView> = series
        .iter()
        .map(|((sensor, name), (chart, unit))| {
            let title = if unit.is_empty() {
                format!("{sensor} {name}")
            } else {
                format!("{sensor} {name} ({unit})")
            };
            ChartView {
                svg: chart.render(&title, unit, offset),
                title,
                samples: chart.samples(),
            }
        })
        .collect();
    let mut values: Vec<_> = latest
        .values
        .iter()
        .map(|v| value_view(v, &settings))
        .collect();
    values.sort_by(|a, b| (&a.sensor, &a.name).cmp(&(&b.sensor, &b.name)));
    let last_seen = latest.last_seen;
    let body = state.templates().render(
        "gateway",
        &serde_json::json!({
            "chrome": Chrome::new(&state, &session, &settings, &format!("Gateway {id}"), Nav::Dashboard),
            "id": id.as_str(),
            "display_name": gateway.as_ref().and_then(|g| g.display_name.as_deref()),
            "status": status(gateway.as_ref(), Some(&latest), &settings, now),
            "last_seen": last_seen.map(|t| tz.format(t)),
            "last_seen_iso": last_seen.map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)),
            "day": day.to_string(),
            "prev_day": day.pred_opt().map(|d| d.to_string()),
            "next_day": day.succ_opt().filter(|d| *d <= today).map(|d| d.to_string()),
            "charts": charts,
            "values": values,
        }),
    )?;
    Ok(html(StatusCode::OK, body))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_day_near_the_ends_of_the_calendar_is_refused() {
        // the report's `?to=-262143-01-03` panicked computing its default
        // start six days earlier, the gateway page's `?day=-262143-01-01`
        // computing its bounds at +14:00 (found writing the admin_forms
        // check, which then panicked on both)
        let today = NaiveDate::from_ymd_opt(2026, 11, 23).unwrap();
        for raw in [
            "-262143-01-03",
            "+262142-12-31",
            "262142-12-31",
            "-0001-12-31",
            "0000-01-01",
            "+10000-01-01",
        ] {
            assert!(parse_day(Some(raw), today).is_err(), "{raw} accepted");
        }
        for raw in ["0001-01-01", "9999-12-31", "2026-11-23"] {
            let day = parse_day(Some(raw), today).unwrap();
            for tz in ["-14:00", "+14:00"] {
                let (from, to) = crate::settings::Timezone::parse(tz)
                    .unwrap()
                    .day_bounds(day);
                assert_eq!(partition_days(from, to).len(), 2);
            }
        }
    }

    #[test]
    fn a_local_day_spans_the_utc_partitions_it_overlaps() {
        let d = |s: &str| NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap();
        let utc = crate::settings::Timezone::UTC;
        let (from, to) = utc.day_bounds(d("2026-11-23"));
        assert_eq!(partition_days(from, to), vec![d("2026-11-23")]);
        let plus2 = crate::settings::Timezone::parse("+02:00").unwrap();
        let (from, to) = plus2.day_bounds(d("2026-11-23"));
        assert_eq!(
            partition_days(from, to),
            vec![d("2026-11-22"), d("2026-11-23")]
        );
    }
}
