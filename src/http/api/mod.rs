//! The management API (JSON, `Authorization: Bearer <api token>`): the read side of issues
//! and events with resolving/ignoring an issue, incidents (list, history, acknowledge,
//! resolve, label, report a missed fault), detection rules, projects with their keys, and
//! statistics, the endpoints incidents are delivered to and the deliveries made. Each
//! resource has its own file and router.
//!
//! Each resource's router is a `utoipa_axum` `OpenApiRouter`: registering a handler with
//! `routes!` also adds its `#[utoipa::path]` annotation to the OpenAPI document, so nothing
//! is routed undocumented. [`router`] merges them, splits the axum router from the document,
//! and serves the document (`openapi`).

mod auth;
mod deliveries;
mod endpoints;
mod events;
mod incidents;
mod input;
mod issues;
mod openapi;
mod pagination;
pub mod projects;
mod rules;
mod silences;
mod stats;
pub mod tokens;

use axum::Router;
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;

use super::AppState;

pub fn router() -> Router<AppState> {
    let (router, api) = openapi_router().split_for_parts();
    router.merge(openapi::router(api))
}

/// Every resource's routes, each with its part of the document.
fn openapi_router() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(openapi::ApiDoc::openapi())
        .merge(issues::router())
        .merge(events::router())
        .merge(incidents::router())
        .merge(rules::router())
        .merge(projects::router())
        .merge(stats::router())
        .merge(tokens::router())
        .merge(silences::router())
        .merge(endpoints::router())
        .merge(deliveries::router())
}
