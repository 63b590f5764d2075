//! The writer: group commit of events from all requests.
//!
//! ```text
//! request ─ write(batch) ──► [bounded queue, counted in events] ─► worker ─► one transaction
//!    ▲                                                               │   per batch of jobs
//!    └──────────────── Written / WriteError after COMMIT ◄────────────┘
//! ```
//!
//! A request's events (and span counts) are admitted only if the queue has room for all of
//! them (else `Overloaded`, which ingestion answers with 503 + Retry-After: never an unbounded
//! buffer). A worker takes every job waiting, up to the batch size, and writes them in one
//! transaction (see `transaction`): issues, releases, the event rows, then — summed per issue
//! and per series-minute — the counts; in one round trip when the batch is all new events. There is one worker unless configured otherwise: its
//! batches grow with the load, which costs less per event than two workers splitting it
//! (measured with a slow commit too, bench/README.md). Several workers pipeline: the rows
//! every batch shares are locked only at the very end, so one worker's inserts overlap
//! another's commit. If a batch fails for a reason other than the database being
//! unreachable, each job is retried alone, so one bad request cannot fail its neighbours.
//!
//! With a spool (`store::spool`), a request whose batch the database cannot take — it is
//! unreachable, or has not committed within `spool_after` — is appended to the spool
//! instead and answered once that is on disk; while the spool holds batches, new ones go
//! there too (they replay in order). The replayer writes them back through this queue.

mod transaction;
mod workers;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use sqlx::PgPool;
use tokio::sync::{mpsc, oneshot, watch, OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinHandle;
use uuid::Uuid;

use super::events::NewEvent;
use super::spool::replay::{self, Applied};
use super::spool::{Spool, SpoolError, SpooledBatch};
use super::StoreError;
use crate::metrics::Metrics;
use crate::model::{IssueId, SpanTally};
use workers::run_workers;

#[derive(Debug, Clone, Copy)]
pub struct WriterSettings {
    pub queue_capacity: usize,
    pub batch_size: usize,
    pub concurrency: usize,
    /// With a spool: how long a request waits for its COMMIT before spooling instead.
    pub spool_after: Duration,
    /// How often a worker's session drops its cached query plans ([`REPLAN_EVERY`]).
    pub replan_every: Duration,
}

/// How often a worker's session has PostgreSQL make its query plans again. A session keeps
/// a generic plan per statement, made for the tables' sizes of its first calls, until a
/// table is analyzed. `issues` grows with every batch until a vacuum (each issue update
/// leaves a dead row version), so without autovacuum a plan made while it was small went on
/// scanning the whole table to find, lock and update a batch's issues: after a minute, half
/// of the writer backend's CPU (bench/README.md). Made again every few seconds, the plans
/// follow the tables' sizes, at the cost of a few plannings per period.
pub const REPLAN_EVERY: Duration = Duration::from_secs(10);

/// What happened to one event of a `write` call, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Written {
    Stored {
        issue_id: IssueId,
    },
    /// Already stored (the same event id was received before): not stored or counted again.
    Duplicate,
    /// On disk in the spool (durable), to be written to the database when it answers.
    Spooled,
}

#[derive(Debug, Clone, thiserror::Error)]
pub enum WriteError {
    #[error("the writer queue is full")]
    Overloaded,
    #[error("the database is unavailable: {0}")]
    Unavailable(String),
    #[error("the database refused the batch: {0}")]
    Failed(String),
    #[error("the writer has stopped")]
    Stopped,
    /// The events' project no longer exists (deleted while its key was still cached).
    #[error("the project no longer exists")]
    ProjectGone,
    /// The database could not take the batch and the spool is full (or cannot write).
    #[error("{0}")]
    SpoolFull(String),
}

impl From<&StoreError> for WriteError {
    fn from(error: &StoreError) -> WriteError {
        if error.is_unavailable() {
            WriteError::Unavailable(error.to_string())
        } else if error.is_foreign_key_violation() {
            // Everything a batch writes references its projects, and nothing else.
            WriteError::ProjectGone
        } else {
            WriteError::Failed(error.to_string())
        }
    }
}

/// What one request hands the writer: its events, and the spans it counted (OTLP traces).
#[derive(Debug, Default)]
pub struct Batch {
    pub events: Vec<NewEvent>,
    pub spans: Vec<SpanTally>,
}

impl Batch {
    /// Room taken in the queue: one unit per event and per span tally.
    fn weight(&self) -> usize {
        self.events.len() + self.spans.len()
    }
}

struct Job {
    batch: Arc<Batch>,
    /// Records the batch's span counts as applied (see `store::spool`).
    id: Uuid,
    /// Set when the request stopped waiting and spooled the batch: not to be written here.
    abandoned: Arc<AtomicBool>,
    reply: oneshot::Sender<Result<Vec<Written>, WriteError>>,
    _room: OwnedSemaphorePermit,
}

#[derive(Clone)]
pub struct Writer {
    queue: mpsc::UnboundedSender<Job>,
    room: Arc<Semaphore>,
    capacity: usize,
    metrics: Arc<Metrics>,
    spool: Option<Spool>,
    spool_after: Duration,
}

/// The writer's thread and the spool's replayer; join after the last `Writer` clone is
/// dropped, to stop replaying and drain the queue.
pub struct WriterTasks {
    thread: std::thread::JoinHandle<()>,
    replayer: Option<(watch::Sender<bool>, JoinHandle<()>)>,
}

impl WriterTasks {
    pub async fn join(self) {
        if let Some((stop, replayer)) = self.replayer {
            let _ = stop.send(true);
            let _ = replayer.await;
        }
        let thread = self.thread;
        let _ = tokio::task::spawn_blocking(move || thread.join()).await;
    }
}

impl Writer {
    /// Starts the workers on a thread and runtime of their own, with connections of their own,
    /// and, with a spool, its replayer on the caller's runtime.
    ///
    /// Why a thread of its own: request handlers parse and compress on the main runtime's
    /// threads, and a busy runtime polls its I/O driver only every few dozen tasks. A writer
    /// sharing it waited up to milliseconds to learn that PostgreSQL had answered — while
    /// holding locks every batch needs. On its own, mostly idle thread it hears at once.
    pub fn start(
        pool: &PgPool,
        settings: WriterSettings,
        metrics: Arc<Metrics>,
        spool: Option<Spool>,
    ) -> (Writer, WriterTasks) {
        // The channel itself is unbounded, but admission is bounded by `room` (in events).
        let (queue, receiver) = mpsc::unbounded_channel();
        let options = pool.connect_options().as_ref().clone();
        let max_lifetime = pool.options().get_max_lifetime();
        let worker_metrics = metrics.clone();
        let thread = std::thread::Builder::new()
            .name("seismo-writer".into())
            .spawn(move || run_workers(options, max_lifetime, receiver, settings, worker_metrics))
            .expect("the OS starts a thread");
        let writer = Writer {
            queue,
            room: Arc::new(Semaphore::new(settings.queue_capacity)),
            capacity: settings.queue_capacity,
            metrics,
            spool,
            spool_after: settings.spool_after,
        };
        let replayer = writer.spool.clone().map(|spool| {
            let (stop, stopped) = watch::channel(false);
            let (pool, metrics, database) = (pool.clone(), writer.metrics.clone(), writer.clone());
            let write = move |spooled: SpooledBatch| database.clone().replay(spooled);
            let task = tokio::spawn(replay::run(spool, write, pool, metrics, stopped));
            (stop, task)
        });
        (writer, WriterTasks { thread, replayer })
    }

    /// Writes the batch and returns, for each of its events in order, what became of it,
    /// once it is durable: committed, or (with a spool) on disk there.
    pub async fn write(&self, batch: Batch) -> Result<Vec<Written>, WriteError> {
        if batch.weight() == 0 {
            return Ok(Vec::new());
        }
        let id = Uuid::new_v4();
        let Some(spool) = &self.spool else {
            return self.enqueue(Arc::new(batch), id)?.await;
        };
        if spool.spooling() {
            return self.spool(spool, id, &batch).await;
        }
        let batch = Arc::new(batch);
        let (answer, abandoned) = self.enqueue_abandonable(batch.clone(), id)?;
        match tokio::time::timeout(self.spool_after, answer).await {
            Ok(Err(WriteError::Unavailable(reason))) => {
                tracing::warn!(%reason, "the database did not take a batch; spooling it");
                spool.mark_database_down();
                self.spool(spool, id, &batch).await
            }
            Ok(result) => result,
            Err(_) => {
                abandoned.store(true, Ordering::Release);
                tracing::warn!(after = ?self.spool_after, "no COMMIT in time; spooling the batch");
                spool.mark_database_down();
                self.spool(spool, id, &batch).await
            }
        }
    }

    /// Writes a batch to the database only (the replayer's way in), recording `id` with
    /// its span counts so a batch already applied adds them no more.
    pub async fn write_to_database(
        &self,
        batch: Batch,
        id: Uuid,
    ) -> Result<Vec<Written>, WriteError> {
        self.enqueue(Arc::new(batch), id)?.await
    }

    async fn replay(self, spooled: SpooledBatch) -> Applied {
        let batch = Batch {
            events: spooled.events,
            spans: spooled.spans,
        };
        match self.write_to_database(batch, spooled.id).await {
            Ok(_) => Applied::Written,
            Err(WriteError::Unavailable(_) | WriteError::Stopped) => Applied::Unreachable,
            Err(WriteError::Overloaded) => Applied::Busy,
            Err(WriteError::ProjectGone) => Applied::ProjectGone,
            Err(WriteError::Failed(reason) | WriteError::SpoolFull(reason)) => {
                Applied::Refused(reason)
            }
        }
    }

    async fn spool(
        &self,
        spool: &Spool,
        id: Uuid,
        batch: &Batch,
    ) -> Result<Vec<Written>, WriteError> {
        spool
            .append(id, &batch.events, &batch.spans)
            .await
            .map_err(|error| match error {
                SpoolError::Full(_) => WriteError::SpoolFull(error.to_string()),
                other => {
                    tracing::error!(error = %other, "the spool could not take a batch");
                    WriteError::SpoolFull(other.to_string())
                }
            })?;
        Ok(vec![Written::Spooled; batch.events.len()])
    }

    fn enqueue(
        &self,
        batch: Arc<Batch>,
        id: Uuid,
    ) -> Result<impl std::future::Future<Output = Result<Vec<Written>, WriteError>> + '_, WriteError>
    {
        Ok(self.enqueue_abandonable(batch, id)?.0)
    }

    /// Queues the batch; the future answers after its COMMIT. Setting the flag before a
    /// worker takes the job drops it unwritten.
    #[allow(clippy::type_complexity)]
    fn enqueue_abandonable(
        &self,
        batch: Arc<Batch>,
        id: Uuid,
    ) -> Result<
        (
            impl std::future::Future<Output = Result<Vec<Written>, WriteError>> + '_,
            Arc<AtomicBool>,
        ),
        WriteError,
    > {
        let wanted = u32::try_from(batch.weight()).map_err(|_| WriteError::Overloaded)?;
        let room = self
            .room
            .clone()
            .try_acquire_many_owned(wanted)
            .map_err(|_| WriteError::Overloaded)?;
        self.publish_depth();
        let (reply, answer) = oneshot::channel();
        let abandoned = Arc::new(AtomicBool::new(false));
        let job = Job {
            batch,
            id,
            abandoned: abandoned.clone(),
            reply,
            _room: room,
        };
        self.queue.send(job).map_err(|_| WriteError::Stopped)?;
        let answered = async move {
            let result = answer.await.unwrap_or(Err(WriteError::Stopped));
            self.publish_depth();
            result
        };
        Ok((answered, abandoned))
    }

    fn publish_depth(&self) {
        let depth = self.capacity.saturating_sub(self.room.available_permits());
        self.metrics.writer_queue_depth.set(depth as i64);
    }
}
