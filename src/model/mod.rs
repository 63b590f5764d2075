//! The ground floor: the types every other module speaks in, and nothing else.
//!
//! ```text
//!  ingest ──parses into──► ErrorEvent (event.rs) ──► grouping, scrub, store
//!  store::writer ──sums──► SeriesMinute → Tally (series.rs) ──► detect
//!  detect ──decides──► Incident, Kind, State (incident.rs) ──► store, deliver, http
//! ```
//!
//! Ids that cross modules are newtypes (`ids.rs`). This module imports nothing from the
//! rest of the crate and does no I/O, so every layer above may use it.

pub mod event;
pub mod ids;
pub mod incident;
pub mod json;
pub mod series;

pub use event::{ErrorEvent, Exception, Frame, Level, Source};
pub use ids::{Fingerprint, IncidentId, IssueId, ProjectId};
pub use incident::{Incident, Kind, State};
pub use series::{Scope, SeriesMinute, SpanTally, Tally};
