//! The daemon's job queue: an accepted operation is logged as `queued` in
//! the state store (so it survives the daemon), then runs on its tenant's
//! worker, one after the other per tenant and at once across tenants
//! (a reconcile of all has a worker of its own). Waiters long-poll an
//! operation: they wake whenever any operation changes.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::future::BoxFuture;
use provisioner::ops::Answer;
use provisioner::store::operations::{OperationRecord, Request};
use provisioner::{Error, ProviderId, Provisioner};
use tokio::sync::{mpsc, watch};

use crate::metrics::Metrics;

/// The longest a long poll waits (seconds).
pub const MAX_WAIT_SECS: u64 = 300;

type Job = BoxFuture<'static, ()>;

/// Accepted operations and their workers.
pub struct Jobs {
    base: Provisioner,
    workers: Mutex<HashMap<Option<ProviderId>, mpsc::UnboundedSender<Job>>>,
    changes: Arc<watch::Sender<u64>>,
    metrics: Arc<Metrics>,
}

impl Jobs {
    /// Jobs over `base`, whose operations' changes must be reported with
    /// [`Jobs::changed`] (the daemon's `on_change` hook).
    pub fn new(base: Provisioner, changes: Arc<watch::Sender<u64>>, metrics: Arc<Metrics>) -> Jobs {
        Jobs {
            base,
            workers: Mutex::new(HashMap::new()),
            changes,
            metrics,
        }
    }

    /// Queues `work` (one library call on the handle it is given) as the
    /// operation `kind` of `tenant`, asked by `requested_by`; returns the
    /// operation's id at once.
    pub async fn submit<F, Fut, T>(
        &self,
        kind: &'static str,
        tenant: Option<&ProviderId>,
        requested_by: &str,
        work: F,
    ) -> Result<i64, Error>
    where
        F: FnOnce(Provisioner) -> Fut + Send + 'static,
        Fut: Future<Output = Result<T, Error>> + Send + 'static,
        T: Answer + Send + 'static,
    {
        let text = match tenant {
            Some(id) => format!("{kind} {id}"),
            None => kind.to_owned(),
        };
        let request = Request {
            provider: tenant.cloned(),
            action: kind,
            text,
            requested_by: requested_by.to_owned(),
        };
        let op = self.base.store.enqueue_operation(&request).await?;
        let handle = self.base.for_operation(requested_by, op);
        let metrics = self.metrics.clone();
        let job: Job = Box::pin(async move {
            let started = Instant::now();
            let outcome = work(handle.clone()).await;
            handle.settle_queued(outcome.as_ref().err()).await;
            metrics.operation_done(kind, started.elapsed());
        });
        self.worker(tenant)
            .send(job)
            .expect("a worker outlives the queue");
        self.changed();
        Ok(op)
    }

    /// The worker of `tenant`, started on first use.
    fn worker(&self, tenant: Option<&ProviderId>) -> mpsc::UnboundedSender<Job> {
        let mut workers = self.workers.lock().expect("not poisoned");
        workers
            .entry(tenant.cloned())
            .or_insert_with(|| {
                let (tx, mut rx) = mpsc::unbounded_channel::<Job>();
                tokio::spawn(async move {
                    while let Some(job) = rx.recv().await {
                        job.await;
                    }
                });
                tx
            })
            .clone()
    }

    /// Runs `work` on `tenant`'s worker, after what is queued for it, and
    /// waits for it (the watcher's repairs take their turn too).
    pub async fn in_turn<T: Send + 'static>(
        &self,
        tenant: &ProviderId,
        work: impl Future<Output = T> + Send + 'static,
    ) -> Option<T> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let job: Job = Box::pin(async move {
            let _ = tx.send(work.await);
        });
        self.worker(Some(tenant)).send(job).ok()?;
        rx.await.ok()
    }

    /// Wakes the long polls.
    pub fn changed(&self) {
        self.changes.send_modify(|n| *n = n.wrapping_add(1));
    }

    /// The operation `op`, once it is over, has more than `after_step`
    /// steps done, or `wait` has passed (whichever is first). A finished
    /// operation's answer holds what is shown once, the first time.
    pub async fn wait(
        &self,
        op: i64,
        wait: Duration,
        after_step: Option<usize>,
    ) -> Result<Option<OperationRecord>, Error> {
        let deadline = tokio::time::Instant::now() + wait.min(Duration::from_secs(MAX_WAIT_SECS));
        let mut changes = self.changes.subscribe();
        loop {
            // Subscribed before reading: no change is missed in between.
            changes.borrow_and_update();
            let Some(record) = self.base.operation_record(op).await? else {
                return Ok(None);
            };
            let progressed = after_step.is_some_and(|n| record.progress.len() > n);
            if record.state.is_final() {
                return self.base.take_operation(op).await;
            }
            if progressed {
                return Ok(Some(record));
            }
            if tokio::time::timeout_at(deadline, changes.changed())
                .await
                .is_err()
            {
                return Ok(Some(record));
            }
        }
    }
}
