//! What the operations answer: serializable reports (the CLI prints them
//! as text, or as one JSON document with `--json`).

use serde::{Deserialize, Serialize};

use crate::backend::{ContainerDetails, Usage};
use crate::domain::{Desired, GatewayTls, Plan, ProviderId, Role};
use crate::error::ErrorInfo;

/// What `start` did (or would do), and where the tenant answers.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StartReport {
    pub provider: ProviderId,
    pub state: StartState,
    pub gateway_port: Option<u16>,
    pub admin_port: Option<u16>,
    pub gateway_endpoint: Option<String>,
    pub admin_url: Option<String>,
    pub keyspace: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub admin_user: Option<String>,
    /// The first admin user's password: only in the answer of the start
    /// that created it, and only once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub admin_password: Option<String>,
    pub dry_run: bool,
    pub changed: bool,
    /// The steps run (or, for a dry run, planned), as printed.
    pub plan: Vec<String>,
    /// What the operator should know and `start` does not change.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notices: Vec<String>,
    /// The plan as `--dry-run` prints it.
    pub plan_text: String,
}

/// What `stop` or `destroy` did (or would do).
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PlanReport {
    pub provider: Option<ProviderId>,
    pub dry_run: bool,
    pub plan: Vec<String>,
    /// What the operator should know and the plan does not change.
    #[serde(default)]
    pub notices: Vec<String>,
    /// The plan as `--dry-run` and `provision plan` print it.
    pub plan_text: String,
}

impl PlanReport {
    pub fn new(plan: &Plan, dry_run: bool) -> PlanReport {
        PlanReport {
            provider: plan.tenant.clone(),
            dry_run,
            plan: plan.lines(),
            notices: plan.notices.clone(),
            plan_text: plan.to_string(),
        }
    }
}

/// What an operation answers, as its log keeps it.
pub trait Answer: Serialize {
    /// The error of an answer that reports a failure (a reconcile whose
    /// tenant failed); the operation is then logged as failed.
    fn failure(&self) -> Option<ErrorInfo> {
        None
    }
}

impl Answer for StartReport {}
impl Answer for PlanReport {}
impl Answer for () {}

impl Answer for ReconcileReport {
    fn failure(&self) -> Option<ErrorInfo> {
        self.first_error().cloned()
    }
}

/// The keys of an answer shown to its requester once and then forgotten.
pub const SHOWN_ONCE: &[&str] = &["admin_password"];

/// Removes what is shown once from an answer.
pub fn forget_shown_once(answer: &mut serde_json::Value) {
    if let Some(object) = answer.as_object_mut() {
        for key in SHOWN_ONCE {
            object.remove(*key);
        }
    }
}

/// How one tenant's reconcile ended.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TenantResult {
    /// Nothing to do.
    Unchanged,
    /// A dry run: the plan was not run.
    Planned,
    Ok,
    Failed,
}

/// One tenant of a `reconcile`.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TenantReconcile {
    pub provider: ProviderId,
    pub result: TenantResult,
    pub plan: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<ErrorInfo>,
}

/// What `reconcile` did (or would do): a result per tenant (one failing
/// tenant does not stop the others) and the orphans.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ReconcileReport {
    pub dry_run: bool,
    /// Every tenant's steps, `<tenant>: <step>`, then the orphans.
    pub plan: Vec<String>,
    pub tenants: Vec<TenantReconcile>,
    pub orphans: Vec<String>,
    /// What `reconcile` prints.
    pub plan_text: String,
}

impl ReconcileReport {
    /// The first failure, whose exit code the CLI ends with.
    pub fn first_error(&self) -> Option<&ErrorInfo> {
        self.tenants.iter().find_map(|t| t.error.as_ref())
    }
}

/// A tenant's state as `status` sums it up (over its three apps).
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TenantState {
    /// Its apps run and are healthy.
    Running,
    /// They run, not all healthy yet.
    Starting,
    Stopped,
    Destroyed,
    /// Anything else (one app down).
    Degraded,
}

impl std::fmt::Display for TenantState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let text = serde_json::to_value(self).expect("a state serializes");
        f.pad(text.as_str().unwrap_or_default())
    }
}

/// What a `start` left the tenant in.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StartState {
    Running,
    /// A dry run: nothing was done.
    Planned,
}

/// One tenant as `status` and `list` show it.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TenantStatus {
    pub provider: ProviderId,
    pub desired: Desired,
    pub state: TenantState,
    pub gateway_port: Option<u16>,
    /// TLS on the gateway port: off, optional or required.
    #[serde(default)]
    pub gateway_tls: GatewayTls,
    pub admin_port: Option<u16>,
    pub admin_url: Option<String>,
    /// Where gateways connect: `[ports] public_host` and the gateway port
    /// on one engine; in Swarm mode the address of the node ingest's task
    /// runs on (ports are published in host mode), so it moves with the
    /// task; null while no task runs.
    #[serde(default)]
    pub gateway_endpoint: Option<String>,
    /// `engine` or `swarm` (`[docker] mode`).
    #[serde(default)]
    pub mode: crate::config::DockerMode,
    pub keyspace: String,
    /// The Cassandra cluster its keyspace is on (`[[cassandra.clusters]]`'s
    /// name, or `default`).
    pub cluster: String,
    /// Readings per second the tenant's ingest takes in at most
    /// (`start --max-readings-per-sec`); null: unlimited.
    #[serde(default)]
    pub max_readings_per_sec: Option<u32>,
    /// Gateway connections at once (`start --max-gateways`); null:
    /// ingest's default (1000).
    #[serde(default)]
    pub max_gateways: Option<u32>,
    /// Logged-in gateway connections open now, by transport, as the ingest
    /// container's newest health check counted them (every 10 s); null
    /// until one passed.
    #[serde(default)]
    pub connections: Option<GatewayConnections>,
    /// Whether the config has a `[mail]` relay (the notifier's health
    /// says the same once its check ran).
    #[serde(default)]
    pub mail_configured: bool,
    /// The notifier's newest health check (every 10 s): mail on or off,
    /// its rules, what fires, mails pending and failed today; null until
    /// one passed.
    #[serde(default)]
    pub notifier: Option<NotifierStatus>,
    pub containers: Vec<ContainerStatus>,
    /// Set by the daemon's watcher while it backs off repairing the tenant.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backoff: Option<Backoff>,
}

/// Logged-in gateway connections of a tenant, by transport.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct GatewayConnections {
    pub plain: u64,
    pub tls: u64,
}

/// What the notifier's health line says (`tenant_schema::health::NotifierHealth`).
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NotifierStatus {
    /// `on` or `off` (no `[mail]` relay: states are tracked, nothing is
    /// sent).
    pub mail: String,
    /// Alert rules.
    pub rules: u64,
    /// (rule, gateway) pairs firing now.
    pub firing: u64,
    /// Mails not yet taken by the relay.
    pub pending: u64,
    /// Mails the relay refused for good today.
    pub failed: u64,
}

#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ContainerStatus {
    pub role: Role,
    #[serde(flatten)]
    pub details: ContainerDetails,
    #[serde(flatten)]
    pub usage: Option<Usage>,
}

/// What the daemon's watcher is doing about a tenant that keeps failing.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Backoff {
    /// Repairs in a row that did not last.
    pub repairs: u32,
    /// When the watcher tries again (RFC 3339).
    pub retry_at: String,
    /// Why the last repair was needed or failed.
    pub reason: String,
}
