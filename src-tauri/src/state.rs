//! The app's shared state: the engine ([`Tessera`]), the opened MSAL caches, the
//! settings, and which accounts need a new sign-in. (The sign-in in progress and the
//! clipboard's mark are their features' own state: `signin::SignInState`,
//! `clipboard::ClipboardState`.)

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use tessera_core::app::{Account, PublicClientApplication};
use tessera_core::cache::msal_file::MsalFileStore;
use tessera_core::context::Tessera;
use tessera_core::env::{Clock, SystemClock};
use tessera_core::fsutil::replace_file;
use tessera_core::profile::Profile;
use tessera_core::scopes::ScopeSet;
use tokio::sync::RwLock;

use crate::base::lock;
use crate::error::{AppError, AppResult};
use crate::views::{
    AccountRef, AccountView, MsalCacheView, Settings, TokenStateView, TESSERA_SOURCE,
};

pub const SETTINGS_FILE: &str = "app-settings.json";
/// The MSAL cache files the user opened (`[{id, label, path}]`), next to `profiles.toml`.
pub const MSAL_CACHES_FILE: &str = "msal_caches.json";

/// Why an account needs an interactive sign-in (from its last silent attempt).
#[derive(Debug, Clone)]
pub struct NeedsSignIn {
    pub message: String,
    /// The provider's claims challenge (JSON), if it sent one.
    pub claims: Option<String>,
}

/// An MSAL cache file opened as a second engine (sharing the profiles and HTTP client),
/// or the reason it could not be opened.
pub struct OpenedCache {
    pub view: MsalCacheView,
    pub engine: Option<Tessera>,
}

/// One opened MSAL cache's accounts.
pub struct CacheAccounts {
    pub cache: MsalCacheView,
    /// Accounts a profile matches (environment and client id).
    pub matched: Vec<tessera_core::context::ProfileAccount>,
    /// Accounts no profile matches.
    pub unmatched: Vec<tessera_core::cache::AccountEntry>,
}

/// Azure CLI's MSAL token cache: `$AZURE_CONFIG_DIR/msal_token_cache.json`, else
/// `~/.azure/msal_token_cache.json`.
pub fn azure_cli_cache_path() -> Option<PathBuf> {
    let dir = match std::env::var_os("AZURE_CONFIG_DIR").filter(|d| !d.is_empty()) {
        Some(d) => PathBuf::from(d),
        None => PathBuf::from(std::env::var_os("HOME").filter(|h| !h.is_empty())?).join(".azure"),
    };
    Some(dir.join("msal_token_cache.json"))
}

/// A stable id for an MSAL cache file (from its path): `msal-` and 16 hex digits (FNV-1a).
fn cache_id(path: &std::path::Path) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in path.as_os_str().as_encoded_bytes() {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    format!("msal-{h:016x}")
}

/// Open the MSAL cache file at `path` as an engine sharing `main`'s paths, profiles and
/// HTTP client. A missing file, a folder or a file that is not an MSAL cache is refused
/// (and left as it is).
fn open_cache_engine(main: &Tessera, path: &std::path::Path) -> AppResult<Tessera> {
    match std::fs::metadata(path) {
        Ok(m) if m.is_file() => {}
        Ok(_) => {
            return Err(AppError::Invalid(format!(
                "{} is not a file: name an MSAL token cache file (such as Azure CLI's msal_token_cache.json).",
                path.display()
            )))
        }
        Err(e) => {
            return Err(AppError::NotFound(format!(
                "There is no MSAL token cache at {} ({e}).",
                path.display()
            )))
        }
    }
    let store = MsalFileStore::open(path).map_err(|e| {
        AppError::Invalid(format!(
            "{} cannot be opened as an MSAL token cache: {e}. Nothing was changed.",
            path.display()
        ))
    })?;
    Ok(Tessera::with_parts(
        main.paths().clone(),
        main.profiles().clone(),
        Arc::new(store),
        Arc::clone(main.http()),
    ))
}

/// What opening Tessera's home gives: the engine (or why it failed), the remembered MSAL
/// caches, the settings and where they are kept. Made off the main thread: opening the
/// store may wait on the keyring.
pub struct Opened {
    tessera: Result<Tessera, String>,
    caches: Vec<OpenedCache>,
    settings: Settings,
    settings_file: Option<PathBuf>,
}

impl Opened {
    pub fn new(tessera: tessera_core::Result<Tessera>) -> Self {
        let (tessera, settings_file) = match tessera {
            Ok(t) => {
                let file = t.paths().config_dir.join(SETTINGS_FILE);
                (Ok(t), Some(file))
            }
            Err(e) => (Err(format!("Tessera could not open its data: {e}")), None),
        };
        let remembered: Vec<MsalCacheView> = caches_file_of(settings_file.as_deref())
            .and_then(|f| std::fs::read(f).ok())
            .and_then(|bytes| serde_json::from_slice(&bytes).ok())
            .unwrap_or_default();
        let caches = match &tessera {
            Ok(t) => remembered
                .into_iter()
                .map(|mut view| match open_cache_engine(t, std::path::Path::new(&view.path)) {
                    Ok(engine) => OpenedCache {
                        view,
                        engine: Some(engine),
                    },
                    Err(e) => {
                        tracing::warn!(id = %view.id, "a remembered MSAL cache could not be opened");
                        view.error = Some(e.to_string());
                        OpenedCache { view, engine: None }
                    }
                })
                .collect(),
            Err(_) => Vec::new(),
        };
        let settings = settings_file
            .as_deref()
            .and_then(|f| std::fs::read(f).ok())
            .and_then(|bytes| serde_json::from_slice::<Settings>(&bytes).ok())
            .filter(|s| s.validate().is_ok())
            .unwrap_or_default();
        Opened {
            tessera,
            caches,
            settings,
            settings_file,
        }
    }
}

/// The key of an account's "needs sign-in" for a scope set: the account's id, a newline,
/// then the scopes (without OpenID Connect's), lower-cased and sorted.
fn needs_key(id: &str, scopes: &ScopeSet) -> String {
    let mut s: Vec<String> = scopes
        .without_reserved()
        .iter()
        .map(str::to_ascii_lowercase)
        .collect();
    s.sort();
    format!("{id}\n{}", s.join(" "))
}

/// A profile's default scopes (what the account list's token state is about).
pub fn default_scopes(profile: &Profile) -> ScopeSet {
    tessera_core::scopes::resolve_for_sign_in(&profile.name, &profile.scopes, None)
        .unwrap_or_default()
}

/// `msal_caches.json`, next to the settings file.
fn caches_file_of(settings_file: Option<&std::path::Path>) -> Option<PathBuf> {
    settings_file
        .and_then(|f| f.parent())
        .map(|d| d.join(MSAL_CACHES_FILE))
}

type Opener = Box<dyn FnOnce() -> tessera_core::Result<Tessera> + Send>;

pub struct AppState {
    tessera: RwLock<Result<Tessera, String>>,
    /// The opened MSAL cache files, in the order they were opened.
    caches: RwLock<Vec<OpenedCache>>,
    settings_file: std::sync::OnceLock<PathBuf>,
    settings: Mutex<Settings>,
    /// Account id → why the last silent attempt needed interaction.
    needs_sign_in: Mutex<HashMap<String, NeedsSignIn>>,
    /// False until the home is opened; what needs the engine waits for it.
    opened: tokio::sync::watch::Sender<bool>,
    /// How to open the home, until [`Self::open_in_background`] runs it.
    opener: Mutex<Option<Opener>>,
}

impl AppState {
    /// Wrap an opened engine (or the reason it could not be opened: the window still
    /// starts and says why).
    pub fn new(tessera: tessera_core::Result<Tessera>) -> Self {
        let state = Self::empty(None);
        let opened = Opened::new(tessera);
        {
            // Nothing else can hold the locks of a state being made.
            let mut t = state
                .tessera
                .try_write()
                .expect("a new state's lock is free");
            let mut c = state
                .caches
                .try_write()
                .expect("a new state's lock is free");
            state.install(opened, &mut t, &mut c);
        }
        state
    }

    /// A state whose home `open` opens later, off the main thread
    /// ([`Self::open_in_background`]): the window shows at once, even when the keyring
    /// makes the store wait.
    pub fn opening_with(
        open: impl FnOnce() -> tessera_core::Result<Tessera> + Send + 'static,
    ) -> Self {
        Self::empty(Some(Box::new(open)))
    }

    /// Tessera's home (`TESSERA_HOME`, else the XDG folders), opened in the background.
    pub fn open_default() -> Self {
        Self::opening_with(|| Tessera::open(None))
    }

    fn empty(opener: Option<Opener>) -> Self {
        AppState {
            tessera: RwLock::new(Err("Tessera is still opening its token store.".into())),
            caches: RwLock::new(Vec::new()),
            settings_file: std::sync::OnceLock::new(),
            settings: Mutex::new(Settings::default()),
            needs_sign_in: Mutex::new(HashMap::new()),
            opened: tokio::sync::watch::Sender::new(false),
            opener: Mutex::new(opener),
        }
    }

    /// Put what opening gave in place (the locks are given, held) and wake what waits.
    fn install(
        &self,
        opened: Opened,
        tessera: &mut Result<Tessera, String>,
        caches: &mut Vec<OpenedCache>,
    ) {
        if let Some(f) = opened.settings_file {
            let _ = self.settings_file.set(f);
        }
        *lock(&self.settings) = opened.settings;
        *caches = opened.caches;
        *tessera = opened.tessera;
        self.opened.send_replace(true);
    }

    /// Open the home with the opener given to [`Self::opening_with`], on a blocking
    /// thread. Returns whether it did (false: already open).
    pub async fn open_in_background(&self) -> bool {
        let Some(open) = lock(&self.opener).take() else {
            return false;
        };
        let opened = tauri::async_runtime::spawn_blocking(move || Opened::new(open()))
            .await
            .unwrap_or_else(|e| Opened::new(Err(tessera_core::Error::Config(e.to_string()))));
        let mut t = self.tessera.write().await;
        let mut c = self.caches.write().await;
        self.install(opened, &mut t, &mut c);
        true
    }

    /// Whether the home is still being opened (the store waits on the keyring).
    pub fn is_opening(&self) -> bool {
        !*self.opened.borrow()
    }

    /// Wait until the home is opened (or failed to open).
    pub async fn wait_opened(&self) {
        let mut rx = self.opened.subscribe();
        let _ = rx.wait_for(|o| *o).await;
    }

    pub fn now(&self) -> i64 {
        SystemClock.now()
    }

    /// Run `f` with the engine.
    pub async fn with<T>(&self, f: impl FnOnce(&Tessera) -> AppResult<T>) -> AppResult<T> {
        self.wait_opened().await;
        let guard = self.tessera.read().await;
        match &*guard {
            Ok(t) => f(t),
            Err(e) => Err(AppError::Store(e.clone())),
        }
    }

    /// Run `f` with the engine, mutably (profile edits).
    pub async fn with_mut<T>(&self, f: impl FnOnce(&mut Tessera) -> AppResult<T>) -> AppResult<T> {
        self.wait_opened().await;
        let mut guard = self.tessera.write().await;
        match &mut *guard {
            Ok(t) => f(t),
            Err(e) => Err(AppError::Store(e.clone())),
        }
    }

    /// The engine, read-locked, for async work (listing accounts).
    pub async fn read(
        &self,
    ) -> AppResult<tokio::sync::RwLockReadGuard<'_, Result<Tessera, String>>> {
        self.wait_opened().await;
        let guard = self.tessera.read().await;
        if let Err(e) = &*guard {
            return Err(AppError::Store(e.clone()));
        }
        Ok(guard)
    }

    /// A profile and its application.
    pub async fn profile_app(
        &self,
        name: &str,
    ) -> AppResult<(Profile, Arc<PublicClientApplication>)> {
        self.with(|t| {
            let profile = t.profile(name)?.clone();
            let app = t.app(&profile)?;
            Ok((profile, app))
        })
        .await
    }

    /// A profile and its application on the store `source` names (`tessera` or an
    /// opened MSAL cache's id).
    pub async fn profile_app_in(
        &self,
        source: &str,
        name: &str,
    ) -> AppResult<(Profile, Arc<PublicClientApplication>)> {
        if source == TESSERA_SOURCE {
            return self.profile_app(name).await;
        }
        let profile = self.with(|t| Ok(t.profile(name)?.clone())).await?;
        let caches = self.caches.read().await;
        let engine = Self::cache_engine(&caches, source)?;
        let app = engine.app(&profile)?;
        Ok((profile, app))
    }

    fn cache_engine<'a>(caches: &'a [OpenedCache], id: &str) -> AppResult<&'a Tessera> {
        let c = caches
            .iter()
            .find(|c| c.view.id == id)
            .ok_or_else(|| AppError::NotFound("That MSAL cache is no longer open.".to_string()))?;
        c.engine.as_ref().ok_or_else(|| {
            AppError::Store(
                c.view
                    .error
                    .clone()
                    .unwrap_or_else(|| "That MSAL cache could not be opened.".into()),
            )
        })
    }

    /// The opened MSAL caches.
    pub async fn msal_caches(&self) -> Vec<MsalCacheView> {
        self.wait_opened().await;
        self.caches
            .read()
            .await
            .iter()
            .map(|c| c.view.clone())
            .collect()
    }

    /// The accounts of each opened MSAL cache, per profile (as `Tessera::accounts`), and
    /// those no profile matches (listed all the same).
    pub async fn cache_accounts(&self) -> Vec<CacheAccounts> {
        self.wait_opened().await;
        let caches = self.caches.read().await;
        let mut out = Vec::with_capacity(caches.len());
        for c in caches.iter() {
            let Some(t) = &c.engine else {
                continue;
            };
            let Ok(matched) = t.accounts().await else {
                continue;
            };
            let listed: HashSet<&str> = matched
                .iter()
                .map(|pa| pa.account.home_account_id.as_str())
                .collect();
            let mut seen = HashSet::new();
            let unmatched = t
                .store()
                .accounts()
                .unwrap_or_default()
                .into_iter()
                .filter(|e| {
                    !listed.contains(e.home_account_id.as_str())
                        && seen.insert(e.home_account_id.clone())
                })
                .collect();
            out.push(CacheAccounts {
                cache: c.view.clone(),
                matched,
                unmatched,
            });
        }
        out
    }

    /// Remove an account no profile matches from an MSAL cache (every environment it
    /// is cached in). Returns how many entries were removed.
    pub async fn remove_unmatched(&self, source: &str, home_account_id: &str) -> AppResult<usize> {
        self.with_engine_of(source, |t| {
            let envs: Vec<String> = t
                .store()
                .accounts()
                .map_err(|e| AppError::Store(e.to_string()))?
                .into_iter()
                .filter(|e| e.home_account_id == home_account_id)
                .map(|e| e.environment)
                .collect();
            if envs.is_empty() {
                return Err(AppError::NotFound(
                    "That account is no longer in the store.".into(),
                ));
            }
            t.store()
                .remove_account(home_account_id, &envs)
                .map_err(|e| AppError::Store(e.to_string()))
        })
        .await
    }

    /// Run `f` with the engine of `source`: Tessera's own, or an opened MSAL cache's.
    pub async fn with_engine_of<T>(
        &self,
        source: &str,
        f: impl FnOnce(&Tessera) -> AppResult<T>,
    ) -> AppResult<T> {
        if source == TESSERA_SOURCE {
            return self.with(f).await;
        }
        self.wait_opened().await;
        let caches = self.caches.read().await;
        f(Self::cache_engine(&caches, source)?)
    }

    /// The accounts of Tessera's store that no profile lists, by where they signed in and
    /// the app holding them (an import of another app's cache, a removed profile).
    pub async fn unlisted_accounts(&self) -> Vec<tessera_core::context::UnlistedGroup> {
        let Ok(guard) = self.read().await else {
            return Vec::new();
        };
        match &*guard {
            Ok(t) => t.unlisted_accounts().await.unwrap_or_default(),
            Err(_) => Vec::new(),
        }
    }

    /// Add the profile that lists the account `r` names (one no profile lists), made by
    /// the engine from where it signed in and the app holding its tokens, and save it.
    pub async fn add_profile_for(&self, r: &AccountRef) -> AppResult<Profile> {
        let group = {
            let find = |groups: Vec<tessera_core::context::UnlistedGroup>| {
                groups.into_iter().find(|g| {
                    g.accounts
                        .iter()
                        .any(|e| e.home_account_id == r.home_account_id)
                })
            };
            if r.source == TESSERA_SOURCE {
                find(self.unlisted_accounts().await)
            } else {
                self.wait_opened().await;
                let caches = self.caches.read().await;
                let t = Self::cache_engine(&caches, &r.source)?;
                find(t.unlisted_accounts().await?)
            }
        }
        .ok_or_else(|| {
            AppError::NotFound("A profile lists that account already (or it is gone).".into())
        })?;
        let profile = self
            .with(|t| Ok(t.suggested_profile(&group)?))
            .await?
            .ok_or_else(|| {
                AppError::Invalid(
                    "Tessera cannot tell which app signed this account in: add a profile by hand (Profiles)."
                        .into(),
                )
            })?;
        let saved = profile.clone();
        self.with_mut(|t| {
            let mut next = t.profiles().clone();
            next.upsert(saved)?;
            next.save(&t.paths().profiles_file())?;
            *t.profiles_mut() = next;
            Ok(())
        })
        .await?;
        self.sync_cache_profiles().await;
        Ok(profile)
    }

    /// Open the MSAL cache file at `path` and remember it (`msal_caches.json`). Opening
    /// one that is open already renames it to `label`.
    pub async fn open_cache(&self, path: PathBuf, label: String) -> AppResult<MsalCacheView> {
        let path = std::fs::canonicalize(&path).unwrap_or(path);
        let id = cache_id(&path);
        let engine = self.with(|t| open_cache_engine(t, &path)).await?;
        let view = MsalCacheView {
            id: id.clone(),
            label,
            path: path.display().to_string(),
            error: None,
        };
        let mut caches = self.caches.write().await;
        let opened = OpenedCache {
            view: view.clone(),
            engine: Some(engine),
        };
        match caches.iter_mut().find(|c| c.view.id == id) {
            Some(c) => *c = opened,
            None => caches.push(opened),
        }
        self.save_caches(&caches)?;
        tracing::info!(id = %id, "MSAL cache opened");
        Ok(view)
    }

    /// Close (forget) an opened MSAL cache; its file is left as it is.
    pub async fn close_cache(&self, id: &str) -> AppResult<()> {
        self.wait_opened().await;
        let mut caches = self.caches.write().await;
        let before = caches.len();
        caches.retain(|c| c.view.id != id);
        if caches.len() == before {
            return Err(AppError::NotFound("That MSAL cache is not open.".into()));
        }
        self.save_caches(&caches)?;
        lock(&self.needs_sign_in).retain(|k, _| !k.starts_with(&format!("{id}|")));
        Ok(())
    }

    fn save_caches(&self, caches: &[OpenedCache]) -> AppResult<()> {
        let Some(file) = caches_file_of(self.settings_file.get().map(PathBuf::as_path)) else {
            return Ok(());
        };
        let views: Vec<MsalCacheView> = caches
            .iter()
            .map(|c| MsalCacheView {
                error: None,
                ..c.view.clone()
            })
            .collect();
        let body = serde_json::to_vec_pretty(&views).map_err(|e| AppError::Store(e.to_string()))?;
        replace_file(&file, &body).map(drop).map_err(|e| {
            AppError::Store(format!(
                "Cannot save the list of MSAL caches to {}: {e}",
                file.display()
            ))
        })
    }

    /// Give the opened MSAL caches the current profiles (after an edit).
    pub async fn sync_cache_profiles(&self) {
        let profiles = {
            let guard = self.tessera.read().await;
            match &*guard {
                Ok(t) => t.profiles().clone(),
                Err(_) => return,
            }
        };
        for c in self.caches.write().await.iter_mut() {
            if let Some(t) = c.engine.as_mut() {
                *t.profiles_mut() = profiles.clone();
            }
        }
    }

    /// The label of the group `source` is listed under (`None` for Tessera's store).
    pub async fn group_of(&self, source: &str) -> Option<String> {
        if source == TESSERA_SOURCE {
            return None;
        }
        self.caches
            .read()
            .await
            .iter()
            .find(|c| c.view.id == source)
            .map(|c| c.view.label.clone())
    }

    /// The profile, application and cached account an [`AccountRef`] names.
    pub async fn resolve(
        &self,
        r: &AccountRef,
    ) -> AppResult<(Profile, Arc<PublicClientApplication>, Account)> {
        if r.profile.is_empty() {
            return Err(AppError::NotFound(
                "No profile matches this account (its provider and the app that signed it in), so Tessera cannot get its tokens: add a profile with that provider and client id.".into(),
            ));
        }
        let (profile, app) = self.profile_app_in(&r.source, &r.profile).await?;
        let account = app
            .get_accounts()
            .await?
            .into_iter()
            .find(|a| a.home_account_id == r.home_account_id)
            .ok_or_else(|| {
                AppError::NotFound(format!(
                    "That account is no longer signed in with {}.",
                    profile.name
                ))
            })?;
        Ok((profile, app, account))
    }

    pub fn settings(&self) -> Settings {
        lock(&self.settings).clone()
    }

    pub fn home_description(&self) -> Option<PathBuf> {
        self.settings_file
            .get()
            .and_then(|f| f.parent().map(PathBuf::from))
    }

    pub fn save_settings(&self, settings: Settings) -> AppResult<Settings> {
        settings.validate()?;
        if let Some(file) = self.settings_file.get() {
            let body =
                serde_json::to_vec_pretty(&settings).map_err(|e| AppError::Store(e.to_string()))?;
            replace_file(file, &body).map_err(|e| {
                AppError::Store(format!(
                    "Cannot save the settings to {}: {e}",
                    file.display()
                ))
            })?;
        }
        *lock(&self.settings) = settings.clone();
        Ok(settings)
    }

    /// Remember (or, with `None`, forget) that a silent token for `scopes` of account `id`
    /// needs an interactive sign-in. Kept per scope set: a scope that needs consent does
    /// not mark the account's default token.
    pub fn mark_needs_sign_in(&self, id: &str, scopes: &ScopeSet, reason: Option<NeedsSignIn>) {
        let key = needs_key(id, scopes);
        let mut map = lock(&self.needs_sign_in);
        match reason {
            Some(r) => {
                map.insert(key, r);
            }
            None => {
                map.remove(&key);
            }
        }
    }

    /// Forget every scope set's "needs sign-in" of account `id` (it signed in or out).
    pub fn clear_needs_sign_in(&self, id: &str) {
        let prefix = needs_key(id, &ScopeSet::default());
        lock(&self.needs_sign_in).retain(|k, _| !k.starts_with(&prefix));
    }

    /// The claims challenge the provider sent with the last "interaction required" of
    /// `scopes` for account `id`, to pass on to the interactive sign-in.
    pub fn claims_challenge(&self, id: &str, scopes: &ScopeSet) -> Option<String> {
        lock(&self.needs_sign_in)
            .get(&needs_key(id, scopes))
            .and_then(|n| n.claims.clone())
    }

    /// What the store says about `account`'s token for the profile's default scopes
    /// (the engine answers from its indexes: no secret is opened, and no network request
    /// is made except, once per profile, Entra instance discovery).
    pub async fn token_state(
        &self,
        source: &str,
        profile: &Profile,
        app: &PublicClientApplication,
        account: &Account,
    ) -> TokenStateView {
        let id = AccountRef {
            source: source.to_string(),
            profile: profile.name.clone(),
            home_account_id: account.home_account_id.clone(),
        }
        .id();
        let wanted = default_scopes(profile);
        let needs_sign_in = lock(&self.needs_sign_in)
            .get(&needs_key(&id, &wanted))
            .map(|n| n.message.clone());
        let known = app.token_state(account, &wanted).await.unwrap_or_default();
        TokenStateView {
            expires_on: known.expires_on,
            has_refresh_token: known.has_refresh_token,
            needs_sign_in,
        }
    }

    pub async fn account_view(
        &self,
        profile: &Profile,
        app: &PublicClientApplication,
        account: &Account,
    ) -> AccountView {
        self.account_view_in(TESSERA_SOURCE, profile, app, account)
            .await
    }

    /// [`Self::account_view`] for an account of `source` (an MSAL cache's id, or `tessera`).
    pub async fn account_view_in(
        &self,
        source: &str,
        profile: &Profile,
        app: &PublicClientApplication,
        account: &Account,
    ) -> AccountView {
        let token = self.token_state(source, profile, app, account).await;
        let group = self.group_of(source).await;
        AccountView::in_source(source, group.as_deref(), profile, account, token)
    }
}
