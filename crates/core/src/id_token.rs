//! ID token checks and account identity.
//!
//! The ID token comes straight from the token endpoint over TLS, so (as OpenID Connect
//! Core §3.1.3.7 allows, and as MSAL does) its signature is not checked; its claims are:
//! issuer (with Entra's `{tenantid}` template), audience, nonce, expiry with 2 minutes'
//! skew. Identity: Entra's `client_info` (`uid.utid`) gives `home_account_id`; other
//! providers use `sub`.

use base64::Engine;
use serde_json::{Map, Value};

use crate::authority::Authority;
use crate::discovery::ProviderMetadata;
use crate::env::UnixTime;
use crate::error::{Error, Result};
use crate::jwt;

pub const CLOCK_SKEW_SECS: i64 = 120;

pub type Claims = Map<String, Value>;

pub fn claims(id_token: &str) -> Result<Claims> {
    jwt::decode_jws(id_token)
        .map(|(_, c)| c)
        .map_err(|e| Error::Validation(format!("the ID token is unreadable: {e}")))
}

/// What an ID token must satisfy.
#[derive(Debug, Clone, Copy)]
pub struct IdTokenCheck<'a> {
    pub metadata: &'a ProviderMetadata,
    pub client_id: &'a str,
    /// The nonce sent with the authorization request (none for refresh and device code).
    pub nonce: Option<&'a str>,
    pub now: UnixTime,
}

pub fn validate(claims: &Claims, check: &IdTokenCheck<'_>) -> Result<()> {
    let tid = claims.get("tid").and_then(Value::as_str);
    let expected_iss = check.metadata.issuer_for(tid);
    let iss = claims
        .get("iss")
        .and_then(Value::as_str)
        .unwrap_or_default();
    if iss.trim_end_matches('/') != expected_iss.trim_end_matches('/') {
        return Err(Error::Validation(format!(
            "the ID token was issued by {iss:?}, expected {expected_iss:?}"
        )));
    }
    let aud_ok = match claims.get("aud") {
        Some(Value::String(a)) => a == check.client_id,
        Some(Value::Array(list)) => list.iter().any(|a| a.as_str() == Some(check.client_id)),
        _ => false,
    };
    if !aud_ok {
        return Err(Error::Validation(format!(
            "the ID token is not meant for this client ({})",
            check.client_id
        )));
    }
    if let Some(expected) = check.nonce {
        if claims.get("nonce").and_then(Value::as_str) != Some(expected) {
            return Err(Error::Validation(
                "the ID token's nonce does not match this sign-in (possible replay)".into(),
            ));
        }
    }
    match claims.get("exp").and_then(Value::as_i64) {
        Some(exp) if exp.saturating_add(CLOCK_SKEW_SECS) > check.now => Ok(()),
        Some(exp) => Err(Error::Validation(format!(
            "the ID token expired {} s ago",
            check.now.saturating_sub(exp)
        ))),
        None => Err(Error::Validation("the ID token has no expiry (exp)".into())),
    }
}

/// Who signed in, in MSAL's terms.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub home_account_id: String,
    pub local_account_id: String,
    pub username: String,
    pub name: Option<String>,
}

pub fn identity(claims: &Claims, client_info: Option<&str>) -> Result<Identity> {
    let s = |k: &str| claims.get(k).and_then(Value::as_str).map(str::to_string);
    let home_account_id = match client_info.and_then(parse_client_info) {
        Some((uid, utid)) => format!("{uid}.{utid}"),
        None => {
            s("sub").ok_or_else(|| Error::Validation("the ID token has no subject (sub)".into()))?
        }
    };
    Ok(Identity {
        local_account_id: s("oid").or_else(|| s("sub")).unwrap_or_default(),
        username: s("preferred_username")
            .or_else(|| s("upn"))
            .or_else(|| s("email"))
            .unwrap_or_default(),
        name: s("name"),
        home_account_id,
    })
}

/// Entra's `client_info`: base64url JSON with `uid` and `utid`.
pub fn parse_client_info(client_info: &str) -> Option<(String, String)> {
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(client_info.trim_end_matches('='))
        .ok()?;
    let v: Value = serde_json::from_slice(&bytes).ok()?;
    Some((
        v.get("uid")?.as_str()?.to_string(),
        v.get("utid")?.as_str()?.to_string(),
    ))
}

/// MSAL's authority type for the Account entry.
pub fn authority_type(authority: &Authority) -> &'static str {
    if authority.realm() == "adfs" {
        "ADFS"
    } else {
        "MSSTS"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(issuer: &str) -> ProviderMetadata {
        serde_json::from_value(serde_json::json!({
            "issuer": issuer, "authorization_endpoint": "https://x/a", "token_endpoint": "https://x/t"
        }))
        .unwrap()
    }

    fn claims_of(v: Value) -> Claims {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn issuer_template_audience_nonce_and_expiry() {
        let m = meta("https://login.microsoftonline.com/{tenantid}/v2.0");
        let c = claims_of(serde_json::json!({
            "iss": "https://login.microsoftonline.com/t1/v2.0", "tid": "t1", "aud": "client", "nonce": "n1", "exp": 1000
        }));
        let check = IdTokenCheck {
            metadata: &m,
            client_id: "client",
            nonce: Some("n1"),
            now: 900,
        };
        validate(&c, &check).unwrap();
        // expiry tolerates 2 minutes of skew, not more
        validate(
            &c,
            &IdTokenCheck {
                now: 1000 + 119,
                ..check
            },
        )
        .unwrap();
        assert!(validate(
            &c,
            &IdTokenCheck {
                now: 1000 + 121,
                ..check
            }
        )
        .unwrap_err()
        .to_string()
        .contains("expired"));
        assert!(validate(
            &c,
            &IdTokenCheck {
                nonce: Some("other"),
                ..check
            }
        )
        .unwrap_err()
        .to_string()
        .contains("nonce"));
        assert!(validate(
            &c,
            &IdTokenCheck {
                client_id: "other",
                ..check
            }
        )
        .is_err());
        let mut wrong = c.clone();
        wrong.insert("iss".into(), "https://evil.example/t1/v2.0".into());
        assert!(validate(&wrong, &check)
            .unwrap_err()
            .to_string()
            .contains("evil.example"));
        // a token of another tenant does not pass as this one's
        let mut other = c.clone();
        other.insert("tid".into(), "t2".into());
        assert!(validate(&other, &check).is_err());
    }

    #[test]
    fn identity_from_client_info_or_sub() {
        let c = claims_of(
            serde_json::json!({"sub": "s", "oid": "o", "preferred_username": "a@b", "name": "A"}),
        );
        let ci =
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(r#"{"uid":"o","utid":"t"}"#);
        let id = identity(&c, Some(&ci)).unwrap();
        assert_eq!(id.home_account_id, "o.t");
        assert_eq!(id.local_account_id, "o");
        assert_eq!(id.username, "a@b");
        let generic = claims_of(serde_json::json!({"sub": "s", "email": "e@x"}));
        let id = identity(&generic, None).unwrap();
        assert_eq!(
            (
                id.home_account_id.as_str(),
                id.username.as_str(),
                id.local_account_id.as_str()
            ),
            ("s", "e@x", "s")
        );
        assert!(identity(&claims_of(serde_json::json!({})), None).is_err());
    }
}
