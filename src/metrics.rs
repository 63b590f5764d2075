//! Every Prometheus metric Seismo exports, declared once with its help text.
//!
//! Labels are low-cardinality by rule: source, outcome, reason, item type — never an issue,
//! fingerprint, user, URL or message. Each `App` owns its own registry, so tests that run
//! several apps in one process do not see each other's counts.

use prometheus::{
    Encoder, Gauge, GaugeVec, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec,
    IntGauge, IntGaugeVec, Opts, Registry, TextEncoder,
};

pub struct Metrics {
    registry: Registry,
    /// The standard `process_*` metrics (no `seismo_` prefix, as every dashboard expects).
    process: Registry,
    pub events_received: IntCounterVec,
    pub items_received: IntCounterVec,
    pub otlp_records: IntCounterVec,
    pub scrubbed_values: IntCounter,
    pub ingest_request_duration: Histogram,
    /// Every HTTP request by method, route template (never the raw path) and status code.
    pub http_request_duration: HistogramVec,
    pub writer_batch_size: Histogram,
    /// Committed writer batches by how they were written: `whole` (one round trip),
    /// `fell_back` (tried whole, then step by step) or `step_by_step`.
    pub writer_batches: IntCounterVec,
    pub writer_queue_depth: IntGauge,
    pub writer_commit_duration: Histogram,
    pub incidents_open: IntGaugeVec,
    /// Issues of all projects by status (refreshed from the database, see `store::gauges`).
    pub issues: IntGaugeVec,
    /// Always 1, labelled with the version: which build each process runs.
    pub build_info: IntGaugeVec,
    pub anomaly_score: GaugeVec,
    pub incidents_opened: IntCounterVec,
    pub detector_series: IntGauge,
    pub detection_tick_duration: Histogram,
    pub spool_bytes: IntGauge,
    pub spool_records: IntGauge,
    pub spool_corrupt_records: IntCounter,
    pub spool_replay_lag: Gauge,
    pub retention_partitions_dropped: IntCounter,
    pub retention_events_removed: IntCounterVec,
    pub dictionaries_trained: IntCounterVec,
    /// The three probabilities of DESIGN.md §5 over all projects and all time. Each has no
    /// labels and no sample until it is defined (see `store::stats::refresh_gauges`):
    /// Prometheus convention is to leave out a value that does not exist rather than
    /// export a sentinel such as 0, -1 or NaN.
    pub detection_probability: GaugeVec,
    pub recovery_probability: GaugeVec,
    pub handling_probability: GaugeVec,
    /// Deliveries by endpoint kind (recovery, webhook, email) and result (delivered,
    /// failed, dead, expired, skipped).
    pub deliveries: IntCounterVec,
    pub delivery_duration: HistogramVec,
    pub outbox_depth: IntGauge,
    pub deliveries_pending: IntGauge,
    pub endpoint_breakers: IntGaugeVec,
}

/// Sentry envelope item types we name in metrics; anything else counts as `other`.
pub const KNOWN_ITEM_TYPES: &[&str] = &[
    "event",
    "transaction",
    "session",
    "sessions",
    "client_report",
    "attachment",
    "user_report",
    "feedback",
    "check_in",
    "profile",
    "profile_chunk",
    "replay_event",
    "replay_recording",
    "replay_video",
    "statsd",
    "metric_buckets",
    "span",
    "log",
    "otel_log",
    "security",
];

impl Metrics {
    pub fn new() -> Metrics {
        let registry =
            Registry::new_custom(Some("seismo".into()), None).expect("static prefix is valid");
        let metrics = Metrics {
            events_received: IntCounterVec::new(
                Opts::new(
                    "events_received_total",
                    "Error events received, by source and the one outcome each ended in",
                ),
                &["source", "outcome", "reason"],
            )
            .expect("static metric"),
            items_received: IntCounterVec::new(
                Opts::new(
                    "envelope_items_total",
                    "Sentry envelope items received, by item type",
                ),
                &["item_type"],
            )
            .expect("static metric"),
            otlp_records: IntCounterVec::new(
                Opts::new(
                    "otlp_records_total",
                    "OTLP spans, log records and metric requests received, by signal and result",
                ),
                &["signal", "result"],
            )
            .expect("static metric"),
            scrubbed_values: IntCounter::new(
                "scrubbed_values_total",
                "Secret values replaced by [Filtered] before storage",
            )
            .expect("static metric"),
            ingest_request_duration: Histogram::with_opts(
                HistogramOpts::new(
                    "ingest_request_duration_seconds",
                    "Time from request to acknowledgement (after COMMIT)",
                )
                .buckets(vec![
                    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
                ]),
            )
            .expect("static metric"),
            writer_batch_size: Histogram::with_opts(
                HistogramOpts::new("writer_batch_size", "Events per writer transaction").buckets(
                    vec![
                        1.0, 2.0, 5.0, 10.0, 25.0, 50.0, 100.0, 250.0, 500.0, 1000.0, 2500.0,
                    ],
                ),
            )
            .expect("static metric"),
            writer_batches: IntCounterVec::new(
                Opts::new(
                    "writer_batches_total",
                    "Committed writer transactions by how they were written",
                ),
                &["way"],
            )
            .expect("static metric"),
            writer_queue_depth: IntGauge::new(
                "writer_queue_depth",
                "Events waiting for or inside a writer transaction",
            )
            .expect("static metric"),
            writer_commit_duration: Histogram::with_opts(
                HistogramOpts::new(
                    "writer_commit_duration_seconds",
                    "Duration of one writer transaction",
                )
                .buckets(vec![
                    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
                ]),
            )
            .expect("static metric"),
            http_request_duration: HistogramVec::new(
                HistogramOpts::new(
                    "http_request_duration_seconds",
                    "Duration of HTTP requests, by method, route template and status code",
                )
                .buckets(vec![
                    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
                ]),
                &["method", "route", "status"],
            )
            .expect("static metric"),
            incidents_open: IntGaugeVec::new(
                Opts::new(
                    "incidents_open",
                    "Incidents not yet resolved (open, recovering or escalated) in the projects this process detects, by kind",
                ),
                &["kind"],
            )
            .expect("static metric"),
            issues: IntGaugeVec::new(
                Opts::new("issues", "Issues of all projects, by status"),
                &["status"],
            )
            .expect("static metric"),
            build_info: IntGaugeVec::new(
                Opts::new("build_info", "Always 1; the version of this Seismo process"),
                &["version"],
            )
            .expect("static metric"),
            anomaly_score: GaugeVec::new(
                Opts::new(
                    "anomaly_score",
                    "Highest anomaly score of any series of the project in the last closed bucket",
                ),
                &["project"],
            )
            .expect("static metric"),
            incidents_opened: IntCounterVec::new(
                Opts::new("incidents_opened_total", "Incidents opened, by kind"),
                &["kind"],
            )
            .expect("static metric"),
            detector_series: IntGauge::new(
                "detector_series",
                "Series whose state the detector of this process holds",
            )
            .expect("static metric"),
            detection_tick_duration: Histogram::with_opts(
                HistogramOpts::new(
                    "detection_tick_duration_seconds",
                    "Duration of one detection pass over the projects this process holds",
                )
                .buckets(vec![0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0]),
            )
            .expect("static metric"),
            spool_bytes: IntGauge::new(
                "spool_bytes",
                "Bytes of acknowledged batches waiting in the local spool for the database",
            )
            .expect("static metric"),
            spool_records: IntGauge::new(
                "spool_records",
                "Batches (one per request) waiting in the local spool for the database",
            )
            .expect("static metric"),
            spool_corrupt_records: IntCounter::new(
                "spool_corrupt_records_total",
                "Spool records found damaged (checksum, torn write, garbage) and skipped",
            )
            .expect("static metric"),
            spool_replay_lag: Gauge::new(
                "spool_replay_lag_seconds",
                "Age of the oldest batch waiting in the spool; 0 when it is empty",
            )
            .expect("static metric"),
            retention_partitions_dropped: IntCounter::new(
                "retention_partitions_dropped_total",
                "Daily event partitions dropped because every project's retention had passed them",
            )
            .expect("static metric"),
            retention_events_removed: IntCounterVec::new(
                Opts::new(
                    "retention_events_removed_total",
                    "Stored events removed by retention: expired (older than the project keeps) or evicted (over its cap)",
                ),
                &["reason"],
            )
            .expect("static metric"),
            dictionaries_trained: IntCounterVec::new(
                Opts::new(
                    "dictionaries_trained_total",
                    "Event compression dictionaries trained: kept as the project's new version, or rejected as saving too little",
                ),
                &["outcome"],
            )
            .expect("static metric"),
            detection_probability: GaugeVec::new(
                Opts::new(
                    "detection_probability",
                    "1 - P(false negative) - P(false positive) over labelled incidents and missed faults of all projects; absent until one is labelled",
                ),
                &[],
            )
            .expect("static metric"),
            recovery_probability: GaugeVec::new(
                Opts::new(
                    "recovery_probability",
                    "1 - P(false recovery) - P(no recovery) over recovery actions whose verification ended; absent until one has",
                ),
                &[],
            )
            .expect("static metric"),
            handling_probability: GaugeVec::new(
                Opts::new(
                    "handling_probability",
                    "Share of error events of all projects that the application handled; absent until an event arrives",
                ),
                &[],
            )
            .expect("static metric"),
            deliveries: IntCounterVec::new(
                Opts::new(
                    "deliveries_total",
                    "Delivery attempts and their ends, by endpoint kind and result (delivered, failed, dead, expired, skipped)",
                ),
                &["kind", "result"],
            )
            .expect("static metric"),
            delivery_duration: HistogramVec::new(
                HistogramOpts::new(
                    "delivery_duration_seconds",
                    "Duration of one delivery attempt (a webhook request or one mail), by endpoint kind",
                )
                .buckets(vec![0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0]),
                &["kind"],
            )
            .expect("static metric"),
            outbox_depth: IntGauge::new(
                "outbox_depth",
                "Outbox rows written by incident changes and not yet fanned out to endpoints",
            )
            .expect("static metric"),
            deliveries_pending: IntGauge::new(
                "deliveries_pending",
                "Deliveries waiting to be sent or retried",
            )
            .expect("static metric"),
            endpoint_breakers: IntGaugeVec::new(
                Opts::new(
                    "endpoint_breakers",
                    "Enabled endpoints by the state of their circuit breaker",
                ),
                &["state"],
            )
            .expect("static metric"),
            registry,
            process: process_registry(),
        };
        metrics.register_all();
        metrics
            .build_info
            .with_label_values(&[env!("CARGO_PKG_VERSION")])
            .set(1);
        // Both outcomes exist from the start: a rate over a counter that appears only at its
        // first increment misses that increment.
        for outcome in ["kept", "rejected"] {
            metrics.dictionaries_trained.with_label_values(&[outcome]);
        }
        metrics
    }

    fn register_all(&self) {
        let collectors: Vec<Box<dyn prometheus::core::Collector>> = vec![
            Box::new(self.events_received.clone()),
            Box::new(self.items_received.clone()),
            Box::new(self.otlp_records.clone()),
            Box::new(self.scrubbed_values.clone()),
            Box::new(self.ingest_request_duration.clone()),
            Box::new(self.http_request_duration.clone()),
            Box::new(self.writer_batch_size.clone()),
            Box::new(self.writer_batches.clone()),
            Box::new(self.writer_queue_depth.clone()),
            Box::new(self.writer_commit_duration.clone()),
            Box::new(self.incidents_open.clone()),
            Box::new(self.issues.clone()),
            Box::new(self.build_info.clone()),
            Box::new(self.anomaly_score.clone()),
            Box::new(self.incidents_opened.clone()),
            Box::new(self.detector_series.clone()),
            Box::new(self.detection_tick_duration.clone()),
            Box::new(self.spool_bytes.clone()),
            Box::new(self.spool_records.clone()),
            Box::new(self.spool_corrupt_records.clone()),
            Box::new(self.spool_replay_lag.clone()),
            Box::new(self.retention_partitions_dropped.clone()),
            Box::new(self.retention_events_removed.clone()),
            Box::new(self.dictionaries_trained.clone()),
            Box::new(self.detection_probability.clone()),
            Box::new(self.recovery_probability.clone()),
            Box::new(self.handling_probability.clone()),
            Box::new(self.deliveries.clone()),
            Box::new(self.delivery_duration.clone()),
            Box::new(self.outbox_depth.clone()),
            Box::new(self.deliveries_pending.clone()),
            Box::new(self.endpoint_breakers.clone()),
        ];
        for collector in collectors {
            self.registry
                .register(collector)
                .expect("each metric is registered once");
        }
    }

    /// Counts one envelope item by type, folding unknown types into `other`.
    pub fn count_item(&self, item_type: &str) {
        let label = KNOWN_ITEM_TYPES
            .iter()
            .find(|known| **known == item_type)
            .copied()
            .unwrap_or("other");
        self.items_received.with_label_values(&[label]).inc();
    }

    /// Counts `n` events that ended in `outcome` for `reason` (see `ingest::outcome`).
    pub fn count_outcome(&self, source: &str, outcome: &str, reason: &str, n: u64) {
        if n > 0 {
            self.events_received
                .with_label_values(&[source, outcome, reason])
                .inc_by(n);
        }
    }

    /// Counts OTLP records of a signal (`logs`, `traces`, `metrics`) by result (accepted,
    /// rejected, ignored).
    pub fn count_otlp(&self, signal: &str, result: &str, n: i64) {
        if let Ok(n) = u64::try_from(n) {
            if n > 0 {
                self.otlp_records
                    .with_label_values(&[signal, result])
                    .inc_by(n);
            }
        }
    }

    /// Sets a label-less probability gauge to `value`, or removes its sample when the
    /// probability is undefined (nothing to compute it from), so no sentinel is exported.
    pub fn set_probability(gauge: &GaugeVec, value: Option<f64>) {
        match value.filter(|v| v.is_finite()) {
            Some(v) => gauge.with_label_values::<&str>(&[]).set(v),
            None => {
                // Absent already is fine: removing is only for a value that went away.
                let _ = gauge.remove_label_values::<&str>(&[]);
            }
        }
    }

    /// The Prometheus text exposition of every metric.
    pub fn render(&self) -> String {
        let mut out = Vec::new();
        // Encoding into a Vec cannot fail for the text format.
        let mut families = self.registry.gather();
        families.extend(self.process.gather());
        let _ = TextEncoder::new().encode(&families, &mut out);
        String::from_utf8(out).unwrap_or_default()
    }
}

/// CPU seconds, resident and virtual memory, open and maximum file descriptors and start
/// time of this process, read from /proc at each scrape (Linux only).
fn process_registry() -> Registry {
    let registry = Registry::new();
    #[cfg(target_os = "linux")]
    {
        let collector = prometheus::process_collector::ProcessCollector::for_self();
        registry
            .register(Box::new(collector))
            .expect("the process collector is registered once");
    }
    registry
}

impl Default for Metrics {
    fn default() -> Metrics {
        Metrics::new()
    }
}
