//! Ingestion keys → projects, cached so the hot path does not query PostgreSQL per request.
//! A revoked key keeps working for at most `POSITIVE_TTL` (none at all in the process that
//! revoked it: [`KeyCache::forget_project`]); an unknown key is re-checked after
//! `NEGATIVE_TTL`, so a key created a moment ago works almost at once. While PostgreSQL is
//! unreachable, a key this process has seen keeps working whatever its age: the spool
//! takes its events, and a refused SDK would lose them (Sentry SDKs drop an event answered
//! 503). So that this holds for a project that has been quiet since the process started,
//! every active key is cached at start ([`KeyCache::preload`]); and a flood of unknown keys
//! makes room by dropping unknown keys first, never a key that works.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use sqlx::PgPool;

use crate::model::ProjectId;
use crate::store::projects::{self, KeyGrant, KeyedGrant};
use crate::store::StoreError;

const POSITIVE_TTL: Duration = Duration::from_secs(30);
const NEGATIVE_TTL: Duration = Duration::from_secs(2);
/// Bounds memory when clients send many random keys.
pub(super) const MAX_ENTRIES: usize = 10_000;

type Entries = HashMap<String, (Instant, Option<KeyGrant>)>;

#[derive(Default)]
pub struct KeyCache {
    entries: Mutex<Entries>,
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
            make_room(&mut entries);
            entries.insert(key.to_owned(), (Instant::now(), grant.clone()));
        }
        Ok(grant)
    }

    /// Caches the grants of the given keys (every active key, at start).
    pub fn preload(&self, grants: Vec<KeyedGrant>) {
        let Ok(mut entries) = self.entries.lock() else {
            return;
        };
        let now = Instant::now();
        for KeyedGrant { public_key, grant } in grants {
            make_room(&mut entries);
            entries.insert(public_key, (now, Some(grant)));
        }
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

/// Keeps the cache under [`MAX_ENTRIES`]: unknown keys go first (a client sending random
/// keys makes only those), and everything only if working keys alone fill it.
fn make_room(entries: &mut Entries) {
    if entries.len() < MAX_ENTRIES {
        return;
    }
    entries.retain(|_, (_, grant)| grant.is_some());
    if entries.len() >= MAX_ENTRIES {
        entries.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sqlx::types::Json;

    fn grant(project: i64) -> KeyGrant {
        KeyGrant {
            project_id: ProjectId(project),
            rate_limit_per_minute: None,
            key_id: project,
            key_rate_limit_per_minute: None,
            scrub: Json(crate::scrub::Settings::default()),
        }
    }

    fn keyed(key: &str, project: i64) -> KeyedGrant {
        KeyedGrant {
            public_key: key.to_owned(),
            grant: grant(project),
        }
    }

    #[test]
    fn preloaded_keys_are_answered_from_the_cache() {
        let cache = KeyCache::default();
        cache.preload(vec![keyed("k1", 7)]);
        assert_eq!(cache.cached("k1"), Some(Some(grant(7))));
        assert_eq!(cache.last_known("k1"), Some(grant(7)));
        assert_eq!(cache.cached("k2"), None);
    }

    #[test]
    fn a_flood_of_unknown_keys_does_not_evict_the_working_ones() {
        let cache = KeyCache::default();
        cache.preload(vec![keyed("good", 1)]);
        let mut entries = cache.entries.lock().expect("lock");
        for n in 0..2 * MAX_ENTRIES {
            make_room(&mut entries);
            entries.insert(format!("random-{n}"), (Instant::now(), None));
        }
        assert!(entries.len() <= MAX_ENTRIES);
        assert_eq!(
            entries.get("good").map(|e| e.1.clone()),
            Some(Some(grant(1)))
        );
    }
}
