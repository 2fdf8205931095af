//! A small W3C WebDriver client (JSON over HTTP) for `tauri-driver`, with waits that
//! poll until a condition holds or a deadline passes.

use std::time::{Duration, Instant};

use serde_json::{json, Value};

const ELEMENT_KEY: &str = "element-6066-11e4-a52e-4f735466cecf";
pub const WAIT: Duration = Duration::from_secs(20);

pub type Result<T> = std::result::Result<T, String>;

pub struct Session {
    http: reqwest::Client,
    url: String,
    /// Not yet ended by `quit`: dropping the session ends it.
    open: bool,
}

impl Session {
    /// Start the app at `application` through the WebDriver server at `driver`.
    pub async fn start(driver: &str, application: &str) -> Result<Session> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(120))
            .build()
            .map_err(|e| e.to_string())?;
        let caps = json!({ "capabilities": { "alwaysMatch": { "tauri:options": { "application": application } } } });
        let v = send(
            &http,
            reqwest::Method::POST,
            &format!("{driver}/session"),
            Some(caps),
        )
        .await?;
        let id = v["sessionId"]
            .as_str()
            .ok_or_else(|| format!("no session id in {v}"))?;
        Ok(Session {
            http,
            url: format!("{driver}/session/{id}"),
            open: true,
        })
    }

    /// End the session (the driver stops the app).
    pub async fn quit(mut self) -> Result<()> {
        self.open = false;
        send(&self.http, reqwest::Method::DELETE, &self.url, None)
            .await
            .map(|_| ())
    }

    async fn cmd(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Result<Value> {
        send(&self.http, method, &format!("{}{path}", self.url), body).await
    }

    async fn post(&self, path: &str, body: Value) -> Result<Value> {
        self.cmd(reqwest::Method::POST, path, Some(body)).await
    }

    /// Elements matching a CSS selector (possibly none).
    pub async fn find_all(&self, css: &str) -> Result<Vec<String>> {
        let v = self
            .post(
                "/elements",
                json!({ "using": "css selector", "value": css }),
            )
            .await?;
        Ok(v.as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|e| e[ELEMENT_KEY].as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default())
    }

    /// Run a script in the main window (`arguments` are JSON values).
    pub async fn script(&self, script: &str, args: Value) -> Result<Value> {
        self.post("/execute/sync", json!({ "script": script, "args": args }))
            .await
    }

    /// Run an asynchronous script in the main window: it gets a callback as its last
    /// argument and its answer is what it passes to it.
    pub async fn script_async(&self, script: &str, args: Value) -> Result<Value> {
        self.post("/execute/async", json!({ "script": script, "args": args }))
            .await
    }

    /// Whether `css` matches a displayed element.
    pub async fn visible(&self, css: &str) -> Result<bool> {
        let v = self
            .script(
                "const e = document.querySelector(arguments[0]); \
                 return !!e && !e.closest('[hidden]') && e.getClientRects().length > 0;",
                json!([css]),
            )
            .await?;
        Ok(v.as_bool().unwrap_or(false))
    }

    /// The text of the first element matching `css` ("" when there is none).
    pub async fn text(&self, css: &str) -> Result<String> {
        let v = self
            .script(
                "const e = document.querySelector(arguments[0]); return e ? e.innerText : '';",
                json!([css]),
            )
            .await?;
        Ok(v.as_str().unwrap_or_default().to_string())
    }

    /// Wait until `css` is displayed, then click it (a real WebDriver click).
    pub async fn click(&self, css: &str) -> Result<()> {
        self.wait_visible(css).await?;
        let id = self
            .find_all(css)
            .await?
            .into_iter()
            .next()
            .ok_or_else(|| format!("{css} not found"))?;
        self.post(&format!("/element/{id}/click"), json!({}))
            .await
            .map(|_| ())
    }

    /// Replace the value of the input `css` by typing `text`.
    pub async fn type_into(&self, css: &str, text: &str) -> Result<()> {
        self.wait_visible(css).await?;
        let id = self
            .find_all(css)
            .await?
            .into_iter()
            .next()
            .ok_or_else(|| format!("{css} not found"))?;
        self.post(&format!("/element/{id}/clear"), json!({}))
            .await?;
        self.post(&format!("/element/{id}/value"), json!({ "text": text }))
            .await
            .map(|_| ())
    }

    /// Press keys in the focused element (`\u{E007}` is Enter, `\u{E015}` arrow down).
    pub async fn keys(&self, css: &str, keys: &str) -> Result<()> {
        let id = self
            .find_all(css)
            .await?
            .into_iter()
            .next()
            .ok_or_else(|| format!("{css} not found"))?;
        self.post(&format!("/element/{id}/value"), json!({ "text": keys }))
            .await
            .map(|_| ())
    }

    pub async fn wait_visible(&self, css: &str) -> Result<()> {
        self.wait_until(&format!("{css} to be displayed"), || async {
            self.visible(css).await
        })
        .await
    }

    pub async fn wait_hidden(&self, css: &str) -> Result<()> {
        self.wait_until(&format!("{css} to be hidden"), || async {
            Ok(!self.visible(css).await?)
        })
        .await
    }

    /// Wait until the text of `css` contains `needle`.
    pub async fn wait_text(&self, css: &str, needle: &str) -> Result<String> {
        let mut last = String::new();
        let deadline = Instant::now() + WAIT;
        loop {
            if self.visible(css).await? {
                last = self.text(css).await?;
                if last.contains(needle) {
                    return Ok(last);
                }
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "timed out waiting for {css} to say {needle:?}; it says {last:?}"
                ));
            }
            tokio::time::sleep(Duration::from_millis(150)).await;
        }
    }

    pub async fn wait_until<F, Fut>(&self, what: &str, mut f: F) -> Result<()>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<bool>>,
    {
        let deadline = Instant::now() + WAIT;
        loop {
            if f().await? {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(format!("timed out waiting for {what}"));
            }
            tokio::time::sleep(Duration::from_millis(150)).await;
        }
    }
}

impl Drop for Session {
    /// A test that fails never reaches `quit`. End its session anyway: the driver holds one
    /// session at a time and would refuse every later test ("Maximum number of active
    /// sessions"), hiding their results behind the first failure.
    fn drop(&mut self) {
        if self.open {
            if let Err(e) = delete_blocking(&self.url) {
                eprintln!("e2e: could not end the WebDriver session: {e}");
            }
        }
    }
}

/// `DELETE url` over a plain HTTP/1.1 connection, without the async runtime (which may be
/// unwinding).
fn delete_blocking(url: &str) -> std::io::Result<()> {
    use std::io::{Read, Write};
    let url = url::Url::parse(url).map_err(std::io::Error::other)?;
    let (Some(host), Some(port)) = (url.host_str(), url.port_or_known_default()) else {
        return Err(std::io::Error::other(format!("{url} names no host")));
    };
    let (host, path) = (format!("{host}:{port}"), url.path());
    let mut stream = std::net::TcpStream::connect(&host)?;
    stream.set_read_timeout(Some(Duration::from_secs(60)))?;
    write!(
        stream,
        "DELETE {path} HTTP/1.1\r\nHost: {host}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    )?;
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer)?;
    // "HTTP/1.1 200 OK": a driver that refused says so in its status line.
    let status = answer.split(|&b| b == b'\r').next().unwrap_or_default();
    match status.split(|&b| b == b' ').nth(1) {
        Some([b'2', ..]) => Ok(()),
        _ => Err(std::io::Error::other(format!(
            "the driver answered {:?}",
            String::from_utf8_lossy(status)
        ))),
    }
}

async fn send(
    http: &reqwest::Client,
    method: reqwest::Method,
    url: &str,
    body: Option<Value>,
) -> Result<Value> {
    let mut req = http.request(method.clone(), url);
    if let Some(b) = body {
        req = req.json(&b);
    }
    let resp = req
        .send()
        .await
        .map_err(|e| format!("{method} {url}: {e}"))?;
    let status = resp.status();
    let v: Value = resp
        .json()
        .await
        .map_err(|e| format!("{method} {url}: {e}"))?;
    if !status.is_success() {
        return Err(format!("{method} {url}: HTTP {status}: {}", v["value"]));
    }
    Ok(v["value"].clone())
}
