//! The command line, as clap parses it. The contract scripts rely on: commands, flags,
//! stdout shapes and exit codes (documented in `--help`).

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

pub const EXIT_CODES: &str = "\
Exit codes:
  0  success
  1  any other failure (for example, the output could not be written)
  2  usage: bad arguments, unknown profile, several accounts match (choose with --account)
  3  interaction required: no such account, no usable refresh token, consent or a claims
     challenge needed, or the sign-in was cancelled; run `login`
  4  the identity provider refused the request or could not be reached
  5  the token store could not be opened, read or written (no OS keyring, its key is
     missing, a corrupt file); the message says how to fix it

Choosing the target:
  --profile NAME picks a profile (`tessera-cli profiles` lists them). Instead, a target can
  be named inline with --authority URL (Entra-style) or --issuer URL (generic OpenID
  Connect) and --client-id; that transient profile is called \"inline\".
  `login` needs a profile or an inline target. `token` and `logout` without one search the
  accounts of every profile; `accounts` without one lists them all.

Environment:
  TESSERA_HOME    folder for profiles and tokens (same as --home; default: XDG folders)
  TESSERA_ALLOW_PLAINTEXT=1  same as --allow-plaintext (so is `allow_plaintext = true` in
                  config.toml in the config folder)
  TESSERA_LOG     log filter for stderr (default: warn), e.g. debug or tessera_core=trace
  TESSERA_BROWSER command that opens the sign-in page (the URL is appended as the last
                  argument; default: the desktop's browser, or $BROWSER; `none` only
                  prints the URL)";

#[derive(Debug, Parser)]
#[command(
    name = "tessera-cli",
    version,
    about = "Sign in, list accounts, print and decode tokens, sign out.",
    after_help = EXIT_CODES
)]
pub struct Cli {
    /// Folder for profiles.toml and the token store (default: $TESSERA_HOME, else the
    /// XDG config and data folders).
    #[arg(long, global = true, value_name = "DIR")]
    pub home: Option<PathBuf>,

    /// The profile to use (case-insensitive).
    #[arg(long, global = true, value_name = "NAME")]
    pub profile: Option<String>,

    /// Where no OS keyring (Secret Service, Keychain, Credential Manager) can be reached,
    /// keep tokens unencrypted instead of failing; also needed to use a store created
    /// that way. Tokens are encrypted whenever a keyring works.
    #[arg(long, global = true)]
    pub allow_plaintext: bool,

    /// Use an MSAL token cache file (MSAL Python's format, e.g. Azure CLI's
    /// ~/.azure/msal_token_cache.json) directly as the store, locked as msal-extensions
    /// locks it, so Tessera, Azure CLI and MSAL Python can share it. The file is plaintext,
    /// as MSAL keeps it.
    #[arg(long, global = true, value_name = "FILE")]
    pub msal_cache: Option<PathBuf>,

    /// Open the store in this process even when an agent (`tessera-cli agent`, the desktop
    /// app) answers on the user's socket; `TESSERA_AGENT=0` does the same.
    #[arg(long, global = true)]
    pub no_agent: bool,

    #[command(flatten)]
    pub inline: InlineTarget,

    #[command(subcommand)]
    pub command: Command,
}

/// A sign-in target given on the command line instead of a profile.
#[derive(Debug, Clone, Default, Args)]
pub struct InlineTarget {
    /// Inline target: an Entra-style authority, e.g. https://login.microsoftonline.com/common
    #[arg(long, global = true, value_name = "URL")]
    pub authority: Option<String>,

    /// Inline target: a generic OpenID Connect issuer.
    #[arg(long, global = true, value_name = "URL")]
    pub issuer: Option<String>,

    /// Client id of the inline target.
    #[arg(long, global = true, value_name = "ID")]
    pub client_id: Option<String>,

    /// Redirect URI of the inline target (default http://localhost).
    #[arg(long, global = true, value_name = "URL")]
    pub redirect_uri: Option<String>,

    /// Inline target: skip Entra instance discovery (custom hosts).
    #[arg(long, global = true)]
    pub no_instance_discovery: bool,
}

impl InlineTarget {
    pub fn is_given(&self) -> bool {
        self.authority.is_some()
            || self.issuer.is_some()
            || self.client_id.is_some()
            || self.redirect_uri.is_some()
            || self.no_instance_discovery
    }
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// List the profiles: name, kind, authority or issuer, client id, sign-in method.
    /// `profiles add NAME --authority URL --client-id ID` saves a profile.
    Profiles {
        /// Print JSON on stdout.
        #[arg(long)]
        json: bool,

        #[command(subcommand)]
        action: Option<ProfilesAction>,
    },

    /// Sign in: in the system browser (loopback redirect), or with a device code.
    Login {
        /// Sign in with a device code (on this or another device).
        #[arg(long, conflicts_with = "browser")]
        device_code: bool,

        /// Sign in in the system browser (the default unless the profile says device-code).
        #[arg(long)]
        browser: bool,

        /// A scope to ask for (repeatable; default: the profile's scopes).
        #[arg(long = "scope", value_name = "SCOPE")]
        scopes: Vec<String>,

        /// Pre-fill the user name on the sign-in page.
        #[arg(long, value_name = "USER")]
        login_hint: Option<String>,

        /// Print the signed-in account as JSON on stdout.
        #[arg(long)]
        json: bool,
    },

    /// List signed-in accounts.
    Accounts {
        /// Print JSON on stdout.
        #[arg(long)]
        json: bool,
    },

    /// Print an access token on stdout (from the cache, or refreshed silently).
    Token {
        /// The account: user name or home_account_id (default: the only account).
        #[arg(long, value_name = "ACCOUNT")]
        account: Option<String>,

        /// A scope the token must cover (repeatable; default: the profile's scopes). `aks`
        /// and `azure-devops` stand for those services' scopes.
        #[arg(long = "scope", value_name = "SCOPE")]
        scopes: Vec<String>,

        /// Refresh unless the cached token stays valid this many more seconds.
        #[arg(long, value_name = "SECONDS", default_value_t = 300)]
        min_validity: u32,

        /// Skip the cached access token and redeem the refresh token.
        #[arg(long)]
        force_refresh: bool,

        /// Print token, expiry, scopes, source and account as JSON (same as --output json).
        #[arg(long, conflicts_with = "output")]
        json: bool,

        #[command(flatten)]
        out: crate::formats::TokenOutput,
    },

    /// Point a kubeconfig context at Tessera (kubectl's exec plugin).
    ///
    /// kubectl then gets its tokens from `tessera-cli token --output exec-credential`. The
    /// rest of the file is kept; a file that does not parse is left unchanged.
    Kubeconfig(crate::kubeconfig::KubeconfigArgs),

    /// Git's credential helper: access tokens as passwords.
    ///
    /// Git's helper protocol on stdin/stdout: `get` answers with an access token as the
    /// password, `erase` (the token was refused) makes the next `get` refresh it, `store`
    /// is ignored. Set up with:
    ///
    /// git config --global credential.https://dev.azure.com.helper "!tessera-cli git-credential --account ACCOUNT"
    GitCredential(crate::git_credential::GitCredentialArgs),

    /// Decode a token (JWT) and explain its claims. The signature is not verified.
    Decode {
        /// The token; `-` or nothing reads it from stdin.
        #[arg(value_name = "TOKEN")]
        token: Option<String>,

        /// Print the decoded token as JSON.
        #[arg(long)]
        json: bool,
    },

    /// Sign out: remove an account's tokens from the store.
    Logout {
        /// The account: user name or home_account_id.
        #[arg(
            long,
            value_name = "ACCOUNT",
            required_unless_present = "all",
            conflicts_with = "all"
        )]
        account: Option<String>,

        /// Sign out every account (of the chosen profile, or of all profiles).
        #[arg(long)]
        all: bool,
    },

    /// Run the agent in the foreground: it holds the store open (its key in memory) and
    /// serves tokens to this user's `tessera-cli` processes on
    /// $XDG_RUNTIME_DIR/tessera/agent.sock, until SIGTERM or Ctrl-C.
    Agent,

    /// Show where the token store is, whether it is encrypted and where its key is, the
    /// number of accounts, and the profiles file.
    Status {
        /// Print JSON on stdout.
        #[arg(long)]
        json: bool,
    },

    /// Copy every account and token of an MSAL token cache file into Tessera's store
    /// (the file is not changed).
    ImportMsal {
        /// The MSAL cache file, e.g. ~/.azure/msal_token_cache.json.
        file: PathBuf,
    },

    /// Copy Tessera's accounts and tokens into an MSAL token cache file (created if
    /// missing; entries already in it are kept).
    ExportMsal {
        /// The MSAL cache file to write.
        file: PathBuf,
    },

    /// Run a command with a token endpoint that the Azure SDKs' managed identity
    /// credential and azd use: it serves the account's tokens while the command runs.
    Run(crate::run::RunArgs),

    /// Manage the token store.
    Store {
        #[command(subcommand)]
        action: StoreAction,
    },
}

#[derive(Debug, Subcommand)]
pub enum StoreAction {
    /// Start over: move the store aside (to store.db.reset-<UTC time>; nothing is deleted)
    /// and remove its key from the OS keyring. Every account must sign in again; the old
    /// file's tokens can no longer be decrypted.
    Reset {
        /// Do not ask for confirmation.
        #[arg(long)]
        yes: bool,
    },
}

#[cfg(test)]
mod tests {
    use clap::error::ErrorKind;
    use clap::CommandFactory;

    use super::*;

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("tessera-cli").chain(args.iter().copied()))
    }

    #[test]
    fn the_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn global_flags_go_anywhere() {
        let cli = parse(&[
            "token",
            "--profile",
            "Sandbox",
            "--home",
            "/tmp/h",
            "--scope",
            "a",
            "--scope",
            "b",
        ])
        .unwrap();
        assert_eq!(cli.profile.as_deref(), Some("Sandbox"));
        assert_eq!(cli.home, Some(PathBuf::from("/tmp/h")));
        match cli.command {
            Command::Token {
                scopes,
                min_validity,
                force_refresh,
                json,
                account,
                ..
            } => {
                assert_eq!(scopes, vec!["a", "b"]);
                assert_eq!(min_validity, 300);
                assert!(!force_refresh && !json && account.is_none());
            }
            other => panic!("parsed as {other:?}"),
        }
        let cli = parse(&[
            "--issuer",
            "http://127.0.0.1:3000",
            "--client-id",
            "c",
            "login",
            "--device-code",
        ])
        .unwrap();
        assert!(cli.inline.is_given());
        assert!(matches!(
            cli.command,
            Command::Login {
                device_code: true,
                browser: false,
                ..
            }
        ));
    }

    #[test]
    fn usage_errors_are_clap_errors() {
        let kind = |args: &[&str]| parse(args).unwrap_err().kind();
        assert_eq!(
            kind(&[]),
            ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
        );
        assert_eq!(kind(&["logout"]), ErrorKind::MissingRequiredArgument);
        assert_eq!(
            kind(&["logout", "--all", "--account", "a"]),
            ErrorKind::ArgumentConflict
        );
        assert_eq!(
            kind(&["login", "--device-code", "--browser"]),
            ErrorKind::ArgumentConflict
        );
        assert_eq!(
            kind(&["token", "--min-validity", "-5"]),
            ErrorKind::UnknownArgument
        );
        assert_eq!(
            kind(&["token", "--min-validity", "soon"]),
            ErrorKind::ValueValidation
        );
        assert_eq!(kind(&["frobnicate"]), ErrorKind::InvalidSubcommand);
        // Usage errors exit 2, help exits 0.
        assert_eq!(parse(&["logout"]).unwrap_err().exit_code(), 2);
        assert_eq!(parse(&["--help"]).unwrap_err().exit_code(), 0);
    }

    #[test]
    fn help_documents_exit_codes() {
        let help = Cli::command().render_long_help().to_string();
        for needle in [
            "Exit codes:",
            "3  interaction required",
            "4  the identity provider",
            "5  the token store",
            "TESSERA_BROWSER",
        ] {
            assert!(help.contains(needle), "help lacks {needle:?}");
        }
    }

    #[test]
    fn status_store_reset_and_allow_plaintext() {
        let cli = parse(&["status", "--json", "--allow-plaintext"]).unwrap();
        assert!(cli.allow_plaintext);
        assert!(matches!(cli.command, Command::Status { json: true }));
        let cli = parse(&["--home", "/h", "store", "reset", "--yes"]).unwrap();
        assert!(!cli.allow_plaintext);
        assert!(matches!(
            cli.command,
            Command::Store {
                action: StoreAction::Reset { yes: true }
            }
        ));
        assert_eq!(
            parse(&["store"]).unwrap_err().kind(),
            ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
        );
        assert_eq!(
            parse(&["store", "wipe"]).unwrap_err().kind(),
            ErrorKind::InvalidSubcommand
        );
        let help = Cli::command().render_long_help().to_string();
        assert!(help.contains("TESSERA_ALLOW_PLAINTEXT"), "{help}");
    }

    #[test]
    fn decode_reads_an_argument_or_stdin() {
        let cli = parse(&["decode", "-", "--json"]).unwrap();
        assert!(
            matches!(cli.command, Command::Decode { token: Some(ref t), json: true } if t == "-")
        );
        let cli = parse(&["decode"]).unwrap();
        assert!(matches!(
            cli.command,
            Command::Decode {
                token: None,
                json: false
            }
        ));
    }
}

#[derive(Debug, Subcommand)]
pub enum ProfilesAction {
    /// Save the target given with --authority URL (or --issuer URL) and --client-id (and
    /// --redirect-uri, --no-instance-discovery) as a profile named NAME. `accounts` prints
    /// this command, filled in, for accounts no profile lists.
    Add {
        /// The new profile's name.
        name: String,

        /// A default scope (repeatable).
        #[arg(long = "scope", value_name = "SCOPE")]
        scopes: Vec<String>,
    },
}
