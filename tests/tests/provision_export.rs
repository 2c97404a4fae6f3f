//! `provision export` against the real engine and the harness's Cassandra:
//! the compose file of a running tenant is accepted by `docker-compose
//! config`, names the images, ports and containers `docker inspect` shows;
//! and once provision's containers are stopped and removed, `docker-compose
//! up` runs the tenant from that file alone, as provision ran it (the same
//! image, environment, ports, mounts, labels, limits, hardening, health
//! check, restart policy and network), healthy, with the gateway and the
//! panel working on the tenant's leased ports.

mod provision_support;

use std::path::Path;
use std::time::Duration;

use bollard::query_parameters::RemoveContainerOptions;
use bollard::Docker;
use provision_support::{tenant_containers, Env, Gateway};
use provision_testkit::containers::wait_healthy;
use provision_testkit::http::admin_login;
use provision_testkit::{docker, unique_id};
use serde_json::{json, Value};

const ROLES: [&str; 3] = ["ingest", "admin", "notifier"];

/// Runs `docker-compose -f <file> -p <project> <args>`; panics unless it
/// succeeds, and returns its stdout.
async fn compose(file: &Path, project: &str, args: &[&str]) -> String {
    let out = tokio::process::Command::new("docker-compose")
        .arg("-f")
        .arg(file)
        .args(["-p", project])
        .args(args)
        .stdin(std::process::Stdio::null())
        .output()
        .await
        .expect("docker-compose runs (scripts/setup installs it)");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "docker-compose {args:?} failed:\nstdout: {stdout}\nstderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// What makes a container the one provision runs, from `docker inspect`:
/// everything the compose file sets, as the engine reports it. Compose's
/// own labels (`com.docker.compose.*`) are left out.
async fn fingerprint(docker: &Docker, name: &str) -> Value {
    let c = docker
        .inspect_container(name, None)
        .await
        .unwrap_or_else(|e| panic!("inspect {name}: {e}"));
    let config = c.config.unwrap_or_default();
    let host = c.host_config.unwrap_or_default();
    let mut env = config.env.unwrap_or_default();
    env.sort();
    let labels: serde_json::Map<String, Value> = config
        .labels
        .unwrap_or_default()
        .into_iter()
        .filter(|(k, _)| !k.starts_with("com.docker.compose."))
        .map(|(k, v)| (k, Value::String(v)))
        .collect();
    // A set the engine lists in no fixed order.
    let mut exposed = config.exposed_ports.unwrap_or_default();
    exposed.sort();
    let mut networks: Vec<String> = c
        .network_settings
        .and_then(|n| n.networks)
        .unwrap_or_default()
        .into_keys()
        .collect();
    networks.sort();
    json!({
        "name": c.name,
        "image": c.image,
        "env": env,
        "user": config.user,
        "labels": labels,
        "healthcheck": config.healthcheck,
        "exposed_ports": exposed,
        "port_bindings": host.port_bindings,
        "binds": host.binds,
        "extra_hosts": host.extra_hosts,
        "restart_policy": host.restart_policy,
        "memory": host.memory,
        "memory_swap": host.memory_swap,
        "pids_limit": host.pids_limit,
        "ulimits": host.ulimits,
        "nano_cpus": host.nano_cpus,
        "readonly_rootfs": host.readonly_rootfs,
        "cap_drop": host.cap_drop,
        "security_opt": host.security_opt,
        "log_config": host.log_config,
        "networks": networks,
    })
}

/// The `host_ip:host_port:container_port/proto` bindings `docker inspect`
/// shows for `name`, as compose writes them.
async fn published(docker: &Docker, name: &str) -> Vec<String> {
    let host = docker
        .inspect_container(name, None)
        .await
        .unwrap()
        .host_config
        .unwrap_or_default();
    let mut ports: Vec<String> = host
        .port_bindings
        .unwrap_or_default()
        .into_iter()
        .flat_map(|(container, bindings)| {
            bindings.unwrap_or_default().into_iter().map(move |b| {
                let port = b.host_port.unwrap_or_default();
                match b.host_ip.unwrap_or_default() {
                    ip if ip.is_empty() => format!("{port}:{container}"),
                    ip => format!("{ip}:{port}:{container}"),
                }
            })
        })
        .collect();
    ports.sort();
    ports
}

async fn image_id(docker: &Docker, image: &str) -> String {
    docker
        .inspect_image(image)
        .await
        .unwrap_or_else(|e| panic!("inspect image {image}: {e}"))
        .id
        .expect("an image id")
}

fn str_list(v: &Value) -> Vec<String> {
    v.as_array()
        .unwrap_or_else(|| panic!("not a list: {v}"))
        .iter()
        .map(|s| s.as_str().expect("a string").to_owned())
        .collect()
}

#[tokio::test]
async fn an_exported_tenant_runs_under_docker_compose_as_it_ran_under_provision() {
    let env = Env::new("pvexport", (28801, 28809), (28901, 28909)).await;
    let docker = docker().await;
    let id = unique_id("exp");
    let project = format!("{}-compose", env.prefix);

    // Label values a YAML 1.1 reader (docker-compose's) takes for a
    // boolean, a base-60 number, a date or a value tag unless quoted.
    env.edit_config(
        r#""io.provision.test" = "1" }"#,
        r#""io.provision.test" = "1", "x.on" = "on", "x.time" = "1:30", "x.eq" = "=", "x.date" = "2001-01-01", "off" = "yes" }"#,
    );

    let unknown = env.run(&["export", "nobody_here"]).await;
    assert_eq!(unknown.code, 8, "{}", unknown.stderr);

    let started = env.run(&["--json", "start", &id]).await.ok();
    let gateway_port = started.port("gateway_port");
    let admin_port = started.port("admin_port");
    let password = started.field("admin_password").expect("a first password");
    let token = env
        .run(&["--json", "gateway", "add", &id, "gw-exp-1"])
        .await
        .ok()
        .field("token")
        .expect("a token");

    // The YAML file and the JSON document are one document.
    let file = env.dir.join("compose.yml");
    let wrote = env
        .run(&["export", &id, "-o", file.to_str().unwrap()])
        .await
        .ok();
    assert!(wrote.stdout.contains("wrote"), "{}", wrote.stdout);
    let yaml_text = std::fs::read_to_string(&file).unwrap();
    let yaml: Value = serde_norway::from_str(&yaml_text).expect("the export is YAML");
    let doc: Value = serde_json::from_str(&env.run(&["--json", "export", &id]).await.ok().stdout)
        .expect("--json prints JSON");
    assert_eq!(yaml, doc, "YAML and JSON differ");
    let stdout_yaml = env.run(&["export", &id]).await.ok().stdout;
    assert_eq!(stdout_yaml, yaml_text, "stdout and -o differ");

    // docker-compose 1.29 accepts it, with the three services.
    compose(&file, &project, &["config", "-q"]).await;
    let mut services: Vec<String> = compose(&file, &project, &["config", "--services"])
        .await
        .lines()
        .map(str::to_owned)
        .collect();
    services.sort();
    assert_eq!(services, ["admin", "ingest", "notifier"]);

    // The services are the running containers: names, images, ports.
    let network = format!("{}-{id}", env.node.network);
    assert_eq!(doc["networks"], json!({ &network: { "external": true } }));
    let mut by_provision = Vec::new();
    for (role, port, container_port) in
        [("ingest", gateway_port, 6000), ("admin", admin_port, 8080)]
    {
        let name = env.container(&id, role);
        let service = &doc["services"][role];
        assert_eq!(service["container_name"], json!(name), "{role}");
        let running = docker.inspect_container(&name, None).await.unwrap();
        let running_image = running.image.expect("an image");
        let image = service["image"].as_str().expect("an image");
        assert_eq!(image_id(&docker, image).await, running_image, "{role}");
        assert_eq!(doc["x-provision"]["image_ids"][role], json!(running_image));
        let ports = str_list(&service["ports"]);
        assert_eq!(ports, published(&docker, &name).await, "{role}");
        // every address: published with no host IP, as compose does
        assert_eq!(ports, [format!("{port}:{container_port}/tcp")]);
        assert_eq!(
            str_list(&service["networks"]),
            std::slice::from_ref(&network)
        );
        by_provision.push(fingerprint(&docker, &name).await);
    }
    // The notifier publishes nothing and reaches the Docker host by name.
    let name = env.container(&id, "notifier");
    let service = &doc["services"]["notifier"];
    assert_eq!(service["container_name"], json!(name));
    assert!(service.get("ports").is_none(), "{service}");
    assert_eq!(
        str_list(&service["extra_hosts"]),
        ["host.docker.internal:host-gateway"]
    );
    by_provision.push(fingerprint(&docker, &name).await);

    // Stopped, the tenant exports the same (its ports stay leased).
    env.run(&["stop", &id]).await.ok();
    let stopped: Value =
        serde_json::from_str(&env.run(&["--json", "export", &id]).await.ok().stdout).unwrap();
    assert_eq!(stopped, doc, "stop changed the export");

    // The hand-over: provision's stopped containers hold the names the file
    // reuses, so they go first; then compose runs the tenant.
    for role in ROLES {
        docker
            .remove_container(
                &env.container(&id, role),
                Some(RemoveContainerOptions {
                    force: true,
                    ..Default::default()
                }),
            )
            .await
            .unwrap();
    }
    compose(&file, &project, &["up", "-d"]).await;
    for (role, expected) in ROLES.iter().zip(&by_provision) {
        let name = env.container(&id, role);
        wait_healthy(&docker, &name, Duration::from_secs(120))
            .await
            .unwrap_or_else(|e| panic!("under compose: {e}"));
        let labels = docker
            .inspect_container(&name, None)
            .await
            .unwrap()
            .config
            .and_then(|c| c.labels)
            .unwrap_or_default();
        assert_eq!(
            labels.get("com.docker.compose.project"),
            Some(&project),
            "{name} is not compose's"
        );
        assert_eq!(
            &fingerprint(&docker, &name).await,
            expected,
            "{role} under compose differs from under provision"
        );
    }

    // It works: the gateway streams through ingest's port (its token checked
    // in the tenant's keyspace with the mounted password), the first admin
    // logs in to the panel (its session secret mounted too).
    let day = (chrono::Utc::now().date_naive() - chrono::TimeDelta::days(1)).to_string();
    let mut gw = Gateway::connect(gateway_port, "gw-exp-1", &token).await;
    gw.reading(
        1,
        &format!("{day}T06:00:01Z"),
        "inverter-1",
        "power",
        1000.0,
    )
    .await;
    drop(gw);
    admin_login(&format!("127.0.0.1:{admin_port}"), "admin", &password).await;

    compose(&file, &project, &["down"]).await;
    assert!(
        tenant_containers(&id).await.is_empty(),
        "compose down left containers"
    );
    env.run(&["destroy", &id, "--yes", "--purge-data"])
        .await
        .ok();
    let gone = env.run(&["export", &id]).await;
    assert_eq!(gone.code, 8, "{}", gone.stderr);
}
