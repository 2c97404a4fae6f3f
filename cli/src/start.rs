//! `provision start <provider> [--gateway-port P] [--admin-port P]
//! [--gateway-tls off|optional|required] [--max-readings-per-sec N]
//! [--max-gateways N] [--allow-overcommit] [--dry-run]`

use provisioner::domain::GatewayTls;
use provisioner::{ProviderId, StartOptions};

use crate::{output, provider, Ctx};

/// The tenant and the ports it asks for; shared with `provision plan`.
#[derive(Debug, clap::Args)]
pub struct Target {
    /// The provider (tenant) id: lowercase letters, digits and '_', starting with a letter.
    pub provider: String,
    /// The host port for gateways (default: the next free one of the pool).
    #[arg(long, value_name = "P")]
    pub gateway_port: Option<u16>,
    /// The host port of the admin panel (default: the next free one of the pool).
    #[arg(long, value_name = "P")]
    pub admin_port: Option<u16>,
    /// TLS on the gateway port: `off`, `optional` (plain and TLS on the one
    /// port) or `required`. Kept until a later start changes it; a new
    /// tenant gets `optional`.
    #[arg(long, value_name = "MODE", value_parser = parse_gateway_tls)]
    pub gateway_tls: Option<GatewayTls>,
    /// Readings per second the tenant's ingest takes in at most, over all
    /// its gateways (held by backpressure: nothing is refused). Kept until
    /// a later start changes it; 0 is unlimited (a new tenant's default).
    #[arg(long, value_name = "N")]
    pub max_readings_per_sec: Option<u32>,
    /// Gateway connections at once; the next one gets `<error code="busy">`.
    /// Kept until a later start changes it; 0 is the default (5000).
    #[arg(long, value_name = "N")]
    pub max_gateways: Option<u32>,
}

fn parse_gateway_tls(s: &str) -> Result<GatewayTls, String> {
    GatewayTls::parse(s).ok_or_else(|| format!("`{s}` is not off, optional or required"))
}

impl Target {
    /// The validated provider id and the library's start options.
    pub fn parse(&self, dry_run: bool) -> anyhow::Result<(ProviderId, StartOptions)> {
        let options = StartOptions {
            gateway_port: self.gateway_port,
            admin_port: self.admin_port,
            gateway_tls: self.gateway_tls,
            max_readings_per_sec: self.max_readings_per_sec,
            max_gateways: self.max_gateways,
            allow_overcommit: false,
            dry_run,
            image_tag: None,
        };
        Ok((provider(&self.provider)?, options))
    }
}

#[derive(Debug, clap::Args)]
pub struct Options {
    #[command(flatten)]
    target: Target,
    /// Swarm mode: start even if afterwards the cluster could not absorb
    /// the loss of a node (without it such a start fails, exit code 16).
    #[arg(long)]
    allow_overcommit: bool,
    /// Print the plan and change nothing.
    #[arg(long)]
    dry_run: bool,
}

pub async fn run(ctx: &Ctx, o: Options) -> anyhow::Result<()> {
    let (id, mut options) = o.target.parse(o.dry_run)?;
    options.allow_overcommit = o.allow_overcommit;
    let report = ctx.driver.start(&id, options).await?;
    if ctx.json {
        output::json(&report);
        return Ok(());
    }
    if report.dry_run {
        print!("{}", report.plan_text);
        return Ok(());
    }
    if !report.changed {
        println!("tenant {id} is already running");
    } else {
        println!("tenant {id} is running");
    }
    if let Some(e) = &report.gateway_endpoint {
        println!("  gateway endpoint: {e}");
    }
    if let Some(u) = &report.admin_url {
        println!("  admin panel:      {u}");
    }
    println!("  keyspace:         {}", report.keyspace);
    if let (Some(user), Some(password)) = (&report.admin_user, &report.admin_password) {
        println!("  first admin user: {user}");
        println!("  password:         {password}   (shown once: store it now)");
    }
    for notice in &report.notices {
        eprintln!("note: {notice}");
    }
    Ok(())
}
