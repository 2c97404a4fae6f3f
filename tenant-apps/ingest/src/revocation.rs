//! Closing the connections of revoked gateways. Every logged-in connection
//! registers its gateway and the stored token hash its hello matched
//! ([`Sessions::register`]). One task per server ([`watch`]) re-reads the
//! whole `gateways` table every `INGEST_REVOCATION_CHECK_SECS` while any
//! connection is open (one paged read, however many gateways are
//! connected) and signals every connection whose gateway is revoked: its
//! row has `revoked_at` set, has no token hash or another one (commissioned
//! again with a new token), or is gone. The connection then sends
//! `<error code="auth">token revoked</error>` and closes; nothing is acked
//! after it.
//!
//! Each copy it reads is also the [`GatewayBook`] hellos are welcomed from,
//! so a hello after a check sees every revoke that check acted on.
//!
//! A failed read changes nothing (Cassandra away is not a revocation); the
//! next round tries again.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tenant_schema::model::GatewayId;
use tenant_schema::registry::GatewayEntry;
use tokio_util::sync::CancellationToken;

use crate::auth::GatewayBook;
use crate::metrics::Metrics;
use crate::store::Store;

/// The logged-in connections of one server.
#[derive(Debug, Default)]
pub struct Sessions {
    next_id: AtomicU64,
    open: Mutex<HashMap<u64, Session>>,
}

#[derive(Debug)]
struct Session {
    gateway: Arc<GatewayId>,
    token_hash: String,
    revoked: CancellationToken,
}

/// A registered connection; deregisters on drop.
#[derive(Debug)]
pub struct SessionGuard {
    sessions: Arc<Sessions>,
    id: u64,
    revoked: CancellationToken,
}

impl SessionGuard {
    /// Cancelled once the gateway is found revoked.
    pub fn revoked(&self) -> &CancellationToken {
        &self.revoked
    }
}

impl Drop for SessionGuard {
    fn drop(&mut self) {
        self.sessions.lock().remove(&self.id);
    }
}

impl Sessions {
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<u64, Session>> {
        self.open.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Registers a connection of `gateway` that logged in with the token of
    /// `token_hash`.
    pub fn register(self: &Arc<Self>, gateway: Arc<GatewayId>, token_hash: String) -> SessionGuard {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let revoked = CancellationToken::new();
        self.lock().insert(
            id,
            Session {
                gateway,
                token_hash,
                revoked: revoked.clone(),
            },
        );
        SessionGuard {
            sessions: self.clone(),
            id,
            revoked,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.lock().is_empty()
    }

    /// Signals every connection whose gateway `records` (the whole table)
    /// shows revoked; returns the gateways signalled now.
    pub fn revoke_stale(&self, records: &HashMap<String, GatewayEntry>) -> Vec<Arc<GatewayId>> {
        let mut signalled = Vec::new();
        for session in self.lock().values() {
            if session.revoked.is_cancelled() {
                continue;
            }
            let valid = records.get(session.gateway.as_str()).is_some_and(|r| {
                r.is_live() && r.token_hash.as_deref() == Some(session.token_hash.as_str())
            });
            if !valid {
                session.revoked.cancel();
                signalled.push(session.gateway.clone());
            }
        }
        signalled
    }
}

/// Checks the open connections' gateways every `interval` until `shutdown`.
pub async fn watch(
    sessions: Arc<Sessions>,
    book: Arc<GatewayBook>,
    store: Arc<Store>,
    metrics: Arc<Metrics>,
    interval: Duration,
    shutdown: CancellationToken,
) {
    let mut ticks = tokio::time::interval(interval);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = ticks.tick() => {}
        }
        if sessions.is_empty() {
            continue;
        }
        Metrics::inc(&metrics.revocation_checks);
        let read_at = std::time::Instant::now();
        match store.gateway_records().await {
            Ok(records) => {
                // Hellos are welcomed from the same copy; it has every
                // revoke this check closes connections for.
                let records = book.put(read_at, records);
                for gateway in sessions.revoke_stale(&records) {
                    Metrics::inc(&metrics.revoked_connections);
                    tracing::info!(gateway = %gateway, "gateway revoked; closing its connection");
                }
            }
            Err(e) => {
                Metrics::inc(&metrics.revocation_check_errors);
                tracing::warn!(error = %e, "cannot check for revoked gateways; retrying");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(id: &str, hash: Option<&str>, revoked: bool) -> (String, GatewayEntry) {
        let entry = GatewayEntry {
            gateway_id: id.to_owned(),
            display_name: None,
            created_at: None,
            revoked_at: revoked.then(chrono::Utc::now),
            token_hash: hash.map(str::to_owned),
        };
        (id.to_owned(), entry)
    }

    #[test]
    fn a_revoked_replaced_or_deleted_gateway_is_signalled_once_and_others_are_not() {
        let sessions = Sessions::new();
        let gw = |id: &str| Arc::new(GatewayId::parse(id).unwrap());
        let ok = sessions.register(gw("gw-ok"), "h1".into());
        let revoked_kept = sessions.register(gw("gw-revoked"), "h2".into());
        let nulled = sessions.register(gw("gw-nulled"), "h3".into());
        let replaced = sessions.register(gw("gw-replaced"), "h4".into());
        let deleted = sessions.register(gw("gw-deleted"), "h5".into());
        let records: HashMap<String, GatewayEntry> = [
            record("gw-ok", Some("h1"), false),
            record("gw-revoked", Some("h2"), true),
            record("gw-nulled", None, true),
            record("gw-replaced", Some("new"), false),
        ]
        .into_iter()
        .collect();
        let mut signalled: Vec<String> = sessions
            .revoke_stale(&records)
            .iter()
            .map(|g| g.to_string())
            .collect();
        signalled.sort();
        assert_eq!(
            signalled,
            ["gw-deleted", "gw-nulled", "gw-replaced", "gw-revoked"]
        );
        assert!(!ok.revoked().is_cancelled());
        for guard in [&revoked_kept, &nulled, &replaced, &deleted] {
            assert!(guard.revoked().is_cancelled());
        }
        assert!(sessions.revoke_stale(&records).is_empty(), "once");
        drop((ok, revoked_kept, nulled, replaced, deleted));
        assert!(sessions.is_empty());
    }
}
