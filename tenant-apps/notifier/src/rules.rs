//! Alert rules: what a provider asks to be warned about, validated once at
//! the edge into types, and their stored text.
//!
//! A rule is one of three kinds:
//!
//! - `silent`: a gateway sent no frame for more than a duration;
//! - `below` / `above`: a named value (`power`) is below or above a
//!   threshold for a duration, optionally only between two local times
//!   ([`LocalWindow`], which may cross midnight: `22:00-06:00`).
//!
//! A rule applies to one gateway or to all of them, and has its own list of
//! recipients. This module parses what the CLI will take (`--for 1h30m`,
//! `--between 08:00-18:00`, `--to a@example.com,b@example.com`) and encodes
//! a rule as versioned JSON for the `notifier` table ([`AlertRule::encode`],
//! [`AlertRule::decode`]). Decoding validates exactly what parsing does, so
//! a stored row that no longer passes is an error naming the rule, never a
//! rule with a default slipped in.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use chrono::{DateTime, NaiveTime, Timelike, Utc};
use lettre::Address;
use rand::Rng;
use serde::{Deserialize, Serialize};
use tenant_schema::model::GatewayId;

/// The shortest duration a rule may wait for.
pub const MIN_FOR: Duration = Duration::from_secs(1);
/// The longest duration a rule may wait for: 30 days.
pub const MAX_FOR: Duration = Duration::from_secs(30 * 24 * 3600);
/// The most recipients one rule may have.
pub const MAX_RECIPIENTS: usize = 50;
/// The longest value name, as the ingest protocol bounds labels.
pub const MAX_VALUE_NAME: usize = 64;
/// The version of the stored text [`AlertRule::encode`] writes.
pub const ENCODING_VERSION: u32 = 1;

/// Why a rule, or one of its parts, was refused.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum RuleError {
    #[error("duration {0:?} is not understood: use a number and a unit, largest first, such as 90s, 10m, 2h, 1h30m or 1d")]
    Duration(String),
    #[error("duration {raw:?} is out of range: it must be from 1s to 30d")]
    DurationRange { raw: String },
    #[error("window {0:?} is not understood: use HH:MM-HH:MM, such as 08:00-18:00 or 22:00-06:00")]
    Window(String),
    #[error("window {0:?} is empty: its start and end are the same time")]
    EmptyWindow(String),
    #[error("recipient {0:?} is not an email address")]
    Recipient(String),
    #[error("the recipient list has an empty entry")]
    EmptyRecipient,
    #[error("a rule needs at least one recipient")]
    NoRecipients,
    #[error("a rule may have at most {MAX_RECIPIENTS} recipients, not {0}")]
    TooManyRecipients(usize),
    #[error(
        "value name {0:?} must be 1 to {MAX_VALUE_NAME} characters without control characters"
    )]
    ValueName(String),
    #[error("threshold must be a finite number")]
    Threshold,
    #[error("gateway id {0:?} is invalid: 1 to 64 letters, digits, '.', '_' or '-'")]
    Gateway(String),
    #[error("rule id {0:?} is invalid: 1 to 32 lowercase letters or digits")]
    RuleId(String),
    #[error("stored rule is not valid JSON: {0}")]
    Decode(String),
    #[error("stored rule {id} is invalid: {source}")]
    Stored {
        id: String,
        #[source]
        source: Box<RuleError>,
    },
    #[error(
        "stored rule has encoding version {0}, this notifier reads version {ENCODING_VERSION}"
    )]
    Version(u32),
}

/// A rule's id: short, random, URL-safe and safe on a command line (no
/// leading `-`): lowercase letters and digits.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct RuleId(String);

impl RuleId {
    /// The length of generated ids: 10 characters of 36, about 51 bits.
    pub const LEN: usize = 10;
    const MAX_LEN: usize = 32;
    const ALPHABET: &'static [u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";

    /// A fresh id. The generator is passed in so tests can fix it.
    pub fn random(rng: &mut impl Rng) -> Self {
        let id = (0..Self::LEN)
            .map(|_| char::from(Self::ALPHABET[rng.gen_range(0..Self::ALPHABET.len())]))
            .collect();
        Self(id)
    }

    pub fn parse(raw: &str) -> Result<Self, RuleError> {
        let ok = !raw.is_empty()
            && raw.len() <= Self::MAX_LEN
            && raw
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
        if ok {
            Ok(Self(raw.to_owned()))
        } else {
            Err(RuleError::RuleId(raw.to_owned()))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for RuleId {
    type Error = RuleError;
    fn try_from(raw: String) -> Result<Self, RuleError> {
        Self::parse(&raw)
    }
}

impl From<RuleId> for String {
    fn from(id: RuleId) -> String {
        id.0
    }
}

impl fmt::Display for RuleId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Parses `90s`, `10m`, `2h`, `1h30m`, `1d`: one or more numbers each
/// followed by a unit (`d`, `h`, `m`, `s`), units largest first and each at
/// most once, no spaces. The total must be within [`MIN_FOR`]..=[`MAX_FOR`].
pub fn parse_duration(raw: &str) -> Result<Duration, RuleError> {
    let bad = || RuleError::Duration(raw.to_owned());
    const UNITS: [(u8, u64); 4] = [(b'd', 86_400), (b'h', 3_600), (b'm', 60), (b's', 1)];
    let bytes = raw.as_bytes();
    if bytes.is_empty() {
        return Err(bad());
    }
    let mut total: u64 = 0;
    // Index into UNITS of the next unit allowed: units must strictly decrease.
    let mut next_unit = 0;
    let mut i = 0;
    while i < bytes.len() {
        let start = i;
        while i < bytes.len() && bytes[i].is_ascii_digit() {
            i += 1;
        }
        // At most 7 digits per part keeps the arithmetic far from overflow;
        // anything longer is out of range anyway.
        if i == start || i - start > 7 || i == bytes.len() {
            return Err(bad());
        }
        let number: u64 = raw[start..i].parse().map_err(|_| bad())?;
        let position = UNITS[next_unit..]
            .iter()
            .position(|(unit, _)| *unit == bytes[i])
            .ok_or_else(bad)?;
        let (_, seconds) = UNITS[next_unit + position];
        next_unit += position + 1;
        total += number * seconds;
        i += 1;
    }
    let duration = Duration::from_secs(total);
    if !(MIN_FOR..=MAX_FOR).contains(&duration) {
        return Err(RuleError::DurationRange {
            raw: raw.to_owned(),
        });
    }
    Ok(duration)
}

/// The canonical text of a duration, largest unit first: `1h30m`, `90s`
/// prints as `1m30s`. [`parse_duration`] reads it back to the same value
/// (sub-second parts are dropped; rules never have any).
pub fn format_duration(duration: Duration) -> String {
    let mut left = duration.as_secs();
    if left == 0 {
        return "0s".to_owned();
    }
    let mut out = String::new();
    for (unit, seconds) in [('d', 86_400), ('h', 3_600), ('m', 60), ('s', 1)] {
        let n = left / seconds;
        if n > 0 {
            out.push_str(&n.to_string());
            out.push(unit);
            left %= seconds;
        }
    }
    out
}

/// Durations stored as their canonical text, validated on the way in.
mod duration_text {
    use super::*;
    use serde::{Deserializer, Serializer};

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format_duration(*d))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let raw = String::deserialize(d)?;
        parse_duration(&raw).map_err(serde::de::Error::custom)
    }
}

/// A span of local time of day, `[start, end)` at minute precision. When
/// `end` is before `start` the window crosses midnight: `22:00-06:00` holds
/// from 22:00 to 06:00 the next morning.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct LocalWindow {
    start: NaiveTime,
    end: NaiveTime,
}

impl LocalWindow {
    /// Parses `HH:MM-HH:MM` (24 h clock, `24:00` accepted as an end for
    /// midnight). Equal start and end are refused: an empty window would
    /// silence the rule forever, and "all day" is no window at all.
    pub fn parse(raw: &str) -> Result<Self, RuleError> {
        let bad = || RuleError::Window(raw.to_owned());
        let (start, end) = raw.trim().split_once('-').ok_or_else(bad)?;
        let start = parse_clock(start, false).ok_or_else(bad)?;
        let end = parse_clock(end, true).ok_or_else(bad)?;
        if start == end {
            return Err(RuleError::EmptyWindow(raw.to_owned()));
        }
        Ok(Self { start, end })
    }

    pub fn start(&self) -> NaiveTime {
        self.start
    }

    pub fn end(&self) -> NaiveTime {
        self.end
    }

    /// Whether the window crosses midnight.
    pub fn crosses_midnight(&self) -> bool {
        self.end < self.start
    }

    /// Whether a local time of day is inside the window (start included,
    /// end excluded).
    pub fn contains(&self, time: NaiveTime) -> bool {
        if self.crosses_midnight() {
            time >= self.start || time < self.end
        } else {
            time >= self.start && time < self.end
        }
    }
}

/// `HH:MM`, two digits each; `24:00` only as an end (midnight).
fn parse_clock(raw: &str, is_end: bool) -> Option<NaiveTime> {
    let (h, m) = raw.split_once(':')?;
    let two_digits = |v: &str| v.len() == 2 && v.bytes().all(|b| b.is_ascii_digit());
    if !two_digits(h) || !two_digits(m) {
        return None;
    }
    let (h, m): (u32, u32) = (h.parse().ok()?, m.parse().ok()?);
    if is_end && h == 24 && m == 0 {
        return NaiveTime::from_hms_opt(0, 0, 0);
    }
    NaiveTime::from_hms_opt(h, m, 0)
}

impl fmt::Display for LocalWindow {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:02}:{:02}-{:02}:{:02}",
            self.start.hour(),
            self.start.minute(),
            self.end.hour(),
            self.end.minute()
        )
    }
}

impl TryFrom<String> for LocalWindow {
    type Error = RuleError;
    fn try_from(raw: String) -> Result<Self, RuleError> {
        Self::parse(&raw)
    }
}

impl From<LocalWindow> for String {
    fn from(w: LocalWindow) -> String {
        w.to_string()
    }
}

impl FromStr for LocalWindow {
    type Err = RuleError;
    fn from_str(s: &str) -> Result<Self, RuleError> {
        Self::parse(s)
    }
}

/// Parses `a@example.com,b@example.com`: comma-separated addresses, spaces
/// around them ignored, each checked by lettre's address parser. Repeats
/// (compared case-insensitively) are kept once, in first-seen order.
pub fn parse_recipients(raw: &str) -> Result<Vec<Address>, RuleError> {
    let mut out: Vec<Address> = Vec::new();
    for part in raw.split(',') {
        let part = part.trim();
        if part.is_empty() {
            return Err(RuleError::EmptyRecipient);
        }
        let address: Address = part
            .parse()
            .map_err(|_| RuleError::Recipient(part.to_owned()))?;
        let lower = address.to_string().to_ascii_lowercase();
        if !out
            .iter()
            .any(|a| a.to_string().to_ascii_lowercase() == lower)
        {
            out.push(address);
        }
    }
    check_recipients(&out)?;
    Ok(out)
}

fn check_recipients(recipients: &[Address]) -> Result<(), RuleError> {
    match recipients.len() {
        0 => Err(RuleError::NoRecipients),
        n if n > MAX_RECIPIENTS => Err(RuleError::TooManyRecipients(n)),
        _ => Ok(()),
    }
}

/// Checks a value name as the ingest protocol bounds reading labels.
pub fn check_value_name(name: &str) -> Result<(), RuleError> {
    let n = name.chars().count();
    if n == 0 || n > MAX_VALUE_NAME || name.chars().any(char::is_control) {
        return Err(RuleError::ValueName(name.to_owned()));
    }
    Ok(())
}

/// What a rule watches for.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum RuleKind {
    /// No frame from the gateway for more than `for_`.
    Silent {
        #[serde(rename = "for", with = "duration_text")]
        for_: Duration,
    },
    /// The newest `value` below `threshold` continuously for `for_`.
    Below {
        value: String,
        threshold: f64,
        #[serde(rename = "for", with = "duration_text")]
        for_: Duration,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        between: Option<LocalWindow>,
    },
    /// The newest `value` above `threshold` continuously for `for_`.
    Above {
        value: String,
        threshold: f64,
        #[serde(rename = "for", with = "duration_text")]
        for_: Duration,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        between: Option<LocalWindow>,
    },
}

/// Which side of its threshold a value rule fires on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Comparison {
    Below,
    Above,
}

impl Comparison {
    /// Whether `value` is beyond `threshold` (strictly: a value equal to the
    /// threshold is not below it nor above it).
    pub fn holds(self, value: f64, threshold: f64) -> bool {
        match self {
            Comparison::Below => value < threshold,
            Comparison::Above => value > threshold,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Comparison::Below => "below",
            Comparison::Above => "above",
        }
    }
}

/// A value rule's condition, whichever side it is on.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ValueCondition<'a> {
    pub comparison: Comparison,
    pub value: &'a str,
    pub threshold: f64,
    pub for_: Duration,
    pub between: Option<LocalWindow>,
}

impl RuleKind {
    /// How long the condition must hold before the rule fires.
    pub fn for_(&self) -> Duration {
        match self {
            RuleKind::Silent { for_ } => *for_,
            RuleKind::Below { for_, .. } | RuleKind::Above { for_, .. } => *for_,
        }
    }

    /// The condition of a value rule; `None` for a silent rule.
    pub fn value_condition(&self) -> Option<ValueCondition<'_>> {
        let (comparison, value, threshold, for_, between) = match self {
            RuleKind::Silent { .. } => return None,
            RuleKind::Below {
                value,
                threshold,
                for_,
                between,
            } => (Comparison::Below, value, threshold, for_, between),
            RuleKind::Above {
                value,
                threshold,
                for_,
                between,
            } => (Comparison::Above, value, threshold, for_, between),
        };
        Some(ValueCondition {
            comparison,
            value,
            threshold: *threshold,
            for_: *for_,
            between: *between,
        })
    }

    /// What the rule watches, in words: `silent for 10m`, `power below 5
    /// for 15m between 08:00-18:00`.
    pub fn describe(&self) -> String {
        match self.value_condition() {
            None => format!("silent for {}", format_duration(self.for_())),
            Some(c) => {
                let mut text = format!(
                    "{} {} {} for {}",
                    c.value,
                    c.comparison.as_str(),
                    c.threshold,
                    format_duration(c.for_)
                );
                if let Some(window) = c.between {
                    text.push_str(&format!(" between {window}"));
                }
                text
            }
        }
    }

    /// The words of a subject line: `silent for 10m`, `power below 5`.
    pub fn headline(&self) -> String {
        match self.value_condition() {
            None => format!("silent for {}", format_duration(self.for_())),
            Some(c) => format!("{} {} {}", c.value, c.comparison.as_str(), c.threshold),
        }
    }

    fn validate(&self) -> Result<(), RuleError> {
        let for_ = self.for_();
        if !(MIN_FOR..=MAX_FOR).contains(&for_) {
            return Err(RuleError::DurationRange {
                raw: format_duration(for_),
            });
        }
        if let Some(c) = self.value_condition() {
            check_value_name(c.value)?;
            if !c.threshold.is_finite() {
                return Err(RuleError::Threshold);
            }
        }
        Ok(())
    }
}

/// One alert rule of a tenant.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AlertRule {
    pub id: RuleId,
    #[serde(flatten)]
    pub kind: RuleKind,
    /// The one gateway the rule applies to, or `None` for all of them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway: Option<String>,
    pub recipients: Vec<Address>,
    /// When the rule was made: a gateway never seen counts as silent from
    /// then.
    pub created_at: DateTime<Utc>,
}

/// The stored text: the rule with its encoding version.
#[derive(Serialize, Deserialize)]
struct Stored<R> {
    v: u32,
    #[serde(flatten)]
    rule: R,
}

impl AlertRule {
    /// A rule, checked: the duration in range, a value rule's name and
    /// threshold, the gateway id, at least one recipient.
    pub fn new(
        id: RuleId,
        kind: RuleKind,
        gateway: Option<String>,
        recipients: Vec<Address>,
        created_at: DateTime<Utc>,
    ) -> Result<Self, RuleError> {
        let rule = Self {
            id,
            kind,
            gateway,
            recipients,
            created_at,
        };
        rule.validate()?;
        Ok(rule)
    }

    fn validate(&self) -> Result<(), RuleError> {
        self.kind.validate()?;
        if let Some(gateway) = &self.gateway {
            GatewayId::parse(gateway).map_err(|_| RuleError::Gateway(gateway.clone()))?;
        }
        check_recipients(&self.recipients)
    }

    /// Whether the rule applies to a gateway.
    pub fn applies_to(&self, gateway_id: &str) -> bool {
        self.gateway.as_deref().is_none_or(|g| g == gateway_id)
    }

    /// The stored text: one line of JSON with the encoding version, `v`.
    pub fn encode(&self) -> String {
        // Serializing plain data with string keys cannot fail.
        serde_json::to_string(&Stored {
            v: ENCODING_VERSION,
            rule: self,
        })
        .unwrap_or_default()
    }

    /// Reads stored text back, validated as [`AlertRule::new`] validates.
    pub fn decode(text: &str) -> Result<Self, RuleError> {
        #[derive(Deserialize)]
        struct Version {
            v: u32,
        }
        let version: Version =
            serde_json::from_str(text).map_err(|e| RuleError::Decode(e.to_string()))?;
        if version.v != ENCODING_VERSION {
            return Err(RuleError::Version(version.v));
        }
        let stored: Stored<AlertRule> =
            serde_json::from_str(text).map_err(|e| RuleError::Decode(e.to_string()))?;
        let rule = stored.rule;
        rule.validate().map_err(|e| RuleError::Stored {
            id: rule.id.to_string(),
            source: Box::new(e),
        })?;
        Ok(rule)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use rand::SeedableRng;

    fn secs(s: u64) -> Duration {
        Duration::from_secs(s)
    }

    fn created() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 12, 1, 8, 0, 0).unwrap()
    }

    fn below_rule() -> AlertRule {
        AlertRule::new(
            RuleId::parse("abc123").unwrap(),
            RuleKind::Below {
                value: "power".into(),
                threshold: 5.0,
                for_: secs(900),
                between: Some(LocalWindow::parse("08:00-18:00").unwrap()),
            },
            Some("gw-1".into()),
            parse_recipients("a@example.com, b@example.com").unwrap(),
            created(),
        )
        .unwrap()
    }

    #[test]
    fn durations_parse_in_each_unit_and_combined() {
        assert_eq!(parse_duration("90s"), Ok(secs(90)));
        assert_eq!(parse_duration("10m"), Ok(secs(600)));
        assert_eq!(parse_duration("2h"), Ok(secs(7200)));
        assert_eq!(parse_duration("1h30m"), Ok(secs(5400)));
        assert_eq!(parse_duration("1d2h3m4s"), Ok(secs(93_784)));
        assert_eq!(parse_duration("30d"), Ok(MAX_FOR));
        assert_eq!(parse_duration("1s"), Ok(MIN_FOR));
    }

    #[test]
    fn durations_refuse_bad_syntax_with_the_input_named() {
        for bad in [
            "",
            "10",
            "m",
            "10x",
            "1m1h",
            "1h1h",
            "1h 30m",
            " 5m",
            "-5m",
            "1.5h",
            "5M",
            "99999999s",
        ] {
            match parse_duration(bad) {
                Err(RuleError::Duration(raw)) => assert_eq!(raw, bad),
                other => panic!("{bad:?}: {other:?}"),
            }
        }
    }

    #[test]
    fn durations_outside_one_second_to_thirty_days_are_refused() {
        for bad in ["0s", "0m", "30d1s", "31d", "721h"] {
            assert!(
                matches!(parse_duration(bad), Err(RuleError::DurationRange { .. })),
                "{bad}"
            );
        }
        assert!(parse_duration("720h").is_ok());
    }

    #[test]
    fn durations_print_canonically_and_read_back() {
        assert_eq!(format_duration(secs(90)), "1m30s");
        assert_eq!(format_duration(secs(5400)), "1h30m");
        assert_eq!(format_duration(secs(86_400)), "1d");
        assert_eq!(format_duration(secs(93_784)), "1d2h3m4s");
        for s in [1, 59, 60, 61, 3599, 3600, 86_399, 86_401, 30 * 86_400] {
            assert_eq!(parse_duration(&format_duration(secs(s))), Ok(secs(s)));
        }
    }

    #[test]
    fn windows_parse_and_contain_their_start_not_their_end() {
        let day = LocalWindow::parse("08:00-18:00").unwrap();
        assert!(!day.crosses_midnight());
        let t = |h, m| NaiveTime::from_hms_opt(h, m, 0).unwrap();
        assert!(!day.contains(t(7, 59)));
        assert!(day.contains(t(8, 0)));
        assert!(day.contains(t(17, 59)));
        assert!(!day.contains(t(18, 0)));
        assert_eq!(day.to_string(), "08:00-18:00");
    }

    #[test]
    fn windows_may_cross_midnight() {
        let night = LocalWindow::parse("22:00-06:00").unwrap();
        assert!(night.crosses_midnight());
        let t = |h, m| NaiveTime::from_hms_opt(h, m, 0).unwrap();
        assert!(night.contains(t(22, 0)));
        assert!(night.contains(t(23, 59)));
        assert!(night.contains(t(0, 0)));
        assert!(night.contains(t(5, 59)));
        assert!(!night.contains(t(6, 0)));
        assert!(!night.contains(t(12, 0)));
        assert!(!night.contains(t(21, 59)));
        let to_midnight = LocalWindow::parse("18:00-24:00").unwrap();
        assert!(to_midnight.contains(t(23, 59)));
        assert!(!to_midnight.contains(t(0, 0)));
        assert_eq!(to_midnight.to_string(), "18:00-00:00");
        assert_eq!(
            LocalWindow::parse(&to_midnight.to_string()),
            Ok(to_midnight)
        );
    }

    #[test]
    fn windows_refuse_bad_and_empty_spans() {
        for bad in [
            "",
            "08:00",
            "8:00-18:00",
            "08:00-25:00",
            "08:60-09:00",
            "24:00-06:00",
            "08:00_18:00",
            "08-18",
        ] {
            assert!(
                matches!(LocalWindow::parse(bad), Err(RuleError::Window(_))),
                "{bad}"
            );
        }
        assert_eq!(
            LocalWindow::parse("08:00-08:00"),
            Err(RuleError::EmptyWindow("08:00-08:00".into()))
        );
    }

    #[test]
    fn recipients_are_validated_and_deduplicated() {
        let list = parse_recipients(" a@example.com,b@example.com , A@example.com").unwrap();
        let list: Vec<String> = list.iter().map(|a| a.to_string()).collect();
        assert_eq!(list, ["a@example.com", "b@example.com"]);
        assert_eq!(
            parse_recipients("a@example.com,not-an-address"),
            Err(RuleError::Recipient("not-an-address".into()))
        );
        assert_eq!(
            parse_recipients("a@example.com,,b@example.com"),
            Err(RuleError::EmptyRecipient)
        );
        assert_eq!(parse_recipients(""), Err(RuleError::EmptyRecipient));
        assert!(matches!(
            parse_recipients("Name <a@example.com>"),
            Err(RuleError::Recipient(_))
        ));
        let many: Vec<String> = (0..51).map(|i| format!("u{i}@example.com")).collect();
        assert_eq!(
            parse_recipients(&many.join(",")),
            Err(RuleError::TooManyRecipients(51))
        );
    }

    #[test]
    fn rule_ids_are_short_url_safe_and_random() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        let a = RuleId::random(&mut rng);
        let b = RuleId::random(&mut rng);
        assert_ne!(a, b);
        assert_eq!(a.as_str().len(), RuleId::LEN);
        assert_eq!(RuleId::parse(a.as_str()), Ok(a.clone()));
        for bad in ["", "-abc", "ABC", "a/b", &"a".repeat(33)] {
            assert!(RuleId::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn rules_round_trip_through_their_stored_text() {
        let silent = AlertRule::new(
            RuleId::parse("s1").unwrap(),
            RuleKind::Silent { for_: secs(600) },
            None,
            parse_recipients("ops@example.com").unwrap(),
            created(),
        )
        .unwrap();
        let above = AlertRule::new(
            RuleId::parse("a1").unwrap(),
            RuleKind::Above {
                value: "temperature".into(),
                threshold: -2.5,
                for_: secs(5400),
                between: Some(LocalWindow::parse("22:00-06:00").unwrap()),
            },
            None,
            parse_recipients("ops@example.com").unwrap(),
            created(),
        )
        .unwrap();
        for rule in [silent, above, below_rule()] {
            let text = rule.encode();
            assert!(!text.contains('\n'));
            assert_eq!(AlertRule::decode(&text), Ok(rule.clone()), "{text}");
        }
    }

    #[test]
    fn the_stored_text_is_stable() {
        // The format is a contract with rows already written: change it only
        // with a new ENCODING_VERSION.
        assert_eq!(
            below_rule().encode(),
            r#"{"v":1,"id":"abc123","kind":"below","value":"power","threshold":5.0,"for":"15m","between":"08:00-18:00","gateway":"gw-1","recipients":["a@example.com","b@example.com"],"created_at":"2026-12-01T08:00:00Z"}"#
        );
    }

    #[test]
    fn stored_rules_are_validated_like_new_ones() {
        let good = below_rule().encode();
        let cases = [
            (
                good.replace(r#""for":"15m""#, r#""for":"0s""#),
                "out of range",
            ),
            (good.replace(r#""gw-1""#, r#""gw 1""#), "gateway id"),
            (good.replace(r#""power""#, r#""""#), "value name"),
            (good.replace(r#""08:00-18:00""#, r#""08:00""#), "window"),
            (
                good.replace(r#""a@example.com","b@example.com""#, ""),
                "at least one recipient",
            ),
            (good.replace("a@example.com", "nobody"), "Missing domain"),
            (
                good.replace(r#""kind":"below""#, r#""kind":"between""#),
                "variant",
            ),
            (good.replace(r#""v":1"#, r#""v":2"#), "version 2"),
            ("not json".to_owned(), "not valid JSON"),
        ];
        for (text, expected) in cases {
            let err = AlertRule::decode(&text).unwrap_err().to_string();
            assert!(err.contains(expected), "{text}: {err}");
        }
    }

    #[test]
    fn new_refuses_what_the_parsers_would() {
        let recipients = parse_recipients("a@example.com").unwrap();
        let make = |kind, gateway: Option<&str>, recipients: Vec<Address>| {
            AlertRule::new(
                RuleId::parse("x").unwrap(),
                kind,
                gateway.map(str::to_owned),
                recipients,
                created(),
            )
        };
        let below = |value: &str, threshold| RuleKind::Below {
            value: value.into(),
            threshold,
            for_: secs(60),
            between: None,
        };
        assert_eq!(
            make(below("power", f64::NAN), None, recipients.clone()),
            Err(RuleError::Threshold)
        );
        assert_eq!(
            make(below("po\nwer", 1.0), None, recipients.clone()),
            Err(RuleError::ValueName("po\nwer".into()))
        );
        assert_eq!(
            make(below("power", 1.0), Some("gw/1"), recipients.clone()),
            Err(RuleError::Gateway("gw/1".into()))
        );
        assert_eq!(
            make(below("power", 1.0), None, vec![]),
            Err(RuleError::NoRecipients)
        );
        assert!(matches!(
            make(RuleKind::Silent { for_: secs(0) }, None, recipients),
            Err(RuleError::DurationRange { .. })
        ));
    }

    #[test]
    fn rules_describe_themselves_and_their_scope() {
        let rule = below_rule();
        assert_eq!(
            rule.kind.describe(),
            "power below 5 for 15m between 08:00-18:00"
        );
        assert_eq!(rule.kind.headline(), "power below 5");
        assert_eq!(
            RuleKind::Silent { for_: secs(600) }.describe(),
            "silent for 10m"
        );
        assert!(rule.applies_to("gw-1"));
        assert!(!rule.applies_to("gw-2"));
        let all = AlertRule {
            gateway: None,
            ..rule
        };
        assert!(all.applies_to("gw-2"));
    }
}
