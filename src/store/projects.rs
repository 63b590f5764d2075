//! Projects and their ingestion keys.

use chrono::{DateTime, Utc};
use sqlx::types::Json;
use sqlx::{PgConnection, PgPool};

use super::{is_unique_violation, StoreError};
use crate::model::ProjectId;
use crate::scrub;

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Project {
    pub id: ProjectId,
    pub slug: String,
    pub name: String,
    pub rate_limit_per_minute: Option<i32>,
    pub created_at: DateTime<Utc>,
    /// The project's first active key: the DSN's user part and the OTLP key.
    pub public_key: Option<String>,
}

/// What ingestion needs to know about a key.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct KeyGrant {
    pub project_id: ProjectId,
    pub rate_limit_per_minute: Option<i32>,
    pub key_id: i64,
    /// The key's own quota, beside the project's.
    pub key_rate_limit_per_minute: Option<i32>,
    /// What to scrub from the project's events before they are stored.
    pub scrub: Json<scrub::Settings>,
}

const PROJECT_COLUMNS: &str = "p.id, p.slug, p.name, p.rate_limit_per_minute, p.created_at, \
     (SELECT k.public_key FROM project_keys k WHERE k.project_id = p.id AND k.revoked_at IS NULL \
      ORDER BY k.id LIMIT 1) AS public_key";

/// A fresh random public key: 128 bits as 32 hex digits.
pub fn new_public_key() -> String {
    hex::encode(rand::random::<[u8; 16]>())
}

/// Creates a project with one key. A taken slug is a `Conflict`.
pub async fn create(
    conn: &mut PgConnection,
    slug: &str,
    name: &str,
    rate_limit_per_minute: Option<i32>,
) -> Result<Project, StoreError> {
    let id: ProjectId = sqlx::query_scalar(
        "INSERT INTO projects (slug, name, rate_limit_per_minute) VALUES ($1, $2, $3) RETURNING id",
    )
    .bind(slug)
    .bind(name)
    .bind(rate_limit_per_minute)
    .fetch_one(&mut *conn)
    .await
    .map_err(|e| match is_unique_violation(&e) {
        true => StoreError::Conflict(format!("project {slug:?}")),
        false => e.into(),
    })?;
    sqlx::query("INSERT INTO project_keys (project_id, public_key) VALUES ($1, $2)")
        .bind(id)
        .bind(new_public_key())
        .execute(&mut *conn)
        .await?;
    super::rules::insert_defaults(&mut *conn, id).await?;
    get(&mut *conn, id)
        .await?
        .ok_or_else(|| StoreError::Corrupt(format!("project {id} vanished after insert")))
}

pub async fn get(conn: &mut PgConnection, id: ProjectId) -> Result<Option<Project>, StoreError> {
    let sql = format!("SELECT {PROJECT_COLUMNS} FROM projects p WHERE p.id = $1");
    Ok(sqlx::query_as(&sql).bind(id).fetch_optional(conn).await?)
}

pub async fn list(pool: &PgPool) -> Result<Vec<Project>, StoreError> {
    let sql = format!("SELECT {PROJECT_COLUMNS} FROM projects p ORDER BY p.id");
    Ok(sqlx::query_as(&sql).fetch_all(pool).await?)
}

pub async fn exists(pool: &PgPool, id: ProjectId) -> Result<bool, StoreError> {
    Ok(
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM projects WHERE id = $1)")
            .bind(id)
            .fetch_one(pool)
            .await?,
    )
}

/// A [`KeyGrant`]'s columns, from `project_keys k JOIN projects p`.
const GRANT_COLUMNS: &str = "p.id AS project_id, p.rate_limit_per_minute, k.id AS key_id, \
     k.rate_limit_per_minute AS key_rate_limit_per_minute, p.scrub_settings AS scrub";

/// The project an active key belongs to, if any.
pub async fn grant_for_key(
    pool: &PgPool,
    public_key: &str,
) -> Result<Option<KeyGrant>, StoreError> {
    let sql = format!(
        "SELECT {GRANT_COLUMNS} FROM project_keys k JOIN projects p ON p.id = k.project_id \
         WHERE k.public_key = $1 AND k.revoked_at IS NULL"
    );
    Ok(sqlx::query_as(&sql)
        .bind(public_key)
        .fetch_optional(pool)
        .await?)
}

/// An active key and what it grants.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct KeyedGrant {
    pub public_key: String,
    #[sqlx(flatten)]
    pub grant: KeyGrant,
}

/// The newest `limit` active keys with what each grants.
pub async fn active_grants(pool: &PgPool, limit: i64) -> Result<Vec<KeyedGrant>, StoreError> {
    let sql = format!(
        "SELECT k.public_key, {GRANT_COLUMNS} FROM project_keys k \
         JOIN projects p ON p.id = k.project_id \
         WHERE k.revoked_at IS NULL ORDER BY k.id DESC LIMIT $1"
    );
    Ok(sqlx::query_as(&sql).bind(limit).fetch_all(pool).await?)
}

/// Changes what the project scrubs (ingestion sees it within the key cache's lifetime).
pub async fn set_scrub_settings(
    pool: &PgPool,
    id: ProjectId,
    settings: &scrub::Settings,
) -> Result<(), StoreError> {
    sqlx::query("UPDATE projects SET scrub_settings = $2 WHERE id = $1")
        .bind(id)
        .bind(Json(settings))
        .execute(pool)
        .await?;
    Ok(())
}

pub async fn set_rate_limit(
    pool: &PgPool,
    id: ProjectId,
    per_minute: Option<i32>,
) -> Result<(), StoreError> {
    sqlx::query("UPDATE projects SET rate_limit_per_minute = $2 WHERE id = $1")
        .bind(id)
        .bind(per_minute)
        .execute(pool)
        .await?;
    Ok(())
}

/// How long the project's events are kept and how many at most (`None`: no cap).
/// On the pool or inside the caller's transaction.
pub async fn set_retention<'e>(
    executor: impl sqlx::PgExecutor<'e>,
    id: ProjectId,
    days: i32,
    max_events: Option<i64>,
) -> Result<(), StoreError> {
    sqlx::query("UPDATE projects SET retention_days = $2, max_events = $3 WHERE id = $1")
        .bind(id)
        .bind(days)
        .bind(max_events)
        .execute(executor)
        .await?;
    Ok(())
}

/// How long a project's events are kept and how many at most, read by the management API.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct Retention {
    pub retention_days: i32,
    pub max_events: Option<i64>,
}

pub async fn retention(pool: &PgPool, id: ProjectId) -> Result<Option<Retention>, StoreError> {
    Ok(
        sqlx::query_as("SELECT retention_days, max_events FROM projects WHERE id = $1")
            .bind(id)
            .fetch_optional(pool)
            .await?,
    )
}

/// What one request changes on a project; `None` leaves a field as it is, `Some(None)`
/// clears a nullable one.
#[derive(Debug, Default)]
pub struct ProjectChange {
    pub name: Option<String>,
    pub rate_limit_per_minute: Option<Option<i32>>,
    pub retention_days: Option<i32>,
    pub max_events: Option<Option<i64>>,
}

/// Applies `change` in one statement; false when there is no such project.
pub async fn update(
    pool: &PgPool,
    id: ProjectId,
    change: &ProjectChange,
) -> Result<bool, StoreError> {
    let done = sqlx::query(
        "UPDATE projects SET \
           name = COALESCE($2, name), \
           rate_limit_per_minute = CASE WHEN $3 THEN $4 ELSE rate_limit_per_minute END, \
           retention_days = COALESCE($5, retention_days), \
           max_events = CASE WHEN $6 THEN $7 ELSE max_events END \
         WHERE id = $1",
    )
    .bind(id)
    .bind(change.name.as_deref())
    .bind(change.rate_limit_per_minute.is_some())
    .bind(change.rate_limit_per_minute.flatten())
    .bind(change.retention_days)
    .bind(change.max_events.is_some())
    .bind(change.max_events.flatten())
    .execute(pool)
    .await?;
    Ok(done.rows_affected() > 0)
}

/// Deletes a project with everything it owns; false when there is no such project. Events
/// have no foreign key (the table is partitioned), so they go explicitly, after the project
/// row: deleting it cascades to the issues, which waits for writers updating them, and a
/// later writer can no longer add an issue for the project.
pub async fn delete(pool: &PgPool, id: ProjectId) -> Result<bool, StoreError> {
    let mut tx = pool.begin().await?;
    let deleted = sqlx::query("DELETE FROM projects WHERE id = $1")
        .bind(id)
        .execute(&mut *tx)
        .await?
        .rows_affected()
        > 0;
    if !deleted {
        return Ok(false);
    }
    sqlx::query("DELETE FROM events WHERE project_id = $1")
        .bind(id)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(true)
}

/// One ingestion key of a project.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Key {
    pub id: i64,
    pub project_id: ProjectId,
    pub public_key: String,
    pub created_at: DateTime<Utc>,
    pub revoked_at: Option<DateTime<Utc>>,
    /// Stored with the key; ingestion enforces the project's quota only (see `grant_for_key`).
    pub rate_limit_per_minute: Option<i32>,
}

const KEY_COLUMNS: &str =
    "id, project_id, public_key, created_at, revoked_at, rate_limit_per_minute";

pub async fn list_keys(pool: &PgPool, project_id: ProjectId) -> Result<Vec<Key>, StoreError> {
    let sql = format!("SELECT {KEY_COLUMNS} FROM project_keys WHERE project_id = $1 ORDER BY id");
    Ok(sqlx::query_as(&sql)
        .bind(project_id)
        .fetch_all(pool)
        .await?)
}

/// A new active key for the project (which must exist).
pub async fn create_key(
    pool: &PgPool,
    project_id: ProjectId,
    rate_limit_per_minute: Option<i32>,
) -> Result<Key, StoreError> {
    let sql = format!(
        "INSERT INTO project_keys (project_id, public_key, rate_limit_per_minute) \
         VALUES ($1, $2, $3) RETURNING {KEY_COLUMNS}"
    );
    Ok(sqlx::query_as(&sql)
        .bind(project_id)
        .bind(new_public_key())
        .bind(rate_limit_per_minute)
        .fetch_one(pool)
        .await?)
}

/// Sets (or with `None` clears) a key's quota; `None` when the project has no such key.
pub async fn set_key_rate_limit(
    pool: &PgPool,
    project_id: ProjectId,
    key_id: i64,
    per_minute: Option<i32>,
) -> Result<Option<Key>, StoreError> {
    let sql = format!(
        "UPDATE project_keys SET rate_limit_per_minute = $3 \
         WHERE id = $1 AND project_id = $2 RETURNING {KEY_COLUMNS}"
    );
    Ok(sqlx::query_as(&sql)
        .bind(key_id)
        .bind(project_id)
        .bind(per_minute)
        .fetch_optional(pool)
        .await?)
}

/// Revokes a key (the first revocation time is kept); false when the project has no such
/// key. Ingestion refuses it once the key cache's entry expires (`ingest::keys`).
pub async fn revoke_key(
    pool: &PgPool,
    project_id: ProjectId,
    key_id: i64,
) -> Result<bool, StoreError> {
    let done = sqlx::query(
        "UPDATE project_keys SET revoked_at = COALESCE(revoked_at, now()) \
         WHERE id = $1 AND project_id = $2",
    )
    .bind(key_id)
    .bind(project_id)
    .execute(pool)
    .await?;
    Ok(done.rows_affected() > 0)
}

/// `create` and `set_retention` in one transaction: a failure leaves no half-made project.
pub async fn create_with_retention(
    pool: &PgPool,
    slug: &str,
    name: &str,
    rate_limit_per_minute: Option<i32>,
    retention_days: i32,
    max_events: Option<i64>,
) -> Result<Project, StoreError> {
    let mut tx = pool.begin().await?;
    let project = create(&mut tx, slug, name, rate_limit_per_minute).await?;
    set_retention(&mut *tx, project.id, retention_days, max_events).await?;
    tx.commit().await?;
    Ok(project)
}
