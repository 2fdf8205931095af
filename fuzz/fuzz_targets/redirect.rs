//! `authcode::process_redirect` on any URL: a code only from the exact redirect URI with
//! this sign-in's state; `access_denied` is a cancellation; everything else a clear
//! error, never a panic. The expected outcome is computed here from the rules.
#![no_main]

use std::sync::Arc;

use arbitrary::{Arbitrary, Unstructured};
use libfuzzer_sys::fuzz_target;
use tessera_core::authcode::{self, AuthCodeFlow, AuthorizeRequest};
use tessera_core::discovery::ProviderMetadata;
use tessera_core::env::CountingEntropy;
use tessera_core::scopes::ScopeSet;
use tessera_core::Error;
use tessera_fuzz::structured;
use url::Url;

const REDIRECT: &str = "http://localhost:8400/callback";

fn flow() -> (AuthCodeFlow, String) {
    let metadata: Arc<ProviderMetadata> = Arc::new(
        serde_json::from_value(serde_json::json!({
            "issuer": "https://idp.example.com",
            "authorization_endpoint": "https://idp.example.com/authorize",
            "token_endpoint": "https://idp.example.com/token"
        }))
        .expect("metadata"),
    );
    let redirect = Url::parse(REDIRECT).expect("redirect");
    let scopes = ScopeSet::parse("openid profile offline_access");
    let flow = authcode::begin(
        &AuthorizeRequest {
            metadata: &metadata,
            client_id: "cid",
            redirect_uri: &redirect,
            scopes: &scopes,
            prompt: None,
            login_hint: None,
            domain_hint: None,
            claims: None,
            entra: false,
        },
        &CountingEntropy::default(),
        1000,
    );
    let state = flow
        .authorize_url()
        .query_pairs()
        .find(|(k, _)| k == "state")
        .map(|(_, v)| v.into_owned())
        .expect("state");
    (flow, state)
}

fn pick<'a>(u: &mut Unstructured<'a>, list: &[&str]) -> arbitrary::Result<String> {
    Ok(if u.ratio(7, 8)? {
        list[u.choose_index(list.len())?].to_string()
    } else {
        String::arbitrary(u)?
    })
}

/// A URL near the redirect URI, as text.
fn near_url(u: &mut Unstructured<'_>, state: &str) -> arbitrary::Result<String> {
    let scheme = pick(
        u,
        &["http", "http", "HTTP", "https", "ftp", "javascript", "file"],
    )?;
    let userinfo = pick(
        u,
        &["", "", "", "user@", "user:pw@", ":@", "localhost:8400@"],
    )?;
    let host = pick(
        u,
        &[
            "localhost",
            "localhost",
            "LOCALHOST",
            "LocalHost",
            "127.0.0.1",
            "[::1]",
            "localhost.",
            "localhost.evil.example",
            "evil.example",
            "%6cocalhost",
            "",
        ],
    )?;
    let port = pick(
        u,
        &[
            ":8400", ":8400", ":08400", "", ":80", ":8401", ":65536", ":",
        ],
    )?;
    let path = pick(
        u,
        &[
            "/callback",
            "/callback",
            "/callback/",
            "/callbackx",
            "/Callback",
            "/x/../callback",
            "/%63allback",
            "/callback;x",
            "//callback",
            "",
        ],
    )?;
    let mut params = Vec::new();
    for _ in 0..u.int_in_range(0..=5)? {
        let name = pick(
            u,
            &[
                "code",
                "state",
                "error",
                "error_description",
                "error_uri",
                "suberror",
                "st%61te",
                "CODE",
            ],
        )?;
        let value = match u.int_in_range(0..=5)? {
            0 | 1 => state.to_string(),
            2 => String::new(),
            3 => pick(
                u,
                &[
                    "access_denied",
                    "invalid_scope",
                    "abc",
                    "%00",
                    "+",
                    "a%2Bb",
                    "%ZZ",
                ],
            )?,
            4 => format!("{state}x"),
            _ => String::arbitrary(u)?,
        };
        params.push(if u.ratio(1, 8)? {
            name
        } else {
            format!("{name}={value}")
        });
    }
    let joined = params.join(if u.ratio(7, 8)? { "&" } else { ";" });
    let tail = match u.int_in_range(0..=3)? {
        0 => format!("#{joined}"),
        1 => format!("?#{joined}"),
        2 => format!("?{}#{joined}", String::arbitrary(u)?),
        _ => format!("?{joined}"),
    };
    Ok(format!("{scheme}://{userinfo}{host}{port}{path}{tail}"))
}

fn check(flow: &AuthCodeFlow, state: &str, url: &Url) {
    let result = authcode::process_redirect(flow, url);
    if let Err(e @ (Error::Validation(_) | Error::BadResponse { .. })) = &result {
        assert!(
            !format!("{e} {e:?}").contains(state),
            "an error never shows the state"
        );
    }
    let expected = Url::parse(REDIRECT).expect("redirect");
    let ours = url.scheme() == "http"
        && url.host_str().map(str::to_ascii_lowercase).as_deref() == Some("localhost")
        && url.port_or_known_default() == Some(8400)
        && url.path() == "/callback"
        && url.username().is_empty();
    assert_eq!(
        ours,
        authcode::redirect_matches(&expected, url),
        "redirect_matches disagrees for {url}"
    );
    if !ours {
        assert!(
            matches!(result, Err(Error::Validation(_))),
            "a foreign URL is refused: {url} -> {result:?}"
        );
        return;
    }
    let mut params: Vec<(String, String)> = url.query_pairs().into_owned().collect();
    if params.is_empty() {
        params = url
            .fragment()
            .map(|f| {
                url::form_urlencoded::parse(f.as_bytes())
                    .into_owned()
                    .collect()
            })
            .unwrap_or_default();
    }
    let first = |k: &str| params.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
    if first("state").as_deref() != Some(state) {
        assert!(
            matches!(result, Err(Error::Validation(_))),
            "a missing or forged state is refused: {url} -> {result:?}"
        );
        return;
    }
    match (first("error"), first("code")) {
        (Some(e), _) if e == "access_denied" => {
            assert!(matches!(result, Err(Error::Cancelled)), "{result:?}")
        }
        (Some(e), _) => match result {
            Err(Error::Provider(p)) => assert_eq!(p.error, e),
            other => panic!("an error redirect gives the provider's error: {url} -> {other:?}"),
        },
        (None, Some(code)) if !code.is_empty() => match result {
            Ok(c) => assert_eq!(c.secret(), &code),
            other => panic!("a code with the right state is accepted: {url} -> {other:?}"),
        },
        _ => assert!(
            matches!(result, Err(Error::BadResponse { .. })),
            "no code, no error: {url} -> {result:?}"
        ),
    }
}

fuzz_target!(|data: &[u8]| {
    let (flow, state) = flow();
    let text = match structured(data) {
        None => String::from_utf8_lossy(data).into_owned(),
        Some(rest) => match near_url(&mut Unstructured::new(rest), &state) {
            Ok(t) => t,
            Err(_) => return,
        },
    };
    if let Ok(url) = Url::parse(&text) {
        check(&flow, &state, &url);
    }
});
