//! The OS keyring as custody of store keys ([`KeyStore`], [`OsKeyring`]), and the keyring
//! entry of a store ([`store_id`]).
//!
//! **Invariant:** a key is kept base64-encoded under service [`KEYRING_SERVICE`] and user
//! `store:<canonical path>`; nothing here logs a key.

use std::path::Path;

use base64::Engine as _;
use zeroize::Zeroizing;

use crate::cache::StoreKey;

/// The keyring service name of every Tessera store key.
pub const KEYRING_SERVICE: &str = "tessera";

/// Why a keyring operation failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyringError {
    /// No keyring can be reached: no D-Bus session, no Secret Service, or it is locked.
    Unavailable(String),
    /// The keyring answered, but the entry is not usable (not a Tessera key).
    Invalid(String),
}

impl std::fmt::Display for KeyringError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            KeyringError::Unavailable(why) | KeyringError::Invalid(why) => f.write_str(why),
        }
    }
}

/// Custody of store keys, by store id. [`OsKeyring`] is the real one.
pub trait KeyStore: Send + Sync {
    /// Where the keys are kept, for people: "OS keyring (Secret Service)".
    fn location(&self) -> String;
    /// The key for `store_id`, or `None` when there is none.
    fn load(&self, store_id: &str) -> std::result::Result<Option<StoreKey>, KeyringError>;
    /// Saves (or replaces) the key for `store_id`.
    fn save(&self, store_id: &str, key: &StoreKey) -> std::result::Result<(), KeyringError>;
    /// Removes the key for `store_id`; `false` when there was none.
    fn forget(&self, store_id: &str) -> std::result::Result<bool, KeyringError>;
}

/// The operating system's keyring through the `keyring` crate.
#[derive(Debug, Default, Clone, Copy)]
pub struct OsKeyring;

/// How long a keyring call may take before Tessera gives up on it: long enough to type a
/// password into an unlock prompt, short enough that a locked keyring whose prompt nobody
/// can see (no desktop session, a prompter that failed) is an error and not a hang. The
/// Secret Service clients wait up to a year for a prompt. `TESSERA_KEYRING_TIMEOUT_SECS`
/// overrides it.
pub const KEYRING_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(60);

/// The environment variable that overrides [`KEYRING_TIMEOUT`] (whole seconds, at least 1).
pub const KEYRING_TIMEOUT_ENV: &str = "TESSERA_KEYRING_TIMEOUT_SECS";

fn keyring_timeout() -> std::time::Duration {
    std::env::var(KEYRING_TIMEOUT_ENV)
        .ok()
        .and_then(|v| v.trim().parse::<u64>().ok())
        .filter(|&s| s > 0)
        .map_or(KEYRING_TIMEOUT, std::time::Duration::from_secs)
}

/// The file whose lock every Tessera process of the user takes around each Secret Service
/// call: `$XDG_RUNTIME_DIR/tessera-keyring.lock`, else `~/.cache/tessera/keyring.lock`
/// (`$XDG_CACHE_HOME` if set). Not in a Tessera home: all homes share one keyring.
#[cfg(all(unix, not(target_os = "macos")))]
fn keyring_lock_path() -> Option<std::path::PathBuf> {
    let var = |name| {
        std::env::var_os(name)
            .filter(|v| !v.is_empty())
            .map(std::path::PathBuf::from)
    };
    if let Some(run) = var("XDG_RUNTIME_DIR").filter(|d| d.is_dir()) {
        return Some(run.join("tessera-keyring.lock"));
    }
    let cache = var("XDG_CACHE_HOME").or_else(|| var("HOME").map(|h| h.join(".cache")))?;
    Some(cache.join("tessera").join("keyring.lock"))
}

/// Takes this user's keyring turn (blocking) and holds it until the file is dropped.
///
/// gnome-keyring (42 to 50 at least) can abort when Secret Service sessions are opened at
/// the same moment by clients that just connected: it registers a client lazily, and an
/// `OpenSession` handled before that registration ends in an assertion that kills the
/// daemon (it comes back locked). Every keyring call of the `keyring` crate is such a
/// fresh client, so Tessera processes (16 `tessera-cli` at once under a load test, or
/// kubectl running a few in parallel) take turns. `None` (no lock to be had: no home, a
/// read-only disk) goes on without one.
#[cfg(all(unix, not(target_os = "macos")))]
fn keyring_turn() -> Option<std::fs::File> {
    let path = keyring_lock_path()?;
    crate::fsutil::create_parent_dir(&path).ok()?;
    let file = crate::fsutil::open_private_file(&path).ok()?;
    file.lock().ok()?;
    Some(file)
}

/// The other keyrings serve concurrent callers themselves.
#[cfg(not(all(unix, not(target_os = "macos"))))]
fn keyring_turn() -> Option<std::fs::File> {
    None
}

impl OsKeyring {
    /// `op` on the entry of `store_id`, on a thread of its own, given up after
    /// [`keyring_timeout`]: the thread is then left to finish (or wait for its prompt)
    /// alone, and the caller gets [`KeyringError::Unavailable`].
    fn call<T: Send + 'static>(
        store_id: &str,
        op: impl FnOnce(&keyring::Entry) -> keyring::Result<T> + Send + 'static,
    ) -> std::result::Result<keyring::Result<T>, KeyringError> {
        let entry = keyring::Entry::new(KEYRING_SERVICE, store_id).map_err(classify)?;
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        std::thread::Builder::new()
            .name("keyring".into())
            .spawn(move || {
                let _turn = keyring_turn();
                let _ = tx.send(op(&entry));
            })
            .map_err(|e| KeyringError::Unavailable(format!("cannot start a keyring call: {e}")))?;
        let timeout = keyring_timeout();
        rx.recv_timeout(timeout).map_err(|_| {
            tracing::warn!(
                secs = timeout.as_secs(),
                "the OS keyring did not answer in time"
            );
            KeyringError::Unavailable(format!(
                "the OS keyring did not answer within {} s: it may be locked, waiting for \
                 an unlock prompt that nobody answers",
                timeout.as_secs()
            ))
        })
    }
}

/// What the keyring crate's error means for us.
fn classify(e: keyring::Error) -> KeyringError {
    match e {
        keyring::Error::PlatformFailure(why) | keyring::Error::NoStorageAccess(why) => {
            KeyringError::Unavailable(why.to_string())
        }
        keyring::Error::Ambiguous(items) => KeyringError::Invalid(format!(
            "the keyring has {} entries for this store instead of one",
            items.len()
        )),
        keyring::Error::BadEncoding(_) => {
            KeyringError::Invalid("the keyring entry is not a Tessera store key".into())
        }
        other => KeyringError::Invalid(other.to_string()),
    }
}

/// The base64 text kept in the keyring for `key`.
fn encode_key(key: &StoreKey) -> Zeroizing<String> {
    Zeroizing::new(base64::engine::general_purpose::STANDARD.encode(key.secret_bytes()))
}

fn decode_key(text: &str) -> std::result::Result<StoreKey, KeyringError> {
    let bytes = Zeroizing::new(
        base64::engine::general_purpose::STANDARD
            .decode(text.trim())
            .map_err(|_| {
                KeyringError::Invalid("the keyring entry is not a Tessera store key".into())
            })?,
    );
    StoreKey::from_slice(&bytes)
        .map_err(|_| KeyringError::Invalid("the keyring entry is not a Tessera store key".into()))
}

impl KeyStore for OsKeyring {
    fn location(&self) -> String {
        if cfg!(target_os = "macos") {
            "OS keyring (macOS Keychain)".into()
        } else if cfg!(target_os = "windows") {
            "OS keyring (Windows Credential Manager)".into()
        } else {
            "OS keyring (Secret Service)".into()
        }
    }

    fn load(&self, store_id: &str) -> std::result::Result<Option<StoreKey>, KeyringError> {
        let started = std::time::Instant::now();
        let found = Self::call(store_id, |e| e.get_password())?;
        tracing::debug!(
            us = started.elapsed().as_micros() as u64,
            "store key looked up in the OS keyring"
        );
        match found {
            Ok(text) => decode_key(&Zeroizing::new(text)).map(Some),
            Err(keyring::Error::NoEntry) => Ok(None),
            Err(e) => Err(classify(e)),
        }
    }

    fn save(&self, store_id: &str, key: &StoreKey) -> std::result::Result<(), KeyringError> {
        let text = encode_key(key);
        Self::call(store_id, move |e| e.set_password(&text))?.map_err(classify)
    }

    fn forget(&self, store_id: &str) -> std::result::Result<bool, KeyringError> {
        match Self::call(store_id, |e| e.delete_credential())? {
            Ok(()) => Ok(true),
            Err(keyring::Error::NoEntry) => Ok(false),
            Err(e) => Err(classify(e)),
        }
    }
}

/// The keyring user of the store at `path`: `store:` and its canonical path (the folder
/// is resolved, so `~/x/../x/store.db` and a symlinked home name the same key).
pub fn store_id(path: &Path) -> String {
    let canonical = match (path.parent(), path.file_name()) {
        (Some(parent), Some(name)) if !parent.as_os_str().is_empty() => parent
            .canonicalize()
            .map(|p| p.join(name))
            .unwrap_or_else(|_| path.to_path_buf()),
        _ => path.canonicalize().unwrap_or_else(|_| path.to_path_buf()),
    };
    format!("store:{}", canonical.display())
}

/// Keys in memory, for the decision table (the real keyring is exercised by the
/// integration suite, `tests/it/storage.rs`). Can play an unreachable keyring.
#[cfg(test)]
#[derive(Default)]
pub(crate) struct MemoryKeys {
    keys: std::sync::Mutex<std::collections::HashMap<String, [u8; 32]>>,
    pub(crate) unreachable: std::sync::atomic::AtomicBool,
}

#[cfg(test)]
impl MemoryKeys {
    fn check(&self) -> std::result::Result<(), KeyringError> {
        if self.unreachable.load(std::sync::atomic::Ordering::SeqCst) {
            Err(KeyringError::Unavailable(
                "no Secret Service on the bus".into(),
            ))
        } else {
            Ok(())
        }
    }
    pub(crate) fn len(&self) -> usize {
        self.keys.lock().unwrap().len()
    }
}

#[cfg(test)]
impl KeyStore for MemoryKeys {
    fn location(&self) -> String {
        "test keyring".into()
    }
    fn load(&self, id: &str) -> std::result::Result<Option<StoreKey>, KeyringError> {
        self.check()?;
        Ok(self
            .keys
            .lock()
            .unwrap()
            .get(id)
            .map(|b| StoreKey::from_bytes(*b)))
    }
    fn save(&self, id: &str, key: &StoreKey) -> std::result::Result<(), KeyringError> {
        self.check()?;
        self.keys
            .lock()
            .unwrap()
            .insert(id.into(), *key.secret_bytes());
        Ok(())
    }
    fn forget(&self, id: &str) -> std::result::Result<bool, KeyringError> {
        self.check()?;
        Ok(self.keys.lock().unwrap().remove(id).is_some())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_round_trip_through_their_keyring_text() {
        let key = StoreKey::generate();
        let text = encode_key(&key);
        assert_eq!(text.len(), 44);
        assert_eq!(
            decode_key(&text).unwrap().secret_bytes(),
            key.secret_bytes()
        );
        assert!(matches!(
            decode_key("c2hvcnQ="),
            Err(KeyringError::Invalid(_))
        ));
        assert!(matches!(decode_key("%%%"), Err(KeyringError::Invalid(_))));
    }
}
