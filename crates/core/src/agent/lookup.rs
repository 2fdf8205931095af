//! What a token request resolves to, the same in `tessera-cli` and in an agent: the
//! account `--account` names (or the only one), its profile, Azure CLI's `--tenant`, the
//! scopes, then `acquire_token_silent`; and a refusal as `tessera-cli` prints it
//! ([`render`]), so a client of an agent prints what it would have printed alone.

use crate::app::{AuthResult, SilentOptions};
use crate::authority::AuthorityKind;
use crate::context::{ProfileAccount, Tessera};
use crate::error::{Error, InteractionReason};
use crate::profile::Profile;
use crate::scopes::ScopeSet;

/// Why no token: a usage mistake (exit 2) or the engine's error.
#[derive(Debug)]
pub enum Refusal {
    /// Bad arguments or an ambiguous choice.
    Usage(String),
    Core(Error),
}

impl From<Error> for Refusal {
    fn from(e: Error) -> Self {
        Refusal::Core(e)
    }
}

/// A refusal with what is known around it.
#[derive(Debug)]
pub struct Refused {
    pub refusal: Refusal,
    /// A line printed before the error ("No signed-in account alice@….").
    pub preface: Option<String>,
    /// The profile the account was found in (its name), when it was.
    pub profile: Option<String>,
}

impl Refused {
    fn new(refusal: impl Into<Refusal>) -> Refused {
        Refused {
            refusal: refusal.into(),
            preface: None,
            profile: None,
        }
    }

    pub fn usage(message: String) -> Refused {
        Refused::new(Refusal::Usage(message))
    }

    fn in_profile(mut self, profile: &Profile) -> Refused {
        self.profile = Some(profile.name.clone());
        self
    }

    /// Whether a sign-in would help.
    pub fn needs_interaction(&self) -> bool {
        matches!(
            self.refusal,
            Refusal::Core(Error::InteractionRequired { .. } | Error::Cancelled)
        )
    }
}

impl From<Error> for Refused {
    fn from(e: Error) -> Self {
        Refused::new(e)
    }
}

/// Control characters shown escaped: text from a provider or a user cannot move the
/// cursor or rewrite a terminal's title.
pub fn sanitize(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

/// What `tessera-cli` prints on stderr for a refusal, and its exit code.
pub fn render(refusal: &Refusal) -> (String, u8) {
    match refusal {
        Refusal::Usage(msg) => render_usage(msg),
        Refusal::Core(e) => render_error(e),
    }
}

/// A usage mistake as `tessera-cli` prints it (exit 2).
pub fn render_usage(msg: &str) -> (String, u8) {
    (
        format!(
            "error: {}\n\nFor more information, try '--help'.\n",
            sanitize(msg)
        ),
        2,
    )
}

/// An engine error as `tessera-cli` prints it, with its exit code.
pub fn render_error(e: &Error) -> (String, u8) {
    let mut text = format!("error: {}\n", sanitize(&e.to_string()));
    if let Some(p) = e.provider_error() {
        if !p.error_codes.is_empty() {
            let codes: Vec<String> = p.error_codes.iter().map(|c| format!("AADSTS{c}")).collect();
            text.push_str(&format!("       error codes: {}\n", codes.join(", ")));
        }
    }
    if matches!(e, Error::InteractionRequired { .. }) {
        text.push_str("Sign in with: tessera-cli --profile <NAME> login\n");
    }
    (text, u8::try_from(e.exit_code()).unwrap_or(1))
}

/// The scopes a request names (`--scope`, space or comma separated), else the profile's.
pub fn requested_scopes(flags: &[String], profile: &Profile) -> Result<ScopeSet, Refusal> {
    let typed = flags.join(" ");
    crate::scopes::resolve(&profile.name, &profile.scopes, Some(&typed))
        .map_err(|e| Refusal::Usage(format!("{e} (--scope SCOPE)")))
}

/// Accounts listed one per line, for "choose one" messages.
pub fn list_accounts(accounts: &[ProfileAccount]) -> String {
    accounts
        .iter()
        .map(|pa| {
            format!(
                "  {}  ({}, {})",
                pa.account.username, pa.profile, pa.account.home_account_id
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// The account a command acts on: `wanted` (user name or home_account_id) within the
/// target profile or across all profiles; without it, the only account.
pub async fn choose_account(
    ctx: &Tessera,
    target: Option<&Profile>,
    wanted: Option<&str>,
) -> Result<ProfileAccount, Refused> {
    let where_ = target
        .map(|p| format!(" in profile {}", p.name))
        .unwrap_or_default();
    let no_account = |preface: String| Refused {
        refusal: Refusal::Core(Error::interaction(InteractionReason::NoAccount)),
        preface: Some(preface),
        profile: target.map(|p| p.name.clone()),
    };
    match wanted {
        Some(w) => {
            // Only the accounts going by that name are read from the store.
            let mut found = ctx.accounts_named(target, w).await?;
            match found.len() {
                0 => Err(no_account(format!("No signed-in account {w}{where_}."))),
                1 => Ok(found.remove(0)),
                _ => Err(Refused::new(Refusal::Usage(format!(
                    "{w} is signed in through several profiles; choose one with --profile:\n{}",
                    list_accounts(&found)
                )))),
            }
        }
        None => {
            let candidates = match target {
                Some(p) => ctx.accounts_of(p).await?,
                None => ctx.accounts().await?,
            };
            match candidates.len() {
                0 => Err(no_account(format!("No account is signed in{where_}."))),
                1 => Ok(candidates.into_iter().next().expect("one account")),
                _ => Err(Refused::new(Refusal::Usage(format!(
                    "several accounts are signed in; choose one with --account:\n{}",
                    list_accounts(&candidates)
                )))),
            }
        }
    }
}

/// The account and the profile to use for it.
pub async fn resolve(
    ctx: &Tessera,
    target: Option<&Profile>,
    account: Option<&str>,
) -> Result<(Profile, ProfileAccount), Refused> {
    let pa = choose_account(ctx, target, account).await?;
    let profile = match target {
        Some(p) => p.clone(),
        None => ctx.profile(&pa.profile)?.clone(),
    };
    Ok((profile, pa))
}

/// `profile` with its Entra ID authority's tenant replaced (Azure CLI's `--tenant`).
pub fn for_tenant(profile: &Profile, tenant: Option<&str>) -> Result<Profile, Refusal> {
    let Some(tenant) = tenant.map(str::trim) else {
        return Ok(profile.clone());
    };
    if tenant.is_empty()
        || !tenant
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_'))
    {
        return Err(Refusal::Usage(format!(
            "--tenant {tenant:?} is not a tenant id or domain"
        )));
    }
    let authority = profile.authority_object()?;
    if !matches!(authority.kind(), AuthorityKind::Entra { .. }) {
        return Err(Refusal::Usage(format!(
            "--tenant needs an Entra ID authority; profile {:?} uses {}",
            profile.name,
            profile.target()
        )));
    }
    let mut url = authority.url().clone();
    url.set_path(&format!("/{tenant}"));
    let mut p = profile.clone();
    p.authority = Some(url.as_str().trim_end_matches('/').to_string());
    p.validate().map_err(|e| Refusal::Usage(e.to_string()))?;
    Ok(p)
}

/// `acquire_token_silent` for the account with the scopes the user named.
pub async fn silent(
    ctx: &Tessera,
    profile: &Profile,
    pa: &ProfileAccount,
    scope_flags: &[String],
    options: &SilentOptions,
) -> Result<AuthResult, Refusal> {
    let scopes = requested_scopes(scope_flags, profile)?;
    Ok(ctx
        .app(profile)?
        .acquire_token_silent(&scopes, &pa.account, options)
        .await?)
}

/// What a token request asks, as `tessera-cli token` takes it.
#[derive(Debug, Clone, Default)]
pub struct Wanted<'a> {
    pub target: Option<&'a Profile>,
    pub account: Option<&'a str>,
    pub tenant: Option<&'a str>,
    pub scopes: &'a [String],
}

/// Find the account and its profile (for `tenant`): the first half of a token request.
pub async fn find(ctx: &Tessera, w: &Wanted<'_>) -> Result<(Profile, ProfileAccount), Refused> {
    let (profile, pa) = resolve(ctx, w.target, w.account).await?;
    let profile =
        for_tenant(&profile, w.tenant).map_err(|r| Refused::new(r).in_profile(&profile))?;
    Ok((profile, pa))
}

/// The whole token request: find, then silently acquire.
pub async fn token(
    ctx: &Tessera,
    w: &Wanted<'_>,
    options: &SilentOptions,
) -> Result<(Profile, AuthResult), Refused> {
    let (profile, pa) = find(ctx, w).await?;
    match silent(ctx, &profile, &pa, w.scopes, options).await {
        Ok(r) => Ok((profile, r)),
        Err(r) => Err(Refused::new(r).in_profile(&profile)),
    }
}

/// The accounts a listing shows: those of the target profile (or of every profile), and,
/// without a target, the store's accounts no profile lists, grouped, each group with the
/// profile that would list it.
pub async fn accounts(
    ctx: &Tessera,
    target: Option<&Profile>,
) -> Result<(Vec<ProfileAccount>, Vec<super::Unlisted>), Refused> {
    let accounts = match target {
        Some(p) => ctx.accounts_of(p).await?,
        None => ctx.accounts().await?,
    };
    let unlisted = match target {
        Some(_) => Vec::new(),
        None => ctx
            .unlisted_among(&accounts)?
            .into_iter()
            .map(|group| {
                let suggested = ctx.suggested_profile(&group)?;
                Ok(super::Unlisted { group, suggested })
            })
            .collect::<crate::Result<_>>()?,
    };
    Ok((accounts, unlisted))
}

/// Sign `wanted` (or, with `all`, every account of the target or of every profile) out:
/// MSAL's `remove_account` through each account's profile, an account found through two
/// profiles once.
pub async fn sign_out(
    ctx: &Tessera,
    target: Option<&Profile>,
    wanted: Option<&str>,
    all: bool,
) -> Result<Vec<super::SignedOut>, Refused> {
    let chosen: Vec<ProfileAccount> = if all {
        match target {
            Some(p) => ctx.accounts_of(p).await?,
            None => ctx.accounts().await?,
        }
    } else {
        vec![choose_account(ctx, target, wanted).await?]
    };
    let mut done: Vec<super::SignedOut> = Vec::new();
    let mut seen: Vec<(String, String)> = Vec::new();
    for pa in chosen {
        let id = (
            pa.account.home_account_id.clone(),
            pa.account.environment.clone(),
        );
        if seen.contains(&id) {
            continue;
        }
        let profile = match target {
            Some(p) => p.clone(),
            None => ctx.profile(&pa.profile)?.clone(),
        };
        let out = ctx.app(&profile)?.remove_account(&pa.account).await?;
        done.push(super::SignedOut {
            username: pa.account.username.clone(),
            profile: pa.profile.clone(),
            removed: out.removed,
            end_session_url: out.end_session_url.map(|u| u.to_string()),
        });
        seen.push(id);
    }
    Ok(done)
}

/// What `tessera-cli status` shows of a home.
pub fn store_facts(ctx: &Tessera) -> crate::Result<super::StoreFacts> {
    let profiles_file = ctx.paths().profiles_file();
    Ok(super::StoreFacts {
        accounts: ctx.store().accounts()?.len(),
        profiles_file_exists: profiles_file.is_file(),
        profiles_file,
        profiles: ctx.profiles().list().len(),
        store_file: ctx.paths().store_file(),
        store_description: ctx.store().describe(),
        store_info: ctx.store_info().cloned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tenant_replaces_an_entra_authoritys_tenant_only() {
        let profiles = crate::profile::Profiles::builtin_with_sandbox_url(None).unwrap();
        let ms = profiles.get("Microsoft").unwrap();
        let t = for_tenant(ms, Some("contoso.onmicrosoft.com")).unwrap();
        assert_eq!(
            t.authority.as_deref(),
            Some("https://login.microsoftonline.com/contoso.onmicrosoft.com")
        );
        assert_eq!(t.name, ms.name);
        assert_eq!(for_tenant(ms, None).unwrap(), *ms);
        for bad in ["", "a/b", "x?y", "../common"] {
            assert!(
                matches!(for_tenant(ms, Some(bad)), Err(Refusal::Usage(_))),
                "{bad:?}"
            );
        }
        let mut oidc = ms.clone();
        oidc.authority = None;
        oidc.issuer = Some("https://idp.example".into());
        match for_tenant(&oidc, Some("t")) {
            Err(Refusal::Usage(m)) => assert!(m.contains("needs an Entra ID authority"), "{m}"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_refusal_prints_as_the_cli_prints_it() {
        let (text, exit) = render(&Refusal::Usage("bad\x1b[2J".into()));
        assert_eq!(exit, 2);
        assert!(text.starts_with("error: bad\\u{1b}[2J\n"), "{text}");
        let (text, exit) = render(&Refusal::Core(Error::interaction(
            InteractionReason::NoRefreshToken,
        )));
        assert_eq!(exit, 3);
        assert!(text.ends_with("Sign in with: tessera-cli --profile <NAME> login\n"));
    }

    #[test]
    fn scopes_default_to_the_profile_and_must_not_be_empty() {
        let p = crate::profile::Profiles::builtin_with_sandbox_url(None).unwrap();
        let sandbox = p.get("Sandbox").unwrap();
        assert_eq!(
            requested_scopes(&[], sandbox).unwrap().to_param(),
            "User.Read"
        );
        assert_eq!(
            requested_scopes(&["a b".into(), "c".into()], sandbox)
                .unwrap()
                .to_param(),
            "a b c"
        );
        let mut bare = sandbox.clone();
        bare.scopes.clear();
        assert!(matches!(
            requested_scopes(&[], &bare),
            Err(Refusal::Usage(_))
        ));
        assert_eq!(
            requested_scopes(&["openid".into()], &bare)
                .unwrap()
                .to_param(),
            "openid"
        );
    }
}
