//! `provisiond`: the REST control plane over the provisioner library. It
//! calls the same operations as the CLI and writes no logic of its own;
//! its JSON bodies are the objects the CLI prints with `--json`, and its
//! errors are problem documents ([`problem`]) with the CLI's error kinds.
//!
//! Served so far (read-only, on the Unix socket whose file permissions
//! are the authentication): `GET /healthz`, `GET /v1/tenants`,
//! `GET /v1/tenants/{id}`, `GET /v1/tenants/{id}/plan`, `GET /v1/operations`.

pub mod problem;

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::routing::get;
use axum::{Json, Router};
use provisioner::ops::TenantStatus;
use provisioner::store::operations::OperationRecord;
use provisioner::{ProviderId, Provisioner, StartOptions};
use serde_json::{json, Value};

use problem::ApiError;

/// What every handler gets.
#[derive(Clone)]
pub struct AppState {
    pub provisioner: Arc<Provisioner>,
}

type ApiResult<T> = Result<Json<T>, ApiError>;

fn provider(raw: &str) -> Result<ProviderId, ApiError> {
    Ok(ProviderId::parse(raw)?)
}

async fn tenants(State(s): State<AppState>) -> ApiResult<Vec<TenantStatus>> {
    Ok(Json(s.provisioner.status(None).await?))
}

async fn tenant(State(s): State<AppState>, Path(id): Path<String>) -> ApiResult<TenantStatus> {
    let id = provider(&id)?;
    let mut statuses = s.provisioner.status(Some(&id)).await?;
    Ok(Json(statuses.remove(0)))
}

/// The same document as `provision plan --json`.
async fn plan(State(s): State<AppState>, Path(id): Path<String>) -> ApiResult<Value> {
    let id = provider(&id)?;
    let plan = s.provisioner.plan(&id, StartOptions::default()).await?;
    Ok(Json(json!({
        "provider": id,
        "plan": plan.lines(),
        "notices": plan.notices,
    })))
}

async fn operations(State(s): State<AppState>) -> ApiResult<Vec<OperationRecord>> {
    Ok(Json(s.provisioner.history(None).await?))
}

/// The daemon's routes.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/v1/tenants", get(tenants))
        .route("/v1/tenants/{id}", get(tenant))
        .route("/v1/tenants/{id}/plan", get(plan))
        .route("/v1/operations", get(operations))
        .with_state(state)
}
