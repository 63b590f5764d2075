//! `GET /api/v1/projects/{id}/issues`, `GET /api/v1/issues/{id}`, `PATCH /api/v1/issues/{id}`
//! (status; ignoring may carry `ignore_until`: back after N events in M minutes).

use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::Json;
use chrono::{DateTime, Utc};
use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::auth::ApiToken;
use super::openapi::{described, one_of};
use super::pagination::{self, Page};
use crate::http::error::{ApiError, ErrorBody};
use crate::http::AppState;
use crate::store::issues::{self, Cursor, Issue, IssueFilter, Sort, Status};
use crate::store::projects;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list))
        .routes(routes!(show, update))
}

/// Path and query rejections answer like every other API error (axum's are plain text).
fn id_of(path: Result<Path<i64>, PathRejection>) -> Result<i64, ApiError> {
    path.map(|Path(id)| id)
        .map_err(|e| ApiError::bad_request(e.body_text()))
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct ListQuery {
    /// Only issues with this status; absent: all.
    #[param(value_type = Option<Status>)]
    status: Option<String>,
    /// Words the title or culprit contains.
    query: Option<String>,
    #[param(schema_with = sort_schema)]
    sort: Option<String>,
    /// The `next_cursor` of the previous page (with the same sort).
    cursor: Option<String>,
    /// Issues per page, 1 to 100 (default 25).
    limit: Option<i64>,
}

fn sort_schema() -> utoipa::openapi::Object {
    let sorts = one_of(&["last_seen", "first_seen", "count"]);
    described(sorts, "Newest or largest first; default `last_seen`.")
}

/// A project's issues.
#[utoipa::path(
    get,
    path = "/api/v1/projects/{id}/issues",
    operation_id = "list_issues",
    tag = "issues",
    params(("id" = i64, Path, description = "Project id"), ListQuery),
    responses(
        (status = 200, description = "A page of issues", body = Page<Issue>),
        (status = 400, description = "A bad id, filter, sort or cursor", body = ErrorBody),
        (status = 404, description = "No such project", body = ErrorBody),
    )
)]
async fn list(
    _token: ApiToken,
    State(state): State<AppState>,
    path: Result<Path<i64>, PathRejection>,
    query: Result<Query<ListQuery>, QueryRejection>,
) -> Result<Json<Page<Issue>>, ApiError> {
    let project_id = id_of(path)?;
    let Query(query) = query.map_err(|e| ApiError::bad_request(e.body_text()))?;
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
    let words = parse(query.query).map(search_words).transpose()?;
    Ok(IssueFilter {
        status,
        query: words,
        sort,
        after,
        limit: pagination::limit(query.limit)?,
    })
}

/// PostgreSQL text cannot hold NUL: refused here rather than failing in the database.
fn search_words(words: String) -> Result<String, ApiError> {
    if words.contains('\0') {
        Err(ApiError::bad_request("query must not contain NUL"))
    } else {
        Ok(words)
    }
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

/// One issue.
#[utoipa::path(
    get,
    path = "/api/v1/issues/{id}",
    operation_id = "get_issue",
    tag = "issues",
    params(("id" = i64, Path, description = "Issue id")),
    responses(
        (status = 200, description = "The issue", body = Issue),
        (status = 400, description = "A bad id", body = ErrorBody),
        (status = 404, description = "No such issue", body = ErrorBody),
    )
)]
async fn show(
    _token: ApiToken,
    State(state): State<AppState>,
    path: Result<Path<i64>, PathRejection>,
) -> Result<Json<Issue>, ApiError> {
    let id = id_of(path)?;
    let issue = issues::get(&state.pool, id).await?;
    issue
        .map(Json)
        .ok_or_else(|| ApiError::not_found(format!("issue {id}")))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct IssueUpdate {
    status: Status,
    /// With `resolved`: events from releases older than this one do not reopen the issue
    /// (1 to 250 characters).
    in_release: Option<String>,
    /// With `ignored`: the issue comes back once it sees `count` events in `window_minutes`.
    ignore_until: Option<IgnoreUntil>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct IgnoreUntil {
    /// At least 1.
    count: i64,
    /// 1 to 1440.
    window_minutes: i32,
}

/// Ingestion keeps releases this long at most (`ingest::sentry::event`); NUL is refused
/// because PostgreSQL text cannot hold it.
const MAX_RELEASE_CHARS: usize = 250;

fn check_release(release: &str) -> Result<(), ApiError> {
    let chars = release.chars().count();
    if (1..=MAX_RELEASE_CHARS).contains(&chars) && !release.contains('\0') {
        Ok(())
    } else {
        Err(ApiError::unprocessable(format!(
            "in_release must be 1 to {MAX_RELEASE_CHARS} characters, without NUL"
        )))
    }
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

/// Resolve, ignore or reopen an issue.
#[utoipa::path(
    patch,
    path = "/api/v1/issues/{id}",
    operation_id = "update_issue",
    tag = "issues",
    params(("id" = i64, Path, description = "Issue id")),
    request_body = IssueUpdate,
    responses(
        (status = 200, description = "The changed issue", body = Issue),
        (status = 400, description = "A bad id or body, or fields that do not go with the status", body = ErrorBody),
        (status = 404, description = "No such issue", body = ErrorBody),
        (status = 422, description = "An `in_release` or `ignore_until` out of range", body = ErrorBody),
    )
)]
async fn update(
    _token: ApiToken,
    State(state): State<AppState>,
    path: Result<Path<i64>, PathRejection>,
    body: Result<Json<IssueUpdate>, JsonRejection>,
) -> Result<Json<Issue>, ApiError> {
    let id = id_of(path)?;
    let Json(update) = body.map_err(|e| ApiError::bad_request(e.body_text()))?;
    if update.in_release.is_some() && update.status != Status::Resolved {
        return Err(ApiError::bad_request(
            "in_release goes with status resolved only",
        ));
    }
    if let Some(release) = &update.in_release {
        check_release(release)?;
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
