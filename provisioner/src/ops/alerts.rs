//! `alert add|list|remove` and `report schedule|send`: a tenant's alert
//! rules and daily report, through a superuser session on its keyspace
//! ([`crate::cql::alerts`]), under the tenant's lock as the gateway calls
//! are. The requests are raw text (the CLI's flags, the API's bodies) and
//! are turned into the notifier's own types here, once, with its parsers
//! (`notifier::rules`), so a rule added here is the rule the panel edits
//! and the notifier evaluates.
//!
//! `report send` writes a report request for the tenant's notifier, which
//! turns it into an outbox mail within seconds; the call then follows that
//! mail (polling, with a deadline) until the relay took it, refused it, or
//! the deadline passed with it still queued.

use std::time::Duration;

use chrono::{DateTime, NaiveDate, NaiveTime, SecondsFormat, Utc};
use notifier::evaluate::PairState;
use notifier::outbox::{MailKey, OutboxStatus};
use notifier::rules::{
    format_duration, parse_duration, parse_recipients, AlertRule, LocalWindow, RuleId, RuleKind,
};
use notifier::store::{ReportRequest, StoredState};
use serde::{Deserialize, Serialize};
use tenant_schema::settings;

use super::Provisioner;
use crate::cql::alerts;
use crate::domain::ProviderId;
use crate::error::{Error, Result};

/// How long `report send` follows its mail by default, and at most.
pub const REPORT_WAIT: Duration = Duration::from_secs(60);
pub const REPORT_WAIT_MAX: Duration = Duration::from_secs(300);
/// How often it looks.
const REPORT_POLL: Duration = Duration::from_millis(500);

/// What `alert add` makes: a rule kind as the CLI names it.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AlertKind {
    /// A gateway sent nothing for `for`.
    Silent,
    /// `value` below `threshold` for `for`.
    Below,
    /// `value` above `threshold` for `for`.
    Above,
}

/// A rule as asked for: `alert add <provider> silent --for 10m --to a@x`
/// or `below|above --value power --threshold 5 --for 15m [--between
/// 08:00-18:00]`, `[--gateway G]`.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlertRequest {
    pub kind: AlertKind,
    /// How long the condition must hold: `90s`, `10m`, `1h30m`, `1d`.
    #[serde(rename = "for")]
    pub for_: String,
    /// The reading's value name (`below`/`above` only).
    #[serde(default)]
    pub value: Option<String>,
    /// `below`/`above` only.
    #[serde(default)]
    pub threshold: Option<f64>,
    /// Local hours `HH:MM-HH:MM` (`below`/`above` only).
    #[serde(default)]
    pub between: Option<String>,
    /// One gateway (default: all of them).
    #[serde(default)]
    pub gateway: Option<String>,
    /// Recipients, comma-separated.
    pub to: String,
}

impl AlertRequest {
    /// The rule this request makes, with a fresh id; one clear error for
    /// what does not parse.
    pub fn rule(&self, now: DateTime<Utc>) -> Result<AlertRule> {
        let for_ = parse_duration(self.for_.trim())?;
        let kind = match self.kind {
            AlertKind::Silent => {
                if self.value.is_some() || self.threshold.is_some() || self.between.is_some() {
                    return Err(Error::Usage(
                        "a silent rule takes no --value, --threshold or --between; those are for below and above rules"
                            .into(),
                    ));
                }
                RuleKind::Silent { for_ }
            }
            AlertKind::Below | AlertKind::Above => {
                let name = if self.kind == AlertKind::Below {
                    "below"
                } else {
                    "above"
                };
                let value = self.value.clone().ok_or_else(|| {
                    Error::Usage(format!(
                        "a {name} rule needs --value, the reading's value name (such as power)"
                    ))
                })?;
                let threshold = self.threshold.ok_or_else(|| {
                    Error::Usage(format!("a {name} rule needs --threshold, a number"))
                })?;
                let between = self
                    .between
                    .as_deref()
                    .map(LocalWindow::parse)
                    .transpose()?;
                match self.kind {
                    AlertKind::Below => RuleKind::Below {
                        value,
                        threshold,
                        for_,
                        between,
                    },
                    _ => RuleKind::Above {
                        value,
                        threshold,
                        for_,
                        between,
                    },
                }
            }
        };
        let recipients = parse_recipients(&self.to)?;
        let id = RuleId::random(&mut rand::thread_rng());
        Ok(AlertRule::new(
            id,
            kind,
            self.gateway.clone(),
            recipients,
            now,
        )?)
    }
}

/// One rule as `alert add` and `alert list` show it.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AlertRuleInfo {
    pub id: String,
    pub kind: AlertKind,
    /// `below`/`above`: the value name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub threshold: Option<f64>,
    /// The duration, in its canonical text (`1h30m`).
    #[serde(rename = "for")]
    pub for_: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub between: Option<String>,
    /// `null`: every gateway of the tenant.
    pub gateway: Option<String>,
    pub recipients: Vec<String>,
    pub created_at: String,
    /// The rule in words: `power below 5 for 15m between 08:00-18:00`.
    pub description: String,
}

fn time(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

impl From<&AlertRule> for AlertRuleInfo {
    fn from(rule: &AlertRule) -> Self {
        let condition = rule.kind.value_condition();
        AlertRuleInfo {
            id: rule.id.to_string(),
            kind: match rule.kind {
                RuleKind::Silent { .. } => AlertKind::Silent,
                RuleKind::Below { .. } => AlertKind::Below,
                RuleKind::Above { .. } => AlertKind::Above,
            },
            value: condition.map(|c| c.value.to_owned()),
            threshold: condition.map(|c| c.threshold),
            for_: format_duration(rule.kind.for_()),
            between: condition.and_then(|c| c.between).map(|w| w.to_string()),
            gateway: rule.gateway.clone(),
            recipients: rule.recipients.iter().map(ToString::to_string).collect(),
            created_at: time(rule.created_at),
            description: rule.kind.describe(),
        }
    }
}

/// The state of one (rule, gateway) pair.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AlertStateInfo {
    pub rule: String,
    pub gateway: String,
    /// `ok` or `firing`.
    pub state: String,
    /// The time of its last transition.
    pub since: String,
    /// `ok`: a value rule's condition has held since then, not yet long
    /// enough.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pending_since: Option<String>,
    /// `firing`: what made it fire, as the notifier recorded it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Object>))]
    pub values: Option<serde_json::Value>,
}

impl From<&StoredState> for AlertStateInfo {
    fn from(s: &StoredState) -> Self {
        let (state, pending_since, values) = match &s.state {
            PairState::Ok { pending_since, .. } => ("ok", pending_since.map(time), None),
            PairState::Firing { values, .. } => ("firing", None, serde_json::to_value(values).ok()),
        };
        AlertStateInfo {
            rule: s.rule_id.to_string(),
            gateway: s.gateway_id.clone(),
            state: state.to_owned(),
            since: time(s.state.since()),
            pending_since,
            values,
        }
    }
}

/// What `alert list` shows.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AlertList {
    pub provider: ProviderId,
    /// Whether the config has a `[mail]` relay (off: states are tracked
    /// and shown, nothing is mailed).
    pub mail: bool,
    pub rules: Vec<AlertRuleInfo>,
    /// Every (rule, gateway) pair the notifier has evaluated, by rule then
    /// gateway.
    pub states: Vec<AlertStateInfo>,
}

/// What `alert add` answers.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AlertAdded {
    pub provider: ProviderId,
    pub rule: AlertRuleInfo,
    pub mail: bool,
    /// Set when mail is off: the rule is tracked, nothing will be mailed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub warning: Option<String>,
}

/// What `alert remove` answers.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AlertRemoved {
    pub provider: ProviderId,
    pub rule: String,
    pub removed: bool,
}

/// `report schedule <provider> --at 07:00 --to ...` or `--off`.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReportScheduleRequest {
    /// The local time of the daily report, `HH:MM`.
    #[serde(default)]
    pub at: Option<String>,
    /// Recipients, comma-separated (default: those set before).
    #[serde(default)]
    pub to: Option<String>,
    /// No daily report (the recipients stay, for `report send`).
    #[serde(default)]
    pub off: bool,
}

/// The tenant's daily report as its settings now say.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReportSchedule {
    pub provider: ProviderId,
    /// `HH:MM` local; `null`: no daily report.
    pub at: Option<String>,
    pub recipients: Vec<String>,
    /// The tenant's timezone setting (`UTC` when unset).
    pub timezone: String,
    pub mail: bool,
}

/// `report send <provider> [--date YYYY-MM-DD] [--to ...]`.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReportSendRequest {
    /// The local day to report (default: yesterday in the tenant's
    /// timezone).
    #[serde(default)]
    pub date: Option<String>,
    /// Recipients, comma-separated (default: the tenant's report
    /// recipients).
    #[serde(default)]
    pub to: Option<String>,
    /// How long to follow the mail, in seconds (default 60, at most 300).
    #[serde(default)]
    pub wait_secs: Option<u64>,
}

/// Where the requested report's mail ended up.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReportOutcome {
    /// The relay took it.
    Sent,
    /// The relay refused it for good (`reason`), or the notifier has mail
    /// off.
    Failed,
    /// Still in the outbox when the wait ended: it is retried with
    /// backoff and goes out once the relay takes it.
    Queued,
    /// The notifier had not taken the request when the wait ended (is it
    /// running?); it will when it runs.
    Requested,
}

/// What `report send` answers.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReportSent {
    pub provider: ProviderId,
    /// The request's random id.
    pub request: String,
    /// The local day reported.
    pub day: String,
    /// The outbox key of its mail: `report/<day>/<request>`.
    pub key: String,
    pub recipients: Vec<String>,
    pub outcome: ReportOutcome,
    /// Why it failed, or the last transient error of a queued mail.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Attempts at the relay so far.
    pub attempts: u32,
}

/// `HH:MM`, two digits each, a real time of day.
fn parse_report_at(raw: &str) -> Result<String> {
    let raw = raw.trim();
    let shaped = raw.len() == 5
        && raw.as_bytes()[2] == b':'
        && raw
            .bytes()
            .enumerate()
            .all(|(i, b)| i == 2 || b.is_ascii_digit());
    match shaped.then(|| NaiveTime::parse_from_str(raw, "%H:%M").ok()) {
        Some(Some(t)) => Ok(t.format("%H:%M").to_string()),
        _ => Err(Error::Usage(format!(
            "report time {raw:?} is not understood: use HH:MM on a 24 h clock, such as 07:00"
        ))),
    }
}

fn parse_day(raw: &str) -> Result<NaiveDate> {
    NaiveDate::parse_from_str(raw.trim(), "%Y-%m-%d").map_err(|_| {
        Error::Usage(format!(
            "date {raw:?} is not understood: use YYYY-MM-DD, such as 2026-03-01"
        ))
    })
}

/// The tenant's report recipients setting, parsed; empty when unset or
/// unreadable.
fn stored_recipients(raw: Option<&String>) -> Vec<String> {
    raw.filter(|r| !r.trim().is_empty())
        .and_then(|r| parse_recipients(r).ok())
        .map(|list| list.iter().map(ToString::to_string).collect())
        .unwrap_or_default()
}

fn timezone_of(raw: Option<&String>) -> (String, chrono::FixedOffset) {
    let text = raw.cloned().unwrap_or_else(|| "UTC".to_owned());
    // a value that no longer parses means its default (settings' rule)
    let offset = notifier::timezone::parse_timezone(&text)
        .unwrap_or_else(|_| chrono::FixedOffset::east_opt(0).expect("UTC"));
    (text, offset)
}

const MAIL_OFF_WARNING: &str = "mail is off (no [mail] relay in the config): the rule's states are tracked and shown, and nothing is mailed";

impl Provisioner {
    fn mail_on(&self) -> bool {
        self.config.mail.is_some()
    }

    /// `alert add`: writes a new rule and answers it with its id.
    pub async fn alert_add(&self, id: &ProviderId, request: &AlertRequest) -> Result<AlertAdded> {
        let rule = request.rule(Utc::now())?;
        let (_lock, session) = self.registry_session(id).await?;
        alerts::add(&session, id, &rule).await?;
        Ok(AlertAdded {
            provider: id.clone(),
            rule: AlertRuleInfo::from(&rule),
            mail: self.mail_on(),
            warning: (!self.mail_on()).then(|| MAIL_OFF_WARNING.to_owned()),
        })
    }

    /// `alert list`: the rules and every pair's state.
    pub async fn alert_list(&self, id: &ProviderId) -> Result<AlertList> {
        let (_lock, session) = self.registry_session(id).await?;
        let (rules, states) = alerts::list(&session, id).await?;
        Ok(AlertList {
            provider: id.clone(),
            mail: self.mail_on(),
            rules: rules.iter().map(AlertRuleInfo::from).collect(),
            states: states.iter().map(AlertStateInfo::from).collect(),
        })
    }

    /// `alert remove`: the rule and its pairs' states go.
    pub async fn alert_remove(&self, id: &ProviderId, rule: &str) -> Result<AlertRemoved> {
        let rule = RuleId::parse(rule.trim())?;
        let (_lock, session) = self.registry_session(id).await?;
        alerts::remove(&session, id, &rule).await?;
        Ok(AlertRemoved {
            provider: id.clone(),
            rule: rule.to_string(),
            removed: true,
        })
    }

    /// `report schedule`: the daily report's time and recipients in the
    /// tenant's settings, or no daily report (`off`).
    pub async fn report_schedule(
        &self,
        id: &ProviderId,
        request: &ReportScheduleRequest,
    ) -> Result<ReportSchedule> {
        let at = match (&request.at, request.off) {
            (Some(_), true) => {
                return Err(Error::Usage(
                    "give either --at HH:MM or --off, not both".into(),
                ))
            }
            (None, false) => {
                return Err(Error::Usage(
                    "say when: --at HH:MM (local time), or --off for no daily report".into(),
                ))
            }
            (Some(at), false) => Some(parse_report_at(at)?),
            (None, true) => None,
        };
        let to = request
            .to
            .as_deref()
            .map(parse_recipients)
            .transpose()?
            .map(|list| {
                list.iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join(",")
            });
        let (_lock, session) = self.registry_session(id).await?;
        let stored = alerts::settings(&session, id).await?;
        let recipients = match &to {
            Some(list) => stored_recipients(Some(list)),
            None => stored_recipients(stored.get(settings::REPORT_RECIPIENTS)),
        };
        if at.is_some() && recipients.is_empty() {
            return Err(Error::Usage(format!(
                "tenant {id} has no report recipients yet: give --to a@example.com[,b@example.com]"
            )));
        }
        if let Some(list) = &to {
            alerts::set_setting(&session, id, settings::REPORT_RECIPIENTS, Some(list)).await?;
        }
        alerts::set_setting(&session, id, settings::REPORT_AT, at.as_deref()).await?;
        let (timezone, _) = timezone_of(stored.get(settings::TIMEZONE));
        Ok(ReportSchedule {
            provider: id.clone(),
            at,
            recipients,
            timezone,
            mail: self.mail_on(),
        })
    }

    /// `report send`: asks the tenant's notifier for one report now and
    /// follows its mail until the relay took or refused it, or the wait
    /// ended with it still queued.
    pub async fn report_send(
        &self,
        id: &ProviderId,
        request: &ReportSendRequest,
    ) -> Result<ReportSent> {
        if !self.mail_on() {
            // the unknown tenant first: its error says more
            self.known(id).await?;
            return Err(Error::MailOff);
        }
        let explicit = request.date.as_deref().map(parse_day).transpose()?;
        let to = request
            .to
            .as_deref()
            .map(parse_recipients)
            .transpose()?
            .unwrap_or_default();
        let wait = request
            .wait_secs
            .map_or(REPORT_WAIT, Duration::from_secs)
            .min(REPORT_WAIT_MAX);
        let (lock, session) = self.registry_session(id).await?;
        let stored = alerts::settings(&session, id).await?;
        let (_, offset) = timezone_of(stored.get(settings::TIMEZONE));
        let now = Utc::now();
        let today = notifier::timezone::local_day(&offset, now);
        let day = match explicit {
            Some(day) if day > today => {
                return Err(Error::Usage(format!(
                    "date {day} is in the future for tenant {id} (its today is {today})"
                )))
            }
            Some(day) => day,
            None => today.pred_opt().unwrap_or(today),
        };
        let recipients: Vec<String> = match to.is_empty() {
            false => to.iter().map(ToString::to_string).collect(),
            true => stored_recipients(stored.get(settings::REPORT_RECIPIENTS)),
        };
        if recipients.is_empty() {
            return Err(Error::Usage(format!(
                "tenant {id} has no report recipients: give --to a@example.com, or set them with `provision report schedule {id} --at HH:MM --to ...`"
            )));
        }
        let report = ReportRequest {
            id: RuleId::random(&mut rand::thread_rng()).to_string(),
            day,
            to,
            requested_at: now,
        };
        alerts::request_report(&session, id, &report).await?;
        // The wait needs no lock: a destroy meanwhile ends it with an error.
        drop(lock);
        let key = MailKey::Requested {
            day,
            request: report.id.clone(),
        }
        .as_text();
        let mut sent = ReportSent {
            provider: id.clone(),
            request: report.id.clone(),
            day: day.to_string(),
            key: key.clone(),
            recipients,
            outcome: ReportOutcome::Requested,
            reason: None,
            attempts: 0,
        };
        let deadline = tokio::time::Instant::now() + wait;
        let started_on = now.date_naive();
        loop {
            let today = Utc::now().date_naive();
            let (pending, mut finished) = alerts::mails(&session, id, today).await?;
            if started_on != today {
                finished.extend(alerts::mails(&session, id, started_on).await?.1);
            }
            if let Some(mail) = finished.iter().find(|m| m.entry.key == key) {
                let (outcome, attempts, reason) = match &mail.entry.status {
                    OutboxStatus::Sent { attempts, .. } => (ReportOutcome::Sent, *attempts, None),
                    OutboxStatus::Failed {
                        attempts, reason, ..
                    } => (ReportOutcome::Failed, *attempts, Some(reason.clone())),
                    OutboxStatus::Unsent { .. } => (
                        ReportOutcome::Failed,
                        0,
                        Some(format!(
                            "the notifier of {id} has mail off (it was created before the [mail] section): run `provision reconcile`"
                        )),
                    ),
                    // a mail in the record is final; these are not
                    other => (ReportOutcome::Queued, 0, Some(other.name().to_owned())),
                };
                sent.outcome = outcome;
                sent.attempts = attempts;
                sent.reason = reason;
                return Ok(sent);
            }
            if let Some(mail) = pending.iter().find(|m| m.entry.key == key) {
                sent.outcome = ReportOutcome::Queued;
                sent.reason = mail.entry.last_error.clone();
                sent.attempts = match &mail.entry.status {
                    OutboxStatus::Queued { attempts, .. }
                    | OutboxStatus::Sending { attempts, .. } => *attempts,
                    _ => 0,
                };
            }
            if tokio::time::Instant::now() >= deadline {
                return Ok(sent);
            }
            tokio::time::sleep(REPORT_POLL).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(kind: AlertKind) -> AlertRequest {
        AlertRequest {
            kind,
            for_: "15m".into(),
            value: None,
            threshold: None,
            between: None,
            gateway: None,
            to: "a@example.com,b@example.com".into(),
        }
    }

    #[test]
    fn a_silent_rule_and_a_value_rule_parse_into_the_notifiers_rules() {
        let now = Utc::now();
        let rule = request(AlertKind::Silent).rule(now).unwrap();
        assert_eq!(
            rule.kind,
            RuleKind::Silent {
                for_: Duration::from_secs(900)
            }
        );
        assert_eq!(rule.recipients.len(), 2);
        let info = AlertRuleInfo::from(&rule);
        assert_eq!((info.kind, info.for_.as_str()), (AlertKind::Silent, "15m"));
        assert_eq!(info.id.len(), RuleId::LEN);

        let below = AlertRequest {
            value: Some("power".into()),
            threshold: Some(5.0),
            between: Some("08:00-18:00".into()),
            gateway: Some("site-1".into()),
            ..request(AlertKind::Below)
        };
        let info = AlertRuleInfo::from(&below.rule(now).unwrap());
        assert_eq!(
            info.description,
            "power below 5 for 15m between 08:00-18:00"
        );
        assert_eq!(info.gateway.as_deref(), Some("site-1"));
        let json = serde_json::to_value(&info).unwrap();
        assert_eq!(json["for"], "15m");
        assert_eq!(json["kind"], "below");
    }

    #[test]
    fn bad_input_is_one_usage_error_naming_what_is_wrong() {
        let now = Utc::now();
        let value = |r: AlertRequest| AlertRequest {
            value: Some("power".into()),
            threshold: Some(5.0),
            ..r
        };
        for (bad, needle) in [
            (
                AlertRequest {
                    for_: "10 minutes".into(),
                    ..request(AlertKind::Silent)
                },
                "duration \"10 minutes\"",
            ),
            (
                AlertRequest {
                    between: Some("8-18".into()),
                    ..value(request(AlertKind::Above))
                },
                "window \"8-18\"",
            ),
            (
                AlertRequest {
                    to: "a@example.com,nobody".into(),
                    ..request(AlertKind::Silent)
                },
                "recipient \"nobody\"",
            ),
            (request(AlertKind::Below), "needs --value"),
            (
                AlertRequest {
                    value: Some("power".into()),
                    ..request(AlertKind::Silent)
                },
                "takes no --value",
            ),
            (
                AlertRequest {
                    gateway: Some("bad gateway".into()),
                    ..request(AlertKind::Silent)
                },
                "gateway id",
            ),
        ] {
            let e = bad.rule(now).unwrap_err();
            assert_eq!(e.exit_code(), 2, "{e}");
            assert!(e.to_string().contains(needle), "{needle}: {e}");
        }
        let e = RuleId::parse("No-Such").map_err(Error::from).unwrap_err();
        assert_eq!(e.exit_code(), 2, "{e}");
    }

    #[test]
    fn report_times_and_days_parse_strictly() {
        assert_eq!(parse_report_at("07:00").unwrap(), "07:00");
        assert_eq!(parse_report_at(" 23:59 ").unwrap(), "23:59");
        for bad in ["7:00", "24:00", "07:60", "0700", "07:00pm"] {
            let e = parse_report_at(bad).unwrap_err();
            assert_eq!(e.exit_code(), 2, "{bad}: {e}");
        }
        assert!(parse_day("2026-03-01").is_ok());
        assert!(parse_day("01.03.2026").is_err());
        assert_eq!(
            stored_recipients(Some(&"a@example.com, b@example.com".to_owned())),
            ["a@example.com", "b@example.com"]
        );
        assert!(stored_recipients(Some(&String::new())).is_empty());
        assert_eq!(Error::MailOff.exit_code(), 15);
    }
}
