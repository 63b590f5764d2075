//! The CPU cost of preparing one Sentry event in process — read, scrub, group, compress
//! into the stored row — as ingestion does it (the text read member by member) and with the
//! payload's whole tree built, with scrubbing on and off. (Network, decompression and the
//! database come on top; see `bench/ingest.sh` for the end-to-end rate.)
//!
//! `cargo run --release --example prepare_cost -- [events [way]]` prints µs per event for each,
//! the best of five rounds.

use std::time::Instant;

use chrono::Utc;
use rand::rngs::StdRng;
use rand::SeedableRng;
use seismo::ingest::prepare::{self, PrepareError, Prepared};
use seismo::ingest::received::Received;
use seismo::model::Source;
use seismo::scrub::Settings;

#[path = "sentry_events.rs"]
#[allow(dead_code)]
mod sentry_events;

const GROUPS: usize = 50;
const VARIANTS: usize = 4;
const ROUNDS: usize = 5;

type Prepare = fn(
    &[u8],
    Received,
    &Settings,
    Option<&seismo::store::dictionaries::Dictionary>,
) -> Result<Prepared, PrepareError>;

fn main() {
    let events: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(20_000);
    let payloads = payloads();
    let average = payloads.iter().map(Vec::len).sum::<usize>() / payloads.len();
    println!("events {events}, payload {average} bytes on average");
    let on = Settings::default();
    let off = Settings {
        enabled: false,
        ..Settings::default()
    };
    let ways: [(&str, Prepare, &Settings); 4] = [
        ("read by members", prepare::sentry_event, &on),
        ("whole tree", prepare::sentry_event_as_tree, &on),
        (
            "read by members, scrubbing off",
            prepare::sentry_event,
            &off,
        ),
        (
            "whole tree, scrubbing off",
            prepare::sentry_event_as_tree,
            &off,
        ),
    ];
    // Rounds alternate the ways, and the fastest round of each counts: on a shared
    // machine the slower ones measure the neighbours.
    // A second argument runs only the ways whose name starts with it (for a profiler).
    let only = std::env::args().nth(2).unwrap_or_default();
    let mut best = [f64::INFINITY; 4];
    for round in 0..ROUNDS {
        for (i, (_, prepare, settings)) in ways.iter().enumerate() {
            if !ways[i].0.starts_with(&only) {
                continue;
            }
            let micros = measure(&payloads, events, settings, *prepare);
            best[i] = best[i].min(micros);
            println!("round {round}: {} {micros:.1} µs/event", ways[i].0);
        }
    }
    for ((name, _, _), micros) in ways.iter().zip(best) {
        println!("best: {name} {micros:.1} µs/event");
    }
}

/// Microseconds per event.
fn measure(payloads: &[Vec<u8>], events: usize, settings: &Settings, prepare: Prepare) -> f64 {
    let started = Instant::now();
    for i in 0..events {
        let received = Received {
            project_id: seismo::model::ProjectId(1),
            source: Source::Sentry,
            at: Utc::now(),
            envelope_event_id: None,
        };
        let text = &payloads[i % payloads.len()];
        let prepared = prepare(text, received, settings, None);
        assert!(prepared.is_ok(), "the benchmark's own events are prepared");
    }
    started.elapsed().as_secs_f64() * 1e6 / events as f64
}

fn payloads() -> Vec<Vec<u8>> {
    let mut rng = StdRng::seed_from_u64(0x5e15_0000);
    let now = Utc::now().timestamp_millis() as f64 / 1000.0;
    let mut payloads = Vec::new();
    for variant in 0..VARIANTS {
        for group in 0..GROUPS {
            let mut event = sentry_events::build_event(group, variant, now, &mut rng);
            event["event_id"] = uuid::Uuid::new_v4().simple().to_string().into();
            payloads.push(serde_json::to_vec(&event).expect("JSON"));
        }
    }
    payloads
}
