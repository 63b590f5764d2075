//! Detection: turns the per-minute counts the writer stores into incidents.
//!
//! ```text
//!  store::counts (closed minute buckets)
//!     │
//!     ▼
//!  worker     per leased project, every closed minute: load/replay state, step, decide,
//!     │       commit incidents + checkpoint (the only part here that does I/O, via store)
//!     ▼
//!  engine     one project's series: every known series stepped each bucket (a missing
//!     │       minute is a zero), series born with their first count, idle ones forgotten
//!     ├──► anomaly   streaming detector, O(1) per point, ≤ 256 bytes of state per series
//!     │              (tail: the count / binomial / normal tails it scores with)
//!     │       (worker also: new issue and regression from the issue rows)
//!     ├──► threshold  "≥ N in M minutes" with hysteresis, walked bucket by bucket:
//!     │               threshold rules and ignored issues' escalation
//!     ▼
//!  decisions  what the pass found, per series: the incident to open (or the kinds to add
//!     │       to the series' active one), the calm streaks that resolve incidents
//!     ▼
//!  worker::commit  one transaction: open or worsen, end the incidents of issues a person
//!                  resolved or ignored, resolve the calm ones, state and checkpoint
//! ```
//!
//! `anomaly`, `decisions`, `engine`, `incidents`, `tail`, `threshold` and `verify` are pure: given the same points
//! they make the same decisions, so `seismo eval` (the `eval` module, which depends on this
//! core and never the other way) runs exactly the production code over recorded series
//! (NAB, a CSV, seeded synthetic streams).

pub mod anomaly;
pub mod decisions;
pub mod engine;
pub mod incidents;
pub mod series;
pub mod tail;
pub mod threshold;
pub mod verify;
pub mod worker;
