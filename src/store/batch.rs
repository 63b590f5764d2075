//! The statements of one writer batch, in the order `writer` runs them inside one
//! transaction:
//!
//! 0. [`begin_sharing_issue_sets`]: BEGIN, holding off merges and deletions of the batch's
//!    projects' issues;
//! 1. [`open`]: find or create the issue of every fingerprint (no row locked), record
//!    releases first seen, then insert the event rows (the unique key decides which are
//!    new) — one round trip;
//! 2. [`close`]: add the new events to their issues (reopening regressed ones), then the
//!    per-minute counts — the only statements that lock rows every batch shares — in one
//!    round trip (a PL/pgSQL function runs them in order);
//! 3. COMMIT.
//!
//! Why this shape: under load each round trip costs far more than the SQL in it, so `open`
//! writes three tables at once (a data-modifying CTE runs even when unreferenced); and the
//! rows every batch shares (a hot issue, the project's current minute) stay locked from the
//! statement that touches them until COMMIT, so they are touched last.
//!
//! Most batches are all new: [`write_whole`] runs the same statements, in the same order,
//! in one round trip (the function `seismo_write_batch`, migration 0032). The steps above
//! are for the rest: an event or span counts stored before, an issue another writer created
//! meanwhile.

use std::collections::HashSet;
use std::sync::LazyLock;

use chrono::{DateTime, Utc};
use sqlx::postgres::PgArguments;
use sqlx::query::QueryAs;
use sqlx::{PgConnection, Postgres};
use uuid::Uuid;

use super::events::{self, NewEvent};
use super::releases;
use super::{column, has_sqlstate, StoreError};
use crate::model::{Fingerprint, IssueId, ProjectId, SeriesMinute, Tally};

/// The advisory lock namespace (the first of the two-int key) guarding which issue a
/// project's fingerprints belong to. Batches take it shared per project; merging or
/// deleting issues takes it exclusive, so no batch can find an issue, lose it to a merge and
/// then write events to it.
pub(crate) const ISSUE_SET_LOCK: i32 = 0x5345_4953;

/// The second int of a project's issue-set lock key: the shared and the exclusive side
/// must compute it the same way.
pub(crate) fn issue_set_lock_of(project_id: ProjectId) -> i32 {
    (project_id.get() % 2_147_483_647) as i32
}

/// The second ints of the issue-set locks of a batch's projects: each project once, in the
/// order every batch takes them (by project id), so two batches cannot wait for each other.
pub fn issue_set_locks(project_ids: &[ProjectId]) -> Vec<i32> {
    let mut ids: Vec<ProjectId> = project_ids.to_vec();
    ids.sort_unstable();
    ids.dedup();
    ids.into_iter().map(issue_set_lock_of).collect()
}

/// The statement that begins a batch's transaction and takes the shared issue-set lock of
/// every project in it, until COMMIT: in the BEGIN's own round trip (a simple query may
/// hold several statements), and before [`open`], which must see the world after any
/// merge it waited for. The ids are integers, formatted into the text.
pub fn begin_sharing_issue_sets(project_ids: &[ProjectId]) -> String {
    let locks: Vec<String> = issue_set_locks(project_ids)
        .iter()
        .map(|key| format!("pg_advisory_xact_lock_shared({ISSUE_SET_LOCK}, {key})"))
        .collect();
    match locks.is_empty() {
        true => "BEGIN".to_owned(),
        false => format!("BEGIN; SELECT {}", locks.join(", ")),
    }
}

/// A fingerprint seen in a batch, with what names its issue should the issue be new.
#[derive(Debug, Clone)]
pub struct IssueKey<'a> {
    pub project_id: ProjectId,
    pub fingerprint: &'a str,
    pub strategy: &'static str,
    pub title: &'a str,
    pub culprit: &'a str,
    pub level: &'static str,
    pub seen_at: DateTime<Utc>,
}

impl<'a> IssueKey<'a> {
    /// The key of the event's fingerprint, named by the event.
    pub fn of(event: &'a NewEvent) -> IssueKey<'a> {
        IssueKey {
            project_id: event.project_id,
            fingerprint: event.grouping.fingerprint.as_str(),
            strategy: event.grouping.strategy.as_str(),
            title: &event.grouping.title,
            culprit: &event.grouping.culprit,
            level: event.level.as_str(),
            seen_at: event.received_at,
        }
    }
}

/// An issue row the batch will add events to.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct EnsuredIssue {
    pub id: IssueId,
    pub project_id: ProjectId,
    pub fingerprint: Fingerprint,
    pub created: bool,
}

/// A release in a batch: project, version, first time seen in the batch.
pub type Release<'a> = (ProjectId, &'a str, DateTime<Utc>);

/// What [`open`] found and wrote.
#[derive(Debug, Default)]
pub struct Opened {
    /// The issue of every key.
    pub issues: Vec<EnsuredIssue>,
    /// The ids of the events inserted (an id already stored, or repeated in the batch,
    /// once).
    pub stored: HashSet<Uuid>,
}

/// Finds the issue of every key, creating the new ones (with no events counted yet),
/// records the releases not seen before (a known release is not touched, so not locked),
/// and inserts the events, each with its issue. Keys come sorted by (project, fingerprint),
/// so two writers creating the same issues wait for each other in one order and cannot
/// deadlock.
pub async fn open(
    conn: &mut PgConnection,
    keys: &[IssueKey<'_>],
    releases: &[Release<'_>],
    events: &[&NewEvent],
) -> Result<Opened, StoreError> {
    let query = bind_keys(sqlx::query_as(&OPEN), keys, releases)
        .bind(column(events, |e| e.grouping.fingerprint.as_str()));
    let rows: Vec<OpenRow> = events::bind_rows(query, events)
        .fetch_all(&mut *conn)
        .await?;
    let mut opened = opened_from(rows)?;
    if opened.issues.len() < keys.len() {
        add_created_meanwhile(conn, keys, events, &mut opened).await?;
    }
    Ok(opened)
}

/// Binds the keys' columns, then the releases', one array each.
fn bind_keys<'q, O>(
    query: QueryAs<'q, Postgres, O, PgArguments>,
    keys: &'q [IssueKey<'q>],
    releases: &'q [Release<'q>],
) -> QueryAs<'q, Postgres, O, PgArguments> {
    query
        .bind(column(keys, |k| k.project_id))
        .bind(column(keys, |k| k.fingerprint))
        .bind(column(keys, |k| k.strategy))
        .bind(column(keys, |k| k.title))
        .bind(column(keys, |k| k.culprit))
        .bind(column(keys, |k| k.level))
        .bind(column(keys, |k| k.seen_at))
        .bind(column(releases, |r| r.0))
        .bind(column(releases, |r| r.1))
        .bind(column(releases, |r| r.2))
}

/// The issues and inserted event ids of [`OPEN`]'s rows.
fn opened_from(rows: Vec<OpenRow>) -> Result<Opened, StoreError> {
    let mut opened = Opened::default();
    for row in rows {
        match row {
            (Some(id), Some(project_id), Some(fingerprint), Some(created), None) => {
                opened.issues.push(EnsuredIssue {
                    id,
                    project_id,
                    fingerprint,
                    created,
                })
            }
            (None, None, None, None, Some(event_id)) => {
                opened.stored.insert(event_id);
            }
            row => return Err(StoreError::Corrupt(format!("unexpected row {row:?}"))),
        }
    }
    Ok(opened)
}

/// Adds the issues another writer committed after [`OPEN`]'s snapshot, and inserts their
/// events, which found no issue in that statement.
async fn add_created_meanwhile(
    conn: &mut PgConnection,
    keys: &[IssueKey<'_>],
    events: &[&NewEvent],
    opened: &mut Opened,
) -> Result<(), StoreError> {
    let meanwhile = created_meanwhile(conn, keys, &opened.issues).await?;
    let late: Vec<(&NewEvent, IssueId)> = events
        .iter()
        .filter_map(|e| {
            let issue = meanwhile.iter().find(|i| {
                i.project_id == e.project_id
                    && i.fingerprint.as_str() == e.grouping.fingerprint.as_str()
            })?;
            Some((*e, issue.id))
        })
        .collect();
    opened.stored.extend(events::insert(conn, &late).await?);
    opened.issues.extend(meanwhile);
    Ok(())
}

/// A row of [`OPEN`]: an issue (id, project, fingerprint, created) or an inserted event's
/// id.
type OpenRow = (
    Option<IssueId>,
    Option<ProjectId>,
    Option<Fingerprint>,
    Option<bool>,
    Option<Uuid>,
);

/// The statement of [`open`].
///
/// `resolved` is the issue of every key: those this statement creates (from `created`),
/// aliases, and the existing ones. Its final SELECT sees the statement's snapshot: the
/// existing issues, not those it creates, so each key appears once. A fingerprint merged
/// into another issue is an alias: it joins that issue and never creates its own again.
///
/// The events insert reads the issue ids through `issue_ids`, one row aggregated over all
/// of `resolved`: so every issue insert is done before any event insert starts, the order
/// separate statements had. (Left to the planner, the two inserts could interleave, and two
/// batches holding the same new issue and the same event could wait for each other.) An
/// event whose fingerprint is in no issue yet (one another writer committed after the
/// snapshot) is not inserted here; `open` inserts it after `created_meanwhile`.
static OPEN: LazyLock<String> = LazyLock::new(|| {
    let insert_events = events::insert_rows_sql(
        11,
        "text",
        "r.id",
        "JOIN (SELECT r.* FROM issue_ids, UNNEST(issue_ids.ids, issue_ids.ps, issue_ids.fs) \
           AS r(id, p, f)) r ON r.p = e.project_id AND r.f = e.link",
    );
    format!(
        "WITH new_releases AS ( \
           INSERT INTO releases (project_id, version, first_seen) \
           SELECT * FROM UNNEST($8::int8[], $9::text[], $10::timestamptz[]) \
           ON CONFLICT (project_id, version) DO NOTHING), \
         keys AS ( \
           SELECT * FROM UNNEST($1::int8[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], \
             $7::timestamptz[]) AS k(p, f, s, t, c, l, at)), \
         aliased AS ( \
           SELECT a.issue_id, keys.p, keys.f FROM keys \
           JOIN issue_aliases a ON a.project_id = keys.p AND a.fingerprint = keys.f), \
         created AS ( \
           INSERT INTO issues (project_id, fingerprint, grouping_strategy, title, culprit, level, \
             first_seen, last_seen) \
           SELECT p, f, s, t, c, l, at, at FROM keys \
           WHERE NOT EXISTS (SELECT 1 FROM aliased WHERE aliased.p = keys.p AND aliased.f = keys.f) \
           ON CONFLICT (project_id, fingerprint) DO NOTHING \
           RETURNING id, project_id, fingerprint), \
         resolved AS ( \
           SELECT id, project_id AS p, fingerprint AS f, true AS created FROM created \
           UNION ALL \
           SELECT issue_id, p, f, false FROM aliased \
           UNION ALL \
           SELECT i.id, i.project_id, i.fingerprint, false FROM issues i \
             JOIN keys ON i.project_id = keys.p AND i.fingerprint = keys.f), \
         issue_ids AS ( \
           SELECT array_agg(id) AS ids, array_agg(p) AS ps, array_agg(f) AS fs FROM resolved), \
         stored AS ({insert_events}) \
         SELECT id, p, f, created, NULL::uuid FROM resolved \
         UNION ALL \
         SELECT NULL, NULL, NULL, NULL, event_id FROM stored"
    )
});

/// Issues another writer committed after `open`'s snapshot was taken (its insert then found
/// the conflict, its select did not see the row): a new statement sees them.
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
                .any(|f| f.project_id == k.project_id && f.fingerprint.as_str() == k.fingerprint)
        })
        .collect();
    Ok(sqlx::query_as(
        "SELECT i.id, i.project_id, i.fingerprint, false AS created FROM issues i \
         JOIN UNNEST($1::int8[], $2::text[]) AS k(p, f) ON i.project_id = k.p AND i.fingerprint = k.f",
    )
    .bind(column(&missing, |k| k.project_id))
    .bind(column(&missing, |k| k.fingerprint))
    .fetch_all(conn)
    .await?)
}

/// The batch's newly stored events of one issue, summed. `I` names the issue: its id, or
/// (for [`write_whole`]) the position of its key.
#[derive(Debug, Clone)]
pub struct IssueDelta<I = IssueId> {
    pub issue: I,
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

/// Adds the deltas to their issues, then the tallies to the per-minute counts, then stamps
/// the issues that regressed; returns their ids. One round trip: the function
/// `seismo_close_batch` (migration 0030) runs the three statements in this order. Deltas
/// come sorted by issue id and tallies by key, and the two tables are always updated in
/// this order, so concurrent writers lock rows in one order. (One statement with a
/// data-modifying CTE would not do: PostgreSQL does not fix the order in which a CTE and its
/// main statement run; measured, writers then deadlocked now and then, and waited out the
/// 1 s deadlock timeout.)
pub async fn close(
    conn: &mut PgConnection,
    deltas: &[IssueDelta],
    tallies: &[(SeriesMinute, Tally)],
) -> Result<Vec<IssueId>, StoreError> {
    if deltas.is_empty() && tallies.is_empty() {
        return Ok(Vec::new());
    }
    let orders = release_orders(deltas);
    let columns: Vec<_> = tallies.iter().map(|(key, _)| key.scope.columns()).collect();
    let query = sqlx::query_as(
        "SELECT seismo_close_batch($1::int8[], $2::text[], $3::text[], $4::text[], $5::int8[], \
           $6::int8[], $7::timestamptz[], $8::timestamptz[], $9::text[], $10::text[], $11::text[], \
           $12::bytea[], $13::int8[], $14::text[], $15::text[], $16::int8[], $17::timestamptz[], \
           $18::int8[], $19::int8[], $20::int8[], $21::int8[])",
    )
    .bind(column(deltas, |d| d.issue));
    let (regressed,): (Vec<i64>,) = bind_deltas(query, deltas, &orders)
        .bind(column(tallies, |(key, _)| key.project_id))
        .bind(column(&columns, |c| c.0))
        .bind(column(&columns, |c| c.1))
        .bind(column(&columns, |c| c.2))
        .bind(column(tallies, |(key, _)| key.minute))
        .bind(column(tallies, |(_, t)| t.events))
        .bind(column(tallies, |(_, t)| t.unhandled))
        .bind(column(tallies, |(_, t)| t.requests))
        .bind(column(tallies, |(_, t)| t.failed))
        .fetch_one(conn)
        .await?;
    Ok(regressed.into_iter().map(IssueId).collect())
}

/// Each delta's package and order key of its last release (`releases::order_key`), by
/// which a regression is told from an older release.
type ReleaseOrder = Option<(String, Vec<u8>)>;

fn release_orders<I>(deltas: &[IssueDelta<I>]) -> Vec<ReleaseOrder> {
    deltas
        .iter()
        .map(|d| d.last_release.as_deref().and_then(releases::order_key))
        .collect()
}

/// Binds the deltas' columns after their issue: naming, counts, times, releases and the
/// last release's order, one array each.
fn bind_deltas<'q, O, I>(
    query: QueryAs<'q, Postgres, O, PgArguments>,
    deltas: &'q [IssueDelta<I>],
    orders: &'q [ReleaseOrder],
) -> QueryAs<'q, Postgres, O, PgArguments> {
    query
        .bind(column(deltas, |d| d.title.as_str()))
        .bind(column(deltas, |d| d.culprit.as_str()))
        .bind(column(deltas, |d| d.level))
        .bind(column(deltas, |d| d.times_seen))
        .bind(column(deltas, |d| d.times_unhandled))
        .bind(column(deltas, |d| d.first_seen))
        .bind(column(deltas, |d| d.last_seen))
        .bind(column(deltas, |d| d.first_release.as_deref()))
        .bind(column(deltas, |d| d.last_release.as_deref()))
        .bind(column(orders, |o| o.as_ref().map(|o| o.0.as_str())))
        .bind(column(orders, |o| o.as_ref().map(|o| o.1.as_slice())))
}

/// One issue's events in one minute: (project, issue, minute), the issue named as in
/// [`IssueDelta`].
pub type IssueMinute<I> = (ProjectId, I, DateTime<Utc>);

/// A batch for [`write_whole`], its issues named by the position of their key in `keys`:
/// every event, delta and count computed as if all events and span counts are new.
pub struct WholeBatch<'a> {
    /// The ids of the requests whose span counts are in `series` (see [`record_applied`]).
    pub applied: Vec<Uuid>,
    /// Sorted by (project, fingerprint), each once; the batch holds the issue sets of their
    /// projects.
    pub keys: Vec<IssueKey<'a>>,
    pub releases: Vec<Release<'a>>,
    pub events: Vec<(&'a NewEvent, usize)>,
    pub deltas: Vec<IssueDelta<usize>>,
    /// Per project and per service, of events and spans, sorted by key.
    pub series: Vec<(SeriesMinute, Tally)>,
    pub per_issue: Vec<(IssueMinute<usize>, Tally)>,
}

/// The SQLSTATE `seismo_write_batch` raises when the batch is not all new (see
/// [`write_whole`]).
const NOT_ALL_NEW: &str = "SW001";

/// Writes the whole batch in one round trip and one implicit transaction: the function
/// `seismo_write_batch` (migration 0032) runs the statements of BEGIN, [`open`], [`close`]
/// and COMMIT in their order, and commits before it answers, so the events are durable when
/// this returns. Returns the issue id of each key; or `None`, with nothing written, when an
/// event or a request's span counts were stored before, or an issue was created by another
/// writer meanwhile: the batch is then written step by step, which sorts these out.
pub async fn write_whole(
    conn: &mut PgConnection,
    batch: &WholeBatch<'_>,
) -> Result<Option<Vec<IssueId>>, StoreError> {
    let rows: Vec<&NewEvent> = batch.events.iter().map(|(e, _)| *e).collect();
    let orders = release_orders(&batch.deltas);
    let columns: Vec<_> = column(&batch.series, |(key, _)| key.scope.columns());
    let query = sqlx::query_as(&WRITE_BATCH)
        .bind(ISSUE_SET_LOCK)
        .bind(issue_set_locks(&column(&batch.keys, |k| k.project_id)))
        .bind(&batch.applied);
    let query = bind_keys(query, &batch.keys, &batch.releases)
        .bind(column(&batch.events, |(_, key)| sql_position(*key)));
    let query =
        events::bind_rows(query, &rows).bind(column(&batch.deltas, |d| sql_position(d.issue)));
    let per_issue = &batch.per_issue;
    let answer: Result<(Vec<i64>,), sqlx::Error> = bind_deltas(query, &batch.deltas, &orders)
        .bind(column(&batch.series, |(key, _)| key.project_id))
        .bind(column(&columns, |c| c.0))
        .bind(column(&columns, |c| c.1))
        .bind(column(&batch.series, |(key, _)| key.minute))
        .bind(column(&batch.series, |(_, t)| t.events))
        .bind(column(&batch.series, |(_, t)| t.unhandled))
        .bind(column(&batch.series, |(_, t)| t.requests))
        .bind(column(&batch.series, |(_, t)| t.failed))
        .bind(column(per_issue, |((project, _, _), _)| *project))
        .bind(column(per_issue, |((_, key, _), _)| sql_position(*key)))
        .bind(column(per_issue, |((_, _, minute), _)| *minute))
        .bind(column(per_issue, |(_, t)| t.events))
        .bind(column(per_issue, |(_, t)| t.unhandled))
        .fetch_one(conn)
        .await;
    match answer {
        Ok((ids,)) => Ok(Some(ids.into_iter().map(IssueId).collect())),
        Err(error) if has_sqlstate(&error, NOT_ALL_NEW) => Ok(None),
        Err(error) => Err(error.into()),
    }
}

/// A position in a batch's keys as SQL arrays count it, from 1.
fn sql_position(index: usize) -> i32 {
    i32::try_from(index + 1).unwrap_or(i32::MAX)
}

/// The call of `seismo_write_batch`: its 56 parameters take their types from the function.
static WRITE_BATCH: LazyLock<String> = LazyLock::new(|| {
    let parameters: Vec<String> = (1..=56).map(|i| format!("${i}")).collect();
    format!("SELECT seismo_write_batch({})", parameters.join(", "))
});

/// Records batch ids as applied; returns those that were not yet (see `store::spool`).
pub async fn record_applied(
    conn: &mut PgConnection,
    ids: &[uuid::Uuid],
) -> Result<std::collections::HashSet<uuid::Uuid>, StoreError> {
    let fresh: Vec<uuid::Uuid> = sqlx::query_scalar(
        "INSERT INTO applied_batches (batch_id) SELECT * FROM UNNEST($1::uuid[]) \
         ON CONFLICT DO NOTHING RETURNING batch_id",
    )
    .bind(ids)
    .fetch_all(conn)
    .await?;
    Ok(fresh.into_iter().collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_batch_begins_holding_each_project_once_in_order() {
        assert_eq!(begin_sharing_issue_sets(&[]), "BEGIN");
        assert_eq!(
            begin_sharing_issue_sets(&[ProjectId(7), ProjectId(3), ProjectId(7)]),
            format!(
                "BEGIN; SELECT pg_advisory_xact_lock_shared({ISSUE_SET_LOCK}, 3), \
                 pg_advisory_xact_lock_shared({ISSUE_SET_LOCK}, 7)"
            )
        );
    }
}
