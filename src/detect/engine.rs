//! One project's detector: every series' state, the shared seasonal profiles, and the step
//! that consumes one closed bucket of counts.
//!
//! A bucket's counts arrive sparse (only series that saw something); every series the
//! detector knows is stepped anyway — a minute without events is a zero, and zeros are
//! what make a drop or a quiet series visible. Series appear with their first count and
//! are forgotten once idle, so state stays proportional to what is alive.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use super::anomaly::{Scale, Season, Seasonality, Sensitivity, SeriesState, Shape, Verdict};
use super::series::{Point, ValueKind};
use crate::model::{Scope, Tally};

/// What a series measures: events per bucket, or failed among requests (error rate).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Measure {
    Count,
    Rate,
}

impl Measure {
    pub fn as_str(self) -> &'static str {
        match self {
            Measure::Count => "count",
            Measure::Rate => "rate",
        }
    }
}

/// A series: where it is (scope) and what it measures.
pub type SeriesKey = (Scope, Measure);

/// Which anomaly views a project has switched on, and how sensitive each is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct AnomalyRules {
    pub counts: Option<Sensitivity>,
    pub error_rate: Option<Sensitivity>,
}

/// A series that fired in a bucket.
#[derive(Debug, Clone, PartialEq)]
pub struct Firing {
    pub scope: Scope,
    pub measure: Measure,
    /// Start of the bucket, seconds since the epoch.
    pub bucket: i64,
    /// What the series showed (for a rate: failed among requests).
    pub point: Point,
    pub verdict: Verdict,
}

#[derive(Debug, Clone, Default)]
pub struct ProjectDetector {
    pub series: HashMap<SeriesKey, SeriesState>,
    /// Daily profiles by service; "" is the project's own, used by its issue series too.
    pub profiles: HashMap<String, Seasonality>,
}

impl ProjectDetector {
    /// Steps every known series (and every new one in `counts`) through one bucket.
    /// Series whose view is switched off are still stepped — turning a rule on must not
    /// start from a cold baseline — but cannot fire.
    pub fn step(
        &mut self,
        bucket: i64,
        counts: &HashMap<Scope, Tally>,
        rules: AnomalyRules,
    ) -> Vec<Firing> {
        self.admit_new_series(counts);
        let mut firings = Vec::new();
        // What each profile learns from this bucket: the project's and services' own
        // event counts (or what was expected of them where they were anomalous), and
        // what they showed.
        let mut learnt: Vec<(Scope, f64, f64)> = Vec::new();
        // An issue's errors follow the project's traffic, where it is known.
        let project_requests = counts.get(&Scope::Project).map_or(0, |t| t.requests);
        for (key, state) in self.series.iter_mut() {
            let tally = counts.get(&key.0).copied().unwrap_or_default();
            let traffic = match key.0 {
                Scope::Issue(_) => project_requests,
                _ => tally.requests,
            };
            let profile = self.profiles.get(profile_of(&key.0));
            let owner = key.1 == Measure::Count && !matches!(key.0, Scope::Issue(_));
            let season = match (profile, owner) {
                (None, _) => Season::None,
                (Some(profile), true) => Season::Own(profile),
                (Some(profile), false) => Season::Shared(profile),
            };
            let step = Step {
                bucket,
                tally,
                traffic,
                rules,
            };
            let (verdict, firing) = step_series(key, state, season, &step);
            if owner {
                let shown = tally.events as f64;
                learnt.push((key.0.clone(), verdict.normal_value(shown), shown));
            }
            firings.extend(firing);
        }
        self.learn_profiles(bucket, &learnt);
        self.forget_idle(counts);
        firings.sort_by(|a, b| (&a.scope, a.measure).cmp(&(&b.scope, b.measure)));
        firings
    }

    fn admit_new_series(&mut self, counts: &HashMap<Scope, Tally>) {
        for (scope, tally) in counts {
            if tally.events > 0 {
                self.series
                    .entry((scope.clone(), Measure::Count))
                    .or_default();
            }
            if tally.requests > 0 && !matches!(scope, Scope::Issue(_)) {
                self.series
                    .entry((scope.clone(), Measure::Rate))
                    .or_default();
            }
        }
    }

    /// The project's and each service's own event counts teach their daily profile
    /// (anomalous buckets teach what was expected instead: a burst or an outage must not
    /// make this hour look busy or dead tomorrow).
    fn learn_profiles(&mut self, bucket: i64, learnt: &[(Scope, f64, f64)]) {
        for (scope, value, shown) in learnt {
            self.profiles
                .entry(profile_of(scope).to_string())
                .or_default()
                .observe(bucket, *value, *shown);
        }
    }

    fn forget_idle(&mut self, counts: &HashMap<Scope, Tally>) {
        self.series
            .retain(|(scope, _), state| counts.contains_key(scope) || !state.is_idle());
    }

    /// True when no series of this scope is inside an anomaly.
    pub fn is_calm(&self, scope: &Scope) -> bool {
        [Measure::Count, Measure::Rate].iter().all(|measure| {
            self.series
                .get(&(scope.clone(), *measure))
                .is_none_or(|state| !state.alerting())
        })
    }
}

/// One bucket as every series of the project sees it.
struct Step {
    bucket: i64,
    tally: Tally,
    /// Requests of the series' traffic in this bucket (0 when unknown).
    traffic: i64,
    rules: AnomalyRules,
}

/// One series through one bucket: its verdict, and a firing only when its view is
/// switched on.
fn step_series(
    key: &SeriesKey,
    state: &mut SeriesState,
    season: Season<'_>,
    step: &Step,
) -> (Verdict, Option<Firing>) {
    let (bucket, tally, rules) = (step.bucket, step.tally, step.rules);
    let (sensitivity, point) = match key.1 {
        Measure::Count => (
            rules.counts,
            Point {
                timestamp: bucket,
                value: tally.events as f64,
                requests: None,
                traffic: (step.traffic > 0).then_some(step.traffic as f64),
            },
        ),
        Measure::Rate => (
            rules.error_rate,
            Point {
                timestamp: bucket,
                value: tally.failed as f64,
                requests: Some(tally.requests as f64),
                traffic: None,
            },
        ),
    };
    let settings = sensitivity.unwrap_or(Sensitivity::Medium).settings();
    let verdict = state.observe(
        &point,
        ValueKind::Count,
        season,
        Scale::default(),
        &settings,
    );
    // An issue whose errors stop is good news, not an incident: a service gone silent
    // pages on its own series (and the project's).
    let good_news =
        matches!(key.0, Scope::Issue(_)) && matches!(verdict.shape, Shape::Drop | Shape::Flatline);
    let firing = (verdict.fired && sensitivity.is_some() && !good_news).then(|| Firing {
        scope: key.0.clone(),
        measure: key.1,
        bucket,
        point,
        verdict,
    });
    (verdict, firing)
}

/// The profile a series is deseasonalised with: its service's, else the project's.
fn profile_of(scope: &Scope) -> &str {
    match scope {
        Scope::Service(name) => name,
        Scope::Project | Scope::Issue(_) => "",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::IssueId;

    fn counts(entries: &[(Scope, i64)]) -> HashMap<Scope, Tally> {
        entries
            .iter()
            .map(|(scope, events)| {
                (
                    scope.clone(),
                    Tally {
                        events: *events,
                        ..Tally::default()
                    },
                )
            })
            .collect()
    }

    const ON: AnomalyRules = AnomalyRules {
        counts: Some(Sensitivity::Medium),
        error_rate: Some(Sensitivity::Medium),
    };

    #[test]
    fn missing_minutes_are_zeros_and_a_burst_fires_on_each_affected_scope() {
        let mut detector = ProjectDetector::default();
        let issue = Scope::Issue(IssueId(7));
        for minute in 0..300 {
            let entries = if minute % 2 == 0 {
                vec![(Scope::Project, 20), (issue.clone(), 20)]
            } else {
                vec![(Scope::Project, 22), (issue.clone(), 22)]
            };
            assert!(detector.step(minute * 60, &counts(&entries), ON).is_empty());
        }
        // A minute with nothing at all: a drop to zero on a busy series. The issue's
        // errors stopping is no incident; the project going silent is.
        let firings = detector.step(300 * 60, &HashMap::new(), ON);
        let scopes: Vec<&Scope> = firings.iter().map(|f| &f.scope).collect();
        assert_eq!(scopes, [&Scope::Project]);
        assert!(!detector.is_calm(&Scope::Project));
        // A burst fires on both.
        for minute in 301..330 {
            let entries = vec![(Scope::Project, 21), (issue.clone(), 21)];
            detector.step(minute * 60, &counts(&entries), ON);
        }
        let burst = counts(&[(Scope::Project, 400), (issue.clone(), 400)]);
        let firings = detector.step(330 * 60, &burst, ON);
        let scopes: Vec<&Scope> = firings.iter().map(|f| &f.scope).collect();
        assert_eq!(scopes, [&Scope::Project, &issue]);
    }

    #[test]
    fn a_view_switched_off_learns_but_does_not_fire() {
        let mut detector = ProjectDetector::default();
        for minute in 0..200 {
            detector.step(
                minute * 60,
                &counts(&[(Scope::Project, 5)]),
                AnomalyRules::default(),
            );
        }
        let burst = counts(&[(Scope::Project, 500)]);
        assert!(detector
            .step(200 * 60, &burst, AnomalyRules::default())
            .is_empty());
        assert!(!detector.is_calm(&Scope::Project), "it saw the burst");
    }

    #[test]
    fn idle_series_are_forgotten() {
        let mut detector = ProjectDetector::default();
        detector.step(0, &counts(&[(Scope::Issue(IssueId(1)), 1)]), ON);
        for minute in 1..20_000 {
            detector.step(minute * 60, &HashMap::new(), ON);
        }
        assert!(detector.series.is_empty());
    }
}
