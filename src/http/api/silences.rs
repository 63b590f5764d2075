//! `GET|POST /api/v1/silences`, `GET|PATCH|DELETE /api/v1/silences/{id}`: windows in which a
//! project's matching incidents are recorded but not announced (DESIGN.md §3.2). A silence
//! matches by `kind`, `service` and `issue_id` (absent matches anything) and lasts from
//! `starts_at` (default now) to `ends_at`, or for `duration_minutes`. PATCH changes the
//! comment or the end — `ends_at` in the past expires it now; DELETE forgets it.

use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::Json;
use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::auth::ApiToken;
use super::input::{body_of, check_text, path_of, project_filter, removed};
use super::openapi::{described, one_of};
use super::pagination::{self, Page};
use crate::http::error::{ApiError, ErrorBody};
use crate::http::AppState;
use crate::model::{IssueId, Kind, ProjectId};
use crate::store::silences::{self, NewSilence, Phase, Silence, SilenceFilter};
use crate::store::{issues, projects};

/// A silence longer than a year is a disabled rule, not a silence.
const MAX_DURATION_MINUTES: i64 = 366 * 24 * 60;
const MAX_COMMENT_CHARS: usize = 4_000;
const MAX_SERVICE_CHARS: usize = 200;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list, create))
        .routes(routes!(show, update, remove))
}

/// The silence as the API shows it, with where its window stands now.
#[derive(Serialize, ToSchema)]
struct SilenceView {
    id: i64,
    project_id: i64,
    /// Matches incidents of this kind; `null` matches any.
    kind: Option<String>,
    /// Matches incidents of this service; `null` matches any.
    service: Option<String>,
    /// Matches incidents of this issue; `null` matches any.
    issue_id: Option<i64>,
    comment: String,
    starts_at: DateTime<Utc>,
    ends_at: DateTime<Utc>,
    /// The API token that made it.
    created_by: Option<i64>,
    created_at: DateTime<Utc>,
    /// `pending` (not started), `active` or `expired`, as of this answer.
    #[schema(schema_with = phase_schema)]
    state: &'static str,
}

fn phase_schema() -> utoipa::openapi::Object {
    one_of(&Phase::names())
}

fn view(silence: Silence, now: DateTime<Utc>) -> SilenceView {
    SilenceView {
        state: silence.phase(now).as_str(),
        id: silence.id,
        project_id: silence.project_id.get(),
        kind: silence.kind,
        service: silence.service,
        issue_id: silence.issue_id.map(IssueId::get),
        comment: silence.comment,
        starts_at: silence.starts_at,
        ends_at: silence.ends_at,
        created_by: silence.created_by,
        created_at: silence.created_at,
    }
}

fn phase_filter_schema() -> utoipa::openapi::Object {
    described(phase_schema(), "Only silences in this state now.")
}

fn not_found(id: i64) -> ApiError {
    ApiError::not_found(format!("silence {id}"))
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct ListQuery {
    /// Only this project's silences.
    #[param(value_type = Option<i64>)]
    project: Option<ProjectId>,
    /// Only silences in this state now.
    #[param(schema_with = phase_filter_schema)]
    state: Option<Phase>,
    /// The `next_cursor` of the previous page.
    cursor: Option<String>,
    /// Silences per page, 1 to 100 (default 25).
    limit: Option<i64>,
}

/// Silences, newest first.
#[utoipa::path(
    get,
    path = "/api/v1/silences",
    operation_id = "list_silences",
    tag = "silences",
    params(ListQuery),
    responses(
        (status = 200, description = "A page of silences", body = Page<SilenceView>),
        (status = 400, description = "A bad filter or cursor", body = ErrorBody),
        (status = 404, description = "No such project", body = ErrorBody),
    )
)]
async fn list(
    _token: ApiToken,
    State(state): State<AppState>,
    query: Result<Query<ListQuery>, QueryRejection>,
) -> Result<Json<Page<SilenceView>>, ApiError> {
    let Query(query) = query.map_err(|e| ApiError::bad_request(e.body_text()))?;
    project_filter(&state.pool, query.project).await?;
    let before_id = query
        .cursor
        .filter(|c| !c.is_empty())
        .map(|c| {
            pagination::decode(&c)?
                .parse::<i64>()
                .map_err(|_| ApiError::bad_request("cursor is not a silence cursor"))
        })
        .transpose()?;
    let now = Utc::now();
    let filter = SilenceFilter {
        project_id: query.project,
        phase: query.state,
        now,
        before_id,
        limit: pagination::limit(query.limit)?,
    };
    let found = silences::list(&state.pool, &filter).await?;
    let page = pagination::page(found, filter.limit, |silence| silence.id.to_string());
    Ok(Json(Page {
        items: page.items.into_iter().map(|s| view(s, now)).collect(),
        next_cursor: page.next_cursor,
    }))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct NewSilenceBody {
    #[schema(value_type = i64)]
    project_id: ProjectId,
    /// Match incidents of this kind only.
    kind: Option<String>,
    /// Match incidents of this service only.
    service: Option<String>,
    /// Match incidents of this issue (of the project) only.
    #[schema(value_type = Option<i64>)]
    issue_id: Option<IssueId>,
    /// Why (up to 4,000 characters).
    #[serde(default)]
    comment: String,
    /// Default: now.
    starts_at: Option<DateTime<Utc>>,
    /// Give this or `duration_minutes`.
    ends_at: Option<DateTime<Utc>>,
    /// 1 to 527,040 (a year); give this or `ends_at`.
    duration_minutes: Option<i64>,
}

/// Create a silence.
#[utoipa::path(
    post,
    path = "/api/v1/silences",
    operation_id = "create_silence",
    tag = "silences",
    request_body = NewSilenceBody,
    responses(
        (status = 201, description = "The new silence", body = SilenceView),
        (status = 400, description = "A bad body", body = ErrorBody),
        (status = 422, description = "An unknown project, kind or issue, or a window that makes no sense", body = ErrorBody),
    )
)]
async fn create(
    token: ApiToken,
    State(state): State<AppState>,
    body: Result<Json<NewSilenceBody>, JsonRejection>,
) -> Result<(StatusCode, Json<SilenceView>), ApiError> {
    let body = body_of(body)?;
    let now = Utc::now();
    let new = validate(&state, body, now, token.id).await?;
    let silence = silences::create(&state.pool, &new).await?;
    Ok((StatusCode::CREATED, Json(view(silence, now))))
}

/// The silence a request asks for, or a 422 naming what is wrong with it.
async fn validate(
    state: &AppState,
    body: NewSilenceBody,
    now: DateTime<Utc>,
    token_id: i64,
) -> Result<NewSilence, ApiError> {
    let refuse = |message: String| Err(ApiError::unprocessable(message));
    if !projects::exists(&state.pool, body.project_id).await? {
        return refuse(format!("project {} does not exist", body.project_id));
    }
    if let Some(kind) = &body.kind {
        if Kind::parse(kind).is_none() {
            return refuse(format!(
                "unknown kind {kind:?} (new_issue, regression, threshold, anomaly or error_rate)"
            ));
        }
    }
    if let Some(service) = &body.service {
        check_text("service", service, 1, MAX_SERVICE_CHARS)?;
    }
    if let Some(issue_id) = body.issue_id {
        let issue = issues::get(&state.pool, issue_id).await?;
        if issue.is_none_or(|issue| issue.project_id != body.project_id) {
            return refuse(format!(
                "project {} has no issue {issue_id}",
                body.project_id
            ));
        }
    }
    check_comment(&body.comment)?;
    let starts_at = body.starts_at.unwrap_or(now);
    let ends_at = match (body.ends_at, body.duration_minutes) {
        (Some(ends_at), None) => ends_at,
        (None, Some(minutes)) if (1..=MAX_DURATION_MINUTES).contains(&minutes) => {
            starts_at + Duration::minutes(minutes)
        }
        (None, Some(_)) => {
            return refuse(format!(
                "duration_minutes must be between 1 and {MAX_DURATION_MINUTES}"
            ))
        }
        _ => return refuse("give exactly one of ends_at and duration_minutes".into()),
    };
    check_window(starts_at, ends_at)?;
    if ends_at <= now {
        return refuse("ends_at is in the past: the silence would never apply".into());
    }
    Ok(NewSilence {
        project_id: body.project_id,
        kind: body.kind,
        service: body.service,
        issue_id: body.issue_id,
        comment: body.comment,
        starts_at,
        ends_at,
        created_by: Some(token_id),
    })
}

fn check_comment(comment: &str) -> Result<(), ApiError> {
    check_text("comment", comment, 0, MAX_COMMENT_CHARS)
}

fn check_window(starts_at: DateTime<Utc>, ends_at: DateTime<Utc>) -> Result<(), ApiError> {
    if ends_at <= starts_at {
        return Err(ApiError::unprocessable("ends_at must be after starts_at"));
    }
    if ends_at - starts_at > Duration::minutes(MAX_DURATION_MINUTES) {
        return Err(ApiError::unprocessable(format!(
            "a silence lasts at most {MAX_DURATION_MINUTES} minutes"
        )));
    }
    Ok(())
}

/// One silence.
#[utoipa::path(
    get,
    path = "/api/v1/silences/{id}",
    operation_id = "get_silence",
    tag = "silences",
    params(("id" = i64, Path, description = "Silence id")),
    responses(
        (status = 200, description = "The silence", body = SilenceView),
        (status = 400, description = "A bad id", body = ErrorBody),
        (status = 404, description = "No such silence", body = ErrorBody),
    )
)]
async fn show(
    _token: ApiToken,
    State(state): State<AppState>,
    path: Result<Path<i64>, PathRejection>,
) -> Result<Json<SilenceView>, ApiError> {
    let id = path_of(path)?;
    let silence = silences::get(&state.pool, id)
        .await?
        .ok_or_else(|| not_found(id))?;
    Ok(Json(view(silence, Utc::now())))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct SilenceChange {
    comment: Option<String>,
    /// A later end extends it; an end in the past expires it now.
    ends_at: Option<DateTime<Utc>>,
}

/// Change a silence's comment or end.
#[utoipa::path(
    patch,
    path = "/api/v1/silences/{id}",
    operation_id = "update_silence",
    tag = "silences",
    params(("id" = i64, Path, description = "Silence id")),
    request_body = SilenceChange,
    responses(
        (status = 200, description = "The changed silence", body = SilenceView),
        (status = 400, description = "A bad id or body", body = ErrorBody),
        (status = 404, description = "No such silence", body = ErrorBody),
        (status = 422, description = "An end not after the start, or a comment too long", body = ErrorBody),
    )
)]
async fn update(
    _token: ApiToken,
    State(state): State<AppState>,
    path: Result<Path<i64>, PathRejection>,
    body: Result<Json<SilenceChange>, JsonRejection>,
) -> Result<Json<SilenceView>, ApiError> {
    let id = path_of(path)?;
    let change = body_of(body)?;
    let silence = silences::get(&state.pool, id)
        .await?
        .ok_or_else(|| not_found(id))?;
    if let Some(comment) = &change.comment {
        check_comment(comment)?;
    }
    if let Some(ends_at) = change.ends_at {
        check_window(silence.starts_at, ends_at)?;
    }
    let updated = silences::update(&state.pool, id, change.comment.as_deref(), change.ends_at)
        .await?
        .ok_or_else(|| not_found(id))?;
    Ok(Json(view(updated, Utc::now())))
}

/// Delete a silence; incidents it covered keep its id.
#[utoipa::path(
    delete,
    path = "/api/v1/silences/{id}",
    operation_id = "delete_silence",
    tag = "silences",
    params(("id" = i64, Path, description = "Silence id")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 400, description = "A bad id", body = ErrorBody),
        (status = 404, description = "No such silence", body = ErrorBody),
    )
)]
async fn remove(
    _token: ApiToken,
    State(state): State<AppState>,
    path: Result<Path<i64>, PathRejection>,
) -> Result<StatusCode, ApiError> {
    let id = path_of(path)?;
    removed(silences::delete(&state.pool, id).await?, || not_found(id))
}
