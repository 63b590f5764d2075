//! Issues: one row per fingerprint per project, and read by the API. The writer touches them
//! twice per batch: [`ensure`] creates or locks the batch's issues (so events can name them),
//! then [`add_events`] adds the counts of the events that were really new, summed per issue.
//!
//! Lifecycle: unresolved → resolved | ignored. An event for a resolved issue reopens it (a
//! regression) unless the issue was resolved in release R and the event comes from a release
//! first seen before R.

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::{PgConnection, PgPool};

use super::StoreError;

/// A fingerprint seen in a batch, with what names its issue should the issue be new.
#[derive(Debug, Clone)]
pub struct IssueKey<'a> {
    pub project_id: i64,
    pub fingerprint: &'a str,
    pub strategy: &'static str,
    pub title: &'a str,
    pub culprit: &'a str,
    pub level: &'static str,
    pub seen_at: DateTime<Utc>,
}

/// An issue row the batch will add events to.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct EnsuredIssue {
    pub id: i64,
    pub project_id: i64,
    pub fingerprint: String,
    pub created: bool,
}

/// Returns the issue of every key, creating the new ones (with no events counted yet).
/// Nothing is locked here: the writer locks the hot issue rows only at the end of its
/// transaction ([`add_events`]), so concurrent writers overlap everywhere else. Keys come
/// sorted by (project, fingerprint), so two writers creating the same issues wait for each
/// other in one order and cannot deadlock.
pub async fn ensure(
    conn: &mut PgConnection,
    keys: &[IssueKey<'_>],
) -> Result<Vec<EnsuredIssue>, StoreError> {
    // The SELECT sees the statement's snapshot, which holds the existing rows but not the
    // ones this statement creates (those come from `created`): each key appears once.
    let mut found: Vec<EnsuredIssue> = sqlx::query_as(
        "WITH keys AS ( \
           SELECT * FROM UNNEST($1::int8[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], \
             $7::timestamptz[]) AS k(p, f, s, t, c, l, at)), \
         created AS ( \
           INSERT INTO issues (project_id, fingerprint, grouping_strategy, title, culprit, level, \
             first_seen, last_seen) \
           SELECT p, f, s, t, c, l, at, at FROM keys \
           ON CONFLICT (project_id, fingerprint) DO NOTHING \
           RETURNING id, project_id, fingerprint) \
         SELECT id, project_id, fingerprint, true AS created FROM created \
         UNION ALL \
         SELECT i.id, i.project_id, i.fingerprint, false FROM issues i \
           JOIN keys ON i.project_id = keys.p AND i.fingerprint = keys.f",
    )
    .bind(keys.iter().map(|k| k.project_id).collect::<Vec<_>>())
    .bind(keys.iter().map(|k| k.fingerprint).collect::<Vec<_>>())
    .bind(keys.iter().map(|k| k.strategy).collect::<Vec<_>>())
    .bind(keys.iter().map(|k| k.title).collect::<Vec<_>>())
    .bind(keys.iter().map(|k| k.culprit).collect::<Vec<_>>())
    .bind(keys.iter().map(|k| k.level).collect::<Vec<_>>())
    .bind(keys.iter().map(|k| k.seen_at).collect::<Vec<_>>())
    .fetch_all(&mut *conn)
    .await?;
    if found.len() < keys.len() {
        found.extend(created_meanwhile(conn, keys, &found).await?);
    }
    Ok(found)
}

/// Issues another writer committed after `ensure`'s snapshot was taken (its insert then
/// found the conflict, its select did not see the row): a new statement sees them.
async fn created_meanwhile(
    conn: &mut PgConnection,
    keys: &[IssueKey<'_>],
    found: &[EnsuredIssue],
) -> Result<Vec<EnsuredIssue>, StoreError> {
    let missing: Vec<&IssueKey<'_>> = keys
        .iter()
        .filter(|k| {
            !found
                .iter()
                .any(|f| f.project_id == k.project_id && f.fingerprint == k.fingerprint)
        })
        .collect();
    Ok(sqlx::query_as(
        "SELECT i.id, i.project_id, i.fingerprint, false AS created FROM issues i \
         JOIN UNNEST($1::int8[], $2::text[]) AS k(p, f) ON i.project_id = k.p AND i.fingerprint = k.f",
    )
    .bind(missing.iter().map(|k| k.project_id).collect::<Vec<_>>())
    .bind(missing.iter().map(|k| k.fingerprint).collect::<Vec<_>>())
    .fetch_all(conn)
    .await?)
}

/// The batch's newly stored events of one issue, summed.
#[derive(Debug, Clone)]
pub struct IssueDelta {
    pub issue_id: i64,
    pub title: String,
    pub culprit: String,
    pub level: &'static str,
    pub times_seen: i64,
    pub times_unhandled: i64,
    pub first_seen: DateTime<Utc>,
    pub last_seen: DateTime<Utc>,
    pub first_release: Option<String>,
    pub last_release: Option<String>,
}

/// Adds the deltas to their issues (one statement) and reopens resolved issues that regressed;
/// returns the ids of the regressed ones. Deltas are sorted by issue id by the caller.
pub async fn add_events(
    conn: &mut PgConnection,
    deltas: &[IssueDelta],
) -> Result<Vec<i64>, StoreError> {
    // The latest event names the issue, as in Sentry. A release first seen at or after the
    // release the issue was resolved in is not older, so its events reopen the issue.
    let regressed: Vec<i64> = sqlx::query_scalar::<_, Option<i64>>(
        "UPDATE issues AS i SET \
           title = b.title, culprit = b.culprit, level = b.level, \
           times_seen = i.times_seen + b.times_seen, \
           times_unhandled = i.times_unhandled + b.times_unhandled, \
           first_seen = LEAST(i.first_seen, b.first_seen), \
           last_seen = GREATEST(i.last_seen, b.last_seen), \
           first_release = COALESCE(i.first_release, b.first_release), \
           last_release = COALESCE(b.last_release, i.last_release), \
           status = CASE WHEN i.status = 'resolved' AND ( \
               i.resolved_in_release IS NULL OR b.last_release IS NULL OR COALESCE( \
                 (SELECT first_seen FROM releases WHERE project_id = i.project_id AND version = b.last_release) \
                 >= (SELECT first_seen FROM releases WHERE project_id = i.project_id AND version = i.resolved_in_release), \
                 false)) \
             THEN 'unresolved' ELSE i.status END \
         FROM UNNEST($1::int8[], $2::text[], $3::text[], $4::text[], $5::int8[], $6::int8[], \
           $7::timestamptz[], $8::timestamptz[], $9::text[], $10::text[]) \
           AS b(id, title, culprit, level, times_seen, times_unhandled, first_seen, last_seen, \
                first_release, last_release) \
         WHERE i.id = b.id \
         RETURNING CASE WHEN i.status = 'unresolved' AND i.resolved_at IS NOT NULL THEN i.id END",
    )
    .bind(deltas.iter().map(|d| d.issue_id).collect::<Vec<_>>())
    .bind(deltas.iter().map(|d| d.title.as_str()).collect::<Vec<_>>())
    .bind(deltas.iter().map(|d| d.culprit.as_str()).collect::<Vec<_>>())
    .bind(deltas.iter().map(|d| d.level).collect::<Vec<_>>())
    .bind(deltas.iter().map(|d| d.times_seen).collect::<Vec<_>>())
    .bind(deltas.iter().map(|d| d.times_unhandled).collect::<Vec<_>>())
    .bind(deltas.iter().map(|d| d.first_seen).collect::<Vec<_>>())
    .bind(deltas.iter().map(|d| d.last_seen).collect::<Vec<_>>())
    .bind(deltas.iter().map(|d| d.first_release.as_deref()).collect::<Vec<_>>())
    .bind(deltas.iter().map(|d| d.last_release.as_deref()).collect::<Vec<_>>())
    .fetch_all(&mut *conn)
    .await?
    .into_iter()
    .flatten()
    .collect();
    mark_regressions(conn, &regressed).await?;
    Ok(regressed)
}

/// A reopened issue still carries `resolved_at` from before; clear it and stamp the regression.
async fn mark_regressions(conn: &mut PgConnection, ids: &[i64]) -> Result<(), StoreError> {
    if ids.is_empty() {
        return Ok(());
    }
    sqlx::query(
        "UPDATE issues SET resolved_at = NULL, resolved_in_release = NULL, regressed_at = now() \
         WHERE id = ANY($1)",
    )
    .bind(ids)
    .execute(conn)
    .await?;
    Ok(())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Unresolved,
    Resolved,
    Ignored,
}

impl Status {
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

#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct Issue {
    pub id: i64,
    pub project_id: i64,
    pub fingerprint: String,
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

pub async fn get(pool: &PgPool, id: i64) -> Result<Option<Issue>, StoreError> {
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
    Time(DateTime<Utc>, i64),
    Count(i64, i64),
}

#[derive(Debug, Clone, Default)]
pub struct IssueFilter {
    pub status: Option<Status>,
    /// Case-insensitive substring of the title or culprit.
    pub query: Option<String>,
    pub sort: Sort,
    pub after: Option<Cursor>,
    pub limit: i64,
}

/// One page of a project's issues, in the sort's order (descending, ties by id).
/// The cursor must be of the sort's kind (the API decodes it per sort).
pub async fn list(
    pool: &PgPool,
    project_id: i64,
    filter: &IssueFilter,
) -> Result<Vec<Issue>, StoreError> {
    let column = filter.sort.column();
    let key_type = match filter.sort {
        Sort::Count => "int8",
        Sort::LastSeen | Sort::FirstSeen => "timestamptz",
    };
    // The sort column comes from the enum above, never from the request.
    let sql = format!(
        "SELECT {ISSUE_COLUMNS} FROM issues WHERE project_id = $1 \
         AND ($2::text IS NULL OR status = $2) \
         AND ($3::text IS NULL OR title ILIKE $3 OR culprit ILIKE $3) \
         AND ($4::{key_type} IS NULL OR ({column}, id) < ($4, $5)) \
         ORDER BY {column} DESC, id DESC LIMIT $6"
    );
    let query = sqlx::query_as(&sql)
        .bind(project_id)
        .bind(filter.status.map(Status::as_str))
        .bind(filter.query.as_deref().map(like_pattern));
    let query = match (&filter.after, filter.sort) {
        (Some(Cursor::Time(at, id)), _) => query.bind(Some(*at)).bind(Some(*id)),
        (Some(Cursor::Count(count, id)), _) => query.bind(Some(*count)).bind(Some(*id)),
        (None, Sort::Count) => query.bind(None::<i64>).bind(None::<i64>),
        (None, _) => query.bind(None::<DateTime<Utc>>).bind(None::<i64>),
    };
    Ok(query.bind(filter.limit).fetch_all(pool).await?)
}

/// `%text%` with LIKE's wildcards in the text escaped.
fn like_pattern(text: &str) -> String {
    let escaped = text
        .replace('\\', "\\\\")
        .replace('%', "\\%")
        .replace('_', "\\_");
    format!("%{escaped}%")
}

/// Sets an issue's status; resolving may name the release it was fixed in.
pub async fn set_status(
    pool: &PgPool,
    id: i64,
    status: Status,
    in_release: Option<&str>,
) -> Result<Option<Issue>, StoreError> {
    let sql = format!(
        "UPDATE issues SET status = $2, \
           resolved_at = CASE WHEN $2 = 'resolved' THEN now() END, \
           resolved_in_release = CASE WHEN $2 = 'resolved' THEN $3 END \
         WHERE id = $1 RETURNING {ISSUE_COLUMNS}"
    );
    Ok(sqlx::query_as(&sql)
        .bind(id)
        .bind(status.as_str())
        .bind(in_release)
        .fetch_optional(pool)
        .await?)
}
