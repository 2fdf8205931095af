//! The real `tessera-cli` binary against the sandbox (in-process, on a free port, the
//! built-in Sandbox profile pointed at it with `TESSERA_SANDBOX_URL`) and against
//! oidc-provider (an inline `--issuer` target). Each test has its own `--home`.
//!
//! Finding the binary: `CARGO_BIN_EXE_*` only exists for binaries of this package, so
//! `scripts/test` passes the `tessera-cli` its workspace build made in `TESSERA_CLI_BIN`
//! (also good for a prebuilt or installed binary). Without it, `cli_bin` runs
//! `cargo build -p tessera-cli` once and takes the executable path cargo reports.

use std::process::Stdio;

use std::time::{Duration, Instant};

use serde_json::Value;
use tessera_core::cache::{CredentialQuery, SqliteStore, TokenStore};
use tessera_sandbox_idp::{Faults, SandboxConfig, SandboxHandle, DEMO_PASSWORD};
use tessera_tests::oidc_provider::{OidcProvider, ScriptedBrowser, JWT_CLIENT_ID};
use tessera_tests::redact::assert_no_named_secrets;
use tessera_tests::tls::TestCa;
use tokio::io::{AsyncBufReadExt, BufReader};
use url::Url;

pub(crate) const ALICE: &str = "alice@contoso.example";
pub(crate) const BOB: &str = "bob@contoso.example";
pub(crate) const SANDBOX_CLIENT: &str = "7a1c0de5-7e55-4a11-9c0d-5a4db0c11e01";

use tessera_tests::cli_bin::cli_bin;

#[derive(Debug)]
pub(crate) struct Run {
    pub(crate) code: i32,
    pub(crate) stdout: String,
    pub(crate) stderr: String,
    pub(crate) took: Duration,
}

impl Run {
    pub(crate) fn json(&self) -> Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| {
            panic!(
                "stdout is not JSON ({e}): {}\nstderr: {}",
                self.stdout, self.stderr
            )
        })
    }

    #[track_caller]
    pub(crate) fn ok(self) -> Run {
        assert_eq!(
            self.code, 0,
            "expected success; stderr:\n{}\nstdout:\n{}",
            self.stderr, self.stdout
        );
        self
    }

    #[track_caller]
    pub(crate) fn exit(self, code: i32) -> Run {
        assert_eq!(
            self.code, code,
            "expected exit {code}; stderr:\n{}\nstdout:\n{}",
            self.stderr, self.stdout
        );
        self
    }
}

/// One user's machine: a home folder and the environment the CLI runs with.
pub(crate) struct Machine {
    pub(crate) home: tempfile::TempDir,
    pub(crate) env: Vec<(String, String)>,
    /// Everything the CLI printed, to check for leaked secrets at the end.
    transcript: std::sync::Mutex<String>,
    /// With `TESSERA_IT_AGENT=1` (the suite's second pass): the `tessera-cli agent` each
    /// command that reads or writes tokens goes through, started when first needed.
    agent: Option<tokio::sync::Mutex<Option<tokio::process::Child>>>,
}

/// The commands the agent serves (the rest always open the store).
const SERVED_BY_THE_AGENT: [&str; 6] = [
    "token",
    "accounts",
    "logout",
    "status",
    "git-credential",
    "run",
];

/// Per-call variables that give a command another world than the machine's (another
/// keyring, home or provider): such a command must not reach the machine's agent.
fn changes_the_world(key: &str) -> bool {
    key.starts_with("DBUS")
        || key.starts_with("XDG_")
        || key.starts_with("SSL_")
        || ["HOME", "TESSERA_HOME", "TESSERA_SANDBOX_URL"].contains(&key)
}

impl Machine {
    pub(crate) fn new() -> Machine {
        let home = tessera_tests::home::temp_home();
        // Its own agent socket (no agent runs there unless a test starts one), so that no
        // agent of the machine's user serves these tests.
        let socket = home.path().join("agent.sock").display().to_string();
        Machine {
            home,
            env: vec![
                ("TESSERA_LOG".into(), "debug".into()),
                ("TESSERA_AGENT_SOCKET".into(), socket),
            ],
            transcript: Default::default(),
            agent: (std::env::var("TESSERA_IT_AGENT").as_deref() == Ok("1")).then(Default::default),
        }
    }

    pub(crate) fn for_sandbox(idp: &SandboxHandle) -> Machine {
        let mut m = Machine::new();
        m.env.push((
            "TESSERA_SANDBOX_URL".into(),
            idp.base_url().as_str().trim_end_matches('/').to_owned(),
        ));
        m
    }

    pub(crate) fn command(&self, args: &[&str]) -> tokio::process::Command {
        let mut c = tokio::process::Command::new(cli_bin());
        c.arg("--home").arg(self.home.path()).args(args);
        c.env_remove("TESSERA_HOME")
            .env_remove("TESSERA_BROWSER")
            .env_remove("TESSERA_SANDBOX_URL")
            .env_remove("SSL_CERT_FILE")
            .env_remove("SSL_CERT_DIR");
        c.envs(self.env.iter().map(|(k, v)| (k, v)));
        c.stdin(Stdio::null()).kill_on_drop(true);
        c
    }

    pub(crate) async fn run(&self, args: &[&str]) -> Run {
        self.run_with(args, &[], None).await
    }

    pub(crate) async fn run_with(
        &self,
        args: &[&str],
        env: &[(&str, &str)],
        stdin: Option<&str>,
    ) -> Run {
        let mut c = self.command(args);
        c.envs(env.iter().copied());
        if env.iter().any(|(k, _)| changes_the_world(k)) {
            c.env("TESSERA_AGENT", "0");
        } else {
            self.ensure_agent(args).await;
        }
        c.stdout(Stdio::piped()).stderr(Stdio::piped());
        if stdin.is_some() {
            c.stdin(Stdio::piped());
        }
        let started = Instant::now();
        let mut child = c.spawn().expect("tessera-cli starts");
        if let Some(input) = stdin {
            use tokio::io::AsyncWriteExt;
            let mut pipe = child.stdin.take().unwrap();
            pipe.write_all(input.as_bytes()).await.unwrap();
            drop(pipe);
        }
        let out = tokio::time::timeout(Duration::from_secs(120), child.wait_with_output())
            .await
            .expect("tessera-cli finishes within 2 minutes")
            .unwrap();
        let run = Run {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
            took: started.elapsed(),
        };
        self.record(&run);
        run
    }

    /// In the agent pass: a `tessera-cli agent` for this machine is up before a command
    /// it serves (started again after a store reset stopped it). One that cannot start
    /// (no keyring) is no agent: the command opens the store, as without one.
    async fn ensure_agent(&self, args: &[&str]) {
        let Some(slot) = &self.agent else { return };
        let command = args.iter().find(|a| !a.starts_with('-'));
        if !command.is_some_and(|c| SERVED_BY_THE_AGENT.contains(c)) {
            return;
        }
        let socket = self.home.path().join("agent.sock");
        let mut slot = slot.lock().await;
        if let Some(child) = slot.as_mut() {
            if child.try_wait().ok().flatten().is_none()
                && tokio::net::UnixStream::connect(&socket).await.is_ok()
            {
                return;
            }
        }
        let mut c = self.command(&["agent"]);
        c.stdout(Stdio::null()).stderr(Stdio::null());
        let mut child = c.spawn().expect("tessera-cli agent starts");
        for _ in 0..200 {
            if tokio::net::UnixStream::connect(&socket).await.is_ok() {
                break;
            }
            if child.try_wait().ok().flatten().is_some() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        *slot = Some(child);
    }

    pub(crate) fn record(&self, run: &Run) {
        let mut t = self.transcript.lock().unwrap();
        t.push_str(&run.stderr);
        t.push('\n');
    }

    /// `login --device-code`: read the user code from stderr, approve it with `approve`.
    pub(crate) async fn device_login<F, Fut>(&self, args: &[&str], approve: F) -> Run
    where
        F: FnOnce(Url, String) -> Fut,
        Fut: std::future::Future<Output = Result<(), String>>,
    {
        let mut c = self.command(args);
        c.stdout(Stdio::piped()).stderr(Stdio::piped());
        let started = Instant::now();
        let mut child = c.spawn().expect("tessera-cli starts");
        let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
        let mut stderr = String::new();
        let (uri, code) = loop {
            let line = tokio::time::timeout(Duration::from_secs(30), lines.next_line())
                .await
                .expect("the device code message within 30 s")
                .unwrap()
                .unwrap_or_else(|| panic!("tessera-cli ended before showing a code:\n{stderr}"));
            stderr.push_str(&line);
            stderr.push('\n');
            if let Some(found) = parse_device_message(&line) {
                break found;
            }
        };
        approve(uri, code)
            .await
            .expect("the device code is approved");
        while let Some(line) = tokio::time::timeout(Duration::from_secs(60), lines.next_line())
            .await
            .expect("tessera-cli finishes")
            .unwrap()
        {
            stderr.push_str(&line);
            stderr.push('\n');
        }
        let out = child.wait_with_output().await.unwrap();
        let run = Run {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr,
            took: started.elapsed(),
        };
        self.record(&run);
        run
    }

    pub(crate) fn store(&self) -> SqliteStore {
        // The same open-time decision as the CLI: the key from the real keyring.
        let options = tessera_core::keystore::StoreOptions {
            allow_plaintext: true,
            keystore: None,
        };
        tessera_core::keystore::open_store(&self.home.path().join("store.db"), &options)
            .expect("the store opens")
            .store
    }

    /// Every account, token and secret in the store, to prove a failure changed nothing.
    pub(crate) fn snapshot(&self, client_id: &str) -> String {
        let store = self.store();
        let mut accounts = store.accounts().unwrap();
        accounts.sort_by(|a, b| a.home_account_id.cmp(&b.home_account_id));
        let mut out = format!("{accounts:?}");
        for a in &accounts {
            let envs = vec![a.environment.clone()];
            let q = CredentialQuery {
                home_account_id: &a.home_account_id,
                environments: &envs,
                client_id,
                realm: None,
            };
            for at in store.access_tokens(&q).unwrap() {
                out.push_str(&format!(
                    "|AT {} {} {}",
                    at.target,
                    at.expires_on,
                    at.secret.secret()
                ));
            }
            for rt in store.refresh_tokens(&q, Some("1")).unwrap() {
                out.push_str(&format!("|RT {} {}", rt.client_id, rt.secret.secret()));
            }
        }
        out
    }

    pub(crate) fn refresh_tokens(&self, client_id: &str) -> Vec<String> {
        let store = self.store();
        let mut out = Vec::new();
        for a in store.accounts().unwrap() {
            let envs = vec![a.environment.clone()];
            let q = CredentialQuery {
                home_account_id: &a.home_account_id,
                environments: &envs,
                client_id,
                realm: None,
            };
            out.extend(
                store
                    .refresh_tokens(&q, Some("1"))
                    .unwrap()
                    .into_iter()
                    .map(|rt| rt.secret.secret().to_owned()),
            );
        }
        out
    }

    /// Nothing the CLI wrote to stderr contains one of these secrets.
    pub(crate) fn assert_stderr_clean(&self, secrets: &[(&str, &str)]) {
        assert_no_named_secrets(&self.transcript.lock().unwrap(), secrets);
    }
}

/// `... open the page URL and enter the code CODE ...` (sandbox) or `open URL in a
/// browser and enter the code CODE.` (the engine's wording for providers without one).
fn parse_device_message(line: &str) -> Option<(Url, String)> {
    let words: Vec<&str> = line.split_whitespace().collect();
    let code_at = words.windows(2).position(|w| w[0] == "code")? + 1;
    let code = words.get(code_at)?.trim_end_matches('.').to_owned();
    let uri = words
        .iter()
        .find_map(|w| Url::parse(w.trim_end_matches('.')).ok())?;
    Some((uri, code))
}

pub(crate) async fn sandbox() -> SandboxHandle {
    let faults = Faults {
        device_code_interval_secs: Some(1),
        ..Faults::default()
    };
    tessera_sandbox_idp::start(SandboxConfig {
        port: 0,
        faults,
        ..SandboxConfig::default()
    })
    .await
    .expect("the sandbox starts")
}

pub(crate) fn scripted_browser(provider: &str, login: &str) -> String {
    format!(
        "{} --provider {provider} --login {login}",
        env!("CARGO_BIN_EXE_scripted-browser")
    )
}

pub(crate) async fn device_login_sandbox(m: &Machine, idp: &SandboxHandle, login: &str) -> Run {
    let base = idp.base_url();
    let login = login.to_owned();
    m.device_login(
        &["--profile", "Sandbox", "login", "--device-code"],
        move |_uri, code| async move {
            tessera_sandbox_idp::scripted_device_approval(&base, &code, &login, DEMO_PASSWORD).await
        },
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_device_code_login_token_cache_refresh_decode_and_logout() {
    let idp = sandbox().await;
    let m = Machine::for_sandbox(&idp);

    let login = device_login_sandbox(&m, &idp, ALICE).await.ok();
    assert!(login.stderr.contains("enter the code"), "{}", login.stderr);
    assert!(
        login
            .stderr
            .contains(&format!("Signed in as {ALICE} (Sandbox)")),
        "{}",
        login.stderr
    );
    assert_eq!(login.stdout, "", "login prints nothing on stdout");

    let accounts = m.run(&["accounts", "--json"]).await.ok().json();
    let list = accounts.as_array().unwrap();
    assert_eq!(list.len(), 1, "{accounts}");
    assert_eq!(list[0]["username"], ALICE);
    assert_eq!(list[0]["profile"], "Sandbox");
    assert_eq!(list[0]["environment"], "127.0.0.1");
    let home_account_id = list[0]["home_account_id"].as_str().unwrap().to_owned();
    assert_eq!(
        home_account_id,
        format!(
            "3c5e2f1a-7b4d-4c6e-9f8a-a11ce0000001.{}",
            tessera_sandbox_idp::CONTOSO.id
        )
    );
    let human = m.run(&["accounts"]).await.ok();
    assert!(human.stdout.starts_with("USERNAME"), "{}", human.stdout);
    assert!(
        human.stdout.lines().nth(1).unwrap().starts_with(ALICE),
        "{}",
        human.stdout
    );

    // The bare token: one line, ready for $(...), and a cache hit.
    let bare = m.run(&["token"]).await.ok();
    assert_eq!(bare.stdout.matches('\n').count(), 1);
    let token = bare.stdout.trim_end().to_owned();
    assert!(idp.verify_token(&token).is_ok(), "the sandbox issued it");

    let cached = m.run(&["token", "--account", ALICE, "--json"]).await.ok();
    let j = cached.json();
    assert_eq!(j["token_source"], "cache");
    assert_eq!(j["access_token"], token.as_str());
    assert_eq!(j["token_type"], "Bearer");
    assert_eq!(j["account"]["username"], ALICE);
    assert_eq!(j["account"]["home_account_id"], home_account_id.as_str());
    assert!(
        j["scopes"]
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s.as_str().unwrap().eq_ignore_ascii_case("User.Read")),
        "{j}"
    );
    let expires_on = j["expires_on"].as_i64().unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    assert!(
        expires_on > now + 3000 && expires_on <= now + 3700,
        "expires_on {expires_on}, now {now}"
    );
    eprintln!(
        "token from the cache took {:?} (whole process)",
        cached.took
    );
    assert!(
        cached.took < Duration::from_secs(3),
        "a cache hit is fast: {:?}",
        cached.took
    );

    // By home_account_id too; with --profile the same.
    let by_id = m
        .run(&[
            "--profile",
            "sandbox",
            "token",
            "--account",
            &home_account_id,
        ])
        .await
        .ok();
    assert_eq!(by_id.stdout.trim_end(), token);

    let refreshed = m
        .run(&["token", "--force-refresh", "--json"])
        .await
        .ok()
        .json();
    assert_eq!(refreshed["token_source"], "identity_provider");
    let new_token = refreshed["access_token"].as_str().unwrap().to_owned();
    assert_ne!(new_token, token);
    let after = m.run(&["token", "--json"]).await.ok().json();
    assert_eq!(
        after["access_token"],
        new_token.as_str(),
        "the refreshed token was cached"
    );
    assert_eq!(after["token_source"], "cache");
    // Asking for more validity than the token has left forces a refresh.
    let stricter = m
        .run(&["token", "--min-validity", "7200", "--json"])
        .await
        .ok()
        .json();
    assert_eq!(stricter["token_source"], "identity_provider");

    // decode from stdin: JSON and human.
    let decoded = m
        .run_with(&["decode", "--json"], &[], Some(&new_token))
        .await
        .ok()
        .json();
    assert_eq!(decoded["kind"], "jws");
    assert_eq!(decoded["signature_verified"], false);
    assert_eq!(decoded["claims"]["preferred_username"], ALICE);
    assert_eq!(
        decoded["claims"]["oid"],
        "3c5e2f1a-7b4d-4c6e-9f8a-a11ce0000001"
    );
    assert_eq!(decoded["expired"], false);
    let human = m.run(&["decode", &new_token]).await.ok();
    assert!(
        human.stdout.contains("Signature:  NOT verified"),
        "{}",
        human.stdout
    );
    assert!(human.stdout.contains("Tenant ID"), "{}", human.stdout);
    assert!(
        human.stdout.contains("UTC (in 59 min)") || human.stdout.contains("UTC (in 1 h)"),
        "{}",
        human.stdout
    );

    let rts = m.refresh_tokens(SANDBOX_CLIENT);
    assert!(!rts.is_empty());

    let logout = m.run(&["logout", "--account", ALICE]).await.ok();
    assert!(
        logout
            .stderr
            .contains(&format!("Signed out {ALICE} (Sandbox)")),
        "{}",
        logout.stderr
    );
    assert!(
        logout.stderr.contains("/oauth2/v2.0/logout"),
        "the end-session URL is shown: {}",
        logout.stderr
    );
    let gone = m.run(&["token"]).await.exit(3);
    assert_eq!(gone.stdout, "");
    m.run(&["token", "--account", ALICE]).await.exit(3);
    assert_eq!(
        m.run(&["accounts", "--json"]).await.ok().json(),
        serde_json::json!([])
    );
    assert!(
        m.refresh_tokens(SANDBOX_CLIENT).is_empty(),
        "logout removed the refresh token"
    );

    let mut secrets: Vec<(&str, &str)> = vec![
        ("access token", &token),
        ("refreshed access token", &new_token),
    ];
    secrets.extend(rts.iter().map(|rt| ("refresh token", rt.as_str())));
    m.assert_stderr_clean(&secrets);
}

/// No browser on the machine (nothing on PATH, no $BROWSER): a clear error that names the
/// way out, at once, instead of an OS error or a wait for a redirect that cannot come.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_browser_login_without_a_browser_says_so() {
    let idp = sandbox().await;
    let m = Machine::for_sandbox(&idp);
    let empty = tempfile::tempdir().unwrap();
    let path = empty.path().to_str().unwrap();
    let run = m
        .run_with(
            &["--profile", "Sandbox", "login", "--browser"],
            &[("PATH", path), ("BROWSER", "")],
            None,
        )
        .await
        .exit(2);
    assert!(
        run.stderr
            .contains("no web browser was found; use --device-code"),
        "{}",
        run.stderr
    );
    assert!(!run.stderr.contains("os error"), "{}", run.stderr);
    assert!(run.took < Duration::from_secs(60), "{:?}", run.took);
    assert_eq!(
        m.run(&["accounts", "--json"]).await.ok().json(),
        serde_json::json!([])
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_browser_login_with_a_loopback_listener_and_choosing_between_accounts() {
    let idp = sandbox().await;
    let m = Machine::for_sandbox(&idp);

    // The browser first sends the listener stray requests (a favicon, a forged state, the
    // code without its state): they are refused and the sign-in still completes.
    let bob = m
        .run_with(
            &["--profile", "Sandbox", "login"],
            &[(
                "TESSERA_BROWSER",
                &format!("{} --stray", scripted_browser("sandbox", BOB)),
            )],
            None,
        )
        .await
        .ok();
    for stray in [
        "(a favicon): listener answered 404",
        "(a forged state): listener answered 400",
        "(no state): listener answered 400",
    ] {
        assert!(bob.stderr.contains(stray), "{stray}: {}", bob.stderr);
    }
    assert!(
        bob.stderr
            .contains("Opening your browser... If it does not open, visit:"),
        "{}",
        bob.stderr
    );
    assert!(
        bob.stderr
            .contains(&format!("Signed in as {BOB} (Sandbox)")),
        "{}",
        bob.stderr
    );
    assert!(
        bob.stderr.contains("listener answered 200"),
        "the browser got the success page: {}",
        bob.stderr
    );
    assert!(
        bob.stderr
            .contains("redirect_uri=http%3A%2F%2Flocalhost%3A"),
        "a loopback redirect URI: {}",
        bob.stderr
    );
    assert_eq!(bob.stdout, "");

    // One account: `token` needs no --account.
    let t = m.run(&["token"]).await.ok();
    assert_eq!(
        idp.verify_token(t.stdout.trim()).unwrap()["preferred_username"],
        BOB
    );

    let alice = m
        .run_with(
            &[
                "--profile",
                "Sandbox",
                "login",
                "--browser",
                "--json",
                "--scope",
                "User.Read",
                "--login-hint",
                ALICE,
            ],
            &[("TESSERA_BROWSER", &scripted_browser("sandbox", ALICE))],
            None,
        )
        .await
        .ok();
    let j = alice.json();
    assert_eq!(j["profile"], "Sandbox");
    assert_eq!(j["account"]["username"], ALICE);
    assert!(
        j.get("access_token").is_none(),
        "login --json prints no token"
    );
    assert!(
        alice.stderr.contains("login_hint=alice%40contoso.example"),
        "{}",
        alice.stderr
    );

    // Two accounts: `token` must be told which.
    let ambiguous = m.run(&["token"]).await.exit(2);
    assert!(
        ambiguous.stderr.contains("--account"),
        "{}",
        ambiguous.stderr
    );
    assert!(
        ambiguous.stderr.contains(ALICE) && ambiguous.stderr.contains(BOB),
        "{}",
        ambiguous.stderr
    );
    assert_eq!(ambiguous.stdout, "");
    let a = m
        .run(&["token", "--account", "ALICE@contoso.example"])
        .await
        .ok();
    assert_eq!(
        idp.verify_token(a.stdout.trim()).unwrap()["preferred_username"],
        ALICE
    );
    m.run(&["token", "--account", "carol@fabrikam.example"])
        .await
        .exit(3);

    // A browser that fails before the redirect ends the sign-in at once (exit 3).
    let failed = m
        .run_with(
            &["--profile", "Sandbox", "login"],
            &[("TESSERA_BROWSER", "false")],
            None,
        )
        .await
        .exit(3);
    assert!(failed.took < Duration::from_secs(20), "{:?}", failed.took);

    let out = m.run(&["logout", "--all"]).await.ok();
    assert!(
        out.stderr.contains(ALICE) && out.stderr.contains(BOB),
        "{}",
        out.stderr
    );
    assert_eq!(
        m.run(&["accounts", "--json"]).await.ok().json(),
        serde_json::json!([])
    );
    m.run(&["logout", "--all"]).await.ok();
    m.run(&["logout", "--account", BOB]).await.exit(3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_refresh_fault_gives_exit_3_and_an_unreachable_provider_exit_4_with_the_store_unchanged(
) {
    let idp = sandbox().await;
    let m = Machine::for_sandbox(&idp);
    device_login_sandbox(&m, &idp, ALICE).await.ok();
    let before = m.snapshot(SANDBOX_CLIENT);
    assert!(before.contains("|RT "), "{before}");

    idp.set_faults(Faults {
        refresh_invalid_grant: true,
        ..Faults::default()
    });
    let rejected = m.run(&["token", "--force-refresh"]).await.exit(3);
    assert!(
        rejected.stderr.contains("interaction required"),
        "{}",
        rejected.stderr
    );
    assert!(
        rejected.stderr.contains("AADSTS700082"),
        "the provider's code is shown: {}",
        rejected.stderr
    );
    assert_eq!(rejected.stdout, "");
    assert_eq!(
        m.snapshot(SANDBOX_CLIENT),
        before,
        "a rejected refresh changes nothing"
    );

    idp.set_faults(Faults {
        http_status: Some(503),
        ..Faults::default()
    });
    let unavailable = m.run(&["token", "--force-refresh"]).await.exit(4);
    assert_eq!(unavailable.stdout, "");
    assert_eq!(m.snapshot(SANDBOX_CLIENT), before);
    idp.set_faults(Faults::default());

    // The provider goes away: cached accounts and tokens still work, refreshing exits 4.
    idp.shutdown().await;
    let listed = m.run(&["accounts", "--json"]).await.ok().json();
    assert_eq!(listed[0]["username"], ALICE);
    m.run(&["token"]).await.ok();
    let offline = m.run(&["token", "--force-refresh"]).await.exit(4);
    assert!(
        offline.stderr.contains("network error"),
        "{}",
        offline.stderr
    );
    assert_eq!(m.snapshot(SANDBOX_CLIENT), before);
    let nobody = Machine::new();
    let unreachable = nobody
        .run(&[
            "--authority",
            &format!("http://127.0.0.1:{}/common", closed_port()),
            "--client-id",
            "c",
            "--no-instance-discovery",
            "login",
            "--device-code",
        ])
        .await
        .exit(4);
    assert!(
        unreachable.stderr.contains("cannot connect"),
        "{}",
        unreachable.stderr
    );
}

fn args(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

pub(crate) fn closed_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_usage_errors_exit_2() {
    let m = Machine::new();
    for args in [
        &[][..],
        &["frobnicate"],
        &["token", "--min-validity", "soon"],
        &["logout"],
        &["logout", "--all", "--account", "a"],
        &["login"],
        &["--profile", "Nope", "accounts"],
        &[
            "--profile",
            "Sandbox",
            "--issuer",
            "https://idp.example",
            "--client-id",
            "c",
            "login",
        ],
        &["--issuer", "https://idp.example", "login"],
        &[
            "--authority",
            "http://idp.example/common",
            "--client-id",
            "c",
            "login",
        ],
        &["login", "--device-code", "--browser"],
    ] {
        let r = m.run(args).await;
        assert_eq!(
            r.code, 2,
            "{args:?} should be a usage error; stderr:\n{}",
            r.stderr
        );
        assert!(r.stderr.contains("error"), "{args:?}: {}", r.stderr);
        assert_eq!(r.stdout, "", "{args:?}");
    }
    let help = m.run(&["--help"]).await.ok();
    assert!(
        help.stdout.contains("Exit codes:") && help.stdout.contains("3  interaction required"),
        "{}",
        help.stdout
    );

    // A broken profiles.toml is a clear error naming the file and line, and stays as is.
    let file = m.home.path().join("profiles.toml");
    std::fs::write(&file, "[[profile]]\nname = \"x\"\nnope = 1\n").unwrap();
    let broken = m.run(&["profiles"]).await.exit(2);
    assert!(
        broken.stderr.contains("profiles.toml, line 3"),
        "{}",
        broken.stderr
    );
    assert_eq!(
        std::fs::read_to_string(&file).unwrap(),
        "[[profile]]\nname = \"x\"\nnope = 1\n"
    );
    std::fs::write(
        &file,
        "[[profile]]\nname = \"Dev\"\nissuer = \"http://127.0.0.1:1\"\nclient_id = \"c\"\nredirect_uri = \"http://localhost/cb\"\nsign_in = \"device-code\"\n",
    )
    .unwrap();
    let listed = m.run(&["profiles", "--json"]).await.ok().json();
    let names: Vec<&str> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["Microsoft", "Sandbox", "Dev"]);
    assert_eq!(listed[2]["kind"], "oidc");
    assert_eq!(listed[2]["sign_in"], "device-code");
    let table = m.run(&["profiles"]).await.ok();
    assert!(
        table.stdout.lines().nth(3).unwrap().starts_with("Dev "),
        "{}",
        table.stdout
    );

    // decode labels garbage and needs no home or network; empty input is a usage error.
    let garbage = m
        .run(&["decode", "--json", "eyJhbGciOi.not-json.sig"])
        .await
        .ok()
        .json();
    assert_eq!(garbage["kind"], "malformed");
    let opaque = m.run(&["decode", "an-opaque-token"]).await.ok();
    assert!(
        opaque.stdout.contains("opaque (not a JWT)"),
        "{}",
        opaque.stdout
    );
    m.run_with(&["decode"], &[], Some("  \n")).await.exit(2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_against_oidc_provider_with_an_inline_issuer() {
    let op = OidcProvider::start()
        .await
        .expect("oidc-provider starts (run scripts/setup)");
    let issuer = op.issuer_str();
    let m = Machine::new();
    let target = ["--issuer", issuer.as_str(), "--client-id", JWT_CLIENT_ID];
    let with = |rest: &[&str]| -> Vec<String> {
        target.iter().chain(rest).map(|s| s.to_string()).collect()
    };

    let login_args = with(&["login", "--scope", "api:read", "--scope", "offline_access"]);
    let login = m
        .run_with(
            &args(&login_args),
            &[("TESSERA_BROWSER", &scripted_browser("oidc", "grace"))],
            None,
        )
        .await
        .ok();
    assert!(
        login.stderr.contains("Signed in as grace (inline)"),
        "{}",
        login.stderr
    );

    let token_args = with(&["token", "--scope", "api:read", "--json"]);
    let first = m.run(&args(&token_args)).await.ok().json();
    assert_eq!(first["token_source"], "cache");
    assert_eq!(first["account"]["username"], "grace");
    let at = first["access_token"].as_str().unwrap().to_owned();
    let decoded = m
        .run_with(&["decode", "--json", "-"], &[], Some(&at))
        .await
        .ok()
        .json();
    assert_eq!(decoded["kind"], "jws");
    assert_eq!(decoded["claims"]["aud"], "urn:tessera:api");
    assert_eq!(decoded["claims"]["sub"], "grace");

    let refresh_args = with(&["token", "--scope", "api:read", "--force-refresh", "--json"]);
    let refreshed = m.run(&args(&refresh_args)).await.ok().json();
    assert_eq!(refreshed["token_source"], "identity_provider");
    assert_ne!(refreshed["access_token"], at.as_str());

    // Device code through the provider's own pages.
    let device_args = with(&["login", "--device-code", "--scope", "api:read"]);
    let browser = ScriptedBrowser::new().unwrap();
    let device = m
        .device_login(&args(&device_args), |uri, code| async move {
            browser.approve_device(&uri, &code, "heidi").await
        })
        .await
        .ok();
    assert!(
        device.stderr.contains("Signed in as heidi (inline)"),
        "{}",
        device.stderr
    );
    let accounts = m
        .run(&args(&with(&["accounts", "--json"])))
        .await
        .ok()
        .json();
    let mut names: Vec<&str> = accounts
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["username"].as_str().unwrap())
        .collect();
    names.sort();
    assert_eq!(names, ["grace", "heidi"]);
    m.run(&args(&with(&["token", "--scope", "api:read"])))
        .await
        .exit(2);

    let logout = m
        .run(&args(&with(&["logout", "--account", "grace"])))
        .await
        .ok();
    assert!(
        logout.stderr.contains("Signed out grace (inline)"),
        "{}",
        logout.stderr
    );
    assert!(
        logout.stderr.contains("/session/end"),
        "the end-session URL: {}",
        logout.stderr
    );
    m.run(&args(&with(&[
        "token",
        "--scope",
        "api:read",
        "--account",
        "grace",
    ])))
    .await
    .exit(3);
    m.assert_stderr_clean(&[("access token", &at)]);
}

/// TLS trust, with the variables set in the CLI process only: oidc-provider serving https
/// with a certificate from a throwaway CA is refused while that CA is not trusted, and
/// signed in to when the CA is in `SSL_CERT_FILE`, or only in a folder named by
/// `SSL_CERT_DIR` (read as the OS store's certificate folder, as OpenSSL reads it). A
/// broken certificate or a missing folder in the store is skipped with a warning; an empty
/// store is a warning and a refusal.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_trusts_a_private_ca_in_ssl_cert_file_or_the_os_store_and_refuses_it_otherwise() {
    let ca = TestCa::generate().expect("a test CA");
    let args = ca.provider_args();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let op = OidcProvider::start_with_args(&args)
        .await
        .expect("oidc-provider starts (run scripts/setup)");
    let issuer = op.issuer_str();
    assert!(issuer.starts_with("https://127.0.0.1:"), "{issuer}");
    // Plaintext if there is no keyring: what is tested here is TLS.
    let login = [
        "--allow-plaintext",
        "--issuer",
        issuer.as_str(),
        "--client-id",
        JWT_CLIENT_ID,
        "login",
        "--device-code",
        "--scope",
        "api:read",
    ];

    let untrusted = Machine::new();
    let refused = untrusted.run(&login).await.exit(4);
    assert!(
        refused.stderr.contains("127.0.0.1")
            && refused
                .stderr
                .contains("invalid peer certificate: UnknownIssuer")
            && refused
                .stderr
                .contains("not issued by a CA this machine trusts")
            && refused.stderr.contains("SSL_CERT_FILE"),
        "{}",
        refused.stderr
    );
    let empty = tempfile::tempdir().unwrap();
    let no_store = untrusted
        .run_with(
            &login,
            &[("SSL_CERT_DIR", &empty.path().display().to_string())],
            None,
        )
        .await
        .exit(4);
    assert!(
        no_store
            .stderr
            .contains("the OS certificate store holds no CA certificate")
            && no_store.stderr.contains("UnknownIssuer"),
        "{}",
        no_store.stderr
    );
    assert!(!op.logs().contains("GET /.well-known/openid-configuration"));

    let ca_dir = tempfile::tempdir().unwrap();
    std::fs::copy(ca.ca_file(), ca_dir.path().join("tessera-test-ca.pem")).unwrap();
    // Base64 of three zero bytes: PEM, but no certificate.
    std::fs::write(
        ca_dir.path().join("broken.pem"),
        "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
    )
    .unwrap();
    let store_dirs = format!(
        "{}:{}/missing",
        ca_dir.path().display(),
        empty.path().display()
    );
    for (var, value, user) in [
        ("SSL_CERT_FILE", ca.ca_file().display().to_string(), "grace"),
        ("SSL_CERT_DIR", store_dirs, "heidi"),
    ] {
        let mut m = Machine::new();
        m.env.push((var.into(), value));
        m.env
            .push(("TESSERA_LOG".into(), "tessera_core::http=debug".into()));
        let browser = ScriptedBrowser::trusting(&ca.ca_file()).unwrap();
        let run = m
            .device_login(&login, |uri, code| async move {
                browser.approve_device(&uri, &code, user).await
            })
            .await
            .ok();
        assert!(
            run.stderr
                .contains(&format!("Signed in as {user} (inline)")),
            "{var}: {}",
            run.stderr
        );
        // SSL_CERT_FILE adds to the system's folder (a private CA beside the public ones);
        // SSL_CERT_DIR replaces the store (the test CA alone).
        let trusted = run
            .stderr
            .split("trusted=")
            .nth(1)
            .and_then(|s| s.split_whitespace().next())
            .and_then(|n| n.parse::<usize>().ok());
        if var == "SSL_CERT_FILE" {
            assert!(trusted.is_some_and(|n| n > 1), "{var}: {}", run.stderr);
        } else {
            assert_eq!(trusted, Some(1), "{var}: {}", run.stderr);
        }
        if var == "SSL_CERT_DIR" {
            assert!(
                run.stderr
                    .contains("part of the OS certificate store could not be read")
                    && run.stderr.contains("/missing"),
                "{}",
                run.stderr
            );
        }
    }
}

/// An MSAL cache file as the store, and copying between it and Tessera's own store.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_msal_cache_file_import_and_export() {
    let idp = sandbox().await;
    let m = Machine::for_sandbox(&idp);
    let file = m.home.path().join("msal_token_cache.json");
    let file_arg = file.to_str().unwrap().to_string();

    // Sign in straight into the MSAL file.
    m.run_with(
        &["--msal-cache", &file_arg, "--profile", "Sandbox", "login"],
        &[("TESSERA_BROWSER", &scripted_browser("sandbox", BOB))],
        None,
    )
    .await
    .ok();
    let doc: Value = serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
    for section in [
        "AccessToken",
        "RefreshToken",
        "IdToken",
        "Account",
        "AppMetadata",
    ] {
        assert_eq!(
            doc[section].as_object().map(|o| o.len()),
            Some(1),
            "{section} in {doc}"
        );
    }
    let account = doc["Account"].as_object().unwrap().values().next().unwrap();
    assert_eq!(account["username"], BOB);
    assert!(
        !m.home.path().join("store.db").exists(),
        "the MSAL file is the store"
    );

    let cached = m
        .run(&["--msal-cache", &file_arg, "token", "--json"])
        .await
        .ok()
        .json();
    assert_eq!(cached["token_source"], "cache");
    let at = doc["AccessToken"]
        .as_object()
        .unwrap()
        .values()
        .next()
        .unwrap();
    assert_eq!(
        cached["access_token"], at["secret"],
        "the token MSAL's file holds"
    );
    let status = m.run(&["--msal-cache", &file_arg, "status"]).await.ok();
    assert!(
        status.stdout.contains("MSAL token cache file"),
        "{}",
        status.stdout
    );

    // Import into Tessera's own store, then use it there.
    let import = m.run(&["import-msal", &file_arg]).await.ok();
    assert!(
        import
            .stderr
            .contains("copied 1 accounts, 1 refresh tokens"),
        "{}",
        import.stderr
    );
    let mine = m.run(&["token", "--json"]).await.ok().json();
    assert_eq!(mine["access_token"], cached["access_token"]);
    assert_eq!(mine["token_source"], "cache");

    // Export into a new MSAL file: the same entries.
    let out = m.home.path().join("exported.json");
    m.run(&["export-msal", out.to_str().unwrap()]).await.ok();
    let exported: Value = serde_json::from_str(&std::fs::read_to_string(&out).unwrap()).unwrap();
    for section in ["AccessToken", "RefreshToken", "IdToken", "Account"] {
        let keys = |d: &Value| {
            d[section]
                .as_object()
                .unwrap()
                .keys()
                .cloned()
                .collect::<Vec<_>>()
        };
        assert_eq!(keys(&exported), keys(&doc), "{section}");
    }

    // A file that is not an MSAL cache: a clear store error, the file untouched.
    let bad = m.home.path().join("bad.json");
    std::fs::write(&bad, "{not json").unwrap();
    let run = m
        .run(&["--msal-cache", bad.to_str().unwrap(), "accounts"])
        .await
        .exit(5);
    assert!(run.stderr.contains("bad.json"), "{}", run.stderr);
    assert_eq!(std::fs::read_to_string(&bad).unwrap(), "{not json");
}

/// A link planted at an MSAL cache's lock file (`FILE.lockfile`): the change is refused
/// at once with a store error naming the lock file, and the link's target is untouched
/// (it used to be truncated and overwritten with the PID line after the 5 s stale wait).
#[cfg(unix)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_msal_cache_refuses_a_lock_file_that_is_a_link() {
    let idp = sandbox().await;
    let m = Machine::for_sandbox(&idp);
    let file = m.home.path().join("msal_token_cache.json");
    let file_arg = file.to_str().unwrap().to_string();
    m.run_with(
        &["--msal-cache", &file_arg, "--profile", "Sandbox", "login"],
        &[("TESSERA_BROWSER", &scripted_browser("sandbox", BOB))],
        None,
    )
    .await
    .ok();
    let cache_before = std::fs::read(&file).unwrap();
    let victim = m.home.path().join("victim.txt");
    let victim_bytes = b"precious: never to be truncated or overwritten\n";
    std::fs::write(&victim, victim_bytes).unwrap();
    let lock = m.home.path().join("msal_token_cache.json.lockfile");
    std::os::unix::fs::symlink(&victim, &lock).unwrap();

    let run = m
        .run(&["--msal-cache", &file_arg, "logout", "--all"])
        .await
        .exit(5);
    assert!(
        run.stderr.contains(lock.to_str().unwrap()) && run.stderr.contains("symbolic link"),
        "{}",
        run.stderr
    );
    assert!(
        run.took < Duration::from_secs(5),
        "refused at once, not after the stale-lock wait: {:?}",
        run.took
    );
    assert_eq!(std::fs::read(&victim).unwrap(), victim_bytes);
    assert_eq!(
        std::fs::read(&file).unwrap(),
        cache_before,
        "still signed in"
    );
    assert!(std::fs::symlink_metadata(&lock)
        .unwrap()
        .file_type()
        .is_symlink());

    // With the link gone, the same command signs out.
    std::fs::remove_file(&lock).unwrap();
    let run = m
        .run(&["--msal-cache", &file_arg, "logout", "--all"])
        .await
        .ok();
    assert!(run.stderr.contains("Signed out"), "{}", run.stderr);
    assert_eq!(std::fs::read(&victim).unwrap(), victim_bytes);
}

/// A profile lists an account only when the account can use it: signed in through
/// `common`, alice (Contoso), carol (Fabrikam) and dave (a personal account) are listed
/// under a Contoso authority (named by its domain or id) as alice alone, under
/// `organizations` without dave, under `consumers` as dave alone. Each shows its own
/// tenant.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn accounts_are_listed_only_under_authorities_they_can_use() {
    let idp = sandbox().await;
    let m = Machine::for_sandbox(&idp);
    for login in [ALICE, "carol@fabrikam.example", "dave@outlook.example"] {
        device_login_sandbox(&m, &idp, login).await.ok();
    }
    let all = m.run(&["accounts", "--json"]).await.ok().json();
    let tenant_of = |login: &str| {
        all.as_array()
            .unwrap()
            .iter()
            .find(|a| a["username"] == login)
            .map(|a| a["tenant"].as_str().unwrap().to_owned())
            .unwrap()
    };
    assert_eq!(tenant_of(ALICE), "contoso.example");
    assert_eq!(tenant_of("carol@fabrikam.example"), "fabrikam.example");
    assert_eq!(
        tenant_of("dave@outlook.example"),
        "personal Microsoft account"
    );
    let human = m.run(&["accounts"]).await.ok().stdout;
    assert!(
        human.contains("TENANT") && human.contains("fabrikam.example"),
        "{human}"
    );

    let base = idp.base_url().as_str().trim_end_matches('/').to_owned();
    let listed = |tenant: String| {
        let m = &m;
        let authority = format!("{base}/{tenant}");
        async move {
            let v = m
                .run(&[
                    "--authority",
                    &authority,
                    "--client-id",
                    SANDBOX_CLIENT,
                    "accounts",
                    "--json",
                ])
                .await
                .ok()
                .json();
            let mut names: Vec<String> = v
                .as_array()
                .unwrap()
                .iter()
                .map(|a| a["username"].as_str().unwrap().to_owned())
                .collect();
            names.sort();
            names
        }
    };
    let contoso = tessera_sandbox_idp::CONTOSO;
    assert_eq!(listed(contoso.domain.to_string()).await, [ALICE]);
    assert_eq!(listed(contoso.id.to_string()).await, [ALICE]);
    assert_eq!(
        listed("organizations".into()).await,
        [ALICE, "carol@fabrikam.example"]
    );
    assert_eq!(listed("consumers".into()).await, ["dave@outlook.example"]);
    // Asking for carol's token under Contoso: she is not an account of that authority.
    let r = m
        .run(&[
            "--authority",
            &format!(
                "{}/{}",
                idp.base_url().as_str().trim_end_matches('/'),
                contoso.domain
            ),
            "--client-id",
            SANDBOX_CLIENT,
            "token",
            "--account",
            "carol@fabrikam.example",
        ])
        .await
        .exit(3);
    assert!(!r.stderr.contains("expired or revoked"), "{}", r.stderr);
}

/// The provider fails (503 with Retry-After, an HTML page, malformed JSON): a forced
/// refresh says what the provider said (and when to retry), and the cached token is
/// still served.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn provider_errors_say_what_came_back_and_the_cached_token_still_serves() {
    let idp = sandbox().await;
    let m = Machine::for_sandbox(&idp);
    device_login_sandbox(&m, &idp, ALICE).await.ok();
    let cached = m.run(&["token"]).await.ok().stdout.trim().to_owned();
    for (faults, says) in [
        (
            Faults {
                http_status: Some(503),
                retry_after_secs: Some(30),
                ..Faults::default()
            },
            "retry after 30 s",
        ),
        (
            Faults {
                html_error_page: true,
                ..Faults::default()
            },
            "HTML page",
        ),
        (
            Faults {
                malformed_json: true,
                ..Faults::default()
            },
            "JSON",
        ),
    ] {
        idp.set_faults(faults);
        let r = m.run(&["token", "--force-refresh"]).await.exit(4);
        assert!(r.stderr.contains(says), "{says}: {}", r.stderr);
        assert!(!r.stderr.contains("unexpected body"), "{}", r.stderr);
        let again = m.run(&["token"]).await.ok();
        assert_eq!(again.stdout.trim(), cached, "the cached token still serves");
    }
    idp.set_faults(Faults::default());
}

/// Accounts of a client no profile names are not invisible: `accounts` lists them under
/// "no profile" with where they signed in and the one command that adds a profile for
/// them; run as printed, that command lists them and their tokens work. `import-msal` of
/// such accounts says the same.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn accounts_no_profile_lists_are_shown_with_the_command_that_adds_one() {
    const OTHER: &str = "0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d";
    let idp = sandbox().await;
    let m = Machine::for_sandbox(&idp);
    let authority = format!("{}/common", idp.base_url().as_str().trim_end_matches('/'));
    let base = idp.base_url();
    m.device_login(
        &[
            "--authority",
            &authority,
            "--client-id",
            OTHER,
            "login",
            "--device-code",
            "--scope",
            "User.Read",
        ],
        move |_uri, code| async move {
            tessera_sandbox_idp::scripted_device_approval(&base, &code, ALICE, DEMO_PASSWORD).await
        },
    )
    .await
    .ok();

    let json = m.run(&["accounts", "--json"]).await.ok().json();
    let alice = &json.as_array().unwrap()[0];
    assert_eq!(alice["username"], ALICE, "{json}");
    assert_eq!(alice["profile"], Value::Null, "{json}");
    assert_eq!(alice["client_id"], OTHER, "{json}");
    assert_eq!(alice["authority"], authority.as_str(), "{json}");
    let human = m.run(&["accounts"]).await.ok().stdout;
    assert!(human.contains("No profile lists these accounts"), "{human}");
    let add = human
        .lines()
        .find(|l| l.trim_start().starts_with("tessera-cli"))
        .unwrap_or_else(|| panic!("no command in:\n{human}"))
        .trim()
        .to_owned();
    assert!(add.contains(" profiles add "), "{add}");

    // Run it as printed (through the shell, with this tessera-cli).
    let line = add.replacen("tessera-cli", &cli_bin().display().to_string(), 1);
    let mut sh = tokio::process::Command::new("sh");
    sh.args(["-c", &line])
        .envs(m.env.iter().map(|(k, v)| (k, v)))
        .env_remove("TESSERA_HOME");
    let out = sh.output().await.unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let json = m.run(&["accounts", "--json"]).await.ok().json();
    let list = json.as_array().unwrap();
    assert_eq!(list.len(), 1, "{json}");
    assert_ne!(list[0]["profile"], Value::Null, "{json}");
    let profile = list[0]["profile"].as_str().unwrap().to_owned();
    m.run(&["--profile", &profile, "token", "--account", ALICE])
        .await
        .ok();

    // The same accounts imported into another home: the import says who no profile lists.
    let file = m.home.path().join("exported.json");
    m.run(&["export-msal", &file.display().to_string()])
        .await
        .ok();
    let other = Machine::for_sandbox(&idp);
    let r = other
        .run(&["import-msal", &file.display().to_string()])
        .await
        .ok();
    assert!(
        r.stderr.contains("No profile lists these accounts") && r.stderr.contains("profiles add"),
        "{}",
        r.stderr
    );
}
