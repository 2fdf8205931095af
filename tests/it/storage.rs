//! Secrets at rest and the store's robustness, through the real `tessera-cli` binary
//! (each test with its own `--home`) against the sandbox, with the real OS keyring.
//!
//! The suite runs inside `dbus-run-session` with an unlocked gnome-keyring (see
//! `scripts/test`). A test that needs the Secret Service and finds none fails with a
//! clear message when `CI` is set, and is skipped otherwise. Every key a test puts in the
//! keyring is removed when its [`Machine`] is dropped.
//!
//! - tokens are encrypted at rest (store file and WAL), the key is in the keyring, and
//!   only that key opens the store;
//! - no keyring: exit 5 saying how to fix it; `--allow-plaintext` (or the variable, or
//!   `config.toml`) opts into plaintext, and `status` says so;
//! - a signed-out account's tokens are in no file of the store (zeroed, WAL truncated);
//! - the key removed from the keyring: a clear error, nothing changed on disk; `store
//!   reset --yes` moves the store aside and starts over;
//! - a corrupt file is moved aside with a timestamp;
//! - SIGKILL at random moments of a tight write loop never leaves a store that does not
//!   open and read back completely, and every write reported as committed survives;
//! - nine CLI processes and the in-process engine signing in, refreshing (with strict
//!   refresh-token rotation) and signing out at once lose nothing and never see
//!   "database is locked".

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine as _;
use rand::Rng;
use serde_json::Value;
use tessera_core::app::SilentOptions;
use tessera_core::cache::{
    AesGcmCipher, CredentialQuery, PlaintextCipher, SqliteStore, StoreKey, TokenStore,
};
use tessera_core::context::Tessera;
use tessera_core::keystore::{
    open_store, store_id, KeyStore, OsKeyring, StoreOptions, StoreProtection, KEYRING_SERVICE,
};
use tessera_core::scopes::ScopeSet;
use tessera_sandbox_idp::{Faults, SandboxConfig, SandboxHandle, DEMO_PASSWORD};
use tokio::io::AsyncBufReadExt;
use url::Url;

const ALICE: &str = "alice@contoso.example";
const BOB: &str = "bob@contoso.example";
const CAROL: &str = "carol@fabrikam.example";
const DAVE: &str = "dave@outlook.example";
const SANDBOX_CLIENT: &str = "7a1c0de5-7e55-4a11-9c0d-5a4db0c11e01";

// ---------------------------------------------------------------------------------------
// The keyring

/// Can the OS keyring store, return and forget a key right now?
fn keyring_check() -> Result<(), String> {
    let keys = OsKeyring;
    let id = format!(
        "store:tessera-tests-probe-{}-{}",
        std::process::id(),
        rand::thread_rng().gen::<u64>()
    );
    let key = StoreKey::generate();
    keys.save(&id, &key).map_err(|e| e.to_string())?;
    let back = keys.load(&id).map_err(|e| e.to_string());
    let _ = keys.forget(&id);
    match back? {
        Some(k) if k.secret_bytes() == key.secret_bytes() => Ok(()),
        _ => Err("a key saved in the keyring did not come back".into()),
    }
}

fn in_ci() -> bool {
    std::env::var_os("CI").is_some_and(|v| !v.is_empty())
}

/// The keyring for a test that needs it: `true` if it works; panics in CI, else skips.
fn need_keyring(test: &str) -> bool {
    match keyring_check() {
        Ok(()) => true,
        Err(why) if in_ci() => panic!(
            "{test} needs a Secret Service, and none works here ({why}). Run the suite inside \
             `dbus-run-session` with an unlocked gnome-keyring, as scripts/test does: \
             dbus-run-session -- bash -c 'echo -n pw | gnome-keyring-daemon --unlock \
             --components=secrets; cargo test -p tessera-tests'"
        ),
        Err(why) => {
            eprintln!("SKIPPED {test}: no usable Secret Service ({why}); run it inside dbus-run-session with gnome-keyring");
            false
        }
    }
}

/// The key, read back independently of Tessera with `secret-tool` when it is installed
/// (libsecret-tools), else through the keyring crate.
fn key_in_keyring(id: &str) -> Option<Vec<u8>> {
    let via_tool = std::process::Command::new("secret-tool")
        .args(["lookup", "service", KEYRING_SERVICE, "username", id])
        .stderr(Stdio::null())
        .output();
    match via_tool {
        Ok(out) if out.status.success() => {
            let text = String::from_utf8(out.stdout).expect("the key is base64 text");
            Some(
                base64::engine::general_purpose::STANDARD
                    .decode(text.trim())
                    .expect("the keyring entry is base64"),
            )
        }
        // secret-tool exits 1 when there is no such entry.
        Ok(_) => None,
        Err(_) => OsKeyring
            .load(id)
            .expect("the keyring answers")
            .map(|k| k.secret_bytes().to_vec()),
    }
}

fn remove_key_from_keyring(id: &str) {
    let cleared = std::process::Command::new("secret-tool")
        .args(["clear", "service", KEYRING_SERVICE, "username", id])
        .status();
    if !matches!(cleared, Ok(s) if s.success()) {
        OsKeyring.forget(id).expect("the keyring answers");
    }
    assert_eq!(key_in_keyring(id), None, "the key is gone from the keyring");
}

// ---------------------------------------------------------------------------------------
// Running the CLI

use tessera_tests::cli_bin::cli_bin;

#[derive(Debug)]
struct Run {
    args: String,
    code: i32,
    stdout: String,
    stderr: String,
}

impl Run {
    fn json(&self) -> Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| {
            panic!(
                "{}: stdout is not JSON ({e}): {}\nstderr: {}",
                self.args, self.stdout, self.stderr
            )
        })
    }

    #[track_caller]
    fn ok(self) -> Run {
        self.exit(0)
    }

    #[track_caller]
    fn exit(self, code: i32) -> Run {
        assert_eq!(
            self.code, code,
            "`tessera-cli {}`: expected exit {code}; stderr:\n{}\nstdout:\n{}",
            self.args, self.stderr, self.stdout
        );
        self
    }
}

/// One user's machine: a home folder and the environment the CLI runs with.
struct Machine {
    home: tempfile::TempDir,
    env: Vec<(String, String)>,
}

impl Machine {
    fn new() -> Machine {
        Machine {
            home: tessera_tests::home::temp_home(),
            env: Vec::new(),
        }
    }

    fn for_sandbox(idp: &SandboxHandle) -> Machine {
        let mut m = Machine::new();
        m.env.push((
            "TESSERA_SANDBOX_URL".into(),
            idp.base_url().as_str().trim_end_matches('/').to_owned(),
        ));
        m
    }

    fn store_path(&self) -> PathBuf {
        self.home.path().join("store.db")
    }

    fn command(&self, args: &[&str], env: &[(&str, &str)]) -> tokio::process::Command {
        let mut c = tokio::process::Command::new(cli_bin());
        c.arg("--home").arg(self.home.path()).args(args);
        for k in [
            "TESSERA_HOME",
            "TESSERA_BROWSER",
            "TESSERA_SANDBOX_URL",
            "TESSERA_ALLOW_PLAINTEXT",
            "TESSERA_LOG",
        ] {
            c.env_remove(k);
        }
        c.envs(self.env.iter().map(|(k, v)| (k, v)));
        c.envs(env.iter().copied());
        c.stdin(Stdio::null()).kill_on_drop(true);
        c
    }

    async fn run(&self, args: &[&str]) -> Run {
        self.run_with(args, &[]).await
    }

    async fn run_with(&self, args: &[&str], env: &[(&str, &str)]) -> Run {
        let mut c = self.command(args, env);
        c.stdout(Stdio::piped()).stderr(Stdio::piped());
        let child = c.spawn().expect("tessera-cli starts");
        let out = tokio::time::timeout(Duration::from_secs(120), child.wait_with_output())
            .await
            .expect("tessera-cli finishes within 2 minutes")
            .unwrap();
        Run {
            args: args.join(" "),
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    /// Sign in through the loopback listener with the scripted browser.
    async fn browser_login(&self, login: &str, extra: &[&str]) -> Run {
        let browser = format!(
            "{} --provider sandbox --login {login}",
            env!("CARGO_BIN_EXE_scripted-browser")
        );
        let mut args = extra.to_vec();
        args.extend(["--profile", "Sandbox", "login"]);
        self.run_with(&args, &[("TESSERA_BROWSER", &browser)]).await
    }

    /// `login --device-code` with `args`; the code is approved as `login` at the sandbox.
    async fn device_login(&self, idp_base: &Url, args: &[&str], login: &str) -> Run {
        let mut c = self.command(args, &[]);
        c.stdout(Stdio::piped()).stderr(Stdio::piped());
        let mut child = c.spawn().expect("tessera-cli starts");
        let mut lines = tokio::io::BufReader::new(child.stderr.take().unwrap()).lines();
        let mut stderr = String::new();
        let code = loop {
            let line = tokio::time::timeout(Duration::from_secs(60), lines.next_line())
                .await
                .expect("the device code message within 60 s")
                .unwrap();
            let Some(line) = line else {
                break None;
            };
            stderr.push_str(&line);
            stderr.push('\n');
            if let Some(code) = device_code_in(&line) {
                break Some(code);
            }
        };
        if let Some(code) = code {
            tessera_sandbox_idp::scripted_device_approval(idp_base, &code, login, DEMO_PASSWORD)
                .await
                .expect("the device code is approved");
        }
        while let Some(line) = tokio::time::timeout(Duration::from_secs(90), lines.next_line())
            .await
            .expect("tessera-cli finishes signing in")
            .unwrap()
        {
            stderr.push_str(&line);
            stderr.push('\n');
        }
        let out = child.wait_with_output().await.unwrap();
        Run {
            args: args.join(" "),
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr,
        }
    }

    /// No Secret Service: the D-Bus session address leads nowhere.
    fn without_keyring(&mut self) {
        let no_bus = format!("unix:path={}/no-such-bus", self.home.path().display());
        self.env.push(("DBUS_SESSION_BUS_ADDRESS".into(), no_bus));
        // No X display either, or libdbus would try to autolaunch a bus.
        self.env.push(("DISPLAY".into(), String::new()));
    }

    /// Every file in the home folder and its bytes.
    fn files(&self) -> BTreeMap<String, Vec<u8>> {
        std::fs::read_dir(self.home.path())
            .unwrap()
            .map(|e| e.unwrap())
            .filter(|e| e.file_type().unwrap().is_file())
            .map(|e| {
                (
                    e.file_name().to_string_lossy().into_owned(),
                    std::fs::read(e.path()).unwrap(),
                )
            })
            .collect()
    }
}

impl Drop for Machine {
    fn drop(&mut self) {
        // Leave no key behind in the (persistent) test keyring.
        let _ = OsKeyring.forget(&store_id(&self.store_path()));
    }
}

/// The user code in the sandbox's (or the engine's) device-code message.
fn device_code_in(line: &str) -> Option<String> {
    let words: Vec<&str> = line.split_whitespace().collect();
    let at = words.windows(2).position(|w| w[0] == "code")? + 1;
    Some(words.get(at)?.trim_end_matches('.').to_owned())
}

async fn sandbox(faults: Faults) -> SandboxHandle {
    tessera_sandbox_idp::start(SandboxConfig {
        port: 0,
        faults,
        ..SandboxConfig::default()
    })
    .await
    .expect("the sandbox starts")
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && haystack.windows(needle.len()).any(|w| w == needle)
}

/// Every secret in the store (kind, value), for the Sandbox client.
fn secrets_in(store: &dyn TokenStore, client_id: &str) -> Vec<(&'static str, String)> {
    secrets_of(store, client_id, None)
}

/// The secrets of one account (`username`), or of all (`None`).
fn secrets_of(
    store: &dyn TokenStore,
    client_id: &str,
    username: Option<&str>,
) -> Vec<(&'static str, String)> {
    let mut out = Vec::new();
    for a in store.accounts().unwrap() {
        if username.is_some_and(|u| u != a.username) {
            continue;
        }
        let envs = vec![a.environment.clone()];
        let q = CredentialQuery {
            home_account_id: &a.home_account_id,
            environments: &envs,
            client_id,
            realm: None,
        };
        for at in store.access_tokens(&q).unwrap() {
            out.push(("access token", at.secret.secret().to_owned()));
        }
        for rt in store.refresh_tokens(&q, Some("1")).unwrap() {
            out.push(("refresh token", rt.secret.secret().to_owned()));
        }
        if let Some(idt) = store.id_token(&q).unwrap() {
            out.push(("ID token", idt.secret.secret().to_owned()));
        }
    }
    out
}

// ---------------------------------------------------------------------------------------
// A keyring that never answers

/// Programs started for one test, stopped by PID when it ends.
#[derive(Default)]
struct Started(Vec<std::process::Child>);

impl Started {
    /// Starts `command` and returns the first line it prints (an address, a display).
    fn first_line(&mut self, command: &mut std::process::Command, what: &str) -> String {
        let mut child = command
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("{what} starts: {e}"));
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("stdout"))
            .read_line(&mut line)
            .unwrap_or_else(|e| panic!("{what} prints: {e}"));
        self.0.push(child);
        assert!(!line.trim().is_empty(), "{what} printed nothing");
        line.trim().to_owned()
    }

    fn stop_last(&mut self) {
        if let Some(mut c) = self.0.pop() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Started {
    fn drop(&mut self) {
        while !self.0.is_empty() {
            self.stop_last();
        }
    }
}

fn on_path(tool: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|p| std::env::split_paths(&p).any(|d| d.join(tool).is_file()))
}

/// `command`, stopped after `limit`: its exit code (None when it had to be stopped),
/// stderr and how long it took.
fn run_within(
    command: &mut std::process::Command,
    limit: Duration,
) -> (Option<i32>, String, Duration) {
    let started = Instant::now();
    let mut child = command
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the command starts");
    let stderr = child.stderr.take().expect("stderr");
    let reader = std::thread::spawn(move || std::io::read_to_string(stderr).unwrap_or_default());
    let code = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status.code();
        }
        if started.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    (code, reader.join().unwrap_or_default(), started.elapsed())
}

/// A keyring that is locked and shows its unlock prompt where nobody answers it (here on
/// an Xvfb display; for a user, a desktop they are not at, or an SSH session): the Secret
/// Service client would wait a year for that prompt. `tessera-cli` gives up after
/// `TESSERA_KEYRING_TIMEOUT_SECS` (60 s unless set), exits 5 saying what happened, and
/// deletes nothing. The test has its own D-Bus session, Xvfb and gnome-keyring, all
/// stopped by PID.
#[test]
fn a_keyring_waiting_on_an_unanswered_unlock_prompt_is_an_error_and_not_a_hang() {
    let tools = [
        "Xvfb",
        "dbus-daemon",
        "dbus-send",
        "dbus-update-activation-environment",
        "gnome-keyring-daemon",
    ];
    if let Some(missing) = tools.iter().find(|t| !on_path(t)) {
        assert!(
            !in_ci(),
            "{missing} is not installed (scripts/setup installs it)"
        );
        eprintln!("SKIPPED: {missing} is not installed");
        return;
    }
    let dir = tempfile::tempdir().expect("a temp folder");
    let home = dir.path().join("tessera");
    let mut started = Started::default();
    // Xvfb picks a free display and prints its number; the bus prints its address.
    let display = format!(
        ":{}",
        started.first_line(
            std::process::Command::new("Xvfb").args([
                "-displayfd",
                "1",
                "-screen",
                "0",
                "640x480x24",
                "-nolisten",
                "tcp",
            ]),
            "Xvfb"
        )
    );
    let bus = started.first_line(
        std::process::Command::new("dbus-daemon").args([
            "--session",
            "--nofork",
            "--print-address=1",
        ]),
        "dbus-daemon",
    );
    let env = |c: &mut std::process::Command| {
        c.env("HOME", dir.path())
            .env("XDG_DATA_HOME", dir.path().join("data"))
            .env("XDG_CACHE_HOME", dir.path().join("cache"))
            .env_remove("XDG_RUNTIME_DIR")
            .env("DBUS_SESSION_BUS_ADDRESS", &bus)
            .env("DISPLAY", &display)
            .env("NO_AT_BRIDGE", "1")
            .env_remove("TESSERA_HOME")
            .env("TESSERA_LOG", "warn");
    };
    // The prompter is started by the bus: it must find the display.
    let mut update = std::process::Command::new("dbus-update-activation-environment");
    env(update.arg(format!("DISPLAY={display}")));
    assert!(update.status().expect("runs").success());

    let keyring_up = |started: &mut Started, unlock: bool| {
        let mut c = std::process::Command::new("gnome-keyring-daemon");
        c.args(["--foreground", "--components=secrets"]);
        if unlock {
            c.arg("--unlock");
        }
        env(&mut c);
        let mut child = c
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("gnome-keyring-daemon starts");
        if unlock {
            use std::io::Write as _;
            child
                .stdin
                .take()
                .expect("stdin")
                .write_all(b"pw")
                .expect("password");
        }
        drop(child.stdin.take());
        started.0.push(child);
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let mut ask = std::process::Command::new("dbus-send");
            ask.args([
                "--session",
                "--print-reply",
                "--dest=org.freedesktop.DBus",
                "/org/freedesktop/DBus",
                "org.freedesktop.DBus.NameHasOwner",
                "string:org.freedesktop.secrets",
            ]);
            env(&mut ask);
            let out = ask.output().expect("dbus-send runs");
            if String::from_utf8_lossy(&out.stdout).contains("boolean true") {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "gnome-keyring-daemon never took its name"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    };
    let status = || {
        let mut c = std::process::Command::new(cli_bin());
        c.arg("--home").arg(&home).arg("status");
        env(&mut c);
        c
    };

    // With the keyring unlocked, the store is created and its key kept there.
    keyring_up(&mut started, true);
    let (code, stderr, took) = run_within(&mut status(), Duration::from_secs(60));
    assert_eq!(code, Some(0), "status with an unlocked keyring:\n{stderr}");
    eprintln!("status with the keyring unlocked: {took:?}");
    started.stop_last();

    // The same keyring started locked: the key is behind an unlock prompt.
    keyring_up(&mut started, false);
    let (code, stderr, took) = run_within(
        status().env("TESSERA_KEYRING_TIMEOUT_SECS", "3"),
        Duration::from_secs(60),
    );
    eprintln!("status with the keyring locked: exit {code:?} after {took:?}");
    assert_eq!(
        code,
        Some(5),
        "exit 5 (the store cannot be opened) after {took:?}, not a hang:\n{stderr}"
    );
    assert!(
        stderr.contains("the OS keyring did not answer within 3 s"),
        "says what happened:\n{stderr}"
    );
    assert!(
        stderr.contains("unlock it"),
        "says how to fix it:\n{stderr}"
    );
    assert!(
        took < Duration::from_secs(20),
        "gave up after about 3 s, not {took:?}"
    );
    assert!(home.join("store.db").is_file(), "the store is still there");
}

// ---------------------------------------------------------------------------------------
// Encryption at rest

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_at_rest_are_encrypted_with_a_key_kept_in_the_os_keyring() {
    if !need_keyring("tokens_at_rest_are_encrypted_with_a_key_kept_in_the_os_keyring") {
        return;
    }
    let idp = sandbox(Faults::default()).await;
    let m = Machine::for_sandbox(&idp);
    m.browser_login(ALICE, &[]).await.ok();
    let path = m.store_path();
    let id = store_id(&path);

    let status = m.run(&["status", "--json"]).await.ok().json();
    assert_eq!(status["protection"], "encrypted", "{status}");
    assert_eq!(status["encrypted"], true);
    assert_eq!(status["cipher"], "AES-256-GCM");
    assert_eq!(status["key_location"], "OS keyring (Secret Service)");
    assert_eq!(status["keyring_service"], "tessera");
    assert_eq!(status["keyring_user"], id.as_str());
    assert_eq!(status["accounts"], 1);
    assert_eq!(status["store"], path.display().to_string());
    let human = m.run(&["status"]).await.ok();
    assert!(
        human
            .stdout
            .contains("Protection:  encrypted (AES-256-GCM)")
            && human.stdout.contains("OS keyring (Secret Service)")
            && human.stdout.contains("Accounts:    1"),
        "{}",
        human.stdout
    );

    // Hold the store open, so what the next process writes stays in the -wal file.
    let holder = open_store(&path, &StoreOptions::default()).expect("the store opens");
    assert_eq!(holder.info.protection, StoreProtection::Encrypted);
    let refreshed = m
        .run(&["token", "--force-refresh", "--json"])
        .await
        .ok()
        .json();
    assert_eq!(refreshed["token_source"], "identity_provider");
    let secrets = secrets_in(&holder.store, SANDBOX_CLIENT);
    for kind in ["access token", "refresh token", "ID token"] {
        assert!(
            secrets.iter().any(|(k, _)| *k == kind),
            "no {kind} in the store"
        );
    }
    assert!(
        secrets
            .iter()
            .any(|(_, s)| s == refreshed["access_token"].as_str().unwrap()),
        "the refreshed access token is in the store"
    );
    let db = std::fs::read(&path).unwrap();
    let wal = std::fs::read(PathBuf::from(format!("{}-wal", path.display()))).unwrap();
    assert!(
        wal.len() > 4096,
        "the refresh was written to the WAL ({} bytes)",
        wal.len()
    );
    // The search works: what is not secret (the user name) is there in clear.
    assert!(contains(&db, ALICE.as_bytes()) || contains(&wal, ALICE.as_bytes()));
    for (kind, secret) in &secrets {
        let tail = &secret[secret.len().saturating_sub(24)..];
        for (file, bytes) in [("store.db", &db), ("store.db-wal", &wal)] {
            assert!(
                !contains(bytes, secret.as_bytes()) && !contains(bytes, tail.as_bytes()),
                "a {kind} is readable in {file}"
            );
        }
    }

    // The key is in the keyring under service "tessera" and the store's id, and that
    // key, and no other, opens the store.
    let key = key_in_keyring(&id).expect("the store key is in the keyring");
    assert_eq!(key.len(), 32);
    let by_hand = SqliteStore::open(
        &path,
        Arc::new(AesGcmCipher::new(&StoreKey::from_slice(&key).unwrap())),
    )
    .expect("the keyring's key opens the store");
    assert_eq!(secrets_in(&by_hand, SANDBOX_CLIENT), secrets);
    let wrong = SqliteStore::open(&path, Arc::new(AesGcmCipher::new(&StoreKey::generate())))
        .unwrap_err()
        .to_string();
    assert!(wrong.contains("another encryption key"), "{wrong}");
    let none = SqliteStore::open(&path, Arc::new(PlaintextCipher))
        .unwrap_err()
        .to_string();
    assert!(none.contains("without its key"), "{none}");
    drop((by_hand, holder));

    // Two homes, two keys.
    let other = Machine::for_sandbox(&idp);
    other.run(&["status"]).await.ok();
    let other_key = key_in_keyring(&store_id(&other.store_path())).unwrap();
    assert_ne!(other_key, key);

    // store reset forgets the key.
    m.run(&["store", "reset", "--yes"]).await.ok();
    assert_eq!(key_in_keyring(&id), None);
}

// ---------------------------------------------------------------------------------------
// No keyring

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_keyring_the_cli_exits_5_saying_how_to_fix_it_and_plaintext_is_opt_in() {
    let idp = sandbox(Faults::default()).await;
    let mut m = Machine::for_sandbox(&idp);
    m.without_keyring();

    for args in [
        &["status"][..],
        &["accounts"],
        &["--profile", "Sandbox", "token"],
    ] {
        let r = m.run(args).await.exit(5);
        for needle in [
            "OS keyring (Secret Service) cannot be used",
            "start a Secret Service such as gnome-keyring",
            "unlock it",
            "--allow-plaintext",
            "allow_plaintext = true",
            "config.toml",
            "TESSERA_ALLOW_PLAINTEXT=1",
        ] {
            assert!(
                r.stderr.contains(needle),
                "{args:?}: {needle:?} missing from:\n{}",
                r.stderr
            );
        }
        assert_eq!(r.stdout, "", "{args:?}");
    }
    m.browser_login(ALICE, &[]).await.exit(5);

    let plain = m.run(&["--allow-plaintext", "status", "--json"]).await.ok();
    let j = plain.json();
    assert_eq!(j["protection"], "plaintext", "{j}");
    assert_eq!(j["encrypted"], false);
    assert_eq!(j["key_location"], Value::Null);
    assert_eq!(j["accounts"], 0);
    assert!(
        plain.stderr.contains("unencrypted"),
        "a warning says so: {}",
        plain.stderr
    );
    m.browser_login(ALICE, &["--allow-plaintext"]).await.ok();
    let human = m.run(&["--allow-plaintext", "status"]).await.ok();
    assert!(
        human.stdout.contains("Protection:  plaintext")
            && human.stdout.contains("Key:         none")
            && human.stdout.contains("Accounts:    1"),
        "{}",
        human.stdout
    );
    // Plaintext means plaintext: status tells the truth.
    let store = open_store(
        &m.store_path(),
        &StoreOptions {
            allow_plaintext: true,
            keystore: None,
        },
    )
    .unwrap();
    let rt = secrets_in(&store.store, SANDBOX_CLIENT)
        .into_iter()
        .find(|(k, _)| *k == "refresh token")
        .unwrap()
        .1;
    drop(store);
    assert!(contains(
        &std::fs::read(m.store_path()).unwrap(),
        rt.as_bytes()
    ));

    // Each use needs the permission: flag, variable or config.toml.
    let refused = m.run(&["--profile", "Sandbox", "token"]).await.exit(5);
    assert!(
        refused.stderr.contains("unencrypted") && refused.stderr.contains("--allow-plaintext"),
        "{}",
        refused.stderr
    );
    m.run_with(
        &["--profile", "Sandbox", "token"],
        &[("TESSERA_ALLOW_PLAINTEXT", "1")],
    )
    .await
    .ok();
    std::fs::write(
        m.home.path().join("config.toml"),
        "allow_plaintext = true\n",
    )
    .unwrap();
    m.run(&["--profile", "Sandbox", "token"]).await.ok();

    // With a keyring back, the plaintext store stays what it is: no silent change.
    if keyring_check().is_ok() {
        let mut with_bus = Machine::for_sandbox(&idp);
        std::mem::swap(&mut with_bus.home, &mut m.home);
        let s = with_bus.run(&["status", "--json"]).await.ok().json();
        assert_eq!(s["protection"], "plaintext");
        std::fs::remove_file(with_bus.home.path().join("config.toml")).unwrap();
        with_bus.run(&["status"]).await.exit(5);
        std::mem::swap(&mut with_bus.home, &mut m.home);
    }
}

// ---------------------------------------------------------------------------------------
// Signing out leaves no token on disk

/// A plaintext store, so the test can search the raw bytes: after `logout`, no file of the
/// store (`store.db`, `-wal`, `-shm`, anything `store.db*`) holds any token the account
/// ever had (before and after a refresh-token rotation), even while another process (as
/// the app would) keeps the store open, so its WAL file is not deleted on exit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signed_out_tokens_are_in_no_file_of_the_store() {
    let idp = sandbox(Faults::default()).await;
    let mut m = Machine::for_sandbox(&idp);
    m.without_keyring();
    let plain = ["--allow-plaintext"];
    m.browser_login(ALICE, &plain).await.ok();
    m.browser_login(BOB, &plain).await.ok();
    let holder = open_store(
        &m.store_path(),
        &StoreOptions {
            allow_plaintext: true,
            keystore: None,
        },
    )
    .unwrap();
    assert_eq!(holder.info.protection, StoreProtection::Plaintext);
    let mut alice = secrets_of(&holder.store, SANDBOX_CLIENT, Some(ALICE));
    m.run(&[
        "--allow-plaintext",
        "token",
        "--account",
        ALICE,
        "--force-refresh",
    ])
    .await
    .ok();
    alice.extend(secrets_of(&holder.store, SANDBOX_CLIENT, Some(ALICE)));
    alice.sort();
    alice.dedup();
    for kind in ["access token", "refresh token", "ID token"] {
        assert!(alice.iter().any(|(k, _)| *k == kind), "no {kind}");
    }
    assert!(
        alice.iter().filter(|(k, _)| *k == "refresh token").count() == 2,
        "the refresh token was rotated"
    );
    let bob = secrets_of(&holder.store, SANDBOX_CLIENT, Some(BOB));
    // Read by another process: closing a file descriptor of the store here would drop the
    // holder's POSIX locks on it, and the CLI would take itself for the last user of the
    // store and delete its WAL file on exit.
    let store_files = || -> BTreeMap<String, Vec<u8>> {
        std::fs::read_dir(m.home.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|name| name.starts_with("store.db"))
            .map(|name| {
                let out = std::process::Command::new("cat")
                    .arg(m.home.path().join(&name))
                    .output()
                    .unwrap();
                assert!(out.status.success(), "cat {name}");
                (name, out.stdout)
            })
            .collect()
    };
    // Where a token is (its whole value, or its last 24 characters: random in every one).
    let found = |files: &BTreeMap<String, Vec<u8>>, secret: &str| -> Vec<String> {
        let tail = &secret[secret.len() - 24..];
        files
            .iter()
            .filter(|(_, bytes)| {
                contains(bytes, secret.as_bytes()) || contains(bytes, tail.as_bytes())
            })
            .map(|(name, _)| name.clone())
            .collect()
    };
    let before = store_files();
    assert!(before.contains_key("store.db-wal"), "{:?}", before.keys());
    for (kind, secret) in &alice {
        assert!(
            !found(&before, secret).is_empty(),
            "the plaintext store holds the {kind} before sign-out"
        );
    }

    m.run(&["--allow-plaintext", "logout", "--account", ALICE])
        .await
        .ok();
    let after = store_files();
    assert_eq!(
        after.get("store.db-wal").map(Vec::len),
        Some(0),
        "the WAL file is truncated"
    );
    for (kind, secret) in &alice {
        let files = found(&after, secret);
        assert!(
            files.is_empty(),
            "a signed-out {kind} is still in {files:?}"
        );
    }
    // The other account is untouched, and the store reads back whole.
    assert_eq!(secrets_of(&holder.store, SANDBOX_CLIENT, Some(BOB)), bob);
    assert_eq!(secrets_of(&holder.store, SANDBOX_CLIENT, Some(ALICE)), []);
    for (kind, secret) in &bob {
        assert!(!found(&after, secret).is_empty(), "the {kind} of {BOB}");
    }
}

// ---------------------------------------------------------------------------------------
// A missing key, store reset, a corrupt file

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_missing_from_the_keyring_changes_nothing_and_store_reset_starts_over() {
    if !need_keyring("a_key_missing_from_the_keyring_changes_nothing_and_store_reset_starts_over") {
        return;
    }
    let idp = sandbox(Faults::default()).await;
    let m = Machine::for_sandbox(&idp);
    m.browser_login(ALICE, &[]).await.ok();
    let id = store_id(&m.store_path());
    remove_key_from_keyring(&id);
    let before = m.files();
    assert_eq!(before.keys().collect::<Vec<_>>(), ["store.db"]);

    for args in [
        &["status"][..],
        &["accounts", "--json"],
        &["--profile", "Sandbox", "token"],
        &["--allow-plaintext", "--profile", "Sandbox", "token"],
        &["logout", "--all"],
    ] {
        let r = m.run(args).await.exit(5);
        for needle in [
            &format!(
                "the encryption key for {} is not in the keyring",
                m.store_path().display()
            )[..],
            "nothing was deleted",
            "run `tessera-cli store reset` to start over",
        ] {
            assert!(
                r.stderr.contains(needle),
                "{args:?}: {needle:?} missing from:\n{}",
                r.stderr
            );
        }
        assert_eq!(r.stdout, "");
    }
    m.browser_login(BOB, &[]).await.exit(5);
    assert_eq!(
        key_in_keyring(&id),
        None,
        "no new key replaced the lost one"
    );
    assert!(m.files() == before, "the store files are unchanged");

    // Confirmation is required (stdin is not a terminal here).
    let unconfirmed = m.run(&["store", "reset"]).await.exit(2);
    assert!(
        unconfirmed.stderr.contains("--yes"),
        "{}",
        unconfirmed.stderr
    );
    assert!(m.files() == before);

    let reset = m.run(&["store", "reset", "--yes"]).await.ok();
    assert!(
        reset.stderr.contains("Moved the token store")
            && reset.stderr.contains("nothing was deleted"),
        "{}",
        reset.stderr
    );
    let after = m.files();
    assert!(!after.contains_key("store.db"));
    let (moved, bytes) = after
        .iter()
        .find(|(name, _)| name.starts_with("store.db.reset-"))
        .expect("the old store is kept under a new name");
    let stamp = &moved["store.db.reset-".len()..];
    assert!(
        stamp.len() == 16 && stamp.ends_with('Z') && stamp.as_bytes()[8] == b'T',
        "a UTC timestamp: {moved}"
    );
    assert!(reset.stderr.contains(moved.as_str()), "{}", reset.stderr);
    assert!(
        bytes == &before["store.db"],
        "the old store's bytes are kept"
    );

    let fresh = m.run(&["status", "--json"]).await.ok().json();
    assert_eq!(fresh["protection"], "encrypted");
    assert_eq!(fresh["accounts"], 0);
    assert!(key_in_keyring(&id).is_some(), "a new key");
    m.browser_login(BOB, &[]).await.ok();
    let t = m.run(&["--profile", "Sandbox", "token"]).await.ok();
    assert!(idp.verify_token(t.stdout.trim()).is_ok());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_corrupt_store_file_is_moved_aside_with_a_timestamp() {
    let mut m = Machine::new();
    if keyring_check().is_err() {
        assert!(!in_ci(), "CI needs a Secret Service: {:?}", keyring_check());
        m.env.push(("TESSERA_ALLOW_PLAINTEXT".into(), "1".into()));
    }
    let garbage: Vec<u8> = b"this is not a token store. "
        .iter()
        .copied()
        .cycle()
        .take(8192)
        .collect();
    std::fs::write(m.store_path(), &garbage).unwrap();
    let r = m.run(&["status"]).await.exit(5);
    assert!(
        r.stderr
            .contains("is corrupt or not a Tessera store; it was moved aside to"),
        "{}",
        r.stderr
    );
    let files = m.files();
    let (moved, bytes) = files
        .iter()
        .find(|(n, _)| n.starts_with("store.db.corrupt-"))
        .expect("moved aside, not deleted");
    assert!(r.stderr.contains(moved.as_str()), "{}", r.stderr);
    assert!(moved.ends_with('Z'), "{moved}");
    assert!(bytes == &garbage);
    assert!(!files.contains_key("store.db"));
    let j = m.run(&["status", "--json"]).await.ok().json();
    assert_eq!(j["accounts"], 0);
    assert!(m.store_path().is_file(), "a new store");
}

// ---------------------------------------------------------------------------------------
// SIGKILL during writes

const WRITER_ENV: &str = "login.writer.example";
const WRITER_CLIENT: &str = "store-writer-client";

/// Opens the store and reads every entry the writer writes, decrypting each secret.
/// Returns the progress sequence number found.
fn full_read(store: &dyn TokenStore) -> (usize, u64) {
    let envs = vec![WRITER_ENV.to_string()];
    let mut secrets = 0;
    for a in store.accounts().expect("accounts") {
        let q = CredentialQuery {
            home_account_id: &a.home_account_id,
            environments: &envs,
            client_id: WRITER_CLIENT,
            realm: None,
        };
        for at in store.access_tokens(&q).expect("access tokens") {
            assert!(at.secret.secret().starts_with("at-"));
            secrets += 1;
        }
        for rt in store.refresh_tokens(&q, None).expect("refresh tokens") {
            assert!(rt.secret.secret().starts_with("rt-"));
            secrets += 1;
        }
        if let Some(idt) = store.id_token(&q).expect("ID token") {
            assert!(idt.secret.secret().starts_with("idt-"));
            secrets += 1;
        }
    }
    let seq = store
        .app_metadata(&envs, "progress")
        .expect("app metadata")
        .and_then(|m| m.extra.get("seq").and_then(Value::as_u64))
        .unwrap_or(0);
    (secrets, seq)
}

#[test]
fn the_store_opens_and_reads_back_after_sigkill_at_any_moment_during_writes() {
    let mut args_extra: Vec<&str> = Vec::new();
    let expected = match keyring_check() {
        Ok(()) => StoreProtection::Encrypted,
        Err(why) if in_ci() => panic!("CI needs a Secret Service for this test: {why}"),
        Err(why) => {
            eprintln!("no Secret Service ({why}): the crash test runs on a plaintext store");
            args_extra.push("--allow-plaintext");
            StoreProtection::Plaintext
        }
    };
    let home = tessera_tests::home::temp_home();
    let path = home.path().join("store.db");
    let options = StoreOptions {
        allow_plaintext: expected == StoreProtection::Plaintext,
        keystore: None,
    };
    let mut rng = rand::thread_rng();
    let (mut killed_while_writing, mut writes) = (0, 0u64);
    let started = Instant::now();
    for i in 0..30 {
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_store-writer"))
            .arg("--store")
            .arg(&path)
            .args(&args_extra)
            .args(["--seconds", "30"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("store-writer starts");
        let last = Arc::new(AtomicU64::new(0));
        let ready = Arc::new(AtomicBool::new(false));
        let reader = {
            let (last, ready) = (last.clone(), ready.clone());
            let out = child.stdout.take().unwrap();
            std::thread::spawn(move || {
                for line in BufReader::new(out).lines() {
                    let Ok(line) = line else { break };
                    if line.starts_with("ready") {
                        ready.store(true, Ordering::SeqCst);
                    } else if let Ok(n) = line.trim().parse::<u64>() {
                        last.store(n, Ordering::SeqCst);
                    }
                }
            })
        };
        if i % 3 == 0 {
            // Any moment: while it opens the store, asks the keyring, creates the schema...
            std::thread::sleep(Duration::from_millis(rng.gen_range(0..120)));
        } else {
            let wait = Instant::now();
            while !ready.load(Ordering::SeqCst) {
                assert!(
                    wait.elapsed() < Duration::from_secs(30),
                    "store-writer did not open the store"
                );
                if let Some(status) = child.try_wait().unwrap() {
                    let mut err = String::new();
                    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut err)
                        .unwrap();
                    panic!("store-writer ended ({status}) before writing: {err}");
                }
                std::thread::sleep(Duration::from_millis(2));
            }
            std::thread::sleep(Duration::from_millis(rng.gen_range(1..250)));
        }
        child.kill().expect("SIGKILL");
        let status = child.wait().unwrap();
        reader.join().unwrap();
        {
            use std::os::unix::process::ExitStatusExt;
            if status.signal() != Some(9) {
                let mut err = String::new();
                std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut err).unwrap();
                panic!("store-writer was not killed but ended with {status}: {err}");
            }
        }
        let last = last.load(Ordering::SeqCst);
        if last > 0 {
            killed_while_writing += 1;
            writes += last;
        }

        let opened = open_store(&path, &options).unwrap_or_else(|e| {
            panic!("after kill #{i} (write {last}) the store does not open: {e}")
        });
        assert_eq!(opened.info.protection, expected);
        let (secrets, seq) = full_read(&opened.store);
        if last > 0 {
            assert!(
                seq == last || seq == last + 1,
                "kill #{i}: write {last} was reported committed, the store has {seq}"
            );
            assert!(secrets > 0);
        }
        drop(opened);
        let conn = rusqlite::Connection::open(&path).unwrap();
        let check: String = conn
            .query_row("PRAGMA integrity_check", [], |r| r.get(0))
            .unwrap();
        assert_eq!(check, "ok", "kill #{i}");
    }
    eprintln!(
        "30 SIGKILLs ({killed_while_writing} in the middle of a write loop, {writes} writes \
         committed) in {:?}: the store opened and read back every time",
        started.elapsed()
    );
    assert!(killed_while_writing >= 15, "{killed_while_writing}");
    let _ = OsKeyring.forget(&store_id(&path));
}

// ---------------------------------------------------------------------------------------
// Concurrency

/// A sign-in target of its own (client id) for one user.
struct Lane {
    profile: String,
    user: &'static str,
    signs_out: bool,
}

fn lanes_profiles(idp: &SandboxHandle, n: usize) -> String {
    let authority = format!("{}common", idp.base_url());
    (1..=n)
        .map(|i| {
            format!(
                "[[profile]]\nname = \"lane{i}\"\nauthority = \"{authority}\"\n\
                 client_id = \"c0c0c0c0-0000-4000-8000-{i:012x}\"\n\
                 redirect_uri = \"http://localhost\"\nscopes = [\"User.Read\"]\n\
                 sign_in = \"device-code\"\ninstance_discovery = false\n\n"
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nine_cli_processes_and_the_engine_share_the_store_without_losing_anything() {
    let mut m_env = Vec::new();
    if keyring_check().is_err() {
        assert!(!in_ci(), "CI needs a Secret Service: {:?}", keyring_check());
        m_env.push(("TESSERA_ALLOW_PLAINTEXT".to_string(), "1".to_string()));
    }
    // Strict rotation: a refresh token that was already redeemed is refused, so a lost
    // update of a rotated refresh token shows up as a failed refresh.
    let idp = sandbox(Faults {
        device_code_interval_secs: Some(1),
        strict_rotation: true,
        ..Faults::default()
    })
    .await;
    let mut m = Machine::for_sandbox(&idp);
    m.env.extend(m_env);
    std::fs::write(
        m.home.path().join("profiles.toml"),
        lanes_profiles(&idp, 10),
    )
    .unwrap();
    // Carol and Dave sign out at the end: nobody else uses them (signing out removes an
    // account's tokens for every client). Alice and Bob stay, each through several clients.
    let users = [ALICE, ALICE, ALICE, ALICE, BOB, BOB, BOB, CAROL, DAVE];
    let lanes: Vec<Lane> = users
        .iter()
        .enumerate()
        .map(|(i, user)| Lane {
            profile: format!("lane{}", i + 1),
            user,
            signs_out: *user == CAROL || *user == DAVE,
        })
        .collect();
    let m = Arc::new(m);
    let base = idp.base_url();
    let started = Instant::now();

    let mut tasks = Vec::new();
    for lane in lanes {
        let (m, base) = (m.clone(), base.clone());
        tasks.push(tokio::spawn(async move {
            let p = lane.profile.as_str();
            let mut runs = vec![
                m.device_login(
                    &base,
                    &["--profile", p, "login", "--device-code"],
                    lane.user,
                )
                .await,
            ];
            runs.push(m.run(&["--profile", p, "token", "--json"]).await);
            for _ in 0..3 {
                runs.push(
                    m.run(&["--profile", p, "token", "--force-refresh", "--json"])
                        .await,
                );
            }
            let last_at = serde_json::from_str::<Value>(&runs.last().unwrap().stdout)
                .ok()
                .and_then(|j| j["access_token"].as_str().map(str::to_owned));
            if lane.signs_out {
                runs.push(
                    m.run(&["--profile", p, "logout", "--account", lane.user])
                        .await,
                );
            }
            (lane, runs, last_at)
        }));
    }
    // The desktop app's stand-in: the engine in this process, lane 10, Bob.
    let engine = {
        let (home, base) = (m.home.path().to_path_buf(), base.clone());
        let plaintext = m.env.iter().any(|(k, _)| k == "TESSERA_ALLOW_PLAINTEXT");
        tokio::spawn(async move {
            let ctx = Tessera::open_with(
                Some(&home),
                &StoreOptions {
                    allow_plaintext: plaintext,
                    keystore: None,
                },
            )
            .expect("the engine opens the store");
            let profile = ctx.profile("lane10").unwrap().clone();
            let app = ctx.app(&profile).unwrap();
            let scopes = ScopeSet::parse("User.Read");
            let flow = app.initiate_device_flow(&scopes).await.unwrap();
            tessera_sandbox_idp::scripted_device_approval(
                &base,
                &flow.user_code,
                BOB,
                DEMO_PASSWORD,
            )
            .await
            .unwrap();
            let signed_in = app
                .acquire_token_by_device_flow(flow, tokio_util::sync::CancellationToken::new())
                .await
                .expect("the engine signs in");
            let mut last = signed_in.access_token.secret().to_owned();
            for _ in 0..3 {
                let r = app
                    .acquire_token_silent(
                        &scopes,
                        &signed_in.account,
                        &SilentOptions {
                            force_refresh: true,
                            ..SilentOptions::default()
                        },
                    )
                    .await
                    .expect("the engine refreshes");
                last = r.access_token.secret().to_owned();
            }
            last
        })
    };

    let mut expected_at: Vec<(String, String)> = Vec::new();
    let mut processes = 0;
    for t in tasks {
        let (lane, runs, last_at) = t.await.unwrap();
        for r in &runs {
            processes += 1;
            assert!(
                !r.stderr.to_lowercase().contains("locked"),
                "{}: `tessera-cli {}` met a lock:\n{}",
                lane.profile,
                r.args,
                r.stderr
            );
            assert_eq!(
                r.code, 0,
                "{}: `tessera-cli {}` failed:\n{}",
                lane.profile, r.args, r.stderr
            );
        }
        if !lane.signs_out {
            expected_at.push((lane.profile.clone(), last_at.expect("a refreshed token")));
        }
    }
    let engine_at = engine.await.unwrap();
    expected_at.push(("lane10".into(), engine_at));
    let took = started.elapsed();

    // Every lane's last token is the cached one; its latest refresh token still works
    // (strict rotation refuses any older one); signed-out accounts are gone.
    for (profile, at) in &expected_at {
        let j = m
            .run(&["--profile", profile, "token", "--json"])
            .await
            .ok()
            .json();
        assert_eq!(j["token_source"], "cache", "{profile}");
        assert_eq!(
            j["access_token"].as_str(),
            Some(at.as_str()),
            "{profile}: the last refreshed access token was kept"
        );
        m.run(&["--profile", profile, "token", "--force-refresh"])
            .await
            .ok();
    }
    let store = open_store(
        &m.store_path(),
        &StoreOptions {
            allow_plaintext: true,
            keystore: None,
        },
    )
    .unwrap();
    let mut usernames: Vec<String> = store
        .store
        .accounts()
        .unwrap()
        .into_iter()
        .map(|a| a.username)
        .collect();
    usernames.sort();
    assert_eq!(usernames, [ALICE, BOB], "Carol and Dave signed out");
    for lane in ["lane8", "lane9"] {
        let j = m
            .run(&["--profile", lane, "accounts", "--json"])
            .await
            .ok()
            .json();
        assert_eq!(j, serde_json::json!([]), "{lane}");
        m.run(&["--profile", lane, "token"]).await.exit(3);
    }
    eprintln!(
        "{processes} tessera-cli processes (9 lanes at once) and the in-process engine: \
         signed in, refreshed 3x each, 2 signed out, in {took:?}; nothing lost, no lock errors"
    );
}
