//! The detector's durable memory: per-series state, seasonal profiles, the bucket they
//! are current through, and the leases that give each project to one process.
//!
//! Leases: a project belongs to shard `id % shards`, and each live process (a heartbeat
//! row) holds an equal share of the shards, rounded up (see [`claim_shards`]).
//!
//! A checkpoint is written in the same transaction as the incidents its buckets decided,
//! and only if it still is where this process loaded it from: a process that lost its
//! lease (another advanced the checkpoint meanwhile) rolls back instead of deciding the
//! same buckets twice.
//!
//! Every series' state of a project is one document on the checkpoint row: a JSON array
//! of [`SavedSeries`], zstd-compressed, written in one statement (100,000 series as
//! 100,000 jsonb rows took seconds to replace). Seasonal profiles, a few per project,
//! stay rows of their own.

use std::borrow::Cow;
use std::io::Write as _;

use chrono::{DateTime, Utc};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use sqlx::types::Json;
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use super::StoreError;
use crate::model::{ProjectId, Scope};

/// One series' stored state: where, what it measures (`count` | `rate`), and the state.
pub struct StoredSeries<S> {
    pub scope: Scope,
    pub measure: String,
    pub state: S,
}

#[derive(sqlx::FromRow)]
struct CheckpointRow {
    last_bucket: DateTime<Utc>,
    state_bucket: Option<DateTime<Utc>>,
    /// The series document (see the module doc); `None` until the first save.
    series: Option<Vec<u8>>,
}

/// One series in the stored document: its scope's columns, its measure, its state.
#[derive(Serialize, Deserialize)]
struct SavedSeries<'a, S> {
    scope: Cow<'a, str>,
    service: Cow<'a, str>,
    issue_id: i64,
    measure: Cow<'a, str>,
    state: S,
}

/// zstd level of the document: the fastest, as it is written inside the pass's
/// transaction (`bench/detect_pass.rs` prints its size).
const DOCUMENT_LEVEL: i32 = 1;

/// Everything stored for one project: series, profiles by service, the checkpoint.
pub struct Snapshot<S, P> {
    pub series: Vec<StoredSeries<S>>,
    pub profiles: Vec<(String, P)>,
    pub last_bucket: Option<DateTime<Utc>>,
    /// The bucket `series` and `profiles` are current through (may lag `last_bucket`).
    pub state_bucket: Option<DateTime<Utc>>,
}

pub async fn load<
    S: DeserializeOwned + Send + Unpin + 'static,
    P: DeserializeOwned + Send + Unpin + 'static,
>(
    pool: &PgPool,
    project_id: ProjectId,
) -> Result<Snapshot<S, P>, StoreError> {
    // One snapshot for both reads: a state saved by another process between them would
    // otherwise pair new profiles with an old checkpoint, or the reverse.
    let mut tx = pool.begin().await?;
    sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        .execute(&mut *tx)
        .await?;
    let profiles: Vec<(String, Json<serde_json::Value>)> =
        sqlx::query_as("SELECT service, profile FROM detector_profiles WHERE project_id = $1")
            .bind(project_id)
            .fetch_all(&mut *tx)
            .await?;
    let checkpoint: Option<CheckpointRow> = sqlx::query_as(
        "SELECT last_bucket, state_bucket, series FROM detector_checkpoints WHERE project_id = $1",
    )
    .bind(project_id)
    .fetch_optional(&mut *tx)
    .await?;
    tx.commit().await?;
    let (last_bucket, state_bucket, document) = match checkpoint {
        Some(row) => (Some(row.last_bucket), row.state_bucket, row.series),
        None => (None, None, None),
    };
    Ok(Snapshot {
        series: document.map_or_else(Vec::new, |d| read_document(project_id, &d)),
        profiles: profiles
            .into_iter()
            .filter_map(|(s, Json(p))| Some((s, readable(project_id, "profile", p)?)))
            .collect(),
        last_bucket,
        state_bucket,
    })
}

/// The series of a stored document. Decoded series by series: a state saved by an older
/// layout that no longer reads is discarded (that series starts afresh) instead of
/// failing the project's whole load on every pass; a document that does not read at all
/// starts them all afresh.
fn read_document<S: DeserializeOwned>(
    project_id: ProjectId,
    document: &[u8],
) -> Vec<StoredSeries<S>> {
    // Decompressed whole, then parsed: serde_json reads an `io::Read` byte by byte.
    let saved: Vec<SavedSeries<'_, serde_json::Value>> = match zstd::decode_all(document)
        .map_err(|e| e.to_string())
        .and_then(|json| serde_json::from_slice(&json).map_err(|e| e.to_string()))
    {
        Ok(saved) => saved,
        Err(error) => {
            tracing::warn!(%project_id, %error, "stored detector series unreadable; starting them afresh");
            return Vec::new();
        }
    };
    saved
        .into_iter()
        .filter_map(|s| {
            Some(StoredSeries {
                scope: Scope::from_columns(&s.scope, s.service.into_owned(), s.issue_id)?,
                measure: s.measure.into_owned(),
                state: readable(project_id, "series", s.state)?,
            })
        })
        .collect()
}

/// The document of these series (see the module doc), compressed as it is written.
fn write_document<S: Serialize>(series: &[StoredSeries<&S>]) -> Result<Vec<u8>, StoreError> {
    let corrupt = |e: &dyn std::fmt::Display| StoreError::Corrupt(format!("detector state: {e}"));
    let mut encoder =
        zstd::stream::write::Encoder::new(Vec::new(), DOCUMENT_LEVEL).map_err(|e| corrupt(&e))?;
    let mut writer = std::io::BufWriter::new(&mut encoder);
    let saved: Vec<SavedSeries<'_, &S>> = series
        .iter()
        .map(|s| {
            let (scope, service, issue_id) = s.scope.columns();
            SavedSeries {
                scope: Cow::Borrowed(scope),
                service: Cow::Borrowed(service),
                issue_id,
                measure: Cow::Borrowed(&s.measure),
                state: s.state,
            }
        })
        .collect();
    serde_json::to_writer(&mut writer, &saved).map_err(|e| corrupt(&e))?;
    writer.flush().map_err(|e| corrupt(&e))?;
    drop(writer);
    encoder.finish().map_err(|e| corrupt(&e))
}

/// A stored state in this build's layout, or `None` (logged) when it no longer reads.
fn readable<T: DeserializeOwned>(
    project_id: ProjectId,
    what: &str,
    value: serde_json::Value,
) -> Option<T> {
    match serde_json::from_value(value) {
        Ok(state) => Some(state),
        Err(error) => {
            tracing::warn!(%project_id, what, %error, "stored detector state unreadable; starting it afresh");
            None
        }
    }
}

/// Moves the checkpoint from `previous` (what this process loaded; `None` when there was
/// none) to `bucket`. Compare-and-swap: false when the stored checkpoint is not `previous`
/// any more — another process decided these buckets meanwhile, and the caller must roll
/// back and reload.
pub async fn advance_checkpoint(
    conn: &mut PgConnection,
    project_id: ProjectId,
    previous: Option<DateTime<Utc>>,
    bucket: DateTime<Utc>,
) -> Result<bool, StoreError> {
    let query = match previous {
        None => sqlx::query(
            "INSERT INTO detector_checkpoints (project_id, last_bucket) VALUES ($1, $2) \
             ON CONFLICT (project_id) DO NOTHING",
        )
        .bind(project_id)
        .bind(bucket),
        Some(previous) => sqlx::query(
            "UPDATE detector_checkpoints SET last_bucket = $2 WHERE project_id = $1 AND last_bucket = $3",
        )
        .bind(project_id)
        .bind(bucket)
        .bind(previous),
    };
    Ok(query.execute(conn).await?.rows_affected() == 1)
}

/// Replaces the project's stored series and profiles with these, current through
/// `bucket` (call after [`advance_checkpoint`], in the same transaction).
pub async fn save<S: Serialize + Sync, P: Serialize + Sync>(
    conn: &mut PgConnection,
    project_id: ProjectId,
    series: &[StoredSeries<&S>],
    profiles: &[(&str, &P)],
    bucket: DateTime<Utc>,
) -> Result<(), StoreError> {
    let document = write_document(series)?;
    sqlx::query(
        "UPDATE detector_checkpoints SET state_bucket = $2, series = $3 WHERE project_id = $1",
    )
    .bind(project_id)
    .bind(bucket)
    .bind(document)
    .execute(&mut *conn)
    .await?;
    for (service, profile) in profiles {
        sqlx::query(
            "INSERT INTO detector_profiles (project_id, service, profile) VALUES ($1, $2, $3) \
             ON CONFLICT (project_id, service) DO UPDATE SET profile = EXCLUDED.profile",
        )
        .bind(project_id)
        .bind(service)
        .bind(Json(profile))
        .execute(&mut *conn)
        .await?;
    }
    Ok(())
}

/// Renews this process's heartbeat and leases, gives back the shards past its fair share
/// (`shards` divided by the live processes, rounded up; the highest shards first) and
/// takes free or expired ones up to it. Returns the shards held now, in order.
///
/// Leases only spread the work: two processes deciding the same project meanwhile (a
/// shard given back here and not yet dropped there) are kept apart by the checkpoint's
/// compare-and-swap ([`advance_checkpoint`]).
pub async fn claim_shards(
    pool: &PgPool,
    holder: Uuid,
    shards: i32,
    lease_seconds: f64,
) -> Result<Vec<i32>, StoreError> {
    sqlx::query(
        "INSERT INTO detector_holders (holder, expires_at) \
         VALUES ($1, now() + make_interval(secs => $2)) \
         ON CONFLICT (holder) DO UPDATE SET expires_at = EXCLUDED.expires_at",
    )
    .bind(holder)
    .bind(lease_seconds)
    .execute(pool)
    .await?;
    // A lapsed heartbeat is a process that crashed or was killed: it no longer counts,
    // and its row goes (it inserts a new one if it ever comes back).
    let others: i64 = sqlx::query_scalar(
        "WITH lapsed AS (DELETE FROM detector_holders WHERE expires_at < now()) \
         SELECT count(*) FROM detector_holders WHERE holder <> $1 AND expires_at > now()",
    )
    .bind(holder)
    .fetch_one(pool)
    .await?;
    let share = fair_share(shards, others);
    let mut held: Vec<i32> = sqlx::query_scalar(
        "UPDATE detector_leases SET expires_at = now() + make_interval(secs => $2) \
         WHERE holder = $1 RETURNING shard",
    )
    .bind(holder)
    .bind(lease_seconds)
    .fetch_all(pool)
    .await?;
    held.sort_unstable();
    if held.len() > share {
        let given_back = held.split_off(share);
        sqlx::query("DELETE FROM detector_leases WHERE holder = $1 AND shard = ANY($2)")
            .bind(holder)
            .bind(given_back)
            .execute(pool)
            .await?;
    } else if held.len() < share {
        let taken: Vec<i32> = sqlx::query_scalar(
            "INSERT INTO detector_leases AS l (shard, holder, expires_at) \
             SELECT s, $1, now() + make_interval(secs => $3) FROM generate_series(0, $2 - 1) AS s \
             WHERE NOT EXISTS \
                 (SELECT 1 FROM detector_leases o WHERE o.shard = s AND o.expires_at >= now()) \
             ORDER BY s LIMIT $4 \
             ON CONFLICT (shard) DO UPDATE SET holder = EXCLUDED.holder, expires_at = EXCLUDED.expires_at \
             WHERE l.expires_at < now() \
             RETURNING shard",
        )
        .bind(holder)
        .bind(shards)
        .bind(lease_seconds)
        .bind((share - held.len()) as i64)
        .fetch_all(pool)
        .await?;
        held.extend(taken);
        held.sort_unstable();
    }
    Ok(held)
}

/// Shards one process should hold when `others` other processes are live.
fn fair_share(shards: i32, others: i64) -> usize {
    let processes = others.max(0) + 1;
    (i64::from(shards.max(0)) + processes - 1).div_euclid(processes) as usize
}

/// Gives the leases and the heartbeat back (on shutdown), so the others take over at once.
pub async fn release_shards(pool: &PgPool, holder: Uuid) -> Result<(), StoreError> {
    sqlx::query("DELETE FROM detector_leases WHERE holder = $1")
        .bind(holder)
        .execute(pool)
        .await?;
    sqlx::query("DELETE FROM detector_holders WHERE holder = $1")
        .bind(holder)
        .execute(pool)
        .await?;
    Ok(())
}

/// Projects in the given shards (`id % shard_count`).
pub async fn projects_in(
    pool: &PgPool,
    shards: &[i32],
    shard_count: i32,
) -> Result<Vec<ProjectId>, StoreError> {
    Ok(
        sqlx::query_scalar("SELECT id FROM projects WHERE (id % $2)::int = ANY($1) ORDER BY id")
            .bind(shards)
            .bind(shard_count)
            .fetch_all(pool)
            .await?,
    )
}

#[cfg(test)]
mod tests {
    use super::fair_share;

    #[test]
    fn the_shards_are_shared_rounding_up() {
        assert_eq!(fair_share(16, 0), 16);
        assert_eq!(fair_share(16, 1), 8);
        assert_eq!(fair_share(16, 2), 6);
        assert_eq!(fair_share(16, 15), 1);
        assert_eq!(fair_share(16, 40), 1);
    }
}
