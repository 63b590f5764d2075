//! Releases in the order each project first saw them, which is what "older than the release
//! an issue was resolved in" means.

use chrono::{DateTime, Utc};
use sqlx::PgConnection;

use super::StoreError;

/// Records the batch's releases: `(project, version, seen at)`, sorted by the caller.
pub async fn record(
    conn: &mut PgConnection,
    seen: &[(i64, &str, DateTime<Utc>)],
) -> Result<(), StoreError> {
    if seen.is_empty() {
        return Ok(());
    }
    sqlx::query(
        "INSERT INTO releases AS r (project_id, version, first_seen, last_seen) \
         SELECT p, v, t, t FROM UNNEST($1::int8[], $2::text[], $3::timestamptz[]) AS b(p, v, t) \
         ON CONFLICT (project_id, version) DO UPDATE SET last_seen = GREATEST(r.last_seen, EXCLUDED.last_seen)",
    )
    .bind(seen.iter().map(|s| s.0).collect::<Vec<_>>())
    .bind(seen.iter().map(|s| s.1).collect::<Vec<_>>())
    .bind(seen.iter().map(|s| s.2).collect::<Vec<_>>())
    .execute(conn)
    .await?;
    Ok(())
}
