//! Interop with the real MSAL Python 1.39 and msal-extensions 1.3.1 (the venv
//! `tests/msal-python/.venv`, made by `scripts/setup`) through one shared MSAL token cache
//! file: Tessera's `MsalFileStore` on one side, MSAL Python's `SerializableTokenCache` /
//! msal-extensions' `PersistedTokenCache` on the other, both signing in against the same
//! real provider (oidc-provider over https with a throwaway CA, issuer
//! `https://127.0.0.1:PORT/tessera`: MSAL Python accepts only https authorities, and its
//! `oidc_authority` needs a path segment).
//!
//! What MSAL Python writes for that authority (checked below): `environment` is the host
//! without port (`127.0.0.1`), `realm` the first path segment of the *token endpoint*
//! (`tessera`), `home_account_id` and `local_account_id` the ID token's `sub`,
//! `authority_type` `MSSTS`. Tessera's `Authority::environment()` and `realm()` give the
//! same for this issuer.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use sha2::{Digest, Sha256};
use tessera_core::app::{
    AuthResult, ClientConfig, Deps, InteractiveParams, PublicClientApplication, SilentOptions,
    TokenSource,
};
use tessera_core::authority::Authority;
use tessera_core::cache::msal_file::MsalFileStore;
use tessera_core::cache::transfer::{export_msal, import_msal};
use tessera_core::cache::{
    AccessTokenEntry, AccountEntry, MsalCacheDocument, PlaintextCipher, RefreshTokenEntry,
    SqliteStore, TokenStore, TokenWrite,
};
use tessera_core::env::{Clock, OsEntropy, SystemClock};
use tessera_core::http::{HttpConfig, ReqwestClient};
use tessera_core::scopes::ScopeSet;
use tessera_core::secret::{AccessToken, RefreshToken};
use tessera_tests::oidc_provider::{self, OidcProvider, ScriptedBrowser};
use tessera_tests::tls::TestCa;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;
use url::Url;

const CLIENT: &str = oidc_provider::JWT_CLIENT_ID;
const ISSUER_PATH: &str = "/tessera";
const PYTHON_TIMEOUT: Duration = Duration::from_secs(120);

fn msal_python_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("msal-python")
}

fn python() -> PathBuf {
    let p = msal_python_dir().join(".venv/bin/python");
    assert!(
        p.is_file(),
        "MSAL Python is not installed ({} is missing): run scripts/setup",
        p.display()
    );
    p
}

fn sha256_hex(s: &str) -> String {
    Sha256::digest(s.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn api() -> ScopeSet {
    ScopeSet::parse("api:read")
}

fn read_doc(path: &Path) -> MsalCacheDocument {
    std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .parse()
        .unwrap()
}

/// The document as JSON with every section's entries sorted by key.
fn sorted_json(doc: &MsalCacheDocument) -> Value {
    let mut out = serde_json::Map::new();
    for (name, section) in doc.to_value().as_object().unwrap() {
        let mut entries: Vec<_> = section.as_object().unwrap().iter().collect();
        entries.sort_by(|a, b| a.0.cmp(b.0));
        if !entries.is_empty() {
            let m = entries
                .into_iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            out.insert(name.clone(), Value::Object(m));
        }
    }
    Value::Object(out)
}

/// How many token requests the provider has answered.
fn token_requests(p: &OidcProvider) -> usize {
    p.logs().matches("POST /token -> ").count()
}

/// MSAL Python's persistence: its documented plain-file recipe, or msal-extensions.
#[derive(Clone, Copy)]
enum Persistence {
    Plain,
    Extensions,
}

impl Persistence {
    fn arg(self) -> &'static str {
        match self {
            Persistence::Plain => "plain",
            Persistence::Extensions => "extensions",
        }
    }
}

fn python_command(issuer: &str, ca: Option<&Path>, cache: &Path, p: Persistence) -> Command {
    let mut cmd = Command::new(python());
    cmd.arg(msal_python_dir().join("msal_helper.py"))
        .args(["--issuer", issuer, "--client-id", CLIENT])
        .arg("--cache")
        .arg(cache)
        .args(["--persistence", p.arg()])
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .env("NO_PROXY", "127.0.0.1,localhost")
        .env("no_proxy", "127.0.0.1,localhost")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    if let Some(ca) = ca {
        cmd.env("REQUESTS_CA_BUNDLE", ca);
    }
    cmd
}

/// Runs the helper to the end; returns its JSON lines and its stderr (panics, with its
/// stderr, if it failed).
async fn run_python(mut cmd: Command) -> (Vec<Value>, String) {
    let out = tokio::time::timeout(PYTHON_TIMEOUT, cmd.output())
        .await
        .expect("the MSAL Python helper finishes")
        .expect("the MSAL Python helper runs");
    let lines: Vec<Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    assert!(
        out.status.success() && !lines.is_empty(),
        "the MSAL Python helper failed ({}); stderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    (lines, String::from_utf8_lossy(&out.stderr).into_owned())
}

/// One provider test at a time: each starts Node (RSA key generation) and several
/// Python processes, which on a small shared machine can exceed the provider's start
/// timeout when they all run at once.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

struct Interop {
    ca: TestCa,
    provider: OidcProvider,
    dir: tempfile::TempDir,
    _turn: tokio::sync::MutexGuard<'static, ()>,
}

impl Interop {
    async fn start() -> Interop {
        python();
        let turn = ONE_AT_A_TIME.lock().await;
        let ca = TestCa::generate().expect("a test CA");
        let mut args = ca.provider_args();
        args.extend(["--issuer-path".to_string(), ISSUER_PATH.to_string()]);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let provider = OidcProvider::start_with_args(&args)
            .await
            .expect("oidc-provider starts (run scripts/setup if node_modules is missing)");
        assert!(provider.issuer_str().starts_with("https://127.0.0.1:"));
        Interop {
            ca,
            provider,
            dir: tempfile::tempdir().unwrap(),
            _turn: turn,
        }
    }

    /// Where Azure CLI keeps its cache, under a temporary home.
    fn cache(&self) -> PathBuf {
        self.dir.path().join(".azure/msal_token_cache.json")
    }

    fn python(&self, cache: &Path, p: Persistence, args: &[&str]) -> Command {
        let mut cmd = python_command(
            &self.provider.issuer_str(),
            Some(&self.ca.ca_file()),
            cache,
            p,
        );
        cmd.args(args);
        cmd
    }

    /// The helper's last line.
    async fn py(&self, cache: &Path, p: Persistence, args: &[&str]) -> Value {
        run_python(self.python(cache, p, args))
            .await
            .0
            .pop()
            .unwrap()
    }

    /// MSAL Python's device code flow, approved through the provider's pages as `login`.
    async fn python_device_login(&self, cache: &Path, p: Persistence, login: &str) -> Value {
        let mut child = self
            .python(cache, p, &["device-login", "--scopes", "api:read"])
            .spawn()
            .expect("the MSAL Python helper runs");
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let first = tokio::time::timeout(PYTHON_TIMEOUT, lines.next_line())
            .await
            .expect("MSAL Python starts the device flow")
            .unwrap();
        let flow: Value = match first.as_deref().map(serde_json::from_str::<Value>) {
            Some(Ok(v)) if v["event"] == "device_flow" => v,
            other => {
                let out = child.wait_with_output().await.unwrap();
                panic!(
                    "no device flow from MSAL Python: {other:?}; stderr:\n{}",
                    String::from_utf8_lossy(&out.stderr)
                );
            }
        };
        let uri = Url::parse(flow["verification_uri"].as_str().unwrap()).unwrap();
        let code = flow["user_code"].as_str().unwrap();
        assert!(
            uri.as_str().starts_with(&self.provider.issuer_str()),
            "{uri}"
        );
        self.browser()
            .approve_device(&uri, code, login)
            .await
            .expect("the provider's device pages work");
        let result = tokio::time::timeout(PYTHON_TIMEOUT, lines.next_line())
            .await
            .expect("MSAL Python finishes the device flow")
            .unwrap()
            .and_then(|l| serde_json::from_str::<Value>(&l).ok());
        let out = child.wait_with_output().await.unwrap();
        match result {
            Some(r) if r["ok"] == true && out.status.success() => r,
            other => panic!(
                "MSAL Python's device flow failed: {other:?}; stderr:\n{}",
                String::from_utf8_lossy(&out.stderr)
            ),
        }
    }

    fn browser(&self) -> ScriptedBrowser {
        ScriptedBrowser::trusting(&self.ca.ca_file()).unwrap()
    }

    fn authority(&self) -> Authority {
        Authority::oidc(&self.provider.issuer_str()).unwrap()
    }

    /// Tessera on the MSAL file, trusting the test CA (what `SSL_CERT_FILE` does).
    fn tessera(&self, cache: &Path) -> PublicClientApplication {
        let http = ReqwestClient::new(&HttpConfig {
            extra_ca_file: Some(self.ca.ca_file()),
            ..Default::default()
        });
        PublicClientApplication::new(
            ClientConfig {
                client_id: CLIENT.into(),
                authority: self.authority(),
                redirect_uri: Url::parse(oidc_provider::REDIRECT_URI).unwrap(),
            },
            Deps {
                http: Arc::new(http),
                store: Arc::new(MsalFileStore::open(cache).unwrap()),
                clock: Arc::new(SystemClock),
                entropy: Arc::new(OsEntropy),
            },
        )
    }

    async fn tessera_sign_in(&self, app: &PublicClientApplication, login: &str) -> AuthResult {
        let flow = app
            .start_interactive(InteractiveParams {
                scopes: api(),
                ..Default::default()
            })
            .await
            .unwrap();
        let redirected = self
            .browser()
            .sign_in(flow.authorize_url(), login)
            .await
            .expect("the provider's sign-in pages work");
        app.finish_interactive(flow, &redirected).await.unwrap()
    }
}

fn silent_ok(v: &Value) -> (&str, &str) {
    assert_eq!(
        v["ok"], true,
        "MSAL Python's acquire_token_silent failed: {v}"
    );
    (
        v["token_source"].as_str().unwrap(),
        v["access_token_sha256"].as_str().unwrap(),
    )
}

fn usernames(v: &Value) -> Vec<String> {
    assert_eq!(v["event"], "accounts", "{v}");
    v["accounts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["username"].as_str().unwrap_or_default().to_string())
        .collect()
}

#[tokio::test]
async fn msal_python_signs_in_and_tessera_uses_and_refreshes_its_tokens() {
    let t = Interop::start().await;
    let cache = t.cache();
    let signed_in = t
        .python_device_login(&cache, Persistence::Extensions, "alice")
        .await;
    let msal_at = signed_in["access_token_sha256"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(signed_in["has_refresh_token"], true);

    // What MSAL Python wrote for this authority, and that Tessera derives the same.
    let doc = read_doc(&cache);
    let accounts: Vec<&AccountEntry> = doc.accounts.iter().map(|(_, a)| a).collect();
    assert_eq!(accounts.len(), 1);
    let a = accounts[0];
    assert_eq!(
        (
            a.home_account_id.as_str(),
            a.environment.as_str(),
            a.realm.as_str()
        ),
        ("alice", "127.0.0.1", "tessera")
    );
    assert_eq!(
        (a.username.as_str(), a.local_account_id.as_str()),
        ("alice", "alice")
    );
    assert_eq!(a.authority_type, "MSSTS");
    assert_eq!(
        a.account_source.as_deref(),
        Some("urn:ietf:params:oauth:grant-type:device_code")
    );
    let (_, at) = doc.access_tokens.iter().next().unwrap();
    assert_eq!(
        (
            at.environment.as_str(),
            at.realm.as_str(),
            at.client_id.as_str()
        ),
        ("127.0.0.1", "tessera", CLIENT)
    );
    let (_, idt) = doc.id_tokens.iter().next().unwrap();
    assert_eq!(
        (idt.environment.as_str(), idt.realm.as_str()),
        ("127.0.0.1", "tessera")
    );
    let (rt_key, rt) = doc.refresh_tokens.iter().next().unwrap();
    let rt_key = rt_key.to_string();
    let msal_rt = rt.secret.secret().to_string();
    assert_eq!(t.authority().environment(), a.environment);
    assert_eq!(t.authority().realm(), a.realm);

    // Tessera lists the account and serves MSAL's access token without asking the provider.
    let app = t.tessera(&cache);
    let accounts = app.get_accounts().await.unwrap();
    assert_eq!(accounts.len(), 1, "{accounts:?}");
    assert_eq!(
        (
            accounts[0].username.as_str(),
            accounts[0].home_account_id.as_str()
        ),
        ("alice", "alice")
    );
    let before = token_requests(&t.provider);
    let cached = app
        .acquire_token_silent(&api(), &accounts[0], &SilentOptions::default())
        .await
        .unwrap();
    assert_eq!(cached.token_source, TokenSource::Cache);
    assert_eq!(sha256_hex(cached.access_token.secret()), msal_at);
    assert_eq!(
        token_requests(&t.provider),
        before,
        "no token request for a cached token"
    );

    // Tessera refreshes with MSAL's refresh token; the rotated one goes into MSAL's entry.
    let forced = SilentOptions {
        force_refresh: true,
        ..Default::default()
    };
    let refreshed = app
        .acquire_token_silent(&api(), &accounts[0], &forced)
        .await
        .unwrap();
    assert_eq!(refreshed.token_source, TokenSource::IdentityProvider);
    assert_ne!(sha256_hex(refreshed.access_token.secret()), msal_at);
    let doc = read_doc(&cache);
    let rotated = doc
        .refresh_tokens
        .get(&rt_key)
        .expect("MSAL's refresh token entry stays");
    assert_ne!(
        rotated.secret.secret().as_str(),
        msal_rt,
        "rotated in place"
    );
    assert_eq!(doc.refresh_tokens.len(), 1);

    // MSAL Python now gets Tessera's token from the cache, and refreshes with the
    // rotated refresh token (oidc-provider refuses a used one).
    let py = t
        .py(
            &cache,
            Persistence::Extensions,
            &["silent", "--username", "alice", "--scopes", "api:read"],
        )
        .await;
    assert_eq!(
        silent_ok(&py),
        (
            "cache",
            sha256_hex(refreshed.access_token.secret()).as_str()
        )
    );
    let py = t
        .py(
            &cache,
            Persistence::Extensions,
            &[
                "silent",
                "--username",
                "alice",
                "--scopes",
                "api:read",
                "--force-refresh",
            ],
        )
        .await;
    let (source, python_at) = silent_ok(&py);
    assert_eq!(source, "identity_provider");
    let cached = app
        .acquire_token_silent(&api(), &accounts[0], &SilentOptions::default())
        .await
        .unwrap();
    assert_eq!(cached.token_source, TokenSource::Cache);
    assert_eq!(
        sha256_hex(cached.access_token.secret()),
        python_at,
        "MSAL's new token"
    );

    // MSAL Python signs out: Tessera no longer sees the account.
    let removed = t
        .py(
            &cache,
            Persistence::Extensions,
            &["remove", "--username", "alice"],
        )
        .await;
    assert_eq!(removed["removed"], 1);
    assert!(app.get_accounts().await.unwrap().is_empty());
    assert!(!MsalFileStore::open(&cache).unwrap().lock_path().exists());
}

#[tokio::test]
async fn tessera_signs_in_and_msal_python_uses_its_tokens_until_tessera_signs_out() {
    let t = Interop::start().await;
    let cache = t.cache();
    let app = t.tessera(&cache);
    let first = t.tessera_sign_in(&app, "bob").await;

    // Written in MSAL's schema with the same environment and realm MSAL would use.
    let doc = read_doc(&cache);
    let (_, a) = doc.accounts.iter().next().unwrap();
    assert_eq!(
        (a.environment.as_str(), a.realm.as_str()),
        ("127.0.0.1", "tessera")
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&cache).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
    }

    // Plain SerializableTokenCache (MSAL's documented recipe) and msal-extensions both
    // find the account and Tessera's access token.
    for p in [Persistence::Plain, Persistence::Extensions] {
        let listed = t.py(&cache, p, &["accounts"]).await;
        assert_eq!(usernames(&listed), ["bob"]);
        assert_eq!(listed["accounts"][0]["environment"], "127.0.0.1");
        assert_eq!(listed["accounts"][0]["realm"], "tessera");
        let py = t
            .py(
                &cache,
                p,
                &["silent", "--username", "bob", "--scopes", "api:read"],
            )
            .await;
        assert_eq!(
            silent_ok(&py),
            ("cache", sha256_hex(first.access_token.secret()).as_str())
        );
    }

    // MSAL Python refreshes with Tessera's refresh token; Tessera then serves MSAL's token.
    let py = t
        .py(
            &cache,
            Persistence::Extensions,
            &[
                "silent",
                "--username",
                "bob",
                "--scopes",
                "api:read",
                "--force-refresh",
            ],
        )
        .await;
    let (source, python_at) = silent_ok(&py);
    assert_eq!(source, "identity_provider");
    let cached = app
        .acquire_token_silent(&api(), &first.account, &SilentOptions::default())
        .await
        .unwrap();
    assert_eq!(
        (
            cached.token_source,
            sha256_hex(cached.access_token.secret())
        ),
        (TokenSource::Cache, python_at.to_string())
    );

    // Tessera signs out: MSAL Python sees no account and gets no token.
    let out = app.remove_account(&first.account).await.unwrap();
    assert!(out.removed >= 4, "{}", out.removed);
    let listed = t.py(&cache, Persistence::Extensions, &["accounts"]).await;
    assert!(usernames(&listed).is_empty(), "{listed}");
    let py = t
        .py(
            &cache,
            Persistence::Plain,
            &["silent", "--username", "bob", "--scopes", "api:read"],
        )
        .await;
    assert_eq!(py["ok"], false, "{py}");
    let doc = read_doc(&cache);
    assert!(
        doc.refresh_tokens.is_empty() && doc.access_tokens.is_empty() && doc.id_tokens.is_empty()
    );
}

fn tessera_write(store: &MsalFileStore, home: &str) {
    let now = SystemClock.now();
    store
        .write(TokenWrite {
            account: Some(AccountEntry {
                home_account_id: home.into(),
                environment: "login.example.test".into(),
                realm: "tessera".into(),
                local_account_id: home.into(),
                username: home.into(),
                authority_type: "MSSTS".into(),
                account_source: Some("authorization_code".into()),
                name: None,
                extra: Default::default(),
            }),
            access_token: Some(AccessTokenEntry {
                home_account_id: home.into(),
                environment: "login.example.test".into(),
                client_id: CLIENT.into(),
                realm: "tessera".into(),
                target: "api:read".into(),
                secret: AccessToken::new(format!("at-{home}")),
                token_type: "Bearer".into(),
                cached_at: now,
                expires_on: now + 3600,
                extended_expires_on: Some(now + 3600),
                refresh_on: None,
                extra: Default::default(),
            }),
            refresh_token: Some(RefreshTokenEntry {
                home_account_id: home.into(),
                environment: "login.example.test".into(),
                client_id: CLIENT.into(),
                target: "api:read".into(),
                secret: RefreshToken::new(format!("rt-{home}")),
                family_id: None,
                last_modification_time: Some(now),
                extra: Default::default(),
            }),
            ..Default::default()
        })
        .unwrap();
}

#[tokio::test]
async fn tessera_and_msal_extensions_writing_the_same_file_at_once_lose_nothing() {
    python();
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("msal_token_cache.json");
    // No provider needed: the helper adds synthetic token responses, as an MSAL app does
    // after each sign-in (5 locked writes each), one every 50 ms.
    //
    // The pace matters: msal-extensions polls for the lock file every 250 ms and, after
    // 5 s without getting it, goes on with flock alone, which no longer excludes the
    // next holder (between two Python processes just as with Tessera). Writers that keep
    // the lock busy almost all the time for 5 s (two Python loops without pauses do)
    // make msal-extensions lose entries by itself.
    let issuer = "https://login.example.test/tessera";
    const PYTHON_ROUNDS: usize = 20;
    const TESSERA_ROUNDS: usize = 40;
    let pythons: Vec<_> = ["py1", "py2"]
        .iter()
        .map(|prefix| {
            let mut cmd = python_command(issuer, None, &cache, Persistence::Extensions);
            cmd.args([
                "add-loop",
                "--count",
                &PYTHON_ROUNDS.to_string(),
                "--prefix",
                prefix,
                "--sleep",
                "0.05",
            ]);
            tokio::spawn(run_python(cmd))
        })
        .collect();
    // Tessera writes (and reads) until both Python writers are done, at least
    // TESSERA_ROUNDS times, noting how many Python accounts it saw each time.
    let pythons_done = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let tessera = {
        let cache = cache.clone();
        let pythons_done = Arc::clone(&pythons_done);
        std::thread::spawn(move || {
            let store = MsalFileStore::open(&cache).unwrap();
            let mut seen = Vec::new();
            let mut i = 0;
            while i < TESSERA_ROUNDS || !pythons_done.load(std::sync::atomic::Ordering::SeqCst) {
                tessera_write(&store, &format!("rs-{i}"));
                let py = store
                    .accounts()
                    .unwrap()
                    .iter()
                    .filter(|a| a.home_account_id.starts_with("py"))
                    .count();
                seen.push(py);
                i += 1;
                std::thread::sleep(Duration::from_millis(20 + (i as u64 * 17) % 40));
            }
            (i, seen)
        })
    };
    let mut python_stderr = String::new();
    for p in pythons {
        let (out, stderr) = p.await.unwrap();
        assert_eq!(out.last().unwrap()["count"], PYTHON_ROUNDS, "{out:?}");
        python_stderr.push_str(&stderr);
    }
    pythons_done.store(true, std::sync::atomic::Ordering::SeqCst);
    let (tessera_rounds, seen) = tessera.join().unwrap();
    let interleaved = seen
        .iter()
        .filter(|&&n| n > 0 && n < 2 * PYTHON_ROUNDS)
        .count();
    assert!(
        interleaved >= 5,
        "the writers did not overlap (Python accounts seen after each Tessera write: {seen:?})"
    );

    let doc = read_doc(&cache);
    let accounts: Vec<&str> = doc
        .accounts
        .iter()
        .map(|(_, e)| e.home_account_id.as_str())
        .collect();
    let ats: Vec<&str> = doc
        .access_tokens
        .iter()
        .map(|(_, e)| e.home_account_id.as_str())
        .collect();
    let rts: Vec<&str> = doc
        .refresh_tokens
        .iter()
        .map(|(_, e)| e.home_account_id.as_str())
        .collect();
    let idts: Vec<&str> = doc
        .id_tokens
        .iter()
        .map(|(_, e)| e.home_account_id.as_str())
        .collect();
    let mut missing = Vec::new();
    for prefix in ["py1", "py2"] {
        for i in 0..PYTHON_ROUNDS {
            let home = format!("{prefix}-{i}");
            for (kind, section) in [
                ("Account", &accounts),
                ("AccessToken", &ats),
                ("RefreshToken", &rts),
                ("IdToken", &idts),
            ] {
                if !section.contains(&home.as_str()) {
                    missing.push(format!("{kind} {home}"));
                }
            }
        }
    }
    for i in 0..tessera_rounds {
        let home = format!("rs-{i}");
        for (kind, section) in [
            ("Account", &accounts),
            ("AccessToken", &ats),
            ("RefreshToken", &rts),
        ] {
            if !section.contains(&home.as_str()) {
                missing.push(format!("{kind} {home}"));
            }
        }
    }
    assert!(
        missing.is_empty(),
        "lost {} entries: {missing:?}\nMSAL Python's stderr (\"failed to create lock file\": \
         msal-extensions gave up waiting and went on without the lock file):\n{python_stderr}",
        missing.len()
    );
    assert_eq!(doc.accounts.len(), 2 * PYTHON_ROUNDS + tessera_rounds);
    assert!(!dir.path().join("msal_token_cache.json.lockfile").exists());
}

#[tokio::test]
async fn import_and_export_round_trip_what_msal_python_and_tessera_wrote() {
    let t = Interop::start().await;
    let cache = t.cache();
    t.python_device_login(&cache, Persistence::Plain, "carol")
        .await;
    let app = t.tessera(&cache);
    let dave = t.tessera_sign_in(&app, "dave").await;
    let original = read_doc(&cache);
    assert_eq!(original.accounts.len(), 2);

    // Into Tessera's own store and back out to a new MSAL file.
    let home = tempfile::tempdir().unwrap();
    let store =
        SqliteStore::open(&home.path().join("store.db"), Arc::new(PlaintextCipher)).unwrap();
    let imported = import_msal(&cache, &store).unwrap();
    assert!(imported.skipped.is_empty(), "{imported}");
    assert_eq!(
        imported.copied.total(),
        original.accounts.len()
            + original.access_tokens.len()
            + original.refresh_tokens.len()
            + original.id_tokens.len()
            + original.app_metadata.len()
    );
    assert_eq!(store.accounts().unwrap().len(), 2);
    let exported_path = home.path().join("exported/msal_token_cache.json");
    let exported = export_msal(&store, &exported_path, &[CLIENT]).unwrap();
    assert_eq!(exported.copied, imported.copied);
    assert_eq!(
        sorted_json(&read_doc(&exported_path)),
        sorted_json(&original),
        "every entry, field for field"
    );

    // MSAL Python uses the exported file as it used the original.
    let listed = t
        .py(&exported_path, Persistence::Extensions, &["accounts"])
        .await;
    let mut names = usernames(&listed);
    names.sort();
    assert_eq!(names, ["carol", "dave"]);
    let py = t
        .py(
            &exported_path,
            Persistence::Extensions,
            &["silent", "--username", "dave", "--scopes", "api:read"],
        )
        .await;
    assert_eq!(
        silent_ok(&py),
        ("cache", sha256_hex(dave.access_token.secret()).as_str())
    );
}
