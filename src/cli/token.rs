//! `seismo token create <name>` prints a management API token, once; `seismo token list`
//! shows the tokens (never their text) with their last use; `seismo token revoke <id>` ends
//! one — also the way back in when the last admin token over the API is lost.

use clap::Subcommand;

use super::database;
use crate::config::Config;
use crate::http::api::tokens::TokenView;
use crate::store::tokens::{self, Scope, TokenInfo};

#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Create an API token and print it (it is stored hashed and cannot be shown again).
    Create {
        name: String,
        /// What it may do: read (GET), write (also change issues, incidents, rules), admin
        /// (also manage projects, keys and tokens).
        #[arg(long, default_value = "admin", value_parser = ["read", "write", "admin"])]
        scope: String,
        /// Print `{"token": "…"}`.
        #[arg(long)]
        json: bool,
    },
    /// List the API tokens: id, name, scope, created, last used, revoked.
    List {
        /// Print a JSON array of the tokens.
        #[arg(long)]
        json: bool,
    },
    /// Revoke an API token by id: requests with it are refused from now on.
    Revoke { id: i64 },
}

pub async fn run(config: Config, command: TokenCommand) -> anyhow::Result<()> {
    let database = database::open(&config).await?;
    let outcome = match command {
        TokenCommand::Create { name, scope, json } => {
            create(&database.pool, &name, &scope, json).await
        }
        TokenCommand::List { json } => list(&database.pool, json).await,
        TokenCommand::Revoke { id } => revoke(&database.pool, id).await,
    };
    database.close().await;
    outcome
}

async fn create(pool: &sqlx::PgPool, name: &str, scope: &str, json: bool) -> anyhow::Result<()> {
    let scope = Scope::parse(scope).ok_or_else(|| anyhow::anyhow!("unknown scope {scope:?}"))?;
    let created = tokens::create(pool, name, scope).await?;
    if json {
        println!("{}", serde_json::json!({ "token": created.token }));
    } else {
        println!("{}", created.token);
        eprintln!(
            "Store it now: Seismo keeps only its hash. Use it as: Authorization: Bearer <token>"
        );
    }
    Ok(())
}

async fn list(pool: &sqlx::PgPool, json: bool) -> anyhow::Result<()> {
    let tokens = tokens::list(pool).await?;
    if json {
        let views: Vec<TokenView> = tokens.iter().cloned().map(TokenView::from).collect();
        println!("{}", serde_json::to_string(&views)?);
        return Ok(());
    }
    println!("id\tname\tscope\tcreated\tlast used\trevoked");
    for token in &tokens {
        println!("{}", line(token));
    }
    Ok(())
}

fn line(token: &TokenInfo) -> String {
    let time = |at: Option<chrono::DateTime<chrono::Utc>>| {
        at.map_or_else(|| "-".to_string(), |at| at.to_rfc3339())
    };
    format!(
        "{}\t{}\t{}\t{}\t{}\t{}",
        token.id,
        token.name,
        token.scope,
        token.created_at.to_rfc3339(),
        time(token.last_used_at),
        time(token.revoked_at)
    )
}

async fn revoke(pool: &sqlx::PgPool, id: i64) -> anyhow::Result<()> {
    match tokens::revoke(pool, id).await? {
        Some(token) => {
            eprintln!("token {} ({}) is revoked", token.id, token.name);
            Ok(())
        }
        None => anyhow::bail!("no API token has id {id}"),
    }
}
