//! The daemon's book of where each tenant app answers (`GET
//! /v1/endpoints`). The watcher keeps it: it takes a fresh copy on every
//! pass, and after a Swarm node event it looks again every second for
//! [`FOLLOW`], so a task the Swarm moved to another node shows its new
//! endpoint about a second after it runs there. Each entry keeps the time
//! its endpoint last changed; every change is logged and counted
//! (`provisiond_endpoint_changes_total`).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use provisioner::backend::AppEndpoint;
use provisioner::config::DockerMode;
use provisioner::{ProviderId, Provisioner};
use serde::Serialize;

use crate::metrics::Metrics;

/// How long the watcher follows the placement after a node event (the
/// Swarm marks a node down ~10-20 s after it is lost, then starts its
/// tasks elsewhere, which takes ~40 s with their health checks).
pub const FOLLOW: Duration = Duration::from_secs(180);
/// How often it looks meanwhile.
pub const FOLLOW_POLL: Duration = Duration::from_secs(1);

/// One app's endpoint, as the book holds it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct TrackedEndpoint {
    #[serde(flatten)]
    pub app: AppEndpoint,
    /// When the endpoint last changed (RFC 3339): the app started, moved
    /// to another node, or stopped.
    pub since: String,
}

/// What `GET /v1/endpoints` answers.
#[derive(Debug, Clone, Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct Endpoints {
    /// When the book was last compared with the platform (RFC 3339).
    pub checked_at: String,
    /// `engine` (fixed endpoints) or `swarm` (they move with the tasks).
    pub mode: DockerMode,
    pub endpoints: Vec<TrackedEndpoint>,
}

/// One endpoint that changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    pub tenant: ProviderId,
    pub app: String,
    pub from: Option<String>,
    pub to: Option<String>,
}

#[derive(Default)]
struct Book {
    checked_at: Option<String>,
    apps: BTreeMap<(ProviderId, String), TrackedEndpoint>,
}

pub struct EndpointBook {
    book: Mutex<Book>,
    metrics: Arc<Metrics>,
}

fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

impl EndpointBook {
    pub fn new(metrics: Arc<Metrics>) -> EndpointBook {
        EndpointBook {
            book: Mutex::new(Book::default()),
            metrics,
        }
    }

    /// Compares the book with `current` (every app that publishes a port):
    /// answers what changed, and keeps `current`.
    pub fn update(&self, current: Vec<AppEndpoint>) -> Vec<Change> {
        let at = now();
        let mut book = self.book.lock().expect("not poisoned");
        let first_look = book.checked_at.is_none();
        let mut changes = Vec::new();
        let mut next = BTreeMap::new();
        for app in current {
            let key = (app.tenant.clone(), app.app.clone());
            let old = book.apps.remove(&key);
            let from = old.as_ref().and_then(|o| o.app.endpoint.clone());
            let since = match old {
                // The same endpoint (its node's name may have been learnt
                // since): it did not change.
                Some(old) if from == app.endpoint => old.since,
                // What the daemon finds at its start, or an app seen
                // first while it does not run yet, moved nowhere.
                None if first_look || app.endpoint.is_none() => at.clone(),
                _ => {
                    changes.push(Change {
                        tenant: app.tenant.clone(),
                        app: app.app.clone(),
                        from,
                        to: app.endpoint.clone(),
                    });
                    at.clone()
                }
            };
            let tracked = TrackedEndpoint { app, since };
            next.insert(key, tracked);
        }
        // Apps gone (destroyed) since the last look.
        for ((tenant, app), old) in std::mem::take(&mut book.apps) {
            if old.app.endpoint.is_some() {
                changes.push(Change {
                    tenant,
                    app,
                    from: old.app.endpoint,
                    to: None,
                });
            }
        }
        book.apps = next;
        book.checked_at = Some(at);
        for _ in &changes {
            self.metrics.endpoint_changed();
        }
        changes
    }

    /// Takes a fresh look through `p`; logs each change.
    pub async fn refresh(&self, p: &Provisioner) -> Result<Vec<Change>, provisioner::Error> {
        let changes = self.update(p.app_endpoints().await?);
        for c in &changes {
            tracing::info!(
                tenant = %c.tenant,
                app = %c.app,
                from = %c.from.as_deref().unwrap_or("-"),
                to = %c.to.as_deref().unwrap_or("-"),
                "endpoint changed"
            );
        }
        Ok(changes)
    }

    /// The book as the route serves it; `None` before the first look.
    pub fn view(&self, mode: DockerMode) -> Option<Endpoints> {
        let book = self.book.lock().expect("not poisoned");
        Some(Endpoints {
            checked_at: book.checked_at.clone()?,
            mode,
            endpoints: book.apps.values().cloned().collect(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn app(tenant: &str, app: &str, node: &str, endpoint: Option<&str>) -> AppEndpoint {
        AppEndpoint {
            tenant: ProviderId::parse(tenant).unwrap(),
            app: app.to_owned(),
            node: Some(node.to_owned()),
            endpoint: endpoint.map(str::to_owned),
        }
    }

    fn moves(changes: &[Change]) -> Vec<(String, Option<String>, Option<String>)> {
        changes
            .iter()
            .map(|c| {
                (
                    format!("{}/{}", c.tenant, c.app),
                    c.from.clone(),
                    c.to.clone(),
                )
            })
            .collect()
    }

    #[test]
    fn the_first_look_is_no_change_and_a_moved_task_is_one() {
        let book = EndpointBook::new(Arc::new(Metrics::default()));
        let a = app("acme", "ingest", "n2", Some("10.0.0.12:30001"));
        let b = app("beta", "ingest", "n3", Some("10.0.0.13:30002"));
        assert!(book.update(vec![a.clone(), b.clone()]).is_empty());
        let since = book.view(DockerMode::Swarm).unwrap().endpoints[0]
            .since
            .clone();

        // acme's task is being moved: no endpoint; then it runs on n1.
        let moving = app("acme", "ingest", "n2", None);
        assert_eq!(
            moves(&book.update(vec![moving, b.clone()])),
            [("acme/ingest".into(), Some("10.0.0.12:30001".into()), None)]
        );
        let moved = app("acme", "ingest", "n1", Some("10.0.0.11:30001"));
        assert_eq!(
            moves(&book.update(vec![moved.clone(), b.clone()])),
            [("acme/ingest".into(), None, Some("10.0.0.11:30001".into()))]
        );
        let view = book.view(DockerMode::Swarm).unwrap();
        assert_eq!(view.endpoints[0].app, moved);
        // beta never moved: it keeps the time of the first look.
        assert_eq!(view.endpoints[1].since, since);
    }

    #[test]
    fn a_new_app_that_runs_and_a_destroyed_one_are_changes() {
        let book = EndpointBook::new(Arc::new(Metrics::default()));
        assert!(book.update(vec![]).is_empty());
        let a = app("acme", "admin", "n1", Some("10.0.0.11:30101"));
        assert_eq!(
            moves(&book.update(vec![a])),
            [("acme/admin".into(), None, Some("10.0.0.11:30101".into()))]
        );
        // A stopped tenant's app first seen is no change.
        assert!(book
            .update(vec![
                app("acme", "admin", "n1", Some("10.0.0.11:30101")),
                app("zeta", "admin", "n1", None)
            ])
            .is_empty());
        assert_eq!(
            moves(&book.update(vec![app("zeta", "admin", "n1", None)])),
            [("acme/admin".into(), Some("10.0.0.11:30101".into()), None)]
        );
    }
}
