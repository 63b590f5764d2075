//! What one detection pass decided for one project, before the worker commits it: the
//! incidents to open (from the detector's firings and the exact rules), the calm streaks
//! that resolve incidents, and the rule memory to write. Pure bookkeeping: the worker
//! ([`super::worker`]) reads the inputs from the store and commits the result.
//!
//! ```text
//!  firings (engine) ─┐
//!  new issues, regressions, threshold crossings, mute escalations (worker) ─► Decisions::open
//!  every bucket stepped ─► Decisions::track_calm (series with an incident)
//!     ▼
//!  Decisions ─► worker::commit: open (or worsen the series' active incident), resolve
//!              after RESOLVE_AFTER_CALM_BUCKETS, rule memory
//! ```
//!
//! Several findings on one series in one pass make one incident: the earliest opens it
//! (in one bucket, the kind of highest [`Kind::rank`]), the others are its further kinds.

use std::collections::HashMap;

use chrono::{DateTime, DurationRound, TimeDelta, Utc};
use serde_json::json;

use super::engine::{Firing, Measure, ProjectDetector};
use crate::model::{IssueId, Kind, Scope};

/// One closed bucket of every series.
pub const BUCKET: TimeDelta = TimeDelta::minutes(1);

/// An incident the pass decided to open.
#[derive(Debug, Clone, PartialEq)]
pub struct Opening {
    pub kind: Kind,
    pub scope: Scope,
    pub at: DateTime<Utc>,
    pub score: f64,
    pub details: serde_json::Value,
}

/// Every finding of a pass on one series, the one that opens its incident first.
#[derive(Debug, Clone, PartialEq)]
pub struct Findings {
    pub list: Vec<Opening>,
}

impl Findings {
    pub fn first(&self) -> &Opening {
        &self.list[0]
    }

    /// Their kinds, each once, the opening one first.
    pub fn kinds(&self) -> Vec<Kind> {
        let mut kinds: Vec<Kind> = Vec::new();
        for opening in &self.list {
            if !kinds.contains(&opening.kind) {
                kinds.push(opening.kind);
            }
        }
        kinds
    }

    pub fn score(&self) -> f64 {
        self.list.iter().map(|o| o.score).fold(0.0, f64::max)
    }

    /// Takes a later finding: one of a kind already here adds nothing; one of a stronger
    /// kind in the same bucket as the first becomes the first.
    fn add(&mut self, opening: Opening) {
        if self.list.iter().any(|o| o.kind == opening.kind) {
            return;
        }
        let first = self.first();
        if opening.at == first.at && opening.kind.rank() > first.kind.rank() {
            self.list.insert(0, opening);
        } else {
            self.list.push(opening);
        }
    }
}

/// What one project pass decided, before it is committed.
#[derive(Debug, Default)]
pub struct Decisions {
    /// Series with an active incident when the pass began.
    pub watched: Vec<Scope>,
    pub buckets: usize,
    pub max_score: f64,
    pub openings: Vec<Findings>,
    /// Highest score per series in this pass (kept on the incident).
    pub scores: HashMap<Scope, f64>,
    /// Per series: consecutive calm buckets at the end of the pass, and whether the whole
    /// pass was calm (then the incident's stored streak continues).
    calm: HashMap<Scope, (i32, bool)>,
    pub fire_rule: Vec<(i64, Scope)>,
    pub rearm_rule: Vec<(i64, Scope)>,
    pub unmute: Vec<IssueId>,
}

impl Decisions {
    pub fn new(watched: Vec<Scope>) -> Decisions {
        Decisions {
            watched,
            ..Decisions::default()
        }
    }

    /// A finding: the first on its series in this pass, or one more of its findings.
    pub fn open(&mut self, opening: Opening) {
        let score = self.scores.entry(opening.scope.clone()).or_default();
        *score = score.max(opening.score);
        match self
            .openings
            .iter_mut()
            .find(|f| f.first().scope == opening.scope)
        {
            Some(findings) => findings.add(opening),
            None => self.openings.push(Findings {
                list: vec![opening],
            }),
        }
    }

    /// One bucket stepped: its firings' highest score, and the calm buckets of the series
    /// that have (or just got) an incident.
    pub fn stepped(&mut self, firings: &[Firing], detector: &ProjectDetector) {
        self.buckets += 1;
        self.max_score = self.max_score.max(bucket_score(firings));
        let watched: Vec<Scope> = self
            .watched
            .iter()
            .cloned()
            .chain(self.openings.iter().map(|f| f.first().scope.clone()))
            .collect();
        for scope in watched {
            let entry = self.calm.entry(scope.clone()).or_insert((0, true));
            if detector.is_calm(&scope) {
                entry.0 += 1;
            } else {
                *entry = (0, false);
            }
        }
    }

    /// Calm buckets of an incident's series at the end of this pass: its stored streak
    /// (`before`) continued, or restarted where the series last misbehaved. An incident
    /// opened in this pass has no streak before it.
    pub fn calm_after(&self, scope: &Scope, before: i32, fresh: bool) -> i32 {
        let before = if fresh { 0 } else { before };
        match self.calm.get(scope) {
            Some((streak, true)) => before + streak,
            Some((streak, false)) => *streak,
            // Opened by an exact rule after the buckets were stepped: nothing counted yet.
            None if fresh => 0,
            // A series the detector no longer holds is idle: calm for every bucket.
            None => before + self.buckets as i32,
        }
    }
}

fn bucket_score(firings: &[Firing]) -> f64 {
    firings.iter().map(|f| f.verdict.score).fold(0.0, f64::max)
}

/// The incident a detector firing opens: an anomaly on a count, an error rate on a ratio
/// (with the ratio the baseline expected and the ratio of the bucket).
pub fn opening_for_firing(firing: &Firing, at: DateTime<Utc>) -> Opening {
    let verdict = &firing.verdict;
    let point = &firing.point;
    let (kind, details) = match (firing.measure, point.requests) {
        (Measure::Rate, Some(requests)) if requests > 0.0 => (
            Kind::ErrorRate,
            json!({"shape": verdict.shape, "measure": firing.measure,
                "ratio_before": verdict.expected / requests, "ratio": point.value / requests,
                "failed": point.value, "requests": requests, "expected": verdict.expected}),
        ),
        (Measure::Rate, _) => (
            Kind::ErrorRate,
            json!({"shape": verdict.shape, "expected": verdict.expected, "measure": firing.measure}),
        ),
        (Measure::Count, _) => (
            Kind::Anomaly,
            json!({"shape": verdict.shape, "expected": verdict.expected, "events": point.value,
                "measure": firing.measure}),
        ),
    };
    Opening {
        kind,
        scope: firing.scope.clone(),
        at,
        score: verdict.score,
        details,
    }
}

/// The incident of an issue's moment (new, regressed), with what describes the issue.
pub fn issue_opening(
    kind: Kind,
    issue_id: IssueId,
    at: DateTime<Utc>,
    details: serde_json::Value,
) -> Opening {
    Opening {
        kind,
        scope: Scope::Issue(issue_id),
        at,
        score: 1.0,
        details,
    }
}

/// The start of the last minute that ended at least `grace` ago.
pub fn last_closed_bucket(now: DateTime<Utc>, grace: TimeDelta) -> DateTime<Utc> {
    let settled = now - grace;
    settled.duration_trunc(BUCKET).unwrap_or(settled) - BUCKET
}

/// A series' (minute, events) as the threshold walk takes them: Unix seconds.
pub fn unix_minutes(points: Option<&Vec<(DateTime<Utc>, i64)>>) -> Vec<(i64, i64)> {
    points.map_or_else(Vec::new, |points| {
        points
            .iter()
            .map(|(minute, events)| (minute.timestamp(), *events))
            .collect()
    })
}

/// The bucket starting at `seconds` (a whole minute the walk was given).
pub fn bucket_at(seconds: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(seconds, 0).unwrap_or(DateTime::UNIX_EPOCH)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn finding(kind: Kind, minute: i64) -> Opening {
        Opening {
            kind,
            scope: Scope::Issue(IssueId(7)),
            at: bucket_at(minute * 60),
            score: 1.0,
            details: json!({}),
        }
    }

    #[test]
    fn findings_on_one_series_make_one_opening_with_every_kind() {
        let mut decisions = Decisions::default();
        decisions.open(finding(Kind::NewIssue, 1));
        decisions.open(finding(Kind::Anomaly, 1));
        decisions.open(finding(Kind::Regression, 3));
        decisions.open(finding(Kind::Anomaly, 4));
        assert_eq!(decisions.openings.len(), 1);
        let findings = &decisions.openings[0];
        // In the first bucket the anomaly says more than the new issue: it opens.
        assert_eq!(findings.first().kind, Kind::Anomaly);
        assert_eq!(
            findings.kinds(),
            [Kind::Anomaly, Kind::NewIssue, Kind::Regression]
        );
        // A stronger kind in a later bucket does not take the opening's place.
        let mut later = Decisions::default();
        later.open(finding(Kind::NewIssue, 1));
        later.open(finding(Kind::ErrorRate, 2));
        assert_eq!(later.openings[0].first().kind, Kind::NewIssue);
        assert_eq!(later.openings[0].kinds(), [Kind::NewIssue, Kind::ErrorRate]);
    }
}
