//! [`PublicClientApplication`]: MSAL's public-client API on top of the protocol steps
//! and the token store. Everything the desktop app and the CLI do goes through here.

use std::sync::Arc;

use serde_json::{Map, Value};
use tokio_util::sync::CancellationToken;
use url::Url;

use crate::authority::Authority;
use crate::cache::TokenStore;
use crate::env::{Clock, Entropy, UnixTime};
use crate::error::Result;
use crate::http::HttpClient;
use crate::scopes::ScopeSet;
use crate::secret::AccessToken;

/// How a client identifies itself and where it signs in.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    pub client_id: String,
    pub authority: Authority,
    /// The redirect URI for interactive sign-in in an embedded webview (the CLI's
    /// loopback agent passes its own, with the port it listens on).
    pub redirect_uri: Url,
}

/// The injected world: I/O, store, clock and randomness.
#[derive(Clone)]
pub struct Deps {
    pub http: Arc<dyn HttpClient>,
    pub store: Arc<dyn TokenStore>,
    pub clock: Arc<dyn Clock>,
    pub entropy: Arc<dyn Entropy>,
}

/// A signed-in account, as `get_accounts` returns it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Account {
    pub home_account_id: String,
    pub environment: String,
    pub realm: String,
    pub local_account_id: String,
    pub username: String,
    pub name: Option<String>,
    pub authority_type: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TokenSource {
    Cache,
    IdentityProvider,
}

/// A token, ready to use. `Debug` redacts the token.
#[derive(Debug, Clone)]
pub struct AuthResult {
    pub access_token: AccessToken,
    pub token_type: String,
    pub expires_on: UnixTime,
    /// When MSAL would refresh proactively (`refresh_in`).
    pub refresh_on: Option<UnixTime>,
    /// The scopes the token was granted for.
    pub scopes: ScopeSet,
    pub token_source: TokenSource,
    pub account: Account,
    /// Claims of the account's ID token (not a secret by itself, but not logged either).
    pub id_token_claims: Option<Map<String, Value>>,
}

/// Options of [`PublicClientApplication::acquire_token_silent`].
#[derive(Debug, Clone)]
pub struct SilentOptions {
    /// A cached access token is used only if it stays valid this much longer (MSAL: 300 s).
    pub min_validity_secs: i64,
    /// Skip the cached access token and redeem the refresh token.
    pub force_refresh: bool,
    /// A claims challenge: forces a refresh carrying these claims.
    pub claims: Option<String>,
}

impl Default for SilentOptions {
    fn default() -> Self {
        Self { min_validity_secs: 300, force_refresh: false, claims: None }
    }
}

/// Parameters of an interactive sign-in.
#[derive(Debug, Clone, Default)]
pub struct InteractiveParams {
    pub scopes: ScopeSet,
    /// Overrides the configured redirect URI (the CLI's loopback listener).
    pub redirect_uri: Option<Url>,
    /// `login`, `select_account`, `consent`, `none`.
    pub prompt: Option<String>,
    pub login_hint: Option<String>,
    pub domain_hint: Option<String>,
    /// A claims request or challenge (JSON).
    pub claims: Option<String>,
}

/// Shows the authorize page to the user and reports where the provider redirected.
/// The desktop app implements it with its embedded webview, the CLI with the system
/// browser and a loopback listener.
#[async_trait::async_trait]
pub trait UserAgent: Send + Sync {
    /// Open `authorize_url` and return the first URL that matches `redirect_uri`
    /// exactly (scheme, host, port, path). Closing the window is `Error::Cancelled`.
    async fn authorize(&self, authorize_url: &Url, redirect_uri: &Url) -> Result<Url>;
}

/// A device-code sign-in in progress: show `message` (or `verification_uri` and
/// `user_code`) to the user, then call `acquire_token_by_device_flow`.
#[derive(Debug, Clone)]
pub struct DeviceFlow {
    pub user_code: String,
    pub verification_uri: Url,
    pub verification_uri_complete: Option<Url>,
    pub message: String,
    pub expires_at: UnixTime,
    pub interval_secs: u64,
    pub(crate) inner: crate::device::DeviceAuthorization,
    pub(crate) scopes: ScopeSet,
}

/// What sign-out did.
#[derive(Debug, Clone)]
pub struct SignOut {
    /// Cache entries removed (access, refresh, ID tokens and account entries).
    pub removed: usize,
    /// The provider's end-session URL for the app to open, when it has one.
    pub end_session_url: Option<Url>,
}

pub struct PublicClientApplication {
    config: ClientConfig,
    deps: Deps,
}

impl PublicClientApplication {
    pub fn new(config: ClientConfig, deps: Deps) -> Self {
        Self { config, deps }
    }

    pub fn config(&self) -> &ClientConfig {
        &self.config
    }

    /// Accounts cached for this authority's cloud (its host and aliases).
    pub async fn get_accounts(&self) -> Result<Vec<Account>> {
        todo!()
    }

    /// Find an account by username (case-insensitive) or home_account_id.
    pub async fn find_account(&self, username_or_id: &str) -> Result<Option<Account>> {
        let _ = username_or_id;
        todo!()
    }

    /// MSAL's `acquire_token_silent`: a cached access token whose target covers the
    /// scopes and that stays valid for `min_validity_secs`; a proactive refresh after
    /// `refresh_on` (falling back to the cached token); otherwise the refresh token
    /// (the client's own, then the family's). Fails with `Error::InteractionRequired`.
    pub async fn acquire_token_silent(
        &self,
        scopes: &ScopeSet,
        account: &Account,
        options: &SilentOptions,
    ) -> Result<AuthResult> {
        let _ = (scopes, account, options);
        todo!()
    }

    /// Step 1 of an interactive sign-in: discovery, PKCE, state and nonce, the URL to show.
    pub async fn start_interactive(&self, params: InteractiveParams) -> Result<crate::authcode::AuthCodeFlow> {
        let _ = params;
        todo!()
    }

    /// Step 2: check the redirect the user agent caught, redeem the code, cache the result.
    pub async fn finish_interactive(&self, flow: crate::authcode::AuthCodeFlow, redirected_to: &Url) -> Result<AuthResult> {
        let _ = (flow, redirected_to);
        todo!()
    }

    /// Both steps, with a user agent.
    pub async fn acquire_token_interactive(&self, params: InteractiveParams, agent: &dyn UserAgent) -> Result<AuthResult> {
        let flow = self.start_interactive(params).await?;
        let redirected = agent.authorize(flow.authorize_url(), flow.redirect_uri()).await?;
        self.finish_interactive(flow, &redirected).await
    }

    /// Ask for a device code (RFC 8628).
    pub async fn initiate_device_flow(&self, scopes: &ScopeSet) -> Result<DeviceFlow> {
        let _ = scopes;
        todo!()
    }

    /// Poll until the user approved, declined, the code expired, or `cancel` fired.
    pub async fn acquire_token_by_device_flow(&self, flow: DeviceFlow, cancel: CancellationToken) -> Result<AuthResult> {
        let _ = (flow, cancel);
        todo!()
    }

    /// MSAL's `remove_account`, plus the provider's end-session URL.
    pub async fn remove_account(&self, account: &Account) -> Result<SignOut> {
        let _ = account;
        todo!()
    }
}
