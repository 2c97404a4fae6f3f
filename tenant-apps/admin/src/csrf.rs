//! CSRF protection for every form, without server-side state.
//!
//! - Forms of a logged-in user carry a token that is an HMAC of the session
//!   cookie's value: a page on another site can neither read the cookie nor
//!   compute the token, so it cannot forge a valid post.
//! - The login form (no session yet) uses a double-submit nonce: `GET
//!   /login` sets a random nonce in an HttpOnly cookie and puts the HMAC of
//!   it in the form; `POST /login` requires both to match.
//!
//! [`CsrfForm`] is the extractor every state-changing handler takes: it
//! requires a valid session and a valid `csrf` field before the handler
//! runs, and refuses the request with 403 otherwise.

use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::Form;
use serde::de::DeserializeOwned;

use crate::error::AppError;
use crate::session::{Keys, Session};
use crate::AppState;

/// The CSRF token of the forms of `session`.
pub fn session_token(keys: &Keys, session: &Session) -> String {
    hex::encode(keys.mac("csrf", &[session.cookie_value.as_bytes()]))
}

/// Whether `token` is the CSRF token of `session`.
pub fn verify_session_token(keys: &Keys, session: &Session, token: &str) -> bool {
    hex::decode(token)
        .map(|tag| keys.verify("csrf", &[session.cookie_value.as_bytes()], &tag))
        .unwrap_or(false)
}

/// A fresh nonce for the login form's cookie.
pub fn new_login_nonce() -> String {
    use rand::RngCore;
    let mut bytes = [0u8; 16];
    rand::thread_rng().fill_bytes(&mut bytes);
    hex::encode(bytes)
}

/// The login form's token for `nonce`.
pub fn login_token(keys: &Keys, nonce: &str) -> String {
    hex::encode(keys.mac("login-csrf", &[nonce.as_bytes()]))
}

/// Whether `token` is the login form's token for `nonce`.
pub fn verify_login_token(keys: &Keys, nonce: &str, token: &str) -> bool {
    !nonce.is_empty()
        && hex::decode(token)
            .map(|tag| keys.verify("login-csrf", &[nonce.as_bytes()], &tag))
            .unwrap_or(false)
}

/// A form that carries a CSRF token in its `csrf` field.
pub trait CsrfField {
    fn csrf(&self) -> &str;
}

/// A form post by a logged-in user whose CSRF token checked out.
#[derive(Debug)]
pub struct CsrfForm<T> {
    pub session: Session,
    pub form: T,
}

impl<T> FromRequest<AppState> for CsrfForm<T>
where
    T: DeserializeOwned + CsrfField + Send,
{
    type Rejection = AppError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, Self::Rejection> {
        let (mut parts, body) = req.into_parts();
        let session = Session::from_request_parts(&mut parts, state).await?;
        let req = Request::from_parts(parts, body);
        let Form(form) = Form::<T>::from_request(req, state)
            .await
            .map_err(|e| AppError::BadRequest(format!("form not understood: {}", e.body_text())))?;
        if !verify_session_token(state.keys(), &session, form.csrf()) {
            return Err(AppError::CsrfRejected);
        }
        Ok(CsrfForm { session, form })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Utc;

    #[test]
    fn a_session_token_is_valid_only_for_its_session() {
        let keys = Keys::new(b"k".to_vec(), "acme");
        let exp = Utc::now() + chrono::Duration::hours(1);
        let a = keys
            .verify_session(&keys.sign_session("alice", exp), Utc::now())
            .unwrap();
        let b = keys
            .verify_session(&keys.sign_session("bob", exp), Utc::now())
            .unwrap();
        let token = session_token(&keys, &a);
        assert!(verify_session_token(&keys, &a, &token));
        assert!(!verify_session_token(&keys, &b, &token));
        assert!(!verify_session_token(&keys, &a, ""));
        assert!(!verify_session_token(&keys, &a, "not hex"));
    }

    #[test]
    fn a_login_token_is_valid_only_for_its_nonce() {
        let keys = Keys::new(b"k".to_vec(), "acme");
        let nonce = new_login_nonce();
        let token = login_token(&keys, &nonce);
        assert!(verify_login_token(&keys, &nonce, &token));
        assert!(!verify_login_token(&keys, &new_login_nonce(), &token));
        assert!(!verify_login_token(&keys, "", &login_token(&keys, "")));
        assert!(!verify_login_token(
            &Keys::new(b"k".to_vec(), "globex"),
            &nonce,
            &token
        ));
    }
}
