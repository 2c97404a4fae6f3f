//! Benchmark of the admin panel (run by `scripts/bench-dashboard`; ignored
//! in the normal test run).
//!
//! Loads 100 gateways with one day of 10-second power readings each (8640
//! readings, 864 000 rows) into a fresh tenant keyspace, then times, side
//! by side in one run:
//! - `GET /` (the dashboard) against its floor: the same three CQL reads
//!   through the same prepared statements, without rendering;
//! - `GET /gateways/{id}?day=` (a day's chart) against its floor: reading
//!   the same partition, without charting or rendering;
//!
//! and measures the resident memory of the real admin container, idle after
//! start and after serving the pages.
//!
//! Knobs (env): BENCH_GATEWAYS (100), BENCH_READINGS (8640),
//! BENCH_DASHBOARD_RUNS (500), BENCH_GATEWAY_RUNS (100).

use std::time::{Duration, Instant};

use admin::{app, AppState, LoginLimits, PanelOptions, Store};
use axum::body::Body;
use axum::http::{header, Request, StatusCode};
use axum::Router;
use chrono::{DateTime, NaiveDate, Utc};
use futures::StreamExt;
use provision_testkit::containers::{
    admin_image, container_rss_kib, published_port, TestContainer,
};
use provision_testkit::http::{get_status, wait_for_200};
use provision_testkit::{cassandra, docker, Scope, TestTenant};
use scylla::statement::batch::{Batch, BatchType};
use tenant_schema::model::hash_password;
use tower::ServiceExt;

fn knob(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

struct Stats {
    p50: Duration,
    p99: Duration,
    max: Duration,
}

fn stats(mut samples: Vec<Duration>) -> Stats {
    samples.sort();
    let pick =
        |q: f64| samples[((samples.len() as f64 * q).ceil() as usize).clamp(1, samples.len()) - 1];
    Stats {
        p50: pick(0.50),
        p99: pick(0.99),
        max: *samples.last().unwrap(),
    }
}

fn ms(d: Duration) -> String {
    format!("{:.2}", d.as_secs_f64() * 1000.0)
}

async fn get(app: &Router, path: &str, cookie: &str) -> (StatusCode, usize) {
    let req = Request::get(path)
        .header(header::COOKIE, cookie)
        .body(Body::empty())
        .unwrap();
    let res = app.clone().oneshot(req).await.unwrap();
    let status = res.status();
    let bytes = axum::body::to_bytes(res.into_body(), 64 << 20)
        .await
        .unwrap();
    (status, bytes.len())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "benchmark: run scripts/bench-dashboard"]
async fn bench_dashboard() {
    let gateways = knob("BENCH_GATEWAYS", 100);
    let readings = knob("BENCH_READINGS", 8640);
    let dashboard_runs = knob("BENCH_DASHBOARD_RUNS", 500);
    let gateway_runs = knob("BENCH_GATEWAY_RUNS", 100);

    let node = cassandra().await;
    let tenant = TestTenant::create(node, "admin_bench").await;
    let db = tenant.session(node).await;
    let ks = &tenant.keyspace;

    // ---- load -------------------------------------------------------------
    let day: NaiveDate = (Utc::now() - chrono::Duration::days(1)).date_naive();
    let day_start: DateTime<Utc> = day.and_hms_opt(0, 0, 0).unwrap().and_utc();
    let insert = db
        .prepare(format!(
            "INSERT INTO {ks}.readings (gateway_id, day, ts, sensor, name, value, unit, seq) VALUES (?, ?, ?, 'inverter-1', 'power', ?, 'W', ?)"
        ))
        .await
        .unwrap();
    let started = Instant::now();
    let ids: Vec<String> = (0..gateways).map(|i| format!("gw-{i:03}")).collect();
    let mut jobs = Vec::new();
    for id in &ids {
        for chunk_start in (0..readings).step_by(100) {
            jobs.push((id.clone(), chunk_start, (chunk_start + 100).min(readings)));
        }
    }
    let db_ref = &db;
    let insert_ref = &insert;
    let results: Vec<_> = futures::stream::iter(jobs)
        .map(|(id, from, to)| async move {
            // One unlogged batch per 100 rows of a single partition.
            let mut batch = Batch::new(BatchType::Unlogged);
            let mut values = Vec::with_capacity(to - from);
            for i in from..to {
                batch.append_statement(insert_ref.clone());
                let ts = day_start + chrono::Duration::seconds(i as i64 * 10);
                let watts = 2000.0
                    * ((i as f64 / readings as f64) * std::f64::consts::PI)
                        .sin()
                        .max(0.0);
                values.push((id.as_str(), day, ts, watts, i as i64));
            }
            db_ref.batch(&batch, values).await
        })
        .buffer_unordered(32)
        .collect()
        .await;
    for r in results {
        r.expect("batch insert");
    }
    let seen = Utc::now();
    for id in &ids {
        db.query_unpaged(
            format!("INSERT INTO {ks}.gateways (gateway_id, token_hash, display_name, created_at) VALUES (?, 'x', ?, ?)"),
            (id, format!("Gateway {id}"), seen),
        )
        .await
        .unwrap();
        for (name, value, unit) in [
            ("power", 1234.5, "W"),
            ("voltage", 230.1, "V"),
            ("energy", 98765.4, "Wh"),
        ] {
            db.query_unpaged(
                format!(
                    "INSERT INTO {ks}.latest (gateway_id, sensor, name, ts, value, unit, last_seen) VALUES (?, 'inverter-1', ?, ?, ?, ?, ?)"
                ),
                (id, name, seen, value, unit, seen),
            )
            .await
            .unwrap();
        }
    }
    db.query_unpaged(
        format!("INSERT INTO {ks}.admin_users (username, password_hash) VALUES ('bench', ?)"),
        (hash_password("bench-password").unwrap(),),
    )
    .await
    .unwrap();
    let load_secs = started.elapsed().as_secs_f64();
    let rows = gateways * readings;
    println!(
        "loaded {gateways} gateways x {readings} readings = {rows} rows in {load_secs:.1} s ({:.0} rows/s)",
        rows as f64 / load_secs
    );

    // ---- the panel, in process --------------------------------------------
    let options = PanelOptions {
        tenant_id: tenant.id.to_string(),
        keyspace: tenant.keyspace.clone(),
        session_secret: b"bench-secret-bench-secret-bench!".to_vec(),
        login_limits: LoginLimits::default(),
        behind_tls: false,
    };
    let state = AppState::new(tenant.session(node).await, options.clone())
        .await
        .unwrap();
    let keys = state.keys().clone();
    let router = app(state);
    let cookie = format!(
        "{}={}",
        keys.session_cookie_name(),
        keys.sign_session("bench", Utc::now() + chrono::Duration::hours(1))
    );
    let floor = Store::prepare(tenant.session(node).await, ks)
        .await
        .unwrap();

    let (status, bytes) = get(&router, "/", &cookie).await;
    assert_eq!(status, StatusCode::OK);
    println!("dashboard page: {bytes} bytes");
    let gw_path = format!("/gateways/{}?day={day}", ids[0]);
    let (status, gw_bytes) = get(&router, &gw_path, &cookie).await;
    assert_eq!(status, StatusCode::OK);
    println!("gateway page: {gw_bytes} bytes");

    // warm-up
    for _ in 0..20 {
        get(&router, "/", &cookie).await;
        let _ = tokio::join!(floor.settings(), floor.gateways(), floor.latest_all());
    }

    // Interleave the page and its floor so both see the same conditions.
    let mut page = Vec::with_capacity(dashboard_runs);
    let mut base = Vec::with_capacity(dashboard_runs);
    for _ in 0..dashboard_runs {
        let t = Instant::now();
        let (status, _) = get(&router, "/", &cookie).await;
        page.push(t.elapsed());
        assert_eq!(status, StatusCode::OK);
        let t = Instant::now();
        let (s, g, l) = tokio::join!(floor.settings(), floor.gateways(), floor.latest_all());
        base.push(t.elapsed());
        assert_eq!(g.unwrap().len(), gateways);
        assert_eq!(l.unwrap().len(), gateways);
        s.unwrap();
    }
    let (dash, dash_floor) = (stats(page), stats(base));

    let (from, to) = (day_start, day_start + chrono::Duration::days(1));
    let mut page = Vec::with_capacity(gateway_runs);
    let mut base = Vec::with_capacity(gateway_runs);
    for i in 0..gateway_runs {
        let id = &ids[i % ids.len()];
        let t = Instant::now();
        let (status, _) = get(&router, &format!("/gateways/{id}?day={day}"), &cookie).await;
        page.push(t.elapsed());
        assert_eq!(status, StatusCode::OK);
        let t = Instant::now();
        let mut n = 0usize;
        let (s, g, l) = tokio::join!(floor.settings(), floor.gateway(id), floor.latest_one(id));
        floor
            .for_each_sample(id, day, from, to, None, |_| n += 1)
            .await
            .unwrap();
        base.push(t.elapsed());
        s.unwrap();
        g.unwrap();
        l.unwrap();
        assert_eq!(n, readings);
    }
    let (gw, gw_floor) = (stats(page), stats(base));

    println!();
    println!("{:<34} {:>9} {:>9} {:>9}", "ms", "p50", "p99", "max");
    for (label, s) in [
        (format!("GET / ({gateways} gateways)"), &dash),
        ("  floor: same 3 CQL reads".to_owned(), &dash_floor),
        (format!("GET /gateways/ID ({readings} values)"), &gw),
        ("  floor: same CQL reads".to_owned(), &gw_floor),
    ] {
        println!(
            "{label:<34} {:>9} {:>9} {:>9}",
            ms(s.p50),
            ms(s.p99),
            ms(s.max)
        );
    }
    let ratio = |a: &Stats, b: &Stats| {
        (
            a.p50.as_secs_f64() / b.p50.as_secs_f64(),
            a.p99.as_secs_f64() / b.p99.as_secs_f64(),
        )
    };
    let (r50, r99) = ratio(&dash, &dash_floor);
    println!("dashboard / floor: p50 x{r50:.2}, p99 x{r99:.2} ({dashboard_runs} runs)");
    let (g50, g99) = ratio(&gw, &gw_floor);
    println!("gateway page / floor: p50 x{g50:.2}, p99 x{g99:.2} ({gateway_runs} runs)");
    println!(
        "target: dashboard p99 <= 50 ms: {} ({} ms)",
        if dash.p99 <= Duration::from_millis(50) {
            "met"
        } else {
            "NOT met"
        },
        ms(dash.p99)
    );

    // ---- idle RSS of the real container ------------------------------------
    let rss = container_rss(
        node,
        &tenant,
        &cookie_value_for_container(&keys_for_container(&tenant)),
    )
    .await;
    match rss {
        Ok((idle, busy)) => {
            println!();
            println!("admin container RSS: idle after start {:.1} MiB, idle after serving pages {:.1} MiB", idle, busy);
            println!(
                "target: idle RSS <= 20 MB: {}",
                if idle * 1.048_576 <= 20.0 {
                    "met"
                } else {
                    "NOT met"
                }
            );
        }
        Err(e) => println!("admin container RSS: not measured: {e}"),
    }
    tenant.drop(node).await;
}

/// The container gets its own secret; the bench signs its cookie with it.
fn keys_for_container(tenant: &TestTenant) -> admin::session::Keys {
    admin::session::Keys::new(CONTAINER_SECRET.to_vec(), &tenant.id.to_string())
}

const CONTAINER_SECRET: &[u8] = &[0xab; 32];

fn cookie_value_for_container(keys: &admin::session::Keys) -> String {
    format!(
        "{}={}",
        keys.session_cookie_name(),
        keys.sign_session("bench", Utc::now() + chrono::Duration::hours(1))
    )
}

/// Starts the admin image for `tenant`, measures its RSS idle after start,
/// then after 50 dashboard and 10 gateway pages over HTTP and 5 s of rest.
async fn container_rss(
    node: &provision_testkit::CassandraNode,
    tenant: &TestTenant,
    cookie: &str,
) -> Result<(f64, f64), String> {
    let docker = docker().await;
    let scope = Scope::new("admin_bench");
    let mut env = tenant.app_env(node);
    env.push(format!("ADMIN_SESSION_SECRET={}", hex_of(CONTAINER_SECRET)));
    let name = TestContainer::scoped(&scope, "admin", &admin_image())
        .env(env)
        .publish("8080/tcp", None)
        .on_network(&node.network)
        .hardened()
        .start(&docker)
        .await
        .map_err(|e| e.to_string())?;
    let port = published_port(&docker, &name, "8080/tcp")
        .await
        .ok_or("no published port")?;
    let addr = format!("127.0.0.1:{port}");
    if wait_for_200(&addr, "/healthz", Duration::from_secs(60))
        .await
        .is_err()
    {
        scope.cleanup().await;
        return Err("the admin container never became healthy".into());
    }
    let rss_mib = || async {
        container_rss_kib(&docker, &name)
            .await
            .map(|kib| kib as f64 / 1024.0)
            .ok_or("no VmRSS of the admin process")
    };
    tokio::time::sleep(Duration::from_secs(5)).await;
    let idle = rss_mib().await?;
    let cookies = [cookie.to_owned()];
    for _ in 0..50 {
        assert_eq!(get_status(&addr, "/", &cookies).await, Some(200));
    }
    let day = (Utc::now() - chrono::Duration::days(1)).date_naive();
    for i in 0..10 {
        assert_eq!(
            get_status(&addr, &format!("/gateways/gw-{i:03}?day={day}"), &cookies).await,
            Some(200)
        );
    }
    tokio::time::sleep(Duration::from_secs(5)).await;
    let busy = rss_mib().await?;
    scope.cleanup().await;
    Ok((idle, busy))
}

fn hex_of(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
