//! `GET /reports?from=&to=` and `GET /reports/daily.csv?from=&to=`: energy
//! and peak power per gateway per local day (see [`crate::reports`]).
//!
//! Each (gateway, day) reads the `power` values of the one or two UTC
//! partitions the local day overlaps; up to
//! [`tenant_schema::energy::PARALLEL_READS`] such reads run at once.

use axum::extract::{Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use chrono::{NaiveDate, Utc};
use serde::{Deserialize, Serialize};

use crate::error::AppError;
use crate::reports::{read_daily_rows, to_csv, DailyRow, MAX_GAP};
use crate::session::Session;
use crate::settings::Settings;
use crate::AppState;

use super::gateway::parse_day;
use super::{all_gateway_ids, format_value, html, load_settings, Chrome, Nav};

/// The longest report, in days.
const MAX_DAYS: i64 = 31;
/// The default report: the last seven days, today included.
const DEFAULT_DAYS: i64 = 7;

#[derive(Debug, Deserialize)]
pub(super) struct RangeQuery {
    pub(super) from: Option<String>,
    pub(super) to: Option<String>,
}

pub(super) fn range(
    query: &RangeQuery,
    settings: &Settings,
) -> Result<(NaiveDate, NaiveDate), AppError> {
    let today = settings.timezone.local_day(Utc::now());
    let to = parse_day(query.to.as_deref(), today)?;
    let from = parse_day(
        query.from.as_deref(),
        to - chrono::Duration::days(DEFAULT_DAYS - 1),
    )?;
    if from > to {
        return Err(AppError::BadRequest(format!(
            "the report starts ({from}) after it ends ({to})"
        )));
    }
    if (to - from).num_days() >= MAX_DAYS {
        return Err(AppError::BadRequest(format!(
            "a report covers at most {MAX_DAYS} days"
        )));
    }
    Ok((from, to))
}

/// The report rows, sorted by gateway then day: the read the notifier's
/// daily report mail makes too ([`tenant_schema::energy::read_daily_rows`]).
async fn compute(
    state: &AppState,
    settings: &Settings,
    from: NaiveDate,
    to: NaiveDate,
) -> Result<Vec<DailyRow>, AppError> {
    let store = state.store();
    let (gateways, latest) = tokio::join!(store.gateways(), store.latest_all());
    let (gateways, latest) = (gateways?, latest?);
    let ids: Vec<String> = all_gateway_ids(&gateways, &latest)
        .into_iter()
        .map(str::to_owned)
        .collect();
    let days: Vec<NaiveDate> = from.iter_days().take_while(|d| *d <= to).collect();
    let tz = settings.timezone;
    let (rows, _requests) = read_daily_rows(
        store.session(),
        store.readings_named(),
        &ids,
        &days,
        |day| tz.day_bounds(day),
    )
    .await
    .map_err(|e| crate::store::StoreError::Query {
        what: "read readings",
        source: Box::new(e),
    })?;
    Ok(rows)
}

#[derive(Debug, Serialize)]
struct RowView {
    gateway_id: String,
    day: String,
    energy_kwh: String,
    peak_kw: String,
    samples: u64,
}

pub(super) async fn show(
    State(state): State<AppState>,
    session: Session,
    Query(query): Query<RangeQuery>,
) -> Result<Response, AppError> {
    let settings = load_settings(&state).await?;
    let (from, to) = range(&query, &settings)?;
    let rows = compute(&state, &settings, from, to).await?;
    let views: Vec<RowView> = rows
        .into_iter()
        .map(|r| RowView {
            day: r.day.to_string(),
            energy_kwh: format!("{:.3}", r.stats.energy_wh / 1000.0),
            peak_kw: r
                .stats
                .peak_w
                .map(|p| format_value(p / 1000.0))
                .unwrap_or_else(|| "–".to_owned()),
            samples: r.stats.samples,
            gateway_id: r.gateway_id,
        })
        .collect();
    let body = state.templates().render(
        "reports",
        &serde_json::json!({
            "chrome": Chrome::new(&state, &session, &settings, "Daily report", Nav::Reports),
            "from": from.to_string(),
            "to": to.to_string(),
            "rows": views,
            "max_gap_minutes": MAX_GAP.num_minutes(),
        }),
    )?;
    Ok(html(StatusCode::OK, body))
}

pub(super) async fn csv(
    State(state): State<AppState>,
    _session: Session,
    Query(query): Query<RangeQuery>,
) -> Result<Response, AppError> {
    let settings = load_settings(&state).await?;
    let (from, to) = range(&query, &settings)?;
    let rows = compute(&state, &settings, from, to).await?;
    let filename = format!("daily-report-{}-{from}-{to}.csv", state.tenant_id());
    Ok((
        StatusCode::OK,
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_owned()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{filename}\""),
            ),
            (header::CACHE_CONTROL, "no-store".to_owned()),
        ],
        to_csv(&rows),
    )
        .into_response())
}
