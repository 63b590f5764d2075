//! The test harness: every test gets its own database and its own Seismo on a free port.
//!
//! The PostgreSQL server is `SEISMO_TEST_DATABASE_URL` when set, else the machine's server at
//! 127.0.0.1:5432 when it answers, else a throwaway cluster (started once from
//! `initdb`/`pg_ctl` under the system temp dir and shared by all test processes). Databases
//! are named after the test process, and those of processes that are gone are dropped, so
//! repeated runs do not pile up databases.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use proptest::prelude::{any, prop, prop_oneof, BoxedStrategy, Just};
use proptest::strategy::Strategy;
use seismo::app::App;
use seismo::config::{Config, Sources};
use seismo::pg_runner::EmbeddedPostgres;
use seismo::store::{self, projects, projects::Project};
use serde_json::Value;
use sqlx::PgPool;
use tokio::sync::{watch, OnceCell};

const MACHINE_SERVER: &str = "postgres://postgres@127.0.0.1:5432";

static SERVER: OnceCell<String> = OnceCell::const_new();
static NEXT_DATABASE: AtomicUsize = AtomicUsize::new(0);

/// The base URL (no database) of the PostgreSQL server tests use.
pub async fn server_url() -> &'static str {
    SERVER.get_or_init(find_server).await
}

async fn find_server() -> String {
    if let Ok(url) = std::env::var("SEISMO_TEST_DATABASE_URL") {
        return url.trim_end_matches('/').to_owned();
    }
    if answers(MACHINE_SERVER).await {
        return MACHINE_SERVER.to_owned();
    }
    shared_throwaway_cluster().await
}

async fn answers(server: &str) -> bool {
    let url = format!("{server}/postgres");
    let connect = store::connect(&url, 1);
    matches!(
        tokio::time::timeout(std::time::Duration::from_secs(3), connect).await,
        Ok(Ok(_))
    )
}

/// One cluster for all test processes: the first starts it (under a file lock) and leaves it
/// running; the others find its port in a file next to it.
async fn shared_throwaway_cluster() -> String {
    let root = std::env::temp_dir().join("seismo-test-pg");
    std::fs::create_dir_all(&root).expect("create the throwaway cluster's directory");
    make_traversable(&root);
    let lock = std::fs::File::create(root.join("lock")).expect("create the lock file");
    lock.lock().expect("lock the throwaway cluster");
    let port_file = root.join("port");
    if let Some(port) = std::fs::read_to_string(&port_file)
        .ok()
        .and_then(|p| p.trim().parse::<u16>().ok())
    {
        let url = format!("postgres://postgres@127.0.0.1:{port}");
        if answers(&url).await {
            return url;
        }
    }
    let cluster = EmbeddedPostgres::start(&root.join("data"))
        .await
        .expect("start a throwaway PostgreSQL");
    std::fs::write(&port_file, cluster.port().to_string()).expect("write the port file");
    let url = format!("postgres://postgres@127.0.0.1:{}", cluster.port());
    // Left running for the other test processes (dropping the handle would stop it).
    std::mem::forget(cluster);
    url
}

fn make_traversable(dir: &PathBuf) {
    use std::os::unix::fs::PermissionsExt;
    let _ = std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755));
}

/// A fresh, migrated database on the given server (a URL without database name).
pub async fn fresh_database_on(server: &str) -> (String, PgPool) {
    let admin = store::connect(&format!("{server}/postgres"), 1)
        .await
        .expect("connect to the test server");
    drop_databases_of_finished_runs(&admin).await;
    let name = format!(
        "seismo_t_{}_{}",
        std::process::id(),
        NEXT_DATABASE.fetch_add(1, Ordering::Relaxed)
    );
    store::create_database_if_missing(&admin, &name)
        .await
        .expect("create the test database");
    admin.close().await;
    let url = format!("{server}/{name}");
    let pool = store::connect(&url, 8)
        .await
        .expect("connect to the test database");
    store::migrate(&pool)
        .await
        .expect("migrate the test database");
    (url, pool)
}

async fn drop_databases_of_finished_runs(admin: &PgPool) {
    let names: Vec<String> =
        sqlx::query_scalar("SELECT datname FROM pg_database WHERE datname LIKE 'seismo\\_t\\_%'")
            .fetch_all(admin)
            .await
            .unwrap_or_default();
    for name in names {
        let pid = name.split('_').nth(2).and_then(|p| p.parse::<u32>().ok());
        let running = pid.is_some_and(|pid| std::path::Path::new(&format!("/proc/{pid}")).exists());
        if !running {
            let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"))
                .execute(admin)
                .await;
        }
    }
}

/// A running Seismo with a project and an API token.
pub struct TestApp {
    pub address: SocketAddr,
    /// Where the OTLP/gRPC server listens.
    pub grpc_address: SocketAddr,
    pub pool: PgPool,
    pub database_url: String,
    pub project: Project,
    pub token: String,
    pub app: Arc<App>,
    pub http: reqwest::Client,
    shutdown: Option<watch::Sender<bool>>,
    server: Option<tokio::task::JoinHandle<()>>,
    /// The app's own spool folder, removed with it.
    _spool: tempfile::TempDir,
}

impl TestApp {
    pub async fn spawn() -> TestApp {
        TestApp::spawn_with(|_| {}).await
    }

    /// Spawns with config keys set by `configure` (e.g. a tiny writer queue).
    pub async fn spawn_with(configure: impl FnOnce(&mut Sources)) -> TestApp {
        TestApp::spawn_on(server_url().await, configure).await
    }

    /// Spawns against a PostgreSQL server of the test's own (e.g. one it will stop).
    pub async fn spawn_on(server: &str, configure: impl FnOnce(&mut Sources)) -> TestApp {
        let (database_url, pool) = fresh_database_on(server).await;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind a free port");
        let address = listener.local_addr().expect("local address");
        let grpc_listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind a free port");
        let grpc_address = grpc_listener.local_addr().expect("local address");
        let spool = tempfile::tempdir().expect("a spool folder");
        let mut sources = Sources::default();
        sources.set("database_url", database_url.clone());
        sources.set("listen", address.to_string());
        sources.set("spool_dir", spool.path().display().to_string());
        configure(&mut sources);
        let config = Config::from_sources(&sources).expect("valid test config");
        let mut conn = pool.acquire().await.expect("connection");
        let project = projects::create(&mut conn, "test", "Test", None)
            .await
            .expect("create project");
        drop(conn);
        let token = store::tokens::create(&pool, "test", store::tokens::Scope::Admin)
            .await
            .expect("create token")
            .token;
        let (app, writer) = App::start(config, pool.clone())
            .await
            .expect("start the app");
        let (shutdown, stop) = watch::channel(false);
        let (http_app, grpc_app) = (app.clone(), app.clone());
        let server = tokio::spawn(async move {
            let mut stopped = stop.clone();
            let grpc = tokio::spawn(async move {
                let _ = seismo::http::grpc::serve(grpc_app, grpc_listener, async move {
                    let _ = stopped.wait_for(|s| *s).await;
                })
                .await;
            });
            let mut stopped = stop;
            let timeouts = seismo::http::Timeouts::of(&http_app.config);
            let _ = seismo::http::serve(
                seismo::http::router(http_app),
                listener,
                timeouts,
                async move {
                    let _ = stopped.wait_for(|s| *s).await;
                },
            )
            .await;
            let _ = grpc.await;
            writer.join().await;
        });
        TestApp {
            address,
            grpc_address,
            pool,
            database_url,
            project,
            token,
            app,
            http: reqwest::Client::new(),
            shutdown: Some(shutdown),
            server: Some(server),
            _spool: spool,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.address, path)
    }

    pub fn key(&self) -> &str {
        self.project
            .public_key
            .as_deref()
            .expect("the project has a key")
    }

    pub fn dsn(&self) -> String {
        format!("http://{}@{}/{}", self.key(), self.address, self.project.id)
    }

    pub fn envelope_url(&self) -> String {
        self.url(&format!("/api/{}/envelope/", self.project.id))
    }

    /// A POST to `url` carrying the project's key as SDKs do (`X-Sentry-Auth`).
    pub fn ingest_request(&self, url: &str) -> reqwest::RequestBuilder {
        self.http.post(url).header(
            "X-Sentry-Auth",
            format!(
                "Sentry sentry_key={}, sentry_version=7, sentry_client=raw-http/1.0",
                self.key()
            ),
        )
    }

    /// Sends one event in an envelope to the project's envelope endpoint.
    pub async fn send_event(&self, event: &Value) -> reqwest::Response {
        self.send_event_text(&serde_json::to_vec(event).expect("event json"))
            .await
    }

    /// Sends one event's JSON text, byte for byte, in an envelope.
    pub async fn send_event_text(&self, payload: &[u8]) -> reqwest::Response {
        let body = envelope(&serde_json::json!({}), &[("event", payload)]);
        self.ingest_request(&self.envelope_url())
            .body(body)
            .send()
            .await
            .expect("envelope request")
    }

    /// GET with the API token; returns the status and the JSON body.
    pub async fn api_get(&self, path: &str) -> (u16, Value) {
        let response = self
            .http
            .get(self.url(path))
            .bearer_auth(&self.token)
            .send()
            .await
            .expect("API request");
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    /// GET that must succeed; returns the JSON body.
    pub async fn api_ok(&self, path: &str) -> Value {
        let (status, body) = self.api_get(path).await;
        assert_eq!(status, 200, "GET {path}: {body}");
        body
    }

    pub async fn issues(&self) -> Vec<Value> {
        let body = self
            .api_ok(&format!(
                "/api/v1/projects/{}/issues?limit=100",
                self.project.id
            ))
            .await;
        body["items"].as_array().cloned().unwrap_or_default()
    }

    pub async fn events_of(&self, issue_id: i64) -> Vec<Value> {
        let body = self
            .api_ok(&format!("/api/v1/issues/{issue_id}/events?limit=100"))
            .await;
        body["items"].as_array().cloned().unwrap_or_default()
    }

    pub async fn event_count(&self) -> i64 {
        sqlx::query_scalar("SELECT count(*) FROM events")
            .fetch_one(&self.pool)
            .await
            .expect("count events")
    }

    /// The Prometheus text of this app's metrics.
    pub fn metrics(&self) -> String {
        self.app.metrics.render()
    }

    /// Stops the server and waits for the writer to flush.
    pub async fn stop(mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(true);
        }
        drop(self.app);
        if let Some(server) = self.server.take() {
            let _ = server.await;
        }
    }
}

/// Builds an envelope from a header and `(item type, payload)` pairs, with lengths.
pub fn envelope(header: &Value, items: &[(&str, &[u8])]) -> Vec<u8> {
    let mut out = serde_json::to_vec(header).expect("header");
    out.push(b'\n');
    for (ty, payload) in items {
        let item_header = serde_json::json!({"type": ty, "length": payload.len()});
        out.extend(serde_json::to_vec(&item_header).expect("item header"));
        out.push(b'\n');
        out.extend_from_slice(payload);
        out.push(b'\n');
    }
    out
}

/// A Python-like exception event with in-app frames.
pub fn python_exception(ty: &str, value: &str, functions: &[&str], line: u32) -> Value {
    let frames: Vec<Value> = functions
        .iter()
        .enumerate()
        .map(|(i, f)| {
            serde_json::json!({
                "function": f, "module": format!("shop.{f}"), "filename": format!("shop/{f}.py"),
                "lineno": line + i as u32, "in_app": true
            })
        })
        .collect();
    serde_json::json!({
        "event_id": uuid::Uuid::new_v4().simple().to_string(),
        "platform": "python",
        "level": "error",
        "exception": {"values": [{"type": ty, "value": value, "stacktrace": {"frames": frames}}]}
    })
}

/// Sends `body` as JSON with the API token; returns the status and the JSON answer (null
/// when empty).
pub async fn call(
    app: &TestApp,
    method: reqwest::Method,
    path: &str,
    body: Option<Value>,
) -> (u16, Value) {
    call_as(app, &app.token, method, path, body).await
}

/// [`call`] with another API token.
pub async fn call_as(
    app: &TestApp,
    token: &str,
    method: reqwest::Method,
    path: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let mut request = app.http.request(method, app.url(path)).bearer_auth(token);
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.expect("API request");
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// Any JSON value, nested a little (for property tests that send bodies).
pub fn any_json() -> BoxedStrategy<Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>()
            .prop_map(|f| serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)),
        any::<String>().prop_map(Value::from),
    ];
    leaf.prop_recursive(2, 8, 3, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..3).prop_map(Value::from),
            prop::collection::btree_map("[a-z_]{1,6}", inner, 0..3)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
    .boxed()
}

/// Sets the events of one series for every minute in `[first, last]` (a test's own
/// timeline of counts, as the writer would have left them).
pub async fn set_minute_counts(
    pool: &PgPool,
    project_id: seismo::model::ProjectId,
    scope: &seismo::model::Scope,
    first: chrono::DateTime<chrono::Utc>,
    last: chrono::DateTime<chrono::Utc>,
    events: i64,
) {
    let (kind, service, issue_id) = scope.columns();
    sqlx::query(
        "INSERT INTO minute_counts (project_id, scope, service, issue_id, minute, events) \
         SELECT $1, $2, $3, $4, m, $7 \
         FROM generate_series($5::timestamptz, $6::timestamptz, interval '1 minute') AS m \
         ON CONFLICT (project_id, scope, service, issue_id, minute) \
         DO UPDATE SET events = EXCLUDED.events",
    )
    .bind(project_id)
    .bind(kind)
    .bind(service)
    .bind(issue_id)
    .bind(first)
    .bind(last)
    .bind(events)
    .execute(pool)
    .await
    .expect("write minute counts");
}
