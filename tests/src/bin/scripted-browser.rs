//! A stand-in browser for CLI tests of `tessera-cli login --browser`
//! (the CLI runs `$TESSERA_BROWSER <url>`).
//!
//! ```text
//! scripted-browser --provider sandbox|oidc --login USER [--password PW] [--stray] URL
//! ```
//!
//! Signs in through the real provider pages, then GETs the final redirect URL
//! (where the CLI's loopback listener is waiting) and prints the listener's
//! answer status to stderr. With `--stray`, it first sends the listener requests
//! that are not the authorization response (a favicon, a forged state, no state),
//! each of which must get a non-2xx answer, and keeps a silent connection open.
//! Exits 0 when the listener answered 2xx, 1 when the sign-in or the listener
//! failed, 2 on bad usage.

use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, ValueEnum};
use url::Url;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Provider {
    /// tessera-sandbox-idp (Entra-like)
    Sandbox,
    /// oidc-provider from tests/oidc-provider
    Oidc,
}

#[derive(Debug, Parser)]
#[command(
    name = "scripted-browser",
    about = "Signs in through a test provider's pages and delivers the redirect to the app"
)]
struct Args {
    /// Which provider's pages to expect.
    #[arg(long, value_enum)]
    provider: Provider,
    /// Login (user name) to sign in with.
    #[arg(long)]
    login: String,
    /// Password (the sandbox checks it and defaults to its demo password;
    /// oidc-provider accepts any).
    #[arg(long)]
    password: Option<String>,
    /// Send stray requests to the listener before the redirect.
    #[arg(long)]
    stray: bool,
    /// The authorization URL the app opened.
    url: String,
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let args = match Args::try_parse() {
        Ok(args) => args,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() {
                ExitCode::from(2)
            } else {
                ExitCode::SUCCESS
            };
        }
    };
    match run(args).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("scripted-browser: {e}");
            ExitCode::from(1)
        }
    }
}

async fn run(args: Args) -> Result<(), String> {
    let url = Url::parse(&args.url).map_err(|e| format!("not a URL ({e}): {}", args.url))?;
    let redirect = match args.provider {
        Provider::Oidc => tessera_tests::oidc_provider::scripted_sign_in(&url, &args.login).await?,
        Provider::Sandbox => {
            let password = args
                .password
                .as_deref()
                .unwrap_or(tessera_sandbox_idp::DEMO_PASSWORD);
            tessera_sandbox_idp::scripted_sign_in(&url, &args.login, password).await?
        }
    };
    let mut shown = redirect.clone();
    shown.set_query(None);
    eprintln!(
        "scripted-browser: signed in as {}, delivering redirect to {shown}",
        args.login
    );

    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::limited(5))
        .timeout(Duration::from_secs(20))
        .build()
        .map_err(|e| format!("cannot build HTTP client: {e}"))?;
    // Held open until the redirect is answered: it must not hold the listener up.
    let mut _silent = None;
    if args.stray {
        let addr = redirect
            .socket_addrs(|| None)
            .map_err(|e| format!("no listener address in {shown}: {e}"))?;
        _silent = Some(
            tokio::net::TcpStream::connect(&addr[..])
                .await
                .map_err(|e| format!("cannot connect to the listener: {e}"))?,
        );
        let mut favicon = redirect.clone();
        favicon.set_path("/favicon.ico");
        favicon.set_query(None);
        let mut forged = redirect.clone();
        forged.set_query(Some("code=forged-code&state=forged-state"));
        let mut stateless = redirect.clone();
        let kept: Vec<(String, String)> = redirect
            .query_pairs()
            .filter(|(k, _)| k != "state")
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect();
        stateless.query_pairs_mut().clear().extend_pairs(kept);
        for (what, url) in [
            ("a favicon", favicon),
            ("a forged state", forged),
            ("no state", stateless),
        ] {
            let status = http
                .get(url)
                .send()
                .await
                .map_err(|e| format!("the listener did not answer {what}: {e}"))?
                .status();
            eprintln!("scripted-browser: stray request ({what}): listener answered {status}");
            if status.is_success() {
                return Err(format!("the listener accepted {what}"));
            }
        }
    }
    let response = http
        .get(redirect)
        .send()
        .await
        .map_err(|e| format!("the app's redirect listener at {shown} did not answer: {e}"))?;
    let status = response.status();
    eprintln!("scripted-browser: listener answered {status}");
    if status.is_success() {
        Ok(())
    } else {
        Err(format!("the app's listener answered {status}"))
    }
}
