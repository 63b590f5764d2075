//! `seismo endpoint add|list|remove`: the endpoints incidents are delivered to, from the
//! command line, checked exactly as the API checks them (`deliver::endpoint_spec`). The
//! signing secret is printed once, by `add`.

use clap::Subcommand;

use super::database;
use crate::config::Config;
use crate::deliver::endpoint_spec::{self, Spec};
use crate::deliver::ssrf::Guard;
use crate::model::{Kind, ProjectId};
use crate::store::endpoints::{self, Endpoint, EndpointFilter};
use crate::store::projects;

#[derive(Debug, Subcommand)]
pub enum EndpointCommand {
    /// Add an endpoint: `recovery` (with --url and --action), `webhook` (with --url) or
    /// `email` (with --address).
    Add(Box<AddArgs>),
    /// List the endpoints (never their secrets).
    List {
        #[arg(long)]
        project: Option<i64>,
        #[arg(long)]
        json: bool,
    },
    /// Remove an endpoint with its deliveries.
    Remove { id: i64 },
}

#[derive(Debug, clap::Args)]
pub struct AddArgs {
    #[arg(value_parser = ["recovery", "webhook", "email"])]
    kind: String,
    /// The project (default: the first one).
    #[arg(long)]
    project: Option<i64>,
    #[arg(long)]
    url: Option<String>,
    /// restart, rollback, scale or custom:<name>.
    #[arg(long)]
    action: Option<String>,
    /// A `whsec_…` secret; one is generated when absent.
    #[arg(long)]
    secret: Option<String>,
    /// Recovery: only incidents of this kind (repeatable).
    #[arg(long = "incident-kind")]
    incident_kinds: Vec<String>,
    /// Recovery: only this service (repeatable).
    #[arg(long = "service")]
    services: Vec<String>,
    /// Recovery: the place in the chain, lowest first.
    #[arg(long)]
    order: Option<i32>,
    #[arg(long)]
    cooldown_minutes: Option<i32>,
    /// Webhook: only this topic (repeatable).
    #[arg(long = "event")]
    events: Vec<String>,
    /// Email: a recipient (repeatable).
    #[arg(long = "address")]
    addresses: Vec<String>,
    /// Print the endpoint (with its secret) as JSON.
    #[arg(long)]
    json: bool,
}

pub async fn run(config: Config, command: EndpointCommand) -> anyhow::Result<()> {
    let database = database::open(&config).await?;
    let outcome = match command {
        EndpointCommand::List { project, json } => list(&database.pool, project, json).await,
        EndpointCommand::Remove { id } => remove(&database.pool, id).await,
        EndpointCommand::Add(add) => add_endpoint(&database.pool, &config, *add).await,
    };
    database.close().await;
    outcome
}

async fn add_endpoint(pool: &sqlx::PgPool, config: &Config, add: AddArgs) -> anyhow::Result<()> {
    let AddArgs {
        kind,
        project,
        url,
        action,
        secret,
        incident_kinds,
        services,
        order,
        cooldown_minutes,
        events,
        addresses,
        json,
    } = add;
    let project_id = match project.map(ProjectId) {
        Some(id) => id,
        None => projects::list(pool)
            .await?
            .first()
            .map(|p| p.id)
            .ok_or_else(|| {
                anyhow::anyhow!("there is no project yet: seismo project create <slug>")
            })?,
    };
    if !projects::exists(pool, project_id).await? {
        anyhow::bail!("project {project_id} does not exist");
    }
    let spec = Spec {
        project_id,
        kind,
        url,
        secret,
        action,
        incident_kinds,
        services,
        order,
        cooldown_minutes,
        events,
        addresses,
    };
    let guard = Guard::new(&config.webhook_allow_cidrs)?;
    let new = endpoint_spec::validate(spec, &guard, &Kind::names()).await?;
    let endpoint = endpoints::create(pool, &new).await?;
    if json {
        let mut shown = serde_json::to_value(&endpoint)?;
        shown["secret"] = serde_json::json!(new.secret);
        println!("{shown}");
        return Ok(());
    }
    println!("{}", line(&endpoint));
    if let Some(secret) = new.secret {
        println!("secret: {secret}");
        eprintln!("Store the secret now: it is not shown again. Receivers verify webhook-signature with it.");
    }
    Ok(())
}

async fn list(pool: &sqlx::PgPool, project: Option<i64>, json: bool) -> anyhow::Result<()> {
    let filter = EndpointFilter {
        project_id: project.map(ProjectId),
        limit: i64::MAX,
        ..EndpointFilter::default()
    };
    let found = endpoints::list(pool, &filter).await?;
    if json {
        println!("{}", serde_json::to_string(&found)?);
        return Ok(());
    }
    println!("id\tproject\tkind\ttarget\taction\torder\tenabled");
    for endpoint in &found {
        println!("{}", line(endpoint));
    }
    Ok(())
}

fn line(endpoint: &Endpoint) -> String {
    let target = endpoint
        .url
        .clone()
        .unwrap_or_else(|| endpoint.addresses.join(","));
    format!(
        "{}\t{}\t{}\t{}\t{}\t{}\t{}",
        endpoint.id,
        endpoint.project_id,
        endpoint.kind,
        target,
        endpoint.action.as_deref().unwrap_or("-"),
        endpoint.order,
        endpoint.enabled
    )
}

async fn remove(pool: &sqlx::PgPool, id: i64) -> anyhow::Result<()> {
    match endpoints::delete(pool, id).await? {
        true => {
            eprintln!("endpoint {id} is removed");
            Ok(())
        }
        false => anyhow::bail!("no endpoint has id {id}"),
    }
}
