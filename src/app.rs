//! `App`: everything one Seismo process shares — config, database pool, metrics, the
//! ingestion service, its writer and its spool. Built once by `seismo serve` (and by tests).

use std::sync::Arc;

use sqlx::PgPool;

use crate::config::Config;
use crate::ingest::Ingest;
use crate::metrics::Metrics;
use crate::store::dictionaries::Dictionaries;
use crate::store::spool::{Spool, SpoolError};
use crate::store::writer::{Writer, WriterSettings, WriterTasks, REPLAN_EVERY};

pub struct App {
    pub config: Config,
    pub pool: PgPool,
    pub metrics: Arc<Metrics>,
    pub ingest: Ingest,
    /// Each project's newest event compression dictionary (ingestion compresses with it).
    pub dictionaries: Dictionaries,
    /// Where acknowledged events wait while PostgreSQL is unreachable (none when `off`).
    pub spool: Option<Spool>,
}

impl App {
    /// Opens the spool, starts the writer (and the spool's replayer), caches the ingestion
    /// keys and returns the app with the writer's tasks. Drop every `App` clone, then join
    /// the tasks, to flush the last batches.
    pub async fn start(
        config: Config,
        pool: PgPool,
    ) -> Result<(Arc<App>, WriterTasks), SpoolError> {
        let metrics = Arc::new(Metrics::new());
        let spool = config
            .spool_dir
            .as_deref()
            .map(|dir| Spool::open(dir, config.spool_max_bytes, metrics.clone()))
            .transpose()?;
        let settings = WriterSettings {
            queue_capacity: config.writer_queue_capacity,
            batch_size: config.writer_batch_size,
            concurrency: config.writer_concurrency,
            spool_after: config.spool_after,
            replan_every: REPLAN_EVERY,
        };
        let (writer, tasks) = Writer::start(&pool, settings, metrics.clone(), spool.clone());
        let dictionaries = Dictionaries::new(config.dictionary_max_projects);
        let app = App {
            ingest: Ingest::new(pool.clone(), writer, metrics.clone(), dictionaries.clone()),
            dictionaries,
            config,
            pool,
            metrics,
            spool,
        };
        match app.ingest.preload_keys().await {
            Ok(keys) => tracing::debug!(keys, "ingestion keys cached"),
            Err(error) => tracing::warn!(
                %error,
                "could not cache the ingestion keys; each is looked up when first used"
            ),
        }
        Ok((Arc::new(app), tasks))
    }
}
