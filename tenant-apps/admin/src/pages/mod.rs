//! The HTTP handlers, one module per page, and what they share: the
//! router, the page chrome (header, navigation, logout form), HTML
//! responses with their security headers, and value formatting.
//! `fuzz_check` is what the `admin_forms` fuzz target runs on each input.

use std::collections::{BTreeMap, BTreeSet};

use axum::http::{header, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::session::Session;
use crate::settings::Settings;
use crate::store::{GatewayRecord, LatestRecord};
use crate::AppState;

mod alerts;
mod dashboard;
#[doc(hidden)]
pub mod fuzz_check;
mod gateway;
mod gateways;
mod health;
mod login;
mod reports;
mod settings;

/// Every route of the panel.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/", get(dashboard::show))
        .route("/login", get(login::form).post(login::submit))
        .route("/logout", post(login::logout))
        .route("/gateways", get(gateways::list).post(gateways::commission))
        .route("/gateways/{id}", get(gateway::show))
        .route("/gateways/{id}/revoke", post(gateways::revoke))
        .route("/reports", get(reports::show))
        .route("/reports/daily.csv", get(reports::csv))
        .route("/settings", get(settings::show).post(settings::save))
        .route("/alerts", get(alerts::show).post(alerts::create))
        .route("/alerts/{id}", post(alerts::update))
        .route("/alerts/{id}/edit", get(alerts::edit))
        .route("/alerts/{id}/delete", post(alerts::delete))
        .route("/healthz", get(health::healthz))
        .route("/assets/app.css", get(health::stylesheet))
        .layer(axum::middleware::map_response(security_headers))
        .with_state(state)
}

/// Headers on every response: no framing, no sniffing, nothing loaded from
/// elsewhere, forms post only to the panel.
async fn security_headers(mut response: Response) -> Response {
    let headers = response.headers_mut();
    let set = |headers: &mut axum::http::HeaderMap, name: HeaderName, value: &'static str| {
        headers
            .entry(name)
            .or_insert(HeaderValue::from_static(value));
    };
    set(
        headers,
        header::CONTENT_SECURITY_POLICY,
        "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    );
    set(headers, header::X_FRAME_OPTIONS, "DENY");
    set(headers, header::X_CONTENT_TYPE_OPTIONS, "nosniff");
    set(headers, header::REFERRER_POLICY, "same-origin");
    response
}

/// An HTML page that no cache may keep (pages show tenant data, and the
/// commissioning page shows a secret).
pub(crate) fn html(status: StatusCode, body: String) -> Response {
    (
        status,
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        body,
    )
        .into_response()
}

/// Which navigation entry is highlighted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Nav {
    Dashboard,
    Gateways,
    Reports,
    Alerts,
    Settings,
}

/// What the layout draws around every page.
#[derive(Debug, Serialize)]
pub(crate) struct Chrome {
    title: String,
    display_name: String,
    username: String,
    csrf: String,
    timezone: String,
    nav_dashboard: bool,
    nav_gateways: bool,
    nav_reports: bool,
    nav_alerts: bool,
    nav_settings: bool,
}

impl Chrome {
    pub(crate) fn new(
        state: &AppState,
        session: &Session,
        settings: &Settings,
        title: &str,
        nav: Nav,
    ) -> Self {
        Chrome {
            title: title.to_owned(),
            display_name: settings.display_name.clone(),
            username: session.username.clone(),
            csrf: crate::csrf::session_token(state.keys(), session),
            timezone: settings.timezone.to_string(),
            nav_dashboard: nav == Nav::Dashboard,
            nav_gateways: nav == Nav::Gateways,
            nav_reports: nav == Nav::Reports,
            nav_alerts: nav == Nav::Alerts,
            nav_settings: nav == Nav::Settings,
        }
    }
}

/// The tenant's settings as stored.
pub(crate) async fn load_settings(state: &AppState) -> Result<Settings, crate::AppError> {
    let stored = state.store().settings().await?;
    Ok(Settings::from_stored(state.tenant_id(), &stored))
}

/// A gateway's state as the dashboard shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub(crate) enum Status {
    Online,
    Offline,
    NeverSeen,
    Revoked,
}

pub(crate) fn status(
    gateway: Option<&GatewayRecord>,
    latest: Option<&LatestRecord>,
    settings: &Settings,
    now: DateTime<Utc>,
) -> Status {
    if gateway.is_some_and(|g| g.revoked_at.is_some() && !g.has_token) {
        return Status::Revoked;
    }
    match latest.and_then(|l| l.last_seen) {
        None => Status::NeverSeen,
        Some(seen)
            if now - seen > chrono::Duration::minutes(settings.offline_after_minutes.into()) =>
        {
            Status::Offline
        }
        Some(_) => Status::Online,
    }
}

/// The ids of every gateway the tenant has: commissioned ones and any that
/// `latest` knows about (data written before or without commissioning).
pub(crate) fn all_gateway_ids<'a>(
    gateways: &'a [GatewayRecord],
    latest: &'a BTreeMap<String, LatestRecord>,
) -> BTreeSet<&'a str> {
    gateways
        .iter()
        .map(|g| g.gateway_id.as_str())
        .chain(latest.keys().map(String::as_str))
        .collect()
}

/// A reading value for display: at most three decimals, no trailing zeros.
pub(crate) fn format_value(v: f64) -> String {
    if !v.is_finite() {
        return v.to_string();
    }
    let s = if v.abs() >= 1000.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.3}")
    };
    let s = s.trim_end_matches('0').trim_end_matches('.');
    if s == "-0" {
        "0".to_owned()
    } else {
        s.to_owned()
    }
}

/// "42 s ago", "5 min ago", "3 h ago", "2 d ago".
pub(crate) fn ago(then: DateTime<Utc>, now: DateTime<Utc>) -> String {
    let secs = (now - then).num_seconds();
    match secs {
        s if s < 0 => "in the future".to_owned(),
        s if s < 60 => format!("{s} s ago"),
        s if s < 3600 => format!("{} min ago", s / 60),
        s if s < 86_400 => format!("{} h ago", s / 3600),
        s => format!("{} d ago", s / 86_400),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_formatted_briefly() {
        assert_eq!(format_value(1234.5), "1234.5");
        assert_eq!(format_value(230.1), "230.1");
        assert_eq!(format_value(0.12345), "0.123");
        assert_eq!(format_value(42.0), "42");
        assert_eq!(format_value(-0.0001), "0");
    }

    #[test]
    fn ages_are_human() {
        let now = Utc::now();
        assert_eq!(ago(now - chrono::Duration::seconds(5), now), "5 s ago");
        assert_eq!(ago(now - chrono::Duration::minutes(5), now), "5 min ago");
        assert_eq!(ago(now - chrono::Duration::hours(50), now), "2 d ago");
    }

    #[test]
    fn a_gateway_is_offline_after_the_configured_time() {
        let now = Utc::now();
        let settings = Settings::defaults("t");
        let seen = |mins: i64| LatestRecord {
            last_seen: Some(now - chrono::Duration::minutes(mins)),
            values: vec![],
        };
        assert_eq!(status(None, Some(&seen(1)), &settings, now), Status::Online);
        assert_eq!(
            status(None, Some(&seen(16)), &settings, now),
            Status::Offline
        );
        assert_eq!(status(None, None, &settings, now), Status::NeverSeen);
        let revoked = GatewayRecord {
            gateway_id: "g".into(),
            display_name: None,
            created_at: None,
            revoked_at: Some(now),
            has_token: false,
        };
        assert_eq!(
            status(Some(&revoked), Some(&seen(1)), &settings, now),
            Status::Revoked
        );
    }
}
