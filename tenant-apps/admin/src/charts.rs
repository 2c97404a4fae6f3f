//! Line charts of readings as SVG, drawn on the server (no JavaScript).
//!
//! Samples stream into a [`Chart`], which keeps only one bucket per
//! horizontal pixel column (count, sum, min, max), so a day of 10-second
//! readings costs the same memory as a minute of them. Rendering draws the
//! min-max band of each bucket and the line through the bucket means; the
//! line breaks where no sample arrived for longer than the report gap, so
//! an outage shows as a hole, not as a straight line.

use std::fmt::Write as _;

/// Plot area size in SVG user units; the page scales the SVG to its width.
const WIDTH: f64 = 760.0;
const HEIGHT: f64 = 200.0;
const LEFT: f64 = 64.0;
const TOP: f64 = 12.0;
const BOTTOM: f64 = 26.0;
const RIGHT: f64 = 12.0;
/// One bucket per two user units of plot width.
const BUCKETS: usize = (WIDTH / 2.0) as usize;

#[derive(Debug, Clone, Copy)]
struct Bucket {
    count: u32,
    sum: f64,
    min: f64,
    max: f64,
}

/// One series being collected over the time window `[from, to)` (epoch
/// milliseconds).
#[derive(Debug, Clone)]
pub struct Chart {
    from: i64,
    to: i64,
    buckets: Vec<Option<Bucket>>,
    samples: u64,
}

impl Chart {
    pub fn new(from_millis: i64, to_millis: i64) -> Self {
        Chart {
            from: from_millis,
            to: to_millis.max(from_millis + 1),
            buckets: vec![None; BUCKETS],
            samples: 0,
        }
    }

    /// Adds a sample; samples outside the window or not finite are ignored.
    pub fn push(&mut self, ts_millis: i64, value: f64) {
        if ts_millis < self.from || ts_millis >= self.to || !value.is_finite() {
            return;
        }
        let i = ((ts_millis - self.from) as f64 / (self.to - self.from) as f64 * BUCKETS as f64)
            as usize;
        let i = i.min(BUCKETS - 1);
        self.samples += 1;
        match &mut self.buckets[i] {
            Some(b) => {
                b.count += 1;
                b.sum += value;
                b.min = b.min.min(value);
                b.max = b.max.max(value);
            }
            slot @ None => {
                *slot = Some(Bucket {
                    count: 1,
                    sum: value,
                    min: value,
                    max: value,
                })
            }
        }
    }

    pub fn samples(&self) -> u64 {
        self.samples
    }

    /// The chart as an `<svg>` element. `title` and `unit` are escaped;
    /// `offset_secs` shifts the time axis labels to the tenant's timezone.
    pub fn render(&self, title: &str, unit: &str, offset_secs: i32) -> String {
        let mut svg = String::with_capacity(16 * 1024);
        let total_w = LEFT + WIDTH + RIGHT;
        let total_h = TOP + HEIGHT + BOTTOM;
        let _ = write!(
            svg,
            r#"<svg class="chart" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {total_w} {total_h}" role="img" aria-label="{}">"#,
            escape(title)
        );
        let _ = write!(svg, "<title>{}</title>", escape(title));
        let _ = write!(
            svg,
            r##"<rect x="{LEFT}" y="{TOP}" width="{WIDTH}" height="{HEIGHT}" fill="#fafafa" stroke="#ccc"/>"##
        );

        let filled: Vec<(usize, Bucket)> = self
            .buckets
            .iter()
            .enumerate()
            .filter_map(|(i, b)| b.map(|b| (i, b)))
            .collect();
        if filled.is_empty() {
            let _ = write!(
                svg,
                r##"<text x="{}" y="{}" text-anchor="middle" fill="#666">no readings</text></svg>"##,
                LEFT + WIDTH / 2.0,
                TOP + HEIGHT / 2.0
            );
            return svg;
        }
        let lo = filled
            .iter()
            .map(|(_, b)| b.min)
            .fold(f64::INFINITY, f64::min);
        let hi = filled
            .iter()
            .map(|(_, b)| b.max)
            .fold(f64::NEG_INFINITY, f64::max);
        let (lo, hi, step) = nice_range(lo, hi);
        let y = |v: f64| TOP + HEIGHT - (v - lo) / (hi - lo) * HEIGHT;
        let x = |i: usize| LEFT + (i as f64 + 0.5) * WIDTH / BUCKETS as f64;

        // y grid and labels
        let mut v = lo;
        while v <= hi + step / 2.0 {
            let yy = y(v);
            let _ = write!(
                svg,
                r##"<line x1="{LEFT}" y1="{yy:.1}" x2="{}" y2="{yy:.1}" stroke="#e4e4e4"/><text x="{}" y="{:.1}" text-anchor="end" font-size="11" fill="#555">{} {}</text>"##,
                LEFT + WIDTH,
                LEFT - 4.0,
                yy + 4.0,
                format_value(v, step),
                escape(unit)
            );
            v += step;
        }
        // x labels: every 3 hours of local time for a day, else at the ends
        let span = self.to - self.from;
        let tick = if span >= 6 * 3_600_000 {
            3 * 3_600_000
        } else {
            span.max(1)
        };
        let offset_ms = i64::from(offset_secs) * 1000;
        let first = ((self.from + offset_ms).div_euclid(tick) + 1) * tick - offset_ms;
        let mut t = if (self.from + offset_ms).rem_euclid(tick) == 0 {
            self.from
        } else {
            first
        };
        while t <= self.to {
            let xx = LEFT + (t - self.from) as f64 / span as f64 * WIDTH;
            let local = (t + offset_ms).rem_euclid(86_400_000) / 60_000;
            let _ = write!(
                svg,
                r##"<line x1="{xx:.1}" y1="{TOP}" x2="{xx:.1}" y2="{}" stroke="#e4e4e4"/><text x="{xx:.1}" y="{}" text-anchor="middle" font-size="11" fill="#555">{:02}:{:02}</text>"##,
                TOP + HEIGHT,
                TOP + HEIGHT + 16.0,
                local / 60,
                local % 60
            );
            t += tick;
        }

        // Runs of buckets close enough in time to be connected.
        let bucket_ms = span as f64 / BUCKETS as f64;
        let max_gap_buckets = ((crate::reports::MAX_GAP.num_milliseconds() as f64 / bucket_ms)
            .ceil() as usize)
            .max(1)
            + 1;
        let mut runs: Vec<&[(usize, Bucket)]> = Vec::new();
        let mut start = 0;
        for k in 1..=filled.len() {
            if k == filled.len() || filled[k].0 - filled[k - 1].0 > max_gap_buckets {
                runs.push(&filled[start..k]);
                start = k;
            }
        }
        for run in &runs {
            if run.len() == 1 {
                let (i, b) = run[0];
                let _ = write!(
                    svg,
                    r##"<circle cx="{:.1}" cy="{:.1}" r="2" fill="#1f6fb2"/>"##,
                    x(i),
                    y(b.sum / f64::from(b.count))
                );
                continue;
            }
            // One path segment through the run: M to the first point, L on.
            let trace = |svg: &mut String, value: fn(&Bucket) -> f64| {
                for (k, (i, b)) in run.iter().enumerate() {
                    let command = if k == 0 { "M" } else { "L" };
                    let _ = write!(svg, "{command}{:.1} {:.1}", x(*i), y(value(b)));
                }
            };
            // min-max band: along the maxima, back along the minima
            svg.push_str(r##"<path fill="#1f6fb2" fill-opacity="0.18" stroke="none" d=""##);
            trace(&mut svg, |b| b.max);
            for (i, b) in run.iter().rev() {
                let _ = write!(svg, "L{:.1} {:.1}", x(*i), y(b.min));
            }
            svg.push_str(r#"Z"/>"#);
            svg.push_str(r##"<path fill="none" stroke="#1f6fb2" stroke-width="1.5" d=""##);
            trace(&mut svg, |b| b.sum / f64::from(b.count));
            svg.push_str(r#""/>"#);
        }
        svg.push_str("</svg>");
        svg
    }
}

/// A range that contains `[lo, hi]`, starts and ends on a round step, and
/// has about four steps.
fn nice_range(lo: f64, hi: f64) -> (f64, f64, f64) {
    let (lo, hi) = if hi - lo < 1e-9 {
        (lo - 1.0, hi + 1.0)
    } else {
        (lo, hi)
    };
    let raw = (hi - lo) / 4.0;
    let mag = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 2.5, 5.0, 10.0]
        .iter()
        .map(|m| m * mag)
        .find(|s| *s >= raw)
        .unwrap_or(10.0 * mag);
    ((lo / step).floor() * step, (hi / step).ceil() * step, step)
}

fn format_value(v: f64, step: f64) -> String {
    let decimals = if step >= 1.0 {
        0
    } else {
        (-step.log10().floor()) as usize + 1
    };
    format!("{v:.decimals$}")
}

/// Escapes text for XML content and attribute values.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOUR: i64 = 3_600_000;

    #[test]
    fn a_day_of_readings_draws_one_connected_line() {
        let mut chart = Chart::new(0, 24 * HOUR);
        for i in 0..8640 {
            chart.push(i * 10_000, (i % 100) as f64);
        }
        assert_eq!(chart.samples(), 8640);
        let svg = chart.render("inverter-1 power", "W", 0);
        assert!(svg.starts_with("<svg") && svg.ends_with("</svg>"));
        assert_eq!(svg.matches(r##"stroke="#1f6fb2""##).count(), 1, "one line");
        assert!(svg.contains(">00:00<") && svg.contains(">21:00<"));
        // bounded size however many samples
        assert!(svg.len() < 40_000, "{}", svg.len());
    }

    #[test]
    fn an_outage_breaks_the_line() {
        let mut chart = Chart::new(0, 24 * HOUR);
        for i in 0..360 {
            chart.push(i * 10_000, 5.0); // first hour
            chart.push(10 * HOUR + i * 10_000, 7.0); // an hour from 10:00
        }
        let svg = chart.render("x", "W", 0);
        assert_eq!(
            svg.matches(r##"stroke="#1f6fb2""##).count(),
            2,
            "two separate lines"
        );
    }

    #[test]
    fn labels_are_escaped_and_the_axis_follows_the_timezone() {
        let mut chart = Chart::new(0, 24 * HOUR);
        chart.push(HOUR, 1.0);
        let svg = chart.render("<script>alert(1)</script>", "\"W\"", 3600);
        assert!(!svg.contains("<script>"));
        assert!(svg.contains("&lt;script&gt;"));
        assert!(svg.contains("<circle"), "a lone sample is a dot");
        // offset +01:00: local midnight is 23:00 UTC, so the labels are 03:00, 06:00, ...
        assert!(svg.contains(">03:00<") && !svg.contains(">02:00<"));
    }

    #[test]
    fn an_empty_chart_says_so() {
        let svg = Chart::new(0, HOUR).render("x", "W", 0);
        assert!(svg.contains("no readings"));
    }

    #[test]
    fn ranges_are_round() {
        assert_eq!(nice_range(3.0, 97.0), (0.0, 100.0, 25.0));
        let (lo, hi, step) = nice_range(5.0, 5.0);
        assert!(lo <= 5.0 && hi >= 5.0 && step > 0.0);
    }
}
