//! A real generic OpenID Connect provider for conformance tests: panva's
//! `oidc-provider` run by Node from `tests/oidc-provider/server.mjs`, and a
//! scripted plain-HTTP user agent that goes through its pages.
//!
//! Provider facts (see `server.mjs`):
//! - clients [`JWT_CLIENT_ID`] and [`OPAQUE_CLIENT_ID`], public (no secret),
//!   PKCE S256 required, grant types authorization_code, refresh_token and
//!   device_code; refresh tokens are issued when `offline_access` is requested
//!   and rotate on every use;
//! - redirect URIs: [`REDIRECT_URI`] exactly, and `http://127.0.0.1[:PORT][/]`,
//!   `http://localhost[:PORT][/]`, `http://127.0.0.1[:PORT]/callback`,
//!   `http://localhost[:PORT]/callback` with any port (RFC 8252 §7.3); the same
//!   list for `post_logout_redirect_uri`;
//! - scopes `openid profile email offline_access` and, for the API resource
//!   [`API_RESOURCE`], [`API_SCOPES`]. Asking for an API scope without a
//!   `resource` parameter means [`API_RESOURCE`]. `tessera-jwt` gets JWT access
//!   tokens (RS256, `aud` = [`API_RESOURCE`]) for it, `tessera-opaque` opaque
//!   ones; without API scopes access tokens are opaque UserInfo tokens;
//! - any login is accepted (any password); the account id (`sub`) is the login
//!   typed, ID tokens carry `sub`, `name`, `preferred_username` (= login) and
//!   `email` (the login if it contains `@`, else `<login>@example.test`).

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use reqwest::redirect::Policy;
use reqwest::{Method, StatusCode};
use url::Url;

use crate::html;

/// Client whose access tokens for [`API_RESOURCE`] are JWTs.
pub const JWT_CLIENT_ID: &str = "tessera-jwt";
/// Client whose access tokens are opaque.
pub const OPAQUE_CLIENT_ID: &str = "tessera-opaque";
/// The one fixed (non-loopback-port) redirect URI; nothing listens there.
pub const REDIRECT_URI: &str = "http://localhost/callback";
/// The API resource indicator (RFC 8707); also the `aud` of its JWT access tokens.
pub const API_RESOURCE: &str = "urn:tessera:api";
/// Scopes defined on [`API_RESOURCE`].
pub const API_SCOPES: [&str; 2] = ["api:read", "api:write"];
/// OpenID scopes the provider supports.
pub const OIDC_SCOPES: [&str; 4] = ["openid", "profile", "email", "offline_access"];
/// Password typed into the dev login form (the provider accepts any).
pub const DEFAULT_PASSWORD: &str = "any-password";

// Generous: a loaded 2-core CI machine can take long to start Node and make its keys.
const READY_TIMEOUT: Duration = Duration::from_secs(45);
const NO_READY_LINE: &str = "no ready line";
const MAX_STEPS: usize = 30;

/// A running `oidc-provider` on 127.0.0.1. Killed when dropped; it also exits by
/// itself when this process dies (its stdin is a pipe held here).
///
/// Uses plain OS threads and processes, so one instance can be shared between
/// tests with their own Tokio runtimes (e.g. in a `static OnceLock`).
pub struct OidcProvider {
    issuer: Url,
    child: Child,
    _stdin: ChildStdin,
    log: Arc<Mutex<String>>,
}

impl std::fmt::Debug for OidcProvider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OidcProvider")
            .field("issuer", &self.issuer.as_str())
            .field("pid", &self.child.id())
            .finish_non_exhaustive()
    }
}

/// Directory of `server.mjs`.
pub fn provider_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("oidc-provider")
}

impl OidcProvider {
    /// Starts the provider with default TTLs (access and ID tokens 1 h, refresh
    /// tokens 14 days, device codes 10 min).
    pub async fn start() -> Result<OidcProvider, String> {
        Self::start_with_args(&[]).await
    }

    /// Starts the provider with extra `server.mjs` flags, e.g.
    /// `&["--access-token-ttl", "2", "--refresh-token-ttl", "60"]`
    /// (also `--id-token-ttl`, `--device-code-ttl`, `--session-ttl`).
    pub async fn start_with_args(args: &[&str]) -> Result<OidcProvider, String> {
        Self::start_from(&provider_dir(), args).await
    }

    /// Starts `server.mjs` from another directory holding it and its
    /// `node_modules` (normally [`provider_dir`]).
    pub async fn start_from(dir: &Path, args: &[&str]) -> Result<OidcProvider, String> {
        // A Node process that hangs before its ready line is replaced once.
        match Self::start_once(dir, args).await {
            Err(e) if e.contains(NO_READY_LINE) => {
                eprintln!("oidc-provider: {e}; starting it again");
                Self::start_once(dir, args).await
            }
            other => other,
        }
    }

    async fn start_once(dir: &Path, args: &[&str]) -> Result<OidcProvider, String> {
        if !dir
            .join("node_modules/oidc-provider/package.json")
            .is_file()
        {
            return Err(format!(
                "oidc-provider is not installed in {} (node_modules missing): run scripts/setup",
                dir.display()
            ));
        }
        let node = std::env::var("TESSERA_NODE").unwrap_or_else(|_| "node".to_owned());
        let mut child = Command::new(&node)
            .arg("server.mjs")
            .args(["--port", "0"])
            .args(args)
            .current_dir(dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| {
                format!("cannot run `{node}` (Node.js 20+ needed; run scripts/setup): {e}")
            })?;

        let stdin = child.stdin.take().ok_or("no stdin pipe for node")?;
        let stdout = child.stdout.take().ok_or("no stdout pipe for node")?;
        let stderr = child.stderr.take().ok_or("no stderr pipe for node")?;

        let log = Arc::new(Mutex::new(String::new()));
        let log_sink = Arc::clone(&log);
        std::thread::spawn(move || collect_lines(stderr, &log_sink));

        let (tx, rx) = tokio::sync::oneshot::channel::<Result<String, String>>();
        let log_for_stdout = Arc::clone(&log);
        std::thread::spawn(move || {
            let mut lines = BufReader::new(stdout).lines();
            let first = match lines.next() {
                Some(Ok(line)) => Ok(line),
                Some(Err(e)) => Err(format!("reading its stdout failed: {e}")),
                None => Err("it exited before printing its ready line".to_owned()),
            };
            let _ = tx.send(first);
            // Anything after the ready line is unexpected; keep it in the log.
            for line in lines.map_while(Result::ok) {
                push_line(&log_for_stdout, &format!("[stdout] {line}"));
            }
        });

        let mut provider = OidcProvider {
            issuer: Url::parse("http://127.0.0.1/").expect("static URL"),
            child,
            _stdin: stdin,
            log,
        };
        let line = match tokio::time::timeout(READY_TIMEOUT, rx).await {
            Ok(Ok(Ok(line))) => line,
            Ok(Ok(Err(e))) => return Err(provider.startup_error(&e)),
            Ok(Err(_)) => return Err(provider.startup_error("its stdout reader stopped")),
            Err(_) => {
                return Err(provider.startup_error(&format!(
                    "{NO_READY_LINE} within {} s",
                    READY_TIMEOUT.as_secs()
                )))
            }
        };
        let issuer = serde_json::from_str::<serde_json::Value>(&line)
            .ok()
            .and_then(|v| v.get("issuer")?.as_str().map(str::to_owned))
            .and_then(|s| Url::parse(&s).ok());
        match issuer {
            Some(issuer) => {
                provider.issuer = issuer;
                Ok(provider)
            }
            None => Err(provider.startup_error(&format!("unexpected ready line {line:?}"))),
        }
    }

    fn startup_error(&mut self, what: &str) -> String {
        let _ = self.child.kill();
        let _ = self.child.wait();
        // Give the stderr thread a moment to drain the last lines.
        std::thread::sleep(Duration::from_millis(100));
        format!(
            "oidc-provider did not start: {what}\n--- its log ---\n{}",
            self.logs()
        )
    }

    /// The issuer, `http://127.0.0.1:PORT` (no trailing slash in its string form
    /// as published by the provider; `Url` shows it with `/`).
    pub fn issuer(&self) -> Url {
        self.issuer.clone()
    }

    /// The issuer exactly as the provider publishes it (`http://127.0.0.1:PORT`).
    pub fn issuer_str(&self) -> String {
        self.issuer.as_str().trim_end_matches('/').to_owned()
    }

    /// `<issuer>/.well-known/openid-configuration`.
    pub fn discovery_url(&self) -> Url {
        Url::parse(&format!(
            "{}/.well-known/openid-configuration",
            self.issuer_str()
        ))
        .expect("issuer is a valid URL")
    }

    /// Everything the provider wrote to stderr so far (one line per request:
    /// method, path, status; plus error events). It never contains query
    /// strings or bodies.
    pub fn logs(&self) -> String {
        self.log.lock().map(|l| l.clone()).unwrap_or_default()
    }

    /// Process id of the Node process.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for OidcProvider {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn push_line(log: &Mutex<String>, line: &str) {
    if let Ok(mut l) = log.lock() {
        l.push_str(line);
        l.push('\n');
    }
}

fn collect_lines(stream: impl Read, log: &Mutex<String>) {
    for line in BufReader::new(stream).lines().map_while(Result::ok) {
        if std::env::var_os("TESSERA_TEST_PROVIDER_LOG").is_some() {
            eprintln!("[oidc-provider] {line}");
        }
        push_line(log, &line);
    }
}

/// A scripted user agent: plain HTTP with a cookie jar, redirects followed by
/// hand (so the final redirect to the client is returned, not requested). Keep
/// one instance to model one browser (single sign-on, sign-out).
#[derive(Debug, Clone)]
pub struct ScriptedBrowser {
    http: reqwest::Client,
}

enum Step {
    /// A redirect leaving the provider (towards the client).
    LeftProvider(Url),
    /// A page that has nothing left to submit.
    FinalPage {
        url: Url,
        title: String,
        text: String,
    },
}

impl ScriptedBrowser {
    pub fn new() -> Result<ScriptedBrowser, String> {
        Self::build(None)
    }

    /// Like [`Self::new`], also trusting the CA certificates in the PEM file `ca_file`
    /// (for a provider serving https with a test CA, see `crate::tls`).
    pub fn trusting(ca_file: &Path) -> Result<ScriptedBrowser, String> {
        Self::build(Some(ca_file))
    }

    fn build(ca_file: Option<&Path>) -> Result<ScriptedBrowser, String> {
        let mut builder = reqwest::Client::builder()
            .cookie_store(true)
            .redirect(Policy::none())
            .timeout(Duration::from_secs(20));
        if let Some(path) = ca_file {
            let pem = std::fs::read(path)
                .map_err(|e| format!("cannot read CA file {}: {e}", path.display()))?;
            for cert in reqwest::Certificate::from_pem_bundle(&pem)
                .map_err(|e| format!("bad CA file {}: {e}", path.display()))?
            {
                builder = builder.add_root_certificate(cert);
            }
        }
        let http = builder
            .build()
            .map_err(|e| format!("cannot build HTTP client: {e}"))?;
        Ok(ScriptedBrowser { http })
    }

    /// Opens `authorize_url`, signs in as `login` on the dev login page if it is
    /// shown, confirms the consent page if it is shown, and returns the URL the
    /// provider finally redirects to (the client's redirect URI with `code` and
    /// `state`, or with `error`) WITHOUT requesting it.
    pub async fn sign_in(&self, authorize_url: &Url, login: &str) -> Result<Url, String> {
        match self
            .drive(Method::GET, authorize_url.clone(), Vec::new(), login, None)
            .await?
        {
            Step::LeftProvider(url) => Ok(url),
            Step::FinalPage { url, title, text } => Err(format!(
                "sign-in ended on a provider page instead of redirecting to the client: \
                 {url} \"{title}\": {text}"
            )),
        }
    }

    /// Approves a device code: enters `user_code` on the verification page,
    /// confirms it, signs in as `login` and consents. Succeeds when the
    /// provider shows its "Sign-in Success" page.
    pub async fn approve_device(
        &self,
        verification_uri: &Url,
        user_code: &str,
        login: &str,
    ) -> Result<(), String> {
        match self
            .drive(
                Method::GET,
                verification_uri.clone(),
                Vec::new(),
                login,
                Some(user_code),
            )
            .await?
        {
            Step::FinalPage { title, .. } if title == "Sign-in Success" => Ok(()),
            Step::FinalPage { url, title, text } => Err(format!(
                "device approval did not succeed: {url} \"{title}\": {text}"
            )),
            Step::LeftProvider(url) => Err(format!(
                "device approval unexpectedly redirected away from the provider: {url}"
            )),
        }
    }

    /// Opens an RP-initiated logout URL (`end_session_endpoint?...`) and
    /// confirms "Yes, sign me out". Returns the post-logout redirect (not
    /// requested) or `None` when the provider showed its "Sign-out Success" page.
    pub async fn sign_out(&self, end_session_url: &Url) -> Result<Option<Url>, String> {
        match self
            .drive(Method::GET, end_session_url.clone(), Vec::new(), "", None)
            .await?
        {
            Step::LeftProvider(url) => Ok(Some(url)),
            Step::FinalPage { title, .. } if title == "Sign-out Success" => Ok(None),
            Step::FinalPage { url, title, text } => Err(format!(
                "sign-out did not succeed: {url} \"{title}\": {text}"
            )),
        }
    }

    async fn drive(
        &self,
        mut method: Method,
        mut url: Url,
        mut form: Vec<(String, String)>,
        login: &str,
        user_code: Option<&str>,
    ) -> Result<Step, String> {
        let provider_origin = url.origin();
        let mut code_entered = false;
        for _ in 0..MAX_STEPS {
            let request = if method == Method::POST {
                self.http.post(url.clone()).form(&form)
            } else {
                self.http.get(url.clone())
            };
            let response = request
                .send()
                .await
                .map_err(|e| format!("{method} {} failed: {e}", without_query(&url)))?;
            let status = response.status();
            if status.is_redirection() {
                let location = response
                    .headers()
                    .get(reqwest::header::LOCATION)
                    .and_then(|v| v.to_str().ok())
                    .ok_or_else(|| {
                        format!("{status} from {} without Location", without_query(&url))
                    })?;
                let next = url
                    .join(location)
                    .map_err(|e| format!("bad Location {location:?}: {e}"))?;
                if next.origin() != provider_origin {
                    return Ok(Step::LeftProvider(next));
                }
                method = Method::GET;
                form = Vec::new();
                url = next;
                continue;
            }
            let page = response
                .text()
                .await
                .map_err(|e| format!("reading {} failed: {e}", without_query(&url)))?;
            let title = html::title(&page).unwrap_or_default();
            if title.contains("something went wrong") {
                let details = html::texts(&page, "pre").join("; ");
                return Err(format!(
                    "provider error page at {} ({status}): {details}",
                    without_query(&url)
                ));
            }
            if status != StatusCode::OK {
                return Err(format!(
                    "{method} {} answered {status}: {}",
                    without_query(&url),
                    truncate(&html::text(&page), 300)
                ));
            }
            let red = html::texts(&page, "p.red");
            if !red.is_empty() {
                return Err(format!("provider says: {}", red.join("; ")));
            }
            let forms = html::forms(&page);
            let Some(next_form) = forms.iter().find(|f| f.method == "post") else {
                return Ok(Step::FinalPage {
                    url,
                    title,
                    text: truncate(&html::text(&page), 300),
                });
            };
            let mut fill: Vec<(&str, &str)> = Vec::new();
            if next_form.has_input("login") {
                fill.push(("login", login));
                fill.push(("password", DEFAULT_PASSWORD));
            }
            if next_form.id.as_deref() == Some("op.logoutForm") {
                fill.push(("logout", "yes"));
            }
            let needs_code = next_form
                .inputs
                .iter()
                .any(|i| i.name == "user_code" && i.value.as_deref().unwrap_or("").is_empty());
            if needs_code {
                let Some(code) = user_code else {
                    return Err(format!(
                        "the provider asks for a user code at {}",
                        without_query(&url)
                    ));
                };
                if code_entered {
                    return Err("the provider asked for the user code twice".to_owned());
                }
                code_entered = true;
                fill.push(("user_code", code));
            }
            let action = next_form.action.as_deref().unwrap_or("");
            let target = url
                .join(action)
                .map_err(|e| format!("bad form action {action:?}: {e}"))?;
            if target.origin() != provider_origin {
                return Err(format!(
                    "the provider posts a form to {} (response_mode=form_post is not supported here)",
                    without_query(&target)
                ));
            }
            form = next_form.fields(&fill);
            method = Method::POST;
            url = target;
        }
        Err(format!(
            "gave up after {MAX_STEPS} requests without finishing"
        ))
    }
}

fn without_query(url: &Url) -> String {
    let mut u = url.clone();
    u.set_query(None);
    u.set_fragment(None);
    u.to_string()
}

fn truncate(s: &str, max: usize) -> String {
    match s.char_indices().nth(max) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.to_owned(),
    }
}

/// [`ScriptedBrowser::sign_in`] with a fresh cookie jar.
pub async fn scripted_sign_in(authorize_url: &Url, login: &str) -> Result<Url, String> {
    ScriptedBrowser::new()?.sign_in(authorize_url, login).await
}

/// [`ScriptedBrowser::approve_device`] with a fresh cookie jar.
pub async fn scripted_device_approval(
    verification_uri: &Url,
    user_code: &str,
    login: &str,
) -> Result<(), String> {
    ScriptedBrowser::new()?
        .approve_device(verification_uri, user_code, login)
        .await
}
