//! Log sampling: under a flood (thousands of refused hellos a second) one
//! line per event would cost more than the events. A [`LogSampler`] lets
//! through at most a few lines per second per key (e.g. a refusal reason)
//! and tells the next line that gets through how many were left out.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The window the per-key budget applies to.
const WINDOW: Duration = Duration::from_secs(1);

/// Lets at most `per_second` lines per key through each second.
#[derive(Debug)]
pub struct LogSampler {
    per_second: u32,
    keys: Mutex<HashMap<&'static str, Budget>>,
}

#[derive(Debug)]
struct Budget {
    window_start: Instant,
    logged: u32,
    /// Lines left out since the last one logged.
    suppressed: u64,
}

impl LogSampler {
    pub fn new(per_second: u32) -> Self {
        Self {
            per_second,
            keys: Mutex::new(HashMap::new()),
        }
    }

    /// `Some(lines left out since the last logged one)` if a line for `key`
    /// may be logged now; `None` if it is to be left out (and counted).
    pub fn admit(&self, key: &'static str, now: Instant) -> Option<u64> {
        let mut keys = self.keys.lock().unwrap_or_else(|e| e.into_inner());
        let budget = keys.entry(key).or_insert(Budget {
            window_start: now,
            logged: 0,
            suppressed: 0,
        });
        if now.duration_since(budget.window_start) >= WINDOW {
            budget.window_start = now;
            budget.logged = 0;
        }
        if budget.logged < self.per_second {
            budget.logged += 1;
            Some(std::mem::take(&mut budget.suppressed))
        } else {
            budget.suppressed += 1;
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn at_most_the_budget_per_second_per_key_and_the_rest_is_counted() {
        let sampler = LogSampler::new(1);
        let t0 = Instant::now();
        assert_eq!(sampler.admit("wrong_token", t0), Some(0));
        for _ in 0..99 {
            assert_eq!(sampler.admit("wrong_token", t0), None);
        }
        // another key has its own budget
        assert_eq!(sampler.admit("unknown_gateway", t0), Some(0));
        assert_eq!(
            sampler.admit("wrong_token", t0 + Duration::from_millis(999)),
            None
        );
        // the next window's first line reports what was left out
        assert_eq!(
            sampler.admit("wrong_token", t0 + Duration::from_secs(1)),
            Some(100)
        );
        assert_eq!(
            sampler.admit("wrong_token", t0 + Duration::from_secs(5)),
            Some(0)
        );
    }
}
