//! Logs on stderr: spans per operation and per step from the library,
//! as text or JSON. Off (warnings only) unless `-v` or `PROVISION_LOG`.

use tracing_subscriber::EnvFilter;

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum Format {
    Text,
    Json,
}

/// `-v`: info; `-vv`: debug; `PROVISION_LOG` (an env-filter) wins.
pub fn init(verbose: u8, format: Format) {
    let level = match verbose {
        0 => "warn",
        1 => "info",
        _ => "debug",
    };
    let filter = std::env::var("PROVISION_LOG")
        .ok()
        .filter(|f| !f.is_empty())
        .and_then(|f| EnvFilter::try_new(f).ok())
        .unwrap_or_else(|| EnvFilter::new(format!("{level},scylla=warn,sqlx=warn,hyper=warn")));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        Format::Text => builder.with_target(false).compact().init(),
        Format::Json => builder.json().with_current_span(true).with_span_list(true).init(),
    }
}
