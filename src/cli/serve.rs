//! `seismo serve`: open (or start) the database, make sure a project exists, listen, and
//! serve until SIGINT/SIGTERM; then finish requests in flight, flush the writer, and stop
//! the embedded cluster if this process started it.

use anyhow::Context;
use tokio::net::TcpListener;

use super::{database, project};
use crate::app::App;
use crate::config::Config;
use crate::http;
use crate::store::projects::{self, Project};

pub async fn run(config: Config) -> anyhow::Result<()> {
    let database = database::open(&config).await?;
    let project = first_project(&database).await?;
    let listener = TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("cannot listen on {}", config.listen))?;
    tracing::info!(address = %listener.local_addr()?, "Seismo is listening");
    project::print_human(&project, &config);
    let (app, writer) = App::start(config, database.pool.clone());
    let served = http::serve(app, listener, shutdown_signal()).await;
    tracing::info!("shutting down: flushing the writer");
    writer.join().await;
    database.close().await;
    Ok(served?)
}

/// The first project, creating `default` on a fresh database so a newcomer has a DSN at once.
async fn first_project(database: &database::Database) -> anyhow::Result<Project> {
    if let Some(project) = projects::list(&database.pool).await?.into_iter().next() {
        return Ok(project);
    }
    let mut conn = database.pool.acquire().await?;
    let project = projects::create(&mut conn, "default", "Default", None).await?;
    tracing::info!(project = project.id, "created the default project");
    Ok(project)
}

async fn shutdown_signal() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = interrupt => {},
        _ = terminate => {},
    }
    tracing::info!("shutdown signal received");
}
