//! What several ingestion endpoints take from a request: the body (as an ingestion error
//! when it is too large), a header as text, and Seismo's own ingestion key.

use axum::body::Bytes;
use axum::extract::FromRequest;
use axum::http::{header, HeaderMap, StatusCode};

use super::error::ApiError;
use crate::ingest::{self, IngestError, MAX_COMPRESSED_BYTES};

/// The request body, read whole up to the compressed-size limit (`DefaultBodyLimit`); a body
/// over it, or one that breaks off, answers like any other ingestion error.
pub struct IngestBody(pub Bytes);

impl<S: Send + Sync> FromRequest<S> for IngestBody {
    type Rejection = ApiError;

    async fn from_request(
        request: axum::extract::Request,
        state: &S,
    ) -> Result<IngestBody, ApiError> {
        Bytes::from_request(request, state)
            .await
            .map(IngestBody)
            .map_err(|rejection| {
                let error = match rejection.status() {
                    _ if super::body_timeout::is_timeout(&rejection) => {
                        IngestError::BodyTimeout(rejection.body_text())
                    }
                    StatusCode::PAYLOAD_TOO_LARGE => IngestError::TooLarge(format!(
                        "request body exceeds {MAX_COMPRESSED_BYTES} bytes"
                    )),
                    _ => IngestError::Malformed(rejection.body_text()),
                };
                ApiError::from(error)
            })
    }
}

pub fn header_text(headers: &HeaderMap, name: impl header::AsHeaderName) -> Option<String> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

/// `x-seismo-key: <key>` or `Authorization: Bearer <key>`.
pub fn ingestion_key(headers: &HeaderMap) -> Option<String> {
    ingest::seismo_key(
        header_text(headers, "x-seismo-key").as_deref(),
        header_text(headers, header::AUTHORIZATION).as_deref(),
    )
}
