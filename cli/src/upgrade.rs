//! `provision upgrade <provider>|--all [--image-tag T] [--parallelism N]
//! [--keep-going]`: the copy-update-switch of a tenant's apps behind the
//! front (ARCHITECTURE.md, "Upgrades").

use provisioner::ops::UpgradeOptions;

use crate::{output, provider, Ctx};

#[derive(Debug, clap::Args)]
pub struct Options {
    /// The provider (tenant) to upgrade.
    #[arg(required_unless_present = "all", conflicts_with = "all")]
    provider: Option<String>,
    /// Every tenant that should run, in batches of --parallelism.
    #[arg(long)]
    all: bool,
    /// The tag of the images to run (default: the tenant's own tag, whose
    /// rebuilt images are an upgrade too).
    #[arg(long, value_name = "TAG")]
    image_tag: Option<String>,
    /// With --all: tenants upgraded at once.
    #[arg(long, value_name = "N", default_value_t = 1,
          value_parser = clap::value_parser!(u16).range(1..))]
    parallelism: u16,
    /// With --all: go on after a tenant failed (default: stop after its batch).
    #[arg(long)]
    keep_going: bool,
}

pub async fn run(ctx: &Ctx, o: Options) -> anyhow::Result<()> {
    let options = UpgradeOptions {
        image_tag: o.image_tag,
        parallelism: usize::from(o.parallelism),
        keep_going: o.keep_going,
    };
    let id = o.provider.as_deref().map(provider).transpose()?;
    let report = ctx.driver.upgrade(id.as_ref(), &options).await?;
    if ctx.json {
        output::json(&report);
    } else if report.tenants.is_empty() {
        println!("no running tenants");
    } else {
        print!("{}", report.text());
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
