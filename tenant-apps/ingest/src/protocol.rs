//! Gateway protocol v1, as pure functions over bytes: an incremental frame
//! decoder (frames are top-level XML elements sent back to back, whitespace
//! between them allowed, at most [`MAX_FRAME_BYTES`] each), the meaning of a
//! frame (hello, reading, batch) and the encoding of the server's answers.
//!
//! The decoder works in two steps. A byte-level scanner finds where the
//! current top-level element ends (it tracks tags, quoted attribute values,
//! comments, CDATA and processing instructions, and keeps its state across
//! reads, so a frame split over many reads is scanned once). The complete
//! frame is then parsed with quick-xml, which checks well-formedness
//! (matching closing tags, attribute syntax, entities). Framing errors are
//! [`ProtocolError`]s: the connection cannot continue. A well-formed frame
//! that means nothing valid becomes [`Frame::Bad`]: the gateway gets a nack
//! and may go on.
//!
//! A reading is also bounded so that no gateway can freeze or break what
//! reads the data later: its time must lie in a [`TimeWindow`] around the
//! server's clock (the caller passes "now", so tests control it), values
//! must be finite and at most [`MAX_ABS_VALUE`] in size, a reading holds at
//! most [`MAX_VALUES_PER_READING`] values, sensors, value names and units
//! are at most [`MAX_LABEL_LEN`] characters, and an element carries at most
//! [`MAX_ATTRIBUTES`] attributes. Each is a nack, not a close.
//!
//! `fuzz_check` holds what the fuzz targets of `fuzz/` run on each input.

use std::borrow::Cow;

use chrono::{DateTime, NaiveDate, SecondsFormat, TimeDelta, Utc};
use quick_xml::events::{BytesStart, Event};
use quick_xml::Reader;

/// The largest frame accepted, in bytes (64 KiB).
pub const MAX_FRAME_BYTES: usize = 64 * 1024;
/// The longest sensor, value name or unit accepted, in characters.
pub const MAX_LABEL_LEN: usize = 64;
/// The most values one reading may hold.
pub const MAX_VALUES_PER_READING: usize = 64;
/// The most attributes one element may carry (the protocol uses at most 3).
pub const MAX_ATTRIBUTES: usize = 16;
/// The largest magnitude a value may have. 1e15 holds every physical
/// quantity a gateway reports (a 1 GW plant's lifetime energy counter in Wh
/// is below 1e15), keeps integers exact in an f64 (2^53 is about 9.007e15)
/// and keeps sums and integrals over a day of readings far from overflow.
pub const MAX_ABS_VALUE: f64 = 1e15;
/// How far ahead of the server's clock a reading's time may be by default.
pub const DEFAULT_MAX_AHEAD: TimeDelta = TimeDelta::minutes(10);
/// How old a reading may be by default.
pub const DEFAULT_MAX_AGE: TimeDelta = TimeDelta::days(30);

/// How far from the server's clock a reading's time may lie.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimeBounds {
    /// The oldest a reading may be (`INGEST_MAX_READING_AGE_DAYS`).
    pub max_age: TimeDelta,
    /// How far in the future a reading may be (clock skew of gateways).
    pub max_ahead: TimeDelta,
}

impl Default for TimeBounds {
    fn default() -> Self {
        Self {
            max_age: DEFAULT_MAX_AGE,
            max_ahead: DEFAULT_MAX_AHEAD,
        }
    }
}

impl TimeBounds {
    /// The times a reading may carry when the server's clock reads `now`.
    pub fn window(&self, now: DateTime<Utc>) -> TimeWindow {
        TimeWindow {
            earliest: now - self.max_age,
            latest: now + self.max_ahead,
            bounds: *self,
        }
    }
}

/// The times a reading may carry, as of one instant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimeWindow {
    pub earliest: DateTime<Utc>,
    pub latest: DateTime<Utc>,
    bounds: TimeBounds,
}

impl TimeWindow {
    fn check(&self, ts: DateTime<Utc>) -> Result<(), String> {
        let shown = ts.to_rfc3339_opts(SecondsFormat::AutoSi, true);
        if ts > self.latest {
            Err(format!(
                "timestamp {shown} is more than {} minutes ahead of the server's clock",
                self.bounds.max_ahead.num_minutes()
            ))
        } else if ts < self.earliest {
            Err(format!(
                "timestamp {shown} is older than {} days",
                self.bounds.max_age.num_days()
            ))
        } else {
            Ok(())
        }
    }
}

/// Framing that cannot be recovered: the connection gets
/// `<error code="protocol">` and closes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProtocolError {
    #[error("not XML: unexpected byte {byte:#04x} between frames")]
    NotXml { byte: u8 },
    #[error("frame larger than {max} bytes", max = MAX_FRAME_BYTES)]
    FrameTooLarge,
    #[error("closing tag with no open element")]
    UnopenedClose,
    #[error("document type declarations are not allowed")]
    Doctype,
    #[error("malformed XML: {0}")]
    Malformed(String),
}

/// One reading: a sensor's values at one instant.
#[derive(Debug, Clone, PartialEq)]
pub struct Reading {
    pub ts: DateTime<Utc>,
    pub sensor: String,
    pub values: Vec<Value>,
}

impl Reading {
    /// The UTC day the reading falls on: the time bucket of its partition.
    pub fn day(&self) -> NaiveDate {
        self.ts.date_naive()
    }
}

/// One named value of a reading.
#[derive(Debug, Clone, PartialEq)]
pub struct Value {
    pub name: String,
    pub unit: Option<String>,
    pub value: f64,
}

/// A `<reading>` or `<batch>` frame: what gets written, then acked by `seq`.
#[derive(Debug, Clone, PartialEq)]
pub struct DataFrame {
    pub seq: i64,
    pub readings: Vec<Reading>,
}

impl DataFrame {
    /// How many values (rows of `readings`) the frame holds.
    pub fn value_count(&self) -> usize {
        self.readings.iter().map(|r| r.values.len()).sum()
    }
}

/// What a complete, well-formed frame means.
#[derive(Debug, Clone, PartialEq)]
pub enum Frame {
    /// `<hello gateway=".." token=".."/>`; missing attributes are empty
    /// (the server refuses them as an auth error).
    Hello { gateway: String, token: String },
    /// A reading or a batch of readings.
    Data(DataFrame),
    /// Well-formed but wrong: answered with a nack naming `seq` when the
    /// frame carried a valid one.
    Bad { seq: Option<i64>, why: String },
}

/// Where the scanner is inside the pending bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scan {
    /// Between frames (depth 0): whitespace or `<`.
    Top,
    /// Inside an element's content.
    Content,
    /// Just after `<`.
    TagOpen,
    /// Inside a start tag; `slash` if the last byte outside quotes was `/`.
    StartTag { slash: bool },
    /// Inside a quoted attribute value of a start tag.
    Quote { quote: u8 },
    /// Inside a closing tag.
    EndTag,
    /// After `<!`: `matched` bytes of `--` or `[CDATA[` seen so far.
    Bang { matched: u8, cdata: bool },
    /// Inside a comment; `dashes` counts trailing `-` bytes.
    Comment { dashes: u8 },
    /// Inside CDATA; `brackets` counts trailing `]` bytes.
    CData { brackets: u8 },
    /// Inside a processing instruction; `question` if the last byte was `?`.
    Pi { question: bool },
}

const CDATA_OPEN: &[u8] = b"[CDATA[";

/// The incremental decoder of one connection: append received bytes to
/// [`FrameDecoder::buffer`], then call [`FrameDecoder::next_frame`] until it
/// returns `Ok(None)`.
#[derive(Debug)]
pub struct FrameDecoder {
    buf: Vec<u8>,
    /// Bytes before `start` are consumed and dropped lazily.
    start: usize,
    /// The next byte to scan.
    pos: usize,
    /// Where the pending item (frame, comment or PI) began, if one has.
    item_start: Option<usize>,
    depth: u32,
    state: Scan,
    times: TimeBounds,
}

impl Default for FrameDecoder {
    fn default() -> Self {
        Self::new(TimeBounds::default())
    }
}

impl FrameDecoder {
    /// A decoder that accepts readings within `times` of the clock.
    pub fn new(times: TimeBounds) -> Self {
        Self {
            times,
            buf: Vec::new(),
            start: 0,
            pos: 0,
            item_start: None,
            depth: 0,
            state: Scan::Top,
        }
    }

    /// The buffer to read into (append only).
    pub fn buffer(&mut self) -> &mut Vec<u8> {
        if self.start > 0 && (self.start == self.buf.len() || self.start >= 16 * 1024) {
            self.compact();
        }
        &mut self.buf
    }

    /// Bytes received and not yet returned as frames.
    pub fn pending_bytes(&self) -> usize {
        self.buf.len() - self.start
    }

    fn compact(&mut self) {
        let shift = self.start;
        self.buf.drain(..shift);
        self.start = 0;
        self.pos -= shift;
        self.item_start = self.item_start.map(|s| s - shift);
    }

    /// The next complete frame, parsed, its readings' times checked
    /// against the server's clock reading `now`; `Ok(None)` if more bytes
    /// are needed.
    pub fn next_frame(&mut self, now: DateTime<Utc>) -> Result<Option<Frame>, ProtocolError> {
        match self.next_frame_bytes()? {
            None => Ok(None),
            Some((from, to)) => parse_frame(&self.buf[from..to], &self.times.window(now)).map(Some),
        }
    }

    /// Scans to the end of the next complete top-level element and returns
    /// its byte range in the buffer (valid until the buffer changes).
    fn next_frame_bytes(&mut self) -> Result<Option<(usize, usize)>, ProtocolError> {
        while self.pos < self.buf.len() {
            let b = self.buf[self.pos];
            let at = self.pos;
            self.pos += 1;
            if let Some(item) = self.item_start {
                if self.pos - item > MAX_FRAME_BYTES {
                    return Err(ProtocolError::FrameTooLarge);
                }
            }
            match self.state {
                Scan::Top => {
                    if b.is_ascii_whitespace() {
                        self.start = self.pos;
                    } else if b == b'<' {
                        self.item_start = Some(at);
                        self.state = Scan::TagOpen;
                    } else {
                        return Err(ProtocolError::NotXml { byte: b });
                    }
                }
                Scan::Content => {
                    if b == b'<' {
                        self.state = Scan::TagOpen;
                    }
                }
                Scan::TagOpen => {
                    self.state = match b {
                        b'/' if self.depth == 0 => return Err(ProtocolError::UnopenedClose),
                        b'/' => Scan::EndTag,
                        b'!' => Scan::Bang {
                            matched: 0,
                            cdata: false,
                        },
                        b'?' => Scan::Pi { question: false },
                        b'>' => return Err(ProtocolError::Malformed("empty tag '<>'".into())),
                        _ => Scan::StartTag { slash: false },
                    };
                }
                Scan::StartTag { .. } => {
                    self.state = match b {
                        b'"' | b'\'' => Scan::Quote { quote: b },
                        b'>' => self.state.close_start(self),
                        b'/' => Scan::StartTag { slash: true },
                        _ => Scan::StartTag { slash: false },
                    };
                    if let Some(done) = self.take_complete() {
                        return Ok(Some(done));
                    }
                }
                Scan::Quote { quote } => {
                    if b == quote {
                        self.state = Scan::StartTag { slash: false };
                    }
                }
                Scan::EndTag => {
                    if b == b'>' {
                        self.depth -= 1;
                        if self.depth == 0 {
                            self.state = Scan::Top;
                            return Ok(Some(self.finish_item(at)));
                        }
                        self.state = Scan::Content;
                    }
                }
                Scan::Bang { matched, cdata } => {
                    let matched = matched as usize;
                    self.state = if matched == 0 && b == b'-' {
                        Scan::Bang {
                            matched: 1,
                            cdata: false,
                        }
                    } else if matched == 1 && !cdata && b == b'-' {
                        Scan::Comment { dashes: 0 }
                    } else if (matched == 0 || cdata)
                        && self.depth > 0
                        && CDATA_OPEN.get(matched) == Some(&b)
                    {
                        if matched + 1 == CDATA_OPEN.len() {
                            Scan::CData { brackets: 0 }
                        } else {
                            Scan::Bang {
                                matched: (matched + 1) as u8,
                                cdata: true,
                            }
                        }
                    } else if matched == 0 && b.eq_ignore_ascii_case(&b'D') {
                        return Err(ProtocolError::Doctype);
                    } else {
                        return Err(ProtocolError::Malformed(
                            "'<!' starts neither a comment nor CDATA".into(),
                        ));
                    };
                }
                Scan::Comment { dashes } => {
                    self.state = match b {
                        b'-' => Scan::Comment {
                            dashes: (dashes + 1).min(2),
                        },
                        b'>' if dashes >= 2 => self.after_markup(),
                        _ => Scan::Comment { dashes: 0 },
                    };
                }
                Scan::CData { brackets } => {
                    self.state = match b {
                        b']' => Scan::CData {
                            brackets: (brackets + 1).min(2),
                        },
                        b'>' if brackets >= 2 => Scan::Content,
                        _ => Scan::CData { brackets: 0 },
                    };
                }
                Scan::Pi { question } => {
                    self.state = match b {
                        b'>' if question => self.after_markup(),
                        b'?' => Scan::Pi { question: true },
                        _ => Scan::Pi { question: false },
                    };
                }
            }
        }
        Ok(None)
    }

    /// After a comment or PI: back to content, or, at depth 0, drop it (it
    /// is not a frame) and wait for the next one.
    fn after_markup(&mut self) -> Scan {
        if self.depth == 0 {
            self.item_start = None;
            self.start = self.pos;
            Scan::Top
        } else {
            Scan::Content
        }
    }

    fn finish_item(&mut self, end: usize) -> (usize, usize) {
        let from = self.item_start.take().unwrap_or(self.start);
        self.start = end + 1;
        (from, end + 1)
    }

    /// A frame completed by an empty element at depth 0 (marked by
    /// `close_start` with `Scan::Top` and `depth == 0`).
    fn take_complete(&mut self) -> Option<(usize, usize)> {
        if self.state == Scan::Top && self.item_start.is_some() {
            Some(self.finish_item(self.pos - 1))
        } else {
            None
        }
    }
}

impl Scan {
    /// The `>` of a start tag: an empty element (`/>`) or an opened one.
    fn close_start(self, dec: &mut FrameDecoder) -> Scan {
        if matches!(self, Scan::StartTag { slash: true }) {
            if dec.depth == 0 {
                Scan::Top
            } else {
                Scan::Content
            }
        } else {
            dec.depth += 1;
            Scan::Content
        }
    }
}

/// A minimal element tree of one frame (at most 64 KiB, so small).
#[derive(Debug, Default)]
struct Element {
    name: String,
    attrs: Vec<(String, String)>,
    children: Vec<Element>,
    text: String,
    /// More than [`MAX_ATTRIBUTES`] attributes (only the first are kept).
    too_many_attributes: bool,
}

impl Element {
    fn attr(&self, name: &str) -> Option<&str> {
        self.attrs
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// The name of the first element of this tree with too many attributes.
    fn attribute_overflow(&self) -> Option<&str> {
        if self.too_many_attributes {
            return Some(&self.name);
        }
        self.children.iter().find_map(Element::attribute_overflow)
    }
}

fn malformed(e: impl std::fmt::Display) -> ProtocolError {
    ProtocolError::Malformed(e.to_string())
}

fn element_from(start: &BytesStart<'_>) -> Result<Element, ProtocolError> {
    let name = std::str::from_utf8(start.name().as_ref())
        .map_err(malformed)?
        .to_owned();
    let mut attrs = Vec::new();
    let mut too_many_attributes = false;
    for attr in start.attributes() {
        if attrs.len() == MAX_ATTRIBUTES {
            // the frame is refused anyway: do not parse thousands more
            too_many_attributes = true;
            break;
        }
        let attr = attr.map_err(malformed)?;
        let key = std::str::from_utf8(attr.key.as_ref())
            .map_err(malformed)?
            .to_owned();
        let value = attr.unescape_value().map_err(malformed)?.into_owned();
        attrs.push((key, value));
    }
    Ok(Element {
        name,
        attrs,
        too_many_attributes,
        ..Element::default()
    })
}

/// Parses one complete frame (exactly one element) into a tree.
fn parse_tree(bytes: &[u8]) -> Result<Element, ProtocolError> {
    let mut reader = Reader::from_reader(bytes);
    let config = reader.config_mut();
    config.check_end_names = true;
    config.trim_text(false);
    let mut stack: Vec<Element> = Vec::new();
    let mut root: Option<Element> = None;
    loop {
        let event = reader.read_event().map_err(malformed)?;
        match event {
            Event::Start(start) => {
                if root.is_some() {
                    return Err(malformed("more than one element in a frame"));
                }
                stack.push(element_from(&start)?);
            }
            Event::Empty(start) => {
                let element = element_from(&start)?;
                match stack.last_mut() {
                    Some(parent) => parent.children.push(element),
                    None if root.is_none() => root = Some(element),
                    None => return Err(malformed("more than one element in a frame")),
                }
            }
            Event::End(_) => {
                let element = stack
                    .pop()
                    .ok_or_else(|| malformed("closing tag with no open element"))?;
                match stack.last_mut() {
                    Some(parent) => parent.children.push(element),
                    None => root = Some(element),
                }
            }
            Event::Text(text) => {
                let text = text.unescape().map_err(malformed)?;
                match stack.last_mut() {
                    Some(parent) => parent.text.push_str(&text),
                    None if text.trim().is_empty() => {}
                    None => return Err(malformed("text outside an element")),
                }
            }
            Event::CData(data) => {
                let text = std::str::from_utf8(&data).map_err(malformed)?;
                match stack.last_mut() {
                    Some(parent) => parent.text.push_str(text),
                    None => return Err(malformed("CDATA outside an element")),
                }
            }
            Event::Comment(_) | Event::PI(_) | Event::Decl(_) => {}
            Event::DocType(_) => return Err(ProtocolError::Doctype),
            Event::Eof => break,
        }
    }
    if !stack.is_empty() {
        return Err(malformed("unclosed element"));
    }
    root.ok_or_else(|| malformed("empty frame"))
}

/// Parses one complete frame: a [`ProtocolError`] if it is not well-formed
/// XML, otherwise what it means ([`Frame::Bad`] if nothing valid, e.g. a
/// reading whose time is outside `times`).
pub fn parse_frame(bytes: &[u8], times: &TimeWindow) -> Result<Frame, ProtocolError> {
    let root = parse_tree(bytes)?;
    Ok(interpret(&root, times))
}

fn interpret(root: &Element, times: &TimeWindow) -> Frame {
    if let Some(name) = root.attribute_overflow() {
        return Frame::Bad {
            seq: root.attr("seq").and_then(|s| parse_seq(s).ok()),
            why: format!("<{name}> has more than {MAX_ATTRIBUTES} attributes"),
        };
    }
    match root.name.as_str() {
        "hello" => Frame::Hello {
            gateway: root.attr("gateway").unwrap_or("").to_owned(),
            token: root.attr("token").unwrap_or("").to_owned(),
        },
        "reading" => with_seq(root, |seq| {
            Ok(DataFrame {
                seq,
                readings: vec![reading(root, times)?],
            })
        }),
        "batch" => with_seq(root, |seq| {
            if !root.text.trim().is_empty() {
                return Err("unexpected text in <batch>".into());
            }
            let readings = root
                .children
                .iter()
                .map(|child| match child.name.as_str() {
                    "reading" => reading(child, times),
                    other => Err(format!("unknown element <{other}> in <batch>")),
                })
                .collect::<Result<Vec<_>, _>>()?;
            if readings.is_empty() {
                return Err("batch holds no reading".into());
            }
            Ok(DataFrame { seq, readings })
        }),
        other => Frame::Bad {
            seq: root.attr("seq").and_then(|s| parse_seq(s).ok()),
            why: format!("unknown element <{other}>"),
        },
    }
}

fn with_seq(root: &Element, body: impl FnOnce(i64) -> Result<DataFrame, String>) -> Frame {
    let seq = match root.attr("seq").map(parse_seq) {
        None => {
            return Frame::Bad {
                seq: None,
                why: format!("<{}> has no seq", root.name),
            }
        }
        Some(Err(why)) => return Frame::Bad { seq: None, why },
        Some(Ok(seq)) => seq,
    };
    match body(seq) {
        Ok(frame) => Frame::Data(frame),
        Err(why) => Frame::Bad {
            seq: Some(seq),
            why,
        },
    }
}

fn parse_seq(raw: &str) -> Result<i64, String> {
    match raw.trim().parse::<i64>() {
        Ok(seq) if seq >= 0 => Ok(seq),
        _ => Err(format!("bad seq {raw:?}: use a non-negative integer")),
    }
}

fn reading(el: &Element, times: &TimeWindow) -> Result<Reading, String> {
    let ts_raw = el.attr("ts").ok_or("reading has no ts")?;
    let ts = DateTime::parse_from_rfc3339(ts_raw.trim())
        .map_err(|e| format!("bad timestamp {ts_raw:?}: {e} (use RFC 3339)"))?
        .with_timezone(&Utc);
    times.check(ts)?;
    let sensor = el.attr("sensor").ok_or("reading has no sensor")?;
    check_name("sensor", sensor)?;
    if !el.text.trim().is_empty() {
        return Err("unexpected text in <reading>".into());
    }
    let values = el
        .children
        .iter()
        .map(|child| match child.name.as_str() {
            "value" => value(child),
            other => Err(format!("unknown element <{other}> in <reading>")),
        })
        .collect::<Result<Vec<_>, _>>()?;
    if values.is_empty() {
        return Err(format!("reading of sensor {sensor:?} holds no value"));
    }
    if values.len() > MAX_VALUES_PER_READING {
        return Err(format!(
            "reading of sensor {sensor:?} holds {} values (at most {MAX_VALUES_PER_READING})",
            values.len()
        ));
    }
    Ok(Reading {
        ts,
        sensor: sensor.to_owned(),
        values,
    })
}

fn value(el: &Element) -> Result<Value, String> {
    let name = el.attr("name").ok_or("value has no name")?;
    check_name("value name", name)?;
    let unit = match el.attr("unit") {
        Some(unit) if unit.chars().count() > MAX_LABEL_LEN => {
            return Err(format!(
                "unit of {name:?} longer than {MAX_LABEL_LEN} characters"
            ))
        }
        Some(unit) if !unit.is_empty() => Some(unit.to_owned()),
        _ => None,
    };
    if let Some(child) = el.children.first() {
        return Err(format!("unknown element <{}> in <value>", child.name));
    }
    let text = el.text.trim();
    if text.is_empty() {
        return Err(format!("value {name:?} is empty"));
    }
    let number =
        parse_number(text).ok_or_else(|| format!("bad number {text:?} for value {name:?}"))?;
    if number.abs() > MAX_ABS_VALUE {
        return Err(format!(
            "value {name:?} is {text}, larger than {MAX_ABS_VALUE:e} in magnitude"
        ));
    }
    Ok(Value {
        name: name.to_owned(),
        unit,
        value: number,
    })
}

/// A finite decimal number: digits, an optional sign, point and exponent
/// (no `inf`, `NaN` or hex).
fn parse_number(text: &str) -> Option<f64> {
    let plausible = text
        .bytes()
        .all(|b| b.is_ascii_digit() || matches!(b, b'+' | b'-' | b'.' | b'e' | b'E'))
        && text.bytes().any(|b| b.is_ascii_digit());
    if !plausible {
        return None;
    }
    text.parse::<f64>().ok().filter(|v| v.is_finite())
}

fn check_name(what: &str, value: &str) -> Result<(), String> {
    if value.trim().is_empty() {
        Err(format!("{what} is empty"))
    } else if value.chars().count() > MAX_LABEL_LEN {
        Err(format!("{what} longer than {MAX_LABEL_LEN} characters"))
    } else if value.chars().any(char::is_control) {
        Err(format!("{what} {value:?} holds control characters"))
    } else {
        Ok(())
    }
}

/// Escapes text for element content and attribute values. Control
/// characters (newlines included) become spaces, so every answer the server
/// sends is exactly one line.
pub fn escape(text: &str) -> Cow<'_, str> {
    if text.chars().any(char::is_control) {
        let flat: String = text
            .chars()
            .map(|c| if c.is_control() { ' ' } else { c })
            .collect();
        Cow::Owned(quick_xml::escape::escape(flat.as_str()).into_owned())
    } else {
        quick_xml::escape::escape(text)
    }
}

/// `<welcome/>`
pub fn welcome() -> &'static [u8] {
    b"<welcome/>\n"
}

/// `<ack seq="N"/>`
pub fn ack(out: &mut Vec<u8>, seq: i64) {
    out.extend_from_slice(format!("<ack seq=\"{seq}\"/>\n").as_bytes());
}

/// `<nack seq="N" code="bad-reading">why</nack>` (no `seq` attribute when
/// the frame carried no valid one).
pub fn nack(out: &mut Vec<u8>, seq: Option<i64>, why: &str) {
    let text = match seq {
        Some(seq) => format!(
            "<nack seq=\"{seq}\" code=\"bad-reading\">{}</nack>\n",
            escape(why)
        ),
        None => format!("<nack code=\"bad-reading\">{}</nack>\n", escape(why)),
    };
    out.extend_from_slice(text.as_bytes());
}

/// `<error code="CODE">why</error>`
pub fn error(out: &mut Vec<u8>, code: &str, why: &str) {
    out.extend_from_slice(
        format!("<error code=\"{}\">{}</error>\n", escape(code), escape(why)).as_bytes(),
    );
}

#[doc(hidden)]
pub mod fuzz_check;

#[cfg(test)]
mod tests;
