//! `seismo token create <name>`: prints a management API token, once.

use clap::Subcommand;

use super::database;
use crate::config::Config;
use crate::store::tokens::{self, Scope};

#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Create an API token and print it (it is stored hashed and cannot be shown again).
    Create {
        name: String,
        /// What it may do: read (GET), write (also change issues, incidents, rules), admin
        /// (also manage projects and keys).
        #[arg(long, default_value = "admin", value_parser = ["read", "write", "admin"])]
        scope: String,
        /// Print `{"token": "…"}`.
        #[arg(long)]
        json: bool,
    },
}

pub async fn run(config: Config, command: TokenCommand) -> anyhow::Result<()> {
    let TokenCommand::Create { name, scope, json } = command;
    let scope = Scope::parse(&scope).ok_or_else(|| anyhow::anyhow!("unknown scope {scope:?}"))?;
    let database = database::open(&config).await?;
    let created = tokens::create(&database.pool, &name, scope).await;
    database.close().await;
    let token = created?;
    if json {
        println!("{}", serde_json::json!({ "token": token }));
    } else {
        println!("{token}");
        eprintln!(
            "Store it now: Seismo keeps only its hash. Use it as: Authorization: Bearer <token>"
        );
    }
    Ok(())
}
