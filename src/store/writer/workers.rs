//! The writer's workers: a thread and runtime of their own, each worker taking every job
//! waiting (up to the batch size) and writing them in one transaction; a batch that fails
//! for another reason than an unreachable database is retried job by job.

use std::collections::HashSet;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::PgPool;
use tokio::sync::{mpsc, Mutex};
use tokio::task::JoinHandle;

use super::transaction::{write_in, SpanGroup};
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

    async fn write_jobs(&self, jobs: Vec<Job>) {
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
        &self,
        events: &[&NewEvent],
        spans: &[SpanGroup<'_>],
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
