//! Many `provision` processes at once: twenty different providers get forty
//! distinct ports; two processes starting the same provider make one tenant.

mod provision_support;

use std::collections::HashSet;

use futures::future::join_all;
use provision_support::{tenant_containers, Env};
use provision_testkit::unique_id;

#[tokio::test]
async fn twenty_concurrent_starts_get_forty_distinct_ports() {
    let env = Env::new("pvconc", (27601, 27660), (27701, 27760)).await;
    let ids: Vec<String> = (0..20).map(|_| unique_id("conc")).collect();
    let runs = join_all(ids.iter().map(|id| env.run(&["--json", "start", id]))).await;
    let mut ports = HashSet::new();
    for (id, run) in ids.iter().zip(runs) {
        let run = run.ok();
        assert_eq!(run.field("provider").as_deref(), Some(id.as_str()));
        assert!(
            ports.insert(run.port("gateway_port")),
            "gateway port handed out twice"
        );
        assert!(
            ports.insert(run.port("admin_port")),
            "admin port handed out twice"
        );
    }
    assert_eq!(ports.len(), 40);
    for id in &ids {
        assert_eq!(tenant_containers(id).await.len(), 3, "{id}");
    }
    let destroys = join_all(
        ids.iter()
            .map(|id| env.run(&["destroy", id, "--yes", "--purge-data"])),
    )
    .await;
    for run in destroys {
        run.ok();
    }
}

#[tokio::test]
async fn two_processes_starting_the_same_provider_make_one_tenant() {
    let env = Env::new("pvconc", (27661, 27670), (27761, 27770)).await;
    let id = unique_id("twin");
    let (a, b) = tokio::join!(
        env.run(&["--json", "start", &id]),
        env.run(&["--json", "start", &id])
    );
    let (a, b) = (a.ok(), b.ok());
    assert_eq!(a.port("gateway_port"), b.port("gateway_port"));
    assert_eq!(a.port("admin_port"), b.port("admin_port"));
    let passwords = [&a, &b]
        .iter()
        .filter(|r| r.field("admin_password").is_some())
        .count();
    assert_eq!(
        passwords, 1,
        "exactly one start creates the first admin user"
    );
    assert_eq!(tenant_containers(&id).await.len(), 3);
    let list = env.run(&["--json", "list"]).await.ok();
    assert_eq!(
        list.stdout
            .matches(&format!("\"provider\": \"{id}\""))
            .count(),
        1
    );
    env.run(&["destroy", &id, "--yes", "--purge-data"])
        .await
        .ok();
    assert!(tenant_containers(&id).await.is_empty());
}
