//! `token`: an access token from the cache or refreshed silently, printed bare or in one
//! of [`crate::formats`]' shapes; and what `kubeconfig` and `git-credential` share with it
//! (finding the account, the token for a tenant, running `tessera-cli` again).

use std::path::PathBuf;

use tessera_core::agent::lookup;
use tessera_core::app::{AuthResult, SilentOptions};
use tessera_core::context::{ProfileAccount, Tessera};
use tessera_core::error::Error;
use tessera_core::profile::Profile;
use tessera_core::scopes::resource_scope;

use crate::cli::{Cli, InlineTarget};
use crate::formats::{self, ExecInfo, OutputFormat, TokenOutput};
use crate::{output, print_json, print_stdout, CliResult, Failure};

/// The global flags of this run, to write a `tessera-cli` command line that uses the
/// same home, profile and store (a kubeconfig's exec plugin, a "run this" hint).
#[derive(Debug, Clone)]
pub struct Invocation {
    pub home: Option<PathBuf>,
    pub profile: Option<String>,
    pub inline: InlineTarget,
    allow_plaintext: bool,
    msal_cache: Option<PathBuf>,
}

impl Invocation {
    pub fn of(cli: &Cli) -> Invocation {
        let home = cli.home.clone().or_else(|| {
            std::env::var_os(tessera_core::paths::HOME_ENV)
                .filter(|h| !h.is_empty())
                .map(PathBuf::from)
        });
        Invocation {
            home: home.map(|h| std::path::absolute(&h).unwrap_or(h)),
            profile: cli.profile.clone(),
            inline: cli.inline.clone(),
            allow_plaintext: cli.allow_plaintext,
            msal_cache: cli
                .msal_cache
                .clone()
                .map(|f| std::path::absolute(&f).unwrap_or(f)),
        }
    }

    /// The global flags, with `profile` instead of this run's `--profile` when given.
    pub fn global_args(&self, profile: Option<&str>) -> Vec<String> {
        let mut args = Vec::new();
        let mut flag = |name: &str, value: Option<String>| {
            if let Some(v) = value {
                args.push(name.to_string());
                args.push(v);
            }
        };
        flag(
            "--home",
            self.home.as_ref().map(|h| h.display().to_string()),
        );
        flag(
            "--msal-cache",
            self.msal_cache.as_ref().map(|f| f.display().to_string()),
        );
        let t = &self.inline;
        if t.is_given() {
            flag("--authority", t.authority.clone());
            flag("--issuer", t.issuer.clone());
            flag("--client-id", t.client_id.clone());
            flag("--redirect-uri", t.redirect_uri.clone());
        } else {
            flag(
                "--profile",
                profile.or(self.profile.as_deref()).map(str::to_string),
            );
        }
        if t.no_instance_discovery {
            args.push("--no-instance-discovery".into());
        }
        if self.allow_plaintext {
            args.push("--allow-plaintext".into());
        }
        args
    }

    pub fn inline_given(&self) -> bool {
        self.inline.is_given()
    }

    /// `tessera-cli <global flags> <rest>`, quoted for a POSIX shell.
    pub fn command_line(&self, profile: Option<&str>, rest: &[String]) -> String {
        std::iter::once("tessera-cli".to_string())
            .chain(self.global_args(profile))
            .chain(rest.iter().cloned())
            .map(|a| formats::shell_quote(&a))
            .collect::<Vec<_>>()
            .join(" ")
    }
}

/// The `token` command's flags.
#[derive(Debug)]
pub struct TokenArgs {
    pub account: Option<String>,
    pub scopes: Vec<String>,
    pub min_validity: u32,
    pub force_refresh: bool,
    pub json: bool,
    pub out: TokenOutput,
}

impl TokenArgs {
    /// The flags of a `token` command line (`None` for another command).
    pub fn of(command: &crate::cli::Command) -> Option<TokenArgs> {
        match command {
            crate::cli::Command::Token {
                account,
                scopes,
                min_validity,
                force_refresh,
                json,
                out,
            } => Some(TokenArgs {
                account: account.clone(),
                scopes: scopes.clone(),
                min_validity: *min_validity,
                force_refresh: *force_refresh,
                json: *json,
                out: out.clone(),
            }),
            _ => None,
        }
    }
}

/// The account `--account` names (or the only one) and the profile to use for it.
pub async fn resolve(
    ctx: &Tessera,
    target: Option<&Profile>,
    account: Option<&str>,
) -> CliResult<(Profile, ProfileAccount)> {
    lookup::resolve(ctx, target, account)
        .await
        .map_err(crate::refused)
}

pub async fn run(
    ctx: &Tessera,
    target: Option<Profile>,
    args: TokenArgs,
    inv: &Invocation,
) -> CliResult {
    let format = if args.json {
        Some(OutputFormat::Json)
    } else {
        args.out.output
    };
    let exec = match format {
        Some(OutputFormat::ExecCredential) => Some(ExecInfo::from_env().map_err(Failure::Usage)?),
        _ => None,
    };
    let scope_flags = match &args.out.resource {
        Some(r) => vec![resource_scope(r)],
        None => args.scopes.clone(),
    };
    let options = SilentOptions {
        min_validity_secs: i64::from(args.min_validity),
        force_refresh: args.force_refresh,
        ..SilentOptions::default()
    };
    let tenant = args.out.tenant.as_deref();
    // On failure: the error, and the profile when the account was found.
    let attempt = match resolve(ctx, target.as_ref(), args.account.as_deref()).await {
        Err(f) => Err((f, target.clone())),
        Ok((profile, pa)) => match lookup::for_tenant(&profile, tenant) {
            Err(r) => Err((r.into(), Some(profile))),
            Ok(profile) => match lookup::silent(ctx, &profile, &pa, &scope_flags, &options).await {
                Ok(r) => Ok((profile, r)),
                Err(r) => Err((r.into(), Some(profile))),
            },
        },
    };
    let (profile, result) = match (attempt, &exec) {
        (Ok(done), _) => done,
        (Err((Failure::Core(e @ Error::InteractionRequired { .. }), profile)), Some(info)) => {
            match profile {
                Some(p) if info.interactive => {
                    sign_in_for_kubectl(ctx, &p, &args, &scope_flags, &options).await?
                }
                p => {
                    explain_sign_in(
                        inv,
                        p.as_ref().map(|p| p.name.as_str()),
                        &args,
                        &scope_flags,
                        &e.to_string(),
                    );
                    return Err(e.into());
                }
            }
        }
        (Err((f, _)), _) => return Err(f),
    };
    print_result(format, exec, &result, profile.subscription.as_deref())
}

/// The token in the output format asked for.
fn print_result(
    format: Option<OutputFormat>,
    exec: Option<ExecInfo>,
    result: &AuthResult,
    subscription: Option<&str>,
) -> CliResult {
    match format {
        None => print_stdout(&format!("{}\n", result.access_token.secret())),
        Some(OutputFormat::Json) => print_json(&output::token_json(result)),
        Some(OutputFormat::Az) => print_json(&formats::az_json(
            result,
            &formats::tenant_of(result),
            subscription,
        )),
        Some(OutputFormat::ExecCredential) => {
            let info = exec.expect("read above");
            print_json(&formats::exec_credential_json(&info.api_version, result))
        }
        Some(OutputFormat::Env) => print_stdout(&formats::env_lines(result)),
    }
}

/// `token` through the agent, when one answers: the same output, stderr and exit code
/// as [`run`]. `None`: no agent served it (or a sign-in in this terminal is wanted), so
/// the caller opens the store and runs [`run`].
pub async fn run_through_agent(args: &TokenArgs, inv: &Invocation) -> Option<CliResult> {
    let format = if args.json {
        Some(OutputFormat::Json)
    } else {
        args.out.output
    };
    let exec = match format {
        Some(OutputFormat::ExecCredential) => match ExecInfo::from_env() {
            Ok(info) => Some(info),
            Err(e) => return Some(Err(Failure::Usage(e))),
        },
        _ => None,
    };
    let home = crate::agent::home_of(inv.home.as_deref())?;
    let scopes = match &args.out.resource {
        Some(r) => vec![resource_scope(r)],
        None => args.scopes.clone(),
    };
    let request = tessera_core::agent::TokenRequest {
        home,
        profile: inv.profile.clone(),
        account: args.account.clone(),
        scopes: scopes.clone(),
        min_validity_secs: i64::from(args.min_validity),
        force_refresh: args.force_refresh,
        tenant: args.out.tenant.clone(),
        program: None,
    };
    match crate::agent::ask_token(request).await? {
        crate::agent::Answer::Token(result, subscription) => {
            Some(print_result(format, exec, &result, subscription.as_deref()))
        }
        crate::agent::Answer::Refused(e) => {
            let interaction = e.kind == tessera_core::agent::ErrorKind::InteractionRequired;
            match &exec {
                // kubectl with a terminal: sign in here, as without an agent.
                Some(info) if interaction && info.interactive => None,
                Some(_) if interaction => {
                    explain_sign_in(inv, e.profile.as_deref(), args, &scopes, &e.message);
                    Some(Err(Failure::Rendered {
                        text: e.message,
                        exit: e.exit,
                    }))
                }
                _ => Some(Err(Failure::Rendered {
                    text: e.message,
                    exit: e.exit,
                })),
            }
        }
    }
}

/// kubectl runs the plugin with a terminal: sign in (as `login` would, with the
/// account as the login hint), then take the token silently.
async fn sign_in_for_kubectl(
    ctx: &Tessera,
    profile: &Profile,
    args: &TokenArgs,
    scope_flags: &[String],
    options: &SilentOptions,
) -> CliResult<(Profile, AuthResult)> {
    eprintln!(
        "tessera-cli: kubectl needs a token of {}; signing in ({})",
        output::sanitize(args.account.as_deref().unwrap_or("an account")),
        output::sanitize(&profile.name)
    );
    crate::login(
        ctx,
        profile,
        false,
        false,
        scope_flags,
        args.account.clone(),
        false,
    )
    .await?;
    let (_, pa) = resolve(ctx, Some(profile), args.account.as_deref()).await?;
    let r = lookup::silent(ctx, profile, &pa, scope_flags, options).await?;
    Ok((profile.clone(), r))
}

/// kubectl cannot let the plugin interact (no terminal): say whose sign-in is needed and
/// the command that does it.
fn explain_sign_in(
    inv: &Invocation,
    profile: Option<&str>,
    args: &TokenArgs,
    scope_flags: &[String],
    why: &str,
) {
    let who = args.account.as_deref().unwrap_or("an account");
    let mut rest = vec!["login".to_string()];
    if let Some(a) = &args.account {
        rest.extend(["--login-hint".into(), a.clone()]);
    }
    for s in scope_flags {
        rest.extend(["--scope".into(), s.clone()]);
    }
    let known = profile;
    let mut command = inv.command_line(known, &rest);
    if known.is_none() && inv.profile.is_none() && !inv.inline_given() {
        command = command.replacen("tessera-cli", "tessera-cli --profile <NAME>", 1);
    }
    // (An agent's message is rendered: its first line, without "error: ".)
    let why = why
        .lines()
        .next()
        .unwrap_or_default()
        .trim_start_matches("error: ");
    eprintln!(
        "tessera-cli: {} must sign in before kubectl can get a token ({}).\nRun: {}",
        output::sanitize(who),
        output::sanitize(why),
        output::sanitize(&command)
    );
}

#[cfg(test)]
mod tests {
    use clap::error::ErrorKind;
    use clap::Parser;

    use super::*;
    use crate::cli::Command;
    use crate::git_credential::GitOperation;

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("tessera-cli").chain(args.iter().copied()))
    }

    #[test]
    fn the_new_commands_and_flags_parse() {
        let cli = parse(&["token", "-o", "exec-credential", "--tenant", "t"]).unwrap();
        let Command::Token { out, json, .. } = cli.command else {
            panic!("not token")
        };
        assert_eq!(out.output, Some(OutputFormat::ExecCredential));
        assert_eq!(out.tenant.as_deref(), Some("t"));
        assert!(!json);
        let cli = parse(&["git-credential", "--account", "a", "erase"]).unwrap();
        let Command::GitCredential(g) = cli.command else {
            panic!("not git-credential")
        };
        assert_eq!(g.operation, GitOperation::Erase);
        let cli = parse(&["kubeconfig", "--account", "a", "--scope", "aks"]).unwrap();
        assert!(matches!(cli.command, Command::Kubeconfig(k) if k.scopes == ["aks"]));

        let kind = |args: &[&str]| parse(args).unwrap_err().kind();
        assert_eq!(
            kind(&["token", "--output", "yaml"]),
            ErrorKind::InvalidValue
        );
        assert_eq!(
            kind(&["token", "--json", "--output", "az"]),
            ErrorKind::ArgumentConflict
        );
        assert_eq!(
            kind(&["token", "--resource", "r", "--scope", "s"]),
            ErrorKind::ArgumentConflict
        );
        assert_eq!(
            kind(&["kubeconfig", "--account", "a"]),
            ErrorKind::MissingRequiredArgument
        );
        assert_eq!(
            kind(&["git-credential", "approve"]),
            ErrorKind::InvalidValue
        );
        assert_eq!(
            kind(&["git-credential"]),
            ErrorKind::MissingRequiredArgument
        );
    }

    #[test]
    fn another_run_gets_the_same_home_target_and_store() {
        let cli = parse(&[
            "--home",
            "/h",
            "--profile",
            "Lab",
            "--allow-plaintext",
            "--msal-cache",
            "/c/cache.json",
            "accounts",
        ])
        .unwrap();
        let inv = Invocation::of(&cli);
        assert_eq!(
            inv.global_args(None),
            [
                "--home",
                "/h",
                "--msal-cache",
                "/c/cache.json",
                "--profile",
                "Lab",
                "--allow-plaintext"
            ]
        );
        assert_eq!(
            inv.command_line(Some("Other Lab"), &["login".into()]),
            "tessera-cli --home /h --msal-cache /c/cache.json --profile 'Other Lab' --allow-plaintext login"
        );
        let inline = Invocation::of(
            &parse(&[
                "--home",
                "/h",
                "--issuer",
                "https://idp.example",
                "--client-id",
                "c",
                "accounts",
            ])
            .unwrap(),
        );
        assert_eq!(
            inline.global_args(Some("ignored")),
            [
                "--home",
                "/h",
                "--issuer",
                "https://idp.example",
                "--client-id",
                "c"
            ]
        );
    }
}
