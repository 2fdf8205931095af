//! RS256 signing key, JWT signing and verification, JWKS.

use crate::util::{b64url, b64url_decode, now_secs};
use rsa::pkcs1v15::{Signature, SigningKey, VerifyingKey};
use rsa::signature::{SignatureEncoding, Signer, Verifier};
use rsa::traits::PublicKeyParts;
use rsa::{RsaPrivateKey, RsaPublicKey};
use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};
use std::sync::{Arc, OnceLock};

/// The sandbox's token-signing key (RSA 2048, RS256).
pub struct Keys {
    signing: SigningKey<Sha256>,
    verifying: VerifyingKey<Sha256>,
    public: RsaPublicKey,
    kid: String,
}

impl std::fmt::Debug for Keys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Keys")
            .field("kid", &self.kid)
            .field("private", &"<redacted>")
            .finish()
    }
}

static PROCESS_KEY: OnceLock<Arc<Keys>> = OnceLock::new();

impl Keys {
    /// Generates a fresh 2048-bit key.
    pub fn generate() -> Result<Keys, String> {
        let private = RsaPrivateKey::new(&mut rand::thread_rng(), 2048)
            .map_err(|e| format!("RSA key generation failed: {e}"))?;
        let public = RsaPublicKey::from(&private);
        let mut h = Sha256::new();
        h.update(public.n().to_bytes_be());
        h.update(public.e().to_bytes_be());
        // Entra's kids are 27 characters of base64url (a SHA-1 thumbprint); keep that length.
        let kid = b64url(&h.finalize())[..27].to_string();
        Ok(Keys {
            signing: SigningKey::<Sha256>::new(private),
            verifying: VerifyingKey::<Sha256>::new(public.clone()),
            public,
            kid,
        })
    }

    /// The key shared by every sandbox started in this process (generated once, on first use,
    /// since 2048-bit generation costs tens to hundreds of milliseconds).
    pub fn process_key() -> Result<Arc<Keys>, String> {
        if let Some(k) = PROCESS_KEY.get() {
            return Ok(k.clone());
        }
        let k = Arc::new(Keys::generate()?);
        Ok(PROCESS_KEY.get_or_init(|| k).clone())
    }

    /// The key id (`kid` header, JWKS entry).
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// Signs `claims` as a compact JWS with header `{"typ":"JWT","alg":"RS256","kid":...}`.
    pub fn sign(&self, claims: &Value) -> String {
        let header = json!({"typ": "JWT", "alg": "RS256", "kid": self.kid});
        let signing_input = format!(
            "{}.{}",
            b64url(header.to_string().as_bytes()),
            b64url(claims.to_string().as_bytes())
        );
        let sig = self.signing.sign(signing_input.as_bytes());
        format!("{signing_input}.{}", b64url(&sig.to_bytes()))
    }

    /// Verifies the signature (this key, RS256) and the time window of a JWT, returning its claims.
    pub fn verify(&self, token: &str) -> Result<Map<String, Value>, String> {
        let (header, claims) = decode_unverified(token)?;
        if header.get("alg").and_then(Value::as_str) != Some("RS256") {
            return Err("token is not RS256".into());
        }
        if header.get("kid").and_then(Value::as_str) != Some(self.kid.as_str()) {
            return Err("token was not signed by this sandbox's key (kid differs)".into());
        }
        let (signing_input, sig_b64) = token
            .rsplit_once('.')
            .ok_or_else(|| "token is not a JWT".to_string())?;
        let sig_bytes = b64url_decode(sig_b64).ok_or("signature is not base64url")?;
        let sig = Signature::try_from(sig_bytes.as_slice()).map_err(|_| "malformed signature")?;
        self.verifying
            .verify(signing_input.as_bytes(), &sig)
            .map_err(|_| "signature does not verify".to_string())?;
        let now = now_secs();
        let exp = claims.get("exp").and_then(Value::as_i64).ok_or("no exp")?;
        if exp <= now {
            return Err(format!("token expired {} s ago", now - exp));
        }
        if let Some(nbf) = claims.get("nbf").and_then(Value::as_i64) {
            if nbf > now + 300 {
                return Err("token is not yet valid".into());
            }
        }
        Ok(claims)
    }

    /// The JWKS document (`{"keys":[...]}`), as Entra publishes it.
    pub fn jwks(&self, issuer_template: &str) -> Value {
        json!({
            "keys": [{
                "kty": "RSA",
                "use": "sig",
                "kid": self.kid,
                "x5t": self.kid,
                "n": b64url(&self.public.n().to_bytes_be()),
                "e": b64url(&self.public.e().to_bytes_be()),
                "alg": "RS256",
                "issuer": issuer_template,
            }]
        })
    }
}

/// A JWT header or payload.
pub type Claims = Map<String, Value>;

/// Splits and decodes a JWT's header and claims without verifying anything.
pub fn decode_unverified(token: &str) -> Result<(Claims, Claims), String> {
    let mut parts = token.split('.');
    let (Some(h), Some(c), Some(_), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err("token is not a JWT (three dot-separated parts expected)".into());
    };
    let decode = |s: &str, what: &str| -> Result<Map<String, Value>, String> {
        let bytes = b64url_decode(s).ok_or_else(|| format!("{what} is not base64url"))?;
        match serde_json::from_slice(&bytes) {
            Ok(Value::Object(m)) => Ok(m),
            _ => Err(format!("{what} is not a JSON object")),
        }
    };
    Ok((decode(h, "header")?, decode(c, "payload")?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signed_tokens_verify_and_tampered_ones_do_not() {
        let k = Keys::process_key().unwrap();
        let t = k.sign(&json!({"sub": "x", "exp": now_secs() + 60}));
        assert_eq!(k.verify(&t).unwrap()["sub"], "x");

        let (head, rest) = t.split_once('.').unwrap();
        let (_, sig) = rest.split_once('.').unwrap();
        let forged = format!(
            "{head}.{}.{sig}",
            b64url(
                json!({"sub": "y", "exp": now_secs() + 60})
                    .to_string()
                    .as_bytes()
            )
        );
        assert!(k.verify(&forged).unwrap_err().contains("signature"));

        let expired = k.sign(&json!({"sub": "x", "exp": now_secs() - 1}));
        assert!(k.verify(&expired).unwrap_err().contains("expired"));
        assert!(k.verify("garbage").is_err());
        assert!(k.verify("a.b.c").is_err());
    }
}
