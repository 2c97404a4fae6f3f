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
//!
//! Pacing ([`Schedule`]): a gateway makes one reading per interval
//! (`1 / rate`; `gateway-sim --interval 10s` is rate 0.1) on a fixed
//! schedule. With [`ResilientConfig::random_phase`] its first reading comes
//! at a random point of the first interval, so that a fleet does not send
//! in the same millisecond; with [`ResilientConfig::jitter`] `j` every later
//! reading comes up to `j` × interval before or after its place on the fixed
//! schedule, drawn for each reading on its own, so deviations never add up
//! (no drift). Both are drawn from the gateway's id and
//! [`ResilientConfig::seed`]: a run is the same again. A reading's time is
//! when it was due, readings of a gateway stay at least 1 ms apart (the
//! jitter narrows at rates above 800/s), and its ack latency counts from
//! then: a reading resent after an outage counts the outage.
//!
//! Logins: every gateway logs in as soon as the run starts. With
//! [`ResilientConfig::login_at_once`] each first opens its connection
//! (TCP, and TLS), waits at a barrier for all the others, and then all send
//! their hello together: the reconnect storm ingest sees after a restart.
//! [`Progress`] tells when each gateway last logged in, so a caller can
//! time how long a fleet takes to be back after a fault.
//!
//! Source addresses: a real fleet connects from thousands of addresses,
//! and ingest caps the connections without a hello per source address.
//! With [`ResilientConfig::source_addrs`] gateway `i` binds its socket to
//! address `i mod n` of the list before it connects (the addresses must be
//! the host's own: secondary addresses of an interface, or 127.0.0.0/8);
//! [`parse_source_addrs`] reads `10.0.0.1-10.0.0.64`, `10.0.0.0/26` or a
//! comma-separated list of either.
//!
//! A fleet of 10,000 gateways fits one process: a gateway is one task (no
//! thread, no reader task: [`crate::client::AnswerReader::next`] is cancel
//! safe), has a 1 KiB read buffer, and sleeps until its next reading, an
//! answer or a timeout, however slow its rate. It needs one file
//! descriptor per connection: `ulimit -n` of at least the gateways + 100
//! (a connect failing with EMFILE is reported as such, and said once on
//! stderr). Set [`ResilientConfig::keep_acks`] to false for long runs that
//! need no [`ResilientReport::acks`] in memory (the acked file still gets
//! every one).
//!
//! The report adds to the counts the logins (and failed attempts), how long
//! after the start every gateway had logged in, the longest a gateway spent
//! disconnected (from losing a connection to the next welcome), and the ack
//! latency p50/p99/max.

use std::collections::{BTreeMap, VecDeque};
use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, Once};
use std::time::{Duration, Instant};

use chrono::{DateTime, SecondsFormat, TimeDelta, Utc};
use tokio::io::AsyncWriteExt;
use tokio::sync::{mpsc, Barrier};

use crate::answer::Answer;
use crate::client::{ClientError, Connector, FrameWriter, Gateway};
use crate::frames::{self, SimValue};
use crate::sim::nearest_rank;

/// The fewest readings per second per gateway: one a day.
pub const MIN_RATE: f64 = 1.0 / 86_400.0;
/// The most readings per second per gateway: one a millisecond, so each
/// is a row of its own.
pub const MAX_RATE: f64 = 1000.0;
/// How long a login (connection, TLS, hello and welcome) may take.
const LOGIN_TIMEOUT: Duration = Duration::from_secs(10);

/// What to stream, and how to behave when it breaks.
#[derive(Debug, Clone)]
pub struct ResilientConfig {
    /// The ingest gateway port, `host:port`.
    pub addr: String,
    pub connector: Connector,
    /// `(gateway id, token)` of every gateway.
    pub gateways: Vec<(String, String)>,
    /// Readings per second per gateway, one per frame: from [`MIN_RATE`]
    /// (one a day; 0.1 is one every 10 s) to [`MAX_RATE`] (readings a
    /// millisecond apart at least, so each is a row of its own).
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
    /// How far a reading may come from its place on the fixed schedule,
    /// as a fraction of the interval, either way: 0 to 0.5 ([`Schedule`]).
    pub jitter: f64,
    /// The first reading at a random point of the first interval instead
    /// of at the start.
    pub random_phase: bool,
    /// Every gateway opens its first connection, then all say hello at the
    /// same moment (a barrier), instead of each saying hello as soon as its
    /// connection is open.
    pub login_at_once: bool,
    /// Mixed with each gateway's id to draw its phase and jitter.
    pub seed: u64,
    /// Keeps every ack in [`ResilientReport::acks`] (the acked file, if
    /// any, gets them either way).
    pub keep_acks: bool,
    /// The local addresses the gateways connect from, round-robin by
    /// their index (gateway `i` from `source_addrs[i % len]`); empty: the
    /// address the route gives, for all of them.
    pub source_addrs: Vec<IpAddr>,
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
    /// window (32), 120 s to drain, no file; readings exactly on the fixed
    /// schedule from the start (no phase, no jitter), logins as they come,
    /// every ack kept.
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
            jitter: 0.0,
            random_phase: false,
            login_at_once: false,
            seed: 0,
            keep_acks: true,
            source_addrs: Vec::new(),
        }
    }

    /// Why this cannot run, if it cannot.
    pub fn check(&self) -> Result<(), String> {
        if !(self.rate >= MIN_RATE && self.rate <= MAX_RATE) {
            return Err(format!(
                "the rate must be from one reading a day ({MIN_RATE:e}, an interval of 24h) \
                 to 1000 readings/s per gateway (an interval of 1ms), not {}",
                self.rate
            ));
        }
        if !(0.0..=0.5).contains(&self.jitter) {
            return Err(format!(
                "the jitter must be from 0 to 0.5 (of the interval), not {}",
                self.jitter
            ));
        }
        if self.gateways.is_empty() || self.window == 0 {
            return Err("at least one gateway and a window of at least 1".into());
        }
        Ok(())
    }

    /// The schedule of gateway `id`.
    pub fn schedule(&self, id: &str) -> Schedule {
        Schedule::new(
            self.rate,
            self.jitter,
            self.random_phase,
            gateway_seed(self.seed, id),
        )
    }
}

/// The most source addresses [`parse_source_addrs`] gives.
pub const MAX_SOURCE_ADDRS: usize = 65_536;

/// Parses a list of IPv4 source addresses: comma-separated items, each an
/// address (`10.0.0.7`), an inclusive range (`10.0.0.1-10.0.0.64`), or a
/// block (`10.0.0.0/26`: its addresses without the network and broadcast
/// ones when the block has more than two; a /32 is its one address), in
/// the order given; at most [`MAX_SOURCE_ADDRS`].
pub fn parse_source_addrs(text: &str) -> Result<Vec<IpAddr>, String> {
    let addr = |t: &str| {
        t.trim()
            .parse::<Ipv4Addr>()
            .map_err(|_| format!("{t:?} is not an IPv4 address"))
    };
    let mut out: Vec<IpAddr> = Vec::new();
    for item in text.split(',').map(str::trim).filter(|i| !i.is_empty()) {
        let (first, last) = if let Some((a, b)) = item.split_once('-') {
            let (a, b) = (u32::from(addr(a)?), u32::from(addr(b)?));
            if a > b {
                return Err(format!(
                    "{item:?}: the range's first address is after its last"
                ));
            }
            (a, b)
        } else if let Some((a, bits)) = item.split_once('/') {
            let bits: u32 = bits
                .trim()
                .parse()
                .ok()
                .filter(|b| *b <= 32)
                .ok_or_else(|| format!("{item:?}: the prefix length must be 0 to 32"))?;
            let mask = if bits == 0 {
                0
            } else {
                u32::MAX << (32 - bits)
            };
            let network = u32::from(addr(a)?) & mask;
            let broadcast = network | !mask;
            if bits >= 31 {
                (network, broadcast)
            } else {
                (network + 1, broadcast - 1)
            }
        } else {
            let a = u32::from(addr(item)?);
            (a, a)
        };
        if (last - first) as usize + out.len() >= MAX_SOURCE_ADDRS {
            return Err(format!("more than {MAX_SOURCE_ADDRS} source addresses"));
        }
        out.extend((first..=last).map(|a| IpAddr::V4(Ipv4Addr::from(a))));
    }
    if out.is_empty() {
        return Err("no source address given".into());
    }
    Ok(out)
}

/// Parses an interval: a number and a unit, `ms`, `s`, `m` or `h` (`10s`,
/// `1.5s`, `500ms`, `2m`), more than zero.
pub fn parse_interval(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let bad =
        || format!("{text:?} is not an interval: a number and a unit, ms, s, m or h (10s, 500ms)");
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: f64 = number.parse().map_err(|_| bad())?;
    let unit_secs = match unit.trim_start() {
        "ms" => 1e-3,
        "s" => 1.0,
        "m" | "min" => 60.0,
        "h" => 3600.0,
        _ => return Err(bad()),
    };
    let interval = Duration::try_from_secs_f64(number * unit_secs).map_err(|_| bad())?;
    if interval.is_zero() {
        return Err(format!("the interval must be more than 0, not {text:?}"));
    }
    Ok(interval)
}

/// Readings of one gateway are at least this far apart (nanoseconds), so
/// that each has a millisecond of its own.
const MIN_GAP_NS: u64 = 1_000_000;

/// When one gateway's readings are due, in nanoseconds after the start of
/// the run. The fixed schedule puts reading `seq` at `phase + seq ×
/// interval`; reading 0 comes at the phase (random within the first
/// interval, or 0), and every later one up to `amplitude` before or after
/// its place, drawn from the seed and `seq` alone: deviations do not add
/// up, and reading 1000 is as close to its place as reading 1.
///
/// The amplitude is `jitter × interval`, narrowed if needed so that
/// readings stay [`MIN_GAP_NS`] apart (at rates above 800/s for a jitter
/// of 0.1): they stay in order, each in its own millisecond.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Schedule {
    period_ns: u64,
    phase_ns: u64,
    amplitude_ns: u64,
    seed: u64,
}

impl Schedule {
    /// The schedule for `rate` readings a second, `jitter` (0 to 0.5) of the
    /// interval either way, a random first reading if `random_phase`.
    pub fn new(rate: f64, jitter: f64, random_phase: bool, seed: u64) -> Schedule {
        // `as` saturates (and makes NaN 0): a bad rate still gives a schedule
        let period_ns = ((1e9 / rate).round() as u64).max(1);
        let wanted = (jitter.clamp(0.0, 0.5) * period_ns as f64).floor() as u64;
        let amplitude_ns = wanted.min(period_ns.saturating_sub(MIN_GAP_NS) / 2);
        let phase_ns = if random_phase {
            mix(seed ^ 0x7068_6173_6521) % period_ns
        } else {
            0
        };
        Schedule {
            period_ns,
            phase_ns,
            amplitude_ns,
            seed,
        }
    }

    /// The fixed interval between readings.
    pub fn interval(&self) -> Duration {
        Duration::from_nanos(self.period_ns)
    }

    /// When reading 0 is due.
    pub fn phase(&self) -> Duration {
        Duration::from_nanos(self.phase_ns)
    }

    /// How far a reading may come from its place on the fixed schedule.
    pub fn amplitude(&self) -> Duration {
        Duration::from_nanos(self.amplitude_ns)
    }

    /// Reading `seq`'s place on the fixed schedule (ns after the start).
    pub fn fixed_ns(&self, seq: u64) -> u64 {
        self.phase_ns
            .saturating_add(seq.saturating_mul(self.period_ns))
    }

    /// When reading `seq` is due (ns after the start).
    pub fn due_ns(&self, seq: u64) -> u64 {
        let fixed = self.fixed_ns(seq);
        if seq == 0 || self.amplitude_ns == 0 {
            return fixed;
        }
        let span = 2 * self.amplitude_ns + 1;
        // for seq ≥ 1, fixed ≥ period ≥ 2 × amplitude: no underflow
        fixed - self.amplitude_ns + mix(self.seed ^ mix(seq)) % span
    }

    /// When reading `seq` is due, after the start.
    pub fn due(&self, seq: u64) -> Duration {
        Duration::from_nanos(self.due_ns(seq))
    }
}

/// splitmix64's finalizer: a well-mixed 64-bit hash of `z`.
fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The seed of gateway `id`: its id (FNV-1a) mixed with the run's seed, so
/// gateways differ, and so do those of two processes (`--first`).
fn gateway_seed(seed: u64, id: &str) -> u64 {
    let fnv = id.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    });
    mix(fnv ^ mix(seed))
}

/// The soft and hard limits on open files of this process (`u64::MAX`
/// for unlimited), from `/proc/self/limits`; `None` where there is none.
pub fn open_files_limit() -> Option<(u64, u64)> {
    parse_open_files_limit(&std::fs::read_to_string("/proc/self/limits").ok()?)
}

/// The `Max open files` line of a `/proc/<pid>/limits`.
fn parse_open_files_limit(limits: &str) -> Option<(u64, u64)> {
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    let mut fields = line["Max open files".len()..].split_whitespace();
    let mut limit = || match fields.next()? {
        "unlimited" => Some(u64::MAX),
        n => n.parse().ok(),
    };
    Some((limit()?, limit()?))
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
    /// When each gateway last got a welcome.
    last_login: Mutex<Vec<Option<Instant>>>,
    /// The caller's measuring window and the ack latencies in it.
    window: Mutex<Window>,
    /// Set by [`Progress::stop_making`]: no reading is made after it.
    stop_at: Mutex<Option<Instant>>,
}

impl Progress {
    pub fn new(gateways: usize) -> Arc<Progress> {
        Arc::new(Progress {
            last_ack: Mutex::new(vec![None; gateways]),
            last_login: Mutex::new(vec![None; gateways]),
            window: Mutex::new(Window::default()),
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

    /// Starts a measuring window at `from` (forgetting an earlier one's
    /// latencies): from now on the ack latencies of readings due at or
    /// after `from` (and before [`Progress::measure_until`], if set) are
    /// kept for [`Progress::measured`], beside the run's own.
    pub fn measure_from(&self, from: Instant) {
        *self.window.lock().unwrap_or_else(|e| e.into_inner()) = Window {
            from: Some(from),
            ..Window::default()
        };
    }

    /// Ends the measuring window: readings due from `until` on are not kept.
    pub fn measure_until(&self, until: Instant) {
        self.window.lock().unwrap_or_else(|e| e.into_inner()).until = Some(until);
    }

    /// The ack latencies (µs, sorted) of the readings due in the measuring
    /// window that were acked so far.
    pub fn measured(&self) -> Vec<u64> {
        let mut v = self
            .window
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .latencies_us
            .clone();
        v.sort_unstable();
        v
    }

    fn record_latency(&self, due: Instant, latency_us: u64) {
        let mut w = self.window.lock().unwrap_or_else(|e| e.into_inner());
        if w.from.is_some_and(|f| due >= f) && w.until.is_none_or(|u| due < u) {
            w.latencies_us.push(latency_us);
        }
    }

    fn logged_in(&self, gateway: usize) {
        let mut last = self.last_login.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(slot) = last.get_mut(gateway) {
            *slot = Some(Instant::now());
        }
    }

    /// When gateway `index` last got a welcome.
    pub fn last_login(&self, index: usize) -> Option<Instant> {
        let last = self.last_login.lock().unwrap_or_else(|e| e.into_inner());
        last.get(index).copied().flatten()
    }

    /// How many gateways got a welcome after `since`, and when the last of
    /// them got it.
    pub fn logged_in_since(&self, since: Instant) -> (usize, Option<Instant>) {
        let last = self.last_login.lock().unwrap_or_else(|e| e.into_inner());
        last.iter()
            .flatten()
            .filter(|t| **t > since)
            .fold((0, None), |(n, latest), t| {
                (n + 1, Some(latest.map_or(*t, |l: Instant| l.max(*t))))
            })
    }

    /// How many gateways got an ack after `since`.
    pub fn acked_since(&self, since: Instant) -> usize {
        self.lock().iter().flatten().filter(|t| **t > since).count()
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

/// A measuring window of [`Progress`].
#[derive(Debug, Default)]
struct Window {
    from: Option<Instant>,
    until: Option<Instant>,
    latencies_us: Vec<u64>,
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
    /// Logins that got a welcome (the first connection and the reconnects).
    pub logins: u32,
    /// Login attempts that failed (no connection, refused, no welcome).
    pub failed_logins: u32,
    /// How long after the start of the run the first welcome came.
    pub first_login: Option<Duration>,
    /// The longest the gateway was without a connection after having one:
    /// from losing it to the next welcome (or to its end, if none came).
    pub longest_disconnected: Option<Duration>,
}

impl GatewayOutcome {
    /// Notes a time without a connection, from `since` until now.
    fn disconnected_since(&mut self, since: Instant) {
        let d = since.elapsed();
        self.longest_disconnected = Some(self.longest_disconnected.map_or(d, |l| l.max(d)));
    }
}

/// The whole run.
#[derive(Debug, Clone, Default)]
pub struct ResilientReport {
    pub gateways: Vec<GatewayOutcome>,
    /// Every ack, by gateway in order of arrival (none if
    /// [`ResilientConfig::keep_acks`] is false).
    pub acks: Vec<Ack>,
    /// An error writing the acked file, if one happened.
    pub file_error: Option<String>,
    /// Ack latency of every acked reading, from when it was due, in
    /// microseconds, sorted.
    pub latencies_us: Vec<u64>,
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

    /// Logins that got a welcome, over every gateway.
    pub fn logins(&self) -> u64 {
        self.gateways.iter().map(|g| u64::from(g.logins)).sum()
    }

    /// Login attempts that failed, over every gateway.
    pub fn failed_logins(&self) -> u64 {
        self.gateways
            .iter()
            .map(|g| u64::from(g.failed_logins))
            .sum()
    }

    /// How long after the start every gateway had logged in; `None` if
    /// one never did.
    pub fn all_logged_in(&self) -> Option<Duration> {
        self.gateways
            .iter()
            .try_fold(Duration::ZERO, |max, g| Some(max.max(g.first_login?)))
    }

    /// The longest a gateway was disconnected after having a connection,
    /// and which gateway; `None` if no gateway lost one.
    pub fn longest_disconnected(&self) -> Option<(Duration, &str)> {
        self.gateways
            .iter()
            .filter_map(|g| Some((g.longest_disconnected?, g.gateway.as_str())))
            .max_by_key(|(d, _)| *d)
    }

    /// The `q` quantile (0..=1) of ack latency.
    pub fn latency(&self, q: f64) -> Duration {
        nearest_rank(&self.latencies_us, q)
    }

    pub fn max_latency(&self) -> Duration {
        Duration::from_micros(self.latencies_us.last().copied().unwrap_or(0))
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
        out.push_str(&format!(
            "logins: {} ok, {} failed  ",
            self.logins(),
            self.failed_logins()
        ));
        match self.all_logged_in() {
            Some(d) => out.push_str(&format!(
                "every gateway logged in after: {:.2} s\n",
                d.as_secs_f64()
            )),
            None => out.push_str(&format!(
                "never logged in: {} of {} gateways\n",
                self.gateways
                    .iter()
                    .filter(|g| g.first_login.is_none())
                    .count(),
                self.gateways.len()
            )),
        }
        let ms = |d: Duration| d.as_secs_f64() * 1e3;
        out.push_str(&format!(
            "ack latency: p50 {:.2} ms  p99 {:.2} ms  max {:.2} ms (from when each reading was due)\n",
            ms(self.latency(0.50)),
            ms(self.latency(0.99)),
            ms(self.max_latency()),
        ));
        if let Some((d, gateway)) = self.longest_disconnected() {
            out.push_str(&format!(
                "longest disconnected: {:.2} s ({gateway})\n",
                d.as_secs_f64()
            ));
        }
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
    let collector = tokio::spawn(collect_acks(ack_rx, cfg.acked_file.clone(), cfg.keep_acks));
    let started_at = Utc::now();
    let started = Instant::now();
    let barrier = cfg
        .login_at_once
        .then(|| Arc::new(Barrier::new(cfg.gateways.len())));
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
                schedule: cfg.schedule(id),
                started,
                started_at,
                progress: progress.clone(),
                acks: ack_tx.clone(),
                barrier: barrier.clone(),
            };
            tokio::spawn(one.run())
        })
        .collect();
    drop(ack_tx);
    drop(barrier);
    let mut report = ResilientReport::default();
    for (task, (id, _)) in tasks.into_iter().zip(cfg.gateways.iter()) {
        let (outcome, latencies_us) = task.await.unwrap_or_else(|e| {
            let failed = GatewayOutcome {
                gateway: id.clone(),
                violations: vec![format!("the gateway's task failed: {e}")],
                ..GatewayOutcome::default()
            };
            (failed, Vec::new())
        });
        report.gateways.push(outcome);
        report.latencies_us.extend(latencies_us);
    }
    report.latencies_us.sort_unstable();
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
    keep: bool,
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
        if keep {
            acks.push(ack);
        }
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
    schedule: Schedule,
    started: Instant,
    started_at: DateTime<Utc>,
    progress: Arc<Progress>,
    acks: mpsc::UnboundedSender<Ack>,
    /// With `login_at_once`: where the first login waits for all others.
    barrier: Option<Arc<Barrier>>,
}

/// Why a connection's session ended.
enum SessionEnd {
    /// Every frame made is acked and no more will be made.
    Done,
    /// The connection broke (the reason, for the report).
    Broke(String),
}

impl OneGateway {
    /// The local address this gateway connects from, if the run gives any.
    fn source(&self) -> Option<IpAddr> {
        let sources = &self.cfg.source_addrs;
        (!sources.is_empty()).then(|| sources[self.index % sources.len()])
    }

    /// Where to connect now.
    fn addr(&self) -> String {
        match &self.cfg.endpoint {
            Some(e) => e.get(),
            None => self.cfg.addr.clone(),
        }
    }

    /// When reading `seq` is due.
    fn due(&self, seq: u64) -> Instant {
        self.started + self.schedule.due(seq)
    }

    /// When the last reading is made: the end of the duration, or when
    /// the caller stopped the run.
    fn making_until(&self) -> Instant {
        let end = self.started + self.cfg.duration;
        self.progress.stop_at().map_or(end, |stop| stop.min(end))
    }

    fn making(&self) -> bool {
        Instant::now() < self.making_until()
    }

    /// Makes every reading due by now (and by the end of making): reading
    /// `seq` was measured when the schedule had it due, to the millisecond.
    fn make_due(&self, made: &mut u64, pending: &mut VecDeque<Pending>) {
        let now = Instant::now().min(self.making_until());
        let elapsed = now.saturating_duration_since(self.started);
        let elapsed_ns = u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX);
        while self.schedule.due_ns(*made) <= elapsed_ns {
            let seq = *made as i64;
            let due_ns = self.schedule.due_ns(*made);
            let ts = self.started_at + TimeDelta::nanoseconds(due_ns as i64);
            // `frames::timestamp` keeps milliseconds: the row's ts is this
            let ts = DateTime::from_timestamp_millis(ts.timestamp_millis()).unwrap_or(ts);
            let value = SimValue::new("power", "W", ((seq * 7) % 5000) as f64 / 4.0);
            let frame = frames::reading(seq, ts, "sensor-0", &[value]);
            pending.push_back(Pending {
                seq,
                ts,
                frame,
                sent_before: false,
            });
            *made += 1;
        }
    }

    /// Connects and says hello; the reason for the report if it failed.
    /// With a barrier (the first login with `login_at_once`), the hello
    /// waits until every gateway has its connection open (or failed to).
    async fn login(&self, barrier: Option<Arc<Barrier>>) -> Result<Gateway, String> {
        let addr = self.addr();
        let connector = &self.cfg.connector;
        let source = self.source();
        let Some(barrier) = barrier else {
            let login = async {
                let mut gw = Gateway::connect_with_from(&addr, connector, source).await?;
                match gw.hello(&self.id, &self.token).await? {
                    Answer::Welcome => Ok(gw),
                    other => Err(ClientError::Refused(other)),
                }
            };
            return match tokio::time::timeout(LOGIN_TIMEOUT, login).await {
                Ok(Ok(gw)) => Ok(gw),
                Ok(Err(e)) => Err(format!("connect: {}", reason(&e))),
                Err(_) => Err(format!("connect: no welcome within {LOGIN_TIMEOUT:?}")),
            };
        };
        let open = tokio::time::timeout(
            LOGIN_TIMEOUT,
            Gateway::connect_with_from(&addr, connector, source),
        )
        .await;
        barrier.wait().await;
        let mut gw = match open {
            Ok(Ok(gw)) => gw,
            Ok(Err(e)) => return Err(format!("connect: {}", reason(&e))),
            Err(_) => return Err(format!("connect: no connection within {LOGIN_TIMEOUT:?}")),
        };
        match tokio::time::timeout(LOGIN_TIMEOUT, gw.hello(&self.id, &self.token)).await {
            Ok(Ok(Answer::Welcome)) => Ok(gw),
            Ok(Ok(other)) => Err(format!("connect: {}", reason(&ClientError::Refused(other)))),
            Ok(Err(e)) => Err(format!("connect: {}", reason(&e))),
            Err(_) => Err(format!("connect: no welcome within {LOGIN_TIMEOUT:?}")),
        }
    }

    /// Runs the gateway to its end; its ack latencies (µs) beside.
    async fn run(self) -> (GatewayOutcome, Vec<u64>) {
        let mut outcome = GatewayOutcome {
            gateway: self.id.clone(),
            ..GatewayOutcome::default()
        };
        let mut latencies_us = Vec::new();
        let mut pending: VecDeque<Pending> = VecDeque::new();
        let mut backoff = self.cfg.first_backoff;
        let mut barrier = self.barrier.clone();
        // When the connection was lost, while it is.
        let mut lost_at: Option<Instant> = None;
        loop {
            self.make_due(&mut outcome.made, &mut pending);
            let give_up = self.making_until() + self.cfg.drain_timeout;
            if (!self.making() && pending.is_empty()) || Instant::now() >= give_up {
                break;
            }
            let why = match self.login(barrier.take()).await {
                Ok(gw) => {
                    outcome.logins += 1;
                    self.progress.logged_in(self.index);
                    if outcome.logins > 1 {
                        outcome.reconnects += 1;
                    }
                    outcome
                        .first_login
                        .get_or_insert_with(|| self.started.elapsed());
                    if let Some(since) = lost_at.take() {
                        outcome.disconnected_since(since);
                    }
                    match self
                        .session(
                            gw,
                            &mut pending,
                            &mut outcome,
                            &mut latencies_us,
                            &mut backoff,
                        )
                        .await
                    {
                        SessionEnd::Done => break,
                        SessionEnd::Broke(why) => {
                            lost_at = Some(Instant::now());
                            why
                        }
                    }
                }
                Err(why) => {
                    outcome.failed_logins += 1;
                    why
                }
            };
            *outcome.breaks.entry(why).or_default() += 1;
            // Readings go on being measured while the gateway waits.
            let wake = (Instant::now() + backoff).min(give_up);
            tokio::time::sleep_until(wake.into()).await;
            backoff = (backoff * 2).min(self.cfg.max_backoff);
        }
        // Never at the barrier (nothing to make): others must not wait.
        if let Some(barrier) = barrier.take() {
            barrier.wait().await;
        }
        if let Some(since) = lost_at {
            outcome.disconnected_since(since);
        }
        outcome.unacked = pending.len() as u64;
        (outcome, latencies_us)
    }

    /// One connection: resends what is pending, streams what comes due,
    /// and takes the acks, until it breaks or everything is acked.
    async fn session(
        &self,
        gw: Gateway,
        pending: &mut VecDeque<Pending>,
        outcome: &mut GatewayOutcome,
        latencies_us: &mut Vec<u64>,
        backoff: &mut Duration,
    ) -> SessionEnd {
        // Answers are read in the `select!` below: `next` is cancel safe, so
        // a reading coming due never loses half an answer.
        let (mut answers, mut out) = gw.split();
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
            // `make_due` made everything due by now: this is later
            let next_due = self.due(outcome.made).min(self.making_until());
            tokio::select! {
                answer = answers.next() => match answer {
                    Ok(Some(Answer::Ack { seq })) => {
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
                        let now = Instant::now();
                        waiting_since = now;
                        outcome.acked += 1;
                        let due = self.due(done.seq as u64);
                        let latency = now.saturating_duration_since(due);
                        let latency_us = u64::try_from(latency.as_micros()).unwrap_or(u64::MAX);
                        latencies_us.push(latency_us);
                        self.progress.record_latency(due, latency_us);
                        *backoff = self.cfg.first_backoff;
                        self.progress.acked(self.index);
                        let _ = self.acks.send(Ack {
                            gateway: self.id.clone(),
                            seq: done.seq,
                            ts: done.ts,
                            at: Utc::now(),
                        });
                    }
                    Ok(Some(Answer::Nack { seq, code, why })) => {
                        outcome.violations.push(format!("nack for seq {seq:?} ({code}: {why})"));
                        if sent > 0 && pending.front().map(|p| Some(p.seq)) == Some(seq) {
                            pending.pop_front();
                            sent -= 1;
                            outcome.nacked += 1;
                        } else {
                            break SessionEnd::Broke("protocol: a nack out of order".into());
                        }
                    }
                    Ok(Some(Answer::Error { code, .. })) => {
                        break SessionEnd::Broke(format!("<error code=\"{code}\">"));
                    }
                    Ok(Some(Answer::Welcome)) => {
                        outcome.violations.push("a second welcome".into());
                        break SessionEnd::Broke("protocol: a second welcome".into());
                    }
                    Ok(None) => break SessionEnd::Broke("closed by ingest".into()),
                    Err(e) => break SessionEnd::Broke(reason(&e)),
                },
                _ = tokio::time::sleep_until(next_due.into()), if self.making() => {}
                _ = tokio::time::sleep_until((waiting_since + answer_timeout).into()), if sent > 0 => {
                    break SessionEnd::Broke(format!("no answer within {answer_timeout:?}"));
                }
            }
        };
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

/// EMFILE (Linux, the BSDs and macOS): this process has as many files
/// open as its `ulimit -n` allows.
const EMFILE: i32 = 24;

/// Said once on stderr: the first connect that failed with EMFILE.
static TOO_MANY_FILES: Once = Once::new();

/// A short, stable reason for a report (no addresses or numbers that
/// would make every break its own line).
fn reason(e: &ClientError) -> String {
    match e {
        ClientError::Connect { source, .. } if source.raw_os_error() == Some(EMFILE) => {
            TOO_MANY_FILES.call_once(|| {
                eprintln!(
                    "error: connecting failed: too many open files (EMFILE): raise ulimit -n \
                     to the gateways + 100 at least"
                )
            });
            "too many open files: raise ulimit -n".into()
        }
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
    fn rates_from_one_a_day_to_one_a_millisecond_and_jitter_to_a_half_pass() {
        let gws = vec![("gw-0".to_owned(), "t".to_owned())];
        let cfg = |rate: f64, jitter: f64| {
            let mut cfg =
                ResilientConfig::new("127.0.0.1:1", gws.clone(), rate, Duration::from_secs(1));
            cfg.jitter = jitter;
            cfg
        };
        for rate in [0.0, -1.0, 1000.5, f64::NAN, f64::INFINITY, 1e-6] {
            assert!(cfg(rate, 0.0).check().is_err(), "{rate}");
        }
        for rate in [1000.0, 1.0, 0.1, 1.0 / 86_400.0] {
            assert!(cfg(rate, 0.0).check().is_ok(), "{rate}");
        }
        for jitter in [-0.1, 0.51, 1.0, f64::NAN] {
            assert!(cfg(1.0, jitter).check().is_err(), "{jitter}");
        }
        for jitter in [0.0, 0.1, 0.5] {
            assert!(cfg(0.1, jitter).check().is_ok(), "{jitter}");
        }
    }

    #[test]
    fn intervals_parse_with_their_unit() {
        let ok = |s: &str| parse_interval(s).unwrap();
        assert_eq!(ok("10s"), Duration::from_secs(10));
        assert_eq!(ok("1s"), Duration::from_secs(1));
        assert_eq!(ok("500ms"), Duration::from_millis(500));
        assert_eq!(ok("1.5s"), Duration::from_millis(1500));
        assert_eq!(ok("2m"), Duration::from_secs(120));
        assert_eq!(ok("2min"), Duration::from_secs(120));
        assert_eq!(ok("1h"), Duration::from_secs(3600));
        assert_eq!(ok(" 10 s "), Duration::from_secs(10));
        assert_eq!(ok(".5s"), Duration::from_millis(500));
        // the rate it stands for
        assert_eq!(1.0 / ok("10s").as_secs_f64(), 0.1);
        for bad in [
            "",
            "10",
            "s",
            "-1s",
            "0s",
            "0ms",
            "1.2.3s",
            "10sec",
            "1e3ms",
            "10 parsecs",
            "ms10",
        ] {
            assert!(parse_interval(bad).is_err(), "{bad:?}");
        }
        assert!(parse_interval("0s").unwrap_err().contains("more than 0"));
    }

    /// The schedules of a fleet at one reading per 10 s with a jitter of 0.1.
    fn fleet(gateways: usize) -> Vec<Schedule> {
        let mut cfg = ResilientConfig::new("127.0.0.1:1", vec![], 0.1, Duration::from_secs(60));
        cfg.jitter = 0.1;
        cfg.random_phase = true;
        (0..gateways)
            .map(|i| cfg.schedule(&format!("gw-{i}")))
            .collect()
    }

    #[test]
    fn the_first_reading_is_at_a_random_point_of_the_first_interval() {
        let fleet = fleet(10_000);
        let interval = Duration::from_secs(10);
        assert!(fleet.iter().all(|s| s.interval() == interval));
        assert!(fleet
            .iter()
            .all(|s| s.due(0) == s.phase() && s.phase() < interval));
        // spread over the interval: no millisecond holds more than 0.1% of
        // the fleet (about 1 per ms on average; without a phase, all 10,000
        // would be in the first), and each tenth about a tenth of it
        let mut per_ms: BTreeMap<u128, usize> = BTreeMap::new();
        let mut per_tenth = [0usize; 10];
        for s in &fleet {
            *per_ms.entry(s.phase().as_millis()).or_default() += 1;
            per_tenth[(s.phase().as_secs_f64()) as usize] += 1;
        }
        assert!(
            per_ms.values().all(|&n| n <= 10),
            "{:?}",
            per_ms.values().max()
        );
        assert!(
            per_ms.len() > 6000,
            "{} distinct milliseconds",
            per_ms.len()
        );
        assert!(
            per_tenth.iter().all(|&n| (800..1200).contains(&n)),
            "{per_tenth:?}"
        );
        // the same again in another run; without random_phase, at the start
        assert_eq!(fleet, self::fleet(10_000));
        let plain = Schedule::new(0.1, 0.1, false, 42);
        assert_eq!(plain.due(0), Duration::ZERO);
    }

    #[test]
    fn jitter_stays_within_its_bound_and_does_not_drift() {
        for s in fleet(20) {
            let amplitude = s.amplitude();
            assert_eq!(amplitude, Duration::from_secs(1));
            let (mut most, mut sum, mut early, mut late) = (0i64, 0i64, 0, 0);
            for seq in 0..=1000u64 {
                // the fixed schedule: exactly phase + seq × 10 s
                let fixed = s.phase() + Duration::from_secs(10 * seq);
                assert_eq!(s.fixed_ns(seq), fixed.as_nanos() as u64);
                let deviation = s.due_ns(seq) as i64 - s.fixed_ns(seq) as i64;
                assert!(
                    deviation.unsigned_abs() <= amplitude.as_nanos() as u64,
                    "seq {seq}: {deviation} ns"
                );
                most = most.max(deviation.abs());
                sum += deviation;
                early += usize::from(deviation < 0);
                late += usize::from(deviation > 0);
                // in order, never closer than 8 s (10 s - 2 × 1 s)
                if seq > 0 {
                    assert!(s.due(seq) - s.due(seq - 1) >= Duration::from_secs(8));
                }
            }
            // after 1000 intervals, as close to the fixed schedule as after one
            let end = s.due(1000).as_secs_f64() - s.phase().as_secs_f64();
            assert!((end - 10_000.0).abs() <= 1.0, "{end}");
            // the jitter is used, both ways, and centred
            assert!(most > 900_000_000, "{most}");
            assert!(early > 400 && late > 400, "{early} early, {late} late");
            assert!((sum / 1000).abs() < 100_000_000, "mean {} ns", sum / 1000);
        }
    }

    #[test]
    fn readings_stay_in_order_a_millisecond_apart_at_any_rate() {
        for rate in [1000.0, 999.0, 800.0, 500.0, 3.0] {
            for jitter in [0.0, 0.1, 0.5] {
                let s = Schedule::new(rate, jitter, true, 7);
                let wanted = (jitter * 1e9 / rate) as u64;
                assert!(s.amplitude().as_nanos() as u64 <= wanted);
                for seq in 1..5000 {
                    assert!(
                        s.due_ns(seq) - s.due_ns(seq - 1) >= MIN_GAP_NS,
                        "rate {rate} jitter {jitter} seq {seq}"
                    );
                }
            }
        }
        // the jitter narrows only where it must
        assert_eq!(
            Schedule::new(1000.0, 0.1, false, 1).amplitude(),
            Duration::ZERO
        );
        assert_eq!(
            Schedule::new(800.0, 0.1, false, 1).amplitude(),
            Duration::from_nanos(125_000)
        );
        // no jitter, no phase: exactly seq / rate
        let s = Schedule::new(3.0, 0.0, false, 1);
        assert_eq!(s.due_ns(3), 999_999_999);
        assert_eq!(s.due_ns(3000), 999_999_999_000);
    }

    #[test]
    fn the_open_files_limit_reads_from_proc() {
        let limits = "Limit                     Soft Limit           Hard Limit           Units     \n\
                      Max processes             63465                63465                processes \n\
                      Max open files            1024                 524288               files     \n";
        assert_eq!(parse_open_files_limit(limits), Some((1024, 524_288)));
        let unlimited =
            "Max open files            unlimited            unlimited            files\n";
        assert_eq!(
            parse_open_files_limit(unlimited),
            Some((u64::MAX, u64::MAX))
        );
        assert_eq!(parse_open_files_limit("Max processes 1 1 processes"), None);
        if cfg!(target_os = "linux") {
            assert!(open_files_limit().is_some());
        }
    }

    #[test]
    fn the_report_tells_logins_latency_and_the_longest_outage() {
        let gateway = |name: &str, first: Option<u64>, lost: Option<u64>| GatewayOutcome {
            gateway: name.into(),
            logins: u32::from(first.is_some()) + u32::from(lost.is_some()),
            reconnects: u32::from(lost.is_some()),
            failed_logins: 1,
            first_login: first.map(Duration::from_millis),
            longest_disconnected: lost.map(Duration::from_millis),
            ..GatewayOutcome::default()
        };
        let mut report = ResilientReport {
            gateways: vec![
                gateway("gw-0", Some(100), None),
                gateway("gw-1", Some(2500), Some(4000)),
                gateway("gw-2", Some(300), Some(1000)),
            ],
            latencies_us: (1..=100).map(|i| i * 1000).collect(),
            ..ResilientReport::default()
        };
        assert_eq!(report.logins(), 5);
        assert_eq!(report.failed_logins(), 3);
        assert_eq!(report.reconnects(), 2);
        assert_eq!(report.all_logged_in(), Some(Duration::from_millis(2500)));
        assert_eq!(
            report.longest_disconnected(),
            Some((Duration::from_secs(4), "gw-1"))
        );
        assert_eq!(report.latency(0.5), Duration::from_millis(50));
        assert_eq!(report.latency(0.99), Duration::from_millis(99));
        let text = report.render();
        assert!(text.starts_with("gateways: 3  readings made: 0  acked: 0  unacked at the end: 0  nacked: 0  resent: 0  reconnects: 2\n"), "{text}");
        assert!(
            text.contains("logins: 5 ok, 3 failed  every gateway logged in after: 2.50 s\n"),
            "{text}"
        );
        assert!(
            text.contains("ack latency: p50 50.00 ms  p99 99.00 ms  max 100.00 ms"),
            "{text}"
        );
        assert!(
            text.contains("longest disconnected: 4.00 s (gw-1)\n"),
            "{text}"
        );
        report.gateways.push(gateway("gw-3", None, None));
        assert_eq!(report.all_logged_in(), None);
        assert!(report
            .render()
            .contains("never logged in: 1 of 4 gateways\n"));
    }

    fn one_gateway(cfg: ResilientConfig, started: Instant) -> OneGateway {
        let (acks, _rx) = mpsc::unbounded_channel();
        let (id, token) = cfg.gateways[0].clone();
        OneGateway {
            schedule: cfg.schedule(&id),
            cfg: Arc::new(cfg),
            index: 0,
            id,
            token,
            started,
            started_at: Utc::now(),
            progress: Progress::new(1),
            acks,
            barrier: None,
        }
    }

    #[tokio::test]
    async fn readings_are_due_at_the_rate_with_distinct_millisecond_times() {
        let gws = vec![("gw-0".to_owned(), "t".to_owned())];
        let cfg = ResilientConfig::new("127.0.0.1:1", gws, 1000.0, Duration::from_millis(50));
        let one = one_gateway(cfg, Instant::now() - Duration::from_millis(60));
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

    #[tokio::test]
    async fn jittered_readings_carry_their_due_time() {
        let gws = vec![("gw-0".to_owned(), "t".to_owned())];
        let mut cfg = ResilientConfig::new("127.0.0.1:1", gws, 100.0, Duration::from_secs(1));
        cfg.jitter = 0.3;
        cfg.random_phase = true;
        let one = one_gateway(cfg, Instant::now() - Duration::from_secs(2));
        let (mut made, mut pending) = (0, VecDeque::new());
        one.make_due(&mut made, &mut pending);
        // about 100 readings in the second: one per 10 ms from the phase
        // (under 10 ms), each up to 3 ms early or late
        assert!((99..=101).contains(&made), "{made}");
        for p in &pending {
            let due =
                one.started_at + TimeDelta::nanoseconds(one.schedule.due_ns(p.seq as u64) as i64);
            assert_eq!(p.ts.timestamp_millis(), due.timestamp_millis());
        }
        assert!(pending
            .iter()
            .zip(pending.iter().skip(1))
            .all(|(a, b)| a.ts < b.ts));
    }

    /// A stand-in for ingest: welcomes every hello and acks every reading;
    /// with `drop_after`, closes each gateway's first connection once it
    /// acked that many readings.
    async fn fake_ingest(drop_after: Option<usize>) -> String {
        use tokio::io::{AsyncBufReadExt, BufReader};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let dropped = Arc::new(Mutex::new(std::collections::BTreeSet::new()));
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let dropped = dropped.clone();
                tokio::spawn(async move {
                    let (rd, mut wr) = stream.into_split();
                    let mut lines = BufReader::new(rd).lines();
                    let (mut gateway, mut acked) = (String::new(), 0);
                    while let Ok(Some(line)) = lines.next_line().await {
                        let attr = |name: &str| {
                            let start = line.find(&format!("{name}=\""))? + name.len() + 2;
                            Some(line[start..][..line[start..].find('"')?].to_owned())
                        };
                        let answer = if line.starts_with("<hello") {
                            gateway = attr("gateway").unwrap();
                            "<welcome/>\n".to_owned()
                        } else {
                            format!("<ack seq=\"{}\"/>\n", attr("seq").unwrap())
                        };
                        // an answer in two writes: the gateway reads it whole
                        let (a, b) = answer.split_at(answer.len() / 2);
                        if wr.write_all(a.as_bytes()).await.is_err() {
                            break;
                        }
                        tokio::time::sleep(Duration::from_millis(1)).await;
                        if wr.write_all(b.as_bytes()).await.is_err() {
                            break;
                        }
                        if !line.starts_with("<hello") {
                            acked += 1;
                        }
                        if drop_after == Some(acked)
                            && dropped.lock().unwrap().insert(gateway.clone())
                        {
                            break;
                        }
                    }
                });
            }
        });
        addr
    }

    #[test]
    fn source_addresses_are_read_as_ranges_blocks_and_lists() {
        let v4 = |s: &str| IpAddr::V4(s.parse().unwrap());
        assert_eq!(
            parse_source_addrs("10.0.0.254-10.0.1.1").unwrap(),
            ["10.0.0.254", "10.0.0.255", "10.0.1.0", "10.0.1.1"].map(v4)
        );
        let block = parse_source_addrs("172.19.255.192/26").unwrap();
        assert_eq!(block.len(), 62, "no network or broadcast address");
        assert_eq!(block[0], v4("172.19.255.193"));
        assert_eq!(block[61], v4("172.19.255.254"));
        assert_eq!(
            parse_source_addrs("127.0.0.2, 127.0.0.9/32,127.0.0.3-127.0.0.3").unwrap(),
            ["127.0.0.2", "127.0.0.9", "127.0.0.3"].map(v4)
        );
        assert_eq!(parse_source_addrs("10.0.0.0/31").unwrap().len(), 2);
        for bad in [
            "",
            "10.0.0.2-10.0.0.1",
            "10.0.0.0/33",
            "10.0.0.x",
            "::1",
            "10.0.0.0/8",
        ] {
            assert!(parse_source_addrs(bad).is_err(), "{bad:?}");
        }
    }

    #[tokio::test]
    async fn gateways_connect_from_their_source_addresses_round_robin() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let peers = Arc::new(Mutex::new(BTreeMap::<IpAddr, usize>::new()));
        tokio::spawn({
            let peers = peers.clone();
            async move {
                use tokio::io::{AsyncBufReadExt, BufReader};
                while let Ok((stream, peer)) = listener.accept().await {
                    *peers.lock().unwrap().entry(peer.ip()).or_default() += 1;
                    tokio::spawn(async move {
                        let (rd, mut wr) = stream.into_split();
                        let mut lines = BufReader::new(rd).lines();
                        while let Ok(Some(line)) = lines.next_line().await {
                            let answer = match line.find("seq=\"") {
                                _ if line.starts_with("<hello") => "<welcome/>\n".to_owned(),
                                Some(i) => {
                                    let seq = &line[i + 5..];
                                    format!("<ack seq=\"{}\"/>\n", &seq[..seq.find('"').unwrap()])
                                }
                                None => break,
                            };
                            if wr.write_all(answer.as_bytes()).await.is_err() {
                                break;
                            }
                        }
                    });
                }
            }
        });
        let mut cfg = fleet_config(&addr, 7);
        cfg.source_addrs = parse_source_addrs("127.0.0.2-127.0.0.4").unwrap();
        let progress = Progress::new(7);
        let before = Instant::now();
        // a window from the start: every latency; one ended at once: none
        progress.measure_from(before);
        let report = run(cfg, progress.clone()).await;
        assert_eq!(progress.measured(), report.latencies_us);
        progress.measure_from(before);
        progress.measure_until(before);
        assert!(progress.measured().is_empty());
        assert_eq!(report.unacked(), 0, "{}", report.render());
        let by_address: Vec<(IpAddr, usize)> = peers.lock().unwrap().clone().into_iter().collect();
        let v4 = |s: &str| IpAddr::V4(s.parse().unwrap());
        assert_eq!(
            by_address,
            vec![
                (v4("127.0.0.2"), 3),
                (v4("127.0.0.3"), 2),
                (v4("127.0.0.4"), 2)
            ]
        );
        assert_eq!(progress.logged_in_since(before).0, 7);
        assert_eq!(progress.acked_since(before), 7);
        assert!(progress.last_login(6).is_some());
    }

    fn fleet_config(addr: &str, gateways: usize) -> ResilientConfig {
        let gws = (0..gateways)
            .map(|i| (format!("gw-{i}"), "t".to_owned()))
            .collect();
        let mut cfg = ResilientConfig::new(addr, gws, 20.0, Duration::from_millis(400));
        cfg.jitter = 0.1;
        cfg.random_phase = true;
        cfg.first_backoff = Duration::from_millis(10);
        cfg.drain_timeout = Duration::from_secs(10);
        cfg
    }

    #[tokio::test]
    async fn a_login_at_once_says_hello_only_once_everyone_is_at_the_barrier() {
        use tokio::io::{AsyncBufReadExt, BufReader};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let gws = vec![("gw-0".to_owned(), "t".to_owned())];
        let one = one_gateway(
            ResilientConfig::new(&addr, gws, 1.0, Duration::from_secs(1)),
            Instant::now(),
        );
        let barrier = Arc::new(Barrier::new(2));
        let login = tokio::spawn({
            let barrier = barrier.clone();
            async move { one.login(Some(barrier)).await.map(|_| ()) }
        });
        let (stream, _) = listener.accept().await.unwrap();
        let (rd, mut wr) = stream.into_split();
        let mut lines = BufReader::new(rd).lines();
        // connected, and waiting for the other gateway: no hello yet
        let early = tokio::time::timeout(Duration::from_millis(300), lines.next_line()).await;
        assert!(early.is_err(), "a hello before the barrier: {early:?}");
        barrier.wait().await;
        let hello = lines.next_line().await.unwrap().unwrap();
        assert!(hello.starts_with("<hello gateway=\"gw-0\""), "{hello}");
        wr.write_all(b"<welcome/>\n").await.unwrap();
        assert_eq!(login.await.unwrap(), Ok(()));
    }

    #[tokio::test]
    async fn a_fleet_logging_in_at_once_streams_and_is_acked() {
        let addr = fake_ingest(None).await;
        let mut cfg = fleet_config(&addr, 50);
        cfg.login_at_once = true;
        cfg.keep_acks = false;
        assert!(cfg.check().is_ok());
        let report = run(cfg, Progress::new(50)).await;
        let text = report.render();
        assert_eq!(report.logins(), 50, "{text}");
        assert_eq!(report.reconnects(), 0, "{text}");
        assert_eq!(report.unacked(), 0, "{text}");
        let made: u64 = report.gateways.iter().map(|g| g.made).sum();
        assert!(made >= 50 * 8, "{text}");
        assert_eq!(report.acked(), made, "{text}");
        assert_eq!(report.latencies_us.len() as u64, made, "{text}");
        assert!(report.acks.is_empty(), "keep_acks is false");
        assert!(report.all_logged_in().is_some(), "{text}");
        assert_eq!(report.longest_disconnected(), None, "{text}");
    }

    #[tokio::test]
    async fn a_dropped_connection_is_measured_until_the_next_welcome() {
        let addr = fake_ingest(Some(2)).await;
        let cfg = fleet_config(&addr, 20);
        let report = run(cfg, Progress::new(20)).await;
        let text = report.render();
        assert_eq!(report.reconnects(), 20, "{text}");
        assert_eq!(report.logins(), 40, "{text}");
        assert_eq!(report.unacked(), 0, "{text}");
        assert_eq!(report.acks.len() as u64, report.acked(), "{text}");
        assert!(
            report.gateways.iter().all(|g| g.violations.is_empty()),
            "{text}"
        );
        let (longest, _) = report
            .longest_disconnected()
            .expect("connections were lost");
        // the pause before a reconnect is 10 ms
        assert!(longest >= Duration::from_millis(10), "{text}");
        assert!(longest < Duration::from_secs(2), "{text}");
        assert!(text.contains("longest disconnected: "), "{text}");
    }
}
