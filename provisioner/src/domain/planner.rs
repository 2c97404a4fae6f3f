//! The planner: pure functions from desired state (the store's
//! [`TenantRecord`], the [`ContainerSpec`]s a tenant should run) and
//! observed state ([`ObservedInfra`], [`ObservedContainer`]s) to a
//! [`Plan`]. One function per operation; the golden tests in
//! `planner_tests.rs` print each.

use super::ids::{Pool, ProviderId, Role};
use super::plan::{Plan, Step};
use super::ports::Choice;
use super::spec::ContainerSpec;
use super::state::{
    CassandraObserved, CertificateObserved, Desired, FrontObserved, GatewayTls, Health,
    ObservedContainer, ObservedInfra, TenantLimits, TenantRecord,
};

/// The first admin user's name.
pub const FIRST_ADMIN_USER: &str = "admin";

/// One tenant, as a plan starts from: what the store knows (nothing for a
/// new tenant) and the names its objects have.
#[derive(Debug, Clone, PartialEq)]
pub struct TenantView {
    pub id: ProviderId,
    pub record: Option<TenantRecord>,
    /// The tenant's own network: its containers and the Cassandra container
    /// are on it, no other tenant's containers are.
    pub network: String,
    /// Per role, the container name.
    pub names: Vec<(Role, String)>,
}

/// What `start` (and `reconcile` of a running tenant) aims at: a port per
/// pool and the container specs made with them.
#[derive(Debug, Clone, PartialEq)]
pub struct StartTarget {
    pub ports: Vec<(Pool, Choice)>,
    pub specs: Vec<ContainerSpec>,
    /// TLS on the gateway port: as asked, else as before.
    pub gateway_tls: GatewayTls,
    /// The rate limit and the cap on gateways: as asked, else as before.
    pub limits: TenantLimits,
    /// The gateway certificate as found (`None` with TLS off: none needed).
    pub certificate: Option<CertificateObserved>,
    /// The host the certificate must name.
    pub public_host: String,
}

/// Certificates with fewer days left are issued again.
pub const RENEW_CERTIFICATE_DAYS: i64 = crate::pki::RENEW_DAYS;

/// Why the tenant's gateway certificate must be issued (again), if it must.
fn certificate_why(certificate: &CertificateObserved, host: &str) -> Option<String> {
    match certificate {
        CertificateObserved::Operator => None,
        CertificateObserved::Missing => Some("missing".into()),
        CertificateObserved::Issued { by_current_ca, .. } if !by_current_ca => {
            Some("issued by another CA".into())
        }
        CertificateObserved::Issued { host_matches, .. } if !host_matches => {
            Some(format!("issued for another host than {host}"))
        }
        CertificateObserved::Issued { days_left, .. } if *days_left < 0 => Some("expired".into()),
        CertificateObserved::Issued { days_left, .. } if *days_left < RENEW_CERTIFICATE_DAYS => {
            Some(format!("expires in {days_left} days"))
        }
        CertificateObserved::Issued { .. } => None,
    }
}

/// The TLS mode as asked, and the certificate it needs.
fn gateway_tls_steps(tenant: &TenantView, target: &StartTarget, steps: &mut Vec<Step>) {
    let now = tenant
        .record
        .as_ref()
        .map_or(GatewayTls::default(), |r| r.gateway_tls);
    if now != target.gateway_tls {
        steps.push(Step::SetGatewayTls {
            mode: target.gateway_tls,
        });
    }
    if let Some(why) = target
        .certificate
        .as_ref()
        .and_then(|c| certificate_why(c, &target.public_host))
    {
        steps.push(Step::IssueGatewayCertificate {
            host: target.public_host.clone(),
            why,
        });
    }
}

/// The limits as asked, when they differ from the record's.
fn limits_step(tenant: &TenantView, target: &StartTarget, steps: &mut Vec<Step>) {
    let now = tenant
        .record
        .as_ref()
        .map_or(TenantLimits::default(), |r| r.limits);
    if now != target.limits {
        steps.push(Step::SetLimits {
            limits: target.limits,
        });
    }
}

fn find<'a>(observed: &'a [ObservedContainer], name: &str) -> Option<&'a ObservedContainer> {
    observed.iter().find(|c| c.name == name)
}

fn plan(tenant: &TenantView, steps: Vec<Step>, notices: Vec<String>) -> Plan {
    Plan {
        tenant: Some(tenant.id.clone()),
        steps,
        notices,
    }
}

/// What the operator should know about the shared infrastructure.
fn infra_notices(infra: &ObservedInfra) -> Vec<String> {
    let name = &infra.cassandra_container;
    let recreate = format!(
        "to apply it, recreate it when the tenants can spare storage for a minute: \
         `docker rm -f {name}`, then `provision start` (its data stays on its volume)"
    );
    let mut notices = Vec::new();
    if infra.cassandra_outdated {
        notices.push(format!(
            "{name} runs an older build of its image, with that build's configuration; {recreate}"
        ));
    }
    if infra.cassandra_unhardened {
        notices.push(format!(
            "{name} was created without the container hardening (read-only root, no \
             capabilities, memory and pids limits, health check); {recreate}"
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
            detach: infra.attach_container.clone(),
        });
    }
}

/// The keyspace, its schema, the role and the first admin user, as far as
/// the store says they are missing.
fn storage_steps(tenant: &TenantView, steps: &mut Vec<Step>) {
    let record = tenant.record.as_ref();
    let keyspace = tenant.id.keyspace();
    let applied = record.map_or(0, |r| r.schema_version);
    let latest = tenant_schema::latest_version();
    if applied < latest {
        steps.push(Step::ApplySchema {
            keyspace: keyspace.clone(),
            from: applied,
            to: latest,
        });
    }
    if !record.is_some_and(|r| r.role_ready) {
        steps.push(Step::EnsureRole {
            role: tenant.id.cassandra_role(),
            keyspace: keyspace.clone(),
        });
    }
    if !record.is_some_and(|r| r.admin_user_created) {
        steps.push(Step::CreateAdminUser {
            keyspace,
            username: FIRST_ADMIN_USER.to_owned(),
        });
    }
}

/// The container steps that make the tenant's apps run from their specs;
/// with `wait`, a wait for each container not yet healthy. Behind the
/// front (`front`), a running app with a published port whose spec
/// changed is replaced by a switch, never removed first.
fn container_steps(
    specs: &[ContainerSpec],
    observed: &[ObservedContainer],
    wait: bool,
    front: bool,
) -> Vec<Step> {
    let mut steps = Vec::new();
    let mut waits = Vec::new();
    for spec in specs {
        let create = |why| Step::CreateContainer {
            spec: Box::new(spec.clone()),
            why,
        };
        let name = spec.name.clone();
        let drifted = |c: &ObservedContainer| c.spec_hash.as_deref() != Some(spec.hash().as_str());
        match find(observed, &spec.name) {
            None => steps.push(create("missing")),
            Some(c) if drifted(c) && front && c.running() && spec.container_port.is_some() => {
                steps.push(Step::SwitchContainer {
                    spec: Box::new(spec.clone()),
                    why: "configuration changed",
                });
                continue;
            }
            Some(c) if drifted(c) => {
                steps.push(Step::RemoveContainer {
                    name: name.clone(),
                    why: "configuration changed",
                });
                steps.push(create("configuration changed"));
            }
            Some(c) if !c.running() => steps.push(Step::StartContainer {
                name: name.clone(),
                role: spec.role,
            }),
            Some(c) if c.health == Health::Healthy => continue,
            Some(_) => {}
        }
        waits.push(Step::WaitHealthy {
            role: spec.role,
            name,
        });
    }
    if wait {
        steps.extend(waits);
    }
    steps
}

/// The record's steps toward `desired`: register a new tenant, or change
/// the desired state of a known one.
fn desired_step(tenant: &TenantView, desired: Desired, steps: &mut Vec<Step>) {
    match &tenant.record {
        None => steps.push(Step::RegisterTenant { desired }),
        Some(r) if r.desired != desired => steps.push(Step::SetDesired { desired }),
        Some(_) => {}
    }
}

/// `start`: shared infrastructure, the tenant's record and network, its
/// ports, keyspace and role, first admin user, containers, then a wait
/// until each is healthy. A running, healthy tenant gives an empty plan.
pub fn plan_start(
    tenant: &TenantView,
    target: &StartTarget,
    infra: &ObservedInfra,
    observed: &[ObservedContainer],
) -> Plan {
    let mut steps = Vec::new();
    infra_steps(infra, &mut steps);
    desired_step(tenant, Desired::Running, &mut steps);
    gateway_tls_steps(tenant, target, &mut steps);
    limits_step(tenant, target, &mut steps);
    network_steps(tenant, infra, &mut steps);
    for (pool, choice) in &target.ports {
        if let Choice::Lease(port) = choice {
            steps.push(Step::LeasePort {
                pool: *pool,
                port: *port,
            });
        }
    }
    storage_steps(tenant, &mut steps);
    steps.extend(leftover_steps(tenant, observed));
    let front = infra.front.enabled();
    steps.extend(container_steps(&target.specs, observed, true, front));
    front_step(infra, &mut steps);
    plan(tenant, steps, infra_notices(infra))
}

/// Copies of the tenant's apps that an interrupted switch left behind
/// (`<name>-next`, `<name>-old`): the apps themselves are planned by
/// their canonical names.
fn leftover_steps(tenant: &TenantView, observed: &[ObservedContainer]) -> Vec<Step> {
    observed
        .iter()
        .filter(|c| c.tenant.as_ref() == Some(&tenant.id))
        .filter(|c| {
            tenant.names.iter().all(|(_, name)| *name != c.name)
                && tenant
                    .names
                    .iter()
                    .any(|(_, name)| c.name.starts_with(&format!("{name}-")))
        })
        .map(|c| Step::RemoveContainer {
            name: c.name.clone(),
            why: "left over from an interrupted switch",
        })
        .collect()
}

/// `[front]`: the front starts when it does not run, and gets the routes
/// again when the tenant's changed (a port leased or released, an app
/// created, started or switched, an address moved). Last, so that the
/// apps it points at are up.
fn front_step(infra: &ObservedInfra, steps: &mut Vec<Step>) {
    let changes_routes = steps.iter().any(|s| match s {
        Step::LeasePort { .. } | Step::ReleasePorts { .. } => true,
        Step::CreateContainer { spec, .. } => spec.container_port.is_some(),
        Step::StartContainer { role, .. } => role.pool().is_some(),
        _ => false,
    });
    match infra.front {
        FrontObserved::Off => {}
        FrontObserved::Missing | FrontObserved::Stopped => {
            steps.push(Step::SyncFront { start: true })
        }
        FrontObserved::Running { routes_current } if !routes_current || changes_routes => {
            steps.push(Step::SyncFront { start: false })
        }
        FrontObserved::Running { .. } => {}
    }
}

/// `stop`: the desired state becomes stopped (a destroyed tenant stays
/// destroyed), and the running containers stop; ports and data stay.
/// Behind a running front, an app with a port that stopped leaves its
/// route without a target (its port stays bound; connections are closed,
/// or answered 503).
pub fn plan_stop(
    tenant: &TenantView,
    observed: &[ObservedContainer],
    front: FrontObserved,
) -> Plan {
    let mut steps = Vec::new();
    if tenant
        .record
        .as_ref()
        .is_some_and(|r| r.desired == Desired::Running)
    {
        steps.push(Step::SetDesired {
            desired: Desired::Stopped,
        });
    }
    steps.extend(
        tenant
            .names
            .iter()
            .filter_map(|(_, name)| find(observed, name).filter(|c| c.running()))
            .map(|c| Step::StopContainer {
                name: c.name.clone(),
            }),
    );
    let routed_stops = tenant.names.iter().any(|(role, name)| {
        role.pool().is_some()
            && steps
                .iter()
                .any(|s| matches!(s, Step::StopContainer { name: n } if n == name))
    });
    if routed_stops && matches!(front, FrontObserved::Running { .. }) {
        steps.push(Step::SyncFront { start: false });
    }
    plan(tenant, steps, Vec::new())
}

/// Every container carrying the tenant's label, and then its network.
fn removal_steps(
    tenant: &TenantView,
    infra: &ObservedInfra,
    observed: &[ObservedContainer],
    why: &'static str,
) -> Vec<Step> {
    let mut steps: Vec<Step> = observed
        .iter()
        .filter(|c| c.tenant.as_ref() == Some(&tenant.id))
        .map(|c| Step::RemoveContainer {
            name: c.name.clone(),
            why,
        })
        .collect();
    remove_network_step(tenant, infra, &mut steps);
    steps
}

/// `destroy`: the desired state becomes destroyed first (so a crash midway
/// is finished by `reconcile`), then the containers, the network, the
/// ports and the secrets files go; with `purge`, the keyspace and role are
/// dropped and the tenant forgotten.
pub fn plan_destroy(
    tenant: &TenantView,
    infra: &ObservedInfra,
    observed: &[ObservedContainer],
    purge: bool,
) -> Plan {
    let mut steps = Vec::new();
    desired_step(tenant, Desired::Destroyed, &mut steps);
    steps.extend(removal_steps(tenant, infra, observed, "destroy"));
    let ports = tenant
        .record
        .as_ref()
        .map(TenantRecord::ports)
        .unwrap_or_default();
    if !ports.is_empty() {
        steps.push(Step::ReleasePorts { ports });
    }
    front_step(infra, &mut steps);
    steps.push(Step::RemoveSecrets);
    if purge {
        steps.push(Step::DropData {
            keyspace: tenant.id.keyspace(),
            role: tenant.id.cassandra_role(),
        });
        steps.push(Step::Forget);
    }
    plan(tenant, steps, Vec::new())
}

/// `reconcile` for one known tenant: bring it to its desired state without
/// waiting for health. `target` is needed only for a running tenant.
pub fn plan_reconcile_tenant(
    tenant: &TenantView,
    target: Option<&StartTarget>,
    infra: &ObservedInfra,
    observed: &[ObservedContainer],
) -> Plan {
    let desired = tenant.record.as_ref().map(|r| r.desired);
    match (desired, target) {
        (Some(Desired::Running), Some(target)) => {
            let mut p = plan_start(tenant, target, infra, observed);
            p.steps.retain(|s| !matches!(s, Step::WaitHealthy { .. }));
            p
        }
        (Some(Desired::Stopped), _) => plan_stop(tenant, observed, infra.front),
        (Some(Desired::Destroyed), _) => {
            let mut steps = removal_steps(tenant, infra, observed, "tenant is destroyed");
            if matches!(
                infra.front,
                FrontObserved::Running {
                    routes_current: false
                }
            ) {
                steps.push(Step::SyncFront { start: false });
            }
            plan(tenant, steps, Vec::new())
        }
        _ => plan(tenant, Vec::new(), Vec::new()),
    }
}

/// Containers carrying our tenant label whose tenant the store does not
/// know (or whose label is no valid id).
pub fn orphans(known: &[&ProviderId], observed: &[ObservedContainer]) -> Plan {
    let mut steps: Vec<Step> = observed
        .iter()
        .filter(|c| !c.tenant.as_ref().is_some_and(|t| known.contains(&t)))
        .map(|c| Step::ReportOrphan {
            name: c.name.clone(),
            tenant: c
                .tenant
                .as_ref()
                .map_or_else(|| "(invalid label)".to_owned(), ProviderId::to_string),
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
#[path = "planner_tests.rs"]
mod tests;
