//! The notifier's cost: one tenant, 1,000 gateways, 3 rules (silent 10m;
//! power below 5 for 15m between 08:00-18:00; power above 1000 for 5m),
//! the real image as a container with its default 30 s check, against the
//! test Cassandra and an aiosmtpd relay on the Docker bridge.
//!
//! Two phases side by side in one run: the gateways send (a `latest` write
//! each, as ingest makes it) every 10 s, then every 1 s. For each phase it
//! prints the notifier's CPU and RSS, its Cassandra requests per minute
//! (its own `notifier_cassandra_requests_total`), and the time from a
//! condition becoming true (its duration elapsed) to the mail at the relay.
//!
//! `cargo run --release -p provision-testkit --bin bench-notifier [-- PHASE_SECS]`

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use futures::StreamExt;
use notifier::rules::{parse_recipients, AlertRule, LocalWindow, RuleId, RuleKind};
use notifier::store::AlertStore;
use provision_testkit::containers::{
    container_cpu_time, container_rss_kib, free_port, notifier_image, wait_healthy, TestContainer,
};
use provision_testkit::smtp::{bridge_gateway, SmtpSink};
use provision_testkit::{cassandra, docker, Scope, TestTenant};

const GATEWAYS: usize = 1000;
/// Gateways that go silent in each phase, and that go above 1000 W.
const SILENT_PER_PHASE: usize = 5;
const ABOVE: usize = 5;

fn gateway(i: usize) -> String {
    format!("gw-{i:04}")
}

struct Phase {
    name: &'static str,
    every: Duration,
}

#[derive(Default)]
struct PhaseResult {
    writes: u64,
    secs: f64,
    requests: u64,
    cpu: Duration,
    rss_max_kib: u64,
}

async fn metric(port: u16, name: &str) -> u64 {
    let body = tokio::task::spawn_blocking(move || {
        tenant_common::http_get(&format!("127.0.0.1:{port}"), "/metrics")
    })
    .await
    .unwrap()
    .unwrap_or_else(|e| panic!("/metrics: {e}"));
    body.lines()
        .find_map(|l| l.strip_prefix(&format!("{name} ")))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("{name} not in /metrics"))
}

#[tokio::main]
async fn main() {
    let phase_secs: u64 = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(180);
    let node = cassandra().await;
    let docker = docker().await;
    let scope = Scope::new("bench_notifier");
    let tenant = TestTenant::create(node, "bench_notif").await;
    let session = Arc::new(tenant.session(node).await);
    let ks = tenant.keyspace.clone();
    let sink = SmtpSink::start_on(bridge_gateway(&docker).await);

    // 1,000 commissioned gateways, each heard now at 500 W.
    eprintln!("commissioning {GATEWAYS} gateways");
    let register = session
        .prepare(format!(
            "INSERT INTO {ks}.gateways (gateway_id, token_hash, display_name, created_at) VALUES (?, 'x', ?, ?)"
        ))
        .await
        .unwrap();
    let insert = session
        .prepare(format!(
            "UPDATE {ks}.latest USING TIMESTAMP ? SET ts = ?, value = ?, unit = 'W', last_seen = ? WHERE gateway_id = ? AND sensor = 'inv-1' AND name = 'power'"
        ))
        .await
        .unwrap();
    // One frame of gateway `i`: its power and `last_seen`, as ingest
    // writes `latest` (written now, so a back-dated `last_seen` lands).
    let write = {
        let session = session.clone();
        let insert = insert.clone();
        move |i: usize, watts: f64, at: DateTime<Utc>| {
            let session = session.clone();
            let insert = insert.clone();
            async move {
                let _ = session
                    .execute_unpaged(
                        &insert,
                        (Utc::now().timestamp_micros(), at, watts, at, gateway(i)),
                    )
                    .await;
            }
        }
    };
    futures::stream::iter(0..GATEWAYS)
        .map(|i| {
            let session = session.clone();
            let register = register.clone();
            let write = write.clone();
            async move {
                session
                    .execute_unpaged(&register, (gateway(i), format!("Site {i}"), Utc::now()))
                    .await
                    .unwrap();
                write(i, 500.0, Utc::now()).await;
            }
        })
        .buffer_unordered(64)
        .collect::<Vec<_>>()
        .await;

    // Local time inside 08:00-18:00 whenever the bench runs: the tenant's
    // timezone puts it at 12:00 local now.
    let now = Utc::now();
    let offset_h = (12 - now.format("%H").to_string().parse::<i32>().unwrap()).rem_euclid(24);
    let offset_h = if offset_h > 12 {
        offset_h - 24
    } else {
        offset_h
    };
    let tz = format!(
        "{}{:02}:00",
        if offset_h < 0 { '-' } else { '+' },
        offset_h.abs()
    );
    session
        .query_unpaged(
            format!("INSERT INTO {ks}.settings (name, value) VALUES ('timezone', ?)"),
            (tz.clone(),),
        )
        .await
        .unwrap();
    let store = AlertStore::new(&session, &ks);
    let to = parse_recipients("ops@bench.test").unwrap();
    for kind in [
        RuleKind::Silent {
            for_: Duration::from_secs(600),
        },
        RuleKind::Below {
            value: "power".into(),
            threshold: 5.0,
            for_: Duration::from_secs(900),
            between: Some(LocalWindow::parse("08:00-18:00").unwrap()),
        },
        RuleKind::Above {
            value: "power".into(),
            threshold: 1000.0,
            for_: Duration::from_secs(300),
            between: None,
        },
    ] {
        let rule = AlertRule::new(
            RuleId::random(&mut rand::thread_rng()),
            kind,
            None,
            to.clone(),
            Utc::now(),
        )
        .unwrap();
        store.put_rule(&rule).await.unwrap();
    }

    let http_port = free_port();
    let mut env = tenant.app_env(node);
    env.extend([
        "NOTIFIER_SMTP_HOST=host.docker.internal".to_owned(),
        format!("NOTIFIER_SMTP_PORT={}", sink.port()),
        "NOTIFIER_SMTP_TLS=none".to_owned(),
        "NOTIFIER_MAIL_FROM=alerts@bench.test".to_owned(),
        "LOG_FORMAT=json".to_owned(),
    ]);
    let container = TestContainer::scoped(&scope, "notifier", &notifier_image())
        .env(env)
        .on_test_network()
        .extra_host("host.docker.internal:host-gateway")
        .publish("9100/tcp", Some(http_port))
        .hardened()
        .memory(64 * 1024 * 1024)
        .no_swap();
    let name = container.start(&docker).await.unwrap();
    wait_healthy(&docker, &name, Duration::from_secs(120))
        .await
        .unwrap();
    eprintln!("notifier healthy (timezone {tz}); phases of {phase_secs} s");

    // The above-1000 W gateways: from the start, their condition holds;
    // it has held for its 5 min at `above_true + 5m`.
    let above_true = Utc::now();
    let mut expected: Vec<(String, DateTime<Utc>, &'static str)> = Vec::new();
    for i in 0..ABOVE {
        write(GATEWAYS - 1 - i, 1500.0, above_true).await;
        expected.push((
            gateway(GATEWAYS - 1 - i),
            above_true + chrono::Duration::minutes(5),
            "above 1000 for 5m",
        ));
    }

    let phases = [
        Phase {
            name: "every 10 s",
            every: Duration::from_secs(10),
        },
        Phase {
            name: "every 1 s",
            every: Duration::from_secs(1),
        },
    ];
    let silent_gw: Arc<std::sync::Mutex<std::collections::BTreeSet<usize>>> = Default::default();
    let mut results = Vec::new();
    for (p, phase) in phases.iter().enumerate() {
        // Gateways that go silent now; last heard 9.5 min ago, so the
        // 10-minute condition becomes true 30 s into the phase.
        let silent_true = Utc::now() + chrono::Duration::seconds(30);
        for k in 0..SILENT_PER_PHASE {
            let i = p * SILENT_PER_PHASE + k;
            silent_gw.lock().unwrap().insert(i);
            write(i, 500.0, silent_true - chrono::Duration::minutes(10)).await;
            expected.push((gateway(i), silent_true, "silent 10m"));
        }
        let stop = Arc::new(AtomicBool::new(false));
        let writes = Arc::new(AtomicU64::new(0));
        let writer = {
            let stop = stop.clone();
            let writes = writes.clone();
            let write = write.clone();
            let silent = silent_gw.clone();
            let every = phase.every;
            tokio::spawn(async move {
                // Each second, the gateways whose turn it is (i mod period).
                let period = every.as_secs().max(1) as usize;
                let mut tick = tokio::time::interval(Duration::from_secs(1));
                let mut second = 0usize;
                while !stop.load(Ordering::Relaxed) {
                    tick.tick().await;
                    let now = Utc::now();
                    let due: Vec<usize> = (0..GATEWAYS)
                        .filter(|i| i % period == second % period)
                        .filter(|i| !silent.lock().unwrap().contains(i))
                        .collect();
                    let n = due.len() as u64;
                    futures::stream::iter(due)
                        .map(|i| {
                            let watts = if i >= GATEWAYS - ABOVE { 1500.0 } else { 500.0 };
                            write(i, watts, now)
                        })
                        .buffer_unordered(128)
                        .collect::<Vec<_>>()
                        .await;
                    writes.fetch_add(n, Ordering::Relaxed);
                    second += 1;
                }
            })
        };
        let requests_before = metric(http_port, "notifier_cassandra_requests_total").await;
        let cpu_before = container_cpu_time(&docker, &name).await.unwrap();
        let started = Instant::now();
        let mut rss_max = 0;
        while started.elapsed() < Duration::from_secs(phase_secs) {
            tokio::time::sleep(Duration::from_secs(5)).await;
            rss_max = rss_max.max(container_rss_kib(&docker, &name).await.unwrap_or(0));
        }
        let secs = started.elapsed().as_secs_f64();
        let requests =
            metric(http_port, "notifier_cassandra_requests_total").await - requests_before;
        let cpu = container_cpu_time(&docker, &name).await.unwrap() - cpu_before;
        stop.store(true, Ordering::Relaxed);
        let _ = writer.await;
        let result = PhaseResult {
            writes: writes.load(Ordering::Relaxed),
            secs,
            requests,
            cpu,
            rss_max_kib: rss_max,
        };
        eprintln!(
            "{}: {} frames written ({:.0}/s), {} notifier requests to Cassandra ({:.1}/min), CPU {:.2} s ({:.2} %), RSS max {} KiB",
            phase.name,
            result.writes,
            result.writes as f64 / secs,
            requests,
            requests as f64 / secs * 60.0,
            cpu.as_secs_f64(),
            cpu.as_secs_f64() / secs * 100.0,
            rss_max
        );
        results.push(result);
    }

    // The mails: one per silent gateway and per above gateway.
    let mails = sink
        .wait_for(expected.len(), Duration::from_secs(120))
        .await;
    let mut latencies: Vec<(&'static str, String, f64)> = Vec::new();
    for (gw, condition_true, what) in &expected {
        let mail = mails
            .iter()
            .find(|m| m.subject.ends_with(&format!("on {gw}")) && m.subject.contains("FIRING"))
            .unwrap_or_else(|| panic!("no mail for {gw}"));
        let latency = (mail.received_at - *condition_true).num_milliseconds() as f64 / 1000.0;
        latencies.push((what, gw.clone(), latency));
    }
    let unexpected = mails.len() - expected.len();

    println!("| | gateways send every 10 s | every 1 s |");
    println!("|---|---|---|");
    println!(
        "| frames written to `latest` (per s) | {:.0} | {:.0} |",
        results[0].writes as f64 / results[0].secs,
        results[1].writes as f64 / results[1].secs
    );
    println!(
        "| notifier's Cassandra requests per minute | {:.1} | {:.1} |",
        results[0].requests as f64 / results[0].secs * 60.0,
        results[1].requests as f64 / results[1].secs * 60.0
    );
    println!(
        "| notifier CPU (% of one core) | {:.2} | {:.2} |",
        results[0].cpu.as_secs_f64() / results[0].secs * 100.0,
        results[1].cpu.as_secs_f64() / results[1].secs * 100.0
    );
    println!(
        "| notifier RSS, max (MiB) | {:.1} | {:.1} |",
        results[0].rss_max_kib as f64 / 1024.0,
        results[1].rss_max_kib as f64 / 1024.0
    );
    println!();
    println!("| condition | mails | condition true → mail at the relay, min / median / max (s) |");
    println!("|---|---|---|");
    for what in ["silent 10m", "above 1000 for 5m"] {
        let mut l: Vec<f64> = latencies
            .iter()
            .filter(|(w, _, _)| *w == what)
            .map(|(_, _, s)| *s)
            .collect();
        l.sort_by(|a, b| a.partial_cmp(b).unwrap());
        println!(
            "| {what} | {} | {:.1} / {:.1} / {:.1} |",
            l.len(),
            l[0],
            l[l.len() / 2],
            l[l.len() - 1]
        );
    }
    println!();
    println!("other mails: {unexpected}");
    scope.cleanup().await;
    tenant.drop(node).await;
}
