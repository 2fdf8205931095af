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

impl OsKeyring {
    fn entry(store_id: &str) -> std::result::Result<keyring::Entry, KeyringError> {
        keyring::Entry::new(KEYRING_SERVICE, store_id).map_err(classify)
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
        let found = Self::entry(store_id)?.get_password();
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
        Self::entry(store_id)?
            .set_password(&encode_key(key))
            .map_err(classify)
    }

    fn forget(&self, store_id: &str) -> std::result::Result<bool, KeyringError> {
        match Self::entry(store_id)?.delete_credential() {
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
