//! The ground floor is real: the harness's Docker engine and Cassandra node
//! work as the rest of the project assumes.

use std::time::Duration;

use provision_testkit::containers::{
    container_logs, ingest_image, labelled_containers, wait_for_exit, TestContainer,
};
use provision_testkit::{cassandra, docker, unique_id, Scope};
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
    let image = ingest_image();
    let name = TestContainer::scoped(&scope, "probe", &image)
        .cmd(vec!["probe".to_owned(), node.in_network_addr.clone()])
        .on_test_network()
        .hardened()
        .start(&docker)
        .await
        .unwrap_or_else(|e| {
            panic!("cannot start a container from {image} (run scripts/setup): {e}")
        });
    let exit_code = wait_for_exit(&docker, &name, Duration::from_secs(30)).await;
    let output = container_logs(&docker, &name).await.unwrap().concat();
    assert_eq!(exit_code, 0, "the probe failed: {output}");
    assert!(
        output.contains("reached provision-test-cassandra:9042"),
        "{output}"
    );
    scope.cleanup().await;
    let remaining =
        labelled_containers(&docker, &format!("io.provision.test-scope={}", scope.id)).await;
    assert!(
        remaining.is_empty(),
        "cleanup by label left {} containers",
        remaining.len()
    );
}

/// A provisioner killed right after `CREATE ROLE` runs `ensure_role` again
/// within Cassandra's 5-second password-change interval; it must converge
/// (the role keeps working with the stored password), not fail.
#[tokio::test]
async fn ensure_role_right_after_the_role_was_created_converges() {
    let node = cassandra().await;
    let tenant = provision_testkit::TestTenant::create(node, "role_again").await;
    let admin = node.admin_session().await;
    provisioner::cassandra::ensure_role(&admin, &tenant.id, &tenant.password)
        .await
        .expect("a second ensure_role at once converges");
    node.session_as(&tenant.role, &tenant.password)
        .await
        .expect("the role logs in with its password");
    tenant.drop(node).await;
}
