//! [`Tessera`]: what the CLI and the desktop app share: where files live, the profiles,
//! the token store, the HTTP client, and one [`PublicClientApplication`] per profile.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};

use crate::app::{Account, Deps, PublicClientApplication};
use crate::cache::{AccountEntry, TokenStore};
use crate::env::{OsEntropy, SystemClock};
use crate::error::{Error, Result};
use crate::http::{HttpClient, HttpConfig, ReqwestClient};
use crate::keystore::{open_store, plaintext_allowed, StoreInfo, StoreOptions};
use crate::paths::Paths;
use crate::profile::{Profile, Profiles};

/// An account and the profile it was found through.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
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

/// Accounts of the store that no profile lists, from one host and tenant and held by one
/// client: what a profile for them needs ([`Tessera::unlisted_accounts`]).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct UnlistedGroup {
    /// The host they signed in at (`login.microsoftonline.com`, `127.0.0.1`).
    pub environment: String,
    /// That host's origin: a profile's on the same host (which knows its scheme and
    /// port), else `https://HOST`.
    pub origin: String,
    /// The tenant segment they signed in with (`common`, a tenant id).
    pub realm: String,
    /// The client (app) holding their refresh or ID tokens; `None` when the store cannot
    /// tell or holds none.
    pub client_id: Option<String>,
    pub accounts: Vec<AccountEntry>,
}

/// Apps whose accounts people import (their MSAL caches): a profile for them is named so.
const KNOWN_CLIENTS: [(&str, &str); 5] = [
    ("04b07795-8ddb-461a-bbee-02f9e1bf7b46", "Azure CLI"),
    ("1950a258-227b-4e31-a9cf-717495945fc2", "Azure PowerShell"),
    ("aebc6443-996d-45c2-90f0-388ff96faa56", "Visual Studio Code"),
    ("872cd9fa-d31f-45e0-9eab-6e460a02d1f1", "Visual Studio"),
    (
        "14d82eec-204b-4c2f-b7e8-296a70dab67e",
        "Microsoft Graph PowerShell",
    ),
];

impl UnlistedGroup {
    /// The authority they signed in at: the origin, then the tenant segment.
    pub fn authority(&self) -> String {
        let realm = if self.realm.is_empty() {
            "common"
        } else {
            &self.realm
        };
        format!("{}/{realm}", self.origin)
    }
}

impl Tessera {
    /// The accounts of the store that no profile lists, by host, tenant and client. An
    /// import of another app's cache lands here until a profile names that app.
    pub async fn unlisted_accounts(&self) -> Result<Vec<UnlistedGroup>> {
        let listed = self.accounts().await?;
        self.unlisted_among(&listed)
    }

    /// [`Self::unlisted_accounts`] when the profiles' accounts ([`Self::accounts`]) are at
    /// hand already (the app's list has just read them).
    pub fn unlisted_among(&self, listed: &[ProfileAccount]) -> Result<Vec<UnlistedGroup>> {
        let listed: std::collections::HashSet<&str> = listed
            .iter()
            .map(|pa| pa.account.home_account_id.as_str())
            .collect();
        let mut groups: Vec<UnlistedGroup> = Vec::new();
        let mut seen = std::collections::HashSet::new();
        for entry in self.store.accounts()? {
            if listed.contains(entry.home_account_id.as_str())
                || !seen.insert((entry.home_account_id.clone(), entry.environment.clone()))
            {
                continue;
            }
            let clients = self
                .store
                .credential_clients(
                    &entry.home_account_id,
                    std::slice::from_ref(&entry.environment),
                )?
                .filter(|c| !c.is_empty())
                .map_or(vec![None], |c| c.into_iter().map(Some).collect());
            for client_id in clients {
                let key = (&entry.environment, &entry.realm, &client_id);
                match groups
                    .iter_mut()
                    .find(|g| (&g.environment, &g.realm, &g.client_id) == key)
                {
                    Some(g) => g.accounts.push(entry.clone()),
                    None => groups.push(UnlistedGroup {
                        environment: entry.environment.clone(),
                        origin: self.origin_of(&entry.environment),
                        realm: entry.realm.clone(),
                        client_id: client_id.clone(),
                        accounts: vec![entry.clone()],
                    }),
                }
            }
        }
        Ok(groups)
    }

    /// The origin (`scheme://host[:port]`) of a profile on `environment`'s host, else
    /// `https://` and the host.
    fn origin_of(&self, environment: &str) -> String {
        self.profiles
            .list()
            .iter()
            .filter_map(|p| url::Url::parse(p.target()).ok())
            .find(|u| {
                u.host_str()
                    .is_some_and(|h| h.trim_matches(['[', ']']).eq_ignore_ascii_case(environment))
            })
            .map(|u| u.origin().ascii_serialization())
            .unwrap_or_else(|| format!("https://{environment}"))
    }

    /// A profile that lists `group`'s accounts: their authority and client, the scopes
    /// their refresh token was granted (without OpenID Connect's), the sign-in window.
    /// Named after the app when Tessera knows it (Azure CLI, ...), else after the host and
    /// the client; never a name a profile has already. `None` without a client id.
    pub fn suggested_profile(&self, group: &UnlistedGroup) -> Result<Option<Profile>> {
        let Some(client_id) = group.client_id.clone() else {
            return Ok(None);
        };
        let base = KNOWN_CLIENTS
            .iter()
            .find(|(id, _)| id.eq_ignore_ascii_case(&client_id))
            .map(|(_, name)| (*name).to_string())
            .unwrap_or_else(|| {
                format!(
                    "{} {}",
                    group.environment,
                    &client_id[..client_id.len().min(8)]
                )
            });
        let name = std::iter::once(base.clone())
            .chain((2..).map(|n| format!("{base} {n}")))
            .find(|n| self.profiles.get(n).is_none())
            .unwrap_or(base);
        let mut scopes = Vec::new();
        if let Some(a) = group.accounts.first() {
            let q = crate::cache::CredentialQuery {
                home_account_id: &a.home_account_id,
                environments: std::slice::from_ref(&group.environment),
                client_id: &client_id,
                realm: None,
            };
            if let Some(rt) = self.store.refresh_tokens(&q, None)?.first() {
                scopes = crate::scopes::ScopeSet::parse(&rt.target)
                    .without_reserved()
                    .iter()
                    .map(str::to_string)
                    .collect();
            }
        }
        let authority = group.authority();
        let loopback = crate::authority::is_loopback_host(&group.environment);
        let profile = Profile {
            name,
            authority: Some(authority),
            issuer: None,
            client_id,
            redirect_uri: "http://localhost".into(),
            scopes,
            sign_in: Default::default(),
            instance_discovery: !loopback,
            subscription: None,
            builtin: false,
        };
        profile.validate()?;
        Ok(Some(profile))
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
