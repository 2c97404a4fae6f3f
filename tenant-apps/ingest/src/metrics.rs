//! What ingest counts, and its rendering as Prometheus text (version 0.0.4).
//! Plain atomics: cheap enough to bump on every frame.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use tenant_schema::health::IngestHealth;

use crate::admission::Rejection;
use crate::auth::HelloRefusal;
use crate::trusted_proxies::ProxyRefusal;

/// Upper bounds of the write latency histogram, in seconds.
const LATENCY_BUCKETS: [f64; 14] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// The counters of one ingest process.
#[derive(Debug, Default)]
pub struct Metrics {
    pub connections_open: AtomicU64,
    /// Open connections that have not completed their hello.
    pub connections_unauthenticated: AtomicU64,
    pub connections_total: AtomicU64,
    connections_rejected: [AtomicU64; Rejection::ALL.len()],
    /// Connections closed to make room for a newer one waiting for its hello.
    pub connections_evicted: AtomicU64,
    /// Connections served in plain TCP, and over TLS (after the handshake).
    pub connections_plain: AtomicU64,
    pub connections_tls: AtomicU64,
    /// Logged-in connections open now, in plain TCP and over TLS.
    pub logged_in_plain: AtomicU64,
    pub logged_in_tls: AtomicU64,
    /// `INGEST_MAX_CONNECTIONS`, set when the server starts.
    pub max_connections: AtomicU64,
    /// `INGEST_MAX_READINGS_PER_SEC` (0: unlimited), set when the server
    /// starts.
    pub rate_limit: AtomicU64,
    /// Times a connection stopped reading for the rate limit, and the time
    /// it was told to wait in all (microseconds).
    pub rate_limited_frames: AtomicU64,
    pub rate_limited_micros: AtomicU64,
    /// Times a connection stopped decoding because
    /// `INGEST_MAX_FRAMES_IN_FLIGHT` frames were unacked over all.
    pub frames_held_back: AtomicU64,
    /// TLS handshakes that failed or did not finish within the hello deadline.
    pub tls_handshake_failures: AtomicU64,
    /// Plain connections closed because TLS is required.
    pub plain_refused: AtomicU64,
    /// PROXY protocol v2 headers taken from trusted fronts.
    pub proxy_headers: AtomicU64,
    proxy_refused: [AtomicU64; ProxyRefusal::ALL.len()],
    pub auth_failures: AtomicU64,
    hello_refusals: [AtomicU64; HelloRefusal::ALL.len()],
    /// Reads of a gateway's row to check a hello.
    pub token_reads: AtomicU64,
    /// Hellos of unknown gateways answered from the negative cache.
    pub unknown_gateway_cache_hits: AtomicU64,
    /// Hellos welcomed from the gateway book, without a read of their own.
    pub token_book_hits: AtomicU64,
    /// Reads of the whole gateways table for the book, by a hello.
    pub token_book_reads: AtomicU64,
    /// Reads of the gateways table that look for revoked tokens.
    pub revocation_checks: AtomicU64,
    pub revocation_check_errors: AtomicU64,
    /// Connections closed because their gateway was revoked.
    pub revoked_connections: AtomicU64,
    pub frames: AtomicU64,
    pub readings: AtomicU64,
    pub values: AtomicU64,
    pub acks: AtomicU64,
    pub nacks: AtomicU64,
    pub protocol_errors: AtomicU64,
    pub idle_timeouts: AtomicU64,
    pub write_errors: AtomicU64,
    pub write_requests: AtomicU64,
    write_latency_buckets: [AtomicU64; LATENCY_BUCKETS.len()],
    write_latency_count: AtomicU64,
    write_latency_sum_micros: AtomicU64,
}

impl Metrics {
    pub fn inc(counter: &AtomicU64) {
        counter.fetch_add(1, Relaxed);
    }

    pub fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Relaxed);
    }

    /// Counts one connection refused at accept.
    pub fn reject(&self, why: Rejection) {
        Self::inc(&self.connections_rejected[why as usize]);
    }

    /// Connections refused at accept for `why` so far.
    pub fn rejected(&self, why: Rejection) -> u64 {
        self.connections_rejected[why as usize].load(Relaxed)
    }

    /// Counts one refused hello.
    pub fn refuse_hello(&self, why: HelloRefusal) {
        Self::inc(&self.hello_refusals[why as usize]);
    }

    /// Hellos refused for `why` so far.
    pub fn hello_refusals(&self, why: HelloRefusal) -> u64 {
        self.hello_refusals[why as usize].load(Relaxed)
    }

    /// Counts one connection closed for its PROXY header.
    pub fn refuse_proxy(&self, why: ProxyRefusal) {
        Self::inc(&self.proxy_refused[why as usize]);
    }

    /// Connections closed for their PROXY header for `why` so far.
    pub fn proxy_refused(&self, why: ProxyRefusal) -> u64 {
        self.proxy_refused[why as usize].load(Relaxed)
    }

    /// Counts one wait of a connection for the rate limit.
    pub fn rate_limited(&self, wait: Duration) {
        Self::inc(&self.rate_limited_frames);
        Self::add(&self.rate_limited_micros, wait.as_micros() as u64);
    }

    /// The line `/healthz` answers and the health check prints
    /// ([`tenant_schema::health`]).
    pub fn health(&self) -> IngestHealth {
        IngestHealth {
            plain: self.logged_in_plain.load(Relaxed),
            tls: self.logged_in_tls.load(Relaxed),
            max_connections: self.max_connections.load(Relaxed),
            max_readings_per_sec: Some(self.rate_limit.load(Relaxed)).filter(|n| *n > 0),
        }
    }

    /// Records the duration of one successful frame write.
    pub fn observe_write(&self, took: Duration) {
        let secs = took.as_secs_f64();
        if let Some(i) = LATENCY_BUCKETS.iter().position(|b| secs <= *b) {
            self.write_latency_buckets[i].fetch_add(1, Relaxed);
        }
        self.write_latency_count.fetch_add(1, Relaxed);
        self.write_latency_sum_micros
            .fetch_add(took.as_micros() as u64, Relaxed);
    }

    /// The write latency histogram so far: (upper bound, writes in that
    /// bucket) per bucket, in order. Writes over the last bound are in the
    /// count only.
    pub fn write_latency_counts(&self) -> Vec<(Duration, u64)> {
        LATENCY_BUCKETS
            .iter()
            .zip(&self.write_latency_buckets)
            .map(|(bound, count)| (Duration::from_secs_f64(*bound), count.load(Relaxed)))
            .collect()
    }

    /// The Prometheus text exposition of every counter.
    pub fn render(&self) -> String {
        let mut out = String::with_capacity(2048);
        let mut one = |name: &str, kind: &str, help: &str, value: u64| {
            let _ = writeln!(out, "# HELP {name} {help}");
            let _ = writeln!(out, "# TYPE {name} {kind}");
            let _ = writeln!(out, "{name} {value}");
        };
        let get = |c: &AtomicU64| c.load(Relaxed);
        one(
            "ingest_connections_open",
            "gauge",
            "Gateway connections open now.",
            get(&self.connections_open),
        );
        one(
            "ingest_connections_unauthenticated",
            "gauge",
            "Open connections that have not completed their hello.",
            get(&self.connections_unauthenticated),
        );
        one(
            "ingest_connections_total",
            "counter",
            "Gateway connections accepted.",
            get(&self.connections_total),
        );
        one(
            "ingest_connections_plain_total",
            "counter",
            "Gateway connections served in plain TCP.",
            get(&self.connections_plain),
        );
        one(
            "ingest_connections_tls_total",
            "counter",
            "Gateway connections served over TLS.",
            get(&self.connections_tls),
        );
        one(
            "ingest_max_connections",
            "gauge",
            "Logged-in gateway connections allowed at once (INGEST_MAX_CONNECTIONS).",
            get(&self.max_connections),
        );
        one(
            "ingest_rate_limit_readings_per_sec",
            "gauge",
            "Readings per second this tenant takes in at most (INGEST_MAX_READINGS_PER_SEC; 0: unlimited).",
            get(&self.rate_limit),
        );
        one(
            "ingest_rate_limited_frames_total",
            "counter",
            "Times a connection stopped reading because the tenant was over its rate limit.",
            get(&self.rate_limited_frames),
        );
        one(
            "ingest_frames_held_back_total",
            "counter",
            "Times a connection stopped reading because INGEST_MAX_FRAMES_IN_FLIGHT frames were unacked over all connections.",
            get(&self.frames_held_back),
        );
        one(
            "ingest_tls_handshake_failures_total",
            "counter",
            "TLS handshakes that failed or did not finish within the hello deadline.",
            get(&self.tls_handshake_failures),
        );
        one(
            "ingest_plain_refused_total",
            "counter",
            "Plain connections closed because the port requires TLS.",
            get(&self.plain_refused),
        );
        one(
            "ingest_proxy_headers_total",
            "counter",
            "PROXY protocol v2 headers taken from trusted fronts (INGEST_TRUSTED_PROXIES).",
            get(&self.proxy_headers),
        );
        one(
            "ingest_connections_evicted_total",
            "counter",
            "Connections without a hello closed to make room for a newer one.",
            get(&self.connections_evicted),
        );
        one(
            "ingest_auth_failures_total",
            "counter",
            "Hellos refused (unknown gateway, wrong or revoked token, no hello).",
            get(&self.auth_failures),
        );
        one(
            "ingest_token_reads_total",
            "counter",
            "Reads of a gateway's token hash to check a hello.",
            get(&self.token_reads),
        );
        one(
            "ingest_token_book_hits_total",
            "counter",
            "Hellos welcomed from the gateway book (a copy of the gateways table), without a read.",
            get(&self.token_book_hits),
        );
        one(
            "ingest_token_book_reads_total",
            "counter",
            "Reads of the whole gateways table for the gateway book, made by a hello.",
            get(&self.token_book_reads),
        );
        one(
            "ingest_unknown_gateway_cache_hits_total",
            "counter",
            "Hellos of unknown gateways refused from the negative cache.",
            get(&self.unknown_gateway_cache_hits),
        );
        one(
            "ingest_revocation_checks_total",
            "counter",
            "Reads of the gateways table that look for revoked tokens.",
            get(&self.revocation_checks),
        );
        one(
            "ingest_revocation_check_errors_total",
            "counter",
            "Revocation checks that could not read the gateways table.",
            get(&self.revocation_check_errors),
        );
        one(
            "ingest_revoked_connections_total",
            "counter",
            "Connections closed because their gateway was revoked.",
            get(&self.revoked_connections),
        );
        one(
            "ingest_frames_total",
            "counter",
            "Reading and batch frames received.",
            get(&self.frames),
        );
        one(
            "ingest_readings_total",
            "counter",
            "Readings written.",
            get(&self.readings),
        );
        one(
            "ingest_values_total",
            "counter",
            "Values (rows of readings) written.",
            get(&self.values),
        );
        one(
            "ingest_acks_total",
            "counter",
            "Frames acked.",
            get(&self.acks),
        );
        one(
            "ingest_nacks_total",
            "counter",
            "Frames nacked as bad readings.",
            get(&self.nacks),
        );
        one(
            "ingest_protocol_errors_total",
            "counter",
            "Connections closed for unrecoverable framing.",
            get(&self.protocol_errors),
        );
        one(
            "ingest_idle_timeouts_total",
            "counter",
            "Connections closed for idleness.",
            get(&self.idle_timeouts),
        );
        one(
            "ingest_write_errors_total",
            "counter",
            "Frame writes that failed (never acked).",
            get(&self.write_errors),
        );
        one(
            "ingest_write_requests_total",
            "counter",
            "Write requests sent to Cassandra (each carries one or more frames).",
            get(&self.write_requests),
        );
        let _ = writeln!(
            out,
            "# HELP ingest_rate_limited_seconds_total Time connections stopped reading for the rate limit, summed over connections.\n\
             # TYPE ingest_rate_limited_seconds_total counter\n\
             ingest_rate_limited_seconds_total {}",
            get(&self.rate_limited_micros) as f64 / 1e6
        );
        let name = "ingest_connections";
        let _ = writeln!(
            out,
            "# HELP {name} Logged-in gateway connections open now, by transport."
        );
        let _ = writeln!(out, "# TYPE {name} gauge");
        for (transport, gauge) in [
            ("plain", &self.logged_in_plain),
            ("tls", &self.logged_in_tls),
        ] {
            let _ = writeln!(out, "{name}{{transport=\"{transport}\"}} {}", get(gauge));
        }
        labeled(
            &mut out,
            "ingest_connections_rejected_total",
            "Connections refused at accept, by reason.",
            Rejection::ALL
                .iter()
                .map(|r| (r.label(), self.rejected(*r))),
        );
        labeled(
            &mut out,
            "ingest_hello_refusals_total",
            "Hellos refused, by reason.",
            HelloRefusal::ALL
                .iter()
                .map(|r| (r.label(), self.hello_refusals(*r))),
        );
        labeled(
            &mut out,
            "ingest_proxy_refused_total",
            "Connections closed for their PROXY header, by reason (untrusted: one from an address not in INGEST_TRUSTED_PROXIES; missing: none from a trusted front; invalid: one that cannot be decoded).",
            ProxyRefusal::ALL
                .iter()
                .map(|r| (r.label(), self.proxy_refused(*r))),
        );
        let name = "ingest_write_duration_seconds";
        let _ = writeln!(out, "# HELP {name} Time to write one frame to Cassandra.");
        let _ = writeln!(out, "# TYPE {name} histogram");
        let mut cumulative = 0;
        for (bound, count) in LATENCY_BUCKETS.iter().zip(&self.write_latency_buckets) {
            cumulative += get(count);
            let _ = writeln!(out, "{name}_bucket{{le=\"{bound}\"}} {cumulative}");
        }
        let total = get(&self.write_latency_count);
        let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {total}");
        let sum = get(&self.write_latency_sum_micros) as f64 / 1e6;
        let _ = writeln!(out, "{name}_sum {sum}");
        let _ = writeln!(out, "{name}_count {total}");
        out
    }
}

/// A counter with one `reason` label.
fn labeled<'a>(
    out: &mut String,
    name: &str,
    help: &str,
    values: impl Iterator<Item = (&'a str, u64)>,
) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} counter");
    for (reason, value) in values {
        let _ = writeln!(out, "{name}{{reason=\"{reason}\"}} {value}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_health_line_has_the_live_counters_and_limits() {
        let m = Metrics::default();
        Metrics::add(&m.logged_in_plain, 3);
        Metrics::inc(&m.logged_in_tls);
        Metrics::add(&m.max_connections, 1000);
        assert_eq!(
            m.health().to_string(),
            "ok connections plain=3 tls=1 max_connections=1000 max_readings_per_sec=unlimited"
        );
        Metrics::add(&m.rate_limit, 500);
        assert_eq!(m.health().max_readings_per_sec, Some(500));
    }

    #[test]
    fn the_histogram_is_cumulative_and_counts_everything() {
        let m = Metrics::default();
        m.observe_write(Duration::from_micros(300));
        m.observe_write(Duration::from_millis(3));
        m.observe_write(Duration::from_secs(60));
        Metrics::inc(&m.acks);
        m.refuse_hello(HelloRefusal::WrongToken);
        m.reject(Rejection::Address);
        Metrics::inc(&m.logged_in_tls);
        m.rate_limited(Duration::from_millis(1500));
        Metrics::inc(&m.proxy_headers);
        m.refuse_proxy(ProxyRefusal::Untrusted);
        m.refuse_proxy(ProxyRefusal::Untrusted);
        let text = m.render();
        assert!(
            text.contains("ingest_connections{transport=\"plain\"} 0\n"),
            "{text}"
        );
        assert!(
            text.contains("ingest_connections{transport=\"tls\"} 1\n"),
            "{text}"
        );
        assert!(
            text.contains("ingest_rate_limited_seconds_total 1.5\n"),
            "{text}"
        );
        assert!(
            text.contains("ingest_rate_limited_frames_total 1\n"),
            "{text}"
        );
        assert!(
            text.contains("ingest_rate_limit_readings_per_sec 0\n"),
            "{text}"
        );
        assert!(
            text.contains("ingest_hello_refusals_total{reason=\"wrong_token\"} 1\n"),
            "{text}"
        );
        assert!(
            text.contains("ingest_hello_refusals_total{reason=\"unknown_gateway\"} 0\n"),
            "{text}"
        );
        assert!(
            text.contains("ingest_connections_rejected_total{reason=\"address\"} 1\n"),
            "{text}"
        );
        assert!(text.contains("ingest_acks_total 1\n"), "{text}");
        assert!(text.contains("ingest_proxy_headers_total 1\n"), "{text}");
        assert!(
            text.contains("ingest_proxy_refused_total{reason=\"untrusted\"} 2\n"),
            "{text}"
        );
        assert!(
            text.contains("ingest_proxy_refused_total{reason=\"missing\"} 0\n"),
            "{text}"
        );
        assert!(
            text.contains("ingest_write_duration_seconds_bucket{le=\"0.0005\"} 1\n"),
            "{text}"
        );
        assert!(
            text.contains("ingest_write_duration_seconds_bucket{le=\"0.005\"} 2\n"),
            "{text}"
        );
        assert!(
            text.contains("ingest_write_duration_seconds_bucket{le=\"10\"} 2\n"),
            "{text}"
        );
        assert!(
            text.contains("ingest_write_duration_seconds_bucket{le=\"+Inf\"} 3\n"),
            "{text}"
        );
        assert!(
            text.contains("ingest_write_duration_seconds_count 3\n"),
            "{text}"
        );
    }
}
