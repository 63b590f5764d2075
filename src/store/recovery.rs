//! Recovery actions that reached their service, and the verdict of their verification
//! window. Delivery records an action (and moves its incident to `recovering`) in the
//! transaction that marks the delivery done; the detector decides the outcome from the
//! series and records it with the incident's change. `stats` counts the outcomes.

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::{PgConnection, PgPool};

use super::stats::RecoveryCounts;
use super::StoreError;
use crate::model::{IncidentId, ProjectId};

#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow)]
pub struct RecoveryAction {
    pub id: i64,
    pub incident_id: IncidentId,
    pub project_id: ProjectId,
    pub endpoint_id: Option<i64>,
    pub delivery_id: Option<i64>,
    pub action: String,
    pub order: i32,
    pub delivered_at: DateTime<Utc>,
    pub verify_until: DateTime<Utc>,
    pub cleared_at: Option<DateTime<Utc>>,
    pub outcome: Option<String>,
    pub decided_at: Option<DateTime<Utc>>,
}

const ACTION_COLUMNS: &str = "id, incident_id, project_id, endpoint_id, delivery_id, action, \
     \"order\", delivered_at, verify_until, cleared_at, outcome, decided_at";

/// An action delivered to its service.
#[derive(Debug, Clone, PartialEq)]
pub struct NewAction {
    pub incident_id: IncidentId,
    pub project_id: ProjectId,
    pub endpoint_id: i64,
    pub delivery_id: i64,
    pub action: String,
    pub order: i32,
    pub delivered_at: DateTime<Utc>,
    pub verify_until: DateTime<Utc>,
}

/// Records an action once per delivery; `None` when it was recorded already.
pub async fn record(
    conn: &mut PgConnection,
    new: &NewAction,
) -> Result<Option<RecoveryAction>, StoreError> {
    let sql = format!(
        "INSERT INTO recovery_actions (incident_id, project_id, endpoint_id, delivery_id, action, \
           \"order\", delivered_at, verify_until) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) \
         ON CONFLICT (delivery_id) DO NOTHING RETURNING {ACTION_COLUMNS}"
    );
    Ok(sqlx::query_as(&sql)
        .bind(new.incident_id)
        .bind(new.project_id)
        .bind(new.endpoint_id)
        .bind(new.delivery_id)
        .bind(&new.action)
        .bind(new.order)
        .bind(new.delivered_at)
        .bind(new.verify_until)
        .fetch_optional(conn)
        .await?)
}

/// A project's actions whose verification has not ended.
pub async fn undecided(
    pool: &PgPool,
    project_id: ProjectId,
) -> Result<Vec<RecoveryAction>, StoreError> {
    let sql = format!(
        "SELECT {ACTION_COLUMNS} FROM recovery_actions WHERE project_id = $1 AND outcome IS NULL \
         ORDER BY id"
    );
    Ok(sqlx::query_as(&sql)
        .bind(project_id)
        .fetch_all(pool)
        .await?)
}

pub async fn for_incident(
    pool: &PgPool,
    incident_id: IncidentId,
) -> Result<Vec<RecoveryAction>, StoreError> {
    let sql =
        format!("SELECT {ACTION_COLUMNS} FROM recovery_actions WHERE incident_id = $1 ORDER BY id");
    Ok(sqlx::query_as(&sql)
        .bind(incident_id)
        .fetch_all(pool)
        .await?)
}

/// Notes the first moment the series was back at baseline after the action.
pub async fn mark_cleared(
    conn: &mut PgConnection,
    id: i64,
    at: DateTime<Utc>,
) -> Result<(), StoreError> {
    sqlx::query("UPDATE recovery_actions SET cleared_at = coalesce(cleared_at, $2) WHERE id = $1")
        .bind(id)
        .bind(at)
        .execute(conn)
        .await?;
    Ok(())
}

/// Records the verdict once; false when another pass decided first.
pub async fn decide(
    conn: &mut PgConnection,
    id: i64,
    outcome: &str,
    at: DateTime<Utc>,
) -> Result<bool, StoreError> {
    let done = sqlx::query(
        "UPDATE recovery_actions SET outcome = $2, decided_at = $3 WHERE id = $1 AND outcome IS NULL",
    )
    .bind(id)
    .bind(outcome)
    .bind(at)
    .execute(conn)
    .await?;
    Ok(done.rows_affected() > 0)
}

/// Decided actions of `project` (or all) whose verification ended at or after `since`.
pub async fn counts(
    pool: &PgPool,
    project: Option<ProjectId>,
    since: Option<DateTime<Utc>>,
) -> Result<RecoveryCounts, StoreError> {
    let (succeeded, false_recoveries, not_recovered): (i64, i64, i64) = sqlx::query_as(
        "SELECT count(*) FILTER (WHERE outcome = 'succeeded'), \
                count(*) FILTER (WHERE outcome = 'false_recovery'), \
                count(*) FILTER (WHERE outcome = 'not_recovered') \
         FROM recovery_actions WHERE outcome IS NOT NULL \
           AND ($1::int8 IS NULL OR project_id = $1) \
           AND ($2::timestamptz IS NULL OR decided_at >= $2)",
    )
    .bind(project)
    .bind(since)
    .fetch_one(pool)
    .await?;
    Ok(RecoveryCounts {
        succeeded,
        false_recoveries,
        not_recovered,
    })
}

/// A recovery action asked for an incident, with where its delivery and verification stand.
#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow)]
pub struct ActionSummary {
    pub endpoint_id: i64,
    pub action: Option<String>,
    /// `pending`, `delivered`, `dead`, `expired` or `skipped`.
    pub delivery_status: String,
    /// `succeeded`, `false_recovery`, `not_recovered`; `None` until verified (or never sent).
    pub outcome: Option<String>,
}

/// The recovery actions asked for an incident, oldest first.
pub async fn summary(
    pool: &PgPool,
    incident_id: IncidentId,
) -> Result<Vec<ActionSummary>, StoreError> {
    Ok(sqlx::query_as(
        "SELECT d.endpoint_id, d.action, d.status AS delivery_status, r.outcome \
         FROM deliveries d LEFT JOIN recovery_actions r ON r.delivery_id = d.id \
         WHERE d.incident_id = $1 AND d.kind = 'recovery' ORDER BY d.id",
    )
    .bind(incident_id)
    .fetch_all(pool)
    .await?)
}
