//! The management API (JSON, `Authorization: Bearer <api token>`): the read side of issues
//! and events with resolving/ignoring an issue, incidents (list, history, acknowledge,
//! resolve, label, report a missed fault) and detection rules. Each resource has its own
//! file and router; later resources (endpoints, deliveries) slot in the same way.

mod auth;
mod events;
mod incidents;
mod input;
mod issues;
mod pagination;
mod projects;
mod rules;
mod silences;
mod stats;
mod tokens;

use axum::Router;

use super::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .merge(issues::router())
        .merge(events::router())
        .merge(incidents::router())
        .merge(rules::router())
        .merge(projects::router())
        .merge(stats::router())
        .merge(tokens::router())
        .merge(silences::router())
}
