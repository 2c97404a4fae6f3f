//! The `admin` binary: `admin [serve]` runs the panel of the tenant named
//! by the environment; `admin healthcheck` asks a running panel's
//! `/healthz` (Docker's HEALTHCHECK in the scratch image). Errors are
//! reported as one line and a non-zero exit code.

use std::net::SocketAddr;
use std::process::ExitCode;

use admin::{app, AdminConfig, AppState, PanelOptions};
use anyhow::Context as _;

const USAGE: &str = "usage: admin [serve | healthcheck]\n\
  serve        run the admin panel (default); configured by TENANT_ID, TENANT_KEYSPACE,\n\
               CASSANDRA_CONTACT_POINTS, CASSANDRA_USERNAME, CASSANDRA_PASSWORD, LOG_FORMAT,\n\
               ADMIN_LISTEN (default 0.0.0.0:8080), ADMIN_SESSION_SECRET_FILE or\n\
               ADMIN_SESSION_SECRET (hex), ADMIN_LOGIN_WINDOW_SECS (default 900),\n\
               ADMIN_LOGIN_FAILURES_PER_USERNAME (5), ADMIN_LOGIN_FAILURES_PER_ADDRESS (20),\n\
               ADMIN_BEHIND_TLS (false), ADMIN_TRUSTED_PROXIES (IP addresses and/or\n\
               default-gateway, whose X-Forwarded-For names the client; default none)\n\
  healthcheck  exit 0 if the panel at ADMIN_LISTEN answers GET /healthz with 200";

fn main() -> ExitCode {
    let command = std::env::args().nth(1);
    let result = match command.as_deref() {
        None | Some("serve") => serve(),
        Some("healthcheck") => healthcheck(),
        Some("-h" | "--help" | "help") => {
            println!("{USAGE}");
            Ok(())
        }
        Some(other) => {
            eprintln!("error: unknown command {other:?}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn healthcheck() -> anyhow::Result<()> {
    let listen = admin::config::listen_from_env()?;
    tenant_common::http_healthcheck(&listen.to_string(), "/healthz")?;
    Ok(())
}

fn serve() -> anyhow::Result<()> {
    let config = AdminConfig::from_env()?;
    tenant_common::init_logging(config.tenant.log_json);
    // A tenant's panel serves a handful of people: two workers are plenty
    // and keep the idle footprint small.
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .max_blocking_threads(4)
        .enable_all()
        .build()
        .context("cannot start the async runtime")?
        .block_on(run(config))
}

async fn run(config: AdminConfig) -> anyhow::Result<()> {
    let secret = match config.session_secret.clone() {
        Some(secret) => secret,
        None => {
            tracing::warn!("neither ADMIN_SESSION_SECRET_FILE nor ADMIN_SESSION_SECRET is set: using a random one, so sessions end when the panel restarts");
            admin::session::Keys::random_secret()
        }
    };
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("cannot listen on {}", config.listen))?;
    let cassandra = tokio::select! {
        session = tenant_common::connect_cassandra(&config.tenant) => session?,
        () = tenant_common::shutdown_signal() => return Ok(()),
    };
    let state = AppState::new(
        cassandra,
        PanelOptions {
            tenant_id: config.tenant.tenant_id.clone(),
            keyspace: config.tenant.keyspace.clone(),
            session_secret: secret,
            login_limits: config.login_limits,
            behind_tls: config.behind_tls,
        },
    )
    .await
    .context("cannot prepare the panel")?
    .trusting(config.trusted_proxies.clone());
    let proxies = &config.trusted_proxies;
    match proxies.default_gateway() {
        Some(gateway) => tracing::info!(
            listen = %config.listen,
            tenant = %config.tenant.tenant_id,
            trusted_proxies = %proxies,
            default_gateway = %gateway,
            "admin panel listening"
        ),
        None => tracing::info!(
            listen = %config.listen,
            tenant = %config.tenant.tenant_id,
            trusted_proxies = %proxies,
            "admin panel listening"
        ),
    }
    axum::serve(
        listener,
        app(state).into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(tenant_common::shutdown_signal())
    .await
    .context("the http server failed")?;
    tracing::info!("admin panel stopped");
    Ok(())
}
