//! Seismo: self-hosted error tracking, anomaly detection and automated recovery.
//!
//! The path of an event through this crate:
//!
//! ```text
//!  SDK / exporter ──HTTP──► http::sentry / http::native     (extract key, encoding, body)
//!                             │
//!                             ▼
//!                           ingest       decompress (bounded) → parse → authorize (key → project)
//!                             │          → ErrorEvent → grouping::group → store::events::NewEvent
//!                             │          → quota; every event ends in exactly one outcome
//!                             ▼
//!                           store::writer  group commit: one transaction per batch from all
//!                             │            requests (releases, issues summed per fingerprint,
//!                             │            events into the day's partition, per-minute counts)
//!                             ▼
//!                           PostgreSQL   ── the HTTP answer goes out only after COMMIT
//!                             │
//!                             ├──► http::api      issues, events, incidents, rules as JSON
//!                             ▼
//!                           detect::worker  every closed minute, per leased project: the
//!                             │             anomaly detector over each series + the exact
//!                             │             rules (new issue, regression, thresholds,
//!                             │             mute escalation) → incidents, history, outbox
//!                             ▼
//!                           outbox rows     (delivered by the webhook/email workers, later)
//! ```
//!
//! `config` holds the typed settings, `metrics` every Prometheus metric, `telemetry` the
//! logs, `app` the shared state of one process, and `cli` the `seismo` commands that
//! wire it all together (`seismo eval` replays `detect` offline). `store::retention`
//! keeps disk use bounded without touching counts.

pub mod app;
pub mod cli;
pub mod config;
pub mod detect;
pub mod grouping;
pub mod grpc;
pub mod http;
pub mod ingest;
pub mod metrics;
pub mod model;
pub mod scrub;
pub mod store;
pub mod telemetry;
