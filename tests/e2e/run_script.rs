//! The README's run command as a newcomer meets it: `scripts/run` on a display with no
//! D-Bus session (as `xvfb-run scripts/run` is), which starts its own session, a demo
//! keyring, the sandbox and the app. The terminal gets a few lines of its own; the
//! chatter of D-Bus, the portals, PipeWire and GTK goes to a log file it names.

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use crate::{desktop, Step};

#[tokio::test]
#[ignore = "needs Xvfb: run tests/e2e/run.sh"]
async fn the_run_command_keeps_the_services_chatter_in_a_log_it_names() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let terminal = tmp.path().join("terminal.txt");
    let out = std::fs::File::create(&terminal).unwrap();
    // (`--no-build`: the suite's cargo holds the build folder's lock while it runs.)
    let mut child = tokio::process::Command::new(root.join("scripts/run"))
        .arg("--no-build")
        .current_dir(root)
        .env_remove("DBUS_SESSION_BUS_ADDRESS")
        .env("TMPDIR", tmp.path())
        .env("TESSERA_HOME", tmp.path().join("home"))
        .env("TESSERA_SANDBOX_PORT", port.to_string())
        .env_remove("TESSERA_SANDBOX_URL")
        .env_remove("TESSERA_BROWSER")
        .stdin(Stdio::null())
        .stdout(out.try_clone().unwrap())
        .stderr(out)
        .kill_on_drop(true)
        .spawn()
        .expect("scripts/run starts");

    let window = desktop::wait_window("^Tessera$")
        .await
        .step("the app's window appears");
    // Let the services start (and complain) before the app is closed.
    tokio::time::sleep(Duration::from_secs(3)).await;
    desktop::request_close(window).step("close the window");
    let status = tokio::time::timeout(Duration::from_secs(60), child.wait())
        .await
        .expect("scripts/run ends after the window is closed")
        .unwrap();
    let printed = std::fs::read_to_string(&terminal).unwrap();
    assert!(status.success(), "{status}: {printed}");

    let own: Vec<&str> = printed
        .lines()
        .filter(|l| !l.trim().is_empty())
        // cargo's own lines (build progress) are not the services' chatter.
        .filter(|l| {
            !["Compiling", "Finished", "Blocking", "Building"]
                .iter()
                .any(|w| l.trim_start().starts_with(w))
        })
        .collect();
    for noise in [
        "dbus-daemon",
        "portal",
        "PipeWire",
        "pw.conf",
        "WARNING **",
        "Gtk-",
        "atspi",
    ] {
        assert!(
            !printed.contains(noise),
            "{noise:?} reached the terminal:\n{printed}"
        );
    }
    let log_line = own
        .iter()
        .find(|l| l.contains("app and desktop-service messages: "))
        .unwrap_or_else(|| panic!("no line names the log:\n{printed}"));
    let log = log_line
        .split("messages: ")
        .nth(1)
        .unwrap()
        .trim()
        .to_string();
    assert!(Path::new(&log).exists(), "the log it names exists: {log}");
    assert!(
        own.len() <= 20,
        "{} lines reached the terminal:\n{printed}",
        own.len()
    );
}
