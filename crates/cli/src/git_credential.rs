//! `git-credential`: Git's credential helper protocol (gitcredentials(7)). Git writes
//! `key=value` lines ending with a blank line or EOF; on `get` the helper answers
//! `username`, `password` (here an access token) and `password_expiry_utc`; `erase` says
//! the credential was refused, so Tessera marks that cached access token expired (the
//! refresh token stays) and the next `get` refreshes; `store` needs nothing.
//!
//! The input is read and checked before the store is opened: garbage changes nothing. A
//! token is only given for https (or http to a loopback host), and only for a host with
//! a scope: `--scope`, or Azure DevOps' for its hosts.

use std::io::Read;

use clap::{Args, ValueEnum};
use tessera_core::app::SilentOptions;
use tessera_core::authority::is_loopback_host;
use tessera_core::context::Tessera;
use tessera_core::profile::Profile;
use tessera_core::scopes::default_scope_for_git_host;

use crate::cli::Command;
use crate::{output, print_stdout, token, CliResult, Failure};

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum GitOperation {
    /// Answer with a username and an access token as the password.
    Get,
    /// Git keeps a credential that worked: nothing to do.
    Store,
    /// The credential was refused: the next `get` refreshes the token.
    Erase,
}

#[derive(Debug, Clone, Args)]
pub struct GitCredentialArgs {
    /// The account whose tokens Git sends: user name or home_account_id (default: the
    /// only account).
    #[arg(long, value_name = "ACCOUNT")]
    pub account: Option<String>,

    /// A scope the token must cover (repeatable; default: Azure DevOps' for
    /// dev.azure.com and *.visualstudio.com).
    #[arg(long = "scope", value_name = "SCOPE")]
    pub scopes: Vec<String>,

    /// What Git asks (it appends this word to the helper's command).
    #[arg(value_enum)]
    pub operation: GitOperation,
}

/// Largest request Git sends (a few short lines in practice).
const MAX_INPUT: u64 = 64 * 1024;

/// A parsed request: its `key=value` pairs in order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GitRequest {
    fields: Vec<(String, String)>,
}

impl GitRequest {
    pub fn get(&self, key: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// Parse what Git writes: `key=value` lines up to a blank line or the end.
    pub fn parse(input: &[u8]) -> Result<GitRequest, String> {
        let text = std::str::from_utf8(input)
            .map_err(|_| "the input is not UTF-8 text (Git sends key=value lines)".to_string())?;
        let mut fields = Vec::new();
        for (n, raw) in text.split('\n').enumerate() {
            let line = raw.strip_suffix('\r').unwrap_or(raw);
            if line.is_empty() {
                break;
            }
            let bad = |why: &str| {
                format!(
                    "line {} of the input {why} (Git sends key=value lines)",
                    n + 1
                )
            };
            let Some((key, value)) = line.split_once('=') else {
                return Err(bad("is not key=value"));
            };
            if key.is_empty()
                || !key
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '[' | ']'))
            {
                return Err(bad("has no valid key"));
            }
            if value.chars().any(|c| c == '\0') {
                return Err(bad("contains a NUL byte"));
            }
            fields.push((key.to_string(), value.to_string()));
        }
        Ok(GitRequest { fields })
    }
}

/// For `git-credential`, read and check Git's request from stdin before anything else is
/// done; `None` for other commands.
pub fn read_request(command: &Command) -> CliResult<Option<GitRequest>> {
    if !matches!(command, Command::GitCredential(_)) {
        return Ok(None);
    }
    let mut buf = Vec::new();
    std::io::stdin()
        .lock()
        .take(MAX_INPUT + 1)
        .read_to_end(&mut buf)
        .map_err(|e| Failure::Usage(format!("git-credential: cannot read stdin: {e}")))?;
    if buf.len() as u64 > MAX_INPUT {
        return Err(Failure::Usage(format!(
            "git-credential: the input is larger than {MAX_INPUT} bytes"
        )));
    }
    GitRequest::parse(&buf)
        .map(Some)
        .map_err(|e| Failure::Usage(format!("git-credential: {e}")))
}

/// Where a token may go, and with which scopes; `Err` says why not.
fn scopes_for(req: &GitRequest, flags: &[String]) -> Result<Vec<String>, String> {
    let host = req
        .get("host")
        .filter(|h| !h.is_empty())
        .ok_or("Git named no host")?;
    let bare_host = host
        .rsplit_once(':')
        .filter(|(_, port)| port.chars().all(|c| c.is_ascii_digit()))
        .map_or(host, |(h, _)| h);
    match req.get("protocol") {
        Some("https") => {}
        Some("http") if is_loopback_host(bare_host) => {}
        Some(other) => {
            return Err(format!(
                "not sending a token to {host} over {other}: only https (or http to this machine)"
            ))
        }
        None => return Err("Git named no protocol".into()),
    }
    if !flags.is_empty() {
        return Ok(flags.to_vec());
    }
    default_scope_for_git_host(host)
        .map(|s| vec![s.to_string()])
        .ok_or_else(|| format!("no scope for {host}: add --scope SCOPE to the helper's command"))
}

pub async fn run(
    ctx: &Tessera,
    target: Option<Profile>,
    args: GitCredentialArgs,
    request: GitRequest,
) -> CliResult {
    if args.operation == GitOperation::Store {
        return Ok(());
    }
    let scope_flags = match scopes_for(&request, &args.scopes) {
        Ok(s) => s,
        Err(why) => {
            // Git then asks its other helpers, or the user.
            eprintln!("tessera-cli git-credential: {}", output::sanitize(&why));
            return Ok(());
        }
    };
    let (profile, pa) = token::resolve(ctx, target.as_ref(), args.account.as_deref()).await?;
    match args.operation {
        GitOperation::Get => {
            let r = tessera_core::agent::lookup::silent(
                ctx,
                &profile,
                &pa,
                &scope_flags,
                &SilentOptions::default(),
            )
            .await?;
            let username = request
                .get("username")
                .filter(|u| !u.is_empty())
                .unwrap_or(&pa.account.username);
            print_stdout(&answer(username, r.access_token.secret(), r.expires_on)?)
        }
        GitOperation::Erase => {
            if let Some(password) = request.get("password").filter(|p| !p.is_empty()) {
                let marked = ctx
                    .app(&profile)?
                    .reject_access_token(&pa.account, password)
                    .await?;
                tracing::debug!(marked, "git refused a credential");
            }
            Ok(())
        }
        GitOperation::Store => Ok(()),
    }
}

/// `get` through the agent, when one answers for this home: the same answer and exit
/// code as [`run`]. `None`: open the store (no agent, or another operation: `erase`
/// writes to the store, and the agent notices).
pub async fn run_through_agent(
    args: &GitCredentialArgs,
    request: &GitRequest,
    inv: &token::Invocation,
) -> Option<CliResult> {
    if args.operation != GitOperation::Get {
        return None;
    }
    let scopes = scopes_for(request, &args.scopes).ok()?;
    let ask = tessera_core::agent::TokenRequest {
        home: crate::agent::home_of(inv.home.as_deref())?,
        profile: inv.profile.clone(),
        account: args.account.clone(),
        scopes,
        min_validity_secs: SilentOptions::default().min_validity_secs,
        force_refresh: false,
        tenant: None,
        program: None,
    };
    Some(match crate::agent::ask_token(ask).await? {
        crate::agent::Answer::Token(r, _) => {
            let username = request
                .get("username")
                .filter(|u| !u.is_empty())
                .unwrap_or(&r.account.username);
            answer(username, r.access_token.secret(), r.expires_on).and_then(|a| print_stdout(&a))
        }
        crate::agent::Answer::Refused(e) => Err(crate::agent::refused(e)),
    })
}

/// The `get` answer. A value with a line break would let its source (a provider's user
/// name) add keys of its own, so it is refused.
fn answer(username: &str, password: &str, expires_on: i64) -> CliResult<String> {
    for (what, v) in [("user name", username), ("token", password)] {
        if v.chars().any(|c| matches!(c, '\n' | '\r' | '\0')) {
            return Err(Failure::Other(format!(
                "git-credential: the {what} contains a line break; not answering"
            )));
        }
    }
    Ok(format!(
        "username={username}\npassword={password}\npassword_expiry_utc={expires_on}\n"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(s: &str) -> GitRequest {
        GitRequest::parse(s.as_bytes()).unwrap()
    }

    #[test]
    fn gits_requests_parse_up_to_the_blank_line() {
        let r = req("protocol=https\r\nhost=dev.azure.com\npath=org/repo\nwwwauth[]=Basic realm=\"x\"\n\nhost=ignored\n");
        assert_eq!(r.get("host"), Some("dev.azure.com"));
        assert_eq!(r.get("path"), Some("org/repo"));
        assert_eq!(r.get("wwwauth[]"), Some("Basic realm=\"x\""));
        assert_eq!(req("").get("host"), None);
        assert_eq!(req("protocol=https").get("protocol"), Some("https"));
        for (bad, why) in [
            (
                "protocol=https\njunk\n",
                "line 2 of the input is not key=value",
            ),
            ("=x\n", "line 1 of the input has no valid key"),
            ("ho st=x\n", "has no valid key"),
            ("host=a\0b\n", "NUL"),
        ] {
            let e = GitRequest::parse(bad.as_bytes()).unwrap_err();
            assert!(e.contains(why), "{bad:?}: {e}");
        }
        assert!(GitRequest::parse(b"host=\xff\n")
            .unwrap_err()
            .contains("not UTF-8"));
    }

    #[test]
    fn tokens_go_only_over_https_or_to_loopback_and_need_a_scope() {
        let ado = "499b84ac-1321-427f-aa17-267ca6975798/.default";
        assert_eq!(
            scopes_for(&req("protocol=https\nhost=dev.azure.com\n"), &[]).unwrap(),
            [ado]
        );
        assert_eq!(
            scopes_for(&req("protocol=https\nhost=contoso.visualstudio.com\n"), &[]).unwrap(),
            [ado]
        );
        let flags = vec!["aks".to_string()];
        assert_eq!(
            scopes_for(&req("protocol=http\nhost=127.0.0.1:8080\n"), &flags).unwrap(),
            flags
        );
        for (r, why) in [
            ("protocol=http\nhost=dev.azure.com\n", "over http"),
            ("protocol=http\nhost=evil.example:80\n", "over http"),
            ("protocol=ssh\nhost=dev.azure.com\n", "over ssh"),
            ("host=dev.azure.com\n", "no protocol"),
            ("protocol=https\n", "no host"),
            (
                "protocol=https\nhost=github.com\n",
                "no scope for github.com",
            ),
        ] {
            let e = scopes_for(&req(r), &[]).unwrap_err();
            assert!(e.contains(why), "{r:?}: {e}");
        }
        assert!(scopes_for(&req("protocol=http\nhost=evil.example\n"), &flags).is_err());
    }

    #[test]
    fn answers_carry_no_injected_keys() {
        assert_eq!(
            answer("alice@contoso.example", "tok", 42).unwrap(),
            "username=alice@contoso.example\npassword=tok\npassword_expiry_utc=42\n"
        );
        assert!(answer("a\nquit=1", "tok", 42).is_err());
        assert!(answer("a", "tok\rhost=x", 42).is_err());
    }
}
