//! What is known about an incident beyond its row, gathered from stored (scrubbed) rows
//! for the messages about it: the top issue of its series with its latest event (service,
//! environment, release, top frames), the count of the bucket it opened in, the release the
//! spike came with and the one running before it, the series around the opening, and the
//! recovery actions taken. Recovery payloads and mails are rendered from this only.

use chrono::{DateTime, TimeDelta, Utc};
use sqlx::PgPool;

use super::incidents;
use super::recovery::{self, RecoveryAction};
use super::StoreError;
use crate::model::{Incident, IncidentId, IssueId, Scope};

/// Minutes of the series shown before the opening, and at most after it.
const BEFORE: TimeDelta = TimeDelta::minutes(30);
const AFTER: TimeDelta = TimeDelta::minutes(60);
/// The spike's release is the commonest in this long after the opening.
const SPIKE: TimeDelta = TimeDelta::minutes(10);

#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct TopIssue {
    pub id: IssueId,
    pub title: String,
    pub culprit: String,
    pub level: String,
}

/// The latest event of the top issue around the incident.
#[derive(Debug, Clone, PartialEq, Default, sqlx::FromRow)]
pub struct LatestEvent {
    pub service: Option<String>,
    pub environment: Option<String>,
    pub release: Option<String>,
    pub top_frames: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct IncidentContext {
    pub incident: Incident,
    pub project_slug: String,
    pub project_name: String,
    pub top_issue: Option<TopIssue>,
    pub latest: LatestEvent,
    /// Events in the bucket the incident opened in.
    pub observed: i64,
    pub suspect_release: Option<String>,
    pub last_healthy_release: Option<String>,
    /// (minute, events) of the incident's series around its opening, minutes in order.
    pub series: Vec<(DateTime<Utc>, i64)>,
    pub actions: Vec<RecoveryAction>,
}

impl IncidentContext {
    /// The service the incident is about: its series', else its top event's.
    pub fn service(&self) -> Option<&str> {
        match &self.incident.series {
            Scope::Service(name) => Some(name.as_str()),
            _ => self.latest.service.as_deref(),
        }
    }

    /// The service the incident belongs to, for routing it to a service's recovery hooks:
    /// a service's series, or an issue's (by its latest event). A project-wide series
    /// belongs to no one service: its top event's service is only the loudest of several.
    pub fn owning_service(&self) -> Option<&str> {
        match &self.incident.series {
            Scope::Project => None,
            _ => self.service(),
        }
    }
}

pub async fn gather(
    pool: &PgPool,
    incident_id: IncidentId,
    now: DateTime<Utc>,
) -> Result<Option<IncidentContext>, StoreError> {
    let Some(incident) = incidents::get(pool, incident_id).await? else {
        return Ok(None);
    };
    let (project_slug, project_name): (String, String) =
        sqlx::query_as("SELECT slug, name FROM projects WHERE id = $1")
            .bind(incident.project_id)
            .fetch_one(pool)
            .await?;
    let top_issue = top_issue(pool, &incident).await?;
    let latest = match &top_issue {
        Some(issue) => latest_event(pool, &incident, issue.id).await?,
        None => LatestEvent::default(),
    };
    let service = match &incident.series {
        Scope::Service(name) => Some(name.clone()),
        _ => latest.service.clone(),
    };
    let suspect_release = spike_release(pool, &incident, service.as_deref()).await?;
    let last_healthy_release = release_before(
        pool,
        &incident,
        service.as_deref(),
        suspect_release.as_deref(),
    )
    .await?;
    let series = series(pool, &incident, now).await?;
    let observed = series
        .iter()
        .find(|(minute, _)| *minute == incident.opened_at)
        .map_or(0, |(_, events)| *events);
    let actions = recovery::for_incident(pool, incident.id).await?;
    Ok(Some(IncidentContext {
        incident,
        project_slug,
        project_name,
        top_issue,
        latest,
        observed,
        suspect_release,
        last_healthy_release,
        series,
        actions,
    }))
}

/// The issue of an issue incident; else the issue with most events in the series since
/// a minute before the opening.
async fn top_issue(pool: &PgPool, incident: &Incident) -> Result<Option<TopIssue>, StoreError> {
    let sql = "SELECT id, title, culprit, level FROM issues WHERE id = coalesce( \
           CASE WHEN $2 = 'issue' THEN $3 END, \
           (SELECT issue_id FROM events WHERE project_id = $1 AND received_at >= $5 \
              AND received_day >= $5::date AND ($2 <> 'service' OR service = $4) \
            GROUP BY issue_id ORDER BY count(*) DESC, issue_id LIMIT 1))";
    let (scope, service, issue_id) = incident.series.columns();
    Ok(sqlx::query_as(sql)
        .bind(incident.project_id)
        .bind(scope)
        .bind(issue_id)
        .bind(service)
        .bind(incident.opened_at - TimeDelta::minutes(1))
        .fetch_optional(pool)
        .await?)
}

async fn latest_event(
    pool: &PgPool,
    incident: &Incident,
    issue_id: IssueId,
) -> Result<LatestEvent, StoreError> {
    let found: Option<LatestEvent> = sqlx::query_as(
        "SELECT service, environment, release, top_frames FROM events \
         WHERE project_id = $1 AND issue_id = $2 AND received_day >= $3::date - 1 \
         ORDER BY received_at DESC LIMIT 1",
    )
    .bind(incident.project_id)
    .bind(issue_id)
    .bind(incident.opened_at)
    .fetch_optional(pool)
    .await?;
    Ok(found.unwrap_or_default())
}

/// The commonest release among the service's (or project's) events in the spike.
async fn spike_release(
    pool: &PgPool,
    incident: &Incident,
    service: Option<&str>,
) -> Result<Option<String>, StoreError> {
    Ok(sqlx::query_scalar(
        "SELECT release FROM events WHERE project_id = $1 AND release IS NOT NULL \
           AND received_at >= $2 AND received_at < $3 AND received_day >= $2::date \
           AND ($4::text IS NULL OR service = $4) \
         GROUP BY release ORDER BY count(*) DESC, max(received_at) DESC LIMIT 1",
    )
    .bind(incident.project_id)
    .bind(incident.opened_at)
    .bind(incident.opened_at + SPIKE)
    .bind(service)
    .fetch_optional(pool)
    .await?)
}

/// The release of the service's (or project's) last event before the incident that is
/// not the suspect: what was running while things were normal.
async fn release_before(
    pool: &PgPool,
    incident: &Incident,
    service: Option<&str>,
    suspect: Option<&str>,
) -> Result<Option<String>, StoreError> {
    Ok(sqlx::query_scalar(
        "SELECT release FROM events WHERE project_id = $1 AND release IS NOT NULL \
           AND received_at < $2 AND received_day <= $2::date \
           AND ($3::text IS NULL OR service = $3) AND ($4::text IS NULL OR release <> $4) \
         ORDER BY received_at DESC LIMIT 1",
    )
    .bind(incident.project_id)
    .bind(incident.opened_at)
    .bind(service)
    .bind(suspect)
    .fetch_optional(pool)
    .await?)
}

async fn series(
    pool: &PgPool,
    incident: &Incident,
    now: DateTime<Utc>,
) -> Result<Vec<(DateTime<Utc>, i64)>, StoreError> {
    let until = now.min(incident.opened_at + AFTER);
    let (scope, service, issue_id) = incident.series.columns();
    Ok(sqlx::query_as(
        "SELECT minute, events FROM minute_counts WHERE project_id = $1 AND scope = $2 \
           AND service = $3 AND issue_id = $4 AND minute BETWEEN $5 AND $6 ORDER BY minute",
    )
    .bind(incident.project_id)
    .bind(scope)
    .bind(service)
    .bind(issue_id)
    .bind(incident.opened_at - BEFORE)
    .bind(until)
    .fetch_all(pool)
    .await?)
}
