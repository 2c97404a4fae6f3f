//! The alert state machine, pure: one (rule, gateway) pair's stored state,
//! what `latest` says about the gateway now, and the time → the new state,
//! and the transition to mail, if any.
//!
//! Nothing here reads a clock: `now` is passed in, so tests step through
//! hours with fixed instants.
//!
//! # States
//!
//! Every pair is `ok` or `firing`, with the time of its last transition
//! (`since`). An `ok` pair of a value rule may also be *pending*: its
//! condition has been seen holding since `pending_since`, not yet for the
//! rule's duration. A pair with no stored state starts as `ok` since the
//! rule's creation ([`PairState::initial`]). [`evaluate`] returns a
//! [`Transition`] exactly when the state goes from `ok` to `firing` or back;
//! evaluating again with the state it returned gives none, so a transition
//! is reported once however often the check runs.
//!
//! # Conditions
//!
//! - **silent**: no frame for *more than* `for` (`now - last_seen > for`). A
//!   gateway never seen counts from the rule's creation. The condition's
//!   start is known exactly (`last_seen + for`), so there is no pending
//!   timer. It resolves at the first check that sees a newer frame.
//! - **below / above**: the gateway's newest value of that name strictly
//!   beyond the threshold (equal is not beyond), continuously for `for`.
//!   It resolves at the first check where the newest value is no longer
//!   beyond it (no hysteresis: after a resolve the value must hold for
//!   `for` again before the next firing, which bounds the mail rate of a
//!   value hovering at the threshold to one pair of mails per `for`).
//!
//! # Sampling
//!
//! The notifier does not see every reading: it samples `latest` (the newest
//! value per gateway, sensor and name) once per check interval. So:
//!
//! - the pending timer starts at the *check* that first sees the condition
//!   holding (`pending_since = now`), not at the reading's own time (a
//!   gateway's clock may be off, and a late reading would otherwise
//!   back-date the timer); it resets at the first check that sees it not
//!   holding. A dip back inside the threshold that starts and ends between
//!   two checks is not seen;
//! - a value holds until a newer one replaces it (sample and hold): a
//!   gateway that stops reporting keeps its last value. That is what a
//!   `silent` rule is for;
//! - with a check every `I`, a condition that starts at `T` is first seen
//!   by `T + I`, and the rule fires at the first check at or after
//!   `pending_since + for`, so by `T + for + 2I`. The issue's bound, "at
//!   most 60 s after the condition has held for its duration", holds with
//!   checks every 30 s or less (plus ingest's write latency into
//!   `latest`). A silent rule fires by `last_seen + for + I`.
//! - a gateway with several sensors reporting the same name is judged by
//!   the newest of those values ([`Observation::newest`]).
//!
//! # The local window
//!
//! A value rule with `between` only watches inside that window of the
//! tenant's local time (`now` in its timezone). Outside it the rule neither
//! fires nor stays pending: a pending timer is dropped, and the condition
//! must hold for `for` again, counted from the first check inside the next
//! window. A pair that is *firing* when its window closes is **resolved**,
//! with the reason [`ResolveReason::WindowClosed`]: the recipients are told
//! the rule stopped watching rather than left with an alert that stays open
//! all night, and a condition still true in the morning fires again, fresh,
//! after `for` inside the window.

use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use serde::{Deserialize, Serialize};

use crate::rules::{AlertRule, ValueCondition};

/// One value of a gateway as `latest` holds it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Sample {
    pub sensor: String,
    pub value: f64,
    pub unit: String,
    /// The reading's time (the gateway's clock).
    pub at: DateTime<Utc>,
}

/// What the notifier knows about one gateway at one check.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Observation {
    /// When ingest last accepted a frame from the gateway (`latest`'s static
    /// `last_seen`); `None` for a gateway never seen.
    pub last_seen: Option<DateTime<Utc>>,
    /// For a value rule, the gateway's newest value of the rule's name.
    pub value: Option<Sample>,
}

impl Observation {
    /// The newest of several samples (one per sensor) of the same name; the
    /// first of equal times, so the choice does not depend on row order
    /// beyond that.
    pub fn newest(samples: impl IntoIterator<Item = Sample>) -> Option<Sample> {
        samples
            .into_iter()
            .filter(|s| s.value.is_finite())
            .reduce(|best, s| if s.at > best.at { s } else { best })
    }
}

/// What made a pair fire, or what resolved it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Evidence {
    /// A silent rule: the gateway's last frame (`None`: never seen, counted
    /// from the rule's creation, `counted_from`).
    Silent {
        last_seen: Option<DateTime<Utc>>,
        counted_from: DateTime<Utc>,
    },
    /// A value rule: the newest value (`None` when the gateway has none of
    /// that name), and since when the condition held (firing only).
    Value {
        sample: Option<Sample>,
        held_since: Option<DateTime<Utc>>,
    },
}

/// The stored state of one (rule, gateway) pair.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum PairState {
    Ok {
        since: DateTime<Utc>,
        /// A value rule's condition has been seen holding since then.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pending_since: Option<DateTime<Utc>>,
    },
    Firing {
        since: DateTime<Utc>,
        /// What made it fire.
        values: Evidence,
    },
}

impl PairState {
    /// The state of a pair evaluated for the first time.
    pub fn initial(rule: &AlertRule) -> Self {
        PairState::Ok {
            since: rule.created_at,
            pending_since: None,
        }
    }

    pub fn is_firing(&self) -> bool {
        matches!(self, PairState::Firing { .. })
    }

    /// The time of the last transition.
    pub fn since(&self) -> DateTime<Utc> {
        match self {
            PairState::Ok { since, .. } | PairState::Firing { since, .. } => *since,
        }
    }
}

/// Which way a pair went.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TransitionKind {
    Firing,
    Resolved,
}

impl TransitionKind {
    pub fn as_str(self) -> &'static str {
        match self {
            TransitionKind::Firing => "firing",
            TransitionKind::Resolved => "resolved",
        }
    }
}

/// Why a firing pair was resolved.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ResolveReason {
    /// The condition no longer holds (a frame came; the value is back).
    ConditionCleared,
    /// A value rule's local window closed while it was firing.
    WindowClosed,
    /// The gateway has no value of the rule's name any more.
    ValueMissing,
}

impl ResolveReason {
    /// The reason in words, for mails.
    pub fn describe(self) -> &'static str {
        match self {
            ResolveReason::ConditionCleared => "the condition no longer holds",
            ResolveReason::WindowClosed => {
                "the rule's time window closed (it watches again when the window opens)"
            }
            ResolveReason::ValueMissing => "the gateway no longer reports this value",
        }
    }
}

/// A change of state, to be mailed once.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Transition {
    pub kind: TransitionKind,
    /// The check that saw it: the new state's `since`.
    pub at: DateTime<Utc>,
    /// Firing: what made it fire. Resolved: what the check saw.
    pub values: Evidence,
    /// Resolved only: since when it had been firing, and why it stopped.
    pub firing_since: Option<DateTime<Utc>>,
    pub reason: Option<ResolveReason>,
}

/// The result of one evaluation.
#[derive(Debug, Clone, PartialEq)]
pub struct Outcome {
    pub state: PairState,
    pub transition: Option<Transition>,
}

impl Outcome {
    /// Whether the state must be written back (only then: an unchanged pair
    /// costs no write).
    pub fn changed_from(&self, old: &PairState) -> bool {
        &self.state != old
    }
}

/// Evaluates one pair at `now`. `tz` is the tenant's timezone (for a value
/// rule's window); `state` the pair's stored state, or
/// [`PairState::initial`].
pub fn evaluate<Tz: TimeZone>(
    rule: &AlertRule,
    observation: &Observation,
    tz: &Tz,
    now: DateTime<Utc>,
    state: &PairState,
) -> Outcome {
    match rule.kind.value_condition() {
        None => silent(rule, observation, now, state),
        Some(condition) => value(condition, observation, tz, now, state),
    }
}

/// `b - a` as a duration, zero when `b` is not after `a` (a clock that went
/// back, a `last_seen` from a server clock ahead of ours).
fn elapsed(a: DateTime<Utc>, b: DateTime<Utc>) -> Duration {
    (b - a).to_std().unwrap_or(Duration::ZERO)
}

fn silent(
    rule: &AlertRule,
    observation: &Observation,
    now: DateTime<Utc>,
    state: &PairState,
) -> Outcome {
    let counted_from = observation.last_seen.unwrap_or(rule.created_at);
    let holds = elapsed(counted_from, now) > rule.kind.for_();
    let values = Evidence::Silent {
        last_seen: observation.last_seen,
        counted_from,
    };
    match state {
        PairState::Ok { since, .. } if !holds => Outcome {
            state: PairState::Ok {
                since: *since,
                pending_since: None,
            },
            transition: None,
        },
        PairState::Ok { .. } => fire(now, values),
        PairState::Firing { .. } if holds => unchanged(state),
        PairState::Firing { since, .. } => {
            resolve(now, *since, values, ResolveReason::ConditionCleared)
        }
    }
}

fn value<Tz: TimeZone>(
    condition: ValueCondition<'_>,
    observation: &Observation,
    tz: &Tz,
    now: DateTime<Utc>,
    state: &PairState,
) -> Outcome {
    let local_time = now.with_timezone(tz).time();
    let in_window = condition.between.is_none_or(|w| w.contains(local_time));
    let sample = observation.value.as_ref().filter(|s| s.value.is_finite());
    let beyond = sample.is_some_and(|s| condition.comparison.holds(s.value, condition.threshold));
    let holds = in_window && beyond;
    match state {
        PairState::Ok { since, .. } if !holds => Outcome {
            state: PairState::Ok {
                since: *since,
                pending_since: None,
            },
            transition: None,
        },
        PairState::Ok {
            since,
            pending_since,
        } => {
            let held_since = pending_since.unwrap_or(now);
            if elapsed(held_since, now) >= condition.for_ {
                fire(
                    now,
                    Evidence::Value {
                        sample: sample.cloned(),
                        held_since: Some(held_since),
                    },
                )
            } else {
                Outcome {
                    state: PairState::Ok {
                        since: *since,
                        pending_since: Some(held_since),
                    },
                    transition: None,
                }
            }
        }
        PairState::Firing { .. } if holds => unchanged(state),
        PairState::Firing { since, .. } => {
            let reason = if !in_window {
                ResolveReason::WindowClosed
            } else if sample.is_none() {
                ResolveReason::ValueMissing
            } else {
                ResolveReason::ConditionCleared
            };
            let values = Evidence::Value {
                sample: sample.cloned(),
                held_since: None,
            };
            resolve(now, *since, values, reason)
        }
    }
}

fn unchanged(state: &PairState) -> Outcome {
    Outcome {
        state: state.clone(),
        transition: None,
    }
}

fn fire(now: DateTime<Utc>, values: Evidence) -> Outcome {
    Outcome {
        state: PairState::Firing {
            since: now,
            values: values.clone(),
        },
        transition: Some(Transition {
            kind: TransitionKind::Firing,
            at: now,
            values,
            firing_since: None,
            reason: None,
        }),
    }
}

fn resolve(
    now: DateTime<Utc>,
    firing_since: DateTime<Utc>,
    values: Evidence,
    reason: ResolveReason,
) -> Outcome {
    Outcome {
        state: PairState::Ok {
            since: now,
            pending_since: None,
        },
        transition: Some(Transition {
            kind: TransitionKind::Resolved,
            at: now,
            values,
            firing_since: Some(firing_since),
            reason: Some(reason),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::{parse_recipients, LocalWindow, RuleId, RuleKind};
    use chrono::{FixedOffset, Utc};

    const S: i64 = 1;
    const MIN: i64 = 60;

    /// The rules' creation time; every test clock counts from it.
    fn t0() -> DateTime<Utc> {
        "2026-12-02T08:00:00Z".parse().unwrap()
    }

    /// `t0` plus seconds.
    fn at(secs: i64) -> DateTime<Utc> {
        t0() + chrono::Duration::seconds(secs)
    }

    fn rule(kind: RuleKind) -> AlertRule {
        AlertRule::new(
            RuleId::parse("r1").unwrap(),
            kind,
            None,
            parse_recipients("ops@example.com").unwrap(),
            t0(),
        )
        .unwrap()
    }

    fn silent_10m() -> AlertRule {
        rule(RuleKind::Silent {
            for_: Duration::from_secs(600),
        })
    }

    fn below(between: Option<&str>) -> AlertRule {
        rule(RuleKind::Below {
            value: "power".into(),
            threshold: 5.0,
            for_: Duration::from_secs(15 * 60),
            between: between.map(|w| LocalWindow::parse(w).unwrap()),
        })
    }

    fn power(value: f64, secs: i64) -> Observation {
        Observation {
            last_seen: Some(at(secs)),
            value: Some(Sample {
                sensor: "inv-1".into(),
                value,
                unit: "W".into(),
                at: at(secs),
            }),
        }
    }

    fn seen(secs: i64) -> Observation {
        Observation {
            last_seen: Some(at(secs)),
            value: None,
        }
    }

    fn utc() -> FixedOffset {
        FixedOffset::east_opt(0).unwrap()
    }

    /// Runs checks in order, each from the state the previous one returned,
    /// and gives the transitions' kinds with their check times (seconds
    /// after t0), and the last state.
    fn run(
        rule: &AlertRule,
        tz: &FixedOffset,
        checks: &[(i64, Observation)],
    ) -> (Vec<(i64, TransitionKind)>, PairState) {
        let mut state = PairState::initial(rule);
        let mut seen = Vec::new();
        for (secs, observation) in checks {
            let outcome = evaluate(rule, observation, tz, at(*secs), &state);
            if let Some(t) = &outcome.transition {
                assert_eq!(t.at, at(*secs));
                assert_eq!(outcome.state.since(), t.at);
                seen.push((*secs, t.kind));
            }
            state = outcome.state;
        }
        (seen, state)
    }

    #[test]
    fn silent_fires_only_after_more_than_its_duration() {
        let rule = silent_10m();
        let tz = utc();
        let last = seen(0);
        // Exactly 10 minutes of silence is not more than 10 minutes.
        let exactly = evaluate(&rule, &last, &tz, at(10 * MIN), &PairState::initial(&rule));
        assert_eq!(exactly.transition, None);
        assert!(!exactly.changed_from(&PairState::initial(&rule)));
        let after = evaluate(
            &rule,
            &last,
            &tz,
            at(10 * MIN + S),
            &PairState::initial(&rule),
        );
        let transition = after.transition.unwrap();
        assert_eq!(transition.kind, TransitionKind::Firing);
        assert_eq!(
            transition.values,
            Evidence::Silent {
                last_seen: Some(at(0)),
                counted_from: at(0)
            }
        );
        assert_eq!(transition.reason, None);
        assert!(after.state.is_firing());
    }

    #[test]
    fn a_gateway_never_seen_is_silent_from_the_rules_creation() {
        let rule = silent_10m();
        let never = Observation::default();
        let (transitions, _) = run(
            &rule,
            &utc(),
            &[(5 * MIN, never.clone()), (10 * MIN, never.clone())],
        );
        assert!(transitions.is_empty());
        let outcome = evaluate(
            &rule,
            &never,
            &utc(),
            at(10 * MIN + 30),
            &PairState::initial(&rule),
        );
        let transition = outcome.transition.unwrap();
        assert_eq!(
            transition.values,
            Evidence::Silent {
                last_seen: None,
                counted_from: t0()
            }
        );
    }

    #[test]
    fn a_gateway_silent_before_the_rule_existed_fires_at_once() {
        let rule = silent_10m();
        let long_ago = seen(-3 * 24 * 3600);
        let (transitions, _) = run(&rule, &utc(), &[(30, long_ago)]);
        assert_eq!(transitions, [(30, TransitionKind::Firing)]);
    }

    #[test]
    fn silent_fires_once_and_resolves_once_on_the_next_frame() {
        let rule = silent_10m();
        let (transitions, state) = run(
            &rule,
            &utc(),
            &[
                (9 * MIN, seen(0)),
                (11 * MIN, seen(0)),
                (12 * MIN, seen(0)),
                (60 * MIN, seen(0)),
                (61 * MIN, seen(61 * MIN - 5)),
                (62 * MIN, seen(62 * MIN - 5)),
            ],
        );
        assert_eq!(
            transitions,
            [
                (11 * MIN, TransitionKind::Firing),
                (61 * MIN, TransitionKind::Resolved)
            ]
        );
        assert_eq!(
            state,
            PairState::Ok {
                since: at(61 * MIN),
                pending_since: None
            }
        );
    }

    #[test]
    fn the_resolved_transition_names_when_it_fired_and_why_it_stopped() {
        let rule = silent_10m();
        let firing = evaluate(
            &rule,
            &seen(0),
            &utc(),
            at(11 * MIN),
            &PairState::initial(&rule),
        )
        .state;
        let outcome = evaluate(&rule, &seen(20 * MIN), &utc(), at(20 * MIN + 10), &firing);
        let t = outcome.transition.unwrap();
        assert_eq!(t.kind, TransitionKind::Resolved);
        assert_eq!(t.firing_since, Some(at(11 * MIN)));
        assert_eq!(t.reason, Some(ResolveReason::ConditionCleared));
        assert_eq!(
            t.values,
            Evidence::Silent {
                last_seen: Some(at(20 * MIN)),
                counted_from: at(20 * MIN)
            }
        );
    }

    #[test]
    fn a_last_seen_ahead_of_the_notifiers_clock_is_not_silence() {
        let rule = silent_10m();
        let (transitions, _) = run(&rule, &utc(), &[(60 * MIN, seen(90 * MIN))]);
        assert!(transitions.is_empty());
    }

    #[test]
    fn a_value_fires_after_holding_for_its_duration_from_the_first_check_that_saw_it() {
        let rule = below(None);
        let tz = utc();
        // The reading went below at t0 - 1h, but the notifier first sees it at t0 + 30 s.
        let low = power(3.0, -60 * MIN);
        let first = evaluate(&rule, &low, &tz, at(30), &PairState::initial(&rule));
        assert_eq!(first.transition, None);
        assert_eq!(
            first.state,
            PairState::Ok {
                since: t0(),
                pending_since: Some(at(30))
            }
        );
        assert!(first.changed_from(&PairState::initial(&rule)));
        // 15 min minus a second later: still pending, and nothing to write.
        let almost = evaluate(&rule, &low, &tz, at(30 + 15 * MIN - S), &first.state);
        assert_eq!(almost.transition, None);
        assert!(!almost.changed_from(&first.state));
        // Exactly 15 minutes after it was first seen: fires.
        let fired = evaluate(&rule, &low, &tz, at(30 + 15 * MIN), &almost.state);
        let t = fired.transition.unwrap();
        assert_eq!(t.kind, TransitionKind::Firing);
        assert_eq!(
            t.values,
            Evidence::Value {
                sample: low.value.clone(),
                held_since: Some(at(30))
            }
        );
        // And only once.
        let again = evaluate(&rule, &low, &tz, at(30 + 16 * MIN), &fired.state);
        assert_eq!(again.transition, None);
        assert!(!again.changed_from(&fired.state));
    }

    #[test]
    fn the_pending_timer_resets_when_the_condition_stops_holding() {
        let rule = below(None);
        let (transitions, state) = run(
            &rule,
            &utc(),
            &[
                (0, power(1.0, 0)),
                (10 * MIN, power(1.0, 10 * MIN)),
                // Back to normal for one check: the timer resets.
                (14 * MIN, power(9.0, 14 * MIN)),
                (15 * MIN, power(1.0, 15 * MIN)),
                (29 * MIN, power(1.0, 29 * MIN)),
            ],
        );
        assert!(transitions.is_empty());
        assert_eq!(
            state,
            PairState::Ok {
                since: t0(),
                pending_since: Some(at(15 * MIN))
            }
        );
        let fired = evaluate(&rule, &power(1.0, 30 * MIN), &utc(), at(30 * MIN), &state);
        assert_eq!(
            fired.transition.map(|t| t.kind),
            Some(TransitionKind::Firing)
        );
    }

    #[test]
    fn a_value_equal_to_the_threshold_is_neither_below_nor_above() {
        let below_rule = below(None);
        let above_rule = rule(RuleKind::Above {
            value: "power".into(),
            threshold: 5.0,
            for_: Duration::from_secs(1),
            between: None,
        });
        for rule in [&below_rule, &above_rule] {
            let (transitions, state) =
                run(rule, &utc(), &[(0, power(5.0, 0)), (3600, power(5.0, 0))]);
            assert!(transitions.is_empty());
            assert_eq!(state, PairState::initial(rule));
        }
        let (transitions, _) = run(
            &above_rule,
            &utc(),
            &[(0, power(5.5, 0)), (1, power(5.5, 0))],
        );
        assert_eq!(transitions, [(1, TransitionKind::Firing)]);
    }

    #[test]
    fn a_value_resolves_when_it_is_back_or_gone() {
        let rule = below(None);
        let fired = run(
            &rule,
            &utc(),
            &[(0, power(1.0, 0)), (15 * MIN, power(1.0, 0))],
        );
        assert_eq!(fired.0, [(15 * MIN, TransitionKind::Firing)]);
        let back = evaluate(&rule, &power(7.0, 20 * MIN), &utc(), at(20 * MIN), &fired.1);
        let t = back.transition.unwrap();
        assert_eq!(t.kind, TransitionKind::Resolved);
        assert_eq!(t.reason, Some(ResolveReason::ConditionCleared));
        assert_eq!(t.firing_since, Some(at(15 * MIN)));
        assert_eq!(
            t.values,
            Evidence::Value {
                sample: power(7.0, 20 * MIN).value,
                held_since: None
            }
        );
        let gone = evaluate(&rule, &seen(20 * MIN), &utc(), at(20 * MIN), &fired.1);
        assert_eq!(
            gone.transition.and_then(|t| t.reason),
            Some(ResolveReason::ValueMissing)
        );
    }

    #[test]
    fn a_stale_value_holds_until_a_newer_one_replaces_it() {
        // The gateway's last value was low and it stopped reporting: the
        // value rule still fires (sample and hold); silence is another rule.
        let rule = below(None);
        let stale = power(0.0, -5 * MIN);
        let (transitions, _) = run(&rule, &utc(), &[(0, stale.clone()), (15 * MIN, stale)]);
        assert_eq!(transitions, [(15 * MIN, TransitionKind::Firing)]);
    }

    #[test]
    fn outside_its_window_a_value_rule_neither_fires_nor_stays_pending() {
        let rule = below(Some("08:00-18:00"));
        let tz = utc();
        // t0 is 08:00 UTC. Low from 17:50; the window closes at 18:00.
        let evening = 9 * 3600 + 50 * MIN;
        let (transitions, state) = run(
            &rule,
            &tz,
            &[
                (evening, power(1.0, evening)),
                (evening + 9 * MIN, power(1.0, evening)),
                (evening + 10 * MIN, power(1.0, evening)), // 18:00: outside
            ],
        );
        assert!(transitions.is_empty());
        assert_eq!(
            state,
            PairState::Ok {
                since: t0(),
                pending_since: None
            }
        );
        // All night low: nothing. 07:59 next day: nothing.
        let next_morning = 24 * 3600;
        let (transitions, state) = run(
            &rule,
            &tz,
            &[
                (12 * 3600, power(0.0, 12 * 3600)),
                (next_morning - MIN, power(0.0, 12 * 3600)),
                // 08:00: the window opens, the timer starts now.
                (next_morning, power(0.0, 12 * 3600)),
                (next_morning + 15 * MIN - S, power(0.0, 12 * 3600)),
            ],
        );
        assert!(transitions.is_empty());
        assert_eq!(
            state,
            PairState::Ok {
                since: t0(),
                pending_since: Some(at(next_morning))
            }
        );
        let fired = evaluate(
            &rule,
            &power(0.0, 0),
            &tz,
            at(next_morning + 15 * MIN),
            &state,
        );
        assert_eq!(
            fired.transition.map(|t| t.kind),
            Some(TransitionKind::Firing)
        );
    }

    #[test]
    fn a_firing_value_rule_is_resolved_when_its_window_closes() {
        let rule = below(Some("08:00-18:00"));
        let tz = utc();
        let (transitions, state) = run(
            &rule,
            &tz,
            &[
                (0, power(1.0, 0)),
                (15 * MIN, power(1.0, 0)),
                (10 * 3600 - S, power(1.0, 0)),
            ],
        );
        assert_eq!(transitions, [(15 * MIN, TransitionKind::Firing)]);
        // 18:00 UTC, still low.
        let closed = evaluate(&rule, &power(1.0, 0), &tz, at(10 * 3600), &state);
        let t = closed.transition.unwrap();
        assert_eq!(t.kind, TransitionKind::Resolved);
        assert_eq!(t.reason, Some(ResolveReason::WindowClosed));
        assert_eq!(
            closed.state,
            PairState::Ok {
                since: at(10 * 3600),
                pending_since: None
            }
        );
    }

    #[test]
    fn the_window_is_in_the_tenants_local_time() {
        // 08:00-18:00 at +02:00 is 06:00-16:00 UTC; t0 (08:00 UTC) is 10:00 local.
        let rule = below(Some("08:00-18:00"));
        let plus_two = FixedOffset::east_opt(2 * 3600).unwrap();
        let (transitions, _) = run(
            &rule,
            &plus_two,
            &[(0, power(1.0, 0)), (15 * MIN, power(1.0, 0))],
        );
        assert_eq!(transitions, [(15 * MIN, TransitionKind::Firing)]);
        // 16:00 UTC is 18:00 local: resolved, where UTC would still watch.
        let (transitions, _) = run(
            &rule,
            &plus_two,
            &[
                (0, power(1.0, 0)),
                (15 * MIN, power(1.0, 0)),
                (8 * 3600, power(1.0, 0)),
            ],
        );
        assert_eq!(
            transitions,
            [
                (15 * MIN, TransitionKind::Firing),
                (8 * 3600, TransitionKind::Resolved)
            ]
        );
        let (transitions, _) = run(
            &rule,
            &utc(),
            &[
                (0, power(1.0, 0)),
                (15 * MIN, power(1.0, 0)),
                (8 * 3600, power(1.0, 0)),
            ],
        );
        assert_eq!(transitions, [(15 * MIN, TransitionKind::Firing)]);
    }

    #[test]
    fn a_window_across_midnight_watches_through_the_night() {
        let rule = rule(RuleKind::Above {
            value: "power".into(),
            threshold: 100.0,
            for_: Duration::from_secs(10 * 60),
            between: Some(LocalWindow::parse("22:00-06:00").unwrap()),
        });
        // 23:55 UTC to 00:05: the condition holds across midnight and fires.
        let before_midnight = 15 * 3600 + 55 * MIN;
        let (transitions, state) = run(
            &rule,
            &utc(),
            &[
                (before_midnight, power(500.0, before_midnight)),
                (before_midnight + 10 * MIN, power(500.0, before_midnight)),
            ],
        );
        assert_eq!(
            transitions,
            [(before_midnight + 10 * MIN, TransitionKind::Firing)]
        );
        // 06:00: the window closes and the alert resolves.
        let six = 22 * 3600;
        let closed = evaluate(&rule, &power(500.0, six), &utc(), at(six), &state);
        assert_eq!(
            closed.transition.and_then(|t| t.reason),
            Some(ResolveReason::WindowClosed)
        );
        // Noon: the condition holds but the rule does not watch.
        let (transitions, state) = run(
            &rule,
            &utc(),
            &[(4 * 3600, power(500.0, 0)), (5 * 3600, power(500.0, 0))],
        );
        assert!(transitions.is_empty());
        assert_eq!(state, PairState::initial(&rule));
    }

    #[test]
    fn a_pending_timer_from_a_clock_ahead_waits_for_it() {
        // A state written by a notifier whose clock was ahead: the timer does
        // not count negative time, and fires once `for` has really passed.
        let rule = below(None);
        let state = PairState::Ok {
            since: t0(),
            pending_since: Some(at(10 * MIN)),
        };
        let early = evaluate(&rule, &power(1.0, 0), &utc(), at(MIN), &state);
        assert_eq!(early.transition, None);
        assert_eq!(early.state, state);
        let due = evaluate(&rule, &power(1.0, 0), &utc(), at(25 * MIN), &state);
        assert!(due.transition.is_some());
    }

    #[test]
    fn the_newest_sample_of_several_sensors_counts() {
        let sample = |sensor: &str, value, secs| Sample {
            sensor: sensor.into(),
            value,
            unit: "W".into(),
            at: at(secs),
        };
        let newest = Observation::newest([
            sample("inv-1", 1.0, 10),
            sample("inv-2", 2.0, 30),
            sample("inv-3", f64::NAN, 40),
            sample("inv-4", 4.0, 30),
        ]);
        assert_eq!(newest, Some(sample("inv-2", 2.0, 30)));
        assert_eq!(Observation::newest([]), None);
    }

    #[test]
    fn states_round_trip_through_json() {
        let rule = below(None);
        let (_, firing) = run(
            &rule,
            &utc(),
            &[(0, power(1.0, 0)), (15 * MIN, power(1.0, 0))],
        );
        let pending = PairState::Ok {
            since: t0(),
            pending_since: Some(at(30)),
        };
        for state in [firing, pending, PairState::initial(&rule)] {
            let text = serde_json::to_string(&state).unwrap();
            assert_eq!(
                serde_json::from_str::<PairState>(&text).unwrap(),
                state,
                "{text}"
            );
        }
        assert_eq!(
            serde_json::to_string(&PairState::initial(&rule)).unwrap(),
            r#"{"state":"ok","since":"2026-12-02T08:00:00Z"}"#
        );
    }
}
