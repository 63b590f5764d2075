//! The `ApiToken` extractor: a handler that takes it only runs for a valid, unrevoked token.
//! Ingestion keys are a different table, so they never pass here (and tokens never ingest).

use axum::extract::FromRequestParts;
use axum::http::header;
use axum::http::request::Parts;

use crate::http::error::ApiError;
use crate::http::AppState;
use crate::store::tokens;

pub struct ApiToken {
    #[allow(dead_code)] // The token's id; scopes and audit logs will read it.
    pub id: i64,
}

impl FromRequestParts<AppState> for ApiToken {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<ApiToken, ApiError> {
        let header = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .ok_or_else(|| ApiError::unauthorized("missing Authorization: Bearer <api token>"))?;
        let token = header
            .strip_prefix("Bearer ")
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| {
                ApiError::unauthorized("the Authorization header must be Bearer <api token>")
            })?;
        match tokens::verify(&state.pool, token).await? {
            Some(id) => Ok(ApiToken { id }),
            None => Err(ApiError::unauthorized("the API token is not valid")),
        }
    }
}
