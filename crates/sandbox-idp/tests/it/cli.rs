//! The `tessera-sandbox-idp` binary: start-up line, flags, help.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_tessera-sandbox-idp");

struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts the binary and returns it with the base URL from its first stdout line.
fn spawn(args: &[&str]) -> (Server, String, Duration) {
    let started = Instant::now();
    let mut child = Command::new(BIN)
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("binary runs");
    let stdout = child.stdout.take().unwrap();
    let mut line = String::new();
    BufReader::new(stdout).read_line(&mut line).unwrap();
    let elapsed = started.elapsed();
    let base = line
        .trim()
        .strip_prefix("sandbox-idp listening on ")
        .unwrap_or_else(|| panic!("unexpected first line: {line:?}"))
        .to_string();
    (Server(child), base, elapsed)
}

#[tokio::test]
async fn binary_prints_its_address_and_applies_fault_flags() {
    let (_server, base, startup) = spawn(&[
        "--port",
        "0",
        "--http-status",
        "503",
        "--retry-after-secs",
        "3",
    ]);
    assert!(base.starts_with("http://127.0.0.1:"), "{base}");
    eprintln!("binary start-up to first line: {startup:?}");
    let http = reqwest::Client::new();
    let doc: serde_json::Value = http
        .get(format!(
            "{base}/common/v2.0/.well-known/openid-configuration"
        ))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(doc["issuer"], format!("{base}/{{tenantid}}/v2.0"));
    let resp = http
        .post(format!("{base}/common/oauth2/v2.0/token"))
        .form(&[
            ("grant_type", "refresh_token"),
            ("client_id", "x"),
            ("refresh_token", "y"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 503);
    assert_eq!(resp.headers()["retry-after"], "3");
    let faults: serde_json::Value = http
        .get(format!("{base}/_sandbox/faults"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(faults["http_status"], 503);
}

#[test]
fn help_lists_the_switches() {
    let out = Command::new(BIN).arg("--help").output().unwrap();
    assert!(out.status.success());
    let help = String::from_utf8(out.stdout).unwrap();
    for flag in [
        "--port",
        "--latency-ms",
        "--http-status",
        "--malformed-json",
        "--html-error-page",
        "--refresh-invalid-grant",
        "--interaction-required",
        "--wrong-issuer",
        "--wrong-nonce",
        "--expired-tokens",
        "--token-lifetime",
        "--refresh-in",
        "--strict-rotation",
        "--device-code-interval",
        "--fail-count",
    ] {
        assert!(help.contains(flag), "{flag} missing from --help");
    }
}

#[test]
fn a_bad_flag_is_a_clear_error() {
    let out = Command::new(BIN)
        .args(["--http-status", "200"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--http-status"));
}
