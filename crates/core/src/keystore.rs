//! Where the store's data key lives, and the one decision of how a store is opened:
//! encrypted with a key from the OS keyring, or (only when asked for) unencrypted.
//!
//! - The data key is 32 random bytes ([`StoreKey::generate`]), kept base64-encoded in the
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
//! | unreadable | (not asked) | [`SqliteStore::open`] moves it aside and reports it |
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
//! Nothing here logs a key; [`StoreKey`]'s `Debug` is redacted.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use base64::Engine as _;
use rusqlite::{Connection, OpenFlags, OptionalExtension};
use zeroize::Zeroizing;

use crate::cache::sqlite::{inspect, Found};
use crate::cache::{AesGcmCipher, Cipher, PlaintextCipher, SqliteStore, StoreKey};
use crate::error::{Error, Result, StoreError};

/// The keyring service name of every Tessera store key.
pub const KEYRING_SERVICE: &str = "tessera";
/// Set to `1` (or `true`, `yes`, `on`) to allow unencrypted storage without a keyring.
pub const ALLOW_PLAINTEXT_ENV: &str = "TESSERA_ALLOW_PLAINTEXT";
/// Tessera's settings file in the config folder (`allow_plaintext = true`).
pub const CONFIG_FILE: &str = "config.toml";

const BUSY_TIMEOUT: Duration = Duration::from_secs(10);
/// The first byte of a sealed value (see `cache::cipher`).
const SEALED_PLAINTEXT: u8 = 0x00;
const SEALED_AES_256_GCM: u8 = 0x01;

/// How a store keeps its secrets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
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
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
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

/// What the file at a store path holds, read without any key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Probe {
    /// No file, an empty file, or an empty database: nothing was stored yet.
    New,
    Encrypted,
    Plaintext,
    /// Not (yet) readable as a Tessera store: [`SqliteStore::open`] says why.
    Unreadable,
}

fn probe_conn(conn: &Connection) -> rusqlite::Result<Probe> {
    // The header in one statement, so one snapshot (`SqliteStore::open` decides by it too);
    // a key check is written in the same transaction as the header, so it is there
    // whenever the header says the file is ours.
    match inspect(conn)? {
        Found::Empty => return Ok(Probe::New),
        Found::Foreign(_) => return Ok(Probe::Unreadable),
        Found::Ours(_) => {}
    }
    let check: Option<Vec<u8>> = conn
        .query_row("SELECT value FROM meta WHERE name = 'key_check'", [], |r| {
            r.get(0)
        })
        .optional()?;
    Ok(match check.as_deref().and_then(<[u8]>::first) {
        None => Probe::New,
        Some(&SEALED_AES_256_GCM) => Probe::Encrypted,
        Some(&SEALED_PLAINTEXT) => Probe::Plaintext,
        Some(_) => Probe::Unreadable,
    })
}

fn open_existing(path: &Path) -> rusqlite::Result<Connection> {
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    conn.busy_timeout(BUSY_TIMEOUT)?;
    Ok(conn)
}

fn probe(path: &Path) -> Probe {
    match std::fs::metadata(path) {
        Err(_) => return Probe::New,
        Ok(m) if m.len() == 0 => return Probe::New,
        Ok(_) => {}
    }
    open_existing(path)
        .and_then(|c| probe_conn(&c))
        .unwrap_or(Probe::Unreadable)
}

/// Creates the folder (0700) and an empty file (0600) for a new store, so that its
/// SQLite write lock can be taken before anything is stored.
fn create_empty(path: &Path) -> std::io::Result<()> {
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        let mut b = std::fs::DirBuilder::new();
        b.recursive(true);
        #[cfg(unix)]
        std::os::unix::fs::DirBuilderExt::mode(&mut b, 0o700);
        b.create(parent)?;
    }
    let mut o = std::fs::OpenOptions::new();
    o.read(true).write(true).create(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut o, 0o600);
    o.open(path).map(drop)
}

/// A cipher for a store that could not be inspected: `SqliteStore::open` moves such a
/// file aside before it needs one; if it does need one, nothing is sealed with it.
struct Undecided;

impl Cipher for Undecided {
    fn seal(&self, _aad: &[u8], _plaintext: &[u8]) -> std::result::Result<Vec<u8>, StoreError> {
        Err(StoreError::Crypto(
            "the store could not be inspected, so no key was chosen for it".into(),
        ))
    }
    fn open(&self, aad: &[u8], sealed: &[u8]) -> std::result::Result<Vec<u8>, StoreError> {
        self.seal(aad, sealed)
    }
    fn is_encrypting(&self) -> bool {
        true
    }
}

fn keyring_unavailable_reason(location: &str, why: &str) -> String {
    format!("the {location} cannot be used ({why})")
}

fn how_to_fix_keyring() -> String {
    format!(
        "To fix this, start a Secret Service such as gnome-keyring (or KWallet) in your desktop \
         session, or unlock it. Or opt into unencrypted storage: pass --allow-plaintext, set \
         `allow_plaintext = true` in {CONFIG_FILE} in Tessera's config folder ($TESSERA_HOME, \
         else ~/.config/tessera), or set {ALLOW_PLAINTEXT_ENV}=1."
    )
}

/// Opens the store at `path` with the right protection (see the module docs). Every
/// error is a store error (exit code 5) whose message says what to do.
pub fn open_store(path: &Path, options: &StoreOptions) -> Result<OpenedStore> {
    open_store_attempt(path, options, 0)
}

fn open_store_attempt(path: &Path, options: &StoreOptions, attempt: u32) -> Result<OpenedStore> {
    let keys = options.keystore();
    let id = store_id(path);
    let shown = path.display().to_string();
    let encrypted_info = |keys: &dyn KeyStore| StoreInfo {
        path: path.to_path_buf(),
        protection: StoreProtection::Encrypted,
        key_location: Some(keys.location()),
        key_id: Some(id.clone()),
    };
    let encrypted = |key: StoreKey, keys: &dyn KeyStore| -> Result<OpenedStore> {
        let store = SqliteStore::open(path, Arc::new(AesGcmCipher::new(&key)))?;
        Ok(OpenedStore {
            store,
            info: encrypted_info(keys),
        })
    };
    let plaintext = || -> Result<OpenedStore> {
        let store = SqliteStore::open(path, Arc::new(PlaintextCipher))?;
        Ok(OpenedStore {
            store,
            info: StoreInfo {
                path: path.to_path_buf(),
                protection: StoreProtection::Plaintext,
                key_location: None,
                key_id: None,
            },
        })
    };
    match probe(path) {
        Probe::Encrypted => {
            // The keyring lookup (a D-Bus exchange with the Secret Service: about 6 ms,
            // most of a cached `tessera-cli token`) runs while the database opens; the
            // key check at the end of the open waits for it.
            let key = Arc::new(KeyInFlight::start(Arc::clone(&keys), id.clone()));
            let opened = SqliteStore::open(path, Arc::clone(&key) as Arc<dyn Cipher>);
            match (key.failure(), opened) {
                (Some(failure), _) => Err(key_failure(failure, &shown, &id, keys.as_ref())),
                (None, Ok(store)) => Ok(OpenedStore {
                    store,
                    info: encrypted_info(keys.as_ref()),
                }),
                (None, Err(e)) => Err(e.into()),
            }
        }
        Probe::Plaintext if options.allow_plaintext => plaintext(),
        Probe::Plaintext => Err(StoreError::Open {
            path: shown,
            reason: format!(
                "it keeps its secrets unencrypted (it was created where no OS keyring could be \
                 reached), and unencrypted storage was not allowed. Use it with --allow-plaintext, \
                 `allow_plaintext = true` in {CONFIG_FILE} or {ALLOW_PLAINTEXT_ENV}=1; or run \
                 `tessera-cli store reset` to start over with an encrypted store"
            ),
        }
        .into()),
        Probe::Unreadable => match SqliteStore::open(path, Arc::new(Undecided)) {
            // SqliteStore::open says why (and moves a corrupt or foreign file aside).
            Err(e) => Err(e.into()),
            Ok(_) => Err(StoreError::Open {
                path: shown,
                reason: "its contents could not be inspected".into(),
            }
            .into()),
        },
        Probe::New => match new_store_key(path, &id, keys.as_ref())? {
            NewKey::Key(key) => encrypted(key, keys.as_ref()),
            // Another process created it meanwhile: decide again, a few times at most.
            NewKey::StoreWasCreated if attempt < 3 => {
                open_store_attempt(path, options, attempt + 1)
            }
            NewKey::StoreWasCreated => Err(StoreError::Open {
                path: shown,
                reason: "it keeps changing while it is being opened".into(),
            }
            .into()),
            NewKey::Unavailable(why) if options.allow_plaintext => {
                tracing::warn!(
                    path = %shown,
                    reason = %why,
                    "no OS keyring can be reached; the token store keeps its secrets unencrypted, \
                     as plaintext storage was allowed"
                );
                plaintext()
            }
            NewKey::Unavailable(why) => Err(StoreError::Open {
                path: shown,
                reason: format!(
                    "its secrets are to be encrypted with a key kept in the OS keyring, and {}. {}",
                    keyring_unavailable_reason(&keys.location(), &why),
                    how_to_fix_keyring()
                ),
            }
            .into()),
        },
    }
}

/// Why an encrypted store's key could not be had: the errors `open_store` gives.
fn key_failure(failure: KeyringFailure, shown: &str, id: &str, keys: &dyn KeyStore) -> Error {
    match failure {
        KeyringFailure::Missing => StoreError::Crypto(format!(
            "the encryption key for {shown} is not in the keyring ({}: no entry with service \
             {KEYRING_SERVICE:?} and user {id:?}); nothing was deleted; run \
             `tessera-cli store reset` to start over",
            keys.location()
        ))
        .into(),
        KeyringFailure::Keyring(KeyringError::Unavailable(why)) => StoreError::Open {
            path: shown.to_string(),
            reason: format!(
                "its secrets are encrypted with a key in the OS keyring, and {}. Start a \
                 Secret Service such as gnome-keyring (or KWallet) in your desktop session, \
                 or unlock it, and try again; nothing was deleted (--allow-plaintext does \
                 not help here: this store is encrypted)",
                keyring_unavailable_reason(&keys.location(), &why)
            ),
        }
        .into(),
        KeyringFailure::Keyring(KeyringError::Invalid(why)) => StoreError::Crypto(format!(
            "the key for {shown} in the {}: {why}; nothing was deleted; run \
             `tessera-cli store reset` to start over",
            keys.location()
        ))
        .into(),
    }
}

/// Why a keyring lookup gave no key.
#[derive(Clone)]
enum KeyringFailure {
    /// No entry for the store.
    Missing,
    Keyring(KeyringError),
}

/// An encrypted store's key while the keyring lookup runs on another thread: the first
/// `seal` or `open` (the store's key check, at the end of `SqliteStore::open`) waits for
/// it; every later use reads the settled result without a lock. A lookup that failed makes
/// every use fail; [`KeyInFlight::failure`] says why.
struct KeyInFlight {
    lookup: Mutex<Option<KeyLookup>>,
    /// Settled by the first use: the cipher, or why there is none.
    settled: OnceLock<std::result::Result<AesGcmCipher, KeyringFailure>>,
}

type KeyLookup = std::thread::JoinHandle<std::result::Result<Option<StoreKey>, KeyringError>>;

impl KeyInFlight {
    fn start(keys: Arc<dyn KeyStore>, id: String) -> KeyInFlight {
        let lookup = std::thread::spawn(move || keys.load(&id));
        KeyInFlight {
            lookup: Mutex::new(Some(lookup)),
            settled: OnceLock::new(),
        }
    }

    fn cipher(&self) -> std::result::Result<&AesGcmCipher, StoreError> {
        match self.settled.get_or_init(|| self.wait()) {
            Ok(cipher) => Ok(cipher),
            Err(_) => Err(StoreError::Crypto(
                "the store key could not be read from the keyring".into(),
            )),
        }
    }

    fn wait(&self) -> std::result::Result<AesGcmCipher, KeyringFailure> {
        let lookup = self.lookup.lock().unwrap_or_else(|e| e.into_inner()).take();
        let failure = match lookup.map(KeyLookup::join) {
            Some(Ok(Ok(Some(key)))) => return Ok(AesGcmCipher::new(&key)),
            Some(Ok(Ok(None))) => KeyringFailure::Missing,
            Some(Ok(Err(e))) => KeyringFailure::Keyring(e),
            Some(Err(_)) | None => KeyringFailure::Keyring(KeyringError::Unavailable(
                "the keyring lookup failed".into(),
            )),
        };
        Err(failure)
    }

    /// Why the lookup gave no key (`None` if it gave one or was never waited for).
    fn failure(&self) -> Option<KeyringFailure> {
        self.settled.get()?.as_ref().err().cloned()
    }
}

impl Cipher for KeyInFlight {
    fn seal(&self, aad: &[u8], plaintext: &[u8]) -> std::result::Result<Vec<u8>, StoreError> {
        self.cipher()?.seal(aad, plaintext)
    }

    fn open(&self, aad: &[u8], sealed: &[u8]) -> std::result::Result<Vec<u8>, StoreError> {
        self.cipher()?.open(aad, sealed)
    }

    fn is_encrypting(&self) -> bool {
        true
    }
}

enum NewKey {
    Key(StoreKey),
    /// Another process initialised the store meanwhile: decide again.
    StoreWasCreated,
    Unavailable(String),
}

/// The key of a new store: the one already in the keyring for this path, else a new one
/// saved there. Runs under the store file's SQLite write lock so that concurrent first
/// starts agree on one key.
fn new_store_key(path: &Path, id: &str, keys: &dyn KeyStore) -> Result<NewKey> {
    let shown = path.display().to_string();
    let io_err = |what: &str, e: &dyn std::fmt::Display| -> Error {
        StoreError::Open {
            path: shown.clone(),
            reason: format!("{what}: {e}"),
        }
        .into()
    };
    create_empty(path).map_err(|e| io_err("cannot create the file", &e))?;
    let mut conn = match open_existing(path) {
        Ok(c) => c,
        // Not a database after all: let SqliteStore::open report it.
        Err(_) => return Ok(NewKey::StoreWasCreated),
    };
    // WAL first: then the write lock below blocks no reader, and every later
    // `journal_mode=WAL` (in SqliteStore::open) is a no-op that waits politely. Switching
    // a fresh file while another connection holds its rollback-journal write lock would
    // fail at once with "database is locked" (SQLite's deadlock avoidance).
    match switch_to_wal(&conn) {
        Ok(()) => {}
        Err(e) if is_corruption(&e) => return Ok(NewKey::StoreWasCreated),
        Err(e) => return Err(io_err("cannot switch to WAL mode", &e)),
    }
    let tx = match conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate) {
        Ok(tx) => tx,
        Err(e) if is_corruption(&e) => return Ok(NewKey::StoreWasCreated),
        Err(e) => return Err(io_err("cannot lock it", &e)),
    };
    match probe_conn(&tx) {
        Ok(Probe::New) => {}
        _ => return Ok(NewKey::StoreWasCreated),
    }
    let outcome = match keys.load(id) {
        Ok(Some(key)) => {
            tracing::debug!(path = %shown, "reusing the store key already in the keyring");
            NewKey::Key(key)
        }
        Ok(None) | Err(KeyringError::Invalid(_)) => {
            let key = StoreKey::generate();
            match keys.save(id, &key) {
                Ok(()) => {
                    tracing::info!(path = %shown, keyring = %keys.location(), "new store key saved in the keyring");
                    NewKey::Key(key)
                }
                Err(KeyringError::Unavailable(why) | KeyringError::Invalid(why)) => {
                    NewKey::Unavailable(why)
                }
            }
        }
        Err(KeyringError::Unavailable(why)) => NewKey::Unavailable(why),
    };
    // Nothing was written: the lock only orders concurrent first starts.
    drop(tx);
    Ok(outcome)
}

fn is_corruption(e: &rusqlite::Error) -> bool {
    matches!(
        e.sqlite_error_code(),
        Some(rusqlite::ErrorCode::NotADatabase | rusqlite::ErrorCode::DatabaseCorrupt)
    )
}

/// `PRAGMA journal_mode=WAL`, retried while another connection holds a lock (SQLite
/// answers a concurrent switch with an immediate "database is locked").
fn switch_to_wal(conn: &Connection) -> rusqlite::Result<()> {
    let started = std::time::Instant::now();
    let mut pause = Duration::from_millis(2);
    loop {
        match conn.query_row("PRAGMA journal_mode=WAL", [], |r| r.get::<_, String>(0)) {
            Ok(_) => return Ok(()),
            Err(e)
                if matches!(
                    e.sqlite_error_code(),
                    Some(rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked)
                ) && started.elapsed() < BUSY_TIMEOUT =>
            {
                std::thread::sleep(pause);
                pause = (pause * 2).min(Duration::from_millis(50));
            }
            Err(e) => return Err(e),
        }
    }
}

/// What [`reset_store`] did.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ResetOutcome {
    /// Where the old store went (`None`: there was no store file).
    pub moved_to: Option<PathBuf>,
    /// Was a key removed from the keyring?
    pub key_removed: bool,
    /// Why the key could not be removed (the keyring was unreachable).
    pub key_error: Option<String>,
}

/// Moves the store at `path` aside to `<name>.reset-<UTC time>` (with its `-wal` and
/// `-shm` files; never deleted, never overwriting) and removes its key from the keyring.
/// Other processes should not have the store open meanwhile.
pub fn reset_store(path: &Path, keystore: Option<Arc<dyn KeyStore>>) -> Result<ResetOutcome> {
    let keys = keystore.unwrap_or_else(|| Arc::new(OsKeyring));
    let id = store_id(path);
    let moved_to = if path.exists() {
        // Fold the WAL into the file first, if the file is a database at all.
        if let Ok(conn) = open_existing(path) {
            let _ = conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()));
        }
        Some(move_aside(path, "reset")?)
    } else {
        None
    };
    let (key_removed, key_error) = match keys.forget(&id) {
        Ok(removed) => (removed, None),
        Err(e) => (false, Some(e.to_string())),
    };
    Ok(ResetOutcome {
        moved_to,
        key_removed,
        key_error,
    })
}

fn move_aside(path: &Path, why: &str) -> Result<PathBuf> {
    let target = crate::cache::sqlite::move_store_aside(path, why).map_err(|e| -> Error {
        StoreError::Open {
            path: path.display().to_string(),
            reason: format!("cannot move it aside: {e}"),
        }
        .into()
    })?;
    tracing::info!(path = %path.display(), moved_to = %target.display(), "the token store was moved aside");
    Ok(target)
}

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
pub(crate) mod tests {
    use std::collections::HashMap;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Mutex;

    use super::*;
    use crate::cache::{AccountEntry, TokenStore, TokenWrite};

    /// Keys in memory, for the decision table (the real keyring is exercised by the
    /// integration suite, `tests/it/storage.rs`). Can play an unreachable keyring.
    #[derive(Default)]
    pub(crate) struct MemoryKeys {
        keys: Mutex<HashMap<String, [u8; 32]>>,
        pub(crate) unreachable: AtomicBool,
    }

    impl MemoryKeys {
        fn check(&self) -> std::result::Result<(), KeyringError> {
            if self.unreachable.load(Ordering::SeqCst) {
                Err(KeyringError::Unavailable(
                    "no Secret Service on the bus".into(),
                ))
            } else {
                Ok(())
            }
        }
        fn len(&self) -> usize {
            self.keys.lock().unwrap().len()
        }
    }

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

    fn opts(keys: &Arc<MemoryKeys>, allow_plaintext: bool) -> StoreOptions {
        StoreOptions {
            allow_plaintext,
            keystore: Some(keys.clone() as Arc<dyn KeyStore>),
        }
    }

    fn account(username: &str) -> TokenWrite {
        TokenWrite {
            account: Some(AccountEntry {
                home_account_id: format!("{username}.tid"),
                environment: "login.example".into(),
                realm: "tid".into(),
                local_account_id: username.into(),
                username: username.into(),
                authority_type: "MSSTS".into(),
                account_source: None,
                name: None,
                extra: Default::default(),
            }),
            ..Default::default()
        }
    }

    #[test]
    fn a_new_store_gets_a_key_and_reopens_with_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("store.db");
        let keys = Arc::new(MemoryKeys::default());
        let opened = open_store(&path, &opts(&keys, false)).unwrap();
        assert_eq!(opened.info.protection, StoreProtection::Encrypted);
        assert_eq!(opened.info.key_location.as_deref(), Some("test keyring"));
        assert_eq!(
            opened.info.key_id.as_deref(),
            Some(
                format!(
                    "store:{}",
                    dir.path()
                        .canonicalize()
                        .unwrap()
                        .join("store.db")
                        .display()
                )
                .as_str()
            )
        );
        assert_eq!(keys.len(), 1);
        opened.store.write(account("ada")).unwrap();
        drop(opened);
        // Even with plaintext allowed, an encrypted store stays encrypted.
        let again = open_store(&path, &opts(&keys, true)).unwrap();
        assert_eq!(again.info.protection, StoreProtection::Encrypted);
        assert_eq!(again.store.accounts().unwrap().len(), 1);
        assert_eq!(keys.len(), 1, "no second key");
        assert_eq!(probe(&path), Probe::Encrypted);
    }

    #[test]
    fn a_missing_key_is_an_error_that_deletes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("store.db");
        let keys = Arc::new(MemoryKeys::default());
        open_store(&path, &opts(&keys, false))
            .unwrap()
            .store
            .write(account("ada"))
            .unwrap();
        keys.forget(&store_id(&path)).unwrap();
        let before = std::fs::read(&path).unwrap();
        for allow in [false, true] {
            let err = open_store(&path, &opts(&keys, allow)).unwrap_err();
            assert_eq!(err.exit_code(), 5);
            let msg = err.to_string();
            assert!(
                msg.contains("is not in the keyring (test keyring")
                    && msg.contains("nothing was deleted")
                    && msg.contains("tessera-cli store reset"),
                "{msg}"
            );
        }
        assert_eq!(std::fs::read(&path).unwrap(), before);
        assert_eq!(keys.len(), 0, "no key was invented for the old store");
    }

    #[test]
    fn no_keyring_fails_with_the_fix_unless_plaintext_is_allowed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("store.db");
        let keys = Arc::new(MemoryKeys::default());
        keys.unreachable.store(true, Ordering::SeqCst);
        let err = open_store(&path, &opts(&keys, false)).unwrap_err();
        assert_eq!(err.exit_code(), 5);
        let msg = err.to_string();
        for needle in [
            "cannot be used",
            "no Secret Service on the bus",
            "gnome-keyring",
            "unlock",
            "--allow-plaintext",
            "allow_plaintext = true",
            "TESSERA_ALLOW_PLAINTEXT=1",
        ] {
            assert!(msg.contains(needle), "{needle:?} missing from: {msg}");
        }
        let plain = open_store(&path, &opts(&keys, true)).unwrap();
        assert_eq!(plain.info.protection, StoreProtection::Plaintext);
        assert_eq!(plain.info.key_location, None);
        plain.store.write(account("ada")).unwrap();
        drop(plain);
        // The plaintext store needs the permission every time, keyring or not.
        keys.unreachable.store(false, Ordering::SeqCst);
        let msg = open_store(&path, &opts(&keys, false))
            .unwrap_err()
            .to_string();
        assert!(
            msg.contains("unencrypted") && msg.contains("store reset"),
            "{msg}"
        );
        let plain = open_store(&path, &opts(&keys, true)).unwrap();
        assert_eq!(plain.info.protection, StoreProtection::Plaintext);
        assert_eq!(plain.store.accounts().unwrap().len(), 1);
        assert_eq!(keys.len(), 0);
    }

    #[test]
    fn an_encrypted_store_without_a_keyring_is_not_downgraded() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("store.db");
        let keys = Arc::new(MemoryKeys::default());
        open_store(&path, &opts(&keys, false)).unwrap();
        keys.unreachable.store(true, Ordering::SeqCst);
        let msg = open_store(&path, &opts(&keys, true))
            .unwrap_err()
            .to_string();
        assert!(
            msg.contains("cannot be used")
                && msg.contains("unlock")
                && msg.contains("nothing was deleted"),
            "{msg}"
        );
        assert_eq!(probe(&path), Probe::Encrypted);
    }

    #[test]
    fn a_key_left_in_the_keyring_is_reused_for_a_new_store() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("store.db");
        let keys = Arc::new(MemoryKeys::default());
        let key = StoreKey::generate();
        keys.save(&store_id(&path), &key).unwrap();
        open_store(&path, &opts(&keys, false))
            .unwrap()
            .store
            .write(account("ada"))
            .unwrap();
        // The store opens with exactly that key.
        let by_hand = SqliteStore::open(&path, Arc::new(AesGcmCipher::new(&key))).unwrap();
        assert_eq!(by_hand.accounts().unwrap().len(), 1);
    }

    #[test]
    fn concurrent_first_opens_agree_on_one_key() {
        // 50 rounds: when the probe read the header outside one snapshot, 200 rounds on a
        // loaded machine failed in 5 tries of 6.
        for _ in 0..50 {
            let dir = tempfile::tempdir().unwrap();
            let path = Arc::new(dir.path().join("store.db"));
            let keys = Arc::new(MemoryKeys::default());
            let threads: Vec<_> = (0..8)
                .map(|i| {
                    let (path, o) = (path.clone(), opts(&keys, false));
                    std::thread::spawn(move || {
                        let s = open_store(&path, &o).unwrap();
                        s.store.write(account(&format!("user{i}"))).unwrap();
                    })
                })
                .collect();
            for t in threads {
                t.join().unwrap();
            }
            let s = open_store(&path, &opts(&keys, false)).unwrap();
            assert_eq!(s.store.accounts().unwrap().len(), 8);
        }
    }

    #[test]
    fn a_corrupt_file_is_moved_aside_and_a_new_store_starts() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("store.db");
        std::fs::write(&path, b"this is not a database, not even close....").unwrap();
        let keys = Arc::new(MemoryKeys::default());
        let err = open_store(&path, &opts(&keys, false)).unwrap_err();
        assert_eq!(err.exit_code(), 5);
        assert!(err.to_string().contains("moved aside"), "{err}");
        assert!(!path.exists());
        assert_eq!(keys.len(), 0);
        let fresh = open_store(&path, &opts(&keys, false)).unwrap();
        assert_eq!(fresh.info.protection, StoreProtection::Encrypted);
    }

    #[test]
    fn reset_moves_the_store_aside_and_forgets_the_key() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("store.db");
        let keys = Arc::new(MemoryKeys::default());
        let opened = open_store(&path, &opts(&keys, false)).unwrap();
        opened.store.write(account("ada")).unwrap();
        drop(opened);
        let before = std::fs::read(&path).unwrap();
        let ks: Arc<dyn KeyStore> = keys.clone();
        let out = reset_store(&path, Some(ks.clone())).unwrap();
        let moved = out.moved_to.clone().unwrap();
        assert!(out.key_removed && out.key_error.is_none(), "{out:?}");
        assert!(!path.exists());
        let name = moved.file_name().unwrap().to_str().unwrap().to_owned();
        assert!(name.starts_with("store.db.reset-20"), "{name}");
        assert!(std::fs::read(&moved).unwrap().len() >= before.len());
        assert_eq!(keys.len(), 0);
        // A second reset finds nothing to move.
        let again = reset_store(&path, Some(ks)).unwrap();
        assert_eq!(again.moved_to, None);
        assert!(!again.key_removed);
        let fresh = open_store(&path, &opts(&keys, false)).unwrap();
        assert!(fresh.store.accounts().unwrap().is_empty());
        assert!(moved.exists());
    }

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
