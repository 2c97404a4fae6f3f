//! The tenants' status as `GET /v1/tenants` and `/metrics` serve it: what
//! the engine says of every container (inspect and a stats sample, about a
//! second per container) is cached. A copy under two seconds old is served
//! as it is; an older one is served while one refresh runs in the
//! background; after a change (an operation's step, a watcher event), or
//! when nothing asked for a minute, the next request waits for a fresh one.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use provisioner::ops::TenantStatus;
use provisioner::{Error, Provisioner};

/// How long a copy is served without a refresh.
const FRESH: Duration = Duration::from_secs(2);
/// How long a copy may be served while it is refreshed.
const USABLE: Duration = Duration::from_secs(60);

#[derive(Default)]
pub struct StatusCache {
    copy: Mutex<Option<(Instant, Arc<Vec<TenantStatus>>)>>,
    /// Something changed since the copy was taken.
    dirty: AtomicBool,
    /// One refresh at a time.
    refreshing: tokio::sync::Mutex<()>,
    background: AtomicBool,
}

impl StatusCache {
    /// The copy is out of date: the next request waits for a fresh one.
    pub fn invalidate(&self) {
        self.dirty.store(true, Ordering::SeqCst);
    }

    fn usable(&self, within: Duration) -> Option<Arc<Vec<TenantStatus>>> {
        if self.dirty.load(Ordering::SeqCst) {
            return None;
        }
        let copy = self.copy.lock().expect("not poisoned");
        copy.as_ref()
            .filter(|(taken, _)| taken.elapsed() < within)
            .map(|(_, statuses)| statuses.clone())
    }

    /// Every tenant's status.
    pub async fn list(self: &Arc<Self>, p: &Provisioner) -> Result<Arc<Vec<TenantStatus>>, Error> {
        if let Some(fresh) = self.usable(FRESH) {
            return Ok(fresh);
        }
        if let Some(stale) = self.usable(USABLE) {
            if !self.background.swap(true, Ordering::SeqCst) {
                let (cache, p) = (self.clone(), p.clone());
                tokio::spawn(async move {
                    if let Err(e) = cache.refresh(&p).await {
                        tracing::warn!(error = %e, "cannot refresh the tenants' status");
                    }
                    cache.background.store(false, Ordering::SeqCst);
                });
            }
            return Ok(stale);
        }
        self.refresh(&p.clone()).await
    }

    async fn refresh(&self, p: &Provisioner) -> Result<Arc<Vec<TenantStatus>>, Error> {
        let _one = self.refreshing.lock().await;
        // Another request may have refreshed it while this one waited.
        if let Some(fresh) = self.usable(FRESH) {
            return Ok(fresh);
        }
        let taken = Instant::now();
        self.dirty.store(false, Ordering::SeqCst);
        let statuses = Arc::new(p.status(None).await?);
        *self.copy.lock().expect("not poisoned") = Some((taken, statuses.clone()));
        Ok(statuses)
    }
}
