//! The refresh token grant, and what its errors mean. MSAL's rule: `invalid_grant`,
//! `interaction_required`, `consent_required`, `login_required` and claims challenges
//! mean the user must sign in again; the refresh token is kept all the same.

use crate::discovery::ProviderMetadata;
use crate::error::{Error, InteractionReason};
use crate::http::HttpRequest;
use crate::scopes::ScopeSet;
use crate::secret::RefreshToken;
use crate::token::token_request;

pub fn refresh_request(
    metadata: &ProviderMetadata,
    client_id: &str,
    refresh_token: &RefreshToken,
    scopes: &ScopeSet,
    claims: Option<&str>,
    entra: bool,
) -> HttpRequest {
    let scope = scopes.to_param();
    let mut params = vec![
        ("grant_type", "refresh_token"),
        ("refresh_token", refresh_token.secret().as_str()),
        ("scope", scope.as_str()),
    ];
    if let Some(c) = claims {
        params.push(("claims", c));
    }
    if entra {
        params.push(("client_info", "1"));
    }
    token_request(&metadata.token_endpoint, client_id, &params)
}

/// Turn a refresh failure into "interaction required" where the user can fix it by
/// signing in; leave transport and server errors as they are.
pub fn classify_refresh_error(e: Error) -> Error {
    match e {
        Error::Provider(p) => {
            let reason = if p.claims.as_deref().is_some_and(|c| !c.is_empty()) {
                Some(InteractionReason::ClaimsChallenge)
            } else {
                match p.error.as_str() {
                    "invalid_grant"
                        if matches!(p.suberror.as_deref(), Some("consent_required")) =>
                    {
                        Some(InteractionReason::ConsentRequired)
                    }
                    "invalid_grant" => Some(InteractionReason::InvalidGrant),
                    "interaction_required" | "login_required" => {
                        Some(InteractionReason::InteractionRequired)
                    }
                    "consent_required" => Some(InteractionReason::ConsentRequired),
                    _ => None,
                }
            };
            match reason {
                Some(reason) => Error::InteractionRequired {
                    reason,
                    provider: Some(p),
                },
                None => Error::Provider(p),
            }
        }
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ProviderError;

    fn provider(error: &str, claims: Option<&str>) -> Error {
        Error::Provider(Box::new(ProviderError {
            error: error.into(),
            claims: claims.map(Into::into),
            ..Default::default()
        }))
    }

    #[test]
    fn interaction_reasons() {
        let reason = |e: Error| match classify_refresh_error(e) {
            Error::InteractionRequired { reason, .. } => Some(reason),
            _ => None,
        };
        assert_eq!(
            reason(provider("invalid_grant", None)),
            Some(InteractionReason::InvalidGrant)
        );
        assert_eq!(
            reason(provider("interaction_required", None)),
            Some(InteractionReason::InteractionRequired)
        );
        assert_eq!(
            reason(provider(
                "interaction_required",
                Some(r#"{"access_token":{}}"#)
            )),
            Some(InteractionReason::ClaimsChallenge)
        );
        assert_eq!(
            reason(provider("consent_required", None)),
            Some(InteractionReason::ConsentRequired)
        );
        assert_eq!(reason(provider("temporarily_unavailable", None)), None);
        assert_eq!(reason(Error::Config("x".into())), None);
    }
}
