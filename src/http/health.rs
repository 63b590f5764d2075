//! `GET /healthz` (the process answers), `GET /readyz` (events are accepted: the database
//! answers, or the spool takes them while it does not), `GET /metrics` (Prometheus text).

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::json;

use super::AppState;
use crate::store;

/// Health, and `/metrics` unless it has a listener of its own (`metrics_here` false).
pub fn router(metrics_here: bool) -> Router<AppState> {
    let router = Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz));
    match metrics_here {
        true => router.route("/metrics", get(metrics)),
        false => router,
    }
}

/// The routes of the metrics listener.
pub fn metrics_router() -> Router<AppState> {
    Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(healthz))
}

async fn healthz() -> Json<serde_json::Value> {
    Json(json!({"status": "ok"}))
}

async fn readyz(State(state): State<AppState>) -> impl IntoResponse {
    let database = store::ping(&state.pool).await;
    let spool = state.spool.as_ref().map(|spool| spool.status());
    let spool_takes_events = spool.is_some_and(|s| s.bytes < state.config.spool_max_bytes);
    let (status, word) = match (database, spool_takes_events) {
        (true, _) => (StatusCode::OK, "ready"),
        (false, true) => (StatusCode::OK, "spooling"),
        (false, false) => (StatusCode::SERVICE_UNAVAILABLE, "unavailable"),
    };
    let body = json!({
        "status": word,
        "database": if database { "ok" } else { "unreachable" },
        "writer_queue_depth": state.metrics.writer_queue_depth.get(),
        "spool": spool,
    });
    (status, Json(body))
}

async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        state.metrics.render(),
    )
}
