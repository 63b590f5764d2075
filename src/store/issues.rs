//! Issues: one row per fingerprint per project, as the API reads and changes them. (The
//! writer creates them and adds their counts in `store::batch`.)
//!
//! Lifecycle: unresolved → resolved | ignored. An event for a resolved issue reopens it (a
//! regression) unless the issue was resolved in release R and the event comes from a release
//! older than R (by semantic version within a package, else first seen before R:
//! `store::releases`).

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::{PgConnection, PgPool};

use super::StoreError;
use crate::model::{Fingerprint, IssueId, ProjectId};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Unresolved,
    Resolved,
    Ignored,
}

impl Status {
    pub const ALL: [Status; 3] = [Status::Unresolved, Status::Resolved, Status::Ignored];

    /// Every status's name, as the API and the database spell it.
    pub fn names() -> [&'static str; 3] {
        Status::ALL.map(Status::as_str)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Status::Unresolved => "unresolved",
            Status::Resolved => "resolved",
            Status::Ignored => "ignored",
        }
    }
}

impl std::str::FromStr for Status {
    type Err = String;

    fn from_str(text: &str) -> Result<Status, String> {
        match text {
            "unresolved" => Ok(Status::Unresolved),
            "resolved" => Ok(Status::Resolved),
            "ignored" => Ok(Status::Ignored),
            other => Err(format!(
                "unknown status {other:?} (unresolved, resolved or ignored)"
            )),
        }
    }
}

/// An issue: the events of one fingerprint in a project (DESIGN.md §3.5).
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Issue {
    pub id: IssueId,
    pub project_id: ProjectId,
    pub fingerprint: Fingerprint,
    pub grouping_strategy: String,
    pub title: String,
    pub culprit: String,
    pub level: String,
    pub status: String,
    #[sqlx(rename = "times_seen")]
    pub count: i64,
    pub first_seen: DateTime<Utc>,
    pub last_seen: DateTime<Utc>,
    pub first_release: Option<String>,
    pub last_release: Option<String>,
    pub handled: bool,
    pub resolved_at: Option<DateTime<Utc>>,
    pub resolved_in_release: Option<String>,
    pub regressed_at: Option<DateTime<Utc>>,
}

const ISSUE_COLUMNS: &str = "id, project_id, fingerprint, grouping_strategy, title, culprit, level, status, \
     times_seen, first_seen, last_seen, first_release, last_release, (times_unhandled = 0) AS handled, \
     resolved_at, resolved_in_release, regressed_at";

pub async fn get(pool: &PgPool, id: IssueId) -> Result<Option<Issue>, StoreError> {
    let sql = format!("SELECT {ISSUE_COLUMNS} FROM issues WHERE id = $1");
    Ok(sqlx::query_as(&sql).bind(id).fetch_optional(pool).await?)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Sort {
    #[default]
    LastSeen,
    FirstSeen,
    Count,
}

impl Sort {
    fn column(self) -> &'static str {
        match self {
            Sort::LastSeen => "last_seen",
            Sort::FirstSeen => "first_seen",
            Sort::Count => "times_seen",
        }
    }
}

impl std::str::FromStr for Sort {
    type Err = String;

    fn from_str(text: &str) -> Result<Sort, String> {
        match text {
            "last_seen" => Ok(Sort::LastSeen),
            "first_seen" => Ok(Sort::FirstSeen),
            "count" | "times_seen" => Ok(Sort::Count),
            other => Err(format!(
                "unknown sort {other:?} (last_seen, first_seen or count)"
            )),
        }
    }
}

/// Where the previous page ended: the sort key and the id of its last issue.
#[derive(Debug, Clone, PartialEq)]
pub enum Cursor {
    Time(DateTime<Utc>, IssueId),
    Count(i64, IssueId),
}

#[derive(Debug, Clone, Default)]
pub struct IssueFilter {
    pub status: Option<Status>,
    pub level: Option<String>,
    /// Case-insensitive substring of the title or culprit.
    pub query: Option<String>,
    /// Only issues with at least one stored event matching all of these.
    pub events: EventFilter,
    pub sort: Sort,
    pub after: Option<Cursor>,
    pub limit: i64,
}

/// What one of an issue's events must match for the issue to be listed: release,
/// environment, service, received in `[since, until)`. Sentry filters issues by their events
/// the same way; as there, events retention removed no longer count.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct EventFilter {
    pub release: Option<String>,
    pub environment: Option<String>,
    pub service: Option<String>,
    pub since: Option<DateTime<Utc>>,
    pub until: Option<DateTime<Utc>>,
}

impl EventFilter {
    fn is_empty(&self) -> bool {
        *self == EventFilter::default()
    }
}

/// One page of a project's issues, in the sort's order (descending, ties by id).
/// The cursor must be of the sort's kind (the API decodes it per sort).
pub async fn list(
    pool: &PgPool,
    project_id: ProjectId,
    filter: &IssueFilter,
) -> Result<Vec<Issue>, StoreError> {
    let column = filter.sort.column();
    let key_type = match filter.sort {
        Sort::Count => "int8",
        Sort::LastSeen | Sort::FirstSeen => "timestamptz",
    };
    // The sort column comes from the enum above, never from the request.
    // The event clause is left out when unused, so the plain listing reads only the
    // project's issues. Only first seen has an index in the sort's order: the writer changes
    // last seen and the count with every event, and indexed they would make each of those
    // updates write an entry in every index (migrations/0033_issue_updates_in_place.sql).
    let events_clause = match filter.events.is_empty() {
        true => "",
        false => {
            "AND EXISTS (SELECT 1 FROM events e WHERE e.issue_id = issues.id \
               AND ($8::text IS NULL OR e.release = $8) \
               AND ($9::text IS NULL OR e.environment = $9) \
               AND ($10::text IS NULL OR e.service = $10) \
               AND ($11::timestamptz IS NULL OR e.received_at >= $11) \
               AND ($12::timestamptz IS NULL OR e.received_at < $12))"
        }
    };
    let sql = format!(
        "SELECT {ISSUE_COLUMNS} FROM issues WHERE project_id = $1 \
         AND ($2::text IS NULL OR status = $2) \
         AND ($3::text IS NULL OR title ILIKE $3 OR culprit ILIKE $3) \
         AND ($4::{key_type} IS NULL OR ({column}, id) < ($4, $5)) \
         AND ($7::text IS NULL OR level = $7) \
         {events_clause} \
         ORDER BY {column} DESC, id DESC LIMIT $6"
    );
    let query = sqlx::query_as(&sql)
        .bind(project_id)
        .bind(filter.status.map(Status::as_str))
        .bind(filter.query.as_deref().map(like_pattern));
    let query = match (&filter.after, filter.sort) {
        (Some(Cursor::Time(at, id)), _) => query.bind(Some(*at)).bind(Some(*id)),
        (Some(Cursor::Count(count, id)), _) => query.bind(Some(*count)).bind(Some(*id)),
        (None, Sort::Count) => query.bind(None::<i64>).bind(None::<IssueId>),
        (None, _) => query.bind(None::<DateTime<Utc>>).bind(None::<IssueId>),
    };
    let query = query.bind(filter.limit).bind(filter.level.as_deref());
    let events = &filter.events;
    let query = match events.is_empty() {
        true => query,
        false => query
            .bind(events.release.as_deref())
            .bind(events.environment.as_deref())
            .bind(events.service.as_deref())
            .bind(events.since)
            .bind(events.until),
    };
    Ok(query.fetch_all(pool).await?)
}

/// `%text%` with LIKE's wildcards in the text escaped.
fn like_pattern(text: &str) -> String {
    let escaped = text
        .replace('\\', "\\\\")
        .replace('%', "\\%")
        .replace('_', "\\_");
    format!("%{escaped}%")
}

/// Sets an issue's status; resolving may name the release it was fixed in (kept with its
/// semantic-version order when it has one, see `store::releases`).
pub async fn set_status(
    pool: &PgPool,
    id: IssueId,
    status: Status,
    in_release: Option<&str>,
) -> Result<Option<Issue>, StoreError> {
    let order = in_release.and_then(super::releases::order_key);
    let sql = format!(
        "UPDATE issues SET status = $2, ignore_until_count = NULL, ignore_window_minutes = NULL, \
           resolved_at = CASE WHEN $2 = 'resolved' THEN now() END, \
           resolved_in_release = CASE WHEN $2 = 'resolved' THEN $3 END, \
           resolved_in_package = CASE WHEN $2 = 'resolved' THEN $4 END, \
           resolved_in_key = CASE WHEN $2 = 'resolved' THEN $5 END \
         WHERE id = $1 RETURNING {ISSUE_COLUMNS}"
    );
    Ok(sqlx::query_as(&sql)
        .bind(id)
        .bind(status.as_str())
        .bind(in_release)
        .bind(order.as_ref().map(|o| o.0.as_str()))
        .bind(order.as_ref().map(|o| o.1.as_slice()))
        .fetch_optional(pool)
        .await?)
}

/// A moment in an issue's life the detector pages on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Moment {
    /// Its first event: a new issue.
    FirstSeen,
    /// Its return after being resolved: a regression.
    Regressed,
}

/// Issues of a project whose `moment` fell in `[since, until)`.
pub async fn reached_between(
    pool: &PgPool,
    project_id: ProjectId,
    moment: Moment,
    since: DateTime<Utc>,
    until: DateTime<Utc>,
) -> Result<Vec<Issue>, StoreError> {
    // A column name from a closed set, never user text.
    let column = match moment {
        Moment::FirstSeen => "first_seen",
        Moment::Regressed => "regressed_at",
    };
    let sql = format!(
        "SELECT {ISSUE_COLUMNS} FROM issues \
         WHERE project_id = $1 AND {column} >= $2 AND {column} < $3 ORDER BY id"
    );
    Ok(sqlx::query_as(&sql)
        .bind(project_id)
        .bind(since)
        .bind(until)
        .fetch_all(pool)
        .await?)
}

/// An ignored issue that comes back on its own once it sees `count` events in `window_minutes`.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct Mute {
    pub issue_id: IssueId,
    pub count: i64,
    pub window_minutes: i32,
}

/// Ignores an issue; with `until`, only until it sees that many events in that window.
pub async fn ignore(
    pool: &PgPool,
    id: IssueId,
    until: Option<(i64, i32)>,
) -> Result<Option<Issue>, StoreError> {
    let sql = format!(
        "UPDATE issues SET status = 'ignored', resolved_at = NULL, resolved_in_release = NULL, \
           resolved_in_package = NULL, resolved_in_key = NULL, \
           ignore_until_count = $2, ignore_window_minutes = $3 \
         WHERE id = $1 RETURNING {ISSUE_COLUMNS}"
    );
    Ok(sqlx::query_as(&sql)
        .bind(id)
        .bind(until.map(|u| u.0))
        .bind(until.map(|u| u.1))
        .fetch_optional(pool)
        .await?)
}

/// The project's ignored issues that carry an escalation condition.
pub async fn mutes(pool: &PgPool, project_id: ProjectId) -> Result<Vec<Mute>, StoreError> {
    Ok(sqlx::query_as(
        "SELECT id AS issue_id, ignore_until_count AS count, ignore_window_minutes AS window_minutes \
         FROM issues WHERE project_id = $1 AND status = 'ignored' \
           AND ignore_until_count IS NOT NULL AND ignore_window_minutes IS NOT NULL",
    )
    .bind(project_id)
    .fetch_all(pool)
    .await?)
}

/// Issues of all projects by status (statuses without issues are absent).
pub async fn count_by_status(pool: &PgPool) -> Result<Vec<(String, i64)>, StoreError> {
    Ok(
        sqlx::query_as("SELECT status, count(*) FROM issues GROUP BY status")
            .fetch_all(pool)
            .await?,
    )
}

/// Ignored issues of a project (their series are watched, but they do not page).
pub async fn ignored_ids(pool: &PgPool, project_id: ProjectId) -> Result<Vec<IssueId>, StoreError> {
    Ok(
        sqlx::query_scalar("SELECT id FROM issues WHERE project_id = $1 AND status = 'ignored'")
            .bind(project_id)
            .fetch_all(pool)
            .await?,
    )
}

/// An ignored issue escalated: back to unresolved, its mute condition cleared.
pub async fn unmute(conn: &mut sqlx::PgConnection, id: IssueId) -> Result<(), StoreError> {
    sqlx::query(
        "UPDATE issues SET status = 'unresolved', ignore_until_count = NULL, ignore_window_minutes = NULL \
         WHERE id = $1 AND status = 'ignored'",
    )
    .bind(id)
    .execute(conn)
    .await?;
    Ok(())
}

/// What a merge did: the merged issue, or why it could not.
#[derive(Debug, Clone)]
pub enum MergeOutcome {
    Merged(Box<Issue>),
    NoSuchIssue(IssueId),
    /// This issue belongs to another project than the one merged into.
    OtherProject(IssueId),
}

/// Merges `sources` into `target`, in one transaction: their events, per-minute counts
/// and totals move to the target, their fingerprints become the target's aliases (future
/// events join it), and the source issues are deleted. The target keeps its name and status.
/// Incidents about a source stay as history; its series, now silent, resolves them.
pub async fn merge(
    pool: &PgPool,
    target: IssueId,
    sources: &[IssueId],
) -> Result<MergeOutcome, StoreError> {
    let mut tx = pool.begin().await?;
    let Some(project_id) = lock_issue_set_of(&mut tx, target).await? else {
        return Ok(MergeOutcome::NoSuchIssue(target));
    };
    let all: Vec<IssueId> = std::iter::once(target)
        .chain(sources.iter().copied())
        .collect();
    let locked: Vec<(IssueId, ProjectId)> = sqlx::query_as(
        "SELECT id, project_id FROM issues WHERE id = ANY($1) ORDER BY id FOR UPDATE",
    )
    .bind(&all)
    .fetch_all(&mut *tx)
    .await?;
    for id in &all {
        match locked.iter().find(|(found, _)| found == id) {
            None => return Ok(MergeOutcome::NoSuchIssue(*id)),
            Some((_, project)) if *project != project_id => {
                return Ok(MergeOutcome::OtherProject(*id))
            }
            Some(_) => {}
        }
    }
    move_issue_rows(&mut tx, project_id, target, sources).await?;
    let sql = format!(
        "WITH parts AS (SELECT * FROM issues WHERE id = ANY($2)), \
         totals AS (SELECT sum(times_seen) AS seen, sum(times_unhandled) AS unhandled, \
           min(first_seen) AS earliest, max(last_seen) AS latest FROM parts) \
         UPDATE issues SET times_seen = totals.seen, times_unhandled = totals.unhandled, \
           first_seen = totals.earliest, last_seen = totals.latest, \
           first_release = (SELECT first_release FROM parts WHERE first_release IS NOT NULL \
             ORDER BY first_seen LIMIT 1), \
           last_release = (SELECT last_release FROM parts WHERE last_release IS NOT NULL \
             ORDER BY last_seen DESC LIMIT 1) \
         FROM totals WHERE id = $1 RETURNING {ISSUE_COLUMNS}"
    );
    let merged: Issue = sqlx::query_as(&sql)
        .bind(target)
        .bind(&all)
        .fetch_one(&mut *tx)
        .await?;
    sqlx::query("DELETE FROM issues WHERE id = ANY($1)")
        .bind(sources)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(MergeOutcome::Merged(Box::new(merged)))
}

/// Moves the sources' events, issue-scope counts and fingerprints to the target.
async fn move_issue_rows(
    conn: &mut PgConnection,
    project_id: ProjectId,
    target: IssueId,
    sources: &[IssueId],
) -> Result<(), StoreError> {
    sqlx::query("UPDATE events SET issue_id = $1 WHERE issue_id = ANY($2)")
        .bind(target)
        .bind(sources)
        .execute(&mut *conn)
        .await?;
    sqlx::query(
        "WITH moved AS ( \
           DELETE FROM minute_counts WHERE project_id = $1 AND scope = 'issue' AND issue_id = ANY($3) \
           RETURNING service, minute, events, unhandled, requests, failed) \
         INSERT INTO minute_counts AS c (project_id, scope, service, issue_id, minute, events, unhandled, \
           requests, failed) \
         SELECT $1, 'issue', service, $2, minute, sum(events), sum(unhandled), sum(requests), sum(failed) \
         FROM moved GROUP BY service, minute \
         ON CONFLICT (project_id, scope, service, issue_id, minute) DO UPDATE SET \
           events = c.events + EXCLUDED.events, unhandled = c.unhandled + EXCLUDED.unhandled, \
           requests = c.requests + EXCLUDED.requests, failed = c.failed + EXCLUDED.failed",
    )
    .bind(project_id)
    .bind(target)
    .bind(sources)
    .execute(&mut *conn)
    .await?;
    sqlx::query("UPDATE issue_aliases SET issue_id = $1 WHERE issue_id = ANY($2)")
        .bind(target)
        .bind(sources)
        .execute(&mut *conn)
        .await?;
    sqlx::query(
        "INSERT INTO issue_aliases (project_id, fingerprint, issue_id) \
         SELECT project_id, fingerprint, $1 FROM issues WHERE id = ANY($2)",
    )
    .bind(target)
    .bind(sources)
    .execute(conn)
    .await?;
    Ok(())
}

/// Deletes an issue with its events, its issue-scope counts and its aliases, in one
/// transaction; its fingerprints start a new issue if they are seen again. The project's
/// own counts keep the events (they happened). `false` when there is no such issue.
pub async fn delete(pool: &PgPool, id: IssueId) -> Result<bool, StoreError> {
    let mut tx = pool.begin().await?;
    let Some(project_id) = lock_issue_set_of(&mut tx, id).await? else {
        return Ok(false);
    };
    sqlx::query("DELETE FROM events WHERE issue_id = $1")
        .bind(id)
        .execute(&mut *tx)
        .await?;
    sqlx::query(
        "DELETE FROM minute_counts WHERE project_id = $1 AND scope = 'issue' AND issue_id = $2",
    )
    .bind(project_id)
    .bind(id)
    .execute(&mut *tx)
    .await?;
    let deleted = sqlx::query("DELETE FROM issues WHERE id = $1")
        .bind(id)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(deleted.rows_affected() > 0)
}

/// Takes the exclusive issue-set lock of the issue's project (waiting for the writer
/// batches in flight, holding off new ones until COMMIT); `None` when there is no such issue.
async fn lock_issue_set_of(
    conn: &mut PgConnection,
    id: IssueId,
) -> Result<Option<ProjectId>, StoreError> {
    let project_id: Option<ProjectId> =
        sqlx::query_scalar("SELECT project_id FROM issues WHERE id = $1")
            .bind(id)
            .fetch_optional(&mut *conn)
            .await?;
    if let Some(project_id) = project_id {
        sqlx::query("SELECT pg_advisory_xact_lock($1, $2)")
            .bind(super::batch::ISSUE_SET_LOCK)
            .bind(super::batch::issue_set_lock_of(project_id))
            .execute(&mut *conn)
            .await?;
    }
    Ok(project_id)
}
