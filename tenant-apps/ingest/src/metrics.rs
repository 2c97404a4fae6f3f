//! What ingest counts, and its rendering as Prometheus text (version 0.0.4).
//! Plain atomics: cheap enough to bump on every frame.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

/// Upper bounds of the write latency histogram, in seconds.
const LATENCY_BUCKETS: [f64; 14] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// The counters of one ingest process.
#[derive(Debug, Default)]
pub struct Metrics {
    pub connections_open: AtomicU64,
    pub connections_total: AtomicU64,
    pub connections_rejected: AtomicU64,
    pub auth_failures: AtomicU64,
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
            "ingest_connections_total",
            "counter",
            "Gateway connections accepted.",
            get(&self.connections_total),
        );
        one(
            "ingest_connections_rejected_total",
            "counter",
            "Connections refused because the cap was reached.",
            get(&self.connections_rejected),
        );
        one(
            "ingest_auth_failures_total",
            "counter",
            "Hellos refused (unknown gateway, wrong or revoked token).",
            get(&self.auth_failures),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_histogram_is_cumulative_and_counts_everything() {
        let m = Metrics::default();
        m.observe_write(Duration::from_micros(300));
        m.observe_write(Duration::from_millis(3));
        m.observe_write(Duration::from_secs(60));
        Metrics::inc(&m.acks);
        let text = m.render();
        assert!(text.contains("ingest_acks_total 1\n"), "{text}");
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
