//! Load: 16 `tessera-cli` processes at once on one encrypted store (one `--home`, the
//! key in the real keyring), 100 mixed operations each against the in-process sandbox:
//! device-code sign-in, silent `token`, `token --force-refresh`, `logout`. Then each
//! worker signs in and takes a token one last time, and the store must hold every
//! worker's account, refresh token and the very access token it printed: nothing lost,
//! nothing corrupted (`PRAGMA integrity_check`). Prints p50/p99 latency per operation.
//!
//! Workers share the sandbox's four users (four workers each), each with its own client
//! id, so that their tokens are their own; a `logout` signs the user out of every client
//! (MSAL's `remove_account`), so during the mixed phase a worker's `token` may find its
//! user signed out by another worker: exit 3 (interaction required) is then the right
//! answer. Any other failure (a store error, a lock timeout, a crash) fails the test.
//!
//! The agent's load test: 16 `tessera-cli token` processes x 100 requests through one
//! `tessera-cli agent` while another process signs a second user in and out without it:
//! no request fails, every answer is recorded, nothing is lost.
//!
//! Size: `TESSERA_LOAD_WORKERS` (16) and `TESSERA_LOAD_OPS` (100 per worker). Needs a
//! Secret Service: run inside scripts/test's D-Bus session (skipped elsewhere, fails in
//! CI without one). The CLI binary is found as `cli.rs` finds it (`TESSERA_CLI_BIN`
//! overrides).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::atomic::AtomicUsize;
use std::sync::atomic::Ordering::SeqCst;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rand::{Rng, SeedableRng};

use tessera_core::cache::{CredentialQuery, TokenStore};
use tessera_core::keystore::{KeyStore, OsKeyring};
use tessera_sandbox_idp::{Faults, SandboxConfig, SandboxHandle, DEMO_PASSWORD};
use tokio::io::{AsyncBufReadExt, BufReader};
use url::Url;

const USERS: [&str; 4] = [
    "alice@contoso.example",
    "bob@contoso.example",
    "carol@fabrikam.example",
    "dave@outlook.example",
];
const SCOPE: &str = "User.Read";

use tessera_tests::cli_bin::cli_bin;

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(default)
}

/// `TESSERA_LOAD_WORKERS` (16) processes, `TESSERA_LOAD_OPS` (100) operations each.
fn load_size() -> (usize, usize) {
    (
        env_usize("TESSERA_LOAD_WORKERS", 16).max(1),
        env_usize("TESSERA_LOAD_OPS", 100).max(2),
    )
}

/// Can the OS keyring save, return and forget a key? Panics in CI without one.
fn keyring_works() -> bool {
    // One probe entry per call: the load tests run at the same time.
    static PROBES: AtomicUsize = AtomicUsize::new(0);
    let id = format!(
        "store:tessera-load-probe-{}-{}",
        std::process::id(),
        PROBES.fetch_add(1, SeqCst)
    );
    let key = tessera_core::cache::StoreKey::generate();
    let ok = OsKeyring.save(&id, &key).is_ok()
        && OsKeyring
            .load(&id)
            .ok()
            .flatten()
            .is_some_and(|k| k.secret_bytes() == key.secret_bytes());
    let _ = OsKeyring.forget(&id);
    if !ok && std::env::var_os("CI").is_some_and(|v| !v.is_empty()) {
        panic!(
            "the load test needs a Secret Service: run it inside dbus-run-session with an \
             unlocked gnome-keyring, as scripts/test does"
        );
    }
    ok
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Op {
    Login,
    Token,
    ForceRefresh,
    Logout,
}

impl Op {
    fn name(self) -> &'static str {
        match self {
            Op::Login => "login --device-code",
            Op::Token => "token",
            Op::ForceRefresh => "token --force-refresh",
            Op::Logout => "logout",
        }
    }
}

struct Outcome {
    code: i32,
    stdout: String,
    stderr: String,
    took: Duration,
}

struct Worker {
    home: PathBuf,
    authority: String,
    client: String,
    user: &'static str,
    base: Url,
}

impl Worker {
    fn command(&self, args: &[&str]) -> tokio::process::Command {
        let mut c = tokio::process::Command::new(cli_bin());
        c.arg("--home")
            .arg(&self.home)
            .args(["--authority", &self.authority, "--client-id", &self.client])
            .args(args)
            .env_remove("TESSERA_HOME")
            .env_remove("TESSERA_SANDBOX_URL")
            .env("TESSERA_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        c
    }

    async fn run(&self, op: Op) -> Outcome {
        let args: Vec<&str> = match op {
            Op::Login => return self.login().await,
            Op::Token => vec!["token", "--account", self.user, "--scope", SCOPE],
            Op::ForceRefresh => vec![
                "token",
                "--account",
                self.user,
                "--scope",
                SCOPE,
                "--force-refresh",
            ],
            Op::Logout => vec!["logout", "--account", self.user],
        };
        let started = Instant::now();
        let out = tokio::time::timeout(Duration::from_secs(120), self.command(&args).output())
            .await
            .expect("tessera-cli finishes within 2 minutes")
            .expect("tessera-cli runs");
        Outcome {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
            took: started.elapsed(),
        }
    }

    /// `login --device-code`: the code from stderr, approved as the user would.
    async fn login(&self) -> Outcome {
        let c = self.command(&["login", "--device-code", "--scope", SCOPE]);
        device_login(c, &self.base, self.user).await
    }
}

/// Run a `login --device-code` command: read the code from its stderr and approve it as
/// `user` on the sandbox's pages.
async fn device_login(mut command: tokio::process::Command, base: &Url, user: &str) -> Outcome {
    let started = Instant::now();
    let mut child = command.spawn().expect("tessera-cli starts");
    let mut lines = BufReader::new(child.stderr.take().expect("stderr")).lines();
    let mut stderr = String::new();
    let mut approved = false;
    while let Some(line) = tokio::time::timeout(Duration::from_secs(60), lines.next_line())
        .await
        .expect("tessera-cli writes within 60 s")
        .expect("stderr is readable")
    {
        stderr.push_str(&line);
        stderr.push('\n');
        if let (false, Some(code)) = (approved, device_code(&line)) {
            tessera_sandbox_idp::scripted_device_approval(base, &code, user, DEMO_PASSWORD)
                .await
                .expect("the device code is approved");
            approved = true;
        }
    }
    let out = child.wait_with_output().await.expect("tessera-cli ends");
    Outcome {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr,
        took: started.elapsed(),
    }
}

/// The user code in the CLI's device-code message (`... enter the code CODE ...`).
fn device_code(line: &str) -> Option<String> {
    let words: Vec<&str> = line.split_whitespace().collect();
    let at = words.windows(2).position(|w| w[0] == "code")? + 1;
    Some(words.get(at)?.trim_end_matches('.').to_owned())
}

/// What a worker did: (operation, exit code, latency) per step, and its last token.
#[derive(Default)]
struct Log {
    steps: Vec<(Op, i32, Duration)>,
    last_token: Option<String>,
    /// Tokens that had to succeed (no sign-out of the user since the sign-in).
    must_hold: usize,
}

#[track_caller]
fn check(op: Op, o: &Outcome, allowed: &[i32], who: &str) {
    assert!(
        allowed.contains(&o.code),
        "{who}: {} exited {} (allowed {allowed:?})\nstderr:\n{}",
        op.name(),
        o.code,
        o.stderr
    );
    for bad in [
        "database is locked",
        "database error",
        "panicked",
        "corrupt",
    ] {
        assert!(
            !o.stderr.contains(bad),
            "{who}: {} said {bad:?}:\n{}",
            op.name(),
            o.stderr
        );
    }
}

fn a_token(s: &str) -> Option<String> {
    let t = s.trim();
    (t.split('.').count() == 3 && t.len() > 100).then(|| t.to_string())
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

async fn sandbox() -> SandboxHandle {
    tessera_sandbox_idp::start(SandboxConfig {
        port: 0,
        faults: Faults {
            // The CLI polls at least every second; the sandbox asks for no more.
            device_code_interval_secs: Some(0),
            ..Faults::default()
        },
        ..SandboxConfig::default()
    })
    .await
    .expect("the sandbox starts")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sixteen_cli_processes_on_one_store_lose_nothing() {
    if !keyring_works() {
        eprintln!("SKIPPED load test: no usable Secret Service; run it inside scripts/test's D-Bus session");
        return;
    }
    let (workers, ops) = load_size();
    let idp = sandbox().await;
    let home = tessera_tests::home::temp_home();
    let base = idp.base_url();
    let authority = format!("{}common", base);
    let bin = cli_bin();
    eprintln!(
        "load: {workers} workers x {ops} operations, {}",
        bin.display()
    );

    // The store exists (and its key is in the keyring) before the workers start.
    let first = std::process::Command::new(bin)
        .arg("--home")
        .arg(home.path())
        .arg("status")
        .env("TESSERA_LOG", "warn")
        .output()
        .expect("tessera-cli runs");
    assert!(
        first.status.success(),
        "status: {}",
        String::from_utf8_lossy(&first.stderr)
    );

    let barrier = Arc::new(tokio::sync::Barrier::new(workers));
    // Sign-outs of each user, started and finished: a worker's token must be there
    // unless a sign-out of its user ran at some time since its last sign-in began.
    let logouts: Arc<Vec<(AtomicUsize, AtomicUsize)>> = Arc::new(
        USERS
            .iter()
            .map(|_| (AtomicUsize::new(0), AtomicUsize::new(0)))
            .collect(),
    );
    let logs: Arc<Mutex<Vec<(usize, Log)>>> = Arc::default();
    let started = Instant::now();
    let mut tasks = Vec::new();
    for w in 0..workers {
        let worker = Worker {
            home: home.path().to_path_buf(),
            authority: authority.clone(),
            client: format!("10ad0000-0000-4000-8000-{w:012}"),
            user: USERS[w % USERS.len()],
            base: base.clone(),
        };
        let barrier = Arc::clone(&barrier);
        let logs = Arc::clone(&logs);
        let logouts = Arc::clone(&logouts);
        tasks.push(tokio::spawn(async move {
            let who = format!("worker {w} ({}, {})", worker.user, worker.client);
            let mut rng = rand::rngs::StdRng::seed_from_u64(0x10ad + w as u64);
            let mut log = Log::default();
            let (started, finished) = &logouts[w % USERS.len()];
            // Sign-outs of the user finished when this worker's last good sign-in began.
            let mut signed_in_since: Option<usize> = None;
            let mut must_hold = 0;
            // Mixed phase: sign-ins, silent tokens, forced refreshes, sign-outs.
            for i in 0..ops - 2 {
                let op = if i == 0 {
                    Op::Login
                } else {
                    match rng.gen_range(0..100) {
                        0..20 => Op::Login,
                        20..70 => Op::Token,
                        70..90 => Op::ForceRefresh,
                        _ => Op::Logout,
                    }
                };
                let before = finished.load(SeqCst);
                if op == Op::Logout {
                    started.fetch_add(1, SeqCst);
                }
                let o = worker.run(op).await;
                if op == Op::Logout {
                    finished.fetch_add(1, SeqCst);
                    signed_in_since = None;
                }
                if op == Op::Login {
                    signed_in_since = Some(before);
                }
                // Nothing lost: with no sign-out of the user since the sign-in began,
                // the token must come (from the cache or by refresh).
                if matches!(op, Op::Token | Op::ForceRefresh)
                    && signed_in_since.is_some_and(|f0| started.load(SeqCst) == f0)
                {
                    must_hold += 1;
                    assert_eq!(
                        o.code,
                        0,
                        "{who}: {} failed with no sign-out since its sign-in: a token was lost\n{}",
                        op.name(),
                        o.stderr
                    );
                }
                // 3: another worker signed this user out meanwhile (or this one did).
                let allowed: &[i32] = match op {
                    Op::Login => &[0],
                    _ => &[0, 3],
                };
                check(op, &o, allowed, &who);
                if matches!(op, Op::Token | Op::ForceRefresh) && o.code == 0 {
                    assert!(
                        a_token(&o.stdout).is_some(),
                        "{who}: {} printed no token",
                        op.name()
                    );
                }
                log.steps.push((op, o.code, o.took));
            }
            // Final phase: no more sign-outs; every worker signs in and takes a token.
            barrier.wait().await;
            let o = worker.run(Op::Login).await;
            check(Op::Login, &o, &[0], &who);
            log.steps.push((Op::Login, o.code, o.took));
            let o = worker.run(Op::Token).await;
            check(Op::Token, &o, &[0], &who);
            log.last_token = Some(a_token(&o.stdout).unwrap_or_else(|| panic!("{who}: no token")));
            log.steps.push((Op::Token, o.code, o.took));
            log.must_hold = must_hold;
            logs.lock().unwrap().push((w, log));
        }));
    }
    for t in tasks {
        t.await.expect("a worker failed");
    }
    let wall = started.elapsed();

    // Nothing lost: every worker's account, refresh token and last access token.
    let store_path = home.path().join("store.db");
    let store = tessera_core::keystore::open_store(
        &store_path,
        &tessera_core::keystore::StoreOptions::default(),
    )
    .expect("the store opens")
    .store;
    let accounts = store.accounts().expect("accounts");
    let logs = std::mem::take(&mut *logs.lock().unwrap());
    for (w, log) in &logs {
        let user = USERS[w % USERS.len()];
        let client = format!("10ad0000-0000-4000-8000-{w:012}");
        let account = accounts
            .iter()
            .find(|a| a.username.eq_ignore_ascii_case(user))
            .unwrap_or_else(|| panic!("worker {w}: the account {user} is gone"));
        let envs = vec![account.environment.clone()];
        let q = CredentialQuery {
            home_account_id: &account.home_account_id,
            environments: &envs,
            client_id: &client,
            realm: None,
        };
        assert!(
            !store.refresh_tokens(&q, None).expect("rts").is_empty(),
            "worker {w}: its refresh token is gone"
        );
        let last = log.last_token.as_deref().expect("a last token");
        assert!(
            store
                .access_tokens(&q)
                .expect("ats")
                .iter()
                .any(|at| at.secret.secret() == last),
            "worker {w}: the access token it printed last is not in the store"
        );
    }
    let integrity: String = rusqlite::Connection::open(&store_path)
        .and_then(|c| c.query_row("PRAGMA integrity_check", [], |r| r.get(0)))
        .expect("integrity_check runs");
    assert_eq!(integrity, "ok");
    drop(store);
    let _ = OsKeyring.forget(&tessera_core::keystore::store_id(&store_path));

    // Latency per operation kind.
    let mut by_op: BTreeMap<Op, (Vec<Duration>, usize)> = BTreeMap::new();
    for (_, log) in &logs {
        for (op, code, took) in &log.steps {
            let e = by_op.entry(*op).or_default();
            e.0.push(*took);
            if *code == 3 {
                e.1 += 1;
            }
        }
    }
    let total: usize = by_op.values().map(|(v, _)| v.len()).sum();
    let checked: usize = logs.iter().map(|(_, l)| l.must_hold).sum();
    assert!(
        checked > 0 || ops < 10,
        "no token was checked against a sign-in"
    );
    let mut table = format!(
        "load: {workers} concurrent tessera-cli processes x {ops} operations = {total} runs in {:.1} s on one store ({})\n\
                  {checked} silent/forced tokens were taken with no sign-out of their user since their sign-in, and all came\n\
         | operation | runs | exit 3 (user signed out meanwhile) | p50 | p99 | max |\n|---|---:|---:|---:|---:|---:|\n",
        wall.as_secs_f64(),
        bin.display()
    );
    for (op, (mut v, signed_out)) in by_op {
        v.sort();
        table.push_str(&format!(
            "| {} | {} | {} | {:.0} ms | {:.0} ms | {:.0} ms |\n",
            op.name(),
            v.len(),
            signed_out,
            percentile(&v, 0.5).as_secs_f64() * 1e3,
            percentile(&v, 0.99).as_secs_f64() * 1e3,
            v.last().map_or(0.0, |d| d.as_secs_f64() * 1e3),
        ));
    }
    println!("{table}");
    eprintln!("{table}");
    drop(idp);
}

/// `tessera-cli ARGS` against `home` with the Sandbox profile, through the agent of
/// `home/agent.sock` when one answers.
fn profile_command(home: &std::path::Path, base: &Url, args: &[&str]) -> tokio::process::Command {
    let mut c = tokio::process::Command::new(cli_bin());
    c.arg("--home")
        .arg(home)
        .args(args)
        .env_remove("TESSERA_HOME")
        .env_remove("TESSERA_AGENT")
        .env("TESSERA_SANDBOX_URL", base.as_str().trim_end_matches('/'))
        .env("TESSERA_AGENT_SOCKET", home.join("agent.sock"))
        .env("TESSERA_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    c
}

/// `login --device-code` with the Sandbox profile, approved as `user`.
async fn profile_login(home: &std::path::Path, base: &Url, user: &str) -> Outcome {
    let c = profile_command(
        home,
        base,
        &["--profile", "Sandbox", "login", "--device-code"],
    );
    device_login(c, base, user).await
}

async fn profile_run(home: &std::path::Path, base: &Url, args: &[&str]) -> Outcome {
    let started = Instant::now();
    let out = tokio::time::timeout(
        Duration::from_secs(120),
        profile_command(home, base, args).output(),
    )
    .await
    .expect("tessera-cli finishes within 2 minutes")
    .expect("tessera-cli runs");
    Outcome {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        took: started.elapsed(),
    }
}

/// The agent under load: 16 `tessera-cli token` processes x 100 requests through one
/// `tessera-cli agent` (every tenth forcing a refresh), while another process signs a
/// second user in, takes its token and signs it out, again and again, without the agent.
/// No request fails, the agent records every answer, and nothing is lost from the store.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_agent_serves_sixteen_processes_while_another_signs_in_and_out() {
    if !keyring_works() {
        eprintln!("SKIPPED agent load test: no usable Secret Service");
        return;
    }
    let (workers, ops) = load_size();
    let idp = sandbox().await;
    let home = tessera_tests::home::temp_home();
    let (home, base) = (home.path().to_path_buf(), idp.base_url());
    let alice = USERS[0];
    let bob = USERS[1];
    let o = profile_login(&home, &base, alice).await;
    check(Op::Login, &o, &[0], "alice's sign-in");

    let mut agent = profile_command(&home, &base, &["agent"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("tessera-cli agent starts");
    let socket = home.join("agent.sock");
    for _ in 0..200 {
        if tokio::net::UnixStream::connect(&socket).await.is_ok() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }

    let started = Instant::now();
    let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
    // Another process signs bob in and out meanwhile, on the same store, without the agent.
    let other = {
        let (home, base, done) = (home.clone(), base.clone(), Arc::clone(&done));
        tokio::spawn(async move {
            let mut rounds = 0;
            while !done.load(SeqCst) || rounds == 0 {
                let o = profile_login(&home, &base, bob).await;
                check(Op::Login, &o, &[0], "bob's sign-in");
                let o = profile_run(&home, &base, &["--no-agent", "token", "--account", bob]).await;
                check(Op::Token, &o, &[0], "bob's token");
                let o =
                    profile_run(&home, &base, &["--no-agent", "logout", "--account", bob]).await;
                check(Op::Logout, &o, &[0], "bob's sign-out");
                rounds += 1;
            }
            rounds
        })
    };
    let mut tasks = Vec::new();
    for w in 0..workers {
        let (home, base) = (home.clone(), base.clone());
        tasks.push(tokio::spawn(async move {
            let mut took = Vec::new();
            for i in 0..ops {
                let mut args = vec!["token", "--account", alice, "--scope", SCOPE];
                if i % 10 == 9 {
                    args.push("--force-refresh");
                }
                let o = profile_run(&home, &base, &args).await;
                let op = if i % 10 == 9 {
                    Op::ForceRefresh
                } else {
                    Op::Token
                };
                check(op, &o, &[0], &format!("client {w}, request {i}"));
                assert!(a_token(&o.stdout).is_some(), "client {w}: no token");
                took.push(o.took);
            }
            took
        }));
    }
    let mut took = Vec::new();
    for t in tasks {
        took.extend(t.await.expect("a client failed"));
    }
    done.store(true, SeqCst);
    let rounds = other.await.expect("the other process failed");
    let wall = started.elapsed();

    // The agent served them all and recorded each.
    let _ = std::process::Command::new("kill")
        .args(["-TERM", &agent.id().unwrap().to_string()])
        .status();
    let _ = tokio::time::timeout(Duration::from_secs(10), agent.wait()).await;
    let store_path = home.join("store.db");
    let store = tessera_core::keystore::open_store(
        &store_path,
        &tessera_core::keystore::StoreOptions::default(),
    )
    .expect("the store opens")
    .store;
    let recorded = store.activity(0, 100_000).expect("activity");
    assert!(
        recorded.len() >= workers * ops,
        "the agent recorded {} of {} answers",
        recorded.len(),
        workers * ops
    );
    let accounts = store.accounts().expect("accounts");
    assert!(
        accounts.iter().any(|a| a.username == alice),
        "alice's account is still there"
    );
    assert!(
        !accounts.iter().any(|a| a.username == bob),
        "bob was signed out last"
    );
    let integrity: String = rusqlite::Connection::open(&store_path)
        .and_then(|c| c.query_row("PRAGMA integrity_check", [], |r| r.get(0)))
        .expect("integrity_check runs");
    assert_eq!(integrity, "ok");
    drop(store);
    let _ = OsKeyring.forget(&tessera_core::keystore::store_id(&store_path));
    took.sort();
    eprintln!(
        "load: {workers} tessera-cli processes x {ops} token requests through the agent in {:.1} s \
         (p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms) while another process signed in and out {rounds} times",
        wall.as_secs_f64(),
        percentile(&took, 0.5).as_secs_f64() * 1e3,
        percentile(&took, 0.99).as_secs_f64() * 1e3,
        took.last().map_or(0.0, |d| d.as_secs_f64() * 1e3),
    );
}
