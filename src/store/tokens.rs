//! Management API tokens. A token is shown once at creation; only its SHA-256 is stored, and
//! a presented token is looked up by its hash (an index probe, which does not leak timing
//! about any stored token's bytes).

use chrono::{DateTime, Utc};
use serde::Deserialize;
use sha2::{Digest, Sha256};
use sqlx::PgPool;

use super::StoreError;

/// Prefix that makes a leaked token recognizable to secret scanners.
const TOKEN_PREFIX: &str = "seismo_";

fn digest(token: &str) -> Vec<u8> {
    Sha256::digest(token.as_bytes()).to_vec()
}

/// What a token may do; each scope includes the ones before it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Deserialize)]
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
    pub const ALL: [Scope; 3] = [Scope::Read, Scope::Write, Scope::Admin];

    /// Every scope's name, as the API, the CLI and the database spell it.
    pub fn names() -> [&'static str; 3] {
        Scope::ALL.map(Scope::as_str)
    }

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

/// A token as it is listed: everything but the token itself, which is never stored.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct TokenInfo {
    pub id: i64,
    pub name: String,
    pub scope: String,
    pub created_at: DateTime<Utc>,
    pub last_used_at: Option<DateTime<Utc>>,
    pub revoked_at: Option<DateTime<Utc>>,
}

const TOKEN_COLUMNS: &str = "id, name, scope, created_at, last_used_at, revoked_at";

/// A new token: its row, and its text — the only time the text exists outside the caller.
#[derive(Debug, Clone)]
pub struct Created {
    pub info: TokenInfo,
    pub token: String,
}

pub async fn create(pool: &PgPool, name: &str, scope: Scope) -> Result<Created, StoreError> {
    let token = format!("{TOKEN_PREFIX}{}", hex::encode(rand::random::<[u8; 24]>()));
    let sql = format!(
        "INSERT INTO api_tokens (name, token_sha256, scope) VALUES ($1, $2, $3) \
         RETURNING {TOKEN_COLUMNS}"
    );
    let info = sqlx::query_as(&sql)
        .bind(name)
        .bind(digest(&token))
        .bind(scope.as_str())
        .fetch_one(pool)
        .await?;
    Ok(Created { info, token })
}

/// Every token, newest first, revoked ones included (they show when they were revoked).
pub async fn list(pool: &PgPool) -> Result<Vec<TokenInfo>, StoreError> {
    let sql = format!("SELECT {TOKEN_COLUMNS} FROM api_tokens ORDER BY id DESC");
    Ok(sqlx::query_as(&sql).fetch_all(pool).await?)
}

/// Revokes a token from now on; revoking a revoked token keeps its first revocation time.
pub async fn revoke(pool: &PgPool, id: i64) -> Result<Option<TokenInfo>, StoreError> {
    let sql = format!(
        "UPDATE api_tokens SET revoked_at = COALESCE(revoked_at, now()) WHERE id = $1 \
         RETURNING {TOKEN_COLUMNS}"
    );
    Ok(sqlx::query_as(&sql).bind(id).fetch_optional(pool).await?)
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
