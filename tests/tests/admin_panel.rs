//! The admin panel against the real Cassandra: login and its protections,
//! the pages showing what is in the tenant tables, commissioning, settings
//! (the daily report's among them), the Alerts page (rules, what fires now,
//! the history of their mails) and the dashboard's firing mark, tenant
//! isolation, and the real container over real HTTP.
//!
//! Most tests drive `admin::app` with `tower::ServiceExt::oneshot` (no
//! socket); a restarted panel is a second `AppState` over the same keyspace.
//! The last ones run the `provision/admin:dev` image
//! (`PROVISION_ADMIN_IMAGE`), one of them under a 128 MiB memory limit.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use admin::{app, AppState, LoginLimits, PanelOptions};
use axum::body::Body;
use axum::http::{header, Request, StatusCode};
use axum::Router;
use chrono::{DateTime, NaiveDate, TimeZone, Utc};
use futures::StreamExt;
use notifier::evaluate::{Evidence, PairState, TransitionKind};
use notifier::outbox::{MailKey, OutboxEntry, OutboxStatus};
use notifier::rules::RuleId;
use notifier::store::AlertStore;
use provision_testkit::containers::{
    admin_image, container_logs, container_memory_peak_bytes, container_state, published_port,
    TestContainer,
};
use provision_testkit::http::{csrf_field, form_urlencode, get_status, request, wait_for_200};
use provision_testkit::{cassandra, docker, query_rows, CassandraNode, Scope, TestTenant};
use scylla::client::session::Session;
use tenant_schema::model::{hash_gateway_token, hash_password};
use tower::ServiceExt;

const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef";

/// One tenant with its panel.
struct Panel {
    tenant: TestTenant,
    db: Session,
    app: Router,
    options: PanelOptions,
}

impl Panel {
    async fn start(node: &CassandraNode, prefix: &str) -> Panel {
        Panel::start_with_secret(node, prefix, SECRET).await
    }

    async fn start_with_secret(node: &CassandraNode, prefix: &str, secret: &[u8]) -> Panel {
        let tenant = TestTenant::create(node, prefix).await;
        let db = tenant.session(node).await;
        let options = PanelOptions {
            tenant_id: tenant.id.to_string(),
            keyspace: tenant.keyspace.clone(),
            session_secret: secret.to_vec(),
            login_limits: LoginLimits::default(),
            behind_tls: false,
        };
        let state = AppState::new(tenant.session(node).await, options.clone())
            .await
            .expect("the panel prepares its statements");
        Panel {
            tenant,
            db,
            app: app(state),
            options,
        }
    }

    /// The same panel after a restart: a new `AppState` (nothing kept in
    /// memory) over the same keyspace, with the same secret and limits.
    async fn restarted(&self, node: &CassandraNode) -> Router {
        let state = AppState::new(self.tenant.session(node).await, self.options.clone())
            .await
            .expect("the restarted panel prepares its statements");
        app(state)
    }

    /// Adds an admin user the way the provisioner does.
    async fn add_user(&self, username: &str, password: &str) {
        self.cql(
            "INSERT INTO {ks}.admin_users (username, password_hash, created_at) VALUES (?, ?, toTimestamp(now()))",
            (username, hash_password(password).unwrap()),
        )
        .await;
    }

    async fn cql(&self, cql: &str, values: impl scylla::serialize::row::SerializeRow) {
        self.db
            .query_unpaged(cql.replace("{ks}", &self.tenant.keyspace), values)
            .await
            .unwrap_or_else(|e| panic!("{cql}: {e}"));
    }

    /// A browser: a cookie jar over `oneshot` calls.
    fn browser(&self) -> Browser {
        Browser {
            app: self.app.clone(),
            cookies: HashMap::new(),
        }
    }

    async fn logged_in(&self, username: &str, password: &str) -> Browser {
        self.add_user(username, password).await;
        let mut b = self.browser();
        let res = b.login(username, password).await;
        assert_eq!(
            res.status,
            StatusCode::SEE_OTHER,
            "login of {username}: {}",
            res.body
        );
        b
    }

    async fn drop(self, node: &CassandraNode) {
        self.tenant.drop(node).await;
    }
}

struct Answer {
    status: StatusCode,
    headers: axum::http::HeaderMap,
    body: String,
}

impl Answer {
    fn location(&self) -> &str {
        self.headers
            .get(header::LOCATION)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }

    fn set_cookies(&self) -> Vec<String> {
        self.headers
            .get_all(header::SET_COOKIE)
            .iter()
            .map(|v| v.to_str().unwrap().to_owned())
            .collect()
    }
}

#[derive(Clone)]
struct Browser {
    app: Router,
    cookies: HashMap<String, String>,
}

impl Browser {
    async fn send(&mut self, method: &str, path: &str, form: Option<&[(&str, &str)]>) -> Answer {
        let mut req = Request::builder().method(method).uri(path);
        if !self.cookies.is_empty() {
            req = req.header(header::COOKIE, cookie_header(&self.cookies).join("; "));
        }
        let body = match form {
            Some(fields) => {
                req = req.header(header::CONTENT_TYPE, "application/x-www-form-urlencoded");
                Body::from(form_urlencode(fields))
            }
            None => Body::empty(),
        };
        let res = self
            .app
            .clone()
            .oneshot(req.body(body).unwrap())
            .await
            .unwrap();
        let status = res.status();
        let headers = res.headers().clone();
        let bytes = axum::body::to_bytes(res.into_body(), 16 << 20)
            .await
            .unwrap();
        let answer = Answer {
            status,
            headers,
            body: String::from_utf8_lossy(&bytes).into_owned(),
        };
        for set in answer.set_cookies() {
            remember_cookie(&mut self.cookies, &set);
        }
        answer
    }

    async fn get(&mut self, path: &str) -> Answer {
        self.send("GET", path, None).await
    }

    async fn post(&mut self, path: &str, form: &[(&str, &str)]) -> Answer {
        self.send("POST", path, Some(form)).await
    }

    /// GET /login, then post the form with its CSRF token.
    async fn login(&mut self, username: &str, password: &str) -> Answer {
        let page = self.get("/login").await;
        assert_eq!(page.status, StatusCode::OK);
        let csrf = csrf_field(&page.body);
        self.post(
            "/login",
            &[
                ("username", username),
                ("password", password),
                ("csrf", &csrf),
            ],
        )
        .await
    }

    /// The CSRF token of the forms on `path`.
    async fn csrf(&mut self, path: &str) -> String {
        let page = self.get(path).await;
        assert_eq!(page.status, StatusCode::OK, "{path}: {}", page.body);
        csrf_field(&page.body)
    }
}

/// `name=value` of every cookie in the jar.
fn cookie_header(jar: &HashMap<String, String>) -> Vec<String> {
    jar.iter().map(|(k, v)| format!("{k}={v}")).collect()
}

fn remember_cookie(jar: &mut HashMap<String, String>, set_cookie: &str) {
    let first = set_cookie.split(';').next().unwrap();
    let (name, value) = first.split_once('=').unwrap();
    if value.is_empty() || set_cookie.contains("Max-Age=0") {
        jar.remove(name);
    } else {
        jar.insert(name.to_owned(), value.to_owned());
    }
}

fn day(s: &str) -> NaiveDate {
    NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
}

fn at(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

/// Writes power readings as ingest does (one row per value), concurrently.
async fn insert_power(
    panel: &Panel,
    gateway: &str,
    sensor: &str,
    unit: &str,
    samples: &[(DateTime<Utc>, f64)],
) {
    let insert = panel
        .db
        .prepare(format!(
            "INSERT INTO {}.readings (gateway_id, day, ts, sensor, name, value, unit, seq) VALUES (?, ?, ?, ?, 'power', ?, ?, 0)",
            panel.tenant.keyspace
        ))
        .await
        .unwrap();
    for chunk in samples.chunks(200) {
        let writes = chunk.iter().map(|(ts, value)| {
            panel.db.execute_unpaged(
                &insert,
                (gateway, ts.date_naive(), *ts, sensor, *value, unit),
            )
        });
        for result in futures::future::join_all(writes).await {
            result.unwrap();
        }
    }
}

fn every_10s(from: DateTime<Utc>, minutes: i64, value: f64) -> Vec<(DateTime<Utc>, f64)> {
    (0..=minutes * 6)
        .map(|i| (from + chrono::Duration::seconds(i * 10), value))
        .collect()
}

#[tokio::test]
async fn login_sets_an_httponly_samesite_cookie_and_wrong_passwords_are_refused_then_rate_limited()
{
    let node = cassandra().await;
    let panel = Panel::start(node, "admin_login").await;
    panel.add_user("alice", "correct horse battery").await;

    let mut anonymous = panel.browser();
    let res = anonymous.get("/").await;
    assert_eq!(
        res.status,
        StatusCode::SEE_OTHER,
        "the dashboard needs a login"
    );
    assert_eq!(res.location(), "/login");

    let mut b = panel.browser();
    let res = b.login("alice", "correct horse battery").await;
    assert_eq!(res.status, StatusCode::SEE_OTHER, "{}", res.body);
    assert_eq!(res.location(), "/");
    let session_cookie = res
        .set_cookies()
        .into_iter()
        .find(|c| c.starts_with(&format!("admin_session_{}=", panel.tenant.id)))
        .expect("a session cookie");
    assert!(session_cookie.contains("HttpOnly"), "{session_cookie}");
    assert!(
        session_cookie.contains("SameSite=Strict"),
        "{session_cookie}"
    );
    let res = b.get("/").await;
    assert_eq!(res.status, StatusCode::OK);
    assert!(res.body.contains("alice"));

    // Wrong password and unknown user get the same refusal, and no cookie.
    for (user, password) in [("alice", "wrong"), ("nobody", "correct horse battery")] {
        let mut other = panel.browser();
        let res = other.login(user, password).await;
        assert_eq!(res.status, StatusCode::UNAUTHORIZED, "{user}");
        assert!(res.body.contains("Wrong username or password"));
        assert!(!other
            .cookies
            .keys()
            .any(|k| k.starts_with("admin_session_")));
        assert_eq!(other.get("/").await.status, StatusCode::SEE_OTHER);
    }

    // Four more failures make five for alice: the right password is now refused too.
    let mut attacker = panel.browser();
    for _ in 0..4 {
        assert_eq!(
            attacker.login("alice", "guess").await.status,
            StatusCode::UNAUTHORIZED
        );
    }
    let res = attacker.login("alice", "correct horse battery").await;
    assert_eq!(res.status, StatusCode::TOO_MANY_REQUESTS, "{}", res.body);
    let retry: u64 = res.headers[header::RETRY_AFTER]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(retry > 0 && retry <= 15 * 60, "{retry}");
    // Other users are not locked out.
    panel.add_user("bob", "bob's password").await;
    assert_eq!(
        panel.browser().login("bob", "bob's password").await.status,
        StatusCode::SEE_OTHER
    );

    // Logging out ends the session in the browser.
    let csrf = b.csrf("/").await;
    assert_eq!(
        b.post("/logout", &[("csrf", &csrf)]).await.status,
        StatusCode::SEE_OTHER
    );
    assert_eq!(b.get("/").await.status, StatusCode::SEE_OTHER);
    panel.drop(node).await;
}

#[tokio::test]
async fn a_form_post_without_a_valid_csrf_token_is_refused() {
    let node = cassandra().await;
    let panel = Panel::start(node, "admin_csrf").await;
    panel.add_user("alice", "pw-alice-123").await;

    // The login form: no token, or a token without its cookie.
    let mut b = panel.browser();
    let res = b
        .post(
            "/login",
            &[("username", "alice"), ("password", "pw-alice-123")],
        )
        .await;
    assert_eq!(res.status, StatusCode::FORBIDDEN);
    let token = csrf_field(&b.get("/login").await.body);
    let mut cookieless = panel.browser();
    let res = cookieless
        .post(
            "/login",
            &[
                ("username", "alice"),
                ("password", "pw-alice-123"),
                ("csrf", &token),
            ],
        )
        .await;
    assert_eq!(res.status, StatusCode::FORBIDDEN);

    let mut alice = panel.logged_in("alice", "pw-alice-123").await;
    let mut other = panel.logged_in("bob", "pw-bob-456").await;
    let others_token = other.csrf("/settings").await;
    let settings = [
        ("display_name", "Hijacked"),
        ("timezone", "UTC"),
        ("offline_after_minutes", "5"),
        ("power_alert_w", ""),
    ];
    for bad in [None, Some(""), Some("00ff"), Some(others_token.as_str())] {
        let mut form = settings.to_vec();
        if let Some(t) = bad {
            form.push(("csrf", t));
        }
        let res = alice.post("/settings", &form).await;
        assert_eq!(res.status, StatusCode::FORBIDDEN, "token {bad:?}");
        let res = alice
            .post(
                "/gateways",
                &[("gateway_id", "gw-forged"), ("csrf", bad.unwrap_or(""))],
            )
            .await;
        assert_eq!(res.status, StatusCode::FORBIDDEN, "token {bad:?}");
    }
    let res = alice.get("/settings").await;
    assert!(!res.body.contains("Hijacked"), "no forged post took effect");
    assert!(!alice.get("/gateways").await.body.contains("gw-forged"));
    // With its own token the same post works.
    let mut form = settings.to_vec();
    let token = alice.csrf("/settings").await;
    form.push(("csrf", &token));
    assert_eq!(
        alice.post("/settings", &form).await.status,
        StatusCode::SEE_OTHER
    );
    panel.drop(node).await;
}

#[tokio::test]
async fn a_session_cookie_reused_after_logout_is_refused_also_by_a_restarted_panel() {
    let node = cassandra().await;
    let panel = Panel::start(node, "admin_logout").await;
    let mut b = panel.logged_in("alice", "logout-pw-1").await;
    // Someone copies the cookie (and a form token) before alice logs out.
    let mut copy = b.clone();
    let copied_csrf = copy.csrf("/settings").await;
    let restarted = panel.restarted(node).await;
    let mut copy_on_restarted = Browser {
        app: restarted,
        cookies: b.cookies.clone(),
    };
    assert_eq!(
        copy_on_restarted.get("/").await.status,
        StatusCode::OK,
        "with the same secret a session survives a restart"
    );

    let csrf = b.csrf("/").await;
    let res = b.post("/logout", &[("csrf", &csrf)]).await;
    assert_eq!(res.status, StatusCode::SEE_OTHER, "{}", res.body);
    assert_eq!(res.location(), "/login");

    for (what, browser) in [
        ("the same panel", &mut copy),
        (
            "the panel restarted before the logout",
            &mut copy_on_restarted,
        ),
    ] {
        let res = browser.get("/").await;
        assert_eq!(res.status, StatusCode::SEE_OTHER, "{what}: {}", res.body);
        assert_eq!(res.location(), "/login", "{what}");
        let res = browser
            .post(
                "/settings",
                &[
                    ("display_name", "Taken over"),
                    ("timezone", "UTC"),
                    ("offline_after_minutes", "5"),
                    ("power_alert_w", ""),
                    ("csrf", &copied_csrf),
                ],
            )
            .await;
        assert_eq!(res.status, StatusCode::SEE_OTHER, "{what}");
        assert_eq!(res.location(), "/login", "{what}: a post is refused too");
        // The login page shows the form instead of sending it to the dashboard.
        assert_eq!(browser.get("/login").await.status, StatusCode::OK, "{what}");
    }
    // A panel started after the logout refuses it as well.
    let mut copy_after_restart = Browser {
        app: panel.restarted(node).await,
        cookies: copy.cookies.clone(),
    };
    assert_eq!(
        copy_after_restart.get("/").await.location(),
        "/login",
        "a restart does not bring a logged-out cookie back"
    );
    let mut settings = panel.logged_in("bob", "logout-pw-2").await;
    assert!(!settings.get("/settings").await.body.contains("Taken over"));
    panel.drop(node).await;
}

/// How many `login-failure` rows `auth_records` holds for `subject`.
async fn login_records(panel: &Panel, subject: &str) -> usize {
    panel
        .db
        .query_unpaged(
            format!(
                "SELECT at FROM {}.auth_records WHERE kind = 'login-failure' AND subject = ?",
                panel.tenant.keyspace
            ),
            (subject,),
        )
        .await
        .unwrap()
        .into_rows_result()
        .unwrap()
        .rows_num()
}

#[tokio::test]
async fn the_failed_login_limit_survives_a_restart_of_the_panel() {
    let node = cassandra().await;
    let panel = Panel::start(node, "admin_limit_restart").await;
    panel.add_user("alice", "restart-pw-1").await;
    let mut attacker = panel.browser();
    for _ in 0..LoginLimits::default().per_username {
        assert_eq!(
            attacker.login("alice", "guess").await.status,
            StatusCode::UNAUTHORIZED
        );
    }
    assert_eq!(login_records(&panel, "user:alice").await, 5);

    let mut after_restart = Browser {
        app: panel.restarted(node).await,
        cookies: HashMap::new(),
    };
    let res = after_restart.login("Alice", "restart-pw-1").await;
    assert_eq!(
        res.status,
        StatusCode::TOO_MANY_REQUESTS,
        "the restarted panel remembers the failures: {}",
        res.body
    );
    assert!(res.headers.contains_key(header::RETRY_AFTER));
    assert!(res.body.contains("too many failed logins"), "{}", res.body);
    // A refused attempt is not recorded (hammering a locked name writes nothing).
    assert_eq!(login_records(&panel, "user:alice").await, 5);
    panel.drop(node).await;
}

#[tokio::test]
async fn concurrent_wrong_logins_for_one_username_reach_the_password_check_at_most_the_limit() {
    let node = cassandra().await;
    let panel = Panel::start(node, "admin_limit_race").await;
    panel.add_user("alice", "race-pw-1").await;
    let limit = LoginLimits::default().per_username as usize;
    let mut attempts = Vec::new();
    for _ in 0..20 {
        let mut b = panel.browser();
        let csrf = csrf_field(&b.get("/login").await.body);
        attempts.push(async move {
            b.post(
                "/login",
                &[
                    ("username", "alice"),
                    ("password", "guess"),
                    ("csrf", &csrf),
                ],
            )
            .await
            .status
        });
    }
    let statuses = futures::future::join_all(attempts).await;
    let checked = statuses
        .iter()
        .filter(|s| **s == StatusCode::UNAUTHORIZED)
        .count();
    assert!(
        statuses
            .iter()
            .all(|s| *s == StatusCode::UNAUTHORIZED || *s == StatusCode::TOO_MANY_REQUESTS),
        "{statuses:?}"
    );
    // Each attempt is recorded before its check and counted again after:
    // of guesses racing past the first count, those that find more than the
    // limit recorded give up (and withdraw), so at most the limit run.
    assert!(
        checked <= limit,
        "{checked} of 20 concurrent guesses were checked, at most {limit} may be: {statuses:?}"
    );
    assert_eq!(
        login_records(&panel, "user:alice").await,
        checked,
        "only checked guesses stay recorded"
    );
    assert_eq!(
        panel.browser().login("alice", "race-pw-1").await.status,
        if checked == limit {
            StatusCode::TOO_MANY_REQUESTS
        } else {
            StatusCode::SEE_OTHER
        }
    );
    panel.drop(node).await;
}

#[tokio::test]
async fn commissioning_refuses_control_characters_and_long_names_each_with_its_own_message() {
    let node = cassandra().await;
    let panel = Panel::start(node, "admin_names").await;
    let mut b = panel.logged_in("admin", "names-pw-1").await;
    let csrf = b.csrf("/gateways").await;
    let long = "a".repeat(101);
    for (id, name, message) in [
        (
            "gw-esc",
            "Roof\u{1b}[2J",
            "must not contain control characters",
        ),
        ("gw-long", long.as_str(), "must be at most 100 characters"),
    ] {
        let res = b
            .post(
                "/gateways",
                &[("gateway_id", id), ("display_name", name), ("csrf", &csrf)],
            )
            .await;
        assert_eq!(res.status, StatusCode::BAD_REQUEST, "{id}");
        assert!(res.body.contains(message), "{id}: {}", res.body);
        assert!(
            stored_gateway(&panel, id).await.is_none(),
            "{id} not stored"
        );
    }
    // The refusals do not mix up their reasons.
    let res = b
        .post(
            "/gateways",
            &[
                ("gateway_id", "gw-esc"),
                ("display_name", "a\u{7}"),
                ("csrf", &csrf),
            ],
        )
        .await;
    assert!(!res.body.contains("at most 100"), "{}", res.body);
    // 100 characters (not bytes) are fine, and so is no name at all.
    let hundred = "é".repeat(100);
    for (id, name) in [("gw-100", hundred.as_str()), ("gw-unnamed", "  ")] {
        let res = b
            .post(
                "/gateways",
                &[("gateway_id", id), ("display_name", name), ("csrf", &csrf)],
            )
            .await;
        assert_eq!(res.status, StatusCode::OK, "{id}: {}", res.body);
    }
    let list = b.get("/gateways").await.body;
    assert!(list.contains(&hundred), "{list}");
    panel.drop(node).await;
}

#[tokio::test]
async fn readings_written_to_the_tenant_tables_appear_on_the_dashboard_with_last_seen() {
    let node = cassandra().await;
    let panel = Panel::start(node, "admin_dash").await;
    let seen = Utc::now() - chrono::Duration::seconds(42);
    let seen = Utc.timestamp_millis_opt(seen.timestamp_millis()).unwrap();
    panel
        .cql(
            "INSERT INTO {ks}.gateways (gateway_id, token_hash, display_name, created_at) VALUES ('gw-roof', 'x', 'Roof A', ?)",
            (seen,),
        )
        .await;
    panel
        .cql("INSERT INTO {ks}.gateways (gateway_id, token_hash, created_at) VALUES ('gw-quiet', 'y', ?)", (seen,))
        .await;
    // As ingest writes them: the reading rows, then `latest` and its last_seen.
    insert_power(&panel, "gw-roof", "inverter-1", "W", &[(seen, 1234.5)]).await;
    for (gw, sensor, name, value, unit) in [
        ("gw-roof", "inverter-1", "power", 1234.5, "W"),
        ("gw-roof", "inverter-1", "voltage", 230.1, "V"),
        ("gw-cellar", "meter-2", "power", 87.25, "W"),
    ] {
        panel
            .cql(
                "INSERT INTO {ks}.latest (gateway_id, sensor, name, ts, value, unit, last_seen) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (gw, sensor, name, seen, value, unit, seen),
            )
            .await;
    }
    let mut b = panel.logged_in("admin", "dashboard-pw-1").await;
    let res = b.get("/").await;
    assert_eq!(res.status, StatusCode::OK);
    let html = res.body;
    for gw in ["gw-roof", "gw-quiet", "gw-cellar"] {
        assert!(
            html.contains(&format!(r#"href="/gateways/{gw}""#)),
            "{gw} is listed: {html}"
        );
    }
    assert!(html.contains("Roof A"));
    let iso = seen.to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    assert!(
        html.contains(&format!(
            r#"<time datetime="{iso}">{}</time>"#,
            seen.format("%Y-%m-%d %H:%M:%S")
        )),
        "{html}"
    );
    assert!(
        html.contains("<b>1234.5</b> W")
            && html.contains("<b>230.1</b> V")
            && html.contains("<b>87.25</b> W")
    );
    assert!(html.contains(r#"class="badge online""#));
    assert!(
        html.contains(r#"class="badge never-seen""#),
        "gw-quiet never sent anything"
    );
    assert!(html.contains("never"));
    panel.drop(node).await;
}

#[tokio::test]
async fn a_gateway_page_draws_an_svg_chart_of_its_readings() {
    let node = cassandra().await;
    let panel = Panel::start(node, "admin_chart").await;
    panel
        .cql(
            "INSERT INTO {ks}.gateways (gateway_id, token_hash) VALUES ('gw-1', 'x')",
            (),
        )
        .await;
    insert_power(
        &panel,
        "gw-1",
        "inverter-1",
        "W",
        &every_10s(at("2026-11-20T10:00:00Z"), 60, 800.0),
    )
    .await;
    let mut b = panel.logged_in("admin", "chart-pw-1").await;

    let res = b.get("/gateways/gw-1?day=2026-11-20").await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.body);
    assert!(res.body.contains("<svg"), "{}", res.body);
    assert!(res.body.contains("inverter-1 power (W)"));
    assert!(res.body.contains("361 values"));
    assert!(
        res.body.contains(r##"<path fill="none" stroke="#1f6fb2""##),
        "a line is drawn"
    );
    let other_day = b.get("/gateways/gw-1?day=2026-11-19").await;
    assert!(other_day.body.contains("No readings on 2026-11-19"));
    assert_eq!(
        b.get("/gateways/gw-unknown").await.status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        b.get("/gateways/bad%20id").await.status,
        StatusCode::BAD_REQUEST
    );
    assert_eq!(
        b.get("/gateways/gw-1?day=yesterday").await.status,
        StatusCode::BAD_REQUEST
    );
    panel.drop(node).await;
}

#[tokio::test]
async fn the_daily_report_csv_has_the_energy_and_peak_of_known_samples() {
    let node = cassandra().await;
    let panel = Panel::start(node, "admin_report").await;
    panel
        .cql(
            "INSERT INTO {ks}.gateways (gateway_id, token_hash) VALUES ('gw-1', 'x')",
            (),
        )
        .await;
    panel
        .cql(
            "INSERT INTO {ks}.gateways (gateway_id, token_hash) VALUES ('gw-2', 'y')",
            (),
        )
        .await;
    // inv-1: 1000 W for an hour, a 3-hour hole, 1000 W for another hour: 2000 Wh.
    insert_power(
        &panel,
        "gw-1",
        "inv-1",
        "W",
        &every_10s(at("2026-11-20T10:00:00Z"), 60, 1000.0),
    )
    .await;
    insert_power(
        &panel,
        "gw-1",
        "inv-1",
        "W",
        &every_10s(at("2026-11-20T14:00:00Z"), 60, 1000.0),
    )
    .await;
    // inv-2: 2 kW for half an hour: 1000 Wh, and the day's peak of 2000 W.
    insert_power(
        &panel,
        "gw-1",
        "inv-2",
        "kW",
        &every_10s(at("2026-11-20T12:00:00Z"), 30, 2.0),
    )
    .await;
    // A voltage value at the same times must not count as power.
    panel
        .cql(
            "INSERT INTO {ks}.readings (gateway_id, day, ts, sensor, name, value, unit, seq) VALUES ('gw-1', ?, ?, 'inv-1', 'voltage', 9999, 'V', 0)",
            (day("2026-11-20"), at("2026-11-20T10:00:00Z")),
        )
        .await;
    let mut b = panel.logged_in("admin", "report-pw-1").await;

    let res = b
        .get("/reports/daily.csv?from=2026-11-20&to=2026-11-21")
        .await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.body);
    assert!(res.headers[header::CONTENT_TYPE]
        .to_str()
        .unwrap()
        .starts_with("text/csv"));
    assert!(res.headers[header::CONTENT_DISPOSITION]
        .to_str()
        .unwrap()
        .starts_with("attachment"));
    assert_eq!(
        res.body,
        "gateway_id,day,energy_wh,peak_w,samples\n\
         gw-1,2026-11-20,3000.000,2000.000,903\n\
         gw-1,2026-11-21,0.000,,0\n\
         gw-2,2026-11-20,0.000,,0\n\
         gw-2,2026-11-21,0.000,,0\n"
    );
    let page = b.get("/reports?from=2026-11-20&to=2026-11-20").await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(
        page.body.contains(">3.000<") && page.body.contains(">2<"),
        "kWh and kW: {}",
        page.body
    );
    assert_eq!(
        b.get("/reports?from=2026-11-21&to=2026-11-20").await.status,
        StatusCode::BAD_REQUEST
    );
    assert_eq!(
        b.get("/reports?from=2026-01-01&to=2026-11-20").await.status,
        StatusCode::BAD_REQUEST
    );
    panel.drop(node).await;
}

#[tokio::test]
async fn commissioning_shows_the_token_once_and_stores_only_its_hash_and_revoking_removes_it() {
    let node = cassandra().await;
    let panel = Panel::start(node, "admin_commission").await;
    let mut b = panel.logged_in("admin", "commission-pw-1").await;

    let csrf = b.csrf("/gateways").await;
    let res = b
        .post(
            "/gateways",
            &[
                ("gateway_id", "gw-new"),
                ("display_name", "Barn"),
                ("csrf", &csrf),
            ],
        )
        .await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.body);
    assert_eq!(res.headers[header::CACHE_CONTROL], "no-store");
    let marker = r#"<code class="token">"#;
    let start = res.body.find(marker).expect("the token is shown") + marker.len();
    let token = res.body[start..].split('<').next().unwrap().to_owned();
    assert_eq!(token.len(), 64, "{token}");

    let stored = stored_gateway(&panel, "gw-new")
        .await
        .expect("the gateway is stored");
    assert_eq!(
        stored.0.as_deref(),
        Some(hash_gateway_token(&token).as_str()),
        "only the hash is stored"
    );
    assert_eq!(stored.1, None, "not revoked");
    let list = b.get("/gateways").await.body;
    assert!(list.contains("gw-new") && list.contains("Barn"));
    assert!(!list.contains(&token), "the token is never shown again");

    // Commissioning it again while its token is valid changes nothing.
    let res = b
        .post("/gateways", &[("gateway_id", "gw-new"), ("csrf", &csrf)])
        .await;
    assert_eq!(res.status, StatusCode::CONFLICT);
    assert_eq!(stored_gateway(&panel, "gw-new").await.unwrap().0, stored.0);
    // Invalid ids are refused.
    let res = b
        .post("/gateways", &[("gateway_id", "gw new/1"), ("csrf", &csrf)])
        .await;
    assert_eq!(res.status, StatusCode::BAD_REQUEST);

    // Revoking deletes the hash and records when.
    let res = b.post("/gateways/gw-new/revoke", &[("csrf", &csrf)]).await;
    assert_eq!(res.status, StatusCode::SEE_OTHER);
    let revoked = stored_gateway(&panel, "gw-new").await.unwrap();
    assert_eq!(revoked.0, None, "no hash is left to match any token");
    assert!(revoked.1.is_some(), "revoked_at is set");
    assert!(b.get(res.location()).await.body.contains("revoked"));
    assert_eq!(
        b.post("/gateways/gw-nope/revoke", &[("csrf", &csrf)])
            .await
            .status,
        StatusCode::NOT_FOUND
    );

    // A revoked gateway can be given a new token.
    let res = b
        .post("/gateways", &[("gateway_id", "gw-new"), ("csrf", &csrf)])
        .await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.body);
    let start = res.body.find(marker).unwrap() + marker.len();
    let second = res.body[start..].split('<').next().unwrap().to_owned();
    assert_ne!(second, token);
    let again = stored_gateway(&panel, "gw-new").await.unwrap();
    assert_eq!(
        again.0.as_deref(),
        Some(hash_gateway_token(&second).as_str())
    );
    assert_eq!(again.1, None);
    panel.drop(node).await;
}

/// (token_hash, revoked_at) of a gateway row.
async fn stored_gateway(
    panel: &Panel,
    id: &str,
) -> Option<(Option<String>, Option<DateTime<Utc>>)> {
    panel
        .db
        .query_unpaged(
            format!(
                "SELECT token_hash, revoked_at FROM {}.gateways WHERE gateway_id = ?",
                panel.tenant.keyspace
            ),
            (id,),
        )
        .await
        .unwrap()
        .into_rows_result()
        .unwrap()
        .maybe_first_row::<(Option<String>, Option<DateTime<Utc>>)>()
        .unwrap()
}

#[tokio::test]
async fn settings_round_trip_through_the_settings_table() {
    let node = cassandra().await;
    let panel = Panel::start(node, "admin_settings").await;
    let mut b = panel.logged_in("admin", "settings-pw-1").await;
    let csrf = b.csrf("/settings").await;
    let res = b
        .post(
            "/settings",
            &[
                ("display_name", "Acme Solar & Sons"),
                ("timezone", "+01:00"),
                ("offline_after_minutes", "30"),
                ("power_alert_w", "5000"),
                ("csrf", &csrf),
            ],
        )
        .await;
    assert_eq!(res.status, StatusCode::SEE_OTHER, "{}", res.body);
    let page = b.get("/settings").await.body;
    assert!(page.contains(r#"value="Acme Solar &amp; Sons""#), "{page}");
    assert!(
        page.contains(r#"value="+01:00""#)
            && page.contains(r#"value="30""#)
            && page.contains(r#"value="5000""#)
    );
    assert!(b
        .get("/")
        .await
        .body
        .contains("<span class=\"brand\">Acme Solar &amp; Sons</span>"));
    let rows: HashMap<String, String> = query_rows::<(String, String)>(
        &panel.db,
        format!("SELECT name, value FROM {}.settings", panel.tenant.keyspace),
        (),
    )
    .await
    .into_iter()
    .collect();
    assert_eq!(rows["display_name"], "Acme Solar & Sons");
    assert_eq!(rows["timezone"], "+01:00");
    assert_eq!(rows["power_alert_w"], "5000");

    // A bad value is refused with the reason, and nothing changes.
    let res = b
        .post(
            "/settings",
            &[
                ("display_name", "X"),
                ("timezone", "Mars/Olympus"),
                ("offline_after_minutes", "30"),
                ("csrf", &csrf),
            ],
        )
        .await;
    assert_eq!(res.status, StatusCode::BAD_REQUEST);
    assert!(res.body.contains("timezone"), "{}", res.body);
    assert!(b
        .get("/settings")
        .await
        .body
        .contains("Acme Solar &amp; Sons"));
    panel.drop(node).await;
}

#[tokio::test]
async fn an_admin_of_tenant_a_cannot_log_in_to_the_panel_of_tenant_b() {
    let node = cassandra().await;
    // The same session secret on purpose: sessions must still not cross tenants.
    let a = Panel::start(node, "admin_iso_a").await;
    let b = Panel::start(node, "admin_iso_b").await;
    a.add_user("alice", "alice-of-a").await;
    a.add_user("admin", "admin-of-a").await;
    b.add_user("admin", "admin-of-b").await;
    b.cql(
        "INSERT INTO {ks}.gateways (gateway_id, token_hash) VALUES ('gw-of-b', 'x')",
        (),
    )
    .await;

    let mut on_b = b.browser();
    assert_eq!(
        on_b.login("alice", "alice-of-a").await.status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        on_b.login("admin", "admin-of-a").await.status,
        StatusCode::UNAUTHORIZED
    );

    // A's session cookie, replayed on B under B's cookie name, is refused.
    let mut on_a = a.browser();
    assert_eq!(
        on_a.login("alice", "alice-of-a").await.status,
        StatusCode::SEE_OTHER
    );
    let a_cookie = on_a.cookies[&format!("admin_session_{}", a.tenant.id)].clone();
    let mut replay = b.browser();
    replay
        .cookies
        .insert(format!("admin_session_{}", b.tenant.id), a_cookie.clone());
    replay
        .cookies
        .insert(format!("admin_session_{}", a.tenant.id), a_cookie);
    let res = replay.get("/").await;
    assert_eq!(res.status, StatusCode::SEE_OTHER);
    assert_eq!(res.location(), "/login");
    assert!(!replay.get("/gateways").await.body.contains("gw-of-b"));

    // B's own admin gets in and sees B's gateway.
    let mut admin_b = b.browser();
    assert_eq!(
        admin_b.login("admin", "admin-of-b").await.status,
        StatusCode::SEE_OTHER
    );
    assert!(admin_b.get("/").await.body.contains("gw-of-b"));
    a.drop(node).await;
    b.drop(node).await;
}

// ---- alerts and the daily report's settings ----------------------------

/// The rule ids shown in a page's rule table (`<tr data-rule="…">`).
fn rule_rows(html: &str) -> Vec<String> {
    let section = html
        .split(r#"<section id="rules">"#)
        .nth(1)
        .and_then(|s| s.split("</section>").next())
        .unwrap_or("");
    section
        .split(r#"<tr data-rule=""#)
        .skip(1)
        .filter_map(|s| s.split('"').next().map(str::to_owned))
        .collect()
}

/// The text of one section of the Alerts page.
fn alerts_section<'a>(html: &'a str, id: &str) -> &'a str {
    html.split(&format!(r#"<section id="{id}">"#))
        .nth(1)
        .and_then(|s| s.split("</section>").next())
        .unwrap_or_else(|| panic!("no section {id}: {html}"))
}

impl Panel {
    fn alerts(&self) -> AlertStore<'_> {
        AlertStore::new(&self.db, &self.tenant.keyspace)
    }

    /// Writes a row of the `notifier` table as the notifier does.
    async fn notifier_row(&self, kind: &str, bucket: &str, id: &str, body: String) {
        self.db
            .query_unpaged(
                notifier::schema::UPSERT_BODY.replace("{keyspace}", &self.tenant.keyspace),
                (kind, bucket, id, body),
            )
            .await
            .unwrap_or_else(|e| panic!("write the {kind} row {id}: {e}"));
    }

    /// Stores a pair's state as the notifier's check does.
    async fn put_state(&self, rule: &RuleId, gateway: &str, state: &PairState) {
        self.notifier_row(
            notifier::store::kind::STATE,
            notifier::store::NO_BUCKET,
            &notifier::schema::state_id(rule.as_str(), gateway),
            serde_json::to_string(state).unwrap(),
        )
        .await;
    }

    /// Records a transition's mail: pending (queued, sending) or in the
    /// record of the UTC day it ended.
    async fn put_mail(&self, key: &MailKey, queued_at: DateTime<Utc>, status: OutboxStatus) {
        let bucket = match &status {
            OutboxStatus::Sent { at, .. }
            | OutboxStatus::Failed { at, .. }
            | OutboxStatus::Unsent { at } => Some(at.date_naive().to_string()),
            _ => None,
        };
        let entry = OutboxEntry {
            status,
            ..OutboxEntry::new(key, queued_at)
        };
        let body = serde_json::to_string(&entry).unwrap();
        match bucket {
            Some(day) => {
                self.notifier_row(notifier::store::kind::SENT, &day, &entry.key, body)
                    .await
            }
            None => {
                self.notifier_row(
                    notifier::store::kind::OUTBOX,
                    notifier::store::PENDING,
                    &entry.key,
                    body,
                )
                .await
            }
        }
    }
}

/// The rule form's fields: kind, value, threshold, for, between, gateway,
/// recipients.
fn rule_form<'a>(csrf: &'a str, fields: [&'a str; 7]) -> Vec<(&'a str, &'a str)> {
    let names = [
        "kind",
        "value",
        "threshold",
        "for",
        "between",
        "gateway",
        "recipients",
    ];
    std::iter::once(("csrf", csrf))
        .chain(names.into_iter().zip(fields))
        .collect()
}

#[tokio::test]
async fn alert_rules_are_created_edited_and_deleted_on_the_alerts_page() {
    let node = cassandra().await;
    let panel = Panel::start(node, "admin_alerts_crud").await;
    let mut b = panel.logged_in("admin", "alerts-pw-1").await;
    let page = b.get("/alerts").await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    assert!(page
        .body
        .contains(r#"<a href="/alerts" class="active">Alerts</a>"#));
    assert!(page.body.contains("No alert rule yet."));
    assert!(page.body.contains("Nothing is firing."));
    let csrf = csrf_field(&page.body);

    // Create: a silent rule for all gateways.
    let res = b
        .post(
            "/alerts",
            &rule_form(
                &csrf,
                [
                    "silent",
                    "",
                    "",
                    "10m",
                    "",
                    "",
                    "ops@example.com, boss@example.com",
                ],
            ),
        )
        .await;
    assert_eq!(res.status, StatusCode::SEE_OTHER, "{}", res.body);
    assert_eq!(res.location(), "/alerts?saved=1");
    let rules = panel.alerts().rules().await.unwrap();
    assert_eq!(rules.len(), 1);
    let rule = &rules[0];
    assert_eq!(rule.kind.describe(), "silent for 10m");
    assert_eq!(rule.gateway, None);
    assert_eq!(
        rule.recipients
            .iter()
            .map(|a| a.to_string())
            .collect::<Vec<_>>(),
        ["ops@example.com", "boss@example.com"]
    );
    let page = b.get("/alerts?saved=1").await.body;
    assert!(page.contains("Rule saved."), "{page}");
    assert_eq!(rule_rows(&page), [rule.id.to_string()]);
    let row = alerts_section(&page, "rules");
    assert!(
        row.contains("<td>silent<br>") && row.contains("<td>10m</td>"),
        "{row}"
    );
    assert!(row.contains("<td>all</td>") && row.contains("ops@example.com, boss@example.com"));

    // Edit: it becomes a below rule for one gateway, keeping its id.
    let edit = b.get(&format!("/alerts/{}/edit", rule.id)).await;
    assert_eq!(edit.status, StatusCode::OK, "{}", edit.body);
    assert!(
        edit.body.contains(r#"<option value="silent" selected>"#),
        "{}",
        edit.body
    );
    assert!(
        edit.body.contains(r#"name="for" value="10m""#),
        "{}",
        edit.body
    );
    let res = b
        .post(
            &format!("/alerts/{}", rule.id),
            &rule_form(
                &csrf,
                [
                    "below",
                    "power",
                    "5.5",
                    "15m",
                    "08:00-18:00",
                    "gw-roof",
                    "ops@example.com",
                ],
            ),
        )
        .await;
    assert_eq!(res.status, StatusCode::SEE_OTHER, "{}", res.body);
    let edited = panel
        .alerts()
        .rule(&rule.id)
        .await
        .unwrap()
        .expect("the rule keeps its id");
    assert_eq!(
        edited.kind.describe(),
        "power below 5.5 for 15m between 08:00-18:00"
    );
    assert_eq!(edited.gateway.as_deref(), Some("gw-roof"));
    assert_eq!(edited.created_at, rule.created_at);
    assert_eq!(panel.alerts().rules().await.unwrap().len(), 1);
    let page = b.get("/alerts").await.body;
    let row = alerts_section(&page, "rules");
    assert!(
        row.contains("<td>power</td>") && row.contains(r#"<td class="num">5.5</td>"#),
        "{row}"
    );
    assert!(row.contains("<td>08:00-18:00</td>") && row.contains(r#"href="/gateways/gw-roof""#));

    // An edit of a rule that does not exist is a 404.
    let res = b
        .post(
            "/alerts/nosuchrule",
            &rule_form(&csrf, ["silent", "", "", "1m", "", "", "a@example.com"]),
        )
        .await;
    assert_eq!(res.status, StatusCode::NOT_FOUND);
    assert_eq!(
        b.get("/alerts/Bad-Id/edit").await.status,
        StatusCode::NOT_FOUND
    );

    // Delete: the rule and its pairs' states go.
    panel
        .put_state(
            &rule.id,
            "gw-roof",
            &PairState::Ok {
                since: Utc::now(),
                pending_since: None,
            },
        )
        .await;
    let res = b
        .post(&format!("/alerts/{}/delete", rule.id), &[("csrf", &csrf)])
        .await;
    assert_eq!(res.status, StatusCode::SEE_OTHER, "{}", res.body);
    assert_eq!(res.location(), "/alerts?deleted=1");
    assert!(panel.alerts().rules().await.unwrap().is_empty());
    assert!(panel.alerts().states().await.unwrap().is_empty());
    assert!(b
        .get("/alerts?deleted=1")
        .await
        .body
        .contains("Rule deleted."));
    assert_eq!(
        b.post(&format!("/alerts/{}/delete", rule.id), &[("csrf", &csrf)])
            .await
            .status,
        StatusCode::NOT_FOUND
    );

    // Every form needs the session's CSRF token.
    let res = b
        .post(
            "/alerts",
            &rule_form("00ff", ["silent", "", "", "10m", "", "", "ops@example.com"]),
        )
        .await;
    assert_eq!(res.status, StatusCode::FORBIDDEN);
    assert!(panel.alerts().rules().await.unwrap().is_empty());
    panel.drop(node).await;
}

#[tokio::test]
async fn a_bad_rule_form_is_shown_again_naming_the_field_and_writes_nothing() {
    let node = cassandra().await;
    let panel = Panel::start(node, "admin_alerts_bad").await;
    let mut b = panel.logged_in("admin", "alerts-pw-2").await;
    let csrf = b.csrf("/alerts").await;
    type Case<'a> = (Vec<(&'a str, &'a str)>, &'a str, &'a str);
    let cases: [Case; 6] = [
        (
            rule_form(&csrf, ["sometimes", "", "", "10m", "", "", "a@example.com"]),
            "kind",
            "Kind: ",
        ),
        (
            rule_form(
                &csrf,
                ["silent", "", "", "ten minutes", "", "", "a@example.com"],
            ),
            "for",
            "For: duration &quot;ten minutes&quot;",
        ),
        (
            rule_form(
                &csrf,
                ["above", "power", "lots", "5m", "", "", "a@example.com"],
            ),
            "threshold",
            "Threshold: ",
        ),
        (
            rule_form(
                &csrf,
                ["below", "power", "5", "5m", "8-18", "", "a@example.com"],
            ),
            "between",
            "Between: window &quot;8-18&quot;",
        ),
        (
            rule_form(&csrf, ["silent", "", "", "5m", "", "gw/1", "a@example.com"]),
            "gateway",
            "Gateway: gateway id &quot;gw/1&quot;",
        ),
        (
            rule_form(
                &csrf,
                [
                    "silent",
                    "",
                    "",
                    "5m",
                    "",
                    "",
                    "a@example.com, not-an-address",
                ],
            ),
            "recipients",
            "Recipients: recipient &quot;not-an-address&quot;",
        ),
    ];
    for (form, field, message) in cases {
        let res = b.post("/alerts", &form).await;
        assert_eq!(res.status, StatusCode::BAD_REQUEST, "{field}: {}", res.body);
        let error = res
            .body
            .split(r#"<p class="error" role="alert" id="rule-error">"#)
            .nth(1)
            .unwrap_or_else(|| panic!("{field}: no error shown: {}", res.body));
        assert!(error.starts_with(message), "{field}: {error}");
        let marked: Vec<&str> = res
            .body
            .split(&format!(r#"name="{field}""#))
            .skip(1)
            .filter_map(|rest| rest.split('>').next())
            .filter(|tag| tag.contains(r#"aria-invalid="true""#))
            .collect();
        assert_eq!(marked.len(), 1, "{field} is marked invalid: {}", res.body);
        assert_eq!(
            res.body.matches(r#"aria-invalid="true""#).count(),
            1,
            "only {field} is marked"
        );
        // What was typed is shown again.
        let typed = form.iter().find(|(k, _)| *k == field).unwrap().1;
        if field != "kind" {
            assert!(
                res.body.contains(&format!(
                    r#"name="{field}" value="{}""#,
                    typed.replace('"', "&quot;")
                )),
                "{field}"
            );
        }
    }
    assert!(
        panel.alerts().rules().await.unwrap().is_empty(),
        "nothing was written"
    );

    // A bad edit leaves the stored rule as it was.
    let res = b
        .post(
            "/alerts",
            &rule_form(&csrf, ["silent", "", "", "5m", "", "", "a@example.com"]),
        )
        .await;
    assert_eq!(res.status, StatusCode::SEE_OTHER);
    let rule = panel.alerts().rules().await.unwrap().remove(0);
    let res = b
        .post(
            &format!("/alerts/{}", rule.id),
            &rule_form(&csrf, ["silent", "", "", "0s", "", "", "a@example.com"]),
        )
        .await;
    assert_eq!(res.status, StatusCode::BAD_REQUEST);
    assert!(
        res.body
            .contains("For: duration &quot;0s&quot; is out of range"),
        "{}",
        res.body
    );
    assert_eq!(panel.alerts().rule(&rule.id).await.unwrap(), Some(rule));
    panel.drop(node).await;
}

#[tokio::test]
async fn a_stored_firing_state_marks_its_gateway_on_the_dashboard_and_shows_as_firing_now() {
    let node = cassandra().await;
    let panel = Panel::start(node, "admin_alerts_firing").await;
    for gw in ["gw-quiet", "gw-fine"] {
        panel
            .cql(
                "INSERT INTO {ks}.gateways (gateway_id, token_hash) VALUES (?, 'x')",
                (gw,),
            )
            .await;
    }
    let mut b = panel.logged_in("admin", "alerts-pw-3").await;
    let csrf = b.csrf("/alerts").await;
    let res = b
        .post(
            "/alerts",
            &rule_form(&csrf, ["silent", "", "", "1m", "", "", "ops@example.com"]),
        )
        .await;
    assert_eq!(res.status, StatusCode::SEE_OTHER);
    let rule = panel.alerts().rules().await.unwrap().remove(0);
    let dashboard = b.get("/").await.body;
    assert!(!dashboard.contains("alert firing"), "{dashboard}");

    let since = at("2026-12-01T09:30:00Z");
    let seen = at("2026-12-01T09:28:00Z");
    panel
        .put_state(
            &rule.id,
            "gw-quiet",
            &PairState::Firing {
                since,
                values: Evidence::Silent {
                    last_seen: Some(seen),
                    counted_from: rule.created_at,
                },
            },
        )
        .await;
    panel
        .put_state(
            &rule.id,
            "gw-fine",
            &PairState::Ok {
                since,
                pending_since: None,
            },
        )
        .await;

    let dashboard = b.get("/").await.body;
    let row = |gw: &str| {
        dashboard
            .split(&format!(r#"data-gateway="{gw}""#))
            .nth(1)
            .and_then(|s| s.split("</tr>").next())
            .unwrap_or_else(|| panic!("no row of {gw}: {dashboard}"))
            .to_owned()
    };
    let quiet = row("gw-quiet");
    assert!(
        quiet.contains(r#"<a href="/alerts#firing" class="badge firing""#)
            && quiet.contains(">alert firing</a>"),
        "{quiet}"
    );
    assert!(
        dashboard.contains(r#"class="status-never-seen alert-firing" data-gateway="gw-quiet""#),
        "{dashboard}"
    );
    assert!(!row("gw-fine").contains("alert firing"));

    let page = b.get("/alerts").await.body;
    let firing = alerts_section(&page, "firing");
    assert!(
        firing.contains(&format!(
            r#"data-rule="{}" data-gateway="gw-quiet""#,
            rule.id
        )),
        "{firing}"
    );
    assert!(
        firing.contains("silent for 1m") && firing.contains("2026-12-01 09:30:00"),
        "{firing}"
    );
    assert!(
        firing.contains("last frame 2026-12-01 09:28:00"),
        "{firing}"
    );
    assert!(!firing.contains("gw-fine"));
    assert!(
        alerts_section(&page, "rules").contains(r#"<span class="badge firing">1 firing</span>"#)
    );
    panel.drop(node).await;
}

#[tokio::test]
async fn the_history_lists_the_last_seven_days_transitions_with_their_mails_and_failures() {
    let node = cassandra().await;
    let panel = Panel::start(node, "admin_alerts_history").await;
    let mut b = panel.logged_in("admin", "alerts-pw-4").await;
    let csrf = b.csrf("/alerts").await;
    let res = b
        .post(
            "/alerts",
            &rule_form(
                &csrf,
                ["above", "power", "9000", "5m", "", "", "ops@example.com"],
            ),
        )
        .await;
    assert_eq!(res.status, StatusCode::SEE_OTHER);
    let rule = panel.alerts().rules().await.unwrap().remove(0);
    let now = Utc::now();
    let ms = |t: DateTime<Utc>| Utc.timestamp_millis_opt(t.timestamp_millis()).unwrap();
    let key = |gw: &str, kind: TransitionKind, ago: chrono::Duration| MailKey::Transition {
        rule_id: rule.id.clone(),
        gateway_id: gw.to_owned(),
        kind,
        at: ms(now - ago),
    };
    let hours = chrono::Duration::hours;
    // Sent three days ago, resolved two days ago but refused for good (5xx).
    let fired = key("gw-a", TransitionKind::Firing, hours(72));
    let resolved = key("gw-a", TransitionKind::Resolved, hours(48));
    panel
        .put_mail(
            &fired,
            now - hours(72),
            OutboxStatus::Sent {
                attempts: 1,
                at: ms(now - hours(72)),
            },
        )
        .await;
    panel
        .put_mail(
            &resolved,
            now - hours(48),
            OutboxStatus::Failed {
                attempts: 1,
                at: ms(now - hours(48)),
                reason: "550 5.1.1 no such mailbox".into(),
            },
        )
        .await;
    // Queued now (the relay is down), and one recorded with mail off.
    let queued = key("gw-b", TransitionKind::Firing, chrono::Duration::minutes(5));
    panel
        .put_mail(
            &queued,
            now,
            OutboxStatus::Queued {
                attempts: 2,
                next_attempt: ms(now + chrono::Duration::minutes(1)),
            },
        )
        .await;
    let unsent = key("gw-c", TransitionKind::Firing, hours(1));
    panel
        .put_mail(
            &unsent,
            now - hours(1),
            OutboxStatus::Unsent {
                at: ms(now - hours(1)),
            },
        )
        .await;
    // Eight days ago: out of the history. A report is no alert.
    let old = key("gw-old", TransitionKind::Firing, hours(8 * 24));
    panel
        .put_mail(
            &old,
            now - hours(8 * 24),
            OutboxStatus::Sent {
                attempts: 1,
                at: ms(now - hours(8 * 24)),
            },
        )
        .await;
    panel
        .put_mail(
            &MailKey::Report {
                day: now.date_naive(),
            },
            now,
            OutboxStatus::Sent {
                attempts: 1,
                at: ms(now),
            },
        )
        .await;

    let page = b.get("/alerts").await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    let history = alerts_section(&page.body, "history");
    let rows: Vec<&str> = history.split(r#"<tr class="mail-"#).skip(1).collect();
    let statuses: Vec<&str> = rows.iter().map(|r| r.split('"').next().unwrap()).collect();
    assert_eq!(
        statuses,
        ["queued", "unsent", "failed", "sent"],
        "newest first: {history}"
    );
    assert!(
        rows[0].contains("gw-b")
            && rows[0].contains("queued, next attempt")
            && rows[0].contains("2 tried so far")
    );
    assert!(rows[1].contains("gw-c") && rows[1].contains("not sent: mail is off"));
    assert!(
        rows[2].contains("gw-a")
            && rows[2].contains(r#"<span class="badge resolved">resolved</span>"#)
            && rows[2].contains(r#"<span class="error">failed "#)
            && rows[2].contains("550 5.1.1 no such mailbox"),
        "the 5xx is visible: {}",
        rows[2]
    );
    assert!(
        rows[3].contains(r#"<span class="badge firing">firing</span>"#)
            && rows[3].contains("power above 9000 for 5m")
    );
    assert!(
        !history.contains("gw-old"),
        "eight days ago is not in the history"
    );
    panel.drop(node).await;
}

#[tokio::test]
async fn the_daily_report_time_and_recipients_are_saved_and_bad_values_are_refused() {
    let node = cassandra().await;
    let panel = Panel::start(node, "admin_report_settings").await;
    let mut b = panel.logged_in("admin", "report-pw-1").await;
    let csrf = b.csrf("/settings").await;
    let base = |report_at: &'static str, to: &'static str, csrf: &str| -> Vec<(String, String)> {
        [
            ("display_name", "Acme"),
            ("timezone", "+01:00"),
            ("offline_after_minutes", "15"),
            ("power_alert_w", ""),
            ("report_at", report_at),
            ("report_recipients", to),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .chain([("csrf".to_owned(), csrf.to_owned())])
        .collect()
    };
    let poster = b.clone();
    let post = |fields: Vec<(String, String)>| {
        let mut b = poster.clone();
        async move {
            let fields: Vec<(&str, &str)> = fields
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str()))
                .collect();
            b.post("/settings", &fields).await
        }
    };
    let res = post(base("07:30", "ops@example.com, Owner@Example.com", &csrf)).await;
    assert_eq!(res.status, StatusCode::SEE_OTHER, "{}", res.body);
    let stored = || async {
        query_rows::<(String, String)>(
            &panel.db,
            format!("SELECT name, value FROM {}.settings", panel.tenant.keyspace),
            (),
        )
        .await
        .into_iter()
        .collect::<HashMap<String, String>>()
    };
    let rows = stored().await;
    assert_eq!(rows[tenant_schema::settings::REPORT_AT], "07:30");
    assert_eq!(
        rows[tenant_schema::settings::REPORT_RECIPIENTS],
        "ops@example.com,Owner@Example.com"
    );
    let page = b.get("/settings").await.body;
    assert!(page.contains(r#"name="report_at" value="07:30""#), "{page}");
    assert!(
        page.contains(r#"name="report_recipients" value="ops@example.com, Owner@Example.com""#),
        "{page}"
    );

    // Each bad value is refused with its field named, and nothing changes.
    for (report_at, to, says) in [
        ("7:30", "ops@example.com", "report time"),
        ("25:00", "ops@example.com", "report time"),
        ("07:30", "ops@example.com, nobody", "report recipients"),
        ("07:30", "", "report recipients"),
    ] {
        let res = post(base(report_at, to, &csrf)).await;
        assert_eq!(res.status, StatusCode::BAD_REQUEST, "{report_at} {to}");
        let error = res
            .body
            .split(r#"<p class="error" role="alert">"#)
            .nth(1)
            .unwrap_or("");
        assert!(error.starts_with(says), "{report_at} {to}: {error}");
        assert!(res
            .body
            .contains(&format!(r#"name="report_at" value="{report_at}""#)));
        assert_eq!(stored().await, rows, "{report_at} {to}: nothing written");
    }

    // An empty time turns the daily report off: the key is removed.
    let res = post(base("", "ops@example.com", &csrf)).await;
    assert_eq!(res.status, StatusCode::SEE_OTHER, "{}", res.body);
    let rows = stored().await;
    assert!(
        !rows.contains_key(tenant_schema::settings::REPORT_AT),
        "{rows:?}"
    );
    assert_eq!(
        rows[tenant_schema::settings::REPORT_RECIPIENTS],
        "ops@example.com"
    );
    assert!(b
        .get("/settings")
        .await
        .body
        .contains(r#"name="report_at" value="""#));
    panel.drop(node).await;
}

#[tokio::test]
async fn a_tenants_alerts_page_shows_only_the_rules_and_states_of_its_own_keyspace() {
    let node = cassandra().await;
    let a = Panel::start(node, "admin_alerts_iso_a").await;
    let b = Panel::start(node, "admin_alerts_iso_b").await;
    for p in [&a, &b] {
        p.cql(
            "INSERT INTO {ks}.gateways (gateway_id, token_hash) VALUES ('gw-same-name', 'x')",
            (),
        )
        .await;
    }
    let mut on_a = a.logged_in("admin", "iso-a-pw").await;
    let csrf = on_a.csrf("/alerts").await;
    let res = on_a
        .post(
            "/alerts",
            &rule_form(
                &csrf,
                [
                    "silent",
                    "",
                    "",
                    "2m",
                    "",
                    "gw-same-name",
                    "a-ops@example.com",
                ],
            ),
        )
        .await;
    assert_eq!(res.status, StatusCode::SEE_OTHER);
    let rule = a.alerts().rules().await.unwrap().remove(0);
    a.put_state(
        &rule.id,
        "gw-same-name",
        &PairState::Firing {
            since: Utc::now(),
            values: Evidence::Silent {
                last_seen: None,
                counted_from: rule.created_at,
            },
        },
    )
    .await;
    assert_eq!(
        rule_rows(&on_a.get("/alerts").await.body),
        [rule.id.to_string()]
    );
    assert!(on_a.get("/").await.body.contains("alert firing"));

    let mut on_b = b.logged_in("admin", "iso-b-pw").await;
    let page = on_b.get("/alerts").await.body;
    assert!(rule_rows(&page).is_empty(), "{page}");
    assert!(!page.contains(rule.id.as_str()) && !page.contains("a-ops@example.com"));
    assert!(page.contains("Nothing is firing."));
    assert!(!on_b.get("/").await.body.contains("alert firing"));
    assert_eq!(
        on_b.get(&format!("/alerts/{}/edit", rule.id)).await.status,
        StatusCode::NOT_FOUND
    );
    let csrf_b = on_b.csrf("/alerts").await;
    assert_eq!(
        on_b.post(&format!("/alerts/{}/delete", rule.id), &[("csrf", &csrf_b)])
            .await
            .status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        a.alerts().rules().await.unwrap().len(),
        1,
        "B cannot delete A's rule"
    );
    a.drop(node).await;
    b.drop(node).await;
}

#[tokio::test]
async fn healthz_answers_200_while_the_keyspace_answers_and_503_after_it_is_gone() {
    let node = cassandra().await;
    let panel = Panel::start(node, "admin_health").await;
    let mut b = panel.browser();
    let res = b.get("/healthz").await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.body);
    let app = panel.app.clone();
    panel.drop(node).await;
    let mut b = Browser {
        app,
        cookies: HashMap::new(),
    };
    let res = b.get("/healthz").await;
    assert_eq!(res.status, StatusCode::SERVICE_UNAVAILABLE, "{}", res.body);
}

#[tokio::test]
async fn the_admin_container_serves_a_login_and_the_dashboard_over_real_http() {
    let node = cassandra().await;
    let docker = docker().await;
    let scope = Scope::new("admin_container");
    let panel = Panel::start(node, "admin_ctr").await;
    panel.add_user("admin", "container-pw-1").await;
    panel
        .cql(
            "INSERT INTO {ks}.gateways (gateway_id, token_hash) VALUES ('gw-in-container', 'x')",
            (),
        )
        .await;

    let image = admin_image();
    docker
        .inspect_image(&image)
        .await
        .unwrap_or_else(|e| panic!("the image {image} is missing ({e}): run scripts/setup"));
    let mut env = panel.tenant.app_env(node);
    env.push(format!("ADMIN_SESSION_SECRET={}", "ab".repeat(32)));
    env.push("LOG_FORMAT=json".to_owned());
    // as an operator whose panel sits behind a TLS proxy says
    env.push("ADMIN_BEHIND_TLS=true".to_owned());
    let name = TestContainer::scoped(&scope, "admin", &image)
        .env(env)
        .publish("8080/tcp", None)
        .on_network(&node.network)
        .hardened()
        .memory(64 << 20)
        .start(&docker)
        .await
        .expect("start the admin container");
    let port = published_port(&docker, &name, "8080/tcp").await.unwrap();
    let addr = format!("127.0.0.1:{port}");
    wait_for_200(&addr, "/healthz", Duration::from_secs(60))
        .await
        .unwrap_or_else(|e| panic!("the admin container never answered: {e}"));

    let mut jar: HashMap<String, String> = HashMap::new();
    let login = request(&addr, "GET", "/login", &cookie_header(&jar), None)
        .await
        .unwrap();
    assert_eq!(login.status, 200);
    for v in login.headers_named("set-cookie") {
        remember_cookie(&mut jar, v);
    }
    let csrf = csrf_field(&login.body);
    let form = [
        ("username", "admin"),
        ("password", "container-pw-1"),
        ("csrf", csrf.as_str()),
    ];
    let posted = request(
        &addr,
        "POST",
        "/login",
        &cookie_header(&jar),
        Some(&form_urlencode(&form)),
    )
    .await
    .unwrap();
    assert_eq!(posted.status, 303);
    let session = posted
        .headers_named("set-cookie")
        .find(|v| v.starts_with("admin_session_"))
        .map(str::to_owned)
        .expect("a session cookie over real HTTP");
    assert!(
        session.contains("HttpOnly")
            && session.contains("SameSite=Strict")
            && session.ends_with("; Secure"),
        "{session}"
    );
    remember_cookie(&mut jar, &session);
    let dashboard = request(&addr, "GET", "/", &cookie_header(&jar), None)
        .await
        .unwrap();
    assert_eq!(dashboard.status, 200);
    assert!(
        dashboard.body.contains("gw-in-container"),
        "{}",
        dashboard.body
    );

    // The image's HEALTHCHECK command works inside the scratch container.
    let exec = docker
        .create_exec(
            &name,
            bollard::exec::CreateExecOptions::<String> {
                cmd: Some(vec!["/admin".into(), "healthcheck".into()]),
                attach_stdout: Some(true),
                attach_stderr: Some(true),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    if let bollard::exec::StartExecResults::Attached { mut output, .. } =
        docker.start_exec(&exec.id, None).await.unwrap()
    {
        while output.next().await.is_some() {}
    }
    let code = docker.inspect_exec(&exec.id).await.unwrap().exit_code;
    assert_eq!(code, Some(0), "`/admin healthcheck` inside the container");

    // SIGTERM stops it promptly and cleanly, and it logged JSON as asked.
    let stopping = Instant::now();
    docker
        .stop_container(
            &name,
            Some(
                bollard::query_parameters::StopContainerOptionsBuilder::default()
                    .t(10)
                    .build(),
            ),
        )
        .await
        .unwrap();
    assert!(
        stopping.elapsed() < Duration::from_secs(8),
        "stopped by SIGTERM, not killed after the timeout"
    );
    let state = container_state(&docker, &name).await.unwrap();
    assert_eq!(state.exit_code, Some(0));
    let logs = container_logs(&docker, &name).await.unwrap_or_default();
    assert!(
        logs.iter()
            .any(|l| l.starts_with('{') && l.contains("admin panel listening")),
        "JSON logs: {logs:?}"
    );

    scope.cleanup().await;
    panel.drop(node).await;
}

/// What `tenant_schema::model::hash_password` made of "container-pw-2"
/// before its parameters were sized for the panel: argon2id with the
/// argon2 crate's defaults (19 MiB, 2 passes), as the admin users of
/// existing tenants have. The heaviest hash a verification meets.
const OLD_DEFAULT_HASH: &str = "$argon2id$v=19$m=19456,t=2,p=1$V5lft2Z6Yi8EiDfcSi0yhA$V4f1rAGRe9Msf1eKmi1im/5btRVyssLj8ULbN567HhM";

#[tokio::test]
async fn fifty_concurrent_wrong_logins_leave_the_container_up_under_128_mib_and_the_admin_logs_in_after_the_window(
) {
    const MEMORY_LIMIT: i64 = 128 << 20;
    const WINDOW_SECS: u64 = 4;
    let node = cassandra().await;
    let docker = docker().await;
    let scope = Scope::new("admin_logins");
    let panel = Panel::start(node, "admin_oom").await;
    assert!(OLD_DEFAULT_HASH.contains("m=19456,t=2,p=1"));
    panel
        .cql(
            "INSERT INTO {ks}.admin_users (username, password_hash) VALUES ('admin', ?)",
            (OLD_DEFAULT_HASH,),
        )
        .await;

    let mut env = panel.tenant.app_env(node);
    env.push(format!("ADMIN_SESSION_SECRET={}", "cd".repeat(32)));
    env.push(format!("ADMIN_LOGIN_WINDOW_SECS={WINDOW_SECS}"));
    // Every request comes from the host's address here: only the username
    // limit should lock, so every unknown-user guess reaches the bound.
    env.push("ADMIN_LOGIN_FAILURES_PER_ADDRESS=1000".to_owned());
    let name = TestContainer::scoped(&scope, "admin", &admin_image())
        .env(env)
        .publish("8080/tcp", None)
        .on_network(&node.network)
        .hardened()
        .memory(MEMORY_LIMIT)
        .no_swap()
        .start(&docker)
        .await
        .expect("start the admin container");
    let port = published_port(&docker, &name, "8080/tcp").await.unwrap();
    let addr = format!("127.0.0.1:{port}");
    wait_for_200(&addr, "/healthz", Duration::from_secs(60))
        .await
        .unwrap_or_else(|e| panic!("the admin container never answered: {e}"));
    let before = container_state(&docker, &name).await.unwrap();

    // 50 wrong logins at once: half for the real admin, half for unknown users.
    let mut forms = Vec::new();
    for i in 0..50 {
        let page = request(&addr, "GET", "/login", &[], None).await.unwrap();
        assert_eq!(page.status, 200);
        let user = if i % 2 == 0 {
            "admin".to_owned()
        } else {
            format!("nobody-{i}")
        };
        let form = form_urlencode(&[
            ("username", &user),
            ("password", "wrong password"),
            ("csrf", &csrf_field(&page.body)),
        ]);
        forms.push((user, page.cookies(), form));
    }
    let started = Instant::now();
    let posts = forms.into_iter().map(|(user, cookies, form)| {
        let addr = addr.clone();
        tokio::spawn(async move {
            let answer = request(&addr, "POST", "/login", &cookies, Some(&form)).await;
            (user, answer.map(|a| (a.status, a.body)))
        })
    });
    let answers = futures::future::join_all(posts).await;
    let took = started.elapsed();
    let after = container_state(&docker, &name).await.unwrap();
    assert!(!after.oom_killed, "not OOM-killed: {after:?}");
    assert!(after.running, "the panel is still running: {after:?}");
    assert_eq!(after.started_at, before.started_at, "not restarted");
    let mut counts: HashMap<(bool, u16), usize> = HashMap::new();
    for answer in answers {
        let (user, answer) = answer.unwrap();
        let (status, body) = answer.unwrap_or_else(|e| panic!("{user}: no answer: {e}"));
        assert!(status == 401 || status == 429, "{user}: {status} {body}");
        if status == 429 {
            assert!(
                body.contains("too many failed logins")
                    || body.contains("too many logins are being checked"),
                "a 429 says why: {body}"
            );
        }
        *counts.entry((user == "admin", status)).or_default() += 1;
    }
    println!(
        "50 concurrent wrong logins answered in {took:?}: {counts:?} ((admin?, status) -> count)"
    );

    assert_eq!(get_status(&addr, "/healthz", &[]).await, Some(200));
    let peak = container_memory_peak_bytes(&docker, &name)
        .await
        .expect("the engine or /proc reports the peak memory");
    println!(
        "peak memory {:.1} MiB of {} MiB",
        peak as f64 / 1048576.0,
        MEMORY_LIMIT >> 20
    );
    assert!(peak < MEMORY_LIMIT as u64, "peak {peak} bytes");

    let admin_checked = counts.get(&(true, 401)).copied().unwrap_or(0);
    assert!(
        admin_checked <= 5,
        "at most the username limit of guesses is checked: {counts:?}"
    );
    let login = |addr: String, password: &'static str| async move {
        let page = request(&addr, "GET", "/login", &[], None).await.unwrap();
        let form = form_urlencode(&[
            ("username", "admin"),
            ("password", password),
            ("csrf", &csrf_field(&page.body)),
        ]);
        request(&addr, "POST", "/login", &page.cookies(), Some(&form))
            .await
            .unwrap()
    };
    // Guess on until the name is locked (the burst may have used up the
    // limit already): then even the right password waits.
    let mut guesses = 0;
    while login(addr.clone(), "wrong password").await.status == 401 {
        guesses += 1;
        assert!(guesses <= 5, "the name is never locked");
    }
    let locked_at = Instant::now();
    let answer = login(addr.clone(), "container-pw-2").await;
    assert_eq!(answer.status, 429, "locked: {}", answer.body);
    // After the window the real admin logs in.
    let deadline = Duration::from_secs(WINDOW_SECS + 15);
    let session = loop {
        let answer = login(addr.clone(), "container-pw-2").await;
        if answer.status == 303 {
            break answer.cookies();
        }
        assert_eq!(answer.status, 429, "{}", answer.body);
        assert!(
            locked_at.elapsed() < deadline,
            "the admin still cannot log in after {deadline:?}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    println!(
        "the admin logged in {:?} after the burst",
        locked_at.elapsed()
    );
    let session: Vec<String> = session
        .into_iter()
        .filter(|c| c.starts_with("admin_session_"))
        .collect();
    assert_eq!(get_status(&addr, "/", &session).await, Some(200));

    scope.cleanup().await;
    panel.drop(node).await;
}
