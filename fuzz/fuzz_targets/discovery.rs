//! `discovery::process_discovery_response` (and instance discovery) on any status,
//! headers and body, for an Entra and a generic OIDC authority: a document is accepted
//! only from a 200 whose endpoints are https (or loopback http) without credentials,
//! and, for a generic issuer, whose `issuer` is exactly the configured one.
#![no_main]

use arbitrary::{Arbitrary, Unstructured};
use libfuzzer_sys::fuzz_target;
use serde_json::Value;
use tessera_core::authority::{is_loopback_host, Authority};
use tessera_core::discovery::{
    process_discovery_response, process_instance_discovery_response, TENANT_TEMPLATE,
};
use tessera_core::http::HttpResponse;
use tessera_core::Error;
use tessera_fuzz::{object, structured, Headers, Json, Key, Status, Str};

#[derive(Debug, Arbitrary)]
enum Field {
    Absent,
    Str(Str),
    Json(Json),
}

#[derive(Debug, Arbitrary)]
struct Doc {
    issuer: Field,
    authorization_endpoint: Field,
    token_endpoint: Field,
    device_authorization_endpoint: Field,
    end_session_endpoint: Field,
    jwks_uri: Field,
    aliases: Vec<Str>,
    extra: Vec<(Key, Json)>,
}

#[derive(Debug, Arbitrary)]
struct Input {
    authority: u8,
    status: Status,
    headers: Headers,
    doc: Doc,
}

fn body_of(doc: &Doc) -> Vec<u8> {
    let mut m = object(&doc.extra);
    for (name, f) in [
        ("issuer", &doc.issuer),
        ("authorization_endpoint", &doc.authorization_endpoint),
        ("token_endpoint", &doc.token_endpoint),
        (
            "device_authorization_endpoint",
            &doc.device_authorization_endpoint,
        ),
        ("end_session_endpoint", &doc.end_session_endpoint),
        ("jwks_uri", &doc.jwks_uri),
    ] {
        match f {
            Field::Absent => {}
            Field::Str(s) => {
                m.insert(name.into(), Value::String(s.0.clone()));
            }
            Field::Json(j) => {
                m.insert(name.into(), j.to_value());
            }
        }
    }
    if !doc.aliases.is_empty() {
        let aliases: Vec<Value> = doc
            .aliases
            .iter()
            .map(|a| Value::String(a.0.clone()))
            .collect();
        m.insert(
            "metadata".into(),
            serde_json::json!([{ "preferred_network": "x", "aliases": aliases }]),
        );
    }
    Value::Object(m).to_string().into_bytes()
}

fn authorities() -> Vec<Authority> {
    vec![
        Authority::entra("https://login.microsoftonline.com/common").expect("entra"),
        Authority::entra("https://login.microsoftonline.com/11111111-aaaa-4aaa-aaaa-111111111111")
            .expect("tenant"),
        Authority::entra("https://idp.example.com/common").expect("custom entra host"),
        Authority::oidc("https://idp.example.com/realm").expect("oidc"),
        Authority::oidc("http://127.0.0.1:8479").expect("loopback oidc"),
    ]
}

fn safe(url: &url::Url) -> bool {
    let host = url.host_str().unwrap_or_default();
    !host.is_empty()
        && (url.scheme() == "https" || (url.scheme() == "http" && is_loopback_host(host)))
        && url.username().is_empty()
        && url.password().is_none()
}

fn check(authority: &Authority, response: &HttpResponse) {
    match process_discovery_response(authority, response) {
        Ok(m) => {
            assert_eq!(response.status, 200, "a document only from a 200");
            for url in [
                Some(&m.authorization_endpoint),
                Some(&m.token_endpoint),
                m.device_authorization_endpoint.as_ref(),
                m.end_session_endpoint.as_ref(),
            ]
            .into_iter()
            .flatten()
            {
                assert!(safe(url), "an insecure endpoint was accepted: {url}");
            }
            if authority.is_entra_like() {
                let filled = m.issuer.replace(TENANT_TEMPLATE, "t");
                assert!(
                    url::Url::parse(filled.trim()).is_ok_and(|u| safe(&u)),
                    "Entra issuer {:?}",
                    m.issuer
                );
            } else {
                assert_eq!(
                    m.issuer.trim_end_matches('/'),
                    authority.as_str(),
                    "a generic issuer must be the configured one"
                );
            }
            let _ = m.issuer_for(Some("t1"));
        }
        Err(e) => {
            assert!(
                matches!(
                    e,
                    Error::Validation(_) | Error::BadResponse { .. } | Error::Config(_)
                ),
                "{e:?}"
            );
            let _ = (e.to_string(), e.exit_code());
        }
    }
    match process_instance_discovery_response(authority, response) {
        Ok(aliases) => {
            assert_eq!(response.status, 200);
            let host = authority.environment();
            assert!(
                aliases.iter().any(|a| a.eq_ignore_ascii_case(&host)),
                "the host is among its aliases: {aliases:?}"
            );
        }
        Err(e) => assert!(matches!(e, Error::BadResponse { .. }), "{e:?}"),
    }
}

fuzz_target!(|data: &[u8]| {
    let all = authorities();
    match structured(data) {
        None => {
            for authority in &all {
                for status in [200, 400, 503] {
                    let headers =
                        vec![("content-type".to_string(), "application/json".to_string())];
                    check(
                        authority,
                        &HttpResponse {
                            status,
                            headers,
                            body: data.to_vec(),
                        },
                    );
                }
            }
        }
        Some(rest) => {
            let Ok(input) = Input::arbitrary(&mut Unstructured::new(rest)) else {
                return;
            };
            let authority = &all[usize::from(input.authority) % all.len()];
            let response = HttpResponse {
                status: input.status.0,
                headers: input.headers.0,
                body: body_of(&input.doc),
            };
            check(authority, &response);
        }
    }
});
