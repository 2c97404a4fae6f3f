//! Composing the notifier's mails with lettre's `Message` builder: an alert
//! mail per transition, and the daily report.
//!
//! - **Alert mails** are plain text. The subject is `[<tenant>] FIRING:
//!   <what> on <gateway>` (or `RESOLVED:`), `<what>` being the rule's
//!   headline (`power below 5`, `silent for 10m`); the body names the tenant,
//!   the rule's id and description, the gateway, the state with its time,
//!   and the values that made it fire (or what resolved it). Times are
//!   shown in the tenant's timezone with the UTC instant beside them.
//! - **The daily report** is `multipart/mixed`: a `multipart/alternative`
//!   summary (plain text and an HTML table of energy in Wh and peak power in
//!   W per gateway, with a total), and the day's CSV attached as
//!   `daily-report-<tenant>-<day>-<day>.csv`, the name the admin panel gives
//!   the same export. The CSV bytes and the per-gateway figures are inputs:
//!   the caller computes them as the panel does, so the attachment matches
//!   the panel's export byte for byte (it is attached base64-encoded, so no
//!   line ending is rewritten on the way).
//!
//! Every mail carries a `Message-ID` derived from its outbox key
//! ([`MailKey::message_id`]), the `Date` of the event, and
//! `Auto-Submitted: auto-generated` (RFC 3834), so vacation responders stay
//! quiet. The caller stores [`Message::formatted`] in the outbox: a retry
//! sends the very same bytes.

use std::fmt::{Display, Write as _};
use std::time::SystemTime;

use chrono::{DateTime, NaiveDate, SecondsFormat, TimeZone, Utc};
use lettre::message::header::{
    ContentTransferEncoding, ContentType, Header, HeaderName, HeaderValue,
};
use lettre::message::{Attachment, Body, Mailbox, MultiPart};
use lettre::{Address, Message};

use crate::evaluate::{Evidence, ResolveReason, Sample, Transition, TransitionKind};
use crate::outbox::MailKey;
use crate::rules::{format_duration, AlertRule};

/// Why a mail could not be built.
#[derive(Debug, thiserror::Error)]
pub enum MailError {
    #[error("cannot build the {what} mail for tenant {tenant}: {source}")]
    Build {
        what: &'static str,
        tenant: String,
        #[source]
        source: lettre::error::Error,
    },
    #[error("a {what} mail for tenant {tenant} has no recipients")]
    NoRecipients { what: &'static str, tenant: String },
}

/// `Auto-Submitted: auto-generated` (RFC 3834).
#[derive(Debug, Clone, Copy)]
struct AutoSubmitted;

impl Header for AutoSubmitted {
    fn name() -> HeaderName {
        HeaderName::new_from_ascii_str("Auto-Submitted")
    }

    fn parse(_: &str) -> Result<Self, Box<dyn std::error::Error + Send + Sync>> {
        Ok(AutoSubmitted)
    }

    fn display(&self) -> HeaderValue {
        HeaderValue::new(Self::name(), "auto-generated".to_owned())
    }
}

/// Who the tenant's mails are from, and for which tenant.
#[derive(Debug, Clone)]
pub struct Sender {
    /// The tenant id, shown in every subject as `[<tenant>]`.
    pub tenant: String,
    /// The tenant's display name (the `display_name` setting), shown with
    /// the id in every body.
    pub display_name: Option<String>,
    /// The `From` mailbox (`Alerts <alerts@example.com>`); its domain ends
    /// the `Message-ID`s.
    pub from: Mailbox,
}

impl Sender {
    fn builder(
        &self,
        key: &MailKey,
        date: DateTime<Utc>,
        subject: String,
    ) -> lettre::message::MessageBuilder {
        Message::builder()
            .from(self.from.clone())
            .subject(subject)
            .message_id(Some(key.message_id(&self.tenant, self.from.email.domain())))
            .date(SystemTime::from(date))
            .header(AutoSubmitted)
    }

    /// `Acme Solar (acme)`, or the id alone without a display name.
    pub fn tenant_line(&self) -> String {
        match self.display_name.as_deref().map(str::trim) {
            Some(name) if !name.is_empty() && name != self.tenant => {
                format!("{name} ({})", self.tenant)
            }
            _ => self.tenant.clone(),
        }
    }

    fn build_error(&self, what: &'static str) -> impl FnOnce(lettre::error::Error) -> MailError {
        let tenant = self.tenant.clone();
        move |source| MailError::Build {
            what,
            tenant,
            source,
        }
    }

    fn check_recipients(
        &self,
        what: &'static str,
        recipients: &[Address],
    ) -> Result<(), MailError> {
        if recipients.is_empty() {
            return Err(MailError::NoRecipients {
                what,
                tenant: self.tenant.clone(),
            });
        }
        Ok(())
    }
}

/// `2026-12-02 09:15:00 +01:00 (2026-12-02T08:15:00Z)`.
fn show_time<Tz: TimeZone>(tz: &Tz, at: DateTime<Utc>) -> String
where
    Tz::Offset: Display,
{
    format!(
        "{} ({})",
        at.with_timezone(tz).format("%Y-%m-%d %H:%M:%S %:z"),
        at.to_rfc3339_opts(SecondsFormat::Secs, true)
    )
}

/// `power = 3.2 W (sensor inv-1, read 2026-12-02 09:14:55 +01:00 (…))`.
fn show_sample<Tz: TimeZone>(tz: &Tz, name: &str, sample: &Sample) -> String
where
    Tz::Offset: Display,
{
    let unit = if sample.unit.is_empty() {
        String::new()
    } else {
        format!(" {}", sample.unit)
    };
    format!(
        "{name} = {}{unit} (sensor {}, read {})",
        sample.value,
        sample.sensor,
        show_time(tz, sample.at)
    )
}

/// What made it fire or what resolved it, in lines.
fn evidence_lines<Tz: TimeZone>(rule: &AlertRule, transition: &Transition, tz: &Tz) -> Vec<String>
where
    Tz::Offset: Display,
{
    let mut lines = Vec::new();
    match &transition.values {
        Evidence::Silent {
            last_seen,
            counted_from,
        } => {
            let silent_for = (transition.at - *counted_from).to_std().unwrap_or_default();
            match (transition.kind, last_seen) {
                (TransitionKind::Firing, Some(seen)) => lines.push(format!(
                    "Last frame: {} (silent for {}, more than {})",
                    show_time(tz, *seen),
                    format_duration(silent_for),
                    format_duration(rule.kind.for_())
                )),
                (TransitionKind::Firing, None) => lines.push(format!(
                    "Last frame: never; counted from the rule's creation at {} (silent for {}, more than {})",
                    show_time(tz, *counted_from),
                    format_duration(silent_for),
                    format_duration(rule.kind.for_())
                )),
                (TransitionKind::Resolved, Some(seen)) => {
                    lines.push(format!("Last frame: {}", show_time(tz, *seen)))
                }
                (TransitionKind::Resolved, None) => lines.push("Last frame: never".to_owned()),
            }
        }
        Evidence::Value { sample, held_since } => {
            let condition = rule.kind.value_condition();
            let name = condition.map_or("value", |c| c.value);
            match sample {
                Some(sample) => lines.push(format!("Value: {}", show_sample(tz, name, sample))),
                None => lines.push(format!("Value: the gateway reports no {name}")),
            }
            if let (Some(c), Some(since)) = (condition, held_since) {
                lines.push(format!(
                    "Held: {} {} since {} (first seen by the notifier), for at least {}",
                    c.comparison.as_str(),
                    c.threshold,
                    show_time(tz, *since),
                    format_duration(c.for_)
                ));
            }
        }
    }
    if let Some(since) = transition.firing_since {
        let lasted = (transition.at - since).to_std().unwrap_or_default();
        lines.push(format!(
            "Was firing: since {} ({})",
            show_time(tz, since),
            format_duration(lasted)
        ));
    }
    if let Some(reason) = transition.reason {
        lines.push(format!("Resolved because: {}", reason.describe()));
    }
    lines
}

/// The subject of an alert mail: `[acme] FIRING: power below 5 on gw-1`.
pub fn alert_subject(
    tenant: &str,
    rule: &AlertRule,
    gateway_id: &str,
    transition: &Transition,
) -> String {
    let state = match transition.kind {
        TransitionKind::Firing => "FIRING",
        TransitionKind::Resolved => "RESOLVED",
    };
    let mut subject = format!(
        "[{tenant}] {state}: {} on {gateway_id}",
        rule.kind.headline()
    );
    if transition.reason == Some(ResolveReason::WindowClosed) {
        subject.push_str(" (window closed)");
    }
    subject
}

/// The mail of one transition of one (rule, gateway) pair, to the rule's
/// recipients.
pub fn alert_message<Tz: TimeZone>(
    sender: &Sender,
    rule: &AlertRule,
    gateway_id: &str,
    transition: &Transition,
    tz: &Tz,
) -> Result<Message, MailError>
where
    Tz::Offset: Display,
{
    const WHAT: &str = "alert";
    sender.check_recipients(WHAT, &rule.recipients)?;
    let key = MailKey::Transition {
        rule_id: rule.id.clone(),
        gateway_id: gateway_id.to_owned(),
        kind: transition.kind,
        at: transition.at,
    };
    let subject = alert_subject(&sender.tenant, rule, gateway_id, transition);
    let mut body = String::new();
    let _ = writeln!(body, "{subject}\n");
    let _ = writeln!(body, "Tenant: {}", sender.tenant_line());
    let _ = writeln!(body, "Rule: {} ({})", rule.id, rule.kind.describe());
    let _ = writeln!(body, "Gateway: {gateway_id}");
    let _ = writeln!(
        body,
        "State: {} since {}",
        transition.kind.as_str(),
        show_time(tz, transition.at)
    );
    for line in evidence_lines(rule, transition, tz) {
        let _ = writeln!(body, "{line}");
    }
    let _ = writeln!(
        body,
        "\nYou get this mail because you are a recipient of rule {}.",
        rule.id
    );
    let mut builder = sender.builder(&key, transition.at, subject);
    for address in &rule.recipients {
        builder = builder.to(Mailbox::new(None, address.clone()));
    }
    builder
        .header(ContentType::TEXT_PLAIN)
        .body(body)
        .map_err(sender.build_error(WHAT))
}

/// One gateway's line of the daily report.
#[derive(Debug, Clone, PartialEq)]
pub struct GatewaySummary {
    pub gateway_id: String,
    pub energy_wh: f64,
    /// `None` when the gateway sent no power value that day.
    pub peak_w: Option<f64>,
    pub samples: u64,
}

/// What the daily report mail is made of.
#[derive(Debug, Clone)]
pub struct DailyReport<'a> {
    /// The outbox key: [`MailKey::Report`] for the daily one,
    /// [`MailKey::Requested`] for one asked for (its `Message-ID`).
    pub key: MailKey,
    pub day: NaiveDate,
    /// Sorted as they should be shown (by gateway id, as the panel does).
    pub gateways: &'a [GatewaySummary],
    /// The panel's CSV export of that day, byte for byte.
    pub csv: &'a [u8],
    pub recipients: &'a [Address],
    /// When the report was made (its `Date`).
    pub made_at: DateTime<Utc>,
}

/// The name the admin panel gives the CSV export of one day.
pub fn report_filename(tenant: &str, day: NaiveDate) -> String {
    format!("daily-report-{tenant}-{day}-{day}.csv")
}

fn escape_html(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len());
    for c in raw.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

fn show_peak(peak: Option<f64>) -> String {
    peak.map_or_else(|| "-".to_owned(), |p| format!("{p:.1}"))
}

/// The report's totals: energy summed, the largest peak, samples summed.
fn totals(gateways: &[GatewaySummary]) -> GatewaySummary {
    GatewaySummary {
        gateway_id: "total".to_owned(),
        energy_wh: gateways.iter().map(|g| g.energy_wh).sum(),
        peak_w: gateways.iter().filter_map(|g| g.peak_w).reduce(f64::max),
        samples: gateways.iter().map(|g| g.samples).sum(),
    }
}

/// The daily report: an HTML (and plain text) summary, and the CSV
/// attached.
pub fn report_message(sender: &Sender, report: &DailyReport<'_>) -> Result<Message, MailError> {
    const WHAT: &str = "daily report";
    sender.check_recipients(WHAT, report.recipients)?;
    let tenant = &sender.tenant;
    let day = report.day;
    let subject = format!("[{tenant}] Daily report for {day}");
    let total = totals(report.gateways);

    let mut text = format!(
        "{subject}\n\nTenant: {}\nEnergy (Wh) and peak power (W) per gateway, local day {day}:\n\n",
        sender.tenant_line()
    );
    let mut html = format!(
        "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>{}</title></head><body>\n\
         <h1>Daily report for {day}</h1>\n<p>Tenant <b>{}</b>: energy and peak power per gateway for the local day {day}.</p>\n\
         <table border=\"1\" cellpadding=\"4\" cellspacing=\"0\">\n\
         <thead><tr><th>Gateway</th><th>Energy (Wh)</th><th>Peak power (W)</th><th>Samples</th></tr></thead>\n<tbody>\n",
        escape_html(&subject),
        escape_html(&sender.tenant_line())
    );
    for g in report.gateways {
        let _ = writeln!(
            text,
            "{}: {:.1} Wh, peak {} W, samples {}",
            g.gateway_id,
            g.energy_wh,
            show_peak(g.peak_w),
            g.samples
        );
        let _ = writeln!(
            html,
            "<tr><td>{}</td><td align=\"right\">{:.1}</td><td align=\"right\">{}</td><td align=\"right\">{}</td></tr>",
            escape_html(&g.gateway_id),
            g.energy_wh,
            show_peak(g.peak_w),
            g.samples
        );
    }
    if report.gateways.is_empty() {
        text.push_str("(no gateways)\n");
        html.push_str("<tr><td colspan=\"4\">No gateways.</td></tr>\n");
    }
    let _ = writeln!(
        text,
        "\nTotal: {:.1} Wh, largest peak {} W\n\nThe CSV of the day is attached.",
        total.energy_wh,
        show_peak(total.peak_w)
    );
    let _ = write!(
        html,
        "</tbody>\n<tfoot><tr><th>Total</th><th align=\"right\">{:.1}</th><th align=\"right\">{}</th><th align=\"right\">{}</th></tr></tfoot>\n\
         </table>\n<p>The CSV of the day is attached.</p>\n</body></html>\n",
        total.energy_wh,
        show_peak(total.peak_w),
        total.samples
    );

    // A constant known to parse.
    let csv_type = ContentType::parse("text/csv; charset=utf-8").unwrap_or(ContentType::TEXT_PLAIN);
    // Base64, so the bytes arrive as they left (7bit or quoted-printable
    // would turn the CSV's LF line ends into CRLF). Base64 takes any bytes,
    // so the fallback is never used.
    let csv = Body::new_with_encoding(report.csv.to_vec(), ContentTransferEncoding::Base64)
        .unwrap_or_else(Body::new);
    let attachment = Attachment::new(report_filename(tenant, day)).body(csv, csv_type);
    let body = MultiPart::mixed()
        .multipart(MultiPart::alternative_plain_html(text, html))
        .singlepart(attachment);

    let mut builder = sender.builder(&report.key, report.made_at, subject);
    for address in report.recipients {
        builder = builder.to(Mailbox::new(None, address.clone()));
    }
    builder.multipart(body).map_err(sender.build_error(WHAT))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::evaluate::{evaluate, Observation, PairState};
    use crate::rules::{parse_recipients, LocalWindow, RuleId, RuleKind};
    use chrono::FixedOffset;
    use mailparse::{parse_mail, MailHeaderMap, ParsedMail};
    use std::time::Duration;

    fn sender() -> Sender {
        Sender {
            tenant: "acme".into(),
            display_name: Some("Acme Solar".into()),
            from: "Acme alerts <alerts@example.com>".parse().unwrap(),
        }
    }

    fn t(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    fn plus_one() -> FixedOffset {
        FixedOffset::east_opt(3600).unwrap()
    }

    fn below_rule() -> AlertRule {
        AlertRule::new(
            RuleId::parse("k3j9x2").unwrap(),
            RuleKind::Below {
                value: "power".into(),
                threshold: 5.0,
                for_: Duration::from_secs(900),
                between: Some(LocalWindow::parse("08:00-18:00").unwrap()),
            },
            None,
            parse_recipients("a@example.com,b@example.org").unwrap(),
            t("2026-12-01T00:00:00Z"),
        )
        .unwrap()
    }

    fn low_power() -> Observation {
        Observation {
            last_seen: Some(t("2026-12-02T08:00:00Z")),
            value: Some(Sample {
                sensor: "inv-1".into(),
                value: 3.25,
                unit: "W".into(),
                at: t("2026-12-02T07:59:58Z"),
            }),
        }
    }

    /// Fires the rule: pending at 08:00 UTC (09:00 local), firing at 08:15.
    fn firing(rule: &AlertRule) -> (PairState, Transition) {
        let tz = plus_one();
        let pending = evaluate(
            rule,
            &low_power(),
            &tz,
            t("2026-12-02T08:00:00Z"),
            &PairState::initial(rule),
        );
        let fired = evaluate(
            rule,
            &low_power(),
            &tz,
            t("2026-12-02T08:15:00Z"),
            &pending.state,
        );
        let transition = fired.transition.unwrap();
        (fired.state, transition)
    }

    fn header(mail: &ParsedMail<'_>, name: &str) -> String {
        mail.headers.get_first_value(name).unwrap_or_default()
    }

    fn addresses(mail: &ParsedMail<'_>, name: &str) -> Vec<String> {
        let value = mail.headers.get_first_header(name).unwrap();
        let list = mailparse::addrparse_header(value).unwrap();
        list.iter()
            .map(|a| match a {
                mailparse::MailAddr::Single(s) => s.addr.clone(),
                mailparse::MailAddr::Group(g) => g.group_name.clone(),
            })
            .collect()
    }

    #[test]
    fn a_firing_mail_names_tenant_rule_gateway_and_values() {
        let rule = below_rule();
        let (_, transition) = firing(&rule);
        let message = alert_message(&sender(), &rule, "gw-1", &transition, &plus_one()).unwrap();
        let bytes = message.formatted();
        let mail = parse_mail(&bytes).unwrap();
        assert_eq!(
            header(&mail, "Subject"),
            "[acme] FIRING: power below 5 on gw-1"
        );
        assert_eq!(addresses(&mail, "To"), ["a@example.com", "b@example.org"]);
        assert_eq!(addresses(&mail, "From"), ["alerts@example.com"]);
        assert_eq!(header(&mail, "Auto-Submitted"), "auto-generated");
        assert_eq!(header(&mail, "Date"), "Wed, 02 Dec 2026 08:15:00 +0000");
        let key = MailKey::Transition {
            rule_id: rule.id.clone(),
            gateway_id: "gw-1".into(),
            kind: TransitionKind::Firing,
            at: transition.at,
        };
        assert_eq!(
            header(&mail, "Message-ID"),
            key.message_id("acme", "example.com")
        );
        assert_eq!(mail.ctype.mimetype, "text/plain");
        let body = mail.get_body().unwrap();
        for expected in [
            "Tenant: Acme Solar (acme)",
            "Rule: k3j9x2 (power below 5 for 15m between 08:00-18:00)",
            "Gateway: gw-1",
            "State: firing since 2026-12-02 09:15:00 +01:00 (2026-12-02T08:15:00Z)",
            "Value: power = 3.25 W (sensor inv-1, read 2026-12-02 08:59:58 +01:00 (2026-12-02T07:59:58Z))",
            "Held: below 5 since 2026-12-02 09:00:00 +01:00 (2026-12-02T08:00:00Z)",
        ] {
            assert!(body.contains(expected), "{expected:?} not in:\n{body}");
        }
        assert!(!body.contains("Resolved because"), "{body}");
    }

    #[test]
    fn a_resolved_mail_says_what_resolved_it_and_since_when_it_fired() {
        let rule = below_rule();
        let (state, _) = firing(&rule);
        // 18:00 local: the window closes.
        let closed = evaluate(
            &rule,
            &low_power(),
            &plus_one(),
            t("2026-12-02T17:00:00Z"),
            &state,
        );
        let transition = closed.transition.unwrap();
        let message = alert_message(&sender(), &rule, "gw-1", &transition, &plus_one()).unwrap();
        let bytes = message.formatted();
        let mail = parse_mail(&bytes).unwrap();
        assert_eq!(
            header(&mail, "Subject"),
            "[acme] RESOLVED: power below 5 on gw-1 (window closed)"
        );
        let body = mail.get_body().unwrap();
        for expected in [
            "State: resolved since 2026-12-02 18:00:00 +01:00",
            "Was firing: since 2026-12-02 09:15:00 +01:00 (2026-12-02T08:15:00Z) (8h45m)",
            "Resolved because: the rule's time window closed",
            "Value: power = 3.25 W",
        ] {
            assert!(body.contains(expected), "{expected:?} not in:\n{body}");
        }
        let firing_key = MailKey::Transition {
            rule_id: rule.id.clone(),
            gateway_id: "gw-1".into(),
            kind: TransitionKind::Firing,
            at: t("2026-12-02T08:15:00Z"),
        };
        assert_ne!(
            header(&mail, "Message-ID"),
            firing_key.message_id("acme", "example.com")
        );
    }

    #[test]
    fn a_silent_mail_says_when_the_gateway_was_last_heard() {
        let rule = AlertRule::new(
            RuleId::parse("s1").unwrap(),
            RuleKind::Silent {
                for_: Duration::from_secs(600),
            },
            Some("gw-7".into()),
            parse_recipients("ops@example.com").unwrap(),
            t("2026-12-02T07:00:00Z"),
        )
        .unwrap();
        let tz = FixedOffset::east_opt(0).unwrap();
        let last = Observation {
            last_seen: Some(t("2026-12-02T08:00:00Z")),
            value: None,
        };
        let fired = evaluate(
            &rule,
            &last,
            &tz,
            t("2026-12-02T08:10:30Z"),
            &PairState::initial(&rule),
        );
        let message = alert_message(
            &sender(),
            &rule,
            "gw-7",
            fired.transition.as_ref().unwrap(),
            &tz,
        )
        .unwrap();
        let bytes = message.formatted();
        let mail = parse_mail(&bytes).unwrap();
        assert_eq!(
            header(&mail, "Subject"),
            "[acme] FIRING: silent for 10m on gw-7"
        );
        assert_eq!(addresses(&mail, "To"), ["ops@example.com"]);
        let body = mail.get_body().unwrap();
        assert!(
            body.contains("Last frame: 2026-12-02 08:00:00 +00:00 (2026-12-02T08:00:00Z) (silent for 10m30s, more than 10m)"),
            "{body}"
        );
        let never = evaluate(
            &rule,
            &Observation::default(),
            &tz,
            t("2026-12-02T07:10:01Z"),
            &PairState::initial(&rule),
        );
        let message = alert_message(
            &sender(),
            &rule,
            "gw-7",
            never.transition.as_ref().unwrap(),
            &tz,
        )
        .unwrap();
        let bytes = message.formatted();
        let body = parse_mail(&bytes).unwrap().get_body().unwrap();
        assert!(
            body.contains(
                "Last frame: never; counted from the rule's creation at 2026-12-02 07:00:00"
            ),
            "{body}"
        );
    }

    fn summaries() -> Vec<GatewaySummary> {
        vec![
            GatewaySummary {
                gateway_id: "gw-1".into(),
                energy_wh: 12_345.678_9,
                peak_w: Some(2_500.0),
                samples: 8_640,
            },
            GatewaySummary {
                gateway_id: "gw-2".into(),
                energy_wh: 0.0,
                peak_w: None,
                samples: 0,
            },
        ]
    }

    #[test]
    fn the_daily_report_has_an_html_table_and_the_csv_attached_byte_for_byte() {
        let day = NaiveDate::from_ymd_opt(2026, 12, 1).unwrap();
        let csv = b"gateway_id,day,energy_wh,peak_w,samples\ngw-1,2026-12-01,12345.679,2500.000,8640\ngw-2,2026-12-01,0.000,,0\n";
        let recipients = parse_recipients("boss@example.com").unwrap();
        let gateways = summaries();
        let report = DailyReport {
            key: MailKey::Report { day },
            day,
            gateways: &gateways,
            csv,
            recipients: &recipients,
            made_at: t("2026-12-02T06:00:05Z"),
        };
        let message = report_message(&sender(), &report).unwrap();
        let bytes = message.formatted();
        let mail = parse_mail(&bytes).unwrap();
        assert_eq!(
            header(&mail, "Subject"),
            "[acme] Daily report for 2026-12-01"
        );
        assert_eq!(addresses(&mail, "To"), ["boss@example.com"]);
        assert_eq!(
            header(&mail, "Message-ID"),
            MailKey::Report { day }.message_id("acme", "example.com")
        );
        assert_eq!(mail.ctype.mimetype, "multipart/mixed");
        assert_eq!(mail.subparts.len(), 2);

        let alternative = &mail.subparts[0];
        assert_eq!(alternative.ctype.mimetype, "multipart/alternative");
        let html = alternative
            .subparts
            .iter()
            .find(|p| p.ctype.mimetype == "text/html")
            .unwrap()
            .get_body()
            .unwrap();
        for expected in [
            "<tr><td>gw-1</td><td align=\"right\">12345.7</td><td align=\"right\">2500.0</td><td align=\"right\">8640</td></tr>",
            "<tr><td>gw-2</td><td align=\"right\">0.0</td><td align=\"right\">-</td><td align=\"right\">0</td></tr>",
            "<tfoot><tr><th>Total</th><th align=\"right\">12345.7</th><th align=\"right\">2500.0</th><th align=\"right\">8640</th></tr></tfoot>",
        ] {
            assert!(html.contains(expected), "{expected:?} not in:\n{html}");
        }
        let text = alternative
            .subparts
            .iter()
            .find(|p| p.ctype.mimetype == "text/plain")
            .unwrap()
            .get_body()
            .unwrap();
        assert!(
            text.contains("gw-1: 12345.7 Wh, peak 2500.0 W, samples 8640"),
            "{text}"
        );

        let attachment = &mail.subparts[1];
        assert_eq!(attachment.ctype.mimetype, "text/csv");
        let disposition = attachment.get_content_disposition();
        assert_eq!(
            disposition.disposition,
            mailparse::DispositionType::Attachment
        );
        assert_eq!(
            disposition.params.get("filename").map(String::as_str),
            Some("daily-report-acme-2026-12-01-2026-12-01.csv")
        );
        assert_eq!(
            attachment
                .headers
                .get_first_value("Content-Transfer-Encoding")
                .as_deref(),
            Some("base64")
        );
        assert_eq!(attachment.get_body_raw().unwrap(), csv);
    }

    #[test]
    fn report_html_escapes_what_it_shows() {
        let gateways = vec![GatewaySummary {
            gateway_id: "<b>x</b>".into(),
            energy_wh: 1.0,
            peak_w: Some(1.0),
            samples: 1,
        }];
        let recipients = parse_recipients("boss@example.com").unwrap();
        let report = DailyReport {
            key: MailKey::Report {
                day: NaiveDate::from_ymd_opt(2026, 12, 1).unwrap(),
            },
            day: NaiveDate::from_ymd_opt(2026, 12, 1).unwrap(),
            gateways: &gateways,
            csv: b"",
            recipients: &recipients,
            made_at: t("2026-12-02T06:00:00Z"),
        };
        let bytes = report_message(&sender(), &report).unwrap().formatted();
        let mail = parse_mail(&bytes).unwrap();
        let html = mail.subparts[0].subparts[1].get_body().unwrap();
        assert!(html.contains("&lt;b&gt;x&lt;/b&gt;"), "{html}");
        assert!(!html.contains("<b>x</b>"), "{html}");
    }

    #[test]
    fn a_mail_without_recipients_is_refused() {
        let mut rule = below_rule();
        let (_, transition) = firing(&rule);
        rule.recipients.clear();
        let err = alert_message(&sender(), &rule, "gw-1", &transition, &plus_one()).unwrap_err();
        assert!(err.to_string().contains("no recipients"), "{err}");
        let report = DailyReport {
            key: MailKey::Report {
                day: NaiveDate::from_ymd_opt(2026, 12, 1).unwrap(),
            },
            day: NaiveDate::from_ymd_opt(2026, 12, 1).unwrap(),
            gateways: &[],
            csv: b"",
            recipients: &[],
            made_at: t("2026-12-02T06:00:00Z"),
        };
        assert!(matches!(
            report_message(&sender(), &report),
            Err(MailError::NoRecipients { .. })
        ));
    }
}
