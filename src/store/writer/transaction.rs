//! One writer transaction: issues, releases and the event rows, then the counts of the
//! events that were new, with the span counts of batches not applied before.
//!
//! A batch goes whole, in one round trip ([`write_whole`]), its issues named by the
//! position of their key until the database answers their ids, and its deltas and counts
//! computed as if every event and span count is new. Should one not be (a retry, a replay)
//! or an issue appear meanwhile, it goes step by step ([`write_in`]): each statement's
//! answer decides the next.

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, DurationRound, TimeDelta, Utc};
use sqlx::PgConnection;
use uuid::Uuid;

use super::Written;
use crate::model::{IssueId, ProjectId, Scope, SeriesMinute, SpanTally, Tally};
use crate::store::batch::{self, IssueDelta, IssueKey, IssueMinute, Release, WholeBatch};
use crate::store::events::NewEvent;
use crate::store::StoreError;

/// One request's span counts, under the id that makes adding them happen once.
#[derive(Clone, Copy)]
pub(super) struct SpanGroup<'a> {
    pub batch: Uuid,
    pub spans: &'a [SpanTally],
}

/// The batch in one round trip (see `batch::write_whole`); `None`, with nothing written,
/// when an event or a request's span counts were stored before, or an issue was created
/// meanwhile, and the batch must go step by step ([`write_in`]).
pub(super) async fn write_whole(
    conn: &mut PgConnection,
    events: &[&NewEvent],
    spans: &[SpanGroup<'_>],
) -> Result<Option<Vec<Written>>, StoreError> {
    let keys = issue_keys(events);
    let with_key: Vec<(&NewEvent, usize)> = events
        .iter()
        .map(|e| Ok((*e, key_position(&keys, e)?)))
        .collect::<Result<_, StoreError>>()?;
    let span_tallies: Vec<&SpanTally> = spans.iter().flat_map(|g| g.spans).collect();
    let whole = WholeBatch {
        applied: spans.iter().map(|g| g.batch).collect(),
        releases: release_sightings(events),
        deltas: issue_deltas(&with_key),
        series: series_tallies(&with_key, &span_tallies)
            .into_iter()
            .collect(),
        per_issue: issue_tallies(&with_key).into_iter().collect(),
        keys,
        events: with_key,
    };
    let Some(issue_ids) = batch::write_whole(conn, &whole).await? else {
        return Ok(None);
    };
    if issue_ids.len() != whole.keys.len() {
        return Err(StoreError::Corrupt(format!(
            "{} issue ids for {} keys",
            issue_ids.len(),
            whole.keys.len()
        )));
    }
    let written = whole.events.iter().map(|(_, key)| Written::Stored {
        issue_id: issue_ids[*key],
    });
    Ok(Some(written.collect()))
}

/// Where the event's fingerprint is in the batch's sorted keys.
fn key_position(keys: &[IssueKey<'_>], event: &NewEvent) -> Result<usize, StoreError> {
    let wanted = (event.project_id, event.grouping.fingerprint.as_str());
    keys.binary_search_by(|k| (k.project_id, k.fingerprint).cmp(&wanted))
        .map_err(|_| {
            StoreError::Corrupt(format!(
                "no key for fingerprint {}",
                event.grouping.fingerprint
            ))
        })
}

/// The batch step by step, inside the caller's transaction (begun by
/// `batch::begin_sharing_issue_sets`, see `store::batch`): issues, releases and the event
/// rows, then the counts of the events that were new.
pub(super) async fn write_in(
    conn: &mut PgConnection,
    events: &[&NewEvent],
    spans: &[SpanGroup<'_>],
) -> Result<Vec<Written>, StoreError> {
    let spans = unapplied_spans(conn, spans).await?;
    if events.is_empty() {
        batch::close(conn, &[], &minute_tallies(&[], &spans)).await?;
        return Ok(Vec::new());
    }
    let opened = batch::open(
        conn,
        &issue_keys(events),
        &release_sightings(events),
        events,
    )
    .await?;
    let issue_ids: HashMap<(ProjectId, &str), IssueId> = opened
        .issues
        .iter()
        .map(|u| ((u.project_id, u.fingerprint.as_str()), u.id))
        .collect();
    let with_issue: Vec<(&NewEvent, IssueId)> = events
        .iter()
        .map(|e| {
            let id = issue_ids
                .get(&(e.project_id, e.grouping.fingerprint.as_str()))
                .copied();
            id.map(|id| (*e, id)).ok_or_else(|| {
                StoreError::Corrupt(format!(
                    "no issue row for fingerprint {}",
                    e.grouping.fingerprint
                ))
            })
        })
        .collect::<Result<_, _>>()?;
    let mut inserted = opened.stored;
    // An id repeated within the batch was inserted once: the first occurrence counts.
    let written: Vec<Written> = with_issue
        .iter()
        .map(|(e, issue_id)| match inserted.remove(&e.event_id) {
            true => Written::Stored {
                issue_id: *issue_id,
            },
            false => Written::Duplicate,
        })
        .collect();
    let fresh: Vec<(&NewEvent, IssueId)> = with_issue
        .iter()
        .zip(&written)
        .filter(|(_, w)| matches!(w, Written::Stored { .. }))
        .map(|(pair, _)| *pair)
        .collect();
    batch::close(conn, &issue_deltas(&fresh), &minute_tallies(&fresh, &spans)).await?;
    Ok(written)
}

/// The span counts of the groups whose batch id this transaction records first: a
/// replayed batch that was already applied (its COMMIT raced a timeout) adds none again.
async fn unapplied_spans<'a>(
    conn: &mut PgConnection,
    groups: &[SpanGroup<'a>],
) -> Result<Vec<&'a SpanTally>, StoreError> {
    if groups.is_empty() {
        return Ok(Vec::new());
    }
    let ids: Vec<Uuid> = groups.iter().map(|g| g.batch).collect();
    let fresh = batch::record_applied(conn, &ids).await?;
    Ok(groups
        .iter()
        .filter(|g| fresh.contains(&g.batch))
        .flat_map(|g| g.spans)
        .collect())
}

/// The batch's distinct fingerprints, sorted, each with its latest event's naming.
fn issue_keys<'a>(events: &[&'a NewEvent]) -> Vec<IssueKey<'a>> {
    let mut keys: BTreeMap<(ProjectId, &str), IssueKey<'a>> = BTreeMap::new();
    for event in events {
        keys.insert(
            (event.project_id, event.grouping.fingerprint.as_str()),
            IssueKey::of(event),
        );
    }
    keys.into_values().collect()
}

/// Each release of the batch with the first time it was seen, sorted.
fn release_sightings<'a>(events: &[&'a NewEvent]) -> Vec<Release<'a>> {
    let mut first: BTreeMap<(ProjectId, &str), DateTime<Utc>> = BTreeMap::new();
    for event in events {
        if let Some(release) = event.release.as_deref() {
            let at = first
                .entry((event.project_id, release))
                .or_insert(event.received_at);
            *at = (*at).min(event.received_at);
        }
    }
    first.into_iter().map(|((p, v), t)| (p, v, t)).collect()
}

/// One delta per issue, sorted by how the issue is named (`I`), with the new events' counts
/// summed.
fn issue_deltas<I: Ord + Copy>(events: &[(&NewEvent, I)]) -> Vec<IssueDelta<I>> {
    let mut deltas: BTreeMap<I, IssueDelta<I>> = BTreeMap::new();
    for (event, issue) in events {
        let unhandled = i64::from(!event.handled);
        match deltas.get_mut(issue) {
            Some(delta) => fold_into(delta, event, unhandled),
            None => {
                deltas.insert(*issue, new_delta(*issue, event, unhandled));
            }
        }
    }
    deltas.into_values().collect()
}

fn new_delta<I>(issue: I, event: &NewEvent, unhandled: i64) -> IssueDelta<I> {
    IssueDelta {
        issue,
        title: event.grouping.title.clone(),
        culprit: event.grouping.culprit.clone(),
        level: event.level.as_str(),
        times_seen: 1,
        times_unhandled: unhandled,
        first_seen: event.received_at,
        last_seen: event.received_at,
        first_release: event.release.clone(),
        last_release: event.release.clone(),
    }
}

/// Later events name the issue (title, culprit, level), as Sentry does.
fn fold_into<I>(delta: &mut IssueDelta<I>, event: &NewEvent, unhandled: i64) {
    delta.times_seen += 1;
    delta.times_unhandled += unhandled;
    delta.first_seen = delta.first_seen.min(event.received_at);
    if event.received_at >= delta.last_seen {
        delta.last_seen = event.received_at;
        delta.title.clone_from(&event.grouping.title);
        delta.culprit.clone_from(&event.grouping.culprit);
        delta.level = event.level.as_str();
        if event.release.is_some() {
            delta.last_release.clone_from(&event.release);
        }
    }
    if delta.first_release.is_none() {
        delta.first_release.clone_from(&event.release);
    }
}

/// Per-minute tallies of every series, sorted by key: events count toward their project,
/// service and issue; spans toward their project and service.
fn minute_tallies(
    events: &[(&NewEvent, IssueId)],
    spans: &[&SpanTally],
) -> Vec<(SeriesMinute, Tally)> {
    let mut tallies = series_tallies(events, spans);
    for ((project_id, issue_id, minute), tally) in issue_tallies(events) {
        let key = SeriesMinute {
            project_id,
            scope: Scope::Issue(issue_id),
            minute,
        };
        tallies.entry(key).or_default().add(tally);
    }
    tallies.into_iter().collect()
}

/// Per-minute tallies of the projects and services: of events and of spans.
fn series_tallies<I>(
    events: &[(&NewEvent, I)],
    spans: &[&SpanTally],
) -> BTreeMap<SeriesMinute, Tally> {
    let mut tallies: BTreeMap<SeriesMinute, Tally> = BTreeMap::new();
    let mut add = |project_id: ProjectId, service: &Option<String>, minute, tally: Tally| {
        let mut add_to = |scope| {
            let key = SeriesMinute {
                project_id,
                scope,
                minute,
            };
            tallies.entry(key).or_default().add(tally);
        };
        add_to(Scope::Project);
        if let Some(name) = service {
            add_to(Scope::Service(name.clone()));
        }
    };
    for (event, _) in events {
        add(
            event.project_id,
            &event.service,
            minute_of(event),
            event_tally(event),
        );
    }
    for span in spans {
        let tally = Tally {
            requests: span.requests,
            failed: span.failed,
            ..Tally::default()
        };
        add(span.project_id, &span.service, span.minute, tally);
    }
    tallies
}

/// Per-minute tallies of the issues, each named as the events name it (`I`).
fn issue_tallies<I: Ord + Copy>(events: &[(&NewEvent, I)]) -> BTreeMap<IssueMinute<I>, Tally> {
    let mut tallies: BTreeMap<IssueMinute<I>, Tally> = BTreeMap::new();
    for (event, issue) in events {
        let key = (event.project_id, *issue, minute_of(event));
        tallies.entry(key).or_default().add(event_tally(event));
    }
    tallies
}

fn event_tally(event: &NewEvent) -> Tally {
    Tally {
        events: 1,
        unhandled: i64::from(!event.handled),
        ..Tally::default()
    }
}

/// The minute the event was received in.
fn minute_of(event: &NewEvent) -> DateTime<Utc> {
    event
        .received_at
        .duration_trunc(TimeDelta::minutes(1))
        .unwrap_or(event.received_at)
}
