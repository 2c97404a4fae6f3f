//! The tenant's local time: its `timezone` setting, and when its daily
//! report is due.
//!
//! The admin panel stores the timezone as a fixed UTC offset (`UTC`, `Z`,
//! `+HH:MM`, `-HH:MM`, `+HH`, `UTC+HH:MM`; named zones with daylight saving
//! would need the tz database in the binary). [`parse_timezone`] reads the
//! same strings to a [`FixedOffset`] with the panel's own parser
//! (`tenant_schema::local_time`), so an alert window and a report day mean
//! what the panel shows. Everything else in the crate is generic over
//! [`chrono::TimeZone`], so a `chrono_tz::Tz` would drop in if the setting
//! ever names zones.

use chrono::{DateTime, Duration, FixedOffset, NaiveDate, NaiveTime, TimeZone, Utc};

/// Why a timezone or report hour setting was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TimezoneError {
    #[error("timezone {0:?} is not understood: use UTC or an offset such as +01:00 or -05:30")]
    Timezone(String),
    #[error("report time {0:?} is not a local time such as 07:00 (HH:MM, 24 h)")]
    ReportAt(String),
}

/// Reads the `timezone` setting as the admin panel does.
pub fn parse_timezone(raw: &str) -> Result<FixedOffset, TimezoneError> {
    tenant_schema::local_time::parse_utc_offset(raw)
        .ok_or_else(|| TimezoneError::Timezone(raw.to_owned()))
}

/// Reads the `report_at` setting: a local time `HH:MM` (24 h).
pub fn parse_report_at(raw: &str) -> Result<NaiveTime, TimezoneError> {
    let raw_trim = raw.trim();
    let ok = raw_trim.len() == 5 && raw_trim.as_bytes()[2] == b':';
    ok.then(|| NaiveTime::parse_from_str(raw_trim, "%H:%M").ok())
        .flatten()
        .ok_or_else(|| TimezoneError::ReportAt(raw.to_owned()))
}

/// The local calendar day of an instant.
pub fn local_day<Tz: TimeZone>(tz: &Tz, at: DateTime<Utc>) -> NaiveDate {
    at.with_timezone(tz).date_naive()
}

/// The UTC instants `[start, end)` of a local calendar day, as the admin
/// panel's report bounds it. A local midnight that does not exist (a zone
/// with daylight saving, springing forward at midnight) starts the day at
/// the first instant after it.
pub fn day_bounds<Tz: TimeZone>(tz: &Tz, day: NaiveDate) -> (DateTime<Utc>, DateTime<Utc>) {
    let start_of = |d: NaiveDate| {
        let midnight = d.and_hms_opt(0, 0, 0).unwrap_or_default();
        match tz.from_local_datetime(&midnight).earliest() {
            Some(t) => t.with_timezone(&Utc),
            // A gap: an hour later is past any real-world transition.
            None => (midnight + Duration::hours(1)).and_utc(),
        }
    };
    let next = day.succ_opt().unwrap_or(day);
    (start_of(day), start_of(next))
}

/// The day whose report is due at `now`, if any: the previous local day,
/// once the local clock has reached `at` (hour and minute) and that day
/// has not been reported yet (`last_reported` is the newest day already
/// queued).
///
/// A notifier that was down through the hour sends the report when it comes
/// back the same day; if it was down longer, only the newest finished day is
/// reported (no backlog of old reports).
pub fn report_due<Tz: TimeZone>(
    tz: &Tz,
    at: NaiveTime,
    now: DateTime<Utc>,
    last_reported: Option<NaiveDate>,
) -> Option<NaiveDate> {
    let local = now.with_timezone(tz);
    if local.time() < at {
        return None;
    }
    let day = local.date_naive().pred_opt()?;
    match last_reported {
        Some(done) if done >= day => None,
        _ => Some(day),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utc(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    #[test]
    fn timezones_parse_as_the_admin_panel_reads_them() {
        let offset = |raw| parse_timezone(raw).map(|o| o.local_minus_utc());
        assert_eq!(offset("UTC"), Ok(0));
        assert_eq!(offset("Z"), Ok(0));
        assert_eq!(offset(""), Ok(0));
        assert_eq!(offset("+01:00"), Ok(3600));
        assert_eq!(offset("-05:30"), Ok(-(5 * 3600 + 1800)));
        assert_eq!(offset("+02"), Ok(7200));
        assert_eq!(offset("UTC+05:45"), Ok(5 * 3600 + 45 * 60));
        assert_eq!(offset("GMT-3"), Ok(-3 * 3600));
        for bad in [
            "Europe/Paris",
            "+15:00",
            "+01:60",
            "01:00",
            "+1:2:3",
            "+",
            "+001",
        ] {
            assert_eq!(
                parse_timezone(bad),
                Err(TimezoneError::Timezone(bad.into())),
                "{bad}"
            );
        }
    }

    fn hm(h: u32, m: u32) -> NaiveTime {
        NaiveTime::from_hms_opt(h, m, 0).unwrap()
    }

    #[test]
    fn report_times_are_local_hours_and_minutes() {
        assert_eq!(parse_report_at("00:00"), Ok(hm(0, 0)));
        assert_eq!(parse_report_at(" 23:59 "), Ok(hm(23, 59)));
        assert_eq!(parse_report_at("07:30"), Ok(hm(7, 30)));
        for bad in ["24:00", "7:00", "07:60", "7", "", "seven", "07:00:00"] {
            assert!(parse_report_at(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn local_days_start_at_local_midnight() {
        let tz = parse_timezone("+02:00").unwrap();
        let day = NaiveDate::from_ymd_opt(2026, 12, 2).unwrap();
        let (start, end) = day_bounds(&tz, day);
        assert_eq!(start, utc("2026-12-01T22:00:00Z"));
        assert_eq!(end, utc("2026-12-02T22:00:00Z"));
        assert_eq!(local_day(&tz, start), day);
        assert_eq!(local_day(&tz, end - Duration::milliseconds(1)), day);
        assert_eq!(local_day(&tz, end), day.succ_opt().unwrap());
    }

    #[test]
    fn the_report_for_yesterday_is_due_from_the_local_hour_once() {
        let tz = parse_timezone("-05:00").unwrap();
        let yesterday = NaiveDate::from_ymd_opt(2026, 12, 1).unwrap();
        // 06:59 local on Dec 2 is 11:59 UTC: not yet.
        assert_eq!(
            report_due(&tz, hm(7, 0), utc("2026-12-02T11:59:59Z"), None),
            None
        );
        // 07:00 local: due, for Dec 1.
        let at_seven = utc("2026-12-02T12:00:00Z");
        assert_eq!(report_due(&tz, hm(7, 0), at_seven, None), Some(yesterday));
        let day_before = yesterday.pred_opt();
        assert_eq!(
            report_due(&tz, hm(7, 0), at_seven, day_before),
            Some(yesterday)
        );
        // Once queued, not again that day, even late in the evening.
        assert_eq!(
            report_due(&tz, hm(7, 0), utc("2026-12-03T04:59:59Z"), Some(yesterday)),
            None
        );
        // The next local day it is due again, for Dec 2.
        assert_eq!(
            report_due(&tz, hm(7, 0), utc("2026-12-03T12:00:00Z"), Some(yesterday)),
            yesterday.succ_opt()
        );
        // 07:30: not at 07:29, due at 07:30.
        assert_eq!(
            report_due(&tz, hm(7, 30), utc("2026-12-02T12:29:59Z"), None),
            None
        );
        assert_eq!(
            report_due(&tz, hm(7, 30), utc("2026-12-02T12:30:00Z"), None),
            Some(yesterday)
        );
        // Hour 0: due from local midnight.
        assert_eq!(
            report_due(&tz, hm(0, 0), utc("2026-12-02T05:00:00Z"), None),
            Some(yesterday)
        );
    }
}
