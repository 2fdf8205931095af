//! [`PublicClientApplication`]: MSAL's public-client API on top of the protocol steps
//! and the token store. Everything the desktop app and the CLI do goes through here.

use std::sync::Arc;

use serde_json::{Map, Value};
use tokio_util::sync::CancellationToken;
use url::Url;

use tokio::sync::OnceCell;

use crate::authcode::{self, AuthCodeFlow, AuthorizeRequest};
use crate::authority::{self, Authority};
use crate::cache::{
    self, AccessTokenEntry, AccountEntry, AppMetadataEntry, CredentialQuery, IdTokenEntry,
    RefreshTokenEntry, TokenStore, TokenWrite,
};
use crate::device::{self, Poll};
use crate::discovery::{self, ProviderMetadata};
use crate::env::{Clock, Entropy, UnixTime};
use crate::error::{Error, InteractionReason, Result};
use crate::http::{HttpClient, HttpRequest, HttpResponse};
use crate::id_token::{self, IdTokenCheck, Identity};
use crate::refresh;
use crate::scopes::ScopeSet;
use crate::secret::AccessToken;
use crate::token::{process_token_response, TokenResponse};

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
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Account {
    pub home_account_id: String,
    pub environment: String,
    pub realm: String,
    pub local_account_id: String,
    pub username: String,
    pub name: Option<String>,
    pub authority_type: String,
}

impl Account {
    /// The account's own (home) tenant: the tenant part of an Entra home account id
    /// (`oid.tid`), else the realm it was cached under (which, signed in through
    /// `common`, is just `common`).
    pub fn home_tenant(&self) -> &str {
        home_tenant(&self.home_account_id, &self.realm)
    }

    /// The order accounts are listed in, by the CLI and the app alike: by name (the
    /// username when there is none), then tenant, then username.
    pub fn sort_key(&self) -> (String, String, String) {
        let name = self.name.as_deref().filter(|n| !n.trim().is_empty());
        (
            name.unwrap_or(&self.username).to_lowercase(),
            self.tenant_label(),
            self.username.to_lowercase(),
        )
    }

    /// The home tenant for people: "personal Microsoft account" for the consumer tenant,
    /// else the domain of a username that is an address, else the tenant id.
    pub fn tenant_label(&self) -> String {
        tenant_label(&self.home_account_id, &self.realm, &self.username)
    }
}

/// [`Account::tenant_label`] of a cached account entry's fields.
pub fn tenant_label(home_account_id: &str, realm: &str, username: &str) -> String {
    let tenant = home_tenant(home_account_id, realm);
    if tenant.eq_ignore_ascii_case(MSA_TENANT) {
        return "personal Microsoft account".to_string();
    }
    match username.rsplit_once('@') {
        Some((_, domain)) if domain.contains('.') => domain.to_ascii_lowercase(),
        _ => tenant.to_string(),
    }
}

/// [`Account::home_tenant`] of a cached account entry's fields.
pub fn home_tenant<'a>(home_account_id: &'a str, realm: &'a str) -> &'a str {
    match home_account_id.split_once('.') {
        Some((_, tid)) if uuid_like(tid) => tid,
        _ => realm,
    }
}

/// The tenant an account entry's tokens belong to: its realm when that names a tenant
/// (signed in through a tenant's authority, a guest too), else its home tenant.
fn entry_tenant<'a>(home_account_id: &'a str, realm: &'a str) -> &'a str {
    if uuid_like(realm) {
        realm
    } else {
        home_tenant(home_account_id, realm)
    }
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

/// An account's tokens as the store knows them ([`PublicClientApplication::token_state`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TokenState {
    /// When the freshest cached access token for the scopes expires (it may be past).
    pub expires_on: Option<UnixTime>,
    /// Whether a new access token can be had silently (a refresh token is cached).
    pub has_refresh_token: bool,
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
        Self {
            min_validity_secs: 300,
            force_refresh: false,
            claims: None,
        }
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
/// The CLI implements it with the system browser and [`crate::loopback`].
#[async_trait::async_trait]
pub trait UserAgent: Send + Sync {
    /// Open `flow.authorize_url()` and return the URL of the authorization response: the
    /// first that matches `flow.redirect_uri()` exactly (scheme, host, port, path) and
    /// carries `flow.state()`. Closing the window is `Error::Cancelled`.
    async fn authorize(&self, flow: &AuthCodeFlow) -> Result<Url>;
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
    /// Discovery results, fetched once per application.
    metadata: OnceCell<Arc<ProviderMetadata>>,
    aliases: OnceCell<Vec<String>>,
}

/// How long instance discovery at Microsoft may take before the host is used alone
/// (offline, a dropped connection must not delay every command by the HTTP timeout).
const INSTANCE_DISCOVERY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);
/// How long listing accounts waits for discovery to learn the tenant of an authority
/// named by a domain.
const DOMAIN_LOOKUP_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(3);
/// How long [`PublicClientApplication::check_reachable`] waits for the provider.
pub const REACHABILITY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// The grant a token response came from (MSAL's `account_source`).
const GRANT_AUTH_CODE: &str = "authorization_code";
const GRANT_REFRESH: &str = "refresh_token";

impl PublicClientApplication {
    pub fn new(config: ClientConfig, deps: Deps) -> Self {
        Self {
            config,
            deps,
            metadata: OnceCell::new(),
            aliases: OnceCell::new(),
        }
    }

    pub fn config(&self) -> &ClientConfig {
        &self.config
    }

    fn authority(&self) -> &Authority {
        &self.config.authority
    }

    /// The provider's metadata (discovery runs once).
    pub async fn metadata(&self) -> Result<Arc<ProviderMetadata>> {
        self.metadata
            .get_or_try_init(|| async {
                let authority = self.authority();
                tracing::debug!(authority = %authority, "discovering the provider");
                let response = self
                    .deps
                    .http
                    .execute(discovery::discovery_request(authority))
                    .await?;
                let metadata = discovery::process_discovery_response(authority, &response)?;
                if authority.is_entra_like() {
                    // An Entra-style document may not send the user to another cloud's
                    // sign-in page: a code issued there would be redeemed here.
                    let envs = self.aliases().await;
                    discovery::check_endpoints_of_cloud(
                        &authority.environment(),
                        &envs,
                        &metadata,
                    )?;
                }
                Ok(Arc::new(metadata))
            })
            .await
            .cloned()
    }

    /// Whether the provider answers now: its discovery document is fetched afresh (the
    /// cached metadata may be from before it went down), within
    /// [`REACHABILITY_TIMEOUT`]. Run before a sign-in window is opened on its pages, so
    /// that an unreachable provider is reported in words, not by a browser's error page.
    pub async fn check_reachable(&self) -> Result<()> {
        let request = discovery::discovery_request(self.authority());
        let response = tokio::time::timeout(REACHABILITY_TIMEOUT, self.deps.http.execute(request))
            .await
            .map_err(|_| {
                crate::http::TransportError(format!(
                    "no answer from {} within {} s",
                    self.authority().environment(),
                    REACHABILITY_TIMEOUT.as_secs()
                ))
            })??;
        discovery::process_discovery_response(self.authority(), &response)?;
        Ok(())
    }

    /// The hosts that count as this authority's cloud ([`authority::aliases_of`]: the
    /// built-in table, or instance discovery asked at Microsoft). Never fails: without
    /// instance discovery (offline, switched off, a loopback host) the host is its own
    /// only alias.
    pub async fn aliases(&self) -> Vec<String> {
        self.aliases
            .get_or_init(|| async {
                let host = self.authority().environment();
                let mut learned = Vec::new();
                if let Some(request) = discovery::instance_discovery_request(self.authority()) {
                    let asked =
                        tokio::time::timeout(INSTANCE_DISCOVERY_TIMEOUT, self.deps.http.execute(request)).await;
                    match asked {
                        Ok(Ok(r)) => match discovery::process_instance_discovery_response(self.authority(), &r) {
                            Ok(a) => learned = a,
                            Err(e) => tracing::warn!(error = %e, "instance discovery failed; using the host alone"),
                        },
                        Ok(Err(e)) => tracing::warn!(error = %e, "instance discovery failed; using the host alone"),
                        Err(_) => tracing::warn!("instance discovery did not answer in time; using the host alone"),
                    }
                }
                authority::aliases_of(&host, &learned)
            })
            .await
            .clone()
    }

    /// Whether an entry cached in `environment` is of this authority's cloud
    /// ([`authority::same_cloud`]; `envs` is [`Self::aliases`]).
    fn of_this_cloud(&self, environment: &str, envs: &[String]) -> bool {
        authority::same_cloud(&self.authority().environment(), environment, envs)
    }

    /// Every request carrying a secret (refresh token, authorization code, device code)
    /// leaves through here: it is sent only where [`discovery::secret_may_go_to`] allows
    /// a secret issued in `issued_in`, else refused with `Error::Validation` and not sent.
    async fn send_secret(
        &self,
        request: HttpRequest,
        issued_in: &str,
        metadata: &ProviderMetadata,
    ) -> Result<HttpResponse> {
        let envs = self.aliases().await;
        if !discovery::secret_may_go_to(issued_in, &envs, &request.url, self.authority(), metadata)
        {
            let to = request.url.host_str().unwrap_or_default().to_string();
            tracing::warn!(issued_in, to = %to, "refused to send a secret outside the cloud that issued it");
            return Err(Error::Validation(format!(
                "a secret issued by {issued_in} is not sent to {to}, which is not of the same cloud"
            )));
        }
        Ok(self.deps.http.execute(request).await?)
    }

    /// Accounts cached for this authority's cloud (its host and aliases) that this
    /// client (or its token family) holds credentials for.
    pub async fn get_accounts(&self) -> Result<Vec<Account>> {
        self.accounts_where(None).await
    }

    /// The accounts [`Self::get_accounts`] lists that go by `username_or_id`: their
    /// username (ignoring ASCII case) or home account id, as MSAL's
    /// `get_accounts(username=...)`. The store is asked for those entries only (an index
    /// lookup in `SqliteStore`), so this does not grow with the number of accounts.
    pub async fn get_accounts_named(&self, username_or_id: &str) -> Result<Vec<Account>> {
        self.accounts_where(Some(username_or_id.trim())).await
    }

    async fn accounts_where(&self, named: Option<&str>) -> Result<Vec<Account>> {
        let envs = self.aliases().await;
        let store = &self.deps.store;
        let family = self.family_lookup(&envs)?;
        let client_id = &self.config.client_id;
        // Which accounts hold a refresh or ID token of this client: for all of them one
        // store call (an index lookup in SqliteStore) instead of two lookups per account.
        let (entries, holders) = match named {
            None => (
                store.accounts()?,
                store.credential_holders(&envs, client_id, family.as_deref())?,
            ),
            Some(name) => {
                let entries = store.accounts_named(name)?;
                let holders = crate::cache::credential_holders_among(
                    store.as_ref(),
                    &entries,
                    &envs,
                    client_id,
                    family.as_deref(),
                )?;
                (entries, holders)
            }
        };
        let mut seen = std::collections::HashSet::new();
        let mut out: Vec<Account> = Vec::new();
        let tenant = self.authority_tenant().await;
        for entry in entries {
            if !self.of_this_cloud(&entry.environment, &envs)
                || (!self.authority().is_entra_like() && entry.realm != self.authority().realm())
                || (self.authority().is_entra_like()
                    && !realm_fits(&tenant, entry_tenant(&entry.home_account_id, &entry.realm)))
                || !holders.contains(&entry.home_account_id)
                || !seen.insert(entry.home_account_id.clone())
            {
                continue;
            }
            out.push(account_from_entry(entry));
        }
        out.sort_by_cached_key(Account::sort_key);
        Ok(out)
    }

    /// The tenant an Entra authority names: its realm, or for a domain name
    /// (`/contoso.com`) the tenant id in the issuer discovery gives (discovery runs once,
    /// within [`DOMAIN_LOOKUP_TIMEOUT`]; offline, the domain itself, which fits every
    /// account).
    async fn authority_tenant(&self) -> String {
        let realm = self.authority().realm();
        let named = !matches!(
            realm.as_str(),
            "" | "common" | "organizations" | "consumers"
        ) && !uuid_like(&realm);
        if !self.authority().is_entra_like() || !named {
            return realm;
        }
        match tokio::time::timeout(DOMAIN_LOOKUP_TIMEOUT, self.metadata()).await {
            Ok(Ok(m)) => Url::parse(&m.issuer)
                .ok()
                .and_then(|u| {
                    u.path_segments()?
                        .find(|s| uuid_like(s))
                        .map(str::to_ascii_lowercase)
                })
                .unwrap_or(realm),
            _ => realm,
        }
    }

    /// Find an account by username (case-insensitive) or home_account_id.
    pub async fn find_account(&self, username_or_id: &str) -> Result<Option<Account>> {
        Ok(self
            .get_accounts_named(username_or_id)
            .await?
            .into_iter()
            .next())
    }

    /// What the store says about `account`'s tokens for `scopes`, for a list to show: when
    /// the covering access token that expires last expires, and whether a refresh token
    /// (this client's, or its family's by the rule [`Self::acquire_token_silent`] follows)
    /// is cached. No network request (but instance discovery, once) and, in an indexed
    /// store, no secret opened.
    pub async fn token_state(&self, account: &Account, scopes: &ScopeSet) -> Result<TokenState> {
        let envs = self.aliases().await;
        let family = self.family_lookup(&envs)?;
        let q = self.any_realm_query(account, &envs);
        let store = &self.deps.store;
        Ok(TokenState {
            expires_on: store.access_token_expiry(&q, &scopes.without_reserved())?,
            has_refresh_token: store.holds_refresh_token(&q, family.as_deref())?,
        })
    }

    /// MSAL's `acquire_token_silent`: a cached access token whose target covers the
    /// scopes and that stays valid for `min_validity_secs`; a proactive refresh after
    /// `refresh_on` (falling back to the cached token); otherwise the refresh token
    /// (the family's, then the client's own). Fails with `Error::InteractionRequired`.
    pub async fn acquire_token_silent(
        &self,
        scopes: &ScopeSet,
        account: &Account,
        options: &SilentOptions,
    ) -> Result<AuthResult> {
        let now = self.deps.clock.now();
        let envs = self.aliases().await;
        let realm = self.authority().realm();
        let wanted = scopes.without_reserved();
        let q = CredentialQuery {
            home_account_id: &account.home_account_id,
            environments: &envs,
            client_id: &self.config.client_id,
            realm: Some(&realm),
        };
        if !options.force_refresh && options.claims.is_none() {
            // The store picks the token (covering the scopes, valid `min_validity_secs`
            // longer, the one expiring last), so an indexed store opens one secret only.
            let cached = self.deps.store.find_access_token(
                &q,
                &wanted,
                now.saturating_add(options.min_validity_secs),
            )?;
            if let Some(at) = cached.filter(|at| self.of_this_cloud(&at.environment, &envs)) {
                if at.refresh_on.is_some_and(|r| now >= r) {
                    tracing::debug!("cached access token is due for a proactive refresh");
                    match self.refresh(&wanted, account, None).await {
                        Ok(fresh) => return Ok(fresh),
                        Err(e) => {
                            tracing::info!(error = %e, "proactive refresh failed; using the cached access token")
                        }
                    }
                }
                tracing::debug!("access token served from the cache");
                return Ok(self.cached_result(at, account, &q));
            }
        }
        self.refresh(&wanted, account, options.claims.as_deref())
            .await
    }

    fn cached_result(
        &self,
        at: AccessTokenEntry,
        account: &Account,
        q: &CredentialQuery<'_>,
    ) -> AuthResult {
        let id_token_claims = self
            .deps
            .store
            .id_token(&CredentialQuery {
                realm: None,
                ..q.clone()
            })
            .ok()
            .flatten()
            .filter(|idt| self.of_this_cloud(&idt.environment, q.environments))
            .and_then(|idt| id_token::claims(idt.secret.secret()).ok());
        AuthResult {
            scopes: ScopeSet::parse(&at.target),
            access_token: at.secret,
            token_type: at.token_type,
            expires_on: at.expires_on,
            refresh_on: at.refresh_on,
            token_source: TokenSource::Cache,
            account: account.clone(),
            id_token_claims,
        }
    }

    /// `account`'s credentials of this client in `envs`, any realm.
    fn any_realm_query<'q>(
        &'q self,
        account: &'q Account,
        envs: &'q [String],
    ) -> CredentialQuery<'q> {
        CredentialQuery {
            home_account_id: &account.home_account_id,
            environments: envs,
            client_id: &self.config.client_id,
            realm: None,
        }
    }

    /// Which family to look for: the app's known family, or "1" while unknown (MSAL
    /// tries the family refresh token when it does not know yet).
    fn family_lookup(&self, envs: &[String]) -> Result<Option<String>> {
        Ok(
            match self.deps.store.app_metadata(envs, &self.config.client_id)? {
                Some(m) => m.family_id,
                None => Some("1".into()),
            },
        )
    }

    async fn refresh(
        &self,
        scopes: &ScopeSet,
        account: &Account,
        claims: Option<&str>,
    ) -> Result<AuthResult> {
        let envs = self.aliases().await;
        let family = self.family_lookup(&envs)?;
        let q = self.any_realm_query(account, &envs);
        let mut candidates = self.deps.store.refresh_tokens(&q, family.as_deref())?;
        // Family tokens first (they may be fresher), then the client's own; each once.
        candidates.sort_by_key(|rt| rt.client_id != self.config.client_id);
        candidates.dedup_by(|a, b| a.secret.secret() == b.secret.secret());
        if candidates.is_empty() {
            return Err(Error::interaction(InteractionReason::NoRefreshToken));
        }
        let metadata = self.metadata().await?;
        let request_scopes = scopes.with_reserved();
        let mut last = Error::interaction(InteractionReason::NoRefreshToken);
        for rt in candidates {
            let request = refresh::refresh_request(
                &metadata,
                &self.config.client_id,
                &rt.secret,
                &request_scopes,
                claims,
                self.authority().is_entra_like(),
            );
            tracing::debug!(family = rt.family_id.is_some(), "redeeming a refresh token");
            // A refresh token of another cloud is skipped, not an error of this one.
            let response = match self.send_secret(request, &rt.environment, &metadata).await {
                Err(Error::Validation(_)) => continue,
                other => other?,
            };
            match process_token_response(&response).map_err(refresh::classify_refresh_error) {
                Ok(tr) => {
                    return self.cache_response(
                        tr,
                        &metadata,
                        &request_scopes,
                        GRANT_REFRESH,
                        Some(account),
                        None,
                        Some(&rt),
                    )
                }
                Err(e @ (Error::InteractionRequired { .. } | Error::Provider(_))) => {
                    tracing::info!(error = %e, "refresh token not accepted");
                    last = e;
                }
                Err(e) => return Err(e),
            }
        }
        Err(last)
    }

    /// Validate a token response and write it to the store in one transaction.
    #[allow(clippy::too_many_arguments)]
    fn cache_response(
        &self,
        tr: TokenResponse,
        metadata: &ProviderMetadata,
        requested: &ScopeSet,
        grant: &str,
        account: Option<&Account>,
        nonce: Option<&str>,
        redeemed: Option<&RefreshTokenEntry>,
    ) -> Result<AuthResult> {
        let now = self.deps.clock.now();
        let client_id = self.config.client_id.as_str();
        let claims = match &tr.id_token {
            Some(idt) => {
                let c = id_token::claims(idt.secret())?;
                id_token::validate(
                    &c,
                    &IdTokenCheck {
                        metadata,
                        client_id,
                        nonce,
                        now,
                    },
                )?;
                Some(c)
            }
            None => None,
        };
        let identity = match (&claims, account) {
            (Some(c), _) => id_token::identity(c, tr.client_info.as_deref())?,
            (None, Some(a)) => Identity {
                home_account_id: a.home_account_id.clone(),
                local_account_id: a.local_account_id.clone(),
                username: a.username.clone(),
                name: a.name.clone(),
            },
            (None, None) => {
                return Err(Error::BadResponse {
                    what: "token response",
                    detail: "no ID token came back, so the account is unknown (was the openid scope granted?)".into(),
                    status: None,
                    retry_after: None,
                })
            }
        };
        if let Some(a) = account {
            if a.home_account_id != identity.home_account_id {
                return Err(Error::Validation(format!(
                    "the provider returned tokens for {} while refreshing {}",
                    identity.username, a.username
                )));
            }
        }
        let environment = self.authority().environment();
        let realm = self.authority().realm();
        let mut granted: Vec<String> = match &tr.scope {
            Some(s) if !s.trim().is_empty() => s.split_whitespace().map(str::to_string).collect(),
            _ => requested.to_vec(),
        };
        // `R/.default` is answered with R's permissions; the target keeps the requested
        // `.default` too, so that asking again finds the token (MSAL for Apple platforms
        // does the same; Entra often echoes it itself).
        for s in requested.iter().filter(|s| s.ends_with("/.default")) {
            if !granted.iter().any(|g| g.eq_ignore_ascii_case(s)) {
                granted.push(s.to_string());
            }
        }
        granted.sort();
        let target = granted.join(" ");
        let expires_on = now.saturating_add(tr.expires_in.unwrap_or(600));
        let hid = identity.home_account_id.clone();
        let refresh_token = tr.refresh_token.clone().map(|secret| RefreshTokenEntry {
            home_account_id: hid.clone(),
            environment: environment.clone(),
            client_id: client_id.to_string(),
            target: target.clone(),
            secret,
            family_id: tr.foci.clone(),
            last_modification_time: Some(now),
            extra: Default::default(),
        });
        // MSAL: a refresh grant does not add a new refresh token entry; the redeemed one
        // (possibly another family client's) gets the rotated secret (`update_rt`).
        let (refresh_token, rotated_refresh_token) = match redeemed {
            Some(old) => (
                None,
                refresh_token.map(|new| (cache::refresh_token_key(old), new.secret)),
            ),
            None => (refresh_token, None),
        };
        let is_refresh = redeemed.is_some();
        let write = TokenWrite {
            access_token: Some(AccessTokenEntry {
                home_account_id: hid.clone(),
                environment: environment.clone(),
                client_id: client_id.to_string(),
                realm: realm.clone(),
                target: target.clone(),
                secret: tr.access_token.clone(),
                token_type: tr.token_type.clone(),
                cached_at: now,
                expires_on,
                extended_expires_on: Some(
                    now.saturating_add(tr.ext_expires_in.or(tr.expires_in).unwrap_or(600)),
                ),
                refresh_on: tr.refresh_in.map(|r| now.saturating_add(r)),
                extra: Default::default(),
            }),
            refresh_token,
            id_token: tr.id_token.clone().map(|secret| IdTokenEntry {
                home_account_id: hid.clone(),
                environment: environment.clone(),
                realm: realm.clone(),
                client_id: client_id.to_string(),
                secret,
                extra: Default::default(),
            }),
            // MSAL writes no Account on refresh, so a concurrent sign-out stays signed out.
            account: claims
                .as_ref()
                .filter(|_| !is_refresh)
                .map(|_| AccountEntry {
                    home_account_id: hid.clone(),
                    environment: environment.clone(),
                    realm: realm.clone(),
                    local_account_id: identity.local_account_id.clone(),
                    username: identity.username.clone(),
                    authority_type: id_token::authority_type(self.authority()).to_string(),
                    account_source: Some(grant.to_string()),
                    name: identity.name.clone(),
                    extra: Default::default(),
                }),
            app_metadata: Some(AppMetadataEntry {
                client_id: client_id.to_string(),
                environment: environment.clone(),
                family_id: tr.foci.clone(),
                extra: Default::default(),
            }),
            rotated_refresh_token,
        };
        self.deps.store.write(write)?;
        tracing::info!(grant, "tokens received and cached");
        Ok(AuthResult {
            access_token: tr.access_token,
            token_type: tr.token_type,
            expires_on,
            refresh_on: tr.refresh_in.map(|r| now.saturating_add(r)),
            scopes: ScopeSet::parse(&target),
            token_source: TokenSource::IdentityProvider,
            account: Account {
                home_account_id: hid,
                environment,
                realm,
                local_account_id: identity.local_account_id,
                username: identity.username,
                name: identity.name,
                authority_type: id_token::authority_type(self.authority()).to_string(),
            },
            id_token_claims: claims,
        })
    }

    /// Step 1 of an interactive sign-in: discovery, PKCE, state and nonce, the URL to show.
    pub async fn start_interactive(&self, params: InteractiveParams) -> Result<AuthCodeFlow> {
        let metadata = self.metadata().await?;
        let redirect_uri = params
            .redirect_uri
            .clone()
            .unwrap_or_else(|| self.config.redirect_uri.clone());
        let scopes = params.scopes.with_reserved();
        let flow = authcode::begin(
            &AuthorizeRequest {
                metadata: &metadata,
                client_id: &self.config.client_id,
                redirect_uri: &redirect_uri,
                scopes: &scopes,
                prompt: params.prompt.as_deref(),
                login_hint: params.login_hint.as_deref(),
                domain_hint: params.domain_hint.as_deref(),
                claims: params.claims.as_deref(),
                entra: self.authority().is_entra_like(),
            },
            self.deps.entropy.as_ref(),
            self.deps.clock.now(),
        );
        tracing::info!(authority = %self.authority(), "interactive sign-in started");
        Ok(flow)
    }

    /// Step 2: check the redirect the user agent caught, redeem the code, cache the result.
    pub async fn finish_interactive(
        &self,
        flow: AuthCodeFlow,
        redirected_to: &Url,
    ) -> Result<AuthResult> {
        let code = authcode::process_redirect(&flow, redirected_to)?;
        let request = authcode::code_redemption_request(
            &flow,
            &self.config.client_id,
            &code,
            self.authority().is_entra_like(),
        );
        let response = self
            .send_secret(
                request,
                &discovery::host_of(&flow.metadata.authorization_endpoint),
                &flow.metadata,
            )
            .await?;
        let tr = process_token_response(&response)?;
        self.cache_response(
            tr,
            &flow.metadata,
            &flow.scopes,
            GRANT_AUTH_CODE,
            None,
            Some(flow.nonce.secret()),
            None,
        )
    }

    /// Both steps, with a user agent.
    pub async fn acquire_token_interactive(
        &self,
        params: InteractiveParams,
        agent: &dyn UserAgent,
    ) -> Result<AuthResult> {
        let flow = self.start_interactive(params).await?;
        let redirected = agent.authorize(&flow).await?;
        self.finish_interactive(flow, &redirected).await
    }

    /// Ask for a device code (RFC 8628).
    pub async fn initiate_device_flow(&self, scopes: &ScopeSet) -> Result<DeviceFlow> {
        let metadata = self.metadata().await?;
        let scopes = scopes.with_reserved();
        let request =
            device::device_authorization_request(&metadata, &self.config.client_id, &scopes)?;
        let response = self.deps.http.execute(request).await?;
        let auth = device::process_device_authorization_response(&response)?;
        Ok(DeviceFlow {
            user_code: auth.user_code.clone(),
            verification_uri: auth.verification_uri.clone(),
            verification_uri_complete: auth.verification_uri_complete.clone(),
            message: auth.message(),
            expires_at: self
                .deps
                .clock
                .now()
                .saturating_add(i64::try_from(auth.expires_in).unwrap_or(i64::MAX)),
            interval_secs: auth.interval.unwrap_or(device::DEFAULT_INTERVAL_SECS),
            inner: auth,
            scopes,
        })
    }

    /// Poll until the user approved, declined, the code expired, or `cancel` fired.
    pub async fn acquire_token_by_device_flow(
        &self,
        flow: DeviceFlow,
        cancel: CancellationToken,
    ) -> Result<AuthResult> {
        let metadata = self.metadata().await?;
        let mut interval = flow.interval_secs.max(1);
        loop {
            // Never sleep past the code's expiry, whatever interval the provider asks for.
            let left = flow.expires_at.saturating_sub(self.deps.clock.now()).max(0) as u64;
            let wait = interval.min(left.max(1));
            tokio::select! {
                _ = cancel.cancelled() => return Err(Error::Cancelled),
                _ = tokio::time::sleep(std::time::Duration::from_secs(wait)) => {}
            }
            if self.deps.clock.now() >= flow.expires_at {
                return Err(Error::interaction(InteractionReason::DeviceCodeExpired));
            }
            let response = self
                .send_secret(
                    device::device_token_request(&metadata, &self.config.client_id, &flow.inner),
                    // The device code was issued where it was asked for.
                    &metadata
                        .device_authorization_endpoint
                        .as_ref()
                        .map(discovery::host_of)
                        .unwrap_or_else(|| self.authority().environment()),
                    &metadata,
                )
                .await?;
            match device::process_device_token_response(&response)? {
                Poll::Pending => {}
                Poll::SlowDown => interval = interval.saturating_add(device::SLOW_DOWN_STEP_SECS),
                Poll::Done(tr) => {
                    return self.cache_response(
                        *tr,
                        &metadata,
                        &flow.scopes,
                        device::GRANT_TYPE,
                        None,
                        None,
                        None,
                    )
                }
            }
        }
    }

    /// MSAL's `remove_account`, plus the provider's end-session URL (when discovery
    /// works; sign-out never fails because the provider is unreachable).
    pub async fn remove_account(&self, account: &Account) -> Result<SignOut> {
        let envs = self.aliases().await;
        let removed = self
            .deps
            .store
            .remove_account(&account.home_account_id, &envs)?;
        tracing::info!(removed, "account removed from the store");
        let end_session_url = match self.metadata().await {
            Ok(m) => m.end_session_endpoint.clone().map(|mut u| {
                u.query_pairs_mut()
                    .append_pair("client_id", &self.config.client_id);
                if self.authority().is_entra_like() && !account.username.is_empty() {
                    u.query_pairs_mut()
                        .append_pair("logout_hint", &account.username);
                }
                u
            }),
            Err(_) => None,
        };
        Ok(SignOut {
            removed,
            end_session_url,
        })
    }

    /// A resource refused `access_token` (say Git's `erase`): the account's cached access
    /// token with that secret is written back already expired, so the next
    /// [`Self::acquire_token_silent`] redeems the refresh token instead of serving it. The
    /// refresh token stays. Returns whether such a token was cached.
    pub async fn reject_access_token(&self, account: &Account, access_token: &str) -> Result<bool> {
        let now = self.deps.clock.now();
        let envs = self.aliases().await;
        let q = CredentialQuery {
            home_account_id: &account.home_account_id,
            environments: &envs,
            client_id: &self.config.client_id,
            realm: None,
        };
        let Some(mut at) = self
            .deps
            .store
            .access_tokens(&q)?
            .into_iter()
            .find(|at| at.secret.secret() == access_token && at.expires_on >= now)
        else {
            return Ok(false);
        };
        at.expires_on = now.saturating_sub(1);
        at.extended_expires_on = Some(at.expires_on);
        at.refresh_on = None;
        self.deps.store.write(TokenWrite {
            access_token: Some(at),
            ..TokenWrite::default()
        })?;
        tracing::info!("a rejected access token was marked expired");
        Ok(true)
    }
}

fn account_from_entry(e: AccountEntry) -> Account {
    Account {
        home_account_id: e.home_account_id,
        environment: e.environment,
        realm: e.realm,
        local_account_id: e.local_account_id,
        username: e.username,
        name: e.name,
        authority_type: e.authority_type,
    }
}

#[cfg(test)]
mod tests {
    //! The cloud boundary with the first line (trusted aliases) bypassed: the alias set
    //! is poisoned by hand, and still nothing of Microsoft's cloud is shown or sent.

    use std::sync::Mutex;

    use async_trait::async_trait;

    use super::*;
    use crate::cache::MemoryStore;
    use crate::env::{CountingEntropy, FixedClock};
    use crate::http::TransportError;
    use crate::secret::{IdTokenString, RefreshToken};

    const NOW: i64 = 1_800_000_000;
    const MICROSOFT: &str = "login.microsoftonline.com";
    const AZURE_CLI: &str = "04b07795-8ddb-461a-bbee-02f9e1bf7b46";
    const OTHER_CLIENT: &str = "0f0f0f0f-1111-4222-8333-444444444444";
    const TENANT: &str = "72f988bf-0000-4000-8000-00000000c0de";
    const HID: &str = "uid.72f988bf-0000-4000-8000-00000000c0de";
    const RT: &str = "victim-refresh-token";
    const AT: &str = "victim-access-token";
    const GRAPH: &str = "https://graph.microsoft.com/.default";

    /// The attacker's endpoints on 127.0.0.1 (or `token_endpoint`); every request is kept.
    struct Attacker {
        issuer: String,
        authorization_endpoint: String,
        device_endpoint: String,
        token_endpoint: String,
        seen: Mutex<Vec<String>>,
    }

    impl Attacker {
        fn new(token_endpoint: &str) -> Self {
            Self {
                issuer: "http://127.0.0.1:9/{tenantid}/v2.0".into(),
                authorization_endpoint: "http://127.0.0.1:9/common/oauth2/v2.0/authorize".into(),
                device_endpoint: "http://127.0.0.1:9/common/oauth2/v2.0/devicecode".into(),
                token_endpoint: token_endpoint.into(),
                seen: Mutex::new(Vec::new()),
            }
        }
    }

    #[async_trait]
    impl HttpClient for Attacker {
        async fn execute(
            &self,
            request: HttpRequest,
        ) -> std::result::Result<HttpResponse, TransportError> {
            let body = String::from_utf8_lossy(request.body.as_deref().unwrap_or_default());
            self.seen
                .lock()
                .unwrap()
                .push(format!("{} {body}", request.url));
            let (status, doc) = if request.url.path().ends_with("openid-configuration") {
                (
                    200,
                    serde_json::json!({
                        "issuer": self.issuer,
                        "authorization_endpoint": self.authorization_endpoint,
                        "token_endpoint": self.token_endpoint,
                        "device_authorization_endpoint": self.device_endpoint,
                    }),
                )
            } else if request.url.path().ends_with("devicecode") {
                (
                    200,
                    serde_json::json!({
                        "device_code": "attackers-device-code", "user_code": "X",
                        "verification_uri": "http://127.0.0.1:9/device", "expires_in": 60,
                        "interval": 1,
                    }),
                )
            } else {
                (400, serde_json::json!({"error": "invalid_grant"}))
            };
            Ok(HttpResponse {
                status,
                headers: vec![("content-type".into(), "application/json".into())],
                body: doc.to_string().into_bytes(),
            })
        }
    }

    fn victim_store() -> Arc<MemoryStore> {
        let store = Arc::new(MemoryStore::new().with_clock(Arc::new(FixedClock::new(NOW))));
        store
            .write(TokenWrite {
                access_token: Some(AccessTokenEntry {
                    home_account_id: HID.into(),
                    environment: MICROSOFT.into(),
                    client_id: AZURE_CLI.into(),
                    realm: TENANT.into(),
                    target: GRAPH.into(),
                    secret: AccessToken::new(AT.into()),
                    token_type: "Bearer".into(),
                    cached_at: NOW,
                    expires_on: NOW + 86_400,
                    extended_expires_on: None,
                    refresh_on: None,
                    extra: Default::default(),
                }),
                refresh_token: Some(RefreshTokenEntry {
                    home_account_id: HID.into(),
                    environment: MICROSOFT.into(),
                    client_id: AZURE_CLI.into(),
                    target: "openid profile offline_access".into(),
                    secret: RefreshToken::new(RT.into()),
                    family_id: Some("1".into()),
                    last_modification_time: Some(NOW),
                    extra: Default::default(),
                }),
                id_token: Some(IdTokenEntry {
                    home_account_id: HID.into(),
                    environment: MICROSOFT.into(),
                    realm: TENANT.into(),
                    client_id: AZURE_CLI.into(),
                    secret: IdTokenString::new("e30.e30.victim"),
                    extra: Default::default(),
                }),
                account: Some(AccountEntry {
                    home_account_id: HID.into(),
                    environment: MICROSOFT.into(),
                    realm: TENANT.into(),
                    local_account_id: "uid".into(),
                    username: "victim@contoso.example".into(),
                    authority_type: "MSSTS".into(),
                    account_source: None,
                    name: None,
                    extra: Default::default(),
                }),
                app_metadata: Some(AppMetadataEntry {
                    client_id: AZURE_CLI.into(),
                    environment: MICROSOFT.into(),
                    family_id: Some("1".into()),
                    extra: Default::default(),
                }),
                rotated_refresh_token: None,
            })
            .unwrap();
        store
    }

    /// An application on the attacker's host whose alias set claims Microsoft's hosts.
    fn poisoned_app(
        client_id: &str,
        token_endpoint: &str,
    ) -> (PublicClientApplication, Arc<Attacker>) {
        let http = Arc::new(Attacker::new(token_endpoint));
        let app = PublicClientApplication::new(
            ClientConfig {
                client_id: client_id.into(),
                authority: Authority::entra(&format!("http://127.0.0.1:9/{TENANT}")).unwrap(),
                redirect_uri: Url::parse("http://localhost").unwrap(),
            },
            Deps {
                http: http.clone(),
                store: victim_store(),
                clock: Arc::new(FixedClock::new(NOW)),
                entropy: Arc::new(CountingEntropy::default()),
            },
        );
        app.aliases
            .set(
                ["127.0.0.1", MICROSOFT, "login.windows.net"]
                    .map(String::from)
                    .to_vec(),
            )
            .unwrap();
        (app, http)
    }

    fn victim() -> Account {
        Account {
            home_account_id: HID.into(),
            environment: MICROSOFT.into(),
            realm: TENANT.into(),
            local_account_id: "uid".into(),
            username: "victim@contoso.example".into(),
            name: None,
            authority_type: "MSSTS".into(),
        }
    }

    #[tokio::test]
    async fn a_poisoned_alias_set_shows_and_sends_nothing_of_another_cloud() {
        for client in [AZURE_CLI, OTHER_CLIENT] {
            let (app, http) = poisoned_app(client, "http://127.0.0.1:9/common/oauth2/v2.0/token");
            assert!(app.get_accounts().await.unwrap().is_empty(), "{client}");
            assert!(app
                .find_account("victim@contoso.example")
                .await
                .unwrap()
                .is_none());
            for force_refresh in [false, true] {
                let err = app
                    .acquire_token_silent(
                        &ScopeSet::parse(GRAPH),
                        &victim(),
                        &SilentOptions {
                            force_refresh,
                            ..Default::default()
                        },
                    )
                    .await
                    .expect_err("no token of Microsoft's cloud");
                assert!(
                    matches!(
                        err,
                        Error::InteractionRequired {
                            reason: InteractionReason::NoRefreshToken,
                            ..
                        }
                    ),
                    "{client}: {err:?}"
                );
            }
            let seen = http.seen.lock().unwrap().join("\n");
            assert!(
                !seen.contains(RT),
                "{client}: the refresh token was sent:\n{seen}"
            );
            assert!(!seen.contains(AT), "{client}:\n{seen}");
        }
    }

    /// The code of `flow` as the provider would send it back.
    fn redirect_with_code(flow: &AuthCodeFlow) -> Url {
        let state = flow
            .authorize_url()
            .query_pairs()
            .find(|(k, _)| k == "state")
            .unwrap()
            .1
            .into_owned();
        Url::parse(&format!("http://localhost/?code=the-code&state={state}")).unwrap()
    }

    #[tokio::test]
    async fn an_entra_style_document_naming_another_clouds_endpoints_is_refused() {
        let microsoft = |path: &str| format!("https://{MICROSOFT}/common/oauth2/v2.0/{path}");
        // Microsoft's sign-in page and device endpoint (a code issued there would be
        // redeemed here), or Microsoft's token endpoint.
        let cases = [
            (
                "authorization_endpoint",
                Attacker {
                    authorization_endpoint: microsoft("authorize"),
                    device_endpoint: microsoft("devicecode"),
                    ..Attacker::new("http://127.0.0.1:9/token")
                },
            ),
            ("token_endpoint", Attacker::new(&microsoft("token"))),
        ];
        for (named, attacker) in cases {
            let (app, _) = poisoned_app(OTHER_CLIENT, "http://127.0.0.1:9/token");
            let http = Arc::new(attacker);
            let app = PublicClientApplication::new(
                app.config.clone(),
                Deps {
                    http: http.clone(),
                    ..app.deps.clone()
                },
            );
            let err = app
                .start_interactive(InteractiveParams::default())
                .await
                .unwrap_err();
            assert!(
                matches!(&err, Error::Validation(m) if m.contains(named)),
                "{named}: {err:?}"
            );
            let err = app
                .initiate_device_flow(&ScopeSet::parse("User.Read"))
                .await
                .unwrap_err();
            assert!(matches!(err, Error::Validation(_)), "{named}: {err:?}");
            // Discovery only: no device code asked for, nothing sent to a token endpoint.
            let seen = http.seen.lock().unwrap().join("\n");
            assert!(
                !seen.contains("devicecode") && !seen.contains("/token"),
                "{seen}"
            );
        }
    }

    #[tokio::test]
    async fn a_code_issued_by_microsoft_never_goes_to_a_generic_issuers_token_endpoint() {
        // A generic issuer whose (exactly matching) document sends the user to Microsoft's
        // sign-in page and device endpoint, and keeps the token endpoint for itself.
        let http = Arc::new(Attacker {
            issuer: "http://127.0.0.1:9".into(),
            authorization_endpoint: format!("https://{MICROSOFT}/common/oauth2/v2.0/authorize"),
            device_endpoint: format!("https://{MICROSOFT}/common/oauth2/v2.0/devicecode"),
            ..Attacker::new("http://127.0.0.1:9/token")
        });
        let app = PublicClientApplication::new(
            ClientConfig {
                client_id: AZURE_CLI.into(),
                authority: Authority::oidc("http://127.0.0.1:9").unwrap(),
                redirect_uri: Url::parse("http://localhost").unwrap(),
            },
            Deps {
                http: http.clone(),
                store: Arc::new(MemoryStore::new()),
                clock: Arc::new(FixedClock::new(NOW)),
                entropy: Arc::new(CountingEntropy::default()),
            },
        );
        let flow = app
            .start_interactive(InteractiveParams::default())
            .await
            .unwrap();
        let back = redirect_with_code(&flow);
        let err = app.finish_interactive(flow, &back).await.unwrap_err();
        assert!(matches!(err, Error::Validation(_)), "{err:?}");
        let device = app
            .initiate_device_flow(&ScopeSet::parse("openid"))
            .await
            .unwrap();
        let err = app
            .acquire_token_by_device_flow(device, CancellationToken::new())
            .await
            .unwrap_err();
        assert!(matches!(err, Error::Validation(_)), "{err:?}");
        let seen = http.seen.lock().unwrap().join("\n");
        assert!(!seen.contains("the-code"), "{seen}");
        assert!(!seen.contains("attackers-device-code"), "{seen}");
    }

    /// Answers instance discovery with `aliases` and keeps the URLs asked; `None` never
    /// answers (a network that drops packets).
    struct InstanceDiscovery {
        aliases: Option<serde_json::Value>,
        asked: Mutex<Vec<Url>>,
    }

    #[async_trait]
    impl HttpClient for InstanceDiscovery {
        async fn execute(
            &self,
            request: HttpRequest,
        ) -> std::result::Result<HttpResponse, TransportError> {
            self.asked.lock().unwrap().push(request.url.clone());
            let Some(aliases) = &self.aliases else {
                return std::future::pending().await;
            };
            Ok(HttpResponse {
                status: 200,
                headers: vec![("content-type".into(), "application/json".into())],
                body: serde_json::json!({"metadata": [{"aliases": aliases}]})
                    .to_string()
                    .into_bytes(),
            })
        }
    }

    fn custom_host_app(authority: &str, http: Arc<InstanceDiscovery>) -> PublicClientApplication {
        PublicClientApplication::new(
            ClientConfig {
                client_id: OTHER_CLIENT.into(),
                authority: Authority::entra(authority).unwrap(),
                redirect_uri: Url::parse("http://localhost").unwrap(),
            },
            Deps {
                http,
                store: Arc::new(MemoryStore::new()),
                clock: Arc::new(FixedClock::new(NOW)),
                entropy: Arc::new(CountingEntropy::default()),
            },
        )
    }

    #[tokio::test]
    async fn aliases_of_a_custom_host_come_from_microsoft_and_never_name_its_clouds() {
        let answer = |aliases: serde_json::Value| {
            Arc::new(InstanceDiscovery {
                aliases: Some(aliases),
                asked: Mutex::new(Vec::new()),
            })
        };
        let http = answer(serde_json::json!([
            "login.contoso.example",
            "sts.contoso.example"
        ]));
        let app = custom_host_app("https://login.contoso.example/common", http.clone());
        assert_eq!(
            app.aliases().await,
            vec!["login.contoso.example", "sts.contoso.example"]
        );
        let asked = http.asked.lock().unwrap().clone();
        assert_eq!(asked.len(), 1);
        assert_eq!(
            asked[0].host_str(),
            Some(authority::INSTANCE_DISCOVERY_HOST)
        );

        let http = answer(serde_json::json!(["login.contoso.example", MICROSOFT]));
        let app = custom_host_app("https://login.contoso.example/common", http);
        assert_eq!(app.aliases().await, vec!["login.contoso.example"]);

        // A loopback host asks nobody.
        let http = answer(serde_json::json!(["127.0.0.1", MICROSOFT]));
        let app = custom_host_app("http://127.0.0.1:9/common", http.clone());
        assert_eq!(app.aliases().await, vec!["127.0.0.1"]);
        assert!(http.asked.lock().unwrap().is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn instance_discovery_that_never_answers_costs_its_timeout_at_most() {
        let http = Arc::new(InstanceDiscovery {
            aliases: None,
            asked: Mutex::new(Vec::new()),
        });
        let app = custom_host_app("https://login.contoso.example/common", http);
        let started = tokio::time::Instant::now();
        assert_eq!(app.aliases().await, vec!["login.contoso.example"]);
        assert!(started.elapsed() <= INSTANCE_DISCOVERY_TIMEOUT);
    }
}

/// The Microsoft account (consumer) tenant.
pub const MSA_TENANT: &str = "9188040d-6c67-4c5b-b112-36a304b66dad";

/// Whether an account entry of tenant `realm` can use an Entra authority of tenant
/// `authority`: `common` fits all, `organizations` work accounts, `consumers` the MSA
/// tenant, a tenant id that tenant. A domain name cannot be compared offline: it fits.
pub fn realm_fits(authority: &str, realm: &str) -> bool {
    let (a, r) = (authority.to_ascii_lowercase(), realm.to_ascii_lowercase());
    match a.as_str() {
        "common" | "" => true,
        "organizations" => r != MSA_TENANT,
        "consumers" => r == MSA_TENANT,
        _ if uuid_like(&a) => r == a || !uuid_like(&r),
        _ => true,
    }
}

fn uuid_like(s: &str) -> bool {
    s.len() == 36 && s.chars().all(|c| c.is_ascii_hexdigit() || c == '-')
}

#[cfg(test)]
mod realm_tests {
    use super::*;

    #[test]
    fn an_account_is_listed_only_under_authorities_it_can_use() {
        let contoso = "aaaaaaaa-0000-0000-0000-000000000001";
        let fabrikam = "bbbbbbbb-0000-0000-0000-000000000002";
        assert!(realm_fits("common", fabrikam) && realm_fits("common", MSA_TENANT));
        assert!(realm_fits("organizations", fabrikam));
        assert!(!realm_fits("organizations", MSA_TENANT));
        assert!(realm_fits("consumers", MSA_TENANT) && !realm_fits("consumers", contoso));
        assert!(realm_fits(contoso, contoso));
        assert!(!realm_fits(contoso, fabrikam) && !realm_fits(contoso, MSA_TENANT));
    }

    #[test]
    fn an_account_signed_in_through_common_belongs_to_its_home_tenant() {
        let contoso = "aaaaaaaa-0000-0000-0000-000000000001";
        let oid = "11111111-0000-0000-0000-000000000009";
        let carol = format!("{oid}.bbbbbbbb-0000-0000-0000-000000000002");
        assert_eq!(
            entry_tenant(&carol, "common"),
            "bbbbbbbb-0000-0000-0000-000000000002"
        );
        assert!(!realm_fits(contoso, entry_tenant(&carol, "common")));
        // A guest whose tokens were issued by Contoso's authority fits Contoso.
        assert!(realm_fits(contoso, entry_tenant(&carol, contoso)));
        let dave = format!("{oid}.{MSA_TENANT}");
        assert!(!realm_fits("organizations", entry_tenant(&dave, "common")));
        let account = |home: &str, username: &str| Account {
            home_account_id: home.into(),
            environment: "login.microsoftonline.com".into(),
            realm: "common".into(),
            local_account_id: oid.into(),
            username: username.into(),
            name: None,
            authority_type: "MSSTS".into(),
        };
        assert_eq!(
            account(&carol, "carol@fabrikam.example").tenant_label(),
            "fabrikam.example"
        );
        assert_eq!(
            account(&dave, "dave@outlook.example").tenant_label(),
            "personal Microsoft account"
        );
        assert_eq!(
            account(&carol, "carol").tenant_label(),
            "bbbbbbbb-0000-0000-0000-000000000002"
        );
        assert_eq!(account("opaque-id", "x").home_tenant(), "common");
    }
}
