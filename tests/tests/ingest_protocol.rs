//! Gateway protocol v1 against the real test Cassandra: an ingest server
//! runs in-process (the library's own `serve`) on a fresh tenant keyspace,
//! and gateways speak to it over TCP. Every bad-input case of DESIGN.md
//! gets its documented answer.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, NaiveDate, TimeDelta, Utc};
use gateway_sim::answer::Answer;
use gateway_sim::client::{ClientError, Gateway};
use ingest::server::Limits;
use ingest::settings::Settings;
use ingest::write_queue::Grouping;
use provision_testkit::apps::{count, eventually, loopback, spawn_ingest, Ingest};
use provision_testkit::query_rows;
use tenant_schema::model::new_gateway_token;
use tokio_util::sync::CancellationToken;

/// The UTC day the tests' readings fall on: yesterday, so that every time
/// of it is in the past and well within the 30 days ingest accepts.
fn test_day() -> NaiveDate {
    Utc::now().date_naive() - TimeDelta::days(1)
}

/// 06:00:00 UTC of the test day: the time most readings carry.
fn t0() -> String {
    format!("{}T06:00:00Z", test_day())
}

fn limits() -> Limits {
    Limits {
        idle_timeout: Duration::from_secs(60),
        max_connections: 100,
        max_pipeline: 128,
        ..Limits::from(&Settings::default())
    }
}

fn day(ts: &str) -> NaiveDate {
    DateTime::parse_from_rfc3339(ts).unwrap().date_naive()
}

fn reading(seq: i64, ts: &str, sensor: &str, power: &str) -> String {
    format!(
        r#"<reading seq="{seq}" ts="{ts}" sensor="{sensor}"><value name="power" unit="W">{power}</value></reading>"#
    )
}

/// Sends each case's frame (whose seq is 10 + its index) and expects a
/// `bad-reading` nack whose reason contains the case's text; after each,
/// a good reading on the same connection is acked.
async fn nacked_then_usable(gw: &mut Gateway, cases: &[(&str, String, &str)], t0: &str) {
    for (i, (case, frame, why_part)) in cases.iter().enumerate() {
        gw.send(frame.as_bytes()).await.unwrap();
        match next(gw).await {
            Answer::Nack { seq, code, why } => {
                assert_eq!(seq, Some(10 + i as i64), "{case}");
                assert_eq!(code, "bad-reading", "{case}");
                assert!(why.contains(why_part), "{case}: {why}");
            }
            other => panic!("{case}: expected a nack, got {other:?}"),
        }
        let good = 100 + i as i64;
        gw.send(reading(good, t0, &format!("ok-{i}"), "5").as_bytes())
            .await
            .unwrap();
        assert_eq!(next(gw).await, Answer::Ack { seq: good }, "{case}");
    }
}

async fn next(gw: &mut Gateway) -> Answer {
    gw.answer()
        .await
        .expect("an answer")
        .expect("the connection stays open")
}

/// Reads answers until the server closes; returns them.
async fn until_closed(gw: &mut Gateway) -> Vec<Answer> {
    let mut answers = Vec::new();
    loop {
        match gw.answer().await {
            Ok(Some(a)) => answers.push(a),
            Ok(None) => return answers,
            Err(ClientError::Io(_)) => return answers,
            Err(e) => panic!("waiting for the close: {e}"),
        }
    }
}

fn error_code(answer: &Answer) -> &str {
    match answer {
        Answer::Error { code, .. } => code,
        other => panic!("expected an error, got {other:?}"),
    }
}

#[tokio::test]
async fn readings_sent_over_tcp_land_in_readings_and_latest() {
    let d = test_day();
    let t0 = t0();
    let ingest = Ingest::start(limits()).await;
    let token = ingest.commission("gw-17").await;
    let mut gw = ingest.login("gw-17", &token).await;

    let frame = format!(
        r#"<reading seq="42" ts="{t0}" sensor="inverter-1">
             <value name="power" unit="W">1234.5</value>
             <value name="voltage" unit="V">230.1</value>
           </reading>
           <batch seq="43">
             <reading ts="{d}T06:00:05Z" sensor="panel-3"><value name="power" unit="W">310</value></reading>
             <reading ts="{d}T05:59:00Z" sensor="inverter-1"><value name="power" unit="W">999</value></reading>
           </batch>"#
    );
    gw.send(frame.as_bytes()).await.unwrap();
    assert_eq!(next(&mut gw).await, Answer::Ack { seq: 42 });
    assert_eq!(next(&mut gw).await, Answer::Ack { seq: 43 });

    let rows = ingest.readings("gw-17", day(&t0)).await;
    assert_eq!(
        rows,
        vec![
            (
                "inverter-1".into(),
                "power".into(),
                1234.5,
                Some("W".into()),
                42
            ),
            (
                "inverter-1".into(),
                "voltage".into(),
                230.1,
                Some("V".into()),
                42
            ),
            (
                "inverter-1".into(),
                "power".into(),
                999.0,
                Some("W".into()),
                43
            ),
            (
                "panel-3".into(),
                "power".into(),
                310.0,
                Some("W".into()),
                43
            ),
        ]
    );

    // latest holds the newest value per sensor and name: the older
    // inverter reading of the batch (05:59) did not overwrite 06:00
    let latest: Vec<(String, String, f64, Option<DateTime<Utc>>)> = query_rows(
        &ingest.admin,
        format!(
            "SELECT sensor, name, value, last_seen FROM {}.latest WHERE gateway_id = 'gw-17'",
            ingest.tenant.keyspace
        ),
        (),
    )
    .await;
    let values: Vec<(&str, &str, f64)> = latest
        .iter()
        .map(|(s, n, v, _)| (s.as_str(), n.as_str(), *v))
        .collect();
    assert_eq!(
        values,
        vec![
            ("inverter-1", "power", 1234.5),
            ("inverter-1", "voltage", 230.1),
            ("panel-3", "power", 310.0),
        ]
    );
    let last_seen = latest[0].3.expect("last_seen is set");
    assert!(
        (Utc::now() - last_seen).num_seconds().abs() < 60,
        "{last_seen}"
    );
    assert_eq!(
        ingest
            .metrics
            .acks
            .load(std::sync::atomic::Ordering::Relaxed),
        2
    );
    ingest.stop().await;
}

/// A frame too big for one request (see `store::ONE_REQUEST_BYTES`) goes
/// as one batch per partition: every reading of both days lands, and
/// `latest` holds the newest of them.
#[tokio::test]
async fn a_frame_too_big_for_one_request_lands_in_full_across_two_days() {
    let ingest = Ingest::start(limits()).await;
    let token = ingest.commission("gw-big").await;
    let mut gw = ingest.login("gw-big", &token).await;

    let days = [test_day() - TimeDelta::days(1), test_day()];
    let per_day = 150;
    let mut frame = String::from(r#"<batch seq="7">"#);
    for d in days {
        for i in 0..per_day {
            frame.push_str(&format!(
                r#"<reading ts="{d}T{:02}:{:02}:00Z" sensor="string-{}"><value name="power" unit="W">{i}</value></reading>"#,
                i / 60,
                i % 60,
                i % 3
            ));
        }
    }
    frame.push_str("</batch>");
    let window = ingest::protocol::TimeBounds::default().window(Utc::now());
    let Ok(ingest::protocol::Frame::Data(parsed)) =
        ingest::protocol::parse_frame(frame.as_bytes(), &window)
    else {
        panic!("the test frame does not parse")
    };
    assert!(ingest::store::estimated_bytes(&parsed) > ingest::store::ONE_REQUEST_BYTES);

    gw.send(frame.as_bytes()).await.unwrap();
    assert_eq!(next(&mut gw).await, Answer::Ack { seq: 7 });
    for day in days {
        assert_eq!(ingest.reading_count("gw-big", day).await, per_day, "{day}");
    }
    let latest: Vec<(String, f64)> = query_rows(
        &ingest.admin,
        format!(
            "SELECT sensor, value FROM {}.latest WHERE gateway_id = 'gw-big'",
            ingest.tenant.keyspace
        ),
        (),
    )
    .await;
    // the newest reading of each string is on the second day: i = 147, 148, 149
    assert_eq!(
        latest,
        vec![
            ("string-0".into(), 147.0),
            ("string-1".into(), 148.0),
            ("string-2".into(), 149.0),
        ]
    );
    ingest.stop().await;
}

#[tokio::test]
async fn a_wrong_token_an_unknown_gateway_and_a_revoked_token_get_the_auth_error_and_close() {
    let t0 = t0();
    let ingest = Ingest::start(limits()).await;
    let token = ingest.commission("gw-1").await;
    let revoked_token = ingest.commission("gw-revoked").await;
    ingest.revoke("gw-revoked").await;

    let cases = [
        ("wrong token", "gw-1".to_owned(), new_gateway_token()),
        ("unknown gateway", "gw-nobody".to_owned(), token.clone()),
        ("revoked token", "gw-revoked".to_owned(), revoked_token),
        ("empty token", "gw-1".to_owned(), String::new()),
        ("invalid gateway id", "gw 1/..".to_owned(), token.clone()),
    ];
    for (case, id, tok) in cases {
        let mut gw = Gateway::connect(&ingest.addr).await.unwrap();
        let answer = gw.hello(&id, &tok).await.unwrap();
        assert_eq!(error_code(&answer), "auth", "{case}: {answer:?}");
        // the connection is closed: nothing more comes, a reading is not acked
        let _ = gw.send(reading(1, &t0, "s", "1").as_bytes()).await;
        assert_eq!(until_closed(&mut gw).await, vec![], "{case}");
    }

    // a reading before any hello is refused the same way
    let mut gw = Gateway::connect(&ingest.addr).await.unwrap();
    gw.send(reading(1, &t0, "s", "1").as_bytes()).await.unwrap();
    let answers = until_closed(&mut gw).await;
    assert_eq!(answers.len(), 1, "{answers:?}");
    assert_eq!(error_code(&answers[0]), "auth");

    // nothing of it was written, and the right token still works
    assert_eq!(ingest.reading_count("gw-1", day(&t0)).await, 0);
    let mut gw = ingest.login("gw-1", &token).await;
    gw.send(reading(7, &t0, "s", "1").as_bytes()).await.unwrap();
    assert_eq!(next(&mut gw).await, Answer::Ack { seq: 7 });
    ingest.stop().await;
}

#[tokio::test]
async fn bad_readings_get_a_nack_and_the_connection_stays_usable() {
    let d = test_day();
    let t0 = t0();
    let ingest = Ingest::start(limits()).await;
    let token = ingest.commission("gw-1").await;
    let mut gw = ingest.login("gw-1", &token).await;

    let cases = [
        ("bad number", reading(10, &t0, "s", "12,5"), "bad number"),
        (
            "bad timestamp",
            reading(11, &format!("{d} 06:00"), "s", "1"),
            "bad timestamp",
        ),
        (
            "no value",
            format!(r#"<reading seq="12" ts="{t0}" sensor="s"></reading>"#),
            "no value",
        ),
        (
            "unknown element",
            r#"<status seq="13" battery="low"/>"#.to_owned(),
            "unknown element",
        ),
        (
            "unknown element inside a reading",
            format!(
                r#"<reading seq="14" ts="{t0}" sensor="s"><value name="p">1</value><led/></reading>"#
            ),
            "unknown element",
        ),
    ];
    nacked_then_usable(&mut gw, &cases, &t0).await;
    let rows = ingest.readings("gw-1", day(&t0)).await;
    let seqs: Vec<i64> = rows.iter().map(|r| r.4).collect();
    assert_eq!(
        seqs,
        vec![100, 101, 102, 103, 104],
        "only the good frames were written"
    );
    ingest.stop().await;
}

#[tokio::test]
async fn unrecoverable_framing_gets_a_protocol_error_and_closes() {
    let t0 = t0();
    let ingest = Ingest::start(limits()).await;
    let token = ingest.commission("gw-1").await;
    let big = format!(
        r#"<batch seq="3">{}</batch>"#,
        format!(r#"<reading ts="{t0}" sensor="s"><value name="p">1</value></reading>"#)
            .repeat(1200)
    );
    assert!(big.len() > 64 * 1024);
    let cases = [
        ("not XML", "GET / HTTP/1.1\r\nHost: x\r\n\r\n".to_owned()),
        ("frame over 64 KiB", big),
        (
            "mismatched closing tag",
            format!(r#"<reading seq="3" ts="{t0}" sensor="s"><value name="p">1</reading></value>"#),
        ),
    ];
    for (case, bad) in cases {
        let mut gw = ingest.login("gw-1", &token).await;
        // a good frame pipelined before the bad one is still written and acked
        let mut bytes = reading(1, &t0, case, "1").into_bytes();
        bytes.extend_from_slice(bad.as_bytes());
        bytes.extend_from_slice(reading(2, &t0, case, "2").as_bytes());
        let _ = gw.send(&bytes).await;
        let answers = until_closed(&mut gw).await;
        assert_eq!(answers.len(), 2, "{case}: {answers:?}");
        assert_eq!(answers[0], Answer::Ack { seq: 1 }, "{case}");
        assert_eq!(error_code(&answers[1]), "protocol", "{case}: {answers:?}");
    }
    // only the frames before each error were written
    let rows = ingest.readings("gw-1", day(&t0)).await;
    assert_eq!(rows.len(), 3, "{rows:?}");
    assert!(rows.iter().all(|r| r.4 == 1), "{rows:?}");
    ingest.stop().await;
}

#[tokio::test]
async fn pipelined_frames_are_acked_in_order_while_writes_run_concurrently() {
    let d = test_day();
    let t0 = t0();
    let ingest = Ingest::start(limits()).await;
    let token = ingest.commission("gw-1").await;
    let mut gw = ingest.login("gw-1", &token).await;

    // 300 frames in one write, every 10th of them bad: the answers must come
    // back exactly in frame order
    let mut bytes = Vec::new();
    for seq in 0..300i64 {
        let ts = format!("{d}T06:{:02}:{:02}Z", seq / 60, seq % 60);
        let power = if seq % 10 == 9 {
            "oops".to_owned()
        } else {
            seq.to_string()
        };
        bytes.extend_from_slice(reading(seq, &ts, "s", &power).as_bytes());
        bytes.push(b'\n');
    }
    gw.send(&bytes).await.unwrap();
    for seq in 0..300i64 {
        let answer = next(&mut gw).await;
        if seq % 10 == 9 {
            assert!(
                matches!(answer, Answer::Nack { seq: Some(s), .. } if s == seq),
                "{seq}: {answer:?}"
            );
        } else {
            assert_eq!(answer, Answer::Ack { seq }, "answers out of order");
        }
    }
    assert_eq!(ingest.reading_count("gw-1", day(&t0)).await, 270);
    ingest.stop().await;
}

/// `gateways` gateways `gw-<g>`, commissioned and logged in, each sending
/// `frames` readings (seq 0.., one a second from `hour`:00 of the test day,
/// power `g * 1000 + seq`) in one write, and each getting every ack in its
/// order.
async fn pipeline_fleet(ingest: &Ingest, gateways: usize, frames: i64, hour: u32) {
    let d = test_day();
    let mut logged_in = Vec::new();
    for g in 0..gateways {
        let id = format!("gw-{g}");
        let token = ingest.commission(&id).await;
        logged_in.push(ingest.login(&id, &token).await);
    }
    let sends = logged_in
        .into_iter()
        .enumerate()
        .map(|(g, mut gw)| async move {
            let mut bytes = Vec::new();
            for seq in 0..frames {
                let ts = format!("{d}T{hour:02}:{:02}:{:02}Z", seq / 60, seq % 60);
                let power = (g as i64 * 1000 + seq).to_string();
                bytes.extend_from_slice(reading(seq, &ts, "s", &power).as_bytes());
            }
            gw.send(&bytes).await.unwrap();
            for seq in 0..frames {
                assert_eq!(next(&mut gw).await, Answer::Ack { seq }, "gw-{g}");
            }
        });
    futures::future::join_all(sends).await;
}

/// With one request in flight, frames of many connections wait together
/// and go as shared requests: every frame still lands, is acked in its
/// connection's order, and `latest` holds each gateway's newest value even
/// when several of its frames were written in one request.
#[tokio::test]
async fn frames_of_many_connections_share_write_requests_and_all_land() {
    let t0 = t0();
    let ingest = Ingest::start(Limits {
        writes: Grouping {
            in_flight: 1,
            max_frames: 32,
            linger: Duration::ZERO,
        },
        ..limits()
    })
    .await;
    const GATEWAYS: usize = 10;
    const FRAMES: i64 = 100;
    pipeline_fleet(&ingest, GATEWAYS, FRAMES, 6).await;

    let frames = GATEWAYS as u64 * FRAMES as u64;
    let requests = ingest
        .metrics
        .write_requests
        .load(std::sync::atomic::Ordering::Relaxed);
    assert!(
        requests < frames,
        "{frames} frames took {requests} requests: none were grouped"
    );
    for g in 0..GATEWAYS {
        let id = format!("gw-{g}");
        let rows = ingest.readings(&id, day(&t0)).await;
        assert_eq!(rows.len(), FRAMES as usize, "{id}");
        let latest: Vec<(f64,)> = query_rows(
            &ingest.admin,
            format!(
                "SELECT value FROM {}.latest WHERE gateway_id = ?",
                ingest.tenant.keyspace
            ),
            (&id,),
        )
        .await;
        let newest = (g as i64 * 1000 + FRAMES - 1) as f64;
        assert_eq!(latest, vec![(newest,)], "{id}");
    }
    ingest.stop().await;
}

/// With only a few frames allowed in flight over all connections, a fleet
/// that pipelines far more is held back (its connections stop being read),
/// never refused: every frame is acked in its connection's order and lands.
#[tokio::test]
async fn the_bound_on_frames_in_flight_holds_a_fleet_back_and_loses_nothing() {
    let t0 = t0();
    let ingest = Ingest::start(Limits {
        max_frames_in_flight: 4,
        ..limits()
    })
    .await;
    const GATEWAYS: usize = 10;
    const FRAMES: i64 = 60;
    pipeline_fleet(&ingest, GATEWAYS, FRAMES, 7).await;
    let held_back = ingest
        .metrics
        .frames_held_back
        .load(std::sync::atomic::Ordering::Relaxed);
    assert!(
        held_back > 0,
        "600 frames and 4 permits: no connection waited"
    );
    for g in 0..GATEWAYS {
        let id = format!("gw-{g}");
        assert_eq!(
            ingest.reading_count(&id, day(&t0)).await,
            FRAMES as usize,
            "{id}"
        );
    }
    ingest.stop().await;
}

/// The linger only holds a request back while other requests are in
/// flight: a frame that finds the queue idle is written and acked at once,
/// even with a linger far longer than a write.
#[tokio::test]
async fn a_frame_that_finds_no_write_in_flight_is_not_held_back_by_the_linger() {
    let d = test_day();
    let t0 = t0();
    const LINGER: Duration = Duration::from_secs(5);
    let ingest = Ingest::start(Limits {
        writes: Grouping {
            in_flight: 8,
            max_frames: 128,
            linger: LINGER,
        },
        ..limits()
    })
    .await;
    let token = ingest.commission("gw-1").await;
    let mut gw = ingest.login("gw-1", &token).await;
    for seq in 0..3 {
        let ts = format!("{d}T06:00:0{seq}Z");
        let sent = std::time::Instant::now();
        gw.send(reading(seq, &ts, "s", "1").as_bytes())
            .await
            .unwrap();
        assert_eq!(next(&mut gw).await, Answer::Ack { seq });
        let took = sent.elapsed();
        assert!(took < LINGER / 2, "frame {seq} was acked after {took:?}");
    }
    assert_eq!(ingest.reading_count("gw-1", day(&t0)).await, 3);
    ingest.stop().await;
}

#[tokio::test]
async fn idle_connections_time_out_and_the_connection_cap_holds() {
    let t0 = t0();
    let ingest = Ingest::start(limits()).await;
    let token = ingest.commission("gw-1").await;

    // a server with a 1 s idle timeout
    let shutdown = CancellationToken::new();
    let idle_limits = Limits {
        idle_timeout: Duration::from_secs(1),
        ..limits()
    };
    let (idle_addr, _idle) =
        spawn_ingest(&ingest.store, &ingest.metrics, idle_limits, &shutdown).await;
    let mut gw = Gateway::login(&idle_addr, "gw-1", &token).await.unwrap();
    let started = std::time::Instant::now();
    let answers = until_closed(&mut gw).await;
    let waited = started.elapsed();
    assert_eq!(answers.len(), 1, "{answers:?}");
    assert_eq!(error_code(&answers[0]), "idle");
    assert!(
        waited >= Duration::from_millis(900) && waited < Duration::from_secs(10),
        "{waited:?}"
    );

    // a busy connection is not idle: frames every 300 ms for 2 s keep it open
    let mut gw = Gateway::login(&idle_addr, "gw-1", &token).await.unwrap();
    for seq in 0..7 {
        tokio::time::sleep(Duration::from_millis(300)).await;
        gw.send(reading(seq, &t0, "busy", "1").as_bytes())
            .await
            .unwrap();
        assert_eq!(next(&mut gw).await, Answer::Ack { seq });
    }

    // a server capped at 2 connections refuses the third with "busy"
    let cap_limits = Limits {
        max_connections: 2,
        ..limits()
    };
    let (cap_addr, _cap) =
        spawn_ingest(&ingest.store, &ingest.metrics, cap_limits, &shutdown).await;
    let first = Gateway::login(&cap_addr, "gw-1", &token).await.unwrap();
    let second = Gateway::login(&cap_addr, "gw-1", &token).await.unwrap();
    let mut third = Gateway::connect(&cap_addr).await.unwrap();
    let answers = until_closed(&mut third).await;
    assert_eq!(answers.len(), 1, "{answers:?}");
    assert_eq!(error_code(&answers[0]), "busy");
    // once one leaves, a new one gets in
    drop(first);
    let mut admitted = None;
    for _ in 0..50 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        if let Ok(gw) = Gateway::login(&cap_addr, "gw-1", &token).await {
            admitted = Some(gw);
            break;
        }
    }
    assert!(admitted.is_some(), "a slot frees when a connection closes");
    drop(second);
    shutdown.cancel();
    ingest.stop().await;
}

#[tokio::test]
async fn shutdown_acks_in_flight_frames_and_every_acked_frame_is_written() {
    let d = test_day();
    let t0 = t0();
    let ingest = Ingest::start(limits()).await;
    let token = ingest.commission("gw-1").await;
    let mut gw = ingest.login("gw-1", &token).await;
    let mut bytes = Vec::new();
    for seq in 0..200i64 {
        let ts = format!("{d}T07:{:02}:{:02}Z", seq / 60, seq % 60);
        bytes.extend_from_slice(reading(seq, &ts, "s", "1").as_bytes());
    }
    gw.send(&bytes).await.unwrap();
    // the first ack proves frames are in flight; then SIGTERM's equivalent
    assert_eq!(next(&mut gw).await, Answer::Ack { seq: 0 });
    ingest.shutdown.cancel();
    let answers = until_closed(&mut gw).await;
    let last = answers
        .last()
        .expect("a shutdown error ends the connection");
    assert_eq!(error_code(last), "shutdown", "{answers:?}");
    let acked: Vec<i64> = std::iter::once(0)
        .chain(answers.iter().filter_map(|a| match a {
            Answer::Ack { seq } => Some(*seq),
            _ => None,
        }))
        .collect();
    assert_eq!(
        acked,
        (0..acked.len() as i64).collect::<Vec<_>>(),
        "acks in order"
    );
    let written: std::collections::HashSet<i64> = ingest
        .readings("gw-1", day(&t0))
        .await
        .into_iter()
        .map(|r| r.4)
        .collect();
    for seq in &acked {
        assert!(
            written.contains(seq),
            "frame {seq} was acked but not written"
        );
    }
    ingest.stop().await;
}

/// Opens a TCP connection from `source` that sends nothing.
async fn silent_socket(addr: &str, source: std::net::IpAddr) -> tokio::net::TcpStream {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind(std::net::SocketAddr::new(source, 0)).unwrap();
    socket
        .connect(addr.parse().unwrap())
        .await
        .unwrap_or_else(|e| panic!("connect from {source}: {e}"))
}

/// 1,500 sockets from 100 addresses that never say hello (15 each, under
/// the per-address cap, so the global cap of connections without a hello
/// is what they hit) neither take the slots of logged-in gateways nor keep
/// a new gateway from saying hello: the oldest silent ones are evicted.
#[tokio::test]
async fn silent_sockets_from_many_addresses_do_not_lock_out_a_real_gateway() {
    let d = test_day();
    const SILENT: usize = 1500;
    const ADDRESSES: u32 = 100;
    let ingest = Ingest::start(Limits {
        max_connections: 100,
        max_unauthenticated: 200,
        max_unauthenticated_per_address: 32,
        // evictions, not the hello deadline, are what this test is about
        hello_timeout: Duration::from_secs(60),
        ..limits()
    })
    .await;
    let token = ingest.commission("gw-real").await;
    let mut silent = Vec::with_capacity(SILENT + 500);
    for chunk in (0..SILENT).collect::<Vec<_>>().chunks(100) {
        let opened = futures::future::join_all(
            chunk
                .iter()
                .map(|i| silent_socket(&ingest.addr, loopback(2 + (*i as u32 % ADDRESSES)))),
        )
        .await;
        silent.extend(opened);
    }
    let metrics = ingest.metrics.clone();
    eventually(
        Duration::from_secs(30),
        "every silent socket accepted",
        || count(&metrics.connections_total) >= SILENT as u64,
    )
    .await;
    assert!(count(&metrics.connections_evicted) >= (SILENT - 200) as u64);
    assert!(count(&metrics.connections_unauthenticated) <= 200);

    // the real gateway, from 127.0.0.1, gets in at the first try
    let mut gw = Gateway::connect_from(&ingest.addr, loopback(1))
        .await
        .unwrap();
    assert_eq!(gw.hello("gw-real", &token).await.unwrap(), Answer::Welcome);
    // the attack goes on: 500 more silent sockets
    for chunk in (0..500u32).collect::<Vec<_>>().chunks(100) {
        let opened = futures::future::join_all(
            chunk
                .iter()
                .map(|i| silent_socket(&ingest.addr, loopback(2 + i % ADDRESSES))),
        )
        .await;
        silent.extend(opened);
    }
    for seq in 0..5 {
        let ts = format!("{d}T06:00:0{seq}Z");
        gw.send(reading(seq, &ts, "s", "1").as_bytes())
            .await
            .unwrap();
        assert_eq!(next(&mut gw).await, Answer::Ack { seq });
    }
    assert_eq!(ingest.reading_count("gw-real", d).await, 5);
    drop(silent);
    ingest.stop().await;
}

/// The hello deadline runs from accept: a hello sent one byte a second is
/// cut off at the deadline, and so is a socket that sends nothing.
#[tokio::test]
async fn a_hello_trickled_a_byte_a_second_is_closed_at_the_hello_deadline() {
    const DEADLINE: Duration = Duration::from_secs(3);
    let ingest = Ingest::start(Limits {
        hello_timeout: DEADLINE,
        ..limits()
    })
    .await;
    let token = ingest.commission("gw-slow").await;
    let gw = Gateway::connect(&ingest.addr).await.unwrap();
    let connected = std::time::Instant::now();
    let (mut answers, mut frames) = gw.split();
    let hello = gateway_sim::frames::hello("gw-slow", &token);
    let trickle = tokio::spawn(async move {
        for byte in hello.as_bytes() {
            if frames.send(&[*byte]).await.is_err() {
                return;
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    });
    let answer = answers
        .next_within(Duration::from_secs(20))
        .await
        .unwrap()
        .expect("an answer before the close");
    let took = connected.elapsed();
    assert_eq!(error_code(&answer), "auth", "{answer:?}");
    assert!(
        took >= DEADLINE - Duration::from_millis(100) && took < DEADLINE + Duration::from_secs(2),
        "closed after {took:?}"
    );
    assert!(matches!(
        answers.next_within(Duration::from_secs(5)).await,
        Ok(None) | Err(_)
    ));
    trickle.abort();

    let mut quiet = Gateway::connect(&ingest.addr).await.unwrap();
    let answers = until_closed(&mut quiet).await;
    assert_eq!(answers.len(), 1, "{answers:?}");
    assert_eq!(error_code(&answers[0]), "auth");
    assert_eq!(
        ingest
            .metrics
            .hello_refusals(ingest::auth::HelloRefusal::Timeout),
        2
    );
    // a prompt hello still gets in
    ingest.login("gw-slow", &token).await;
    ingest.stop().await;
}

/// One address holds at most its share of connections without a hello;
/// other addresses are not affected, and a freed place can be taken again.
#[tokio::test]
async fn one_address_holds_only_its_share_of_connections_without_a_hello() {
    let ingest = Ingest::start(Limits {
        max_unauthenticated_per_address: 4,
        hello_timeout: Duration::from_secs(60),
        ..limits()
    })
    .await;
    let token = ingest.commission("gw-1").await;
    let greedy = loopback(7);
    let mut held = Vec::new();
    for _ in 0..4 {
        held.push(silent_socket(&ingest.addr, greedy).await);
    }
    let metrics = ingest.metrics.clone();
    eventually(Duration::from_secs(10), "4 accepted", || {
        count(&metrics.connections_unauthenticated) == 4
    })
    .await;
    let mut fifth = Gateway::connect_from(&ingest.addr, greedy).await.unwrap();
    let answers = until_closed(&mut fifth).await;
    assert_eq!(answers.len(), 1, "{answers:?}");
    assert_eq!(error_code(&answers[0]), "busy");
    assert_eq!(
        ingest
            .metrics
            .rejected(ingest::admission::Rejection::Address),
        1
    );
    // another address is not affected
    let mut other = Gateway::connect_from(&ingest.addr, loopback(8))
        .await
        .unwrap();
    assert_eq!(other.hello("gw-1", &token).await.unwrap(), Answer::Welcome);
    // once one of the four leaves, the address may connect again
    drop(held.pop());
    eventually(Duration::from_secs(10), "the slot freed", || {
        count(&metrics.connections_unauthenticated) == 3
    })
    .await;
    let mut again = Gateway::connect_from(&ingest.addr, greedy).await.unwrap();
    assert_eq!(again.hello("gw-1", &token).await.unwrap(), Answer::Welcome);
    ingest.stop().await;
}

/// A gateway revoked while it streams is told so and closed within 10 s,
/// whether `revoked_at` is set with the hash kept, the hash is deleted too
/// (as the admin panel does), or it is commissioned again with a new token;
/// a gateway not revoked keeps streaming. Nothing is acked after the error,
/// and everything acked was written.
#[tokio::test]
async fn a_gateway_revoked_while_streaming_is_closed_within_10_s() {
    let d = test_day();
    let ingest = Ingest::start(limits()).await;
    let ks = ingest.tenant.keyspace.clone();
    let ways = ["revoked-at-only", "hash-deleted", "new-token", "kept"];
    let mut streams = Vec::new();
    for id in ways {
        let token = ingest.commission(id).await;
        let gw = ingest.login(id, &token).await;
        let (answers, mut frames) = gw.split();
        let sender = tokio::spawn(async move {
            for seq in 0..10_000i64 {
                let ts = format!(
                    "{d}T08:{:02}:{:02}.{:03}Z",
                    seq / 6000,
                    seq / 100 % 60,
                    seq % 100 * 10
                );
                if frames
                    .send(reading(seq, &ts, "s", "1").as_bytes())
                    .await
                    .is_err()
                {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        });
        streams.push((id, answers, sender));
    }
    // every stream is acked before the revocations
    let mut acked: std::collections::HashMap<&str, Vec<i64>> = Default::default();
    for (id, answers, _) in &mut streams {
        for _ in 0..3 {
            match answers.next_within(Duration::from_secs(10)).await.unwrap() {
                Some(Answer::Ack { seq }) => acked.entry(id).or_default().push(seq),
                other => panic!("{id}: {other:?}"),
            }
        }
    }
    let now = Utc::now();
    let run = |cql: String| {
        let admin = &ingest.admin;
        async move { admin.query_unpaged(cql, ()).await.unwrap() }
    };
    run(format!(
        "UPDATE {ks}.gateways SET revoked_at = '{}' WHERE gateway_id = 'revoked-at-only'",
        now.to_rfc3339()
    ))
    .await;
    run(format!(
        "UPDATE {ks}.gateways SET revoked_at = '{}', token_hash = null WHERE gateway_id = 'hash-deleted'",
        now.to_rfc3339()
    ))
    .await;
    run(format!(
        "UPDATE {ks}.gateways SET token_hash = '{}' WHERE gateway_id = 'new-token'",
        tenant_schema::model::hash_gateway_token(&new_gateway_token())
    ))
    .await;
    let revoked_at = std::time::Instant::now();

    for (id, mut answers, sender) in streams {
        if id == "kept" {
            // still acked well after the others were closed
            let until = revoked_at + Duration::from_secs(12);
            while std::time::Instant::now() < until {
                match answers.next_within(Duration::from_secs(10)).await.unwrap() {
                    Some(Answer::Ack { seq }) => acked.entry(id).or_default().push(seq),
                    other => panic!("{id}: {other:?}"),
                }
            }
            sender.abort();
            continue;
        }
        let error = loop {
            match answers.next_within(Duration::from_secs(15)).await {
                Ok(Some(Answer::Ack { seq })) => acked.entry(id).or_default().push(seq),
                Ok(Some(other)) => break other,
                other => panic!("{id}: no error before the close: {other:?}"),
            }
        };
        let took = revoked_at.elapsed();
        assert_eq!(
            error,
            Answer::Error {
                code: "auth".into(),
                why: "token revoked".into()
            },
            "{id}"
        );
        assert!(
            took < Duration::from_secs(10),
            "{id}: closed after {took:?}"
        );
        assert!(
            matches!(
                answers.next_within(Duration::from_secs(5)).await,
                Ok(None) | Err(_)
            ),
            "{id}: nothing after the error"
        );
        sender.abort();
    }
    for (id, seqs) in &acked {
        let written: std::collections::HashSet<i64> = ingest
            .readings(id, d)
            .await
            .into_iter()
            .map(|r| r.4)
            .collect();
        for seq in seqs {
            assert!(written.contains(seq), "{id}: {seq} acked, not written");
        }
    }
    assert_eq!(count(&ingest.metrics.revoked_connections), 3);
    ingest.stop().await;
}

/// Readings that would pin `latest` or break the pages are refused with a
/// nack each; the connection stays open and later frames are acked.
#[tokio::test]
async fn readings_out_of_bounds_get_a_nack_and_the_connection_stays_usable() {
    let d = test_day();
    let t0 = t0();
    let ingest = Ingest::start(limits()).await;
    let token = ingest.commission("gw-1").await;
    let mut gw = ingest.login("gw-1", &token).await;
    let values = |n: usize| -> String {
        (0..n)
            .map(|i| format!(r#"<value name="v{i}">1</value>"#))
            .collect()
    };
    let old = (Utc::now() - TimeDelta::days(31)).to_rfc3339();
    let ahead = (Utc::now() + TimeDelta::minutes(11)).to_rfc3339();
    let long = "x".repeat(65);
    let attrs: String = (0..5000).map(|i| format!(r#" a{i}="x""#)).collect();
    let cases = [
        (
            "year 9999",
            reading(10, "9999-12-31T23:59:59Z", "s", "1"),
            "ahead",
        ),
        ("11 minutes ahead", reading(11, &ahead, "s", "1"), "ahead"),
        (
            "31 days old",
            reading(12, &old, "s", "1"),
            "older than 30 days",
        ),
        ("1e308", reading(13, &t0, "s", "1e308"), "larger than"),
        (
            "65 values",
            format!(
                r#"<reading seq="14" ts="{t0}" sensor="s">{}</reading>"#,
                values(65)
            ),
            "65 values",
        ),
        (
            "1500 values",
            format!(
                r#"<reading seq="15" ts="{t0}" sensor="s">{}</reading>"#,
                values(1500)
            ),
            "1500 values",
        ),
        (
            "long sensor",
            reading(16, &t0, &long, "1"),
            "longer than 64",
        ),
        (
            "5000 attributes",
            format!(
                r#"<reading seq="17" ts="{t0}" sensor="s"{attrs}><value name="p">1</value></reading>"#
            ),
            "more than 16 attributes",
        ),
    ];
    for (case, frame, _) in &cases {
        assert!(frame.len() < 64 * 1024, "{case}");
    }
    nacked_then_usable(&mut gw, &cases, &t0).await;
    let seqs: Vec<i64> = ingest
        .readings("gw-1", d)
        .await
        .iter()
        .map(|r| r.4)
        .collect();
    assert_eq!(seqs, (100..108).collect::<Vec<_>>(), "only the good frames");
    let newest: Vec<(DateTime<Utc>,)> = query_rows(
        &ingest.admin,
        format!(
            "SELECT max(ts) FROM {}.latest WHERE gateway_id = 'gw-1'",
            ingest.tenant.keyspace
        ),
        (),
    )
    .await;
    assert_eq!(
        newest[0].0.to_rfc3339(),
        DateTime::parse_from_rfc3339(&t0).unwrap().to_rfc3339(),
        "latest is not pinned"
    );
    ingest.stop().await;
}

/// 2,000 bad hellos (unknown ids and wrong tokens) from four addresses cost
/// a bounded number of token reads: failing addresses are backed off and
/// unknown ids come from the negative cache. A real gateway from another
/// address still logs in meanwhile.
#[tokio::test]
async fn a_flood_of_bad_hellos_costs_a_bounded_number_of_token_reads() {
    const HELLOS: usize = 2000;
    const ADDRESSES: u32 = 4;
    const PER_ADDRESS_AT_ONCE: usize = 8;
    let ingest = Ingest::start(limits()).await;
    let token = ingest.commission("gw-real").await;
    let attempts = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let welcomed = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let started = std::time::Instant::now();
    let mut flood = Vec::new();
    for a in 0..ADDRESSES {
        for w in 0..PER_ADDRESS_AT_ONCE {
            let (addr, attempts, welcomed) =
                (ingest.addr.clone(), attempts.clone(), welcomed.clone());
            flood.push(tokio::spawn(async move {
                loop {
                    let n = attempts.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    if n >= HELLOS {
                        return;
                    }
                    let Ok(mut gw) = Gateway::connect_from(&addr, loopback(20 + a)).await else {
                        continue;
                    };
                    let (id, tok) = if n % 2 == 0 {
                        (format!("gw-ghost-{w}"), new_gateway_token())
                    } else {
                        ("gw-real".to_owned(), new_gateway_token())
                    };
                    if let Ok(Answer::Welcome) = gw.hello(&id, &tok).await {
                        welcomed.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    }
                }
            }));
        }
    }
    // meanwhile a real gateway from its own address logs in and is acked
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut gw = Gateway::connect_from(&ingest.addr, loopback(1))
        .await
        .unwrap();
    assert_eq!(gw.hello("gw-real", &token).await.unwrap(), Answer::Welcome);
    gw.send(reading(1, &t0(), "s", "1").as_bytes())
        .await
        .unwrap();
    assert_eq!(next(&mut gw).await, Answer::Ack { seq: 1 });
    for task in flood {
        task.await.unwrap();
    }
    let took = started.elapsed();
    let m = &ingest.metrics;
    let reads = count(&m.token_reads);
    let backed_off = m.rejected(ingest::admission::Rejection::Backoff);
    eprintln!("{HELLOS} bad hellos in {took:?}: {reads} token reads, {backed_off} refused by the back-off");
    assert_eq!(welcomed.load(std::sync::atomic::Ordering::Relaxed), 0);
    assert!(backed_off > 0);
    // per address: the free failures, plus one round of concurrent hellos
    // each time its back-off expires (0.5 s doubling); plus the real one
    let expiries = (took.as_secs_f64() / 0.5).log2().ceil().max(0.0) as u64 + 1;
    let bound = ADDRESSES as u64
        * (ingest::admission::FREE_FAILED_HELLOS as u64
            + PER_ADDRESS_AT_ONCE as u64 * (1 + expiries))
        + 1;
    assert!(
        reads <= bound,
        "{reads} token reads for {HELLOS} hellos (bound {bound})"
    );
    assert!(reads < HELLOS as u64 / 4, "{reads}");
    ingest.stop().await;
}

/// An id with no row is answered from a short negative cache (one token
/// read for many hellos), and once commissioned it gets in within seconds.
#[tokio::test]
async fn an_unknown_gateway_is_answered_from_a_short_negative_cache() {
    let ingest = Ingest::start(limits()).await;
    let token = new_gateway_token();
    let from = loopback(30);
    for _ in 0..5 {
        let mut gw = Gateway::connect_from(&ingest.addr, from).await.unwrap();
        let answer = gw.hello("gw-new", &token).await.unwrap();
        assert_eq!(error_code(&answer), "auth");
    }
    assert_eq!(count(&ingest.metrics.token_reads), 1);
    assert_eq!(count(&ingest.metrics.unknown_gateway_cache_hits), 4);
    assert_eq!(
        ingest
            .metrics
            .hello_refusals(ingest::auth::HelloRefusal::UnknownGateway),
        5
    );
    provision_testkit::apps::commission_gateway_with(
        &ingest.admin,
        &ingest.tenant.keyspace,
        "gw-new",
        &token,
    )
    .await;
    let commissioned = std::time::Instant::now();
    let admitted = loop {
        let mut gw = Gateway::connect_from(&ingest.addr, from).await.unwrap();
        if gw.hello("gw-new", &token).await.unwrap() == Answer::Welcome {
            break commissioned.elapsed();
        }
        assert!(
            commissioned.elapsed() < Duration::from_secs(10),
            "still refused"
        );
        // slowly: every refusal also counts towards the address's back-off
        tokio::time::sleep(Duration::from_secs(1)).await;
    };
    assert!(
        admitted <= ingest::auth::UNKNOWN_GATEWAY_TTL + Duration::from_millis(1500),
        "{admitted:?}"
    );
    ingest.stop().await;
}

/// A PROXY protocol v2 header as HAProxy's `send-proxy-v2` writes it
/// (doc/proxy-protocol.txt, 2.2): the signature, PROXY over TCP/IPv4, the
/// 12 address bytes, no TLV. Written out here rather than taken from the
/// decoder, so that the test checks the decoder against the spec.
fn proxy_v2_header(client: std::net::SocketAddrV4, front: std::net::SocketAddrV4) -> Vec<u8> {
    let mut h = b"\r\n\r\n\0\r\nQUIT\n".to_vec();
    h.extend_from_slice(&[0x21, 0x11, 0x00, 0x0c]);
    h.extend_from_slice(&client.ip().octets());
    h.extend_from_slice(&front.ip().octets());
    h.extend_from_slice(&client.port().to_be_bytes());
    h.extend_from_slice(&front.port().to_be_bytes());
    h
}

/// Behind a trusted front (127.0.0.1 here), ingest counts a connection
/// under the address its PROXY header names, not the front's: one named
/// client fills its share of connections without a hello and the next from
/// it is refused, while another named client, through the same front, logs
/// in and is acked. A front's connection without a header, and a header
/// from an address not trusted, get the protocol error; a plain gateway
/// from that other address is served as before.
#[tokio::test]
async fn a_trusted_front_s_proxy_header_names_the_gateway_and_no_one_else_may_send_one() {
    use std::net::{Ipv4Addr, SocketAddrV4};
    use tokio::io::AsyncWriteExt;
    let front: std::net::IpAddr = Ipv4Addr::LOCALHOST.into();
    let ingest = Ingest::start_behind(
        Limits {
            max_unauthenticated_per_address: 2,
            hello_timeout: Duration::from_secs(60),
            ..limits()
        },
        [front].into_iter().collect(),
    )
    .await;
    let token = ingest.commission("gw-1").await;
    let port: u16 = ingest.addr.rsplit_once(':').unwrap().1.parse().unwrap();
    let to = SocketAddrV4::new(Ipv4Addr::LOCALHOST, port);
    // Documentation addresses (RFC 5737): only named in headers, never
    // connected to.
    let busy_client = SocketAddrV4::new(Ipv4Addr::new(192, 0, 2, 10), 40_000);
    let other_client = SocketAddrV4::new(Ipv4Addr::new(192, 0, 2, 11), 40_001);

    // Two connections of one client that has begun, not finished, its hello.
    let mut held = Vec::new();
    for _ in 0..2 {
        let mut s = silent_socket(&ingest.addr, front).await;
        let mut bytes = proxy_v2_header(busy_client, to);
        bytes.extend_from_slice(b"<hello gateway=");
        s.write_all(&bytes).await.unwrap();
        held.push(s);
    }
    let metrics = ingest.metrics.clone();
    eventually(Duration::from_secs(10), "2 admitted for 192.0.2.10", || {
        count(&metrics.connections_unauthenticated) == 2
    })
    .await;
    let mut third = Gateway::connect_from(&ingest.addr, front).await.unwrap();
    third.send(&proxy_v2_header(busy_client, to)).await.unwrap();
    let answers = until_closed(&mut third).await;
    assert_eq!(answers.len(), 1, "{answers:?}");
    assert_eq!(error_code(&answers[0]), "busy", "{answers:?}");

    // Another client through the same front is not held back by the first.
    let mut gw = Gateway::connect_from(&ingest.addr, front).await.unwrap();
    gw.send(&proxy_v2_header(other_client, to)).await.unwrap();
    assert_eq!(gw.hello("gw-1", &token).await.unwrap(), Answer::Welcome);
    let t0 = t0();
    gw.send(reading(1, &t0, "proxied", "7").as_bytes())
        .await
        .unwrap();
    assert_eq!(next(&mut gw).await, Answer::Ack { seq: 1 });
    assert_eq!(ingest.reading_count("gw-1", day(&t0)).await, 1);
    assert_eq!(count(&ingest.metrics.proxy_headers), 4);

    // The front's connection must carry a header.
    let mut bare = Gateway::connect_from(&ingest.addr, front).await.unwrap();
    let answer = bare.hello("gw-1", &token).await.unwrap();
    assert_eq!(error_code(&answer), "protocol", "{answer:?}");
    assert!(until_closed(&mut bare).await.is_empty());

    // Nobody else may send one; without one, they are served as before.
    let elsewhere = loopback(9);
    let mut forged = Gateway::connect_from(&ingest.addr, elsewhere)
        .await
        .unwrap();
    forged
        .send(&proxy_v2_header(other_client, to))
        .await
        .unwrap();
    let answers = until_closed(&mut forged).await;
    assert_eq!(answers.len(), 1, "{answers:?}");
    match &answers[0] {
        Answer::Error { code, why } => {
            assert_eq!(code, "protocol");
            assert!(why.contains("untrusted"), "{why}");
        }
        other => panic!("expected the protocol error, got {other:?}"),
    }
    let mut plain = Gateway::connect_from(&ingest.addr, elsewhere)
        .await
        .unwrap();
    assert_eq!(plain.hello("gw-1", &token).await.unwrap(), Answer::Welcome);
    drop(held);
    ingest.stop().await;
}
