//! Entra-shaped errors (`error`, `error_description` with `AADSTSnnnnn: `, `error_codes`, ...).

use crate::util::{entra_timestamp, guid, is_guid};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};

/// Per-request diagnostics, echoed in errors and response headers the way Entra does.
#[derive(Debug, Clone)]
pub struct Diag {
    pub trace_id: String,
    pub correlation_id: String,
    pub timestamp: String,
}

impl Diag {
    /// Uses the client's `client-request-id` header as the correlation id when it is a GUID.
    pub fn from_headers(headers: &HeaderMap) -> Diag {
        let correlation_id = headers
            .get("client-request-id")
            .and_then(|v| v.to_str().ok())
            .filter(|v| is_guid(v))
            .map(str::to_ascii_lowercase)
            .unwrap_or_else(guid);
        Diag {
            trace_id: guid(),
            correlation_id,
            timestamp: entra_timestamp(),
        }
    }

    /// Adds `x-ms-request-id` and `client-request-id` headers.
    pub fn apply(&self, resp: &mut Response) {
        let h = resp.headers_mut();
        if let Ok(v) = HeaderValue::from_str(&self.trace_id) {
            h.insert("x-ms-request-id", v);
        }
        if let Ok(v) = HeaderValue::from_str(&self.correlation_id) {
            h.insert("client-request-id", v);
        }
    }
}

/// An Entra error: OAuth `error`, AADSTS code and message.
#[derive(Debug, Clone)]
pub struct AadError {
    pub status: StatusCode,
    pub error: &'static str,
    pub code: u32,
    pub message: String,
    pub suberror: Option<&'static str>,
    pub claims: Option<String>,
}

impl AadError {
    /// A 400 error.
    pub fn new(error: &'static str, code: u32, message: impl Into<String>) -> AadError {
        AadError {
            status: StatusCode::BAD_REQUEST,
            error,
            code,
            message: message.into(),
            suberror: None,
            claims: None,
        }
    }

    pub fn status(mut self, status: StatusCode) -> AadError {
        self.status = status;
        self
    }

    pub fn suberror(mut self, s: &'static str) -> AadError {
        self.suberror = Some(s);
        self
    }

    pub fn claims(mut self, c: impl Into<String>) -> AadError {
        self.claims = Some(c.into());
        self
    }

    /// `AADSTS900144`: a required parameter is missing.
    pub fn missing(name: &str) -> AadError {
        AadError::new(
            "invalid_request",
            900144,
            format!("The request body must contain the following parameter: '{name}'."),
        )
    }

    /// `AADSTS90002`: unknown tenant.
    pub fn unknown_tenant(segment: &str) -> AadError {
        AadError::new(
            "invalid_request",
            90002,
            format!(
                "Tenant '{segment}' not found. Check to make sure you have the correct tenant ID and are \
                 signing into the correct cloud. Check with your subscription administrator, this may \
                 happen if there are no active subscriptions for the tenant."
            ),
        )
    }

    /// `AADSTS9002313`: malformed request.
    pub fn malformed(detail: &str) -> AadError {
        let mut m = "Invalid request. Request is malformed or invalid.".to_string();
        if !detail.is_empty() {
            m.push(' ');
            m.push_str(detail);
        }
        AadError::new("invalid_request", 9002313, m)
    }

    /// The `AADSTSnnnnn: message\r\nTrace ID: ...` description.
    pub fn description(&self, d: &Diag) -> String {
        format!(
            "AADSTS{}: {}\r\nTrace ID: {}\r\nCorrelation ID: {}\r\nTimestamp: {}",
            self.code, self.message, d.trace_id, d.correlation_id, d.timestamp
        )
    }

    /// The JSON body Entra's token endpoint returns.
    pub fn body(&self, base: &url::Url, d: &Diag) -> Value {
        let mut v = json!({
            "error": self.error,
            "error_description": self.description(d),
            "error_codes": [self.code],
            "timestamp": d.timestamp,
            "trace_id": d.trace_id,
            "correlation_id": d.correlation_id,
            "error_uri": format!("{base}error?code={}", self.code),
        });
        if let Some(s) = self.suberror {
            v["suberror"] = json!(s);
        }
        if let Some(c) = &self.claims {
            v["claims"] = json!(c);
        }
        v
    }

    /// The JSON error response with Entra's headers.
    pub fn json_response(&self, base: &url::Url, d: &Diag) -> Response {
        json_response(self.status, &self.body(base, d), d)
    }
}

/// A JSON response with `Cache-Control: no-store` and the diagnostic headers.
pub fn json_response(status: StatusCode, body: &Value, d: &Diag) -> Response {
    let mut resp = (
        status,
        [
            ("content-type", "application/json; charset=utf-8"),
            ("cache-control", "no-store, no-cache"),
            ("pragma", "no-cache"),
        ],
        body.to_string(),
    )
        .into_response();
    d.apply(&mut resp);
    resp
}

/// Short descriptions for the `/error?code=` page.
pub fn known_code(code: u32) -> Option<&'static str> {
    Some(match code {
        28000 => "The scope parameter names more than one resource; request tokens for one resource at a time.",
        50020 => "The user account does not exist in the tenant and cannot sign in through this authority.",
        50034 => "The user account does not exist in the directory.",
        50049 => "Unknown or invalid instance (authority host).",
        50058 => "A silent sign-in request was sent but no user is signed in.",
        50076 => "Multi-factor authentication (or another interaction) is required: sign in interactively.",
        50126 => "Error validating credentials due to invalid username or password.",
        50148 => "The code_verifier does not match the code_challenge supplied in the authorization request for PKCE.",
        54005 => "The authorization code was already redeemed.",
        65001 => "The user has not consented to the application for the requested scopes.",
        65004 => "The user declined to consent to access the app.",
        70000 => "The provided grant is invalid or malformed.",
        70003 => "The app requested an unsupported grant type.",
        70008 => "The provided authorization code or refresh token has expired or was revoked.",
        70011 => "The provided value for the input parameter 'scope' is not valid.",
        70016 => "Authorization is pending: the user has not yet completed the device code sign-in.",
        70019 => "The device code expired.",
        90002 => "Tenant not found.",
        90033 => "A transient error has occurred. Please try again.",
        90102 => "The redirect_uri value must be a valid absolute URI.",
        500011 => "The resource principal was not found in the tenant.",
        500112 => "The reply address does not match the one used when requesting the authorization code.",
        501491 => "Invalid size of the code_challenge parameter.",
        700005 => "The authorization code was issued for another tenant.",
        700025 => "The client is public, so neither 'client_assertion' nor 'client_secret' should be presented.",
        700054 => "The requested response_type is not enabled for the application.",
        700082 => "The refresh token has expired due to inactivity.",
        900144 => "The request is missing a required parameter.",
        9002313 => "Invalid request: the request is malformed or invalid.",
        _ => return None,
    })
}
