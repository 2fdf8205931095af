//! [`SqliteStore`]: the token store in an embedded SQLite database, shared by the
//! desktop app and any number of CLI processes.
//!
//! - One table per entry kind, the MSAL cache key as primary key, indexed columns for
//!   every lookup (so a lookup costs the same with ten or ten thousand tokens), the
//!   non-secret fields as MSAL JSON text (`extra` included), and the secret as a BLOB
//!   sealed by the [`Cipher`] with the entry's key as associated data.
//! - WAL journal, `synchronous=NORMAL`, a 10 s busy timeout; every `write` and
//!   `remove_account` is one `BEGIN IMMEDIATE` transaction, so concurrent writers queue
//!   instead of failing, and readers never see half a token response.
//! - `secure_delete` is on: SQLite zeroes the bytes of every deleted or replaced row (a
//!   signed-out account, a replaced access token, a rotated refresh token) instead of
//!   leaving them in free space. After `remove_account` the WAL is checkpointed and
//!   truncated, so the signed-out tokens' old pages are not kept in the `-wal` file either.
//! - The file is created 0600 in a 0700 directory before anything is written (SQLite
//!   gives its `-wal` and `-shm` files the same mode), and an existing file with a
//!   looser mode is tightened.
//! - The header's `application_id` marks a Tessera store and `user_version` its schema.
//!   A file that is not SQLite, or is someone else's database, is moved aside to
//!   `<name>.corrupt-<UTC time>` (never deleted, never overwritten) and reported as
//!   [`StoreError::Corrupt`]; a newer schema is an error that leaves the file alone.
//! - A sealed check value in the `meta` table makes opening with the wrong key (or
//!   without a key, or with one for a plaintext store) fail at once with a clear error.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use rusqlite::{
    params, Connection, ErrorCode, OpenFlags, OptionalExtension, Transaction, TransactionBehavior,
};
use serde_json::{Map, Value};

use super::cipher::Cipher;
use super::msal_json::MsalEntity;
use super::{
    at_replaces, env_rank, ext_cache_key, target_covers, AccessTokenEntry, AccountEntry,
    AppMetadataEntry, CredentialQuery, IdTokenEntry, RefreshTokenEntry, TokenStore, TokenWrite,
};
use crate::env::{Clock, SystemClock, UnixTime};
use crate::error::StoreError;
use crate::fsutil;
use crate::scopes::ScopeSet;
use crate::secret::RefreshToken;

/// "TESS" in the SQLite header: this file is a Tessera token store.
const APPLICATION_ID: i32 = 0x5445_5353;
/// The schema this code reads and writes.
pub const SCHEMA_VERSION: i32 = 1;
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);
/// How long the checkpoint after a sign-out waits for other processes' readers and writers.
const CHECKPOINT_WAIT: Duration = Duration::from_secs(2);
const KEY_CHECK_AAD: &[u8] = b"tessera-store-key-check";
const KEY_CHECK_VALUE: &[u8] = b"tessera-store-key-check-v1";

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS access_token (
    key TEXT PRIMARY KEY NOT NULL,
    home_account_id TEXT NOT NULL,
    environment TEXT NOT NULL,      -- lower-cased, for matching
    client_id TEXT NOT NULL,
    realm TEXT NOT NULL,
    ext_cache_key TEXT,
    expires_on INTEGER NOT NULL,
    fields TEXT NOT NULL,           -- the MSAL entry without its secret, JSON
    secret BLOB NOT NULL            -- sealed, AAD = key
);
CREATE INDEX IF NOT EXISTS access_token_by_account
    ON access_token (home_account_id, client_id, environment, realm);
CREATE INDEX IF NOT EXISTS access_token_by_expiry ON access_token (expires_on);
CREATE TABLE IF NOT EXISTS refresh_token (
    key TEXT PRIMARY KEY NOT NULL,
    home_account_id TEXT NOT NULL,
    environment TEXT NOT NULL,
    client_id TEXT NOT NULL,
    family_id TEXT,
    last_modification_time INTEGER,
    fields TEXT NOT NULL,
    secret BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS refresh_token_by_client
    ON refresh_token (home_account_id, client_id, environment);
CREATE INDEX IF NOT EXISTS refresh_token_by_family
    ON refresh_token (home_account_id, family_id, environment);
CREATE TABLE IF NOT EXISTS id_token (
    key TEXT PRIMARY KEY NOT NULL,
    home_account_id TEXT NOT NULL,
    environment TEXT NOT NULL,
    client_id TEXT NOT NULL,
    realm TEXT NOT NULL,
    fields TEXT NOT NULL,
    secret BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS id_token_by_account
    ON id_token (home_account_id, client_id, environment, realm);
CREATE TABLE IF NOT EXISTS account (
    key TEXT PRIMARY KEY NOT NULL,
    home_account_id TEXT NOT NULL,
    environment TEXT NOT NULL,
    fields TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS account_by_home ON account (home_account_id, environment);
CREATE TABLE IF NOT EXISTS app_metadata (
    key TEXT PRIMARY KEY NOT NULL,
    client_id TEXT NOT NULL,
    environment TEXT NOT NULL,
    fields TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS app_metadata_by_client ON app_metadata (client_id, environment);
CREATE TABLE IF NOT EXISTS meta (
    name TEXT PRIMARY KEY NOT NULL,
    value BLOB NOT NULL
);
";

/// Indexes added after schema 1 shipped: created on open when missing (older versions
/// of Tessera keep working with them, SQLite maintains them on every write).
///
/// `access_token_by_account_target` covers the silent lookup
/// ([`TokenStore::find_access_token`]): it holds each token's environment, realm,
/// expiry, target (from the JSON fields) and key, so choosing among an account's tokens
/// reads neither the rows nor their JSON, and only the chosen token is decrypted.
/// `account_by_username` finds an account by name ([`TokenStore::accounts_named`])
/// without reading the others.
const ADDED_INDEXES: &str = "
CREATE INDEX IF NOT EXISTS access_token_by_account_target ON access_token (
    home_account_id, client_id, realm, environment, ext_cache_key, expires_on,
    json_extract(fields, '$.target'), key
);
CREATE INDEX IF NOT EXISTS account_by_username
    ON account (lower(json_extract(fields, '$.username')));
";

/// The agent's record of who got which token (JSON without any secret, see
/// `agent::activity`), added after schema 1: older versions ignore it.
const ACTIVITY_TABLE: &str = "
CREATE TABLE IF NOT EXISTS activity (
    id INTEGER PRIMARY KEY,
    at INTEGER NOT NULL,
    fields TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS activity_by_time ON activity (at);
";

/// The indexes [`ADDED_INDEXES`] makes.
const ADDED_INDEX_NAMES: [&str; 2] = ["access_token_by_account_target", "account_by_username"];

/// How many of [`ADDED_INDEX_NAMES`] the file has.
fn added_indexes_present(conn: &Connection) -> rusqlite::Result<usize> {
    let mut s = conn.prepare("SELECT 1 FROM sqlite_master WHERE type = 'index' AND name = ?1")?;
    ADDED_INDEX_NAMES
        .iter()
        .try_fold(0, |n, name| Ok(n + usize::from(s.exists([name])?)))
}

pub struct SqliteStore {
    path: PathBuf,
    conn: Mutex<Connection>,
    cipher: Arc<dyn Cipher>,
    clock: Arc<dyn Clock>,
    /// Token writes committed through this connection (SQLite's `data_version` counts
    /// the other connections' only): part of [`TokenStore::change_marker`].
    own_writes: std::sync::atomic::AtomicU64,
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStore")
            .field("path", &self.path)
            .field("encrypted", &self.cipher.is_encrypting())
            .finish()
    }
}

fn db_err(e: rusqlite::Error) -> StoreError {
    StoreError::Database(format!("token store database error: {e}"))
}

fn is_corruption(e: &rusqlite::Error) -> bool {
    matches!(
        e.sqlite_error_code(),
        Some(ErrorCode::NotADatabase | ErrorCode::DatabaseCorrupt)
    )
}

/// What the header and schema of an opened file say.
pub(crate) enum Found {
    Empty,
    Ours(i32),
    Foreign(String),
}

pub(crate) fn inspect(conn: &Connection) -> rusqlite::Result<Found> {
    // One statement, so one snapshot: read separately, another process's first commit
    // could fall between them and make a new store look foreign.
    let (app_id, version, objects): (i32, i32, i64) = conn.query_row(
        "SELECT (SELECT application_id FROM pragma_application_id()), \
                (SELECT user_version FROM pragma_user_version()), \
                (SELECT count(*) FROM sqlite_master)",
        [],
        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
    )?;
    Ok(if app_id == APPLICATION_ID && version > 0 {
        Found::Ours(version)
    } else if app_id == 0 && version == 0 && objects == 0 {
        Found::Empty
    } else {
        Found::Foreign(format!(
            "a SQLite database of another application (application id {app_id:#x}, schema {version})"
        ))
    })
}

/// Creates the parent directories (0700) and the file (0600), or tightens an existing
/// file's mode, before SQLite writes anything into it.
fn prepare_file(path: &Path) -> Result<(), StoreError> {
    let open_err = |what: &str, e: std::io::Error| StoreError::Open {
        path: path.display().to_string(),
        reason: format!("{what}: {e}"),
    };
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        fsutil::create_private_dir(parent)
            .map_err(|e| open_err("cannot create its directory", e))?;
    }
    fsutil::open_private_file(path).map_err(|e| open_err("cannot create the file", e))?;
    #[cfg(unix)]
    for p in [
        path.to_path_buf(),
        fsutil::sibling(path, "-wal"),
        fsutil::sibling(path, "-shm"),
    ] {
        use std::os::unix::fs::PermissionsExt;
        let Ok(meta) = std::fs::metadata(&p) else {
            continue;
        };
        if meta.permissions().mode() & 0o077 != 0 {
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600))
                .map_err(|e| open_err("cannot make the file private (mode 0600)", e))?;
            tracing::warn!(path = %p.display(), "the token store was readable by others; its mode is now 0600");
        }
    }
    Ok(())
}

/// Moves the store and its `-wal`/`-shm`/`-journal` files to `<name>.corrupt-<UTC time>`.
fn move_aside(path: &Path) -> Result<PathBuf, StoreError> {
    let target = move_store_aside(path, "corrupt").map_err(|e| StoreError::Open {
        path: path.display().to_string(),
        reason: format!("it is not a Tessera store, and moving it aside failed: {e}"),
    })?;
    tracing::warn!(path = %path.display(), moved_to = %target.display(), "the token store was not readable and was moved aside");
    Ok(target)
}

/// Moves a store file and its `-wal`/`-shm`/`-journal` files to `<name>.<why>-<UTC time>`
/// ([`fsutil::move_aside`]: never deletes, never replaces a file).
pub(crate) fn move_store_aside(path: &Path, why: &str) -> std::io::Result<PathBuf> {
    fsutil::move_aside(path, why, &["-wal", "-shm", "-journal"])
}

/// The environments of a query, lower-cased, as a JSON array for `json_each`.
fn env_list(environments: &[String]) -> String {
    Value::from(
        environments
            .iter()
            .map(|e| e.to_ascii_lowercase())
            .collect::<Vec<_>>(),
    )
    .to_string()
}

/// The candidates of a silent lookup, read from `access_token_by_account_target` alone
/// (the planner picks it as the covering index; a test checks the plan).
/// [`TokenStore::accounts_named`]: two index lookups (`account_by_home`,
/// `account_by_username`). SQLite's lower() folds ASCII only, as eq_ignore_ascii_case
/// does in the default method.
const ACCOUNTS_NAMED: &str = "SELECT key, fields FROM account WHERE home_account_id = ?1 \
     UNION SELECT key, fields FROM account \
     WHERE lower(json_extract(fields, '$.username')) = lower(?1) ORDER BY key";

const SILENT_CANDIDATES: &str = "SELECT key, environment, \
     coalesce(json_extract(fields, '$.target'), ''), expires_on, rowid FROM access_token \
     WHERE home_account_id = ?1 AND client_id = ?2 AND (?3 IS NULL OR realm = ?3) \
     AND ext_cache_key IS NULL AND expires_on > ?4 ORDER BY key";

/// [`TokenStore::holds_credentials`] answered from index tables alone, no secret read.
pub(super) fn holds_credentials_in(
    conn: &Connection,
    queries: &HolderQueries,
    q: &CredentialQuery<'_>,
    family_id: Option<&str>,
    db_err: fn(rusqlite::Error) -> StoreError,
) -> Result<bool, StoreError> {
    Ok(holds_refresh_token_in(conn, queries, q, family_id, db_err)?
        || any_environment_of(conn, queries.account_id_by_client, q, q.client_id, db_err)?)
}

/// [`TokenStore::holds_refresh_token`] answered from index tables alone, no secret read.
pub(super) fn holds_refresh_token_in(
    conn: &Connection,
    queries: &HolderQueries,
    q: &CredentialQuery<'_>,
    family_id: Option<&str>,
    db_err: fn(rusqlite::Error) -> StoreError,
) -> Result<bool, StoreError> {
    Ok(any_environment_of(
        conn,
        queries.account_refresh_by_client,
        q,
        q.client_id,
        db_err,
    )? || match family_id {
        Some(family) => {
            any_environment_of(conn, queries.account_refresh_by_family, q, family, db_err)?
        }
        None => false,
    })
}

/// Whether one of the environments `sql` selects (for the account `q.home_account_id`
/// and `arg`) is one of `q.environments`.
fn any_environment_of(
    conn: &Connection,
    sql: &str,
    q: &CredentialQuery<'_>,
    arg: &str,
    db_err: fn(rusqlite::Error) -> StoreError,
) -> Result<bool, StoreError> {
    let mut s = conn.prepare_cached(sql).map_err(db_err)?;
    let mut rows = s.query([q.home_account_id, arg]).map_err(db_err)?;
    while let Some(r) = rows.next().map_err(db_err)? {
        if env_rank(column(r, 0, db_err)?, q.environments).is_some() {
            return Ok(true);
        }
    }
    Ok(false)
}

/// A text column of a row, borrowed.
fn text<'r>(r: &'r rusqlite::Row<'_>, i: usize) -> Result<&'r str, StoreError> {
    column(r, i, db_err)
}

/// A text column of a row, borrowed; `db_err` names the database in an error.
fn column<'r>(
    r: &'r rusqlite::Row<'_>,
    i: usize,
    db_err: fn(rusqlite::Error) -> StoreError,
) -> Result<&'r str, StoreError> {
    r.get_ref(i)
        .map_err(db_err)?
        .as_str()
        .map_err(|e| db_err(e.into()))
}

/// The SQL that [`credential_holders_in`] and [`holds_credentials_in`] run. The first four
/// select `(home account id, environment)` rows, the first three with one parameter; the
/// last three select the environments of one account's (`?1`) tokens.
pub(super) struct HolderQueries {
    /// Refresh tokens of a client (`?1`).
    pub refresh_by_client: &'static str,
    /// Refresh tokens of a family (`?1`).
    pub refresh_by_family: &'static str,
    /// ID tokens of a client (`?1`).
    pub id_by_client: &'static str,
    /// Every account entry.
    pub accounts: &'static str,
    /// An account's refresh tokens of a client (`?2`).
    pub account_refresh_by_client: &'static str,
    /// An account's refresh tokens of a family (`?2`).
    pub account_refresh_by_family: &'static str,
    /// An account's ID tokens of a client (`?2`).
    pub account_id_by_client: &'static str,
}

/// [`TokenStore::credential_holders`] answered from index tables alone, no secret read:
/// the store's tables and the MSAL file's sidecar index both use it. `db_err` names
/// which database failed.
pub(super) fn credential_holders_in(
    conn: &Connection,
    queries: &HolderQueries,
    environments: &[String],
    client_id: &str,
    family_id: Option<&str>,
    db_err: fn(rusqlite::Error) -> StoreError,
) -> Result<HashSet<String>, StoreError> {
    // Adds the first column of each row whose second column (an environment) is one of
    // `environments` to `into`.
    let scan = |sql: &str, arg: Option<&str>, into: &mut HashSet<String>| {
        let mut s = conn.prepare_cached(sql).map_err(db_err)?;
        let mut rows = match arg {
            Some(a) => s.query([a]),
            None => s.query([]),
        }
        .map_err(db_err)?;
        while let Some(r) = rows.next().map_err(db_err)? {
            let home = column(r, 0, db_err)?;
            if !into.contains(home) && env_rank(column(r, 1, db_err)?, environments).is_some() {
                into.insert(home.to_string());
            }
        }
        Ok::<(), StoreError>(())
    };
    let mut holders = HashSet::new();
    scan(queries.refresh_by_client, Some(client_id), &mut holders)?;
    if family_id.is_some() {
        scan(queries.refresh_by_family, family_id, &mut holders)?;
    }
    scan(queries.id_by_client, Some(client_id), &mut holders)?;
    let mut with_account = HashSet::new();
    scan(queries.accounts, None, &mut with_account)?;
    holders.retain(|h| with_account.contains(h));
    Ok(holders)
}

/// The store's tables for [`credential_holders_in`] and [`holds_credentials_in`].
const HOLDER_QUERIES: HolderQueries = HolderQueries {
    refresh_by_client:
        "SELECT home_account_id, environment FROM refresh_token WHERE client_id = ?1",
    refresh_by_family:
        "SELECT home_account_id, environment FROM refresh_token WHERE family_id = ?1",
    id_by_client: "SELECT home_account_id, environment FROM id_token WHERE client_id = ?1",
    accounts: "SELECT home_account_id, environment FROM account",
    account_refresh_by_client: "SELECT environment FROM refresh_token \
                                WHERE home_account_id = ?1 AND client_id = ?2",
    account_refresh_by_family: "SELECT environment FROM refresh_token \
                                WHERE home_account_id = ?1 AND family_id = ?2",
    account_id_by_client: "SELECT environment FROM id_token \
                           WHERE home_account_id = ?1 AND client_id = ?2",
};

fn fields_json<T: MsalEntity>(e: &T) -> String {
    let mut m = e.to_msal_map();
    m.remove("secret");
    Value::Object(m).to_string()
}

fn parse_fields(key: &str, fields: &str) -> Result<Map<String, Value>, StoreError> {
    match serde_json::from_str(fields) {
        Ok(Value::Object(m)) => Ok(m),
        _ => Err(StoreError::Format(format!(
            "the stored entry {key} is malformed"
        ))),
    }
}

impl SqliteStore {
    /// Opens (or creates) the store at `path`. See the module docs for what happens to a
    /// file that is not a Tessera store.
    pub fn open(path: &Path, cipher: Arc<dyn Cipher>) -> Result<SqliteStore, StoreError> {
        let shown = path.display().to_string();
        let open_err = |reason: String| StoreError::Open {
            path: shown.clone(),
            reason,
        };
        prepare_file(path)?;
        let conn = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(|e| open_err(e.to_string()))?;
        conn.busy_timeout(BUSY_TIMEOUT)
            .map_err(|e| open_err(e.to_string()))?;
        // Room for every statement this store prepares, so none is parsed twice.
        conn.set_prepared_statement_cache_capacity(32);
        match inspect(&conn) {
            Ok(Found::Empty) | Ok(Found::Ours(SCHEMA_VERSION)) => {}
            Ok(Found::Ours(v)) if v > SCHEMA_VERSION => {
                return Err(open_err(format!(
                    "it was written by a newer Tessera (store schema {v}; this version knows \
                     schema {SCHEMA_VERSION}). Update Tessera to use it."
                )))
            }
            Ok(found) => {
                let what = match found {
                    Found::Foreign(what) => what,
                    _ => "a Tessera store of an unknown schema".into(),
                };
                tracing::warn!(path = %shown, found = %what, "the token store file is not a Tessera store");
                drop(conn);
                return Err(StoreError::Corrupt {
                    path: shown.clone(),
                    moved_to: move_aside(path)?.display().to_string(),
                });
            }
            Err(e) if is_corruption(&e) => {
                drop(conn);
                return Err(StoreError::Corrupt {
                    path: shown.clone(),
                    moved_to: move_aside(path)?.display().to_string(),
                });
            }
            Err(e) => return Err(open_err(e.to_string())),
        }
        let mode: String = conn
            .query_row("PRAGMA journal_mode=WAL", [], |r| r.get(0))
            .map_err(|e| open_err(format!("cannot switch to WAL mode: {e}")))?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(open_err(format!(
                "cannot switch to WAL mode (the journal mode is {mode})"
            )));
        }
        conn.execute_batch("PRAGMA synchronous=NORMAL;")
            .map_err(|e| open_err(e.to_string()))?;
        let secure_delete: i64 = conn
            .query_row("PRAGMA secure_delete=ON", [], |r| r.get(0))
            .map_err(|e| open_err(format!("cannot turn on secure_delete: {e}")))?;
        if secure_delete != 1 {
            return Err(open_err("cannot turn on secure_delete".into()));
        }
        let store = SqliteStore {
            path: path.to_path_buf(),
            conn: Mutex::new(conn),
            cipher,
            clock: Arc::new(SystemClock),
            own_writes: std::sync::atomic::AtomicU64::new(0),
        };
        store.init().map_err(|e| match e {
            StoreError::Database(reason) => open_err(reason),
            other => other,
        })?;
        Ok(store)
    }

    /// The clock that expires access tokens and stamps rotated refresh tokens.
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn lock(&self) -> MutexGuard<'_, Connection> {
        // A panic mid-transaction rolls the transaction back when it unwinds, so the
        // connection behind a poisoned lock is still usable.
        self.conn.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Creates the schema if the file is new, and checks the key against the stored
    /// check value (writing one on first use).
    fn init(&self) -> Result<(), StoreError> {
        let mut conn = self.lock();
        let ready = matches!(inspect(&conn).map_err(db_err)?, Found::Ours(SCHEMA_VERSION))
            && conn
                .query_row(
                    "SELECT 1 FROM meta WHERE name = 'key_check'",
                    [],
                    |_| Ok(()),
                )
                .optional()
                .map_err(db_err)?
                .is_some();
        if !ready {
            let tx = conn
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(db_err)?;
            // Another process may have initialised the file since we looked.
            if let Found::Empty = inspect(&tx).map_err(db_err)? {
                tx.execute_batch(SCHEMA).map_err(db_err)?;
                tx.execute_batch(&format!(
                    "PRAGMA application_id = {APPLICATION_ID}; PRAGMA user_version = {SCHEMA_VERSION};"
                ))
                .map_err(db_err)?;
            }
            let check = self.cipher.seal(KEY_CHECK_AAD, KEY_CHECK_VALUE)?;
            tx.execute(
                "INSERT OR IGNORE INTO meta (name, value) VALUES ('key_check', ?1)",
                [check],
            )
            .map_err(db_err)?;
            tx.commit().map_err(db_err)?;
        }
        let indexed = added_indexes_present(&conn).map_err(db_err)? == ADDED_INDEX_NAMES.len();
        if !indexed {
            let tx = conn
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(db_err)?;
            tx.execute_batch(ADDED_INDEXES).map_err(db_err)?;
            tx.commit().map_err(db_err)?;
        }
        let has_activity = conn
            .prepare_cached(
                "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'activity'",
            )
            .and_then(|mut s| s.exists([]))
            .map_err(db_err)?;
        if !has_activity {
            conn.execute_batch(ACTIVITY_TABLE).map_err(db_err)?;
        }
        let check: Vec<u8> = conn
            .query_row("SELECT value FROM meta WHERE name = 'key_check'", [], |r| {
                r.get(0)
            })
            .map_err(db_err)?;
        match self.cipher.open(KEY_CHECK_AAD, &check) {
            Ok(v) if v == KEY_CHECK_VALUE => Ok(()),
            Ok(_) => Err(StoreError::Crypto(format!(
                "the store at {} has a bad key check value",
                self.path.display()
            ))),
            Err(StoreError::Crypto(why)) => Err(StoreError::Crypto(format!(
                "the store at {}: {why}",
                self.path.display()
            ))),
            Err(e) => Err(e),
        }
    }

    fn seal(&self, key: &str, secret: &str) -> Result<Vec<u8>, StoreError> {
        self.cipher.seal(key.as_bytes(), secret.as_bytes())
    }

    /// Rebuilds an entry from its stored fields and sealed secret.
    fn entry<T: MsalEntity>(
        &self,
        key: &str,
        fields: &str,
        sealed: Option<&[u8]>,
    ) -> Result<T, StoreError> {
        let mut m = parse_fields(key, fields)?;
        if let Some(sealed) = sealed {
            let secret =
                String::from_utf8(self.cipher.open(key.as_bytes(), sealed)?).map_err(|_| {
                    StoreError::Crypto(format!("the stored secret of {key} is not text"))
                })?;
            m.insert("secret".into(), Value::String(secret));
        }
        T::from_msal_map(&m)
            .ok_or_else(|| StoreError::Format(format!("the stored entry {key} is malformed")))
    }

    /// Fields of an entry without opening its secret (which is left empty).
    fn entry_without_secret<T: MsalEntity>(key: &str, fields: &str) -> Result<T, StoreError> {
        let mut m = parse_fields(key, fields)?;
        m.insert("secret".into(), Value::String(String::new()));
        T::from_msal_map(&m)
            .ok_or_else(|| StoreError::Format(format!("the stored entry {key} is malformed")))
    }

    fn write_in(
        &self,
        tx: &Transaction<'_>,
        w: TokenWrite,
        now: UnixTime,
    ) -> Result<(), StoreError> {
        if let Some(at) = w.access_token {
            tx.prepare_cached("DELETE FROM access_token WHERE expires_on < ?1")
                .and_then(|mut s| s.execute([now]))
                .map_err(db_err)?;
            let mut replaced = Vec::new();
            {
                let mut s = tx
                    .prepare_cached(
                        "SELECT key, fields FROM access_token WHERE home_account_id = ?1 AND client_id = ?2 \
                         AND environment = ?3 AND realm = ?4",
                    )
                    .map_err(db_err)?;
                let rows = s
                    .query_map(
                        params![
                            at.home_account_id,
                            at.client_id,
                            at.environment.to_ascii_lowercase(),
                            at.realm
                        ],
                        |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)),
                    )
                    .map_err(db_err)?;
                for row in rows {
                    let (key, fields) = row.map_err(db_err)?;
                    let old: AccessTokenEntry = Self::entry_without_secret(&key, &fields)?;
                    if at_replaces(&at, &old) {
                        replaced.push(key);
                    }
                }
            }
            for key in replaced {
                tx.prepare_cached("DELETE FROM access_token WHERE key = ?1")
                    .and_then(|mut s| s.execute([key]))
                    .map_err(db_err)?;
            }
            let key = at.cache_key();
            let sealed = self.seal(&key, at.secret.secret())?;
            tx.prepare_cached(
                "INSERT OR REPLACE INTO access_token (key, home_account_id, environment, client_id, realm, \
                 ext_cache_key, expires_on, fields, secret) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
            )
            .and_then(|mut s| {
                s.execute(params![
                    key,
                    at.home_account_id,
                    at.environment.to_ascii_lowercase(),
                    at.client_id,
                    at.realm,
                    ext_cache_key(&at),
                    at.expires_on,
                    fields_json(&at),
                    sealed
                ])
            })
            .map_err(db_err)?;
        }
        if let Some(a) = w.account {
            tx.prepare_cached(
                "INSERT OR REPLACE INTO account (key, home_account_id, environment, fields) VALUES (?1, ?2, ?3, ?4)",
            )
            .and_then(|mut s| {
                s.execute(params![a.cache_key(), a.home_account_id, a.environment.to_ascii_lowercase(), fields_json(&a)])
            })
            .map_err(db_err)?;
        }
        if let Some(idt) = w.id_token {
            let key = idt.cache_key();
            let sealed = self.seal(&key, idt.secret.secret())?;
            tx.prepare_cached(
                "INSERT OR REPLACE INTO id_token (key, home_account_id, environment, client_id, realm, fields, secret) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            )
            .and_then(|mut s| {
                s.execute(params![
                    key,
                    idt.home_account_id,
                    idt.environment.to_ascii_lowercase(),
                    idt.client_id,
                    idt.realm,
                    fields_json(&idt),
                    sealed
                ])
            })
            .map_err(db_err)?;
        }
        if let Some(rt) = w.refresh_token {
            self.put_refresh_token(tx, &rt)?;
        }
        if let Some(m) = w.app_metadata {
            tx.prepare_cached(
                "INSERT OR REPLACE INTO app_metadata (key, client_id, environment, fields) VALUES (?1, ?2, ?3, ?4)",
            )
            .and_then(|mut s| {
                s.execute(params![m.cache_key(), m.client_id, m.environment.to_ascii_lowercase(), fields_json(&m)])
            })
            .map_err(db_err)?;
        }
        if let Some((key, secret)) = w.rotated_refresh_token {
            let fields: Option<String> = tx
                .prepare_cached("SELECT fields FROM refresh_token WHERE key = ?1")
                .and_then(|mut s| s.query_row([&key], |r| r.get(0)).optional())
                .map_err(db_err)?;
            if let Some(fields) = fields {
                let mut rt: RefreshTokenEntry = Self::entry_without_secret(&key, &fields)?;
                rt.secret = RefreshToken::new(secret.secret().clone());
                rt.last_modification_time = Some(now);
                // Stored under the key it was found by (the key of a foreign entry may
                // differ from what refresh_token_key computes).
                self.put_refresh_token_at(tx, &key, &rt)?;
            }
        }
        Ok(())
    }

    fn put_refresh_token(
        &self,
        tx: &Transaction<'_>,
        rt: &RefreshTokenEntry,
    ) -> Result<(), StoreError> {
        self.put_refresh_token_at(tx, &rt.cache_key(), rt)
    }

    fn put_refresh_token_at(
        &self,
        tx: &Transaction<'_>,
        key: &str,
        rt: &RefreshTokenEntry,
    ) -> Result<(), StoreError> {
        let sealed = self.seal(key, rt.secret.secret())?;
        tx.prepare_cached(
            "INSERT OR REPLACE INTO refresh_token (key, home_account_id, environment, client_id, family_id, \
             last_modification_time, fields, secret) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        )
        .and_then(|mut s| {
            s.execute(params![
                key,
                rt.home_account_id,
                rt.environment.to_ascii_lowercase(),
                rt.client_id,
                rt.family_id,
                rt.last_modification_time,
                fields_json(rt),
                sealed
            ])
        })
        .map_err(db_err)?;
        Ok(())
    }

    /// Account entries from `sql` (selecting `key, fields`).
    fn account_rows(
        &self,
        sql: &str,
        params: impl rusqlite::Params,
    ) -> Result<Vec<AccountEntry>, StoreError> {
        let conn = self.lock();
        let mut s = conn.prepare_cached(sql).map_err(db_err)?;
        let mut rows = s.query(params).map_err(db_err)?;
        let mut out = Vec::new();
        while let Some(r) = rows.next().map_err(db_err)? {
            let fields = text(r, 1)?;
            // The fields were written from a typed entry, so the typed form (faster) reads
            // them; anything it does not take goes the general way.
            out.push(match serde_json::from_str::<AccountEntry>(fields) {
                Ok(a) => a,
                Err(_) => self.entry(text(r, 0)?, fields, None)?,
            });
        }
        Ok(out)
    }

    /// Runs a query whose rows are (key, fields, secret?) and rebuilds the entries.
    fn query_entries<T: MsalEntity>(
        &self,
        sql: &str,
        params: impl rusqlite::Params,
        with_secret: bool,
    ) -> Result<Vec<T>, StoreError> {
        let rows: Vec<(String, String, Option<Vec<u8>>)> = {
            let conn = self.lock();
            let mut s = conn.prepare_cached(sql).map_err(db_err)?;
            let rows = s
                .query_map(params, |r| {
                    Ok((
                        r.get(0)?,
                        r.get(1)?,
                        if with_secret { Some(r.get(2)?) } else { None },
                    ))
                })
                .map_err(db_err)?;
            rows.collect::<Result<_, _>>().map_err(db_err)?
        };
        rows.iter()
            .map(|(k, f, s)| self.entry(k, f, s.as_deref()))
            .collect()
    }
}

impl TokenStore for SqliteStore {
    fn describe(&self) -> String {
        format!(
            "SQLite at {}, {}",
            self.path.display(),
            if self.cipher.is_encrypting() {
                "encrypted"
            } else {
                "not encrypted"
            }
        )
    }

    fn accounts(&self) -> Result<Vec<AccountEntry>, StoreError> {
        self.account_rows("SELECT key, fields FROM account ORDER BY key", [])
    }

    fn accounts_named(&self, username_or_id: &str) -> Result<Vec<AccountEntry>, StoreError> {
        self.account_rows(ACCOUNTS_NAMED, [username_or_id])
    }

    fn access_tokens(&self, q: &CredentialQuery<'_>) -> Result<Vec<AccessTokenEntry>, StoreError> {
        self.query_entries(
            "SELECT key, fields, secret FROM access_token WHERE home_account_id = ?1 AND client_id = ?2 \
             AND environment IN (SELECT value FROM json_each(?3)) AND (?4 IS NULL OR realm = ?4) \
             AND ext_cache_key IS NULL ORDER BY key",
            params![q.home_account_id, q.client_id, env_list(q.environments), q.realm],
            true,
        )
    }

    /// Reads the candidates' environment, target and expiry from a covering index (no
    /// row, no JSON parse, no secret), picks as the default method does, then reads and
    /// opens the chosen token only: one decryption however many tokens the account has.
    fn find_access_token(
        &self,
        q: &CredentialQuery<'_>,
        scopes: &ScopeSet,
        valid_after: UnixTime,
    ) -> Result<Option<AccessTokenEntry>, StoreError> {
        let chosen: Option<(String, String, Vec<u8>)> = {
            let mut conn = self.lock();
            // One read transaction for both queries: one snapshot, and SQLite takes its
            // file locks once instead of twice.
            let conn = conn.transaction().map_err(db_err)?;
            let mut s = conn.prepare_cached(SILENT_CANDIDATES).map_err(db_err)?;
            let mut rows = s
                .query(params![
                    q.home_account_id,
                    q.client_id,
                    q.realm,
                    valid_after
                ])
                .map_err(db_err)?;
            let mut best: Option<(String, i64, i64)> = None;
            while let Some(r) = rows.next().map_err(db_err)? {
                let environment = text(r, 1)?;
                let target = text(r, 2)?;
                let expires_on: i64 = r.get(3).map_err(db_err)?;
                if env_rank(environment, q.environments).is_some()
                    && target_covers(target, scopes)
                    && best.as_ref().is_none_or(|(_, e, _)| expires_on >= *e)
                {
                    best = Some((
                        r.get(0).map_err(db_err)?,
                        expires_on,
                        r.get(4).map_err(db_err)?,
                    ));
                }
            }
            drop(rows);
            match best {
                None => None,
                // By rowid (the index holds it): no second index search. The key is
                // checked too: another process may have replaced the row in between (a
                // new rowid), and then it is found by its key.
                Some((key, _, rowid)) => {
                    let by_rowid = conn
                        .prepare_cached(
                            "SELECT fields, secret FROM access_token WHERE rowid = ?1 AND key = ?2",
                        )
                        .and_then(|mut s| {
                            s.query_row(params![rowid, &key], |r| Ok((r.get(0)?, r.get(1)?)))
                                .optional()
                        })
                        .map_err(db_err)?;
                    let found = match by_rowid {
                        Some(row) => Some(row),
                        None => conn
                            .prepare_cached(
                                "SELECT fields, secret FROM access_token WHERE key = ?1",
                            )
                            .and_then(|mut s| {
                                s.query_row([&key], |r| Ok((r.get(0)?, r.get(1)?)))
                                    .optional()
                            })
                            .map_err(db_err)?,
                    };
                    found.map(|(fields, secret)| (key, fields, secret))
                }
            }
        };
        let Some((key, fields, sealed)) = chosen else {
            return Ok(None);
        };
        let at: AccessTokenEntry = self.entry(&key, &fields, Some(&sealed))?;
        // The JSON fields are the truth; the index only narrowed the search.
        Ok((at.expires_on > valid_after && target_covers(&at.target, scopes)).then_some(at))
    }

    /// Four scans of covering indexes (refresh tokens by client and by family, ID tokens,
    /// accounts), environments matched here: no row, JSON or secret is read.
    fn credential_holders(
        &self,
        environments: &[String],
        client_id: &str,
        family_id: Option<&str>,
    ) -> Result<HashSet<String>, StoreError> {
        credential_holders_in(
            &self.lock(),
            &HOLDER_QUERIES,
            environments,
            client_id,
            family_id,
            db_err,
        )
    }

    /// Scans of covering indexes (they lead with the account): no row, JSON or secret is
    /// read.
    fn holds_credentials(
        &self,
        q: &CredentialQuery<'_>,
        family_id: Option<&str>,
    ) -> Result<bool, StoreError> {
        holds_credentials_in(&self.lock(), &HOLDER_QUERIES, q, family_id, db_err)
    }

    /// The covering index of the silent lookup: no row, JSON or secret is read.
    fn access_token_expiry(
        &self,
        q: &CredentialQuery<'_>,
        scopes: &ScopeSet,
    ) -> Result<Option<UnixTime>, StoreError> {
        let conn = self.lock();
        let mut s = conn.prepare_cached(SILENT_CANDIDATES).map_err(db_err)?;
        let mut rows = s
            .query(params![q.home_account_id, q.client_id, q.realm, i64::MIN])
            .map_err(db_err)?;
        let mut latest: Option<UnixTime> = None;
        while let Some(r) = rows.next().map_err(db_err)? {
            let expires_on: i64 = r.get(3).map_err(db_err)?;
            if env_rank(text(r, 1)?, q.environments).is_some()
                && target_covers(text(r, 2)?, scopes)
                && latest.is_none_or(|l| expires_on > l)
            {
                latest = Some(expires_on);
            }
        }
        Ok(latest)
    }

    /// One transaction: the new records, then those older than `keep_since` or beyond
    /// the newest `keep_rows` go.
    fn record_activity(
        &self,
        records: &[(UnixTime, String)],
        keep_since: UnixTime,
        keep_rows: usize,
    ) -> Result<(), StoreError> {
        let mut conn = self.lock();
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(db_err)?;
        {
            let mut insert = tx
                .prepare_cached("INSERT INTO activity (at, fields) VALUES (?1, ?2)")
                .map_err(db_err)?;
            for (at, fields) in records {
                insert.execute(params![at, fields]).map_err(db_err)?;
            }
        }
        tx.execute(
            "DELETE FROM activity WHERE at < ?1 OR id <= \
             (SELECT id FROM activity ORDER BY id DESC LIMIT 1 OFFSET ?2)",
            params![keep_since, keep_rows as i64],
        )
        .map_err(db_err)?;
        tx.commit().map_err(db_err)
    }

    fn activity(
        &self,
        since: UnixTime,
        limit: usize,
    ) -> Result<Vec<(UnixTime, String)>, StoreError> {
        let conn = self.lock();
        let mut s = conn
            .prepare_cached(
                "SELECT at, fields FROM activity WHERE at >= ?1 ORDER BY id DESC LIMIT ?2",
            )
            .map_err(db_err)?;
        let rows = s
            .query_map(params![since, limit as i64], |r| Ok((r.get(0)?, r.get(1)?)))
            .map_err(db_err)?;
        rows.collect::<Result<_, _>>().map_err(db_err)
    }

    /// `PRAGMA data_version` (it changes when another connection commits) plus this
    /// connection's own token writes: any token write by anyone moves it; activity
    /// records written through this connection do not.
    fn change_marker(&self) -> Option<u64> {
        let others = self
            .lock()
            .query_row("PRAGMA data_version", [], |r| r.get::<_, i64>(0))
            .ok()? as u64;
        Some(others + self.own_writes.load(std::sync::atomic::Ordering::Relaxed))
    }

    /// Two scans of the account's index entries: no JSON or secret is read.
    fn credential_clients(
        &self,
        home_account_id: &str,
        environments: &[String],
    ) -> Result<Option<Vec<String>>, StoreError> {
        let conn = self.lock();
        let mut s = conn
            .prepare_cached(
                "SELECT client_id, environment FROM refresh_token WHERE home_account_id = ?1 \
                 UNION SELECT client_id, environment FROM id_token WHERE home_account_id = ?1",
            )
            .map_err(db_err)?;
        let mut rows = s.query([home_account_id]).map_err(db_err)?;
        let mut clients = Vec::new();
        while let Some(r) = rows.next().map_err(db_err)? {
            if env_rank(text(r, 1)?, environments).is_some() {
                clients.push(text(r, 0)?.to_string());
            }
        }
        clients.sort();
        clients.dedup();
        Ok(Some(clients))
    }

    /// Scans of covering indexes: no row, JSON or secret is read.
    fn holds_refresh_token(
        &self,
        q: &CredentialQuery<'_>,
        family_id: Option<&str>,
    ) -> Result<bool, StoreError> {
        holds_refresh_token_in(&self.lock(), &HOLDER_QUERIES, q, family_id, db_err)
    }

    fn refresh_tokens(
        &self,
        q: &CredentialQuery<'_>,
        family_id: Option<&str>,
    ) -> Result<Vec<RefreshTokenEntry>, StoreError> {
        self.query_entries(
            "SELECT key, fields, secret FROM refresh_token WHERE home_account_id = ?1 \
             AND environment IN (SELECT value FROM json_each(?2)) \
             AND (client_id = ?3 OR (?4 IS NOT NULL AND family_id = ?4)) \
             ORDER BY coalesce(last_modification_time, 0) DESC, key",
            params![
                q.home_account_id,
                env_list(q.environments),
                q.client_id,
                family_id
            ],
            true,
        )
    }

    fn id_token(&self, q: &CredentialQuery<'_>) -> Result<Option<IdTokenEntry>, StoreError> {
        // One query for the candidates (usually one); the environment that comes first in
        // `q.environments` wins, then the smallest key; only the winner is opened.
        let chosen: Option<(usize, String, String, Vec<u8>)> = {
            let conn = self.lock();
            let mut s = conn
                .prepare_cached(
                    "SELECT key, environment, fields, secret FROM id_token \
                     WHERE home_account_id = ?1 AND client_id = ?2 AND (?3 IS NULL OR realm = ?3)",
                )
                .map_err(db_err)?;
            let mut rows = s
                .query(params![q.home_account_id, q.client_id, q.realm])
                .map_err(db_err)?;
            let mut best: Option<(usize, String, String, Vec<u8>)> = None;
            while let Some(r) = rows.next().map_err(db_err)? {
                let environment = text(r, 1)?;
                let Some(rank) = env_rank(environment, q.environments) else {
                    continue;
                };
                let key = text(r, 0)?;
                if best
                    .as_ref()
                    .is_none_or(|(br, bk, _, _)| (rank, key) < (*br, bk.as_str()))
                {
                    best = Some((
                        rank,
                        key.to_string(),
                        r.get(2).map_err(db_err)?,
                        r.get(3).map_err(db_err)?,
                    ));
                }
            }
            best
        };
        match chosen {
            None => Ok(None),
            Some((_, key, fields, sealed)) => self.entry(&key, &fields, Some(&sealed)).map(Some),
        }
    }

    fn app_metadata(
        &self,
        environments: &[String],
        client_id: &str,
    ) -> Result<Option<AppMetadataEntry>, StoreError> {
        let all: Vec<AppMetadataEntry> = self.query_entries(
            "SELECT key, fields FROM app_metadata WHERE client_id = ?1 \
             AND environment IN (SELECT value FROM json_each(?2))",
            params![client_id, env_list(environments)],
            false,
        )?;
        Ok(all
            .into_iter()
            .filter_map(|e| Some(((env_rank(&e.environment, environments)?, e.cache_key()), e)))
            .min_by(|a, b| a.0.cmp(&b.0))
            .map(|(_, e)| e))
    }

    fn write(&self, w: TokenWrite) -> Result<(), StoreError> {
        self.write_all(vec![w])
    }

    fn write_all(&self, writes: Vec<TokenWrite>) -> Result<(), StoreError> {
        let now = self.clock.now();
        let mut conn = self.lock();
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(db_err)?;
        for w in writes {
            self.write_in(&tx, w, now)?;
        }
        tx.commit().map_err(db_err)?;
        self.own_writes
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Ok(())
    }

    fn remove_account(
        &self,
        home_account_id: &str,
        environments: &[String],
    ) -> Result<usize, StoreError> {
        let envs = env_list(environments);
        let mut conn = self.lock();
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(db_err)?;
        let mut n = 0;
        for table in ["access_token", "refresh_token", "id_token", "account"] {
            n += tx
                .prepare_cached(&format!(
                    "DELETE FROM {table} WHERE home_account_id = ?1 \
                     AND environment IN (SELECT value FROM json_each(?2))"
                ))
                .and_then(|mut s| s.execute(params![home_account_id, envs]))
                .map_err(db_err)?;
        }
        tx.commit().map_err(db_err)?;
        self.own_writes
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        if n > 0 {
            truncate_wal(&conn);
        }
        Ok(n)
    }
}

/// Copies the WAL into the database file and truncates it to zero bytes, so the pages it
/// held (with secrets that were deleted since) are gone from it. Waits up to
/// [`CHECKPOINT_WAIT`] for other connections' transactions; if one is still running then
/// (`busy`), SQLite copies what it can and the file keeps its old frames until a writer
/// overwrites them or the last connection closes (which deletes it). The deletion itself
/// is already committed, so this never fails it.
fn truncate_wal(conn: &Connection) {
    let _ = conn.busy_timeout(CHECKPOINT_WAIT);
    let outcome = conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| {
        r.get::<_, i64>(0)
    });
    let _ = conn.busy_timeout(BUSY_TIMEOUT);
    match outcome {
        Ok(0) => {}
        Ok(_) => tracing::info!(
            "another process is using the token store: its WAL file was not truncated"
        ),
        Err(e) => {
            tracing::warn!(error = %e, "the token store's WAL file could not be checkpointed")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::conformance::run_histories;
    use super::super::{AesGcmCipher, StoreKey};
    use super::*;

    fn open(path: &Path) -> SqliteStore {
        SqliteStore::open(
            path,
            Arc::new(AesGcmCipher::new(&StoreKey::from_bytes([7; 32]))),
        )
        .unwrap()
    }

    #[test]
    fn the_change_marker_moves_for_every_token_write_and_activity_is_kept_bounded() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.db");
        let (a, b) = (open(&path), open(&path));
        let write = |s: &SqliteStore, home: &str| {
            s.write(TokenWrite {
                account: Some(AccountEntry {
                    home_account_id: home.into(),
                    environment: "e".into(),
                    realm: "r".into(),
                    local_account_id: "l".into(),
                    username: "u".into(),
                    authority_type: "MSSTS".into(),
                    account_source: None,
                    name: None,
                    extra: Default::default(),
                }),
                ..Default::default()
            })
            .unwrap()
        };
        let before = a.change_marker().unwrap();
        a.record_activity(&[(1, "{}".into())], 0, 10).unwrap();
        assert_eq!(
            a.change_marker().unwrap(),
            before,
            "its own activity record"
        );
        write(&a, "own");
        let own = a.change_marker().unwrap();
        assert_ne!(own, before, "its own token write");
        a.remove_account("own", &["e".into()]).unwrap();
        let removed = a.change_marker().unwrap();
        assert_ne!(removed, own, "its own sign-out");
        write(&b, "other");
        assert_ne!(
            a.change_marker().unwrap(),
            removed,
            "another connection's write"
        );
        b.record_activity(&[(2, "{}".into())], 0, 10).unwrap();
        assert_eq!(b.activity(0, 10).unwrap().len(), 2, "both records kept");
        b.record_activity(&[(3, "{}".into()), (4, "{}".into())], 2, 2)
            .unwrap();
        let kept: Vec<i64> = b.activity(0, 10).unwrap().iter().map(|r| r.0).collect();
        assert_eq!(
            kept,
            [4, 3],
            "the old and the surplus records go, newest first"
        );
    }

    #[test]
    fn indexed_lookups_answer_as_the_reference_and_the_default_methods() {
        let dir = tempfile::tempdir().unwrap();
        run_histories(
            &|clock, seed| {
                Box::new(open(&dir.path().join(format!("{seed}.db"))).with_clock(clock.clone()))
            },
            250,
        );
    }

    #[test]
    fn accounts_read_fields_the_typed_form_does_not_take_the_general_way() {
        let dir = tempfile::tempdir().unwrap();
        let store = open(&dir.path().join("s.db"));
        // As an older or foreign writer might have left them: no realm, a null name, an
        // unknown field, a time as a number.
        for (key, fields) in [
            (
                "a",
                r#"{"home_account_id":"a","environment":"e","authority_type":"MSSTS","name":null,"x":1}"#,
            ),
            (
                "b",
                r#"{"home_account_id":"b","environment":"e","realm":"r","local_account_id":"l","username":"u","authority_type":"MSSTS","last_seen":5}"#,
            ),
        ] {
            store
                .lock()
                .execute(
                    "INSERT INTO account (key, home_account_id, environment, fields) VALUES (?1, ?2, 'e', ?3)",
                    params![key, key, fields],
                )
                .unwrap();
        }
        let got = store.accounts().unwrap();
        let expected: Vec<AccountEntry> = ["a", "b"]
            .iter()
            .map(|k| {
                let fields: String = store
                    .lock()
                    .query_row("SELECT fields FROM account WHERE key = ?1", [k], |r| {
                        r.get(0)
                    })
                    .unwrap();
                AccountEntry::from_msal_map(&parse_fields(k, &fields).unwrap()).unwrap()
            })
            .collect();
        assert_eq!(got, expected);
        assert_eq!(got[0].realm, "");
        assert_eq!(got[0].extra.get("x"), Some(&Value::from(1)));
        assert_eq!(got[1].extra.get("last_seen"), Some(&Value::from(5)));
    }

    fn plan(store: &SqliteStore, sql: &str) -> String {
        let conn = store.lock();
        let mut s = conn.prepare(&format!("EXPLAIN QUERY PLAN {sql}")).unwrap();
        let rows = s
            .query_map(params!["h", "c", "r", 0], |r| r.get::<_, String>(3))
            .unwrap();
        rows.map(Result::unwrap).collect::<Vec<_>>().join("; ")
    }

    #[test]
    fn the_silent_lookup_reads_only_a_covering_index() {
        let dir = tempfile::tempdir().unwrap();
        let store = open(&dir.path().join("s.db"));
        let p = plan(&store, SILENT_CANDIDATES);
        assert!(
            p.contains("USING COVERING INDEX access_token_by_account_target"),
            "{p}"
        );
    }

    #[test]
    fn an_account_is_found_by_name_through_indexes() {
        let dir = tempfile::tempdir().unwrap();
        let store = open(&dir.path().join("s.db"));
        let conn = store.lock();
        let p: Vec<String> = conn
            .prepare(&format!("EXPLAIN QUERY PLAN {ACCOUNTS_NAMED}"))
            .unwrap()
            .query_map(["x"], |r| r.get::<_, String>(3))
            .unwrap()
            .map(Result::unwrap)
            .collect();
        let p = p.join("; ");
        assert!(p.contains("USING INDEX account_by_home"), "{p}");
        assert!(p.contains("USING INDEX account_by_username"), "{p}");
        assert!(!p.contains("SCAN account"), "{p}");
    }

    #[test]
    fn a_store_made_before_the_covering_index_gets_it_when_opened() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.db");
        drop(open(&path));
        let count = |path: &Path| added_indexes_present(&Connection::open(path).unwrap()).unwrap();
        assert_eq!(count(&path), 2);
        Connection::open(&path)
            .unwrap()
            .execute_batch(
                &ADDED_INDEX_NAMES
                    .map(|name| format!("DROP INDEX {name};"))
                    .concat(),
            )
            .unwrap();
        assert_eq!(count(&path), 0);
        drop(open(&path));
        assert_eq!(count(&path), 2);
    }
}
