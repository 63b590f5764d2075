//! Endpoints: where a project's incidents go — recovery hooks (a chain by `order`),
//! notification webhooks and email recipients — with each endpoint's circuit breaker and
//! mail pacing, which every process reads and writes under the row's lock.

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::{PgConnection, PgPool};

use super::StoreError;
use crate::model::ProjectId;

#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow)]
pub struct Endpoint {
    pub id: i64,
    pub project_id: ProjectId,
    pub kind: String,
    pub url: Option<String>,
    /// `whsec_…` secrets in force, newest first. Never shown after creation.
    #[serde(skip)]
    pub secrets: Vec<String>,
    pub action: Option<String>,
    pub incident_kinds: Vec<String>,
    pub services: Vec<String>,
    pub order: i32,
    pub cooldown_minutes: i32,
    pub events: Vec<String>,
    pub addresses: Vec<String>,
    pub enabled: bool,
    pub disabled_reason: Option<String>,
    pub breaker_state: String,
    pub breaker_failures: i32,
    pub breaker_until: Option<DateTime<Utc>>,
    pub quiet_until: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
}

const ENDPOINT_COLUMNS: &str =
    "id, project_id, kind, url, secrets, action, incident_kinds, services, \
     \"order\", cooldown_minutes, events, addresses, enabled, disabled_reason, breaker_state, \
     breaker_failures, breaker_until, quiet_until, created_at";

/// An endpoint to create, already validated.
#[derive(Debug, Clone, PartialEq)]
pub struct NewEndpoint {
    pub project_id: ProjectId,
    pub kind: String,
    pub url: Option<String>,
    pub secret: Option<String>,
    pub action: Option<String>,
    pub incident_kinds: Vec<String>,
    pub services: Vec<String>,
    pub order: i32,
    pub cooldown_minutes: i32,
    pub events: Vec<String>,
    pub addresses: Vec<String>,
}

impl NewEndpoint {
    /// An endpoint of `kind` for `project_id`, first in its chain, with nothing else set.
    pub fn new(project_id: ProjectId, kind: &str) -> NewEndpoint {
        NewEndpoint {
            project_id,
            kind: kind.to_owned(),
            url: None,
            secret: None,
            action: None,
            incident_kinds: Vec::new(),
            services: Vec::new(),
            order: 1,
            cooldown_minutes: 0,
            events: Vec::new(),
            addresses: Vec::new(),
        }
    }
}

pub async fn create(pool: &PgPool, new: &NewEndpoint) -> Result<Endpoint, StoreError> {
    let sql = format!(
        "INSERT INTO endpoints (project_id, kind, url, secrets, action, incident_kinds, services, \
           \"order\", cooldown_minutes, events, addresses) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) RETURNING {ENDPOINT_COLUMNS}"
    );
    let secrets: Vec<String> = new.secret.iter().cloned().collect();
    Ok(sqlx::query_as(&sql)
        .bind(new.project_id)
        .bind(&new.kind)
        .bind(&new.url)
        .bind(secrets)
        .bind(&new.action)
        .bind(&new.incident_kinds)
        .bind(&new.services)
        .bind(new.order)
        .bind(new.cooldown_minutes)
        .bind(&new.events)
        .bind(&new.addresses)
        .fetch_one(pool)
        .await?)
}

pub async fn get(pool: &PgPool, id: i64) -> Result<Option<Endpoint>, StoreError> {
    let sql = format!("SELECT {ENDPOINT_COLUMNS} FROM endpoints WHERE id = $1");
    Ok(sqlx::query_as(&sql).bind(id).fetch_optional(pool).await?)
}

#[derive(Debug, Clone, Default)]
pub struct EndpointFilter {
    pub project_id: Option<ProjectId>,
    pub kind: Option<String>,
    /// Page after this id (newest first).
    pub before_id: Option<i64>,
    pub limit: i64,
}

pub async fn list(pool: &PgPool, filter: &EndpointFilter) -> Result<Vec<Endpoint>, StoreError> {
    let sql = format!(
        "SELECT {ENDPOINT_COLUMNS} FROM endpoints \
         WHERE ($1::int8 IS NULL OR project_id = $1) AND ($2::text IS NULL OR kind = $2) \
           AND ($3::int8 IS NULL OR id < $3) \
         ORDER BY id DESC LIMIT $4"
    );
    Ok(sqlx::query_as(&sql)
        .bind(filter.project_id)
        .bind(filter.kind.as_deref())
        .bind(filter.before_id)
        .bind(filter.limit)
        .fetch_all(pool)
        .await?)
}

/// A change to an endpoint; `None` leaves a field as it is. A new secret goes first and
/// the newest previous one is kept beside it, so receivers can rotate without a gap.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct EndpointChange {
    pub url: Option<String>,
    pub secret: Option<String>,
    pub action: Option<String>,
    pub incident_kinds: Option<Vec<String>>,
    pub services: Option<Vec<String>>,
    pub order: Option<i32>,
    pub cooldown_minutes: Option<i32>,
    pub events: Option<Vec<String>>,
    pub addresses: Option<Vec<String>>,
    pub enabled: Option<bool>,
}

pub async fn update(
    pool: &PgPool,
    id: i64,
    change: &EndpointChange,
) -> Result<Option<Endpoint>, StoreError> {
    let sql = format!(
        "UPDATE endpoints SET url = coalesce($2, url), \
           secrets = CASE WHEN $3::text IS NULL THEN secrets ELSE ARRAY[$3::text] || secrets[1:1] END, \
           action = coalesce($4, action), incident_kinds = coalesce($5, incident_kinds), \
           services = coalesce($6, services), \"order\" = coalesce($7, \"order\"), \
           cooldown_minutes = coalesce($8, cooldown_minutes), events = coalesce($9, events), \
           addresses = coalesce($10, addresses), enabled = coalesce($11, enabled), \
           disabled_reason = CASE WHEN $11 THEN NULL ELSE disabled_reason END, \
           breaker_state = CASE WHEN $11 THEN 'closed' ELSE breaker_state END, \
           breaker_failures = CASE WHEN $11 THEN 0 ELSE breaker_failures END \
         WHERE id = $1 RETURNING {ENDPOINT_COLUMNS}"
    );
    Ok(sqlx::query_as(&sql)
        .bind(id)
        .bind(&change.url)
        .bind(&change.secret)
        .bind(&change.action)
        .bind(&change.incident_kinds)
        .bind(&change.services)
        .bind(change.order)
        .bind(change.cooldown_minutes)
        .bind(&change.events)
        .bind(&change.addresses)
        .bind(change.enabled)
        .fetch_optional(pool)
        .await?)
}

pub async fn delete(pool: &PgPool, id: i64) -> Result<bool, StoreError> {
    let done = sqlx::query("DELETE FROM endpoints WHERE id = $1")
        .bind(id)
        .execute(pool)
        .await?;
    Ok(done.rows_affected() > 0)
}

/// A project's enabled endpoints, recovery ones in chain order.
pub async fn enabled_for(
    conn: &mut PgConnection,
    project_id: ProjectId,
) -> Result<Vec<Endpoint>, StoreError> {
    let sql = format!(
        "SELECT {ENDPOINT_COLUMNS} FROM endpoints WHERE project_id = $1 AND enabled \
         ORDER BY \"order\", id"
    );
    Ok(sqlx::query_as(&sql)
        .bind(project_id)
        .fetch_all(conn)
        .await?)
}

/// The endpoints, locked until the transaction ends, in id order (so two processes
/// locking overlapping sets cannot deadlock).
pub async fn lock(conn: &mut PgConnection, ids: &[i64]) -> Result<Vec<Endpoint>, StoreError> {
    let sql = format!(
        "SELECT {ENDPOINT_COLUMNS} FROM endpoints WHERE id = ANY($1) ORDER BY id FOR UPDATE"
    );
    Ok(sqlx::query_as(&sql).bind(ids).fetch_all(conn).await?)
}

pub async fn set_breaker(
    conn: &mut PgConnection,
    id: i64,
    state: &str,
    failures: i32,
    until: Option<DateTime<Utc>>,
) -> Result<(), StoreError> {
    sqlx::query(
        "UPDATE endpoints SET breaker_state = $2, breaker_failures = $3, breaker_until = $4 \
         WHERE id = $1",
    )
    .bind(id)
    .bind(state)
    .bind(failures)
    .bind(until)
    .execute(conn)
    .await?;
    Ok(())
}

/// Switches an endpoint off (its receiver answered 410 Gone), saying why.
pub async fn disable(conn: &mut PgConnection, id: i64, reason: &str) -> Result<(), StoreError> {
    sqlx::query("UPDATE endpoints SET enabled = false, disabled_reason = $2 WHERE id = $1")
        .bind(id)
        .bind(reason)
        .execute(conn)
        .await?;
    Ok(())
}

/// No mail to this endpoint before `until` (its repeat interval).
pub async fn set_quiet_until(
    conn: &mut PgConnection,
    id: i64,
    until: DateTime<Utc>,
) -> Result<(), StoreError> {
    sqlx::query("UPDATE endpoints SET quiet_until = $2 WHERE id = $1")
        .bind(id)
        .bind(until)
        .execute(conn)
        .await?;
    Ok(())
}

/// Enabled endpoints by breaker state (for the gauge).
pub async fn breaker_states(pool: &PgPool) -> Result<Vec<(String, i64)>, StoreError> {
    Ok(sqlx::query_as(
        "SELECT breaker_state, count(*) FROM endpoints WHERE enabled GROUP BY breaker_state",
    )
    .fetch_all(pool)
    .await?)
}
