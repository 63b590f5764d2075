//! Per-project zstd dictionaries for the stored event documents.
//!
//! One project's error events repeat themselves: the same SDK block, contexts, modules,
//! file names and frames. A dictionary trained on the project's own stored documents lets
//! zstd point into it instead of spelling all that out again in every row (the numbers are
//! in bench/README.md, "Trained dictionaries").
//!
//! How a dictionary flows:
//! 1. [`training`]: every check interval, one process at a time (an advisory lock) looks at
//!    each project that received events. One with enough events and no dictionary, or whose
//!    recent rows compress clearly worse than its dictionary did when trained, gets a new
//!    version trained from its latest documents. The version is kept only if it beats what
//!    those documents get now.
//! 2. `event_dictionaries` holds every version (migration 0031); a version never changes.
//! 3. [`Dictionaries`]: each process's cache of the newest version of the busiest projects
//!    (`SEISMO_DICTIONARY_MAX_PROJECTS`), refreshed on the same interval. Ingestion
//!    compresses with it, and the row records the version in `events.dictionary`.
//! 4. Reads (`store::events`) decompress each row with the version it names, loaded by
//!    [`load_for_reading`].
//! 5. Retention drops a version once its successor is older than anything the project
//!    keeps ([`forget_superseded`]).

pub mod training;

use std::collections::HashMap;
use std::sync::{Arc, PoisonError, RwLock};

use chrono::{DateTime, Utc};
use sqlx::PgPool;
use zstd::dict::{DecoderDictionary, EncoderDictionary};
use zstd::zstd_safe::CDict;

use super::StoreError;
use crate::model::ProjectId;

/// zstd level of the documents compressed with a dictionary. In process level 3 is no
/// slower and its documents a sixth smaller (bench/dictionary.rs), but in a running server
/// its larger prepared tables (hash log 16, chain log 15: 384 KiB) are cold by the time the
/// next event comes; level 1's (hash log 13: 32 KiB) stay warm. End to end level 1 costs
/// 4–5 % less CPU per event for 4 % more bytes on disk per event (bench/README.md).
pub const LEVEL: i32 = 1;
/// zstd level of the documents compressed without one (a project's first minutes, or
/// dictionaries off): there level 3 costs a seventh more CPU for 1 % fewer bytes.
pub const LEVEL_WITHOUT_DICTIONARY: i32 = 1;

/// One trained dictionary, prepared for compressing; `version` is what a row compressed
/// with it records (0 for one not saved yet).
pub struct Dictionary {
    pub version: i32,
    encoder: EncoderDictionary<'static>,
}

impl Dictionary {
    pub fn new(version: i32, bytes: &[u8]) -> Dictionary {
        Dictionary {
            version,
            encoder: EncoderDictionary::copy(bytes, LEVEL),
        }
    }

    pub(crate) fn cdict(&self) -> &CDict<'static> {
        self.encoder.as_cdict()
    }
}

impl std::fmt::Debug for Dictionary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dictionary")
            .field("version", &self.version)
            .finish_non_exhaustive()
    }
}

/// Each project's newest dictionary, shared by every request of this process, for at most
/// `max_projects` projects: the busiest of the last hour. Events of the others are
/// compressed without one. A prepared dictionary costs memory whatever the project's
/// volume, while the bytes it saves grow with the volume: so the busiest projects are
/// where a bounded budget saves the most disk.
#[derive(Clone)]
pub struct Dictionaries {
    newest: Arc<RwLock<HashMap<ProjectId, Arc<Dictionary>>>>,
    max_projects: usize,
}

impl Dictionaries {
    /// An empty cache that will hold the dictionaries of at most `max_projects` projects.
    pub fn new(max_projects: usize) -> Dictionaries {
        Dictionaries {
            newest: Arc::default(),
            max_projects,
        }
    }

    /// The dictionary new events of the project are compressed with, if it has one yet.
    pub fn newest(&self, project_id: ProjectId) -> Option<Arc<Dictionary>> {
        let newest = self.newest.read().unwrap_or_else(PoisonError::into_inner);
        newest.get(&project_id).cloned()
    }

    /// Loads the newest version of each of the `max_projects` projects with the most events
    /// in the last hour that this process does not hold yet (trained here or by another
    /// process), and forgets the others: a prepared dictionary takes about 430 KiB of memory
    /// (bench/dictionary.rs), so only the busiest projects in use keep one. Returns how many
    /// it loaded.
    pub async fn refresh(&self, pool: &PgPool) -> Result<usize, StoreError> {
        let latest = busiest_newest_versions(pool, self.max_projects).await?;
        let missing: Vec<(ProjectId, i32)> = {
            let newest = self.newest.read().unwrap_or_else(PoisonError::into_inner);
            latest
                .iter()
                .filter(|(project, version)| {
                    newest.get(project).map(|d| d.version) != Some(*version)
                })
                .copied()
                .collect()
        };
        let loaded = load(pool, &missing).await?;
        let count = loaded.len();
        let mut newest = self.newest.write().unwrap_or_else(PoisonError::into_inner);
        newest.retain(|project, _| latest.iter().any(|(p, _)| p == project));
        for (project_id, version, bytes) in loaded {
            newest.insert(project_id, Arc::new(Dictionary::new(version, &bytes)));
        }
        Ok(count)
    }
}

/// Dictionaries prepared for decompressing, by project and version.
pub type Decoders = HashMap<(ProjectId, i32), DecoderDictionary<'static>>;

/// The dictionaries the given rows were compressed with, prepared for decompressing.
pub async fn load_for_reading(
    pool: &PgPool,
    versions: &[(ProjectId, i32)],
) -> Result<Decoders, StoreError> {
    let mut unique = versions.to_vec();
    unique.sort_unstable();
    unique.dedup();
    Ok(load(pool, &unique)
        .await?
        .into_iter()
        .map(|(project, version, bytes)| ((project, version), DecoderDictionary::copy(&bytes)))
        .collect())
}

/// The dictionary a row names (`version`), from `decoders`; `None` for a row compressed
/// without one, an error when the version it names is gone.
pub fn decoder_for(
    decoders: &Decoders,
    project_id: ProjectId,
    version: Option<i32>,
) -> Result<Option<&DecoderDictionary<'static>>, StoreError> {
    let Some(version) = version else {
        return Ok(None);
    };
    decoders
        .get(&(project_id, version))
        .map(Some)
        .ok_or_else(|| {
            StoreError::Corrupt(format!(
                "dictionary version {version} of project {project_id} is missing"
            ))
        })
}

/// The newest version of each of the `limit` projects with a dictionary and the most
/// events in the last hour (ties by project id, so every process picks the same ones).
async fn busiest_newest_versions(
    pool: &PgPool,
    limit: usize,
) -> Result<Vec<(ProjectId, i32)>, StoreError> {
    Ok(sqlx::query_as(
        "SELECT d.project_id, max(d.version) FROM event_dictionaries d \
         JOIN (SELECT project_id, sum(events) AS events FROM minute_counts \
               WHERE scope = 'project' AND minute >= now() - interval '1 hour' \
               GROUP BY project_id) AS busy ON busy.project_id = d.project_id \
         GROUP BY d.project_id, busy.events \
         ORDER BY busy.events DESC, d.project_id LIMIT $1",
    )
    .bind(i64::try_from(limit).unwrap_or(i64::MAX))
    .fetch_all(pool)
    .await?)
}

async fn load(
    pool: &PgPool,
    versions: &[(ProjectId, i32)],
) -> Result<Vec<(ProjectId, i32, Vec<u8>)>, StoreError> {
    if versions.is_empty() {
        return Ok(Vec::new());
    }
    Ok(sqlx::query_as(
        "SELECT d.project_id, d.version, d.dictionary FROM event_dictionaries d \
         JOIN UNNEST($1::int8[], $2::int4[]) AS w (project_id, version) \
           ON w.project_id = d.project_id AND w.version = d.version",
    )
    .bind(versions.iter().map(|(p, _)| *p).collect::<Vec<_>>())
    .bind(versions.iter().map(|(_, v)| *v).collect::<Vec<_>>())
    .fetch_all(pool)
    .await?)
}

/// A project's newest version, as training judges it.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct VersionInfo {
    pub project_id: ProjectId,
    pub version: i32,
    pub ratio: f64,
    pub created_at: DateTime<Utc>,
}

/// Every project's newest version.
pub async fn newest_versions(pool: &PgPool) -> Result<Vec<VersionInfo>, StoreError> {
    Ok(sqlx::query_as(
        "SELECT DISTINCT ON (project_id) project_id, version, ratio, created_at \
         FROM event_dictionaries ORDER BY project_id, version DESC",
    )
    .fetch_all(pool)
    .await?)
}

/// Saves a newly trained dictionary as the project's next version; returns the version.
pub async fn insert_next(
    pool: &PgPool,
    project_id: ProjectId,
    dictionary: &[u8],
    ratio: f64,
    samples: i32,
) -> Result<i32, StoreError> {
    // Training runs under an advisory lock, so no two processes pick the same version;
    // the primary key would refuse it if they did.
    Ok(sqlx::query_scalar(
        "INSERT INTO event_dictionaries (project_id, version, dictionary, ratio, samples) \
         SELECT $1, coalesce(max(version), 0) + 1, $2, $3, $4 \
         FROM event_dictionaries WHERE project_id = $1 \
         RETURNING version",
    )
    .bind(project_id)
    .bind(dictionary)
    .bind(ratio)
    .bind(samples)
    .fetch_one(pool)
    .await?)
}

/// Drops the project's versions whose successor was trained more than a day before
/// `cutoff`, the oldest day of events the project keeps. Every event compressed with such
/// a version was received before its successor reached the ingesting processes (one check
/// interval later at most), so before `cutoff`: retention has removed them all.
pub async fn forget_superseded(
    pool: &PgPool,
    project_id: ProjectId,
    cutoff: chrono::NaiveDate,
) -> Result<u64, StoreError> {
    Ok(sqlx::query(
        "DELETE FROM event_dictionaries d WHERE d.project_id = $1 AND EXISTS ( \
           SELECT 1 FROM event_dictionaries n WHERE n.project_id = d.project_id \
           AND n.version > d.version AND n.created_at < $2::date - interval '1 day')",
    )
    .bind(project_id)
    .bind(cutoff)
    .execute(pool)
    .await?
    .rows_affected())
}
