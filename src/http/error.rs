//! `ApiError`: the one place where failures become HTTP answers.
//!
//! Policy: a client mistake is a 4xx with a stable `snake_case` code and a one-line message,
//! logged at debug; a server fault is a 5xx whose cause is logged at error and never shown
//! to the client. Body: `{"error":{"code":"…","message":"…"}}`. Ingestion errors also carry
//! `X-Sentry-Error` (SDKs log it), and 429/503 carry an integer `Retry-After`.

use axum::http::{HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;
use utoipa::ToSchema;

use crate::ingest::IngestError;
use crate::store::StoreError;

/// The body of every error answer; the OpenAPI document shows this same type.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorDetail {
    /// Stable, `snake_case`: what clients branch on.
    pub code: String,
    /// One line for people; its wording may change.
    pub message: String,
}

#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
    headers: Vec<(HeaderName, HeaderValue)>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            code,
            message: message.into(),
            headers: Vec::new(),
        }
    }

    pub fn not_found(what: impl Into<String>) -> ApiError {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("{} not found", what.into()),
        )
    }

    pub fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, "bad_request", message)
    }

    /// A well-formed request whose values break a rule (an unknown enum value, a number out
    /// of range, a field that does not go with another).
    pub fn unprocessable(message: impl Into<String>) -> ApiError {
        ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
            message,
        )
    }

    pub fn unauthorized(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", message)
    }

    fn with_header(mut self, name: &'static str, value: String) -> ApiError {
        if let Ok(value) = HeaderValue::from_str(&value) {
            self.headers.push((HeaderName::from_static(name), value));
        }
        self
    }

    fn retry_after(self, seconds: u64) -> ApiError {
        self.with_header("retry-after", seconds.to_string())
    }

    pub fn status(&self) -> StatusCode {
        self.status
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if self.status.is_server_error() {
            tracing::warn!(status = %self.status, code = self.code, message = %self.message, "request failed");
        } else {
            tracing::debug!(status = %self.status, code = self.code, message = %self.message, "request refused");
        }
        let body = ErrorBody {
            error: ErrorDetail {
                code: self.code.to_owned(),
                message: self.message,
            },
        };
        let mut response = (self.status, Json(body)).into_response();
        response.headers_mut().extend(self.headers);
        response
    }
}

impl From<StoreError> for ApiError {
    fn from(error: StoreError) -> ApiError {
        match error {
            StoreError::Conflict(what) => ApiError::new(
                StatusCode::CONFLICT,
                "conflict",
                format!("{what} already exists"),
            ),
            error if error.is_unavailable() => {
                tracing::error!(%error, "database unavailable");
                ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "unavailable",
                    "the database is unavailable",
                )
                .retry_after(5)
            }
            error => {
                tracing::error!(%error, "store error");
                ApiError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal",
                    "internal error",
                )
            }
        }
    }
}

/// The status, stable code and `Retry-After` seconds of an ingestion error; shared by the
/// Sentry/JSON answers below and the OTLP answers (`http::otlp`).
pub fn ingest_error_parts(error: &IngestError) -> (StatusCode, &'static str, Option<u64>) {
    use IngestError as E;
    match error {
        E::MissingKey => (StatusCode::UNAUTHORIZED, "missing_key", None),
        E::InvalidKey => (StatusCode::FORBIDDEN, "invalid_key", None),
        E::UnknownProject(_) => (StatusCode::NOT_FOUND, "unknown_project", None),
        E::TooLarge(_) => (StatusCode::PAYLOAD_TOO_LARGE, "too_large", None),
        E::Malformed(_) => (StatusCode::BAD_REQUEST, "malformed", None),
        E::BodyTimeout(_) => (StatusCode::REQUEST_TIMEOUT, "body_timeout", None),
        E::UnsupportedEncoding(_) => (
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_encoding",
            None,
        ),
        E::UnsupportedMediaType(_) => (
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            None,
        ),
        E::QuotaExceeded { retry_after } => (
            StatusCode::TOO_MANY_REQUESTS,
            "quota_exceeded",
            Some(*retry_after),
        ),
        E::Overloaded => (StatusCode::SERVICE_UNAVAILABLE, "overloaded", Some(1)),
        E::Unavailable => (StatusCode::SERVICE_UNAVAILABLE, "unavailable", Some(5)),
        E::SpoolFull => (StatusCode::SERVICE_UNAVAILABLE, "spool_full", Some(30)),
        E::Rejected => (StatusCode::INTERNAL_SERVER_ERROR, "rejected", None),
    }
}

impl From<IngestError> for ApiError {
    fn from(error: IngestError) -> ApiError {
        let message = error.to_string();
        let (status, code, retry_after) = ingest_error_parts(&error);
        let mut api =
            ApiError::new(status, code, message.clone()).with_header("x-sentry-error", message);
        if let Some(seconds) = retry_after {
            api = api.retry_after(seconds);
        }
        if let IngestError::QuotaExceeded { retry_after } = error {
            // Sentry's format: retry_after:categories:scope:reason (empty categories = all).
            api = api.with_header(
                "x-sentry-rate-limits",
                format!("{retry_after}::project:quota_exceeded"),
            );
        }
        api
    }
}
