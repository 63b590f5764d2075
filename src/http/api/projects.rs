//! `GET|POST /api/v1/projects`, `GET|PATCH|DELETE /api/v1/projects/{id}`: projects with their
//! quota and retention; deleting one deletes everything it owns (issues, events, counts,
//! incidents, rules). `GET|POST /api/v1/projects/{id}/keys`,
//! `PATCH|DELETE /api/v1/projects/{id}/keys/{key_id}`: its ingestion keys; DELETE revokes a
//! key. A key's `rate_limit` is a quota of its own, beside the project's. Changes reach
//! this process's ingestion at once, other Seismo processes within their key cache's
//! lifetime (30 s).

use axum::extract::rejection::{JsonRejection, PathRejection};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Deserializer, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::auth::ApiToken;
use super::input::{body_of, check_text, path_of, removed};
use super::pagination::Page;
use crate::config::Config;
use crate::http::error::{ApiError, ErrorBody};
use crate::http::AppState;
use crate::ingest::sentry::auth::Dsn;
use crate::model::ProjectId;
use crate::store::projects::{self, Key, Project, ProjectChange, Retention};

/// As the `projects.retention_days` CHECK says.
const MAX_RETENTION_DAYS: i32 = 3650;
const DEFAULT_RETENTION_DAYS: i32 = 90;
const MAX_NAME_CHARS: usize = 200;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list, create))
        .routes(routes!(show, update, remove))
        .routes(routes!(list_keys, create_key))
        .routes(routes!(update_key, revoke_key))
}

fn dsn(state: &AppState, public_key: &str, project_id: ProjectId) -> String {
    Dsn::for_project(&state.config.public_url, public_key, project_id).to_string()
}

/// A project as DESIGN.md §3.5 shows it: what `seismo project create --json` prints, and
/// the first six fields of the API's project.
#[derive(Serialize, ToSchema)]
pub struct ProjectSummary {
    pub id: i64,
    pub slug: String,
    pub name: String,
    /// For Sentry SDKs; `null` when every key is revoked.
    pub dsn: Option<String>,
    /// The key OTLP exporters send in `x-seismo-key`; `null` when every key is revoked.
    pub otlp_key: Option<String>,
    pub created_at: DateTime<Utc>,
}

impl ProjectSummary {
    pub fn new(project: &Project, public_url: &url::Url) -> ProjectSummary {
        let dsn = project
            .public_key
            .as_deref()
            .map(|key| Dsn::for_project(public_url, key, project.id).to_string());
        ProjectSummary {
            id: project.id.get(),
            slug: project.slug.clone(),
            name: project.name.clone(),
            dsn,
            otlp_key: project.public_key.clone(),
            created_at: project.created_at,
        }
    }
}

/// A project (DESIGN.md §3.5: the [`ProjectSummary`] fields) with its quota and retention.
#[derive(Serialize, ToSchema)]
#[schema(as = Project)]
struct ProjectView {
    #[serde(flatten)]
    summary: ProjectSummary,
    /// Events per minute ingestion accepts; `null`: no limit.
    rate_limit: Option<i32>,
    retention_days: i32,
    /// Events kept at most; `null`: no limit.
    max_events: Option<i64>,
}

fn view(config: &Config, project: &Project, retention: &Retention) -> ProjectView {
    ProjectView {
        summary: ProjectSummary::new(project, &config.public_url),
        rate_limit: project.rate_limit_per_minute,
        retention_days: retention.retention_days,
        max_events: retention.max_events,
    }
}

/// An ingestion key of a project.
#[derive(Serialize, ToSchema)]
#[schema(as = Key)]
struct KeyView {
    id: i64,
    public_key: String,
    dsn: String,
    created_at: DateTime<Utc>,
    revoked_at: Option<DateTime<Utc>>,
    /// Stored and shown; ingestion enforces the project's `rate_limit` only.
    rate_limit: Option<i32>,
}

fn key_view(state: &AppState, key: &Key) -> KeyView {
    KeyView {
        id: key.id,
        public_key: key.public_key.clone(),
        dsn: dsn(state, &key.public_key, key.project_id),
        created_at: key.created_at,
        revoked_at: key.revoked_at,
        rate_limit: key.rate_limit_per_minute,
    }
}

fn project_not_found(id: ProjectId) -> ApiError {
    ApiError::not_found(format!("project {id}"))
}

/// A present field, `null` included: `Some(None)` clears, an absent field stays `None`.
fn present<'de, T: Deserialize<'de>, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<Option<T>>, D::Error> {
    Option::<T>::deserialize(deserializer).map(Some)
}

async fn load(state: &AppState, id: ProjectId) -> Result<ProjectView, ApiError> {
    let mut conn = state
        .pool
        .acquire()
        .await
        .map_err(crate::store::StoreError::from)?;
    let project = projects::get(&mut conn, id).await?;
    drop(conn);
    let project = project.ok_or_else(|| project_not_found(id))?;
    let retention = projects::retention(&state.pool, id)
        .await?
        .ok_or_else(|| project_not_found(id))?;
    Ok(view(&state.config, &project, &retention))
}

async fn project_must_exist(state: &AppState, id: ProjectId) -> Result<(), ApiError> {
    if projects::exists(&state.pool, id).await? {
        Ok(())
    } else {
        Err(project_not_found(id))
    }
}

fn check_slug(slug: &str) -> Result<(), ApiError> {
    let mut chars = slug.chars();
    let first_ok = chars
        .next()
        .is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
    let rest_ok =
        chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-');
    if first_ok && rest_ok && slug.len() <= 64 {
        Ok(())
    } else {
        Err(ApiError::unprocessable(format!(
            "slug {slug:?} must be 1 to 64 lower-case letters, digits, '-' or '_', starting with a letter or digit"
        )))
    }
}

/// Not blank, bounded, and without NUL.
fn check_name(name: &str) -> Result<(), ApiError> {
    if name.trim().is_empty() {
        return Err(ApiError::unprocessable("name must not be blank"));
    }
    check_text("name", name, 1, MAX_NAME_CHARS)
}

fn rate_limit(value: Option<i64>) -> Result<Option<i32>, ApiError> {
    value
        .map(|n| {
            i32::try_from(n).ok().filter(|n| *n > 0).ok_or_else(|| {
                ApiError::unprocessable(format!(
                    "rate_limit must be between 1 and {} events per minute",
                    i32::MAX
                ))
            })
        })
        .transpose()
}

fn retention_days(value: Option<i64>) -> Result<Option<i32>, ApiError> {
    value
        .map(|n| {
            i32::try_from(n)
                .ok()
                .filter(|n| (1..=MAX_RETENTION_DAYS).contains(n))
                .ok_or_else(|| {
                    ApiError::unprocessable(format!(
                        "retention_days must be between 1 and {MAX_RETENTION_DAYS}"
                    ))
                })
        })
        .transpose()
}

fn max_events(value: Option<i64>) -> Result<Option<i64>, ApiError> {
    match value {
        Some(n) if n < 1 => Err(ApiError::unprocessable("max_events must be at least 1")),
        other => Ok(other),
    }
}

/// Every project (one page: projects are few).
#[utoipa::path(
    get,
    path = "/api/v1/projects",
    operation_id = "list_projects",
    tag = "projects",
    responses((status = 200, description = "Every project", body = Page<ProjectView>))
)]
async fn list(
    _token: ApiToken,
    State(state): State<AppState>,
) -> Result<Json<Page<ProjectView>>, ApiError> {
    // Projects are few: one page, and each one's retention read beside it.
    let mut items = Vec::new();
    for project in projects::list(&state.pool).await? {
        if let Some(retention) = projects::retention(&state.pool, project.id).await? {
            items.push(view(&state.config, &project, &retention));
        }
    }
    Ok(Json(Page {
        items,
        next_cursor: None,
    }))
}

/// A new project; it gets its first ingestion key and the default rules.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct NewProject {
    /// 1 to 64 of `a-z`, `0-9`, `-`, `_`, starting with a letter or digit; unique.
    slug: String,
    /// 1 to 200 characters; default: the slug.
    name: Option<String>,
    /// Events per minute, at least 1; default: no limit.
    rate_limit: Option<i64>,
    /// 1 to 3650 (default 90).
    retention_days: Option<i64>,
    /// At least 1; default: no limit.
    max_events: Option<i64>,
}

/// Create a project.
#[utoipa::path(
    post,
    path = "/api/v1/projects",
    operation_id = "create_project",
    tag = "projects",
    request_body = NewProject,
    responses(
        (status = 201, description = "The new project", body = ProjectView),
        (status = 400, description = "A bad body", body = ErrorBody),
        (status = 409, description = "The slug is taken", body = ErrorBody),
        (status = 422, description = "A bad slug or name, or a value out of range", body = ErrorBody),
    )
)]
async fn create(
    _token: ApiToken,
    State(state): State<AppState>,
    body: Result<Json<NewProject>, JsonRejection>,
) -> Result<(StatusCode, Json<ProjectView>), ApiError> {
    let body = body_of(body)?;
    check_slug(&body.slug)?;
    let name = body.name.unwrap_or_else(|| body.slug.clone());
    check_name(&name)?;
    let rate_limit = rate_limit(body.rate_limit)?;
    let days = retention_days(body.retention_days)?.unwrap_or(DEFAULT_RETENTION_DAYS);
    let max_events = max_events(body.max_events)?;
    let project = projects::create_with_retention(
        &state.pool,
        &body.slug,
        &name,
        rate_limit,
        days,
        max_events,
    )
    .await?;
    let retention = Retention {
        retention_days: days,
        max_events,
    };
    Ok((
        StatusCode::CREATED,
        Json(view(&state.config, &project, &retention)),
    ))
}

/// One project.
#[utoipa::path(
    get,
    path = "/api/v1/projects/{id}",
    operation_id = "get_project",
    tag = "projects",
    params(("id" = i64, Path, description = "Project id")),
    responses(
        (status = 200, description = "The project", body = ProjectView),
        (status = 400, description = "A bad id", body = ErrorBody),
        (status = 404, description = "No such project", body = ErrorBody),
    )
)]
async fn show(
    _token: ApiToken,
    State(state): State<AppState>,
    path: Result<Path<ProjectId>, PathRejection>,
) -> Result<Json<ProjectView>, ApiError> {
    let id = path_of(path)?;
    Ok(Json(load(&state, id).await?))
}

/// The fields to change; `null` clears `rate_limit` or `max_events` (no limit).
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct ProjectPatch {
    name: Option<String>,
    #[serde(default, deserialize_with = "present")]
    rate_limit: Option<Option<i64>>,
    retention_days: Option<i64>,
    #[serde(default, deserialize_with = "present")]
    max_events: Option<Option<i64>>,
}

/// Rename a project, or change its quota or retention.
#[utoipa::path(
    patch,
    path = "/api/v1/projects/{id}",
    operation_id = "update_project",
    tag = "projects",
    params(("id" = i64, Path, description = "Project id")),
    request_body = ProjectPatch,
    responses(
        (status = 200, description = "The changed project", body = ProjectView),
        (status = 400, description = "A bad id or body", body = ErrorBody),
        (status = 404, description = "No such project", body = ErrorBody),
        (status = 422, description = "A bad name, or a value out of range", body = ErrorBody),
    )
)]
async fn update(
    _token: ApiToken,
    State(state): State<AppState>,
    path: Result<Path<ProjectId>, PathRejection>,
    body: Result<Json<ProjectPatch>, JsonRejection>,
) -> Result<Json<ProjectView>, ApiError> {
    let id = path_of(path)?;
    let patch = body_of(body)?;
    if let Some(name) = &patch.name {
        check_name(name)?;
    }
    let change = ProjectChange {
        name: patch.name,
        rate_limit_per_minute: patch.rate_limit.map(rate_limit).transpose()?,
        retention_days: retention_days(patch.retention_days)?,
        max_events: patch.max_events.map(max_events).transpose()?,
    };
    let updated = projects::update(&state.pool, id, &change).await?;
    state.ingest.forget_project(id);
    if !updated {
        return Err(project_not_found(id));
    }
    Ok(Json(load(&state, id).await?))
}

/// Delete a project.
///
/// Everything it owns goes with it: issues, events, counts, incidents, rules, keys.
#[utoipa::path(
    delete,
    path = "/api/v1/projects/{id}",
    operation_id = "delete_project",
    tag = "projects",
    params(("id" = i64, Path, description = "Project id")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 400, description = "A bad id", body = ErrorBody),
        (status = 404, description = "No such project", body = ErrorBody),
    )
)]
async fn remove(
    _token: ApiToken,
    State(state): State<AppState>,
    path: Result<Path<ProjectId>, PathRejection>,
) -> Result<StatusCode, ApiError> {
    let id = path_of(path)?;
    let deleted = projects::delete(&state.pool, id).await?;
    state.ingest.forget_project(id);
    removed(deleted, || project_not_found(id))
}

/// A project's ingestion keys.
///
/// Revoked ones included, oldest first, in one page (a project has a handful of keys).
#[utoipa::path(
    get,
    path = "/api/v1/projects/{id}/keys",
    operation_id = "list_keys",
    tag = "projects",
    params(("id" = i64, Path, description = "Project id")),
    responses(
        (status = 200, description = "Every key of the project", body = Page<KeyView>),
        (status = 400, description = "A bad id", body = ErrorBody),
        (status = 404, description = "No such project", body = ErrorBody),
    )
)]
async fn list_keys(
    _token: ApiToken,
    State(state): State<AppState>,
    path: Result<Path<ProjectId>, PathRejection>,
) -> Result<Json<Page<KeyView>>, ApiError> {
    let id = path_of(path)?;
    project_must_exist(&state, id).await?;
    let keys = projects::list_keys(&state.pool, id).await?;
    Ok(Json(Page {
        items: keys.iter().map(|k| key_view(&state, k)).collect(),
        next_cursor: None,
    }))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct NewKey {
    /// Events per minute, at least 1; default: no limit.
    rate_limit: Option<i64>,
}

/// Add an ingestion key to a project; it ingests at once.
#[utoipa::path(
    post,
    path = "/api/v1/projects/{id}/keys",
    operation_id = "create_key",
    tag = "projects",
    params(("id" = i64, Path, description = "Project id")),
    request_body = NewKey,
    responses(
        (status = 201, description = "The new key", body = KeyView),
        (status = 400, description = "A bad id or body", body = ErrorBody),
        (status = 404, description = "No such project", body = ErrorBody),
        (status = 422, description = "A rate limit out of range", body = ErrorBody),
    )
)]
async fn create_key(
    _token: ApiToken,
    State(state): State<AppState>,
    path: Result<Path<ProjectId>, PathRejection>,
    body: Result<Json<NewKey>, JsonRejection>,
) -> Result<(StatusCode, Json<KeyView>), ApiError> {
    let id = path_of(path)?;
    let body = body_of(body)?;
    let rate_limit = rate_limit(body.rate_limit)?;
    project_must_exist(&state, id).await?;
    let key = projects::create_key(&state.pool, id, rate_limit).await?;
    Ok((StatusCode::CREATED, Json(key_view(&state, &key))))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct KeyPatch {
    /// Events per minute, at least 1; `null`: no limit.
    #[serde(deserialize_with = "present")]
    #[schema(required = true)]
    rate_limit: Option<Option<i64>>,
}

/// Change a key's rate limit.
#[utoipa::path(
    patch,
    path = "/api/v1/projects/{id}/keys/{key_id}",
    operation_id = "update_key",
    tag = "projects",
    params(
        ("id" = i64, Path, description = "Project id"),
        ("key_id" = i64, Path, description = "Key id"),
    ),
    request_body = KeyPatch,
    responses(
        (status = 200, description = "The changed key", body = KeyView),
        (status = 400, description = "A bad id or body", body = ErrorBody),
        (status = 404, description = "No such key in this project", body = ErrorBody),
        (status = 422, description = "A rate limit out of range", body = ErrorBody),
    )
)]
async fn update_key(
    _token: ApiToken,
    State(state): State<AppState>,
    path: Result<Path<(ProjectId, i64)>, PathRejection>,
    body: Result<Json<KeyPatch>, JsonRejection>,
) -> Result<Json<KeyView>, ApiError> {
    let (id, key_id) = path_of(path)?;
    let patch = body_of(body)?;
    let rate_limit = rate_limit(patch.rate_limit.flatten())?;
    let key = projects::set_key_rate_limit(&state.pool, id, key_id, rate_limit).await?;
    state.ingest.forget_project(id);
    let key = key.ok_or_else(|| ApiError::not_found(format!("key {key_id} of project {id}")))?;
    Ok(Json(key_view(&state, &key)))
}

/// Revoke a key.
///
/// Ingestion refuses it within the key cache's lifetime (30 s). Revoking a revoked key
/// keeps its first revocation.
#[utoipa::path(
    delete,
    path = "/api/v1/projects/{id}/keys/{key_id}",
    operation_id = "revoke_key",
    tag = "projects",
    params(
        ("id" = i64, Path, description = "Project id"),
        ("key_id" = i64, Path, description = "Key id"),
    ),
    responses(
        (status = 204, description = "Revoked"),
        (status = 400, description = "A bad id", body = ErrorBody),
        (status = 404, description = "No such key in this project", body = ErrorBody),
    )
)]
async fn revoke_key(
    _token: ApiToken,
    State(state): State<AppState>,
    path: Result<Path<(ProjectId, i64)>, PathRejection>,
) -> Result<StatusCode, ApiError> {
    let (id, key_id) = path_of(path)?;
    let revoked = projects::revoke_key(&state.pool, id, key_id).await?;
    state.ingest.forget_project(id);
    removed(revoked, || {
        ApiError::not_found(format!("key {key_id} of project {id}"))
    })
}
