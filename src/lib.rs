//! Seismo: self-hosted error tracking, anomaly detection and automated recovery.
//!
//! The path of an event through this crate:
//!
//! ```text
//!  SDK / exporter ──HTTP/gRPC──► http::{sentry, otlp, native, grpc}   (key, encoding, body)
//!                             │
//!                             ▼
//!                           ingest       decompress (bounded) → parse → authorize (key → project)
//!                             │          → model::ErrorEvent → scrub → grouping → store::events::NewEvent
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
//!                           outbox rows     → deliver: webhooks, recovery actions, email
//! ```
//!
//! Where things live: `model` the types every layer speaks in (the event, series keys,
//! incidents, ids); `config` the typed settings; `metrics` every Prometheus metric;
//! `grouping` and `scrub` pure passes over an event; `detect` the detector (a pure core,
//! and `detect::worker`, its only I/O); `eval` the offline replay and scoring of that core
//! (`seismo eval`); `store` all SQL, the writer and retention; `pg_runner` the PostgreSQL
//! cluster Seismo runs itself when no database is given; `ingest` from request bytes to
//! stored events; `deliver` the outbox's webhooks and mail; `app` the shared state of one
//! process; `http` the axum and gRPC servers, the API and its published schema;
//! `telemetry` Seismo's own logs and traces; `cli` the `seismo` commands.
//!
//! The layers, bottom up. A module may import only the modules on its line (and itself);
//! `tests/integration/layers.rs` reads every `crate::` path under `src/` against this table
//! and fails, naming the file and line, on an import it does not allow or on a cycle.
//!
//! ```text layers
//! model          : —
//! pg_runner      : —
//! config         : model
//! metrics        : model
//! grouping       : model
//! scrub          : model
//! telemetry      : model, config
//! detect         : model, config
//! detect::worker : model, config, metrics, store
//! eval           : model, detect
//! store          : model, config, metrics, grouping, scrub
//! ingest         : model, config, metrics, grouping, scrub, store
//! deliver        : model, config, metrics, store
//! app            : model, config, metrics, store, ingest, deliver
//! http           : model, config, metrics, grouping, scrub, detect, store, ingest, deliver, app, telemetry
//! cli            : *
//! ```
//!
//! `store` reads `scrub` only for the type of a project's scrub settings, which it keeps.

pub mod app;
pub mod cli;
pub mod config;
pub mod deliver;
pub mod detect;
pub mod eval;
pub mod grouping;
pub mod http;
pub mod ingest;
pub mod metrics;
pub mod model;
pub mod pg_runner;
pub mod scrub;
pub mod store;
pub mod telemetry;
