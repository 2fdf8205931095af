//! Copying accounts and tokens between an MSAL Python token cache file and any
//! [`TokenStore`]: [`import_msal`] and [`export_msal`].
//!
//! Both read and write MSAL files through [`MsalFileStore`], so they take
//! msal-extensions' lock and never leave half a file, and both only add: nothing that
//! is already in the destination is removed (an entry with the same MSAL key is
//! replaced, as MSAL itself would).
//!
//! # What cannot be copied, and why
//! - Import goes through [`TokenStore::write`], so the destination's rules apply: an
//!   expired access token is not copied (every store purges them), and of several access
//!   tokens of one account, client and realm whose scopes overlap the store keeps the
//!   last one written (MSAL .NET's rule; MSAL Python keeps both). Entries MSAL's typed
//!   model does not cover (an app-only token with `home_account_id: null`, a malformed
//!   entry) and unknown top-level sections have no place in a [`TokenStore`]. The report
//!   lists each of these with a count.
//! - [`TokenStore`] has no "list everything" method, so export goes through
//!   [`TokenStore::accounts`] and per-account queries, for the client ids it is given:
//!   every Account entry; for each account, environment and given client: its access
//!   tokens (every realm), its refresh tokens and those of its token family, its ID
//!   tokens (one per realm that has an Account entry, plus any other), and the client's
//!   AppMetadata. Access tokens with an `ext_cache_key` are not returned by
//!   [`TokenStore::access_tokens`], so they are not exported; nor is anything of a client
//!   that is not listed, nor a token whose account has no Account entry.
//! - Export merges into the destination file under its lock: the destination's own
//!   entries (other clients', other accounts', AppMetadata, unknown sections and
//!   entries) all stay.

use std::collections::BTreeSet;
use std::fmt;
use std::path::Path;

use super::msal_file::MsalFileStore;
use super::msal_json::{MsalCacheDocument, MsalEntity, Section};
use super::{
    access_token_key, ext_cache_key, AccessTokenEntry, AccountEntry, AppMetadataEntry,
    CredentialQuery, IdTokenEntry, RefreshTokenEntry, TokenStore, TokenWrite,
};
use crate::env::{Clock, SystemClock};
use crate::error::{Error, Result};

/// How many entries of each kind.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct EntryCounts {
    pub access_tokens: usize,
    pub refresh_tokens: usize,
    pub id_tokens: usize,
    pub accounts: usize,
    pub app_metadata: usize,
}

impl EntryCounts {
    pub fn total(&self) -> usize {
        self.access_tokens
            + self.refresh_tokens
            + self.id_tokens
            + self.accounts
            + self.app_metadata
    }

    /// The counts of a document's typed entries.
    pub fn of(doc: &MsalCacheDocument) -> EntryCounts {
        EntryCounts {
            access_tokens: doc.access_tokens.len(),
            refresh_tokens: doc.refresh_tokens.len(),
            id_tokens: doc.id_tokens.len(),
            accounts: doc.accounts.len(),
            app_metadata: doc.app_metadata.len(),
        }
    }
}

/// Entries that were not copied, and why.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Skipped {
    /// The MSAL section (`AccessToken`, ... or an unknown section's name).
    pub section: String,
    pub count: usize,
    pub reason: String,
}

/// What an import or export did.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct TransferReport {
    /// Entries written to the destination, per kind.
    pub copied: EntryCounts,
    /// Entries of the source that were not copied.
    pub skipped: Vec<Skipped>,
}

impl TransferReport {
    fn skip(&mut self, section: &str, count: usize, reason: &str) {
        if count > 0 {
            self.skipped.push(Skipped {
                section: section.to_string(),
                count,
                reason: reason.to_string(),
            });
        }
    }
}

impl fmt::Display for TransferReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let c = &self.copied;
        write!(
            f,
            "copied {} accounts, {} refresh tokens, {} access tokens, {} ID tokens, {} app metadata",
            c.accounts, c.refresh_tokens, c.access_tokens, c.id_tokens, c.app_metadata
        )?;
        for s in &self.skipped {
            write!(f, "; not copied: {} {} ({})", s.count, s.section, s.reason)?;
        }
        Ok(())
    }
}

/// Copies every account and token of the MSAL Python token cache `from` (an Azure CLI
/// `msal_token_cache.json`, an msal-extensions file) into `into`. `from` is read under
/// its lock and not changed. See the module docs for what is not copied.
pub fn import_msal(from: &Path, into: &dyn TokenStore) -> Result<TransferReport> {
    import_msal_at(from, into, SystemClock.now())
}

/// [`import_msal`] with the time that decides which access tokens have expired.
pub fn import_msal_at(from: &Path, into: &dyn TokenStore, now: i64) -> Result<TransferReport> {
    if !from.is_file() {
        return Err(Error::Config(format!(
            "there is no MSAL token cache at {}",
            from.display()
        )));
    }
    let doc = MsalFileStore::open(from)?.snapshot()?;
    let mut report = TransferReport::default();

    let verbatim = "not in MSAL's typed model (for example an app-only token without an account)";
    report.skip("AccessToken", doc.access_tokens.raw_len(), verbatim);
    report.skip("RefreshToken", doc.refresh_tokens.raw_len(), verbatim);
    report.skip("IdToken", doc.id_tokens.raw_len(), verbatim);
    report.skip("Account", doc.accounts.raw_len(), verbatim);
    report.skip("AppMetadata", doc.app_metadata.raw_len(), verbatim);
    for (name, value) in doc.unknown_sections() {
        let n = value.as_object().map_or(1, |m| m.len());
        report.skip(name, n, "a section this version of Tessera does not know");
    }

    let accounts: Vec<AccountEntry> = typed(&doc.accounts);
    let id_tokens: Vec<IdTokenEntry> = typed(&doc.id_tokens);
    let refresh_tokens: Vec<RefreshTokenEntry> = typed(&doc.refresh_tokens);
    let app_metadata: Vec<AppMetadataEntry> = typed(&doc.app_metadata);
    let (access_tokens, expired): (Vec<AccessTokenEntry>, Vec<AccessTokenEntry>) =
        typed(&doc.access_tokens)
            .into_iter()
            .partition(|at| at.expires_on >= now);
    report.skip("AccessToken", expired.len(), "expired");

    // One write per index: at most one entry of each kind (access tokens are written
    // first within each, as MSAL does), all of them in one transaction where the store
    // can (SqliteStore): an import is all or nothing, and commits once.
    let rounds = [
        accounts.len(),
        id_tokens.len(),
        refresh_tokens.len(),
        app_metadata.len(),
        access_tokens.len(),
    ]
    .into_iter()
    .max()
    .unwrap_or(0);
    report.copied = EntryCounts {
        access_tokens: access_tokens.len(),
        refresh_tokens: refresh_tokens.len(),
        id_tokens: id_tokens.len(),
        accounts: accounts.len(),
        app_metadata: app_metadata.len(),
    };
    // Moved into the writes; the access tokens are still needed below.
    let (mut accounts, mut id_tokens) = (accounts.into_iter(), id_tokens.into_iter());
    let (mut refresh_tokens, mut app_metadata) =
        (refresh_tokens.into_iter(), app_metadata.into_iter());
    into.write_all(
        (0..rounds)
            .map(|i| TokenWrite {
                access_token: access_tokens.get(i).cloned(),
                refresh_token: refresh_tokens.next(),
                id_token: id_tokens.next(),
                account: accounts.next(),
                app_metadata: app_metadata.next(),
                rotated_refresh_token: None,
            })
            .collect(),
    )?;

    // Which access tokens did the store keep? (Overlapping scopes replace each other.)
    // The store is asked once per account, client, realm and environment.
    let mut kept: std::collections::HashMap<[&str; 4], std::collections::HashSet<String>> =
        std::collections::HashMap::new();
    let mut superseded = 0;
    for at in access_tokens
        .iter()
        .filter(|at| ext_cache_key(at).is_none())
    {
        let group = [
            at.home_account_id.as_str(),
            at.client_id.as_str(),
            at.realm.as_str(),
            at.environment.as_str(),
        ];
        if let std::collections::hash_map::Entry::Vacant(slot) = kept.entry(group) {
            let envs = [at.environment.clone()];
            let q = CredentialQuery {
                home_account_id: &at.home_account_id,
                environments: &envs,
                client_id: &at.client_id,
                realm: Some(&at.realm),
            };
            let keys = into
                .access_tokens(&q)?
                .iter()
                .map(access_token_key)
                .collect();
            slot.insert(keys);
        }
        if !kept[&group].contains(&access_token_key(at)) {
            superseded += 1;
        }
    }
    report.copied.access_tokens -= superseded;
    report.skip(
        "AccessToken",
        superseded,
        "replaced by another imported access token with overlapping scopes for the same account, client and realm",
    );
    tracing::info!(from = %from.display(), copied = report.copied.total(), "MSAL token cache imported");
    Ok(report)
}

/// Copies the accounts of `from`, with the tokens and app metadata of the clients
/// `client_ids` (Tessera's profiles' client ids), into the MSAL Python token cache `to`
/// (created if missing, merged into if not: everything already in it stays). One
/// atomic write under msal-extensions' lock. See the module docs for what is not
/// exported.
pub fn export_msal(
    from: &dyn TokenStore,
    to: &Path,
    client_ids: &[&str],
) -> Result<TransferReport> {
    let accounts = from.accounts()?;
    let mut out = MsalCacheDocument::default();
    // (home account, environment) pairs, and the realms each has Account entries for.
    let mut homes: BTreeSet<(String, String)> = BTreeSet::new();
    for a in &accounts {
        homes.insert((
            a.home_account_id.clone(),
            a.environment.to_ascii_lowercase(),
        ));
        out.accounts.insert(a.clone());
    }
    let clients: BTreeSet<&str> = client_ids
        .iter()
        .copied()
        .filter(|c| !c.is_empty())
        .collect();
    for (home, env) in &homes {
        let envs = [env.clone()];
        let realms: BTreeSet<&str> = accounts
            .iter()
            .filter(|a| &a.home_account_id == home && a.environment.eq_ignore_ascii_case(env))
            .map(|a| a.realm.as_str())
            .collect();
        for client in &clients {
            let q = CredentialQuery {
                home_account_id: home,
                environments: &envs,
                client_id: client,
                realm: None,
            };
            for at in from.access_tokens(&q)? {
                out.access_tokens.insert(at);
            }
            let meta = from.app_metadata(&envs, client)?;
            // The family tokens too: MSAL finds an app's family token through them.
            let family = meta.as_ref().and_then(|m| m.family_id.clone());
            for rt in from.refresh_tokens(&q, family.as_deref())? {
                out.refresh_tokens.insert(rt);
            }
            if let Some(meta) = meta {
                out.app_metadata.insert(meta);
            }
            for realm in realms.iter().map(|r| Some(*r)).chain([None]) {
                if let Some(idt) = from.id_token(&CredentialQuery { realm, ..q.clone() })? {
                    out.id_tokens.insert(idt);
                }
            }
        }
    }
    let copied = EntryCounts::of(&out);
    let dest = MsalFileStore::open(to)?;
    dest.update(|doc| {
        merge(&mut doc.access_tokens, &out.access_tokens);
        merge(&mut doc.refresh_tokens, &out.refresh_tokens);
        merge(&mut doc.id_tokens, &out.id_tokens);
        merge(&mut doc.accounts, &out.accounts);
        merge(&mut doc.app_metadata, &out.app_metadata);
    })?;
    tracing::info!(to = %to.display(), copied = copied.total(), "MSAL token cache exported");
    Ok(TransferReport {
        copied,
        skipped: Vec::new(),
    })
}

fn typed<T: MsalEntity>(s: &Section<T>) -> Vec<T> {
    s.iter().map(|(_, e)| e.clone()).collect()
}

fn merge<T: MsalEntity>(into: &mut Section<T>, from: &Section<T>) {
    for (_, e) in from.iter() {
        into.insert(e.clone());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cache::{MemoryStore, PlaintextCipher, SqliteStore};
    use std::sync::Arc;

    const MSAL: &str = include_str!("testdata/msal_python_cache.json");
    const FOREIGN: &str = include_str!("testdata/msal_python_cache_foreign.json");
    /// The fixtures' time: their access tokens are still valid then.
    const NOW: i64 = 1_700_000_100;
    const CLI: &str = "04b07795-8ddb-461a-bbee-02f9e1bf7b46";

    fn fixture_clients(doc: &MsalCacheDocument) -> Vec<String> {
        let mut v: Vec<String> = doc
            .access_tokens
            .iter()
            .map(|(_, e)| e.client_id.clone())
            .collect();
        v.extend(doc.refresh_tokens.iter().map(|(_, e)| e.client_id.clone()));
        v.extend(doc.app_metadata.iter().map(|(_, e)| e.client_id.clone()));
        v.sort();
        v.dedup();
        v
    }

    fn sqlite(dir: &Path) -> SqliteStore {
        SqliteStore::open(&dir.join("store.db"), Arc::new(PlaintextCipher))
            .unwrap()
            .with_clock(Arc::new(crate::env::FixedClock::new(NOW)))
    }

    #[test]
    fn msal_pythons_cache_round_trips_through_the_sqlite_store() {
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("msal.json");
        std::fs::write(&src, MSAL).unwrap();
        let original: MsalCacheDocument = MSAL.parse().unwrap();
        let store = sqlite(dir.path());
        let report = import_msal_at(&src, &store, NOW).unwrap();
        assert_eq!(
            std::fs::read_to_string(&src).unwrap(),
            MSAL,
            "the source is not changed"
        );

        // What the fixture has that a TokenStore cannot hold: its one app-only token.
        assert_eq!(
            report.skipped,
            vec![Skipped {
                section: "AccessToken".into(),
                count: 1,
                reason:
                    "not in MSAL's typed model (for example an app-only token without an account)"
                        .into()
            }]
        );
        assert_eq!(report.copied, EntryCounts::of(&original));

        let dst = dir.path().join("out/exported.json");
        let clients = fixture_clients(&original);
        let clients: Vec<&str> = clients.iter().map(String::as_str).collect();
        let back = export_msal(&store, &dst, &clients).unwrap();
        let exported: MsalCacheDocument = std::fs::read_to_string(&dst).unwrap().parse().unwrap();

        // Every typed entry comes back identical, under the same key; the one access
        // token with an ext_cache_key cannot be listed through TokenStore.
        let mut expected = original.clone();
        let ext: Vec<String> = expected
            .access_tokens
            .iter()
            .filter(|(_, e)| ext_cache_key(e).is_some())
            .map(|(k, _)| k.to_string())
            .collect();
        assert_eq!(ext.len(), 1);
        expected.access_tokens.remove(&ext[0]);
        expected.access_tokens.retain_raw(|_, _| false);
        assert_eq!(back.copied, EntryCounts::of(&expected));
        assert_eq!(sorted_json(&exported), sorted_json(&expected));
    }

    /// The document as JSON with every section's keys sorted (order is not meaning).
    fn sorted_json(doc: &MsalCacheDocument) -> serde_json::Value {
        let v = doc.to_value();
        let mut out = serde_json::Map::new();
        for (name, section) in v.as_object().unwrap() {
            let mut entries: Vec<(&String, &serde_json::Value)> =
                section.as_object().unwrap().iter().collect();
            entries.sort_by(|a, b| a.0.cmp(b.0));
            if !entries.is_empty() {
                out.insert(
                    name.clone(),
                    serde_json::Value::Object(
                        entries
                            .into_iter()
                            .map(|(k, v)| (k.clone(), v.clone()))
                            .collect(),
                    ),
                );
            }
        }
        serde_json::Value::Object(out)
    }

    #[test]
    fn import_reports_what_the_store_cannot_keep() {
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("msal.json");
        std::fs::write(&src, FOREIGN).unwrap();
        let store = MemoryStore::new().with_clock(Arc::new(crate::env::FixedClock::new(NOW)));
        let report = import_msal_at(&src, &store, NOW).unwrap();
        let sections: Vec<(&str, usize)> = report
            .skipped
            .iter()
            .map(|s| (s.section.as_str(), s.count))
            .collect();
        assert!(sections.contains(&("FutureSection", 1)), "{report}");
        assert!(sections.contains(&("IdToken", 1)), "{report}");
        // Far in the future, every access token has expired.
        let store = MemoryStore::new();
        let report = import_msal_at(&src, &store, 4_000_000_000).unwrap();
        let doc: MsalCacheDocument = FOREIGN.parse().unwrap();
        assert_eq!(report.copied.access_tokens, 0);
        assert!(report
            .skipped
            .iter()
            .any(|s| s.reason == "expired" && s.count == doc.access_tokens.len()));
        assert!(report.to_string().contains("not copied"), "{report}");
    }

    #[test]
    fn overlapping_access_tokens_are_reported_as_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let mut doc = MsalCacheDocument::default();
        let at = |target: &str, secret: &str| AccessTokenEntry {
            home_account_id: "h".into(),
            environment: "e".into(),
            client_id: "c".into(),
            realm: "r".into(),
            target: target.into(),
            secret: crate::secret::AccessToken::new(secret.into()),
            token_type: "Bearer".into(),
            cached_at: NOW,
            expires_on: NOW + 3600,
            extended_expires_on: None,
            refresh_on: None,
            extra: Default::default(),
        };
        doc.access_tokens.insert(at("a b", "one"));
        doc.access_tokens.insert(at("b c", "two"));
        let src = dir.path().join("msal.json");
        std::fs::write(&src, doc.to_string_pretty()).unwrap();
        let store = MemoryStore::new().with_clock(Arc::new(crate::env::FixedClock::new(NOW)));
        let report = import_msal_at(&src, &store, NOW).unwrap();
        assert_eq!(report.copied.access_tokens, 1);
        assert_eq!(report.skipped.len(), 1);
        assert!(report.skipped[0].reason.contains("overlapping"), "{report}");
    }

    #[test]
    fn export_merges_into_an_existing_file_and_keeps_everything_in_it() {
        let dir = tempfile::tempdir().unwrap();
        let dst = dir.path().join("azure.json");
        std::fs::write(&dst, FOREIGN).unwrap();
        let store = MemoryStore::new();
        store
            .write(TokenWrite {
                account: Some(AccountEntry {
                    home_account_id: "tessera-user".into(),
                    environment: "login.example.test".into(),
                    realm: "t".into(),
                    local_account_id: "u".into(),
                    username: "u@example.test".into(),
                    authority_type: "MSSTS".into(),
                    account_source: None,
                    name: None,
                    extra: Default::default(),
                }),
                ..Default::default()
            })
            .unwrap();
        let report = export_msal(&store, &dst, &[CLI]).unwrap();
        assert_eq!(report.copied.accounts, 1);
        let mut after: MsalCacheDocument = std::fs::read_to_string(&dst).unwrap().parse().unwrap();
        assert!(after.accounts.remove("tessera-user-login.example.test-t"));
        assert_eq!(
            after.to_string_pretty(),
            FOREIGN,
            "all else byte for byte as it was"
        );
    }

    #[test]
    fn a_missing_source_is_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        let err = import_msal(&dir.path().join("nope.json"), &MemoryStore::new()).unwrap_err();
        assert!(err.to_string().contains("no MSAL token cache at"), "{err}");
    }
}
