//! Golden tests of the planner: one per operation and situation, each
//! comparing the printed plan.

use std::path::PathBuf;

use super::*;
use crate::config::Config;
use crate::domain::ids::Pool;
use crate::domain::ports::Choice;
use crate::domain::spec::{tenant_container, SpecInputs};
use crate::domain::state::{ContainerState, FrontObserved, NetworkObserved};
use crate::domain::{GatewayTls, TenantLimits};

fn acme() -> ProviderId {
    ProviderId::parse("acme").unwrap()
}

fn record(desired: Desired) -> TenantRecord {
    TenantRecord {
        id: acme(),
        desired,
        cassandra_password: "pw".into(),
        session_secret: "ss".into(),
        schema_version: tenant_schema::latest_version(),
        role_ready: true,
        admin_user_created: true,
        gateway_port: Some(6001),
        admin_port: Some(8081),
        created_at: String::new(),
        gateway_tls: GatewayTls::Optional,
        limits: TenantLimits::default(),
        image_tag: None,
        cluster: "default".into(),
    }
}

fn view(record: Option<TenantRecord>) -> TenantView {
    TenantView {
        id: acme(),
        record,
        network: "provision-net-acme".into(),
        names: vec![
            (Role::Ingest, "provision-acme-ingest".into()),
            (Role::Admin, "provision-acme-admin".into()),
            (Role::Notifier, "provision-acme-notifier".into()),
        ],
    }
}

fn spec(role: Role, port: u16) -> ContainerSpec {
    spec_with_tls(role, port, GatewayTls::Optional)
}

fn spec_with_tls(role: Role, port: u16, gateway_tls: GatewayTls) -> ContainerSpec {
    spec_in(&Config::default(), role, port, gateway_tls)
}

/// The spec of `role` with `config`; `port` is ignored for the notifier,
/// which publishes none.
fn spec_in(config: &Config, role: Role, port: u16, gateway_tls: GatewayTls) -> ContainerSpec {
    tenant_container(
        config,
        SpecInputs {
            tenant: &acme(),
            role,
            host_port: role.pool().map(|_| port),
            image_id: "sha256:1",
            image_tag: None,
            secrets_dir: PathBuf::from("/data/secrets"),
            gateway_tls,
            limits: TenantLimits::default(),
        },
    )
}

/// The target with the ports kept (`leased`) or to lease.
fn target(leased: bool, gateway: u16, admin: u16) -> StartTarget {
    let choice = |p| {
        if leased {
            Choice::Keep(p)
        } else {
            Choice::Lease(p)
        }
    };
    StartTarget {
        ports: vec![
            (Pool::Gateway, choice(gateway)),
            (Pool::Admin, choice(admin)),
        ],
        specs: vec![
            spec(Role::Ingest, gateway),
            spec(Role::Admin, admin),
            spec(Role::Notifier, 0),
        ],
        gateway_tls: GatewayTls::Optional,
        limits: TenantLimits::default(),
        certificate: Some(fresh_certificate()),
        public_host: "localhost".into(),
    }
}

fn fresh_certificate() -> CertificateObserved {
    CertificateObserved::Issued {
        days_left: 89,
        host_matches: true,
        by_current_ca: true,
    }
}

fn kept() -> StartTarget {
    target(true, 6001, 8081)
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
        front: FrontObserved::Off,
    }
}

fn container(name: &str, running: bool, health: Health, hash: Option<String>) -> ObservedContainer {
    ObservedContainer {
        name: name.into(),
        tenant: ProviderId::parse(name.split('-').nth(1).unwrap()).ok(),
        state: if running {
            ContainerState::Running
        } else {
            ContainerState::Exited
        },
        health,
        spec_hash: hash,
        address: None,
    }
}

/// acme's containers as made from [`kept`]'s specs.
fn made(role: Role, running: bool, health: Health) -> ObservedContainer {
    let port = match role {
        Role::Ingest => 6001,
        Role::Admin => 8081,
        Role::Notifier => 0,
    };
    container(
        &format!("provision-acme-{role}"),
        running,
        health,
        Some(spec(role, port).hash()),
    )
}

/// acme's three containers, all running and healthy.
fn healthy_acme() -> [ObservedContainer; 3] {
    [
        made(Role::Ingest, true, Health::Healthy),
        made(Role::Admin, true, Health::Healthy),
        made(Role::Notifier, true, Health::Healthy),
    ]
}

#[test]
fn a_first_start_on_a_fresh_host_does_everything_in_order() {
    let target = StartTarget {
        certificate: Some(CertificateObserved::Missing),
        ..target(false, 6100, 8081)
    };
    let plan = plan_start(
        &view(None),
        &target,
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
  register the tenant with fresh secrets (desired running)
  issue the gateway certificate for localhost (missing)
  create tenant network provision-net-acme
  attach provision-cassandra to network provision-net-acme
  lease gateway port 6100
  lease admin port 8081
  create keyspace tenant_acme and migrate schema v0 -> v{}
  create cassandra role tenant_acme (select, modify on its keyspace)
  create the first admin user in tenant_acme.admin_users
  create and start container provision-acme-ingest from provision/ingest:dev on port 6100 (missing)
  create and start container provision-acme-admin from provision/admin:dev on port 8081 (missing)
  create and start container provision-acme-notifier from provision/notifier:dev, no published port (missing)
  wait until provision-acme-ingest is healthy
  wait until provision-acme-admin is healthy
  wait until provision-acme-notifier is healthy
",
            tenant_schema::latest_version()
        )
    );
    assert!(plan.steps.iter().any(Step::needs_cql));
}

#[test]
fn a_tenant_from_before_the_notifier_gets_one_on_its_next_start_or_reconcile() {
    let two = [
        made(Role::Ingest, true, Health::Healthy),
        made(Role::Admin, true, Health::Healthy),
    ];
    let running = view(Some(record(Desired::Running)));
    let infra = infra(true, CassandraObserved::Running);
    assert_eq!(
        plan_start(&running, &kept(), &infra, &two).to_string(),
        "plan for tenant acme:
  create and start container provision-acme-notifier from provision/notifier:dev, no published port (missing)
  wait until provision-acme-notifier is healthy
"
    );
    assert_eq!(
        plan_reconcile_tenant(&running, Some(&kept()), &infra, &two).to_string(),
        "plan for tenant acme:
  create and start container provision-acme-notifier from provision/notifier:dev, no published port (missing)
"
    );
}

#[test]
fn a_new_mail_relay_recreates_the_notifier_only() {
    let mut config = Config::parse(
        "[mail]\nhost = \"host.docker.internal\"\ntls = \"none\"\nfrom = \"alerts@example.com\"\n",
        std::path::Path::new("t.toml"),
    )
    .unwrap();
    // the default's limits, not this host's, as the specs it compares with
    config.limits = Config::default().limits;
    let target = StartTarget {
        specs: [Role::Ingest, Role::Admin, Role::Notifier]
            .into_iter()
            .zip([6001, 8081, 0])
            .map(|(role, port)| spec_in(&config, role, port, GatewayTls::Optional))
            .collect(),
        ..kept()
    };
    assert_eq!(
        plan_reconcile_tenant(
            &view(Some(record(Desired::Running))),
            Some(&target),
            &infra(true, CassandraObserved::Running),
            &healthy_acme(),
        )
        .to_string(),
        "plan for tenant acme:
  remove container provision-acme-notifier (configuration changed)
  create and start container provision-acme-notifier from provision/notifier:dev, no published port (configuration changed)
"
    );
}

#[test]
fn a_second_start_does_nothing() {
    let plan = plan_start(
        &view(Some(record(Desired::Running))),
        &kept(),
        &infra(true, CassandraObserved::Running),
        &healthy_acme(),
    );
    assert_eq!(plan.to_string(), "plan for tenant acme:\n  nothing to do\n");
}

#[test]
fn a_gateway_certificate_is_issued_again_before_it_expires() {
    let issued = |days_left, host_matches, by_current_ca| {
        Some(CertificateObserved::Issued {
            days_left,
            host_matches,
            by_current_ca,
        })
    };
    for (certificate, expected) in [
        (issued(10, true, true), Some("expires in 10 days")),
        (issued(-3, true, true), Some("expired")),
        (
            issued(80, false, true),
            Some("issued for another host than localhost"),
        ),
        (issued(80, true, false), Some("issued by another CA")),
        (issued(30, true, true), None),
        (Some(CertificateObserved::Operator), None),
        (None, None),
    ] {
        let target = StartTarget {
            certificate: certificate.clone(),
            ..kept()
        };
        let plan = plan_reconcile_tenant(
            &view(Some(record(Desired::Running))),
            Some(&target),
            &infra(true, CassandraObserved::Running),
            &healthy_acme(),
        );
        let text = match expected {
            Some(why) => format!(
                "plan for tenant acme:\n  issue the gateway certificate for localhost ({why})\n"
            ),
            None => "plan for tenant acme:\n  nothing to do\n".to_owned(),
        };
        assert_eq!(plan.to_string(), text, "{certificate:?}");
    }
}

#[test]
fn a_new_gateway_tls_mode_is_recorded_and_recreates_ingest() {
    let target = StartTarget {
        specs: vec![
            spec_with_tls(Role::Ingest, 6001, GatewayTls::Required),
            spec(Role::Admin, 8081),
            spec(Role::Notifier, 0),
        ],
        gateway_tls: GatewayTls::Required,
        ..kept()
    };
    let plan = plan_start(
        &view(Some(record(Desired::Running))),
        &target,
        &infra(true, CassandraObserved::Running),
        &healthy_acme(),
    );
    assert_eq!(
        plan.to_string(),
        "plan for tenant acme:
  set gateway TLS to required
  remove container provision-acme-ingest (configuration changed)
  create and start container provision-acme-ingest from provision/ingest:dev on port 6001 (configuration changed)
  wait until provision-acme-ingest is healthy
"
    );
}

#[test]
fn new_limits_are_recorded_and_recreate_ingest() {
    let limits = TenantLimits::default().changed(Some(300), Some(2));
    let ingest = tenant_container(
        &Config::default(),
        SpecInputs {
            tenant: &acme(),
            role: Role::Ingest,
            host_port: Some(6001),
            image_id: "sha256:1",
            image_tag: None,
            secrets_dir: PathBuf::from("/data/secrets"),
            gateway_tls: GatewayTls::Optional,
            limits,
        },
    );
    let target = StartTarget {
        specs: vec![ingest, spec(Role::Admin, 8081), spec(Role::Notifier, 0)],
        limits,
        ..kept()
    };
    let plan = plan_start(
        &view(Some(record(Desired::Running))),
        &target,
        &infra(true, CassandraObserved::Running),
        &healthy_acme(),
    );
    assert_eq!(
        plan.to_string(),
        "plan for tenant acme:
  set the limits to max 300 readings/s, max 2 gateways
  remove container provision-acme-ingest (configuration changed)
  create and start container provision-acme-ingest from provision/ingest:dev on port 6001 (configuration changed)
  wait until provision-acme-ingest is healthy
"
    );
    // a later start that keeps them plans nothing
    let mut kept_record = record(Desired::Running);
    kept_record.limits = limits;
    let observed = [
        container(
            "provision-acme-ingest",
            true,
            Health::Healthy,
            Some(target.specs[0].hash()),
        ),
        made(Role::Admin, true, Health::Healthy),
        made(Role::Notifier, true, Health::Healthy),
    ];
    let again = plan_start(
        &view(Some(kept_record)),
        &target,
        &infra(true, CassandraObserved::Running),
        &observed,
    );
    assert!(again.steps.is_empty(), "{again}");
}

#[test]
fn a_cassandra_built_from_an_older_image_is_noted_and_left_running() {
    let observed = healthy_acme();
    let running = view(Some(record(Desired::Running)));
    let outdated = ObservedInfra {
        cassandra_outdated: true,
        ..infra(true, CassandraObserved::Running)
    };
    let plan = plan_start(&running, &kept(), &outdated, &observed);
    assert!(plan.is_empty(), "nothing is recreated: {plan}");
    let text = plan.to_string();
    assert!(
        text.starts_with(
            "plan for tenant acme:\n  nothing to do\nnote: provision-cassandra runs an older build"
        ),
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
    let plan = plan_start(&running, &kept(), &unhardened, &observed);
    assert!(plan.is_empty(), "nothing is recreated: {plan}");
    assert!(
        plan.to_string()
            .contains("created without the container hardening"),
        "{plan}"
    );
}

#[test]
fn a_start_after_stop_restarts_and_a_changed_spec_recreates() {
    let observed = [
        made(Role::Ingest, false, Health::Unknown),
        container(
            "provision-acme-admin",
            true,
            Health::Healthy,
            Some("old".into()),
        ),
        made(Role::Notifier, false, Health::Unknown),
    ];
    let plan = plan_start(
        &view(Some(record(Desired::Stopped))),
        &kept(),
        &infra(true, CassandraObserved::External),
        &observed,
    );
    assert_eq!(
        plan.to_string(),
        "plan for tenant acme:
  set the desired state to running
  start container provision-acme-ingest
  remove container provision-acme-admin (configuration changed)
  create and start container provision-acme-admin from provision/admin:dev on port 8081 (configuration changed)
  start container provision-acme-notifier
  wait until provision-acme-ingest is healthy
  wait until provision-acme-admin is healthy
  wait until provision-acme-notifier is healthy
"
    );
}

#[test]
fn a_start_waits_for_a_container_still_starting() {
    let observed = [
        made(Role::Ingest, true, Health::Starting),
        made(Role::Admin, true, Health::Healthy),
        made(Role::Notifier, true, Health::Healthy),
    ];
    let plan = plan_start(
        &view(Some(record(Desired::Running))),
        &kept(),
        &infra(true, CassandraObserved::Stopped),
        &observed,
    );
    assert_eq!(
        plan.to_string(),
        "plan for tenant acme:
  start cassandra container provision-cassandra
  retire the default superuser of provision-cassandra (cassandra/cassandra must be refused)
  wait until provision-acme-ingest is healthy
"
    );
}

#[test]
fn a_running_node_whose_default_superuser_logs_in_is_retired_on_any_start() {
    let observed = healthy_acme();
    let running = view(Some(record(Desired::Running)));
    let exposed = ObservedInfra {
        default_superuser_login: true,
        ..infra(true, CassandraObserved::Running)
    };
    assert_eq!(
        plan_start(&running, &kept(), &exposed, &observed).to_string(),
        "plan for tenant acme:
  retire the default superuser of provision-cassandra (cassandra/cassandra must be refused)
"
    );
    // an external cluster's roles are its operator's business
    let external = ObservedInfra {
        default_superuser_login: true,
        ..infra(true, CassandraObserved::External)
    };
    assert!(plan_start(&running, &kept(), &external, &observed).is_empty());
}

#[test]
fn a_missing_tenant_network_is_created_and_cassandra_attached() {
    let mut detached = infra(true, CassandraObserved::Running);
    detached.tenant_network.cassandra_attached = false;
    assert_eq!(
        plan_start(
            &view(Some(record(Desired::Running))),
            &kept(),
            &detached,
            &healthy_acme()
        )
        .to_string(),
        "plan for tenant acme:\n  attach provision-cassandra to network provision-net-acme\n"
    );
}

#[test]
fn stop_records_the_desired_state_and_stops_only_running_containers() {
    let observed = [
        made(Role::Ingest, true, Health::Healthy),
        made(Role::Notifier, true, Health::Healthy),
    ];
    assert_eq!(
        plan_stop(
            &view(Some(record(Desired::Running))),
            &observed,
            FrontObserved::Off
        )
        .to_string(),
        "plan for tenant acme:
  set the desired state to stopped
  stop container provision-acme-ingest
  stop container provision-acme-notifier
"
    );
    // behind a running front, the stopped ingest's route loses its target
    let running = FrontObserved::Running {
        routes_current: true,
    };
    assert_eq!(
        plan_stop(&view(Some(record(Desired::Running))), &observed, running).to_string(),
        "plan for tenant acme:
  set the desired state to stopped
  stop container provision-acme-ingest
  stop container provision-acme-notifier
  update the front's routes
"
    );
    // only the notifier (no port) stopping changes no route
    let notifier = [made(Role::Notifier, true, Health::Healthy)];
    assert!(
        !plan_stop(&view(Some(record(Desired::Stopped))), &notifier, running)
            .to_string()
            .contains("front")
    );
    // a destroyed tenant stays destroyed
    assert!(plan_stop(
        &view(Some(record(Desired::Destroyed))),
        &[],
        FrontObserved::Off
    )
    .is_empty());
}

#[test]
fn destroy_marks_first_and_keeps_data_unless_purged() {
    let observed = [
        made(Role::Ingest, false, Health::Unknown),
        made(Role::Admin, true, Health::Healthy),
        made(Role::Notifier, true, Health::Healthy),
        container("provision-other-admin", true, Health::Healthy, None),
    ];
    let running = view(Some(record(Desired::Running)));
    assert_eq!(
        plan_destroy(
            &running,
            &infra(true, CassandraObserved::Running),
            &observed,
            false
        )
        .to_string(),
        "plan for tenant acme:
  set the desired state to destroyed
  remove container provision-acme-ingest (destroy)
  remove container provision-acme-admin (destroy)
  remove container provision-acme-notifier (destroy)
  remove tenant network provision-net-acme
  release ports 6001, 8081
  remove the secrets files
"
    );
    assert_eq!(
        plan_destroy(
            &view(Some(record(Desired::Destroyed))),
            &infra(false, CassandraObserved::Running),
            &[],
            true
        )
        .to_string(),
        "plan for tenant acme:
  release ports 6001, 8081
  remove the secrets files
  drop keyspace tenant_acme and role tenant_acme
  forget the tenant
"
    );
}

#[test]
fn reconcile_recreates_missing_and_restarts_stopped_containers_without_waiting() {
    let observed = [
        made(Role::Admin, false, Health::Unknown),
        made(Role::Notifier, true, Health::Unhealthy),
    ];
    let plan = plan_reconcile_tenant(
        &view(Some(record(Desired::Running))),
        Some(&kept()),
        &infra(true, CassandraObserved::External),
        &observed,
    );
    assert_eq!(
        plan.to_string(),
        "plan for tenant acme:
  create and start container provision-acme-ingest from provision/ingest:dev on port 6001 (missing)
  start container provision-acme-admin
"
    );
    let plan = plan_reconcile_tenant(
        &view(Some(record(Desired::Destroyed))),
        None,
        &infra(true, CassandraObserved::External),
        &observed,
    );
    assert_eq!(
        plan.to_string(),
        "plan for tenant acme:
  remove container provision-acme-admin (tenant is destroyed)
  remove container provision-acme-notifier (tenant is destroyed)
  remove tenant network provision-net-acme
"
    );
}

#[test]
fn orphans_are_reported_not_removed() {
    let observed = [
        made(Role::Admin, true, Health::Healthy),
        container("provision-ghost-ingest", true, Health::Healthy, None),
    ];
    assert_eq!(
        orphans(&[&acme()], &observed).to_string(),
        "plan:\n  report orphan container provision-ghost-ingest (tenant ghost is unknown; not removed)\n"
    );
}

fn behind_front(front: FrontObserved) -> ObservedInfra {
    ObservedInfra {
        front,
        ..infra(true, CassandraObserved::Running)
    }
}

#[test]
fn behind_the_front_a_changed_app_is_switched_never_removed_first() {
    let target = StartTarget {
        specs: vec![
            spec_with_tls(Role::Ingest, 6001, GatewayTls::Required),
            spec(Role::Admin, 8081),
            spec(Role::Notifier, 0),
        ],
        gateway_tls: GatewayTls::Required,
        ..kept()
    };
    let plan = plan_start(
        &view(Some(record(Desired::Running))),
        &target,
        &behind_front(FrontObserved::Running {
            routes_current: true,
        }),
        &healthy_acme(),
    );
    assert_eq!(
        plan.to_string(),
        "plan for tenant acme:
  set gateway TLS to required
  switch provision-acme-ingest to a new container from provision/ingest:dev behind the front, then drain the old one (configuration changed)
"
    );
}

#[test]
fn the_front_is_started_when_missing_and_synced_when_its_routes_are_stale() {
    let running = view(Some(record(Desired::Running)));
    for (front, line) in [
        (
            FrontObserved::Missing,
            Some("start the front with every tenant's routes"),
        ),
        (
            FrontObserved::Stopped,
            Some("start the front with every tenant's routes"),
        ),
        (
            FrontObserved::Running {
                routes_current: false,
            },
            Some("update the front's routes"),
        ),
        (
            FrontObserved::Running {
                routes_current: true,
            },
            None,
        ),
        (FrontObserved::Off, None),
    ] {
        let plan = plan_start(&running, &kept(), &behind_front(front), &healthy_acme());
        assert_eq!(
            plan.lines(),
            line.into_iter().collect::<Vec<_>>(),
            "{front:?}"
        );
    }
    // a new app behind a running front: its routes follow it
    let mut observed = healthy_acme().to_vec();
    observed.remove(0);
    let plan = plan_start(
        &running,
        &kept(),
        &behind_front(FrontObserved::Running {
            routes_current: true,
        }),
        &observed,
    );
    assert_eq!(
        plan.lines().last().map(String::as_str),
        Some("update the front's routes"),
        "{plan}"
    );
}

#[test]
fn a_copy_left_by_an_interrupted_switch_is_removed() {
    let mut observed = healthy_acme().to_vec();
    observed.push(container(
        "provision-acme-ingest-next",
        true,
        Health::Healthy,
        None,
    ));
    let plan = plan_start(
        &view(Some(record(Desired::Running))),
        &kept(),
        &infra(true, CassandraObserved::Running),
        &observed,
    );
    assert_eq!(
        plan.to_string(),
        "plan for tenant acme:
  remove container provision-acme-ingest-next (left over from an interrupted switch)
"
    );
}
