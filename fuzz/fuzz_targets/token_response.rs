//! Token endpoint responses: `token::process_token_response`,
//! `device::process_device_token_response` and `refresh::classify_refresh_error` agree
//! with each other and with the HTTP status; errors are typed and never show a token; a
//! parsed response's `Debug` redacts its secrets; its ID token and `client_info` are
//! checked without panicking.
#![no_main]

use arbitrary::{Arbitrary, Unstructured};
use libfuzzer_sys::fuzz_target;
use serde_json::Value;
use tessera_core::device::{
    process_device_authorization_response, process_device_token_response, Poll,
};
use tessera_core::discovery::ProviderMetadata;
use tessera_core::http::HttpResponse;
use tessera_core::id_token::{self, IdTokenCheck};
use tessera_core::refresh::classify_refresh_error;
use tessera_core::token::process_token_response;
use tessera_core::Error;
use tessera_fuzz::{b64url, object, structured, Headers, Json, Key, Status, Str};

/// Planted in secret fields; must never appear in an error or a `Debug`.
const MARK: &str = "SECRETMARK";

#[derive(Debug, Arbitrary)]
enum Field {
    /// A secret value (token fields only).
    Secret(u8),
    Str(Str),
    Json(Json),
    /// An ID token: base64url JSON claims.
    IdToken(Vec<(Key, Json)>),
}

#[derive(Debug, Arbitrary)]
struct Input {
    status: Status,
    headers: Headers,
    fields: Vec<(Key, Field)>,
    not_json: Option<Vec<u8>>,
}

/// The body, and whether the marks in it are exactly the planted ones (a mark the
/// fuzzer spelled elsewhere, say in an `error_description`, may be echoed legitimately).
fn body_of(input: &Input) -> (Vec<u8>, bool) {
    if let Some(raw) = &input.not_json {
        return (raw.clone(), false);
    }
    let mut planted = 0;
    let mut m = serde_json::Map::new();
    for (k, f) in &input.fields {
        let secret_field = matches!(
            k.0.as_str(),
            "access_token" | "refresh_token" | "id_token" | "device_code"
        );
        let v = match f {
            Field::Secret(n) if secret_field => {
                planted += 1;
                Value::String(format!("{MARK}{n}"))
            }
            Field::Secret(_) => continue,
            Field::Str(s) => Value::String(s.0.clone()),
            Field::Json(j) => j.to_value(),
            Field::IdToken(claims) => {
                let c = Value::Object(object(claims)).to_string();
                Value::String(format!(
                    "{}.{}.",
                    b64url(br#"{"alg":"none"}"#),
                    b64url(c.as_bytes())
                ))
            }
        };
        m.insert(k.0.clone(), v);
    }
    let text = Value::Object(m).to_string();
    let marks = text.matches(MARK).count() == planted;
    (text.into_bytes(), marks)
}

fn check(response: &HttpResponse, marks: bool) {
    let no_secret = |what: &str, text: &str| {
        assert!(
            !marks || !text.contains(MARK),
            "{what} shows a secret: {text}"
        );
    };
    let token = process_token_response(response);
    match &token {
        Ok(t) => {
            assert_eq!(response.status, 200, "tokens only from a 200");
            no_secret("a token response's Debug", &format!("{t:?}"));
            let metadata: ProviderMetadata = serde_json::from_value(serde_json::json!({
                "issuer": "https://login.microsoftonline.com/{tenantid}/v2.0",
                "authorization_endpoint": "https://login.microsoftonline.com/common/oauth2/v2.0/authorize",
                "token_endpoint": "https://login.microsoftonline.com/common/oauth2/v2.0/token"
            }))
            .expect("metadata");
            if let Some(idt) = &t.id_token {
                if let Ok(claims) = id_token::claims(idt.secret()) {
                    for now in [0, 1_800_000_000, i64::MAX, i64::MIN] {
                        let check = IdTokenCheck {
                            metadata: &metadata,
                            client_id: "cid",
                            nonce: Some("n"),
                            now,
                        };
                        if let Err(e) = id_token::validate(&claims, &check) {
                            no_secret("an ID token validation error", &format!("{e} {e:?}"));
                        }
                    }
                    let _ = id_token::identity(&claims, t.client_info.as_deref());
                }
            }
            if let Some(ci) = &t.client_info {
                let _ = id_token::parse_client_info(ci);
            }
        }
        Err(e) => {
            no_secret("a token error", &format!("{e} {e:?}"));
            match e {
                Error::Provider(p) => {
                    assert!(
                        (400..500).contains(&response.status),
                        "an OAuth error only from a 4xx"
                    );
                    assert!(!p.error.is_empty());
                    assert_eq!(p.status, Some(response.status));
                }
                Error::BadResponse {
                    status,
                    retry_after,
                    ..
                } => {
                    assert_eq!(*status, Some(response.status));
                    let header = response
                        .header("retry-after")
                        .and_then(|v| v.trim().parse::<u64>().ok());
                    if response.status != 200 {
                        assert_eq!(*retry_after, header);
                    }
                }
                other => panic!("unexpected error kind from a token response: {other:?}"),
            }
        }
    }

    let poll = process_device_token_response(response);
    match (&token, &poll) {
        (Ok(_), Ok(Poll::Done(_))) => {}
        (Err(Error::Provider(p)), Ok(Poll::Pending)) => {
            assert_eq!(p.error, "authorization_pending")
        }
        (Err(Error::Provider(p)), Ok(Poll::SlowDown)) => assert_eq!(p.error, "slow_down"),
        (Err(Error::Provider(p)), Err(Error::Cancelled)) => assert!(matches!(
            p.error.as_str(),
            "access_denied" | "authorization_declined"
        )),
        (Err(Error::Provider(p)), Err(Error::InteractionRequired { .. })) => {
            assert!(matches!(p.error.as_str(), "expired_token" | "code_expired"))
        }
        (Err(Error::Provider(a)), Err(Error::Provider(b))) => assert_eq!(a.error, b.error),
        (Err(Error::BadResponse { .. }), Err(Error::BadResponse { .. })) => {}
        (t, p) => panic!("device poll disagrees with the token response: {t:?} vs {p:?}"),
    }
    if let Err(e) = &poll {
        no_secret("a device poll error", &format!("{e} {e:?}"));
    }

    if let Err(e) = token {
        let was_provider = matches!(e, Error::Provider(_));
        let exit = e.exit_code();
        match classify_refresh_error(e) {
            Error::InteractionRequired { provider, .. } => {
                assert!(
                    was_provider && provider.is_some(),
                    "only OAuth errors become interaction required"
                );
            }
            other => {
                assert_eq!(other.exit_code(), exit, "other errors stay what they were");
                no_secret("a refresh error", &format!("{other} {other:?}"));
            }
        }
    }

    if let Err(e) = process_device_authorization_response(response) {
        no_secret("a device authorization error", &format!("{e} {e:?}"));
    } else {
        assert_eq!(response.status, 200);
    }
}

fuzz_target!(|data: &[u8]| {
    match structured(data) {
        None => {
            for status in [200, 400, 500] {
                let headers = vec![("content-type".to_string(), "application/json".to_string())];
                check(
                    &HttpResponse {
                        status,
                        headers,
                        body: data.to_vec(),
                    },
                    false,
                );
            }
        }
        Some(rest) => {
            let Ok(input) = Input::arbitrary(&mut Unstructured::new(rest)) else {
                return;
            };
            let (body, marks) = body_of(&input);
            check(
                &HttpResponse {
                    status: input.status.0,
                    headers: input.headers.0,
                    body,
                },
                marks,
            );
        }
    }
});
