//! When and how a project's dictionary is trained.
//!
//! Every check interval `seismo serve` refreshes its [`Dictionaries`] and, under an
//! advisory lock so that one process of many does it, runs [`train_due`]:
//! 1. the projects with events in the last hour are the candidates;
//! 2. a project without a dictionary is due once it holds [`Plan::min_events`] events; one
//!    with a dictionary is due when its last [`DRIFT_ROWS`] rows compressed with it come
//!    out [`Plan::drift`] times larger, relative to their raw size, than the held-out
//!    documents did at training, and that version is at least [`Plan::min_age`] old;
//! 3. a due project's latest [`Plan::samples`] documents are read back; four in five train
//!    the dictionary and the fifth judges it against what those documents get now. It is
//!    saved as the next version only when it saves at least [`MIN_GAIN`] of their bytes;
//!    a project whose dictionary was not worth saving is not tried again for
//!    [`Plan::min_age`].

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use sqlx::PgPool;

use super::{Dictionaries, Dictionary, VersionInfo};
use crate::metrics::Metrics;
use crate::model::ProjectId;
use crate::store::events::{compress, decompress};
use crate::store::StoreError;

/// Advisory lock key of a training run ("seismo dictionaries").
const LOCK_KEY: i64 = 0x5e15_3000_0000_0002;
/// Recent rows of the newest version whose compression is compared with its training.
pub const DRIFT_ROWS: i64 = 200;
/// A new dictionary must make the held-out documents at least this much smaller.
pub const MIN_GAIN: f64 = 0.10;
/// The most document bytes one training reads (raw; a quarter of it compressed): zstd
/// wants about a hundred times the dictionary's size, and a project of 1 MiB events must
/// not take a gigabyte to train.
const MAX_SAMPLE_BYTES: i64 = 32 * 1024 * 1024;

/// What a training run considers; [`Plan::default`] is what `seismo serve` uses.
#[derive(Debug, Clone)]
pub struct Plan {
    /// Events a project needs before its first dictionary.
    pub min_events: i64,
    /// Latest documents read to train and judge a dictionary.
    pub samples: i64,
    /// Size of a trained dictionary, in bytes.
    pub dictionary_bytes: usize,
    /// How much worse (compressed over raw) recent rows may get before retraining.
    pub drift: f64,
    /// The newest version is never replaced sooner than this, nor a rejected dictionary
    /// tried again.
    pub min_age: chrono::Duration,
}

impl Default for Plan {
    fn default() -> Plan {
        Plan {
            min_events: 200,
            samples: 1_000,
            dictionary_bytes: 32 * 1024,
            drift: 1.25,
            min_age: chrono::Duration::hours(1),
        }
    }
}

/// What one run did.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Report {
    /// Versions saved: project, version, compressed over raw bytes of the held-out documents.
    pub trained: Vec<(ProjectId, i32, f64)>,
    /// Dictionaries trained but not saved, as they saved too little.
    pub rejected: Vec<ProjectId>,
}

/// Refreshes `dictionaries` and trains what is due, now and then every `interval`, until
/// `stop` turns true.
pub async fn run_periodically(
    pool: PgPool,
    dictionaries: Dictionaries,
    metrics: Arc<Metrics>,
    interval: Duration,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    let mut trainer = Trainer::new(Plan::default());
    loop {
        match trainer.train_due(&pool).await {
            Ok(report) => record(&report, &metrics),
            Err(error) => {
                tracing::warn!(%error, "dictionary training failed; retrying next interval")
            }
        }
        if let Err(error) = dictionaries.refresh(&pool).await {
            tracing::warn!(%error, "loading event dictionaries failed; retrying next interval");
        }
        tokio::select! {
            _ = tokio::time::sleep(interval) => {}
            _ = stop.changed() => break,
        }
    }
}

fn record(report: &Report, metrics: &Metrics) {
    let outcomes = &metrics.dictionaries_trained;
    outcomes
        .with_label_values(&["kept"])
        .inc_by(report.trained.len() as u64);
    outcomes
        .with_label_values(&["rejected"])
        .inc_by(report.rejected.len() as u64);
    for (project_id, version, ratio) in &report.trained {
        tracing::info!(%project_id, version, ratio, "trained an event dictionary");
    }
}

/// Runs training; remembers which projects' dictionaries were rejected, and when.
#[derive(Debug)]
pub struct Trainer {
    plan: Plan,
    rejected: HashMap<ProjectId, DateTime<Utc>>,
}

impl Trainer {
    pub fn new(plan: Plan) -> Trainer {
        Trainer {
            plan,
            rejected: HashMap::new(),
        }
    }

    /// One training run: every due project gets a new version if it is worth keeping.
    pub async fn train_due(&mut self, pool: &PgPool) -> Result<Report, StoreError> {
        let work = self.train_locked(pool);
        Ok(crate::store::while_locked(pool, LOCK_KEY, work)
            .await?
            .unwrap_or_default())
    }

    async fn train_locked(&mut self, pool: &PgPool) -> Result<Report, StoreError> {
        let mut report = Report::default();
        let now = Utc::now();
        self.rejected.retain(|_, at| now - *at < self.plan.min_age);
        let newest = super::newest_versions(pool).await?;
        for project_id in recently_active(pool).await? {
            let current = newest.iter().find(|v| v.project_id == project_id);
            if self.rejected.contains_key(&project_id)
                || !is_due(pool, &self.plan, project_id, current).await?
            {
                continue;
            }
            match train_project(pool, &self.plan, project_id, current).await? {
                Some(candidate) => {
                    let version = super::insert_next(
                        pool,
                        project_id,
                        &candidate.bytes,
                        candidate.ratio,
                        candidate.samples,
                    )
                    .await?;
                    report.trained.push((project_id, version, candidate.ratio));
                }
                None => {
                    self.rejected.insert(project_id, now);
                    report.rejected.push(project_id);
                }
            }
        }
        Ok(report)
    }
}

/// Trains a dictionary from the project's latest documents, off the async threads; `None`
/// when it is not worth saving.
async fn train_project(
    pool: &PgPool,
    plan: &Plan,
    project_id: ProjectId,
    current: Option<&VersionInfo>,
) -> Result<Option<Candidate>, StoreError> {
    let documents = latest_documents(pool, project_id, plan.samples).await?;
    let versions: Vec<(ProjectId, i32)> = current
        .map(|v| (project_id, v.version))
        .into_iter()
        .collect();
    let current_bytes = super::load(pool, &versions)
        .await?
        .pop()
        .map(|(_, _, bytes)| bytes);
    let dictionary_bytes = plan.dictionary_bytes;
    tokio::task::spawn_blocking(move || {
        train(&documents, current_bytes.as_deref(), dictionary_bytes)
    })
    .await
    .map_err(|e| StoreError::Corrupt(format!("dictionary training panicked: {e}")))?
}

async fn recently_active(pool: &PgPool) -> Result<Vec<ProjectId>, StoreError> {
    Ok(sqlx::query_scalar(
        "SELECT DISTINCT project_id FROM minute_counts \
         WHERE scope = 'project' AND minute >= now() - interval '1 hour' ORDER BY 1",
    )
    .fetch_all(pool)
    .await?)
}

async fn is_due(
    pool: &PgPool,
    plan: &Plan,
    project_id: ProjectId,
    current: Option<&VersionInfo>,
) -> Result<bool, StoreError> {
    let Some(current) = current else {
        let stored: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM (SELECT 1 FROM events WHERE project_id = $1 LIMIT $2) AS e",
        )
        .bind(project_id)
        .bind(plan.min_events)
        .fetch_one(pool)
        .await?;
        return Ok(stored >= plan.min_events);
    };
    if Utc::now() - current.created_at < plan.min_age {
        return Ok(false);
    }
    Ok(recent_ratio(pool, project_id, current.version)
        .await?
        .is_some_and(|ratio| ratio > current.ratio * plan.drift))
}

/// Compressed over raw bytes of the project's latest rows compressed with `version`. The
/// raw size is read from each zstd frame's header: no row is decompressed.
async fn recent_ratio(
    pool: &PgPool,
    project_id: ProjectId,
    version: i32,
) -> Result<Option<f64>, StoreError> {
    let rows: Vec<(i32, Vec<u8>)> = sqlx::query_as(
        "SELECT octet_length(data), substring(data FROM 1 FOR 18) FROM events \
         WHERE project_id = $1 AND dictionary = $2 ORDER BY received_at DESC LIMIT $3",
    )
    .bind(project_id)
    .bind(version)
    .bind(DRIFT_ROWS)
    .fetch_all(pool)
    .await?;
    let (mut stored, mut raw) = (0u64, 0u64);
    for (length, header) in rows {
        if let Ok(Some(size)) = zstd::zstd_safe::get_frame_content_size(&header) {
            stored += u64::try_from(length).unwrap_or(0);
            raw += size;
        }
    }
    Ok((raw > 0).then(|| stored as f64 / raw as f64))
}

/// The project's latest documents as JSON, decompressed with the versions they name.
async fn latest_documents(
    pool: &PgPool,
    project_id: ProjectId,
    limit: i64,
) -> Result<Vec<Vec<u8>>, StoreError> {
    // Events may be up to a MiB each: the samples stop at a bound, compressed here and
    // decompressed below, whatever `limit` says.
    let rows: Vec<(Option<i32>, Vec<u8>)> = sqlx::query_as(
        "SELECT dictionary, data FROM ( \
           SELECT dictionary, data, received_at, \
             sum(octet_length(data)) OVER (ORDER BY received_at DESC) AS running \
           FROM (SELECT dictionary, data, received_at FROM events WHERE project_id = $1 \
                 ORDER BY received_at DESC LIMIT $2) AS latest) AS bounded \
         WHERE running <= $3 ORDER BY received_at DESC",
    )
    .bind(project_id)
    .bind(limit)
    .bind(MAX_SAMPLE_BYTES / 4)
    .fetch_all(pool)
    .await?;
    let versions: Vec<(ProjectId, i32)> = rows
        .iter()
        .filter_map(|(version, _)| version.map(|v| (project_id, v)))
        .collect();
    let decoders = super::load_for_reading(pool, &versions).await?;
    let mut documents = Vec::with_capacity(rows.len());
    let mut total = 0;
    for (version, data) in &rows {
        let document = decompress(data, super::decoder_for(&decoders, project_id, *version)?)?;
        total += document.len() as i64;
        if total > MAX_SAMPLE_BYTES {
            break;
        }
        documents.push(document);
    }
    Ok(documents)
}

/// A dictionary worth saving.
struct Candidate {
    bytes: Vec<u8>,
    ratio: f64,
    samples: i32,
}

/// Trains on four in five documents and judges on the fifth: `None` when the new
/// dictionary saves less than [`MIN_GAIN`] against the current one (`current`, the bytes
/// of the project's newest version), or against none when it has none yet.
fn train(
    documents: &[Vec<u8>],
    current: Option<&[u8]>,
    dictionary_bytes: usize,
) -> Result<Option<Candidate>, StoreError> {
    let (held_out, training): (Vec<_>, Vec<_>) =
        documents.iter().enumerate().partition(|(i, _)| i % 5 == 4);
    let training: Vec<&[u8]> = training.into_iter().map(|(_, d)| d.as_slice()).collect();
    let held_out: Vec<&[u8]> = held_out.into_iter().map(|(_, d)| d.as_slice()).collect();
    if held_out.is_empty() {
        return Ok(None);
    }
    // zstd refuses to train on too little; that is no dictionary yet, not an error.
    let Ok(bytes) = zstd::dict::from_samples(&training, dictionary_bytes) else {
        return Ok(None);
    };
    let candidate = Dictionary::new(0, &bytes);
    let raw: usize = held_out.iter().map(|d| d.len()).sum();
    let with_candidate = compressed_size(&held_out, Some(&candidate))?;
    let current = current.map(|bytes| Dictionary::new(0, bytes));
    let now = compressed_size(&held_out, current.as_ref())?;
    if (with_candidate as f64) > (now as f64) * (1.0 - MIN_GAIN) {
        return Ok(None);
    }
    Ok(Some(Candidate {
        bytes,
        ratio: with_candidate as f64 / raw.max(1) as f64,
        samples: i32::try_from(training.len()).unwrap_or(i32::MAX),
    }))
}

fn compressed_size(
    documents: &[&[u8]],
    dictionary: Option<&Dictionary>,
) -> Result<usize, StoreError> {
    documents
        .iter()
        .map(|d| compress(d, dictionary).map(|c| c.len()))
        .sum()
}
