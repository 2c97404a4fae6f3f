//! `GET /login`, `POST /login` and `POST /logout`.
//!
//! The order of checks on a login post is: CSRF (403), rate limit (429,
//! before any password work), a password check slot (429 if none frees up
//! in time), then the argon2 verification (401 on a wrong username or
//! password, with the same answer and the same work for both). Logout
//! revokes the session in the store before deleting the cookie.

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::{Extension, Form};
use chrono::Utc;
use serde::Deserialize;

use crate::client::client_address;
use crate::csrf::{self, CsrfField, CsrfForm};
use crate::error::AppError;
use crate::ratelimit::LimitError;
use crate::session::{self, cookie, Session, MAX_USERNAME};
use crate::settings::Settings;
use crate::AppState;

use super::html;

const MAX_PASSWORD: usize = 1024;
const LOGIN_NONCE_MAX_AGE: i64 = 3600;

pub(super) async fn form(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Response, AppError> {
    if session::current(&state, &headers).await?.is_some() {
        return Ok(Redirect::to("/").into_response());
    }
    login_page(&state, &headers, StatusCode::OK, None, "", None).await
}

/// The login page, with a fresh nonce unless `nonce` is given.
async fn login_page(
    state: &AppState,
    headers: &HeaderMap,
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
    let set_cookie = keys.set_cookie(
        headers,
        &keys.login_cookie_name(),
        &nonce,
        "/login",
        LOGIN_NONCE_MAX_AGE,
    );
    if let Ok(v) = set_cookie.parse() {
        response.headers_mut().append(header::SET_COOKIE, v);
    }
    Ok(response)
}

#[derive(Debug, Deserialize)]
pub(super) struct LoginForm {
    #[serde(default)]
    pub(super) username: String,
    #[serde(default)]
    pub(super) password: String,
    #[serde(default)]
    pub(super) csrf: String,
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
    let client_ip = client_of(&state, connect_info, &headers);
    let address = client_ip.as_deref();
    let client = address.unwrap_or("-");
    let username = form.username.trim();
    let limiter = state.limiter();
    let attempt = match limiter.begin(state.store(), username, address).await {
        Ok(attempt) => attempt,
        Err(e) => {
            if let LimitError::Locked { .. } = e {
                tracing::warn!(username, client, "login refused: too many failures");
            }
            return Err(e.into());
        }
    };

    let plausible = !username.is_empty()
        && username.len() <= MAX_USERNAME
        && form.password.len() <= MAX_PASSWORD;
    let stored = if plausible {
        match state.store().password_hash(username).await {
            Ok(stored) => stored,
            Err(e) => {
                limiter.withdraw(state.store(), attempt).await?;
                return Err(e.into());
            }
        }
    } else {
        None
    };
    let ok = match state.passwords().verify(form.password, stored).await {
        Ok(ok) => ok,
        Err(e) => {
            tracing::warn!(username, client, error = %e, "login not checked");
            limiter.withdraw(state.store(), attempt).await?;
            return Err(e.into());
        }
    };
    if !ok {
        limiter.failed(attempt);
        tracing::info!(username, client, "login failed");
        return login_page(
            &state,
            &headers,
            StatusCode::UNAUTHORIZED,
            Some("Wrong username or password."),
            username,
            Some(&nonce),
        )
        .await;
    }
    limiter.succeeded(state.store(), attempt).await?;
    tracing::info!(username, client, "logged in");
    let value = keys.sign_session(username, Utc::now() + session::SESSION_TTL);
    let mut response = Redirect::to("/").into_response();
    let set = response.headers_mut();
    if let Ok(v) = keys.session_set_cookie(&headers, &value).parse() {
        set.append(header::SET_COOKIE, v);
    }
    let clear_nonce = keys.set_cookie(&headers, &keys.login_cookie_name(), "", "/login", 0);
    if let Ok(v) = clear_nonce.parse() {
        set.append(header::SET_COOKIE, v);
    }
    Ok(response)
}

/// Who posts: the peer, or the client a trusted proxy names
/// ([`client_address`]); what the logs (`client=`) and the per-address
/// login limit count. `None` when the peer is unknown.
fn client_of(
    state: &AppState,
    connect_info: Option<Extension<ConnectInfo<SocketAddr>>>,
    headers: &HeaderMap,
) -> Option<String> {
    let peer = connect_info.map(|Extension(ConnectInfo(addr))| addr);
    client_address(peer, headers, state.trusted_proxies()).map(|ip| ip.to_string())
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

/// Revokes the session (so the cookie is refused from now on, wherever it
/// was copied to), then deletes it from the browser.
pub(super) async fn logout(
    State(state): State<AppState>,
    connect_info: Option<Extension<ConnectInfo<SocketAddr>>>,
    headers: HeaderMap,
    posted: CsrfForm<CsrfOnly>,
) -> Result<Response, AppError> {
    let session = posted.session;
    let now = Utc::now();
    let remaining = (session.expires - now).to_std().unwrap_or_default();
    state
        .store()
        .revoke_session(&session.fingerprint(), now, remaining)
        .await?;
    let Session { username, .. } = session;
    let client = client_of(&state, connect_info, &headers);
    tracing::info!(
        username,
        client = client.as_deref().unwrap_or("-"),
        "logged out"
    );
    let mut response = Redirect::to("/login").into_response();
    if let Ok(v) = state.keys().session_clear_cookie(&headers).parse() {
        response.headers_mut().append(header::SET_COOKIE, v);
    }
    Ok(response)
}
