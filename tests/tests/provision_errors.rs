//! Every error a person can run into gives one clear `error: ...` line and
//! its own non-zero exit code, and leaves nothing behind.

mod provision_support;

use std::net::TcpListener;

use provision_support::{tenant_containers, Env, Run};
use provision_testkit::unique_id;

fn assert_error(run: &Run, code: i32, needle: &str) {
    assert_eq!(
        run.code, code,
        "stdout: {}\nstderr: {}",
        run.stdout, run.stderr
    );
    let line = run.stderr.trim();
    assert!(line.starts_with("error: "), "{line}");
    assert_eq!(line.lines().count(), 1, "one line: {line}");
    assert!(line.contains(needle), "{line:?} does not say {needle:?}");
}

#[tokio::test]
async fn an_invalid_provider_id_is_refused_with_what_is_allowed() {
    let env = Env::new("pverr", (27401, 27402), (27411, 27412)).await;
    for bad in ["Acme", "1acme", "ac-me", "tenant;drop", &"a".repeat(33)] {
        let run = env.run(&["start", bad]).await;
        assert_error(&run, 3, "invalid provider id");
        assert!(
            run.stderr.contains("lowercase letters, digits and '_'"),
            "{}",
            run.stderr
        );
    }
    let run = env.run(&["gateway", "add", "Bad-Id", "gw-1"]).await;
    assert_error(&run, 3, "invalid provider id");
}

#[tokio::test]
async fn an_exhausted_port_pool_is_an_error_and_leases_nothing() {
    // A pool of one gateway port, held by another process on the host.
    let holder = TcpListener::bind("0.0.0.0:27421").expect("the test holds its port");
    let env = Env::new("pverr", (27421, 27421), (27431, 27432)).await;
    let id = unique_id("exhausted");
    let run = env.run(&["start", &id]).await;
    assert_error(&run, 4, "gateway port pool 27421-27421 is exhausted");
    assert_error(&env.run(&["status", &id]).await, 8, "unknown provider");
    assert!(tenant_containers(&id).await.is_empty());
    drop(holder);
}

#[tokio::test]
async fn a_requested_port_that_is_leased_or_held_is_refused() {
    let env = Env::new("pverr", (27441, 27444), (27451, 27454)).await;
    let first = unique_id("owner");
    let started = env
        .run(&["--json", "start", &first, "--gateway-port", "27442"])
        .await
        .ok();
    assert_eq!(started.port("gateway_port"), 27442);

    let second = unique_id("taker");
    let run = env
        .run(&["start", &second, "--gateway-port", "27442"])
        .await;
    assert_error(
        &run,
        5,
        &format!("gateway port 27442 is already leased to tenant {first}"),
    );

    let holder = TcpListener::bind("0.0.0.0:27459").expect("the test holds its port");
    let run = env.run(&["start", &second, "--admin-port", "27459"]).await;
    assert_error(&run, 5, "admin port 27459 is held by another process");
    drop(holder);

    // Neither refusal left a tenant, a lease or a container behind.
    assert_error(&env.run(&["status", &second]).await, 8, "unknown provider");
    assert!(tenant_containers(&second).await.is_empty());
    // A tenant keeps its port: asking it for another one is refused too.
    let run = env.run(&["start", &first, "--gateway-port", "27443"]).await;
    assert_error(&run, 5, "already has gateway port 27442");
    env.run(&["destroy", &first, "--yes", "--purge-data"])
        .await
        .ok();
}

#[tokio::test]
async fn an_unreachable_engine_is_named() {
    let env = Env::new("pverr", (27461, 27462), (27471, 27472)).await;
    env.edit_config(
        "[docker]\n",
        "[docker]\nhost = \"unix:///nonexistent/docker.sock\"\n",
    );
    let id = unique_id("noengine");
    let run = env.run(&["start", &id]).await;
    assert_error(
        &run,
        6,
        "no Docker engine answers at unix:///nonexistent/docker.sock",
    );
    assert_error(&env.run(&["status", &id]).await, 8, "unknown provider");
}

#[tokio::test]
async fn an_unreachable_cassandra_is_named_and_leaves_nothing() {
    let env = Env::new("pverr", (27481, 27482), (27491, 27492)).await;
    let host = env.node.host_addr.to_string();
    env.edit_config(
        &format!("contact_points = [\"{host}\"]"),
        "contact_points = [\"127.0.0.1:1\"]",
    );
    env.edit_config("connect_timeout_secs = 30", "connect_timeout_secs = 2");
    let id = unique_id("nocql");
    let run = env.run(&["start", &id]).await;
    assert_error(&run, 7, "cassandra at 127.0.0.1:1 cannot be reached");
    assert_error(&env.run(&["status", &id]).await, 8, "unknown provider");
    assert!(tenant_containers(&id).await.is_empty());
}

#[tokio::test]
async fn a_wrong_superuser_password_fails_at_once_naming_the_user_and_the_contact_point() {
    let env = Env::new("pverr", (27521, 27522), (27531, 27532)).await;
    let host = env.node.host_addr.to_string();
    env.edit_config(
        &format!("admin_password = \"{}\"", env.node.admin_password),
        "admin_password = \"not-the-password\"",
    );
    let id = unique_id("badpw");
    let started = std::time::Instant::now();
    let run = env.run(&["start", &id]).await;
    assert!(
        started.elapsed() < std::time::Duration::from_secs(10),
        "an authentication failure is not retried: {:?}",
        started.elapsed()
    );
    assert_error(
        &run,
        11,
        &format!(
            "cassandra at {host} refused the login of {}",
            env.node.admin_user
        ),
    );
    assert_error(&env.run(&["status", &id]).await, 8, "unknown provider");
    assert!(tenant_containers(&id).await.is_empty());
}

#[tokio::test]
async fn an_unknown_provider_is_an_error_for_every_command_that_needs_one() {
    let env = Env::new("pverr", (27501, 27502), (27511, 27512)).await;
    let id = unique_id("nobody");
    for args in [
        vec!["stop", id.as_str()],
        vec!["destroy", id.as_str(), "--yes"],
        vec!["status", id.as_str()],
        vec!["logs", id.as_str()],
        vec!["gateway", "add", id.as_str(), "gw-1"],
        vec!["gateway", "list", id.as_str()],
    ] {
        let run = env.run(&args).await;
        assert_error(&run, 8, &format!("unknown provider {id}"));
    }
}

/// The subnet of the tenant's network (`<network>-<tenant>`).
async fn tenant_subnet(env: &Env, id: &str) -> String {
    let name = format!("{}-{id}", env.node.network);
    let network = provision_testkit::docker()
        .await
        .inspect_network(&name, None)
        .await
        .unwrap_or_else(|e| panic!("inspect {name}: {e}"));
    let config = network.ipam.and_then(|i| i.config).unwrap_or_default();
    config
        .first()
        .and_then(|c| c.subnet.clone())
        .unwrap_or_else(|| panic!("{name} has no subnet: {config:?}"))
}

/// A network this host routes to, on a veth pair of the test's own
/// (removed on drop): as another engine's bridge or a VPN would be.
struct RoutedNetwork(&'static str);

impl RoutedNetwork {
    fn add(interface: &'static str, address: &str) -> RoutedNetwork {
        let ip = |args: &[&str]| {
            let status = std::process::Command::new("ip").args(args).status();
            assert!(status.is_ok_and(|s| s.success()), "ip {args:?}");
        };
        let _ = std::process::Command::new("ip")
            .args(["link", "del", interface])
            .stderr(std::process::Stdio::null())
            .status();
        let peer = format!("{interface}p");
        ip(&[
            "link", "add", interface, "type", "veth", "peer", "name", &peer,
        ]);
        let routed = RoutedNetwork(interface);
        ip(&["addr", "add", address, "dev", interface]);
        ip(&["link", "set", &peer, "up"]);
        ip(&["link", "set", interface, "up"]);
        routed
    }
}

impl Drop for RoutedNetwork {
    fn drop(&mut self) {
        let _ = std::process::Command::new("ip")
            .args(["link", "del", self.0])
            .status();
    }
}

#[tokio::test]
async fn a_used_up_subnet_pool_is_an_error_and_a_freed_subnet_is_taken_again() {
    let env = Env::new("pverr", (27541, 27543), (27551, 27553)).await;
    // A pool of four /27 subnets, outside the default pool the other
    // tests' tenants take theirs from; the host routes to the first two.
    let text = std::fs::read_to_string(&env.config).unwrap().replacen(
        "[docker]\n",
        "[docker]\ntenant_subnets = \"10.239.250.0/25\"\ntenant_subnet_prefix = 27\n",
        1,
    );
    std::fs::write(&env.config, text).unwrap();
    let _routed = RoutedNetwork::add("pvsubnet", "10.239.250.1/26");
    let ids: Vec<String> = (1..=3).map(|n| unique_id(&format!("subnet{n}"))).collect();
    for (id, subnet) in ids.iter().zip(["10.239.250.64/27", "10.239.250.96/27"]) {
        env.run(&["start", id]).await.ok();
        assert_eq!(tenant_subnet(&env, id).await, subnet, "{id}");
    }

    let run = env.run(&["start", &ids[2]]).await;
    assert_error(
        &run,
        22,
        "no /27 subnet of [docker] tenant_subnets 10.239.250.0/25 is free",
    );
    assert!(tenant_containers(&ids[2]).await.is_empty());

    // Destroying a tenant frees its subnet; the refused start converges.
    env.run(&["destroy", &ids[0], "--yes", "--purge-data"])
        .await
        .ok();
    env.run(&["start", &ids[2]]).await.ok();
    assert_eq!(tenant_subnet(&env, &ids[2]).await, "10.239.250.64/27");
    for id in &ids[1..] {
        env.run(&["destroy", id, "--yes", "--purge-data"])
            .await
            .ok();
    }
}
