//! `GET|POST /api/v1/endpoints`, `GET|PATCH|DELETE /api/v1/endpoints/{id}`: where a
//! project's incidents go (DESIGN.md §3.2): `recovery` hooks (a chain by `order`),
//! notification `webhook`s and `email` recipients. What makes one valid is
//! `deliver::endpoint_spec`; the secret is in the answer that made it (or rotated it) only.

use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::Json;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::auth::ApiToken;
use super::input::{body_of, path_of, project_filter, removed};
use super::pagination::{self, Page};
use crate::deliver::breaker::BreakerState;
use crate::deliver::endpoint_spec::{self, Spec};
use crate::deliver::ssrf::Guard;
use crate::http::error::{ApiError, ErrorBody};
use crate::http::AppState;
use crate::model::{Kind, ProjectId};
use crate::store::endpoints::{self, Endpoint, EndpointChange, EndpointFilter};
use crate::store::projects;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list, create))
        .routes(routes!(show, update, remove))
}

/// An endpoint as the API shows it.
#[derive(Serialize, ToSchema)]
pub struct EndpointView {
    id: i64,
    project_id: i64,
    /// `recovery`, `webhook` or `email`.
    kind: String,
    url: Option<String>,
    /// recovery: `restart`, `rollback`, `scale` or `custom:<name>`.
    action: Option<String>,
    /// recovery: the incident kinds it acts on (empty: all).
    incident_kinds: Vec<String>,
    /// recovery: the services it acts on (empty: all).
    services: Vec<String>,
    /// recovery: its place in the project's chain (lowest first).
    order: i32,
    cooldown_minutes: i32,
    /// webhook (and email): the topics it gets (empty: all).
    events: Vec<String>,
    addresses: Vec<String>,
    enabled: bool,
    /// Why it was switched off (a 410 from its receiver).
    disabled_reason: Option<String>,
    breaker: BreakerView,
    created_at: DateTime<Utc>,
    /// The `whsec_…` signing secret: only in the answer that created or rotated it.
    secret: Option<String>,
}

#[derive(Serialize, ToSchema)]
struct BreakerView {
    state: BreakerState,
    /// Consecutive failed attempts.
    failures: i32,
    /// Open: when one probe may go. Half-open: when the probe's hold ends.
    until: Option<DateTime<Utc>>,
}

fn view(endpoint: Endpoint, secret: Option<String>) -> EndpointView {
    EndpointView {
        breaker: BreakerView {
            state: BreakerState::parse(&endpoint.breaker_state),
            failures: endpoint.breaker_failures,
            until: endpoint.breaker_until,
        },
        id: endpoint.id,
        project_id: endpoint.project_id.get(),
        kind: endpoint.kind,
        url: endpoint.url,
        action: endpoint.action,
        incident_kinds: endpoint.incident_kinds,
        services: endpoint.services,
        order: endpoint.order,
        cooldown_minutes: endpoint.cooldown_minutes,
        events: endpoint.events,
        addresses: endpoint.addresses,
        enabled: endpoint.enabled,
        disabled_reason: endpoint.disabled_reason,
        created_at: endpoint.created_at,
        secret,
    }
}

fn not_found(id: i64) -> ApiError {
    ApiError::not_found(format!("endpoint {id}"))
}

fn guard(state: &AppState) -> Result<Guard, ApiError> {
    // The config was validated at start, so this only fails on a bug.
    Guard::new(&state.config.webhook_allow_cidrs).map_err(|e| {
        tracing::error!(error = %e, "the webhook allow-list does not parse");
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "internal error",
        )
    })
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct ListQuery {
    /// Only this project's endpoints.
    #[param(value_type = Option<i64>)]
    project: Option<ProjectId>,
    /// Only endpoints of this kind (`recovery`, `webhook`, `email`).
    kind: Option<String>,
    /// The `next_cursor` of the previous page.
    cursor: Option<String>,
    /// Endpoints per page, 1 to 100 (default 25).
    limit: Option<i64>,
}

/// Endpoints, newest first.
#[utoipa::path(
    get,
    path = "/api/v1/endpoints",
    operation_id = "list_endpoints",
    tag = "endpoints",
    params(ListQuery),
    responses(
        (status = 200, description = "A page of endpoints", body = Page<EndpointView>),
        (status = 400, description = "A bad filter or cursor", body = ErrorBody),
        (status = 404, description = "No such project", body = ErrorBody),
    )
)]
async fn list(
    _token: ApiToken,
    State(state): State<AppState>,
    query: Result<Query<ListQuery>, QueryRejection>,
) -> Result<Json<Page<EndpointView>>, ApiError> {
    let Query(query) = query.map_err(|e| ApiError::bad_request(e.body_text()))?;
    project_filter(&state.pool, query.project).await?;
    pagination::one_of("kind", query.kind.as_deref(), &endpoint_spec::KINDS)?;
    let filter = EndpointFilter {
        project_id: query.project,
        kind: query.kind,
        before_id: pagination::id_cursor(query.cursor.as_deref())?,
        limit: pagination::limit(query.limit)?,
    };
    let found = endpoints::list(&state.pool, &filter).await?;
    let page = pagination::page(found, filter.limit, |e| e.id.to_string());
    Ok(Json(Page {
        items: page.items.into_iter().map(|e| view(e, None)).collect(),
        next_cursor: page.next_cursor,
    }))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct NewEndpointBody {
    #[schema(value_type = i64)]
    project_id: ProjectId,
    /// `recovery`, `webhook` or `email`.
    kind: String,
    /// recovery and webhook: where to POST (http or https).
    url: Option<String>,
    /// recovery and webhook: a `whsec_…` secret; generated when absent.
    secret: Option<String>,
    /// recovery: `restart`, `rollback`, `scale` or `custom:<name>`.
    action: Option<String>,
    #[serde(default)]
    incident_kinds: Vec<String>,
    #[serde(default)]
    services: Vec<String>,
    /// recovery: 1 to 100 (default 1), lowest first.
    order: Option<i32>,
    /// recovery: minutes during which it does not act on the same service again (default 0).
    cooldown_minutes: Option<i32>,
    #[serde(default)]
    events: Vec<String>,
    #[serde(default)]
    addresses: Vec<String>,
}

/// Create an endpoint.
///
/// The answer carries the signing secret; it is never shown again.
#[utoipa::path(
    post,
    path = "/api/v1/endpoints",
    operation_id = "create_endpoint",
    tag = "endpoints",
    request_body = NewEndpointBody,
    responses(
        (status = 201, description = "The new endpoint, with its secret", body = EndpointView),
        (status = 400, description = "A bad body", body = ErrorBody),
        (status = 422, description = "An unknown project, kind, action or topic, a URL that is not http(s) or not allowed, an address that does not parse", body = ErrorBody),
    )
)]
async fn create(
    _token: ApiToken,
    State(state): State<AppState>,
    body: Result<Json<NewEndpointBody>, JsonRejection>,
) -> Result<(StatusCode, Json<EndpointView>), ApiError> {
    let body = body_of(body)?;
    if !projects::exists(&state.pool, body.project_id).await? {
        let message = format!("project {} does not exist", body.project_id);
        return Err(ApiError::unprocessable(message));
    }
    let spec = Spec {
        project_id: body.project_id,
        kind: body.kind,
        url: body.url,
        secret: body.secret,
        action: body.action,
        incident_kinds: body.incident_kinds,
        services: body.services,
        order: body.order,
        cooldown_minutes: body.cooldown_minutes,
        events: body.events,
        addresses: body.addresses,
    };
    let new = endpoint_spec::validate(spec, &guard(&state)?, &Kind::names())
        .await
        .map_err(|e| ApiError::unprocessable(e.0))?;
    let endpoint = endpoints::create(&state.pool, &new).await?;
    Ok((StatusCode::CREATED, Json(view(endpoint, new.secret))))
}

/// One endpoint.
#[utoipa::path(
    get,
    path = "/api/v1/endpoints/{id}",
    operation_id = "get_endpoint",
    tag = "endpoints",
    params(("id" = i64, Path, description = "Endpoint id")),
    responses(
        (status = 200, description = "The endpoint", body = EndpointView),
        (status = 400, description = "A bad id", body = ErrorBody),
        (status = 404, description = "No such endpoint", body = ErrorBody),
    )
)]
async fn show(
    _token: ApiToken,
    State(state): State<AppState>,
    path: Result<Path<i64>, PathRejection>,
) -> Result<Json<EndpointView>, ApiError> {
    let id = path_of(path)?;
    let endpoint = endpoints::get(&state.pool, id)
        .await?
        .ok_or_else(|| not_found(id))?;
    Ok(Json(view(endpoint, None)))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct EndpointChangeBody {
    url: Option<String>,
    /// A new `whsec_…` secret; the previous one stays valid beside it (rotation).
    secret: Option<String>,
    /// `true`: generate a new secret (shown in this answer only).
    #[serde(default)]
    rotate_secret: bool,
    action: Option<String>,
    incident_kinds: Option<Vec<String>>,
    services: Option<Vec<String>>,
    order: Option<i32>,
    cooldown_minutes: Option<i32>,
    events: Option<Vec<String>>,
    addresses: Option<Vec<String>>,
    /// `true` re-enables an endpoint (and closes its breaker); `false` pauses it.
    enabled: Option<bool>,
}

/// Change an endpoint.
#[utoipa::path(
    patch,
    path = "/api/v1/endpoints/{id}",
    operation_id = "update_endpoint",
    tag = "endpoints",
    params(("id" = i64, Path, description = "Endpoint id")),
    request_body = EndpointChangeBody,
    responses(
        (status = 200, description = "The changed endpoint (with the new secret if one was set)", body = EndpointView),
        (status = 400, description = "A bad id or body", body = ErrorBody),
        (status = 404, description = "No such endpoint", body = ErrorBody),
        (status = 422, description = "A change its kind does not take, or a bad value", body = ErrorBody),
    )
)]
async fn update(
    _token: ApiToken,
    State(state): State<AppState>,
    path: Result<Path<i64>, PathRejection>,
    body: Result<Json<EndpointChangeBody>, JsonRejection>,
) -> Result<Json<EndpointView>, ApiError> {
    let id = path_of(path)?;
    let body = body_of(body)?;
    let endpoint = endpoints::get(&state.pool, id)
        .await?
        .ok_or_else(|| not_found(id))?;
    let change = EndpointChange {
        url: body.url,
        secret: body.secret,
        action: body.action,
        incident_kinds: body.incident_kinds,
        services: body.services,
        order: body.order,
        cooldown_minutes: body.cooldown_minutes,
        events: body.events,
        addresses: body.addresses,
        enabled: body.enabled,
    };
    let guard = guard(&state)?;
    let change = endpoint_spec::validate_change(
        &endpoint,
        change,
        body.rotate_secret,
        &guard,
        &Kind::names(),
    )
    .await
    .map_err(|e| ApiError::unprocessable(e.0))?;
    let updated = endpoints::update(&state.pool, id, &change)
        .await?
        .ok_or_else(|| not_found(id))?;
    Ok(Json(view(updated, change.secret)))
}

/// Delete an endpoint with its deliveries.
#[utoipa::path(
    delete,
    path = "/api/v1/endpoints/{id}",
    operation_id = "delete_endpoint",
    tag = "endpoints",
    params(("id" = i64, Path, description = "Endpoint id")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 400, description = "A bad id", body = ErrorBody),
        (status = 404, description = "No such endpoint", body = ErrorBody),
    )
)]
async fn remove(
    _token: ApiToken,
    State(state): State<AppState>,
    path: Result<Path<i64>, PathRejection>,
) -> Result<StatusCode, ApiError> {
    let id = path_of(path)?;
    removed(endpoints::delete(&state.pool, id).await?, || not_found(id))
}
