//! The checks the fuzz targets of the protocol run on one input (the
//! cargo-fuzz crate in `fuzz/` calls them, and `tests/fuzz_corpus.rs`
//! replays the committed corpus through them on stable Rust), so the fuzzer
//! and the test suite check exactly the same thing. Every check panics on a
//! broken invariant; any outcome without a panic is fine.
//!
//! - [`frames`]: bytes split into reads of varying sizes through a
//!   [`FrameDecoder`], compared with the same bytes decoded in one read.
//! - [`parse_one`]: [`parse_frame`] on the bytes as one frame.
//!
//! What a decoded frame must satisfy ([`check_frame`]) is what the rest of
//! ingest and the panel rely on: the bounds of a reading, and answers that
//! stay one line of XML whatever the frame carried.

use chrono::{DateTime, Utc};

use super::{
    nack, parse_frame, Frame, FrameDecoder, ProtocolError, TimeBounds, TimeWindow, MAX_ABS_VALUE,
    MAX_FRAME_BYTES, MAX_LABEL_LEN, MAX_VALUES_PER_READING,
};

/// The server's clock in every check: a little after the timestamps of the
/// corpus (and of the protocol's unit tests), so their readings are in time.
pub fn now() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2026-11-23T06:05:00Z")
        .expect("a valid timestamp")
        .with_timezone(&Utc)
}

/// The largest read of each scale the first byte of a [`frames`] input can
/// choose: single bytes up to more than a whole frame at once.
const READ_SCALES: [usize; 8] = [1, 2, 4, 16, 64, 512, 8192, MAX_FRAME_BYTES + 1024];

/// The read sizes of one input: a small xorshift generator seeded by the
/// first byte, whose low 3 bits choose the scale of the reads.
struct Reads {
    state: u32,
    max: usize,
}

impl Reads {
    fn new(seed: u8) -> Self {
        Reads {
            state: 0x9e37_79b9 ^ u32::from(seed).wrapping_mul(0x0101_0101),
            max: READ_SCALES[usize::from(seed & 7)],
        }
    }

    fn next_size(&mut self) -> usize {
        self.state ^= self.state << 13;
        self.state ^= self.state >> 17;
        self.state ^= self.state << 5;
        1 + self.state as usize % self.max
    }
}

/// What decoding a byte stream gave: every frame up to the first error.
#[derive(Debug, PartialEq)]
struct Decoded {
    frames: Vec<Frame>,
    error: Option<ProtocolError>,
}

/// The first byte chooses the read sizes; the rest is what the gateway
/// sends. The bytes are fed read by read, each read followed by
/// `next_frame` until it needs more bytes, as the server does; decoding
/// stops at the first error. Checked: no panic; after every `Ok(None)` the
/// decoder holds at most one frame's worth of bytes; every frame satisfies
/// [`check_frame`]; and the frames and the error are the same as those of
/// the whole stream given in one read.
pub fn frames(data: &[u8]) {
    let Some((&seed, stream)) = data.split_first() else {
        return;
    };
    let now = now();
    let window = TimeBounds::default().window(now);
    let mut reads = Reads::new(seed);
    let mut chunks = Vec::new();
    let mut rest = stream;
    while !rest.is_empty() {
        let (chunk, tail) = rest.split_at(reads.next_size().min(rest.len()));
        chunks.push(chunk);
        rest = tail;
    }
    let in_reads = decode(&chunks, now, &window);
    let at_once = decode(&[stream], now, &window);
    assert_eq!(
        in_reads, at_once,
        "the frames depend on how the bytes were split into reads"
    );
}

/// Feeds `reads` one after the other, decoding after each.
fn decode(reads: &[&[u8]], now: DateTime<Utc>, window: &TimeWindow) -> Decoded {
    let mut dec = FrameDecoder::default();
    let mut frames = Vec::new();
    for read in reads {
        dec.buffer().extend_from_slice(read);
        loop {
            match dec.next_frame(now) {
                Ok(Some(frame)) => {
                    check_frame(&frame, window);
                    frames.push(frame);
                }
                Ok(None) => {
                    assert!(
                        dec.pending_bytes() <= MAX_FRAME_BYTES,
                        "the decoder holds {} bytes waiting for more, more than a frame ({MAX_FRAME_BYTES})",
                        dec.pending_bytes()
                    );
                    break;
                }
                Err(error) => {
                    return Decoded {
                        frames,
                        error: Some(error),
                    }
                }
            }
        }
    }
    Decoded {
        frames,
        error: None,
    }
}

/// `parse_frame` on the whole input as one frame: no panic, and a frame it
/// returns satisfies [`check_frame`].
pub fn parse_one(data: &[u8]) {
    let window = TimeBounds::default().window(now());
    if let Ok(frame) = parse_frame(data, &window) {
        check_frame(&frame, &window);
    }
}

/// What every decoded frame satisfies: a data frame's seq is not negative,
/// it holds at least one reading, each in the time window, with 1 to
/// [`MAX_VALUES_PER_READING`] values, finite and at most [`MAX_ABS_VALUE`]
/// in size, its labels non-blank, at most [`MAX_LABEL_LEN`] characters and
/// without control characters; a bad frame's nack is one line that parses
/// back as a frame carrying the same seq.
pub fn check_frame(frame: &Frame, window: &TimeWindow) {
    match frame {
        Frame::Hello { .. } => {}
        Frame::Data(data) => {
            assert!(data.seq >= 0, "negative seq {}", data.seq);
            assert!(!data.readings.is_empty(), "a data frame without readings");
            for reading in &data.readings {
                assert!(
                    window.earliest <= reading.ts && reading.ts <= window.latest,
                    "reading at {} outside the time window",
                    reading.ts
                );
                check_label("sensor", &reading.sensor);
                assert!(
                    (1..=MAX_VALUES_PER_READING).contains(&reading.values.len()),
                    "a reading with {} values",
                    reading.values.len()
                );
                for value in &reading.values {
                    check_label("value name", &value.name);
                    if let Some(unit) = &value.unit {
                        assert!(!unit.is_empty(), "an empty unit kept");
                        assert!(
                            unit.chars().count() <= MAX_LABEL_LEN,
                            "unit {unit:?} too long"
                        );
                    }
                    assert!(
                        value.value.is_finite() && value.value.abs() <= MAX_ABS_VALUE,
                        "value {} out of bounds",
                        value.value
                    );
                }
            }
        }
        Frame::Bad { seq, why } => {
            let mut line = Vec::new();
            nack(&mut line, *seq, why);
            assert_eq!(
                line.iter().position(|&b| b == b'\n'),
                Some(line.len() - 1),
                "a nack that is not exactly one line: {:?}",
                String::from_utf8_lossy(&line)
            );
            match parse_frame(&line, window) {
                Ok(Frame::Bad { seq: echoed, .. }) => assert_eq!(
                    echoed,
                    *seq,
                    "the nack {:?} carries another seq",
                    String::from_utf8_lossy(&line)
                ),
                other => panic!(
                    "the nack {:?} does not parse back as XML: {other:?}",
                    String::from_utf8_lossy(&line)
                ),
            }
        }
    }
}

fn check_label(what: &str, label: &str) {
    assert!(!label.trim().is_empty(), "blank {what}");
    assert!(
        label.chars().count() <= MAX_LABEL_LEN,
        "{what} {label:?} too long"
    );
    assert!(
        !label.chars().any(char::is_control),
        "{what} {label:?} holds control characters"
    );
}
