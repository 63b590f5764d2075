//! The management API (JSON, `Authorization: Bearer <api token>`): for now the read side of
//! issues and events, with resolving/ignoring an issue. Each resource has its own file and
//! router; later resources (incidents, rules, endpoints, deliveries) slot in the same way.

mod auth;
mod events;
mod issues;
mod pagination;

use axum::Router;

use super::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .merge(issues::router())
        .merge(events::router())
}
