//! `GET /api/v1/stats?project=<id>&since=<RFC 3339>`: the three probabilities of DESIGN.md
//! §5 (detection, recovery, handling) with the counts behind each, for one project or all
//! of them, since a time or over all time. How each is counted, and why, is in
//! `store::stats`. A probability with nothing to compute it from is `null`, never 0.
//!
//! Each request also refreshes the `seismo_*_probability` gauges (all projects, all time),
//! so `/metrics` shows them once anyone has looked.

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::Json;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::auth::ApiToken;
use super::input::project_filter;
use crate::http::error::{ApiError, ErrorBody};
use crate::http::AppState;
use crate::model::ProjectId;
use crate::store::stats;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(show))
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct StatsQuery {
    /// Only this project; absent: all projects.
    #[param(value_type = Option<i64>)]
    project: Option<ProjectId>,
    /// An RFC 3339 time (`2026-01-02T03:04:05Z`; send an offset's `+` as `%2B`); absent: all
    /// time.
    since: Option<String>,
}

#[derive(Serialize, ToSchema)]
struct Stats {
    /// The project asked for; `null`: all projects.
    project_id: Option<i64>,
    since: Option<DateTime<Utc>>,
    detection: DetectionStats,
    recovery: RecoveryStats,
    handling: HandlingStats,
}

/// P_detect = TP / (TP + FP + missed), over incidents people labelled.
#[derive(Serialize, ToSchema)]
struct DetectionStats {
    /// `null` when nothing is labelled.
    probability: Option<f64>,
    true_positives: i64,
    false_positives: i64,
    missed: i64,
    labelled: i64,
}

/// P_recover = succeeded / attempts, over recovery actions whose verification ended.
#[derive(Serialize, ToSchema)]
struct RecoveryStats {
    /// `null` without attempts.
    probability: Option<f64>,
    succeeded: i64,
    false_recoveries: i64,
    not_recovered: i64,
    attempts: i64,
}

/// P_handle = handled / events, over error events.
#[derive(Serialize, ToSchema)]
struct HandlingStats {
    /// `null` without events.
    probability: Option<f64>,
    handled: i64,
    unhandled: i64,
    events: i64,
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

/// The probabilities of detection, recovery and handling.
///
/// As in DESIGN.md §5, each with the counts behind it; a probability with nothing to
/// compute it from is `null`, never 0.
#[utoipa::path(
    get,
    path = "/api/v1/stats",
    operation_id = "get_stats",
    tag = "stats",
    params(StatsQuery),
    responses(
        (status = 200, description = "The three probabilities", body = Stats),
        (status = 400, description = "A bad project or since", body = ErrorBody),
        (status = 404, description = "No such project", body = ErrorBody),
    )
)]
async fn show(
    _token: ApiToken,
    State(state): State<AppState>,
    query: Result<Query<StatsQuery>, QueryRejection>,
) -> Result<Json<Stats>, ApiError> {
    let Query(query) = query.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let since = query
        .since
        .as_deref()
        .filter(|s| !s.is_empty())
        .map(parse_since)
        .transpose()?;
    project_filter(&state.pool, query.project).await?;
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
    Ok(Json(Stats {
        project_id: query.project.map(ProjectId::get),
        since,
        detection: DetectionStats {
            probability: detection.probability(),
            true_positives: detection.true_positives,
            false_positives: detection.false_positives,
            missed: detection.missed,
            labelled: detection.labelled(),
        },
        recovery: RecoveryStats {
            probability: recovery.probability(),
            succeeded: recovery.succeeded,
            false_recoveries: recovery.false_recoveries,
            not_recovered: recovery.not_recovered,
            attempts: recovery.attempts(),
        },
        handling: HandlingStats {
            probability: handling.probability(),
            handled: handling.handled,
            unhandled: handling.unhandled,
            events: handling.events(),
        },
    }))
}
