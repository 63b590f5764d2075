//! The CPU cost of preparing one Sentry event in process — parse and normalize, scrub,
//! group, compress into the stored row — with scrubbing on and off, and the share of it
//! that scrubbing takes. (Network, decompression and the database come on top; see
//! `bench/ingest.sh` for the end-to-end rate.)
//!
//! `cargo run --release --example prepare_cost -- [events]` prints µs per event for each
//! stage and scrubbing's share of the whole preparation. The stored row is built as
//! ingestion builds it (its payload from the received text, the members scrubbing changed
//! written again); `row, payload serialized` is the same row with the whole payload
//! serialized from the tree, as before that.

use std::time::Instant;

use chrono::Utc;
use rand::rngs::StdRng;
use rand::SeedableRng;
use seismo::grouping;
use seismo::ingest::received::Received;
use seismo::ingest::received_payload;
use seismo::ingest::sentry::event::parse_received;
use seismo::model::Source;
use seismo::scrub::{scrub_event_parts, Settings};
use seismo::store::events::NewEvent;

#[path = "sentry_events.rs"]
#[allow(dead_code)]
mod sentry_events;

const GROUPS: usize = 50;
const VARIANTS: usize = 4;

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
    for round in 0..2 {
        let with = measure(&payloads, events, &on);
        let without = measure(&payloads, events, &off);
        let scrub_share = with.scrub / with.total();
        println!(
            "round {round}: parse {:.1} µs, scrub {:.1} µs, group {:.1} µs, store row {:.1} µs = {:.1} µs/event; \
             without scrubbing {:.1} µs/event; scrubbing = {:.1} % of preparation; \
             row, payload serialized {:.1} µs",
            with.parse, with.scrub, with.group, with.row, with.total(), without.total(),
            100.0 * scrub_share, with.serialized_row
        );
    }
}

/// Microseconds per event spent in each stage.
#[derive(Default)]
struct Stages {
    parse: f64,
    scrub: f64,
    group: f64,
    row: f64,
    serialized_row: f64,
}

impl Stages {
    fn total(&self) -> f64 {
        self.parse + self.scrub + self.group + self.row
    }
}

fn measure(payloads: &[Vec<u8>], events: usize, settings: &Settings) -> Stages {
    let mut seconds = [0.0f64; 5];
    let mut lap = |stage: usize, started: &mut Instant| {
        let now = Instant::now();
        seconds[stage] += (now - *started).as_secs_f64();
        *started = now;
    };
    for i in 0..events {
        let received = Received {
            project_id: seismo::model::ProjectId(1),
            source: Source::Sentry,
            at: Utc::now(),
            envelope_event_id: None,
        };
        let text = &payloads[i % payloads.len()];
        let mut started = Instant::now();
        let Ok((mut event, exact)) = parse_received(text, received) else {
            panic!("the benchmark's own events parse");
        };
        lap(0, &mut started);
        let scrubbed = scrub_event_parts(&mut event, settings);
        lap(1, &mut started);
        let grouping = grouping::group(&event);
        lap(2, &mut started);
        let copy = (event.clone(), grouping.clone());
        started = Instant::now();
        let received = exact.then(|| received_payload(text, &scrubbed)).flatten();
        let row = NewEvent::with_received_payload(event, grouping, received, None);
        lap(3, &mut started);
        assert!(row.is_ok());
        let row = NewEvent::new(copy.0, copy.1);
        lap(4, &mut started);
        assert!(row.is_ok());
    }
    let per_event = |s: f64| s * 1e6 / events as f64;
    Stages {
        parse: per_event(seconds[0]),
        scrub: per_event(seconds[1]),
        group: per_event(seconds[2]),
        row: per_event(seconds[3]),
        serialized_row: per_event(seconds[4]),
    }
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
