//! The `provision` CLI: one file per subcommand, each an options struct
//! plus one call of its [`driver::Driver`]: the library on this machine,
//! or the daemon with `--server` ([`client`]), which answer the same
//! reports. `main` is `match run(parse())`; an error's exit code is its
//! kind's ([`provisioner::ErrorKind::exit_code`]), the daemon's errors
//! included. Logs go to stderr ([`logging`]).

mod alert;
mod client;
mod completions;
mod destroy;
mod driver;
mod export;
mod gateway;
mod history;
mod list;
mod logging;
mod logs;
mod node;
mod output;
mod plan;
mod reconcile;
mod report;
mod start;
mod status;
mod stop;
mod token;
mod upgrade;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use provisioner::{Config, Error, ErrorKind, ProviderId, Provisioner};

/// Gives IoT service providers (tenants) their own running stack: an
/// ingest server for their gateways, an admin panel and a notifier of
/// alerts and reports, on a shared Cassandra with a keyspace per tenant.
#[derive(Debug, Parser)]
#[command(name = "provision", version)]
pub struct Cli {
    /// Machine-readable output (one JSON document on stdout).
    #[arg(long, global = true)]
    json: bool,
    /// The configuration file (TOML); without it the defaults work.
    #[arg(long, global = true, env = "PROVISION_CONFIG", value_name = "FILE")]
    config: Option<PathBuf>,
    /// Log what runs on stderr: -v per operation and step, -vv with the
    /// calls below (or PROVISION_LOG, e.g. `info`, `provisioner=debug`).
    #[arg(long, short = 'v', global = true, action = clap::ArgAction::Count)]
    verbose: u8,
    /// The format of those logs (or PROVISION_LOG_FORMAT).
    #[arg(
        long,
        global = true,
        value_enum,
        env = "PROVISION_LOG_FORMAT",
        default_value = "text"
    )]
    log_format: logging::Format,
    /// Send every command through provisiond: unix:///run/provision/provisiond.sock,
    /// http://host:7070 or https://host:7070 (with PROVISION_TOKEN on TCP).
    #[arg(long, global = true, env = "PROVISION_SERVER", value_name = "URL")]
    server: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Create or start a tenant and wait until it is healthy.
    Start(start::Options),
    /// Stop a tenant's containers; ports and data stay.
    Stop(stop::Options),
    /// Remove a tenant's containers and release its ports.
    Destroy(destroy::Options),
    /// Show one tenant (or all): state, ports, health, uptime, CPU, memory.
    Status(status::Options),
    /// Show every tenant.
    List(list::Options),
    /// Show a tenant app's logs.
    Logs(logs::Options),
    /// Commission, list and revoke a tenant's gateways.
    #[command(subcommand)]
    Gateway(gateway::Command),
    /// Add, list and remove a tenant's alert rules (mailed by its notifier).
    #[command(subcommand)]
    Alert(alert::Command),
    /// Schedule the tenant's daily report by mail, or send one now.
    #[command(subcommand)]
    Report(report::Command),
    /// Bring every tenant to its desired state; report orphans.
    Reconcile(reconcile::Options),
    /// Say what `start` would do.
    Plan(plan::Options),
    /// Roll a tenant's apps (or every tenant's) to new images, each new app
    /// started beside the old one and switched to behind the front.
    Upgrade(upgrade::Options),
    /// Show the operations log: what was asked, when, by whom, how it ended.
    History(history::Options),
    /// Make, list and revoke the operator tokens of provisiond's TCP listener.
    #[command(subcommand)]
    Token(token::Command),
    /// Swarm mode: list the nodes, drain one, activate it again.
    #[command(subcommand)]
    Node(node::Command),
    /// Each Cassandra cluster's tenants, tables and room; in Swarm mode also
    /// whether the nodes are N+1, and how many more tenants fit.
    Capacity(node::CapacityOptions),
    /// Write a tenant's containers as a docker-compose file.
    Export(export::Options),
    /// Print the shell completion script.
    Completions(completions::Options),
    /// Print the man page (roff).
    Man(completions::ManOptions),
}

/// What every subcommand gets.
pub struct Ctx {
    pub json: bool,
    pub driver: driver::Driver,
}

impl Ctx {
    /// The library on this machine, for what only runs here.
    pub fn local(&self, command: &str) -> Result<&Provisioner, Error> {
        match &self.driver {
            driver::Driver::Local(p) => Ok(p),
            driver::Driver::Remote(_) => Err(Error::Usage(format!(
                "`provision {command}` runs on the daemon's machine, without --server"
            ))),
        }
    }
}

/// Parses a provider id at the edge.
pub fn provider(raw: &str) -> Result<ProviderId, Error> {
    Ok(ProviderId::parse(raw)?)
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    match &cli.command {
        Command::Completions(o) => return completions::completions(o),
        Command::Man(o) => return completions::man(o),
        _ => {}
    }
    let driver = match cli.server.as_deref().filter(|s| !s.is_empty()) {
        Some(server) => {
            let token = std::env::var("PROVISION_TOKEN").ok();
            driver::Driver::Remote(client::Client::new(server, token)?)
        }
        None => {
            let config = Config::load(cli.config.as_deref())?;
            driver::Driver::Local(Box::new(Provisioner::open(config).await?))
        }
    };
    let ctx = Ctx {
        json: cli.json,
        driver,
    };
    match cli.command {
        Command::Start(o) => start::run(&ctx, o).await,
        Command::Stop(o) => stop::run(&ctx, o).await,
        Command::Destroy(o) => destroy::run(&ctx, o).await,
        Command::Status(o) => status::run(&ctx, o).await,
        Command::List(o) => list::run(&ctx, o).await,
        Command::Logs(o) => logs::run(&ctx, o).await,
        Command::Gateway(c) => gateway::run(&ctx, c).await,
        Command::Alert(c) => alert::run(&ctx, c).await,
        Command::Report(c) => report::run(&ctx, c).await,
        Command::Reconcile(o) => reconcile::run(&ctx, o).await,
        Command::Plan(o) => plan::run(&ctx, o).await,
        Command::Upgrade(o) => upgrade::run(&ctx, o).await,
        Command::History(o) => history::run(&ctx, o).await,
        Command::Token(c) => token::run(&ctx, c).await,
        Command::Node(c) => node::run(&ctx, c).await,
        Command::Capacity(o) => node::capacity(&ctx, o).await,
        Command::Export(o) => export::run(&ctx, o).await,
        Command::Completions(_) | Command::Man(_) => unreachable!("answered above"),
    }
}

/// An error's exit code: its kind's, or 1 for one from outside the library.
fn exit_code(error: &anyhow::Error) -> u8 {
    if let Some(failed) = error.downcast_ref::<output::Reported>() {
        return failed.exit_code;
    }
    if let Some(remote) = error.downcast_ref::<client::RemoteError>() {
        return remote.exit_code;
    }
    error
        .downcast_ref::<Error>()
        .map_or(1, |e| e.kind().exit_code())
}

/// An error's kind: its own, the daemon's, or other.
fn kind_of(error: &anyhow::Error) -> ErrorKind {
    if let Some(remote) = error.downcast_ref::<client::RemoteError>() {
        return remote.kind;
    }
    error
        .downcast_ref::<Error>()
        .map_or(ErrorKind::Other, Error::kind)
}

/// With `--json`, an error is a JSON document on stdout too, so a script
/// that parses stdout gets an answer it can read rather than nothing.
fn json_error(error: &anyhow::Error, code: u8) {
    let kind = kind_of(error).as_str();
    output::json(&serde_json::json!({
        "error": { "kind": kind, "message": format!("{error:#}"), "exit_code": code }
    }));
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    logging::init(cli.verbose, cli.log_format);
    let json = cli.json;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a tokio runtime");
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            let code = exit_code(&e);
            if e.downcast_ref::<output::Reported>().is_none() {
                eprintln!("error: {e:#}");
                if json {
                    json_error(&e, code);
                }
            }
            ExitCode::from(code)
        }
    }
}
