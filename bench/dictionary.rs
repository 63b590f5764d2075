//! What a trained zstd dictionary does to the stored event documents: bytes per document
//! and compression CPU, without a dictionary and with one, at zstd levels 1 and 3 and a few
//! dictionary sizes. The documents are built by the same code as ingestion's (parse, scrub,
//! the stored row's JSON) from the load generator's ~6 KB Python events, each drawn afresh
//! (its own line numbers, order id, user and worker): `loadgen` repeats 200 templates, which
//! would flatter a dictionary. The first `train` documents train it; the rest are measured.
//!
//! `cargo run --release --example dictionary -- [events] [train]`

use std::time::Instant;

use chrono::Utc;
use rand::rngs::StdRng;
use rand::SeedableRng;
use seismo::ingest::received::Received;
use seismo::ingest::sentry::event::parse;
use seismo::model::{ProjectId, Source};
use seismo::scrub::{scrub_event, Settings};
use seismo::store::dictionaries::Dictionary;
use seismo::store::events::{compress, document_bytes};

#[path = "sentry_events.rs"]
#[allow(dead_code)]
mod sentry_events;

const GROUPS: usize = 50;

fn main() {
    let mut args = std::env::args().skip(1).map(|a| a.parse::<usize>().ok());
    let events = args.next().flatten().unwrap_or(20_000);
    let train = args.next().flatten().unwrap_or(1_000);
    let documents = documents(events + train);
    let (training, measured) = documents.split_at(train);
    let raw = measured.iter().map(Vec::len).sum::<usize>() as f64 / measured.len() as f64;
    println!(
        "{} documents measured, {raw:.0} raw bytes each; {train} to train",
        measured.len()
    );
    for level in [1, 3] {
        report(
            &format!("level {level}, no dictionary"),
            measured,
            raw,
            |json| zstd::bulk::compress(json, level).expect("zstd").len(),
        );
    }
    for size in [16 * 1024, 32 * 1024, 64 * 1024, 110 * 1024] {
        let started = Instant::now();
        let bytes = zstd::dict::from_samples(training, size).expect("a dictionary");
        let trained_in = started.elapsed().as_secs_f64();
        let dictionary = Dictionary::new(1, &bytes);
        let memory = memory_per_dictionary(&bytes) / 1024.0;
        report(
            &format!(
                "level {}, {} KiB dictionary (trained in {trained_in:.2} s, {memory:.0} KiB in memory)",
                seismo::store::dictionaries::LEVEL,
                size / 1024
            ),
            measured,
            raw,
            |json| compress(json, Some(&dictionary)).expect("zstd").len(),
        );
        let mut level_1 = zstd::bulk::Compressor::with_dictionary(1, &bytes).expect("zstd");
        report(
            &format!("level 1, {} KiB dictionary", size / 1024),
            measured,
            raw,
            |json| level_1.compress(json).expect("zstd").len(),
        );
    }
}

/// Resident bytes one prepared dictionary costs a process (each project with one holds it).
fn memory_per_dictionary(bytes: &[u8]) -> f64 {
    const COUNT: usize = 200;
    let before = resident_bytes();
    let held: Vec<Dictionary> = (0..COUNT).map(|_| Dictionary::new(1, bytes)).collect();
    let after = resident_bytes();
    drop(held);
    (after - before) / COUNT as f64
}

fn resident_bytes() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|kb| kb.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(0.0, |kb| kb * 1024.0)
}

fn report(label: &str, documents: &[Vec<u8>], raw: f64, mut compress: impl FnMut(&[u8]) -> usize) {
    let started = Instant::now();
    let total: usize = documents.iter().map(|d| compress(d)).sum();
    let micros = started.elapsed().as_secs_f64() * 1e6 / documents.len() as f64;
    let bytes = total as f64 / documents.len() as f64;
    println!(
        "{label}: {bytes:.0} bytes per document ({:.1} % of raw), {micros:.1} µs per document",
        100.0 * bytes / raw
    );
}

/// Stored-row JSON of `count` events, as ingestion builds it.
fn documents(count: usize) -> Vec<Vec<u8>> {
    let mut rng = StdRng::seed_from_u64(0x5e15_0001);
    let settings = Settings::default();
    (0..count)
        .map(|i| {
            let now = Utc::now().timestamp_millis() as f64 / 1000.0;
            let variant = (i / GROUPS) % 4;
            let mut event = sentry_events::build_event(i % GROUPS, variant, now, &mut rng);
            event["event_id"] = uuid::Uuid::new_v4().simple().to_string().into();
            let payload = serde_json::to_vec(&event).expect("JSON");
            let received = Received {
                project_id: ProjectId(1),
                source: Source::Sentry,
                at: Utc::now(),
                envelope_event_id: None,
            };
            let mut event = parse(&payload, received).expect("the benchmark's own events parse");
            scrub_event(&mut event, &settings);
            document_bytes(&event).expect("a document")
        })
        .collect()
}
