//! Who may hold a connection, decided at accept and at the hello, so that
//! sockets that never log in cannot lock gateways out:
//!
//! - logged-in gateways have their own cap (`INGEST_MAX_CONNECTIONS`);
//! - connections that have not completed their hello have a smaller cap of
//!   their own (`INGEST_MAX_UNAUTHENTICATED`); when it is full, a new
//!   connection evicts the oldest one still waiting for its hello (as sshd's
//!   MaxStartups does), so a real gateway's new connection always gets its
//!   chance to say hello, however many addresses an attack comes from;
//! - one source address (an IPv4 address, or an IPv6 /64, which one host
//!   usually owns whole) may hold at most `INGEST_MAX_UNAUTHENTICATED_PER_ADDRESS`
//!   of those;
//! - an address whose hellos failed more than [`FREE_FAILED_HELLOS`] times
//!   recently is refused at accept for a while, doubling from
//!   [`BACKOFF_FIRST`] up to [`BACKOFF_MAX`] with every further failure, so
//!   a flood of bad hellos costs neither token reads nor log lines.
//!
//! The hello deadline itself is kept by the connection task.

use std::collections::{BTreeSet, HashMap};
use std::net::{IpAddr, Ipv6Addr};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;

/// Failed hellos from one address before it is backed off.
pub const FREE_FAILED_HELLOS: u32 = 10;
/// The first back-off; each further failure doubles it.
pub const BACKOFF_FIRST: Duration = Duration::from_millis(500);
/// The longest back-off.
pub const BACKOFF_MAX: Duration = Duration::from_secs(30);
/// An address with no failed hello for this long starts over.
pub const FAILURES_FORGOTTEN_AFTER: Duration = Duration::from_secs(300);
/// Addresses with recent failures tracked at most (memory bound).
const MAX_TRACKED_ADDRESSES: usize = 100_000;

/// The caps of one server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AdmissionLimits {
    /// Logged-in connections at once.
    pub max_authenticated: usize,
    /// Connections without a completed hello at once.
    pub max_unauthenticated: usize,
    /// Connections without a completed hello per source address.
    pub max_unauthenticated_per_address: usize,
}

/// Why a connection is refused at accept (`<error code="busy">`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rejection {
    /// Every logged-in slot is taken.
    Cap = 0,
    /// Every slot for connections without a hello is taken by connections
    /// already checking their hello (none could be evicted).
    Unauthenticated = 1,
    /// The source address holds its share of connections without a hello.
    Address = 2,
    /// The source address failed too many hellos recently.
    Backoff = 3,
}

impl Rejection {
    pub const ALL: [Rejection; 4] = [
        Rejection::Cap,
        Rejection::Unauthenticated,
        Rejection::Address,
        Rejection::Backoff,
    ];

    /// The `reason` label in `/metrics` and the logs.
    pub fn label(self) -> &'static str {
        match self {
            Rejection::Cap => "cap",
            Rejection::Unauthenticated => "unauthenticated",
            Rejection::Address => "address",
            Rejection::Backoff => "backoff",
        }
    }
}

/// A refused connection: why, and the line the client gets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refused {
    pub rejection: Rejection,
    pub why: String,
}

/// The key connections and failures are counted under: the IPv4 address
/// (also when mapped into IPv6), or the /64 of an IPv6 address.
pub fn address_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let s = v6.segments();
                IpAddr::V6(Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
            }
        },
    }
}

/// The admission state of one server.
#[derive(Debug)]
pub struct Admission {
    limits: AdmissionLimits,
    authenticated: Arc<Semaphore>,
    waiting: Mutex<Waiting>,
    failures: Mutex<HashMap<IpAddr, Failures>>,
}

/// Connections without a completed hello.
#[derive(Debug, Default)]
struct Waiting {
    next_id: u64,
    /// Every one, by id (ids grow, so the smallest is the oldest).
    all: HashMap<u64, WaitingEntry>,
    /// Those that have not sent a complete hello yet, oldest first: only
    /// these may be evicted (a hello being checked finishes soon).
    evictable: BTreeSet<u64>,
    per_address: HashMap<IpAddr, usize>,
}

#[derive(Debug)]
struct WaitingEntry {
    address: IpAddr,
    evicted: CancellationToken,
}

impl Waiting {
    fn remove(&mut self, id: u64) -> Option<WaitingEntry> {
        let entry = self.all.remove(&id)?;
        self.evictable.remove(&id);
        if let Some(n) = self.per_address.get_mut(&entry.address) {
            *n -= 1;
            if *n == 0 {
                self.per_address.remove(&entry.address);
            }
        }
        Some(entry)
    }
}

#[derive(Debug, Clone, Copy)]
struct Failures {
    count: u32,
    last: Instant,
    blocked_until: Option<Instant>,
}

impl Admission {
    pub fn new(limits: AdmissionLimits) -> Arc<Self> {
        Arc::new(Self {
            limits,
            authenticated: Arc::new(Semaphore::new(limits.max_authenticated)),
            waiting: Mutex::new(Waiting::default()),
            failures: Mutex::new(HashMap::new()),
        })
    }

    pub fn limits(&self) -> AdmissionLimits {
        self.limits
    }

    /// Connections without a completed hello now.
    pub fn unauthenticated(&self) -> usize {
        lock(&self.waiting).all.len()
    }

    /// Admits a new connection from `peer` as one waiting for its hello, or
    /// refuses it. When the cap is full, the oldest connection that has not
    /// sent a hello yet is signalled to go ([`Unauthenticated::evicted`]).
    pub fn admit(self: &Arc<Self>, peer: IpAddr, now: Instant) -> Result<Admitted, Refused> {
        let address = address_key(peer);
        if let Some(wait) = self.backed_off(address, now) {
            return Err(Refused {
                rejection: Rejection::Backoff,
                why: format!(
                    "too many failed hellos from {address}; retry in {} s",
                    wait.as_secs_f64().ceil() as u64
                ),
            });
        }
        if self.authenticated.available_permits() == 0 {
            return Err(Refused {
                rejection: Rejection::Cap,
                why: format!(
                    "too many connections (cap {})",
                    self.limits.max_authenticated
                ),
            });
        }
        let mut waiting = lock(&self.waiting);
        let from_address = waiting.per_address.get(&address).copied().unwrap_or(0);
        if from_address >= self.limits.max_unauthenticated_per_address {
            return Err(Refused {
                rejection: Rejection::Address,
                why: format!(
                    "too many connections without a hello from {address} (cap {})",
                    self.limits.max_unauthenticated_per_address
                ),
            });
        }
        let mut evicted = false;
        if waiting.all.len() >= self.limits.max_unauthenticated {
            let Some(oldest) = waiting.evictable.first().copied() else {
                return Err(Refused {
                    rejection: Rejection::Unauthenticated,
                    why: format!(
                        "too many connections without a hello (cap {})",
                        self.limits.max_unauthenticated
                    ),
                });
            };
            if let Some(entry) = waiting.remove(oldest) {
                entry.evicted.cancel();
                evicted = true;
            }
        }
        let id = waiting.next_id;
        waiting.next_id += 1;
        let signal = CancellationToken::new();
        waiting.all.insert(
            id,
            WaitingEntry {
                address,
                evicted: signal.clone(),
            },
        );
        waiting.evictable.insert(id);
        *waiting.per_address.entry(address).or_insert(0) += 1;
        Ok(Admitted {
            unauthenticated: Unauthenticated {
                admission: self.clone(),
                id,
                evicted: signal,
            },
            evicted_another: evicted,
        })
    }

    /// Records a failed hello from `peer`.
    pub fn hello_failed(&self, peer: IpAddr, now: Instant) {
        let address = address_key(peer);
        let mut failures = lock(&self.failures);
        if failures.len() >= MAX_TRACKED_ADDRESSES && !failures.contains_key(&address) {
            failures.retain(|_, f| !forgotten(f, now));
            if failures.len() >= MAX_TRACKED_ADDRESSES {
                return;
            }
        }
        let f = failures.entry(address).or_insert(Failures {
            count: 0,
            last: now,
            blocked_until: None,
        });
        if forgotten(f, now) {
            f.count = 0;
        }
        f.count += 1;
        f.last = now;
        if f.count > FREE_FAILED_HELLOS {
            let doublings = (f.count - FREE_FAILED_HELLOS - 1).min(16);
            let wait = BACKOFF_FIRST
                .saturating_mul(1 << doublings)
                .min(BACKOFF_MAX);
            f.blocked_until = Some(now + wait);
        }
    }

    /// How much longer `address` is refused, if it is.
    fn backed_off(&self, address: IpAddr, now: Instant) -> Option<Duration> {
        let failures = lock(&self.failures);
        let until = failures.get(&address)?.blocked_until?;
        (until > now).then(|| until - now)
    }
}

fn forgotten(f: &Failures, now: Instant) -> bool {
    now.duration_since(f.last) >= FAILURES_FORGOTTEN_AFTER
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// A connection just admitted.
#[derive(Debug)]
pub struct Admitted {
    pub unauthenticated: Unauthenticated,
    /// Whether the oldest connection waiting for its hello was evicted for it.
    pub evicted_another: bool,
}

/// A connection's slot among those without a completed hello; released on
/// drop, or when the connection logs in ([`Unauthenticated::log_in`]).
#[derive(Debug)]
pub struct Unauthenticated {
    admission: Arc<Admission>,
    id: u64,
    evicted: CancellationToken,
}

impl Unauthenticated {
    /// Cancelled when a newer connection evicted this one.
    pub fn evicted(&self) -> &CancellationToken {
        &self.evicted
    }

    /// The connection sent its hello and is being checked: it may no longer
    /// be evicted.
    pub fn hello_received(&self) {
        lock(&self.admission.waiting).evictable.remove(&self.id);
    }

    /// The hello was accepted: trades this slot for a logged-in one, or
    /// `Err` if every logged-in slot is taken.
    pub fn log_in(self) -> Result<OwnedSemaphorePermit, Refused> {
        let limits = self.admission.limits;
        self.admission
            .authenticated
            .clone()
            .try_acquire_owned()
            .map_err(|_| Refused {
                rejection: Rejection::Cap,
                why: format!("too many connections (cap {})", limits.max_authenticated),
            })
    }
}

impl Drop for Unauthenticated {
    fn drop(&mut self) {
        lock(&self.admission.waiting).remove(self.id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    fn admission(
        authenticated: usize,
        unauthenticated: usize,
        per_address: usize,
    ) -> Arc<Admission> {
        Admission::new(AdmissionLimits {
            max_authenticated: authenticated,
            max_unauthenticated: unauthenticated,
            max_unauthenticated_per_address: per_address,
        })
    }

    #[test]
    fn a_full_unauthenticated_cap_evicts_the_oldest_waiting_connection() {
        let a = admission(10, 3, 10);
        let now = Instant::now();
        let first = a.admit(ip("10.0.0.1"), now).unwrap().unauthenticated;
        let second = a.admit(ip("10.0.0.2"), now).unwrap().unauthenticated;
        second.hello_received();
        let third = a.admit(ip("10.0.0.3"), now).unwrap().unauthenticated;
        let fourth = a.admit(ip("10.0.0.4"), now).unwrap();
        assert!(fourth.evicted_another);
        assert!(first.evicted().is_cancelled(), "the oldest goes");
        assert!(!second.evicted().is_cancelled());
        assert_eq!(a.unauthenticated(), 3);
        // the one checking its hello is never evicted: the next goes
        let _fifth = a.admit(ip("10.0.0.5"), now).unwrap();
        assert!(third.evicted().is_cancelled());
        assert!(!second.evicted().is_cancelled());
        drop(first);
        assert_eq!(a.unauthenticated(), 3);
        // all of them checking hellos: nothing can be evicted
        let all = admission(10, 1, 10);
        let only = all.admit(ip("10.0.0.1"), now).unwrap().unauthenticated;
        only.hello_received();
        let refused = all.admit(ip("10.0.0.2"), now).unwrap_err();
        assert_eq!(refused.rejection, Rejection::Unauthenticated);
    }

    #[test]
    fn one_address_holds_at_most_its_share_and_ipv6_counts_by_64() {
        let a = admission(10, 100, 2);
        let now = Instant::now();
        let _one = a.admit(ip("2001:db8::1"), now).unwrap();
        let _two = a.admit(ip("2001:db8::2:3"), now).unwrap();
        let refused = a.admit(ip("2001:db8::ffff:1"), now).unwrap_err();
        assert_eq!(refused.rejection, Rejection::Address);
        assert!(refused.why.contains("2001:db8::"), "{}", refused.why);
        assert!(a.admit(ip("2001:db8:0:1::1"), now).is_ok(), "another /64");
        assert_eq!(address_key(ip("::ffff:10.1.2.3")), ip("10.1.2.3"));
    }

    #[test]
    fn logging_in_frees_the_waiting_slot_and_takes_a_logged_in_one() {
        let a = admission(1, 1, 1);
        let now = Instant::now();
        let waiting = a.admit(ip("10.0.0.1"), now).unwrap().unauthenticated;
        let slot = waiting.log_in().unwrap();
        assert_eq!(a.unauthenticated(), 0);
        let refused = a.admit(ip("10.0.0.1"), now).unwrap_err();
        assert_eq!(refused.rejection, Rejection::Cap);
        drop(slot);
        assert!(a.admit(ip("10.0.0.1"), now).is_ok());
    }

    #[test]
    fn failed_hellos_back_an_address_off_exponentially_up_to_the_cap() {
        let a = admission(10, 10, 10);
        let peer = ip("10.0.0.9");
        let t0 = Instant::now();
        for _ in 0..FREE_FAILED_HELLOS {
            a.hello_failed(peer, t0);
        }
        assert!(a.admit(peer, t0).is_ok(), "the first failures are free");
        a.hello_failed(peer, t0);
        let refused = a.admit(peer, t0).unwrap_err();
        assert_eq!(refused.rejection, Rejection::Backoff);
        assert!(a.admit(peer, t0 + BACKOFF_FIRST).is_ok());
        assert!(
            a.admit(ip("10.0.0.10"), t0).is_ok(),
            "other addresses are not"
        );
        let mut waits = Vec::new();
        for _ in 0..10 {
            a.hello_failed(peer, t0);
            waits.push(a.backed_off(peer, t0).unwrap());
        }
        assert_eq!(waits[0], BACKOFF_FIRST * 2);
        assert_eq!(waits[1], BACKOFF_FIRST * 4);
        assert_eq!(*waits.last().unwrap(), BACKOFF_MAX);
        // a quiet address starts over
        let later = t0 + FAILURES_FORGOTTEN_AFTER + BACKOFF_MAX;
        assert!(a.admit(peer, later).is_ok());
        a.hello_failed(peer, later);
        assert!(a.admit(peer, later).is_ok());
    }
}
