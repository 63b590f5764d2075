//! Ingestion keys → projects, cached so the hot path does not query PostgreSQL per request.
//! A revoked key keeps working for at most `POSITIVE_TTL` (none at all in the process that
//! revoked it: [`KeyCache::forget_project`]); an unknown key is re-checked after
//! `NEGATIVE_TTL`, so a key created a moment ago works almost at once. While PostgreSQL is
//! unreachable, a key this process has seen keeps working whatever its age: the spool
//! takes its events, and a refused SDK would lose them.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use sqlx::PgPool;

use crate::model::ProjectId;
use crate::store::projects::{self, KeyGrant};
use crate::store::StoreError;

const POSITIVE_TTL: Duration = Duration::from_secs(30);
const NEGATIVE_TTL: Duration = Duration::from_secs(2);
/// Bounds memory when clients send many random keys.
const MAX_ENTRIES: usize = 10_000;

#[derive(Default)]
pub struct KeyCache {
    entries: Mutex<HashMap<String, (Instant, Option<KeyGrant>)>>,
}

impl KeyCache {
    pub async fn lookup(&self, pool: &PgPool, key: &str) -> Result<Option<KeyGrant>, StoreError> {
        if let Some(grant) = self.cached(key) {
            return Ok(grant);
        }
        let grant = match projects::grant_for_key(pool, key).await {
            Ok(grant) => grant,
            Err(error) if error.is_unavailable() => match self.last_known(key) {
                Some(grant) => return Ok(Some(grant)),
                None => return Err(error),
            },
            Err(error) => return Err(error),
        };
        if let Ok(mut entries) = self.entries.lock() {
            if entries.len() >= MAX_ENTRIES {
                entries.clear();
            }
            entries.insert(key.to_owned(), (Instant::now(), grant.clone()));
        }
        Ok(grant)
    }

    /// Drops the cached grants of a project's keys, so a change to the project or its keys
    /// (deleted, revoked, a new quota) applies to this process's next request; other
    /// processes see it within `POSITIVE_TTL`.
    pub fn forget_project(&self, project_id: ProjectId) {
        if let Ok(mut entries) = self.entries.lock() {
            entries
                .retain(|_, (_, grant)| grant.as_ref().is_none_or(|g| g.project_id != project_id));
        }
    }

    /// The grant last seen for the key, however old.
    fn last_known(&self, key: &str) -> Option<KeyGrant> {
        let entries = self.entries.lock().ok()?;
        entries.get(key)?.1.clone()
    }

    fn cached(&self, key: &str) -> Option<Option<KeyGrant>> {
        let entries = self.entries.lock().ok()?;
        let (at, grant) = entries.get(key)?;
        let ttl = if grant.is_some() {
            POSITIVE_TTL
        } else {
            NEGATIVE_TTL
        };
        (at.elapsed() < ttl).then(|| grant.clone())
    }
}
