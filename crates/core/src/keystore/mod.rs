//! Where the store's data key lives, and the one decision of how a store is opened:
//! encrypted with a key from the OS keyring, or (only when asked for) unencrypted.
//!
//! - The data key is 32 random bytes ([`StoreKey::generate`](crate::cache::StoreKey::generate)), kept base64-encoded in the
//!   OS keyring through the `keyring` crate: the Secret Service (gnome-keyring, KWallet)
//!   over D-Bus on Linux, the Keychain on macOS, the Credential Manager on Windows.
//!   The entry's service is [`KEYRING_SERVICE`] (`tessera`) and its user [`store_id`]:
//!   `store:` and the canonical store path, so two Tessera homes have two keys.
//! - [`open_store`] decides, from what the store file says and what the keyring has:
//!
//! | store file | keyring | result |
//! |---|---|---|
//! | encrypted | has the key | opened with AES-256-GCM |
//! | encrypted | no key | error, nothing deleted; `store reset` starts over |
//! | encrypted | unreachable | error saying how to reach or unlock the keyring |
//! | plaintext | (not asked) | opened unencrypted if plaintext is allowed, else an error |
//! | new | reachable | the existing key for this path, else a new one saved there |
//! | new | unreachable | unencrypted if plaintext is allowed, else an error saying how to fix it |
//! | unreadable | (not asked) | [`SqliteStore::open`](crate::cache::SqliteStore::open) moves it aside and reports it |
//!
//! Plaintext is allowed by `--allow-plaintext`, `TESSERA_ALLOW_PLAINTEXT=1`, or
//! `allow_plaintext = true` in `config.toml` in the config folder ([`plaintext_allowed`]).
//! It is a fallback for machines without a keyring, never chosen when a keyring works.
//!
//! - Two processes creating the same new store at once must not save two different keys:
//!   the key is found or created while holding the store file's SQLite write lock, and a
//!   key already in the keyring for the path is reused.
//! - [`reset_store`] moves the store aside (`<name>.reset-<UTC time>`, with its `-wal` and
//!   `-shm` files; never deleted) and removes the key from the keyring.
//!
//! Nothing here logs a key; [`StoreKey`](crate::cache::StoreKey)'s `Debug` is redacted.
//!
//! `keys` is the keyring, `open` the decision, `reset` the reset, `config` the
//! plaintext permission.

use std::path::PathBuf;
use std::sync::Arc;

use crate::cache::SqliteStore;

mod config;
mod keys;
mod open;
mod reset;

pub use config::{plaintext_allowed, ALLOW_PLAINTEXT_ENV, CONFIG_FILE};
#[cfg(test)]
pub(crate) use keys::MemoryKeys;
pub use keys::{
    store_id, KeyStore, KeyringError, OsKeyring, KEYRING_SERVICE, KEYRING_TIMEOUT,
    KEYRING_TIMEOUT_ENV,
};
pub use open::open_store;
pub use reset::{reset_store, ResetOutcome};

/// How a store keeps its secrets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StoreProtection {
    /// AES-256-GCM with a key from the OS keyring.
    Encrypted,
    /// Unencrypted (the file's 0600 mode is the only protection).
    Plaintext,
}

impl std::fmt::Display for StoreProtection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            StoreProtection::Encrypted => "encrypted",
            StoreProtection::Plaintext => "plaintext",
        })
    }
}

/// How to open the store.
#[derive(Clone, Default)]
pub struct StoreOptions {
    /// Without a reachable keyring, keep secrets unencrypted instead of failing (and open
    /// a store that was created that way). `Tessera::open_with` also turns this on for
    /// `TESSERA_ALLOW_PLAINTEXT=1` and `allow_plaintext = true` in `config.toml`.
    pub allow_plaintext: bool,
    /// Where keys are kept; `None` is the OS keyring ([`OsKeyring`]).
    pub keystore: Option<Arc<dyn KeyStore>>,
}

impl std::fmt::Debug for StoreOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoreOptions")
            .field("allow_plaintext", &self.allow_plaintext)
            .field("keystore", &self.keystore.as_ref().map(|k| k.location()))
            .finish()
    }
}

impl StoreOptions {
    fn keystore(&self) -> Arc<dyn KeyStore> {
        self.keystore.clone().unwrap_or_else(|| Arc::new(OsKeyring))
    }
}

/// What an opened store is and where its key is, for `status`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct StoreInfo {
    pub path: PathBuf,
    pub protection: StoreProtection,
    /// "OS keyring (Secret Service)" for an encrypted store; `None` for plaintext.
    pub key_location: Option<String>,
    /// The keyring entry's user (its service is [`KEYRING_SERVICE`]).
    pub key_id: Option<String>,
}

/// An opened store and what it is.
#[derive(Debug)]
pub struct OpenedStore {
    pub store: SqliteStore,
    pub info: StoreInfo,
}
