//! The sandbox's fixed directory: tenants, demo users, well-known client ids and resources.

/// A directory (tenant) known to the sandbox.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tenant {
    /// Short name, e.g. `contoso`.
    pub name: &'static str,
    /// Tenant id (GUID), the `tid` claim.
    pub id: &'static str,
    /// Verified domain, usable as the authority's tenant segment (empty for consumers).
    pub domain: &'static str,
    /// Organisation name shown on pages.
    pub display_name: &'static str,
}

/// The work tenant `contoso`.
pub const CONTOSO: Tenant = Tenant {
    name: "contoso",
    id: "7f8d8c66-3b8e-4d3a-9a55-2c0d1c6b7a01",
    domain: "contoso.example",
    display_name: "Contoso",
};

/// The work tenant `fabrikam`.
pub const FABRIKAM: Tenant = Tenant {
    name: "fabrikam",
    id: "2b1e7c9a-6f4d-4e8b-b1a3-5d9c0e7f3a02",
    domain: "fabrikam.example",
    display_name: "Fabrikam",
};

/// The personal-account (Microsoft account) tenant; its id is Entra's real consumers tenant id.
pub const CONSUMERS: Tenant = Tenant {
    name: "consumers",
    id: "9188040d-6c67-4c5b-b112-36a304b66dad",
    domain: "",
    display_name: "Personal accounts",
};

/// All tenants.
pub const TENANTS: [Tenant; 3] = [CONTOSO, FABRIKAM, CONSUMERS];

/// The password of every demo user (shown as a hint on the sign-in page).
pub const DEMO_PASSWORD: &str = "tessera";

/// A demo user.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct User {
    /// Sign-in name, the `preferred_username` claim.
    pub login: &'static str,
    /// Display name, the `name` claim.
    pub name: &'static str,
    /// Stable object id, the `oid` claim (and `uid` of `client_info`).
    pub oid: &'static str,
    /// Home tenant id, the `tid` claim.
    pub tenant_id: &'static str,
    /// App roles granted on `api://sandbox-api` (the `roles` claim of its access tokens).
    pub roles: &'static [&'static str],
    /// A personal (consumers) account rather than a work account.
    pub personal: bool,
}

/// All demo users.
pub const USERS: [User; 4] = [
    User {
        login: "alice@contoso.example",
        name: "Alice Example",
        oid: "3c5e2f1a-7b4d-4c6e-9f8a-a11ce0000001",
        tenant_id: CONTOSO.id,
        roles: &["Data.Admin"],
        personal: false,
    },
    User {
        login: "bob@contoso.example",
        name: "Bob Example",
        oid: "5d7f3a2b-8c5e-4d7f-a0b9-b0b000000002",
        tenant_id: CONTOSO.id,
        roles: &["Data.Reader"],
        personal: false,
    },
    User {
        login: "carol@fabrikam.example",
        name: "Carol Example",
        oid: "7e9a4b3c-9d6f-4e8a-b1ca-ca7010000003",
        tenant_id: FABRIKAM.id,
        roles: &[],
        personal: false,
    },
    User {
        login: "dave@outlook.example",
        name: "Dave Example",
        // Personal-account object ids have Entra's 00000000-0000-0000-xxxx-xxxxxxxxxxxx shape.
        oid: "00000000-0000-0000-da7e-5a4db0c11e04",
        tenant_id: CONSUMERS.id,
        roles: &[],
        personal: true,
    },
];

/// The client id of Tessera's Sandbox profile.
pub const SANDBOX_CLIENT_ID: &str = "7a1c0de5-7e55-4a11-9c0d-5a4db0c11e01";

/// Default family-of-client-ids (FOCI) members (Azure CLI's and Azure PowerShell's ids).
pub const DEFAULT_FAMILY_CLIENT_IDS: [&str; 2] = [
    "04b07795-8ddb-461a-bbee-02f9e1bf7b46",
    "1950a258-227b-4e31-a9cf-717495945fc2",
];

/// Microsoft Graph's application id: the `aud` of Graph access tokens.
pub const GRAPH_RESOURCE_ID: &str = "00000003-0000-0000-c000-000000000000";
/// Microsoft Graph's resource URI.
pub const GRAPH_RESOURCE_URI: &str = "https://graph.microsoft.com";
/// The sandbox's own protected API: the `aud` of its access tokens.
pub const SANDBOX_API: &str = "api://sandbox-api";
/// AKS's Entra server application: the `aud` of tokens for Kubernetes API servers.
pub const AKS_RESOURCE_ID: &str = "6dae42f8-4368-4678-94ff-3960e28e3630";
/// Azure DevOps' resource id: the `aud` of tokens for its Git and REST endpoints.
pub const AZURE_DEVOPS_RESOURCE_ID: &str = "499b84ac-1321-427f-aa17-267ca6975798";

/// Finds a user by sign-in name (case-insensitive, surrounding spaces ignored).
pub fn user_by_login(login: &str) -> Option<&'static User> {
    let login = login.trim();
    USERS.iter().find(|u| u.login.eq_ignore_ascii_case(login))
}

/// Finds a user by object id.
pub fn user_by_oid(oid: &str) -> Option<&'static User> {
    USERS.iter().find(|u| u.oid == oid)
}

/// Finds a tenant by id or domain (case-insensitive).
pub fn tenant_by_id_or_domain(s: &str) -> Option<&'static Tenant> {
    TENANTS.iter().find(|t| {
        t.id.eq_ignore_ascii_case(s) || (!t.domain.is_empty() && t.domain.eq_ignore_ascii_case(s))
    })
}

/// What an authority's tenant segment designates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TenantSel {
    /// `common`: work and personal accounts.
    Common,
    /// `organizations`: work accounts only.
    Organizations,
    /// `consumers`: personal accounts only.
    Consumers,
    /// One tenant, named by id or domain.
    Tenant(&'static Tenant),
}

impl TenantSel {
    /// Parses a path segment; `None` for an unknown tenant.
    pub fn parse(segment: &str) -> Option<TenantSel> {
        match segment.to_ascii_lowercase().as_str() {
            "common" => Some(TenantSel::Common),
            "organizations" => Some(TenantSel::Organizations),
            "consumers" => Some(TenantSel::Consumers),
            other => tenant_by_id_or_domain(other).map(TenantSel::Tenant),
        }
    }

    /// Whether a user may sign in through this authority.
    pub fn allows(&self, user: &User) -> bool {
        match self {
            TenantSel::Common => true,
            TenantSel::Organizations => !user.personal,
            TenantSel::Consumers => user.personal,
            TenantSel::Tenant(t) => user.tenant_id == t.id,
        }
    }

    /// The segment Entra uses in this authority's endpoints (a tenant id for a named tenant).
    pub fn endpoint_segment(&self) -> &'static str {
        match self {
            TenantSel::Common => "common",
            TenantSel::Organizations => "organizations",
            TenantSel::Consumers => "consumers",
            TenantSel::Tenant(t) => t.id,
        }
    }

    /// The concrete tenant id behind the issuer, if there is one.
    pub fn issuer_tenant_id(&self) -> Option<&'static str> {
        match self {
            TenantSel::Common | TenantSel::Organizations => None,
            TenantSel::Consumers => Some(CONSUMERS.id),
            TenantSel::Tenant(t) => Some(t.id),
        }
    }

    /// Users who may sign in here, in directory order.
    pub fn users(&self) -> Vec<&'static User> {
        USERS.iter().filter(|u| self.allows(u)).collect()
    }
}

/// A friendly name for well-known client ids, shown on pages.
pub fn client_display_name(client_id: &str) -> String {
    match client_id {
        SANDBOX_CLIENT_ID => "Tessera (sandbox profile)".to_string(),
        "04b07795-8ddb-461a-bbee-02f9e1bf7b46" => "Microsoft Azure CLI".to_string(),
        "1950a258-227b-4e31-a9cf-717495945fc2" => "Microsoft Azure PowerShell".to_string(),
        other => format!("Application {other}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tenant_segments_select_the_documented_users() {
        let names = |s: &str| -> Vec<&str> {
            TenantSel::parse(s)
                .unwrap()
                .users()
                .iter()
                .map(|u| u.login)
                .collect()
        };
        assert_eq!(names("common").len(), 4);
        assert_eq!(
            names("organizations"),
            [
                "alice@contoso.example",
                "bob@contoso.example",
                "carol@fabrikam.example"
            ]
        );
        assert_eq!(names("consumers"), ["dave@outlook.example"]);
        assert_eq!(
            names("CONTOSO.example"),
            ["alice@contoso.example", "bob@contoso.example"]
        );
        assert_eq!(names(FABRIKAM.id), ["carol@fabrikam.example"]);
        assert_eq!(names(CONSUMERS.id), ["dave@outlook.example"]);
        assert!(TenantSel::parse("nowhere.example").is_none());
        assert!(TenantSel::parse("").is_none());
    }

    #[test]
    fn users_are_found_case_insensitively() {
        assert_eq!(
            user_by_login(" Alice@Contoso.Example ").unwrap().name,
            "Alice Example"
        );
        assert!(user_by_login("mallory@contoso.example").is_none());
    }
}
