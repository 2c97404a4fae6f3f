//! Checking a hello against the `gateways` table, as cheaply for the
//! shared Cassandra as is safe:
//!
//! - an invalid id or an empty token is refused without a read;
//! - an id with no row is remembered for [`UNKNOWN_GATEWAY_TTL`] (a short
//!   negative cache, so a gateway commissioned just now gets in soon), and
//!   hellos for it are refused without a read meanwhile;
//! - anything else reads the row (counted in `ingest_token_reads_total`);
//!   a token is never cached as valid, and a wrong token for a known id is
//!   never cached at all.
//!
//! A successful check returns the stored hash the token matched, which the
//! revocation watch ([`crate::revocation`]) later compares the row with.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tenant_schema::model::{gateway_token_matches, GatewayId};

use crate::metrics::Metrics;
use crate::store::{Store, StoreError};

/// How long an id with no row is answered from the negative cache.
pub const UNKNOWN_GATEWAY_TTL: Duration = Duration::from_secs(3);
/// Ids the negative cache holds at most (memory bound).
const MAX_UNKNOWN_CACHED: usize = 10_000;

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
    /// Ids with no row, until when.
    unknown: Mutex<HashMap<String, Instant>>,
}

impl Authenticator {
    pub fn new(store: Arc<Store>, metrics: Arc<Metrics>) -> Self {
        Self {
            store,
            metrics,
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
