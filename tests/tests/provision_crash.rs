//! A provisioner killed at any point of `start` converges when run again:
//! one pair of containers, the same two ports, one role, nothing leaked.

mod provision_support;

use std::time::Duration;

use provision_support::{tenant_containers, Env};
use provision_testkit::unique_id;

#[tokio::test]
async fn a_start_killed_halfway_converges_when_run_again() {
    let env = Env::new("pvcrash", (27801, 27820), (27901, 27920)).await;
    let mut ports_seen = Vec::new();
    for delay_ms in [60u64, 250, 500, 900, 1300] {
        let id = unique_id("crash");
        let mut child = env
            .command(&["start", &id])
            .spawn()
            .expect("provision starts");
        tokio::time::sleep(Duration::from_millis(delay_ms)).await;
        let _ = child.start_kill();
        let _ = child.wait().await;

        let run = env.run(&["--json", "start", &id]).await.ok();
        let ports = (run.port("gateway_port"), run.port("admin_port"));
        assert_eq!(
            tenant_containers(&id).await.len(),
            2,
            "killed after {delay_ms} ms"
        );
        // A third start changes nothing: the second one converged.
        let third = env.run(&["--json", "start", &id]).await.ok();
        assert_eq!(
            (third.port("gateway_port"), third.port("admin_port")),
            ports
        );
        assert_eq!(
            third.field("changed").as_deref(),
            Some("false"),
            "{}",
            third.stdout
        );
        ports_seen.push(ports);

        env.run(&["destroy", &id, "--yes", "--purge-data"])
            .await
            .ok();
        assert!(
            tenant_containers(&id).await.is_empty(),
            "killed after {delay_ms} ms"
        );
        let session = env.node.admin_session().await;
        let roles = session
            .query_unpaged(
                "SELECT role FROM system_auth.roles WHERE role = ?",
                (format!("tenant_{id}"),),
            )
            .await
            .unwrap()
            .into_rows_result()
            .unwrap();
        assert_eq!(roles.rows_num(), 0, "the role of {id} leaked");
    }
    // Every tenant was destroyed, so every one got the pool's first ports:
    // no lease leaked from a killed run.
    for ports in &ports_seen {
        assert_eq!(*ports, (27801, 27901), "{ports_seen:?}");
    }
    let provisioner = env.provisioner().await;
    assert!(provisioner.store.providers().await.unwrap().is_empty());
}
