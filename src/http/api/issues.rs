//! `GET /api/v1/projects/{id}/issues`, `GET /api/v1/issues/{id}`, `PATCH /api/v1/issues/{id}`
//! (status; ignoring may carry `ignore_until`: back after N events in M minutes).

use axum::extract::{Path, Query, State};
use axum::routing::get;
use axum::{Json, Router};
use chrono::{DateTime, Utc};
use serde::Deserialize;

use super::auth::ApiToken;
use super::pagination::{self, Page};
use crate::http::error::ApiError;
use crate::http::AppState;
use crate::store::issues::{self, Cursor, Issue, IssueFilter, Sort, Status};
use crate::store::projects;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/v1/projects/{id}/issues", get(list))
        .route("/api/v1/issues/{id}", get(show).patch(update))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ListQuery {
    status: Option<String>,
    query: Option<String>,
    sort: Option<String>,
    cursor: Option<String>,
    limit: Option<i64>,
}

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
    Ok(IssueFilter {
        status,
        query: parse(query.query),
        sort,
        after,
        limit: pagination::limit(query.limit)?,
    })
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
