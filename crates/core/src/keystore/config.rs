//! Whether unencrypted storage is allowed: [`ALLOW_PLAINTEXT_ENV`], else
//! `allow_plaintext` in `config.toml` in the config folder.

use std::path::Path;

use crate::error::{Error, Result};

/// Set to `1` (or `true`, `yes`, `on`) to allow unencrypted storage without a keyring.
pub const ALLOW_PLAINTEXT_ENV: &str = "TESSERA_ALLOW_PLAINTEXT";
/// Tessera's settings file in the config folder (`allow_plaintext = true`).
pub const CONFIG_FILE: &str = "config.toml";

/// Is unencrypted storage allowed by the environment or `config.toml`? The variable
/// [`ALLOW_PLAINTEXT_ENV`] wins when set; otherwise `allow_plaintext` in
/// `config_dir/config.toml` (other settings in that file are ignored here).
pub fn plaintext_allowed(config_dir: &Path) -> Result<bool> {
    plaintext_allowed_with(config_dir, std::env::var(ALLOW_PLAINTEXT_ENV).ok())
}

fn plaintext_allowed_with(config_dir: &Path, env: Option<String>) -> Result<bool> {
    if let Some(value) = env {
        return match value.trim().to_ascii_lowercase().as_str() {
            "1" | "true" | "yes" | "on" => Ok(true),
            "" | "0" | "false" | "no" | "off" => Ok(false),
            _ => Err(Error::Config(format!(
                "{ALLOW_PLAINTEXT_ENV}={value:?} is not understood; use 1 or 0"
            ))),
        };
    }
    let file = config_dir.join(CONFIG_FILE);
    let text = match std::fs::read_to_string(&file) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
        Err(e) => {
            return Err(Error::Config(format!(
                "cannot read {}: {e}",
                file.display()
            )))
        }
    };
    let table: toml::Table = toml::from_str(&text).map_err(|e| {
        Error::Config(format!(
            "{} is not valid TOML: {}",
            file.display(),
            e.message()
        ))
    })?;
    match table.get("allow_plaintext") {
        None => Ok(false),
        Some(toml::Value::Boolean(b)) => Ok(*b),
        Some(_) => Err(Error::Config(format!(
            "{}: allow_plaintext must be true or false",
            file.display()
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plaintext_permission_comes_from_the_env_or_config_toml() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        assert!(!plaintext_allowed_with(d, None).unwrap());
        for yes in ["1", "true", "YES", " on "] {
            assert!(
                plaintext_allowed_with(d, Some(yes.into())).unwrap(),
                "{yes}"
            );
        }
        for no in ["", "0", "false", "off"] {
            assert!(!plaintext_allowed_with(d, Some(no.into())).unwrap(), "{no}");
        }
        let err = plaintext_allowed_with(d, Some("maybe".into())).unwrap_err();
        assert_eq!(err.exit_code(), 2);
        std::fs::write(
            d.join(CONFIG_FILE),
            "# settings\nallow_plaintext = true\nother = 1\n",
        )
        .unwrap();
        assert!(plaintext_allowed_with(d, None).unwrap());
        assert!(
            !plaintext_allowed_with(d, Some("0".into())).unwrap(),
            "the variable wins"
        );
        std::fs::write(d.join(CONFIG_FILE), "allow_plaintext = \"yes\"\n").unwrap();
        let msg = plaintext_allowed_with(d, None).unwrap_err().to_string();
        assert!(msg.contains("true or false"), "{msg}");
        std::fs::write(d.join(CONFIG_FILE), "allow_plaintext = \n").unwrap();
        let err = plaintext_allowed_with(d, None).unwrap_err();
        assert!(err.to_string().contains("config.toml"), "{err}");
        assert_eq!(err.exit_code(), 2);
    }
}
