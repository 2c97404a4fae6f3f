//! The rate limit on failed logins, kept in the tenant keyspace (table
//! `auth_records`) so that a restart of the panel does not erase it.
//!
//! Every login attempt that gets as far as the password check is recorded,
//! per username (lowercased) and per client address, as a row that expires
//! after the window ([`LoginLimits::window`]). A failed attempt's rows stay
//! and count as failures; a successful login deletes the username's rows
//! and its own address row; an attempt that is refused before its password
//! is checked deletes its rows.
//!
//! An attempt is refused (429, even with the right password, otherwise
//! guessing could go on) when the username or the address already has its
//! limit of rows in the window; it is then not recorded, so hammering a
//! locked account writes nothing. Recording the attempt *before* its
//! password is checked, and counting again after, means that concurrent
//! guesses cannot all slip through between a check and their failures: of
//! any number of attempts at once, at most the limit reach the password
//! check. The lock lifts once enough rows have left the window (a sliding
//! window).

use std::time::Duration;

use chrono::{DateTime, Utc};
use rand::Rng;

use crate::session::MAX_USERNAME;
use crate::store::{AttemptKey, Store, StoreError};

/// How many failures are allowed in how long.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
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

/// Why a login may not go on.
#[derive(Debug, thiserror::Error)]
pub enum LimitError {
    #[error("too many failed logins")]
    Locked { retry_after: Duration },
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A login attempt that passed the limiter: its records in the store,
/// counted as failures unless [`LoginLimiter::succeeded`] or
/// [`LoginLimiter::withdraw`] removes them.
#[derive(Debug)]
#[must_use = "an attempt ends in succeeded, withdraw, or stays a failure"]
pub struct Attempt {
    user: AttemptKey,
    address: Option<AttemptKey>,
}

/// The limiter of one panel (its state lives in the store).
#[derive(Debug, Default)]
pub struct LoginLimiter {
    limits: LoginLimits,
}

impl LoginLimiter {
    pub fn new(limits: LoginLimits) -> Self {
        LoginLimiter { limits }
    }

    /// The subjects an attempt is counted under, with their limits.
    fn subjects(&self, username: &str, address: Option<&str>) -> Vec<(String, u32)> {
        let user: String = username.to_lowercase().chars().take(MAX_USERNAME).collect();
        let mut subjects = vec![(format!("user:{user}"), self.limits.per_username)];
        if let Some(address) = address {
            subjects.push((format!("address:{address}"), self.limits.per_address));
        }
        subjects
    }

    /// How long `subject` stays locked when at most `allowed` attempts may
    /// be in its window; `None` if it is not.
    async fn locked_for(
        &self,
        store: &Store,
        subject: &str,
        allowed: u32,
        now: DateTime<Utc>,
    ) -> Result<Option<Duration>, StoreError> {
        let since = now - chrono::Duration::from_std(self.limits.window).unwrap_or_default();
        let recent = store.login_attempts(subject, since, allowed).await?;
        Ok(lockout(&recent, allowed, self.limits.window, now))
    }

    /// The longest lock of any subject (all read at once).
    async fn lock(
        &self,
        store: &Store,
        subjects: &[(String, u32)],
        extra: u32,
        now: DateTime<Utc>,
    ) -> Result<Option<Duration>, StoreError> {
        let checks = subjects
            .iter()
            .map(|(subject, limit)| self.locked_for(store, subject, limit + extra, now));
        let mut longest = None;
        for lock in futures::future::try_join_all(checks).await? {
            longest = longest.max(lock);
        }
        Ok(longest)
    }

    /// Lets a login attempt go on to its password check, recording it, or
    /// refuses it while its username or address is locked.
    pub async fn begin(
        &self,
        store: &Store,
        username: &str,
        address: Option<&str>,
    ) -> Result<Attempt, LimitError> {
        let now = truncate_to_millis(Utc::now());
        let subjects = self.subjects(username, address);
        if let Some(retry_after) = self.lock(store, &subjects, 0, now).await? {
            return Err(LimitError::Locked { retry_after });
        }
        let id: i64 = rand::thread_rng().gen();
        let mut keys = subjects.iter().map(|(subject, _)| AttemptKey {
            subject: subject.clone(),
            at: now,
            id,
        });
        let attempt = Attempt {
            user: keys.next().expect("the username is always a subject"),
            address: keys.next(),
        };
        let records = attempt
            .keys()
            .map(|key| store.record_login_attempt(key, self.limits.window));
        futures::future::try_join_all(records).await?;
        // Count again, this attempt included: attempts that raced past the
        // first check together cannot all go on.
        match self.lock(store, &subjects, 1, now).await {
            Ok(None) => Ok(attempt),
            Ok(Some(retry_after)) => {
                self.withdraw(store, attempt).await?;
                Err(LimitError::Locked { retry_after })
            }
            Err(e) => {
                self.withdraw(store, attempt).await?;
                Err(e.into())
            }
        }
    }

    /// The attempt's password was right: the username's failures are
    /// forgotten, and the attempt does not count against its address.
    pub async fn succeeded(&self, store: &Store, attempt: Attempt) -> Result<(), StoreError> {
        store.clear_login_attempts(&attempt.user.subject).await?;
        if let Some(address) = &attempt.address {
            store.delete_login_attempt(address).await?;
        }
        Ok(())
    }

    /// The attempt did not get a password check (the panel was busy or
    /// the store failed): it does not count.
    pub async fn withdraw(&self, store: &Store, attempt: Attempt) -> Result<(), StoreError> {
        let deletes = attempt.keys().map(|key| store.delete_login_attempt(key));
        futures::future::try_join_all(deletes).await.map(|_| ())
    }

    /// The attempt's password was wrong: its records stay, as failures,
    /// until they leave the window.
    pub fn failed(&self, _attempt: Attempt) {}
}

impl Attempt {
    fn keys(&self) -> impl Iterator<Item = &AttemptKey> {
        std::iter::once(&self.user).chain(self.address.as_ref())
    }
}

/// Cassandra keeps timestamps in milliseconds; an attempt's key must be
/// the time as stored, so that deleting it finds its row.
fn truncate_to_millis(t: DateTime<Utc>) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(t.timestamp_millis()).unwrap_or(t)
}

/// How long a subject whose attempts in the window are `recent` (newest
/// first) stays locked when at most `allowed` may be there: until the
/// `allowed`-th newest leaves the window. `None` while fewer are there.
fn lockout(
    recent: &[DateTime<Utc>],
    allowed: u32,
    window: Duration,
    now: DateTime<Utc>,
) -> Option<Duration> {
    let oldest_counted = recent.get(usize::try_from(allowed).ok()?.checked_sub(1)?)?;
    let leaves = *oldest_counted + chrono::Duration::from_std(window).ok()?;
    Some(
        (leaves - now)
            .to_std()
            .unwrap_or_default()
            .max(Duration::from_secs(1)),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_subject_is_locked_once_it_has_its_limit_until_the_oldest_counted_leaves_the_window() {
        let now = Utc::now();
        let window = Duration::from_secs(60);
        let ago = |s: i64| now - chrono::Duration::seconds(s);
        let recent = [ago(1), ago(5), ago(10)];
        assert_eq!(lockout(&recent[..2], 3, window, now), None);
        assert_eq!(
            lockout(&recent, 3, window, now),
            Some(Duration::from_secs(50))
        );
        // With a lower limit, the lock ends when the 2nd newest leaves.
        assert_eq!(
            lockout(&recent, 2, window, now),
            Some(Duration::from_secs(55))
        );
        assert_eq!(lockout(&recent, 0, window, now), None);
    }

    #[test]
    fn a_lock_about_to_end_still_asks_for_a_second() {
        let now = Utc::now();
        let window = Duration::from_secs(60);
        let recent = [now - chrono::Duration::seconds(60)];
        assert_eq!(
            lockout(&recent, 1, window, now),
            Some(Duration::from_secs(1))
        );
    }

    #[test]
    fn usernames_count_case_insensitively_and_addresses_only_when_known() {
        let limiter = LoginLimiter::default();
        assert_eq!(
            limiter.subjects("Alice", Some("10.0.0.1")),
            vec![
                ("user:alice".to_owned(), 5),
                ("address:10.0.0.1".to_owned(), 20)
            ]
        );
        assert_eq!(limiter.subjects("ALICE", None).len(), 1);
        let long = "x".repeat(10 * MAX_USERNAME);
        assert_eq!(
            limiter.subjects(&long, None)[0].0.len(),
            "user:".len() + MAX_USERNAME
        );
    }
}
