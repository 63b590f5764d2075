//! Incidents as every layer sees them: their kind, their lifecycle state, the incident
//! itself, and the JSON it is announced with (DESIGN.md §3.5; webhooks carry it).
//!
//! ```text
//!   open ──(recovery action sent)──► recovering ──(verified)──► resolved
//!     │                                  │
//!     │                                  └──(not verified)──► escalated ──► resolved
//!     └──(series back at its baseline)─────────────────────────────────────► resolved
//! ```
//!
//! Any active state may also escalate (a person must look) or resolve (a person says so,
//! or the series calms down). The detector decides the changes (`detect`), the store keeps
//! them with their history and outbox rows in one transaction (`store::incidents`).

use chrono::{DateTime, Utc};
use serde_json::{json, Value};

use super::{IncidentId, ProjectId, Scope};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    NewIssue,
    Regression,
    Threshold,
    Anomaly,
    ErrorRate,
}

/// The outbox topic announcing that an active incident got worse: a finding of a new kind
/// was added to it (its series has one active incident, so a later finding is never a
/// second one, and never dropped). Not `incident.escalated`: that is the lifecycle state a
/// failed recovery leads to.
pub const UPDATED: &str = "incident.updated";

impl Kind {
    /// How much a finding of this kind says about the trouble, to pick the kind of an
    /// incident when several findings open it in the same bucket: a rate of errors gone
    /// wrong says more than one issue's first event.
    pub fn rank(self) -> u8 {
        match self {
            Kind::NewIssue => 0,
            Kind::Regression => 1,
            Kind::Threshold => 2,
            Kind::Anomaly => 3,
            Kind::ErrorRate => 4,
        }
    }

    pub const ALL: [Kind; 5] = [
        Kind::NewIssue,
        Kind::Regression,
        Kind::Threshold,
        Kind::Anomaly,
        Kind::ErrorRate,
    ];

    pub fn parse(text: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|kind| kind.as_str() == text)
    }

    /// Every kind's name, as the API and the database spell it.
    pub fn names() -> [&'static str; 5] {
        Kind::ALL.map(Kind::as_str)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Kind::NewIssue => "new_issue",
            Kind::Regression => "regression",
            Kind::Threshold => "threshold",
            Kind::Anomaly => "anomaly",
            Kind::ErrorRate => "error_rate",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    Open,
    Recovering,
    Resolved,
    Escalated,
}

impl State {
    pub const ALL: [State; 4] = [
        State::Open,
        State::Recovering,
        State::Resolved,
        State::Escalated,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            State::Open => "open",
            State::Recovering => "recovering",
            State::Resolved => "resolved",
            State::Escalated => "escalated",
        }
    }

    pub fn parse(text: &str) -> Option<State> {
        State::ALL.into_iter().find(|state| state.as_str() == text)
    }

    /// Every state's name, as the API and the database spell it.
    pub fn names() -> [&'static str; 4] {
        State::ALL.map(State::as_str)
    }

    /// The transitions the lifecycle allows.
    pub fn can_become(self, to: State) -> bool {
        use State::*;
        matches!(
            (self, to),
            (Open, Recovering | Resolved | Escalated)
                | (Recovering, Resolved | Escalated)
                | (Escalated, Resolved)
        )
    }

    /// The outbox topic announcing that an incident entered this state.
    pub fn topic(self) -> &'static str {
        match self {
            State::Open => "incident.opened",
            State::Recovering => "incident.recovering",
            State::Resolved => "incident.resolved",
            State::Escalated => "incident.escalated",
        }
    }
}

/// An incident as stored: what detection found on which series, and where it stands.
#[derive(Debug, Clone, PartialEq)]
pub struct Incident {
    pub id: IncidentId,
    pub project_id: ProjectId,
    pub kind: Kind,
    pub series: Scope,
    pub state: State,
    pub opened_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub resolved_at: Option<DateTime<Utc>>,
    /// How far the series strayed: the highest score while active.
    pub score: f64,
    /// `true_positive`, `false_positive` (set by people) or `missed` (a reported fault).
    pub label: Option<String>,
    /// Consecutive closed buckets the series has been back at its baseline.
    pub calm_buckets: i32,
    /// What the detector saw (expected and observed, the rule, the issue's title…).
    pub details: Value,
    /// When a person first said they are on it (not a state: see migration 0008).
    pub acknowledged_at: Option<DateTime<Utc>>,
    /// The silence it opened under: recorded, never announced.
    pub silence_id: Option<i64>,
    /// Every kind of finding on its series while active, `kind` first.
    pub kinds: Vec<Kind>,
}

impl Incident {
    /// Open, recovering or escalated: at most one such incident per series.
    pub fn is_active(&self) -> bool {
        self.state != State::Resolved
    }
}

/// The incident as the API and webhooks show it (DESIGN.md §3.5).
pub fn to_json(incident: &Incident) -> Value {
    let (scope, service, issue_id) = incident.series.columns();
    let service = (incident.series.kind() == "service").then_some(service);
    let issue_id = (incident.series.kind() == "issue").then_some(issue_id);
    json!({
        "id": incident.id,
        "project_id": incident.project_id,
        "kind": incident.kind.as_str(),
        "kinds": incident.kinds.iter().map(|k| k.as_str()).collect::<Vec<_>>(),
        "series": {"scope": scope, "service": service, "issue_id": issue_id},
        "state": incident.state.as_str(),
        "opened_at": incident.opened_at,
        "resolved_at": incident.resolved_at,
        "score": incident.score,
        "label": incident.label,
        "details": incident.details,
        "actions": [],
    })
}

/// The outbox body: what a Standard Webhooks receiver will get.
pub fn message(topic: &str, at: DateTime<Utc>, incident: &Incident) -> Value {
    json!({"type": topic, "timestamp": at, "data": {"incident": to_json(incident)}})
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lifecycle_moves_forward_only() {
        use State::*;
        assert!(Open.can_become(Recovering));
        assert!(Recovering.can_become(Escalated));
        assert!(Escalated.can_become(Resolved));
        assert!(
            !Resolved.can_become(Open),
            "a resolved incident stays resolved"
        );
        assert!(!Recovering.can_become(Open));
        assert!(!Open.can_become(Open));
        for state in [Open, Recovering, Resolved, Escalated] {
            assert_eq!(State::parse(state.as_str()), Some(state));
        }
    }
}
