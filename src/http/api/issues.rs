//! `GET /api/v1/projects/{id}/issues` (filters: status, level, text query; and release,
//! environment, service, time range, which an issue matches through one of its events),
//! `GET /api/v1/issues/{id}`, `PATCH /api/v1/issues/{id}` (status; ignoring may carry
//! `ignore_until`: back after N events in M minutes), `DELETE /api/v1/issues/{id}` (with its
//! events; admin scope), `POST /api/v1/issues/{id}/merge` (`{"issues": [ids]}` into this one).

use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::Json;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::auth::ApiToken;
use super::input::{body_of, check_text, path_of, removed};
use super::openapi::{described, one_of};
use super::pagination::{self, Page};
use crate::http::error::{ApiError, ErrorBody};
use crate::http::AppState;
use crate::model::{IssueId, ProjectId};
use crate::store::issues::{
    self, Cursor, EventFilter, Issue, IssueFilter, MergeOutcome, Sort, Status,
};
use crate::store::projects;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list))
        .routes(routes!(show, update, remove))
        .routes(routes!(merge))
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct ListQuery {
    /// Only issues with this status; absent: all.
    #[param(schema_with = status_filter_schema)]
    status: Option<String>,
    /// Only issues at this level: fatal, error, warning, info or debug.
    level: Option<String>,
    /// Words the title or culprit contains.
    query: Option<String>,
    /// Only issues with an event from this release.
    release: Option<String>,
    /// Only issues with an event from this environment.
    environment: Option<String>,
    /// Only issues with an event from this service.
    service: Option<String>,
    /// Only issues with an event received at or after this time (RFC 3339).
    since: Option<String>,
    /// Only issues with an event received before this time (RFC 3339).
    until: Option<String>,
    #[param(schema_with = sort_schema)]
    sort: Option<String>,
    /// The `next_cursor` of the previous page (with the same sort).
    cursor: Option<String>,
    /// Issues per page, 1 to 100 (default 25).
    limit: Option<i64>,
}

const LEVELS: [&str; 5] = ["fatal", "error", "warning", "info", "debug"];

fn status_schema() -> utoipa::openapi::Object {
    one_of(&Status::names())
}

fn status_filter_schema() -> utoipa::openapi::Object {
    described(
        status_schema(),
        "Only issues with this status; absent: all.",
    )
}

/// An issue: the events of one fingerprint in a project (DESIGN.md §3.5).
#[derive(Serialize, ToSchema)]
#[schema(as = Issue)]
struct IssueView {
    id: i64,
    project_id: i64,
    fingerprint: String,
    grouping_strategy: String,
    title: String,
    culprit: String,
    level: String,
    #[schema(schema_with = status_schema)]
    status: String,
    count: i64,
    first_seen: DateTime<Utc>,
    last_seen: DateTime<Utc>,
    first_release: Option<String>,
    last_release: Option<String>,
    handled: bool,
    resolved_at: Option<DateTime<Utc>>,
    resolved_in_release: Option<String>,
    regressed_at: Option<DateTime<Utc>>,
}

impl From<Issue> for IssueView {
    fn from(issue: Issue) -> IssueView {
        IssueView {
            id: issue.id.get(),
            project_id: issue.project_id.get(),
            fingerprint: issue.fingerprint.0,
            grouping_strategy: issue.grouping_strategy,
            title: issue.title,
            culprit: issue.culprit,
            level: issue.level,
            status: issue.status,
            count: issue.count,
            first_seen: issue.first_seen,
            last_seen: issue.last_seen,
            first_release: issue.first_release,
            last_release: issue.last_release,
            handled: issue.handled,
            resolved_at: issue.resolved_at,
            resolved_in_release: issue.resolved_in_release,
            regressed_at: issue.regressed_at,
        }
    }
}

fn sort_schema() -> utoipa::openapi::Object {
    let sorts = one_of(&["last_seen", "first_seen", "count"]);
    described(sorts, "Newest or largest first; default `last_seen`.")
}

/// A project's issues. `release`, `environment`, `service`, `since` and `until` match
/// through the issue's stored events: an issue is listed when one of its events matches
/// them all.
#[utoipa::path(
    get,
    path = "/api/v1/projects/{id}/issues",
    operation_id = "list_issues",
    tag = "issues",
    params(("id" = i64, Path, description = "Project id"), ListQuery),
    responses(
        (status = 200, description = "A page of issues", body = Page<IssueView>),
        (status = 400, description = "A bad id, filter, sort or cursor", body = ErrorBody),
        (status = 404, description = "No such project", body = ErrorBody),
    )
)]
async fn list(
    _token: ApiToken,
    State(state): State<AppState>,
    path: Result<Path<ProjectId>, PathRejection>,
    query: Result<Query<ListQuery>, QueryRejection>,
) -> Result<Json<Page<IssueView>>, ApiError> {
    let project_id = path_of(path)?;
    let Query(query) = query.map_err(|e| ApiError::bad_request(e.body_text()))?;
    if !projects::exists(&state.pool, project_id).await? {
        return Err(ApiError::not_found(format!("project {project_id}")));
    }
    let filter = filter(query)?;
    let items = issues::list(&state.pool, project_id, &filter).await?;
    let items: Vec<IssueView> = items.into_iter().map(IssueView::from).collect();
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
    let text =
        |name: &str, value: Option<String>| parse(value).map(|v| text_param(name, v)).transpose();
    let level = text("level", query.level)?
        .map(|level| match LEVELS.contains(&level.as_str()) {
            true => Ok(level),
            false => Err(ApiError::bad_request(format!(
                "unknown level {level:?} (fatal, error, warning, info or debug)"
            ))),
        })
        .transpose()?;
    let events = EventFilter {
        release: text("release", query.release)?,
        environment: text("environment", query.environment)?,
        service: text("service", query.service)?,
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
        query: text("query", query.query)?,
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

/// PostgreSQL text cannot hold NUL: refused here rather than failing in the database.
fn text_param(name: &str, value: String) -> Result<String, ApiError> {
    if value.contains('\0') {
        Err(ApiError::bad_request(format!(
            "{name} must not contain NUL"
        )))
    } else {
        Ok(value)
    }
}

fn cursor_text(sort: Sort, issue: &IssueView) -> String {
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
    let id = IssueId(id.parse().map_err(|_| invalid())?);
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
        (status = 200, description = "The issue", body = IssueView),
        (status = 400, description = "A bad id", body = ErrorBody),
        (status = 404, description = "No such issue", body = ErrorBody),
    )
)]
async fn show(
    _token: ApiToken,
    State(state): State<AppState>,
    path: Result<Path<IssueId>, PathRejection>,
) -> Result<Json<IssueView>, ApiError> {
    let id = path_of(path)?;
    let issue = issues::get(&state.pool, id).await?;
    issue
        .map(|issue| Json(issue.into()))
        .ok_or_else(|| ApiError::not_found(format!("issue {id}")))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct IssueUpdate {
    #[schema(schema_with = status_schema)]
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
    check_text("in_release", release, 1, MAX_RELEASE_CHARS)
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
        (status = 200, description = "The changed issue", body = IssueView),
        (status = 400, description = "A bad id or body, or fields that do not go with the status", body = ErrorBody),
        (status = 404, description = "No such issue", body = ErrorBody),
        (status = 422, description = "An `in_release` or `ignore_until` out of range", body = ErrorBody),
    )
)]
async fn update(
    _token: ApiToken,
    State(state): State<AppState>,
    path: Result<Path<IssueId>, PathRejection>,
    body: Result<Json<IssueUpdate>, JsonRejection>,
) -> Result<Json<IssueView>, ApiError> {
    let id = path_of(path)?;
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
        .map(|issue| Json(issue.into()))
        .ok_or_else(|| ApiError::not_found(format!("issue {id}")))
}

/// Delete an issue with its events (admin scope). Its fingerprints start a new issue if
/// seen again; the project's own counts keep the events.
#[utoipa::path(
    delete,
    path = "/api/v1/issues/{id}",
    operation_id = "delete_issue",
    tag = "issues",
    params(("id" = i64, Path, description = "Issue id")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 400, description = "A bad id", body = ErrorBody),
        (status = 404, description = "No such issue", body = ErrorBody),
    )
)]
async fn remove(
    _token: ApiToken,
    State(state): State<AppState>,
    path: Result<Path<IssueId>, PathRejection>,
) -> Result<StatusCode, ApiError> {
    let id = path_of(path)?;
    removed(issues::delete(&state.pool, id).await?, || {
        ApiError::not_found(format!("issue {id}"))
    })
}

/// One merge takes at most this many issues: a triage action, not a bulk job.
const MAX_MERGED: usize = 100;

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct MergeRequest {
    /// The issues to merge into the one in the path.
    #[schema(value_type = Vec<i64>)]
    issues: Vec<IssueId>,
}

/// Merge issues into this one: their events and counts move here, their fingerprints'
/// future events join it, and they are deleted. This issue keeps its name and status.
#[utoipa::path(
    post,
    path = "/api/v1/issues/{id}/merge",
    operation_id = "merge_issues",
    tag = "issues",
    params(("id" = i64, Path, description = "The issue the others merge into")),
    request_body = MergeRequest,
    responses(
        (status = 200, description = "The merged issue", body = IssueView),
        (status = 400, description = "A bad id or body", body = ErrorBody),
        (status = 404, description = "No such issue", body = ErrorBody),
        (status = 422, description = "Nothing to merge, too many, the issue itself, an issue that does not exist or belongs to another project", body = ErrorBody),
    )
)]
async fn merge(
    _token: ApiToken,
    State(state): State<AppState>,
    path: Result<Path<IssueId>, PathRejection>,
    body: Result<Json<MergeRequest>, JsonRejection>,
) -> Result<Json<IssueView>, ApiError> {
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
        MergeOutcome::Merged(issue) => Ok(Json(IssueView::from(*issue))),
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
