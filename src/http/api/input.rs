//! What every handler does with its raw input: a path or body the extractor could not read
//! becomes a 400 naming the problem (axum's own rejection text), in Seismo's error shape.
//! The one answer every DELETE gives: 204, or 404 when there was nothing to remove; and
//! the check of a list's `project` filter.

use axum::extract::rejection::{JsonRejection, PathRejection};
use axum::extract::Path;
use axum::http::StatusCode;
use axum::Json;

use crate::http::error::ApiError;
use crate::model::ProjectId;
use crate::store::projects;

pub fn path_of<T>(path: Result<Path<T>, PathRejection>) -> Result<T, ApiError> {
    path.map(|Path(p)| p)
        .map_err(|e| ApiError::bad_request(e.body_text()))
}

pub fn body_of<T>(body: Result<Json<T>, JsonRejection>) -> Result<T, ApiError> {
    body.map(|Json(b)| b)
        .map_err(|e| ApiError::bad_request(e.body_text()))
}

/// A text field a handler stores: `min..=max` characters and no NUL (PostgreSQL text cannot
/// hold one), else a 422 naming the field and the bounds.
pub fn check_text(field: &str, text: &str, min: usize, max: usize) -> Result<(), ApiError> {
    let chars = text.chars().count();
    if (min..=max).contains(&chars) && !text.contains('\0') {
        Ok(())
    } else {
        Err(ApiError::unprocessable(format!(
            "{field} must be {min} to {max} characters, without NUL"
        )))
    }
}

/// 204 when the DELETE removed something, else `missing()` (a 404 naming it).
pub fn removed(found: bool, missing: impl FnOnce() -> ApiError) -> Result<StatusCode, ApiError> {
    if found {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(missing())
    }
}

/// A list's `project` filter: nothing, or a project that exists (else a 404 naming it).
pub async fn project_filter(
    pool: &sqlx::PgPool,
    project: Option<ProjectId>,
) -> Result<(), ApiError> {
    match project {
        Some(id) if !projects::exists(pool, id).await? => {
            Err(ApiError::not_found(format!("project {id}")))
        }
        _ => Ok(()),
    }
}
