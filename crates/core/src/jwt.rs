//! Compact JWS/JWE parsing without verification: the parts, and base64url JSON segments.
//! Shared by ID token checks and the human-readable decoder.

use base64::Engine;
use serde_json::{Map, Value};

/// What a token string looks like.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenShape {
    /// `header.payload.signature`
    Jws,
    /// `header.encrypted_key.iv.ciphertext.tag`
    Jwe,
    Opaque,
}

pub fn shape(token: &str) -> TokenShape {
    match token.split('.').count() {
        3 => TokenShape::Jws,
        5 => TokenShape::Jwe,
        _ => TokenShape::Opaque,
    }
}

/// Decode one base64url segment (padding tolerated) into a JSON object.
pub fn decode_json_segment(segment: &str) -> Result<Map<String, Value>, String> {
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(segment.trim_end_matches('='))
        .map_err(|e| format!("not base64url: {e}"))?;
    match serde_json::from_slice::<Value>(&bytes) {
        Ok(Value::Object(m)) => Ok(m),
        Ok(_) => Err("not a JSON object".into()),
        Err(e) => Err(format!("not JSON: {e}")),
    }
}

/// A JSON object: a JOSE header or a claims set.
pub type JsonObject = Map<String, Value>;

/// The header and claims of a compact JWS.
pub fn decode_jws(token: &str) -> Result<(JsonObject, JsonObject), String> {
    let mut parts = token.split('.');
    match (parts.next(), parts.next(), parts.next(), parts.next()) {
        (Some(h), Some(p), Some(_), None) => Ok((
            decode_json_segment(h).map_err(|e| format!("header {e}"))?,
            decode_json_segment(p).map_err(|e| format!("payload {e}"))?,
        )),
        _ => Err("not a compact JWS (three dot-separated parts)".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shapes_and_segments() {
        let h = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(r#"{"alg":"RS256"}"#);
        let p = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(r#"{"sub":"x"}"#);
        let t = format!("{h}.{p}.sig");
        assert_eq!(shape(&t), TokenShape::Jws);
        assert_eq!(shape("a.b.c.d.e"), TokenShape::Jwe);
        assert_eq!(shape("opaque-token"), TokenShape::Opaque);
        let (hdr, claims) = decode_jws(&t).unwrap();
        assert_eq!(hdr["alg"], "RS256");
        assert_eq!(claims["sub"], "x");
        assert!(decode_jws("a.b").is_err());
        assert!(decode_jws(&format!("{h}.!!!.s"))
            .unwrap_err()
            .starts_with("payload"));
        assert!(decode_json_segment(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD.encode("[1]")
        )
        .is_err());
    }
}
