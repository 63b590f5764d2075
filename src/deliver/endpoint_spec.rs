//! What makes an endpoint valid, checked once for the API and the CLI alike: its kind,
//! an http(s) URL the SSRF guard lets through, a known action, incident kinds and topics,
//! email addresses that parse, and a `whsec_` secret (one is generated when none is given;
//! it is shown once).

use super::mail::transport::parse_address;
use super::signing::Secret;
use super::ssrf::{Guard, SsrfError};
use crate::model::ProjectId;
use crate::store::endpoints::{Endpoint, EndpointChange, NewEndpoint};

pub const KINDS: [&str; 3] = ["recovery", "webhook", "email"];
pub const ACTIONS: [&str; 3] = ["restart", "rollback", "scale"];
/// Topics a webhook endpoint may subscribe to (what the outbox carries).
pub const TOPICS: [&str; 5] = [
    "incident.opened",
    "incident.escalated",
    "incident.resolved",
    "issue.new",
    "issue.regressed",
];
const MAX_ORDER: i32 = 100;
const MAX_COOLDOWN_MINUTES: i32 = 7 * 24 * 60;
const MAX_LIST: usize = 50;
const MAX_TEXT: usize = 200;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct SpecError(pub String);

fn refuse<T>(message: impl Into<String>) -> Result<T, SpecError> {
    Err(SpecError(message.into()))
}

/// An endpoint as asked for, before it is checked.
#[derive(Debug, Clone, PartialEq)]
pub struct Spec {
    pub project_id: ProjectId,
    pub kind: String,
    pub url: Option<String>,
    pub secret: Option<String>,
    pub action: Option<String>,
    pub incident_kinds: Vec<String>,
    pub services: Vec<String>,
    pub order: Option<i32>,
    pub cooldown_minutes: Option<i32>,
    pub events: Vec<String>,
    pub addresses: Vec<String>,
}

impl Spec {
    /// A spec of `kind` for `project_id` with nothing else set.
    pub fn new(project_id: ProjectId, kind: &str) -> Spec {
        Spec {
            project_id,
            kind: kind.to_owned(),
            url: None,
            secret: None,
            action: None,
            incident_kinds: Vec::new(),
            services: Vec::new(),
            order: None,
            cooldown_minutes: None,
            events: Vec::new(),
            addresses: Vec::new(),
        }
    }
}

/// The checked endpoint, with its secret (generated or given) to show once.
pub async fn validate(
    spec: Spec,
    guard: &Guard,
    incident_kinds: &[&str],
) -> Result<NewEndpoint, SpecError> {
    if !KINDS.contains(&spec.kind.as_str()) {
        return refuse(format!(
            "unknown kind {:?} (recovery, webhook or email)",
            spec.kind
        ));
    }
    let hooked = spec.kind != "email";
    let url = match (&spec.url, hooked) {
        (Some(url), true) => Some(check_url(url, guard).await?),
        (None, true) => return refuse(format!("a {} endpoint needs a url", spec.kind)),
        (Some(_), false) => return refuse("an email endpoint takes addresses, not a url"),
        (None, false) => None,
    };
    let secret = match (&spec.secret, hooked) {
        (Some(secret), true) => Some(check_secret(secret)?),
        (None, true) => Some(Secret::generate()),
        (Some(_), false) => return refuse("an email endpoint has no secret"),
        (None, false) => None,
    };
    let recovery = spec.kind == "recovery";
    let action =
        match (&spec.action, recovery) {
            (Some(action), true) => Some(check_action(action)?),
            (None, true) => return refuse(
                "a recovery endpoint needs an action (restart, rollback, scale or custom:<name>)",
            ),
            (Some(_), false) => return refuse("only recovery endpoints take an action"),
            (None, false) => None,
        };
    check_incident_kinds(&spec.incident_kinds, incident_kinds)?;
    check_texts("services", &spec.services)?;
    check_events(&spec.events)?;
    if spec.kind == "email" {
        check_addresses(&spec.addresses)?;
    } else if !spec.addresses.is_empty() {
        return refuse("only email endpoints take addresses");
    }
    let order = spec.order.unwrap_or(1);
    check_order(order)?;
    let cooldown_minutes = spec.cooldown_minutes.unwrap_or(0);
    check_cooldown(cooldown_minutes)?;
    Ok(NewEndpoint {
        project_id: spec.project_id,
        kind: spec.kind,
        url,
        secret,
        action,
        incident_kinds: spec.incident_kinds,
        services: spec.services,
        order,
        cooldown_minutes,
        events: spec.events,
        addresses: spec.addresses,
    })
}

/// Checks a change against the endpoint's kind. `rotate` asks for a fresh secret; the
/// change then carries it (to show once).
pub async fn validate_change(
    endpoint: &Endpoint,
    mut change: EndpointChange,
    rotate: bool,
    guard: &Guard,
    incident_kinds: &[&str],
) -> Result<EndpointChange, SpecError> {
    let hooked = endpoint.kind != "email";
    let recovery = endpoint.kind == "recovery";
    if let Some(url) = &change.url {
        if !hooked {
            return refuse("an email endpoint takes addresses, not a url");
        }
        change.url = Some(check_url(url, guard).await?);
    }
    match (&change.secret, rotate) {
        (Some(_), true) => return refuse("give a secret or rotate, not both"),
        (Some(_), false) | (None, true) if !hooked => {
            return refuse("an email endpoint has no secret")
        }
        (Some(secret), false) => change.secret = Some(check_secret(secret)?),
        (None, true) => change.secret = Some(Secret::generate()),
        (None, false) => {}
    }
    if let Some(action) = &change.action {
        if !recovery {
            return refuse("only recovery endpoints take an action");
        }
        change.action = Some(check_action(action)?);
    }
    if let Some(kinds) = &change.incident_kinds {
        check_incident_kinds(kinds, incident_kinds)?;
    }
    if let Some(services) = &change.services {
        check_texts("services", services)?;
    }
    if let Some(events) = &change.events {
        check_events(events)?;
    }
    if let Some(addresses) = &change.addresses {
        if endpoint.kind != "email" {
            return refuse("only email endpoints take addresses");
        }
        check_addresses(addresses)?;
    }
    change.order.map(check_order).transpose()?;
    change.cooldown_minutes.map(check_cooldown).transpose()?;
    Ok(change)
}

async fn check_url(text: &str, guard: &Guard) -> Result<String, SpecError> {
    let url =
        url::Url::parse(text).map_err(|e| SpecError(format!("url {text:?} is not a URL: {e}")))?;
    guard
        .check_url(&url)
        .map_err(|e| SpecError(format!("url: {e}")))?;
    if let Some(url::Host::Domain(name)) = url.host() {
        // A name that resolves only to refused addresses is refused now; one that does not
        // resolve yet is checked again on every send.
        if let Err(SsrfError::Refused(ip)) = guard.check_name(name).await {
            return refuse(format!("url: {name} resolves to {ip}, which is not a global address and is not in SEISMO_WEBHOOK_ALLOW_CIDRS"));
        }
    }
    Ok(url.to_string())
}

fn check_secret(text: &str) -> Result<String, SpecError> {
    Secret::parse(text).map_err(|e| SpecError(format!("secret: {e}")))?;
    Ok(text.to_owned())
}

fn check_action(action: &str) -> Result<String, SpecError> {
    let custom = action.strip_prefix("custom:").is_some_and(|name| {
        (1..=40).contains(&name.len())
            && name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
    });
    match ACTIONS.contains(&action) || custom {
        true => Ok(action.to_owned()),
        false => refuse(format!(
            "unknown action {action:?} (restart, rollback, scale or custom:<name>)"
        )),
    }
}

fn check_incident_kinds(kinds: &[String], known: &[&str]) -> Result<(), SpecError> {
    match kinds.iter().find(|k| !known.contains(&k.as_str())) {
        Some(kind) => refuse(format!(
            "unknown incident kind {kind:?} ({})",
            known.join(", ")
        )),
        None => check_texts("incident_kinds", kinds),
    }
}

fn check_events(events: &[String]) -> Result<(), SpecError> {
    match events.iter().find(|e| !TOPICS.contains(&e.as_str())) {
        Some(event) => refuse(format!("unknown event {event:?} ({})", TOPICS.join(", "))),
        None => check_texts("events", events),
    }
}

fn check_addresses(addresses: &[String]) -> Result<(), SpecError> {
    if addresses.is_empty() {
        return refuse("an email endpoint needs at least one address");
    }
    check_texts("addresses", addresses)?;
    match addresses.iter().find(|a| parse_address(a).is_err()) {
        Some(bad) => refuse(format!("{bad:?} is not an email address")),
        None => Ok(()),
    }
}

fn check_texts(field: &str, values: &[String]) -> Result<(), SpecError> {
    let bad = |v: &String| v.is_empty() || v.chars().count() > MAX_TEXT || v.contains('\0');
    if values.len() > MAX_LIST || values.iter().any(bad) {
        return refuse(format!(
            "{field}: at most {MAX_LIST} values of 1 to {MAX_TEXT} characters, without NUL"
        ));
    }
    Ok(())
}

fn check_order(order: i32) -> Result<(), SpecError> {
    match (1..=MAX_ORDER).contains(&order) {
        true => Ok(()),
        false => refuse(format!("order must be between 1 and {MAX_ORDER}")),
    }
}

fn check_cooldown(minutes: i32) -> Result<(), SpecError> {
    match (0..=MAX_COOLDOWN_MINUTES).contains(&minutes) {
        true => Ok(()),
        false => refuse(format!(
            "cooldown_minutes must be between 0 and {MAX_COOLDOWN_MINUTES}"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KINDS_OF_INCIDENT: [&str; 2] = ["anomaly", "threshold"];

    fn recovery(url: &str) -> Spec {
        Spec {
            url: Some(url.into()),
            action: Some("restart".into()),
            ..Spec::new(ProjectId(1), "recovery")
        }
    }

    #[tokio::test]
    async fn a_recovery_endpoint_gets_a_secret_and_defaults() {
        let guard = Guard::new(&["127.0.0.0/8".into()]).expect("valid");
        let made = validate(
            recovery("http://127.0.0.1:9/restart"),
            &guard,
            &KINDS_OF_INCIDENT,
        )
        .await
        .expect("valid");
        assert!(made
            .secret
            .as_deref()
            .is_some_and(|s| s.starts_with("whsec_")));
        assert_eq!((made.order, made.cooldown_minutes), (1, 0));
    }

    #[tokio::test]
    async fn bad_endpoints_say_what_is_wrong() {
        let guard = Guard::default();
        let kinds = &KINDS_OF_INCIDENT;
        let check = |spec: Spec, needle: &'static str| {
            let guard = guard.clone();
            async move {
                let error = validate(spec, &guard, kinds).await.expect_err(needle).0;
                assert!(error.contains(needle), "{error} should mention {needle}");
            }
        };
        check(recovery("ftp://example.com/"), "http or https").await;
        check(
            recovery("http://127.0.0.1:9/"),
            "SEISMO_WEBHOOK_ALLOW_CIDRS",
        )
        .await;
        check(
            recovery("http://localhost:9/"),
            "SEISMO_WEBHOOK_ALLOW_CIDRS",
        )
        .await;
        let mut bad_action = recovery("https://8.8.8.8/");
        bad_action.action = Some("reboot".into());
        check(bad_action, "unknown action").await;
        let mut bad_kind = recovery("https://8.8.8.8/");
        bad_kind.incident_kinds = vec!["earthquake".into()];
        check(bad_kind, "unknown incident kind").await;
        check(Spec::new(ProjectId(1), "pager"), "unknown kind").await;
        let email = Spec {
            addresses: vec!["not an address".into()],
            ..Spec::new(ProjectId(1), "email")
        };
        check(email, "is not an email address").await;
        let mut bad_secret = recovery("https://8.8.8.8/");
        bad_secret.secret = Some("hunter2".into());
        check(bad_secret, "whsec_").await;
    }
}
