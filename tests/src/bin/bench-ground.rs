//! Measures the ground floor: how long a fresh Cassandra container takes to
//! answer CQL, its idle RSS, and the image sizes. Prints a markdown table.
//!
//! `cargo run --release -p provision-testkit --bin bench-ground [-- RUNS]`

use std::collections::HashMap;
use std::time::{Duration, Instant};

use bollard::models::{ContainerCreateBody, HostConfig, PortBinding};
use bollard::query_parameters::CreateContainerOptionsBuilder;
use provision_testkit::{cassandra_image, docker, Scope, CONNECT_ATTEMPT_TIMEOUT};
use tenant_schema::cql::connect_published;

/// The RSS of a process in the host's view, from /proc.
fn rss_mib(pid: i64) -> Option<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let kib: f64 = status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()?;
    Some(kib / 1024.0)
}

async fn start_and_wait(docker: &bollard::Docker, scope: &Scope, run: usize) -> (Duration, i64) {
    let name = scope.name(&format!("cassandra{run}"));
    let config = ContainerCreateBody {
        image: Some(cassandra_image()),
        labels: Some(scope.labels()),
        exposed_ports: Some(vec!["9042/tcp".to_owned()]),
        host_config: Some(HostConfig {
            port_bindings: Some(HashMap::from([(
                "9042/tcp".to_owned(),
                Some(vec![PortBinding {
                    host_ip: Some("127.0.0.1".to_owned()),
                    host_port: Some(String::new()),
                }]),
            )])),
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
        .expect("create the Cassandra container");
    let started = Instant::now();
    docker.start_container(&name, None).await.expect("start it");
    let inspect = docker
        .inspect_container(&name, None)
        .await
        .expect("inspect it");
    let port: u16 = inspect.network_settings.unwrap().ports.unwrap()["9042/tcp"]
        .as_ref()
        .unwrap()[0]
        .host_port
        .as_ref()
        .unwrap()
        .parse()
        .unwrap();
    let pid = inspect.state.unwrap().pid.unwrap();
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    loop {
        let attempt = connect_published(addr, "cassandra", "cassandra");
        if let Ok(Ok(_)) = tokio::time::timeout(CONNECT_ATTEMPT_TIMEOUT, attempt).await {
            return (started.elapsed(), pid);
        }
        assert!(
            started.elapsed() < Duration::from_secs(300),
            "no CQL after 300 s"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::main]
async fn main() {
    let runs: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(3);
    let docker = docker().await;
    let scope = Scope::new("bench_ground");
    let mut times = Vec::new();
    let mut last_pid = 0;
    for run in 0..runs {
        let (elapsed, pid) = start_and_wait(&docker, &scope, run).await;
        eprintln!(
            "run {run}: CQL answered after {:.1} s",
            elapsed.as_secs_f64()
        );
        times.push(elapsed.as_secs_f64());
        last_pid = pid;
        if run + 1 < runs {
            scope.cleanup().await;
        }
    }
    eprintln!("idling 60 s before reading RSS");
    tokio::time::sleep(Duration::from_secs(60)).await;
    let rss = rss_mib(last_pid).unwrap_or(f64::NAN);
    scope.cleanup().await;

    times.sort_by(|a, b| a.total_cmp(b));
    println!("| measure | value |");
    println!("|---|---|");
    println!(
        "| Cassandra container start → CQL login (n={runs}) | min {:.1} s, median {:.1} s, max {:.1} s |",
        times[0],
        times[times.len() / 2],
        times[times.len() - 1]
    );
    println!("| Cassandra idle RSS (60 s after CQL answered) | {rss:.0} MiB |");
    for image in [
        cassandra_image(),
        "provision/ingest:dev".to_owned(),
        "provision/admin:dev".to_owned(),
    ] {
        let size = docker
            .inspect_image(&image)
            .await
            .ok()
            .and_then(|i| i.size)
            .map(|s| format!("{:.1} MB", s as f64 / 1e6))
            .unwrap_or_else(|| "missing".to_owned());
        println!("| image {image} | {size} |");
    }
}
