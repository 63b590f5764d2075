//! `GET|POST /api/v1/tokens`, `DELETE /api/v1/tokens/{id}`: the management API's own tokens
//! (admin scope). A new token's text is in the creation response only — Seismo keeps its
//! hash — and a list shows each token's scope, last use and revocation, never the token.

use axum::extract::rejection::{JsonRejection, PathRejection};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{delete, get};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};

use super::auth::ApiToken;
use super::input::{body_of, path_of};
use super::pagination::Page;
use crate::http::error::ApiError;
use crate::http::AppState;
use crate::store::tokens::{self, Scope, TokenInfo};

const MAX_NAME_CHARS: usize = 200;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/v1/tokens", get(list).post(create))
        .route("/api/v1/tokens/{id}", delete(revoke))
}

async fn list(
    _token: ApiToken,
    State(state): State<AppState>,
) -> Result<Json<Page<TokenInfo>>, ApiError> {
    // Tokens are few (people and scripts, not data): one page.
    let items = tokens::list(&state.pool).await?;
    Ok(Json(Page {
        items,
        next_cursor: None,
    }))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewToken {
    name: String,
    /// `read`, `write` or `admin`; admin when absent, as `seismo token create`.
    scope: Option<Scope>,
}

/// The created token's row with its text, shown this once.
#[derive(Serialize)]
struct CreatedToken {
    #[serde(flatten)]
    info: TokenInfo,
    token: String,
}

async fn create(
    _token: ApiToken,
    State(state): State<AppState>,
    body: Result<Json<NewToken>, JsonRejection>,
) -> Result<(StatusCode, Json<CreatedToken>), ApiError> {
    let new = body_of(body)?;
    let name = new.name.trim();
    if name.is_empty() || name.chars().count() > MAX_NAME_CHARS {
        return Err(ApiError::unprocessable(format!(
            "name must be 1 to {MAX_NAME_CHARS} characters"
        )));
    }
    let created = tokens::create(&state.pool, name, new.scope.unwrap_or(Scope::Admin)).await?;
    let body = CreatedToken {
        info: created.info,
        token: created.token,
    };
    Ok((StatusCode::CREATED, Json(body)))
}

async fn revoke(
    _token: ApiToken,
    State(state): State<AppState>,
    path: Result<Path<i64>, PathRejection>,
) -> Result<StatusCode, ApiError> {
    let id = path_of(path)?;
    match tokens::revoke(&state.pool, id).await? {
        Some(_) => Ok(StatusCode::NO_CONTENT),
        None => Err(ApiError::not_found(format!("token {id}"))),
    }
}
