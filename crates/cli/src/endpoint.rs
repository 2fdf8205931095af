//! The token endpoint of `tessera-cli run`: one HTTP listener on 127.0.0.1 speaking two
//! protocols the Azure tools already understand, each guarded by its own random key.
//!
//! - App Service managed identity (`IDENTITY_ENDPOINT`, `IDENTITY_HEADER`):
//!   `GET /msi/token?api-version=2019-08-01&resource=R` with `X-IDENTITY-HEADER: KEY`,
//!   answering `access_token`, `expires_on` (epoch seconds, a string), `resource`,
//!   `token_type`, `client_id`; errors as `error`/`error_description` (plus App Service's
//!   `statusCode`/`message`, which MSAL reads).
//! - Azure Developer CLI external authentication (`AZD_AUTH_ENDPOINT`, `AZD_AUTH_KEY`):
//!   `POST /token?api-version=2023-07-12-preview` with `Authorization: Bearer KEY` and
//!   `{"scopes":[...],"tenantId":...}`, answering 200 with `{"status":"success",...}` or
//!   `{"status":"error","code","message"}` (azd treats any other status as a broken host).
//!
//! Invariants: only 127.0.0.1 is bound; a request without its key gets 401 before anything
//! else is looked at, and keys are compared in constant time; tokens and keys never reach
//! a log line; tokens come from `acquire_token_silent` (the cache, else a silent refresh).

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{json, Value};
use subtle::ConstantTimeEq;
use tessera_core::app::{Account, AuthResult, PublicClientApplication, SilentOptions};
use tessera_core::env::{Entropy, OsEntropy};
use tessera_core::error::Error;
use tessera_core::scopes::ScopeSet;

pub const MSI_PATH: &str = "/msi/token";
pub const MSI_API_VERSION: &str = "2019-08-01";
pub const AZD_PATH: &str = "/token";
pub const AZD_API_VERSION: &str = "2023-07-12-preview";

/// How long requests still in flight may finish after the command has exited.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(2);

/// Where the tokens come from: one account of one client application.
pub struct Tokens {
    pub app: Arc<PublicClientApplication>,
    pub account: Account,
    /// The profile's name, for the "sign in again" hint.
    pub profile: String,
    pub scope_map: ScopeMap,
    /// The Tessera home an agent serves for this run: tokens are asked of it first (the
    /// desktop app then asks its user when a sign-in is needed). `None`: no agent.
    pub agent_home: Option<std::path::PathBuf>,
}

impl Tokens {
    async fn get(&self, scopes: &ScopeSet) -> Result<AuthResult, Error> {
        if let Some(home) = &self.agent_home {
            let ask = tessera_core::agent::TokenRequest {
                home: home.clone(),
                profile: Some(self.profile.clone()),
                account: Some(self.account.home_account_id.clone()),
                scopes: scopes.iter().map(str::to_string).collect(),
                min_validity_secs: SilentOptions::default().min_validity_secs,
                force_refresh: false,
                tenant: None,
                program: None,
            };
            match crate::agent::ask_token(ask).await {
                Some(crate::agent::Answer::Token(r, _)) => return Ok(*r),
                // Denied, or nobody could sign in: as the store would say.
                Some(crate::agent::Answer::Refused(e))
                    if e.kind == tessera_core::agent::ErrorKind::InteractionRequired =>
                {
                    return Err(Error::interaction(
                        tessera_core::error::InteractionReason::InteractionRequired,
                    ))
                }
                // Any other refusal: the engine here says what it is.
                _ => {}
            }
        }
        self.app
            .acquire_token_silent(scopes, &self.account, &SilentOptions::default())
            .await
    }
}

/// `--scope-map RESOURCE=SCOPE...`: the scopes asked for when a managed identity request
/// names RESOURCE (default: `RESOURCE/.default`).
#[derive(Debug, Clone, Default)]
pub struct ScopeMap(Vec<(String, ScopeSet)>);

impl ScopeMap {
    pub fn new(entries: Vec<(String, ScopeSet)>) -> ScopeMap {
        ScopeMap(entries)
    }

    /// Parses one `RESOURCE=SCOPE[ SCOPE...]` (split at the first `=`).
    pub fn parse_entry(s: &str) -> Result<(String, ScopeSet), String> {
        let Some((resource, scopes)) = s.split_once('=') else {
            return Err(format!(
                "expected RESOURCE=SCOPE (e.g. https://graph.microsoft.com=User.Read), got {s:?}"
            ));
        };
        let resource = resource.trim();
        let scopes = ScopeSet::parse(scopes);
        if resource.is_empty() || scopes.is_empty() {
            return Err(format!(
                "expected RESOURCE=SCOPE with both parts non-empty, got {s:?}"
            ));
        }
        Ok((resource.to_owned(), scopes))
    }

    /// The scopes for a managed identity request's resource: the first mapping whose
    /// resource matches (ignoring case and trailing slashes), else `RESOURCE/.default`.
    pub fn scopes_for(&self, resource: &str) -> ScopeSet {
        let key = resource.trim_end_matches('/');
        self.0
            .iter()
            .find(|(r, _)| r.trim_end_matches('/').eq_ignore_ascii_case(key))
            .map(|(_, s)| s.clone())
            .unwrap_or_else(|| ScopeSet::from_iter([format!("{resource}/.default")]))
    }
}

/// A random key shared with the command only, through its environment.
pub struct Key(String);

impl Key {
    /// 256 bits from the OS, base64url.
    fn generate() -> Key {
        Key(OsEntropy.token(32))
    }

    /// The key itself: for the command's environment, nowhere else.
    pub fn secret(&self) -> &str {
        &self.0
    }

    fn matches(&self, presented: &[u8]) -> bool {
        self.0.as_bytes().ct_eq(presented).into()
    }
}

impl std::fmt::Debug for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Key([redacted])")
    }
}

struct Shared {
    tokens: Tokens,
    identity_header: Key,
    azd_key: Key,
}

/// The endpoint while it serves; [`Running::stop`] ends it.
pub struct Running {
    shared: Arc<Shared>,
    addr: SocketAddr,
    stop: tokio::sync::oneshot::Sender<()>,
    server: tokio::task::JoinHandle<std::io::Result<()>>,
}

/// Binds 127.0.0.1 on a free port, makes fresh keys and starts serving.
pub async fn start(tokens: Tokens) -> std::io::Result<Running> {
    use axum::serve::ListenerExt;
    let listener = tokio::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await?;
    let addr = listener.local_addr()?;
    let listener = listener.tap_io(|tcp| {
        let _ = tcp.set_nodelay(true);
    });
    let shared = Arc::new(Shared {
        tokens,
        identity_header: Key::generate(),
        azd_key: Key::generate(),
    });
    let router = Router::new()
        .route(MSI_PATH, get(managed_identity))
        .route(AZD_PATH, post(azd))
        .with_state(Arc::clone(&shared));
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(async move {
        axum::serve(listener, router)
            .with_graceful_shutdown(async {
                let _ = stopped.await;
            })
            .await
    });
    tracing::debug!(%addr, "token endpoint listening");
    Ok(Running {
        shared,
        addr,
        stop,
        server,
    })
}

impl Running {
    /// The variables that point a command at this endpoint (they carry the keys).
    pub fn env(&self) -> [(&'static str, String); 4] {
        [
            (
                "IDENTITY_ENDPOINT",
                format!("http://{}{MSI_PATH}", self.addr),
            ),
            (
                "IDENTITY_HEADER",
                self.shared.identity_header.secret().to_owned(),
            ),
            ("AZD_AUTH_ENDPOINT", format!("http://{}", self.addr)),
            ("AZD_AUTH_KEY", self.shared.azd_key.secret().to_owned()),
        ]
    }

    /// Stops listening at once; requests in flight get [`SHUTDOWN_GRACE`] to finish.
    pub async fn stop(self) {
        let _ = self.stop.send(());
        if tokio::time::timeout(SHUTDOWN_GRACE, self.server)
            .await
            .is_err()
        {
            tracing::debug!("token endpoint: requests still in flight at exit were dropped");
        }
    }
}

/// The value of query parameter `name` (the first one).
fn query_param(query: Option<&str>, name: &str) -> Option<String> {
    url::form_urlencoded::parse(query.unwrap_or_default().as_bytes())
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

fn no_store(status: StatusCode, body: Value) -> Response {
    (status, [(header::CACHE_CONTROL, "no-store")], Json(body)).into_response()
}

fn msi_error(status: StatusCode, error: &str, description: &str) -> Response {
    no_store(
        status,
        json!({
            "error": error,
            "error_description": description,
            "statusCode": status.as_u16(),
            "message": description,
        }),
    )
}

/// The managed identity answer for an engine error: 4xx for answers that will not
/// change by retrying (the SDKs retry 5xx), 502 when the provider could not be reached
/// or answered garbage, 500 for the store.
fn msi_failure(e: &Error) -> (StatusCode, String) {
    match e {
        Error::InteractionRequired { .. } | Error::Cancelled => {
            (StatusCode::BAD_REQUEST, "interaction_required".into())
        }
        Error::Provider(p) => (StatusCode::BAD_REQUEST, p.error.clone()),
        Error::Config(_) => (StatusCode::BAD_REQUEST, "invalid_request".into()),
        Error::Transport(_) | Error::BadResponse { .. } | Error::Validation(_) => {
            (StatusCode::BAD_GATEWAY, "provider_unavailable".into())
        }
        Error::Store(_) => (StatusCode::INTERNAL_SERVER_ERROR, "store_error".into()),
    }
}

/// Whether the account has to sign in again (not merely consent or answer a challenge).
fn signed_out(e: &Error) -> bool {
    use tessera_core::error::InteractionReason as R;
    matches!(
        e,
        Error::InteractionRequired {
            reason: R::NoAccount | R::NoRefreshToken | R::InvalidGrant | R::InteractionRequired,
            ..
        }
    )
}

/// What a failure tells the user, with how to fix it when signing in would.
fn failure_message(e: &Error, tokens: &Tokens) -> String {
    match e {
        Error::InteractionRequired { .. } => format!(
            "{e}; sign in again with: tessera-cli --profile {:?} login --login-hint {}",
            tokens.profile, tokens.account.username
        ),
        _ => e.to_string(),
    }
}

async fn managed_identity(
    State(s): State<Arc<Shared>>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    let presented = headers
        .get("x-identity-header")
        .map(|v| v.as_bytes())
        .unwrap_or_default();
    if !s.identity_header.matches(presented) {
        tracing::warn!("token endpoint: refused a managed identity request without the right X-IDENTITY-HEADER");
        return msi_error(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "the X-IDENTITY-HEADER header is missing or wrong",
        );
    }
    let query = query.as_deref();
    if query_param(query, "api-version").as_deref() != Some(MSI_API_VERSION) {
        return msi_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            &format!("api-version must be {MSI_API_VERSION}"),
        );
    }
    let Some(resource) = query_param(query, "resource").filter(|r| !r.trim().is_empty()) else {
        return msi_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "the resource parameter is missing",
        );
    };
    let scopes = s.tokens.scope_map.scopes_for(&resource);
    match s.tokens.get(&scopes).await {
        Ok(r) => {
            tracing::debug!(?resource, source = ?r.token_source, "token endpoint: managed identity token served");
            no_store(
                StatusCode::OK,
                json!({
                    "access_token": r.access_token.secret(),
                    "expires_on": r.expires_on.to_string(),
                    "resource": resource,
                    "token_type": r.token_type,
                    "client_id": s.tokens.app.config().client_id,
                }),
            )
        }
        Err(e) => {
            tracing::warn!(?resource, scopes = %scopes.to_param(), error = %e, "token endpoint: no token");
            let (status, code) = msi_failure(&e);
            msi_error(status, &code, &failure_message(&e, &s.tokens))
        }
    }
}

#[derive(serde::Deserialize)]
struct AzdRequest {
    scopes: Vec<String>,
    #[serde(default, rename = "tenantId")]
    tenant_id: Option<String>,
}

fn azd_error(code: &str, message: &str) -> Response {
    no_store(
        StatusCode::OK,
        json!({"status": "error", "code": code, "message": message}),
    )
}

fn rfc3339(t: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(t)
        .ok()
        .and_then(|d| {
            d.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_default()
}

async fn azd(
    State(s): State<Arc<Shared>>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
    body: Bytes,
) -> Response {
    let presented = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.as_bytes().strip_prefix(b"Bearer "))
        .unwrap_or_default();
    if !s.azd_key.matches(presented) {
        tracing::warn!("token endpoint: refused an azd request without the right key");
        return StatusCode::UNAUTHORIZED.into_response();
    }
    if query_param(query.as_deref(), "api-version").as_deref() != Some(AZD_API_VERSION) {
        return (
            StatusCode::BAD_REQUEST,
            format!("api-version must be {AZD_API_VERSION}"),
        )
            .into_response();
    }
    let request: AzdRequest = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) => {
            return (
                StatusCode::BAD_REQUEST,
                format!("the body must be {{\"scopes\":[...],\"tenantId\":...}}: {e}"),
            )
                .into_response()
        }
    };
    let scopes = ScopeSet::parse(&request.scopes.join(" "));
    if scopes.is_empty() {
        return (StatusCode::BAD_REQUEST, "scopes must not be empty").into_response();
    }
    if let Some(t) = request.tenant_id.as_deref().filter(|t| !t.is_empty()) {
        let account = &s.tokens.account;
        // The home tenant is the `utid` half of `uid.utid`.
        let home = account
            .home_account_id
            .split_once('.')
            .map_or("", |(_, utid)| utid);
        if !t.eq_ignore_ascii_case(home) && !t.eq_ignore_ascii_case(&account.realm) {
            return azd_error(
                "GetTokenError",
                &format!(
                    "tessera-cli run serves the tokens of {} in tenant {home}, not tenant {t}",
                    account.username
                ),
            );
        }
    }
    match s.tokens.get(&scopes).await {
        Ok(r) => {
            tracing::debug!(scopes = %scopes.to_param(), source = ?r.token_source, "token endpoint: azd token served");
            no_store(
                StatusCode::OK,
                json!({
                    "status": "success",
                    "token": r.access_token.secret(),
                    "expiresOn": rfc3339(r.expires_on),
                }),
            )
        }
        Err(e) => {
            tracing::warn!(scopes = %scopes.to_param(), error = %e, "token endpoint: no token");
            let code = if signed_out(&e) {
                "NotSignedInError"
            } else {
                "GetTokenError"
            };
            azd_error(code, &failure_message(&e, &s.tokens))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resources_map_to_default_scopes_unless_mapped() {
        let none = ScopeMap::default();
        assert_eq!(
            none.scopes_for("https://graph.microsoft.com").to_param(),
            "https://graph.microsoft.com/.default"
        );
        // A trailing slash is kept: ARM's old audience needs the double slash.
        assert_eq!(
            none.scopes_for("https://management.core.windows.net/")
                .to_param(),
            "https://management.core.windows.net//.default"
        );
        let map = ScopeMap::new(vec![
            ScopeMap::parse_entry("https://graph.microsoft.com/=User.Read Mail.Read").unwrap(),
            ScopeMap::parse_entry("api://sandbox-api=api://sandbox-api/Data.Write").unwrap(),
        ]);
        assert_eq!(
            map.scopes_for("HTTPS://graph.microsoft.com").to_param(),
            "User.Read Mail.Read"
        );
        assert_eq!(
            map.scopes_for("api://sandbox-api/").to_param(),
            "api://sandbox-api/Data.Write"
        );
        assert_eq!(
            map.scopes_for("api://other").to_param(),
            "api://other/.default"
        );
    }

    #[test]
    fn scope_map_entries_need_both_parts() {
        for bad in [
            "",
            "no-equals",
            "=User.Read",
            "https://graph.microsoft.com=",
            " = ",
        ] {
            assert!(ScopeMap::parse_entry(bad).is_err(), "{bad:?} was accepted");
        }
        let (r, s) = ScopeMap::parse_entry("api://a=b=c").unwrap();
        assert_eq!((r.as_str(), s.to_param().as_str()), ("api://a", "b=c"));
    }

    #[test]
    fn keys_are_random_redacted_and_compared_whole() {
        let a = Key::generate();
        let b = Key::generate();
        assert_ne!(a.secret(), b.secret());
        assert!(a.secret().len() >= 43, "at least 256 bits, base64url");
        assert_eq!(format!("{a:?}"), "Key([redacted])");
        assert!(a.matches(a.secret().as_bytes()));
        assert!(!a.matches(b.secret().as_bytes()));
        assert!(!a.matches(&a.secret().as_bytes()[..42]));
        assert!(!a.matches(format!("{}x", a.secret()).as_bytes()));
        assert!(!a.matches(b""));
    }

    #[test]
    fn expiry_is_rfc3339_utc() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(1_700_000_000), "2023-11-14T22:13:20Z");
    }

    #[test]
    fn failures_that_retrying_cannot_fix_are_4xx() {
        use tessera_core::error::{InteractionReason, ProviderError};
        let status = |e: Error| msi_failure(&e);
        assert_eq!(
            status(Error::interaction(InteractionReason::InvalidGrant)),
            (StatusCode::BAD_REQUEST, "interaction_required".into())
        );
        assert_eq!(
            status(Error::Provider(Box::new(ProviderError {
                error: "invalid_resource".into(),
                ..ProviderError::default()
            }))),
            (StatusCode::BAD_REQUEST, "invalid_resource".into())
        );
        assert_eq!(
            status(Error::BadResponse {
                what: "token response",
                detail: "HTML".into(),
                status: Some(503),
                retry_after: None
            })
            .0,
            StatusCode::BAD_GATEWAY
        );
    }
}
