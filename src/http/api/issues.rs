//! `GET /api/v1/projects/{id}/issues` (filters: status, level, text query; and release,
//! environment, service, time range, which an issue matches through one of its events),
//! `GET /api/v1/issues/{id}`, `PATCH /api/v1/issues/{id}` (status; ignoring may carry
//! `ignore_until`: back after N events in M minutes), `DELETE /api/v1/issues/{id}` (with its
//! events; admin scope), `POST /api/v1/issues/{id}/merge` (`{"issues": [ids]}` into this one).

use axum::extract::rejection::{JsonRejection, PathRejection};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use chrono::{DateTime, Utc};
use serde::Deserialize;

use super::auth::ApiToken;
use super::input::{body_of, path_of};
use super::pagination::{self, Page};
use crate::http::error::ApiError;
use crate::http::AppState;
use crate::store::issues::{
    self, Cursor, EventFilter, Issue, IssueFilter, MergeOutcome, Sort, Status,
};
use crate::store::projects;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/v1/projects/{id}/issues", get(list))
        .route(
            "/api/v1/issues/{id}",
            get(show).patch(update).delete(remove),
        )
        .route("/api/v1/issues/{id}/merge", post(merge))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ListQuery {
    status: Option<String>,
    level: Option<String>,
    query: Option<String>,
    release: Option<String>,
    environment: Option<String>,
    service: Option<String>,
    since: Option<String>,
    until: Option<String>,
    sort: Option<String>,
    cursor: Option<String>,
    limit: Option<i64>,
}

const LEVELS: [&str; 5] = ["fatal", "error", "warning", "info", "debug"];

async fn list(
    _token: ApiToken,
    State(state): State<AppState>,
    Path(project_id): Path<i64>,
    Query(query): Query<ListQuery>,
) -> Result<Json<Page<Issue>>, ApiError> {
    if !projects::exists(&state.pool, project_id).await? {
        return Err(ApiError::not_found(format!("project {project_id}")));
    }
    let filter = filter(query)?;
    let items = issues::list(&state.pool, project_id, &filter).await?;
    let sort = filter.sort;
    Ok(Json(pagination::page(items, filter.limit, |issue| {
        cursor_text(sort, issue)
    })))
}

fn filter(query: ListQuery) -> Result<IssueFilter, ApiError> {
    let parse = |text: Option<String>| text.filter(|t| !t.is_empty());
    let status = parse(query.status)
        .map(|s| s.parse::<Status>())
        .transpose()
        .map_err(ApiError::bad_request)?;
    let sort = parse(query.sort)
        .map(|s| s.parse::<Sort>())
        .transpose()
        .map_err(ApiError::bad_request)?
        .unwrap_or_default();
    let after = parse(query.cursor)
        .map(|c| parse_cursor(sort, &c))
        .transpose()?;
    let level = parse(query.level)
        .map(|level| match LEVELS.contains(&level.as_str()) {
            true => Ok(level),
            false => Err(ApiError::bad_request(format!(
                "unknown level {level:?} (fatal, error, warning, info or debug)"
            ))),
        })
        .transpose()?;
    let events = EventFilter {
        release: parse(query.release),
        environment: parse(query.environment),
        service: parse(query.service),
        since: parse(query.since).map(|t| time("since", &t)).transpose()?,
        until: parse(query.until).map(|t| time("until", &t)).transpose()?,
    };
    if let (Some(since), Some(until)) = (events.since, events.until) {
        if since >= until {
            return Err(ApiError::bad_request("since must be before until"));
        }
    }
    Ok(IssueFilter {
        status,
        level,
        query: parse(query.query),
        events,
        sort,
        after,
        limit: pagination::limit(query.limit)?,
    })
}

fn time(name: &str, text: &str) -> Result<DateTime<Utc>, ApiError> {
    DateTime::parse_from_rfc3339(text)
        .map(|at| at.with_timezone(&Utc))
        .map_err(|_| ApiError::bad_request(format!("{name} must be an RFC 3339 time")))
}

fn cursor_text(sort: Sort, issue: &Issue) -> String {
    match sort {
        Sort::LastSeen => format!("{}|{}", issue.last_seen.to_rfc3339(), issue.id),
        Sort::FirstSeen => format!("{}|{}", issue.first_seen.to_rfc3339(), issue.id),
        Sort::Count => format!("{}|{}", issue.count, issue.id),
    }
}

fn parse_cursor(sort: Sort, cursor: &str) -> Result<Cursor, ApiError> {
    let text = pagination::decode(cursor)?;
    let invalid = || ApiError::bad_request("cursor does not belong to this sort");
    let (key, id) = text.split_once('|').ok_or_else(invalid)?;
    let id: i64 = id.parse().map_err(|_| invalid())?;
    match sort {
        Sort::Count => Ok(Cursor::Count(key.parse().map_err(|_| invalid())?, id)),
        Sort::LastSeen | Sort::FirstSeen => {
            let at = DateTime::parse_from_rfc3339(key).map_err(|_| invalid())?;
            Ok(Cursor::Time(at.with_timezone(&Utc), id))
        }
    }
}

async fn show(
    _token: ApiToken,
    State(state): State<AppState>,
    Path(id): Path<i64>,
) -> Result<Json<Issue>, ApiError> {
    let issue = issues::get(&state.pool, id).await?;
    issue
        .map(Json)
        .ok_or_else(|| ApiError::not_found(format!("issue {id}")))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct IssueUpdate {
    status: Status,
    /// With `resolved`: events from releases older than this one do not reopen the issue.
    in_release: Option<String>,
    /// With `ignored`: the issue comes back once it sees `count` events in `window_minutes`.
    ignore_until: Option<IgnoreUntil>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct IgnoreUntil {
    count: i64,
    window_minutes: i32,
}

/// The escalation condition as the store takes it; the detector watches the window per
/// minute, up to a day.
fn mute_condition(until: &IgnoreUntil) -> Result<(i64, i32), ApiError> {
    if until.count < 1 {
        return Err(ApiError::unprocessable(
            "ignore_until.count must be at least 1",
        ));
    }
    if !(1..=1440).contains(&until.window_minutes) {
        return Err(ApiError::unprocessable(
            "ignore_until.window_minutes must be between 1 and 1440",
        ));
    }
    Ok((until.count, until.window_minutes))
}

async fn update(
    _token: ApiToken,
    State(state): State<AppState>,
    Path(id): Path<i64>,
    body: Result<Json<IssueUpdate>, axum::extract::rejection::JsonRejection>,
) -> Result<Json<Issue>, ApiError> {
    let Json(update) = body.map_err(|e| ApiError::bad_request(e.body_text()))?;
    if update.in_release.is_some() && update.status != Status::Resolved {
        return Err(ApiError::bad_request(
            "in_release goes with status resolved only",
        ));
    }
    if update.ignore_until.is_some() && update.status != Status::Ignored {
        return Err(ApiError::bad_request(
            "ignore_until goes with status ignored only",
        ));
    }
    let issue = match &update.ignore_until {
        Some(until) => issues::ignore(&state.pool, id, Some(mute_condition(until)?)).await?,
        None => {
            issues::set_status(&state.pool, id, update.status, update.in_release.as_deref()).await?
        }
    };
    issue
        .map(Json)
        .ok_or_else(|| ApiError::not_found(format!("issue {id}")))
}

async fn remove(
    _token: ApiToken,
    State(state): State<AppState>,
    path: Result<Path<i64>, PathRejection>,
) -> Result<StatusCode, ApiError> {
    let id = path_of(path)?;
    match issues::delete(&state.pool, id).await? {
        true => Ok(StatusCode::NO_CONTENT),
        false => Err(ApiError::not_found(format!("issue {id}"))),
    }
}

/// One merge takes at most this many issues: a triage action, not a bulk job.
const MAX_MERGED: usize = 100;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct MergeRequest {
    /// The issues to merge into the one in the path.
    issues: Vec<i64>,
}

async fn merge(
    _token: ApiToken,
    State(state): State<AppState>,
    path: Result<Path<i64>, PathRejection>,
    body: Result<Json<MergeRequest>, JsonRejection>,
) -> Result<Json<Issue>, ApiError> {
    let target = path_of(path)?;
    let mut sources = body_of(body)?.issues;
    sources.sort_unstable();
    sources.dedup();
    if sources.is_empty() || sources.len() > MAX_MERGED {
        return Err(ApiError::unprocessable(format!(
            "issues must list 1 to {MAX_MERGED} issues to merge"
        )));
    }
    if sources.contains(&target) {
        return Err(ApiError::unprocessable(format!(
            "issue {target} cannot be merged into itself"
        )));
    }
    match issues::merge(&state.pool, target, &sources).await? {
        MergeOutcome::Merged(issue) => Ok(Json(*issue)),
        MergeOutcome::NoSuchIssue(id) if id == target => {
            Err(ApiError::not_found(format!("issue {id}")))
        }
        MergeOutcome::NoSuchIssue(id) => Err(ApiError::unprocessable(format!(
            "issue {id} does not exist"
        ))),
        MergeOutcome::OtherProject(id) => Err(ApiError::unprocessable(format!(
            "issue {id} belongs to another project than issue {target}"
        ))),
    }
}
