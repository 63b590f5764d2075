//! The Sentry protocol: `POST /api/{project_id}/envelope/` and `/api/{project_id}/store/`.
//!
//! An envelope may carry many items; `event` items are errors and are stored, every other
//! type (transactions, sessions, client reports, attachments, …) is counted and skipped, so
//! SDKs with every feature on keep working. See <https://develop.sentry.dev/sdk/envelopes/>.

pub mod auth;
pub mod envelope;
pub mod event;
pub mod exception;
pub mod members;
pub mod tree;

use bytes::Bytes;
use chrono::Utc;

use super::received::Received;
use super::{decompress_body, Ack, Ingest, IngestError};
use crate::model::ProjectId;
use crate::model::Source;

/// What the HTTP layer extracted from a Sentry request.
#[derive(Debug)]
pub struct SentryRequest {
    pub project_id: ProjectId,
    /// The key from a header or the query string, if any.
    pub key: Option<String>,
    pub content_encoding: Option<String>,
    pub body: Bytes,
}

pub async fn envelope(ingest: &Ingest, request: SentryRequest) -> Result<Ack, IngestError> {
    let body = decompress_body(request.content_encoding, request.body).await?;
    let envelope = envelope::parse(body).map_err(|e| IngestError::Malformed(e.to_string()))?;
    let dsn_key = envelope
        .header
        .dsn
        .as_deref()
        .and_then(|dsn| dsn.parse::<auth::Dsn>().ok())
        .map(|dsn| dsn.public_key);
    let grant = ingest
        .authorize(request.key.or(dsn_key).as_deref(), Some(request.project_id))
        .await?;
    let received = Received {
        project_id: grant.project_id,
        source: Source::Sentry,
        at: Utc::now(),
        envelope_event_id: envelope
            .header
            .event_id
            .as_deref()
            .and_then(event::parse_event_id),
    };
    let mut events = Vec::new();
    let mut first_error = None;
    for item in &envelope.items {
        ingest.metrics().count_item(&item.ty);
        if item.ty != "event" {
            continue;
        }
        match ingest.prepare(&item.payload, received, &grant.scrub) {
            Ok(event) => events.push(event),
            Err(error) => {
                first_error.get_or_insert(error);
            }
        }
    }
    if let (true, Some(error)) = (events.is_empty(), first_error) {
        return Err(error);
    }
    let ids = ingest.accept(&grant, Source::Sentry, events).await?;
    Ok(Ack {
        id: ids.first().copied().or(received.envelope_event_id),
    })
}

/// The older endpoint: the body is one event.
pub async fn store(ingest: &Ingest, request: SentryRequest) -> Result<Ack, IngestError> {
    let body = decompress_body(request.content_encoding, request.body).await?;
    let grant = ingest
        .authorize(request.key.as_deref(), Some(request.project_id))
        .await?;
    let received = Received {
        project_id: grant.project_id,
        source: Source::Sentry,
        at: Utc::now(),
        envelope_event_id: None,
    };
    ingest.metrics().count_item("event");
    let event = ingest.prepare(&body, received, &grant.scrub)?;
    let ids = ingest.accept(&grant, Source::Sentry, vec![event]).await?;
    Ok(Ack {
        id: ids.first().copied(),
    })
}
