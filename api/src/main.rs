//! The `provisiond` binary: opens the provisioner on the configuration
//! (the same file as the CLI's), starts the watcher, and serves the API on
//! a Unix socket (mode 0660: whoever may open it may ask, as with dockerd)
//! and, with `--listen`, on TCP with operator tokens (and TLS when the
//! config names a certificate). SIGTERM or ctrl-c ends it gracefully:
//! listeners close, requests in flight finish.

use std::future::IntoFuture;
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::process::ExitCode;

use axum::serve::Listener;
use clap::Parser;
use provisiond::auth::UnixPeer;
use provisiond::{tcp_router, tls, unix_router, AppState};
use provisioner::{Config, Provisioner};
use tokio::sync::watch;

/// jemalloc rather than glibc's malloc. The daemon lives long and its load
/// comes in bursts (twenty starts at once, a status sweep of every
/// container); glibc's arenas kept most of a burst's heap for good
/// (BENCHMARKS.md, "The daemon's RSS"). jemalloc, with its background
/// thread on, hands freed pages back to the system some seconds later.
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

#[derive(Debug, Parser)]
#[command(name = "provisiond", version)]
struct Args {
    /// The configuration file (TOML), as for `provision`.
    #[arg(long, env = "PROVISION_CONFIG", value_name = "FILE")]
    config: Option<PathBuf>,
    /// The Unix socket to serve on (default: the config's `[daemon]
    /// socket`, `/run/provision/provisiond.sock`).
    #[arg(long, value_name = "PATH")]
    socket: Option<PathBuf>,
    /// Also serve on this TCP address (`127.0.0.1:7070`); every request
    /// there needs an operator token (`provision token create`).
    #[arg(long, value_name = "ADDR")]
    listen: Option<String>,
    /// Print the OpenAPI document (as committed in api/openapi.json) and exit.
    #[arg(long)]
    openapi: bool,
}

/// Resolves on SIGTERM or ctrl-c.
async fn shutdown_signal() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("a SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}

fn unix_listener(path: &std::path::Path) -> Result<tokio::net::UnixListener, String> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)
            .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    }
    // A socket left by a daemon that died is in the way.
    if let Ok(meta) = std::fs::symlink_metadata(path) {
        use std::os::unix::fs::FileTypeExt;
        if !meta.file_type().is_socket() {
            return Err(format!("{} exists and is not a socket", path.display()));
        }
        if std::os::unix::net::UnixStream::connect(path).is_ok() {
            return Err(format!("another provisiond serves {}", path.display()));
        }
        let _ = std::fs::remove_file(path);
    }
    let listener = tokio::net::UnixListener::bind(path)
        .map_err(|e| format!("cannot listen on {}: {e}", path.display()))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o660))
        .map_err(|e| format!("cannot set the mode of {}: {e}", path.display()))?;
    Ok(listener)
}

async fn run(args: Args) -> Result<(), String> {
    let mut config = Config::load(args.config.as_deref()).map_err(|e| e.to_string())?;
    if let Some(socket) = args.socket {
        config.daemon.socket = socket;
    }
    if let Some(listen) = args.listen {
        config.daemon.listen = Some(listen);
    }
    let daemon = config.daemon.clone();
    let provisioner = Provisioner::open(config)
        .await
        .map_err(|e| e.to_string())?
        .requested_by("provisiond");
    let state = AppState::new(provisioner);

    let (stop_tx, stop_rx) = watch::channel(false);
    let stopped = move || {
        let mut rx = stop_rx.clone();
        async move {
            let _ = rx.wait_for(|s| *s).await;
        }
    };
    let mut servers = tokio::task::JoinSet::new();

    let unix = unix_listener(&daemon.socket)?;
    tracing::info!(socket = %daemon.socket.display(), "provisiond listening");
    let app = unix_router(state.clone()).into_make_service_with_connect_info::<UnixPeer>();
    servers.spawn(
        axum::serve(unix, app)
            .with_graceful_shutdown(stopped())
            .into_future(),
    );

    if let Some(addr) = &daemon.listen {
        let tcp = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|e| format!("cannot listen on {addr}: {e}"))?;
        let app = tcp_router(state.clone());
        match (&daemon.tls_cert, &daemon.tls_key) {
            (Some(cert), Some(key)) => {
                let tls = tls::server_config(cert, key).map_err(|e| e.to_string())?;
                let listener = tls::TlsListener::new(tcp, tls).map_err(|e| e.to_string())?;
                tracing::info!(addr = %listener.local_addr().map_err(|e| e.to_string())?, "listening with TLS");
                servers.spawn(
                    axum::serve(listener, app)
                        .with_graceful_shutdown(stopped())
                        .into_future(),
                );
            }
            (None, None) => {
                tracing::info!(%addr, "listening (no TLS)");
                servers.spawn(
                    axum::serve(tcp, app)
                        .with_graceful_shutdown(stopped())
                        .into_future(),
                );
            }
            _ => return Err("[daemon] needs both tls_cert and tls_key, or neither".into()),
        }
    }

    let watcher = tokio::spawn(state.watcher.clone().run());
    shutdown_signal().await;
    tracing::info!("provisiond stopping");
    let _ = stop_tx.send(true);
    watcher.abort();
    while let Some(done) = servers.join_next().await {
        if let Ok(Err(e)) = done {
            tracing::warn!(error = %e, "a listener ended with an error");
        }
    }
    let _ = std::fs::remove_file(&daemon.socket);
    Ok(())
}

fn main() -> ExitCode {
    let args = Args::parse();
    if args.openapi {
        print!("{}", provisiond::openapi::document_text());
        return ExitCode::SUCCESS;
    }
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("PROVISION_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,scylla=warn")),
        )
        .with_writer(std::io::stderr)
        // Colours only on a terminal: a log file or the journal gets plain
        // `key=value` fields.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    if let Err(e) = tikv_jemalloc_ctl::background_thread::write(true) {
        tracing::warn!(error = %e, "jemalloc's background thread did not start: freed memory returns only as the daemon allocates");
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a tokio runtime");
    let outcome = runtime.block_on(run(args));
    // Operations still running are interrupted: the operations log says so.
    runtime.shutdown_timeout(std::time::Duration::from_secs(1));
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(1)
        }
    }
}
