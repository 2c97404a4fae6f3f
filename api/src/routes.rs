//! The REST contract under `/v1`: each handler parses the request, calls
//! the library (or queues the call, for what changes tenants) and answers
//! the same JSON the CLI prints with `--json`. Start, stop, destroy and
//! reconcile answer `202 Accepted` with `{"operation": "<id>"}` and a
//! `Location` header (a dry run answers its plan at once).

use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{FromRequest, FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use futures::StreamExt;
use provisioner::backend::LogChunk;
use provisioner::cql::gateways::GatewayInfo;
use provisioner::domain::capacity::NodeInventory;
use provisioner::domain::GatewayTls;
use provisioner::ops::alerts::{
    AlertAdded, AlertList, AlertRemoved, AlertRequest, ReportSchedule, ReportScheduleRequest,
    ReportSendRequest, ReportSent,
};
use provisioner::ops::nodes::{CapacityReport, DrainReport, NodeChanged};
use provisioner::ops::{PlanReport, ReconcileReport, StartReport, TenantStatus, UpgradeOptions};
use provisioner::store::operations::OperationRecord;
use provisioner::{ProviderId, Role, StartOptions};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::auth::Requester;
use crate::endpoints::Endpoints;
use crate::problem::ApiError;
use crate::AppState;

type ApiResult<T> = Result<T, ApiError>;

/// A JSON body; an absent one reads as `{}` (so a body of optional
/// fields may be left out). Bad JSON is a 400, JSON of the wrong shape a
/// 422, each a problem document.
pub struct JsonBody<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let bytes = Bytes::from_request(req, state)
            .await
            .map_err(|e| ApiError::invalid(StatusCode::BAD_REQUEST, e.body_text()))?;
        let text: &[u8] = match bytes.iter().all(u8::is_ascii_whitespace) {
            true => b"{}",
            false => &bytes,
        };
        let value: serde_json::Value = serde_json::from_slice(text).map_err(|e| {
            ApiError::invalid(
                StatusCode::BAD_REQUEST,
                format!("the body is not JSON: {e}"),
            )
        })?;
        serde_json::from_value(value).map(JsonBody).map_err(|e| {
            ApiError::invalid(
                StatusCode::UNPROCESSABLE_ENTITY,
                format!("invalid body: {e}"),
            )
        })
    }
}

/// Path parameters; one that does not decode is a 400 problem.
pub struct Path<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned + Send> FromRequestParts<S> for Path<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        axum::extract::Path::<T>::from_request_parts(parts, state)
            .await
            .map(|p| Path(p.0))
            .map_err(|e| ApiError::invalid(StatusCode::BAD_REQUEST, e.body_text()))
    }
}

/// Query parameters; unknown or malformed ones are a 400 problem.
pub struct Query<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned + Send> FromRequestParts<S> for Query<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        axum::extract::Query::<T>::from_request_parts(parts, state)
            .await
            .map(|q| Query(q.0))
            .map_err(|e| ApiError::invalid(StatusCode::BAD_REQUEST, e.body_text()))
    }
}

fn provider(raw: &str) -> ApiResult<ProviderId> {
    Ok(ProviderId::parse(raw)?)
}

/// 404 unless the store knows `id`.
async fn known(s: &AppState, id: &ProviderId) -> ApiResult<()> {
    match s.provisioner.store.tenant(id).await? {
        Some(_) => Ok(()),
        None => Err(provisioner::Error::UnknownProvider(id.clone()).into()),
    }
}

/// What a queued operation answers.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Accepted {
    /// The operation's id: `GET /v1/operations/{operation}` follows it.
    pub operation: String,
}

fn accepted(op: i64) -> Response {
    let location = format!("/v1/operations/{op}");
    (
        StatusCode::ACCEPTED,
        [(header::LOCATION, location)],
        Json(Accepted {
            operation: op.to_string(),
        }),
    )
        .into_response()
}

fn with_backoff(s: &AppState, mut status: TenantStatus) -> TenantStatus {
    status.backoff = s.watcher.backoff(&status.provider);
    status
}

#[utoipa::path(get, path = "/v1/tenants", tag = "tenants",
    responses((status = 200, description = "Every tenant, as `provision --json list` prints them", body = Vec<TenantStatus>)))]
pub async fn tenants(State(s): State<AppState>) -> ApiResult<Json<Vec<TenantStatus>>> {
    let statuses = s.cache.list(&s.provisioner).await?;
    Ok(Json(
        statuses
            .iter()
            .cloned()
            .map(|t| with_backoff(&s, t))
            .collect(),
    ))
}

#[utoipa::path(get, path = "/v1/tenants/{id}", tag = "tenants", params(("id" = String, Path, description = "The provider (tenant) id", pattern = "^[a-z][a-z0-9_]{0,31}$")),
    responses((status = 200, description = "The tenant, as `provision --json status <id>` prints it", body = TenantStatus)))]
pub async fn tenant(
    State(s): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Json<TenantStatus>> {
    let id = provider(&id)?;
    let mut statuses = s.provisioner.status(Some(&id)).await?;
    Ok(Json(with_backoff(&s, statuses.remove(0))))
}

/// The ports a start or a plan asks for.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StartBody {
    pub gateway_port: Option<u16>,
    pub admin_port: Option<u16>,
    /// TLS on the gateway port (default: as the tenant has it; `optional`
    /// for a new one).
    pub gateway_tls: Option<GatewayTls>,
    /// Readings per second at most (default: as the tenant has it,
    /// unlimited for a new one); 0 is unlimited.
    pub max_readings_per_sec: Option<u32>,
    /// Gateway connections at once (default: as the tenant has it); 0 is
    /// ingest's default (1000).
    pub max_gateways: Option<u32>,
    /// Swarm mode: start even if the cluster is no longer N+1 afterwards
    /// (else such a start fails with `not_n_plus_one`, 409).
    #[serde(default)]
    pub allow_overcommit: bool,
    /// Answer the plan (a start report in state `planned`) and change
    /// nothing.
    #[serde(default)]
    pub dry_run: bool,
}

#[utoipa::path(post, path = "/v1/tenants/{id}/start", tag = "tenants", params(("id" = String, Path, description = "The provider (tenant) id", pattern = "^[a-z][a-z0-9_]{0,31}$")),
    request_body(content = Option<StartBody>, description = "The ports to lease (default: the next free ones)"),
    responses(
        (status = 202, description = "Queued: follow the operation", body = Accepted,
            headers(("Location" = String, description = "The operation's URL"))),
        (status = 200, description = "A dry run: what start would do", body = StartReport)))]
pub async fn start(
    State(s): State<AppState>,
    Extension(who): Extension<Requester>,
    Path(id): Path<String>,
    JsonBody(body): JsonBody<StartBody>,
) -> ApiResult<Response> {
    let id = provider(&id)?;
    let options = StartOptions {
        gateway_port: body.gateway_port,
        admin_port: body.admin_port,
        gateway_tls: body.gateway_tls,
        max_readings_per_sec: body.max_readings_per_sec,
        max_gateways: body.max_gateways,
        allow_overcommit: body.allow_overcommit,
        dry_run: body.dry_run,
        image_tag: None,
    };
    if body.dry_run {
        let report: StartReport = s.provisioner.start(&id, options).await?;
        return Ok(Json(report).into_response());
    }
    let tenant = id.clone();
    let op = s
        .jobs
        .submit("start", Some(&id), &who.0, move |p| async move {
            p.start(&tenant, options).await
        })
        .await?;
    Ok(accepted(op))
}

#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StopBody {
    #[serde(default)]
    pub dry_run: bool,
}

#[utoipa::path(post, path = "/v1/tenants/{id}/stop", tag = "tenants", params(("id" = String, Path, description = "The provider (tenant) id", pattern = "^[a-z][a-z0-9_]{0,31}$")),
    request_body(content = Option<StopBody>),
    responses(
        (status = 202, description = "Queued: follow the operation", body = Accepted,
            headers(("Location" = String, description = "The operation's URL"))),
        (status = 200, description = "A dry run: what stop would do", body = PlanReport)))]
pub async fn stop(
    State(s): State<AppState>,
    Extension(who): Extension<Requester>,
    Path(id): Path<String>,
    JsonBody(body): JsonBody<StopBody>,
) -> ApiResult<Response> {
    let id = provider(&id)?;
    if body.dry_run {
        let report: PlanReport = s.provisioner.stop(&id, true).await?;
        return Ok(Json(report).into_response());
    }
    known(&s, &id).await?;
    let tenant = id.clone();
    let op = s
        .jobs
        .submit("stop", Some(&id), &who.0, move |p| async move {
            p.stop(&tenant, false).await
        })
        .await?;
    Ok(accepted(op))
}

#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DestroyBody {
    /// Also drop the tenant's keyspace (all its data) and Cassandra role.
    #[serde(default)]
    pub purge_data: bool,
    #[serde(default)]
    pub dry_run: bool,
}

#[utoipa::path(post, path = "/v1/tenants/{id}/destroy", tag = "tenants", params(("id" = String, Path, description = "The provider (tenant) id", pattern = "^[a-z][a-z0-9_]{0,31}$")),
    request_body(content = Option<DestroyBody>),
    responses(
        (status = 202, description = "Queued: follow the operation", body = Accepted,
            headers(("Location" = String, description = "The operation's URL"))),
        (status = 200, description = "A dry run: what destroy would do", body = PlanReport)))]
pub async fn destroy(
    State(s): State<AppState>,
    Extension(who): Extension<Requester>,
    Path(id): Path<String>,
    JsonBody(body): JsonBody<DestroyBody>,
) -> ApiResult<Response> {
    let id = provider(&id)?;
    if body.dry_run {
        let report = s.provisioner.destroy(&id, body.purge_data, true).await?;
        return Ok(Json(report).into_response());
    }
    known(&s, &id).await?;
    let tenant = id.clone();
    let purge = body.purge_data;
    let op = s
        .jobs
        .submit("destroy", Some(&id), &who.0, move |p| async move {
            p.destroy(&tenant, purge, false).await
        })
        .await?;
    Ok(accepted(op))
}

#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct PlanQuery {
    pub gateway_port: Option<u16>,
    pub admin_port: Option<u16>,
    pub gateway_tls: Option<GatewayTls>,
    pub max_readings_per_sec: Option<u32>,
    pub max_gateways: Option<u32>,
}

#[utoipa::path(get, path = "/v1/tenants/{id}/plan", tag = "tenants", params(("id" = String, Path, description = "The provider (tenant) id", pattern = "^[a-z][a-z0-9_]{0,31}$"), PlanQuery),
    responses((status = 200, description = "What start would do, as `provision --json plan <id>` prints it", body = PlanReport)))]
pub async fn plan(
    State(s): State<AppState>,
    Path(id): Path<String>,
    Query(q): Query<PlanQuery>,
) -> ApiResult<Json<PlanReport>> {
    let id = provider(&id)?;
    let options = StartOptions {
        gateway_port: q.gateway_port,
        admin_port: q.admin_port,
        gateway_tls: q.gateway_tls,
        max_readings_per_sec: q.max_readings_per_sec,
        max_gateways: q.max_gateways,
        allow_overcommit: false,
        dry_run: true,
        image_tag: None,
    };
    let plan = s.provisioner.plan(&id, options).await?;
    Ok(Json(PlanReport::new(&plan, true)))
}

#[utoipa::path(post, path = "/v1/reconcile", tag = "tenants",
    request_body(content = Option<StopBody>),
    responses(
        (status = 202, description = "Queued: follow the operation", body = Accepted,
            headers(("Location" = String, description = "The operation's URL"))),
        (status = 200, description = "A dry run: what reconcile would do", body = ReconcileReport)))]
pub async fn reconcile(
    State(s): State<AppState>,
    Extension(who): Extension<Requester>,
    JsonBody(body): JsonBody<StopBody>,
) -> ApiResult<Response> {
    if body.dry_run {
        let report: ReconcileReport = s.provisioner.reconcile(true).await?;
        return Ok(Json(report).into_response());
    }
    let op = s
        .jobs
        .submit("reconcile", None, &who.0, move |p| async move {
            p.reconcile(false).await
        })
        .await?;
    Ok(accepted(op))
}

/// What an upgrade asks for.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpgradeBody {
    /// The tag of the images to run (default: the tenant's own, a rebuilt
    /// image under the same tag being an upgrade too).
    #[serde(default)]
    pub image_tag: Option<String>,
    /// `POST /v1/upgrade`: tenants upgraded at once (default 1).
    #[serde(default)]
    pub parallelism: Option<usize>,
    /// `POST /v1/upgrade`: go on after a tenant failed.
    #[serde(default)]
    pub keep_going: bool,
}

impl UpgradeBody {
    fn options(&self) -> ApiResult<UpgradeOptions> {
        if self.parallelism == Some(0) {
            return Err(provisioner::Error::Usage("parallelism must be at least 1".into()).into());
        }
        Ok(UpgradeOptions {
            image_tag: self.image_tag.clone(),
            parallelism: self.parallelism.unwrap_or(1),
            keep_going: self.keep_going,
        })
    }
}

#[utoipa::path(post, path = "/v1/tenants/{id}/upgrade", tag = "tenants", params(("id" = String, Path, description = "The provider (tenant) id", pattern = "^[a-z][a-z0-9_]{0,31}$")),
    request_body(content = Option<UpgradeBody>),
    responses(
        (status = 202, description = "Queued: follow the operation, which ends with an UpgradeReport (a rollback is its error, kind `rolled_back`)", body = Accepted,
            headers(("Location" = String, description = "The operation's URL")))))]
pub async fn upgrade(
    State(s): State<AppState>,
    Extension(who): Extension<Requester>,
    Path(id): Path<String>,
    JsonBody(body): JsonBody<UpgradeBody>,
) -> ApiResult<Response> {
    let id = provider(&id)?;
    let options = body.options()?;
    known(&s, &id).await?;
    let tenant = id.clone();
    let op = s
        .jobs
        .submit("upgrade", Some(&id), &who.0, move |p| async move {
            p.upgrade(&tenant, &options).await
        })
        .await?;
    Ok(accepted(op))
}

#[utoipa::path(post, path = "/v1/upgrade", tag = "tenants",
    request_body(content = Option<UpgradeBody>),
    responses(
        (status = 202, description = "Queued: follow the operation, which ends with an UpgradeReport", body = Accepted,
            headers(("Location" = String, description = "The operation's URL")))))]
pub async fn upgrade_all(
    State(s): State<AppState>,
    Extension(who): Extension<Requester>,
    JsonBody(body): JsonBody<UpgradeBody>,
) -> ApiResult<Response> {
    let options = body.options()?;
    let op = s
        .jobs
        .submit("upgrade", None, &who.0, move |p| async move {
            p.upgrade_all(&options).await
        })
        .await?;
    Ok(accepted(op))
}

/// A gateway commissioned: its token, shown once (only its hash is kept).
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Commissioned {
    pub gateway: String,
    pub token: String,
}

/// A gateway revoked.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Revoked {
    pub gateway: String,
    pub revoked: bool,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct GatewayBody {
    pub gateway: String,
    /// A display name (default: the gateway id).
    pub name: Option<String>,
}

#[utoipa::path(post, path = "/v1/tenants/{id}/gateways", tag = "gateways", params(("id" = String, Path, description = "The provider (tenant) id", pattern = "^[a-z][a-z0-9_]{0,31}$")),
    request_body(content = GatewayBody),
    responses((status = 201, description = "Commissioned: its token, shown once", body = Commissioned)))]
pub async fn gateway_add(
    State(s): State<AppState>,
    Path(id): Path<String>,
    JsonBody(body): JsonBody<GatewayBody>,
) -> ApiResult<Response> {
    let id = provider(&id)?;
    let token = s
        .provisioner
        .gateway_add(&id, &body.gateway, body.name.as_deref())
        .await?;
    let answer = Commissioned {
        gateway: body.gateway,
        token,
    };
    Ok((StatusCode::CREATED, Json(answer)).into_response())
}

#[utoipa::path(get, path = "/v1/tenants/{id}/gateways", tag = "gateways", params(("id" = String, Path, description = "The provider (tenant) id", pattern = "^[a-z][a-z0-9_]{0,31}$")),
    responses((status = 200, description = "The tenant's gateways", body = Vec<GatewayInfo>)))]
pub async fn gateway_list(
    State(s): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let id = provider(&id)?;
    Ok(Json(s.provisioner.gateway_list(&id).await?).into_response())
}

#[utoipa::path(get, path = "/v1/tenants/{id}/gateway-ca", tag = "gateways", params(("id" = String, Path, description = "The provider (tenant) id", pattern = "^[a-z][a-z0-9_]{0,31}$")),
    responses((status = 200, description = "The certificate (PEM) the tenant's gateways must trust for TLS, as `provision gateway ca <id>` prints it", body = String, content_type = "application/x-pem-file")))]
pub async fn gateway_ca(State(s): State<AppState>, Path(id): Path<String>) -> ApiResult<Response> {
    let id = provider(&id)?;
    let pem = s.provisioner.gateway_ca(&id).await?;
    Ok(([(header::CONTENT_TYPE, "application/x-pem-file")], pem).into_response())
}

#[utoipa::path(delete, path = "/v1/tenants/{id}/gateways/{gateway}", tag = "gateways",
    params(("id" = String, Path, description = "The provider (tenant) id", pattern = "^[a-z][a-z0-9_]{0,31}$"), ("gateway" = String, Path, description = "The gateway id")),
    responses((status = 200, description = "Revoked: its token no longer works", body = Revoked)))]
pub async fn gateway_revoke(
    State(s): State<AppState>,
    Path((id, gateway)): Path<(String, String)>,
) -> ApiResult<Response> {
    let id = provider(&id)?;
    s.provisioner.gateway_revoke(&id, &gateway).await?;
    Ok(Json(Revoked {
        gateway,
        revoked: true,
    })
    .into_response())
}

#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct OperationsQuery {
    /// One tenant's operations (default: all).
    pub tenant: Option<String>,
}

#[utoipa::path(get, path = "/v1/operations", tag = "operations", params(OperationsQuery),
    responses((status = 200, description = "The operations log, oldest first", body = Vec<OperationRecord>)))]
pub async fn operations(
    State(s): State<AppState>,
    Query(q): Query<OperationsQuery>,
) -> ApiResult<Json<Vec<OperationRecord>>> {
    let id = q.tenant.as_deref().map(provider).transpose()?;
    Ok(Json(s.provisioner.history(id.as_ref()).await?))
}

#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct OperationQuery {
    /// Wait up to this many seconds (at most 300) for the operation to end.
    pub wait: Option<u64>,
    /// Answer as soon as more than this many steps are done (progress).
    pub after_step: Option<usize>,
}

#[utoipa::path(get, path = "/v1/operations/{op}", tag = "operations",
    params(("op" = String, Path, description = "The operation's id"), OperationQuery),
    responses((status = 200, description = "The operation; once over, its answer (what is shown once, the first time)", body = OperationRecord)))]
pub async fn operation(
    State(s): State<AppState>,
    Path(op): Path<String>,
    Query(q): Query<OperationQuery>,
) -> ApiResult<Json<OperationRecord>> {
    let unknown = || ApiError::not_found(format!("unknown operation {op:?}"));
    let id: i64 = op.parse().map_err(|_| unknown())?;
    let wait = Duration::from_secs(q.wait.unwrap_or(0));
    s.jobs
        .wait(id, wait, q.after_step)
        .await?
        .map(Json)
        .ok_or_else(unknown)
}

#[utoipa::path(get, path = "/v1/tenants/{id}/alerts", tag = "alerts", params(("id" = String, Path, description = "The provider (tenant) id", pattern = "^[a-z][a-z0-9_]{0,31}$")),
    responses((status = 200, description = "The tenant's alert rules and each (rule, gateway) state, as `provision --json alert list <id>` prints them", body = AlertList)))]
pub async fn alert_list(State(s): State<AppState>, Path(id): Path<String>) -> ApiResult<Response> {
    let id = provider(&id)?;
    Ok(Json(s.provisioner.alert_list(&id).await?).into_response())
}

#[utoipa::path(post, path = "/v1/tenants/{id}/alerts", tag = "alerts", params(("id" = String, Path, description = "The provider (tenant) id", pattern = "^[a-z][a-z0-9_]{0,31}$")),
    request_body(content = AlertRequest),
    responses((status = 201, description = "The new rule with its id, as `provision --json alert add` prints it (`warning` when mail is off)", body = AlertAdded)))]
pub async fn alert_add(
    State(s): State<AppState>,
    Path(id): Path<String>,
    JsonBody(body): JsonBody<AlertRequest>,
) -> ApiResult<Response> {
    let id = provider(&id)?;
    let added = s.provisioner.alert_add(&id, &body).await?;
    Ok((StatusCode::CREATED, Json(added)).into_response())
}

#[utoipa::path(delete, path = "/v1/tenants/{id}/alerts/{rule}", tag = "alerts",
    params(("id" = String, Path, description = "The provider (tenant) id", pattern = "^[a-z][a-z0-9_]{0,31}$"), ("rule" = String, Path, description = "The rule id", pattern = "^[a-z0-9]{1,32}$")),
    responses((status = 200, description = "Removed, with its states", body = AlertRemoved)))]
pub async fn alert_remove(
    State(s): State<AppState>,
    Path((id, rule)): Path<(String, String)>,
) -> ApiResult<Response> {
    let id = provider(&id)?;
    Ok(Json(s.provisioner.alert_remove(&id, &rule).await?).into_response())
}

#[utoipa::path(put, path = "/v1/tenants/{id}/report", tag = "alerts", params(("id" = String, Path, description = "The provider (tenant) id", pattern = "^[a-z][a-z0-9_]{0,31}$")),
    request_body(content = ReportScheduleRequest),
    responses((status = 200, description = "The daily report as the tenant's settings now say, as `provision --json report schedule` prints it", body = ReportSchedule)))]
pub async fn report_schedule(
    State(s): State<AppState>,
    Path(id): Path<String>,
    JsonBody(body): JsonBody<ReportScheduleRequest>,
) -> ApiResult<Response> {
    let id = provider(&id)?;
    Ok(Json(s.provisioner.report_schedule(&id, &body).await?).into_response())
}

#[utoipa::path(post, path = "/v1/tenants/{id}/report/send", tag = "alerts", params(("id" = String, Path, description = "The provider (tenant) id", pattern = "^[a-z][a-z0-9_]{0,31}$")),
    request_body(content = ReportSendRequest),
    responses((status = 200, description = "Where the report's mail is after the wait (`sent`, `failed`, `queued`, `requested`), as `provision --json report send` prints it; 409 `mail_off` without a relay", body = ReportSent)))]
pub async fn report_send(
    State(s): State<AppState>,
    Path(id): Path<String>,
    JsonBody(body): JsonBody<ReportSendRequest>,
) -> ApiResult<Response> {
    let id = provider(&id)?;
    Ok(Json(s.provisioner.report_send(&id, &body).await?).into_response())
}

#[derive(Debug, Clone, Copy, Default, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum RoleQuery {
    #[default]
    Ingest,
    Admin,
    Notifier,
}

#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct LogsQuery {
    #[serde(default)]
    pub role: RoleQuery,
    #[serde(default)]
    pub follow: bool,
    pub tail: Option<u64>,
}

/// The media type of a log stream: frames of one byte (1 stdout, 2
/// stderr), a big-endian u32 length, and that many bytes.
pub const LOG_STREAM: &str = "application/vnd.provision.log-stream";

#[utoipa::path(get, path = "/v1/tenants/{id}/logs", tag = "tenants", params(("id" = String, Path, description = "The provider (tenant) id", pattern = "^[a-z][a-z0-9_]{0,31}$"), LogsQuery),
    responses((status = 200, description = "The app's log: frames of one byte (1 stdout, 2 stderr), a big-endian u32 length and that many bytes",
        content_type = "application/vnd.provision.log-stream", body = Vec<u8>)))]
pub async fn logs(
    State(s): State<AppState>,
    Path(id): Path<String>,
    Query(q): Query<LogsQuery>,
) -> ApiResult<Response> {
    let id = provider(&id)?;
    known(&s, &id).await?;
    let role = match q.role {
        RoleQuery::Ingest => Role::Ingest,
        RoleQuery::Admin => Role::Admin,
        RoleQuery::Notifier => Role::Notifier,
    };
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel::<Bytes>();
    let p = s.provisioner.clone();
    tokio::spawn(async move {
        let result = p
            .logs(&id, role, q.follow, q.tail, |chunk| {
                let (stream, bytes) = match chunk {
                    LogChunk::Stdout(b) => (1u8, b),
                    LogChunk::Stderr(b) => (2u8, b),
                };
                let mut frame = Vec::with_capacity(bytes.len() + 5);
                frame.push(stream);
                frame.extend_from_slice(&(bytes.len() as u32).to_be_bytes());
                frame.extend_from_slice(&bytes);
                let _ = tx.send(Bytes::from(frame));
            })
            .await;
        if let Err(e) = result {
            tracing::warn!(error = %e, "log stream ended");
        }
    });
    let body = Body::from_stream(tokio_stream_of(rx).map(Ok::<_, std::convert::Infallible>));
    Ok(([(header::CONTENT_TYPE, LOG_STREAM)], body).into_response())
}

fn tokio_stream_of(
    mut rx: tokio::sync::mpsc::UnboundedReceiver<Bytes>,
) -> impl futures::Stream<Item = Bytes> {
    futures::stream::poll_fn(move |cx| rx.poll_recv(cx))
}

#[utoipa::path(get, path = "/metrics", tag = "daemon",
    responses((status = 200, description = "Prometheus' text format", content_type = "text/plain", body = String)))]
pub async fn metrics(State(s): State<AppState>) -> ApiResult<Response> {
    let text = crate::metrics::render(&s).await?;
    Ok((
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        text,
    )
        .into_response())
}

#[utoipa::path(get, path = "/v1/endpoints", tag = "cluster",
    responses((status = 200, description = "Where every tenant's ingest and admin answer now, each with the time it last changed. On one engine: the public host and the leased ports while the app runs. In Swarm mode: the address of the node its task runs on; the watcher follows the tasks the Swarm moves after a node event, and this route takes a fresh look too", body = Endpoints)))]
pub async fn endpoints(State(s): State<AppState>) -> ApiResult<Json<Endpoints>> {
    s.endpoints.refresh(&s.provisioner).await?;
    let view = s.endpoints.view(s.provisioner.config.docker.mode);
    Ok(Json(view.expect("a look was just taken")))
}

#[utoipa::path(get, path = "/v1/nodes", tag = "cluster",
    responses((status = 200, description = "Swarm mode: the nodes, their role, availability, state, address, reserved and total memory and CPU, and the tenants on each, as `provision --json node list` prints them; 400 `usage` on one engine", body = Vec<NodeInventory>)))]
pub async fn nodes(State(s): State<AppState>) -> ApiResult<Json<Vec<NodeInventory>>> {
    Ok(Json(s.provisioner.node_list().await?))
}

#[utoipa::path(get, path = "/v1/capacity", tag = "cluster",
    responses((status = 200, description = "Swarm mode: whether the cluster is N+1 and how many more tenants of today's size fit, as `provision --json capacity` prints it", body = CapacityReport)))]
pub async fn capacity(State(s): State<AppState>) -> ApiResult<Json<CapacityReport>> {
    Ok(Json(s.provisioner.capacity().await?))
}

#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DrainBody {
    /// How long to wait for the tasks to move and be healthy (default 180,
    /// at most 3600).
    pub timeout_secs: Option<u64>,
}

#[utoipa::path(post, path = "/v1/nodes/{node}/drain", tag = "cluster", params(("node" = String, Path, description = "The node's hostname or id")),
    request_body(content = Option<DrainBody>),
    responses((status = 200, description = "Drained: every tenant task moved and is healthy elsewhere; 504 `drain_incomplete` says which is not, 404 `unknown_node`", body = DrainReport)))]
pub async fn node_drain(
    State(s): State<AppState>,
    Path(node): Path<String>,
    JsonBody(body): JsonBody<DrainBody>,
) -> ApiResult<Json<DrainReport>> {
    let secs = body.timeout_secs.unwrap_or(180).min(3600);
    let timeout = std::time::Duration::from_secs(secs);
    Ok(Json(s.provisioner.node_drain(&node, timeout).await?))
}

#[utoipa::path(post, path = "/v1/nodes/{node}/activate", tag = "cluster", params(("node" = String, Path, description = "The node's hostname or id")),
    responses((status = 200, description = "The node takes tasks again", body = NodeChanged)))]
pub async fn node_activate(
    State(s): State<AppState>,
    Path(node): Path<String>,
) -> ApiResult<Json<NodeChanged>> {
    Ok(Json(s.provisioner.node_activate(&node).await?))
}
