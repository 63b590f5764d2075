//! The detector's incident policy: when a series counts as recovered on its own.
//!
//! The lifecycle itself (kinds, states, the transitions allowed, the JSON an incident is
//! announced with) is shared by every layer and lives in `model::incident`.

/// Closed buckets a series must stay at its baseline before its incident resolves itself.
pub const RESOLVE_AFTER_CALM_BUCKETS: i32 = 5;
