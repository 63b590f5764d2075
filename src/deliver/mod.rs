//! Delivery: acting on incidents. The detector decides *that* something happened (it
//! writes outbox rows with the incident's change); this module decides only *where* it
//! goes and makes sure it gets there.
//!
//! ```text
//!  outbox (incident.opened | incident.escalated | incident.resolved | issue.*)
//!     │  fanout: claimed FOR UPDATE SKIP LOCKED; routed to the project's endpoints;
//!     │          deliveries inserted (UNIQUE endpoint+dedup key) and the rows deleted,
//!     ▼          in one transaction
//!  deliveries ──► send: leased in a short transaction (breaker, expiry and mail pacing
//!     │                 checked under the endpoint's row lock), sent after COMMIT:
//!     │                 webhooks signed (signing) through the SSRF-guarded client
//!     │                 (ssrf, client); mail rendered and sent over SMTP (mail)
//!     ▼
//!  result ──► delivered | retry (retry: schedule, jitter, Retry-After, expiry) | dead;
//!             410 disables the endpoint; the breaker (breaker) is updated
//!     │
//!     └─ a recovery action answered 2xx: recorded (store::recovery) and the incident
//!        moves open → recovering, in the same transaction
//! ```
//!
//! **The recovery loop.** An `incident.opened` row goes to the project's first recovery
//! endpoint (lowest `order`) whose incident kinds and services match, as a
//! `recovery.requested` webhook (payload), unless that endpoint acted on the service
//! within its cooldown. Once it is delivered the incident is `recovering`, and the
//! detector — which alone sees the series — watches the verification window
//! (`detect::verify`): back at baseline resolves the incident (a success); cleared then
//! back, or never cleared, is recorded as a false recovery or no recovery and escalates the
//! incident, writing `incident.escalated` with the failed action's `order`. Fanned out
//! here, that escalation mails people and sends the next recovery endpoint in the chain
//! (a rollback after a restart). Each outcome is counted in `/api/v1/stats` (P_recover).
//!
//! **Email.** A mail waits a short grouping window so incidents firing together arrive as
//! one digest, and at most one mail per endpoint goes out per repeat interval (what comes
//! in between joins the next digest). Silences hold: an incident that a silence covers
//! when its row is fanned out sends nothing.

pub mod breaker;
pub mod client;
pub mod endpoint_spec;
pub mod fanout;
pub mod mail;
pub mod payload;
pub mod retry;
pub mod send;
pub mod signing;
pub mod ssrf;
pub mod worker;

use std::time::Duration;

use crate::config::Config;
use crate::store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum DeliverError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Ssrf(#[from] ssrf::SsrfError),
    #[error(transparent)]
    Mail(#[from] mail::transport::MailError),
    #[error("cannot build the webhook client: {0}")]
    Client(#[from] reqwest::Error),
}

impl From<sqlx::Error> for DeliverError {
    fn from(error: sqlx::Error) -> DeliverError {
        DeliverError::Store(StoreError::from(error))
    }
}

/// How delivery behaves; `from_config` for `seismo serve`, shorter times in tests.
#[derive(Debug, Clone)]
pub struct Settings {
    /// How often the worker looks for outbox rows and due deliveries.
    pub interval: Duration,
    /// Outbox rows or deliveries taken per round.
    pub batch: i64,
    /// How long a claimed delivery is its sender's (longer than any attempt lasts).
    pub lease: Duration,
    /// Sends in flight at once per process.
    pub concurrency: usize,
    pub notifications: retry::Schedule,
    pub recovery: retry::Schedule,
    /// A recovery action not delivered this long after it was requested is dropped.
    pub recovery_expiry: Duration,
    /// How long after a recovery action the series has to get back to its baseline.
    pub verify_window: Duration,
    pub mail_group_wait: Duration,
    pub mail_repeat: Duration,
    pub breaker: breaker::Policy,
    pub timeouts: client::Timeouts,
    pub links: payload::Links,
}

impl Settings {
    pub fn from_config(config: &Config) -> Settings {
        let minutes = |m: u64| Duration::from_secs(60 * m);
        Settings {
            interval: Duration::from_millis(250),
            batch: 200,
            lease: Duration::from_secs(60),
            concurrency: 16,
            notifications: retry::Schedule::notifications(),
            recovery: retry::Schedule::recovery(),
            recovery_expiry: minutes(config.recovery_expire_minutes),
            verify_window: minutes(config.recovery_verify_minutes),
            mail_group_wait: Duration::from_secs(config.mail_group_wait_seconds),
            mail_repeat: minutes(config.mail_repeat_minutes),
            breaker: breaker::Policy::default(),
            timeouts: client::Timeouts::default(),
            links: config.links(),
        }
    }
}

/// A configured duration as a time step (saturating: a huge setting means "never").
pub(crate) fn delta(duration: Duration) -> chrono::TimeDelta {
    chrono::TimeDelta::from_std(duration).unwrap_or(chrono::TimeDelta::MAX)
}
