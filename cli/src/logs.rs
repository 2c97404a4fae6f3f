//! `provision logs <provider> [--role ingest|admin] [--follow] [--tail N]`

use std::io::Write;

use provisioner::backend::LogChunk;
use provisioner::Role;

use crate::{provider, Ctx};

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum RoleArg {
    Ingest,
    Admin,
}

#[derive(Debug, clap::Args)]
pub struct Options {
    provider: String,
    /// Which app.
    #[arg(long, value_enum, default_value = "ingest")]
    role: RoleArg,
    /// Keep printing new lines.
    #[arg(long, short = 'f')]
    follow: bool,
    /// Only the last N lines.
    #[arg(long, value_name = "N")]
    tail: Option<u64>,
}

pub async fn run(ctx: &Ctx, o: Options) -> anyhow::Result<()> {
    let id = provider(&o.provider)?;
    let role = match o.role {
        RoleArg::Ingest => Role::Ingest,
        RoleArg::Admin => Role::Admin,
    };
    ctx.provisioner
        .logs(&id, role, o.follow, o.tail, |line| {
            let _ = match line {
                LogChunk::Stderr(bytes) => std::io::stderr().write_all(&bytes),
                LogChunk::Stdout(bytes) => std::io::stdout().write_all(&bytes),
            };
        })
        .await?;
    Ok(())
}
