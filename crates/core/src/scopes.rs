//! Scope sets with MSAL's rules: compared case-insensitively, order kept for display,
//! and the OpenID Connect scopes (`openid`, `profile`, `offline_access`) added to every
//! request but never required of a cached access token.

use std::fmt;

/// Scopes that every sign-in and refresh asks for, as MSAL does.
pub const RESERVED: [&str; 3] = ["openid", "profile", "offline_access"];

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ScopeSet(Vec<String>);

impl ScopeSet {
    /// Parse a space-separated list (`scope` parameter or a cached `target`).
    pub fn parse(s: &str) -> Self {
        Self::from_iter(s.split_whitespace())
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
    fn duplicates_collapse() {
        assert_eq!(ScopeSet::parse("a A  b a").to_param(), "a b");
    }
}
