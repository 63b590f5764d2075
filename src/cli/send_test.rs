//! `seismo send-test <dsn>`: sends one real error event through the Sentry envelope protocol
//! (exactly what an SDK sends) and reports Seismo's answer.

use anyhow::{bail, Context};
use chrono::Utc;
use serde_json::json;
use uuid::Uuid;

use crate::ingest::sentry::auth::Dsn;

pub async fn run(dsn: &str, message: &str) -> anyhow::Result<()> {
    let dsn: Dsn = dsn
        .parse()
        .map_err(|e: String| anyhow::anyhow!("invalid DSN: {e}"))?;
    let event_id = Uuid::new_v4().simple().to_string();
    let body = envelope(&event_id, message);
    let client = reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(10))
        .build()?;
    let response = client
        .post(dsn.envelope_url())
        .header(
            "X-Sentry-Auth",
            format!(
                "Sentry sentry_key={}, sentry_version=7, sentry_client=seismo-send-test/1",
                dsn.public_key
            ),
        )
        .header("Content-Type", "application/x-sentry-envelope")
        .body(body)
        .send()
        .await
        .with_context(|| format!("cannot reach {}", dsn.envelope_url()))?;
    let status = response.status();
    let text = response.text().await.unwrap_or_default();
    if !status.is_success() {
        bail!("Seismo answered {status}: {}", text.trim());
    }
    println!("sent event {event_id}: {status} {}", text.trim());
    Ok(())
}

fn envelope(event_id: &str, message: &str) -> String {
    let event = json!({
        "event_id": event_id,
        "timestamp": Utc::now().timestamp_millis() as f64 / 1000.0,
        "platform": "other",
        "level": "error",
        "logger": "seismo.send-test",
        "environment": "test",
        "tags": {"source": "seismo-send-test"},
        "exception": {"values": [{
            "type": "SeismoTestError",
            "value": message,
            "mechanism": {"type": "generic", "handled": true},
            "stacktrace": {"frames": [
                {"function": "main", "module": "seismo.cli", "in_app": true},
                {"function": "send_test", "module": "seismo.cli.send_test", "in_app": true}
            ]}
        }]}
    })
    .to_string();
    let header = json!({"event_id": event_id, "sent_at": Utc::now().to_rfc3339()});
    let item = json!({"type": "event", "length": event.len(), "content_type": "application/json"});
    format!("{header}\n{item}\n{event}\n")
}
