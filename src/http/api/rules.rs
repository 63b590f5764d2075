//! `GET|POST /api/v1/projects/{id}/rules`, `GET|PATCH|DELETE /api/v1/rules/{id}`: what may
//! open an incident in a project. Which fields go with which kind is decided here, once, and
//! refused with a 422 naming the reason: a threshold rule counts events (`threshold` in
//! `window_minutes`), anomaly and error-rate rules have a `sensitivity`, new-issue and
//! regression rules have neither.

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
use super::input::{path_of, removed};
use super::openapi::{one_of, one_of_or_null};
use super::pagination::Page;
use crate::http::error::{ApiError, ErrorBody};
use crate::http::AppState;
use crate::model::{Kind, ProjectId};
use crate::store::projects;
use crate::store::rules::{self, NewRule, Rule, RuleChange};

const SCOPES: [&str; 3] = ["project", "service", "issue"];
const SENSITIVITIES: [&str; 3] = ["low", "medium", "high"];
/// A threshold window longer than a day is a report, not an alert.
const MAX_WINDOW_MINUTES: i32 = 1440;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list, create))
        .routes(routes!(show, update, remove))
}

/// A detection rule: what may open an incident in a project.
#[derive(Serialize, ToSchema)]
#[schema(as = Rule)]
struct RuleView {
    id: i64,
    project_id: i64,
    #[schema(schema_with = kind_schema)]
    kind: String,
    enabled: bool,
    #[schema(schema_with = scope_schema)]
    scope: String,
    /// Events in `window_minutes` (threshold rules only).
    threshold: Option<i64>,
    window_minutes: Option<i32>,
    /// `low`, `medium` or `high` (anomaly and error-rate rules only).
    #[schema(schema_with = sensitivity_or_null_schema)]
    sensitivity: Option<String>,
    created_at: DateTime<Utc>,
}

/// The rule as the API shows it; `sensitivity` only where the kind reads it.
fn view(rule: &Rule) -> RuleView {
    let reads_sensitivity = matches!(rule.kind.as_str(), "anomaly" | "error_rate");
    RuleView {
        id: rule.id,
        project_id: rule.project_id.get(),
        kind: rule.kind.clone(),
        enabled: rule.enabled,
        scope: rule.scope.clone(),
        threshold: rule.threshold,
        window_minutes: rule.window_minutes,
        sensitivity: reads_sensitivity.then(|| rule.sensitivity.clone()),
        created_at: rule.created_at,
    }
}

fn kind_schema() -> utoipa::openapi::Object {
    one_of(&Kind::names())
}

fn scope_schema() -> utoipa::openapi::Object {
    one_of(&SCOPES)
}

fn scope_or_null_schema() -> utoipa::openapi::Object {
    one_of_or_null(&SCOPES)
}

fn sensitivity_or_null_schema() -> utoipa::openapi::Object {
    one_of_or_null(&SENSITIVITIES)
}

fn not_found(id: i64) -> ApiError {
    ApiError::not_found(format!("rule {id}"))
}

async fn project_must_exist(state: &AppState, project_id: ProjectId) -> Result<(), ApiError> {
    if projects::exists(&state.pool, project_id).await? {
        Ok(())
    } else {
        Err(ApiError::not_found(format!("project {project_id}")))
    }
}

/// The fields one request sets on a rule of `kind`.
struct Fields<'a> {
    threshold: Option<i64>,
    window_minutes: Option<i32>,
    sensitivity: Option<&'a str>,
}

fn check(kind: &str, fields: &Fields) -> Result<(), ApiError> {
    let refuse = |message: String| Err(ApiError::unprocessable(message));
    let counts = fields.threshold.is_some() || fields.window_minutes.is_some();
    match kind {
        "threshold" if fields.sensitivity.is_some() => {
            return refuse("a threshold rule takes no sensitivity".into())
        }
        "threshold" => {}
        "anomaly" | "error_rate" if counts => {
            return refuse(format!(
                "an {kind} rule takes no threshold or window_minutes"
            ))
        }
        "anomaly" | "error_rate" => {}
        "new_issue" | "regression" if counts || fields.sensitivity.is_some() => {
            return refuse(format!(
                "a {kind} rule takes no threshold, window_minutes or sensitivity"
            ))
        }
        "new_issue" | "regression" => {}
        other => {
            return refuse(format!(
                "unknown kind {other:?} (new_issue, regression, threshold, anomaly or error_rate)"
            ))
        }
    }
    if fields.threshold.is_some_and(|t| t <= 0) {
        return refuse("threshold must be greater than 0".into());
    }
    if fields
        .window_minutes
        .is_some_and(|w| !(1..=MAX_WINDOW_MINUTES).contains(&w))
    {
        return refuse(format!(
            "window_minutes must be between 1 and {MAX_WINDOW_MINUTES}"
        ));
    }
    match fields.sensitivity {
        Some(s) if !SENSITIVITIES.contains(&s) => {
            refuse(format!("unknown sensitivity {s:?} (low, medium or high)"))
        }
        _ => Ok(()),
    }
}

/// A project's rules (one page: rules are few).
#[utoipa::path(
    get,
    path = "/api/v1/projects/{id}/rules",
    operation_id = "list_rules",
    tag = "rules",
    params(("id" = i64, Path, description = "Project id")),
    responses(
        (status = 200, description = "Every rule of the project", body = Page<RuleView>),
        (status = 400, description = "A bad id", body = ErrorBody),
        (status = 404, description = "No such project", body = ErrorBody),
    )
)]
async fn list(
    _token: ApiToken,
    State(state): State<AppState>,
    path: Result<Path<ProjectId>, PathRejection>,
) -> Result<Json<Page<RuleView>>, ApiError> {
    let project_id = path_of(path)?;
    project_must_exist(&state, project_id).await?;
    let found = rules::list(&state.pool, project_id).await?;
    Ok(Json(Page {
        items: found.iter().map(view).collect(),
        next_cursor: None,
    }))
}

/// A new rule. A threshold rule needs `threshold` and `window_minutes`; anomaly and
/// error-rate rules may have a `sensitivity`; new-issue and regression rules have neither.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct RuleBody {
    #[schema(schema_with = kind_schema)]
    kind: String,
    /// Default `issue`.
    #[schema(schema_with = scope_or_null_schema)]
    scope: Option<String>,
    /// More than 0.
    threshold: Option<i64>,
    /// 1 to 1440.
    window_minutes: Option<i32>,
    /// Default `medium`.
    #[schema(schema_with = sensitivity_or_null_schema)]
    sensitivity: Option<String>,
}

fn new_rule(body: RuleBody) -> Result<NewRule, ApiError> {
    let fields = Fields {
        threshold: body.threshold,
        window_minutes: body.window_minutes,
        sensitivity: body.sensitivity.as_deref(),
    };
    check(&body.kind, &fields)?;
    if body.kind == "threshold" && (body.threshold.is_none() || body.window_minutes.is_none()) {
        return Err(ApiError::unprocessable(
            "a threshold rule needs threshold and window_minutes",
        ));
    }
    let scope = body.scope.unwrap_or_else(|| "issue".to_owned());
    if !SCOPES.contains(&scope.as_str()) {
        return Err(ApiError::unprocessable(format!(
            "unknown scope {scope:?} (project, service or issue)"
        )));
    }
    Ok(NewRule {
        kind: body.kind,
        scope,
        threshold: body.threshold,
        window_minutes: body.window_minutes,
        sensitivity: body.sensitivity.unwrap_or_else(|| "medium".to_owned()),
    })
}

/// Add a rule to a project.
#[utoipa::path(
    post,
    path = "/api/v1/projects/{id}/rules",
    operation_id = "create_rule",
    tag = "rules",
    params(("id" = i64, Path, description = "Project id")),
    request_body = RuleBody,
    responses(
        (status = 201, description = "The new rule", body = RuleView),
        (status = 400, description = "A bad id or body", body = ErrorBody),
        (status = 404, description = "No such project", body = ErrorBody),
        (status = 422, description = "A field the kind does not take, or a value out of range", body = ErrorBody),
    )
)]
async fn create(
    _token: ApiToken,
    State(state): State<AppState>,
    path: Result<Path<ProjectId>, PathRejection>,
    body: Result<Json<RuleBody>, JsonRejection>,
) -> Result<(StatusCode, Json<RuleView>), ApiError> {
    let project_id = path_of(path)?;
    let Json(body) = body.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let rule = new_rule(body)?;
    project_must_exist(&state, project_id).await?;
    let created = rules::create(&state.pool, project_id, &rule).await?;
    Ok((StatusCode::CREATED, Json(view(&created))))
}

/// One rule.
#[utoipa::path(
    get,
    path = "/api/v1/rules/{id}",
    operation_id = "get_rule",
    tag = "rules",
    params(("id" = i64, Path, description = "Rule id")),
    responses(
        (status = 200, description = "The rule", body = RuleView),
        (status = 400, description = "A bad id", body = ErrorBody),
        (status = 404, description = "No such rule", body = ErrorBody),
    )
)]
async fn show(
    _token: ApiToken,
    State(state): State<AppState>,
    path: Result<Path<i64>, PathRejection>,
) -> Result<Json<RuleView>, ApiError> {
    let id = path_of(path)?;
    let rule = rules::get(&state.pool, id)
        .await?
        .ok_or_else(|| not_found(id))?;
    Ok(Json(view(&rule)))
}

/// The fields to change; a rule's kind and scope never change.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct RulePatch {
    enabled: Option<bool>,
    #[schema(schema_with = sensitivity_or_null_schema)]
    sensitivity: Option<String>,
    threshold: Option<i64>,
    window_minutes: Option<i32>,
}

/// Enable, disable or tune a rule.
#[utoipa::path(
    patch,
    path = "/api/v1/rules/{id}",
    operation_id = "update_rule",
    tag = "rules",
    params(("id" = i64, Path, description = "Rule id")),
    request_body = RulePatch,
    responses(
        (status = 200, description = "The changed rule", body = RuleView),
        (status = 400, description = "A bad id or body", body = ErrorBody),
        (status = 404, description = "No such rule", body = ErrorBody),
        (status = 422, description = "A field the rule's kind does not take, or a value out of range", body = ErrorBody),
    )
)]
async fn update(
    _token: ApiToken,
    State(state): State<AppState>,
    path: Result<Path<i64>, PathRejection>,
    body: Result<Json<RulePatch>, JsonRejection>,
) -> Result<Json<RuleView>, ApiError> {
    let id = path_of(path)?;
    let Json(patch) = body.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let rule = rules::get(&state.pool, id)
        .await?
        .ok_or_else(|| not_found(id))?;
    let fields = Fields {
        threshold: patch.threshold,
        window_minutes: patch.window_minutes,
        sensitivity: patch.sensitivity.as_deref(),
    };
    // A rule's kind never changes, so checking the changed fields keeps the rule valid.
    check(&rule.kind, &fields)?;
    let change = RuleChange {
        enabled: patch.enabled,
        sensitivity: patch.sensitivity,
        threshold: patch.threshold,
        window_minutes: patch.window_minutes,
    };
    let updated = rules::update(&state.pool, id, &change)
        .await?
        .ok_or_else(|| not_found(id))?;
    Ok(Json(view(&updated)))
}

/// Delete a rule.
#[utoipa::path(
    delete,
    path = "/api/v1/rules/{id}",
    operation_id = "delete_rule",
    tag = "rules",
    params(("id" = i64, Path, description = "Rule id")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 400, description = "A bad id", body = ErrorBody),
        (status = 404, description = "No such rule", body = ErrorBody),
    )
)]
async fn remove(
    _token: ApiToken,
    State(state): State<AppState>,
    path: Result<Path<i64>, PathRejection>,
) -> Result<StatusCode, ApiError> {
    let id = path_of(path)?;
    removed(rules::delete(&state.pool, id).await?, || not_found(id))
}
