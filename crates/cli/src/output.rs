//! What the CLI prints: aligned tables for people, JSON for scripts, and the decoded
//! token view. Human output never passes control characters to the terminal.

use serde_json::{json, Value};
use tessera_core::agent::Unlisted;
use tessera_core::app::{Account, AuthResult, TokenSource};
use tessera_core::context::{ProfileAccount, UnlistedGroup};
use tessera_core::decode::{ClaimLine, DecodedToken, TokenKind};
use tessera_core::profile::Profile;

pub use tessera_core::agent::lookup::sanitize;

/// Columns padded to the widest cell; the last column is not padded.
pub fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let cols = header.len();
    let cells: Vec<Vec<String>> = std::iter::once(header.iter().map(|h| h.to_string()).collect())
        .chain(rows.iter().map(|r| r.iter().map(|c| sanitize(c)).collect()))
        .collect();
    let widths: Vec<usize> = (0..cols)
        .map(|i| {
            cells
                .iter()
                .map(|r| r.get(i).map_or(0, |c| c.chars().count()))
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    for row in &cells {
        let mut line = String::new();
        for (i, cell) in row.iter().enumerate() {
            if i + 1 < cols {
                line.push_str(&format!("{cell:<w$}  ", w = widths[i]));
            } else {
                line.push_str(cell);
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

pub fn profiles_table(profiles: &[Profile]) -> String {
    let rows: Vec<Vec<String>> = profiles
        .iter()
        .map(|p| {
            vec![
                if p.builtin {
                    format!("{} (built-in)", p.name)
                } else {
                    p.name.clone()
                },
                p.kind().to_string(),
                p.target().to_string(),
                p.client_id.clone(),
                p.sign_in.to_string(),
            ]
        })
        .collect();
    table(
        &["NAME", "KIND", "AUTHORITY / ISSUER", "CLIENT ID", "SIGN-IN"],
        &rows,
    )
}

pub fn profiles_json(profiles: &[Profile]) -> Value {
    Value::Array(
        profiles
            .iter()
            .map(|p| {
                json!({
                    "name": p.name,
                    "kind": p.kind(),
                    "authority": p.authority,
                    "issuer": p.issuer,
                    "client_id": p.client_id,
                    "redirect_uri": p.redirect_uri,
                    "scopes": p.scopes,
                    "sign_in": p.sign_in,
                    "instance_discovery": p.instance_discovery,
                    "builtin": p.builtin,
                })
            })
            .collect(),
    )
}

pub fn accounts_table(accounts: &[ProfileAccount]) -> String {
    let rows: Vec<Vec<String>> = accounts
        .iter()
        .map(|pa| {
            vec![
                pa.account.username.clone(),
                pa.account.name.clone().unwrap_or_default(),
                pa.account.tenant_label(),
                pa.profile.clone(),
                pa.account.home_account_id.clone(),
            ]
        })
        .collect();
    table(
        &["USERNAME", "NAME", "TENANT", "PROFILE", "HOME ACCOUNT ID"],
        &rows,
    )
}

pub fn accounts_json(accounts: &[ProfileAccount], unlisted: &[Unlisted]) -> Value {
    let listed = accounts.iter().map(|pa| {
        let a = &pa.account;
        json!({
            "home_account_id": a.home_account_id,
            "username": a.username,
            "name": a.name,
            "environment": a.environment,
            "realm": a.realm,
            "tenant_id": a.home_tenant(),
            "tenant": a.tenant_label(),
            "local_account_id": a.local_account_id,
            "profile": pa.profile,
        })
    });
    // Accounts no profile lists: `profile` null, with where they signed in and the app.
    let others = unlisted.iter().flat_map(|u| {
        let g = &u.group;
        g.accounts.iter().map(move |e| {
            json!({
                "home_account_id": e.home_account_id,
                "username": e.username,
                "name": e.name,
                "environment": e.environment,
                "realm": e.realm,
                "tenant_id": tessera_core::app::home_tenant(&e.home_account_id, &e.realm),
                "tenant": tessera_core::app::tenant_label(&e.home_account_id, &e.realm, &e.username),
                "local_account_id": e.local_account_id,
                "profile": null,
                "authority": g.authority(),
                "client_id": g.client_id,
            })
        })
    });
    Value::Array(listed.chain(others).collect())
}

/// Accounts no profile lists, for people: where they signed in, with which app, and the
/// one command that adds a profile listing them.
pub fn unlisted_text(
    g: &UnlistedGroup,
    suggested: Option<&Profile>,
    home: Option<&std::path::Path>,
) -> String {
    let client = g.client_id.as_deref().unwrap_or("an unknown app");
    let mut out = format!(
        "No profile lists these accounts (signed in at {} by client {client}):\n",
        g.authority()
    );
    for e in &g.accounts {
        out.push_str(&format!("  {}\n", e.username));
    }
    if let Some(p) = suggested {
        let q = tessera_core::tools::shell_quote;
        let home = home
            .map(|h| format!(" --home {}", q(&h.display().to_string())))
            .unwrap_or_default();
        let scopes: String = p
            .scopes
            .iter()
            .map(|s| format!(" --scope {}", q(s)))
            .collect();
        out.push_str(&format!(
            "Add a profile that lists them:\n  tessera-cli{home} profiles add {} --authority {} --client-id {}{}{scopes}\n",
            q(&p.name),
            q(p.target()),
            q(&p.client_id),
            if p.instance_discovery { "" } else { " --no-instance-discovery" },
        ));
    }
    out
}

fn account_ref_json(a: &Account) -> Value {
    json!({
        "home_account_id": a.home_account_id,
        "username": a.username,
        "environment": a.environment,
        "realm": a.realm,
    })
}

/// `token --json`. It carries the access token: stdout only.
pub fn token_json(r: &AuthResult) -> Value {
    json!({
        "access_token": r.access_token.secret(),
        "token_type": r.token_type,
        "expires_on": r.expires_on,
        "scopes": r.scopes.to_vec(),
        "token_source": match r.token_source {
            TokenSource::Cache => "cache",
            TokenSource::IdentityProvider => "identity_provider",
        },
        "account": account_ref_json(&r.account),
    })
}

/// `login --json`: the account, no tokens.
pub fn login_json(profile: &str, r: &AuthResult) -> Value {
    json!({
        "profile": profile,
        "account": {
            "home_account_id": r.account.home_account_id,
            "username": r.account.username,
            "name": r.account.name,
            "environment": r.account.environment,
            "realm": r.account.realm,
            "local_account_id": r.account.local_account_id,
        },
        "scopes": r.scopes.to_vec(),
        "expires_on": r.expires_on,
    })
}

/// Widest display value before the meaning moves to its own line.
const DISPLAY_WIDTH: usize = 44;

fn explained_lines(out: &mut String, lines: &[ClaimLine]) {
    let name_w = lines
        .iter()
        .map(|l| sanitize(&l.name).chars().count())
        .max()
        .unwrap_or(0);
    let display_w = lines
        .iter()
        .map(|l| sanitize(&l.display).chars().count())
        .filter(|w| *w <= DISPLAY_WIDTH)
        .max()
        .unwrap_or(0);
    for l in lines {
        let name = sanitize(&l.name);
        let display = sanitize(&l.display);
        match &l.meaning {
            None => out.push_str(&format!("  {name:<name_w$}  {display}\n")),
            Some(m) if display.chars().count() <= display_w => out.push_str(&format!(
                "  {name:<name_w$}  {display:<display_w$}  {}\n",
                sanitize(m)
            )),
            Some(m) => {
                out.push_str(&format!("  {name:<name_w$}  {display}\n"));
                out.push_str(&format!(
                    "  {:<name_w$}  {:<display_w$}  {}\n",
                    "",
                    "",
                    sanitize(m)
                ));
            }
        }
    }
}

/// The human view of `decode`.
pub fn decoded_text(d: &DecodedToken) -> String {
    let mut out = String::new();
    let kind = match d.kind {
        TokenKind::Jws => "JWT (signed, JWS)",
        TokenKind::Jwe => "JWT (encrypted, JWE)",
        TokenKind::Opaque => "opaque (not a JWT)",
        TokenKind::Malformed => "malformed",
    };
    out.push_str(&format!("Token:      {kind}\n"));
    if let Some(e) = &d.error {
        out.push_str(&format!("Problem:    {}\n", sanitize(e)));
    }
    if matches!(d.kind, TokenKind::Jws | TokenKind::Jwe) {
        out.push_str("Signature:  NOT verified\n");
    }
    if let Some(exp) = d.expires_on {
        let state = if d.is_expired(d.decoded_at) {
            "expired"
        } else {
            "valid"
        };
        out.push_str(&format!(
            "Expires:    {} ({state})\n",
            tessera_core::decode::format_time(exp, d.decoded_at)
        ));
    }
    if !d.header_explained.is_empty() {
        out.push_str("\nHeader\n");
        explained_lines(&mut out, &d.header_explained);
    }
    if !d.explained.is_empty() {
        out.push_str("\nClaims\n");
        explained_lines(&mut out, &d.explained);
    }
    if !d.notes.is_empty() {
        out.push('\n');
        for n in &d.notes {
            out.push_str(&format!("{}\n", sanitize(n)));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_align_columns() {
        let t = table(
            &["NAME", "KIND", "LAST"],
            &[
                vec!["Microsoft".into(), "entra".into(), "x".into()],
                vec!["a".into(), "oidc".into(), "".into()],
            ],
        );
        assert_eq!(
            t,
            "NAME       KIND   LAST\nMicrosoft  entra  x\na          oidc\n"
        );
    }

    #[test]
    fn control_characters_never_reach_the_terminal() {
        assert_eq!(sanitize("ok\u{1b}[31mred\u{7}"), "ok\\u{1b}[31mred\\u{7}");
        let t = table(&["A"], &[vec!["\u{1b}]0;title\u{7}".into()]]);
        assert!(!t.contains('\u{1b}'));
        assert_eq!(
            sanitize("<img src=x onerror=alert(1)>"),
            "<img src=x onerror=alert(1)>"
        );
    }

    #[test]
    fn profiles_are_listed_with_kind_and_target() {
        let p = tessera_core::profile::Profiles::builtin_with_sandbox_url(None).unwrap();
        let t = profiles_table(p.list());
        let lines: Vec<&str> = t.lines().collect();
        assert!(lines[0].starts_with("NAME"));
        assert!(lines[1].starts_with("Microsoft (built-in)"));
        assert!(lines[1].contains("https://login.microsoftonline.com/common"));
        assert!(
            lines[2].contains("http://127.0.0.1:8479/common") && lines[2].ends_with("embedded")
        );
        let j = profiles_json(p.list());
        assert_eq!(j[1]["name"], "Sandbox");
        assert_eq!(j[1]["sign_in"], "embedded");
        assert_eq!(j[1]["instance_discovery"], false);
        assert_eq!(j[0]["builtin"], true);
    }

    #[test]
    fn decoded_view_shows_claims_meanings_and_the_signature_note() {
        use base64::Engine as _;
        let b64 = |s: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s);
        let token = format!(
            "{}.{}.sig",
            b64(r#"{"alg":"RS256","kid":"k"}"#),
            b64(
                r#"{"aud":"api","exp":2000000000,"scp":"User.Read","custom":"v","name":"a\u001b[2Jb"}"#
            )
        );
        let d = tessera_core::decode::decode(&token, 1_999_996_400);
        let text = decoded_text(&d);
        assert!(text.contains("Signature:  NOT verified"), "{text}");
        assert!(
            text.contains("Expires:    2033-05-18 03:33:20 UTC (in 1 h) (valid)"),
            "{text}"
        );
        assert!(
            text.contains("  exp     2033-05-18 03:33:20 UTC (in 1 h)  Expires at"),
            "{text}"
        );
        assert!(text.contains("  custom  v\n"), "{text}");
        assert!(text.contains("Signature not verified"), "{text}");
        assert!(!text.contains('\u{1b}'), "{text}");
        let opaque = decoded_text(&tessera_core::decode::decode("opaque-token", 0));
        assert!(
            opaque.contains("opaque (not a JWT)") && !opaque.contains("opaque-token"),
            "{opaque}"
        );
    }
}
