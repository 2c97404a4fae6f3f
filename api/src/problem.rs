//! Errors as problem documents (RFC 9457, `application/problem+json`),
//! carrying the same error kind as the CLI's exit code: the library's
//! errors by their kind, and what only the API can refuse (a missing or
//! wrong token, a body that does not parse, an unknown operation).

use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use provisioner::{Error, ErrorKind};
use serde::{Deserialize, Serialize};

/// One problem document.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Problem {
    /// A URI naming the kind: `urn:provision:error:<kind>`.
    #[serde(rename = "type")]
    pub kind_uri: String,
    pub title: String,
    pub status: u16,
    pub detail: String,
    /// The CLI's error kind (`port_taken`, `unknown_provider`, ...).
    pub kind: ErrorKind,
    /// The CLI's exit code for the same error.
    pub exit_code: u8,
}

/// The HTTP status of an error kind.
pub fn status_of(kind: ErrorKind) -> StatusCode {
    match kind {
        ErrorKind::Usage | ErrorKind::InvalidProviderId => StatusCode::BAD_REQUEST,
        ErrorKind::Unauthorized => StatusCode::UNAUTHORIZED,
        ErrorKind::UnknownProvider | ErrorKind::UnknownNode => StatusCode::NOT_FOUND,
        ErrorKind::PortTaken
        | ErrorKind::PortPoolExhausted
        | ErrorKind::Conflict
        | ErrorKind::MailOff
        | ErrorKind::NotNPlusOne
        | ErrorKind::ClustersFull
        | ErrorKind::SubnetsExhausted
        | ErrorKind::RolledBack => StatusCode::CONFLICT,
        ErrorKind::DrainIncomplete => StatusCode::GATEWAY_TIMEOUT,
        ErrorKind::EngineUnreachable
        | ErrorKind::EngineUnsupported
        | ErrorKind::CassandraUnreachable
        | ErrorKind::CassandraAuth
        | ErrorKind::Insecure
        | ErrorKind::Unhealthy
        | ErrorKind::Front
        | ErrorKind::DaemonUnreachable => StatusCode::SERVICE_UNAVAILABLE,
        ErrorKind::Other => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

impl Problem {
    pub fn new(status: StatusCode, kind: ErrorKind, detail: impl Into<String>) -> Problem {
        Problem {
            kind_uri: format!("urn:provision:error:{}", kind.as_str()),
            title: status.canonical_reason().unwrap_or("error").to_owned(),
            status: status.as_u16(),
            detail: detail.into(),
            kind,
            exit_code: kind.exit_code(),
        }
    }
}

impl From<&Error> for Problem {
    fn from(e: &Error) -> Problem {
        let kind = e.kind();
        Problem::new(status_of(kind), kind, e.full_message())
    }
}

/// What a handler fails with: answered as a problem document.
#[derive(Debug)]
pub enum ApiError {
    /// An operation's error, by its kind.
    Library(Error),
    /// What the API itself refuses, with its status.
    Refused(Problem),
}

impl ApiError {
    /// A request the API cannot take (a body that does not parse: 400 for
    /// bad JSON, 422 for JSON of the wrong shape).
    pub fn invalid(status: StatusCode, detail: impl Into<String>) -> ApiError {
        ApiError::Refused(Problem::new(status, ErrorKind::Usage, detail))
    }

    pub fn unauthorized(detail: impl Into<String>) -> ApiError {
        ApiError::Refused(Problem::new(
            StatusCode::UNAUTHORIZED,
            ErrorKind::Unauthorized,
            detail,
        ))
    }

    pub fn not_found(detail: impl Into<String>) -> ApiError {
        ApiError::Refused(Problem::new(
            StatusCode::NOT_FOUND,
            ErrorKind::UnknownProvider,
            detail,
        ))
    }
}

impl<E: Into<Error>> From<E> for ApiError {
    fn from(e: E) -> ApiError {
        ApiError::Library(e.into())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let problem = match self {
            ApiError::Library(e) => Problem::from(&e),
            ApiError::Refused(p) => p,
        };
        problem.into_response()
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let body = serde_json::to_vec(&self).expect("a problem serializes");
        let mut response = (
            status,
            [(header::CONTENT_TYPE, "application/problem+json")],
            body,
        )
            .into_response();
        if status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                header::HeaderValue::from_static("Bearer realm=\"provisiond\""),
            );
        }
        response
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
            (404, ErrorKind::UnknownProvider, 8)
        );
        assert_eq!(p.kind_uri, "urn:provision:error:unknown_provider");
        let bad = provisioner::ProviderId::parse("Bad").unwrap_err();
        assert_eq!(Problem::from(&Error::from(bad)).status, 400);
    }

    #[test]
    fn every_kind_has_a_status_that_is_an_error() {
        for kind in ErrorKind::ALL {
            let status = status_of(kind);
            assert!(
                status.is_client_error() || status.is_server_error(),
                "{kind}"
            );
        }
    }
}
