//! What the webview receives: serializable views of accounts, tokens, profiles and events.
//!
//! Invariant: no view carries a token, code, verifier or secret. A token view has the
//! decoded header and claims (what anyone holding the token can read) and the token
//! response's metadata; the token itself stays in Rust (copying happens in Rust).

use serde::{Deserialize, Serialize};
use serde_json::Value;
use tessera_core::app::{Account, AuthResult, TokenSource};
use tessera_core::cache::AccountEntry;
use tessera_core::decode::{ClaimLine, DecodedToken, TokenKind};
use tessera_core::env::UnixTime;
use tessera_core::keystore::{StoreInfo, StoreProtection};
use tessera_core::profile::{Profile, SignInMethod};
use tessera_core::scopes::ScopeSet;

use crate::error::{AppError, AppResult};

/// The [`AccountRef::source`] of Tessera's own store.
pub const TESSERA_SOURCE: &str = "tessera";

fn tessera_source() -> String {
    TESSERA_SOURCE.to_string()
}

/// Identifies an account across commands: where it is stored (`tessera`, or the id of an
/// opened MSAL cache), the profile it was listed under and its home account id.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccountRef {
    #[serde(default = "tessera_source")]
    pub source: String,
    pub profile: String,
    pub home_account_id: String,
}

impl AccountRef {
    /// An account in Tessera's own store.
    pub fn tessera(profile: &str, home_account_id: &str) -> Self {
        AccountRef {
            source: tessera_source(),
            profile: profile.to_string(),
            home_account_id: home_account_id.to_string(),
        }
    }

    /// The list's key for the account: `profile|home_account_id` in Tessera's store,
    /// `source|profile|home_account_id` in an MSAL cache.
    pub fn id(&self) -> String {
        if self.source == TESSERA_SOURCE {
            format!("{}|{}", self.profile, self.home_account_id)
        } else {
            format!("{}|{}|{}", self.source, self.profile, self.home_account_id)
        }
    }
}

/// What the list knows about an account's token without asking the provider.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct TokenStateView {
    /// Expiry of the freshest cached access token for the profile's default scopes.
    pub expires_on: Option<UnixTime>,
    /// Whether a refresh token is cached (a new access token can be had silently).
    pub has_refresh_token: bool,
    /// Set when the last silent attempt said the user must sign in again (the reason).
    pub needs_sign_in: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AccountView {
    /// `profile|home_account_id` (`source|profile|home_account_id` in an MSAL cache).
    pub id: String,
    /// `tessera` or the id of the MSAL cache the account is in.
    pub source: String,
    /// The list's group: `None` for Tessera's store, else the MSAL cache's label.
    pub group: Option<String>,
    pub profile: String,
    pub home_account_id: String,
    pub username: String,
    pub name: Option<String>,
    /// The account's own (home) tenant id.
    pub tenant_id: String,
    /// That tenant for people: the domain of the username, "personal Microsoft account",
    /// else the id.
    pub tenant: String,
    /// The provider's host (`login.microsoftonline.com`, `127.0.0.1:8479`).
    pub environment: String,
    /// "Sandbox · 127.0.0.1" style label for the list.
    pub provider: String,
    /// MSSTS (Entra), ADFS or Generic.
    pub authority_type: String,
    pub token: TokenStateView,
}

impl AccountView {
    pub fn new(profile: &Profile, account: &Account, token: TokenStateView) -> Self {
        Self::in_source(TESSERA_SOURCE, None, profile, account, token)
    }

    /// An account of `source` (`tessera` or an MSAL cache's id, listed under `group`).
    pub fn in_source(
        source: &str,
        group: Option<&str>,
        profile: &Profile,
        account: &Account,
        token: TokenStateView,
    ) -> Self {
        let r = AccountRef {
            source: source.to_string(),
            profile: profile.name.clone(),
            home_account_id: account.home_account_id.clone(),
        };
        AccountView {
            id: r.id(),
            source: source.to_string(),
            group: group.map(str::to_string),
            profile: profile.name.clone(),
            home_account_id: account.home_account_id.clone(),
            username: account.username.clone(),
            name: account.name.clone().filter(|n| !n.trim().is_empty()),
            tenant_id: account.home_tenant().to_string(),
            tenant: account.tenant_label(),
            environment: account.environment.clone(),
            provider: format!("{} · {}", profile.name, account.environment),
            authority_type: account.authority_type.clone(),
            token,
        }
    }
}

impl AccountView {
    /// An account of an MSAL cache that no profile matches (its provider and the app that
    /// signed it in): listed, with `profile` empty; its tokens need a matching profile.
    pub fn unmatched(source: &str, group: Option<&str>, entry: &AccountEntry) -> Self {
        let provider = format!("No matching profile · {}", entry.environment);
        Self::unlisted(source, group, entry, provider)
    }

    /// An account no profile lists, with `provider` saying where it signed in and the app.
    pub fn unlisted(
        source: &str,
        group: Option<&str>,
        entry: &AccountEntry,
        provider: String,
    ) -> Self {
        let r = AccountRef {
            source: source.to_string(),
            profile: String::new(),
            home_account_id: entry.home_account_id.clone(),
        };
        AccountView {
            id: r.id(),
            source: source.to_string(),
            group: group.map(str::to_string),
            profile: String::new(),
            home_account_id: entry.home_account_id.clone(),
            username: entry.username.clone(),
            name: entry.name.clone().filter(|n| !n.trim().is_empty()),
            tenant_id: tessera_core::app::home_tenant(&entry.home_account_id, &entry.realm)
                .to_string(),
            tenant: tessera_core::app::tenant_label(
                &entry.home_account_id,
                &entry.realm,
                &entry.username,
            ),
            environment: entry.environment.clone(),
            provider,
            authority_type: entry.authority_type.clone(),
            token: TokenStateView::default(),
        }
    }
}

/// One header field or claim.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ClaimView {
    pub name: String,
    /// The value as in the token (JSON).
    pub value: Value,
    /// The value for people (lists joined, UTC dates for times).
    pub display: String,
    pub meaning: Option<String>,
    /// For time claims (`exp`, `nbf`, `iat`, `auth_time`): the Unix time, so the UI can
    /// show local time, UTC and a live countdown.
    pub time: Option<UnixTime>,
}

const TIME_CLAIMS: &[&str] = &["exp", "nbf", "iat", "auth_time", "xms_tcdt", "updated_at"];

impl ClaimView {
    fn from_line(line: &ClaimLine, times: bool) -> Self {
        let time = if times && TIME_CLAIMS.contains(&line.name.as_str()) {
            match &line.value {
                Value::Number(n) => n
                    .as_i64()
                    .or_else(|| n.as_f64().filter(|f| f.is_finite()).map(|f| f as i64)),
                _ => None,
            }
        } else {
            None
        };
        ClaimView {
            name: line.name.clone(),
            value: line.value.clone(),
            display: line.display.clone(),
            meaning: line.meaning.clone(),
            time,
        }
    }
}

/// A decoded access token.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DecodedView {
    pub kind: TokenKind,
    pub header: Vec<ClaimView>,
    pub claims: Vec<ClaimView>,
    /// `scp`, split on spaces.
    pub scp: Vec<String>,
    /// `roles`.
    pub roles: Vec<String>,
    /// The token's own `exp`, when it has one.
    pub expires_on: Option<UnixTime>,
    pub error: Option<String>,
    pub notes: Vec<String>,
}

impl From<&DecodedToken> for DecodedView {
    fn from(d: &DecodedToken) -> Self {
        let scp = match d.claim("scp") {
            Some(Value::String(s)) => s.split_whitespace().map(str::to_string).collect(),
            Some(Value::Array(a)) => a
                .iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect(),
            _ => Vec::new(),
        };
        let roles = match d.claim("roles") {
            Some(Value::Array(a)) => a
                .iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect(),
            Some(Value::String(s)) => vec![s.clone()],
            _ => Vec::new(),
        };
        DecodedView {
            kind: d.kind,
            header: d
                .header_explained
                .iter()
                .map(|l| ClaimView::from_line(l, false))
                .collect(),
            claims: d
                .explained
                .iter()
                .map(|l| ClaimView::from_line(l, true))
                .collect(),
            scp,
            roles,
            expires_on: d.expires_on,
            error: d.error.clone(),
            notes: d.notes.clone(),
        }
    }
}

/// The selected account's access token, decoded, with the token response's metadata.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TokenView {
    pub account: AccountView,
    /// What was asked for (without openid, profile, offline_access).
    pub requested_scopes: Vec<String>,
    /// What the token was granted for.
    pub scopes: Vec<String>,
    pub token_type: String,
    pub expires_on: UnixTime,
    pub refresh_on: Option<UnixTime>,
    pub source: TokenSource,
    pub decoded: DecodedView,
}

impl TokenView {
    pub fn new(
        account: AccountView,
        requested: &ScopeSet,
        result: &AuthResult,
        decoded: &DecodedToken,
    ) -> Self {
        TokenView {
            account,
            requested_scopes: requested.without_reserved().to_vec(),
            scopes: result.scopes.without_reserved().to_vec(),
            token_type: result.token_type.clone(),
            expires_on: result.expires_on,
            refresh_on: result.refresh_on,
            source: result.token_source,
            decoded: DecodedView::from(decoded),
        }
    }
}

/// The answer to a copy: what was copied (never the token) and when the clipboard clears.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CopyView {
    pub account: AccountView,
    pub format: CopyFormat,
    pub expires_on: UnixTime,
    /// 0 when the clipboard is not cleared automatically.
    pub clear_after_secs: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ProfileView {
    pub name: String,
    pub kind: ProfileKind,
    /// The authority or issuer URL.
    pub authority: String,
    pub client_id: String,
    pub redirect_uri: String,
    pub default_scopes: Vec<String>,
    /// `embedded`, `browser` or `device-code`.
    pub sign_in: SignInMethod,
    pub instance_discovery: bool,
    pub builtin: bool,
}

impl From<&Profile> for ProfileView {
    fn from(p: &Profile) -> Self {
        ProfileView {
            name: p.name.clone(),
            kind: if p.kind() == "oidc" {
                ProfileKind::Oidc
            } else {
                ProfileKind::Entra
            },
            authority: p.target().to_string(),
            client_id: p.client_id.clone(),
            redirect_uri: p.redirect_uri.clone(),
            default_scopes: p.scopes.clone(),
            sign_in: p.sign_in,
            instance_discovery: p.instance_discovery,
            builtin: p.builtin,
        }
    }
}

/// A profile as the edit form sends it.
#[derive(Debug, Clone, Deserialize)]
pub struct ProfileInput {
    pub name: String,
    #[serde(default)]
    pub kind: ProfileKind,
    pub authority: String,
    pub client_id: String,
    #[serde(default)]
    pub redirect_uri: Option<String>,
    /// Space-separated.
    #[serde(default)]
    pub default_scopes: String,
    #[serde(default)]
    pub sign_in: SignInMethod,
    #[serde(default)]
    pub instance_discovery: Option<bool>,
}

/// Returned by `sign_in`: the sign-in runs on; `signin:finished` tells how it ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SignInStarted {
    /// `embedded` or `browser`.
    pub method: SignInMethod,
    pub message: String,
}

/// Returned by `start_device_code`. The user code is not a secret (the user types it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DeviceCodeView {
    pub user_code: String,
    pub verification_uri: String,
    pub verification_uri_complete: Option<String>,
    pub message: String,
    pub expires_on: UnixTime,
}

/// Payload of the `signin:finished` event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SignInOutcome {
    pub status: SignInStatus,
    pub account: Option<AccountView>,
    pub message: Option<String>,
}

/// Payload of the `signin:progress` event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SignInProgress {
    pub stage: SignInStage,
    pub message: String,
}

/// Payload of the `signin:origin` event: where the page now shown in the sign-in window
/// comes from (host and port only, never a path or query), sent each time a page commits.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SignInOrigin {
    /// `🔒 host[:port]` for https, `⚠ host[:port] (not encrypted)` for http.
    pub label: String,
    /// Whether the page came over TLS (https).
    pub secure: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SignOutView {
    pub accounts: usize,
    /// Cache entries removed.
    pub removed: usize,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AppInfo {
    pub version: String,
    /// True while the token store is being opened (waiting on the keyring): the other
    /// fields are empty then, and `store:opened` follows.
    pub opening: bool,
    pub home: String,
    pub store: String,
    /// How the store keeps its secrets (`None` when unknown: a store handed in whole).
    pub protection: Option<StoreProtectionView>,
}

/// The store's protection, from `Tessera::store_info()`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StoreProtectionView {
    /// `encrypted` or `plaintext`.
    pub protection: StoreProtection,
    /// For people: "Encrypted (AES-256-GCM, key in the OS keyring (Secret Service))".
    pub label: String,
    pub path: String,
    pub key_location: Option<String>,
}

impl From<&StoreInfo> for StoreProtectionView {
    fn from(info: &StoreInfo) -> Self {
        let label = match info.protection {
            StoreProtection::Encrypted => format!(
                "Encrypted (AES-256-GCM, key in the {})",
                info.key_location.as_deref().unwrap_or("OS keyring")
            ),
            StoreProtection::Plaintext => {
                "Not encrypted (plaintext; the file's permissions are its only protection)"
                    .to_string()
            }
        };
        StoreProtectionView {
            protection: info.protection,
            label,
            path: info.path.display().to_string(),
            key_location: info.key_location.clone(),
        }
    }
}

/// An opened MSAL cache file (its accounts are listed as a group of their own).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MsalCacheView {
    /// The `source` of its accounts.
    pub id: String,
    pub label: String,
    pub path: String,
    /// Why it could not be opened at start-up (it stays remembered until closed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

// ------------------------------------------------------------------ names shared with ui/js/ipc.js
// (`tests/ipc_names.rs` checks that the page uses the same ones.)

pub const EVENT_SIGNIN_FINISHED: &str = "signin:finished";
pub const EVENT_SIGNIN_PROGRESS: &str = "signin:progress";
pub const EVENT_SIGNIN_ORIGIN: &str = "signin:origin";
pub const EVENT_CLIPBOARD_CLEARED: &str = "clipboard:cleared";
pub const EVENT_ACCOUNTS_CHANGED: &str = "accounts:changed";
/// The token store is open (or failed to open) after start-up.
pub const EVENT_STORE_OPENED: &str = "store:opened";
/// A program asks for a token and the user must answer ([`AgentAskView`]).
pub const EVENT_AGENT_ASK: &str = "agent:ask";
/// A question is answered or timed out: the window closes it (payload: its id).
pub const EVENT_AGENT_ASK_CLOSED: &str = "agent:ask-closed";
/// The agent answered a request (the Activity list reloads).
pub const EVENT_AGENT_ACTIVITY: &str = "agent:activity";

/// What `copy_token` puts on the clipboard.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CopyFormat {
    /// The access token alone.
    Raw,
    /// An `Authorization: Bearer ...` header line.
    Header,
}

/// How a sign-in ended (`signin:finished`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SignInStatus {
    Added,
    Cancelled,
    Failed,
}

/// Where a sign-in is (`signin:progress`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SignInStage {
    /// The sign-in window or the browser was opened.
    Opened,
    /// The sign-in window finished loading a page.
    Page,
    /// The code is being redeemed.
    Finishing,
}

/// A profile's kind: an Entra(-like) authority or a generic OpenID Connect issuer.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProfileKind {
    #[default]
    Entra,
    Oidc,
}

/// A tool of the "Use with tools" panel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ToolKind {
    Kubectl,
    Git,
    Run,
}

/// The "Use with tools" panel: the command lines that give kubectl, git and the Azure SDKs
/// this account's tokens through `tessera-cli` (they hold no secret).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ToolLinesView {
    pub kubectl: String,
    pub git: String,
    pub run: String,
}

impl From<tessera_core::tools::ToolLines> for ToolLinesView {
    fn from(l: tessera_core::tools::ToolLines) -> Self {
        ToolLinesView {
            kubectl: l.kubectl,
            git: l.git,
            run: l.run,
        }
    }
}

// ------------------------------------------------------------------ settings

/// User settings of the desktop app (`app-settings.json` next to `profiles.toml`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Settings {
    /// Clear the clipboard this long after copying a token, if it still holds it (0: never).
    pub clipboard_clear_secs: u64,
    /// How long the agent's question (sign in, or hand out a token) waits for an answer
    /// before it counts as denied.
    pub agent_prompt_secs: u64,
    /// The accounts (home account ids) whose tokens go to a program only after the user
    /// agreed, once per program per session.
    pub confirm_accounts: Vec<String>,
    /// Keep running in the tray when the main window is closed, so tools keep getting
    /// tokens. `None`: yes once a program has got a token from the app.
    pub background: Option<bool>,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            clipboard_clear_secs: 30,
            agent_prompt_secs: 120,
            confirm_accounts: Vec::new(),
            background: None,
        }
    }
}

pub const MAX_CLIPBOARD_CLEAR_SECS: u64 = 3600;
pub const MAX_AGENT_PROMPT_SECS: u64 = 3600;

impl Settings {
    pub fn validate(&self) -> AppResult<()> {
        if self.clipboard_clear_secs > MAX_CLIPBOARD_CLEAR_SECS {
            return Err(AppError::Invalid(format!(
                "The clipboard can be cleared after at most {MAX_CLIPBOARD_CLEAR_SECS} seconds (0 turns clearing off)."
            )));
        }
        if !(10..=MAX_AGENT_PROMPT_SECS).contains(&self.agent_prompt_secs) {
            return Err(AppError::Invalid(format!(
                "A program's question waits between 10 and {MAX_AGENT_PROMPT_SECS} seconds for an answer."
            )));
        }
        Ok(())
    }
}

/// The settings and where Tessera keeps its files.
#[derive(Debug, Clone, Serialize)]
pub struct SettingsView {
    #[serde(flatten)]
    pub settings: Settings,
    pub home: Option<String>,
    /// Whether closing the window keeps the app running now (the `background` setting,
    /// or its default).
    pub runs_in_background: bool,
}

/// The opened MSAL caches, and the file the "open" dialog proposes.
#[derive(Debug, Clone, Serialize)]
pub struct MsalCachesView {
    /// Azure CLI's cache file (`~/.azure/msal_token_cache.json`), the dialog's default.
    pub default_path: Option<String>,
    pub caches: Vec<MsalCacheView>,
}

// ------------------------------------------------------------------ agent

/// What the agent asks (`agent:ask`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AgentAskKind {
    /// The account must sign in first.
    SignIn,
    /// The account asks before its token goes to a program.
    Confirm,
}

/// The user's answer to an `agent:ask` (`agent_answer`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AgentAnswer {
    /// Sign in (for `sign_in`) or hand the token out (for `confirm`).
    Allow,
    Deny,
}

/// Payload of `agent:ask`: who asks for which account's token. No secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AgentAskView {
    pub id: u64,
    pub kind: AgentAskKind,
    /// The requesting program's command line (as `/proc` shows it).
    pub program: String,
    pub pid: u32,
    pub account: String,
    pub profile: String,
    pub scopes: Vec<String>,
    pub reason: Option<String>,
    /// Seconds until it counts as denied.
    pub timeout_secs: u64,
}

/// How a request to the agent ended (`Outcome` of tessera-core's activity).
pub use tessera_core::agent::activity::Outcome as ActivityOutcome;

/// One line of the Activity list: the core's record as it is (it holds no token).
pub use tessera_core::agent::activity::Activity as ActivityView;

/// Whether the app serves tools as the agent, and where.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AgentStatusView {
    pub serving: bool,
    pub socket: Option<String>,
    /// Why not, when it does not.
    pub message: Option<String>,
}
