//! Events: the row written per accepted event, and reading them back.
//!
//! Columns hold what queries filter on; `data` holds the rest — message, tags, the original
//! payload (scrubbed) and, for sources whose payload is not a Sentry event, the normalized
//! exception chain ([`stores_exceptions`]) — as zstd-compressed JSON (DESIGN.md §4:
//! compressing in the client is several times faster than `jsonb` and a third of the size),
//! with the project's newest trained dictionary when it has one; the row's `dictionary`
//! names its version (see `store::dictionaries`).

use std::collections::{BTreeMap, HashSet};
use std::sync::LazyLock;

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use sqlx::postgres::{PgArguments, Postgres};
use sqlx::query::QueryAs;
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;
use zstd::dict::DecoderDictionary;
use zstd::zstd_safe::{self, CCtx};

mod payload;

pub use payload::{Member, ReceivedPayload};

use super::dictionaries::{self, Dictionary};
use super::{column, StoreError};
use crate::grouping::Grouping;
use crate::model::{ErrorEvent, Exception, IssueId, Level, ProjectId, Source};

/// Top frames rendered into the `top_frames` column for dashboards.
const TOP_FRAMES: usize = 5;

/// An event ready for the writer: grouped, rendered and compressed on the request's task so
/// the writer's transaction does nothing but SQL. (Serialized as the spool keeps it.)
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NewEvent {
    pub event_id: Uuid,
    pub project_id: ProjectId,
    pub received_at: DateTime<Utc>,
    pub timestamp: DateTime<Utc>,
    pub level: Level,
    pub source: Source,
    pub platform: Option<String>,
    pub release: Option<String>,
    pub environment: Option<String>,
    pub service: Option<String>,
    pub trace_id: Option<String>,
    pub handled: bool,
    pub grouping: Grouping,
    pub top_frames: String,
    /// The dictionary version `data` was compressed with, if any.
    #[serde(default)]
    pub dictionary: Option<i32>,
    #[serde(with = "base64_bytes")]
    pub data: Vec<u8>,
}

/// The compressed document as base64 text in the spool's JSON (not an array of numbers).
mod base64_bytes {
    use base64::Engine as _;
    use serde::{Deserialize, Deserializer, Serializer};

    const ENGINE: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

    pub fn serialize<S: Serializer>(bytes: &[u8], serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&ENGINE.encode(bytes))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<u8>, D::Error> {
        let text = <&str>::deserialize(deserializer)?;
        ENGINE.decode(text).map_err(serde::de::Error::custom)
    }
}

/// The compressed part of an event row.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Document {
    pub message: Option<String>,
    /// The normalized exceptions; `None` for a Sentry event, whose payload *is* the Sentry
    /// event they were normalized from: readers normalize them from it again (see
    /// [`stores_exceptions`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exception: Option<Vec<Exception>>,
    pub tags: BTreeMap<String, String>,
    pub payload: serde_json::Value,
}

/// Whether an event's document holds its normalized exceptions. A Sentry event's do not:
/// they are a function of its payload, which the document holds scrubbed, and writing them
/// out again cost about a sixth of preparing the row (the stack traces serialized twice,
/// and a third more bytes for zstd; bench/README.md, "The stored document"). Other
/// sources' payloads are not Sentry events, so theirs are kept.
pub fn stores_exceptions(source: Source) -> bool {
    source != Source::Sentry
}

/// The document serialized from borrowed parts; without `payload`, the caller appends the
/// received payload bytes (see [`NewEvent::with_received_payload`]).
#[derive(Serialize)]
struct DocumentParts<'a> {
    message: &'a Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    exception: Option<&'a [Exception]>,
    tags: &'a BTreeMap<String, String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    payload: Option<&'a serde_json::Value>,
}

impl NewEvent {
    pub fn new(event: ErrorEvent, grouping: Grouping) -> Result<NewEvent, StoreError> {
        NewEvent::with_received_payload(event, grouping, None, None)
    }

    /// `received`: the exact JSON text that `event.payload` was parsed from, and what
    /// scrubbing changed since. The document's payload is then made from that text (see
    /// [`payload`]), which costs far less than serializing the payload again and reads
    /// back as the same JSON. `dictionary`: the project's newest, if it has one.
    pub fn with_received_payload(
        event: ErrorEvent,
        grouping: Grouping,
        received: Option<ReceivedPayload<'_>>,
        dictionary: Option<&Dictionary>,
    ) -> Result<NewEvent, StoreError> {
        let top_frames = render_top_frames(&event);
        let json = document_json(&event, received)?;
        let data = compress(&json, dictionary)?;
        Ok(NewEvent {
            event_id: event.event_id,
            project_id: event.project_id,
            received_at: event.received_at,
            timestamp: event.timestamp,
            level: event.level,
            source: event.source,
            platform: event.platform,
            release: event.release,
            environment: event.environment,
            service: event.service,
            trace_id: event.trace_id,
            handled: event.handled,
            grouping,
            top_frames,
            dictionary: dictionary.map(|d| d.version),
            data,
        })
    }

    pub fn received_day(&self) -> NaiveDate {
        self.received_at.date_naive()
    }
}

/// The JSON document stored for the event (before compression), its payload serialized.
pub fn document_bytes(event: &ErrorEvent) -> Result<Vec<u8>, StoreError> {
    document_json(event, None)
}

/// The document's JSON: the normalized parts, then the payload, either made from the
/// received text or `event.payload` serialized.
fn document_json(
    event: &ErrorEvent,
    received: Option<ReceivedPayload<'_>>,
) -> Result<Vec<u8>, StoreError> {
    let corrupt = |e: serde_json::Error| StoreError::Corrupt(e.to_string());
    let mut parts = DocumentParts {
        message: &event.message,
        exception: stores_exceptions(event.source).then_some(event.exceptions.as_slice()),
        tags: &event.tags,
        payload: None,
    };
    let Some(received) = received else {
        parts.payload = Some(&event.payload);
        return serde_json::to_vec(&parts).map_err(corrupt);
    };
    let mut json = Vec::with_capacity(received.text.len() + 512);
    serde_json::to_writer(&mut json, &parts).map_err(corrupt)?;
    // `{"message":…,"tags":{…}}` always ends with the object's `}`: reopen it.
    if json.pop() != Some(b'}') {
        return Err(StoreError::Corrupt(
            "document head is not an object".to_owned(),
        ));
    }
    json.extend_from_slice(b",\"payload\":");
    if !payload::write_received(&mut json, received, &event.payload).map_err(corrupt)? {
        serde_json::to_writer(&mut json, &event.payload).map_err(corrupt)?;
    }
    json.push(b'}');
    Ok(json)
}

/// `module.function (file:line)` for the frames nearest the crash, newest first.
fn render_top_frames(event: &ErrorEvent) -> String {
    let Some(exception) = event.main_exception() else {
        return String::new();
    };
    exception
        .frames
        .iter()
        .rev()
        .take(TOP_FRAMES)
        .map(|f| {
            let place = f.module.as_deref().or(f.filename.as_deref()).unwrap_or("?");
            let function = f.function.as_deref().unwrap_or("?");
            match (f.filename.as_deref(), f.lineno) {
                (Some(file), Some(line)) => format!("{place}.{function} ({file}:{line})"),
                _ => format!("{place}.{function}"),
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

thread_local! {
    /// One compression context per thread: creating one per event was a measurable share
    /// of ingest CPU.
    static COMPRESSOR: std::cell::RefCell<Option<CCtx<'static>>> =
        const { std::cell::RefCell::new(None) };
}

/// Compresses a document, with `dictionary` when given (at the level it was prepared for).
pub fn compress(json: &[u8], dictionary: Option<&Dictionary>) -> Result<Vec<u8>, StoreError> {
    COMPRESSOR.with(|cell| {
        let mut slot = cell.borrow_mut();
        let context = match slot.as_mut() {
            Some(context) => context,
            None => slot.insert(CCtx::try_create().ok_or_else(|| {
                StoreError::Corrupt("zstd could not allocate a context".to_owned())
            })?),
        };
        let mut data = Vec::with_capacity(zstd_safe::compress_bound(json.len()));
        let written = match dictionary {
            Some(dictionary) => context.compress_using_cdict(&mut data, json, dictionary.cdict()),
            None => context.compress(&mut data, json, dictionaries::LEVEL_WITHOUT_DICTIONARY),
        };
        written.map_err(|code| StoreError::Corrupt(zstd_safe::get_error_name(code).to_owned()))?;
        Ok(data)
    })
}

/// Documents are at most a few MiB; the bound only guards against a corrupt header.
const MAX_DOCUMENT_BYTES: u64 = 256 * 1024 * 1024;

/// The JSON of a stored document, compressed with `dictionary` or without one.
pub fn decompress(
    data: &[u8],
    dictionary: Option<&DecoderDictionary<'static>>,
) -> Result<Vec<u8>, StoreError> {
    let corrupt = |e: std::io::Error| StoreError::Corrupt(e.to_string());
    // Every document's frame records its size (zstd writes it when compressing in one
    // call), and the buffer is allocated to fit: zstd's bulk API, given only a bound,
    // allocates the whole bound for every document.
    let size = match zstd_safe::get_frame_content_size(data) {
        Ok(Some(size)) if size <= MAX_DOCUMENT_BYTES => size as usize,
        _ => {
            return Err(StoreError::Corrupt(
                "stored document has no valid size".to_owned(),
            ))
        }
    };
    let mut decompressor = match dictionary {
        Some(dictionary) => {
            zstd::bulk::Decompressor::with_prepared_dictionary(dictionary).map_err(corrupt)?
        }
        None => zstd::bulk::Decompressor::new().map_err(corrupt)?,
    };
    decompressor.decompress(data, size).map_err(corrupt)
}

fn decode(
    data: &[u8],
    dictionary: Option<&DecoderDictionary<'static>>,
) -> Result<Document, StoreError> {
    let json = decompress(data, dictionary)?;
    serde_json::from_slice(&json).map_err(|e| StoreError::Corrupt(e.to_string()))
}

/// Inserts the events with their issue ids, in one statement, and returns the ids of those
/// that were new. An event id already stored that day (an SDK retry) is skipped; one being
/// inserted by a concurrent transaction waits for it, so exactly one of them counts it.
/// (The writer inserts most events in `batch::open`; this is for the rest.)
pub async fn insert(
    conn: &mut PgConnection,
    events: &[(&NewEvent, IssueId)],
) -> Result<HashSet<Uuid>, StoreError> {
    static INSERT: LazyLock<String> = LazyLock::new(|| insert_rows_sql(1, "int8", "e.link", ""));
    let rows: Vec<&NewEvent> = events.iter().map(|(e, _)| *e).collect();
    let query = sqlx::query_as(&INSERT).bind(column(events, |(_, issue)| *issue));
    let inserted: Vec<(Uuid,)> = bind_rows(query, &rows).fetch_all(conn).await?;
    Ok(inserted.into_iter().map(|(id,)| id).collect())
}

/// An event row's columns but `issue_id`, in the order [`bind_rows`] binds them, each with
/// the type of its array. The function `seismo_write_batch` (migration 0032) takes and
/// inserts them in this order too: a new column goes there as well, in a new migration.
const ROW_COLUMNS: [(&str, &str); 17] = [
    ("event_id", "uuid"),
    ("received_day", "date"),
    ("project_id", "int8"),
    ("received_at", "timestamptz"),
    ("timestamp", "timestamptz"),
    ("level", "text"),
    ("source", "text"),
    ("platform", "text"),
    ("release", "text"),
    ("environment", "text"),
    ("service", "text"),
    ("title", "text"),
    ("trace_id", "text"),
    ("handled", "bool"),
    ("top_frames", "text"),
    ("dictionary", "int4"),
    ("data", "bytea"),
];

/// The statement inserting the rows [`bind_rows`] binds from parameter `first + 1` on,
/// after a link column (parameter `first`, an array of `link_type`) by which each row finds
/// its issue: `issue` is the SQL giving the issue id from `e.link` (and what `join` adds to
/// the rows `e`). Returns the ids inserted; an id already stored is skipped.
pub(crate) fn insert_rows_sql(first: usize, link_type: &str, issue: &str, join: &str) -> String {
    let names: Vec<&str> = ROW_COLUMNS.iter().map(|(name, _)| *name).collect();
    let arrays: Vec<String> = ROW_COLUMNS
        .iter()
        .enumerate()
        .map(|(i, (_, ty))| format!("${}::{ty}[]", first + 1 + i))
        .collect();
    let values: Vec<String> = names.iter().map(|name| format!("e.{name}")).collect();
    format!(
        "INSERT INTO events (issue_id, {}) SELECT {issue}, {} \
         FROM UNNEST(${first}::{link_type}[], {}) AS e(link, {}) {join} \
         ON CONFLICT DO NOTHING RETURNING event_id",
        names.join(", "),
        values.join(", "),
        arrays.join(", "),
        names.join(", "),
    )
}

/// Binds the events' columns as [`ROW_COLUMNS`] lists them, one array each.
pub(crate) fn bind_rows<'q, O>(
    query: QueryAs<'q, Postgres, O, PgArguments>,
    events: &[&'q NewEvent],
) -> QueryAs<'q, Postgres, O, PgArguments> {
    query
        .bind(column(events, |e| e.event_id))
        .bind(column(events, |e| e.received_day()))
        .bind(column(events, |e| e.project_id))
        .bind(column(events, |e| e.received_at))
        .bind(column(events, |e| e.timestamp))
        .bind(column(events, |e| e.level.as_str()))
        .bind(column(events, |e| e.source.as_str()))
        .bind(column(events, |e| e.platform.as_deref()))
        .bind(column(events, |e| e.release.as_deref()))
        .bind(column(events, |e| e.environment.as_deref()))
        .bind(column(events, |e| e.service.as_deref()))
        .bind(column(events, |e| e.grouping.title.as_str()))
        .bind(column(events, |e| e.trace_id.as_deref()))
        .bind(column(events, |e| e.handled))
        .bind(column(events, |e| e.top_frames.as_str()))
        .bind(column(events, |e| e.dictionary))
        .bind(column(events, |e| e.data.as_slice()))
}

/// A stored event with its document decoded.
#[derive(Debug, Clone)]
pub struct EventRecord {
    pub event_id: Uuid,
    pub issue_id: IssueId,
    pub project_id: ProjectId,
    pub received_at: DateTime<Utc>,
    pub timestamp: DateTime<Utc>,
    pub level: String,
    pub source: String,
    pub platform: Option<String>,
    pub release: Option<String>,
    pub environment: Option<String>,
    pub service: Option<String>,
    pub title: String,
    pub trace_id: Option<String>,
    pub handled: bool,
    pub document: Document,
}

#[derive(sqlx::FromRow)]
struct EventRow {
    event_id: Uuid,
    issue_id: IssueId,
    project_id: ProjectId,
    received_at: DateTime<Utc>,
    timestamp: DateTime<Utc>,
    level: String,
    source: String,
    platform: Option<String>,
    release: Option<String>,
    environment: Option<String>,
    service: Option<String>,
    title: String,
    trace_id: Option<String>,
    handled: bool,
    dictionary: Option<i32>,
    data: Vec<u8>,
}

impl EventRow {
    fn decoded(self, decoders: &dictionaries::Decoders) -> Result<EventRecord, StoreError> {
        let dictionary = dictionaries::decoder_for(decoders, self.project_id, self.dictionary)?;
        Ok(EventRecord {
            document: decode(&self.data, dictionary)?,
            event_id: self.event_id,
            issue_id: self.issue_id,
            project_id: self.project_id,
            received_at: self.received_at,
            timestamp: self.timestamp,
            level: self.level,
            source: self.source,
            platform: self.platform,
            release: self.release,
            environment: self.environment,
            service: self.service,
            title: self.title,
            trace_id: self.trace_id,
            handled: self.handled,
        })
    }
}

/// Decodes the rows, each with the dictionary it names.
async fn decode_rows(pool: &PgPool, rows: Vec<EventRow>) -> Result<Vec<EventRecord>, StoreError> {
    let versions: Vec<(ProjectId, i32)> = rows
        .iter()
        .filter_map(|row| row.dictionary.map(|v| (row.project_id, v)))
        .collect();
    let decoders = dictionaries::load_for_reading(pool, &versions).await?;
    rows.into_iter().map(|row| row.decoded(&decoders)).collect()
}

const EVENT_COLUMNS: &str =
    "event_id, issue_id, project_id, received_at, timestamp, level, source, platform, \
     release, environment, service, title, trace_id, handled, dictionary, data";

pub async fn get(pool: &PgPool, event_id: Uuid) -> Result<Option<EventRecord>, StoreError> {
    let sql = format!(
        "SELECT {EVENT_COLUMNS} FROM events WHERE event_id = $1 ORDER BY received_at LIMIT 1"
    );
    let row: Option<EventRow> = sqlx::query_as(&sql)
        .bind(event_id)
        .fetch_optional(pool)
        .await?;
    Ok(decode_rows(pool, row.into_iter().collect()).await?.pop())
}

/// A page of an issue's events, newest first; `before` is the cursor (received_at, event_id).
pub async fn list_for_issue(
    pool: &PgPool,
    issue_id: IssueId,
    before: Option<(DateTime<Utc>, Uuid)>,
    limit: i64,
) -> Result<Vec<EventRecord>, StoreError> {
    let sql = format!(
        "SELECT {EVENT_COLUMNS} FROM events WHERE issue_id = $1 \
         AND ($2::timestamptz IS NULL OR (received_at, event_id) < ($2, $3)) \
         ORDER BY received_at DESC, event_id DESC LIMIT $4"
    );
    let rows: Vec<EventRow> = sqlx::query_as(&sql)
        .bind(issue_id)
        .bind(before.map(|(at, _)| at))
        .bind(before.map(|(_, id)| id))
        .bind(limit)
        .fetch_all(pool)
        .await?;
    decode_rows(pool, rows).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::grouping;

    fn stored(event: ErrorEvent, received: Option<&[u8]>) -> Document {
        let grouping = grouping::group(&event);
        let received = received.map(|text| ReceivedPayload {
            text,
            members: None,
            changed_members: &[],
        });
        let row = NewEvent::with_received_payload(event, grouping, received, None).expect("a row");
        decode(&row.data, None).expect("a document")
    }

    #[test]
    fn a_document_compressed_with_a_dictionary_reads_back_only_with_it() {
        let documents: Vec<Vec<u8>> = (0..200)
            .map(|i| {
                format!(
                    r#"{{"message":"order {i} failed","frames":["shop.orders.apply_discount",
                    "shop.orders.checkout","django.core.handlers.base"],"line":{}}}"#,
                    i * 7 % 300
                )
                .into_bytes()
            })
            .collect();
        let bytes = zstd::dict::from_samples(&documents, 4096).expect("a dictionary");
        let dictionary = Dictionary::new(1, &bytes);
        let decoder = DecoderDictionary::copy(&bytes);
        let json = &documents[7];
        let with = compress(json, Some(&dictionary)).expect("compressed");
        let without = compress(json, None).expect("compressed");
        assert!(
            with.len() < without.len(),
            "{} >= {}",
            with.len(),
            without.len()
        );
        let read = decompress(&with, Some(&decoder)).expect("read back");
        assert_eq!(&read, json);
        assert!(
            decompress(&with, None).is_err(),
            "not without its dictionary"
        );
        assert_eq!(&decompress(&without, None).expect("read back"), json);
    }

    #[test]
    fn reading_a_document_allocates_its_size_not_the_bound() {
        let json = vec![b'x'; 10_000];
        let read = decompress(&compress(&json, None).expect("compressed"), None).expect("read");
        assert_eq!(read, json);
        assert!(read.capacity() < 64 * 1024, "capacity {}", read.capacity());
    }

    #[test]
    fn received_payload_bytes_read_back_as_the_parsed_payload() {
        let text =
            br#" {"event_id": "0f0e", "extra": {"n": 12345678901234567890, "s": "\u00e9\"x"},
            "tags": [["a", "b"]], "list": [1, 2.5, null, true]} "#;
        let mut event = ErrorEvent::blank();
        event.payload = serde_json::from_slice(text).expect("json");
        event.message = Some("boom".to_owned());
        event.tags.insert("a".to_owned(), "b".to_owned());
        let from_bytes = stored(event.clone(), Some(text));
        let from_tree = stored(event.clone(), None);
        assert_eq!(from_bytes.payload, event.payload);
        assert_eq!(from_bytes.payload, from_tree.payload);
        assert_eq!(from_bytes.message.as_deref(), Some("boom"));
        assert_eq!(from_bytes.tags, from_tree.tags);
    }

    #[test]
    fn only_a_sentry_event_leaves_its_exceptions_to_its_payload() {
        let mut event = ErrorEvent::blank();
        event.exceptions = vec![Exception {
            ty: "KeyError".to_owned(),
            value: Some("'discount'".to_owned()),
            module: None,
            frames: Vec::new(),
        }];
        for source in [
            Source::Sentry,
            Source::OtlpHttp,
            Source::OtlpGrpc,
            Source::Native,
        ] {
            event.source = source;
            let document = stored(event.clone(), None);
            let expected = (source != Source::Sentry).then(|| event.exceptions.clone());
            assert_eq!(document.exception, expected, "{source:?}");
        }
    }
}
