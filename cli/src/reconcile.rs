//! `provision reconcile [--dry-run]`

use crate::{output, Ctx};

#[derive(Debug, clap::Args)]
pub struct Options {
    /// Print the plan and change nothing.
    #[arg(long)]
    dry_run: bool,
}

pub async fn run(ctx: &Ctx, o: Options) -> anyhow::Result<()> {
    let report = ctx.driver.reconcile(o.dry_run).await?;
    if ctx.json {
        output::json(&report);
    } else if report.plan_text.is_empty() {
        println!("no tenants");
    } else {
        print!("{}", report.plan_text);
    }
    match report.first_error() {
        Some(e) => {
            eprintln!("error: {}", e.message);
            Err(output::Reported {
                exit_code: e.exit_code,
            }
            .into())
        }
        None => Ok(()),
    }
}
