//! Projects and their ingestion keys.

use chrono::{DateTime, Utc};
use sqlx::types::Json;
use sqlx::{PgConnection, PgPool};

use super::{is_unique_violation, StoreError};
use crate::scrub;

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Project {
    pub id: i64,
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
    pub project_id: i64,
    pub rate_limit_per_minute: Option<i32>,
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
    let id: i64 = sqlx::query_scalar(
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

pub async fn get(conn: &mut PgConnection, id: i64) -> Result<Option<Project>, StoreError> {
    let sql = format!("SELECT {PROJECT_COLUMNS} FROM projects p WHERE p.id = $1");
    Ok(sqlx::query_as(&sql).bind(id).fetch_optional(conn).await?)
}

pub async fn list(pool: &PgPool) -> Result<Vec<Project>, StoreError> {
    let sql = format!("SELECT {PROJECT_COLUMNS} FROM projects p ORDER BY p.id");
    Ok(sqlx::query_as(&sql).fetch_all(pool).await?)
}

pub async fn exists(pool: &PgPool, id: i64) -> Result<bool, StoreError> {
    Ok(
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM projects WHERE id = $1)")
            .bind(id)
            .fetch_one(pool)
            .await?,
    )
}

/// The project an active key belongs to, if any.
pub async fn grant_for_key(
    pool: &PgPool,
    public_key: &str,
) -> Result<Option<KeyGrant>, StoreError> {
    Ok(sqlx::query_as(
        "SELECT p.id AS project_id, p.rate_limit_per_minute, p.scrub_settings AS scrub FROM project_keys k \
         JOIN projects p ON p.id = k.project_id \
         WHERE k.public_key = $1 AND k.revoked_at IS NULL",
    )
    .bind(public_key)
    .fetch_optional(pool)
    .await?)
}

/// Changes what the project scrubs (ingestion sees it within the key cache's lifetime).
pub async fn set_scrub_settings(
    pool: &PgPool,
    id: i64,
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
    id: i64,
    per_minute: Option<i32>,
) -> Result<(), StoreError> {
    sqlx::query("UPDATE projects SET rate_limit_per_minute = $2 WHERE id = $1")
        .bind(id)
        .bind(per_minute)
        .execute(pool)
        .await?;
    Ok(())
}
