//! `GET /api/v1/stats?project=<id>&since=<RFC 3339>`: the three probabilities of DESIGN.md
//! §5 (detection, recovery, handling) with the counts behind each, for one project or all
//! of them, since a time or over all time. How each is counted, and why, is in
//! `store::stats`. A probability with nothing to compute it from is `null`, never 0.
//!
//! Each request also refreshes the `seismo_*_probability` gauges (all projects, all time),
//! so `/metrics` shows them once anyone has looked.

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::routing::get;
use axum::{Json, Router};
use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::{json, Value};

use super::auth::ApiToken;
use crate::http::error::ApiError;
use crate::http::AppState;
use crate::store::{projects, stats};

pub fn router() -> Router<AppState> {
    Router::new().route("/api/v1/stats", get(show))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct StatsQuery {
    project: Option<i64>,
    since: Option<String>,
}

/// An RFC 3339 time (`2026-01-02T03:04:05Z`; an offset's `+` must be sent as `%2B`).
fn parse_since(text: &str) -> Result<DateTime<Utc>, ApiError> {
    DateTime::parse_from_rfc3339(text)
        .map(|at| at.with_timezone(&Utc))
        .map_err(|e| {
            ApiError::bad_request(format!(
                "since {text:?} is not an RFC 3339 time such as 2026-01-02T03:04:05Z ({e})"
            ))
        })
}

async fn show(
    _token: ApiToken,
    State(state): State<AppState>,
    query: Result<Query<StatsQuery>, QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let Query(query) = query.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let since = query
        .since
        .as_deref()
        .filter(|s| !s.is_empty())
        .map(parse_since)
        .transpose()?;
    if let Some(project_id) = query.project {
        if !projects::exists(&state.pool, project_id).await? {
            return Err(ApiError::not_found(format!("project {project_id}")));
        }
    }
    let counts = stats::stats(&state.pool, query.project, since).await?;
    // The gauges are a by-product: failing to refresh them must not fail the answer.
    if let Err(error) = stats::refresh_gauges(&state.pool, &state.metrics).await {
        tracing::warn!(%error, "could not refresh the probability gauges");
    }
    let stats::Stats {
        detection,
        recovery,
        handling,
    } = counts;
    Ok(Json(json!({
        "project_id": query.project,
        "since": since,
        "detection": {
            "probability": detection.probability(),
            "true_positives": detection.true_positives,
            "false_positives": detection.false_positives,
            "missed": detection.missed,
            "labelled": detection.labelled(),
        },
        "recovery": {
            "probability": recovery.probability(),
            "succeeded": recovery.succeeded,
            "false_recoveries": recovery.false_recoveries,
            "not_recovered": recovery.not_recovered,
            "attempts": recovery.attempts(),
        },
        "handling": {
            "probability": handling.probability(),
            "handled": handling.handled,
            "unhandled": handling.unhandled,
            "events": handling.events(),
        },
    })))
}
