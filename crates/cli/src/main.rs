//! `tessera-cli`: sign in, list accounts, print and decode tokens, sign out. See
//! `tessera-cli --help` for the commands and the exit codes scripts can rely on.

mod agent;
mod cli;
mod endpoint;
mod formats;
mod git_credential;
mod kubeconfig;
mod loopback;
mod output;
mod run;
mod storage;
mod token;

use std::io::{IsTerminal, Read, Write};
use std::process::ExitCode;

use clap::Parser;
use tessera_core::agent::lookup;
use tessera_core::app::InteractiveParams;
use tessera_core::context::{ProfileAccount, Tessera};
use tessera_core::env::{Clock, SystemClock};
use tessera_core::error::Error;
use tessera_core::keystore::StoreOptions;
use tessera_core::loopback::Opener;
use tessera_core::profile::{Profile, SignInMethod};
use tokio_util::sync::CancellationToken;

use crate::cli::{Cli, Command, InlineTarget, ProfilesAction, StoreAction};
use crate::loopback::LoopbackAgent;

/// Largest token `decode` reads from stdin.
const MAX_DECODE_INPUT: u64 = 1024 * 1024;

/// Why the CLI stops, and with which exit code.
#[derive(Debug)]
enum Failure {
    /// Bad arguments or an ambiguous choice: exit 2.
    Usage(String),
    /// An engine error: its exit code (3 interaction, 4 provider, 5 store, 2 config).
    Core(Error),
    /// Anything else (cannot write output): exit 1.
    Other(String),
    /// Already rendered (by an agent, as this process would have): printed as it is.
    Rendered { text: String, exit: u8 },
}

impl From<Error> for Failure {
    fn from(e: Error) -> Self {
        Failure::Core(e)
    }
}

type CliResult<T = ()> = Result<T, Failure>;

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging();
    // One thread starts fastest; the agent serves many clients and records what it
    // handed out, so it gets two.
    let mut builder = match cli.command {
        Command::Agent => {
            let mut b = tokio::runtime::Builder::new_multi_thread();
            b.worker_threads(2);
            b
        }
        _ => tokio::runtime::Builder::new_current_thread(),
    };
    let runtime = match builder.enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start: {e}");
            return ExitCode::from(1);
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(f) => report(f),
    }
}

fn init_logging() {
    use tracing_subscriber::EnvFilter;
    let filter = match std::env::var("TESSERA_LOG") {
        Ok(spec) if !spec.trim().is_empty() => EnvFilter::try_new(&spec).unwrap_or_else(|e| {
            eprintln!("warning: TESSERA_LOG={spec:?} is not a valid filter ({e}); using warn");
            EnvFilter::new("warn")
        }),
        _ => EnvFilter::new("warn"),
    };
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .try_init();
}

fn report(f: Failure) -> ExitCode {
    let (text, code) = render(&f);
    eprint!("{text}");
    ExitCode::from(code)
}

/// What a failure prints on stderr, and the exit code: the same whether this process or
/// an agent met it (`tessera_core::agent::lookup` renders both).
fn render(f: &Failure) -> (String, u8) {
    match f {
        Failure::Usage(msg) => lookup::render_usage(msg),
        Failure::Other(msg) => (format!("error: {}\n", output::sanitize(msg)), 1),
        Failure::Rendered { text, exit } => (text.clone(), *exit),
        Failure::Core(e) => lookup::render_error(e),
    }
}

impl From<lookup::Refusal> for Failure {
    fn from(r: lookup::Refusal) -> Self {
        match r {
            lookup::Refusal::Usage(m) => Failure::Usage(m),
            lookup::Refusal::Core(e) => Failure::Core(e),
        }
    }
}

/// A refusal of the engine's lookup: its first line ("No signed-in account …") printed
/// now, as it always was.
fn refused(r: lookup::Refused) -> Failure {
    if let Some(p) = &r.preface {
        eprintln!("{p}");
    }
    r.refusal.into()
}

/// Write to stdout; a closed pipe (`| head`) is not an error worth a panic.
fn print_stdout(text: &str) -> CliResult {
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        Err(e) => Err(Failure::Other(format!("cannot write to stdout: {e}"))),
    }
}

fn print_json(value: &serde_json::Value) -> CliResult {
    let text = serde_json::to_string_pretty(value).map_err(|e| Failure::Other(e.to_string()))?;
    print_stdout(&format!("{text}\n"))
}

async fn run(cli: Cli) -> CliResult {
    if let Command::Decode { token, json } = &cli.command {
        // Needs no home, store or network.
        return decode(token.as_deref(), *json);
    }
    if let Command::Store {
        action: StoreAction::Reset { yes },
    } = &cli.command
    {
        // Works when the store cannot be opened (that is what it is for).
        return storage::reset(cli.home.as_deref(), *yes);
    }
    if let Command::Profiles { json, action } = &cli.command {
        // Reads (and writes) profiles.toml only: works without a store or a keyring.
        let paths = tessera_core::paths::Paths::resolve(cli.home.as_deref())?;
        let mut profiles = tessera_core::profile::Profiles::load(&paths.profiles_file())?;
        if let Some(ProfilesAction::Add { name, scopes }) = action {
            let Some(mut p) = inline_profile(&cli.profile, &cli.inline)? else {
                return Err(Failure::Usage(
                    "profiles add needs --authority URL (or --issuer URL) and --client-id".into(),
                ));
            };
            if profiles.get(name).is_some() {
                return Err(Failure::Usage(format!(
                    "a profile named {name:?} exists already; choose another name"
                )));
            }
            p.name = name.trim().to_string();
            p.scopes = scopes
                .iter()
                .flat_map(|s| s.split_whitespace())
                .map(|s| tessera_core::scopes::expand_alias(s).to_string())
                .collect();
            p.sign_in = SignInMethod::default();
            p.validate().map_err(|e| Failure::Usage(e.to_string()))?;
            profiles
                .upsert(p.clone())
                .map_err(|e| Failure::Usage(e.to_string()))?;
            paths.ensure()?;
            profiles.save(&paths.profiles_file())?;
            eprintln!(
                "Saved profile {} ({}, client {}).",
                p.name,
                p.target(),
                p.client_id
            );
            return Ok(());
        }
        let list = profiles.list();
        return if *json {
            print_json(&output::profiles_json(list))
        } else {
            print_stdout(&output::profiles_table(list))
        };
    }
    let invocation = token::Invocation::of(&cli);
    if let Command::Kubeconfig(args) = &cli.command {
        // Writes a file that runs tessera-cli; needs no store.
        return kubeconfig::run(args, &invocation);
    }
    let git_request = git_credential::read_request(&cli.command)?;
    let inline = inline_profile(&cli.profile, &cli.inline)?;
    // Commands that read or write tokens ask the agent first (no keyring round trip);
    // without one, on they go. The agent serves Tessera's own store only.
    let agent_may_serve = !cli.no_agent
        && tessera_core::agent::allowed_by_env()
        && inline.is_none()
        && cli.msal_cache.is_none()
        && !cli.allow_plaintext;
    let token_args = token::TokenArgs::of(&cli.command);
    if agent_may_serve {
        let served = match (&token_args, &cli.command, &git_request) {
            (Some(args), _, _) => token::run_through_agent(args, &invocation).await,
            (None, Command::GitCredential(args), Some(request)) => {
                git_credential::run_through_agent(args, request, &invocation).await
            }
            _ => agent::serve_command(&cli).await,
        };
        if let Some(done) = served {
            return done;
        }
    }
    let ctx = match &cli.msal_cache {
        Some(file) => {
            let paths = tessera_core::paths::Paths::resolve(cli.home.as_deref())?;
            let profiles = tessera_core::profile::Profiles::load(&paths.profiles_file())?;
            let store = tessera_core::cache::msal_file::MsalFileStore::open(file)
                .map_err(tessera_core::Error::from)?;
            let http = tessera_core::http::ReqwestClient::new(&Default::default());
            Tessera::with_parts(
                paths,
                profiles,
                std::sync::Arc::new(store),
                std::sync::Arc::new(http),
            )
        }
        None => Tessera::open_with(
            cli.home.as_deref(),
            &StoreOptions {
                allow_plaintext: cli.allow_plaintext,
                keystore: None,
            },
        )?,
    };
    let target: Option<Profile> = match (&inline, &cli.profile) {
        (Some(p), _) => Some(p.clone()),
        (None, Some(name)) => Some(
            ctx.profile(name)
                .map_err(|e| Failure::Usage(e.to_string()))?
                .clone(),
        ),
        (None, None) => None,
    };
    match cli.command {
        Command::Accounts { json } => {
            let (accounts, unlisted) = lookup::accounts(&ctx, target.as_ref())
                .await
                .map_err(refused)?;
            print_accounts(&accounts, &unlisted, json, cli.home.as_deref())
        }
        Command::Login {
            device_code,
            browser,
            scopes,
            login_hint,
            json,
        } => {
            let Some(profile) = target else {
                return Err(Failure::Usage(
                    "login needs a target: --profile NAME (see `tessera-cli profiles`), or --authority URL / \
                     --issuer URL with --client-id"
                        .into(),
                ));
            };
            login(
                &ctx,
                &profile,
                device_code,
                browser,
                &scopes,
                login_hint,
                json,
            )
            .await
        }
        Command::Token { .. } => {
            let args = token_args.expect("a token command's flags");
            token::run(&ctx, target, args, &invocation).await
        }
        Command::GitCredential(args) => {
            let request = git_request.expect("read for git-credential");
            git_credential::run(&ctx, target, args, request).await
        }
        Command::Logout { account, all } => {
            logout(&ctx, target.as_ref(), account.as_deref(), all).await
        }
        Command::Status { json } => storage::status(&ctx, json).await,
        Command::Agent => {
            let home = ctx.paths().data_dir.clone();
            agent::serve(ctx, home).await
        }
        Command::Run(args) => {
            let agent_home = agent_may_serve
                .then(|| agent::home_of(cli.home.as_deref()))
                .flatten();
            run::run(&ctx, target.as_ref(), args, agent_home).await
        }
        Command::ImportMsal { file } => {
            let report = tessera_core::cache::transfer::import_msal(&file, ctx.store().as_ref())?;
            eprintln!("Imported from {}: {report}", file.display());
            // Say which of them no profile lists, and how to list them.
            for u in with_profiles(&ctx, ctx.unlisted_accounts().await?)? {
                let (g, suggested) = (u.group, u.suggested);
                eprint!(
                    "{}",
                    output::unlisted_text(&g, suggested.as_ref(), cli.home.as_deref())
                );
            }
            Ok(())
        }
        Command::ExportMsal { file } => {
            let clients: Vec<&str> = ctx
                .profiles()
                .list()
                .iter()
                .map(|p| p.client_id.as_str())
                .collect();
            let report =
                tessera_core::cache::transfer::export_msal(ctx.store().as_ref(), &file, &clients)?;
            eprintln!("Exported to {}: {report}", file.display());
            Ok(())
        }
        Command::Decode { .. }
        | Command::Store { .. }
        | Command::Profiles { .. }
        | Command::Kubeconfig(_) => {
            unreachable!("handled above")
        }
    }
}

/// Each group of accounts no profile lists, with the profile that would list them.
fn with_profiles(
    ctx: &Tessera,
    groups: Vec<tessera_core::context::UnlistedGroup>,
) -> CliResult<Vec<tessera_core::agent::Unlisted>> {
    groups
        .into_iter()
        .map(|group| {
            let suggested = ctx.suggested_profile(&group)?;
            Ok(tessera_core::agent::Unlisted { group, suggested })
        })
        .collect()
}

/// `accounts`' output: the listed accounts as a table (or JSON), then each group of the
/// store's accounts no profile lists, with the command that adds a profile for them.
fn print_accounts(
    accounts: &[ProfileAccount],
    unlisted: &[tessera_core::agent::Unlisted],
    json: bool,
    home: Option<&std::path::Path>,
) -> CliResult {
    if json {
        return print_json(&output::accounts_json(accounts, unlisted));
    }
    if accounts.is_empty() && unlisted.is_empty() {
        eprintln!("No accounts. Sign in with: tessera-cli --profile <NAME> login");
        return Ok(());
    }
    let mut text = String::new();
    if !accounts.is_empty() {
        text.push_str(&output::accounts_table(accounts));
    }
    for u in unlisted {
        if !text.is_empty() {
            text.push('\n');
        }
        text.push_str(&output::unlisted_text(&u.group, u.suggested.as_ref(), home));
    }
    print_stdout(&text)
}

/// The transient "inline" profile from `--authority`/`--issuer` and friends.
fn inline_profile(profile: &Option<String>, t: &InlineTarget) -> CliResult<Option<Profile>> {
    if !t.is_given() {
        return Ok(None);
    }
    if profile.is_some() {
        return Err(Failure::Usage(
            "--profile cannot be combined with --authority, --issuer, --client-id, --redirect-uri or \
             --no-instance-discovery"
                .into(),
        ));
    }
    if t.authority.is_some() && t.issuer.is_some() {
        return Err(Failure::Usage(
            "give either --authority (Entra-style) or --issuer (generic OpenID Connect)".into(),
        ));
    }
    if t.authority.is_none() && t.issuer.is_none() {
        return Err(Failure::Usage(
            "--client-id and --redirect-uri need --authority URL or --issuer URL".into(),
        ));
    }
    let Some(client_id) = t.client_id.clone() else {
        return Err(Failure::Usage("an inline target needs --client-id".into()));
    };
    let p = Profile {
        name: "inline".into(),
        authority: t.authority.clone(),
        issuer: t.issuer.clone(),
        client_id,
        redirect_uri: t
            .redirect_uri
            .clone()
            .unwrap_or_else(|| "http://localhost".into()),
        scopes: Vec::new(),
        sign_in: SignInMethod::Browser,
        instance_discovery: !t.no_instance_discovery,
        subscription: None,
        builtin: false,
    };
    p.validate().map_err(|e| Failure::Usage(e.to_string()))?;
    Ok(Some(p))
}

/// The account a command acts on: `--account` (user name or home_account_id) within the
/// target profile or across all profiles; without `--account`, the only account.
async fn choose_account(
    ctx: &Tessera,
    target: Option<&Profile>,
    wanted: Option<&str>,
) -> CliResult<ProfileAccount> {
    lookup::choose_account(ctx, target, wanted)
        .await
        .map_err(refused)
}

async fn login(
    ctx: &Tessera,
    profile: &Profile,
    device_code: bool,
    browser: bool,
    scopes: &[String],
    login_hint: Option<String>,
    json: bool,
) -> CliResult {
    let typed = scopes.join(" ");
    let scopes =
        tessera_core::scopes::resolve_for_sign_in(&profile.name, &profile.scopes, Some(&typed))
            .map_err(|e| Failure::Usage(format!("{e} (--scope SCOPE)")))?;
    let app = ctx.app(profile)?;
    let use_device_code = device_code || (!browser && profile.sign_in == SignInMethod::DeviceCode);
    let result = if use_device_code {
        if login_hint.is_some() {
            eprintln!("note: --login-hint is not used by the device code flow");
        }
        let flow = app.initiate_device_flow(&scopes).await?;
        eprintln!("{}", output::sanitize(&flow.message));
        eprintln!("Waiting for the sign-in to complete (Ctrl-C to cancel)...");
        let cancel = CancellationToken::new();
        let on_ctrl_c = cancel.clone();
        let watcher = tokio::spawn(async move {
            if tokio::signal::ctrl_c().await.is_ok() {
                on_ctrl_c.cancel();
            }
        });
        let r = app.acquire_token_by_device_flow(flow, cancel).await;
        watcher.abort();
        r?
    } else {
        let agent = LoopbackAgent::bind(&profile.redirect_url()?, Opener::from_env()).await?;
        let params = InteractiveParams {
            scopes,
            redirect_uri: Some(agent.redirect_uri().clone()),
            login_hint,
            ..InteractiveParams::default()
        };
        tokio::select! {
            r = app.acquire_token_interactive(params, &agent) => r?,
            _ = tokio::signal::ctrl_c() => return Err(Error::Cancelled.into()),
        }
    };
    eprintln!(
        "Signed in as {} ({})",
        output::sanitize(&result.account.username),
        profile.name
    );
    if json {
        print_json(&output::login_json(&profile.name, &result))?;
    }
    Ok(())
}

async fn logout(
    ctx: &Tessera,
    target: Option<&Profile>,
    account: Option<&str>,
    all: bool,
) -> CliResult {
    let done = lookup::sign_out(ctx, target, account, all)
        .await
        .map_err(refused)?;
    print_signed_out(&done);
    Ok(())
}

/// What `logout` says, on stderr.
fn print_signed_out(done: &[tessera_core::agent::SignedOut]) {
    if done.is_empty() {
        eprintln!("No accounts to sign out.");
    }
    for d in done {
        eprintln!(
            "Signed out {} ({}): removed {} cache entries.",
            output::sanitize(&d.username),
            d.profile,
            d.removed
        );
        if let Some(url) = &d.end_session_url {
            eprintln!("To end the browser session at the provider too, visit:\n  {url}");
        }
    }
}

fn decode(token: Option<&str>, json: bool) -> CliResult {
    let input = match token {
        Some(t) if t != "-" => t.to_string(),
        _ => {
            let stdin = std::io::stdin();
            if stdin.is_terminal() {
                eprintln!("Paste a token, then press Ctrl-D:");
            }
            let mut buf = String::new();
            stdin
                .lock()
                .take(MAX_DECODE_INPUT)
                .read_to_string(&mut buf)
                .map_err(|e| Failure::Usage(format!("cannot read the token from stdin: {e}")))?;
            buf
        }
    };
    if input.trim().is_empty() {
        return Err(Failure::Usage(
            "no token given: pass it as an argument or on stdin".into(),
        ));
    }
    let decoded = tessera_core::decode::decode(&input, SystemClock.now());
    if json {
        let value = serde_json::to_value(&decoded).map_err(|e| Failure::Other(e.to_string()))?;
        print_json(&value)
    } else {
        print_stdout(&output::decoded_text(&decoded))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inline(args: &[&str]) -> CliResult<Option<Profile>> {
        let cli = Cli::try_parse_from(
            std::iter::once("tessera-cli")
                .chain(args.iter().copied())
                .chain(["accounts"]),
        )
        .unwrap();
        inline_profile(&cli.profile, &cli.inline)
    }

    #[test]
    fn inline_targets_build_a_transient_profile() {
        let p = inline(&[
            "--issuer",
            "http://127.0.0.1:3000",
            "--client-id",
            "tessera-jwt",
        ])
        .unwrap()
        .unwrap();
        assert_eq!(p.name, "inline");
        assert_eq!(p.kind(), "oidc");
        assert_eq!(p.redirect_uri, "http://localhost");
        let p = inline(&[
            "--authority",
            "http://127.0.0.1:9/common",
            "--client-id",
            "c",
            "--no-instance-discovery",
        ])
        .unwrap()
        .unwrap();
        assert!(!p.authority_object().unwrap().instance_discovery());
        assert!(inline(&[]).unwrap().is_none());
        assert!(inline(&["--profile", "Sandbox"]).unwrap().is_none());
    }

    #[test]
    fn inline_target_mistakes_are_usage_errors() {
        let msg = |args: &[&str]| match inline(args) {
            Err(Failure::Usage(m)) => m,
            other => panic!("{args:?} gave {other:?}"),
        };
        assert!(msg(&["--issuer", "https://a.example"]).contains("--client-id"));
        assert!(msg(&["--client-id", "c"]).contains("--authority URL or --issuer URL"));
        assert!(msg(&[
            "--profile",
            "x",
            "--issuer",
            "https://a.example",
            "--client-id",
            "c"
        ])
        .contains("cannot be combined"));
        assert!(msg(&[
            "--authority",
            "https://a.example/t",
            "--issuer",
            "https://a.example",
            "--client-id",
            "c"
        ])
        .contains("either"));
        assert!(msg(&[
            "--authority",
            "http://evil.example/common",
            "--client-id",
            "c"
        ])
        .contains("https"));
        assert!(msg(&[
            "--issuer",
            "https://a.example",
            "--client-id",
            "c",
            "--redirect-uri",
            "nope"
        ])
        .contains("redirect_uri"));
    }
}
