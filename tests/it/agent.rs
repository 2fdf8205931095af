//! The agent (`tessera-cli agent`) against the sandbox and a real keyring: the CLI gets
//! the same answers through it as without it, one refresh serves sixteen clients, bad
//! frames and vanished clients do not hurt it, only its user is served, and it stops when
//! its store is reset.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use serde_json::{json, Value};
use tessera_sandbox_idp::Faults;
use tessera_tests::cli_bin::cli_bin;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::UnixStream;

use crate::cli::{device_login_sandbox, sandbox, Machine, ALICE};

/// A running `tessera-cli agent` for `m`'s home, on `m`'s socket.
pub(crate) struct Agent {
    child: tokio::process::Child,
    socket: PathBuf,
}

impl Agent {
    pub(crate) async fn start(m: &Machine) -> Agent {
        let mut c = m.command(&["agent"]);
        c.stdout(Stdio::null()).stderr(Stdio::null());
        let child = c.spawn().expect("tessera-cli agent starts");
        let socket = m.home.path().join("agent.sock");
        for _ in 0..200 {
            if UnixStream::connect(&socket).await.is_ok() {
                return Agent { child, socket };
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        panic!("the agent did not listen on {}", socket.display());
    }

    /// Stop it with SIGTERM, as a session manager would; it removes its socket.
    pub(crate) async fn stop(mut self) -> std::process::ExitStatus {
        let pid = self.child.id().unwrap().to_string();
        std::process::Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap();
        tokio::time::timeout(Duration::from_secs(10), self.child.wait())
            .await
            .expect("the agent stops on SIGTERM")
            .unwrap()
    }
}

async fn frame(stream: &mut UnixStream, body: &[u8]) {
    stream
        .write_all(&(body.len() as u32).to_be_bytes())
        .await
        .unwrap();
    stream.write_all(body).await.unwrap();
}

async fn reply(stream: &mut UnixStream) -> Value {
    let mut len = [0u8; 4];
    stream.read_exact(&mut len).await.unwrap();
    let mut body = vec![0u8; u32::from_be_bytes(len) as usize];
    stream.read_exact(&mut body).await.unwrap();
    serde_json::from_slice(&body).unwrap()
}

async fn status(socket: &Path) -> Value {
    let mut s = UnixStream::connect(socket).await.unwrap();
    frame(&mut s, br#"{"v":1,"op":"status"}"#).await;
    reply(&mut s).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_gets_the_same_answers_through_the_agent_as_without_it() {
    let idp = sandbox().await;
    let m = Machine::for_sandbox(&idp);
    device_login_sandbox(&m, &idp, ALICE).await.ok();
    let agent = Agent::start(&m).await;

    // The socket's folder is the user's alone, the socket too.
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&agent.socket), 0o600);
    assert_eq!(mode(m.home.path()), 0o700);
    let before = status(&agent.socket).await;
    assert_eq!(before["result"], "status", "{before}");

    let exec_info = (
        "KUBERNETES_EXEC_INFO",
        r#"{"apiVersion":"client.authentication.k8s.io/v1","kind":"ExecCredential","spec":{"interactive":false}}"#,
    );
    for args in [
        vec!["token"],
        vec!["token", "--json"],
        vec!["token", "--output", "az"],
        vec!["token", "--output", "env"],
        vec!["token", "--output", "exec-credential"],
        vec!["token", "--account", "nobody@contoso.example"],
        vec!["token", "--scope", "<bad>"],
        vec!["accounts"],
        vec!["accounts", "--json"],
        vec!["--profile", "Sandbox", "accounts"],
        vec!["--profile", "Nope", "accounts"],
        vec!["status"],
        vec!["status", "--json"],
        vec!["logout", "--account", "nobody@contoso.example"],
    ] {
        let env = [exec_info];
        let through = m.run_with(&args, &env, None).await;
        let mut direct_args = vec!["--no-agent"];
        direct_args.extend(&args);
        let direct = m.run_with(&direct_args, &env, None).await;
        assert_eq!(through.code, direct.code, "{args:?}: {}", through.stderr);
        assert_eq!(through.stdout, direct.stdout, "{args:?}");
        let errors = |s: &str| {
            s.lines()
                .filter(|l| !l.contains(" DEBUG ") && !l.contains(" INFO "))
                .collect::<Vec<_>>()
                .join("\n")
        };
        assert_eq!(errors(&through.stderr), errors(&direct.stderr), "{args:?}");
    }
    let after = status(&agent.socket).await;
    assert!(
        after["served"].as_u64().unwrap() >= 5,
        "the agent served the tokens: {after}"
    );
    assert_eq!(after["store"]["accounts"], 1, "{after}");
    // TESSERA_AGENT=0 opens the store instead: the agent serves nothing more.
    m.run_with(&["token"], &[("TESSERA_AGENT", "0")], None)
        .await
        .ok();
    assert_eq!(status(&agent.socket).await["served"], after["served"]);
    // A sign-out through the agent: gone for the agent's memory and for the store.
    let out = m.run(&["logout", "--account", ALICE]).await.ok();
    assert!(
        out.stderr.contains("Signed out alice@contoso.example"),
        "{}",
        out.stderr
    );
    let token = m.run(&["token"]).await;
    assert_eq!(token.code, 3, "{}", token.stderr);
    let direct = m
        .run(&["--no-agent", "accounts", "--json"])
        .await
        .ok()
        .json();
    assert_eq!(direct, json!([]));
    assert!(agent.stop().await.success());
    assert!(
        !m.home.path().join("agent.sock").exists(),
        "the socket is removed"
    );
}

/// The agent answers repeated requests from memory, but notices what other processes do
/// to the store: a sign-out made without the agent is seen at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_agent_notices_a_sign_out_by_another_process() {
    let idp = sandbox().await;
    let m = Machine::for_sandbox(&idp);
    device_login_sandbox(&m, &idp, ALICE).await.ok();
    let agent = Agent::start(&m).await;
    let first = m.run(&["token"]).await.ok().stdout;
    let again = m.run(&["token", "--json"]).await.ok().json();
    assert_eq!(again["access_token"].as_str().unwrap(), first.trim());
    assert_eq!(again["token_source"], "cache");
    m.run(&["--no-agent", "logout", "--account", ALICE])
        .await
        .ok();
    let after = m.run(&["token"]).await.exit(3);
    assert!(after.stdout.is_empty(), "no token after the sign-out");
    agent.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sixteen_clients_for_an_expired_token_cause_one_refresh() {
    let idp = sandbox().await;
    let m = Machine::for_sandbox(&idp);
    // A token that lives a minute: within `min_validity` (5 minutes), so it is refreshed.
    idp.set_faults(Faults {
        token_lifetime_secs: Some(60),
        device_code_interval_secs: Some(1),
        ..Faults::default()
    });
    device_login_sandbox(&m, &idp, ALICE).await.ok();
    idp.set_faults(Faults::default());
    let agent = Agent::start(&m).await;
    let before = idp.token_requests();
    let mut runs = Vec::new();
    for _ in 0..16 {
        runs.push(m.run(&["token", "--account", ALICE]));
    }
    let tokens: Vec<String> = join_all(runs)
        .await
        .into_iter()
        .map(|r| r.ok().stdout.trim().to_owned())
        .collect();
    assert_eq!(
        idp.token_requests() - before,
        1,
        "the provider saw exactly one refresh"
    );
    assert!(tokens.iter().all(|t| t == &tokens[0]), "one token for all");
    agent.stop().await;
}

/// Run the futures together (the CLI processes at the same time).
async fn join_all<F: std::future::Future>(fs: Vec<F>) -> Vec<F::Output> {
    let mut pinned: Vec<std::pin::Pin<Box<F>>> = fs.into_iter().map(Box::pin).collect();
    let mut results: Vec<Option<F::Output>> = (0..pinned.len()).map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut pending = false;
        for (i, f) in pinned.iter_mut().enumerate() {
            if results[i].is_none() {
                match f.as_mut().poll(cx) {
                    std::task::Poll::Ready(v) => results[i] = Some(v),
                    std::task::Poll::Pending => pending = true,
                }
            }
        }
        if pending {
            std::task::Poll::Pending
        } else {
            std::task::Poll::Ready(())
        }
    })
    .await;
    results.into_iter().map(Option::unwrap).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_frames_and_vanished_clients_do_not_hurt_the_agent() {
    let idp = sandbox().await;
    let m = Machine::for_sandbox(&idp);
    device_login_sandbox(&m, &idp, ALICE).await.ok();
    let agent = Agent::start(&m).await;

    let mut s = UnixStream::connect(&agent.socket).await.unwrap();
    frame(&mut s, br#"{"v":99,"op":"status"}"#).await;
    let r = reply(&mut s).await;
    assert_eq!(
        (r["result"].as_str(), r["kind"].as_str()),
        (Some("error"), Some("bad_request")),
        "{r}"
    );
    assert!(r["message"].as_str().unwrap().contains("version 99"), "{r}");
    frame(&mut s, b"\x00garbage").await;
    assert_eq!(reply(&mut s).await["kind"], "bad_request");
    // Still answering on the same connection.
    frame(&mut s, br#"{"v":1,"op":"status"}"#).await;
    assert_eq!(reply(&mut s).await["result"], "status");
    // A frame announced as far too long: an error, and the connection closes.
    s.write_all(&u32::MAX.to_be_bytes()).await.unwrap();
    assert_eq!(reply(&mut s).await["kind"], "bad_request");
    drop(s);

    // A client that asks for a token and leaves before the answer.
    let home = m.home.path().display().to_string();
    for _ in 0..5 {
        let mut s = UnixStream::connect(&agent.socket).await.unwrap();
        let req = json!({"v":1,"op":"token","home":home,"profile":null,"account":ALICE,
                         "scopes":[],"min_validity_secs":300,"force_refresh":true,"tenant":null});
        frame(&mut s, req.to_string().as_bytes()).await;
        drop(s);
    }
    // Half a frame, then gone.
    let mut s = UnixStream::connect(&agent.socket).await.unwrap();
    s.write_all(&100u32.to_be_bytes()).await.unwrap();
    s.write_all(b"{\"v\":1").await.unwrap();
    drop(s);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(status(&agent.socket).await["result"], "status");
    m.run(&["token"]).await.ok();

    // A second agent on the same socket is refused with a clear error.
    let second = m.run(&["agent"]).await.exit(2);
    assert!(
        second.stderr.contains("an agent already answers"),
        "{}",
        second.stderr
    );
    agent.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_the_agents_own_user_is_served() {
    let idp = sandbox().await;
    let m = Machine::for_sandbox(&idp);
    device_login_sandbox(&m, &idp, ALICE).await.ok();
    let agent = Agent::start(&m).await;
    if !tessera_tests::second_user::is_refused_twice(&agent.socket) {
        eprintln!("skipped: setpriv cannot run a second user here");
    }
    agent.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn interaction_required_and_a_reset_store_through_the_agent() {
    let idp = sandbox().await;
    let m = Machine::for_sandbox(&idp);
    device_login_sandbox(&m, &idp, ALICE).await.ok();
    let agent = Agent::start(&m).await;
    idp.set_faults(Faults {
        refresh_invalid_grant: true,
        ..Faults::default()
    });
    let exec_info = (
        "KUBERNETES_EXEC_INFO",
        r#"{"apiVersion":"client.authentication.k8s.io/v1","kind":"ExecCredential","spec":{"interactive":false}}"#,
    );
    let r = m
        .run_with(
            &["token", "--force-refresh", "--output", "exec-credential"],
            &[exec_info],
            None,
        )
        .await
        .exit(3);
    assert!(
        r.stderr.contains("Run: tessera-cli") && r.stderr.contains("login --login-hint")
            || r.stderr.contains("login"),
        "{}",
        r.stderr
    );
    idp.set_faults(Faults::default());
    // The store is reset under the agent: it stops serving and exits.
    m.run(&["store", "reset", "--yes"]).await.ok();
    let r = m.run(&["token"]).await;
    assert_ne!(r.code, 0, "no token after a reset: {}", r.stderr);
    let mut agent = agent;
    let stopped = tokio::time::timeout(Duration::from_secs(10), agent.child.wait()).await;
    assert!(stopped.is_ok(), "the agent stopped after the reset");
    let _ = cli_bin();
}

/// For the report: the agent's own answer to a token request for a cached token, from an
/// in-process client on one connection (200 requests). Run with `--ignored --nocapture`
/// (bench/tools does).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement, not a check"]
async fn timings_of_the_agents_answer() {
    let idp = sandbox().await;
    let m = Machine::for_sandbox(&idp);
    device_login_sandbox(&m, &idp, ALICE).await.ok();
    let agent = Agent::start(&m).await;
    let home = std::path::absolute(m.home.path())
        .unwrap()
        .display()
        .to_string();
    let req = json!({"v":1,"op":"token","home":home,"profile":null,"account":ALICE,
                     "scopes":[],"min_validity_secs":300,"force_refresh":false,"tenant":null})
    .to_string();
    let mut s = UnixStream::connect(&agent.socket).await.unwrap();
    let mut times = Vec::new();
    let mut last = Vec::new();
    for _ in 0..200 {
        // Raw bytes only (this test binary is a debug build: parsing here would be most
        // of what is measured); the last answer is checked.
        let started = std::time::Instant::now();
        frame(&mut s, req.as_bytes()).await;
        let mut len = [0u8; 4];
        s.read_exact(&mut len).await.unwrap();
        last = vec![0u8; u32::from_be_bytes(len) as usize];
        s.read_exact(&mut last).await.unwrap();
        times.push(started.elapsed());
    }
    let r: Value = serde_json::from_slice(&last).unwrap();
    assert_eq!(r["result"], "token", "{}", r["kind"]);
    times.sort();
    eprintln!(
        "the agent's answer for a cached token, in-process client: median {:?}, p90 {:?} (200 requests)",
        times[times.len() / 2],
        times[times.len() * 9 / 10]
    );
    agent.stop().await;
}
