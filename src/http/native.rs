//! `POST /api/v1/events`: Seismo's own JSON, for curl and scripts (see `ingest::native`).

use axum::extract::State;
use axum::http::{header, HeaderMap};
use axum::routing::post;
use axum::{Json, Router};
use serde_json::{json, Value};

use super::error::ApiError;
use super::extract::{header_text, ingestion_key, IngestBody};
use super::AppState;
use crate::ingest::native::{self, NativeRequest};

pub fn router() -> Router<AppState> {
    Router::new().route("/api/v1/events", post(events))
}

async fn events(
    State(state): State<AppState>,
    headers: HeaderMap,
    IngestBody(body): IngestBody,
) -> Result<Json<Value>, ApiError> {
    let request = NativeRequest {
        key: ingestion_key(&headers),
        content_encoding: header_text(&headers, header::CONTENT_ENCODING),
        body,
    };
    let started = std::time::Instant::now();
    let ids = native::events(&state.ingest, request).await?;
    state
        .metrics
        .ingest_request_duration
        .observe(started.elapsed().as_secs_f64());
    let ids: Vec<String> = ids.iter().map(|id| id.simple().to_string()).collect();
    Ok(Json(json!({"id": ids.first(), "ids": ids})))
}
