//! Login sessions as signed cookies, and their revocation at logout.
//!
//! A session cookie is `v1.<hex username>.<expiry unix seconds>.<hex mac>`
//! where the MAC is HMAC-SHA256, keyed with the panel's session secret, over
//! the tenant id, the username and the expiry. A cookie is accepted only if
//! the MAC matches and the expiry is in the future; binding the tenant id
//! into the MAC means a cookie minted by another tenant's panel is refused
//! even if the two panels were started with the same secret.
//!
//! Cookies are `HttpOnly` and `SameSite=Strict`, and their names carry the
//! tenant id: browsers scope cookies by host, not by port, so the panels of
//! two tenants on one host would otherwise overwrite each other's cookies.
//! The panel itself serves plain HTTP (TLS is a proxy's job), so cookies
//! are `Secure` when the operator says the panel sits behind TLS
//! (`ADMIN_BEHIND_TLS`) or when the request says a proxy received it over
//! TLS (`X-Forwarded-Proto: https`). A browser keeps a `Secure` cookie only
//! from an https origin, so a forged header costs its sender the cookie
//! and no one else anything.
//!
//! Logging out records the cookie's [`fingerprint`] (its SHA-256) in the
//! tenant keyspace (`auth_records`, kind `revoked-session`) with a TTL of
//! the cookie's remaining lifetime, and every request checks that record:
//! a logged-out cookie is refused even if it was copied before, and even by
//! a restarted panel. Changing the session secret still ends every session.

use axum::extract::FromRequestParts;
use axum::http::header::COOKIE;
use axum::http::request::Parts;
use axum::http::HeaderMap;
use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

use crate::error::AppError;
use crate::AppState;

type HmacSha256 = Hmac<Sha256>;

/// How long a login lasts.
pub const SESSION_TTL: chrono::Duration = chrono::Duration::hours(12);

/// The longest username the panel accepts.
pub const MAX_USERNAME: usize = 64;

/// The secret that signs sessions and CSRF tokens of one tenant's panel.
#[derive(Clone)]
pub struct Keys {
    secret: Vec<u8>,
    tenant_id: String,
    behind_tls: bool,
}

impl std::fmt::Debug for Keys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Keys")
            .field("tenant_id", &self.tenant_id)
            .finish_non_exhaustive()
    }
}

impl Keys {
    pub fn new(secret: Vec<u8>, tenant_id: &str) -> Self {
        Keys {
            secret,
            tenant_id: tenant_id.to_owned(),
            behind_tls: false,
        }
    }

    /// A fresh random secret (when none is configured).
    pub fn random_secret() -> Vec<u8> {
        use rand::RngCore;
        let mut secret = vec![0u8; 32];
        rand::thread_rng().fill_bytes(&mut secret);
        secret
    }

    pub fn tenant_id(&self) -> &str {
        &self.tenant_id
    }

    /// HMAC over the tenant id and `parts`, each length-prefixed so no two
    /// different part lists hash the same input.
    pub(crate) fn mac(&self, purpose: &str, parts: &[&[u8]]) -> Vec<u8> {
        self.mac_state(purpose, parts)
            .finalize()
            .into_bytes()
            .to_vec()
    }

    /// Whether `tag` is the MAC of `parts`, compared in constant time.
    pub(crate) fn verify(&self, purpose: &str, parts: &[&[u8]], tag: &[u8]) -> bool {
        self.mac_state(purpose, parts).verify_slice(tag).is_ok()
    }

    fn mac_state(&self, purpose: &str, parts: &[&[u8]]) -> HmacSha256 {
        let mut mac =
            HmacSha256::new_from_slice(&self.secret).expect("hmac accepts any key length");
        for part in [purpose.as_bytes(), self.tenant_id.as_bytes()]
            .iter()
            .chain(parts)
        {
            mac.update(&(part.len() as u64).to_be_bytes());
            mac.update(part);
        }
        mac
    }

    /// The name of the session cookie of this tenant's panel.
    pub fn session_cookie_name(&self) -> String {
        format!("admin_session_{}", self.tenant_id)
    }

    /// The name of the cookie carrying the login form's CSRF nonce.
    pub fn login_cookie_name(&self) -> String {
        format!("admin_login_{}", self.tenant_id)
    }

    /// A signed session value for `username`, valid until `expires`.
    pub fn sign_session(&self, username: &str, expires: DateTime<Utc>) -> String {
        let expiry = expires.timestamp().to_string();
        let tag = self.mac("session", &[username.as_bytes(), expiry.as_bytes()]);
        format!(
            "v1.{}.{}.{}",
            hex::encode(username),
            expiry,
            hex::encode(tag)
        )
    }

    /// The session a cookie value stands for, if it is genuine and not
    /// expired at `now`.
    pub fn verify_session(&self, value: &str, now: DateTime<Utc>) -> Option<Session> {
        let mut fields = value.split('.');
        let (Some("v1"), Some(user_hex), Some(expiry), Some(tag_hex), None) = (
            fields.next(),
            fields.next(),
            fields.next(),
            fields.next(),
            fields.next(),
        ) else {
            return None;
        };
        let username = String::from_utf8(hex::decode(user_hex).ok()?).ok()?;
        let tag = hex::decode(tag_hex).ok()?;
        if !self.verify("session", &[username.as_bytes(), expiry.as_bytes()], &tag) {
            return None;
        }
        let expires = DateTime::from_timestamp(expiry.parse().ok()?, 0)?;
        // Only the spelling this panel issues: a logout revokes the cookie
        // by the SHA-256 of its exact bytes, so another spelling of the
        // same signed session (upper-case hex, a `+` or leading zero in the
        // expiry) would pass the MAC and not be found revoked.
        if value != self.sign_session(&username, expires) {
            return None;
        }
        (expires > now).then(|| Session {
            username,
            expires,
            cookie_value: value.to_owned(),
        })
    }

    /// The same keys for a panel that browsers reach over TLS only (every
    /// cookie `Secure`, see the module docs).
    pub fn behind_tls(self, behind_tls: bool) -> Keys {
        Keys { behind_tls, ..self }
    }

    /// Whether the cookies of the answer to a request with `headers` are
    /// `Secure`: behind TLS, or forwarded by a proxy that received it over
    /// TLS.
    pub fn cookies_secure(&self, headers: &HeaderMap) -> bool {
        self.behind_tls
            || headers
                .get("x-forwarded-proto")
                .and_then(|v| v.to_str().ok())
                .is_some_and(|proto| proto.trim().eq_ignore_ascii_case("https"))
    }

    /// A `Set-Cookie` value of this panel, in answer to a request with
    /// `headers`: `HttpOnly`, `SameSite=Strict`, and `Secure` when
    /// [`Keys::cookies_secure`] says so. An empty `value` with `max_age` 0
    /// deletes the cookie.
    pub fn set_cookie(
        &self,
        headers: &HeaderMap,
        name: &str,
        value: &str,
        path: &str,
        max_age: i64,
    ) -> String {
        let secure = if self.cookies_secure(headers) {
            "; Secure"
        } else {
            ""
        };
        format!("{name}={value}; Path={path}; Max-Age={max_age}; HttpOnly; SameSite=Strict{secure}")
    }

    /// The `Set-Cookie` value that starts a session.
    pub fn session_set_cookie(&self, headers: &HeaderMap, value: &str) -> String {
        let name = self.session_cookie_name();
        self.set_cookie(headers, &name, value, "/", SESSION_TTL.num_seconds())
    }

    /// The `Set-Cookie` value that ends a session.
    pub fn session_clear_cookie(&self, headers: &HeaderMap) -> String {
        self.set_cookie(headers, &self.session_cookie_name(), "", "/", 0)
    }
}

/// A logged-in user, taken from a valid session cookie. As an extractor it
/// refuses requests without one (they are sent to the login page).
#[derive(Debug, Clone)]
pub struct Session {
    pub username: String,
    pub expires: DateTime<Utc>,
    /// The cookie value, which the CSRF tokens of this session are bound to.
    pub cookie_value: String,
}

impl Session {
    /// What the revocation of this session is recorded under.
    pub fn fingerprint(&self) -> String {
        fingerprint(&self.cookie_value)
    }
}

/// The SHA-256 (hex) of a session cookie value: the revocation record's
/// key, so the store never holds a usable cookie.
pub fn fingerprint(cookie_value: &str) -> String {
    hex::encode(Sha256::digest(cookie_value.as_bytes()))
}

/// The session the request's cookie stands for: genuine, not expired, and
/// not logged out. `None` without one; a store failure is an error (the
/// panel does not let a cookie in when it cannot tell whether it was
/// logged out).
pub async fn current(state: &AppState, headers: &HeaderMap) -> Result<Option<Session>, AppError> {
    let keys = state.keys();
    let Some(session) = cookie(headers, &keys.session_cookie_name())
        .and_then(|value| keys.verify_session(value, Utc::now()))
    else {
        return Ok(None);
    };
    if state
        .store()
        .session_revoked(&session.fingerprint())
        .await?
    {
        return Ok(None);
    }
    Ok(Some(session))
}

impl FromRequestParts<AppState> for Session {
    type Rejection = AppError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        current(state, &parts.headers)
            .await?
            .ok_or(AppError::LoginRequired)
    }
}

/// The value of the cookie `name` in the request, if any.
pub fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(tenant: &str, secret: &[u8]) -> Keys {
        Keys::new(secret.to_vec(), tenant)
    }

    #[test]
    fn cookies_are_secure_behind_tls_or_when_a_proxy_received_the_request_over_tls() {
        let plain = HeaderMap::new();
        let mut forwarded = HeaderMap::new();
        forwarded.insert("x-forwarded-proto", "HTTPS".parse().unwrap());
        let mut forwarded_http = HeaderMap::new();
        forwarded_http.insert("x-forwarded-proto", "http".parse().unwrap());
        let k = keys("acme", b"secret");
        let value = k.sign_session("alice", Utc::now() + chrono::Duration::hours(1));
        let set = k.session_set_cookie(&plain, &value);
        assert!(set.ends_with("HttpOnly; SameSite=Strict"), "{set}");
        assert!(!k.session_clear_cookie(&forwarded_http).contains("Secure"));
        for set in [
            k.session_set_cookie(&forwarded, &value),
            k.session_clear_cookie(&forwarded),
            k.clone()
                .behind_tls(true)
                .session_set_cookie(&plain, &value),
            k.clone()
                .behind_tls(true)
                .set_cookie(&plain, "n", "v", "/login", 60),
        ] {
            assert!(
                set.ends_with("; HttpOnly; SameSite=Strict; Secure"),
                "{set}"
            );
        }
    }

    #[test]
    fn a_signed_session_verifies_until_it_expires() {
        let k = keys("acme", b"secret");
        let now = Utc::now();
        let value = k.sign_session("alice", now + chrono::Duration::hours(1));
        let session = k.verify_session(&value, now).unwrap();
        assert_eq!(session.username, "alice");
        assert!(k
            .verify_session(&value, now + chrono::Duration::hours(2))
            .is_none());
    }

    #[test]
    fn a_tampered_session_is_refused() {
        let k = keys("acme", b"secret");
        let now = Utc::now();
        let value = k.sign_session("alice", now + chrono::Duration::hours(1));
        // another user with the same tag
        let forged = value.replacen(&hex::encode("alice"), &hex::encode("mallory"), 1);
        assert!(k.verify_session(&forged, now).is_none());
        // a later expiry with the same tag
        let mut fields: Vec<String> = value.split('.').map(str::to_owned).collect();
        fields[2] = (now + chrono::Duration::days(365)).timestamp().to_string();
        assert!(k.verify_session(&fields.join("."), now).is_none());
        assert!(k.verify_session("garbage", now).is_none());
        assert!(k.verify_session("v1.zz.1.00", now).is_none());
    }

    #[test]
    fn a_session_is_accepted_only_as_it_was_issued() {
        // found by the admin_forms fuzz target: the tag with one hex digit
        // in upper case passed the MAC check, and its fingerprint (the key
        // of the logout's revocation record) was another
        let k = keys("acme", b"secret");
        let now = Utc::now();
        let value = k.sign_session("alice", now + chrono::Duration::hours(1));
        assert!(k.verify_session(&value, now).is_some());
        let fields: Vec<&str> = value.split('.').collect();
        let [_, user, expiry, tag] = fields[..] else {
            panic!("four fields in {value}");
        };
        let respelled = [
            format!("v1.{user}.{expiry}.{}", tag.to_uppercase()),
            format!("v1.{}.{expiry}.{tag}", user.to_uppercase()),
            format!("v1.{user}.0{expiry}.{tag}"),
            format!("v1.{user}.+{expiry}.{tag}"),
        ];
        for other in respelled {
            assert_ne!(fingerprint(&other), fingerprint(&value));
            assert!(k.verify_session(&other, now).is_none(), "{other} accepted");
        }
    }

    #[test]
    fn a_session_of_another_tenant_or_secret_is_refused() {
        let now = Utc::now();
        let value = keys("acme", b"secret").sign_session("alice", now + chrono::Duration::hours(1));
        assert!(keys("globex", b"secret")
            .verify_session(&value, now)
            .is_none());
        assert!(keys("acme", b"other").verify_session(&value, now).is_none());
    }

    #[test]
    fn cookies_are_found_by_name() {
        let mut headers = HeaderMap::new();
        headers.insert(COOKIE, "a=1; admin_session_acme=v1.x; b=2".parse().unwrap());
        assert_eq!(cookie(&headers, "admin_session_acme"), Some("v1.x"));
        assert_eq!(cookie(&headers, "admin_session"), None);
    }
}
