//! The pluggable HTTP seam. Protocol steps build an [`HttpRequest`] and process an
//! [`HttpResponse`]; only an [`HttpClient`] does I/O. The default client is reqwest with
//! rustls, redirects off, a timeout and a cap on the body size.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use async_trait::async_trait;
use url::Url;

/// Bodies larger than this are refused: no identity provider sends megabytes of JSON.
pub const MAX_BODY_BYTES: usize = 4 * 1024 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    Get,
    Post,
}

/// A request about to be sent. `Debug` does not print the body (it carries codes,
/// verifiers and refresh tokens).
#[derive(Clone)]
pub struct HttpRequest {
    pub method: Method,
    pub url: Url,
    pub headers: Vec<(String, String)>,
    pub body: Option<Vec<u8>>,
}

impl std::fmt::Debug for HttpRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Query strings of GET requests we build carry no secrets (discovery only).
        f.debug_struct("HttpRequest")
            .field("method", &self.method)
            .field("url", &self.url.as_str())
            .field(
                "body",
                &self.body.as_ref().map(|b| format!("[{} bytes]", b.len())),
            )
            .finish()
    }
}

impl HttpRequest {
    pub fn get(url: Url) -> Self {
        Self {
            method: Method::Get,
            url,
            headers: vec![("Accept".into(), "application/json".into())],
            body: None,
        }
    }

    /// A form POST (`application/x-www-form-urlencoded`), as every token request is.
    pub fn post_form<'a>(url: Url, params: impl IntoIterator<Item = (&'a str, &'a str)>) -> Self {
        let body = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(params)
            .finish();
        Self {
            method: Method::Post,
            url,
            headers: vec![
                (
                    "Content-Type".into(),
                    "application/x-www-form-urlencoded".into(),
                ),
                ("Accept".into(), "application/json".into()),
            ],
            body: Some(body.into_bytes()),
        }
    }

    /// The form fields of the body (tests use this to check what a step sends).
    pub fn form(&self) -> Vec<(String, String)> {
        self.body
            .as_deref()
            .map(|b| url::form_urlencoded::parse(b).into_owned().collect())
            .unwrap_or_default()
    }
}

#[derive(Clone)]
pub struct HttpResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl std::fmt::Debug for HttpResponse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpResponse")
            .field("status", &self.status)
            .field("body", &format!("[{} bytes]", self.body.len()))
            .finish()
    }
}

impl HttpResponse {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn is_json(&self) -> bool {
        self.header("content-type")
            .is_some_and(|c| c.contains("json"))
    }
}

/// What went wrong below HTTP: the provider could not be reached or did not answer in time.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{0}")]
pub struct TransportError(pub String);

#[async_trait]
pub trait HttpClient: Send + Sync {
    async fn execute(&self, request: HttpRequest) -> Result<HttpResponse, TransportError>;
}

/// The production client. The reqwest client (its TLS roots: the system's, plus a PEM
/// bundle of CAs to trust) is built on the first request: a command answered from the
/// cache, such as `tessera-cli token` on a hit, never pays for parsing certificates.
#[derive(Clone)]
pub struct ReqwestClient {
    config: HttpConfig,
    inner: Arc<OnceLock<Result<reqwest::Client, TransportError>>>,
}

#[derive(Debug, Clone)]
pub struct HttpConfig {
    pub timeout: Duration,
    /// Extra PEM file of CA certificates to trust (a private CA). `None` reads `SSL_CERT_FILE`.
    pub extra_ca_file: Option<std::path::PathBuf>,
}

impl Default for HttpConfig {
    fn default() -> Self {
        Self {
            timeout: Duration::from_secs(30),
            extra_ca_file: None,
        }
    }
}

impl ReqwestClient {
    /// A client for `config`. Nothing is read or built yet: a bad CA file is reported by
    /// the first request.
    pub fn new(config: &HttpConfig) -> Self {
        Self {
            config: config.clone(),
            inner: Arc::new(OnceLock::new()),
        }
    }

    fn client(&self) -> Result<&reqwest::Client, TransportError> {
        self.inner
            .get_or_init(|| Self::build(&self.config))
            .as_ref()
            .map_err(Clone::clone)
    }

    fn build(config: &HttpConfig) -> Result<reqwest::Client, TransportError> {
        let mut builder = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(config.timeout)
            .connect_timeout(config.timeout.min(Duration::from_secs(10)))
            .user_agent(concat!("tessera/", env!("CARGO_PKG_VERSION")));
        let ca_file = config
            .extra_ca_file
            .clone()
            .or_else(|| std::env::var_os("SSL_CERT_FILE").map(Into::into));
        if let Some(path) = ca_file {
            let pem = std::fs::read(&path).map_err(|e| {
                TransportError(format!("cannot read CA file {}: {e}", path.display()))
            })?;
            let certs = reqwest::Certificate::from_pem_bundle(&pem)
                .map_err(|e| TransportError(format!("bad CA file {}: {e}", path.display())))?;
            for cert in certs {
                builder = builder.add_root_certificate(cert);
            }
        }
        builder
            .build()
            .map_err(|e| TransportError(format!("HTTP client: {e}")))
    }
}

#[async_trait]
impl HttpClient for ReqwestClient {
    async fn execute(&self, request: HttpRequest) -> Result<HttpResponse, TransportError> {
        let host = request.url.host_str().unwrap_or("?").to_string();
        let method = match request.method {
            Method::Get => reqwest::Method::GET,
            Method::Post => reqwest::Method::POST,
        };
        tracing::debug!(method = ?request.method, url = %redact_query(&request.url), "http request");
        let mut builder = self.client()?.request(method, request.url);
        for (k, v) in &request.headers {
            builder = builder.header(k, v);
        }
        if let Some(body) = request.body {
            builder = builder.body(body);
        }
        let mut response = builder.send().await.map_err(|e| describe(&host, e))?;
        let status = response.status().as_u16();
        let headers = response
            .headers()
            .iter()
            .map(|(k, v)| {
                (
                    k.as_str().to_string(),
                    v.to_str().unwrap_or_default().to_string(),
                )
            })
            .collect();
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(|e| describe(&host, e))? {
            if body.len() + chunk.len() > MAX_BODY_BYTES {
                return Err(TransportError(format!(
                    "{host} sent a response larger than {} MiB; refused",
                    MAX_BODY_BYTES / 1024 / 1024
                )));
            }
            body.extend_from_slice(&chunk);
        }
        tracing::debug!(status, bytes = body.len(), "http response");
        Ok(HttpResponse {
            status,
            headers,
            body,
        })
    }
}

fn describe(host: &str, e: reqwest::Error) -> TransportError {
    if e.is_timeout() {
        TransportError(format!("{host} did not answer in time"))
    } else if e.is_connect() {
        TransportError(format!("cannot connect to {host}: {}", root_cause(&e)))
    } else {
        TransportError(format!("request to {host} failed: {}", root_cause(&e)))
    }
}

fn root_cause(e: &(dyn std::error::Error + 'static)) -> String {
    let mut cause = e;
    while let Some(next) = cause.source() {
        cause = next;
    }
    cause.to_string()
}

/// A URL for logs: the query and fragment (which may carry codes) are dropped.
pub fn redact_query(url: &Url) -> String {
    let mut u = url.clone();
    u.set_query(None);
    u.set_fragment(None);
    u.to_string()
}
