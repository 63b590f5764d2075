//! Detection: turns the per-minute counts the writer stores into incidents.
//!
//! ```text
//!  store::counts (closed minute buckets)
//!     │
//!     ▼
//!  series     one Point per series per bucket: events, and for services requests/failed
//!     │
//!     ├──► anomaly   streaming detector, O(1) per point, ≤ 256 bytes of state per series
//!     ├──► rules     exact rules: new issue, regression, "≥ N in M minutes", mute escalation
//!     ▼
//!  incidents  open → recovering → resolved | escalated (pure state machine; store persists)
//! ```
//!
//! Everything here is pure: given the same points it makes the same decisions, so `seismo
//! eval` ([`replay`]) runs exactly the production code over recorded series.

pub mod anomaly;
pub mod engine;
pub mod eval;
pub mod incidents;
pub mod replay;
pub mod series;
pub mod tail;
pub mod worker;
