//! One error type for the engine. Each variant says what the user can do about it; the
//! CLI maps variants to its documented exit codes and the app shows `Display` as is.

use std::fmt;

use crate::http::TransportError;

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The user has to sign in (again): no account, no usable refresh token, consent or a
    /// claims challenge. Refresh tokens are kept, as MSAL does.
    #[error("interaction required: {reason}{}", provider_suffix(provider.as_deref()))]
    InteractionRequired {
        reason: InteractionReason,
        provider: Option<Box<ProviderError>>,
    },

    /// The user closed the sign-in window, pressed Cancel or declined consent.
    #[error("sign-in was cancelled")]
    Cancelled,

    /// The identity provider answered with an OAuth 2.0 error.
    #[error("{0}")]
    Provider(Box<ProviderError>),

    /// The provider could not be reached.
    #[error("network error: {0}")]
    Transport(#[from] TransportError),

    /// The provider answered with something that is not a valid protocol response
    /// (an HTML error page, a 5xx, malformed JSON, missing fields). The body is not kept:
    /// `detail` says what came back (a JSON parse error may quote one value of it).
    #[error("{what}: {detail}")]
    BadResponse {
        what: &'static str,
        detail: String,
        status: Option<u16>,
        retry_after: Option<u64>,
    },

    /// A security check failed (state, nonce, issuer, audience, expiry).
    #[error("security check failed: {0}")]
    Validation(String),

    /// A profile, authority or argument is not usable.
    #[error("{0}")]
    Config(String),

    #[error("token store: {0}")]
    Store(#[from] StoreError),
}

impl Error {
    pub fn interaction(reason: InteractionReason) -> Self {
        Error::InteractionRequired {
            reason,
            provider: None,
        }
    }

    /// The CLI's exit code contract: 3 interaction required, 4 provider or network,
    /// 5 store, 2 usage/configuration.
    pub fn exit_code(&self) -> i32 {
        match self {
            Error::InteractionRequired { .. } | Error::Cancelled => 3,
            Error::Provider(_)
            | Error::Transport(_)
            | Error::BadResponse { .. }
            | Error::Validation(_) => 4,
            Error::Store(_) => 5,
            Error::Config(_) => 2,
        }
    }

    /// The provider's own error, when there is one (for `error_codes`, correlation id...).
    pub fn provider_error(&self) -> Option<&ProviderError> {
        match self {
            Error::Provider(p) => Some(p),
            Error::InteractionRequired {
                provider: Some(p), ..
            } => Some(p),
            _ => None,
        }
    }
}

/// The provider's own code and first description line, so an error is never re-labelled
/// (e.g. AADSTS50020 "user not in tenant" must not read as "token expired").
fn provider_suffix(p: Option<&ProviderError>) -> String {
    p.map(|p| format!(" (the provider said {})", p.summary()))
        .unwrap_or_default()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum InteractionReason {
    /// No cached account matches.
    NoAccount,
    /// The account has no refresh token for this client (or its family).
    NoRefreshToken,
    /// The refresh token was rejected (`invalid_grant`: expired, revoked, password changed).
    InvalidGrant,
    /// The provider asked for interaction (`interaction_required`, MFA, `login_required`).
    InteractionRequired,
    /// The user or an admin has to consent to the scopes (`consent_required`).
    ConsentRequired,
    /// A claims challenge must be satisfied interactively.
    ClaimsChallenge,
    /// The device code expired before the user finished signing in.
    DeviceCodeExpired,
}

impl fmt::Display for InteractionReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            InteractionReason::NoAccount => "no signed-in account matches",
            InteractionReason::NoRefreshToken => "no refresh token is cached for this account",
            InteractionReason::InvalidGrant => "the provider refused the refresh token",
            InteractionReason::InteractionRequired => {
                "the identity provider requires the user to sign in again"
            }
            InteractionReason::ConsentRequired => "consent is required for the requested scopes",
            InteractionReason::ClaimsChallenge => "the identity provider sent a claims challenge",
            InteractionReason::DeviceCodeExpired => {
                "the device code expired before the sign-in was completed"
            }
        })
    }
}

/// An OAuth 2.0 error response, with Entra's extra fields: the fields named here are
/// kept as the provider sent them, the rest of the body is dropped. (Bodies are capped by
/// the HTTP client, 4 MiB.)
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub struct ProviderError {
    pub error: String,
    #[serde(default)]
    pub error_description: Option<String>,
    #[serde(default)]
    pub error_codes: Vec<i64>,
    #[serde(default)]
    pub suberror: Option<String>,
    /// A claims challenge (JSON string) to pass back with the next interactive request.
    #[serde(default)]
    pub claims: Option<String>,
    #[serde(default)]
    pub correlation_id: Option<String>,
    #[serde(default)]
    pub trace_id: Option<String>,
    #[serde(default)]
    pub timestamp: Option<String>,
    #[serde(default)]
    pub error_uri: Option<String>,
    #[serde(skip)]
    pub status: Option<u16>,
}

impl ProviderError {
    /// The provider's code and the first line of its description ("invalid_grant:
    /// AADSTS50020: ..."), without Entra's trace lines.
    pub fn summary(&self) -> String {
        let first = self
            .error_description
            .as_deref()
            .and_then(|d| d.lines().next())
            .map(str::trim)
            .unwrap_or_default();
        if first.is_empty() {
            self.error.clone()
        } else {
            format!("{}: {first}", self.error)
        }
    }
}

impl fmt::Display for ProviderError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "the identity provider returned {}", self.error)?;
        if let Some(d) = &self.error_description {
            // Entra appends "\r\nTrace ID: ..." lines; the first line is the message.
            let first = d.lines().next().unwrap_or_default().trim();
            if !first.is_empty() {
                write!(f, ": {first}")?;
            }
        }
        if let Some(c) = &self.correlation_id {
            write!(f, " (correlation id {c})")?;
        }
        Ok(())
    }
}

/// Errors from a token store backend.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot open the store at {path}: {reason}")]
    Open { path: String, reason: String },
    #[error(
        "the store file {path} is corrupt or not a Tessera store; it was moved aside to {moved_to}"
    )]
    Corrupt { path: String, moved_to: String },
    #[error("{0}")]
    Io(String),
    #[error("{0}")]
    Database(String),
    #[error("cannot decrypt stored secrets: {0}")]
    Crypto(String),
    #[error("{0}")]
    Format(String),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invalid_grant_keeps_the_providers_code_and_description() {
        let e = Error::InteractionRequired {
            reason: InteractionReason::InvalidGrant,
            provider: Some(Box::new(ProviderError {
                error: "invalid_grant".into(),
                error_description: Some(
                    "AADSTS50020: User account carol from identity provider x does not exist in tenant Contoso.\r\nTrace ID: t".into(),
                ),
                ..Default::default()
            })),
        };
        let m = e.to_string();
        assert!(m.contains("the provider refused the refresh token"), "{m}");
        assert!(
            m.contains("invalid_grant: AADSTS50020: User account carol"),
            "{m}"
        );
        assert!(!m.contains("expired or revoked"), "{m}");
        assert!(!m.contains("Trace ID"), "{m}");
    }
}
