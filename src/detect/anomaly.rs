//! The streaming anomaly detector (model documented below once built).

/// How readily the detector pages: `High` fires on smaller deviations.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Sensitivity {
    Low,
    #[default]
    Medium,
    High,
}
