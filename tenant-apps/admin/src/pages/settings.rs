//! `GET /settings` and `POST /settings`: the provider's customizations,
//! the daily report's local time and recipients among them (the notifier
//! reads those two keys and mails the report).

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;

use crate::csrf::{CsrfField, CsrfForm};
use crate::error::AppError;
use crate::session::Session;
use crate::settings::{FormValues, Settings};
use crate::AppState;

use super::{html, load_settings, Chrome, Nav};

#[derive(Debug, Deserialize)]
pub(super) struct SavedQuery {
    pub(super) saved: Option<String>,
}

#[derive(Debug, Deserialize)]
pub(super) struct SettingsForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    pub(super) display_name: String,
    #[serde(default)]
    pub(super) timezone: String,
    #[serde(default)]
    pub(super) offline_after_minutes: String,
    #[serde(default)]
    pub(super) power_alert_w: String,
    #[serde(default)]
    pub(super) report_at: String,
    #[serde(default)]
    pub(super) report_recipients: String,
}

impl SettingsForm {
    pub(super) fn values(&self) -> FormValues<'_> {
        FormValues {
            display_name: &self.display_name,
            timezone: &self.timezone,
            offline_after_minutes: &self.offline_after_minutes,
            power_alert_w: &self.power_alert_w,
            report_at: &self.report_at,
            report_recipients: &self.report_recipients,
        }
    }
}

impl CsrfField for SettingsForm {
    fn csrf(&self) -> &str {
        &self.csrf
    }
}

pub(super) async fn show(
    State(state): State<AppState>,
    session: Session,
    Query(query): Query<SavedQuery>,
) -> Result<Response, AppError> {
    let settings = load_settings(&state).await?;
    let body = state.templates().render(
        "settings",
        &serde_json::json!({
            "chrome": Chrome::new(&state, &session, &settings, "Settings", Nav::Settings),
            "saved": query.saved.is_some(),
            "display_name": settings.display_name,
            "timezone": settings.timezone.to_string(),
            "offline_after_minutes": settings.offline_after_minutes,
            "power_alert_w": settings.power_alert_w.map(|w| w.to_string()),
            "report_at": settings.report_at_text(),
            "report_recipients": settings.report_recipients.join(", "),
        }),
    )?;
    Ok(html(StatusCode::OK, body))
}

pub(super) async fn save(
    State(state): State<AppState>,
    posted: CsrfForm<SettingsForm>,
) -> Result<Response, AppError> {
    let CsrfForm { session, form } = posted;
    match Settings::from_form(&form.values()) {
        Ok(settings) => {
            state.store().put_settings(&settings.to_stored()).await?;
            tracing::info!(username = %session.username, "settings saved");
            Ok(Redirect::to("/settings?saved=1").into_response())
        }
        Err(e) => {
            // Show the form again with what was typed, and why it was refused.
            let current = load_settings(&state).await?;
            let body = state.templates().render(
                "settings",
                &serde_json::json!({
                    "chrome": Chrome::new(&state, &session, &current, "Settings", Nav::Settings),
                    "error": e.to_string(),
                    "display_name": form.display_name,
                    "timezone": form.timezone,
                    "offline_after_minutes": form.offline_after_minutes,
                    "power_alert_w": form.power_alert_w,
                    "report_at": form.report_at,
                    "report_recipients": form.report_recipients,
                }),
            )?;
            Ok(html(StatusCode::BAD_REQUEST, body))
        }
    }
}
