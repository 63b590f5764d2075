//! All SQL lives here: one file per aggregate, each function taking a connection or a
//! transaction so the caller owns the transaction.
//!
//! The write path: ingestion hands [`events::NewEvent`]s to the [`writer::Writer`], which
//! batches events from many requests into one transaction (group commit): releases, issues
//! (one upsert row per fingerprint, counts summed first), events (`UNNEST` insert into the
//! day's partition) and per-minute counts; only after COMMIT is each request answered.
//! The read path: the API calls `issues` and `events` directly on the pool. Event documents
//! are compressed with each project's trained dictionary (`dictionaries`), which a row names
//! by version.

pub mod batch;
pub mod counts;
pub mod deliveries;
pub mod detector;
pub mod dictionaries;
pub mod endpoints;
pub mod events;
pub mod gauges;
pub mod incident_context;
pub mod incidents;
pub mod issues;
pub mod partitions;
pub mod projects;
pub mod recovery;
pub mod releases;
pub mod retention;
pub mod rules;
pub mod silences;
pub mod spool;
pub mod stats;
pub mod tokens;
pub mod writer;

use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::PgPool;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    #[error("migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("{0} already exists")]
    Conflict(String),
    #[error("stored event data is unreadable: {0}")]
    Corrupt(String),
}

impl StoreError {
    /// True when the database could not be reached or is shutting down (as opposed to a
    /// query it refused): worth retrying later, not a bug in the data.
    pub fn is_unavailable(&self) -> bool {
        let StoreError::Database(error) = self else {
            return false;
        };
        match error {
            sqlx::Error::Io(_)
            | sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::Tls(_) => true,
            sqlx::Error::Database(e) => e.code().is_some_and(|code| {
                // Class 08 connection exceptions, 57P operator intervention (shutdown,
                // cannot connect now), 53300 too many connections, 3D000 database gone.
                code.starts_with("08")
                    || code.starts_with("57P")
                    || code == "53300"
                    || code == "3D000"
            }),
            _ => false,
        }
    }

    /// True when a row referenced a row that does not exist (any more).
    pub fn is_foreign_key_violation(&self) -> bool {
        matches!(self, StoreError::Database(e) if e
            .as_database_error()
            .and_then(|d| d.code())
            .is_some_and(|code| code == "23503"))
    }

    /// True for a deadlock victim or a serialization failure: the same work succeeds when
    /// simply tried again.
    pub fn is_transient(&self) -> bool {
        matches!(self, StoreError::Database(e) if e
            .as_database_error()
            .and_then(|d| d.code())
            .is_some_and(|code| code == "40P01" || code == "40001"))
    }
}

/// One column of `rows`, as the array parameter an `UNNEST` reads it from.
pub(crate) fn column<'a, T, U>(rows: &'a [T], value: impl Fn(&'a T) -> U) -> Vec<U> {
    rows.iter().map(value).collect()
}

/// The PostgreSQL error code for a unique violation.
pub(crate) fn is_unique_violation(error: &sqlx::Error) -> bool {
    has_sqlstate(error, "23505")
}

/// Whether the database answered with this SQLSTATE.
pub(crate) fn has_sqlstate(error: &sqlx::Error, code: &str) -> bool {
    error
        .as_database_error()
        .and_then(|e| e.code())
        .is_some_and(|c| c == code)
}

/// Runs `work` while this process holds PostgreSQL's session advisory lock `key`, so that
/// one process of many does it; `None`, with nothing done, when another holds the lock.
pub async fn while_locked<T>(
    pool: &PgPool,
    key: i64,
    work: impl std::future::Future<Output = Result<T, StoreError>>,
) -> Result<Option<T>, StoreError> {
    let mut conn = pool.acquire().await?;
    let locked: bool = sqlx::query_scalar("SELECT pg_try_advisory_lock($1)")
        .bind(key)
        .fetch_one(&mut *conn)
        .await?;
    if !locked {
        return Ok(None);
    }
    let result = work.await;
    sqlx::query("SELECT pg_advisory_unlock($1)")
        .bind(key)
        .execute(&mut *conn)
        .await?;
    result.map(Some)
}

/// Opens a pool. Connections are few on purpose: the writer batches, so throughput comes
/// from batch size, not from connection count.
pub async fn connect(url: &str, max_connections: u32) -> Result<PgPool, StoreError> {
    let options: PgConnectOptions = url.parse()?;
    let pool = PgPoolOptions::new()
        .max_connections(max_connections)
        .acquire_timeout(Duration::from_secs(5))
        .connect_with(options)
        .await?;
    Ok(pool)
}

pub async fn migrate(pool: &PgPool) -> Result<(), StoreError> {
    sqlx::migrate!("./migrations").run(pool).await?;
    Ok(())
}

/// The server's version string (`seismo check` shows it).
pub async fn server_version(pool: &PgPool) -> Result<String, StoreError> {
    Ok(sqlx::query_scalar("SHOW server_version")
        .fetch_one(pool)
        .await?)
}

/// True when `SELECT 1` answers: what `/readyz` reports.
pub async fn ping(pool: &PgPool) -> bool {
    sqlx::query("SELECT 1").execute(pool).await.is_ok()
}

/// Creates a database (on a connection to another one) unless it exists.
pub async fn create_database_if_missing(admin: &PgPool, name: &str) -> Result<(), StoreError> {
    let exists: bool =
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)")
            .bind(name)
            .fetch_one(admin)
            .await?;
    if !exists {
        // Identifiers cannot be bound as parameters: quote it, doubling any quote inside.
        let quoted = format!("\"{}\"", name.replace('"', "\"\""));
        sqlx::query(&format!("CREATE DATABASE {quoted}"))
            .execute(admin)
            .await?;
    }
    Ok(())
}
