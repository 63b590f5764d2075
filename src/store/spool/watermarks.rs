//! Where each process's spool stands, in the database, so detection in every process
//! holds back the minutes a spooled batch still belongs to.

use chrono::{DateTime, Utc};
use sqlx::PgPool;
use uuid::Uuid;

use crate::store::StoreError;

/// How long a published watermark holds without being renewed (a process that died with
/// a full spool must not hold detection back for ever).
pub const LEASE_SECONDS: f64 = 60.0;

/// Publishes (or renews) this process's oldest waiting minute.
pub async fn publish(pool: &PgPool, holder: Uuid, oldest: DateTime<Utc>) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO spool_watermarks (holder, oldest, expires_at) \
         VALUES ($1, $2, now() + make_interval(secs => $3)) \
         ON CONFLICT (holder) DO UPDATE SET oldest = EXCLUDED.oldest, expires_at = EXCLUDED.expires_at",
    )
    .bind(holder)
    .bind(oldest)
    .bind(LEASE_SECONDS)
    .execute(pool)
    .await?;
    Ok(())
}

pub async fn withdraw(pool: &PgPool, holder: Uuid) -> Result<(), StoreError> {
    sqlx::query("DELETE FROM spool_watermarks WHERE holder = $1")
        .bind(holder)
        .execute(pool)
        .await?;
    Ok(())
}

/// The oldest minute any live process still has spooled, if any.
pub async fn oldest(pool: &PgPool) -> Result<Option<DateTime<Utc>>, StoreError> {
    Ok(
        sqlx::query_scalar("SELECT min(oldest) FROM spool_watermarks WHERE expires_at > now()")
            .fetch_one(pool)
            .await?,
    )
}
