//! The Tessera agent: its protocol (here), what a token request resolves to
//! ([`lookup`], shared with the CLI's own path), serving the socket ([`serve`], hosted by
//! `tessera-cli agent` and the desktop app) and the record of who got what
//! ([`activity`]). The single-flight rule ([`SingleFlight`]) makes concurrent requests
//! for one token share one refresh.
//!
//! A frame is a 4-byte big-endian length and that many bytes of JSON, at most
//! [`MAX_FRAME`]. Every request names the protocol [`VERSION`]; an agent answers a
//! request of another version, a frame that is too long or not JSON, with an error frame
//! and goes on. The socket is `$XDG_RUNTIME_DIR/tessera/agent.sock` (folder 0700, socket
//! 0600) and the agent serves only its own user (`SO_PEERCRED`).
//!
//! A token travels in one frame only, to a process of the same user; it is never logged.

pub mod activity;
pub mod lookup;
pub mod serve;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, Weak};

use serde::{Deserialize, Serialize};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// The protocol version this build speaks.
pub const VERSION: u32 = 1;
/// The longest frame either side reads (a token response is a few kB).
pub const MAX_FRAME: usize = 1 << 20;
/// Overrides the socket's path (tests, a second agent).
pub const SOCKET_ENV: &str = "TESSERA_AGENT_SOCKET";
/// `0` (or `off`) makes the CLI open the store itself instead of asking an agent.
pub const USE_ENV: &str = "TESSERA_AGENT";

/// Where the agent listens: `$TESSERA_AGENT_SOCKET`, else
/// `$XDG_RUNTIME_DIR/tessera/agent.sock`; `None` without either.
pub fn socket_path() -> Option<PathBuf> {
    let non_empty = |k: &str| std::env::var_os(k).filter(|v| !v.is_empty());
    if let Some(p) = non_empty(SOCKET_ENV) {
        return Some(PathBuf::from(p));
    }
    non_empty("XDG_RUNTIME_DIR").map(|d| PathBuf::from(d).join("tessera").join("agent.sock"))
}

/// Whether the environment allows asking an agent (`TESSERA_AGENT` is not `0`/`off`).
pub fn allowed_by_env() -> bool {
    !matches!(
        std::env::var(USE_ENV).as_deref().map(str::trim),
        Ok("0" | "off" | "false" | "no")
    )
}

/// A request: the version, then what is asked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Request {
    pub v: u32,
    #[serde(flatten)]
    pub op: Op,
}

/// What a client asks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Op {
    /// Who the agent is and what it has served.
    Status,
    /// An access token, as `tessera-cli token` gets it. `home` is the client's Tessera
    /// home: an agent serving another one refuses (`wrong_home`).
    Token(TokenRequest),
    /// The accounts, as `tessera-cli accounts` lists them.
    Accounts(AccountsRequest),
    /// Sign an account (or all) out, as `tessera-cli logout` does.
    SignOut(SignOutRequest),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccountsRequest {
    pub home: PathBuf,
    pub profile: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignOutRequest {
    pub home: PathBuf,
    pub profile: Option<String>,
    pub account: Option<String>,
    pub all: bool,
}

/// Accounts of the store no profile lists, and the profile that would list them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Unlisted {
    pub group: crate::context::UnlistedGroup,
    pub suggested: Option<crate::profile::Profile>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AccountsReply {
    pub accounts: Vec<crate::context::ProfileAccount>,
    pub unlisted: Vec<Unlisted>,
}

/// One account signed out.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignedOut {
    pub username: String,
    pub profile: String,
    /// Cache entries removed.
    pub removed: usize,
    /// Where to end the browser session at the provider too.
    pub end_session_url: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignOutReply {
    pub signed_out: Vec<SignedOut>,
}

/// What `tessera-cli status` shows of a home's store and profiles.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoreFacts {
    /// How the store was opened (`None`: handed in, e.g. an MSAL cache file).
    pub store_info: Option<crate::keystore::StoreInfo>,
    pub store_description: String,
    pub store_file: PathBuf,
    pub accounts: usize,
    pub profiles_file: PathBuf,
    pub profiles_file_exists: bool,
    pub profiles: usize,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenRequest {
    pub home: PathBuf,
    pub profile: Option<String>,
    pub account: Option<String>,
    /// As typed (`--scope`, or Azure CLI's `--resource` made a scope).
    pub scopes: Vec<String>,
    pub min_validity_secs: i64,
    pub force_refresh: bool,
    /// Azure CLI's `--tenant`.
    pub tenant: Option<String>,
    /// Unused since the agent reads the requesting program from `/proc` (the peer's
    /// PID): a client's word for it is not trusted. Kept so version-1 clients still parse.
    #[serde(default)]
    pub program: Option<String>,
}

/// An agent's answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "result", rename_all = "snake_case")]
pub enum Response {
    Status(StatusReply),
    /// The token and what `tessera-cli token`'s output formats show of it.
    Token(Box<TokenReply>),
    Accounts(Box<AccountsReply>),
    SignedOut(SignOutReply),
    Error(ErrorReply),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatusReply {
    pub version: u32,
    pub pid: u32,
    pub home: PathBuf,
    /// Tokens handed out since the agent started.
    pub served: u64,
    /// Its store and profiles (`None` when it cannot read them now).
    #[serde(default)]
    pub store: Option<StoreFacts>,
}

/// A token response. `access_token` is the secret; everything else is what `--output`
/// shows. `Debug` leaves the token out.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
pub struct TokenReply {
    pub access_token: String,
    pub token_type: String,
    pub expires_on: i64,
    pub refresh_on: Option<i64>,
    pub scopes: Vec<String>,
    /// `cache` or `identity_provider`.
    pub token_source: String,
    pub account: crate::app::Account,
    pub id_token_claims: Option<serde_json::Map<String, serde_json::Value>>,
    pub profile: String,
    pub subscription: Option<String>,
}

impl std::fmt::Debug for TokenReply {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenReply")
            .field("access_token", &"[redacted]")
            .field("expires_on", &self.expires_on)
            .field("profile", &self.profile)
            .finish_non_exhaustive()
    }
}

/// Why a request was not answered with a token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorReply {
    pub kind: ErrorKind,
    /// What `tessera-cli` prints on stderr, as it would have without the agent.
    pub message: String,
    /// Its exit code.
    pub exit: u8,
    /// The profile the account was found in, when it was (a sign-in hint names it).
    pub profile: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    /// The request is not one this agent understands (version, shape, size).
    BadRequest,
    /// The agent serves another Tessera home: ask it not, open the store.
    WrongHome,
    /// The user has to sign in (again).
    InteractionRequired,
    /// The request failed as the CLI would have (usage, provider, store).
    Failed,
    /// The agent is stopping (its store was reset, or it was told to stop).
    Stopping,
}

impl Response {
    pub fn error(kind: ErrorKind, message: impl Into<String>, exit: u8) -> Response {
        Response::Error(ErrorReply {
            kind,
            message: message.into(),
            exit,
            profile: None,
        })
    }
}

/// Why a frame could not be read.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    #[error("the peer closed the connection")]
    Closed,
    #[error("a frame of {0} bytes is longer than {MAX_FRAME}")]
    TooLong(usize),
    #[error("the frame is not a valid message: {0}")]
    Invalid(String),
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

/// Write one frame holding `message` as JSON.
pub async fn write_frame<W: AsyncWrite + Unpin, T: Serialize>(
    w: &mut W,
    message: &T,
) -> std::io::Result<()> {
    write_body(w, &serde_json::to_vec(message)?).await
}

/// Write one frame whose JSON is already made (an answer the agent keeps ready).
pub async fn write_body<W: AsyncWrite + Unpin>(w: &mut W, body: &[u8]) -> std::io::Result<()> {
    let len = u32::try_from(body.len())
        .ok()
        .filter(|&n| n as usize <= MAX_FRAME)
        .ok_or_else(|| std::io::Error::other("message too long for a frame"))?;
    let mut frame = Vec::with_capacity(4 + body.len());
    frame.extend_from_slice(&len.to_be_bytes());
    frame.extend_from_slice(body);
    w.write_all(&frame).await?;
    w.flush().await
}

/// Read one frame's bytes (at most [`MAX_FRAME`]).
pub async fn read_frame<R: AsyncRead + Unpin>(r: &mut R) -> Result<Vec<u8>, FrameError> {
    let mut len = [0u8; 4];
    match r.read_exact(&mut len).await {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Err(FrameError::Closed),
        Err(e) => return Err(e.into()),
    }
    let len = u32::from_be_bytes(len) as usize;
    if len > MAX_FRAME {
        return Err(FrameError::TooLong(len));
    }
    let mut body = vec![0u8; len];
    r.read_exact(&mut body).await?;
    Ok(body)
}

/// A request from a frame's bytes: a clear error for another version or a bad shape.
pub fn parse_request(body: &[u8]) -> Result<Request, ErrorReply> {
    let bad = |m: String| ErrorReply {
        kind: ErrorKind::BadRequest,
        message: m,
        exit: 1,
        profile: None,
    };
    // The usual case in one pass; a request that does not fit is looked at again to say
    // why (another version, no version, an unknown op).
    if let Ok(request) = serde_json::from_slice::<Request>(body) {
        if request.v == VERSION {
            return Ok(request);
        }
    }
    let v: serde_json::Value =
        serde_json::from_slice(body).map_err(|e| bad(format!("the frame is not JSON: {e}")))?;
    match v.get("v").and_then(serde_json::Value::as_u64) {
        Some(n) if n == u64::from(VERSION) => {}
        Some(n) => {
            return Err(bad(format!(
                "protocol version {n} is not spoken here (this agent speaks {VERSION})"
            )))
        }
        None => return Err(bad("the request names no protocol version (v)".into())),
    }
    serde_json::from_value(v).map_err(|e| bad(format!("not a request this agent knows: {e}")))
}

/// Concurrent requests for the same key run one at a time: the first refreshes, the
/// others, let in after it, find its token in the cache. So sixteen clients asking for
/// an expired token cause one refresh, not sixteen.
#[derive(Debug, Default)]
pub struct SingleFlight {
    locks: Mutex<HashMap<String, Weak<tokio::sync::Mutex<()>>>>,
}

impl SingleFlight {
    /// Wait for the turn of `key`; hold the guard while getting the token.
    pub async fn turn(&self, key: &str) -> tokio::sync::OwnedMutexGuard<()> {
        let lock = {
            let mut locks = self.locks.lock().unwrap_or_else(|e| e.into_inner());
            locks.retain(|_, w| w.strong_count() > 0);
            match locks.get(key).and_then(Weak::upgrade) {
                Some(l) => l,
                None => {
                    let l = Arc::new(tokio::sync::Mutex::new(()));
                    locks.insert(key.to_string(), Arc::downgrade(&l));
                    l
                }
            }
        };
        lock.lock_owned().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn frames_round_trip_and_bad_ones_are_refused() {
        let req = Request {
            v: VERSION,
            op: Op::Token(TokenRequest {
                home: "/h".into(),
                profile: Some("Sandbox".into()),
                account: Some("alice@contoso.example".into()),
                scopes: vec!["User.Read".into()],
                min_validity_secs: 300,
                force_refresh: false,
                tenant: None,
                program: Some("kubectl".into()),
            }),
        };
        let mut buf = Vec::new();
        write_frame(&mut buf, &req).await.unwrap();
        let body = read_frame(&mut buf.as_slice()).await.unwrap();
        assert_eq!(parse_request(&body).unwrap(), req);

        let other = parse_request(br#"{"v":2,"op":"status"}"#).unwrap_err();
        assert_eq!(other.kind, ErrorKind::BadRequest);
        assert!(other.message.contains("version 2"), "{}", other.message);
        for garbage in [
            &b"not json"[..],
            br#"{"op":"status"}"#,
            br#"{"v":1,"op":"fly"}"#,
        ] {
            assert_eq!(
                parse_request(garbage).unwrap_err().kind,
                ErrorKind::BadRequest
            );
        }
        let mut long = (MAX_FRAME as u32 + 1).to_be_bytes().to_vec();
        long.extend_from_slice(b"{}");
        assert!(matches!(
            read_frame(&mut long.as_slice()).await,
            Err(FrameError::TooLong(_))
        ));
        assert!(matches!(
            read_frame(&mut &b"\0\0"[..]).await,
            Err(FrameError::Closed)
        ));
    }

    #[test]
    fn a_token_reply_does_not_print_its_token() {
        let r = TokenReply {
            access_token: "eyJsecret".into(),
            token_type: "Bearer".into(),
            expires_on: 1,
            refresh_on: None,
            scopes: vec![],
            token_source: "cache".into(),
            account: crate::app::Account {
                home_account_id: "h".into(),
                environment: "e".into(),
                realm: "r".into(),
                local_account_id: "l".into(),
                username: "u".into(),
                name: None,
                authority_type: "MSSTS".into(),
            },
            id_token_claims: None,
            profile: "p".into(),
            subscription: None,
        };
        assert!(!format!("{r:?}").contains("eyJsecret"));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn one_key_runs_one_at_a_time_and_other_keys_do_not_wait() {
        let flight = Arc::new(SingleFlight::default());
        let inside = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let most = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let mut tasks = Vec::new();
        for _ in 0..16 {
            let (flight, inside, most) = (flight.clone(), inside.clone(), most.clone());
            tasks.push(tokio::spawn(async move {
                let _turn = flight.turn("alice|User.Read").await;
                let now = inside.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1;
                most.fetch_max(now, std::sync::atomic::Ordering::SeqCst);
                tokio::time::sleep(std::time::Duration::from_millis(2)).await;
                inside.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
            }));
        }
        let held = flight.turn("bob|User.Read").await;
        for t in tasks {
            t.await.unwrap();
        }
        drop(held);
        assert_eq!(most.load(std::sync::atomic::Ordering::SeqCst), 1);
    }
}
