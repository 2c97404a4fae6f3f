//! Errors as problem documents (RFC 9457, `application/problem+json`),
//! carrying the same error kind as the CLI's exit code.

use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use provisioner::{Error, ErrorKind};
use serde::Serialize;

/// One problem document.
#[derive(Debug, Clone, Serialize)]
pub struct Problem {
    /// A URI naming the kind: `urn:provision:error:<kind>`.
    #[serde(rename = "type")]
    pub kind_uri: String,
    pub title: &'static str,
    pub status: u16,
    pub detail: String,
    /// The CLI's error kind (`port_taken`, `unknown_provider`, ...).
    pub kind: &'static str,
    /// The CLI's exit code for the same error.
    pub exit_code: u8,
}

/// The HTTP status of an error kind.
pub fn status_of(kind: ErrorKind) -> StatusCode {
    match kind {
        ErrorKind::Usage | ErrorKind::InvalidProviderId => StatusCode::BAD_REQUEST,
        ErrorKind::UnknownProvider => StatusCode::NOT_FOUND,
        ErrorKind::PortTaken | ErrorKind::PortPoolExhausted => StatusCode::CONFLICT,
        ErrorKind::EngineUnreachable
        | ErrorKind::CassandraUnreachable
        | ErrorKind::CassandraAuth
        | ErrorKind::Insecure
        | ErrorKind::Unhealthy => StatusCode::SERVICE_UNAVAILABLE,
        ErrorKind::Other => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

impl From<&Error> for Problem {
    fn from(e: &Error) -> Problem {
        let kind = e.kind();
        let status = status_of(kind);
        Problem {
            kind_uri: format!("urn:provision:error:{}", kind.as_str()),
            title: status.canonical_reason().unwrap_or("error"),
            status: status.as_u16(),
            detail: e.to_string(),
            kind: kind.as_str(),
            exit_code: kind.exit_code(),
        }
    }
}

/// An operation's error, answered as a problem document.
#[derive(Debug)]
pub struct ApiError(pub Error);

impl<E: Into<Error>> From<E> for ApiError {
    fn from(e: E) -> ApiError {
        ApiError(e.into())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let problem = Problem::from(&self.0);
        let status =
            StatusCode::from_u16(problem.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let body = serde_json::to_vec(&problem).expect("a problem serializes");
        (
            status,
            [(header::CONTENT_TYPE, "application/problem+json")],
            body,
        )
            .into_response()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unknown_provider_is_a_404_with_the_cli_kind() {
        let id = provisioner::ProviderId::parse("nobody").unwrap();
        let p = Problem::from(&Error::UnknownProvider(id));
        assert_eq!(
            (p.status, p.kind, p.exit_code),
            (404, "unknown_provider", 8)
        );
        assert_eq!(p.kind_uri, "urn:provision:error:unknown_provider");
        let bad = provisioner::ProviderId::parse("Bad").unwrap_err();
        assert_eq!(Problem::from(&Error::from(bad)).status, 400);
    }
}
