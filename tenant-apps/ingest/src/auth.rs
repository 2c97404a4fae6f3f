//! Checking a hello against the `gateways` table, as cheaply for the
//! shared Cassandra as is safe:
//!
//! - an invalid id or an empty token is refused without a read;
//! - an id with no row is remembered for [`UNKNOWN_GATEWAY_TTL`] (a short
//!   negative cache, so a gateway commissioned just now gets in soon), and
//!   hellos for it are refused without a read meanwhile;
//! - a live gateway whose token matches its row in the [`GatewayBook`] (a
//!   copy of the whole `gateways` table at most [`BOOK_TTL`] old, read once
//!   for many hellos) is welcomed without a read of its own
//!   (`ingest_token_book_hits_total`): a storm of 10,000 logins after a
//!   restart costs one paged read of the table, not 10,000. A revoke
//!   reaches new hellos within [`BOOK_TTL`] plus that read;
//! - anything else (an id the book lacks, a token that does not match it,
//!   a revoked entry) reads the row, which decides (counted in
//!   `ingest_token_reads_total`): a refusal is never taken from the book,
//!   so a gateway commissioned or given a new token just now gets in, and
//!   a wrong token for a known id is never cached at all.
//!
//! A successful check returns the stored hash the token matched, which the
//! revocation watch ([`crate::revocation`]) later compares the row with.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tenant_schema::model::{gateway_token_matches, GatewayId};
use tenant_schema::registry::GatewayEntry;

use crate::metrics::Metrics;
use crate::store::{Store, StoreError};

/// How long an id with no row is answered from the negative cache.
pub const UNKNOWN_GATEWAY_TTL: Duration = Duration::from_secs(3);
/// Ids the negative cache holds at most (memory bound).
const MAX_UNKNOWN_CACHED: usize = 10_000;
/// How old a [`GatewayBook`] may be to welcome a hello: how long a revoked
/// token may still log in (an open connection of it is closed by the
/// revocation watch, [`crate::revocation`]).
pub const BOOK_TTL: Duration = Duration::from_secs(5);

/// Every commissioned gateway's row by id.
pub type Records = Arc<HashMap<String, GatewayEntry>>;

/// Every commissioned gateway's row, as read at one moment: what hellos are
/// welcomed from. Refreshed by the revocation watch while connections are
/// open, and by the first hello that finds it older than its TTL (the
/// others wait for that one read, then use it).
pub struct GatewayBook {
    ttl: Duration,
    /// When the copy's read started, and the copy.
    current: Mutex<Option<(Instant, Records)>>,
    /// One refresh at a time.
    refresh: tokio::sync::Mutex<()>,
}

impl GatewayBook {
    /// An empty book whose copies serve for `ttl` (at most [`BOOK_TTL`]).
    pub fn new(ttl: Duration) -> Arc<GatewayBook> {
        Arc::new(GatewayBook {
            ttl: ttl.min(BOOK_TTL),
            current: Mutex::new(None),
            refresh: tokio::sync::Mutex::new(()),
        })
    }

    /// Keeps `records`, read from a query started at `read_at`, unless a
    /// newer read is kept; answers them, shared.
    pub fn put(&self, read_at: Instant, records: HashMap<String, GatewayEntry>) -> Records {
        let records = Arc::new(records);
        let mut current = self.current.lock().unwrap_or_else(|e| e.into_inner());
        if current.as_ref().is_none_or(|(at, _)| *at <= read_at) {
            *current = Some((read_at, records.clone()));
        }
        records
    }

    /// The copy, if it is younger than the TTL at `now`.
    fn fresh(&self, now: Instant) -> Option<Records> {
        let current = self.current.lock().unwrap_or_else(|e| e.into_inner());
        current
            .as_ref()
            .filter(|(at, _)| now.saturating_duration_since(*at) < self.ttl)
            .map(|(_, records)| records.clone())
    }

    /// A fresh copy: this one, or one read now (once for all who ask
    /// meanwhile).
    async fn get(&self, store: &Store, metrics: &Metrics) -> Result<Records, StoreError> {
        if let Some(records) = self.fresh(Instant::now()) {
            return Ok(records);
        }
        let _one = self.refresh.lock().await;
        if let Some(records) = self.fresh(Instant::now()) {
            return Ok(records);
        }
        let read_at = Instant::now();
        Metrics::inc(&metrics.token_book_reads);
        let records = store.gateway_records().await?;
        Ok(self.put(read_at, records))
    }
}

/// Why a hello was refused (the `reason` label of
/// `ingest_hello_refusals_total`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HelloRefusal {
    InvalidId = 0,
    NoToken = 1,
    UnknownGateway = 2,
    WrongToken = 3,
    Revoked = 4,
    /// The first frame was not a hello.
    NotHello = 5,
    /// No complete hello within the hello deadline.
    Timeout = 6,
}

impl HelloRefusal {
    pub const ALL: [HelloRefusal; 7] = [
        HelloRefusal::InvalidId,
        HelloRefusal::NoToken,
        HelloRefusal::UnknownGateway,
        HelloRefusal::WrongToken,
        HelloRefusal::Revoked,
        HelloRefusal::NotHello,
        HelloRefusal::Timeout,
    ];

    pub fn label(self) -> &'static str {
        match self {
            HelloRefusal::InvalidId => "invalid_id",
            HelloRefusal::NoToken => "no_token",
            HelloRefusal::UnknownGateway => "unknown_gateway",
            HelloRefusal::WrongToken => "wrong_token",
            HelloRefusal::Revoked => "revoked",
            HelloRefusal::NotHello => "not_hello",
            HelloRefusal::Timeout => "timeout",
        }
    }

    /// What the gateway is told. An unknown id and a wrong token read the
    /// same, so a hello cannot probe which ids exist.
    pub fn message(self) -> &'static str {
        match self {
            HelloRefusal::InvalidId => "invalid gateway id",
            HelloRefusal::NoToken => "hello has no token",
            HelloRefusal::UnknownGateway | HelloRefusal::WrongToken => {
                "unknown gateway or wrong token"
            }
            HelloRefusal::Revoked => "gateway token revoked",
            HelloRefusal::NotHello => "the first frame must be a hello",
            HelloRefusal::Timeout => "no hello in time",
        }
    }
}

/// Why a hello got no welcome.
#[derive(Debug, thiserror::Error)]
pub enum HelloError {
    #[error("hello refused: {}", .0.label())]
    Refused(HelloRefusal),
    /// The row could not be read: `<error code="unavailable">`.
    #[error(transparent)]
    Unavailable(#[from] StoreError),
}

/// An accepted hello.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Login {
    pub gateway: GatewayId,
    /// The stored hash the token matched.
    pub token_hash: String,
}

/// Checks hellos for one server.
pub struct Authenticator {
    store: Arc<Store>,
    metrics: Arc<Metrics>,
    book: Arc<GatewayBook>,
    /// Ids with no row, until when.
    unknown: Mutex<HashMap<String, Instant>>,
}

impl Authenticator {
    pub fn new(store: Arc<Store>, metrics: Arc<Metrics>, book: Arc<GatewayBook>) -> Self {
        Self {
            store,
            metrics,
            book,
            unknown: Mutex::new(HashMap::new()),
        }
    }

    /// Checks `token` for gateway `id`.
    pub async fn check(&self, id: &str, token: &str) -> Result<Login, HelloError> {
        let refused = |why| Err(HelloError::Refused(why));
        let Ok(gateway) = GatewayId::parse(id) else {
            return refused(HelloRefusal::InvalidId);
        };
        if token.is_empty() {
            return refused(HelloRefusal::NoToken);
        }
        if self.known_unknown(gateway.as_str(), Instant::now()) {
            Metrics::inc(&self.metrics.unknown_gateway_cache_hits);
            return refused(HelloRefusal::UnknownGateway);
        }
        let book = self.book.get(&self.store, &self.metrics).await?;
        if let Some(hash) = book
            .get(gateway.as_str())
            .filter(|entry| entry.is_live())
            .and_then(|entry| entry.token_hash.as_ref())
            .filter(|hash| gateway_token_matches(token, hash))
        {
            Metrics::inc(&self.metrics.token_book_hits);
            return Ok(Login {
                gateway,
                token_hash: hash.clone(),
            });
        }
        Metrics::inc(&self.metrics.token_reads);
        let Some(entry) = self.store.gateway(&gateway).await? else {
            self.remember_unknown(gateway.as_str(), Instant::now());
            return refused(HelloRefusal::UnknownGateway);
        };
        let live = entry.is_live();
        match entry.token_hash {
            Some(hash) if gateway_token_matches(token, &hash) => {
                if live {
                    Ok(Login {
                        gateway,
                        token_hash: hash,
                    })
                } else {
                    refused(HelloRefusal::Revoked)
                }
            }
            // revoking deletes the hash: no token can match
            None if entry.revoked_at.is_some() => refused(HelloRefusal::Revoked),
            _ => refused(HelloRefusal::WrongToken),
        }
    }

    fn known_unknown(&self, id: &str, now: Instant) -> bool {
        let unknown = self.unknown.lock().unwrap_or_else(|e| e.into_inner());
        unknown.get(id).is_some_and(|until| *until > now)
    }

    fn remember_unknown(&self, id: &str, now: Instant) {
        let mut unknown = self.unknown.lock().unwrap_or_else(|e| e.into_inner());
        if unknown.len() >= MAX_UNKNOWN_CACHED {
            unknown.retain(|_, until| *until > now);
            if unknown.len() >= MAX_UNKNOWN_CACHED {
                return;
            }
        }
        unknown.insert(id.to_owned(), now + UNKNOWN_GATEWAY_TTL);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(id: &str) -> (String, GatewayEntry) {
        let entry = GatewayEntry {
            gateway_id: id.to_owned(),
            display_name: None,
            created_at: None,
            revoked_at: None,
            token_hash: None,
        };
        (id.to_owned(), entry)
    }

    #[test]
    fn the_book_serves_for_its_ttl_and_an_older_read_never_replaces_a_newer_one() {
        let book = GatewayBook::new(Duration::from_secs(60));
        assert_eq!(book.ttl, BOOK_TTL, "capped");
        let t0 = Instant::now();
        assert!(book.fresh(t0).is_none());
        book.put(t0, HashMap::from([entry("gw-1")]));
        assert!(book
            .fresh(t0 + Duration::from_secs(4))
            .unwrap()
            .contains_key("gw-1"));
        assert!(book.fresh(t0 + BOOK_TTL).is_none());
        let t1 = t0 + Duration::from_secs(1);
        book.put(t1, HashMap::from([entry("gw-2")]));
        book.put(t0, HashMap::from([entry("gw-old")]));
        let now = book.fresh(t1).unwrap();
        assert!(now.contains_key("gw-2") && !now.contains_key("gw-old"));
    }
}
