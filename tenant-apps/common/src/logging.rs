//! Logging setup: `tracing` events to stdout, filtered by `RUST_LOG`
//! (default `info`), as text or as one JSON object per line.

use tracing_subscriber::EnvFilter;

/// Installs the global subscriber. Call once, at the start of `main`; a
/// second call is ignored.
pub fn init_logging(json: bool) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    let _ = if json {
        builder.json().flatten_event(true).try_init()
    } else {
        builder.try_init()
    };
}
