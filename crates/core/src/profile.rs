//! Sign-in targets ("profiles"): built-in ones, plus the user's in `profiles.toml`:
//!
//! ```toml
//! [[profile]]
//! name = "Contoso"
//! authority = "https://login.microsoftonline.com/contoso.onmicrosoft.com"  # Entra-style
//! # issuer = "https://idp.example.com/realms/dev"                         # or generic OIDC
//! client_id = "00000000-0000-0000-0000-000000000000"
//! redirect_uri = "http://localhost"
//! scopes = ["User.Read"]
//! sign_in = "embedded"          # embedded | browser | device-code
//! instance_discovery = true     # Entra-style only; default true
//! subscription = "00000000-0000-0000-0000-000000000000"  # optional: Azure subscription id
//! ```
//!
//! A broken file is reported with its path and line and is never overwritten. Names are
//! unique, compared case-insensitively; the built-in names are reserved.

use std::path::Path;

use serde::{Deserialize, Serialize};
use url::Url;

use crate::app::ClientConfig;
use crate::authority::{parse_url, Authority};
use crate::error::{Error, Result};

/// Name of the built-in Microsoft (Entra ID, multi-tenant) profile.
pub const MICROSOFT: &str = "Microsoft";
/// Name of the built-in profile for the local sandbox identity provider.
pub const SANDBOX: &str = "Sandbox";
/// The public client Azure CLI and azure-identity's interactive credentials use.
pub const MICROSOFT_CLIENT_ID: &str = "04b07795-8ddb-461a-bbee-02f9e1bf7b46";
/// The sandbox's pre-registered public client.
pub const SANDBOX_CLIENT_ID: &str = "7a1c0de5-7e55-4a11-9c0d-5a4db0c11e01";
/// Where the sandbox listens unless told otherwise.
pub const DEFAULT_SANDBOX_URL: &str = "http://127.0.0.1:8479";
/// Overrides [`DEFAULT_SANDBOX_URL`] (`http://127.0.0.1:PORT`), so tests can run the
/// sandbox on a free port. The Sandbox profile's authority is `{url}/common`.
pub const SANDBOX_URL_ENV: &str = "TESSERA_SANDBOX_URL";

/// How the user signs in for a profile.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SignInMethod {
    /// The desktop app's embedded webview (the CLI uses the system browser instead).
    #[default]
    Embedded,
    /// The system browser with a loopback redirect.
    Browser,
    /// The device code flow (sign in on another device).
    DeviceCode,
}

impl SignInMethod {
    pub fn as_str(self) -> &'static str {
        match self {
            SignInMethod::Embedded => "embedded",
            SignInMethod::Browser => "browser",
            SignInMethod::DeviceCode => "device-code",
        }
    }
}

impl std::fmt::Display for SignInMethod {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

fn default_true() -> bool {
    true
}

fn is_true(b: &bool) -> bool {
    *b
}

/// One sign-in target.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Profile {
    pub name: String,
    /// An Entra-style authority (Entra ID, B2C, CIAM). Exactly one of `authority` and
    /// `issuer` is set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authority: Option<String>,
    /// A generic OpenID Connect issuer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub issuer: Option<String>,
    pub client_id: String,
    pub redirect_uri: String,
    #[serde(default)]
    pub scopes: Vec<String>,
    #[serde(default)]
    pub sign_in: SignInMethod,
    /// Entra instance discovery: Microsoft is asked which hosts are aliases of a custom
    /// host (never the host itself; loopback hosts are not asked). Off: the host alone.
    #[serde(default = "default_true", skip_serializing_if = "is_true")]
    pub instance_discovery: bool,
    /// The Azure subscription this target's tokens are for, when it names one (shown by
    /// `token --output az`, as Azure CLI shows the account's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subscription: Option<String>,
    /// Built into Tessera (not stored in profiles.toml, cannot be removed).
    #[serde(skip)]
    pub builtin: bool,
}

impl Profile {
    /// `entra` for an Entra-style authority, `oidc` for a generic issuer.
    pub fn kind(&self) -> &'static str {
        if self.issuer.is_some() && self.authority.is_none() {
            "oidc"
        } else {
            "entra"
        }
    }

    /// The authority or issuer URL, as written.
    pub fn target(&self) -> &str {
        self.authority
            .as_deref()
            .or(self.issuer.as_deref())
            .unwrap_or_default()
    }

    pub fn authority_object(&self) -> Result<Authority> {
        let authority = match (&self.authority, &self.issuer) {
            (Some(a), None) => Authority::entra(a)?,
            (None, Some(i)) => Authority::oidc(i)?,
            (Some(_), Some(_)) => return Err(self.invalid(
                "set either authority (Entra-style) or issuer (generic OpenID Connect), not both",
            )),
            (None, None) => return Err(self.invalid(
                "needs an authority (Entra-style, e.g. https://login.microsoftonline.com/common) \
                     or an issuer (generic OpenID Connect)",
            )),
        };
        Ok(if self.instance_discovery {
            authority
        } else {
            authority.without_instance_discovery()
        })
    }

    pub fn redirect_url(&self) -> Result<Url> {
        let url = Url::parse(self.redirect_uri.trim()).map_err(|e| {
            self.invalid(&format!(
                "redirect_uri {:?} is not an absolute URL: {e}",
                self.redirect_uri
            ))
        })?;
        if url.fragment().is_some() {
            return Err(self.invalid(&format!(
                "redirect_uri {:?} must not have a fragment",
                self.redirect_uri
            )));
        }
        if matches!(url.scheme(), "http" | "https") && url.host_str().unwrap_or_default().is_empty()
        {
            return Err(self.invalid(&format!("redirect_uri {:?} has no host", self.redirect_uri)));
        }
        Ok(url)
    }

    pub fn client_config(&self) -> Result<ClientConfig> {
        self.validate()?;
        Ok(ClientConfig {
            client_id: self.client_id.trim().to_string(),
            authority: self.authority_object()?,
            redirect_uri: self.redirect_url()?,
        })
    }

    /// Check this profile on its own (uniqueness is checked by [`Profiles`]).
    pub fn validate(&self) -> Result<()> {
        if self.name.trim().is_empty() {
            return Err(Error::Config("a profile needs a name".into()));
        }
        if self.name.trim() != self.name || self.name.chars().any(char::is_control) {
            return Err(self.invalid(
                "the name must not start or end with spaces or contain control characters",
            ));
        }
        if self.name.chars().count() > 64 {
            return Err(self.invalid("the name is longer than 64 characters"));
        }
        if let Some(a) = &self.authority {
            parse_url(a, "authority").map_err(|e| self.invalid(&e.to_string()))?;
        }
        if let Some(i) = &self.issuer {
            parse_url(i, "issuer").map_err(|e| self.invalid(&e.to_string()))?;
        }
        self.authority_object().map_err(|e| match e {
            Error::Config(m) if !m.starts_with("profile ") => self.invalid(&m),
            other => other,
        })?;
        if self.client_id.trim().is_empty() {
            return Err(self.invalid("client_id is empty"));
        }
        if self
            .client_id
            .chars()
            .any(|c| c.is_whitespace() || c.is_control())
        {
            return Err(self.invalid("client_id must not contain spaces"));
        }
        self.redirect_url()?;
        if let Some(sub) = &self.subscription {
            if sub.trim().is_empty() || sub.chars().any(|c| c.is_whitespace() || c.is_control()) {
                return Err(self.invalid("subscription must be a non-empty id without spaces"));
            }
        }
        if let Some(bad) = self
            .scopes
            .iter()
            .find(|s| s.trim().is_empty() || s.contains(char::is_whitespace))
        {
            return Err(self.invalid(&format!(
                "scope {bad:?} is empty or contains spaces (list each scope separately)"
            )));
        }
        Ok(())
    }

    fn invalid(&self, what: &str) -> Error {
        Error::Config(format!("profile {:?}: {what}", self.name))
    }
}

/// The built-in profiles followed by the user's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Profiles {
    list: Vec<Profile>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileIn {
    #[serde(default)]
    profile: Vec<toml::Spanned<Profile>>,
}

#[derive(Serialize)]
struct FileOut<'a> {
    profile: Vec<&'a Profile>,
}

const FILE_HEADER: &str = "# Tessera sign-in profiles. The built-in profiles (Microsoft, Sandbox) are not listed here.\n\
                           # Fields: name, authority or issuer, client_id, redirect_uri, scopes, sign_in\n\
                           # (embedded | browser | device-code), instance_discovery (default true),\n\
                           # subscription (optional Azure subscription id).\n\n";

impl Profiles {
    /// The built-in profiles, with the sandbox URL from `TESSERA_SANDBOX_URL` if set.
    pub fn builtin() -> Result<Profiles> {
        let sandbox = std::env::var(SANDBOX_URL_ENV)
            .ok()
            .filter(|s| !s.trim().is_empty());
        Self::builtin_with_sandbox_url(sandbox.as_deref())
    }

    /// The built-in profiles, with the sandbox at `sandbox_url` (default
    /// [`DEFAULT_SANDBOX_URL`]).
    pub fn builtin_with_sandbox_url(sandbox_url: Option<&str>) -> Result<Profiles> {
        let sandbox_url = sandbox_url.unwrap_or(DEFAULT_SANDBOX_URL).trim();
        let parsed = parse_url(sandbox_url, SANDBOX_URL_ENV)?;
        if parsed.query().is_some() || parsed.fragment().is_some() {
            return Err(Error::Config(format!(
                "{SANDBOX_URL_ENV} {sandbox_url:?} must not have a query or fragment"
            )));
        }
        let list = vec![
            Profile {
                name: MICROSOFT.into(),
                authority: Some("https://login.microsoftonline.com/common".into()),
                issuer: None,
                client_id: MICROSOFT_CLIENT_ID.into(),
                redirect_uri: "http://localhost".into(),
                scopes: vec!["https://graph.microsoft.com/User.Read".into()],
                sign_in: SignInMethod::Embedded,
                instance_discovery: true,
                subscription: None,
                builtin: true,
            },
            Profile {
                name: SANDBOX.into(),
                authority: Some(format!("{}/common", sandbox_url.trim_end_matches('/'))),
                issuer: None,
                client_id: SANDBOX_CLIENT_ID.into(),
                redirect_uri: "http://localhost/tessera-redirect".into(),
                scopes: vec!["User.Read".into()],
                sign_in: SignInMethod::Embedded,
                instance_discovery: false,
                subscription: None,
                builtin: true,
            },
        ];
        for p in &list {
            p.validate()?;
        }
        Ok(Profiles { list })
    }

    /// The built-ins, then the `[[profile]]` entries of `path`. A missing file is fine
    /// (no user profiles); a broken one is an error naming the file and the line.
    pub fn load(path: &Path) -> Result<Profiles> {
        let mut profiles = Self::builtin()?;
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(profiles),
            Err(e) => {
                return Err(Error::Config(format!(
                    "cannot read {}: {e}",
                    path.display()
                )))
            }
        };
        profiles.merge_file(path, &text)?;
        Ok(profiles)
    }

    /// Parse `text` (the contents of `path`) and add its profiles.
    fn merge_file(&mut self, path: &Path, text: &str) -> Result<()> {
        let file: FileIn = toml::from_str(text).map_err(|e| {
            let line = e
                .span()
                .map(|s| format!(", line {}", line_of(text, s.start)))
                .unwrap_or_default();
            Error::Config(format!(
                "{}{line} is not a valid profiles file (it was left as is): {}",
                path.display(),
                e.message()
            ))
        })?;
        for spanned in file.profile {
            let line = line_of(text, spanned.span().start);
            let profile = spanned.into_inner();
            let at = |e: Error| Error::Config(format!("{}, line {line}: {e}", path.display()));
            profile.validate().map_err(at)?;
            if let Some(existing) = self.get(&profile.name) {
                let why = if existing.builtin {
                    format!(
                        "profile name {:?} is reserved for a built-in profile",
                        profile.name
                    )
                } else {
                    format!("profile {:?} is defined twice", profile.name)
                };
                return Err(at(Error::Config(why)));
            }
            self.list.push(profile);
        }
        Ok(())
    }

    /// Write the user's profiles (not the built-ins) to `path`, atomically
    /// ([`crate::fsutil::replace_file`]).
    pub fn save(&self, path: &Path) -> Result<()> {
        let out = FileOut {
            profile: self.list.iter().filter(|p| !p.builtin).collect(),
        };
        let body = toml::to_string(&out)
            .map_err(|e| Error::Config(format!("cannot write profiles: {e}")))?;
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            crate::paths::create_private_dir(dir)?;
        }
        crate::fsutil::replace_file(path, format!("{FILE_HEADER}{body}").as_bytes())
            .map(drop)
            .map_err(|e| Error::Config(format!("cannot save {}: {e}", path.display())))
    }

    /// A profile by name, case-insensitively.
    pub fn get(&self, name: &str) -> Option<&Profile> {
        self.list.iter().find(|p| same_name(&p.name, name))
    }

    /// Built-ins first, then the user's, in file order.
    pub fn list(&self) -> &[Profile] {
        &self.list
    }

    /// Add a profile, or replace the user profile of the same name. Validates it; the
    /// built-in names are reserved.
    pub fn upsert(&mut self, mut profile: Profile) -> Result<()> {
        profile.validate()?;
        profile.builtin = false;
        let existing = self
            .list
            .iter()
            .position(|p| same_name(&p.name, &profile.name));
        match existing {
            Some(i) if self.list[i].builtin => Err(Error::Config(format!(
                "profile {:?} is built in and cannot be changed; add one under another name",
                self.list[i].name
            ))),
            Some(i) => {
                self.list[i] = profile;
                Ok(())
            }
            None => {
                self.list.push(profile);
                Ok(())
            }
        }
    }

    /// Remove a user profile. Built-ins cannot be removed.
    pub fn remove(&mut self, name: &str) -> Result<()> {
        let i = self
            .list
            .iter()
            .position(|p| same_name(&p.name, name))
            .ok_or_else(|| Error::Config(format!("there is no profile named {name:?}")))?;
        if self.list[i].builtin {
            return Err(Error::Config(format!(
                "profile {:?} is built in and cannot be removed",
                self.list[i].name
            )));
        }
        self.list.remove(i);
        Ok(())
    }
}

/// Profile names are compared case-insensitively (and ignoring surrounding spaces).
fn same_name(a: &str, b: &str) -> bool {
    a.trim().to_lowercase() == b.trim().to_lowercase()
}

fn line_of(text: &str, offset: usize) -> usize {
    text.get(..offset.min(text.len()))
        .unwrap_or(text)
        .matches('\n')
        .count()
        + 1
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::authority::AuthorityKind;

    fn builtins() -> Profiles {
        Profiles::builtin_with_sandbox_url(None).unwrap()
    }

    fn contoso() -> Profile {
        Profile {
            name: "Contoso".into(),
            authority: Some("https://login.microsoftonline.com/contoso.onmicrosoft.com".into()),
            issuer: None,
            client_id: "11111111-2222-3333-4444-555555555555".into(),
            redirect_uri: "http://localhost".into(),
            scopes: vec!["User.Read".into(), "Mail.Read".into()],
            sign_in: SignInMethod::Browser,
            instance_discovery: true,
            subscription: None,
            builtin: false,
        }
    }

    #[test]
    fn builtins_are_microsoft_and_sandbox() {
        let p = builtins();
        let ms = p.get("microsoft").unwrap();
        assert!(ms.builtin);
        assert_eq!(ms.client_id, MICROSOFT_CLIENT_ID);
        assert_eq!(ms.kind(), "entra");
        let cfg = ms.client_config().unwrap();
        assert_eq!(
            cfg.authority.as_str(),
            "https://login.microsoftonline.com/common"
        );
        assert!(cfg.authority.instance_discovery());
        assert_eq!(cfg.redirect_uri.as_str(), "http://localhost/");
        let sb = p.get("SANDBOX").unwrap();
        assert_eq!(sb.target(), "http://127.0.0.1:8479/common");
        assert!(!sb.authority_object().unwrap().instance_discovery());
        assert_eq!(sb.sign_in, SignInMethod::Embedded);

        let moved = Profiles::builtin_with_sandbox_url(Some("http://127.0.0.1:40123/")).unwrap();
        assert_eq!(
            moved.get("Sandbox").unwrap().target(),
            "http://127.0.0.1:40123/common"
        );
        let err =
            Profiles::builtin_with_sandbox_url(Some("http://sandbox.example.com")).unwrap_err();
        assert!(err.to_string().contains(SANDBOX_URL_ENV), "{err}");
    }

    #[test]
    fn oidc_profiles_and_instance_discovery_off() {
        let mut p = contoso();
        p.authority = None;
        p.issuer = Some("https://idp.example.com/realms/dev".into());
        assert_eq!(p.kind(), "oidc");
        assert_eq!(*p.authority_object().unwrap().kind(), AuthorityKind::Oidc);
        let mut q = contoso();
        q.instance_discovery = false;
        assert!(!q.authority_object().unwrap().instance_discovery());
    }

    #[test]
    fn validation_messages_are_clear() {
        let check = |f: &dyn Fn(&mut Profile), expected: &str| {
            let mut p = contoso();
            f(&mut p);
            let err = p.validate().unwrap_err().to_string();
            assert!(err.contains(expected), "expected {expected:?} in {err:?}");
        };
        check(&|p| p.name = "  ".into(), "needs a name");
        check(&|p| p.name = " x".into(), "spaces");
        check(&|p| p.authority = None, "needs an authority");
        check(
            &|p| p.issuer = Some("https://idp.example.com".into()),
            "not both",
        );
        check(
            &|p| p.authority = Some("http://login.microsoftonline.com/common".into()),
            "must use https",
        );
        check(
            &|p| p.authority = Some("https://login.microsoftonline.com".into()),
            "has no tenant",
        );
        check(&|p| p.client_id = " ".into(), "client_id is empty");
        check(
            &|p| p.redirect_uri = "/callback".into(),
            "not an absolute URL",
        );
        check(
            &|p| p.redirect_uri = "http://localhost/#x".into(),
            "fragment",
        );
        check(
            &|p| p.scopes = vec!["User.Read Mail.Read".into()],
            "list each scope separately",
        );
        check(&|p| p.subscription = Some(" ".into()), "subscription");
        let err = contoso().validate();
        assert!(err.is_ok());
        let mut custom = contoso();
        custom.redirect_uri = "ms-appx-web://microsoft.aad.brokerplugin/abc".into();
        assert!(custom.validate().is_ok());
        let e = {
            let mut p = contoso();
            p.client_id = String::new();
            p.client_config().unwrap_err().to_string()
        };
        assert!(e.starts_with("profile \"Contoso\""), "{e}");
    }

    #[test]
    fn load_missing_file_gives_builtins_and_save_roundtrips() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cfg/profiles.toml");
        let mut p = Profiles::load(&path).unwrap();
        assert_eq!(p.list().len(), 2);
        p.upsert(contoso()).unwrap();
        let mut oidc = contoso();
        oidc.name = "Dev IdP".into();
        oidc.authority = None;
        oidc.issuer = Some("http://127.0.0.1:3000".into());
        oidc.sign_in = SignInMethod::DeviceCode;
        oidc.instance_discovery = true;
        oidc.subscription = Some("0b1f6471-1bf0-4dda-aec3-cb9272f09590".into());
        p.upsert(oidc.clone()).unwrap();
        p.save(&path).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(
            !text.contains("Microsoft\""),
            "built-ins are not saved: {text}"
        );
        assert!(text.contains("sign_in = \"device-code\""), "{text}");
        assert!(
            text.contains("subscription = \"0b1f6471-1bf0-4dda-aec3-cb9272f09590\""),
            "{text}"
        );
        assert!(!text.contains("builtin"));
        let loaded = Profiles::load(&path).unwrap();
        assert_eq!(loaded.list().len(), 4);
        assert_eq!(loaded.get("dev idp"), Some(&oidc));
        assert_eq!(loaded.get("contoso"), Some(&contoso()));
        assert_eq!(loaded.list()[0].name, MICROSOFT);
        assert_eq!(loaded.list()[2].name, "Contoso");
        let leftovers: Vec<_> = std::fs::read_dir(path.parent().unwrap()).unwrap().collect();
        assert_eq!(leftovers.len(), 1, "no temporary file is left behind");
    }

    #[test]
    fn minimal_entries_get_defaults() {
        let mut p = builtins();
        p.merge_file(
            Path::new("p.toml"),
            "[[profile]]\nname = \"Min\"\nissuer = \"https://idp.example.com\"\nclient_id = \"c\"\nredirect_uri = \"http://localhost/cb\"\n",
        )
        .unwrap();
        let m = p.get("min").unwrap();
        assert_eq!(m.sign_in, SignInMethod::Embedded);
        assert!(m.instance_discovery);
        assert!(m.scopes.is_empty());
        assert!(m.subscription.is_none());
        assert!(!m.builtin);
    }

    #[test]
    fn broken_files_name_file_and_line_and_are_kept() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("profiles.toml");
        let cases = [
            ("[[profile]]\nname = \"A\"\nclient_id = \n", "line 3"),
            ("[[profile]]\nname = \"A\"\nclientid = \"x\"\n", "line 3"),
            (
                "[[profile]]\nname = \"A\"\nauthority = \"https://login.microsoftonline.com/x\"\nclient_id = \"c\"\nredirect_uri = \"http://localhost\"\nsign_in = \"popup\"\n",
                "line 6",
            ),
            (
                "# comment\n\n[[profile]]\nname = \"Bad\"\nauthority = \"http://evil.example.com/x\"\nclient_id = \"c\"\nredirect_uri = \"http://localhost\"\n",
                "line 3: profile \"Bad\": authority",
            ),
            (
                "[[profile]]\nname = \"microsoft\"\nauthority = \"https://login.microsoftonline.com/x\"\nclient_id = \"c\"\nredirect_uri = \"http://localhost\"\n",
                "reserved for a built-in",
            ),
            (
                "[[profile]]\nname = \"A\"\nissuer = \"https://a.example\"\nclient_id = \"c\"\nredirect_uri = \"http://localhost\"\n\n[[profile]]\nname = \"a\"\nissuer = \"https://a.example\"\nclient_id = \"c\"\nredirect_uri = \"http://localhost\"\n",
                "line 7: profile \"a\" is defined twice",
            ),
            ("\u{0}binary", "line 1"),
        ];
        for (text, expected) in cases {
            std::fs::write(&path, text).unwrap();
            let err = Profiles::load(&path).unwrap_err().to_string();
            assert!(err.contains(&path.display().to_string()), "{err}");
            assert!(err.contains(expected), "expected {expected:?} in {err}");
            assert_eq!(
                std::fs::read_to_string(&path).unwrap(),
                text,
                "the file is left as is"
            );
        }
    }

    #[test]
    fn upsert_and_remove_respect_builtins() {
        let mut p = builtins();
        let mut ms = contoso();
        ms.name = "MICROSOFT".into();
        assert!(p.upsert(ms).unwrap_err().to_string().contains("built in"));
        assert!(p
            .remove("Sandbox")
            .unwrap_err()
            .to_string()
            .contains("cannot be removed"));
        assert!(p
            .remove("nope")
            .unwrap_err()
            .to_string()
            .contains("no profile named"));
        p.upsert(contoso()).unwrap();
        let mut changed = contoso();
        changed.name = "CONTOSO".into();
        changed.scopes = vec!["Files.Read".into()];
        p.upsert(changed).unwrap();
        assert_eq!(p.list().len(), 3);
        assert_eq!(
            p.get("contoso").unwrap().scopes,
            vec!["Files.Read".to_string()]
        );
        let mut bad = contoso();
        bad.name = "Other".into();
        bad.client_id = String::new();
        assert!(p.upsert(bad).is_err());
        assert_eq!(p.list().len(), 3);
        p.remove("contoso").unwrap();
        assert_eq!(p.list().len(), 2);
    }
}
