//! The write queue: every connection's frames go through one queue, and a
//! dispatcher sends them to Cassandra with at most `in_flight` requests at
//! once. A request carries every small frame that is waiting when a request
//! slot frees up (up to `max_frames` and [`MAX_BATCH_BYTES`]), from any
//! connection, as one unlogged batch ([`Store::write_frames`]).
//!
//! So at a light load every frame goes alone and at once, and as the load
//! grows, requests grow instead of multiplying: Cassandra spends most of its
//! CPU per request and per partition, not per row, and on a node that
//! shares its cores a request saved is headroom for flushes, compaction and
//! GC. While other requests are in flight, the next one may also wait for
//! more frames, until `linger` has passed since its first frame arrived or
//! no other request is in flight any more: gateways that send frame by
//! frame then get several frames into one partition write instead of one
//! each. A frame that finds nothing in flight never waits.
//!
//! Each frame's writer learns the outcome of the request that carried it: a
//! frame is acked only once that request succeeded. A failed request fails
//! every frame in it (their connections close and their gateways resend;
//! writes are idempotent). Frames estimated over
//! [`crate::store::ONE_REQUEST_BYTES`] go alone, through
//! [`Store::write_frame`].
//!
//! The queue itself is unbounded, but what can wait in it is not: each
//! connection has at most `max_pipeline` frames unanswered, and connections
//! are capped.

use std::sync::Arc;
use std::time::Duration;

use tenant_schema::model::GatewayId;
use tokio::sync::mpsc::error::TryRecvError;
use tokio::sync::{mpsc, oneshot, Notify, OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

use crate::metrics::Metrics;
use crate::protocol::DataFrame;
use crate::store::{
    estimated_bytes, FrameWrite, Store, StoreError, MAX_BATCH_BYTES, ONE_REQUEST_BYTES,
};

/// How the queue groups frames into requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Grouping {
    /// Requests to Cassandra in flight at once (at least 1).
    pub in_flight: usize,
    /// Frames one request carries at most (1: every frame alone).
    pub max_frames: usize,
    /// While other requests are in flight, how long a request may wait
    /// (from its first frame's arrival) for more frames; it stops waiting
    /// as soon as no other request is in flight. Zero: never waits.
    pub linger: Duration,
}

/// Why a queued frame was not written.
#[derive(Debug, Clone, thiserror::Error)]
pub enum WriteError {
    #[error(transparent)]
    Store(Arc<StoreError>),
    #[error("the write queue stopped before the frame was written")]
    Stopped,
}

/// One frame waiting to be written, and where its outcome goes.
struct Job {
    gateway: Arc<GatewayId>,
    frame: DataFrame,
    touch: bool,
    bytes: usize,
    queued_at: Instant,
    done: oneshot::Sender<Result<(), WriteError>>,
}

/// The sending side of the queue; the dispatcher runs until every clone of
/// it is dropped and the frames already queued are sent.
#[derive(Clone)]
pub struct WriteQueue {
    jobs: mpsc::UnboundedSender<Job>,
}

impl WriteQueue {
    /// Starts the dispatcher on the current runtime.
    pub fn start(store: Arc<Store>, metrics: Arc<Metrics>, grouping: Grouping) -> Self {
        let (jobs, queued) = mpsc::unbounded_channel();
        tokio::spawn(dispatch(store, metrics, grouping, queued));
        Self { jobs }
    }

    /// Writes `frame` (and, if `touch`, the gateway's `last_seen`); Ok once
    /// the request that carried it succeeded.
    pub async fn write(
        &self,
        gateway: Arc<GatewayId>,
        frame: DataFrame,
        touch: bool,
    ) -> Result<(), WriteError> {
        let (done, outcome) = oneshot::channel();
        let job = Job {
            gateway,
            bytes: estimated_bytes(&frame),
            queued_at: Instant::now(),
            frame,
            touch,
            done,
        };
        self.jobs.send(job).map_err(|_| WriteError::Stopped)?;
        outcome.await.unwrap_or(Err(WriteError::Stopped))
    }
}

async fn dispatch(
    store: Arc<Store>,
    metrics: Arc<Metrics>,
    grouping: Grouping,
    mut queued: mpsc::UnboundedReceiver<Job>,
) {
    let grouping = Grouping {
        in_flight: grouping.in_flight.max(1),
        ..grouping
    };
    let slots = Arc::new(Semaphore::new(grouping.in_flight));
    // told each time a request ends (and gave its slot back)
    let finished = Arc::new(Notify::new());
    // a frame taken from the queue that did not fit the previous request
    let mut held: Option<Job> = None;
    loop {
        // take a slot first: while every slot is busy, frames pile up in
        // the queue, and the next request takes them all
        let slot = slots
            .clone()
            .acquire_owned()
            .await
            .expect("the slots are never closed");
        let first = match held.take() {
            Some(job) => job,
            None => match queued.recv().await {
                Some(job) => job,
                None => return,
            },
        };
        let mut group = vec![first];
        if group[0].bytes <= ONE_REQUEST_BYTES {
            let mut bytes = group[0].bytes;
            let mut take = |job: Job, group: &mut Vec<Job>| {
                if job.bytes > ONE_REQUEST_BYTES || bytes + job.bytes > MAX_BATCH_BYTES {
                    return Some(job);
                }
                bytes += job.bytes;
                group.push(job);
                None
            };
            // with other requests in flight, this one may wait a little for
            // company, until the linger is over or Cassandra has nothing
            // else to do; alone, it goes with what is already waiting
            let in_flight = |slots: &Semaphore| grouping.in_flight - 1 - slots.available_permits();
            let wait_until = (in_flight(&slots) > 0 && !grouping.linger.is_zero())
                .then(|| group[0].queued_at + grouping.linger);
            while group.len() < grouping.max_frames && held.is_none() {
                let next = match (queued.try_recv(), wait_until) {
                    (Ok(job), _) => Some(job),
                    (Err(TryRecvError::Empty), Some(deadline)) => tokio::select! {
                        job = queued.recv() => job,
                        _ = finished.notified() => {
                            if in_flight(&slots) > 0 {
                                continue;
                            }
                            None
                        }
                        _ = tokio::time::sleep_until(deadline) => None,
                    },
                    (Err(_), _) => None,
                };
                let Some(job) = next else { break };
                held = take(job, &mut group);
            }
        }
        Metrics::inc(&metrics.write_requests);
        tokio::spawn(send(store.clone(), group, slot, finished.clone()));
    }
}

/// Writes one group as one request (or a big frame alone) and tells every
/// frame's writer how it went.
async fn send(
    store: Arc<Store>,
    group: Vec<Job>,
    slot: OwnedSemaphorePermit,
    finished: Arc<Notify>,
) {
    let writes: Vec<FrameWrite<'_>> = group
        .iter()
        .map(|job| FrameWrite {
            gateway: &job.gateway,
            frame: &job.frame,
            touch: job.touch,
        })
        .collect();
    let outcome = match writes.as_slice() {
        [one] => store.write_frame(one.gateway, one.frame, one.touch).await,
        many => store.write_frames(many).await,
    }
    .map_err(|e| WriteError::Store(Arc::new(e)));
    drop(slot);
    finished.notify_one();
    drop(writes);
    for job in group {
        // a writer that went away (its connection closed) needs no answer
        let _ = job.done.send(outcome.clone());
    }
}
