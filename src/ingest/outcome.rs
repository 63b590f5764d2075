//! Outcomes: every event that reaches Seismo ends in exactly one of them, and each is counted
//! in `seismo_events_received_total{source,outcome,reason}`. A drop without an outcome is a bug.

use crate::metrics::Metrics;
use crate::model::Source;

/// Why an event was not accepted. The snake_case names are metric labels: a fixed set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Reason {
    /// Seen before (an SDK retry): stored once, acknowledged again.
    Duplicate,
    /// The project's events-per-minute quota is used up.
    Quota,
    /// The writer queue is full.
    Backpressure,
    /// PostgreSQL could not be reached.
    StorageUnavailable,
    /// PostgreSQL could not take the events and the local spool is full.
    SpoolFull,
    /// PostgreSQL refused the data.
    StorageRejected,
    /// The key's project was deleted while its key was still cached.
    ProjectDeleted,
    /// Not parseable as an event.
    Malformed,
    /// Larger than the per-event limit.
    TooLarge,
}

impl Reason {
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Duplicate => "duplicate",
            Reason::Quota => "quota",
            Reason::Backpressure => "backpressure",
            Reason::StorageUnavailable => "storage_unavailable",
            Reason::SpoolFull => "spool_full",
            Reason::StorageRejected => "storage_rejected",
            Reason::ProjectDeleted => "project_deleted",
            Reason::Malformed => "malformed",
            Reason::TooLarge => "too_large",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Outcome {
    Accepted,
    Filtered(Reason),
    RateLimited(Reason),
    Invalid(Reason),
}

impl Outcome {
    pub fn name(self) -> &'static str {
        match self {
            Outcome::Accepted => "accepted",
            Outcome::Filtered(_) => "filtered",
            Outcome::RateLimited(_) => "rate_limited",
            Outcome::Invalid(_) => "invalid",
        }
    }

    pub fn reason(self) -> &'static str {
        match self {
            Outcome::Accepted => "",
            Outcome::Filtered(r) | Outcome::RateLimited(r) | Outcome::Invalid(r) => r.as_str(),
        }
    }
}

/// Counts `n` events of `source` as ending in `outcome`.
pub fn record(metrics: &Metrics, source: Source, outcome: Outcome, n: usize) {
    metrics.count_outcome(source.as_str(), outcome.name(), outcome.reason(), n as u64);
}
