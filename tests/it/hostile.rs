//! A hostile identity provider: a raw HTTP/1.1 server written here, byte by byte, on
//! 127.0.0.1. It serves a valid discovery document, an authorize endpoint that redirects
//! straight back with a code, and a token endpoint that first behaves (so an account is
//! cached) and then turns hostile: huge bodies (with honest, lying or no
//! Content-Length), deep nesting, wrong types, missing fields, NUL garbage, HTML, a slow
//! drip, absurd numbers. The engine's real `ReqwestClient` must end each one in a clear
//! `tessera_core::Error` within its timeout, never panic, never hang, and leave the
//! SQLite store exactly as it was.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine;
use serde_json::{json, Value};
use tessera_core::app::{
    Account, AuthResult, ClientConfig, Deps, InteractiveParams, PublicClientApplication,
    SilentOptions,
};
use tessera_core::authority::Authority;
use tessera_core::cache::cipher::PlaintextCipher;
use tessera_core::cache::sqlite::SqliteStore;
use tessera_core::cache::{CredentialQuery, TokenStore};
use tessera_core::env::{OsEntropy, SystemClock};
use tessera_core::http::{HttpConfig, ReqwestClient};
use tessera_core::scopes::ScopeSet;
use tessera_core::Error;
use tessera_tests::raw_http::{read_request, respond, Length, Request};
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use url::Url;

const CLIENT: &str = "hostile-test-client";
const REDIRECT: &str = "http://localhost/hostile-redirect";
/// Planted in every hostile body's token fields: no error may repeat it.
const SECRET: &str = "hostile-secret-value";
/// The client's timeout in these tests.
const TIMEOUT: Duration = Duration::from_secs(3);
/// Nothing here may take longer than this (the slow cases take about `TIMEOUT`).
const NEVER_HANG: Duration = Duration::from_secs(20);
const MIB: usize = 1024 * 1024;

/// What the token endpoint answers.
#[derive(Debug, Clone)]
enum Token {
    /// A valid response (ID token with the right `iss`, `aud`, `nonce`, `exp`), with these
    /// fields replaced.
    Good(Value),
    /// These exact bytes after these headers (`Content-Length` added unless `None`).
    Raw {
        status: u16,
        content_type: &'static str,
        body: Vec<u8>,
        content_length: Length,
    },
    /// Headers promising a JSON body, then one byte per second.
    DripBody,
    /// The status line and headers themselves one byte per second.
    DripHead,
    /// Accept the connection, read the request, never answer.
    Silent,
}

/// What the discovery endpoint answers.
#[derive(Debug, Clone)]
enum Discovery {
    Good,
    /// A valid document with these fields replaced.
    With(Value),
    /// A valid document padded to this many bytes.
    Huge(usize),
}

struct Modes {
    token: Token,
    discovery: Discovery,
    /// The nonce of the last authorize request, for the ID token.
    nonce: Option<String>,
    /// Requests seen, by path.
    seen: Vec<String>,
}

struct Hostile {
    port: u16,
    modes: Arc<Mutex<Modes>>,
    server: tokio::task::JoinHandle<()>,
}

impl Drop for Hostile {
    fn drop(&mut self) {
        self.server.abort();
    }
}

impl Hostile {
    async fn start() -> Hostile {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind 127.0.0.1:0");
        let port = listener.local_addr().expect("local addr").port();
        let modes = Arc::new(Mutex::new(Modes {
            token: Token::Good(json!({})),
            discovery: Discovery::Good,
            nonce: None,
            seen: Vec::new(),
        }));
        let shared = modes.clone();
        let server = tokio::spawn(async move {
            while let Ok((sock, _)) = listener.accept().await {
                let modes = shared.clone();
                tokio::spawn(async move {
                    // A client that hangs up mid-answer is what several cases expect.
                    let _ = serve(sock, port, modes).await;
                });
            }
        });
        Hostile {
            port,
            modes,
            server,
        }
    }

    fn issuer(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn token(&self, t: Token) {
        self.modes.lock().unwrap().token = t;
    }

    fn discovery(&self, d: Discovery) {
        self.modes.lock().unwrap().discovery = d;
    }

    fn seen(&self) -> Vec<String> {
        self.modes.lock().unwrap().seen.clone()
    }
}

/// One request per connection (`Connection: close`).
async fn serve(mut sock: TcpStream, port: u16, modes: Arc<Mutex<Modes>>) -> std::io::Result<()> {
    let Some(Request { method, url, body }) = read_request(&mut sock, port).await? else {
        return Ok(());
    };
    let body = body.as_slice();
    let issuer = format!("http://127.0.0.1:{port}");
    modes
        .lock()
        .unwrap()
        .seen
        .push(format!("{method} {}", url.path()));

    match (method.as_str(), url.path()) {
        ("GET", "/.well-known/openid-configuration") => {
            let mode = modes.lock().unwrap().discovery.clone();
            let mut doc = json!({
                "issuer": issuer,
                "authorization_endpoint": format!("{issuer}/authorize"),
                "token_endpoint": format!("{issuer}/token"),
                "device_authorization_endpoint": format!("{issuer}/device"),
                "end_session_endpoint": format!("{issuer}/logout"),
                "response_types_supported": ["code"],
                "code_challenge_methods_supported": ["S256"],
            });
            match mode {
                Discovery::Good => {}
                Discovery::With(fields) => merge(&mut doc, fields),
                Discovery::Huge(size) => {
                    doc["padding"] = Value::String("x".repeat(size));
                }
            }
            respond(
                &mut sock,
                200,
                "application/json",
                doc.to_string().as_bytes(),
                Length::Honest,
            )
            .await
        }
        ("GET", "/authorize") => {
            // A user agent that signs in at once: back to the redirect URI with a code.
            let q = |k: &str| {
                url.query_pairs()
                    .find(|(n, _)| n == k)
                    .map(|(_, v)| v.into_owned())
                    .unwrap_or_default()
            };
            modes.lock().unwrap().nonce = Some(q("nonce"));
            let mut back = Url::parse(&q("redirect_uri")).expect("redirect_uri");
            back.query_pairs_mut()
                .append_pair("code", "hostile-code")
                .append_pair("state", &q("state"));
            let head = format!("HTTP/1.1 302 Found\r\nLocation: {back}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
            sock.write_all(head.as_bytes()).await
        }
        ("POST", "/device") => {
            let doc = json!({
                "device_code": format!("{SECRET}-device"), "user_code": "HOSTILE1",
                "verification_uri": format!("{issuer}/device-page"),
                "expires_in": u64::MAX / 2, "interval": 1,
            });
            respond(
                &mut sock,
                200,
                "application/json",
                doc.to_string().as_bytes(),
                Length::Honest,
            )
            .await
        }
        ("POST", "/token") => {
            let form: Vec<(String, String)> =
                url::form_urlencoded::parse(body).into_owned().collect();
            let client = form
                .iter()
                .find(|(k, _)| k == "client_id")
                .map(|(_, v)| v.clone())
                .unwrap_or_default();
            let (mode, nonce) = {
                let m = modes.lock().unwrap();
                (m.token.clone(), m.nonce.clone())
            };
            match mode {
                Token::Good(fields) => {
                    let mut doc = good_token_response(&issuer, &client, nonce.as_deref());
                    merge(&mut doc, fields);
                    respond(
                        &mut sock,
                        200,
                        "application/json",
                        doc.to_string().as_bytes(),
                        Length::Honest,
                    )
                    .await
                }
                Token::Raw {
                    status,
                    content_type,
                    body,
                    content_length,
                } => respond(&mut sock, status, content_type, &body, content_length).await,
                Token::DripBody => {
                    let head = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 100000\r\nConnection: close\r\n\r\n";
                    sock.write_all(head.as_bytes()).await?;
                    drip(
                        &mut sock,
                        format!("{{\"access_token\":\"{SECRET}").as_bytes(),
                    )
                    .await
                }
                Token::DripHead => {
                    drip(
                        &mut sock,
                        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n",
                    )
                    .await
                }
                Token::Silent => {
                    tokio::time::sleep(NEVER_HANG).await;
                    Ok(())
                }
            }
        }
        _ => respond(&mut sock, 404, "text/plain", b"not here", Length::Honest).await,
    }
}

/// One byte per second, for at most a minute (bounded even if nobody hangs up).
async fn drip(sock: &mut TcpStream, bytes: &[u8]) -> std::io::Result<()> {
    for b in bytes.iter().cycle().take(60) {
        sock.write_all(std::slice::from_ref(b)).await?;
        sock.flush().await?;
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    Ok(())
}

fn merge(doc: &mut Value, fields: Value) {
    if let (Some(doc), Value::Object(fields)) = (doc.as_object_mut(), fields) {
        for (k, v) in fields {
            if v.is_null() {
                doc.remove(&k);
            } else {
                doc.insert(k, v);
            }
        }
    }
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// An unsigned but well-formed ID token (Tessera does not check the signature of an ID
/// token that came straight from the token endpoint; it checks these claims).
fn id_token(issuer: &str, client: &str, nonce: Option<&str>) -> String {
    let mut claims = json!({
        "iss": issuer, "aud": client, "sub": "mallory-sub", "exp": now() + 3600, "iat": now(),
        "preferred_username": "mallory@hostile.example", "name": "Mallory",
    });
    if let Some(n) = nonce {
        claims["nonce"] = Value::String(n.to_string());
    }
    format!(
        "{}.{}.",
        b64(br#"{"alg":"none","typ":"JWT"}"#),
        b64(claims.to_string().as_bytes())
    )
}

fn good_token_response(issuer: &str, client: &str, nonce: Option<&str>) -> Value {
    json!({
        "token_type": "Bearer",
        "access_token": format!("good-access-token-{}", now()),
        "refresh_token": "good-refresh-token",
        "expires_in": 3600,
        "scope": "api.read openid profile offline_access",
        "id_token": id_token(issuer, client, nonce),
    })
}

struct World {
    idp: Hostile,
    store: Arc<SqliteStore>,
    _home: tempfile::TempDir,
}

impl World {
    async fn new() -> World {
        let idp = Hostile::start().await;
        let home = tempfile::tempdir().unwrap();
        let store = Arc::new(
            SqliteStore::open(&home.path().join("store.db"), Arc::new(PlaintextCipher))
                .expect("store opens"),
        );
        World {
            idp,
            store,
            _home: home,
        }
    }

    /// A fresh application (so discovery runs again) on the shared store.
    fn app(&self) -> Arc<PublicClientApplication> {
        let authority = Authority::oidc(&self.idp.issuer()).expect("loopback issuer");
        let http = ReqwestClient::new(&HttpConfig {
            timeout: TIMEOUT,
            ..Default::default()
        });
        Arc::new(PublicClientApplication::new(
            ClientConfig {
                client_id: CLIENT.into(),
                authority,
                redirect_uri: Url::parse(REDIRECT).unwrap(),
            },
            Deps {
                http: Arc::new(http),
                store: self.store.clone(),
                clock: Arc::new(SystemClock),
                entropy: Arc::new(OsEntropy),
            },
        ))
    }

    /// Everything the store holds for the test client: accounts, access, refresh and ID tokens.
    fn snapshot(&self) -> String {
        let accounts = self.store.accounts().unwrap();
        let mut out = format!("{accounts:?}");
        for a in &accounts {
            let envs = vec![a.environment.clone()];
            let q = CredentialQuery {
                home_account_id: &a.home_account_id,
                environments: &envs,
                client_id: CLIENT,
                realm: None,
            };
            for at in self.store.access_tokens(&q).unwrap() {
                out.push_str(&format!(
                    "|AT {} {} {} {}",
                    at.target,
                    at.expires_on,
                    at.refresh_on.unwrap_or_default(),
                    at.secret.secret()
                ));
            }
            for rt in self.store.refresh_tokens(&q, None).unwrap() {
                out.push_str(&format!("|RT {} {}", rt.client_id, rt.secret.secret()));
            }
            if let Some(idt) = self.store.id_token(&q).unwrap() {
                out.push_str(&format!("|IDT {}", idt.secret.secret()));
            }
        }
        out
    }

    /// The first, good sign-in: an account, an access token and a refresh token cached.
    async fn signed_in(&self) -> Account {
        self.idp.token(Token::Good(json!({})));
        let result = sign_in(&self.app()).await.expect("the good sign-in works");
        assert_eq!(result.account.username, "mallory@hostile.example");
        assert!(
            self.snapshot().contains("|RT "),
            "a refresh token is cached"
        );
        result.account
    }
}

/// Sign in through the hostile provider's authorize endpoint, as a browser would.
async fn sign_in(app: &PublicClientApplication) -> tessera_core::Result<AuthResult> {
    let flow = app
        .start_interactive(InteractiveParams {
            scopes: ScopeSet::parse("api.read"),
            ..Default::default()
        })
        .await?;
    let browser = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let response = browser
        .get(flow.authorize_url().clone())
        .send()
        .await
        .expect("authorize answers");
    assert_eq!(response.status().as_u16(), 302);
    let location = response.headers()["location"].to_str().unwrap().to_string();
    app.finish_interactive(flow, &Url::parse(&location).unwrap())
        .await
}

/// Run `f` on its own task: a panic in the engine fails with the case's name, a hang
/// with a timeout, instead of taking the test down some other way.
async fn guarded<T: Send + 'static>(
    case: &str,
    f: impl std::future::Future<Output = tessera_core::Result<T>> + Send + 'static,
) -> (tessera_core::Result<T>, Duration) {
    let started = Instant::now();
    match tokio::time::timeout(NEVER_HANG, tokio::spawn(f)).await {
        Ok(Ok(result)) => (result, started.elapsed()),
        Ok(Err(join)) => panic!("{case}: the engine panicked: {join}"),
        Err(_) => panic!("{case}: the engine hung for {NEVER_HANG:?}"),
    }
}

/// A hostile token response, met twice: redeeming a new sign-in's code and redeeming
/// the cached refresh token. Both must fail with a clear error and change nothing.
async fn expect_failure(
    w: &World,
    account: &Account,
    case: &str,
    mode: Token,
    check: impl Fn(&Error) -> bool,
) -> Vec<Duration> {
    let before = w.snapshot();
    w.idp.token(mode);
    let mut times = Vec::new();

    let app = w.app();
    let (result, took) = guarded(case, async move { sign_in(&app).await }).await;
    times.push(took);
    let e = result
        .err()
        .unwrap_or_else(|| panic!("{case}: a hostile code redemption succeeded"));
    assert!(check(&e), "{case} (sign-in): unexpected error {e:?}");
    assert_clear(case, &e);

    let app = w.app();
    let account = account.clone();
    let forced = SilentOptions {
        force_refresh: true,
        ..Default::default()
    };
    let (result, took) = guarded(case, async move {
        app.acquire_token_silent(&ScopeSet::parse("api.read"), &account, &forced)
            .await
    })
    .await;
    times.push(took);
    let e = result
        .err()
        .unwrap_or_else(|| panic!("{case}: a hostile refresh succeeded"));
    assert!(check(&e), "{case} (refresh): unexpected error {e:?}");
    assert_clear(case, &e);

    assert_eq!(w.snapshot(), before, "{case}: the store changed");
    times
}

/// A message a user can read: not empty, not a wall of the provider's bytes, no secret.
fn assert_clear(case: &str, e: &Error) {
    let shown = e.to_string();
    assert!(!shown.trim().is_empty(), "{case}: empty message");
    assert!(
        shown.len() < 500,
        "{case}: the message is {} bytes long: {shown:.200}",
        shown.len()
    );
    assert!(
        !shown.contains(SECRET) && !format!("{e:?}").contains(SECRET),
        "{case}: the error repeats a token: {shown}"
    );
    assert!(
        matches!(e.exit_code(), 4),
        "{case}: a provider problem is exit code 4, got {} for {shown}",
        e.exit_code()
    );
}

/// What a case expects of the error.
type ErrorCheck = Box<dyn Fn(&Error) -> bool>;

fn transport(e: &Error) -> bool {
    matches!(e, Error::Transport(_))
}

fn bad_response(e: &Error) -> bool {
    matches!(e, Error::BadResponse { .. })
}

fn raw(
    status: u16,
    content_type: &'static str,
    body: impl Into<Vec<u8>>,
    content_length: Length,
) -> Token {
    Token::Raw {
        status,
        content_type,
        body: body.into(),
        content_length,
    }
}

/// `{"access_token":"<secret>xxxx...` of `size` bytes.
fn huge_json(size: usize) -> Vec<u8> {
    let mut body = format!("{{\"token_type\":\"Bearer\",\"access_token\":\"{SECRET}").into_bytes();
    body.resize(size - 2, b'x');
    body.extend_from_slice(b"\"}");
    body
}

#[tokio::test]
async fn huge_bodies_are_refused_whatever_the_content_length_says() {
    let w = World::new().await;
    let account = w.signed_in().await;
    let too_big =
        |e: &Error| matches!(e, Error::Transport(t) if t.to_string().contains("larger than 4 MiB"));

    expect_failure(
        &w,
        &account,
        "5 MiB, honest length",
        raw(200, "application/json", huge_json(5 * MIB), Length::Honest),
        too_big,
    )
    .await;
    expect_failure(
        &w,
        &account,
        "5 MiB, no length",
        raw(200, "application/json", huge_json(5 * MIB), Length::None),
        too_big,
    )
    .await;
    expect_failure(
        &w,
        &account,
        "5 MiB sent, 10 GiB promised",
        raw(
            200,
            "application/json",
            huge_json(5 * MIB),
            Length::Lying(10 << 30),
        ),
        too_big,
    )
    .await;
    // A length smaller than the body: the client reads what was promised, which is not a
    // whole document.
    expect_failure(
        &w,
        &account,
        "5 MiB sent, 40 bytes promised",
        raw(
            200,
            "application/json",
            huge_json(5 * MIB),
            Length::Lying(40),
        ),
        bad_response,
    )
    .await;
    // A length larger than the body, then the connection closes: a truncated response.
    expect_failure(
        &w,
        &account,
        "1 KiB sent, 1 MiB promised",
        raw(
            200,
            "application/json",
            huge_json(1024),
            Length::Lying(MIB as u64),
        ),
        transport,
    )
    .await;
    // A 1 MiB header line: refused while reading the head, before any body.
    let huge_header: &'static str =
        format!("application/json\r\nX-Padding: {}", "x".repeat(MIB)).leak();
    expect_failure(
        &w,
        &account,
        "a 1 MiB header",
        raw(200, huge_header, "{}", Length::Honest),
        transport,
    )
    .await;
}

#[tokio::test]
async fn malformed_token_responses_are_clear_errors() {
    let w = World::new().await;
    let account = w.signed_in().await;
    let json_body = |v: Value| raw(200, "application/json", v.to_string(), Length::Honest);
    let cases: Vec<(&str, Token)> = vec![
        (
            "100k nested arrays",
            raw(200, "application/json", "[".repeat(100_000), Length::Honest),
        ),
        (
            "100k nested arrays inside a field",
            raw(
                200,
                "application/json",
                format!(
                    "{{\"access_token\":\"{SECRET}\",\"token_type\":\"Bearer\",\"scope\":{}",
                    "[".repeat(100_000)
                ),
                Length::Honest,
            ),
        ),
        (
            "expires_in is an object",
            json_body(json!({"access_token": SECRET, "token_type": "Bearer", "expires_in": {}})),
        ),
        (
            "access_token is a number",
            json_body(json!({"access_token": 5, "token_type": "Bearer", "refresh_token": SECRET})),
        ),
        (
            "token_type is an array",
            json_body(json!({"access_token": SECRET, "token_type": ["Bearer"]})),
        ),
        (
            "id_token is a number",
            json_body(json!({"access_token": SECRET, "token_type": "Bearer", "id_token": 1})),
        ),
        (
            "no access_token",
            json_body(json!({"token_type": "Bearer", "refresh_token": SECRET, "expires_in": 3600})),
        ),
        ("an empty object", json_body(json!({}))),
        ("a JSON string", json_body(json!("a string, not an object"))),
        ("null", raw(200, "application/json", "null", Length::Honest)),
        (
            "NUL bytes and garbage",
            raw(
                200,
                "application/json",
                b"\0\0\0\xff\xfe\x00garbage\x01\x02{".to_vec(),
                Length::Honest,
            ),
        ),
        (
            "an empty 200",
            raw(200, "application/json", "", Length::Honest),
        ),
        (
            "an HTML page with 200",
            raw(
                200,
                "text/html",
                "<!doctype html><html><body><h1>Sign in</h1><form>...</form></body></html>",
                Length::Honest,
            ),
        ),
        (
            "an HTML 502",
            raw(
                502,
                "text/html",
                "<html><body>Bad gateway</body></html>",
                Length::Honest,
            ),
        ),
        (
            "a 400 that is not an OAuth error",
            raw(
                400,
                "application/json",
                json!({"error": 5, "message": "nope"}).to_string(),
                Length::Honest,
            ),
        ),
        (
            "an invalid status line code",
            raw(999, "application/json", "{}", Length::Honest),
        ),
    ];
    for (case, mode) in cases {
        expect_failure(&w, &account, case, mode, bad_response).await;
    }
    let header_garbage = raw(
        200,
        "application/json\r\nX-Injected: \0\u{7f}",
        "{}",
        Length::Honest,
    );
    expect_failure(
        &w,
        &account,
        "control bytes in a header",
        header_garbage,
        |e| bad_response(e) || transport(e),
    )
    .await;
}

#[tokio::test]
async fn wrong_id_tokens_are_refused_and_nothing_is_cached() {
    let w = World::new().await;
    let account = w.signed_in().await;
    let issuer = w.idp.issuer();
    let validation = |e: &Error| matches!(e, Error::Validation(_));
    // A new sign-in checks the nonce; the refresh only issuer, audience and expiry, so
    // each case breaks one of those (the nonce one on its own, sign-in only).
    let cases = [
        (
            "ID token of another issuer",
            json!({"id_token": id_token("http://127.0.0.1:1", CLIENT, None)}),
        ),
        (
            "ID token for another client",
            json!({"id_token": id_token(&issuer, "someone-else", None)}),
        ),
        ("ID token that is not a JWT", json!({"id_token": SECRET})),
    ];
    for (case, fields) in cases {
        expect_failure(&w, &account, case, Token::Good(fields), validation).await;
    }
    let before = w.snapshot();
    w.idp.token(Token::Good(
        json!({"id_token": id_token(&issuer, CLIENT, Some("not-the-nonce"))}),
    ));
    let e = sign_in(&w.app()).await.unwrap_err();
    assert!(e.to_string().contains("nonce"), "{e}");
    assert_eq!(w.snapshot(), before);
}

#[tokio::test]
async fn a_slow_drip_ends_at_the_timeout() {
    let w = World::new().await;
    let account = w.signed_in().await;
    let timed_out = |e: &Error| matches!(e, Error::Transport(t) if t.to_string().contains("did not answer in time"));
    for (case, mode) in [
        ("body one byte a second", Token::DripBody),
        ("headers one byte a second", Token::DripHead),
        ("no answer at all", Token::Silent),
    ] {
        for took in expect_failure(&w, &account, case, mode, timed_out).await {
            assert!(
                took >= TIMEOUT - Duration::from_millis(200),
                "{case}: gave up after {took:?}, before the timeout"
            );
            assert!(
                took < TIMEOUT + Duration::from_secs(3),
                "{case}: took {took:?} with a {TIMEOUT:?} timeout"
            );
        }
    }
}

#[tokio::test]
async fn absurd_lifetimes_do_not_crash_the_engine() {
    // Found by the `app_token` fuzz target: `now + expires_in` overflowed (a panic in
    // debug builds, a token expired in 1970 in release).
    let w = World::new().await;
    w.idp.token(Token::Good(
        json!({"expires_in": i64::MAX, "ext_expires_in": i64::MAX, "refresh_in": i64::MAX}),
    ));
    let app = w.app();
    let (result, _) = guarded("expires_in = i64::MAX", async move { sign_in(&app).await }).await;
    let r = result.expect("a huge lifetime is a long-lived token, not an error");
    assert!(
        r.expires_on > now() + 3600 && r.refresh_on.unwrap() > now(),
        "{r:?}"
    );
    let account = r.account.clone();
    // Served from the cache, still valid.
    let app = w.app();
    let (cached, _) = guarded("silent after a huge lifetime", async move {
        app.acquire_token_silent(
            &ScopeSet::parse("api.read"),
            &account,
            &SilentOptions::default(),
        )
        .await
    })
    .await;
    assert_eq!(
        cached.unwrap().access_token.secret(),
        r.access_token.secret()
    );

    // Negative and string lifetimes: the token is already expired, nothing panics.
    for (case, fields) in [
        (
            "expires_in = i64::MIN",
            json!({"expires_in": i64::MIN, "refresh_in": i64::MIN}),
        ),
        ("expires_in = -1e300", json!({"expires_in": -1e300})),
        (
            "expires_in = \"99999999999999999999\"",
            json!({"expires_in": "99999999999999999999"}),
        ),
    ] {
        w.idp.token(Token::Good(fields));
        let app = w.app();
        let (result, _) = guarded(case, async move { sign_in(&app).await }).await;
        if let Err(e) = result {
            assert_clear(case, &e);
        }
    }

    // A device code that "expires" at the end of time.
    let app = w.app();
    let (flow, _) = guarded("device expires_in = u64::MAX / 2", async move {
        app.initiate_device_flow(&ScopeSet::parse("api.read")).await
    })
    .await;
    assert_eq!(flow.expect("a device flow").expires_at, i64::MAX);
}

#[tokio::test]
async fn hostile_discovery_documents_are_refused() {
    let w = World::new().await;
    let account = w.signed_in().await;
    let before = w.snapshot();
    w.idp.token(Token::Good(json!({})));
    let issuer = w.idp.issuer();
    let validation = |needle: &'static str| move |e: &Error| matches!(e, Error::Validation(m) if m.contains(needle));
    let cases: Vec<(&str, Discovery, ErrorCheck)> = vec![
        (
            "issuer of another host",
            Discovery::With(json!({"issuer": "https://evil.example"})),
            Box::new(validation("evil.example")),
        ),
        (
            "issuer with another path",
            Discovery::With(json!({"issuer": format!("{issuer}/other")})),
            Box::new(validation("identical")),
        ),
        (
            "no issuer",
            Discovery::With(json!({"issuer": null})),
            Box::new(bad_response),
        ),
        (
            "http token endpoint off loopback",
            Discovery::With(json!({"token_endpoint": "http://idp.evil.example/token"})),
            Box::new(validation("https")),
        ),
        (
            "http authorize endpoint off loopback",
            Discovery::With(json!({"authorization_endpoint": "http://evil.example/authorize"})),
            Box::new(validation("https")),
        ),
        (
            "http device endpoint off loopback",
            Discovery::With(json!({"device_authorization_endpoint": "http://evil.example/device"})),
            Box::new(validation("https")),
        ),
        (
            "credentials in an endpoint",
            Discovery::With(json!({"token_endpoint": "https://user:pw@idp.example/token"})),
            Box::new(validation("credentials")),
        ),
        (
            "javascript: endpoint",
            Discovery::With(json!({"end_session_endpoint": "javascript:alert(1)"})),
            Box::new(|e: &Error| matches!(e, Error::Validation(_) | Error::BadResponse { .. })),
        ),
        (
            "endpoint that is not a URL",
            Discovery::With(json!({"token_endpoint": "not a url"})),
            Box::new(bad_response),
        ),
        (
            "a 10 MB document",
            Discovery::Huge(10_000_000),
            Box::new(
                |e: &Error| matches!(e, Error::Transport(t) if t.to_string().contains("larger than 4 MiB")),
            ),
        ),
    ];
    for (case, mode, check) in cases {
        w.idp.discovery(mode);
        let app = w.app();
        let (result, _) = guarded(case, async move {
            app.start_interactive(InteractiveParams::default())
                .await
                .map(|_| ())
        })
        .await;
        let e = result.expect_err(case);
        assert!(check(&e), "{case}: unexpected error {e:?}");
        assert_clear(case, &e);

        // A silent request that needs the provider fails the same way, store untouched.
        let app = w.app();
        let a = account.clone();
        let forced = SilentOptions {
            force_refresh: true,
            ..Default::default()
        };
        let (result, _) = guarded(case, async move {
            app.acquire_token_silent(&ScopeSet::parse("api.read"), &a, &forced)
                .await
        })
        .await;
        let e = result.expect_err(case);
        assert!(check(&e), "{case} (silent): unexpected error {e:?}");
        assert_eq!(w.snapshot(), before, "{case}: the store changed");
    }
    // The token endpoint of a refused provider is never called.
    let token_calls = w
        .idp
        .seen()
        .iter()
        .filter(|s| s.ends_with("/token"))
        .count();
    assert_eq!(
        token_calls,
        1,
        "only the good sign-in reached the token endpoint: {:?}",
        w.idp.seen()
    );
}
