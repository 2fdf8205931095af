//! Checks access tokens as a resource server does: the RS256 signature against the
//! issuer's published JWKS (fetched over HTTP, not taken from the provider's memory),
//! the audience, expiry and not-before.

use base64::Engine;
use rsa::pkcs1v15::{Signature, VerifyingKey};
use rsa::signature::Verifier;
use rsa::{BigUint, RsaPublicKey};
use serde_json::{Map, Value};
use sha2::Sha256;

/// The signing keys of one issuer, by key id.
#[derive(Debug, Clone)]
pub struct Jwks {
    keys: Vec<(String, VerifyingKey<Sha256>)>,
}

fn b64(s: &str) -> Result<Vec<u8>, String> {
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(s.trim_end_matches('='))
        .map_err(|e| format!("not base64url: {e}"))
}

impl Jwks {
    /// Fetch a JWKS document (`{"keys": [...]}`); RSA keys only.
    pub async fn fetch(url: &str) -> Result<Jwks, String> {
        let doc: Value = reqwest::get(url)
            .await
            .and_then(|r| r.error_for_status())
            .map_err(|e| format!("cannot fetch {url}: {e}"))?
            .json()
            .await
            .map_err(|e| format!("{url} is not JSON: {e}"))?;
        let mut keys = Vec::new();
        for k in doc["keys"].as_array().ok_or("no keys in the JWKS")? {
            if k["kty"] != "RSA" {
                continue;
            }
            let (Some(kid), Some(n), Some(e)) =
                (k["kid"].as_str(), k["n"].as_str(), k["e"].as_str())
            else {
                continue;
            };
            let public = RsaPublicKey::new(
                BigUint::from_bytes_be(&b64(n)?),
                BigUint::from_bytes_be(&b64(e)?),
            )
            .map_err(|e| format!("key {kid}: {e}"))?;
            keys.push((kid.to_string(), VerifyingKey::<Sha256>::new(public)));
        }
        Ok(Jwks { keys })
    }

    /// The claims of `token` if it is an RS256 JWS signed by one of these keys, for
    /// `audience`, and valid at `now` (epoch seconds; no skew allowed).
    pub fn verify(
        &self,
        token: &str,
        audience: &str,
        now: i64,
    ) -> Result<Map<String, Value>, String> {
        let mut parts = token.split('.');
        let (Some(h), Some(p), Some(s), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err("not a compact JWS".into());
        };
        let header: Value = serde_json::from_slice(&b64(h)?).map_err(|e| format!("header: {e}"))?;
        if header["alg"] != "RS256" {
            return Err(format!("alg {} is not RS256", header["alg"]));
        }
        let kid = header["kid"].as_str().ok_or("no kid")?;
        let key = self
            .keys
            .iter()
            .find(|(k, _)| k == kid)
            .map(|(_, key)| key)
            .ok_or_else(|| format!("no key {kid} in the JWKS"))?;
        let signature = Signature::try_from(b64(s)?.as_slice()).map_err(|e| e.to_string())?;
        key.verify(format!("{h}.{p}").as_bytes(), &signature)
            .map_err(|_| "bad signature".to_string())?;
        let claims: Map<String, Value> =
            serde_json::from_slice(&b64(p)?).map_err(|e| format!("claims: {e}"))?;
        let aud_ok = match &claims.get("aud") {
            Some(Value::String(a)) => a == audience,
            Some(Value::Array(list)) => list.iter().any(|a| a == audience),
            _ => false,
        };
        if !aud_ok {
            return Err(format!(
                "audience {:?} is not {audience}",
                claims.get("aud")
            ));
        }
        match claims.get("exp").and_then(Value::as_i64) {
            Some(exp) if exp > now => {}
            Some(exp) => return Err(format!("expired {} s ago", now - exp)),
            None => return Err("no exp".into()),
        }
        if claims
            .get("nbf")
            .and_then(Value::as_i64)
            .is_some_and(|nbf| nbf > now)
        {
            return Err("not valid yet".into());
        }
        Ok(claims)
    }
}
