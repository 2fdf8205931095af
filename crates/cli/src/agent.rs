//! The agent on the command line: `tessera-cli agent` hosts `tessera_core::agent`'s server
//! headless (it holds the store, and so its key, open; it asks nobody: a request that
//! needs a sign-in is answered "interaction required" at once); and every `tessera-cli
//! token` asks an agent first ([`ask_token`]), opening the store itself when no agent
//! answers, `--no-agent` is given or `TESSERA_AGENT=0`.

use std::path::PathBuf;
use std::time::Duration;

use tessera_core::agent::serve::{self, Agent, Decision, Engine, Host, Question};
use tessera_core::agent::{
    self, ErrorKind, ErrorReply, Op, Request, Response, TokenRequest, VERSION,
};
use tessera_core::app::{AuthResult, TokenSource};
use tessera_core::context::Tessera;
use tessera_core::scopes::ScopeSet;
use tessera_core::secret::AccessToken;
use tokio::net::UnixStream;

use crate::{CliResult, Failure};

/// How long a client waits to connect to an agent before opening the store itself.
const CONNECT_TIMEOUT: Duration = Duration::from_millis(500);
/// How long a client waits for an answer (a refresh may ask the provider; the desktop
/// app may ask its user, for two minutes by default).
const ANSWER_TIMEOUT: Duration = Duration::from_secs(15 * 60);

/// The headless host: the engine (its profiles read again when the file changes), and
/// nobody to ask.
struct Headless {
    ctx: tokio::sync::RwLock<Tessera>,
    profiles: serve::ProfilesWatch,
}

#[async_trait::async_trait]
impl Host for Headless {
    async fn engine(&self) -> Result<Engine<'_>, String> {
        let changed = self.profiles.changed(&*self.ctx.read().await);
        if changed {
            serve::ProfilesWatch::reload(&mut *self.ctx.write().await);
        }
        Ok(Box::new(self.ctx.read().await))
    }

    async fn ask(&self, _question: Question) -> Decision {
        Decision::Unavailable
    }
}

/// `tessera-cli agent`: serve until SIGTERM or SIGINT (or the store is reset).
pub async fn serve(ctx: Tessera, home: PathBuf) -> CliResult {
    let socket = agent::socket_path()
        .ok_or_else(|| Failure::Usage(serve::StartError::NoSocketPath.to_string()))?;
    let listener = serve::bind(&socket).await.map_err(|e| match e {
        serve::StartError::Running(_) | serve::StartError::NoSocketPath => {
            Failure::Usage(e.to_string())
        }
        serve::StartError::Io(m) => Failure::Other(m),
    })?;
    let profiles = serve::ProfilesWatch::default();
    profiles.changed(&ctx); // remembers the file as loaded
    let host = Headless {
        ctx: tokio::sync::RwLock::new(ctx),
        profiles,
    };
    let agent = Agent::start(host)
        .await
        .map_err(|e| Failure::Other(e.to_string()))?;
    eprintln!(
        "tessera-cli agent: serving {} on {} (stop with Ctrl-C)",
        home.display(),
        socket.display()
    );
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .map_err(|e| Failure::Other(format!("cannot wait for SIGTERM: {e}")))?;
    let stop = agent.stopped();
    let serving = tokio::spawn(std::sync::Arc::clone(&agent).serve(listener, socket));
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
        () = stop.cancelled() => {}
    }
    agent.stop();
    let _ = serving.await;
    eprintln!("tessera-cli agent: stopped");
    Ok(())
}

/// What a client gets from an agent for a token request.
pub enum Answer {
    /// The token, and the profile's subscription (Azure CLI's output names it).
    Token(Box<AuthResult>, Option<String>),
    /// No token: what to print, the exit code, and whether a sign-in would help (with
    /// the profile the account was found in).
    Refused(ErrorReply),
}

/// Ask the agent `op`. `None` when no agent answers (no socket, nobody listening, no
/// answer in time) or it did not serve the request (another home, stopping, another
/// version): the caller opens the store itself.
pub async fn ask(op: Op) -> Option<Response> {
    let socket = agent::socket_path()?;
    let mut stream = tokio::time::timeout(CONNECT_TIMEOUT, UnixStream::connect(&socket))
        .await
        .ok()?
        .ok()?;
    agent::write_frame(&mut stream, &Request { v: VERSION, op })
        .await
        .ok()?;
    let body = tokio::time::timeout(ANSWER_TIMEOUT, agent::read_frame(&mut stream))
        .await
        .ok()?
        .ok()?;
    match serde_json::from_slice::<Response>(&body).ok()? {
        Response::Error(e)
            if !matches!(e.kind, ErrorKind::InteractionRequired | ErrorKind::Failed) =>
        {
            tracing::debug!(kind = ?e.kind, "the agent did not serve this request; opening the store");
            None
        }
        reply => Some(reply),
    }
}

/// The Tessera home an agent must serve for this process: `--home`, else `TESSERA_HOME`,
/// else the XDG data folder, absolute.
pub fn home_of(home: Option<&std::path::Path>) -> Option<PathBuf> {
    let dir = tessera_core::paths::Paths::resolve(home).ok()?.data_dir;
    Some(std::path::absolute(&dir).unwrap_or(dir))
}

/// `accounts`, `logout` and `status` through the agent, when one answers for this home:
/// the same output, stderr and exit code as without it. `None`: open the store.
pub async fn serve_command(cli: &crate::cli::Cli) -> Option<CliResult> {
    use crate::cli::Command;
    use tessera_core::agent::{AccountsRequest, SignOutRequest};
    let home = home_of(cli.home.as_deref())?;
    let profile = cli.profile.clone();
    let reply = match &cli.command {
        Command::Accounts { .. } => ask(Op::Accounts(AccountsRequest { home, profile })).await?,
        Command::Logout { account, all } => {
            ask(Op::SignOut(SignOutRequest {
                home,
                profile,
                account: account.clone(),
                all: *all,
            }))
            .await?
        }
        Command::Status { .. } => match ask(Op::Status).await? {
            Response::Status(s) if s.home == home && s.store.is_some() => Response::Status(s),
            _ => return None,
        },
        _ => return None,
    };
    Some(match (reply, &cli.command) {
        (Response::Error(e), _) => Err(refused(e)),
        (Response::Accounts(a), Command::Accounts { json }) => {
            crate::print_accounts(&a.accounts, &a.unlisted, *json, cli.home.as_deref())
        }
        (Response::SignedOut(o), Command::Logout { .. }) => {
            crate::print_signed_out(&o.signed_out);
            Ok(())
        }
        (Response::Status(s), Command::Status { json }) => {
            crate::storage::print_status(s.store.as_ref().expect("checked above"), *json)
        }
        _ => return None,
    })
}

/// An agent's refusal as this process reports it.
pub fn refused(e: ErrorReply) -> Failure {
    Failure::Rendered {
        text: e.message,
        exit: e.exit,
    }
}

/// Ask the agent for a token (see [`ask`] for `None`).
pub async fn ask_token(request: TokenRequest) -> Option<Answer> {
    match ask(Op::Token(request)).await? {
        Response::Token(t) => {
            let t = *t;
            let result = AuthResult {
                access_token: AccessToken::new(t.access_token),
                token_type: t.token_type,
                expires_on: t.expires_on,
                refresh_on: t.refresh_on,
                scopes: ScopeSet::from_iter(t.scopes.iter().map(String::as_str)),
                token_source: if t.token_source == "cache" {
                    TokenSource::Cache
                } else {
                    TokenSource::IdentityProvider
                },
                account: t.account,
                id_token_claims: t.id_token_claims,
            };
            Some(Answer::Token(Box::new(result), t.subscription))
        }
        Response::Error(e) => Some(Answer::Refused(e)),
        _ => None,
    }
}
