//! `GET /`: every gateway of the tenant with its status, last-seen time,
//! latest values, and a mark linking to the Alerts page when an alert of it
//! is firing. Four reads (settings, gateways, latest, the alert pairs'
//! states), run at once. The states are a read of the notifier's table: if
//! it fails, the dashboard still shows the gateways and says that the
//! alert marks are missing.

use std::collections::HashMap;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use chrono::Utc;
use serde::Serialize;

use crate::error::AppError;
use crate::reports::{to_watts, POWER_NAME};
use crate::session::Session;
use crate::settings::Settings;
use crate::store::{GatewayRecord, LatestValue};
use crate::AppState;

use super::{ago, all_gateway_ids, format_value, html, load_settings, status, Chrome, Nav, Status};

#[derive(Debug, Serialize)]
struct Row<'a> {
    id: &'a str,
    display_name: Option<&'a str>,
    status: Status,
    last_seen: Option<String>,
    last_seen_iso: Option<String>,
    last_seen_ago: Option<String>,
    values: Vec<Value>,
    /// How many of its (rule, gateway) pairs are firing.
    alerts_firing: usize,
}

#[derive(Debug, Serialize)]
pub(super) struct Value {
    pub(super) sensor: String,
    pub(super) name: String,
    value: String,
    unit: String,
    at: String,
    alert: bool,
}

/// A latest value as the dashboard and the gateway page show it.
pub(super) fn value_view(v: &LatestValue, settings: &Settings) -> Value {
    let unit = v.unit.clone().unwrap_or_default();
    let alert = match (v.value, settings.power_alert_w) {
        (Some(value), Some(limit)) if v.name == POWER_NAME => {
            to_watts(value, &unit).is_some_and(|w| w > limit)
        }
        _ => false,
    };
    Value {
        sensor: v.sensor.clone(),
        name: v.name.clone(),
        value: v.value.map(format_value).unwrap_or_else(|| "–".to_owned()),
        unit,
        at: v
            .ts
            .map(|t| settings.timezone.format(t))
            .unwrap_or_default(),
        alert,
    }
}

pub(super) async fn show(
    State(state): State<AppState>,
    session: Session,
) -> Result<Response, AppError> {
    let store = state.store();
    let alerts = state.alerts();
    let (settings, gateways, latest, states) = tokio::join!(
        load_settings(&state),
        store.gateways(),
        store.latest_all(),
        alerts.states()
    );
    let (settings, gateways, latest) = (settings?, gateways?, latest?);
    let mut firing: HashMap<String, usize> = HashMap::new();
    let alerts_unavailable = match states {
        Ok(states) => {
            for s in states.into_iter().filter(|s| s.state.is_firing()) {
                *firing.entry(s.gateway_id).or_default() += 1;
            }
            false
        }
        Err(e) => {
            tracing::error!(error = %e, "cannot read the alert states for the dashboard");
            true
        }
    };
    let now = Utc::now();
    let by_id: HashMap<&str, &GatewayRecord> = gateways
        .iter()
        .map(|g| (g.gateway_id.as_str(), g))
        .collect();
    let rows: Vec<Row> = all_gateway_ids(&gateways, &latest)
        .into_iter()
        .map(|id| {
            let gateway = by_id.get(id).copied();
            let record = latest.get(id);
            let last_seen = record.and_then(|r| r.last_seen);
            let mut values: Vec<Value> = record
                .map(|r| r.values.iter().map(|v| value_view(v, &settings)).collect())
                .unwrap_or_default();
            values.sort_by(|a, b| (&a.sensor, &a.name).cmp(&(&b.sensor, &b.name)));
            Row {
                id,
                display_name: gateway.and_then(|g| g.display_name.as_deref()),
                status: status(gateway, record, &settings, now),
                last_seen: last_seen.map(|t| settings.timezone.format(t)),
                last_seen_iso: last_seen
                    .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)),
                last_seen_ago: last_seen.map(|t| ago(t, now)),
                values,
                alerts_firing: firing.get(id).copied().unwrap_or(0),
            }
        })
        .collect();
    let body = state.templates().render(
        "dashboard",
        &serde_json::json!({
            "chrome": Chrome::new(&state, &session, &settings, "Dashboard", Nav::Dashboard),
            "gateways": rows,
            "alerts_unavailable": alerts_unavailable,
        }),
    )?;
    Ok(html(StatusCode::OK, body))
}
