//! What every target shares: the request facts an ingested payload comes with, and the
//! path every normalized event takes before it is stored (scrub, group, compress).

use seismo::ingest::received::Received;
use seismo::model::{ErrorEvent, ProjectId, Source};

pub fn received(source: Source) -> Received {
    Received {
        project_id: ProjectId(1),
        source,
        at: chrono::Utc::now(),
        envelope_event_id: None,
    }
}

/// Scrubs, groups and encodes an event as ingestion does before a batch is written.
pub fn store_path(mut event: ErrorEvent) {
    seismo::scrub::scrub_event(&mut event, &seismo::scrub::Settings::default());
    let grouping = seismo::grouping::group(&event);
    let _ = seismo::store::events::NewEvent::new(event, grouping);
}
