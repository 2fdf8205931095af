//! One sign-in for other tools: the real `tessera-cli` as Azure CLI's token source
//! (`token --output az`), the real `kubectl` (its exec plugin, against an https API stub)
//! and the real `git` (its credential helper, cloning and pushing over smart HTTP through
//! `git http-backend`), all against the in-process sandbox. The stubs accept only valid
//! sandbox tokens: RS256 signature by the sandbox's published JWKS, audience, expiry.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use serde_json::{json, Value};
use tessera_sandbox_idp::{
    SandboxHandle, AKS_RESOURCE_ID, AZURE_DEVOPS_RESOURCE_ID, CONTOSO, DEMO_PASSWORD,
};
use tessera_tests::cli_bin::cli_bin;
use tessera_tests::jwks::Jwks;
use tessera_tests::tls::TestCa;

use crate::cli::{
    device_login_sandbox, sandbox, scripted_browser, Machine, Run, ALICE, BOB, SANDBOX_CLIENT,
};

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

async fn jwks_of(idp: &SandboxHandle) -> Jwks {
    Jwks::fetch(&format!("{}common/discovery/v2.0/keys", idp.base_url()))
        .await
        .expect("the sandbox publishes its keys")
}

/// Runs a program other than tessera-cli (kubectl, git, sh) with the machine's
/// environment (sandbox URL, log filter), a throwaway HOME and no inherited config.
async fn run_tool(
    m: &Machine,
    program: &str,
    args: &[&str],
    dir: &Path,
    env: &[(&str, &str)],
) -> Run {
    let mut c = tokio::process::Command::new(program);
    c.args(args)
        .current_dir(dir)
        .env_remove("TESSERA_HOME")
        .env_remove("TESSERA_SANDBOX_URL")
        .env_remove("KUBECONFIG")
        .env_remove("KUBERNETES_EXEC_INFO")
        .env("HOME", dir)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_TERMINAL_PROMPT", "0")
        .envs(m.env.iter().map(|(k, v)| (k, v)))
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let started = Instant::now();
    let out = tokio::time::timeout(Duration::from_secs(120), c.output())
        .await
        .unwrap_or_else(|_| panic!("{program} {args:?} finishes within 2 minutes"))
        .unwrap_or_else(|e| panic!("{program} runs: {e}"));
    let run = Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        took: started.elapsed(),
    };
    m.record(&run);
    run
}

fn strs(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

// ------------------------------------------------------------------ token --output

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_output_formats_for_scripts_azure_cli_and_shells() {
    let idp = sandbox().await;
    let m = Machine::for_sandbox(&idp);
    let subscription = "0b1f6471-1bf0-4dda-aec3-cb9272f09590";
    std::fs::write(
        m.home.path().join("profiles.toml"),
        format!(
            "[[profile]]\nname = \"Lab\"\nauthority = \"{}organizations\"\nclient_id = \"{SANDBOX_CLIENT}\"\n\
             redirect_uri = \"http://localhost/tessera-redirect\"\nscopes = [\"User.Read\"]\n\
             instance_discovery = false\nsubscription = \"{subscription}\"\n",
            idp.base_url()
        ),
    )
    .unwrap();
    let base = idp.base_url();
    m.device_login(
        &["--profile", "Lab", "login", "--device-code"],
        move |_, code| async move {
            tessera_sandbox_idp::scripted_device_approval(&base, &code, ALICE, DEMO_PASSWORD).await
        },
    )
    .await
    .ok();
    let lab = |rest: &[&str]| -> Vec<String> {
        ["--profile", "Lab", "token", "--account", ALICE]
            .iter()
            .chain(rest)
            .map(|s| s.to_string())
            .collect()
    };
    let mut tokens: Vec<String> = Vec::new();

    // az: Azure CLI's shape, expiresOn in local time (a zone 5:30 east of UTC).
    let az = m
        .run_with(
            &strs(&lab(&["--output", "az"])),
            &[("TZ", "XST-5:30")],
            None,
        )
        .await
        .ok()
        .json();
    let keys: Vec<&String> = az.as_object().unwrap().keys().collect();
    assert_eq!(
        keys,
        [
            "accessToken",
            "expiresOn",
            "expires_on",
            "subscription",
            "tenant",
            "tokenType"
        ]
    );
    let token = az["accessToken"].as_str().unwrap().to_owned();
    assert!(idp.verify_token(&token).is_ok());
    assert_eq!(az["tenant"], CONTOSO.id);
    assert_eq!(az["subscription"], subscription);
    assert_eq!(az["tokenType"], "Bearer");
    let expires_on = az["expires_on"].as_i64().unwrap();
    let local = std::process::Command::new("date")
        .args([
            "-u",
            "-d",
            &format!("@{}", expires_on + 5 * 3600 + 1800),
            "+%Y-%m-%d %H:%M:%S.000000",
        ])
        .output()
        .unwrap();
    assert_eq!(
        az["expiresOn"],
        String::from_utf8_lossy(&local.stdout).trim(),
        "local time, as Python's datetime.fromtimestamp"
    );
    tokens.push(token.clone());

    // --json and --output json are the same document.
    let j1 = m.run(&strs(&lab(&["--json"]))).await.ok().json();
    let j2 = m.run(&strs(&lab(&["--output", "json"]))).await.ok().json();
    assert_eq!(j1, j2);
    assert_eq!(j1["access_token"], token.as_str());
    assert_eq!(j1["token_source"], "cache");

    // Azure CLI's --resource and --tenant.
    let api = m
        .run(&strs(&lab(&[
            "--resource",
            "api://sandbox-api",
            "-o",
            "az",
        ])))
        .await
        .ok()
        .json();
    let api_token = api["accessToken"].as_str().unwrap().to_owned();
    assert_eq!(
        idp.verify_token(&api_token).unwrap()["aud"],
        "api://sandbox-api"
    );
    tokens.push(api_token);
    let tenant = m
        .run(&strs(&lab(&["--tenant", CONTOSO.id, "--json"])))
        .await
        .ok()
        .json();
    let tenant_token = tenant["access_token"].as_str().unwrap().to_owned();
    let claims = idp.verify_token(&tenant_token).unwrap();
    assert_eq!(claims["tid"], CONTOSO.id);
    assert!(
        claims["iss"].as_str().unwrap().contains(CONTOSO.id),
        "{claims:?}"
    );
    tokens.push(tenant_token);

    // exec-credential: kubectl's shape; the apiVersion kubectl asked for.
    let exec = m
        .run(&strs(&lab(&["--output", "exec-credential"])))
        .await
        .ok()
        .json();
    assert_eq!(exec["apiVersion"], "client.authentication.k8s.io/v1");
    assert_eq!(exec["kind"], "ExecCredential");
    assert_eq!(exec["status"]["token"], token.as_str());
    let expected_ts = std::process::Command::new("date")
        .args(["-u", "-d", &format!("@{expires_on}"), "+%Y-%m-%dT%H:%M:%SZ"])
        .output()
        .unwrap();
    assert_eq!(
        exec["status"]["expirationTimestamp"],
        String::from_utf8_lossy(&expected_ts.stdout).trim()
    );
    let beta = m
        .run_with(
            &strs(&lab(&["--output", "exec-credential"])),
            &[(
                "KUBERNETES_EXEC_INFO",
                r#"{"kind":"ExecCredential","apiVersion":"client.authentication.k8s.io/v1beta1","spec":{"interactive":false}}"#,
            )],
            None,
        )
        .await
        .ok()
        .json();
    assert_eq!(beta["apiVersion"], "client.authentication.k8s.io/v1beta1");

    // env: what a shell's eval makes of it.
    let sh = run_tool(
        &m,
        "sh",
        &[
            "-c",
            r#"eval "$("$0" --home "$1" --profile Lab token --account "$2" --output env)" && printf '%s %s' "$TESSERA_ACCESS_TOKEN" "$TESSERA_TOKEN_EXPIRES_ON""#,
            &cli_bin().display().to_string(),
            &m.home.path().display().to_string(),
            ALICE,
        ],
        m.home.path(),
        &[],
    )
    .await
    .ok();
    assert_eq!(sh.stdout, format!("{token} {expires_on}"));

    // Bad input: clap's errors, exit 2, nothing on stdout.
    let before = m.snapshot(SANDBOX_CLIENT);
    let bad = m.run(&strs(&lab(&["--output", "yaml"]))).await.exit(2);
    assert!(
        bad.stderr
            .contains("invalid value 'yaml' for '--output <FORMAT>'")
            && bad
                .stderr
                .contains("[possible values: json, az, exec-credential, env]"),
        "{}",
        bad.stderr
    );
    assert_eq!(bad.stdout, "");
    let both = m
        .run(&strs(&lab(&["--json", "--output", "az"])))
        .await
        .exit(2);
    assert!(
        both.stderr.contains("cannot be used with"),
        "{}",
        both.stderr
    );
    m.run(&strs(&lab(&[
        "--resource",
        "api://sandbox-api",
        "--scope",
        "User.Read",
    ])))
    .await
    .exit(2);
    let tenant = m.run(&strs(&lab(&["--tenant", "a/b"]))).await.exit(2);
    assert!(
        tenant.stderr.contains("not a tenant id or domain"),
        "{}",
        tenant.stderr
    );
    let info = m
        .run_with(
            &strs(&lab(&["--output", "exec-credential"])),
            &[("KUBERNETES_EXEC_INFO", "{nope")],
            None,
        )
        .await
        .exit(2);
    assert!(info
        .stderr
        .contains("KUBERNETES_EXEC_INFO is not a kubectl ExecCredential"));
    assert_eq!(
        m.snapshot(SANDBOX_CLIENT),
        before,
        "bad input changed nothing"
    );

    let named: Vec<(&str, &str)> = tokens
        .iter()
        .map(|t| ("access token", t.as_str()))
        .collect();
    m.assert_stderr_clean(&named);
}

// ------------------------------------------------------------------ kubectl

/// A Kubernetes API server stub over https: `/version`, `/api`, `/apis` for a valid
/// sandbox token of `audience`; 401 otherwise. It records the tokens it accepted.
struct ApiStub {
    addr: SocketAddr,
    accepted: Arc<Mutex<Vec<String>>>,
}

#[derive(Clone)]
struct ApiState {
    jwks: Jwks,
    audience: String,
    accepted: Arc<Mutex<Vec<String>>>,
}

async fn api_stub(ca: &TestCa, jwks: Jwks, audience: &str) -> ApiStub {
    let listener = ca.https_listener().await.expect("an https listener");
    let addr = axum::serve::Listener::local_addr(&listener).unwrap();
    let accepted = Arc::new(Mutex::new(Vec::new()));
    let state = ApiState {
        jwks,
        audience: audience.to_owned(),
        accepted: accepted.clone(),
    };
    let app = axum::Router::new().fallback(api_handler).with_state(state);
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    ApiStub { addr, accepted }
}

async fn api_handler(State(st): State<ApiState>, req: Request) -> Response {
    let bearer = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::to_owned);
    let Some(token) = bearer.filter(|t| st.jwks.verify(t, &st.audience, now()).is_ok()) else {
        let status = json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "message": "Unauthorized", "reason": "Unauthorized", "code": 401});
        return (StatusCode::UNAUTHORIZED, axum::Json(status)).into_response();
    };
    st.accepted.lock().unwrap().push(token);
    let body = match req.uri().path() {
        "/version" => json!({"major": "1", "minor": "32", "gitVersion": "v1.32.0-tessera-stub",
            "platform": "linux/amd64"}),
        "/api" => json!({"kind": "APIVersions", "versions": ["v1"],
            "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": "127.0.0.1"}]}),
        "/apis" => json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": []}),
        _ => {
            return (
                StatusCode::NOT_FOUND,
                axum::Json(json!({"kind": "Status", "code": 404})),
            )
                .into_response()
        }
    };
    axum::Json(body).into_response()
}

fn base_kubeconfig(stub: &ApiStub, ca: &TestCa) -> String {
    let ca_data = b64(&std::fs::read(ca.ca_file()).unwrap());
    format!(
        "apiVersion: v1
kind: Config
clusters:
- name: stub
  cluster:
    server: https://{addr}
    certificate-authority-data: {ca_data}
contexts:
- name: stub
  context:
    cluster: stub
    user: static
    namespace: team-a
- name: stub-bob
  context:
    cluster: stub
    user: static
current-context: stub
preferences: {{}}
users:
- name: static
  user:
    token: not-a-valid-token
x-team-note: keep me
",
        addr = stub.addr
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_gets_its_tokens_from_the_exec_plugin() {
    let idp = sandbox().await;
    let m = Machine::for_sandbox(&idp);
    let ca = TestCa::generate().expect("a test CA");
    let stub = api_stub(&ca, jwks_of(&idp).await, AKS_RESOURCE_ID).await;
    let work = tempfile::tempdir().unwrap();
    let kubeconfig = work.path().join("config");
    let kc = kubeconfig.display().to_string();
    std::fs::write(&kubeconfig, base_kubeconfig(&stub, &ca)).unwrap();
    let kubectl = |args: &[&str]| {
        let mut all = vec!["--kubeconfig", kc.as_str()];
        all.extend_from_slice(args);
        all.iter().map(|s| s.to_string()).collect::<Vec<_>>()
    };

    // Bad input changes nothing: a file that does not parse, a context it lacks.
    let broken = work.path().join("broken");
    std::fs::write(&broken, "clusters: [\n  - name: x\n bad").unwrap();
    let r = m
        .run(&[
            "--profile",
            "Sandbox",
            "kubeconfig",
            "--kubeconfig",
            &broken.display().to_string(),
            "--account",
            ALICE,
            "--scope",
            "aks",
        ])
        .await
        .exit(2);
    assert!(
        r.stderr
            .contains("was left unchanged: it is not a valid kubeconfig"),
        "{}",
        r.stderr
    );
    assert_eq!(
        std::fs::read_to_string(&broken).unwrap(),
        "clusters: [\n  - name: x\n bad"
    );
    let original = std::fs::read_to_string(&kubeconfig).unwrap();
    let r = m
        .run(&[
            "--profile",
            "Sandbox",
            "kubeconfig",
            "--kubeconfig",
            &kc,
            "--context",
            "prod",
            "--account",
            ALICE,
            "--scope",
            "aks",
        ])
        .await
        .exit(2);
    assert!(
        r.stderr
            .contains("no context \"prod\" (its contexts: stub, stub-bob)"),
        "{}",
        r.stderr
    );
    assert_eq!(std::fs::read_to_string(&kubeconfig).unwrap(), original);
    let no_names: Vec<_> = std::fs::read_dir(work.path()).unwrap().collect();
    assert_eq!(no_names.len(), 2, "no temporary file left");

    device_login_sandbox(&m, &idp, ALICE).await.ok();
    let written = m
        .run(&[
            "--profile",
            "Sandbox",
            "kubeconfig",
            "--kubeconfig",
            &kc,
            "--account",
            ALICE,
            "--scope",
            "aks",
        ])
        .await
        .ok();
    assert!(
        written
            .stderr
            .contains("context stub now uses user tessera:Sandbox:alice@contoso.example:aks"),
        "{}",
        written.stderr
    );
    let text = std::fs::read_to_string(&kubeconfig).unwrap();
    assert!(
        text.contains("x-team-note: keep me"),
        "unknown fields stay:\n{text}"
    );
    assert!(
        text.contains("token: not-a-valid-token"),
        "the other user stays:\n{text}"
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&kubeconfig).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
    }
    // First call: the plugin redeems the refresh token for AKS's scope.
    let before = idp.token_requests();
    let version = run_tool(
        &m,
        "kubectl",
        &strs(&kubectl(&["get", "--raw", "/version"])),
        work.path(),
        &[],
    )
    .await
    .ok();
    assert_eq!(
        serde_json::from_str::<Value>(&version.stdout).unwrap()["gitVersion"],
        "v1.32.0-tessera-stub"
    );
    assert_eq!(
        idp.token_requests() - before,
        1,
        "one refresh; kubectl said:\n{}",
        version.stderr
    );
    let first = stub
        .accepted
        .lock()
        .unwrap()
        .last()
        .cloned()
        .expect("the stub saw a token");
    assert_eq!(
        idp.verify_token(&first).unwrap()["preferred_username"],
        ALICE
    );

    // Second call: from Tessera's cache, no provider request.
    let before = idp.token_requests();
    let api = run_tool(
        &m,
        "kubectl",
        &strs(&kubectl(&["get", "--raw", "/api"])),
        work.path(),
        &[],
    )
    .await
    .ok();
    assert!(api.stdout.contains("APIVersions"), "{}", api.stdout);
    assert_eq!(idp.token_requests(), before, "served from the cache");
    assert_eq!(stub.accepted.lock().unwrap().last(), Some(&first));

    // kubectl's own reading of the file (kubectl 1.32 runs the exec plugin for it too).
    let view = run_tool(
        &m,
        "kubectl",
        &strs(&kubectl(&["config", "view", "--raw", "-o", "json"])),
        work.path(),
        &[],
    )
    .await
    .ok();
    let view: Value = serde_json::from_str(&view.stdout).unwrap();
    let ctx = view["contexts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "stub")
        .unwrap();
    assert_eq!(
        ctx["context"]["user"],
        "tessera:Sandbox:alice@contoso.example:aks"
    );
    assert_eq!(ctx["context"]["namespace"], "team-a");
    let user = view["users"]
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["name"] == ctx["context"]["user"])
        .unwrap();
    let exec = &user["user"]["exec"];
    assert_eq!(exec["apiVersion"], "client.authentication.k8s.io/v1");
    assert_eq!(exec["interactiveMode"], "IfAvailable");
    assert_eq!(
        Path::new(exec["command"].as_str().unwrap()),
        cli_bin().canonicalize().unwrap()
    );
    let exec_args: Vec<&str> = exec["args"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect();
    assert_eq!(
        exec_args,
        [
            "--home",
            &m.home.path().display().to_string(),
            "--profile",
            "Sandbox",
            "token",
            "--account",
            ALICE,
            "--scope",
            "aks",
            "--output",
            "exec-credential",
        ]
    );
    assert_eq!(idp.token_requests(), before, "still the cached token");

    // An expired cached token is refreshed silently.
    idp.set_faults(tessera_sandbox_idp::Faults {
        token_lifetime_secs: Some(1),
        ..Default::default()
    });
    let short = m
        .run(&[
            "token",
            "--account",
            ALICE,
            "--scope",
            "aks",
            "--force-refresh",
        ])
        .await
        .ok()
        .stdout
        .trim()
        .to_owned();
    idp.set_faults(tessera_sandbox_idp::Faults::default());
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let direct = reqwest::Client::builder()
        .add_root_certificate(
            reqwest::Certificate::from_pem(&std::fs::read(ca.ca_file()).unwrap()).unwrap(),
        )
        .build()
        .unwrap()
        .get(format!("https://{}/version", stub.addr))
        .bearer_auth(&short)
        .send()
        .await
        .unwrap();
    assert_eq!(direct.status(), 401, "the stub refuses the expired token");
    let before = idp.token_requests();
    run_tool(
        &m,
        "kubectl",
        &strs(&kubectl(&["get", "--raw", "/version"])),
        work.path(),
        &[],
    )
    .await
    .ok();
    assert_eq!(
        idp.token_requests() - before,
        1,
        "the expired token was refreshed"
    );
    let fresh = stub.accepted.lock().unwrap().last().cloned().unwrap();
    assert_ne!(fresh, short);
    assert_ne!(fresh, first);

    // No usable account and kubectl without a terminal (interactive=false): exit 3 and
    // a message naming the account and the command to run.
    m.run(&[
        "--profile",
        "Sandbox",
        "kubeconfig",
        "--kubeconfig",
        &kc,
        "--context",
        "stub-bob",
        "--account",
        BOB,
        "--scope",
        "aks",
    ])
    .await
    .ok();
    let before = idp.token_requests();
    let refused = run_tool(
        &m,
        "kubectl",
        &strs(&kubectl(&[
            "--context",
            "stub-bob",
            "get",
            "--raw",
            "/version",
        ])),
        work.path(),
        &[],
    )
    .await;
    assert_ne!(refused.code, 0);
    let expected_command = format!(
        "tessera-cli --home {} --profile Sandbox login --login-hint {BOB} --scope aks",
        m.home.path().display()
    );
    assert!(
        refused.stderr.contains(&format!(
            "{BOB} must sign in before kubectl can get a token"
        )) && refused.stderr.contains(&expected_command),
        "{}",
        refused.stderr
    );
    assert_eq!(idp.token_requests(), before);
    let plugin_args: Vec<String> = vec![
        "--profile".into(),
        "Sandbox".into(),
        "token".into(),
        "--account".into(),
        BOB.into(),
        "--scope".into(),
        "aks".into(),
        "--output".into(),
        "exec-credential".into(),
    ];
    let direct = m
        .run_with(
            &strs(&plugin_args),
            &[("KUBERNETES_EXEC_INFO", r#"{"kind":"ExecCredential","apiVersion":"client.authentication.k8s.io/v1","spec":{"interactive":false}}"#)],
            None,
        )
        .await
        .exit(3);
    assert!(
        direct.stderr.contains(&expected_command),
        "{}",
        direct.stderr
    );
    assert_eq!(direct.stdout, "");

    // With a terminal (interactive=true) the plugin signs the account in instead.
    let signed = m
        .run_with(
            &strs(&plugin_args),
            &[
                ("KUBERNETES_EXEC_INFO", r#"{"kind":"ExecCredential","apiVersion":"client.authentication.k8s.io/v1","spec":{"interactive":true}}"#),
                ("TESSERA_BROWSER", &scripted_browser("sandbox", BOB)),
            ],
            None,
        )
        .await
        .ok();
    let cred = signed.json();
    let bob_token = cred["status"]["token"].as_str().unwrap().to_owned();
    let claims = idp.verify_token(&bob_token).unwrap();
    assert_eq!(claims["preferred_username"], BOB);
    assert_eq!(claims["aud"], AKS_RESOURCE_ID);
    assert!(
        signed
            .stderr
            .contains(&format!("Signed in as {BOB} (Sandbox)")),
        "{}",
        signed.stderr
    );
    run_tool(
        &m,
        "kubectl",
        &strs(&kubectl(&[
            "--context",
            "stub-bob",
            "get",
            "--raw",
            "/version",
        ])),
        work.path(),
        &[],
    )
    .await
    .ok();

    m.assert_stderr_clean(&[
        ("access token", &first),
        ("access token", &fresh),
        ("access token", &short),
        ("access token", &bob_token),
    ]);
}

/// Timings for the report: `token --output exec-credential` per call, and `kubectl get
/// --raw /version` with the exec plugin against the same with a static token. Run with
/// `--ignored --nocapture`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement, not a check"]
async fn timings_of_the_exec_plugin_and_kubectl() {
    const RUNS: usize = 30;
    let idp = sandbox().await;
    let m = Machine::for_sandbox(&idp);
    let ca = TestCa::generate().unwrap();
    let stub = api_stub(&ca, jwks_of(&idp).await, AKS_RESOURCE_ID).await;
    let work = tempfile::tempdir().unwrap();
    let kubeconfig = work.path().join("config");
    let kc = kubeconfig.display().to_string();
    std::fs::write(&kubeconfig, base_kubeconfig(&stub, &ca)).unwrap();
    device_login_sandbox(&m, &idp, ALICE).await.ok();
    m.run(&[
        "--profile",
        "Sandbox",
        "kubeconfig",
        "--kubeconfig",
        &kc,
        "--account",
        ALICE,
        "--scope",
        "aks",
    ])
    .await
    .ok();
    let plugin = [
        "--profile",
        "Sandbox",
        "token",
        "--account",
        ALICE,
        "--scope",
        "aks",
        "--output",
        "exec-credential",
    ];
    let token = m.run(&plugin).await.ok().json()["status"]["token"]
        .as_str()
        .unwrap()
        .to_owned();
    let quiet = [("TESSERA_LOG", "warn")];
    let static_config = work.path().join("static");
    std::fs::write(
        &static_config,
        base_kubeconfig(&stub, &ca).replace("token: not-a-valid-token", &format!("token: {token}")),
    )
    .unwrap();
    let sc = static_config.display().to_string();
    // Interleaved, so that the machine's drift touches all three alike; once without an
    // agent, once with `tessera-cli agent` running (the plugin asks it).
    let p90 = |mut v: Vec<Duration>| {
        v.sort();
        v[v.len() * 9 / 10]
    };
    for with_agent in [false, true] {
        let agent = match with_agent {
            true => Some(crate::agent::Agent::start(&m).await),
            false => None,
        };
        let (mut per_call, mut with_plugin, mut with_static) = (Vec::new(), Vec::new(), Vec::new());
        for _ in 0..RUNS {
            per_call.push(m.run_with(&plugin, &quiet, None).await.ok().took);
            for (config, times) in [(&kc, &mut with_plugin), (&sc, &mut with_static)] {
                times.push(
                    run_tool(
                        &m,
                        "kubectl",
                        &["--kubeconfig", config, "get", "--raw", "/version"],
                        work.path(),
                        &quiet,
                    )
                    .await
                    .ok()
                    .took,
                );
            }
        }
        if let Some(agent) = agent {
            agent.stop().await;
        }
        eprintln!(
            "{}medians of {RUNS} runs: token --output exec-credential {:?} (p90 {:?}); kubectl get --raw /version with the plugin {:?} (p90 {:?}), with a static token {:?} (p90 {:?})",
            if with_agent { "with the agent, " } else { "" },
            median(per_call.clone()),
            p90(per_call),
            median(with_plugin.clone()),
            p90(with_plugin),
            median(with_static.clone()),
            p90(with_static),
        );
    }
}

// ------------------------------------------------------------------ git

/// A Git smart-HTTP server: `git http-backend` as CGI behind axum, accepting only Basic
/// credentials whose password is a valid sandbox token for Azure DevOps. It refuses the
/// first valid token it sees once (as a server that revoked it would).
struct GitServer {
    addr: SocketAddr,
    state: Arc<GitState>,
}

struct GitState {
    root: PathBuf,
    jwks: Jwks,
    refuse_next_valid: AtomicBool,
    refused: Mutex<Vec<String>>,
    accepted: Mutex<Vec<String>>,
}

async fn git_server(root: &Path, jwks: Jwks) -> GitServer {
    let state = Arc::new(GitState {
        root: root.to_owned(),
        jwks,
        refuse_next_valid: AtomicBool::new(true),
        refused: Mutex::new(Vec::new()),
        accepted: Mutex::new(Vec::new()),
    });
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0))
        .await
        .unwrap();
    let addr = listener.local_addr().unwrap();
    let app = axum::Router::new()
        .fallback(git_handler)
        .with_state(state.clone());
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    GitServer { addr, state }
}

fn basic_credentials(headers: &HeaderMap) -> Option<(String, String)> {
    let encoded = headers
        .get(header::AUTHORIZATION)?
        .to_str()
        .ok()?
        .strip_prefix("Basic ")?;
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded)
        .ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let (user, password) = text.split_once(':')?;
    Some((user.to_owned(), password.to_owned()))
}

fn ask_for_basic() -> Response {
    Response::builder()
        .status(StatusCode::UNAUTHORIZED)
        .header(header::WWW_AUTHENTICATE, "Basic realm=\"tessera-test-git\"")
        .body(Body::from("authentication required\n"))
        .unwrap()
}

async fn git_handler(State(st): State<Arc<GitState>>, req: Request) -> Response {
    let Some((user, password)) = basic_credentials(req.headers()) else {
        return ask_for_basic();
    };
    if st
        .jwks
        .verify(&password, AZURE_DEVOPS_RESOURCE_ID, now())
        .is_err()
    {
        return ask_for_basic();
    }
    if st.refuse_next_valid.swap(false, Ordering::SeqCst) {
        st.refused.lock().unwrap().push(password);
        return ask_for_basic();
    }
    st.accepted.lock().unwrap().push(password);
    let (parts, body) = req.into_parts();
    let body = axum::body::to_bytes(body, 64 << 20)
        .await
        .unwrap_or_default();
    let header_value = |name: &str| {
        parts
            .headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    };
    let mut cgi = tokio::process::Command::new("git");
    cgi.arg("http-backend")
        .env("GIT_PROJECT_ROOT", &st.root)
        .env("GIT_HTTP_EXPORT_ALL", "1")
        .env("GATEWAY_INTERFACE", "CGI/1.1")
        .env("SERVER_PROTOCOL", "HTTP/1.1")
        .env("REQUEST_METHOD", parts.method.as_str())
        .env("PATH_INFO", parts.uri.path())
        .env("QUERY_STRING", parts.uri.query().unwrap_or_default())
        .env("CONTENT_TYPE", header_value("content-type"))
        .env("CONTENT_LENGTH", body.len().to_string())
        .env("HTTP_CONTENT_ENCODING", header_value("content-encoding"))
        .env("HTTP_GIT_PROTOCOL", header_value("git-protocol"))
        .env("REMOTE_USER", &user)
        .env("REMOTE_ADDR", "127.0.0.1")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true);
    let mut child = cgi.spawn().expect("git http-backend starts");
    let mut stdin = child.stdin.take().unwrap();
    let writer = tokio::spawn(async move {
        use tokio::io::AsyncWriteExt;
        let _ = stdin.write_all(&body).await;
    });
    let out = child.wait_with_output().await.unwrap();
    let _ = writer.await;
    let raw = out.stdout;
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|i| (i, 4))
        .or_else(|| raw.windows(2).position(|w| w == b"\n\n").map(|i| (i, 2)));
    let Some((at, sep)) = split else {
        return (StatusCode::BAD_GATEWAY, "http-backend gave no headers").into_response();
    };
    let mut response = Response::builder().status(StatusCode::OK);
    for line in String::from_utf8_lossy(&raw[..at]).lines() {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let value = value.trim();
        if name.eq_ignore_ascii_case("status") {
            let code = value
                .split_whitespace()
                .next()
                .and_then(|c| c.parse().ok())
                .unwrap_or(500);
            response = response.status(code);
        } else {
            response = response.header(name.trim(), value);
        }
    }
    response.body(Body::from(raw[at + sep..].to_vec())).unwrap()
}

fn git(args: &[&str], dir: &Path) {
    let out = std::process::Command::new("git")
        .args(args)
        .current_dir(dir)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("HOME", dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn git_clones_and_pushes_with_the_credential_helper() {
    let idp = sandbox().await;
    let m = Machine::for_sandbox(&idp);
    let work = tempfile::tempdir().unwrap();
    let root = work.path().join("srv");
    std::fs::create_dir(&root).unwrap();
    git(&["init", "-q", "--bare", "-b", "main", "repo.git"], &root);
    let seed = work.path().join("seed");
    std::fs::create_dir(&seed).unwrap();
    git(&["init", "-q", "-b", "main"], &seed);
    std::fs::write(seed.join("README"), "hello\n").unwrap();
    git(&["add", "README"], &seed);
    git(
        &[
            "-c",
            "user.name=Seed",
            "-c",
            "user.email=seed@example.invalid",
            "commit",
            "-qm",
            "first",
        ],
        &seed,
    );
    git(
        &[
            "push",
            "-q",
            &root.join("repo.git").display().to_string(),
            "main",
        ],
        &seed,
    );
    let server = git_server(&root, jwks_of(&idp).await).await;
    let url = format!("http://{}/repo.git", server.addr);

    device_login_sandbox(&m, &idp, ALICE).await.ok();
    let helper = format!(
        "credential.helper=!'{}' --home '{}' --profile Sandbox git-credential --account {ALICE} --scope azure-devops",
        cli_bin().display(),
        m.home.path().display()
    );

    // The server refuses the first token: git says so with `erase`, and the clone fails.
    let before = idp.token_requests();
    let first = run_tool(
        &m,
        "git",
        &["clone", "-q", "-c", &helper, &url, "first"],
        work.path(),
        &[],
    )
    .await;
    assert_ne!(first.code, 0, "the refused token fails the clone");
    assert!(
        first.stderr.contains("Authentication failed"),
        "{}",
        first.stderr
    );
    let refused = server.state.refused.lock().unwrap().clone();
    assert_eq!(refused.len(), 1);
    let claims = idp.verify_token(&refused[0]).unwrap();
    assert_eq!(claims["aud"], AZURE_DEVOPS_RESOURCE_ID);
    assert_eq!(claims["preferred_username"], ALICE);
    assert_eq!(
        idp.token_requests() - before,
        1,
        "a refresh for Azure DevOps' scope"
    );
    assert!(
        !m.refresh_tokens(SANDBOX_CLIENT).is_empty(),
        "erase kept the refresh token"
    );

    // The retry: a new token (the refused one is not served again), and the clone works.
    let before = idp.token_requests();
    run_tool(
        &m,
        "git",
        &["clone", "-q", "-c", &helper, &url, "repo"],
        work.path(),
        &[],
    )
    .await
    .ok();
    assert_eq!(idp.token_requests() - before, 1, "erase made `get` refresh");
    let second = server
        .state
        .accepted
        .lock()
        .unwrap()
        .last()
        .cloned()
        .unwrap();
    assert_ne!(second, refused[0]);
    let clone = work.path().join("repo");
    assert_eq!(
        std::fs::read_to_string(clone.join("README")).unwrap(),
        "hello\n"
    );

    // Push (the helper stays in the clone's config); the token comes from the cache.
    std::fs::write(clone.join("CHANGES"), "pushed through Tessera\n").unwrap();
    git(&["add", "CHANGES"], &clone);
    git(
        &[
            "-c",
            "user.name=Alice",
            "-c",
            "user.email=alice@contoso.example",
            "commit",
            "-qm",
            "second",
        ],
        &clone,
    );
    let before = idp.token_requests();
    run_tool(&m, "git", &["push", "-q", "origin", "main"], &clone, &[])
        .await
        .ok();
    assert_eq!(idp.token_requests(), before, "the cached token");
    assert_eq!(server.state.accepted.lock().unwrap().last(), Some(&second));
    let log = std::process::Command::new("git")
        .args([
            "--git-dir",
            &root.join("repo.git").display().to_string(),
            "log",
            "--format=%s",
            "main",
        ])
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&log.stdout), "second\nfirst\n");

    // The helper itself: get, store, garbage, plain http to another host.
    let helper_args = [
        "--profile",
        "Sandbox",
        "git-credential",
        "--account",
        ALICE,
        "--scope",
        "azure-devops",
    ];
    let with_op = |op: &str| {
        let mut a = helper_args.to_vec();
        a.push(op);
        a.iter().map(|s| s.to_string()).collect::<Vec<_>>()
    };
    let get = m
        .run_with(
            &strs(&with_op("get")),
            &[],
            Some(&format!("protocol=http\nhost={}\n\n", server.addr)),
        )
        .await
        .ok();
    let expiry = idp.verify_token(&second).unwrap()["exp"].as_i64().unwrap();
    assert_eq!(
        get.stdout,
        format!(
            "username={ALICE}\npassword={second}\npassword_expiry_utc={}\n",
            {
                let fields: Value = m
                    .run(&[
                        "--profile",
                        "Sandbox",
                        "token",
                        "--account",
                        ALICE,
                        "--scope",
                        "azure-devops",
                        "--json",
                    ])
                    .await
                    .ok()
                    .json();
                assert!(fields["expires_on"].as_i64().unwrap() <= expiry);
                fields["expires_on"].as_i64().unwrap()
            }
        )
    );
    let before = m.snapshot(SANDBOX_CLIENT);
    let garbage = m
        .run_with(
            &strs(&with_op("get")),
            &[],
            Some("protocol=https\nthis is not git\n"),
        )
        .await
        .exit(2);
    assert!(
        garbage
            .stderr
            .contains("line 2 of the input is not key=value"),
        "{}",
        garbage.stderr
    );
    assert_eq!(garbage.stdout, "");
    let erase_garbage = m
        .run_with(&strs(&with_op("erase")), &[], Some("\u{1}\u{2}garbage"))
        .await
        .exit(2);
    assert_eq!(erase_garbage.stdout, "");
    m.run_with(
        &strs(&with_op("store")),
        &[],
        Some(&format!(
            "protocol=http\nhost={}\nusername=x\npassword={second}\n",
            server.addr
        )),
    )
    .await
    .ok();
    let elsewhere = m
        .run_with(
            &strs(&with_op("get")),
            &[],
            Some("protocol=http\nhost=dev.azure.com\n"),
        )
        .await
        .ok();
    assert_eq!(
        elsewhere.stdout, "",
        "no token over plain http to another host"
    );
    assert!(
        elsewhere
            .stderr
            .contains("not sending a token to dev.azure.com over http"),
        "{}",
        elsewhere.stderr
    );
    assert_eq!(m.snapshot(SANDBOX_CLIENT), before, "nothing changed");

    // Garbage before any sign-in: no store is created either.
    let fresh = Machine::for_sandbox(&idp);
    fresh
        .run_with(&strs(&with_op("get")), &[], Some("garbage"))
        .await
        .exit(2);
    assert_eq!(
        std::fs::read_dir(fresh.home.path()).unwrap().count(),
        0,
        "nothing was written"
    );

    m.assert_stderr_clean(&[("access token", &refused[0]), ("access token", &second)]);
}

/// The app's "Use with tools" panel shows lines made by `tessera_core::tools`: run as
/// shown (through `sh`), they configure kubectl and git, and start a program with the
/// managed-identity endpoint, for the account and scopes they name.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_use_with_tools_lines_work_as_shown() {
    use tessera_core::scopes::ScopeSet;
    use tessera_core::tools::{tool_lines, ToolTarget, RUN_EXAMPLE};
    let idp = sandbox().await;
    let m = Machine::for_sandbox(&idp);
    device_login_sandbox(&m, &idp, ALICE).await.ok();
    let work = tempfile::tempdir().unwrap();
    let cli = cli_bin().display().to_string();
    let line = |scopes: &str| {
        tool_lines(&ToolTarget {
            cli: &cli,
            home: Some(m.home.path()),
            profile: "Sandbox",
            account: ALICE,
            scopes: &ScopeSet::parse_user_input(scopes),
        })
    };
    let sh = |line: String, env: Vec<(&'static str, String)>| {
        let m = &m;
        let dir = work.path().to_path_buf();
        async move {
            let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
            run_tool(m, "sh", &["-c", &line], &dir, &env).await
        }
    };

    // kubectl: the line points the current context at the exec plugin.
    let kubeconfig = work.path().join("kubeconfig");
    std::fs::write(
        &kubeconfig,
        "apiVersion: v1\nkind: Config\nclusters:\n- name: demo\n  cluster: {server: \"https://127.0.0.1:6443\"}\ncontexts:\n- name: demo\n  context: {cluster: demo, user: demo-admin}\ncurrent-context: demo\nusers:\n- name: demo-admin\n  user: {token: placeholder}\n",
    )
    .unwrap();
    let kc = kubeconfig.display().to_string();
    sh(line("aks").kubectl, vec![("KUBECONFIG", kc.clone())])
        .await
        .exit(0);
    let user = run_tool(
        &m,
        "kubectl",
        &[
            "--kubeconfig",
            &kc,
            "config",
            "view",
            "--minify",
            "-o",
            "jsonpath={.users[0].name}",
        ],
        work.path(),
        &[],
    )
    .await
    .exit(0)
    .stdout
    .clone();
    assert_eq!(
        user,
        format!("tessera:Sandbox:{ALICE}:{AKS_RESOURCE_ID}/.default")
    );

    // git: the line makes tessera-cli the helper for Azure DevOps; git then gets a token.
    let gitconfig = work.path().join("gitconfig").display().to_string();
    sh(
        line("azure-devops").git,
        vec![("GIT_CONFIG_GLOBAL", gitconfig.clone())],
    )
    .await
    .exit(0);
    let mut fill = tokio::process::Command::new("git");
    fill.args(["credential", "fill"])
        .current_dir(work.path())
        .env("HOME", work.path())
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", &gitconfig)
        .env("GIT_TERMINAL_PROMPT", "0")
        .env_remove("TESSERA_HOME")
        .envs(m.env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = fill.spawn().unwrap();
    {
        use tokio::io::AsyncWriteExt;
        let mut stdin = child.stdin.take().unwrap();
        stdin
            .write_all(b"protocol=https\nhost=dev.azure.com\n\n")
            .await
            .unwrap();
    }
    let out = child.wait_with_output().await.unwrap();
    let answer = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let password = answer
        .lines()
        .find_map(|l| l.strip_prefix("password="))
        .unwrap_or_else(|| panic!("no password in {answer}"));
    assert_eq!(password.split('.').count(), 3, "an access token");

    // run: the line starts the program with the managed-identity endpoint.
    let run = line("User.Read").run.replace(
        RUN_EXAMPLE,
        "sh -c 'test -n \"$IDENTITY_ENDPOINT\" && echo endpoint-set'",
    );
    let r = sh(run, vec![]).await.exit(0);
    assert!(r.stdout.contains("endpoint-set"), "{}", r.stdout);
}
