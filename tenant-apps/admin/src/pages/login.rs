//! `GET /login`, `POST /login` and `POST /logout`.
//!
//! The order of checks on a login post is: CSRF (403), rate limit (429,
//! before any password work), then the argon2 verification (401 on a wrong
//! username or password, with the same answer and about the same time for
//! both).

use std::net::SocketAddr;
use std::time::Instant;

use axum::extract::{ConnectInfo, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::{Extension, Form};
use chrono::Utc;
use serde::Deserialize;

use crate::csrf::{self, CsrfField, CsrfForm};
use crate::error::AppError;
use crate::session::{self, cookie, Session, MAX_USERNAME};
use crate::settings::Settings;
use crate::AppState;

use super::html;

const MAX_PASSWORD: usize = 1024;
const LOGIN_NONCE_MAX_AGE: u32 = 3600;

pub(super) async fn form(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Response, AppError> {
    let keys = state.keys();
    if cookie(&headers, &keys.session_cookie_name())
        .and_then(|v| keys.verify_session(v, Utc::now()))
        .is_some()
    {
        return Ok(Redirect::to("/").into_response());
    }
    login_page(&state, StatusCode::OK, None, "", None).await
}

/// The login page, with a fresh nonce unless `nonce` is given.
async fn login_page(
    state: &AppState,
    status: StatusCode,
    error: Option<&str>,
    username: &str,
    nonce: Option<&str>,
) -> Result<Response, AppError> {
    let keys = state.keys();
    let nonce = nonce
        .map(str::to_owned)
        .unwrap_or_else(csrf::new_login_nonce);
    // The login page still renders when Cassandra is away.
    let display_name = match state.store().settings().await {
        Ok(stored) => Settings::from_stored(state.tenant_id(), &stored).display_name,
        Err(_) => state.tenant_id().to_owned(),
    };
    let body = state.templates().render(
        "login",
        &serde_json::json!({
            "display_name": display_name,
            "csrf": csrf::login_token(keys, &nonce),
            "error": error,
            "username": username,
        }),
    )?;
    let mut response = html(status, body);
    let set_cookie = format!(
        "{}={nonce}; Path=/login; Max-Age={LOGIN_NONCE_MAX_AGE}; HttpOnly; SameSite=Strict",
        keys.login_cookie_name()
    );
    if let Ok(v) = set_cookie.parse() {
        response.headers_mut().append(header::SET_COOKIE, v);
    }
    Ok(response)
}

#[derive(Debug, Deserialize)]
pub(super) struct LoginForm {
    #[serde(default)]
    username: String,
    #[serde(default)]
    password: String,
    #[serde(default)]
    csrf: String,
}

pub(super) async fn submit(
    State(state): State<AppState>,
    connect_info: Option<Extension<ConnectInfo<SocketAddr>>>,
    headers: HeaderMap,
    Form(form): Form<LoginForm>,
) -> Result<Response, AppError> {
    let keys = state.keys();
    let nonce = cookie(&headers, &keys.login_cookie_name())
        .unwrap_or("")
        .to_owned();
    if !csrf::verify_login_token(keys, &nonce, &form.csrf) {
        return Err(AppError::CsrfRejected);
    }
    let address = connect_info.map(|Extension(ConnectInfo(addr))| addr.ip().to_string());
    let username = form.username.trim();
    let limiter = state.limiter();
    if let Err(retry_after) = limiter.check(username, address.as_deref(), Instant::now()) {
        tracing::warn!(
            username,
            address = address.as_deref().unwrap_or("-"),
            "login refused: too many failures"
        );
        return Err(AppError::TooManyLogins { retry_after });
    }

    let plausible = !username.is_empty()
        && username.len() <= MAX_USERNAME
        && form.password.len() <= MAX_PASSWORD;
    let stored = if plausible {
        state.store().password_hash(username).await?
    } else {
        None
    };
    let user_exists = stored.is_some();
    let hash = stored.unwrap_or_else(|| state.dummy_hash().to_owned());
    let password = form.password;
    let ok = {
        let _permit = state
            .password_checks()
            .acquire()
            .await
            .map_err(|e| AppError::Internal(e.to_string()))?;
        tokio::task::spawn_blocking(move || tenant_schema::model::verify_password(&password, &hash))
            .await
            .map_err(|e| AppError::Internal(format!("password check failed: {e}")))?
    };
    if !(ok && user_exists) {
        limiter.record_failure(username, address.as_deref(), Instant::now());
        tracing::info!(
            username,
            address = address.as_deref().unwrap_or("-"),
            "login failed"
        );
        return login_page(
            &state,
            StatusCode::UNAUTHORIZED,
            Some("Wrong username or password."),
            username,
            Some(&nonce),
        )
        .await;
    }
    limiter.record_success(username);
    tracing::info!(username, "logged in");
    let value = keys.sign_session(username, Utc::now() + session::SESSION_TTL);
    let mut response = Redirect::to("/").into_response();
    let headers = response.headers_mut();
    if let Ok(v) = keys.session_set_cookie(&value).parse() {
        headers.append(header::SET_COOKIE, v);
    }
    if let Ok(v) = format!(
        "{}=; Path=/login; Max-Age=0; HttpOnly; SameSite=Strict",
        keys.login_cookie_name()
    )
    .parse()
    {
        headers.append(header::SET_COOKIE, v);
    }
    Ok(response)
}

/// A form with nothing but its CSRF token.
#[derive(Debug, Deserialize)]
pub(super) struct CsrfOnly {
    #[serde(default)]
    csrf: String,
}

impl CsrfField for CsrfOnly {
    fn csrf(&self) -> &str {
        &self.csrf
    }
}

pub(super) async fn logout(State(state): State<AppState>, posted: CsrfForm<CsrfOnly>) -> Response {
    let Session { username, .. } = posted.session;
    tracing::info!(username, "logged out");
    let mut response = Redirect::to("/login").into_response();
    if let Ok(v) = state.keys().session_clear_cookie().parse() {
        response.headers_mut().append(header::SET_COOKIE, v);
    }
    response
}
