//! `seismo project create <slug>`: prints the DSN and the OTLP key (or the project as JSON).

use clap::Subcommand;

use super::database;
use crate::config::Config;
use crate::http::api::projects::ProjectSummary;
use crate::store::projects::{self, Project};

#[derive(Debug, Subcommand)]
pub enum ProjectCommand {
    /// Create a project and print its DSN and OTLP key.
    Create {
        /// Lower-case letters, digits, `-` and `_`, e.g. `checkout`.
        slug: String,
        /// A display name (defaults to the slug).
        #[arg(long)]
        name: Option<String>,
        /// Events accepted per minute before ingestion answers 429 (default: no quota).
        #[arg(long)]
        rate_limit: Option<u32>,
        /// Days its events are kept (whole days are dropped after that).
        #[arg(long, default_value_t = 90, value_parser = clap::value_parser!(i32).range(1..=3650))]
        retention_days: i32,
        /// Most events stored; beyond it busy issues are thinned (counts stay exact).
        #[arg(long, value_parser = clap::value_parser!(i64).range(1..))]
        max_events: Option<i64>,
        /// Print the project as JSON.
        #[arg(long)]
        json: bool,
    },
}

pub async fn run(config: Config, command: ProjectCommand) -> anyhow::Result<()> {
    let ProjectCommand::Create {
        slug,
        name,
        rate_limit,
        retention_days,
        max_events,
        json,
    } = command;
    let rate_limit = rate_limit.map(i32::try_from).transpose()?;
    let database = database::open(&config).await?;
    // One transaction: a project never exists without the retention it was created with.
    let created = projects::create_with_retention(
        &database.pool,
        &slug,
        name.as_deref().unwrap_or(&slug),
        rate_limit,
        retention_days,
        max_events,
    )
    .await;
    database.close().await;
    let project = created?;
    if json {
        let summary = ProjectSummary::new(&project, &config.public_url);
        println!("{}", serde_json::to_string(&summary)?);
    } else {
        print_human(&project, &config);
    }
    Ok(())
}

/// The project as DESIGN.md §3.5 shows it, in the words of a person.
pub fn print_human(project: &Project, config: &Config) {
    let summary = ProjectSummary::new(project, &config.public_url);
    println!("project {} (id {})", summary.slug, summary.id);
    if let Some(dsn) = &summary.dsn {
        println!("  DSN:      {dsn}");
    }
    if let Some(key) = &summary.otlp_key {
        println!("  OTLP key: {key}   (OTEL_EXPORTER_OTLP_HEADERS=x-seismo-key={key})");
    }
}
