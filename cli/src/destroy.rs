//! `provision destroy <provider> [--purge-data] [--yes] [--dry-run]`

use std::io::{BufRead, IsTerminal, Write};

use provisioner::Error;

use crate::{output, provider, Ctx};

#[derive(Debug, clap::Args)]
pub struct Options {
    provider: String,
    /// Also drop the tenant's keyspace (all its data) and Cassandra role.
    #[arg(long)]
    purge_data: bool,
    /// Do not ask for confirmation.
    #[arg(long, short = 'y')]
    yes: bool,
    /// Print the plan and change nothing.
    #[arg(long)]
    dry_run: bool,
}

fn confirmed(id: &str, purge: bool) -> Result<bool, Error> {
    let what = if purge {
        "containers, ports AND ALL DATA"
    } else {
        "containers and ports"
    };
    if !std::io::stdin().is_terminal() {
        return Err(Error::Usage(format!(
            "destroy of {id} needs confirmation; pass --yes to remove its {what}"
        )));
    }
    eprint!("remove the {what} of tenant {id}? [y/N] ");
    let _ = std::io::stderr().flush();
    let mut answer = String::new();
    let _ = std::io::stdin().lock().read_line(&mut answer);
    Ok(matches!(answer.trim(), "y" | "Y" | "yes"))
}

pub async fn run(ctx: &Ctx, o: Options) -> anyhow::Result<()> {
    let id = provider(&o.provider)?;
    if !o.dry_run && !o.yes && !confirmed(id.as_str(), o.purge_data)? {
        return Err(Error::Usage("destroy cancelled".into()).into());
    }
    let report = ctx.driver.destroy(&id, o.purge_data, o.dry_run).await?;
    if ctx.json {
        output::json(&report);
    } else if o.dry_run {
        print!("{}", report.plan_text);
    } else if o.purge_data {
        println!("tenant {id} is destroyed; its keyspace and role are dropped");
    } else {
        println!(
            "tenant {id} is destroyed; its keyspace {} is kept (--purge-data drops it)",
            id.keyspace()
        );
    }
    Ok(())
}
