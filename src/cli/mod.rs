//! The `seismo` command line: `serve`, `migrate`, `project create`, `token create`,
//! `endpoint add|list|remove`, `send-test`, `check`, `eval`. Each command loads the config, opens the database (the
//! embedded cluster when no URL is configured) and calls the library; `send-test`, `check`
//! and `eval` need no database and run before the config is loaded.

mod check;
mod database;
mod endpoint;
mod eval;
pub(crate) mod project;
mod send_test;
mod serve;
mod token;

use std::path::PathBuf;

use clap::{Parser, Subcommand};

use crate::config::{Config, Sources};

#[derive(Debug, Parser)]
#[command(
    name = "seismo",
    version,
    about = "Self-hosted error tracking, anomaly detection and automated recovery"
)]
pub struct Cli {
    /// A TOML file with the same keys as the SEISMO_* variables (lower case, no prefix).
    #[arg(long, global = true, env = "SEISMO_CONFIG")]
    pub config: Option<PathBuf>,
    /// PostgreSQL URL; without one, an embedded cluster runs under ./seismo-data/pg.
    #[arg(long, global = true)]
    pub database_url: Option<String>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the server: ingestion, API, health and metrics.
    Serve,
    /// Apply database migrations and exit.
    Migrate,
    /// Manage projects.
    #[command(subcommand)]
    Project(project::ProjectCommand),
    /// Manage API tokens.
    #[command(subcommand)]
    Token(token::TokenCommand),
    /// Manage where incidents are delivered: recovery hooks, webhooks, email.
    #[command(subcommand)]
    Endpoint(endpoint::EndpointCommand),
    /// Send a test error event to a DSN through the Sentry protocol and report the answer.
    SendTest {
        /// The DSN, e.g. http://KEY@127.0.0.1:8000/1
        dsn: String,
        /// The message of the test error.
        #[arg(long, default_value = "This is a test error sent by seismo send-test")]
        message: String,
    },
    /// Check the configuration, the database and the SMTP server.
    Check,
    /// Replay the detector offline and score it (NAB, a recorded CSV, synthetic streams).
    #[command(subcommand)]
    Eval(eval::EvalCommand),
}

pub async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::SendTest { dsn, message } => send_test::run(&dsn, &message).await,
        Command::Check => check::run(cli.config.as_deref(), cli.database_url).await,
        Command::Eval(command) => eval::run(command),
        command => {
            let config = load_config(cli.config.as_deref(), cli.database_url)?;
            let telemetry = crate::telemetry::init(&config.log, config.log_format)?;
            let result = match command {
                Command::Serve => serve::run(config).await,
                Command::Migrate => migrate(config).await,
                Command::Project(command) => project::run(config, command).await,
                Command::Token(command) => token::run(config, command).await,
                Command::Endpoint(command) => endpoint::run(config, command).await,
                Command::SendTest { .. } | Command::Check | Command::Eval(_) => {
                    unreachable!("handled above")
                }
            };
            // Flushing waits for the exporter (its own thread and blocking client).
            let _ = tokio::task::spawn_blocking(move || telemetry.shutdown()).await;
            result
        }
    }
}

pub(crate) fn load_config(
    file: Option<&std::path::Path>,
    database_url: Option<String>,
) -> anyhow::Result<Config> {
    let mut sources = Sources::load(file)?;
    if let Some(url) = database_url {
        sources.set("database_url", url);
    }
    Ok(Config::from_sources(&sources)?)
}

async fn migrate(config: Config) -> anyhow::Result<()> {
    let database = database::open(&config).await?;
    println!("migrations applied");
    database.close().await;
    Ok(())
}
