//! `GET /api/v1/deliveries`, `GET /api/v1/deliveries/{id}`,
//! `POST /api/v1/deliveries/{id}/redeliver`: every message sent (or being sent) to an
//! endpoint, with its attempts, the receiver's last status and the start of its answer; a
//! dead one can be sent again (same `webhook-id`, so receivers that deduplicate still do).

use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::Json;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::auth::ApiToken;
use super::input::path_of;
use super::input::project_filter;
use super::pagination::{self, Page};
use crate::http::error::{ApiError, ErrorBody};
use crate::http::AppState;
use crate::model::{IncidentId, ProjectId};
use crate::store::deliveries::{self, Delivery, DeliveryFilter};

const STATUSES: [&str; 5] = ["pending", "delivered", "dead", "expired", "skipped"];
const KINDS: [&str; 3] = ["recovery", "webhook", "email"];

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list))
        .routes(routes!(show))
        .routes(routes!(redeliver))
}

/// A delivery as the API shows it.
#[derive(Serialize, ToSchema)]
struct DeliveryView {
    id: i64,
    endpoint_id: i64,
    project_id: i64,
    incident_id: Option<i64>,
    /// The endpoint's kind: `recovery`, `webhook` or `email`.
    kind: String,
    /// `recovery.requested`, `incident.opened`, …
    topic: String,
    action: Option<String>,
    /// The `webhook-id` (and `Idempotency-Key`) every attempt carries.
    message_id: String,
    /// `pending`, `delivered`, `dead`, `expired` or `skipped`.
    status: String,
    attempts: i32,
    next_attempt_at: Option<DateTime<Utc>>,
    expires_at: Option<DateTime<Utc>>,
    /// The receiver's last HTTP status.
    last_status: Option<i32>,
    last_error: Option<String>,
    /// The start of the receiver's last answer.
    response_excerpt: Option<String>,
    created_at: DateTime<Utc>,
    delivered_at: Option<DateTime<Utc>>,
    /// The body sent.
    #[schema(value_type = Object)]
    payload: serde_json::Value,
}

fn view(d: Delivery) -> DeliveryView {
    DeliveryView {
        next_attempt_at: (d.status == "pending").then_some(d.next_attempt_at),
        id: d.id,
        endpoint_id: d.endpoint_id,
        project_id: d.project_id.get(),
        incident_id: d.incident_id.map(IncidentId::get),
        kind: d.kind,
        topic: d.topic,
        action: d.action,
        message_id: d.message_id,
        status: d.status,
        attempts: d.attempts,
        expires_at: d.expires_at,
        last_status: d.last_status,
        last_error: d.last_error,
        response_excerpt: d.response_excerpt,
        created_at: d.created_at,
        delivered_at: d.delivered_at,
        payload: d.payload,
    }
}

fn not_found(id: i64) -> ApiError {
    ApiError::not_found(format!("delivery {id}"))
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct ListQuery {
    #[param(value_type = Option<i64>)]
    project: Option<ProjectId>,
    endpoint: Option<i64>,
    #[param(value_type = Option<i64>)]
    incident: Option<IncidentId>,
    /// `pending`, `delivered`, `dead`, `expired` or `skipped`.
    status: Option<String>,
    /// `recovery`, `webhook` or `email`.
    kind: Option<String>,
    /// The `next_cursor` of the previous page.
    cursor: Option<String>,
    /// Deliveries per page, 1 to 100 (default 25).
    limit: Option<i64>,
}

/// Deliveries, newest first.
#[utoipa::path(
    get,
    path = "/api/v1/deliveries",
    operation_id = "list_deliveries",
    tag = "deliveries",
    params(ListQuery),
    responses(
        (status = 200, description = "A page of deliveries", body = Page<DeliveryView>),
        (status = 400, description = "A bad filter or cursor", body = ErrorBody),
        (status = 404, description = "No such project", body = ErrorBody),
    )
)]
async fn list(
    _token: ApiToken,
    State(state): State<AppState>,
    query: Result<Query<ListQuery>, QueryRejection>,
) -> Result<Json<Page<DeliveryView>>, ApiError> {
    let Query(query) = query.map_err(|e| ApiError::bad_request(e.body_text()))?;
    pagination::one_of("status", query.status.as_deref(), &STATUSES)?;
    pagination::one_of("kind", query.kind.as_deref(), &KINDS)?;
    project_filter(&state.pool, query.project).await?;
    let filter = DeliveryFilter {
        project_id: query.project,
        endpoint_id: query.endpoint,
        incident_id: query.incident,
        status: query.status,
        kind: query.kind,
        before_id: pagination::id_cursor(query.cursor.as_deref())?,
        limit: pagination::limit(query.limit)?,
    };
    let found = deliveries::list(&state.pool, &filter).await?;
    let page = pagination::page(found, filter.limit, |d| d.id.to_string());
    Ok(Json(Page {
        items: page.items.into_iter().map(view).collect(),
        next_cursor: page.next_cursor,
    }))
}

/// One delivery.
#[utoipa::path(
    get,
    path = "/api/v1/deliveries/{id}",
    operation_id = "get_delivery",
    tag = "deliveries",
    params(("id" = i64, Path, description = "Delivery id")),
    responses(
        (status = 200, description = "The delivery", body = DeliveryView),
        (status = 400, description = "A bad id", body = ErrorBody),
        (status = 404, description = "No such delivery", body = ErrorBody),
    )
)]
async fn show(
    _token: ApiToken,
    State(state): State<AppState>,
    path: Result<Path<i64>, PathRejection>,
) -> Result<Json<DeliveryView>, ApiError> {
    let id = path_of(path)?;
    let delivery = deliveries::get(&state.pool, id)
        .await?
        .ok_or_else(|| not_found(id))?;
    Ok(Json(view(delivery)))
}

/// Send a delivery again now.
///
/// Its attempts start over, with the same `webhook-id`; a recovery action gets a fresh
/// deadline.
#[utoipa::path(
    post,
    path = "/api/v1/deliveries/{id}/redeliver",
    operation_id = "redeliver",
    tag = "deliveries",
    params(("id" = i64, Path, description = "Delivery id")),
    responses(
        (status = 200, description = "The delivery, pending again", body = DeliveryView),
        (status = 400, description = "A bad id", body = ErrorBody),
        (status = 404, description = "No such delivery", body = ErrorBody),
    )
)]
async fn redeliver(
    _token: ApiToken,
    State(state): State<AppState>,
    path: Result<Path<i64>, PathRejection>,
) -> Result<Json<DeliveryView>, ApiError> {
    let id = path_of(path)?;
    let expiry = chrono::TimeDelta::minutes(state.config.recovery_expire_minutes as i64);
    let delivery = deliveries::redeliver(&state.pool, id, Utc::now() + expiry)
        .await?
        .ok_or_else(|| not_found(id))?;
    Ok(Json(view(delivery)))
}
