//! [`MemoryStore`]: the [`TokenStore`] semantics on an [`MsalCacheDocument`] in memory.
//! It is the reference the SQLite store is tested against, and the base of the "MSAL
//! file as the store" backend (load a file, serve lookups, write it back).

use std::cmp::Reverse;
use std::sync::{Arc, Mutex, MutexGuard};

use serde_json::Value;

use super::msal_json::MsalCacheDocument;
use super::{
    at_replaces, env_rank, ext_cache_key, AccessTokenEntry, AccountEntry, AppMetadataEntry,
    CredentialQuery, IdTokenEntry, RefreshTokenEntry, TokenStore, TokenWrite,
};
use crate::env::{Clock, SystemClock};
use crate::error::StoreError;

pub struct MemoryStore {
    doc: Mutex<MsalCacheDocument>,
    clock: Arc<dyn Clock>,
}

impl Default for MemoryStore {
    fn default() -> Self {
        Self::from_document(MsalCacheDocument::default())
    }
}

impl std::fmt::Debug for MemoryStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryStore")
            .field("doc", &*self.lock())
            .finish()
    }
}

impl MemoryStore {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn from_document(doc: MsalCacheDocument) -> Self {
        MemoryStore {
            doc: Mutex::new(doc),
            clock: Arc::new(SystemClock),
        }
    }

    /// The clock that expires access tokens and stamps rotated refresh tokens.
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// A copy of the whole cache.
    pub fn snapshot(&self) -> MsalCacheDocument {
        self.lock().clone()
    }

    /// The cache as MSAL Python's `serialize()` writes it.
    pub fn to_msal_json(&self) -> String {
        self.lock().to_string_pretty()
    }

    fn lock(&self) -> MutexGuard<'_, MsalCacheDocument> {
        // Every change below is made whole before the guard drops, so a poisoned lock
        // still guards a consistent document.
        self.doc.lock().unwrap_or_else(|e| e.into_inner())
    }
}

fn first_by_env<'a, T>(
    matches: impl Iterator<Item = (&'a str, &'a T)>,
    environments: &[String],
    env_of: impl Fn(&T) -> &str,
) -> Option<T>
where
    T: Clone + 'a,
{
    matches
        .filter_map(|(k, e)| Some(((env_rank(env_of(e), environments)?, k), e)))
        .min_by(|a, b| a.0.cmp(&b.0))
        .map(|(_, e)| e.clone())
}

impl TokenStore for MemoryStore {
    fn describe(&self) -> String {
        "in memory (MSAL cache format), not persisted".into()
    }

    fn accounts(&self) -> Result<Vec<AccountEntry>, StoreError> {
        let d = self.lock();
        let mut v: Vec<(&str, &AccountEntry)> = d.accounts.iter().collect();
        v.sort_by_key(|(k, _)| *k);
        Ok(v.into_iter().map(|(_, e)| e.clone()).collect())
    }

    fn access_tokens(&self, q: &CredentialQuery<'_>) -> Result<Vec<AccessTokenEntry>, StoreError> {
        let d = self.lock();
        let mut v: Vec<(&str, &AccessTokenEntry)> = d
            .access_tokens
            .iter()
            .filter(|(_, e)| {
                e.home_account_id == q.home_account_id
                    && e.client_id == q.client_id
                    && env_rank(&e.environment, q.environments).is_some()
                    && q.realm.is_none_or(|r| e.realm == r)
                    && ext_cache_key(e).is_none()
            })
            .collect();
        v.sort_by_key(|(k, _)| *k);
        Ok(v.into_iter().map(|(_, e)| e.clone()).collect())
    }

    fn refresh_tokens(
        &self,
        q: &CredentialQuery<'_>,
        family_id: Option<&str>,
    ) -> Result<Vec<RefreshTokenEntry>, StoreError> {
        let d = self.lock();
        let mut v: Vec<(&str, &RefreshTokenEntry)> = d
            .refresh_tokens
            .iter()
            .filter(|(_, e)| {
                e.home_account_id == q.home_account_id
                    && env_rank(&e.environment, q.environments).is_some()
                    && (e.client_id == q.client_id
                        || family_id.is_some_and(|f| e.family_id.as_deref() == Some(f)))
            })
            .collect();
        v.sort_by_key(|(k, e)| (Reverse(e.last_modification_time.unwrap_or(0)), *k));
        Ok(v.into_iter().map(|(_, e)| e.clone()).collect())
    }

    fn credential_clients(
        &self,
        home_account_id: &str,
        environments: &[String],
    ) -> Result<Option<Vec<String>>, StoreError> {
        let d = self.lock();
        let of_account = |home: &str, env: &str| {
            home == home_account_id && env_rank(env, environments).is_some()
        };
        let mut clients: Vec<String> = d
            .refresh_tokens
            .iter()
            .map(|(_, e)| e)
            .filter(|e| of_account(&e.home_account_id, &e.environment))
            .map(|e| e.client_id.clone())
            .chain(
                d.id_tokens
                    .iter()
                    .map(|(_, e)| e)
                    .filter(|e| of_account(&e.home_account_id, &e.environment))
                    .map(|e| e.client_id.clone()),
            )
            .collect();
        clients.sort();
        clients.dedup();
        Ok(Some(clients))
    }

    fn id_token(&self, q: &CredentialQuery<'_>) -> Result<Option<IdTokenEntry>, StoreError> {
        let d = self.lock();
        let matches = d.id_tokens.iter().filter(|(_, e)| {
            e.home_account_id == q.home_account_id
                && e.client_id == q.client_id
                && q.realm.is_none_or(|r| e.realm == r)
        });
        Ok(first_by_env(matches, q.environments, |e| &e.environment))
    }

    fn app_metadata(
        &self,
        environments: &[String],
        client_id: &str,
    ) -> Result<Option<AppMetadataEntry>, StoreError> {
        let d = self.lock();
        let matches = d
            .app_metadata
            .iter()
            .filter(|(_, e)| e.client_id == client_id);
        Ok(first_by_env(matches, environments, |e| &e.environment))
    }

    fn write(&self, w: TokenWrite) -> Result<(), StoreError> {
        let now = self.clock.now();
        let mut d = self.lock();
        // MSAL's add() order: AT, Account, IdToken, RT, AppMetadata; then update_rt().
        if let Some(at) = w.access_token {
            d.access_tokens
                .retain_typed(|_, old| !(old.expires_on < now || at_replaces(&at, old)));
            d.access_tokens.insert(at);
        }
        if let Some(account) = w.account {
            d.accounts.insert(account);
        }
        if let Some(idt) = w.id_token {
            d.id_tokens.insert(idt);
        }
        if let Some(rt) = w.refresh_token {
            d.refresh_tokens.insert(rt);
        }
        if let Some(meta) = w.app_metadata {
            d.app_metadata.insert(meta);
        }
        if let Some((key, secret)) = w.rotated_refresh_token {
            d.refresh_tokens.update(&key, |rt| {
                rt.secret = secret;
                rt.last_modification_time = Some(now);
            });
        }
        Ok(())
    }

    fn remove_account(
        &self,
        home_account_id: &str,
        environments: &[String],
    ) -> Result<usize, StoreError> {
        let mut d = self.lock();
        let owned = |home: &str, env: &str| {
            home == home_account_id && env_rank(env, environments).is_some()
        };
        // Entries kept verbatim count too: a sign-out must not leave a secret behind.
        let raw_owned = |v: &Value| match (v["home_account_id"].as_str(), v["environment"].as_str())
        {
            (Some(h), Some(e)) => owned(h, e),
            _ => false,
        };
        let mut n = 0;
        n += d
            .access_tokens
            .retain_typed(|_, e| !owned(&e.home_account_id, &e.environment));
        n += d.access_tokens.retain_raw(|_, v| !raw_owned(v));
        n += d
            .refresh_tokens
            .retain_typed(|_, e| !owned(&e.home_account_id, &e.environment));
        n += d.refresh_tokens.retain_raw(|_, v| !raw_owned(v));
        n += d
            .id_tokens
            .retain_typed(|_, e| !owned(&e.home_account_id, &e.environment));
        n += d.id_tokens.retain_raw(|_, v| !raw_owned(v));
        n += d
            .accounts
            .retain_typed(|_, e| !owned(&e.home_account_id, &e.environment));
        n += d.accounts.retain_raw(|_, v| !raw_owned(v));
        Ok(n)
    }
}
