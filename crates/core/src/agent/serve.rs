//! Serving the agent's socket: the part `tessera-cli agent` and the desktop app share. The
//! host ([`Host`]) gives the engine and, when it has a face, asks the user (sign in,
//! confirm); this module checks the peer, reads frames, answers from memory or through
//! [`super::lookup`] with one refresh at a time per token ([`SingleFlight`]), and records
//! every answer ([`Activity`]).
//!
//! Invariants: only the agent's own user is served (`SO_PEERCRED`, on every connection);
//! the socket's folder is 0700 and the socket 0600; no token is logged or recorded; the
//! engine is not held while the user is asked (a prompt may wait minutes); the agent
//! stops (and drops the store, so its key) when the store is reset under it.

use std::collections::{HashMap, HashSet};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use tokio::net::{UnixListener, UnixStream};
use tokio_util::sync::CancellationToken;

use super::activity::{Activity, Outcome, Peer};
use super::lookup::{self, Refusal, Refused, Wanted};
use super::{
    ErrorKind, ErrorReply, Op, Request, Response, SingleFlight, StatusReply, TokenReply,
    TokenRequest, VERSION,
};
use crate::app::{AuthResult, SilentOptions, TokenSource};
use crate::context::Tessera;
use crate::env::{Clock, SystemClock};
use crate::error::Error;

/// The engine a host lends for one request (a reference, or the app's read guard).
pub type Engine<'a> = Box<dyn std::ops::Deref<Target = Tessera> + Send + Sync + 'a>;

/// What the agent asks its user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Question {
    /// The account must sign in before the program gets its token.
    SignIn(Ask),
    /// "Hand out a token of this account to this program?" (the account asks first).
    Confirm(Ask),
}

/// Who asks for what.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ask {
    pub peer: Peer,
    /// The account's user name.
    pub account: String,
    pub home_account_id: Option<String>,
    pub profile: String,
    pub scopes: Vec<String>,
    /// Why a sign-in is needed (the engine's words).
    pub reason: Option<String>,
}

/// The user's answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Signed in (for [`Question::SignIn`]) or agreed (for [`Question::Confirm`]).
    Yes,
    /// Denied, or did not answer in time.
    No,
    /// Nobody can be asked (a headless agent).
    Unavailable,
}

/// What hosts an agent: `tessera-cli agent` (headless) or the desktop app.
#[async_trait::async_trait]
pub trait Host: Send + Sync + 'static {
    /// The engine to serve from, or why there is none now.
    async fn engine(&self) -> Result<Engine<'_>, String>;
    /// Ask the user; a headless host answers [`Decision::Unavailable`] at once.
    async fn ask(&self, question: Question) -> Decision;
    /// Whether tokens of this account go to a program only after the user agreed (once
    /// per program per session).
    fn confirm_first(&self, _home_account_id: &str) -> bool {
        false
    }
    /// A request was answered (the app shows it at once).
    fn recorded(&self, _activity: &Activity) {}
}

/// Notices edits of `profiles.toml` by other processes (`tessera-cli profiles add`, the
/// app): an agent that serves for days takes them up at the next request.
#[derive(Debug, Default)]
pub struct ProfilesWatch {
    seen: Mutex<Option<Option<std::time::SystemTime>>>,
}

impl ProfilesWatch {
    /// Whether `ctx`'s profiles file changed since the last call (the first call only
    /// remembers it).
    pub fn changed(&self, ctx: &Tessera) -> bool {
        let now = std::fs::metadata(ctx.paths().profiles_file())
            .and_then(|m| m.modified())
            .ok();
        let mut seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        match seen.replace(now) {
            Some(before) => before != now,
            None => false,
        }
    }

    /// Read the profiles file again into `ctx` (a broken file keeps the profiles loaded).
    pub fn reload(ctx: &mut Tessera) {
        match crate::profile::Profiles::load(&ctx.paths().profiles_file()) {
            Ok(p) => {
                *ctx.profiles_mut() = p;
                tracing::info!("agent: profiles read again");
            }
            Err(e) => {
                tracing::warn!(error = %e, "agent: the changed profiles file is not valid; keeping the profiles")
            }
        }
    }
}

/// An answer kept in memory: the token (for its expiry and whom it is for), the frame
/// that hands it out from the cache, ready to write, and the store's change marker when
/// it was read.
struct Hot {
    reply: TokenReply,
    frame: Arc<[u8]>,
    marker: u64,
}

impl Hot {
    fn new(reply: TokenReply, marker: u64) -> Option<Hot> {
        let cached = Response::Token(Box::new(TokenReply {
            token_source: "cache".into(),
            ..reply.clone()
        }));
        let frame = serde_json::to_vec(&cached).ok()?.into();
        Some(Hot {
            reply,
            frame,
            marker,
        })
    }
}

/// What a request is answered with: a message, or a frame kept ready.
enum Answer {
    Message(Response),
    Ready(Arc<[u8]>),
}

impl From<Response> for Answer {
    fn from(r: Response) -> Self {
        Answer::Message(r)
    }
}

/// A serving agent.
pub struct Agent<H: Host> {
    host: H,
    home: PathBuf,
    uid: u32,
    flight: SingleFlight,
    /// Tokens handed out, by request, with the store's change marker when they were read:
    /// served again while still valid and the store unchanged by anyone else.
    hot: Mutex<HashMap<String, Hot>>,
    served: AtomicU64,
    /// The store file and its inode when the agent started.
    store: Option<(PathBuf, u64)>,
    /// (account, program) pairs the user agreed to this session.
    agreed: Mutex<HashSet<(String, String)>>,
    activity: tokio::sync::mpsc::UnboundedSender<Activity>,
    /// Cancelled once the activity writer has written its last batch (after a stop).
    activity_written: CancellationToken,
    stop: CancellationToken,
}

/// The process at the other end of a connection.
struct Caller {
    pid: u32,
    /// Read from `/proc` at its first token request and kept for the connection: its
    /// pid cannot change while it stays connected.
    peer: std::sync::OnceLock<Peer>,
}

impl Caller {
    fn peer(&self) -> &Peer {
        self.peer.get_or_init(|| Peer::read(self.pid))
    }
}

/// Why an agent cannot start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(
        "the agent needs a place for its socket: XDG_RUNTIME_DIR is not set (or set {})",
        super::SOCKET_ENV
    )]
    NoSocketPath,
    #[error("an agent already answers on {}; stop it first (or set {} to use another socket)", .0.display(), super::SOCKET_ENV)]
    Running(PathBuf),
    #[error("{0}")]
    Io(String),
}

/// This process's user id (the owner of `/proc/self`).
fn own_uid() -> std::io::Result<u32> {
    std::fs::metadata("/proc/self").map(|m| m.uid())
}

/// Bind the socket: its folder made 0700, a stale socket (nobody answers) replaced, an
/// answering agent refused.
pub async fn bind(socket: &Path) -> Result<UnixListener, StartError> {
    if let Some(dir) = socket.parent() {
        crate::fsutil::create_private_dir(dir)
            .and_then(|()| std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700)))
            .map_err(|e| StartError::Io(format!("cannot make {}: {e}", dir.display())))?;
    }
    if socket.exists() {
        if UnixStream::connect(socket).await.is_ok() {
            return Err(StartError::Running(socket.to_path_buf()));
        }
        std::fs::remove_file(socket)
            .map_err(|e| StartError::Io(format!("cannot replace {}: {e}", socket.display())))?;
    }
    let listener = UnixListener::bind(socket)
        .map_err(|e| StartError::Io(format!("cannot listen on {}: {e}", socket.display())))?;
    std::fs::set_permissions(socket, std::fs::Permissions::from_mode(0o600))
        .map_err(|e| StartError::Io(format!("cannot protect {}: {e}", socket.display())))?;
    Ok(listener)
}

impl<H: Host> Agent<H> {
    /// An agent for the home of `host`'s engine. Spawns the task that writes the
    /// activity records (on the current tokio runtime).
    pub async fn start(host: H) -> Result<Arc<Agent<H>>, StartError> {
        let (home, store) = {
            let ctx = host.engine().await.map_err(StartError::Io)?;
            let store = ctx.store_info().and_then(|i| {
                let ino = std::fs::metadata(&i.path).ok()?.ino();
                Some((i.path.clone(), ino))
            });
            (ctx.paths().data_dir.clone(), store)
        };
        let uid =
            own_uid().map_err(|e| StartError::Io(format!("cannot tell who runs this: {e}")))?;
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        let agent = Arc::new(Agent {
            host,
            home,
            uid,
            flight: SingleFlight::default(),
            hot: Mutex::default(),
            served: AtomicU64::new(0),
            store,
            agreed: Mutex::default(),
            activity: tx,
            activity_written: CancellationToken::new(),
            stop: CancellationToken::new(),
        });
        tokio::spawn(write_activity(
            Arc::downgrade(&agent),
            rx,
            agent.stop.clone(),
        ));
        Ok(agent)
    }

    pub fn host(&self) -> &H {
        &self.host
    }

    pub fn home(&self) -> &Path {
        &self.home
    }

    /// Cancelled when the agent stops serving (its store was reset, or [`Self::stop`]).
    pub fn stopped(&self) -> CancellationToken {
        self.stop.clone()
    }

    pub fn stop(&self) {
        self.stop.cancel();
    }

    /// Serve `listener` until [`Self::stop`] (or the store is reset); the socket file is
    /// removed then.
    pub async fn serve(self: Arc<Self>, listener: UnixListener, socket: PathBuf) {
        loop {
            tokio::select! {
                accepted = listener.accept() => match accepted {
                    Ok((stream, _)) => {
                        let agent = Arc::clone(&self);
                        tokio::spawn(async move { agent.connection(stream).await });
                    }
                    Err(e) => tracing::warn!(error = %e, "agent: accept failed"),
                },
                () = self.stop.cancelled() => break,
            }
        }
        let _ = std::fs::remove_file(&socket);
        // What was handed out is on disk before the host goes on to exit.
        let _ = tokio::time::timeout(
            std::time::Duration::from_secs(5),
            self.activity_written.cancelled(),
        )
        .await;
    }

    async fn connection(&self, mut stream: UnixStream) {
        let pid = match stream.peer_cred() {
            Ok(c) if c.uid() == self.uid => c.pid(),
            Ok(c) => {
                tracing::warn!(uid = c.uid(), "agent: refused a process of another user");
                let reply = Response::error(
                    ErrorKind::BadRequest,
                    "this agent serves only its own user",
                    1,
                );
                let _ = super::write_frame(&mut stream, &reply).await;
                return;
            }
            Err(e) => {
                tracing::warn!(error = %e, "agent: cannot tell who connected; refused");
                return;
            }
        };
        let caller = Caller {
            pid: pid.and_then(|p| u32::try_from(p).ok()).unwrap_or(0),
            peer: std::sync::OnceLock::new(),
        };
        loop {
            let body = match super::read_frame(&mut stream).await {
                Ok(b) => b,
                Err(super::FrameError::Closed) => return,
                Err(e) => {
                    // After a frame too long (or a broken stream) there is no next frame
                    // to find: say why and close.
                    let reply = Response::error(ErrorKind::BadRequest, e.to_string(), 1);
                    let _ = super::write_frame(&mut stream, &reply).await;
                    return;
                }
            };
            let reply = tokio::select! {
                reply = async {
                    match super::parse_request(&body) {
                        Ok(request) => self.answer(request, &caller).await,
                        Err(e) => Response::Error(e).into(),
                    }
                } => reply,
                () = self.stop.cancelled() => Response::error(ErrorKind::Stopping, "the agent is stopping", 1).into(),
            };
            let written = match &reply {
                Answer::Message(m) => super::write_frame(&mut stream, m).await,
                Answer::Ready(body) => super::write_body(&mut stream, body).await,
            };
            if written.is_err() {
                // The client went away mid-request: nothing to do.
                return;
            }
        }
    }

    async fn answer(&self, request: Request, caller: &Caller) -> Answer {
        debug_assert_eq!(request.v, VERSION);
        if let Op::Token(t) = request.op {
            return match self.refuse(&t.home) {
                Some(r) => r.into(),
                None => self.token(t, caller.peer()).await,
            };
        }
        Answer::Message(match request.op {
            Op::Status => {
                let store = match self.host.engine().await {
                    Ok(engine) => lookup::store_facts(&engine).ok(),
                    Err(_) => None,
                };
                Response::Status(StatusReply {
                    version: VERSION,
                    pid: std::process::id(),
                    home: self.home.clone(),
                    served: self.served.load(Ordering::Relaxed),
                    store,
                })
            }
            Op::Token(_) => unreachable!("answered above"),
            Op::Accounts(a) => match self.refuse(&a.home) {
                Some(r) => r,
                None => self.accounts(a).await,
            },
            Op::SignOut(o) => match self.refuse(&o.home) {
                Some(r) => r,
                None => self.sign_out(o).await,
            },
        })
    }

    /// The refusal of a request for `home`: another home than the agent's, or a store
    /// reset under the agent (which then stops).
    fn refuse(&self, home: &Path) -> Option<Response> {
        let home = std::path::absolute(home).unwrap_or(home.to_path_buf());
        if home != self.home {
            return Some(Response::error(
                ErrorKind::WrongHome,
                format!("this agent serves {}", self.home.display()),
                1,
            ));
        }
        if !self.store_is_there() {
            tracing::warn!("agent: the store was reset; stopping");
            self.stop.cancel();
            return Some(Response::error(
                ErrorKind::Stopping,
                "the store was reset; the agent stopped",
                5,
            ));
        }
        None
    }

    /// The profile a request names, or a usage refusal.
    fn target(
        engine: &Tessera,
        name: Option<&str>,
    ) -> Result<Option<crate::profile::Profile>, Refused> {
        name.map(|n| {
            engine
                .profile(n)
                .cloned()
                .map_err(|e| Refused::usage(e.to_string()))
        })
        .transpose()
    }

    async fn accounts(&self, a: super::AccountsRequest) -> Response {
        let engine = match self.host.engine().await {
            Ok(e) => e,
            Err(e) => return refusal_reply(Refused::from(Error::Config(e))),
        };
        let listed = match Self::target(&engine, a.profile.as_deref()) {
            Ok(target) => lookup::accounts(&engine, target.as_ref()).await,
            Err(r) => Err(r),
        };
        match listed {
            Ok((accounts, unlisted)) => {
                Response::Accounts(Box::new(super::AccountsReply { accounts, unlisted }))
            }
            Err(r) => refusal_reply(r),
        }
    }

    async fn sign_out(&self, o: super::SignOutRequest) -> Response {
        let engine = match self.host.engine().await {
            Ok(e) => e,
            Err(e) => return refusal_reply(Refused::from(Error::Config(e))),
        };
        let done = match Self::target(&engine, o.profile.as_deref()) {
            Ok(target) => {
                lookup::sign_out(&engine, target.as_ref(), o.account.as_deref(), o.all).await
            }
            Err(r) => Err(r),
        };
        match done {
            Ok(signed_out) => {
                // What the agent remembers of them goes too.
                self.hot.lock().unwrap_or_else(|e| e.into_inner()).clear();
                tracing::info!(accounts = signed_out.len(), "agent: signed out");
                Response::SignedOut(super::SignOutReply { signed_out })
            }
            Err(r) => refusal_reply(r),
        }
    }

    /// The store file is still the one opened (not reset under the agent).
    fn store_is_there(&self) -> bool {
        match &self.store {
            Some((path, ino)) => std::fs::metadata(path).is_ok_and(|m| m.ino() == *ino),
            None => true,
        }
    }

    fn record(
        &self,
        t: &TokenRequest,
        peer: &Peer,
        account: Option<String>,
        profile: Option<String>,
        outcome: Outcome,
    ) {
        let requester = peer.requester();
        let activity = Activity {
            at: SystemClock.now(),
            account: account.or_else(|| t.account.clone()).unwrap_or_default(),
            profile: profile.or_else(|| t.profile.clone()),
            scopes: t.scopes.clone(),
            program: requester.name.clone(),
            pid: requester.pid,
            outcome,
        };
        self.host.recorded(&activity);
        let _ = self.activity.send(activity);
    }

    async fn token(&self, t: TokenRequest, peer: &Peer) -> Answer {
        let key = request_key(&t);
        if !t.force_refresh {
            if let Some((frame, home_account_id, username, profile)) =
                self.hot_answer(&key, t.min_validity_secs).await
            {
                if self.agreed_to(&home_account_id, peer) {
                    self.served.fetch_add(1, Ordering::Relaxed);
                    self.record(&t, peer, Some(username), Some(profile), Outcome::Cache);
                    return Answer::Ready(frame);
                }
            }
        }
        Answer::Message(match self.token_for(&t, peer).await {
            Ok((reply, marker, outcome)) => {
                if let Some(hot) = marker.and_then(|m| Hot::new(reply.clone(), m)) {
                    let mut memory = self.hot.lock().unwrap_or_else(|e| e.into_inner());
                    memory.insert(key, hot);
                }
                self.served.fetch_add(1, Ordering::Relaxed);
                tracing::info!(
                    program = %peer.requester().name,
                    profile = %reply.profile,
                    source = %reply.token_source,
                    "agent: token handed out"
                );
                self.record(
                    &t,
                    peer,
                    Some(reply.account.username.clone()),
                    Some(reply.profile.clone()),
                    outcome,
                );
                Response::Token(Box::new(reply))
            }
            Err((refused, outcome, account)) => {
                self.record(&t, peer, account, refused.profile.clone(), outcome);
                let mut reply = refusal_reply(refused);
                if let Response::Error(e) = &mut reply {
                    if outcome == Outcome::Denied {
                        e.message = "error: the token was denied in Tessera (or its question was not answered in time)\n".into();
                    }
                    tracing::info!(program = %peer.requester().name, exit = e.exit, "agent: no token");
                }
                reply
            }
        })
    }

    /// Whether this account's token may go to this program without asking (it does not
    /// ask first, or the user agreed this session). Checked before a memory answer; a
    /// full answer asks.
    fn agreed_to(&self, home_account_id: &str, peer: &Peer) -> bool {
        !self.host.confirm_first(home_account_id)
            || self
                .agreed
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .contains(&(home_account_id.to_string(), peer.requester().name.clone()))
    }

    /// The token handed out for the same request before, when the store has not changed
    /// since (by another process: sign-in, sign-out, refresh) and it stays valid for
    /// `min_validity` seconds and is not due for a proactive refresh: the frame to write,
    /// and the account's id, user name and profile.
    async fn hot_answer(
        &self,
        key: &str,
        min_validity: i64,
    ) -> Option<(Arc<[u8]>, String, String, String)> {
        let marker = self.host.engine().await.ok()?.store().change_marker()?;
        let now = SystemClock.now();
        let memory = self.hot.lock().unwrap_or_else(|e| e.into_inner());
        let hot = memory.get(key)?;
        let r = &hot.reply;
        let fresh = hot.marker == marker
            && r.expires_on > now.saturating_add(min_validity)
            && r.refresh_on.is_none_or(|t| now < t);
        fresh.then(|| {
            (
                Arc::clone(&hot.frame),
                r.account.home_account_id.clone(),
                r.account.username.clone(),
                r.profile.clone(),
            )
        })
    }

    /// What `tessera-cli token` does, with one refresh at a time per account and scopes,
    /// a sign-in (or confirmation) asked of the user when the host can ask. Returns the
    /// store's change marker read before the work (a change by another process
    /// meanwhile makes the next request miss, never serve a stale answer).
    async fn token_for(
        &self,
        t: &TokenRequest,
        peer: &Peer,
    ) -> Result<(TokenReply, Option<u64>, Outcome), (Refused, Outcome, Option<String>)> {
        let failed = |r: Refused| {
            let outcome = if r.needs_interaction() {
                Outcome::InteractionRequired
            } else {
                Outcome::Failed
            };
            (r, outcome, None)
        };
        let options = SilentOptions {
            min_validity_secs: t.min_validity_secs,
            force_refresh: t.force_refresh,
            ..SilentOptions::default()
        };
        // Find the account (the engine is lent for this only).
        let (profile, pa) = {
            let engine = self
                .host
                .engine()
                .await
                .map_err(|e| failed(Refused::from(Error::Config(e))))?;
            let target = Self::target(&engine, t.profile.as_deref()).map_err(failed)?;
            let wanted = Wanted {
                target: target.as_ref(),
                account: t.account.as_deref(),
                tenant: t.tenant.as_deref(),
                scopes: &t.scopes,
            };
            lookup::find(&engine, &wanted).await.map_err(failed)?
        };
        let username = Some(pa.account.username.clone());
        let ask = || Ask {
            peer: peer.clone(),
            account: pa.account.username.clone(),
            home_account_id: Some(pa.account.home_account_id.clone()),
            profile: profile.name.clone(),
            scopes: t.scopes.clone(),
            reason: None,
        };
        let id = pa.account.home_account_id.clone();
        if !self.agreed_to(&id, peer) {
            match self.host.ask(Question::Confirm(ask())).await {
                Decision::Yes | Decision::Unavailable => {
                    self.agreed
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .insert((id.clone(), peer.requester().name.clone()));
                }
                Decision::No => {
                    let r = Refused {
                        refusal: Refusal::Core(Error::Cancelled),
                        preface: None,
                        profile: Some(profile.name.clone()),
                    };
                    return Err((r, Outcome::Denied, username));
                }
            }
        }
        let flight_key = format!(
            "{}\n{}\n{}",
            profile.name,
            pa.account.home_account_id,
            sorted_scopes(&t.scopes)
        );
        let _turn = self.flight.turn(&flight_key).await;
        let mut signed_in = false;
        loop {
            let attempt = {
                let engine = self
                    .host
                    .engine()
                    .await
                    .map_err(|e| failed(Refused::from(Error::Config(e))))?;
                let marker = engine.store().change_marker();
                lookup::silent(&engine, &profile, &pa, &t.scopes, &options)
                    .await
                    .map(|r| (r, marker))
            };
            match attempt {
                Ok((r, marker)) => {
                    let outcome = match (signed_in, r.token_source) {
                        (true, _) => Outcome::SignedIn,
                        (false, TokenSource::Cache) => Outcome::Cache,
                        (false, TokenSource::IdentityProvider) => Outcome::Refreshed,
                    };
                    return Ok((reply_of(&r, &profile), marker, outcome));
                }
                Err(refusal) => {
                    let refused = Refused {
                        refusal,
                        preface: None,
                        profile: Some(profile.name.clone()),
                    };
                    if signed_in || !refused.needs_interaction() {
                        let (r, outcome, _) = failed(refused);
                        return Err((r, outcome, username));
                    }
                    let mut question = ask();
                    question.reason = Some(match &refused.refusal {
                        Refusal::Core(e) => e.to_string(),
                        Refusal::Usage(m) => m.clone(),
                    });
                    match self.host.ask(Question::SignIn(question)).await {
                        Decision::Yes => signed_in = true,
                        Decision::No => return Err((refused, Outcome::Denied, username)),
                        Decision::Unavailable => {
                            return Err((refused, Outcome::InteractionRequired, username))
                        }
                    }
                }
            }
        }
    }
}

/// A refusal as the client prints it (its preface first).
fn refusal_reply(r: Refused) -> Response {
    let (mut message, exit) = lookup::render(&r.refusal);
    if let Some(p) = &r.preface {
        message = format!("{p}\n{message}");
    }
    Response::Error(ErrorReply {
        kind: if r.needs_interaction() {
            ErrorKind::InteractionRequired
        } else {
            ErrorKind::Failed
        },
        message,
        exit,
        profile: r.profile.clone(),
    })
}

/// The reply for a token.
fn reply_of(r: &AuthResult, profile: &crate::profile::Profile) -> TokenReply {
    TokenReply {
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
    }
}

fn sorted_scopes(scopes: &[String]) -> String {
    let mut s: Vec<String> = scopes.iter().map(|s| s.to_ascii_lowercase()).collect();
    s.sort();
    s.join(" ")
}

/// A request's identity for the agent's memory: profile, account, scopes and tenant as
/// asked (the home is the agent's own).
fn request_key(t: &TokenRequest) -> String {
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
        sorted_scopes(&t.scopes),
        t.tenant.as_deref().unwrap_or_default()
    )
}

/// How long the activity writer gathers records before writing them in one transaction:
/// a burst of requests (kubectl runs its plugin for each of several calls) costs one
/// commit, and answers do not queue behind a commit per record for the store's lock.
const ACTIVITY_WINDOW: std::time::Duration = std::time::Duration::from_millis(50);

/// Write activity records in batches into the host's store (off the answer's path: a
/// cached answer does not wait for the disk). When the agent stops, what is pending is
/// written at once and `activity_written` is cancelled.
async fn write_activity<H: Host>(
    agent: std::sync::Weak<Agent<H>>,
    mut rx: tokio::sync::mpsc::UnboundedReceiver<Activity>,
    stop: CancellationToken,
) {
    let mut batch = Vec::new();
    loop {
        let stopping = tokio::select! {
            n = rx.recv_many(&mut batch, 256) => n == 0,
            () = stop.cancelled() => true,
        };
        if !stopping {
            tokio::select! {
                () = tokio::time::sleep(ACTIVITY_WINDOW) => {}
                () = stop.cancelled() => {}
            }
        }
        while let Ok(a) = rx.try_recv() {
            batch.push(a);
        }
        let Some(agent) = agent.upgrade() else { return };
        if !batch.is_empty() {
            let records: Vec<(i64, String)> = batch
                .drain(..)
                .filter_map(|a| Some((a.at, serde_json::to_string(&a).ok()?)))
                .collect();
            if let Ok(engine) = agent.host.engine().await {
                let now = SystemClock.now();
                if let Err(e) = engine.store().record_activity(
                    &records,
                    now - super::activity::KEEP_SECS,
                    super::activity::KEEP_ROWS,
                ) {
                    tracing::warn!(error = %e, "agent: cannot record activity");
                }
            }
        }
        if stopping || stop.is_cancelled() {
            agent.activity_written.cancel();
            return;
        }
    }
}

/// The kept activity since `since` (newest first, at most `limit`).
pub fn read_activity(ctx: &Tessera, since: i64, limit: usize) -> Vec<Activity> {
    match ctx.store().activity(since, limit) {
        Ok(rows) => rows
            .into_iter()
            .filter_map(|(_, json)| serde_json::from_str(&json).ok())
            .collect(),
        Err(e) => {
            tracing::warn!(error = %e, "cannot read the agent's activity");
            Vec::new()
        }
    }
}
