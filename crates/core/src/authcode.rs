//! The authorization code flow with PKCE (S256), `state` and `nonce`.
//!
//! `begin` builds the authorize URL and remembers the secrets; `process_redirect` checks
//! the URL the user agent caught; `code_redemption_request` builds the token request.

use std::sync::Arc;

use url::Url;

use crate::discovery::ProviderMetadata;
use crate::env::{Entropy, UnixTime};
use crate::error::{Error, ProviderError, Result};
use crate::http::HttpRequest;
use crate::scopes::ScopeSet;
use crate::secret::{AuthorizationCode, CsrfToken, Nonce, PkceCodeChallenge, PkceCodeVerifier};
use crate::token::token_request;

/// What the user asked for.
#[derive(Debug, Clone)]
pub struct AuthorizeRequest<'a> {
    pub metadata: &'a Arc<ProviderMetadata>,
    pub client_id: &'a str,
    pub redirect_uri: &'a Url,
    /// Sent as is: add the reserved OpenID scopes before.
    pub scopes: &'a ScopeSet,
    pub prompt: Option<&'a str>,
    pub login_hint: Option<&'a str>,
    pub domain_hint: Option<&'a str>,
    pub claims: Option<&'a str>,
    /// Entra: ask for `client_info`.
    pub entra: bool,
}

/// A sign-in in progress. Holds the PKCE verifier, state and nonce; `Debug` redacts them.
#[derive(Debug)]
pub struct AuthCodeFlow {
    authorize_url: Url,
    redirect_uri: Url,
    state: CsrfToken,
    pub(crate) nonce: Nonce,
    pub(crate) verifier: PkceCodeVerifier,
    pub(crate) scopes: ScopeSet,
    pub(crate) metadata: Arc<ProviderMetadata>,
    pub created_at: UnixTime,
}

impl AuthCodeFlow {
    /// The page to show.
    pub fn authorize_url(&self) -> &Url {
        &self.authorize_url
    }
    /// The URL to catch (exactly).
    pub fn redirect_uri(&self) -> &Url {
        &self.redirect_uri
    }
    /// The `state` the authorization response must carry.
    pub fn state(&self) -> &CsrfToken {
        &self.state
    }
}

pub fn begin(req: &AuthorizeRequest<'_>, entropy: &dyn Entropy, now: UnixTime) -> AuthCodeFlow {
    let state = CsrfToken::new(entropy.token(24));
    let nonce = Nonce::new(entropy.token(24));
    let verifier = PkceCodeVerifier::new(entropy.token(32));
    let challenge = PkceCodeChallenge::from_code_verifier_sha256(&verifier);
    let mut url = req.metadata.authorization_endpoint.clone();
    {
        let mut q = url.query_pairs_mut();
        q.append_pair("client_id", req.client_id)
            .append_pair("response_type", "code")
            .append_pair("redirect_uri", req.redirect_uri.as_str())
            .append_pair("scope", &req.scopes.to_param())
            .append_pair("state", state.secret())
            .append_pair("nonce", nonce.secret())
            .append_pair("code_challenge", challenge.as_str())
            .append_pair("code_challenge_method", challenge.method().as_str())
            .append_pair("response_mode", "query");
        for (k, v) in [
            ("prompt", req.prompt),
            ("login_hint", req.login_hint),
            ("domain_hint", req.domain_hint),
            ("claims", req.claims),
        ] {
            if let Some(v) = v.filter(|v| !v.is_empty()) {
                q.append_pair(k, v);
            }
        }
        if req.entra {
            q.append_pair("client_info", "1");
        }
    }
    AuthCodeFlow {
        authorize_url: url,
        redirect_uri: req.redirect_uri.clone(),
        state,
        nonce,
        verifier,
        scopes: req.scopes.clone(),
        metadata: req.metadata.clone(),
        created_at: now,
    }
}

/// Is `actual` the redirect URI? Scheme, host, port and path must be identical; the
/// query and fragment carry the response. A look-alike (another port, a longer path,
/// `localhost` for `127.0.0.1`) is not.
pub fn redirect_matches(expected: &Url, actual: &Url) -> bool {
    expected.scheme() == actual.scheme()
        && expected.host_str().map(str::to_ascii_lowercase)
            == actual.host_str().map(str::to_ascii_lowercase)
        && expected.port_or_known_default() == actual.port_or_known_default()
        && expected.path() == actual.path()
        && actual.username().is_empty()
}

/// The authorization response's parameters: the query (response_mode=query), or the
/// fragment when the query is empty (some providers answer there anyway).
fn response_params(redirected: &Url) -> Vec<(String, String)> {
    let params: Vec<(String, String)> = redirected.query_pairs().into_owned().collect();
    match redirected.fragment() {
        Some(f) if params.is_empty() => url::form_urlencoded::parse(f.as_bytes())
            .into_owned()
            .collect(),
        _ => params,
    }
}

/// Is `redirected` the redirect URI carrying this flow's `state` (the first one, as
/// [`process_redirect`] reads it)? Anything else is not this sign-in's response and must
/// not end it.
pub fn is_response_to(flow: &AuthCodeFlow, redirected: &Url) -> bool {
    redirect_matches(&flow.redirect_uri, redirected)
        && response_params(redirected)
            .iter()
            .find(|(k, _)| k == "state")
            .is_some_and(|(_, s)| s == flow.state.secret())
}

/// Check the URL the user agent was redirected to and take the code from it.
pub fn process_redirect(flow: &AuthCodeFlow, redirected: &Url) -> Result<AuthorizationCode> {
    if !redirect_matches(&flow.redirect_uri, redirected) {
        return Err(Error::Validation(
            "the sign-in ended at an unexpected address".into(),
        ));
    }
    let params = response_params(redirected);
    let get = |k: &str| params.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
    match get("state") {
        Some(s) if s == flow.state.secret() => {}
        Some(_) => {
            return Err(Error::Validation(
                "the response's state does not match this sign-in (possible CSRF)".into(),
            ))
        }
        None => return Err(Error::Validation("the response carries no state".into())),
    }
    // Before the error: an error response from another provider is not this one's.
    check_response_issuer(&flow.metadata, get("iss"))?;
    if let Some(error) = get("error") {
        if error == "access_denied" {
            return Err(Error::Cancelled);
        }
        return Err(Error::Provider(Box::new(ProviderError {
            error: error.to_string(),
            error_description: get("error_description").map(str::to_string),
            error_uri: get("error_uri").map(str::to_string),
            suberror: get("suberror").map(str::to_string),
            ..Default::default()
        })));
    }
    get("code")
        .filter(|c| !c.is_empty())
        .map(|c| AuthorizationCode::new(c.to_string()))
        .ok_or_else(|| Error::BadResponse {
            what: "authorization response",
            detail: "the provider redirected back without a code or an error".into(),
            status: None,
            retry_after: None,
        })
}

/// RFC 9207 §2.4, the mix-up defence: a provider that advertises the `iss` parameter must
/// send it, and an `iss`, when present, must name this flow's provider.
fn check_response_issuer(metadata: &ProviderMetadata, iss: Option<&str>) -> Result<()> {
    match iss {
        Some(iss) if metadata.is_response_issuer(iss) => Ok(()),
        Some(iss) => {
            let shown: String = iss.chars().take(200).collect();
            Err(Error::Validation(format!(
                "the authorization response was issued by {shown:?}, not by this sign-in's provider {:?} (possible mix-up attack)",
                metadata.issuer
            )))
        }
        None if metadata.authorization_response_iss_parameter_supported == Some(true) => {
            Err(Error::Validation(format!(
                "the authorization response carries no iss, but the provider {:?} says it always sends one (possible mix-up attack)",
                metadata.issuer
            )))
        }
        None => Ok(()),
    }
}

pub fn code_redemption_request(
    flow: &AuthCodeFlow,
    client_id: &str,
    code: &AuthorizationCode,
    entra: bool,
) -> HttpRequest {
    let scope = flow.scopes.to_param();
    let mut params = vec![
        ("grant_type", "authorization_code"),
        ("code", code.secret().as_str()),
        ("redirect_uri", flow.redirect_uri.as_str()),
        ("code_verifier", flow.verifier.secret().as_str()),
        ("scope", scope.as_str()),
    ];
    if entra {
        params.push(("client_info", "1"));
    }
    token_request(&flow.metadata.token_endpoint, client_id, &params)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::env::CountingEntropy;
    use sha2::Digest;

    fn flow() -> AuthCodeFlow {
        flow_with(serde_json::json!({
            "issuer": "https://idp.example.com",
            "authorization_endpoint": "https://idp.example.com/authorize?p=1",
            "token_endpoint": "https://idp.example.com/token"
        }))
    }

    fn flow_with(metadata: serde_json::Value) -> AuthCodeFlow {
        let metadata: Arc<ProviderMetadata> = Arc::new(serde_json::from_value(metadata).unwrap());
        let redirect = Url::parse("http://localhost:8400/callback").unwrap();
        let scopes = ScopeSet::parse("openid profile offline_access User.Read");
        begin(
            &AuthorizeRequest {
                metadata: &metadata,
                client_id: "cid",
                redirect_uri: &redirect,
                scopes: &scopes,
                prompt: Some("select_account"),
                login_hint: Some("alice@contoso.example"),
                domain_hint: None,
                claims: None,
                entra: true,
            },
            &CountingEntropy::default(),
            1000,
        )
    }

    fn q(url: &Url, k: &str) -> Option<String> {
        url.query_pairs()
            .find(|(n, _)| n == k)
            .map(|(_, v)| v.into_owned())
    }

    #[test]
    fn authorize_url_has_pkce_s256_state_nonce_and_hints() {
        let f = flow();
        let u = f.authorize_url();
        assert_eq!(q(u, "p").as_deref(), Some("1"), "existing query kept");
        assert_eq!(q(u, "code_challenge_method").as_deref(), Some("S256"));
        let expected = base64::Engine::encode(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD,
            sha2::Sha256::digest(f.verifier.secret().as_bytes()),
        );
        assert_eq!(q(u, "code_challenge").unwrap(), expected);
        assert_eq!(q(u, "state").as_deref(), Some(f.state.secret().as_str()));
        assert_eq!(q(u, "nonce").as_deref(), Some(f.nonce.secret()));
        assert_ne!(q(u, "state"), q(u, "nonce"));
        assert_eq!(q(u, "login_hint").as_deref(), Some("alice@contoso.example"));
        assert_eq!(q(u, "prompt").as_deref(), Some("select_account"));
        assert_eq!(q(u, "client_info").as_deref(), Some("1"));
        assert!(q(u, "domain_hint").is_none());
        assert!(!format!("{f:?}").contains(f.verifier.secret().as_str()));
    }

    #[test]
    fn only_the_redirect_uri_with_this_flows_state_is_its_response() {
        let f = flow();
        let state = f.state.secret().clone();
        let u = |s: &str| Url::parse(s).unwrap();
        for ours in [
            format!("http://localhost:8400/callback?code=c&state={state}"),
            format!("http://localhost:8400/callback?state={state}&error=access_denied"),
            format!("http://localhost:8400/callback#code=c&state={state}"),
            format!("http://localhost:8400/callback?state={state}&state=forged"),
        ] {
            assert!(is_response_to(&f, &u(&ours)), "{ours}");
        }
        for not_ours in [
            "http://localhost:8400/callback?code=c&state=forged".to_string(),
            "http://localhost:8400/callback?code=c".to_string(),
            "http://localhost:8400/callback?code=c&state=".to_string(),
            "http://localhost:8400/callback".to_string(),
            format!("http://localhost:8400/callback?state=forged&state={state}"),
            format!("http://localhost:8400/callback?code=c#state={state}"),
            format!("http://localhost:8400/callback?code=c&STATE={state}"),
            format!("http://localhost:8400/callback/x?code=c&state={state}"),
            format!("http://localhost:8401/callback?code=c&state={state}"),
            format!("http://evil.example/callback?code=c&state={state}"),
        ] {
            assert!(!is_response_to(&f, &u(&not_ours)), "{not_ours}");
        }
    }

    #[test]
    fn redirect_state_error_and_code() {
        let f = flow();
        let state = f.state.secret().clone();
        let at = |s: &str| Url::parse(&format!("http://localhost:8400/callback?{s}")).unwrap();
        let code = process_redirect(&f, &at(&format!("code=abc&state={state}"))).unwrap();
        assert_eq!(code.secret(), "abc");
        assert!(
            matches!(process_redirect(&f, &at("code=abc&state=forged")), Err(Error::Validation(m)) if m.contains("state"))
        );
        assert!(matches!(
            process_redirect(&f, &at("code=abc")),
            Err(Error::Validation(_))
        ));
        assert!(matches!(
            process_redirect(&f, &at(&format!("error=access_denied&state={state}"))),
            Err(Error::Cancelled)
        ));
        let e = process_redirect(
            &f,
            &at(&format!(
                "error=invalid_scope&error_description=AADSTS70011%3A+bad+scope&state={state}"
            )),
        )
        .unwrap_err();
        assert_eq!(
            e.to_string(),
            "the identity provider returned invalid_scope: AADSTS70011: bad scope"
        );
        let frag = Url::parse(&format!(
            "http://localhost:8400/callback#code=xyz&state={state}"
        ))
        .unwrap();
        assert_eq!(process_redirect(&f, &frag).unwrap().secret(), "xyz");
        assert!(process_redirect(
            &f,
            &Url::parse(&format!(
                "http://localhost:8401/callback?code=a&state={state}"
            ))
            .unwrap()
        )
        .is_err());
    }

    fn is_mix_up(r: Result<AuthorizationCode>) -> bool {
        matches!(r, Err(Error::Validation(m)) if m.contains("mix-up"))
    }

    #[test]
    fn an_advertised_iss_must_be_present_and_the_providers() {
        let f = flow_with(serde_json::json!({
            "issuer": "https://idp.example.com/realm",
            "authorization_endpoint": "https://idp.example.com/authorize",
            "token_endpoint": "https://idp.example.com/token",
            "authorization_response_iss_parameter_supported": true
        }));
        let state = f.state.secret().clone();
        let at = |s: &str| {
            Url::parse(&format!("http://localhost:8400/callback?{s}&state={state}")).unwrap()
        };
        let ours = "iss=https%3A%2F%2Fidp.example.com%2Frealm";
        assert_eq!(
            process_redirect(&f, &at(&format!("code=abc&{ours}")))
                .unwrap()
                .secret(),
            "abc"
        );
        assert!(is_mix_up(process_redirect(&f, &at("code=abc"))));
        assert!(is_mix_up(process_redirect(
            &f,
            &at("code=abc&iss=https%3A%2F%2Fevil.example%2Frealm")
        )));
        assert!(is_mix_up(process_redirect(
            &f,
            &at("code=abc&iss=https%3A%2F%2Fidp.example.com%2Frealm%2F")
        )));
        // Error responses too: a foreign or unsigned error is not this provider's.
        assert!(matches!(
            process_redirect(&f, &at(&format!("error=access_denied&{ours}"))),
            Err(Error::Cancelled)
        ));
        assert!(is_mix_up(process_redirect(&f, &at("error=access_denied"))));
        assert!(is_mix_up(process_redirect(
            &f,
            &at("error=invalid_scope&iss=https%3A%2F%2Fevil.example")
        )));
        let e = process_redirect(
            &f,
            &at(&format!(
                "error=invalid_scope&error_description=bad&suberror=s&{ours}"
            )),
        )
        .unwrap_err();
        let p = e.provider_error().expect("the provider's error is kept");
        assert_eq!(p.error, "invalid_scope");
        assert_eq!(p.suberror.as_deref(), Some("s"));
        let frag = Url::parse(&format!(
            "http://localhost:8400/callback#code=xyz&state={state}&{ours}"
        ))
        .unwrap();
        assert_eq!(process_redirect(&f, &frag).unwrap().secret(), "xyz");
    }

    #[test]
    fn an_unadvertised_iss_is_checked_when_present() {
        let f = flow();
        let state = f.state.secret().clone();
        let at = |s: &str| {
            Url::parse(&format!("http://localhost:8400/callback?{s}&state={state}")).unwrap()
        };
        assert!(process_redirect(&f, &at("code=abc")).is_ok());
        assert!(process_redirect(&f, &at("code=abc&iss=https%3A%2F%2Fidp.example.com")).is_ok());
        assert!(is_mix_up(process_redirect(
            &f,
            &at("code=abc&iss=https%3A%2F%2Fevil.example")
        )));
        assert!(is_mix_up(process_redirect(
            &f,
            &at("error=access_denied&iss=https%3A%2F%2Fevil.example")
        )));
    }

    #[test]
    fn entra_template_iss_takes_one_tenant_segment() {
        let f = flow_with(serde_json::json!({
            "issuer": "https://login.microsoftonline.com/{tenantid}/v2.0",
            "authorization_endpoint": "https://login.microsoftonline.com/common/oauth2/v2.0/authorize",
            "token_endpoint": "https://login.microsoftonline.com/common/oauth2/v2.0/token",
            "authorization_response_iss_parameter_supported": true
        }));
        let state = f.state.secret().clone();
        let with_iss = |iss: &str| {
            let mut u = Url::parse("http://localhost:8400/callback").unwrap();
            u.query_pairs_mut()
                .append_pair("code", "abc")
                .append_pair("state", &state)
                .append_pair("iss", iss);
            process_redirect(&f, &u)
        };
        assert!(with_iss(
            "https://login.microsoftonline.com/7f8d8c66-3b8e-4d3a-9a55-2c0d1c6b7a01/v2.0"
        )
        .is_ok());
        assert!(with_iss("https://login.microsoftonline.com/{tenantid}/v2.0").is_ok());
        assert!(is_mix_up(with_iss(
            "https://login.microsoftonline.com/a/b/v2.0"
        )));
        assert!(is_mix_up(with_iss(
            "https://login.microsoftonline.com//v2.0"
        )));
        assert!(is_mix_up(with_iss("https://login.evil.example/t/v2.0")));
    }

    #[test]
    fn only_the_exact_redirect_uri_matches() {
        let e = Url::parse("http://localhost:8400/callback").unwrap();
        let yes = [
            "http://localhost:8400/callback?code=1",
            "http://LOCALHOST:8400/callback#x",
        ];
        let no = [
            "https://localhost:8400/callback",
            "http://localhost:8401/callback",
            "http://127.0.0.1:8400/callback",
            "http://localhost:8400/callback/x",
            "http://localhost:8400/callbackx",
            "http://localhost.evil.example:8400/callback",
            "http://user@localhost:8400/callback",
        ];
        for y in yes {
            assert!(redirect_matches(&e, &Url::parse(y).unwrap()), "{y}");
        }
        for n in no {
            assert!(!redirect_matches(&e, &Url::parse(n).unwrap()), "{n}");
        }
        let default_port = Url::parse("https://app.example/cb").unwrap();
        assert!(redirect_matches(
            &default_port,
            &Url::parse("https://app.example:443/cb?x=1").unwrap()
        ));
    }

    #[test]
    fn code_redemption_sends_verifier_and_redirect() {
        let f = flow();
        let req = code_redemption_request(&f, "cid", &AuthorizationCode::new("abc".into()), true);
        let form = req.form();
        let get = |k: &str| form.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
        assert_eq!(get("grant_type").as_deref(), Some("authorization_code"));
        assert_eq!(
            get("code_verifier").as_deref(),
            Some(f.verifier.secret().as_str())
        );
        assert_eq!(
            get("redirect_uri").as_deref(),
            Some("http://localhost:8400/callback")
        );
        assert_eq!(get("client_id").as_deref(), Some("cid"));
        assert!(!format!("{req:?}").contains("abc"));
    }
}
