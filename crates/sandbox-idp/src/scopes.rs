//! Scope parsing: OIDC scopes, resources (Microsoft Graph, api://sandbox-api, AKS, Azure
//! DevOps), `.default`.

use crate::data::{
    AKS_RESOURCE_ID, AZURE_DEVOPS_RESOURCE_ID, GRAPH_RESOURCE_ID, GRAPH_RESOURCE_URI, SANDBOX_API,
};
use crate::errors::AadError;
use std::collections::BTreeSet;

/// OIDC scopes in the order Entra lists them.
pub const OIDC_SCOPES: [&str; 4] = ["openid", "profile", "email", "offline_access"];

/// A resource the sandbox issues access tokens for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Resource {
    Graph,
    SandboxApi,
    /// AKS's server application (Kubernetes API servers with Entra integration).
    Aks,
    AzureDevOps,
}

impl Resource {
    /// The `aud` claim of access tokens for this resource.
    pub fn audience(self) -> &'static str {
        match self {
            Resource::Graph => GRAPH_RESOURCE_ID,
            Resource::SandboxApi => SANDBOX_API,
            Resource::Aks => AKS_RESOURCE_ID,
            Resource::AzureDevOps => AZURE_DEVOPS_RESOURCE_ID,
        }
    }

    /// Permissions granted by `<resource>/.default` (the app's statically consented ones).
    fn default_permissions(self) -> &'static [&'static str] {
        match self {
            Resource::Graph => &["User.Read"],
            Resource::SandboxApi => &["Data.Read"],
            Resource::Aks => &["user.read"],
            Resource::AzureDevOps => &["user_impersonation"],
        }
    }

    /// Permissions the resource defines (`None`: any well-formed name, as for Graph here).
    fn known_permissions(self) -> Option<&'static [&'static str]> {
        match self {
            Resource::Graph => None,
            Resource::SandboxApi => Some(&["Data.Read", "Data.Write"]),
            Resource::Aks => Some(&["user.read"]),
            Resource::AzureDevOps => Some(&["user_impersonation"]),
        }
    }

    /// How a permission appears in the response's `scope` (short for Graph, full URI otherwise).
    pub fn scope_string(self, perm: &str) -> String {
        match self {
            Resource::Graph => perm.to_string(),
            other => format!("{}/{perm}", other.audience()),
        }
    }

    /// A canonical `resource/permission` key for consent records.
    pub fn consent_key(self, perm: &str) -> String {
        format!("{}/{}", self.audience(), perm.to_ascii_lowercase())
    }
}

/// A parsed `scope` parameter.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Scopes {
    /// OIDC scopes present (lower case).
    pub oidc: BTreeSet<&'static str>,
    /// Requested resources with their permissions (`.default` expanded), in request order.
    pub resources: Vec<(Resource, Vec<String>)>,
    /// Whether a `.default` scope was used for a resource.
    pub uses_default: bool,
    /// The `.default` scopes as requested (Entra echoes them in the response's `scope`).
    pub defaults: Vec<String>,
}

impl Scopes {
    /// Parses a space-separated scope string. With no resource scope, Graph `User.Read` is
    /// implied, as Entra does.
    pub fn parse(raw: &str, tenant_label: &str) -> Result<Scopes, AadError> {
        let mut s = Scopes::default();
        for item in raw.split_whitespace() {
            if let Some(o) = OIDC_SCOPES.iter().find(|o| o.eq_ignore_ascii_case(item)) {
                s.oidc.insert(o);
                continue;
            }
            let (resource, perm) = split_resource(item, tenant_label)?;
            let perms: Vec<String> = if perm == ".default" {
                s.uses_default = true;
                if !s.defaults.iter().any(|d| d.eq_ignore_ascii_case(item)) {
                    s.defaults.push(item.to_string());
                }
                resource
                    .default_permissions()
                    .iter()
                    .map(|p| p.to_string())
                    .collect()
            } else {
                let valid_name = !perm.is_empty()
                    && perm
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
                let canonical = match resource.known_permissions() {
                    Some(known) => known.iter().find(|k| k.eq_ignore_ascii_case(perm)).copied(),
                    None => None,
                };
                match (valid_name, resource.known_permissions(), canonical) {
                    (true, None, _) => vec![perm.to_string()],
                    (true, Some(_), Some(c)) => vec![c.to_string()],
                    _ => return Err(invalid_scope(item)),
                }
            };
            match s.resources.iter_mut().find(|(r, _)| *r == resource) {
                Some((_, existing)) => {
                    for p in perms {
                        if !existing.iter().any(|e| e.eq_ignore_ascii_case(&p)) {
                            existing.push(p);
                        }
                    }
                }
                None => s.resources.push((resource, perms)),
            }
        }
        if s.resources.is_empty() {
            s.resources
                .push((Resource::Graph, vec!["User.Read".to_string()]));
        }
        Ok(s)
    }

    /// The single resource of a token request; AADSTS28000 when several are named.
    pub fn single_resource(&self, raw: &str) -> Result<(Resource, Vec<String>), AadError> {
        if self.resources.len() > 1 {
            return Err(AadError::new(
                "invalid_scope",
                28000,
                format!(
                    "Provided value for the input parameter scope is not valid because it contains \
                     more than one resource. Scope {} is not valid.",
                    raw.trim()
                ),
            ));
        }
        Ok(self.resources[0].clone())
    }

    pub fn has(&self, oidc: &str) -> bool {
        self.oidc.contains(oidc)
    }
}

fn invalid_scope(item: &str) -> AadError {
    AadError::new(
        "invalid_scope",
        70011,
        format!(
            "The provided value for the input parameter 'scope' is not valid. The scope {item} is not valid."
        ),
    )
}

fn split_resource<'a>(item: &'a str, tenant_label: &str) -> Result<(Resource, &'a str), AadError> {
    if !item.contains('/') {
        // A bare permission such as `User.Read` belongs to Microsoft Graph.
        if item.contains(':') {
            return Err(invalid_scope(item));
        }
        return Ok((Resource::Graph, item));
    }
    let (res, perm) = item.rsplit_once('/').unwrap_or((item, ""));
    let res_norm = res.trim_end_matches('/');
    if res_norm.eq_ignore_ascii_case(GRAPH_RESOURCE_URI)
        || res_norm.eq_ignore_ascii_case(GRAPH_RESOURCE_ID)
    {
        Ok((Resource::Graph, perm))
    } else if res_norm.eq_ignore_ascii_case(SANDBOX_API) {
        Ok((Resource::SandboxApi, perm))
    } else if res_norm.eq_ignore_ascii_case(AKS_RESOURCE_ID) {
        Ok((Resource::Aks, perm))
    } else if res_norm.eq_ignore_ascii_case(AZURE_DEVOPS_RESOURCE_ID) {
        Ok((Resource::AzureDevOps, perm))
    } else {
        Err(AadError::new(
            "invalid_resource",
            500011,
            format!(
                "The resource principal named {res_norm} was not found in the tenant named {tenant_label}. \
                 This can happen if the application has not been installed by the administrator of the \
                 tenant or consented to by any user in the tenant. You might have sent your \
                 authentication request to the wrong tenant."
            ),
        ))
    }
}

/// Scopes to show on a consent page, as (consent key, description, scope string); OIDC scopes
/// have an empty consent key (they need no recorded consent).
pub fn consent_items(raw: &str, tenant_label: &str) -> Vec<(String, String, String)> {
    let Ok(scopes) = Scopes::parse(raw, tenant_label) else {
        return Vec::new();
    };
    let mut items = Vec::new();
    for o in OIDC_SCOPES {
        if scopes.has(o) {
            items.push((String::new(), describe(None, o), o.to_string()));
        }
    }
    for (res, perms) in &scopes.resources {
        for p in perms {
            items.push((
                res.consent_key(p),
                describe(Some(*res), p),
                res.scope_string(p),
            ));
        }
    }
    items
}

/// Human wording of a scope for the consent page.
pub fn describe(resource: Option<Resource>, perm: &str) -> String {
    match (resource, perm.to_ascii_lowercase().as_str()) {
        (None, "openid") => "Sign you in".into(),
        (None, "profile") => "View your basic profile".into(),
        (None, "email") => "View your email address".into(),
        (None, "offline_access") => "Maintain access to data you have given it access to".into(),
        (Some(Resource::Graph), "user.read") => "Sign in and read your profile".into(),
        (Some(Resource::Graph), _) => format!("Access Microsoft Graph: {perm}"),
        (Some(Resource::SandboxApi), "data.read") => "Read your data in the Sandbox API".into(),
        (Some(Resource::SandboxApi), "data.write") => "Change your data in the Sandbox API".into(),
        (Some(Resource::SandboxApi), _) => format!("Access the Sandbox API: {perm}"),
        (Some(Resource::Aks), _) => "Access Kubernetes clusters (AKS) as you".into(),
        (Some(Resource::AzureDevOps), _) => "Access Azure DevOps as you".into(),
        (None, _) => perm.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn graph_scopes_in_all_spellings() {
        let s = Scopes::parse(
            "openid profile offline_access User.Read https://graph.microsoft.com/Mail.Read",
            "common",
        )
        .unwrap();
        assert_eq!(
            s.resources,
            vec![(
                Resource::Graph,
                vec!["User.Read".to_string(), "Mail.Read".to_string()]
            )]
        );
        assert!(s.has("openid") && s.has("offline_access") && !s.has("email"));
        let d = Scopes::parse("https://graph.microsoft.com/.default", "common").unwrap();
        assert_eq!(d.resources[0].1, ["User.Read"]);
        assert!(d.uses_default);
        assert_eq!(d.defaults, ["https://graph.microsoft.com/.default"]);
    }

    #[test]
    fn no_resource_means_graph_user_read() {
        let s = Scopes::parse("openid profile", "common").unwrap();
        assert_eq!(
            s.resources,
            vec![(Resource::Graph, vec!["User.Read".to_string()])]
        );
    }

    #[test]
    fn aks_and_azure_devops_by_their_ids() {
        let aks = Scopes::parse("6DAE42F8-4368-4678-94ff-3960e28e3630/.default", "common").unwrap();
        assert_eq!(
            aks.resources,
            vec![(Resource::Aks, vec!["user.read".to_string()])]
        );
        assert_eq!(
            Resource::Aks.scope_string("user.read"),
            "6dae42f8-4368-4678-94ff-3960e28e3630/user.read"
        );
        let ado = Scopes::parse(
            "499b84ac-1321-427f-aa17-267ca6975798/.default offline_access",
            "common",
        )
        .unwrap();
        assert_eq!(ado.resources[0].0, Resource::AzureDevOps);
        assert_eq!(
            Resource::AzureDevOps.audience(),
            "499b84ac-1321-427f-aa17-267ca6975798"
        );
        let e =
            Scopes::parse("499b84ac-1321-427f-aa17-267ca6975798/vso.code", "common").unwrap_err();
        assert_eq!((e.error, e.code), ("invalid_scope", 70011));
    }

    #[test]
    fn two_resources_are_refused_for_a_token() {
        let raw = "User.Read api://sandbox-api/Data.Read";
        let s = Scopes::parse(raw, "common").unwrap();
        let e = s.single_resource(raw).unwrap_err();
        assert_eq!((e.error, e.code), ("invalid_scope", 28000));
    }

    #[test]
    fn unknown_resources_and_permissions_are_refused() {
        let e = Scopes::parse("https://unknown.example/x", "common").unwrap_err();
        assert_eq!(e.code, 500011);
        let e = Scopes::parse("api://sandbox-api/Data.Delete", "common").unwrap_err();
        assert_eq!(e.code, 70011);
        let ok = Scopes::parse("api://sandbox-api/data.write", "common").unwrap();
        assert_eq!(ok.resources[0].1, ["Data.Write"]);
    }
}
