//! A secret goes only to the cloud that issued it. The attacker: a server on 127.0.0.1
//! that claims, through Entra instance discovery, that Microsoft's hosts are its aliases,
//! serves OpenID metadata whose endpoints are itself, and logs every request. The victim:
//! an MSAL cache holding a Microsoft work account (`login.microsoftonline.com`, Azure
//! CLI's family refresh token, an ID token and a valid Graph access token). The real
//! `tessera-cli`, pointed at the attacker with `--authority` and any client id, must
//! neither list the victim's account nor show its access token, and the attacker must
//! receive none of its secrets: through Tessera's own store after `import-msal`, and
//! through `--msal-cache FILE`.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use base64::Engine;
use serde_json::{json, Value};
use tokio::net::TcpListener;

use crate::cli::{Machine, Run};
use crate::hostile::{read_request, respond, Length};

/// Azure CLI's client id: the victim's refresh token belongs to it (and to family "1").
const AZURE_CLI: &str = "04b07795-8ddb-461a-bbee-02f9e1bf7b46";
/// Another client id: reaches the victim's refresh token only as a family token.
const OTHER_CLIENT: &str = "0f0f0f0f-1111-4222-8333-444444444444";
const VICTIM: &str = "victim@contoso.example";
const TENANT: &str = "72f988bf-0000-4000-8000-00000000c0de";
const UID: &str = "0b1ec7ed-0000-4000-8000-0000000000a1";
const MICROSOFT: &str = "login.microsoftonline.com";
const GRAPH: &str = "https://graph.microsoft.com/.default";
const REFRESH_TOKEN: &str = "victim-family-refresh-token-0123456789";
const ACCESS_TOKEN: &str = "victim-graph-access-token-0123456789";

fn home_account_id() -> String {
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

fn victim_id_token() -> String {
    let claims = json!({
        "iss": format!("https://{MICROSOFT}/{TENANT}/v2.0"), "aud": AZURE_CLI, "tid": TENANT,
        "oid": UID, "sub": "victim-sub", "preferred_username": VICTIM, "name": "Victim",
        "iat": now(), "exp": now() + 3600,
    });
    format!(
        "{}.{}.victim-signature",
        b64(br#"{"alg":"RS256","typ":"JWT"}"#),
        b64(claims.to_string().as_bytes())
    )
}

/// The victim's MSAL Python cache (Azure CLI's `msal_token_cache.json`), as MSAL writes it.
fn write_victim_cache(dir: &Path) -> PathBuf {
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

/// The attacker's server: every request is logged (request line and body).
struct Attacker {
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
    async fn start() -> Attacker {
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

    fn authority(&self, tenant: &str) -> String {
        format!("http://127.0.0.1:{}/{tenant}", self.port)
    }

    fn log(&self) -> String {
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

/// Everything the attacker might try with `client`, on the store `store_args` selects.
async fn attack(m: &Machine, attacker: &Attacker, client: &str, store_args: &[&str]) {
    let target = |tenant: &str, rest: &[&str]| -> Vec<String> {
        let mut v: Vec<String> = store_args.iter().map(|s| s.to_string()).collect();
        v.extend(
            [
                "--allow-plaintext",
                "--authority",
                &attacker.authority(tenant),
                "--client-id",
                client,
            ]
            .map(String::from),
        );
        v.extend(rest.iter().map(|s| s.to_string()));
        v
    };
    let run = |args: Vec<String>| async move {
        m.run(&args.iter().map(String::as_str).collect::<Vec<_>>())
            .await
    };

    // Ask for a token: by name, as the only account, and forcing a refresh; at the
    // victim's tenant too, where the cached access token's realm matches.
    let mut runs = Vec::new();
    for tenant in ["common", TENANT] {
        for rest in [
            &["token", "--account", VICTIM, "--scope", GRAPH][..],
            &["token", "--scope", GRAPH, "--json"],
            &[
                "token",
                "--account",
                VICTIM,
                "--scope",
                GRAPH,
                "--force-refresh",
            ],
        ] {
            runs.push((
                format!("{tenant} {rest:?}"),
                run(target(tenant, rest)).await,
            ));
        }
    }
    let listed = run(target("common", &["accounts", "--json"])).await;

    let seen = attacker.log();
    for (what, secret) in [
        ("refresh token", REFRESH_TOKEN.to_string()),
        ("access token", ACCESS_TOKEN.to_string()),
        ("ID token", victim_id_token()),
        ("ID token signature", "victim-signature".to_string()),
    ] {
        assert!(
            !seen.contains(&secret),
            "{client}: the attacker received the victim's {what}:\n{seen}"
        );
    }
    for (what, run) in runs {
        assert!(
            !run.stdout.contains(ACCESS_TOKEN),
            "{client} {what}: the victim's access token was shown"
        );
        let run: Run = run.exit(3);
        assert!(
            run.stderr.contains("No signed-in account") || run.stderr.contains("No account"),
            "{client} {what}: a clear error\n{}",
            run.stderr
        );
    }
    assert_eq!(
        listed.ok().json(),
        json!([]),
        "{client}: the attacker's target lists no account of Microsoft's cloud"
    );
}

/// (a) Tessera's own store, after `import-msal`.
async fn attack_the_own_store(client: &str) {
    let attacker = Attacker::start().await;
    let m = Machine::new();
    let file = write_victim_cache(m.home.path());
    let import = m
        .run(&["--allow-plaintext", "import-msal", file.to_str().unwrap()])
        .await
        .ok();
    assert!(
        import
            .stderr
            .contains("copied 1 accounts, 1 refresh tokens"),
        "{}",
        import.stderr
    );
    attack(&m, &attacker, client, &[]).await;
    // The victim's own cloud still sees the account.
    let mine = m
        .run(&[
            "--allow-plaintext",
            "--profile",
            "Microsoft",
            "accounts",
            "--json",
        ])
        .await
        .ok()
        .json();
    assert_eq!(mine[0]["username"], VICTIM, "{mine}");
}

/// (b) The MSAL cache file in place (`--msal-cache FILE`).
async fn attack_the_msal_cache_file(client: &str) {
    let attacker = Attacker::start().await;
    let m = Machine::new();
    let file = write_victim_cache(m.home.path());
    let before = std::fs::read_to_string(&file).unwrap();
    attack(
        &m,
        &attacker,
        client,
        &["--msal-cache", file.to_str().unwrap()],
    )
    .await;
    assert_eq!(
        std::fs::read_to_string(&file).unwrap(),
        before,
        "{client}: the victim's cache file is unchanged"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn own_store_with_the_refresh_tokens_own_client() {
    attack_the_own_store(AZURE_CLI).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn own_store_with_another_client_of_the_family() {
    attack_the_own_store(OTHER_CLIENT).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn msal_cache_file_with_the_refresh_tokens_own_client() {
    attack_the_msal_cache_file(AZURE_CLI).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn msal_cache_file_with_another_client_of_the_family() {
    attack_the_msal_cache_file(OTHER_CLIENT).await;
}
