//! The notifier's clock, injected: [`SystemClock`] in the binary, a
//! [`ManualClock`] in tests, which move time by hand so that a `for 10m`
//! rule fires without waiting ten minutes.
//!
//! Only the time the notifier *decides* with (evaluation, transitions, the
//! outbox's backoff and leases, the daily report's hour) comes from the
//! clock; how long the loop sleeps between two looks is real time.

use std::sync::Mutex;

use chrono::{DateTime, Utc};

/// Where the notifier reads the time.
pub trait Clock: Send + Sync {
    fn now(&self) -> DateTime<Utc>;
}

/// The system's clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}

/// A clock that moves only when told to.
#[derive(Debug)]
pub struct ManualClock(Mutex<DateTime<Utc>>);

impl ManualClock {
    pub fn new(at: DateTime<Utc>) -> Self {
        Self(Mutex::new(at))
    }

    pub fn set(&self, at: DateTime<Utc>) {
        *self.0.lock().unwrap_or_else(|e| e.into_inner()) = at;
    }

    pub fn advance(&self, by: chrono::Duration) {
        let mut now = self.0.lock().unwrap_or_else(|e| e.into_inner());
        *now += by;
    }
}

impl Clock for ManualClock {
    fn now(&self) -> DateTime<Utc> {
        *self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_manual_clock_moves_when_told() {
        let t0: DateTime<Utc> = "2026-12-02T08:00:00Z".parse().unwrap();
        let clock = ManualClock::new(t0);
        assert_eq!(clock.now(), t0);
        clock.advance(chrono::Duration::minutes(11));
        assert_eq!(clock.now(), t0 + chrono::Duration::minutes(11));
        clock.set(t0);
        assert_eq!(clock.now(), t0);
    }
}
