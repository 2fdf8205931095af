//! Interactive sign-in: the embedded sign-in window, the system browser with a loopback
//! listener, and the device code flow.
//!
//! The sign-in window (label `signin`) has no capability, so its page cannot call any
//! command. Each one has a throwaway web context (`incognito`): its cookies live in memory
//! only and die with it, so nothing is kept on disk, none is shared with the main window or
//! another sign-in, and every sign-in asks for the password. It goes only to https pages,
//! http on loopback and about:blank ([`navigation_allowed`]), downloads nothing, and its
//! native title and the main window show the origin of the page it shows ([`page_origin`]).
//! It opens no other window (`window.open`, `target=_blank`). The redirect is caught in
//! `on_navigation` (the exact redirect URI only) and the navigation is cancelled (nothing
//! listens there); only a redirect carrying the sign-in's `state` ends it (the code is
//! redeemed on the async runtime and the window closed from there), any other is ignored.
//! Closing the window cancels.
//!
//! Each sign-in ends with one `signin:finished` event (`added`, `cancelled`, `failed`).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tauri::webview::{DownloadEvent, NewWindowResponse, PageLoadEvent};
use tauri::{AppHandle, Emitter, Manager, Runtime, WebviewUrl, WebviewWindowBuilder, WindowEvent};
use tessera_core::app::{AuthResult, InteractiveParams, PublicClientApplication};
use tessera_core::authcode::{is_response_to, redirect_matches, AuthCodeFlow};
use tessera_core::authority::is_loopback_host;
use tessera_core::http::redact_query;
use tessera_core::loopback::{Browser, LoopbackListener, OpenError, Opener};
use tessera_core::profile::{Profile, SignInMethod};
use tessera_core::scopes::{resolve_for_sign_in, ScopeSet};
use tokio_util::sync::CancellationToken;
use url::Url;

use crate::base::lock;
use crate::error::{AppError, AppResult};
use crate::state::AppState;
use crate::views::{
    AccountRef, DeviceCodeView, SignInOrigin, SignInOutcome, SignInProgress, SignInStage,
    SignInStarted, SignInStatus, EVENT_SIGNIN_FINISHED, EVENT_SIGNIN_ORIGIN, EVENT_SIGNIN_PROGRESS,
};

/// The sign-in window's label. No capability names it.
pub const SIGNIN_WINDOW: &str = "signin";
/// How long the browser sign-in waits for the redirect.
const BROWSER_TIMEOUT: Duration = Duration::from_secs(600);

pub(crate) enum SignInKind {
    Window,
    Browser { cancel: CancellationToken },
}

/// An interactive sign-in in progress (one at a time).
pub struct PendingSignIn {
    id: u64,
    profile: String,
    kind: SignInKind,
    /// Taken exactly once: by the redirect (finish) or by a cancellation.
    flow: Option<AuthCodeFlow>,
    app: Arc<PublicClientApplication>,
}

/// A device code sign-in in progress.
pub struct DeviceSession {
    id: u64,
    user_code: String,
    cancel: CancellationToken,
}

/// The sign-in feature's state (managed by Tauri as its own value): the interactive
/// sign-in and the device code sign-in in progress, one of each at most.
#[derive(Default)]
pub struct SignInState {
    sign_in: Mutex<Option<PendingSignIn>>,
    device: Mutex<Option<DeviceSession>>,
    next_id: AtomicU64,
    /// How the last sign-in ended, with a count of sign-ins ended: Rust code waiting for
    /// one (the agent's prompt) watches it, as the window listens to `signin:finished`.
    finished: tokio::sync::watch::Sender<(u64, Option<SignInStatus>)>,
}

impl SignInState {
    fn next_id(&self) -> u64 {
        self.next_id.fetch_add(1, Ordering::Relaxed) + 1
    }

    /// The user code of the device code sign-in in progress (not a secret: the user
    /// types it).
    pub fn user_code(&self) -> Option<String> {
        lock(&self.device).as_ref().map(|d| d.user_code.clone())
    }

    /// Watch how sign-ins end (the next change is the next sign-in's end).
    pub fn watch_finished(&self) -> tokio::sync::watch::Receiver<(u64, Option<SignInStatus>)> {
        self.finished.subscribe()
    }
}

fn emit_progress<R: Runtime>(app: &AppHandle<R>, stage: SignInStage, message: String) {
    let _ = app.emit_to(
        "main",
        EVENT_SIGNIN_PROGRESS,
        SignInProgress { stage, message },
    );
}

fn emit_finished<R: Runtime>(app: &AppHandle<R>, outcome: SignInOutcome) {
    tracing::info!(status = ?outcome.status, "sign-in finished");
    app.state::<SignInState>()
        .finished
        .send_modify(|(n, s)| (*n, *s) = (*n + 1, Some(outcome.status)));
    let _ = app.emit_to("main", EVENT_SIGNIN_FINISHED, outcome);
}

fn cancelled() -> SignInOutcome {
    SignInOutcome {
        status: SignInStatus::Cancelled,
        account: None,
        message: Some("Sign-in cancelled.".into()),
    }
}

/// Refuse a second sign-in while one runs (and bring its window forward).
fn ensure_idle<R: Runtime>(app: &AppHandle<R>, state: &SignInState) -> AppResult<()> {
    if lock(&state.sign_in).is_some() {
        if let Some(w) = app.get_webview_window(SIGNIN_WINDOW) {
            let _ = w.set_focus();
        }
        return Err(AppError::Busy(
            "A sign-in is already in progress: finish or cancel it first.".into(),
        ));
    }
    if lock(&state.device).is_some() {
        return Err(AppError::Busy(
            "A device code sign-in is in progress: finish or cancel it first.".into(),
        ));
    }
    Ok(())
}

/// Tell the UI how a sign-in ended; on success the new account is selected.
async fn report<R: Runtime>(
    app: &AppHandle<R>,
    profile: &str,
    pca: &PublicClientApplication,
    result: tessera_core::Result<AuthResult>,
) {
    let state = app.state::<AppState>();
    let outcome = match result {
        Ok(r) => {
            let id = AccountRef::tessera(profile, &r.account.home_account_id).id();
            state.clear_needs_sign_in(&id);
            let view = match state.with(|t| Ok(t.profile(profile)?.clone())).await {
                Ok(p) => Some(state.account_view(&p, pca, &r.account).await),
                Err(_) => None,
            };
            SignInOutcome {
                status: SignInStatus::Added,
                account: view,
                message: None,
            }
        }
        Err(tessera_core::Error::Cancelled) => cancelled(),
        Err(e) => SignInOutcome {
            status: SignInStatus::Failed,
            account: None,
            message: Some(AppError::from(e).to_string()),
        },
    };
    emit_finished(app, outcome);
}

/// The scopes of a sign-in: those typed, else the profile's ([`resolve_for_sign_in`]).
fn sign_in_scopes(profile: &Profile, typed: Option<&str>) -> AppResult<ScopeSet> {
    resolve_for_sign_in(&profile.name, &profile.scopes, typed)
        .map_err(|e| AppError::Invalid(format!("{e}.")))
}

/// The parameters of an interactive sign-in. Adding an account asks the provider to
/// let the user pick one; signing an account in again names it.
pub fn params(
    profile: &Profile,
    scopes: Option<&str>,
    login_hint: Option<String>,
) -> AppResult<InteractiveParams> {
    let scopes = sign_in_scopes(profile, scopes)?;
    let login_hint = login_hint
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty());
    Ok(InteractiveParams {
        scopes,
        prompt: login_hint.is_none().then(|| "select_account".to_string()),
        login_hint,
        ..Default::default()
    })
}

// ------------------------------------------------------------------ embedded window

/// Open the sign-in window on the provider's authorize page.
pub async fn start_embedded<R: Runtime>(
    app: &AppHandle<R>,
    profile: Profile,
    pca: Arc<PublicClientApplication>,
    params: InteractiveParams,
) -> AppResult<SignInStarted> {
    let state = app.state::<SignInState>();
    ensure_idle(app, &state)?;
    let flow = pca.start_interactive(params).await?;
    let authorize = flow.authorize_url().clone();
    if !matches!(authorize.scheme(), "https" | "http") {
        return Err(AppError::Invalid(
            "The provider's authorize endpoint is not an http(s) address.".into(),
        ));
    }
    let redirect = flow.redirect_uri().clone();
    let id = state.next_id();
    {
        let mut slot = lock(&state.sign_in);
        if slot.is_some() {
            return Err(AppError::Busy(
                "A sign-in is already in progress: finish or cancel it first.".into(),
            ));
        }
        *slot = Some(PendingSignIn {
            id,
            profile: profile.name.clone(),
            kind: SignInKind::Window,
            flow: Some(flow),
            app: pca,
        });
    }
    let opened = (|| {
        let nav_app = app.clone();
        let load_app = app.clone();
        let title = Arc::new(WindowTitle::new(&profile.name));
        let (load_title, page_title) = (Arc::clone(&title), Arc::clone(&title));
        let builder =
            WebviewWindowBuilder::new(app, SIGNIN_WINDOW, WebviewUrl::External(authorize))
                .title(signin_title(&profile.name, None))
                .inner_size(520.0, 720.0)
                .min_inner_size(380.0, 480.0)
                .center();
        let window = builder
            // A throwaway web context: no cookie or storage reaches the disk, and no
            // sign-in sees another's (each asks for the password again).
            .incognito(true)
            .on_navigation(move |url| {
                if redirect_matches(&redirect, url) {
                    if !is_current_response(&nav_app.state::<SignInState>(), id, url) {
                        tracing::warn!(
                            "sign-in window: a redirect without this sign-in's state ignored"
                        );
                        return false;
                    }
                    let app = nav_app.clone();
                    let url = url.clone();
                    tauri::async_runtime::spawn(async move { finish_redirect(app, id, url).await });
                    return false;
                }
                let allowed = navigation_allowed(url);
                if !allowed {
                    tracing::warn!(
                        scheme = url.scheme(),
                        host = url.host_str().unwrap_or(""),
                        "sign-in window: navigation refused"
                    );
                }
                allowed
            })
            .on_new_window(|url, _features| {
                tracing::warn!(
                    scheme = url.scheme(),
                    host = url.host_str().unwrap_or(""),
                    "sign-in window: new window refused"
                );
                NewWindowResponse::Deny
            })
            .on_download(|_webview, event| {
                if let DownloadEvent::Requested { url, .. } = event {
                    tracing::warn!(
                        url = %redact_query(&url),
                        "sign-in window: download refused"
                    );
                }
                false
            })
            .on_page_load(move |_window, payload| match payload.event() {
                // The main frame's new page is committed: this is the page shown now.
                PageLoadEvent::Started => {
                    let origin = page_origin(payload.url());
                    load_title.set_origin(&origin.label);
                    let _ = load_app.emit_to("main", EVENT_SIGNIN_ORIGIN, origin);
                }
                PageLoadEvent::Finished => {
                    let message =
                        format!("Sign in to {} in the sign-in window…", load_title.profile);
                    emit_progress(&load_app, SignInStage::Page, message);
                }
            })
            .on_document_title_changed(move |_window, text| page_title.set_page(&text))
            .build()
            .map_err(|e| AppError::desktop("Cannot open the sign-in window", e))?;
        title.follow(window.clone());
        let closed_app = app.clone();
        window.on_window_event(move |event| {
            if matches!(event, WindowEvent::Destroyed) {
                window_closed(&closed_app, id);
            }
        });
        Ok::<_, AppError>(())
    })();
    if let Err(e) = opened {
        lock(&state.sign_in).take();
        return Err(e);
    }
    let message = format!("Sign in to {} in the sign-in window…", profile.name);
    emit_progress(app, SignInStage::Opened, message.clone());
    Ok(SignInStarted {
        method: SignInMethod::Embedded,
        message,
    })
}

/// Whether the sign-in window may go to `url` (the redirect is caught before this): https,
/// http to a loopback host (a local provider), and about:blank. Local files, data:,
/// javascript:, blob:, other about: pages, app schemes and plain http to a remote host are
/// refused.
pub fn navigation_allowed(url: &Url) -> bool {
    match url.scheme() {
        "https" => true,
        "http" => url.host_str().is_some_and(is_loopback_host),
        "about" => url.path() == "blank",
        _ => false,
    }
}

/// Where a page shown in the sign-in window comes from, for the user to check before typing
/// a password: the host (as the URL parser normalises it: lower case, international names
/// in punycode) with its port if any, and whether it came over TLS. Never the path or the
/// query.
pub fn page_origin(url: &Url) -> SignInOrigin {
    let host = match (url.host_str(), url.port()) {
        (Some(h), Some(p)) => format!("{h}:{p}"),
        (Some(h), None) => h.to_string(),
        (None, _) if url.scheme() == "about" => format!("about:{}", url.path()),
        (None, _) => format!("{}:", url.scheme()),
    };
    let secure = url.scheme() == "https";
    let label = if secure {
        format!("{} {host}", ORIGIN_MARKS[0])
    } else {
        format!("{} {host} (not encrypted)", ORIGIN_MARKS[1])
    };
    SignInOrigin { label, secure }
}

/// The sign-in window's native title, which the page cannot set: the origin of the page
/// shown, then [`signin_title`]. Set from a single task, in the order of the changes.
struct WindowTitle {
    profile: String,
    /// (origin label, page title)
    parts: Mutex<(Option<String>, Option<String>)>,
    tx: tokio::sync::watch::Sender<String>,
}

impl WindowTitle {
    fn new(profile: &str) -> Self {
        WindowTitle {
            profile: profile.to_string(),
            parts: Mutex::new((None, None)),
            tx: tokio::sync::watch::Sender::new(signin_title(profile, None)),
        }
    }

    /// A new page: its origin, and no title until it has one.
    fn set_origin(&self, origin: &str) {
        let mut parts = lock(&self.parts);
        *parts = (Some(origin.to_string()), None);
        self.tx
            .send_replace(window_title(&self.profile, parts.0.as_deref(), None));
    }

    fn set_page(&self, page: &str) {
        let mut parts = lock(&self.parts);
        parts.1 = Some(page.to_string());
        self.tx.send_replace(window_title(
            &self.profile,
            parts.0.as_deref(),
            parts.1.as_deref(),
        ));
    }

    /// Set `window`'s title to each new value until the window is gone. (Not from the
    /// webview's callbacks: they may run while the window is being built.)
    fn follow<R: Runtime>(&self, window: tauri::WebviewWindow<R>) {
        let mut rx = self.tx.subscribe();
        rx.mark_changed();
        tauri::async_runtime::spawn(async move {
            while rx.changed().await.is_ok() {
                let title = rx.borrow_and_update().clone();
                if window.set_title(&title).is_err() {
                    break;
                }
            }
        });
    }
}

/// The sign-in window's title: the page's origin, then [`signin_title`].
pub fn window_title(profile: &str, origin: Option<&str>, page_title: Option<&str>) -> String {
    let title = signin_title(profile, page_title);
    match origin {
        Some(origin) => format!("{origin} — {title}"),
        None => title,
    }
}

/// The marks of [`page_origin`]'s labels.
const ORIGIN_MARKS: [char; 2] = ['🔒', '⚠'];

/// The title after the origin: the page's title (cleaned up and shortened), then
/// "Tessera sign-in (profile)".
pub fn signin_title(profile: &str, page_title: Option<&str>) -> String {
    let page: String = page_title
        .unwrap_or_default()
        .chars()
        // A page's title cannot imitate the origin's marks.
        .map(|c| {
            if c.is_control() || ORIGIN_MARKS.contains(&c) {
                ' '
            } else {
                c
            }
        })
        .collect::<String>()
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    let page: String = page.chars().take(80).collect();
    if page.is_empty() {
        format!("Tessera sign-in ({profile})")
    } else {
        format!("{page} — Tessera sign-in ({profile})")
    }
}

/// Is `url` the authorization response of sign-in `id`, still waiting (its `state`)? Read
/// under the lock; the flow stays in its slot.
fn is_current_response(state: &SignInState, id: u64, url: &Url) -> bool {
    match lock(&state.sign_in).as_ref() {
        Some(p) if p.id == id => p.flow.as_ref().is_some_and(|f| is_response_to(f, url)),
        _ => false,
    }
}

/// Take the flow of sign-in `id` if it is still waiting.
fn take_flow(
    state: &SignInState,
    id: u64,
) -> Option<(AuthCodeFlow, Arc<PublicClientApplication>, String)> {
    let mut slot = lock(&state.sign_in);
    match slot.as_mut() {
        Some(p) if p.id == id => p
            .flow
            .take()
            .map(|f| (f, Arc::clone(&p.app), p.profile.clone())),
        _ => None,
    }
}

fn clear_slot(state: &SignInState, id: u64) {
    let mut slot = lock(&state.sign_in);
    if slot.as_ref().is_some_and(|p| p.id == id) {
        *slot = None;
    }
}

async fn finish_redirect<R: Runtime>(app: AppHandle<R>, id: u64, url: Url) {
    let state = app.state::<SignInState>();
    let Some((flow, pca, profile)) = take_flow(&state, id) else {
        return;
    };
    if let Some(w) = app.get_webview_window(SIGNIN_WINDOW) {
        let _ = w.close();
    }
    emit_progress(
        &app,
        SignInStage::Finishing,
        "Finishing the sign-in…".into(),
    );
    let result = pca.finish_interactive(flow, &url).await;
    clear_slot(&state, id);
    report(&app, &profile, &pca, result).await;
}

/// The sign-in window is gone: if it had not finished, the sign-in is cancelled.
fn window_closed<R: Runtime>(app: &AppHandle<R>, id: u64) {
    let state = app.state::<SignInState>();
    if take_flow(&state, id).is_some() {
        clear_slot(&state, id);
        emit_finished(app, cancelled());
    }
}

/// Cancel the sign-in in progress (window or browser). Returns whether there was one.
pub fn cancel<R: Runtime>(app: &AppHandle<R>) -> bool {
    let state = app.state::<SignInState>();
    let (id, browser_cancel) = {
        let slot = lock(&state.sign_in);
        match slot.as_ref() {
            None => return false,
            Some(p) => (
                p.id,
                match &p.kind {
                    SignInKind::Browser { cancel } => Some(cancel.clone()),
                    SignInKind::Window => None,
                },
            ),
        }
    };
    match browser_cancel {
        Some(c) => c.cancel(),
        None => {
            // Cancel first, then close: the window's Destroyed event finds nothing to do.
            window_closed(app, id);
            if let Some(w) = app.get_webview_window(SIGNIN_WINDOW) {
                let _ = w.close();
            }
        }
    }
    true
}

// ------------------------------------------------------------------ system browser

/// Sign in in the user's browser with `tessera_core::loopback`: `$TESSERA_BROWSER` if set
/// (as the CLI does), else the desktop's browser.
pub async fn start_browser<R: Runtime>(
    app: &AppHandle<R>,
    profile: Profile,
    pca: Arc<PublicClientApplication>,
    mut params: InteractiveParams,
) -> AppResult<SignInStarted> {
    let state = app.state::<SignInState>();
    ensure_idle(app, &state)?;
    let listener = LoopbackListener::bind(&profile.redirect_url()?).await?;
    params.redirect_uri = Some(listener.redirect_uri().clone());
    let flow = pca.start_interactive(params).await?;
    let authorize = flow.authorize_url().clone();
    let expected_state = flow.state().clone();
    let id = state.next_id();
    let cancel = CancellationToken::new();
    {
        let mut slot = lock(&state.sign_in);
        if slot.is_some() {
            return Err(AppError::Busy(
                "A sign-in is already in progress: finish or cancel it first.".into(),
            ));
        }
        *slot = Some(PendingSignIn {
            id,
            profile: profile.name.clone(),
            kind: SignInKind::Browser {
                cancel: cancel.clone(),
            },
            flow: Some(flow),
            app: pca,
        });
    }
    let mut browser = match Browser::open(&Opener::from_env(), &authorize).await {
        Ok(b) => b,
        Err(e) => {
            clear_slot(&state, id);
            return Err(match e {
                OpenError::NoBrowser => AppError::NoBrowser(
                    "No web browser was found: sign in with the Tessera sign-in window or a device code instead."
                        .into(),
                ),
                other => AppError::Desktop(format!("Could not start the browser sign-in: {other}.")),
            });
        }
    };
    let task_app = app.clone();
    tauri::async_runtime::spawn(async move {
        let caught = listener
            .wait(&expected_state, &mut browser, &cancel, BROWSER_TIMEOUT)
            .await;
        browser.close().await;
        let state = task_app.state::<SignInState>();
        match caught {
            Ok(url) => {
                let Some((flow, pca, profile)) = take_flow(&state, id) else {
                    return;
                };
                emit_progress(
                    &task_app,
                    SignInStage::Finishing,
                    "Finishing the sign-in…".into(),
                );
                let result = pca.finish_interactive(flow, &url).await;
                clear_slot(&state, id);
                report(&task_app, &profile, &pca, result).await;
            }
            Err(why) => {
                tracing::info!(%why, "browser sign-in ended");
                if take_flow(&state, id).is_some() {
                    clear_slot(&state, id);
                    emit_finished(&task_app, cancelled());
                }
            }
        }
    });
    let message = format!("Sign in to {} in your browser…", profile.name);
    emit_progress(app, SignInStage::Opened, message.clone());
    Ok(SignInStarted {
        method: SignInMethod::Browser,
        message,
    })
}

// ------------------------------------------------------------------ device code

pub async fn start_device<R: Runtime>(
    app: &AppHandle<R>,
    profile: Profile,
    pca: Arc<PublicClientApplication>,
    scopes: Option<&str>,
) -> AppResult<DeviceCodeView> {
    let state = app.state::<SignInState>();
    ensure_idle(app, &state)?;
    let scopes = sign_in_scopes(&profile, scopes)?;
    let flow = pca.initiate_device_flow(&scopes).await?;
    let view = DeviceCodeView {
        user_code: flow.user_code.clone(),
        verification_uri: flow.verification_uri.to_string(),
        verification_uri_complete: flow.verification_uri_complete.as_ref().map(Url::to_string),
        message: flow.message.clone(),
        expires_on: flow.expires_at,
    };
    let id = state.next_id();
    let cancel = CancellationToken::new();
    {
        let mut slot = lock(&state.device);
        if slot.is_some() {
            return Err(AppError::Busy(
                "A device code sign-in is in progress: finish or cancel it first.".into(),
            ));
        }
        *slot = Some(DeviceSession {
            id,
            user_code: flow.user_code.clone(),
            cancel: cancel.clone(),
        });
    }
    let task_app = app.clone();
    let profile_name = profile.name.clone();
    tauri::async_runtime::spawn(async move {
        let result = pca.acquire_token_by_device_flow(flow, cancel).await;
        let state = task_app.state::<SignInState>();
        {
            let mut slot = lock(&state.device);
            if slot.as_ref().is_some_and(|d| d.id == id) {
                *slot = None;
            }
        }
        report(&task_app, &profile_name, &pca, result).await;
    });
    Ok(view)
}

pub fn cancel_device<R: Runtime>(app: &AppHandle<R>) -> bool {
    let state = app.state::<SignInState>();
    let slot = lock(&state.device);
    match slot.as_ref() {
        Some(d) => {
            d.cancel.cancel();
            true
        }
        None => false,
    }
}

// ------------------------------------------------------------------ older versions

/// Delete the sign-in window's cookie folders that versions before the throwaway web
/// context kept (`<data dir>/webview/<profile>`), so no old session cookie stays on disk.
pub fn forget_legacy_web_data(data_dir: &std::path::Path) {
    let dir = data_dir.join("webview");
    match std::fs::remove_dir_all(&dir) {
        Ok(()) => tracing::info!("deleted the sign-in cookies an older version kept"),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => tracing::warn!(
            "cannot delete the sign-in cookies an older version kept in {}: {e}",
            dir.display()
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url(s: &str) -> Url {
        Url::parse(s).unwrap()
    }

    #[test]
    fn the_window_title_names_the_page_and_tessera() {
        assert_eq!(signin_title("Sandbox", None), "Tessera sign-in (Sandbox)");
        assert_eq!(
            signin_title("Sandbox", Some("  \n ")),
            "Tessera sign-in (Sandbox)"
        );
        assert_eq!(
            signin_title("Work", Some("Sign in to\tyour\u{7}account")),
            "Sign in to your account — Tessera sign-in (Work)"
        );
        let long = "x".repeat(500);
        assert_eq!(
            signin_title("W", Some(&long)).chars().count(),
            80 + " — Tessera sign-in (W)".chars().count()
        );
    }

    #[test]
    fn the_window_title_starts_with_the_origin_which_a_page_title_cannot_imitate() {
        let microsoft = page_origin(&url("https://login.microsoftonline.com/common/oauth2/v2.0/authorize?state=s&code_challenge=c"));
        assert_eq!(
            window_title(
                "Work",
                Some(&microsoft.label),
                Some("Sign in to your account")
            ),
            "🔒 login.microsoftonline.com — Sign in to your account — Tessera sign-in (Work)"
        );
        let local = page_origin(&url("http://127.0.0.1:8479/common/oauth2/v2.0/authorize"));
        assert_eq!(
            window_title("Sandbox", Some(&local.label), Some("🔒 login.microsoftonline.com")),
            "⚠ 127.0.0.1:8479 (not encrypted) — login.microsoftonline.com — Tessera sign-in (Sandbox)"
        );
        assert_eq!(
            window_title("Sandbox", None, None),
            "Tessera sign-in (Sandbox)"
        );
    }

    #[test]
    fn the_origin_is_the_host_and_port_and_whether_it_is_tls() {
        let cases = [
            (
                "https://login.microsoftonline.com/x?code=secret#state=s",
                "🔒 login.microsoftonline.com",
                true,
            ),
            (
                "https://LOGIN.Example.COM:443/",
                "🔒 login.example.com",
                true,
            ),
            (
                "https://idp.example.com:8443/authorize",
                "🔒 idp.example.com:8443",
                true,
            ),
            (
                "https://user:password@idp.example.com/",
                "🔒 idp.example.com",
                true,
            ),
            ("https://bücher.example/", "🔒 xn--bcher-kva.example", true),
            (
                "http://127.0.0.1:8479/authorize?state=s",
                "⚠ 127.0.0.1:8479 (not encrypted)",
                false,
            ),
            ("http://localhost/", "⚠ localhost (not encrypted)", false),
            ("http://[::1]:9/", "⚠ [::1]:9 (not encrypted)", false),
            ("about:blank", "⚠ about:blank (not encrypted)", false),
        ];
        for (u, label, secure) in cases {
            let o = page_origin(&url(u));
            assert_eq!((o.label.as_str(), o.secure), (label, secure), "{u}");
            for never in ["code", "secret", "state", "authorize", "password", "user"] {
                assert!(!o.label.contains(never), "{u}: {}", o.label);
            }
        }
    }

    #[test]
    fn the_sign_in_window_goes_only_to_https_loopback_http_and_about_blank() {
        for allowed in [
            "https://login.microsoftonline.com/common/oauth2/v2.0/authorize?x=1",
            "https://idp.example.com:8443/",
            "http://127.0.0.1:8479/common/login",
            "http://localhost/",
            "http://localhost:3000/x",
            "http://[::1]:9/",
            "about:blank",
        ] {
            assert!(navigation_allowed(&url(allowed)), "{allowed}");
        }
        for refused in [
            "http://login.microsoftonline.com/",
            "http://example.com/",
            "http://127.0.0.2:8479/",
            "http://localhost.example.com/",
            "http://192.168.1.10/",
            "file:///etc/passwd",
            "file://localhost/etc/passwd",
            "data:text/html,<script>alert(1)</script>",
            "javascript:alert(1)",
            "blob:https://login.microsoftonline.com/3f1c",
            "about:config",
            "about:srcdoc",
            "ftp://example.com/",
            "ws://127.0.0.1:1/",
            "tessera://localhost/",
            "ms-outlook://compose",
            "tauri://localhost/index.html",
        ] {
            assert!(!navigation_allowed(&url(refused)), "{refused}");
        }
    }
}
