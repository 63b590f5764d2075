//! The replayer: writes the spooled batches into PostgreSQL, oldest first, once it answers.
//!
//! ```text
//!  wait for records ─► publish the watermark ─► next record ─► writer (database only)
//!        ▲                                          │ applied: advance, database up
//!        │                                          │ unreachable: wait, try again
//!        └──────────── drained: delete segments ◄───┘ damaged / refused: skip, count
//! ```
//!
//! The writer hands in how a batch reaches the database (its own queue, so group commit
//! and the per-batch retry of the live path apply); the batch id keeps a replay exact
//! (see `store::spool`).

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use sqlx::PgPool;
use tokio::sync::watch;
use uuid::Uuid;

use super::{watermarks, Next, Spool, SpooledBatch};
use crate::metrics::Metrics;

/// How long to wait before trying an unreachable database again.
const RETRY_AFTER: Duration = Duration::from_secs(1);
/// A batch the database keeps refusing (not unreachable: refusing) is skipped after this
/// many tries, so one bad record cannot hold every later one back.
const MAX_REFUSALS: u32 = 3;
/// Records sent to the writer at once: enough for it to commit them in a few transactions.
const GROUP_RECORDS: usize = 256;
const GROUP_EVENTS: usize = 2_000;

/// How the database took one replayed batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Applied {
    Written,
    /// The database does not answer: try again later.
    Unreachable,
    /// Too much live traffic in the queue: try again in a moment.
    Busy,
    /// The batch's project was deleted meanwhile.
    ProjectGone,
    /// The database refused the batch itself.
    Refused(String),
}

/// Replays until `stop` turns true (what is left stays on disk for the next start).
/// `write` puts one batch into the database.
pub async fn run<W, F>(
    spool: Spool,
    write: W,
    pool: PgPool,
    metrics: Arc<Metrics>,
    mut stop: watch::Receiver<bool>,
) where
    W: Fn(SpooledBatch) -> F,
    F: Future<Output = Applied> + Send + 'static,
{
    let replayer = Replayer {
        spool,
        write,
        pool,
        metrics,
        holder: Uuid::new_v4(),
    };
    loop {
        tokio::select! {
            _ = replayer.spool.wait_for_records() => {}
            _ = stop.changed() => return,
        }
        let outcome = tokio::select! {
            outcome = replayer.drain() => outcome,
            _ = stop.changed() => return,
        };
        if outcome.is_err() {
            tokio::select! {
                _ = tokio::time::sleep(RETRY_AFTER) => {}
                _ = stop.changed() => return,
            }
        }
    }
}

struct Replayer<W> {
    spool: Spool,
    write: W,
    pool: PgPool,
    metrics: Arc<Metrics>,
    holder: Uuid,
}

/// The database did not answer: try again later.
struct Unreachable;

impl<W, F> Replayer<W>
where
    W: Fn(SpooledBatch) -> F,
    F: Future<Output = Applied> + Send + 'static,
{
    /// Replays every record there is; `Err` when the database stopped answering.
    async fn drain(&self) -> Result<(), Unreachable> {
        loop {
            self.publish_watermark().await?;
            let group = self.read_group()?;
            if group.is_empty() {
                if self.spool.reset_if_drained().await {
                    let _ = watermarks::withdraw(&self.pool, self.holder).await;
                    self.metrics.spool_replay_lag.set(0.0);
                    tracing::info!("the spool is drained");
                    return Ok(());
                }
                continue;
            }
            self.apply_group(group).await?;
        }
    }

    /// The next records from the reader's position, up to a group's worth.
    fn read_group(&self) -> Result<Vec<Next>, Unreachable> {
        let mut group = Vec::new();
        let (mut at, mut events) = (self.spool.position(), 0);
        while group.len() < GROUP_RECORDS && events < GROUP_EVENTS {
            let next = self.spool.peek(at).map_err(|error| {
                tracing::error!(%error, "the spool cannot be read");
                Unreachable
            })?;
            match &next {
                Next::Batch { batch, after } => {
                    events += batch.events.len();
                    at = *after;
                }
                Next::Skipped { after, .. } => at = *after,
                Next::Drained => break,
            }
            group.push(next);
        }
        Ok(group)
    }

    /// Sends the group's batches at once (the writer commits them together), then moves the
    /// reader past each in order as far as they were written.
    async fn apply_group(&self, group: Vec<Next>) -> Result<(), Unreachable> {
        let sent: Vec<Option<tokio::task::JoinHandle<Applied>>> = group
            .iter()
            .map(|next| match next {
                Next::Batch { batch, .. } => Some(tokio::spawn((self.write)(batch.clone()))),
                _ => None,
            })
            .collect();
        for (next, sent) in group.into_iter().zip(sent) {
            match next {
                Next::Batch { batch, after } => {
                    let applied = match sent {
                        Some(task) => task.await.unwrap_or(Applied::Unreachable),
                        None => Applied::Unreachable,
                    };
                    self.settle(&batch, applied).await?;
                    self.spool.advance(after, Some(&batch));
                }
                Next::Skipped { events, after } => {
                    tracing::warn!(events, "skipped a damaged spool record");
                    self.metrics.spool_corrupt_records.inc();
                    self.metrics.count_outcome(
                        "spool",
                        "invalid",
                        "spool_corrupt",
                        u64::from(events),
                    );
                    self.spool.advance(after, None);
                }
                Next::Drained => {}
            }
        }
        Ok(())
    }

    /// What to do with a batch after its first try: done, given up on, or tried again alone.
    async fn settle(&self, batch: &SpooledBatch, applied: Applied) -> Result<(), Unreachable> {
        match applied {
            Applied::Written => {
                self.spool.mark_database_up();
                Ok(())
            }
            Applied::Unreachable => Err(Unreachable),
            _ => self.apply(batch).await,
        }
    }

    async fn publish_watermark(&self) -> Result<(), Unreachable> {
        let Some(oldest) = self.spool.oldest_pending() else {
            self.metrics.spool_replay_lag.set(0.0);
            return Ok(());
        };
        let lag = (chrono::Utc::now() - oldest).num_milliseconds().max(0) as f64 / 1000.0;
        self.metrics.spool_replay_lag.set(lag);
        watermarks::publish(&self.pool, self.holder, oldest)
            .await
            .map_err(|error| {
                tracing::debug!(%error, "the database does not answer yet");
                Unreachable
            })
    }

    /// Writes one batch; skips it (counted) when the database keeps refusing it.
    async fn apply(&self, spooled: &SpooledBatch) -> Result<(), Unreachable> {
        let mut refusals = 0;
        loop {
            match (self.write)(spooled.clone()).await {
                Applied::Written => {
                    self.spool.mark_database_up();
                    return Ok(());
                }
                Applied::Unreachable => return Err(Unreachable),
                Applied::Busy => tokio::time::sleep(Duration::from_millis(50)).await,
                Applied::ProjectGone => {
                    self.count_dropped("project_deleted", spooled);
                    return Ok(());
                }
                Applied::Refused(reason) => {
                    refusals += 1;
                    if refusals >= MAX_REFUSALS {
                        tracing::error!(%reason, "the database refused a spooled batch; skipping it");
                        self.count_dropped("storage_rejected", spooled);
                        return Ok(());
                    }
                }
            }
        }
    }

    fn count_dropped(&self, reason: &str, spooled: &SpooledBatch) {
        let events = spooled.events.len() as u64;
        self.metrics
            .count_outcome("spool", "invalid", reason, events);
    }
}
