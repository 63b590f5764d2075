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
//!  Decisions ─► worker::commit: open, resolve after RESOLVE_AFTER_CALM_BUCKETS, rule memory
//! ```

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

/// What one project pass decided, before it is committed.
#[derive(Debug, Default)]
pub struct Decisions {
    /// Series with an active incident when the pass began.
    pub watched: Vec<Scope>,
    pub buckets: usize,
    pub max_score: f64,
    pub openings: Vec<Opening>,
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

    /// One opening per series per pass: the first decision wins (the unique index would
    /// refuse the rest anyway).
    pub fn open(&mut self, opening: Opening) {
        let score = self.scores.entry(opening.scope.clone()).or_default();
        *score = score.max(opening.score);
        if !self.openings.iter().any(|o| o.scope == opening.scope) {
            self.openings.push(opening);
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
            .chain(self.openings.iter().map(|o| o.scope.clone()))
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

/// The incident a detector firing opens: an anomaly on a count, an error rate on a ratio.
pub fn opening_for_firing(firing: &Firing, at: DateTime<Utc>) -> Opening {
    let kind = match firing.measure {
        Measure::Count => Kind::Anomaly,
        Measure::Rate => Kind::ErrorRate,
    };
    Opening {
        kind,
        scope: firing.scope.clone(),
        at,
        score: firing.verdict.score,
        details: json!({"shape": firing.verdict.shape, "expected": firing.verdict.expected,
            "measure": firing.measure}),
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
