//! Shared input generators for Tessera's fuzz targets.
//!
//! Every target takes either the raw bytes (a document as a provider or a file would
//! send it; the seed corpora are such documents) or, when the first byte is below
//! [`STRUCTURED_BELOW`], a structured input built with `arbitrary` from the rest: JSON
//! with the field names, numbers and strings that matter to the code under test, which
//! random bytes would rarely spell.

use arbitrary::{Arbitrary, Result, Unstructured};
use serde_json::{Map, Number, Value};

/// A first byte below this selects the structured mode.
pub const STRUCTURED_BELOW: u8 = 0x08;

/// `Some(rest)` when `data` asks for the structured mode.
pub fn structured(data: &[u8]) -> Option<&[u8]> {
    match data.first() {
        Some(b) if *b < STRUCTURED_BELOW => Some(&data[1..]),
        _ => None,
    }
}

/// A string that is tried verbatim: an interesting one from a list, or anything.
#[derive(Debug, Clone)]
pub struct Pick<const LIST: usize>(pub String);

/// Strings that mean something to an OAuth/OIDC client.
pub const INTERESTING: &[&str] = &[
    "",
    " ",
    "Bearer",
    "bearer ",
    "1",
    "0",
    "-1",
    "3599",
    " 3600 ",
    "9223372036854775807",
    "-9223372036854775808",
    "99999999999999999999",
    "1e400",
    "NaN",
    "{tenantid}",
    "common",
    "organizations",
    "https://login.microsoftonline.com/common",
    "https://login.microsoftonline.com/{tenantid}/v2.0",
    "https://login.microsoftonline.com/common/oauth2/v2.0/token",
    "https://idp.example.com/realm",
    "https://idp.example.com/realm/",
    "https://idp.example.com/realm/token",
    "http://127.0.0.1:8479",
    "http://127.0.0.1:8479/",
    "http://127.0.0.1:8479/token",
    "http://localhost/x",
    "http://[::1]/x",
    "http://evil.example/token",
    "http://localhost.evil.example/token",
    "https://user:pw@idp.example.com/token",
    "javascript:alert(1)",
    "file:///etc/passwd",
    "data:,x",
    "//idp.example.com/token",
    "invalid_grant",
    "interaction_required",
    "consent_required",
    "login_required",
    "authorization_pending",
    "slow_down",
    "access_denied",
    "authorization_declined",
    "expired_token",
    "code_expired",
    "basic_action",
    "{\"access_token\":{\"essential\":true}}",
    "eyJ1aWQiOiJ1IiwidXRpZCI6InQifQ",
    "eyJ1aWQiOjEsInV0aWQiOm51bGx9",
    "a.b.c",
    "e30.e30.",
    "\u{0}",
    "\r\nTrace ID: t\r\n",
    "\u{fffd}\u{202e}\u{1f600}",
    "<html>",
    "AccessToken",
    "RefreshToken",
    "IdToken",
    "Account",
    "AppMetadata",
    "MSSTS",
    "login.microsoftonline.com",
    "login.windows.net",
];

/// Object keys: the claims and fields the engine reads, or anything.
pub const KEYS: &[&str] = &[
    // JWT claims and JOSE header fields
    "exp",
    "nbf",
    "iat",
    "auth_time",
    "aud",
    "iss",
    "sub",
    "tid",
    "oid",
    "scp",
    "roles",
    "azp",
    "azpacr",
    "appidacr",
    "nonce",
    "name",
    "preferred_username",
    "upn",
    "email",
    "alg",
    "kid",
    "typ",
    "x5t",
    "x5t#S256",
    "enc",
    "cty",
    "zip",
    "jku",
    // token responses and OAuth errors
    "access_token",
    "token_type",
    "expires_in",
    "ext_expires_in",
    "refresh_in",
    "scope",
    "refresh_token",
    "id_token",
    "client_info",
    "foci",
    "error",
    "error_description",
    "error_codes",
    "suberror",
    "claims",
    "correlation_id",
    "trace_id",
    "timestamp",
    "error_uri",
    "uid",
    "utid",
    // discovery
    "issuer",
    "authorization_endpoint",
    "token_endpoint",
    "device_authorization_endpoint",
    "end_session_endpoint",
    "jwks_uri",
    "code_challenge_methods_supported",
    "metadata",
    "aliases",
    "preferred_network",
    "preferred_cache",
    // device authorization
    "device_code",
    "user_code",
    "verification_uri",
    "verification_url",
    "verification_uri_complete",
    "interval",
    "message",
    // MSAL cache entries
    "credential_type",
    "secret",
    "home_account_id",
    "environment",
    "client_id",
    "target",
    "realm",
    "cached_at",
    "expires_on",
    "extended_expires_on",
    "key_id",
    "ext_cache_key",
    "last_modification_time",
    "family_id",
    "local_account_id",
    "username",
    "authority_type",
    "account_source",
];

impl<'a, const LIST: usize> Arbitrary<'a> for Pick<LIST> {
    fn arbitrary(u: &mut Unstructured<'a>) -> Result<Self> {
        let list = if LIST == 0 { INTERESTING } else { KEYS };
        Ok(Pick(if u.ratio(3, 4)? {
            list[u.choose_index(list.len())?].to_string()
        } else {
            String::arbitrary(u)?
        }))
    }
}

/// An interesting string (value).
pub type Str = Pick<0>;
/// An interesting object key.
pub type Key = Pick<1>;

/// A number, with the edges that break arithmetic and conversions.
#[derive(Debug, Clone, Arbitrary)]
pub enum Num {
    Small(i16),
    Time(u32),
    Int(i64),
    Edge(#[arbitrary(with = |u: &mut Unstructured| Ok(EDGES[u.choose_index(EDGES.len())?]))] i64),
    Float(f64),
    U64(u64),
}

const EDGES: &[i64] = &[
    i64::MIN,
    i64::MIN + 1,
    i64::MAX,
    i64::MAX - 1,
    -1,
    0,
    1,
    1 << 53,
    1_000_000_000_000_000,
];

impl Num {
    pub fn to_value(&self) -> Value {
        match *self {
            Num::Small(n) => Value::from(n),
            Num::Time(n) => Value::from(n),
            Num::Int(n) | Num::Edge(n) => Value::from(n),
            Num::U64(n) => Value::from(n),
            Num::Float(f) => Number::from_f64(f)
                .map(Value::Number)
                .unwrap_or(Value::Null),
        }
    }
}

/// Arbitrary JSON. Depth is bounded by the input's length.
#[derive(Debug, Clone, Arbitrary)]
pub enum Json {
    Null,
    Bool(bool),
    Num(Num),
    Str(Str),
    Arr(Vec<Json>),
    Obj(Vec<(Key, Json)>),
}

impl Json {
    pub fn to_value(&self) -> Value {
        match self {
            Json::Null => Value::Null,
            Json::Bool(b) => Value::Bool(*b),
            Json::Num(n) => n.to_value(),
            Json::Str(s) => Value::String(s.0.clone()),
            Json::Arr(items) => Value::Array(items.iter().map(Json::to_value).collect()),
            Json::Obj(fields) => Value::Object(object(fields)),
        }
    }
}

pub fn object(fields: &[(Key, Json)]) -> Map<String, Value> {
    fields
        .iter()
        .map(|(k, v)| (k.0.clone(), v.to_value()))
        .collect()
}

/// base64url without padding, as JOSE and `client_info` use.
pub fn b64url(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// An HTTP status: mostly the ones the engine branches on.
#[derive(Debug, Clone, Copy)]
pub struct Status(pub u16);

impl<'a> Arbitrary<'a> for Status {
    fn arbitrary(u: &mut Unstructured<'a>) -> Result<Self> {
        const COMMON: &[u16] = &[
            200, 200, 200, 201, 204, 301, 302, 400, 400, 401, 403, 404, 429, 500, 502, 503,
        ];
        Ok(Status(if u.ratio(7, 8)? {
            COMMON[u.choose_index(COMMON.len())?]
        } else {
            u16::arbitrary(u)?
        }))
    }
}

/// Response headers: mostly content types and Retry-After.
#[derive(Debug, Clone)]
pub struct Headers(pub Vec<(String, String)>);

impl<'a> Arbitrary<'a> for Headers {
    fn arbitrary(u: &mut Unstructured<'a>) -> Result<Self> {
        const NAMES: &[&str] = &[
            "Content-Type",
            "content-type",
            "Retry-After",
            "retry-after",
            "WWW-Authenticate",
            "X-Other",
        ];
        const VALUES: &[&str] = &[
            "application/json",
            "application/json; charset=utf-8",
            "text/html",
            "text/plain",
            "7",
            " 120 ",
            "-1",
            "18446744073709551616",
            "Wed, 21 Oct 2015 07:28:00 GMT",
            "",
        ];
        let mut out = Vec::new();
        for _ in 0..u.int_in_range(0..=4)? {
            let name = if u.ratio(7, 8)? {
                NAMES[u.choose_index(NAMES.len())?].to_string()
            } else {
                String::arbitrary(u)?
            };
            let value = if u.ratio(3, 4)? {
                VALUES[u.choose_index(VALUES.len())?].to_string()
            } else {
                String::arbitrary(u)?
            };
            out.push((name, value));
        }
        Ok(Headers(out))
    }
}
