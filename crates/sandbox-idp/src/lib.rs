//! Tessera's sandbox identity provider: a local server that follows Microsoft Entra ID's
//! documented v2.0 endpoints (discovery, authorize, token, device code, logout, JWKS), with
//! demo tenants and users and switches that inject faults.
//!
//! ```no_run
//! # async fn demo() -> std::io::Result<()> {
//! use tessera_sandbox_idp::{start, Faults, SandboxConfig};
//! let idp = start(SandboxConfig::default()).await?;
//! println!("authority: {}", idp.authority("common"));
//! idp.set_faults(Faults { http_status: Some(503), ..Faults::default() });
//! idp.shutdown().await;
//! # Ok(()) }
//! ```
//!
//! See the crate's README for endpoints, tenants, users and fault switches.

mod authorize;
#[cfg(feature = "client")]
mod client;
mod data;
mod device;
mod discovery;
mod errors;
mod faults;
#[cfg(feature = "client")]
pub mod html;
mod jwt;
mod misc;
mod pages;
mod scopes;
mod state;
mod token;
mod util;

#[cfg(feature = "client")]
pub use client::{scripted_device_approval, scripted_sign_in, ScriptedUserAgent};
pub use data::{
    client_display_name, tenant_by_id_or_domain, user_by_login, Tenant, TenantSel, User,
    AKS_RESOURCE_ID, AZURE_DEVOPS_RESOURCE_ID, CONSUMERS, CONTOSO, DEFAULT_FAMILY_CLIENT_IDS,
    DEMO_PASSWORD, FABRIKAM, GRAPH_RESOURCE_ID, GRAPH_RESOURCE_URI, SANDBOX_API, SANDBOX_CLIENT_ID,
    TENANTS, USERS,
};
pub use faults::{Faults, ResponseIss};
pub use jwt::decode_unverified;

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use state::AppState;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// The port the command-line server listens on by default.
pub const DEFAULT_PORT: u16 = 8479;

/// How to start a sandbox.
#[derive(Debug, Clone)]
pub struct SandboxConfig {
    /// Port on 127.0.0.1; 0 (the default) picks a free port. The command line defaults to 8479.
    pub port: u16,
    /// Fault switches in force from the start.
    pub faults: Faults,
    /// Family-of-client-ids members (`"foci": "1"`, may redeem each other's refresh tokens).
    pub family_client_ids: Vec<String>,
}

impl Default for SandboxConfig {
    fn default() -> Self {
        SandboxConfig {
            port: 0,
            faults: Faults::default(),
            family_client_ids: DEFAULT_FAMILY_CLIENT_IDS
                .iter()
                .map(|s| s.to_string())
                .collect(),
        }
    }
}

/// A running sandbox. Dropping it stops the server.
pub struct SandboxHandle {
    state: Arc<AppState>,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for SandboxHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SandboxHandle")
            .field("base_url", &self.state.base.as_str())
            .finish()
    }
}

impl SandboxHandle {
    /// `http://127.0.0.1:PORT/`.
    pub fn base_url(&self) -> url::Url {
        self.state.base.clone()
    }

    /// The port it listens on.
    pub fn port(&self) -> u16 {
        self.state.base.port().unwrap_or(0)
    }

    /// `http://127.0.0.1:PORT/{tenant}`, e.g. `authority("common")`.
    pub fn authority(&self, tenant: &str) -> String {
        format!("{}{}", self.state.base, tenant)
    }

    /// The issuer of tokens for a tenant id: `http://127.0.0.1:PORT/{tid}/v2.0`.
    pub fn issuer(&self, tenant_id: &str) -> String {
        self.state.issuer(tenant_id)
    }

    /// Replaces all fault switches.
    pub fn set_faults(&self, f: Faults) {
        tracing::info!(faults = ?f, "faults replaced");
        self.state.set_faults(f);
    }

    /// The fault switches in force (with `fail_count` as it stands now).
    pub fn faults(&self) -> Faults {
        self.state.faults()
    }

    /// Verifies a token this sandbox issued (signature, `exp`, `nbf`) and returns its claims.
    pub fn verify_token(
        &self,
        jwt: &str,
    ) -> Result<serde_json::Map<String, serde_json::Value>, String> {
        self.state.keys.verify(jwt)
    }

    /// How many requests the token endpoint has received (answered or refused).
    pub fn token_requests(&self) -> u64 {
        self.state
            .token_requests
            .load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Stops the server and waits (up to 5 s) for it to finish.
    pub async fn shutdown(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(task) = self.task.take() {
            let abort = task.abort_handle();
            if tokio::time::timeout(Duration::from_secs(5), task)
                .await
                .is_err()
            {
                abort.abort();
            }
        }
    }
}

impl Drop for SandboxHandle {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

/// Starts a sandbox on 127.0.0.1:`config.port` (0 = a free port), serving in a background task
/// of the current tokio runtime. The signing key is generated once per process.
pub async fn start(config: SandboxConfig) -> std::io::Result<SandboxHandle> {
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", config.port)).await?;
    let port = listener.local_addr()?.port();
    let keys = tokio::task::spawn_blocking(jwt::Keys::process_key)
        .await
        .map_err(std::io::Error::other)?
        .map_err(std::io::Error::other)?;
    let base =
        url::Url::parse(&format!("http://127.0.0.1:{port}/")).map_err(std::io::Error::other)?;
    let state = Arc::new(AppState::new(
        base,
        keys,
        config.family_client_ids,
        config.faults,
    ));
    let app = router(state.clone());
    let (tx, rx) = oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        let served = axum::serve(listener, app)
            .with_graceful_shutdown(async {
                let _ = rx.await;
            })
            .await;
        if let Err(e) = served {
            tracing::error!("sandbox server stopped: {e}");
        }
    });
    tracing::info!(
        port,
        kid = state.keys.kid(),
        "sandbox identity provider started"
    );
    Ok(SandboxHandle {
        state,
        shutdown: Some(tx),
        task: Some(task),
    })
}

fn router(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/", get(misc::index))
        .route(
            "/{tenant}/v2.0/.well-known/openid-configuration",
            get(discovery::openid_configuration),
        )
        .route(
            "/{tenant}/discovery/instance",
            get(discovery::instance_discovery),
        )
        .route(
            "/{tenant}/discovery/v2.0/keys",
            get(discovery::keys_for_tenant),
        )
        .route("/discovery/v2.0/keys", get(discovery::keys))
        .route(
            "/{tenant}/oauth2/v2.0/authorize",
            get(authorize::authorize_get).post(authorize::authorize_post),
        )
        .route("/{tenant}/oauth2/v2.0/token", post(token::token))
        .route("/{tenant}/oauth2/v2.0/devicecode", post(device::devicecode))
        .route(
            "/{tenant}/oauth2/v2.0/logout",
            get(misc::logout).post(misc::logout),
        )
        .route(
            device::DEVICELOGIN_PATH,
            get(device::devicelogin_get).post(device::devicelogin_post),
        )
        .route("/error", get(misc::error_code_page))
        .route("/oidc/userinfo", get(misc::userinfo))
        .route(
            "/_sandbox/faults",
            get(misc::get_faults)
                .post(misc::post_faults)
                .delete(misc::delete_faults),
        )
        .route("/_sandbox/me", get(misc::me))
        .route(
            "/_sandbox/probe",
            get(misc::get_probe_reports).post(misc::post_probe_report),
        )
        .route("/_sandbox/download", get(misc::download))
        .route("/_sandbox/second-page", get(misc::second_page))
        .fallback(misc::not_found)
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            latency_and_log,
        ))
        .with_state(state)
}

/// Applies `latency_ms` (not to `/_sandbox/faults`, so tests can always reset quickly) and
/// `unavailable` (not to `/_sandbox/*`), and logs
/// each request's method, path (never the query, which may carry codes) and status.
async fn latency_and_log(State(st): State<Arc<AppState>>, req: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let faults = st.faults();
    if faults.latency_ms > 0 && path != "/_sandbox/faults" {
        tokio::time::sleep(Duration::from_millis(faults.latency_ms)).await;
    }
    let resp = if faults.unavailable && !path.starts_with("/_sandbox/") {
        tracing::warn!("fault: unavailable");
        (
            axum::http::StatusCode::SERVICE_UNAVAILABLE,
            "no healthy upstream",
        )
            .into_response()
    } else {
        next.run(req).await
    };
    tracing::debug!(
        %method,
        %path,
        status = resp.status().as_u16(),
        ms = started.elapsed().as_millis() as u64,
        "request"
    );
    resp
}
