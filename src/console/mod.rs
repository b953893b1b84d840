//! The HTTP side of the TC on `server.port`: Seata's console API (login, queries, operator
//! actions), a web page, `/health` and Prometheus `/metrics`; plus the separate Prometheus
//! exporter on `seata.metrics.exporter-prometheus-port`. See `docs/CONSOLE.md`.
//!
//! ```text
//! let metrics = Metrics::new();
//! let store = metrics.instrument_store(store);               // store write latency
//! let node = Node::start(opts, store).await?;
//! let state = ConsoleState::new(node.coordinator.clone(), node.transport.clone(), ConsoleConfig::from_settings(&s))
//!     .with_metrics(metrics);
//! for w in state.warnings() { warn!("{w}") }
//! tokio::spawn(console::serve(http_listener, state.clone(), shutdown.clone()));
//! tokio::spawn(console::serve_exporter(exporter_listener, state, shutdown));   // when metrics are enabled
//! ```

pub mod actions;
mod api;
pub mod auth;
pub mod metrics;

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post, put};
use axum::Router;
use serde::Deserialize;
use serde_json::Value;
use tokio::net::TcpListener;
use tracing::{info, warn};

pub use actions::{ActionError, ActionOutcome, ForceTarget};
pub use auth::{Auth, KeySource};
pub use metrics::{Metrics, Scraper};

use crate::config::{Secret, Settings};
use crate::coordinator::Coordinator;
use crate::transport::Transport;

const INDEX_HTML: &str = include_str!("web/index.html");
const CONSOLE_JS: &str = include_str!("web/console.js");
const CONSOLE_CSS: &str = include_str!("web/console.css");
const FAVICON_SVG: &str = include_str!("web/favicon.svg");

/// What the console acts on, from Seata's settings (`console.user.*`, `seata.security.*`,
/// `seata.metrics.*`).
#[derive(Debug, Clone)]
pub struct ConsoleConfig {
    /// `console.user.username`; no default.
    pub username: Option<String>,
    /// `console.user.password`; no default: without it nobody can log in.
    pub password: Option<Secret>,
    /// `seata.security.secretKey`, base64 (raw bytes if it is not base64); a random key when
    /// absent.
    pub secret_key: Option<Secret>,
    /// `seata.security.tokenValidityInMilliseconds`.
    pub token_validity: Duration,
    /// `seata.security.ignore.urls`: Ant patterns served without a token.
    pub ignore_urls: Vec<String>,
    /// `seata.metrics.exporter-prometheus-port` when `seata.metrics.enabled`: where to run
    /// [`serve_exporter`] (`None`: metrics disabled, no exporter; `/metrics` on the console port
    /// stays).
    pub exporter_port: Option<u16>,
}

impl Default for ConsoleConfig {
    fn default() -> Self {
        let sec = crate::config::SecuritySettings::default();
        ConsoleConfig {
            username: None,
            password: None,
            secret_key: None,
            token_validity: sec.token_validity,
            ignore_urls: sec.ignore_urls,
            exporter_port: None,
        }
    }
}

impl ConsoleConfig {
    /// The console settings of a loaded configuration.
    pub fn from_settings(s: &Settings) -> Self {
        ConsoleConfig {
            username: s.console.username.clone(),
            password: s.console.password.clone(),
            secret_key: s.security.secret_key.clone(),
            token_validity: s.security.token_validity,
            ignore_urls: s.security.ignore_urls.clone(),
            exporter_port: s.metrics.enabled.then_some(s.metrics.exporter_prometheus_port),
        }
    }
}

/// The logged-in user of a request (set by the authentication layer).
#[derive(Debug, Clone)]
pub(crate) struct User(pub(crate) String);

pub(crate) struct Inner {
    pub(crate) coordinator: Coordinator,
    pub(crate) transport: Arc<Transport>,
    auth: Auth,
    ignore_urls: Vec<String>,
    ready: AtomicBool,
}

/// Everything the HTTP handlers share. Cheap to clone.
#[derive(Clone)]
pub struct ConsoleState {
    pub(crate) inner: Arc<Inner>,
    metrics: Arc<Metrics>,
}

impl std::fmt::Debug for ConsoleState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConsoleState").field("auth", &self.inner.auth).finish_non_exhaustive()
    }
}

impl ConsoleState {
    /// The console of a node. Ready (`/health` answers `ok`) at once: build it after the node
    /// recovered its sessions, or call [`ConsoleState::set_ready`].
    pub fn new(coordinator: Coordinator, transport: Arc<Transport>, config: ConsoleConfig) -> Self {
        let auth = Auth::new(config.username, config.password, config.secret_key.as_ref(), config.token_validity);
        ConsoleState {
            inner: Arc::new(Inner {
                coordinator,
                transport,
                auth,
                ignore_urls: config.ignore_urls,
                ready: AtomicBool::new(true),
            }),
            metrics: Metrics::new(),
        }
    }

    /// Uses `metrics` (the registry the transport and the store report to) instead of a fresh one.
    #[must_use]
    pub fn with_metrics(mut self, metrics: Arc<Metrics>) -> Self {
        self.metrics = metrics;
        self
    }

    /// The metrics registry.
    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    /// The login rules.
    pub fn auth(&self) -> &Auth {
        &self.inner.auth
    }

    /// What to log at start-up (WARN): console login disabled, random or weak token key.
    pub fn warnings(&self) -> Vec<String> {
        self.inner.auth.warnings()
    }

    /// `/health` answers `ok` when ready, `not_ok` otherwise (e.g. while shutting down).
    pub fn set_ready(&self, ready: bool) {
        self.inner.ready.store(ready, Ordering::Release);
    }

    /// The console's routes.
    pub fn router(&self) -> Router {
        Router::new()
            .route("/", get(index))
            .route("/index.html", get(index))
            .route("/console.js", get(|| async { asset("text/javascript; charset=utf-8", CONSOLE_JS) }))
            .route("/console.css", get(|| async { asset("text/css; charset=utf-8", CONSOLE_CSS) }))
            .route("/favicon.svg", get(|| async { asset("image/svg+xml", FAVICON_SVG) }))
            .route("/health", get(health))
            .route("/metrics", get(console_metrics))
            .route("/api/v1/auth/login", post(login))
            .route("/api/v1/console/globalSession/query", get(api::global_sessions))
            .route("/api/v1/console/branchSession/query", get(api::branch_sessions))
            .route("/api/v1/console/globalLock/query", get(api::global_locks))
            .route("/api/v1/console/globalSession/sendCommitOrRollback", put(api::retry_now))
            .route("/api/v1/console/globalSession/stopGlobalSession", put(api::stop))
            .route("/api/v1/console/globalSession/startGlobalSession", put(api::start))
            .route("/api/v1/console/globalSession/changeGlobalStatus", put(api::change_status))
            .route("/api/v1/console/globalSession/deleteGlobalSession", delete(api::delete))
            .route("/api/v1/console/globalSession/forceDeleteGlobalSession", delete(api::force_delete))
            .fallback(not_found)
            .layer(middleware::from_fn_with_state(self.clone(), authenticate))
            .layer(middleware::from_fn(security_headers))
            .with_state(self.clone())
    }
}

/// Serves the console on `listener` until `shutdown` completes.
pub async fn serve(
    listener: TcpListener,
    state: ConsoleState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    if let Ok(addr) = listener.local_addr() {
        info!(address = %addr, "console listening");
    }
    axum::serve(listener, state.router()).with_graceful_shutdown(shutdown).await
}

/// Serves Seata's Prometheus exporter (`seata.metrics.exporter-prometheus-port`): the metrics
/// text on every path, no authentication, until `shutdown` completes.
pub async fn serve_exporter(
    listener: TcpListener,
    state: ConsoleState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    if let Ok(addr) = listener.local_addr() {
        info!(address = %addr, "prometheus exporter listening");
    }
    let app = Router::new().fallback(exporter_metrics).with_state(state);
    axum::serve(listener, app).with_graceful_shutdown(shutdown).await
}

async fn index() -> Response {
    asset("text/html; charset=utf-8", INDEX_HTML)
}

fn asset(content_type: &'static str, body: &'static str) -> Response {
    ([(header::CONTENT_TYPE, content_type), (header::CACHE_CONTROL, "no-cache")], body).into_response()
}

async fn health(State(st): State<ConsoleState>) -> &'static str {
    if st.inner.ready.load(Ordering::Acquire) {
        "ok"
    } else {
        "not_ok"
    }
}

async fn render_metrics(st: &ConsoleState, scraper: Scraper) -> Response {
    let body = st.metrics.render(&st.inner.coordinator, &st.inner.transport, scraper).await;
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], body).into_response()
}

async fn console_metrics(State(st): State<ConsoleState>) -> Response {
    render_metrics(&st, Scraper::Console).await
}

async fn exporter_metrics(State(st): State<ConsoleState>) -> Response {
    render_metrics(&st, Scraper::Exporter).await
}

async fn not_found() -> Response {
    (StatusCode::NOT_FOUND, api::single("404", "Not Found", Value::Null)).into_response()
}

#[derive(Debug, Deserialize)]
struct LoginBody {
    #[serde(default)]
    username: String,
    #[serde(default)]
    password: String,
}

/// `POST /api/v1/auth/login` (Seata's `AuthController`): the token in `data` and in the
/// `Authorization` header; wrong credentials answer code 401 "Login failed" with HTTP 200.
async fn login(State(st): State<ConsoleState>, body: Bytes) -> Response {
    let auth = &st.inner.auth;
    if !auth.login_enabled() {
        warn!("console: login refused: no console user configured");
        return api::unauthorized(
            "Login failed: the console login is disabled because no console user is configured; set \
             console.user.username and console.user.password (and seata.security.secretKey) and restart",
        );
    }
    let Ok(creds) = serde_json::from_slice::<LoginBody>(&body) else {
        return (
            StatusCode::BAD_REQUEST,
            api::single("400", r#"login expects a JSON body {"username":"…","password":"…"}"#, Value::Null),
        )
            .into_response();
    };
    match auth.login(&creds.username, &creds.password) {
        Some(token) => {
            info!(user = %creds.username, "console: login");
            let bearer = format!("Bearer {token}");
            let mut resp = api::single("200", "success", Value::String(bearer.clone())).into_response();
            if let Ok(v) = HeaderValue::from_str(&bearer) {
                resp.headers_mut().insert(header::AUTHORIZATION, v);
            }
            resp
        }
        None => {
            warn!(user = %creds.username, "console: login failed");
            api::single("401", "Login failed", Value::Null).into_response()
        }
    }
}

fn token_of(headers: &HeaderMap, uri: &axum::http::Uri) -> Option<String> {
    if let Some(v) = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()) {
        let v = v.trim();
        if let Some(t) = v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("bearer ")) {
            return Some(t.trim().to_owned());
        }
    }
    let query = axum::extract::Query::<std::collections::HashMap<String, String>>::try_from_uri(uri).ok()?;
    query.0.get("access_token").cloned()
}

/// Public paths (`ignore.urls`, `/health`, `/metrics`, the page) pass; everything else needs a
/// valid token, and nothing passes while no console user is configured.
async fn authenticate(State(st): State<ConsoleState>, mut req: Request, next: Next) -> Response {
    let path = req.uri().path();
    let public = path == "/health"
        || path == "/metrics"
        || path == "/api/v1/auth/login"
        || st.inner.ignore_urls.iter().any(|p| auth::ant_match(p, path));
    if public {
        return next.run(req).await;
    }
    let auth = &st.inner.auth;
    if !auth.login_enabled() {
        return api::unauthorized(
            "Unauthorized: the console is closed because no console user is configured; set \
             console.user.username and console.user.password (and seata.security.secretKey) and restart",
        );
    }
    let Some(token) = token_of(req.headers(), req.uri()) else {
        return api::unauthorized("Unauthorized: log in first (POST /api/v1/auth/login)");
    };
    match auth.verify(&token) {
        Ok(user) => {
            req.extensions_mut().insert(User(user));
            next.run(req).await
        }
        Err(e) => {
            info!(path, reason = %e, "console: request refused");
            let msg = if e == auth::TokenError::Expired {
                "Unauthorized: the token expired; log in again"
            } else {
                "Unauthorized"
            };
            api::unauthorized(msg)
        }
    }
}

async fn security_headers(req: Request, next: Next) -> Response {
    let mut resp = next.run(req).await;
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("default-src 'self'; img-src 'self' data:; frame-ancestors 'none'"),
    );
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    resp
}
