//! The one error type of the panel's handlers, and how each kind of error
//! becomes an HTTP response.
//!
//! Details of internal failures (Cassandra, templates) go to the log, not
//! to the browser: the page says what went wrong in general terms.

use std::time::Duration;

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};

use crate::charts::escape;
use crate::password::CheckError;
use crate::ratelimit::LimitError;
use crate::store::StoreError;

/// The `Retry-After` of a login refused because the panel was busy.
const BUSY_RETRY_AFTER: Duration = Duration::from_secs(2);

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// No valid session: the browser is sent to the login page.
    #[error("login required")]
    LoginRequired,
    #[error("the form's CSRF token is missing or invalid")]
    CsrfRejected,
    #[error("too many failed logins; try again in {} s", .retry_after.as_secs().max(1))]
    TooManyLogins { retry_after: Duration },
    /// Every password check slot stayed busy (see `password`).
    #[error("too many logins are being checked right now; try again in a few seconds")]
    LoginsBusy,
    #[error("{0}")]
    BadRequest(String),
    #[error("{0} not found")]
    NotFound(String),
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A read or write of the `notifier` table (alert rules, states, mails).
    #[error(transparent)]
    Alerts(#[from] notifier::store::StoreError),
    #[error("cannot render page {page}: {source}")]
    Render {
        page: &'static str,
        #[source]
        source: Box<handlebars::RenderError>,
    },
    #[error("{0}")]
    Internal(String),
}

impl AppError {
    pub fn status(&self) -> StatusCode {
        match self {
            AppError::LoginRequired => StatusCode::SEE_OTHER,
            AppError::CsrfRejected => StatusCode::FORBIDDEN,
            AppError::TooManyLogins { .. } | AppError::LoginsBusy => StatusCode::TOO_MANY_REQUESTS,
            AppError::BadRequest(_) => StatusCode::BAD_REQUEST,
            AppError::NotFound(_) => StatusCode::NOT_FOUND,
            AppError::Store(_) => StatusCode::SERVICE_UNAVAILABLE,
            AppError::Alerts(notifier::store::StoreError::Query { .. }) => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            AppError::Alerts(_) => StatusCode::INTERNAL_SERVER_ERROR,
            AppError::Render { .. } | AppError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

impl From<LimitError> for AppError {
    fn from(e: LimitError) -> Self {
        match e {
            LimitError::Locked { retry_after } => AppError::TooManyLogins { retry_after },
            LimitError::Store(e) => AppError::Store(e),
        }
    }
}

impl From<CheckError> for AppError {
    fn from(e: CheckError) -> Self {
        match e {
            CheckError::Busy => AppError::LoginsBusy,
            CheckError::Failed(why) => AppError::Internal(why),
        }
    }
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        let status = self.status();
        let message = match &self {
            AppError::LoginRequired => return Redirect::to("/login").into_response(),
            AppError::Store(e) => {
                tracing::error!(error = %e, "store error");
                "the database did not answer; try again in a moment".to_owned()
            }
            AppError::Alerts(e @ notifier::store::StoreError::Query { .. }) => {
                tracing::error!(error = %e, "alert store error");
                "the database did not answer; try again in a moment".to_owned()
            }
            // An unreadable row of the tenant's own alerts: say which.
            AppError::Alerts(e) => {
                tracing::error!(error = %e, "alert store error");
                e.to_string()
            }
            AppError::Render { .. } | AppError::Internal(_) => {
                tracing::error!(error = %self, "internal error");
                "something went wrong on our side".to_owned()
            }
            other => {
                tracing::info!(status = status.as_u16(), error = %other, "request refused");
                other.to_string()
            }
        };
        let title = status.canonical_reason().unwrap_or("Error");
        let body = format!(
            "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>{title}</title>\
             <link rel=\"stylesheet\" href=\"/assets/app.css\"></head><body><main class=\"narrow\">\
             <h1>{title}</h1><p class=\"error\">{}</p><p><a href=\"/\">Back to the dashboard</a></p>\
             </main></body></html>",
            escape(&message)
        );
        let mut response = (
            status,
            [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
            body,
        )
            .into_response();
        let retry_after = match self {
            AppError::TooManyLogins { retry_after } => Some(retry_after),
            AppError::LoginsBusy => Some(BUSY_RETRY_AFTER),
            _ => None,
        };
        if let Some(retry_after) = retry_after {
            if let Ok(v) = HeaderValue::from_str(&retry_after.as_secs().max(1).to_string()) {
                response.headers_mut().insert(header::RETRY_AFTER, v);
            }
        }
        response
    }
}
