//! `GET /api/v1/incidents`, `GET /api/v1/incidents/{id}` (with its history),
//! `PATCH /api/v1/incidents/{id}` (acknowledge, resolve, or label) and `POST /api/v1/incidents`
//! (a fault Seismo missed). Incidents have the shape of DESIGN.md §3.5 plus
//! `acknowledged_at`; resolving follows the lifecycle of `detect::incidents` and queues its
//! webhook in the same transaction.

use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::{json, Value};
use sqlx::PgPool;

use super::auth::ApiToken;
use super::pagination::{self, Page};
use crate::detect::incidents as lifecycle;
use crate::http::error::ApiError;
use crate::http::AppState;
use crate::store::incidents::{self, Incident, IncidentFilter, MissedFault};
use crate::store::{projects, StoreError};

const KINDS: [&str; 5] = [
    "new_issue",
    "regression",
    "threshold",
    "anomaly",
    "error_rate",
];

/// A note on a missed fault is for people; this keeps it a note.
const MAX_NOTE_CHARS: usize = 4_000;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/v1/incidents", get(list).post(report_missed))
        .route("/api/v1/incidents/{id}", get(show).patch(update))
}

/// The incident as the API shows it: the webhook shape plus `acknowledged_at` and the
/// silence it opened under (`null` when it was announced).
fn view(incident: &Incident) -> Value {
    let mut json = lifecycle::to_json(incident);
    json["acknowledged_at"] = json!(incident.acknowledged_at);
    json["silence_id"] = json!(incident.silence_id);
    json
}

fn not_found(id: i64) -> ApiError {
    ApiError::not_found(format!("incident {id}"))
}

fn invalid_transition(message: String) -> ApiError {
    ApiError::new(StatusCode::CONFLICT, "invalid_transition", message)
}

fn incident_id(path: Result<Path<i64>, PathRejection>) -> Result<i64, ApiError> {
    path.map(|Path(id)| id)
        .map_err(|e| ApiError::bad_request(e.body_text()))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ListQuery {
    project: Option<i64>,
    state: Option<String>,
    kind: Option<String>,
    cursor: Option<String>,
    limit: Option<i64>,
}

async fn list(
    _token: ApiToken,
    State(state): State<AppState>,
    query: Result<Query<ListQuery>, QueryRejection>,
) -> Result<Json<Page<Value>>, ApiError> {
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
        items: page.items.iter().map(view).collect(),
        next_cursor: page.next_cursor,
    }))
}

fn filter(query: ListQuery) -> Result<IncidentFilter, ApiError> {
    let given = |text: Option<String>| text.filter(|t| !t.is_empty());
    let state = given(query.state)
        .map(|s| match lifecycle::State::parse(&s) {
            Some(_) => Ok(s),
            None => Err(ApiError::bad_request(format!(
                "unknown state {s:?} (open, recovering, resolved or escalated)"
            ))),
        })
        .transpose()?;
    let kind = given(query.kind)
        .map(|k| {
            if KINDS.contains(&k.as_str()) {
                Ok(k)
            } else {
                Err(ApiError::bad_request(format!(
                    "unknown kind {k:?} (new_issue, regression, threshold, anomaly or error_rate)"
                )))
            }
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

fn parse_cursor(cursor: &str) -> Result<(DateTime<Utc>, i64), ApiError> {
    let text = pagination::decode(cursor)?;
    let invalid = || ApiError::bad_request("cursor is not an incident cursor");
    let (at, id) = text.split_once('|').ok_or_else(invalid)?;
    let at = DateTime::parse_from_rfc3339(at).map_err(|_| invalid())?;
    Ok((at.with_timezone(&Utc), id.parse().map_err(|_| invalid())?))
}

async fn show(
    _token: ApiToken,
    State(state): State<AppState>,
    path: Result<Path<i64>, PathRejection>,
) -> Result<Json<Value>, ApiError> {
    let id = incident_id(path)?;
    let incident = incidents::get(&state.pool, id)
        .await?
        .ok_or_else(|| not_found(id))?;
    let history = incidents::history(&state.pool, id).await?;
    let mut json = view(&incident);
    json["history"] = json!(history);
    Ok(Json(json))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct IncidentUpdate {
    action: Option<String>,
    label: Option<String>,
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

async fn update(
    token: ApiToken,
    State(state): State<AppState>,
    path: Result<Path<i64>, PathRejection>,
    body: Result<Json<IncidentUpdate>, JsonRejection>,
) -> Result<Json<Value>, ApiError> {
    let id = incident_id(path)?;
    let Json(update) = body.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let incident = match change(update)? {
        Change::Acknowledge => acknowledge(&state.pool, id).await?,
        Change::Resolve => resolve(&state.pool, id, token.id).await?,
        Change::Label(label) => incidents::set_label(&state.pool, id, label)
            .await?
            .ok_or_else(|| not_found(id))?,
    };
    Ok(Json(view(&incident)))
}

/// Someone is on it: only an active incident can be acknowledged.
async fn acknowledge(pool: &PgPool, id: i64) -> Result<Incident, ApiError> {
    let mut tx = pool.begin().await.map_err(StoreError::from)?;
    let current = incidents::lock(&mut tx, id)
        .await?
        .ok_or_else(|| not_found(id))?;
    if current.state == lifecycle::State::Resolved.as_str() {
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
async fn resolve(pool: &PgPool, id: i64, token_id: i64) -> Result<Incident, ApiError> {
    let to = lifecycle::State::Resolved;
    let mut tx = pool.begin().await.map_err(StoreError::from)?;
    let current = incidents::lock(&mut tx, id)
        .await?
        .ok_or_else(|| not_found(id))?;
    let refused = || {
        invalid_transition(format!(
            "incident {id} is {} and cannot become {}",
            current.state,
            to.as_str()
        ))
    };
    if !lifecycle::State::parse(&current.state).is_some_and(|from| from.can_become(to)) {
        return Err(refused());
    }
    let now = Utc::now();
    let reason = format!("resolved through the API (token {token_id})");
    let resolved = incidents::transition(&mut tx, id, to.as_str(), &reason, now)
        .await?
        .ok_or_else(refused)?;
    // A silenced incident was never announced, so neither is its resolution.
    if resolved.silence_id.is_none() {
        let body = lifecycle::message(to.topic(), now, &resolved);
        incidents::enqueue(&mut tx, resolved.project_id, Some(id), to.topic(), &body).await?;
    }
    tx.commit().await.map_err(StoreError::from)?;
    Ok(resolved)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct MissedReport {
    project_id: i64,
    label: String,
    opened_at: Option<DateTime<Utc>>,
    note: Option<String>,
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
        if note.chars().count() > MAX_NOTE_CHARS || note.contains('\0') {
            return Err(ApiError::unprocessable(format!(
                "note must be text of at most {MAX_NOTE_CHARS} characters"
            )));
        }
    }
    Ok(MissedFault {
        project_id: report.project_id,
        opened_at,
        reported_at: now,
        note: report.note,
    })
}

async fn report_missed(
    _token: ApiToken,
    State(state): State<AppState>,
    body: Result<Json<MissedReport>, JsonRejection>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
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
    Ok((StatusCode::CREATED, Json(view(&incident))))
}
