//! Lists answer `{"items": [...], "next_cursor": "…" | null}`. A cursor is opaque to clients:
//! base64url of where the page ended, so pages stay stable while new rows arrive.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde::Serialize;
use utoipa::ToSchema;

use crate::http::error::ApiError;

pub const DEFAULT_LIMIT: i64 = 25;
pub const MAX_LIMIT: i64 = 100;

#[derive(Serialize, ToSchema)]
pub struct Page<T> {
    pub items: Vec<T>,
    /// Pass as `cursor` for the next page; `null` on the last page.
    pub next_cursor: Option<String>,
}

pub fn limit(requested: Option<i64>) -> Result<i64, ApiError> {
    match requested {
        None => Ok(DEFAULT_LIMIT),
        Some(n) if (1..=MAX_LIMIT).contains(&n) => Ok(n),
        Some(n) => Err(ApiError::bad_request(format!(
            "limit {n} must be between 1 and {MAX_LIMIT}"
        ))),
    }
}

pub fn encode(text: &str) -> String {
    URL_SAFE_NO_PAD.encode(text)
}

pub fn decode(cursor: &str) -> Result<String, ApiError> {
    URL_SAFE_NO_PAD
        .decode(cursor)
        .ok()
        .and_then(|bytes| String::from_utf8(bytes).ok())
        .ok_or_else(|| ApiError::bad_request("cursor is not valid"))
}

/// The page, and the cursor after its last item when the page is full.
pub fn page<T>(items: Vec<T>, limit: i64, cursor_of: impl Fn(&T) -> String) -> Page<T> {
    let next_cursor = match items.last() {
        Some(last) if items.len() as i64 == limit => Some(encode(&cursor_of(last))),
        _ => None,
    };
    Page { items, next_cursor }
}

/// The id a page of newest-first rows continues before, from its cursor (none or empty:
/// the first page).
pub fn id_cursor(cursor: Option<&str>) -> Result<Option<i64>, ApiError> {
    cursor
        .filter(|c| !c.is_empty())
        .map(|c| {
            decode(c)?
                .parse::<i64>()
                .map_err(|_| ApiError::bad_request("cursor is not valid"))
        })
        .transpose()
}

/// A list filter that takes one of a few words: a clear 400 for any other.
pub fn one_of(field: &str, value: Option<&str>, allowed: &[&str]) -> Result<(), ApiError> {
    match value {
        Some(v) if !allowed.contains(&v) => Err(ApiError::bad_request(format!(
            "{field} {v:?} must be one of {}",
            allowed.join(", ")
        ))),
        _ => Ok(()),
    }
}
