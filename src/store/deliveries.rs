//! Deliveries: one message to one endpoint, and the outbox they are fanned out from.
//!
//! The outbox is drained by [`claim_outbox`] (`FOR UPDATE SKIP LOCKED`, so two processes
//! take disjoint rows) inside the transaction that inserts the deliveries and deletes the
//! rows: a row is fanned out exactly once, and never lost. What that transaction needs
//! from slower reads is read before it, for the rows [`peek_outbox`] saw.
//!
//! A delivery is then claimed by [`claim_due`] with a lease (`claimed_by`, `lease_until`)
//! in a short transaction, sent after that COMMIT, and its result written by [`record`]
//! only if the lease is still the sender's; a sender that dies leaves a lease that lapses,
//! and another process retries the same message (same `webhook-id`): at least once, never
//! twice at the same time.

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use super::StoreError;
use crate::model::{IncidentId, ProjectId};

#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow)]
pub struct Delivery {
    pub id: i64,
    pub endpoint_id: i64,
    pub project_id: ProjectId,
    pub incident_id: Option<IncidentId>,
    pub kind: String,
    pub topic: String,
    pub action: Option<String>,
    pub dedup_key: String,
    pub message_id: String,
    pub payload: serde_json::Value,
    pub status: String,
    pub attempts: i32,
    pub next_attempt_at: DateTime<Utc>,
    pub expires_at: Option<DateTime<Utc>>,
    pub last_status: Option<i32>,
    pub last_error: Option<String>,
    pub response_excerpt: Option<String>,
    pub created_at: DateTime<Utc>,
    pub delivered_at: Option<DateTime<Utc>>,
}

const DELIVERY_COLUMNS: &str = "id, endpoint_id, project_id, incident_id, kind, topic, action, \
     dedup_key, message_id, payload, status, attempts, next_attempt_at, expires_at, last_status, \
     last_error, response_excerpt, created_at, delivered_at";

/// The columns of [`OutboxRow`], in its order.
const OUTBOX_COLUMNS: &str = "id, project_id, incident_id, topic, payload, created_at";

/// An outbox row being fanned out.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct OutboxRow {
    pub id: i64,
    pub project_id: ProjectId,
    pub incident_id: Option<IncidentId>,
    pub topic: String,
    pub payload: serde_json::Value,
    pub created_at: DateTime<Utc>,
}

/// Up to `limit` available outbox rows, oldest first, without locking them: what a fan-out
/// prepares for before it claims them.
pub async fn peek_outbox(pool: &PgPool, limit: i64) -> Result<Vec<OutboxRow>, StoreError> {
    let sql = format!(
        "SELECT {OUTBOX_COLUMNS} FROM outbox WHERE available_at <= now() ORDER BY id LIMIT $1"
    );
    Ok(sqlx::query_as(&sql).bind(limit).fetch_all(pool).await?)
}

/// Locks those of the outbox rows `ids` that are still there and no other transaction
/// holds, oldest first.
pub async fn claim_outbox(
    conn: &mut PgConnection,
    ids: &[i64],
) -> Result<Vec<OutboxRow>, StoreError> {
    let sql = format!(
        "SELECT {OUTBOX_COLUMNS} FROM outbox WHERE id = ANY($1) ORDER BY id FOR UPDATE SKIP LOCKED"
    );
    Ok(sqlx::query_as(&sql).bind(ids).fetch_all(conn).await?)
}

/// Removes fanned-out outbox rows (in the transaction that made their deliveries).
pub async fn remove_outbox(conn: &mut PgConnection, ids: &[i64]) -> Result<(), StoreError> {
    sqlx::query("DELETE FROM outbox WHERE id = ANY($1)")
        .bind(ids)
        .execute(conn)
        .await?;
    Ok(())
}

/// A delivery to create. `status` is `pending`, or `skipped` with the reason in `note`.
#[derive(Debug, Clone, PartialEq)]
pub struct NewDelivery {
    pub endpoint_id: i64,
    pub project_id: ProjectId,
    pub incident_id: Option<IncidentId>,
    pub kind: String,
    pub topic: String,
    pub action: Option<String>,
    pub dedup_key: String,
    pub payload: serde_json::Value,
    pub status: &'static str,
    pub note: Option<String>,
    pub next_attempt_at: DateTime<Utc>,
    pub expires_at: Option<DateTime<Utc>>,
}

/// Inserts a delivery unless the endpoint already has one with its dedup key; the id of
/// the new one, or `None`.
pub async fn insert(conn: &mut PgConnection, new: &NewDelivery) -> Result<Option<i64>, StoreError> {
    let message_id = format!("msg_{}", Uuid::new_v4().simple());
    Ok(sqlx::query_scalar(
        "INSERT INTO deliveries (endpoint_id, project_id, incident_id, kind, topic, action, \
           dedup_key, message_id, payload, status, last_error, next_attempt_at, expires_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13) \
         ON CONFLICT (endpoint_id, dedup_key) DO NOTHING RETURNING id",
    )
    .bind(new.endpoint_id)
    .bind(new.project_id)
    .bind(new.incident_id)
    .bind(&new.kind)
    .bind(&new.topic)
    .bind(&new.action)
    .bind(&new.dedup_key)
    .bind(message_id)
    .bind(&new.payload)
    .bind(new.status)
    .bind(&new.note)
    .bind(new.next_attempt_at)
    .bind(new.expires_at)
    .fetch_optional(conn)
    .await?)
}

/// Leases up to `limit` due pending deliveries to `holder` until `lease_until`.
pub async fn claim_due(
    conn: &mut PgConnection,
    holder: Uuid,
    now: DateTime<Utc>,
    lease_until: DateTime<Utc>,
    limit: i64,
) -> Result<Vec<Delivery>, StoreError> {
    let sql = format!(
        "UPDATE deliveries SET claimed_by = $1, lease_until = $2 WHERE id IN ( \
           SELECT id FROM deliveries WHERE status = 'pending' AND next_attempt_at <= $3 \
             AND (lease_until IS NULL OR lease_until < $3) \
           ORDER BY next_attempt_at, id LIMIT $4 FOR UPDATE SKIP LOCKED) \
         RETURNING {DELIVERY_COLUMNS}"
    );
    let mut claimed: Vec<Delivery> = sqlx::query_as(&sql)
        .bind(holder)
        .bind(lease_until)
        .bind(now)
        .bind(limit)
        .fetch_all(conn)
        .await?;
    claimed.sort_by_key(|d| (d.next_attempt_at, d.id));
    Ok(claimed)
}

/// Leases the other pending deliveries of an endpoint (due or not): the rest of a mail's
/// group, sent in the same digest.
pub async fn claim_group(
    conn: &mut PgConnection,
    holder: Uuid,
    endpoint_id: i64,
    now: DateTime<Utc>,
    lease_until: DateTime<Utc>,
) -> Result<Vec<Delivery>, StoreError> {
    let sql = format!(
        "UPDATE deliveries SET claimed_by = $1, lease_until = $2 WHERE id IN ( \
           SELECT id FROM deliveries WHERE endpoint_id = $3 AND status = 'pending' \
             AND (lease_until IS NULL OR lease_until < $4) \
           ORDER BY id LIMIT 100 FOR UPDATE SKIP LOCKED) \
         RETURNING {DELIVERY_COLUMNS}"
    );
    Ok(sqlx::query_as(&sql)
        .bind(holder)
        .bind(lease_until)
        .bind(endpoint_id)
        .bind(now)
        .fetch_all(conn)
        .await?)
}

/// What became of a claimed delivery.
#[derive(Debug, Clone, PartialEq)]
pub struct Outcome {
    /// `pending` (again later), `delivered`, `dead`, `expired`.
    pub status: &'static str,
    /// Whether an attempt was spent (a breaker hold spends none).
    pub attempted: bool,
    pub next_attempt_at: DateTime<Utc>,
    pub last_status: Option<i32>,
    pub last_error: Option<String>,
    pub excerpt: Option<String>,
}

/// Writes the outcome if `holder` still holds the lease; false when it had lapsed and
/// another process took the delivery over.
pub async fn record(
    conn: &mut PgConnection,
    id: i64,
    holder: Uuid,
    outcome: &Outcome,
) -> Result<bool, StoreError> {
    let done = sqlx::query(
        "UPDATE deliveries SET status = $3, attempts = attempts + $4::int, next_attempt_at = $5, \
           last_status = coalesce($6, CASE WHEN $4::int = 1 THEN NULL ELSE last_status END), \
           last_error = CASE WHEN $4::int = 1 THEN $7 ELSE coalesce($7, last_error) END, response_excerpt = coalesce($8, response_excerpt), \
           delivered_at = CASE WHEN $3 = 'delivered' THEN now() ELSE delivered_at END, \
           claimed_by = NULL, lease_until = NULL \
         WHERE id = $1 AND claimed_by = $2 AND status = 'pending'",
    )
    .bind(id)
    .bind(holder)
    .bind(outcome.status)
    .bind(i32::from(outcome.attempted))
    .bind(outcome.next_attempt_at)
    .bind(outcome.last_status)
    .bind(&outcome.last_error)
    .bind(&outcome.excerpt)
    .execute(conn)
    .await?;
    Ok(done.rows_affected() > 0)
}

pub async fn get(pool: &PgPool, id: i64) -> Result<Option<Delivery>, StoreError> {
    let sql = format!("SELECT {DELIVERY_COLUMNS} FROM deliveries WHERE id = $1");
    Ok(sqlx::query_as(&sql).bind(id).fetch_optional(pool).await?)
}

#[derive(Debug, Clone, Default)]
pub struct DeliveryFilter {
    pub project_id: Option<ProjectId>,
    pub endpoint_id: Option<i64>,
    pub incident_id: Option<IncidentId>,
    pub status: Option<String>,
    pub kind: Option<String>,
    /// Page after this id (newest first).
    pub before_id: Option<i64>,
    pub limit: i64,
}

pub async fn list(pool: &PgPool, filter: &DeliveryFilter) -> Result<Vec<Delivery>, StoreError> {
    let sql = format!(
        "SELECT {DELIVERY_COLUMNS} FROM deliveries \
         WHERE ($1::int8 IS NULL OR project_id = $1) AND ($2::int8 IS NULL OR endpoint_id = $2) \
           AND ($3::int8 IS NULL OR incident_id = $3) AND ($4::text IS NULL OR status = $4) \
           AND ($5::text IS NULL OR kind = $5) AND ($6::int8 IS NULL OR id < $6) \
         ORDER BY id DESC LIMIT $7"
    );
    Ok(sqlx::query_as(&sql)
        .bind(filter.project_id)
        .bind(filter.endpoint_id)
        .bind(filter.incident_id)
        .bind(filter.status.as_deref())
        .bind(filter.kind.as_deref())
        .bind(filter.before_id)
        .bind(filter.limit)
        .fetch_all(pool)
        .await?)
}

/// Queues a delivery to be sent again now with the same `webhook-id` (receivers that
/// deduplicate see the same message); a recovery action gets a fresh deadline.
pub async fn redeliver(
    pool: &PgPool,
    id: i64,
    recovery_deadline: DateTime<Utc>,
) -> Result<Option<Delivery>, StoreError> {
    let sql = format!(
        "UPDATE deliveries SET status = 'pending', attempts = 0, next_attempt_at = now(), \
           expires_at = CASE WHEN kind = 'recovery' THEN $2 ELSE expires_at END, \
           claimed_by = NULL, lease_until = NULL, last_error = NULL \
         WHERE id = $1 RETURNING {DELIVERY_COLUMNS}"
    );
    Ok(sqlx::query_as(&sql)
        .bind(id)
        .bind(recovery_deadline)
        .fetch_optional(pool)
        .await?)
}

/// Whether a recovery endpoint acted on a service since `since` (its cooldown): an action
/// delivered then, or one requested then and still on its way.
pub async fn acted_since(
    conn: &mut PgConnection,
    endpoint_id: i64,
    service: &str,
    since: DateTime<Utc>,
) -> Result<bool, StoreError> {
    Ok(sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM deliveries WHERE endpoint_id = $1 \
           AND status IN ('pending', 'delivered') AND coalesce(delivered_at, created_at) >= $3 \
           AND coalesce(payload #>> '{data,service}', '') = $2)",
    )
    .bind(endpoint_id)
    .bind(service)
    .bind(since)
    .fetch_one(conn)
    .await?)
}

/// Outbox rows waiting, and deliveries pending (for the gauges).
pub async fn depths(pool: &PgPool) -> Result<(i64, i64), StoreError> {
    Ok(sqlx::query_as(
        "SELECT (SELECT count(*) FROM outbox), \
                (SELECT count(*) FROM deliveries WHERE status = 'pending')",
    )
    .fetch_one(pool)
    .await?)
}

/// Makes an endpoint's pending deliveries due now: its breaker just closed, so what waited
/// for it (or for a retry after failing against it) goes at once.
pub async fn release(
    conn: &mut PgConnection,
    endpoint_id: i64,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    sqlx::query(
        "UPDATE deliveries SET next_attempt_at = $2 \
         WHERE endpoint_id = $1 AND status = 'pending' AND next_attempt_at > $2",
    )
    .bind(endpoint_id)
    .bind(now)
    .execute(conn)
    .await?;
    Ok(())
}
