//! Links that emails and webhooks put in front of a person: with `SEISMO_GRAFANA_URL` set,
//! the Grafana dashboard of the issue or incident (the provisioned dashboards of
//! `dashboards/json`, by their stable uids, with the issue or incident as a variable);
//! without it, the issue or incident in Seismo's API.

use url::Url;

use super::Config;
use crate::model::{IncidentId, IssueId, ProjectId};

/// A provisioned dashboard: its uid (also its slug) and the variable naming the subject.
struct Dashboard {
    uid: &'static str,
    variable: &'static str,
}

pub const ISSUES_DASHBOARD: &str = "seismo-issues";
pub const INCIDENTS_DASHBOARD: &str = "seismo-incidents";

const ISSUES: Dashboard = Dashboard {
    uid: ISSUES_DASHBOARD,
    variable: "issue",
};
const INCIDENTS: Dashboard = Dashboard {
    uid: INCIDENTS_DASHBOARD,
    variable: "incident",
};

/// Where links in mails, webhooks and the API point; built once from the config.
#[derive(Debug, Clone, PartialEq)]
pub struct Links {
    public_url: Url,
    grafana_url: Option<Url>,
}

impl Links {
    pub fn new(public_url: Url, grafana_url: Option<Url>) -> Links {
        Links {
            public_url,
            grafana_url,
        }
    }

    /// Where a person looks at an issue: its dashboard, else the API.
    pub fn issue(&self, project_id: ProjectId, issue_id: IssueId) -> Url {
        self.dashboard(&ISSUES, project_id, issue_id.get())
            .unwrap_or_else(|| self.issue_api(issue_id))
    }

    /// Where a person looks at an incident: its dashboard, else the API.
    pub fn incident(&self, project_id: ProjectId, incident_id: IncidentId) -> Url {
        self.incident_dashboard(project_id, incident_id)
            .unwrap_or_else(|| self.incident_api(incident_id))
    }

    /// The incident's dashboard, when Grafana is configured.
    pub fn incident_dashboard(
        &self,
        project_id: ProjectId,
        incident_id: IncidentId,
    ) -> Option<Url> {
        self.dashboard(&INCIDENTS, project_id, incident_id.get())
    }

    /// The incident in Seismo's API (what a script follows).
    pub fn incident_api(&self, incident_id: IncidentId) -> Url {
        under(&self.public_url, &format!("api/v1/incidents/{incident_id}"))
    }

    pub fn issue_api(&self, issue_id: IssueId) -> Url {
        under(&self.public_url, &format!("api/v1/issues/{issue_id}"))
    }

    fn dashboard(&self, dashboard: &Dashboard, project_id: ProjectId, id: i64) -> Option<Url> {
        let grafana = self.grafana_url.as_ref()?;
        let mut url = under(grafana, &format!("d/{0}/{0}", dashboard.uid));
        url.query_pairs_mut()
            .append_pair("var-project", &project_id.to_string())
            .append_pair(&format!("var-{}", dashboard.variable), &id.to_string());
        Some(url)
    }
}

impl Config {
    pub fn links(&self) -> Links {
        Links::new(self.public_url.clone(), self.grafana_url.clone())
    }

    /// Where a person looks at an issue.
    pub fn issue_link(&self, project_id: ProjectId, issue_id: IssueId) -> Url {
        self.links().issue(project_id, issue_id)
    }

    /// Where a person looks at an incident.
    pub fn incident_link(&self, project_id: ProjectId, incident_id: IncidentId) -> Url {
        self.links().incident(project_id, incident_id)
    }
}

/// `path` below `base`, keeping a path prefix `base` may have (Grafana under `/grafana`).
fn under(base: &Url, path: &str) -> Url {
    let mut url = base.clone();
    url.set_query(None);
    url.set_fragment(None);
    let prefix = url.path().trim_end_matches('/').to_owned();
    url.set_path(&format!("{prefix}/{path}"));
    url
}

#[cfg(test)]
mod tests {
    use crate::config::{Config, Sources};
    use crate::model::{IncidentId, IssueId, ProjectId};

    fn config(pairs: &[(&'static str, &str)]) -> Config {
        let mut sources = Sources::default();
        for (key, value) in pairs {
            sources.set(key, *value);
        }
        Config::from_sources(&sources).expect("valid config")
    }

    #[test]
    fn with_grafana_links_open_the_dashboards_with_the_subject_chosen() {
        let c = config(&[("grafana_url", "https://ops.example.com/grafana/")]);
        assert_eq!(
            c.issue_link(ProjectId(3), IssueId(42)).as_str(),
            "https://ops.example.com/grafana/d/seismo-issues/seismo-issues?var-project=3&var-issue=42"
        );
        let c = config(&[("grafana_url", "http://localhost:3000")]);
        assert_eq!(
            c.incident_link(ProjectId(1), IncidentId(7)).as_str(),
            "http://localhost:3000/d/seismo-incidents/seismo-incidents?var-project=1&var-incident=7"
        );
    }

    #[test]
    fn without_grafana_links_go_to_the_api() {
        let c = config(&[("public_url", "https://seismo.example.com")]);
        assert_eq!(
            c.issue_link(ProjectId(3), IssueId(42)).as_str(),
            "https://seismo.example.com/api/v1/issues/42"
        );
        assert_eq!(
            c.incident_link(ProjectId(3), IncidentId(7)).as_str(),
            "https://seismo.example.com/api/v1/incidents/7"
        );
    }
}
