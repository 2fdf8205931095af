//! Server state: signing key, faults, and the grants it has issued.
//!
//! Codes, refresh tokens, device codes and session ids are kept only as SHA-256 digests.

use crate::data::TenantSel;
use crate::faults::Faults;
use crate::jwt::Keys;
use crate::util::now_secs;
use std::collections::{HashMap, HashSet};
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

/// Lifetime of an authorization code (Entra: about 10 minutes).
pub const CODE_LIFETIME_SECS: i64 = 600;
/// How long the sign-in pages keep a half-finished sign-in (password typed, consent pending).
pub const TICKET_LIFETIME_SECS: i64 = 900;
/// How long an SSO session lasts.
pub const SESSION_LIFETIME_SECS: i64 = 12 * 3600;

pub struct AppState {
    /// `http://127.0.0.1:PORT/`.
    pub base: url::Url,
    /// `127.0.0.1:PORT`.
    pub host: String,
    pub keys: Arc<Keys>,
    pub family: Vec<String>,
    pub faults: Mutex<Faults>,
    store: Mutex<Store>,
    /// What the `ipc_probe_page` and `hostile_navigation_page` reported, oldest first.
    pub probe_reports: Mutex<Vec<serde_json::Value>>,
    /// Requests the token endpoint received.
    pub token_requests: AtomicU64,
}

impl AppState {
    pub fn new(base: url::Url, keys: Arc<Keys>, family: Vec<String>, faults: Faults) -> AppState {
        let host = match base.port() {
            Some(p) => format!("{}:{p}", base.host_str().unwrap_or("127.0.0.1")),
            None => base.host_str().unwrap_or("127.0.0.1").to_string(),
        };
        AppState {
            base,
            host,
            keys,
            family,
            faults: Mutex::new(faults),
            store: Mutex::new(Store::default()),
            probe_reports: Mutex::new(Vec::new()),
            token_requests: AtomicU64::new(0),
        }
    }

    /// Locks the grant store (recovering from a poisoned lock: the data stays consistent
    /// because every critical section is a few map operations).
    pub fn store(&self) -> MutexGuard<'_, Store> {
        self.store.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn faults(&self) -> Faults {
        self.faults
            .lock()
            .map(|f| f.clone())
            .unwrap_or_else(|e| e.into_inner().clone())
    }

    pub fn set_faults(&self, f: Faults) {
        match self.faults.lock() {
            Ok(mut g) => *g = f,
            Err(e) => *e.into_inner() = f,
        }
    }

    pub fn is_family(&self, client_id: &str) -> bool {
        self.family
            .iter()
            .any(|c| c.eq_ignore_ascii_case(client_id))
    }

    /// `http://127.0.0.1:PORT/{tid}/v2.0`.
    pub fn issuer(&self, tenant_id: &str) -> String {
        format!("{}{}/v2.0", self.base, tenant_id)
    }
}

/// The authorize request's parameters, as validated.
#[derive(Debug, Clone)]
pub struct AuthRequest {
    pub tenant_segment: String,
    pub tenant: TenantSel,
    pub client_id: String,
    pub redirect_uri: url::Url,
    /// The redirect URI exactly as sent (the token request must repeat it verbatim).
    pub redirect_uri_raw: String,
    pub response_mode: ResponseMode,
    pub scope: String,
    pub state: Option<String>,
    pub nonce: Option<String>,
    pub code_challenge: String,
    pub prompt: Option<String>,
    pub login_hint: Option<String>,
    pub domain_hint: Option<String>,
    pub claims: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResponseMode {
    Query,
    Fragment,
    FormPost,
}

pub struct AuthCode {
    pub client_id: String,
    pub redirect_uri: String,
    pub user_oid: String,
    pub scope: String,
    pub nonce: Option<String>,
    pub code_challenge: String,
    pub issued_at: i64,
    pub redeemed: bool,
}

pub struct RefreshRecord {
    pub client_id: String,
    pub user_oid: String,
    pub scope: String,
    pub issued_at: i64,
    pub used: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeviceStatus {
    Pending,
    Approved(String),
    Denied,
    Redeemed,
}

pub struct DeviceFlow {
    pub user_code: String,
    pub client_id: String,
    pub scope: String,
    pub tenant: TenantSel,
    pub expires_at: i64,
    pub interval: u64,
    pub last_poll: Option<Instant>,
    pub status: DeviceStatus,
}

pub struct Session {
    pub user_oid: String,
    pub created: i64,
}

/// What a half-finished sign-in is for.
#[derive(Clone)]
pub enum PendingKind {
    Authorize(Box<AuthRequest>),
    /// Keyed by the device code's digest.
    Device(String),
}

pub struct Pending {
    pub user_oid: String,
    pub kind: PendingKind,
    pub created: i64,
}

#[derive(Default)]
pub struct Store {
    pub codes: HashMap<String, AuthCode>,
    pub refresh_tokens: HashMap<String, RefreshRecord>,
    pub device_flows: HashMap<String, DeviceFlow>,
    pub sessions: HashMap<String, Session>,
    pub pending: HashMap<String, Pending>,
    pub consents: Consents,
}

impl Store {
    /// Drops expired codes, device flows and tickets so that memory stays bounded.
    pub fn purge(&mut self) {
        let now = now_secs();
        self.codes
            .retain(|_, c| now - c.issued_at < CODE_LIFETIME_SECS * 3);
        self.device_flows.retain(|_, d| now < d.expires_at + 3600);
        self.pending
            .retain(|_, p| now - p.created < TICKET_LIFETIME_SECS);
    }

    /// The device flow whose user code is `user_code` (dashes, spaces and case ignored).
    pub fn device_by_user_code(&mut self, user_code: &str) -> Option<(String, &mut DeviceFlow)> {
        let norm = normalize_user_code(user_code);
        if norm.is_empty() {
            return None;
        }
        self.device_flows
            .iter_mut()
            .find(|(_, d)| normalize_user_code(&d.user_code) == norm)
            .map(|(k, d)| (k.clone(), d))
    }

    pub fn consented(&self, user_oid: &str, client_id: &str, key: &str) -> bool {
        consented(&self.consents, user_oid, client_id, key)
    }
}

/// Consent records: (user oid, client id, consent key).
pub type Consents = HashSet<(String, String, String)>;

pub fn consented(consents: &Consents, user_oid: &str, client_id: &str, key: &str) -> bool {
    consents.contains(&(user_oid.to_string(), client_id.to_string(), key.to_string()))
}

pub fn normalize_user_code(s: &str) -> String {
    s.chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .map(|c| c.to_ascii_uppercase())
        .collect()
}
