//! The watcher: keeps every tenant at its desired state, level-triggered
//! like a Kubernetes controller. It follows the engine's events about our
//! containers (a container that dies or is removed brings a reconcile of
//! its tenant) and compares everything every `resync_secs` anyway; an
//! engine that goes away and comes back (a dockerd restart) brings a full
//! pass. Repairs are the library's reconcile of one tenant, in the
//! tenant's turn with the API's operations. A tenant that needs repair
//! again soon after a repair, or whose repair fails, waits before the
//! next one: 1 s, doubling up to `max_backoff_secs`; its status says so.
//! A tenant stopped through provision is stopped by its desired state:
//! its reconcile plans nothing.
//!
//! The watcher also keeps the daemon's [`EndpointBook`]: a look after
//! every pass, and, after a Swarm node event, a look every second while
//! the Swarm moves the lost node's tasks (their endpoints move with them).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt;
use provisioner::ops::report::{Backoff, TenantResult};
use provisioner::{ErrorKind, ProviderId, Provisioner};
use tokio::sync::mpsc;

use crate::cache::StatusCache;
use crate::endpoints::{EndpointBook, FOLLOW, FOLLOW_POLL};
use crate::jobs::Jobs;
use crate::metrics::Metrics;

/// A repair that held this long resets the tenant's backoff.
const LASTED: Duration = Duration::from_secs(60);
/// How often the watcher asks whether a lost engine is back.
const ENGINE_POLL: Duration = Duration::from_secs(1);

/// Why the watcher looks at tenants.
#[derive(Debug, Clone)]
enum Trigger {
    /// Every tenant: the resync, the daemon's start, an engine back.
    All(&'static str),
    /// One tenant, after an event about one of its containers.
    Tenant(ProviderId, String),
}

/// How long the `n`-th repair in a row that did not last waits: the first
/// none, then 1 s, doubling up to `max`.
fn backoff(n: u32, max: Duration) -> Duration {
    match n {
        0 | 1 => Duration::ZERO,
        n => Duration::from_secs(1u64 << (n - 2).min(20)).min(max),
    }
}

/// When a tenant's repair may run.
enum Turn {
    Now,
    /// A retry is scheduled already.
    Folded,
    After(Duration),
}

/// One tenant's repairs that did not last.
#[derive(Debug, Clone)]
struct Repairs {
    count: u32,
    last: Instant,
    retry_at: Instant,
    retry_at_wall: chrono::DateTime<chrono::Utc>,
    reason: String,
    /// A retry is scheduled already.
    scheduled: bool,
}

pub struct Watcher {
    provisioner: Provisioner,
    jobs: Arc<Jobs>,
    cache: Arc<StatusCache>,
    metrics: Arc<Metrics>,
    endpoints: Arc<EndpointBook>,
    resync: Duration,
    max_backoff: Duration,
    repairs: Mutex<HashMap<ProviderId, Repairs>>,
    /// While the endpoints are followed after a node event: until when.
    follow_until: Mutex<Option<Instant>>,
}

impl Watcher {
    pub fn new(
        provisioner: Provisioner,
        jobs: Arc<Jobs>,
        cache: Arc<StatusCache>,
        metrics: Arc<Metrics>,
        endpoints: Arc<EndpointBook>,
    ) -> Watcher {
        let daemon = &provisioner.config.daemon;
        Watcher {
            resync: Duration::from_secs(daemon.resync_secs.max(1)),
            max_backoff: Duration::from_secs(daemon.max_backoff_secs.max(1)),
            provisioner,
            jobs,
            cache,
            metrics,
            endpoints,
            repairs: Mutex::new(HashMap::new()),
            follow_until: Mutex::new(None),
        }
    }

    /// What the watcher is doing about `id`, while it backs off.
    pub fn backoff(&self, id: &ProviderId) -> Option<Backoff> {
        let repairs = self.repairs.lock().expect("not poisoned");
        repairs
            .get(id)
            .filter(|r| r.retry_at > Instant::now())
            .map(|r| Backoff {
                repairs: r.count,
                retry_at: r
                    .retry_at_wall
                    .to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                reason: r.reason.clone(),
            })
    }

    /// How many tenants wait for their next repair.
    pub fn backoffs(&self) -> usize {
        let now = Instant::now();
        let repairs = self.repairs.lock().expect("not poisoned");
        repairs.values().filter(|r| r.retry_at > now).count()
    }

    /// Runs until the daemon ends.
    pub async fn run(self: Arc<Self>) {
        let (tx, mut rx) = mpsc::unbounded_channel();
        let _ = tx.send(Trigger::All("start"));
        tokio::spawn(self.clone().follow_events(tx.clone()));
        let resync_tx = tx.clone();
        let resync = self.resync;
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(resync);
            tick.tick().await;
            loop {
                tick.tick().await;
                if resync_tx.send(Trigger::All("resync")).is_err() {
                    return;
                }
            }
        });
        while let Some(trigger) = rx.recv().await {
            match trigger {
                Trigger::All(why) => {
                    let watcher = self.clone();
                    let tx = tx.clone();
                    tokio::spawn(async move { watcher.pass(why, &tx).await });
                }
                Trigger::Tenant(id, why) => {
                    let watcher = self.clone();
                    let tx = tx.clone();
                    tokio::spawn(async move { watcher.repair(id, why, None, &tx).await });
                }
            }
        }
    }

    /// Follows the engine's events; when the stream ends (the engine went
    /// away), asks again every [`ENGINE_POLL`] and, once it answers, has
    /// every tenant looked at.
    async fn follow_events(self: Arc<Self>, tx: mpsc::UnboundedSender<Trigger>) {
        let backend = self.provisioner.backend().clone();
        let mut lost = false;
        loop {
            let mut events = match backend.events().await {
                Ok(events) => events,
                Err(e) => {
                    if !lost {
                        tracing::warn!(error = %e, "the engine's events are not reachable");
                    }
                    lost = true;
                    tokio::time::sleep(ENGINE_POLL).await;
                    continue;
                }
            };
            if lost {
                // A stream is made without asking the engine: it is back
                // once it answers a call.
                if backend.observe_containers(None).await.is_err() {
                    tokio::time::sleep(ENGINE_POLL).await;
                    continue;
                }
                tracing::info!("the engine answers again");
                self.metrics.engine_reconnected();
                let _ = tx.send(Trigger::All("engine back"));
            }
            while let Some(event) = events.next().await {
                let event = match event {
                    Ok(event) => event,
                    Err(e) => {
                        tracing::warn!(error = %e, "the engine's event stream broke");
                        break;
                    }
                };
                self.metrics.watcher_event(&event.action);
                let relevant = matches!(event.action.as_str(), "die" | "destroy" | "oom");
                if event.action.starts_with("node ") {
                    // Swarm: a node went down or came back; the Swarm moves
                    // the tasks, every tenant's endpoints may have moved.
                    tracing::info!(node = %event.container, action = %event.action, "swarm node event");
                    self.cache.invalidate();
                    self.follow_endpoints();
                    let _ = tx.send(Trigger::All("swarm node event"));
                } else if relevant {
                    self.cache.invalidate();
                    if let Some(id) = event.tenant {
                        let why = format!("container {} {}", event.container, event.action);
                        let _ = tx.send(Trigger::Tenant(id, why));
                    } else {
                        let _ = tx.send(Trigger::All("managed Cassandra event"));
                    }
                }
            }
            // The stream ended: the engine is going away, or restarting.
            lost = true;
            tokio::time::sleep(ENGINE_POLL).await;
        }
    }

    /// Every known tenant, at once.
    async fn pass(self: Arc<Self>, why: &'static str, tx: &mpsc::UnboundedSender<Trigger>) {
        let started = Instant::now();
        let tenants = match self.provisioner.store.tenants().await {
            Ok(tenants) => tenants,
            Err(e) => {
                tracing::warn!(error = %e, "watcher: cannot read the tenants");
                return;
            }
        };
        // Asked once for the pass: a CQL login attempt per tenant would
        // cost the node for nothing.
        let default_login = match self.provisioner.default_superuser_logs_in().await {
            Ok(login) => login,
            Err(e) => {
                tracing::warn!(error = %e, "watcher: cannot observe the infrastructure");
                return;
            }
        };
        let repairs = tenants.into_iter().map(|t| {
            self.clone()
                .repair(t.id, why.to_owned(), Some(default_login), tx)
        });
        futures::future::join_all(repairs).await;
        self.metrics.reconcile_pass(started.elapsed());
        self.look_at_endpoints().await;
    }

    /// Looks at the endpoints every [`FOLLOW_POLL`] until [`FOLLOW`] has
    /// passed since the last call (one follower at a time).
    fn follow_endpoints(self: &Arc<Self>) {
        let mut until = self.follow_until.lock().expect("not poisoned");
        let following = until.is_some();
        *until = Some(Instant::now() + FOLLOW);
        if following {
            return;
        }
        drop(until);
        let watcher = self.clone();
        tokio::spawn(async move {
            loop {
                watcher.look_at_endpoints().await;
                tokio::time::sleep(FOLLOW_POLL).await;
                let mut until = watcher.follow_until.lock().expect("not poisoned");
                if until.is_none_or(|u| Instant::now() >= u) {
                    *until = None;
                    return;
                }
            }
        });
    }

    /// One look at the endpoints; a change makes the status list stale.
    async fn look_at_endpoints(&self) {
        match self.endpoints.refresh(&self.provisioner).await {
            Ok(changes) if !changes.is_empty() => self.cache.invalidate(),
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "watcher: cannot read the endpoints"),
        }
    }

    /// One tenant to its desired state, unless it backs off.
    async fn repair(
        self: Arc<Self>,
        id: ProviderId,
        why: String,
        default_login: Option<bool>,
        tx: &mpsc::UnboundedSender<Trigger>,
    ) {
        match self.turn(&id) {
            Turn::Now => {}
            Turn::Folded => return,
            Turn::After(wait) => {
                let tx = tx.clone();
                tokio::spawn(async move {
                    tokio::time::sleep(wait).await;
                    let _ = tx.send(Trigger::Tenant(id, format!("retry after {why}")));
                });
                return;
            }
        }
        let p = self.provisioner.clone().requested_by("watcher");
        let tenant = id.clone();
        let outcome = self
            .jobs
            .in_turn(&id, async move {
                let default_login = match default_login {
                    Some(login) => login,
                    None => p.default_superuser_logs_in().await?,
                };
                Ok::<_, provisioner::Error>(p.reconcile_tenant(&tenant, default_login).await)
            })
            .await;
        let failure = match outcome {
            None => return,
            Some(Err(e)) => Some(e.full_message()),
            Some(Ok(t)) => match (t.result, t.error) {
                (TenantResult::Unchanged | TenantResult::Planned, _) => {
                    self.held(&id);
                    return;
                }
                (TenantResult::Ok, _) => None,
                (TenantResult::Failed, Some(e)) if e.kind == ErrorKind::UnknownProvider => {
                    // Destroyed and purged meanwhile.
                    self.forget(&id);
                    return;
                }
                (TenantResult::Failed, e) => Some(
                    e.map(|e| e.message)
                        .unwrap_or_else(|| "the repair failed".into()),
                ),
            },
        };
        self.cache.invalidate();
        self.jobs.changed();
        match &failure {
            None => tracing::info!(tenant = %id, why, "watcher repaired the tenant"),
            Some(e) => tracing::warn!(tenant = %id, why, error = %e, "watcher: repair failed"),
        }
        self.repaired(&id, failure.unwrap_or(why));
    }

    /// Whether `id` may be repaired now, or after how long (one retry is
    /// scheduled; later triggers fold into it).
    fn turn(&self, id: &ProviderId) -> Turn {
        let mut repairs = self.repairs.lock().expect("not poisoned");
        let Some(entry) = repairs.get_mut(id) else {
            return Turn::Now;
        };
        let Some(wait) = entry.retry_at.checked_duration_since(Instant::now()) else {
            return Turn::Now;
        };
        if entry.scheduled {
            return Turn::Folded;
        }
        entry.scheduled = true;
        Turn::After(wait)
    }

    /// A repair was needed: the next one, if needed soon, waits.
    fn repaired(&self, id: &ProviderId, reason: String) {
        let mut repairs = self.repairs.lock().expect("not poisoned");
        let now = Instant::now();
        let entry = repairs.entry(id.clone()).or_insert(Repairs {
            count: 0,
            last: now,
            retry_at: now,
            retry_at_wall: chrono::Utc::now(),
            reason: String::new(),
            scheduled: false,
        });
        if now.duration_since(entry.last) > LASTED {
            entry.count = 0;
        }
        entry.count += 1;
        entry.last = now;
        // The first repair is immediate; each one after it that did not
        // last waits twice as long as the one before.
        let wait = backoff(entry.count, self.max_backoff);
        entry.retry_at = now + wait;
        entry.retry_at_wall =
            chrono::Utc::now() + chrono::Duration::from_std(wait).unwrap_or_default();
        entry.reason = reason;
        entry.scheduled = false;
    }

    /// The tenant is at its desired state: a repair that lasted forgets
    /// its backoff.
    fn held(&self, id: &ProviderId) {
        let mut repairs = self.repairs.lock().expect("not poisoned");
        if repairs
            .get(id)
            .is_some_and(|r| r.last.elapsed() > LASTED && r.retry_at <= Instant::now())
        {
            repairs.remove(id);
        }
    }

    fn forget(&self, id: &ProviderId) {
        self.repairs.lock().expect("not poisoned").remove(id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repairs_that_do_not_last_wait_twice_as_long_each_time_up_to_the_maximum() {
        let max = Duration::from_secs(300);
        let waits: Vec<u64> = (1..=12).map(|n| backoff(n, max).as_secs()).collect();
        assert_eq!(waits, [0, 1, 2, 4, 8, 16, 32, 64, 128, 256, 300, 300]);
        assert_eq!(backoff(1000, max), max);
    }
}
