//! The app against hostile input, end to end: claims that carry markup, script injected
//! into the main window, a provider page in the sign-in window that tries the app's IPC,
//! and the trace-level log of a whole sign-in, refresh, copy and sign-out.
//!
//! Runs after `desktop_journey` (tests run one at a time, by name), from an empty store.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::webdriver::Session;
use crate::{
    account_count, account_item, add_by_device_code, confirm, desktop, env, sandbox_me, set_faults,
    shot, Step, SIGNIN_TITLE,
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
        if let Some(last) = reports.as_array().and_then(|r| r.last()) {
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
