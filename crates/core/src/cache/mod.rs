//! MSAL's unified token cache model: the entity kinds, fields and key format of MSAL
//! Python's `SerializableTokenCache`, so that MSAL cache files can be read and written
//! without loss. [`TokenStore`] is the seam between the flows and a storage backend.
//!
//! Invariants:
//! - Keys are built only by the `*_key` functions here (MSAL's format, lower-cased).
//! - Every entity keeps the fields it does not know in `extra`, and writes them back.
//! - Secrets stay in their secret types until a backend seals them ([`cipher`]).
//!
//! # What MSAL Python does (checked against msal 1.39.0, `msal/token_cache.py`)
//! - Keys are `-`-joined and lower-cased: AccessToken
//!   `home_account_id-environment-accesstoken-client_id-realm-target` (with an
//!   `ext_cache_key`: `atext` instead of `accesstoken` and `-ext_cache_key` appended);
//!   RefreshToken `home_account_id-environment-refreshtoken-client_id--target` (no realm,
//!   but the target *is* part of the key, so one account can have several RTs per client);
//!   IdToken `home_account_id-environment-idtoken-client_id-realm-`; Account
//!   `home_account_id-environment-realm`; AppMetadata `appmetadata-environment-client_id`
//!   (not lower-cased).
//! - `target` is the response's `scope` (else the requested scopes) sorted by code point
//!   and joined with one space ([`msal_target`]). Times (`cached_at`, `expires_on`,
//!   `extended_expires_on`, `refresh_on`, `last_modification_time`) are decimal strings.
//!   `home_account_id` is `uid.utid` from `client_info` (ADFS: the ID token's `sub`).
//! - `family_id` ("1") is written on the RT and the AppMetadata when the response has
//!   `foci`. `account_source` is the grant type for authorization code, password, device
//!   code, user FIC and broker. `authority_type` is "ADFS" when the realm is `adfs`, else
//!   "MSSTS". The AT also keeps the request's `key_id`.
//! - `add()` writes AT, Account, IdToken, RT, AppMetadata, each replacing the whole entry
//!   with the same key. Only the AT with the *same key* (same sorted target) is replaced;
//!   expired ATs (`expires_on < now`) are deleted lazily by any AT search.
//! - A refresh grant does not `add()` the new RT: `update_rt()` puts the new secret and
//!   `last_modification_time` into the redeemed entry (possibly another family client's).
//!   On refresh no Account is written (to honour a concurrent `remove_account`).
//!   Candidate RTs are tried newest `last_modification_time` first.
//! - `remove_account` (`_forget_me`) removes, for the home account id in one environment:
//!   the RTs of this client and of its family, ATs of every client, ID tokens and
//!   Accounts of every realm. App metadata stays.
//! - `serialize()` is `json.dumps(cache, indent=4)`: top level `AccessToken`,
//!   `RefreshToken`, `IdToken`, `Account`, `AppMetadata` (insertion order), each a map
//!   from key to entry; non-ASCII escaped as `\uXXXX`; no trailing newline.
//!
//! # What the stores here do
//! The same keys, fields and JSON, plus: a new AT also replaces the cached ATs of the
//! same account, environment, client and realm whose scopes (other than `openid`,
//! `profile`, `offline_access`) intersect its own (MSAL .NET / Java / Node's rule; MSAL
//! Python keeps them until they expire), and expired ATs are purged on each AT write.
//! `remove_account` removes the account's RTs of every client. A rotated RT that is gone
//! (removed concurrently) stays gone, where MSAL Python would re-create it. Every
//! `write` is one atomic transaction, shared safely between processes ([`sqlite`]).

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::env::UnixTime;
use crate::error::StoreError;
use crate::scopes::ScopeSet;
use crate::secret::{AccessToken, IdTokenString, RefreshToken};

pub mod cipher;
pub mod memory;
pub mod msal_file;
pub mod msal_json;
pub mod sqlite;
pub mod transfer;

pub use cipher::{AesGcmCipher, Cipher, PlaintextCipher, StoreKey};
pub use memory::MemoryStore;
pub use msal_json::MsalCacheDocument;
pub use sqlite::SqliteStore;

/// MSAL's `credential_type` values.
pub const ACCESS_TOKEN: &str = "AccessToken";
pub const REFRESH_TOKEN: &str = "RefreshToken";
pub const ID_TOKEN: &str = "IdToken";
/// The credential type MSAL Python puts in the key of an AT that has an `ext_cache_key`.
pub const ACCESS_TOKEN_EXTENDED: &str = "atext";

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
    match ext_cache_key(e) {
        Some(ext) => join_key(&[
            &e.home_account_id,
            &e.environment,
            ACCESS_TOKEN_EXTENDED,
            &e.client_id,
            &e.realm,
            &e.target,
            ext,
        ]),
        None => join_key(&[
            &e.home_account_id,
            &e.environment,
            ACCESS_TOKEN,
            &e.client_id,
            &e.realm,
            &e.target,
        ]),
    }
}

pub fn refresh_token_key(e: &RefreshTokenEntry) -> String {
    // MSAL Python builds the RT key without realm ("RT is cross-tenant") but with target.
    join_key(&[
        &e.home_account_id,
        &e.environment,
        REFRESH_TOKEN,
        &e.client_id,
        "",
        &e.target,
    ])
}

pub fn id_token_key(e: &IdTokenEntry) -> String {
    join_key(&[
        &e.home_account_id,
        &e.environment,
        ID_TOKEN,
        &e.client_id,
        &e.realm,
        "",
    ])
}

pub fn account_key(e: &AccountEntry) -> String {
    join_key(&[&e.home_account_id, &e.environment, &e.realm])
}

pub fn app_metadata_key(e: &AppMetadataEntry) -> String {
    format!("appmetadata-{}-{}", e.environment, e.client_id)
}

/// MSAL's `ext_cache_key` of an access token (kept in `extra`): set when the token was
/// requested with extra body parameters; such a token is found only by a lookup that
/// names the same key, so [`TokenStore::access_tokens`] never returns it.
pub fn ext_cache_key(e: &AccessTokenEntry) -> Option<&str> {
    e.extra
        .get("ext_cache_key")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
}

/// MSAL's `target`: the scopes (the response's `scope` split on whitespace, else the
/// requested ones) sorted by code point and joined with one space, as MSAL Python's
/// `' '.join(sorted(scope))`. `msal_target("User.Read profile openid email".split_whitespace())`
/// is `"User.Read email openid profile"`.
pub fn msal_target<'a>(scopes: impl IntoIterator<Item = &'a str>) -> String {
    let mut v: Vec<&str> = scopes.into_iter().filter(|s| !s.is_empty()).collect();
    v.sort_unstable();
    v.join(" ")
}

/// Which credentials of one account a lookup wants. `environments` lists the host and
/// its aliases (an account signed in through `login.windows.net` matches
/// `login.microsoftonline.com`). Environments compare case-insensitively, the other
/// fields exactly (as MSAL's `search`).
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
    /// Replaces the cached access token with the same key (MSAL Python) and those of the
    /// same account, environment, client and realm whose scopes other than `openid`,
    /// `profile` and `offline_access` intersect this one's (MSAL .NET's rule), then is
    /// inserted. Writing an access token also purges every expired one (`expires_on` <
    /// the store's clock), as MSAL's searches do.
    pub access_token: Option<AccessTokenEntry>,
    pub refresh_token: Option<RefreshTokenEntry>,
    pub id_token: Option<IdTokenEntry>,
    pub account: Option<AccountEntry>,
    pub app_metadata: Option<AppMetadataEntry>,
    /// A refresh token that was just redeemed and rotated: (its key, the new secret). Its
    /// secret is replaced and `last_modification_time` set to now (MSAL's `update_rt`),
    /// so that a family token used by another client is rotated too. Applied after
    /// `refresh_token`; nothing happens if the entry is gone (removed concurrently).
    pub rotated_refresh_token: Option<(String, RefreshToken)>,
}

/// A storage backend for the unified cache. Implementations are safe to share between
/// threads and processes; each method is atomic.
pub trait TokenStore: Send + Sync {
    /// A short description for `status` ("SQLite at ~/.local/share/tessera/store.db, encrypted").
    fn describe(&self) -> String;

    /// Every account entry (all environments and realms), ordered by key.
    fn accounts(&self) -> Result<Vec<AccountEntry>, StoreError>;

    /// Access tokens of one account for one client (any target; expired ones too, and
    /// none with an `ext_cache_key`), ordered by key; the caller picks by scope.
    fn access_tokens(&self, q: &CredentialQuery<'_>) -> Result<Vec<AccessTokenEntry>, StoreError>;

    /// Refresh tokens of one account: the client's own, and any with this `family_id`
    /// when `family_id` is given. Newest `last_modification_time` first (MSAL tries them
    /// in that order), then by key.
    fn refresh_tokens(
        &self,
        q: &CredentialQuery<'_>,
        family_id: Option<&str>,
    ) -> Result<Vec<RefreshTokenEntry>, StoreError>;

    /// The ID token of one account for one client; with several matches, the one whose
    /// environment comes first in `q.environments`, then the smallest key.
    fn id_token(&self, q: &CredentialQuery<'_>) -> Result<Option<IdTokenEntry>, StoreError>;

    /// The app metadata of a client; the environment that comes first wins.
    fn app_metadata(
        &self,
        environments: &[String],
        client_id: &str,
    ) -> Result<Option<AppMetadataEntry>, StoreError>;

    fn write(&self, w: TokenWrite) -> Result<(), StoreError>;

    /// MSAL's `remove_account`: the account's access, refresh and ID tokens (for every
    /// client) and its Account entries, in the given environments. Returns how many
    /// entries were removed.
    fn remove_account(
        &self,
        home_account_id: &str,
        environments: &[String],
    ) -> Result<usize, StoreError>;
}

/// Environments compare case-insensitively (MSAL lower-cases them).
pub(crate) fn env_rank(environment: &str, environments: &[String]) -> Option<usize> {
    environments
        .iter()
        .position(|e| e.eq_ignore_ascii_case(environment))
}

/// Does the new access token `new` replace the cached `old`? Same key (MSAL Python), or
/// same account, environment, client, realm and `ext_cache_key` with intersecting
/// scopes other than the reserved OpenID Connect ones (MSAL .NET).
pub(crate) fn at_replaces(new: &AccessTokenEntry, old: &AccessTokenEntry) -> bool {
    if access_token_key(new) == access_token_key(old) {
        return true;
    }
    old.home_account_id == new.home_account_id
        && old.environment.eq_ignore_ascii_case(&new.environment)
        && old.client_id == new.client_id
        && old.realm == new.realm
        && ext_cache_key(old) == ext_cache_key(new)
        && ScopeSet::parse(&old.target)
            .without_reserved()
            .intersects(&ScopeSet::parse(&new.target).without_reserved())
}

/// Does this cached target contain every requested scope? (case-insensitive, as MSAL)
pub fn target_covers(target: &str, requested: &ScopeSet) -> bool {
    let have = ScopeSet::parse(target);
    requested.is_subset_of(&have)
}
