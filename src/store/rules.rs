//! Detection rules per project, and the threshold rules' fired/armed memory.

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::{PgConnection, PgPool};

use super::StoreError;
use crate::model::{ProjectId, Scope};

#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow)]
pub struct Rule {
    pub id: i64,
    pub project_id: ProjectId,
    pub kind: String,
    pub enabled: bool,
    pub scope: String,
    pub threshold: Option<i64>,
    pub window_minutes: Option<i32>,
    pub sensitivity: String,
    pub created_at: DateTime<Utc>,
}

/// A rule to create; `threshold` and `window_minutes` only for kind `threshold`.
#[derive(Debug, Clone, PartialEq)]
pub struct NewRule {
    pub kind: String,
    pub scope: String,
    pub threshold: Option<i64>,
    pub window_minutes: Option<i32>,
    pub sensitivity: String,
}

const RULE_COLUMNS: &str =
    "id, project_id, kind, enabled, scope, threshold, window_minutes, sensitivity, created_at";

/// What every new project starts with: pages for new issues, regressions, and anomalies in
/// its counts and error rates.
pub async fn insert_defaults(
    conn: &mut PgConnection,
    project_id: ProjectId,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO detection_rules (project_id, kind) \
         SELECT $1, kind FROM unnest(ARRAY['new_issue', 'regression', 'anomaly', 'error_rate']) AS kind",
    )
    .bind(project_id)
    .execute(conn)
    .await?;
    Ok(())
}

pub async fn list(pool: &PgPool, project_id: ProjectId) -> Result<Vec<Rule>, StoreError> {
    let sql =
        format!("SELECT {RULE_COLUMNS} FROM detection_rules WHERE project_id = $1 ORDER BY id");
    Ok(sqlx::query_as(&sql)
        .bind(project_id)
        .fetch_all(pool)
        .await?)
}

pub async fn create(
    pool: &PgPool,
    project_id: ProjectId,
    rule: &NewRule,
) -> Result<Rule, StoreError> {
    let sql = format!(
        "INSERT INTO detection_rules (project_id, kind, scope, threshold, window_minutes, sensitivity) \
         VALUES ($1, $2, $3, $4, $5, $6) RETURNING {RULE_COLUMNS}"
    );
    Ok(sqlx::query_as(&sql)
        .bind(project_id)
        .bind(&rule.kind)
        .bind(&rule.scope)
        .bind(rule.threshold)
        .bind(rule.window_minutes)
        .bind(&rule.sensitivity)
        .fetch_one(pool)
        .await?)
}

pub async fn set_enabled(pool: &PgPool, id: i64, enabled: bool) -> Result<(), StoreError> {
    sqlx::query("UPDATE detection_rules SET enabled = $2 WHERE id = $1")
        .bind(id)
        .bind(enabled)
        .execute(pool)
        .await?;
    Ok(())
}

pub async fn get(pool: &PgPool, id: i64) -> Result<Option<Rule>, StoreError> {
    let sql = format!("SELECT {RULE_COLUMNS} FROM detection_rules WHERE id = $1");
    Ok(sqlx::query_as(&sql).bind(id).fetch_optional(pool).await?)
}

/// Changes to a rule; `None` leaves a column as it is. The caller checks that the changes
/// suit the rule's kind (the table's CHECK is the last line, not the first).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RuleChange {
    pub enabled: Option<bool>,
    pub sensitivity: Option<String>,
    pub threshold: Option<i64>,
    pub window_minutes: Option<i32>,
}

pub async fn update(
    pool: &PgPool,
    id: i64,
    change: &RuleChange,
) -> Result<Option<Rule>, StoreError> {
    let sql = format!(
        "UPDATE detection_rules SET enabled = coalesce($2, enabled), \
           sensitivity = coalesce($3, sensitivity), threshold = coalesce($4, threshold), \
           window_minutes = coalesce($5, window_minutes) \
         WHERE id = $1 RETURNING {RULE_COLUMNS}"
    );
    Ok(sqlx::query_as(&sql)
        .bind(id)
        .bind(change.enabled)
        .bind(change.sensitivity.as_deref())
        .bind(change.threshold)
        .bind(change.window_minutes)
        .fetch_optional(pool)
        .await?)
}

/// Deletes a rule (its firings go with it); false when there was none.
pub async fn delete(pool: &PgPool, id: i64) -> Result<bool, StoreError> {
    let deleted = sqlx::query("DELETE FROM detection_rules WHERE id = $1")
        .bind(id)
        .execute(pool)
        .await?;
    Ok(deleted.rows_affected() == 1)
}

/// The series a threshold rule has fired on and not re-armed.
pub async fn fired_series(pool: &PgPool, rule_id: i64) -> Result<Vec<Scope>, StoreError> {
    let rows: Vec<(String, String, i64)> =
        sqlx::query_as("SELECT scope, service, issue_id FROM rule_firings WHERE rule_id = $1")
            .bind(rule_id)
            .fetch_all(pool)
            .await?;
    Ok(rows
        .into_iter()
        .filter_map(|(scope, service, issue_id)| Scope::from_columns(&scope, service, issue_id))
        .collect())
}

pub async fn mark_fired(
    conn: &mut PgConnection,
    rule_id: i64,
    scope: &Scope,
    at: DateTime<Utc>,
) -> Result<(), StoreError> {
    let (kind, service, issue_id) = scope.columns();
    sqlx::query(
        "INSERT INTO rule_firings (rule_id, scope, service, issue_id, fired_at) \
         VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING",
    )
    .bind(rule_id)
    .bind(kind)
    .bind(service)
    .bind(issue_id)
    .bind(at)
    .execute(conn)
    .await?;
    Ok(())
}

pub async fn rearm(conn: &mut PgConnection, rule_id: i64, scope: &Scope) -> Result<(), StoreError> {
    let (kind, service, issue_id) = scope.columns();
    sqlx::query(
        "DELETE FROM rule_firings WHERE rule_id = $1 AND scope = $2 AND service = $3 AND issue_id = $4",
    )
    .bind(rule_id)
    .bind(kind)
    .bind(service)
    .bind(issue_id)
    .execute(conn)
    .await?;
    Ok(())
}
