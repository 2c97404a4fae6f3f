//! The tenant's `timezone` setting, as every app reads it: a fixed UTC
//! offset (`UTC`, `GMT`, `Z`, `+HH:MM`, `-HH:MM`, `+HH`, `UTC+HH:MM`, up
//! to ±14:59). Named zones with daylight saving would need the tz database
//! in every binary; the admin panel writes and shows this form, and the
//! notifier bounds alert windows and report days with it.

use chrono::FixedOffset;

/// The offset `raw` names, or `None` if it is not one of the accepted
/// forms.
pub fn parse_utc_offset(raw: &str) -> Option<FixedOffset> {
    let s = raw.trim();
    let s = s
        .strip_prefix("UTC")
        .or_else(|| s.strip_prefix("GMT"))
        .unwrap_or(s);
    if s.is_empty() || s == "Z" {
        return FixedOffset::east_opt(0);
    }
    let (sign, rest) = if let Some(rest) = s.strip_prefix('+') {
        (1, rest)
    } else if let Some(rest) = s.strip_prefix('-') {
        (-1, rest)
    } else {
        return None;
    };
    let (h, m) = rest.split_once(':').unwrap_or((rest, "0"));
    let digits = |v: &str| !v.is_empty() && v.len() <= 2 && v.bytes().all(|b| b.is_ascii_digit());
    if !digits(h) || !digits(m) {
        return None;
    }
    let (h, m): (i32, i32) = (h.parse().ok()?, m.parse().ok()?);
    if h > 14 || m > 59 {
        return None;
    }
    FixedOffset::east_opt(sign * (h * 3600 + m * 60))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets_in_every_accepted_form_parse() {
        let east = |s: i32| FixedOffset::east_opt(s);
        for (raw, want) in [
            ("UTC", east(0)),
            (" Z ", east(0)),
            ("GMT", east(0)),
            ("+01:00", east(3600)),
            ("-05:30", east(-(5 * 3600 + 1800))),
            ("+02", east(7200)),
            ("UTC+14:59", east(14 * 3600 + 59 * 60)),
        ] {
            assert_eq!(parse_utc_offset(raw), want, "{raw}");
        }
        for raw in [
            "Europe/Paris",
            "+15:00",
            "+01:60",
            "+",
            "1:00",
            "+001:00",
            "UTC+1:0x",
        ] {
            assert_eq!(parse_utc_offset(raw), None, "{raw}");
        }
    }
}
