//! The detection loop of a running process: every few seconds, for each project it holds
//! the lease of, step the detector through the minute buckets that closed since its
//! checkpoint, apply the exact rules, and commit the incidents it decided together with
//! the new checkpoint and state.
//!
//! ```text
//!  leases (shard = project id % SHARDS) ─► projects held
//!     │
//!     ▼ per project
//!  checkpoint ─► closed buckets (store::counts) ─► ProjectDetector::step per bucket
//!     │                                           + new issues, regressions, thresholds,
//!     │                                             mute escalations (exact rules)
//!     ▼
//!  one transaction: incidents opened / resolved (+ history, outbox), state, checkpoint
//! ```
//!
//! An incident that opens inside a matching silence (`store::silences`) is recorded like
//! any other but writes no outbox rows, neither when it opens nor when it resolves.
//!
//! A project seen for the first time (no checkpoint) is warmed up on the last
//! [`WARM_UP_HISTORY`] of stored counts without paging. The state is saved every
//! [`STATE_EVERY`]; after a restart the buckets between the saved state and the decision
//! checkpoint are replayed silently (they were decided already), then the gap since the
//! checkpoint normally (at most [`MAX_REPLAY`]), so state survives restarts exactly.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use serde_json::json;
use sqlx::PgPool;
use uuid::Uuid;

use super::anomaly::{Seasonality, Sensitivity, SeriesState};
use super::decisions::{
    bucket_at, issue_opening, last_closed_bucket, opening_for_firing, unix_minutes, Decisions,
    Opening, BUCKET,
};
use super::engine::{AnomalyRules, Measure, ProjectDetector};
use super::threshold::{self, ThresholdStep};
use crate::metrics::Metrics;
use crate::model::{Incident, IncidentId, IssueId, Kind, ProjectId, Scope};
use crate::store::counts;
use crate::store::detector as stored;
use crate::store::incidents as incident_store;
use crate::store::issues::{self, Moment};
use crate::store::rules::{self as rule_store, Rule};
use crate::store::spool::{watermarks, Spool};
use crate::store::StoreError;

/// Projects are spread over this many shards; each shard is leased to one process.
pub const SHARDS: i32 = 16;
/// Counts replayed to warm up a project the detector has never seen.
pub const WARM_UP_HISTORY: TimeDelta = TimeDelta::hours(6);
/// Longest gap replayed after a restart; older buckets are skipped.
pub const MAX_REPLAY: TimeDelta = TimeDelta::hours(24);
/// How far the stored detector state may lag the decisions.
pub const STATE_EVERY: TimeDelta = TimeDelta::minutes(10);

#[derive(Debug, thiserror::Error)]
pub enum DetectError {
    #[error(transparent)]
    Store(#[from] StoreError),
}

#[derive(Debug, Clone)]
pub struct Settings {
    /// How often the loop looks for closed buckets.
    pub interval: Duration,
    /// How long after a minute ends before it counts as closed (the writer's last commits).
    pub grace: TimeDelta,
    pub lease: Duration,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            interval: Duration::from_secs(5),
            grace: TimeDelta::seconds(10),
            lease: Duration::from_secs(30),
        }
    }
}

/// What one pass did (for logs and tests).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Pass {
    pub projects: usize,
    pub buckets: usize,
    pub opened: Vec<IncidentId>,
    /// Active incidents a later finding made worse (a kind added).
    pub updated: Vec<IncidentId>,
    pub resolved: Vec<IncidentId>,
}

struct ProjectRun {
    detector: ProjectDetector,
    /// The bucket the detector state is current through.
    last_bucket: DateTime<Utc>,
    /// The checkpoint as stored (`None` before the first commit): the commit swaps it.
    checkpoint: Option<DateTime<Utc>>,
    /// The bucket the stored state is current through.
    state_saved: Option<DateTime<Utc>>,
    /// Active incidents after the last commit, by kind (summed over projects for the gauge).
    open_incidents: HashMap<Kind, usize>,
}

/// What one project's commit did.
struct Committed {
    opened: Vec<IncidentId>,
    updated: Vec<IncidentId>,
    resolved: Vec<IncidentId>,
    still_open: HashMap<Kind, usize>,
}

mod commit;

pub struct Worker {
    pool: PgPool,
    metrics: std::sync::Arc<Metrics>,
    settings: Settings,
    holder: Uuid,
    runs: HashMap<ProjectId, ProjectRun>,
    /// This process's spool: the minutes its waiting batches belong to are not decided yet.
    spool: Option<Spool>,
}

impl Worker {
    pub fn new(pool: PgPool, metrics: std::sync::Arc<Metrics>, settings: Settings) -> Worker {
        Worker {
            pool,
            metrics,
            settings,
            holder: Uuid::new_v4(),
            runs: HashMap::new(),
            spool: None,
        }
    }

    /// Holds decisions back while this process's spool has batches waiting.
    pub fn with_spool(mut self, spool: Option<Spool>) -> Worker {
        self.spool = spool;
        self
    }

    /// Runs passes until `stop` turns true, then gives the leases back.
    pub async fn run(mut self, mut stop: tokio::sync::watch::Receiver<bool>) {
        loop {
            if let Err(error) = self.pass(Utc::now()).await {
                tracing::warn!(%error, "detection pass failed; retrying next interval");
                self.runs.clear();
            }
            tokio::select! {
                _ = tokio::time::sleep(self.settings.interval) => {}
                _ = stop.changed() => break,
            }
        }
        if let Err(error) = stored::release_shards(&self.pool, self.holder).await {
            tracing::warn!(%error, "could not release detector leases");
        }
    }

    /// One pass over every project this process holds, as of `now`.
    #[tracing::instrument(name = "detection_pass", level = "debug", skip_all)]
    pub async fn pass(&mut self, now: DateTime<Utc>) -> Result<Pass, DetectError> {
        let timer = self.metrics.detection_tick_duration.start_timer();
        let lease = self.settings.lease.as_secs_f64();
        let shards = stored::claim_shards(&self.pool, self.holder, SHARDS, lease).await?;
        let projects = stored::projects_in(&self.pool, &shards, SHARDS).await?;
        self.runs.retain(|id, _| projects.contains(id));
        let through = self
            .hold_back(last_closed_bucket(now, self.settings.grace))
            .await?;
        let mut pass = Pass {
            projects: projects.len(),
            ..Pass::default()
        };
        for project_id in projects {
            self.project_pass(project_id, through, &mut pass).await?;
        }
        let series: usize = self.runs.values().map(|r| r.detector.series.len()).sum();
        self.metrics.detector_series.set(series as i64);
        self.publish_open_incidents();
        timer.observe_duration();
        Ok(pass)
    }

    /// Open incidents of the projects this process holds, by kind (every kind, zeros too,
    /// so a kind whose last incident resolved drops to 0 instead of keeping its value).
    fn publish_open_incidents(&self) {
        for kind in Kind::ALL {
            let open: usize = self
                .runs
                .values()
                .filter_map(|r| r.open_incidents.get(&kind))
                .sum();
            self.metrics
                .incidents_open
                .with_label_values(&[kind.as_str()])
                .set(open as i64);
        }
    }

    async fn project_pass(
        &mut self,
        project_id: ProjectId,
        through: DateTime<Utc>,
        pass: &mut Pass,
    ) -> Result<(), DetectError> {
        let (run, warming_up) = match self.runs.remove(&project_id) {
            Some(run) => (run, false),
            None => self.load(project_id, through).await?,
        };
        if run.last_bucket >= through {
            self.runs.insert(project_id, run);
            return Ok(());
        }
        let from = (run.last_bucket + BUCKET).max(through - MAX_REPLAY);
        let mut run = run;
        let (decisions, active) = self
            .decide(project_id, &mut run.detector, from, through, warming_up)
            .await?;
        pass.buckets += decisions.buckets;
        match self
            .commit(project_id, &run, through, &decisions, active)
            .await?
        {
            Some(Committed {
                opened,
                updated,
                resolved,
                still_open,
            }) => {
                run.open_incidents = still_open;
                pass.opened.extend(opened);
                pass.updated.extend(updated);
                pass.resolved.extend(resolved);
                run.last_bucket = through;
                run.checkpoint = Some(through);
                if commit::state_due(&run, through) {
                    run.state_saved = Some(through);
                }
                self.runs.insert(project_id, run);
            }
            // Another process moved this project's checkpoint: drop what this one held and
            // reload from the stored state next pass.
            None => tracing::info!(%project_id, "detector checkpoint moved elsewhere; reloading"),
        }
        Ok(())
    }

    /// The stored state, or a fresh detector warmed up on recent history.
    async fn load(
        &self,
        project_id: ProjectId,
        through: DateTime<Utc>,
    ) -> Result<(ProjectRun, bool), DetectError> {
        let snapshot = stored::load::<SeriesState, Seasonality>(&self.pool, project_id).await?;
        let mut detector = ProjectDetector::default();
        for series in snapshot.series {
            let measure = match series.measure.as_str() {
                "rate" => Measure::Rate,
                _ => Measure::Count,
            };
            detector
                .series
                .insert((series.scope, measure), series.state);
        }
        detector.profiles = snapshot.profiles.into_iter().collect();
        let Some(last_bucket) = snapshot.last_bucket else {
            let run = ProjectRun {
                detector,
                last_bucket: through - WARM_UP_HISTORY,
                checkpoint: None,
                state_saved: None,
                open_incidents: HashMap::new(),
            };
            return Ok((run, true));
        };
        // The stored state may lag the decisions: step it silently up to them (those
        // buckets were decided already), or warm up afresh if no state was ever saved.
        let state_bucket = snapshot
            .state_bucket
            .unwrap_or(last_bucket - WARM_UP_HISTORY)
            .max(last_bucket - MAX_REPLAY);
        if state_bucket < last_bucket {
            self.decide(
                project_id,
                &mut detector,
                state_bucket + BUCKET,
                last_bucket,
                true,
            )
            .await?;
        }
        let run = ProjectRun {
            detector,
            last_bucket,
            checkpoint: Some(last_bucket),
            state_saved: snapshot.state_bucket,
            open_incidents: HashMap::new(),
        };
        Ok((run, false))
    }

    /// Steps the detector through `[from, through]` and decides what to open and resolve.
    async fn decide(
        &self,
        project_id: ProjectId,
        detector: &mut ProjectDetector,
        from: DateTime<Utc>,
        through: DateTime<Utc>,
        warming_up: bool,
    ) -> Result<(Decisions, Vec<Incident>), DetectError> {
        let rules = rule_store::list(&self.pool, project_id).await?;
        let anomaly_rules = anomaly_rules(&rules);
        let buckets = counts::buckets(&self.pool, project_id, from, through).await?;
        let ignored: HashSet<IssueId> = issues::ignored_ids(&self.pool, project_id)
            .await?
            .into_iter()
            .collect();
        let active = incident_store::active(&self.pool, project_id).await?;
        let mut decisions = Decisions::new(active.iter().map(|i| i.series.clone()).collect());
        let empty = HashMap::new();
        let mut minute = from;
        while minute <= through {
            let counts = buckets.get(&minute).unwrap_or(&empty);
            let firings = detector.step(minute.timestamp(), counts, anomaly_rules);
            if !warming_up {
                for firing in &firings {
                    if !matches!(firing.scope, Scope::Issue(id) if ignored.contains(&id)) {
                        decisions.open(opening_for_firing(firing, minute));
                    }
                }
            }
            decisions.stepped(&firings, detector);
            minute += BUCKET;
        }
        if !warming_up {
            self.exact_rules(project_id, &rules, &ignored, from, through, &mut decisions)
                .await?;
        }
        Ok((decisions, active))
    }

    /// New issues, regressions, thresholds and mute escalations over the same buckets.
    async fn exact_rules(
        &self,
        project_id: ProjectId,
        rules: &[Rule],
        ignored: &HashSet<IssueId>,
        from: DateTime<Utc>,
        through: DateTime<Utc>,
        decisions: &mut Decisions,
    ) -> Result<(), DetectError> {
        let until = through + BUCKET;
        let enabled = |kind: &str| rules.iter().any(|r| r.kind == kind && r.enabled);
        if enabled("new_issue") {
            for issue in
                issues::reached_between(&self.pool, project_id, Moment::FirstSeen, from, until)
                    .await?
            {
                decisions.open(issue_opening(
                    Kind::NewIssue,
                    issue.id,
                    issue.first_seen,
                    issue_details(&issue),
                ));
            }
        }
        if enabled("regression") {
            for issue in
                issues::reached_between(&self.pool, project_id, Moment::Regressed, from, until)
                    .await?
            {
                let at = issue.regressed_at.unwrap_or(until);
                decisions.open(issue_opening(
                    Kind::Regression,
                    issue.id,
                    at,
                    issue_details(&issue),
                ));
            }
        }
        for rule in rules.iter().filter(|r| r.kind == "threshold" && r.enabled) {
            self.threshold_rule(project_id, rule, ignored, from, through, decisions)
                .await?;
        }
        self.mute_escalations(project_id, from, through, decisions)
            .await?;
        Ok(())
    }

    /// A threshold rule over every bucket of the pass: each upward crossing opens an
    /// incident at its own bucket; the rule remembers where the last bucket left it. An
    /// ignored issue does not page through it (its own "until" condition does).
    async fn threshold_rule(
        &self,
        project_id: ProjectId,
        rule: &Rule,
        ignored: &HashSet<IssueId>,
        from: DateTime<Utc>,
        through: DateTime<Utc>,
        decisions: &mut Decisions,
    ) -> Result<(), DetectError> {
        let (Some(threshold), Some(window)) = (rule.threshold, rule.window_minutes) else {
            return Ok(());
        };
        let window = i64::from(window);
        let since = from - TimeDelta::minutes(window) + BUCKET;
        let minutes =
            counts::minutes(&self.pool, project_id, &rule.scope, None, since, through).await?;
        let fired: HashSet<Scope> = rule_store::fired_series(&self.pool, rule.id)
            .await?
            .into_iter()
            .collect();
        // Series with counts, and fired ones whose window may have emptied (they re-arm).
        let series: HashSet<&Scope> = minutes.keys().chain(&fired).collect();
        let watched = series
            .into_iter()
            .filter(|scope| !matches!(scope, Scope::Issue(id) if ignored.contains(id)));
        for scope in watched {
            let points = unix_minutes(minutes.get(scope));
            let was_fired = fired.contains(scope);
            let changes = threshold::walk(
                was_fired,
                &points,
                window,
                threshold,
                from.timestamp(),
                through.timestamp(),
            );
            for fire in changes.iter().filter(|c| c.step == ThresholdStep::Fire) {
                decisions.open(Opening {
                    kind: Kind::Threshold,
                    scope: scope.clone(),
                    at: bucket_at(fire.at),
                    score: 1.0,
                    details: json!({"rule_id": rule.id, "events": fire.total,
                        "threshold": threshold, "window_minutes": window}),
                });
            }
            match changes.last().map(|c| c.step) {
                Some(ThresholdStep::Fire) => decisions.fire_rule.push((rule.id, scope.clone())),
                Some(ThresholdStep::Rearm) => decisions.rearm_rule.push((rule.id, scope.clone())),
                _ => {}
            }
        }
        Ok(())
    }

    /// Ignored issues that reached their "until N events in M minutes" in any bucket of the
    /// pass: unmuted, with an incident at the bucket they reached it.
    async fn mute_escalations(
        &self,
        project_id: ProjectId,
        from: DateTime<Utc>,
        through: DateTime<Utc>,
        decisions: &mut Decisions,
    ) -> Result<(), DetectError> {
        let mutes = issues::mutes(&self.pool, project_id).await?;
        let Some(longest) = mutes.iter().map(|m| i64::from(m.window_minutes)).max() else {
            return Ok(());
        };
        let ids: Vec<IssueId> = mutes.iter().map(|m| m.issue_id).collect();
        let since = from - TimeDelta::minutes(longest) + BUCKET;
        let minutes =
            counts::minutes(&self.pool, project_id, "issue", Some(&ids), since, through).await?;
        for mute in mutes {
            let scope = Scope::Issue(mute.issue_id);
            let points = unix_minutes(minutes.get(&scope));
            let window = i64::from(mute.window_minutes);
            let reached = threshold::walk(
                false,
                &points,
                window,
                mute.count,
                from.timestamp(),
                through.timestamp(),
            )
            .into_iter()
            .find(|c| c.step == ThresholdStep::Fire);
            if let Some(reached) = reached {
                decisions.unmute.push(mute.issue_id);
                decisions.open(Opening {
                    kind: Kind::Threshold,
                    scope,
                    at: bucket_at(reached.at),
                    score: 1.0,
                    details: json!({"reason": "ignored issue escalated", "events": reached.total,
                        "threshold": mute.count, "window_minutes": window}),
                });
            }
        }
        Ok(())
    }
}

impl Worker {
    /// The last bucket this pass may decide: before the oldest minute a spooled batch (of
    /// this process, or another one's published watermark) still belongs to. Those minutes
    /// are late, not silent: deciding them now would see a drop that is not there.
    async fn hold_back(&self, through: DateTime<Utc>) -> Result<DateTime<Utc>, DetectError> {
        let local = self.spool.as_ref().and_then(Spool::oldest_pending);
        let published = watermarks::oldest(&self.pool).await?;
        Ok(match local.into_iter().chain(published).min() {
            Some(oldest) => through.min(oldest - BUCKET),
            None => through,
        })
    }
}

fn anomaly_rules(rules: &[Rule]) -> AnomalyRules {
    let sensitivity = |kind: &str| {
        rules
            .iter()
            .find(|r| r.kind == kind && r.enabled)
            .map(|r| match r.sensitivity.as_str() {
                "low" => Sensitivity::Low,
                "high" => Sensitivity::High,
                _ => Sensitivity::Medium,
            })
    };
    AnomalyRules {
        counts: sensitivity("anomaly"),
        error_rate: sensitivity("error_rate"),
    }
}

/// What describes an issue on its incidents.
fn issue_details(issue: &issues::Issue) -> serde_json::Value {
    json!({"title": issue.title, "culprit": issue.culprit, "level": issue.level,
        "release": issue.last_release})
}
