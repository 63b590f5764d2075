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
//! transaction (see [`write_in`]): issues, releases, the event rows, then — summed per issue
//! and per series-minute — the counts. Several workers pipeline: the rows every batch shares
//! are locked only at the very end, so one worker's inserts overlap another's commit. If a batch fails for a reason other than the database being
//! unreachable, each job is retried alone, so one bad request cannot fail its neighbours.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::Instant;

use chrono::{DateTime, DurationRound, TimeDelta, Utc};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{PgConnection, PgPool};
use tokio::sync::{mpsc, oneshot, Mutex, OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinHandle;

use super::batch::{self, IssueDelta, IssueKey, Release};
use super::events::{self, NewEvent};
use super::partitions::Partitions;
use super::StoreError;
use crate::metrics::Metrics;
use crate::model::{IssueId, ProjectId, Scope, SeriesMinute, SpanTally, Tally};

#[derive(Debug, Clone, Copy)]
pub struct WriterSettings {
    pub queue_capacity: usize,
    pub batch_size: usize,
    pub concurrency: usize,
}

/// What happened to one event of a `write` call, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Written {
    Stored {
        issue_id: IssueId,
    },
    /// Already stored (the same event id was received before): not stored or counted again.
    Duplicate,
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
    batch: Batch,
    reply: oneshot::Sender<Result<Vec<Written>, WriteError>>,
    _room: OwnedSemaphorePermit,
}

#[derive(Clone)]
pub struct Writer {
    queue: mpsc::UnboundedSender<Job>,
    room: Arc<Semaphore>,
    capacity: usize,
    metrics: Arc<Metrics>,
}

/// The writer's thread; join it after the last `Writer` clone is dropped to drain the queue.
pub struct WriterTasks(std::thread::JoinHandle<()>);

impl WriterTasks {
    pub async fn join(self) {
        let thread = self.0;
        let _ = tokio::task::spawn_blocking(move || thread.join()).await;
    }
}

impl Writer {
    /// Starts the workers on a thread and runtime of their own, with connections of their own.
    ///
    /// Why a thread of its own: request handlers parse and compress on the main runtime's
    /// threads, and a busy runtime polls its I/O driver only every few dozen tasks. A writer
    /// sharing it waited up to milliseconds to learn that PostgreSQL had answered — while
    /// holding locks every batch needs. On its own, mostly idle thread it hears at once.
    pub fn start(
        pool: &PgPool,
        settings: WriterSettings,
        metrics: Arc<Metrics>,
    ) -> (Writer, WriterTasks) {
        // The channel itself is unbounded, but admission is bounded by `room` (in events).
        let (queue, receiver) = mpsc::unbounded_channel();
        let options = pool.connect_options().as_ref().clone();
        let worker_metrics = metrics.clone();
        let thread = std::thread::Builder::new()
            .name("seismo-writer".into())
            .spawn(move || run_workers(options, receiver, settings, worker_metrics))
            .expect("the OS starts a thread");
        let writer = Writer {
            queue,
            room: Arc::new(Semaphore::new(settings.queue_capacity)),
            capacity: settings.queue_capacity,
            metrics,
        };
        (writer, WriterTasks(thread))
    }

    /// Writes the batch and returns, for each of its events in order, what became of it, once
    /// the transaction has committed.
    pub async fn write(&self, batch: Batch) -> Result<Vec<Written>, WriteError> {
        if batch.weight() == 0 {
            return Ok(Vec::new());
        }
        let wanted = u32::try_from(batch.weight()).map_err(|_| WriteError::Overloaded)?;
        let room = self
            .room
            .clone()
            .try_acquire_many_owned(wanted)
            .map_err(|_| WriteError::Overloaded)?;
        self.publish_depth();
        let (reply, answer) = oneshot::channel();
        let job = Job {
            batch,
            reply,
            _room: room,
        };
        self.queue.send(job).map_err(|_| WriteError::Stopped)?;
        let result = answer.await.unwrap_or(Err(WriteError::Stopped));
        self.publish_depth();
        result
    }

    fn publish_depth(&self) {
        let depth = self.capacity.saturating_sub(self.room.available_permits());
        self.metrics.writer_queue_depth.set(depth as i64);
    }
}

/// The writer thread's body: a single-threaded runtime running `concurrency` workers until
/// the queue closes.
fn run_workers(
    options: PgConnectOptions,
    receiver: mpsc::UnboundedReceiver<Job>,
    settings: WriterSettings,
    metrics: Arc<Metrics>,
) {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            tracing::error!(%error, "cannot start the writer's runtime");
            return;
        }
    };
    runtime.block_on(async move {
        // Connected lazily, from this runtime, so their I/O is driven by it.
        let pool = PgPoolOptions::new()
            .max_connections(settings.concurrency as u32)
            .acquire_timeout(std::time::Duration::from_secs(5))
            .connect_lazy_with(options);
        let receiver = Arc::new(Mutex::new(receiver));
        let partitions = Arc::new(Partitions::default());
        let workers: Vec<JoinHandle<()>> = (0..settings.concurrency)
            .map(|_| {
                let worker = Worker {
                    pool: pool.clone(),
                    receiver: receiver.clone(),
                    partitions: partitions.clone(),
                    metrics: metrics.clone(),
                    batch_size: settings.batch_size,
                };
                tokio::spawn(worker.run())
            })
            .collect();
        for worker in workers {
            let _ = worker.await;
        }
        pool.close().await;
    });
}

struct Worker {
    pool: PgPool,
    receiver: Arc<Mutex<mpsc::UnboundedReceiver<Job>>>,
    partitions: Arc<Partitions>,
    metrics: Arc<Metrics>,
    batch_size: usize,
}

impl Worker {
    async fn run(self) {
        while let Some(jobs) = self.next_batch().await {
            self.write_jobs(jobs).await;
        }
    }

    /// Waits for one job, then takes every job already waiting, up to the batch size.
    async fn next_batch(&self) -> Option<Vec<Job>> {
        let mut receiver = self.receiver.lock().await;
        let first = receiver.recv().await?;
        let mut size = first.batch.weight();
        let mut jobs = vec![first];
        while size < self.batch_size {
            match receiver.try_recv() {
                Ok(job) => {
                    size += job.batch.weight();
                    jobs.push(job);
                }
                Err(_) => break,
            }
        }
        Some(jobs)
    }

    async fn write_jobs(&self, jobs: Vec<Job>) {
        let all: Vec<&NewEvent> = jobs.iter().flat_map(|j| &j.batch.events).collect();
        let spans: Vec<&SpanTally> = jobs.iter().flat_map(|j| &j.batch.spans).collect();
        let mut result = self.write_batch(&all, &spans).await;
        if result.as_ref().is_err_and(StoreError::is_transient) {
            // A deadlock victim or serialization failure: the same batch succeeds when retried.
            result = self.write_batch(&all, &spans).await;
        }
        match result {
            Ok(written) => reply_in_order(jobs, written),
            Err(error) if jobs.len() > 1 && !error.is_unavailable() => {
                tracing::warn!(%error, jobs = jobs.len(), "batch failed; writing its requests one by one");
                for job in jobs {
                    let events: Vec<&NewEvent> = job.batch.events.iter().collect();
                    let spans: Vec<&SpanTally> = job.batch.spans.iter().collect();
                    let result = self
                        .write_batch(&events, &spans)
                        .await
                        .map_err(|e| WriteError::from(&e));
                    let _ = job.reply.send(result);
                }
            }
            Err(error) => {
                tracing::error!(%error, events = all.len(), "writer batch failed");
                let failure = WriteError::from(&error);
                for job in jobs {
                    let _ = job.reply.send(Err(failure.clone()));
                }
            }
        }
    }

    async fn write_batch(
        &self,
        events: &[&NewEvent],
        spans: &[&SpanTally],
    ) -> Result<Vec<Written>, StoreError> {
        let started = Instant::now();
        let days: HashSet<_> = events.iter().map(|e| e.received_day()).collect();
        self.partitions.ensure(&self.pool, days).await?;
        let projects: Vec<ProjectId> = events.iter().map(|e| e.project_id).collect();
        let mut tx = self
            .pool
            .begin_with(batch::begin_sharing_issue_sets(&projects))
            .await?;
        let written = write_in(&mut tx, events, spans).await?;
        tx.commit().await?;
        self.metrics.writer_batch_size.observe(events.len() as f64);
        self.metrics
            .writer_commit_duration
            .observe(started.elapsed().as_secs_f64());
        Ok(written)
    }
}

/// Splits the batch's results back to the jobs they came from.
fn reply_in_order(jobs: Vec<Job>, written: Vec<Written>) {
    let mut written = written.into_iter();
    for job in jobs {
        let mine: Vec<Written> = written.by_ref().take(job.batch.events.len()).collect();
        let _ = job.reply.send(Ok(mine));
    }
}

/// The batch's statements, inside the caller's transaction (begun by
/// `batch::begin_sharing_issue_sets`, see `store::batch`): issues and
/// releases, the event rows, then the counts of the events that were new.
async fn write_in(
    conn: &mut PgConnection,
    events: &[&NewEvent],
    spans: &[&SpanTally],
) -> Result<Vec<Written>, StoreError> {
    if events.is_empty() {
        batch::close(conn, &[], &minute_tallies(&[], spans)).await?;
        return Ok(Vec::new());
    }
    let ensured = batch::open(conn, &issue_keys(events), &release_sightings(events)).await?;
    let issue_ids: HashMap<(ProjectId, &str), IssueId> = ensured
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
    let mut inserted = events::insert(conn, &with_issue).await?;
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
    batch::close(conn, &issue_deltas(&fresh), &minute_tallies(&fresh, spans)).await?;
    Ok(written)
}

/// The batch's distinct fingerprints, sorted, each with its latest event's naming.
fn issue_keys<'a>(events: &[&'a NewEvent]) -> Vec<IssueKey<'a>> {
    let mut keys: BTreeMap<(ProjectId, &str), IssueKey<'a>> = BTreeMap::new();
    for event in events {
        keys.insert(
            (event.project_id, event.grouping.fingerprint.as_str()),
            IssueKey {
                project_id: event.project_id,
                fingerprint: event.grouping.fingerprint.as_str(),
                strategy: event.grouping.strategy.as_str(),
                title: &event.grouping.title,
                culprit: &event.grouping.culprit,
                level: event.level.as_str(),
                seen_at: event.received_at,
            },
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

/// One delta per issue, sorted by issue id, with the new events' counts summed.
fn issue_deltas(events: &[(&NewEvent, IssueId)]) -> Vec<IssueDelta> {
    let mut deltas: BTreeMap<IssueId, IssueDelta> = BTreeMap::new();
    for (event, issue_id) in events {
        let unhandled = i64::from(!event.handled);
        match deltas.get_mut(issue_id) {
            Some(delta) => fold_into(delta, event, unhandled),
            None => {
                deltas.insert(*issue_id, new_delta(*issue_id, event, unhandled));
            }
        }
    }
    deltas.into_values().collect()
}

fn new_delta(issue_id: IssueId, event: &NewEvent, unhandled: i64) -> IssueDelta {
    IssueDelta {
        issue_id,
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
fn fold_into(delta: &mut IssueDelta, event: &NewEvent, unhandled: i64) {
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

/// Per-minute tallies, sorted by key: events count toward their project, service and issue;
/// spans toward their project and service.
fn minute_tallies(
    events: &[(&NewEvent, IssueId)],
    spans: &[&SpanTally],
) -> Vec<(SeriesMinute, Tally)> {
    let mut tallies: BTreeMap<SeriesMinute, Tally> = BTreeMap::new();
    let mut add = |project_id: ProjectId, scope: Scope, minute: DateTime<Utc>, tally: Tally| {
        let key = SeriesMinute {
            project_id,
            scope,
            minute,
        };
        tallies.entry(key).or_default().add(tally);
    };
    for (event, issue_id) in events {
        let minute = event
            .received_at
            .duration_trunc(TimeDelta::minutes(1))
            .unwrap_or(event.received_at);
        let tally = Tally {
            events: 1,
            unhandled: i64::from(!event.handled),
            ..Tally::default()
        };
        add(event.project_id, Scope::Project, minute, tally);
        add(event.project_id, Scope::Issue(*issue_id), minute, tally);
        if let Some(service) = &event.service {
            add(
                event.project_id,
                Scope::Service(service.clone()),
                minute,
                tally,
            );
        }
    }
    for span in spans {
        let tally = Tally {
            requests: span.requests,
            failed: span.failed,
            ..Tally::default()
        };
        add(span.project_id, Scope::Project, span.minute, tally);
        if let Some(service) = &span.service {
            add(
                span.project_id,
                Scope::Service(service.clone()),
                span.minute,
                tally,
            );
        }
    }
    tallies.into_iter().collect()
}
