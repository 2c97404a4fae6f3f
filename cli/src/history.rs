//! `provision history [<provider>]`: the operations log.

use crate::{output, provider, Ctx};

#[derive(Debug, clap::Args)]
pub struct Options {
    /// One tenant's operations (default: all).
    provider: Option<String>,
}

pub async fn run(ctx: &Ctx, o: Options) -> anyhow::Result<()> {
    let id = o.provider.as_deref().map(provider).transpose()?;
    let history = ctx.driver.history(id.as_ref()).await?;
    if ctx.json {
        output::json(&history);
        return Ok(());
    }
    println!(
        "{:>5}  {:<24} {:<12} {:<24} {:<12} REQUEST",
        "ID", "STARTED", "STATE", "PROVIDER", "BY"
    );
    for op in history {
        println!(
            "{:>5}  {:<24} {:<12} {:<24} {:<12} {}",
            op.id,
            op.started_at
                .as_deref()
                .or(op.queued_at.as_deref())
                .unwrap_or("-"),
            op.state,
            op.tenant.as_deref().unwrap_or("-"),
            op.requested_by.as_deref().unwrap_or("-"),
            op.request.as_deref().unwrap_or(&op.kind),
        );
        if let Some(error) = &op.error {
            println!("       error: {}", error.message);
        }
    }
    Ok(())
}
