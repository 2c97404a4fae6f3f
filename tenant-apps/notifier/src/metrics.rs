//! The notifier's counters: what `/healthz` says in one line
//! ([`tenant_schema::health::NotifierHealth`]) and what `/metrics` serves
//! as Prometheus text. Plain atomics, written by the loop, read by the
//! HTTP task.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};

use tenant_schema::health::NotifierHealth;

#[derive(Debug, Default)]
pub struct Metrics {
    pub mail_on: AtomicBool,
    /// Rules read at the last check.
    pub rules: AtomicU64,
    /// (rule, gateway) pairs firing now.
    pub firing: AtomicU64,
    /// Mails queued and not yet taken by the relay.
    pub pending: AtomicU64,
    /// Mails refused for good (5xx, or a week of 4xx) since start.
    pub failed_total: AtomicU64,
    /// Mails the relay took since start.
    pub sent_total: AtomicU64,
    /// Attempts that met a transient error (relay down, 4xx).
    pub retries_total: AtomicU64,
    /// Transitions seen since start (firing and resolved).
    pub transitions_total: AtomicU64,
    /// Requests to Cassandra (each page of a paged read counts).
    pub cassandra_requests_total: AtomicU64,
    /// Cassandra requests that failed.
    pub cassandra_errors_total: AtomicU64,
    /// Checks run since start.
    pub checks_total: AtomicU64,
    /// Unix seconds of the last check that completed; 0 before the first.
    pub last_check_ok: AtomicI64,
    /// Daily and requested reports queued since start.
    pub reports_total: AtomicU64,
}

fn get(counter: &AtomicU64) -> u64 {
    counter.load(Ordering::Relaxed)
}

impl Metrics {
    pub fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    pub fn set(counter: &AtomicU64, n: u64) {
        counter.store(n, Ordering::Relaxed);
    }

    pub fn cassandra_requests(&self) -> u64 {
        get(&self.cassandra_requests_total)
    }

    /// The `/healthz` line.
    pub fn health(&self) -> NotifierHealth {
        NotifierHealth {
            mail_on: self.mail_on.load(Ordering::Relaxed),
            rules: get(&self.rules),
            firing: get(&self.firing),
            pending: get(&self.pending),
            failed: get(&self.failed_total),
        }
    }

    /// Prometheus text format.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let mut metric = |name: &str, kind: &str, help: &str, value: u64| {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}"
            );
        };
        metric(
            "notifier_mail_enabled",
            "gauge",
            "1 when a relay is configured, 0 when mail is off",
            u64::from(self.mail_on.load(Ordering::Relaxed)),
        );
        metric("notifier_rules", "gauge", "Alert rules", get(&self.rules));
        metric(
            "notifier_firing_pairs",
            "gauge",
            "(rule, gateway) pairs firing now",
            get(&self.firing),
        );
        metric(
            "notifier_pending_mails",
            "gauge",
            "Mails queued and not yet taken by the relay",
            get(&self.pending),
        );
        metric(
            "notifier_mails_sent_total",
            "counter",
            "Mails the relay took",
            get(&self.sent_total),
        );
        metric(
            "notifier_mails_failed_total",
            "counter",
            "Mails refused for good",
            get(&self.failed_total),
        );
        metric(
            "notifier_mail_retries_total",
            "counter",
            "Attempts that met a transient error",
            get(&self.retries_total),
        );
        metric(
            "notifier_transitions_total",
            "counter",
            "Alert transitions (firing and resolved)",
            get(&self.transitions_total),
        );
        metric(
            "notifier_reports_total",
            "counter",
            "Daily and requested reports queued",
            get(&self.reports_total),
        );
        metric(
            "notifier_checks_total",
            "counter",
            "Checks run",
            get(&self.checks_total),
        );
        metric(
            "notifier_cassandra_requests_total",
            "counter",
            "Requests to Cassandra (each page counts)",
            get(&self.cassandra_requests_total),
        );
        metric(
            "notifier_cassandra_errors_total",
            "counter",
            "Requests to Cassandra that failed",
            get(&self.cassandra_errors_total),
        );
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn health_and_metrics_show_the_counters() {
        let m = Metrics::default();
        m.mail_on.store(true, Ordering::Relaxed);
        Metrics::set(&m.rules, 3);
        Metrics::set(&m.firing, 1);
        Metrics::add(&m.cassandra_requests_total, 7);
        assert_eq!(
            m.health().to_string(),
            "ok notifier mail=on rules=3 firing=1 pending=0 failed=0"
        );
        let text = m.render();
        assert!(
            text.contains("\nnotifier_cassandra_requests_total 7\n"),
            "{text}"
        );
        assert!(text.contains("\nnotifier_rules 3\n"), "{text}");
    }
}
