//! Gateways that behave as real ones do when things break: each streams
//! readings at its rate, buffers what it measured while it cannot reach
//! ingest, reconnects by itself with a growing pause when its connection
//! fails or is refused, and then resends, in order, every frame not acked
//! yet. A resent frame carries the same seq and the same reading time, and
//! ingest writes a reading under its own time, so a frame written before
//! its ack was lost is the same row again.
//!
//! Every ack is recorded as an [`Ack`] (gateway, seq, reading time, when
//! it came), in the report and, if asked, as a line of a file, so that a
//! check afterwards can look every acked reading up in Cassandra. A
//! [`Progress`] shared with the caller tells, while the run goes on, when
//! each gateway last got an ack: a fault injector waits on it for the
//! tenants to accept readings again.

use std::collections::{BTreeMap, VecDeque};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{DateTime, SecondsFormat, TimeDelta, Utc};
use tokio::io::AsyncWriteExt;
use tokio::sync::mpsc;

use crate::answer::Answer;
use crate::client::{ClientError, Connector, FrameWriter, Gateway};
use crate::frames::{self, SimValue};

/// What to stream, and how to behave when it breaks.
#[derive(Debug, Clone)]
pub struct ResilientConfig {
    /// The ingest gateway port, `host:port`.
    pub addr: String,
    pub connector: Connector,
    /// `(gateway id, token)` of every gateway.
    pub gateways: Vec<(String, String)>,
    /// Readings per second per gateway, one per frame: more than 0 and at
    /// most 1000 (readings a millisecond apart at least, so each is a row
    /// of its own).
    pub rate: f64,
    /// How long new readings are measured.
    pub duration: Duration,
    /// Unacked frames on a connection at most.
    pub window: usize,
    /// The pause before the first reconnect; it doubles up to `max_backoff`
    /// and starts again after an ack.
    pub first_backoff: Duration,
    pub max_backoff: Duration,
    /// After `duration`, how long a gateway keeps trying to have every
    /// frame it made acked.
    pub drain_timeout: Duration,
    /// Appends one line per ack ([`Ack::line`]) to this file.
    pub acked_file: Option<PathBuf>,
    /// Where to connect now, if it can change during the run (a tenant
    /// whose ingest moved to another Swarm node, as a DNS name re-pointed
    /// would): read at every (re)connect instead of `addr`.
    pub endpoint: Option<Endpoint>,
}

/// An address that others may change while gateways run.
#[derive(Debug, Clone, Default)]
pub struct Endpoint(Arc<Mutex<String>>);

impl Endpoint {
    pub fn new(addr: &str) -> Endpoint {
        Endpoint(Arc::new(Mutex::new(addr.to_owned())))
    }

    pub fn get(&self) -> String {
        self.0.lock().expect("not poisoned").clone()
    }

    pub fn set(&self, addr: &str) {
        *self.0.lock().expect("not poisoned") = addr.to_owned();
    }
}

impl ResilientConfig {
    /// A configuration with the usual pauses (0.1 s doubling to 5 s) and
    /// window (32), 120 s to drain, no file.
    pub fn new(addr: &str, gateways: Vec<(String, String)>, rate: f64, duration: Duration) -> Self {
        Self {
            addr: addr.to_owned(),
            connector: Connector::Plain,
            gateways,
            rate,
            duration,
            window: 32,
            first_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(5),
            drain_timeout: Duration::from_secs(120),
            acked_file: None,
            endpoint: None,
        }
    }

    /// Why this cannot run, if it cannot.
    pub fn check(&self) -> Result<(), String> {
        if !(self.rate > 0.0 && self.rate <= 1000.0) {
            return Err(format!(
                "the rate must be more than 0 and at most 1000 readings/s per gateway, not {}",
                self.rate
            ));
        }
        if self.gateways.is_empty() || self.window == 0 {
            return Err("at least one gateway and a window of at least 1".into());
        }
        Ok(())
    }
}

/// One acked reading.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ack {
    pub gateway: String,
    pub seq: i64,
    /// The reading's time (its row's `ts`, to the millisecond).
    pub ts: DateTime<Utc>,
    /// When the ack came.
    pub at: DateTime<Utc>,
}

impl Ack {
    /// `<gateway> <seq> <ts> <at>`, times in RFC 3339 with milliseconds.
    pub fn line(&self) -> String {
        format!(
            "{} {} {} {}",
            self.gateway,
            self.seq,
            self.ts.to_rfc3339_opts(SecondsFormat::Millis, true),
            self.at.to_rfc3339_opts(SecondsFormat::Millis, true)
        )
    }

    /// Reads back a [`Ack::line`].
    pub fn parse(line: &str) -> Result<Ack, String> {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let [gateway, seq, ts, at] = fields[..] else {
            return Err(format!("not an acked-reading line: {line:?}"));
        };
        let time = |s: &str| {
            DateTime::parse_from_rfc3339(s)
                .map(|t| t.with_timezone(&Utc))
                .map_err(|e| format!("bad time {s:?} in {line:?}: {e}"))
        };
        Ok(Ack {
            gateway: gateway.to_owned(),
            seq: seq
                .parse()
                .map_err(|e| format!("bad seq {seq:?} in {line:?}: {e}"))?,
            ts: time(ts)?,
            at: time(at)?,
        })
    }
}

/// Shared with the caller while the run goes on: when each gateway (by its
/// index in [`ResilientConfig::gateways`]) last got an ack.
#[derive(Debug, Default)]
pub struct Progress {
    last_ack: Mutex<Vec<Option<Instant>>>,
    /// Set by [`Progress::stop_making`]: no reading is made after it.
    stop_at: Mutex<Option<Instant>>,
}

impl Progress {
    pub fn new(gateways: usize) -> Arc<Progress> {
        Arc::new(Progress {
            last_ack: Mutex::new(vec![None; gateways]),
            stop_at: Mutex::new(None),
        })
    }

    /// Ends the run early: no more readings are made from now on, and the
    /// gateways go on until what they made is acked (or the drain timeout).
    pub fn stop_making(&self) {
        let mut stop = self.stop_at.lock().unwrap_or_else(|e| e.into_inner());
        stop.get_or_insert_with(Instant::now);
    }

    fn stop_at(&self) -> Option<Instant> {
        *self.stop_at.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn acked(&self, gateway: usize) {
        if let Some(slot) = self.lock().get_mut(gateway) {
            *slot = Some(Instant::now());
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Option<Instant>>> {
        self.last_ack.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// When gateway `index` last got an ack.
    pub fn last_ack(&self, index: usize) -> Option<Instant> {
        self.lock().get(index).copied().flatten()
    }

    /// Whether every gateway of `indices` got an ack after `since`.
    pub fn all_acked_since(
        &self,
        indices: impl IntoIterator<Item = usize>,
        since: Instant,
    ) -> bool {
        let last = self.lock();
        indices
            .into_iter()
            .all(|i| last.get(i).copied().flatten().is_some_and(|t| t > since))
    }
}

/// What one gateway went through.
#[derive(Debug, Clone, Default)]
pub struct GatewayOutcome {
    pub gateway: String,
    /// Readings measured (frames made).
    pub made: u64,
    /// Of them, acked.
    pub acked: u64,
    /// Nacked (a bug here: every frame is valid).
    pub nacked: u64,
    /// Frames sent again on a new connection.
    pub resent: u64,
    /// Connections after the first.
    pub reconnects: u32,
    /// Made but not acked when the gateway gave up.
    pub unacked: u64,
    /// Why connections ended or failed, with how often.
    pub breaks: BTreeMap<String, u32>,
    /// Things that must not happen (an ack out of order, a nack).
    pub violations: Vec<String>,
}

/// The whole run.
#[derive(Debug, Clone, Default)]
pub struct ResilientReport {
    pub gateways: Vec<GatewayOutcome>,
    /// Every ack, by gateway in order of arrival.
    pub acks: Vec<Ack>,
    /// An error writing the acked file, if one happened.
    pub file_error: Option<String>,
}

impl ResilientReport {
    pub fn acked(&self) -> u64 {
        self.gateways.iter().map(|g| g.acked).sum()
    }

    pub fn unacked(&self) -> u64 {
        self.gateways.iter().map(|g| g.unacked).sum()
    }

    pub fn reconnects(&self) -> u64 {
        self.gateways.iter().map(|g| u64::from(g.reconnects)).sum()
    }

    /// A few lines for people.
    pub fn render(&self) -> String {
        let made: u64 = self.gateways.iter().map(|g| g.made).sum();
        let resent: u64 = self.gateways.iter().map(|g| g.resent).sum();
        let nacked: u64 = self.gateways.iter().map(|g| g.nacked).sum();
        let mut out = format!(
            "gateways: {}  readings made: {made}  acked: {}  unacked at the end: {}  nacked: {nacked}  resent: {resent}  reconnects: {}\n",
            self.gateways.len(),
            self.acked(),
            self.unacked(),
            self.reconnects(),
        );
        let mut breaks: BTreeMap<&str, u32> = BTreeMap::new();
        for g in &self.gateways {
            for (why, n) in &g.breaks {
                *breaks.entry(why).or_default() += n;
            }
        }
        for (why, n) in breaks {
            out.push_str(&format!("  {n} × {why}\n"));
        }
        for g in &self.gateways {
            for v in &g.violations {
                out.push_str(&format!("violation: {}: {v}\n", g.gateway));
            }
        }
        if let Some(e) = &self.file_error {
            out.push_str(&format!("error: acked file: {e}\n"));
        }
        out
    }
}

/// Runs every gateway until its readings are made and acked (or it gives
/// up), and reports.
pub async fn run(cfg: ResilientConfig, progress: Arc<Progress>) -> ResilientReport {
    let cfg = Arc::new(cfg);
    let (ack_tx, ack_rx) = mpsc::unbounded_channel::<Ack>();
    let collector = tokio::spawn(collect_acks(ack_rx, cfg.acked_file.clone()));
    let started_at = Utc::now();
    let started = Instant::now();
    let tasks: Vec<_> = cfg
        .gateways
        .iter()
        .enumerate()
        .map(|(index, (id, token))| {
            let one = OneGateway {
                cfg: cfg.clone(),
                index,
                id: id.clone(),
                token: token.clone(),
                started,
                started_at,
                progress: progress.clone(),
                acks: ack_tx.clone(),
            };
            tokio::spawn(one.run())
        })
        .collect();
    drop(ack_tx);
    let mut report = ResilientReport::default();
    for (task, (id, _)) in tasks.into_iter().zip(cfg.gateways.iter()) {
        report
            .gateways
            .push(task.await.unwrap_or_else(|e| GatewayOutcome {
                gateway: id.clone(),
                violations: vec![format!("the gateway's task failed: {e}")],
                ..GatewayOutcome::default()
            }));
    }
    match collector.await {
        Ok((acks, file_error)) => {
            report.acks = acks;
            report.file_error = file_error;
        }
        Err(e) => report.file_error = Some(format!("the collector failed: {e}")),
    }
    report
}

async fn collect_acks(
    mut rx: mpsc::UnboundedReceiver<Ack>,
    file: Option<PathBuf>,
) -> (Vec<Ack>, Option<String>) {
    let mut acks = Vec::new();
    let mut error = None;
    let mut out = match &file {
        Some(path) => match tokio::fs::File::create(path).await {
            Ok(f) => Some(tokio::io::BufWriter::new(f)),
            Err(e) => {
                error = Some(format!("{}: {e}", path.display()));
                None
            }
        },
        None => None,
    };
    while let Some(ack) = rx.recv().await {
        if let Some(w) = out.as_mut() {
            let line = ack.line() + "\n";
            if let Err(e) = w.write_all(line.as_bytes()).await {
                error = Some(e.to_string());
                out = None;
            }
        }
        acks.push(ack);
    }
    if let Some(mut w) = out {
        if let Err(e) = w.flush().await {
            error = Some(e.to_string());
        }
    }
    (acks, error)
}

/// A frame made and not acked yet.
struct Pending {
    seq: i64,
    ts: DateTime<Utc>,
    frame: String,
    /// Sent on an earlier connection already.
    sent_before: bool,
}

struct OneGateway {
    cfg: Arc<ResilientConfig>,
    index: usize,
    id: String,
    token: String,
    started: Instant,
    started_at: DateTime<Utc>,
    progress: Arc<Progress>,
    acks: mpsc::UnboundedSender<Ack>,
}

/// Why a connection's session ended.
enum SessionEnd {
    /// Every frame made is acked and no more will be made.
    Done,
    /// The connection broke (the reason, for the report).
    Broke(String),
}

impl OneGateway {
    /// Where to connect now.
    fn addr(&self) -> String {
        match &self.cfg.endpoint {
            Some(e) => e.get(),
            None => self.cfg.addr.clone(),
        }
    }

    fn period(&self) -> Duration {
        Duration::from_secs_f64(1.0 / self.cfg.rate)
    }

    /// When the last reading is made: the end of the duration, or when
    /// the caller stopped the run.
    fn making_until(&self) -> Instant {
        let end = self.started + self.cfg.duration;
        self.progress.stop_at().map_or(end, |stop| stop.min(end))
    }

    /// Readings due by now, over the whole run.
    fn due_by_now(&self) -> u64 {
        let now = Instant::now().min(self.making_until());
        let elapsed = now.saturating_duration_since(self.started);
        (elapsed.as_secs_f64() * self.cfg.rate).floor() as u64 + 1
    }

    fn making(&self) -> bool {
        Instant::now() < self.making_until()
    }

    /// Makes every reading due by now: reading `seq` was measured at
    /// `seq / rate` after the start, to the millisecond.
    fn make_due(&self, made: &mut u64, pending: &mut VecDeque<Pending>) {
        let due = self.due_by_now();
        while *made < due {
            let seq = *made as i64;
            let ms = (seq as f64 * 1000.0 / self.cfg.rate).round() as i64;
            let ts = self.started_at + TimeDelta::milliseconds(ms);
            let value = SimValue::new("power", "W", ((seq * 7) % 5000) as f64 / 4.0);
            let frame = frames::reading(seq, ts, "sensor-0", &[value]);
            // `frames::timestamp` keeps milliseconds: the row's ts is this
            let ts = DateTime::from_timestamp_millis(ts.timestamp_millis()).unwrap_or(ts);
            pending.push_back(Pending {
                seq,
                ts,
                frame,
                sent_before: false,
            });
            *made += 1;
        }
    }

    async fn run(self) -> GatewayOutcome {
        let mut outcome = GatewayOutcome {
            gateway: self.id.clone(),
            ..GatewayOutcome::default()
        };
        let mut pending: VecDeque<Pending> = VecDeque::new();
        let mut backoff = self.cfg.first_backoff;
        let mut connections = 0u32;
        loop {
            self.make_due(&mut outcome.made, &mut pending);
            let give_up = self.making_until() + self.cfg.drain_timeout;
            if (!self.making() && pending.is_empty()) || Instant::now() >= give_up {
                break;
            }
            let login = tokio::time::timeout(
                Duration::from_secs(10),
                Gateway::login_with(&self.addr(), &self.cfg.connector, &self.id, &self.token),
            )
            .await;
            let why = match login {
                Ok(Ok(gw)) => {
                    connections += 1;
                    if connections > 1 {
                        outcome.reconnects += 1;
                    }
                    match self
                        .session(gw, &mut pending, &mut outcome, &mut backoff)
                        .await
                    {
                        SessionEnd::Done => break,
                        SessionEnd::Broke(why) => why,
                    }
                }
                Ok(Err(e)) => format!("connect: {}", reason(&e)),
                Err(_) => "connect: no welcome within 10 s".to_owned(),
            };
            *outcome.breaks.entry(why).or_default() += 1;
            // Readings go on being measured while the gateway waits.
            let wake = (Instant::now() + backoff).min(give_up);
            tokio::time::sleep_until(wake.into()).await;
            backoff = (backoff * 2).min(self.cfg.max_backoff);
        }
        outcome.unacked = pending.len() as u64;
        outcome
    }

    /// One connection: resends what is pending, streams what comes due,
    /// and takes the acks, until it breaks or everything is acked.
    async fn session(
        &self,
        gw: Gateway,
        pending: &mut VecDeque<Pending>,
        outcome: &mut GatewayOutcome,
        backoff: &mut Duration,
    ) -> SessionEnd {
        let (mut answers, mut out) = gw.split();
        // Answers are read by a task of their own, so that waiting for one
        // never loses half a line when the next reading comes due.
        let (answer_tx, mut answer_rx) = mpsc::channel(64);
        let reader = tokio::spawn(async move {
            loop {
                let answer = answers.next().await;
                let last = !matches!(answer, Ok(Some(_)));
                if answer_tx.send(answer).await.is_err() || last {
                    break;
                }
            }
        });
        let mut sent = 0usize; // of `pending`, from its front, on this connection
                               // An answer must come within this of a frame sent or answered.
        let answer_timeout = Duration::from_secs(30);
        let mut waiting_since = Instant::now();
        let end = loop {
            let give_up = self.making_until() + self.cfg.drain_timeout;
            self.make_due(&mut outcome.made, pending);
            if !self.making() && pending.is_empty() {
                break SessionEnd::Done;
            }
            if Instant::now() >= give_up {
                break SessionEnd::Broke("gave up: the drain timeout passed".into());
            }
            let idle = sent == 0;
            match self.send_window(&mut out, pending, &mut sent).await {
                Ok(resent) => outcome.resent += resent,
                Err(e) => break SessionEnd::Broke(format!("send: {}", reason(&e))),
            }
            if idle && sent > 0 {
                waiting_since = Instant::now();
            }
            let next_due = (self.started + self.period().mul_f64(outcome.made as f64))
                .min(self.making_until());
            tokio::select! {
                answer = answer_rx.recv() => match answer {
                    Some(Ok(Some(Answer::Ack { seq }))) => {
                        let Some(front) = pending.front() else {
                            outcome.violations.push(format!("ack for seq {seq} with nothing in flight"));
                            break SessionEnd::Broke("protocol: an ack with nothing in flight".into());
                        };
                        if front.seq != seq || sent == 0 {
                            outcome.violations.push(format!("ack for seq {seq}, expected {}", front.seq));
                            break SessionEnd::Broke("protocol: an ack out of order".into());
                        }
                        let done = pending.pop_front().expect("front exists");
                        sent -= 1;
                        waiting_since = Instant::now();
                        outcome.acked += 1;
                        *backoff = self.cfg.first_backoff;
                        self.progress.acked(self.index);
                        let _ = self.acks.send(Ack {
                            gateway: self.id.clone(),
                            seq: done.seq,
                            ts: done.ts,
                            at: Utc::now(),
                        });
                    }
                    Some(Ok(Some(Answer::Nack { seq, code, why }))) => {
                        outcome.violations.push(format!("nack for seq {seq:?} ({code}: {why})"));
                        if sent > 0 && pending.front().map(|p| Some(p.seq)) == Some(seq) {
                            pending.pop_front();
                            sent -= 1;
                            outcome.nacked += 1;
                        } else {
                            break SessionEnd::Broke("protocol: a nack out of order".into());
                        }
                    }
                    Some(Ok(Some(Answer::Error { code, .. }))) => {
                        break SessionEnd::Broke(format!("<error code=\"{code}\">"));
                    }
                    Some(Ok(Some(Answer::Welcome))) => {
                        outcome.violations.push("a second welcome".into());
                        break SessionEnd::Broke("protocol: a second welcome".into());
                    }
                    Some(Ok(None)) | None => break SessionEnd::Broke("closed by ingest".into()),
                    Some(Err(e)) => break SessionEnd::Broke(reason(&e)),
                },
                _ = tokio::time::sleep_until(next_due.into()), if self.making() => {}
                _ = tokio::time::sleep_until((waiting_since + answer_timeout).into()), if sent > 0 => {
                    break SessionEnd::Broke(format!("no answer within {answer_timeout:?}"));
                }
            }
        };
        reader.abort();
        if matches!(end, SessionEnd::Done) {
            let _ = out.finish().await;
        }
        end
    }

    /// Sends pending frames not sent on this connection yet, while the
    /// window allows; returns how many of them were sent before.
    async fn send_window(
        &self,
        out: &mut FrameWriter,
        pending: &mut VecDeque<Pending>,
        sent: &mut usize,
    ) -> Result<u64, ClientError> {
        let mut resent = 0;
        while *sent < pending.len() && *sent < self.cfg.window {
            let timeout = Duration::from_secs(30);
            let frame = &mut pending[*sent];
            tokio::time::timeout(timeout, out.send(frame.frame.as_bytes()))
                .await
                .map_err(|_| ClientError::Timeout(timeout))??;
            if frame.sent_before {
                resent += 1;
            }
            frame.sent_before = true;
            *sent += 1;
        }
        Ok(resent)
    }
}

/// A short, stable reason for a report (no addresses or numbers that
/// would make every break its own line).
fn reason(e: &ClientError) -> String {
    match e {
        ClientError::Connect { source, .. } => format!("{:?}", source.kind()),
        ClientError::Io(io) => format!("{:?}", io.kind()),
        ClientError::Refused(Answer::Error { code, .. }) => format!("refused ({code})"),
        ClientError::Refused(other) => format!("refused ({other:?})"),
        ClientError::Timeout(d) => format!("no answer within {d:?}"),
        ClientError::Closed => "closed by ingest".into(),
        ClientError::Tls { source, .. } => format!("TLS: {source}"),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_ack_line_reads_back() {
        let ack = Ack {
            gateway: "gw-3".into(),
            seq: 42,
            ts: DateTime::from_timestamp_millis(1_764_000_000_123).unwrap(),
            at: DateTime::from_timestamp_millis(1_764_000_000_456).unwrap(),
        };
        assert_eq!(
            ack.line(),
            "gw-3 42 2025-11-24T16:00:00.123Z 2025-11-24T16:00:00.456Z"
        );
        assert_eq!(Ack::parse(&ack.line()).unwrap(), ack);
        assert!(Ack::parse("gw-3 42").is_err());
        assert!(Ack::parse("gw-3 x 2025-11-24T16:00:00.123Z 2025-11-24T16:00:00.456Z").is_err());
    }

    #[test]
    fn rates_outside_one_row_per_millisecond_are_refused() {
        let gws = vec![("gw-0".to_owned(), "t".to_owned())];
        for rate in [0.0, -1.0, 1000.5, f64::NAN] {
            let cfg =
                ResilientConfig::new("127.0.0.1:1", gws.clone(), rate, Duration::from_secs(1));
            assert!(cfg.check().is_err(), "{rate}");
        }
        let cfg = ResilientConfig::new("127.0.0.1:1", gws, 1000.0, Duration::from_secs(1));
        assert!(cfg.check().is_ok());
    }

    #[tokio::test]
    async fn readings_are_due_at_the_rate_with_distinct_millisecond_times() {
        let gws = vec![("gw-0".to_owned(), "t".to_owned())];
        let cfg = Arc::new(ResilientConfig::new(
            "127.0.0.1:1",
            gws,
            1000.0,
            Duration::from_millis(50),
        ));
        let (acks, _rx) = mpsc::unbounded_channel();
        let one = OneGateway {
            cfg,
            index: 0,
            id: "gw-0".into(),
            token: "t".into(),
            started: Instant::now() - Duration::from_millis(60),
            started_at: Utc::now(),
            progress: Progress::new(1),
            acks,
        };
        let (mut made, mut pending) = (0, VecDeque::new());
        one.make_due(&mut made, &mut pending);
        // the run lasts 50 ms: readings 0..=50 are due, each its own ms
        assert_eq!(made, 51);
        let times: std::collections::BTreeSet<_> = pending.iter().map(|p| p.ts).collect();
        assert_eq!(times.len(), 51);
        assert!(pending[7].frame.contains("seq=\"7\""));
        one.make_due(&mut made, &mut pending);
        assert_eq!(made, 51, "nothing more once the run is over");
    }
}
