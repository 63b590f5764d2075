//! Per-minute counts per series (project, service, issue): what detection watches and
//! dashboards chart. Events count toward all three scopes; spans (OTLP traces) count as
//! requests — and failed requests — toward their project and service, which makes the error
//! rate. The writer sums a batch per key first, so one row per key is written per batch
//! however hot the series.

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Utc};
use sqlx::PgPool;

use super::StoreError;
use crate::model::{IssueId, ProjectId, Scope, Tally};

#[derive(sqlx::FromRow)]
struct CountRow {
    minute: DateTime<Utc>,
    scope: String,
    service: String,
    issue_id: i64,
    events: i64,
    unhandled: i64,
    requests: i64,
    failed: i64,
}

/// Every count of a project in `[from, through]`, bucket by bucket (sparse: a series with
/// nothing in a minute has no entry there).
pub async fn buckets(
    pool: &PgPool,
    project_id: ProjectId,
    from: DateTime<Utc>,
    through: DateTime<Utc>,
) -> Result<BTreeMap<DateTime<Utc>, HashMap<Scope, Tally>>, StoreError> {
    let rows: Vec<CountRow> = sqlx::query_as(
        "SELECT minute, scope, service, issue_id, events, unhandled, requests, failed \
         FROM minute_counts WHERE project_id = $1 AND minute BETWEEN $2 AND $3",
    )
    .bind(project_id)
    .bind(from)
    .bind(through)
    .fetch_all(pool)
    .await?;
    let mut buckets: BTreeMap<DateTime<Utc>, HashMap<Scope, Tally>> = BTreeMap::new();
    for row in rows {
        let Some(scope) = Scope::from_columns(&row.scope, row.service, row.issue_id) else {
            continue;
        };
        let tally = Tally {
            events: row.events,
            unhandled: row.unhandled,
            requests: row.requests,
            failed: row.failed,
        };
        buckets.entry(row.minute).or_default().insert(scope, tally);
    }
    Ok(buckets)
}

/// Per-minute events of a project's series of one scope kind in `[since, through]`, each
/// series' minutes in order (minutes without events are absent); `issues` narrows issue
/// series to those ids. What "N events in M minutes" rules are walked over.
pub async fn minutes(
    pool: &PgPool,
    project_id: ProjectId,
    scope_kind: &str,
    issues: Option<&[IssueId]>,
    since: DateTime<Utc>,
    through: DateTime<Utc>,
) -> Result<HashMap<Scope, Vec<(DateTime<Utc>, i64)>>, StoreError> {
    let rows: Vec<(String, String, i64, DateTime<Utc>, i64)> = sqlx::query_as(
        "SELECT scope, service, issue_id, minute, events FROM minute_counts \
         WHERE project_id = $1 AND scope = $2 AND minute BETWEEN $3 AND $4 AND events > 0 \
           AND ($5::int8[] IS NULL OR issue_id = ANY($5)) \
         ORDER BY minute",
    )
    .bind(project_id)
    .bind(scope_kind)
    .bind(since)
    .bind(through)
    .bind(issues)
    .fetch_all(pool)
    .await?;
    let mut series: HashMap<Scope, Vec<(DateTime<Utc>, i64)>> = HashMap::new();
    for (scope, service, issue_id, minute, events) in rows {
        if let Some(scope) = Scope::from_columns(&scope, service, issue_id) {
            series.entry(scope).or_default().push((minute, events));
        }
    }
    Ok(series)
}
