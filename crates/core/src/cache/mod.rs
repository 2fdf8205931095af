//! MSAL's unified token cache model: the entity kinds, fields and key format of MSAL
//! Python's `SerializableTokenCache`, so that MSAL cache files can be read and written
//! without loss. [`TokenStore`] is the seam between the flows and a storage backend.
//!
//! Invariants:
//! - Keys are built only by the `*_key` functions here (MSAL's format, lower-cased).
//! - Every entity keeps the fields it does not know in `extra`, and writes them back.
//! - Secrets stay in their secret types until a backend seals them.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::env::UnixTime;
use crate::error::StoreError;
use crate::scopes::ScopeSet;
use crate::secret::{AccessToken, IdTokenString, RefreshToken};

pub mod cipher;
pub mod sqlite;

/// MSAL's `credential_type` values.
pub const ACCESS_TOKEN: &str = "AccessToken";
pub const REFRESH_TOKEN: &str = "RefreshToken";
pub const ID_TOKEN: &str = "IdToken";

#[derive(Debug, Clone)]
pub struct AccessTokenEntry {
    pub home_account_id: String,
    pub environment: String,
    pub client_id: String,
    pub realm: String,
    /// Space-separated scopes, as MSAL stores them.
    pub target: String,
    pub secret: AccessToken,
    pub token_type: String,
    pub cached_at: UnixTime,
    pub expires_on: UnixTime,
    pub extended_expires_on: Option<UnixTime>,
    /// When to refresh proactively (from the response's `refresh_in`).
    pub refresh_on: Option<UnixTime>,
    pub extra: Map<String, Value>,
}

#[derive(Debug, Clone)]
pub struct RefreshTokenEntry {
    pub home_account_id: String,
    pub environment: String,
    pub client_id: String,
    pub target: String,
    pub secret: RefreshToken,
    /// Entra's family of client ids ("1") when the token is a family refresh token.
    pub family_id: Option<String>,
    pub last_modification_time: Option<UnixTime>,
    pub extra: Map<String, Value>,
}

#[derive(Debug, Clone)]
pub struct IdTokenEntry {
    pub home_account_id: String,
    pub environment: String,
    pub realm: String,
    pub client_id: String,
    pub secret: IdTokenString,
    pub extra: Map<String, Value>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AccountEntry {
    pub home_account_id: String,
    pub environment: String,
    pub realm: String,
    pub local_account_id: String,
    pub username: String,
    /// "MSSTS" for Entra, "ADFS", or "Generic" for other OpenID providers.
    pub authority_type: String,
    /// The grant that created the account (`authorization_code`, `device_code`, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account_source: Option<String>,
    /// Display name from the ID token (MSAL keeps it in the IdToken; we keep a copy).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AppMetadataEntry {
    pub client_id: String,
    pub environment: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub family_id: Option<String>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

fn join_key(parts: &[&str]) -> String {
    parts.join("-").to_lowercase()
}

pub fn access_token_key(e: &AccessTokenEntry) -> String {
    join_key(&[&e.home_account_id, &e.environment, ACCESS_TOKEN, &e.client_id, &e.realm, &e.target])
}

pub fn refresh_token_key(e: &RefreshTokenEntry) -> String {
    // MSAL Python builds the RT key without realm and without target.
    join_key(&[&e.home_account_id, &e.environment, REFRESH_TOKEN, &e.client_id, "", ""])
}

pub fn id_token_key(e: &IdTokenEntry) -> String {
    join_key(&[&e.home_account_id, &e.environment, ID_TOKEN, &e.client_id, &e.realm, ""])
}

pub fn account_key(e: &AccountEntry) -> String {
    join_key(&[&e.home_account_id, &e.environment, &e.realm])
}

pub fn app_metadata_key(e: &AppMetadataEntry) -> String {
    format!("appmetadata-{}-{}", e.environment, e.client_id)
}

/// Which credentials of one account a lookup wants. `environments` lists the host and
/// its aliases (an account signed in through `login.windows.net` matches
/// `login.microsoftonline.com`).
#[derive(Debug, Clone)]
pub struct CredentialQuery<'a> {
    pub home_account_id: &'a str,
    pub environments: &'a [String],
    pub client_id: &'a str,
    /// `None` matches any realm (refresh tokens have none).
    pub realm: Option<&'a str>,
}

/// Everything one token response changes, written in one transaction.
#[derive(Debug, Clone, Default)]
pub struct TokenWrite {
    /// Replaces the cached access tokens of the same account, environment, client and
    /// realm whose scopes intersect this one's (MSAL's rule), then is inserted.
    pub access_token: Option<AccessTokenEntry>,
    pub refresh_token: Option<RefreshTokenEntry>,
    pub id_token: Option<IdTokenEntry>,
    pub account: Option<AccountEntry>,
    pub app_metadata: Option<AppMetadataEntry>,
    /// A refresh token that was just redeemed and rotated: its secret is replaced by the
    /// new one (MSAL's `update_rt`), so that a family token used by another client is
    /// rotated too.
    pub rotated_refresh_token: Option<(String, RefreshToken)>,
}

/// A storage backend for the unified cache. Implementations are safe to share between
/// threads and processes; each method is atomic.
pub trait TokenStore: Send + Sync {
    /// A short description for `status` ("SQLite at ~/.local/share/tessera/store.db, encrypted").
    fn describe(&self) -> String;

    fn accounts(&self) -> Result<Vec<AccountEntry>, StoreError>;

    /// Access tokens of one account for one client (any target); the caller picks by scope.
    fn access_tokens(&self, q: &CredentialQuery<'_>) -> Result<Vec<AccessTokenEntry>, StoreError>;

    /// Refresh tokens of one account: the client's own, and any with `family_id` set
    /// when `family_id` is given.
    fn refresh_tokens(
        &self,
        q: &CredentialQuery<'_>,
        family_id: Option<&str>,
    ) -> Result<Vec<RefreshTokenEntry>, StoreError>;

    fn id_token(&self, q: &CredentialQuery<'_>) -> Result<Option<IdTokenEntry>, StoreError>;

    fn app_metadata(&self, environments: &[String], client_id: &str) -> Result<Option<AppMetadataEntry>, StoreError>;

    fn write(&self, w: TokenWrite) -> Result<(), StoreError>;

    /// MSAL's `remove_account`: the account's access, refresh and ID tokens (for every
    /// client) and its Account entries, in the given environments. Returns how many
    /// entries were removed.
    fn remove_account(&self, home_account_id: &str, environments: &[String]) -> Result<usize, StoreError>;
}

/// Does this cached target contain every requested scope? (case-insensitive, as MSAL)
pub fn target_covers(target: &str, requested: &ScopeSet) -> bool {
    let have = ScopeSet::parse(target);
    requested.is_subset_of(&have)
}
