//! `provision stop <provider> [--dry-run]`

use crate::{output, provider, Ctx};

#[derive(Debug, clap::Args)]
pub struct Options {
    provider: String,
    /// Print the plan and change nothing.
    #[arg(long)]
    dry_run: bool,
}

pub async fn run(ctx: &Ctx, o: Options) -> anyhow::Result<()> {
    let id = provider(&o.provider)?;
    let report = ctx.driver.stop(&id, o.dry_run).await?;
    if ctx.json {
        output::json(&report);
    } else if o.dry_run {
        print!("{}", report.plan_text);
    } else {
        println!("tenant {id} is stopped (ports and data kept)");
    }
    Ok(())
}
