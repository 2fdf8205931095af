//! [`open_store`]: the one open-time decision (the table in [`super`]): probe the file
//! without a key, then open it encrypted with the keyring's key, unencrypted when that is
//! allowed, or not at all with an error saying what to do.
//!
//! **Invariants:** plaintext only when allowed; an encrypted store is never downgraded;
//! a missing key deletes nothing; a new store's key is found or created under the store
//! file's SQLite write lock, so concurrent first opens agree on one key.

use std::path::Path;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use rusqlite::{Connection, OpenFlags, OptionalExtension};

use super::config::{ALLOW_PLAINTEXT_ENV, CONFIG_FILE};
use super::keys::{store_id, KeyStore, KeyringError, KEYRING_SERVICE};
use super::{OpenedStore, StoreInfo, StoreOptions, StoreProtection};
use crate::cache::sqlite::{inspect, Found};
use crate::cache::{AesGcmCipher, Cipher, PlaintextCipher, SqliteStore, StoreKey};
use crate::error::{Error, Result, StoreError};
use crate::fsutil;

const BUSY_TIMEOUT: Duration = Duration::from_secs(10);
/// The first byte of a sealed value (see `cache::cipher`).
const SEALED_PLAINTEXT: u8 = 0x00;
const SEALED_AES_256_GCM: u8 = 0x01;

/// What the file at a store path holds, read without any key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Probe {
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

pub(super) fn open_existing(path: &Path) -> rusqlite::Result<Connection> {
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    conn.busy_timeout(BUSY_TIMEOUT)?;
    Ok(conn)
}

pub(super) fn probe(path: &Path) -> Probe {
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
    fsutil::create_parent_dir(path)?;
    fsutil::open_private_file(path).map(drop)
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
            // The keyring lookup (a D-Bus exchange) runs while the database opens; the
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

#[cfg(test)]
pub(super) mod tests {
    use std::sync::atomic::Ordering;

    use super::*;
    use crate::cache::{AccountEntry, TokenStore, TokenWrite};
    use crate::keystore::MemoryKeys;

    pub(in crate::keystore) fn opts(keys: &Arc<MemoryKeys>, allow_plaintext: bool) -> StoreOptions {
        StoreOptions {
            allow_plaintext,
            keystore: Some(keys.clone() as Arc<dyn KeyStore>),
        }
    }

    pub(in crate::keystore) fn account(username: &str) -> TokenWrite {
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
        // Many rounds: a probe reading the header outside one snapshot failed here only
        // now and then.
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
}
