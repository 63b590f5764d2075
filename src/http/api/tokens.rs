//! `GET|POST /api/v1/tokens`, `DELETE /api/v1/tokens/{id}`: the management API's own tokens
//! (admin scope). A new token's text is in the creation response only — Seismo keeps its
//! hash — and a list shows each token's scope, last use and revocation, never the token.

use axum::extract::rejection::{JsonRejection, PathRejection};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::auth::ApiToken;
use super::input::{body_of, check_text, path_of, removed};
use super::openapi::{one_of, one_of_or_null};
use super::pagination::Page;
use crate::http::error::{ApiError, ErrorBody};
use crate::http::AppState;
use crate::store::tokens::{self, Scope, TokenInfo};

const MAX_NAME_CHARS: usize = 200;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list, create))
        .routes(routes!(revoke))
}

/// Every API token, newest first, revoked ones included; never a token's text.
#[utoipa::path(
    get,
    path = "/api/v1/tokens",
    operation_id = "list_tokens",
    tag = "tokens",
    responses((status = 200, description = "Every token, in one page", body = Page<TokenView>))
)]
async fn list(
    _token: ApiToken,
    State(state): State<AppState>,
) -> Result<Json<Page<TokenView>>, ApiError> {
    // Tokens are few (people and scripts, not data): one page.
    let items = tokens::list(&state.pool).await?;
    let items = items.into_iter().map(TokenView::from).collect();
    Ok(Json(Page {
        items,
        next_cursor: None,
    }))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct NewToken {
    /// Who or what uses it (1 to 200 characters).
    name: String,
    /// `read`, `write` or `admin`; admin when absent, as `seismo token create`.
    #[schema(schema_with = scope_or_null_schema)]
    scope: Option<Scope>,
}

/// A token as it is listed: everything but the token itself, which is never stored.
#[derive(Serialize, ToSchema)]
#[schema(as = Token)]
pub struct TokenView {
    pub id: i64,
    pub name: String,
    #[schema(schema_with = scope_schema)]
    pub scope: String,
    pub created_at: DateTime<Utc>,
    pub last_used_at: Option<DateTime<Utc>>,
    pub revoked_at: Option<DateTime<Utc>>,
}

impl From<TokenInfo> for TokenView {
    fn from(info: TokenInfo) -> TokenView {
        TokenView {
            id: info.id,
            name: info.name,
            scope: info.scope,
            created_at: info.created_at,
            last_used_at: info.last_used_at,
            revoked_at: info.revoked_at,
        }
    }
}

fn scope_schema() -> utoipa::openapi::Object {
    one_of(&Scope::names())
}

fn scope_or_null_schema() -> utoipa::openapi::Object {
    one_of_or_null(&Scope::names())
}

/// The created token's row with its text, shown this once.
#[derive(Serialize, ToSchema)]
struct CreatedToken {
    #[serde(flatten)]
    info: TokenView,
    /// `Authorization: Bearer <token>`; Seismo keeps only its hash.
    token: String,
}

/// Create an API token; its text is in this answer only.
#[utoipa::path(
    post,
    path = "/api/v1/tokens",
    operation_id = "create_token",
    tag = "tokens",
    request_body = NewToken,
    responses(
        (status = 201, description = "The new token, with its text", body = CreatedToken),
        (status = 400, description = "A bad body", body = ErrorBody),
        (status = 422, description = "An empty, too long or NUL-holding name", body = ErrorBody),
    )
)]
async fn create(
    _token: ApiToken,
    State(state): State<AppState>,
    body: Result<Json<NewToken>, JsonRejection>,
) -> Result<(StatusCode, Json<CreatedToken>), ApiError> {
    let new = body_of(body)?;
    let name = new.name.trim();
    check_text("name", name, 1, MAX_NAME_CHARS)?;
    let created = tokens::create(&state.pool, name, new.scope.unwrap_or(Scope::Admin)).await?;
    let body = CreatedToken {
        info: created.info.into(),
        token: created.token,
    };
    Ok((StatusCode::CREATED, Json(body)))
}

/// Revoke a token: requests with it are refused from now on. Revoking twice keeps the
/// first time.
#[utoipa::path(
    delete,
    path = "/api/v1/tokens/{id}",
    operation_id = "revoke_token",
    tag = "tokens",
    params(("id" = i64, Path, description = "Token id")),
    responses(
        (status = 204, description = "Revoked"),
        (status = 400, description = "A bad id", body = ErrorBody),
        (status = 404, description = "No such token", body = ErrorBody),
    )
)]
async fn revoke(
    _token: ApiToken,
    State(state): State<AppState>,
    path: Result<Path<i64>, PathRejection>,
) -> Result<StatusCode, ApiError> {
    let id = path_of(path)?;
    let revoked = tokens::revoke(&state.pool, id).await?;
    removed(revoked.is_some(), || {
        ApiError::not_found(format!("token {id}"))
    })
}
