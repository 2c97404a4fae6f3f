//! The outbox, pure: the life of one queued mail, its retry schedule, and
//! the idempotency key that keeps a transition from being queued twice.
//!
//! ```text
//!            start_sending (lease)             Accepted (2xx)
//! Queued ─────────────────────────▶ Sending ───────────────────▶ Sent
//!   ▲   ◀── Transient (4xx, connection: backoff) ──┘  │
//!   │                                                 └─ Permanent (5xx) ─▶ Failed
//!   └── lease expired (a sender that died) ─▶ due again
//! ```
//!
//! - A 4xx answer or a connection error (relay down, timeout, TLS) is
//!   transient: the mail is queued again after a backoff of 30 s doubling
//!   to 30 min, jittered (a factor in `[0.5, 1)` derived from the key and
//!   the attempt, so mails queued together spread out, and tests know the
//!   exact times). It is kept until the relay takes it; only a mail still
//!   refused [`RetryPolicy::give_up_after`] (7 days) after it was queued is
//!   recorded as failed, with the last error: an alert that old is news to
//!   no one, and the record says so instead of retrying forever.
//! - A 5xx answer is final: recorded as `Failed` with the relay's reason.
//!
//! # Once, and the window that is left
//!
//! **Queuing is exactly once.** A transition is written to the store with
//! the pair's new state and its outbox row in one logged batch
//! (the `notifier` table, `schema`), the row keyed by [`MailKey`] (rule id,
//! gateway id, transition kind, transition time). Either both are written
//! or neither: a notifier that restarts after the write sees the pair
//! already `firing` and makes no new transition; one that restarts before
//! it made none that anybody saw, and the check runs again. A retried write
//! (a timeout whose batch did land) writes the same key again: the same
//! row, not a second mail.
//!
//! **Sending is at least once.** Before the SMTP transaction the row is
//! marked `Sending` with a lease (until `now + lease`); after the relay's
//! answer it is marked `Sent`, `Failed`, or `Queued` again. A notifier that
//! dies in between leaves a `Sending` row whose lease expires, and the mail
//! becomes due again. The alternative, never resending a `Sending` row
//! (at most once), would lose every mail whose sender died before or during
//! the transaction, which the issue forbids ("nothing is lost"). So one
//! window is left: **the relay accepted the DATA, then the notifier died
//! before recording `Sent`** — that mail goes out twice. SMTP has no way to
//! ask a relay whether it already took a message, so no client can close
//! this window; it is as short as one write to the store. The copy carries
//! the same `Message-ID` (derived from the key, [`MailKey::message_id`])
//! and the same bytes (the outbox stores the formatted message), so mail
//! systems that drop duplicates by `Message-ID` drop it, and a reader sees
//! the same mail twice, never two different alerts.
//!
//! One notifier runs per tenant. Two at once (an overlap during a redeploy)
//! could both take a queued row; a lightweight transaction on the lease
//! would stop that, at the price of mixing LWT and plain writes on one row,
//! which Cassandra advises against. Left for when the notifier can run
//! replicated.

use std::time::Duration;

use chrono::{DateTime, NaiveDate, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::evaluate::TransitionKind;
use crate::rules::RuleId;

/// Why an outbox step was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum OutboxError {
    #[error("mail {key} is not due until {due}")]
    NotDue { key: String, due: DateTime<Utc> },
    #[error("mail {key} is not being sent (it is {status})")]
    NotSending { key: String, status: &'static str },
    #[error("mail {key} is already {status}")]
    Finished { key: String, status: &'static str },
}

/// What identifies a mail, so it is queued once: the outbox row's key.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum MailKey {
    /// An alert transition of one (rule, gateway) pair.
    Transition {
        rule_id: RuleId,
        gateway_id: String,
        kind: TransitionKind,
        at: DateTime<Utc>,
    },
    /// The daily report of one local day.
    Report { day: NaiveDate },
    /// A report asked for with `provision report send` (one mail per
    /// request, `store::ReportRequest::id`).
    Requested { day: NaiveDate, request: String },
}

impl MailKey {
    /// The key as stored: `alert/<rule>/<gateway>/<firing|resolved>/<time>`
    /// (time in RFC 3339 UTC to the millisecond, what a Cassandra timestamp
    /// keeps) or `report/<day>`. Rule and gateway ids never contain `/`.
    pub fn as_text(&self) -> String {
        match self {
            MailKey::Transition {
                rule_id,
                gateway_id,
                kind,
                at,
            } => format!(
                "alert/{rule_id}/{gateway_id}/{}/{}",
                kind.as_str(),
                at.to_rfc3339_opts(SecondsFormat::Millis, true)
            ),
            MailKey::Report { day } => format!("report/{day}"),
            MailKey::Requested { day, request } => format!("report/{day}/{request}"),
        }
    }

    /// Reads a stored key back; `None` for text no key makes.
    pub fn parse(text: &str) -> Option<MailKey> {
        let parts: Vec<&str> = text.split('/').collect();
        match parts.as_slice() {
            ["alert", rule, gateway, kind, at] => Some(MailKey::Transition {
                rule_id: RuleId::parse(rule).ok()?,
                gateway_id: (*gateway).to_owned(),
                kind: match *kind {
                    "firing" => TransitionKind::Firing,
                    "resolved" => TransitionKind::Resolved,
                    _ => return None,
                },
                at: DateTime::parse_from_rfc3339(at).ok()?.with_timezone(&Utc),
            }),
            ["report", day] => Some(MailKey::Report {
                day: day.parse().ok()?,
            }),
            ["report", day, request] if !request.is_empty() => Some(MailKey::Requested {
                day: day.parse().ok()?,
                request: (*request).to_owned(),
            }),
            _ => None,
        }
    }

    /// The `Message-ID` of the mail: the same for every attempt and every
    /// copy, different for every tenant and key.
    pub fn message_id(&self, tenant: &str, domain: &str) -> String {
        let digest = Sha256::digest(format!("{tenant}\n{}", self.as_text()).as_bytes());
        format!("<{}.{tenant}@{domain}>", hex::encode(&digest[..16]))
    }
}

/// How the relay answered one attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SendOutcome {
    /// 2xx: the relay took the message.
    Accepted,
    /// 4xx, or no answer (connection refused, timeout, TLS): try again later.
    Transient(String),
    /// 5xx: the relay refused the message for good.
    Permanent(String),
}

impl SendOutcome {
    /// The outcome of an SMTP reply code and its text.
    pub fn from_reply(code: u16, text: &str) -> Self {
        match code {
            200..=299 => SendOutcome::Accepted,
            500..=599 => SendOutcome::Permanent(format!("{code} {text}")),
            // 4xx and anything a relay should not answer: keep the mail.
            _ => SendOutcome::Transient(format!("{code} {text}")),
        }
    }
}

/// The retry schedule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// The delay after the first failed attempt.
    pub first: Duration,
    /// The longest delay.
    pub max: Duration,
    /// A mail still not taken this long after it was queued is failed.
    pub give_up_after: Duration,
    /// How long a sender holds a mail it is sending.
    pub lease: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            first: Duration::from_secs(30),
            max: Duration::from_secs(30 * 60),
            give_up_after: Duration::from_secs(7 * 24 * 3600),
            lease: Duration::from_secs(120),
        }
    }
}

impl RetryPolicy {
    /// The delay before the attempt after `attempts` failed ones (1 or
    /// more): `first * 2^(attempts-1)`, at most `max`, times a factor in
    /// `[0.5, 1)` drawn from `key` and `attempts`.
    pub fn delay(&self, key: &str, attempts: u32) -> Duration {
        let doublings = attempts.saturating_sub(1).min(20);
        let full = self
            .first
            .saturating_mul(1 << doublings)
            .min(self.max)
            .max(Duration::from_millis(1));
        let fraction = (mix(key, attempts) >> 11) as f64 / (1u64 << 53) as f64;
        full.mul_f64(0.5 + 0.5 * fraction)
    }
}

/// A 64-bit hash of the key and attempt: FNV-1a, finished with SplitMix64
/// so neighbouring inputs spread over the whole range. Stable across Rust
/// versions, unlike `std`'s hasher.
fn mix(key: &str, attempts: u32) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in key.bytes().chain(attempts.to_le_bytes()) {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h = h.wrapping_add(0x9e37_79b9_7f4a_7c15);
    h = (h ^ (h >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    h = (h ^ (h >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    h ^ (h >> 31)
}

/// Where one mail is.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum OutboxStatus {
    Queued {
        attempts: u32,
        next_attempt: DateTime<Utc>,
    },
    Sending {
        attempts: u32,
        lease_until: DateTime<Utc>,
    },
    Sent {
        attempts: u32,
        at: DateTime<Utc>,
    },
    Failed {
        attempts: u32,
        at: DateTime<Utc>,
        reason: String,
    },
    /// Mail is off (no relay configured): the transition is recorded for
    /// the history, and nothing is sent.
    Unsent {
        at: DateTime<Utc>,
    },
}

impl OutboxStatus {
    pub fn name(&self) -> &'static str {
        match self {
            OutboxStatus::Queued { .. } => "queued",
            OutboxStatus::Sending { .. } => "sending",
            OutboxStatus::Sent { .. } => "sent",
            OutboxStatus::Failed { .. } => "failed",
            OutboxStatus::Unsent { .. } => "unsent",
        }
    }

    /// Sent or failed: nothing more will happen to it.
    pub fn is_final(&self) -> bool {
        matches!(
            self,
            OutboxStatus::Sent { .. } | OutboxStatus::Failed { .. } | OutboxStatus::Unsent { .. }
        )
    }
}

/// One queued mail's bookkeeping (the message bytes sit beside it in the
/// store row).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OutboxEntry {
    /// [`MailKey::as_text`].
    pub key: String,
    pub queued_at: DateTime<Utc>,
    #[serde(flatten)]
    pub status: OutboxStatus,
    /// The last transient error, kept for the failure record and the CLI.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
}

impl OutboxEntry {
    /// A mail queued at `now`, due at once.
    pub fn new(key: &MailKey, now: DateTime<Utc>) -> Self {
        Self {
            key: key.as_text(),
            queued_at: now,
            status: OutboxStatus::Queued {
                attempts: 0,
                next_attempt: now,
            },
            last_error: None,
        }
    }

    /// When it is due next: a queued mail's next attempt, a sending mail's
    /// lease end (when its sender is presumed dead); `None` when final.
    pub fn due_at(&self) -> Option<DateTime<Utc>> {
        match &self.status {
            OutboxStatus::Queued { next_attempt, .. } => Some(*next_attempt),
            OutboxStatus::Sending { lease_until, .. } => Some(*lease_until),
            OutboxStatus::Sent { .. }
            | OutboxStatus::Failed { .. }
            | OutboxStatus::Unsent { .. } => None,
        }
    }

    pub fn is_due(&self, now: DateTime<Utc>) -> bool {
        self.due_at().is_some_and(|due| due <= now)
    }

    /// Takes the mail for an attempt: `Sending` with a lease. A mail whose
    /// previous sender's lease ran out is taken again (the at-least-once
    /// window, see the module doc).
    pub fn start_sending(
        &self,
        now: DateTime<Utc>,
        policy: &RetryPolicy,
    ) -> Result<Self, OutboxError> {
        let attempts = match &self.status {
            OutboxStatus::Queued { attempts, .. } | OutboxStatus::Sending { attempts, .. } => {
                *attempts
            }
            done => {
                return Err(OutboxError::Finished {
                    key: self.key.clone(),
                    status: done.name(),
                })
            }
        };
        if let Some(due) = self.due_at().filter(|due| *due > now) {
            return Err(OutboxError::NotDue {
                key: self.key.clone(),
                due,
            });
        }
        Ok(Self {
            status: OutboxStatus::Sending {
                attempts: attempts + 1,
                lease_until: now + chrono_duration(policy.lease),
            },
            ..self.clone()
        })
    }

    /// Records the relay's answer to the attempt in progress.
    pub fn finish(
        &self,
        outcome: SendOutcome,
        now: DateTime<Utc>,
        policy: &RetryPolicy,
    ) -> Result<Self, OutboxError> {
        let OutboxStatus::Sending { attempts, .. } = self.status else {
            return Err(OutboxError::NotSending {
                key: self.key.clone(),
                status: self.status.name(),
            });
        };
        let (status, last_error) = match outcome {
            SendOutcome::Accepted => (
                OutboxStatus::Sent { attempts, at: now },
                self.last_error.clone(),
            ),
            SendOutcome::Permanent(reason) => (
                OutboxStatus::Failed {
                    attempts,
                    at: now,
                    reason: reason.clone(),
                },
                Some(reason),
            ),
            SendOutcome::Transient(error) => {
                let next_attempt = now + chrono_duration(policy.delay(&self.key, attempts));
                let deadline = self.queued_at + chrono_duration(policy.give_up_after);
                if next_attempt > deadline {
                    let reason = format!(
                        "not taken by the relay in {} ({attempts} attempts); last error: {error}",
                        crate::rules::format_duration(policy.give_up_after)
                    );
                    (
                        OutboxStatus::Failed {
                            attempts,
                            at: now,
                            reason,
                        },
                        Some(error),
                    )
                } else {
                    (
                        OutboxStatus::Queued {
                            attempts,
                            next_attempt,
                        },
                        Some(error),
                    )
                }
            }
        };
        Ok(Self {
            status,
            last_error,
            ..self.clone()
        })
    }
}

/// A std duration as chrono's, saturating (the policy's durations are
/// small; this only keeps a wild one from panicking).
fn chrono_duration(d: Duration) -> chrono::Duration {
    chrono::Duration::from_std(d).unwrap_or(chrono::Duration::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t0() -> DateTime<Utc> {
        "2026-12-02T08:00:00Z".parse().unwrap()
    }

    fn at(secs: i64) -> DateTime<Utc> {
        t0() + chrono::Duration::seconds(secs)
    }

    fn key() -> MailKey {
        MailKey::Transition {
            rule_id: RuleId::parse("r1").unwrap(),
            gateway_id: "gw-1".into(),
            kind: TransitionKind::Firing,
            at: "2026-12-02T08:15:00.123456Z".parse().unwrap(),
        }
    }

    #[test]
    fn keys_name_the_pair_the_kind_and_the_time() {
        assert_eq!(
            key().as_text(),
            "alert/r1/gw-1/firing/2026-12-02T08:15:00.123Z"
        );
        let day = NaiveDate::from_ymd_opt(2026, 12, 1).unwrap();
        assert_eq!(MailKey::Report { day }.as_text(), "report/2026-12-01");
        let resolved = MailKey::Transition {
            rule_id: RuleId::parse("r1").unwrap(),
            gateway_id: "gw-1".into(),
            kind: TransitionKind::Resolved,
            at: "2026-12-02T08:15:00.123456Z".parse().unwrap(),
        };
        assert_ne!(resolved.as_text(), key().as_text());
        let requested = MailKey::Requested {
            day,
            request: "abc123".into(),
        };
        assert_eq!(requested.as_text(), "report/2026-12-01/abc123");
        for k in [key(), resolved, MailKey::Report { day }, requested] {
            // The key keeps milliseconds, as a Cassandra timestamp does.
            let back = MailKey::parse(&k.as_text()).unwrap();
            assert_eq!(back.as_text(), k.as_text());
        }
        assert_eq!(
            MailKey::parse("alert/r1/gw-1/later/2026-12-02T08:15:00Z"),
            None
        );
        assert_eq!(MailKey::parse("nonsense"), None);
    }

    #[test]
    fn message_ids_are_stable_per_key_and_tenant() {
        let id = key().message_id("acme", "example.com");
        assert_eq!(id, key().message_id("acme", "example.com"));
        assert!(
            id.starts_with('<') && id.ends_with(".acme@example.com>"),
            "{id}"
        );
        assert_ne!(id, key().message_id("other", "example.com"));
        let day = NaiveDate::from_ymd_opt(2026, 12, 1).unwrap();
        assert_ne!(
            id,
            MailKey::Report { day }.message_id("acme", "example.com")
        );
    }

    #[test]
    fn smtp_replies_are_classified() {
        assert_eq!(SendOutcome::from_reply(250, "ok"), SendOutcome::Accepted);
        assert_eq!(
            SendOutcome::from_reply(451, "try later"),
            SendOutcome::Transient("451 try later".into())
        );
        assert_eq!(
            SendOutcome::from_reply(421, "closing"),
            SendOutcome::Transient("421 closing".into())
        );
        assert_eq!(
            SendOutcome::from_reply(550, "no such user"),
            SendOutcome::Permanent("550 no such user".into())
        );
        assert!(matches!(
            SendOutcome::from_reply(354, "?"),
            SendOutcome::Transient(_)
        ));
    }

    #[test]
    fn backoff_doubles_from_thirty_seconds_to_thirty_minutes_jittered() {
        let policy = RetryPolicy::default();
        let k = key().as_text();
        let mut previous_full = Duration::ZERO;
        for attempts in 1..=12 {
            let full = Duration::from_secs((30u64 << (attempts - 1)).min(1800));
            let delay = policy.delay(&k, attempts);
            assert!(delay >= full / 2 && delay < full, "{attempts}: {delay:?}");
            assert!(full >= previous_full);
            previous_full = full;
            // Deterministic for the same key and attempt.
            assert_eq!(delay, policy.delay(&k, attempts));
        }
        assert_eq!(previous_full, Duration::from_secs(1800));
        // Different keys spread out.
        let others: std::collections::BTreeSet<Duration> = (0..20)
            .map(|i| policy.delay(&format!("alert/r{i}/gw/firing/x"), 3))
            .collect();
        assert!(others.len() > 15, "{others:?}");
        assert!(policy.delay(&k, u32::MAX) < Duration::from_secs(1800));
    }

    #[test]
    fn a_mail_is_sent_once_the_relay_takes_it() {
        let policy = RetryPolicy::default();
        let queued = OutboxEntry::new(&key(), at(0));
        assert!(queued.is_due(at(0)));
        let sending = queued.start_sending(at(0), &policy).unwrap();
        assert_eq!(
            sending.status,
            OutboxStatus::Sending {
                attempts: 1,
                lease_until: at(120)
            }
        );
        assert!(!sending.is_due(at(119)));
        let sent = sending
            .finish(SendOutcome::Accepted, at(1), &policy)
            .unwrap();
        assert_eq!(
            sent.status,
            OutboxStatus::Sent {
                attempts: 1,
                at: at(1)
            }
        );
        assert!(sent.status.is_final());
        assert!(!sent.is_due(at(1_000_000)));
        assert_eq!(
            sent.start_sending(at(2), &policy),
            Err(OutboxError::Finished {
                key: sent.key.clone(),
                status: "sent"
            })
        );
        assert!(matches!(
            sent.finish(SendOutcome::Accepted, at(2), &policy),
            Err(OutboxError::NotSending { .. })
        ));
    }

    #[test]
    fn a_transient_failure_queues_it_again_after_the_backoff() {
        let policy = RetryPolicy::default();
        let queued = OutboxEntry::new(&key(), at(0));
        let failed_once = queued
            .start_sending(at(0), &policy)
            .unwrap()
            .finish(SendOutcome::from_reply(451, "busy"), at(1), &policy)
            .unwrap();
        let expected_next = at(1) + chrono_duration(policy.delay(&queued.key, 1));
        assert_eq!(
            failed_once.status,
            OutboxStatus::Queued {
                attempts: 1,
                next_attempt: expected_next
            }
        );
        assert_eq!(failed_once.last_error.as_deref(), Some("451 busy"));
        // Not before its time.
        let early = expected_next - chrono::Duration::milliseconds(1);
        assert!(!failed_once.is_due(early));
        assert!(matches!(
            failed_once.start_sending(early, &policy),
            Err(OutboxError::NotDue { .. })
        ));
        // The relay is back: sent on the next attempt.
        let sent = failed_once
            .start_sending(expected_next, &policy)
            .unwrap()
            .finish(SendOutcome::Accepted, expected_next, &policy)
            .unwrap();
        assert_eq!(
            sent.status,
            OutboxStatus::Sent {
                attempts: 2,
                at: expected_next
            }
        );
    }

    #[test]
    fn a_permanent_failure_is_final_and_recorded() {
        let policy = RetryPolicy::default();
        let failed = OutboxEntry::new(&key(), at(0))
            .start_sending(at(0), &policy)
            .unwrap()
            .finish(
                SendOutcome::from_reply(550, "mailbox unavailable"),
                at(1),
                &policy,
            )
            .unwrap();
        assert_eq!(
            failed.status,
            OutboxStatus::Failed {
                attempts: 1,
                at: at(1),
                reason: "550 mailbox unavailable".into()
            }
        );
        assert!(failed.status.is_final());
        assert!(failed.start_sending(at(10_000), &policy).is_err());
    }

    #[test]
    fn a_sender_that_died_leaves_a_mail_that_is_due_again_after_its_lease() {
        let policy = RetryPolicy::default();
        let sending = OutboxEntry::new(&key(), at(0))
            .start_sending(at(0), &policy)
            .unwrap();
        assert!(matches!(
            sending.start_sending(at(60), &policy),
            Err(OutboxError::NotDue { .. })
        ));
        let again = sending.start_sending(at(120), &policy).unwrap();
        assert_eq!(
            again.status,
            OutboxStatus::Sending {
                attempts: 2,
                lease_until: at(240)
            }
        );
    }

    #[test]
    fn a_relay_down_for_a_week_fails_the_mail_with_the_last_error() {
        let policy = RetryPolicy::default();
        let mut entry = OutboxEntry::new(&key(), at(0));
        let mut now = at(0);
        let mut attempts = 0;
        while !entry.status.is_final() {
            now = entry.due_at().unwrap().max(now);
            entry = entry
                .start_sending(now, &policy)
                .unwrap()
                .finish(
                    SendOutcome::Transient("connection refused".into()),
                    now,
                    &policy,
                )
                .unwrap();
            attempts += 1;
            assert!(attempts < 1000);
        }
        let OutboxStatus::Failed {
            reason, at: when, ..
        } = &entry.status
        else {
            panic!("{entry:?}");
        };
        assert!(
            reason.contains("7d") && reason.contains("connection refused"),
            "{reason}"
        );
        // Retried the whole week, every 15-30 min once at the cap.
        let week = chrono::Duration::days(7);
        assert!(
            *when > at(0) + week - chrono::Duration::minutes(30),
            "{when}"
        );
        assert!(*when <= at(0) + week);
        assert!(
            (7 * 24 * 2..=7 * 24 * 4 + 10).contains(&attempts),
            "{attempts}"
        );
    }

    #[test]
    fn entries_round_trip_through_json() {
        let policy = RetryPolicy::default();
        let queued = OutboxEntry::new(&key(), at(0));
        let sending = queued.start_sending(at(0), &policy).unwrap();
        let retry = sending
            .finish(SendOutcome::Transient("timeout".into()), at(1), &policy)
            .unwrap();
        for entry in [queued, sending, retry] {
            let text = serde_json::to_string(&entry).unwrap();
            assert_eq!(
                serde_json::from_str::<OutboxEntry>(&text).unwrap(),
                entry,
                "{text}"
            );
        }
    }
}
