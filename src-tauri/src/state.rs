//! The app's shared state: the engine ([`Tessera`]), settings, the sign-in in progress,
//! what Tessera last put on the clipboard, and which accounts need a new sign-in.

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use serde::{Deserialize, Serialize};
use tessera_core::app::{Account, PublicClientApplication};
use tessera_core::cache::{target_covers, CredentialQuery};
use tessera_core::context::Tessera;
use tessera_core::env::{Clock, SystemClock};
use tessera_core::profile::Profile;
use tessera_core::scopes::ScopeSet;
use tokio::sync::RwLock;

use crate::clipboard::ClipboardMark;
use crate::error::{AppError, AppResult};
use crate::signin::{DeviceSession, PendingSignIn};
use crate::views::{AccountRef, AccountView, TokenStateView};

/// User settings of the desktop app (`app-settings.json` next to `profiles.toml`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Settings {
    /// Clear the clipboard this long after copying a token, if it still holds it (0: never).
    pub clipboard_clear_secs: u64,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            clipboard_clear_secs: 30,
        }
    }
}

pub const SETTINGS_FILE: &str = "app-settings.json";
pub const MAX_CLIPBOARD_CLEAR_SECS: u64 = 3600;

impl Settings {
    pub fn validate(&self) -> AppResult<()> {
        if self.clipboard_clear_secs > MAX_CLIPBOARD_CLEAR_SECS {
            return Err(AppError::Invalid(format!(
                "The clipboard can be cleared after at most {MAX_CLIPBOARD_CLEAR_SECS} seconds (0 turns clearing off)."
            )));
        }
        Ok(())
    }
}

/// Why an account needs an interactive sign-in (from its last silent attempt).
#[derive(Debug, Clone)]
pub struct NeedsSignIn {
    pub message: String,
    /// The provider's claims challenge (JSON), if it sent one.
    pub claims: Option<String>,
}

/// Lock a std mutex, ignoring poisoning (a panicked holder left plain data behind).
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

pub struct AppState {
    tessera: RwLock<Result<Tessera, String>>,
    settings_file: Option<PathBuf>,
    pub(crate) settings: Mutex<Settings>,
    pub(crate) sign_in: Mutex<Option<PendingSignIn>>,
    pub(crate) device: Mutex<Option<DeviceSession>>,
    pub(crate) clipboard: Mutex<ClipboardMark>,
    /// Account id → why the last silent attempt needed interaction.
    needs_sign_in: Mutex<HashMap<String, NeedsSignIn>>,
    /// Profiles whose sign-in web context was created in this process (WebKitGTK keeps
    /// it, with its cookies in memory, until the app exits).
    pub(crate) live_web_contexts: Mutex<HashSet<String>>,
    next_id: AtomicU64,
}

impl AppState {
    /// Wrap an opened engine (or the reason it could not be opened: the window still
    /// starts and says why).
    pub fn new(tessera: tessera_core::Result<Tessera>) -> Self {
        let (tessera, settings_file) = match tessera {
            Ok(t) => {
                let file = t.paths().config_dir.join(SETTINGS_FILE);
                (Ok(t), Some(file))
            }
            Err(e) => (Err(format!("Tessera could not open its data: {e}")), None),
        };
        let settings = settings_file
            .as_deref()
            .and_then(|f| std::fs::read(f).ok())
            .and_then(|bytes| serde_json::from_slice::<Settings>(&bytes).ok())
            .filter(|s| s.validate().is_ok())
            .unwrap_or_default();
        AppState {
            tessera: RwLock::new(tessera),
            settings_file,
            settings: Mutex::new(settings),
            sign_in: Mutex::new(None),
            device: Mutex::new(None),
            clipboard: Mutex::new(ClipboardMark::default()),
            needs_sign_in: Mutex::new(HashMap::new()),
            live_web_contexts: Mutex::new(HashSet::new()),
            next_id: AtomicU64::new(1),
        }
    }

    /// Open Tessera's home (`TESSERA_HOME`, else the XDG folders).
    pub fn open_default() -> Self {
        Self::new(Tessera::open(None))
    }

    pub fn next_id(&self) -> u64 {
        self.next_id.fetch_add(1, Ordering::Relaxed)
    }

    pub fn now(&self) -> i64 {
        SystemClock.now()
    }

    /// Run `f` with the engine.
    pub async fn with<T>(&self, f: impl FnOnce(&Tessera) -> AppResult<T>) -> AppResult<T> {
        let guard = self.tessera.read().await;
        match &*guard {
            Ok(t) => f(t),
            Err(e) => Err(AppError::Store(e.clone())),
        }
    }

    /// Run `f` with the engine, mutably (profile edits).
    pub async fn with_mut<T>(&self, f: impl FnOnce(&mut Tessera) -> AppResult<T>) -> AppResult<T> {
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

    /// The profile, application and cached account an [`AccountRef`] names.
    pub async fn resolve(
        &self,
        r: &AccountRef,
    ) -> AppResult<(Profile, Arc<PublicClientApplication>, Account)> {
        let (profile, app) = self.profile_app(&r.profile).await?;
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
            .as_ref()
            .and_then(|f| f.parent().map(PathBuf::from))
    }

    pub fn save_settings(&self, settings: Settings) -> AppResult<Settings> {
        settings.validate()?;
        if let Some(file) = &self.settings_file {
            let body =
                serde_json::to_vec_pretty(&settings).map_err(|e| AppError::Store(e.to_string()))?;
            let tmp = file.with_extension("json.tmp");
            std::fs::write(&tmp, body)
                .and_then(|()| std::fs::rename(&tmp, file))
                .map_err(|e| {
                    AppError::Store(format!(
                        "Cannot save the settings to {}: {e}",
                        file.display()
                    ))
                })?;
        }
        *lock(&self.settings) = settings.clone();
        Ok(settings)
    }

    pub fn mark_needs_sign_in(&self, id: &str, reason: Option<NeedsSignIn>) {
        let mut map = lock(&self.needs_sign_in);
        match reason {
            Some(r) => {
                map.insert(id.to_string(), r);
            }
            None => {
                map.remove(id);
            }
        }
    }

    /// The claims challenge the provider sent with the account's last "interaction
    /// required", to pass on to the interactive sign-in.
    pub fn claims_challenge(&self, id: &str) -> Option<String> {
        lock(&self.needs_sign_in)
            .get(id)
            .and_then(|n| n.claims.clone())
    }

    /// What the store says about `account`'s token for the profile's default scopes
    /// (no network except, once per profile, Entra instance discovery).
    pub async fn token_state(
        &self,
        profile: &Profile,
        app: &PublicClientApplication,
        account: &Account,
    ) -> TokenStateView {
        let id = AccountRef {
            profile: profile.name.clone(),
            home_account_id: account.home_account_id.clone(),
        }
        .id();
        let needs_sign_in = lock(&self.needs_sign_in)
            .get(&id)
            .map(|n| n.message.clone());
        let envs = app.aliases().await;
        let wanted =
            ScopeSet::from_iter(profile.scopes.iter().map(String::as_str)).without_reserved();
        let guard = self.tessera.read().await;
        let Ok(t) = &*guard else {
            return TokenStateView {
                needs_sign_in,
                ..Default::default()
            };
        };
        let q = CredentialQuery {
            home_account_id: &account.home_account_id,
            environments: &envs,
            client_id: &app.config().client_id,
            realm: None,
        };
        let expires_on = t.store().access_tokens(&q).ok().and_then(|ats| {
            ats.into_iter()
                .filter(|at| target_covers(&at.target, &wanted))
                .map(|at| at.expires_on)
                .max()
        });
        let has_refresh_token = t
            .store()
            .refresh_tokens(&q, Some("1"))
            .map(|rts| !rts.is_empty())
            .unwrap_or(false);
        TokenStateView {
            expires_on,
            has_refresh_token,
            needs_sign_in,
        }
    }

    pub async fn account_view(
        &self,
        profile: &Profile,
        app: &PublicClientApplication,
        account: &Account,
    ) -> AccountView {
        let token = self.token_state(profile, app, account).await;
        AccountView::new(profile, account, token)
    }
}
