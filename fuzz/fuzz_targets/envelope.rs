//! A Sentry envelope body: framing, then each event item through the store path.
#![no_main]

use libfuzzer_sys::fuzz_target;
use seismo::ingest::sentry::{envelope, event};
use seismo::model::Source;

#[path = "common.rs"]
mod common;

fuzz_target!(|data: &[u8]| {
    let Ok(parsed) = envelope::parse(bytes::Bytes::copy_from_slice(data)) else {
        return;
    };
    for item in &parsed.items {
        if item.ty == "event" {
            if let Ok(event) = event::parse(&item.payload, common::received(Source::Sentry)) {
                common::store_path(event);
            }
        }
    }
});
