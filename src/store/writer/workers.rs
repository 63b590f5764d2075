//! The writer's workers: a thread and runtime of their own, each worker taking every job
//! waiting (up to the batch size) and writing them in one transaction; a batch that fails
//! for another reason than an unreachable database is retried job by job.
//!
//! Each worker keeps one connection of its own from batch to batch. A pooled connection is
//! pinged when taken and again when given back: two round trips per batch on top of the
//! batch's own one (four step by step, see `store::batch`), each costing both sides a
//! wake-up and, with TLS, a record each way. A kept connection the server has closed since
//! (a restart, an idle timeout) fails the next batch at its first statement; the worker then
//! connects anew and writes the batch once more. A kept connection older than the pool's
//! `max_lifetime` is closed and replaced before its next batch, as the pool does with its
//! own: a backend's caches grow over its life, and a new connection follows a moved or
//! reconfigured server. And every `writer::REPLAN_EVERY` the kept session drops its cached
//! query plans, so that they follow the tables' sizes.

use std::collections::HashSet;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use sqlx::postgres::PgConnectOptions;
use sqlx::{ConnectOptions, Connection as _, Executor as _, PgConnection};
use tokio::sync::{mpsc, Mutex};
use tokio::task::JoinHandle;

use super::transaction::{write_in, write_whole, SpanGroup};
use super::{Job, WriteError, WriterSettings, Written};
use crate::metrics::Metrics;
use crate::model::ProjectId;
use crate::store::batch;
use crate::store::events::NewEvent;
use crate::store::partitions::Partitions;
use crate::store::StoreError;

/// The writer thread's body: a single-threaded runtime running `concurrency` workers until
/// the queue closes.
pub(super) fn run_workers(
    options: PgConnectOptions,
    max_lifetime: Option<Duration>,
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
        let receiver = Arc::new(Mutex::new(receiver));
        let partitions = Arc::new(Partitions::default());
        let workers: Vec<JoinHandle<()>> = (0..settings.concurrency)
            .map(|_| {
                let worker = Worker {
                    // Connected lazily, from this runtime, so its I/O is driven by it.
                    connection: Connection {
                        options: options.clone(),
                        max_lifetime,
                        replan_every: settings.replan_every,
                        open: None,
                    },
                    receiver: receiver.clone(),
                    partitions: partitions.clone(),
                    metrics: metrics.clone(),
                    batch_size: settings.batch_size,
                    ways: Ways::default(),
                };
                tokio::spawn(worker.run())
            })
            .collect();
        for worker in workers {
            let _ = worker.await;
        }
    });
}

/// How long connecting may take before the batch fails as if the database were down.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// A worker's connection, opened when first needed and kept until it fails or grows old.
struct Connection {
    options: PgConnectOptions,
    /// How long a connection is kept (`None`: until it fails).
    max_lifetime: Option<Duration>,
    /// How often its session's cached plans are dropped (`REPLAN_EVERY`).
    replan_every: Duration,
    open: Option<Opened>,
}

struct Opened {
    conn: PgConnection,
    at: Instant,
    /// Since when the session's cached plans were made.
    planned: Instant,
}

impl Connection {
    /// The kept connection, or a new one.
    async fn get(&mut self) -> Result<&mut PgConnection, StoreError> {
        let opened = match self.open.take() {
            Some(opened) => opened,
            None => Opened {
                conn: tokio::time::timeout(CONNECT_TIMEOUT, self.options.connect())
                    .await
                    .map_err(|_| connect_timed_out())??,
                at: Instant::now(),
                planned: Instant::now(),
            },
        };
        Ok(&mut self.open.insert(opened).conn)
    }

    /// Has the kept session drop its cached query plans once they are older than
    /// `replan_every`, so that its next statements are planned for the tables' sizes now
    /// (see `writer::REPLAN_EVERY`); prepared statements stay prepared. A session that
    /// cannot is closed: the next batch gets a new one.
    async fn replan_if_due(&mut self) {
        let every = self.replan_every;
        let Some(opened) = self.open.as_mut().filter(|o| o.planned.elapsed() >= every) else {
            return;
        };
        match opened.conn.execute("DISCARD PLANS").await {
            Ok(_) => opened.planned = Instant::now(),
            Err(error) => {
                tracing::debug!(%error, "dropping the session's plans failed; connecting anew");
                self.open = None;
            }
        }
    }

    /// Closes the kept connection once it is older than `max_lifetime`: the next batch
    /// gets a new one.
    async fn retire_if_old(&mut self) {
        let lifetime = self.max_lifetime;
        let old = self
            .open
            .take_if(|opened| lifetime.is_some_and(|lifetime| opened.at.elapsed() >= lifetime));
        if let Some(old) = old {
            close(old.conn).await;
        }
    }

    /// Drops the connection after an error that may have broken it.
    fn forget_after(&mut self, error: &StoreError) {
        if error.is_unavailable() {
            self.open = None;
        }
    }

    async fn close(self) {
        if let Some(opened) = self.open {
            close(opened.conn).await;
        }
    }
}

/// Closes a connection politely (the server logs no broken connection), giving up after
/// the connect timeout should the server not answer.
async fn close(conn: PgConnection) {
    let _ = tokio::time::timeout(CONNECT_TIMEOUT, conn.close()).await;
}

fn connect_timed_out() -> StoreError {
    StoreError::Database(sqlx::Error::Io(std::io::Error::new(
        std::io::ErrorKind::TimedOut,
        "connecting to PostgreSQL timed out",
    )))
}

struct Worker {
    connection: Connection,
    receiver: Arc<Mutex<mpsc::UnboundedReceiver<Job>>>,
    partitions: Arc<Partitions>,
    metrics: Arc<Metrics>,
    batch_size: usize,
    ways: Ways,
}

impl Worker {
    async fn run(mut self) {
        while let Some(jobs) = self.next_batch().await {
            self.write_jobs(jobs).await;
        }
        self.connection.close().await;
    }

    /// Waits for one job, then takes every job already waiting, up to the batch size.
    async fn next_batch(&self) -> Option<Vec<Job>> {
        let mut receiver = self.receiver.lock().await;
        let mut jobs = Vec::new();
        let mut size = 0;
        while jobs.is_empty() {
            let first = receiver.recv().await?;
            size += first.batch.weight();
            jobs.extend(live(first));
        }
        while size < self.batch_size {
            match receiver.try_recv() {
                Ok(job) => {
                    size += job.batch.weight();
                    jobs.extend(live(job));
                }
                Err(_) => break,
            }
        }
        Some(jobs)
    }

    async fn write_jobs(&mut self, jobs: Vec<Job>) {
        let all: Vec<&NewEvent> = jobs.iter().flat_map(|j| &j.batch.events).collect();
        let spans: Vec<SpanGroup> = jobs.iter().filter_map(Job::spans).collect();
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
                    let spans: Vec<SpanGroup> = job.spans().into_iter().collect();
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

    #[tracing::instrument(name = "writer_batch", level = "debug", skip_all,
        fields(events = events.len(), span_groups = spans.len()))]
    async fn write_batch(
        &mut self,
        events: &[&NewEvent],
        spans: &[SpanGroup<'_>],
    ) -> Result<Vec<Written>, StoreError> {
        self.connection.retire_if_old().await;
        self.connection.replan_if_due().await;
        let started = Instant::now();
        let kept = self.connection.open.is_some();
        let (written, way) = match self.write_on_connection(events, spans).await {
            // The kept connection was closed by the server since the last batch. Written
            // again on a new one; should the first try have committed after all, its events
            // now read as duplicates and count once.
            Err(error) if kept && error.is_unavailable() => {
                self.write_on_connection(events, spans).await?
            }
            result => result?,
        };
        self.metrics
            .writer_batches
            .with_label_values(&[way.label()])
            .inc();
        self.metrics.writer_batch_size.observe(events.len() as f64);
        self.metrics
            .writer_commit_duration
            .observe(started.elapsed().as_secs_f64());
        Ok(written)
    }

    /// Writes the batch in one transaction on the worker's connection.
    async fn write_on_connection(
        &mut self,
        events: &[&NewEvent],
        spans: &[SpanGroup<'_>],
    ) -> Result<(Vec<Written>, Way), StoreError> {
        let conn = self.connection.get().await?;
        let result =
            write_in_transaction(conn, &self.partitions, &mut self.ways, events, spans).await;
        if let Err(error) = &result {
            self.connection.forget_after(error);
        }
        result
    }
}

async fn write_in_transaction(
    conn: &mut PgConnection,
    partitions: &Partitions,
    ways: &mut Ways,
    events: &[&NewEvent],
    spans: &[SpanGroup<'_>],
) -> Result<(Vec<Written>, Way), StoreError> {
    let days: HashSet<_> = events.iter().map(|e| e.received_day()).collect();
    partitions.ensure(conn, days).await?;
    let way = if ways.try_whole() {
        if let Some(written) = write_whole(conn, events, spans).await? {
            return Ok((written, Way::Whole));
        }
        ways.fell_back();
        tracing::debug!(
            events = events.len(),
            "the batch was written before in part, or an issue created meanwhile; writing it step by step"
        );
        Way::FellBack
    } else {
        Way::StepByStep
    };
    let projects: Vec<ProjectId> = events.iter().map(|e| e.project_id).collect();
    let mut tx = conn
        .begin_with(batch::begin_sharing_issue_sets(&projects))
        .await?;
    let written = write_in(&mut tx, events, spans).await?;
    tx.commit().await?;
    Ok((written, way))
}

/// How a committed batch was written, the label of `seismo_writer_batches_total`: how often
/// batches fall back tells an operator what retries and replays cost the writer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Way {
    /// In one round trip.
    Whole,
    /// Tried whole, rolled back, then written step by step.
    FellBack,
    /// Step by step without trying, in the pause after a fallback.
    StepByStep,
}

impl Way {
    fn label(self) -> &'static str {
        match self {
            Way::Whole => "whole",
            Way::FellBack => "fell_back",
            Way::StepByStep => "step_by_step",
        }
    }
}

/// Which way a worker writes its next batch: whole, in one round trip, unless a recent batch
/// could not go that way. A batch that falls back is written twice, and the first, rolled
/// back, inserted every row; when clients resend what was stored already (retries under
/// load, a replayed spool), most batches would, so after a fallback the next
/// [`STEPS_AFTER_A_FALLBACK`] go step by step without trying.
#[derive(Debug, Default)]
struct Ways {
    steps_left: u32,
}

const STEPS_AFTER_A_FALLBACK: u32 = 16;

impl Ways {
    /// Whether to try the next batch whole.
    fn try_whole(&mut self) -> bool {
        match self.steps_left {
            0 => true,
            _ => {
                self.steps_left -= 1;
                false
            }
        }
    }

    fn fell_back(&mut self) {
        self.steps_left = STEPS_AFTER_A_FALLBACK;
    }
}

/// The job, unless its request gave up waiting and spooled it (then its reply is dropped).
fn live(job: Job) -> Option<Job> {
    (!job.abandoned.load(Ordering::Acquire)).then_some(job)
}

impl Job {
    fn spans(&self) -> Option<SpanGroup<'_>> {
        (!self.batch.spans.is_empty()).then(|| SpanGroup {
            batch: self.id,
            spans: &self.batch.spans,
        })
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn after_a_fallback_the_next_batches_go_step_by_step_then_whole_again() {
        let mut ways = Ways::default();
        assert!(ways.try_whole());
        assert!(ways.try_whole(), "batches that went whole change nothing");
        ways.fell_back();
        for n in 0..STEPS_AFTER_A_FALLBACK {
            assert!(!ways.try_whole(), "batch {n} after the fallback");
        }
        assert!(ways.try_whole());
    }
}
