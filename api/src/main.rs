//! The `provisiond` binary: opens the provisioner on the configuration
//! (the same file as the CLI's) and serves [`provisiond::router`] on a Unix
//! socket, mode 0660: whoever may open it may ask, as with dockerd.

use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::Parser;
use provisiond::{router, AppState};
use provisioner::{Config, Provisioner};

#[derive(Debug, Parser)]
#[command(name = "provisiond", version)]
struct Args {
    /// The configuration file (TOML), as for `provision`.
    #[arg(long, env = "PROVISION_CONFIG", value_name = "FILE")]
    config: Option<PathBuf>,
    /// The Unix socket to serve on.
    #[arg(
        long,
        value_name = "PATH",
        default_value = "/run/provision/provisiond.sock"
    )]
    socket: PathBuf,
}

async fn run(args: Args) -> Result<(), String> {
    let config = Config::load(args.config.as_deref()).map_err(|e| e.to_string())?;
    let provisioner = Provisioner::open(config)
        .await
        .map_err(|e| e.to_string())?
        .requested_by("provisiond");
    if let Some(dir) = args.socket.parent() {
        std::fs::create_dir_all(dir)
            .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    }
    // A socket left by a daemon that died is in the way.
    let _ = std::fs::remove_file(&args.socket);
    let listener = tokio::net::UnixListener::bind(&args.socket)
        .map_err(|e| format!("cannot listen on {}: {e}", args.socket.display()))?;
    std::fs::set_permissions(&args.socket, std::fs::Permissions::from_mode(0o660))
        .map_err(|e| format!("cannot set the mode of {}: {e}", args.socket.display()))?;
    tracing::info!(socket = %args.socket.display(), "provisiond listening");
    let app = router(AppState {
        provisioner: Arc::new(provisioner),
    });
    axum::serve(listener, app)
        .with_graceful_shutdown(async {
            let mut term =
                tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
                    .expect("a SIGTERM handler");
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
        })
        .await
        .map_err(|e| e.to_string())
}

fn main() -> ExitCode {
    let args = Args::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("PROVISION_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a tokio runtime");
    match runtime.block_on(run(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(1)
        }
    }
}
