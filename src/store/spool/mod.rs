//! The spool: where acknowledged events wait, on local disk, while PostgreSQL is
//! unreachable or too slow, until the replayer has written them there.
//!
//! ```text
//!  writer::write ──(database down or too slow)──► Spool::append ── record ──► log thread
//!       ▲                                              (encode)     │  write all waiting,
//!       └────────── 200: durable after fsync ◄──────────────────────┘  one fsync
//!
//!  replay (its own task) ── Spool::next ──► records in order ──► writer (database only)
//!        │                                   damaged ones skipped and counted
//!        └── database back: applied → reader moves on → drained: segments deleted
//! ```
//!
//! Each record is one request's batch: its id, its events (grouped and compressed as the
//! writer takes them) and its span counts, as JSON (`SpooledBatch`), framed with lengths and
//! CRC-32C checksums (`record`). The id makes a replay exact: events are deduplicated by
//! their event ids, and a batch's span counts are added only by the transaction that
//! first records its id (`applied_batches`). The spool is bounded (`max_bytes`); full, it
//! refuses, and ingestion answers 503 with Retry-After.
//!
//! While records wait, detection must not decide the minutes they belong to: the oldest
//! waiting record's minute is this process's [`Spool::oldest_pending`], published to the
//! database for the other processes by the replayer (`store::spool::watermarks`).

pub mod log;
pub mod record;
pub mod replay;
pub mod watermarks;

use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use chrono::{DateTime, DurationRound, TimeDelta, Utc};
use serde::{Deserialize, Serialize};
use tokio::sync::{oneshot, Notify};
use uuid::Uuid;

use super::events::NewEvent;
use crate::metrics::Metrics;
use crate::model::SpanTally;
use log::{Command, Position, Segments};
use record::Found;

#[derive(Debug, thiserror::Error)]
pub enum SpoolError {
    #[error("the spool is full ({0} bytes)")]
    Full(u64),
    #[error("the spool cannot write: {0}")]
    Io(#[from] io::Error),
    #[error("the spool's writer has stopped")]
    Stopped,
    #[error("a spooled batch cannot be encoded: {0}")]
    Encode(String),
}

/// One request's batch as the spool keeps it.
#[derive(Debug, Clone, Deserialize)]
pub struct SpooledBatch {
    pub id: Uuid,
    pub events: Vec<NewEvent>,
    pub spans: Vec<SpanTally>,
}

/// The same, borrowed, as it is written.
#[derive(Serialize)]
struct SpooledRef<'a> {
    id: Uuid,
    events: &'a [NewEvent],
    spans: &'a [SpanTally],
}

impl SpooledBatch {
    fn first_minute(&self) -> Option<DateTime<Utc>> {
        first_minute(&self.events, &self.spans)
    }
}

/// The first minute any of the events or spans counts in.
fn first_minute(events: &[NewEvent], spans: &[SpanTally]) -> Option<DateTime<Utc>> {
    let events = events.iter().map(|e| e.received_at);
    events
        .chain(spans.iter().map(|s| s.minute))
        .min()
        .map(|at| at.duration_trunc(TimeDelta::minutes(1)).unwrap_or(at))
}

/// What a reader got from [`Spool::next`].
#[derive(Debug)]
pub enum Next {
    Batch {
        batch: SpooledBatch,
        /// Where the reader stands after it (pass to [`Spool::advance`] once applied).
        after: Position,
    },
    /// Damaged bytes were skipped; `events` were lost with them (0 when unknown).
    Skipped { events: u32, after: Position },
    /// The reader is at the end of what was appended.
    Drained,
}

/// What `/readyz` and the metrics show of the spool.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct SpoolStatus {
    pub bytes: u64,
    pub records: u64,
    /// Whether new batches go to the spool instead of the database.
    pub spooling: bool,
}

/// A handle on one process's spool; clones share it.
#[derive(Clone)]
pub struct Spool {
    inner: Arc<Inner>,
}

struct Inner {
    dir: PathBuf,
    max_bytes: u64,
    commands: Mutex<std::sync::mpsc::Sender<Command>>,
    bytes: Arc<AtomicU64>,
    records: AtomicU64,
    /// Set when a write failed or took too long; cleared when the replayer wrote again.
    database_down: AtomicBool,
    /// The reader's position and what was appended past it.
    read: Mutex<Position>,
    appended: Mutex<Position>,
    oldest: Mutex<Option<DateTime<Utc>>>,
    wake: Notify,
    metrics: Arc<Metrics>,
}

impl Spool {
    /// Opens (or creates) the spool in `dir`, cutting off a torn tail, and starts its log
    /// thread. A spool that holds records starts in spooling mode: its records go first.
    pub fn open(dir: &Path, max_bytes: u64, metrics: Arc<Metrics>) -> Result<Spool, SpoolError> {
        let (segments, recovered) = Segments::open(dir)?;
        if recovered.torn_bytes > 0 {
            tracing::warn!(
                bytes = recovered.torn_bytes,
                "the spool ended in a record cut short (never acknowledged); removed"
            );
            metrics.spool_corrupt_records.inc();
        }
        let (first, end) = segments.span();
        let records = count_records(dir, first, end)?;
        let bytes = Arc::new(AtomicU64::new(segments.bytes()));
        let (commands, receiver) = std::sync::mpsc::channel();
        let on_change = {
            let bytes = bytes.clone();
            let metrics = metrics.clone();
            move |now: u64| {
                bytes.store(now, Ordering::Relaxed);
                metrics.spool_bytes.set(now as i64);
            }
        };
        std::thread::Builder::new()
            .name("seismo-spool".into())
            .spawn(move || log::run(segments, receiver, on_change))?;
        metrics
            .spool_bytes
            .set(bytes.load(Ordering::Relaxed) as i64);
        metrics.spool_records.set(records as i64);
        if records > 0 {
            tracing::info!(records, dir = %dir.display(), "the spool holds batches from before; replaying them first");
        }
        Ok(Spool {
            inner: Arc::new(Inner {
                dir: dir.to_owned(),
                max_bytes,
                commands: Mutex::new(commands),
                bytes,
                records: AtomicU64::new(records),
                database_down: AtomicBool::new(records > 0),
                read: Mutex::new(first),
                appended: Mutex::new(end),
                oldest: Mutex::new(None),
                wake: Notify::new(),
                metrics,
            }),
        })
    }

    /// Whether new batches should go to the spool: the database failed or was too slow,
    /// and the replayer has not written to it since. Once it has, new batches go to the
    /// database again while the replayer drains what waits (events carry their own times,
    /// and detection holds those minutes back, so the order of arrival does not matter).
    pub fn spooling(&self) -> bool {
        self.inner.database_down.load(Ordering::Acquire)
    }

    pub fn mark_database_down(&self) {
        if !self.inner.database_down.swap(true, Ordering::AcqRel) {
            tracing::warn!("the database is unreachable or too slow: spooling events to disk");
        }
        self.inner.wake.notify_one();
    }

    pub fn mark_database_up(&self) {
        if self.inner.database_down.swap(false, Ordering::AcqRel) {
            tracing::info!("the database answers again");
        }
    }

    pub fn pending(&self) -> u64 {
        self.inner.records.load(Ordering::Acquire)
    }

    pub fn status(&self) -> SpoolStatus {
        SpoolStatus {
            bytes: self.inner.bytes.load(Ordering::Relaxed),
            records: self.pending(),
            spooling: self.spooling(),
        }
    }

    /// The minute of the oldest batch still waiting: detection decides only earlier ones.
    pub fn oldest_pending(&self) -> Option<DateTime<Utc>> {
        lock(&self.inner.oldest).filter(|_| self.pending() > 0)
    }

    /// Appends one request's batch and answers once it is on disk (fsync'd).
    pub async fn append(
        &self,
        id: Uuid,
        events: &[NewEvent],
        spans: &[SpanTally],
    ) -> Result<(), SpoolError> {
        let batch = SpooledRef { id, events, spans };
        let payload = serde_json::to_vec(&batch).map_err(|e| SpoolError::Encode(e.to_string()))?;
        let used = self.inner.bytes.load(Ordering::Relaxed);
        if used + payload.len() as u64 > self.inner.max_bytes {
            return Err(SpoolError::Full(self.inner.max_bytes));
        }
        let count = u32::try_from(events.len()).unwrap_or(u32::MAX);
        let record = record::encode(&payload, count);
        let (reply, answer) = oneshot::channel();
        lock(&self.inner.commands)
            .send(Command::Append(log::Append { record, reply }))
            .map_err(|_| SpoolError::Stopped)?;
        let end = answer.await.map_err(|_| SpoolError::Stopped)??;
        {
            let mut appended = lock(&self.inner.appended);
            *appended = (*appended).max(end);
        }
        let mut oldest = lock(&self.inner.oldest);
        if self.inner.records.fetch_add(1, Ordering::AcqRel) == 0 || oldest.is_none() {
            *oldest = first_minute(events, spans);
        }
        drop(oldest);
        self.inner.metrics.spool_records.set(self.pending() as i64);
        self.inner.wake.notify_one();
        Ok(())
    }

    /// Waits until there may be something to replay.
    pub async fn wait_for_records(&self) {
        if self.pending() == 0 {
            self.inner.wake.notified().await;
        }
    }

    /// The next record after the reader's position (not yet moved: see [`Spool::advance`]).
    pub fn next(&self) -> Result<Next, SpoolError> {
        self.peek(self.position())
    }

    /// Where the reader stands.
    pub fn position(&self) -> Position {
        *lock(&self.inner.read)
    }

    /// The record at `read` (a position the reader has or will come to).
    pub fn peek(&self, read: Position) -> Result<Next, SpoolError> {
        let appended = *lock(&self.inner.appended);
        if read >= appended {
            return Ok(Next::Drained);
        }
        let end = (read.segment == appended.segment).then_some(appended.offset);
        let log::Read { found, bytes } =
            log::read_record(&self.inner.dir, read.segment, read.offset, end)?;
        let at = |offset: usize| Position {
            segment: read.segment,
            offset: read.offset + offset as u64,
        };
        let next_segment = Position {
            segment: read.segment + 1,
            offset: 0,
        };
        Ok(match found {
            Found::Record { payload, next, .. } => {
                match serde_json::from_slice::<SpooledBatch>(&bytes[payload]) {
                    Ok(batch) => Next::Batch {
                        batch,
                        after: at(next),
                    },
                    // Sound framing around a payload this build cannot read: skipped.
                    Err(_) => Next::Skipped {
                        events: 0,
                        after: at(next),
                    },
                }
            }
            Found::Damaged { events, next } => Next::Skipped {
                events,
                after: at(next),
            },
            Found::Garbage { next } if next < bytes.len() => Next::Skipped {
                events: 0,
                after: at(next),
            },
            // Garbage to the end, or an end cut short: that segment is done.
            Found::Garbage { .. } | Found::Incomplete => Next::Skipped {
                events: 0,
                after: next_segment,
            },
            Found::End => return self.peek(next_segment),
        })
    }

    /// Moves the reader past a record it applied (or skipped), freeing segments read past.
    pub fn advance(&self, after: Position, applied: Option<&SpooledBatch>) {
        let previous = std::mem::replace(&mut *lock(&self.inner.read), after);
        if after.segment > previous.segment {
            let _ = lock(&self.inner.commands).send(Command::DropBefore(after.segment));
        }
        let left = self
            .inner
            .records
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                Some(n.saturating_sub(1))
            })
            .map_or(0, |before| before.saturating_sub(1));
        if applied.is_some() {
            // The next record's minute is not known until it is read; until then the one
            // just applied is still a safe bound (records are in order of arrival).
            let mut oldest = lock(&self.inner.oldest);
            *oldest = applied.and_then(SpooledBatch::first_minute).max(*oldest);
        }
        self.inner.metrics.spool_records.set(left as i64);
    }

    /// After the reader reached the end: deletes the segments unless something was
    /// appended meanwhile. `true` when the spool is empty.
    pub async fn reset_if_drained(&self) -> bool {
        let read = *lock(&self.inner.read);
        let (reply, answer) = oneshot::channel();
        let sent = lock(&self.inner.commands).send(Command::ResetIfDrained { read, reply });
        if sent.is_err() {
            return false;
        }
        let drained = answer.await.unwrap_or(false);
        if drained {
            let fresh = Position {
                segment: read.segment + 1,
                offset: 0,
            };
            *lock(&self.inner.read) = fresh;
            *lock(&self.inner.appended) = fresh;
            *lock(&self.inner.oldest) = None;
            self.inner.records.store(0, Ordering::Release);
            self.inner.metrics.spool_records.set(0);
        }
        drained
    }
}

/// Counts the framed records between two positions (what waits at start).
fn count_records(dir: &Path, first: Position, end: Position) -> io::Result<u64> {
    let mut records = 0;
    for segment in first.segment..=end.segment {
        let mut at = 0;
        loop {
            let read = log::read_record(dir, segment, at, None)?;
            match read.found {
                Found::Record { next, .. }
                | Found::Damaged { next, .. }
                | Found::Garbage { next } => {
                    records += 1;
                    at += next as u64;
                }
                Found::Incomplete | Found::End => break,
            }
        }
    }
    Ok(records)
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::grouping;
    use crate::model::{ErrorEvent, ProjectId};

    fn event(at: DateTime<Utc>) -> NewEvent {
        let mut event = ErrorEvent::blank();
        event.event_id = Uuid::new_v4();
        event.received_at = at;
        event.message = Some("disk full".into());
        let grouping = grouping::group(&event);
        NewEvent::new(event, grouping).expect("an event")
    }

    fn span(at: DateTime<Utc>) -> SpanTally {
        SpanTally {
            project_id: ProjectId(1),
            service: Some("api".into()),
            minute: at,
            requests: 10,
            failed: 1,
        }
    }

    fn open(dir: &Path) -> Spool {
        Spool::open(dir, 1 << 20, Arc::new(Metrics::new())).expect("open the spool")
    }

    fn minute(n: i64) -> DateTime<Utc> {
        DateTime::UNIX_EPOCH + TimeDelta::minutes(29_000_000 + n)
    }

    fn expect_batch(spool: &Spool) -> (SpooledBatch, Position) {
        match spool.next().expect("read") {
            Next::Batch { batch, after } => (batch, after),
            other => panic!("expected a batch, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn batches_come_back_in_order_whole_and_then_the_spool_empties() {
        let dir = tempfile::tempdir().expect("a temp dir");
        let spool = open(dir.path());
        assert!(!spool.spooling());
        let (first, second) = (Uuid::new_v4(), Uuid::new_v4());
        let events = [event(minute(3)), event(minute(4))];
        spool.append(first, &events, &[]).await.expect("append");
        spool
            .append(second, &[], &[span(minute(5))])
            .await
            .expect("append");
        assert_eq!(spool.pending(), 2);
        assert_eq!(spool.oldest_pending(), Some(minute(3)));

        let (batch, after) = expect_batch(&spool);
        assert_eq!(batch.id, first);
        let ids: Vec<Uuid> = batch.events.iter().map(|e| e.event_id).collect();
        assert_eq!(ids, [events[0].event_id, events[1].event_id]);
        assert_eq!(
            batch.events[0].data, events[0].data,
            "the document survives"
        );
        spool.advance(after, Some(&batch));
        let (batch, after) = expect_batch(&spool);
        assert_eq!(
            (batch.id, batch.spans.clone()),
            (second, vec![span(minute(5))])
        );
        spool.advance(after, Some(&batch));
        assert!(matches!(spool.next().expect("read"), Next::Drained));
        assert!(spool.reset_if_drained().await);
        assert_eq!(spool.pending(), 0);
        assert_eq!(spool.oldest_pending(), None);
        assert_eq!(std::fs::read_dir(dir.path()).expect("list").count(), 0);
    }

    #[tokio::test]
    async fn a_reopened_spool_still_holds_its_batches_and_replays_them_first() {
        let dir = tempfile::tempdir().expect("a temp dir");
        let id = Uuid::new_v4();
        open(dir.path())
            .append(id, &[event(minute(1))], &[])
            .await
            .expect("append");
        let reopened = open(dir.path());
        assert_eq!(reopened.pending(), 1);
        assert!(reopened.spooling());
        assert_eq!(expect_batch(&reopened).0.id, id);
    }

    #[tokio::test]
    async fn a_damaged_record_is_skipped_with_its_event_count_and_the_next_one_read() {
        let dir = tempfile::tempdir().expect("a temp dir");
        let spool = open(dir.path());
        spool
            .append(Uuid::new_v4(), &[event(minute(1)), event(minute(1))], &[])
            .await
            .expect("append");
        let kept = Uuid::new_v4();
        spool
            .append(kept, &[event(minute(2))], &[])
            .await
            .expect("append");
        let path = log::Segments::path_of(dir.path(), 1);
        let mut bytes = std::fs::read(&path).expect("read");
        bytes[record::HEADER_BYTES + 10] ^= 0x55;
        std::fs::write(&path, bytes).expect("damage");
        let Next::Skipped { events, after } = spool.next().expect("read") else {
            panic!("the damaged record is skipped");
        };
        assert_eq!(events, 2);
        spool.advance(after, None);
        assert_eq!(expect_batch(&spool).0.id, kept);
    }

    #[tokio::test]
    async fn a_full_spool_refuses() {
        let dir = tempfile::tempdir().expect("a temp dir");
        let spool = Spool::open(dir.path(), 100, Arc::new(Metrics::new())).expect("open");
        let refused = spool.append(Uuid::new_v4(), &[event(minute(1))], &[]).await;
        assert!(matches!(refused, Err(SpoolError::Full(100))), "{refused:?}");
        assert_eq!(spool.pending(), 0);
    }
}
