//! `provision list`

use crate::{output, status, Ctx};

#[derive(Debug, clap::Args)]
pub struct Options {}

pub async fn run(ctx: &Ctx, _o: Options) -> anyhow::Result<()> {
    let statuses = ctx.driver.status(None).await?;
    if ctx.json {
        output::json(&statuses);
    } else {
        status::print_table(&statuses);
    }
    Ok(())
}
