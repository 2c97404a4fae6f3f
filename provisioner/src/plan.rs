//! Desired state + observed state → [`Plan`], as pure functions. A plan
//! prints stably (one step a line), so `--dry-run`, `provision plan` and
//! the golden tests below all read the same text; the executor
//! ([`crate::execute`]) runs the steps in order.

use std::fmt;

/// The two apps of a tenant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Role {
    Ingest,
    Admin,
}

impl Role {
    pub const ALL: [Role; 2] = [Role::Ingest, Role::Admin];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Ingest => crate::labels::ROLE_INGEST,
            Role::Admin => crate::labels::ROLE_ADMIN,
        }
    }

    pub fn parse(s: &str) -> Option<Role> {
        Role::ALL.into_iter().find(|r| r.as_str() == s)
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The two port pools.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Pool {
    Gateway,
    Admin,
}

impl Pool {
    pub fn as_str(self) -> &'static str {
        match self {
            Pool::Gateway => "gateway",
            Pool::Admin => "admin",
        }
    }

    pub fn parse(s: &str) -> Option<Pool> {
        match s {
            "gateway" => Some(Pool::Gateway),
            "admin" => Some(Pool::Admin),
            _ => None,
        }
    }
}

/// What a provider should be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Desired {
    Running,
    Stopped,
    /// Containers removed and ports released; data kept.
    Destroyed,
}

impl Desired {
    pub fn as_str(self) -> &'static str {
        match self {
            Desired::Running => "running",
            Desired::Stopped => "stopped",
            Desired::Destroyed => "destroyed",
        }
    }

    pub fn parse(s: &str) -> Option<Desired> {
        match s {
            "running" => Some(Desired::Running),
            "stopped" => Some(Desired::Stopped),
            "destroyed" => Some(Desired::Destroyed),
            _ => None,
        }
    }
}

/// A container's health as Docker reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Health {
    Healthy,
    Unhealthy,
    Starting,
    /// No healthcheck, or not running.
    Unknown,
}

impl Health {
    pub fn as_str(self) -> &'static str {
        match self {
            Health::Healthy => "healthy",
            Health::Unhealthy => "unhealthy",
            Health::Starting => "starting",
            Health::Unknown => "-",
        }
    }
}

/// A container found by our labels.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObservedContainer {
    pub id: String,
    pub name: String,
    pub tenant: String,
    pub role: String,
    pub running: bool,
    pub health: Health,
    pub config_hash: Option<String>,
}

/// The shared infrastructure as observed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CassandraObserved {
    /// External cluster: nothing to manage.
    External,
    Missing,
    Stopped,
    Running,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObservedInfra {
    pub network: String,
    pub network_exists: bool,
    pub cassandra_container: String,
    pub cassandra: CassandraObserved,
    /// Managed mode: the container was created from another build than the
    /// one `cassandra.image` names now, so it runs that build's
    /// configuration. Reported, never acted on: recreating the node stops
    /// every tenant's storage, so the operator chooses when.
    pub cassandra_outdated: bool,
    /// Managed mode: the container was created before its hardening
    /// (read-only root, no capabilities, limits, health check). Reported
    /// like [`ObservedInfra::cassandra_outdated`], for the same reason.
    pub cassandra_unhardened: bool,
    /// Managed mode: the default superuser `cassandra`/`cassandra` logged
    /// in when tried (only tried while the node runs).
    pub default_superuser_login: bool,
    /// The Cassandra container to attach to every tenant network (managed
    /// mode, or an external node that runs as a container on this engine).
    pub attach_container: Option<String>,
    /// The network of the tenant being planned, as observed.
    pub tenant_network: NetworkObserved,
}

/// A tenant's own network as observed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct NetworkObserved {
    pub exists: bool,
    /// Whether [`ObservedInfra::attach_container`] is attached to it.
    pub cassandra_attached: bool,
}

/// What the store says about one tenant, and the container configuration
/// it should have now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TenantView {
    pub id: String,
    pub keyspace: String,
    pub gateway_port: Option<u16>,
    pub admin_port: Option<u16>,
    pub schema_version: u32,
    pub role_ready: bool,
    pub admin_user_created: bool,
    /// The tenant's own Docker network: its containers and the Cassandra
    /// container are on it, no other tenant's containers are.
    pub network: String,
    /// Per role: the container name and the hash of its desired
    /// configuration (`None` while ports are not leased yet).
    pub containers: Vec<(Role, String, Option<String>)>,
}

/// One step of a plan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
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
    CreateTenantNetwork {
        name: String,
    },
    AttachToNetwork {
        container: String,
        network: String,
    },
    RemoveTenantNetwork {
        name: String,
    },
    LeasePort {
        pool: Pool,
        requested: Option<u16>,
    },
    ApplySchema {
        keyspace: String,
        from: u32,
        to: u32,
    },
    EnsureRole {
        role: String,
    },
    CreateAdminUser {
        keyspace: String,
    },
    RemoveContainer {
        name: String,
        why: &'static str,
    },
    CreateContainer {
        role: Role,
        name: String,
        why: &'static str,
    },
    StartContainer {
        name: String,
    },
    StopContainer {
        name: String,
    },
    WaitHealthy {
        names: Vec<String>,
    },
    ReleasePorts {
        ports: Vec<u16>,
    },
    DropData {
        keyspace: String,
        role: String,
    },
    MarkDestroyed,
    Forget,
    ReportOrphan {
        name: String,
        tenant: String,
    },
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
            Step::CreateTenantNetwork { name } => write!(f, "create tenant network {name}"),
            Step::AttachToNetwork { container, network } => {
                write!(f, "attach {container} to network {network}")
            }
            Step::RemoveTenantNetwork { name } => write!(f, "remove tenant network {name}"),
            Step::LeasePort {
                pool,
                requested: Some(p),
            } => write!(f, "lease {} port {p}", pool.as_str()),
            Step::LeasePort {
                pool,
                requested: None,
            } => write!(f, "lease a port from the {} pool", pool.as_str()),
            Step::ApplySchema { keyspace, from, to } => {
                write!(
                    f,
                    "create keyspace {keyspace} and migrate schema v{from} -> v{to}"
                )
            }
            Step::EnsureRole { role } => write!(
                f,
                "create cassandra role {role} (select, modify on its keyspace)"
            ),
            Step::CreateAdminUser { keyspace } => {
                write!(f, "create the first admin user in {keyspace}.admin_users")
            }
            Step::RemoveContainer { name, why } => write!(f, "remove container {name} ({why})"),
            Step::CreateContainer { name, why, .. } => {
                write!(f, "create and start container {name} ({why})")
            }
            Step::StartContainer { name } => write!(f, "start container {name}"),
            Step::StopContainer { name } => write!(f, "stop container {name}"),
            Step::WaitHealthy { names } => write!(f, "wait until healthy: {}", names.join(", ")),
            Step::ReleasePorts { ports } => {
                let ports: Vec<String> = ports.iter().map(u16::to_string).collect();
                write!(f, "release ports {}", ports.join(", "))
            }
            Step::DropData { keyspace, role } => {
                write!(f, "drop keyspace {keyspace} and role {role}")
            }
            Step::MarkDestroyed => write!(f, "mark destroyed (keyspace and role kept)"),
            Step::Forget => write!(f, "forget the tenant"),
            Step::ReportOrphan { name, tenant } => {
                write!(
                    f,
                    "report orphan container {name} (tenant {tenant} is unknown; not removed)"
                )
            }
        }
    }
}

/// The steps that take one tenant (or the whole host) to its desired state.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Plan {
    pub tenant: Option<String>,
    pub steps: Vec<Step>,
    /// What the operator should know and the plan does not change (e.g. a
    /// managed Cassandra container built from an older image).
    pub notices: Vec<String>,
}

impl Plan {
    pub fn is_empty(&self) -> bool {
        self.steps.is_empty()
    }

    /// Whether any step needs a Cassandra session, or (re)starts the
    /// managed node: then the run opens a session, which waits until the
    /// node answers CQL, so a tenant is not reported running before its
    /// storage is.
    pub fn needs_cql(&self) -> bool {
        self.steps.iter().any(|s| {
            matches!(
                s,
                Step::CreateCassandra { .. }
                    | Step::StartCassandra { .. }
                    | Step::RetireDefaultSuperuser { .. }
                    | Step::ApplySchema { .. }
                    | Step::EnsureRole { .. }
                    | Step::CreateAdminUser { .. }
                    | Step::DropData { .. }
            )
        })
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

fn find<'a>(observed: &'a [ObservedContainer], name: &str) -> Option<&'a ObservedContainer> {
    observed.iter().find(|c| c.name == name)
}

/// What the operator should know about the shared infrastructure.
fn infra_notices(infra: &ObservedInfra) -> Vec<String> {
    let mut notices = Vec::new();
    if infra.cassandra_outdated {
        let name = &infra.cassandra_container;
        notices.push(format!(
            "{name} runs an older build of its image, with that build's configuration; \
             to apply the new one, recreate it when the tenants can spare storage for a \
             minute: `docker rm -f {name}`, then `provision start` (its data stays on \
             its volume)"
        ));
    }
    if infra.cassandra_unhardened {
        let name = &infra.cassandra_container;
        notices.push(format!(
            "{name} was created without the container hardening (read-only root, no \
             capabilities, memory and pids limits, health check); to apply it, recreate it \
             when the tenants can spare storage for a minute: `docker rm -f {name}`, then \
             `provision start` (its data stays on its volume)"
        ));
    }
    notices
}

fn infra_steps(infra: &ObservedInfra, steps: &mut Vec<Step>) {
    if !infra.network_exists {
        steps.push(Step::CreateNetwork {
            name: infra.network.clone(),
        });
    }
    let container = infra.cassandra_container.clone();
    match infra.cassandra {
        CassandraObserved::External | CassandraObserved::Running => {}
        CassandraObserved::Missing => steps.push(Step::CreateCassandra {
            container: container.clone(),
        }),
        CassandraObserved::Stopped => steps.push(Step::StartCassandra {
            container: container.clone(),
        }),
    }
    // A node that was not running could not be asked; one that is running
    // was, and is retired again only if the default login worked.
    let managed = infra.cassandra != CassandraObserved::External;
    if managed && (infra.cassandra != CassandraObserved::Running || infra.default_superuser_login) {
        steps.push(Step::RetireDefaultSuperuser { container });
    }
}

/// The tenant's own network, with the Cassandra container attached.
fn network_steps(tenant: &TenantView, infra: &ObservedInfra, steps: &mut Vec<Step>) {
    let net = infra.tenant_network;
    if !net.exists {
        steps.push(Step::CreateTenantNetwork {
            name: tenant.network.clone(),
        });
    }
    if let Some(container) = &infra.attach_container {
        if !net.cassandra_attached {
            steps.push(Step::AttachToNetwork {
                container: container.clone(),
                network: tenant.network.clone(),
            });
        }
    }
}

/// Removes the tenant's network once its containers are gone.
fn remove_network_step(tenant: &TenantView, infra: &ObservedInfra, steps: &mut Vec<Step>) {
    if infra.tenant_network.exists {
        steps.push(Step::RemoveTenantNetwork {
            name: tenant.network.clone(),
        });
    }
}

/// The container steps that make `tenant`'s apps run with their desired
/// configuration; returns the names to wait for.
fn container_steps(
    tenant: &TenantView,
    observed: &[ObservedContainer],
    steps: &mut Vec<Step>,
) -> Vec<String> {
    let mut wait = Vec::new();
    for (role, name, hash) in &tenant.containers {
        let current = find(observed, name);
        match current {
            None => steps.push(Step::CreateContainer {
                role: *role,
                name: name.clone(),
                why: "missing",
            }),
            Some(c) if hash.is_none() || c.config_hash != *hash => {
                steps.push(Step::RemoveContainer {
                    name: name.clone(),
                    why: "configuration changed",
                });
                steps.push(Step::CreateContainer {
                    role: *role,
                    name: name.clone(),
                    why: "configuration changed",
                });
            }
            Some(c) if !c.running => steps.push(Step::StartContainer { name: name.clone() }),
            Some(c) if c.health == Health::Healthy => continue,
            Some(_) => {}
        }
        wait.push(name.clone());
    }
    wait
}

/// `start`: shared infrastructure, ports, keyspace and role, first admin
/// user, containers, then wait until healthy. A running, healthy tenant
/// gives an empty plan.
pub fn plan_start(
    tenant: &TenantView,
    requested: (Option<u16>, Option<u16>),
    infra: &ObservedInfra,
    observed: &[ObservedContainer],
) -> Plan {
    let mut steps = Vec::new();
    infra_steps(infra, &mut steps);
    network_steps(tenant, infra, &mut steps);
    if tenant.gateway_port.is_none() {
        steps.push(Step::LeasePort {
            pool: Pool::Gateway,
            requested: requested.0,
        });
    }
    if tenant.admin_port.is_none() {
        steps.push(Step::LeasePort {
            pool: Pool::Admin,
            requested: requested.1,
        });
    }
    let latest = tenant_schema::latest_version();
    if tenant.schema_version < latest {
        steps.push(Step::ApplySchema {
            keyspace: tenant.keyspace.clone(),
            from: tenant.schema_version,
            to: latest,
        });
    }
    if !tenant.role_ready {
        steps.push(Step::EnsureRole {
            role: tenant.keyspace.clone(),
        });
    }
    if !tenant.admin_user_created {
        steps.push(Step::CreateAdminUser {
            keyspace: tenant.keyspace.clone(),
        });
    }
    let wait = container_steps(tenant, observed, &mut steps);
    if !wait.is_empty() {
        steps.push(Step::WaitHealthy { names: wait });
    }
    Plan {
        tenant: Some(tenant.id.clone()),
        steps,
        notices: infra_notices(infra),
    }
}

/// `stop`: stop the running containers; ports and data stay.
pub fn plan_stop(tenant: &TenantView, observed: &[ObservedContainer]) -> Plan {
    let steps = tenant
        .containers
        .iter()
        .filter_map(|(_, name, _)| find(observed, name).filter(|c| c.running))
        .map(|c| Step::StopContainer {
            name: c.name.clone(),
        })
        .collect();
    Plan {
        tenant: Some(tenant.id.clone()),
        steps,
        notices: Vec::new(),
    }
}

/// `destroy`: remove every container carrying the tenant's label, release
/// the ports; with `purge`, drop the keyspace and role and forget the tenant.
pub fn plan_destroy(
    tenant: &TenantView,
    infra: &ObservedInfra,
    observed: &[ObservedContainer],
    purge: bool,
) -> Plan {
    let mut steps: Vec<Step> = observed
        .iter()
        .filter(|c| c.tenant == tenant.id)
        .map(|c| Step::RemoveContainer {
            name: c.name.clone(),
            why: "destroy",
        })
        .collect();
    remove_network_step(tenant, infra, &mut steps);
    let ports: Vec<u16> = [tenant.gateway_port, tenant.admin_port]
        .into_iter()
        .flatten()
        .collect();
    if !ports.is_empty() {
        steps.push(Step::ReleasePorts { ports });
    }
    if purge {
        steps.push(Step::DropData {
            keyspace: tenant.keyspace.clone(),
            role: tenant.keyspace.clone(),
        });
        steps.push(Step::Forget);
    } else {
        steps.push(Step::MarkDestroyed);
    }
    Plan {
        tenant: Some(tenant.id.clone()),
        steps,
        notices: Vec::new(),
    }
}

/// `reconcile` for one known tenant: bring its containers to the desired
/// state without waiting for health.
pub fn plan_reconcile_tenant(
    tenant: &TenantView,
    desired: Desired,
    infra: &ObservedInfra,
    observed: &[ObservedContainer],
) -> Plan {
    let mut plan = match desired {
        Desired::Running => {
            let mut p = plan_start(tenant, (None, None), infra, observed);
            p.steps.retain(|s| !matches!(s, Step::WaitHealthy { .. }));
            p
        }
        Desired::Stopped => plan_stop(tenant, observed),
        Desired::Destroyed => {
            let mut steps = observed
                .iter()
                .filter(|c| c.tenant == tenant.id)
                .map(|c| Step::RemoveContainer {
                    name: c.name.clone(),
                    why: "tenant is destroyed",
                })
                .collect();
            remove_network_step(tenant, infra, &mut steps);
            Plan {
                tenant: Some(tenant.id.clone()),
                steps,
                notices: Vec::new(),
            }
        }
    };
    plan.tenant = Some(tenant.id.clone());
    plan
}

/// Containers carrying our tenant label whose tenant the store does not know.
pub fn orphans(known: &[&str], observed: &[ObservedContainer]) -> Plan {
    let mut steps: Vec<Step> = observed
        .iter()
        .filter(|c| !c.tenant.is_empty() && !known.contains(&c.tenant.as_str()))
        .map(|c| Step::ReportOrphan {
            name: c.name.clone(),
            tenant: c.tenant.clone(),
        })
        .collect();
    steps.sort_by_key(|s| s.to_string());
    Plan {
        tenant: None,
        steps,
        notices: Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn view(ports: bool, fresh: bool) -> TenantView {
        TenantView {
            id: "acme".into(),
            keyspace: "tenant_acme".into(),
            gateway_port: ports.then_some(6001),
            admin_port: ports.then_some(8081),
            schema_version: if fresh {
                0
            } else {
                tenant_schema::latest_version()
            },
            role_ready: !fresh,
            admin_user_created: !fresh,
            network: "provision-net-acme".into(),
            containers: vec![
                (
                    Role::Ingest,
                    "provision-acme-ingest".into(),
                    ports.then(|| "h1".to_owned()),
                ),
                (
                    Role::Admin,
                    "provision-acme-admin".into(),
                    ports.then(|| "h2".to_owned()),
                ),
            ],
        }
    }

    fn infra(network: bool, cassandra: CassandraObserved) -> ObservedInfra {
        ObservedInfra {
            network: "provision-net".into(),
            network_exists: network,
            cassandra_container: "provision-cassandra".into(),
            cassandra,
            cassandra_outdated: false,
            cassandra_unhardened: false,
            default_superuser_login: false,
            attach_container: Some("provision-cassandra".into()),
            tenant_network: NetworkObserved {
                exists: network,
                cassandra_attached: network,
            },
        }
    }

    /// acme's ingest and admin containers, both running and healthy.
    fn healthy_acme() -> [ObservedContainer; 2] {
        [
            container("provision-acme-ingest", true, Health::Healthy, "h1"),
            container("provision-acme-admin", true, Health::Healthy, "h2"),
        ]
    }

    fn container(name: &str, running: bool, health: Health, hash: &str) -> ObservedContainer {
        ObservedContainer {
            id: format!("id-{name}"),
            name: name.into(),
            tenant: name.split('-').nth(1).unwrap().into(),
            role: name.rsplit('-').next().unwrap().into(),
            running,
            health,
            config_hash: Some(hash.into()),
        }
    }

    #[test]
    fn a_first_start_on_a_fresh_host_does_everything_in_order() {
        let plan = plan_start(
            &view(false, true),
            (Some(6100), None),
            &infra(false, CassandraObserved::Missing),
            &[],
        );
        assert_eq!(
            plan.to_string(),
            format!(
                "plan for tenant acme:
  create network provision-net
  create and start cassandra container provision-cassandra
  retire the default superuser of provision-cassandra (cassandra/cassandra must be refused)
  create tenant network provision-net-acme
  attach provision-cassandra to network provision-net-acme
  lease gateway port 6100
  lease a port from the admin pool
  create keyspace tenant_acme and migrate schema v0 -> v{}
  create cassandra role tenant_acme (select, modify on its keyspace)
  create the first admin user in tenant_acme.admin_users
  create and start container provision-acme-ingest (missing)
  create and start container provision-acme-admin (missing)
  wait until healthy: provision-acme-ingest, provision-acme-admin
",
                tenant_schema::latest_version()
            )
        );
        assert!(plan.needs_cql());
    }

    #[test]
    fn a_second_start_does_nothing() {
        let observed = healthy_acme();
        let plan = plan_start(
            &view(true, false),
            (None, None),
            &infra(true, CassandraObserved::Running),
            &observed,
        );
        assert_eq!(plan.to_string(), "plan for tenant acme:\n  nothing to do\n");
        assert!(!plan.needs_cql());
    }

    #[test]
    fn a_cassandra_built_from_an_older_image_is_noted_and_left_running() {
        let observed = healthy_acme();
        let outdated = ObservedInfra {
            cassandra_outdated: true,
            ..infra(true, CassandraObserved::Running)
        };
        let plan = plan_start(&view(true, false), (None, None), &outdated, &observed);
        assert!(plan.is_empty(), "nothing is recreated: {plan}");
        assert_eq!(plan.notices.len(), 1);
        let text = plan.to_string();
        assert!(
            text.starts_with("plan for tenant acme:\n  nothing to do\nnote: provision-cassandra runs an older build"),
            "{text}"
        );
        assert!(
            text.contains("`docker rm -f provision-cassandra`"),
            "{text}"
        );
        let unhardened = ObservedInfra {
            cassandra_unhardened: true,
            ..infra(true, CassandraObserved::Running)
        };
        let plan = plan_start(&view(true, false), (None, None), &unhardened, &observed);
        assert!(plan.is_empty(), "nothing is recreated: {plan}");
        assert!(
            plan.to_string()
                .contains("created without the container hardening"),
            "{plan}"
        );
    }

    #[test]
    fn a_start_after_stop_restarts_and_a_changed_config_recreates() {
        let observed = [
            container("provision-acme-ingest", false, Health::Unknown, "h1"),
            container("provision-acme-admin", true, Health::Healthy, "old"),
        ];
        let plan = plan_start(
            &view(true, false),
            (None, None),
            &infra(true, CassandraObserved::External),
            &observed,
        );
        assert_eq!(
            plan.to_string(),
            "plan for tenant acme:
  start container provision-acme-ingest
  remove container provision-acme-admin (configuration changed)
  create and start container provision-acme-admin (configuration changed)
  wait until healthy: provision-acme-ingest, provision-acme-admin
"
        );
    }

    #[test]
    fn a_start_waits_for_a_container_still_starting() {
        let observed = [
            container("provision-acme-ingest", true, Health::Starting, "h1"),
            container("provision-acme-admin", true, Health::Healthy, "h2"),
        ];
        let plan = plan_start(
            &view(true, false),
            (None, None),
            &infra(true, CassandraObserved::Stopped),
            &observed,
        );
        assert_eq!(
            plan.to_string(),
            "plan for tenant acme:
  start cassandra container provision-cassandra
  retire the default superuser of provision-cassandra (cassandra/cassandra must be refused)
  wait until healthy: provision-acme-ingest
"
        );
        // the tenant is running only once its storage answers again
        assert!(plan.needs_cql());
    }

    #[test]
    fn a_start_that_recreates_a_missing_cassandra_waits_for_cql() {
        let observed = healthy_acme();
        let plan = plan_start(
            &view(true, false),
            (None, None),
            &infra(true, CassandraObserved::Missing),
            &observed,
        );
        assert_eq!(
            plan.to_string(),
            "plan for tenant acme:
  create and start cassandra container provision-cassandra
  retire the default superuser of provision-cassandra (cassandra/cassandra must be refused)
"
        );
        assert!(plan.needs_cql());
    }

    #[test]
    fn a_running_node_whose_default_superuser_logs_in_is_retired_on_any_start() {
        let observed = healthy_acme();
        let exposed = ObservedInfra {
            default_superuser_login: true,
            ..infra(true, CassandraObserved::Running)
        };
        let plan = plan_start(&view(true, false), (None, None), &exposed, &observed);
        assert_eq!(
            plan.to_string(),
            "plan for tenant acme:
  retire the default superuser of provision-cassandra (cassandra/cassandra must be refused)
"
        );
        assert!(plan.needs_cql());
        // an external cluster's roles are its operator's business
        let external = ObservedInfra {
            default_superuser_login: true,
            ..infra(true, CassandraObserved::External)
        };
        assert!(plan_start(&view(true, false), (None, None), &external, &observed).is_empty());
    }

    #[test]
    fn a_missing_tenant_network_is_created_and_cassandra_attached() {
        let observed = healthy_acme();
        let mut detached = infra(true, CassandraObserved::Running);
        detached.tenant_network.cassandra_attached = false;
        assert_eq!(
            plan_start(&view(true, false), (None, None), &detached, &observed).to_string(),
            "plan for tenant acme:\n  attach provision-cassandra to network provision-net-acme\n"
        );
    }

    #[test]
    fn stop_stops_only_running_containers() {
        let observed = [container(
            "provision-acme-ingest",
            true,
            Health::Healthy,
            "h1",
        )];
        assert_eq!(
            plan_stop(&view(true, false), &observed).to_string(),
            "plan for tenant acme:\n  stop container provision-acme-ingest\n"
        );
    }

    #[test]
    fn destroy_keeps_data_unless_purged() {
        let observed = [
            container("provision-acme-ingest", false, Health::Unknown, "h1"),
            container("provision-acme-admin", true, Health::Healthy, "h2"),
            container("provision-other-admin", true, Health::Healthy, "h2"),
        ];
        assert_eq!(
            plan_destroy(
                &view(true, false),
                &infra(true, CassandraObserved::Running),
                &observed,
                false
            )
            .to_string(),
            "plan for tenant acme:
  remove container provision-acme-ingest (destroy)
  remove container provision-acme-admin (destroy)
  remove tenant network provision-net-acme
  release ports 6001, 8081
  mark destroyed (keyspace and role kept)
"
        );
        assert_eq!(
            plan_destroy(
                &view(true, false),
                &infra(false, CassandraObserved::Running),
                &[],
                true
            )
            .to_string(),
            "plan for tenant acme:
  release ports 6001, 8081
  drop keyspace tenant_acme and role tenant_acme
  forget the tenant
"
        );
    }

    #[test]
    fn reconcile_recreates_missing_and_restarts_stopped_containers_without_waiting() {
        let observed = [container(
            "provision-acme-admin",
            false,
            Health::Unknown,
            "h2",
        )];
        let plan = plan_reconcile_tenant(
            &view(true, false),
            Desired::Running,
            &infra(true, CassandraObserved::External),
            &observed,
        );
        assert_eq!(
            plan.to_string(),
            "plan for tenant acme:
  create and start container provision-acme-ingest (missing)
  start container provision-acme-admin
"
        );
        let plan = plan_reconcile_tenant(
            &view(true, false),
            Desired::Destroyed,
            &infra(true, CassandraObserved::External),
            &observed,
        );
        assert_eq!(
            plan.to_string(),
            "plan for tenant acme:
  remove container provision-acme-admin (tenant is destroyed)
  remove tenant network provision-net-acme
"
        );
    }

    #[test]
    fn orphans_are_reported_not_removed() {
        let observed = [
            container("provision-acme-admin", true, Health::Healthy, "h2"),
            container("provision-ghost-ingest", true, Health::Healthy, "h1"),
        ];
        assert_eq!(
            orphans(&["acme"], &observed).to_string(),
            "plan:\n  report orphan container provision-ghost-ingest (tenant ghost is unknown; not removed)\n"
        );
    }
}
