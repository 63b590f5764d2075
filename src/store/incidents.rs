//! Incidents, their state history, and the outbox rows their changes produce.
//!
//! Every change is a function taking the caller's transaction: the detector opens or moves
//! an incident, records the transition and enqueues the outbox row in one COMMIT, so a
//! notification exists exactly when the change does. At most one incident per series is
//! active (open, recovering or escalated): a partial unique index decides, so two
//! detectors racing on one series open one incident, never two.

use chrono::{DateTime, Utc};
use sqlx::{PgConnection, PgPool};

use super::silences::MATCHING_SILENCE;
use super::StoreError;
use crate::model::{Incident, IncidentId, Kind, ProjectId, Scope, State};

/// An incident row as stored; [`Incident`] is what callers get.
#[derive(sqlx::FromRow)]
struct IncidentRow {
    id: IncidentId,
    project_id: ProjectId,
    kind: String,
    scope: String,
    service: String,
    issue_id: i64,
    state: String,
    opened_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
    resolved_at: Option<DateTime<Utc>>,
    score: f64,
    label: Option<String>,
    calm_buckets: i32,
    details: serde_json::Value,
    acknowledged_at: Option<DateTime<Utc>>,
    silence_id: Option<i64>,
    kinds: Vec<String>,
}

impl TryFrom<IncidentRow> for Incident {
    type Error = StoreError;

    fn try_from(row: IncidentRow) -> Result<Incident, StoreError> {
        let corrupt = |what: &str| StoreError::Corrupt(format!("incident {}: {what}", row.id));
        Ok(Incident {
            kind: Kind::parse(&row.kind).ok_or_else(|| corrupt("unknown kind"))?,
            series: Scope::from_columns(&row.scope, row.service.clone(), row.issue_id)
                .ok_or_else(|| corrupt("unknown scope"))?,
            state: State::parse(&row.state).ok_or_else(|| corrupt("unknown state"))?,
            id: row.id,
            project_id: row.project_id,
            opened_at: row.opened_at,
            updated_at: row.updated_at,
            resolved_at: row.resolved_at,
            score: row.score,
            label: row.label,
            calm_buckets: row.calm_buckets,
            details: row.details,
            acknowledged_at: row.acknowledged_at,
            silence_id: row.silence_id,
            kinds: row
                .kinds
                .iter()
                .map(|kind| Kind::parse(kind).ok_or_else(|| corrupt("unknown kind")))
                .collect::<Result<_, _>>()?,
        })
    }
}

fn one(row: Option<IncidentRow>) -> Result<Option<Incident>, StoreError> {
    row.map(Incident::try_from).transpose()
}

fn all(rows: Vec<IncidentRow>) -> Result<Vec<Incident>, StoreError> {
    rows.into_iter().map(Incident::try_from).collect()
}

/// One change of an incident's state (the API shows an incident's history as these).
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct Transition {
    pub at: DateTime<Utc>,
    pub from_state: Option<String>,
    pub to_state: String,
    pub reason: String,
}

/// What the detector decided to open.
#[derive(Debug, Clone, PartialEq)]
pub struct NewIncident {
    pub project_id: ProjectId,
    pub kind: Kind,
    /// The kinds of every finding in it, `kind` first.
    pub kinds: Vec<Kind>,
    pub scope: Scope,
    pub opened_at: DateTime<Utc>,
    pub score: f64,
    pub details: serde_json::Value,
    pub reason: String,
}

const INCIDENT_COLUMNS: &str = "id, project_id, kind, scope, service, issue_id, state, opened_at, \
     updated_at, resolved_at, score, label, calm_buckets, details, acknowledged_at, silence_id, kinds";

/// Opens an incident unless its series already has an active one (then `None`), stamped
/// with the silence that covers it, if any.
pub async fn open(
    conn: &mut PgConnection,
    new: &NewIncident,
) -> Result<Option<Incident>, StoreError> {
    let (scope, service, issue_id) = new.scope.columns();
    let sql = format!(
        "INSERT INTO incidents (project_id, kind, scope, service, issue_id, state, opened_at, updated_at, \
           score, details, silence_id, kinds) \
         VALUES ($1, $2, $3, $4, $5, 'open', $6, $6, $7, $8, {MATCHING_SILENCE}, $9) \
         ON CONFLICT (project_id, scope, service, issue_id) WHERE state IN ('open', 'recovering', 'escalated') \
         DO NOTHING RETURNING {INCIDENT_COLUMNS}"
    );
    let incident: Option<Incident> = one(sqlx::query_as(&sql)
        .bind(new.project_id)
        .bind(new.kind.as_str())
        .bind(scope)
        .bind(service)
        .bind(issue_id)
        .bind(new.opened_at)
        .bind(new.score)
        .bind(&new.details)
        .bind(kind_names(&new.kinds))
        .fetch_optional(&mut *conn)
        .await?)?;
    if let Some(incident) = &incident {
        let reason = match incident.silence_id {
            Some(silence) => format!("{} (silenced by silence {silence})", new.reason),
            None => new.reason.clone(),
        };
        record(conn, incident.id, None, State::Open, &reason, new.opened_at).await?;
    }
    Ok(incident)
}

/// Moves an active incident to `to`; `None` when it is not active (already resolved).
pub async fn transition(
    conn: &mut PgConnection,
    id: IncidentId,
    to: State,
    reason: &str,
    at: DateTime<Utc>,
) -> Result<Option<Incident>, StoreError> {
    let from: Option<String> = sqlx::query_scalar(
        "SELECT state FROM incidents WHERE id = $1 AND state IN ('open', 'recovering', 'escalated') FOR UPDATE",
    )
    .bind(id)
    .fetch_optional(&mut *conn)
    .await?;
    let Some(from) = from.as_deref().and_then(State::parse) else {
        return Ok(None);
    };
    let sql = format!(
        "UPDATE incidents SET state = $2, updated_at = $3, \
           resolved_at = CASE WHEN $2 = 'resolved' THEN $3 END \
         WHERE id = $1 RETURNING {INCIDENT_COLUMNS}"
    );
    let row: IncidentRow = sqlx::query_as(&sql)
        .bind(id)
        .bind(to.as_str())
        .bind(at)
        .fetch_one(&mut *conn)
        .await?;
    record(conn, id, Some(from), to, reason, at).await?;
    Ok(Some(Incident::try_from(row)?))
}

async fn record(
    conn: &mut PgConnection,
    id: IncidentId,
    from: Option<State>,
    to: State,
    reason: &str,
    at: DateTime<Utc>,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO incident_transitions (incident_id, at, from_state, to_state, reason) \
         VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(id)
    .bind(at)
    .bind(from.map(State::as_str))
    .bind(to.as_str())
    .bind(reason)
    .execute(conn)
    .await?;
    Ok(())
}

fn kind_names(kinds: &[Kind]) -> Vec<&'static str> {
    kinds.iter().map(|kind| kind.as_str()).collect()
}

/// Later findings on the series of an active incident: their kinds are added, its score
/// raised, their details (a JSON array) appended to `details.findings`, and a history
/// row says what was added. `None` when the incident is no longer active.
pub async fn worsen(
    conn: &mut PgConnection,
    id: IncidentId,
    added: &[Kind],
    score: f64,
    findings: &serde_json::Value,
    at: DateTime<Utc>,
) -> Result<Option<Incident>, StoreError> {
    let sql = format!(
        "UPDATE incidents SET kinds = kinds || $2::text[], score = greatest(score, $3), \
           details = details || jsonb_build_object('findings', \
             coalesce(details->'findings', '[]'::jsonb) || $4::jsonb), \
           updated_at = greatest(updated_at, $5) \
         WHERE id = $1 AND state IN ('open', 'recovering', 'escalated') RETURNING {INCIDENT_COLUMNS}"
    );
    let incident = one(sqlx::query_as(&sql)
        .bind(id)
        .bind(kind_names(added))
        .bind(score)
        .bind(findings)
        .bind(at)
        .fetch_optional(&mut *conn)
        .await?)?;
    if let Some(incident) = &incident {
        let reason = format!("worse: {} detected", kind_names(added).join(", "));
        let state = incident.state;
        record(conn, id, Some(state), state, &reason, at).await?;
    }
    Ok(incident)
}

/// The project's active incidents about issues that are now resolved or ignored (a
/// person said they are handled), locked until the caller's transaction ends, with the
/// issue's status.
pub async fn about_handled_issues(
    conn: &mut PgConnection,
    project_id: ProjectId,
) -> Result<Vec<(IncidentId, String)>, StoreError> {
    Ok(sqlx::query_as(
        "SELECT i.id, s.status FROM incidents i JOIN issues s ON s.id = i.issue_id \
         WHERE i.project_id = $1 AND i.scope = 'issue' \
           AND i.state IN ('open', 'recovering', 'escalated') \
           AND s.status IN ('resolved', 'ignored') \
         ORDER BY i.id FOR UPDATE OF i",
    )
    .bind(project_id)
    .fetch_all(conn)
    .await?)
}

/// Keeps the highest score an active incident reached and how long it has been calm.
pub async fn update_progress(
    conn: &mut PgConnection,
    id: IncidentId,
    score: f64,
    calm_buckets: i32,
) -> Result<(), StoreError> {
    sqlx::query(
        "UPDATE incidents SET score = greatest(score, $2), calm_buckets = $3 WHERE id = $1",
    )
    .bind(id)
    .bind(score)
    .bind(calm_buckets)
    .execute(conn)
    .await?;
    Ok(())
}

/// Queues a side effect of an incident change for the delivery workers.
pub async fn enqueue(
    conn: &mut PgConnection,
    project_id: ProjectId,
    incident_id: Option<IncidentId>,
    topic: &str,
    payload: &serde_json::Value,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO outbox (project_id, incident_id, topic, payload) VALUES ($1, $2, $3, $4)",
    )
    .bind(project_id)
    .bind(incident_id)
    .bind(topic)
    .bind(payload)
    .execute(conn)
    .await?;
    Ok(())
}

/// The active incident of one series, locked until the caller's transaction ends.
pub async fn active_on(
    conn: &mut PgConnection,
    project_id: ProjectId,
    scope: &Scope,
) -> Result<Option<Incident>, StoreError> {
    let (scope, service, issue_id) = scope.columns();
    let sql = format!(
        "SELECT {INCIDENT_COLUMNS} FROM incidents WHERE project_id = $1 AND scope = $2 \
           AND service = $3 AND issue_id = $4 AND state IN ('open', 'recovering', 'escalated') \
         FOR UPDATE"
    );
    one(sqlx::query_as(&sql)
        .bind(project_id)
        .bind(scope)
        .bind(service)
        .bind(issue_id)
        .fetch_optional(conn)
        .await?)
}

pub async fn active(pool: &PgPool, project_id: ProjectId) -> Result<Vec<Incident>, StoreError> {
    let sql = format!(
        "SELECT {INCIDENT_COLUMNS} FROM incidents \
         WHERE project_id = $1 AND state IN ('open', 'recovering', 'escalated') ORDER BY id"
    );
    all(sqlx::query_as(&sql)
        .bind(project_id)
        .fetch_all(pool)
        .await?)
}

pub async fn get(pool: &PgPool, id: IncidentId) -> Result<Option<Incident>, StoreError> {
    let sql = format!("SELECT {INCIDENT_COLUMNS} FROM incidents WHERE id = $1");
    one(sqlx::query_as(&sql).bind(id).fetch_optional(pool).await?)
}

/// A project's incidents, newest first.
pub async fn list(
    pool: &PgPool,
    project_id: ProjectId,
    limit: i64,
) -> Result<Vec<Incident>, StoreError> {
    let sql = format!(
        "SELECT {INCIDENT_COLUMNS} FROM incidents WHERE project_id = $1 \
         ORDER BY opened_at DESC, id DESC LIMIT $2"
    );
    all(sqlx::query_as(&sql)
        .bind(project_id)
        .bind(limit)
        .fetch_all(pool)
        .await?)
}

/// Which incidents a page shows; `after` is where the previous page ended.
#[derive(Debug, Clone, Default)]
pub struct IncidentFilter {
    pub project_id: Option<ProjectId>,
    pub state: Option<String>,
    pub kind: Option<String>,
    /// `(opened_at, id)` of the previous page's last incident.
    pub after: Option<(DateTime<Utc>, IncidentId)>,
    pub limit: i64,
}

/// One page of incidents, newest first (ties by id), for the API's keyset pagination.
pub async fn page(pool: &PgPool, filter: &IncidentFilter) -> Result<Vec<Incident>, StoreError> {
    let sql = format!(
        "SELECT {INCIDENT_COLUMNS} FROM incidents \
         WHERE ($1::int8 IS NULL OR project_id = $1) \
           AND ($2::text IS NULL OR state = $2) \
           AND ($3::text IS NULL OR $3 = ANY(kinds)) \
           AND ($4::timestamptz IS NULL OR (opened_at, id) < ($4, $5)) \
         ORDER BY opened_at DESC, id DESC LIMIT $6"
    );
    all(sqlx::query_as(&sql)
        .bind(filter.project_id)
        .bind(filter.state.as_deref())
        .bind(filter.kind.as_deref())
        .bind(filter.after.map(|a| a.0))
        .bind(filter.after.map(|a| a.1))
        .bind(filter.limit)
        .fetch_all(pool)
        .await?)
}

/// The incident, locked until the caller's transaction ends (a change decided on its
/// state then cannot race another one).
pub async fn lock(conn: &mut PgConnection, id: IncidentId) -> Result<Option<Incident>, StoreError> {
    let sql = format!("SELECT {INCIDENT_COLUMNS} FROM incidents WHERE id = $1 FOR UPDATE");
    one(sqlx::query_as(&sql).bind(id).fetch_optional(conn).await?)
}

/// Marks an incident acknowledged; the first acknowledgement's time is kept.
pub async fn acknowledge(
    conn: &mut PgConnection,
    id: IncidentId,
    at: DateTime<Utc>,
) -> Result<Option<Incident>, StoreError> {
    let sql = format!(
        "UPDATE incidents SET acknowledged_at = coalesce(acknowledged_at, $2) \
         WHERE id = $1 RETURNING {INCIDENT_COLUMNS}"
    );
    one(sqlx::query_as(&sql)
        .bind(id)
        .bind(at)
        .fetch_optional(conn)
        .await?)
}

/// Records a person's verdict on an incident (`true_positive`, `false_positive`, `missed`).
pub async fn set_label(
    pool: &PgPool,
    id: IncidentId,
    label: &str,
) -> Result<Option<Incident>, StoreError> {
    let sql = format!("UPDATE incidents SET label = $2 WHERE id = $1 RETURNING {INCIDENT_COLUMNS}");
    one(sqlx::query_as(&sql)
        .bind(id)
        .bind(label)
        .fetch_optional(pool)
        .await?)
}

/// A fault Seismo never flagged, as a person reports it.
#[derive(Debug, Clone, PartialEq)]
pub struct MissedFault {
    pub project_id: ProjectId,
    pub opened_at: DateTime<Utc>,
    pub reported_at: DateTime<Utc>,
    pub note: Option<String>,
}

/// Stores a missed fault as an incident that is born resolved (kind `anomaly`, scope
/// project, label `missed`), so it never takes the series' one active slot and never pages;
/// it exists to be counted against detection.
pub async fn record_missed(
    conn: &mut PgConnection,
    missed: &MissedFault,
) -> Result<Incident, StoreError> {
    let sql = format!(
        "INSERT INTO incidents (project_id, kind, scope, state, opened_at, updated_at, resolved_at, label, \
           details, kinds) \
         VALUES ($1, 'anomaly', 'project', 'resolved', $2, $3, $3, 'missed', $4, ARRAY['anomaly']) \
         RETURNING {INCIDENT_COLUMNS}"
    );
    let row: IncidentRow = sqlx::query_as(&sql)
        .bind(missed.project_id)
        .bind(missed.opened_at)
        .bind(missed.reported_at)
        .bind(serde_json::json!({"note": missed.note}))
        .fetch_one(&mut *conn)
        .await?;
    let incident = Incident::try_from(row)?;
    let reason = "a missed fault reported by a person";
    record(
        conn,
        incident.id,
        None,
        State::Resolved,
        reason,
        missed.reported_at,
    )
    .await?;
    Ok(incident)
}

pub async fn history(pool: &PgPool, id: IncidentId) -> Result<Vec<Transition>, StoreError> {
    Ok(sqlx::query_as(
        "SELECT at, from_state, to_state, reason FROM incident_transitions WHERE incident_id = $1 ORDER BY id",
    )
    .bind(id)
    .fetch_all(pool)
    .await?)
}

/// Outbox topics waiting for delivery, oldest first (what the delivery workers will claim).
pub async fn pending_topics(
    pool: &PgPool,
    project_id: ProjectId,
) -> Result<Vec<String>, StoreError> {
    Ok(
        sqlx::query_scalar("SELECT topic FROM outbox WHERE project_id = $1 ORDER BY id")
            .bind(project_id)
            .fetch_all(pool)
            .await?,
    )
}
