//! Ingestion: from the bytes of a request to events handed to the writer.
//!
//! ```text
//! body ─► decompress (bounded) ─► parse (envelope / store / native JSON)
//!      ─► authorize (key → project, cached) ─► per event (prepare.rs): read → ErrorEvent
//!         → scrub → group → NewEvent ─► quota ─► writer (group commit) ─► Ack after COMMIT
//! ```
//!
//! Every event ends in exactly one [`outcome::Outcome`], counted where it is decided: an
//! invalid item when it fails to parse, a rate-limited event when its quota or the writer
//! refuses it, an accepted one after its batch commits. A bad item never fails its
//! siblings; a request whose every event is bad gets the first event's error.
//!
//! A Sentry event's payload is stored as the bytes that arrived, with only the members
//! scrubbing changed written again (see `prepare` and `sentry::members`).

pub mod decompress;
pub mod keys;
pub mod native;
pub mod otlp;
pub mod outcome;
pub mod prepare;
pub mod quota;
pub mod received;
pub mod sentry;

use std::sync::Arc;

use chrono::Utc;
use sqlx::PgPool;
use uuid::Uuid;

use outcome::{Outcome, Reason};

use crate::metrics::Metrics;
use crate::model::{ErrorEvent, ProjectId, Source, SpanTally};
use crate::scrub;
use crate::store::dictionaries::Dictionaries;
use crate::store::events::NewEvent;
use crate::store::projects::{self, KeyGrant};
use crate::store::writer::{Batch, WriteError, Writer, Written};
use crate::store::StoreError;

/// The most one event may weigh, decompressed (DESIGN.md §3.1).
pub const MAX_EVENT_BYTES: usize = 1024 * 1024;

/// The most one request may weigh, compressed and decompressed.
pub const MAX_COMPRESSED_BYTES: usize = 20 * 1024 * 1024;
pub const MAX_DECOMPRESSED_BYTES: usize = 100 * 1024 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    #[error("missing ingestion key (X-Sentry-Auth, Authorization: Sentry|Bearer, ?sentry_key= or x-seismo-key)")]
    MissingKey,
    #[error("the ingestion key is not valid for this project")]
    InvalidKey,
    #[error("project {0} does not exist")]
    UnknownProject(ProjectId),
    #[error("{0}")]
    TooLarge(String),
    #[error("{0}")]
    Malformed(String),
    /// The client did not send the whole body in time (`SEISMO_HTTP_BODY_TIMEOUT_SECONDS`).
    #[error("{0}")]
    BodyTimeout(String),
    #[error("{0}")]
    UnsupportedEncoding(String),
    #[error("{0}")]
    UnsupportedMediaType(String),
    #[error("the project's event quota is used up; retry in {retry_after} s")]
    QuotaExceeded { retry_after: u64 },
    #[error("Seismo is overloaded; retry shortly")]
    Overloaded,
    #[error("storage is unavailable; retry shortly")]
    Unavailable,
    #[error("the database is unreachable and the local spool is full; retry shortly")]
    SpoolFull,
    #[error("storage refused the events")]
    Rejected,
}

impl IngestError {
    /// The gRPC status code for this error, as OTLP maps failures (used by OTLP/gRPC and by
    /// the `google.rpc.Status` bodies of OTLP/HTTP). UNAVAILABLE and RESOURCE_EXHAUSTED are
    /// the ones an exporter may retry.
    pub fn grpc_code(&self) -> i32 {
        use IngestError as E;
        match self {
            E::TooLarge(_)
            | E::Malformed(_)
            | E::UnsupportedEncoding(_)
            | E::UnsupportedMediaType(_) => 3,
            E::BodyTimeout(_) => 4,
            E::UnknownProject(_) => 5,
            E::InvalidKey => 7,
            E::QuotaExceeded { .. } => 8,
            E::Rejected => 13,
            E::Overloaded | E::Unavailable | E::SpoolFull => 14,
            E::MissingKey => 16,
        }
    }
}

/// The key of Seismo's own ingestion (native JSON and OTLP, over HTTP or gRPC): the
/// `x-seismo-key` header, else `Authorization: Bearer <key>` (what OTLP exporters can set).
pub fn seismo_key(x_seismo_key: Option<&str>, authorization: Option<&str>) -> Option<String> {
    x_seismo_key
        .or_else(|| authorization.and_then(|v| v.strip_prefix("Bearer ")))
        .map(|key| key.trim().to_owned())
        .filter(|key| !key.is_empty())
}

impl From<decompress::DecompressError> for IngestError {
    fn from(error: decompress::DecompressError) -> IngestError {
        use decompress::DecompressError as D;
        match error {
            D::TooLarge(_) => IngestError::TooLarge(format!("request body {error}")),
            D::Unsupported(_) => IngestError::UnsupportedEncoding(error.to_string()),
            D::Corrupt(_) => IngestError::Malformed(error.to_string()),
        }
    }
}

impl From<StoreError> for IngestError {
    fn from(error: StoreError) -> IngestError {
        tracing::error!(%error, "key lookup failed");
        IngestError::Unavailable
    }
}

/// What a successful request answers with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ack {
    /// The id of the (first) event, when the request carried one.
    pub id: Option<Uuid>,
}

/// The ingestion service: shared by all requests.
pub struct Ingest {
    pool: PgPool,
    keys: keys::KeyCache,
    quotas: quota::Quotas,
    writer: Writer,
    metrics: Arc<Metrics>,
    dictionaries: Dictionaries,
}

impl Ingest {
    pub fn new(
        pool: PgPool,
        writer: Writer,
        metrics: Arc<Metrics>,
        dictionaries: Dictionaries,
    ) -> Ingest {
        Ingest {
            pool,
            keys: keys::KeyCache::default(),
            quotas: quota::Quotas::default(),
            writer,
            metrics,
            dictionaries,
        }
    }

    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// Caches every active key (see `keys`), so that each keeps working through a database
    /// outage even if it sent nothing since this process started; returns how many.
    pub async fn preload_keys(&self) -> Result<usize, StoreError> {
        let grants = projects::active_grants(&self.pool, keys::MAX_ENTRIES as i64).await?;
        let count = grants.len();
        self.keys.preload(grants);
        Ok(count)
    }

    /// Forgets what this process cached about the project's keys: after the project or its
    /// keys change, its next request is checked against the database.
    pub fn forget_project(&self, project_id: ProjectId) {
        self.keys.forget_project(project_id);
    }

    /// Resolves a key to its project. `project_id` is the one in the URL, when there is one.
    pub async fn authorize(
        &self,
        key: Option<&str>,
        project_id: Option<ProjectId>,
    ) -> Result<KeyGrant, IngestError> {
        let key = key
            .filter(|k| !k.is_empty())
            .ok_or(IngestError::MissingKey)?;
        let grant = self.keys.lookup(&self.pool, key).await?;
        match (grant, project_id) {
            (Some(grant), None) => Ok(grant),
            (Some(grant), Some(id)) if grant.project_id == id => Ok(grant),
            (_, Some(id)) if !projects::exists(&self.pool, id).await? => {
                Err(IngestError::UnknownProject(id))
            }
            _ => Err(IngestError::InvalidKey),
        }
    }

    /// Reads, scrubs, groups and compresses one Sentry (or native JSON) event payload (see
    /// [`prepare::sentry_event`]); counts it as invalid if it is.
    pub fn prepare(
        &self,
        payload: &[u8],
        received: received::Received,
        scrub: &scrub::Settings,
    ) -> Result<NewEvent, IngestError> {
        if payload.len() > MAX_EVENT_BYTES {
            let message = format!(
                "event of {} bytes exceeds the {MAX_EVENT_BYTES}-byte limit",
                payload.len()
            );
            return Err(self.invalid(
                received.source,
                Reason::TooLarge,
                IngestError::TooLarge(message),
            ));
        }
        let dictionary = self.dictionaries.newest(received.project_id);
        let prepared = prepare::sentry_event(payload, received, scrub, dictionary.as_deref())
            .map_err(|e| {
                self.invalid(
                    received.source,
                    Reason::Malformed,
                    IngestError::Malformed(e.to_string()),
                )
            })?;
        Ok(self.count_scrubbed(prepared))
    }

    /// Scrubs, groups and compresses an event some source has already normalized.
    pub fn prepare_event(
        &self,
        event: ErrorEvent,
        scrub: &scrub::Settings,
    ) -> Result<NewEvent, IngestError> {
        let source = event.source;
        let dictionary = self.dictionaries.newest(event.project_id);
        let prepared =
            prepare::normalized_event(event, scrub, dictionary.as_deref()).map_err(|e| {
                self.invalid(
                    source,
                    Reason::Malformed,
                    IngestError::Malformed(e.to_string()),
                )
            })?;
        Ok(self.count_scrubbed(prepared))
    }

    fn count_scrubbed(&self, prepared: prepare::Prepared) -> NewEvent {
        self.metrics
            .scrubbed_values
            .inc_by(prepared.scrubbed as u64);
        prepared.row
    }

    fn invalid(&self, source: Source, reason: Reason, error: IngestError) -> IngestError {
        outcome::record(&self.metrics, source, Outcome::Invalid(reason), 1);
        error
    }

    /// Takes quota for the events, writes them, and returns their ids once committed.
    pub async fn accept(
        &self,
        grant: &KeyGrant,
        source: Source,
        events: Vec<NewEvent>,
    ) -> Result<Vec<Uuid>, IngestError> {
        self.accept_with_spans(grant, source, events, Vec::new())
            .await
    }

    /// Like [`Ingest::accept`], with the spans the request counted (they commit together).
    pub async fn accept_with_spans(
        &self,
        grant: &KeyGrant,
        source: Source,
        events: Vec<NewEvent>,
        spans: Vec<SpanTally>,
    ) -> Result<Vec<Uuid>, IngestError> {
        let n = events.len();
        let ids: Vec<Uuid> = events.iter().map(|e| e.event_id).collect();
        let record =
            |outcome: Outcome, n: usize| outcome::record(&self.metrics, source, outcome, n);
        if let Err(retry_after) = self.quotas.take(&quota::limits_of(grant), n, Utc::now()) {
            record(Outcome::RateLimited(Reason::Quota), n);
            return Err(IngestError::QuotaExceeded { retry_after });
        }
        match self.writer.write(Batch { events, spans }).await {
            Ok(written) => {
                let duplicates = written.iter().filter(|w| **w == Written::Duplicate).count();
                record(Outcome::Accepted, n - duplicates);
                record(Outcome::Filtered(Reason::Duplicate), duplicates);
                Ok(ids)
            }
            Err(error) => {
                let (reason, answer) = match error {
                    WriteError::Overloaded => (Reason::Backpressure, IngestError::Overloaded),
                    WriteError::Failed(_) => (Reason::StorageRejected, IngestError::Rejected),
                    WriteError::ProjectGone => (
                        Reason::ProjectDeleted,
                        IngestError::UnknownProject(grant.project_id),
                    ),
                    WriteError::Unavailable(_) | WriteError::Stopped => {
                        (Reason::StorageUnavailable, IngestError::Unavailable)
                    }
                    WriteError::SpoolFull(_) => (Reason::SpoolFull, IngestError::SpoolFull),
                };
                let outcome = match reason {
                    Reason::StorageRejected | Reason::ProjectDeleted => Outcome::Invalid(reason),
                    _ => Outcome::RateLimited(reason),
                };
                record(outcome, n);
                Err(answer)
            }
        }
    }
}

/// The most a compressed body may inflate to on the request's own task. SDKs compress
/// every envelope (a few KB); inflating one takes microseconds, less than handing it to the
/// blocking pool and back, which wakes a thread each way. A larger body is inflated in the
/// pool, so that no request holds an async thread for long.
const INLINE_DECOMPRESSED_BYTES: usize = 256 * 1024;

/// Decompresses a request body: a small one where it is, a large one off the async threads.
pub async fn decompress_body(
    encoding: Option<String>,
    body: bytes::Bytes,
) -> Result<bytes::Bytes, IngestError> {
    let identity = encoding
        .as_deref()
        .is_none_or(|e| e.trim().is_empty() || e.trim().eq_ignore_ascii_case("identity"));
    if identity {
        if body.len() > MAX_DECOMPRESSED_BYTES {
            return Err(decompress::DecompressError::TooLarge(MAX_DECOMPRESSED_BYTES).into());
        }
        return Ok(body);
    }
    // A body already larger than the inline bound would inflate past it: straight to the pool.
    let inline = body.len() <= INLINE_DECOMPRESSED_BYTES;
    let mut inflating = decompress::Inflating::new(encoding.as_deref(), body)?;
    if inline && inflating.inflate_up_to(INLINE_DECOMPRESSED_BYTES)? == decompress::Progress::Done {
        return Ok(bytes::Bytes::from(inflating.into_inflated()));
    }
    // The pool goes on from where the inline bound stopped it, up to the real limit.
    let inflated = tokio::task::spawn_blocking(move || inflating.finish(MAX_DECOMPRESSED_BYTES))
        .await
        .map_err(|_| IngestError::Malformed("decompression failed".into()))??;
    Ok(bytes::Bytes::from(inflated))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_seismo_key_comes_from_its_header_or_a_bearer_token() {
        assert_eq!(
            seismo_key(Some("k1"), Some("Bearer k2")).as_deref(),
            Some("k1")
        );
        assert_eq!(seismo_key(None, Some("Bearer k2 ")).as_deref(), Some("k2"));
        assert_eq!(seismo_key(None, Some("Basic k2")), None);
        assert_eq!(seismo_key(Some(" "), None), None);
    }

    #[tokio::test]
    async fn compressed_bodies_inflate_whole_on_either_side_of_the_inline_bound() {
        let sizes = [
            100,
            INLINE_DECOMPRESSED_BYTES,
            INLINE_DECOMPRESSED_BYTES + 1,
            3 * INLINE_DECOMPRESSED_BYTES,
        ];
        for size in sizes {
            let text: Vec<u8> = (0..size).map(|i| b'a' + (i % 7) as u8).collect();
            let inflated =
                decompress_body(Some("gzip".into()), decompress::tests::gzip(&text).into())
                    .await
                    .unwrap_or_else(|error| panic!("{size} bytes: {error}"));
            assert!(
                inflated == text,
                "{size} bytes inflate to what was compressed"
            );
        }
    }

    #[tokio::test]
    async fn a_corrupt_small_body_is_refused_as_corrupt() {
        let error = decompress_body(Some("gzip".into()), bytes::Bytes::from_static(b"not gzip"))
            .await
            .expect_err("not gzip");
        assert_eq!(error.to_string(), "body is not valid gzip data");
    }

    #[test]
    fn retryable_failures_map_to_retryable_grpc_codes() {
        assert_eq!(IngestError::Overloaded.grpc_code(), 14);
        assert_eq!(IngestError::QuotaExceeded { retry_after: 1 }.grpc_code(), 8);
        assert_eq!(IngestError::Malformed(String::new()).grpc_code(), 3);
        assert_eq!(IngestError::MissingKey.grpc_code(), 16);
    }
}
