//! The provider's customizations, typed: display name, timezone and alert
//! thresholds, read from and written to the `settings` key/value table.
//!
//! Stored values are parsed leniently (a value that no longer parses falls
//! back to its default, so a bad row never takes the panel down); values
//! from the settings form are validated strictly, with a message naming the
//! field.

use std::collections::HashMap;

use chrono::{DateTime, FixedOffset, NaiveDate, Utc};

pub use tenant_schema::settings::{DISPLAY_NAME, OFFLINE_AFTER_MINUTES, POWER_ALERT_W, TIMEZONE};

/// The keys this module owns in the `settings` table. Other keys (the
/// schema version) are never written by the panel.
pub const KEYS: &[&str] = &[DISPLAY_NAME, TIMEZONE, OFFLINE_AFTER_MINUTES, POWER_ALERT_W];

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
}

impl Settings {
    pub fn defaults(tenant_id: &str) -> Self {
        Settings {
            display_name: tenant_id.to_owned(),
            timezone: Timezone::UTC,
            offline_after_minutes: DEFAULT_OFFLINE_AFTER_MINUTES,
            power_alert_w: None,
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
        settings
    }

    /// Validates the settings form.
    pub fn from_form(
        display_name: &str,
        timezone: &str,
        offline_after_minutes: &str,
        power_alert_w: &str,
    ) -> Result<Self, SettingsError> {
        let display_name = display_name.trim();
        if display_name.is_empty()
            || display_name.chars().count() > MAX_DISPLAY_NAME
            || display_name.chars().any(char::is_control)
        {
            return Err(SettingsError::DisplayName);
        }
        Ok(Settings {
            display_name: display_name.to_owned(),
            timezone: Timezone::parse(timezone)?,
            offline_after_minutes: parse_offline_after(offline_after_minutes)?,
            power_alert_w: parse_power_alert(power_alert_w)?,
        })
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
        ]
    }
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

    #[test]
    fn form_values_are_validated_and_round_trip() {
        let settings = Settings::from_form(" Acme ", "+01:00", "20", "5000").unwrap();
        let stored: HashMap<String, String> = settings
            .to_stored()
            .into_iter()
            .filter_map(|(k, v)| v.map(|v| (k.to_owned(), v)))
            .collect();
        assert_eq!(Settings::from_stored("x", &stored), settings);
        assert_eq!(
            Settings::from_form("", "UTC", "20", "").unwrap_err(),
            SettingsError::DisplayName
        );
        assert!(matches!(
            Settings::from_form("a", "UTC", "0", ""),
            Err(SettingsError::OfflineAfter(_))
        ));
        assert!(matches!(
            Settings::from_form("a", "UTC", "5", "-1"),
            Err(SettingsError::PowerAlert(_))
        ));
        assert_eq!(
            Settings::from_form("a", "UTC", "5", "")
                .unwrap()
                .power_alert_w,
            None
        );
    }
}
