//! `seismo serve`: open (or start) the database, make sure a project exists, listen — HTTP
//! (ingestion, API, health, metrics), OTLP/HTTP and OTLP/gRPC — run the detection,
//! delivery and retention loops, and serve until
//! SIGINT/SIGTERM; then finish requests in flight, flush the writer, and stop the embedded
//! cluster if this process started it.

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinSet;

use super::{database, project};
use crate::app::App;
use crate::config::Config;
use crate::deliver;
use crate::detect::worker::{Settings, Worker};
use crate::http::{self, grpc};
use crate::store::dictionaries::training;
use crate::store::projects::{self, Project};
use crate::store::{gauges, retention};

pub async fn run(config: Config) -> anyhow::Result<()> {
    let database = database::open(&config).await?;
    let project = first_project(&database).await?;
    let listeners = Listeners::bind(&config).await?;
    project::print_human(&project, &config);
    let (app, writer) = App::start(config, database.pool.clone()).await?;
    let (stop, stopped) = watch::channel(false);
    let detection = Worker::new(app.pool.clone(), app.metrics.clone(), Settings::default())
        .with_spool(app.spool.clone());
    let detection = tokio::spawn(detection.run(stopped.clone()));
    let delivery =
        deliver::worker::Worker::from_config(app.pool.clone(), app.metrics.clone(), &app.config)
            .context("cannot start delivery")?;
    let delivery = tokio::spawn(delivery.run(stopped.clone()));
    let retention = tokio::spawn(retention::run_periodically(
        app.pool.clone(),
        app.metrics.clone(),
        stopped.clone(),
    ));
    let gauges = tokio::spawn(gauges::run_periodically(
        app.pool.clone(),
        app.metrics.clone(),
        stopped.clone(),
    ));
    let mut loops = vec![
        ("detection", detection),
        ("delivery", delivery),
        ("retention", retention),
        ("gauges", gauges),
    ];
    if let Some(interval) = app.config.dictionary_check_interval {
        let training = tokio::spawn(training::run_periodically(
            app.pool.clone(),
            app.dictionaries.clone(),
            app.metrics.clone(),
            interval,
            stopped.clone(),
        ));
        loops.push(("dictionary training", training));
    }
    let servers = listeners.serve(app, &stopped);
    shutdown_signal().await;
    let _ = stop.send(true);
    let served = wait_for(servers).await;
    for (name, task) in loops {
        if let Err(error) = task.await {
            tracing::warn!(%error, "the {name} loop ended abnormally");
        }
    }
    tracing::info!("shutting down: flushing the writer");
    writer.join().await;
    database.close().await;
    served
}

struct Listeners {
    main: TcpListener,
    otlp_http: Option<TcpListener>,
    otlp_grpc: Option<TcpListener>,
    metrics: Option<TcpListener>,
}

impl Listeners {
    async fn bind(config: &Config) -> anyhow::Result<Listeners> {
        let main = bind("HTTP", config.listen).await?;
        let otlp_http = match config.otlp_http_listen {
            Some(address) => Some(bind("OTLP/HTTP", address).await?),
            None => None,
        };
        let otlp_grpc = match config.otlp_grpc_listen {
            Some(address) => Some(bind("OTLP/gRPC", address).await?),
            None => None,
        };
        let metrics = match config.metrics_listen {
            Some(address) => Some(bind("metrics", address).await?),
            None => None,
        };
        Ok(Listeners {
            main,
            otlp_http,
            otlp_grpc,
            metrics,
        })
    }

    fn serve(self, app: Arc<App>, stopped: &watch::Receiver<bool>) -> JoinSet<anyhow::Result<()>> {
        let mut servers = JoinSet::new();
        let timeouts = http::Timeouts::of(&app.config);
        servers.spawn(http_server(
            http::router(app.clone()),
            self.main,
            timeouts,
            stopped.clone(),
        ));
        if let Some(listener) = self.otlp_http {
            servers.spawn(http_server(
                http::otlp_router(app.clone()),
                listener,
                timeouts,
                stopped.clone(),
            ));
        }
        if let Some(listener) = self.metrics {
            servers.spawn(http_server(
                http::metrics_router(app.clone()),
                listener,
                timeouts,
                stopped.clone(),
            ));
        }
        if let Some(listener) = self.otlp_grpc {
            let stopped = stopped.clone();
            servers.spawn(
                async move { Ok(grpc::serve(app, listener, until_stopped(stopped)).await?) },
            );
        }
        servers
    }
}

async fn bind(what: &str, address: SocketAddr) -> anyhow::Result<TcpListener> {
    let listener = TcpListener::bind(address)
        .await
        .with_context(|| format!("cannot listen for {what} on {address}"))?;
    tracing::info!(address = %listener.local_addr()?, "listening for {what}");
    Ok(listener)
}

async fn http_server(
    router: axum::Router,
    listener: TcpListener,
    timeouts: http::Timeouts,
    stopped: watch::Receiver<bool>,
) -> anyhow::Result<()> {
    Ok(http::serve(router, listener, timeouts, until_stopped(stopped)).await?)
}

async fn until_stopped(mut stopped: watch::Receiver<bool>) {
    let _ = stopped.wait_for(|stop| *stop).await;
}

/// Waits for every server; the first failure is the command's.
async fn wait_for(mut servers: JoinSet<anyhow::Result<()>>) -> anyhow::Result<()> {
    let mut outcome = Ok(());
    while let Some(joined) = servers.join_next().await {
        let result = joined
            .map_err(anyhow::Error::from)
            .and_then(|served| served);
        if let (Err(error), true) = (result, outcome.is_ok()) {
            outcome = Err(error);
        }
    }
    outcome
}

/// The first project, creating `default` on a fresh database so a newcomer has a DSN at once.
async fn first_project(database: &database::Database) -> anyhow::Result<Project> {
    if let Some(project) = projects::list(&database.pool).await?.into_iter().next() {
        return Ok(project);
    }
    let mut conn = database.pool.acquire().await?;
    let project = projects::create(&mut conn, "default", "Default", None).await?;
    tracing::info!(project = project.id.get(), "created the default project");
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
