//! The pluggable HTTP seam. Protocol steps build an [`HttpRequest`] and process an
//! [`HttpResponse`]; only an [`HttpClient`] does I/O. The default client is reqwest with
//! rustls, redirects off, a timeout and a cap on the body size.
//!
//! TLS trusts the operating system's certificate store and the PEM file named by
//! `SSL_CERT_FILE` (or [`HttpConfig::extra_ca_file`]); no list is built in. The store is
//! read by rustls-native-certs: on Linux the distribution's bundle and certificate folder
//! (e.g. `/etc/ssl/certs/ca-certificates.crt` and `/etc/ssl/certs`, where
//! `update-ca-certificates` puts a CA), the Keychain on macOS, the system store on Windows.
//! As with OpenSSL, `SSL_CERT_DIR` (folders, `:`-separated) takes the place of the store
//! when set, while `SSL_CERT_FILE` is trusted beside the system's certificate folder (on
//! macOS and Windows it takes the place of the store). An unreadable part of the store is a warning, an
//! empty store a warning too (https requests then fail, naming the certificate error);
//! neither stops a loopback provider over http.

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
}

/// What went wrong below HTTP: the provider could not be reached or did not answer in time.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{0}")]
pub struct TransportError(pub String);

#[async_trait]
pub trait HttpClient: Send + Sync {
    async fn execute(&self, request: HttpRequest) -> Result<HttpResponse, TransportError>;
}

/// The production client. The reqwest client (its TLS roots: the OS store, plus a PEM
/// bundle of CAs to trust; see the module docs) is built on the first request: a command
/// answered from the cache, such as `tessera-cli token` on a hit, never reads a certificate.
#[derive(Clone)]
pub struct ReqwestClient {
    config: HttpConfig,
    inner: Arc<OnceLock<Result<reqwest::Client, TransportError>>>,
}

#[derive(Debug, Clone)]
pub struct HttpConfig {
    pub timeout: Duration,
    /// Extra PEM file of CA certificates to trust besides the OS store (a private CA).
    /// `None` reads `SSL_CERT_FILE`. A file that cannot be read or parsed is an error.
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
        // SSL_CERT_FILE, when set, is part of the OS store too (the first read skips what it
        // cannot use; this one makes a missing or malformed file an error).
        for cert in os_roots().into_iter().chain(extra_roots(config)?) {
            builder = builder.add_root_certificate(cert);
        }
        builder
            .build()
            .map_err(|e| TransportError(format!("HTTP client: {e}")))
    }
}

/// Reqwest roots from the certificates `found`, and why each that webpki cannot use as a
/// trust anchor was left out (reqwest would refuse to build a client with it).
fn roots_of(
    found: &rustls_native_certs::CertificateResult,
) -> (Vec<reqwest::Certificate>, Vec<String>) {
    let mut roots = Vec::new();
    let mut unusable = Vec::new();
    for der in &found.certs {
        match webpki::anchor_from_trusted_cert(der)
            .map_err(|e| e.to_string())
            .and_then(|_| reqwest::Certificate::from_der(der).map_err(|e| e.to_string()))
        {
            Ok(cert) => roots.push(cert),
            Err(why) => unusable.push(why),
        }
    }
    (roots, unusable)
}

/// The CA certificates of the OS store (see the module docs). What cannot be read or used
/// is skipped with a warning, so one bad file in a certificate folder cuts no connection.
fn os_roots() -> Vec<reqwest::Certificate> {
    #[allow(unused_mut)]
    let mut found = rustls_native_certs::load_native_certs();
    // OpenSSL's rule, which rustls-native-certs does not follow: SSL_CERT_FILE takes the
    // place of the default bundle, not of the default folder (/etc/ssl/certs holds every
    // CA of the store), so a private CA named there is trusted beside the public ones.
    #[cfg(all(unix, not(target_os = "macos")))]
    if std::env::var_os("SSL_CERT_FILE").is_some() && std::env::var_os("SSL_CERT_DIR").is_none() {
        for dir in openssl_probe::candidate_cert_dirs() {
            let more = rustls_native_certs::load_certs_from_paths(None, Some(dir));
            found.certs.extend(more.certs);
            found.errors.extend(more.errors);
        }
    }
    for e in &found.errors {
        tracing::warn!(error = %e, "part of the OS certificate store could not be read");
    }
    let (roots, unusable) = roots_of(&found);
    if roots.is_empty() {
        tracing::warn!(
            "the OS certificate store holds no CA certificate: https requests will fail \
             unless SSL_CERT_FILE names a PEM file of the CAs to trust (or install the \
             ca-certificates package)"
        );
    } else {
        tracing::debug!(
            trusted = roots.len(),
            skipped = unusable.len(),
            "CA certificates of the OS store"
        );
    }
    roots
}

/// The certificates of [`HttpConfig::extra_ca_file`], else of `SSL_CERT_FILE`: a file that
/// cannot be read, holds no certificate or one that cannot be a CA is an error.
fn extra_roots(config: &HttpConfig) -> Result<Vec<reqwest::Certificate>, TransportError> {
    let Some(path) = config
        .extra_ca_file
        .clone()
        .or_else(|| std::env::var_os("SSL_CERT_FILE").map(Into::into))
    else {
        return Ok(Vec::new());
    };
    let found = rustls_native_certs::load_certs_from_paths(Some(&path), None);
    if let Some(e) = found.errors.first() {
        return Err(TransportError(format!(
            "cannot read CA file {}: {e}",
            path.display()
        )));
    }
    let bad = |why: String| TransportError(format!("bad CA file {}: {why}", path.display()));
    let (roots, unusable) = roots_of(&found);
    if let Some(why) = unusable.first() {
        return Err(bad(format!("a certificate in it cannot be a CA ({why})")));
    }
    if roots.is_empty() {
        return Err(bad("it holds no PEM certificate".into()));
    }
    Ok(roots)
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
        let cause = root_cause(&e);
        // rustls's words for a chain that leads to no trusted root.
        let hint = if cause.contains("UnknownIssuer") {
            " (its certificate is not issued by a CA this machine trusts: Tessera trusts the \
             OS certificate store and the PEM file named by SSL_CERT_FILE)"
        } else {
            ""
        };
        TransportError(format!("cannot connect to {host}: {cause}{hint}"))
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

#[cfg(test)]
mod tests {
    use super::*;

    fn extra(path: &std::path::Path) -> Result<usize, String> {
        let config = HttpConfig {
            extra_ca_file: Some(path.to_path_buf()),
            ..HttpConfig::default()
        };
        extra_roots(&config).map(|r| r.len()).map_err(|e| e.0)
    }

    #[test]
    fn an_extra_ca_file_that_is_missing_empty_or_no_ca_is_an_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ca.pem");
        let shown = path.display().to_string();
        let err = extra(&path).unwrap_err();
        assert!(
            err.starts_with(&format!("cannot read CA file {shown}: ")),
            "{err}"
        );
        std::fs::write(&path, "not a certificate\n").unwrap();
        assert_eq!(
            extra(&path).unwrap_err(),
            format!("bad CA file {shown}: it holds no PEM certificate")
        );
        // PEM around three zero bytes.
        std::fs::write(
            &path,
            "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
        )
        .unwrap();
        let err = extra(&path).unwrap_err();
        assert!(
            err.starts_with(&format!(
                "bad CA file {shown}: a certificate in it cannot be a CA ("
            )),
            "{err}"
        );
    }
}
