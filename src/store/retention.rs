//! Retention: keeps disk use bounded without losing counts.
//!
//! Two rules, applied by one process at a time (a PostgreSQL advisory lock):
//! 1. **Age.** Daily partitions of `events` older than the longest retention of any project
//!    are dropped whole (cheap: no row is read). A project with a shorter window has its
//!    older rows deleted from the partitions that remain.
//! 2. **Cap.** A project over its `max_events` has its busiest issues thinned: each keeps
//!    its first and latest [`KEEP_EDGE`] events and every other event in between, round
//!    after round, so an issue seen a million times keeps its first occurrences, its
//!    recent ones, and a sample that grows sparser with volume.
//!
//! Issue rows (`times_seen`, first/last seen) and `minute_counts` are never touched: counts
//! and the detection series stay exact whatever is evicted. A project's superseded
//! compression dictionaries go once no event it keeps can have been compressed with them.

use std::sync::Arc;
use std::time::Duration;

use chrono::{Days, NaiveDate, Utc};
use sqlx::PgPool;

use crate::metrics::Metrics;

use super::dictionaries;
use super::partitions::partition_name;
use super::StoreError;
use crate::model::ProjectId;

/// Events kept at each end of an issue's history when it is thinned.
pub const KEEP_EDGE: i64 = 10;
/// Advisory lock key of the retention run ("seismo retention").
const LOCK_KEY: i64 = 0x5e15_3000_0000_0001;
/// Thinning rounds per project per run (each halves the middle of the chosen issues).
const MAX_ROUNDS: usize = 8;

/// What one run did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Report {
    pub partitions_dropped: Vec<String>,
    /// Events deleted because their project keeps fewer days than the partition's age.
    pub events_expired: u64,
    /// Events thinned out to bring projects under their cap.
    pub events_evicted: u64,
    /// False when another process held the retention lock (nothing done).
    pub ran: bool,
}

/// How often `seismo serve` runs retention.
pub const INTERVAL: Duration = Duration::from_secs(3_600);

/// Runs retention now and then every [`INTERVAL`] until `stop` turns true; each run that
/// did something is logged and counted.
pub async fn run_periodically(
    pool: PgPool,
    metrics: Arc<Metrics>,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    loop {
        match run(&pool, Utc::now().date_naive()).await {
            Ok(report) => record(&report, &metrics),
            Err(error) => tracing::warn!(%error, "retention run failed; retrying next interval"),
        }
        tokio::select! {
            _ = tokio::time::sleep(INTERVAL) => {}
            _ = stop.changed() => break,
        }
    }
}

/// Counts a run in the metrics and logs it when it removed anything.
pub fn record(report: &Report, metrics: &Metrics) {
    metrics
        .retention_partitions_dropped
        .inc_by(report.partitions_dropped.len() as u64);
    let removed = &metrics.retention_events_removed;
    removed
        .with_label_values(&["expired"])
        .inc_by(report.events_expired);
    removed
        .with_label_values(&["evicted"])
        .inc_by(report.events_evicted);
    if !report.partitions_dropped.is_empty() || report.events_expired + report.events_evicted > 0 {
        tracing::info!(
            partitions_dropped = ?report.partitions_dropped,
            events_expired = report.events_expired,
            events_evicted = report.events_evicted,
            "retention run"
        );
    }
}

/// One retention run as of `today`.
pub async fn run(pool: &PgPool, today: NaiveDate) -> Result<Report, StoreError> {
    Ok(super::while_locked(pool, LOCK_KEY, run_locked(pool, today))
        .await?
        .unwrap_or_default())
}

async fn run_locked(pool: &PgPool, today: NaiveDate) -> Result<Report, StoreError> {
    let mut report = Report {
        ran: true,
        ..Report::default()
    };
    let windows: Vec<(ProjectId, i32, Option<i64>)> =
        sqlx::query_as("SELECT id, retention_days, max_events FROM projects ORDER BY id")
            .fetch_all(pool)
            .await?;
    let longest = windows.iter().map(|w| w.1).max().unwrap_or(90);
    report.partitions_dropped = drop_partitions_before(pool, days_before(today, longest)).await?;
    for (project_id, days, max_events) in windows {
        let cutoff = days_before(today, days);
        if days < longest {
            report.events_expired += expire(pool, project_id, cutoff).await?;
        }
        dictionaries::forget_superseded(pool, project_id, cutoff).await?;
        if let Some(cap) = max_events {
            report.events_evicted += enforce_cap(pool, project_id, cap).await?;
        }
    }
    forget_spool_bookkeeping(pool).await?;
    Ok(report)
}

/// A spooled batch is replayed within hours of its outage; a week later its id need not be
/// remembered, nor the watermark of a process that died.
async fn forget_spool_bookkeeping(pool: &PgPool) -> Result<(), StoreError> {
    sqlx::query("DELETE FROM applied_batches WHERE applied_at < now() - interval '7 days'")
        .execute(pool)
        .await?;
    sqlx::query("DELETE FROM spool_watermarks WHERE expires_at < now() - interval '1 day'")
        .execute(pool)
        .await?;
    Ok(())
}

fn days_before(today: NaiveDate, days: i32) -> NaiveDate {
    today
        .checked_sub_days(Days::new(u64::try_from(days).unwrap_or(0)))
        .unwrap_or(NaiveDate::MIN)
}

/// Drops every daily partition of a day before `cutoff`; returns their names.
async fn drop_partitions_before(
    pool: &PgPool,
    cutoff: NaiveDate,
) -> Result<Vec<String>, StoreError> {
    let names: Vec<String> = sqlx::query_scalar(
        "SELECT c.relname::text FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid \
         WHERE i.inhparent = 'events'::regclass ORDER BY 1",
    )
    .fetch_all(pool)
    .await?;
    let mut dropped = Vec::new();
    for name in names {
        let Some(day) = partition_day(&name) else {
            continue;
        };
        // The name is ours (it round-trips through the day), never user text.
        if day < cutoff {
            sqlx::query(&format!("DROP TABLE IF EXISTS {name}"))
                .execute(pool)
                .await?;
            dropped.push(name);
        }
    }
    Ok(dropped)
}

/// The day of one of our partitions, by its name; `None` for any other table.
fn partition_day(name: &str) -> Option<NaiveDate> {
    let digits = name.strip_prefix("events_p")?;
    let day = NaiveDate::parse_from_str(digits, "%Y%m%d").ok()?;
    // Only the exact name we would give that day (chrono also accepts short fields).
    (partition_name(day) == name).then_some(day)
}

async fn expire(
    pool: &PgPool,
    project_id: ProjectId,
    cutoff: NaiveDate,
) -> Result<u64, StoreError> {
    Ok(
        sqlx::query("DELETE FROM events WHERE project_id = $1 AND received_day < $2")
            .bind(project_id)
            .bind(cutoff)
            .execute(pool)
            .await?
            .rows_affected(),
    )
}

/// Thins the busiest issues until the project holds at most `cap` events (or nothing is
/// left to thin).
async fn enforce_cap(pool: &PgPool, project_id: ProjectId, cap: i64) -> Result<u64, StoreError> {
    let mut evicted = 0;
    for _ in 0..MAX_ROUNDS {
        let stored: Vec<(i64, i64)> = sqlx::query_as(
            "SELECT issue_id, count(*) FROM events WHERE project_id = $1 \
             GROUP BY issue_id ORDER BY count(*) DESC, issue_id",
        )
        .bind(project_id)
        .fetch_all(pool)
        .await?;
        let total: i64 = stored.iter().map(|(_, n)| n).sum();
        let mut excess = total - cap;
        if excess <= 0 {
            break;
        }
        let mut chosen = Vec::new();
        for (issue_id, count) in stored {
            let thinnable = (count - 2 * KEEP_EDGE).max(0) / 2;
            if excess <= 0 || thinnable == 0 {
                break;
            }
            chosen.push(issue_id);
            excess -= thinnable;
        }
        if chosen.is_empty() {
            break;
        }
        evicted += thin(pool, project_id, &chosen).await?;
    }
    Ok(evicted)
}

/// Deletes every other event of each issue's middle (all but its first and last
/// [`KEEP_EDGE`]).
async fn thin(pool: &PgPool, project_id: ProjectId, issues: &[i64]) -> Result<u64, StoreError> {
    Ok(sqlx::query(
        "WITH ranked AS ( \
           SELECT event_id, received_day, \
                  row_number() OVER (PARTITION BY issue_id ORDER BY received_at, event_id) AS rank, \
                  count(*) OVER (PARTITION BY issue_id) AS stored \
           FROM events WHERE project_id = $1 AND issue_id = ANY($2)) \
         DELETE FROM events e USING ranked r \
         WHERE e.event_id = r.event_id AND e.received_day = r.received_day \
           AND r.rank > $3 AND r.rank <= r.stored - $3 AND (r.rank - $3) % 2 = 1",
    )
    .bind(project_id)
    .bind(issues)
    .bind(KEEP_EDGE)
    .execute(pool)
    .await?
    .rows_affected())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_our_partition_names_parse() {
        let day = NaiveDate::from_ymd_opt(2026, 1, 31).expect("date");
        assert_eq!(partition_day(&partition_name(day)), Some(day));
        assert_eq!(partition_day("events_p2026013"), None);
        assert_eq!(partition_day("other_p20260131"), None);
    }
}
