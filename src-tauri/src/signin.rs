//! Interactive sign-in: the embedded sign-in window, the system browser with a loopback
//! listener, and the device code flow.
//!
//! The sign-in window (label `signin`) has no capability, so its page cannot call any
//! command. It keeps its cookies in the profile's own folder
//! (`Paths::webview_data_dir(profile)`), not in the main window's, and that folder is
//! deleted on sign-out. The redirect is caught in `on_navigation` (the exact redirect
//! URI only), the navigation is cancelled (nothing listens there), the code is redeemed
//! on the async runtime and the window is closed from there. Closing the window cancels.
//!
//! Each sign-in ends with one `signin:finished` event (`added`, `cancelled`, `failed`).

use std::sync::Arc;
use std::time::Duration;

use tauri::webview::PageLoadEvent;
use tauri::{AppHandle, Emitter, Manager, Runtime, WebviewUrl, WebviewWindowBuilder, WindowEvent};
use tessera_core::app::{AuthResult, InteractiveParams, PublicClientApplication};
use tessera_core::authcode::{redirect_matches, AuthCodeFlow};
use tessera_core::loopback::{Browser, LoopbackListener, OpenError, Opener};
use tessera_core::profile::{Profile, SignInMethod};
use tokio_util::sync::CancellationToken;
use url::Url;

use crate::error::{AppError, AppResult};
use crate::state::{lock, AppState};
use crate::views::{
    AccountRef, DeviceCodeView, SignInOutcome, SignInProgress, SignInStarted,
    EVENT_SIGNIN_FINISHED, EVENT_SIGNIN_PROGRESS,
};

/// The sign-in window's label. No capability names it.
pub const SIGNIN_WINDOW: &str = "signin";
/// A hidden window that clears a profile's web data on sign-out.
const CLEANUP_WINDOW: &str = "signin-cleanup";
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
    pub(crate) user_code: String,
    cancel: CancellationToken,
}

fn emit_progress<R: Runtime>(app: &AppHandle<R>, stage: &'static str, message: String) {
    let _ = app.emit_to(
        "main",
        EVENT_SIGNIN_PROGRESS,
        SignInProgress { stage, message },
    );
}

fn emit_finished<R: Runtime>(app: &AppHandle<R>, outcome: SignInOutcome) {
    tracing::info!(status = outcome.status, "sign-in finished");
    let _ = app.emit_to("main", EVENT_SIGNIN_FINISHED, outcome);
}

fn cancelled() -> SignInOutcome {
    SignInOutcome {
        status: "cancelled",
        account: None,
        message: Some("Sign-in cancelled.".into()),
    }
}

/// Refuse a second sign-in while one runs (and bring its window forward).
fn ensure_idle<R: Runtime>(app: &AppHandle<R>, state: &AppState) -> AppResult<()> {
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
            state.mark_needs_sign_in(&id, None);
            let view = match state.with(|t| Ok(t.profile(profile)?.clone())).await {
                Ok(p) => Some(state.account_view(&p, pca, &r.account).await),
                Err(_) => None,
            };
            SignInOutcome {
                status: "added",
                account: view,
                message: None,
            }
        }
        Err(tessera_core::Error::Cancelled) => cancelled(),
        Err(e) => SignInOutcome {
            status: "failed",
            account: None,
            message: Some(AppError::from(e).to_string()),
        },
    };
    emit_finished(app, outcome);
}

/// The parameters of an interactive sign-in. Adding an account asks the provider to
/// let the user pick one; signing an account in again names it.
pub fn params(
    profile: &Profile,
    scopes: Option<&str>,
    login_hint: Option<String>,
) -> AppResult<InteractiveParams> {
    let scopes = crate::commands::scopes_for(profile, scopes)?;
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
    let state = app.state::<AppState>();
    ensure_idle(app, &state)?;
    let flow = pca.start_interactive(params).await?;
    let authorize = flow.authorize_url().clone();
    if !matches!(authorize.scheme(), "https" | "http") {
        return Err(AppError::Invalid(
            "The provider's authorize endpoint is not an http(s) address.".into(),
        ));
    }
    let redirect = flow.redirect_uri().clone();
    let data_dir = state
        .with(|t| Ok(t.paths().webview_data_dir(&profile.name)))
        .await?;
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
        tessera_core::paths::create_private_dir(&data_dir)?;
        lock(&state.live_web_contexts).insert(profile.name.clone());
        let nav_app = app.clone();
        let load_app = app.clone();
        let profile_name = profile.name.clone();
        let builder =
            WebviewWindowBuilder::new(app, SIGNIN_WINDOW, WebviewUrl::External(authorize))
                .title(signin_title(&profile.name, None))
                .inner_size(520.0, 720.0)
                .min_inner_size(380.0, 480.0)
                .center();
        let window = builder
            .data_directory(data_dir.clone())
            .on_navigation(move |url| {
                if redirect_matches(&redirect, url) {
                    let app = nav_app.clone();
                    let url = url.clone();
                    tauri::async_runtime::spawn(async move { finish_redirect(app, id, url).await });
                    return false;
                }
                // A sign-in page has no business with local files or app schemes.
                let allowed = matches!(url.scheme(), "https" | "http" | "about");
                if !allowed {
                    tracing::warn!(scheme = url.scheme(), "sign-in window: navigation refused");
                }
                allowed
            })
            .on_page_load(move |_window, payload| {
                if payload.event() == PageLoadEvent::Finished {
                    let host = payload
                        .url()
                        .host_str()
                        .unwrap_or("the provider")
                        .to_string();
                    let port = payload
                        .url()
                        .port()
                        .map(|p| format!(":{p}"))
                        .unwrap_or_default();
                    emit_progress(
                        &load_app,
                        "page",
                        format!("Sign in at {host}{port} in the sign-in window…"),
                    );
                }
            })
            .on_document_title_changed(move |window, title| {
                // The page's title, then whose window this is (a page cannot hide that).
                let title = signin_title(&profile_name, Some(&title));
                tauri::async_runtime::spawn(async move {
                    let _ = window.set_title(&title);
                });
            })
            .build()
            .map_err(|e| AppError::desktop("Cannot open the sign-in window", e))?;
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
    emit_progress(app, "opened", message.clone());
    Ok(SignInStarted {
        method: SignInMethod::Embedded,
        message,
    })
}

/// The sign-in window's title: the page's title (cleaned up and shortened), then
/// "Tessera sign-in (profile)".
pub fn signin_title(profile: &str, page_title: Option<&str>) -> String {
    let page: String = page_title
        .unwrap_or_default()
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
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

/// Take the flow of sign-in `id` if it is still waiting.
fn take_flow(
    state: &AppState,
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

fn clear_slot(state: &AppState, id: u64) {
    let mut slot = lock(&state.sign_in);
    if slot.as_ref().is_some_and(|p| p.id == id) {
        *slot = None;
    }
}

async fn finish_redirect<R: Runtime>(app: AppHandle<R>, id: u64, url: Url) {
    let state = app.state::<AppState>();
    let Some((flow, pca, profile)) = take_flow(&state, id) else {
        return;
    };
    if let Some(w) = app.get_webview_window(SIGNIN_WINDOW) {
        let _ = w.close();
    }
    emit_progress(&app, "finishing", "Finishing the sign-in…".into());
    let result = pca.finish_interactive(flow, &url).await;
    clear_slot(&state, id);
    report(&app, &profile, &pca, result).await;
}

/// The sign-in window is gone: if it had not finished, the sign-in is cancelled.
fn window_closed<R: Runtime>(app: &AppHandle<R>, id: u64) {
    let state = app.state::<AppState>();
    if take_flow(&state, id).is_some() {
        clear_slot(&state, id);
        emit_finished(app, cancelled());
    }
}

/// Cancel the sign-in in progress (window or browser). Returns whether there was one.
pub fn cancel<R: Runtime>(app: &AppHandle<R>) -> bool {
    let state = app.state::<AppState>();
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
    let state = app.state::<AppState>();
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
                OpenError::NoBrowser => AppError::Desktop(
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
        let state = task_app.state::<AppState>();
        match caught {
            Ok(url) => {
                let Some((flow, pca, profile)) = take_flow(&state, id) else {
                    return;
                };
                emit_progress(&task_app, "finishing", "Finishing the sign-in…".into());
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
    emit_progress(app, "opened", message.clone());
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
    let state = app.state::<AppState>();
    ensure_idle(app, &state)?;
    let scopes = crate::commands::scopes_for(&profile, scopes)?;
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
        let state = task_app.state::<AppState>();
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
    let state = app.state::<AppState>();
    let slot = lock(&state.device);
    match slot.as_ref() {
        Some(d) => {
            d.cancel.cancel();
            true
        }
        None => false,
    }
}

// ------------------------------------------------------------------ sign-out

/// Delete a profile's sign-in web data (cookies, storage), so its next sign-in asks
/// again. If its web context is alive in this process (WebKitGTK keeps it until exit),
/// its in-memory data is cleared first through a hidden window on that context.
pub async fn forget_web_data<R: Runtime>(app: &AppHandle<R>, profile: &str) -> AppResult<()> {
    let state = app.state::<AppState>();
    let dir = state
        .with(|t| Ok(t.paths().webview_data_dir(profile)))
        .await?;
    // A sign-in window of this profile would keep using the data: cancel it.
    let signing_in_here = lock(&state.sign_in)
        .as_ref()
        .is_some_and(|p| p.profile.eq_ignore_ascii_case(profile));
    if signing_in_here {
        cancel(app);
    }
    let live = lock(&state.live_web_contexts).contains(profile);
    if live && dir.exists() {
        let blank = Url::parse("about:blank").map_err(|e| AppError::desktop("about:blank", e))?;
        match WebviewWindowBuilder::new(app, CLEANUP_WINDOW, WebviewUrl::External(blank))
            .visible(false)
            .focused(false)
            .data_directory(dir.clone())
            .build()
        {
            Ok(w) => {
                if let Err(e) = w.clear_all_browsing_data() {
                    tracing::warn!(error = %e, "could not clear the sign-in window's browsing data");
                }
                // The clearing runs on WebKit's side; give it a moment before closing.
                tokio::time::sleep(Duration::from_millis(400)).await;
                let _ = w.destroy();
            }
            Err(e) => {
                tracing::warn!(error = %e, "could not open a window to clear the sign-in data")
            }
        }
    }
    match std::fs::remove_dir_all(&dir) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(AppError::Store(format!(
            "Cannot delete the sign-in data in {}: {e}",
            dir.display()
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
