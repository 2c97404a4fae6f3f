//! `/metrics` in Prometheus' text format: tenants by desired and observed
//! state, unhealthy containers, each pool's leased and free ports, the
//! operations by kind and state with their duration (from the operations
//! log, so they survive the daemon), the watcher's passes, events and
//! backoffs, and the daemon's own counters.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;
use std::time::Duration;

use provisioner::domain::{Health, Pool};
use provisioner::Error;

use crate::AppState;

/// The bounds (seconds) of the operation duration histogram.
const BUCKETS: [f64; 10] = [0.5, 1.0, 2.0, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0, 300.0];

/// What the daemon counts itself.
#[derive(Default)]
pub struct Metrics {
    inner: Mutex<Counters>,
}

#[derive(Default)]
struct Counters {
    watcher_events: BTreeMap<String, u64>,
    reconcile_passes: u64,
    reconcile_seconds: f64,
    engine_reconnects: u64,
    endpoint_changes: u64,
    /// Per kind: bucket counts, count and sum of the operations this
    /// daemon ran.
    durations: BTreeMap<&'static str, ([u64; BUCKETS.len()], u64, f64)>,
}

impl Metrics {
    fn with(&self, f: impl FnOnce(&mut Counters)) {
        f(&mut self.inner.lock().expect("not poisoned"));
    }

    pub fn watcher_event(&self, action: &str) {
        // Health checks report as `health_status: healthy`; the label keeps
        // the action's first word.
        let action = action.split(':').next().unwrap_or(action).to_owned();
        self.with(|c| *c.watcher_events.entry(action).or_default() += 1);
    }

    pub fn reconcile_pass(&self, took: Duration) {
        self.with(|c| {
            c.reconcile_passes += 1;
            c.reconcile_seconds += took.as_secs_f64();
        });
    }

    pub fn engine_reconnected(&self) {
        self.with(|c| c.engine_reconnects += 1);
    }

    pub fn endpoint_changed(&self) {
        self.with(|c| c.endpoint_changes += 1);
    }

    pub fn operation_done(&self, kind: &'static str, took: Duration) {
        let secs = took.as_secs_f64();
        self.with(|c| {
            let (buckets, count, sum) = c.durations.entry(kind).or_default();
            for (i, bound) in BUCKETS.iter().enumerate() {
                if secs <= *bound {
                    buckets[i] += 1;
                }
            }
            *count += 1;
            *sum += secs;
        });
    }
}

/// A label value, escaped.
fn label(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn family(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

/// The whole exposition.
pub async fn render(state: &AppState) -> Result<String, Error> {
    let p = &state.provisioner;
    let statuses = state.cache.list(p).await?;
    let mut out = String::new();

    family(
        &mut out,
        "provision_tenants",
        "gauge",
        "Tenants by desired and observed state.",
    );
    let mut tenants: BTreeMap<(String, String), u64> = BTreeMap::new();
    let mut unhealthy = 0;
    for s in statuses.iter() {
        *tenants
            .entry((s.desired.to_string(), s.state.to_string()))
            .or_default() += 1;
        unhealthy += s
            .containers
            .iter()
            .filter(|c| c.details.state.is_running() && c.details.health == Health::Unhealthy)
            .count();
    }
    for ((desired, observed), n) in &tenants {
        let _ = writeln!(
            out,
            "provision_tenants{{desired=\"{}\",observed=\"{}\"}} {n}",
            label(desired),
            label(observed)
        );
    }
    family(
        &mut out,
        "provision_unhealthy_containers",
        "gauge",
        "Tenant containers that run and fail their health check.",
    );
    let _ = writeln!(out, "provision_unhealthy_containers {unhealthy}");

    // The noisy-neighbour limits (absent: none, or ingest's default) and
    // the gateway connections of each tenant's newest ingest health check.
    family(
        &mut out,
        "provision_tenant_max_readings_per_sec",
        "gauge",
        "A tenant's ingest rate limit, readings per second (absent: unlimited).",
    );
    for s in statuses.iter() {
        if let Some(n) = s.max_readings_per_sec {
            let tenant = label(s.provider.as_str());
            let _ = writeln!(
                out,
                "provision_tenant_max_readings_per_sec{{tenant=\"{tenant}\"}} {n}"
            );
        }
    }
    family(
        &mut out,
        "provision_tenant_max_gateways",
        "gauge",
        "A tenant's cap on gateway connections (absent: ingest's default, 1000).",
    );
    for s in statuses.iter() {
        if let Some(n) = s.max_gateways {
            let tenant = label(s.provider.as_str());
            let _ = writeln!(
                out,
                "provision_tenant_max_gateways{{tenant=\"{tenant}\"}} {n}"
            );
        }
    }
    family(
        &mut out,
        "provision_tenant_gateway_connections",
        "gauge",
        "A tenant's logged-in gateway connections by transport, as its ingest's newest health check counted them.",
    );
    for s in statuses.iter() {
        if let Some(c) = s.connections {
            let tenant = label(s.provider.as_str());
            for (transport, n) in [("plain", c.plain), ("tls", c.tls)] {
                let _ = writeln!(
                    out,
                    "provision_tenant_gateway_connections{{tenant=\"{tenant}\",transport=\"{transport}\"}} {n}"
                );
            }
        }
    }

    // What each tenant's notifier said in its newest health check
    // (absent until one passed): mail on or off, rules, what fires, mails.
    type NotifierGauge = fn(&provisioner::ops::NotifierStatus) -> u64;
    let gauges: [(&str, &str, NotifierGauge); 5] = [
        (
            "provision_tenant_mail_on",
            "1 when the tenant's notifier has a relay ([mail]), 0 when mail is off.",
            |n| u64::from(n.mail == "on"),
        ),
        (
            "provision_tenant_alert_rules",
            "A tenant's alert rules, as its notifier's newest health check counted them.",
            |n| n.rules,
        ),
        (
            "provision_tenant_alerts_firing",
            "A tenant's (rule, gateway) pairs firing now, as its notifier's newest health check counted them.",
            |n| n.firing,
        ),
        (
            "provision_tenant_mails_pending",
            "A tenant's mails not yet taken by the relay.",
            |n| n.pending,
        ),
        (
            "provision_tenant_mails_failed",
            "A tenant's mails the relay refused for good today.",
            |n| n.failed,
        ),
    ];
    for (name, help, value) in gauges {
        family(&mut out, name, "gauge", help);
        for s in statuses.iter() {
            if let Some(n) = &s.notifier {
                let tenant = label(s.provider.as_str());
                let _ = writeln!(out, "{name}{{tenant=\"{tenant}\"}} {}", value(n));
            }
        }
    }

    let leases = p.store.leases().await?;
    let pools = p.config.pools();
    family(
        &mut out,
        "provision_ports_leased",
        "gauge",
        "Leased ports of each pool.",
    );
    let mut free = String::new();
    for pool in Pool::ALL {
        let range = pools.range(pool);
        let leased = leases.iter().filter(|l| l.pool == pool).count() as u64;
        let size = range.ports().len() as u64;
        let _ = writeln!(out, "provision_ports_leased{{pool=\"{pool}\"}} {leased}");
        let _ = writeln!(
            free,
            "provision_ports_free{{pool=\"{pool}\"}} {}",
            size.saturating_sub(leased)
        );
    }
    family(
        &mut out,
        "provision_ports_free",
        "gauge",
        "Free ports of each pool.",
    );
    out.push_str(&free);

    let counts = p.store.operation_counts().await?;
    family(
        &mut out,
        "provision_operations",
        "gauge",
        "Operations in the log by kind and state.",
    );
    for (kind, op_state, n, _) in &counts {
        let _ = writeln!(
            out,
            "provision_operations{{kind=\"{}\",state=\"{op_state}\"}} {n}",
            label(kind)
        );
    }
    family(
        &mut out,
        "provision_operation_seconds_total",
        "gauge",
        "Total run time of the finished operations in the log, by kind and state.",
    );
    for (kind, op_state, _, secs) in &counts {
        let _ = writeln!(
            out,
            "provision_operation_seconds_total{{kind=\"{}\",state=\"{op_state}\"}} {secs:.3}",
            label(kind)
        );
    }

    let c = state.metrics.inner.lock().expect("not poisoned");
    family(
        &mut out,
        "provisiond_operation_duration_seconds",
        "histogram",
        "Duration of the operations this daemon ran, by kind.",
    );
    for (kind, (buckets, count, sum)) in &c.durations {
        for (bound, n) in BUCKETS.iter().zip(buckets) {
            let _ = writeln!(
                out,
                "provisiond_operation_duration_seconds_bucket{{kind=\"{kind}\",le=\"{bound}\"}} {n}"
            );
        }
        let _ = writeln!(
            out,
            "provisiond_operation_duration_seconds_bucket{{kind=\"{kind}\",le=\"+Inf\"}} {count}"
        );
        let _ = writeln!(
            out,
            "provisiond_operation_duration_seconds_sum{{kind=\"{kind}\"}} {sum:.3}"
        );
        let _ = writeln!(
            out,
            "provisiond_operation_duration_seconds_count{{kind=\"{kind}\"}} {count}"
        );
    }
    family(
        &mut out,
        "provisiond_reconcile_passes_total",
        "counter",
        "The watcher's passes over every tenant.",
    );
    let _ = writeln!(
        out,
        "provisiond_reconcile_passes_total {}",
        c.reconcile_passes
    );
    family(
        &mut out,
        "provisiond_reconcile_pass_seconds_total",
        "counter",
        "Total duration of the watcher's passes.",
    );
    let _ = writeln!(
        out,
        "provisiond_reconcile_pass_seconds_total {:.3}",
        c.reconcile_seconds
    );
    family(
        &mut out,
        "provisiond_watcher_events_total",
        "counter",
        "Engine events about our containers, by action.",
    );
    for (action, n) in &c.watcher_events {
        let _ = writeln!(
            out,
            "provisiond_watcher_events_total{{action=\"{}\"}} {n}",
            label(action)
        );
    }
    family(
        &mut out,
        "provisiond_engine_reconnects_total",
        "counter",
        "Times the engine came back after it went away.",
    );
    let _ = writeln!(
        out,
        "provisiond_engine_reconnects_total {}",
        c.engine_reconnects
    );
    family(
        &mut out,
        "provisiond_endpoint_changes_total",
        "counter",
        "Tenant app endpoints that changed (an app started, moved to another node, or stopped).",
    );
    let _ = writeln!(
        out,
        "provisiond_endpoint_changes_total {}",
        c.endpoint_changes
    );
    drop(c);
    family(
        &mut out,
        "provisiond_backoffs",
        "gauge",
        "Tenants whose next repair waits (they keep failing).",
    );
    let _ = writeln!(out, "provisiond_backoffs {}", state.watcher.backoffs());
    Ok(out)
}
