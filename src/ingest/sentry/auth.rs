//! Where a Sentry SDK puts its public key: the `X-Sentry-Auth` header, `Authorization: Sentry …`,
//! the `sentry_key` query parameter (browsers, which cannot set headers on beacons), or the
//! `dsn` in the envelope header. See <https://develop.sentry.dev/sdk/overview/#authentication>.

use crate::model::ProjectId;

/// Parses `Sentry sentry_key=abc, sentry_version=7, …` and returns the key.
pub fn key_from_auth_header(value: &str) -> Option<String> {
    let value = value.trim();
    let rest = value
        .get(..6)
        .filter(|prefix| prefix.eq_ignore_ascii_case("sentry"))
        .map(|_| &value[6..])
        .unwrap_or(value);
    rest.split(',')
        .filter_map(|pair| pair.split_once('='))
        .find(|(name, _)| name.trim() == "sentry_key")
        .map(|(_, key)| key.trim().to_owned())
        .filter(|key| !key.is_empty())
}

/// Returns `sentry_key` from a raw query string.
pub fn key_from_query(query: &str) -> Option<String> {
    url::form_urlencoded::parse(query.as_bytes())
        .find(|(name, _)| name == "sentry_key")
        .map(|(_, key)| key.into_owned())
        .filter(|key| !key.is_empty())
}

/// A parsed DSN: `http://<public_key>@<host>:<port>/<optional prefix>/<project_id>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dsn {
    pub public_key: String,
    pub project_id: ProjectId,
    /// The base URL the SDK sends to, e.g. `http://host:8000/prefix`.
    pub base: url::Url,
}

impl std::str::FromStr for Dsn {
    type Err = String;

    fn from_str(text: &str) -> Result<Dsn, String> {
        let url = url::Url::parse(text.trim()).map_err(|e| format!("not a URL: {e}"))?;
        if url.username().is_empty() {
            return Err("the DSN has no public key (expected http://KEY@host/PROJECT_ID)".into());
        }
        let mut segments: Vec<&str> = url.path().split('/').filter(|s| !s.is_empty()).collect();
        let project_id = segments
            .pop()
            .and_then(|id| id.parse::<i64>().ok())
            .map(ProjectId)
            .ok_or("the DSN path must end with a numeric project id")?;
        let mut base = url.clone();
        base.set_path(&segments.join("/"));
        base.set_query(None);
        let _ = base.set_username("");
        let _ = base.set_password(None);
        Ok(Dsn {
            public_key: url.username().to_owned(),
            project_id,
            base,
        })
    }
}

impl Dsn {
    /// The DSN of a project key on a Seismo reachable at `public_url` (which may have a path).
    pub fn for_project(public_url: &url::Url, public_key: &str, project_id: ProjectId) -> Dsn {
        Dsn {
            public_key: public_key.to_owned(),
            project_id,
            base: public_url.clone(),
        }
    }

    /// The envelope endpoint this DSN's SDK posts to.
    pub fn envelope_url(&self) -> String {
        format!(
            "{}/api/{}/envelope/",
            self.base.as_str().trim_end_matches('/'),
            self.project_id
        )
    }
}

impl std::fmt::Display for Dsn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut url = self.base.clone();
        // Cannot fail: the base is an http(s) URL with a host.
        let _ = url.set_username(&self.public_key);
        let path = format!("{}/{}", url.path().trim_end_matches('/'), self.project_id);
        url.set_path(&path);
        f.write_str(url.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_forms() {
        let header = "Sentry sentry_key=abc123, sentry_version=7, sentry_client=sentry.python/2.0";
        assert_eq!(key_from_auth_header(header).as_deref(), Some("abc123"));
        assert_eq!(
            key_from_auth_header("sentry_version=7,sentry_key=k").as_deref(),
            Some("k")
        );
        assert_eq!(key_from_auth_header("Sentry sentry_version=7"), None);
        assert_eq!(key_from_auth_header(""), None);
        assert_eq!(key_from_auth_header("Sentry sentry_key="), None);
    }

    #[test]
    fn query_form() {
        assert_eq!(
            key_from_query("sentry_version=7&sentry_key=k1").as_deref(),
            Some("k1")
        );
        assert_eq!(key_from_query("x=1"), None);
    }

    #[test]
    fn dsn_with_prefix_and_port() {
        let dsn: Dsn = "http://0123abcd@localhost:9000/sub/path/42"
            .parse()
            .expect("valid");
        assert_eq!(dsn.public_key, "0123abcd");
        assert_eq!(dsn.project_id, ProjectId(42));
        assert_eq!(
            dsn.envelope_url(),
            "http://localhost:9000/sub/path/api/42/envelope/"
        );
        let plain: Dsn = "https://k@example.com/7".parse().expect("valid");
        assert_eq!(plain.envelope_url(), "https://example.com/api/7/envelope/");
    }

    #[test]
    fn dsn_round_trips_through_text() {
        let base = url::Url::parse("http://127.0.0.1:8000/").expect("url");
        let dsn = Dsn::for_project(&base, "abc", ProjectId(3));
        assert_eq!(dsn.to_string(), "http://abc@127.0.0.1:8000/3");
        assert_eq!(dsn.to_string().parse::<Dsn>().expect("parses"), dsn);
        let prefixed = Dsn::for_project(
            &url::Url::parse("https://seismo.example/errors").expect("url"),
            "k",
            ProjectId(9),
        );
        assert_eq!(prefixed.to_string(), "https://k@seismo.example/errors/9");
    }

    #[test]
    fn bad_dsns() {
        assert!("http://localhost/1".parse::<Dsn>().is_err());
        assert!("http://k@localhost/abc".parse::<Dsn>().is_err());
        assert!("nonsense".parse::<Dsn>().is_err());
    }
}
