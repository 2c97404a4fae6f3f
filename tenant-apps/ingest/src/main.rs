//! The `ingest` binary: `serve` (the default) runs the server from the
//! environment; `healthcheck` is Docker's HEALTHCHECK (a GET of
//! `/healthz` on the internal HTTP port, as scratch images have no curl,
//! printing its line of open connections and limits);
//! `probe HOST:PORT` resolves a name and opens a TCP connection, to check
//! the network from inside a tenant container.

use std::net::{TcpStream, ToSocketAddrs};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::{Parser, Subcommand};
use ingest::settings::{Settings, DEFAULT_HTTP_LISTEN};
use tenant_common::{init_logging, shutdown_signal, TenantConfig};
use tokio_util::sync::CancellationToken;

#[derive(Parser)]
#[command(
    name = "ingest",
    version,
    about = "Gateway protocol v1 ingest server of one tenant"
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Serve gateways (configuration from the environment; the default)
    Serve,
    /// Exit 0 if the local ingest answers /healthz with 200, and print its
    /// line: `ok connections plain=N tls=M max_connections=C max_readings_per_sec=R`
    Healthcheck {
        /// The internal HTTP address
        #[arg(long, env = "INGEST_HTTP_LISTEN", default_value = DEFAULT_HTTP_LISTEN)]
        addr: String,
    },
    /// Resolve HOST:PORT and open a TCP connection to it
    Probe { target: String },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => serve(),
        // Docker keeps this line in the health log, where `provision
        // status` reads the connection counts.
        Command::Healthcheck { addr } => tenant_common::http_get(&addr, "/healthz")
            .map(|body| println!("{}", body.trim()))
            .map_err(anyhow::Error::from),
        Command::Probe { target } => probe(&target).map(|msg| println!("{msg}")),
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
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the tokio runtime")?;
    runtime.block_on(async {
        let shutdown = CancellationToken::new();
        let signal = shutdown.clone();
        tokio::spawn(async move {
            shutdown_signal().await;
            signal.cancel();
        });
        ingest::app::run(cfg, settings, shutdown).await
    })?;
    runtime.shutdown_timeout(Duration::from_secs(1));
    Ok(())
}

fn probe(target: &str) -> anyhow::Result<String> {
    let addrs: Vec<_> = target
        .to_socket_addrs()
        .with_context(|| format!("cannot resolve {target}"))?
        .collect();
    let addr = addrs
        .first()
        .with_context(|| format!("{target} resolved to no address"))?;
    TcpStream::connect_timeout(addr, Duration::from_secs(5))
        .with_context(|| format!("cannot connect to {target} ({addr})"))?;
    Ok(format!("reached {target} at {addr}"))
}
