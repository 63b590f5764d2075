//! One observation of one series in one closed bucket.

/// What a bucket of a series holds. `requests` is present for error-*rate* series (spans
/// per service): `value` is then the number of failed requests among them.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Point {
    /// Start of the bucket, seconds since the Unix epoch (drives the seasonal profile).
    pub timestamp: i64,
    pub value: f64,
    pub requests: Option<f64>,
    /// Counts of a scope whose requests are known (spans): the requests in this bucket.
    /// The count is then judged against the traffic, not the time of day.
    pub traffic: Option<f64>,
}

/// How the values of a series are distributed: counts of events (Poisson-like, many zeros)
/// or a continuous measurement (CPU, latency) as in most NAB files.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ValueKind {
    #[default]
    Count,
    Continuous,
}
