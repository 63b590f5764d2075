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
use axum::routing::{get, patch};
use axum::{Json, Router};
use serde::{Deserialize, Deserializer};
use serde_json::{json, Value};

use super::auth::ApiToken;
use super::pagination::Page;
use crate::cli::project::project_json;
use crate::http::error::ApiError;
use crate::http::AppState;
use crate::ingest::sentry::auth::Dsn;
use crate::store::projects::{self, Key, Project, ProjectChange, Retention};

/// As the `projects.retention_days` CHECK says.
const MAX_RETENTION_DAYS: i32 = 3650;
const DEFAULT_RETENTION_DAYS: i32 = 90;
const MAX_NAME_CHARS: usize = 200;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/v1/projects", get(list).post(create))
        .route(
            "/api/v1/projects/{id}",
            get(show).patch(update).delete(remove),
        )
        .route(
            "/api/v1/projects/{id}/keys",
            get(list_keys).post(create_key),
        )
        .route(
            "/api/v1/projects/{id}/keys/{key_id}",
            patch(update_key).delete(revoke_key),
        )
}

fn dsn(state: &AppState, public_key: &str, project_id: i64) -> String {
    Dsn::for_project(&state.config.public_url, public_key, project_id).to_string()
}

/// The project as DESIGN.md §3.5 shows it (exactly as `seismo project create --json` prints
/// it), with its quota and retention.
fn view(state: &AppState, project: &Project, retention: &Retention) -> Value {
    let mut view = project_json(project, &state.config);
    view["rate_limit"] = json!(project.rate_limit_per_minute);
    view["retention_days"] = json!(retention.retention_days);
    view["max_events"] = json!(retention.max_events);
    view
}

fn key_view(state: &AppState, key: &Key) -> Value {
    json!({
        "id": key.id,
        "public_key": key.public_key,
        "dsn": dsn(state, &key.public_key, key.project_id),
        "created_at": key.created_at,
        "revoked_at": key.revoked_at,
        "rate_limit": key.rate_limit_per_minute,
    })
}

fn project_not_found(id: i64) -> ApiError {
    ApiError::not_found(format!("project {id}"))
}

fn path_of<T>(path: Result<Path<T>, PathRejection>) -> Result<T, ApiError> {
    path.map(|Path(p)| p)
        .map_err(|e| ApiError::bad_request(e.body_text()))
}

fn body_of<T>(body: Result<Json<T>, JsonRejection>) -> Result<T, ApiError> {
    body.map(|Json(b)| b)
        .map_err(|e| ApiError::bad_request(e.body_text()))
}

/// A present field, `null` included: `Some(None)` clears, an absent field stays `None`.
fn present<'de, T: Deserialize<'de>, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<Option<T>>, D::Error> {
    Option::<T>::deserialize(deserializer).map(Some)
}

async fn load(state: &AppState, id: i64) -> Result<Value, ApiError> {
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
    Ok(view(state, &project, &retention))
}

async fn project_must_exist(state: &AppState, id: i64) -> Result<(), ApiError> {
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

fn check_name(name: &str) -> Result<(), ApiError> {
    if name.trim().is_empty() || name.chars().count() > MAX_NAME_CHARS {
        Err(ApiError::unprocessable(format!(
            "name must be 1 to {MAX_NAME_CHARS} characters"
        )))
    } else {
        Ok(())
    }
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

async fn list(
    _token: ApiToken,
    State(state): State<AppState>,
) -> Result<Json<Page<Value>>, ApiError> {
    // Projects are few: one page, and each one's retention read beside it.
    let mut items = Vec::new();
    for project in projects::list(&state.pool).await? {
        if let Some(retention) = projects::retention(&state.pool, project.id).await? {
            items.push(view(&state, &project, &retention));
        }
    }
    Ok(Json(Page {
        items,
        next_cursor: None,
    }))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewProject {
    slug: String,
    name: Option<String>,
    rate_limit: Option<i64>,
    retention_days: Option<i64>,
    max_events: Option<i64>,
}

async fn create(
    _token: ApiToken,
    State(state): State<AppState>,
    body: Result<Json<NewProject>, JsonRejection>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
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
        Json(view(&state, &project, &retention)),
    ))
}

async fn show(
    _token: ApiToken,
    State(state): State<AppState>,
    path: Result<Path<i64>, PathRejection>,
) -> Result<Json<Value>, ApiError> {
    let id = path_of(path)?;
    Ok(Json(load(&state, id).await?))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ProjectPatch {
    name: Option<String>,
    #[serde(default, deserialize_with = "present")]
    rate_limit: Option<Option<i64>>,
    retention_days: Option<i64>,
    #[serde(default, deserialize_with = "present")]
    max_events: Option<Option<i64>>,
}

async fn update(
    _token: ApiToken,
    State(state): State<AppState>,
    path: Result<Path<i64>, PathRejection>,
    body: Result<Json<ProjectPatch>, JsonRejection>,
) -> Result<Json<Value>, ApiError> {
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

async fn remove(
    _token: ApiToken,
    State(state): State<AppState>,
    path: Result<Path<i64>, PathRejection>,
) -> Result<StatusCode, ApiError> {
    let id = path_of(path)?;
    let deleted = projects::delete(&state.pool, id).await?;
    state.ingest.forget_project(id);
    if deleted {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(project_not_found(id))
    }
}

async fn list_keys(
    _token: ApiToken,
    State(state): State<AppState>,
    path: Result<Path<i64>, PathRejection>,
) -> Result<Json<Vec<Value>>, ApiError> {
    let id = path_of(path)?;
    project_must_exist(&state, id).await?;
    let keys = projects::list_keys(&state.pool, id).await?;
    Ok(Json(keys.iter().map(|k| key_view(&state, k)).collect()))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewKey {
    rate_limit: Option<i64>,
}

async fn create_key(
    _token: ApiToken,
    State(state): State<AppState>,
    path: Result<Path<i64>, PathRejection>,
    body: Result<Json<NewKey>, JsonRejection>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let id = path_of(path)?;
    let body = body_of(body)?;
    let rate_limit = rate_limit(body.rate_limit)?;
    project_must_exist(&state, id).await?;
    let key = projects::create_key(&state.pool, id, rate_limit).await?;
    Ok((StatusCode::CREATED, Json(key_view(&state, &key))))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct KeyPatch {
    #[serde(deserialize_with = "present")]
    rate_limit: Option<Option<i64>>,
}

async fn update_key(
    _token: ApiToken,
    State(state): State<AppState>,
    path: Result<Path<(i64, i64)>, PathRejection>,
    body: Result<Json<KeyPatch>, JsonRejection>,
) -> Result<Json<Value>, ApiError> {
    let (id, key_id) = path_of(path)?;
    let patch = body_of(body)?;
    let rate_limit = rate_limit(patch.rate_limit.flatten())?;
    let key = projects::set_key_rate_limit(&state.pool, id, key_id, rate_limit).await?;
    state.ingest.forget_project(id);
    let key = key.ok_or_else(|| ApiError::not_found(format!("key {key_id} of project {id}")))?;
    Ok(Json(key_view(&state, &key)))
}

async fn revoke_key(
    _token: ApiToken,
    State(state): State<AppState>,
    path: Result<Path<(i64, i64)>, PathRejection>,
) -> Result<StatusCode, ApiError> {
    let (id, key_id) = path_of(path)?;
    let revoked = projects::revoke_key(&state.pool, id, key_id).await?;
    state.ingest.forget_project(id);
    if revoked {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::not_found(format!("key {key_id} of project {id}")))
    }
}
