//! Ack latency over time: for every slice of a run (100 ms by default), how
//! many frames due in it were acked and the worst ack latency among them.
//! Percentiles say how bad the tail is; the timeline says when it happened,
//! so a stall can be lined up with the server's and Cassandra's logs
//! (memtable flushes, compactions, GC) by its wall-clock time.

use std::time::{Duration, SystemTime};

use chrono::{DateTime, Utc};

/// The default width of one slice.
pub const SLICE: Duration = Duration::from_millis(100);

/// One slice of a run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Slice {
    /// Frames due in this slice that were acked.
    pub acked: u32,
    /// The worst ack latency among them, in microseconds.
    pub max_us: u64,
}

/// A stretch of consecutive slices whose worst latency was over a threshold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stall {
    /// When the first frame of the stretch was due.
    pub from: SystemTime,
    /// How long the stretch of slow slices lasted.
    pub length: Duration,
    /// The worst ack latency in it, in microseconds.
    pub max_us: u64,
    /// Frames due in the stretch (slow or not).
    pub acked: u64,
}

impl Stall {
    /// `HH:MM:SS.mmm +Lms max Mms` in UTC, the way Cassandra's log writes times.
    pub fn render(&self) -> String {
        let from: DateTime<Utc> = self.from.into();
        format!(
            "{} +{}ms max {:.1}ms",
            from.format("%H:%M:%S%.3f"),
            self.length.as_millis(),
            self.max_us as f64 / 1e3
        )
    }
}

/// Slices of one run, from the moment its clock started.
#[derive(Debug, Clone)]
pub struct Timeline {
    /// The wall-clock time of the start of the first slice.
    pub started: SystemTime,
    pub slice: Duration,
    pub slices: Vec<Slice>,
}

impl Default for Timeline {
    fn default() -> Self {
        Self::new(SystemTime::UNIX_EPOCH, SLICE)
    }
}

impl Timeline {
    pub fn new(started: SystemTime, slice: Duration) -> Self {
        Self {
            started,
            slice: slice.max(Duration::from_millis(1)),
            slices: Vec::new(),
        }
    }

    /// Records a frame that was due `due` after the start and was acked
    /// `latency_us` later.
    pub fn record(&mut self, due: Duration, latency_us: u64) {
        let i = (due.as_micros() / self.slice.as_micros()) as usize;
        if self.slices.len() <= i {
            self.slices.resize(i + 1, Slice::default());
        }
        let s = &mut self.slices[i];
        s.acked += 1;
        s.max_us = s.max_us.max(latency_us);
    }

    /// Adds another timeline of the same run (another gateway's) to this one.
    pub fn merge(&mut self, other: &Timeline) {
        debug_assert_eq!(self.slice, other.slice);
        if self.slices.len() < other.slices.len() {
            self.slices.resize(other.slices.len(), Slice::default());
        }
        for (mine, theirs) in self.slices.iter_mut().zip(&other.slices) {
            mine.acked += theirs.acked;
            mine.max_us = mine.max_us.max(theirs.max_us);
        }
    }

    /// The stretches of consecutive slices whose worst latency was over
    /// `threshold`, in time order.
    pub fn stalls(&self, threshold: Duration) -> Vec<Stall> {
        let over = threshold.as_micros() as u64;
        let mut stalls: Vec<Stall> = Vec::new();
        let mut open = false;
        for (i, s) in self.slices.iter().enumerate() {
            if s.max_us <= over {
                open = false;
                continue;
            }
            match stalls.last_mut() {
                Some(stall) if open => {
                    stall.length += self.slice;
                    stall.max_us = stall.max_us.max(s.max_us);
                    stall.acked += u64::from(s.acked);
                }
                _ => stalls.push(Stall {
                    from: self.started + self.slice * i as u32,
                    length: self.slice,
                    max_us: s.max_us,
                    acked: u64::from(s.acked),
                }),
            }
            open = true;
        }
        stalls
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_fall_into_the_slice_they_were_due_in() {
        let mut t = Timeline::new(SystemTime::UNIX_EPOCH, Duration::from_millis(100));
        t.record(Duration::from_millis(5), 1_000);
        t.record(Duration::from_millis(99), 3_000);
        t.record(Duration::from_millis(250), 2_000);
        assert_eq!(
            t.slices,
            vec![
                Slice {
                    acked: 2,
                    max_us: 3_000
                },
                Slice::default(),
                Slice {
                    acked: 1,
                    max_us: 2_000
                },
            ]
        );
    }

    #[test]
    fn merging_adds_counts_and_keeps_the_worst() {
        let mut a = Timeline::new(SystemTime::UNIX_EPOCH, SLICE);
        a.record(Duration::from_millis(10), 5_000);
        let mut b = Timeline::new(SystemTime::UNIX_EPOCH, SLICE);
        b.record(Duration::from_millis(20), 9_000);
        b.record(Duration::from_millis(150), 1_000);
        a.merge(&b);
        assert_eq!(
            a.slices[0],
            Slice {
                acked: 2,
                max_us: 9_000
            }
        );
        assert_eq!(
            a.slices[1],
            Slice {
                acked: 1,
                max_us: 1_000
            }
        );
    }

    #[test]
    fn consecutive_slow_slices_make_one_stall() {
        let mut t = Timeline::new(SystemTime::UNIX_EPOCH, Duration::from_millis(100));
        for (due_ms, latency_ms) in [(0, 2), (100, 30), (200, 80), (300, 2), (400, 25)] {
            t.record(Duration::from_millis(due_ms), latency_ms * 1_000);
        }
        let stalls = t.stalls(Duration::from_millis(20));
        assert_eq!(stalls.len(), 2);
        assert_eq!(
            stalls[0].from,
            SystemTime::UNIX_EPOCH + Duration::from_millis(100)
        );
        assert_eq!(stalls[0].length, Duration::from_millis(200));
        assert_eq!(stalls[0].max_us, 80_000);
        assert_eq!(stalls[0].acked, 2);
        assert_eq!(stalls[1].max_us, 25_000);
        assert_eq!(stalls[0].render(), "00:00:00.100 +200ms max 80.0ms");
    }
}
