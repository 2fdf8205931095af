//! `tessera-sandbox-idp`: runs the sandbox identity provider on 127.0.0.1.

use clap::Parser;
use std::io::Write;

use tessera_sandbox_idp::{
    start, Faults, ResponseIss, SandboxConfig, DEFAULT_FAMILY_CLIENT_IDS, DEFAULT_PORT,
};

/// A local identity provider that follows Microsoft Entra ID's v2.0 endpoints, with demo
/// tenants and users (password "tessera") and switches that inject faults.
///
/// Prints `sandbox-idp listening on http://127.0.0.1:PORT` on stdout once it accepts
/// connections; logs to stderr (RUST_LOG, default info). Faults can also be changed while it
/// runs: GET/POST/DELETE /_sandbox/faults.
#[derive(Debug, Parser)]
#[command(name = "tessera-sandbox-idp", version)]
struct Args {
    /// Port on 127.0.0.1 (0 picks a free port).
    #[arg(long, default_value_t = DEFAULT_PORT)]
    port: u16,
    /// Delay every response by this many milliseconds.
    #[arg(long, value_name = "MS", default_value_t = 0)]
    latency_ms: u64,
    /// Token endpoint answers with this HTTP status (e.g. 500, 503) and a Retry-After header.
    #[arg(long, value_name = "STATUS", value_parser = clap::value_parser!(u16).range(400..=599))]
    http_status: Option<u16>,
    /// Retry-After seconds sent with --http-status (default 1).
    #[arg(long, value_name = "SECS")]
    retry_after_secs: Option<u64>,
    /// Token endpoint answers 200 with truncated JSON.
    #[arg(long)]
    malformed_json: bool,
    /// Token endpoint answers 502 with a proxy's HTML error page.
    #[arg(long)]
    html_error_page: bool,
    /// Refresh-token grants fail with invalid_grant (AADSTS700082).
    #[arg(long)]
    refresh_invalid_grant: bool,
    /// Refresh-token grants fail with interaction_required (AADSTS50076) and a claims challenge.
    #[arg(long)]
    interaction_required: bool,
    /// ID tokens carry a wrong issuer.
    #[arg(long)]
    wrong_issuer: bool,
    /// ID tokens carry a wrong nonce.
    #[arg(long)]
    wrong_nonce: bool,
    /// Issued access and ID tokens are already expired.
    #[arg(long)]
    expired_tokens: bool,
    /// Access and ID token lifetime in seconds (default 3600).
    #[arg(long, value_name = "SECS")]
    token_lifetime: Option<u64>,
    /// Emit refresh_in (seconds) in token responses.
    #[arg(long, value_name = "SECS")]
    refresh_in: Option<u64>,
    /// Reject refresh tokens that were already used.
    #[arg(long)]
    strict_rotation: bool,
    /// Device-code polling interval in seconds (default 5).
    #[arg(long, value_name = "SECS")]
    device_code_interval: Option<u64>,
    /// Device-code lifetime in seconds (default 900).
    #[arg(long, value_name = "SECS")]
    device_code_expires_in: Option<u64>,
    /// Authorization responses carry a wrong iss, or none (RFC 9207).
    #[arg(long, value_enum, value_name = "WRONG|MISSING")]
    response_iss: Option<ResponseIss>,
    /// Token-endpoint faults affect only this many responses.
    #[arg(long, value_name = "N")]
    fail_count: Option<u32>,
    /// Family-of-client-ids members (repeatable; replaces the default Azure CLI and Azure
    /// PowerShell ids).
    #[arg(long = "family-client-id", value_name = "CLIENT_ID")]
    family_client_ids: Vec<String>,
}

#[tokio::main]
async fn main() {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    let a = Args::parse();
    let faults = Faults {
        latency_ms: a.latency_ms,
        http_status: a.http_status,
        retry_after_secs: a.retry_after_secs,
        malformed_json: a.malformed_json,
        html_error_page: a.html_error_page,
        refresh_invalid_grant: a.refresh_invalid_grant,
        interaction_required: a.interaction_required,
        wrong_issuer: a.wrong_issuer,
        wrong_nonce: a.wrong_nonce,
        expired_tokens: a.expired_tokens,
        token_lifetime_secs: a.token_lifetime,
        refresh_in_secs: a.refresh_in,
        strict_rotation: a.strict_rotation,
        device_code_interval_secs: a.device_code_interval,
        device_code_expires_secs: a.device_code_expires_in,
        fail_count: a.fail_count,
        response_iss: a.response_iss,
        // Test-only switches, set at run time through /_sandbox/faults.
        extra_claims: None,
        ipc_probe_page: false,
        hostile_navigation_page: false,
        unavailable: false,
    };
    let family_client_ids = if a.family_client_ids.is_empty() {
        DEFAULT_FAMILY_CLIENT_IDS
            .iter()
            .map(|s| s.to_string())
            .collect()
    } else {
        a.family_client_ids
    };
    let started = std::time::Instant::now();
    let handle = match start(SandboxConfig {
        port: a.port,
        faults,
        family_client_ids,
    })
    .await
    {
        Ok(h) => h,
        Err(e) => {
            eprintln!(
                "tessera-sandbox-idp: cannot start on 127.0.0.1:{}: {e}",
                a.port
            );
            std::process::exit(1);
        }
    };
    let base = handle.base_url();
    let mut out = std::io::stdout();
    let _ = writeln!(
        out,
        "sandbox-idp listening on {}",
        base.as_str().trim_end_matches('/')
    );
    let _ = out.flush();
    tracing::info!(
        startup_ms = started.elapsed().as_millis() as u64,
        "ready; authority {}common",
        base
    );
    wait_for_signal().await;
    tracing::info!("stopping");
    handle.shutdown().await;
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
