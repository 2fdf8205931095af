//! The error every command returns. It reaches the webview as
//! `{ "kind": "...", "message": "...", "reason": "..." }`: `message` is written for the
//! user (the engine's `Display`, with the provider's own description when there is one),
//! `kind` lets the UI react (for example offer "Sign in again"), `reason` is set for
//! `interaction_required` only. No variant carries a token, code or verifier.

use serde::ser::SerializeStruct;
use serde::{Serialize, Serializer};
use tessera_core::error::{Error as CoreError, InteractionReason};

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// The user has to sign in (again) to get a token.
    #[error("{message}")]
    InteractionRequired {
        reason: InteractionReason,
        message: String,
    },
    /// The user closed the sign-in window, pressed Cancel or declined.
    #[error("Sign-in cancelled.")]
    Cancelled,
    /// The identity provider refused (its error code and description are in the message).
    #[error("{0}")]
    Provider(String),
    /// The identity provider could not be reached or answered nonsense.
    #[error("{0}")]
    Network(String),
    /// Bad input from the user: a profile field, a scope, a setting.
    #[error("{0}")]
    Invalid(String),
    /// The account or profile does not exist (any more).
    #[error("{0}")]
    NotFound(String),
    /// Another sign-in is in progress.
    #[error("{0}")]
    Busy(String),
    /// The token store or a file could not be read or written.
    #[error("{0}")]
    Store(String),
    /// The desktop environment failed us (window, clipboard, browser).
    #[error("{0}")]
    Desktop(String),
    /// A browser sign-in was asked for and no web browser was found (the window offers
    /// the sign-in window or a device code instead).
    #[error("{0}")]
    NoBrowser(String),
    /// The identity provider does not answer (checked before a sign-in starts).
    #[error("{0}")]
    Unreachable(String),
}

impl AppError {
    pub fn kind(&self) -> &'static str {
        match self {
            AppError::InteractionRequired { .. } => "interaction_required",
            AppError::Cancelled => "cancelled",
            AppError::Provider(_) => "provider",
            AppError::Network(_) => "network",
            AppError::Invalid(_) => "invalid",
            AppError::NotFound(_) => "not_found",
            AppError::Busy(_) => "busy",
            AppError::Store(_) => "store",
            AppError::Desktop(_) => "desktop",
            AppError::NoBrowser(_) => "no_browser",
            AppError::Unreachable(_) => "unreachable",
        }
    }

    pub fn desktop(what: &str, e: impl std::fmt::Display) -> Self {
        AppError::Desktop(format!("{what}: {e}"))
    }
}

/// Sentence case with a final full stop, for messages that come from the engine in
/// lower case ("interaction required: ...").
fn sentence(s: &str) -> String {
    let s = s.trim();
    let mut out = String::with_capacity(s.len() + 1);
    let mut chars = s.chars();
    if let Some(first) = chars.next() {
        out.extend(first.to_uppercase());
        out.push_str(chars.as_str());
    }
    if !out.ends_with(['.', '!', '?', ')']) {
        out.push('.');
    }
    out
}

impl From<CoreError> for AppError {
    fn from(e: CoreError) -> Self {
        match &e {
            CoreError::InteractionRequired { reason, provider } => {
                let mut message = format!("Sign-in needed: {reason}");
                if let Some(p) = provider {
                    message.push_str(&format!(" (the provider said {})", p.summary()));
                }
                AppError::InteractionRequired {
                    reason: *reason,
                    message: sentence(&message),
                }
            }
            CoreError::Cancelled => AppError::Cancelled,
            CoreError::Provider(_) | CoreError::Validation(_) => {
                AppError::Provider(sentence(&e.to_string()))
            }
            CoreError::Transport(_) | CoreError::BadResponse { .. } => {
                AppError::Network(sentence(&e.to_string()))
            }
            CoreError::Config(_) => AppError::Invalid(sentence(&e.to_string())),
            CoreError::Store(_) => AppError::Store(sentence(&e.to_string())),
        }
    }
}

impl Serialize for AppError {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut s = serializer.serialize_struct("AppError", 3)?;
        s.serialize_field("kind", self.kind())?;
        s.serialize_field("message", &self.to_string())?;
        match self {
            AppError::InteractionRequired { reason, .. } => s.serialize_field("reason", reason)?,
            _ => s.skip_field("reason")?,
        }
        s.end()
    }
}

pub type AppResult<T> = Result<T, AppError>;

#[cfg(test)]
mod tests {
    use super::*;
    use tessera_core::error::ProviderError;

    #[test]
    fn interaction_required_serializes_with_reason_and_provider_description() {
        let e: AppError = CoreError::InteractionRequired {
            reason: InteractionReason::InvalidGrant,
            provider: Some(Box::new(ProviderError {
                error: "invalid_grant".into(),
                error_description: Some(
                    "AADSTS70043: The refresh token has expired.\r\nTrace ID: x".into(),
                ),
                ..Default::default()
            })),
        }
        .into();
        let v = serde_json::to_value(&e).unwrap();
        assert_eq!(v["kind"], "interaction_required");
        assert_eq!(v["reason"], "invalid_grant");
        assert_eq!(
            v["message"],
            "Sign-in needed: the provider refused the refresh token (the provider said invalid_grant: AADSTS70043: The refresh token has expired.)"
        );
    }

    #[test]
    fn other_errors_serialize_to_kind_and_message_only() {
        let v = serde_json::to_value(AppError::from(CoreError::Cancelled)).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"kind": "cancelled", "message": "Sign-in cancelled."})
        );
        let v = serde_json::to_value(AppError::from(CoreError::Config(
            "the authority URL must use https".into(),
        )))
        .unwrap();
        assert_eq!(
            v,
            serde_json::json!({"kind": "invalid", "message": "The authority URL must use https."})
        );
    }
}
