//! Unit tests of the frame decoder and the frame meanings.

use super::*;

const READING: &str = r#"<reading seq="42" ts="2026-11-23T06:00:00Z" sensor="inverter-1">
  <value name="power" unit="W">1234.5</value>
  <value name="voltage" unit="V">230.1</value>
</reading>"#;

const BATCH: &str = r#"<batch seq="43">
  <reading ts="2026-11-23T06:00:00Z" sensor="panel-3"><value name="power" unit="W">310</value></reading>
  <reading ts="2026-11-23T06:00:05+01:00" sensor="panel-4"><value name="power">-2e3</value></reading>
</batch>"#;

/// The server's clock in these tests: a little after the readings above.
fn now() -> DateTime<Utc> {
    ts("2026-11-23T06:05:00Z")
}

fn ts(text: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(text)
        .unwrap()
        .with_timezone(&Utc)
}

fn decode_all(input: &[u8]) -> Result<Vec<Frame>, ProtocolError> {
    decode_at(input, TimeBounds::default(), now())
}

fn decode_at(
    input: &[u8],
    times: TimeBounds,
    now: DateTime<Utc>,
) -> Result<Vec<Frame>, ProtocolError> {
    let mut dec = FrameDecoder::new(times);
    dec.buffer().extend_from_slice(input);
    let mut frames = Vec::new();
    while let Some(f) = dec.next_frame(now)? {
        frames.push(f);
    }
    Ok(frames)
}

/// Feeds `input` in chunks of `size` bytes, collecting frames as they come.
fn decode_in_chunks(input: &[u8], size: usize) -> Result<Vec<Frame>, ProtocolError> {
    let mut dec = FrameDecoder::default();
    let mut frames = Vec::new();
    for chunk in input.chunks(size) {
        dec.buffer().extend_from_slice(chunk);
        while let Some(f) = dec.next_frame(now())? {
            frames.push(f);
        }
    }
    Ok(frames)
}

fn data(frame: &Frame) -> &DataFrame {
    match frame {
        Frame::Data(d) => d,
        other => panic!("expected data, got {other:?}"),
    }
}

fn bad_why(input: &str) -> (Option<i64>, String) {
    match decode_all(input.as_bytes()).unwrap().as_slice() {
        [Frame::Bad { seq, why }] => (*seq, why.clone()),
        other => panic!("expected one bad frame for {input}, got {other:?}"),
    }
}

#[test]
fn a_hello_is_decoded() {
    let frames = decode_all(br#"<hello gateway="gw-17" token="abc"/>"#).unwrap();
    assert_eq!(
        frames,
        vec![Frame::Hello {
            gateway: "gw-17".into(),
            token: "abc".into()
        }]
    );
}

#[test]
fn a_hello_without_attributes_has_empty_ones() {
    let frames = decode_all(b"<hello></hello>").unwrap();
    assert_eq!(
        frames,
        vec![Frame::Hello {
            gateway: String::new(),
            token: String::new()
        }]
    );
}

#[test]
fn a_reading_is_decoded_with_all_values() {
    let frames = decode_all(READING.as_bytes()).unwrap();
    assert_eq!(frames.len(), 1);
    let d = data(&frames[0]);
    assert_eq!(d.seq, 42);
    assert_eq!(d.readings.len(), 1);
    let r = &d.readings[0];
    assert_eq!(r.sensor, "inverter-1");
    assert_eq!(r.ts.to_rfc3339(), "2026-11-23T06:00:00+00:00");
    assert_eq!(r.day().to_string(), "2026-11-23");
    assert_eq!(
        r.values,
        vec![
            Value {
                name: "power".into(),
                unit: Some("W".into()),
                value: 1234.5
            },
            Value {
                name: "voltage".into(),
                unit: Some("V".into()),
                value: 230.1
            },
        ]
    );
    assert_eq!(d.value_count(), 2);
}

#[test]
fn a_batch_is_decoded_and_offsets_become_utc() {
    let frames = decode_all(BATCH.as_bytes()).unwrap();
    let d = data(&frames[0]);
    assert_eq!(d.seq, 43);
    assert_eq!(d.readings.len(), 2);
    assert_eq!(d.readings[1].ts.to_rfc3339(), "2026-11-23T05:00:05+00:00");
    assert_eq!(d.readings[1].values[0].unit, None);
    assert_eq!(d.readings[1].values[0].value, -2000.0);
}

#[test]
fn frames_back_to_back_with_whitespace_between_are_all_decoded() {
    let input =
        format!("  \n<hello gateway=\"g\" token=\"t\"/>\r\n\t{READING}{BATCH}   {READING}\n");
    let frames = decode_all(input.as_bytes()).unwrap();
    assert_eq!(frames.len(), 4);
    assert!(matches!(frames[0], Frame::Hello { .. }));
    assert_eq!(data(&frames[1]).seq, 42);
    assert_eq!(data(&frames[2]).seq, 43);
    assert_eq!(data(&frames[3]).seq, 42);
}

#[test]
fn frames_split_at_every_possible_byte_give_the_same_result() {
    let input = format!(
        "<hello gateway=\"g\" token=\"t\"/> {READING}\n<!-- a comment -->{BATCH}<?xml version=\"1.0\"?>{READING}"
    );
    let whole = decode_all(input.as_bytes()).unwrap();
    assert_eq!(whole.len(), 4);
    for size in 1..=17 {
        assert_eq!(
            decode_in_chunks(input.as_bytes(), size).unwrap(),
            whole,
            "chunk size {size}"
        );
    }
    // and every single split point into two reads
    for cut in 0..input.len() {
        let mut dec = FrameDecoder::default();
        let mut frames = Vec::new();
        dec.buffer().extend_from_slice(&input.as_bytes()[..cut]);
        while let Some(f) = dec.next_frame(now()).unwrap() {
            frames.push(f);
        }
        dec.buffer().extend_from_slice(&input.as_bytes()[cut..]);
        while let Some(f) = dec.next_frame(now()).unwrap() {
            frames.push(f);
        }
        assert_eq!(frames, whole, "cut at {cut}");
    }
}

#[test]
fn an_incomplete_frame_waits_for_more_bytes() {
    let mut dec = FrameDecoder::default();
    dec.buffer()
        .extend_from_slice(&READING.as_bytes()[..READING.len() - 1]);
    assert_eq!(dec.next_frame(now()).unwrap(), None);
    dec.buffer().push(b'>');
    assert!(matches!(
        dec.next_frame(now()).unwrap(),
        Some(Frame::Data(_))
    ));
    assert_eq!(dec.next_frame(now()).unwrap(), None);
    assert_eq!(dec.pending_bytes(), 0);
}

#[test]
fn angle_brackets_inside_quotes_cdata_and_comments_do_not_end_a_frame() {
    let input = r#"<reading seq="1" ts="2026-11-23T06:00:00Z" sensor="a&gt;b">
        <!-- </reading> > -->
        <value name="x/>y" unit='<'><![CDATA[12]]></value>
    </reading>"#;
    let frames = decode_all(input.as_bytes()).unwrap();
    assert_eq!(
        data(&frames[0]).readings[0].values[0].unit.as_deref(),
        Some("<")
    );
    let input = input.replace("unit='<'", "unit='&lt;'");
    let frames = decode_all(input.as_bytes()).unwrap();
    let d = data(&frames[0]);
    assert_eq!(d.readings[0].sensor, "a>b");
    assert_eq!(d.readings[0].values[0].name, "x/>y");
    assert_eq!(d.readings[0].values[0].unit.as_deref(), Some("<"));
    assert_eq!(d.readings[0].values[0].value, 12.0);
}

#[test]
fn text_that_is_not_xml_is_a_protocol_error() {
    assert_eq!(
        decode_all(b"GET / HTTP/1.1\r\n").unwrap_err(),
        ProtocolError::NotXml { byte: b'G' }
    );
    assert_eq!(
        decode_all(b"{\"json\": true}").unwrap_err(),
        ProtocolError::NotXml { byte: b'{' }
    );
    // garbage after a good frame fails after the good frame is returned
    let mut dec = FrameDecoder::default();
    dec.buffer().extend_from_slice(READING.as_bytes());
    dec.buffer().extend_from_slice(b"\x00\x01\x02");
    assert!(matches!(dec.next_frame(now()), Ok(Some(Frame::Data(_)))));
    assert_eq!(
        dec.next_frame(now()).unwrap_err(),
        ProtocolError::NotXml { byte: 0 }
    );
}

#[test]
fn binary_garbage_never_panics() {
    // a simple deterministic generator: every outcome is fine but a panic
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    for round in 0..2000 {
        let mut bytes = Vec::new();
        let len = (round % 300) + 1;
        for _ in 0..len {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let pick = (state % 12) as u8;
            bytes.push(match pick {
                0 => b'<',
                1 => b'>',
                2 => b'/',
                3 => b'"',
                4 => b'!',
                5 => b'-',
                6 => b'?',
                7 => b'[',
                8 => b' ',
                _ => (state >> 8) as u8,
            });
        }
        let mut input = b"<reading seq=\"1\" ".to_vec();
        input.extend_from_slice(&bytes);
        let _ = decode_all(&input);
        let _ = decode_in_chunks(&input, 3);
    }
}

#[test]
fn a_closing_tag_that_does_not_match_is_a_protocol_error() {
    let err = decode_all(b"<reading seq=\"1\"><value>1</reading></value>").unwrap_err();
    assert!(
        matches!(err, ProtocolError::Malformed(ref m) if m.contains("reading") || m.contains("value")),
        "{err}"
    );
    let err = decode_all(b"<batch seq=\"1\"></reading>").unwrap_err();
    assert!(matches!(err, ProtocolError::Malformed(_)), "{err}");
}

#[test]
fn a_closing_tag_between_frames_is_a_protocol_error() {
    assert_eq!(
        decode_all(b"</reading>").unwrap_err(),
        ProtocolError::UnopenedClose
    );
}

#[test]
fn a_frame_over_64_kib_is_a_protocol_error_even_before_it_ends() {
    let mut dec = FrameDecoder::default();
    dec.buffer().extend_from_slice(b"<batch seq=\"1\">");
    let mut err = None;
    for _ in 0..2000 {
        dec.buffer().extend_from_slice(
            b"<reading ts=\"2026-11-23T06:00:00Z\" sensor=\"s\"><value name=\"v\">1</value></reading>",
        );
        match dec.next_frame(now()) {
            Ok(None) => {}
            Ok(Some(f)) => panic!("unexpected frame {f:?}"),
            Err(e) => {
                err = Some(e);
                break;
            }
        }
    }
    assert_eq!(err, Some(ProtocolError::FrameTooLarge));
}

#[test]
fn a_frame_of_exactly_64_kib_is_accepted() {
    let head =
        "<reading seq=\"1\" ts=\"2026-11-23T06:00:00Z\" sensor=\"s\"><value name=\"v\">1</value>";
    let tail = "</reading>";
    let pad = MAX_FRAME_BYTES - head.len() - tail.len();
    let input = format!("{head}{}{tail}", " ".repeat(pad));
    assert_eq!(input.len(), MAX_FRAME_BYTES);
    assert_eq!(decode_all(input.as_bytes()).unwrap().len(), 1);
    let input = format!("{head}{} {tail}", " ".repeat(pad));
    assert_eq!(
        decode_all(input.as_bytes()).unwrap_err(),
        ProtocolError::FrameTooLarge
    );
}

#[test]
fn a_doctype_is_refused() {
    assert_eq!(
        decode_all(b"<!DOCTYPE x [<!ENTITY a \"b\">]><x/>").unwrap_err(),
        ProtocolError::Doctype
    );
}

#[test]
fn an_unknown_element_is_a_bad_frame_with_its_seq() {
    assert_eq!(
        bad_why(r#"<status seq="7" battery="3"/>"#),
        (Some(7), "unknown element <status>".to_string())
    );
    assert_eq!(bad_why("<status/>").0, None);
}

#[test]
fn an_unknown_element_inside_a_reading_is_a_bad_frame() {
    let (seq, why) = bad_why(
        r#"<reading seq="5" ts="2026-11-23T06:00:00Z" sensor="s"><value name="v">1</value><led/></reading>"#,
    );
    assert_eq!(seq, Some(5));
    assert!(why.contains("<led>"), "{why}");
    let (_, why) = bad_why(r#"<batch seq="5"><value name="v">1</value></batch>"#);
    assert!(why.contains("<value>"), "{why}");
}

#[test]
fn a_bad_number_is_a_bad_frame() {
    for number in [
        "abc",
        "1,5",
        "NaN",
        "inf",
        "-infinity",
        "0x10",
        "1e999",
        "",
        "  ",
    ] {
        let input = format!(
            r#"<reading seq="9" ts="2026-11-23T06:00:00Z" sensor="s"><value name="power">{number}</value></reading>"#
        );
        let (seq, why) = bad_why(&input);
        assert_eq!(seq, Some(9), "{number}");
        assert!(why.contains("power"), "{number}: {why}");
    }
}

#[test]
fn numbers_in_the_usual_forms_are_accepted() {
    for (text, expected) in [
        ("1", 1.0),
        ("-0.5", -0.5),
        ("+3", 3.0),
        ("1e3", 1000.0),
        (" 2.5 ", 2.5),
    ] {
        let input = format!(
            r#"<reading seq="9" ts="2026-11-23T06:00:00Z" sensor="s"><value name="p">{text}</value></reading>"#
        );
        let frames = decode_all(input.as_bytes()).unwrap();
        assert_eq!(
            data(&frames[0]).readings[0].values[0].value,
            expected,
            "{text}"
        );
    }
}

#[test]
fn a_bad_timestamp_is_a_bad_frame() {
    for ts in [
        "yesterday",
        "2026-13-01T00:00:00Z",
        "2026-01-01 00:00:00",
        "2026-01-01",
        "1700000000",
    ] {
        let input =
            format!(r#"<reading seq="3" ts="{ts}" sensor="s"><value name="p">1</value></reading>"#);
        let (seq, why) = bad_why(&input);
        assert_eq!(seq, Some(3));
        assert!(why.contains("bad timestamp"), "{ts}: {why}");
    }
    let (_, why) = bad_why(r#"<reading seq="3" sensor="s"><value name="p">1</value></reading>"#);
    assert!(why.contains("no ts"), "{why}");
}

#[test]
fn a_reading_with_no_value_is_a_bad_frame() {
    let (seq, why) = bad_why(r#"<reading seq="4" ts="2026-11-23T06:00:00Z" sensor="s"/>"#);
    assert_eq!(seq, Some(4));
    assert!(why.contains("no value"), "{why}");
    let (_, why) = bad_why(r#"<batch seq="4"></batch>"#);
    assert!(why.contains("no reading"), "{why}");
}

#[test]
fn missing_or_bad_seq_is_a_bad_frame_without_seq() {
    let body = r#"ts="2026-11-23T06:00:00Z" sensor="s"><value name="p">1</value></reading>"#;
    for seq_attr in [
        "",
        r#"seq="-1""#,
        r#"seq="x""#,
        r#"seq="99999999999999999999""#,
    ] {
        let (seq, why) = bad_why(&format!("<reading {seq_attr} {body}"));
        assert_eq!(seq, None, "{seq_attr}");
        assert!(why.contains("seq"), "{why}");
    }
}

#[test]
fn sensor_and_value_names_are_checked() {
    let (_, why) = bad_why(
        r#"<reading seq="1" ts="2026-11-23T06:00:00Z"><value name="p">1</value></reading>"#,
    );
    assert!(why.contains("no sensor"), "{why}");
    let (_, why) = bad_why(
        r#"<reading seq="1" ts="2026-11-23T06:00:00Z" sensor=""><value name="p">1</value></reading>"#,
    );
    assert!(why.contains("sensor is empty"), "{why}");
    let (_, why) = bad_why(
        r#"<reading seq="1" ts="2026-11-23T06:00:00Z" sensor="s"><value>1</value></reading>"#,
    );
    assert!(why.contains("no name"), "{why}");
    let long = "x".repeat(MAX_LABEL_LEN + 1);
    let (_, why) = bad_why(&format!(
        r#"<reading seq="1" ts="2026-11-23T06:00:00Z" sensor="{long}"><value name="p">1</value></reading>"#
    ));
    assert!(why.contains("longer"), "{why}");
}

#[test]
fn answers_are_escaped_xml() {
    let mut out = Vec::new();
    ack(&mut out, 42);
    nack(&mut out, Some(43), "bad number \"x<y\" & more");
    nack(&mut out, None, "no seq");
    error(&mut out, "protocol", "frame larger than 65536 bytes");
    error(&mut out, "unavailable", "line one\nline two");
    let text = String::from_utf8(out).unwrap();
    assert_eq!(
        text,
        "<ack seq=\"42\"/>\n\
         <nack seq=\"43\" code=\"bad-reading\">bad number &quot;x&lt;y&quot; &amp; more</nack>\n\
         <nack code=\"bad-reading\">no seq</nack>\n\
         <error code=\"protocol\">frame larger than 65536 bytes</error>\n\
         <error code=\"unavailable\">line one line two</error>\n"
    );
    assert_eq!(text.lines().count(), 5);
    // and what we send parses as frames again
    let frames = decode_all(text.as_bytes()).unwrap();
    assert_eq!(frames.len(), 5);
}

#[test]
fn the_buffer_is_compacted_after_many_frames() {
    let mut dec = FrameDecoder::default();
    for _ in 0..1000 {
        dec.buffer().extend_from_slice(READING.as_bytes());
        assert!(dec.next_frame(now()).unwrap().is_some());
    }
    assert!(dec.buffer().len() < 32 * 1024, "{}", dec.buffer().len());
}

fn reading_at(ts: &str) -> String {
    format!(r#"<reading seq="8" ts="{ts}" sensor="s"><value name="p">1</value></reading>"#)
}

fn reading_with_value(number: &str) -> String {
    format!(
        r#"<reading seq="8" ts="2026-11-23T06:00:00Z" sensor="s"><value name="p">{number}</value></reading>"#
    )
}

/// Whether a frame decodes to data (true) or to a nack naming seq 8 whose
/// reason contains `why` (false); anything else fails the test.
fn accepted_or_nacked(frame: &str, why: &str) -> bool {
    match decode_all(frame.as_bytes()).unwrap().as_slice() {
        [Frame::Data(_)] => true,
        [Frame::Bad { seq, why: got }] => {
            assert_eq!(*seq, Some(8), "{frame}");
            assert!(got.contains(why), "{why:?} not in {got:?}");
            false
        }
        other => panic!("{frame}: {other:?}"),
    }
}

#[test]
fn a_reading_more_than_ten_minutes_ahead_of_the_clock_is_a_bad_frame() {
    let ahead = "minutes ahead";
    // now() is 06:05:00: ten minutes ahead is the last time accepted
    assert!(accepted_or_nacked(
        &reading_at("2026-11-23T06:15:00Z"),
        ahead
    ));
    assert!(!accepted_or_nacked(
        &reading_at("2026-11-23T06:15:01Z"),
        ahead
    ));
    assert!(!accepted_or_nacked(
        &reading_at("9999-12-31T23:59:59Z"),
        ahead
    ));
    // the same frame is fine once the clock has caught up
    let later = now() + TimeDelta::hours(1);
    let frames = decode_at(
        reading_at("2026-11-23T06:15:01Z").as_bytes(),
        TimeBounds::default(),
        later,
    )
    .unwrap();
    assert!(matches!(frames.as_slice(), [Frame::Data(_)]), "{frames:?}");
}

#[test]
fn a_reading_older_than_the_age_bound_is_a_bad_frame() {
    let old = "older than 30 days";
    assert!(accepted_or_nacked(&reading_at("2026-10-24T06:05:00Z"), old));
    assert!(!accepted_or_nacked(
        &reading_at("2026-10-24T06:04:59Z"),
        old
    ));
    assert!(!accepted_or_nacked(
        &reading_at("1970-01-01T00:00:00Z"),
        old
    ));
    // in a batch, one old reading refuses the frame
    let (seq, why) = bad_why(
        r#"<batch seq="8"><reading ts="2026-11-23T06:00:00Z" sensor="s"><value name="p">1</value></reading><reading ts="2020-01-01T00:00:00Z" sensor="s"><value name="p">1</value></reading></batch>"#,
    );
    assert_eq!(seq, Some(8));
    assert!(why.contains(old), "{why}");
    // the bound is configurable
    let week = TimeBounds {
        max_age: TimeDelta::days(7),
        ..TimeBounds::default()
    };
    match decode_at(reading_at("2026-11-10T00:00:00Z").as_bytes(), week, now())
        .unwrap()
        .as_slice()
    {
        [Frame::Bad { why, .. }] => assert!(why.contains("older than 7 days"), "{why}"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_value_out_of_range_is_a_bad_frame() {
    let range = "larger than 1e15";
    assert!(accepted_or_nacked(&reading_with_value("1e15"), range));
    assert!(accepted_or_nacked(&reading_with_value("-1e15"), range));
    assert!(accepted_or_nacked(
        &reading_with_value("123456789012.5"),
        range
    ));
    for number in ["1e308", "-1.7976931348623157e308", "1.000001e15", "-2e15"] {
        assert!(
            !accepted_or_nacked(&reading_with_value(number), range),
            "{number}"
        );
    }
}

#[test]
fn a_reading_holds_at_most_64_values() {
    let frame = |n: usize| {
        let values: String = (0..n)
            .map(|i| format!(r#"<value name="v{i}">1</value>"#))
            .collect();
        format!(r#"<reading seq="8" ts="2026-11-23T06:00:00Z" sensor="s">{values}</reading>"#)
    };
    assert!(accepted_or_nacked(&frame(MAX_VALUES_PER_READING), "values"));
    assert!(!accepted_or_nacked(
        &frame(MAX_VALUES_PER_READING + 1),
        "65 values (at most 64)"
    ));
    assert!(!accepted_or_nacked(&frame(1500), "1500 values"));
}

#[test]
fn sensors_names_and_units_are_at_most_64_characters() {
    let frame = |sensor: &str, name: &str, unit: &str| {
        format!(
            r#"<reading seq="8" ts="2026-11-23T06:00:00Z" sensor="{sensor}"><value name="{name}" unit="{unit}">1</value></reading>"#
        )
    };
    let ok = "é".repeat(MAX_LABEL_LEN);
    let long = "x".repeat(MAX_LABEL_LEN + 1);
    assert!(accepted_or_nacked(&frame(&ok, &ok, &ok), "longer"));
    assert!(!accepted_or_nacked(
        &frame(&long, "p", "W"),
        "sensor longer than 64"
    ));
    assert!(!accepted_or_nacked(
        &frame("s", &long, "W"),
        "value name longer than 64"
    ));
    assert!(!accepted_or_nacked(
        &frame("s", "p", &long),
        "longer than 64"
    ));
}

#[test]
fn an_element_with_too_many_attributes_is_a_bad_frame() {
    let attrs = |n: usize| -> String { (0..n).map(|i| format!(r#" a{i}="x""#)).collect() };
    let on_reading = |n: usize| {
        format!(
            r#"<reading seq="8" ts="2026-11-23T06:00:00Z" sensor="s"{}><value name="p">1</value></reading>"#,
            attrs(n)
        )
    };
    let why = "more than 16 attributes";
    // seq, ts and sensor plus extra attributes up to the bound are fine
    assert!(accepted_or_nacked(&on_reading(MAX_ATTRIBUTES - 3), why));
    assert!(!accepted_or_nacked(&on_reading(MAX_ATTRIBUTES - 2), why));
    let huge = on_reading(5000);
    assert!(huge.len() < MAX_FRAME_BYTES, "{}", huge.len());
    assert!(!accepted_or_nacked(
        &huge,
        "<reading> has more than 16 attributes"
    ));
    // on a nested element too
    let nested = format!(
        r#"<reading seq="8" ts="2026-11-23T06:00:00Z" sensor="s"><value name="p"{}>1</value></reading>"#,
        attrs(MAX_ATTRIBUTES)
    );
    assert!(!accepted_or_nacked(&nested, "<value> has more than 16"));
}
