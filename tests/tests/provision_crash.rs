//! A provisioner that dies right after any step of `start` converges when
//! run again: one pair of containers, the same two ports, one role, nothing
//! leaked. The fault is injected, not timed: the test hook
//! `PROVISION_TEST_EXIT_AFTER_STEP=N` makes the process exit right after
//! step N, so every step is covered whatever the machine's speed.

mod provision_support;

use provision_support::{tenant_containers, Env};
use provision_testkit::unique_id;

/// The exit code of a process the hook stopped (the library's
/// `FAULT_EXIT_CODE`).
const FAULT_EXIT: i32 = provisioner::ops::executor::FAULT_EXIT_CODE;

#[tokio::test]
async fn a_start_that_dies_after_any_step_converges_when_run_again() {
    let env = Env::new("pvcrash", (27861, 27880), (27961, 27980)).await;
    let fresh = env.run(&["--json", "plan", &unique_id("count")]).await.ok();
    let steps = fresh.stdout.matches("\n    \"").count();
    assert!(
        steps >= 10,
        "a fresh start plans every step: {}",
        fresh.stdout
    );

    for after in 1..=steps {
        let id = unique_id("crash");
        let died = env
            .command(&["start", &id])
            .env("PROVISION_TEST_EXIT_AFTER_STEP", after.to_string())
            .output()
            .await
            .expect("provision runs");
        assert_eq!(
            died.status.code(),
            Some(FAULT_EXIT),
            "step {after}: {}",
            String::from_utf8_lossy(&died.stderr)
        );

        let run = env.run(&["--json", "start", &id]).await.ok();
        let ports = (run.port("gateway_port"), run.port("admin_port"));
        assert_eq!(
            tenant_containers(&id).await.len(),
            3,
            "died after step {after}"
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
        // Every tenant before was destroyed: no lease leaked from a dead run.
        assert_eq!(ports, (27861, 27961), "died after step {after}");
        // The dead run shows as interrupted in the history.
        let history = env.run(&["--json", "history", &id]).await.ok();
        assert!(
            history.stdout.contains("\"interrupted\""),
            "{}",
            history.stdout
        );

        env.run(&["destroy", &id, "--yes", "--purge-data"])
            .await
            .ok();
        assert!(
            tenant_containers(&id).await.is_empty(),
            "died after step {after}"
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
    let provisioner = env.provisioner().await;
    assert!(provisioner.store.tenants().await.unwrap().is_empty());
}
