//! Password verification with bounded memory: at most
//! [`PASSWORD_CHECKS`] argon2 verifications run at once, each in a
//! [`PasswordScratch`] that is allocated once and reused.
//!
//! A verification holds its hash's memory cost (7 MiB for hashes made by
//! `tenant_schema::model::hash_password`, 19 MiB for older ones, never more:
//! see `MAX_VERIFY_M_COST_KIB`). A login that finds every slot taken waits
//! up to [`PASSWORD_CHECK_WAIT`] for one, then is refused (429) instead of
//! queueing without bound. So the verifications of the panel never hold
//! more than `PASSWORD_CHECKS` scratches (14 MiB, 38 MiB with old hashes)
//! however many logins arrive, which keeps the panel inside its 128 MiB.
//!
//! Unknown usernames are verified against an unmatchable hash with the
//! parameters of new hashes, through the same bound, so they cost what a
//! wrong password costs and cannot be told apart by time.

use std::sync::Mutex;
use std::time::Duration;

use tenant_schema::model::{unmatchable_password_hash, PasswordScratch};
use tokio::sync::Semaphore;

/// How many argon2 verifications run at once.
pub const PASSWORD_CHECKS: usize = 2;

/// How long a login waits for a verification slot before it gets 429.
pub const PASSWORD_CHECK_WAIT: Duration = Duration::from_secs(3);

/// Why a password could not be checked.
#[derive(Debug, thiserror::Error)]
pub enum CheckError {
    #[error("every password check slot stayed busy")]
    Busy,
    #[error("the password check failed: {0}")]
    Failed(String),
}

/// The panel's password verifier (one per panel).
#[derive(Debug)]
pub struct PasswordChecker {
    slots: Semaphore,
    wait: Duration,
    /// Scratches not in use; at most [`PASSWORD_CHECKS`] ever exist.
    scratches: Mutex<Vec<PasswordScratch>>,
    unknown_user_hash: String,
}

impl Default for PasswordChecker {
    fn default() -> Self {
        PasswordChecker::new(PASSWORD_CHECK_WAIT)
    }
}

impl PasswordChecker {
    /// [`PASSWORD_CHECKS`] slots, waited for up to `wait`.
    pub fn new(wait: Duration) -> Self {
        PasswordChecker {
            slots: Semaphore::new(PASSWORD_CHECKS),
            wait,
            scratches: Mutex::new(Vec::new()),
            unknown_user_hash: unmatchable_password_hash(),
        }
    }

    /// Whether `password` matches `stored_hash`; `None` (an unknown user)
    /// costs the same verification and matches nothing.
    pub async fn verify(
        &self,
        password: String,
        stored_hash: Option<String>,
    ) -> Result<bool, CheckError> {
        let _slot = tokio::time::timeout(self.wait, self.slots.acquire())
            .await
            .map_err(|_| CheckError::Busy)?
            .map_err(|e| CheckError::Failed(e.to_string()))?;
        let user_exists = stored_hash.is_some();
        let hash = stored_hash.unwrap_or_else(|| self.unknown_user_hash.clone());
        // Holding a slot guarantees a scratch is free or may be made.
        let mut scratch = self
            .scratches
            .lock()
            .expect("scratch pool lock")
            .pop()
            .unwrap_or_else(PasswordScratch::for_new_hashes);
        let (scratch, matched) = tokio::task::spawn_blocking(move || {
            let matched = scratch.verify(&password, &hash);
            (scratch, matched)
        })
        .await
        .map_err(|e| CheckError::Failed(e.to_string()))?;
        self.scratches
            .lock()
            .expect("scratch pool lock")
            .push(scratch);
        Ok(matched && user_exists)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use tenant_schema::model::hash_password;

    #[tokio::test]
    async fn verifies_known_users_and_never_unknown_ones() {
        let checker = PasswordChecker::default();
        let hash = hash_password("right").unwrap();
        assert!(checker
            .verify("right".into(), Some(hash.clone()))
            .await
            .unwrap());
        assert!(!checker.verify("wrong".into(), Some(hash)).await.unwrap());
        assert!(!checker.verify("right".into(), None).await.unwrap());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn many_checks_at_once_make_no_more_scratches_than_slots() {
        let checker = Arc::new(PasswordChecker::default());
        let hash = hash_password("right").unwrap();
        let checks = (0..6).map(|_| {
            let checker = checker.clone();
            let hash = hash.clone();
            tokio::spawn(async move { checker.verify("wrong".into(), Some(hash)).await })
        });
        for check in futures::future::join_all(checks).await {
            // Each either ran (and did not match) or gave up waiting.
            assert!(matches!(check.unwrap(), Ok(false) | Err(CheckError::Busy)));
        }
        let made = checker.scratches.lock().unwrap().len();
        assert!((1..=PASSWORD_CHECKS).contains(&made), "{made} scratches");
    }

    #[tokio::test]
    async fn a_login_that_finds_every_slot_taken_is_refused_after_the_wait() {
        let wait = Duration::from_millis(200);
        let checker = PasswordChecker::new(wait);
        let _taken = checker
            .slots
            .acquire_many(PASSWORD_CHECKS as u32)
            .await
            .unwrap();
        let started = tokio::time::Instant::now();
        let outcome = checker.verify("x".into(), None).await;
        assert!(matches!(outcome, Err(CheckError::Busy)), "{outcome:?}");
        assert!(started.elapsed() >= wait);
    }
}
