//! The delivery loop of a running process: every `interval`, fan out the outbox and send
//! what is due; every few seconds, refresh the gauges (outbox depth, pending deliveries,
//! breaker states, the recovery probability). Any number of processes may run it on one
//! database: rows are claimed with `SKIP LOCKED` and leases, so each is sent by one.

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use sqlx::PgPool;

use super::breaker::BreakerState;
use super::client::WebhookClient;
use super::fanout;
use super::mail::transport::Mailer;
use super::send::Sender;
use super::ssrf::Guard;
use super::{DeliverError, Settings};
use crate::config::Config;
use crate::metrics::Metrics;
use crate::store::{deliveries, endpoints, stats};

const GAUGES_EVERY: Duration = Duration::from_secs(10);

pub struct Worker {
    pool: PgPool,
    settings: Arc<Settings>,
    sender: Sender,
    metrics: Arc<Metrics>,
}

impl Worker {
    pub fn new(
        pool: PgPool,
        metrics: Arc<Metrics>,
        settings: Settings,
        guard: Guard,
        mailer: Mailer,
    ) -> Result<Worker, DeliverError> {
        let settings = Arc::new(settings);
        let client = WebhookClient::new(guard, settings.timeouts)?;
        let sender = Sender::new(
            pool.clone(),
            settings.clone(),
            client,
            Arc::new(mailer),
            metrics.clone(),
        );
        Ok(Worker {
            pool,
            settings,
            sender,
            metrics,
        })
    }

    /// The worker `seismo serve` runs, from its configuration.
    pub fn from_config(
        pool: PgPool,
        metrics: Arc<Metrics>,
        config: &Config,
    ) -> Result<Worker, DeliverError> {
        let guard = Guard::new(&config.webhook_allow_cidrs)?;
        let mailer = Mailer::from_config(
            config.smtp_url.as_ref(),
            config.mail_from.as_deref(),
            Duration::from_secs(30),
        )?;
        if !mailer.is_enabled() {
            tracing::info!(
                "email is disabled: set SEISMO_SMTP_URL and SEISMO_MAIL_FROM to send it"
            );
        }
        Worker::new(pool, metrics, Settings::from_config(config), guard, mailer)
    }

    /// Runs rounds until `stop` turns true.
    pub async fn run(self, mut stop: tokio::sync::watch::Receiver<bool>) {
        let mut gauges_at = Instant::now() - GAUGES_EVERY;
        loop {
            let busy = match self.round().await {
                Ok(work) => work > 0,
                Err(error) => {
                    tracing::warn!(%error, "delivery round failed; retrying next interval");
                    false
                }
            };
            if gauges_at.elapsed() >= GAUGES_EVERY {
                gauges_at = Instant::now();
                if let Err(error) = self.refresh_gauges().await {
                    tracing::warn!(%error, "could not refresh the delivery gauges");
                }
            }
            // A round that found work goes again at once: a backlog drains at full speed.
            if busy && !*stop.borrow() {
                continue;
            }
            tokio::select! {
                _ = tokio::time::sleep(self.settings.interval) => {}
                _ = stop.changed() => break,
            }
        }
    }

    /// One round: fan out a batch of the outbox, then send a batch of what is due; the
    /// number of rows and sends it handled.
    pub async fn round(&self) -> Result<usize, DeliverError> {
        let fanned = fanout::fan_out(&self.pool, &self.settings, Utc::now()).await?;
        let sent = self.sender.round(Utc::now()).await?;
        Ok(fanned + sent)
    }

    async fn refresh_gauges(&self) -> Result<(), DeliverError> {
        let (outbox, pending) = deliveries::depths(&self.pool).await?;
        self.metrics.outbox_depth.set(outbox);
        self.metrics.deliveries_pending.set(pending);
        let states = endpoints::breaker_states(&self.pool).await?;
        for state in BreakerState::ALL {
            let n = states
                .iter()
                .find(|(s, _)| s == state.as_str())
                .map_or(0, |(_, n)| *n);
            self.metrics
                .endpoint_breakers
                .with_label_values(&[state.as_str()])
                .set(n);
        }
        stats::refresh_gauges(&self.pool, &self.metrics).await?;
        Ok(())
    }
}
