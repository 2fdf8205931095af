//! Token endpoint requests and responses: one builder for every grant, one processor
//! that turns a response into a [`TokenResponse`] or a typed error that keeps the
//! provider's own fields (Entra's `error_codes`, `suberror`, `claims`, correlation id).

use serde::{Deserialize, Deserializer};
use url::Url;

use crate::error::{Error, ProviderError, Result};
use crate::http::{HttpRequest, HttpResponse};
use crate::secret::{AccessToken, IdTokenString, RefreshToken};

/// A successful token response. `Debug` redacts every token.
#[derive(Debug, Clone, Deserialize)]
pub struct TokenResponse {
    pub access_token: AccessToken,
    #[serde(default = "bearer")]
    pub token_type: String,
    #[serde(default, deserialize_with = "int_or_string")]
    pub expires_in: Option<i64>,
    #[serde(default, deserialize_with = "int_or_string")]
    pub ext_expires_in: Option<i64>,
    /// Entra: refresh proactively after this many seconds.
    #[serde(default, deserialize_with = "int_or_string")]
    pub refresh_in: Option<i64>,
    #[serde(default)]
    pub scope: Option<String>,
    #[serde(default)]
    pub refresh_token: Option<RefreshToken>,
    #[serde(default)]
    pub id_token: Option<IdTokenString>,
    /// Entra: base64url JSON `{"uid": ..., "utid": ...}`.
    #[serde(default)]
    pub client_info: Option<String>,
    /// Entra: the family id ("1") when the refresh token is a family refresh token.
    #[serde(default)]
    pub foci: Option<String>,
}

fn bearer() -> String {
    "Bearer".into()
}

/// Entra's v1 endpoints send numbers as strings; accept both.
fn int_or_string<'de, D: Deserializer<'de>>(d: D) -> std::result::Result<Option<i64>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum N {
        I(i64),
        F(f64),
        S(String),
    }
    Ok(match Option::<N>::deserialize(d)? {
        None => None,
        Some(N::I(i)) => Some(i),
        Some(N::F(f)) => Some(f as i64),
        Some(N::S(s)) => s.trim().parse().ok(),
    })
}

/// A token request: `grant_type` and the grant's parameters, with the client id.
pub fn token_request(
    token_endpoint: &Url,
    client_id: &str,
    params: &[(&str, &str)],
) -> HttpRequest {
    let mut all: Vec<(&str, &str)> = vec![("client_id", client_id)];
    all.extend_from_slice(params);
    HttpRequest::post_form(token_endpoint.clone(), all)
}

/// Process a token endpoint response.
pub fn process_token_response(response: &HttpResponse) -> Result<TokenResponse> {
    let what = "token response";
    if response.status == 200 {
        return serde_json::from_slice::<TokenResponse>(&response.body).map_err(|e| {
            Error::BadResponse {
                what,
                detail: format!("the identity provider sent malformed or incomplete JSON ({e})"),
                status: Some(200),
                retry_after: None,
            }
        });
    }
    Err(error_from_response(what, response))
}

/// An OAuth error body when there is one, else a description of what came back.
pub fn error_from_response(what: &'static str, response: &HttpResponse) -> Error {
    if (400..500).contains(&response.status) {
        if let Ok(mut e) = serde_json::from_slice::<ProviderError>(&response.body) {
            if !e.error.is_empty() {
                e.status = Some(response.status);
                return Error::Provider(Box::new(e));
            }
        }
    }
    unexpected_response(what, response)
}

/// `Retry-After` in seconds: a number of seconds, or an HTTP date counted from the
/// response's own `Date` (so no local clock, and no skew between the two); a date
/// without a `Date` header is not read.
fn retry_after(response: &HttpResponse) -> Option<u64> {
    let value = response.header("retry-after")?.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(secs);
    }
    let at = httpdate::parse_http_date(value).ok()?;
    let sent = httpdate::parse_http_date(response.header("date")?.trim()).ok()?;
    Some(at.duration_since(sent).map_or(0, |d| d.as_secs()))
}

/// A response that is not what the protocol says: a 5xx, an HTML page, a proxy error.
pub fn unexpected_response(what: &'static str, response: &HttpResponse) -> Error {
    let retry_after = retry_after(response);
    // A 5xx with an OAuth JSON body (Entra's 503 "temporarily_unavailable"): say what
    // the provider said instead of "an unexpected body".
    let provider = serde_json::from_slice::<ProviderError>(&response.body)
        .ok()
        .filter(|e| !e.error.is_empty());
    let said;
    let kind = if let Some(p) = &provider {
        said = format!("an error: {}", ProviderSaid(p));
        said.as_str()
    } else if looks_like_html(response) {
        "an HTML page instead of JSON"
    } else if response.body.is_empty() {
        "an empty body"
    } else {
        "an unexpected body"
    };
    let mut detail = format!(
        "the identity provider answered HTTP {} with {kind}",
        response.status
    );
    if let Some(secs) = retry_after {
        detail.push_str(&format!("; it asks to retry after {secs} s"));
    }
    Error::BadResponse {
        what,
        detail,
        status: Some(response.status),
        retry_after,
    }
}

struct ProviderSaid<'a>(&'a ProviderError);

impl std::fmt::Display for ProviderSaid<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0.error)?;
        if let Some(d) = &self.0.error_description {
            let first = d.lines().next().unwrap_or_default().trim();
            if !first.is_empty() {
                write!(f, ": {first}")?;
            }
        }
        Ok(())
    }
}

fn looks_like_html(response: &HttpResponse) -> bool {
    response
        .header("content-type")
        .is_some_and(|c| c.contains("html"))
        || response
            .body
            .iter()
            .take(256)
            .skip_while(|b| b.is_ascii_whitespace())
            .take(1)
            .any(|b| *b == b'<')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resp(status: u16, ctype: &str, body: &str) -> HttpResponse {
        HttpResponse {
            status,
            headers: vec![("content-type".into(), ctype.into())],
            body: body.as_bytes().to_vec(),
        }
    }

    #[test]
    fn success_with_entra_fields_and_string_numbers() {
        let r = process_token_response(&resp(
            200,
            "application/json",
            r#"{"token_type":"Bearer","scope":"User.Read","expires_in":"3599","ext_expires_in":3599,"refresh_in":1800,"access_token":"at1","refresh_token":"rt1","id_token":"a.b.c","client_info":"eyJ1aWQiOiJ1In0","foci":"1"}"#,
        ))
        .unwrap();
        assert_eq!(r.expires_in, Some(3599));
        assert_eq!(r.refresh_in, Some(1800));
        assert_eq!(r.foci.as_deref(), Some("1"));
        assert_eq!(r.access_token.secret(), "at1");
        let dbg = format!("{r:?}");
        assert!(
            !dbg.contains("at1") && !dbg.contains("rt1") && !dbg.contains("a.b.c"),
            "{dbg}"
        );
    }

    #[test]
    fn entra_error_keeps_its_fields() {
        let e = process_token_response(&resp(
            400,
            "application/json; charset=utf-8",
            r#"{"error":"invalid_grant","error_description":"AADSTS70008: The provided authorization code or refresh token has expired.\r\nTrace ID: t\r\nCorrelation ID: c\r\nTimestamp: 2026-01-01","error_codes":[70008],"timestamp":"2026-01-01","trace_id":"t","correlation_id":"c","suberror":"bad_token"}"#,
        ))
        .unwrap_err();
        let p = e.provider_error().unwrap();
        assert_eq!(p.error_codes, vec![70008]);
        assert_eq!(p.suberror.as_deref(), Some("bad_token"));
        assert_eq!(
            e.to_string(),
            "the identity provider returned invalid_grant: AADSTS70008: The provided authorization code or refresh token has expired. (correlation id c)"
        );
    }

    #[test]
    fn json_503_says_what_the_provider_said_and_when_to_retry() {
        let mut r = resp(
            503,
            "application/json",
            r#"{"error":"temporarily_unavailable","error_description":"AADSTS90033: A transient error has occurred. Please try again."}"#,
        );
        r.headers.push(("Retry-After".into(), "30".into()));
        let e = process_token_response(&r).unwrap_err();
        let m = e.to_string();
        assert!(!m.contains("unexpected body"), "{m}");
        assert!(
            m.contains("temporarily_unavailable: AADSTS90033") && m.contains("retry after 30 s"),
            "{m}"
        );
    }

    #[test]
    fn retry_after_as_an_http_date_counts_from_the_responses_own_date() {
        let mut r = resp(503, "text/plain", "busy");
        r.headers
            .push(("Date".into(), "Wed, 21 Oct 2026 07:27:30 GMT".into()));
        r.headers
            .push(("Retry-After".into(), "Wed, 21 Oct 2026 07:28:15 GMT".into()));
        let e = process_token_response(&r).unwrap_err();
        assert!(e.to_string().contains("retry after 45 s"), "{e}");
        // A date already past: retry now. No Date header: the date is not read.
        r.headers.retain(|(k, _)| k != "Retry-After");
        r.headers
            .push(("Retry-After".into(), "Wed, 21 Oct 2026 07:00:00 GMT".into()));
        assert!(matches!(
            process_token_response(&r).unwrap_err(),
            Error::BadResponse {
                retry_after: Some(0),
                ..
            }
        ));
        r.headers.retain(|(k, _)| k != "Date");
        assert!(matches!(
            process_token_response(&r).unwrap_err(),
            Error::BadResponse {
                retry_after: None,
                ..
            }
        ));
    }

    #[test]
    fn html_5xx_malformed_and_missing_fields_are_clear() {
        let mut r = resp(
            503,
            "text/html",
            "<html><body>Service Unavailable</body></html>",
        );
        r.headers.push(("Retry-After".into(), "7".into()));
        let e = process_token_response(&r).unwrap_err();
        assert!(matches!(
            e,
            Error::BadResponse {
                retry_after: Some(7),
                status: Some(503),
                ..
            }
        ));
        assert!(
            e.to_string().contains("HTML page") && e.to_string().contains("retry after 7 s"),
            "{e}"
        );
        let e = process_token_response(&resp(200, "application/json", r#"{"access_token":"x","#))
            .unwrap_err();
        assert!(e.to_string().contains("malformed"), "{e}");
        let e =
            process_token_response(&resp(200, "application/json", r#"{"token_type":"Bearer"}"#))
                .unwrap_err();
        assert!(e.to_string().contains("access_token"), "{e}");
        assert_eq!(e.exit_code(), 4);
        let e = process_token_response(&resp(502, "text/plain", "")).unwrap_err();
        assert!(e.to_string().contains("empty body"), "{e}");
    }
}
