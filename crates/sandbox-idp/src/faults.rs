//! Fault switches.

use serde::{Deserialize, Serialize};
use std::sync::Mutex;

/// Fault switches and tunables. All off by default; every field may be omitted in JSON.
///
/// Set at start (`SandboxConfig::faults`, command-line flags), at run time with
/// `SandboxHandle::set_faults` or `POST /_sandbox/faults` (replaces all), read with
/// `GET /_sandbox/faults`, reset with `DELETE /_sandbox/faults`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Faults {
    /// Delay every response (except `/_sandbox/faults`) by this many milliseconds.
    pub latency_ms: u64,
    /// The provider is down: every endpoint but `/_sandbox/*` answers 503 with a plain
    /// text body, as a load balancer with no backend does.
    pub unavailable: bool,
    /// The token endpoint answers with this status (e.g. 500 or 503), a `Retry-After` header
    /// and a short Entra-style JSON body.
    pub http_status: Option<u16>,
    /// `Retry-After` seconds sent with `http_status` (1 when unset).
    pub retry_after_secs: Option<u64>,
    /// The token endpoint answers 200 with truncated JSON.
    pub malformed_json: bool,
    /// The token endpoint answers 502 with a proxy's HTML page.
    pub html_error_page: bool,
    /// Refresh-token grants fail with `invalid_grant` (AADSTS700082, expired by inactivity).
    pub refresh_invalid_grant: bool,
    /// Refresh-token grants fail with `interaction_required` (AADSTS50076), a `suberror`
    /// and a `claims` challenge.
    pub interaction_required: bool,
    /// ID tokens carry an issuer that is not the tenant's.
    pub wrong_issuer: bool,
    /// ID tokens carry a nonce other than the one sent to the authorize endpoint.
    pub wrong_nonce: bool,
    /// Issued access and ID tokens are already expired (`exp` in the past; the response's
    /// `expires_in` is unchanged, as with a badly skewed server clock).
    pub expired_tokens: bool,
    /// Access and ID token lifetime in seconds (3600 when unset).
    pub token_lifetime_secs: Option<u64>,
    /// Emit `refresh_in` (seconds) in token responses.
    pub refresh_in_secs: Option<u64>,
    /// A refresh token that was already used is rejected (`invalid_grant`, AADSTS70008).
    /// Otherwise old refresh tokens stay valid after rotation, as in Entra.
    pub strict_rotation: bool,
    /// Device-code polling interval in seconds (5 when unset; 0 allows polling at any rate).
    pub device_code_interval_secs: Option<u64>,
    /// Device-code lifetime in seconds (900 when unset).
    pub device_code_expires_secs: Option<u64>,
    /// When set, the token-endpoint faults (`http_status`, `malformed_json`, `html_error_page`,
    /// `refresh_invalid_grant`, `interaction_required`, `wrong_issuer`, `wrong_nonce`,
    /// `expired_tokens`) affect only this many more token responses; each affected response
    /// decrements it, and at 0 the token endpoint behaves normally.
    pub fail_count: Option<u32>,
    /// Claims added to (or replacing those of) every issued access and ID token, for
    /// tests of how clients show hostile claim values.
    pub extra_claims: Option<serde_json::Map<String, serde_json::Value>>,
    /// The authorize endpoint answers with a page that tries to call a desktop app's
    /// Tauri commands and plugins from inside its sign-in window, and reports what
    /// happened to `POST /_sandbox/probe` (read back with `GET /_sandbox/probe`).
    pub ipc_probe_page: bool,
    /// The authorize endpoint answers with a page that offers downloads, goes to the
    /// redirect URI with a forged `state` and with none, tries to take the sign-in window to
    /// places a sign-in page has no business with (remote http, file:, data:, about:config,
    /// an app scheme), reports after each try whether it is still shown (`POST
    /// /_sandbox/probe`, kind `navigation`), asks for Enter on a `target=_blank` link that
    /// also calls `window.open` (report `new window: press Enter`), then goes to a page of
    /// another origin (`localhost` instead of `127.0.0.1`).
    pub hostile_navigation_page: bool,
    /// Authorization responses (codes and errors) carry a wrong `iss` (RFC 9207), or none,
    /// although discovery says they always carry the issuer's.
    pub response_iss: Option<ResponseIss>,
}

/// What the `response_iss` switch does to the authorization response's `iss`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum ResponseIss {
    /// `https://sts.sandbox.invalid/{tid}/v2.0`: another issuer.
    Wrong,
    /// No `iss` parameter.
    Missing,
}

impl Faults {
    /// Access/ID token lifetime in seconds.
    pub fn token_lifetime(&self) -> u64 {
        self.token_lifetime_secs.unwrap_or(3600)
    }

    /// Device-code polling interval in seconds.
    pub fn device_interval(&self) -> u64 {
        self.device_code_interval_secs.unwrap_or(5)
    }

    /// Device-code lifetime in seconds.
    pub fn device_expires(&self) -> u64 {
        self.device_code_expires_secs.unwrap_or(900)
    }
}

/// The fault state of one token request: a snapshot plus the shared `fail_count` budget.
/// The first fault that fires in a request spends one unit of `fail_count`; later ones in the
/// same request are free; once the budget is spent, no fault fires.
pub struct FaultCtx<'a> {
    pub snapshot: Faults,
    shared: &'a Mutex<Faults>,
    state: std::cell::Cell<Budget>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Budget {
    Unchecked,
    Granted,
    Denied,
}

impl<'a> FaultCtx<'a> {
    pub fn new(shared: &'a Mutex<Faults>) -> FaultCtx<'a> {
        let snapshot = shared.lock().map(|f| f.clone()).unwrap_or_default();
        FaultCtx {
            snapshot,
            shared,
            state: std::cell::Cell::new(Budget::Unchecked),
        }
    }

    /// Whether a fault whose switch is `on` fires now.
    pub fn fire(&self, on: bool) -> bool {
        if !on {
            return false;
        }
        match self.state.get() {
            Budget::Granted => true,
            Budget::Denied => false,
            Budget::Unchecked => {
                let granted = match self.shared.lock() {
                    Ok(mut f) => match f.fail_count {
                        None => true,
                        Some(0) => false,
                        Some(n) => {
                            f.fail_count = Some(n - 1);
                            true
                        }
                    },
                    Err(_) => false,
                };
                self.state.set(if granted {
                    Budget::Granted
                } else {
                    Budget::Denied
                });
                granted
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_may_omit_fields_and_rejects_unknown_ones() {
        let f: Faults = serde_json::from_str(r#"{"http_status":503}"#).unwrap();
        assert_eq!(f.http_status, Some(503));
        assert_eq!(f.token_lifetime(), 3600);
        assert!(serde_json::from_str::<Faults>(r#"{"http_stauts":503}"#).is_err());
        let f: Faults = serde_json::from_str(r#"{"response_iss":"missing"}"#).unwrap();
        assert_eq!(f.response_iss, Some(ResponseIss::Missing));
    }

    #[test]
    fn fail_count_limits_how_many_requests_a_fault_affects() {
        let shared = Mutex::new(Faults {
            malformed_json: true,
            wrong_nonce: true,
            fail_count: Some(1),
            ..Faults::default()
        });
        let first = FaultCtx::new(&shared);
        assert!(first.fire(first.snapshot.malformed_json));
        assert!(
            first.fire(first.snapshot.wrong_nonce),
            "same request: still on"
        );
        let second = FaultCtx::new(&shared);
        assert!(!second.fire(second.snapshot.malformed_json));
        assert_eq!(shared.lock().unwrap().fail_count, Some(0));
        let unlimited = Mutex::new(Faults {
            malformed_json: true,
            ..Faults::default()
        });
        for _ in 0..3 {
            assert!(FaultCtx::new(&unlimited).fire(true));
        }
    }
}
