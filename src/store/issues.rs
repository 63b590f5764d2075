//! Issues: one row per fingerprint per project, as the API reads and changes them. (The
//! writer creates them and adds their counts in `store::batch`.)
//!
//! Lifecycle: unresolved → resolved | ignored. An event for a resolved issue reopens it (a
//! regression) unless the issue was resolved in release R and the event comes from a release
//! first seen before R.

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::PgPool;

use super::StoreError;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize, utoipa::ToSchema)]
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

/// An issue: the events of one fingerprint in a project (DESIGN.md §3.5). The API answers
/// with it as is, so its `ToSchema` is the OpenAPI document's `Issue`.
#[derive(Debug, Clone, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct Issue {
    pub id: i64,
    pub project_id: i64,
    pub fingerprint: String,
    pub grouping_strategy: String,
    pub title: String,
    pub culprit: String,
    pub level: String,
    #[schema(value_type = Status)]
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
        "UPDATE issues SET status = $2, ignore_until_count = NULL, ignore_window_minutes = NULL, \
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
    project_id: i64,
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
    pub issue_id: i64,
    pub count: i64,
    pub window_minutes: i32,
}

/// Ignores an issue; with `until`, only until it sees that many events in that window.
pub async fn ignore(
    pool: &PgPool,
    id: i64,
    until: Option<(i64, i32)>,
) -> Result<Option<Issue>, StoreError> {
    let sql = format!(
        "UPDATE issues SET status = 'ignored', resolved_at = NULL, resolved_in_release = NULL, \
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
pub async fn mutes(pool: &PgPool, project_id: i64) -> Result<Vec<Mute>, StoreError> {
    Ok(sqlx::query_as(
        "SELECT id AS issue_id, ignore_until_count AS count, ignore_window_minutes AS window_minutes \
         FROM issues WHERE project_id = $1 AND status = 'ignored' \
           AND ignore_until_count IS NOT NULL AND ignore_window_minutes IS NOT NULL",
    )
    .bind(project_id)
    .fetch_all(pool)
    .await?)
}

/// The project's ignored issues whose own window ending with minute `through` holds at
/// least their count: each with the events it saw. One query for all of them.
pub async fn escalations(
    pool: &PgPool,
    project_id: i64,
    through: DateTime<Utc>,
) -> Result<Vec<(Mute, i64)>, StoreError> {
    let rows: Vec<(i64, i64, i32, i64)> = sqlx::query_as(
        "SELECT i.id, i.ignore_until_count, i.ignore_window_minutes, sum(c.events)::bigint \
         FROM issues i JOIN minute_counts c \
           ON c.project_id = i.project_id AND c.scope = 'issue' AND c.service = '' AND c.issue_id = i.id \
          AND c.minute > $2 - make_interval(mins => i.ignore_window_minutes) AND c.minute <= $2 \
         WHERE i.project_id = $1 AND i.status = 'ignored' \
           AND i.ignore_until_count IS NOT NULL AND i.ignore_window_minutes IS NOT NULL \
         GROUP BY i.id HAVING sum(c.events) >= i.ignore_until_count ORDER BY i.id",
    )
    .bind(project_id)
    .bind(through)
    .fetch_all(pool)
    .await?;
    Ok(rows
        .into_iter()
        .map(|(issue_id, count, window_minutes, events)| {
            let mute = Mute {
                issue_id,
                count,
                window_minutes,
            };
            (mute, events)
        })
        .collect())
}

/// Ignored issues of a project (their series are watched, but they do not page).
pub async fn ignored_ids(pool: &PgPool, project_id: i64) -> Result<Vec<i64>, StoreError> {
    Ok(
        sqlx::query_scalar("SELECT id FROM issues WHERE project_id = $1 AND status = 'ignored'")
            .bind(project_id)
            .fetch_all(pool)
            .await?,
    )
}

/// An ignored issue escalated: back to unresolved, its mute condition cleared.
pub async fn unmute(conn: &mut sqlx::PgConnection, id: i64) -> Result<(), StoreError> {
    sqlx::query(
        "UPDATE issues SET status = 'unresolved', ignore_until_count = NULL, ignore_window_minutes = NULL \
         WHERE id = $1 AND status = 'ignored'",
    )
    .bind(id)
    .execute(conn)
    .await?;
    Ok(())
}
