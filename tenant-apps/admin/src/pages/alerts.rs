//! The Alerts page: the tenant's alert rules with their create, edit and
//! delete forms, every (rule, gateway) pair firing now with what made it
//! fire, and the history of the last seven days' transitions with what
//! became of each one's mail.
//!
//! - `GET /alerts`: the page; `POST /alerts`: a new rule.
//! - `GET /alerts/{id}/edit` and `POST /alerts/{id}`: an edit (the rule
//!   keeps its id and creation time).
//! - `POST /alerts/{id}/delete`: removes the rule and its pairs' states
//!   (mails already queued still go out).
//!
//! The rows are the `notifier` table's, through `notifier::store`: the
//! notifier evaluates these rules and records each transition's mail (or,
//! with mail off, an `unsent` record) under its `MailKey`, which the history
//! reads back from the pending outbox and each UTC day's record. A form that
//! does not validate is shown again with what was typed and one message
//! naming the field; nothing is written.

use std::collections::{BTreeMap, HashMap};

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use chrono::{DateTime, Utc};
use notifier::evaluate::{Evidence, PairState, TransitionKind};
use notifier::outbox::{MailKey, OutboxEntry, OutboxStatus};
use notifier::rules::{
    check_value_name, format_duration, parse_duration, parse_recipients, AlertRule, LocalWindow,
    RuleError, RuleId, RuleKind,
};
use notifier::store::{StoredMail, StoredState};
use serde::{Deserialize, Serialize};
use tenant_schema::model::GatewayId;

use crate::csrf::{CsrfField, CsrfForm};
use crate::error::AppError;
use crate::session::Session;
use crate::settings::{Settings, Timezone};
use crate::AppState;

use super::{ago, format_value, html, load_settings, Chrome, Nav};

/// How far back the history goes.
pub(crate) const HISTORY_DAYS: i64 = 7;
/// The most transitions the history lists (the newest).
pub(crate) const MAX_HISTORY: usize = 500;

#[derive(Debug, Deserialize)]
pub(super) struct NoticeQuery {
    pub(super) saved: Option<String>,
    pub(super) deleted: Option<String>,
}

/// The rule form as posted (create and edit). Every field is text, so
/// what was typed can be shown again.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
pub(super) struct RuleForm {
    #[serde(default, skip_serializing)]
    csrf: String,
    #[serde(default)]
    pub(super) kind: String,
    #[serde(default)]
    pub(super) value: String,
    #[serde(default)]
    pub(super) threshold: String,
    #[serde(default, rename = "for")]
    pub(super) for_: String,
    #[serde(default)]
    pub(super) between: String,
    #[serde(default)]
    pub(super) gateway: String,
    #[serde(default)]
    pub(super) recipients: String,
}

impl CsrfField for RuleForm {
    fn csrf(&self) -> &str {
        &self.csrf
    }
}

/// A refused rule form: the field and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{label}: {message}")]
pub(crate) struct FormError {
    /// The form field's name (`kind`, `value`, `threshold`, `for`,
    /// `between`, `gateway`, `recipients`).
    pub(crate) field: &'static str,
    label: &'static str,
    message: String,
}

impl FormError {
    fn new(field: &'static str, message: impl Into<String>) -> Self {
        let label = match field {
            "kind" => "Kind",
            "value" => "Value",
            "threshold" => "Threshold",
            "for" => "For",
            "between" => "Between",
            "gateway" => "Gateway",
            _ => "Recipients",
        };
        FormError {
            field,
            label,
            message: message.into(),
        }
    }

    fn rule(field: &'static str, e: RuleError) -> Self {
        Self::new(field, e.to_string())
    }
}

impl RuleForm {
    /// The form of an existing rule, for its edit page.
    pub(super) fn of(rule: &AlertRule) -> Self {
        let condition = rule.kind.value_condition();
        RuleForm {
            csrf: String::new(),
            kind: kind_name(&rule.kind).to_owned(),
            value: condition.map(|c| c.value.to_owned()).unwrap_or_default(),
            threshold: condition
                .map(|c| c.threshold.to_string())
                .unwrap_or_default(),
            for_: format_duration(rule.kind.for_()),
            between: condition
                .and_then(|c| c.between)
                .map(|w| w.to_string())
                .unwrap_or_default(),
            gateway: rule.gateway.clone().unwrap_or_default(),
            recipients: recipients_text(rule),
        }
    }

    /// The rule the form describes, checked field by field in the order
    /// the form shows them; the first refused field is the error.
    pub(super) fn to_rule(
        &self,
        id: RuleId,
        created_at: DateTime<Utc>,
    ) -> Result<AlertRule, FormError> {
        let kind = self.kind.trim();
        let value = self.value.trim();
        let threshold = self.threshold.trim();
        let between = self.between.trim();
        let kind = match kind {
            "silent" => {
                for (field, given) in [
                    ("value", value),
                    ("threshold", threshold),
                    ("between", between),
                ] {
                    if !given.is_empty() {
                        return Err(FormError::new(
                            field,
                            "a silent rule watches no value: leave value, threshold and between empty",
                        ));
                    }
                }
                RuleKind::Silent {
                    for_: self.duration()?,
                }
            }
            "below" | "above" => {
                if value.is_empty() {
                    return Err(FormError::new(
                        "value",
                        "a below or above rule needs the name of the value it watches, such as power",
                    ));
                }
                check_value_name(value).map_err(|e| FormError::rule("value", e))?;
                let threshold_value = threshold
                    .parse::<f64>()
                    .ok()
                    .filter(|t| t.is_finite())
                    .ok_or_else(|| {
                        FormError::new(
                            "threshold",
                            format!("{threshold:?} is not a number, such as 5 or 0.5"),
                        )
                    })?;
                let for_ = self.duration()?;
                let between = if between.is_empty() {
                    None
                } else {
                    Some(LocalWindow::parse(between).map_err(|e| FormError::rule("between", e))?)
                };
                let (value, threshold) = (value.to_owned(), threshold_value);
                if kind == "below" {
                    RuleKind::Below {
                        value,
                        threshold,
                        for_,
                        between,
                    }
                } else {
                    RuleKind::Above {
                        value,
                        threshold,
                        for_,
                        between,
                    }
                }
            }
            other => {
                return Err(FormError::new(
                    "kind",
                    format!("{other:?} is not a kind of rule: choose silent, below or above"),
                ))
            }
        };
        let gateway = match self.gateway.trim() {
            "" => None,
            g => Some(
                GatewayId::parse(g)
                    .map_err(|_| FormError::rule("gateway", RuleError::Gateway(g.to_owned())))?
                    .as_str()
                    .to_owned(),
            ),
        };
        let recipients =
            parse_recipients(&self.recipients).map_err(|e| FormError::rule("recipients", e))?;
        // Everything `new` checks was checked above; a refusal here names
        // the field its error is about.
        AlertRule::new(id, kind, gateway, recipients, created_at).map_err(|e| {
            let field = match e {
                RuleError::Gateway(_) => "gateway",
                RuleError::ValueName(_) => "value",
                RuleError::Threshold => "threshold",
                RuleError::Duration(_) | RuleError::DurationRange { .. } => "for",
                _ => "recipients",
            };
            FormError::rule(field, e)
        })
    }

    fn duration(&self) -> Result<std::time::Duration, FormError> {
        parse_duration(self.for_.trim()).map_err(|e| FormError::rule("for", e))
    }
}

fn kind_name(kind: &RuleKind) -> &'static str {
    match kind {
        RuleKind::Silent { .. } => "silent",
        RuleKind::Below { .. } => "below",
        RuleKind::Above { .. } => "above",
    }
}

fn recipients_text(rule: &AlertRule) -> String {
    rule.recipients
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

/// A rule as the table shows it.
#[derive(Debug, Serialize)]
struct RuleView {
    id: String,
    kind: &'static str,
    value: String,
    threshold: String,
    for_: String,
    between: String,
    gateway: String,
    all_gateways: bool,
    recipients: String,
    firing: usize,
}

fn rule_view(rule: &AlertRule, firing: usize) -> RuleView {
    let condition = rule.kind.value_condition();
    RuleView {
        id: rule.id.to_string(),
        kind: kind_name(&rule.kind),
        value: condition.map(|c| c.value.to_owned()).unwrap_or_default(),
        threshold: condition
            .map(|c| c.threshold.to_string())
            .unwrap_or_default(),
        for_: format_duration(rule.kind.for_()),
        between: condition
            .and_then(|c| c.between)
            .map(|w| w.to_string())
            .unwrap_or_default(),
        gateway: rule.gateway.clone().unwrap_or_else(|| "all".to_owned()),
        all_gateways: rule.gateway.is_none(),
        recipients: recipients_text(rule),
        firing,
    }
}

/// A pair firing now.
#[derive(Debug, Serialize, PartialEq)]
pub(crate) struct FiringView {
    pub(crate) rule_id: String,
    pub(crate) rule: String,
    pub(crate) gateway: String,
    pub(crate) since: String,
    pub(crate) since_iso: String,
    pub(crate) since_ago: String,
    pub(crate) values: String,
}

/// What made a pair fire, in words.
pub(crate) fn evidence_text(evidence: &Evidence, tz: Timezone) -> String {
    match evidence {
        Evidence::Silent {
            last_seen: Some(seen),
            ..
        } => format!("last frame {}", tz.format(*seen)),
        Evidence::Silent {
            last_seen: None,
            counted_from,
        } => format!(
            "never seen (silent counted from {})",
            tz.format(*counted_from)
        ),
        Evidence::Value { sample, held_since } => {
            let mut text = match sample {
                Some(s) => format!(
                    "{} {} {} at {}",
                    s.sensor,
                    format_value(s.value),
                    s.unit,
                    tz.format(s.at)
                )
                .replace("  ", " "),
                None => "no value".to_owned(),
            };
            if let Some(held) = held_since {
                text.push_str(&format!(", condition held since {}", tz.format(*held)));
            }
            text
        }
    }
}

fn describe_rule(rules: &HashMap<&RuleId, &AlertRule>, id: &RuleId) -> String {
    rules
        .get(id)
        .map(|r| r.kind.describe())
        .unwrap_or_else(|| "(rule removed)".to_owned())
}

/// Every firing pair, the longest-firing first.
pub(crate) fn firing_views(
    states: &[StoredState],
    rules: &[AlertRule],
    tz: Timezone,
    now: DateTime<Utc>,
) -> Vec<FiringView> {
    let by_id: HashMap<&RuleId, &AlertRule> = rules.iter().map(|r| (&r.id, r)).collect();
    let mut firing: Vec<(DateTime<Utc>, FiringView)> = states
        .iter()
        .filter_map(|s| match &s.state {
            PairState::Firing { since, values } => Some((
                *since,
                FiringView {
                    rule_id: s.rule_id.to_string(),
                    rule: describe_rule(&by_id, &s.rule_id),
                    gateway: s.gateway_id.clone(),
                    since: tz.format(*since),
                    since_iso: iso(*since),
                    since_ago: ago(*since, now),
                    values: evidence_text(values, tz),
                },
            )),
            PairState::Ok { .. } => None,
        })
        .collect();
    firing.sort_by(|a, b| {
        a.0.cmp(&b.0)
            .then_with(|| (&a.1.rule_id, &a.1.gateway).cmp(&(&b.1.rule_id, &b.1.gateway)))
    });
    firing.into_iter().map(|(_, v)| v).collect()
}

/// One transition of the history with its mail's fate.
#[derive(Debug, Serialize, PartialEq)]
pub(crate) struct HistoryView {
    pub(crate) at: String,
    pub(crate) at_iso: String,
    pub(crate) rule_id: String,
    pub(crate) rule: String,
    pub(crate) gateway: String,
    pub(crate) transition: &'static str,
    /// `sent`, `queued`, `sending`, `failed` or `unsent`.
    pub(crate) status: &'static str,
    pub(crate) detail: String,
}

fn mail_detail(entry: &OutboxEntry, tz: Timezone) -> String {
    match &entry.status {
        OutboxStatus::Sent { at, .. } => format!("sent {}", tz.format(*at)),
        OutboxStatus::Queued {
            attempts,
            next_attempt,
        } => {
            let mut text = format!("queued, next attempt {}", tz.format(*next_attempt));
            if *attempts > 0 {
                text.push_str(&format!(" ({attempts} tried so far"));
                if let Some(error) = &entry.last_error {
                    text.push_str(&format!("; last error: {error}"));
                }
                text.push(')');
            }
            text
        }
        OutboxStatus::Sending { .. } => "being sent".to_owned(),
        OutboxStatus::Failed { at, reason, .. } => {
            format!("failed {}: {reason}", tz.format(*at))
        }
        OutboxStatus::Unsent { .. } => "not sent: mail is off".to_owned(),
    }
}

/// The alert transitions among `mails` (reports are not alerts) since
/// `since`, newest first, at most [`MAX_HISTORY`]; and how many there were
/// in all. A key recorded twice (its final record written, its pending row
/// not yet deleted) counts once, as its final record.
pub(crate) fn history_views(
    mails: impl IntoIterator<Item = StoredMail>,
    rules: &[AlertRule],
    tz: Timezone,
    since: DateTime<Utc>,
) -> (Vec<HistoryView>, usize) {
    let by_id: HashMap<&RuleId, &AlertRule> = rules.iter().map(|r| (&r.id, r)).collect();
    let mut by_key: BTreeMap<String, OutboxEntry> = BTreeMap::new();
    for mail in mails {
        let entry = mail.entry;
        match by_key.get(&entry.key) {
            Some(kept) if kept.status.is_final() => {}
            _ => {
                by_key.insert(entry.key.clone(), entry);
            }
        }
    }
    let mut rows: Vec<(DateTime<Utc>, HistoryView)> = by_key
        .values()
        .filter_map(|entry| {
            let Some(MailKey::Transition {
                rule_id,
                gateway_id,
                kind,
                at,
            }) = MailKey::parse(&entry.key)
            else {
                return None;
            };
            (at >= since).then(|| {
                (
                    at,
                    HistoryView {
                        at: tz.format(at),
                        at_iso: iso(at),
                        rule: describe_rule(&by_id, &rule_id),
                        rule_id: rule_id.to_string(),
                        gateway: gateway_id,
                        transition: match kind {
                            TransitionKind::Firing => "firing",
                            TransitionKind::Resolved => "resolved",
                        },
                        status: entry.status.name(),
                        detail: mail_detail(entry, tz),
                    },
                )
            })
        })
        .collect();
    rows.sort_by(|a, b| {
        b.0.cmp(&a.0)
            .then_with(|| (&a.1.rule_id, &a.1.gateway).cmp(&(&b.1.rule_id, &b.1.gateway)))
    });
    let total = rows.len();
    (
        rows.into_iter().take(MAX_HISTORY).map(|(_, v)| v).collect(),
        total,
    )
}

fn iso(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// The pending outbox and each UTC day's record since `since`, read at
/// once.
async fn recent_mails(
    state: &AppState,
    since: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Result<Vec<StoredMail>, AppError> {
    let alerts = state.alerts();
    let days: Vec<_> = since
        .date_naive()
        .iter_days()
        .take_while(|d| *d <= now.date_naive())
        .collect();
    let (pending, finished) = tokio::join!(
        alerts.pending_mails(),
        futures::future::join_all(days.into_iter().map(|d| alerts.finished_mails(d)))
    );
    let mut mails = pending?;
    for day in finished {
        mails.extend(day?);
    }
    Ok(mails)
}

/// What the page shows around the rule form.
struct PageInput<'a> {
    status: StatusCode,
    form: RuleForm,
    error: Option<FormError>,
    notice: Option<&'static str>,
    session: &'a Session,
}

async fn page(state: &AppState, input: PageInput<'_>) -> Result<Response, AppError> {
    let alerts = state.alerts();
    let now = Utc::now();
    let since = now - chrono::Duration::days(HISTORY_DAYS);
    let (settings, rules, states, mails, gateways) = tokio::join!(
        load_settings(state),
        alerts.rules(),
        alerts.states(),
        recent_mails(state, since, now),
        state.store().gateways(),
    );
    let (settings, rules, states, mails, gateways) =
        (settings?, rules?, states?, mails?, gateways?);
    let tz = settings.timezone;
    let mut firing_per_rule: HashMap<&RuleId, usize> = HashMap::new();
    for s in states.iter().filter(|s| s.state.is_firing()) {
        *firing_per_rule.entry(&s.rule_id).or_default() += 1;
    }
    let rule_views: Vec<RuleView> = rules
        .iter()
        .map(|r| rule_view(r, firing_per_rule.get(&r.id).copied().unwrap_or(0)))
        .collect();
    let firing = firing_views(&states, &rules, tz, now);
    let (history, history_total) = history_views(mails, &rules, tz, since);
    let body = state.templates().render(
        "alerts",
        &serde_json::json!({
            "chrome": Chrome::new(state, input.session, &settings, "Alerts", Nav::Alerts),
            "rules": rule_views,
            "firing": firing,
            "history": history,
            "history_days": HISTORY_DAYS,
            "history_truncated": history_total > MAX_HISTORY,
            "history_total": history_total,
            "form": form_view(&input.form, input.error.as_ref()),
            "notice": input.notice,
            "gateways": gateways.iter().map(|g| g.gateway_id.as_str()).collect::<Vec<_>>(),
        }),
    )?;
    Ok(html(input.status, body))
}

/// The form's values, the chosen kind, and its error with the field.
fn form_view(form: &RuleForm, error: Option<&FormError>) -> serde_json::Value {
    serde_json::json!({
        "values": form,
        "silent": form.kind.trim() == "silent" || form.kind.trim().is_empty(),
        "below": form.kind.trim() == "below",
        "above": form.kind.trim() == "above",
        "error": error.map(ToString::to_string),
        "error_field": error.map(|e| e.field),
    })
}

pub(super) async fn show(
    State(state): State<AppState>,
    session: Session,
    Query(query): Query<NoticeQuery>,
) -> Result<Response, AppError> {
    let notice = if query.saved.is_some() {
        Some("Rule saved. The notifier applies it at its next check.")
    } else if query.deleted.is_some() {
        Some("Rule deleted.")
    } else {
        None
    };
    page(
        &state,
        PageInput {
            status: StatusCode::OK,
            form: RuleForm {
                kind: "silent".to_owned(),
                ..RuleForm::default()
            },
            error: None,
            notice,
            session: &session,
        },
    )
    .await
}

pub(super) async fn create(
    State(state): State<AppState>,
    posted: CsrfForm<RuleForm>,
) -> Result<Response, AppError> {
    let CsrfForm { session, form } = posted;
    let id = RuleId::random(&mut rand::thread_rng());
    match form.to_rule(id, Utc::now()) {
        Ok(rule) => {
            state.alerts().put_rule(&rule).await?;
            tracing::info!(username = %session.username, rule = %rule.id, "alert rule created");
            Ok(Redirect::to("/alerts?saved=1").into_response())
        }
        Err(error) => {
            page(
                &state,
                PageInput {
                    status: StatusCode::BAD_REQUEST,
                    form,
                    error: Some(error),
                    notice: None,
                    session: &session,
                },
            )
            .await
        }
    }
}

/// The rule of a path, or 404.
async fn existing_rule(state: &AppState, raw: &str) -> Result<AlertRule, AppError> {
    let not_found = || AppError::NotFound(format!("alert rule {raw:?}"));
    let id = RuleId::parse(raw).map_err(|_| not_found())?;
    state.alerts().rule(&id).await?.ok_or_else(not_found)
}

async fn edit_page(
    state: &AppState,
    session: &Session,
    settings: &Settings,
    rule: &AlertRule,
    form: &RuleForm,
    error: Option<&FormError>,
) -> Result<Response, AppError> {
    let gateways = state.store().gateways().await?;
    let body = state.templates().render(
        "alert_edit",
        &serde_json::json!({
            "chrome": Chrome::new(state, session, settings, "Edit alert rule", Nav::Alerts),
            "id": rule.id.as_str(),
            "created_at": settings.timezone.format(rule.created_at),
            "form": form_view(form, error),
            "gateways": gateways.iter().map(|g| g.gateway_id.as_str()).collect::<Vec<_>>(),
        }),
    )?;
    let status = if error.is_some() {
        StatusCode::BAD_REQUEST
    } else {
        StatusCode::OK
    };
    Ok(html(status, body))
}

pub(super) async fn edit(
    State(state): State<AppState>,
    session: Session,
    Path(id): Path<String>,
) -> Result<Response, AppError> {
    let (settings, rule) = tokio::join!(load_settings(&state), existing_rule(&state, &id));
    let (settings, rule) = (settings?, rule?);
    edit_page(
        &state,
        &session,
        &settings,
        &rule,
        &RuleForm::of(&rule),
        None,
    )
    .await
}

pub(super) async fn update(
    State(state): State<AppState>,
    Path(id): Path<String>,
    posted: CsrfForm<RuleForm>,
) -> Result<Response, AppError> {
    let CsrfForm { session, form } = posted;
    let rule = existing_rule(&state, &id).await?;
    match form.to_rule(rule.id.clone(), rule.created_at) {
        Ok(edited) => {
            state.alerts().put_rule(&edited).await?;
            tracing::info!(username = %session.username, rule = %edited.id, "alert rule edited");
            Ok(Redirect::to("/alerts?saved=1").into_response())
        }
        Err(error) => {
            let settings = load_settings(&state).await?;
            edit_page(&state, &session, &settings, &rule, &form, Some(&error)).await
        }
    }
}

/// The delete form carries only its CSRF token.
#[derive(Debug, Deserialize)]
pub(super) struct DeleteForm {
    #[serde(default)]
    csrf: String,
}

impl CsrfField for DeleteForm {
    fn csrf(&self) -> &str {
        &self.csrf
    }
}

pub(super) async fn delete(
    State(state): State<AppState>,
    Path(id): Path<String>,
    posted: CsrfForm<DeleteForm>,
) -> Result<Response, AppError> {
    let not_found = || AppError::NotFound(format!("alert rule {id:?}"));
    let rule_id = RuleId::parse(&id).map_err(|_| not_found())?;
    if !state.alerts().remove_rule(&rule_id).await? {
        return Err(not_found());
    }
    tracing::info!(username = %posted.session.username, rule = %rule_id, "alert rule deleted");
    Ok(Redirect::to("/alerts?deleted=1").into_response())
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use notifier::evaluate::Sample;

    fn t(h: u32, m: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 12, 1, h, m, 0).unwrap()
    }

    fn form(kind: &str, value: &str, threshold: &str, for_: &str, between: &str) -> RuleForm {
        RuleForm {
            kind: kind.into(),
            value: value.into(),
            threshold: threshold.into(),
            for_: for_.into(),
            between: between.into(),
            gateway: String::new(),
            recipients: "ops@example.com".into(),
            csrf: String::new(),
        }
    }

    fn id() -> RuleId {
        RuleId::parse("r1").unwrap()
    }

    #[test]
    fn a_valid_form_makes_the_rule_it_describes_and_an_edit_form_shows_it_again() {
        let mut f = form("below", " power ", "5", "15m", "08:00-18:00");
        f.gateway = " gw-1 ".into();
        f.recipients = "a@example.com, b@example.com".into();
        let rule = f.to_rule(id(), t(8, 0)).unwrap();
        assert_eq!(
            rule.kind.describe(),
            "power below 5 for 15m between 08:00-18:00"
        );
        assert_eq!(rule.gateway.as_deref(), Some("gw-1"));
        assert_eq!(rule.recipients.len(), 2);
        let again = RuleForm::of(&rule);
        assert_eq!(again.to_rule(id(), t(8, 0)), Ok(rule));
        let silent = form("silent", "", "", "10m", "")
            .to_rule(id(), t(8, 0))
            .unwrap();
        assert_eq!(silent.kind.describe(), "silent for 10m");
        assert_eq!(silent.gateway, None);
    }

    #[test]
    fn each_bad_field_is_named() {
        let field = |f: RuleForm| f.to_rule(id(), t(8, 0)).unwrap_err().field;
        assert_eq!(field(form("never", "", "", "10m", "")), "kind");
        assert_eq!(field(form("silent", "power", "", "10m", "")), "value");
        assert_eq!(
            field(form("silent", "", "", "10m", "08:00-18:00")),
            "between"
        );
        assert_eq!(field(form("silent", "", "", "ten minutes", "")), "for");
        assert_eq!(field(form("silent", "", "", "0s", "")), "for");
        assert_eq!(field(form("above", "", "5", "10m", "")), "value");
        assert_eq!(
            field(form("above", "power", "lots", "10m", "")),
            "threshold"
        );
        assert_eq!(field(form("above", "power", "NaN", "10m", "")), "threshold");
        assert_eq!(field(form("above", "power", "5", "10m", "8-18")), "between");
        assert_eq!(
            field(form("above", "power", "5", "10m", "08:00-08:00")),
            "between"
        );
        let mut f = form("silent", "", "", "10m", "");
        f.gateway = "gw/1".into();
        assert_eq!(field(f.clone()), "gateway");
        f.gateway = String::new();
        f.recipients = "ops@example.com, nobody".into();
        assert_eq!(field(f.clone()), "recipients");
        f.recipients = String::new();
        let err = f.to_rule(id(), t(8, 0)).unwrap_err();
        assert_eq!(err.field, "recipients");
        assert!(err.to_string().starts_with("Recipients: "), "{err}");
    }

    #[test]
    fn the_fuzz_check_accepts_the_rule_forms_edge_cases() {
        // 2: Kind::Settings, whose body is read as a rule form too.
        for body in [
            "kind=below&value=power&threshold=1e308&for=30d&between=18%3A00-24%3A00&recipients=a%40example.com",
            "kind=above&value=%C3%A9nergie+totale&threshold=-0&for=1d2h3m4s&gateway=gw.1_x-2&recipients=A%40example.com%2Ca%40example.com%2Cb%40example.com",
            "kind=silent&for=1s&recipients=a%40example.com&csrf=00",
            "kind=silent&for=0s&recipients=a%40example.com",
            "kind=below&value=%09&threshold=1&for=1m&recipients=a%40example.com",
        ] {
            let mut input = vec![2u8];
            input.extend_from_slice(body.as_bytes());
            crate::pages::fuzz_check::forms(&input);
        }
    }

    fn mail(key: &MailKey, status: OutboxStatus) -> StoredMail {
        StoredMail {
            entry: OutboxEntry {
                status,
                last_error: None,
                ..OutboxEntry::new(key, t(9, 0))
            },
            message: Vec::new(),
        }
    }

    fn transition(kind: TransitionKind, at: DateTime<Utc>, gateway: &str) -> MailKey {
        MailKey::Transition {
            rule_id: id(),
            gateway_id: gateway.into(),
            kind,
            at,
        }
    }

    #[test]
    fn the_history_lists_transitions_newest_first_with_each_mail_status() {
        let rule = form("silent", "", "", "10m", "")
            .to_rule(id(), t(8, 0))
            .unwrap();
        let fired = transition(TransitionKind::Firing, t(9, 0), "gw-1");
        let resolved = transition(TransitionKind::Resolved, t(10, 0), "gw-1");
        let other = transition(TransitionKind::Firing, t(11, 0), "gw-2");
        let old = transition(TransitionKind::Firing, t(1, 0), "gw-3");
        let mails = vec![
            mail(
                &fired,
                OutboxStatus::Queued {
                    attempts: 0,
                    next_attempt: t(9, 0),
                },
            ),
            // the same key's final record wins over its stale pending row
            mail(
                &fired,
                OutboxStatus::Sent {
                    attempts: 1,
                    at: t(9, 1),
                },
            ),
            mail(
                &resolved,
                OutboxStatus::Failed {
                    attempts: 1,
                    at: t(10, 1),
                    reason: "550 mailbox unavailable".into(),
                },
            ),
            mail(&other, OutboxStatus::Unsent { at: t(11, 0) }),
            mail(&old, OutboxStatus::Unsent { at: t(1, 0) }),
            mail(
                &MailKey::Report {
                    day: t(0, 0).date_naive(),
                },
                OutboxStatus::Unsent { at: t(7, 0) },
            ),
        ];
        let (rows, total) = history_views(mails, &[rule], Timezone::UTC, t(2, 0));
        assert_eq!(total, 3);
        let summary: Vec<(&str, &str, &str)> = rows
            .iter()
            .map(|r| (r.gateway.as_str(), r.transition, r.status))
            .collect();
        assert_eq!(
            summary,
            [
                ("gw-2", "firing", "unsent"),
                ("gw-1", "resolved", "failed"),
                ("gw-1", "firing", "sent"),
            ]
        );
        assert_eq!(rows[0].detail, "not sent: mail is off");
        assert_eq!(
            rows[1].detail,
            "failed 2026-12-01 10:01:00: 550 mailbox unavailable"
        );
        assert_eq!(rows[2].rule, "silent for 10m");
        assert_eq!(rows[2].at, "2026-12-01 09:00:00");
    }

    #[test]
    fn firing_pairs_show_since_and_the_values_that_made_them_fire() {
        let states = vec![
            StoredState {
                rule_id: id(),
                gateway_id: "gw-1".into(),
                state: PairState::Firing {
                    since: t(9, 30),
                    values: Evidence::Value {
                        sample: Some(Sample {
                            sensor: "inverter-1".into(),
                            value: 2.5,
                            unit: "W".into(),
                            at: t(9, 29),
                        }),
                        held_since: Some(t(9, 14)),
                    },
                },
            },
            StoredState {
                rule_id: RuleId::parse("gone").unwrap(),
                gateway_id: "gw-2".into(),
                state: PairState::Firing {
                    since: t(9, 0),
                    values: Evidence::Silent {
                        last_seen: None,
                        counted_from: t(8, 0),
                    },
                },
            },
            StoredState {
                rule_id: id(),
                gateway_id: "gw-3".into(),
                state: PairState::Ok {
                    since: t(9, 0),
                    pending_since: None,
                },
            },
        ];
        let rule = form("below", "power", "5", "15m", "")
            .to_rule(id(), t(8, 0))
            .unwrap();
        let views = firing_views(&states, &[rule], Timezone::UTC, t(10, 0));
        assert_eq!(views.len(), 2);
        assert_eq!(views[0].gateway, "gw-2");
        assert_eq!(views[0].rule, "(rule removed)");
        assert_eq!(
            views[0].values,
            "never seen (silent counted from 2026-12-01 08:00:00)"
        );
        assert_eq!(views[1].rule, "power below 5 for 15m");
        assert_eq!(
            views[1].values,
            "inverter-1 2.5 W at 2026-12-01 09:29:00, condition held since 2026-12-01 09:14:00"
        );
        assert_eq!(views[1].since_ago, "30 min ago");
    }
}
