//! `App`: everything one Seismo process shares — config, database pool, metrics, the
//! ingestion service and its writer. Built once by `seismo serve` (and by tests).

use std::sync::Arc;

use sqlx::PgPool;

use crate::config::Config;
use crate::ingest::Ingest;
use crate::metrics::Metrics;
use crate::store::writer::{Writer, WriterSettings, WriterTasks};

pub struct App {
    pub config: Config,
    pub pool: PgPool,
    pub metrics: Arc<Metrics>,
    pub ingest: Ingest,
}

impl App {
    /// Starts the writer and returns the app with the writer's tasks. Drop every `App`
    /// clone, then join the tasks, to flush the last batches.
    pub fn start(config: Config, pool: PgPool) -> (Arc<App>, WriterTasks) {
        let metrics = Arc::new(Metrics::new());
        let settings = WriterSettings {
            queue_capacity: config.writer_queue_capacity,
            batch_size: config.writer_batch_size,
            concurrency: config.writer_concurrency,
        };
        let (writer, tasks) = Writer::start(&pool, settings, metrics.clone());
        let app = App {
            ingest: Ingest::new(pool.clone(), writer, metrics.clone()),
            config,
            pool,
            metrics,
        };
        (Arc::new(app), tasks)
    }
}
