//! `tessera-cli run` with the real Azure SDKs: Python `azure-identity` and Node
//! `@azure/identity` (pinned in `tests/azure-sdk/`, installed by `scripts/setup`) get, inside
//! `run`, the very token `tessera-cli token` gives for the same account and scope, and
//! nothing outside it. The endpoint's two protocols (App Service managed identity, azd's
//! external authentication) are also driven with a plain HTTP client: keys, errors, the
//! endpoint's lifetime, and how `run` ends (exit status, signals).
//!
//! No test lets an SDK run without `IDENTITY_ENDPOINT` pointing at 127.0.0.1 (it would probe
//! the VM metadata address 169.254.169.254); the helpers refuse to, and drop every `AZURE_*`
//! and proxy variable they inherit.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tessera_sandbox_idp::{Faults, CONTOSO};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};

use crate::cli::{closed_port, device_login_sandbox, sandbox, Machine, Run, ALICE, SANDBOX_CLIENT};

const GRAPH: &str = "https://graph.microsoft.com";
const GRAPH_DEFAULT: &str = "https://graph.microsoft.com/.default";
const SANDBOX_API_DEFAULT: &str = "api://sandbox-api/.default";
const SDK_TIMEOUT: Duration = Duration::from_secs(120);

fn sdk_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("azure-sdk")
}

#[derive(Debug, Clone, Copy)]
enum Sdk {
    /// azure-identity's `ManagedIdentityCredential`.
    PythonMi,
    /// azure-identity's `DefaultAzureCredential`, managed identity only.
    PythonDefault,
    /// @azure/identity's `ManagedIdentityCredential`.
    NodeMi,
    /// @azure/identity's `DefaultAzureCredential`, managed identity only.
    NodeDefault,
}

const ALL_SDKS: [Sdk; 4] = [
    Sdk::PythonMi,
    Sdk::PythonDefault,
    Sdk::NodeMi,
    Sdk::NodeDefault,
];

impl Sdk {
    /// The helper's command line: program first.
    fn argv(self, scope: &str) -> Vec<String> {
        let dir = sdk_dir();
        let (program, helper, kind) = match self {
            Sdk::PythonMi | Sdk::PythonDefault => {
                let python = dir.join(".venv/bin/python");
                assert!(
                    python.is_file(),
                    "azure-identity is not installed ({} is missing): run scripts/setup",
                    python.display()
                );
                (python, dir.join("sdk_helper.py"), self.kind())
            }
            Sdk::NodeMi | Sdk::NodeDefault => {
                assert!(
                    dir.join("node_modules/@azure/identity").is_dir(),
                    "@azure/identity is not installed in {}: run scripts/setup",
                    dir.display()
                );
                (
                    PathBuf::from("node"),
                    dir.join("sdk_helper.cjs"),
                    self.kind(),
                )
            }
        };
        vec![
            program.display().to_string(),
            helper.display().to_string(),
            kind.into(),
            scope.into(),
        ]
    }

    fn kind(self) -> &'static str {
        match self {
            Sdk::PythonMi | Sdk::NodeMi => "mi",
            Sdk::PythonDefault | Sdk::NodeDefault => "dac",
        }
    }

    /// Runs the helper outside `run`, with these managed identity variables.
    async fn outside(self, endpoint: &str, header: &str, scope: &str) -> (i32, Value) {
        let argv = self.argv(scope);
        let mut c = tokio::process::Command::new(&argv[0]);
        c.args(&argv[1..])
            .env("IDENTITY_ENDPOINT", endpoint)
            .env("IDENTITY_HEADER", header)
            .env_remove("IDENTITY_SERVER_THUMBPRINT")
            .env_remove("MSI_ENDPOINT")
            .env_remove("MSI_SECRET")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let out = tokio::time::timeout(SDK_TIMEOUT, c.output())
            .await
            .unwrap_or_else(|_| panic!("{self:?} outside run did not finish"))
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        let value = serde_json::from_str(stdout.trim()).unwrap_or_else(|e| {
            panic!(
                "{self:?}: stdout is not JSON ({e}): {stdout}\nstderr: {}",
                String::from_utf8_lossy(&out.stderr)
            )
        });
        (out.status.code().unwrap_or(-1), value)
    }
}

/// `tessera-cli run [extra] -- <sdk helper>`: the token the SDK got inside `run`.
async fn token_inside_run(m: &Machine, sdk: Sdk, extra: &[&str], scope: &str) -> String {
    let argv = sdk.argv(scope);
    let mut args = vec!["run", "--account", ALICE];
    args.extend_from_slice(extra);
    args.push("--");
    args.extend(argv.iter().map(String::as_str));
    let run = m.run(&args).await;
    assert_eq!(
        run.code, 0,
        "{sdk:?} inside run failed; stdout:\n{}\nstderr:\n{}",
        run.stdout, run.stderr
    );
    let got = run.json();
    got["token"]
        .as_str()
        .unwrap_or_else(|| panic!("{sdk:?} got no token: {got}"))
        .to_owned()
}

/// What `tessera-cli token` prints for this scope.
async fn cli_token(m: &Machine, scope: &str) -> String {
    m.run(&["token", "--account", ALICE, "--scope", scope])
        .await
        .ok()
        .stdout
        .trim_end()
        .to_owned()
}

/// The JWT's payload claims (the sandbox's tokens are JWS).
fn claims(token: &str) -> Value {
    use base64::Engine;
    let payload = token.split('.').nth(1).expect("a JWT");
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .expect("base64url payload");
    serde_json::from_slice(&bytes).expect("JSON claims")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sdk_managed_identity_inside_run_gets_the_token_that_token_gives() {
    let idp = sandbox().await;
    let m = Machine::for_sandbox(&idp);
    device_login_sandbox(&m, &idp, ALICE).await.ok();

    // `token` first, then every SDK inside `run`: the same cached token.
    let graph = cli_token(&m, GRAPH_DEFAULT).await;
    assert_eq!(
        claims(&graph)["aud"],
        "00000003-0000-0000-c000-000000000000"
    );
    for sdk in ALL_SDKS {
        let got = token_inside_run(&m, sdk, &[], GRAPH_DEFAULT).await;
        assert_eq!(
            got, graph,
            "{sdk:?} got another token than `tessera-cli token`"
        );
    }

    // The SDK first (the endpoint refreshes silently and caches), then `token`.
    let api = token_inside_run(&m, Sdk::PythonMi, &[], SANDBOX_API_DEFAULT).await;
    assert_eq!(claims(&api)["aud"], "api://sandbox-api");
    assert_eq!(cli_token(&m, SANDBOX_API_DEFAULT).await, api);
    assert_eq!(
        token_inside_run(&m, Sdk::NodeMi, &[], SANDBOX_API_DEFAULT).await,
        api
    );

    // --scope-map: a resource the provider does not know is served with the mapped scope.
    let mapped = [
        "--scope-map",
        "https://api.contoso.example=api://sandbox-api/.default",
    ];
    for sdk in [Sdk::PythonDefault, Sdk::NodeMi] {
        assert_eq!(
            token_inside_run(&m, sdk, &mapped, "https://api.contoso.example/.default").await,
            api,
            "{sdk:?} with --scope-map"
        );
    }

    m.assert_stderr_clean(&[("graph token", &graph), ("api token", &api)]);
}

/// `tessera-cli run -- sh`: a command that prints what `run` gave it and waits for a line
/// on stdin before exiting 7, so that the test can talk to the endpoint meanwhile.
struct Probe {
    child: tokio::process::Child,
    stdin: tokio::process::ChildStdin,
    stdout: BufReader<tokio::process::ChildStdout>,
    msi: String,
    header: String,
    azd: String,
    key: String,
    thumbprint: String,
}

impl Probe {
    /// `log`: the `TESSERA_LOG` filter `run` gets.
    async fn start(m: &Machine, extra: &[&str], log: &str) -> Probe {
        let script = "printf '%s\\n' \"$IDENTITY_ENDPOINT\" \"$IDENTITY_HEADER\" \
                      \"$AZD_AUTH_ENDPOINT\" \"$AZD_AUTH_KEY\" \"${IDENTITY_SERVER_THUMBPRINT-unset}\"; \
                      read line; exit 7";
        let mut args = vec!["run", "--account", ALICE];
        args.extend_from_slice(extra);
        args.extend(["--", "sh", "-c", script]);
        let mut c = m.command(&args);
        c.env("TESSERA_LOG", log)
            // A variable that would turn the SDKs to Service Fabric: `run` removes it.
            .env("IDENTITY_SERVER_THUMBPRINT", "0000")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = c.spawn().expect("tessera-cli starts");
        let stdin = child.stdin.take().unwrap();
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        let mut lines = Vec::new();
        for _ in 0..5 {
            let mut line = String::new();
            let n = tokio::time::timeout(Duration::from_secs(60), stdout.read_line(&mut line))
                .await
                .expect("the command starts within 60 s")
                .unwrap();
            if n == 0 {
                let mut err = String::new();
                child
                    .stderr
                    .take()
                    .unwrap()
                    .read_to_string(&mut err)
                    .await
                    .unwrap();
                panic!("run ended before its command printed; stderr:\n{err}");
            }
            lines.push(line.trim_end().to_owned());
        }
        let [msi, header, azd, key, thumbprint] = <[String; 5]>::try_from(lines).unwrap();
        Probe {
            child,
            stdin,
            stdout,
            msi,
            header,
            azd,
            key,
            thumbprint,
        }
    }

    /// Lets the command exit; the whole `run` as a [`Run`].
    async fn finish(mut self, m: &Machine) -> Run {
        let started = Instant::now();
        self.stdin.write_all(b"\n").await.unwrap();
        drop(self.stdin);
        let mut stdout = String::new();
        self.stdout.read_to_string(&mut stdout).await.unwrap();
        let mut stderr = String::new();
        self.child
            .stderr
            .take()
            .unwrap()
            .read_to_string(&mut stderr)
            .await
            .unwrap();
        let status = tokio::time::timeout(Duration::from_secs(30), self.child.wait())
            .await
            .expect("run ends with its command")
            .unwrap();
        let run = Run {
            code: status.code().unwrap_or(-1),
            stdout,
            stderr,
            took: started.elapsed(),
        };
        m.record(&run);
        run
    }
}

fn port_of(url: &str) -> u16 {
    url::Url::parse(url).unwrap().port().unwrap()
}

async fn assert_closed(url: &str) {
    let addr = format!("127.0.0.1:{}", port_of(url));
    assert!(
        tokio::net::TcpStream::connect(&addr).await.is_err(),
        "{addr} still accepts connections after run ended"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sdk_outside_run_gets_nothing() {
    let idp = sandbox().await;
    let m = Machine::for_sandbox(&idp);
    device_login_sandbox(&m, &idp, ALICE).await.ok();
    let graph = cli_token(&m, GRAPH_DEFAULT).await;

    // What a command inside `run` was given stops working when `run` ends.
    let probe = Probe::start(&m, &[], "debug").await;
    let (msi, header) = (probe.msi.clone(), probe.header.clone());
    assert!(msi.starts_with("http://127.0.0.1:"), "{msi}");
    assert_eq!(probe.finish(&m).await.code, 7);
    assert_closed(&msi).await;

    let closed = format!("http://127.0.0.1:{}/msi/token", closed_port());
    let mut attempts = Vec::new();
    for sdk in ALL_SDKS {
        attempts.push((sdk, "the ended run's endpoint", msi.clone(), header.clone()));
        attempts.push((sdk, "a closed port", closed.clone(), header.clone()));
    }
    let results = futures_join(attempts.iter().map(|(sdk, _, endpoint, header)| {
        let (sdk, endpoint, header) = (*sdk, endpoint.clone(), header.clone());
        async move { sdk.outside(&endpoint, &header, GRAPH_DEFAULT).await }
    }))
    .await;
    for ((sdk, what, _, _), (code, value)) in attempts.iter().zip(results) {
        assert_eq!(code, 1, "{sdk:?} against {what}: {value}");
        assert!(
            value.get("token").is_none(),
            "{sdk:?} against {what}: {value}"
        );
        assert!(!value.to_string().contains(&graph));
    }
}

/// Runs the futures concurrently (the SDKs retry for seconds before giving up).
async fn futures_join<F: std::future::Future<Output = T> + Send + 'static, T: Send + 'static>(
    futures: impl Iterator<Item = F>,
) -> Vec<T> {
    let handles: Vec<_> = futures.map(tokio::spawn).collect();
    let mut out = Vec::new();
    for h in handles {
        out.push(h.await.unwrap());
    }
    out
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(60))
        .build()
        .unwrap()
}

async fn msi_get(
    http: &reqwest::Client,
    p: &Probe,
    header: Option<&str>,
    query: &[(&str, &str)],
) -> (u16, Value) {
    let mut req = http.get(&p.msi).query(query);
    if let Some(h) = header {
        req = req.header("X-IDENTITY-HEADER", h);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

async fn azd_post(
    http: &reqwest::Client,
    p: &Probe,
    authorization: Option<&str>,
    api_version: &str,
    body: &str,
) -> (u16, Value) {
    let mut req = http
        .post(format!("{}/token", p.azd))
        .query(&[("api-version", api_version)])
        .header("Content-Type", "application/json")
        .body(body.to_owned());
    if let Some(a) = authorization {
        req = req.header("Authorization", a);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

const MSI_VERSION: (&str, &str) = ("api-version", "2019-08-01");
const AZD_VERSION: &str = "2023-07-12-preview";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sdk_endpoint_needs_its_key_and_answers_both_protocols() {
    let idp = sandbox().await;
    let m = Machine::for_sandbox(&idp);
    device_login_sandbox(&m, &idp, ALICE).await.ok();
    let p = Probe::start(&m, &[], "trace").await;
    let http = client();
    assert!(p.msi.starts_with("http://127.0.0.1:") && p.msi.ends_with("/msi/token"));
    assert!(p.azd.starts_with("http://127.0.0.1:"));
    assert_eq!(
        p.thumbprint, "unset",
        "IDENTITY_SERVER_THUMBPRINT reached the command"
    );
    assert!(
        p.header.len() >= 22 && p.key.len() >= 22,
        "at least 128 bits each"
    );
    assert_ne!(p.header, p.key);

    // Managed identity: the token `token` gives, in App Service's shape.
    let resp = http
        .get(&p.msi)
        .query(&[MSI_VERSION, ("resource", GRAPH)])
        .header("X-IDENTITY-HEADER", &p.header)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["cache-control"], "no-store");
    let got: Value = resp.json().await.unwrap();
    let listed = m
        .run(&[
            "token",
            "--account",
            ALICE,
            "--scope",
            GRAPH_DEFAULT,
            "--json",
        ])
        .await
        .ok()
        .json();
    let token = listed["access_token"].as_str().unwrap().to_owned();
    let expires_on = listed["expires_on"].as_i64().unwrap();
    assert_eq!(
        got,
        json!({
            "access_token": token,
            "expires_on": expires_on.to_string(),
            "resource": GRAPH,
            "token_type": "Bearer",
            "client_id": SANDBOX_CLIENT,
        })
    );

    // No key, a wrong key, the other protocol's key: 401 and no token.
    let mut wrong = p.header.clone();
    let last = wrong.pop().unwrap();
    wrong.push(if last == 'A' { 'B' } else { 'A' });
    let mut longer = p.header.clone();
    longer.push('A');
    for (what, header) in [
        ("no header", None),
        ("an empty header", Some("")),
        ("a wrong header", Some(wrong.as_str())),
        ("a longer header", Some(longer.as_str())),
        (
            "a prefix of the header",
            Some(&p.header[..p.header.len() - 1]),
        ),
        ("the azd key", Some(p.key.as_str())),
    ] {
        let (status, body) = msi_get(&http, &p, header, &[MSI_VERSION, ("resource", GRAPH)]).await;
        assert_eq!(status, 401, "{what}: {body}");
        assert!(body.get("access_token").is_none(), "{what}: {body}");
        assert!(!body.to_string().contains(&token), "{what}");
    }

    // Bad requests, and a resource the account cannot get: an error, promptly.
    let key = Some(p.header.as_str());
    let (status, body) = msi_get(&http, &p, key, &[("resource", GRAPH)]).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_request"))
    );
    let (status, body) = msi_get(&http, &p, key, &[MSI_VERSION]).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_request"))
    );
    let started = Instant::now();
    let (status, body) = msi_get(
        &http,
        &p,
        key,
        &[MSI_VERSION, ("resource", "api://unknown-api")],
    )
    .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"], "invalid_resource", "{body}");
    assert!(
        body["error_description"]
            .as_str()
            .unwrap()
            .contains("api://unknown-api"),
        "{body}"
    );
    assert_eq!(body["statusCode"], 400);
    assert!(started.elapsed() < Duration::from_secs(10));
    let status = http
        .post(&p.msi)
        .query(&[MSI_VERSION, ("resource", GRAPH)])
        .header("X-IDENTITY-HEADER", &p.header)
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(status, 405);
    let other = p
        .msi
        .replace("/msi/token", "/metadata/identity/oauth2/token");
    assert_eq!(http.get(other).send().await.unwrap().status(), 404);

    // azd: the same token; its expiry in RFC 3339.
    let bearer = format!("Bearer {}", p.key);
    let scopes = json!({"scopes": [GRAPH_DEFAULT]}).to_string();
    let (status, body) = azd_post(&http, &p, Some(&bearer), AZD_VERSION, &scopes).await;
    assert_eq!(status, 200);
    assert_eq!(body["status"], "success", "{body}");
    assert_eq!(body["token"], token.as_str());
    let expiry = time::OffsetDateTime::parse(
        body["expiresOn"].as_str().unwrap(),
        &time::format_description::well_known::Rfc3339,
    )
    .unwrap();
    assert_eq!(expiry.unix_timestamp(), expires_on);
    let with_tenant = json!({"scopes": [GRAPH_DEFAULT], "tenantId": CONTOSO.id}).to_string();
    let (_, body) = azd_post(&http, &p, Some(&bearer), AZD_VERSION, &with_tenant).await;
    assert_eq!(body["token"], token.as_str(), "{body}");
    for (what, authorization) in [
        ("no key", None),
        ("a wrong key", Some(format!("Bearer {wrong}"))),
        ("the identity header", Some(format!("Bearer {}", p.header))),
        ("the bare key", Some(p.key.clone())),
    ] {
        let (status, body) =
            azd_post(&http, &p, authorization.as_deref(), AZD_VERSION, &scopes).await;
        assert_eq!(status, 401, "{what}: {body}");
        assert!(!body.to_string().contains(&token), "{what}");
    }
    let other_tenant = json!({"scopes": [GRAPH_DEFAULT], "tenantId": "another-tenant"}).to_string();
    let (status, body) = azd_post(&http, &p, Some(&bearer), AZD_VERSION, &other_tenant).await;
    assert_eq!(status, 200);
    assert_eq!(
        (body["status"].as_str(), body["code"].as_str()),
        (Some("error"), Some("GetTokenError")),
        "{body}"
    );
    assert!(body.get("token").is_none());
    let unknown = json!({"scopes": ["api://unknown-api/.default"]}).to_string();
    let (status, body) = azd_post(&http, &p, Some(&bearer), AZD_VERSION, &unknown).await;
    assert_eq!(status, 200);
    assert_eq!(body["code"], "GetTokenError", "{body}");
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("invalid_resource"),
        "{body}"
    );
    let (status, _) = azd_post(&http, &p, Some(&bearer), "2020-01-01", &scopes).await;
    assert_eq!(status, 400);
    for bad in ["", "{}", "{\"scopes\":[]}", "{\"scopes\":\"x\"}", "[1]"] {
        let (status, body) = azd_post(&http, &p, Some(&bearer), AZD_VERSION, bad).await;
        assert_eq!(status, 400, "{bad:?}: {body}");
    }

    // A cached token over one keep-alive connection, 200 times, logging as by default: the
    // median time. The client is a few lines of HTTP/1.1 so that it measures the endpoint.
    let q = Probe::start(&m, &[], "warn").await;
    let target = url::Url::parse(&q.msi).unwrap();
    let request = format!(
        "GET {}?api-version=2019-08-01&resource=https%3A%2F%2Fgraph.microsoft.com HTTP/1.1\r\n\
         Host: {}\r\nX-IDENTITY-HEADER: {}\r\n\r\n",
        target.path(),
        target.authority(),
        q.header
    );
    let stream = tokio::net::TcpStream::connect(target.authority())
        .await
        .unwrap();
    stream.set_nodelay(true).unwrap();
    let mut conn = BufReader::new(stream);
    let mut times = Vec::new();
    for _ in 0..200 {
        let started = Instant::now();
        let (status, body) = keep_alive_get(&mut conn, request.as_bytes()).await;
        times.push(started.elapsed());
        assert_eq!(status, 200);
        let body: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(body["access_token"], token.as_str());
    }
    times.sort();
    let median = times[times.len() / 2];
    eprintln!(
        "managed identity request served from the cache, over keep-alive: median {median:?}, \
         p90 {:?}, max {:?} (200 requests)",
        times[times.len() * 9 / 10],
        times[times.len() - 1]
    );
    assert!(median < Duration::from_millis(50), "median {median:?}");

    assert_eq!(q.finish(&m).await.code, 7);

    // A rejected refresh token: "sign in again" in both protocols' words.
    idp.set_faults(Faults {
        refresh_invalid_grant: true,
        ..Faults::default()
    });
    let (status, body) = msi_get(
        &http,
        &p,
        key,
        &[MSI_VERSION, ("resource", "api://sandbox-api")],
    )
    .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("interaction_required")),
        "{body}"
    );
    assert!(
        body["message"].as_str().unwrap().contains("login"),
        "{body}"
    );
    let api = json!({"scopes": [SANDBOX_API_DEFAULT]}).to_string();
    let (status, body) = azd_post(&http, &p, Some(&bearer), AZD_VERSION, &api).await;
    assert_eq!(status, 200);
    assert_eq!(body["code"], "NotSignedInError", "{body}");
    // The provider gone: 502, at once; cached tokens are still served.
    idp.set_faults(Faults::default());
    idp.shutdown().await;
    let (status, body) = msi_get(
        &http,
        &p,
        key,
        &[MSI_VERSION, ("resource", "api://sandbox-api")],
    )
    .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (502, Some("provider_unavailable")),
        "{body}"
    );

    let (msi, header, azd_key) = (p.msi.clone(), p.header.clone(), p.key.clone());
    let run = p.finish(&m).await;
    assert_eq!(
        run.code, 7,
        "run exits with its command's status: {}",
        run.stderr
    );
    assert_eq!(run.stdout, "");
    assert_closed(&msi).await;
    assert!(
        run.stderr.contains("TRACE") || run.stderr.contains("DEBUG"),
        "logs were on"
    );
    m.assert_stderr_clean(&[
        ("access token", &token),
        ("identity header", &header),
        ("azd key", &azd_key),
    ]);
}

/// One request on an open HTTP/1.1 connection: the status and the body (Content-Length).
async fn keep_alive_get(
    conn: &mut BufReader<tokio::net::TcpStream>,
    request: &[u8],
) -> (u16, Vec<u8>) {
    conn.get_mut().write_all(request).await.unwrap();
    let mut status_line = String::new();
    conn.read_line(&mut status_line).await.unwrap();
    let status = status_line.split(' ').nth(1).unwrap().parse().unwrap();
    let mut length = 0;
    loop {
        let mut line = String::new();
        conn.read_line(&mut line).await.unwrap();
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        if let Some((name, value)) = line.split_once(':') {
            if name.eq_ignore_ascii_case("content-length") {
                length = value.trim().parse().unwrap();
            }
        }
    }
    let mut body = vec![0; length];
    conn.read_exact(&mut body).await.unwrap();
    (status, body)
}

fn pid_of(child: &tokio::process::Child) -> String {
    child.id().unwrap().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sdk_run_exits_as_its_command_and_passes_signals_on() {
    let idp = sandbox().await;

    // No account: `run` stops before starting the command.
    let nobody = Machine::for_sandbox(&idp);
    let scratch = tempfile::tempdir().unwrap();
    let marker = scratch.path().join("ran");
    let touch = format!("touch '{}'", marker.display());
    nobody.run(&["run", "--", "sh", "-c", &touch]).await.exit(3);
    assert!(!marker.exists(), "the command ran without an account");

    let m = Machine::for_sandbox(&idp);
    device_login_sandbox(&m, &idp, ALICE).await.ok();
    m.run(&["run", "--", "sh", "-c", "exit 0"]).await.ok();
    m.run(&["run", "--", "sh", "-c", "exit 7"]).await.exit(7);
    let out = m
        .run(&["run", "--", "sh", "-c", "echo out; echo err >&2; exit 3"])
        .await
        .exit(3);
    assert_eq!(out.stdout, "out\n");
    assert!(out.stderr.contains("err\n"));
    m.run(&["run", "--", "/nonexistent/command"])
        .await
        .exit(127);
    m.run(&["run", "--", "/"]).await.exit(126);

    // SIGINT and SIGTERM reach the command, whose status `run` returns. `run` gets its own
    // process group, as a background job: a terminal's Ctrl-C is not forwarded again.
    let script = "import signal, sys, time\n\
                  signal.signal(signal.SIGINT, lambda *a: sys.exit(42))\n\
                  signal.signal(signal.SIGTERM, lambda *a: sys.exit(43))\n\
                  print('ready', flush=True)\n\
                  time.sleep(60)\n\
                  sys.exit(1)\n";
    for (signal, code) in [("-INT", 42), ("-TERM", 43)] {
        let mut c = m.command(&["run", "--", "python3", "-c", script]);
        c.process_group(0)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = c.spawn().unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let ready = tokio::time::timeout(Duration::from_secs(60), lines.next_line())
            .await
            .expect("the command starts")
            .unwrap();
        assert_eq!(ready.as_deref(), Some("ready"));
        let killed = tokio::process::Command::new("kill")
            .args([signal, &pid_of(&child)])
            .status()
            .await
            .unwrap();
        assert!(killed.success());
        let status = tokio::time::timeout(Duration::from_secs(30), child.wait())
            .await
            .expect("run ends after its command")
            .unwrap();
        assert_eq!(status.code(), Some(code), "after kill {signal}");
    }

    // A command killed by a signal: `run` ends by the same signal.
    let status = m
        .command(&["run", "--", "sh", "-c", "kill -TERM $$"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .await
        .unwrap();
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(status.signal(), Some(15), "{status:?}");
}
