//! The gateway TCP server: an accept loop that caps connections, and one
//! task per connection that authenticates the hello, then decodes frames,
//! hands them to the write queue (which writes them concurrently, frames
//! of many connections together) and sends the answers strictly in frame
//! order.
//!
//! Rules kept here:
//! - an ack is sent only after [`WriteQueue::write`] succeeded;
//! - answers (ack and nack) leave in the order the frames arrived, because
//!   each frame's outcome is queued in a `FuturesOrdered`;
//! - after a failed write nothing more is acked on that connection: it gets
//!   `<error code="unavailable">` and closes, so the gateway resends every
//!   unacked frame on a new connection (writes are idempotent);
//! - unrecoverable framing gets `<error code="protocol">` once the frames
//!   before it are answered, then the connection closes;
//! - on shutdown (SIGTERM) reading stops, in-flight writes finish and are
//!   acked, then `<error code="shutdown">` and close.
//!
//! Error codes sent: `auth`, `protocol` (DESIGN.md), and `busy` (connection
//! cap), `idle` (idle timeout), `unavailable` (Cassandra failed), `shutdown`.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::stream::{FuturesOrdered, StreamExt};
use futures::FutureExt;
use tenant_schema::model::{gateway_token_matches, GatewayId};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::OwnedWriteHalf;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::metrics::Metrics;
use crate::protocol::{self, DataFrame, Frame, FrameDecoder};
use crate::store::Store;
use crate::write_queue::{Grouping, WriteQueue};

/// How often `last_seen` is written per connection, at most.
pub const TOUCH_INTERVAL: Duration = Duration::from_secs(1);
/// How many bytes a read asks for at once.
const READ_CHUNK: usize = 16 * 1024;

/// The limits of one server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub idle_timeout: Duration,
    pub max_connections: usize,
    pub max_pipeline: usize,
    /// How frames are grouped into requests to Cassandra.
    pub writes: Grouping,
}

impl From<&crate::settings::Settings> for Limits {
    fn from(s: &crate::settings::Settings) -> Self {
        Self {
            idle_timeout: s.idle_timeout,
            max_connections: s.max_connections,
            max_pipeline: s.max_pipeline,
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
    store: Arc<Store>,
    writes: WriteQueue,
    metrics: Arc<Metrics>,
    limits: Limits,
    shutdown: CancellationToken,
}

/// Accepts gateways on `listener` until `shutdown` is cancelled, then waits
/// for every connection to finish its in-flight writes and answers.
pub async fn serve(
    listener: TcpListener,
    store: Arc<Store>,
    metrics: Arc<Metrics>,
    limits: Limits,
    shutdown: CancellationToken,
) {
    let writes = WriteQueue::start(store.clone(), metrics.clone(), limits.writes);
    let shared = Arc::new(Shared {
        store,
        writes,
        metrics,
        limits,
        shutdown: shutdown.clone(),
    });
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let tracker = TaskTracker::new();
    loop {
        let accepted = tokio::select! {
            _ = shutdown.cancelled() => break,
            accepted = listener.accept() => accepted,
        };
        match accepted {
            Ok((stream, peer)) => {
                let _ = stream.set_nodelay(true);
                match slots.clone().try_acquire_owned() {
                    Ok(slot) => {
                        tracker.spawn(connection(stream, peer, shared.clone(), slot));
                    }
                    Err(_) => {
                        Metrics::inc(&shared.metrics.connections_rejected);
                        tracing::warn!(%peer, cap = limits.max_connections, "connection refused: cap reached");
                        tracker.spawn(refuse(stream, limits.max_connections));
                    }
                }
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
}

async fn refuse(mut stream: TcpStream, cap: usize) {
    let mut out = Vec::new();
    protocol::error(
        &mut out,
        "busy",
        &format!("too many connections (cap {cap})"),
    );
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

struct OpenGuard(Arc<Metrics>);

impl Drop for OpenGuard {
    fn drop(&mut self) {
        self.0
            .connections_open
            .fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
    }
}

/// Why a connection ends with an error frame.
struct Close {
    code: &'static str,
    why: String,
}

async fn connection(
    stream: TcpStream,
    peer: SocketAddr,
    shared: Arc<Shared>,
    _slot: OwnedSemaphorePermit,
) {
    let metrics = shared.metrics.clone();
    Metrics::inc(&metrics.connections_total);
    Metrics::inc(&metrics.connections_open);
    let _open = OpenGuard(metrics.clone());
    let (mut rd, mut wr) = stream.into_split();
    let limits = shared.limits;
    let mut dec = FrameDecoder::new();
    let mut out: Vec<u8> = Vec::new();
    let mut pending: Pending = FuturesOrdered::new();
    let mut gateway: Option<Arc<GatewayId>> = None;
    let mut eof = false;
    let mut close: Option<Close> = None;
    let mut last_touch: Option<Instant> = None;
    let idle = tokio::time::sleep(limits.idle_timeout);
    tokio::pin!(idle);

    loop {
        // 1. decode and dispatch every complete frame already received
        while close.is_none() && pending.len() < limits.max_pipeline {
            let frame = match dec.next_frame() {
                Ok(Some(frame)) => frame,
                Ok(None) => break,
                Err(e) => {
                    Metrics::inc(&metrics.protocol_errors);
                    tracing::info!(%peer, gateway = gateway.as_deref().map(GatewayId::as_str), error = %e, "protocol error");
                    close = Some(Close {
                        code: "protocol",
                        why: e.to_string(),
                    });
                    break;
                }
            };
            match (&gateway, frame) {
                (None, Frame::Hello { gateway: id, token }) => {
                    match authenticate(&shared, &id, &token).await {
                        Ok(gw) => {
                            tracing::debug!(%peer, gateway = %gw, "gateway connected");
                            out.extend_from_slice(protocol::welcome());
                            gateway = Some(Arc::new(gw));
                        }
                        Err(c) => close = Some(c),
                    }
                }
                (None, _) => {
                    Metrics::inc(&metrics.auth_failures);
                    close = Some(Close {
                        code: "auth",
                        why: "the first frame must be a hello".into(),
                    });
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
                (Some(gw), Frame::Data(frame)) => {
                    Metrics::inc(&metrics.frames);
                    let touch = last_touch.is_none_or(|t| t.elapsed() >= TOUCH_INTERVAL);
                    if touch {
                        last_touch = Some(Instant::now());
                    }
                    pending.push_back(write(shared.clone(), gw.clone(), frame, touch));
                }
            }
        }

        // 2. send what is ready; end once nothing is in flight
        if !out.is_empty() {
            if send(&mut wr, &out, limits.idle_timeout).await.is_err() {
                return;
            }
            out.clear();
        }
        if pending.is_empty() && (close.is_some() || eof) {
            break;
        }

        // 3. wait for an outcome, more bytes, idleness or shutdown
        let can_read = !eof && close.is_none() && pending.len() < limits.max_pipeline;
        if dec.buffer().capacity() - dec.buffer().len() < READ_CHUNK / 4 {
            dec.buffer().reserve(READ_CHUNK);
        }
        tokio::select! {
            biased;
            Some(outcome) = pending.next(), if !pending.is_empty() => {
                let mut next = Some(outcome);
                while let Some(outcome) = next.take() {
                    if let Some(c) = answer(&metrics, &mut out, outcome) {
                        tracing::warn!(%peer, gateway = gateway.as_deref().map(GatewayId::as_str), why = %c.why, "write failed; closing connection");
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
            read = rd.read_buf(dec.buffer()), if can_read => {
                match read {
                    Ok(0) => eof = true,
                    Ok(_) => idle.as_mut().reset(tokio::time::Instant::now() + limits.idle_timeout),
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

fn ready(outcome: Outcome) -> Pin<Box<dyn Future<Output = Outcome> + Send>> {
    Box::pin(std::future::ready(outcome))
}

fn write(
    shared: Arc<Shared>,
    gateway: Arc<GatewayId>,
    frame: DataFrame,
    touch: bool,
) -> Pin<Box<dyn Future<Output = Outcome> + Send>> {
    Box::pin(async move {
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

async fn send(wr: &mut OwnedWriteHalf, bytes: &[u8], timeout: Duration) -> Result<(), ()> {
    match tokio::time::timeout(timeout, wr.write_all(bytes)).await {
        Ok(Ok(())) => Ok(()),
        _ => Err(()),
    }
}

/// Checks a hello against the `gateways` table.
async fn authenticate(shared: &Shared, id: &str, token: &str) -> Result<GatewayId, Close> {
    let refuse = |why: &str| {
        Metrics::inc(&shared.metrics.auth_failures);
        tracing::info!(gateway = id, why, "hello refused");
        Close {
            code: "auth",
            why: why.to_owned(),
        }
    };
    let Ok(gateway) = GatewayId::parse(id) else {
        return Err(refuse("invalid gateway id"));
    };
    if token.is_empty() {
        return Err(refuse("hello has no token"));
    }
    let record = match shared.store.gateway(&gateway).await {
        Ok(record) => record,
        Err(e) => {
            tracing::warn!(gateway = %gateway, error = %e, "cannot check hello");
            return Err(Close {
                code: "unavailable",
                why: "cannot check the token now; retry later".into(),
            });
        }
    };
    match record {
        Some(r)
            if r.token_hash
                .as_deref()
                .is_some_and(|h| gateway_token_matches(token, h)) =>
        {
            if r.revoked {
                Err(refuse("gateway token revoked"))
            } else {
                Ok(gateway)
            }
        }
        _ => Err(refuse("unknown gateway or wrong token")),
    }
}
