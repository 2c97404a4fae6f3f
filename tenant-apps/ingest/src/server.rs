//! The gateway TCP server: an accept loop that admits connections
//! ([`crate::admission`]: separate caps for logged-in gateways and for
//! connections still owing their hello, per source address too, and a
//! back-off for addresses whose hellos fail), and one task per connection
//! that checks the hello ([`crate::auth`]) within the hello deadline, then
//! decodes frames, hands them to the write queue (which writes them
//! concurrently, frames of many connections together) and sends the answers
//! strictly in frame order. One more task ([`crate::revocation::watch`])
//! closes the connections of gateways revoked while connected.
//!
//! Rules kept here:
//! - an ack is sent only after [`WriteQueue::write`] succeeded;
//! - answers (ack and nack) leave in the order the frames arrived, because
//!   each frame's outcome is queued in a `FuturesOrdered`;
//! - after a failed write nothing more is acked on that connection: it gets
//!   `<error code="unavailable">` and closes, so the gateway resends every
//!   unacked frame on a new connection (writes are idempotent);
//! - once its gateway is found revoked, nothing more is acked on a
//!   connection: it gets `<error code="auth">token revoked</error>` and
//!   closes;
//! - unrecoverable framing gets `<error code="protocol">` once the frames
//!   before it are answered, then the connection closes;
//! - the hello deadline runs from accept and bytes do not extend it; the
//!   idle timeout runs from the last complete frame or answer;
//! - on shutdown (SIGTERM) reading stops, in-flight writes finish and are
//!   acked, then `<error code="shutdown">` and close.
//!
//! - the tenant's rate limit ([`crate::rate_limit`]) is backpressure: once
//!   a frame taken in puts the tenant over it, the connection decodes and
//!   reads nothing more until the limiter's wait is over (answers keep
//!   leaving); nothing is refused for the rate;
//! - TLS ([`crate::tls`]): an admitted connection is sorted by its first
//!   byte before anything else; the TLS handshake, like that first byte,
//!   must come within the hello deadline. Inside TLS everything above holds
//!   unchanged.
//! - the PROXY protocol v2 ([`crate::trusted_proxies`]): a connection from
//!   a trusted front (`INGEST_TRUSTED_PROXIES`) must start with a header,
//!   which is read off it, within the hello deadline, before it is
//!   admitted: the address the header names (the front's own for `LOCAL`)
//!   is then the connection's for everything after, admission (caps per
//!   address, the back-off) and logs included. The front's address is
//!   never admitted, counted or backed off for the gateways behind it.
//!   When fronts are trusted, a connection from any other address is
//!   looked at first (nothing consumed) and refused if it starts with the
//!   header's signature. Both come before the sort by first byte (the
//!   header precedes a TLS ClientHello). With no front trusted, nothing of
//!   this runs.
//!
//! Error codes sent: `auth`, `protocol` (DESIGN.md; also a missing, bad or
//! untrusted PROXY header), and `busy` (a cap, an
//! eviction or the back-off), `idle` (idle timeout), `unavailable`
//! (Cassandra failed), `shutdown`, `tls` (a plain connection where TLS is
//! required).

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use futures::stream::{FuturesOrdered, StreamExt};
use futures::FutureExt;
use tenant_schema::model::GatewayId;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::admission::{Admission, AdmissionLimits, Refused, Rejection, Unauthenticated};
use crate::auth::{Authenticator, GatewayBook, HelloError, HelloRefusal, Login};
use crate::metrics::Metrics;
use crate::protocol::{self, DataFrame, Frame, FrameDecoder, TimeBounds};
use crate::rate_limit::RateLimiter;
use crate::revocation::{self, SessionGuard, Sessions};
use crate::sampled_log::LogSampler;
use crate::store::Store;
use crate::tls::{GatewayTls, TlsMode, Transport};
use crate::trusted_proxies::{self, FrontConnection, ProxyRefusal, TrustedProxies};
use crate::write_queue::{Grouping, WriteQueue};

/// How often `last_seen` is written per connection, at most.
pub const TOUCH_INTERVAL: Duration = Duration::from_secs(1);
/// How many bytes a read asks for at most: a connection that fills what
/// it asked for asks for twice as much next time, up to this.
const READ_CHUNK: usize = 16 * 1024;
/// How many bytes a read asks for at first, and again once a connection
/// is quiet (its buffer empty after a short read); a quiet connection
/// gives its buffer back while it waits ([`read_some`]), so ten thousand
/// gateways sending a reading every few seconds hold next to none.
const READ_SMALL: usize = 1024;
/// Log lines per second per refusal reason, at most.
const REFUSALS_LOGGED_PER_SECOND: u32 = 1;
/// Log lines per second for accepted hellos, at most.
const WELCOMES_LOGGED_PER_SECOND: u32 = 20;

/// The limits of one server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub idle_timeout: Duration,
    /// Time from accept to a complete hello.
    pub hello_timeout: Duration,
    /// Logged-in connections at once.
    pub max_connections: usize,
    /// Connections without a completed hello at once.
    pub max_unauthenticated: usize,
    /// Connections without a completed hello per source address.
    pub max_unauthenticated_per_address: usize,
    pub max_pipeline: usize,
    /// Unacked frames over all connections before connections stop being
    /// read.
    pub max_frames_in_flight: usize,
    /// Readings per second over all connections; 0: unlimited.
    pub max_readings_per_sec: u32,
    /// The times readings may carry, relative to the server's clock.
    pub reading_times: TimeBounds,
    /// How often connected gateways are checked for revocation.
    pub revocation_check: Duration,
    /// How frames are grouped into requests to Cassandra.
    pub writes: Grouping,
}

impl From<&crate::settings::Settings> for Limits {
    fn from(s: &crate::settings::Settings) -> Self {
        Self {
            idle_timeout: s.idle_timeout,
            hello_timeout: s.hello_timeout,
            max_connections: s.max_connections,
            max_unauthenticated: s.max_unauthenticated,
            max_unauthenticated_per_address: s.max_unauthenticated_per_address,
            max_pipeline: s.max_pipeline,
            max_frames_in_flight: s.max_frames_in_flight,
            max_readings_per_sec: s.max_readings_per_sec,
            reading_times: TimeBounds {
                max_age: s.max_reading_age,
                ..TimeBounds::default()
            },
            revocation_check: s.revocation_check,
            writes: Grouping {
                in_flight: s.write_concurrency,
                max_frames: s.batch_frames,
                linger: s.batch_linger,
            },
        }
    }
}

/// What every connection task shares.
struct Shared {
    writes: WriteQueue,
    auth: Authenticator,
    admission: Arc<Admission>,
    sessions: Arc<Sessions>,
    metrics: Arc<Metrics>,
    limits: Limits,
    /// The tenant's rate limit, shared by every connection.
    rate: RateLimiter,
    /// One permit per unacked frame, over all connections
    /// (`max_frames_in_flight`): a frame is decoded only with one, which
    /// its write holds until it is answered.
    frames: Arc<Semaphore>,
    shutdown: CancellationToken,
    refusal_log: LogSampler,
    welcome_log: LogSampler,
    tls: GatewayTls,
    proxies: TrustedProxies,
}

/// Accepts gateways on `listener` until `shutdown` is cancelled, then waits
/// for every connection to finish its in-flight writes and answers. No
/// front is trusted to send a PROXY header ([`serve_behind`]).
pub async fn serve(
    listener: TcpListener,
    store: Arc<Store>,
    metrics: Arc<Metrics>,
    limits: Limits,
    tls: GatewayTls,
    shutdown: CancellationToken,
) {
    serve_behind(
        listener,
        store,
        metrics,
        limits,
        tls,
        TrustedProxies::none(),
        shutdown,
    )
    .await
}

/// [`serve`], with the fronts in `proxies` trusted to name the gateways
/// they forward in a PROXY protocol v2 header.
pub async fn serve_behind(
    listener: TcpListener,
    store: Arc<Store>,
    metrics: Arc<Metrics>,
    limits: Limits,
    tls: GatewayTls,
    proxies: TrustedProxies,
    shutdown: CancellationToken,
) {
    let writes = WriteQueue::start(store.clone(), metrics.clone(), limits.writes);
    metrics
        .max_connections
        .store(limits.max_connections as u64, Ordering::Relaxed);
    metrics
        .rate_limit
        .store(u64::from(limits.max_readings_per_sec), Ordering::Relaxed);
    let sessions = Sessions::new();
    let book = GatewayBook::new(limits.revocation_check);
    let watcher = tokio::spawn(revocation::watch(
        sessions.clone(),
        book.clone(),
        store.clone(),
        metrics.clone(),
        limits.revocation_check,
        shutdown.clone(),
    ));
    let shared = Arc::new(Shared {
        writes,
        auth: Authenticator::new(store, metrics.clone(), book),
        admission: Admission::new(AdmissionLimits {
            max_authenticated: limits.max_connections,
            max_unauthenticated: limits.max_unauthenticated,
            max_unauthenticated_per_address: limits.max_unauthenticated_per_address,
        }),
        sessions,
        metrics,
        limits,
        rate: RateLimiter::new(limits.max_readings_per_sec),
        frames: Arc::new(Semaphore::new(limits.max_frames_in_flight)),
        shutdown: shutdown.clone(),
        refusal_log: LogSampler::new(REFUSALS_LOGGED_PER_SECOND),
        welcome_log: LogSampler::new(WELCOMES_LOGGED_PER_SECOND),
        tls,
        proxies,
    });
    let tracker = TaskTracker::new();
    loop {
        let accepted = tokio::select! {
            _ = shutdown.cancelled() => break,
            accepted = listener.accept() => accepted,
        };
        match accepted {
            Ok((stream, peer)) => {
                let _ = stream.set_nodelay(true);
                // the hello deadline runs from accept
                let hello_deadline = tokio::time::Instant::now() + shared.limits.hello_timeout;
                let slot = if shared.proxies.trusts(peer.ip()) {
                    // admitted once its header says whom for
                    None
                } else {
                    match shared.admit(peer) {
                        Ok(slot) => Some(slot),
                        Err(why) => {
                            tracker.spawn(refuse(stream, why));
                            continue;
                        }
                    }
                };
                tracker.spawn(serve_connection(
                    stream,
                    peer,
                    shared.clone(),
                    slot,
                    hello_deadline,
                ));
            }
            Err(e) => {
                // e.g. out of file descriptors: back off instead of spinning
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
    drop(listener);
    tracker.close();
    tracing::info!(
        connections = tracker.len(),
        "stopped accepting; finishing in-flight frames"
    );
    tracker.wait().await;
    let _ = watcher.await;
}

impl Shared {
    /// Admits a connection from `peer` as one waiting for its hello, or
    /// counts, logs and returns the refusal's line.
    fn admit(&self, peer: SocketAddr) -> Result<Unauthenticated, String> {
        match self.admission.admit(peer.ip(), Instant::now()) {
            Ok(admitted) => {
                if admitted.evicted_another {
                    Metrics::inc(&self.metrics.connections_evicted);
                }
                Ok(admitted.unauthenticated)
            }
            Err(refused) => {
                self.log_rejection(peer, &refused);
                Err(refused.why)
            }
        }
    }

    /// Counts and (sampled) logs a connection closed for its PROXY header;
    /// `peer` is the socket's.
    fn log_proxy_refusal(&self, peer: SocketAddr, why: ProxyRefusal, error: &str) {
        self.metrics.refuse_proxy(why);
        let reason = why.label();
        if let Some(suppressed) = self.refusal_log.admit(reason, Instant::now()) {
            if why == ProxyRefusal::Untrusted {
                tracing::info!(%peer, reason, suppressed, "PROXY header from an untrusted address refused");
            } else {
                // a trusted front that sends no valid header is misconfigured
                tracing::warn!(%peer, reason, suppressed, error, "connection from a trusted front refused");
            }
        }
    }

    /// Counts and (sampled) logs a connection refused at accept or at log-in.
    fn log_rejection(&self, peer: SocketAddr, refused: &Refused) {
        self.metrics.reject(refused.rejection);
        let reason = refused.rejection.label();
        if let Some(suppressed) = self.refusal_log.admit(reason, Instant::now()) {
            if refused.rejection == Rejection::Cap {
                tracing::warn!(%peer, reason, suppressed, why = %refused.why, "connection refused");
            } else {
                tracing::info!(%peer, reason, suppressed, why = %refused.why, "connection refused");
            }
        }
    }

    /// Counts, remembers (for the address's back-off) and (sampled) logs a
    /// refused hello; returns the close it calls for.
    fn refuse_hello(&self, peer: SocketAddr, gateway: Option<&str>, why: HelloRefusal) -> Close {
        let now = Instant::now();
        Metrics::inc(&self.metrics.auth_failures);
        self.metrics.refuse_hello(why);
        self.admission.hello_failed(peer.ip(), now);
        let reason = why.label();
        if let Some(suppressed) = self.refusal_log.admit(reason, now) {
            tracing::info!(%peer, gateway, reason, suppressed, "hello refused");
        }
        Close {
            code: "auth",
            why: match why {
                HelloRefusal::Timeout => format!(
                    "no hello within {} s of connecting",
                    self.limits.hello_timeout.as_secs()
                ),
                other => other.message().to_owned(),
            },
        }
    }
}

/// The task of one connection: everything before the gateway protocol
/// ([`open`]), then the protocol ([`connection`]). `slot` is the place it
/// was admitted to at accept; a connection from a trusted front has none
/// yet, and is admitted once its PROXY header says whom for.
///
/// Ten thousand gateways connected are ten thousand of these tasks, so
/// what a task holds for as long as it lives is kept small: the opening
/// runs in a future of its own, boxed and gone once it is done, and a TLS
/// connection (whose stream is large) is boxed too. What stays is a plain
/// connection's state.
async fn serve_connection(
    stream: TcpStream,
    peer: SocketAddr,
    shared: Arc<Shared>,
    slot: Option<Unauthenticated>,
    hello_deadline: tokio::time::Instant,
) {
    let opening = open(stream, peer, &shared, slot, hello_deadline);
    let Some(Opened { peer, slot, stream }) = Box::pin(opening).await else {
        return;
    };
    match stream {
        Sorted::Plain(stream) => {
            Metrics::inc(&shared.metrics.connections_plain);
            connection(stream, peer, Transport::Plain, shared, slot, hello_deadline).await;
        }
        Sorted::Tls(stream) => {
            Metrics::inc(&shared.metrics.connections_tls);
            Box::pin(connection(
                stream,
                peer,
                Transport::Tls,
                shared,
                slot,
                hello_deadline,
            ))
            .await;
        }
    }
}

/// A connection ready for the gateway protocol.
struct Opened {
    /// The gateway's address: the socket's, or the one a trusted front's
    /// PROXY header named.
    peer: SocketAddr,
    slot: Unauthenticated,
    stream: Sorted,
}

/// Everything before the gateway protocol, all of it within the hello
/// deadline, which runs from accept: a trusted front's PROXY header read
/// and its gateway admitted ([`front_header`]), then the connection
/// sorted by its first byte, with the TLS handshake when it is TLS
/// ([`sort`]). `None` once the connection is closed, its refusal sent or
/// logged.
async fn open(
    stream: TcpStream,
    peer: SocketAddr,
    shared: &Shared,
    slot: Option<Unauthenticated>,
    hello_deadline: tokio::time::Instant,
) -> Option<Opened> {
    let (stream, peer, slot) = match slot {
        Some(slot) => (stream, peer, slot),
        None => {
            let (stream, gateway) = front_header(stream, peer, shared, hello_deadline).await?;
            match shared.admit(gateway) {
                Ok(slot) => (stream, gateway, slot),
                Err(why) => {
                    refuse(stream, why).await;
                    return None;
                }
            }
        }
    };
    let stream = sort(stream, peer, shared, hello_deadline).await?;
    Some(Opened { peer, slot, stream })
}

/// Reads the PROXY header of a connection from the trusted front `front`
/// within the hello deadline, and returns the address it names (the
/// front's own for `LOCAL`). Without a valid header the connection gets
/// `<error code="protocol">` and closes; the front's address is not
/// admitted or backed off for it.
async fn front_header(
    mut stream: TcpStream,
    front: SocketAddr,
    shared: &Shared,
    hello_deadline: tokio::time::Instant,
) -> Option<(TcpStream, SocketAddr)> {
    let taken = trusted_proxies::take_header(
        &mut stream,
        front,
        hello_deadline,
        shared.limits.hello_timeout,
    );
    let (why, line) = match taken.await {
        FrontConnection::Header { peer, header } => {
            Metrics::inc(&shared.metrics.proxy_headers);
            tracing::debug!(%peer, %front, command = ?header.command, "PROXY header");
            return Some((stream, peer));
        }
        // nothing sent (a front's TCP health check), or a broken socket
        FrontConnection::Gone(e) => {
            tracing::debug!(%front, error = %e, "connection from a trusted front ended before its PROXY header");
            return None;
        }
        FrontConnection::Refused { why, line } => (why, line),
    };
    shared.log_proxy_refusal(front, why, &line);
    close_with(stream, "protocol", &line).await;
    None
}

/// An admitted connection, sorted by its first byte.
enum Sorted {
    Plain(TcpStream),
    Tls(Box<tokio_rustls::server::TlsStream<TcpStream>>),
}

/// Sorts an admitted connection by its first byte (plain or TLS), and
/// shakes hands if it is TLS ([`open`]). When fronts are trusted, a
/// connection that starts with a PROXY header here (from any other
/// address, or a second one behind a front's) is refused first. `None`
/// once it is closed, with its refusal sent (a PROXY header, plain where
/// TLS is required) or logged (a failed handshake).
async fn sort(
    stream: TcpStream,
    peer: SocketAddr,
    shared: &Shared,
    hello_deadline: tokio::time::Instant,
) -> Option<Sorted> {
    if !shared.proxies.is_empty() {
        // A peer silent (or only `\r\n`) until the deadline is no header:
        // the connection code refuses it for its missing hello.
        let proxy = tokio::time::timeout_at(
            hello_deadline,
            trusted_proxies::starts_with_signature(&stream),
        )
        .await;
        if let Ok(Ok(true)) = proxy {
            let why = "PROXY header from an untrusted address";
            shared.log_proxy_refusal(peer, ProxyRefusal::Untrusted, why);
            close_with(stream, "protocol", why).await;
            return None;
        }
    }
    // A peer silent until the deadline is plain: the connection code
    // refuses it for its missing hello.
    let transport = tokio::time::timeout_at(hello_deadline, shared.tls.transport(&stream))
        .await
        .unwrap_or(Ok(Transport::Plain));
    match (transport, shared.tls.acceptor()) {
        (Err(e), _) => {
            tracing::debug!(%peer, error = %e, "read failed");
            None
        }
        (Ok(Transport::Tls), Some(acceptor)) => {
            if let Some(files) = shared.tls.files() {
                files.refresh();
            }
            let handshake = tokio::time::timeout_at(hello_deadline, acceptor.accept(stream)).await;
            match handshake {
                Ok(Ok(tls)) => return Some(Sorted::Tls(Box::new(tls))),
                Ok(Err(e)) => {
                    Metrics::inc(&shared.metrics.tls_handshake_failures);
                    if let Some(suppressed) = shared.refusal_log.admit("tls", Instant::now()) {
                        tracing::info!(%peer, error = %e, suppressed, "TLS handshake failed");
                    }
                }
                Err(_) => {
                    Metrics::inc(&shared.metrics.tls_handshake_failures);
                    if let Some(suppressed) = shared.refusal_log.admit("tls", Instant::now()) {
                        tracing::info!(%peer, suppressed, "TLS handshake not done within the hello deadline");
                    }
                }
            }
            None
        }
        (Ok(_), _) if shared.tls.mode == TlsMode::Required => {
            Metrics::inc(&shared.metrics.plain_refused);
            if let Some(suppressed) = shared.refusal_log.admit("plain", Instant::now()) {
                tracing::info!(%peer, suppressed, "plain connection refused: TLS is required");
            }
            close_with(
                stream,
                "tls",
                "this port takes TLS only: connect with TLS (the provider's CA: `provision gateway ca`)",
            )
            .await;
            None
        }
        (Ok(_), _) => Some(Sorted::Plain(stream)),
    }
}

async fn refuse(stream: TcpStream, why: String) {
    close_with(stream, "busy", &why).await;
}

/// Sends one `<error>` and closes, giving the peer 2 s to take it.
async fn close_with(mut stream: TcpStream, code: &str, why: &str) {
    let mut out = Vec::new();
    protocol::error(&mut out, code, why);
    let _ = tokio::time::timeout(Duration::from_secs(2), async {
        let _ = stream.write_all(&out).await;
        let _ = stream.shutdown().await;
    })
    .await;
}

/// What became of one frame, in frame order.
enum Outcome {
    Ack { seq: i64 },
    Nack { seq: Option<i64>, why: String },
    Failed { seq: i64, why: String },
}

type Pending = FuturesOrdered<Pin<Box<dyn Future<Output = Outcome> + Send>>>;

/// Counts one open thing in a gauge of [`Metrics`] while alive.
struct Gauge {
    metrics: Arc<Metrics>,
    pick: fn(&Metrics) -> &AtomicU64,
}

impl Gauge {
    fn up(metrics: &Arc<Metrics>, pick: fn(&Metrics) -> &AtomicU64) -> Self {
        Metrics::inc(pick(metrics));
        Self {
            metrics: metrics.clone(),
            pick,
        }
    }
}

impl Drop for Gauge {
    fn drop(&mut self) {
        (self.pick)(&self.metrics).fetch_sub(1, Ordering::Relaxed);
    }
}

/// Why a connection ends with an error frame.
struct Close {
    code: &'static str,
    why: String,
}

/// A connection that has not completed its hello.
struct Waiting {
    slot: Unauthenticated,
    _gauge: Gauge,
}

/// A logged-in connection.
struct LoggedIn {
    gateway: Arc<GatewayId>,
    session: SessionGuard,
    _slot: OwnedSemaphorePermit,
    /// Counted in the open connections of its transport.
    _transport: Gauge,
}

/// Waits for `timer`; forever if there is none.
async fn elapsed(timer: Option<&mut Pin<Box<tokio::time::Sleep>>>) {
    match timer {
        Some(timer) => timer.as_mut().await,
        None => std::future::pending().await,
    }
}

/// Waits for `token`'s cancellation; forever if there is none.
async fn cancelled(token: Option<&CancellationToken>) {
    match token {
        Some(token) => token.cancelled().await,
        None => std::future::pending().await,
    }
}

async fn connection<S>(
    stream: S,
    peer: SocketAddr,
    transport: Transport,
    shared: Arc<Shared>,
    slot: Unauthenticated,
    hello_deadline: tokio::time::Instant,
) where
    S: AsyncRead + AsyncWrite + Send + Unpin,
{
    let metrics = shared.metrics.clone();
    Metrics::inc(&metrics.connections_total);
    let _open = Gauge::up(&metrics, |m| &m.connections_open);
    let mut waiting = Some(Waiting {
        slot,
        _gauge: Gauge::up(&metrics, |m| &m.connections_unauthenticated),
    });
    let (mut rd, mut wr) = tokio::io::split(stream);
    let limits = &shared.limits;
    let mut dec = FrameDecoder::new(limits.reading_times);
    let mut read_want = READ_SMALL;
    let mut out: Vec<u8> = Vec::new();
    let mut pending: Pending = FuturesOrdered::new();
    let mut login: Option<LoggedIn> = None;
    let mut eof = false;
    let mut close: Option<Close> = None;
    let mut last_touch: Option<Instant> = None;
    // Timers that not every connection needs for as long as it lives are
    // boxed, and dropped once they are no longer needed: the hello
    // deadline goes at the hello, and the rate limit's wait is there only
    // while it lasts.
    let mut hello_deadline = Some(Box::pin(tokio::time::sleep_until(hello_deadline)));
    let idle = tokio::time::sleep(limits.idle_timeout);
    tokio::pin!(idle);
    // Over the rate limit: nothing more is decoded or read until it ends.
    let mut throttle: Option<Pin<Box<tokio::time::Sleep>>> = None;
    // Every frame of a logged-in connection is decoded with a permit of
    // `shared.frames`; with none left, nothing more is decoded or read
    // until one is given back. A hello needs none: it writes nothing, and
    // a write backlog must not keep gateways from logging in.
    let mut permit: Option<OwnedSemaphorePermit> = None;
    let mut starved = false;

    loop {
        // 1. decode and dispatch every complete frame already received
        let now = Utc::now();
        let mut framed = false;
        while close.is_none() && throttle.is_none() && pending.len() < limits.max_pipeline {
            if permit.is_none() && login.is_some() && dec.pending_bytes() > 0 {
                match shared.frames.clone().try_acquire_owned() {
                    Ok(p) => permit = Some(p),
                    Err(_) => {
                        Metrics::inc(&metrics.frames_held_back);
                        starved = true;
                        break;
                    }
                }
            }
            let frame = match dec.next_frame(now) {
                Ok(Some(frame)) => frame,
                Ok(None) => break,
                Err(e) => {
                    Metrics::inc(&metrics.protocol_errors);
                    let gateway = login.as_ref().map(|l| l.gateway.as_str());
                    tracing::info!(%peer, gateway, error = %e, "protocol error");
                    close = Some(Close {
                        code: "protocol",
                        why: e.to_string(),
                    });
                    break;
                }
            };
            framed = true;
            match (&login, frame) {
                (None, Frame::Hello { gateway: id, token }) => {
                    // Boxed: the token check's driver calls are large
                    // futures, which every connection's task would
                    // otherwise carry for as long as it lives.
                    let checked = hello(&shared, peer, transport, waiting.take(), &id, &token);
                    match Box::pin(checked).await {
                        Ok(logged_in) => {
                            out.extend_from_slice(protocol::welcome());
                            login = Some(logged_in);
                            hello_deadline = None;
                        }
                        Err(c) => close = Some(c),
                    }
                }
                (None, _) => {
                    close = Some(shared.refuse_hello(peer, None, HelloRefusal::NotHello));
                }
                (Some(_), Frame::Hello { .. }) => {
                    pending.push_back(ready(Outcome::Nack {
                        seq: None,
                        why: "hello was already accepted on this connection".into(),
                    }));
                }
                (Some(_), Frame::Bad { seq, why }) => {
                    pending.push_back(ready(Outcome::Nack { seq, why }));
                }
                (Some(l), Frame::Data(frame)) => {
                    Metrics::inc(&metrics.frames);
                    let touch = last_touch.is_none_or(|t| t.elapsed() >= TOUCH_INTERVAL);
                    if touch {
                        last_touch = Some(Instant::now());
                    }
                    let readings = frame.readings.len() as u64;
                    let held = permit.take();
                    pending.push_back(write(shared.clone(), l.gateway.clone(), frame, touch, held));
                    let at = tokio::time::Instant::now();
                    let wait = shared.rate.take(readings, at);
                    if !wait.is_zero() {
                        metrics.rate_limited(wait);
                        throttle = Some(Box::pin(tokio::time::sleep_until(at + wait)));
                    }
                }
            }
        }
        if !starved {
            // an idle connection holds no permit
            permit = None;
        }
        if framed {
            idle.as_mut()
                .reset(tokio::time::Instant::now() + limits.idle_timeout);
        }

        // 2. send what is ready; end once nothing is in flight
        if !out.is_empty() {
            if send(&mut wr, &out, limits.idle_timeout).await.is_err() {
                return;
            }
            out.clear();
        }
        // (frames still buffered behind a throttle are taken in after it)
        if pending.is_empty() && (close.is_some() || (eof && throttle.is_none())) {
            break;
        }

        // 3. wait for an outcome, more bytes, a deadline, a revocation or
        // shutdown
        let can_read = !eof
            && close.is_none()
            && throttle.is_none()
            && !starved
            && pending.len() < limits.max_pipeline;
        let buffer = dec.buffer();
        // Quiet (nothing buffered, the last read short): the connection
        // holds no buffer while it waits, and the first byte that comes is
        // read alone ([`read_some`]).
        let parked = buffer.is_empty() && read_want == READ_SMALL;
        if parked {
            if buffer.capacity() > 0 {
                *buffer = Vec::new();
            }
        } else if buffer.capacity() - buffer.len() < read_want / 4 {
            buffer.reserve(read_want);
        }
        let spare = buffer.capacity() - buffer.len();
        tokio::select! {
            biased;
            // a logged-in connection's gateway revoked, or one owing its
            // hello evicted by a newer one
            _ = cancelled(
                login
                    .as_ref()
                    .map(|l| l.session.revoked())
                    .or(waiting.as_ref().map(|w| w.slot.evicted())),
            ), if close.is_none() => {
                if login.is_some() {
                    close = Some(Close {
                        code: "auth",
                        why: "token revoked".into(),
                    });
                    // nothing may be acked after the revocation is noticed
                    pending = FuturesOrdered::new();
                } else {
                    close = Some(Close {
                        code: "busy",
                        why: "too many connections without a hello; reconnect and say hello at once".into(),
                    });
                }
            }
            Some(outcome) = pending.next(), if !pending.is_empty() => {
                let mut next = Some(outcome);
                while let Some(outcome) = next.take() {
                    if let Some(c) = answer(&metrics, &mut out, outcome) {
                        let gateway = login.as_ref().map(|l| l.gateway.as_str());
                        tracing::warn!(%peer, gateway, why = %c.why, "write failed; closing connection");
                        close = Some(c);
                        // nothing after a failed frame may be acked
                        pending = FuturesOrdered::new();
                        break;
                    }
                    if !pending.is_empty() {
                        next = pending.next().now_or_never().flatten();
                    }
                }
                idle.as_mut().reset(tokio::time::Instant::now() + limits.idle_timeout);
            }
            granted = shared.frames.clone().acquire_owned(), if starved => {
                permit = granted.ok();
                starved = false;
            }
            _ = elapsed(throttle.as_mut()), if throttle.is_some() => {
                throttle = None;
                // the wait was ours, not the gateway's idleness
                idle.as_mut().reset(tokio::time::Instant::now() + limits.idle_timeout);
            }
            _ = elapsed(hello_deadline.as_mut()), if login.is_none() && close.is_none() => {
                close = Some(shared.refuse_hello(peer, None, HelloRefusal::Timeout));
            }
            read = read_some(&mut rd, &mut dec, parked), if can_read => {
                match read {
                    Ok(0) => eof = true,
                    Ok(_) if parked => {}
                    Ok(n) => {
                        read_want = match n {
                            n if n >= spare => (read_want * 2).min(READ_CHUNK),
                            n if n < READ_SMALL => READ_SMALL,
                            _ => read_want,
                        };
                    }
                    Err(e) => {
                        tracing::debug!(%peer, error = %e, "read failed");
                        return;
                    }
                }
            }
            _ = &mut idle, if can_read && pending.is_empty() => {
                Metrics::inc(&metrics.idle_timeouts);
                close = Some(Close {
                    code: "idle",
                    why: format!("no frame for {} s", limits.idle_timeout.as_secs()),
                });
            }
            _ = shared.shutdown.cancelled(), if close.is_none() => {
                close = Some(Close {
                    code: "shutdown",
                    why: "ingest is shutting down; reconnect and resend unacked frames".into(),
                });
            }
        }
    }
    if let Some(c) = close {
        protocol::error(&mut out, c.code, &c.why);
        let _ = send(&mut wr, &out, Duration::from_secs(2)).await;
    }
    let _ = tokio::time::timeout(Duration::from_secs(2), wr.shutdown()).await;
}

/// Reads what comes into `dec`'s buffer. `parked` (the buffer empty and
/// freed): one byte alone, then a buffer of [`READ_SMALL`] for it and the
/// rest of its frame, so that a quiet connection holds one byte, not a
/// buffer, while it waits (ten thousand gateways reading every 10 s spend
/// nearly all their time waiting).
async fn read_some<R: AsyncRead + Unpin>(
    rd: &mut R,
    dec: &mut FrameDecoder,
    parked: bool,
) -> std::io::Result<usize> {
    if !parked {
        return rd.read_buf(dec.buffer()).await;
    }
    let mut byte = [0u8; 1];
    let n = rd.read(&mut byte).await?;
    if n > 0 {
        let buffer = dec.buffer();
        buffer.reserve(READ_SMALL);
        buffer.push(byte[0]);
    }
    Ok(n)
}

/// Checks a hello and, if it is good, trades the connection's slot among
/// those waiting for a hello for a logged-in one.
async fn hello(
    shared: &Shared,
    peer: SocketAddr,
    transport: Transport,
    waiting: Option<Waiting>,
    id: &str,
    token: &str,
) -> Result<LoggedIn, Close> {
    let Some(waiting) = waiting else {
        // only the first hello is checked; the loop stops at its outcome
        return Err(Close {
            code: "auth",
            why: "hello was already checked on this connection".into(),
        });
    };
    waiting.slot.hello_received();
    match shared.auth.check(id, token).await {
        Ok(Login {
            gateway,
            token_hash,
        }) => match waiting.slot.log_in() {
            Ok(slot) => {
                let gateway = Arc::new(gateway);
                let session = shared.sessions.register(gateway.clone(), token_hash);
                if let Some(suppressed) = shared.welcome_log.admit("welcome", Instant::now()) {
                    tracing::info!(%peer, gateway = %gateway, suppressed, "gateway connected");
                }
                let pick: fn(&Metrics) -> &AtomicU64 = match transport {
                    Transport::Plain => |m| &m.logged_in_plain,
                    Transport::Tls => |m| &m.logged_in_tls,
                };
                Ok(LoggedIn {
                    gateway,
                    session,
                    _slot: slot,
                    _transport: Gauge::up(&shared.metrics, pick),
                })
            }
            Err(refused) => {
                shared.log_rejection(peer, &refused);
                Err(Close {
                    code: "busy",
                    why: refused.why,
                })
            }
        },
        Err(HelloError::Refused(why)) => Err(shared.refuse_hello(peer, Some(id), why)),
        Err(HelloError::Unavailable(e)) => {
            if let Some(suppressed) = shared.refusal_log.admit("unavailable", Instant::now()) {
                tracing::warn!(%peer, gateway = id, error = %e, suppressed, "cannot check hello");
            }
            Err(Close {
                code: "unavailable",
                why: "cannot check the token now; retry later".into(),
            })
        }
    }
}

fn ready(outcome: Outcome) -> Pin<Box<dyn Future<Output = Outcome> + Send>> {
    Box::pin(std::future::ready(outcome))
}

fn write(
    shared: Arc<Shared>,
    gateway: Arc<GatewayId>,
    frame: DataFrame,
    touch: bool,
    permit: Option<OwnedSemaphorePermit>,
) -> Pin<Box<dyn Future<Output = Outcome> + Send>> {
    Box::pin(async move {
        // given back once the frame is answered
        let _permit = permit;
        let started = Instant::now();
        let (seq, readings, values) = (
            frame.seq,
            frame.readings.len() as u64,
            frame.value_count() as u64,
        );
        match shared.writes.write(gateway, frame, touch).await {
            Ok(()) => {
                let m = &shared.metrics;
                m.observe_write(started.elapsed());
                Metrics::add(&m.readings, readings);
                Metrics::add(&m.values, values);
                Outcome::Ack { seq }
            }
            Err(e) => Outcome::Failed {
                seq,
                why: e.to_string(),
            },
        }
    })
}

/// Encodes one outcome; a failed write returns the close it calls for.
fn answer(metrics: &Metrics, out: &mut Vec<u8>, outcome: Outcome) -> Option<Close> {
    match outcome {
        Outcome::Ack { seq } => {
            Metrics::inc(&metrics.acks);
            protocol::ack(out, seq);
            None
        }
        Outcome::Nack { seq, why } => {
            Metrics::inc(&metrics.nacks);
            protocol::nack(out, seq, &why);
            None
        }
        Outcome::Failed { seq, why } => {
            Metrics::inc(&metrics.write_errors);
            Some(Close {
                code: "unavailable",
                why: format!("frame {seq} was not written ({why}); resend it"),
            })
        }
    }
}

async fn send(
    wr: &mut (impl AsyncWrite + Unpin),
    bytes: &[u8],
    timeout: Duration,
) -> Result<(), ()> {
    match tokio::time::timeout(timeout, wr.write_all(bytes)).await {
        Ok(Ok(())) => Ok(()),
        _ => Err(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The size of the future an async fn of five arguments returns.
    fn future_size<F, A, B, C, D, E, Fut>(_: F) -> usize
    where
        F: FnOnce(A, B, C, D, E) -> Fut,
    {
        std::mem::size_of::<Fut>()
    }

    /// Every connected gateway holds one task for as long as it is
    /// connected: ten thousand of them are ten thousand of these futures.
    /// It was 3,064 bytes (3,480 behind a front) while the opening was
    /// part of it, before the opening was boxed (BENCHMARKS.md, "Ingest's
    /// memory by logged-in connections").
    #[test]
    fn a_connection_task_stays_small() {
        let task = future_size(serve_connection);
        assert!(
            task <= 1536,
            "a connection's task is {task} bytes: box what it does not hold for its whole life"
        );
    }
}
