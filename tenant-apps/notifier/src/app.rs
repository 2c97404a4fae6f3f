//! The notifier as a running app: [`Notifier`] holds one tenant's rules,
//! pair states and settings, and its steps ([`Notifier::check`],
//! [`Notifier::take_requests`], [`Notifier::report_if_due`],
//! [`Notifier::send_due`]) each observe the store, plan with the pure core,
//! and apply the plan through [`Db`]. [`Notifier::run`] is the loop the
//! binary runs; tests call the steps themselves with a [`ManualClock`] so
//! that no real duration is waited out.
//!
//! ```text
//! every check (NOTIFIER_CHECK_INTERVAL_SECS, 30 s):
//!   rules, settings, registry, latest (last_seen only, or values if a value rule needs them)
//!   → check::plan_check → per change: state (+ outbox row) in one logged batch
//!   → the daily report if due (reads `readings` once a day)
//! every NOTIFIER_REQUEST_POLL_SECS (5 s): report requests → outbox rows
//! after each of those, and when the next queued mail is due: the outbox
//! ```
//!
//! Cassandra work per check is a fixed number of requests plus the pages
//! of `latest` and the registry: gateways, never readings.
//!
//! Mail off (no relay): states are tracked as with mail; a transition is
//! recorded in `sent/<UTC day>` as `Unsent` (the panel's history), nothing
//! is queued, no report is made.
//!
//! [`ManualClock`]: crate::clock::ManualClock

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, FixedOffset, NaiveDate, NaiveTime, Utc};
use lettre::message::Mailbox;
use lettre::Address;
use tenant_common::{connect_cassandra_lean, CassandraError, TenantConfig};
use tenant_schema::settings as keys;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::cassandra::{Db, DbError, Write};
use crate::check::{plan_check, CheckPlan, LatestRow, PairKey, Snapshot};
use crate::clock::Clock;
use crate::config::Settings;
use crate::evaluate::PairState;
use crate::mail::{self, DailyReport, GatewaySummary, MailError, Sender};
use crate::metrics::Metrics;
use crate::outbox::{MailKey, OutboxEntry, OutboxError, OutboxStatus, RetryPolicy};
use crate::rules::{parse_recipients, AlertRule};
use crate::smtp::{Mailer, SmtpError};
use crate::store::{kind, NO_BUCKET, PENDING};
use crate::timezone;

/// Why a step failed (the loop logs it and tries again next time).
#[derive(Debug, thiserror::Error)]
pub enum NotifierError {
    #[error(transparent)]
    Db(#[from] DbError),
    #[error(transparent)]
    Mail(#[from] MailError),
    #[error(transparent)]
    Outbox(#[from] OutboxError),
}

/// Why the notifier could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Cassandra(#[from] CassandraError),
    #[error(transparent)]
    Db(#[from] DbError),
    #[error(transparent)]
    Smtp(#[from] SmtpError),
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        addr: std::net::SocketAddr,
        #[source]
        source: std::io::Error,
    },
}

/// The relay and the sender's mailbox; `None` in [`Options::mail`] is mail
/// off.
#[derive(Debug, Clone)]
pub struct Mail {
    pub mailer: Mailer,
    pub from: Mailbox,
}

/// What a [`Notifier`] is for.
#[derive(Debug, Clone)]
pub struct Options {
    pub tenant_id: String,
    pub mail: Option<Mail>,
    pub policy: RetryPolicy,
}

/// The tenant's settings as the notifier uses them; a value that does not
/// parse means its default (as in the panel), with a warning.
#[derive(Debug, Clone, PartialEq)]
pub struct TenantSettings {
    pub display_name: Option<String>,
    pub timezone: FixedOffset,
    pub report_at: Option<NaiveTime>,
    pub report_recipients: Vec<Address>,
}

impl Default for TenantSettings {
    fn default() -> Self {
        Self {
            display_name: None,
            timezone: FixedOffset::east_opt(0).unwrap_or_else(|| unreachable!()),
            report_at: None,
            report_recipients: Vec::new(),
        }
    }
}

impl TenantSettings {
    /// The settings and the problems found (to log when they change).
    pub fn from_map(map: &HashMap<String, String>) -> (Self, Vec<String>) {
        let mut problems = Vec::new();
        let mut settings = TenantSettings {
            display_name: map
                .get(keys::DISPLAY_NAME)
                .map(|s| s.trim().to_owned())
                .filter(|s| !s.is_empty()),
            ..Default::default()
        };
        if let Some(raw) = map.get(keys::TIMEZONE) {
            match timezone::parse_timezone(raw) {
                Ok(tz) => settings.timezone = tz,
                Err(e) => problems.push(format!("{e}; using UTC")),
            }
        }
        if let Some(raw) = map.get(keys::REPORT_AT).filter(|r| !r.trim().is_empty()) {
            match timezone::parse_report_at(raw) {
                Ok(at) => settings.report_at = Some(at),
                Err(e) => problems.push(format!("{e}; no daily report")),
            }
        }
        if let Some(raw) = map
            .get(keys::REPORT_RECIPIENTS)
            .filter(|r| !r.trim().is_empty())
        {
            match parse_recipients(raw) {
                Ok(list) => settings.report_recipients = list,
                Err(e) => problems.push(format!("report recipients: {e}")),
            }
        }
        (settings, problems)
    }
}

/// What one check did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CheckSummary {
    pub rules: usize,
    pub transitions: usize,
    pub changes: usize,
    pub removed: usize,
    pub firing: usize,
}

/// What one pass over the outbox did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SendSummary {
    pub sent: usize,
    pub failed: usize,
    pub retried: usize,
    /// Mails still queued after the pass.
    pub pending: usize,
}

/// One tenant's notifier.
pub struct Notifier {
    db: Db,
    clock: Arc<dyn Clock>,
    metrics: Arc<Metrics>,
    options: Options,
    rules: Vec<AlertRule>,
    states: BTreeMap<PairKey, PairState>,
    settings: TenantSettings,
    problems: Vec<String>,
    last_reported: Option<NaiveDate>,
    /// A write failed: reread the states before the next plan, so a batch
    /// that landed after all is not planned (and mailed) again.
    resync: bool,
    /// A mail was queued since the outbox was last read.
    outbox_dirty: bool,
    /// When the next queued mail is due (clock time).
    next_due: Option<DateTime<Utc>>,
}

impl Notifier {
    /// A notifier that has read nothing yet; [`Notifier::load_states`]
    /// before the first check ([`Notifier::start`] does both).
    pub fn new(db: Db, clock: Arc<dyn Clock>, metrics: Arc<Metrics>, options: Options) -> Self {
        metrics
            .mail_on
            .store(options.mail.is_some(), std::sync::atomic::Ordering::Relaxed);
        Notifier {
            db,
            clock,
            metrics,
            options,
            rules: Vec::new(),
            states: BTreeMap::new(),
            settings: TenantSettings::default(),
            problems: Vec::new(),
            last_reported: None,
            resync: false,
            outbox_dirty: true,
            next_due: None,
        }
    }

    /// Reads the stored states (a restarted notifier goes on where it
    /// stopped: a pair that is firing stays firing, with no second mail)
    /// and the newest day reported.
    pub async fn load_states(&mut self) -> Result<(), NotifierError> {
        let (states, last_reported) = self.db.states().await?;
        self.states = states;
        self.last_reported = last_reported;
        self.update_firing();
        Ok(())
    }

    /// [`Notifier::new`] and [`Notifier::load_states`].
    pub async fn start(
        db: Db,
        clock: Arc<dyn Clock>,
        metrics: Arc<Metrics>,
        options: Options,
    ) -> Result<Self, NotifierError> {
        let mut notifier = Notifier::new(db, clock, metrics, options);
        notifier.load_states().await?;
        Ok(notifier)
    }

    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    pub fn states(&self) -> &BTreeMap<PairKey, PairState> {
        &self.states
    }

    pub fn settings(&self) -> &TenantSettings {
        &self.settings
    }

    fn mail_on(&self) -> bool {
        self.options.mail.is_some()
    }

    fn sender(&self) -> Option<Sender> {
        self.options.mail.as_ref().map(|m| Sender {
            tenant: self.options.tenant_id.clone(),
            display_name: self.settings.display_name.clone(),
            from: m.from.clone(),
        })
    }

    fn update_firing(&self) {
        let firing = self.states.values().filter(|s| s.is_firing()).count();
        Metrics::set(&self.metrics.firing, firing as u64);
    }

    /// Rereads the rules and the settings (two small reads; every check,
    /// so an edit shows within one check interval).
    async fn refresh(&mut self) -> Result<(), NotifierError> {
        let (rules, settings) = tokio::join!(self.db.rules(), self.db.settings());
        self.rules = rules?;
        let (settings, problems) = TenantSettings::from_map(&settings?);
        if problems != self.problems {
            for problem in &problems {
                tracing::warn!(tenant = %self.options.tenant_id, "setting ignored: {problem}");
            }
            self.problems = problems;
        }
        self.settings = settings;
        Metrics::set(&self.metrics.rules, self.rules.len() as u64);
        Ok(())
    }

    /// What the rules need to see: the registry, and `latest` (only its
    /// `last_seen` cells unless a value rule for all gateways exists).
    async fn snapshot(&self) -> Result<Snapshot, NotifierError> {
        if self.rules.is_empty() {
            return Ok(Snapshot::default());
        }
        let values_everywhere = self
            .rules
            .iter()
            .any(|r| r.gateway.is_none() && r.kind.value_condition().is_some());
        let registry = self.db.registry().await?;
        let latest: Vec<LatestRow> = if values_everywhere {
            self.db.latest(None).await?
        } else {
            let mut rows = self.db.last_seen().await?;
            let scoped: BTreeSet<&str> = self
                .rules
                .iter()
                .filter(|r| r.kind.value_condition().is_some())
                .filter_map(|r| r.gateway.as_deref())
                .collect();
            for gateway in scoped {
                rows.extend(self.db.latest(Some(gateway)).await?);
            }
            rows
        };
        Ok(Snapshot::build(registry, latest))
    }

    /// One check: reread rules and settings, observe, plan, apply.
    pub async fn check(&mut self) -> Result<CheckSummary, NotifierError> {
        if self.resync {
            self.states = self.db.states().await?.0;
            self.resync = false;
        }
        self.refresh().await?;
        let snapshot = self.snapshot().await?;
        let now = self.clock.now();
        let plan = plan_check(
            &self.rules,
            &snapshot,
            &self.states,
            &self.settings.timezone,
            now,
        );
        let summary = self.apply(plan, now).await;
        Metrics::add(&self.metrics.checks_total, 1);
        self.metrics
            .last_check_ok
            .store(Utc::now().timestamp(), std::sync::atomic::Ordering::Relaxed);
        summary
    }

    async fn apply(
        &mut self,
        plan: CheckPlan,
        now: DateTime<Utc>,
    ) -> Result<CheckSummary, NotifierError> {
        let mut summary = CheckSummary {
            rules: self.rules.len(),
            changes: plan.changes.len(),
            removed: plan.removed.len(),
            ..Default::default()
        };
        let mut first_error = None;
        for change in plan.changes {
            let mut writes = vec![Write::state(&change.key, &change.state)];
            if let Some(transition) = &change.transition {
                let key = MailKey::Transition {
                    rule_id: change.key.rule_id.clone(),
                    gateway_id: change.key.gateway_id.clone(),
                    kind: transition.kind,
                    at: transition.at,
                };
                let rule = self.rules.iter().find(|r| r.id == change.key.rule_id);
                match (self.sender(), rule) {
                    (Some(sender), Some(rule)) => {
                        match mail::alert_message(
                            &sender,
                            rule,
                            &change.key.gateway_id,
                            transition,
                            &self.settings.timezone,
                        ) {
                            Ok(message) => {
                                writes.push(Write::Pending {
                                    entry: OutboxEntry::new(&key, now),
                                    message: message.formatted(),
                                    due: now,
                                });
                                self.outbox_dirty = true;
                            }
                            Err(e) => writes.push(final_record(
                                &key,
                                now,
                                OutboxStatus::Failed {
                                    attempts: 0,
                                    at: now,
                                    reason: e.to_string(),
                                },
                            )),
                        }
                    }
                    _ => writes.push(final_record(&key, now, OutboxStatus::Unsent { at: now })),
                }
                tracing::info!(
                    tenant = %self.options.tenant_id,
                    rule = %change.key.rule_id,
                    gateway = %change.key.gateway_id,
                    transition = transition.kind.as_str(),
                    mail = self.mail_on(),
                    "alert transition"
                );
            }
            match self.db.apply("write an alert transition", &writes).await {
                Ok(()) => {
                    if change.transition.is_some() {
                        summary.transitions += 1;
                        Metrics::add(&self.metrics.transitions_total, 1);
                    }
                    self.states.insert(change.key, change.state);
                }
                Err(e) => {
                    self.resync = true;
                    first_error.get_or_insert(e);
                }
            }
        }
        for key in plan.removed {
            let delete = Write::Delete {
                kind: kind::STATE,
                bucket: NO_BUCKET.to_owned(),
                id: crate::schema::state_id(key.rule_id.as_str(), &key.gateway_id),
            };
            match self.db.apply("drop an alert state", &[delete]).await {
                Ok(()) => {
                    self.states.remove(&key);
                }
                Err(e) => {
                    first_error.get_or_insert(e);
                }
            }
        }
        self.update_firing();
        summary.firing = self.states.values().filter(|s| s.is_firing()).count();
        match first_error {
            Some(e) => Err(e.into()),
            None => Ok(summary),
        }
    }

    /// Every gateway the panel's report lists: the registry's (revoked
    /// ones too) and those in `latest`, sorted.
    async fn report_gateways(&self) -> Result<Vec<String>, NotifierError> {
        let mut ids: BTreeSet<String> = self
            .db
            .registry()
            .await?
            .into_iter()
            .map(|(id, _)| id)
            .collect();
        ids.extend(self.db.last_seen().await?.into_iter().map(|r| r.gateway_id));
        Ok(ids.into_iter().collect())
    }

    /// The report mail of one local day, formatted.
    async fn report_mail(
        &self,
        sender: &Sender,
        key: MailKey,
        day: NaiveDate,
        recipients: &[Address],
        now: DateTime<Utc>,
    ) -> Result<Vec<u8>, NotifierError> {
        let ids = self.report_gateways().await?;
        let bounds = timezone::day_bounds(&self.settings.timezone, day);
        let rows = self.db.daily_rows(&ids, day, bounds).await?;
        let csv = tenant_schema::energy::to_csv(&rows);
        let gateways: Vec<GatewaySummary> = rows
            .iter()
            .map(|r| GatewaySummary {
                gateway_id: r.gateway_id.clone(),
                energy_wh: r.stats.energy_wh,
                peak_w: r.stats.peak_w,
                samples: r.stats.samples,
            })
            .collect();
        let message = mail::report_message(
            sender,
            &DailyReport {
                key,
                day,
                gateways: &gateways,
                csv: csv.as_bytes(),
                recipients,
                made_at: now,
            },
        )?;
        Metrics::add(&self.metrics.reports_total, 1);
        Ok(message.formatted())
    }

    /// Turns each report request into an outbox row, and deletes the
    /// request, in one logged batch.
    pub async fn take_requests(&mut self) -> Result<usize, NotifierError> {
        let requests = self.db.report_requests().await?;
        let mut taken = 0;
        for request in requests {
            let request = match request {
                Ok(r) => r,
                Err(id) => {
                    tracing::warn!(request = %id, "dropping an unreadable report request");
                    self.db
                        .apply("drop a report request", &[delete_request(&id)])
                        .await?;
                    continue;
                }
            };
            let now = self.clock.now();
            let key = MailKey::Requested {
                day: request.day,
                request: request.id.clone(),
            };
            let recipients = if request.to.is_empty() {
                self.settings.report_recipients.clone()
            } else {
                request.to.clone()
            };
            let record = match self.sender() {
                None => final_record(&key, now, OutboxStatus::Unsent { at: now }),
                Some(_) if recipients.is_empty() => final_record(
                    &key,
                    now,
                    OutboxStatus::Failed {
                        attempts: 0,
                        at: now,
                        reason: "no recipients: give --to or set the report recipients".into(),
                    },
                ),
                Some(sender) => {
                    let message = self
                        .report_mail(&sender, key.clone(), request.day, &recipients, now)
                        .await?;
                    self.outbox_dirty = true;
                    Write::Pending {
                        entry: OutboxEntry::new(&key, now),
                        message,
                        due: now,
                    }
                }
            };
            self.db
                .apply(
                    "queue a requested report",
                    &[record, delete_request(&request.id)],
                )
                .await?;
            tracing::info!(tenant = %self.options.tenant_id, day = %request.day, request = %request.id, "report request taken");
            taken += 1;
        }
        Ok(taken)
    }

    /// Queues the daily report if its local time has come, with the day
    /// remembered in the same batch.
    pub async fn report_if_due(&mut self) -> Result<Option<NaiveDate>, NotifierError> {
        let (Some(at), Some(sender)) = (self.settings.report_at, self.sender()) else {
            return Ok(None);
        };
        if self.settings.report_recipients.is_empty() {
            return Ok(None);
        }
        let now = self.clock.now();
        let Some(day) = timezone::report_due(&self.settings.timezone, at, now, self.last_reported)
        else {
            return Ok(None);
        };
        let key = MailKey::Report { day };
        let recipients = self.settings.report_recipients.clone();
        let message = self
            .report_mail(&sender, key.clone(), day, &recipients, now)
            .await?;
        self.db
            .apply(
                "queue the daily report",
                &[
                    Write::Pending {
                        entry: OutboxEntry::new(&key, now),
                        message,
                        due: now,
                    },
                    Write::reported(day),
                ],
            )
            .await?;
        self.last_reported = Some(day);
        self.outbox_dirty = true;
        tracing::info!(tenant = %self.options.tenant_id, %day, "daily report queued");
        Ok(Some(day))
    }

    /// Whether the outbox has something to do now.
    pub fn outbox_due(&self) -> bool {
        self.mail_on()
            && (self.outbox_dirty || self.next_due.is_some_and(|d| d <= self.clock.now()))
    }

    /// Sends the queued mails that are due: lease, send, record; a final
    /// one is moved to `sent/<UTC day>` (a logged batch writes it to both
    /// rows, then the pending row is deleted).
    pub async fn send_due(&mut self) -> Result<SendSummary, NotifierError> {
        let mut summary = SendSummary::default();
        let Some(mail) = self.options.mail.clone() else {
            return Ok(summary);
        };
        if !self.outbox_due() {
            return Ok(summary);
        }
        self.outbox_dirty = false;
        let pending = self.db.pending().await?;
        let mut next_due: Option<DateTime<Utc>> = None;
        let policy = self.options.policy;
        for stored in pending {
            let entry = stored.entry;
            if entry.status.is_final() {
                // A pending row brought back by a lost delete: its record
                // exists; delete it again, never resend.
                self.db
                    .apply("delete a finished mail", &[delete_pending(&entry.key)])
                    .await?;
                continue;
            }
            let now = self.clock.now();
            if !entry.is_due(now) {
                next_due = min_time(next_due, entry.due_at());
                summary.pending += 1;
                continue;
            }
            let sending = entry.start_sending(now, &policy)?;
            let lease = sending.due_at().unwrap_or(now);
            self.db
                .apply(
                    "lease a mail",
                    &[Write::Pending {
                        entry: sending.clone(),
                        message: stored.message.clone(),
                        due: lease,
                    }],
                )
                .await?;
            let outcome = mail.mailer.send(&stored.message).await;
            let done_at = self.clock.now();
            let finished = sending.finish(outcome, done_at, &policy)?;
            match &finished.status {
                OutboxStatus::Queued { next_attempt, .. } => {
                    tracing::warn!(mail = %finished.key, error = finished.last_error.as_deref().unwrap_or(""), retry_at = %next_attempt, "relay did not take the mail; retrying later");
                    self.db
                        .apply(
                            "requeue a mail",
                            &[Write::Pending {
                                entry: finished.clone(),
                                message: stored.message,
                                due: *next_attempt,
                            }],
                        )
                        .await?;
                    summary.retried += 1;
                    summary.pending += 1;
                    Metrics::add(&self.metrics.retries_total, 1);
                    next_due = min_time(next_due, Some(*next_attempt));
                }
                status => {
                    let sent = matches!(status, OutboxStatus::Sent { .. });
                    self.db
                        .apply(
                            "record a finished mail",
                            &[
                                Write::Pending {
                                    entry: finished.clone(),
                                    message: stored.message.clone(),
                                    due: done_at,
                                },
                                Write::Sent {
                                    day: done_at.date_naive(),
                                    entry: finished.clone(),
                                    message: stored.message,
                                },
                            ],
                        )
                        .await?;
                    self.db
                        .apply("delete a finished mail", &[delete_pending(&finished.key)])
                        .await?;
                    if sent {
                        summary.sent += 1;
                        Metrics::add(&self.metrics.sent_total, 1);
                        tracing::info!(mail = %finished.key, relay = %mail.mailer.relay(), "mail sent");
                    } else {
                        summary.failed += 1;
                        Metrics::add(&self.metrics.failed_total, 1);
                        tracing::warn!(mail = %finished.key, reason = finished.last_error.as_deref().unwrap_or(""), "mail failed for good");
                    }
                }
            }
        }
        self.next_due = next_due;
        Metrics::set(&self.metrics.pending, summary.pending as u64);
        Ok(summary)
    }

    /// Everything due now, once: a check, the daily report, the report
    /// requests, the outbox. For tests with a manual clock (the loop runs
    /// the same steps on their own schedules).
    pub async fn step(&mut self) -> Result<(), NotifierError> {
        self.check().await?;
        self.report_if_due().await?;
        self.take_requests().await?;
        self.send_due().await?;
        Ok(())
    }

    /// The loop: a check every `check_interval`, report requests every
    /// `request_poll`, the outbox whenever a mail was queued or is due;
    /// until `shutdown`. A failed step is logged and tried again on its
    /// next turn.
    pub async fn run(
        mut self,
        check_interval: Duration,
        request_poll: Duration,
        shutdown: CancellationToken,
    ) {
        let mut next_check = Instant::now();
        let mut next_requests = Instant::now();
        loop {
            let started = Instant::now();
            if started >= next_check {
                next_check = started + check_interval;
                if let Err(e) = self.check().await {
                    tracing::warn!(error = %e, "check failed; trying again at the next one");
                }
                if let Err(e) = self.report_if_due().await {
                    tracing::warn!(error = %e, "daily report failed; trying again at the next check");
                }
            }
            if started >= next_requests {
                next_requests = started + request_poll;
                if let Err(e) = self.take_requests().await {
                    tracing::warn!(error = %e, "report requests failed; trying again");
                }
            }
            if self.outbox_due() {
                if let Err(e) = self.send_due().await {
                    // Read again at the next turn.
                    self.outbox_dirty = true;
                    tracing::warn!(error = %e, "outbox pass failed; trying again");
                }
            }
            let mut wake = next_check.min(next_requests);
            if let Some(due) = self.next_due {
                let wait = (due - self.clock.now()).to_std().unwrap_or_default();
                wake = wake.min(Instant::now() + wait);
            }
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = tokio::time::sleep_until(wake.into()) => {}
            }
        }
        tracing::info!("notifier stopped");
    }
}

fn min_time(a: Option<DateTime<Utc>>, b: Option<DateTime<Utc>>) -> Option<DateTime<Utc>> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// The record of a mail that ends at once (mail off, no recipients): in
/// `sent/<UTC day>`, with no message.
fn final_record(key: &MailKey, now: DateTime<Utc>, status: OutboxStatus) -> Write {
    let last_error = match &status {
        OutboxStatus::Failed { reason, .. } => Some(reason.clone()),
        _ => None,
    };
    Write::Sent {
        day: now.date_naive(),
        entry: OutboxEntry {
            key: key.as_text(),
            queued_at: now,
            status,
            last_error,
        },
        message: Vec::new(),
    }
}

fn delete_request(id: &str) -> Write {
    Write::Delete {
        kind: kind::REQUEST,
        bucket: NO_BUCKET.to_owned(),
        id: id.to_owned(),
    }
}

fn delete_pending(key: &str) -> Write {
    Write::Delete {
        kind: kind::OUTBOX,
        bucket: PENDING.to_owned(),
        id: key.to_owned(),
    }
}

/// Connects and prepares, retrying both until `deadline` (Cassandra may
/// accept connections a moment before the keyspace is usable).
pub async fn open_db(
    cfg: &TenantConfig,
    metrics: Arc<Metrics>,
    deadline: Instant,
) -> Result<Db, StartError> {
    loop {
        // No schema metadata: nothing here reads it, and it would hold the
        // schema of every keyspace on the node.
        let session = Arc::new(connect_cassandra_lean(cfg, deadline).await?);
        match Db::prepare(session, &cfg.keyspace, metrics.clone()).await {
            Ok(db) => return Ok(db),
            Err(e) if Instant::now() + Duration::from_secs(2) < deadline => {
                tracing::warn!(error = %e, "cannot prepare statements yet; retrying");
                tokio::time::sleep(Duration::from_secs(2)).await;
            }
            Err(e) => return Err(e.into()),
        }
    }
}

/// The `serve` command: health endpoint, Cassandra, the loop, until
/// `shutdown`.
pub async fn run(
    cfg: TenantConfig,
    settings: Settings,
    clock: Arc<dyn Clock>,
    shutdown: CancellationToken,
) -> Result<(), StartError> {
    let mail = match &settings.mail {
        Some(m) => Some(Mail {
            mailer: Mailer::new(m)?,
            from: m.from.clone(),
        }),
        None => None,
    };
    match &mail {
        Some(m) => {
            tracing::info!(tenant = %cfg.tenant_id, relay = %m.mailer.relay(), from = %m.from, "mail is on")
        }
        None => {
            tracing::warn!(tenant = %cfg.tenant_id, "mail is off (NOTIFIER_SMTP_HOST is not set): alert states are tracked, transitions recorded as unsent, nothing is mailed")
        }
    }
    let metrics = Arc::new(Metrics::default());
    metrics
        .mail_on
        .store(mail.is_some(), std::sync::atomic::Ordering::Relaxed);
    let listener = TcpListener::bind(settings.http_listen)
        .await
        .map_err(|source| StartError::Listen {
            addr: settings.http_listen,
            source,
        })?;
    // Healthy while checks complete: a few intervals of slack.
    let stale_after = settings.check_interval * 3 + Duration::from_secs(10);
    let http = tokio::spawn(crate::http::serve_http(
        listener,
        metrics.clone(),
        stale_after,
        shutdown.clone(),
    ));
    let deadline = Instant::now() + cfg.connect_timeout;
    let db = tokio::select! {
        _ = shutdown.cancelled() => return Ok(()),
        db = open_db(&cfg, metrics.clone(), deadline) => db?,
    };
    let options = Options {
        tenant_id: cfg.tenant_id.clone(),
        mail,
        policy: RetryPolicy::default(),
    };
    // The stored states, retried until Cassandra answers.
    let mut notifier = Notifier::new(db, clock, metrics, options);
    loop {
        match notifier.load_states().await {
            Ok(()) => break,
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the alert states yet; retrying");
                tokio::select! {
                    _ = shutdown.cancelled() => return Ok(()),
                    _ = tokio::time::sleep(Duration::from_secs(2)) => {}
                }
            }
        }
    }
    tracing::info!(
        tenant = %cfg.tenant_id,
        http = %settings.http_listen,
        check_interval_secs = settings.check_interval.as_secs(),
        "notifier ready"
    );
    notifier
        .run(settings.check_interval, settings.request_poll, shutdown)
        .await;
    http.abort();
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn settings_are_read_as_the_panel_writes_them_and_bad_ones_fall_back() {
        let (s, problems) = TenantSettings::from_map(&map(&[
            ("display_name", " Acme Solar "),
            ("timezone", "+02:00"),
            ("report_at", "07:30"),
            ("report_recipients", "a@example.com, b@example.com"),
        ]));
        assert!(problems.is_empty(), "{problems:?}");
        assert_eq!(s.display_name.as_deref(), Some("Acme Solar"));
        assert_eq!(s.timezone.local_minus_utc(), 7200);
        assert_eq!(s.report_at, NaiveTime::from_hms_opt(7, 30, 0));
        assert_eq!(s.report_recipients.len(), 2);

        let (s, problems) = TenantSettings::from_map(&map(&[
            ("timezone", "Europe/Paris"),
            ("report_at", "7 am"),
            ("report_recipients", "not an address"),
        ]));
        assert_eq!(problems.len(), 3, "{problems:?}");
        assert_eq!(s, TenantSettings::default());
        // Absent or empty: no report, UTC, no problem.
        let (s, problems) = TenantSettings::from_map(&map(&[("report_at", "")]));
        assert!(problems.is_empty());
        assert_eq!(s.report_at, None);
    }
}
