//! `tessera-cli run -- CMD`: runs CMD with the token endpoint of [`crate::endpoint`] in its
//! environment, so that the Azure SDKs' managed identity credential (and azd) get the
//! chosen account's tokens. The endpoint lives exactly as long as CMD; `run` exits as CMD
//! did; SIGINT and SIGTERM are passed on to CMD.

use std::ffi::OsString;
use std::process::ExitStatus;

use clap::Args;
use tessera_core::context::Tessera;
use tessera_core::profile::Profile;

use crate::endpoint::{self, ScopeMap, Tokens};
use crate::{CliResult, Failure};

pub const RUN_HELP: &str = "\
How it works:
  While CMD runs, `run` listens on 127.0.0.1 (a random port) and gives CMD, in its
  environment only:
    IDENTITY_ENDPOINT, IDENTITY_HEADER  an App Service managed identity endpoint: the Azure
        SDKs' ManagedIdentityCredential and DefaultAzureCredential use it as they are;
    AZD_AUTH_ENDPOINT, AZD_AUTH_KEY     the Azure Developer CLI's external authentication.
  Each variable pair carries a fresh random key; a request without it is refused (401).
  Tokens are those `tessera-cli token` gives for the same account and scopes: from the
  cache while valid, else refreshed silently. Nothing is served outside `run`; the
  endpoint stops when CMD exits, and `run` exits with CMD's status. SIGINT and SIGTERM
  are passed on to CMD. IDENTITY_SERVER_THUMBPRINT and AZD_AUTH_CERT are removed from
  CMD's environment (they would select other protocols).

Resources and scopes:
  A managed identity request names a resource R; `run` asks for the scope R/.default.
  --scope-map RESOURCE=SCOPE (repeatable) asks for SCOPE instead; several scopes are
  separated by spaces. RESOURCE is matched ignoring case and trailing slashes and cannot
  contain '='. azd requests name their scopes themselves; a tenantId other than the
  account's is refused. A user-assigned identity asked for (client_id, object_id,
  mi_res_id) is ignored: the token is always the chosen account's.

Examples:
  tessera-cli run --account alice@contoso.example -- python app.py
  tessera-cli run --scope-map 'https://graph.microsoft.com=User.Read' -- node app.js

Exit status: CMD's, or 128+N if CMD was killed by signal N (for SIGINT, SIGTERM and
SIGHUP `run` ends by the same signal). Before CMD starts: 2 usage, 3 no such account,
5 store; 126 CMD cannot be run, 127 CMD not found.";

#[derive(Debug, Clone, Args)]
#[command(after_long_help = RUN_HELP)]
pub struct RunArgs {
    /// The account whose tokens CMD gets: user name or home_account_id (default: the
    /// only account).
    #[arg(long, value_name = "ACCOUNT")]
    pub account: Option<String>,

    /// Ask for SCOPE (space-separated scopes) when a managed identity request names
    /// RESOURCE, instead of RESOURCE/.default (repeatable).
    #[arg(long = "scope-map", value_name = "RESOURCE=SCOPE", value_parser = ScopeMap::parse_entry)]
    pub scope_map: Vec<(String, tessera_core::scopes::ScopeSet)>,

    /// The command to run, and its arguments (after `--`).
    #[arg(
        value_name = "CMD",
        required = true,
        num_args = 1..,
        trailing_var_arg = true,
        allow_hyphen_values = true
    )]
    pub command: Vec<OsString>,
}

/// Serves tokens while CMD runs, then exits the process as CMD did (never returns `Ok`).
pub async fn run(
    ctx: &Tessera,
    target: Option<&Profile>,
    args: RunArgs,
    agent_home: Option<std::path::PathBuf>,
) -> CliResult {
    let pa = crate::choose_account(ctx, target, args.account.as_deref()).await?;
    let profile = match target {
        Some(p) => p.clone(),
        None => ctx.profile(&pa.profile)?.clone(),
    };
    let tokens = Tokens {
        app: ctx.app(&profile)?,
        account: pa.account,
        profile: profile.name.clone(),
        scope_map: ScopeMap::new(args.scope_map),
        agent_home,
    };
    let served = endpoint::start(tokens)
        .await
        .map_err(|e| Failure::Other(format!("cannot listen on 127.0.0.1: {e}")))?;

    let (program, rest) = args.command.split_first().expect("clap requires CMD");
    let mut cmd = tokio::process::Command::new(program);
    cmd.args(rest)
        .envs(served.env())
        .env_remove("IDENTITY_SERVER_THUMBPRINT")
        .env_remove("AZD_AUTH_CERT");
    // Listening before the child exists: no signal can fall between spawn and wait.
    let signals = Signals::listen().map_err(|e| Failure::Other(format!("signals: {e}")))?;
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => {
            served.stop().await;
            let shown = crate::output::sanitize(&program.to_string_lossy());
            eprintln!("error: cannot run {shown}: {e}");
            let code = if e.kind() == std::io::ErrorKind::NotFound {
                127
            } else {
                126
            };
            std::process::exit(code);
        }
    };
    let status = signals.forward_until_exit(&mut child).await;
    served.stop().await;
    match status {
        Ok(status) => exit_as(status),
        Err(e) => Err(Failure::Other(format!("waiting for the command: {e}"))),
    }
}

/// Ends this process the way the child ended.
fn exit_as(status: ExitStatus) -> ! {
    if let Some(code) = status.code() {
        std::process::exit(code);
    }
    #[cfg(unix)]
    {
        use std::os::unix::process::ExitStatusExt;
        if let Some(sig) = status.signal() {
            if [libc::SIGINT, libc::SIGTERM, libc::SIGHUP].contains(&sig) {
                // SAFETY: plain libc calls; nothing else runs on this thread meanwhile.
                unsafe {
                    libc::signal(sig, libc::SIG_DFL);
                    libc::raise(sig);
                }
            }
            std::process::exit(128 + sig);
        }
    }
    std::process::exit(1)
}

#[cfg(unix)]
struct Signals {
    interrupt: tokio::signal::unix::Signal,
    terminate: tokio::signal::unix::Signal,
}

#[cfg(unix)]
impl Signals {
    fn listen() -> std::io::Result<Signals> {
        use tokio::signal::unix::{signal, SignalKind};
        Ok(Signals {
            interrupt: signal(SignalKind::interrupt())?,
            terminate: signal(SignalKind::terminate())?,
        })
    }

    async fn forward_until_exit(
        mut self,
        child: &mut tokio::process::Child,
    ) -> std::io::Result<ExitStatus> {
        let pid = child.id().and_then(|p| libc::pid_t::try_from(p).ok());
        loop {
            tokio::select! {
                status = child.wait() => return status,
                Some(()) = self.interrupt.recv() => {
                    if let Some(pid) = pid {
                        if !terminal_interrupted(pid) {
                            send(pid, libc::SIGINT);
                        }
                    }
                }
                Some(()) = self.terminate.recv() => {
                    if let Some(pid) = pid {
                        send(pid, libc::SIGTERM);
                    }
                }
            }
        }
    }
}

#[cfg(unix)]
fn send(pid: libc::pid_t, sig: libc::c_int) {
    // SAFETY: kill(2) with a pid we spawned and have not reaped (we are still waiting).
    unsafe {
        libc::kill(pid, sig);
    }
}

/// Whether a SIGINT came from the terminal's Ctrl-C, which the kernel already sent to
/// the child: true when the child is in the controlling terminal's foreground process
/// group. Forwarding it as well would interrupt the child twice.
#[cfg(unix)]
fn terminal_interrupted(child: libc::pid_t) -> bool {
    use std::os::fd::AsRawFd;
    let Ok(tty) = std::fs::File::open("/dev/tty") else {
        return false;
    };
    // SAFETY: tcgetpgrp on an open descriptor, getpgid on our own unreaped child.
    let (foreground, child_group) =
        unsafe { (libc::tcgetpgrp(tty.as_raw_fd()), libc::getpgid(child)) };
    foreground > 0 && foreground == child_group
}

#[cfg(not(unix))]
struct Signals;

#[cfg(not(unix))]
impl Signals {
    fn listen() -> std::io::Result<Signals> {
        Ok(Signals)
    }

    /// Ctrl-C reaches every process of the console; `run` waits for CMD to react.
    async fn forward_until_exit(
        self,
        child: &mut tokio::process::Child,
    ) -> std::io::Result<ExitStatus> {
        loop {
            tokio::select! {
                status = child.wait() => return status,
                _ = tokio::signal::ctrl_c() => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use crate::cli::{Cli, Command};

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("tessera-cli").chain(args.iter().copied()))
    }

    fn run_args(args: &[&str]) -> super::RunArgs {
        match parse(args).unwrap().command {
            Command::Run(a) => a,
            other => panic!("parsed as {other:?}"),
        }
    }

    #[test]
    fn the_command_follows_the_flags_and_keeps_its_own() {
        let a = run_args(&[
            "run",
            "--account",
            "alice",
            "--scope-map",
            "https://graph.microsoft.com=User.Read Mail.Read",
            "--scope-map",
            "api://x=api://x/Data.Read",
            "--",
            "python",
            "-c",
            "print(1)",
            "--account",
            "bob",
        ]);
        assert_eq!(a.account.as_deref(), Some("alice"));
        assert_eq!(a.scope_map.len(), 2);
        assert_eq!(a.scope_map[0].1.to_param(), "User.Read Mail.Read");
        assert_eq!(
            a.command,
            ["python", "-c", "print(1)", "--account", "bob"].map(std::ffi::OsString::from)
        );
        // Without `--` too, and global flags before the command.
        let cli = parse(&["run", "--profile", "Sandbox", "env", "-i"]).unwrap();
        assert_eq!(cli.profile.as_deref(), Some("Sandbox"));
        match cli.command {
            Command::Run(a) => assert_eq!(a.command, ["env", "-i"].map(std::ffi::OsString::from)),
            other => panic!("parsed as {other:?}"),
        }
    }

    #[test]
    fn mistakes_are_usage_errors() {
        use clap::error::ErrorKind;
        let kind = |args: &[&str]| parse(args).unwrap_err().kind();
        assert_eq!(kind(&["run"]), ErrorKind::MissingRequiredArgument);
        assert_eq!(kind(&["run", "--"]), ErrorKind::MissingRequiredArgument);
        assert_eq!(
            kind(&["run", "--scope-map", "nothing", "--", "true"]),
            ErrorKind::ValueValidation
        );
        assert_eq!(parse(&["run"]).unwrap_err().exit_code(), 2);
    }

    #[test]
    fn help_documents_the_protocols_and_the_scope_map() {
        use clap::CommandFactory;
        let mut cmd = Cli::command();
        let help = cmd
            .find_subcommand_mut("run")
            .unwrap()
            .render_long_help()
            .to_string();
        for needle in [
            "IDENTITY_ENDPOINT",
            "AZD_AUTH_ENDPOINT",
            "--scope-map <RESOURCE=SCOPE>",
            "R/.default",
            "127.0.0.1",
            "Exit status",
        ] {
            assert!(
                help.contains(needle),
                "run --help lacks {needle:?}:\n{help}"
            );
        }
    }
}
