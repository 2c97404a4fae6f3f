//! The rate limit on failed logins, kept in memory.
//!
//! Failures are counted per username and per client address in a fixed
//! window. Once either count reaches its limit, every login for that
//! username or from that address is refused (even with the right password,
//! otherwise guessing could go on) until the window that started with the
//! first failure ends. A successful login clears the username's count.
//!
//! The state is per process: a restart forgets it, which is acceptable for
//! one panel per tenant (an attacker gains a few guesses per restart).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How many failures are allowed in how long.
#[derive(Debug, Clone, Copy)]
pub struct LoginLimits {
    pub per_username: u32,
    pub per_address: u32,
    pub window: Duration,
}

impl Default for LoginLimits {
    fn default() -> Self {
        LoginLimits {
            per_username: 5,
            per_address: 20,
            window: Duration::from_secs(15 * 60),
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Window {
    failures: u32,
    started: Instant,
}

/// Entries beyond this make every check prune the expired ones first.
const PRUNE_ABOVE: usize = 10_000;

#[derive(Debug, Default)]
pub struct LoginLimiter {
    limits: LoginLimits,
    windows: Mutex<HashMap<String, Window>>,
}

impl LoginLimiter {
    pub fn new(limits: LoginLimits) -> Self {
        LoginLimiter {
            limits,
            windows: Mutex::new(HashMap::new()),
        }
    }

    fn keys(username: &str, address: Option<&str>) -> [(String, bool); 2] {
        [
            (format!("u:{}", username.to_lowercase()), true),
            (format!("a:{}", address.unwrap_or("")), address.is_some()),
        ]
    }

    fn limit_for(&self, key: &str) -> u32 {
        if key.starts_with("u:") {
            self.limits.per_username
        } else {
            self.limits.per_address
        }
    }

    /// `Err(retry_after)` while `username` or `address` is locked out.
    pub fn check(
        &self,
        username: &str,
        address: Option<&str>,
        now: Instant,
    ) -> Result<(), Duration> {
        let windows = self.windows.lock().expect("limiter lock");
        let mut wait = Duration::ZERO;
        for (key, used) in Self::keys(username, address) {
            if !used {
                continue;
            }
            if let Some(w) = windows.get(&key) {
                let elapsed = now.saturating_duration_since(w.started);
                if elapsed < self.limits.window && w.failures >= self.limit_for(&key) {
                    wait = wait.max(self.limits.window - elapsed);
                }
            }
        }
        if wait.is_zero() {
            Ok(())
        } else {
            Err(wait)
        }
    }

    pub fn record_failure(&self, username: &str, address: Option<&str>, now: Instant) {
        let mut windows = self.windows.lock().expect("limiter lock");
        if windows.len() > PRUNE_ABOVE {
            let window = self.limits.window;
            windows.retain(|_, w| now.saturating_duration_since(w.started) < window);
        }
        for (key, used) in Self::keys(username, address) {
            if !used {
                continue;
            }
            let w = windows.entry(key).or_insert(Window {
                failures: 0,
                started: now,
            });
            if now.saturating_duration_since(w.started) >= self.limits.window {
                *w = Window {
                    failures: 0,
                    started: now,
                };
            }
            w.failures += 1;
        }
    }

    pub fn record_success(&self, username: &str) {
        let mut windows = self.windows.lock().expect("limiter lock");
        windows.remove(&format!("u:{}", username.to_lowercase()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limiter() -> LoginLimiter {
        LoginLimiter::new(LoginLimits {
            per_username: 3,
            per_address: 5,
            window: Duration::from_secs(60),
        })
    }

    #[test]
    fn a_username_is_locked_after_its_limit_until_the_window_ends() {
        let l = limiter();
        let t0 = Instant::now();
        for _ in 0..3 {
            assert!(l.check("alice", None, t0).is_ok());
            l.record_failure("alice", None, t0);
        }
        let wait = l
            .check("ALICE", None, t0 + Duration::from_secs(10))
            .unwrap_err();
        assert_eq!(wait, Duration::from_secs(50));
        assert!(l.check("bob", None, t0).is_ok());
        assert!(l.check("alice", None, t0 + Duration::from_secs(60)).is_ok());
    }

    #[test]
    fn an_address_is_locked_across_usernames() {
        let l = limiter();
        let t0 = Instant::now();
        for i in 0..5 {
            l.record_failure(&format!("user{i}"), Some("10.0.0.1"), t0);
        }
        assert!(l.check("someone", Some("10.0.0.1"), t0).is_err());
        assert!(l.check("someone", Some("10.0.0.2"), t0).is_ok());
    }

    #[test]
    fn success_clears_the_username_count() {
        let l = limiter();
        let t0 = Instant::now();
        l.record_failure("alice", None, t0);
        l.record_failure("alice", None, t0);
        l.record_success("alice");
        l.record_failure("alice", None, t0);
        l.record_failure("alice", None, t0);
        assert!(l.check("alice", None, t0).is_ok());
    }
}
