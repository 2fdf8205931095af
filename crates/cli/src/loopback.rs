//! Interactive sign-in for a command line: the system browser and a loopback listener
//! (RFC 8252 §7.3). The listener binds `127.0.0.1` on a free port; the redirect URI is
//! `http://localhost:<port>` with the profile's redirect path (Entra ignores the port
//! of `http://localhost` redirect URIs but matches the path; for a profile whose
//! redirect URI is not a loopback one, the path is `/`).
//!
//! It serves exactly one request whose path matches (anything else gets a 404 and the
//! wait goes on), answers it with a small page, and hands the full URL to the engine,
//! which checks `state` and redeems the code. The URL carries the authorization code,
//! so it is never logged.

use std::process::Stdio;
use std::time::Duration;

use tessera_core::app::UserAgent;
use tessera_core::error::{Error, Result};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::process::Child;
use url::Url;

/// How long the user has to finish signing in.
pub const SIGN_IN_TIMEOUT: Duration = Duration::from_secs(300);
/// Environment variable holding the command that opens the sign-in page.
pub const BROWSER_ENV: &str = "TESSERA_BROWSER";

const MAX_REQUEST_HEAD: usize = 16 * 1024;
const READ_TIMEOUT: Duration = Duration::from_secs(10);

/// How to show the authorize page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Opener {
    /// `$TESSERA_BROWSER`: a command line run by `sh -c`, the URL appended as its last
    /// argument. If it exits unsuccessfully before the redirect arrives, sign-in fails.
    Command(String),
    /// The desktop's default browser (`xdg-open`, `open`, `start`); failure to launch
    /// only leaves the printed URL.
    System,
    /// Print the URL only (`TESSERA_BROWSER=none`, e.g. over SSH).
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

pub struct LoopbackAgent {
    listener: TcpListener,
    redirect_uri: Url,
    opener: Opener,
    timeout: Duration,
}

impl LoopbackAgent {
    /// Listen on `127.0.0.1:0`; the redirect URI keeps the path of `profile_redirect`
    /// when that is a loopback http URI.
    pub async fn bind(profile_redirect: &Url, opener: Opener) -> Result<LoopbackAgent> {
        let listener = TcpListener::bind(("127.0.0.1", 0)).await.map_err(|e| {
            Error::Config(format!(
                "cannot listen on 127.0.0.1 for the sign-in redirect: {e}"
            ))
        })?;
        let port = listener
            .local_addr()
            .map_err(|e| {
                Error::Config(format!(
                    "cannot listen on 127.0.0.1 for the sign-in redirect: {e}"
                ))
            })?
            .port();
        let is_loopback_http = profile_redirect.scheme() == "http"
            && tessera_core::authority::is_loopback_host(
                profile_redirect.host_str().unwrap_or_default(),
            );
        let path = if is_loopback_http {
            profile_redirect.path()
        } else {
            "/"
        };
        let redirect_uri = Url::parse(&format!("http://localhost:{port}{path}"))
            .map_err(|e| Error::Config(format!("cannot build the loopback redirect URI: {e}")))?;
        Ok(LoopbackAgent {
            listener,
            redirect_uri,
            opener,
            timeout: SIGN_IN_TIMEOUT,
        })
    }

    #[cfg(test)]
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    pub fn redirect_uri(&self) -> &Url {
        &self.redirect_uri
    }

    /// Serve until one request matches `redirect_uri`; return its full URL.
    async fn wait_for_redirect(&self, redirect_uri: &Url) -> Result<Url> {
        loop {
            let (stream, _) = self
                .listener
                .accept()
                .await
                .map_err(|e| Error::Config(format!("the loopback listener failed: {e}")))?;
            match serve_one(stream, redirect_uri).await {
                Some(url) => return Ok(url),
                None => continue,
            }
        }
    }
}

#[async_trait::async_trait]
impl UserAgent for LoopbackAgent {
    async fn authorize(&self, authorize_url: &Url, redirect_uri: &Url) -> Result<Url> {
        eprintln!("Opening your browser... If it does not open, visit:\n  {authorize_url}");
        let mut child = launch(&self.opener, authorize_url);
        let browser_failed = async {
            match child.as_mut() {
                Some(c) => match c.wait().await {
                    Ok(status) if status.success() => std::future::pending().await,
                    Ok(status) => status.to_string(),
                    Err(e) => e.to_string(),
                },
                None => std::future::pending().await,
            }
        };
        let outcome = tokio::select! {
            r = self.wait_for_redirect(redirect_uri) => r,
            why = browser_failed => {
                eprintln!("The browser command ({BROWSER_ENV}) ended before signing in: {why}");
                Err(Error::Cancelled)
            }
            _ = tokio::time::sleep(self.timeout) => {
                eprintln!("No sign-in arrived within {} minutes.", self.timeout.as_secs() / 60);
                Err(Error::Cancelled)
            }
        };
        if let Some(mut c) = child {
            // A scripted browser exits once it has read our answer; give it a moment so
            // its output is complete, and never leave it behind.
            if tokio::time::timeout(Duration::from_secs(3), c.wait())
                .await
                .is_err()
            {
                let _ = c.kill().await;
            }
        }
        outcome
    }
}

fn launch(opener: &Opener, url: &Url) -> Option<Child> {
    match opener {
        Opener::None => None,
        Opener::Command(cmd) => {
            let mut command = shell_command(cmd, url.as_str());
            // The browser's stdout must not mix with ours (tokens go there).
            command
                .stdin(Stdio::null())
                .stdout(stderr_stdio())
                .kill_on_drop(true);
            match command.spawn() {
                Ok(c) => Some(c),
                Err(e) => {
                    eprintln!("Cannot run {BROWSER_ENV} ({cmd}): {e}");
                    None
                }
            }
        }
        Opener::System => {
            let mut command = system_opener(url.as_str());
            command
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null());
            match command.spawn() {
                Ok(mut c) => {
                    // Reap it in the background; it only hands the URL to the desktop.
                    tokio::spawn(async move {
                        let _ = c.wait().await;
                    });
                }
                Err(e) => tracing::debug!(error = %e, "cannot launch the system browser"),
            }
            None
        }
    }
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

fn system_opener(url: &str) -> tokio::process::Command {
    if cfg!(target_os = "macos") {
        let mut c = tokio::process::Command::new("open");
        c.arg(url);
        c
    } else if cfg!(windows) {
        let mut c = tokio::process::Command::new("cmd");
        c.args(["/C", "start", ""]).arg(url);
        c
    } else {
        let mut c = tokio::process::Command::new("xdg-open");
        c.arg(url);
        c
    }
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

/// Read one request; answer it. `Some(url)` when it was the redirect.
async fn serve_one(mut stream: TcpStream, redirect_uri: &Url) -> Option<Url> {
    let head = match tokio::time::timeout(READ_TIMEOUT, read_head(&mut stream)).await {
        Ok(Some(h)) => h,
        _ => {
            let _ = respond(
                &mut stream,
                400,
                "Bad request",
                "This is Tessera's sign-in listener.",
            )
            .await;
            return None;
        }
    };
    match parse_request(&head, redirect_uri) {
        Request::Redirect(url) => {
            let (title, message) = page_for(&url);
            let _ = respond(&mut stream, 200, &title, &message).await;
            Some(url)
        }
        Request::Other => {
            let _ = respond(
                &mut stream,
                404,
                "Not found",
                "This is Tessera's sign-in listener.",
            )
            .await;
            None
        }
        Request::Bad => {
            let _ = respond(
                &mut stream,
                400,
                "Bad request",
                "This is Tessera's sign-in listener.",
            )
            .await;
            None
        }
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

#[derive(Debug, PartialEq, Eq)]
enum Request {
    Redirect(Url),
    Other,
    Bad,
}

fn parse_request(head: &str, redirect_uri: &Url) -> Request {
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
        return Request::Other;
    }
    let base = format!(
        "{}://{}:{}",
        redirect_uri.scheme(),
        redirect_uri.host_str().unwrap_or("localhost"),
        redirect_uri.port_or_known_default().unwrap_or(80)
    );
    match Url::parse(&format!("{base}{target}")) {
        Ok(url) if url.path() == redirect_uri.path() => Request::Redirect(url),
        Ok(_) => Request::Other,
        Err(_) => Request::Bad,
    }
}

fn page_for(url: &Url) -> (String, String) {
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
            ("Sign-in failed".into(), format!("The identity provider answered {error}{detail}. Return to the terminal for details."))
        }
        None => (
            "Signed in".into(),
            "Signed in. You can close this tab and return to the terminal.".into(),
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

    fn redirect(path: &str) -> Url {
        Url::parse(&format!("http://localhost:4321{path}")).unwrap()
    }

    #[test]
    fn requests_are_matched_by_path_only_in_origin_form() {
        let r = redirect("/");
        assert_eq!(
            parse_request(
                "GET /?code=abc&state=xyz HTTP/1.1\r\nHost: localhost:4321",
                &r
            ),
            Request::Redirect(Url::parse("http://localhost:4321/?code=abc&state=xyz").unwrap())
        );
        assert_eq!(
            parse_request("GET /favicon.ico HTTP/1.1", &r),
            Request::Other
        );
        assert_eq!(parse_request("POST /?code=1 HTTP/1.1", &r), Request::Other);
        assert_eq!(
            parse_request("GET http://evil.example/?code=1 HTTP/1.1", &r),
            Request::Bad
        );
        assert_eq!(
            parse_request("GET //evil.example/ HTTP/1.1", &r),
            Request::Other
        );
        assert_eq!(parse_request("garbage", &r), Request::Bad);
        assert_eq!(parse_request("", &r), Request::Bad);
        assert_eq!(parse_request("GET / SMTP/1.0", &r), Request::Bad);
        let cb = redirect("/tessera-redirect");
        assert!(matches!(
            parse_request("GET /tessera-redirect?code=1 HTTP/1.1", &cb),
            Request::Redirect(_)
        ));
        assert_eq!(parse_request("GET /?code=1 HTTP/1.1", &cb), Request::Other);
    }

    #[test]
    fn error_pages_escape_provider_text() {
        let (title, message) = page_for(&Url::parse("http://localhost:1/?error=access_denied&error_description=%3Cscript%3Ex%3C/script%3E").unwrap());
        assert_eq!(title, "Sign-in failed");
        let html = page(&title, &message);
        assert!(
            html.contains("access_denied: &lt;script&gt;x&lt;/script&gt;"),
            "{html}"
        );
        assert!(!html.contains("<script>"));
        let (title, _) = page_for(&Url::parse("http://localhost:1/?code=c&state=s").unwrap());
        assert_eq!(title, "Signed in");
    }

    #[tokio::test]
    async fn the_redirect_path_follows_the_profile() {
        let a = LoopbackAgent::bind(
            &Url::parse("http://localhost/tessera-redirect").unwrap(),
            Opener::None,
        )
        .await
        .unwrap();
        assert_eq!(a.redirect_uri().path(), "/tessera-redirect");
        assert_eq!(a.redirect_uri().host_str(), Some("localhost"));
        assert_ne!(a.redirect_uri().port(), None);
        let b = LoopbackAgent::bind(&Url::parse("msal04b07795://auth").unwrap(), Opener::None)
            .await
            .unwrap();
        assert_eq!(b.redirect_uri().path(), "/");
        let c = LoopbackAgent::bind(
            &Url::parse("https://app.example.com/cb").unwrap(),
            Opener::None,
        )
        .await
        .unwrap();
        assert_eq!(c.redirect_uri().path(), "/");
    }

    async fn get(port: u16, raw: &str) -> String {
        let mut s = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
        s.write_all(raw.as_bytes()).await.unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).await.unwrap();
        out
    }

    #[tokio::test]
    async fn serves_other_requests_until_the_redirect_arrives() {
        let agent = LoopbackAgent::bind(&Url::parse("http://localhost/cb").unwrap(), Opener::None)
            .await
            .unwrap();
        let redirect_uri = agent.redirect_uri().clone();
        let port = redirect_uri.port().unwrap();
        let authorize = Url::parse("https://idp.example/authorize").unwrap();
        let client = tokio::spawn(async move {
            let not_found = get(port, "GET /favicon.ico HTTP/1.1\r\nHost: x\r\n\r\n").await;
            let bad = get(port, "\u{0}\u{1}junk\r\n\r\n").await;
            let ok = get(
                port,
                "GET /cb?code=the-code&state=s1 HTTP/1.1\r\nHost: localhost\r\n\r\n",
            )
            .await;
            (not_found, bad, ok)
        });
        let url = agent.authorize(&authorize, &redirect_uri).await.unwrap();
        let (not_found, bad, ok) = client.await.unwrap();
        assert!(not_found.starts_with("HTTP/1.1 404"), "{not_found}");
        assert!(bad.starts_with("HTTP/1.1 400"), "{bad}");
        assert!(ok.starts_with("HTTP/1.1 200"), "{ok}");
        assert!(ok.contains("Signed in. You can close this tab"), "{ok}");
        assert!(
            !ok.contains("the-code"),
            "the answer does not echo the code"
        );
        assert_eq!(
            url.as_str(),
            format!("http://localhost:{port}/cb?code=the-code&state=s1")
        );
    }

    #[tokio::test]
    async fn a_silent_browser_times_out_and_a_failing_browser_command_cancels() {
        let agent = LoopbackAgent::bind(&Url::parse("http://localhost").unwrap(), Opener::None)
            .await
            .unwrap()
            .with_timeout(Duration::from_millis(200));
        let r = agent.redirect_uri().clone();
        let err = agent
            .authorize(&Url::parse("https://idp.example/a").unwrap(), &r)
            .await
            .unwrap_err();
        assert!(matches!(err, Error::Cancelled));

        let agent = LoopbackAgent::bind(
            &Url::parse("http://localhost").unwrap(),
            Opener::Command("false".into()),
        )
        .await
        .unwrap();
        let r = agent.redirect_uri().clone();
        let started = std::time::Instant::now();
        let err = agent
            .authorize(&Url::parse("https://idp.example/a").unwrap(), &r)
            .await
            .unwrap_err();
        assert!(matches!(err, Error::Cancelled));
        assert!(started.elapsed() < Duration::from_secs(10));
    }

    #[cfg(unix)]
    #[tokio::test]
    async fn the_browser_command_gets_the_url_as_one_argument() {
        let dir = std::env::temp_dir().join(format!("tessera-cli-browser-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let out = dir.join("args");
        let agent = LoopbackAgent::bind(
            &Url::parse("http://localhost").unwrap(),
            Opener::Command(format!(
                "printf '%s\\n' \"$#\" > '{}'; printf '%s' >> '{}'; exit 3; :",
                out.display(),
                out.display()
            )),
        )
        .await
        .unwrap();
        let r = agent.redirect_uri().clone();
        let weird = Url::parse("https://idp.example/a?x=1&y=$(touch%20pwned)';").unwrap();
        let err = agent.authorize(&weird, &r).await.unwrap_err();
        assert!(matches!(err, Error::Cancelled));
        let args = std::fs::read_to_string(&out).unwrap();
        assert_eq!(
            args.lines().next(),
            Some("1"),
            "the URL is exactly one argument: {args}"
        );
        assert!(!dir.join("pwned").exists() && !std::path::Path::new("pwned").exists());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
