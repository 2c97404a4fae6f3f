//! The load generator: many gateways at once, each sending frames at a
//! fixed rate (or as fast as its window of unacked frames allows) for a
//! duration or a count, then the throughput and the ack latency.
//!
//! Latency is measured from the moment a frame was due (not when it could
//! be sent), so a server that falls behind shows it in the percentiles
//! instead of slowing the generator down silently. The clock starts once
//! every gateway has logged in.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use chrono::{DateTime, TimeDelta, Utc};
use tokio::sync::{mpsc, Semaphore};

use crate::answer::Answer;
use crate::client::{Connector, Gateway};
use crate::frames::{self, SimValue};
use crate::timeline::{Timeline, SLICE};

/// When each gateway stops sending.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Stop {
    After(Duration),
    Count(u64),
}

/// What to simulate.
#[derive(Debug, Clone)]
pub struct SimConfig {
    /// The ingest gateway port, `host:port`.
    pub addr: String,
    /// Plain TCP or TLS.
    pub connector: Connector,
    /// `(gateway id, token)` of every simulated gateway.
    pub gateways: Vec<(String, String)>,
    /// Frames per second per gateway; 0 sends as fast as the window allows.
    pub rate: f64,
    pub stop: Stop,
    /// 1 sends `<reading>` frames; more sends `<batch>` frames.
    pub readings_per_frame: usize,
    pub values_per_reading: usize,
    /// Unacked frames per gateway at most.
    pub window: usize,
    /// How long to wait for the last acks once sending stopped.
    pub drain_timeout: Duration,
}

impl SimConfig {
    /// Values (rows of `readings`) per frame.
    pub fn values_per_frame(&self) -> usize {
        self.readings_per_frame.max(1) * self.values_per_reading.max(1)
    }
}

/// What one run measured.
#[derive(Debug, Clone, Default)]
pub struct Report {
    pub gateways: usize,
    pub frames_sent: u64,
    pub acked: u64,
    pub nacked: u64,
    pub values_per_frame: usize,
    /// First error of each gateway that had one.
    pub errors: Vec<String>,
    /// From the first frame due to the last answer.
    pub elapsed: Duration,
    /// Ack latency of every acked frame, in microseconds, sorted.
    pub latencies_us: Vec<u64>,
    /// Worst ack latency per slice of the run, by when frames were due.
    pub timeline: Timeline,
}

impl Report {
    pub fn frames_per_sec(&self) -> f64 {
        self.acked as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    pub fn values_per_sec(&self) -> f64 {
        self.frames_per_sec() * self.values_per_frame as f64
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
        let ms = |d: Duration| d.as_secs_f64() * 1e3;
        let mut out = format!(
            "gateways: {}  frames sent: {}  acked: {}  nacked: {}  errors: {}  elapsed: {:.2} s\n\
             throughput: {:.0} frames/s ({:.0} values/s)\n\
             ack latency: p50 {:.2} ms  p99 {:.2} ms  max {:.2} ms\n",
            self.gateways,
            self.frames_sent,
            self.acked,
            self.nacked,
            self.errors.len(),
            self.elapsed.as_secs_f64(),
            self.frames_per_sec(),
            self.values_per_sec(),
            ms(self.latency(0.50)),
            ms(self.latency(0.99)),
            ms(self.max_latency()),
        );
        for e in self.errors.iter().take(5) {
            out.push_str(&format!("error: {e}\n"));
        }
        out
    }
}

/// The `q` quantile (0..=1) of `sorted_us` (microseconds, sorted), by the
/// nearest rank; zero if there are none.
pub(crate) fn nearest_rank(sorted_us: &[u64], q: f64) -> Duration {
    if sorted_us.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((q * sorted_us.len() as f64).ceil() as usize).clamp(1, sorted_us.len());
    Duration::from_micros(sorted_us[rank - 1])
}

#[derive(Default)]
struct GatewayResult {
    sent: u64,
    acked: u64,
    nacked: u64,
    error: Option<String>,
    latencies_us: Vec<u64>,
    timeline: Timeline,
    last_answer: Option<Instant>,
}

/// Logs in like a real gateway: a `busy` refusal (ingest caps connections
/// that have not completed their hello, per address too, and all of ours
/// come from one address at once) is retried with a growing pause, for up
/// to about 10 s; any other refusal is final.
async fn login_retrying_busy(
    addr: &str,
    connector: &Connector,
    id: &str,
    token: &str,
) -> Result<Gateway, crate::client::ClientError> {
    let mut pause = Duration::from_millis(50);
    let give_up = Instant::now() + Duration::from_secs(10);
    loop {
        match Gateway::login_with(addr, connector, id, token).await {
            Err(crate::client::ClientError::Refused(Answer::Error { code, .. }))
                if code == "busy" && Instant::now() + pause < give_up =>
            {
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(Duration::from_secs(1));
            }
            other => return other,
        }
    }
}

/// Runs the simulation and reports.
pub async fn run(cfg: SimConfig) -> Report {
    let cfg = Arc::new(cfg);
    // Every gateway logs in before the clock starts: the latency measured
    // is that of frames on open connections (gateways keep theirs for
    // hours), not of a hundred hellos at once.
    let logins: Vec<_> = cfg
        .gateways
        .iter()
        .map(|(id, token)| {
            let (addr, id, token) = (cfg.addr.clone(), id.clone(), token.clone());
            let connector = cfg.connector.clone();
            tokio::spawn(async move {
                login_retrying_busy(&addr, &connector, &id, &token)
                    .await
                    .map_err(|e| format!("{id}: {e}"))
            })
        })
        .collect();
    let mut gateways = Vec::with_capacity(logins.len());
    for login in logins {
        gateways.push(
            login
                .await
                .unwrap_or_else(|e| Err(format!("login task failed: {e}"))),
        );
    }
    let start = Instant::now() + Duration::from_millis(50);
    let started = SystemTime::now() + Duration::from_millis(50);
    let count = gateways.len();
    let tasks: Vec<_> = gateways
        .into_iter()
        .zip(cfg.gateways.iter())
        .enumerate()
        .map(|(i, (login, (id, _)))| {
            let (cfg, id) = (cfg.clone(), id.clone());
            // spread the gateways' schedules over one period
            let offset = if cfg.rate > 0.0 {
                Duration::from_secs_f64(i as f64 / count as f64 / cfg.rate)
            } else {
                Duration::ZERO
            };
            tokio::spawn(async move {
                match login {
                    Ok(gw) => one_gateway(cfg, id, gw, start, offset, started).await,
                    Err(error) => GatewayResult {
                        error: Some(error),
                        ..GatewayResult::default()
                    },
                }
            })
        })
        .collect();
    let mut report = Report {
        gateways: cfg.gateways.len(),
        values_per_frame: cfg.values_per_frame(),
        timeline: Timeline::new(started, SLICE),
        ..Report::default()
    };
    let mut last = start;
    for task in tasks {
        let r = task.await.unwrap_or_else(|e| GatewayResult {
            error: Some(format!("gateway task failed: {e}")),
            ..GatewayResult::default()
        });
        report.frames_sent += r.sent;
        report.acked += r.acked;
        report.nacked += r.nacked;
        report.errors.extend(r.error);
        report.latencies_us.extend(r.latencies_us);
        report.timeline.merge(&r.timeline);
        if let Some(t) = r.last_answer {
            last = last.max(t);
        }
    }
    report.elapsed = last.saturating_duration_since(start);
    report.latencies_us.sort_unstable();
    report
}

const VALUE_NAMES: &[(&str, &str)] = &[
    ("power", "W"),
    ("voltage", "V"),
    ("current", "A"),
    ("energy", "Wh"),
    ("temperature", "C"),
    ("frequency", "Hz"),
];

/// The frame with sequence number `seq` of one gateway.
pub fn make_frame(cfg: &SimConfig, seq: i64, ts: DateTime<Utc>) -> String {
    let values: Vec<SimValue> = (0..cfg.values_per_reading.max(1))
        .map(|k| {
            let (name, unit) = VALUE_NAMES[k % VALUE_NAMES.len()];
            let name = if k < VALUE_NAMES.len() {
                name.to_owned()
            } else {
                format!("{name}-{k}")
            };
            SimValue::new(&name, unit, ((seq * 7 + k as i64) % 5000) as f64 / 4.0)
        })
        .collect();
    if cfg.readings_per_frame <= 1 {
        frames::reading(seq, ts, "sensor-0", &values)
    } else {
        let readings: Vec<_> = (0..cfg.readings_per_frame)
            .map(|k| (ts, format!("sensor-{k}"), values.clone()))
            .collect();
        frames::batch(seq, &readings)
    }
}

/// One gateway: sends from `run_start + offset` on; `started` is the wall
/// clock at `run_start`, for the timeline.
async fn one_gateway(
    cfg: Arc<SimConfig>,
    id: String,
    gw: Gateway,
    run_start: Instant,
    offset: Duration,
    started: SystemTime,
) -> GatewayResult {
    let start = run_start + offset;
    let mut result = GatewayResult {
        timeline: Timeline::new(started, SLICE),
        ..GatewayResult::default()
    };
    let (mut answers, mut frames_out) = gw.split();
    let window = Arc::new(Semaphore::new(cfg.window.max(1)));
    let (due_tx, mut due_rx) = mpsc::unbounded_channel::<(i64, Instant)>();

    let writer = {
        let cfg = cfg.clone();
        let window = window.clone();
        tokio::spawn(async move {
            tokio::time::sleep_until(start.into()).await;
            let period = (cfg.rate > 0.0).then(|| Duration::from_secs_f64(1.0 / cfg.rate));
            let mut last_ts: Option<DateTime<Utc>> = None;
            let mut sent = 0u64;
            loop {
                match cfg.stop {
                    Stop::Count(n) if sent >= n => break,
                    Stop::After(d) if start.elapsed() >= d => break,
                    _ => {}
                }
                let due = match period {
                    Some(p) => {
                        let due = start + p.mul_f64(sent as f64);
                        tokio::time::sleep_until(due.into()).await;
                        due
                    }
                    None => Instant::now(),
                };
                let Ok(permit) = window.acquire().await else {
                    break;
                };
                permit.forget();
                let due = if period.is_some() {
                    due
                } else {
                    Instant::now()
                };
                // strictly increasing timestamps, so every frame is new rows
                let now = Utc::now();
                let ts = match last_ts {
                    Some(t) if t >= now => t + TimeDelta::milliseconds(1),
                    _ => now,
                };
                last_ts = Some(ts);
                let seq = sent as i64;
                let frame = make_frame(&cfg, seq, ts);
                if due_tx.send((seq, due)).is_err() {
                    break;
                }
                if frames_out.send(frame.as_bytes()).await.is_err() {
                    break;
                }
                sent += 1;
            }
            (sent, frames_out)
        })
    };

    let mut pending: VecDeque<(i64, Instant)> = VecDeque::new();
    let mut writer_done = false;
    loop {
        if writer_done && pending.is_empty() {
            while let Ok(item) = due_rx.try_recv() {
                pending.push_back(item);
            }
            if pending.is_empty() {
                break;
            }
        }
        tokio::select! {
            item = due_rx.recv(), if !writer_done => match item {
                Some(item) => pending.push_back(item),
                None => writer_done = true,
            },
            answer = answers.next() => {
                while let Ok(item) = due_rx.try_recv() {
                    pending.push_back(item);
                }
                let now = Instant::now();
                match answer {
                    Ok(Some(Answer::Ack { seq })) | Ok(Some(Answer::Nack { seq: Some(seq), .. })) => {
                        let Some((expected, due)) = pending.pop_front() else {
                            result.error = Some(format!("{id}: answer for seq {seq} with nothing in flight"));
                            break;
                        };
                        if expected != seq {
                            result.error = Some(format!("{id}: answer for seq {seq}, expected {expected} (out of order)"));
                            break;
                        }
                        if matches!(answer, Ok(Some(Answer::Ack { .. }))) {
                            result.acked += 1;
                            let latency_us = now.saturating_duration_since(due).as_micros() as u64;
                            result.latencies_us.push(latency_us);
                            result.timeline.record(due.saturating_duration_since(run_start), latency_us);
                        } else {
                            result.nacked += 1;
                        }
                        result.last_answer = Some(now);
                        window.add_permits(1);
                    }
                    Ok(Some(other)) => {
                        result.error = Some(format!("{id}: {other:?}"));
                        break;
                    }
                    Ok(None) => {
                        result.error = Some(format!("{id}: ingest closed the connection with {} frames unanswered", pending.len()));
                        break;
                    }
                    Err(e) => {
                        result.error = Some(format!("{id}: {e}"));
                        break;
                    }
                }
            }
            _ = tokio::time::sleep(cfg.drain_timeout), if writer_done => {
                result.error = Some(format!("{id}: {} frames unanswered after {:?}", pending.len(), cfg.drain_timeout));
                break;
            }
        }
    }
    window.close();
    match writer.await {
        Ok((sent, _frames)) => result.sent = sent,
        Err(e) => result.error = result.error.or(Some(format!("{id}: writer failed: {e}"))),
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_use_the_nearest_rank() {
        let report = Report {
            latencies_us: (1..=100).map(|i| i * 1000).collect(),
            acked: 100,
            elapsed: Duration::from_secs(2),
            values_per_frame: 2,
            ..Report::default()
        };
        assert_eq!(report.latency(0.5), Duration::from_millis(50));
        assert_eq!(report.latency(0.99), Duration::from_millis(99));
        assert_eq!(report.max_latency(), Duration::from_millis(100));
        assert_eq!(report.frames_per_sec(), 50.0);
        assert_eq!(report.values_per_sec(), 100.0);
    }

    #[test]
    fn frames_hold_the_configured_readings_and_values() {
        let cfg = SimConfig {
            connector: Default::default(),
            addr: String::new(),
            gateways: vec![],
            rate: 0.0,
            stop: Stop::Count(1),
            readings_per_frame: 3,
            values_per_reading: 2,
            window: 1,
            drain_timeout: Duration::from_secs(1),
        };
        let frame = make_frame(&cfg, 7, Utc::now());
        assert!(frame.starts_with("<batch seq=\"7\">"));
        assert_eq!(frame.matches("<reading ").count(), 3);
        assert_eq!(frame.matches("<value ").count(), 6);
        assert_eq!(cfg.values_per_frame(), 6);
    }
}
