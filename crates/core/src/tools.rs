//! The command lines that make other tools (kubectl, git, the Azure SDKs) get an account's
//! tokens from `tessera-cli`, as the app's "Use with tools" panel shows them. They hold no
//! secret: only the CLI's path, the home, the profile, the account and the scopes, each
//! quoted for a POSIX shell.

use std::path::Path;

use crate::scopes::{ScopeSet, AZURE_DEVOPS_RESOURCE};

/// Whose tokens the lines get, and how `tessera-cli` is reached.
#[derive(Debug, Clone, Copy)]
pub struct ToolTarget<'a> {
    /// `tessera-cli` (on `PATH`) or its absolute path.
    pub cli: &'a str,
    /// Tessera's home when it is not the default one (`--home`).
    pub home: Option<&'a Path>,
    pub profile: &'a str,
    /// The account's username.
    pub account: &'a str,
    pub scopes: &'a ScopeSet,
}

/// One line per tool.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ToolLines {
    /// Points the current kubeconfig context at an exec plugin running `tessera-cli`.
    pub kubectl: String,
    /// Makes `tessera-cli` git's credential helper for the host the scopes are for (Azure
    /// DevOps for its scope; otherwise a placeholder host to replace).
    pub git: String,
    /// Runs a program with a managed-identity endpoint the Azure SDKs use.
    pub run: String,
}

/// The program the `run` line runs, for the user to replace.
pub const RUN_EXAMPLE: &str = "python3 app.py";
/// The host the `git` line names when the scopes are not Azure DevOps'.
pub const GIT_HOST_PLACEHOLDER: &str = "https://git.example.com";

/// `s` as one word for a POSIX shell: as it is when it has only safe characters, else in
/// single quotes.
pub fn shell_quote(s: &str) -> String {
    let safe = !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "@%+=:,./-_".contains(c));
    if safe {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

/// The lines for `target`.
pub fn tool_lines(target: &ToolTarget<'_>) -> ToolLines {
    let mut base = vec![shell_quote(target.cli)];
    if let Some(home) = target.home {
        base.push("--home".into());
        base.push(shell_quote(&home.display().to_string()));
    }
    base.push("--profile".into());
    base.push(shell_quote(target.profile));
    let base = base.join(" ");
    let account = shell_quote(target.account);
    let scopes: String = target
        .scopes
        .without_reserved()
        .iter()
        .map(|s| format!(" --scope {}", shell_quote(s)))
        .collect();
    let kubectl = format!("{base} kubeconfig --account {account}{scopes}");
    let devops = target
        .scopes
        .iter()
        .any(|s| s.starts_with(AZURE_DEVOPS_RESOURCE));
    let host = if devops {
        "https://dev.azure.com"
    } else {
        GIT_HOST_PLACEHOLDER
    };
    // git runs a helper that starts with `!` through the shell: the helper is one word
    // for the outer shell, and its own words are quoted for the inner one.
    let helper = format!("!{base} git-credential --account {account}{scopes}");
    let git = format!(
        "git config --global credential.{host}.helper {}",
        shell_quote(&helper)
    );
    let run = format!("{base} run --account {account} -- {RUN_EXAMPLE}");
    ToolLines { kubectl, git, run }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_are_quoted_only_when_they_need_it() {
        assert_eq!(
            shell_quote("alice@contoso.example"),
            "alice@contoso.example"
        );
        assert_eq!(shell_quote("User.Read"), "User.Read");
        assert_eq!(shell_quote("My Profile"), "'My Profile'");
        assert_eq!(shell_quote("it's"), r"'it'\''s'");
        assert_eq!(shell_quote("$(rm -rf ~)"), "'$(rm -rf ~)'");
        assert_eq!(shell_quote(""), "''");
    }

    #[test]
    fn the_lines_name_the_account_profile_and_scopes() {
        let scopes = ScopeSet::parse("openid User.Read");
        let lines = tool_lines(&ToolTarget {
            cli: "/opt/tessera/tessera-cli",
            home: Some(Path::new("/home/a/my tessera")),
            profile: "Sandbox",
            account: "alice@contoso.example",
            scopes: &scopes,
        });
        let base = "/opt/tessera/tessera-cli --home '/home/a/my tessera' --profile Sandbox";
        assert_eq!(
            lines.kubectl,
            format!("{base} kubeconfig --account alice@contoso.example --scope User.Read")
        );
        assert_eq!(
            lines.git,
            format!(
                "git config --global credential.https://git.example.com.helper '!{}'",
                format!("{base} git-credential --account alice@contoso.example --scope User.Read")
                    .replace('\'', r"'\''")
            )
        );
        assert_eq!(
            lines.run,
            format!("{base} run --account alice@contoso.example -- python3 app.py")
        );
        let devops = ScopeSet::parse("499b84ac-1321-427f-aa17-267ca6975798/.default");
        let lines = tool_lines(&ToolTarget {
            cli: "tessera-cli",
            home: None,
            profile: "Work",
            account: "a@b.c",
            scopes: &devops,
        });
        assert!(
            lines
                .git
                .starts_with("git config --global credential.https://dev.azure.com.helper '!tessera-cli --profile Work git-credential"),
            "{}",
            lines.git
        );
    }
}
