//! `provision plan <provider> [--gateway-port P] [--admin-port P]`: what `start` would do.

use serde_json::json;

use crate::start::Target;
use crate::{output, Ctx};

#[derive(Debug, clap::Args)]
pub struct Options {
    #[command(flatten)]
    target: Target,
}

pub async fn run(ctx: &Ctx, o: Options) -> anyhow::Result<()> {
    let (id, options) = o.target.parse(true)?;
    let plan = ctx.provisioner.plan(&id, options).await?;
    if ctx.json {
        let steps: Vec<String> = plan.steps.iter().map(|s| s.to_string()).collect();
        output::json(&json!({
            "provider": id.as_str(),
            "plan": steps,
            "notices": plan.notices,
        }));
    } else {
        print!("{plan}");
    }
    Ok(())
}
