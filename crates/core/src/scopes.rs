//! Scope sets with MSAL's rules: compared case-insensitively, order kept for display,
//! and the OpenID Connect scopes (`openid`, `profile`, `offline_access`) added to every
//! request but never required of a cached access token.

use std::fmt;

/// Scopes that every sign-in and refresh asks for, as MSAL does.
pub const RESERVED: [&str; 3] = ["openid", "profile", "offline_access"];

/// The Entra application of AKS's API servers ("Azure Kubernetes Service AAD Server"):
/// the audience of the tokens a cluster with Entra integration accepts.
pub const AKS_SERVER_APP_ID: &str = "6dae42f8-4368-4678-94ff-3960e28e3630";
/// Azure DevOps' resource id: the audience of the tokens its Git and REST endpoints accept.
pub const AZURE_DEVOPS_RESOURCE: &str = "499b84ac-1321-427f-aa17-267ca6975798";

/// Short names for well-known scopes, accepted wherever a user names a scope:
/// (alias, scope), aliases compared ignoring ASCII case.
pub const SCOPE_ALIASES: [(&str, &str); 2] = [
    ("aks", "6dae42f8-4368-4678-94ff-3960e28e3630/.default"),
    (
        "azure-devops",
        "499b84ac-1321-427f-aa17-267ca6975798/.default",
    ),
];

/// The scope an alias stands for, or `scope` itself.
pub fn expand_alias(scope: &str) -> &str {
    SCOPE_ALIASES
        .iter()
        .find(|(alias, _)| alias.eq_ignore_ascii_case(scope))
        .map_or(scope, |(_, full)| full)
}

/// Azure CLI's `--resource R`: the scope `R/.default`, appended as Azure CLI does (so
/// `https://management.core.windows.net/` gives `https://management.core.windows.net//.default`).
pub fn resource_scope(resource: &str) -> String {
    format!("{}/.default", resource.trim())
}

/// The scope a Git host needs when none is given: Azure DevOps' for `dev.azure.com` and
/// `*.visualstudio.com` (a port does not change the answer).
pub fn default_scope_for_git_host(host: &str) -> Option<&'static str> {
    let host = host.rsplit_once(':').map_or(host, |(h, port)| {
        if port.chars().all(|c| c.is_ascii_digit()) {
            h
        } else {
            host
        }
    });
    let host = host.trim_end_matches('.').to_ascii_lowercase();
    let azure_devops = host == "dev.azure.com"
        || host.ends_with(".dev.azure.com")
        || (host.ends_with(".visualstudio.com") && host.len() > ".visualstudio.com".len());
    azure_devops.then_some(SCOPE_ALIASES[1].1)
}

/// Why the scopes a user asked for cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScopeError {
    /// A scope holds a character no scope can have (a control character, a quote, `<`,
    /// `>` or `\`): a paste gone wrong, not something to send to the provider.
    #[error("{0:?} is not a valid scope")]
    Invalid(String),
    /// Nothing was asked for and the profile names no default scope.
    #[error("no scopes to ask for: profile {0:?} has none; name a scope")]
    Empty(String),
}

/// The scopes to ask for, one rule for the app and the command line: what the user typed
/// (`requested`, space-separated, aliases expanded) when it holds anything, else the
/// profile's default scopes. Refuses a scope with a forbidden character and an empty set.
pub fn resolve(
    profile: &str,
    defaults: &[String],
    requested: Option<&str>,
) -> Result<ScopeSet, ScopeError> {
    let requested = requested.map(str::trim).filter(|s| !s.is_empty());
    let words: Vec<&str> = match requested {
        Some(s) => s.split_whitespace().collect(),
        None => defaults.iter().flat_map(|d| d.split_whitespace()).collect(),
    };
    if let Some(bad) = words.iter().find(|w| {
        w.chars()
            .any(|c| c.is_control() || matches!(c, '"' | '\'' | '<' | '>' | '\\'))
    }) {
        return Err(ScopeError::Invalid((*bad).to_string()));
    }
    let scopes = ScopeSet::from_iter(words.into_iter().map(expand_alias));
    if scopes.is_empty() {
        return Err(ScopeError::Empty(profile.to_string()));
    }
    Ok(scopes)
}

/// The scopes of an interactive sign-in: as [`resolve`], but a sign-in may ask for no API
/// scope at all (the OpenID Connect scopes, which every request carries, then suffice).
pub fn resolve_for_sign_in(
    profile: &str,
    defaults: &[String],
    requested: Option<&str>,
) -> Result<ScopeSet, ScopeError> {
    match resolve(profile, defaults, requested) {
        Err(ScopeError::Empty(_)) => Ok(ScopeSet::default()),
        other => other,
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ScopeSet(Vec<String>);

impl ScopeSet {
    /// Parse a space-separated list (`scope` parameter or a cached `target`).
    pub fn parse(s: &str) -> Self {
        Self::from_iter(s.split_whitespace())
    }

    /// Parse scopes a user typed: as [`Self::parse`], each alias of [`SCOPE_ALIASES`]
    /// replaced by its scope.
    pub fn parse_user_input(s: &str) -> Self {
        Self::from_iter(s.split_whitespace().map(expand_alias))
    }

    pub fn contains(&self, scope: &str) -> bool {
        self.0.iter().any(|s| s.eq_ignore_ascii_case(scope))
    }

    pub fn is_subset_of(&self, other: &ScopeSet) -> bool {
        self.0.iter().all(|s| other.contains(s))
    }

    pub fn intersects(&self, other: &ScopeSet) -> bool {
        self.0.iter().any(|s| other.contains(s))
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn iter(&self) -> impl Iterator<Item = &str> {
        self.0.iter().map(String::as_str)
    }

    /// The scopes without the reserved OpenID Connect ones.
    pub fn without_reserved(&self) -> ScopeSet {
        self.iter()
            .filter(|s| !RESERVED.iter().any(|r| r.eq_ignore_ascii_case(s)))
            .collect()
    }

    /// The scopes plus the reserved ones: what a token request sends.
    pub fn with_reserved(&self) -> ScopeSet {
        self.iter().chain(RESERVED).collect()
    }

    /// The space-separated form.
    pub fn to_param(&self) -> String {
        self.0.join(" ")
    }

    pub fn to_vec(&self) -> Vec<String> {
        self.0.clone()
    }
}

impl<'a> FromIterator<&'a str> for ScopeSet {
    fn from_iter<I: IntoIterator<Item = &'a str>>(iter: I) -> Self {
        let mut out: Vec<String> = Vec::new();
        for s in iter {
            let s = s.trim();
            if !s.is_empty() && !out.iter().any(|o| o.eq_ignore_ascii_case(s)) {
                out.push(s.to_string());
            }
        }
        ScopeSet(out)
    }
}

impl FromIterator<String> for ScopeSet {
    fn from_iter<I: IntoIterator<Item = String>>(iter: I) -> Self {
        let v: Vec<String> = iter.into_iter().collect();
        v.iter().map(String::as_str).collect()
    }
}

impl fmt::Display for ScopeSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_param())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolve_takes_what_was_typed_else_the_defaults_and_refuses_bad_or_empty_sets() {
        let defaults = vec!["User.Read".to_string()];
        let r = |req| resolve("Sandbox", &defaults, req);
        assert_eq!(r(None).unwrap().to_param(), "User.Read");
        assert_eq!(r(Some("  ")).unwrap().to_param(), "User.Read");
        assert_eq!(r(Some("a b\tc")).unwrap().to_param(), "a b c");
        assert_eq!(
            r(Some("AKS")).unwrap().to_param(),
            "6dae42f8-4368-4678-94ff-3960e28e3630/.default"
        );
        for bad in ["x\"y", "<script>", "a\u{7}", "it's", "back\\slash"] {
            assert_eq!(
                r(Some(bad)),
                Err(ScopeError::Invalid(
                    bad.split_whitespace().next().unwrap().into()
                )),
                "{bad}"
            );
        }
        assert_eq!(
            resolve("Bare", &[], None).unwrap_err().to_string(),
            "no scopes to ask for: profile \"Bare\" has none; name a scope"
        );
        assert_eq!(
            resolve("Bare", &[], Some("openid")).unwrap().to_param(),
            "openid"
        );
    }

    #[test]
    fn subset_is_case_insensitive_and_ignores_order() {
        let cached = ScopeSet::parse("User.Read Mail.Read profile openid");
        assert!(ScopeSet::parse("mail.read user.read").is_subset_of(&cached));
        assert!(ScopeSet::parse("User.Read").is_subset_of(&cached));
        assert!(!ScopeSet::parse("User.Read Files.Read").is_subset_of(&cached));
    }

    #[test]
    fn reserved_scopes_are_added_and_removed() {
        let s = ScopeSet::parse("User.Read openid");
        assert_eq!(s.without_reserved().to_param(), "User.Read");
        assert_eq!(
            s.with_reserved().to_param(),
            "User.Read openid profile offline_access"
        );
    }

    #[test]
    fn aliases_expand_only_in_user_input() {
        let s = ScopeSet::parse_user_input("AKS User.Read azure-devops");
        assert_eq!(
            s.to_param(),
            format!("{AKS_SERVER_APP_ID}/.default User.Read {AZURE_DEVOPS_RESOURCE}/.default")
        );
        assert_eq!(ScopeSet::parse("aks").to_param(), "aks");
        for (_, full) in SCOPE_ALIASES {
            assert_eq!(expand_alias(full), full);
        }
        assert_eq!(
            resource_scope("https://management.core.windows.net/"),
            "https://management.core.windows.net//.default"
        );
        assert_eq!(
            resource_scope(AKS_SERVER_APP_ID),
            expand_alias("aks"),
            "--resource and the alias agree"
        );
    }

    #[test]
    fn azure_devops_hosts_default_to_its_scope() {
        let ado = Some(expand_alias("azure-devops"));
        for host in [
            "dev.azure.com",
            "DEV.AZURE.COM",
            "dev.azure.com:443",
            "contoso.visualstudio.com",
            "contoso.vssps.visualstudio.com",
            "dev.azure.com.",
        ] {
            assert_eq!(default_scope_for_git_host(host), ado, "{host}");
        }
        for host in [
            "github.com",
            "visualstudio.com",
            "evil-dev.azure.com",
            "dev.azure.com.evil.example",
            "visualstudio.com.evil.example",
            "127.0.0.1:8080",
            "",
        ] {
            assert_eq!(default_scope_for_git_host(host), None, "{host}");
        }
    }

    #[test]
    fn duplicates_collapse() {
        assert_eq!(ScopeSet::parse("a A  b a").to_param(), "a b");
    }
}
