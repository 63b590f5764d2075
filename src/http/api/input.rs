//! What every handler does with its raw input: a path or body the extractor could not read
//! becomes a 400 naming the problem (axum's own rejection text), in Seismo's error shape.

use axum::extract::rejection::{JsonRejection, PathRejection};
use axum::extract::Path;
use axum::Json;

use crate::http::error::ApiError;

pub fn path_of<T>(path: Result<Path<T>, PathRejection>) -> Result<T, ApiError> {
    path.map(|Path(p)| p)
        .map_err(|e| ApiError::bad_request(e.body_text()))
}

pub fn body_of<T>(body: Result<Json<T>, JsonRejection>) -> Result<T, ApiError> {
    body.map(|Json(b)| b)
        .map_err(|e| ApiError::bad_request(e.body_text()))
}
