//! Offline evaluation of the detector (`seismo eval`): the production detector
//! ([`replay::scores`]) run over recorded or generated series, and scored.
//!
//! ```text
//!  NAB corpus (data/, labels/, config/)   recorded CSV            synthetic generator
//!    │ corpus: rows, windows, profiles      │ csv_replay: parse      │ synthetic: seeded counts
//!    │                                      │                        │ + labelled anomalies
//!    │                                      │                        │ (live_cases: fresh series,
//!    │                                      │                        │ rhythm, slow ramps, ratios)
//!    ▼                                      ▼                        ▼
//!  replay::scores ── one anomaly score in [0, 1] per point, the code production runs
//!    │                                      │                        │
//!    ▼                                      ▼                        ▼
//!  nab: results in NAB layout,            CSV + scores,           episodes: alert episodes →
//!  scorer: NAB rules, one threshold       summary                 precision, recall, delay
//!  per profile and subset
//! ```
//!
//! Nothing here decides anything in production: it only measures. Every input is parsed
//! at the edge into typed rows with one-line errors (file, line, reason); after that the
//! code is pure arithmetic and cannot fail.

pub mod corpus;
pub mod csv_replay;
pub mod episodes;
pub mod live_cases;
pub mod nab;
mod parallel;
pub mod replay;
pub mod sampling;
pub mod scorer;
pub mod synthetic;
