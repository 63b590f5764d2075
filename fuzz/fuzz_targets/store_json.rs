//! The store endpoint's event JSON, normalized into an `ErrorEvent`, then the store path.
#![no_main]

use libfuzzer_sys::fuzz_target;
use seismo::ingest::sentry::event;
use seismo::model::Source;

#[path = "common.rs"]
mod common;

fuzz_target!(|data: &[u8]| {
    if let Ok(event) = event::parse(data, common::received(Source::Sentry)) {
        common::store_path(event);
    }
});
