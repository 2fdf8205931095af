//! Tessera's desktop app (Tauri v2): the main window (`ui/`) lists the accounts of every
//! profile, shows the selected account's access token decoded, copies tokens, adds
//! accounts through a sign-in window and signs them out. All protocol work is done by
//! `tessera-core`; this crate is the shell around it, a stack in which each module uses
//! only those below it:
//!
//! - `base`, [`error`], [`views`]: locking and the time since launch; the one error type,
//!   serialized as `{ kind, message }`; what the window receives (never a raw token).
//! - [`state`]: the engine, the opened MSAL caches, the settings.
//! - [`clipboard`], [`signin`]: copying tokens and clearing them again; the sign-in
//!   window, the browser and the device code flows. Each keeps its own state
//!   ([`clipboard::ClipboardState`], [`signin::SignInState`]).
//! - [`agent`]: the app as the Tessera agent: serving tools on the user's socket, asking
//!   the user when a program's request needs a sign-in, the Activity list
//!   ([`agent::AgentState`]).
//! - [`commands`]: what the main window may call (one permission per command).
//! - [`tray`]: the tray icon while the app serves as the agent ([`tray::TrayState`]).
//! - [`run`] (this file): the app.

use std::time::Duration;

use tauri::webview::PageLoadEvent;
use tauri::{Emitter, Manager, Runtime};

pub mod agent;
mod base;
pub mod clipboard;
pub mod commands;
pub mod error;
pub mod signin;
pub mod state;
pub mod tray;
pub mod views;

pub use state::AppState;

/// Add the app's commands, plugins and state to `builder` (on any runtime: the real one,
/// or Tauri's mock runtime in tests), without serving as the agent.
pub fn configure<R: Runtime>(builder: tauri::Builder<R>, state: AppState) -> tauri::Builder<R> {
    configure_with(builder, state, agent::AgentState::off())
}

/// [`configure`], serving as the agent when `agent` says so ([`agent::AgentState::on`]).
pub fn configure_with<R: Runtime>(
    builder: tauri::Builder<R>,
    state: AppState,
    agent: agent::AgentState,
) -> tauri::Builder<R> {
    builder
        // Before the clipboard plugin: plugins see the exit in the order they were added,
        // and that one lets go of the clipboard then.
        .plugin(
            tauri::plugin::Builder::<R>::new("tessera-exit")
                .on_event(|app, event| {
                    if let tauri::RunEvent::Exit = event {
                        agent::stop_on_exit(app);
                        clipboard::clear_on_exit(app);
                    }
                })
                .build(),
        )
        .plugin(tauri_plugin_clipboard_manager::init())
        .manage(state)
        .manage(signin::SignInState::default())
        .manage(clipboard::ClipboardState::default())
        .manage(agent)
        .setup(|app| {
            if std::env::args().any(|a| a == QUIT_FLAG) {
                // `tessera --quit` with no Tessera running: nothing to quit.
                app.handle().exit(0);
                return Ok(());
            }
            create_main_window(app.handle())?;
            let handle = app.handle().clone();
            tauri::async_runtime::spawn(async move {
                let state = handle.state::<AppState>();
                // The store may wait on the keyring: the window is up meanwhile and says so.
                if state.open_in_background().await {
                    tracing::debug!(
                        since_launch_ms = since_launch().as_millis() as u64,
                        "start-up: token store opened"
                    );
                    let _ = handle.emit_to("main", views::EVENT_STORE_OPENED, ());
                }
                if state.with(|_| Ok(())).await.is_ok() {
                    agent::start(&handle).await;
                    if handle.state::<agent::AgentState>().status().serving {
                        let h = handle.clone();
                        let _ = handle.run_on_main_thread(move || {
                            if let Err(e) = tray::create(&h) {
                                tracing::warn!(error = %e, "no tray icon");
                            }
                        });
                    }
                }
                if let Ok(data_dir) = state.with(|t| Ok(t.paths().data_dir.clone())).await {
                    let _ = tauri::async_runtime::spawn_blocking(move || {
                        signin::forget_legacy_web_data(&data_dir)
                    })
                    .await;
                }
            });
            Ok(())
        })
        .invoke_handler(tauri::generate_handler![
            commands::app_info,
            commands::list_profiles,
            commands::save_profile,
            commands::remove_profile,
            commands::add_profile_for,
            commands::list_accounts,
            commands::token_view,
            commands::copy_token,
            commands::tool_lines,
            commands::copy_tool_line,
            commands::sign_in,
            commands::cancel_sign_in,
            commands::start_device_code,
            commands::cancel_device_code,
            commands::copy_user_code,
            commands::sign_out,
            commands::sign_out_all,
            commands::get_settings,
            commands::save_settings,
            commands::list_msal_caches,
            commands::open_msal_cache,
            commands::close_msal_cache,
            commands::agent_status,
            commands::agent_answer,
            commands::agent_activity,
            commands::set_confirm_first,
            commands::ui_ready,
        ])
}

/// The main window (from `tauri.conf.json`, where `create` is false), kept on the app's
/// own pages: a link or a script cannot navigate it elsewhere. Runs at start-up (setup);
/// tests on the mock runtime, which has no event loop, call it themselves.
pub fn create_main_window<R: Runtime>(app: &tauri::AppHandle<R>) -> tauri::Result<()> {
    let Some(config) = app
        .config()
        .app
        .windows
        .iter()
        .find(|w| w.label == "main")
        .cloned()
    else {
        return Ok(());
    };
    let window = tauri::WebviewWindowBuilder::from_config(app, &config)?
        // Shown once its page has loaded (see `show_hidden`), not before.
        .visible(false)
        .on_page_load(|window, payload| {
            if payload.event() == PageLoadEvent::Finished {
                show_hidden(&window, "page loaded");
            }
        })
        .on_navigation(|url| {
            let own = match url.scheme() {
                "tauri" => url.host_str() == Some("localhost"),
                "http" | "https" => url.host_str() == Some("tauri.localhost"),
                _ => false,
            };
            if !own {
                tracing::warn!(
                    scheme = url.scheme(),
                    host = url.host_str().unwrap_or(""),
                    "main window: navigation refused"
                );
            }
            own
        })
        .build()?;
    // Closing it while the app serves tools in the background hides it (the tray's Open
    // shows it again); otherwise the app quits.
    let handle = app.clone();
    let hide = window.clone();
    window.on_window_event(move |event| {
        if let tauri::WindowEvent::CloseRequested { api, .. } = event {
            if agent::keeps_running(&handle) {
                api.prevent_close();
                let _ = hide.hide();
                tracing::info!("main window hidden: serving tools from the tray");
            }
        }
    });
    // Should the page never finish loading, show the window anyway after a while.
    tauri::async_runtime::spawn(async move {
        tokio::time::sleep(SHOW_ANYWAY_AFTER).await;
        let w = window.clone();
        let _ = window.run_on_main_thread(move || show_hidden(&w, "page still loading"));
    });
    tracing::debug!(
        since_launch_ms = since_launch().as_millis() as u64,
        "start-up: main window created"
    );
    Ok(())
}

/// How long the main window may stay hidden while its page loads.
const SHOW_ANYWAY_AFTER: Duration = Duration::from_secs(3);

/// Show the main window if it is still hidden: when its page has loaded, or after
/// [`SHOW_ANYWAY_AFTER`].
///
/// A window shown at once is drawn before its page is there, and WebKitGTK's first draw
/// (without the DMA-BUF renderer, which the app turns off) waits up to 500 ms for the web
/// process's first frame while blocking the main thread, which is the thread that serves
/// the page to the web process: one launch in three or four stalled for exactly that long
/// (`docs/benchmarks.md`). Hidden until loaded, the first draw finds the frame ready.
fn show_hidden<R: Runtime>(window: &tauri::WebviewWindow<R>, why: &str) {
    if window.is_visible().unwrap_or(true) {
        return;
    }
    if let Err(e) = window.show() {
        tracing::warn!("main window: cannot show it: {e}");
    }
    tracing::debug!(
        since_launch_ms = since_launch().as_millis() as u64,
        why,
        "start-up: main window shown"
    );
}

pub use base::since_launch;

/// On Linux, WebKitGTK's DMA-BUF renderer (its default since 2.42) costs the web process
/// about 85 MB more at rest and slows the first paint (measured under Xvfb: 311 MB PSS
/// for all processes and 0.65 s to the painted list with it, 224 MB and 0.57 s without;
/// `bench/app`). A list of accounts gains nothing from it, so Tessera turns it off (WebKit
/// then composites as it did before 2.42) unless `WEBKIT_DISABLE_DMABUF_RENDERER` is
/// already set (`0` keeps the DMA-BUF renderer). Runs first in `run()`, before any thread
/// exists.
fn webkit_without_dmabuf_renderer_by_default() {
    #[cfg(target_os = "linux")]
    if std::env::var_os("WEBKIT_DISABLE_DMABUF_RENDERER").is_none() {
        std::env::set_var("WEBKIT_DISABLE_DMABUF_RENDERER", "1");
    }
}

fn init_logging() {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_env("TESSERA_LOG")
        .unwrap_or_else(|_| EnvFilter::new("warn,tessera_lib=info,tessera_core=info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .try_init();
}

/// `tessera --quit`: the running app quits (it may be in the tray, with no window).
const QUIT_FLAG: &str = "--quit";

/// Run the desktop app.
pub fn run() {
    since_launch();
    webkit_without_dmabuf_renderer_by_default();
    init_logging();
    let state = AppState::open_default();
    // The single-instance plugin goes first, so that a second launch hands over to the
    // first (which comes to the front) before anything else starts.
    let single =
        tauri::Builder::default().plugin(tauri_plugin_single_instance::init(|app, argv, _cwd| {
            if argv.iter().any(|a| a == QUIT_FLAG) {
                tracing::info!("quit asked by `tessera {QUIT_FLAG}`");
                app.exit(0);
                return;
            }
            if let Some(w) = app.get_webview_window("main") {
                let _ = w.unminimize();
                let _ = w.show();
                let _ = w.set_focus();
            }
        }));
    let result =
        configure_with(single, state, agent::AgentState::on()).run(tauri::generate_context!());
    if let Err(e) = result {
        eprintln!("tessera: {e}");
        std::process::exit(1);
    }
}
