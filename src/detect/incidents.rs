//! The incident lifecycle and what each change tells the outside world.
//!
//! ```text
//!   open ──(recovery action sent)──► recovering ──(verified)──► resolved
//!     │                                  │
//!     │                                  └──(not verified)──► escalated ──► resolved
//!     └──(series back at its baseline for RESOLVE_AFTER buckets)──────────► resolved
//! ```
//!
//! Any active state may also escalate (a human must look) or resolve (a person says so,
//! or the series calms down). Every change writes an outbox row — the body a webhook will
//! carry — in the same transaction as the change itself.

use chrono::{DateTime, Utc};
use serde_json::{json, Value};

use crate::store::incidents::Incident;

/// Closed buckets a series must stay at its baseline before its incident resolves itself.
pub const RESOLVE_AFTER_CALM_BUCKETS: i32 = 5;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    NewIssue,
    Regression,
    Threshold,
    Anomaly,
    ErrorRate,
}

impl Kind {
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

/// The incident as the API and webhooks show it (DESIGN.md §3.5).
pub fn to_json(incident: &Incident) -> Value {
    let issue_id = (incident.scope == "issue").then_some(incident.issue_id);
    let service = (incident.scope == "service").then_some(incident.service.as_str());
    json!({
        "id": incident.id,
        "project_id": incident.project_id,
        "kind": incident.kind,
        "series": {"scope": incident.scope, "service": service, "issue_id": issue_id},
        "state": incident.state,
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
