//! `GET /gateways`, `POST /gateways` (commission) and
//! `POST /gateways/{id}/revoke`.
//!
//! Commissioning makes a new random token, stores only its hash, and shows
//! the token in the answer to the post, once (the answer is `no-store`; a
//! reload does not show it again because nothing can). Revoking deletes the
//! hash and records when; a revoked gateway can be given a new token by
//! commissioning it again.

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use chrono::Utc;
use serde::{Deserialize, Serialize};
use tenant_schema::model::{hash_gateway_token, new_gateway_token, DisplayName, GatewayId};

use crate::csrf::{CsrfField, CsrfForm};
use crate::error::AppError;
use crate::session::Session;
use crate::store::Commissioned;
use crate::AppState;

use super::{html, load_settings, Chrome, Nav};

#[derive(Debug, Deserialize)]
pub(super) struct ListQuery {
    pub(super) revoked: Option<String>,
}

#[derive(Debug, Serialize)]
struct GatewayView {
    id: String,
    display_name: Option<String>,
    created_at: String,
    revoked_at: Option<String>,
    has_token: bool,
}

pub(super) async fn list(
    State(state): State<AppState>,
    session: Session,
    Query(query): Query<ListQuery>,
) -> Result<Response, AppError> {
    let notice = query
        .revoked
        .map(|id| format!("The token of gateway {id} is revoked."));
    list_page(&state, &session, StatusCode::OK, None, notice).await
}

async fn list_page(
    state: &AppState,
    session: &Session,
    status: StatusCode,
    error: Option<String>,
    notice: Option<String>,
) -> Result<Response, AppError> {
    let (settings, gateways) = tokio::join!(load_settings(state), state.store().gateways());
    let (settings, gateways) = (settings?, gateways?);
    let tz = settings.timezone;
    let views: Vec<GatewayView> = gateways
        .into_iter()
        .map(|g| GatewayView {
            created_at: g.created_at.map(|t| tz.format(t)).unwrap_or_default(),
            revoked_at: g.revoked_at.map(|t| tz.format(t)),
            id: g.gateway_id,
            display_name: g.display_name,
            has_token: g.has_token,
        })
        .collect();
    let body = state.templates().render(
        "gateways",
        &serde_json::json!({
            "chrome": Chrome::new(state, session, &settings, "Gateways", Nav::Gateways),
            "gateways": views,
            "error": error,
            "notice": notice,
        }),
    )?;
    Ok(html(status, body))
}

#[derive(Debug, Deserialize)]
pub(super) struct CommissionForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    pub(super) gateway_id: String,
    #[serde(default)]
    pub(super) display_name: String,
}

impl CsrfField for CommissionForm {
    fn csrf(&self) -> &str {
        &self.csrf
    }
}

pub(super) async fn commission(
    State(state): State<AppState>,
    posted: CsrfForm<CommissionForm>,
) -> Result<Response, AppError> {
    let CsrfForm { session, form } = posted;
    // The display name is optional; one given follows the one rule the
    // CLI follows too.
    let parsed = GatewayId::parse(form.gateway_id.trim()).and_then(|id| {
        let name = match form.display_name.trim() {
            "" => None,
            given => Some(DisplayName::parse(given)?),
        };
        Ok((id, name))
    });
    let (id, display_name) = match parsed {
        Ok(parsed) => parsed,
        Err(e) => {
            return list_page(
                &state,
                &session,
                StatusCode::BAD_REQUEST,
                Some(e.to_string()),
                None,
            )
            .await
        }
    };
    let token = new_gateway_token();
    let outcome = state
        .store()
        .commission(
            id.as_str(),
            &hash_gateway_token(&token),
            display_name.as_ref().map(DisplayName::as_str),
            Utc::now(),
        )
        .await?;
    match outcome {
        Commissioned::AlreadyActive => {
            let error = format!(
                "gateway {id} already has an active token; revoke it first to issue a new one"
            );
            list_page(&state, &session, StatusCode::CONFLICT, Some(error), None).await
        }
        Commissioned::Created => {
            tracing::info!(gateway = %id, username = %session.username, "gateway commissioned");
            let settings = load_settings(&state).await?;
            let body = state.templates().render(
                "commissioned",
                &serde_json::json!({
                    "chrome": Chrome::new(&state, &session, &settings, "Gateway commissioned", Nav::Gateways),
                    "id": id.as_str(),
                    "token": token,
                }),
            )?;
            Ok(html(StatusCode::OK, body))
        }
    }
}

pub(super) async fn revoke(
    State(state): State<AppState>,
    Path(raw_id): Path<String>,
    posted: CsrfForm<super::login::CsrfOnly>,
) -> Result<Response, AppError> {
    let id = GatewayId::parse(&raw_id).map_err(|e| AppError::BadRequest(e.to_string()))?;
    if !state.store().revoke(id.as_str(), Utc::now()).await? {
        return Err(AppError::NotFound(format!("gateway {id}")));
    }
    tracing::info!(gateway = %id, username = %posted.session.username, "gateway token revoked");
    Ok(Redirect::to(&format!("/gateways?revoked={id}")).into_response())
}
