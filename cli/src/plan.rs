//! `provision plan <provider> [--gateway-port P] [--admin-port P]`: what `start` would do.

use crate::start::Target;
use crate::{output, Ctx};

#[derive(Debug, clap::Args)]
pub struct Options {
    #[command(flatten)]
    target: Target,
}

pub async fn run(ctx: &Ctx, o: Options) -> anyhow::Result<()> {
    let (id, options) = o.target.parse(true)?;
    let report = ctx.driver.plan(&id, options).await?;
    if ctx.json {
        output::json(&report);
    } else {
        print!("{}", report.plan_text);
    }
    Ok(())
}
