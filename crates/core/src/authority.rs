//! Authorities: where users sign in. Entra ID (`login.microsoftonline.com/{tenant}` and
//! the national clouds), Azure AD B2C (`<name>.b2clogin.com/<tenant>/<policy>`), CIAM
//! (`<name>.ciamlogin.com`), and any other OpenID Connect provider by its issuer URL.
//!
//! Rules: https only, except loopback hosts (`localhost`, `127.0.0.1`, `[::1]`), which
//! may use http. An Entra-style authority has a tenant segment; a generic issuer is
//! matched exactly against its discovery document.
//!
//! Clouds: a host's aliases come from the built-in table of Microsoft's clouds or from
//! instance discovery asked at Microsoft, never from the host itself; no other host joins
//! a built-in cloud ([`aliases_of`], [`same_cloud`]).

use url::Url;

use crate::error::{Error, Result};

/// Entra's well-known clouds and their aliases (from Microsoft's instance discovery
/// response). A cached account matches across the aliases of its host. These sets are
/// closed: no other host is ever an alias of one of them (see [`aliases_of`]).
pub const KNOWN_ALIASES: &[&[&str]] = &[
    &[
        "login.microsoftonline.com",
        "login.windows.net",
        "login.microsoft.com",
        "sts.windows.net",
    ],
    &["login.partner.microsoftonline.cn", "login.chinacloudapi.cn"],
    &["login.microsoftonline.de"],
    &["login.microsoftonline.us", "login.usgovcloudapi.net"],
    &["login-us.microsoftonline.com"],
];

/// Where instance discovery is asked for a custom host (MSAL's `WORLD_WIDE`): Microsoft
/// says which hosts are aliases of a custom one, never that host itself.
pub const INSTANCE_DISCOVERY_HOST: &str = "login.microsoftonline.com";

/// The tenant segments that are not one tenant.
pub const MULTI_TENANT: &[&str] = &["common", "organizations", "consumers"];

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthorityKind {
    /// Entra ID (workforce), `https://<host>/<tenant>`.
    Entra { tenant: String },
    /// Azure AD B2C, `https://<name>.b2clogin.com/<tenant>/<policy>`.
    B2c { tenant: String, policy: String },
    /// Entra External ID for customers, `https://<name>.ciamlogin.com/<tenant>`.
    Ciam { tenant: String },
    /// Any other OpenID Connect provider, identified by its issuer.
    Oidc,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Authority {
    kind: AuthorityKind,
    /// Canonical URL without a trailing slash: `https://login.microsoftonline.com/common`
    /// or the issuer.
    url: Url,
    instance_discovery: bool,
}

impl Authority {
    /// An Entra-style authority (Entra, B2C or CIAM, by host).
    pub fn entra(input: &str) -> Result<Self> {
        let url = parse_url(input, "authority")?;
        let host = url.host_str().unwrap_or_default().to_ascii_lowercase();
        let segments: Vec<&str> = url
            .path_segments()
            .map(|s| s.filter(|p| !p.is_empty()).collect())
            .unwrap_or_default();
        let kind = if host.ends_with(".b2clogin.com") {
            match segments.as_slice() {
                [tenant, policy, ..] => AuthorityKind::B2c { tenant: tenant.to_string(), policy: policy.to_string() },
                _ => {
                    return Err(Error::Config(format!(
                        "B2C authority {input} needs a tenant and a policy: https://<name>.b2clogin.com/<tenant>/<policy>"
                    )))
                }
            }
        } else if host.ends_with(".ciamlogin.com") {
            let tenant = match segments.first() {
                Some(t) => t.to_string(),
                // MSAL's rule: https://contoso.ciamlogin.com/ means contoso.onmicrosoft.com.
                None => format!(
                    "{}.onmicrosoft.com",
                    host.trim_end_matches(".ciamlogin.com")
                ),
            };
            AuthorityKind::Ciam { tenant }
        } else {
            match segments.first() {
                Some(t) => AuthorityKind::Entra { tenant: t.to_string() },
                None => {
                    return Err(Error::Config(format!(
                        "authority {input} has no tenant: add /common, /organizations, /consumers or a tenant id or domain"
                    )))
                }
            }
        };
        let path = match &kind {
            AuthorityKind::Entra { tenant } | AuthorityKind::Ciam { tenant } => {
                format!("/{tenant}")
            }
            AuthorityKind::B2c { tenant, policy } => format!("/{tenant}/{policy}"),
            AuthorityKind::Oidc => unreachable!(),
        };
        let mut canonical = url.clone();
        canonical.set_path(&path);
        canonical.set_query(None);
        canonical.set_fragment(None);
        Ok(Self {
            kind,
            url: canonical,
            instance_discovery: true,
        })
    }

    /// A generic OpenID Connect provider by its issuer URL.
    pub fn oidc(issuer: &str) -> Result<Self> {
        let mut url = parse_url(issuer, "issuer")?;
        if url.query().is_some() || url.fragment().is_some() {
            return Err(Error::Config(format!(
                "issuer {issuer} must not have a query or fragment"
            )));
        }
        let trimmed = url.path().trim_end_matches('/').to_string();
        url.set_path(&trimmed);
        Ok(Self {
            kind: AuthorityKind::Oidc,
            url,
            instance_discovery: false,
        })
    }

    /// Turn instance discovery off (air-gapped clouds): the host is then its own only
    /// alias.
    pub fn without_instance_discovery(mut self) -> Self {
        self.instance_discovery = false;
        self
    }

    pub fn kind(&self) -> &AuthorityKind {
        &self.kind
    }

    pub fn is_entra_like(&self) -> bool {
        !matches!(self.kind, AuthorityKind::Oidc)
    }

    pub fn instance_discovery(&self) -> bool {
        self.instance_discovery
    }

    /// The canonical URL (no trailing slash).
    pub fn url(&self) -> &Url {
        &self.url
    }

    pub fn as_str(&self) -> &str {
        self.url.as_str().trim_end_matches('/')
    }

    /// MSAL's `environment`: the host name, lower-case (the port is not part of it).
    pub fn environment(&self) -> String {
        self.url
            .host_str()
            .unwrap_or_default()
            .trim_matches(['[', ']'])
            .to_ascii_lowercase()
    }

    /// The tenant segment (`common`, a tenant id, a domain), if any.
    pub fn tenant(&self) -> Option<&str> {
        match &self.kind {
            AuthorityKind::Entra { tenant }
            | AuthorityKind::Ciam { tenant }
            | AuthorityKind::B2c { tenant, .. } => Some(tenant),
            AuthorityKind::Oidc => None,
        }
    }

    /// MSAL's `realm` for entries written through this authority when the ID token
    /// does not name a tenant: the first path segment (empty for a bare issuer).
    pub fn realm(&self) -> String {
        match self.tenant() {
            Some(t) => t.to_ascii_lowercase(),
            None => self
                .url
                .path_segments()
                .and_then(|mut s| s.next())
                .unwrap_or_default()
                .to_ascii_lowercase(),
        }
    }

    pub fn is_multi_tenant(&self) -> bool {
        self.tenant()
            .is_some_and(|t| MULTI_TENANT.iter().any(|m| m.eq_ignore_ascii_case(t)))
    }

    /// Where the OpenID provider metadata lives.
    pub fn discovery_url(&self) -> Url {
        let base = self.as_str();
        let path = match self.kind {
            AuthorityKind::Oidc => "/.well-known/openid-configuration",
            _ => "/v2.0/.well-known/openid-configuration",
        };
        // The canonical URL was parsed already, so appending a fixed path stays valid.
        Url::parse(&format!("{base}{path}")).expect("valid discovery URL")
    }

    /// The built-in alias set of this host, for Microsoft's clouds.
    pub fn known_aliases(&self) -> Option<&'static [&'static str]> {
        built_in_cloud(&self.environment())
    }

    /// Where Entra instance discovery is asked, when needed: at Microsoft
    /// ([`INSTANCE_DISCOVERY_HOST`], as MSAL does), never at the host itself, which could
    /// claim any cloud. `None` (the host is its own only alias) for Microsoft's clouds (the
    /// built-in table), loopback hosts (never Microsoft's; no network wait offline), B2C
    /// (MSAL skips it too), generic issuers, or when switched off.
    pub fn instance_discovery_url(&self) -> Option<Url> {
        if !self.instance_discovery
            || !self.is_entra_like()
            || matches!(self.kind, AuthorityKind::B2c { .. })
            || self.known_aliases().is_some()
            || is_loopback_host(&self.environment())
        {
            return None;
        }
        let mut u = Url::parse(&format!(
            "https://{INSTANCE_DISCOVERY_HOST}/common/discovery/instance"
        ))
        .expect("valid instance discovery URL");
        let authorize = format!("{}/oauth2/v2.0/authorize", self.as_str());
        u.query_pairs_mut()
            .append_pair("api-version", "1.1")
            .append_pair("authorization_endpoint", &authorize);
        Some(u)
    }
}

impl std::fmt::Display for Authority {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

pub fn is_loopback_host(host: &str) -> bool {
    matches!(
        host.trim_matches(['[', ']']),
        "localhost" | "127.0.0.1" | "::1"
    )
}

/// Parse a URL that a provider is reached at: absolute, https (http only on loopback),
/// no credentials.
pub fn parse_url(input: &str, what: &str) -> Result<Url> {
    let url = Url::parse(input.trim())
        .map_err(|e| Error::Config(format!("{what} {input:?} is not a valid URL: {e}")))?;
    let host = url.host_str().unwrap_or_default();
    if host.is_empty() {
        return Err(Error::Config(format!("{what} {input:?} has no host")));
    }
    match url.scheme() {
        "https" => {}
        "http" if is_loopback_host(host) => {}
        "http" => {
            return Err(Error::Config(format!(
                "{what} {input:?} must use https (http is allowed only for localhost, 127.0.0.1 and [::1])"
            )))
        }
        other => return Err(Error::Config(format!("{what} {input:?} has scheme {other}; use https"))),
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(Error::Config(format!(
            "{what} must not contain credentials"
        )));
    }
    Ok(url)
}

/// The built-in alias set (one of Microsoft's clouds) that `host` belongs to, if any.
pub fn built_in_cloud(host: &str) -> Option<&'static [&'static str]> {
    let host = host.trim_matches(['[', ']']).to_ascii_lowercase();
    KNOWN_ALIASES
        .iter()
        .copied()
        .find(|set| set.contains(&host.as_str()))
}

/// The set of hosts that identify the same cloud as `host`: the built-in table, else the
/// aliases instance discovery at Microsoft gave (`discovered`), else just `host`.
/// `discovered` is refused (host alone, with a warning) unless it names `host`, and when
/// it names a host of the built-in table: no host joins one of Microsoft's clouds.
pub fn aliases_of(host: &str, discovered: &[String]) -> Vec<String> {
    let host = host.to_ascii_lowercase();
    if let Some(set) = built_in_cloud(&host) {
        return set.iter().map(|s| s.to_string()).collect();
    }
    if !discovered.iter().any(|d| d.eq_ignore_ascii_case(&host)) {
        return vec![host];
    }
    if let Some(claimed) = discovered.iter().find(|d| built_in_cloud(d).is_some()) {
        tracing::warn!(
            host = %host,
            claimed = %claimed,
            "instance discovery names a host of Microsoft's built-in clouds as an alias; ignored, using the host alone"
        );
        return vec![host];
    }
    let mut out: Vec<String> = Vec::with_capacity(discovered.len());
    for d in discovered {
        let d = d.to_ascii_lowercase();
        if !out.contains(&d) {
            out.push(d);
        }
    }
    out
}

/// Whether entries of host `b` belong to the cloud of host `a`, whose alias set is
/// `aliases`: the same host; or, for Microsoft's clouds, the same built-in set; or, for
/// other hosts, both in `aliases`. A host of a built-in cloud and a host outside it are
/// never one cloud, whatever `aliases` says.
pub fn same_cloud(a: &str, b: &str, aliases: &[String]) -> bool {
    if a.eq_ignore_ascii_case(b) {
        return true;
    }
    match (built_in_cloud(a), built_in_cloud(b)) {
        // The built-in sets are disjoint: equal sets are the same cloud.
        (Some(x), Some(y)) => x == y,
        (None, None) => {
            let listed = |h: &str| aliases.iter().any(|x| x.eq_ignore_ascii_case(h));
            listed(a) && listed(b)
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entra_authorities_are_canonicalised() {
        let a = Authority::entra("https://login.microsoftonline.com/Common/").unwrap();
        assert_eq!(a.as_str(), "https://login.microsoftonline.com/Common");
        assert_eq!(a.tenant(), Some("Common"));
        assert!(a.is_multi_tenant());
        assert_eq!(a.environment(), "login.microsoftonline.com");
        assert_eq!(
            a.discovery_url().as_str(),
            "https://login.microsoftonline.com/Common/v2.0/.well-known/openid-configuration"
        );
        let t =
            Authority::entra("https://login.microsoftonline.us/contoso.onmicrosoft.com").unwrap();
        assert_eq!(t.realm(), "contoso.onmicrosoft.com");
        assert!(!t.is_multi_tenant());
    }

    #[test]
    fn b2c_and_ciam_are_recognised() {
        let b = Authority::entra(
            "https://fabrikamb2c.b2clogin.com/fabrikamb2c.onmicrosoft.com/B2C_1_signupsignin",
        )
        .unwrap();
        assert!(
            matches!(b.kind(), AuthorityKind::B2c { policy, .. } if policy == "B2C_1_signupsignin")
        );
        assert!(Authority::entra("https://fabrikamb2c.b2clogin.com/tenant-only").is_err());
        let c = Authority::entra("https://contoso.ciamlogin.com/").unwrap();
        assert_eq!(c.tenant(), Some("contoso.onmicrosoft.com"));
        assert_eq!(
            c.as_str(),
            "https://contoso.ciamlogin.com/contoso.onmicrosoft.com"
        );
    }

    #[test]
    fn https_is_required_except_on_loopback() {
        assert!(Authority::entra("http://login.microsoftonline.com/common").is_err());
        assert!(Authority::entra("http://127.0.0.1:8479/common").is_ok());
        assert!(Authority::oidc("http://localhost:3000").is_ok());
        assert!(Authority::oidc("http://[::1]:3000/realms/x").is_ok());
        assert!(Authority::oidc("http://idp.example.com").is_err());
        assert!(Authority::oidc("ftp://idp.example.com").is_err());
        assert!(Authority::oidc("not a url").is_err());
        assert!(Authority::entra("https://login.microsoftonline.com").is_err());
        assert!(Authority::oidc("https://user:pw@idp.example.com").is_err());
    }

    #[test]
    fn generic_issuer_discovery_url() {
        let o = Authority::oidc("https://idp.example.com/realms/dev/").unwrap();
        assert_eq!(o.as_str(), "https://idp.example.com/realms/dev");
        assert_eq!(
            o.discovery_url().as_str(),
            "https://idp.example.com/realms/dev/.well-known/openid-configuration"
        );
        assert_eq!(o.realm(), "realms");
        assert!(!o.is_entra_like());
        assert!(o.instance_discovery_url().is_none());
    }

    #[test]
    fn aliases_match_across_known_hosts() {
        let a = aliases_of("login.windows.net", &[]);
        assert!(a.contains(&"login.microsoftonline.com".to_string()));
        assert!(a.contains(&"sts.windows.net".to_string()));
        assert_eq!(aliases_of("127.0.0.1", &[]), vec!["127.0.0.1".to_string()]);
        let learned = vec![
            "idp.contoso.example".to_string(),
            "Login.Contoso.example".to_string(),
        ];
        assert_eq!(
            aliases_of("login.contoso.example", &learned),
            vec!["idp.contoso.example", "login.contoso.example"]
        );
        // A list that does not name the host says nothing about it.
        assert_eq!(aliases_of("other.example", &learned), vec!["other.example"]);
    }

    #[test]
    fn no_host_becomes_an_alias_of_a_built_in_cloud() {
        // A custom host whose discovery names Microsoft's hosts: the host alone.
        let claimed: Vec<String> = ["127.0.0.1", "login.microsoftonline.com", "sts.windows.net"]
            .map(String::from)
            .to_vec();
        assert_eq!(aliases_of("127.0.0.1", &claimed), vec!["127.0.0.1"]);
        let claimed: Vec<String> = ["login.contoso.example", "LOGIN.MICROSOFTONLINE.US"]
            .map(String::from)
            .to_vec();
        assert_eq!(
            aliases_of("login.contoso.example", &claimed),
            vec!["login.contoso.example"]
        );
        // A built-in host keeps its own set, whatever is discovered.
        let claimed: Vec<String> = ["login.microsoftonline.com", "evil.example"]
            .map(String::from)
            .to_vec();
        let a = aliases_of("login.microsoftonline.com", &claimed);
        assert!(!a.contains(&"evil.example".to_string()), "{a:?}");
        assert_eq!(a.len(), KNOWN_ALIASES[0].len());
    }

    #[test]
    fn built_in_clouds_are_never_the_same_cloud_as_another_host() {
        let poisoned: Vec<String> = [
            "127.0.0.1",
            "login.microsoftonline.com",
            "login.windows.net",
        ]
        .map(String::from)
        .to_vec();
        assert!(!same_cloud(
            "127.0.0.1",
            "login.microsoftonline.com",
            &poisoned
        ));
        assert!(!same_cloud(
            "login.microsoftonline.com",
            "127.0.0.1",
            &poisoned
        ));
        assert!(!same_cloud(
            "login.microsoftonline.com",
            "login.microsoftonline.us",
            &poisoned
        ));
        assert!(same_cloud(
            "login.microsoftonline.com",
            "LOGIN.WINDOWS.NET",
            &[]
        ));
        assert!(same_cloud("127.0.0.1", "127.0.0.1", &[]));
        let learned: Vec<String> = ["login.contoso.example", "sts.contoso.example"]
            .map(String::from)
            .to_vec();
        assert!(same_cloud(
            "login.contoso.example",
            "sts.contoso.example",
            &learned
        ));
        assert!(!same_cloud(
            "login.contoso.example",
            "sts.contoso.example",
            &[]
        ));
        assert!(!same_cloud(
            "login.contoso.example",
            "other.example",
            &learned
        ));
    }

    #[test]
    fn instance_discovery_is_asked_at_microsoft_for_custom_hosts_only() {
        let known = Authority::entra("https://login.microsoftonline.com/common").unwrap();
        assert!(known.instance_discovery_url().is_none());
        let custom = Authority::entra("https://login.contoso.example/contoso.example").unwrap();
        let u = custom.instance_discovery_url().unwrap();
        assert_eq!(
            u.as_str(),
            "https://login.microsoftonline.com/common/discovery/instance?api-version=1.1&authorization_endpoint=https%3A%2F%2Flogin.contoso.example%2Fcontoso.example%2Foauth2%2Fv2.0%2Fauthorize"
        );
        assert!(custom
            .without_instance_discovery()
            .instance_discovery_url()
            .is_none());
        for loopback in [
            "http://127.0.0.1:8479/common",
            "http://localhost:8479/common",
            "http://[::1]:8479/common",
        ] {
            let a = Authority::entra(loopback).unwrap();
            assert!(a.instance_discovery_url().is_none(), "{loopback}");
        }
        let b2c = Authority::entra(
            "https://fabrikamb2c.b2clogin.com/fabrikamb2c.onmicrosoft.com/B2C_1_signupsignin",
        )
        .unwrap();
        assert!(b2c.instance_discovery_url().is_none());
        let ciam = Authority::entra("https://contoso.ciamlogin.com/").unwrap();
        assert_eq!(
            ciam.instance_discovery_url().unwrap().host_str(),
            Some(INSTANCE_DISCOVERY_HOST)
        );
    }
}
