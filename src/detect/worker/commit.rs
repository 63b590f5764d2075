//! The commit of one project's pass: one transaction that opens the incidents the pass
//! found (or worsens the active incident of their series), ends those of issues a person
//! resolved or ignored, resolves the calm ones, writes the rule memory, the detector state
//! and the checkpoint — or rolls back when another process moved the checkpoint.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use serde_json::json;

use super::{Committed, DetectError, ProjectRun, Worker, STATE_EVERY};
use crate::detect::anomaly::{Seasonality, SeriesState};
use crate::detect::decisions::{Decisions, Findings, Opening, BUCKET};
use crate::detect::engine::ProjectDetector;
use crate::detect::incidents::RESOLVE_AFTER_CALM_BUCKETS;
use crate::detect::verify::{self, Outcome, Verification};
use crate::model::incident::{message, UPDATED};
use crate::model::{Incident, IncidentId, Kind, ProjectId, State};
use crate::store::detector::{self as stored, StoredSeries};
use crate::store::incidents::{self as incident_store, NewIncident};
use crate::store::issues;
use crate::store::recovery::{self, RecoveryAction};
use crate::store::rules as rule_store;
use crate::store::StoreError;

impl Worker {
    /// One transaction: incidents, rule memory, detector state, checkpoint. `None` when
    /// the checkpoint had moved (rolled back).
    pub(super) async fn commit(
        &self,
        project_id: ProjectId,
        run: &ProjectRun,
        through: DateTime<Utc>,
        decisions: &Decisions,
        active: Vec<Incident>,
    ) -> Result<Option<Committed>, DetectError> {
        // Recovery actions being verified, by incident (the latest, if several).
        let actions: HashMap<IncidentId, RecoveryAction> =
            recovery::undecided(&self.pool, project_id)
                .await?
                .into_iter()
                .map(|action| (action.incident_id, action))
                .collect();
        let mut tx = self.pool.begin().await.map_err(StoreError::from)?;
        if !stored::advance_checkpoint(&mut tx, project_id, run.checkpoint, through).await? {
            return Ok(None);
        }
        let mut changed = Changed {
            tracked: active,
            ..Changed::default()
        };
        for findings in &decisions.openings {
            self.open_or_worsen(&mut tx, project_id, findings, &mut changed)
                .await?;
        }
        // An ignored issue that escalated is unmuted before the incidents of handled
        // issues end: its escalation must not end with them.
        for issue_id in &decisions.unmute {
            issues::unmute(&mut tx, *issue_id).await?;
        }
        end_for_handled_issues(&mut tx, project_id, through + BUCKET, &mut changed).await?;
        let Changed {
            opened,
            updated,
            mut resolved,
            tracked,
        } = changed;
        for incident in &tracked {
            let scope = incident.series.clone();
            let refired = decisions.fire_rule.iter().any(|(_, s)| *s == scope);
            let calm = match refired {
                true => 0,
                false => {
                    let fresh = opened.contains(&incident.id);
                    decisions.calm_after(&scope, incident.calm_buckets, fresh)
                }
            };
            if let Some(action) = actions.get(&incident.id) {
                if settle_action(&mut tx, incident, action, calm, through).await? {
                    resolved.push(incident.id);
                    continue;
                }
            }
            // An escalated incident with no action left to verify resolves like an open
            // one: else it would hold its series' one active slot until a person came.
            let settles = match incident.state {
                State::Open => true,
                State::Escalated => !actions.contains_key(&incident.id),
                _ => false,
            };
            if calm >= RESOLVE_AFTER_CALM_BUCKETS && settles {
                let reason = format!("series back at its baseline for {calm} buckets");
                if let Some(done) = incident_store::transition(
                    &mut tx,
                    incident.id,
                    State::Resolved,
                    &reason,
                    through,
                )
                .await?
                {
                    announce(&mut tx, &done, State::Resolved.topic(), &[]).await?;
                    resolved.push(done.id);
                }
            } else {
                let score = decisions.scores.get(&scope).copied().unwrap_or(0.0);
                incident_store::update_progress(&mut tx, incident.id, score, calm).await?;
            }
        }
        for (rule_id, scope) in &decisions.fire_rule {
            rule_store::mark_fired(&mut tx, *rule_id, scope, through).await?;
        }
        for (rule_id, scope) in &decisions.rearm_rule {
            rule_store::rearm(&mut tx, *rule_id, scope).await?;
        }
        if state_due(run, through) {
            save_state(&mut tx, project_id, &run.detector, through).await?;
        }
        tx.commit().await.map_err(StoreError::from)?;
        self.metrics
            .anomaly_score
            .with_label_values(&[&project_id.to_string()])
            .set(decisions.max_score);
        let mut still_open: HashMap<Kind, usize> = HashMap::new();
        for incident in tracked.iter().filter(|i| !resolved.contains(&i.id)) {
            *still_open.entry(incident.kind).or_default() += 1;
        }
        Ok(Some(Committed {
            still_open,
            opened,
            updated,
            resolved,
        }))
    }

    /// Opens the incident of a series' findings, or — when the series already has an
    /// active one — adds the kinds it lacks to it and announces that it got worse.
    async fn open_or_worsen(
        &self,
        tx: &mut sqlx::PgConnection,
        project_id: ProjectId,
        findings: &Findings,
        changed: &mut Changed,
    ) -> Result<(), StoreError> {
        let first = findings.first();
        let new = new_incident(project_id, findings);
        if let Some(incident) = incident_store::open(tx, &new).await? {
            announce(tx, &incident, State::Open.topic(), &findings.kinds()).await?;
            for kind in findings.kinds() {
                self.metrics
                    .incidents_opened
                    .with_label_values(&[kind.as_str()])
                    .inc();
            }
            changed.opened.push(incident.id);
            changed.tracked.push(incident);
            return Ok(());
        }
        let Some(active) = incident_store::active_on(tx, project_id, &first.scope).await? else {
            return Ok(());
        };
        let added: Vec<&Opening> = findings
            .list
            .iter()
            .filter(|o| !active.kinds.contains(&o.kind))
            .collect();
        if added.is_empty() {
            return Ok(());
        }
        let kinds: Vec<Kind> = added.iter().map(|o| o.kind).collect();
        let finding = json!(added
            .iter()
            .map(
                |o| json!({"kind": o.kind.as_str(), "at": o.at, "score": o.score,
                "details": o.details})
            )
            .collect::<Vec<_>>());
        let score = findings.score();
        let at = added.iter().map(|o| o.at).max().unwrap_or(first.at);
        if let Some(worse) =
            incident_store::worsen(tx, active.id, &kinds, score, &finding, at).await?
        {
            announce(tx, &worse, UPDATED, &kinds).await?;
            changed.updated.push(worse.id);
            changed.tracked.retain(|i| i.id != worse.id);
            changed.tracked.push(worse);
        }
        Ok(())
    }
}

/// What a commit changed so far: the incidents it opened, worsened and resolved, and the
/// active ones it tracks for their calm streaks.
#[derive(Default)]
struct Changed {
    opened: Vec<IncidentId>,
    updated: Vec<IncidentId>,
    resolved: Vec<IncidentId>,
    tracked: Vec<Incident>,
}

/// Resolving or ignoring an issue ends the incidents about it: a person said it is
/// handled (a regression opens a new one if it comes back).
async fn end_for_handled_issues(
    tx: &mut sqlx::PgConnection,
    project_id: ProjectId,
    at: DateTime<Utc>,
    changed: &mut Changed,
) -> Result<(), StoreError> {
    for (id, status) in incident_store::about_handled_issues(tx, project_id).await? {
        let reason = format!("its issue was {status}");
        if let Some(done) = incident_store::transition(tx, id, State::Resolved, &reason, at).await?
        {
            announce(tx, &done, State::Resolved.topic(), &[]).await?;
            changed.resolved.push(done.id);
        }
        changed.tracked.retain(|i| i.id != id);
    }
    Ok(())
}

/// Judges the recovery action under way on an incident ([`verify::verify`]) and applies
/// the verdict: success resolves the incident; a false recovery or no recovery escalates it
/// (again, if it already was), announcing `incident.escalated` with the failed action's
/// `order` so delivery mails people and sends the next action of the chain. True when the
/// incident was resolved.
async fn settle_action(
    tx: &mut sqlx::PgConnection,
    incident: &Incident,
    action: &RecoveryAction,
    calm: i32,
    through: DateTime<Utc>,
) -> Result<bool, StoreError> {
    let verdict = verify::verify(
        action.cleared_at.is_some(),
        calm,
        through,
        action.verify_until,
    );
    let outcome = match verdict {
        Verification::Waiting { cleared_now: true } => {
            recovery::mark_cleared(tx, action.id, through).await?;
            return Ok(false);
        }
        Verification::Waiting { .. } => return Ok(false),
        Verification::Decided(outcome) => outcome,
    };
    if !recovery::decide(tx, action.id, outcome.as_str(), through).await? {
        return Ok(false);
    }
    if outcome == Outcome::Succeeded {
        let reason = format!("{} verified: series back at its baseline", action.action);
        let Some(done) =
            incident_store::transition(tx, incident.id, State::Resolved, &reason, through).await?
        else {
            return Ok(false);
        };
        announce(tx, &done, State::Resolved.topic(), &[]).await?;
        return Ok(true);
    }
    let reason = format!(
        "{} did not help: {}",
        action.action,
        outcome.as_str().replace('_', " ")
    );
    let escalated =
        incident_store::transition(tx, incident.id, State::Escalated, &reason, through).await?;
    if let Some(escalated) = escalated.filter(|i| i.silence_id.is_none()) {
        let topic = State::Escalated.topic();
        let mut body = message(topic, escalated.updated_at, &escalated);
        body["data"]["recovery"] = json!({"action": action.action, "order": action.order,
            "endpoint_id": action.endpoint_id, "outcome": outcome.as_str()});
        incident_store::enqueue(tx, escalated.project_id, Some(escalated.id), topic, &body).await?;
    }
    Ok(false)
}

/// Writes the outbox rows announcing an incident's change (`topic`), and for each new
/// finding about an issue (`found`: a new issue, a regression) the issue's own topic; an
/// incident opened under a silence announces nothing, from its opening to its resolution.
async fn announce(
    tx: &mut sqlx::PgConnection,
    incident: &Incident,
    topic: &str,
    found: &[Kind],
) -> Result<(), StoreError> {
    if incident.silence_id.is_some() {
        return Ok(());
    }
    let at = incident.updated_at;
    let issue_topics = found.iter().filter_map(|kind| match kind {
        Kind::NewIssue => Some("issue.new"),
        Kind::Regression => Some("issue.regressed"),
        _ => None,
    });
    for topic in std::iter::once(topic).chain(issue_topics) {
        let body = message(topic, at, incident);
        incident_store::enqueue(tx, incident.project_id, Some(incident.id), topic, &body).await?;
    }
    Ok(())
}

/// The state is saved every [`STATE_EVERY`] (and on the first commit): saving 100,000
/// series every minute would cost more than detecting them; a restart replays the gap.
pub(super) fn state_due(run: &ProjectRun, through: DateTime<Utc>) -> bool {
    run.state_saved
        .is_none_or(|saved| through - saved >= STATE_EVERY)
}

async fn save_state(
    tx: &mut sqlx::PgConnection,
    project_id: ProjectId,
    detector: &ProjectDetector,
    through: DateTime<Utc>,
) -> Result<(), StoreError> {
    let series: Vec<StoredSeries<&SeriesState>> = detector
        .series
        .iter()
        .map(|((scope, measure), state)| StoredSeries {
            scope: scope.clone(),
            measure: measure.as_str().to_string(),
            state,
        })
        .collect();
    let profiles: Vec<(&str, &Seasonality)> = detector
        .profiles
        .iter()
        .map(|(service, profile)| (service.as_str(), profile))
        .collect();
    stored::save(tx, project_id, &series, &profiles, through).await
}

fn new_incident(project_id: ProjectId, findings: &Findings) -> NewIncident {
    let first = findings.first();
    let kinds = findings.kinds();
    let names: Vec<&str> = kinds.iter().map(|kind| kind.as_str()).collect();
    NewIncident {
        project_id,
        kind: first.kind,
        scope: first.scope.clone(),
        opened_at: first.at,
        score: findings.score(),
        details: first.details.clone(),
        reason: format!("{} detected", names.join(", ")),
        kinds,
    }
}
