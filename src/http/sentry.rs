//! Sentry ingestion endpoints. Handlers only extract the key, encoding and body, call
//! `ingest::sentry`, and turn the result into `{"id": "<32 hex>"}`.
//!
//! DSNs may carry a path prefix (`http://key@host/prefix/42`); SDKs then post to
//! `/prefix/api/42/envelope/`. [`strip_dsn_prefix`] rewrites such paths before routing.

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{header, HeaderMap, Request};
use axum::routing::post;
use axum::{Json, Router};
use serde_json::{json, Value};

use super::cors::Cors;
use super::error::ApiError;
use super::extract::{header_text, IngestBody};
use super::AppState;
use crate::ingest::sentry::{self, auth, SentryRequest};
use crate::ingest::Ack;
use crate::model::ProjectId;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/{project_id}/envelope/", post(envelope))
        .route("/api/{project_id}/store/", post(store))
        .layer(Cors)
}

async fn envelope(
    State(state): State<AppState>,
    Path(project_id): Path<String>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    IngestBody(body): IngestBody,
) -> Result<Json<Value>, ApiError> {
    let request = sentry_request(&project_id, query.as_deref(), &headers, body)?;
    let started = std::time::Instant::now();
    let ack = sentry::envelope(&state.ingest, request).await?;
    state
        .metrics
        .ingest_request_duration
        .observe(started.elapsed().as_secs_f64());
    Ok(Json(ack_body(&ack)))
}

async fn store(
    State(state): State<AppState>,
    Path(project_id): Path<String>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    IngestBody(body): IngestBody,
) -> Result<Json<Value>, ApiError> {
    let request = sentry_request(&project_id, query.as_deref(), &headers, body)?;
    let started = std::time::Instant::now();
    let ack = sentry::store(&state.ingest, request).await?;
    state
        .metrics
        .ingest_request_duration
        .observe(started.elapsed().as_secs_f64());
    Ok(Json(ack_body(&ack)))
}

fn ack_body(ack: &Ack) -> Value {
    match ack.id {
        Some(id) => json!({"id": id.simple().to_string()}),
        None => json!({}),
    }
}

fn sentry_request(
    project_id: &str,
    query: Option<&str>,
    headers: &HeaderMap,
    body: Bytes,
) -> Result<SentryRequest, ApiError> {
    let project_id = project_id
        .parse::<i64>()
        .map(ProjectId)
        .map_err(|_| ApiError::bad_request(format!("project id {project_id:?} is not a number")))?;
    Ok(SentryRequest {
        project_id,
        key: key_from_request(headers, query),
        content_encoding: header_text(headers, header::CONTENT_ENCODING),
        body,
    })
}

fn key_from_request(headers: &HeaderMap, query: Option<&str>) -> Option<String> {
    let from_header =
        |name: &str| header_text(headers, name).and_then(|v| auth::key_from_auth_header(&v));
    from_header("x-sentry-auth")
        .or_else(|| from_header("authorization"))
        .or_else(|| query.and_then(auth::key_from_query))
}

/// Rewrites `/<prefix>/api/<id>/<envelope|store>[/]` to `/api/<id>/<kind>/`.
pub fn strip_dsn_prefix<B>(mut request: Request<B>) -> Request<B> {
    let path = request.uri().path();
    let Some(start) = path.rfind("/api/") else {
        return request;
    };
    let mut parts = path[start + 5..].trim_end_matches('/').split('/');
    let (Some(id), Some(kind), None) = (parts.next(), parts.next(), parts.next()) else {
        return request;
    };
    let is_ingest = matches!(kind, "envelope" | "store")
        && !id.is_empty()
        && id.bytes().all(|b| b.is_ascii_digit());
    // `/api/` + `id/kind` + one `/`, from the start: already canonical (every SDK request
    // but a prefixed DSN's), and nothing is built.
    let canonical = start == 0 && path.len() == "/api/".len() + id.len() + 1 + kind.len() + 1;
    if !is_ingest || canonical {
        return request;
    }
    let mut target = format!("/api/{id}/{kind}/");
    if let Some(query) = request.uri().query() {
        target.push('?');
        target.push_str(query);
    }
    if let Ok(uri) = target.parse() {
        *request.uri_mut() = uri;
    }
    request
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rewritten(path: &str) -> String {
        let request = Request::builder()
            .uri(path)
            .body(())
            .expect("valid request");
        strip_dsn_prefix(request).uri().to_string()
    }

    #[test]
    fn prefixes_and_missing_slashes_are_normalized() {
        assert_eq!(rewritten("/api/1/envelope/"), "/api/1/envelope/");
        assert_eq!(rewritten("/api/1/envelope"), "/api/1/envelope/");
        assert_eq!(rewritten("/api/1/envelope//"), "/api/1/envelope/");
        assert_eq!(
            rewritten("/api/1/envelope/?sentry_key=k"),
            "/api/1/envelope/?sentry_key=k"
        );
        assert_eq!(
            rewritten("/sentry/x/api/42/store/?sentry_key=k"),
            "/api/42/store/?sentry_key=k"
        );
        assert_eq!(rewritten("/api/v1/issues/3"), "/api/v1/issues/3");
        assert_eq!(rewritten("/api/abc/envelope/"), "/api/abc/envelope/");
    }
}
