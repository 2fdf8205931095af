//! A host that claims to be Microsoft's cloud, and a victim with something to steal.
//!
//! [`Attacker`]: a server on 127.0.0.1 that answers Entra instance discovery with aliases
//! naming Microsoft's hosts, serves OpenID metadata whose endpoints are itself, answers
//! every POST with `invalid_grant`, and logs every request it receives. The victim
//! ([`write_victim_cache`]): an MSAL Python cache holding a Microsoft work account
//! (`login.microsoftonline.com`, Azure CLI's family refresh token, an ID token and a Graph
//! access token valid for a day). Used by tests/it/exfiltration.rs (the CLI) and the
//! desktop app's command tests.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use base64::Engine;
use serde_json::{json, Value};
use tokio::net::TcpListener;

use crate::raw_http::{read_request, respond, Length};

/// Azure CLI's client id: the victim's refresh token belongs to it (and to family "1").
pub const AZURE_CLI: &str = "04b07795-8ddb-461a-bbee-02f9e1bf7b46";
/// Another client id: reaches the victim's refresh token only as a family token.
pub const OTHER_CLIENT: &str = "0f0f0f0f-1111-4222-8333-444444444444";
/// The victim's user name.
pub const VICTIM: &str = "victim@contoso.example";
/// The victim's tenant.
pub const TENANT: &str = "72f988bf-0000-4000-8000-00000000c0de";
const UID: &str = "0b1ec7ed-0000-4000-8000-0000000000a1";
/// The victim's cloud.
pub const MICROSOFT: &str = "login.microsoftonline.com";
/// The scope the victim's cached access token is for.
pub const GRAPH: &str = "https://graph.microsoft.com/.default";
pub const REFRESH_TOKEN: &str = "victim-family-refresh-token-0123456789";
pub const ACCESS_TOKEN: &str = "victim-graph-access-token-0123456789";

/// The victim's `home_account_id` (`uid.utid`).
pub fn home_account_id() -> String {
    format!("{UID}.{TENANT}")
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

/// The victim's ID token (always the same string).
pub fn victim_id_token() -> String {
    let claims = json!({
        "iss": format!("https://{MICROSOFT}/{TENANT}/v2.0"), "aud": AZURE_CLI, "tid": TENANT,
        "oid": UID, "sub": "victim-sub", "preferred_username": VICTIM, "name": "Victim",
        "iat": 1_700_000_000, "exp": 4_000_000_000u64,
    });
    format!(
        "{}.{}.victim-signature",
        b64(br#"{"alg":"RS256","typ":"JWT"}"#),
        b64(claims.to_string().as_bytes())
    )
}

/// The victim's MSAL Python cache (Azure CLI's `msal_token_cache.json`), as MSAL writes
/// it, written to `dir/msal_token_cache.json`.
pub fn write_victim_cache(dir: &Path) -> PathBuf {
    let hid = home_account_id();
    let rt_target =
        "https://management.core.windows.net//user_impersonation offline_access openid profile";
    let doc = json!({
        "AccessToken": {
            format!("{hid}-{MICROSOFT}-accesstoken-{AZURE_CLI}-{TENANT}-{GRAPH}"): {
                "credential_type": "AccessToken", "secret": ACCESS_TOKEN,
                "home_account_id": hid, "environment": MICROSOFT, "client_id": AZURE_CLI,
                "target": GRAPH, "realm": TENANT, "token_type": "Bearer",
                "cached_at": now().to_string(), "expires_on": (now() + 86_400).to_string(),
                "extended_expires_on": (now() + 86_400).to_string(),
            }
        },
        "RefreshToken": {
            format!("{hid}-{MICROSOFT}-refreshtoken-{AZURE_CLI}--{rt_target}"): {
                "credential_type": "RefreshToken", "secret": REFRESH_TOKEN,
                "home_account_id": hid, "environment": MICROSOFT, "client_id": AZURE_CLI,
                "target": rt_target, "family_id": "1",
                "last_modification_time": now().to_string(),
            }
        },
        "IdToken": {
            format!("{hid}-{MICROSOFT}-idtoken-{AZURE_CLI}-{TENANT}-"): {
                "credential_type": "IdToken", "secret": victim_id_token(),
                "home_account_id": hid, "environment": MICROSOFT, "realm": TENANT,
                "client_id": AZURE_CLI,
            }
        },
        "Account": {
            format!("{hid}-{MICROSOFT}-{TENANT}"): {
                "home_account_id": hid, "environment": MICROSOFT, "realm": TENANT,
                "local_account_id": UID, "username": VICTIM, "authority_type": "MSSTS",
                "account_source": "authorization_code",
            }
        },
        "AppMetadata": {
            format!("appmetadata-{MICROSOFT}-{AZURE_CLI}"): {
                "client_id": AZURE_CLI, "environment": MICROSOFT, "family_id": "1",
            }
        },
    });
    let path = dir.join("msal_token_cache.json");
    std::fs::write(&path, serde_json::to_string_pretty(&doc).unwrap()).unwrap();
    path
}

/// The victim's secrets, by name: none may ever reach the attacker.
pub fn victim_secrets() -> Vec<(&'static str, String)> {
    vec![
        ("refresh token", REFRESH_TOKEN.to_string()),
        ("access token", ACCESS_TOKEN.to_string()),
        ("ID token", victim_id_token()),
        ("ID token signature", "victim-signature".to_string()),
    ]
}

/// The attacker's server: every request is logged (request line and body).
pub struct Attacker {
    port: u16,
    log: Arc<Mutex<Vec<String>>>,
    server: tokio::task::JoinHandle<()>,
}

impl Drop for Attacker {
    fn drop(&mut self) {
        self.server.abort();
    }
}

impl Attacker {
    /// Listen on a free port of 127.0.0.1 (the server runs on the current tokio runtime).
    pub async fn start() -> Attacker {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let port = listener.local_addr().unwrap().port();
        let log = Arc::new(Mutex::new(Vec::new()));
        let shared = log.clone();
        let server = tokio::spawn(async move {
            while let Ok((mut sock, _)) = listener.accept().await {
                let log = shared.clone();
                tokio::spawn(async move {
                    let Ok(Some(req)) = read_request(&mut sock, port).await else {
                        return;
                    };
                    log.lock().unwrap().push(format!(
                        "{} {}\n{}",
                        req.method,
                        req.url,
                        String::from_utf8_lossy(&req.body)
                    ));
                    let (status, body) = answer(port, &req.method, req.url.path());
                    let _ = respond(
                        &mut sock,
                        status,
                        "application/json",
                        body.to_string().as_bytes(),
                        Length::Honest,
                    )
                    .await;
                });
            }
        });
        Attacker { port, log, server }
    }

    /// An Entra-style authority on the attacker: `http://127.0.0.1:PORT/tenant`.
    pub fn authority(&self, tenant: &str) -> String {
        format!("http://127.0.0.1:{}/{tenant}", self.port)
    }

    /// Every request received so far: request line and body.
    pub fn log(&self) -> String {
        self.log.lock().unwrap().join("\n")
    }
}

fn answer(port: u16, method: &str, path: &str) -> (u16, Value) {
    let base = format!("http://127.0.0.1:{port}");
    if path.ends_with("/discovery/instance") {
        let aliases = json!([
            "127.0.0.1",
            MICROSOFT,
            "login.windows.net",
            "login.microsoft.com",
            "sts.windows.net"
        ]);
        return (
            200,
            json!({
                "tenant_discovery_endpoint": format!("{base}/common/v2.0/.well-known/openid-configuration"),
                "api-version": "1.1",
                "metadata": [{"preferred_network": MICROSOFT, "preferred_cache": MICROSOFT, "aliases": aliases}],
            }),
        );
    }
    if path.ends_with("/v2.0/.well-known/openid-configuration") {
        return (
            200,
            json!({
                "issuer": format!("{base}/{{tenantid}}/v2.0"),
                "authorization_endpoint": format!("{base}/common/oauth2/v2.0/authorize"),
                "token_endpoint": format!("{base}/common/oauth2/v2.0/token"),
                "device_authorization_endpoint": format!("{base}/common/oauth2/v2.0/devicecode"),
                "response_types_supported": ["code"],
            }),
        );
    }
    if method == "POST" {
        return (
            400,
            json!({"error": "invalid_grant", "error_description": "AADSTS70000: try again"}),
        );
    }
    (404, json!({"error": "not_found"}))
}
