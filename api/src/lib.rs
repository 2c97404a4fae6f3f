//! `provisiond`: the REST control plane over the provisioner library. It
//! calls the same operations as the CLI and writes no logic of its own;
//! its JSON bodies are the objects the CLI prints with `--json`, and its
//! errors are problem documents ([`problem`]) with the CLI's error kinds.
//!
//! - [`routes`]: the `/v1` contract, one handler per route;
//! - [`jobs`]: the queue that runs accepted operations, one at a time per
//!   tenant, and the long polls that wait for them;
//! - [`watcher`]: keeps every tenant at its desired state;
//! - [`cache`]: the tenants' status as the list and the metrics serve it;
//! - [`endpoints`]: where each tenant app answers now, as the watcher
//!   follows it;
//! - [`metrics`]: `/metrics`, in Prometheus' text format;
//! - [`openapi`]: the OpenAPI 3.1 document, from the handlers' annotations;
//! - [`auth`]: who asks (the Unix socket's peer, or an operator token on
//!   TCP); [`tls`]: rustls on the TCP listener.

pub mod auth;
pub mod cache;
pub mod endpoints;
pub mod jobs;
pub mod metrics;
pub mod openapi;
pub mod problem;
pub mod routes;
pub mod tls;
pub mod watcher;

use std::sync::Arc;

use axum::routing::{delete, get, post, put};
use axum::Router;
use provisioner::Provisioner;

use cache::StatusCache;
use endpoints::EndpointBook;
use jobs::Jobs;
use metrics::Metrics;
use watcher::Watcher;

/// What every handler gets.
#[derive(Clone)]
pub struct AppState {
    /// The library, with the daemon's change hook.
    pub provisioner: Provisioner,
    pub jobs: Arc<Jobs>,
    pub cache: Arc<StatusCache>,
    pub metrics: Arc<Metrics>,
    pub watcher: Arc<Watcher>,
    pub endpoints: Arc<EndpointBook>,
}

impl AppState {
    /// The daemon's parts over `provisioner`: a change to an operation
    /// wakes the long polls and makes the status cache stale.
    pub fn new(provisioner: Provisioner) -> AppState {
        let (changes, _) = tokio::sync::watch::channel(0u64);
        let changes = Arc::new(changes);
        let cache = Arc::new(StatusCache::default());
        let metrics = Arc::new(Metrics::default());
        let hook = (changes.clone(), cache.clone());
        let provisioner = provisioner.on_change(move || {
            hook.0.send_modify(|n| *n = n.wrapping_add(1));
            hook.1.invalidate();
        });
        let jobs = Arc::new(Jobs::new(provisioner.clone(), changes, metrics.clone()));
        let endpoints = Arc::new(EndpointBook::new(metrics.clone()));
        let watcher = Arc::new(Watcher::new(
            provisioner.clone(),
            jobs.clone(),
            cache.clone(),
            metrics.clone(),
            endpoints.clone(),
        ));
        AppState {
            provisioner,
            jobs,
            cache,
            metrics,
            watcher,
            endpoints,
        }
    }
}

/// The daemon's routes, before a listener names the caller.
pub fn routes(state: AppState) -> Router {
    Router::new()
        .route("/healthz", get(openapi::healthz))
        .route("/v1/openapi.json", get(openapi::openapi_json))
        .route("/metrics", get(routes::metrics))
        .route("/v1/tenants", get(routes::tenants))
        .route("/v1/tenants/{id}", get(routes::tenant))
        .route("/v1/tenants/{id}/start", post(routes::start))
        .route("/v1/tenants/{id}/stop", post(routes::stop))
        .route("/v1/tenants/{id}/destroy", post(routes::destroy))
        .route("/v1/tenants/{id}/plan", get(routes::plan))
        .route("/v1/tenants/{id}/logs", get(routes::logs))
        .route(
            "/v1/tenants/{id}/gateways",
            post(routes::gateway_add).get(routes::gateway_list),
        )
        .route("/v1/tenants/{id}/gateway-ca", get(routes::gateway_ca))
        .route(
            "/v1/tenants/{id}/gateways/{gateway}",
            delete(routes::gateway_revoke),
        )
        .route(
            "/v1/tenants/{id}/alerts",
            post(routes::alert_add).get(routes::alert_list),
        )
        .route(
            "/v1/tenants/{id}/alerts/{rule}",
            delete(routes::alert_remove),
        )
        .route("/v1/tenants/{id}/report", put(routes::report_schedule))
        .route("/v1/tenants/{id}/report/send", post(routes::report_send))
        .route("/v1/reconcile", post(routes::reconcile))
        .route("/v1/tenants/{id}/upgrade", post(routes::upgrade))
        .route("/v1/upgrade", post(routes::upgrade_all))
        .route("/v1/operations", get(routes::operations))
        .route("/v1/operations/{op}", get(routes::operation))
        .route("/v1/endpoints", get(routes::endpoints))
        .route("/v1/nodes", get(routes::nodes))
        .route("/v1/capacity", get(routes::capacity))
        .route("/v1/nodes/{node}/drain", post(routes::node_drain))
        .route("/v1/nodes/{node}/activate", post(routes::node_activate))
        .fallback(|| async {
            problem::ApiError::invalid(axum::http::StatusCode::NOT_FOUND, "no such route")
        })
        .with_state(state)
}

/// The routes as the Unix socket serves them: the caller is the socket's
/// peer.
pub fn unix_router(state: AppState) -> Router {
    routes(state).layer(axum::middleware::from_fn(auth::unix_caller))
}

/// The routes as TCP serves them: every request needs an operator token.
pub fn tcp_router(state: AppState) -> Router {
    routes(state.clone()).layer(axum::middleware::from_fn_with_state(
        state,
        auth::require_token,
    ))
}
