//! The check the `admin_forms` fuzz target runs on one input (the
//! cargo-fuzz crate in `fuzz/` calls it, and `tests/fuzz_corpus.rs` replays
//! the committed corpus through it on stable Rust), so the fuzzer and the
//! test suite check exactly the same thing. It panics on a broken
//! invariant; any outcome without a panic is fine.
//!
//! It covers what the panel parses from a request before it touches the
//! store: the bodies of the login, logout, settings, alert rule (the
//! settings inputs are read as a rule form too) and commissioning posts
//! (through axum's own `Form` extractor, as the handlers get them), their
//! CSRF tokens, the session cookie, and the query strings of the gateway
//! page, the report and the lists (through axum's `Query`), each followed
//! by the validation its handler applies. It lives among the pages because
//! the form types are private to them.

use axum::body::Body;
use axum::extract::{FromRequest, Query};
use axum::http::{header, HeaderMap, HeaderValue, Method, Request, StatusCode, Uri};
use axum::response::IntoResponse;
use axum::Form;
use chrono::{DateTime, Utc};
use serde::de::DeserializeOwned;
use tenant_schema::model::{DisplayName, GatewayId};

use crate::csrf::{self, CsrfField};
use crate::error::AppError;
use crate::session::{cookie, Keys, Session};
use crate::settings::{Settings, Timezone};

use super::alerts::RuleForm;
use super::gateway::{parse_day, partition_days, DayQuery};
use super::gateways::{CommissionForm, ListQuery};
use super::login::{CsrfOnly, LoginForm};
use super::reports::{range, RangeQuery};
use super::settings::{SavedQuery, SettingsForm};

/// The panel's secret in the check (the corpus's cookies and tokens are
/// signed with it).
pub const SECRET: &[u8] = b"fuzzing-secret";
/// The tenant in the check.
pub const TENANT: &str = "acme";
/// The login form's nonce cookie in the check.
pub const LOGIN_NONCE: &str = "00112233445566778899aabbccddeeff";
/// The user of the session that the logout, settings and commissioning
/// posts are checked with.
pub const USER: &str = "alice";

/// The clock in the check: before the expiry of the corpus's sessions.
pub fn now() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2026-11-23T06:05:00Z")
        .expect("a valid timestamp")
        .with_timezone(&Utc)
}

/// When the session of [`USER`] that the checks use expires.
pub fn session_expiry() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2036-01-01T00:00:00Z")
        .expect("a valid timestamp")
        .with_timezone(&Utc)
}

/// What the first byte of an input chooses (modulo their number); the rest
/// is the body, cookie header or query string.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `POST /login`
    Login,
    /// `POST /logout` and `POST /gateways/{id}/revoke`: a CSRF token only
    Logout,
    /// `POST /settings`, and the same body as `POST /alerts`
    Settings,
    /// `POST /gateways`
    Commission,
    /// The `Cookie` header: the session cookie
    Cookie,
    /// `GET /gateways/{id}?day=`
    Day,
    /// `GET /reports?from=&to=` (and the CSV)
    Range,
    /// `GET /settings?saved=` and `GET /gateways?revoked=`
    Notices,
}

impl Kind {
    pub const ALL: [Kind; 8] = [
        Kind::Login,
        Kind::Logout,
        Kind::Settings,
        Kind::Commission,
        Kind::Cookie,
        Kind::Day,
        Kind::Range,
        Kind::Notices,
    ];
}

/// The timezones every query is checked in: UTC and both extremes that the
/// settings form accepts.
fn timezones() -> impl Iterator<Item = Timezone> {
    ["UTC", "+14:00", "-14:00"]
        .into_iter()
        .map(|tz| Timezone::parse(tz).expect("a valid timezone"))
}

/// Runs one input: its first byte chooses the [`Kind`].
pub fn forms(data: &[u8]) {
    let Some((&first, rest)) = data.split_first() else {
        return;
    };
    let keys = Keys::new(SECRET.to_vec(), TENANT);
    match Kind::ALL[usize::from(first) % Kind::ALL.len()] {
        Kind::Login => login(&keys, rest),
        Kind::Logout => {
            let _: Option<CsrfOnly> = posted(&keys, rest);
        }
        Kind::Settings => {
            settings(&keys, rest);
            rule(&keys, rest);
        }
        Kind::Commission => commission(&keys, rest),
        Kind::Cookie => session_cookie(&keys, rest),
        Kind::Day => day(rest),
        Kind::Range => report_range(rest),
        Kind::Notices => {
            let _ = query_of::<SavedQuery>("/settings", rest).map(|q| q.saved);
            let _ = query_of::<ListQuery>("/gateways", rest).map(|q| q.revoked);
        }
    }
}

/// The session every post but the login's is checked with.
pub fn session(keys: &Keys) -> Session {
    keys.verify_session(&keys.sign_session(USER, session_expiry()), now())
        .expect("a freshly signed session verifies")
}

/// A form body as axum's `Form` extractor gives it to a handler; `None`
/// where axum refuses it (answered 4xx before the handler runs).
fn form<T: DeserializeOwned>(body: &[u8]) -> Option<T> {
    let request = Request::builder()
        .method(Method::POST)
        .uri("/")
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(Body::from(body.to_vec()))
        .expect("a valid request");
    match futures::executor::block_on(Form::<T>::from_request(request, &())) {
        Ok(Form(form)) => Some(form),
        Err(rejection) => {
            let status = rejection.into_response().status();
            assert!(status.is_client_error(), "a form refused with {status}");
            None
        }
    }
}

/// A post of a logged-in user: the form, after checking that its CSRF token
/// is accepted exactly when it is the session's (in either case of hex).
fn posted<T: DeserializeOwned + CsrfField>(keys: &Keys, body: &[u8]) -> Option<T> {
    let form: T = form(body)?;
    let session = session(keys);
    let expected = csrf::session_token(keys, &session);
    assert_eq!(
        csrf::verify_session_token(keys, &session, form.csrf()),
        form.csrf().eq_ignore_ascii_case(&expected),
        "CSRF token {:?} judged wrongly",
        form.csrf()
    );
    Some(form)
}

fn login(keys: &Keys, body: &[u8]) {
    let Some(form) = form::<LoginForm>(body) else {
        return;
    };
    let expected = csrf::login_token(keys, LOGIN_NONCE);
    assert_eq!(
        csrf::verify_login_token(keys, LOGIN_NONCE, &form.csrf),
        form.csrf.eq_ignore_ascii_case(&expected),
        "login CSRF token {:?} judged wrongly",
        form.csrf
    );
    assert!(
        !csrf::verify_login_token(keys, "", &form.csrf),
        "a login token accepted without a nonce"
    );
    // what the handler does with the fields before the store
    let username = form.username.trim();
    let _plausible = !username.is_empty()
        && username.len() <= crate::session::MAX_USERNAME
        && form.password.len() <= 1024;
}

fn settings(keys: &Keys, body: &[u8]) {
    let Some(form) = posted::<SettingsForm>(keys, body) else {
        return;
    };
    let parsed = Settings::from_form(&form.values());
    let Ok(settings) = parsed else {
        return;
    };
    assert!(
        !settings.display_name.is_empty()
            && settings.display_name.chars().count() <= 100
            && !settings.display_name.chars().any(char::is_control),
        "display name {:?} accepted",
        settings.display_name
    );
    assert!((1..=10_080).contains(&settings.offline_after_minutes));
    assert!(settings
        .power_alert_w
        .is_none_or(|w| w.is_finite() && w >= 0.0));
    assert_eq!(
        Timezone::parse(&settings.timezone.to_string()),
        Ok(settings.timezone),
        "the timezone does not read back as it prints"
    );
    assert!(
        settings.report_at.is_none() || !settings.report_recipients.is_empty(),
        "a daily report time accepted without recipients"
    );
    assert!(settings.report_recipients.len() <= notifier::rules::MAX_RECIPIENTS);
    let stored = settings
        .to_stored()
        .into_iter()
        .filter_map(|(k, v)| v.map(|v| (k.to_owned(), v)))
        .collect();
    assert_eq!(
        Settings::from_stored(TENANT, &stored),
        settings,
        "saved settings read back differently"
    );
}

/// An alert rule form: an accepted rule reads back from its stored text,
/// and its edit form gives the same rule again; a refused one names one of
/// the form's fields.
fn rule(keys: &Keys, body: &[u8]) {
    let Some(form) = posted::<RuleForm>(keys, body) else {
        return;
    };
    let id = notifier::rules::RuleId::parse("fuzz").expect("a valid rule id");
    match form.to_rule(id.clone(), now()) {
        Ok(rule) => {
            assert_eq!(
                notifier::rules::AlertRule::decode(&rule.encode()).as_ref(),
                Ok(&rule),
                "an accepted rule reads back differently from its stored text"
            );
            assert_eq!(
                RuleForm::of(&rule).to_rule(id, now()).as_ref(),
                Ok(&rule),
                "the edit form of an accepted rule gives another rule"
            );
        }
        Err(e) => assert!(
            [
                "kind",
                "value",
                "threshold",
                "for",
                "between",
                "gateway",
                "recipients"
            ]
            .contains(&e.field),
            "a refusal names no field: {e}"
        ),
    }
}

fn commission(keys: &Keys, body: &[u8]) {
    let Some(form) = posted::<CommissionForm>(keys, body) else {
        return;
    };
    if let Ok(id) = GatewayId::parse(form.gateway_id.trim()) {
        let id = id.as_str();
        assert!(!id.is_empty() && id.len() <= GatewayId::MAX_LEN);
        assert!(id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-')));
    }
    let given = form.display_name.trim();
    if let Ok(name) = DisplayName::parse(given) {
        let name = name.as_str();
        assert!(!name.is_empty() && name.chars().count() <= DisplayName::MAX_CHARS);
        assert!(!name.chars().any(char::is_control));
    }
}

/// The session cookie: accepted only if genuine, not expired, and spelled
/// exactly as the panel issued it (its revocation at logout is recorded
/// under the SHA-256 of its exact bytes, so another spelling of the same
/// session would not be found there).
fn session_cookie(keys: &Keys, header_value: &[u8]) {
    let Ok(value) = HeaderValue::from_bytes(header_value) else {
        return;
    };
    let mut headers = HeaderMap::new();
    headers.insert(header::COOKIE, value);
    for name in [keys.session_cookie_name(), keys.login_cookie_name()] {
        let Some(found) = cookie(&headers, &name) else {
            continue;
        };
        let Some(session) = keys.verify_session(found, now()) else {
            continue;
        };
        assert!(session.expires > now(), "an expired session accepted");
        assert_eq!(session.cookie_value, found);
        assert_eq!(
            keys.sign_session(&session.username, session.expires),
            found,
            "a session accepted in a spelling the panel never issues"
        );
    }
}

/// The query string of a request to `path` as axum's `Query` extractor
/// gives it to a handler; `None` if the request target is not a valid URI
/// (hyper answers 400 before the router sees it) or axum refuses it.
fn query_of<T: DeserializeOwned>(path: &str, query: &[u8]) -> Option<T> {
    let mut target = format!("{path}?").into_bytes();
    target.extend_from_slice(query);
    let uri = Uri::try_from(target.as_slice()).ok()?;
    Query::<T>::try_from_uri(&uri)
        .ok()
        .map(|Query(query)| query)
}

/// A refused query is a 400 with a page, never a panic.
fn refused(error: AppError) {
    assert_eq!(error.into_response().status(), StatusCode::BAD_REQUEST);
}

/// The gateway page: the day shown, its bounds in each timezone, the UTC
/// partitions it reads, and the links to the days before and after.
fn day(query: &[u8]) {
    let Some(query) = query_of::<DayQuery>("/gateways/gw-1", query) else {
        return;
    };
    for tz in timezones() {
        let today = tz.local_day(now());
        match parse_day(query.day.as_deref(), today) {
            Ok(day) => {
                check_day(tz, day);
                let _ = (day.pred_opt(), day.succ_opt().filter(|d| *d <= today));
            }
            Err(e) => refused(e),
        }
    }
}

/// The report: its range in each timezone, and every day of it.
fn report_range(query: &[u8]) {
    let Some(query) = query_of::<RangeQuery>("/reports", query) else {
        return;
    };
    for tz in timezones() {
        let mut settings = Settings::defaults(TENANT);
        settings.timezone = tz;
        match range(&query, &settings) {
            Ok((from, to)) => {
                assert!(from <= to, "a report from {from} to {to}");
                assert!((to - from).num_days() < 31, "a report from {from} to {to}");
                for day in from.iter_days().take_while(|d| *d <= to) {
                    check_day(settings.timezone, day);
                }
            }
            Err(e) => refused(e),
        }
    }
}

/// A local day's bounds are one day apart and overlap one or two UTC days.
fn check_day(tz: Timezone, day: chrono::NaiveDate) {
    let (from, to) = tz.day_bounds(day);
    assert_eq!(to - from, chrono::Duration::days(1));
    let partitions = partition_days(from, to);
    assert!(
        (1..=2).contains(&partitions.len()),
        "day {day} in {tz} reads {} partitions",
        partitions.len()
    );
}
