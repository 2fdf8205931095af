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

/// The headless host: the engine, and nobody to ask.
struct Headless {
    ctx: Tessera,
}

#[async_trait::async_trait]
impl Host for Headless {
    async fn engine(&self) -> Result<Engine<'_>, String> {
        Ok(Box::new(&self.ctx))
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
    let agent = Agent::start(Headless { ctx })
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

/// Ask the agent for a token. `None` when no agent answers (no socket, nobody listening,
/// another home, an agent that is stopping or speaks another version): the caller opens
/// the store itself.
pub async fn ask_token(request: TokenRequest) -> Option<Answer> {
    let socket = agent::socket_path()?;
    let mut stream = tokio::time::timeout(CONNECT_TIMEOUT, UnixStream::connect(&socket))
        .await
        .ok()?
        .ok()?;
    let req = Request {
        v: VERSION,
        op: Op::Token(request),
    };
    agent::write_frame(&mut stream, &req).await.ok()?;
    let body = tokio::time::timeout(ANSWER_TIMEOUT, agent::read_frame(&mut stream))
        .await
        .ok()?
        .ok()?;
    match serde_json::from_slice::<Response>(&body).ok()? {
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
        Response::Error(e)
            if matches!(e.kind, ErrorKind::InteractionRequired | ErrorKind::Failed) =>
        {
            Some(Answer::Refused(e))
        }
        Response::Error(e) => {
            tracing::debug!(kind = ?e.kind, "the agent did not serve this request; opening the store");
            None
        }
        Response::Status(_) => None,
    }
}
