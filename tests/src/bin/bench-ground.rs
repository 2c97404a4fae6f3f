//! Measures the ground floor: how long a fresh Cassandra container takes to
//! answer CQL, its idle RSS, and the image sizes. Prints a markdown table.
//!
//! `cargo run --release -p provision-testkit --bin bench-ground [-- RUNS]`

use std::time::{Duration, Instant};

use provision_testkit::containers::{
    container_state, process_rss_kib, published_port, TestContainer,
};
use provision_testkit::{cassandra_image, docker, wait_for_cql, Scope};

async fn start_and_wait(docker: &bollard::Docker, scope: &Scope, run: usize) -> (Duration, i64) {
    let name = scope.name(&format!("cassandra{run}"));
    let container =
        TestContainer::new(&name, &cassandra_image(), scope.labels()).publish("9042/tcp", None);
    container
        .create(docker)
        .await
        .expect("create the Cassandra container");
    let started = Instant::now();
    docker.start_container(&name, None).await.expect("start it");
    let port = published_port(docker, &name, "9042/tcp")
        .await
        .expect("the CQL port is published");
    let pid = container_state(docker, &name)
        .await
        .expect("inspect it")
        .pid
        .expect("a running container has a pid");
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    wait_for_cql(addr, "cassandra", "cassandra", Duration::from_secs(300)).await;
    (started.elapsed(), pid)
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
    let rss = process_rss_kib(last_pid).map_or(f64::NAN, |kib| kib as f64 / 1024.0);
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
