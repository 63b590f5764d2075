//! The bodies deliveries carry. Notifications carry the outbox row's body as the detector
//! wrote it (`{"type", "timestamp", "data": {"incident": …}}`); a recovery request is built
//! here from the incident's stored context (DESIGN.md §3.6):
//!
//! ```json
//! {"type": "recovery.requested", "timestamp": "…",
//!  "data": {"action": "rollback", "project": {"id", "slug", "name"},
//!           "service": "checkout", "environment": "production",
//!           "incident": {"id", "kind", "state", "score", "opened_at", "bucket",
//!                        "series": {"scope", "service", "issue_id"},
//!                        "observed": 120, "expected": 3.5},
//!           "top_issue": {"id", "title", "culprit", "link"} | null,
//!           "suspect_release": "shop@1.3.0", "last_healthy_release": "shop@1.2.9",
//!           "links": {"incident": "…", "grafana": "…" | null}}}
//! ```
//!
//! `suspect_release` and `last_healthy_release` are sent with rollbacks only.

use chrono::{DateTime, Utc};
use serde_json::{json, Value};

pub use crate::config::links::Links;
use crate::model::Incident;
use crate::store::incident_context::IncidentContext;

/// What the incident's detector expected of the bucket it opened in, if it says.
pub fn expected(incident: &Incident) -> Option<f64> {
    let details = &incident.details;
    details["expected"]
        .as_f64()
        .or_else(|| details["threshold"].as_f64())
}

fn incident_json(context: &IncidentContext) -> Value {
    let incident = &context.incident;
    json!({
        "id": incident.id,
        "kind": incident.kind.as_str(),
        "state": incident.state.as_str(),
        "score": incident.score,
        "opened_at": incident.opened_at,
        "bucket": incident.opened_at,
        "series": {
            "scope": incident.series.kind(),
            "service": incident.series.service(),
            "issue_id": incident.series.issue_id(),
        },
        "observed": context.observed,
        "expected": expected(incident),
    })
}

/// The body of a `recovery.requested` webhook.
pub fn recovery_request(
    action: &str,
    context: &IncidentContext,
    links: &Links,
    now: DateTime<Utc>,
) -> Value {
    let incident = &context.incident;
    let top_issue = context.top_issue.as_ref().map(|issue| {
        json!({"id": issue.id, "title": issue.title, "culprit": issue.culprit,
               "link": links.issue(incident.project_id, issue.id)})
    });
    let mut data = json!({
        "action": action,
        "project": {"id": incident.project_id, "slug": context.project_slug,
                    "name": context.project_name},
        "service": context.service(),
        "environment": context.latest.environment,
        "incident": incident_json(context),
        "top_issue": top_issue,
        "links": {"incident": links.incident_api(incident.id),
                  "grafana": links.incident_dashboard(incident.project_id, incident.id)},
    });
    if action == "rollback" {
        data["suspect_release"] = json!(context.suspect_release);
        data["last_healthy_release"] = json!(context.last_healthy_release);
    }
    json!({"type": "recovery.requested", "timestamp": now, "data": data})
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{IncidentId, IssueId, Kind, ProjectId, Scope, State};
    use crate::store::incident_context::{LatestEvent, TopIssue};

    fn context() -> IncidentContext {
        let at = DateTime::parse_from_rfc3339("2030-01-02T03:04:00Z")
            .expect("a time")
            .with_timezone(&Utc);
        IncidentContext {
            incident: Incident {
                id: IncidentId(7),
                project_id: ProjectId(1),
                kind: Kind::Anomaly,
                series: Scope::Service("checkout".into()),
                state: State::Open,
                opened_at: at,
                updated_at: at,
                resolved_at: None,
                score: 0.93,
                label: None,
                calm_buckets: 0,
                details: json!({"expected": 3.5}),
                acknowledged_at: None,
                silence_id: None,
                kinds: vec![Kind::Anomaly],
            },
            project_slug: "shop".into(),
            project_name: "Shop".into(),
            top_issue: Some(TopIssue {
                id: IssueId(42),
                title: "KeyError: 'sku'".into(),
                culprit: "shop.checkout in price".into(),
                level: "error".into(),
            }),
            latest: LatestEvent {
                service: Some("checkout".into()),
                environment: Some("production".into()),
                release: Some("shop@1.3.0".into()),
                top_frames: String::new(),
            },
            observed: 120,
            suspect_release: Some("shop@1.3.0".into()),
            last_healthy_release: Some("shop@1.2.9".into()),
            series: vec![],
            actions: vec![],
        }
    }

    #[test]
    fn a_rollback_names_the_suspect_and_the_last_healthy_release() {
        let links = Links::new(
            url::Url::parse("https://seismo.example.com/").expect("url"),
            None,
        );
        let now = Utc::now();
        let body = recovery_request("rollback", &context(), &links, now);
        let data = &body["data"];
        assert_eq!(body["type"], "recovery.requested");
        assert_eq!(data["action"], "rollback");
        assert_eq!(data["service"], "checkout");
        assert_eq!(data["environment"], "production");
        assert_eq!(data["incident"]["observed"], 120);
        assert_eq!(data["incident"]["expected"], 3.5);
        assert_eq!(data["incident"]["series"]["service"], "checkout");
        assert_eq!(
            data["top_issue"]["link"],
            "https://seismo.example.com/api/v1/issues/42"
        );
        assert_eq!(data["suspect_release"], "shop@1.3.0");
        assert_eq!(data["last_healthy_release"], "shop@1.2.9");
        let restart = recovery_request("restart", &context(), &links, now);
        assert!(restart["data"].get("suspect_release").is_none());
        assert_eq!(data["links"]["grafana"], serde_json::Value::Null);
    }

    #[test]
    fn with_grafana_the_links_open_the_provisioned_dashboards() {
        let links = Links::new(
            url::Url::parse("https://seismo.example.com/").expect("url"),
            Some(url::Url::parse("https://grafana.example.com/").expect("url")),
        );
        let body = recovery_request("restart", &context(), &links, Utc::now());
        let data = &body["data"];
        assert_eq!(
            data["links"]["grafana"],
            "https://grafana.example.com/d/seismo-incidents/seismo-incidents?var-project=1&var-incident=7"
        );
        assert_eq!(
            data["links"]["incident"],
            "https://seismo.example.com/api/v1/incidents/7"
        );
        assert_eq!(
            data["top_issue"]["link"],
            "https://grafana.example.com/d/seismo-issues/seismo-issues?var-project=1&var-issue=42"
        );
    }
}
