//! The executor against the in-memory backend and an in-memory Cassandra:
//! a start stopped right after each of its steps converges when run again,
//! and the golden plans of each operation are what the executor runs.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;

use super::report::TenantResult;
use super::{Fault, GatewayConnections, Provisioner, StartOptions};
use crate::backend::memory::MemoryBackend;
use crate::config::Config;
use crate::cql::{Connector, Result as CqlResult, TenantStorage};
use crate::domain::{Desired, ProviderId, TenantLimits};
use crate::error::Error;
use crate::store::Store;

/// Cassandra in memory: keyspaces with their schema version, roles with
/// their password, admin users, and whether the default superuser is live.
#[derive(Debug, Default)]
struct Cluster {
    keyspaces: BTreeMap<String, u32>,
    roles: BTreeMap<String, String>,
    admin_users: BTreeMap<String, BTreeSet<String>>,
    default_superuser: bool,
}

#[derive(Debug, Default, Clone)]
struct MemoryCql(Arc<Mutex<Cluster>>);

#[async_trait]
impl TenantStorage for MemoryCql {
    async fn retire_default_superuser(&self, _container: &str) -> CqlResult<()> {
        self.0.lock().unwrap().default_superuser = false;
        Ok(())
    }

    async fn ensure_keyspace(&self, id: &ProviderId) -> CqlResult<u32> {
        let latest = tenant_schema::latest_version();
        self.0
            .lock()
            .unwrap()
            .keyspaces
            .insert(id.keyspace(), latest);
        Ok(latest)
    }

    async fn ensure_role(&self, id: &ProviderId, password: &str) -> CqlResult<()> {
        let mut c = self.0.lock().unwrap();
        assert!(
            c.keyspaces.contains_key(&id.keyspace()),
            "a role is granted a keyspace that exists"
        );
        c.roles.insert(id.cassandra_role(), password.to_owned());
        Ok(())
    }

    async fn create_admin_user(&self, id: &ProviderId, username: &str, _: &str) -> CqlResult<()> {
        let mut c = self.0.lock().unwrap();
        assert!(c.keyspaces.contains_key(&id.keyspace()));
        c.admin_users
            .entry(id.keyspace())
            .or_default()
            .insert(username.to_owned());
        Ok(())
    }

    async fn drop_tenant(&self, id: &ProviderId) -> CqlResult<()> {
        let mut c = self.0.lock().unwrap();
        c.keyspaces.remove(&id.keyspace());
        c.roles.remove(&id.cassandra_role());
        c.admin_users.remove(&id.keyspace());
        Ok(())
    }
}

#[async_trait]
impl Connector for MemoryCql {
    async fn connect(
        &self,
        _cluster: &Config,
        _store: &Store,
    ) -> CqlResult<Arc<dyn TenantStorage>> {
        Ok(Arc::new(self.clone()))
    }

    async fn default_login_works(&self, _managed: &Config) -> bool {
        self.0.lock().unwrap().default_superuser
    }
}

/// A host in memory: a state store in a temporary folder, the memory
/// backend, the memory cluster.
struct Host {
    dir: std::path::PathBuf,
    backend: Arc<MemoryBackend>,
    cql: MemoryCql,
    config: Config,
}

impl Host {
    fn new(name: &str) -> Host {
        let dir = std::env::temp_dir().join(format!(
            "provision-ops-{name}-{}-{}",
            std::process::id(),
            rand::random::<u32>()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        let config = Config {
            data_dir: Some(dir.clone()),
            ..Config::default()
        };
        let cql = MemoryCql::default();
        cql.0.lock().unwrap().default_superuser = true;
        Host {
            backend: Arc::new(MemoryBackend::new(config.clone())),
            cql,
            config,
            dir,
        }
    }

    async fn provisioner(&self, fault: Option<Fault>) -> Provisioner {
        let store = Store::open(&self.config.state_path()).await.unwrap();
        Provisioner::with_parts(
            self.config.clone(),
            store,
            self.backend.clone(),
            Arc::new(self.cql.clone()),
        )
        .with_fault(fault)
    }

    /// Asserts that `id` runs as a fresh start leaves it.
    async fn assert_converged(&self, id: &ProviderId, context: &str) {
        let p = self.provisioner(None).await;
        let plan = p.plan(id, StartOptions::default()).await.unwrap();
        assert!(plan.is_empty(), "{context}: still to do:\n{plan}");
        let record = p.store.tenant(id).await.unwrap().expect("known");
        assert_eq!(record.desired, Desired::Running, "{context}");
        assert_eq!(
            (record.gateway_port, record.admin_port),
            (Some(6001), Some(8081)),
            "{context}"
        );
        let world = self.backend.snapshot();
        assert_eq!(world.containers.len(), 3, "{context}");
        assert!(world.containers.values().all(|c| c.running), "{context}");
        assert!(world.networks["provision-net-acme"].contains("provision-cassandra"));
        let cluster = self.cql.0.lock().unwrap();
        assert!(!cluster.default_superuser, "{context}");
        assert_eq!(cluster.roles.len(), 1, "{context}");
        assert_eq!(cluster.admin_users["tenant_acme"].len(), 1, "{context}");
    }
}

impl Drop for Host {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn acme() -> ProviderId {
    ProviderId::parse("acme").unwrap()
}

#[tokio::test]
async fn a_dry_run_prints_the_steps_that_then_run() {
    let host = Host::new("dry");
    let p = host.provisioner(None).await;
    let planned = p
        .start(
            &acme(),
            StartOptions {
                dry_run: true,
                ..StartOptions::default()
            },
        )
        .await
        .unwrap();
    let ran = p.start(&acme(), StartOptions::default()).await.unwrap();
    assert_eq!(planned.plan, ran.plan);
    assert_eq!(ran.plan.len(), 18, "{:#?}", ran.plan);
    assert_eq!(
        &ran.plan[ran.plan.len() - 4..],
        [
            "create and start container provision-acme-notifier from provision/notifier:dev, no published port (missing)",
            "wait until provision-acme-ingest is healthy",
            "wait until provision-acme-admin is healthy",
            "wait until provision-acme-notifier is healthy",
        ]
    );
    assert!(
        ran.plan
            .iter()
            .any(|s| s == "issue the gateway certificate for localhost (missing)"),
        "{:#?}",
        ran.plan
    );
    assert!(ran.changed && ran.admin_password.is_some());
    host.assert_converged(&acme(), "after one start").await;
    let again = p.start(&acme(), StartOptions::default()).await.unwrap();
    assert!(!again.changed && again.plan.is_empty(), "{:?}", again.plan);
}

#[tokio::test]
async fn a_start_stopped_right_after_any_step_converges_when_run_again() {
    let steps = {
        let host = Host::new("count");
        let p = host.provisioner(None).await;
        p.plan(&acme(), StartOptions::default())
            .await
            .unwrap()
            .steps
            .len()
    };
    assert!(steps > 10, "a fresh start has every step: {steps}");
    for after in 1..=steps {
        let host = Host::new("fault");
        let faulty = host.provisioner(Some(Fault { after, exit: false })).await;
        let stopped = faulty.start(&acme(), StartOptions::default()).await;
        assert!(
            matches!(stopped, Err(Error::Injected(n)) if n == after),
            "step {after}: {stopped:?}"
        );
        let rerun = host.provisioner(None).await;
        rerun
            .start(&acme(), StartOptions::default())
            .await
            .unwrap_or_else(|e| panic!("rerun after step {after}: {e}"));
        host.assert_converged(&acme(), &format!("stopped after step {after}"))
            .await;
        let history = rerun.history(Some(&acme())).await.unwrap();
        assert_eq!(history.len(), 2, "step {after}");
    }
}

#[tokio::test]
async fn a_rebuilt_image_is_drift_and_reconcile_recreates_the_container() {
    let host = Host::new("rebuilt");
    let p = host.provisioner(None).await;
    p.start(&acme(), StartOptions::default()).await.unwrap();
    host.backend
        .world
        .lock()
        .unwrap()
        .images
        .insert("provision/ingest:dev".into(), "sha256:rebuilt".into());
    let report = p.reconcile(false).await.unwrap();
    assert_eq!(
        report.plan,
        [
            "acme: remove container provision-acme-ingest (configuration changed)",
            "acme: create and start container provision-acme-ingest from provision/ingest:dev on port 6001 (configuration changed)",
        ]
    );
    let world = host.backend.snapshot();
    assert_eq!(
        world.containers["provision-acme-ingest"].spec.image_id,
        "sha256:rebuilt"
    );
    assert!(p.reconcile(false).await.unwrap().plan.is_empty());
}

#[tokio::test]
async fn a_reconcile_pass_that_changes_nothing_observes_once_for_all_tenants() {
    let host = Host::new("one-look");
    let p = host.provisioner(None).await;
    let ids: Vec<_> = ["acme", "beta", "gamma", "delta", "eps"]
        .into_iter()
        .map(|id| ProviderId::parse(id).unwrap())
        .collect();
    for id in &ids {
        p.start(id, StartOptions::default()).await.unwrap();
    }
    // a stopped tenant is planned from the same look
    p.stop(&ids[4], false).await.unwrap();
    host.backend.world.lock().unwrap().calls.clear();
    let report = p.reconcile(false).await.unwrap();
    assert!(report.plan.is_empty(), "{report:#?}");
    assert!(report
        .tenants
        .iter()
        .all(|t| t.result == TenantResult::Unchanged));
    let calls = host.backend.snapshot().calls;
    assert_eq!(
        calls,
        BTreeMap::from([
            ("image_id", 3),
            ("observe_containers", 1),
            ("observe_infra", 1),
            ("observe_tenant_networks", 1),
        ]),
        "whatever the number of tenants"
    );
    // drift on one tenant: only that one is observed again (under its lock)
    host.backend
        .world
        .lock()
        .unwrap()
        .containers
        .remove("provision-beta-admin");
    host.backend.world.lock().unwrap().calls.clear();
    let report = p.reconcile(false).await.unwrap();
    let results: Vec<_> = report.tenants.iter().map(|t| t.result).collect();
    assert_eq!(
        results,
        [
            TenantResult::Unchanged,
            TenantResult::Ok,
            TenantResult::Unchanged,
            TenantResult::Unchanged,
            TenantResult::Unchanged
        ]
    );
    assert_eq!(host.backend.snapshot().calls["observe_containers"], 2);
    assert!(host
        .backend
        .snapshot()
        .containers
        .contains_key("provision-beta-admin"));
}

#[tokio::test]
async fn reconcile_reports_a_failing_tenant_and_goes_on() {
    let host = Host::new("partial");
    let p = host.provisioner(None).await;
    let beta = ProviderId::parse("beta").unwrap();
    p.start(&acme(), StartOptions::default()).await.unwrap();
    p.start(&beta, StartOptions::default()).await.unwrap();
    {
        let mut world = host.backend.world.lock().unwrap();
        world.containers.clear();
        world.fail_create.insert("provision-acme-admin".into());
    }
    let report = p.reconcile(false).await.unwrap();
    let errors: Vec<_> = report.tenants.iter().map(|t| t.error.is_some()).collect();
    assert_eq!(
        errors,
        [true, false],
        "acme fails, beta goes on: {report:#?}"
    );
    // beta's three, and acme's ingest made before its admin failed
    assert_eq!(host.backend.snapshot().containers.len(), 4);
    host.backend.world.lock().unwrap().fail_create.clear();
    let report = p.reconcile(false).await.unwrap();
    assert!(report.first_error().is_none(), "{report:#?}");
    assert_eq!(host.backend.snapshot().containers.len(), 6);
}

#[tokio::test]
async fn stop_then_destroy_with_purge_leaves_nothing() {
    let host = Host::new("destroy");
    let p = host.provisioner(None).await;
    p.start(&acme(), StartOptions::default()).await.unwrap();
    let stop = p.stop(&acme(), false).await.unwrap();
    assert_eq!(
        stop.plan,
        [
            "set the desired state to stopped",
            "stop container provision-acme-ingest",
            "stop container provision-acme-admin",
            "stop container provision-acme-notifier",
        ]
    );
    let destroy = p.destroy(&acme(), true, false).await.unwrap();
    assert_eq!(
        destroy.plan.first().unwrap(),
        "set the desired state to destroyed"
    );
    assert!(host.backend.snapshot().containers.is_empty());
    assert!(!host
        .backend
        .snapshot()
        .networks
        .contains_key("provision-net-acme"));
    assert!(p.store.tenants().await.unwrap().is_empty());
    assert!(p.store.leases().await.unwrap().is_empty());
    assert!(host.cql.0.lock().unwrap().keyspaces.is_empty());
    let history: Vec<String> = p
        .history(None)
        .await
        .unwrap()
        .into_iter()
        .map(|op| op.request.unwrap_or_default())
        .collect();
    assert_eq!(
        history,
        ["start acme", "stop acme", "destroy acme --purge-data"]
    );
}

#[tokio::test]
async fn export_writes_out_the_specs_start_created_and_knows_no_stranger() {
    use super::export::compose_service;
    let host = Host::new("export");
    let p = host.provisioner(None).await;
    let unknown = p.export(&acme()).await.unwrap_err();
    assert_eq!(unknown.exit_code(), 8, "{unknown}");
    p.start(&acme(), StartOptions::default()).await.unwrap();
    p.stop(&acme(), false).await.unwrap();
    let file = p.export(&acme()).await.unwrap();
    let world = host.backend.snapshot();
    for (role, name) in [
        ("ingest", "provision-acme-ingest"),
        ("admin", "provision-acme-admin"),
        ("notifier", "provision-acme-notifier"),
    ] {
        let created = &world.containers[name].spec;
        assert_eq!(file.services[role], compose_service(created), "{role}");
        assert_eq!(file.provenance.image_ids[role], created.image_id);
    }
    assert_eq!(file.services["ingest"].ports, ["6001:6000/tcp"]);
    assert_eq!(file.services["admin"].ports, ["8081:8080/tcp"]);
    assert!(file.services["notifier"].ports.is_empty());
    assert!(file.networks["provision-net-acme"].external);
    p.destroy(&acme(), false, false).await.unwrap();
    let destroyed = p.export(&acme()).await.unwrap_err();
    assert_eq!(destroyed.exit_code(), 2, "{destroyed}");
}

#[tokio::test]
async fn limits_are_kept_until_a_later_start_changes_them_and_status_shows_the_connections() {
    let host = Host::new("limits");
    let p = host.provisioner(None).await;
    let limited = StartOptions {
        max_readings_per_sec: Some(300),
        max_gateways: Some(2),
        ..StartOptions::default()
    };
    p.start(&acme(), limited).await.unwrap();
    let ingest = |host: &Host| {
        host.backend.snapshot().containers["provision-acme-ingest"]
            .spec
            .env
            .clone()
    };
    assert_eq!(ingest(&host)["INGEST_MAX_READINGS_PER_SEC"], "300");
    assert_eq!(ingest(&host)["INGEST_MAX_CONNECTIONS"], "2");
    let status = p.status(Some(&acme())).await.unwrap().remove(0);
    assert_eq!(
        (status.max_readings_per_sec, status.max_gateways),
        (Some(300), Some(2))
    );
    assert_eq!(status.connections, None, "no health check has run yet");

    // the health check's line, as Docker keeps it
    host.backend
        .world
        .lock()
        .unwrap()
        .containers
        .get_mut("provision-acme-ingest")
        .unwrap()
        .health_log =
        Some("ok connections plain=1 tls=2 max_connections=2 max_readings_per_sec=300".into());
    let status = p.status(Some(&acme())).await.unwrap().remove(0);
    assert_eq!(
        status.connections,
        Some(GatewayConnections { plain: 1, tls: 2 })
    );

    // a start without the flags keeps them and changes nothing
    let again = p.start(&acme(), StartOptions::default()).await.unwrap();
    assert!(again.plan.is_empty(), "{:?}", again.plan);
    let record = p.store.tenant(&acme()).await.unwrap().unwrap();
    assert_eq!(
        record.limits,
        TenantLimits::default().changed(Some(300), Some(2))
    );

    // 0 goes back to the defaults: no rate limit, the default cap
    let unlimited = StartOptions {
        max_readings_per_sec: Some(0),
        max_gateways: Some(0),
        ..StartOptions::default()
    };
    let back = p.start(&acme(), unlimited).await.unwrap();
    assert!(
        back.plan
            .iter()
            .any(|s| s.starts_with("set the limits to readings/s unlimited")),
        "{:?}",
        back.plan
    );
    assert!(!ingest(&host).contains_key("INGEST_MAX_READINGS_PER_SEC"));
    assert_eq!(
        ingest(&host)["INGEST_MAX_CONNECTIONS"],
        crate::domain::spec::DEFAULT_MAX_GATEWAYS.to_string()
    );
    let status = p.status(Some(&acme())).await.unwrap().remove(0);
    assert_eq!(
        (status.max_readings_per_sec, status.max_gateways),
        (None, None)
    );
    let history = p.history(Some(&acme())).await.unwrap();
    assert!(
        history.iter().any(|op| op.request.as_deref()
            == Some("start acme --max-readings-per-sec 300 --max-gateways 2")),
        "{history:?}"
    );
}

#[tokio::test]
async fn a_tenant_with_two_containers_gets_its_notifier_and_status_reads_its_health_line() {
    let host = Host::new("notifier");
    let p = host.provisioner(None).await;
    p.start(&acme(), StartOptions::default()).await.unwrap();
    // a tenant from before the notifier: only ingest and admin
    host.backend
        .world
        .lock()
        .unwrap()
        .containers
        .remove("provision-acme-notifier");
    let status = p.status(Some(&acme())).await.unwrap().remove(0);
    assert_eq!(status.state, super::report::TenantState::Degraded);
    let report = p.reconcile(false).await.unwrap();
    assert_eq!(
        report.plan,
        ["acme: create and start container provision-acme-notifier from provision/notifier:dev, no published port (missing)"]
    );
    let world = host.backend.snapshot();
    let notifier = &world.containers["provision-acme-notifier"].spec;
    assert_eq!(notifier.extra_hosts, ["host.docker.internal:host-gateway"]);
    assert_eq!(notifier.host_port, None);
    assert!(host
        .dir
        .join("secrets/acme-notifier/cassandra_password")
        .exists());

    let status = p.status(Some(&acme())).await.unwrap().remove(0);
    assert_eq!(status.state, super::report::TenantState::Running);
    assert_eq!(status.notifier, None, "no health check has run yet");
    assert!(!status.mail_configured);
    host.backend
        .world
        .lock()
        .unwrap()
        .containers
        .get_mut("provision-acme-notifier")
        .unwrap()
        .health_log = Some("ok notifier mail=off rules=3 firing=1 pending=0 failed=0".into());
    let status = p.status(Some(&acme())).await.unwrap().remove(0);
    assert_eq!(
        status.notifier,
        Some(super::NotifierStatus {
            mail: "off".into(),
            rules: 3,
            firing: 1,
            pending: 0,
            failed: 0,
        })
    );
    assert_eq!(status.containers.len(), 3);
}
