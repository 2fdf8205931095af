//! The app as the Tessera agent: a `tessera-cli token` whose refresh token the sandbox
//! rejects raises the app's question; **Sign in** goes through the sign-in window and the
//! CLI prints the new token; **Deny** makes it exit 3; the Activity list shows both, and
//! no token text is anywhere in the page. Another user is refused. Closed, the app stays in the tray: tools still
//! get tokens, the tray menu (driven over D-Bus as a panel drives it) lists the account,
//! copies its token and opens the window, and `tessera --quit` ends it.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use serde_json::json;

use crate::webdriver::Session;
use crate::{
    a11y, add_by_device_code, desktop, env, sandbox_me, set_faults, shot, sign_in_through_window,
    Env, Step,
};

/// `tessera-cli token --account alice… --force-refresh`, started now, as a program would.
fn cli_token(e: &Env) -> tokio::process::Child {
    cli(
        e,
        &[
            "token",
            "--account",
            "alice@contoso.example",
            "--force-refresh",
        ],
    )
}

/// `tessera-cli ARGS` on the app's home, started now.
fn cli(e: &Env, args: &[&str]) -> tokio::process::Child {
    let cli = PathBuf::from(&e.app).with_file_name("tessera-cli");
    tokio::process::Command::new(&cli)
        .args(args)
        .env("TESSERA_HOME", &e.home)
        .env("TESSERA_SANDBOX_URL", &e.sandbox)
        .env_remove("TESSERA_AGENT")
        .env_remove("TESSERA_AGENT_SOCKET")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap_or_else(|err| panic!("start {}: {err}", cli.display()))
}

async fn finished(child: tokio::process::Child) -> std::process::Output {
    tokio::time::timeout(Duration::from_secs(60), child.wait_with_output())
        .await
        .expect("the CLI finishes within 60 s")
        .expect("the CLI's output")
}

/// Wait for the main window (`what`), then close it as a window manager would; it goes.
async fn close_the_main_window(what: &str) {
    let main_window = desktop::wait_window("^Tessera$").await.step(what);
    desktop::request_close(main_window).step("close the main window");
    desktop::wait_no_window("^Tessera$")
        .await
        .step("the main window goes away");
}

/// The sandbox rejects alice's refresh token once; a program asks for her token: the app
/// asks about it.
async fn asked_after_a_rejected_refresh_token(s: &Session, e: &Env) -> tokio::process::Child {
    set_faults(
        e,
        Some(json!({ "refresh_invalid_grant": true, "fail_count": 1 })),
    )
    .await;
    let child = cli_token(e);
    question(s).await;
    child
}

/// The question is up, about alice and asked by the CLI.
async fn question(s: &Session) {
    s.wait_visible("#agent-dialog")
        .await
        .step("the app asks about the program's request");
    let account = s.text("#agent-account").await.unwrap();
    assert!(account.contains("alice@contoso.example"), "{account}");
    let program = s.text("#agent-program").await.unwrap();
    assert!(program.contains("tessera-cli token"), "{program}");
}

#[tokio::test]
#[ignore = "needs Xvfb, D-Bus, tauri-driver and a sandbox: run tests/e2e/run.sh"]
async fn a_program_needing_a_sign_in_is_asked_about_in_the_app() {
    let e = env();
    let s = Session::start(&e.driver, &e.app)
        .await
        .step("launch the app");
    s.wait_until("the list is loaded", || async {
        Ok(s.visible("#empty").await? || s.visible("#account-detail").await?)
    })
    .await
    .step("the list is loaded");
    set_faults(&e, Some(json!({ "device_code_interval_secs": 1 }))).await;
    add_by_device_code(&s, &e, "alice@contoso.example", None).await;
    set_faults(&e, None).await;
    let socket = PathBuf::from(std::env::var("XDG_RUNTIME_DIR").expect("run.sh sets it"))
        .join("tessera/agent.sock");
    s.wait_until("the app serves as the agent", || async {
        Ok(socket.exists())
    })
    .await
    .step("the agent's socket");
    // Another user is kept out of the app's agent: by the modes of its folder and socket,
    // and with those opened to everyone, by its check of the peer's uid.
    if !tessera_tests::second_user::is_refused_twice(&socket) {
        eprintln!("skipped the second user: setpriv cannot run one here");
    }

    // 1. The refresh token is rejected: the app asks; Sign in; the CLI gets the new token.
    let child = asked_after_a_rejected_refresh_token(&s, &e).await;
    shot(&e, "20-agent-asks.png").await;
    a11y::check(&s, "the agent's question").await;
    s.click("#agent-allow").await.step("Sign in");
    sign_in_through_window(&s, &e, "alice@contoso.example", true, true, None).await;
    let out = finished(child).await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "tessera-cli token: {stderr}");
    let token = String::from_utf8(out.stdout).unwrap().trim().to_string();
    let (status, me) = sandbox_me(&e, &token).await;
    assert_eq!(status, 200, "the new token works: {me}");
    assert_eq!(me["preferred_username"], "alice@contoso.example");

    // 2. Deny: the CLI exits 3 and says so.
    let child = asked_after_a_rejected_refresh_token(&s, &e).await;
    s.click("#agent-deny").await.step("Deny");
    s.wait_hidden("#agent-dialog")
        .await
        .step("the question closes");
    let out = finished(child).await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    assert!(stderr.contains("denied"), "{stderr}");
    assert!(out.stdout.is_empty());
    set_faults(&e, None).await;

    // 3. "Ask me first": a program's first request waits for Allow; its next does not ask.
    s.click("#confirm-first").await.step("ask me first");
    s.wait_text("#toast", "asks you before a program")
        .await
        .step("the switch is on");
    let child = cli(&e, &["token"]);
    s.wait_text("#agent-title", "A program asks for a token")
        .await
        .step("the app asks before handing the token out");
    s.click("#agent-allow").await.step("Allow");
    let out = finished(child).await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = finished(cli(&e, &["token"])).await;
    assert!(out.status.success(), "the same program is not asked again");
    assert!(!s.visible("#agent-dialog").await.unwrap());
    s.click("#confirm-first").await.step("ask me first, off");
    s.wait_text("#toast", "without asking")
        .await
        .step("the switch is off");

    // 4. The Activity list: all of them, newest first, and no token in the page.
    s.click("#open-activity").await.step("Activity");
    s.wait_text("#activity-body", "Handed out after sign-in")
        .await
        .step("the sign-in's token is listed");
    let rows = s.text("#activity-body").await.unwrap();
    let denied = rows.find("Denied").expect("the denied request is listed");
    let handed = rows.find("Handed out after sign-in").unwrap();
    assert!(denied < handed, "newest first: {rows}");
    assert!(rows.contains("alice@contoso.example"), "{rows}");
    let status = s.text("#activity-status").await.unwrap();
    assert!(status.contains("agent.sock"), "{status}");
    s.script(
        "const s = document.getElementById('activity-account');\
         s.value = 'alice@contoso.example'; s.dispatchEvent(new Event('change'));",
        json!([]),
    )
    .await
    .step("filter by alice");
    s.wait_text("#activity-body", "Denied")
        .await
        .step("alice's activity");
    shot(&e, "21-activity.png").await;
    a11y::check(&s, "the Activity list").await;
    let page = s
        .script("return document.documentElement.outerHTML", json!([]))
        .await
        .unwrap();
    let page = page.as_str().unwrap_or_default();
    for part in token.split('.') {
        assert!(!page.contains(part), "a part of the token is in the page");
    }
    s.click("#activity-close")
        .await
        .step("close the Activity list");

    // Closing the window keeps the app in the tray (a program has got a token from it):
    // tools still get tokens and sign out through it; `tessera --quit` ends it, and the
    // agent with it.
    close_the_main_window("the main window").await;
    assert!(desktop::app_running(), "the app runs on in the tray");
    assert!(socket.exists(), "and serves tools");
    let out = finished(cli(&e, &["token"])).await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "token from the tray: {stderr}");
    let printed = String::from_utf8_lossy(&out.stdout).trim().to_owned();

    // The tray menu, driven as a desktop panel drives it (its D-Bus menu: Xvfb has no
    // panel): it lists alice; her item copies the token `token` printed, from Rust;
    // "Open Tessera" brings the window back.
    let (menu, copy) = desktop::wait_tray_item("Copy access token: alice@contoso.example")
        .await
        .step("the tray menu lists alice");
    let open = menu
        .item("Open Tessera")
        .expect("the tray menu opens the window");
    assert!(
        menu.item("Quit Tessera").is_some(),
        "the tray menu quits: {:?}",
        menu.items
    );
    for (_, label) in &menu.items {
        for part in printed.split('.') {
            assert!(
                !label.contains(part),
                "a part of the token is in the tray menu"
            );
        }
    }
    desktop::clear_clipboard().step("empty the clipboard");
    menu.click(copy).step("click alice's item in the tray menu");
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while desktop::clipboard().trim() != printed {
        assert!(
            std::time::Instant::now() < deadline,
            "the tray's copy put alice's token on the clipboard"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    menu.click(open).step("click Open Tessera in the tray menu");
    close_the_main_window("the main window, back").await;
    let out = finished(cli(&e, &["logout", "--all"])).await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && stderr.contains("Signed out alice@contoso.example"),
        "logout through the app in the tray: {stderr}"
    );
    let app_home = std::env::var("TESSERA_E2E_APP_HOME").expect("run.sh sets it");
    let quit = tokio::process::Command::new(&e.app)
        .arg("--quit")
        .env("HOME", app_home)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
    let status = tokio::time::timeout(Duration::from_secs(20), quit)
        .await
        .expect("tessera --quit returns")
        .expect("tessera --quit runs");
    assert!(status.success(), "tessera --quit: {status}");
    desktop::wait_app_gone().await.step("the app quits");
    let _ = s.quit().await; // the app has gone already
    for _ in 0..50 {
        if !socket.exists() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        !socket.exists(),
        "the agent's socket is gone after quitting"
    );
}
