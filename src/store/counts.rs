//! Per-minute counts per series (project, service, issue): what detection watches and
//! dashboards chart. Events count toward all three scopes; spans (OTLP traces) count as
//! requests — and failed requests — toward their project and service, which makes the error
//! rate. The writer sums a batch per key first, so one row per key is written per batch
//! however hot the series.

use chrono::{DateTime, Utc};
use sqlx::PgConnection;

use super::StoreError;

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Scope {
    Project,
    Service(String),
    Issue(i64),
}

impl Scope {
    pub(super) fn columns(&self) -> (&'static str, &str, i64) {
        match self {
            Scope::Project => ("project", "", 0),
            Scope::Service(name) => ("service", name.as_str(), 0),
            Scope::Issue(id) => ("issue", "", *id),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SeriesMinute {
    pub project_id: i64,
    pub scope: Scope,
    pub minute: DateTime<Utc>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Tally {
    pub events: i64,
    pub unhandled: i64,
    pub requests: i64,
    pub failed: i64,
}

impl Tally {
    pub fn add(&mut self, other: Tally) {
        self.events += other.events;
        self.unhandled += other.unhandled;
        self.requests += other.requests;
        self.failed += other.failed;
    }
}

/// Spans of one service in one minute, as a request counted them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpanTally {
    pub project_id: i64,
    pub service: Option<String>,
    pub minute: DateTime<Utc>,
    pub requests: i64,
    pub failed: i64,
}

/// Per-minute totals of one series between two instants, oldest first (for tests and charts).
pub async fn series(
    conn: &mut PgConnection,
    project_id: i64,
    scope: &Scope,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Result<Vec<(DateTime<Utc>, i64)>, StoreError> {
    let (scope_name, service, issue_id) = scope.columns();
    Ok(sqlx::query_as(
        "SELECT minute, events FROM minute_counts WHERE project_id = $1 AND scope = $2 AND service = $3 \
         AND issue_id = $4 AND minute >= $5 AND minute < $6 ORDER BY minute",
    )
    .bind(project_id)
    .bind(scope_name)
    .bind(service)
    .bind(issue_id)
    .bind(from)
    .bind(to)
    .fetch_all(conn)
    .await?)
}
