//! `kubeconfig`: point a context of a kubeconfig file at a `users` entry whose exec
//! plugin is `tessera-cli token --output exec-credential`, as `kubelogin
//! convert-kubeconfig` does. The file is parsed and written as YAML values, so unknown
//! fields and entries stay (comments do not: YAML libraries drop them); it is replaced
//! atomically (mode 0600), and a file that does not parse is refused unchanged.

use std::path::{Path, PathBuf};

use clap::Args;
use tessera_core::error::Error;
use yaml_serde::{Mapping, Value};

use crate::token::Invocation;
use crate::{output, CliResult, Failure};

#[derive(Debug, Clone, Args)]
pub struct KubeconfigArgs {
    /// The kubeconfig to update (default: the first file of $KUBECONFIG, else
    /// ~/.kube/config).
    #[arg(long, value_name = "FILE")]
    pub kubeconfig: Option<PathBuf>,

    /// The context to point at Tessera (default: the file's current-context).
    #[arg(long, value_name = "NAME")]
    pub context: Option<String>,

    /// The account whose tokens kubectl uses: user name or home_account_id.
    #[arg(long, value_name = "ACCOUNT")]
    pub account: String,

    /// A scope the token must cover (repeatable); `aks` for AKS clusters.
    #[arg(long = "scope", value_name = "SCOPE", required = true)]
    pub scopes: Vec<String>,
}

const EXEC_API: &str = "client.authentication.k8s.io/v1";
/// Ways of authenticating a `users` entry can hold besides `exec`; client-go refuses some
/// combinations, so they leave the entry Tessera writes.
const OTHER_AUTH: [&str; 6] = [
    "token",
    "tokenFile",
    "username",
    "password",
    "auth-provider",
    "exec",
];

pub fn run(args: &KubeconfigArgs, inv: &Invocation) -> CliResult {
    // The target must exist now, not when kubectl first runs the plugin.
    crate::inline_profile(&inv.profile, &inv.inline)?;
    if let Some(name) = &inv.profile {
        let paths = tessera_core::paths::Paths::resolve(inv.home.as_deref())?;
        let profiles = tessera_core::profile::Profiles::load(&paths.profiles_file())?;
        if profiles.get(name).is_none() {
            return Err(Failure::Usage(format!(
                "there is no profile named {name:?}; see `tessera-cli profiles`"
            )));
        }
    }
    let path = match &args.kubeconfig {
        Some(p) => p.clone(),
        None => default_path()?,
    };
    let text = std::fs::read_to_string(&path).map_err(|e| {
        config(if e.kind() == std::io::ErrorKind::NotFound {
            format!(
                "{} does not exist: get the cluster's kubeconfig first (for AKS: az aks get-credentials), \
                 or name the file with --kubeconfig",
                path.display()
            )
        } else {
            format!("cannot read {}: {e}", path.display())
        })
    })?;
    let command = std::env::current_exe()
        .and_then(|p| p.canonicalize())
        .map_err(|e| Failure::Other(format!("cannot tell where tessera-cli is: {e}")))?;
    let exec_args = exec_args(args, inv);
    let user_name = user_entry_name(args, inv);
    let (updated, context) = update(
        &text,
        &path,
        args.context.as_deref(),
        &user_name,
        &command,
        &exec_args,
    )?;
    tessera_core::fsutil::replace_file(&path, updated.as_bytes())
        .map_err(|e| config(format!("cannot write {}: {e}", path.display())))?;
    eprintln!(
        "Updated {}: context {} now uses user {} (kubectl runs {} {}).",
        path.display(),
        output::sanitize(&context),
        output::sanitize(&user_name),
        command.display(),
        output::sanitize(&exec_args.join(" "))
    );
    let mut login = vec![
        "login".to_string(),
        "--login-hint".into(),
        args.account.clone(),
    ];
    for s in &args.scopes {
        login.extend(["--scope".into(), s.clone()]);
    }
    eprintln!(
        "If {} has not signed in yet: {}",
        output::sanitize(&args.account),
        output::sanitize(&inv.command_line(None, &login))
    );
    Ok(())
}

fn config(msg: String) -> Failure {
    Failure::Core(Error::Config(msg))
}

/// kubectl's default: the first entry of `$KUBECONFIG`, else `~/.kube/config`.
fn default_path() -> CliResult<PathBuf> {
    if let Some(list) = std::env::var_os("KUBECONFIG") {
        if let Some(first) = std::env::split_paths(&list).find(|p| !p.as_os_str().is_empty()) {
            return Ok(first);
        }
    }
    let home = std::env::var_os("HOME")
        .filter(|h| !h.is_empty())
        .ok_or_else(|| Failure::Usage("HOME is not set: name the file with --kubeconfig".into()))?;
    Ok(Path::new(&home).join(".kube").join("config"))
}

/// The plugin's arguments: this run's global flags, then `token`.
fn exec_args(args: &KubeconfigArgs, inv: &Invocation) -> Vec<String> {
    let mut a = inv.global_args(None);
    a.extend(["token".into(), "--account".into(), args.account.clone()]);
    for s in &args.scopes {
        a.extend(["--scope".into(), s.clone()]);
    }
    a.extend(["--output".into(), "exec-credential".into()]);
    a
}

/// One `users` entry per profile, account and scopes: `tessera:PROFILE:ACCOUNT:SCOPES`.
fn user_entry_name(args: &KubeconfigArgs, inv: &Invocation) -> String {
    let mut parts = vec!["tessera".to_string()];
    parts.extend(inv.profile.clone());
    parts.push(args.account.clone());
    parts.push(args.scopes.join(","));
    parts.join(":")
}

/// The file with the user entry written and the context pointed at it; and the context's
/// name. Nothing else changes.
fn update(
    text: &str,
    path: &Path,
    context: Option<&str>,
    user_name: &str,
    command: &Path,
    exec_args: &[String],
) -> CliResult<(String, String)> {
    let refuse = |why: String| config(format!("{} was left unchanged: {why}", path.display()));
    let mut doc: Value = yaml_serde::from_str(text)
        .map_err(|e| refuse(format!("it is not a valid kubeconfig (YAML): {e}")))?;
    let Value::Mapping(root) = &mut doc else {
        return Err(refuse("it is not a kubeconfig (a YAML mapping)".into()));
    };
    let context_name = match context {
        Some(c) => c.to_string(),
        None => match root.get("current-context") {
            Some(Value::String(c)) if !c.is_empty() => c.clone(),
            _ => {
                return Err(refuse(
                    "it has no current-context; name the context with --context".into(),
                ))
            }
        },
    };
    // The context first: a missing one changes nothing.
    let contexts = list_mut(root, "contexts").map_err(&refuse)?;
    let names: Vec<String> = contexts.iter().filter_map(entry_name).collect();
    let Some(ctx_entry) = contexts
        .iter_mut()
        .find(|e| entry_name(e).as_deref() == Some(context_name.as_str()))
    else {
        return Err(refuse(format!(
            "it has no context {context_name:?} (its contexts: {})",
            if names.is_empty() {
                "none".into()
            } else {
                names.join(", ")
            }
        )));
    };
    let Some(Value::Mapping(ctx)) = ctx_entry
        .as_mapping_mut()
        .and_then(|m| m.get_mut("context"))
    else {
        return Err(refuse(format!(
            "context {context_name:?} has no context mapping"
        )));
    };
    ctx.insert("user".into(), user_name.into());

    let exec = exec_mapping(command, exec_args);
    let users = list_mut(root, "users").map_err(&refuse)?;
    match users
        .iter_mut()
        .find(|e| entry_name(e).as_deref() == Some(user_name))
    {
        Some(existing) => {
            let entry = existing
                .as_mapping_mut()
                .ok_or_else(|| refuse(format!("user {user_name:?} is not a mapping")))?;
            let user = entry
                .entry("user".into())
                .or_insert_with(|| Value::Mapping(Mapping::new()));
            if !user.is_mapping() {
                *user = Value::Mapping(Mapping::new());
            }
            let user = user.as_mapping_mut().expect("a mapping");
            for key in OTHER_AUTH {
                user.remove(key);
            }
            user.insert("exec".into(), exec);
        }
        None => {
            let mut user = Mapping::new();
            user.insert("exec".into(), exec);
            let mut entry = Mapping::new();
            entry.insert("name".into(), user_name.into());
            entry.insert("user".into(), Value::Mapping(user));
            users.push(Value::Mapping(entry));
        }
    }
    let out = yaml_serde::to_string(&doc)
        .map_err(|e| Failure::Other(format!("cannot write the kubeconfig: {e}")))?;
    Ok((out, context_name))
}

/// `root[key]` as a list; created when missing or null.
fn list_mut<'a>(root: &'a mut Mapping, key: &str) -> Result<&'a mut Vec<Value>, String> {
    let v = root
        .entry(key.into())
        .or_insert_with(|| Value::Sequence(Vec::new()));
    if v.is_null() {
        *v = Value::Sequence(Vec::new());
    }
    v.as_sequence_mut()
        .ok_or_else(|| format!("its {key} is not a list"))
}

fn entry_name(v: &Value) -> Option<String> {
    v.get("name").and_then(Value::as_str).map(str::to_string)
}

fn exec_mapping(command: &Path, args: &[String]) -> Value {
    let mut m = Mapping::new();
    m.insert("apiVersion".into(), EXEC_API.into());
    m.insert("command".into(), command.display().to_string().into());
    m.insert(
        "args".into(),
        Value::Sequence(args.iter().map(|a| Value::from(a.as_str())).collect()),
    );
    m.insert("env".into(), Value::Null);
    m.insert("interactiveMode".into(), "IfAvailable".into());
    m.insert("provideClusterInfo".into(), false.into());
    m.insert(
        "installHint".into(),
        "tessera-cli (Tessera's command line) gets this cluster's tokens; install Tessera or fix the path in this kubeconfig".into(),
    );
    Value::Mapping(m)
}

#[cfg(test)]
mod tests {
    use super::*;

    const FILE: &str = "\
apiVersion: v1
kind: Config
preferences:
  colors: true
clusters:
- name: aks
  cluster:
    server: https://aks.example:443
    certificate-authority-data: QUJD
    extensions:
    - name: client.authentication.k8s.io/exec
      extension:
        audience: x
contexts:
- name: aks
  context:
    cluster: aks
    user: clusterUser_rg_aks
    namespace: dev
- name: other
  context:
    cluster: aks
    user: static
current-context: aks
users:
- name: clusterUser_rg_aks
  user:
    token: old
- name: static
  user:
    token: s
x-unknown-top-level: [1, 2]
";

    fn run_update(text: &str, context: Option<&str>) -> CliResult<(String, String)> {
        update(
            text,
            Path::new("/k/config"),
            context,
            "tessera:alice:aks",
            Path::new("/usr/bin/tessera-cli"),
            &["token".into(), "--account".into(), "alice".into()],
        )
    }

    fn parse(s: &str) -> Value {
        yaml_serde::from_str(s).unwrap()
    }

    #[test]
    fn the_context_points_at_a_new_user_and_everything_else_stays() {
        let (out, ctx) = run_update(FILE, None).unwrap();
        assert_eq!(ctx, "aks");
        let mut before = parse(FILE);
        let after = parse(&out);
        let user = &after["users"][2];
        assert_eq!(user["name"], "tessera:alice:aks");
        let exec = &user["user"]["exec"];
        assert_eq!(exec["apiVersion"], EXEC_API);
        assert_eq!(exec["command"], "/usr/bin/tessera-cli");
        assert_eq!(exec["interactiveMode"], "IfAvailable");
        assert_eq!(exec["args"][0], "token");
        assert_eq!(after["contexts"][0]["context"]["user"], "tessera:alice:aks");
        // The same document as before, but for those two changes.
        before["contexts"][0]["context"]["user"] = "tessera:alice:aks".into();
        before["users"]
            .as_sequence_mut()
            .unwrap()
            .push(after["users"][2].clone());
        assert_eq!(before, after);
        // Writing again updates the entry in place.
        let (again, _) = run_update(&out, Some("other")).unwrap();
        let again = parse(&again);
        assert_eq!(again["users"].as_sequence().unwrap().len(), 3);
        assert_eq!(again["contexts"][1]["context"]["user"], "tessera:alice:aks");
    }

    #[test]
    fn an_existing_entry_loses_its_other_credentials() {
        let text = FILE.replace("name: static", "name: tessera:alice:aks");
        let (out, _) = run_update(&text, Some("aks")).unwrap();
        let after = parse(&out);
        let users = after["users"].as_sequence().unwrap();
        assert_eq!(users.len(), 2);
        assert!(users[1]["user"].get("token").is_none());
        assert_eq!(users[1]["user"]["exec"]["apiVersion"], EXEC_API);
    }

    #[test]
    fn bad_files_are_refused_with_the_reason() {
        let msg = |text: &str, ctx: Option<&str>| match run_update(text, ctx) {
            Err(Failure::Core(Error::Config(m))) => m,
            other => panic!("{other:?}"),
        };
        assert!(msg("users: [\n  - name: a\n bad", None).contains("not a valid kubeconfig"));
        assert!(msg("- a\n- b\n", None).contains("a YAML mapping"));
        assert!(msg(FILE, Some("nope")).contains("no context \"nope\" (its contexts: aks, other)"));
        let no_current = FILE.replace("current-context: aks\n", "");
        assert!(msg(&no_current, None).contains("--context"));
        let bad_users = FILE.replace(
            "users:\n- name: clusterUser_rg_aks",
            "users: 3\nx:\n- name: clusterUser_rg_aks",
        );
        assert!(msg(&bad_users, None).contains("users is not a list"));
        for m in [msg(FILE, Some("nope")), msg("- a\n", None)] {
            assert!(m.contains("/k/config was left unchanged"), "{m}");
        }
    }
}
