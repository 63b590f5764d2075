//! The three probabilities of the fault-tolerance model (DESIGN.md §5), counted from what
//! Seismo stores, for one project or all of them, since a time or over all time.
//!
//! **Detection.** `P_detect = 1 − P_FN − P_FP`. Seismo cannot know by itself whether an
//! incident was a real fault, so only incidents a person labelled count:
//! `true_positive` (TP) and `false_positive` (FP) labels on incidents Seismo opened, and
//! `missed` (a fault people saw that Seismo never flagged, reported with
//! `POST /api/v1/incidents`). Each labelled incident is one detection outcome, so with
//! `n = TP + FP + missed`:
//!
//! ```text
//! P_FP = FP / n        (an alarm with no fault behind it)
//! P_FN = missed / n    (a fault with no alarm)
//! P_detect = 1 − P_FN − P_FP = TP / n
//! ```
//!
//! It is undefined (`None`) when nothing is labelled: unlabelled incidents say nothing about
//! either error, and counting them as correct would flatter the detector. An incident is
//! counted by when it was opened (for a missed fault: when the fault began).
//!
//! **Recovery.** `P_recover = 1 − P_false_recover − P_no_recover` over recovery actions whose
//! verification window ended: succeeded (the anomaly cleared and stayed cleared), false
//! recovery (cleared, then came back) and no recovery (never cleared), divided by those
//! attempts, counted by when the verdict was reached (`recovery_actions.decided_at`).
//! Undefined until one verification has ended.
//!
//! **Handling.** `P_handle = handled / events` over error events: an event is unhandled when
//! an exception's `mechanism.handled` is false (a crash), handled otherwise. The article's
//! form `1 − P_false_handle − P_no_handle` reduces to this: an unhandled event is a
//! "no handle", while an error the application handled wrongly (swallowed) never reaches
//! Seismo as such, so `P_false_handle` is taken as 0. The counts come from the project
//! series of `minute_counts` (`events`, `unhandled`), so `since` has minute resolution:
//! minutes starting at or after `since` count. Undefined when there are no events.

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::PgPool;

use super::StoreError;
use crate::metrics::Metrics;
use crate::model::ProjectId;

/// `part / whole`, undefined for an empty whole.
fn share(part: i64, whole: i64) -> Option<f64> {
    (whole > 0).then(|| part as f64 / whole as f64)
}

/// Labelled detection outcomes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct DetectionCounts {
    pub true_positives: i64,
    pub false_positives: i64,
    pub missed: i64,
}

impl DetectionCounts {
    pub fn labelled(&self) -> i64 {
        self.true_positives + self.false_positives + self.missed
    }

    /// `1 − missed/n − FP/n`, computed as its equal `TP/n` so that 3 of 5 is exactly 0.6
    /// (no rounding from the subtractions); `None` when nothing is labelled.
    pub fn probability(&self) -> Option<f64> {
        share(self.true_positives, self.labelled())
    }
}

/// Recovery actions whose verification window ended, by outcome.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct RecoveryCounts {
    pub succeeded: i64,
    pub false_recoveries: i64,
    pub not_recovered: i64,
}

impl RecoveryCounts {
    pub fn attempts(&self) -> i64 {
        self.succeeded + self.false_recoveries + self.not_recovered
    }

    /// `1 − false/attempts − none/attempts`, computed as its equal `succeeded/attempts`;
    /// `None` without attempts.
    pub fn probability(&self) -> Option<f64> {
        share(self.succeeded, self.attempts())
    }
}

/// Error events by whether the application handled them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct HandlingCounts {
    pub handled: i64,
    pub unhandled: i64,
}

impl HandlingCounts {
    pub fn events(&self) -> i64 {
        self.handled + self.unhandled
    }

    /// `handled / events`, `None` without events.
    pub fn probability(&self) -> Option<f64> {
        share(self.handled, self.events())
    }
}

/// The three sets of counts for one scope (a project or all) and period.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Stats {
    pub detection: DetectionCounts,
    pub recovery: RecoveryCounts,
    pub handling: HandlingCounts,
}

/// Labelled incidents opened at or after `since`, of `project` (or all projects).
pub async fn detection(
    pool: &PgPool,
    project: Option<ProjectId>,
    since: Option<DateTime<Utc>>,
) -> Result<DetectionCounts, StoreError> {
    Ok(sqlx::query_as(
        "SELECT count(*) FILTER (WHERE label = 'true_positive') AS true_positives, \
                count(*) FILTER (WHERE label = 'false_positive') AS false_positives, \
                count(*) FILTER (WHERE label = 'missed') AS missed \
         FROM incidents \
         WHERE label IS NOT NULL \
           AND ($1::bigint IS NULL OR project_id = $1) \
           AND ($2::timestamptz IS NULL OR opened_at >= $2)",
    )
    .bind(project)
    .bind(since)
    .fetch_one(pool)
    .await?)
}

/// Recovery actions whose verification ended at or after `since` (see `store::recovery`).
pub async fn recovery(
    pool: &PgPool,
    project: Option<ProjectId>,
    since: Option<DateTime<Utc>>,
) -> Result<RecoveryCounts, StoreError> {
    super::recovery::counts(pool, project, since).await
}

/// Error events since `since`: from the project series' minutes starting then; over all
/// time, from the issues' totals — the same events, without reading every minute ever
/// counted (the gauges ask for all time on every stats request). Only a deleted issue's
/// events differ: they leave the all-time totals, not the minutes.
pub async fn handling(
    pool: &PgPool,
    project: Option<ProjectId>,
    since: Option<DateTime<Utc>>,
) -> Result<HandlingCounts, StoreError> {
    let sql = match since {
        Some(_) => {
            "SELECT coalesce(sum(events), 0)::bigint, coalesce(sum(unhandled), 0)::bigint \
             FROM minute_counts \
             WHERE scope = 'project' AND ($1::bigint IS NULL OR project_id = $1) AND minute >= $2"
        }
        None => {
            "SELECT coalesce(sum(times_seen), 0)::bigint, coalesce(sum(times_unhandled), 0)::bigint \
             FROM issues WHERE ($1::bigint IS NULL OR project_id = $1) AND $2::timestamptz IS NULL"
        }
    };
    let (events, unhandled): (i64, i64) = sqlx::query_as(sql)
        .bind(project)
        .bind(since)
        .fetch_one(pool)
        .await?;
    Ok(HandlingCounts {
        handled: events - unhandled,
        unhandled,
    })
}

/// All three, for `project` (or all projects) since `since` (or all time).
pub async fn stats(
    pool: &PgPool,
    project: Option<ProjectId>,
    since: Option<DateTime<Utc>>,
) -> Result<Stats, StoreError> {
    Ok(Stats {
        detection: detection(pool, project, since).await?,
        recovery: recovery(pool, project, since).await?,
        handling: handling(pool, project, since).await?,
    })
}

/// Sets the three probability gauges to their values over all projects and all time, and
/// returns the counts behind them. A probability that is undefined leaves its gauge without
/// a sample (see [`Metrics::set_probability`]) rather than exporting 0 or NaN.
pub async fn refresh_gauges(pool: &PgPool, metrics: &Metrics) -> Result<Stats, StoreError> {
    let all = stats(pool, None, None).await?;
    Metrics::set_probability(&metrics.detection_probability, all.detection.probability());
    Metrics::set_probability(&metrics.recovery_probability, all.recovery.probability());
    Metrics::set_probability(&metrics.handling_probability, all.handling.probability());
    Ok(all)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detection_is_true_positives_over_all_labelled() {
        let counts = DetectionCounts {
            true_positives: 3,
            false_positives: 1,
            missed: 1,
        };
        assert_eq!(counts.labelled(), 5);
        let p = counts.probability().expect("defined");
        assert!((p - 0.6).abs() < 1e-12, "{p}");
        assert_eq!(DetectionCounts::default().probability(), None);
    }

    #[test]
    fn recovery_and_handling_are_undefined_when_empty() {
        assert_eq!(RecoveryCounts::default().probability(), None);
        assert_eq!(HandlingCounts::default().probability(), None);
        let recovery = RecoveryCounts {
            succeeded: 2,
            false_recoveries: 1,
            not_recovered: 1,
        };
        assert_eq!(recovery.probability(), Some(0.5));
        let handling = HandlingCounts {
            handled: 3,
            unhandled: 1,
        };
        assert_eq!(handling.probability(), Some(0.75));
    }
}
