//! Sending: claim due deliveries, decide under each endpoint's row lock whether they may go
//! (disabled endpoint, expired action, mail pacing, circuit breaker), send after COMMIT,
//! and record each result with the breaker's new state in one transaction.
//!
//! A mail endpoint's due deliveries, with the rest of its pending ones, make one mail (a
//! digest when there are several). A recovery action answered 2xx is recorded
//! (`store::recovery`) and moves its incident from `open` to `recovering` in the same
//! transaction as the delivery's result.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use chrono::{DateTime, Utc};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use uuid::Uuid;

use super::breaker::{Admission, Breaker, BreakerState};
use super::client::{Attempt, Message, Verdict, WebhookClient};
use super::mail::render::{self, Subject};
use super::mail::transport::Mailer;
use super::signing::Secret;
use super::{delta, DeliverError, Settings};
use crate::metrics::Metrics;
use crate::model::State;
use crate::store::deliveries::{self, Delivery, Outcome};
use crate::store::endpoints::{self, Endpoint};
use crate::store::incident_context::{self, IncidentContext};
use crate::store::incidents;
use crate::store::recovery::{self, NewAction};

/// One send: a webhook (notification or recovery action), or one mail for an endpoint.
struct Job {
    endpoint: Endpoint,
    deliveries: Vec<Delivery>,
}

#[derive(Clone)]
pub struct Sender {
    pool: sqlx::PgPool,
    settings: Arc<Settings>,
    client: WebhookClient,
    mailer: Arc<Mailer>,
    metrics: Arc<Metrics>,
    holder: Uuid,
}

impl Sender {
    pub fn new(
        pool: sqlx::PgPool,
        settings: Arc<Settings>,
        client: WebhookClient,
        mailer: Arc<Mailer>,
        metrics: Arc<Metrics>,
    ) -> Sender {
        Sender {
            pool,
            settings,
            client,
            mailer,
            metrics,
            holder: Uuid::new_v4(),
        }
    }

    /// Claims what is due and sends it, at most `concurrency` at once; the number of sends.
    pub async fn round(&self, now: DateTime<Utc>) -> Result<usize, DeliverError> {
        let jobs = self.claim(now).await?;
        let count = jobs.len();
        let permits = Arc::new(Semaphore::new(self.settings.concurrency.max(1)));
        let mut running = JoinSet::new();
        for job in jobs {
            let sender = self.clone();
            let permits = permits.clone();
            running.spawn(async move {
                let _permit = permits.acquire().await;
                let attempt = sender.attempt(&job).await;
                if let Err(error) = sender.finish(&job, &attempt).await {
                    tracing::warn!(%error, endpoint = job.endpoint.id, "could not record a delivery result");
                }
            });
        }
        while running.join_next().await.is_some() {}
        Ok(count)
    }

    async fn claim(&self, now: DateTime<Utc>) -> Result<Vec<Job>, DeliverError> {
        let lease_until = now + delta(self.settings.lease);
        let mut tx = self.pool.begin().await?;
        let claimed =
            deliveries::claim_due(&mut tx, self.holder, now, lease_until, self.settings.batch)
                .await?;
        if claimed.is_empty() {
            return Ok(Vec::new());
        }
        let mut ids: Vec<i64> = claimed.iter().map(|d| d.endpoint_id).collect();
        ids.sort_unstable();
        ids.dedup();
        let mut locked: BTreeMap<i64, Endpoint> = endpoints::lock(&mut tx, &ids)
            .await?
            .into_iter()
            .map(|e| (e.id, e))
            .collect();
        let mut jobs: Vec<Job> = Vec::new();
        for delivery in claimed {
            let Some(endpoint) = locked.get_mut(&delivery.endpoint_id) else {
                continue;
            };
            if let Some(mail) = jobs
                .iter_mut()
                .find(|j| j.endpoint.kind == "email" && j.endpoint.id == endpoint.id)
            {
                mail.deliveries.push(delivery);
                continue;
            }
            match self.admit(&mut tx, endpoint, &delivery, now).await? {
                true => jobs.push(Job {
                    endpoint: endpoint.clone(),
                    deliveries: vec![delivery],
                }),
                false => continue,
            }
        }
        for job in jobs.iter_mut().filter(|j| j.endpoint.kind == "email") {
            let rest =
                deliveries::claim_group(&mut tx, self.holder, job.endpoint.id, now, lease_until)
                    .await?;
            job.deliveries.extend(rest);
        }
        tx.commit().await?;
        Ok(jobs)
    }

    /// May this delivery go now? If not, it is finished (dead, expired) or held.
    async fn admit(
        &self,
        tx: &mut sqlx::PgConnection,
        endpoint: &mut Endpoint,
        delivery: &Delivery,
        now: DateTime<Utc>,
    ) -> Result<bool, DeliverError> {
        let settle = |status: &'static str, error: String| Outcome {
            status,
            attempted: false,
            next_attempt_at: now,
            last_status: None,
            last_error: Some(error),
            excerpt: None,
        };
        if !endpoint.enabled {
            let reason = endpoint
                .disabled_reason
                .clone()
                .unwrap_or_else(|| "disabled".into());
            self.settle(
                tx,
                delivery,
                settle("dead", format!("endpoint disabled: {reason}")),
            )
            .await?;
            return Ok(false);
        }
        if delivery.expires_at.is_some_and(|at| at <= now) {
            let error = "expired before it could be delivered".to_owned();
            self.settle(tx, delivery, settle("expired", error)).await?;
            return Ok(false);
        }
        if let Some(quiet) = endpoint
            .quiet_until
            .filter(|q| *q > now && endpoint.kind == "email")
        {
            let mut hold = settle("pending", "waiting for the repeat interval".into());
            hold.next_attempt_at = quiet;
            self.settle(tx, delivery, hold).await?;
            return Ok(false);
        }
        match breaker_of(endpoint).admit(now, &self.settings.breaker) {
            Admission::Send => Ok(true),
            Admission::Probe(probe) => {
                store_breaker(tx, endpoint, probe).await?;
                Ok(true)
            }
            Admission::Wait(until) => {
                let mut hold = settle(
                    "pending",
                    "held: the endpoint's circuit breaker is open".into(),
                );
                hold.next_attempt_at = until;
                self.settle(tx, delivery, hold).await?;
                Ok(false)
            }
        }
    }

    async fn settle(
        &self,
        tx: &mut sqlx::PgConnection,
        delivery: &Delivery,
        outcome: Outcome,
    ) -> Result<(), DeliverError> {
        if deliveries::record(tx, delivery.id, self.holder, &outcome).await?
            && outcome.status != "pending"
        {
            self.count(&delivery.kind, outcome.status);
        }
        Ok(())
    }

    async fn attempt(&self, job: &Job) -> Attempt {
        let kind = job.endpoint.kind.as_str();
        let started = Instant::now();
        let attempt = match kind {
            "email" => self.mail(job).await,
            _ => self.webhook(&job.endpoint, &job.deliveries[0]).await,
        };
        self.metrics
            .delivery_duration
            .with_label_values(&[kind])
            .observe(started.elapsed().as_secs_f64());
        attempt
    }

    async fn webhook(&self, endpoint: &Endpoint, delivery: &Delivery) -> Attempt {
        let secrets: Vec<Secret> = endpoint
            .secrets
            .iter()
            .filter_map(|s| Secret::parse(s).ok())
            .collect();
        let body = serde_json::to_vec(&delivery.payload).unwrap_or_default();
        let message = Message {
            url: endpoint.url.as_deref().unwrap_or_default(),
            id: &delivery.message_id,
            secrets: &secrets,
            body: &body,
        };
        self.client.send(&message).await
    }

    async fn mail(&self, job: &Job) -> Attempt {
        let failed = |excerpt: String| Attempt {
            verdict: Verdict::Failed,
            status: None,
            excerpt,
            retry_after: None,
        };
        let mut contexts: Vec<(String, IncidentContext)> = Vec::new();
        for delivery in &job.deliveries {
            let Some(incident_id) = delivery.incident_id else {
                continue;
            };
            match incident_context::gather(&self.pool, incident_id, Utc::now()).await {
                Ok(Some(context)) => contexts.push((delivery.topic.clone(), context)),
                Ok(None) => {}
                Err(error) => return failed(format!("could not read the incident: {error}")),
            }
        }
        if contexts.is_empty() {
            return Attempt {
                verdict: Verdict::Delivered,
                status: None,
                excerpt: "nothing left to say: the incidents are gone".into(),
                retry_after: None,
            };
        }
        let subjects: Vec<Subject<'_>> = contexts
            .iter()
            .map(|(topic, context)| Subject { topic, context })
            .collect();
        let rendered = match render::render(&subjects, &self.settings.links) {
            Ok(rendered) => rendered,
            Err(error) => return failed(error.to_string()),
        };
        match self.mailer.send(&rendered, &job.endpoint.addresses).await {
            Ok(()) => Attempt {
                verdict: Verdict::Delivered,
                status: None,
                excerpt: format!("sent: {}", rendered.subject),
                retry_after: None,
            },
            Err(error) => failed(error.to_string()),
        }
    }

    /// Records the attempt for every delivery of the job, with the breaker, the endpoint's
    /// state after a 410, and a delivered recovery action, in one transaction.
    async fn finish(&self, job: &Job, attempt: &Attempt) -> Result<(), DeliverError> {
        let now = Utc::now();
        let mut tx = self.pool.begin().await?;
        let Some(mut endpoint) = endpoints::lock(&mut tx, &[job.endpoint.id]).await?.pop() else {
            return Ok(());
        };
        let breaker = breaker_of(&endpoint);
        match attempt.verdict {
            Verdict::Delivered if breaker.state != BreakerState::Closed || breaker.failures > 0 => {
                store_breaker(&mut tx, &mut endpoint, breaker.on_success()).await?;
                if breaker.state != BreakerState::Closed && endpoint.kind != "email" {
                    deliveries::release(&mut tx, endpoint.id, now).await?;
                }
            }
            Verdict::Failed => {
                let tripped = breaker.on_failure(now, &self.settings.breaker);
                store_breaker(&mut tx, &mut endpoint, tripped).await?;
            }
            Verdict::Gone => {
                let reason = "the receiver answered 410 Gone";
                endpoints::disable(&mut tx, endpoint.id, reason).await?;
            }
            _ => {}
        }
        for delivery in &job.deliveries {
            let outcome = self.outcome(delivery, attempt, now);
            let status = outcome.status;
            if !deliveries::record(&mut tx, delivery.id, self.holder, &outcome).await? {
                continue;
            }
            self.count(
                &delivery.kind,
                if status == "pending" {
                    "failed"
                } else {
                    status
                },
            );
            if status == "delivered" && delivery.kind == "recovery" {
                self.recovery_delivered(&mut tx, &endpoint, delivery, now)
                    .await?;
            }
        }
        if job.endpoint.kind == "email" && attempt.verdict == Verdict::Delivered {
            endpoints::set_quiet_until(
                &mut tx,
                endpoint.id,
                now + delta(self.settings.mail_repeat),
            )
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    fn outcome(&self, delivery: &Delivery, attempt: &Attempt, now: DateTime<Utc>) -> Outcome {
        let mut outcome = Outcome {
            status: "delivered",
            attempted: true,
            next_attempt_at: now,
            last_status: attempt.status.map(i32::from),
            last_error: None,
            excerpt: Some(attempt.excerpt.clone()),
        };
        match attempt.verdict {
            Verdict::Delivered => {}
            Verdict::Gone | Verdict::Refused => {
                outcome.status = "dead";
                outcome.last_error = Some(failure_text(attempt));
            }
            Verdict::Failed => {
                outcome.last_error = Some(failure_text(attempt));
                let schedule = match delivery.kind.as_str() {
                    "recovery" => &self.settings.recovery,
                    _ => &self.settings.notifications,
                };
                let attempts = usize::try_from(delivery.attempts).unwrap_or(0) + 1;
                let next = schedule.next(attempts, now, attempt.retry_after, delivery.expires_at);
                (outcome.status, outcome.next_attempt_at) = match next {
                    Some(at) => ("pending", at),
                    None if delivery.expires_at.is_some() => ("expired", now),
                    None => ("dead", now),
                };
            }
        }
        outcome
    }

    async fn recovery_delivered(
        &self,
        tx: &mut sqlx::PgConnection,
        endpoint: &Endpoint,
        delivery: &Delivery,
        now: DateTime<Utc>,
    ) -> Result<(), DeliverError> {
        let Some(incident_id) = delivery.incident_id else {
            return Ok(());
        };
        let action = delivery.action.clone().unwrap_or_default();
        let new = NewAction {
            incident_id,
            project_id: delivery.project_id,
            endpoint_id: endpoint.id,
            delivery_id: delivery.id,
            action: action.clone(),
            order: endpoint.order,
            delivered_at: now,
            verify_until: now + delta(self.settings.verify_window),
        };
        recovery::record(tx, &new).await?;
        let incident = incidents::lock(tx, incident_id).await?;
        if incident.is_some_and(|i| i.state == State::Open) {
            let reason = format!("{action} delivered to endpoint {}", endpoint.id);
            incidents::transition(tx, incident_id, State::Recovering, &reason, now).await?;
        }
        Ok(())
    }

    fn count(&self, kind: &str, result: &str) {
        self.metrics
            .deliveries
            .with_label_values(&[kind, result])
            .inc();
    }
}

fn failure_text(attempt: &Attempt) -> String {
    match attempt.status {
        Some(status) => format!("the receiver answered {status}"),
        None => attempt.excerpt.clone(),
    }
}

fn breaker_of(endpoint: &Endpoint) -> Breaker {
    Breaker {
        state: BreakerState::parse(&endpoint.breaker_state),
        failures: endpoint.breaker_failures,
        until: endpoint.breaker_until,
    }
}

async fn store_breaker(
    tx: &mut sqlx::PgConnection,
    endpoint: &mut Endpoint,
    breaker: Breaker,
) -> Result<(), DeliverError> {
    let state = breaker.state.as_str();
    endpoints::set_breaker(tx, endpoint.id, state, breaker.failures, breaker.until).await?;
    endpoint.breaker_state = state.to_owned();
    endpoint.breaker_failures = breaker.failures;
    endpoint.breaker_until = breaker.until;
    Ok(())
}
