//! Silences: a window in which a project's matching incidents are recorded but not
//! announced. The detector asks [`incidents::open`](super::incidents::open) to stamp the
//! matching silence on an incident as it opens (one subquery, [`MATCHING_SILENCE`]); the
//! worker then writes no outbox rows for it. Matchers are kind, service and issue; an unset
//! matcher matches anything, so a silence with none mutes the whole project.

use chrono::{DateTime, Utc};
use sqlx::PgPool;

use super::StoreError;
use crate::model::{IssueId, ProjectId};

#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct Silence {
    pub id: i64,
    pub project_id: ProjectId,
    /// Matches incidents of this kind; `null` matches any.
    pub kind: Option<String>,
    /// Matches incidents of this service; `null` matches any.
    pub service: Option<String>,
    /// Matches incidents of this issue; `null` matches any.
    pub issue_id: Option<IssueId>,
    pub comment: String,
    pub starts_at: DateTime<Utc>,
    pub ends_at: DateTime<Utc>,
    /// The API token that made it.
    pub created_by: Option<i64>,
    pub created_at: DateTime<Utc>,
}

/// Where a silence's window stands at a moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    Pending,
    Active,
    Expired,
}

impl Phase {
    pub const ALL: [Phase; 3] = [Phase::Pending, Phase::Active, Phase::Expired];

    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Pending => "pending",
            Phase::Active => "active",
            Phase::Expired => "expired",
        }
    }

    /// Every phase's name, as the API spells it.
    pub fn names() -> [&'static str; 3] {
        Phase::ALL.map(Phase::as_str)
    }
}

impl Silence {
    pub fn phase(&self, now: DateTime<Utc>) -> Phase {
        if now < self.starts_at {
            Phase::Pending
        } else if now < self.ends_at {
            Phase::Active
        } else {
            Phase::Expired
        }
    }
}

const SILENCE_COLUMNS: &str =
    "id, project_id, kind, service, issue_id, comment, starts_at, ends_at, created_by, created_at";

/// The id of the silence covering an incident being opened, as a scalar subquery over the
/// INSERT's parameters: $1 project, $2 kind, $4 service, $5 issue id, $6 the bucket the
/// incident opens at (not the wall clock, so a detector catching up on a maintenance window
/// after it ended still honours it). The longest-running match wins.
pub(crate) const MATCHING_SILENCE: &str = "(SELECT s.id FROM silences s \
     WHERE s.project_id = $1 AND s.starts_at <= $6 AND s.ends_at > $6 \
       AND (s.kind IS NULL OR s.kind = $2) AND (s.service IS NULL OR s.service = $4) \
       AND (s.issue_id IS NULL OR s.issue_id = $5) \
     ORDER BY s.ends_at DESC, s.id LIMIT 1)";

/// A silence to create: matchers, window, why, and who.
#[derive(Debug, Clone, PartialEq)]
pub struct NewSilence {
    pub project_id: ProjectId,
    pub kind: Option<String>,
    pub service: Option<String>,
    pub issue_id: Option<IssueId>,
    pub comment: String,
    pub starts_at: DateTime<Utc>,
    pub ends_at: DateTime<Utc>,
    pub created_by: Option<i64>,
}

pub async fn create(pool: &PgPool, new: &NewSilence) -> Result<Silence, StoreError> {
    let sql = format!(
        "INSERT INTO silences (project_id, kind, service, issue_id, comment, starts_at, ends_at, created_by) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING {SILENCE_COLUMNS}"
    );
    Ok(sqlx::query_as(&sql)
        .bind(new.project_id)
        .bind(&new.kind)
        .bind(&new.service)
        .bind(new.issue_id)
        .bind(&new.comment)
        .bind(new.starts_at)
        .bind(new.ends_at)
        .bind(new.created_by)
        .fetch_one(pool)
        .await?)
}

pub async fn get(pool: &PgPool, id: i64) -> Result<Option<Silence>, StoreError> {
    let sql = format!("SELECT {SILENCE_COLUMNS} FROM silences WHERE id = $1");
    Ok(sqlx::query_as(&sql).bind(id).fetch_optional(pool).await?)
}

#[derive(Debug, Clone, Default)]
pub struct SilenceFilter {
    pub project_id: Option<ProjectId>,
    /// Only silences in this phase at `now`.
    pub phase: Option<Phase>,
    pub now: DateTime<Utc>,
    /// Page after this id (newest first).
    pub before_id: Option<i64>,
    pub limit: i64,
}

/// One page of silences, newest first.
pub async fn list(pool: &PgPool, filter: &SilenceFilter) -> Result<Vec<Silence>, StoreError> {
    let sql = format!(
        "SELECT {SILENCE_COLUMNS} FROM silences \
         WHERE ($1::int8 IS NULL OR project_id = $1) \
           AND ($2::text IS NULL \
             OR ($2 = 'pending' AND starts_at > $3) \
             OR ($2 = 'active' AND starts_at <= $3 AND ends_at > $3) \
             OR ($2 = 'expired' AND ends_at <= $3)) \
           AND ($4::int8 IS NULL OR id < $4) \
         ORDER BY id DESC LIMIT $5"
    );
    let phase = filter.phase.map(Phase::as_str);
    Ok(sqlx::query_as(&sql)
        .bind(filter.project_id)
        .bind(phase)
        .bind(filter.now)
        .bind(filter.before_id)
        .bind(filter.limit)
        .fetch_all(pool)
        .await?)
}

/// Changes a silence's comment and/or end (ending it now expires it early). The caller
/// checks the new end is after the start; the table's CHECK is the last word.
pub async fn update(
    pool: &PgPool,
    id: i64,
    comment: Option<&str>,
    ends_at: Option<DateTime<Utc>>,
) -> Result<Option<Silence>, StoreError> {
    let sql = format!(
        "UPDATE silences SET comment = COALESCE($2, comment), ends_at = COALESCE($3, ends_at) \
         WHERE id = $1 RETURNING {SILENCE_COLUMNS}"
    );
    Ok(sqlx::query_as(&sql)
        .bind(id)
        .bind(comment)
        .bind(ends_at)
        .fetch_optional(pool)
        .await?)
}

/// Deletes a silence; incidents it covered keep its id (they were still not announced).
pub async fn delete(pool: &PgPool, id: i64) -> Result<bool, StoreError> {
    let done = sqlx::query("DELETE FROM silences WHERE id = $1")
        .bind(id)
        .execute(pool)
        .await?;
    Ok(done.rows_affected() > 0)
}

/// The silence covering an incident at `at`, if any: one made after the incident opened
/// still quiets what is announced about it from then on.
pub async fn covering(
    conn: &mut sqlx::PgConnection,
    incident_id: crate::model::IncidentId,
    at: DateTime<Utc>,
) -> Result<Option<i64>, StoreError> {
    Ok(sqlx::query_scalar(
        "SELECT s.id FROM silences s JOIN incidents i ON i.project_id = s.project_id \
         WHERE i.id = $1 AND s.starts_at <= $2 AND s.ends_at > $2 \
           AND (s.kind IS NULL OR s.kind = i.kind) AND (s.service IS NULL OR s.service = i.service) \
           AND (s.issue_id IS NULL OR s.issue_id = i.issue_id) \
         ORDER BY s.ends_at DESC, s.id LIMIT 1",
    )
    .bind(incident_id)
    .bind(at)
    .fetch_optional(conn)
    .await?)
}
