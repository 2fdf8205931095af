//! Smoke tests of the support library against the real oidc-provider: these
//! check that the provider behaves as the conformance suites rely on.

use std::collections::HashMap;
use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use serde_json::Value;
use sha2::{Digest, Sha256};
use tessera_tests::oidc_provider::{
    scripted_device_approval, scripted_sign_in, OidcProvider, ScriptedBrowser, API_RESOURCE,
    JWT_CLIENT_ID, OPAQUE_CLIENT_ID, REDIRECT_URI,
};
use url::Url;

struct Pkce {
    verifier: String,
    challenge: String,
}

fn pkce() -> Pkce {
    let verifier = URL_SAFE_NO_PAD.encode(rand::random::<[u8; 32]>());
    let challenge = URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()));
    Pkce {
        verifier,
        challenge,
    }
}

async fn provider() -> OidcProvider {
    OidcProvider::start().await.expect("oidc-provider starts")
}

async fn discovery(op: &OidcProvider) -> Value {
    let resp = reqwest::get(op.discovery_url()).await.expect("discovery");
    assert_eq!(resp.status(), 200);
    resp.json().await.expect("discovery JSON")
}

fn endpoint(doc: &Value, name: &str) -> Url {
    let s = doc[name]
        .as_str()
        .unwrap_or_else(|| panic!("discovery has no {name}"));
    Url::parse(s).expect("endpoint URL")
}

struct AuthRequest<'a> {
    client_id: &'a str,
    redirect_uri: &'a str,
    scope: &'a str,
    resource: Option<&'a str>,
    prompt: Option<&'a str>,
}

impl<'a> AuthRequest<'a> {
    fn new(client_id: &'a str, scope: &'a str) -> Self {
        AuthRequest {
            client_id,
            redirect_uri: REDIRECT_URI,
            scope,
            resource: None,
            prompt: None,
        }
    }

    fn url(&self, doc: &Value, pkce: Option<&Pkce>, state: &str) -> Url {
        let mut url = endpoint(doc, "authorization_endpoint");
        {
            let mut q = url.query_pairs_mut();
            q.append_pair("client_id", self.client_id)
                .append_pair("response_type", "code")
                .append_pair("redirect_uri", self.redirect_uri)
                .append_pair("scope", self.scope)
                .append_pair("state", state);
            if let Some(p) = pkce {
                q.append_pair("code_challenge", &p.challenge)
                    .append_pair("code_challenge_method", "S256");
            }
            if let Some(r) = self.resource {
                q.append_pair("resource", r);
            }
            if let Some(p) = self.prompt {
                q.append_pair("prompt", p);
            }
        }
        url
    }
}

fn query(url: &Url) -> HashMap<String, String> {
    url.query_pairs().into_owned().collect()
}

async fn token_request(doc: &Value, form: &[(&str, &str)]) -> (u16, Value) {
    let resp = reqwest::Client::new()
        .post(endpoint(doc, "token_endpoint"))
        .form(form)
        .send()
        .await
        .expect("token endpoint answers");
    let status = resp.status().as_u16();
    (status, resp.json().await.expect("token endpoint JSON"))
}

async fn redeem(
    doc: &Value,
    client_id: &str,
    redirect: &Url,
    redirect_uri: &str,
    pkce: &Pkce,
) -> Value {
    let params = query(redirect);
    let code = params
        .get("code")
        .unwrap_or_else(|| panic!("no code in redirect, params: {:?}", params.keys()));
    let (status, body) = token_request(
        doc,
        &[
            ("grant_type", "authorization_code"),
            ("client_id", client_id),
            ("code", code),
            ("redirect_uri", redirect_uri),
            ("code_verifier", &pkce.verifier),
        ],
    )
    .await;
    assert_eq!(status, 200, "code redemption failed: {body}");
    body
}

async fn refresh(doc: &Value, client_id: &str, refresh_token: &str) -> (u16, Value) {
    token_request(
        doc,
        &[
            ("grant_type", "refresh_token"),
            ("client_id", client_id),
            ("refresh_token", refresh_token),
        ],
    )
    .await
}

/// The claims of a JWS, panicking if `token` is not a 3-part JWT.
fn jwt_claims(token: &str) -> Value {
    let parts: Vec<&str> = token.split('.').collect();
    assert_eq!(parts.len(), 3, "not a JWT (expected 3 dot-separated parts)");
    let header: Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[0]).expect("header b64")).unwrap();
    assert_eq!(header["alg"], "RS256");
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1]).expect("payload b64"))
        .expect("payload JSON")
}

fn str_of<'v>(body: &'v Value, key: &str) -> &'v str {
    body[key].as_str().unwrap_or_else(|| {
        let keys: Vec<&String> = body
            .as_object()
            .map(|o| o.keys().collect())
            .unwrap_or_default();
        panic!(
            "no string {key} in the response (it has {keys:?}; error: {})",
            body["error"]
        )
    })
}

#[tokio::test]
async fn discovery_names_issuer_device_and_end_session_endpoints() {
    let op = provider().await;
    let doc = discovery(&op).await;
    let issuer = op.issuer_str();
    assert!(issuer.starts_with("http://127.0.0.1:"), "{issuer}");
    assert_eq!(doc["issuer"], issuer.as_str());
    assert_eq!(
        doc["device_authorization_endpoint"],
        format!("{issuer}/device/auth")
    );
    assert_eq!(doc["end_session_endpoint"], format!("{issuer}/session/end"));
    assert!(doc["revocation_endpoint"].is_string());
    assert_eq!(
        doc["code_challenge_methods_supported"],
        serde_json::json!(["S256"])
    );
    let grants = doc["grant_types_supported"].as_array().unwrap();
    for g in [
        "authorization_code",
        "refresh_token",
        "urn:ietf:params:oauth:grant-type:device_code",
    ] {
        assert!(grants.iter().any(|v| v == g), "{g} missing from {grants:?}");
    }
}

#[tokio::test]
async fn jwt_client_gets_jwt_access_token_and_rotating_refresh_token() {
    let op = provider().await;
    let doc = discovery(&op).await;
    let pkce = pkce();
    let mut req = AuthRequest::new(
        JWT_CLIENT_ID,
        "openid profile email offline_access api:read",
    );
    req.resource = Some(API_RESOURCE);
    let redirect = scripted_sign_in(&req.url(&doc, Some(&pkce), "st-1"), "alice")
        .await
        .expect("sign-in");
    assert!(
        redirect.as_str().starts_with(&format!("{REDIRECT_URI}?")),
        "redirect goes to the client: {redirect}"
    );
    assert_eq!(
        query(&redirect).get("state").map(String::as_str),
        Some("st-1")
    );
    assert_eq!(query(&redirect).get("iss"), Some(&op.issuer_str()));

    let tokens = redeem(&doc, JWT_CLIENT_ID, &redirect, REDIRECT_URI, &pkce).await;
    assert_eq!(tokens["token_type"], "Bearer");
    let at = jwt_claims(str_of(&tokens, "access_token"));
    assert_eq!(at["aud"], API_RESOURCE);
    assert_eq!(at["sub"], "alice");
    assert_eq!(at["iss"], op.issuer_str().as_str());
    assert_eq!(at["client_id"], JWT_CLIENT_ID);
    assert_eq!(at["scope"], "api:read");

    let id = jwt_claims(str_of(&tokens, "id_token"));
    assert_eq!(id["sub"], "alice");
    assert_eq!(id["aud"], JWT_CLIENT_ID);
    assert_eq!(id["preferred_username"], "alice");
    assert_eq!(id["email"], "alice@example.test");
    assert!(id["name"].as_str().unwrap().contains("alice"));

    let rt1 = str_of(&tokens, "refresh_token").to_owned();
    let (status, refreshed) = refresh(&doc, JWT_CLIENT_ID, &rt1).await;
    assert_eq!(status, 200, "{refreshed}");
    let rt2 = str_of(&refreshed, "refresh_token").to_owned();
    assert_ne!(rt1, rt2, "refresh token must rotate");
    assert_eq!(
        jwt_claims(str_of(&refreshed, "access_token"))["aud"],
        API_RESOURCE
    );

    // The rotated-out token is consumed: using it again fails.
    let (status, reused) = refresh(&doc, JWT_CLIENT_ID, &rt1).await;
    assert_eq!(status, 400, "{reused}");
    assert_eq!(reused["error"], "invalid_grant");
}

#[tokio::test]
async fn opaque_client_gets_opaque_access_token_for_the_api_without_resource_parameter() {
    let op = provider().await;
    let doc = discovery(&op).await;
    let pkce = pkce();
    // No `resource`: an api:* scope selects the API resource by default.
    let req = AuthRequest::new(OPAQUE_CLIENT_ID, "openid offline_access api:read api:write");
    let redirect = scripted_sign_in(&req.url(&doc, Some(&pkce), "st-2"), "bob@contoso.test")
        .await
        .expect("sign-in");
    let tokens = redeem(&doc, OPAQUE_CLIENT_ID, &redirect, REDIRECT_URI, &pkce).await;
    let at = str_of(&tokens, "access_token");
    assert!(
        !at.contains('.'),
        "opaque access token expected, got a dotted token"
    );
    assert!(at.len() >= 32, "opaque token too short: {} chars", at.len());
    // The response's scope is the access token's: only the API's scopes.
    assert_eq!(tokens["scope"], "api:read api:write");
    assert_eq!(
        jwt_claims(str_of(&tokens, "id_token"))["sub"],
        "bob@contoso.test"
    );

    // Introspection shows what the opaque token is for.
    let resp = reqwest::Client::new()
        .post(endpoint(&doc, "introspection_endpoint"))
        .form(&[("client_id", OPAQUE_CLIENT_ID), ("token", at)])
        .send()
        .await
        .unwrap();
    let info: Value = resp.json().await.unwrap();
    assert_eq!(info["active"], true, "{info}");
    assert_eq!(info["aud"], API_RESOURCE, "{info}");
    assert_eq!(info["sub"], "bob@contoso.test");

    let rt = str_of(&tokens, "refresh_token");
    let (status, refreshed) = refresh(&doc, OPAQUE_CLIENT_ID, rt).await;
    assert_eq!(status, 200, "{refreshed}");
    assert_ne!(str_of(&refreshed, "refresh_token"), rt);
    assert!(!str_of(&refreshed, "access_token").contains('.'));
}

#[tokio::test]
async fn loopback_redirect_with_any_port_is_accepted_and_others_are_not() {
    let op = provider().await;
    let doc = discovery(&op).await;
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    for redirect_uri in [
        format!("http://127.0.0.1:{port}/"),
        format!("http://localhost:{port}"),
        format!(
            "http://127.0.0.1:{}/callback",
            port.wrapping_add(1).max(1024)
        ),
    ] {
        let pkce = pkce();
        let mut req = AuthRequest::new(JWT_CLIENT_ID, "openid offline_access");
        req.redirect_uri = &redirect_uri;
        let redirect = scripted_sign_in(&req.url(&doc, Some(&pkce), "lb"), "carol")
            .await
            .unwrap_or_else(|e| panic!("{redirect_uri} rejected: {e}"));
        let back = redirect.clone();
        let mut base = back.clone();
        base.set_query(None);
        assert_eq!(
            base.as_str().trim_end_matches('/'),
            redirect_uri.trim_end_matches('/')
        );
        let tokens = redeem(&doc, JWT_CLIENT_ID, &redirect, &redirect_uri, &pkce).await;
        assert!(tokens["refresh_token"].is_string());
    }

    for bad in [
        format!("http://127.0.0.1:{port}/elsewhere"),
        format!("http://example.test:{port}/"),
        "https://localhost/callback".to_owned(),
    ] {
        let mut req = AuthRequest::new(JWT_CLIENT_ID, "openid");
        req.redirect_uri = &bad;
        let err = scripted_sign_in(&req.url(&doc, Some(&pkce()), "bad"), "carol")
            .await
            .expect_err(&format!("{bad} must be rejected"));
        assert!(err.contains("redirect_uri"), "{bad}: {err}");
    }
}

#[tokio::test]
async fn pkce_is_required() {
    let op = provider().await;
    let doc = discovery(&op).await;
    let req = AuthRequest::new(JWT_CLIENT_ID, "openid");
    let redirect = scripted_sign_in(&req.url(&doc, None, "np"), "dave")
        .await
        .expect("the provider answers the client with an error");
    let q = query(&redirect);
    assert_eq!(q.get("error").map(String::as_str), Some("invalid_request"));
    assert!(q["error_description"].contains("PKCE"), "{q:?}");
}

#[tokio::test]
async fn offline_access_survives_prompt_login() {
    let op = provider().await;
    let doc = discovery(&op).await;
    let pkce = pkce();
    let mut req = AuthRequest::new(JWT_CLIENT_ID, "openid offline_access");
    req.prompt = Some("login");
    let redirect = scripted_sign_in(&req.url(&doc, Some(&pkce), "pl"), "erin")
        .await
        .expect("sign-in");
    let tokens = redeem(&doc, JWT_CLIENT_ID, &redirect, REDIRECT_URI, &pkce).await;
    assert!(tokens["refresh_token"].is_string(), "{tokens}");
}

#[tokio::test]
async fn single_sign_on_then_rp_initiated_logout_ends_the_session() {
    let op = provider().await;
    let doc = discovery(&op).await;
    let browser = ScriptedBrowser::new().unwrap();
    async fn sign_in_as(browser: &ScriptedBrowser, doc: &Value, login: &str) -> Value {
        let pkce = pkce();
        let req = AuthRequest::new(JWT_CLIENT_ID, "openid");
        let redirect = browser
            .sign_in(&req.url(doc, Some(&pkce), "s"), login)
            .await
            .unwrap();
        redeem(doc, JWT_CLIENT_ID, &redirect, REDIRECT_URI, &pkce).await
    }
    let first = sign_in_as(&browser, &doc, "frank").await;
    assert_eq!(jwt_claims(str_of(&first, "id_token"))["sub"], "frank");

    // Same browser: the provider's session signs frank in again without
    // showing the login form (the login passed now is never typed).
    let second = sign_in_as(&browser, &doc, "not-typed").await;
    assert_eq!(jwt_claims(str_of(&second, "id_token"))["sub"], "frank");

    let mut logout = endpoint(&doc, "end_session_endpoint");
    logout
        .query_pairs_mut()
        .append_pair("id_token_hint", str_of(&second, "id_token"))
        .append_pair("post_logout_redirect_uri", REDIRECT_URI)
        .append_pair("state", "bye");
    let after = browser.sign_out(&logout).await.unwrap().expect("redirect");
    assert!(after.as_str().starts_with(REDIRECT_URI), "{after}");
    assert_eq!(query(&after).get("state").map(String::as_str), Some("bye"));

    // Session gone: the login form is shown again and the new login is used.
    let third = sign_in_as(&browser, &doc, "gwen").await;
    assert_eq!(jwt_claims(str_of(&third, "id_token"))["sub"], "gwen");
}

#[tokio::test]
async fn device_flow_approval_issues_tokens() {
    let op = provider().await;
    let doc = discovery(&op).await;
    let resp = reqwest::Client::new()
        .post(endpoint(&doc, "device_authorization_endpoint"))
        .form(&[
            ("client_id", JWT_CLIENT_ID),
            ("scope", "openid offline_access api:write"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let dev: Value = resp.json().await.unwrap();
    let device_code = str_of(&dev, "device_code");
    let user_code = str_of(&dev, "user_code");
    let verification_uri = Url::parse(str_of(&dev, "verification_uri")).unwrap();
    assert_eq!(
        verification_uri.as_str(),
        format!("{}/device", op.issuer_str())
    );

    let poll = [
        ("grant_type", "urn:ietf:params:oauth:grant-type:device_code"),
        ("client_id", JWT_CLIENT_ID),
        ("device_code", device_code),
    ];
    let (status, pending) = token_request(&doc, &poll).await;
    assert_eq!(status, 400);
    assert_eq!(pending["error"], "authorization_pending");

    let wrong = scripted_device_approval(&verification_uri, "BCDF-GHJK", "gina").await;
    assert!(
        wrong.as_ref().is_err_and(|e| e.contains("incorrect")),
        "a wrong user code must fail: {wrong:?}"
    );

    scripted_device_approval(&verification_uri, user_code, "gina")
        .await
        .expect("device approval");
    // Respect the polling interval (RFC 8628 slow_down otherwise).
    let interval = dev["interval"].as_u64().unwrap_or(5);
    tokio::time::sleep(Duration::from_secs(interval.min(5))).await;
    let (status, tokens) = token_request(&doc, &poll).await;
    assert_eq!(status, 200, "{tokens}");
    let at = jwt_claims(str_of(&tokens, "access_token"));
    assert_eq!(at["aud"], API_RESOURCE);
    assert_eq!(at["sub"], "gina");
    assert!(tokens["refresh_token"].is_string());
}

#[tokio::test]
async fn provider_process_ends_when_dropped_and_when_stdin_closes() {
    let op = provider().await;
    let pid = op.pid();
    assert!(std::path::Path::new(&format!("/proc/{pid}")).exists());
    drop(op);
    assert!(
        !std::path::Path::new(&format!("/proc/{pid}")).exists(),
        "node process {pid} still there after drop"
    );

    // Without the harness: closing stdin alone stops the server.
    let dir = tessera_tests::oidc_provider::provider_dir();
    let mut child = std::process::Command::new("node")
        .args(["server.mjs", "--port", "0"])
        .current_dir(dir)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(child.stdout.take().unwrap()),
        &mut line,
    )
    .unwrap();
    let ready: Value = serde_json::from_str(&line).expect("ready line is JSON");
    assert!(ready["issuer"]
        .as_str()
        .unwrap()
        .starts_with("http://127.0.0.1:"));
    drop(child.stdin.take());
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            assert!(status.success(), "{status}");
            break;
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            panic!("server kept running after its stdin closed");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[tokio::test]
async fn missing_node_modules_error_says_run_setup() {
    let empty = tempfile::tempdir().unwrap();
    let err = OidcProvider::start_from(empty.path(), &[])
        .await
        .expect_err("no node_modules there");
    assert!(err.contains("run scripts/setup"), "{err}");
}

/// A one-shot loopback HTTP listener standing in for an app's redirect
/// listener: answers the first request with `status` and returns its
/// request line.
async fn one_shot_listener(status: &'static str) -> (u16, tokio::task::JoinHandle<String>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let task = tokio::spawn(async move {
        let (mut sock, _) = listener.accept().await.unwrap();
        let mut head = Vec::new();
        let mut buf = [0u8; 1024];
        while !head.windows(4).any(|w| w == b"\r\n\r\n") {
            let n = sock.read(&mut buf).await.unwrap();
            if n == 0 {
                break;
            }
            head.extend_from_slice(&buf[..n]);
        }
        let body = "signed in";
        let response = format!(
            "HTTP/1.1 {status}\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
        sock.write_all(response.as_bytes()).await.unwrap();
        let head = String::from_utf8_lossy(&head).into_owned();
        head.lines().next().unwrap_or_default().to_owned()
    });
    (port, task)
}

async fn run_scripted_browser(args: &[&str]) -> std::process::Output {
    tokio::process::Command::new(env!("CARGO_BIN_EXE_scripted-browser"))
        .args(args)
        .output()
        .await
        .expect("scripted-browser runs")
}

#[tokio::test]
async fn scripted_browser_delivers_the_redirect_to_the_apps_listener() {
    let op = provider().await;
    let doc = discovery(&op).await;
    let (port, listener) = one_shot_listener("200 OK").await;
    let redirect_uri = format!("http://127.0.0.1:{port}/");
    let mut req = AuthRequest::new(OPAQUE_CLIENT_ID, "openid offline_access");
    req.redirect_uri = &redirect_uri;
    let url = req.url(&doc, Some(&pkce()), "sb-1");
    let out = run_scripted_browser(&["--provider", "oidc", "--login", "henry", url.as_str()]).await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "scripted-browser failed: {stderr}");
    assert!(stderr.contains("listener answered 200 OK"), "{stderr}");
    let request_line = listener.await.unwrap();
    assert!(request_line.starts_with("GET /?code="), "{request_line}");
    assert!(request_line.contains("state=sb-1"), "{request_line}");
    // What it prints is for people: no authorization code in it.
    assert!(!stderr.contains("code="), "{stderr}");
}

#[tokio::test]
async fn scripted_browser_fails_when_the_listener_rejects_or_the_url_is_bad() {
    let op = provider().await;
    let doc = discovery(&op).await;
    let (port, listener) = one_shot_listener("400 Bad Request").await;
    let redirect_uri = format!("http://127.0.0.1:{port}/");
    let mut req = AuthRequest::new(JWT_CLIENT_ID, "openid");
    req.redirect_uri = &redirect_uri;
    let url = req.url(&doc, Some(&pkce()), "sb-2");
    let out = run_scripted_browser(&["--provider", "oidc", "--login", "ivy", url.as_str()]).await;
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("400"));
    listener.await.unwrap();

    let out = run_scripted_browser(&["--provider", "oidc", "--login", "ivy", "not a url"]).await;
    assert_eq!(out.status.code(), Some(1));
    let out = run_scripted_browser(&["--provider", "nope", "--login", "ivy", "http://x/"]).await;
    assert_eq!(out.status.code(), Some(2), "bad usage exits 2");
}

#[tokio::test]
async fn access_token_ttl_is_configurable() {
    let op = OidcProvider::start_with_args(&["--access-token-ttl", "7"])
        .await
        .expect("oidc-provider starts");
    let doc = discovery(&op).await;
    let pkce = pkce();
    let req = AuthRequest::new(JWT_CLIENT_ID, "openid api:read");
    let redirect = scripted_sign_in(&req.url(&doc, Some(&pkce), "ttl"), "jack")
        .await
        .unwrap();
    let tokens = redeem(&doc, JWT_CLIENT_ID, &redirect, REDIRECT_URI, &pkce).await;
    assert_eq!(tokens["expires_in"], 7);
    let at = jwt_claims(str_of(&tokens, "access_token"));
    assert_eq!(at["exp"].as_i64().unwrap() - at["iat"].as_i64().unwrap(), 7);
    // No offline_access, no refresh token.
    assert!(tokens.get("refresh_token").is_none());
}

#[tokio::test]
async fn scripted_browser_signs_in_through_the_sandbox() {
    use tessera_sandbox_idp::{SandboxConfig, SANDBOX_CLIENT_ID};
    let sandbox = tessera_sandbox_idp::start(SandboxConfig::default())
        .await
        .expect("sandbox starts");
    let (port, listener) = one_shot_listener("200 OK").await;
    let mut url = Url::parse(&format!(
        "{}/oauth2/v2.0/authorize",
        sandbox.authority("organizations")
    ))
    .unwrap();
    let pkce = pkce();
    url.query_pairs_mut()
        .append_pair("client_id", SANDBOX_CLIENT_ID)
        .append_pair("response_type", "code")
        .append_pair("redirect_uri", &format!("http://localhost:{port}"))
        .append_pair("scope", "openid profile offline_access User.Read")
        .append_pair("state", "sb-3")
        .append_pair("code_challenge", &pkce.challenge)
        .append_pair("code_challenge_method", "S256");
    let out = run_scripted_browser(&[
        "--provider",
        "sandbox",
        "--login",
        "alice@contoso.example",
        url.as_str(),
    ])
    .await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "scripted-browser failed: {stderr}");
    let request_line = listener.await.unwrap();
    assert!(request_line.contains("code="), "{request_line}");
    assert!(request_line.contains("state=sb-3"), "{request_line}");

    // A wrong password is refused by the sandbox, and the browser says so.
    let out = run_scripted_browser(&[
        "--provider",
        "sandbox",
        "--login",
        "alice@contoso.example",
        "--password",
        "wrong",
        url.as_str(),
    ])
    .await;
    assert_eq!(out.status.code(), Some(1));
}
