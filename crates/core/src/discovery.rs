//! OpenID provider metadata (discovery) and Entra instance discovery.
//!
//! Checks: every endpoint must be https (or loopback http); a generic provider's
//! `issuer` must equal the configured issuer exactly (OpenID Connect Discovery §4.3);
//! Entra's multi-tenant authorities publish an issuer template with `{tenantid}`.
//! [`secret_may_go_to`] is the one rule for where a secret may be sent.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use url::Url;

use crate::authority::{parse_url, same_cloud, Authority};
use crate::error::{Error, Result};
use crate::http::{HttpRequest, HttpResponse};

/// The Entra placeholder in the issuer of `common`/`organizations`.
pub const TENANT_TEMPLATE: &str = "{tenantid}";

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ProviderMetadata {
    pub issuer: String,
    pub authorization_endpoint: Url,
    pub token_endpoint: Url,
    #[serde(default)]
    pub device_authorization_endpoint: Option<Url>,
    #[serde(default)]
    pub end_session_endpoint: Option<Url>,
    #[serde(default)]
    pub jwks_uri: Option<Url>,
    #[serde(default)]
    pub code_challenge_methods_supported: Option<Vec<String>>,
    /// RFC 9207: every authorization response (success or error) carries `iss`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authorization_response_iss_parameter_supported: Option<bool>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl ProviderMetadata {
    /// The issuer expected in a token of tenant `tid` (Entra's template filled in).
    pub fn issuer_for(&self, tid: Option<&str>) -> String {
        match tid {
            Some(t) if self.issuer.contains(TENANT_TEMPLATE) => {
                self.issuer.replace(TENANT_TEMPLATE, t)
            }
            _ => self.issuer.clone(),
        }
    }

    /// Is `iss`, an authorization response's issuer (RFC 9207), this provider's? Simple
    /// string comparison with `issuer`; in Entra's template, `{tenantid}` stands for
    /// exactly one path segment of unreserved characters (a tenant id or domain).
    pub fn is_response_issuer(&self, iss: &str) -> bool {
        if iss == self.issuer {
            return true;
        }
        let Some((prefix, suffix)) = self.issuer.split_once(TENANT_TEMPLATE) else {
            return false;
        };
        let Some(tenant) = iss
            .strip_prefix(prefix)
            .and_then(|rest| rest.strip_suffix(suffix))
        else {
            return false;
        };
        !tenant.is_empty()
            && tenant != "."
            && tenant != ".."
            && tenant
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-._~".contains(&b))
    }
}

pub fn discovery_request(authority: &Authority) -> HttpRequest {
    HttpRequest::get(authority.discovery_url())
}

pub fn process_discovery_response(
    authority: &Authority,
    response: &HttpResponse,
) -> Result<ProviderMetadata> {
    let what = "OpenID discovery";
    let doc: ProviderMetadata = parse_json_document(what, response)?;
    for (name, url) in [
        ("authorization_endpoint", Some(&doc.authorization_endpoint)),
        ("token_endpoint", Some(&doc.token_endpoint)),
    ]
    .into_iter()
    .chain([
        (
            "device_authorization_endpoint",
            doc.device_authorization_endpoint.as_ref(),
        ),
        ("end_session_endpoint", doc.end_session_endpoint.as_ref()),
    ]) {
        if let Some(url) = url {
            parse_url(url.as_str(), name).map_err(|e| Error::Validation(format!("{what}: {e}")))?;
        }
    }
    let expected = authority.as_str();
    let issuer = doc.issuer.trim_end_matches('/');
    if authority.is_entra_like() {
        // Entra: the issuer is https on the same cloud; multi-tenant authorities use the
        // {tenantid} template, tenant authorities name the tenant by id.
        parse_url(&doc.issuer.replace(TENANT_TEMPLATE, "t"), "issuer")
            .map_err(|e| Error::Validation(format!("{what}: {e}")))?;
    } else if issuer != expected {
        return Err(Error::Validation(format!(
            "{what}: the provider says its issuer is {:?}, but the profile names {:?}; they must be identical",
            doc.issuer, expected
        )));
    }
    Ok(doc)
}

pub fn instance_discovery_request(authority: &Authority) -> Option<HttpRequest> {
    authority.instance_discovery_url().map(HttpRequest::get)
}

/// The aliases of the authority's host, from Entra's instance discovery response.
pub fn process_instance_discovery_response(
    authority: &Authority,
    response: &HttpResponse,
) -> Result<Vec<String>> {
    #[derive(Deserialize)]
    struct Doc {
        #[serde(default)]
        metadata: Vec<Entry>,
    }
    #[derive(Deserialize)]
    struct Entry {
        #[serde(default)]
        aliases: Vec<String>,
    }
    let doc: Doc = parse_json_document("instance discovery", response)?;
    let host = authority.environment();
    Ok(doc
        .metadata
        .into_iter()
        .find(|e| e.aliases.iter().any(|a| a.eq_ignore_ascii_case(&host)))
        .map(|e| e.aliases)
        .unwrap_or_else(|| vec![host]))
}

/// An endpoint's host as MSAL's `environment` names hosts: lower case, no brackets.
pub fn host_of(url: &Url) -> String {
    url.host_str()
        .unwrap_or_default()
        .trim_matches(['[', ']'])
        .to_ascii_lowercase()
}

/// An Entra-style provider's endpoints that take a user or a secret (authorize, token,
/// device authorization) must be of its own cloud (`environment` and its trusted
/// `aliases`): a document naming another cloud's sign-in page would have a code issued
/// there and redeemed here. (The issuer is not checked: CIAM's is on another host.)
pub fn check_endpoints_of_cloud(
    environment: &str,
    aliases: &[String],
    metadata: &ProviderMetadata,
) -> Result<()> {
    for (name, url) in [
        (
            "authorization_endpoint",
            Some(&metadata.authorization_endpoint),
        ),
        ("token_endpoint", Some(&metadata.token_endpoint)),
        (
            "device_authorization_endpoint",
            metadata.device_authorization_endpoint.as_ref(),
        ),
    ] {
        let Some(url) = url else { continue };
        let host = host_of(url);
        if !same_cloud(environment, &host, aliases) {
            return Err(Error::Validation(format!(
                "OpenID discovery: the {name} is on {host}, which is not of {environment}'s cloud"
            )));
        }
    }
    Ok(())
}

/// Whether a secret issued in `environment` (a refresh token's `environment`; the host of
/// the authorization or device authorization endpoint that issued a code) may be sent to
/// `endpoint`.
/// `aliases` is the alias set of the authority's host, from trusted sources only
/// ([`crate::authority::aliases_of`]); `authority` and `metadata` are the application's.
/// Yes when
/// 1. `endpoint`'s host is of the same cloud as `environment` ([`same_cloud`]: the same
///    host, the same built-in Microsoft cloud, or both in `aliases`; a host of a
///    built-in cloud never matches another host, whatever `aliases` says); or
/// 2. `authority` is a generic OpenID issuer on host `environment` and `endpoint` is the
///    token endpoint its discovery document names (that document's issuer was checked to
///    equal the authority exactly): a provider such as Google (issuer
///    `accounts.google.com`) names a token endpoint on another host
///    (`oauth2.googleapis.com`). A code issued on another host than the issuer's (a
///    document naming someone else's sign-in page) never goes by this rule.
pub fn secret_may_go_to(
    environment: &str,
    aliases: &[String],
    endpoint: &Url,
    authority: &Authority,
    metadata: &ProviderMetadata,
) -> bool {
    let host = host_of(endpoint);
    if !host.is_empty() && same_cloud(environment, &host, aliases) {
        return true;
    }
    !authority.is_entra_like()
        && authority.environment().eq_ignore_ascii_case(environment)
        && *endpoint == metadata.token_endpoint
}

/// A JSON document from a GET endpoint: 200 and JSON, else a clear error.
fn parse_json_document<T: serde::de::DeserializeOwned>(
    what: &'static str,
    response: &HttpResponse,
) -> Result<T> {
    if response.status != 200 {
        return Err(crate::token::unexpected_response(what, response));
    }
    serde_json::from_slice(&response.body).map_err(|e| Error::BadResponse {
        what,
        detail: format!("not a valid document: {e}"),
        status: Some(response.status),
        retry_after: None,
    })
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

    fn doc(issuer: &str, base: &str) -> String {
        serde_json::json!({
            "issuer": issuer,
            "authorization_endpoint": format!("{base}/authorize"),
            "token_endpoint": format!("{base}/token"),
            "end_session_endpoint": format!("{base}/logout"),
            "response_types_supported": ["code"],
        })
        .to_string()
    }

    #[test]
    fn generic_issuer_must_match_exactly() {
        let a = Authority::oidc("https://idp.example.com/realm").unwrap();
        let ok = process_discovery_response(
            &a,
            &resp(
                200,
                &doc(
                    "https://idp.example.com/realm",
                    "https://idp.example.com/realm",
                ),
            ),
        )
        .unwrap();
        assert_eq!(
            ok.token_endpoint.as_str(),
            "https://idp.example.com/realm/token"
        );
        assert_eq!(ok.extra["response_types_supported"][0], "code");
        let err = process_discovery_response(
            &a,
            &resp(
                200,
                &doc(
                    "https://evil.example.com/realm",
                    "https://idp.example.com/realm",
                ),
            ),
        )
        .unwrap_err();
        assert!(matches!(err, Error::Validation(m) if m.contains("evil.example.com")));
    }

    #[test]
    fn entra_template_issuer_is_filled_per_tenant() {
        let a = Authority::entra("https://login.microsoftonline.com/common").unwrap();
        let m = process_discovery_response(
            &a,
            &resp(
                200,
                &doc(
                    "https://login.microsoftonline.com/{tenantid}/v2.0",
                    "https://login.microsoftonline.com/common/oauth2/v2.0",
                ),
            ),
        )
        .unwrap();
        assert_eq!(
            m.issuer_for(Some("t1")),
            "https://login.microsoftonline.com/t1/v2.0"
        );
    }

    #[test]
    fn response_issuer_is_compared_exactly_or_with_one_tenant_segment() {
        let meta = |issuer: &str, iss_supported: &str| -> ProviderMetadata {
            let mut d: Value =
                serde_json::from_str(&doc(issuer, "https://idp.example.com")).unwrap();
            if !iss_supported.is_empty() {
                d["authorization_response_iss_parameter_supported"] =
                    serde_json::from_str(iss_supported).unwrap();
            }
            serde_json::from_value(d).unwrap()
        };
        let generic = meta("https://idp.example.com/realm", "true");
        assert_eq!(
            generic.authorization_response_iss_parameter_supported,
            Some(true)
        );
        assert!(!generic
            .extra
            .contains_key("authorization_response_iss_parameter_supported"));
        assert!(generic.is_response_issuer("https://idp.example.com/realm"));
        for no in [
            "https://idp.example.com/realm/",
            "https://IDP.example.com/realm",
            "https://idp.example.com/realm2",
            "https://evil.example/realm",
            "",
        ] {
            assert!(!generic.is_response_issuer(no), "{no:?}");
        }
        assert_eq!(
            meta("https://idp.example.com", "").authorization_response_iss_parameter_supported,
            None
        );

        let entra = meta("https://login.microsoftonline.com/{tenantid}/v2.0", "false");
        for yes in [
            "https://login.microsoftonline.com/{tenantid}/v2.0",
            "https://login.microsoftonline.com/7f8d8c66-3b8e-4d3a-9a55-2c0d1c6b7a01/v2.0",
            "https://login.microsoftonline.com/contoso.onmicrosoft.com/v2.0",
        ] {
            assert!(entra.is_response_issuer(yes), "{yes:?}");
        }
        for no in [
            "https://login.microsoftonline.com//v2.0",
            "https://login.microsoftonline.com/v2.0",
            "https://login.microsoftonline.com/a/b/v2.0",
            "https://login.microsoftonline.com/../v2.0",
            "https://login.microsoftonline.com/t%2Fx/v2.0",
            "https://login.microsoftonline.com/t?x=/v2.0",
            "https://login.microsoftonline.com/t#/v2.0",
            "https://login.microsoftonline.com/t/v2.0/",
            "https://evil.example/t/v2.0",
            "https://login.microsoftonline.com.evil.example/t/v2.0",
        ] {
            assert!(!entra.is_response_issuer(no), "{no:?}");
        }
    }

    #[test]
    fn insecure_endpoints_and_bad_documents_are_refused() {
        let a = Authority::oidc("https://idp.example.com").unwrap();
        let err = process_discovery_response(
            &a,
            &resp(
                200,
                &doc("https://idp.example.com", "http://idp.example.com"),
            ),
        )
        .unwrap_err();
        assert!(matches!(err, Error::Validation(m) if m.contains("https")));
        let err = process_discovery_response(&a, &resp(200, "{\"issuer\": 5")).unwrap_err();
        assert!(matches!(err, Error::BadResponse { .. }));
        let err = process_discovery_response(&a, &resp(404, "not found")).unwrap_err();
        assert!(err.to_string().contains("404"), "{err}");
    }

    fn metadata(issuer: &str, token_endpoint: &str) -> ProviderMetadata {
        serde_json::from_value(serde_json::json!({
            "issuer": issuer,
            "authorization_endpoint": format!("{issuer}/authorize"),
            "token_endpoint": token_endpoint,
            "device_authorization_endpoint": format!("{token_endpoint}/device"),
        }))
        .unwrap()
    }

    fn url(s: &str) -> Url {
        Url::parse(s).unwrap()
    }

    #[test]
    fn a_secret_of_microsofts_cloud_goes_to_microsofts_cloud_only() {
        let microsoft: Vec<String> = crate::authority::aliases_of("login.microsoftonline.com", &[]);
        let attacker = Authority::entra("http://127.0.0.1:9/common").unwrap();
        let evil = metadata(
            "http://127.0.0.1:9/{tenantid}/v2.0",
            "http://127.0.0.1:9/common/oauth2/v2.0/token",
        );
        // Even with an alias set that (wrongly) names Microsoft's hosts.
        let poisoned: Vec<String> = ["127.0.0.1", "login.microsoftonline.com"]
            .map(String::from)
            .to_vec();
        for aliases in [&microsoft, &poisoned, &vec!["127.0.0.1".to_string()]] {
            assert!(!secret_may_go_to(
                "login.microsoftonline.com",
                aliases,
                &evil.token_endpoint,
                &attacker,
                &evil
            ));
        }
        let entra = Authority::entra("https://login.microsoftonline.com/common").unwrap();
        let real = metadata(
            "https://login.microsoftonline.com/{tenantid}/v2.0",
            "https://login.microsoftonline.com/common/oauth2/v2.0/token",
        );
        for env in ["login.microsoftonline.com", "login.windows.net"] {
            assert!(secret_may_go_to(
                env,
                &microsoft,
                &real.token_endpoint,
                &entra,
                &real
            ));
        }
        // Another of Microsoft's clouds is another cloud.
        assert!(!secret_may_go_to(
            "login.microsoftonline.us",
            &microsoft,
            &real.token_endpoint,
            &entra,
            &real
        ));
    }

    #[test]
    fn custom_hosts_keep_their_secrets_at_home() {
        let sandbox = Authority::entra("http://127.0.0.1:8479/common").unwrap();
        let m = metadata(
            "http://127.0.0.1:8479/{tenantid}/v2.0",
            "http://127.0.0.1:8479/common/oauth2/v2.0/token",
        );
        let own = vec!["127.0.0.1".to_string()];
        assert!(secret_may_go_to(
            "127.0.0.1",
            &own,
            &m.token_endpoint,
            &sandbox,
            &m
        ));
        // An Entra-style document naming another host is not followed, even for the
        // host's own secrets: aliases decide for Entra.
        let elsewhere = url("https://login.contoso.example/common/oauth2/v2.0/token");
        assert!(!secret_may_go_to(
            "127.0.0.1",
            &own,
            &elsewhere,
            &sandbox,
            &m
        ));
        // Aliases learned from Microsoft are one cloud.
        let custom = Authority::entra("https://login.contoso.example/common").unwrap();
        let learned: Vec<String> = ["login.contoso.example", "sts.contoso.example"]
            .map(String::from)
            .to_vec();
        assert!(secret_may_go_to(
            "sts.contoso.example",
            &learned,
            &elsewhere,
            &custom,
            &m
        ));
        assert!(!secret_may_go_to(
            "other.example",
            &learned,
            &elsewhere,
            &custom,
            &m
        ));
    }

    #[test]
    fn a_generic_issuer_may_name_a_token_endpoint_on_another_host() {
        let google = Authority::oidc("https://accounts.google.com").unwrap();
        let m = metadata(
            "https://accounts.google.com",
            "https://oauth2.googleapis.com/token",
        );
        let aliases = crate::authority::aliases_of("accounts.google.com", &[]);
        assert!(secret_may_go_to(
            "accounts.google.com",
            &aliases,
            &m.token_endpoint,
            &google,
            &m
        ));
        // No secret is sent to the device authorization endpoint (the code comes from it).
        assert!(!secret_may_go_to(
            "accounts.google.com",
            &aliases,
            m.device_authorization_endpoint.as_ref().unwrap(),
            &google,
            &m
        ));
        // Only the endpoints the document names, only for the issuer's own host.
        let other = url("https://oauth2.googleapis.com/elsewhere");
        assert!(!secret_may_go_to(
            "accounts.google.com",
            &aliases,
            &other,
            &google,
            &m
        ));
        assert!(!secret_may_go_to(
            "login.microsoftonline.com",
            &aliases,
            &m.token_endpoint,
            &google,
            &m
        ));
        assert!(!secret_may_go_to(
            "idp.example.com",
            &aliases,
            &m.token_endpoint,
            &google,
            &m
        ));
        // The same document under an Entra-style authority is not enough.
        let entra = Authority::entra("https://accounts.google.com/common").unwrap();
        assert!(!secret_may_go_to(
            "accounts.google.com",
            &aliases,
            &m.token_endpoint,
            &entra,
            &m
        ));
    }

    #[test]
    fn instance_discovery_gives_aliases() {
        let a = Authority::entra("https://login.contoso.example/common").unwrap();
        let body = r#"{"tenant_discovery_endpoint":"x","api-version":"1.1","metadata":[{"preferred_network":"login.contoso.example","preferred_cache":"login.contoso.example","aliases":["login.contoso.example","sts.contoso.example"]}]}"#;
        assert_eq!(
            process_instance_discovery_response(&a, &resp(200, body)).unwrap(),
            vec!["login.contoso.example", "sts.contoso.example"]
        );
        assert_eq!(
            process_instance_discovery_response(&a, &resp(200, r#"{"metadata":[]}"#)).unwrap(),
            vec!["login.contoso.example"]
        );
    }
}
