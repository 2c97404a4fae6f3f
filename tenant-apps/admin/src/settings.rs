//! The provider's customizations, typed: display name, timezone, the
//! dashboard's offline time and power mark, and the daily report's time and
//! recipients, read from and written to the `settings` key/value table.
//!
//! Stored values are parsed leniently (a value that no longer parses falls
//! back to its default, so a bad row never takes the panel down); values
//! from the settings form are validated strictly, with a message naming the
//! field.

use std::collections::HashMap;

use chrono::{DateTime, FixedOffset, NaiveDate, NaiveTime, Timelike, Utc};

pub use tenant_schema::settings::{
    DISPLAY_NAME, OFFLINE_AFTER_MINUTES, POWER_ALERT_W, REPORT_AT, REPORT_RECIPIENTS, TIMEZONE,
};

/// The keys this module owns in the `settings` table. Other keys (the
/// schema version) are never written by the panel.
pub const KEYS: &[&str] = &[
    DISPLAY_NAME,
    TIMEZONE,
    OFFLINE_AFTER_MINUTES,
    POWER_ALERT_W,
    REPORT_AT,
    REPORT_RECIPIENTS,
];

const DEFAULT_OFFLINE_AFTER_MINUTES: u32 = 15;
const MAX_DISPLAY_NAME: usize = 100;

/// Why a value from the settings form was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SettingsError {
    #[error("display name must be 1 to {MAX_DISPLAY_NAME} characters")]
    DisplayName,
    #[error("timezone {0:?} is not understood: use UTC or an offset such as +01:00 or -05:30")]
    Timezone(String),
    #[error("offline after must be a whole number of minutes from 1 to 10080, not {0:?}")]
    OfflineAfter(String),
    #[error("power alert threshold must be a number of watts of at least 0 (or empty for none), not {0:?}")]
    PowerAlert(String),
    #[error("report time must be a local time HH:MM (24 h), such as 07:00, or empty for no daily report, not {0:?}")]
    ReportAt(String),
    #[error("report recipients: {0}")]
    ReportRecipients(String),
    #[error("report recipients: a daily report time needs at least one recipient (or leave the time empty)")]
    ReportWithoutRecipients,
}

/// A timezone as a fixed UTC offset. (Named zones with daylight saving
/// would need the tz database in the binary; a provider sets the offset it
/// wants its days and times shown in.)
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timezone(FixedOffset);

impl Timezone {
    pub const UTC: Timezone = Timezone(match FixedOffset::east_opt(0) {
        Some(o) => o,
        None => unreachable!(),
    });

    /// Accepts `UTC`, `Z`, `+HH:MM`, `-HH:MM`, `+HH`, `UTC+HH:MM`.
    pub fn parse(raw: &str) -> Result<Self, SettingsError> {
        tenant_schema::local_time::parse_utc_offset(raw)
            .map(Timezone)
            .ok_or_else(|| SettingsError::Timezone(raw.to_owned()))
    }

    pub fn offset(&self) -> FixedOffset {
        self.0
    }

    /// The local calendar day of an instant.
    pub fn local_day(&self, at: DateTime<Utc>) -> NaiveDate {
        at.with_timezone(&self.0).date_naive()
    }

    /// The UTC instants `[start, end)` of a local calendar day.
    pub fn day_bounds(&self, day: NaiveDate) -> (DateTime<Utc>, DateTime<Utc>) {
        let start_local = day.and_hms_opt(0, 0, 0).expect("midnight exists");
        let start =
            (start_local - chrono::Duration::seconds(self.0.local_minus_utc().into())).and_utc();
        (start, start + chrono::Duration::days(1))
    }

    /// `2026-11-23 14:05:09` in this timezone.
    pub fn format(&self, at: DateTime<Utc>) -> String {
        at.with_timezone(&self.0)
            .format("%Y-%m-%d %H:%M:%S")
            .to_string()
    }
}

impl std::fmt::Display for Timezone {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let secs = self.0.local_minus_utc();
        if secs == 0 {
            return f.write_str("UTC");
        }
        let sign = if secs < 0 { '-' } else { '+' };
        let secs = secs.abs();
        write!(f, "{sign}{:02}:{:02}", secs / 3600, secs % 3600 / 60)
    }
}

/// The provider's customizations.
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    /// Shown in the page header; the tenant id until set.
    pub display_name: String,
    /// How times are shown and where report days start.
    pub timezone: Timezone,
    /// A gateway not seen for this long is shown as offline.
    pub offline_after_minutes: u32,
    /// A power value above this is highlighted on the dashboard.
    pub power_alert_w: Option<f64>,
    /// The local time of the daily report mail; `None`: no daily report.
    pub report_at: Option<NaiveTime>,
    /// Who gets the daily report (and `provision report send` without
    /// `--to`): addresses as lettre's parser accepts them, each once.
    pub report_recipients: Vec<String>,
}

impl Settings {
    pub fn defaults(tenant_id: &str) -> Self {
        Settings {
            display_name: tenant_id.to_owned(),
            timezone: Timezone::UTC,
            offline_after_minutes: DEFAULT_OFFLINE_AFTER_MINUTES,
            power_alert_w: None,
            report_at: None,
            report_recipients: Vec::new(),
        }
    }

    /// Settings from the stored key/value pairs; unknown keys are ignored
    /// and unparsable values fall back to their defaults.
    pub fn from_stored(tenant_id: &str, stored: &HashMap<String, String>) -> Self {
        let mut settings = Self::defaults(tenant_id);
        if let Some(v) = stored.get(DISPLAY_NAME).filter(|v| !v.trim().is_empty()) {
            settings.display_name = v.clone();
        }
        if let Some(tz) = stored.get(TIMEZONE).and_then(|v| Timezone::parse(v).ok()) {
            settings.timezone = tz;
        }
        if let Some(m) = stored
            .get(OFFLINE_AFTER_MINUTES)
            .and_then(|v| parse_offline_after(v).ok())
        {
            settings.offline_after_minutes = m;
        }
        settings.power_alert_w = stored
            .get(POWER_ALERT_W)
            .and_then(|v| parse_power_alert(v).ok())
            .flatten();
        settings.report_at = stored
            .get(REPORT_AT)
            .and_then(|v| parse_report_at(v).ok())
            .flatten();
        settings.report_recipients = stored
            .get(REPORT_RECIPIENTS)
            .and_then(|v| parse_report_recipients(v).ok())
            .unwrap_or_default();
        settings
    }

    /// Validates the settings form; the first refused field is the error.
    pub fn from_form(form: &FormValues<'_>) -> Result<Self, SettingsError> {
        let display_name = form.display_name.trim();
        if display_name.is_empty()
            || display_name.chars().count() > MAX_DISPLAY_NAME
            || display_name.chars().any(char::is_control)
        {
            return Err(SettingsError::DisplayName);
        }
        let settings = Settings {
            display_name: display_name.to_owned(),
            timezone: Timezone::parse(form.timezone)?,
            offline_after_minutes: parse_offline_after(form.offline_after_minutes)?,
            power_alert_w: parse_power_alert(form.power_alert_w)?,
            report_at: parse_report_at(form.report_at)?,
            report_recipients: parse_report_recipients(form.report_recipients)?,
        };
        if settings.report_at.is_some() && settings.report_recipients.is_empty() {
            return Err(SettingsError::ReportWithoutRecipients);
        }
        Ok(settings)
    }

    /// The report time as the form and the `settings` table hold it:
    /// `HH:MM`, or empty.
    pub fn report_at_text(&self) -> String {
        self.report_at
            .map(|t| format!("{:02}:{:02}", t.hour(), t.minute()))
            .unwrap_or_default()
    }

    /// The key/value pairs to store; `None` deletes the key.
    pub fn to_stored(&self) -> Vec<(&'static str, Option<String>)> {
        vec![
            (DISPLAY_NAME, Some(self.display_name.clone())),
            (TIMEZONE, Some(self.timezone.to_string())),
            (
                OFFLINE_AFTER_MINUTES,
                Some(self.offline_after_minutes.to_string()),
            ),
            (POWER_ALERT_W, self.power_alert_w.map(|w| w.to_string())),
            (REPORT_AT, self.report_at.map(|_| self.report_at_text())),
            (
                REPORT_RECIPIENTS,
                Some(self.report_recipients.join(",")).filter(|v| !v.is_empty()),
            ),
        ]
    }
}

/// The settings form's fields as typed.
#[derive(Debug, Clone, Copy, Default)]
pub struct FormValues<'a> {
    pub display_name: &'a str,
    pub timezone: &'a str,
    pub offline_after_minutes: &'a str,
    pub power_alert_w: &'a str,
    pub report_at: &'a str,
    pub report_recipients: &'a str,
}

fn parse_offline_after(raw: &str) -> Result<u32, SettingsError> {
    raw.trim()
        .parse::<u32>()
        .ok()
        .filter(|m| (1..=10_080).contains(m))
        .ok_or_else(|| SettingsError::OfflineAfter(raw.to_owned()))
}

fn parse_power_alert(raw: &str) -> Result<Option<f64>, SettingsError> {
    let raw_trimmed = raw.trim();
    if raw_trimmed.is_empty() {
        return Ok(None);
    }
    raw_trimmed
        .parse::<f64>()
        .ok()
        .filter(|w| w.is_finite() && *w >= 0.0)
        .map(Some)
        .ok_or_else(|| SettingsError::PowerAlert(raw.to_owned()))
}

/// `HH:MM`, two digits each, 00:00 to 23:59; empty (or only spaces): no
/// daily report.
fn parse_report_at(raw: &str) -> Result<Option<NaiveTime>, SettingsError> {
    let trimmed = raw.trim();
    if trimmed.is_empty() {
        return Ok(None);
    }
    let bad = || SettingsError::ReportAt(raw.to_owned());
    let (h, m) = trimmed.split_once(':').ok_or_else(bad)?;
    let two_digits = |v: &str| v.len() == 2 && v.bytes().all(|b| b.is_ascii_digit());
    if !two_digits(h) || !two_digits(m) {
        return Err(bad());
    }
    let (h, m): (u32, u32) = (h.parse().map_err(|_| bad())?, m.parse().map_err(|_| bad())?);
    NaiveTime::from_hms_opt(h, m, 0).map(Some).ok_or_else(bad)
}

/// A comma list of addresses (the alert rules' parser: each checked, each
/// kept once); empty: none.
fn parse_report_recipients(raw: &str) -> Result<Vec<String>, SettingsError> {
    if raw.trim().is_empty() {
        return Ok(Vec::new());
    }
    use notifier::rules::{RuleError, MAX_RECIPIENTS};
    notifier::rules::parse_recipients(raw)
        .map(|list| list.iter().map(ToString::to_string).collect())
        .map_err(|e| {
            SettingsError::ReportRecipients(match e {
                RuleError::TooManyRecipients(n) => {
                    format!("at most {MAX_RECIPIENTS} addresses, not {n}")
                }
                other => other.to_string(),
            })
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timezones_parse_as_offsets() {
        assert_eq!(Timezone::parse("UTC").unwrap(), Timezone::UTC);
        assert_eq!(Timezone::parse("Z").unwrap(), Timezone::UTC);
        assert_eq!(
            Timezone::parse("+01:00")
                .unwrap()
                .offset()
                .local_minus_utc(),
            3600
        );
        assert_eq!(
            Timezone::parse("UTC-05:30")
                .unwrap()
                .offset()
                .local_minus_utc(),
            -19800
        );
        assert_eq!(
            Timezone::parse("+2").unwrap().offset().local_minus_utc(),
            7200
        );
        assert!(Timezone::parse("Europe/Berlin").is_err());
        assert!(Timezone::parse("+15:00").is_err());
        assert!(Timezone::parse("+01:60").is_err());
        assert!(Timezone::parse("+").is_err());
    }

    #[test]
    fn timezones_print_as_they_parse() {
        for s in ["UTC", "+01:00", "-05:30", "+14:00"] {
            assert_eq!(Timezone::parse(s).unwrap().to_string(), s);
        }
    }

    #[test]
    fn a_local_day_starts_at_local_midnight() {
        let tz = Timezone::parse("+02:00").unwrap();
        let day = NaiveDate::from_ymd_opt(2026, 11, 23).unwrap();
        let (start, end) = tz.day_bounds(day);
        assert_eq!(start.to_rfc3339(), "2026-11-22T22:00:00+00:00");
        assert_eq!(end.to_rfc3339(), "2026-11-23T22:00:00+00:00");
        assert_eq!(tz.local_day(start), day);
        assert_eq!(tz.local_day(end - chrono::Duration::milliseconds(1)), day);
    }

    #[test]
    fn stored_settings_fall_back_to_defaults_when_unparsable() {
        let stored: HashMap<String, String> = [
            (DISPLAY_NAME, "Acme Solar"),
            (TIMEZONE, "somewhere"),
            (OFFLINE_AFTER_MINUTES, "30"),
            (POWER_ALERT_W, "lots"),
            ("schema_version", "1"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        let settings = Settings::from_stored("acme", &stored);
        assert_eq!(settings.display_name, "Acme Solar");
        assert_eq!(settings.timezone, Timezone::UTC);
        assert_eq!(settings.offline_after_minutes, 30);
        assert_eq!(settings.power_alert_w, None);
    }

    fn form<'a>(
        display_name: &'a str,
        timezone: &'a str,
        offline: &'a str,
        power: &'a str,
    ) -> FormValues<'a> {
        FormValues {
            display_name,
            timezone,
            offline_after_minutes: offline,
            power_alert_w: power,
            ..FormValues::default()
        }
    }

    fn round_trip(settings: &Settings) -> Settings {
        let stored: HashMap<String, String> = settings
            .to_stored()
            .into_iter()
            .filter_map(|(k, v)| v.map(|v| (k.to_owned(), v)))
            .collect();
        Settings::from_stored("x", &stored)
    }

    #[test]
    fn form_values_are_validated_and_round_trip() {
        let settings = Settings::from_form(&form(" Acme ", "+01:00", "20", "5000")).unwrap();
        assert_eq!(round_trip(&settings), settings);
        assert_eq!(
            Settings::from_form(&form("", "UTC", "20", "")).unwrap_err(),
            SettingsError::DisplayName
        );
        assert!(matches!(
            Settings::from_form(&form("a", "UTC", "0", "")),
            Err(SettingsError::OfflineAfter(_))
        ));
        assert!(matches!(
            Settings::from_form(&form("a", "UTC", "5", "-1")),
            Err(SettingsError::PowerAlert(_))
        ));
        assert_eq!(
            Settings::from_form(&form("a", "UTC", "5", ""))
                .unwrap()
                .power_alert_w,
            None
        );
    }

    #[test]
    fn the_report_time_and_recipients_are_validated_strictly_and_round_trip() {
        let with = |at: &'static str, to: &'static str| {
            Settings::from_form(&FormValues {
                report_at: at,
                report_recipients: to,
                ..form("a", "UTC", "5", "")
            })
        };
        let settings = with(
            " 07:30 ",
            "ops@example.com, boss@example.com,OPS@example.com",
        )
        .unwrap();
        assert_eq!(settings.report_at_text(), "07:30");
        assert_eq!(
            settings.report_recipients,
            ["ops@example.com", "boss@example.com"]
        );
        assert_eq!(round_trip(&settings), settings);
        let stored: HashMap<_, _> = settings.to_stored().into_iter().collect();
        assert_eq!(stored[REPORT_AT].as_deref(), Some("07:30"));
        assert_eq!(
            stored[REPORT_RECIPIENTS].as_deref(),
            Some("ops@example.com,boss@example.com")
        );

        // No time: no daily report; recipients may stay for reports sent by hand.
        let off = with("", "ops@example.com").unwrap();
        assert_eq!(off.report_at, None);
        assert_eq!(
            off.to_stored().into_iter().find(|(k, _)| *k == REPORT_AT),
            Some((REPORT_AT, None))
        );
        assert_eq!(round_trip(&off), off);
        assert_eq!(
            with("", "").unwrap().report_recipients,
            Vec::<String>::new()
        );

        for bad in [
            "7:00", "07:00:00", "24:00", "07:60", "0700", "seven", "07:0a",
        ] {
            assert_eq!(
                with(bad, "ops@example.com").unwrap_err(),
                SettingsError::ReportAt(bad.to_owned()),
                "{bad}"
            );
        }
        assert_eq!(
            with("00:00", "a@example.com").unwrap().report_at_text(),
            "00:00"
        );
        assert_eq!(
            with("23:59", "a@example.com").unwrap().report_at_text(),
            "23:59"
        );
        assert_eq!(
            with("07:00", "").unwrap_err(),
            SettingsError::ReportWithoutRecipients
        );
        let err = with("07:00", "ops@example.com,nobody").unwrap_err();
        assert!(
            matches!(&err, SettingsError::ReportRecipients(m) if m.contains("\"nobody\"")),
            "{err}"
        );
        assert!(matches!(
            with("07:00", "a@example.com,,b@example.com"),
            Err(SettingsError::ReportRecipients(_))
        ));
        assert!(err.to_string().starts_with("report recipients"));
    }

    #[test]
    fn unreadable_stored_report_settings_mean_no_report() {
        let stored: HashMap<String, String> = [(REPORT_AT, "7 am"), (REPORT_RECIPIENTS, "x@")]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect();
        let settings = Settings::from_stored("acme", &stored);
        assert_eq!(settings.report_at, None);
        assert!(settings.report_recipients.is_empty());
    }
}
