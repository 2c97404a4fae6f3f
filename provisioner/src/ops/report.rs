//! What the operations answer: serializable reports (the CLI prints them
//! as text, or as one JSON document with `--json`).

use serde::Serialize;

use crate::backend::{ContainerDetails, Usage};
use crate::domain::{Desired, Plan, ProviderId, Role};
use crate::error::{Error, ErrorKind};

/// What `start` did (or would do), and where the tenant answers.
#[derive(Debug, Clone, Serialize)]
pub struct StartReport {
    pub provider: ProviderId,
    pub state: StartState,
    pub gateway_port: Option<u16>,
    pub admin_port: Option<u16>,
    pub gateway_endpoint: Option<String>,
    pub admin_url: Option<String>,
    pub keyspace: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub admin_user: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub admin_password: Option<String>,
    pub dry_run: bool,
    pub changed: bool,
    /// The steps run (or, for a dry run, planned), as printed.
    pub plan: Vec<String>,
    /// What the operator should know and `start` does not change.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub notices: Vec<String>,
    #[serde(skip)]
    pub plan_text: String,
}

/// What `stop` or `destroy` did (or would do).
#[derive(Debug, Clone, Serialize)]
pub struct PlanReport {
    pub provider: Option<ProviderId>,
    pub dry_run: bool,
    pub plan: Vec<String>,
    #[serde(skip)]
    pub plan_text: String,
}

impl PlanReport {
    pub fn new(plan: &Plan, dry_run: bool) -> PlanReport {
        PlanReport {
            provider: plan.tenant.clone(),
            dry_run,
            plan: plan.lines(),
            plan_text: plan.to_string(),
        }
    }
}

/// An error as a report carries it.
#[derive(Debug, Clone, Serialize)]
pub struct ErrorInfo {
    pub kind: ErrorKind,
    pub message: String,
    pub exit_code: u8,
}

impl From<&Error> for ErrorInfo {
    fn from(e: &Error) -> ErrorInfo {
        ErrorInfo {
            kind: e.kind(),
            message: e.to_string(),
            exit_code: e.exit_code(),
        }
    }
}

/// How one tenant's reconcile ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
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
#[derive(Debug, Clone, Serialize)]
pub struct TenantReconcile {
    pub provider: ProviderId,
    pub result: TenantResult,
    pub plan: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<ErrorInfo>,
}

/// What `reconcile` did (or would do): a result per tenant (one failing
/// tenant does not stop the others) and the orphans.
#[derive(Debug, Clone, Serialize)]
pub struct ReconcileReport {
    pub dry_run: bool,
    /// Every tenant's steps, `<tenant>: <step>`, then the orphans.
    pub plan: Vec<String>,
    pub tenants: Vec<TenantReconcile>,
    pub orphans: Vec<String>,
    #[serde(skip)]
    pub plan_text: String,
}

impl ReconcileReport {
    /// The first failure, whose exit code the CLI ends with.
    pub fn first_error(&self) -> Option<&ErrorInfo> {
        self.tenants.iter().find_map(|t| t.error.as_ref())
    }
}

/// A tenant's state as `status` sums it up.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum TenantState {
    /// Both apps run and are healthy.
    Running,
    /// Both run, not both healthy yet.
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
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum StartState {
    Running,
    /// A dry run: nothing was done.
    Planned,
}

/// One tenant as `status` and `list` show it.
#[derive(Debug, Clone, Serialize)]
pub struct TenantStatus {
    pub provider: ProviderId,
    pub desired: Desired,
    pub state: TenantState,
    pub gateway_port: Option<u16>,
    pub admin_port: Option<u16>,
    pub admin_url: Option<String>,
    pub keyspace: String,
    pub containers: Vec<ContainerStatus>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ContainerStatus {
    pub role: Role,
    #[serde(flatten)]
    pub details: ContainerDetails,
    #[serde(flatten)]
    pub usage: Option<Usage>,
}
