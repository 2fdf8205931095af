//! Inputs the fuzz targets (fuzz/, see docs/fuzzing.md) found to break the engine, kept
//! as tests so they stay fixed. Each names the target and what went wrong.

use base64::Engine;
use tessera_core::cache::msal_json::MsalCacheDocument;
use tessera_core::decode::{decode, TokenKind};

fn b64(s: &str) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s)
}

/// fuzz target `decode`: a token whose `exp` is far in the past (here the smallest
/// i64) made `DecodedToken::expires_in_secs` overflow ("attempt to subtract with
/// overflow", a panic in debug builds, a wrong sign in release).
#[test]
fn decode_expiry_at_the_edges_of_i64() {
    let now = 1_800_000_000;
    for (exp, expired) in [
        (i64::MIN, true),
        (i64::MIN + 1, true),
        (i64::MAX, false),
        (-1, true),
    ] {
        let token = format!(
            "{}.{}.sig",
            b64(r#"{"alg":"none"}"#),
            b64(&format!(r#"{{"exp":{exp}}}"#))
        );
        let d = decode(&token, now);
        assert_eq!(d.kind, TokenKind::Jws);
        assert_eq!(d.expires_on, Some(exp));
        assert_eq!(d.is_expired(now), expired, "exp {exp}");
        let left = d.expires_in_secs(now).expect("an expiry");
        assert_eq!(left < 0, expired, "exp {exp}: {left} s left");
        // The display of an unrepresentable date is still text, not a panic.
        assert!(!d.explained[0].display.is_empty());
    }
}

/// fuzz target `msal_json`: a float in an unknown field changed in its last digit on
/// every write (`-9.926157570794669e-234` came back as `-9.926157570794668e-234`), so
/// the MSAL cache was not lossless. serde_json's `float_roundtrip` parses floats exactly.
#[test]
fn msal_cache_floats_survive_a_round_trip() {
    let text = r#"{"AccessToken": {}, "exp": -9.926157570794669e-234, "Other": {"x": [0.1, 2.5e-308, 1.7976931348623157e308, 5e-324]}}"#;
    let doc: MsalCacheDocument = text.parse().expect("parses");
    let written = doc.to_string_pretty();
    assert!(written.contains("-9.926157570794669e-234"), "{written}");
    let again: MsalCacheDocument = written.parse().expect("our output parses");
    assert_eq!(doc.to_value(), again.to_value());
    assert_eq!(
        again.to_string_pretty(),
        written,
        "writing is a fixed point"
    );
}

/// fuzz target `app_token`: an ID token whose `exp` is near the largest i64 made
/// `id_token::validate` overflow on `exp + skew`; one near the smallest, on
/// `now - exp` in the "expired ... ago" message.
#[test]
fn id_token_expiry_at_the_edges_of_i64() {
    use tessera_core::discovery::ProviderMetadata;
    use tessera_core::id_token::{validate, IdTokenCheck};
    let metadata: ProviderMetadata = serde_json::from_value(serde_json::json!({
        "issuer": "https://idp.example.com", "authorization_endpoint": "https://idp.example.com/a", "token_endpoint": "https://idp.example.com/t"
    }))
    .unwrap();
    let check = IdTokenCheck {
        metadata: &metadata,
        client_id: "c",
        nonce: None,
        now: 1_800_000_000,
    };
    let claims = |exp: i64| {
        serde_json::json!({"iss": "https://idp.example.com", "aud": "c", "exp": exp})
            .as_object()
            .unwrap()
            .clone()
    };
    validate(&claims(i64::MAX), &check).expect("an ID token valid until the end of time is valid");
    validate(&claims(i64::MAX - 60), &check).expect("valid");
    let e = validate(&claims(i64::MIN), &check).unwrap_err();
    assert!(e.to_string().contains("expired"), "{e}");
    let e = validate(
        &claims(0),
        &IdTokenCheck {
            now: i64::MAX,
            ..check
        },
    )
    .unwrap_err();
    assert!(e.to_string().contains("expired"), "{e}");
}
