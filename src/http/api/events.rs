//! `GET /api/v1/issues/{id}/events` and `GET /api/v1/events/{event_id}`: events in the
//! shape of DESIGN.md §3.5, with the original payload.

use std::collections::BTreeMap;

use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::Json;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use super::auth::ApiToken;
use super::pagination::{self, Page};
use crate::http::error::{ApiError, ErrorBody};
use crate::http::AppState;
use crate::ingest::sentry::event::exceptions_of;
use crate::model::{Exception, Frame, IssueId};
use crate::store::events::{self, EventRecord};
use crate::store::issues;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list))
        .routes(routes!(show))
}

/// An event (DESIGN.md §3.5) with the payload as it arrived.
#[derive(Serialize, ToSchema)]
#[schema(as = Event)]
struct EventView {
    /// 32 lower-case hex digits.
    #[schema(pattern = "^[0-9a-f]{32}$")]
    event_id: String,
    issue_id: i64,
    project_id: i64,
    received_at: DateTime<Utc>,
    timestamp: DateTime<Utc>,
    level: String,
    source: String,
    platform: Option<String>,
    release: Option<String>,
    environment: Option<String>,
    service: Option<String>,
    title: String,
    message: Option<String>,
    exception: Vec<ExceptionView>,
    tags: BTreeMap<String, String>,
    trace_id: Option<String>,
    handled: bool,
    /// The event as the SDK or exporter sent it (after scrubbing).
    #[schema(value_type = Object)]
    payload: serde_json::Value,
}

/// One exception of the chain, innermost cause first (DESIGN.md §3.5).
#[derive(Serialize, ToSchema)]
#[schema(as = Exception)]
struct ExceptionView {
    #[serde(rename = "type")]
    ty: String,
    value: Option<String>,
    module: Option<String>,
    /// Caller first, the crashing frame last.
    frames: Vec<FrameView>,
}

/// One stack frame, as much as the source told.
#[derive(Serialize, ToSchema)]
#[schema(as = Frame)]
struct FrameView {
    function: Option<String>,
    module: Option<String>,
    filename: Option<String>,
    lineno: Option<u32>,
    in_app: Option<bool>,
}

impl From<Exception> for ExceptionView {
    fn from(exception: Exception) -> ExceptionView {
        ExceptionView {
            ty: exception.ty,
            value: exception.value,
            module: exception.module,
            frames: exception.frames.into_iter().map(FrameView::from).collect(),
        }
    }
}

impl From<Frame> for FrameView {
    fn from(frame: Frame) -> FrameView {
        FrameView {
            function: frame.function,
            module: frame.module,
            filename: frame.filename,
            lineno: frame.lineno,
            in_app: frame.in_app,
        }
    }
}

impl From<EventRecord> for EventView {
    fn from(record: EventRecord) -> EventView {
        EventView {
            event_id: record.event_id.simple().to_string(),
            issue_id: record.issue_id.get(),
            project_id: record.project_id.get(),
            received_at: record.received_at,
            timestamp: record.timestamp,
            level: record.level,
            source: record.source,
            platform: record.platform,
            release: record.release,
            environment: record.environment,
            service: record.service,
            title: record.title,
            message: record.document.message,
            exception: record
                .document
                .exception
                .unwrap_or_else(|| exceptions_of(&record.document.payload))
                .into_iter()
                .map(ExceptionView::from)
                .collect(),
            tags: record.document.tags,
            trace_id: record.trace_id,
            handled: record.handled,
            payload: record.document.payload,
        }
    }
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct ListQuery {
    /// The `next_cursor` of the previous page.
    cursor: Option<String>,
    /// Events per page, 1 to 100 (default 25).
    limit: Option<i64>,
}

/// An issue's events, newest first.
#[utoipa::path(
    get,
    path = "/api/v1/issues/{id}/events",
    operation_id = "list_issue_events",
    tag = "events",
    params(("id" = i64, Path, description = "Issue id"), ListQuery),
    responses(
        (status = 200, description = "A page of events", body = Page<EventView>),
        (status = 400, description = "A bad id, limit or cursor", body = ErrorBody),
        (status = 404, description = "No such issue", body = ErrorBody),
    )
)]
async fn list(
    _token: ApiToken,
    State(state): State<AppState>,
    path: Result<Path<IssueId>, PathRejection>,
    query: Result<Query<ListQuery>, QueryRejection>,
) -> Result<Json<Page<EventView>>, ApiError> {
    let Path(issue_id) = path.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let Query(query) = query.map_err(|e| ApiError::bad_request(e.body_text()))?;
    if issues::get(&state.pool, issue_id).await?.is_none() {
        return Err(ApiError::not_found(format!("issue {issue_id}")));
    }
    let limit = pagination::limit(query.limit)?;
    let before = query.cursor.as_deref().map(parse_cursor).transpose()?;
    let records = events::list_for_issue(&state.pool, issue_id, before, limit).await?;
    let views: Vec<EventView> = records.into_iter().map(EventView::from).collect();
    Ok(Json(pagination::page(views, limit, |e| {
        format!("{}|{}", e.received_at.to_rfc3339(), e.event_id)
    })))
}

fn parse_cursor(cursor: &str) -> Result<(DateTime<Utc>, Uuid), ApiError> {
    let text = pagination::decode(cursor)?;
    let invalid = || ApiError::bad_request("cursor is not valid");
    let (at, id) = text.split_once('|').ok_or_else(invalid)?;
    let at = DateTime::parse_from_rfc3339(at).map_err(|_| invalid())?;
    let id = Uuid::try_parse(id).map_err(|_| invalid())?;
    Ok((at.with_timezone(&Utc), id))
}

/// One event.
#[utoipa::path(
    get,
    path = "/api/v1/events/{event_id}",
    operation_id = "get_event",
    tag = "events",
    params(("event_id" = String, Path, description = "The event id: 32 hex digits (dashes allowed)")),
    responses(
        (status = 200, description = "The event", body = EventView),
        (status = 400, description = "Not an event id", body = ErrorBody),
        (status = 404, description = "No such event", body = ErrorBody),
    )
)]
async fn show(
    _token: ApiToken,
    State(state): State<AppState>,
    path: Result<Path<String>, PathRejection>,
) -> Result<Json<EventView>, ApiError> {
    let Path(event_id) = path.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let id = Uuid::try_parse(&event_id)
        .map_err(|_| ApiError::bad_request(format!("{event_id:?} is not an event id")))?;
    let record = events::get(&state.pool, id).await?;
    record
        .map(|r| Json(EventView::from(r)))
        .ok_or_else(|| ApiError::not_found(format!("event {event_id}")))
}
