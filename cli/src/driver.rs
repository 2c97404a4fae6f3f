//! Where a command runs: on this machine through the library
//! ([`Driver::Local`], the default), or through the daemon
//! ([`Driver::Remote`], with `--server`). Both answer the same report
//! types, so every subcommand prints the same text and JSON either way,
//! and errors end with the same exit codes.

use std::io::Write;
use std::time::Duration;

use hyper::Method;
use provisioner::backend::LogChunk;
use provisioner::cql::gateways::GatewayInfo;
use provisioner::domain::capacity::NodeInventory;
use provisioner::ops::alerts::{
    AlertAdded, AlertList, AlertRemoved, AlertRequest, ReportSchedule, ReportScheduleRequest,
    ReportSendRequest, ReportSent,
};
use provisioner::ops::nodes::{CapacityReport, DrainReport, NodeChanged};
use provisioner::ops::{
    PlanReport, ReconcileReport, StartReport, TenantStatus, UpgradeOptions, UpgradeReport,
};
use provisioner::store::operations::{OperationRecord, OperationState};
use provisioner::{ErrorInfo, ErrorKind, ProviderId, Provisioner, Role, StartOptions};
use serde::de::DeserializeOwned;
use serde_json::{json, Value};

use crate::client::{Client, RemoteError};

/// How long one long poll of an operation waits.
const POLL: Duration = Duration::from_secs(60);

pub enum Driver {
    Local(Box<Provisioner>),
    Remote(Client),
}

/// A gateway just commissioned: its token, shown once.
#[derive(Debug, serde::Deserialize)]
pub struct Commissioned {
    pub token: String,
}

impl Driver {
    pub async fn start(
        &self,
        id: &ProviderId,
        options: StartOptions,
    ) -> anyhow::Result<StartReport> {
        match self {
            Driver::Local(p) => Ok(p.start(id, options).await?),
            Driver::Remote(c) => {
                let body = json!({
                    "gateway_port": options.gateway_port,
                    "admin_port": options.admin_port,
                    "gateway_tls": options.gateway_tls,
                    "max_readings_per_sec": options.max_readings_per_sec,
                    "max_gateways": options.max_gateways,
                    "allow_overcommit": options.allow_overcommit,
                    "dry_run": options.dry_run,
                });
                let path = format!("/v1/tenants/{id}/start");
                match options.dry_run {
                    true => Ok(c.json(Method::POST, &path, Some(&body)).await?),
                    false => operation(c, &path, Some(&body)).await,
                }
            }
        }
    }

    pub async fn stop(&self, id: &ProviderId, dry_run: bool) -> anyhow::Result<PlanReport> {
        match self {
            Driver::Local(p) => Ok(p.stop(id, dry_run).await?),
            Driver::Remote(c) => {
                let path = format!("/v1/tenants/{id}/stop");
                let body = json!({ "dry_run": dry_run });
                match dry_run {
                    true => Ok(c.json(Method::POST, &path, Some(&body)).await?),
                    false => operation(c, &path, None::<&()>).await,
                }
            }
        }
    }

    pub async fn destroy(
        &self,
        id: &ProviderId,
        purge_data: bool,
        dry_run: bool,
    ) -> anyhow::Result<PlanReport> {
        match self {
            Driver::Local(p) => Ok(p.destroy(id, purge_data, dry_run).await?),
            Driver::Remote(c) => {
                let path = format!("/v1/tenants/{id}/destroy");
                let body = json!({ "purge_data": purge_data, "dry_run": dry_run });
                match dry_run {
                    true => Ok(c.json(Method::POST, &path, Some(&body)).await?),
                    false => operation(c, &path, Some(&body)).await,
                }
            }
        }
    }

    pub async fn reconcile(&self, dry_run: bool) -> anyhow::Result<ReconcileReport> {
        match self {
            Driver::Local(p) => Ok(p.reconcile(dry_run).await?),
            Driver::Remote(c) => {
                let body = json!({ "dry_run": dry_run });
                match dry_run {
                    true => Ok(c.json(Method::POST, "/v1/reconcile", Some(&body)).await?),
                    false => operation(c, "/v1/reconcile", None::<&()>).await,
                }
            }
        }
    }

    /// One tenant's upgrade (`id`), or every running tenant's.
    pub async fn upgrade(
        &self,
        id: Option<&ProviderId>,
        options: &UpgradeOptions,
    ) -> anyhow::Result<UpgradeReport> {
        match (self, id) {
            (Driver::Local(p), Some(id)) => Ok(p.upgrade(id, options).await?),
            (Driver::Local(p), None) => Ok(p.upgrade_all(options).await?),
            (Driver::Remote(c), id) => {
                let body = json!({
                    "image_tag": options.image_tag,
                    "parallelism": options.parallelism,
                    "keep_going": options.keep_going,
                });
                let path = match id {
                    Some(id) => format!("/v1/tenants/{id}/upgrade"),
                    None => "/v1/upgrade".to_owned(),
                };
                operation(c, &path, Some(&body)).await
            }
        }
    }

    pub async fn plan(&self, id: &ProviderId, options: StartOptions) -> anyhow::Result<PlanReport> {
        match self {
            Driver::Local(p) => Ok(PlanReport::new(&p.plan(id, options).await?, true)),
            Driver::Remote(c) => {
                let mut query = Vec::new();
                if let Some(port) = options.gateway_port {
                    query.push(format!("gateway_port={port}"));
                }
                if let Some(port) = options.admin_port {
                    query.push(format!("admin_port={port}"));
                }
                if let Some(mode) = options.gateway_tls {
                    query.push(format!("gateway_tls={mode}"));
                }
                if let Some(n) = options.max_readings_per_sec {
                    query.push(format!("max_readings_per_sec={n}"));
                }
                if let Some(n) = options.max_gateways {
                    query.push(format!("max_gateways={n}"));
                }
                let query = match query.is_empty() {
                    true => String::new(),
                    false => format!("?{}", query.join("&")),
                };
                Ok(c.get(&format!("/v1/tenants/{id}/plan{query}")).await?)
            }
        }
    }

    /// One tenant's status, or every tenant's.
    pub async fn status(&self, id: Option<&ProviderId>) -> anyhow::Result<Vec<TenantStatus>> {
        match (self, id) {
            (Driver::Local(p), _) => Ok(p.status(id).await?),
            (Driver::Remote(c), Some(id)) => Ok(vec![c.get(&format!("/v1/tenants/{id}")).await?]),
            (Driver::Remote(c), None) => Ok(c.get("/v1/tenants").await?),
        }
    }

    pub async fn node_list(&self) -> anyhow::Result<Vec<NodeInventory>> {
        match self {
            Driver::Local(p) => Ok(p.node_list().await?),
            Driver::Remote(c) => Ok(c.get("/v1/nodes").await?),
        }
    }

    pub async fn capacity(&self) -> anyhow::Result<CapacityReport> {
        match self {
            Driver::Local(p) => Ok(p.capacity().await?),
            Driver::Remote(c) => Ok(c.get("/v1/capacity").await?),
        }
    }

    pub async fn node_drain(&self, node: &str, timeout: Duration) -> anyhow::Result<DrainReport> {
        match self {
            Driver::Local(p) => Ok(p.node_drain(node, timeout).await?),
            Driver::Remote(c) => {
                let body = json!({ "timeout_secs": timeout.as_secs() });
                let path = format!("/v1/nodes/{node}/drain");
                Ok(c.json(Method::POST, &path, Some(&body)).await?)
            }
        }
    }

    pub async fn node_activate(&self, node: &str) -> anyhow::Result<NodeChanged> {
        match self {
            Driver::Local(p) => Ok(p.node_activate(node).await?),
            Driver::Remote(c) => {
                let path = format!("/v1/nodes/{node}/activate");
                Ok(c.json(Method::POST, &path, None::<&()>).await?)
            }
        }
    }

    pub async fn history(&self, id: Option<&ProviderId>) -> anyhow::Result<Vec<OperationRecord>> {
        match (self, id) {
            (Driver::Local(p), _) => Ok(p.history(id).await?),
            (Driver::Remote(c), Some(id)) => {
                Ok(c.get(&format!("/v1/operations?tenant={id}")).await?)
            }
            (Driver::Remote(c), None) => Ok(c.get("/v1/operations").await?),
        }
    }

    pub async fn gateway_add(
        &self,
        id: &ProviderId,
        gateway: &str,
        name: Option<&str>,
    ) -> anyhow::Result<String> {
        match self {
            Driver::Local(p) => Ok(p.gateway_add(id, gateway, name).await?),
            Driver::Remote(c) => {
                let body = json!({ "gateway": gateway, "name": name });
                let path = format!("/v1/tenants/{id}/gateways");
                let made: Commissioned = c.json(Method::POST, &path, Some(&body)).await?;
                Ok(made.token)
            }
        }
    }

    /// The PEM gateways of `id` must trust.
    pub async fn gateway_ca(&self, id: &ProviderId) -> anyhow::Result<String> {
        match self {
            Driver::Local(p) => Ok(p.gateway_ca(id).await?),
            Driver::Remote(c) => Ok(c.text(&format!("/v1/tenants/{id}/gateway-ca")).await?),
        }
    }

    pub async fn gateway_list(&self, id: &ProviderId) -> anyhow::Result<Vec<GatewayInfo>> {
        match self {
            Driver::Local(p) => Ok(p.gateway_list(id).await?),
            Driver::Remote(c) => Ok(c.get(&format!("/v1/tenants/{id}/gateways")).await?),
        }
    }

    pub async fn gateway_revoke(&self, id: &ProviderId, gateway: &str) -> anyhow::Result<()> {
        match self {
            Driver::Local(p) => Ok(p.gateway_revoke(id, gateway).await?),
            Driver::Remote(c) => {
                let path = format!("/v1/tenants/{id}/gateways/{gateway}");
                let _: Value = c.json(Method::DELETE, &path, None::<&()>).await?;
                Ok(())
            }
        }
    }

    pub async fn alert_add(
        &self,
        id: &ProviderId,
        request: &AlertRequest,
    ) -> anyhow::Result<AlertAdded> {
        match self {
            Driver::Local(p) => Ok(p.alert_add(id, request).await?),
            Driver::Remote(c) => {
                let path = format!("/v1/tenants/{id}/alerts");
                Ok(c.json(Method::POST, &path, Some(request)).await?)
            }
        }
    }

    pub async fn alert_list(&self, id: &ProviderId) -> anyhow::Result<AlertList> {
        match self {
            Driver::Local(p) => Ok(p.alert_list(id).await?),
            Driver::Remote(c) => Ok(c.get(&format!("/v1/tenants/{id}/alerts")).await?),
        }
    }

    pub async fn alert_remove(&self, id: &ProviderId, rule: &str) -> anyhow::Result<AlertRemoved> {
        match self {
            Driver::Local(p) => Ok(p.alert_remove(id, rule).await?),
            Driver::Remote(c) => {
                let path = format!("/v1/tenants/{id}/alerts/{}", path_segment(rule));
                Ok(c.json(Method::DELETE, &path, None::<&()>).await?)
            }
        }
    }

    pub async fn report_schedule(
        &self,
        id: &ProviderId,
        request: &ReportScheduleRequest,
    ) -> anyhow::Result<ReportSchedule> {
        match self {
            Driver::Local(p) => Ok(p.report_schedule(id, request).await?),
            Driver::Remote(c) => {
                let path = format!("/v1/tenants/{id}/report");
                Ok(c.json(Method::PUT, &path, Some(request)).await?)
            }
        }
    }

    pub async fn report_send(
        &self,
        id: &ProviderId,
        request: &ReportSendRequest,
    ) -> anyhow::Result<ReportSent> {
        match self {
            Driver::Local(p) => Ok(p.report_send(id, request).await?),
            Driver::Remote(c) => {
                let path = format!("/v1/tenants/{id}/report/send");
                Ok(c.json(Method::POST, &path, Some(request)).await?)
            }
        }
    }

    /// Writes a tenant app's log to stdout and stderr, as the app did.
    pub async fn logs(
        &self,
        id: &ProviderId,
        role: Role,
        follow: bool,
        tail: Option<u64>,
    ) -> anyhow::Result<()> {
        let print = |chunk: LogChunk| {
            let _ = match chunk {
                LogChunk::Stderr(bytes) => std::io::stderr().write_all(&bytes),
                LogChunk::Stdout(bytes) => std::io::stdout().write_all(&bytes),
            };
        };
        match self {
            Driver::Local(p) => Ok(p.logs(id, role, follow, tail, print).await?),
            Driver::Remote(c) => {
                let mut path = format!(
                    "/v1/tenants/{id}/logs?role={}&follow={follow}",
                    role.as_str()
                );
                if let Some(n) = tail {
                    path.push_str(&format!("&tail={n}"));
                }
                let (_, response) = c.call(Method::GET, &path, None::<&()>).await?;
                log_frames(response, print).await
            }
        }
    }
}

/// A path segment as typed (a rule id is letters and digits; anything
/// else is percent-encoded, so the daemon refuses it as the library does).
fn path_segment(raw: &str) -> String {
    raw.bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'_' | b'.' => (b as char).to_string(),
            b => format!("%{b:02X}"),
        })
        .collect()
}

/// Splits the daemon's log stream into its frames (one byte for the
/// stream, a big-endian u32 length, the bytes).
async fn log_frames(
    response: hyper::Response<hyper::body::Incoming>,
    mut out: impl FnMut(LogChunk),
) -> anyhow::Result<()> {
    use http_body_util::BodyExt;
    let mut body = response.into_body();
    let mut pending: Vec<u8> = Vec::new();
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| {
            RemoteError::from(ErrorInfo::new(ErrorKind::DaemonUnreachable, e.to_string()))
        })?;
        let Ok(data) = frame.into_data() else {
            continue;
        };
        pending.extend_from_slice(&data);
        while pending.len() >= 5 {
            let len = u32::from_be_bytes([pending[1], pending[2], pending[3], pending[4]]) as usize;
            if pending.len() < 5 + len {
                break;
            }
            let bytes = pending[5..5 + len].to_vec();
            out(match pending[0] {
                2 => LogChunk::Stderr(bytes),
                _ => LogChunk::Stdout(bytes),
            });
            pending.drain(..5 + len);
        }
    }
    Ok(())
}

/// Queues an operation and follows it to its end, printing its steps on
/// stderr as they are done; answers what it answered (or its error).
async fn operation<T: DeserializeOwned>(
    c: &Client,
    path: &str,
    body: Option<&impl serde::Serialize>,
) -> anyhow::Result<T> {
    #[derive(serde::Deserialize)]
    struct Accepted {
        operation: String,
    }
    let accepted: Accepted = c.json(Method::POST, path, body).await?;
    let op = accepted.operation;
    let mut shown = 0;
    loop {
        let record: OperationRecord = c
            .get(&format!(
                "/v1/operations/{op}?wait={}&after_step={shown}",
                POLL.as_secs()
            ))
            .await?;
        for step in record.progress.iter().skip(shown) {
            eprintln!("  [operation {op}] {step}");
        }
        shown = shown.max(record.progress.len());
        match record.state {
            OperationState::Queued | OperationState::Running => continue,
            OperationState::Succeeded | OperationState::Failed => {
                // A report that carries a failure (a reconcile) is the
                // answer; the caller ends with the failure's exit code.
                if let Some(result) = record.result {
                    if let Ok(answer) = serde_json::from_value(result) {
                        return Ok(answer);
                    }
                }
                let error = record.error.unwrap_or_else(|| {
                    ErrorInfo::new(ErrorKind::Other, format!("operation {op} answered nothing"))
                });
                return Err(RemoteError::from(error).into());
            }
            OperationState::Interrupted => {
                return Err(RemoteError::from(ErrorInfo::new(
                    ErrorKind::Other,
                    format!(
                        "operation {op} was interrupted (the daemon stopped while it ran); \
                         `provision reconcile` converges the tenant"
                    ),
                ))
                .into());
            }
        }
    }
}
