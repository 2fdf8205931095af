//! The device authorization grant (RFC 8628): ask for a code, show it, poll.
//! `authorization_pending` waits, `slow_down` adds 5 seconds to the interval,
//! `expired_token` ends, `access_denied` / `authorization_declined` is a cancellation.

use serde::Deserialize;
use url::Url;

use crate::discovery::ProviderMetadata;
use crate::error::{Error, InteractionReason, Result};
use crate::http::{HttpRequest, HttpResponse};
use crate::scopes::ScopeSet;
use crate::secret::DeviceCode;
use crate::token::{error_from_response, process_token_response, token_request, TokenResponse};

pub const GRANT_TYPE: &str = "urn:ietf:params:oauth:grant-type:device_code";
/// RFC 8628 §3.5: "the client MUST use 5 as the default" interval.
pub const DEFAULT_INTERVAL_SECS: u64 = 5;
pub const SLOW_DOWN_STEP_SECS: u64 = 5;

#[derive(Debug, Clone, Deserialize)]
pub struct DeviceAuthorization {
    pub device_code: DeviceCode,
    pub user_code: String,
    /// Entra's v1 endpoint says `verification_url`.
    #[serde(alias = "verification_url")]
    pub verification_uri: Url,
    #[serde(default)]
    pub verification_uri_complete: Option<Url>,
    pub expires_in: u64,
    #[serde(default)]
    pub interval: Option<u64>,
    #[serde(default)]
    pub message: Option<String>,
}

impl DeviceAuthorization {
    pub fn message(&self) -> String {
        self.message.clone().unwrap_or_else(|| {
            format!(
                "To sign in, open {} in a browser and enter the code {}.",
                self.verification_uri, self.user_code
            )
        })
    }
}

pub fn device_authorization_request(
    metadata: &ProviderMetadata,
    client_id: &str,
    scopes: &ScopeSet,
) -> Result<HttpRequest> {
    let endpoint = metadata.device_authorization_endpoint.as_ref().ok_or_else(|| {
        Error::Config("this identity provider does not offer the device code flow (no device_authorization_endpoint)".into())
    })?;
    let scope = scopes.to_param();
    Ok(HttpRequest::post_form(
        endpoint.clone(),
        [("client_id", client_id), ("scope", scope.as_str())],
    ))
}

pub fn process_device_authorization_response(
    response: &HttpResponse,
) -> Result<DeviceAuthorization> {
    if response.status != 200 {
        return Err(error_from_response("device authorization", response));
    }
    serde_json::from_slice(&response.body).map_err(|e| Error::BadResponse {
        what: "device authorization",
        detail: format!("malformed response ({e})"),
        status: Some(200),
        retry_after: None,
    })
}

pub fn device_token_request(
    metadata: &ProviderMetadata,
    client_id: &str,
    auth: &DeviceAuthorization,
) -> HttpRequest {
    token_request(
        &metadata.token_endpoint,
        client_id,
        &[
            ("grant_type", GRANT_TYPE),
            ("device_code", auth.device_code.secret()),
        ],
    )
}

/// The outcome of one poll.
#[derive(Debug)]
pub enum Poll {
    Pending,
    SlowDown,
    Done(Box<TokenResponse>),
}

pub fn process_device_token_response(response: &HttpResponse) -> Result<Poll> {
    match process_token_response(response) {
        Ok(t) => Ok(Poll::Done(Box::new(t))),
        Err(Error::Provider(p)) => match p.error.as_str() {
            "authorization_pending" => Ok(Poll::Pending),
            "slow_down" => Ok(Poll::SlowDown),
            "access_denied" | "authorization_declined" => Err(Error::Cancelled),
            "expired_token" | "code_expired" => {
                Err(Error::interaction(InteractionReason::DeviceCodeExpired))
            }
            _ => Err(Error::Provider(p)),
        },
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resp(status: u16, body: &str) -> HttpResponse {
        HttpResponse {
            status,
            headers: vec![("content-type".into(), "application/json".into())],
            body: body.as_bytes().to_vec(),
        }
    }

    #[test]
    fn poll_outcomes() {
        assert!(matches!(
            process_device_token_response(&resp(400, r#"{"error":"authorization_pending"}"#)),
            Ok(Poll::Pending)
        ));
        assert!(matches!(
            process_device_token_response(&resp(400, r#"{"error":"slow_down"}"#)),
            Ok(Poll::SlowDown)
        ));
        assert!(matches!(
            process_device_token_response(&resp(400, r#"{"error":"authorization_declined"}"#)),
            Err(Error::Cancelled)
        ));
        let e =
            process_device_token_response(&resp(400, r#"{"error":"expired_token"}"#)).unwrap_err();
        assert!(e.to_string().contains("expired"));
        assert!(matches!(
            process_device_token_response(&resp(
                200,
                r#"{"access_token":"a","token_type":"Bearer"}"#
            )),
            Ok(Poll::Done(_))
        ));
        assert!(matches!(
            process_device_token_response(&resp(500, "oops")),
            Err(Error::BadResponse { .. })
        ));
    }

    #[test]
    fn authorization_response_and_v1_alias() {
        let a = process_device_authorization_response(&resp(
            200,
            r#"{"device_code":"dc","user_code":"ABCD","verification_url":"https://microsoft.com/devicelogin","expires_in":"900"}"#.replace("\"900\"", "900").as_str(),
        ))
        .unwrap();
        assert_eq!(
            a.verification_uri.as_str(),
            "https://microsoft.com/devicelogin"
        );
        assert!(a.message().contains("ABCD"));
        assert!(!format!("{a:?}").contains("\"dc\""));
        assert!(
            process_device_authorization_response(&resp(400, r#"{"error":"invalid_client"}"#))
                .is_err()
        );
    }
}
