//! The per-endpoint circuit breaker, as a pure state machine. Its state lives in the
//! endpoint's row (`store::endpoints`), read and written under a row lock, so every replica
//! sharing the database sees one breaker per endpoint.
//!
//! ```text
//!  closed ──(threshold consecutive failures)──► open ──(cool-off over)──► half_open
//!    ▲                                          ▲                           │ one probe
//!    └──────────────(probe succeeds)────────────┼───────────────────────────┤
//!                                               └──────(probe fails)────────┘
//! ```
//!
//! While open, deliveries to the endpoint wait (their attempts are not spent); a half-open
//! breaker lets exactly one delivery through, and holds the others until it answers (or
//! until the probe's own deadline passes, should its sender die).

use std::time::Duration;

use chrono::{DateTime, Utc};

use super::delta;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum BreakerState {
    Closed,
    Open,
    HalfOpen,
}

impl BreakerState {
    pub const ALL: [BreakerState; 3] = [
        BreakerState::Closed,
        BreakerState::Open,
        BreakerState::HalfOpen,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            BreakerState::Closed => "closed",
            BreakerState::Open => "open",
            BreakerState::HalfOpen => "half_open",
        }
    }

    pub fn parse(text: &str) -> BreakerState {
        match text {
            "open" => BreakerState::Open,
            "half_open" => BreakerState::HalfOpen,
            _ => BreakerState::Closed,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Policy {
    /// Consecutive failures that open the breaker.
    pub threshold: i32,
    /// How long it stays open before one probe may go.
    pub cool_off: Duration,
    /// How long a probe holds the half-open breaker before another may try.
    pub probe_deadline: Duration,
}

impl Default for Policy {
    fn default() -> Policy {
        Policy {
            threshold: 5,
            cool_off: Duration::from_secs(60),
            probe_deadline: Duration::from_secs(60),
        }
    }
}

/// An endpoint's breaker as stored.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Breaker {
    pub state: BreakerState,
    pub failures: i32,
    /// Open: when the cool-off ends. Half-open: when the probe's hold ends.
    pub until: Option<DateTime<Utc>>,
}

/// May a delivery go now?
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Admission {
    Send,
    /// Send, as the one probe of a half-open breaker (store the returned breaker first).
    Probe(Breaker),
    /// Hold the delivery until then, without spending an attempt.
    Wait(DateTime<Utc>),
}

impl Breaker {
    pub fn admit(&self, now: DateTime<Utc>, policy: &Policy) -> Admission {
        let probe = || {
            Admission::Probe(Breaker {
                state: BreakerState::HalfOpen,
                failures: self.failures,
                until: Some(now + delta(policy.probe_deadline)),
            })
        };
        match (self.state, self.until) {
            (BreakerState::Closed, _) => Admission::Send,
            (_, Some(until)) if until > now => Admission::Wait(until),
            _ => probe(),
        }
    }

    pub fn on_success(&self) -> Breaker {
        Breaker {
            state: BreakerState::Closed,
            failures: 0,
            until: None,
        }
    }

    pub fn on_failure(&self, now: DateTime<Utc>, policy: &Policy) -> Breaker {
        let failures = self.failures.saturating_add(1);
        let trips = self.state == BreakerState::HalfOpen || failures >= policy.threshold;
        match trips {
            true => Breaker {
                state: BreakerState::Open,
                failures,
                until: Some(now + delta(policy.cool_off)),
            },
            false => Breaker {
                state: self.state,
                failures,
                until: self.until,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(seconds: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000 + seconds, 0).expect("a time")
    }

    #[test]
    fn opens_after_the_threshold_then_lets_one_probe_through() {
        let policy = Policy {
            threshold: 3,
            cool_off: Duration::from_secs(30),
            probe_deadline: Duration::from_secs(10),
        };
        let mut breaker = Breaker {
            state: BreakerState::Closed,
            failures: 0,
            until: None,
        };
        for _ in 0..2 {
            breaker = breaker.on_failure(at(0), &policy);
            assert_eq!(breaker.admit(at(0), &policy), Admission::Send);
        }
        breaker = breaker.on_failure(at(0), &policy);
        assert_eq!(breaker.state, BreakerState::Open);
        assert_eq!(breaker.admit(at(10), &policy), Admission::Wait(at(30)));
        let Admission::Probe(half) = breaker.admit(at(30), &policy) else {
            panic!("the cool-off is over: one probe");
        };
        assert_eq!(half.state, BreakerState::HalfOpen);
        assert_eq!(
            half.admit(at(31), &policy),
            Admission::Wait(at(40)),
            "one probe at a time"
        );
        let reopened = half.on_failure(at(32), &policy);
        assert_eq!(
            (reopened.state, reopened.until),
            (BreakerState::Open, Some(at(62)))
        );
        let closed = half.on_success();
        assert_eq!(closed.state, BreakerState::Closed);
        assert_eq!(closed.failures, 0);
    }

    #[test]
    fn a_lost_probe_lets_another_go_after_its_deadline() {
        let policy = Policy::default();
        let half = Breaker {
            state: BreakerState::HalfOpen,
            failures: 5,
            until: Some(at(60)),
        };
        assert!(matches!(half.admit(at(61), &policy), Admission::Probe(_)));
    }
}
