//! Ingestion keys → projects, cached so the hot path does not query PostgreSQL per request.
//! A revoked key keeps working for at most `POSITIVE_TTL` (none at all in the process that
//! revoked it: [`KeyCache::forget_project`]); an unknown key is re-checked after
//! `NEGATIVE_TTL`, so a key created a moment ago works almost at once. While PostgreSQL is
//! unreachable, a key this process has seen keeps working whatever its age: the spool
//! takes its events, and a refused SDK would lose them (Sentry SDKs drop an event answered
//! 503). So that this holds for a project that has been quiet since the process started,
//! every active key is cached at start ([`KeyCache::preload`]).
//!
//! Keys that work and unknown keys are kept apart, each under its own bound: a client
//! sending random keys fills and empties only the unknown ones, never a key that works.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use sqlx::PgPool;

use crate::model::ProjectId;
use crate::store::projects::{self, KeyGrant, KeyedGrant};
use crate::store::StoreError;

const POSITIVE_TTL: Duration = Duration::from_secs(30);
const NEGATIVE_TTL: Duration = Duration::from_secs(2);
/// Bounds memory: each map holds at most this many keys, and is emptied when full.
pub(super) const MAX_ENTRIES: usize = 10_000;

#[derive(Default)]
pub struct KeyCache {
    entries: Mutex<Entries>,
}

/// What the cache knows of each key it has looked up, and when it learnt it.
#[derive(Default)]
struct Entries {
    known: HashMap<String, (Instant, KeyGrant)>,
    unknown: HashMap<String, Instant>,
}

impl Entries {
    /// Records what a lookup found for `key`, replacing what was known of it before.
    fn remember(&mut self, key: String, grant: Option<KeyGrant>, at: Instant) {
        match grant {
            Some(grant) => {
                self.unknown.remove(&key);
                insert_bounded(&mut self.known, key, (at, grant));
            }
            None => {
                self.known.remove(&key);
                insert_bounded(&mut self.unknown, key, at);
            }
        }
    }
}

/// Inserts into a map that is emptied once it holds [`MAX_ENTRIES`] keys: one clear per
/// `MAX_ENTRIES` insertions, so a flood costs no more per key than a trickle.
fn insert_bounded<V>(map: &mut HashMap<String, V>, key: String, value: V) {
    if map.len() >= MAX_ENTRIES && !map.contains_key(&key) {
        map.clear();
    }
    map.insert(key, value);
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
            entries.remember(key.to_owned(), grant.clone(), Instant::now());
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
            entries.remember(public_key, Some(grant), now);
        }
    }

    /// Drops the cached grants of a project's keys, so a change to the project or its keys
    /// (deleted, revoked, a new quota) applies to this process's next request; other
    /// processes see it within `POSITIVE_TTL`.
    pub fn forget_project(&self, project_id: ProjectId) {
        if let Ok(mut entries) = self.entries.lock() {
            entries
                .known
                .retain(|_, (_, grant)| grant.project_id != project_id);
        }
    }

    /// The grant last seen for the key, however old.
    fn last_known(&self, key: &str) -> Option<KeyGrant> {
        let entries = self.entries.lock().ok()?;
        entries.known.get(key).map(|(_, grant)| grant.clone())
    }

    fn cached(&self, key: &str) -> Option<Option<KeyGrant>> {
        let entries = self.entries.lock().ok()?;
        if let Some((at, grant)) = entries.known.get(key) {
            return (at.elapsed() < POSITIVE_TTL).then(|| Some(grant.clone()));
        }
        let at = entries.unknown.get(key)?;
        (at.elapsed() < NEGATIVE_TTL).then_some(None)
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
        for n in 0..2 * MAX_ENTRIES + 1 {
            entries.remember(format!("random-{n}"), None, Instant::now());
        }
        assert!(entries.unknown.len() <= MAX_ENTRIES);
        assert!(entries
            .unknown
            .contains_key(&format!("random-{}", 2 * MAX_ENTRIES)));
        assert_eq!(
            entries.known.get("good").map(|e| e.1.clone()),
            Some(grant(1))
        );
    }

    #[test]
    fn a_key_found_unknown_forgets_the_grant_it_had() {
        // A revoked key: during an outage it must not work on the strength of its old grant.
        let cache = KeyCache::default();
        cache.preload(vec![keyed("revoked", 1)]);
        cache
            .entries
            .lock()
            .expect("lock")
            .remember("revoked".into(), None, Instant::now());
        assert_eq!(cache.cached("revoked"), Some(None));
        assert_eq!(cache.last_known("revoked"), None);
    }
}
