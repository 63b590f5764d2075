//! A mail about one or more incidents (a digest when several arrive in one grouping
//! window), rendered from stored rows only ([`IncidentContext`]) with compiled templates
//! (`templates/mail/incidents.{txt,html}`, askama: HTML-escaped in the HTML part), and the
//! chart of the first incident as an inline PNG referenced by `cid:`.

use askama::Template;

use super::chart;
use crate::deliver::payload::{expected, Links};
use crate::model::Scope;
use crate::store::incident_context::IncidentContext;

#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    #[error("rendering the mail failed: {0}")]
    Template(#[from] askama::Error),
    #[error(transparent)]
    Chart(#[from] chart::ChartError),
}

/// One incident, and what its mail is about (`incident.opened|escalated|resolved`).
pub struct Subject<'a> {
    pub topic: &'a str,
    pub context: &'a IncidentContext,
}

pub struct Rendered {
    pub subject: String,
    pub text: String,
    pub html: String,
    /// (content id, PNG bytes)
    pub chart: Option<(String, Vec<u8>)>,
}

struct ActionLine {
    action: String,
    delivered_at: String,
    outcome: String,
}

struct Item {
    headline: String,
    opened_at: String,
    observed: i64,
    expected: Option<String>,
    service: String,
    environment: String,
    release: String,
    suspect_release: Option<String>,
    last_healthy_release: Option<String>,
    top_title: Option<String>,
    top_culprit: String,
    top_frames: String,
    actions: Vec<ActionLine>,
    incident_link: String,
    grafana_link: Option<String>,
}

#[derive(Template)]
#[template(path = "mail/incidents.txt")]
struct TextMail<'a> {
    project: &'a str,
    digest: bool,
    items: &'a [Item],
}

#[derive(Template)]
#[template(path = "mail/incidents.html")]
struct HtmlMail<'a> {
    project: &'a str,
    digest: bool,
    items: &'a [Item],
    chart_cid: Option<&'a str>,
}

pub fn render(subjects: &[Subject<'_>], links: &Links) -> Result<Rendered, RenderError> {
    let items: Vec<Item> = subjects.iter().map(|s| item(s, links)).collect();
    let project = subjects
        .first()
        .map_or("Seismo", |s| s.context.project_name.as_str());
    let chart = match subjects.first() {
        Some(first) => {
            let incident = &first.context.incident;
            chart::render(
                &first.context.series,
                incident.opened_at,
                expected(incident),
            )?
            .map(|png| (format!("chart-{}@seismo", incident.id), png))
        }
        None => None,
    };
    let digest = items.len() > 1;
    let subject = match (&items[..], digest) {
        ([only], false) => format!("[Seismo] {project}: {}", only.headline),
        _ => format!("[Seismo] {project}: {} incidents", items.len()),
    };
    let text = TextMail {
        project,
        digest,
        items: &items,
    }
    .render()?;
    let html = HtmlMail {
        project,
        digest,
        items: &items,
        chart_cid: chart.as_ref().map(|(cid, _)| cid.as_str()),
    }
    .render()?;
    Ok(Rendered {
        subject,
        text,
        html,
        chart,
    })
}

fn item(subject: &Subject<'_>, links: &Links) -> Item {
    let context = subject.context;
    let incident = &context.incident;
    let what = match subject.topic {
        "incident.escalated" => "escalated",
        "incident.resolved" => "resolved",
        _ => "opened",
    };
    let about = match &incident.series {
        Scope::Service(name) => format!("service {name}"),
        Scope::Issue(id) => context
            .top_issue
            .as_ref()
            .map_or_else(|| format!("issue {id}"), |i| i.title.clone()),
        Scope::Project => "the project".to_owned(),
    };
    let unknown = || "unknown".to_owned();
    let rollback = context.actions.iter().any(|a| a.action == "rollback");
    Item {
        headline: format!(
            "incident {} {what}: {} on {about}",
            incident.id,
            incident.kind.as_str()
        ),
        opened_at: incident.opened_at.format("%Y-%m-%d %H:%M UTC").to_string(),
        observed: context.observed,
        expected: expected(incident).map(|e| format!("{e:.1}")),
        service: context.service().map_or_else(unknown, str::to_owned),
        environment: context.latest.environment.clone().unwrap_or_else(unknown),
        release: context.latest.release.clone().unwrap_or_else(unknown),
        suspect_release: context.suspect_release.clone().filter(|_| rollback),
        last_healthy_release: context.last_healthy_release.clone().filter(|_| rollback),
        top_title: context.top_issue.as_ref().map(|i| i.title.clone()),
        top_culprit: context
            .top_issue
            .as_ref()
            .map(|i| i.culprit.clone())
            .unwrap_or_default(),
        top_frames: context.latest.top_frames.clone(),
        actions: context
            .actions
            .iter()
            .map(|a| ActionLine {
                action: a.action.clone(),
                delivered_at: a.delivered_at.format("%H:%M:%S UTC").to_string(),
                outcome: a
                    .outcome
                    .clone()
                    .unwrap_or_else(|| "being verified".to_owned())
                    .replace('_', " "),
            })
            .collect(),
        incident_link: links.incident_api(incident.id).to_string(),
        grafana_link: links
            .incident_dashboard(incident.project_id, incident.id)
            .map(String::from),
    }
}
