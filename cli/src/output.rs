//! Printing: one JSON document with `--json`, text otherwise.

use serde::Serialize;

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
