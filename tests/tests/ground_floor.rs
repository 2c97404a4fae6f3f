//! The ground floor is real: the harness's Docker engine and Cassandra node
//! work as the rest of the project assumes.

use std::time::Duration;

use provision_testkit::containers::{
    container_logs, ingest_image, labelled_containers, wait_for_exit, TestContainer,
};
use provision_testkit::{cassandra, docker, Scope, TestTenant};
use scylla::errors::{DbError, ExecutionError, RequestAttemptError};

/// Whether `result` is Cassandra's refusal for lack of a permission.
fn is_unauthorized<T: std::fmt::Debug>(result: &Result<T, ExecutionError>) -> bool {
    matches!(
        result,
        Err(ExecutionError::LastAttemptError(
            RequestAttemptError::DbError(DbError::Unauthorized, _)
        ))
    )
}

/// The isolation the provisioner's own GRANTs give: two tenants made by
/// `ensure_keyspace` and `ensure_role`, as `provision start` makes them.
/// A regression in those grants (a wider GRANT, a superuser role) fails
/// here.
#[tokio::test]
async fn a_tenant_role_made_by_the_provisioner_reaches_its_keyspace_and_nothing_else() {
    let node = cassandra().await;
    let own = TestTenant::create(node, "iso_own").await;
    let other = TestTenant::create(node, "iso_other").await;
    let tenant = own.session(node).await;

    let (ks, theirs) = (&own.keyspace, &other.keyspace);
    tenant
        .query_unpaged(
            format!("INSERT INTO {ks}.settings (name, value) VALUES ('probe', 'mine')"),
            (),
        )
        .await
        .expect("the role writes its own keyspace");
    let rows = tenant
        .query_unpaged(
            format!("SELECT value FROM {ks}.settings WHERE name = 'probe'"),
            (),
        )
        .await
        .expect("the role reads its own keyspace")
        .into_rows_result()
        .unwrap();
    assert_eq!(rows.first_row::<(String,)>().unwrap().0, "mine");

    let refused = [
        // another tenant's data
        format!("SELECT * FROM {theirs}.gateways"),
        format!("SELECT * FROM {theirs}.admin_users"),
        format!("INSERT INTO {theirs}.settings (name, value) VALUES ('x', 'theirs')"),
        // schema changes, even in its own keyspace
        format!("CREATE TABLE {ks}.extra (id int PRIMARY KEY)"),
        format!("DROP TABLE {ks}.readings"),
        format!("ALTER KEYSPACE {ks} WITH replication = {{'class': 'SimpleStrategy', 'replication_factor': 1}}"),
        format!("CREATE KEYSPACE {ks}_2 WITH replication = {{'class': 'SimpleStrategy', 'replication_factor': 1}}"),
        // roles and grants
        format!("CREATE ROLE {}_x WITH PASSWORD = 'x' AND LOGIN = true", own.role),
        format!("GRANT SELECT ON KEYSPACE {theirs} TO {}", own.role),
        format!("ALTER ROLE {} WITH SUPERUSER = true", own.role),
        "SELECT * FROM system_auth.roles".to_owned(),
    ];
    for statement in refused {
        let result = tenant.query_unpaged(statement.clone(), ()).await;
        assert!(
            is_unauthorized(&result),
            "{statement} must be refused as Unauthorized, got: {result:?}"
        );
    }
    let wrong_password = node.session_as(&own.role, "not-the-password").await;
    assert!(wrong_password.is_err(), "a wrong password must be refused");

    own.drop(node).await;
    other.drop(node).await;
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
    provisioner::cql::tenant::ensure_role(&admin, &tenant.id, &tenant.password)
        .await
        .expect("a second ensure_role at once converges");
    node.session_as(&tenant.role, &tenant.password)
        .await
        .expect("the role logs in with its password");
    tenant.drop(node).await;
}
