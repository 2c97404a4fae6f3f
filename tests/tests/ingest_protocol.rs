//! Gateway protocol v1 against the real test Cassandra: an ingest server
//! runs in-process (the library's own `serve`) on a fresh tenant keyspace,
//! and gateways speak to it over TCP. Every bad-input case of DESIGN.md
//! gets its documented answer.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, NaiveDate, Utc};
use gateway_sim::answer::Answer;
use gateway_sim::client::{ClientError, Gateway};
use ingest::metrics::Metrics;
use ingest::server::Limits;
use ingest::settings::Settings;
use ingest::store::Store;
use ingest::write_queue::Grouping;
use provision_testkit::apps::{commission_gateway, spawn_ingest};
use provision_testkit::{cassandra, query_rows, CassandraNode, TestTenant};
use scylla::client::session::Session;
use tenant_schema::model::new_gateway_token;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

const T0: &str = "2026-11-23T06:00:00Z";

fn limits() -> Limits {
    Limits {
        idle_timeout: Duration::from_secs(60),
        max_connections: 100,
        max_pipeline: 128,
        writes: Limits::from(&Settings::default()).writes,
    }
}

/// A tenant keyspace, an in-process ingest on it, and the admin session
/// that commissions gateways and reads what landed.
struct Ingest {
    node: &'static CassandraNode,
    tenant: TestTenant,
    admin: Session,
    store: Arc<Store>,
    metrics: Arc<Metrics>,
    addr: String,
    shutdown: CancellationToken,
    server: Option<JoinHandle<()>>,
}

impl Ingest {
    async fn start(limits: Limits) -> Ingest {
        let node = cassandra().await;
        let tenant = TestTenant::create(node, "ingest").await;
        let admin = node.admin_session().await;
        let session = Arc::new(tenant.session(node).await);
        let store = Arc::new(
            Store::prepare(session, &tenant.keyspace)
                .await
                .expect("ingest prepares its statements as the tenant role"),
        );
        let metrics = Arc::new(Metrics::default());
        let shutdown = CancellationToken::new();
        let (addr, server) = spawn_ingest(&store, &metrics, limits, &shutdown).await;
        Ingest {
            node,
            tenant,
            admin,
            store,
            metrics,
            addr,
            shutdown,
            server: Some(server),
        }
    }

    /// Commissions a gateway as the admin panel would; returns its token.
    async fn commission(&self, id: &str) -> String {
        commission_gateway(&self.admin, &self.tenant.keyspace, id).await
    }

    async fn revoke(&self, id: &str) {
        self.admin
            .query_unpaged(
                format!(
                    "UPDATE {}.gateways SET revoked_at = ? WHERE gateway_id = ?",
                    self.tenant.keyspace
                ),
                (Utc::now(), id),
            )
            .await
            .unwrap();
    }

    async fn login(&self, id: &str, token: &str) -> Gateway {
        Gateway::login(&self.addr, id, token)
            .await
            .unwrap_or_else(|e| panic!("{id} cannot log in: {e}"))
    }

    /// `(sensor, name, value, unit, seq)` of a gateway's readings on a day.
    async fn readings(
        &self,
        gw: &str,
        day: NaiveDate,
    ) -> Vec<(String, String, f64, Option<String>, i64)> {
        let mut rows: Vec<(String, String, f64, Option<String>, i64)> = query_rows(
            &self.admin,
            format!(
                "SELECT sensor, name, value, unit, seq FROM {}.readings WHERE gateway_id = ? AND day = ?",
                self.tenant.keyspace
            ),
            (gw, day),
        )
        .await;
        rows.sort_by(|a, b| (a.4, &a.0, &a.1).cmp(&(b.4, &b.0, &b.1)));
        rows
    }

    async fn reading_count(&self, gw: &str, day: NaiveDate) -> usize {
        self.readings(gw, day).await.len()
    }

    async fn stop(mut self) {
        self.shutdown.cancel();
        if let Some(server) = self.server.take() {
            let _ = tokio::time::timeout(Duration::from_secs(15), server).await;
        }
        self.tenant.drop(self.node).await;
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
    let ingest = Ingest::start(limits()).await;
    let token = ingest.commission("gw-17").await;
    let mut gw = ingest.login("gw-17", &token).await;

    let frame = format!(
        r#"<reading seq="42" ts="{T0}" sensor="inverter-1">
             <value name="power" unit="W">1234.5</value>
             <value name="voltage" unit="V">230.1</value>
           </reading>
           <batch seq="43">
             <reading ts="2026-11-23T06:00:05Z" sensor="panel-3"><value name="power" unit="W">310</value></reading>
             <reading ts="2026-11-23T05:59:00Z" sensor="inverter-1"><value name="power" unit="W">999</value></reading>
           </batch>"#
    );
    gw.send(frame.as_bytes()).await.unwrap();
    assert_eq!(next(&mut gw).await, Answer::Ack { seq: 42 });
    assert_eq!(next(&mut gw).await, Answer::Ack { seq: 43 });

    let rows = ingest.readings("gw-17", day(T0)).await;
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

    let days = ["2026-11-22", "2026-11-23"];
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
    let Ok(ingest::protocol::Frame::Data(parsed)) = ingest::protocol::parse_frame(frame.as_bytes())
    else {
        panic!("the test frame does not parse")
    };
    assert!(ingest::store::estimated_bytes(&parsed) > ingest::store::ONE_REQUEST_BYTES);

    gw.send(frame.as_bytes()).await.unwrap();
    assert_eq!(next(&mut gw).await, Answer::Ack { seq: 7 });
    for d in days {
        let day = NaiveDate::parse_from_str(d, "%Y-%m-%d").unwrap();
        assert_eq!(ingest.reading_count("gw-big", day).await, per_day, "{d}");
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
        let _ = gw.send(reading(1, T0, "s", "1").as_bytes()).await;
        assert_eq!(until_closed(&mut gw).await, vec![], "{case}");
    }

    // a reading before any hello is refused the same way
    let mut gw = Gateway::connect(&ingest.addr).await.unwrap();
    gw.send(reading(1, T0, "s", "1").as_bytes()).await.unwrap();
    let answers = until_closed(&mut gw).await;
    assert_eq!(answers.len(), 1, "{answers:?}");
    assert_eq!(error_code(&answers[0]), "auth");

    // nothing of it was written, and the right token still works
    assert_eq!(ingest.reading_count("gw-1", day(T0)).await, 0);
    let mut gw = ingest.login("gw-1", &token).await;
    gw.send(reading(7, T0, "s", "1").as_bytes()).await.unwrap();
    assert_eq!(next(&mut gw).await, Answer::Ack { seq: 7 });
    ingest.stop().await;
}

#[tokio::test]
async fn bad_readings_get_a_nack_and_the_connection_stays_usable() {
    let ingest = Ingest::start(limits()).await;
    let token = ingest.commission("gw-1").await;
    let mut gw = ingest.login("gw-1", &token).await;

    let cases = [
        ("bad number", reading(10, T0, "s", "12,5"), "bad number"),
        (
            "bad timestamp",
            reading(11, "2026-11-23 06:00", "s", "1"),
            "bad timestamp",
        ),
        (
            "no value",
            format!(r#"<reading seq="12" ts="{T0}" sensor="s"></reading>"#),
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
                r#"<reading seq="14" ts="{T0}" sensor="s"><value name="p">1</value><led/></reading>"#
            ),
            "unknown element",
        ),
    ];
    for (i, (case, frame, why_part)) in cases.iter().enumerate() {
        gw.send(frame.as_bytes()).await.unwrap();
        match next(&mut gw).await {
            Answer::Nack { seq, code, why } => {
                assert_eq!(seq, Some(10 + i as i64), "{case}");
                assert_eq!(code, "bad-reading", "{case}");
                assert!(why.contains(why_part), "{case}: {why}");
            }
            other => panic!("{case}: expected a nack, got {other:?}"),
        }
        // the same connection still takes good readings
        let good = 100 + i as i64;
        gw.send(reading(good, T0, &format!("ok-{i}"), "5").as_bytes())
            .await
            .unwrap();
        assert_eq!(next(&mut gw).await, Answer::Ack { seq: good }, "{case}");
    }
    let rows = ingest.readings("gw-1", day(T0)).await;
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
    let ingest = Ingest::start(limits()).await;
    let token = ingest.commission("gw-1").await;
    let big = format!(
        r#"<batch seq="3">{}</batch>"#,
        format!(r#"<reading ts="{T0}" sensor="s"><value name="p">1</value></reading>"#)
            .repeat(1200)
    );
    assert!(big.len() > 64 * 1024);
    let cases = [
        ("not XML", "GET / HTTP/1.1\r\nHost: x\r\n\r\n".to_owned()),
        ("frame over 64 KiB", big),
        (
            "mismatched closing tag",
            format!(r#"<reading seq="3" ts="{T0}" sensor="s"><value name="p">1</reading></value>"#),
        ),
    ];
    for (case, bad) in cases {
        let mut gw = ingest.login("gw-1", &token).await;
        // a good frame pipelined before the bad one is still written and acked
        let mut bytes = reading(1, T0, case, "1").into_bytes();
        bytes.extend_from_slice(bad.as_bytes());
        bytes.extend_from_slice(reading(2, T0, case, "2").as_bytes());
        let _ = gw.send(&bytes).await;
        let answers = until_closed(&mut gw).await;
        assert_eq!(answers.len(), 2, "{case}: {answers:?}");
        assert_eq!(answers[0], Answer::Ack { seq: 1 }, "{case}");
        assert_eq!(error_code(&answers[1]), "protocol", "{case}: {answers:?}");
    }
    // only the frames before each error were written
    let rows = ingest.readings("gw-1", day(T0)).await;
    assert_eq!(rows.len(), 3, "{rows:?}");
    assert!(rows.iter().all(|r| r.4 == 1), "{rows:?}");
    ingest.stop().await;
}

#[tokio::test]
async fn pipelined_frames_are_acked_in_order_while_writes_run_concurrently() {
    let ingest = Ingest::start(limits()).await;
    let token = ingest.commission("gw-1").await;
    let mut gw = ingest.login("gw-1", &token).await;

    // 300 frames in one write, every 10th of them bad: the answers must come
    // back exactly in frame order
    let mut bytes = Vec::new();
    for seq in 0..300i64 {
        let ts = format!("2026-11-23T06:{:02}:{:02}Z", seq / 60, seq % 60);
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
    assert_eq!(ingest.reading_count("gw-1", day(T0)).await, 270);
    ingest.stop().await;
}

/// With one request in flight, frames of many connections wait together
/// and go as shared requests: every frame still lands, is acked in its
/// connection's order, and `latest` holds each gateway's newest value even
/// when several of its frames were written in one request.
#[tokio::test]
async fn frames_of_many_connections_share_write_requests_and_all_land() {
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
    let mut gateways = Vec::new();
    for g in 0..GATEWAYS {
        let id = format!("gw-{g}");
        let token = ingest.commission(&id).await;
        gateways.push(ingest.login(&id, &token).await);
    }
    let sends = gateways
        .into_iter()
        .enumerate()
        .map(|(g, mut gw)| async move {
            let mut bytes = Vec::new();
            for seq in 0..FRAMES {
                let ts = format!("2026-11-23T06:{:02}:{:02}Z", seq / 60, seq % 60);
                let power = (g as i64 * 1000 + seq).to_string();
                bytes.extend_from_slice(reading(seq, &ts, "s", &power).as_bytes());
            }
            gw.send(&bytes).await.unwrap();
            for seq in 0..FRAMES {
                assert_eq!(next(&mut gw).await, Answer::Ack { seq }, "gw-{g}");
            }
        });
    futures::future::join_all(sends).await;

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
        let rows = ingest.readings(&id, day(T0)).await;
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

/// The linger only holds a request back while other requests are in
/// flight: a frame that finds the queue idle is written and acked at once,
/// even with a linger far longer than a write.
#[tokio::test]
async fn a_frame_that_finds_no_write_in_flight_is_not_held_back_by_the_linger() {
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
        let ts = format!("2026-11-23T06:00:0{seq}Z");
        let sent = std::time::Instant::now();
        gw.send(reading(seq, &ts, "s", "1").as_bytes())
            .await
            .unwrap();
        assert_eq!(next(&mut gw).await, Answer::Ack { seq });
        let took = sent.elapsed();
        assert!(took < LINGER / 2, "frame {seq} was acked after {took:?}");
    }
    assert_eq!(ingest.reading_count("gw-1", day(T0)).await, 3);
    ingest.stop().await;
}

#[tokio::test]
async fn idle_connections_time_out_and_the_connection_cap_holds() {
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
        gw.send(reading(seq, T0, "busy", "1").as_bytes())
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
    let ingest = Ingest::start(limits()).await;
    let token = ingest.commission("gw-1").await;
    let mut gw = ingest.login("gw-1", &token).await;
    let mut bytes = Vec::new();
    for seq in 0..200i64 {
        let ts = format!("2026-11-23T07:{:02}:{:02}Z", seq / 60, seq % 60);
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
        .readings("gw-1", day(T0))
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
