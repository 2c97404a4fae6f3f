//! Printing: one JSON document with `--json`, text otherwise.

use serde::Serialize;

/// A failure already printed (a reconcile or an upgrade with failed
/// tenants, a report mail that failed): the process only ends with its
/// exit code.
#[derive(Debug, thiserror::Error)]
#[error("failed (reported above)")]
pub struct Reported {
    pub exit_code: u8,
}

pub fn json(value: &impl Serialize) {
    println!(
        "{}",
        serde_json::to_string_pretty(value).expect("serializable")
    );
}

pub fn bytes(n: u64) -> String {
    let mib = n as f64 / (1024.0 * 1024.0);
    format!("{mib:.1}MiB")
}

pub fn duration(secs: i64) -> String {
    match secs {
        s if s < 60 => format!("{s}s"),
        s if s < 3600 => format!("{}m{}s", s / 60, s % 60),
        s if s < 86400 => format!("{}h{}m", s / 3600, (s % 3600) / 60),
        s => format!("{}d{}h", s / 86400, (s % 86400) / 3600),
    }
}
