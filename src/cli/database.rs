//! Opening the database for a command: the configured URL, or the embedded cluster under
//! `<data_dir>/pg`. Either way the schema is migrated before the command runs.

use std::path::PathBuf;

use anyhow::Context;
use sqlx::PgPool;

use crate::config::Config;
use crate::pg_runner::EmbeddedPostgres;
use crate::store;

/// The embedded cluster's database.
const EMBEDDED_DATABASE: &str = "seismo";
/// Connections per process: the writer's few plus the API's.
const POOL_SIZE: u32 = 16;

pub struct Database {
    pub pool: PgPool,
    embedded: Option<EmbeddedPostgres>,
}

pub async fn open(config: &Config) -> anyhow::Result<Database> {
    let (url, embedded) = match &config.database_url {
        Some(url) => (url.expose().to_owned(), None),
        None => {
            let cluster = start_embedded(config).await?;
            (cluster.url(EMBEDDED_DATABASE), Some(cluster))
        }
    };
    let pool = store::connect(&url, POOL_SIZE)
        .await
        .context("cannot connect to PostgreSQL")?;
    store::migrate(&pool)
        .await
        .context("cannot migrate the database")?;
    Ok(Database { pool, embedded })
}

async fn start_embedded(config: &Config) -> anyhow::Result<EmbeddedPostgres> {
    let dir = absolute(config.data_dir.join("pg"))?;
    tracing::info!(data_dir = %dir.display(), "no database URL configured: running embedded PostgreSQL");
    let cluster = EmbeddedPostgres::start(&dir).await?;
    let admin = store::connect(&cluster.url("postgres"), 1).await?;
    store::create_database_if_missing(&admin, EMBEDDED_DATABASE).await?;
    admin.close().await;
    Ok(cluster)
}

fn absolute(path: PathBuf) -> anyhow::Result<PathBuf> {
    if path.is_absolute() {
        return Ok(path);
    }
    Ok(std::env::current_dir()?.join(path))
}

impl Database {
    /// Closes the pool and stops the embedded cluster, if this command started it.
    pub async fn close(self) {
        self.pool.close().await;
        if let Some(mut cluster) = self.embedded {
            if let Err(error) = cluster.stop().await {
                tracing::warn!(%error, "embedded PostgreSQL did not stop cleanly");
            }
        }
    }
}
