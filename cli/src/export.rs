//! `provision export <provider> [-o FILE]`: the tenant's containers as a
//! docker-compose file (YAML), made by the library from the same container
//! specs `start` creates ([`provisioner::ops::export`]). Without `-o` the
//! file goes to stdout; with `-o FILE` it is written there. With `--json`
//! stdout gets the same document as JSON.

use std::path::PathBuf;

use anyhow::Context;
use provisioner::ops::export::ComposeFile;
use provisioner::ProviderId;

use crate::{output, provider, Ctx};

#[derive(Debug, clap::Args)]
pub struct Options {
    provider: String,
    /// Write the compose file here instead of to stdout.
    #[arg(long, short = 'o', value_name = "FILE")]
    output: Option<PathBuf>,
}

/// The comment the YAML file opens with: where it came from, and how to
/// hand the tenant over to compose.
fn header(id: &ProviderId, file: &ComposeFile) -> String {
    let names: Vec<&str> = file
        .services
        .values()
        .map(|s| s.container_name.as_str())
        .collect();
    let networks: Vec<&str> = file.networks.keys().map(String::as_str).collect();
    format!(
        "# docker-compose file of the provision tenant {id} (`provision export {id}`).\n\
         # The same containers provision runs: images, names, ports, environment,\n\
         # secrets mount, labels, health checks, limits and restart policy.\n\
         # Its network ({networks}) and the Cassandra node on it belong to\n\
         # provision's shared infrastructure: they must exist (external: true).\n\
         # To run it instead of provision: `provision stop {id}`, then\n\
         # `docker rm {names}` (the container names are reused),\n\
         # then `docker-compose -f FILE up -d`.\n",
        networks = networks.join(", "),
        names = names.join(" "),
    )
}

pub async fn run(ctx: &Ctx, o: Options) -> anyhow::Result<()> {
    let id = provider(&o.provider)?;
    // The daemon has no export route: the file names this machine's paths.
    let file = ctx.local("export")?.export(&id).await?;
    let yaml = || format!("{}{}", header(&id, &file), file.to_yaml());
    match &o.output {
        Some(path) => {
            std::fs::write(path, yaml())
                .with_context(|| format!("cannot write {}", path.display()))?;
            if !ctx.json {
                println!(
                    "wrote the compose file of tenant {id} to {}",
                    path.display()
                );
            }
        }
        None if !ctx.json => print!("{}", yaml()),
        None => {}
    }
    if ctx.json {
        output::json(&file);
    }
    Ok(())
}
