//! What the request (not the payload) tells about an event, and the one rule every
//! source applies to the time an event claims.

use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::model::{ProjectId, Source};

/// A client clock more than this far ahead is not believed.
const MAX_CLOCK_DRIFT_SECONDS: i64 = 60;
/// An event claiming to be older than this is not believed either.
const MAX_EVENT_AGE_DAYS: i64 = 30;

/// The time an event says it happened, if plausible; else the time it was received. Like
/// Sentry, this keeps a wrong client clock from scattering events (the original stays in the
/// payload), and keeps every stored time within PostgreSQL's range.
pub fn plausible_timestamp(
    claimed: Option<DateTime<Utc>>,
    received: DateTime<Utc>,
) -> DateTime<Utc> {
    let earliest = received - chrono::TimeDelta::days(MAX_EVENT_AGE_DAYS);
    let latest = received + chrono::TimeDelta::seconds(MAX_CLOCK_DRIFT_SECONDS);
    claimed
        .filter(|t| (earliest..=latest).contains(t))
        .unwrap_or(received)
}

/// What the request (not the payload) tells about an event.
#[derive(Debug, Clone, Copy)]
pub struct Received {
    pub project_id: ProjectId,
    pub source: Source,
    pub at: DateTime<Utc>,
    /// An id the request gives for the event (a Sentry envelope header's `event_id`), used
    /// when the payload has none.
    pub envelope_event_id: Option<Uuid>,
}
