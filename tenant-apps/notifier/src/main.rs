//! The `notifier` binary: `serve` (the default) runs the notifier of one
//! tenant from the environment; `healthcheck` is Docker's HEALTHCHECK (a
//! GET of `/healthz` on the internal port, as scratch images have no curl),
//! printing the health line (`ok notifier mail=on rules=3 firing=1
//! pending=0 failed=0`), which Docker keeps in the health log.

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::{Parser, Subcommand};
use notifier::clock::SystemClock;
use notifier::config::{Settings, DEFAULT_HTTP_LISTEN};
use tenant_common::{init_logging, shutdown_signal, TenantConfig};
use tokio_util::sync::CancellationToken;

#[derive(Parser)]
#[command(
    name = "notifier",
    version,
    about = "Alert and daily report mails of one tenant"
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Run the notifier (configuration from the environment; the default)
    Serve,
    /// Exit 0 if the local notifier answers /healthz with 200, and print
    /// its line
    Healthcheck {
        /// The internal HTTP address
        #[arg(long, env = "NOTIFIER_HTTP_LISTEN", default_value = DEFAULT_HTTP_LISTEN)]
        addr: String,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => serve(),
        Command::Healthcheck { addr } => tenant_common::http_get(&addr, "/healthz")
            .map(|body| println!("{}", body.trim()))
            .map_err(anyhow::Error::from),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn serve() -> anyhow::Result<()> {
    let cfg = TenantConfig::from_env()?;
    let settings = Settings::from_env()?;
    init_logging(cfg.log_json);
    // One thread: a check every 30 s and a few mails a day. A single
    // thread keeps the idle footprint far under the 10 MB budget (one
    // malloc arena, one stack).
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .max_blocking_threads(2)
        .build()
        .context("cannot start the tokio runtime")?;
    runtime.block_on(async {
        let shutdown = CancellationToken::new();
        let signal = shutdown.clone();
        tokio::spawn(async move {
            shutdown_signal().await;
            signal.cancel();
        });
        notifier::app::run(cfg, settings, Arc::new(SystemClock), shutdown).await
    })?;
    runtime.shutdown_timeout(Duration::from_secs(1));
    Ok(())
}
