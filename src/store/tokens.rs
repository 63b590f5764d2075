//! Management API tokens. A token is shown once at creation; only its SHA-256 is stored, and
//! a presented token is looked up by its hash (an index probe, which does not leak timing
//! about any stored token's bytes).

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use sqlx::PgPool;

use super::StoreError;

/// Prefix that makes a leaked token recognizable to secret scanners.
const TOKEN_PREFIX: &str = "seismo_";

fn digest(token: &str) -> Vec<u8> {
    Sha256::digest(token.as_bytes()).to_vec()
}

/// What a token may do; each scope includes the ones before it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Scope {
    /// Read anything (GET).
    Read,
    /// Also change issues, incidents, rules.
    Write,
    /// Also manage projects and their ingestion keys.
    Admin,
}

impl Scope {
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Read => "read",
            Scope::Write => "write",
            Scope::Admin => "admin",
        }
    }

    pub fn parse(text: &str) -> Option<Scope> {
        match text {
            "read" => Some(Scope::Read),
            "write" => Some(Scope::Write),
            "admin" => Some(Scope::Admin),
            _ => None,
        }
    }
}

/// An active token, as a request presents it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Grant {
    pub id: i64,
    pub scope: Scope,
}

/// Creates a token and returns its text: the only time it exists outside the caller.
pub async fn create(pool: &PgPool, name: &str, scope: Scope) -> Result<String, StoreError> {
    let token = format!("{TOKEN_PREFIX}{}", hex::encode(rand::random::<[u8; 24]>()));
    sqlx::query("INSERT INTO api_tokens (name, token_sha256, scope) VALUES ($1, $2, $3)")
        .bind(name)
        .bind(digest(&token))
        .bind(scope.as_str())
        .execute(pool)
        .await?;
    Ok(token)
}

/// The active token with this text, recording its use.
pub async fn verify(pool: &PgPool, token: &str) -> Result<Option<Grant>, StoreError> {
    let row: Option<(i64, String)> = sqlx::query_as(
        "UPDATE api_tokens SET last_used_at = now() \
         WHERE token_sha256 = $1 AND revoked_at IS NULL RETURNING id, scope",
    )
    .bind(digest(token))
    .fetch_optional(pool)
    .await?;
    Ok(row.and_then(|(id, scope)| {
        Some(Grant {
            id,
            scope: Scope::parse(&scope)?,
        })
    }))
}
