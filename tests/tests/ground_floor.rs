//! The ground floor is real: the harness's Docker engine and Cassandra node
//! work as the rest of the project assumes.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use bollard::models::{ContainerCreateBody, HostConfig};
use bollard::query_parameters::{CreateContainerOptionsBuilder, LogsOptionsBuilder};
use futures::StreamExt;
use provision_testkit::{cassandra, docker, unique_id, Scope, TEST_NETWORK};
use scylla::errors::{DbError, ExecutionError, RequestAttemptError};

#[tokio::test]
async fn a_role_granted_one_keyspace_is_refused_on_another() {
    let node = cassandra().await;
    let admin = node.admin_session().await;
    let own = unique_id("ground_own");
    let other = unique_id("ground_other");
    let role = unique_id("ground_role");
    let password = "s3cret-for-the-test";

    for keyspace in [&own, &other] {
        admin
            .query_unpaged(
                format!(
                    "CREATE KEYSPACE {keyspace} WITH replication = {{'class': 'SimpleStrategy', 'replication_factor': 1}}"
                ),
                (),
            )
            .await
            .unwrap();
        admin
            .query_unpaged(
                format!("CREATE TABLE {keyspace}.notes (id int PRIMARY KEY, body text)"),
                (),
            )
            .await
            .unwrap();
    }
    admin
        .query_unpaged(
            format!("CREATE ROLE {role} WITH PASSWORD = '{password}' AND LOGIN = true"),
            (),
        )
        .await
        .unwrap();
    admin
        .query_unpaged(format!("GRANT SELECT ON KEYSPACE {own} TO {role}"), ())
        .await
        .unwrap();
    admin
        .query_unpaged(format!("GRANT MODIFY ON KEYSPACE {own} TO {role}"), ())
        .await
        .unwrap();

    let tenant = node
        .session_as(&role, password)
        .await
        .expect("the role logs in");
    tenant
        .query_unpaged(
            format!("INSERT INTO {own}.notes (id, body) VALUES (1, 'mine')"),
            (),
        )
        .await
        .expect("the role writes its own keyspace");
    let rows = tenant
        .query_unpaged(format!("SELECT body FROM {own}.notes WHERE id = 1"), ())
        .await
        .unwrap()
        .into_rows_result()
        .unwrap();
    assert_eq!(rows.first_row::<(String,)>().unwrap().0, "mine");

    for statement in [
        format!("SELECT body FROM {other}.notes"),
        format!("INSERT INTO {other}.notes (id, body) VALUES (1, 'theirs')"),
    ] {
        let refused = tenant
            .query_unpaged(statement.clone(), ())
            .await
            .unwrap_err();
        assert!(
            matches!(
                refused,
                ExecutionError::LastAttemptError(RequestAttemptError::DbError(
                    DbError::Unauthorized,
                    _
                ))
            ),
            "{statement} must be refused as Unauthorized, got: {refused}"
        );
    }
    let wrong_password = node.session_as(&role, "not-the-password").await;
    assert!(wrong_password.is_err(), "a wrong password must be refused");

    for keyspace in [&own, &other] {
        admin
            .query_unpaged(format!("DROP KEYSPACE {keyspace}"), ())
            .await
            .unwrap();
    }
    admin
        .query_unpaged(format!("DROP ROLE {role}"), ())
        .await
        .unwrap();
}

#[tokio::test]
async fn a_tenant_container_resolves_cassandra_by_name_and_reaches_cql() {
    let node = cassandra().await;
    let docker = docker().await;
    let scope = Scope::new("ground");
    let image = std::env::var("PROVISION_INGEST_IMAGE")
        .unwrap_or_else(|_| "provision/ingest:dev".to_owned());
    let name = scope.name("probe");
    let config = ContainerCreateBody {
        image: Some(image.clone()),
        cmd: Some(vec!["probe".to_owned(), node.in_network_addr.clone()]),
        labels: Some(scope.labels()),
        host_config: Some(HostConfig {
            network_mode: Some(TEST_NETWORK.to_owned()),
            readonly_rootfs: Some(true),
            cap_drop: Some(vec!["ALL".to_owned()]),
            ..Default::default()
        }),
        ..Default::default()
    };
    docker
        .create_container(
            Some(CreateContainerOptionsBuilder::default().name(&name).build()),
            config,
        )
        .await
        .unwrap_or_else(|e| {
            panic!("cannot create a container from {image} (run scripts/setup): {e}")
        });
    docker.start_container(&name, None).await.unwrap();

    let started = Instant::now();
    let exit_code = loop {
        let state = docker
            .inspect_container(&name, None)
            .await
            .unwrap()
            .state
            .unwrap();
        if state.running == Some(false) {
            break state.exit_code.unwrap_or(-1);
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "the probe did not finish in 30 s"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let mut output = String::new();
    let mut logs = docker.logs(
        &name,
        Some(
            LogsOptionsBuilder::default()
                .stdout(true)
                .stderr(true)
                .build(),
        ),
    );
    while let Some(chunk) = logs.next().await {
        output.push_str(&chunk.unwrap().to_string());
    }
    assert_eq!(exit_code, 0, "the probe failed: {output}");
    assert!(
        output.contains("reached provision-test-cassandra:9042"),
        "{output}"
    );
    scope.cleanup().await;
    let left: HashMap<String, Vec<String>> = HashMap::from([(
        "label".to_owned(),
        vec![format!("io.provision.test-scope={}", scope.id)],
    )]);
    let remaining = docker
        .list_containers(Some(
            bollard::query_parameters::ListContainersOptionsBuilder::default()
                .all(true)
                .filters(&left)
                .build(),
        ))
        .await
        .unwrap();
    assert!(
        remaining.is_empty(),
        "cleanup by label left {} containers",
        remaining.len()
    );
}
