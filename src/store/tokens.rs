//! Management API tokens. A token is shown once at creation; only its SHA-256 is stored, and
//! a presented token is looked up by its hash (an index probe, which does not leak timing
//! about any stored token's bytes).

use sha2::{Digest, Sha256};
use sqlx::PgPool;

use super::StoreError;

/// Prefix that makes a leaked token recognizable to secret scanners.
const TOKEN_PREFIX: &str = "seismo_";

fn digest(token: &str) -> Vec<u8> {
    Sha256::digest(token.as_bytes()).to_vec()
}

/// Creates a token and returns its text: the only time it exists outside the caller.
pub async fn create(pool: &PgPool, name: &str) -> Result<String, StoreError> {
    let token = format!("{TOKEN_PREFIX}{}", hex::encode(rand::random::<[u8; 24]>()));
    sqlx::query("INSERT INTO api_tokens (name, token_sha256) VALUES ($1, $2)")
        .bind(name)
        .bind(digest(&token))
        .execute(pool)
        .await?;
    Ok(token)
}

/// The id of the active token with this text, recording its use.
pub async fn verify(pool: &PgPool, token: &str) -> Result<Option<i64>, StoreError> {
    Ok(sqlx::query_scalar(
        "UPDATE api_tokens SET last_used_at = now() \
         WHERE token_sha256 = $1 AND revoked_at IS NULL RETURNING id",
    )
    .bind(digest(token))
    .fetch_optional(pool)
    .await?)
}
