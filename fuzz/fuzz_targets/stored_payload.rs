//! Ingestion's storing rule on any JSON text: read it as an event, scrub it, make the
//! stored document from the received text (patching the members scrubbing changed), and
//! read the document back. It is checked both ways ingestion prepares a Sentry event:
//! member by member, and through the whole tree.
//!
//! - What is stored must hold nothing the scrubbed tree does not: it must parse without a
//!   repeated key (a first value scrubbing never saw) and read back as exactly the
//!   scrubbed payload.
//! - Both ways must give the same row: event, grouping, scrub count and document.
#![no_main]

use libfuzzer_sys::fuzz_target;
use seismo::ingest::prepare::{self, Prepared};
use seismo::ingest::received::Received;
use seismo::ingest::sentry::{event, tree};
use seismo::model::Source;
use seismo::scrub;
use seismo::store::events;

#[path = "common.rs"]
#[allow(dead_code)]
mod common;

fuzz_target!(|data: &[u8]| {
    let settings = scrub::Settings::default();
    let received = Received {
        // Fixed, so that both ways give an event without an id the same one.
        envelope_event_id: Some(uuid::Uuid::from_u128(7)),
        ..common::received(Source::Sentry)
    };
    // The scrubbed tree, as the whole-tree way builds it.
    let Ok(mut parsed) = event::parse(data, received) else {
        return;
    };
    scrub::scrub_event_parts(&mut parsed, &settings);
    let whole = prepare::sentry_event_as_tree(data, received, &settings, None)
        .map(|p| opened(&p))
        .map_err(|e| e.to_string());
    let members = prepare::sentry_event(data, received, &settings, None)
        .map(|p| opened(&p))
        .map_err(|e| e.to_string());
    if let Ok((_, document, _)) = &whole {
        assert_eq!(
            document.get("payload"),
            Some(&parsed.payload),
            "the stored payload is not the scrubbed tree"
        );
    }
    assert_eq!(members, whole, "the two ways stored different rows");
});

/// The row without its compressed bytes, the document those hold, and the scrub count.
fn opened(prepared: &Prepared) -> (serde_json::Value, serde_json::Value, usize) {
    let mut row = serde_json::to_value(&prepared.row).expect("a row serializes");
    row["data"] = serde_json::Value::Null;
    let json = events::decompress(&prepared.row.data, None).expect("a stored document reads back");
    let document = tree::parse(&json).expect("a stored document is JSON");
    assert!(
        !document.repeated_keys,
        "the stored document repeats a key: {}",
        String::from_utf8_lossy(&json)
    );
    (row, document.value, prepared.scrubbed)
}
