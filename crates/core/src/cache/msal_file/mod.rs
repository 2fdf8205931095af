//! [`MsalFileStore`]: an MSAL Python token cache file (Azure CLI's
//! `~/.azure/msal_token_cache.json`, an msal-extensions `FilePersistence`) used in place
//! as Tessera's token store, shared with the programs that already use it.
//! `docs/msal-cache-files.md` tells how msal-extensions shares the file and why this
//! store does what it does.
//!
//! - The file is read and written as MSAL Python writes it ([`MsalCacheDocument`]):
//!   unknown sections, fields and entries survive every write; the lookups and write
//!   rules are [`MemoryStore`]'s. A missing file is an empty cache, created (0600, folders
//!   0700) by the first write; a file that is not an MSAL cache is an error naming it and
//!   is never overwritten.
//! - Every change is made under msal-extensions' lock (`lock`): lock, re-read if the
//!   file changed, apply, replace the file atomically ([`fsutil::replace_file`]: exact
//!   mtime, so MSAL Python's mtime check sees it), unlock. A symlinked cache stays a link.
//! - Reads take no lock (as msal-extensions): an unchanged file (device, inode, length,
//!   mtime, ctime) is not read again; a read that is not clean is repeated under the lock.
//!   A file changed too recently for its timestamp to tell two writes apart is hashed.
//! - A big file gets a sidecar index (`index`) so that other processes can answer
//!   lookups without parsing it.

use std::collections::HashSet;
use std::fs::{self, File, Metadata};
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use sha2::{Digest, Sha256};

use super::memory::MemoryStore;
use super::msal_json::MsalCacheDocument;
use super::{
    AccessTokenEntry, AccountEntry, AppMetadataEntry, CredentialQuery, IdTokenEntry,
    RefreshTokenEntry, TokenStore, TokenWrite,
};
use crate::env::{Clock, SystemClock, UnixTime};
use crate::error::StoreError;
use crate::fsutil::{self, sibling};
use crate::scopes::ScopeSet;

mod index;
mod lock;
mod scan;

use lock::FileLock;

/// Files at least this big (1 MiB) get a sidecar index by default: smaller ones parse
/// quickly enough.
pub const DEFAULT_INDEX_MIN_BYTES: u64 = 1 << 20;
/// The sidecar index is `<file>` and this.
pub const INDEX_SUFFIX: &str = ".tessera-index";

/// How long to wait for the lock in all, by default.
pub const DEFAULT_LOCK_TIMEOUT: Duration = Duration::from_secs(10);

/// An MSAL token cache file as the token store. See the module docs.
pub struct MsalFileStore {
    path: PathBuf,
    lock_path: PathBuf,
    /// `<file>.tessera-index`: see [`index`].
    index_path: PathBuf,
    /// Files at least this big get a sidecar index; `None`: never.
    index_min_bytes: Option<u64>,
    clock: Arc<dyn Clock>,
    lock_timeout: Duration,
    state: Mutex<State>,
}

struct State {
    /// The cache as last read from (or written to) the file.
    mem: MemoryStore,
    /// What the file looked like then; `None`: unknown, read it again.
    seen: Option<Seen>,
    /// How many times the file was parsed (tests check that unchanged files are not).
    parses: u64,
    /// The sidecar index in use, valid for the file as it was when opened.
    index: Option<index::Sidecar>,
    /// How many sidecar indexes this store wrote.
    index_builds: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stamp {
    Missing,
    File {
        dev: u64,
        ino: u64,
        len: u64,
        /// Nanoseconds since the epoch.
        mtime: i128,
        ctime: i128,
    },
}

#[derive(Debug, Clone, Copy)]
struct Seen {
    stamp: Stamp,
    /// SHA-256 of the content (`None` for a missing file).
    digest: Option<[u8; 32]>,
    /// When the content was last known to match `stamp` (nanoseconds since the epoch).
    checked_at: i128,
}

impl Seen {
    /// Could the file have changed since `checked_at` without its stamp changing? Yes
    /// while its mtime is within the file system's timestamp granularity of that time.
    fn racy(&self) -> bool {
        match self.stamp {
            Stamp::Missing => false,
            Stamp::File { mtime, .. } => {
                let window: i128 = if mtime % 1_000_000_000 == 0 {
                    2_000_000_000
                } else {
                    100_000_000
                };
                mtime + window > self.checked_at
            }
        }
    }
}

impl std::fmt::Debug for MsalFileStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MsalFileStore")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

fn nanos(t: SystemTime) -> i128 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => d.as_nanos() as i128,
        Err(e) => -(e.duration().as_nanos() as i128),
    }
}

#[cfg(unix)]
fn stamp_of(m: &Metadata) -> Stamp {
    use std::os::unix::fs::MetadataExt;
    Stamp::File {
        dev: m.dev(),
        ino: m.ino(),
        len: m.len(),
        mtime: m.mtime() as i128 * 1_000_000_000 + m.mtime_nsec() as i128,
        ctime: m.ctime() as i128 * 1_000_000_000 + m.ctime_nsec() as i128,
    }
}

#[cfg(not(unix))]
fn stamp_of(m: &Metadata) -> Stamp {
    Stamp::File {
        dev: 0,
        ino: 0,
        len: m.len(),
        mtime: m.modified().map(nanos).unwrap_or(0),
        ctime: 0,
    }
}

/// What one read of the file found.
enum Found {
    Missing,
    /// The content is what was seen before (same digest): nothing to parse.
    Same {
        stamp: Stamp,
    },
    Parsed {
        stamp: Stamp,
        digest: [u8; 32],
        doc: Box<MsalCacheDocument>,
        /// The file's text (for the sidecar index's byte ranges).
        text: String,
    },
    /// Not a clean read without the lock (changing, empty, or not parseable).
    Unclear,
}

impl MsalFileStore {
    /// Opens the MSAL token cache at `path` (it need not exist yet). Fails if the file
    /// exists but is not an MSAL token cache; the file is left as it is.
    pub fn open(path: &Path) -> Result<MsalFileStore, StoreError> {
        Self::open_with_index(path, Some(DEFAULT_INDEX_MIN_BYTES))
    }

    /// [`Self::open`], where files of at least `index_min_bytes` get a sidecar index
    /// (`None`: never use or write one; [`Self::open`] uses [`DEFAULT_INDEX_MIN_BYTES`]).
    pub fn open_with_index(
        path: &Path,
        index_min_bytes: Option<u64>,
    ) -> Result<MsalFileStore, StoreError> {
        let store = MsalFileStore {
            path: path.to_path_buf(),
            lock_path: sibling(path, ".lockfile"),
            index_path: sibling(path, INDEX_SUFFIX),
            index_min_bytes,
            clock: Arc::new(SystemClock),
            lock_timeout: DEFAULT_LOCK_TIMEOUT,
            state: Mutex::new(State {
                mem: MemoryStore::new(),
                seen: None,
                parses: 0,
                index: None,
                index_builds: 0,
            }),
        };
        if fs::metadata(path).is_ok_and(|m| m.is_dir()) {
            return Err(StoreError::Open {
                path: path.display().to_string(),
                reason: "it is a directory, not an MSAL token cache file".into(),
            });
        }
        {
            let mut st = store.lock_state();
            // A valid sidecar index vouches for the file (it was built from a clean parse
            // of exactly this file); otherwise read it now, so a bad file fails here.
            let indexed = store.sidecar(&mut st).map_err(|e| StoreError::Open {
                path: path.display().to_string(),
                reason: e.to_string(),
            })?;
            if !indexed {
                store.sync(&mut st, false).map_err(|e| StoreError::Open {
                    path: path.display().to_string(),
                    reason: e.to_string(),
                })?;
            }
        }
        Ok(store)
    }

    /// The sidecar index file: `<file>.tessera-index`.
    pub fn index_path(&self) -> &Path {
        &self.index_path
    }

    /// How many sidecar indexes this store has written (for tests and benchmarks).
    pub fn index_build_count(&self) -> u64 {
        self.lock_state().index_builds
    }

    /// Is a valid sidecar index in use for the file as it is now? Opens it if there is
    /// one; `false` when indexes are off, the file is missing, or the index is stale.
    fn sidecar(&self, st: &mut State) -> Result<bool, StoreError> {
        let Some(min) = self.index_min_bytes else {
            return Ok(false);
        };
        let stamp = self.stat()?;
        // Missing, or too small to have an index: no file to look for.
        if !matches!(stamp, Stamp::File { len, .. } if len >= min) {
            st.index = None;
            return Ok(false);
        }
        if st.index.as_ref().is_some_and(|ix| ix.stamp() == stamp) {
            return Ok(true);
        }
        st.index = index::Sidecar::open(&self.index_path, &self.path, stamp);
        Ok(st.index.is_some())
    }

    /// A lookup: through the sidecar index when it is valid (`via_index` answers `None`
    /// when it finds the index does not match the file after all), else on the parsed
    /// document.
    fn lookup<R>(
        &self,
        via_index: impl FnOnce(&index::Sidecar) -> Result<Option<R>, StoreError>,
        via_mem: impl FnOnce(&MemoryStore) -> Result<R, StoreError>,
    ) -> Result<R, StoreError> {
        let mut st = self.lock_state();
        if self.sidecar(&mut st)? {
            if let Some(ix) = st.index.as_ref() {
                if let Some(r) = via_index(ix)? {
                    return Ok(r);
                }
            }
            tracing::debug!(path = %self.index_path.display(), "the sidecar index does not match the file; reading the file");
            st.index = None;
        }
        self.sync(&mut st, false)?;
        via_mem(&st.mem)
    }

    /// The clock that expires access tokens and stamps rotated refresh tokens.
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = Arc::clone(&clock);
        let st = self.state.get_mut().unwrap_or_else(|e| e.into_inner());
        st.mem = MemoryStore::from_document(st.mem.snapshot()).with_clock(clock);
        self
    }

    /// How long a change waits for another program's lock before failing (default 10 s).
    pub fn with_lock_timeout(mut self, timeout: Duration) -> Self {
        self.lock_timeout = timeout;
        self
    }

    /// The cache file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The lock file msal-extensions uses: `<file>.lockfile`.
    pub fn lock_path(&self) -> &Path {
        &self.lock_path
    }

    /// The whole cache as it is in the file now.
    pub fn snapshot(&self) -> Result<MsalCacheDocument, StoreError> {
        Ok(self.fresh()?.mem.snapshot())
    }

    /// Changes the document under the lock and writes it back (one atomic replacement),
    /// whatever `change` did. For imports, exports and repairs that go beyond
    /// [`TokenStore`]'s operations.
    pub fn update<R>(
        &self,
        change: impl FnOnce(&mut MsalCacheDocument) -> R,
    ) -> Result<R, StoreError> {
        self.change(|st| {
            let mut doc = st.mem.snapshot();
            let r = change(&mut doc);
            st.mem = MemoryStore::from_document(doc).with_clock(Arc::clone(&self.clock));
            Ok((true, r))
        })
    }

    /// How many times the file has been parsed by this store (for tests and benchmarks).
    pub fn parse_count(&self) -> u64 {
        self.lock_state().parses
    }

    fn lock_state(&self) -> MutexGuard<'_, State> {
        // Every change to the state is made whole (or `seen` is cleared first), so a
        // poisoned lock still guards a usable state.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The state, brought up to date with the file.
    fn fresh(&self) -> Result<MutexGuard<'_, State>, StoreError> {
        let mut st = self.lock_state();
        self.sync(&mut st, false)?;
        Ok(st)
    }

    /// Lock, bring up to date, apply `f` (which says whether it changed anything), write
    /// the file if it did, unlock.
    fn change<R>(
        &self,
        f: impl FnOnce(&mut State) -> Result<(bool, R), StoreError>,
    ) -> Result<R, StoreError> {
        let mut st = self.lock_state();
        let _lock = FileLock::acquire(&self.lock_path, self.lock_timeout)?;
        self.sync(&mut st, true)?;
        // Until the file is written, the memory may differ from it.
        let seen = st.seen.take();
        let (changed, r) = f(&mut st)?;
        if !changed {
            st.seen = seen;
            return Ok(r);
        }
        let text = st.mem.to_msal_json();
        let checked_at = nanos(SystemTime::now());
        let stamp = self.persist(text.as_bytes())?;
        st.seen = Some(Seen {
            stamp,
            digest: Some(Sha256::digest(text.as_bytes()).into()),
            checked_at,
        });
        tracing::debug!(path = %self.path.display(), bytes = text.len(), "MSAL token cache written");
        Ok(r)
    }

    fn stat(&self) -> Result<Stamp, StoreError> {
        match fs::metadata(&self.path) {
            Ok(m) => Ok(stamp_of(&m)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Stamp::Missing),
            Err(e) => Err(self.io_err("cannot read", e)),
        }
    }

    fn io_err(&self, what: &str, e: io::Error) -> StoreError {
        StoreError::Io(format!(
            "{what} the MSAL token cache {}: {e}",
            self.path.display()
        ))
    }

    /// Brings `st` up to date with the file. `locked`: this process holds the file lock,
    /// so the file is complete and a file that does not parse is an error.
    fn sync(&self, st: &mut State, locked: bool) -> Result<(), StoreError> {
        if let Some(seen) = st.seen {
            if seen.stamp == self.stat()? && !seen.racy() {
                return Ok(());
            }
        }
        let known = st.seen.and_then(|s| s.digest);
        let checked_at = nanos(SystemTime::now());
        let found = match self.read_file(known, locked)? {
            Found::Unclear => {
                debug_assert!(!locked);
                let _lock = FileLock::acquire(&self.lock_path, self.lock_timeout)?;
                self.read_file(known, true)?
            }
            found => found,
        };
        match found {
            Found::Missing => {
                if !matches!(
                    st.seen,
                    Some(Seen {
                        stamp: Stamp::Missing,
                        ..
                    })
                ) {
                    st.mem = MemoryStore::new().with_clock(Arc::clone(&self.clock));
                }
                st.seen = Some(Seen {
                    stamp: Stamp::Missing,
                    digest: None,
                    checked_at,
                });
            }
            Found::Same { stamp } => {
                st.seen = Some(Seen {
                    stamp,
                    digest: known,
                    checked_at,
                });
            }
            Found::Parsed {
                stamp,
                digest,
                doc,
                text,
            } => {
                // A big file that is old enough for its stamp to be trusted gets a sidecar
                // index, so that later processes need not parse it.
                // (Not under the lock: a writer is about to change the file anyway.)
                if !locked
                    && self
                        .index_min_bytes
                        .is_some_and(|min| text.len() as u64 >= min)
                    && !(Seen {
                        stamp,
                        digest: None,
                        checked_at,
                    })
                    .racy()
                {
                    st.index = None;
                    match index::build(&self.index_path, &text, &doc, stamp) {
                        Ok(()) => {
                            st.index_builds += 1;
                            tracing::debug!(path = %self.index_path.display(), "sidecar index written");
                        }
                        Err(e) => {
                            tracing::debug!(error = %e, "no sidecar index for the MSAL token cache")
                        }
                    }
                }
                drop(text);
                st.mem = MemoryStore::from_document(*doc).with_clock(Arc::clone(&self.clock));
                st.parses += 1;
                st.seen = Some(Seen {
                    stamp,
                    digest: Some(digest),
                    checked_at,
                });
                tracing::debug!(path = %self.path.display(), "MSAL token cache (re)loaded");
            }
            Found::Unclear => unreachable!("a locked read is never unclear"),
        }
        Ok(())
    }

    /// Reads the file once. Without the lock, anything but a clean read is `Unclear`.
    fn read_file(&self, known: Option<[u8; 32]>, locked: bool) -> Result<Found, StoreError> {
        let mut f = match File::open(&self.path) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Found::Missing),
            Err(e) => return Err(self.io_err("cannot open", e)),
        };
        let before = f.metadata().map_err(|e| self.io_err("cannot read", e))?;
        if before.is_dir() {
            return Err(StoreError::Io(format!(
                "the MSAL token cache {} is a directory",
                self.path.display()
            )));
        }
        let mut bytes = Vec::with_capacity(before.len() as usize + 1);
        f.read_to_end(&mut bytes)
            .map_err(|e| self.io_err("cannot read", e))?;
        let after = f.metadata().map_err(|e| self.io_err("cannot read", e))?;
        let stamp = stamp_of(&after);
        if !locked && (stamp_of(&before) != stamp || bytes.len() as u64 != after.len()) {
            return Ok(Found::Unclear);
        }
        let digest: [u8; 32] = Sha256::digest(&bytes).into();
        if known == Some(digest) {
            return Ok(Found::Same { stamp });
        }
        let not_a_cache = |detail: String| {
            StoreError::Format(format!(
                "{} is not a usable MSAL token cache ({detail}); it was left untouched",
                self.path.display()
            ))
        };
        let text = match String::from_utf8(bytes) {
            Ok(t) => t,
            Err(_) if !locked => return Ok(Found::Unclear),
            Err(_) => return Err(not_a_cache("it is not UTF-8 text".into())),
        };
        if !locked && text.trim().is_empty() {
            // MSAL Python truncates before it writes: only the lock tells "empty" apart.
            return Ok(Found::Unclear);
        }
        match text.parse::<MsalCacheDocument>() {
            Ok(doc) => Ok(Found::Parsed {
                stamp,
                digest,
                doc: Box::new(doc),
                text,
            }),
            Err(_) if !locked => Ok(Found::Unclear),
            Err(e) => Err(not_a_cache(e.to_string())),
        }
    }

    /// Replaces the file with `content` ([`fsutil::replace_file`], creating its folder
    /// 0700 if needed). Returns the new file's stamp.
    fn persist(&self, content: &[u8]) -> Result<Stamp, StoreError> {
        let err = |what: &str, e: io::Error| self.io_err(what, e);
        // Replace a symlink's target, not the symlink.
        let target = match fs::symlink_metadata(&self.path) {
            Ok(m) if m.file_type().is_symlink() => {
                fs::canonicalize(&self.path).map_err(|e| err("cannot resolve the symlink to", e))?
            }
            _ => self.path.clone(),
        };
        fsutil::create_parent_dir(&target).map_err(|e| err("cannot create the directory of", e))?;
        let written = fsutil::replace_file(&target, content).map_err(|e| err("cannot write", e))?;
        let m = fs::metadata(&written).map_err(|e| err("cannot read", e))?;
        Ok(stamp_of(&m))
    }
}

impl TokenStore for MsalFileStore {
    fn describe(&self) -> String {
        format!(
            "MSAL token cache file {} (MSAL Python's format, shared with MSAL Python and Azure CLI; not encrypted)",
            self.path.display()
        )
    }

    fn accounts(&self) -> Result<Vec<AccountEntry>, StoreError> {
        self.lookup(|ix| ix.accounts(), |m| m.accounts())
    }

    fn access_tokens(&self, q: &CredentialQuery<'_>) -> Result<Vec<AccessTokenEntry>, StoreError> {
        self.lookup(|ix| ix.access_tokens(q), |m| m.access_tokens(q))
    }

    fn find_access_token(
        &self,
        q: &CredentialQuery<'_>,
        scopes: &ScopeSet,
        valid_after: UnixTime,
    ) -> Result<Option<AccessTokenEntry>, StoreError> {
        self.lookup(
            |ix| ix.find_access_token(q, scopes, valid_after),
            |m| m.find_access_token(q, scopes, valid_after),
        )
    }

    fn credential_holders(
        &self,
        environments: &[String],
        client_id: &str,
        family_id: Option<&str>,
    ) -> Result<HashSet<String>, StoreError> {
        self.lookup(
            |ix| ix.credential_holders(environments, client_id, family_id),
            |m| m.credential_holders(environments, client_id, family_id),
        )
    }

    fn holds_credentials(
        &self,
        q: &CredentialQuery<'_>,
        family_id: Option<&str>,
    ) -> Result<bool, StoreError> {
        self.lookup(
            |ix| ix.holds_credentials(q, family_id),
            |m| m.holds_credentials(q, family_id),
        )
    }

    fn refresh_tokens(
        &self,
        q: &CredentialQuery<'_>,
        family_id: Option<&str>,
    ) -> Result<Vec<RefreshTokenEntry>, StoreError> {
        self.lookup(
            |ix| ix.refresh_tokens(q, family_id),
            |m| m.refresh_tokens(q, family_id),
        )
    }

    fn id_token(&self, q: &CredentialQuery<'_>) -> Result<Option<IdTokenEntry>, StoreError> {
        self.lookup(|ix| ix.id_token(q), |m| m.id_token(q))
    }

    fn app_metadata(
        &self,
        environments: &[String],
        client_id: &str,
    ) -> Result<Option<AppMetadataEntry>, StoreError> {
        self.lookup(
            |ix| ix.app_metadata(environments, client_id),
            |m| m.app_metadata(environments, client_id),
        )
    }

    fn write(&self, w: TokenWrite) -> Result<(), StoreError> {
        let empty = w.access_token.is_none()
            && w.refresh_token.is_none()
            && w.id_token.is_none()
            && w.account.is_none()
            && w.app_metadata.is_none()
            && w.rotated_refresh_token.is_none();
        if empty {
            return Ok(());
        }
        self.change(|st| st.mem.write(w).map(|()| (true, ())))
    }

    fn remove_account(
        &self,
        home_account_id: &str,
        environments: &[String],
    ) -> Result<usize, StoreError> {
        self.change(|st| {
            let n = st.mem.remove_account(home_account_id, environments)?;
            Ok((n > 0, n))
        })
    }
}

#[cfg(test)]
pub(super) mod tests {
    use std::time::Instant;

    use super::*;
    use crate::env::FixedClock;
    use crate::secret::{AccessToken, RefreshToken};
    use serde_json::Map;

    pub(super) const MSAL: &str = include_str!("../testdata/msal_python_cache.json");
    pub(super) const FOREIGN: &str = include_str!("../testdata/msal_python_cache_foreign.json");
    /// The fixtures' time: their access tokens are still valid.
    const FIXTURE_NOW: i64 = 1_700_000_100;

    pub(super) fn account(home: &str) -> AccountEntry {
        AccountEntry {
            home_account_id: home.into(),
            environment: "login.example.test".into(),
            realm: "tenant".into(),
            local_account_id: home.into(),
            username: format!("{home}@example.test"),
            authority_type: "MSSTS".into(),
            account_source: Some("authorization_code".into()),
            name: None,
            extra: Map::new(),
        }
    }

    pub(super) fn access_token(home: &str, secret: &str, expires_on: i64) -> AccessTokenEntry {
        AccessTokenEntry {
            home_account_id: home.into(),
            environment: "login.example.test".into(),
            client_id: "client".into(),
            realm: "tenant".into(),
            target: "api:read".into(),
            secret: AccessToken::new(secret.into()),
            token_type: "Bearer".into(),
            cached_at: expires_on - 3600,
            expires_on,
            extended_expires_on: Some(expires_on),
            refresh_on: None,
            extra: Map::new(),
        }
    }

    pub(super) fn query<'a>(home: &'a str, envs: &'a [String]) -> CredentialQuery<'a> {
        CredentialQuery {
            home_account_id: home,
            environments: envs,
            client_id: "client",
            realm: None,
        }
    }

    pub(super) fn envs() -> Vec<String> {
        vec!["login.example.test".into()]
    }

    pub(super) fn homes(store: &dyn TokenStore) -> Vec<String> {
        store
            .accounts()
            .unwrap()
            .into_iter()
            .map(|a| a.home_account_id)
            .collect()
    }

    pub(super) fn write_account(store: &MsalFileStore, home: &str) {
        store
            .write(TokenWrite {
                account: Some(account(home)),
                ..Default::default()
            })
            .unwrap();
    }

    #[test]
    fn a_missing_file_is_an_empty_cache_created_0600_by_the_first_write() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/dir/msal_token_cache.json");
        let store = MsalFileStore::open(&path).unwrap();
        assert!(store.accounts().unwrap().is_empty());
        assert!(!path.exists(), "reading creates nothing");
        write_account(&store, "alice");
        let text = fs::read_to_string(&path).unwrap();
        let doc: MsalCacheDocument = text.parse().unwrap();
        assert_eq!(doc.accounts.len(), 1);
        assert_eq!(text, doc.to_string_pretty(), "MSAL Python's layout");
        assert!(text
            .starts_with("{\n    \"Account\": {\n        \"alice-login.example.test-tenant\": {"));
        assert!(
            !store.lock_path().exists(),
            "the lock file is deleted after the write"
        );
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode(&path), 0o600);
            assert_eq!(mode(path.parent().unwrap()), 0o700);
        }
        let leftovers: Vec<_> = fs::read_dir(path.parent().unwrap())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(
            leftovers,
            ["msal_token_cache.json"],
            "no temporary file left"
        );
    }

    #[test]
    fn msal_pythons_file_is_served_and_everything_unknown_survives_a_write() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cache.json");
        fs::write(&path, FOREIGN).unwrap();
        let store = MsalFileStore::open(&path)
            .unwrap()
            .with_clock(Arc::new(FixedClock::new(FIXTURE_NOW)));
        let original: MsalCacheDocument = FOREIGN.parse().unwrap();
        assert_eq!(store.accounts().unwrap().len(), original.accounts.len());
        let alice = "a11ce000-0000-4000-8000-00000000a11c.11111111-aaaa-4aaa-aaaa-111111111111";
        let envs = vec!["login.microsoftonline.com".to_string()];
        let q = CredentialQuery {
            home_account_id: alice,
            environments: &envs,
            client_id: "04b07795-8ddb-461a-bbee-02f9e1bf7b46",
            realm: Some("11111111-aaaa-4aaa-aaaa-111111111111"),
        };
        let ats = store.access_tokens(&q).unwrap();
        assert!(ats
            .iter()
            .any(|a| a.secret.secret() == "at-alice-cli-graph-secret"));

        write_account(&store, "zed");
        let mut after: MsalCacheDocument = fs::read_to_string(&path).unwrap().parse().unwrap();
        assert_eq!(
            after.unknown_sections().keys().collect::<Vec<_>>(),
            ["FutureSection"]
        );
        assert!(after.accounts.remove("zed-login.example.test-tenant"));
        assert_eq!(
            after.to_string_pretty(),
            FOREIGN,
            "apart from the new entry, the file is byte for byte what MSAL Python wrote"
        );
    }

    #[test]
    fn a_file_that_is_not_an_msal_cache_is_an_error_naming_it_and_is_left_alone() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cache.json");
        fs::write(&path, "{\"AccessToken\": [1, 2").unwrap();
        let err = MsalFileStore::open(&path).unwrap_err().to_string();
        assert!(err.contains(&path.display().to_string()), "{err}");
        assert!(err.contains("not valid JSON"), "{err}");
        assert_eq!(
            fs::read_to_string(&path).unwrap(),
            "{\"AccessToken\": [1, 2"
        );

        // Corrupted after opening: reads and writes fail, the file stays as it is.
        fs::write(&path, MSAL).unwrap();
        let store = MsalFileStore::open(&path).unwrap();
        fs::write(&path, "[]").unwrap();
        let err = store.accounts().unwrap_err().to_string();
        assert!(
            err.contains("not a JSON object") && err.contains("cache.json"),
            "{err}"
        );
        let err = store
            .write(TokenWrite {
                account: Some(account("x")),
                ..Default::default()
            })
            .unwrap_err();
        assert!(err.to_string().contains("left untouched"), "{err}");
        assert_eq!(fs::read_to_string(&path).unwrap(), "[]");
        assert!(!store.lock_path().exists());

        fs::create_dir(dir.path().join("d")).unwrap();
        let err = MsalFileStore::open(&dir.path().join("d")).unwrap_err();
        assert!(err.to_string().contains("directory"), "{err}");
    }

    #[test]
    fn an_empty_file_is_an_empty_cache() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cache.json");
        fs::write(&path, "").unwrap();
        let store = MsalFileStore::open(&path).unwrap();
        assert!(store.accounts().unwrap().is_empty());
        write_account(&store, "alice");
        assert_eq!(homes(&store), ["alice"]);
    }

    #[test]
    fn an_unchanged_file_is_parsed_once_and_a_changed_one_again() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cache.json");
        fs::write(&path, MSAL).unwrap();
        let store = MsalFileStore::open(&path).unwrap();
        assert_eq!(store.parse_count(), 1);
        for _ in 0..20 {
            store.accounts().unwrap();
            store.access_tokens(&query("alice", &envs())).unwrap();
        }
        assert_eq!(
            store.parse_count(),
            1,
            "no re-parse while the file is unchanged"
        );

        // Same content rewritten (another program saving without changes): hashed, not parsed.
        fs::write(&path, MSAL).unwrap();
        store.accounts().unwrap();
        assert_eq!(store.parse_count(), 1);

        // Another writer changes it: seen by the next read.
        let other = MsalFileStore::open(&path).unwrap();
        write_account(&other, "from-other");
        assert!(homes(&store).contains(&"from-other".to_string()));
        assert_eq!(store.parse_count(), 2);

        // Our own write is not read back.
        write_account(&store, "mine");
        let before = store.parse_count();
        assert!(homes(&store).contains(&"mine".to_string()));
        assert_eq!(store.parse_count(), before);
    }

    #[test]
    fn writes_merge_with_what_other_writers_wrote() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cache.json");
        let a = MsalFileStore::open(&path).unwrap();
        let b = MsalFileStore::open(&path).unwrap();
        write_account(&a, "a1");
        write_account(&b, "b1"); // b never read a1, but re-reads under the lock
        write_account(&a, "a2");
        assert_eq!(homes(&b), ["a1", "a2", "b1"]);
        assert_eq!(b.remove_account("a1", &envs()).unwrap(), 1);
        assert_eq!(homes(&a), ["a2", "b1"]);
    }

    #[test]
    fn concurrent_writers_in_threads_lose_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cache.json");
        std::thread::scope(|s| {
            for t in 0..4 {
                let path = path.clone();
                s.spawn(move || {
                    let store = MsalFileStore::open(&path).unwrap();
                    for i in 0..15 {
                        let home = format!("t{t}-{i}");
                        store
                            .write(TokenWrite {
                                account: Some(account(&home)),
                                access_token: Some(access_token(&home, &home, i64::MAX / 2)),
                                ..Default::default()
                            })
                            .unwrap();
                    }
                });
            }
        });
        let doc: MsalCacheDocument = fs::read_to_string(&path).unwrap().parse().unwrap();
        assert_eq!((doc.accounts.len(), doc.access_tokens.len()), (60, 60));
    }

    #[test]
    fn rotation_and_sign_out_change_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cache.json");
        let store = MsalFileStore::open(&path).unwrap();
        let rt = RefreshTokenEntry {
            home_account_id: "alice".into(),
            environment: "login.example.test".into(),
            client_id: "client".into(),
            target: "api:read".into(),
            secret: RefreshToken::new("rt-1".into()),
            family_id: None,
            last_modification_time: Some(1),
            extra: Map::new(),
        };
        let key = super::super::refresh_token_key(&rt);
        store
            .write(TokenWrite {
                account: Some(account("alice")),
                refresh_token: Some(rt),
                ..Default::default()
            })
            .unwrap();
        store
            .write(TokenWrite {
                rotated_refresh_token: Some((key.clone(), RefreshToken::new("rt-2".into()))),
                ..Default::default()
            })
            .unwrap();
        let doc: MsalCacheDocument = fs::read_to_string(&path).unwrap().parse().unwrap();
        assert_eq!(
            doc.refresh_tokens.get(&key).unwrap().secret.secret(),
            "rt-2"
        );
        let again = MsalFileStore::open(&path).unwrap();
        assert_eq!(
            again
                .refresh_tokens(&query("alice", &envs()), None)
                .unwrap()[0]
                .secret
                .secret(),
            "rt-2"
        );
        assert_eq!(store.remove_account("alice", &envs()).unwrap(), 2);
        let doc: MsalCacheDocument = fs::read_to_string(&path).unwrap().parse().unwrap();
        assert!(doc.accounts.is_empty() && doc.refresh_tokens.is_empty());
        assert!(again.accounts().unwrap().is_empty());
    }

    // No lock or temporary file is followed through a link.

    /// A file outside the cache that a planted link points at, and its bytes.
    #[cfg(unix)]
    pub(super) fn victim(dir: &Path) -> (PathBuf, Vec<u8>) {
        let path = dir.join("victim.txt");
        let bytes = b"precious: never to be truncated or overwritten\n".to_vec();
        fs::write(&path, &bytes).unwrap();
        (path, bytes)
    }

    pub(super) fn try_write_account(store: &MsalFileStore, home: &str) -> Result<(), StoreError> {
        store.write(TokenWrite {
            account: Some(account(home)),
            ..Default::default()
        })
    }

    /// Makes the file's timestamp a minute old (as a cache between sign-ins): a file
    /// modified too recently gets no index.
    pub(super) fn age(path: &Path) {
        File::options()
            .write(true)
            .open(path)
            .unwrap()
            .set_modified(SystemTime::now() - Duration::from_secs(60))
            .unwrap();
    }

    /// The temporary files of the cache and of its sidecar index have random names and
    /// are created exclusively: links planted at the names this store used to choose
    /// (pid and a counter), and at the index's own path, redirect no write.
    #[cfg(unix)]
    #[test]
    fn planted_links_at_temporary_file_names_redirect_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let (victim, bytes) = victim(dir.path());
        let path = dir.path().join("cache.json");
        fs::write(&path, MSAL).unwrap();
        age(&path);
        let pid = std::process::id();
        let mut planted = Vec::new();
        for n in 0..2048 {
            for name in [
                format!(".cache.json.tessera-{pid}-{n}.tmp"),
                format!(".cache.json{INDEX_SUFFIX}.{pid}-{n}.tmp"),
            ] {
                let link = dir.path().join(name);
                std::os::unix::fs::symlink(&victim, &link).unwrap();
                planted.push(link);
            }
        }
        let index_path = sibling(&path, INDEX_SUFFIX);
        std::os::unix::fs::symlink(&victim, &index_path).unwrap();

        let store = MsalFileStore::open_with_index(&path, Some(0)).unwrap();
        assert_eq!(store.index_build_count(), 1, "the index was written");
        assert!(fs::symlink_metadata(&index_path).unwrap().is_file());
        write_account(&store, "zed");
        let doc: MsalCacheDocument = fs::read_to_string(&path).unwrap().parse().unwrap();
        assert!(doc.accounts.get("zed-login.example.test-tenant").is_some());
        assert!(fs::symlink_metadata(&path).unwrap().is_file());

        assert_eq!(fs::read(&victim).unwrap(), bytes);
        for link in &planted {
            assert_eq!(fs::read_link(link).unwrap(), victim, "left alone");
        }
        // The one way a temporary file is made refuses an existing link.
        let e = fsutil::create_new(&planted[0]).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::AlreadyExists);
        assert_eq!(fs::read(&victim).unwrap(), bytes);
    }

    #[cfg(unix)]
    #[test]
    fn a_symlinked_cache_stays_a_symlink() {
        let dir = tempfile::tempdir().unwrap();
        let real = dir.path().join("real.json");
        let link = dir.path().join("link.json");
        fs::write(&real, MSAL).unwrap();
        std::os::unix::fs::symlink(&real, &link).unwrap();
        let store = MsalFileStore::open(&link).unwrap();
        write_account(&store, "zed");
        assert!(fs::symlink_metadata(&link)
            .unwrap()
            .file_type()
            .is_symlink());
        let doc: MsalCacheDocument = fs::read_to_string(&real).unwrap().parse().unwrap();
        assert!(doc.accounts.get("zed-login.example.test-tenant").is_some());
    }

    /// A cache the size of a busy Azure CLI's (about 23 MB): parsed once, then served
    /// with one `stat` per lookup. Prints timings; run with
    /// `cargo test -p tessera-core --release --lib large_cache -- --ignored --nocapture`.
    #[test]
    #[ignore = "timing; run by hand in release mode"]
    fn large_cache_is_parsed_once_and_served_fast() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cache.json");
        let mut doc = MsalCacheDocument::default();
        let jwt = "x".repeat(2400);
        for i in 0..2200 {
            let home = format!("user-{i:05}.tenant");
            doc.accounts.insert(account(&home));
            for scope in ["api:read", "graph:mail", "arm:manage"] {
                let mut at = access_token(&home, &format!("{jwt}{i}"), 4_000_000_000);
                at.target = scope.into();
                doc.access_tokens.insert(at);
            }
            doc.refresh_tokens.insert(RefreshTokenEntry {
                home_account_id: home.clone(),
                environment: "login.example.test".into(),
                client_id: "client".into(),
                target: "api:read".into(),
                secret: RefreshToken::new(format!("{}{i}", &jwt[..900])),
                family_id: Some("1".into()),
                last_modification_time: Some(1),
                extra: Map::new(),
            });
        }
        let text = doc.to_string_pretty();
        fs::write(&path, &text).unwrap();
        // Old enough that its timestamp is trustworthy (as a cache between sign-ins).
        let old = SystemTime::now() - Duration::from_secs(60);
        File::options()
            .write(true)
            .open(&path)
            .unwrap()
            .set_modified(old)
            .unwrap();
        let mb = text.len() as f64 / 1e6;

        let t = Instant::now();
        let store = MsalFileStore::open(&path).unwrap();
        let open = t.elapsed();
        let home = "user-01234.tenant";
        let envs = envs();
        let q = query(home, &envs);
        let t = Instant::now();
        let n = 200;
        for _ in 0..n {
            let ats = store.access_tokens(&q).unwrap();
            assert_eq!(ats.len(), 3);
            assert_eq!(store.refresh_tokens(&q, Some("1")).unwrap().len(), 1);
        }
        let lookup = t.elapsed() / n;
        assert_eq!(store.parse_count(), 1, "never re-parsed");
        let t = Instant::now();
        write_account(&store, "new-user");
        let write = t.elapsed();
        eprintln!(
            "{mb:.1} MB: open+parse {open:?}, silent lookup (ATs + RTs of one account) {lookup:?}, \
             one write {write:?}"
        );
    }

    #[test]
    fn debug_and_describe_show_no_secret() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cache.json");
        fs::write(&path, MSAL).unwrap();
        let store = MsalFileStore::open(&path).unwrap();
        let shown = format!("{store:?} {}", store.describe());
        assert!(shown.contains("cache.json"));
        for secret in ["at-alice", "rt-alice", "at-bob", "eyJ"] {
            assert!(!shown.contains(secret), "{shown}");
        }
    }
}
