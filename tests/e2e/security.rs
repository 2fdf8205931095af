//! The app against hostile input, end to end: claims that carry markup, script injected
//! into the main window, a provider page in the sign-in window that tries the app's IPC,
//! the trace-level log of a whole sign-in, refresh, copy and sign-out; a provider page that
//! offers downloads and tries to take the sign-in window elsewhere; and what a sign-in
//! leaves on disk (no cookie) and for the next one (no single sign-on).
//!
//! Runs after `desktop_journey` (tests run one at a time, by name), each from an empty
//! store, leaving it empty.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::webdriver::Session;
use crate::{
    account_count, account_item, add_by_device_code, app_log, confirm, desktop, enter_credentials,
    env, sandbox_me, sandbox_origin, set_faults, shot, Step, CONSENT_PAGE, SIGNIN_PAGE,
    SIGNIN_TITLE,
};

/// A display name that would run script if the page parsed it as HTML.
const HOSTILE_NAME: &str = r#"<img src=x onerror="window.__pwned='name'">Mallory"#;
/// A claim whose value is a script element.
const HOSTILE_CLAIM: &str = r#"<script>window.__pwned='claim'</script>"#;
/// A role (shown as a chip) with an inline event handler.
const HOSTILE_ROLE: &str = r#"<svg onload="window.__pwned='role'">"#;

#[tokio::test]
#[ignore = "needs Xvfb, D-Bus, tauri-driver and a sandbox: run tests/e2e/run.sh"]
async fn hostile_claims_injected_script_and_a_hostile_sign_in_page() {
    let e = env();
    let s = Session::start(&e.driver, &e.app)
        .await
        .step("launch the app");
    s.wait_text("#empty", "No accounts yet")
        .await
        .step("an empty store to start from");

    // 1. The provider issues tokens whose claims carry markup and script.
    set_faults(
        &e,
        Some(json!({
            "device_code_interval_secs": 1,
            "extra_claims": {
                "name": HOSTILE_NAME,
                "hostile_note": HOSTILE_CLAIM,
                "roles": [HOSTILE_ROLE, "Reader"],
            },
        })),
    )
    .await;
    add_by_device_code(&s, &e, "dave@outlook.example", None).await;
    let dave = account_item("dave@outlook.example");
    s.wait_visible(&format!(r#"{dave}[aria-selected="true"]"#))
        .await
        .step("dave is listed and selected");

    // They render as text: the list, the heading, the claims table and the chips show
    // the markup itself, no element was made from it, and none of it ran.
    s.wait_text(&dave, HOSTILE_NAME)
        .await
        .step("the list shows the name as text");
    assert_eq!(s.text("#d-name").await.unwrap(), HOSTILE_NAME);
    s.wait_text(r#"#t-claims tr[data-claim="hostile_note"]"#, HOSTILE_CLAIM)
        .await
        .step("the claims table shows the script as text");
    s.wait_text(r#"#t-claims tr[data-claim="name"]"#, HOSTILE_NAME)
        .await
        .step("the name claim as text");
    s.wait_text("#t-roles", HOSTILE_ROLE)
        .await
        .step("the role chip shows the markup as text");
    tokio::time::sleep(Duration::from_millis(500)).await;
    let dom = s
        .script(
            "return {
               pwned: window.__pwned === undefined ? null : String(window.__pwned),
               made: document.querySelectorAll(
                 '#accounts img, #accounts svg, #account-detail img, #account-detail svg, #accounts script, #account-detail script'
               ).length,
             }",
            json!([]),
        )
        .await
        .step("inspect the page");
    assert_eq!(
        dom,
        json!({ "pwned": null, "made": 0 }),
        "markup from claims made elements or ran"
    );
    shot(&e, "12-hostile-claims.png").await;

    // 2. The CSP blocks script injected into the main window: an inline script element
    // and an inline event handler, both refused and both reported as violations.
    s.script(
        "window.__violations = [];
         document.addEventListener('securitypolicyviolation', (ev) =>
           window.__violations.push(ev.effectiveDirective || ev.violatedDirective));
         const inline = document.createElement('script');
         inline.textContent = \"window.__injected = 'inline script ran'\";
         document.body.appendChild(inline);
         const holder = document.createElement('div');
         holder.innerHTML = '<img src=\"data:,\" onerror=\"window.__injected = \\'handler ran\\'\">';
         document.body.appendChild(holder);",
        json!([]),
    )
    .await
    .step("inject script into the main window");
    s.wait_until("two CSP violations to be reported", || async {
        let n = s
            .script("return window.__violations.length", json!([]))
            .await?;
        Ok(n.as_u64().unwrap_or(0) >= 2)
    })
    .await
    .step("the CSP reports the injected script");
    let after = s
        .script(
            "return { injected: window.__injected === undefined ? null : String(window.__injected),
                      violations: window.__violations }",
            json!([]),
        )
        .await
        .unwrap();
    assert_eq!(
        after["injected"],
        Value::Null,
        "injected script ran: {after}"
    );
    for v in after["violations"].as_array().unwrap() {
        assert!(
            v.as_str().unwrap_or("").starts_with("script-src"),
            "a script-src violation: {after}"
        );
    }

    // 3. Refresh and copy (for the log check at the end), through the buttons.
    s.click("#token-refresh").await.step("Refresh now");
    s.wait_text("#toast", "New access token for dave@outlook.example")
        .await
        .step("the refresh is confirmed");
    s.click("#copy-token").await.step("Copy access token");
    s.wait_text("#toast", "Access token copied for dave@outlook.example")
        .await
        .step("copy confirmed");
    let token = desktop::clipboard();
    let (status, me) = sandbox_me(&e, &token).await;
    assert_eq!((status, me["name"].as_str()), (200, Some(HOSTILE_NAME)));

    // 4. A provider page in the sign-in window tries the app's commands and plugins:
    // every call is refused, and nothing happened (the account is still there).
    set_faults(&e, Some(json!({ "ipc_probe_page": true }))).await;
    s.click("#add-account").await.step("Add account");
    s.click(r#"#add-form input[name="method"][value="embedded"]"#)
        .await
        .step("choose the sign-in window");
    s.click("#add-go").await.step("Continue");
    let w = desktop::wait_window(SIGNIN_TITLE)
        .await
        .step("the sign-in window opens");
    let report = probe_report(&e).await;
    let _ = desktop::screenshot_screen(&e.shots.join("13-ipc-probe.png"));
    desktop::request_close(w).step("close the sign-in window");
    desktop::wait_no_window(SIGNIN_TITLE)
        .await
        .step("the sign-in window closes");
    s.wait_text("#toast", "Sign-in cancelled")
        .await
        .step("the sign-in is cancelled");
    set_faults(&e, None).await;

    assert_eq!(report["tauri_global"], "undefined", "{report:#}");
    let attempts = report["attempts"].as_array().expect("the probe's attempts");
    assert!(attempts.len() >= 12, "every probe ran: {report:#}");
    for a in attempts {
        let name = a["name"].as_str().unwrap_or("");
        if name.starts_with("window.ipc.postMessage") {
            continue; // fire and forget: judged by its effect below
        }
        assert_eq!(
            a["outcome"], "refused",
            "the sign-in page reached the app: {a}"
        );
    }
    assert_eq!(
        account_count(&s).await,
        1,
        "the page's sign_out_all did not run"
    );
    s.click(&dave).await.step("select dave");
    s.wait_text(
        r#"#t-claims tr[data-claim="preferred_username"]"#,
        "dave@outlook.example",
    )
    .await
    .step("dave's token still loads");
    assert_eq!(
        desktop::clipboard(),
        token,
        "the clipboard still holds what Tessera put there"
    );

    // 5. Sign out.
    s.click("#sign-out").await.step("Sign out");
    confirm(&s, "Sign out dave@outlook.example?").await;
    s.wait_text("#empty", "No accounts yet")
        .await
        .step("the empty state again");
    s.quit().await.step("quit");

    // 6. The app logged at trace level through all of it (and the journey before):
    // not one token, code or device code, by the shape of the sandbox's secrets.
    if let Ok(work) = std::env::var("TESSERA_E2E_WORK") {
        let log = std::fs::read_to_string(PathBuf::from(work).join("tauri-driver.log"))
            .expect("the app's log");
        assert!(
            log.contains("tessera_lib") && log.contains("TRACE"),
            "the app's log is there, at trace level"
        );
        assert!(
            !log.contains(&token),
            "the copied token is in the app's log"
        );
        let found = secret_shaped(&log);
        assert!(
            found.is_empty(),
            "secret-shaped strings in the app's log (kind, line): {found:?}"
        );
    }
}

/// The sign-in window against a provider page that offers downloads, goes to the redirect
/// URI with a forged `state` and with none, tries to go to remote http, `file:`, `data:`,
/// `about:config` and an app scheme, opens a new window (`target=_blank` and
/// `window.open`), then goes to a page of another origin: nothing is downloaded, the forged
/// redirects do not end the sign-in, every one of those navigations and the new window are
/// refused (the page is still there after each), and the origin the window's title and the main window
/// show follows the pages, says "not encrypted" for http, and is never a URL.
#[tokio::test]
#[ignore = "needs Xvfb, D-Bus, tauri-driver and a sandbox: run tests/e2e/run.sh"]
async fn sign_in_window_refuses_downloads_and_navigations_and_shows_the_origin() {
    let e = env();
    let s = Session::start(&e.driver, &e.app)
        .await
        .step("launch the app");
    s.wait_text("#empty", "No accounts yet")
        .await
        .step("an empty store to start from");
    let reported_before = navigation_reports(&e).await.len();
    set_faults(&e, Some(json!({ "hostile_navigation_page": true }))).await;
    s.click("#empty-add").await.step("Add account");
    s.click(r#"#add-form input[name="method"][value="embedded"]"#)
        .await
        .step("choose the sign-in window");
    s.click("#add-go").await.step("Continue");
    let here = sandbox_origin(&e);
    s.wait_text("#signin-origin", &here)
        .await
        .step("the main window shows the page's origin");
    let signin = desktop::wait_window(&format!(
        "^{} — Hostile navigation — Tessera sign-in",
        regex_escape(&here)
    ))
    .await
    .step("the window's title begins with the page's origin");

    // The page reports after each attempt; a page that was replaced reports nothing more.
    // It opens a new window on a key press (WebKit needs a user's gesture for one).
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut pressed = false;
    let reports = loop {
        let reports: Vec<Value> = navigation_reports(&e).await.split_off(reported_before);
        if reports.iter().any(|r| r["name"] == "done") || Instant::now() > deadline {
            break reports;
        }
        if !pressed
            && reports
                .iter()
                .any(|r| r["name"] == "new window: press Enter")
        {
            desktop::keys(signin, &["Return"]).step("press Enter on the target=_blank link");
            pressed = true;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    let names: Vec<&str> = reports.iter().filter_map(|r| r["name"].as_str()).collect();
    assert_eq!(
        names,
        [
            "download link",
            "download navigation",
            "redirect with a forged state",
            "redirect without a state",
            "remote http by name",
            "remote http by address",
            "file",
            "data",
            "about:config",
            "custom scheme",
            "new window: press Enter",
            "new window",
            "done"
        ],
        "the page stayed after every attempt: {reports:#?}"
    );
    for r in &reports {
        assert_eq!(r["outcome"], "still here", "{r}");
    }

    // Last, the page went to another origin (localhost instead of 127.0.0.1).
    let port = url::Url::parse(&e.sandbox).unwrap().port().unwrap();
    let there = format!("⚠ localhost:{port} (not encrypted)");
    s.wait_text("#signin-origin", &there)
        .await
        .step("the main window follows the page to its new origin");
    let w = desktop::wait_window(&format!(
        "^{} — Second page — Tessera sign-in \\(Sandbox\\)$",
        regex_escape(&there)
    ))
    .await
    .step("so does the window's title");
    let seen: Vec<String> = serde_json::from_str(
        s.script(
            "return document.getElementById('signin-banner').dataset.origins",
            json!([]),
        )
        .await
        .unwrap()
        .as_str()
        .unwrap(),
    )
    .unwrap();
    assert_eq!(seen.first(), Some(&here), "{seen:?}");
    assert_eq!(seen.last(), Some(&there), "{seen:?}");
    for label in &seen {
        assert!(
            *label == here || *label == there,
            "only the two origins, never a URL or another page: {seen:?}"
        );
    }
    assert_eq!(
        s.script(
            "return document.getElementById('signin-origin').dataset.secure",
            json!([])
        )
        .await
        .unwrap(),
        "false"
    );
    crate::work_screenshot("sign-in-origin.png");
    desktop::request_close(w).step("close the sign-in window");
    s.wait_text("#toast", "Sign-in cancelled")
        .await
        .step("the sign-in is cancelled");
    set_faults(&e, None).await;

    // Nothing was downloaded: no file of that name (the sandbox's `tessera-e2e-download.bin`,
    // or a numbered variant) anywhere the app could put one (its HOME and download folder,
    // TESSERA_HOME, the folder it runs in).
    let mut places: Vec<PathBuf> = vec![e.home.clone()];
    places.extend(std::env::var_os("TESSERA_E2E_APP_HOME").map(PathBuf::from));
    places.extend(std::env::var_os("TESSERA_E2E_WORK").map(PathBuf::from));
    let cwd = std::env::current_dir().unwrap();
    let downloads: Vec<PathBuf> = places
        .iter()
        .flat_map(|p| files_under(p))
        .chain(shallow_files(&cwd))
        .chain(cwd.parent().map(shallow_files).unwrap_or_default())
        .filter(|f| {
            f.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("tessera-e2e-download"))
        })
        .collect();
    assert!(downloads.is_empty(), "downloaded: {downloads:?}");

    // The app said what it refused, without the URLs' queries.
    let log = app_log();
    assert!(
        log.contains("sign-in window: download refused"),
        "the download was refused"
    );
    assert!(
        log.contains("sign-in window: navigation refused"),
        "navigations were refused"
    );
    assert!(
        log.contains("sign-in window: new window refused"),
        "the new window was refused"
    );
    assert!(
        desktop::windows("via=popup|Second page").is_empty(),
        "a window other than the (closed) sign-in window showed the provider's page"
    );
    assert!(
        log.contains("sign-in window: a redirect without this sign-in's state ignored"),
        "the forged redirects were ignored (the sign-in went on: it was cancelled, not failed)"
    );
    let found = secret_shaped(&log);
    assert!(
        found.is_empty(),
        "secret-shaped strings in the app's log (kind, line): {found:?}"
    );
    for line in log.lines().filter(|l| l.contains("sign-in window:")) {
        assert!(
            !line.contains("via=") && !line.contains("x=1"),
            "a query in the log: {line}"
        );
    }
    s.quit().await.step("quit");
}

/// A sign-in through the window leaves no cookie on disk (and a cookie folder of an older
/// version is deleted at start-up), and the next sign-in of the same account asks for the
/// password again: no single sign-on from one sign-in to the next.
#[tokio::test]
#[ignore = "needs Xvfb, D-Bus, tauri-driver and a sandbox: run tests/e2e/run.sh"]
async fn sign_in_window_keeps_no_cookie_and_asks_for_the_password_each_time() {
    let e = env();
    let app_home =
        PathBuf::from(std::env::var("TESSERA_E2E_APP_HOME").expect("TESSERA_E2E_APP_HOME"));
    // What an older version left: a profile's sign-in cookies in the data folder.
    let legacy = e.home.join("webview").join("sandbox");
    std::fs::create_dir_all(&legacy).unwrap();
    std::fs::write(
        legacy.join("cookies"),
        "127.0.0.1\tFALSE\t/\tFALSE\t0\tESTSAUTH\tleft-by-an-older-version\n",
    )
    .unwrap();
    // How many times the sandbox took carol's password (the suite shares one sandbox).
    let carol_passwords = || {
        let work = std::env::var("TESSERA_E2E_WORK").expect("TESSERA_E2E_WORK");
        std::fs::read_to_string(PathBuf::from(work).join("sandbox.log"))
            .expect("the sandbox's log")
            .matches(r#"password accepted user="carol@fabrikam.example""#)
            .count()
    };
    let passwords_before = carol_passwords();
    let s = Session::start(&e.driver, &e.app)
        .await
        .step("launch the app");
    s.wait_text("#empty", "No accounts yet")
        .await
        .step("an empty store to start from");

    // 1. Sign in through the window.
    s.click("#empty-add").await.step("Add account");
    s.click(r#"#add-form input[name="method"][value="embedded"]"#)
        .await
        .step("choose the sign-in window");
    s.click("#add-go").await.step("Continue");
    sign_in_accepting_consent(&s, "carol@fabrikam.example", false).await;
    let carol = account_item("carol@fabrikam.example");
    s.wait_visible(&format!(r#"{carol}[aria-selected="true"]"#))
        .await
        .step("carol is listed and selected");

    // 2. No sign-in cookie anywhere under the app's HOME or TESSERA_HOME, and the older
    // version's folder is gone.
    let mut cookie_files = Vec::new();
    let mut session_cookies = Vec::new();
    for f in files_under(&e.home)
        .into_iter()
        .chain(files_under(&app_home))
    {
        let name = f
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default()
            .to_lowercase();
        let bytes = std::fs::read(&f).unwrap_or_default();
        if name.contains("cookie") && !bytes.is_empty() {
            cookie_files.push(f.clone());
        }
        if bytes.windows(b"ESTSAUTH".len()).any(|w| w == b"ESTSAUTH") {
            session_cookies.push(f);
        }
    }
    assert!(
        session_cookies.is_empty(),
        "the sandbox's session cookie on disk: {session_cookies:?}"
    );
    assert!(cookie_files.is_empty(), "cookie files: {cookie_files:?}");
    assert!(
        !e.home.join("webview").exists(),
        "the older version's cookie folder is deleted"
    );

    // 3. The provider wants a new sign-in for other scopes: "Sign in again" names carol,
    // with no prompt, so an SSO session would sign her in without a page. The window
    // keeps its page: she types her password again.
    set_faults(&e, Some(json!({ "interaction_required": true }))).await;
    s.type_into("#scopes", "Mail.Read")
        .await
        .step("other scopes");
    s.click("#scopes-go").await.step("Get token");
    s.wait_visible("#needs-signin")
        .await
        .step("Sign in again is offered");
    set_faults(&e, None).await;
    s.click("#sign-in-again").await.step("Sign in again");
    desktop::wait_window(SIGNIN_PAGE)
        .await
        .step("the sign-in page is shown");
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(
        !desktop::windows(SIGNIN_PAGE).is_empty(),
        "no single sign-on: the sign-in page stays"
    );
    sign_in_accepting_consent(&s, "carol@fabrikam.example", true).await;
    s.wait_text("#toast", "Signed in as carol@fabrikam.example")
        .await
        .step("signed in again with the password");
    assert_eq!(
        carol_passwords() - passwords_before,
        2,
        "the sandbox took carol's password for each sign-in"
    );

    // 4. Back to an empty store.
    s.click("#scopes-reset").await.step("Default scopes");
    s.click("#sign-out-all").await.step("Sign out of all");
    confirm(&s, "Sign out of all accounts?").await;
    s.wait_text("#empty", "No accounts yet")
        .await
        .step("the empty state again");
    s.quit().await.step("quit");
}

/// Type `login` and the password into the sandbox's sign-in page in the sign-in window,
/// accept its consent page if it shows one (whether `login` consented already depends on
/// the tests before), and wait for the window to close.
async fn sign_in_accepting_consent(s: &Session, login: &str, prefilled: bool) {
    let w = desktop::wait_window(SIGNIN_PAGE)
        .await
        .step("the sign-in page");
    crate::wait_pages(s, 1, "the sign-in page has loaded").await;
    enter_credentials(w, login, prefilled);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if desktop::windows(SIGNIN_TITLE).is_empty() {
            return;
        }
        if let Some(w) = desktop::windows(CONSENT_PAGE).into_iter().next() {
            desktop::keys(w, &["Tab", "Tab", "Return"]).step("accept");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "neither the consent page nor the redirect"
        );
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
    desktop::wait_no_window(SIGNIN_TITLE)
        .await
        .step("the sign-in window closes after the redirect");
}

/// The `hostile_navigation_page`'s reports so far, oldest first.
async fn navigation_reports(e: &crate::Env) -> Vec<Value> {
    let reports: Value = reqwest::get(format!("{}/_sandbox/probe", e.sandbox))
        .await
        .expect("the sandbox answers")
        .json()
        .await
        .expect("JSON reports");
    reports
        .as_array()
        .map(|r| {
            r.iter()
                .filter(|r| r["kind"] == "navigation")
                .cloned()
                .collect()
        })
        .unwrap_or_default()
}

/// Every file under `dir` (symbolic links not followed).
fn files_under(dir: &std::path::Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for entry in entries.flatten() {
            match entry.file_type() {
                Ok(t) if t.is_dir() => stack.push(entry.path()),
                Ok(t) if t.is_file() => files.push(entry.path()),
                _ => {}
            }
        }
    }
    files
}

/// The files directly in `dir`.
fn shallow_files(dir: &std::path::Path) -> Vec<PathBuf> {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .flatten()
                .map(|e| e.path())
                .filter(|p| p.is_file())
                .collect()
        })
        .unwrap_or_default()
}

/// `text` as a literal in an xdotool (POSIX extended) regular expression.
fn regex_escape(text: &str) -> String {
    text.chars()
        .flat_map(|c| {
            let special = "\\.[]()*+?{}|^$".contains(c);
            special.then_some('\\').into_iter().chain([c])
        })
        .collect()
}

/// Wait for the IPC probe page's report at the sandbox.
async fn probe_report(e: &crate::Env) -> Value {
    let url = format!("{}/_sandbox/probe", e.sandbox);
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let reports: Value = reqwest::get(&url)
            .await
            .expect("the sandbox answers")
            .json()
            .await
            .expect("JSON reports");
        let mut probes = reports.as_array().into_iter().flatten();
        if let Some(last) = probes.rfind(|r| r.get("kind").is_none()) {
            return last.clone();
        }
        assert!(
            Instant::now() < deadline,
            "the probe page reported nothing within 60 s"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Where the log has something shaped like one of the sandbox's secrets: a JWT, an
/// authorization code (`0.A…`), a refresh token (`1.A…`), a device code
/// (`DAQABAAEAAAD…`). Returns (kind, 1-based line), never the text.
fn secret_shaped(log: &str) -> Vec<(&'static str, usize)> {
    const SHAPES: [(&str, &str); 4] = [
        ("JWT", "eyJ"),
        ("authorization code", "0.A"),
        ("refresh token", "1.A"),
        ("device code", "DAQABAAEAAAD"),
    ];
    let b64url = |c: char| c.is_ascii_alphanumeric() || c == '-' || c == '_';
    let mut found = Vec::new();
    for (n, line) in log.lines().enumerate() {
        for (kind, prefix) in SHAPES {
            let hit = line.match_indices(prefix).any(|(i, _)| {
                line[i + prefix.len()..]
                    .chars()
                    .take_while(|&c| b64url(c))
                    .count()
                    >= 40
            });
            if hit {
                found.push((kind, n + 1));
            }
        }
    }
    found
}

#[test]
fn secret_shapes_are_recognised() {
    let jwt = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJhbGljZSIsImF1ZCI6Inh4eHh4eHh4eHgifQ.sig";
    let log = format!(
        "ok line\nsent {jwt}\ncode=0.A{a}\nrt 1.A{a}\nDAQABAAEAAAD{a}\nversion 1.0.A\n",
        a = "A".repeat(60)
    );
    let kinds: Vec<_> = secret_shaped(&log).into_iter().collect();
    assert_eq!(
        kinds,
        [
            ("JWT", 2),
            ("authorization code", 3),
            ("refresh token", 4),
            ("device code", 5)
        ]
    );
}
