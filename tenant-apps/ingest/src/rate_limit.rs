//! The tenant's ingest rate limit (`INGEST_MAX_READINGS_PER_SEC`): one
//! limiter per ingest process, so per tenant, shared by all its
//! connections, counting readings (a `<batch>` counts each of its
//! readings).
//!
//! It is enforced by backpressure, never by refusing: a connection takes a
//! decoded frame into its pipeline, charges the frame's readings here, and
//! if the tenant is over its rate it stops decoding and reading for the
//! time [`RateLimiter::take`] answers (TCP flow control then holds the
//! gateway back). Answers of frames already in flight keep flowing
//! meanwhile.
//!
//! The arithmetic is the generic cell rate algorithm: a theoretical arrival
//! time (`tat`) moves on by `1 / rate` per reading; a caller that finds it
//! more than the burst ahead of now waits until it is within the burst
//! again. Over any stretch of time T the readings admitted stay under
//! `rate × T` plus the burst plus the frames that were admitted at the
//! same moment (one per connection), so a sustained flood is held to the
//! rate. Idle time earns no more than the burst.

use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

/// The burst a limiter allows: this long at its rate.
pub const BURST: Duration = Duration::from_millis(100);

/// A shared readings-per-second limit, or none.
#[derive(Debug)]
pub struct RateLimiter {
    limit: Option<Limit>,
}

#[derive(Debug)]
struct Limit {
    per_sec: u32,
    /// Time one reading takes at the limit.
    per_reading: Duration,
    /// The theoretical arrival time; `None` until the first take.
    tat: Mutex<Option<Instant>>,
}

impl RateLimiter {
    /// `per_sec` readings per second at most; 0 means unlimited.
    pub fn new(per_sec: u32) -> Self {
        Self {
            limit: (per_sec > 0).then(|| Limit {
                per_sec,
                per_reading: Duration::from_secs(1) / per_sec,
                tat: Mutex::new(None),
            }),
        }
    }

    pub fn unlimited() -> Self {
        Self::new(0)
    }

    /// The limit, `None` when unlimited.
    pub fn per_sec(&self) -> Option<u32> {
        self.limit.as_ref().map(|l| l.per_sec)
    }

    /// Charges `readings` at `now`, and answers how long the caller must
    /// wait before it takes more (zero while the tenant is within its
    /// rate and burst; always zero when unlimited).
    pub fn take(&self, readings: u64, now: Instant) -> Duration {
        let Some(limit) = &self.limit else {
            return Duration::ZERO;
        };
        let cost = limit
            .per_reading
            .saturating_mul(u32::try_from(readings).unwrap_or(u32::MAX));
        let mut tat = limit.tat.lock().expect("not poisoned");
        let from = tat.map_or(now, |t| t.max(now));
        let next = from + cost;
        *tat = Some(next);
        next.saturating_duration_since(now + BURST)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Gateways that each send frames of `readings` as fast as the limiter
    /// lets them, for `run` of simulated time (each takes its next frame
    /// when its wait is over; the earliest goes first); returns the
    /// readings admitted.
    fn flood(limiter: &RateLimiter, gateways: usize, readings: u64, run: Duration) -> u64 {
        let start = Instant::now();
        let end = start + run;
        let mut next = vec![start; gateways];
        let mut admitted = 0;
        loop {
            let (i, now) = next
                .iter()
                .copied()
                .enumerate()
                .min_by_key(|(_, t)| *t)
                .expect("a gateway");
            if now >= end {
                return admitted;
            }
            admitted += readings;
            next[i] = now + limiter.take(readings, now);
        }
    }

    #[test]
    fn unlimited_never_waits() {
        let limiter = RateLimiter::unlimited();
        assert_eq!(limiter.per_sec(), None);
        let now = Instant::now();
        for _ in 0..10_000 {
            assert_eq!(limiter.take(1000, now), Duration::ZERO);
        }
    }

    #[test]
    fn a_flood_is_held_to_the_limit_plus_the_burst() {
        let limiter = RateLimiter::new(500);
        assert_eq!(limiter.per_sec(), Some(500));
        let admitted = flood(&limiter, 1, 1, Duration::from_secs(10));
        // 10 s at 500/s, plus 100 ms worth of burst (50), plus one frame
        assert!((5000..=5051).contains(&admitted), "{admitted}");
    }

    #[test]
    fn a_batch_counts_its_readings() {
        let limiter = RateLimiter::new(1000);
        // 100 ms of burst: the first frame of 100 readings passes freely,
        let now = Instant::now();
        assert_eq!(limiter.take(100, now), Duration::ZERO);
        // the next 100 readings are 100 ms over it
        assert_eq!(limiter.take(100, now), Duration::from_millis(100));
        let limiter = RateLimiter::new(1000);
        let admitted = flood(&limiter, 1, 50, Duration::from_secs(10));
        assert!((10_000..=10_150).contains(&admitted), "{admitted}");
    }

    #[test]
    fn connections_share_one_limit() {
        let limiter = RateLimiter::new(300);
        let admitted = flood(&limiter, 5, 2, Duration::from_secs(10));
        // 3000 in 10 s, + 30 of burst, + one frame per connection
        assert!((3000..=3050).contains(&admitted), "{admitted}");
    }

    #[test]
    fn idle_time_earns_no_more_than_the_burst() {
        let limiter = RateLimiter::new(100);
        let start = Instant::now();
        assert_eq!(limiter.take(1, start), Duration::ZERO);
        let now = start + Duration::from_secs(60);
        // 100 ms at 100/s: 10 readings pass at once, the 11th waits 10 ms
        assert_eq!(limiter.take(10, now), Duration::ZERO);
        assert_eq!(limiter.take(1, now), Duration::from_millis(10));
    }
}
