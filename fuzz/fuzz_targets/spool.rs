//! A damaged spool: the input is the first segment's bytes, the reader opens the folder
//! (cutting a torn tail) and reads every record to the end. Reading must never panic or
//! loop. The input also goes through the record reader directly and, framed as a sound
//! record, through the payload decoder (its checksum would otherwise hide it).
#![no_main]

use std::sync::Arc;

use libfuzzer_sys::fuzz_target;
use seismo::metrics::Metrics;
use seismo::store::spool::log::Segments;
use seismo::store::spool::record::{self, Found};
use seismo::store::spool::{Next, Spool};

fuzz_target!(|data: &[u8]| {
    read_all(data);
    let mut framed = record::encode(data, 1);
    framed.extend_from_slice(data);
    read_all(&framed);
    let Ok(dir) = tempfile::tempdir() else {
        return;
    };
    if std::fs::write(Segments::path_of(dir.path(), 0), &framed).is_err() {
        return;
    }
    let Ok(spool) = Spool::open(dir.path(), 1 << 30, Arc::new(Metrics::new())) else {
        return;
    };
    // Each read moves forward, so a few thousand steps is more than any input holds.
    for _ in 0..10_000 {
        match spool.next() {
            Ok(Next::Batch { after, batch }) => spool.advance(after, Some(&batch)),
            Ok(Next::Skipped { after, .. }) => spool.advance(after, None),
            Ok(Next::Drained) | Err(_) => return,
        }
    }
    panic!(
        "the spool reader did not reach the end of a {}-byte segment",
        framed.len()
    );
});

fn read_all(bytes: &[u8]) {
    let mut at = 0;
    loop {
        match record::read(bytes, at) {
            Found::Record { next, .. } | Found::Damaged { next, .. } | Found::Garbage { next } => {
                assert!(next > at, "the record reader moved backwards at {at}");
                at = next;
            }
            Found::Incomplete | Found::End => return,
        }
    }
}
