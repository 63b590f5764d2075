//! Releases in the order each project first saw them, which is what "older than the release
//! an issue was resolved in" means.

use chrono::{DateTime, Utc};
use sqlx::PgConnection;

use super::StoreError;

/// Records the releases first seen in this batch: `(project, version, seen at)`, sorted by
/// the caller. A known release is left alone (and not locked: every batch of a service
/// names the same release, so updating it would serialize the writers).
pub async fn record(
    conn: &mut PgConnection,
    seen: &[(i64, &str, DateTime<Utc>)],
) -> Result<(), StoreError> {
    if seen.is_empty() {
        return Ok(());
    }
    sqlx::query(
        "INSERT INTO releases (project_id, version, first_seen) \
         SELECT * FROM UNNEST($1::int8[], $2::text[], $3::timestamptz[]) \
         ON CONFLICT (project_id, version) DO NOTHING",
    )
    .bind(seen.iter().map(|s| s.0).collect::<Vec<_>>())
    .bind(seen.iter().map(|s| s.1).collect::<Vec<_>>())
    .bind(seen.iter().map(|s| s.2).collect::<Vec<_>>())
    .execute(conn)
    .await?;
    Ok(())
}
