//! The keys and values of the per-minute series: which series (`Scope`), which minute of
//! which project (`SeriesMinute`), and what it counted (`Tally`, `SpanTally`).
//!
//! Ingestion produces them (events and spans), the writer sums and stores them, and the
//! detector steps over them bucket by bucket.

use chrono::{DateTime, Utc};

use super::{IssueId, ProjectId};

/// Which series of a project: the project as a whole, one service, or one issue.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Scope {
    Project,
    Service(String),
    Issue(IssueId),
}

impl Scope {
    /// The row form of a scope: (scope, service, issue_id), as every series table stores it.
    pub fn from_columns(scope: &str, service: String, issue_id: i64) -> Option<Scope> {
        match scope {
            "project" => Some(Scope::Project),
            "service" => Some(Scope::Service(service)),
            "issue" => Some(Scope::Issue(IssueId(issue_id))),
            _ => None,
        }
    }

    /// The issue, for an issue's series.
    pub fn issue_id(&self) -> Option<IssueId> {
        match self {
            Scope::Issue(id) => Some(*id),
            _ => None,
        }
    }

    /// The service, for a service's series.
    pub fn service(&self) -> Option<&str> {
        match self {
            Scope::Service(name) => Some(name),
            _ => None,
        }
    }

    pub fn kind(&self) -> &'static str {
        self.columns().0
    }

    pub fn columns(&self) -> (&'static str, &str, i64) {
        match self {
            Scope::Project => ("project", "", 0),
            Scope::Service(name) => ("service", name.as_str(), 0),
            Scope::Issue(id) => ("issue", "", id.0),
        }
    }
}

/// One minute of one series of one project: the key of a stored count.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SeriesMinute {
    pub project_id: ProjectId,
    pub scope: Scope,
    pub minute: DateTime<Utc>,
}

/// What one series counted in one minute: events (and the unhandled among them), and
/// for services with traces, requests and the failed among them.
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
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SpanTally {
    pub project_id: ProjectId,
    pub service: Option<String>,
    pub minute: DateTime<Utc>,
    pub requests: i64,
    pub failed: i64,
}
