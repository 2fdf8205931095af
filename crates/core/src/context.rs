//! [`Tessera`]: what the CLI and the desktop app share: where files live, the profiles,
//! the token store, the HTTP client, and one [`PublicClientApplication`] per profile.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};

use crate::app::{Account, Deps, PublicClientApplication};
use crate::cache::TokenStore;
use crate::env::{OsEntropy, SystemClock};
use crate::error::{Error, Result};
use crate::http::{HttpClient, HttpConfig, ReqwestClient};
use crate::keystore::{open_store, plaintext_allowed, StoreInfo, StoreOptions};
use crate::paths::Paths;
use crate::profile::{Profile, Profiles};

/// An account and the profile it was found through.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ProfileAccount {
    pub profile: String,
    pub account: Account,
}

pub struct Tessera {
    paths: Paths,
    profiles: Profiles,
    store: Arc<dyn TokenStore>,
    /// How the store was opened (`None` when it was handed in by `with_parts`).
    store_info: Option<StoreInfo>,
    http: Arc<dyn HttpClient>,
    /// One app per profile (it memoizes discovery), keyed by lower-cased name; the
    /// profile it was built from is kept so an edited profile gets a fresh app.
    apps: Mutex<HashMap<String, (Profile, Arc<PublicClientApplication>)>>,
}

impl std::fmt::Debug for Tessera {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tessera")
            .field("paths", &self.paths)
            .field("profiles", &self.profiles.list().len())
            .field("store", &self.store.describe())
            .finish_non_exhaustive()
    }
}

impl Tessera {
    /// Resolve the paths (`home`, else `TESSERA_HOME`, else XDG), create the folders,
    /// load the profiles, open the SQLite store and the HTTP client. The store is
    /// encrypted with a key from the OS keyring; unencrypted only where no keyring can be
    /// reached and `TESSERA_ALLOW_PLAINTEXT=1` or `allow_plaintext = true` in
    /// `config.toml` allows it (see [`crate::keystore`]).
    pub fn open(home: Option<&Path>) -> Result<Tessera> {
        Self::open_with(home, &StoreOptions::default())
    }

    /// [`Self::open`] with options: `allow_plaintext` (the CLI's `--allow-plaintext`; the
    /// environment and `config.toml` can allow it too, never forbid it) and the key store.
    pub fn open_with(home: Option<&Path>, options: &StoreOptions) -> Result<Tessera> {
        let paths = Paths::resolve(home)?;
        paths.ensure()?;
        let profiles = Profiles::load(&paths.profiles_file())?;
        let options = StoreOptions {
            allow_plaintext: options.allow_plaintext || plaintext_allowed(&paths.config_dir)?,
            keystore: options.keystore.clone(),
        };
        let opened = open_store(&paths.store_file(), &options)?;
        let http = ReqwestClient::new(&HttpConfig::default());
        let mut t = Self::with_parts(paths, profiles, Arc::new(opened.store), Arc::new(http));
        t.store_info = Some(opened.info);
        Ok(t)
    }

    /// Assemble from parts (tests: a memory store, a scripted HTTP client).
    pub fn with_parts(
        paths: Paths,
        profiles: Profiles,
        store: Arc<dyn TokenStore>,
        http: Arc<dyn HttpClient>,
    ) -> Tessera {
        Tessera {
            paths,
            profiles,
            store,
            store_info: None,
            http,
            apps: Mutex::new(HashMap::new()),
        }
    }

    pub fn paths(&self) -> &Paths {
        &self.paths
    }

    pub fn profiles(&self) -> &Profiles {
        &self.profiles
    }

    /// Edit the profiles (then `profiles().save(&paths().profiles_file())`). Apps of
    /// changed profiles are rebuilt on their next use.
    pub fn profiles_mut(&mut self) -> &mut Profiles {
        &mut self.profiles
    }

    pub fn store(&self) -> &Arc<dyn TokenStore> {
        &self.store
    }

    /// The store's path, protection and key location (`None` for a store handed to
    /// [`Self::with_parts`]).
    pub fn store_info(&self) -> Option<&StoreInfo> {
        self.store_info.as_ref()
    }

    pub fn http(&self) -> &Arc<dyn HttpClient> {
        &self.http
    }

    /// A profile by name (case-insensitive), or a clear error listing the names.
    pub fn profile(&self, name: &str) -> Result<&Profile> {
        self.profiles.get(name).ok_or_else(|| {
            let names: Vec<&str> = self
                .profiles
                .list()
                .iter()
                .map(|p| p.name.as_str())
                .collect();
            Error::Config(format!(
                "there is no profile named {name:?}; profiles: {}",
                names.join(", ")
            ))
        })
    }

    /// The application for `profile` (shared while the profile is unchanged, so
    /// discovery runs once). Works for profiles not in [`Self::profiles`] too (the
    /// CLI's inline targets).
    pub fn app(&self, profile: &Profile) -> Result<Arc<PublicClientApplication>> {
        let key = profile.name.trim().to_lowercase();
        let mut apps = self.apps.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((built_from, app)) = apps.get(&key) {
            if built_from == profile {
                return Ok(Arc::clone(app));
            }
        }
        let deps = Deps {
            http: Arc::clone(&self.http),
            store: Arc::clone(&self.store),
            clock: Arc::new(SystemClock),
            entropy: Arc::new(OsEntropy),
        };
        let app = Arc::new(PublicClientApplication::new(profile.client_config()?, deps));
        apps.insert(key, (profile.clone(), Arc::clone(&app)));
        Ok(app)
    }

    /// Every profile's cached accounts (read from the store only: an unreachable
    /// provider never hides them), in profile order.
    pub async fn accounts(&self) -> Result<Vec<ProfileAccount>> {
        let mut out = Vec::new();
        for profile in self.profiles.list() {
            out.extend(self.accounts_of(profile).await?);
        }
        Ok(out)
    }

    /// One profile's cached accounts.
    pub async fn accounts_of(&self, profile: &Profile) -> Result<Vec<ProfileAccount>> {
        let accounts = self.app(profile)?.get_accounts().await?;
        Ok(in_profile(profile, accounts).collect())
    }

    /// The accounts that go by `username_or_id` (username ignoring ASCII case, or home
    /// account id: [`PublicClientApplication::get_accounts_named`]) in `profile`, or
    /// without one in every profile (in profile order). The store is asked for those
    /// accounts only, so a lookup does not grow with the number of accounts.
    pub async fn accounts_named(
        &self,
        profile: Option<&Profile>,
        username_or_id: &str,
    ) -> Result<Vec<ProfileAccount>> {
        let profiles: Vec<&Profile> = match profile {
            Some(p) => vec![p],
            None => self.profiles.list().iter().collect(),
        };
        let mut out = Vec::new();
        for profile in profiles {
            let accounts = self
                .app(profile)?
                .get_accounts_named(username_or_id)
                .await?;
            out.extend(in_profile(profile, accounts));
        }
        Ok(out)
    }

    /// Find an account by username (case-insensitive) or `home_account_id`, in one
    /// profile or, without one, in all. An account found through several profiles
    /// (same cloud and client) is ambiguous: a `Config` error asks for `--profile`.
    pub async fn find_account(
        &self,
        profile: Option<&str>,
        username_or_id: &str,
    ) -> Result<Option<ProfileAccount>> {
        let profile = match profile {
            Some(name) => Some(self.profile(name)?),
            None => None,
        };
        let mut found = self.accounts_named(profile, username_or_id).await?;
        match found.len() {
            0 => Ok(None),
            1 => Ok(found.pop()),
            _ => {
                let names: Vec<String> = found.iter().map(|pa| pa.profile.clone()).collect();
                Err(Error::Config(format!(
                    "{username_or_id} is signed in through several profiles ({}); choose one with --profile",
                    names.join(", ")
                )))
            }
        }
    }
}

/// `accounts`, each tagged with the profile it was found through.
fn in_profile(
    profile: &Profile,
    accounts: Vec<Account>,
) -> impl Iterator<Item = ProfileAccount> + '_ {
    accounts.into_iter().map(|account| ProfileAccount {
        profile: profile.name.clone(),
        account,
    })
}

#[cfg(test)]
mod tests {
    use async_trait::async_trait;

    use super::*;
    use crate::cache::{AccountEntry, IdTokenEntry, MemoryStore, TokenWrite};
    use crate::http::{HttpRequest, HttpResponse, TransportError};
    use crate::secret::IdTokenString;

    /// Every request fails: the provider is unreachable.
    struct Offline;

    #[async_trait]
    impl HttpClient for Offline {
        async fn execute(
            &self,
            request: HttpRequest,
        ) -> std::result::Result<HttpResponse, TransportError> {
            Err(TransportError(format!(
                "cannot connect to {}",
                request.url.host_str().unwrap_or("?")
            )))
        }
    }

    fn seed(store: &MemoryStore, env: &str, client_id: &str, hid: &str, username: &str) {
        store
            .write(TokenWrite {
                account: Some(AccountEntry {
                    home_account_id: hid.into(),
                    environment: env.into(),
                    realm: "common".into(),
                    local_account_id: hid.into(),
                    username: username.into(),
                    authority_type: "MSSTS".into(),
                    account_source: None,
                    name: Some("Test User".into()),
                    extra: Default::default(),
                }),
                id_token: Some(IdTokenEntry {
                    home_account_id: hid.into(),
                    environment: env.into(),
                    realm: "common".into(),
                    client_id: client_id.into(),
                    secret: IdTokenString::new("x.y.z"),
                    extra: Default::default(),
                }),
                ..Default::default()
            })
            .unwrap();
    }

    fn tessera(store: Arc<MemoryStore>) -> Tessera {
        let tmp = std::env::temp_dir();
        Tessera::with_parts(
            Paths {
                config_dir: tmp.clone(),
                data_dir: tmp,
            },
            Profiles::builtin_with_sandbox_url(Some("http://127.0.0.1:9")).unwrap(),
            store,
            Arc::new(Offline),
        )
    }

    #[tokio::test]
    async fn accounts_come_from_the_store_even_offline() {
        let store = Arc::new(MemoryStore::new());
        seed(
            &store,
            "login.windows.net",
            crate::profile::MICROSOFT_CLIENT_ID,
            "uid1.tid1",
            "ada@contoso.example",
        );
        seed(
            &store,
            "127.0.0.1",
            crate::profile::SANDBOX_CLIENT_ID,
            "uid2.tid2",
            "alice@sandbox.test",
        );
        seed(
            &store,
            "127.0.0.1",
            "some-other-client",
            "uid3.tid3",
            "bob@sandbox.test",
        );
        let t = tessera(store);
        let all = t.accounts().await.unwrap();
        let summary: Vec<(&str, &str)> = all
            .iter()
            .map(|pa| (pa.profile.as_str(), pa.account.username.as_str()))
            .collect();
        assert_eq!(
            summary,
            vec![
                ("Microsoft", "ada@contoso.example"),
                ("Sandbox", "alice@sandbox.test")
            ]
        );

        let found = t
            .find_account(None, "ALICE@sandbox.test")
            .await
            .unwrap()
            .unwrap();
        assert_eq!(found.profile, "Sandbox");
        let by_id = t
            .find_account(Some("microsoft"), "uid1.tid1")
            .await
            .unwrap()
            .unwrap();
        assert_eq!(by_id.account.username, "ada@contoso.example");
        assert!(t
            .find_account(Some("Microsoft"), "alice@sandbox.test")
            .await
            .unwrap()
            .is_none());
        assert!(t
            .find_account(None, "bob@sandbox.test")
            .await
            .unwrap()
            .is_none());
        let err = t
            .find_account(Some("nope"), "x")
            .await
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("no profile named") && err.contains("Sandbox"),
            "{err}"
        );
    }

    #[tokio::test]
    async fn an_account_in_two_profiles_is_ambiguous() {
        let store = Arc::new(MemoryStore::new());
        seed(
            &store,
            "127.0.0.1",
            crate::profile::SANDBOX_CLIENT_ID,
            "uid2.tid2",
            "alice@sandbox.test",
        );
        let mut t = tessera(store);
        let mut twin = t.profiles().get("Sandbox").unwrap().clone();
        twin.name = "Sandbox twin".into();
        t.profiles_mut().upsert(twin).unwrap();
        let err = t
            .find_account(None, "alice@sandbox.test")
            .await
            .unwrap_err();
        assert_eq!(err.exit_code(), 2);
        assert!(err.to_string().contains("--profile"), "{err}");
        assert!(t
            .find_account(Some("sandbox twin"), "alice@sandbox.test")
            .await
            .unwrap()
            .is_some());
    }

    #[test]
    fn apps_are_shared_until_the_profile_changes() {
        let t = tessera(Arc::new(MemoryStore::new()));
        let sandbox = t.profiles().get("Sandbox").unwrap().clone();
        let a = t.app(&sandbox).unwrap();
        let b = t.app(&sandbox).unwrap();
        assert!(Arc::ptr_eq(&a, &b));
        let mut edited = sandbox.clone();
        edited.client_id = "another-client".into();
        let c = t.app(&edited).unwrap();
        assert!(!Arc::ptr_eq(&a, &c));
        assert_eq!(c.config().client_id, "another-client");
        edited.redirect_uri = "not a url".into();
        assert_eq!(t.app(&edited).err().map(|e| e.exit_code()), Some(2));
    }

    #[test]
    fn open_creates_the_home_and_the_store() {
        let tmp = tempfile::tempdir().unwrap();
        let home = tmp.path().join("home");
        let keys = Arc::new(crate::keystore::MemoryKeys::default());
        let options = StoreOptions {
            allow_plaintext: false,
            keystore: Some(keys.clone() as Arc<dyn crate::keystore::KeyStore>),
        };
        let t = Tessera::open_with(Some(&home), &options).unwrap();
        assert_eq!(t.paths().store_file(), home.join("store.db"));
        assert!(home.join("store.db").is_file());
        assert!(t.profiles().get("Microsoft").is_some());
        let info = t.store_info().unwrap();
        assert_eq!(info.protection, crate::keystore::StoreProtection::Encrypted);
        assert_eq!(info.path, home.join("store.db"));
        drop(t);
        // No keyring: plaintext only when config.toml (or the flag, or the variable) says so.
        keys.unreachable
            .store(true, std::sync::atomic::Ordering::SeqCst);
        let other = tmp.path().join("other");
        if std::env::var_os(crate::keystore::ALLOW_PLAINTEXT_ENV).is_none() {
            let err = Tessera::open_with(Some(&other), &options).unwrap_err();
            assert_eq!(err.exit_code(), 5, "{err}");
            std::fs::write(other.join("config.toml"), "allow_plaintext = true\n").unwrap();
            let t = Tessera::open_with(Some(&other), &options).unwrap();
            assert_eq!(
                t.store_info().unwrap().protection,
                crate::keystore::StoreProtection::Plaintext
            );
        }
        std::fs::write(home.join("profiles.toml"), "[[profile]\n").unwrap();
        let err = Tessera::open_with(Some(&home), &options)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("profiles.toml") && err.contains("line 1"),
            "{err}"
        );
    }
}
