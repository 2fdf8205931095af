//! The agent on the command line: `tessera-cli agent` serves tokens on the user's socket
//! (`tessera_core::agent`'s protocol), holding the store, and so its key, open; and every
//! `tessera-cli token` asks it first ([`ask_token`]), opening the store itself when no
//! agent answers, `--no-agent` is given or `TESSERA_AGENT=0`.
//!
//! Invariants: only the user's own processes are served (`SO_PEERCRED`, checked on every
//! connection); the socket's folder is 0700 and the socket 0600; a token is never logged;
//! the agent stops (dropping the key) when its store is reset under it.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tessera_core::agent::{
    self, ErrorKind, ErrorReply, Op, Request, Response, SingleFlight, StatusReply, TokenReply,
    TokenRequest, VERSION,
};
use tessera_core::app::{AuthResult, SilentOptions, TokenSource};
use tessera_core::context::Tessera;
use tessera_core::error::Error;
use tessera_core::scopes::ScopeSet;
use tessera_core::secret::AccessToken;
use tokio::net::{UnixListener, UnixStream};
use tokio_util::sync::CancellationToken;

use crate::{token, CliResult, Failure};

/// How long a client waits to connect to an agent before opening the store itself.
const CONNECT_TIMEOUT: Duration = Duration::from_millis(500);
/// How long a client waits for an answer (a refresh may ask the provider).
const ANSWER_TIMEOUT: Duration = Duration::from_secs(120);

struct Agent {
    ctx: Tessera,
    home: PathBuf,
    uid: u32,
    flight: SingleFlight,
    /// Tokens handed out, by request, with the store's change marker when they were read:
    /// served again while still valid and the store unchanged by anyone else.
    hot: std::sync::Mutex<std::collections::HashMap<String, (TokenReply, u64)>>,
    served: AtomicU64,
    /// The store file and its inode when the agent started: another inode (or none) means
    /// the store was reset.
    store: Option<(PathBuf, u64)>,
    stop: CancellationToken,
}

/// This process's user id (the owner of `/proc/self`).
fn own_uid() -> std::io::Result<u32> {
    std::fs::metadata("/proc/self").map(|m| m.uid())
}

/// `tessera-cli agent`: serve until SIGTERM or SIGINT (or the store is reset).
pub async fn serve(ctx: Tessera, home: PathBuf) -> CliResult {
    let socket = agent::socket_path().ok_or_else(|| {
        Failure::Usage(format!(
            "the agent needs a place for its socket: XDG_RUNTIME_DIR is not set (or set {})",
            agent::SOCKET_ENV
        ))
    })?;
    let listener = bind(&socket).await?;
    let store = ctx.store_info().and_then(|i| {
        let ino = std::fs::metadata(&i.path).ok()?.ino();
        Some((i.path.clone(), ino))
    });
    let agent = Arc::new(Agent {
        ctx,
        home,
        uid: own_uid().map_err(|e| Failure::Other(format!("cannot tell who runs this: {e}")))?,
        flight: SingleFlight::default(),
        hot: Default::default(),
        served: AtomicU64::new(0),
        store,
        stop: CancellationToken::new(),
    });
    eprintln!(
        "tessera-cli agent: serving {} on {} (stop with Ctrl-C)",
        agent.home.display(),
        socket.display()
    );
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .map_err(|e| Failure::Other(format!("cannot wait for SIGTERM: {e}")))?;
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    let agent = Arc::clone(&agent);
                    tokio::spawn(async move { agent.connection(stream).await });
                }
                Err(e) => tracing::warn!(error = %e, "agent: accept failed"),
            },
            _ = term.recv() => break,
            _ = tokio::signal::ctrl_c() => break,
            () = agent.stop.cancelled() => break,
        }
    }
    let _ = std::fs::remove_file(&socket);
    eprintln!("tessera-cli agent: stopped");
    Ok(())
}

/// Bind the socket: its folder made 0700, a stale socket (nobody answers) replaced, an
/// answering agent refused.
async fn bind(socket: &Path) -> CliResult<UnixListener> {
    if let Some(dir) = socket.parent() {
        tessera_core::fsutil::create_private_dir(dir)
            .and_then(|()| std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700)))
            .map_err(|e| Failure::Other(format!("cannot make {}: {e}", dir.display())))?;
    }
    if socket.exists() {
        if UnixStream::connect(socket).await.is_ok() {
            return Err(Failure::Usage(format!(
                "an agent already answers on {}; stop it first (or set {} to use another socket)",
                socket.display(),
                agent::SOCKET_ENV
            )));
        }
        std::fs::remove_file(socket)
            .map_err(|e| Failure::Other(format!("cannot replace {}: {e}", socket.display())))?;
    }
    let listener = UnixListener::bind(socket)
        .map_err(|e| Failure::Other(format!("cannot listen on {}: {e}", socket.display())))?;
    std::fs::set_permissions(socket, std::fs::Permissions::from_mode(0o600))
        .map_err(|e| Failure::Other(format!("cannot protect {}: {e}", socket.display())))?;
    Ok(listener)
}

impl Agent {
    async fn connection(&self, mut stream: UnixStream) {
        match stream.peer_cred() {
            Ok(c) if c.uid() == self.uid => {}
            Ok(c) => {
                tracing::warn!(uid = c.uid(), "agent: refused a process of another user");
                let _ = agent::write_frame(
                    &mut stream,
                    &Response::error(
                        ErrorKind::BadRequest,
                        "this agent serves only its own user",
                        1,
                    ),
                )
                .await;
                return;
            }
            Err(e) => {
                tracing::warn!(error = %e, "agent: cannot tell who connected; refused");
                return;
            }
        }
        loop {
            let body = match agent::read_frame(&mut stream).await {
                Ok(b) => b,
                Err(agent::FrameError::Closed) => return,
                Err(e) => {
                    // After a frame too long (or a broken stream) there is no next frame
                    // to find: say why and close.
                    let reply = Response::error(ErrorKind::BadRequest, e.to_string(), 1);
                    let _ = agent::write_frame(&mut stream, &reply).await;
                    return;
                }
            };
            let reply = match agent::parse_request(&body) {
                Ok(request) => self.answer(request).await,
                Err(e) => Response::Error(e),
            };
            if agent::write_frame(&mut stream, &reply).await.is_err() {
                // The client went away mid-request: nothing to do.
                return;
            }
        }
    }

    async fn answer(&self, request: Request) -> Response {
        debug_assert_eq!(request.v, VERSION);
        match request.op {
            Op::Status => Response::Status(StatusReply {
                version: VERSION,
                pid: std::process::id(),
                home: self.home.clone(),
                served: self.served.load(Ordering::Relaxed),
            }),
            Op::Token(t) => self.token(t).await,
        }
    }

    /// The store file is still the one opened (not reset under the agent).
    fn store_is_there(&self) -> bool {
        match &self.store {
            Some((path, ino)) => std::fs::metadata(path).is_ok_and(|m| m.ino() == *ino),
            None => true,
        }
    }

    async fn token(&self, t: TokenRequest) -> Response {
        let home = std::path::absolute(&t.home).unwrap_or(t.home.clone());
        if home != self.home {
            return Response::error(
                ErrorKind::WrongHome,
                format!("this agent serves {}", self.home.display()),
                1,
            );
        }
        if !self.store_is_there() {
            tracing::warn!("agent: the store was reset; stopping");
            self.stop.cancel();
            return Response::error(
                ErrorKind::Stopping,
                "the store was reset; the agent stopped",
                5,
            );
        }
        let program = t.program.as_deref().unwrap_or("a program");
        let key = request_key(&t);
        // Read before the work: a change by another process meanwhile makes the next
        // request miss, never serve a stale answer.
        let marker = self.ctx.store().change_marker();
        if !t.force_refresh {
            if let Some(reply) = self.hot_answer(&key, marker, t.min_validity_secs) {
                self.served.fetch_add(1, Ordering::Relaxed);
                tracing::debug!(program = %program, "agent: token handed out from memory");
                return Response::Token(Box::new(reply));
            }
        }
        match self.token_for(&t).await {
            Ok(reply) => {
                if let Some(m) = marker {
                    let mut hot = self.hot.lock().unwrap_or_else(|e| e.into_inner());
                    hot.insert(key, (reply.clone(), m));
                }
                self.served.fetch_add(1, Ordering::Relaxed);
                tracing::info!(
                    program = %program,
                    profile = %reply.profile,
                    source = %reply.token_source,
                    "agent: token handed out"
                );
                Response::Token(Box::new(reply))
            }
            Err((failure, profile)) => {
                let interaction = matches!(
                    failure,
                    Failure::Core(Error::InteractionRequired { .. } | Error::Cancelled)
                );
                let (mut message, exit) = crate::render(&failure);
                if let (
                    Failure::Core(Error::InteractionRequired {
                        reason: tessera_core::error::InteractionReason::NoAccount,
                        ..
                    }),
                    Some(w),
                ) = (&failure, &t.account)
                {
                    // What `choose_account` says first, in the client's terminal.
                    let where_ = t
                        .profile
                        .as_deref()
                        .and_then(|p| self.ctx.profile(p).ok())
                        .map(|p| format!(" in profile {}", p.name))
                        .unwrap_or_default();
                    message = format!("No signed-in account {w}{where_}.\n{message}");
                }
                tracing::info!(program = %program, exit, "agent: no token");
                Response::Error(ErrorReply {
                    kind: if interaction {
                        ErrorKind::InteractionRequired
                    } else {
                        ErrorKind::Failed
                    },
                    message,
                    exit,
                    profile,
                })
            }
        }
    }

    /// The token handed out for the same request before, when the store has not changed
    /// since (by another process: sign-in, sign-out, refresh) and it stays valid for
    /// `min_validity` seconds and is not due for a proactive refresh.
    fn hot_answer(&self, key: &str, marker: Option<u64>, min_validity: i64) -> Option<TokenReply> {
        let marker = marker?;
        let now = tessera_core::env::Clock::now(&tessera_core::env::SystemClock);
        let hot = self.hot.lock().unwrap_or_else(|e| e.into_inner());
        let (reply, seen) = hot.get(key)?;
        let fresh = *seen == marker
            && reply.expires_on > now.saturating_add(min_validity)
            && reply.refresh_on.is_none_or(|r| now < r);
        fresh.then(|| TokenReply {
            token_source: "cache".into(),
            ..reply.clone()
        })
    }

    /// What `tessera-cli token` does, with one refresh at a time per account and scopes.
    async fn token_for(&self, t: &TokenRequest) -> Result<TokenReply, (Failure, Option<String>)> {
        let ctx = &self.ctx;
        let target = match &t.profile {
            Some(name) => Some(
                ctx.profile(name)
                    .map_err(|e| (Failure::Usage(e.to_string()), None))?
                    .clone(),
            ),
            None => None,
        };
        let (profile, pa) = token::resolve(ctx, target.as_ref(), t.account.as_deref())
            .await
            .map_err(|f| (f, None))?;
        let profile = token::for_tenant(&profile, t.tenant.as_deref())
            .map_err(|f| (f, Some(profile.name.clone())))?;
        let options = SilentOptions {
            min_validity_secs: t.min_validity_secs,
            force_refresh: t.force_refresh,
            ..SilentOptions::default()
        };
        let mut scopes: Vec<String> = t.scopes.iter().map(|s| s.to_ascii_lowercase()).collect();
        scopes.sort();
        let key = format!(
            "{}\n{}\n{}\n{}",
            profile.name,
            pa.account.home_account_id,
            scopes.join(" "),
            t.tenant.as_deref().unwrap_or_default()
        );
        let _turn = self.flight.turn(&key).await;
        let r = token::silent(ctx, &profile, &pa, &t.scopes, &options)
            .await
            .map_err(|f| (f, Some(profile.name.clone())))?;
        Ok(TokenReply {
            access_token: r.access_token.secret().to_string(),
            token_type: r.token_type.clone(),
            expires_on: r.expires_on,
            refresh_on: r.refresh_on,
            scopes: r.scopes.iter().map(str::to_string).collect(),
            token_source: match r.token_source {
                TokenSource::Cache => "cache".into(),
                TokenSource::IdentityProvider => "identity_provider".into(),
            },
            account: r.account.clone(),
            id_token_claims: r.id_token_claims.clone(),
            profile: profile.name.clone(),
            subscription: profile.subscription.clone(),
        })
    }
}

/// A request's identity for the agent's memory: profile, account, scopes and tenant as
/// asked (the home is the agent's own).
fn request_key(t: &TokenRequest) -> String {
    let mut scopes: Vec<String> = t.scopes.iter().map(|s| s.to_ascii_lowercase()).collect();
    scopes.sort();
    format!(
        "{}\n{}\n{}\n{}",
        t.profile
            .as_deref()
            .unwrap_or_default()
            .to_ascii_lowercase(),
        t.account
            .as_deref()
            .unwrap_or_default()
            .to_ascii_lowercase(),
        scopes.join(" "),
        t.tenant.as_deref().unwrap_or_default()
    )
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
