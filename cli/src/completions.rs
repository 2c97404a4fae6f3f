//! `provision completions bash|zsh|fish` and `provision man`: the shell
//! completion script (clap_complete) and the roff man page (clap_mangen)
//! of the CLI, both made from its clap definition and printed on stdout.
//! Neither opens the configuration or the state store.

use std::io::Write;

use anyhow::Context;
use clap::CommandFactory;

use crate::Cli;

/// The binary's name in scripts and the page.
const BIN: &str = "provision";

#[derive(Debug, clap::Args)]
pub struct Options {
    /// The shell to complete for.
    #[arg(value_enum)]
    shell: clap_complete::Shell,
}

#[derive(Debug, clap::Args)]
pub struct ManOptions {}

/// Prints the completion script of `o.shell`.
pub fn completions(o: &Options) -> anyhow::Result<()> {
    let mut out = Vec::new();
    clap_complete::generate(o.shell, &mut Cli::command(), BIN, &mut out);
    write_stdout(&out)
}

/// Prints the man page, provision(1).
pub fn man(_: &ManOptions) -> anyhow::Result<()> {
    let mut out = Vec::new();
    clap_mangen::Man::new(Cli::command())
        .render(&mut out)
        .context("cannot render the man page")?;
    write_stdout(&out)
}

fn write_stdout(bytes: &[u8]) -> anyhow::Result<()> {
    let mut stdout = std::io::stdout().lock();
    stdout
        .write_all(bytes)
        .and_then(|()| stdout.flush())
        .context("cannot write to stdout")
}
