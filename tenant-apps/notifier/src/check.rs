//! One check of a tenant, planned in a pure function: what the store showed
//! (gateways, `latest`, the pairs' states) and the rules → the pairs whose
//! state changed, each with its transition if any, and the states to drop.
//!
//! The executor ([`crate::app`], through [`crate::cassandra`]) applies the
//! plan and nothing else: a change with
//! a transition is one logged batch (the state and its outbox row), a
//! change without one is the state row alone, a removal one delete.
//!
//! Which gateways a check covers: every gateway commissioned or present in
//! `latest`, as the admin panel's dashboard lists them, less the revoked
//! ones (a revoked gateway is expected to be silent). A rule scoped to one
//! gateway is evaluated for it even if the gateway is nowhere yet (never
//! seen: a silent rule fires `for` after the rule's creation, which tells a
//! provider that a gateway it named never reported), unless it is revoked.
//! A state whose rule was removed, or whose gateway was revoked or
//! disappeared, is dropped without a mail.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, TimeZone, Utc};

use crate::evaluate::{evaluate, Observation, PairState, Sample, Transition};
use crate::rules::{AlertRule, RuleId};

/// One row of `latest` as [`crate::schema::SELECT_LATEST`] reads it. A
/// partition holding only its static `last_seen` gives one row with no
/// sensor, name or value.
#[derive(Debug, Clone, PartialEq)]
pub struct LatestRow {
    pub gateway_id: String,
    pub last_seen: Option<DateTime<Utc>>,
    pub sensor: Option<String>,
    pub name: Option<String>,
    pub ts: Option<DateTime<Utc>>,
    pub value: Option<f64>,
    pub unit: Option<String>,
}

/// What a check saw of one gateway.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct GatewayView {
    pub last_seen: Option<DateTime<Utc>>,
    /// Newest values by name, one sample per sensor.
    pub values: BTreeMap<String, Vec<Sample>>,
}

impl GatewayView {
    /// The observation a rule evaluates: `last_seen`, and for a value rule
    /// the newest sample of its name.
    pub fn observation(&self, rule: &AlertRule) -> Observation {
        let value = rule.kind.value_condition().and_then(|c| {
            self.values
                .get(c.value)
                .and_then(|samples| Observation::newest(samples.iter().cloned()))
        });
        Observation {
            last_seen: self.last_seen,
            value,
        }
    }
}

/// What a check saw of the tenant's gateways.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Snapshot {
    pub gateways: BTreeMap<String, GatewayView>,
    pub revoked: BTreeSet<String>,
}

impl Snapshot {
    /// Builds the snapshot from the registry (`(gateway id, revoked)`) and
    /// the rows of `latest`.
    pub fn build(
        registry: impl IntoIterator<Item = (String, bool)>,
        latest: impl IntoIterator<Item = LatestRow>,
    ) -> Self {
        let mut snapshot = Snapshot::default();
        for (gateway_id, revoked) in registry {
            if revoked {
                snapshot.revoked.insert(gateway_id);
            } else {
                snapshot.gateways.entry(gateway_id).or_default();
            }
        }
        for row in latest {
            if snapshot.revoked.contains(&row.gateway_id) {
                continue;
            }
            let view = snapshot.gateways.entry(row.gateway_id).or_default();
            view.last_seen = view.last_seen.max(row.last_seen);
            if let (Some(sensor), Some(name), Some(at), Some(value)) =
                (row.sensor, row.name, row.ts, row.value)
            {
                view.values.entry(name).or_default().push(Sample {
                    sensor,
                    value,
                    unit: row.unit.unwrap_or_default(),
                    at,
                });
            }
        }
        snapshot
    }
}

/// A (rule, gateway) pair.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PairKey {
    pub rule_id: RuleId,
    pub gateway_id: String,
}

/// A pair whose state must be written, with the transition to mail if any.
#[derive(Debug, Clone, PartialEq)]
pub struct PairChange {
    pub key: PairKey,
    pub state: PairState,
    pub transition: Option<Transition>,
}

/// What one check is to do.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CheckPlan {
    /// Pairs whose state changed, in key order.
    pub changes: Vec<PairChange>,
    /// States to delete: their rule or gateway is gone.
    pub removed: Vec<PairKey>,
}

impl CheckPlan {
    pub fn transitions(&self) -> impl Iterator<Item = (&PairKey, &Transition)> {
        self.changes
            .iter()
            .filter_map(|c| c.transition.as_ref().map(|t| (&c.key, t)))
    }
}

/// Plans one check at `now`.
pub fn plan_check<Tz: TimeZone>(
    rules: &[AlertRule],
    snapshot: &Snapshot,
    states: &BTreeMap<PairKey, PairState>,
    tz: &Tz,
    now: DateTime<Utc>,
) -> CheckPlan {
    let never_seen = GatewayView::default();
    let mut plan = CheckPlan::default();
    let mut live = BTreeSet::new();
    for rule in rules {
        let gateways: Vec<(&str, &GatewayView)> = match &rule.gateway {
            Some(g) if snapshot.revoked.contains(g) => Vec::new(),
            Some(g) => vec![(g.as_str(), snapshot.gateways.get(g).unwrap_or(&never_seen))],
            None => snapshot
                .gateways
                .iter()
                .map(|(id, view)| (id.as_str(), view))
                .collect(),
        };
        for (gateway_id, view) in gateways {
            let key = PairKey {
                rule_id: rule.id.clone(),
                gateway_id: gateway_id.to_owned(),
            };
            let initial;
            let old = match states.get(&key) {
                Some(state) => state,
                None => {
                    initial = PairState::initial(rule);
                    &initial
                }
            };
            let outcome = evaluate(rule, &view.observation(rule), tz, now, old);
            // A pair with no stored state compares with its initial one, so
            // it is written only once it has something to remember (pending
            // or firing).
            if outcome.changed_from(old) {
                plan.changes.push(PairChange {
                    key: key.clone(),
                    state: outcome.state,
                    transition: outcome.transition,
                });
            }
            live.insert(key);
        }
    }
    plan.changes.sort_by(|a, b| a.key.cmp(&b.key));
    plan.removed = states
        .keys()
        .filter(|k| !live.contains(*k))
        .cloned()
        .collect();
    plan
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::evaluate::TransitionKind;
    use crate::rules::{parse_recipients, RuleKind};
    use chrono::FixedOffset;
    use std::time::Duration;

    fn t0() -> DateTime<Utc> {
        "2026-12-02T08:00:00Z".parse().unwrap()
    }

    fn at(secs: i64) -> DateTime<Utc> {
        t0() + chrono::Duration::seconds(secs)
    }

    fn utc() -> FixedOffset {
        FixedOffset::east_opt(0).unwrap()
    }

    fn rule(id: &str, kind: RuleKind, gateway: Option<&str>) -> AlertRule {
        AlertRule::new(
            RuleId::parse(id).unwrap(),
            kind,
            gateway.map(str::to_owned),
            parse_recipients("ops@example.com").unwrap(),
            t0(),
        )
        .unwrap()
    }

    fn silent(id: &str, gateway: Option<&str>) -> AlertRule {
        rule(
            id,
            RuleKind::Silent {
                for_: Duration::from_secs(600),
            },
            gateway,
        )
    }

    fn below_power(id: &str) -> AlertRule {
        rule(
            id,
            RuleKind::Below {
                value: "power".into(),
                threshold: 5.0,
                for_: Duration::from_secs(60),
                between: None,
            },
            None,
        )
    }

    fn row(gateway: &str, last_seen: i64, value: Option<(&str, &str, f64, i64)>) -> LatestRow {
        LatestRow {
            gateway_id: gateway.into(),
            last_seen: Some(at(last_seen)),
            sensor: value.map(|v| v.0.into()),
            name: value.map(|v| v.1.into()),
            ts: value.map(|v| at(v.3)),
            value: value.map(|v| v.2),
            unit: value.map(|_| "W".into()),
        }
    }

    fn key(rule: &str, gateway: &str) -> PairKey {
        PairKey {
            rule_id: RuleId::parse(rule).unwrap(),
            gateway_id: gateway.into(),
        }
    }

    #[test]
    fn the_snapshot_is_the_registry_and_latest_less_the_revoked() {
        let snapshot = Snapshot::build(
            [
                ("gw-1".into(), false),
                ("gw-new".into(), false),
                ("gw-old".into(), true),
            ],
            [
                row("gw-1", 100, Some(("inv-1", "power", 3.0, 90))),
                row("gw-1", 100, Some(("inv-2", "power", 4.0, 95))),
                row("gw-1", 100, Some(("inv-1", "voltage", 230.0, 90))),
                row("gw-old", 50, Some(("inv-1", "power", 1.0, 50))),
                row("gw-unregistered", 70, None),
            ],
        );
        let ids: Vec<&str> = snapshot.gateways.keys().map(String::as_str).collect();
        assert_eq!(ids, ["gw-1", "gw-new", "gw-unregistered"]);
        assert_eq!(snapshot.gateways["gw-new"], GatewayView::default());
        assert_eq!(snapshot.gateways["gw-unregistered"].last_seen, Some(at(70)));
        assert!(snapshot.gateways["gw-unregistered"].values.is_empty());
        let gw1 = &snapshot.gateways["gw-1"];
        assert_eq!(gw1.values["power"].len(), 2);
        // The value rule sees the newest power of the two sensors.
        let observation = gw1.observation(&below_power("b1"));
        assert_eq!(
            observation.value.map(|s| (s.sensor, s.value)),
            Some(("inv-2".into(), 4.0))
        );
        assert_eq!(gw1.observation(&silent("s1", None)).value, None);
    }

    #[test]
    fn a_rule_for_all_gateways_fans_out_and_only_changes_are_planned() {
        let snapshot = Snapshot::build(
            [
                ("gw-1".into(), false),
                ("gw-2".into(), false),
                ("gw-3".into(), false),
            ],
            [row("gw-1", 0, None), row("gw-2", 11 * 60, None)],
        );
        let rules = [silent("s1", None)];
        let plan = plan_check(&rules, &snapshot, &BTreeMap::new(), &utc(), at(11 * 60));
        // gw-1: silent 11 min; gw-3: never seen, 11 min since the rule; gw-2: fine.
        let fired: Vec<(&str, TransitionKind)> = plan
            .transitions()
            .map(|(k, t)| (k.gateway_id.as_str(), t.kind))
            .collect();
        assert_eq!(
            fired,
            [
                ("gw-1", TransitionKind::Firing),
                ("gw-3", TransitionKind::Firing)
            ]
        );
        assert!(plan.removed.is_empty());
        // Applied, the next check plans nothing.
        let states: BTreeMap<PairKey, PairState> = plan
            .changes
            .iter()
            .map(|c| (c.key.clone(), c.state.clone()))
            .collect();
        let again = plan_check(&rules, &snapshot, &states, &utc(), at(11 * 60 + 30));
        assert_eq!(again, CheckPlan::default());
    }

    #[test]
    fn a_pending_timer_is_a_change_without_a_transition() {
        let snapshot = Snapshot::build([], [row("gw-1", 0, Some(("inv-1", "power", 1.0, 0)))]);
        let rules = [below_power("b1")];
        let plan = plan_check(&rules, &snapshot, &BTreeMap::new(), &utc(), at(0));
        assert_eq!(
            plan.changes,
            [PairChange {
                key: key("b1", "gw-1"),
                state: PairState::Ok {
                    since: t0(),
                    pending_since: Some(at(0))
                },
                transition: None,
            }]
        );
        let states = BTreeMap::from([(key("b1", "gw-1"), plan.changes[0].state.clone())]);
        let fired = plan_check(&rules, &snapshot, &states, &utc(), at(60));
        assert_eq!(fired.transitions().count(), 1);
    }

    #[test]
    fn a_scoped_rule_watches_its_gateway_even_unseen_but_not_revoked() {
        let snapshot = Snapshot::build(
            [("gw-1".into(), false), ("gw-gone".into(), true)],
            [row("gw-1", 11 * 60, None)],
        );
        let rules = [
            silent("s1", Some("gw-typo")),
            silent("s2", Some("gw-gone")),
            silent("s3", Some("gw-1")),
        ];
        let plan = plan_check(&rules, &snapshot, &BTreeMap::new(), &utc(), at(11 * 60));
        let fired: Vec<&PairKey> = plan.transitions().map(|(k, _)| k).collect();
        assert_eq!(fired, [&key("s1", "gw-typo")]);
    }

    #[test]
    fn states_of_removed_rules_and_revoked_gateways_are_dropped() {
        let snapshot = Snapshot::build(
            [("gw-1".into(), false), ("gw-2".into(), true)],
            [row("gw-1", 0, None)],
        );
        let firing = PairState::Firing {
            since: at(0),
            values: crate::evaluate::Evidence::Silent {
                last_seen: None,
                counted_from: t0(),
            },
        };
        let states = BTreeMap::from([
            (key("s1", "gw-1"), PairState::initial(&silent("s1", None))),
            (key("s1", "gw-2"), firing.clone()),
            (key("gone", "gw-1"), firing),
        ]);
        let plan = plan_check(&[silent("s1", None)], &snapshot, &states, &utc(), at(60));
        assert_eq!(plan.removed, [key("gone", "gw-1"), key("s1", "gw-2")]);
        assert!(plan.changes.is_empty());
    }
}
