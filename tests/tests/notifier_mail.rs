//! The notifier against the real Cassandra and a real SMTP server
//! (aiosmtpd, `provision_testkit::smtp`): the library in-process with a
//! manual clock, so a `for 10m` rule fires without waiting ten minutes,
//! and one test of the real image as a container.
//!
//! Each step ([`Notifier::step`]) returns once the relay answered, and the
//! sink stores a mail before it answers 250, so counts right after a step
//! are exact: "exactly one" is checked without waiting.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{header, Request, StatusCode};
use chrono::{DateTime, NaiveDate, Utc};
use lettre::message::Mailbox;
use notifier::app::{Mail, Notifier, Options};
use notifier::cassandra::Db;
use notifier::clock::{Clock, ManualClock};
use notifier::config::{MailConfig, SmtpTls};
use notifier::metrics::Metrics;
use notifier::outbox::{OutboxStatus, RetryPolicy};
use notifier::rules::{parse_recipients, AlertRule, LocalWindow, RuleId, RuleKind};
use notifier::smtp::Mailer;
use notifier::store::AlertStore;
use provision_testkit::containers::{
    container_logs, container_rss_kib, notifier_image, wait_healthy, TestContainer,
};
use provision_testkit::http::{csrf_field, form_urlencode};
use provision_testkit::smtp::{bridge_gateway, ReceivedMail, SmtpSink};
use provision_testkit::{cassandra, docker, CassandraNode, Scope, TestTenant};
use scylla::client::session::Session;
use tower::ServiceExt;

const FROM: &str = "Alerts <alerts@notifier.test>";

fn minutes(n: i64) -> chrono::Duration {
    chrono::Duration::minutes(n)
}

fn at(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

/// Now, to the second (what the tests' manual clocks start from: the
/// outbox's day records are kept 30 days from the real now).
fn now_s() -> DateTime<Utc> {
    let now = Utc::now();
    DateTime::from_timestamp(now.timestamp(), 0).unwrap()
}

/// One tenant with a tenant-role session and a manual clock.
struct Tenant {
    tenant: TestTenant,
    db: Arc<Session>,
    clock: Arc<ManualClock>,
}

impl Tenant {
    async fn create(node: &CassandraNode, prefix: &str, start: DateTime<Utc>) -> Tenant {
        let tenant = TestTenant::create(node, prefix).await;
        let db = Arc::new(tenant.session(node).await);
        Tenant {
            tenant,
            db,
            clock: Arc::new(ManualClock::new(start)),
        }
    }

    fn id(&self) -> String {
        self.tenant.id.to_string()
    }

    fn store(&self) -> AlertStore<'_> {
        AlertStore::new(&self.db, &self.tenant.keyspace)
    }

    async fn cql(&self, cql: &str, values: impl scylla::serialize::row::SerializeRow) {
        self.db
            .query_unpaged(cql.replace("{ks}", &self.tenant.keyspace), values)
            .await
            .unwrap_or_else(|e| panic!("{cql}: {e}"));
    }

    async fn setting(&self, name: &str, value: &str) {
        self.cql(
            "INSERT INTO {ks}.settings (name, value) VALUES (?, ?)",
            (name, value),
        )
        .await;
    }

    /// A frame from `gateway` at `when`, as ingest records it: `last_seen`.
    async fn heard(&self, gateway: &str, when: DateTime<Utc>) {
        self.cql(
            "UPDATE {ks}.latest SET last_seen = ? WHERE gateway_id = ?",
            (when, gateway),
        )
        .await;
    }

    /// A frame with a power value, as ingest writes `latest` (newest
    /// value, written at the reading's time) and `last_seen`.
    async fn power(&self, gateway: &str, watts: f64, when: DateTime<Utc>) {
        self.cql(
            "INSERT INTO {ks}.latest (gateway_id, sensor, name, ts, value, unit) VALUES (?, 'inv-1', 'power', ?, ?, 'W') USING TIMESTAMP ?",
            (gateway, when, watts, when.timestamp_micros()),
        )
        .await;
        self.heard(gateway, when).await;
    }

    async fn rule(&self, kind: RuleKind, gateway: Option<&str>, to: &str) -> AlertRule {
        let rule = AlertRule::new(
            RuleId::random(&mut rand::thread_rng()),
            kind,
            gateway.map(str::to_owned),
            parse_recipients(to).unwrap(),
            self.clock.now(),
        )
        .unwrap();
        self.store().put_rule(&rule).await.unwrap();
        rule
    }

    /// A notifier of this tenant, as the binary makes it (mail to `sink`,
    /// or off).
    async fn notifier(&self, sink: Option<&SmtpSink>) -> Notifier {
        let metrics = Arc::new(Metrics::default());
        let db = Db::prepare(self.db.clone(), &self.tenant.keyspace, metrics.clone())
            .await
            .expect("the notifier prepares its statements");
        let mail = sink.map(|sink| {
            let from: Mailbox = FROM.parse().unwrap();
            Mail {
                mailer: Mailer::new(&MailConfig {
                    host: sink.host().to_string(),
                    port: sink.port(),
                    tls: SmtpTls::None,
                    credentials: None,
                    from: from.clone(),
                    ca_pem: None,
                })
                .unwrap(),
                from,
            }
        });
        let clock: Arc<dyn Clock> = self.clock.clone();
        Notifier::start(
            db,
            clock,
            metrics,
            Options {
                tenant_id: self.id(),
                mail,
                policy: RetryPolicy::default(),
            },
        )
        .await
        .expect("the notifier reads its states")
    }

    fn advance(&self, by: chrono::Duration) {
        self.clock.advance(by);
    }

    async fn drop(&self, node: &CassandraNode) {
        self.tenant.drop(node).await;
    }
}

fn silent(for_minutes: u64) -> RuleKind {
    RuleKind::Silent {
        for_: Duration::from_secs(for_minutes * 60),
    }
}

async fn step(notifier: &mut Notifier) {
    notifier.step().await.expect("a notifier step");
}

fn subjects(mails: &[ReceivedMail]) -> Vec<String> {
    mails.iter().map(|m| m.subject.clone()).collect()
}

#[tokio::test]
async fn a_silent_gateway_gets_exactly_one_firing_mail_then_exactly_one_resolved_mail() {
    let node = cassandra().await;
    let t0 = now_s();
    let t = Tenant::create(node, "notif_silent", t0).await;
    t.setting("display_name", "Acme Solar").await;
    let sink = SmtpSink::start();
    t.heard("gw-1", t0).await;
    t.heard("gw-2", t0).await;
    let rule = t.rule(silent(10), None, "ops@acme.test").await;
    let mut n = t.notifier(Some(&sink)).await;

    step(&mut n).await;
    // gw-2 keeps talking; gw-1 goes quiet for 10 min 30 s.
    for _ in 0..21 {
        t.advance(chrono::Duration::seconds(30));
        t.heard("gw-2", t.clock.now()).await;
        step(&mut n).await;
    }
    let mails = sink.mails();
    assert_eq!(subjects(&mails).len(), 1, "{:?}", subjects(&mails));
    let firing = &mails[0];
    let tenant = t.id();
    assert_eq!(
        firing.subject,
        format!("[{tenant}] FIRING: silent for 10m on gw-1")
    );
    assert_eq!(firing.envelope_to, ["ops@acme.test"]);
    assert_eq!(firing.to, ["ops@acme.test"]);
    assert_eq!(firing.envelope_from, "alerts@notifier.test");
    for expected in [
        format!("Tenant: Acme Solar ({tenant})"),
        format!("Rule: {} (", rule.id),
        "Gateway: gw-1".to_owned(),
        "Last frame: ".to_owned(),
        "(silent for 10m30s, more than 10m)".to_owned(),
    ] {
        assert!(
            firing.body().contains(&expected),
            "{expected:?} not in:\n{}",
            firing.body()
        );
    }
    assert_eq!(n.metrics().health().firing, 1);

    // More checks while it stays silent: no second mail.
    for _ in 0..10 {
        t.advance(minutes(1));
        t.heard("gw-2", t.clock.now()).await;
        step(&mut n).await;
    }
    assert_eq!(sink.mails().len(), 1);

    // It sends again: one resolved mail.
    t.heard("gw-1", t.clock.now()).await;
    step(&mut n).await;
    for _ in 0..5 {
        t.advance(chrono::Duration::seconds(30));
        t.heard("gw-1", t.clock.now()).await;
        t.heard("gw-2", t.clock.now()).await;
        step(&mut n).await;
    }
    let mails = sink.mails();
    assert_eq!(mails.len(), 2, "{:?}", subjects(&mails));
    assert_eq!(
        mails[1].subject,
        format!("[{tenant}] RESOLVED: silent for 10m on gw-1")
    );
    assert_ne!(mails[0].message_id, mails[1].message_id);
    assert_eq!(n.metrics().health().firing, 0);
    // Both are recorded as sent, for the panel's history.
    let sent = t
        .store()
        .finished_mails(t.clock.now().date_naive())
        .await
        .unwrap();
    assert_eq!(sent.len(), 2);
    assert!(sent
        .iter()
        .all(|m| matches!(m.entry.status, OutboxStatus::Sent { attempts: 1, .. })));
    assert!(t.store().pending_mails().await.unwrap().is_empty());
    t.drop(node).await;
}

#[tokio::test]
async fn a_below_rule_with_between_does_not_fire_outside_its_hours() {
    let node = cassandra().await;
    // 18:00 UTC; the tenant is at +01:00, so 19:00 local, out of 08:00-18:00.
    let day = now_s().date_naive();
    let t0 = at(&format!("{day}T18:00:00Z"));
    let t = Tenant::create(node, "notif_between", t0).await;
    t.setting("timezone", "+01:00").await;
    let sink = SmtpSink::start();
    t.rule(
        RuleKind::Below {
            value: "power".into(),
            threshold: 5.0,
            for_: Duration::from_secs(15 * 60),
            between: Some(LocalWindow::parse("08:00-18:00").unwrap()),
        },
        None,
        "night@acme.test",
    )
    .await;
    let mut n = t.notifier(Some(&sink)).await;
    // All night long at 0 W, from 19:00 to 07:00 local, a frame and a
    // check every 2 min.
    for _ in 0..(12 * 30) {
        t.power("gw-1", 0.0, t.clock.now()).await;
        step(&mut n).await;
        t.advance(minutes(2));
    }
    assert!(sink.mails().is_empty(), "{:?}", subjects(&sink.mails()));
    assert!(n.states().values().all(|s| !s.is_firing()));
    assert!(t.store().pending_mails().await.unwrap().is_empty());

    // In its hours (08:00 local = 07:00 UTC), 0 W for 15 min fires it once.
    t.clock
        .set(at(&format!("{day}T07:00:00Z")) + chrono::Duration::days(1));
    for _ in 0..(16 * 2) {
        t.power("gw-1", 0.0, t.clock.now()).await;
        step(&mut n).await;
        t.advance(chrono::Duration::seconds(30));
    }
    let mails = sink.mails();
    assert_eq!(mails.len(), 1, "{:?}", subjects(&mails));
    assert!(mails[0].subject.contains("FIRING: power below 5 on gw-1"));
    assert!(
        mails[0].body().contains("Value: power = 0 W (sensor inv-1"),
        "{}",
        mails[0].body()
    );
    t.drop(node).await;
}

#[tokio::test]
async fn a_notifier_restarted_while_an_alert_fires_sends_no_second_mail() {
    let node = cassandra().await;
    let t0 = now_s();
    let t = Tenant::create(node, "notif_restart", t0).await;
    let sink = SmtpSink::start();
    t.heard("gw-1", t0).await;
    t.rule(silent(10), Some("gw-1"), "ops@acme.test").await;
    let mut n = t.notifier(Some(&sink)).await;
    step(&mut n).await;
    t.advance(minutes(11));
    step(&mut n).await;
    assert_eq!(sink.mails().len(), 1);
    drop(n);

    // A new process: nothing in memory, the same keyspace.
    let mut restarted = t.notifier(Some(&sink)).await;
    assert_eq!(restarted.metrics().health().firing, 1);
    for _ in 0..10 {
        t.advance(chrono::Duration::seconds(30));
        step(&mut restarted).await;
    }
    assert_eq!(sink.mails().len(), 1, "{:?}", subjects(&sink.mails()));
    t.drop(node).await;
}

#[tokio::test]
async fn with_the_relay_down_the_mail_arrives_once_it_is_back_and_a_5xx_is_recorded_as_failed() {
    let node = cassandra().await;
    let t0 = now_s();
    let t = Tenant::create(node, "notif_relay", t0).await;
    let mut sink = SmtpSink::start();
    t.heard("gw-1", t0).await;
    t.rule(silent(10), Some("gw-1"), "ops@acme.test").await;
    let mut n = t.notifier(Some(&sink)).await;
    step(&mut n).await;

    sink.stop();
    t.advance(minutes(11));
    step(&mut n).await;
    let pending = t.store().pending_mails().await.unwrap();
    assert_eq!(pending.len(), 1);
    assert!(
        matches!(
            pending[0].entry.status,
            OutboxStatus::Queued { attempts: 1, .. }
        ),
        "{:?}",
        pending[0].entry
    );
    assert!(pending[0].entry.last_error.is_some());
    assert_eq!(n.metrics().health().pending, 1);
    // Still down at the next attempts.
    for _ in 0..3 {
        t.advance(minutes(1));
        step(&mut n).await;
    }
    assert_eq!(t.store().pending_mails().await.unwrap().len(), 1);

    sink.resume();
    // The backoff is at most 30 min; the mail goes out at its next attempt.
    for _ in 0..40 {
        t.advance(minutes(1));
        step(&mut n).await;
    }
    let mails = sink.mails();
    assert_eq!(mails.len(), 1, "{:?}", subjects(&mails));
    assert!(mails[0].subject.contains("FIRING: silent for 10m on gw-1"));
    assert!(t.store().pending_mails().await.unwrap().is_empty());
    assert_eq!(n.metrics().health().pending, 0);

    // A 5xx: failed for good, recorded, never retried.
    sink.refuse("nobody@acme.test", Some("550 5.1.1 no such mailbox"));
    t.heard("gw-2", t.clock.now()).await;
    t.rule(silent(10), Some("gw-2"), "nobody@acme.test").await;
    step(&mut n).await;
    t.advance(minutes(11));
    step(&mut n).await;
    for _ in 0..5 {
        t.advance(minutes(5));
        step(&mut n).await;
    }
    assert_eq!(sink.mails().len(), 1);
    assert!(t.store().pending_mails().await.unwrap().is_empty());
    let finished = t
        .store()
        .finished_mails(t.clock.now().date_naive())
        .await
        .unwrap();
    let failed: Vec<_> = finished
        .iter()
        .filter(|m| matches!(m.entry.status, OutboxStatus::Failed { .. }))
        .collect();
    assert_eq!(failed.len(), 1, "{finished:?}");
    let OutboxStatus::Failed { reason, .. } = &failed[0].entry.status else {
        unreachable!()
    };
    assert!(reason.contains("550"), "{reason}");
    assert!(failed[0].entry.key.contains("/gw-2/firing/"));
    assert_eq!(n.metrics().health().failed, 1);
    t.drop(node).await;
}

/// Writes power readings as ingest does (one row per value).
async fn insert_power(t: &Tenant, gateway: &str, unit: &str, samples: &[(DateTime<Utc>, f64)]) {
    let insert = t
        .db
        .prepare(format!(
            "INSERT INTO {}.readings (gateway_id, day, ts, sensor, name, value, unit, seq) VALUES (?, ?, ?, 'inv-1', 'power', ?, ?, 0)",
            t.tenant.keyspace
        ))
        .await
        .unwrap();
    for chunk in samples.chunks(200) {
        let writes = chunk.iter().map(|(ts, value)| {
            t.db.execute_unpaged(&insert, (gateway, ts.date_naive(), *ts, *value, unit))
        });
        for result in futures::future::join_all(writes).await {
            result.unwrap();
        }
    }
}

/// The admin panel's CSV export of `day`, logged in, in-process.
async fn panel_csv(node: &CassandraNode, t: &Tenant, day: NaiveDate) -> Vec<u8> {
    let state = admin::AppState::new(
        t.tenant.session(node).await,
        admin::PanelOptions {
            tenant_id: t.id(),
            keyspace: t.tenant.keyspace.clone(),
            session_secret: b"0123456789abcdef0123456789abcdef".to_vec(),
            login_limits: admin::LoginLimits::default(),
            behind_tls: false,
        },
    )
    .await
    .unwrap();
    let app = admin::app(state);
    t.cql(
        "INSERT INTO {ks}.admin_users (username, password_hash, created_at) VALUES (?, ?, toTimestamp(now()))",
        ("alice", tenant_schema::model::hash_password("alice's password").unwrap()),
    )
    .await;
    let send = |req: Request<Body>| {
        let app = app.clone();
        async move { app.oneshot(req).await.unwrap() }
    };
    let cookies = |res: &axum::http::Response<Body>| -> Vec<String> {
        res.headers()
            .get_all(header::SET_COOKIE)
            .iter()
            .map(|v| v.to_str().unwrap().split(';').next().unwrap().to_owned())
            .collect()
    };
    let page = send(Request::get("/login").body(Body::empty()).unwrap()).await;
    let mut jar = cookies(&page);
    let body = axum::body::to_bytes(page.into_body(), 1 << 20)
        .await
        .unwrap();
    let csrf = csrf_field(&String::from_utf8_lossy(&body));
    let login = send(
        Request::post("/login")
            .header(header::COOKIE, jar.join("; "))
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(Body::from(form_urlencode(&[
                ("username", "alice"),
                ("password", "alice's password"),
                ("csrf", &csrf),
            ])))
            .unwrap(),
    )
    .await;
    assert_eq!(login.status(), StatusCode::SEE_OTHER);
    jar.extend(cookies(&login));
    let res = send(
        Request::get(format!("/reports/daily.csv?from={day}&to={day}"))
            .header(header::COOKIE, jar.join("; "))
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(res.status(), StatusCode::OK);
    axum::body::to_bytes(res.into_body(), 16 << 20)
        .await
        .unwrap()
        .to_vec()
}

#[tokio::test]
async fn the_daily_report_carries_the_days_energy_and_the_panels_csv_byte_for_byte() {
    let node = cassandra().await;
    // The tenant is at +02:00; its local day D runs from D-1 22:00 UTC.
    let today = now_s().date_naive();
    let day = today - chrono::Duration::days(2);
    let local_midnight = at(&format!("{day}T00:00:00+02:00"));
    let t = Tenant::create(node, "notif_report", local_midnight).await;
    t.setting("display_name", "Acme Solar").await;
    t.setting("timezone", "+02:00").await;
    t.setting("report_at", "07:00").await;
    t.setting("report_recipients", "boss@acme.test, books@acme.test")
        .await;
    // gw-1: 1000 W every minute from 01:30 to 02:30 local (23:30 to
    // 00:30 UTC: two UTC partitions), so 1000 Wh; gw-2: 2 kW for 30 min
    // once, 1000 Wh; outside the day, readings that must not count.
    let mut gw1: Vec<(DateTime<Utc>, f64)> = (0..=60)
        .map(|i| (local_midnight + minutes(90 + i), 1000.0))
        .collect();
    gw1.push((local_midnight - minutes(10), 5000.0));
    insert_power(&t, "gw-1", "W", &gw1).await;
    let gw2: Vec<(DateTime<Utc>, f64)> = (0..=30)
        .map(|i| {
            (
                local_midnight + chrono::Duration::hours(12) + minutes(i),
                2.0,
            )
        })
        .collect();
    insert_power(&t, "gw-2", "kW", &gw2).await;
    t.heard("gw-1", local_midnight + minutes(150)).await;
    t.heard("gw-2", local_midnight + chrono::Duration::hours(13))
        .await;
    // A gateway in the registry that sent nothing that day: a line of 0.
    t.cql(
        "INSERT INTO {ks}.gateways (gateway_id, token_hash, display_name, created_at) VALUES ('gw-3', 'x', 'Roof', toTimestamp(now()))",
        (),
    )
    .await;

    let sink = SmtpSink::start();
    let mut n = t.notifier(Some(&sink)).await;
    // D+1 06:59 local: not yet.
    t.clock
        .set(local_midnight + chrono::Duration::days(1) + chrono::Duration::hours(7) - minutes(1));
    step(&mut n).await;
    assert!(sink.mails().is_empty());
    // 07:00: the report of D, once.
    t.advance(minutes(1));
    step(&mut n).await;
    t.advance(minutes(1));
    step(&mut n).await;
    let mails = sink.mails();
    assert_eq!(mails.len(), 1, "{:?}", subjects(&mails));
    let report = &mails[0];
    let tenant = t.id();
    assert_eq!(report.subject, format!("[{tenant}] Daily report for {day}"));
    let mut to = report.envelope_to.clone();
    to.sort();
    assert_eq!(to, ["books@acme.test", "boss@acme.test"]);
    let html = report.html.as_deref().unwrap();
    for expected in [
        "<tr><td>gw-1</td><td align=\"right\">1000.0</td><td align=\"right\">1000.0</td><td align=\"right\">61</td></tr>",
        "<tr><td>gw-2</td><td align=\"right\">1000.0</td><td align=\"right\">2000.0</td><td align=\"right\">31</td></tr>",
        "<tr><td>gw-3</td><td align=\"right\">0.0</td><td align=\"right\">-</td><td align=\"right\">0</td></tr>",
        "<th align=\"right\">2000.0</th>",
        "Acme Solar",
    ] {
        assert!(html.contains(expected), "{expected:?} not in:\n{html}");
    }
    assert_eq!(report.attachments.len(), 1);
    let csv = &report.attachments[0];
    assert_eq!(
        csv.filename,
        format!("daily-report-{tenant}-{day}-{day}.csv")
    );
    assert_eq!(csv.content_type, "text/csv");
    let panel = panel_csv(node, &t, day).await;
    assert_eq!(
        String::from_utf8_lossy(&csv.bytes),
        String::from_utf8_lossy(&panel)
    );
    assert_eq!(csv.bytes, panel, "byte for byte");
    assert!(
        String::from_utf8_lossy(&panel).contains(&format!("gw-1,{day},1000.000,1000.000,61\n")),
        "{}",
        String::from_utf8_lossy(&panel)
    );

    // Restarted the same day: no second report.
    drop(n);
    let mut n = t.notifier(Some(&sink)).await;
    t.advance(chrono::Duration::hours(3));
    step(&mut n).await;
    assert_eq!(sink.mails().len(), 1);

    // A report asked for (`provision report send`): its own mail, to the
    // given recipients, and the request is gone.
    let request = notifier::store::ReportRequest {
        id: "req1".into(),
        day,
        to: parse_recipients("asked@acme.test").unwrap(),
        requested_at: t.clock.now(),
    };
    t.store().request_report(&request).await.unwrap();
    n.take_requests().await.unwrap();
    n.send_due().await.unwrap();
    let mails = sink.mails();
    assert_eq!(mails.len(), 2, "{:?}", subjects(&mails));
    assert_eq!(mails[1].envelope_to, ["asked@acme.test"]);
    assert_eq!(mails[1].attachments[0].bytes, panel);
    assert_ne!(mails[1].message_id, mails[0].message_id);
    assert!(t.store().report_requests().await.unwrap().is_empty());
    t.drop(node).await;
}

#[tokio::test]
async fn tenant_a_rules_never_mail_about_tenant_b_gateways_nor_to_b_recipients() {
    let node = cassandra().await;
    let t0 = now_s();
    let a = Tenant::create(node, "notif_iso_a", t0).await;
    let b = Tenant::create(node, "notif_iso_b", t0).await;
    // One relay for both, as the operator's is.
    let sink = SmtpSink::start();
    a.heard("gw-a", t0).await;
    b.heard("gw-b", t0).await;
    a.rule(silent(10), None, "a@a.test").await;
    b.rule(silent(10), None, "b@b.test").await;
    let mut na = a.notifier(Some(&sink)).await;
    let mut nb = b.notifier(Some(&sink)).await;
    step(&mut na).await;
    step(&mut nb).await;
    // B's gateway goes silent; A's keeps sending.
    for _ in 0..22 {
        a.advance(chrono::Duration::seconds(30));
        b.advance(chrono::Duration::seconds(30));
        a.heard("gw-a", a.clock.now()).await;
        step(&mut na).await;
        step(&mut nb).await;
    }
    let mails = sink.mails();
    assert_eq!(mails.len(), 1, "{:?}", subjects(&mails));
    assert_eq!(mails[0].envelope_to, ["b@b.test"]);
    assert!(mails[0]
        .subject
        .starts_with(&format!("[{}] FIRING", b.id())));
    assert!(mails[0].body().contains("Gateway: gw-b"));
    // Now A's goes silent too: A's mail to A's recipient about A's gateway.
    for _ in 0..22 {
        a.advance(chrono::Duration::seconds(30));
        b.advance(chrono::Duration::seconds(30));
        step(&mut na).await;
        step(&mut nb).await;
    }
    let mails = sink.mails();
    assert_eq!(mails.len(), 2, "{:?}", subjects(&mails));
    for mail in &mails {
        let (tenant, gateway, rcpt) = if mail.envelope_to == ["a@a.test"] {
            (a.id(), "gw-a", "a@a.test")
        } else {
            (b.id(), "gw-b", "b@b.test")
        };
        assert!(
            mail.subject.starts_with(&format!("[{tenant}]")),
            "{}",
            mail.subject
        );
        assert!(
            mail.subject.ends_with(&format!("on {gateway}")),
            "{}",
            mail.subject
        );
        assert_eq!(mail.to, [rcpt]);
        let other = if gateway == "gw-a" { "gw-b" } else { "gw-a" };
        assert!(!String::from_utf8_lossy(&mail.raw).contains(other));
    }
    assert_eq!(
        mails
            .iter()
            .filter(|m| m.envelope_to == ["a@a.test"])
            .count(),
        1
    );
    a.drop(node).await;
    b.drop(node).await;
}

#[tokio::test]
async fn with_mail_off_states_are_tracked_and_transitions_recorded_as_unsent() {
    let node = cassandra().await;
    let t0 = now_s();
    let t = Tenant::create(node, "notif_off", t0).await;
    t.heard("gw-1", t0).await;
    t.rule(silent(10), None, "ops@acme.test").await;
    let mut n = t.notifier(None).await;
    step(&mut n).await;
    t.advance(minutes(11));
    step(&mut n).await;
    let health = n.metrics().health();
    assert!(!health.mail_on);
    assert_eq!(health.firing, 1);
    assert!(health
        .to_string()
        .starts_with("ok notifier mail=off rules=1 firing=1"));
    assert!(t.store().pending_mails().await.unwrap().is_empty());
    let record = t
        .store()
        .finished_mails(t.clock.now().date_naive())
        .await
        .unwrap();
    assert_eq!(record.len(), 1);
    assert!(matches!(
        record[0].entry.status,
        OutboxStatus::Unsent { .. }
    ));
    let states = t.store().states().await.unwrap();
    assert!(states[0].state.is_firing());
    t.drop(node).await;
}

/// A private CA and a certificate for `localhost` it signed: `(ca, chain, key)`.
fn private_ca() -> (String, String, String) {
    use rcgen::{
        BasicConstraints, CertificateParams, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
        KeyUsagePurpose,
    };
    let ca_key = KeyPair::generate().unwrap();
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let ca_pem = ca.self_signed(&ca_key).unwrap().pem();
    let issuer = Issuer::from_ca_cert_pem(&ca_pem, &ca_key).unwrap();
    let key = KeyPair::generate().unwrap();
    let mut server = CertificateParams::new(vec!["localhost".to_owned()]).unwrap();
    server.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    server.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let cert = server.signed_by(&key, &issuer).unwrap();
    (
        ca_pem.clone(),
        format!("{}{ca_pem}", cert.pem()),
        key.serialize_pem(),
    )
}

/// The relay over STARTTLS and over implicit TLS, with a private CA given
/// as `NOTIFIER_SMTP_CA_FILE` would: the mail goes out. Without the CA the
/// relay's certificate is refused and the mail stays queued (transient).
#[tokio::test]
async fn mail_goes_out_over_starttls_and_implicit_tls_with_the_relays_private_ca() {
    let (ca, chain, key) = private_ca();
    let from: Mailbox = FROM.parse().unwrap();
    let message = lettre::Message::builder()
        .from(from.clone())
        .to("ops@acme.test".parse().unwrap())
        .subject("over TLS")
        .body("hello".to_owned())
        .unwrap()
        .formatted();
    for mode in [SmtpTls::StartTls, SmtpTls::Tls] {
        let sink = SmtpSink::start_tls(mode.as_str(), &chain, &key);
        let config = |ca_pem: Option<Vec<u8>>| MailConfig {
            host: "localhost".into(),
            port: sink.port(),
            tls: mode,
            credentials: None,
            from: from.clone(),
            ca_pem,
        };
        let without_ca = Mailer::new(&config(None)).unwrap();
        let outcome = without_ca.send(&message).await;
        assert!(
            matches!(outcome, notifier::outbox::SendOutcome::Transient(_)),
            "{mode:?} without the CA: {outcome:?}"
        );
        assert!(sink.mails().is_empty());
        let with_ca = Mailer::new(&config(Some(ca.clone().into_bytes()))).unwrap();
        let outcome = with_ca.send(&message).await;
        assert_eq!(
            outcome,
            notifier::outbox::SendOutcome::Accepted,
            "{mode:?} with the CA"
        );
        let mails = sink.mails();
        assert_eq!(mails.len(), 1, "{mode:?}");
        assert_eq!(mails[0].subject, "over TLS");
        assert_eq!(mails[0].envelope_to, ["ops@acme.test"]);
    }
}

/// The real image, hardened, on the test network: it becomes healthy,
/// mails one alert for a silent gateway through a relay on the Docker
/// host (`host.docker.internal`), and stays within 10 MB of RSS.
#[tokio::test]
async fn the_notifier_image_becomes_healthy_mails_an_alert_and_idles_under_10_mb() {
    let node = cassandra().await;
    let docker = docker().await;
    let scope = Scope::new("notif_image");
    let t = Tenant::create(node, "notif_image", now_s()).await;
    let sink = SmtpSink::start_on(bridge_gateway(&docker).await);
    let mut env = t.tenant.app_env(node);
    env.extend([
        "NOTIFIER_SMTP_HOST=host.docker.internal".to_owned(),
        format!("NOTIFIER_SMTP_PORT={}", sink.port()),
        "NOTIFIER_SMTP_TLS=none".to_owned(),
        format!("NOTIFIER_MAIL_FROM={FROM}"),
        "NOTIFIER_CHECK_INTERVAL_SECS=2".to_owned(),
        "LOG_FORMAT=json".to_owned(),
    ]);
    let container = TestContainer::scoped(&scope, "notifier", &notifier_image())
        .env(env)
        .on_test_network()
        .extra_host("host.docker.internal:host-gateway")
        .hardened()
        .memory(64 * 1024 * 1024)
        .no_swap();
    let name = container.start(&docker).await.unwrap();
    if let Err(e) = wait_healthy(&docker, &name, Duration::from_secs(90)).await {
        panic!(
            "{e}\n{}",
            container_logs(&docker, &name)
                .await
                .unwrap_or_default()
                .join("\n")
        );
    }
    // Idle, no rules.
    let settle = |what: &'static str| {
        let docker = docker.clone();
        let name = name.clone();
        async move {
            // A few checks pass (2 s each) before the sample.
            let mut samples = Vec::new();
            for _ in 0..5 {
                tokio::time::sleep(Duration::from_secs(1)).await;
                samples.push(container_rss_kib(&docker, &name).await.expect("its RSS"));
            }
            let rss = *samples.iter().max().unwrap();
            println!("notifier idle RSS, {what}: {rss} KiB (samples {samples:?})");
            rss
        }
    };
    let idle_empty = settle("0 rules").await;
    assert!(idle_empty <= 10 * 1024, "idle RSS {idle_empty} KiB > 10 MB");

    // A gateway last heard an hour ago, a silent rule of 1 min: one mail.
    t.heard("gw-1", Utc::now() - chrono::Duration::hours(1))
        .await;
    t.heard("gw-2", Utc::now()).await;
    t.rule(silent(1), Some("gw-1"), "ops@acme.test").await;
    t.rule(
        RuleKind::Above {
            value: "power".into(),
            threshold: 1000.0,
            for_: Duration::from_secs(300),
            between: None,
        },
        None,
        "ops@acme.test",
    )
    .await;
    // For every gateway, silent for 2 h: nobody is, yet.
    t.rule(silent(120), None, "ops@acme.test").await;
    let mails = sink.wait_for(1, Duration::from_secs(60)).await;
    assert_eq!(mails.len(), 1, "{:?}", subjects(&mails));
    assert_eq!(
        mails[0].subject,
        format!("[{}] FIRING: silent for 1m on gw-1", t.id())
    );
    let idle_rules = settle("3 rules").await;
    assert!(idle_rules <= 10 * 1024, "idle RSS {idle_rules} KiB > 10 MB");
    // The health line, as Docker's health log keeps it (where the
    // provisioner reads it): mail on, 3 rules, 1 firing, nothing pending.
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let health = loop {
        let inspect = docker
            .inspect_container(
                &name,
                None::<bollard::query_parameters::InspectContainerOptions>,
            )
            .await
            .unwrap();
        let last = inspect
            .state
            .and_then(|s| s.health)
            .and_then(|h| h.log)
            .and_then(|log| log.last().and_then(|l| l.output.clone()))
            .and_then(|out| tenant_schema::health::NotifierHealth::parse(&out));
        match last {
            Some(h) if h.rules == 3 && h.pending == 0 => break h,
            _ if std::time::Instant::now() > deadline => panic!("health log: {last:?}"),
            _ => tokio::time::sleep(Duration::from_millis(500)).await,
        }
    };
    assert!(health.mail_on, "{health}");
    assert_eq!((health.firing, health.failed), (1, 0), "{health}");
    assert_eq!(sink.mails().len(), 1, "still one mail");
    let logs = container_logs(&docker, &name).await.unwrap().join("\n");
    assert!(logs.contains("mail is on"), "{logs}");
    scope.cleanup().await;
    t.drop(node).await;
}
