//! Tenants on two Cassandra clusters (`[[cassandra.clusters]]`), through
//! the real `provision` binary, the real engine and two real single-node
//! clusters: the harness's shared node (`one`, capacity 2) and a node of
//! this test's own (`two`, capacity 1).
//!
//! - Each new tenant goes to the cluster with the most room, the config's
//!   order breaking ties, and a full cluster is skipped;
//! - when every cluster is full, `start` fails with exit code 21
//!   (`clusters_full`) and leaves nothing behind;
//! - each tenant's keyspace and role exist on its own cluster only, and its
//!   ingest writes there (a gateway commissioned through the CLI is acked,
//!   and the reading is in that cluster's keyspace);
//! - `status` names each tenant's cluster, and `capacity` gives each
//!   cluster's tenants, tables and room;
//! - destroying a tenant with its data frees its place.

mod provision_support;

use provision_support::{tenant_containers, Env, Gateway};
use provision_testkit::{cassandra, docker, unique_id, CassandraNode, Scope};

/// Whether `node` has the keyspace and the role of the tenant `id`.
async fn holds_tenant(node: &CassandraNode, id: &str) -> (bool, bool) {
    let session = node.admin_session().await;
    let name = format!("tenant_{id}");
    let count = |cql: &'static str| {
        let session = &session;
        let name = name.clone();
        async move {
            session
                .query_unpaged(cql, (name,))
                .await
                .unwrap()
                .into_rows_result()
                .unwrap()
                .rows_num()
        }
    };
    (
        count("SELECT keyspace_name FROM system_schema.keyspaces WHERE keyspace_name = ?").await
            > 0,
        count("SELECT role FROM system_auth.roles WHERE role = ?").await > 0,
    )
}

/// The readings of `gateway` in the keyspace of `id` on `node`.
async fn readings_on(node: &CassandraNode, id: &str, gateway: &str) -> usize {
    let session = node.admin_session().await;
    session
        .query_unpaged(
            format!("SELECT ts FROM tenant_{id}.readings WHERE gateway_id = ? ALLOW FILTERING"),
            (gateway,),
        )
        .await
        .unwrap()
        .into_rows_result()
        .unwrap()
        .rows_num()
}

/// `status --json` of one tenant.
async fn status(env: &Env, id: &str) -> serde_json::Value {
    let run = env.run(&["--json", "status", id]).await.ok();
    serde_json::from_str(&run.stdout).expect("status is JSON")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tenants_go_to_the_cluster_with_room_and_stay_on_it() {
    let scope = Scope::new("pvclusters");
    let one = cassandra().await;
    let two = provision_testkit::private_cassandra(&docker().await, &scope).await;
    let env = Env::on_clusters(
        scope,
        (27201, 27209),
        (27301, 27309),
        &[("one", 2, one), ("two", 1, &two)],
    )
    .await;
    let ids: Vec<String> = (1..=4).map(|n| unique_id(&format!("cl{n}"))).collect();

    // Room 2 against 1: one. Then 1 against 1: one, first in the config.
    // Then one is full: two.
    for (id, cluster) in ids.iter().zip(["one", "one", "two"]) {
        env.run(&["start", id]).await.ok();
        assert_eq!(status(&env, id).await["cluster"], cluster, "{id}");
    }

    // Every cluster is full: exit 21, one clear message, nothing made.
    let full = env.run(&["start", &ids[3]]).await;
    assert_eq!(
        full.code, 21,
        "stdout: {}\nstderr: {}",
        full.stdout, full.stderr
    );
    assert!(
        full.stderr.contains("no Cassandra cluster has room")
            && full.stderr.contains("one 2/2")
            && full.stderr.contains("two 1/1"),
        "{}",
        full.stderr
    );
    assert!(tenant_containers(&ids[3]).await.is_empty());
    let list = env.run(&["--json", "list"]).await.ok();
    assert!(!list.stdout.contains(&ids[3]), "{}", list.stdout);

    // Each tenant's keyspace and role are on its own cluster only.
    for (id, on_one) in ids[..3].iter().zip([true, true, false]) {
        assert_eq!(holds_tenant(one, id).await, (on_one, on_one), "{id} on one");
        assert_eq!(
            holds_tenant(&two, id).await,
            (!on_one, !on_one),
            "{id} on two"
        );
    }

    // The tenant on two writes to two: its containers got two's contact
    // points and its registry is there.
    let run = env
        .run(&["--json", "gateway", "add", &ids[2], "site-1"])
        .await
        .ok();
    let token = run.field("token").expect("a token");
    let port = status(&env, &ids[2]).await["gateway_port"]
        .as_u64()
        .expect("a gateway port") as u16;
    let mut gateway = Gateway::connect(port, "site-1", &token).await;
    let ts = chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ").to_string();
    gateway.reading(1, &ts, "inv-1", "power", 42.0).await;
    assert_eq!(readings_on(&two, &ids[2], "site-1").await, 1);

    // capacity: tenants, tables and room per cluster.
    let run = env.run(&["--json", "capacity"]).await.ok();
    let report: serde_json::Value = serde_json::from_str(&run.stdout).expect("JSON");
    let clusters = report["clusters"].as_array().expect("clusters");
    let line = |name: &str| {
        clusters
            .iter()
            .find(|c| c["name"] == name)
            .unwrap_or_else(|| panic!("{name} in {}", run.stdout))
            .clone()
    };
    let (line_one, line_two) = (line("one"), line("two"));
    assert_eq!(
        (
            &line_one["tenants"],
            &line_one["room"],
            &line_one["capacity"]
        ),
        (&2.into(), &0.into(), &2.into()),
        "{}",
        run.stdout
    );
    assert_eq!(
        (&line_two["tenants"], &line_two["room"]),
        (&1.into(), &0.into()),
        "{}",
        run.stdout
    );
    let tables_two = line_two["tables"].as_u64().expect("two's tables counted");
    assert!(
        tables_two >= 3,
        "one tenant's tables on two: {}",
        run.stdout
    );
    assert!(
        line_one["tables"].as_u64().expect("one's tables counted") >= 2 * tables_two,
        "{}",
        run.stdout
    );
    let text = env.run(&["capacity"]).await.ok();
    assert!(
        text.stdout.contains("CLUSTER") && text.stdout.contains("two"),
        "{}",
        text.stdout
    );

    // Destroying a tenant on one frees its place: the fourth goes there.
    env.run(&["destroy", &ids[0], "--yes", "--purge-data"])
        .await
        .ok();
    assert_eq!(holds_tenant(one, &ids[0]).await, (false, false));
    env.run(&["start", &ids[3]]).await.ok();
    assert_eq!(status(&env, &ids[3]).await["cluster"], "one");
    assert_eq!(holds_tenant(one, &ids[3]).await, (true, true));
    assert_eq!(holds_tenant(&two, &ids[3]).await, (false, false));

    for id in &ids[1..] {
        env.run(&["destroy", id, "--yes", "--purge-data"])
            .await
            .ok();
    }
    assert_eq!(holds_tenant(&two, &ids[2]).await, (false, false));
    // The test's own node, and anything else of its scope.
    env.scope.cleanup().await;
}
