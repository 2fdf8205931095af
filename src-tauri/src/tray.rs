//! The tray icon, while the app serves as the agent: its menu opens the window, copies an
//! account's access token (from Rust, as the window's Copy does) and quits. With the
//! `background` setting (by default: once a program got a token from the app), closing
//! the main window hides it and the app keeps serving tools; **Quit** in the tray (or
//! `tessera --quit`) ends it, and the agent with it.
//!
//! Invariant: the menu names accounts only; a token goes to the clipboard, never into a
//! label or a log line.

use std::sync::Mutex;

use tauri::menu::{Menu, MenuBuilder, MenuItemBuilder};
use tauri::tray::TrayIconBuilder;
use tauri::{AppHandle, Listener, Manager, Runtime};

use crate::agent::TRAY_ID;
use crate::base::lock;
use crate::commands;
use crate::views::{
    AccountRef, CopyFormat, EVENT_ACCOUNTS_CHANGED, EVENT_SIGNIN_FINISHED, TESSERA_SOURCE,
};

const OPEN: &str = "open";
const QUIT: &str = "quit";
const COPY: &str = "copy:";

/// The tray feature's state: the accounts its menu lists, by position.
#[derive(Default)]
pub struct TrayState {
    accounts: Mutex<Vec<AccountRef>>,
}

/// Put the icon in the tray (once the agent serves).
pub fn create<R: Runtime>(app: &AppHandle<R>) -> tauri::Result<()> {
    app.manage(TrayState::default());
    let mut builder = TrayIconBuilder::with_id(TRAY_ID)
        .tooltip("Tessera")
        .menu(&menu(app, &[])?)
        .on_menu_event(|app, event| on_menu(app, event.id().as_ref()));
    if let Some(icon) = app.default_window_icon() {
        builder = builder.icon(icon.clone());
    }
    builder.build(app)?;
    for event in [EVENT_ACCOUNTS_CHANGED, EVENT_SIGNIN_FINISHED] {
        let h = app.clone();
        app.listen_any(event, move |_| refresh(&h));
    }
    refresh(app);
    Ok(())
}

fn menu<R: Runtime>(app: &AppHandle<R>, accounts: &[(String, String)]) -> tauri::Result<Menu<R>> {
    let mut m =
        MenuBuilder::new(app).item(&MenuItemBuilder::with_id(OPEN, "Open Tessera").build(app)?);
    if !accounts.is_empty() {
        m = m.separator();
        for (id, label) in accounts {
            m = m.item(&MenuItemBuilder::with_id(id.as_str(), label).build(app)?);
        }
    }
    m.separator()
        .item(&MenuItemBuilder::with_id(QUIT, "Quit Tessera").build(app)?)
        .build()
}

/// List the accounts of Tessera's store in the menu again.
fn refresh<R: Runtime>(app: &AppHandle<R>) {
    let app = app.clone();
    tauri::async_runtime::spawn(async move {
        let accounts = commands::list_accounts(app.state())
            .await
            .unwrap_or_default()
            .into_iter()
            .filter(|a| a.source == TESSERA_SOURCE && !a.profile.is_empty())
            .collect::<Vec<_>>();
        let labels: Vec<(String, String)> = accounts
            .iter()
            .enumerate()
            .map(|(i, a)| {
                (
                    format!("{COPY}{i}"),
                    format!("Copy access token: {} ({})", a.username, a.profile),
                )
            })
            .collect();
        *lock(&app.state::<TrayState>().accounts) = accounts
            .iter()
            .map(|a| AccountRef {
                source: a.source.clone(),
                profile: a.profile.clone(),
                home_account_id: a.home_account_id.clone(),
            })
            .collect();
        let handle = app.clone();
        let _ = app.run_on_main_thread(move || {
            if let (Some(tray), Ok(menu)) = (handle.tray_by_id(TRAY_ID), menu(&handle, &labels)) {
                let _ = tray.set_menu(Some(menu));
            }
        });
    });
}

fn on_menu<R: Runtime>(app: &AppHandle<R>, id: &str) {
    match id {
        OPEN => {
            if let Some(w) = app.get_webview_window("main") {
                let _ = w.show();
                let _ = w.unminimize();
                let _ = w.set_focus();
            }
        }
        QUIT => app.exit(0),
        _ => {
            let Some(i) = id.strip_prefix(COPY).and_then(|i| i.parse::<usize>().ok()) else {
                return;
            };
            let Some(account) = lock(&app.state::<TrayState>().accounts).get(i).cloned() else {
                return;
            };
            let app = app.clone();
            tauri::async_runtime::spawn(async move {
                let copied =
                    commands::copy_token(app.clone(), app.state(), account, None, CopyFormat::Raw)
                        .await;
                if let Err(e) = copied {
                    tracing::warn!(error = %e, "tray: the token was not copied");
                }
            });
        }
    }
}
