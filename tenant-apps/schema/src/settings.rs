//! The keys of the `settings` table (a key/value table), for everyone who
//! reads or writes one: the admin panel (all of them), the notifier
//! (timezone and the daily report) and the `provision report` CLI (the
//! daily report). Each value's format is stated here; the readers parse
//! them, and a value that no longer parses means its default.

/// The provider's name as the panel and the mails show it.
pub const DISPLAY_NAME: &str = "display_name";
/// A fixed UTC offset (`UTC`, `+01:00`, `-05:30`), parsed by
/// [`crate::local_time::parse_utc_offset`].
pub const TIMEZONE: &str = "timezone";
/// Minutes without a frame before the dashboard shows a gateway offline.
pub const OFFLINE_AFTER_MINUTES: &str = "offline_after_minutes";
/// The dashboard's power mark, in W.
pub const POWER_ALERT_W: &str = "power_alert_w";
/// The local time of the daily report, `HH:MM` (24 h); absent or empty:
/// no daily report.
pub const REPORT_AT: &str = "report_at";
/// The daily report's recipients, comma-separated addresses.
pub const REPORT_RECIPIENTS: &str = "report_recipients";

/// `()`: every `(name, value)` row.
pub fn select_all(keyspace: &str) -> String {
    format!("SELECT name, value FROM {keyspace}.settings")
}

/// `(name, value)`: sets one key.
pub fn upsert(keyspace: &str) -> String {
    format!("INSERT INTO {keyspace}.settings (name, value) VALUES (?, ?)")
}

/// `(name)`: removes one key.
pub fn delete(keyspace: &str) -> String {
    format!("DELETE FROM {keyspace}.settings WHERE name = ?")
}
