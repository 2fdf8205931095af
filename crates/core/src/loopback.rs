//! The system browser and a loopback listener (RFC 8252 §7.3, §8.3): the user agent of the
//! CLI and of the app's browser sign-in. It does socket I/O, like [`crate::http`].
//!
//! The listener binds exactly the loopback address its redirect URI names, never a
//! wildcard: `http://127.0.0.1` binds 127.0.0.1, `http://[::1]` binds ::1, and
//! `http://localhost` binds 127.0.0.1 while the redirect URI keeps `localhost` (Entra
//! matches a registered redirect URI except for the port). A profile whose redirect URI is
//! not loopback http gets `http://localhost:PORT/`. The port is the profile's, or a free one.
//!
//! It serves requests until one at the redirect path carries the flow's `state`; anything
//! else (a favicon, a port scanner, a wrong or missing state) gets a small page and the wait
//! goes on. Connections are served concurrently, so a silent one cannot hold up the
//! redirect. Pages show nothing from the request except the provider's error text,
//! HTML-escaped. The redirect URL carries the authorization code: it is never logged.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::process::Child;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use url::{Host, Url};

use crate::authcode::redirect_matches;
use crate::authority::is_loopback_host;
use crate::error::{Error, Result};
use crate::secret::CsrfToken;

/// Environment variable holding the command that opens the sign-in page.
pub const BROWSER_ENV: &str = "TESSERA_BROWSER";

const MAX_REQUEST_HEAD: usize = 16 * 1024;
const READ_TIMEOUT: Duration = Duration::from_secs(10);
/// Connections served at once; more are closed unanswered until one ends.
const MAX_CONNECTIONS: usize = 32;
/// How long the desktop's opener may take to say whether it found a browser (a text
/// browser runs in the foreground and never returns early).
const OPENER_VERDICT: Duration = Duration::from_secs(5);

/// A loopback listener waiting for one flow's authorization response.
#[derive(Debug)]
pub struct LoopbackListener {
    listener: TcpListener,
    redirect_uri: Url,
}

impl LoopbackListener {
    /// Listen where `profile_redirect` points (see the module docs for the address rules).
    pub async fn bind(profile_redirect: &Url) -> Result<LoopbackListener> {
        let host = profile_redirect.host_str().unwrap_or_default();
        let loopback = profile_redirect.scheme() == "http" && is_loopback_host(host);
        let ip: IpAddr = match profile_redirect.host() {
            Some(Host::Ipv6(ip)) if loopback => ip.into(),
            _ => Ipv4Addr::LOCALHOST.into(),
        };
        let port = if loopback {
            profile_redirect.port().unwrap_or(0)
        } else {
            0
        };
        let cannot = |e: std::io::Error| {
            Error::Config(format!(
                "cannot listen on {} for the sign-in redirect: {e}",
                SocketAddr::new(ip, port)
            ))
        };
        let listener = TcpListener::bind((ip, port)).await.map_err(cannot)?;
        let port = listener.local_addr().map_err(cannot)?.port();
        let mut redirect_uri = if loopback {
            profile_redirect.clone()
        } else {
            Url::parse("http://localhost/").map_err(|e| Error::Config(e.to_string()))?
        };
        redirect_uri
            .set_port(Some(port))
            .map_err(|()| Error::Config("cannot set the loopback redirect URI's port".into()))?;
        Ok(LoopbackListener {
            listener,
            redirect_uri,
        })
    }

    /// The redirect URI to send: the profile's host and path, the bound port.
    pub fn redirect_uri(&self) -> &Url {
        &self.redirect_uri
    }

    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Serve until a request at the redirect path carries `state`, and return its full
    /// URL; or until `cancel` fires, `timeout` passes or the browser command fails.
    pub async fn wait(
        &self,
        state: &CsrfToken,
        browser: &mut Browser,
        cancel: &CancellationToken,
        timeout: Duration,
    ) -> std::result::Result<Url, Interrupted> {
        let mut connections: JoinSet<Option<Url>> = JoinSet::new();
        let deadline = tokio::time::sleep(timeout);
        tokio::pin!(deadline);
        loop {
            tokio::select! {
                _ = cancel.cancelled() => return Err(Interrupted::Cancelled),
                _ = &mut deadline => return Err(Interrupted::TimedOut(timeout)),
                why = browser.failed() => return Err(Interrupted::BrowserExited(why)),
                Some(served) = connections.join_next(), if !connections.is_empty() => {
                    if let Ok(Some(url)) = served {
                        return Ok(url);
                    }
                }
                accepted = self.listener.accept() => match accepted {
                    Ok((stream, _)) if connections.len() < MAX_CONNECTIONS => {
                        connections.spawn(serve(stream, self.redirect_uri.clone(), state.clone()));
                    }
                    Ok(_) => {}
                    Err(e) => {
                        // Transient (the peer gave up, out of descriptors): keep listening.
                        tracing::debug!(error = %e, "loopback accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                },
            }
        }
    }
}

/// Why the wait ended without the authorization response.
#[derive(Debug)]
pub enum Interrupted {
    Cancelled,
    TimedOut(Duration),
    /// The browser command exited unsuccessfully before the redirect arrived.
    BrowserExited(String),
}

impl fmt::Display for Interrupted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Interrupted::Cancelled => f.write_str("the sign-in was cancelled"),
            Interrupted::TimedOut(t) => write!(
                f,
                "no sign-in arrived within {} minutes",
                t.as_secs().div_ceil(60)
            ),
            Interrupted::BrowserExited(why) => write!(
                f,
                "the browser command ({BROWSER_ENV}) ended before signing in: {why}"
            ),
        }
    }
}

// ------------------------------------------------------------------ the browser

/// How to show the authorize page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Opener {
    /// `$TESSERA_BROWSER`: a command line run by `sh -c`, the URL appended as its last
    /// argument. If it exits unsuccessfully before the redirect arrives, the wait ends.
    Command(String),
    /// The desktop's default browser (the `webbrowser` crate; `$BROWSER` is honoured).
    System,
    /// Open nothing (`TESSERA_BROWSER=none`): the user opens the URL.
    None,
}

impl Opener {
    pub fn from_env() -> Opener {
        match std::env::var(BROWSER_ENV) {
            Ok(cmd) if cmd.trim().eq_ignore_ascii_case("none") => Opener::None,
            Ok(cmd) if !cmd.trim().is_empty() => Opener::Command(cmd),
            _ => Opener::System,
        }
    }
}

/// Why the browser could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    /// The desktop has no web browser (nothing to run, `$BROWSER` unusable).
    #[error("no web browser was found")]
    NoBrowser,
    #[error("cannot run {BROWSER_ENV} ({command}): {error}")]
    Command {
        command: String,
        error: std::io::Error,
    },
    #[error("cannot open the web browser: {0}")]
    Failed(String),
}

impl From<std::io::Error> for OpenError {
    /// The desktop opener's error.
    fn from(e: std::io::Error) -> OpenError {
        // A missing program can surface as a bare "No such file or directory (os error 2)"
        // with another kind (a launcher that exits on ENOENT): it still means "no browser".
        let enoent = e.raw_os_error() == Some(2) || e.to_string().contains("os error 2");
        match e.kind() {
            std::io::ErrorKind::NotFound => OpenError::NoBrowser,
            _ if enoent => OpenError::NoBrowser,
            _ => OpenError::Failed(e.to_string()),
        }
    }
}

/// A browser showing the authorize page: the `TESSERA_BROWSER` command we run, if any.
#[derive(Debug, Default)]
pub struct Browser {
    child: Option<Child>,
}

impl Browser {
    /// Show `url` as `opener` says.
    pub async fn open(opener: &Opener, url: &Url) -> std::result::Result<Browser, OpenError> {
        match opener {
            Opener::None => Ok(Browser::default()),
            Opener::Command(cmd) => {
                if program_missing(cmd) {
                    return Err(OpenError::NoBrowser);
                }
                let mut command = shell_command(cmd, url.as_str());
                // The browser's output must not mix with ours (the CLI prints tokens).
                command
                    .stdin(Stdio::null())
                    .stdout(stderr_stdio())
                    .kill_on_drop(true);
                let child = command.spawn().map_err(|error| OpenError::Command {
                    command: cmd.clone(),
                    error,
                })?;
                Ok(Browser { child: Some(child) })
            }
            Opener::System => {
                let target = url.to_string();
                let verdict = tokio::task::spawn_blocking(move || webbrowser::open(&target));
                match tokio::time::timeout(OPENER_VERDICT, verdict).await {
                    Ok(Ok(Ok(()))) | Err(_) => Ok(Browser::default()),
                    Ok(Ok(Err(e))) => Err(e.into()),
                    Ok(Err(e)) => Err(OpenError::Failed(e.to_string())),
                }
            }
        }
    }

    /// Resolves when the browser command exits unsuccessfully (never for the desktop's
    /// browser, or a command that succeeded). Cancel-safe.
    async fn failed(&mut self) -> String {
        let Some(child) = self.child.as_mut() else {
            return std::future::pending().await;
        };
        match child.wait().await {
            Ok(status) if status.success() => std::future::pending().await,
            Ok(status) if status.code() == Some(127) => format!("{status} (command not found)"),
            Ok(status) => status.to_string(),
            Err(e) => e.to_string(),
        }
    }

    /// Let the browser command finish (a scripted browser exits once it has read our
    /// answer); after 3 s, kill it. It is never left behind.
    pub async fn close(mut self) {
        if let Some(mut child) = self.child.take() {
            if tokio::time::timeout(Duration::from_secs(3), child.wait())
                .await
                .is_err()
            {
                let _ = child.kill().await;
            }
        }
    }
}

/// Whether the program a `$TESSERA_BROWSER` command line starts with is missing: a path
/// that is not there, or a name found in no folder of `PATH`. (The shell would only say
/// so by exiting 127 once the sign-in has begun.) A first word the shell would read
/// otherwise (a variable, an assignment, quotes) is left to the shell.
fn program_missing(cmd: &str) -> bool {
    let Some(first) = cmd.split_whitespace().next() else {
        return true;
    };
    if first.contains(['$', '=', '\'', '"', '`', '(', ';', '|', '&', '<', '>']) {
        return false;
    }
    if first.contains('/') {
        return !std::path::Path::new(first).exists();
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    !std::env::split_paths(&path).any(|dir| dir.join(first).is_file())
}

#[cfg(unix)]
fn shell_command(cmd: &str, url: &str) -> tokio::process::Command {
    // The URL is a positional parameter, never part of the script text.
    let mut c = tokio::process::Command::new("sh");
    c.arg("-c")
        .arg(format!("{cmd} \"$1\""))
        .arg("tessera-browser")
        .arg(url);
    c
}

#[cfg(not(unix))]
fn shell_command(cmd: &str, url: &str) -> tokio::process::Command {
    let mut parts = cmd.split_whitespace();
    let mut c = tokio::process::Command::new(parts.next().unwrap_or_default());
    c.args(parts).arg(url);
    c
}

fn stderr_stdio() -> Stdio {
    #[cfg(unix)]
    {
        use std::os::fd::AsFd;
        if let Ok(fd) = std::io::stderr().as_fd().try_clone_to_owned() {
            return Stdio::from(fd);
        }
    }
    Stdio::null()
}

// ------------------------------------------------------------------ HTTP

/// What a request to the listener is.
#[derive(Debug, PartialEq, Eq)]
enum Request {
    /// The authorization response: the redirect path with the flow's `state`.
    Response(Url),
    /// The redirect path without the flow's `state`.
    NotOurs,
    NotFound,
    Bad,
}

/// Read one request and answer it. `Some(url)` when it was the authorization response.
async fn serve(mut stream: TcpStream, redirect_uri: Url, state: CsrfToken) -> Option<Url> {
    let request = match tokio::time::timeout(READ_TIMEOUT, read_head(&mut stream)).await {
        Ok(Some(head)) => classify(&head, &redirect_uri, &state),
        _ => Request::Bad,
    };
    let listener = "This is Tessera's sign-in listener.";
    let (status, title, message) = match &request {
        Request::Response(url) => {
            let (title, message) = response_page(url);
            (200, title, message)
        }
        Request::NotOurs => (
            400,
            "Not this sign-in".to_string(),
            "This address waits for the answer to a sign-in in progress, and this request is not it."
                .to_string(),
        ),
        Request::NotFound => (404, "Not found".to_string(), listener.to_string()),
        Request::Bad => (400, "Bad request".to_string(), listener.to_string()),
    };
    let _ = respond(&mut stream, status, &title, &message).await;
    match request {
        Request::Response(url) => Some(url),
        _ => None,
    }
}

async fn read_head(stream: &mut TcpStream) -> Option<String> {
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 1024];
    loop {
        let n = stream.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            buf.truncate(end);
            return String::from_utf8(buf).ok();
        }
        if buf.len() > MAX_REQUEST_HEAD {
            return None;
        }
    }
}

fn classify(head: &str, redirect_uri: &Url, state: &CsrfToken) -> Request {
    let line = head.lines().next().unwrap_or_default();
    let mut parts = line.split(' ');
    let (Some(method), Some(target), Some(version)) = (parts.next(), parts.next(), parts.next())
    else {
        return Request::Bad;
    };
    if parts.next().is_some() || !version.starts_with("HTTP/1.") || !target.starts_with('/') {
        return Request::Bad;
    }
    if method != "GET" {
        return Request::NotFound;
    }
    // The target is origin-form: only its path and query are the client's.
    let mut url = redirect_uri.clone();
    url.set_query(None);
    url.set_fragment(None);
    let Some((path, query)) = split_target(target) else {
        return Request::Bad;
    };
    url.set_path(path);
    url.set_query(query);
    if !redirect_matches(redirect_uri, &url) {
        return Request::NotFound;
    }
    // The first `state`, as `authcode::process_redirect` reads it.
    match url.query_pairs().find(|(k, _)| k == "state") {
        Some((_, s)) if s == state.secret().as_str() => Request::Response(url),
        _ => Request::NotOurs,
    }
}

fn split_target(target: &str) -> Option<(&str, Option<&str>)> {
    if target.contains('#') {
        return None;
    }
    Some(match target.split_once('?') {
        Some((path, query)) => (path, Some(query)),
        None => (target, None),
    })
}

fn response_page(url: &Url) -> (String, String) {
    let get = |k: &str| {
        url.query_pairs()
            .find(|(n, _)| n == k)
            .map(|(_, v)| v.into_owned())
    };
    match get("error") {
        Some(error) => {
            let detail = get("error_description")
                .map(|d| format!(": {d}"))
                .unwrap_or_default();
            (
                "Sign-in failed".into(),
                format!("The identity provider answered {error}{detail}. Go back to Tessera for the details."),
            )
        }
        None => (
            "Sign-in received".into(),
            "Tessera is finishing the sign-in. You can close this tab.".into(),
        ),
    }
}

fn html_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

fn page(title: &str, message: &str) -> String {
    format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>{t} - Tessera</title>\
         <style>body{{font-family:system-ui,sans-serif;margin:4rem auto;max-width:36rem;color:#222}}</style>\
         </head><body><h1>{t}</h1><p>{m}</p></body></html>",
        t = html_escape(title),
        m = html_escape(message)
    )
}

async fn respond(
    stream: &mut TcpStream,
    status: u16,
    title: &str,
    message: &str,
) -> std::io::Result<()> {
    let reason = match status {
        200 => "OK",
        404 => "Not Found",
        _ => "Bad Request",
    };
    let body = page(title, message);
    let head = format!(
        "HTTP/1.1 {status} {reason}\r\nContent-Type: text/html; charset=utf-8\r\nContent-Length: {}\r\n\
         Cache-Control: no-store\r\nReferrer-Policy: no-referrer\r\n\
         Content-Security-Policy: default-src 'none'; style-src 'unsafe-inline'\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).await?;
    stream.write_all(body.as_bytes()).await?;
    stream.flush().await?;
    stream.shutdown().await
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv6Addr;
    use std::time::Instant;

    const LONG: Duration = Duration::from_secs(30);

    fn state(s: &str) -> CsrfToken {
        CsrfToken::new(s.to_string())
    }

    async fn bind(redirect: &str) -> LoopbackListener {
        LoopbackListener::bind(&Url::parse(redirect).unwrap())
            .await
            .unwrap()
    }

    #[test]
    fn requests_are_classified_by_path_and_state() {
        let r = Url::parse("http://localhost:4321/cb").unwrap();
        let s = state("s1");
        let c = |head: &str| classify(head, &r, &s);
        assert_eq!(
            c("GET /cb?code=abc&state=s1 HTTP/1.1\r\nHost: localhost:4321"),
            Request::Response(Url::parse("http://localhost:4321/cb?code=abc&state=s1").unwrap())
        );
        assert_eq!(c("GET /cb?code=abc&state=s2 HTTP/1.1"), Request::NotOurs);
        assert_eq!(c("GET /cb?code=abc HTTP/1.1"), Request::NotOurs);
        assert_eq!(c("GET /cb?state=s2&state=s1 HTTP/1.1"), Request::NotOurs);
        assert_eq!(c("GET /cb HTTP/1.1"), Request::NotOurs);
        assert_eq!(c("GET /favicon.ico HTTP/1.1"), Request::NotFound);
        assert_eq!(c("GET /cb/x?state=s1 HTTP/1.1"), Request::NotFound);
        assert_eq!(c("GET /?state=s1 HTTP/1.1"), Request::NotFound);
        assert_eq!(c("POST /cb?state=s1 HTTP/1.1"), Request::NotFound);
        assert_eq!(
            c("GET //evil.example/cb?state=s1 HTTP/1.1"),
            Request::NotFound
        );
        assert_eq!(
            c("GET http://evil.example/cb?state=s1 HTTP/1.1"),
            Request::Bad
        );
        assert_eq!(c("GET /cb?state=s1#x HTTP/1.1"), Request::Bad);
        assert_eq!(c("garbage"), Request::Bad);
        assert_eq!(c(""), Request::Bad);
        assert_eq!(c("GET /cb?state=s1 SMTP/1.0"), Request::Bad);
    }

    #[test]
    fn pages_escape_provider_text() {
        let (title, message) = response_page(&Url::parse("http://localhost:1/?error=access_denied&error_description=%3Cscript%3Ex%3C/script%3E&state=s").unwrap());
        assert_eq!(title, "Sign-in failed");
        let html = page(&title, &message);
        assert!(
            html.contains("access_denied: &lt;script&gt;x&lt;/script&gt;"),
            "{html}"
        );
        assert!(!html.contains("<script>"));
        let (title, _) = response_page(&Url::parse("http://localhost:1/?code=c&state=s").unwrap());
        assert_eq!(title, "Sign-in received");
    }

    #[tokio::test]
    async fn binds_exactly_the_loopback_address_the_redirect_uri_names() {
        for (redirect, ip, host) in [
            (
                "http://localhost/tessera-redirect",
                "127.0.0.1",
                "localhost",
            ),
            (
                "http://127.0.0.1/tessera-redirect",
                "127.0.0.1",
                "127.0.0.1",
            ),
        ] {
            let l = bind(redirect).await;
            let addr = l.local_addr().unwrap();
            assert_eq!(addr.ip().to_string(), ip, "{redirect}");
            let r = l.redirect_uri();
            assert_eq!(r.host_str(), Some(host), "{redirect}");
            assert_eq!(r.path(), "/tessera-redirect");
            assert_eq!(r.port(), Some(addr.port()));
            assert_ne!(addr.port(), 0);
        }
        // Not loopback http: http://localhost:PORT/ on 127.0.0.1.
        for other in ["msal04b07795://auth", "https://app.example.com/cb"] {
            let l = bind(other).await;
            assert_eq!(l.local_addr().unwrap().ip(), Ipv4Addr::LOCALHOST);
            assert_eq!(
                l.redirect_uri().as_str(),
                format!("http://localhost:{}/", l.local_addr().unwrap().port())
            );
        }
        // A port the profile names is the port bound.
        let free = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = free.local_addr().unwrap().port();
        drop(free);
        let l = bind(&format!("http://127.0.0.1:{port}/cb")).await;
        assert_eq!(l.local_addr().unwrap().port(), port);
        assert_eq!(
            l.redirect_uri().as_str(),
            format!("http://127.0.0.1:{port}/cb")
        );
        // IPv6 loopback, where the machine has it.
        if std::net::TcpListener::bind((Ipv6Addr::LOCALHOST, 0)).is_ok() {
            let l = bind("http://[::1]/cb").await;
            let addr = l.local_addr().unwrap();
            assert_eq!(addr.ip(), IpAddr::from(Ipv6Addr::LOCALHOST));
            assert_eq!(
                l.redirect_uri().as_str(),
                format!("http://[::1]:{}/cb", addr.port())
            );
        } else {
            eprintln!("no IPv6 loopback here: [::1] not checked");
        }
    }

    async fn get(addr: SocketAddr, raw: &str) -> String {
        let mut s = TcpStream::connect(addr).await.unwrap();
        s.write_all(raw.as_bytes()).await.unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).await.unwrap();
        out
    }

    #[tokio::test]
    async fn stray_requests_do_not_end_the_wait() {
        let l = bind("http://localhost/cb").await;
        let addr = l.local_addr().unwrap();
        let client = tokio::spawn(async move {
            // A connection that never sends anything must not hold up the others.
            let silent = TcpStream::connect(addr).await.unwrap();
            let mut answers = Vec::new();
            for raw in [
                "GET /favicon.ico HTTP/1.1\r\nHost: x\r\n\r\n",
                "GET /cb?code=forged-code&state=forged-state HTTP/1.1\r\n\r\n",
                "GET /cb?code=forged-code HTTP/1.1\r\n\r\n",
                "GET /cb HTTP/1.1\r\n\r\n",
                "POST /cb?code=c&state=the-state HTTP/1.1\r\n\r\n",
                "\u{0}\u{1}junk\r\n\r\n",
                "GET /cb?code=the-code&state=the-state HTTP/1.1\r\nHost: localhost\r\n\r\n",
            ] {
                answers.push(get(addr, raw).await);
            }
            drop(silent);
            answers
        });
        let started = Instant::now();
        let url = l
            .wait(
                &state("the-state"),
                &mut Browser::default(),
                &CancellationToken::new(),
                LONG,
            )
            .await
            .unwrap();
        assert!(
            started.elapsed() < READ_TIMEOUT,
            "a silent connection held up the wait"
        );
        assert_eq!(
            url.as_str(),
            format!(
                "http://localhost:{}/cb?code=the-code&state=the-state",
                addr.port()
            )
        );
        let answers = client.await.unwrap();
        let statuses: Vec<&str> = answers.iter().map(|a| &a[..12]).collect();
        assert_eq!(
            statuses,
            [
                "HTTP/1.1 404",
                "HTTP/1.1 400",
                "HTTP/1.1 400",
                "HTTP/1.1 400",
                "HTTP/1.1 404",
                "HTTP/1.1 400",
                "HTTP/1.1 200"
            ]
        );
        for a in &answers {
            for secret in ["forged", "the-code", "the-state"] {
                assert!(!a.contains(secret), "an answer echoes {secret}: {a}");
            }
        }
        assert!(answers[6].contains("Sign-in received"), "{}", answers[6]);
    }

    #[tokio::test]
    async fn cancellation_timeout_and_a_failing_browser_command_end_the_wait() {
        let l = bind("http://localhost").await;
        let s = state("s");
        let cancel = CancellationToken::new();
        cancel.cancel();
        let r = l.wait(&s, &mut Browser::default(), &cancel, LONG).await;
        assert!(matches!(r, Err(Interrupted::Cancelled)), "{r:?}");
        let r = l
            .wait(
                &s,
                &mut Browser::default(),
                &CancellationToken::new(),
                Duration::from_millis(100),
            )
            .await;
        assert!(matches!(r, Err(Interrupted::TimedOut(_))), "{r:?}");

        let url = Url::parse("https://idp.example/a?x=1&y=2").unwrap();
        let mut failing = Browser::open(&Opener::Command("false".into()), &url)
            .await
            .unwrap();
        let started = Instant::now();
        let r = l
            .wait(&s, &mut failing, &CancellationToken::new(), LONG)
            .await;
        assert!(matches!(r, Err(Interrupted::BrowserExited(_))), "{r:?}");
        assert!(started.elapsed() < Duration::from_secs(10));
        failing.close().await;
        // A program that is not there is "no browser" at once, before any wait.
        let missing = Browser::open(
            &Opener::Command("/nonexistent/tessera-test-browser".into()),
            &url,
        )
        .await;
        assert!(matches!(missing, Err(OpenError::NoBrowser)), "{missing:?}");
        // One the shell cannot find (a script's own name not on PATH) still ends the wait.
        let mut not_found = Browser::open(
            &Opener::Command("sh -c 'exec /nonexistent/tessera-test-browser'".into()),
            &url,
        )
        .await
        .unwrap();
        let r = l
            .wait(&s, &mut not_found, &CancellationToken::new(), LONG)
            .await;
        let Err(Interrupted::BrowserExited(why)) = r else {
            panic!("{r:?}")
        };
        assert!(why.contains("not found"), "{why}");
    }

    #[test]
    fn a_missing_desktop_browser_is_named_so() {
        let e = OpenError::from(std::io::Error::new(
            std::io::ErrorKind::NotFound,
            "No valid browsers detected",
        ));
        assert!(matches!(e, OpenError::NoBrowser));
        assert_eq!(e.to_string(), "no web browser was found");
        let e = OpenError::from(std::io::Error::from_raw_os_error(2));
        assert!(matches!(e, OpenError::NoBrowser));
        let e = OpenError::from(std::io::Error::other("xdg-open failed"));
        assert_eq!(
            e.to_string(),
            "cannot open the web browser: xdg-open failed"
        );
    }

    #[test]
    fn a_browser_command_whose_program_is_missing_means_no_browser() {
        assert!(program_missing("/nonexistent/browser --login x"));
        assert!(program_missing("no-such-browser-anywhere %s"));
        assert!(program_missing("   "));
        assert!(!program_missing("sh -c true"));
        assert!(!program_missing("/bin/sh"));
        assert!(!program_missing("$BROWSER"), "left to the shell");
    }
}
