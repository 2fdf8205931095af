//! Human-readable token decoding: what a token says about itself, claim by claim, with
//! times shown as dates and a plain-language line per known claim.
//!
//! Decoding never fails: a token that is not a JWT is labelled `opaque`, a JWT whose
//! segments do not decode is labelled `malformed` with the reason. The signature is
//! never verified here (`signature_verified` is always `false`): decoding shows what a
//! token claims, not whether those claims are true.
//!
//! Claim values are kept verbatim (as JSON values and as display strings): a UI that
//! shows them must escape them like any other untrusted text.

use serde::Serialize;
use serde_json::{Map, Value};

use crate::env::UnixTime;
use crate::jwt::{self, TokenShape};

/// The note every decoded token carries.
pub const SIGNATURE_NOTE: &str =
    "Signature not verified: this shows what the token claims, not whether it is genuine.";

/// What a token string turned out to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TokenKind {
    /// A signed JWT (`header.payload.signature`): header and claims decoded.
    Jws,
    /// An encrypted JWT (five parts): only the header is readable.
    Jwe,
    /// Not a JWT: only the identity provider can read it. Show the token response's
    /// metadata (scopes, expiry) instead.
    Opaque,
    /// Shaped like a JWT, but a segment is not base64url JSON (see `error`).
    Malformed,
}

/// One header field or claim, explained.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ClaimLine {
    pub name: String,
    /// The value exactly as in the token.
    pub value: Value,
    /// The value for people: times as `2026-11-25 19:58:02 UTC (in 59 min)`, lists joined
    /// with `, `, strings as they are (not escaped).
    pub display: String,
    /// What the claim means, for the claims Tessera knows.
    pub meaning: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DecodedToken {
    pub kind: TokenKind,
    /// The JOSE header (JWS and JWE), fields in token order.
    pub header: Option<Map<String, Value>>,
    /// The claims (JWS only), in token order.
    pub claims: Option<Map<String, Value>>,
    /// The header fields, explained.
    pub header_explained: Vec<ClaimLine>,
    /// The claims, explained, in token order.
    pub explained: Vec<ClaimLine>,
    /// Always `false`: decoding does not verify signatures.
    pub signature_verified: bool,
    /// `exp`, when the token has a numeric one.
    pub expires_on: Option<UnixTime>,
    /// Whether `exp` had passed when the token was decoded.
    pub expired: Option<bool>,
    /// When it was decoded (the `now` the relative times were computed against).
    pub decoded_at: UnixTime,
    /// Why a token is `malformed`.
    pub error: Option<String>,
    /// Plain-language remarks: the signature note, what an opaque or encrypted token is.
    pub notes: Vec<String>,
}

impl DecodedToken {
    /// Seconds until `exp` (negative once expired), if the token has an expiry.
    pub fn expires_in_secs(&self, now: UnixTime) -> Option<i64> {
        self.expires_on.map(|exp| exp.saturating_sub(now))
    }

    /// Whether the token has an expiry and it has passed at `now`.
    pub fn is_expired(&self, now: UnixTime) -> bool {
        self.expires_on.is_some_and(|exp| exp <= now)
    }

    /// A claim's value, if present.
    pub fn claim(&self, name: &str) -> Option<&Value> {
        self.claims.as_ref()?.get(name)
    }
}

/// Decode `token` for display. Whitespace around it and a leading `Bearer ` are ignored.
pub fn decode(token: &str, now: UnixTime) -> DecodedToken {
    let token = strip_bearer(token.trim());
    let mut out = DecodedToken {
        kind: TokenKind::Opaque,
        header: None,
        claims: None,
        header_explained: Vec::new(),
        explained: Vec::new(),
        signature_verified: false,
        expires_on: None,
        expired: None,
        decoded_at: now,
        error: None,
        notes: Vec::new(),
    };
    if token.is_empty() {
        out.kind = TokenKind::Malformed;
        out.error = Some("the input is empty".into());
        return out;
    }
    match jwt::shape(token) {
        TokenShape::Opaque => {
            out.notes.push(
                "Not a JWT: this token is opaque, only the identity provider can read it. \
                 Its scopes and expiry are in the token response, not in the token."
                    .into(),
            );
        }
        TokenShape::Jwe => {
            let header = token.split('.').next().unwrap_or_default();
            match jwt::decode_json_segment(header) {
                Ok(h) => {
                    out.kind = TokenKind::Jwe;
                    out.header_explained = explain_header(&h);
                    out.header = Some(h);
                    out.notes.push(
                        "Encrypted JWT (JWE): only the header is readable; the claims are \
                         encrypted for the service the token is meant for."
                            .into(),
                    );
                    out.notes.push(SIGNATURE_NOTE.into());
                }
                Err(e) => {
                    out.kind = TokenKind::Malformed;
                    out.error = Some(format!(
                        "five dot-separated parts like a JWE, but the header is {e}"
                    ));
                }
            }
        }
        TokenShape::Jws => {
            let mut parts = token.split('.');
            let (h, p) = (
                parts.next().unwrap_or_default(),
                parts.next().unwrap_or_default(),
            );
            let header = jwt::decode_json_segment(h);
            let claims = jwt::decode_json_segment(p);
            match (header, claims) {
                (Ok(h), Ok(c)) => {
                    out.kind = TokenKind::Jws;
                    out.header_explained = explain_header(&h);
                    out.explained = explain_claims(&c, now);
                    out.expires_on = c.get("exp").and_then(as_unix_time);
                    out.expired = out.expires_on.map(|exp| exp <= now);
                    out.header = Some(h);
                    out.claims = Some(c);
                    out.notes.push(SIGNATURE_NOTE.into());
                }
                (h, c) => {
                    out.kind = TokenKind::Malformed;
                    let mut problems = Vec::new();
                    if let Err(e) = &h {
                        problems.push(format!("the header is {e}"));
                    }
                    if let Err(e) = &c {
                        problems.push(format!("the payload is {e}"));
                    }
                    out.error = Some(format!(
                        "three dot-separated parts like a JWT, but {}",
                        problems.join(" and ")
                    ));
                    // Keep whatever did decode: it may still help.
                    if let Ok(h) = h {
                        out.header_explained = explain_header(&h);
                        out.header = Some(h);
                    }
                }
            }
        }
    }
    out
}

fn strip_bearer(token: &str) -> &str {
    match token.get(..7) {
        Some(prefix) if prefix.eq_ignore_ascii_case("bearer ") => token[7..].trim_start(),
        _ => token,
    }
}

fn explain_header(header: &Map<String, Value>) -> Vec<ClaimLine> {
    header
        .iter()
        .map(|(name, value)| ClaimLine {
            name: name.clone(),
            value: value.clone(),
            display: display_value(value),
            meaning: header_meaning(name).map(str::to_string),
        })
        .collect()
}

fn explain_claims(claims: &Map<String, Value>, now: UnixTime) -> Vec<ClaimLine> {
    claims
        .iter()
        .map(|(name, value)| {
            let display = if TIME_CLAIMS.contains(&name.as_str()) {
                match as_unix_time(value) {
                    Some(t) => format_time(t, now),
                    None => display_value(value),
                }
            } else if name == "azpacr" || name == "appidacr" {
                let base = display_value(value);
                match base.as_str() {
                    "0" => "0 (public client)".into(),
                    "1" => "1 (client secret)".into(),
                    "2" => "2 (certificate)".into(),
                    _ => base,
                }
            } else {
                display_value(value)
            };
            ClaimLine {
                name: name.clone(),
                value: value.clone(),
                display,
                meaning: claim_meaning(name).map(str::to_string),
            }
        })
        .collect()
}

const TIME_CLAIMS: &[&str] = &["exp", "nbf", "iat", "auth_time"];

/// A NumericDate (RFC 7519): seconds, possibly fractional; numeric strings are tolerated.
fn as_unix_time(value: &Value) -> Option<UnixTime> {
    match value {
        Value::Number(n) => n.as_i64().or_else(|| {
            n.as_f64()
                .filter(|f| f.is_finite() && f.abs() < 1e15)
                .map(|f| f as i64)
        }),
        Value::String(s) => s.trim().parse::<i64>().ok(),
        _ => None,
    }
}

fn display_value(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Array(items) if items.iter().all(|v| !v.is_object() && !v.is_array()) => items
            .iter()
            .map(|v| match v {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            })
            .collect::<Vec<_>>()
            .join(", "),
        other => other.to_string(),
    }
}

/// `2026-11-25 19:58:02 UTC (in 59 min)`, `... (3 h ago)`, `... (now)`.
pub fn format_time(t: UnixTime, now: UnixTime) -> String {
    let fmt = time::macros::format_description!("[year]-[month]-[day] [hour]:[minute]:[second]");
    let date = time::OffsetDateTime::from_unix_timestamp(t)
        .ok()
        .and_then(|d| d.format(&fmt).ok());
    match date {
        Some(d) => format!("{d} UTC ({})", relative(t - now)),
        None => format!("{t} (not a representable date)"),
    }
}

/// `in 59 min`, `3 h ago`, `now`.
pub fn relative(delta_secs: i64) -> String {
    if delta_secs == 0 {
        return "now".into();
    }
    let d = delta_secs.unsigned_abs();
    let amount = if d < 60 {
        format!("{d} s")
    } else if d < 3600 {
        format!("{} min", d / 60)
    } else if d < 48 * 3600 {
        format!("{} h", d / 3600)
    } else {
        format!("{} days", d / 86400)
    };
    if delta_secs > 0 {
        format!("in {amount}")
    } else {
        format!("{amount} ago")
    }
}

fn header_meaning(name: &str) -> Option<&'static str> {
    Some(match name {
        "alg" => "Signing (or key management) algorithm",
        "kid" => "Key ID: which of the issuer's published keys signed the token",
        "typ" => "Media type of the token (JWT, at+jwt for access tokens)",
        "x5t" => "Thumbprint (SHA-1) of the certificate whose key signed the token",
        "x5t#S256" => "Thumbprint (SHA-256) of the certificate whose key signed the token",
        "enc" => "Content encryption algorithm (encrypted tokens)",
        "cty" => "Content type of the protected payload",
        "zip" => "Compression applied before encryption",
        "nonce" => {
            "Microsoft Graph tokens: a nonce that makes the signature checkable by Graph only"
        }
        "jku" => "URL of the key set holding the signing key",
        _ => return None,
    })
}

fn claim_meaning(name: &str) -> Option<&'static str> {
    Some(match name {
        "aud" => "Audience: who the token is for (an API, or the client for an ID token)",
        "iss" => "Issuer: the identity provider (and tenant) that issued the token",
        "iat" => "Issued at",
        "nbf" => "Not valid before this time",
        "exp" => "Expires at: the token is refused after this time",
        "sub" => "Subject: the user's identifier, unique per application",
        "tid" => "Tenant ID: the Entra directory the user signed in to",
        "oid" => "Object ID: the user's immutable ID in the tenant, the same for every app",
        "scp" => "Delegated permissions (scopes) granted to the client, space-separated",
        "roles" => "App roles granted to the user or, in app-only tokens, the application",
        "upn" => "User principal name (sign-in name); it can change, do not use it as a key",
        "preferred_username" => "The user's sign-in name; it can change, do not use it as a key",
        "name" => "Display name of the user",
        "email" => "Email address",
        "email_verified" => "Whether the provider verified the email address",
        "azp" => "Authorized party: the client ID of the app that requested the token",
        "appid" => "Client ID of the app that requested the token (v1.0 tokens)",
        "azpacr" => "How the client authenticated: 0 public client, 1 secret, 2 certificate",
        "appidacr" => {
            "How the client authenticated (v1.0): 0 public client, 1 secret, 2 certificate"
        }
        "ver" => "Token format version (1.0 or 2.0)",
        "amr" => "Authentication methods used (pwd, mfa, otp, rsa, ...)",
        "acr" => "Authentication context class: the assurance level of the sign-in",
        "auth_time" => "When the user last entered credentials",
        "idtyp" => "Identity type: user, or app for an app-only token",
        "nonce" => "Value the client sent with the sign-in request, echoed back against replay",
        "sid" => "Session ID: the user's sign-in session at the provider",
        "uti" => "Token identifier (Entra's internal ID for this token)",
        "rh" => "Entra internal claim used to revalidate the token (opaque)",
        "aio" => "Entra internal data (opaque)",
        "ipaddr" => "IP address the user signed in from",
        "unique_name" => "Human-readable user identifier (v1.0 tokens); not a stable key",
        "family_name" => "Last name",
        "given_name" => "First name",
        "groups" => "Object IDs of the groups the user belongs to",
        "hasgroups" => "The user is in too many groups to list; ask Microsoft Graph",
        "wids" => "Directory role template IDs assigned to the user (Entra built-in roles)",
        "cnf" => "Confirmation: the key this token is bound to (proof of possession)",
        "jti" => "JWT ID: a unique identifier for this token, against replay",
        "typ" => "Token type",
        "at_hash" => "Hash of the access token issued together with this ID token",
        "c_hash" => "Hash of the authorization code issued together with this ID token",
        "login_hint" => "An opaque hint to pass back as login_hint for this user",
        "ctry" => "The user's country or region",
        "tenant_region_scope" => "Region of the user's tenant",
        "onprem_sid" => "The user's security identifier in on-premises Active Directory",
        "puid" => "Passport user ID (Microsoft internal)",
        "client_id" => "Client ID of the app that requested the token",
        "scope" => "Scopes granted to the client, space-separated",
        n if n.starts_with("xms_") => "Microsoft extension claim (xms_ prefix)",
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use base64::Engine;
    use serde_json::json;

    use super::*;

    const NOW: UnixTime = 1_795_636_000; // 2026-11-25 19:46:40 UTC

    fn b64(v: &Value) -> String {
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string())
    }

    fn jws(header: Value, claims: Value) -> String {
        format!("{}.{}.c2lnbmF0dXJl", b64(&header), b64(&claims))
    }

    fn line<'a>(d: &'a DecodedToken, name: &str) -> &'a ClaimLine {
        d.explained
            .iter()
            .find(|l| l.name == name)
            .unwrap_or_else(|| panic!("no line {name}"))
    }

    #[test]
    fn entra_access_token_is_explained_in_order() {
        let exp = NOW + 59 * 60 + 5;
        let iat = NOW - 3 * 3600;
        let token = jws(
            json!({"typ": "JWT", "alg": "RS256", "x5t": "abc", "kid": "abc"}),
            json!({
                "aud": "https://graph.microsoft.com",
                "iss": "https://sts.windows.net/72f988bf-86f1-41af-91ab-2d7cd011db47/",
                "iat": iat, "nbf": iat, "exp": exp,
                "amr": ["pwd", "mfa"],
                "appid": "04b07795-8ddb-461a-bbee-02f9e1bf7b46", "appidacr": "0",
                "idtyp": "user", "ipaddr": "203.0.113.7", "name": "Ada Lovelace",
                "oid": "00000000-0000-0000-0000-000000000001",
                "scp": "User.Read profile openid email",
                "sub": "sub-value", "tid": "72f988bf-86f1-41af-91ab-2d7cd011db47",
                "unique_name": "ada@contoso.example", "upn": "ada@contoso.example",
                "uti": "uti-value", "ver": "1.0", "wids": ["b79fbf4d-3ef9-4689-8143-76b194e85509"],
                "xms_tcdt": 1600000000, "xms_cc": ["CP1"], "rh": "0.AAAA", "aio": "E2Zg",
                "some_custom_claim": {"nested": true}
            }),
        );
        let d = decode(&token, NOW);
        assert_eq!(d.kind, TokenKind::Jws);
        assert!(!d.signature_verified);
        assert!(d.notes.iter().any(|n| n.contains("Signature not verified")));
        let names: Vec<&str> = d.explained.iter().map(|l| l.name.as_str()).collect();
        assert_eq!(&names[..5], &["aud", "iss", "iat", "nbf", "exp"]);
        assert_eq!(names.last(), Some(&"some_custom_claim"));
        let claims_order: Vec<&String> = d.claims.as_ref().unwrap().keys().collect();
        assert_eq!(claims_order[0], "aud");

        assert_eq!(
            line(&d, "exp").display,
            "2026-11-25 20:45:45 UTC (in 59 min)"
        );
        assert_eq!(line(&d, "iat").display, "2026-11-25 16:46:40 UTC (3 h ago)");
        assert_eq!(line(&d, "exp").value, json!(exp));
        assert_eq!(line(&d, "amr").display, "pwd, mfa");
        assert_eq!(line(&d, "appidacr").display, "0 (public client)");
        assert!(line(&d, "tid")
            .meaning
            .as_deref()
            .unwrap()
            .contains("Tenant"));
        assert!(line(&d, "xms_cc")
            .meaning
            .as_deref()
            .unwrap()
            .contains("xms_"));
        assert!(line(&d, "scp").meaning.is_some());
        assert_eq!(line(&d, "some_custom_claim").meaning, None);
        assert_eq!(line(&d, "some_custom_claim").display, r#"{"nested":true}"#);
        let kid = d.header_explained.iter().find(|l| l.name == "kid").unwrap();
        assert!(kid.meaning.is_some());
        assert_eq!(d.header_explained[0].name, "typ");

        assert_eq!(d.expires_on, Some(exp));
        assert_eq!(d.expired, Some(false));
        assert_eq!(d.expires_in_secs(NOW), Some(59 * 60 + 5));
        assert!(!d.is_expired(NOW));
        assert!(d.is_expired(exp + 1));
        assert_eq!(d.claim("upn"), Some(&json!("ada@contoso.example")));
    }

    #[test]
    fn every_listed_claim_has_a_meaning() {
        for c in [
            "aud",
            "iss",
            "iat",
            "nbf",
            "exp",
            "sub",
            "tid",
            "oid",
            "scp",
            "roles",
            "upn",
            "preferred_username",
            "name",
            "email",
            "azp",
            "appid",
            "azpacr",
            "appidacr",
            "ver",
            "amr",
            "acr",
            "auth_time",
            "idtyp",
            "nonce",
            "sid",
            "uti",
            "rh",
            "aio",
            "ipaddr",
            "unique_name",
            "family_name",
            "given_name",
            "groups",
            "wids",
            "xms_pdl",
            "cnf",
            "jti",
            "typ",
            "at_hash",
            "c_hash",
        ] {
            assert!(claim_meaning(c).is_some(), "{c} has no meaning");
        }
        for h in ["alg", "kid", "typ", "x5t"] {
            assert!(header_meaning(h).is_some(), "header {h} has no meaning");
        }
    }

    #[test]
    fn expired_token_and_bearer_prefix() {
        let token = jws(
            json!({"alg": "none"}),
            json!({"exp": NOW - 7200, "nbf": NOW - 9000}),
        );
        let d = decode(&format!("  Bearer {token}\n"), NOW);
        assert_eq!(d.kind, TokenKind::Jws);
        assert_eq!(d.expired, Some(true));
        assert!(d.is_expired(NOW));
        assert_eq!(d.expires_in_secs(NOW), Some(-7200));
        assert!(line(&d, "exp").display.ends_with("UTC (2 h ago)"));
    }

    #[test]
    fn jwe_shows_header_only() {
        let header = b64(&json!({"alg": "RSA-OAEP-256", "enc": "A256GCM", "kid": "k1"}));
        let d = decode(&format!("{header}.a2V5.aXY.Y2lwaGVy.dGFn"), NOW);
        assert_eq!(d.kind, TokenKind::Jwe);
        assert_eq!(d.header.as_ref().unwrap()["enc"], "A256GCM");
        assert!(d.claims.is_none());
        assert!(d.explained.is_empty());
        assert!(d.notes.iter().any(|n| n.contains("Encrypted")));
        assert_eq!(d.expires_on, None);
        assert!(!d.is_expired(NOW));
        let json = serde_json::to_value(&d).unwrap();
        assert_eq!(json["kind"], "jwe");
    }

    #[test]
    fn opaque_tokens_are_labelled() {
        for t in [
            "EwBwA8l6BAAU_opaque_access_token",
            "ya29.a0AfH6SMB",
            "a.b.c.d",
        ] {
            let d = decode(t, NOW);
            assert_eq!(d.kind, TokenKind::Opaque, "{t}");
            assert!(d.header.is_none() && d.claims.is_none());
            assert!(d.notes[0].contains("Not a JWT"));
            assert!(!d.signature_verified);
            let json = serde_json::to_string(&d).unwrap();
            assert!(json.contains(r#""kind":"opaque""#));
            assert!(!json.contains(t), "the opaque token itself is not echoed");
        }
    }

    #[test]
    fn malformed_input_is_labelled_without_panicking() {
        let good = b64(&json!({"alg": "RS256"}));
        let cases = [
            (
                format!("{good}.!!!not-base64!!!.sig"),
                "payload is not base64url",
            ),
            (
                format!("{good}.{}.sig", base64_raw("{not json")),
                "payload is not JSON",
            ),
            (
                format!("{good}.{}.sig", base64_raw("[1,2]")),
                "not a JSON object",
            ),
            (
                format!("{}.{good}.sig", base64_raw("\u{0}\u{1}")),
                "header is not JSON",
            ),
            ("..".to_string(), "header is not JSON"),
            ("x.y.z.w.v".to_string(), "header is"),
            ("   ".to_string(), "empty"),
        ];
        for (input, expected) in cases {
            let d = decode(&input, NOW);
            assert_eq!(d.kind, TokenKind::Malformed, "{input}");
            let err = d.error.as_deref().unwrap();
            assert!(err.contains(expected), "{input}: {err}");
        }
        // The readable half is kept.
        let d = decode(&format!("{good}.%%%.sig"), NOW);
        assert_eq!(d.header.as_ref().unwrap()["alg"], "RS256");
        // Odd but valid JSON values do not break time handling.
        let d = decode(
            &jws(
                json!({}),
                json!({"exp": "soon", "iat": 1e300, "nbf": 1.5e9}),
            ),
            NOW,
        );
        assert_eq!(line(&d, "exp").display, "soon");
        assert_eq!(d.expires_on, None);
        assert_eq!(line(&d, "iat").display, "1e+300");
        assert!(line(&d, "nbf")
            .display
            .starts_with("2017-07-14 02:40:00 UTC"));
        let d = decode(&jws(json!({}), json!({"exp": i64::MAX})), NOW);
        assert!(line(&d, "exp").display.contains("not a representable date"));
        assert_eq!(d.expired, Some(false));
    }

    fn base64_raw(s: &str) -> String {
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s)
    }

    #[test]
    fn hostile_claim_values_stay_verbatim_data() {
        let evil = "<img src=x onerror=alert(1)>";
        let d = decode(
            &jws(json!({"alg": "RS256"}), json!({"name": evil, evil: "k"})),
            NOW,
        );
        assert_eq!(line(&d, "name").display, evil);
        assert_eq!(line(&d, "name").value, json!(evil));
        assert_eq!(line(&d, evil).display, "k");
        assert_eq!(line(&d, evil).meaning, None);
        let json = serde_json::to_value(&d).unwrap();
        assert_eq!(json["claims"]["name"], evil);
        assert_eq!(json["explained"][0]["display"], evil);
    }

    #[test]
    fn relative_times() {
        assert_eq!(relative(0), "now");
        assert_eq!(relative(30), "in 30 s");
        assert_eq!(relative(-59), "59 s ago");
        assert_eq!(relative(3599), "in 59 min");
        assert_eq!(relative(-3 * 3600), "3 h ago");
        assert_eq!(relative(47 * 3600), "in 47 h");
        assert_eq!(relative(-5 * 86400), "5 days ago");
        assert_eq!(
            relative(i64::MIN),
            format!("{} days ago", (i64::MIN).unsigned_abs() / 86400)
        );
    }
}
