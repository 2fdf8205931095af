//! `decode::decode` never fails and never panics; what it reports is consistent; a
//! well-formed JWT comes back with exactly the header and claims that were encoded.
#![no_main]

use arbitrary::{Arbitrary, Unstructured};
use libfuzzer_sys::fuzz_target;
use serde_json::{Map, Value};
use tessera_core::decode::{decode, DecodedToken, TokenKind};
use tessera_fuzz::{b64url, object, structured, Json, Key};

/// A `now` the clock could return (1970 to 2100), plus the edges of that range.
#[derive(Debug, Arbitrary)]
enum Now {
    Realistic(#[arbitrary(with = |u: &mut Unstructured| u.int_in_range(0..=4_102_444_800i64))] i64),
    Edge(bool),
}

impl Now {
    fn get(&self) -> i64 {
        match self {
            Now::Realistic(n) => *n,
            Now::Edge(false) => 0,
            Now::Edge(true) => 4_102_444_800,
        }
    }
}

#[derive(Debug, Arbitrary)]
enum Segment {
    /// A JSON object, base64url.
    Object(Vec<(Key, Json)>),
    /// Any JSON value, base64url.
    Value(Json),
    /// Raw text.
    Raw(String),
}

impl Segment {
    fn encode(&self) -> (String, Option<Map<String, Value>>) {
        match self {
            Segment::Object(fields) => {
                let text = Value::Object(object(fields)).to_string();
                // What decoding must give back: the same text through the same parser.
                let expected = serde_json::from_str::<Map<String, Value>>(&text).ok();
                (b64url(text.as_bytes()), expected)
            }
            Segment::Value(v) => (b64url(v.to_value().to_string().as_bytes()), None),
            Segment::Raw(s) => (s.clone(), None),
        }
    }
}

#[derive(Debug, Arbitrary)]
struct Jwt {
    prefix: u8,
    header: Segment,
    payload: Segment,
    signature: Vec<u8>,
    /// Extra dot-separated parts (a JWE has five).
    extra_parts: u8,
    padding: bool,
    now: Now,
}

fn check(token: &str, now: i64, d: &DecodedToken) {
    assert!(!d.signature_verified, "decoding never verifies a signature");
    assert_eq!(d.decoded_at, now);
    assert_eq!(
        d.kind == TokenKind::Malformed,
        d.error.is_some(),
        "malformed iff there is an error: {d:?}"
    );
    match d.kind {
        TokenKind::Jws => {
            let (h, c) = (
                d.header.as_ref().expect("JWS header"),
                d.claims.as_ref().expect("JWS claims"),
            );
            assert_eq!(d.header_explained.len(), h.len());
            assert_eq!(d.explained.len(), c.len());
            for (line, (name, value)) in d.explained.iter().zip(c) {
                assert_eq!(
                    (&line.name, &line.value),
                    (name, value),
                    "claims explained in token order"
                );
            }
            assert_eq!(d.expired, d.expires_on.map(|exp| exp <= now));
        }
        TokenKind::Jwe => assert!(d.header.is_some() && d.claims.is_none()),
        TokenKind::Opaque => {
            assert!(d.header.is_none() && d.claims.is_none() && d.expires_on.is_none())
        }
        TokenKind::Malformed => assert!(d.claims.is_none()),
    }
    // What the CLI and the app do with a decoded token.
    serde_json::to_string(d).expect("a decoded token serializes");
    let _ = d.expires_in_secs(now);
    let _ = d.is_expired(now);
    let _ = token;
}

fuzz_target!(|data: &[u8]| {
    let Some(rest) = structured(data) else {
        let token = String::from_utf8_lossy(data);
        let now = 1_800_000_000;
        check(&token, now, &decode(&token, now));
        return;
    };
    let mut u = Unstructured::new(rest);
    let Ok(jwt) = Jwt::arbitrary(&mut u) else {
        return;
    };
    let now = jwt.now.get();
    let (h, expected_header) = jwt.header.encode();
    let (p, expected_claims) = jwt.payload.encode();
    let pad = if jwt.padding { "==" } else { "" };
    let mut token = format!("{h}{pad}.{p}{pad}.{}", b64url(&jwt.signature));
    for i in 0..(jwt.extra_parts % 4) {
        token.push_str(&format!(".{i}"));
    }
    let prefix = ["", "Bearer ", "bearer  ", " \n\t", "BEARER"][usize::from(jwt.prefix) % 5];
    let token = format!("{prefix}{token}");
    let d = decode(&token, now);
    check(&token, now, &d);
    let clean = jwt.extra_parts % 4 == 0 && prefix != "BEARER";
    if let (true, Some(eh), Some(ec)) = (clean, expected_header, expected_claims) {
        assert_eq!(d.kind, TokenKind::Jws, "a well-formed JWT decodes: {d:?}");
        assert_eq!(d.header.as_ref(), Some(&eh));
        assert_eq!(d.claims.as_ref(), Some(&ec));
    }
});
