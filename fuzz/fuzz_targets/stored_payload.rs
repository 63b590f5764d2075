//! Ingestion's storing rule on any JSON text: parse it as an event, scrub it, make the
//! stored document from the received text (patching the members scrubbing changed), and
//! read the document back. What is stored must hold nothing the scrubbed tree does not:
//! it must parse without a repeated key (a first value scrubbing never saw) and read back
//! as exactly the scrubbed payload.
#![no_main]

use libfuzzer_sys::fuzz_target;
use seismo::ingest::received_payload;
use seismo::ingest::sentry::{event, tree};
use seismo::model::Source;
use seismo::scrub;
use seismo::store::events::{self, NewEvent};

#[path = "common.rs"]
#[allow(dead_code)]
mod common;

fuzz_target!(|data: &[u8]| {
    let Ok((mut event, exact)) = event::parse_received(data, common::received(Source::Sentry))
    else {
        return;
    };
    let scrubbed = scrub::scrub_event_parts(&mut event, &scrub::Settings::default());
    let received = exact.then(|| received_payload(data, &scrubbed)).flatten();
    let payload = event.payload.clone();
    let grouping = seismo::grouping::group(&event);
    let Ok(stored) = NewEvent::with_received_payload(event, grouping, received, None) else {
        return;
    };
    let json = events::decompress(&stored.data, None).expect("a stored document reads back");
    let document = tree::parse(&json).expect("a stored document is JSON");
    assert!(
        !document.repeated_keys,
        "the stored document repeats a key: {}",
        String::from_utf8_lossy(&json)
    );
    assert_eq!(
        document.value.get("payload"),
        Some(&payload),
        "the stored payload is not the scrubbed tree"
    );
});
