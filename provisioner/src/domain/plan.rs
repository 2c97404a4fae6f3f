//! A [`Plan`]: the list of [`Step`]s an operation runs, each carrying its
//! whole intent (the container spec to create, the port to lease, the role
//! to wait for), so the executor needs nothing else to apply it and
//! `--dry-run` prints exactly what runs. A plan prints stably, one step a
//! line; the golden tests read that text.

use std::fmt;

use super::ids::{Pool, ProviderId, Role};
use super::spec::ContainerSpec;
use super::state::{Desired, GatewayTls, TenantLimits};

/// One step of a plan.
#[derive(Debug, Clone, PartialEq)]
pub enum Step {
    /// The shared network.
    CreateNetwork {
        name: String,
    },
    CreateCassandra {
        container: String,
    },
    StartCassandra {
        container: String,
    },
    /// Managed mode: take away the default superuser's login and superuser
    /// status, read the role back, and check that `cassandra`/`cassandra`
    /// is refused.
    RetireDefaultSuperuser {
        container: String,
    },
    /// A tenant the store does not know yet: its record with fresh secrets.
    RegisterTenant {
        desired: Desired,
    },
    SetDesired {
        desired: Desired,
    },
    /// The gateway port's TLS mode, as `start --gateway-tls` asked.
    SetGatewayTls {
        mode: GatewayTls,
    },
    /// The rate limit and the cap on gateways, as `start` asked.
    SetLimits {
        limits: TenantLimits,
    },
    /// Issues the tenant's gateway certificate from the provisioner's CA
    /// and puts it where the ingest container reads it (it reloads it).
    IssueGatewayCertificate {
        host: String,
        why: String,
    },
    CreateTenantNetwork {
        name: String,
    },
    AttachToNetwork {
        container: String,
        network: String,
    },
    RemoveTenantNetwork {
        name: String,
        detach: Option<String>,
    },
    LeasePort {
        pool: Pool,
        port: u16,
    },
    ApplySchema {
        keyspace: String,
        from: u32,
        to: u32,
    },
    EnsureRole {
        role: String,
        keyspace: String,
    },
    CreateAdminUser {
        keyspace: String,
        username: String,
    },
    RemoveContainer {
        name: String,
        why: &'static str,
    },
    /// Writes the container's secrets, creates it from `spec`, starts it.
    CreateContainer {
        spec: Box<ContainerSpec>,
        why: &'static str,
    },
    /// Writes the container's secrets again (a wiped data dir), starts it.
    StartContainer {
        name: String,
        role: Role,
    },
    StopContainer {
        name: String,
    },
    /// Copy-update-switch behind the front: the new container from `spec`
    /// beside the running one, healthy, then the front's target switched
    /// to it and the old one drained and removed; one that does not get
    /// healthy is removed and the old one keeps serving (rolled back).
    SwitchContainer {
        spec: Box<ContainerSpec>,
        why: &'static str,
    },
    /// `[front]`: the front on this host gets every tenant's routes now
    /// (started first when it does not run).
    SyncFront {
        start: bool,
    },
    WaitHealthy {
        role: Role,
        name: String,
    },
    ReleasePorts {
        ports: Vec<u16>,
    },
    RemoveSecrets,
    DropData {
        keyspace: String,
        role: String,
    },
    Forget,
    ReportOrphan {
        name: String,
        tenant: String,
    },
}

impl Step {
    /// Whether the step needs a Cassandra superuser session.
    pub fn needs_cql(&self) -> bool {
        matches!(
            self,
            Step::RetireDefaultSuperuser { .. }
                | Step::ApplySchema { .. }
                | Step::EnsureRole { .. }
                | Step::CreateAdminUser { .. }
                | Step::DropData { .. }
        )
    }

    /// Whether the step changes the shared infrastructure (run under its
    /// own lock).
    pub fn is_infrastructure(&self) -> bool {
        matches!(
            self,
            Step::CreateNetwork { .. } | Step::CreateCassandra { .. } | Step::StartCassandra { .. }
        )
    }

    /// Whether the step only reads or reports (a plan of such steps changes
    /// nothing).
    pub fn changes_nothing(&self) -> bool {
        matches!(self, Step::WaitHealthy { .. } | Step::ReportOrphan { .. })
    }
}

impl fmt::Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Step::CreateNetwork { name } => write!(f, "create network {name}"),
            Step::CreateCassandra { container } => {
                write!(f, "create and start cassandra container {container}")
            }
            Step::StartCassandra { container } => {
                write!(f, "start cassandra container {container}")
            }
            Step::RetireDefaultSuperuser { container } => write!(
                f,
                "retire the default superuser of {container} (cassandra/cassandra must be refused)"
            ),
            Step::RegisterTenant { desired } => {
                write!(
                    f,
                    "register the tenant with fresh secrets (desired {desired})"
                )
            }
            Step::SetDesired { desired } => write!(f, "set the desired state to {desired}"),
            Step::SetGatewayTls { mode } => write!(f, "set gateway TLS to {mode}"),
            Step::SetLimits { limits } => write!(f, "set the limits to {limits}"),
            Step::IssueGatewayCertificate { host, why } => {
                write!(f, "issue the gateway certificate for {host} ({why})")
            }
            Step::CreateTenantNetwork { name } => write!(f, "create tenant network {name}"),
            Step::AttachToNetwork { container, network } => {
                write!(f, "attach {container} to network {network}")
            }
            Step::RemoveTenantNetwork { name, .. } => write!(f, "remove tenant network {name}"),
            Step::LeasePort { pool, port } => write!(f, "lease {pool} port {port}"),
            Step::ApplySchema { keyspace, from, to } => write!(
                f,
                "create keyspace {keyspace} and migrate schema v{from} -> v{to}"
            ),
            Step::EnsureRole { role, .. } => write!(
                f,
                "create cassandra role {role} (select, modify on its keyspace)"
            ),
            Step::CreateAdminUser { keyspace, .. } => {
                write!(f, "create the first admin user in {keyspace}.admin_users")
            }
            Step::RemoveContainer { name, why } => write!(f, "remove container {name} ({why})"),
            Step::CreateContainer { spec, why } => match spec.host_port {
                Some(port) => write!(
                    f,
                    "create and start container {} from {} on port {port} ({why})",
                    spec.name, spec.image
                ),
                None => write!(
                    f,
                    "create and start container {} from {}, no published port ({why})",
                    spec.name, spec.image
                ),
            },
            Step::StartContainer { name, .. } => write!(f, "start container {name}"),
            Step::StopContainer { name } => write!(f, "stop container {name}"),
            Step::SwitchContainer { spec, why } => write!(
                f,
                "switch {} to a new container from {} behind the front, then drain the old one ({why})",
                spec.name, spec.image
            ),
            Step::SyncFront { start: true } => {
                write!(f, "start the front with every tenant's routes")
            }
            Step::SyncFront { start: false } => write!(f, "update the front's routes"),
            Step::WaitHealthy { name, .. } => write!(f, "wait until {name} is healthy"),
            Step::ReleasePorts { ports } => {
                let ports: Vec<String> = ports.iter().map(u16::to_string).collect();
                write!(f, "release ports {}", ports.join(", "))
            }
            Step::RemoveSecrets => write!(f, "remove the secrets files"),
            Step::DropData { keyspace, role } => {
                write!(f, "drop keyspace {keyspace} and role {role}")
            }
            Step::Forget => write!(f, "forget the tenant"),
            Step::ReportOrphan { name, tenant } => write!(
                f,
                "report orphan container {name} (tenant {tenant} is unknown; not removed)"
            ),
        }
    }
}

/// The steps that take one tenant (or the whole host) to its desired state.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Plan {
    pub tenant: Option<ProviderId>,
    pub steps: Vec<Step>,
    /// What the operator should know and the plan does not change (e.g. a
    /// managed Cassandra container built from an older image).
    pub notices: Vec<String>,
}

impl Plan {
    pub fn is_empty(&self) -> bool {
        self.steps.is_empty()
    }

    /// Whether running the plan changes anything.
    pub fn changes(&self) -> bool {
        self.steps.iter().any(|s| !s.changes_nothing())
    }

    /// The steps as printed, one line each.
    pub fn lines(&self) -> Vec<String> {
        self.steps.iter().map(Step::to_string).collect()
    }
}

impl fmt::Display for Plan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.tenant {
            Some(t) => writeln!(f, "plan for tenant {t}:")?,
            None => writeln!(f, "plan:")?,
        }
        if self.steps.is_empty() {
            writeln!(f, "  nothing to do")?;
        }
        for step in &self.steps {
            writeln!(f, "  {step}")?;
        }
        for notice in &self.notices {
            writeln!(f, "note: {notice}")?;
        }
        Ok(())
    }
}
