//! The live recovery run, in real time against a running `seismo serve` (started by
//! `bench/deliver_live.sh`): a fake shop with two services, each sending real errors through
//! the `sentry` SDK and exposing `POST /admin/restart` and `/admin/rollback`, plus an SMTP
//! catcher for Seismo's mail.
//!
//! - `checkout`: a few errors a minute, then a burst after `--baseline-minutes`; a restart
//!   cures it (back to a few a minute).
//! - `billing`: the same burst, but it came with release `shop@1.3.0` and a restart does not
//!   help; a rollback to `shop@1.2.9` does.
//!
//! It registers the recovery chains (restart, then rollback) and an email endpoint through
//! the API, verifies every webhook's signature, prints each change it sees (incident states,
//! hook calls with their latency from the incident's change, mails) with the wall time, and
//! ends when both services' incidents are resolved (or at `--minutes`), with Seismo's
//! recovery stats.

#[path = "../tests/integration/receivers.rs"]
#[allow(dead_code)]
mod receivers;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use seismo::deliver::signing::Secret;
use sentry::protocol::{Event, Exception, Frame, Level, Stacktrace};
use serde_json::{json, Value};

use receivers::{Receiver, SmtpServer};

struct Args {
    api: String,
    token: String,
    dsn: String,
    project: i64,
    smtp_port: u16,
    admin_port: u16,
    baseline_minutes: u64,
    minutes: u64,
}

fn args() -> anyhow::Result<Args> {
    let mut map = HashMap::new();
    let mut raw = std::env::args().skip(1);
    while let (Some(key), Some(value)) = (raw.next(), raw.next()) {
        map.insert(key.trim_start_matches("--").to_owned(), value);
    }
    let get = |k: &str| {
        map.get(k)
            .cloned()
            .ok_or_else(|| anyhow::anyhow!("--{k} is required"))
    };
    Ok(Args {
        api: get("api")?,
        token: get("token")?,
        dsn: get("dsn")?,
        project: get("project")?.parse()?,
        smtp_port: get("smtp-port")?.parse()?,
        admin_port: get("admin-port")?.parse()?,
        baseline_minutes: get("baseline-minutes")?.parse()?,
        minutes: get("minutes")?.parse()?,
    })
}

fn say(what: impl AsRef<str>) {
    println!("{} {}", Utc::now().format("%H:%M:%S%.3f"), what.as_ref());
}

/// One fake service: its hooks, its SDK, and what state its errors are in.
struct Service {
    name: &'static str,
    hooks: Receiver,
    client: Arc<sentry::Client>,
    hub: Arc<sentry::Hub>,
    secret: String,
    /// `restart` cures it (else only `rollback` does).
    restart_cures: bool,
}

impl Service {
    fn new(
        name: &'static str,
        dsn: &str,
        hooks: Receiver,
        restart_cures: bool,
    ) -> anyhow::Result<Service> {
        let options = sentry::ClientOptions {
            dsn: Some(dsn.parse()?),
            environment: Some("production".into()),
            ..Default::default()
        };
        let client = Arc::new(sentry::Client::from(sentry::apply_defaults(options)));
        let hub = Arc::new(sentry::Hub::new(
            Some(client.clone()),
            Arc::new(sentry::Scope::default()),
        ));
        hub.configure_scope(|scope| scope.set_tag("service", name));
        Ok(Service {
            name,
            hooks,
            client,
            hub,
            secret: String::new(),
            restart_cures,
        })
    }

    /// Errors per minute now, and the release they come from.
    fn rate(&self, bursting: bool) -> (f64, &'static str) {
        let calls: Vec<String> = self
            .hooks
            .received()
            .iter()
            .map(|r| r.path.clone())
            .collect();
        let cured = calls.iter().any(|p| p.ends_with("/rollback"))
            || (self.restart_cures && calls.iter().any(|p| p.ends_with("/restart")));
        match (bursting, cured) {
            (_, true) if calls.iter().any(|p| p.ends_with("/rollback")) => (3.0, "shop@1.2.9"),
            (true, false) => (60.0, "shop@1.3.0"),
            _ => (3.0, if bursting { "shop@1.3.0" } else { "shop@1.2.9" }),
        }
    }
}

fn error(service: &str, release: &'static str, n: usize) -> Event<'static> {
    let frame = |function: &str, line: u64| Frame {
        function: Some(function.into()),
        module: Some(format!("shop.{service}")),
        filename: Some(format!("shop/{service}.py")),
        lineno: Some(line),
        in_app: Some(true),
        ..Default::default()
    };
    Event {
        level: Level::Error,
        platform: "python".into(),
        release: Some(release.into()),
        exception: vec![Exception {
            ty: "ConnectionError".into(),
            value: Some(format!("{service} backend refused request {n}")),
            stacktrace: Some(Stacktrace {
                frames: vec![frame("handle", 12), frame("call_backend", 87)],
                ..Default::default()
            }),
            ..Default::default()
        }]
        .into(),
        ..Default::default()
    }
}

struct Api {
    http: reqwest::Client,
    base: String,
    token: String,
}

impl Api {
    async fn get(&self, path: &str) -> anyhow::Result<Value> {
        let answer = self
            .http
            .get(format!("{}{path}", self.base))
            .bearer_auth(&self.token)
            .send()
            .await?;
        Ok(answer.json().await?)
    }

    async fn post(&self, path: &str, body: Value) -> anyhow::Result<Value> {
        let answer = self
            .http
            .post(format!("{}{path}", self.base))
            .bearer_auth(&self.token)
            .json(&body)
            .send()
            .await?;
        let status = answer.status();
        let body: Value = answer.json().await?;
        anyhow::ensure!(status.is_success(), "POST {path}: {status} {body}");
        Ok(body)
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = args()?;
    let api = Api {
        http: reqwest::Client::new(),
        base: args.api.clone(),
        token: args.token.clone(),
    };
    let smtp = SmtpServer::start_on(args.smtp_port).await;
    let mut services = Vec::new();
    for (i, (name, restart_cures)) in [("checkout", true), ("billing", false)]
        .into_iter()
        .enumerate()
    {
        let hooks = Receiver::start_on(args.admin_port + i as u16, vec![]).await;
        let mut service = Service::new(name, &args.dsn, hooks, restart_cures)?;
        for (order, action) in [(1, "restart"), (2, "rollback")] {
            let made = api
                .post(
                    "/api/v1/endpoints",
                    json!({"project_id": args.project, "kind": "recovery",
                    "url": service.hooks.url(&format!("/admin/{action}")), "action": action,
                    "order": order, "services": [name], "incident_kinds": ["anomaly"],
                    "cooldown_minutes": if order == 1 { 10 } else { 0 },
                    "secret": (order == 2).then(|| service.secret.clone())}),
                )
                .await?;
            if order == 1 {
                service.secret = made["secret"].as_str().unwrap_or_default().to_owned();
            }
        }
        services.push(service);
    }
    api.post(
        "/api/v1/endpoints",
        json!({"project_id": args.project, "kind": "email",
        "addresses": ["oncall@example.com"]}),
    )
    .await?;
    say(format!(
        "endpoints registered; baseline for {} min, then a burst",
        args.baseline_minutes
    ));

    let started = Instant::now();
    let mut owed = vec![0.0f64; services.len()];
    let mut seen_calls = vec![0usize; services.len()];
    let mut seen_mails = 0;
    let mut states: HashMap<i64, String> = HashMap::new();
    let mut last_poll = Instant::now() - Duration::from_secs(10);
    let mut burst_said = false;
    loop {
        let bursting = started.elapsed() >= Duration::from_secs(60 * args.baseline_minutes);
        if bursting && !burst_said {
            say("burst begins: 60 errors a minute from shop@1.3.0 on checkout and billing");
            burst_said = true;
        }
        for (i, service) in services.iter().enumerate() {
            let (per_minute, release) = service.rate(bursting);
            owed[i] += per_minute / 60.0;
            let n = owed[i].floor() as usize;
            owed[i] -= n as f64;
            if n > 0 {
                let (hub_service, release) = (service.hub.clone(), release);
                let client = service.client.clone();
                let name = service.name;
                tokio::task::spawn_blocking(move || {
                    for k in 0..n {
                        hub_service.capture_event(error(name, release, k));
                    }
                    client.flush(Some(Duration::from_secs(5)));
                });
            }
            for call in service.hooks.received().iter().skip(seen_calls[i]) {
                seen_calls[i] += 1;
                report_call(service, call);
            }
        }
        for mail in smtp.mails().iter().skip(seen_mails) {
            seen_mails += 1;
            say(format!(
                "mail to {:?}: {}",
                mail.to,
                mail.header("Subject").unwrap_or("?")
            ));
        }
        if last_poll.elapsed() >= Duration::from_secs(5) {
            last_poll = Instant::now();
            if poll(&api, args.project, &mut states).await? {
                break;
            }
        }
        if started.elapsed() >= Duration::from_secs(60 * args.minutes) {
            say("time is up before both incidents were resolved");
            break;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    let stats = api
        .get(&format!("/api/v1/stats?project={}", args.project))
        .await?;
    say(format!("recovery stats: {}", stats["recovery"]));
    Ok(())
}

fn report_call(service: &Service, call: &receivers::Received) {
    let body = call.json();
    let data = &body["data"];
    let key = Secret::parse(&service.secret).ok();
    let timestamp: i64 = call.header("webhook-timestamp").parse().unwrap_or(0);
    let verified = key.is_some_and(|k| {
        k.verify(
            call.header("webhook-id"),
            timestamp,
            &call.body,
            call.header("webhook-signature"),
        )
    });
    let incident = data["incident"]["id"].as_i64().unwrap_or(0);
    say(format!(
        "{} got {} for incident {incident}: signature {}, suspect {}, last healthy {}",
        service.name,
        call.path,
        if verified { "verified" } else { "BAD" },
        data["suspect_release"],
        data["last_healthy_release"],
    ));
}

/// Prints incident changes; true when every incident that got a recovery action is resolved.
async fn poll(api: &Api, project: i64, states: &mut HashMap<i64, String>) -> anyhow::Result<bool> {
    let incidents = api
        .get(&format!("/api/v1/incidents?project={project}&limit=100"))
        .await?;
    for incident in incidents["items"].as_array().into_iter().flatten() {
        let id = incident["id"].as_i64().unwrap_or(0);
        let state = incident["state"].as_str().unwrap_or("?").to_owned();
        if states.get(&id) != Some(&state) {
            say(format!(
                "incident {id} {} on {} {}: {state}",
                incident["kind"], incident["series"]["scope"], incident["series"]["service"]
            ));
            states.insert(id, state);
        }
    }
    let acted = api
        .get(&format!(
            "/api/v1/deliveries?project={project}&kind=recovery&status=delivered&limit=100"
        ))
        .await?;
    let mut ids: Vec<i64> = acted["items"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|d| d["incident_id"].as_i64())
        .collect();
    ids.sort_unstable();
    ids.dedup();
    let services: std::collections::HashSet<String> = acted["items"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|d| d["payload"]["data"]["service"].as_str().map(str::to_owned))
        .collect();
    Ok(services.len() == 2
        && ids
            .iter()
            .all(|id| states.get(id).is_some_and(|s| s == "resolved")))
}
