//! Where Tessera keeps its files.
//!
//! - An explicit home (`--home DIR`), else `$TESSERA_HOME`: configuration and data both
//!   live in that one folder.
//! - Otherwise the XDG base directories: `$XDG_CONFIG_HOME/tessera` (default
//!   `~/.config/tessera`) for `profiles.toml`, `$XDG_DATA_HOME/tessera` (default
//!   `~/.local/share/tessera`) for the token store. Relative XDG values
//!   are ignored, as the specification requires.

use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// The environment variable naming Tessera's home folder.
pub const HOME_ENV: &str = "TESSERA_HOME";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Paths {
    pub config_dir: PathBuf,
    pub data_dir: PathBuf,
}

impl Paths {
    /// Resolve from an explicit home, else the process environment.
    pub fn resolve(home: Option<&Path>) -> Result<Paths> {
        Self::resolve_with(home, |k| std::env::var_os(k).map(PathBuf::from))
    }

    /// Resolve with the environment given as a lookup function (for tests).
    pub fn resolve_with(
        home: Option<&Path>,
        env: impl Fn(&str) -> Option<PathBuf>,
    ) -> Result<Paths> {
        let non_empty = |k: &str| env(k).filter(|p| !p.as_os_str().is_empty());
        if let Some(home) = home.map(Path::to_path_buf).or_else(|| non_empty(HOME_ENV)) {
            let home = absolute(&home)?;
            return Ok(Paths {
                config_dir: home.clone(),
                data_dir: home,
            });
        }
        let user_home = || {
            non_empty("HOME").filter(|p| p.is_absolute()).ok_or_else(|| {
                Error::Config(format!(
                    "cannot tell where to keep Tessera's files: HOME is not set; set {HOME_ENV} or pass --home"
                ))
            })
        };
        let xdg = |var: &str, default: &str| -> Result<PathBuf> {
            match non_empty(var).filter(|p| p.is_absolute()) {
                Some(base) => Ok(base.join("tessera")),
                None => Ok(user_home()?.join(default).join("tessera")),
            }
        };
        Ok(Paths {
            config_dir: xdg("XDG_CONFIG_HOME", ".config")?,
            data_dir: xdg("XDG_DATA_HOME", ".local/share")?,
        })
    }

    /// `config_dir/profiles.toml`
    pub fn profiles_file(&self) -> PathBuf {
        self.config_dir.join("profiles.toml")
    }

    /// `data_dir/store.db`
    pub fn store_file(&self) -> PathBuf {
        self.data_dir.join("store.db")
    }

    /// Create both folders (and parents), readable by the owner only (0700).
    pub fn ensure(&self) -> Result<()> {
        for dir in [&self.config_dir, &self.data_dir] {
            create_private_dir(dir)?;
        }
        Ok(())
    }
}

fn absolute(p: &Path) -> Result<PathBuf> {
    if p.is_absolute() {
        return Ok(p.to_path_buf());
    }
    let cwd = std::env::current_dir()
        .map_err(|e| Error::Config(format!("cannot resolve {}: {e}", p.display())))?;
    Ok(cwd.join(p))
}

/// Create `dir` with mode 0700 and make sure it stays 0700 (it holds tokens).
pub fn create_private_dir(dir: &Path) -> Result<()> {
    let fail =
        |e: std::io::Error| Error::Config(format!("cannot create folder {}: {e}", dir.display()));
    crate::fsutil::create_private_dir(dir).map_err(fail)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let meta = std::fs::metadata(dir).map_err(fail)?;
        if meta.permissions().mode() & 0o077 != 0 {
            std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700)).map_err(|e| {
                Error::Config(format!(
                    "cannot restrict folder {} to its owner: {e}",
                    dir.display()
                ))
            })?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<PathBuf> {
        let map: HashMap<String, PathBuf> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), PathBuf::from(v)))
            .collect();
        move |k| map.get(k).cloned()
    }

    #[test]
    fn explicit_home_wins_then_tessera_home() {
        let e = env(&[("TESSERA_HOME", "/t/home"), ("HOME", "/home/u")]);
        let p = Paths::resolve_with(Some(Path::new("/explicit")), &e).unwrap();
        assert_eq!(p.config_dir, PathBuf::from("/explicit"));
        assert_eq!(p.data_dir, PathBuf::from("/explicit"));
        let p = Paths::resolve_with(None, &e).unwrap();
        assert_eq!(p.profiles_file(), PathBuf::from("/t/home/profiles.toml"));
        assert_eq!(p.store_file(), PathBuf::from("/t/home/store.db"));
        let rel = Paths::resolve_with(Some(Path::new("rel")), &e).unwrap();
        assert!(rel.config_dir.is_absolute() && rel.config_dir.ends_with("rel"));
    }

    #[test]
    fn xdg_dirs_and_defaults() {
        let p = Paths::resolve_with(None, env(&[("HOME", "/home/u")])).unwrap();
        assert_eq!(p.config_dir, PathBuf::from("/home/u/.config/tessera"));
        assert_eq!(p.data_dir, PathBuf::from("/home/u/.local/share/tessera"));
        let p = Paths::resolve_with(
            None,
            env(&[
                ("HOME", "/home/u"),
                ("XDG_CONFIG_HOME", "/cfg"),
                ("XDG_DATA_HOME", "/data"),
                ("TESSERA_HOME", ""),
            ]),
        )
        .unwrap();
        assert_eq!(
            p.profiles_file(),
            PathBuf::from("/cfg/tessera/profiles.toml")
        );
        assert_eq!(p.store_file(), PathBuf::from("/data/tessera/store.db"));
        // Relative XDG values are ignored.
        let p = Paths::resolve_with(None, env(&[("HOME", "/home/u"), ("XDG_DATA_HOME", "rel")]))
            .unwrap();
        assert_eq!(p.data_dir, PathBuf::from("/home/u/.local/share/tessera"));
        let err = Paths::resolve_with(None, env(&[])).unwrap_err().to_string();
        assert!(
            err.contains("TESSERA_HOME") && err.contains("--home"),
            "{err}"
        );
    }

    #[cfg(unix)]
    #[test]
    fn ensure_creates_private_dirs() {
        use std::os::unix::fs::PermissionsExt;
        let tmp = tempfile::tempdir().unwrap();
        let p = Paths {
            config_dir: tmp.path().join("a/cfg"),
            data_dir: tmp.path().join("b/data"),
        };
        p.ensure().unwrap();
        for d in [&p.config_dir, &p.data_dir] {
            assert_eq!(
                std::fs::metadata(d).unwrap().permissions().mode() & 0o777,
                0o700
            );
        }
        std::fs::set_permissions(&p.data_dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        p.ensure().unwrap();
        assert_eq!(
            std::fs::metadata(&p.data_dir).unwrap().permissions().mode() & 0o777,
            0o700
        );
        // A file in the way is a clear error.
        let blocked = Paths {
            config_dir: tmp.path().join("a/cfg"),
            data_dir: tmp.path().join("a/cfg/x/y"),
        };
        std::fs::write(tmp.path().join("a/cfg/x"), b"file").unwrap();
        let err = blocked.ensure().unwrap_err().to_string();
        assert!(err.contains("cannot create folder"), "{err}");
    }
}
