//! Fan-out: outbox rows become deliveries, one per endpoint that should hear of them.
//!
//! Routing (pure, [`notified`] and [`next_recovery`]):
//! - a `webhook` endpoint gets every topic in its `events` (all when empty);
//! - an `email` endpoint gets `incident.opened|escalated|resolved` (filtered by `events`
//!   too when set), delayed by the grouping window;
//! - `incident.opened` goes to the first `recovery` endpoint in `order` matching the
//!   incident's kind and service (an endpoint limited to services never acts on a
//!   project-wide incident: no one service owns it); `incident.escalated` (written by the detector when an
//!   action failed its verification, with that action's `order`) to the next one after it.
//!
//! One round reads first, outside any transaction: the waiting outbox rows, their projects'
//! endpoints, and the incident context of each recovery request (several reads of the
//! incident's events). Then one short transaction claims those rows, writes their
//! deliveries and deletes them.
//!
//! Deduplication is the table's: `UNIQUE (endpoint_id, dedup_key)` with `outbox:<row>` for
//! notifications and `incident:<id>:recovery` for actions, so one incident never makes two
//! deliveries of one action even if its row were fanned out twice.

use std::collections::hash_map::{Entry, HashMap};

use chrono::{DateTime, TimeDelta, Utc};
use serde_json::Value;
use sqlx::PgPool;

use super::payload::recovery_request;
use super::{delta, DeliverError, Settings};
use crate::model::{IncidentId, ProjectId};
use crate::store::deliveries::{self, NewDelivery, OutboxRow};
use crate::store::endpoints::{self, Endpoint};
use crate::store::incident_context::{self, IncidentContext};
use crate::store::silences;

/// Topics that make a mail.
pub const MAIL_TOPICS: [&str; 3] = ["incident.opened", "incident.escalated", "incident.resolved"];

/// Does this notification endpoint want this topic?
pub fn notified(endpoint: &Endpoint, topic: &str) -> bool {
    let listed = endpoint.events.is_empty() || endpoint.events.iter().any(|e| e == topic);
    match endpoint.kind.as_str() {
        "webhook" => listed,
        "email" => listed && MAIL_TOPICS.contains(&topic),
        _ => false,
    }
}

/// The recovery endpoint to act next for an incident of `kind` on `service`: the lowest
/// `order` above `after` (any, for a fresh incident) whose filters match.
pub fn next_recovery<'a>(
    endpoints: &'a [Endpoint],
    kind: &str,
    service: Option<&str>,
    after: Option<i32>,
) -> Option<&'a Endpoint> {
    let matches = |values: &[String], value: Option<&str>| {
        values.is_empty() || value.is_some_and(|v| values.iter().any(|x| x == v))
    };
    endpoints
        .iter()
        .filter(|e| e.kind == "recovery" && e.enabled)
        .filter(|e| after.is_none_or(|after| e.order > after))
        .filter(|e| matches(&e.incident_kinds, Some(kind)) && matches(&e.services, service))
        .min_by_key(|e| (e.order, e.id))
}

/// Which step of the recovery chain a row asks for: `Some(None)` the first,
/// `Some(Some(order))` the one after `order`, `None` no action.
fn chain_step(row: &OutboxRow) -> Option<Option<i32>> {
    match row.topic.as_str() {
        "incident.opened" => Some(None),
        "incident.escalated" => row.payload["data"]["recovery"]["order"]
            .as_i64()
            .and_then(|o| i32::try_from(o).ok())
            .map(Some),
        _ => None,
    }
}

/// Fans out one batch of outbox rows; the number of rows taken.
pub async fn fan_out(
    pool: &PgPool,
    settings: &Settings,
    now: DateTime<Utc>,
) -> Result<usize, DeliverError> {
    let waiting = deliveries::peek_outbox(pool, settings.batch).await?;
    if waiting.is_empty() {
        return Ok(0);
    }
    let endpoints = enabled_endpoints(pool, &waiting).await?;
    let contexts = recovery_contexts(pool, &waiting, &endpoints, now).await?;
    // The transaction stays short, the slow reads done above: while it is open, PostgreSQL
    // keeps every row version it might see, so no page is pruned and no vacuum reclaims
    // anything (the writer's issue rows, updated with every event, among them), and the
    // rows it claimed wait for it. Gathering contexts in it held it for 30 s in a burst of
    // new issues under load (bench/README.md, "A transaction held open for half a minute").
    let mut tx = pool.begin().await?;
    let peeked: Vec<i64> = waiting.iter().map(|r| r.id).collect();
    // Another process may have claimed some of them since: those are skipped.
    let rows = deliveries::claim_outbox(&mut tx, &peeked).await?;
    for row in &rows {
        let project_endpoints = endpoints
            .get(&row.project_id)
            .map_or(&[][..], Vec::as_slice);
        let silenced = match row.incident_id {
            Some(id) => silences::covering(&mut tx, id, now).await?.is_some(),
            None => false,
        };
        for new in notifications(row, project_endpoints, settings, now, silenced) {
            deliveries::insert(&mut tx, &new).await?;
        }
        let context = row.incident_id.and_then(|id| contexts.get(&id));
        if let (Some(step), Some(context), false) = (chain_step(row), context, silenced) {
            let request = recovery(
                &mut tx,
                row,
                project_endpoints,
                context,
                step,
                settings,
                now,
            )
            .await?;
            if let Some(new) = request {
                deliveries::insert(&mut tx, &new).await?;
            }
        }
    }
    let claimed: Vec<i64> = rows.iter().map(|r| r.id).collect();
    deliveries::remove_outbox(&mut tx, &claimed).await?;
    tx.commit().await?;
    Ok(rows.len())
}

/// The enabled endpoints of each project with a row waiting.
async fn enabled_endpoints(
    pool: &PgPool,
    rows: &[OutboxRow],
) -> Result<HashMap<ProjectId, Vec<Endpoint>>, DeliverError> {
    let mut conn = pool.acquire().await?;
    let mut found = HashMap::new();
    for row in rows {
        if let Entry::Vacant(slot) = found.entry(row.project_id) {
            slot.insert(endpoints::enabled_for(&mut conn, row.project_id).await?);
        }
    }
    Ok(found)
}

/// The context of each incident whose row starts or continues its recovery chain, in a
/// project with a recovery endpoint: the service that picks the endpoint, and what the
/// request tells it. Each takes several reads of the incident's events.
async fn recovery_contexts(
    pool: &PgPool,
    rows: &[OutboxRow],
    endpoints: &HashMap<ProjectId, Vec<Endpoint>>,
    now: DateTime<Utc>,
) -> Result<HashMap<IncidentId, IncidentContext>, DeliverError> {
    let mut contexts = HashMap::new();
    for row in rows {
        let Some(incident_id) = row.incident_id else {
            continue;
        };
        let recovers = endpoints
            .get(&row.project_id)
            .is_some_and(|found| found.iter().any(|e| e.kind == "recovery"));
        if chain_step(row).is_none() || !recovers || contexts.contains_key(&incident_id) {
            continue;
        }
        if let Some(context) = incident_context::gather(pool, incident_id, now).await? {
            contexts.insert(incident_id, context);
        }
    }
    Ok(contexts)
}

fn notifications(
    row: &OutboxRow,
    endpoints: &[Endpoint],
    settings: &Settings,
    now: DateTime<Utc>,
    silenced: bool,
) -> Vec<NewDelivery> {
    endpoints
        .iter()
        .filter(|e| notified(e, &row.topic))
        .map(|endpoint| {
            let wait = match endpoint.kind.as_str() {
                "email" => delta(settings.mail_group_wait),
                _ => TimeDelta::zero(),
            };
            NewDelivery {
                endpoint_id: endpoint.id,
                project_id: row.project_id,
                incident_id: row.incident_id,
                kind: endpoint.kind.clone(),
                topic: row.topic.clone(),
                action: None,
                dedup_key: format!("outbox:{}", row.id),
                payload: row.payload.clone(),
                status: if silenced { "skipped" } else { "pending" },
                note: silenced.then(|| "a silence covers the incident".to_owned()),
                next_attempt_at: now + wait,
                expires_at: None,
            }
        })
        .collect()
}

async fn recovery(
    tx: &mut sqlx::PgConnection,
    row: &OutboxRow,
    endpoints: &[Endpoint],
    context: &IncidentContext,
    after: Option<i32>,
    settings: &Settings,
    now: DateTime<Utc>,
) -> Result<Option<NewDelivery>, DeliverError> {
    let service = context.owning_service();
    let kind = context.incident.kind.as_str();
    let Some(endpoint) = next_recovery(endpoints, kind, service, after) else {
        return Ok(None);
    };
    let action = endpoint.action.clone().unwrap_or_default();
    let payload: Value = recovery_request(&action, context, &settings.links, now);
    let cooling = endpoint.cooldown_minutes > 0
        && deliveries::acted_since(
            tx,
            endpoint.id,
            service.unwrap_or(""),
            now - TimeDelta::minutes(i64::from(endpoint.cooldown_minutes)),
        )
        .await?;
    Ok(Some(NewDelivery {
        endpoint_id: endpoint.id,
        project_id: row.project_id,
        incident_id: Some(context.incident.id),
        kind: "recovery".to_owned(),
        topic: "recovery.requested".to_owned(),
        action: Some(action),
        dedup_key: format!("incident:{}:recovery", context.incident.id),
        payload,
        status: if cooling { "skipped" } else { "pending" },
        note: cooling.then(|| "the endpoint acted on this service within its cooldown".into()),
        next_attempt_at: now,
        expires_at: Some(now + delta(settings.recovery_expiry)),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn endpoint(id: i64, kind: &str, order: i32) -> Endpoint {
        Endpoint {
            id,
            project_id: ProjectId(1),
            kind: kind.into(),
            url: Some("https://hooks.example.com/".into()),
            secrets: vec![],
            action: Some("restart".into()),
            incident_kinds: vec![],
            services: vec![],
            order,
            cooldown_minutes: 0,
            events: vec![],
            addresses: vec!["ops@example.com".into()],
            enabled: true,
            disabled_reason: None,
            breaker_state: "closed".into(),
            breaker_failures: 0,
            breaker_until: None,
            quiet_until: None,
            created_at: Utc::now(),
        }
    }

    #[test]
    fn the_chain_goes_by_order_and_filters() {
        let mut rollback = endpoint(2, "recovery", 2);
        rollback.action = Some("rollback".into());
        let mut other_service = endpoint(3, "recovery", 1);
        other_service.services = vec!["billing".into()];
        let mut only_rates = endpoint(4, "recovery", 1);
        only_rates.incident_kinds = vec!["error_rate".into()];
        let endpoints = vec![
            rollback,
            endpoint(1, "recovery", 1),
            other_service,
            only_rates,
        ];
        let first = next_recovery(&endpoints, "anomaly", Some("checkout"), None).expect("one");
        assert_eq!(first.id, 1);
        let next = next_recovery(&endpoints, "anomaly", Some("checkout"), Some(1)).expect("next");
        assert_eq!(next.id, 2);
        assert!(next_recovery(&endpoints, "anomaly", Some("checkout"), Some(2)).is_none());
        assert_eq!(
            next_recovery(&endpoints, "error_rate", Some("billing"), None).map(|e| e.id),
            Some(1)
        );
    }

    #[test]
    fn notification_endpoints_take_their_topics() {
        let mut hook = endpoint(1, "webhook", 1);
        assert!(notified(&hook, "issue.new"));
        hook.events = vec!["incident.opened".into()];
        assert!(notified(&hook, "incident.opened") && !notified(&hook, "issue.new"));
        let mail = endpoint(2, "email", 1);
        assert!(notified(&mail, "incident.escalated") && !notified(&mail, "issue.new"));
        assert!(!notified(&endpoint(3, "recovery", 1), "incident.opened"));
    }
}
