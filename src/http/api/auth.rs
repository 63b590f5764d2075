//! The `ApiToken` extractor: a handler that takes it only runs for a valid, unrevoked token
//! whose scope covers the request. Ingestion keys are a different table, so they never pass
//! here (and tokens never ingest).
//!
//! Which scope a request needs is decided here, in one place, from its method and route
//! ([`required_scope`]): reading needs `read`, changing needs `write`, and managing projects
//! and their ingestion keys, API tokens, endpoints, and deleting issues (with their
//! events) needs `admin`.

use axum::extract::{FromRequestParts, MatchedPath};
use axum::http::request::Parts;
use axum::http::{header, Method, StatusCode};

use crate::http::error::ApiError;
use crate::http::AppState;
use crate::store::tokens::{self, Scope};

pub struct ApiToken {
    /// The token's id: who resolved an incident, who made a silence.
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
        let grant = tokens::verify(&state.pool, token)
            .await?
            .ok_or_else(|| ApiError::unauthorized("the API token is not valid"))?;
        let route = parts
            .extensions
            .get::<MatchedPath>()
            .map_or(parts.uri.path(), MatchedPath::as_str);
        let needed = required_scope(&parts.method, route);
        if grant.scope < needed {
            let message = format!(
                "this token's scope is {}; {} {route} needs {}",
                grant.scope.as_str(),
                parts.method,
                needed.as_str()
            );
            return Err(ApiError::new(StatusCode::FORBIDDEN, "forbidden", message));
        }
        Ok(ApiToken { id: grant.id })
    }
}

/// The scope a request needs, by method and route template.
pub fn required_scope(method: &Method, route: &str) -> Scope {
    let manages_access = route.contains("/keys")
        || route.starts_with("/api/v1/tokens")
        // Endpoints hold signing secrets and decide where Seismo sends requests.
        || (route.starts_with("/api/v1/endpoints") && method != Method::GET)
        // Deleting an issue deletes its events: data, not triage.
        || (route == "/api/v1/issues/{id}" && method == Method::DELETE)
        || (route == "/api/v1/projects" && method == Method::POST)
        || (route == "/api/v1/projects/{id}" && method != Method::GET);
    if manages_access {
        Scope::Admin
    } else if method == Method::GET || method == Method::HEAD {
        Scope::Read
    } else {
        Scope::Write
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes_follow_method_and_route() {
        let cases = [
            (Method::GET, "/api/v1/incidents", Scope::Read),
            (Method::PATCH, "/api/v1/incidents/{id}", Scope::Write),
            (Method::POST, "/api/v1/projects/{id}/rules", Scope::Write),
            (Method::GET, "/api/v1/projects/{id}", Scope::Read),
            (Method::PATCH, "/api/v1/projects/{id}", Scope::Admin),
            (Method::DELETE, "/api/v1/projects/{id}", Scope::Admin),
            (Method::POST, "/api/v1/projects", Scope::Admin),
            (Method::GET, "/api/v1/projects/{id}/keys", Scope::Admin),
            (Method::GET, "/api/v1/tokens", Scope::Admin),
            (Method::DELETE, "/api/v1/tokens/{id}", Scope::Admin),
            (Method::DELETE, "/api/v1/issues/{id}", Scope::Admin),
            (Method::POST, "/api/v1/issues/{id}/merge", Scope::Write),
            (Method::POST, "/api/v1/endpoints", Scope::Admin),
            (Method::GET, "/api/v1/endpoints/{id}", Scope::Read),
            (
                Method::POST,
                "/api/v1/deliveries/{id}/redeliver",
                Scope::Write,
            ),
        ];
        for (method, route, scope) in cases {
            assert_eq!(required_scope(&method, route), scope, "{method} {route}");
        }
        assert!(Scope::Admin > Scope::Write && Scope::Write > Scope::Read);
    }
}
