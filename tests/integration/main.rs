//! One integration-test binary (one link step): each module tests one capability against a
//! real PostgreSQL and a real Seismo on a free port.

mod api;
mod api_detection;
mod api_fuzz;
mod api_issue_triage;
mod api_openapi;
mod api_projects;
mod api_scopes;
mod api_silences;
mod api_stats;
mod api_tokens;
mod cli;
mod dashboards;
mod deliver_e2e;
mod deliver_mail;
mod deliver_webhooks;
mod delivery;
mod detect;
mod detect_live;
mod dictionaries;
mod eval;
mod fault;
mod harness;
mod hostile;
mod layers;
mod openapi;
mod otlp;
mod outage;
mod process;
mod protocol;
mod receivers;
mod retention;
mod scrub;
mod sdk;
mod self_tracing;
mod writer;
