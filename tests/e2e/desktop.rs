//! The X11 side of the desktop: the sign-in window lives in its own web context (its own
//! cookies), which WebKitWebDriver cannot drive, so it is driven like a user would: by
//! its title (`xdotool search`), the keyboard (`xdotool type`/`key`) and the window
//! manager's close request (`WM_DELETE_WINDOW`, sent with x11rb: there is no window
//! manager under Xvfb). The clipboard is read with `xclip`, the screen with `import`.

use std::process::Command;
use std::time::{Duration, Instant};

use x11rb::protocol::xproto::{ClientMessageEvent, ConnectionExt, EventMask};

use crate::webdriver::{Result, WAIT};

fn run(program: &str, args: &[&str]) -> Result<String> {
    let out = Command::new(program)
        .args(args)
        .output()
        .map_err(|e| format!("cannot run {program}: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "{program} {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Mapped windows whose title matches the regular expression `title` (case-insensitive).
pub fn windows(title: &str) -> Vec<u32> {
    // `xdotool search` exits 1 when nothing matches.
    run("xdotool", &["search", "--onlyvisible", "--name", title])
        .map(|s| s.lines().filter_map(|l| l.trim().parse().ok()).collect())
        .unwrap_or_default()
}

/// Wait for a window whose title matches `title`.
pub async fn wait_window(title: &str) -> Result<u32> {
    let deadline = Instant::now() + WAIT;
    loop {
        if let Some(w) = windows(title).into_iter().next() {
            return Ok(w);
        }
        if Instant::now() > deadline {
            return Err(format!("no window titled {title:?} appeared"));
        }
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
}

/// Wait until no window's title matches `title`.
pub async fn wait_no_window(title: &str) -> Result<()> {
    let deadline = Instant::now() + WAIT;
    while !windows(title).is_empty() {
        if Instant::now() > deadline {
            return Err(format!("the window titled {title:?} is still there"));
        }
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
    Ok(())
}

/// Give `window` the keyboard focus, then type `text`.
pub fn type_text(window: u32, text: &str) -> Result<()> {
    run("xdotool", &["windowfocus", "--sync", &window.to_string()])?;
    run("xdotool", &["type", "--delay", "20", text]).map(|_| ())
}

/// Give `window` the keyboard focus, then press `keys` (xdotool key names).
pub fn keys(window: u32, keys: &[&str]) -> Result<()> {
    run("xdotool", &["windowfocus", "--sync", &window.to_string()])?;
    let mut args = vec!["key", "--delay", "60"];
    args.extend_from_slice(keys);
    run("xdotool", &args).map(|_| ())
}

/// Ask `window` to close, as a window manager's close button does.
pub fn request_close(window: u32) -> Result<()> {
    let (conn, _) =
        x11rb::connect(None).map_err(|e| format!("cannot connect to the X server: {e}"))?;
    let atom = |name: &[u8]| -> Result<u32> {
        Ok(conn
            .intern_atom(false, name)
            .map_err(|e| e.to_string())?
            .reply()
            .map_err(|e| e.to_string())?
            .atom)
    };
    let protocols = atom(b"WM_PROTOCOLS")?;
    let delete = atom(b"WM_DELETE_WINDOW")?;
    let event = ClientMessageEvent::new(
        32,
        window,
        protocols,
        [delete, x11rb::CURRENT_TIME, 0, 0, 0],
    );
    let sent = conn
        .send_event(false, window, EventMask::NO_EVENT, event)
        .map_err(|e| e.to_string())?
        .check();
    sent.map_err(|e| format!("the X server refused the close request: {e}"))
}

/// The clipboard's text ("" when it is empty).
pub fn clipboard() -> String {
    run("xclip", &["-o", "-selection", "clipboard"]).unwrap_or_default()
}

/// Save a PNG of the first window whose title matches `title`, as the X server shows it.
pub fn screenshot_window(title: &str, path: &std::path::Path) -> Result<()> {
    let w = windows(title)
        .into_iter()
        .next()
        .ok_or_else(|| format!("no window titled {title:?} to capture"))?;
    run(
        "import",
        &["-window", &w.to_string(), &path.display().to_string()],
    )
    .map(|_| ())
}

/// Save a PNG of the whole screen (the sign-in window is not WebDriver's to capture).
pub fn screenshot_screen(path: &std::path::Path) -> Result<()> {
    run("import", &["-window", "root", &path.display().to_string()]).map(|_| ())
}

/// The D-Bus name the running app holds (tauri-plugin-single-instance: the identifier
/// from tauri.conf.json, then `.SingleInstance`).
const SINGLE_INSTANCE_NAME: &str = "dev.tessera.desktop.SingleInstance";

/// Whether an instance of the app holds its single-instance name on the session bus.
pub fn app_running() -> bool {
    run(
        "dbus-send",
        &[
            "--session",
            "--print-reply",
            "--dest=org.freedesktop.DBus",
            "/org/freedesktop/DBus",
            "org.freedesktop.DBus.NameHasOwner",
            &format!("string:{SINGLE_INSTANCE_NAME}"),
        ],
    )
    .is_ok_and(|out| out.contains("boolean true"))
}

/// Wait until the app is gone from the session bus (a quit app may take a moment to
/// release its name; a launch before that would hand over to the dying instance).
pub async fn wait_app_gone() -> Result<()> {
    let deadline = Instant::now() + WAIT;
    while app_running() {
        if Instant::now() > deadline {
            return Err("the app still holds its single-instance name".into());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Ok(())
}

/// Where the tray icon's menu is on the session bus: libayatana-appindicator exports it
/// there (`com.canonical.dbusmenu`, the interface desktop panels read) whether or not a
/// panel shows it, and Xvfb has none. The path is the indicator's id as tray-icon names
/// it ("tray-icon tray app" and the app's tray id), with `_` for what a path cannot hold.
const TRAY_MENU_PATH: &str = "/org/ayatana/NotificationItem/tray_icon_tray_app_tessera/Menu";

/// The tray menu as a panel sees it: its items' ids and labels, and whose they are.
pub struct TrayMenu {
    bus_name: String,
    pub items: Vec<(i32, String)>,
}

impl TrayMenu {
    /// The id of the item whose label contains `label`.
    pub fn item(&self, label: &str) -> Option<i32> {
        self.items
            .iter()
            .find(|(_, l)| l.contains(label))
            .map(|(id, _)| *id)
    }

    /// Click an item, as a panel does when the user picks it.
    pub fn click(&self, id: i32) -> Result<()> {
        let id = id.to_string();
        run(
            "gdbus",
            &[
                "call",
                "--session",
                "--dest",
                &self.bus_name,
                "--object-path",
                TRAY_MENU_PATH,
                "--method",
                "com.canonical.dbusmenu.Event",
                "--",
                &id,
                "clicked",
                "<0>",
                "0",
            ],
        )
        .map(|_| ())
    }
}

/// The ids and labels of a `GetLayout` reply as gdbus prints it:
/// `(uint32 7, (0, {...}, [<(1, {'label': <'Open Tessera'>}, @av [])>, ...]))`.
fn layout_items(reply: &str) -> Vec<(i32, String)> {
    reply
        .split("<(")
        .skip(1)
        .filter_map(|part| {
            let id = part.split(',').next()?.trim().parse().ok()?;
            let label = part.split("'label': <'").nth(1)?.split("'>").next()?;
            Some((id, label.replace("\\'", "'")))
        })
        .collect()
}

/// The tray menu, read from whichever connection on the bus exports it (the app's).
pub fn tray_menu() -> Result<TrayMenu> {
    let names = run(
        "dbus-send",
        &[
            "--session",
            "--print-reply",
            "--dest=org.freedesktop.DBus",
            "/org/freedesktop/DBus",
            "org.freedesktop.DBus.ListNames",
        ],
    )?;
    let mut tried = Vec::new();
    for name in names
        .split('"')
        .filter(|n| n.starts_with(':') && !n.contains(char::is_whitespace))
    {
        let reply = run(
            "gdbus",
            &[
                "call",
                "--session",
                "--dest",
                name,
                "--object-path",
                TRAY_MENU_PATH,
                "--method",
                "com.canonical.dbusmenu.GetLayout",
                "--", // "-1" is an argument, not an option
                "0",
                "-1",
                "[]",
            ],
        );
        match reply {
            Ok(reply) => {
                return Ok(TrayMenu {
                    bus_name: name.to_owned(),
                    items: layout_items(&reply),
                })
            }
            Err(e) => tried.push(format!("{name}: {e}")),
        }
    }
    Err(format!(
        "no connection on the session bus exports the tray menu:\n{}",
        tried.join("\n")
    ))
}

/// Wait until the tray menu has an item whose label contains `label` (the app fills it
/// in after the store opened, and again when accounts change).
pub async fn wait_tray_item(label: &str) -> Result<(TrayMenu, i32)> {
    let deadline = Instant::now() + WAIT;
    loop {
        let menu = tray_menu();
        if let Some(id) = menu.as_ref().ok().and_then(|m| m.item(label)) {
            return Ok((menu?, id));
        }
        if Instant::now() > deadline {
            return Err(match menu {
                Ok(m) => format!("no tray menu item {label:?} in {:?}", m.items),
                Err(e) => e,
            });
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Empty the clipboard (so that what is copied next is seen arriving).
pub fn clear_clipboard() -> Result<()> {
    // xclip stays in the background to serve the selection: no pipe may wait for it.
    let status = Command::new("xclip")
        .args(["-selection", "clipboard", "-i", "/dev/null"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .map_err(|e| format!("cannot run xclip: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("xclip could not empty the clipboard: {status}"))
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_get_layout_reply_gives_ids_and_labels() {
        let reply = "(uint32 7, (0, {'children-display': <'submenu'>}, [<(1, {'label': <'Open Tessera'>}, @av [])>, <(2, {'type': <'separator'>}, @av [])>, <(3, {'label': <'Copy access token: o\\'neil@x (Sandbox)'>, 'enabled': <true>}, @av [])>]))";
        assert_eq!(
            super::layout_items(reply),
            vec![
                (1, "Open Tessera".to_owned()),
                (3, "Copy access token: o'neil@x (Sandbox)".to_owned())
            ]
        );
    }
}
