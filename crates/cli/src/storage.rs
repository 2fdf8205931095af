//! `status` and `store reset`: what the token store is, and starting over.

use std::io::{BufRead, IsTerminal, Write};
use std::path::Path;

use serde_json::json;
use tessera_core::agent::{lookup, StoreFacts};
use tessera_core::context::Tessera;
use tessera_core::keystore::{self, StoreProtection, KEYRING_SERVICE};
use tessera_core::paths::Paths;

use crate::{output, print_json, print_stdout, CliResult, Failure};

/// `tessera-cli status [--json]`.
pub async fn status(ctx: &Tessera, json: bool) -> CliResult {
    print_status(&lookup::store_facts(ctx)?, json)
}

/// `status`' output, from what this process or an agent read.
pub fn print_status(facts: &StoreFacts, json: bool) -> CliResult {
    let accounts = facts.accounts;
    let profiles_file = &facts.profiles_file;
    let profiles_file_exists = facts.profiles_file_exists;
    let profiles = facts.profiles;
    let info = facts.store_info.as_ref();
    let store_path = info
        .map(|i| i.path.clone())
        .unwrap_or_else(|| facts.store_file.clone());
    let protection = info.map(|i| i.protection);
    let encrypted = protection == Some(StoreProtection::Encrypted);
    if json {
        return print_json(&json!({
            "store": if info.is_some() { store_path.display().to_string() } else { facts.store_description.clone() },
            "protection": protection,
            "encrypted": encrypted,
            "cipher": if encrypted { Some("AES-256-GCM") } else { None },
            "key_location": info.and_then(|i| i.key_location.clone()),
            "keyring_service": if encrypted { Some(KEYRING_SERVICE) } else { None },
            "keyring_user": info.and_then(|i| i.key_id.clone()),
            "accounts": accounts,
            "profiles_file": profiles_file.display().to_string(),
            "profiles_file_exists": profiles_file_exists,
            "profiles": profiles,
        }));
    }
    let mut text = match info {
        Some(_) => format!("Store:       {}\n", store_path.display()),
        None => format!("Store:       {}\n", facts.store_description),
    };
    match info {
        Some(i) if i.protection == StoreProtection::Encrypted => {
            text.push_str("Protection:  encrypted (AES-256-GCM)\n");
            text.push_str(&format!(
                "Key:         {}, service \"{KEYRING_SERVICE}\", user \"{}\"\n",
                i.key_location.as_deref().unwrap_or("OS keyring"),
                i.key_id.as_deref().unwrap_or("?"),
            ));
        }
        Some(_) => {
            text.push_str(
                "Protection:  plaintext (tokens are NOT encrypted; the file is readable by you only)\n",
            );
            text.push_str("Key:         none\n");
        }
        None => text.push_str(
            "Protection:  plaintext, as MSAL keeps it (the file is readable by you only)\n",
        ),
    }
    text.push_str(&format!("Accounts:    {accounts}\n"));
    text.push_str(&format!(
        "Profiles:    {} ({})\n",
        profiles_file.display(),
        if profiles_file_exists {
            format!("{profiles} profiles")
        } else {
            format!("not created yet; {profiles} built-in profiles")
        }
    ));
    let text: String = text
        .lines()
        .map(|l| format!("{}\n", output::sanitize(l)))
        .collect();
    print_stdout(&text)
}

/// `tessera-cli store reset [--yes]`: needs no working store or keyring.
pub fn reset(home: Option<&Path>, yes: bool) -> CliResult {
    let paths = Paths::resolve(home)?;
    let store = paths.store_file();
    if !yes {
        confirm(&store)?;
    }
    let out = keystore::reset_store(&store, None)?;
    match &out.moved_to {
        Some(to) => eprintln!(
            "Moved the token store {} aside to {} (nothing was deleted).",
            store.display(),
            to.display()
        ),
        None => eprintln!("There was no token store at {}.", store.display()),
    }
    match (&out.key_error, out.key_removed) {
        (Some(why), _) => eprintln!(
            "warning: could not remove the store key from the OS keyring: {}",
            output::sanitize(why)
        ),
        (None, true) => eprintln!("Removed its key from the OS keyring."),
        (None, false) => eprintln!("No key for it was in the OS keyring."),
    }
    eprintln!("A new, empty store is created on the next use; sign in again with `tessera-cli --profile <NAME> login`.");
    Ok(())
}

fn confirm(store: &Path) -> CliResult {
    let stdin = std::io::stdin();
    if !stdin.is_terminal() {
        return Err(Failure::Usage(
            "store reset moves the token store aside and removes its key from the OS keyring; \
             confirm with --yes"
                .into(),
        ));
    }
    eprint!(
        "This moves {} aside and removes its key from the OS keyring: every account must sign \
         in again, and the old file's tokens can no longer be decrypted. Type yes to continue: ",
        store.display()
    );
    let _ = std::io::stderr().flush();
    let mut answer = String::new();
    stdin
        .lock()
        .read_line(&mut answer)
        .map_err(|e| Failure::Other(format!("cannot read the answer: {e}")))?;
    if matches!(answer.trim().to_ascii_lowercase().as_str(), "yes" | "y") {
        Ok(())
    } else {
        Err(Failure::Other("not confirmed; nothing was changed".into()))
    }
}
