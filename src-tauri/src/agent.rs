//! The app as the Tessera agent: while it runs it serves tokens on the user's socket
//! (`tessera_core::agent::serve`), and it is the agent's face. When a program's request
//! needs a sign-in, or the account asks first, the main window shows the question
//! (`agent:ask`); **Allow** (sign in, or hand out) or **Deny**, or no answer within the
//! setting `agent_prompt_secs`, ends it. Every answer is recorded and the window's
//! Activity list shows it (`agent:activity`).
//!
//! Invariants: no token reaches the window (questions and activity name the program,
//! the account and the scopes only); the engine is not held while the user is asked; the
//! agent stops (its socket removed, waiting requests answered) when the app exits.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use tauri::{AppHandle, Emitter, Manager, Runtime};
use tessera_core::agent::activity::Activity;
use tessera_core::agent::serve::{self, Agent, Decision, Engine, Host, Question};
use tokio::sync::oneshot;

use crate::base::lock;
use crate::error::{AppError, AppResult};
use crate::signin::{self, SignInState};
use crate::state::AppState;
use crate::views::{
    AgentAnswer, AgentAskKind, AgentAskView, AgentStatusView, SignInStatus, EVENT_ACCOUNTS_CHANGED,
    EVENT_AGENT_ACTIVITY, EVENT_AGENT_ASK, EVENT_AGENT_ASK_CLOSED,
};

/// The agent feature's state (managed by Tauri as its own value): the questions waiting
/// for the user, and whether the app serves.
#[derive(Default)]
pub struct AgentState {
    /// Whether this app serves at all (the desktop app does; tests of the commands not).
    enabled: bool,
    asks: Mutex<HashMap<u64, oneshot::Sender<AgentAnswer>>>,
    next_id: AtomicU64,
    status: Mutex<Option<AgentStatusView>>,
    stop: Mutex<Option<tokio_util::sync::CancellationToken>>,
    /// A program has got a token from this app (this session, or in the recorded
    /// activity): closing the window then keeps the app in the tray by default.
    used: std::sync::atomic::AtomicBool,
}

impl AgentState {
    /// Serve as the agent once the store is open.
    pub fn on() -> Self {
        AgentState {
            enabled: true,
            ..Default::default()
        }
    }

    /// Do not serve (the agent's commands still answer).
    pub fn off() -> Self {
        AgentState::default()
    }

    /// Whether a program has got a token from this app.
    pub fn used(&self) -> bool {
        self.used.load(Ordering::Relaxed)
    }

    pub fn status(&self) -> AgentStatusView {
        lock(&self.status).clone().unwrap_or(AgentStatusView {
            serving: false,
            socket: None,
            message: Some("The agent starts once the token store is open.".into()),
        })
    }

    /// Give the user's answer to question `id`; false when it is no longer waiting.
    pub fn answer(&self, id: u64, answer: AgentAnswer) -> bool {
        match lock(&self.asks).remove(&id) {
            Some(tx) => tx.send(answer).is_ok(),
            None => false,
        }
    }
}

struct AppHost<R: Runtime> {
    app: AppHandle<R>,
    profiles: serve::ProfilesWatch,
}

#[async_trait::async_trait]
impl<R: Runtime> Host for AppHost<R> {
    async fn engine(&self) -> Result<Engine<'_>, String> {
        let state: &AppState = self.app.state::<AppState>().inner();
        // profiles.toml edited by another process (`tessera-cli profiles add`): read it
        // again, and the window lists accounts anew.
        let changed = state
            .with(|t| Ok(self.profiles.changed(t)))
            .await
            .unwrap_or(false);
        if changed {
            let _ = state
                .with_mut(|t| {
                    serve::ProfilesWatch::reload(t);
                    Ok(())
                })
                .await;
            let _ = self.app.emit_to("main", EVENT_ACCOUNTS_CHANGED, ());
        }
        let guard = state.read().await.map_err(|e| e.to_string())?;
        tokio::sync::RwLockReadGuard::try_map(guard, |r| r.as_ref().ok())
            .map(|g| Box::new(g) as Engine<'_>)
            .map_err(|_| "the token store is not open".to_string())
    }

    async fn ask(&self, question: Question) -> Decision {
        let (kind, ask) = match question {
            Question::SignIn(a) => (AgentAskKind::SignIn, a),
            Question::Confirm(a) => (AgentAskKind::Confirm, a),
        };
        let agent = self.app.state::<AgentState>();
        let timeout = self.app.state::<AppState>().settings().agent_prompt_secs;
        let id = agent.next_id.fetch_add(1, Ordering::Relaxed) + 1;
        let (tx, rx) = oneshot::channel();
        lock(&agent.asks).insert(id, tx);
        let view = AgentAskView {
            id,
            kind,
            program: ask.peer.describe(),
            pid: ask.peer.requester().pid,
            account: ask.account.clone(),
            profile: ask.profile.clone(),
            scopes: ask.scopes.clone(),
            reason: ask.reason.clone(),
            timeout_secs: timeout,
        };
        tracing::info!(id, kind = ?kind, program = %ask.peer.requester().name, "agent: asking the user");
        if let Some(w) = self.app.get_webview_window("main") {
            let _ = w.show();
            let _ = w.unminimize();
            let _ = w.set_focus();
        }
        let _ = self.app.emit_to("main", EVENT_AGENT_ASK, view);
        let answer = tokio::time::timeout(Duration::from_secs(timeout), rx).await;
        lock(&agent.asks).remove(&id);
        let _ = self.app.emit_to("main", EVENT_AGENT_ASK_CLOSED, id);
        match (answer, kind) {
            (Ok(Ok(AgentAnswer::Allow)), AgentAskKind::Confirm) => Decision::Yes,
            (Ok(Ok(AgentAnswer::Allow)), AgentAskKind::SignIn) => self.sign_in(&ask).await,
            _ => Decision::No,
        }
    }

    fn confirm_first(&self, home_account_id: &str) -> bool {
        self.app
            .state::<AppState>()
            .settings()
            .confirm_accounts
            .iter()
            .any(|a| a == home_account_id)
    }

    fn recorded(&self, activity: &Activity) {
        if activity.outcome.handed_out() {
            self.app
                .state::<AgentState>()
                .used
                .store(true, Ordering::Relaxed);
        }
        let _ = self.app.emit_to("main", EVENT_AGENT_ACTIVITY, ());
    }
}

impl<R: Runtime> AppHost<R> {
    /// Sign the account in through the sign-in window (its name as the login hint) and
    /// wait for the sign-in to end.
    async fn sign_in(&self, ask: &serve::Ask) -> Decision {
        let state = self.app.state::<AppState>();
        let (profile, pca) = match state.profile_app(&ask.profile).await {
            Ok(p) => p,
            Err(e) => {
                tracing::warn!(error = %e, "agent: cannot sign in");
                return Decision::No;
            }
        };
        let typed = (!ask.scopes.is_empty()).then(|| ask.scopes.join(" "));
        let params = match signin::params(&profile, typed.as_deref(), Some(ask.account.clone())) {
            Ok(p) => p,
            Err(e) => {
                tracing::warn!(error = %e, "agent: cannot sign in");
                return Decision::No;
            }
        };
        let mut finished = self.app.state::<SignInState>().watch_finished();
        finished.mark_unchanged();
        if let Err(e) = signin::start_embedded(&self.app, profile, pca, params).await {
            tracing::warn!(error = %e, "agent: cannot open the sign-in window");
            return Decision::No;
        }
        if finished.changed().await.is_err() {
            return Decision::No;
        }
        let status = finished.borrow().1;
        match status {
            Some(SignInStatus::Added) => Decision::Yes,
            _ => Decision::No,
        }
    }
}

/// Serve as the agent (after the store opened), unless `TESSERA_AGENT=0` or another agent
/// answers on the socket; the status says which.
pub async fn start<R: Runtime>(app: &AppHandle<R>) {
    let agent_state = app.state::<AgentState>();
    let set = |serving: bool, socket: Option<&PathBuf>, message: Option<String>| {
        *lock(&agent_state.status) = Some(AgentStatusView {
            serving,
            socket: socket.map(|s| s.display().to_string()),
            message,
        });
    };
    if !agent_state.enabled {
        set(
            false,
            None,
            Some("This app does not serve as the agent.".into()),
        );
        return;
    }
    if !tessera_core::agent::allowed_by_env() {
        set(
            false,
            None,
            Some(format!(
                "The agent is off ({}=0).",
                tessera_core::agent::USE_ENV
            )),
        );
        return;
    }
    let Some(socket) = tessera_core::agent::socket_path() else {
        set(
            false,
            None,
            Some(serve::StartError::NoSocketPath.to_string()),
        );
        return;
    };
    let listener = match serve::bind(&socket).await {
        Ok(l) => l,
        Err(e) => {
            tracing::warn!(error = %e, "agent: not serving");
            set(false, Some(&socket), Some(e.to_string()));
            return;
        }
    };
    let host = AppHost {
        app: app.clone(),
        profiles: serve::ProfilesWatch::default(),
    };
    // Remember the profiles file as the app loaded it.
    let _ = app
        .state::<AppState>()
        .with(|t| Ok(host.profiles.changed(t)))
        .await;
    let agent = match Agent::start(host).await {
        Ok(a) => a,
        Err(e) => {
            let _ = std::fs::remove_file(&socket);
            set(false, Some(&socket), Some(e.to_string()));
            return;
        }
    };
    *lock(&agent_state.stop) = Some(agent.stopped());
    if let Ok(list) = activity(&app.state::<AppState>(), None).await {
        if list.iter().any(|a| a.outcome.handed_out()) {
            agent_state.used.store(true, Ordering::Relaxed);
        }
    }
    set(true, Some(&socket), None);
    tracing::info!(socket = %socket.display(), "agent: serving");
    let status_app = app.clone();
    tauri::async_runtime::spawn(async move {
        agent.serve(listener, socket).await;
        let st = status_app.state::<AgentState>();
        *lock(&st.status) = Some(AgentStatusView {
            serving: false,
            socket: None,
            message: Some("The agent stopped (the token store was reset).".into()),
        });
    });
}

/// The tray icon's id (`tray.rs` makes it).
pub const TRAY_ID: &str = "tessera";

/// Whether closing the main window keeps the app running: the `background` setting, else
/// whether a program has got a token from this app (now or in the recorded activity),
/// and only while it serves as the agent with a tray icon.
pub fn keeps_running<R: Runtime>(app: &AppHandle<R>) -> bool {
    let agent = app.state::<AgentState>();
    if !agent.status().serving || app.tray_by_id(TRAY_ID).is_none() {
        return false;
    }
    app.state::<AppState>()
        .settings()
        .background
        .unwrap_or_else(|| agent.used())
}

/// Stop serving (the app exits): waiting requests are answered, the socket removed.
pub fn stop_on_exit<R: Runtime>(app: &AppHandle<R>) {
    if let Some(state) = app.try_state::<AgentState>() {
        if let Some(stop) = lock(&state.stop).take() {
            stop.cancel();
        }
        // The socket is removed by the serving task; at exit it may not run again.
        let serving = lock(&state.status)
            .as_ref()
            .filter(|s| s.serving)
            .and_then(|s| s.socket.clone());
        if let Some(socket) = serving {
            let _ = std::fs::remove_file(socket);
            tracing::info!("agent: stopped");
        }
    }
}

/// The recorded activity (newest first), of one account when `account` is given.
pub async fn activity(state: &AppState, account: Option<&str>) -> AppResult<Vec<Activity>> {
    let since = state.now() - tessera_core::agent::activity::KEEP_SECS;
    let all = state
        .with(|t| Ok(serve::read_activity(t, since, 1000)))
        .await?;
    Ok(match account {
        Some(a) => all
            .into_iter()
            .filter(|x| x.account.eq_ignore_ascii_case(a))
            .collect(),
        None => all,
    })
}

/// Turn "ask before handing out a token" on or off for an account.
pub fn set_confirm_first(state: &AppState, home_account_id: &str, on: bool) -> AppResult<bool> {
    let mut settings = state.settings();
    settings.confirm_accounts.retain(|a| a != home_account_id);
    if on {
        settings.confirm_accounts.push(home_account_id.to_string());
    }
    state.save_settings(settings)?;
    Ok(on)
}

/// Why an answer was not taken.
pub fn not_waiting() -> AppError {
    AppError::NotFound("That question is no longer waiting (it was answered or timed out).".into())
}
