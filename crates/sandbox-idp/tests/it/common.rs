//! Helpers shared by the integration tests: a plain OAuth client written against the wire
//! format (not against the sandbox's internals).

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use rand::RngCore;
use serde_json::Value;
use sha2::{Digest, Sha256};
use tessera_sandbox_idp::{start, Faults, SandboxConfig, SandboxHandle, SANDBOX_CLIENT_ID};
use url::Url;

pub const REDIRECT: &str = "http://localhost:53117/callback";
pub const DEFAULT_SCOPE: &str = "openid profile offline_access User.Read";
pub const AZURE_CLI: &str = "04b07795-8ddb-461a-bbee-02f9e1bf7b46";
pub const AZURE_PS: &str = "1950a258-227b-4e31-a9cf-717495945fc2";

pub async fn sandbox() -> SandboxHandle {
    start(SandboxConfig::default())
        .await
        .expect("sandbox starts")
}

pub async fn sandbox_with(faults: Faults) -> SandboxHandle {
    start(SandboxConfig {
        faults,
        ..SandboxConfig::default()
    })
    .await
    .expect("sandbox starts")
}

pub fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

pub struct Pkce {
    pub verifier: String,
    pub challenge: String,
}

pub fn pkce() -> Pkce {
    let mut b = [0u8; 32];
    rand::thread_rng().fill_bytes(&mut b);
    let verifier = URL_SAFE_NO_PAD.encode(b);
    let challenge = URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()));
    Pkce {
        verifier,
        challenge,
    }
}

pub struct AuthRequest {
    pub tenant: String,
    pub client_id: String,
    pub scope: String,
    pub state: String,
    pub nonce: String,
    pub pkce: Pkce,
    pub extra: Vec<(String, String)>,
}

impl AuthRequest {
    pub fn new(tenant: &str) -> AuthRequest {
        AuthRequest {
            tenant: tenant.into(),
            client_id: SANDBOX_CLIENT_ID.into(),
            scope: DEFAULT_SCOPE.into(),
            state: format!("state-{}", rand::random::<u32>()),
            nonce: format!("nonce-{}", rand::random::<u32>()),
            pkce: pkce(),
            extra: Vec::new(),
        }
    }

    pub fn client(mut self, c: &str) -> Self {
        self.client_id = c.into();
        self
    }

    pub fn scope(mut self, s: &str) -> Self {
        self.scope = s.into();
        self
    }

    pub fn with(mut self, k: &str, v: &str) -> Self {
        self.extra.push((k.into(), v.into()));
        self
    }

    pub fn url(&self, idp: &SandboxHandle) -> Url {
        let mut u = Url::parse(&format!(
            "{}/oauth2/v2.0/authorize",
            idp.authority(&self.tenant)
        ))
        .unwrap();
        u.query_pairs_mut()
            .append_pair("client_id", &self.client_id)
            .append_pair("response_type", "code")
            .append_pair("redirect_uri", REDIRECT)
            .append_pair("scope", &self.scope)
            .append_pair("state", &self.state)
            .append_pair("nonce", &self.nonce)
            .append_pair("code_challenge", &self.pkce.challenge)
            .append_pair("code_challenge_method", "S256")
            .extend_pairs(self.extra.iter());
        u
    }
}

/// The value of a query parameter of a redirect URL.
pub fn query(u: &Url, name: &str) -> Option<String> {
    u.query_pairs()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

/// POSTs a form to the tenant's token endpoint; returns status and JSON (or Null).
pub async fn token(idp: &SandboxHandle, tenant: &str, form: &[(&str, &str)]) -> (u16, Value) {
    let (status, _, body) = token_raw(idp, tenant, form).await;
    (status, serde_json::from_str(&body).unwrap_or(Value::Null))
}

pub async fn token_raw(
    idp: &SandboxHandle,
    tenant: &str,
    form: &[(&str, &str)],
) -> (u16, reqwest::header::HeaderMap, String) {
    let resp = http()
        .post(format!("{}/oauth2/v2.0/token", idp.authority(tenant)))
        .form(form)
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    (status, headers, resp.text().await.unwrap())
}

pub async fn redeem(idp: &SandboxHandle, req: &AuthRequest, code: &str) -> (u16, Value) {
    token(
        idp,
        &req.tenant,
        &[
            ("grant_type", "authorization_code"),
            ("client_id", &req.client_id),
            ("code", code),
            ("redirect_uri", REDIRECT),
            ("code_verifier", &req.pkce.verifier),
            ("scope", &req.scope),
        ],
    )
    .await
}

/// Signs in through the pages and returns the code (panics on failure).
pub async fn sign_in_code(idp: &SandboxHandle, req: &AuthRequest, login: &str) -> String {
    let back = tessera_sandbox_idp::scripted_sign_in(&req.url(idp), login, "tessera")
        .await
        .expect("sign-in succeeds");
    assert!(back.as_str().starts_with(REDIRECT), "{back}");
    assert_eq!(query(&back, "state").as_deref(), Some(req.state.as_str()));
    query(&back, "code").unwrap_or_else(|| panic!("no code in {back}"))
}

/// Signs in and redeems the code; returns the token response.
pub async fn tokens_for(idp: &SandboxHandle, req: &AuthRequest, login: &str) -> Value {
    let code = sign_in_code(idp, req, login).await;
    let (status, body) = redeem(idp, req, &code).await;
    assert_eq!(status, 200, "{body}");
    body
}

pub async fn refresh(idp: &SandboxHandle, client: &str, rt: &str, scope: &str) -> (u16, Value) {
    token(
        idp,
        "common",
        &[
            ("grant_type", "refresh_token"),
            ("client_id", client),
            ("refresh_token", rt),
            ("scope", scope),
        ],
    )
    .await
}

/// Decodes a JWT's claims without verifying.
pub fn claims(jwt: &str) -> Value {
    let payload = jwt.split('.').nth(1).expect("three parts");
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap()
}

pub fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// Asserts an Entra-shaped error with the given `error` and AADSTS code.
pub fn assert_aad_error(status: u16, body: &Value, want_status: u16, error: &str, code: u64) {
    assert_eq!(status, want_status, "{body}");
    assert_eq!(body["error"], error, "{body}");
    assert_eq!(body["error_codes"][0], code, "{body}");
    let desc = body["error_description"].as_str().unwrap();
    assert!(desc.starts_with(&format!("AADSTS{code}: ")), "{desc}");
    assert!(desc.contains("\r\nTrace ID: "), "{desc}");
    assert!(desc.contains("\r\nCorrelation ID: "), "{desc}");
    assert!(desc.contains("\r\nTimestamp: "), "{desc}");
    for k in ["timestamp", "trace_id", "correlation_id", "error_uri"] {
        assert!(body[k].is_string(), "missing {k}: {body}");
    }
}
