//! The commands the main window calls. Each one delegates to the engine
//! (`tessera-core`) and returns a view (`views.rs`) or an [`AppError`]. Argument names
//! are snake_case on the JavaScript side too.
//!
//! Keep the list in step with `build.rs` (one permission per command) and
//! `capabilities/main.json`.

use tauri::{AppHandle, Emitter, Manager, Runtime, State};
use tessera_core::app::{PublicClientApplication, SilentOptions};
use tessera_core::decode::decode;
use tessera_core::profile::{Profile, SignInMethod};
use tessera_core::scopes::{resolve, ScopeSet};

use crate::agent::{self, AgentState};
use crate::clipboard;
use crate::error::{AppError, AppResult};
use crate::signin::{self, SignInState};
use crate::state::{azure_cli_cache_path, AppState, NeedsSignIn};
use crate::views::{
    AccountRef, AccountView, ActivityView, AgentAnswer, AgentStatusView, AppInfo, CopyFormat,
    CopyView, DeviceCodeView, MsalCacheView, MsalCachesView, ProfileInput, ProfileKind,
    ProfileView, Settings, SettingsView, SignInStarted, SignOutView, StoreProtectionView,
    TokenView, ToolKind, ToolLinesView, EVENT_ACCOUNTS_CHANGED, TESSERA_SOURCE,
};

/// The list's group of the accounts of Tessera's store that no profile lists.
const NO_PROFILE_GROUP: &str = "No profile";

/// The scopes of a token request: those typed, else the profile's
/// ([`tessera_core::scopes::resolve`], the rule the command line follows too).
fn token_scopes(profile: &Profile, typed: Option<&str>) -> AppResult<ScopeSet> {
    resolve(&profile.name, &profile.scopes, typed).map_err(|e| AppError::Invalid(format!("{e}.")))
}

#[tauri::command(rename_all = "snake_case")]
pub async fn app_info(state: State<'_, AppState>) -> AppResult<AppInfo> {
    tracing::debug!(
        since_launch_ms = crate::base::since_launch().as_millis() as u64,
        "start-up: the main window's first call"
    );
    let version = env!("CARGO_PKG_VERSION").to_string();
    if state.is_opening() {
        // Answered at once: the window says it waits for the keyring, `store:opened` follows.
        return Ok(AppInfo {
            version,
            opening: true,
            home: String::new(),
            store: String::new(),
            protection: None,
        });
    }
    let (home, store, protection) = state
        .with(|t| {
            Ok((
                t.paths().data_dir.display().to_string(),
                t.store().describe(),
                t.store_info().map(StoreProtectionView::from),
            ))
        })
        .await?;
    Ok(AppInfo {
        version,
        opening: false,
        home,
        store,
        protection,
    })
}

/// The main window has painted its first account list. Logged at info level with the
/// time since launch: `bench/app` measures start-up by this line, and a user can see
/// where a slow start went.
#[tauri::command(rename_all = "snake_case")]
pub fn ui_ready(accounts: usize) {
    tracing::info!(
        accounts,
        since_launch_ms = crate::base::since_launch().as_millis() as u64,
        "main window ready: account list painted"
    );
}

// ------------------------------------------------------------------ profiles

#[tauri::command(rename_all = "snake_case")]
pub async fn list_profiles(state: State<'_, AppState>) -> AppResult<Vec<ProfileView>> {
    state
        .with(|t| Ok(t.profiles().list().iter().map(ProfileView::from).collect()))
        .await
}

fn profile_from_input(input: ProfileInput) -> AppResult<Profile> {
    let name = input.name.trim().to_string();
    let url = input.authority.trim().to_string();
    if url.is_empty() {
        return Err(AppError::Invalid(
            "Enter the authority (or issuer) URL.".into(),
        ));
    }
    let oidc = input.kind == ProfileKind::Oidc;
    let scopes: Vec<String> = input
        .default_scopes
        .split_whitespace()
        .map(str::to_string)
        .collect();
    Ok(Profile {
        name,
        authority: (!oidc).then(|| url.clone()),
        issuer: oidc.then_some(url),
        client_id: input.client_id.trim().to_string(),
        redirect_uri: input
            .redirect_uri
            .map(|r| r.trim().to_string())
            .filter(|r| !r.is_empty())
            .unwrap_or_else(|| "http://localhost".to_string()),
        scopes,
        sign_in: input.sign_in,
        instance_discovery: input.instance_discovery.unwrap_or(!oidc),
        // The app does not edit it; save_profile keeps the edited profile's.
        subscription: None,
        builtin: false,
    })
}

/// Add or edit a user profile: validated, then the provider is asked for its metadata
/// (an unreachable or wrong URL is reported and nothing is saved).
#[tauri::command(rename_all = "snake_case")]
pub async fn save_profile(
    state: State<'_, AppState>,
    original_name: Option<String>,
    profile: ProfileInput,
) -> AppResult<ProfileView> {
    let mut profile = profile_from_input(profile)?;
    profile.validate()?;
    // Check the provider before saving: discovery must answer.
    let app = state.with(|t| Ok(t.app(&profile)?)).await?;
    app.metadata().await.map_err(|e| {
        AppError::Invalid(format!(
            "Could not reach the identity provider of {}: {}",
            profile.name,
            AppError::from(e)
        ))
    })?;
    let view = ProfileView::from(&profile);
    state
        .with_mut(|t| {
            let mut next = t.profiles().clone();
            if let Some(old) = original_name
                .as_deref()
                .filter(|o| !o.trim().eq_ignore_ascii_case(profile.name.trim()))
            {
                if next.get(&profile.name).is_some() {
                    return Err(AppError::Invalid(format!(
                        "A profile named {} already exists.",
                        profile.name
                    )));
                }
                profile.subscription = next.get(old).and_then(|p| p.subscription.clone());
                next.remove(old)?;
            } else if original_name.is_none() && next.get(&profile.name).is_some() {
                return Err(AppError::Invalid(format!(
                    "A profile named {} already exists.",
                    profile.name
                )));
            } else if let Some(edited) = next.get(&profile.name) {
                profile.subscription = edited.subscription.clone();
            }
            next.upsert(profile)?;
            next.save(&t.paths().profiles_file())?;
            *t.profiles_mut() = next;
            Ok(())
        })
        .await?;
    state.sync_cache_profiles().await;
    Ok(view)
}

#[tauri::command(rename_all = "snake_case")]
pub async fn remove_profile(state: State<'_, AppState>, name: String) -> AppResult<()> {
    state
        .with_mut(|t| {
            let mut next = t.profiles().clone();
            next.remove(&name)?;
            next.save(&t.paths().profiles_file())?;
            *t.profiles_mut() = next;
            Ok(())
        })
        .await?;
    state.sync_cache_profiles().await;
    Ok(())
}

// ------------------------------------------------------------------ accounts and tokens

/// Every profile's signed-in accounts, read from the token store (an unreachable
/// provider does not hide them), with what the store says about their tokens.
#[tauri::command(rename_all = "snake_case")]
pub async fn list_accounts(state: State<'_, AppState>) -> AppResult<Vec<AccountView>> {
    let (mut accounts, profiles, unlisted) = {
        let guard = state.read().await?;
        let t = guard.as_ref().map_err(|e| AppError::Store(e.clone()))?;
        let accounts = t.accounts().await?;
        // Accounts of Tessera's store no profile lists (an import of another app's cache).
        let unlisted = t.unlisted_among(&accounts).unwrap_or_default();
        (accounts, t.profiles().clone(), unlisted)
    };
    // By name, then tenant, across profiles (then by profile).
    accounts.sort_by_cached_key(|pa| (pa.account.sort_key(), pa.profile.to_lowercase()));
    let mut out = Vec::with_capacity(accounts.len());
    for pa in accounts {
        let Some(profile) = profiles.get(&pa.profile) else {
            continue;
        };
        let app = state.with(|t| Ok(t.app(profile)?)).await?;
        out.push(state.account_view(profile, &app, &pa.account).await);
    }
    // Those no profile lists: listed all the same, with where they signed in and the app,
    // to add a profile for.
    for g in unlisted {
        let client = g.client_id.as_deref().unwrap_or("unknown app");
        for entry in &g.accounts {
            let provider = format!("No profile · {} · client {client}", g.authority());
            out.push(AccountView::unlisted(
                TESSERA_SOURCE,
                Some(NO_PROFILE_GROUP),
                entry,
                provider,
            ));
        }
    }
    // Then each opened MSAL cache's accounts, as a group of their own.
    for ca in state.cache_accounts().await {
        let cache = ca.cache;
        for pa in ca.matched {
            let Some(profile) = profiles.get(&pa.profile) else {
                continue;
            };
            let Ok((_, app)) = state.profile_app_in(&cache.id, &profile.name).await else {
                continue;
            };
            out.push(
                state
                    .account_view_in(&cache.id, profile, &app, &pa.account)
                    .await,
            );
        }
        // Accounts no profile matches are listed too (their tokens need a profile).
        for entry in &ca.unmatched {
            out.push(AccountView::unmatched(&cache.id, Some(&cache.label), entry));
        }
    }
    tracing::debug!(
        accounts = out.len(),
        since_launch_ms = crate::base::since_launch().as_millis() as u64,
        "accounts listed"
    );
    Ok(out)
}

/// Acquire a token silently (cache, then refresh token) for `account` and `scopes`
/// (default: the profile's). Remembers when the account needs an interactive sign-in.
async fn acquire(
    state: &AppState,
    account: &AccountRef,
    scopes: Option<&str>,
    force_refresh: bool,
) -> AppResult<(AccountView, ScopeSet, tessera_core::app::AuthResult)> {
    let (profile, app, acc) = state.resolve(account).await?;
    let scopes = token_scopes(&profile, scopes)?;
    let options = SilentOptions {
        force_refresh,
        ..SilentOptions::default()
    };
    let id = account.id();
    match app.acquire_token_silent(&scopes, &acc, &options).await {
        Ok(result) => {
            state.mark_needs_sign_in(&id, &scopes, None);
            let view = state
                .account_view_in(&account.source, &profile, &app, &acc)
                .await;
            Ok((view, scopes, result))
        }
        Err(e) => {
            let claims = e.provider_error().and_then(|p| p.claims.clone());
            let e = AppError::from(e);
            if let AppError::InteractionRequired { message, .. } = &e {
                state.mark_needs_sign_in(
                    &id,
                    &scopes,
                    Some(NeedsSignIn {
                        message: message.clone(),
                        claims,
                    }),
                );
            }
            Err(e)
        }
    }
}

/// The account's access token, decoded. The token itself is not in the view.
#[tauri::command(rename_all = "snake_case")]
pub async fn token_view(
    state: State<'_, AppState>,
    account: AccountRef,
    scopes: Option<String>,
    force_refresh: Option<bool>,
) -> AppResult<TokenView> {
    let (view, requested, result) = acquire(
        &state,
        &account,
        scopes.as_deref(),
        force_refresh.unwrap_or(false),
    )
    .await?;
    let decoded = decode(result.access_token.secret(), state.now());
    Ok(TokenView::new(view, &requested, &result, &decoded))
}

/// Copy the account's access token (`format` `raw`) or an `Authorization: Bearer ...`
/// header line (`format` `header`) to the clipboard, from Rust.
#[tauri::command(rename_all = "snake_case")]
pub async fn copy_token<R: Runtime>(
    app: AppHandle<R>,
    state: State<'_, AppState>,
    account: AccountRef,
    scopes: Option<String>,
    format: CopyFormat,
) -> AppResult<CopyView> {
    let (view, _, result) = acquire(&state, &account, scopes.as_deref(), false).await?;
    let clear_after_secs = state.settings().clipboard_clear_secs;
    let secret = result.access_token.secret();
    if format == CopyFormat::Header {
        clipboard::copy_secret(
            &app,
            &format!("Authorization: {} {secret}", result.token_type),
            clear_after_secs,
        )?;
    } else {
        clipboard::copy_secret(&app, secret, clear_after_secs)?;
    }
    tracing::info!(?format, "access token copied to the clipboard");
    Ok(CopyView {
        account: view,
        format,
        expires_on: result.expires_on,
        clear_after_secs,
    })
}

/// Add the profile that lists an account no profile lists (made by the engine from where
/// it signed in and the app holding its tokens), in one step.
#[tauri::command(rename_all = "snake_case")]
pub async fn add_profile_for<R: Runtime>(
    app: AppHandle<R>,
    state: State<'_, AppState>,
    account: AccountRef,
) -> AppResult<ProfileView> {
    let profile = state.add_profile_for(&account).await?;
    tracing::info!(profile = %profile.name, "profile added for unlisted accounts");
    let _ = app.emit_to("main", EVENT_ACCOUNTS_CHANGED, ());
    Ok(ProfileView::from(&profile))
}

// ------------------------------------------------------------------ use with tools

/// `tessera-cli` beside the app's own executable (an install, a build folder), else the
/// one on `PATH`.
fn cli_program() -> String {
    std::env::current_exe()
        .ok()
        .and_then(|exe| Some(exe.parent()?.join("tessera-cli")))
        .filter(|cli| cli.is_file())
        .map(|cli| cli.display().to_string())
        .unwrap_or_else(|| "tessera-cli".to_string())
}

async fn lines_for(
    state: &AppState,
    account: &AccountRef,
    scopes: Option<&str>,
) -> AppResult<tessera_core::tools::ToolLines> {
    if account.source != TESSERA_SOURCE {
        return Err(AppError::Invalid(
            "Tools get their tokens from Tessera's own store: sign this account in with Tessera to use it with them.".into(),
        ));
    }
    let (profile, _, acc) = state.resolve(account).await?;
    let scopes = token_scopes(&profile, scopes)?;
    let home = state
        .with(|t| {
            let p = t.paths();
            Ok((p.config_dir == p.data_dir).then(|| p.data_dir.clone()))
        })
        .await?;
    let cli = cli_program();
    Ok(tessera_core::tools::tool_lines(
        &tessera_core::tools::ToolTarget {
            cli: &cli,
            home: home.as_deref(),
            profile: &profile.name,
            account: &acc.username,
            scopes: &scopes,
        },
    ))
}

/// The "Use with tools" lines for `account` and `scopes` (default: the profile's).
#[tauri::command(rename_all = "snake_case")]
pub async fn tool_lines(
    state: State<'_, AppState>,
    account: AccountRef,
    scopes: Option<String>,
) -> AppResult<ToolLinesView> {
    Ok(lines_for(&state, &account, scopes.as_deref()).await?.into())
}

/// Copy one of the "Use with tools" lines (made here again: the page does not choose the
/// text that reaches the clipboard).
#[tauri::command(rename_all = "snake_case")]
pub async fn copy_tool_line<R: Runtime>(
    app: AppHandle<R>,
    state: State<'_, AppState>,
    account: AccountRef,
    scopes: Option<String>,
    tool: ToolKind,
) -> AppResult<()> {
    let lines = lines_for(&state, &account, scopes.as_deref()).await?;
    let line = match tool {
        ToolKind::Kubectl => lines.kubectl,
        ToolKind::Git => lines.git,
        ToolKind::Run => lines.run,
    };
    clipboard::copy_plain(&app, &line)
}

// ------------------------------------------------------------------ sign-in

/// Start an interactive sign-in with `profile`: `method` `embedded` (sign-in window) or
/// `browser` (system browser); default: the profile's. With `account`, that account
/// signs in again (its username as the hint, with the provider's claims challenge if
/// there was one); without, the provider lets the user pick or add an account. The
/// outcome arrives as the `signin:finished` event.
#[tauri::command(rename_all = "snake_case")]
pub async fn sign_in<R: Runtime>(
    app: AppHandle<R>,
    state: State<'_, AppState>,
    profile: String,
    method: Option<SignInMethod>,
    account: Option<AccountRef>,
    scopes: Option<String>,
) -> AppResult<SignInStarted> {
    let (profile, pca) = state.profile_app(&profile).await?;
    let mut params = signin::params(&profile, scopes.as_deref(), None)?;
    reachable(&profile, &pca).await?;
    if let Some(r) = account {
        // An account that is gone (signed out meanwhile) simply signs in anew.
        if let Ok((_, _, acc)) = state.resolve(&r).await {
            params.login_hint = Some(acc.username);
            params.prompt = None;
        }
        params.claims = state.claims_challenge(&r.id(), &params.scopes);
    }
    match method.unwrap_or(profile.sign_in) {
        SignInMethod::Embedded => signin::start_embedded(&app, profile, pca, params).await,
        SignInMethod::Browser => signin::start_browser(&app, profile, pca, params).await,
        SignInMethod::DeviceCode => Err(AppError::Invalid(
            "Use start_device_code for the device code sign-in.".into(),
        )),
    }
}

/// Refuse to start a sign-in when the provider does not answer now (a sign-in window
/// would show the webview's bare error page).
async fn reachable(profile: &Profile, pca: &PublicClientApplication) -> AppResult<()> {
    pca.check_reachable().await.map_err(|e| {
        AppError::Unreachable(format!(
            "The identity provider of {} ({}) does not answer: {}. Check that it is running and that you are online, then try again.",
            profile.name,
            profile.target(),
            AppError::from(e).to_string().trim_end_matches('.')
        ))
    })
}

#[tauri::command(rename_all = "snake_case")]
pub async fn cancel_sign_in<R: Runtime>(app: AppHandle<R>) -> AppResult<bool> {
    Ok(signin::cancel(&app))
}

/// Start a device code sign-in: the view has the code to show; the outcome arrives as
/// the `signin:finished` event.
#[tauri::command(rename_all = "snake_case")]
pub async fn start_device_code<R: Runtime>(
    app: AppHandle<R>,
    state: State<'_, AppState>,
    profile: String,
    scopes: Option<String>,
) -> AppResult<DeviceCodeView> {
    let (profile, pca) = state.profile_app(&profile).await?;
    reachable(&profile, &pca).await?;
    signin::start_device(&app, profile, pca, scopes.as_deref()).await
}

#[tauri::command(rename_all = "snake_case")]
pub async fn cancel_device_code<R: Runtime>(app: AppHandle<R>) -> AppResult<bool> {
    Ok(signin::cancel_device(&app))
}

/// Copy the device code sign-in's user code (not a secret: the user types it).
#[tauri::command(rename_all = "snake_case")]
pub async fn copy_user_code<R: Runtime>(
    app: AppHandle<R>,
    sign_in: State<'_, SignInState>,
) -> AppResult<()> {
    let code = sign_in
        .user_code()
        .ok_or_else(|| AppError::NotFound("No device code sign-in is in progress.".into()))?;
    clipboard::copy_plain(&app, &code)
}

// ------------------------------------------------------------------ sign-out

async fn sign_out_one(state: &AppState, account: &AccountRef) -> AppResult<usize> {
    if account.profile.is_empty() {
        // An account no profile lists: removed from its store as is.
        let removed = state
            .remove_unmatched(&account.source, &account.home_account_id)
            .await?;
        state.clear_needs_sign_in(&account.id());
        tracing::info!(source = %account.source, removed, "signed out");
        return Ok(removed);
    }
    let (profile, pca, acc) = state.resolve(account).await?;
    let out = pca.remove_account(&acc).await?;
    state.clear_needs_sign_in(&account.id());
    tracing::info!(profile = %profile.name, source = %account.source, removed = out.removed, "signed out");
    Ok(out.removed)
}

/// Sign an account out: its tokens leave the store. (The sign-in window keeps no cookies:
/// the next sign-in asks again.)
#[tauri::command(rename_all = "snake_case")]
pub async fn sign_out<R: Runtime>(
    app: AppHandle<R>,
    state: State<'_, AppState>,
    account: AccountRef,
) -> AppResult<SignOutView> {
    let removed = sign_out_one(&state, &account).await?;
    let _ = app.emit_to("main", EVENT_ACCOUNTS_CHANGED, ());
    Ok(SignOutView {
        accounts: 1,
        removed,
    })
}

/// Sign every account of Tessera's store out. Opened MSAL caches are left alone (sign out
/// of their accounts one by one).
#[tauri::command(rename_all = "snake_case")]
pub async fn sign_out_all<R: Runtime>(
    app: AppHandle<R>,
    state: State<'_, AppState>,
) -> AppResult<SignOutView> {
    let accounts = list_accounts(app.state::<AppState>()).await?;
    let mut removed = 0;
    let mut count = 0;
    let mut first_error = None;
    for a in accounts.iter().filter(|a| a.source == TESSERA_SOURCE) {
        let r = AccountRef::tessera(&a.profile, &a.home_account_id);
        match sign_out_one(&state, &r).await {
            Ok(n) => {
                removed += n;
                count += 1;
            }
            Err(e) => {
                first_error.get_or_insert(e);
            }
        }
    }
    let _ = app.emit_to("main", EVENT_ACCOUNTS_CHANGED, ());
    match first_error {
        Some(e) => Err(e),
        None => Ok(SignOutView {
            accounts: count,
            removed,
        }),
    }
}

// ------------------------------------------------------------------ MSAL caches

#[tauri::command(rename_all = "snake_case")]
pub async fn list_msal_caches(state: State<'_, AppState>) -> AppResult<MsalCachesView> {
    Ok(MsalCachesView {
        default_path: azure_cli_cache_path().map(|p| p.display().to_string()),
        caches: state.msal_caches().await,
    })
}

/// `~/x` is the home folder's `x`.
fn expand_home(path: &str) -> std::path::PathBuf {
    match path.strip_prefix("~/") {
        Some(rest) => match std::env::var_os("HOME").filter(|h| !h.is_empty()) {
            Some(home) => std::path::PathBuf::from(home).join(rest),
            None => std::path::PathBuf::from(path),
        },
        None => std::path::PathBuf::from(path),
    }
}

/// Open an MSAL token cache file (default: Azure CLI's) and list its accounts as a group
/// labelled `label` (default: "Azure CLI" for Azure CLI's file, else the file name). It
/// is remembered until closed. A missing file or one that is not an MSAL cache is
/// refused and left as it is.
#[tauri::command(rename_all = "snake_case")]
pub async fn open_msal_cache<R: Runtime>(
    app: AppHandle<R>,
    state: State<'_, AppState>,
    path: Option<String>,
    label: Option<String>,
) -> AppResult<MsalCacheView> {
    let default = azure_cli_cache_path();
    let path = match path.as_deref().map(str::trim).filter(|p| !p.is_empty()) {
        Some(p) => expand_home(p),
        None => default
            .clone()
            .ok_or_else(|| AppError::Invalid("Name the MSAL token cache file to open.".into()))?,
    };
    if path
        .as_os_str()
        .to_string_lossy()
        .chars()
        .any(char::is_control)
    {
        return Err(AppError::Invalid("That is not a valid file path.".into()));
    }
    let label = match label.as_deref().map(str::trim).filter(|l| !l.is_empty()) {
        Some(l) if l.chars().count() > 64 => {
            return Err(AppError::Invalid(
                "A group label can have at most 64 characters.".into(),
            ))
        }
        Some(l) => l.to_string(),
        None if default.as_deref() == Some(path.as_path()) => "Azure CLI".to_string(),
        None => path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| path.display().to_string()),
    };
    let view = state.open_cache(path, label).await?;
    let _ = app.emit_to("main", EVENT_ACCOUNTS_CHANGED, ());
    Ok(view)
}

/// Close an opened MSAL cache: its group leaves the list; the file is left as it is.
#[tauri::command(rename_all = "snake_case")]
pub async fn close_msal_cache<R: Runtime>(
    app: AppHandle<R>,
    state: State<'_, AppState>,
    id: String,
) -> AppResult<()> {
    state.close_cache(&id).await?;
    let _ = app.emit_to("main", EVENT_ACCOUNTS_CHANGED, ());
    Ok(())
}

// ------------------------------------------------------------------ settings

#[tauri::command(rename_all = "snake_case")]
pub async fn get_settings<R: Runtime>(
    app: AppHandle<R>,
    state: State<'_, AppState>,
) -> AppResult<SettingsView> {
    state.wait_opened().await;
    Ok(settings_view(&app, &state, state.settings()))
}

#[tauri::command(rename_all = "snake_case")]
pub async fn save_settings<R: Runtime>(
    app: AppHandle<R>,
    state: State<'_, AppState>,
    settings: Settings,
) -> AppResult<SettingsView> {
    state.wait_opened().await;
    let settings = state.save_settings(settings)?;
    Ok(settings_view(&app, &state, settings))
}

fn settings_view<R: Runtime>(
    app: &AppHandle<R>,
    state: &AppState,
    settings: Settings,
) -> SettingsView {
    SettingsView {
        settings,
        home: state.home_description().map(|p| p.display().to_string()),
        runs_in_background: agent::keeps_running(app),
    }
}

// ------------------------------------------------------------------ agent

/// Whether the app serves tools as the agent, and on which socket.
#[tauri::command(rename_all = "snake_case")]
pub async fn agent_status(agent: State<'_, AgentState>) -> AppResult<AgentStatusView> {
    Ok(agent.status())
}

/// The user's answer to an `agent:ask` question.
#[tauri::command(rename_all = "snake_case")]
pub async fn agent_answer(
    agent: State<'_, AgentState>,
    id: u64,
    answer: AgentAnswer,
) -> AppResult<()> {
    if agent.answer(id, answer) {
        Ok(())
    } else {
        Err(agent::not_waiting())
    }
}

/// Who got which token (newest first, the last 7 days), of one account when given.
#[tauri::command(rename_all = "snake_case")]
pub async fn agent_activity(
    state: State<'_, AppState>,
    account: Option<String>,
) -> AppResult<Vec<ActivityView>> {
    agent::activity(&state, account.as_deref()).await
}

/// Turn "ask before a program gets this account's token" on or off.
#[tauri::command(rename_all = "snake_case")]
pub async fn set_confirm_first(
    state: State<'_, AppState>,
    account: AccountRef,
    on: bool,
) -> AppResult<bool> {
    state.wait_opened().await;
    agent::set_confirm_first(&state, &account.home_account_id, on)
}
