//! `provision plan <provider> [--gateway-port P] [--admin-port P]`: what `start` would do.

use provisioner::StartOptions;
use serde_json::json;

use crate::{output, provider, Ctx};

#[derive(Debug, clap::Args)]
pub struct Options {
    provider: String,
    #[arg(long, value_name = "P")]
    gateway_port: Option<u16>,
    #[arg(long, value_name = "P")]
    admin_port: Option<u16>,
}

pub async fn run(ctx: &Ctx, o: Options) -> anyhow::Result<()> {
    let id = provider(&o.provider)?;
    let options = StartOptions {
        gateway_port: o.gateway_port,
        admin_port: o.admin_port,
        dry_run: true,
    };
    let plan = ctx.provisioner.plan(&id, options).await?;
    if ctx.json {
        let steps: Vec<String> = plan.steps.iter().map(|s| s.to_string()).collect();
        output::json(&json!({ "provider": id.as_str(), "plan": steps }));
    } else {
        print!("{plan}");
    }
    Ok(())
}
