//! One detection tick over many series, in memory: the CPU cost of `ProjectDetector::step`
//! (the part of a pass that grows with the number of series; reading counts and saving
//! state are measured by the database, not here).
//!
//! `cargo run --release --example detect_tick -- [series] [ticks]` prints series/s and the
//! time per tick. Series are issue series with Poisson-ish counts at mixed rates; one in
//! ten has an event in a given minute, as in a real project where most issues are quiet.

use std::collections::HashMap;
use std::time::Instant;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use seismo::detect::anomaly::Sensitivity;
use seismo::detect::engine::{AnomalyRules, ProjectDetector};
use seismo::model::{IssueId, Scope, Tally};

fn main() {
    let mut args = std::env::args().skip(1);
    let series: i64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(100_000);
    let ticks: i64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(20);
    let rules = AnomalyRules {
        counts: Some(Sensitivity::Medium),
        error_rate: Some(Sensitivity::Medium),
    };
    let mut rng = StdRng::seed_from_u64(1);
    let mut detector = ProjectDetector::default();
    let mut minute = 0i64;
    let bucket = |rng: &mut StdRng, everyone: bool| -> HashMap<Scope, Tally> {
        let mut counts = HashMap::new();
        for id in 0..series {
            if !everyone && id % 10 != 0 && rng.random::<f64>() >= 0.1 {
                continue;
            }
            let events = 1 + (id % 7) + i64::from(rng.random::<f64>() < 0.3);
            let tally = Tally {
                events,
                ..Tally::default()
            };
            counts.insert(Scope::Issue(IssueId(id)), tally);
        }
        counts
    };
    // Warm up: every series appears, then gets past its first buckets.
    for warm_up in 0..15 {
        let counts = bucket(&mut rng, warm_up == 0);
        detector.step(minute * 60, &counts, rules);
        minute += 1;
    }
    let prepared: Vec<HashMap<Scope, Tally>> =
        (0..ticks).map(|_| bucket(&mut rng, false)).collect();
    let held = detector.series.len();
    let started = Instant::now();
    let mut fired = 0;
    for counts in &prepared {
        fired += detector.step(minute * 60, counts, rules).len();
        minute += 1;
    }
    let elapsed = started.elapsed().as_secs_f64();
    let per_tick = elapsed / ticks as f64;
    println!(
        "series held {held}, ticks {ticks}: {:.1} ms per tick, {:.0} series/s, {fired} firings",
        per_tick * 1e3,
        held as f64 / per_tick
    );
}
