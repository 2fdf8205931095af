//! End-to-end: the real desktop app (debug build) on WebKitGTK under Xvfb, driven through
//! `tauri-driver` + WebKitWebDriver, against a sandbox identity provider.
//!
//! Run with `tests/e2e/run.sh`, which starts Xvfb, a D-Bus session with an unlocked
//! keyring, the sandbox on a free port and tauri-driver, and sets:
//! `TESSERA_E2E_WEBDRIVER` (tauri-driver's URL), `TESSERA_E2E_APP` (the app binary),
//! `TESSERA_SANDBOX_URL`, `TESSERA_HOME` (the app's home, shared with tauri-driver's
//! environment) and `TESSERA_E2E_SCREENSHOTS` (where to save screenshots).

mod a11y;
mod agent;
mod desktop;
mod run_script;
mod security;
mod webdriver;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use webdriver::Session;

struct Env {
    driver: String,
    app: String,
    sandbox: String,
    home: PathBuf,
    shots: PathBuf,
}

fn env() -> Env {
    let var = |k: &str| {
        std::env::var(k)
            .unwrap_or_else(|_| panic!("{k} is not set: run this suite with tests/e2e/run.sh"))
    };
    let shots = PathBuf::from(var("TESSERA_E2E_SCREENSHOTS"));
    std::fs::create_dir_all(&shots).expect("cannot create the screenshot folder");
    Env {
        driver: var("TESSERA_E2E_WEBDRIVER")
            .trim_end_matches('/')
            .to_string(),
        app: var("TESSERA_E2E_APP"),
        sandbox: var("TESSERA_SANDBOX_URL").trim_end_matches('/').to_string(),
        home: PathBuf::from(var("TESSERA_HOME")),
        shots,
    }
}

/// Panic with the step's name and the error.
trait Step<T> {
    fn step(self, what: &str) -> T;
}

impl<T> Step<T> for Result<T, String> {
    fn step(self, what: &str) -> T {
        self.unwrap_or_else(|e| panic!("{what}: {e}"))
    }
}

/// Any of Tessera's sign-in windows.
const SIGNIN_TITLE: &str = "Tessera sign-in";
/// The sandbox's sign-in page, shown in Tessera's sign-in window, whose title begins with
/// the page's origin (the sandbox is plain http on 127.0.0.1).
const SIGNIN_PAGE: &str =
    "^⚠ 127\\.0\\.0\\.1:[0-9]+ \\(not encrypted\\) — Sign in to your account — Tessera sign-in";
/// The sandbox's consent page.
const CONSENT_PAGE: &str = "^⚠ 127\\.0\\.0\\.1:[0-9]+ \\(not encrypted\\) — Permissions requested - Sign in to your account — Tessera sign-in";

/// The origin label of a page of the sandbox (`http://127.0.0.1:PORT`), as the app shows it.
fn sandbox_origin(e: &Env) -> String {
    let url = url::Url::parse(&e.sandbox).unwrap();
    format!(
        "⚠ {}:{} (not encrypted)",
        url.host_str().unwrap(),
        url.port().unwrap()
    )
}

fn account_item(username: &str) -> String {
    format!(r#"#accounts li[data-username="{username}"]"#)
}

async fn account_count(s: &Session) -> usize {
    s.find_all("#accounts li[data-username]")
        .await
        .step("count the accounts")
        .len()
}

/// How many pages the sign-in window has loaded, as the main window counts them.
async fn pages_loaded(s: &Session) -> u64 {
    let v = s
        .script(
            "return Number(document.getElementById('signin-banner').dataset.pages || 0)",
            json!([]),
        )
        .await;
    v.ok().and_then(|v| v.as_u64()).unwrap_or(0)
}

async fn wait_pages(s: &Session, n: u64, what: &str) {
    s.wait_until(what, || async { Ok(pages_loaded(s).await >= n) })
        .await
        .step(what);
}

/// The app's log so far (at trace level; run.sh keeps it in tauri-driver.log).
fn app_log() -> String {
    let work = std::env::var("TESSERA_E2E_WORK").expect("TESSERA_E2E_WORK: run tests/e2e/run.sh");
    std::fs::read_to_string(PathBuf::from(work).join("tauri-driver.log")).expect("the app's log")
}

/// Save a picture of the screen next to the logs (to see what went wrong).
fn work_screenshot(name: &str) {
    if let Ok(work) = std::env::var("TESSERA_E2E_WORK") {
        let _ = desktop::screenshot_screen(&PathBuf::from(work).join(name));
    }
}

/// Fill the sandbox's pages in the sign-in window, as a user would, and wait for the
/// window to close.
async fn sign_in_through_window(
    s: &Session,
    e: &Env,
    login: &str,
    prefilled: bool,
    consent: bool,
    screenshot: Option<&str>,
) {
    let w = desktop::wait_window(SIGNIN_PAGE)
        .await
        .step("the sign-in window shows the sign-in page");
    wait_pages(s, 1, "the sign-in page has loaded").await;
    if let Some(name) = screenshot {
        // Loaded is not yet painted.
        tokio::time::sleep(Duration::from_millis(700)).await;
        desktop::screenshot_screen(&e.shots.join(name)).step("screenshot of the sign-in window");
    }
    enter_credentials(w, login, prefilled);
    // The page after the form: the consent page, or (no consent asked) none, as the window
    // closes on the redirect. Should a keystroke have gone astray (xdotool into a window
    // that has just appeared), the provider shows its sign-in page again with an error:
    // then type the credentials once more, as a user would. The app is not involved in
    // that exchange; what it does with the outcome is what this suite checks.
    let mut pages = 1;
    if after_submit(s).await == AfterSubmit::FormAgain {
        eprintln!("e2e: the provider showed its sign-in page again; typing the credentials again");
        work_screenshot(&format!("retyped-{login}.png"));
        enter_credentials(w, login, true);
        pages += 1;
    }
    if consent {
        let found = desktop::wait_window(CONSENT_PAGE).await;
        if found.is_err() {
            work_screenshot("failure-consent.png");
        }
        let w = found.step("the consent page");
        wait_pages(s, pages + 1, "the consent page has loaded").await;
        // Cancel, then Accept.
        desktop::keys(w, &["Tab", "Tab", "Return"]).step("accept");
    }
    let closed = desktop::wait_no_window(SIGNIN_TITLE).await;
    if closed.is_err() {
        work_screenshot("failure-sign-in.png");
    }
    closed.step("the sign-in window closes after the redirect");
}

/// Type the username and password into the sandbox's sign-in form and submit it.
fn enter_credentials(w: u32, login: &str, prefilled: bool) {
    // The sandbox focuses the first empty field. With an SSO session in the window's
    // cookies it suggests that user (and after a refused attempt it keeps the username),
    // so the password has the focus: go back one field.
    if prefilled {
        desktop::keys(w, &["shift+Tab"]).step("back to the username");
    }
    desktop::keys(w, &["ctrl+a"]).step("select the username field's text");
    desktop::type_text(w, login).step("type the username");
    work_screenshot(&format!("typed-{login}.png"));
    desktop::keys(w, &["Tab"]).step("go to the password");
    desktop::type_text(w, "tessera").step("type the password");
    desktop::keys(w, &["Return"]).step("submit");
}

#[derive(Debug, PartialEq)]
enum AfterSubmit {
    /// The consent page, or the window closed on the redirect.
    Progressed,
    /// The sign-in page again: the provider refused what was typed.
    FormAgain,
}

async fn after_submit(s: &Session) -> AfterSubmit {
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut form_since: Option<Instant> = None;
    loop {
        if desktop::windows(SIGNIN_TITLE).is_empty() || !desktop::windows(CONSENT_PAGE).is_empty() {
            return AfterSubmit::Progressed;
        }
        // A second page has loaded and it is still the sign-in page (for a while: the
        // title follows the page a moment later).
        if pages_loaded(s).await >= 2 && !desktop::windows(SIGNIN_PAGE).is_empty() {
            let since = *form_since.get_or_insert_with(Instant::now);
            if since.elapsed() > Duration::from_secs(2) {
                return AfterSubmit::FormAgain;
            }
        }
        if Instant::now() > deadline {
            // Let the caller's own wait say what is missing.
            return AfterSubmit::Progressed;
        }
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
}

async fn sandbox_me(e: &Env, token: &str) -> (u16, Value) {
    let r = reqwest::Client::new()
        .get(format!("{}/_sandbox/me", e.sandbox))
        .bearer_auth(token)
        .send()
        .await
        .expect("the sandbox answers /_sandbox/me");
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

async fn set_faults(e: &Env, faults: Option<Value>) {
    let http = reqwest::Client::new();
    let url = format!("{}/_sandbox/faults", e.sandbox);
    let r = match faults {
        Some(f) => http.post(url).json(&f).send().await,
        None => http.delete(url).send().await,
    };
    assert!(r.expect("the sandbox takes faults").status().is_success());
}

/// An MSAL cache file with `login` signed in, made by the CLI as a user would:
/// `tessera-cli --msal-cache FILE --profile Sandbox login --device-code`, the code
/// approved on the sandbox's pages.
async fn msal_cache_from_cli(e: &Env, login: &str) -> PathBuf {
    let dir = e.home.parent().unwrap_or(&e.home).join("cli");
    std::fs::create_dir_all(&dir).expect("the CLI's folder");
    let file = dir.join("msal_token_cache.json");
    let path = file.display().to_string();
    cli_device_login(
        e,
        &[
            "--msal-cache",
            &path,
            "--profile",
            "Sandbox",
            "login",
            "--device-code",
        ],
        &dir.join("home"),
        login,
    )
    .await;
    assert!(file.exists(), "the CLI wrote {}", file.display());
    file
}

/// `tessera-cli ARGS` (a device code login) with `TESSERA_HOME=home`, its code approved
/// on the sandbox's pages as `login`.
async fn cli_device_login(e: &Env, args: &[&str], home: &std::path::Path, login: &str) {
    use tokio::io::{AsyncBufReadExt, BufReader};
    let cli = PathBuf::from(&e.app).with_file_name("tessera-cli");
    set_faults(e, Some(json!({ "device_code_interval_secs": 1 }))).await;
    let mut child = tokio::process::Command::new(&cli)
        .args(args)
        .env("TESSERA_HOME", home)
        .env("TESSERA_SANDBOX_URL", &e.sandbox)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap_or_else(|err| panic!("start {}: {err}", cli.display()));
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let mut seen = String::new();
    let code = loop {
        let line = tokio::time::timeout(Duration::from_secs(30), lines.next_line())
            .await
            .expect("the CLI shows a code within 30 s")
            .unwrap()
            .unwrap_or_else(|| panic!("the CLI ended before showing a code:\n{seen}"));
        seen.push_str(&line);
        seen.push('\n');
        let words: Vec<&str> = line.split_whitespace().collect();
        if let Some(i) = words.windows(2).position(|w| w[0] == "code") {
            if let Some(code) = words.get(i + 1) {
                break code.trim_end_matches('.').to_string();
            }
        }
    };
    let base = url::Url::parse(&e.sandbox).unwrap();
    tessera_sandbox_idp::scripted_device_approval(&base, &code, login, "tessera")
        .await
        .step("approve the CLI's code");
    while let Ok(Some(line)) = tokio::time::timeout(Duration::from_secs(60), lines.next_line())
        .await
        .expect("the CLI finishes")
    {
        seen.push_str(&line);
        seen.push('\n');
    }
    let status = child.wait().await.unwrap();
    assert!(status.success(), "tessera-cli login: {status}\n{seen}");
    set_faults(e, None).await;
}

/// "Add account" with a code on another device: the code is shown, copied with its
/// button, and approved on the sandbox's pages as `login`. The sandbox's faults should
/// make it poll every second (`device_code_interval_secs`).
async fn add_by_device_code(s: &Session, e: &Env, login: &str, screenshot: Option<&str>) {
    s.click("#add-account").await.step("Add account");
    s.click(r#"#add-form input[name="method"][value="device-code"]"#)
        .await
        .step("choose the device code");
    s.click("#add-go").await.step("Continue");
    s.wait_visible("#device-dialog")
        .await
        .step("the code is shown");
    let code = s.text("#device-code").await.unwrap();
    assert!(code.len() >= 6, "a user code: {code:?}");
    s.click("#device-copy").await.step("Copy code");
    s.wait_text("#device-status", "Code copied")
        .await
        .step("code copied");
    assert_eq!(desktop::clipboard(), code);
    if let Some(name) = screenshot {
        shot(e, name).await;
        a11y::check(s, "the device code dialog").await;
    }
    let base = url::Url::parse(&e.sandbox).unwrap();
    tessera_sandbox_idp::scripted_device_approval(&base, &code, login, "tessera")
        .await
        .step("approve the code");
    s.wait_text("#toast", &format!("Signed in as {login}"))
        .await
        .step("signed in with the code");
    s.wait_hidden("#device-dialog")
        .await
        .step("the code dialog closes");
}

/// Answer the page's confirmation dialog, which must ask `question`, with OK.
async fn confirm(s: &Session, question: &str) {
    s.wait_text("#confirm-dialog", question)
        .await
        .step("the confirmation");
    s.click("#confirm-ok").await.step("confirm");
}

/// A picture of the main window for the docs. Taken from the X server: WebDriver's
/// screenshot (WebKit's own snapshot) hangs when WebKit runs without its DMA-BUF
/// renderer, which the app turns off.
/// Cancel the sign-in in progress from the main window's banner; its window goes.
async fn cancel_from_banner(s: &Session) {
    s.click("#signin-banner-cancel")
        .await
        .step("Cancel sign-in");
    desktop::wait_no_window(SIGNIN_TITLE)
        .await
        .step("the sign-in window is gone");
}

/// The keyboard focus is on the account list (the arrow keys move the selection).
async fn list_has_focus(s: &Session, when: &str) {
    s.wait_until(&format!("the list to have the focus {when}"), || async {
        Ok(
            s.script("return document.activeElement?.id ?? ''", json!([]))
                .await?
                == "accounts",
        )
    })
    .await
    .step(&format!("the list has the keyboard focus {when}"));
}

async fn shot(e: &Env, name: &str) {
    // Let the last change be painted.
    tokio::time::sleep(Duration::from_millis(300)).await;
    desktop::screenshot_window("^Tessera$", &e.shots.join(name))
        .step(&format!("screenshot {name}"));
}

#[tokio::test]
#[ignore = "needs Xvfb, D-Bus, tauri-driver and a sandbox: run tests/e2e/run.sh"]
async fn desktop_journey() {
    let e = env();
    let started = Instant::now();
    let mut marks: Vec<(&str, Duration)> = Vec::new();

    // 1. First launch, empty store: the empty state says what to do.
    let s = Session::start(&e.driver, &e.app)
        .await
        .step("launch the app");
    let empty = s
        .wait_text("#empty", "No accounts yet")
        .await
        .step("the empty state");
    assert!(
        empty.contains("Sandbox")
            && empty.contains("alice@contoso.example")
            && empty.contains("tessera"),
        "{empty}"
    );
    assert_eq!(account_count(&s).await, 0);
    marks.push(("launched, empty state shown", started.elapsed()));
    shot(&e, "01-empty.png").await;
    a11y::check(&s, "the empty state").await;

    // 2. Add an account: pick the Sandbox profile, sign in inside the sign-in window.
    s.click("#empty-add").await.step("Add account");
    s.wait_visible("#add-dialog")
        .await
        .step("the add-account dialog");
    assert_eq!(
        s.script(
            "return document.getElementById('add-profile').value",
            json!([])
        )
        .await
        .unwrap(),
        "Sandbox"
    );
    shot(&e, "02-add-account.png").await;
    a11y::check(&s, "the add-account dialog").await;
    s.click("#add-go").await.step("Continue");
    sign_in_through_window(
        &s,
        &e,
        "alice@contoso.example",
        false,
        true,
        Some("03-sign-in-window.png"),
    )
    .await;
    marks.push(("alice signed in", started.elapsed()));

    // 3. Listed, selected, and its access token decoded.
    let alice = account_item("alice@contoso.example");
    s.wait_visible(&format!(r#"{alice}[aria-selected="true"]"#))
        .await
        .step("alice is listed and selected");
    s.wait_text("#toast", "Signed in as alice@contoso.example")
        .await
        .step("the sign-in is confirmed");
    s.wait_text(
        r#"#t-claims tr[data-claim="preferred_username"]"#,
        "alice@contoso.example",
    )
    .await
    .step("the decoded claims");
    s.wait_text(r#"#t-claims tr[data-claim="scp"]"#, "User.Read")
        .await
        .step("the scp claim");
    s.wait_text("#t-scp", "User.Read")
        .await
        .step("scp as chips");
    let countdown = s
        .wait_text("#t-countdown", "in ")
        .await
        .step("the countdown");
    assert!(countdown.contains("min"), "{countdown}");
    s.wait_text(&alice, "Valid until")
        .await
        .step("the list shows the token state");
    shot(&e, "04-account-token.png").await;
    a11y::check(&s, "the account view").await;

    // 4. Copy: the clipboard holds a token the provider accepts; the page never had it.
    s.click("#copy-token").await.step("Copy access token");
    s.wait_text("#toast", "Access token copied")
        .await
        .step("copy confirmed");
    let token = desktop::clipboard();
    assert_eq!(token.split('.').count(), 3, "a JWT on the clipboard");
    let (status, me) = sandbox_me(&e, &token).await;
    assert_eq!(status, 200, "the sandbox accepts the copied token: {me}");
    assert_eq!(me["preferred_username"], "alice@contoso.example");
    let html = s
        .script("return document.documentElement.outerHTML", json!([]))
        .await
        .unwrap();
    let html = html.as_str().unwrap();
    for part in token.split('.') {
        assert!(!html.contains(part), "a part of the token is in the page");
    }
    s.click("#copy-header")
        .await
        .step("Copy as Authorization header");
    s.wait_text("#toast", "Authorization header copied")
        .await
        .step("header copy confirmed");
    assert_eq!(
        desktop::clipboard(),
        format!("Authorization: Bearer {token}")
    );
    marks.push(("copied and checked", started.elapsed()));

    // 5. The clipboard is cleared after the configured delay, if it still holds the token.
    // Two copies 2 s apart with a 4 s delay: when the first one's delay is over, the
    // clipboard still holds the second; 4 s after the second, it is cleared.
    s.click("#open-settings").await.step("Settings");
    s.wait_visible("#settings-dialog")
        .await
        .step("the settings dialog");
    a11y::check(&s, "the settings dialog").await;
    s.type_into("#set-clear", "4").await.step("set 4 s");
    s.click("#set-save").await.step("save the settings");
    s.wait_hidden("#settings-dialog")
        .await
        .step("settings saved");
    s.click("#copy-token").await.step("copy again");
    s.wait_text(
        "#toast",
        "Access token copied for alice@contoso.example. The clipboard will be cleared in 4 s",
    )
    .await
    .step("copy with a 4 s clear");
    let first = Instant::now();
    assert_eq!(desktop::clipboard(), token);
    tokio::time::sleep(Duration::from_secs(2)).await;
    s.click("#copy-header").await.step("copy the header");
    s.wait_text("#toast", "Authorization header copied for alice@contoso.example. The clipboard will be cleared in 4 s")
        .await
        .step("the second copy");
    let header = format!("Authorization: Bearer {token}");
    assert_eq!(desktop::clipboard(), header);
    tokio::time::sleep(
        (first + Duration::from_millis(4800)).saturating_duration_since(Instant::now()),
    )
    .await;
    assert_eq!(
        desktop::clipboard(),
        header,
        "the first copy's delay is over: the second copy stays"
    );
    s.wait_text("#toast", "Clipboard cleared")
        .await
        .step("the UI says the clipboard was cleared");
    assert!(
        first.elapsed() >= Duration::from_secs(6),
        "cleared 4 s after the second copy, not before"
    );
    assert_eq!(desktop::clipboard(), "", "the clipboard is empty again");
    s.click("#open-settings").await.step("Settings");
    s.type_into("#set-clear", "30").await.step("back to 30 s");
    s.click("#set-save").await.step("save the settings");
    s.wait_hidden("#settings-dialog")
        .await
        .step("settings saved");

    // 6. A second sign-in, cancelled by closing its window.
    s.click("#add-account").await.step("Add account");
    s.click("#add-go").await.step("Continue");
    let w = desktop::wait_window(SIGNIN_PAGE)
        .await
        .step("the sign-in window opens");
    s.wait_text("#signin-origin", &sandbox_origin(&e))
        .await
        .step("the main window shows the sign-in page's origin");
    work_screenshot("before-close.png");
    desktop::request_close(w).step("close the sign-in window");
    let gone = desktop::wait_no_window(SIGNIN_TITLE).await;
    if gone.is_err() {
        work_screenshot("failure-close.png");
    }
    gone.step("the sign-in window closes");
    s.wait_text("#toast", "Sign-in cancelled")
        .await
        .step("the UI says cancelled");
    desktop::wait_no_window(SIGNIN_TITLE)
        .await
        .step("the window is gone");
    s.wait_hidden("#signin-banner")
        .await
        .step("the banner goes away");
    assert_eq!(account_count(&s).await, 1, "still one account");
    marks.push(("second sign-in cancelled", started.elapsed()));

    // 7. Another account.
    s.click("#add-account").await.step("Add account");
    s.click("#add-go").await.step("Continue");
    // Each sign-in window starts without cookies: no SSO session, nobody suggested.
    sign_in_through_window(&s, &e, "bob@contoso.example", false, true, None).await;
    let bob = account_item("bob@contoso.example");
    s.wait_visible(&format!(r#"{bob}[aria-selected="true"]"#))
        .await
        .step("bob is listed and selected");
    s.wait_text(
        r#"#t-claims tr[data-claim="preferred_username"]"#,
        "bob@contoso.example",
    )
    .await
    .step("bob's claims");
    assert_eq!(account_count(&s).await, 2);
    list_has_focus(&s, "after a sign-in").await;
    marks.push(("bob signed in", started.elapsed()));

    // 7-. "Use with tools": the lines for kubectl, git and tessera-cli run name bob and
    // his scopes; Copy puts the exact line on the clipboard.
    s.click("#tools summary").await.step("open Use with tools");
    let kubectl = s
        .wait_text(
            "#tool-kubectl",
            "kubeconfig --account bob@contoso.example --scope User.Read",
        )
        .await
        .step("the kubectl line");
    s.wait_text("#tool-git", "git-credential --account bob@contoso.example")
        .await
        .step("the git line");
    s.wait_text("#tool-run", "run --account bob@contoso.example --")
        .await
        .step("the run line");
    shot(&e, "18-use-with-tools.png").await;
    s.click(r#"#tools button[data-tool="kubectl"]"#)
        .await
        .step("copy the kubectl line");
    s.wait_text("#toast", "The kubectl line for bob@contoso.example copied")
        .await
        .step("copied");
    assert_eq!(desktop::clipboard(), kubectl);
    s.click("#tools summary").await.step("close Use with tools");

    // 7a. No browser on the machine ($TESSERA_BROWSER names a program that is gone): the
    // main window says so and offers the sign-in window or a device code instead.
    let browser = std::env::var("TESSERA_E2E_BROWSER_LINK").expect("run.sh sets it");
    let target = std::fs::read_link(&browser).expect("the browser link");
    std::fs::remove_file(&browser).expect("remove the browser");
    s.click("#add-account").await.step("Add account");
    s.click(r#"#add-form input[name="method"][value="browser"]"#)
        .await
        .step("choose the system browser");
    s.click("#add-go").await.step("Continue");
    let problem = s
        .wait_text("#signin-problem-text", "No web browser was found")
        .await
        .step("the window says no browser was found");
    assert!(!problem.contains("os error"), "{problem}");
    assert!(s.visible("#signin-problem-embedded").await.unwrap());
    assert!(s.visible("#signin-problem-device").await.unwrap());
    shot(&e, "16-no-browser.png").await;
    s.click("#signin-problem-embedded")
        .await
        .step("Use the sign-in window");
    desktop::wait_window(SIGNIN_PAGE)
        .await
        .step("the sign-in window opens instead");
    s.wait_hidden("#signin-problem")
        .await
        .step("the problem is gone");
    cancel_from_banner(&s).await;
    std::os::unix::fs::symlink(&target, &browser).expect("the browser is back");

    // 7b. In the system browser ($TESSERA_BROWSER: a scripted browser signing in as
    // carol) with the loopback redirect.
    s.click("#add-account").await.step("Add account");
    s.click(r#"#add-form input[name="method"][value="browser"]"#)
        .await
        .step("choose the system browser");
    s.click("#add-go").await.step("Continue");
    s.wait_text("#toast", "Signed in as carol@fabrikam.example")
        .await
        .step("carol signs in through the browser");
    let carol = account_item("carol@fabrikam.example");
    s.wait_visible(&format!(r#"{carol}[aria-selected="true"]"#))
        .await
        .step("carol is listed and selected");
    marks.push(("carol signed in (browser)", started.elapsed()));

    // 7c. With a code on another device.
    set_faults(&e, Some(json!({ "device_code_interval_secs": 1 }))).await;
    add_by_device_code(&s, &e, "dave@outlook.example", Some("05-device-code.png")).await;
    set_faults(&e, None).await;
    assert_eq!(account_count(&s).await, 4);
    marks.push(("dave signed in (device code)", started.elapsed()));

    // Keyboard: Home selects the first account, arrows move, Enter copies.
    let order: Vec<String> = serde_json::from_value(
        s.script(
            "return [...document.querySelectorAll('#accounts li[data-username]')].map(li => li.dataset.username)",
            json!([]),
        )
        .await
        .unwrap(),
    )
    .unwrap();
    s.keys("#accounts", "\u{E011}").await.step("Home");
    s.wait_visible(&format!(
        r#"{}[aria-selected="true"]"#,
        account_item(&order[0])
    ))
    .await
    .step("Home selects the first account");
    s.keys("#accounts", "\u{E015}").await.step("arrow down");
    s.wait_visible(&format!(
        r#"{}[aria-selected="true"]"#,
        account_item(&order[1])
    ))
    .await
    .step("the arrow selects the next account");
    s.wait_text(
        r#"#t-claims tr[data-claim="preferred_username"]"#,
        &order[1],
    )
    .await
    .step("its claims");
    s.keys("#accounts", "\u{E007}").await.step("Enter");
    s.wait_text("#toast", &format!("Access token copied for {}", order[1]))
        .await
        .step("Enter copies the token");
    let (status, me) = sandbox_me(&e, &desktop::clipboard()).await;
    assert_eq!(
        (status, me["preferred_username"].as_str()),
        (200, Some(order[1].as_str()))
    );

    s.click(&alice).await.step("select alice");
    s.wait_text(
        r#"#t-claims tr[data-claim="preferred_username"]"#,
        "alice@contoso.example",
    )
    .await
    .step("alice's claims");
    shot(&e, "06-accounts.png").await;

    // 8. Sign alice out (confirmed in the page): her tokens go.
    s.click("#sign-out").await.step("Sign out");
    s.wait_text("#confirm-dialog", "Sign out alice@contoso.example?")
        .await
        .step("the confirmation");
    shot(&e, "07-confirm-sign-out.png").await;
    a11y::check(&s, "the sign-out confirmation").await;
    s.click("#confirm-ok").await.step("confirm");
    s.wait_text("#toast", "Signed out alice@contoso.example")
        .await
        .step("signed out");
    s.wait_until("alice to leave the list", || async {
        Ok(account_count(&s).await == 3)
    })
    .await
    .step("three accounts left");
    assert!(s.find_all(&alice).await.unwrap().is_empty());
    list_has_focus(&s, "after a sign-out").await;
    marks.push(("alice signed out", started.elapsed()));

    // 9. The provider demands interaction: a token for other scopes needs a new
    // sign-in, which asks for the password again (the sign-in window keeps no cookies).
    s.click(&bob).await.step("select bob");
    s.wait_text(
        r#"#t-claims tr[data-claim="preferred_username"]"#,
        "bob@contoso.example",
    )
    .await
    .step("bob's claims");
    set_faults(&e, Some(json!({ "interaction_required": true }))).await;
    s.type_into("#scopes", "Mail.Read")
        .await
        .step("other scopes");
    s.click("#scopes-go").await.step("Get token");
    s.wait_visible("#needs-signin")
        .await
        .step("Sign in again is offered");
    let reason = s.text("#needs-signin-reason").await.unwrap();
    assert!(
        reason.starts_with("Sign-in needed") && reason.contains("AADSTS50076"),
        "{reason}"
    );
    // Only Mail.Read needs it: bob's default token is still valid, and the list says so.
    let listed = s.text(&bob).await.unwrap();
    assert!(
        listed.contains("Valid until") && !listed.contains("Needs sign-in"),
        "{listed}"
    );
    shot(&e, "08-needs-sign-in.png").await;
    s.click("#sign-in-again").await.step("Sign in again");
    desktop::wait_window(SIGNIN_PAGE)
        .await
        .step("the sign-in page is shown");
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(
        !desktop::windows(SIGNIN_PAGE).is_empty(),
        "no single sign-on: the sign-in page stays"
    );
    s.click("#signin-banner-cancel")
        .await
        .step("Cancel sign-in");
    s.wait_text("#toast", "Sign-in cancelled")
        .await
        .step("cancelled from the main window");
    desktop::wait_no_window(SIGNIN_TITLE)
        .await
        .step("the window is gone");
    set_faults(&e, None).await;
    // Sign in again for Mail.Read, through the consent page: the panel keeps the scope the
    // user asked for and shows its token.
    s.click("#sign-in-again").await.step("Sign in again");
    sign_in_through_window(&s, &e, "bob@contoso.example", true, true, None).await;
    s.wait_text("#toast", "Signed in as bob@contoso.example")
        .await
        .step("signed in again");
    s.wait_text("#t-scp", "Mail.Read")
        .await
        .step("the panel shows the Mail.Read token");
    let scopes = s
        .script("return document.getElementById('scopes').value", json!([]))
        .await
        .unwrap();
    assert_eq!(scopes, "Mail.Read", "the scope asked for is kept");
    s.click("#scopes-reset").await.step("Default scopes");
    s.wait_text(
        r#"#t-claims tr[data-claim="preferred_username"]"#,
        "bob@contoso.example",
    )
    .await
    .step("bob's token again");
    marks.push(("interaction required handled", started.elapsed()));

    // 9b. The provider fails (a 503 with Retry-After, an HTML page, malformed JSON):
    // "Refresh now" keeps the cached token shown and says, beside it, what went wrong.
    for (faults, says) in [
        (
            json!({ "http_status": 503, "retry_after_secs": 30 }),
            "retry after 30 s",
        ),
        (json!({ "html_error_page": true }), "HTML page"),
        (json!({ "malformed_json": true }), "JSON"),
    ] {
        set_faults(&e, Some(faults)).await;
        s.click("#token-refresh").await.step("Refresh now");
        let error = s
            .wait_text("#token-error", says)
            .await
            .step("the error says what the provider said");
        assert!(error.contains("still the cached one"), "{error}");
        assert!(
            s.visible("#t-claims").await.unwrap(),
            "the token stays shown under {says}"
        );
        s.wait_text(
            r#"#t-claims tr[data-claim="preferred_username"]"#,
            "bob@contoso.example",
        )
        .await
        .step("bob's claims stay");
        if says == "retry after 30 s" {
            shot(&e, "15-provider-error-beside-token.png").await;
        }
    }
    set_faults(&e, None).await;
    s.click("#token-refresh")
        .await
        .step("Refresh now, provider back");
    s.wait_text("#toast", "New access token for bob@contoso.example")
        .await
        .step("refreshed");
    s.wait_hidden("#token-error")
        .await
        .step("the error is gone");
    marks.push(("provider errors beside the token", started.elapsed()));

    // 9c. The provider is down: "Add account" says so in the main window instead of
    // opening the sign-in window on an error page, and "Try again" goes on once it is back.
    set_faults(&e, Some(json!({ "unavailable": true }))).await;
    s.click("#add-account").await.step("Add account");
    s.click("#add-go").await.step("Continue");
    s.wait_text("#signin-problem-text", "does not answer")
        .await
        .step("the main window says the provider does not answer");
    assert!(s.visible("#signin-problem-retry").await.unwrap());
    assert!(
        desktop::windows(SIGNIN_TITLE).is_empty(),
        "no sign-in window on an error page"
    );
    shot(&e, "17-provider-down.png").await;
    set_faults(&e, None).await;
    s.click("#signin-problem-retry").await.step("Try again");
    desktop::wait_window(SIGNIN_PAGE)
        .await
        .step("the sign-in window opens once the provider answers");
    cancel_from_banner(&s).await;
    marks.push(("provider down reported", started.elapsed()));

    // 10. Quit (closing the main window) with a token on the clipboard, 30 s before its
    // clearing: the app clears it as it exits. (Under Xvfb the selection would go with its
    // owner anyway; the app's log says it cleared it.)
    s.click("#copy-token").await.step("copy bob's token");
    s.wait_text("#toast", "Access token copied for bob@contoso.example")
        .await
        .step("bob's token copied");
    let bobs = desktop::clipboard();
    assert_eq!(bobs.split('.').count(), 3, "a JWT on the clipboard");
    // (Closing quits: the app is not to stay in the tray, whatever earlier runs did.)
    s.click("#open-settings").await.step("Settings");
    s.wait_visible("#settings-dialog")
        .await
        .step("the settings dialog");
    s.script(
        "document.getElementById('set-background').checked = false",
        json!([]),
    )
    .await
    .step("no tray");
    s.click("#set-save").await.step("save the settings");
    s.wait_hidden("#settings-dialog")
        .await
        .step("the settings are saved");
    let main_window = desktop::wait_window("^Tessera$")
        .await
        .step("the main window");
    // The log is the whole suite's: earlier tests' apps may have cleared it too.
    let cleared = || app_log().matches("clipboard cleared on exit").count();
    let cleared_before = cleared();
    desktop::request_close(main_window).step("close the main window");
    desktop::wait_app_gone().await.step("the app exits");
    let _ = s.quit().await; // the app has gone already
    assert_ne!(desktop::clipboard(), bobs, "the token outlived the app");
    assert_eq!(
        cleared(),
        cleared_before + 1,
        "the app cleared the clipboard as it quit"
    );

    // Relaunch while the keyring does not answer (its daemon stopped, as a keyring prompt
    // nobody answers or a hung session would leave it): the window shows at once and says
    // it waits; once the keyring answers, the accounts appear.
    let keyring = std::env::var("TESSERA_E2E_KEYRING_PID").expect("run.sh sets it");
    let signal = |sig: &str| {
        let ok = std::process::Command::new("kill")
            .args([sig, &keyring])
            .status()
            .is_ok_and(|s| s.success());
        assert!(ok, "kill {sig} {keyring}");
    };
    signal("-STOP");
    let relaunch = Instant::now();
    let s = Session::start(&e.driver, &e.app).await;
    let waiting = match &s {
        Ok(s) => s
            .wait_text("#loading-text", "Waiting for the keyring")
            .await
            .map(|_| relaunch.elapsed()),
        Err(e) => Err(e.clone()),
    };
    if waiting.is_ok() {
        shot(&e, "14-waiting-for-keyring.png").await;
    }
    signal("-CONT");
    let s = s.step("relaunch the app while the keyring does not answer");
    let waiting = waiting.step("the window says it waits for the keyring");
    assert!(
        waiting < Duration::from_secs(10),
        "the window took {waiting:?} (D-Bus gives up after 25 s)"
    );
    for user in [&bob, &carol, &account_item("dave@outlook.example")] {
        s.wait_visible(user)
            .await
            .step("the accounts are still there after a relaunch");
    }
    assert_eq!(account_count(&s).await, 3);
    assert!(s.find_all(&alice).await.unwrap().is_empty());
    s.click(&bob).await.step("select bob");
    s.wait_text(
        r#"#t-claims tr[data-claim="preferred_username"]"#,
        "bob@contoso.example",
    )
    .await
    .step("bob's claims after a relaunch");
    marks.push(("relaunched", started.elapsed()));

    // A second launch hands over to the running app and exits.
    assert!(
        desktop::app_running(),
        "the app holds its single-instance name"
    );
    if let Ok(app_home) = std::env::var("TESSERA_E2E_APP_HOME") {
        let mut second = std::process::Command::new(&e.app)
            .env("HOME", app_home)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("start a second instance");
        let deadline = Instant::now() + Duration::from_secs(20);
        let status = loop {
            if let Some(status) = second.try_wait().unwrap() {
                break status;
            }
            if Instant::now() > deadline {
                let _ = second.kill();
                panic!("the second instance did not hand over and exit");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        assert!(
            status.success(),
            "the second instance exits cleanly: {status}"
        );
        assert_eq!(
            desktop::windows("^Tessera$").len(),
            1,
            "still one main window"
        );
        s.wait_visible("#add-account")
            .await
            .step("the first instance still answers");
    }

    // 11. Profiles: a copy of a built-in one, checked against the provider, saved,
    // then removed.
    s.click("#open-profiles").await.step("Profiles");
    s.wait_text("#profiles-body", "Sandbox")
        .await
        .step("the profiles list");
    shot(&e, "09-profiles.png").await;
    a11y::check(&s, "the profiles dialog").await;
    s.click(r#"#profiles-body tr[data-profile="Sandbox"] button:first-of-type"#)
        .await
        .step("copy the Sandbox profile");
    s.wait_visible("#profile-edit-dialog")
        .await
        .step("the profile form");
    a11y::check(&s, "the profile form").await;
    let value = |id: &'static str| {
        let s = &s;
        async move {
            s.script(
                &format!("return document.getElementById('{id}').value"),
                json!([]),
            )
            .await
            .unwrap()
        }
    };
    assert_eq!(value("pf-name").await, "Sandbox copy");
    s.type_into("#pf-authority", "http://127.0.0.1:1/common")
        .await
        .step("an unreachable authority");
    s.click("#pf-save").await.step("save");
    s.wait_text("#pf-error", "Could not reach the identity provider")
        .await
        .step("unreachable is reported");
    s.type_into("#pf-authority", "not a url")
        .await
        .step("a bad URL");
    s.click("#pf-save").await.step("save");
    s.wait_text("#pf-error", "authority")
        .await
        .step("a bad URL is reported");
    s.type_into("#pf-name", "Contoso sandbox")
        .await
        .step("name");
    s.type_into("#pf-authority", &format!("{}/contoso.example", e.sandbox))
        .await
        .step("the Contoso tenant");
    s.click("#pf-save").await.step("save");
    s.wait_hidden("#profile-edit-dialog")
        .await
        .step("the profile is saved");
    s.wait_text("#profiles-body", "Contoso sandbox")
        .await
        .step("the new profile is listed");
    let file = std::fs::read_to_string(e.home.join("profiles.toml")).expect("profiles.toml");
    assert!(file.contains("Contoso sandbox"), "{file}");
    // The Contoso profile lists only the accounts that can use it: bob (Contoso) a second
    // time, not carol (Fabrikam) nor dave (a personal account).
    s.click("#profiles-close").await.step("close the profiles");
    s.wait_until("bob under both profiles", || async {
        Ok(s.find_all(&bob).await?.len() == 2)
    })
    .await
    .step("bob is listed under the Contoso profile too");
    assert_eq!(s.find_all(&carol).await.unwrap().len(), 1, "carol once");
    assert_eq!(
        s.find_all(&account_item("dave@outlook.example"))
            .await
            .unwrap()
            .len(),
        1,
        "dave once"
    );
    s.click("#open-profiles").await.step("Profiles again");
    s.wait_text("#profiles-body", "Contoso sandbox")
        .await
        .step("the profiles list");

    // Cancel closes a form whatever its fields hold, and saves nothing.
    s.click("#profile-new").await.step("New profile");
    s.wait_visible("#profile-edit-dialog")
        .await
        .step("the profile form");
    s.type_into("#pf-authority", "not a url")
        .await
        .step("an invalid authority, no name");
    s.click("#pf-cancel").await.step("Cancel");
    s.wait_hidden("#profile-edit-dialog")
        .await
        .step("Cancel closes the form with invalid fields");
    let file = std::fs::read_to_string(e.home.join("profiles.toml")).expect("profiles.toml");
    assert!(!file.contains("not a url"), "{file}");

    s.click(r#"#profiles-body tr[data-profile="Contoso sandbox"] button:last-of-type"#)
        .await
        .step("remove it");
    confirm(&s, "Remove the profile Contoso sandbox?").await;
    s.wait_until("the profile to go", || async {
        Ok(!s.text("#profiles-body").await?.contains("Contoso sandbox"))
    })
    .await
    .step("the profile is removed");
    s.click("#profiles-close").await.step("close the profiles");
    s.wait_until("bob to be listed once again", || async {
        Ok(s.find_all(&bob).await?.len() == 1)
    })
    .await
    .step("the Contoso profile's accounts leave the list");
    s.click("#open-settings").await.step("Settings");
    s.type_into("#set-clear", "99999")
        .await
        .step("an out-of-range delay");
    s.click("#set-cancel").await.step("Cancel");
    s.wait_hidden("#settings-dialog")
        .await
        .step("Cancel closes the settings with an invalid field");
    s.click("#open-settings").await.step("Settings again");
    let kept = s
        .script(
            "return document.getElementById('set-clear').value",
            json!([]),
        )
        .await
        .unwrap();
    assert_eq!(kept, "30", "nothing was saved");
    s.click("#set-cancel").await.step("Cancel");
    s.wait_hidden("#settings-dialog")
        .await
        .step("settings closed");
    marks.push(("profiles", started.elapsed()));

    // The main window stays on Tessera's pages, whatever a script tries.
    s.script("window.location.href = arguments[0]", json!([e.sandbox]))
        .await
        .step("navigate away");
    tokio::time::sleep(Duration::from_millis(800)).await;
    s.wait_visible("#add-account")
        .await
        .step("the main window did not navigate");

    // 12. An MSAL cache file, prepared by the CLI (`--msal-cache FILE login
    // --device-code`), opened in the app: its accounts are a group of their own, and a
    // token copied from it is one the provider accepts.
    let msal_file = msal_cache_from_cli(&e, "alice@contoso.example").await;
    s.click("#open-msal-cache").await.step("Open MSAL cache");
    s.wait_visible("#msal-dialog")
        .await
        .step("the MSAL cache dialog");
    s.type_into(
        "#msal-path",
        &e.home.join("no-such-cache.json").display().to_string(),
    )
    .await
    .step("a path with no file");
    s.click("#msal-go").await.step("Open");
    s.wait_text("#msal-error", "There is no MSAL token cache")
        .await
        .step("a missing file is reported");
    s.type_into("#msal-path", &msal_file.display().to_string())
        .await
        .step("the cache file");
    s.type_into("#msal-label", "CLI cache")
        .await
        .step("the group label");
    shot(&e, "10-open-msal-cache.png").await;
    a11y::check(&s, "the open-MSAL-cache dialog").await;
    s.click("#msal-go").await.step("Open");
    s.wait_hidden("#msal-dialog")
        .await
        .step("the cache is opened");
    s.wait_text("#accounts li.group-header", "CLI cache")
        .await
        .step("the cache's group header");
    s.wait_visible(&alice)
        .await
        .step("alice is listed in the cache's group");
    assert_eq!(account_count(&s).await, 4);
    s.click(&alice).await.step("select alice in the cache");
    s.wait_text(
        r#"#t-claims tr[data-claim="preferred_username"]"#,
        "alice@contoso.example",
    )
    .await
    .step("alice's claims from the cache file");
    s.wait_text("#d-meta", "in CLI cache")
        .await
        .step("the detail says where the account is");
    shot(&e, "11-msal-cache-group.png").await;
    s.click("#copy-token").await.step("Copy access token");
    s.wait_text("#toast", "Access token copied for alice@contoso.example")
        .await
        .step("copy from the cache confirmed");
    let (status, me) = sandbox_me(&e, &desktop::clipboard()).await;
    assert_eq!(
        (status, me["preferred_username"].as_str()),
        (200, Some("alice@contoso.example"))
    );
    // Closing the group forgets the file and leaves it as it is.
    let before = std::fs::read(&msal_file).expect("the cache file");
    s.click("#accounts li.group-header button")
        .await
        .step("close the cache");
    s.wait_until("the cache's group to go", || async {
        Ok(s.find_all("#accounts li.group-header").await?.is_empty())
    })
    .await
    .step("the group is gone");
    assert_eq!(account_count(&s).await, 3);
    assert_eq!(
        std::fs::read(&msal_file).unwrap(),
        before,
        "the file is left alone"
    );
    marks.push(("MSAL cache opened, token copied, closed", started.elapsed()));

    // 12b. An account signed in by another app (a client no profile names) is listed
    // under "No profile", and one click adds the profile that lists it.
    let authority = format!("{}/common", e.sandbox);
    cli_device_login(
        &e,
        &[
            "--authority",
            &authority,
            "--client-id",
            "0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d",
            "login",
            "--device-code",
            "--scope",
            "User.Read",
        ],
        &e.home,
        "alice@contoso.example",
    )
    .await;
    // (The list is read again when the profiles dialog closes.)
    s.click("#open-profiles").await.step("Profiles");
    s.click("#profiles-close").await.step("close the profiles");
    s.wait_text(r#"#accounts li[data-source="no-profile"]"#, "No profile")
        .await
        .step("the No profile group");
    s.click(&alice)
        .await
        .step("select alice, listed under no profile");
    s.wait_visible("#no-profile")
        .await
        .step("the offer to add a profile");
    shot(&e, "19-no-profile.png").await;
    s.click("#add-profile-for")
        .await
        .step("Add a profile for it");
    s.wait_text("#toast", "Added the profile")
        .await
        .step("the profile is added");
    s.wait_text(
        r#"#t-claims tr[data-claim="preferred_username"]"#,
        "alice@contoso.example",
    )
    .await
    .step("alice's token under the new profile");
    assert!(s
        .find_all(r#"#accounts li[data-source="no-profile"]"#)
        .await
        .unwrap()
        .is_empty());
    marks.push((
        "an account of another app listed and given a profile",
        started.elapsed(),
    ));

    // 13. Sign out of all: back to the empty state.
    s.click("#sign-out-all").await.step("Sign out of all");
    confirm(&s, "Sign out of all accounts?").await;
    s.wait_text("#empty", "No accounts yet")
        .await
        .step("the empty state again");
    assert_eq!(account_count(&s).await, 0);
    s.quit().await.step("quit");

    // No token reached the app's log (it logs at trace level here).
    if let Ok(work) = std::env::var("TESSERA_E2E_WORK") {
        let log = std::fs::read_to_string(PathBuf::from(work).join("tauri-driver.log"))
            .expect("the app's log");
        assert!(log.contains("tessera_lib"), "the app's log is there");
        for part in token.split('.') {
            assert!(!log.contains(part), "a part of a token is in the app's log");
        }
        assert!(
            !log.contains("eyJ0eXAi") && !log.contains("eyJhbGci"),
            "a JWT is in the app's log"
        );
    }

    for (what, at) in &marks {
        eprintln!("e2e: {:>6.1} s  {what}", at.as_secs_f64());
    }
    eprintln!(
        "e2e: the journey took {:.1} s",
        started.elapsed().as_secs_f64()
    );
}
