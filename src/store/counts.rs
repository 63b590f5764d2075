//! Per-minute counts per series (project, service, issue): what detection watches and
//! dashboards chart. Events count toward all three scopes; spans (OTLP traces) count as
//! requests — and failed requests — toward their project and service, which makes the error
//! rate. The writer sums a batch per key first, so one row per key is written per batch
//! however hot the series.

use chrono::{DateTime, Utc};

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
