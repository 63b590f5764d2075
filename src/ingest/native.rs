//! Seismo's own JSON for curl and scripts: `POST /api/v1/events` with one event or an array,
//! the key in `x-seismo-key` (or `Authorization: Bearer <key>`). An event uses the Sentry
//! event fields (`message`, `level`, `exception`, `release`, `environment`, `tags`,
//! `fingerprint`, …) plus a top-level `service`; the smallest is `{"message": "boom"}`.

use bytes::Bytes;
use chrono::Utc;
use serde_json::Value;

use super::received::Received;
use super::{decompress_body, Ingest, IngestError};
use crate::model::Source;

#[derive(Debug)]
pub struct NativeRequest {
    pub key: Option<String>,
    pub content_encoding: Option<String>,
    pub body: Bytes,
}

/// Stores the events and returns their ids, in order.
pub async fn events(
    ingest: &Ingest,
    request: NativeRequest,
) -> Result<Vec<uuid::Uuid>, IngestError> {
    let body = decompress_body(request.content_encoding, request.body).await?;
    let grant = ingest.authorize(request.key.as_deref(), None).await?;
    let items = match serde_json::from_slice::<Value>(&body) {
        Ok(Value::Array(items)) => items,
        Ok(single) => vec![single],
        Err(e) => {
            return Err(IngestError::Malformed(
                format!("body is not JSON: {e}").replace('\n', " "),
            ))
        }
    };
    if items.is_empty() {
        return Err(IngestError::Malformed("the array holds no events".into()));
    }
    let received = Received {
        project_id: grant.project_id,
        source: Source::Native,
        at: Utc::now(),
        envelope_event_id: None,
    };
    let mut events = Vec::with_capacity(items.len());
    let mut first_error = None;
    for item in items {
        // Re-serialized so each event is held to the per-event limit on its own; this path
        // serves scripts, not SDK traffic, so the second parse costs nothing that matters.
        let payload = serde_json::to_vec(&item).unwrap_or_default();
        match ingest.prepare(&payload, received, &grant.scrub) {
            Ok(event) => events.push(event),
            Err(error) => {
                first_error.get_or_insert(error);
            }
        }
    }
    if let (true, Some(error)) = (events.is_empty(), first_error) {
        return Err(error);
    }
    ingest.accept(&grant, Source::Native, events).await
}
