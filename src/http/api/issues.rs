//! `GET /api/v1/projects/{id}/issues`, `GET /api/v1/issues/{id}`, `PATCH /api/v1/issues/{id}`.

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
    let issue =
        issues::set_status(&state.pool, id, update.status, update.in_release.as_deref()).await?;
    issue
        .map(Json)
        .ok_or_else(|| ApiError::not_found(format!("issue {id}")))
}
