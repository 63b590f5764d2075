//! `GET /api/v1/incidents`, `GET /api/v1/incidents/{id}` (with its history),
//! `PATCH /api/v1/incidents/{id}` (acknowledge, resolve, or label) and `POST /api/v1/incidents`
//! (a fault Seismo missed). Incidents have the shape of DESIGN.md §3.5 plus
//! `acknowledged_at`; resolving follows the lifecycle of `detect::incidents` and queues its
//! webhook in the same transaction.

use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::Json;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sqlx::PgPool;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::auth::ApiToken;
use super::input::{check_text, path_of};
use super::openapi::{described, one_of, one_of_or_null};
use super::pagination::{self, Page};
use crate::http::error::{ApiError, ErrorBody};
use crate::http::AppState;
use crate::model::incident::message;
use crate::model::{Incident, IncidentId, Kind, ProjectId, State as Lifecycle};
use crate::store::incidents::{self, IncidentFilter, MissedFault, Transition};
use crate::store::{projects, recovery, StoreError};

const SCOPES: [&str; 3] = ["project", "service", "issue"];
const LABELS: [&str; 3] = ["true_positive", "false_positive", "missed"];

/// A note on a missed fault is for people; this keeps it a note.
const MAX_NOTE_CHARS: usize = 4_000;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list, report_missed))
        .routes(routes!(show, update))
}

/// The incident as the API shows it: the webhook's shape (`model::incident::to_json`, a
/// unit test keeps the two equal) plus `acknowledged_at` and the silence it opened under.
#[derive(Serialize, ToSchema)]
#[schema(as = Incident)]
struct IncidentView {
    id: i64,
    project_id: i64,
    /// The kind of finding that opened it.
    #[schema(schema_with = kind_schema)]
    kind: String,
    /// Every kind of finding on its series while it was active, `kind` first: a later,
    /// different finding is added here (and announced as `incident.updated`).
    #[schema(schema_with = kinds_schema)]
    kinds: Vec<String>,
    series: SeriesView,
    #[schema(schema_with = state_schema)]
    state: String,
    opened_at: DateTime<Utc>,
    resolved_at: Option<DateTime<Utc>>,
    /// How far the series strayed (the detector's score).
    score: f64,
    /// `true_positive`, `false_positive` (set by people) or `missed` (a reported fault).
    #[schema(schema_with = label_schema)]
    label: Option<String>,
    /// What the detector saw; a missed fault's `note`.
    #[schema(value_type = Object)]
    details: Value,
    /// Recovery actions asked for it (in the answer for one incident; lists leave it
    /// empty): `{"endpoint_id", "action", "delivery_status", "verified", "outcome"}`, where
    /// `verified` is true when the series got back to its baseline, false when it did not,
    /// `null` while it is being watched.
    #[schema(value_type = Vec<Object>)]
    actions: Vec<Value>,
    /// When a person first acknowledged it.
    acknowledged_at: Option<DateTime<Utc>>,
    /// The silence it opened under: recorded, never announced (`null` when announced).
    silence_id: Option<i64>,
}

/// The series the incident is about: a whole project, one service, or one issue.
#[derive(Serialize, ToSchema)]
#[schema(as = IncidentSeries)]
struct SeriesView {
    #[schema(schema_with = scope_schema)]
    scope: String,
    /// With scope `service`.
    service: Option<String>,
    /// With scope `issue`.
    issue_id: Option<i64>,
}

/// An incident with its history, oldest change first.
#[derive(Serialize, ToSchema)]
#[schema(as = IncidentWithHistory)]
struct IncidentDetail {
    #[serde(flatten)]
    incident: IncidentView,
    history: Vec<TransitionView>,
}

/// One change of an incident's state.
#[derive(Serialize, ToSchema)]
#[schema(as = Transition)]
struct TransitionView {
    at: DateTime<Utc>,
    from_state: Option<String>,
    to_state: String,
    reason: String,
}

impl From<Transition> for TransitionView {
    fn from(transition: Transition) -> TransitionView {
        TransitionView {
            at: transition.at,
            from_state: transition.from_state,
            to_state: transition.to_state,
            reason: transition.reason,
        }
    }
}

fn kind_schema() -> utoipa::openapi::Object {
    one_of(&Kind::names())
}

fn kinds_schema() -> utoipa::openapi::schema::Array {
    utoipa::openapi::schema::Array::new(kind_schema())
}

fn state_schema() -> utoipa::openapi::Object {
    one_of(&Lifecycle::names())
}

fn scope_schema() -> utoipa::openapi::Object {
    one_of(&SCOPES)
}

fn state_filter_schema() -> utoipa::openapi::Object {
    described(state_schema(), "Only incidents in this state.")
}

fn kind_filter_schema() -> utoipa::openapi::Object {
    described(kind_schema(), "Only incidents with a finding of this kind.")
}

fn label_schema() -> utoipa::openapi::Object {
    one_of_or_null(&LABELS)
}

impl From<&Incident> for IncidentView {
    fn from(incident: &Incident) -> IncidentView {
        let (scope, service, issue_id) = incident.series.columns();
        IncidentView {
            id: incident.id.get(),
            project_id: incident.project_id.get(),
            kind: incident.kind.as_str().to_owned(),
            kinds: incident
                .kinds
                .iter()
                .map(|k| k.as_str().to_owned())
                .collect(),
            series: SeriesView {
                scope: scope.to_owned(),
                service: (scope == "service").then(|| service.to_owned()),
                issue_id: (scope == "issue").then_some(issue_id),
            },
            state: incident.state.as_str().to_owned(),
            opened_at: incident.opened_at,
            resolved_at: incident.resolved_at,
            score: incident.score,
            label: incident.label.clone(),
            details: incident.details.clone(),
            actions: Vec::new(),
            acknowledged_at: incident.acknowledged_at,
            silence_id: incident.silence_id,
        }
    }
}

fn not_found(id: IncidentId) -> ApiError {
    ApiError::not_found(format!("incident {id}"))
}

fn invalid_transition(message: String) -> ApiError {
    ApiError::new(StatusCode::CONFLICT, "invalid_transition", message)
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct ListQuery {
    /// Only this project's incidents.
    #[param(value_type = Option<i64>)]
    project: Option<ProjectId>,
    #[param(schema_with = state_filter_schema)]
    state: Option<String>,
    #[param(schema_with = kind_filter_schema)]
    kind: Option<String>,
    /// The `next_cursor` of the previous page.
    cursor: Option<String>,
    /// Incidents per page, 1 to 100 (default 25).
    limit: Option<i64>,
}

/// Incidents, newest first.
#[utoipa::path(
    get,
    path = "/api/v1/incidents",
    operation_id = "list_incidents",
    tag = "incidents",
    params(ListQuery),
    responses(
        (status = 200, description = "A page of incidents", body = Page<IncidentView>),
        (status = 400, description = "A bad filter, limit or cursor", body = ErrorBody),
        (status = 404, description = "No such project", body = ErrorBody),
    )
)]
async fn list(
    _token: ApiToken,
    State(state): State<AppState>,
    query: Result<Query<ListQuery>, QueryRejection>,
) -> Result<Json<Page<IncidentView>>, ApiError> {
    let Query(query) = query.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let filter = filter(query)?;
    if let Some(project_id) = filter.project_id {
        if !projects::exists(&state.pool, project_id).await? {
            return Err(ApiError::not_found(format!("project {project_id}")));
        }
    }
    let found = incidents::page(&state.pool, &filter).await?;
    let page = pagination::page(found, filter.limit, |incident| {
        format!("{}|{}", incident.opened_at.to_rfc3339(), incident.id)
    });
    Ok(Json(Page {
        items: page.items.iter().map(IncidentView::from).collect(),
        next_cursor: page.next_cursor,
    }))
}

fn filter(query: ListQuery) -> Result<IncidentFilter, ApiError> {
    let given = |text: Option<String>| text.filter(|t| !t.is_empty());
    let state = given(query.state)
        .map(|s| match Lifecycle::parse(&s) {
            Some(_) => Ok(s),
            None => Err(ApiError::bad_request(format!(
                "unknown state {s:?} (open, recovering, resolved or escalated)"
            ))),
        })
        .transpose()?;
    let kind = given(query.kind)
        .map(|k| match Kind::parse(&k) {
            Some(_) => Ok(k),
            None => Err(ApiError::bad_request(format!(
                "unknown kind {k:?} (new_issue, regression, threshold, anomaly or error_rate)"
            ))),
        })
        .transpose()?;
    let after = given(query.cursor).map(|c| parse_cursor(&c)).transpose()?;
    Ok(IncidentFilter {
        project_id: query.project,
        state,
        kind,
        after,
        limit: pagination::limit(query.limit)?,
    })
}

fn parse_cursor(cursor: &str) -> Result<(DateTime<Utc>, IncidentId), ApiError> {
    let text = pagination::decode(cursor)?;
    let invalid = || ApiError::bad_request("cursor is not an incident cursor");
    let (at, id) = text.split_once('|').ok_or_else(invalid)?;
    let at = DateTime::parse_from_rfc3339(at).map_err(|_| invalid())?;
    let id = IncidentId(id.parse().map_err(|_| invalid())?);
    Ok((at.with_timezone(&Utc), id))
}

/// One incident with its history.
#[utoipa::path(
    get,
    path = "/api/v1/incidents/{id}",
    operation_id = "get_incident",
    tag = "incidents",
    params(("id" = i64, Path, description = "Incident id")),
    responses(
        (status = 200, description = "The incident and its history", body = IncidentDetail),
        (status = 400, description = "A bad id", body = ErrorBody),
        (status = 404, description = "No such incident", body = ErrorBody),
    )
)]
async fn show(
    _token: ApiToken,
    State(state): State<AppState>,
    path: Result<Path<IncidentId>, PathRejection>,
) -> Result<Json<IncidentDetail>, ApiError> {
    let id = path_of(path)?;
    let incident = incidents::get(&state.pool, id)
        .await?
        .ok_or_else(|| not_found(id))?;
    let history = incidents::history(&state.pool, id).await?;
    let mut view = IncidentView::from(&incident);
    view.actions = recovery::summary(&state.pool, id)
        .await?
        .into_iter()
        .map(|a| {
            serde_json::json!({"endpoint_id": a.endpoint_id, "action": a.action,
                "delivery_status": a.delivery_status,
                "verified": a.outcome.as_deref().map(|o| o == "succeeded"), "outcome": a.outcome})
        })
        .collect();
    Ok(Json(IncidentDetail {
        incident: view,
        history: history.into_iter().map(TransitionView::from).collect(),
    }))
}

/// Exactly one of `action` and `label`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct IncidentUpdate {
    #[schema(schema_with = action_schema)]
    action: Option<String>,
    /// Whether the incident was a real fault (what `GET /api/v1/stats` counts).
    #[schema(schema_with = update_label_schema)]
    label: Option<String>,
}

fn action_schema() -> utoipa::openapi::Object {
    one_of_or_null(&["acknowledge", "resolve"])
}

fn update_label_schema() -> utoipa::openapi::Object {
    one_of_or_null(&["true_positive", "false_positive"])
}

enum Change {
    Acknowledge,
    Resolve,
    Label(&'static str),
}

fn change(update: IncidentUpdate) -> Result<Change, ApiError> {
    match (update.action.as_deref(), update.label.as_deref()) {
        (Some("acknowledge"), None) => Ok(Change::Acknowledge),
        (Some("resolve"), None) => Ok(Change::Resolve),
        (None, Some("true_positive")) => Ok(Change::Label("true_positive")),
        (None, Some("false_positive")) => Ok(Change::Label("false_positive")),
        (Some(_), Some(_)) | (None, None) => Err(ApiError::unprocessable(
            "send exactly one of action or label",
        )),
        (Some(other), None) => Err(ApiError::unprocessable(format!(
            "unknown action {other:?} (acknowledge or resolve)"
        ))),
        (None, Some(other)) => Err(ApiError::unprocessable(format!(
            "label {other:?} cannot be set here (true_positive or false_positive; \
             report a missed fault with POST /api/v1/incidents)"
        ))),
    }
}

/// Acknowledge, resolve or label an incident.
///
/// Resolving queues its `incident.resolved` webhook in the same transaction.
#[utoipa::path(
    patch,
    path = "/api/v1/incidents/{id}",
    operation_id = "update_incident",
    tag = "incidents",
    params(("id" = i64, Path, description = "Incident id")),
    request_body = IncidentUpdate,
    responses(
        (status = 200, description = "The changed incident", body = IncidentView),
        (status = 400, description = "A bad id or body", body = ErrorBody),
        (status = 404, description = "No such incident", body = ErrorBody),
        (status = 409, description = "The lifecycle does not allow it (code `invalid_transition`)", body = ErrorBody),
        (status = 422, description = "Not exactly one known action or label", body = ErrorBody),
    )
)]
async fn update(
    token: ApiToken,
    State(state): State<AppState>,
    path: Result<Path<IncidentId>, PathRejection>,
    body: Result<Json<IncidentUpdate>, JsonRejection>,
) -> Result<Json<IncidentView>, ApiError> {
    let id = path_of(path)?;
    let Json(update) = body.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let incident = match change(update)? {
        Change::Acknowledge => acknowledge(&state.pool, id).await?,
        Change::Resolve => resolve(&state.pool, id, token.id).await?,
        Change::Label(label) => incidents::set_label(&state.pool, id, label)
            .await?
            .ok_or_else(|| not_found(id))?,
    };
    Ok(Json(IncidentView::from(&incident)))
}

/// Someone is on it: only an active incident can be acknowledged.
async fn acknowledge(pool: &PgPool, id: IncidentId) -> Result<Incident, ApiError> {
    let mut tx = pool.begin().await.map_err(StoreError::from)?;
    let current = incidents::lock(&mut tx, id)
        .await?
        .ok_or_else(|| not_found(id))?;
    if current.state == Lifecycle::Resolved {
        return Err(invalid_transition(format!(
            "incident {id} is resolved; only an active incident can be acknowledged"
        )));
    }
    let acknowledged = incidents::acknowledge(&mut tx, id, Utc::now())
        .await?
        .ok_or_else(|| not_found(id))?;
    tx.commit().await.map_err(StoreError::from)?;
    Ok(acknowledged)
}

/// A person resolves the incident: the transition, its history row and the
/// `incident.resolved` outbox row commit together or not at all.
async fn resolve(pool: &PgPool, id: IncidentId, token_id: i64) -> Result<Incident, ApiError> {
    let to = Lifecycle::Resolved;
    let mut tx = pool.begin().await.map_err(StoreError::from)?;
    let current = incidents::lock(&mut tx, id)
        .await?
        .ok_or_else(|| not_found(id))?;
    let refused = || {
        invalid_transition(format!(
            "incident {id} is {} and cannot become {}",
            current.state.as_str(),
            to.as_str()
        ))
    };
    if !current.state.can_become(to) {
        return Err(refused());
    }
    let now = Utc::now();
    let reason = format!("resolved through the API (token {token_id})");
    let resolved = incidents::transition(&mut tx, id, to, &reason, now)
        .await?
        .ok_or_else(refused)?;
    // A silenced incident was never announced, so neither is its resolution.
    if resolved.silence_id.is_none() {
        let body = message(to.topic(), now, &resolved);
        incidents::enqueue(&mut tx, resolved.project_id, Some(id), to.topic(), &body).await?;
    }
    tx.commit().await.map_err(StoreError::from)?;
    Ok(resolved)
}

/// A fault people saw that Seismo never flagged.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct MissedReport {
    #[schema(value_type = i64)]
    project_id: ProjectId,
    #[schema(schema_with = missed_label_schema)]
    label: String,
    /// When the fault began (default: now); not in the future.
    opened_at: Option<DateTime<Utc>>,
    /// At most 4000 characters.
    note: Option<String>,
}

fn missed_label_schema() -> utoipa::openapi::Object {
    one_of(&["missed"])
}

fn missed_fault(report: MissedReport, now: DateTime<Utc>) -> Result<MissedFault, ApiError> {
    if report.label != "missed" {
        return Err(ApiError::unprocessable(format!(
            "label {:?} cannot be reported: only missed faults are (label missed)",
            report.label
        )));
    }
    let opened_at = report.opened_at.unwrap_or(now);
    if opened_at > now {
        return Err(ApiError::unprocessable("opened_at is in the future"));
    }
    if let Some(note) = &report.note {
        check_text("note", note, 0, MAX_NOTE_CHARS)?;
    }
    Ok(MissedFault {
        project_id: report.project_id,
        opened_at,
        reported_at: now,
        note: report.note,
    })
}

/// Report a missed fault.
///
/// It is listed as a resolved incident labelled `missed`, and counts against P_detect.
#[utoipa::path(
    post,
    path = "/api/v1/incidents",
    operation_id = "report_missed_fault",
    tag = "incidents",
    request_body = MissedReport,
    responses(
        (status = 201, description = "The recorded incident", body = IncidentView),
        (status = 400, description = "A bad body", body = ErrorBody),
        (status = 404, description = "No such project", body = ErrorBody),
        (status = 422, description = "A label other than `missed`, a future time, or a note too long", body = ErrorBody),
    )
)]
async fn report_missed(
    _token: ApiToken,
    State(state): State<AppState>,
    body: Result<Json<MissedReport>, JsonRejection>,
) -> Result<(StatusCode, Json<IncidentView>), ApiError> {
    let Json(report) = body.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let missed = missed_fault(report, Utc::now())?;
    if !projects::exists(&state.pool, missed.project_id).await? {
        return Err(ApiError::not_found(format!(
            "project {}",
            missed.project_id
        )));
    }
    let mut tx = state.pool.begin().await.map_err(StoreError::from)?;
    let incident = incidents::record_missed(&mut tx, &missed).await?;
    tx.commit().await.map_err(StoreError::from)?;
    Ok((StatusCode::CREATED, Json(IncidentView::from(&incident))))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::incident::to_json;
    use crate::model::Scope;

    fn incident(scope: &str) -> Incident {
        let series = Scope::from_columns(scope, "checkout".to_owned(), 3).expect("a scope");
        Incident {
            id: IncidentId(7),
            project_id: ProjectId(1),
            kind: Kind::Anomaly,
            series,
            state: Lifecycle::Open,
            opened_at: Utc::now(),
            updated_at: Utc::now(),
            resolved_at: None,
            score: 0.5,
            label: Some("true_positive".to_owned()),
            calm_buckets: 0,
            details: serde_json::json!({"z": 4.2}),
            acknowledged_at: Some(Utc::now()),
            silence_id: Some(9),
            kinds: vec![Kind::Anomaly, Kind::ErrorRate],
        }
    }

    #[test]
    fn the_api_shows_incidents_as_webhooks_do_plus_acknowledgement_and_silence() {
        for scope in SCOPES {
            let incident = incident(scope);
            let mut api = serde_json::to_value(IncidentView::from(&incident)).expect("json");
            let acknowledged = api
                .as_object_mut()
                .and_then(|fields| fields.remove("acknowledged_at"));
            assert_eq!(
                acknowledged,
                Some(serde_json::json!(incident.acknowledged_at))
            );
            let silence = api
                .as_object_mut()
                .and_then(|fields| fields.remove("silence_id"));
            assert_eq!(silence, Some(serde_json::json!(9)));
            assert_eq!(api, to_json(&incident), "scope {scope}");
        }
    }
}
