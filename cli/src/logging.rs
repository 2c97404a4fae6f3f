//! Logs on stderr: spans per operation and per step from the library,
//! as text or JSON. Off unless `-v` or `PROVISION_LOG`, so that a failing
//! command prints its one `error:` line and nothing else.

use tracing_subscriber::EnvFilter;

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum Format {
    Text,
    Json,
}

/// `-v`: info; `-vv`: debug; `PROVISION_LOG` (an env-filter) wins.
pub fn init(verbose: u8, format: Format) {
    let default = match verbose {
        0 => "off",
        // The driver logs a refused login as an error: the default
        // superuser's probe is refused on purpose.
        1 => "info,scylla=off,sqlx=warn",
        _ => "debug,scylla=warn,sqlx=warn,hyper=info",
    };
    let filter = std::env::var("PROVISION_LOG")
        .ok()
        .filter(|f| !f.is_empty())
        .and_then(|f| EnvFilter::try_new(f).ok())
        .unwrap_or_else(|| EnvFilter::new(default));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    match format {
        Format::Text => builder.with_target(false).compact().init(),
        Format::Json => builder
            .json()
            .with_current_span(true)
            .with_span_list(true)
            .init(),
    }
}
