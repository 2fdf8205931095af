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

use std::collections::HashSet;

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

/// Which of `accounts` (entries in `environments`) hold, in one of `environments`, a
/// refresh token of `client_id` (or of the family `family_id`) or an ID token of
/// `client_id`: [`TokenStore::credential_holders`] asked per account. For a few accounts
/// (one looked up by name) this is what any store does; for all of them, stores with an
/// index answer from it instead.
pub fn credential_holders_among<S: TokenStore + ?Sized>(
    store: &S,
    accounts: &[AccountEntry],
    environments: &[String],
    client_id: &str,
    family_id: Option<&str>,
) -> Result<HashSet<String>, StoreError> {
    let mut holders = HashSet::new();
    let mut asked = HashSet::new();
    for a in accounts {
        if env_rank(&a.environment, environments).is_none() || !asked.insert(&a.home_account_id) {
            continue;
        }
        let q = CredentialQuery {
            home_account_id: &a.home_account_id,
            environments,
            client_id,
            realm: None,
        };
        if store.holds_credentials(&q, family_id)? {
            holders.insert(a.home_account_id.clone());
        }
    }
    Ok(holders)
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

    /// The access token `acquire_token_silent` serves: among [`Self::access_tokens`]`(q)`,
    /// those whose target covers `scopes` ([`target_covers`]) and that expire after
    /// `valid_after`, the one that expires last (of several, the last by key). Stores
    /// with an index override it to open the secret of that one token only.
    fn find_access_token(
        &self,
        q: &CredentialQuery<'_>,
        scopes: &ScopeSet,
        valid_after: UnixTime,
    ) -> Result<Option<AccessTokenEntry>, StoreError> {
        Ok(self
            .access_tokens(q)?
            .into_iter()
            .filter(|at| at.expires_on > valid_after && target_covers(&at.target, scopes))
            .max_by_key(|at| at.expires_on))
    }

    /// The home account ids of the accounts (Account entries) in `environments` that hold,
    /// in one of `environments`, a refresh token of `client_id` (or of the family
    /// `family_id`) or an ID token of `client_id`: the accounts `get_accounts` lists.
    /// Stores with an index override it to answer without opening any secret.
    fn credential_holders(
        &self,
        environments: &[String],
        client_id: &str,
        family_id: Option<&str>,
    ) -> Result<HashSet<String>, StoreError> {
        credential_holders_among(self, &self.accounts()?, environments, client_id, family_id)
    }

    /// Whether the account `q.home_account_id` holds, in one of `q.environments`, a
    /// refresh token of `q.client_id` (or of the family `family_id`) or an ID token of
    /// `q.client_id` (any realm: `q.realm` is not looked at): [`Self::credential_holders`]
    /// for one account. Stores with an index override it to answer without opening any
    /// secret.
    fn holds_credentials(
        &self,
        q: &CredentialQuery<'_>,
        family_id: Option<&str>,
    ) -> Result<bool, StoreError> {
        let any_realm = CredentialQuery {
            realm: None,
            ..q.clone()
        };
        Ok(!self.refresh_tokens(&any_realm, family_id)?.is_empty()
            || self.id_token(&any_realm)?.is_some())
    }

    /// When the access token of `q` that covers `scopes` and expires last expires
    /// (expired ones count): what an account list shows. Stores with an index override it
    /// to answer without opening any secret.
    fn access_token_expiry(
        &self,
        q: &CredentialQuery<'_>,
        scopes: &ScopeSet,
    ) -> Result<Option<UnixTime>, StoreError> {
        Ok(self
            .access_tokens(q)?
            .into_iter()
            .filter(|at| target_covers(&at.target, scopes))
            .map(|at| at.expires_on)
            .max())
    }

    /// Whether the account holds, in one of `q.environments`, a refresh token of
    /// `q.client_id` or of the family `family_id` (any realm). Stores with an index
    /// override it to answer without opening any secret.
    fn holds_refresh_token(
        &self,
        q: &CredentialQuery<'_>,
        family_id: Option<&str>,
    ) -> Result<bool, StoreError> {
        Ok(!self.refresh_tokens(q, family_id)?.is_empty())
    }

    /// A number that changes whenever tokens or accounts were written since, by this
    /// connection or any other process (not by [`Self::record_activity`]): a holder of
    /// answers made from the store (the agent) knows they may be stale. `None`: the
    /// store cannot tell.
    fn change_marker(&self) -> Option<u64> {
        None
    }

    /// Keep `records` (time, JSON without any secret: the agent's activity), dropping
    /// those older than `keep_since` and all but the newest `keep_rows`. Stores without a
    /// place for them keep nothing (the default).
    fn record_activity(
        &self,
        _records: &[(UnixTime, String)],
        _keep_since: UnixTime,
        _keep_rows: usize,
    ) -> Result<(), StoreError> {
        Ok(())
    }

    /// The kept activity records since `since`, newest first, at most `limit`.
    fn activity(
        &self,
        _since: UnixTime,
        _limit: usize,
    ) -> Result<Vec<(UnixTime, String)>, StoreError> {
        Ok(Vec::new())
    }

    /// The clients (ids) holding a refresh or ID token of the account in one of
    /// `environments`, sorted: which app signed it in, for an account no profile lists.
    /// `None` when the store cannot tell without reading every entry (the default).
    fn credential_clients(
        &self,
        _home_account_id: &str,
        _environments: &[String],
    ) -> Result<Option<Vec<String>>, StoreError> {
        Ok(None)
    }

    /// The account entries whose `home_account_id` is `username_or_id`, or whose
    /// username is, ignoring ASCII case (MSAL's `get_accounts(username=...)`), ordered by
    /// key. Stores with an index override it to read those entries only.
    fn accounts_named(&self, username_or_id: &str) -> Result<Vec<AccountEntry>, StoreError> {
        Ok(self
            .accounts()?
            .into_iter()
            .filter(|a| {
                a.home_account_id == username_or_id
                    || a.username.eq_ignore_ascii_case(username_or_id)
            })
            .collect())
    }

    fn write(&self, w: TokenWrite) -> Result<(), StoreError>;

    /// Several writes in order, as [`TokenStore::write`] would make them one after the
    /// other. Stores that can make them one transaction (all or nothing) override it; an
    /// import of thousands of entries then commits once.
    fn write_all(&self, writes: Vec<TokenWrite>) -> Result<(), StoreError> {
        writes.into_iter().try_for_each(|w| self.write(w))
    }

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
    // As `requested.is_subset_of(&ScopeSet::parse(target))`, without allocating: it runs
    // for every candidate token of a silent lookup.
    requested.iter().all(|want| {
        target
            .split_whitespace()
            .any(|have| have.eq_ignore_ascii_case(want))
    })
}

/// Conformance checks shared by the stores' tests: random histories of writes and
/// sign-outs, after which a store must answer every lookup as [`MemoryStore`] (the
/// reference) does, and its overrides of [`TokenStore::find_access_token`] and
/// [`TokenStore::credential_holders`] as the default methods do on the same store.
#[cfg(test)]
pub(crate) mod conformance {
    use std::sync::Arc;

    use rand::rngs::StdRng;
    use rand::seq::SliceRandom;
    use rand::{Rng, SeedableRng};
    use serde_json::{Map, Value};

    use super::msal_json::MsalEntity;
    use super::*;
    use crate::env::{Clock, FixedClock};
    use crate::secret::{AccessToken, IdTokenString, RefreshToken};

    pub const NOW: i64 = 1_700_000_000;

    // "Alice.T" and "alice.t" differ, but their keys (lower-cased) collide.
    const HOMES: [&str; 4] = ["alice.t", "Alice.T", "bob.t", "carol.t"];
    const ENVS: [&str; 3] = [
        "login.microsoftonline.com",
        "login.windows.net",
        "Login.MicrosoftOnline.com",
    ];
    const CLIENTS: [&str; 3] = ["cli", "ps", "own"];
    const REALMS: [&str; 2] = ["t1", "t2"];
    const SCOPES: [&str; 7] = [
        "User.Read",
        "Mail.Read",
        "mail.read",
        "Files.Read",
        "openid",
        "profile",
        "offline_access",
    ];

    fn random_target(r: &mut StdRng) -> String {
        let picked: Vec<&str> = SCOPES
            .iter()
            .copied()
            .filter(|_| r.gen_ratio(1, 3))
            .collect();
        if picked.is_empty() {
            SCOPES.choose(r).unwrap().to_string()
        } else {
            msal_target(picked)
        }
    }

    fn random_extra(r: &mut StdRng) -> Map<String, Value> {
        let mut m = Map::new();
        if r.gen_ratio(1, 6) {
            m.insert(
                "future_field".into(),
                serde_json::json!({"n": r.gen_range(0..3)}),
            );
        }
        m
    }

    /// The keys of the reference's refresh tokens (what a random write may rotate).
    pub fn refresh_token_keys(reference: &MemoryStore) -> Vec<String> {
        reference
            .snapshot()
            .refresh_tokens
            .iter()
            .map(|(k, _)| k.to_string())
            .collect()
    }

    pub fn random_write(r: &mut StdRng, n: usize, now: i64, rt_keys: &[String]) -> TokenWrite {
        let home = *HOMES.choose(r).unwrap();
        let env = *ENVS.choose(r).unwrap();
        let client = *CLIENTS.choose(r).unwrap();
        let realm = *REALMS.choose(r).unwrap();
        let mut w = TokenWrite::default();
        if r.gen_ratio(1, 2) {
            let expires_on = now + r.gen_range(0..20_000) as i64 - 500;
            let mut extra = random_extra(r);
            if r.gen_ratio(1, 8) {
                extra.insert("ext_cache_key".into(), "ext1".into());
            }
            w.access_token = Some(AccessTokenEntry {
                home_account_id: home.into(),
                environment: env.into(),
                client_id: client.into(),
                realm: realm.into(),
                target: random_target(r),
                secret: AccessToken::new(format!("at-{n}")),
                token_type: "Bearer".into(),
                cached_at: now,
                // Ties in expiry happen (the lookup must break them the same way).
                expires_on: if r.gen_ratio(1, 4) {
                    now + 5000
                } else {
                    expires_on
                },
                extended_expires_on: Some(expires_on),
                refresh_on: r.gen_ratio(1, 2).then_some(now + 100),
                extra,
            });
        }
        if r.gen_ratio(1, 2) {
            w.refresh_token = Some(RefreshTokenEntry {
                home_account_id: home.into(),
                environment: env.into(),
                client_id: client.into(),
                target: random_target(r),
                secret: RefreshToken::new(format!("rt-{n}")),
                family_id: r.gen_ratio(1, 2).then(|| "1".into()),
                last_modification_time: (!r.gen_ratio(1, 5))
                    .then_some(now - r.gen_range(0..1000) as i64),
                extra: random_extra(r),
            });
        }
        if r.gen_ratio(1, 3) {
            w.id_token = Some(IdTokenEntry {
                home_account_id: home.into(),
                environment: env.into(),
                realm: realm.into(),
                client_id: client.into(),
                secret: IdTokenString::new(format!("idt-{n}")),
                extra: Map::new(),
            });
        }
        if r.gen_ratio(1, 3) {
            w.account = Some(AccountEntry {
                home_account_id: home.into(),
                environment: env.into(),
                realm: realm.into(),
                local_account_id: home.into(),
                username: format!("user-{n}"),
                authority_type: "MSSTS".into(),
                account_source: Some("authorization_code".into()),
                name: r.gen_ratio(1, 2).then(|| format!("Name {n}")),
                extra: random_extra(r),
            });
        }
        if r.gen_ratio(1, 3) {
            w.app_metadata = Some(AppMetadataEntry {
                client_id: client.into(),
                environment: env.into(),
                family_id: r.gen_ratio(1, 2).then(|| "1".into()),
                extra: Map::new(),
            });
        }
        if r.gen_ratio(1, 3) {
            let key = if !rt_keys.is_empty() && !r.gen_ratio(1, 4) {
                rt_keys.choose(r).unwrap().clone()
            } else {
                "no-such-key".into()
            };
            w.rotated_refresh_token = Some((key, RefreshToken::new(format!("rotated-{n}"))));
        }
        w
    }

    fn random_envs(r: &mut StdRng) -> Vec<String> {
        let mut v: Vec<String> = ENVS
            .iter()
            .filter(|_| r.gen_ratio(1, 2))
            .map(|s| s.to_string())
            .collect();
        if v.is_empty() {
            v.push(ENVS.choose(r).unwrap().to_string());
        }
        if r.gen_ratio(1, 2) {
            v.reverse();
        }
        v
    }

    fn json<T: MsalEntity>(v: impl IntoIterator<Item = T>) -> Vec<Map<String, Value>> {
        v.into_iter().map(|e| e.to_msal_map()).collect()
    }

    /// A store with only the required methods: the default methods of [`TokenStore`].
    pub struct Defaults<'a>(pub &'a dyn TokenStore);

    impl TokenStore for Defaults<'_> {
        fn describe(&self) -> String {
            self.0.describe()
        }
        fn accounts(&self) -> Result<Vec<AccountEntry>, StoreError> {
            self.0.accounts()
        }
        fn access_tokens(
            &self,
            q: &CredentialQuery<'_>,
        ) -> Result<Vec<AccessTokenEntry>, StoreError> {
            self.0.access_tokens(q)
        }
        fn refresh_tokens(
            &self,
            q: &CredentialQuery<'_>,
            family_id: Option<&str>,
        ) -> Result<Vec<RefreshTokenEntry>, StoreError> {
            self.0.refresh_tokens(q, family_id)
        }
        fn id_token(&self, q: &CredentialQuery<'_>) -> Result<Option<IdTokenEntry>, StoreError> {
            self.0.id_token(q)
        }
        fn app_metadata(
            &self,
            environments: &[String],
            client_id: &str,
        ) -> Result<Option<AppMetadataEntry>, StoreError> {
            self.0.app_metadata(environments, client_id)
        }
        fn write(&self, w: TokenWrite) -> Result<(), StoreError> {
            self.0.write(w)
        }
        fn remove_account(
            &self,
            home_account_id: &str,
            environments: &[String],
        ) -> Result<usize, StoreError> {
            self.0.remove_account(home_account_id, environments)
        }
    }

    /// Every lookup, once with random arguments, on `reference` and `store`.
    pub fn compare_queries(
        r: &mut StdRng,
        reference: &dyn TokenStore,
        store: &dyn TokenStore,
        now: i64,
        ctx: &str,
    ) {
        let home = *HOMES.choose(r).unwrap();
        let client = *CLIENTS.choose(r).unwrap();
        let e = random_envs(r);
        let realm = r.gen_ratio(1, 2).then(|| *REALMS.choose(r).unwrap());
        let family = r.gen_ratio(1, 2).then_some("1");
        let q = CredentialQuery {
            home_account_id: home,
            environments: &e,
            client_id: client,
            realm,
        };
        assert_eq!(
            json(reference.access_tokens(&q).unwrap()),
            json(store.access_tokens(&q).unwrap()),
            "{ctx}: access_tokens {q:?}"
        );
        assert_eq!(
            json(reference.refresh_tokens(&q, family).unwrap()),
            json(store.refresh_tokens(&q, family).unwrap()),
            "{ctx}: refresh_tokens {q:?} {family:?}"
        );
        assert_eq!(
            json(reference.id_token(&q).unwrap()),
            json(store.id_token(&q).unwrap()),
            "{ctx}: id_token {q:?}"
        );
        assert_eq!(
            json(reference.app_metadata(&e, client).unwrap()),
            json(store.app_metadata(&e, client).unwrap()),
            "{ctx}: app_metadata"
        );
        let scopes: crate::scopes::ScopeSet = SCOPES
            .iter()
            .copied()
            .filter(|_| r.gen_ratio(1, 4))
            .collect();
        let valid_after = now + r.gen_range(0..6000) as i64 - 1000;
        let found = json(store.find_access_token(&q, &scopes, valid_after).unwrap());
        assert_eq!(
            json(
                reference
                    .find_access_token(&q, &scopes, valid_after)
                    .unwrap()
            ),
            found,
            "{ctx}: find_access_token {q:?} {scopes:?} {valid_after}"
        );
        assert_eq!(
            json(
                Defaults(store)
                    .find_access_token(&q, &scopes, valid_after)
                    .unwrap()
            ),
            found,
            "{ctx}: find_access_token against the default method"
        );
        assert_eq!(
            reference.access_token_expiry(&q, &scopes).unwrap(),
            store.access_token_expiry(&q, &scopes).unwrap(),
            "{ctx}: access_token_expiry {q:?} {scopes:?}"
        );
        assert_eq!(
            reference.holds_refresh_token(&q, family).unwrap(),
            store.holds_refresh_token(&q, family).unwrap(),
            "{ctx}: holds_refresh_token {q:?} {family:?}"
        );
        if let Some(clients) = store.credential_clients(home, &e).unwrap() {
            assert_eq!(
                reference.credential_clients(home, &e).unwrap(),
                Some(clients),
                "{ctx}: credential_clients {home} {e:?}"
            );
        }
        // Every home (with an account entry or not), with the random realm (not looked at).
        for home_account_id in HOMES {
            let q = CredentialQuery {
                home_account_id,
                ..q.clone()
            };
            assert_eq!(
                store.holds_credentials(&q, family).unwrap(),
                reference.holds_credentials(&q, family).unwrap(),
                "{ctx}: holds_credentials {q:?} {family:?}"
            );
        }
        let holders = store.credential_holders(&e, client, family).unwrap();
        assert_eq!(
            reference.credential_holders(&e, client, family).unwrap(),
            holders,
            "{ctx}: credential_holders {e:?} {client} {family:?}"
        );
        assert_eq!(
            Defaults(store)
                .credential_holders(&e, client, family)
                .unwrap(),
            holders,
            "{ctx}: credential_holders against the default method"
        );
        for a in reference.accounts().unwrap().iter().take(3) {
            for name in [a.username.to_ascii_uppercase(), a.home_account_id.clone()] {
                assert_eq!(
                    json(reference.accounts_named(&name).unwrap()),
                    json(store.accounts_named(&name).unwrap()),
                    "{ctx}: accounts_named {name}"
                );
            }
        }
    }

    /// Opens the store under test on a clock, for a history's seed.
    pub type OpenStore<'a> = dyn Fn(&Arc<FixedClock>, u64) -> Box<dyn TokenStore> + 'a;

    /// Random histories (writes, sign-outs, time passing) on the reference and on the
    /// store `make` opens (on the given clock), comparing every answer after each step;
    /// `reopen` (if any) opens the store again at the end, to compare what it reads back.
    pub fn run_histories(make: &OpenStore<'_>, steps: usize) {
        for seed in [1u64, 2, 0x5eed_cafe] {
            let clock = Arc::new(FixedClock::new(NOW));
            let reference = MemoryStore::new().with_clock(clock.clone());
            let store = make(&clock, seed);
            let mut r = StdRng::seed_from_u64(seed);
            let (mut holders_seen, mut writes, mut removed) = (0, 0, 0);
            for n in 0..steps {
                let ctx = format!("seed {seed} step {n}");
                let now = clock.now();
                match r.gen_range(0..10) {
                    0 => {
                        let home = *HOMES.choose(&mut r).unwrap();
                        let e = random_envs(&mut r);
                        let count = reference.remove_account(home, &e).unwrap();
                        assert_eq!(
                            count,
                            store.remove_account(home, &e).unwrap(),
                            "{ctx}: remove_account"
                        );
                        removed += count;
                    }
                    1 => clock.advance(r.gen_range(0..1500) as i64),
                    _ => {
                        let w = random_write(&mut r, n, now, &refresh_token_keys(&reference));
                        reference.write(w.clone()).unwrap();
                        store.write(w).unwrap();
                        writes += 1;
                    }
                }
                assert_eq!(
                    json(reference.accounts().unwrap()),
                    json(store.accounts().unwrap()),
                    "{ctx}: accounts"
                );
                for _ in 0..6 {
                    compare_queries(&mut r, &reference, store.as_ref(), clock.now(), &ctx);
                }
                holders_seen += reference
                    .credential_holders(&[ENVS[0].to_string()], CLIENTS[0], Some("1"))
                    .unwrap()
                    .len();
            }
            // The history really exercised the store: it wrote, signed accounts out, and
            // ends holding tokens of both kinds.
            assert!(holders_seen > steps / 2, "the histories hold credentials");
            let snap = reference.snapshot();
            let (ats, rts) = (snap.access_tokens.len(), snap.refresh_tokens.len());
            assert!(
                writes > steps * 2 / 3 && removed > 0 && ats > 5 && rts > 5,
                "seed {seed}: {writes} writes, {removed} entries signed out, {ats} ATs and \
                 {rts} RTs at the end"
            );
            let reopened = make(&clock, seed);
            for _ in 0..100 {
                compare_queries(
                    &mut r,
                    &reference,
                    reopened.as_ref(),
                    clock.now(),
                    &format!("seed {seed} reopened"),
                );
            }
        }
    }
}
