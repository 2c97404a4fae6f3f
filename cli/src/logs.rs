//! `provision logs <provider> [--role ingest|admin|notifier] [--follow] [--tail N]`

use provisioner::Role;

use crate::{provider, Ctx};

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum RoleArg {
    Ingest,
    Admin,
    Notifier,
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
        RoleArg::Notifier => Role::Notifier,
    };
    ctx.driver.logs(&id, role, o.follow, o.tail).await
}
