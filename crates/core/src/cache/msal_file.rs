//! [`MsalFileStore`]: an MSAL Python token cache file (Azure CLI's
//! `~/.azure/msal_token_cache.json`, an msal-extensions `FilePersistence`) used directly
//! as Tessera's token store, shared with the programs that already use it.
//!
//! # The file
//! Read and written as MSAL Python's `SerializableTokenCache.serialize()` writes it, through
//! [`MsalCacheDocument`]: unknown sections, fields and entries survive every write. The
//! lookups and write rules are [`MemoryStore`]'s (MSAL's semantics, see [`super`]). A
//! missing file is an empty cache; it is created (mode 0600, directories 0700) by the
//! first write. A file that is not an MSAL cache is an error naming the file, and is
//! never overwritten.
//!
//! # Sharing it: what msal-extensions 1.3.1 does, and what this store does
//! `PersistedTokenCache` (msal-extensions) guards every change with `CrossPlatLock` on
//! `<file>.lockfile`, next to the file:
//! 1. it creates the lock file exclusively (`open(path, "x")`), retrying every 0.25 s for
//!    up to 5 s, and goes on anyway when that fails (a stale lock file);
//! 2. with the `portalocker` extra installed (Azure CLI has it), `portalocker.Lock`
//!    opens the lock file (`ab+`) and takes `fcntl.flock(LOCK_EX | LOCK_NB)`, retrying
//!    every 0.25 s for up to 5 s (then `LockError`); without it, step 1 is the lock and
//!    its timeout is an error;
//! 3. it truncates the lock file and writes `"{pid} {sys.argv[0]}"` into it;
//! 4. inside the lock: reload the file if its mtime is newer than the last load, apply
//!    the change, write the whole file in place (`O_TRUNC`, mode 0600 on creation);
//! 5. it unlocks, closes and deletes the lock file.
//!
//! Reads (`search`) take no lock: they reload when the mtime is newer than the last
//! load, and retry a file that does not parse (a write in progress) 3 times, 0.5 s apart.
//!
//! This store takes the same lock the same way (exclusive creation, then `flock` on that
//! file, then `"{pid} {argv0}"`; 5 s before a lock file is treated as stale, 10 s in all
//! by default), with differences that only make it safer: after `flock` it checks
//! that the lock file it holds is still the one at the path (another process may have
//! deleted it meanwhile) and starts over if not; it deletes the lock file *before*
//! unlocking; it polls every 5–100 ms instead of every 250 ms; and it never follows the
//! lock file through a link (below). Every change is: lock, re-read if the file
//! changed, apply, write a new temporary file in the same directory, set its mtime to
//! the exact current time, fsync, rename it over the file, fsync the directory, unlock.
//! Readers therefore never see half a file written here, and MSAL Python's mtime check
//! always sees the change (its `_last_sync` was taken before it released the lock). A
//! symlinked cache file stays a symlink (its target is replaced). The replacement is
//! mode 0600 even if the old file was more open.
//!
//! **No lock or temporary file is followed through a link.** The lock file is created
//! with `O_EXCL | O_NOFOLLOW`, or (a stale one) opened read-only with `O_NOFOLLOW`, and
//! must be a regular file: a link, directory, FIFO... at its path is refused at once
//! with an error naming it (msal-extensions only creates regular files there). Only a
//! lock file this store created gets the holder line; a stale one is locked and deleted
//! but never truncated or written. The temporary files (of the cache and of the sidecar
//! index) have random names and are created with `O_EXCL | O_NOFOLLOW`; a rename
//! replaces a link at the index's path instead of writing through it.
//!
//! Reads take no lock either, as msal-extensions: a read whose file looks different from
//! the last one (device, inode, length, mtime, ctime) re-reads it; if that read is not
//! clean (the file changed while it was read, is empty, or does not parse: MSAL Python
//! writes in place) it is read again under the lock, where a file that does not parse
//! is an error. While the file is unchanged the parsed document is used as is, so a
//! lookup costs one `stat` (plus the lookup) however big the file. A file modified too
//! recently for its timestamp to tell two writes apart (within 100 ms of the last check,
//! 2 s on file systems with whole-second times) is hashed and compared instead, and
//! re-parsed only if its content changed.

use std::fs::{self, File, Metadata, OpenOptions};
use std::io::{self, Read, Seek, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use sha2::{Digest, Sha256};

use std::collections::HashSet;

use super::memory::MemoryStore;
use super::msal_json::MsalCacheDocument;
use super::{
    AccessTokenEntry, AccountEntry, AppMetadataEntry, CredentialQuery, IdTokenEntry,
    RefreshTokenEntry, TokenStore, TokenWrite,
};
use crate::env::{Clock, SystemClock, UnixTime};
use crate::error::StoreError;
use crate::scopes::ScopeSet;

/// Files at least this big (1 MiB) get a sidecar index by default: smaller ones parse
/// in a few milliseconds.
pub const DEFAULT_INDEX_MIN_BYTES: u64 = 1 << 20;
/// The sidecar index is `<file>` and this.
pub const INDEX_SUFFIX: &str = ".tessera-index";

/// How long to wait for the lock in all, by default.
pub const DEFAULT_LOCK_TIMEOUT: Duration = Duration::from_secs(10);
/// After this long, an existing lock file is taken over with `flock` (msal-extensions' 5 s).
const STALE_LOCK_FILE_AFTER: Duration = Duration::from_secs(5);
const POLL_MIN: Duration = Duration::from_millis(5);
const POLL_MAX: Duration = Duration::from_millis(100);

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

fn sibling(path: &Path, suffix: &str) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(suffix);
    PathBuf::from(s)
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

    /// Replaces the file with `content`: a new temporary file in the same directory
    /// ([`new_temp_file`]), exact mtime, fsync, rename, fsync of the directory. Returns
    /// the new file's stamp.
    fn persist(&self, content: &[u8]) -> Result<Stamp, StoreError> {
        let err = |what: &str, e: io::Error| self.io_err(what, e);
        // Replace a symlink's target, not the symlink.
        let target = match fs::symlink_metadata(&self.path) {
            Ok(m) if m.file_type().is_symlink() => {
                fs::canonicalize(&self.path).map_err(|e| err("cannot resolve the symlink to", e))?
            }
            _ => self.path.clone(),
        };
        let dir = match target.parent() {
            Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
            _ => PathBuf::from("."),
        };
        if !dir.is_dir() {
            create_dir(&dir).map_err(|e| err("cannot create the directory of", e))?;
        }
        let name = target
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "msal_token_cache".into());
        let write_tmp = || -> io::Result<()> {
            let mut tmp = new_temp_file(&dir, &name)?;
            tmp.write_all(content)?;
            // The exact time, not the file system's coarse clock: MSAL Python reloads
            // only when the mtime is newer than its last load.
            tmp.as_file().set_modified(SystemTime::now())?;
            tmp.as_file().sync_all()?;
            // (A failed rename drops, and so deletes, the temporary file.)
            tmp.persist(&target).map(drop).map_err(|e| e.error)
        };
        write_tmp().map_err(|e| err("cannot write", e))?;
        #[cfg(unix)]
        if let Err(e) = File::open(&dir).and_then(|d| d.sync_all()) {
            tracing::debug!(error = %e, "fsync of the cache directory failed");
        }
        let m = fs::metadata(&target).map_err(|e| err("cannot read", e))?;
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

/// msal-extensions' `CrossPlatLock` on `<file>.lockfile`, held until dropped.
///
/// The lock file is never followed through a link and must be a regular file. Only a
/// lock file this process created is written (the holder line); a stale one left by
/// another process is opened read-only, locked and deleted, never truncated or written.
struct FileLock {
    file: File,
    path: PathBuf,
}

impl FileLock {
    fn acquire(path: &Path, timeout: Duration) -> Result<FileLock, StoreError> {
        let start = Instant::now();
        let deadline = start + timeout;
        let stale_at = start + STALE_LOCK_FILE_AFTER.min(timeout);
        let mut poll = POLL_MIN;
        let mut wait = |until: Instant| -> bool {
            let now = Instant::now();
            if now >= until {
                return false;
            }
            std::thread::sleep(poll.min(until - now));
            poll = (poll * 2).min(POLL_MAX);
            true
        };
        let err = |what: &str, e: io::Error| {
            StoreError::Io(format!(
                "cannot {what} the lock file {}: {e}",
                path.display()
            ))
        };
        loop {
            // 1. Create the lock file exclusively (msal-extensions' first step); after
            //    5 s an existing one counts as stale and is opened (read-only) instead.
            let (file, created) = loop {
                match create_new(path) {
                    Ok(f) => break (f, true),
                    Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                        // msal-extensions only ever makes a regular file there.
                        match fs::symlink_metadata(path) {
                            Ok(m) if !m.file_type().is_file() => {
                                return Err(not_a_regular_file(path, &m))
                            }
                            Ok(_) => {}
                            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                            Err(e) => return Err(err("inspect", e)),
                        }
                        if !wait(stale_at) {
                            match open_existing_lock(path) {
                                Ok(f) => break (f, false),
                                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                                Err(e) => {
                                    return Err(match fs::symlink_metadata(path) {
                                        Ok(m) if !m.file_type().is_file() => {
                                            not_a_regular_file(path, &m)
                                        }
                                        _ => err("open", e),
                                    })
                                }
                            }
                        }
                    }
                    Err(e) if e.kind() == io::ErrorKind::NotFound => {
                        // The cache's directory does not exist yet.
                        let dir = path.parent().filter(|d| !d.as_os_str().is_empty());
                        let Some(dir) = dir.filter(|d| !d.is_dir()) else {
                            return Err(err("create", e));
                        };
                        create_dir(dir).map_err(|e| err("create the directory of", e))?;
                    }
                    Err(e) => return Err(err("create", e)),
                }
            };
            // What was opened, not what the path says now.
            let m = file.metadata().map_err(|e| err("inspect", e))?;
            if !m.file_type().is_file() {
                return Err(not_a_regular_file(path, &m));
            }
            // 2. flock it (portalocker's LOCK_EX | LOCK_NB, retried).
            loop {
                match try_flock(&file) {
                    Ok(true) => break,
                    Ok(false) => {
                        if !wait(deadline) {
                            return Err(Self::timed_out(path, timeout, &file));
                        }
                    }
                    Err(e) => return Err(err("lock", e)),
                }
            }
            // 3. Is it still the lock file, or was it deleted while we waited?
            if same_file(&m, path) {
                let mut file = file;
                if created {
                    let holder = format!(
                        "{} {}",
                        std::process::id(),
                        std::env::args_os()
                            .next()
                            .map(|a| a.to_string_lossy().into_owned())
                            .unwrap_or_default()
                    );
                    // Content is informational (msal-extensions writes the same); a
                    // failure to write it does not matter.
                    let _ = file.write_all(holder.as_bytes());
                }
                return Ok(FileLock {
                    file,
                    path: path.to_path_buf(),
                });
            }
            if Instant::now() >= deadline {
                return Err(Self::timed_out(path, timeout, &file));
            }
        }
    }

    fn timed_out(path: &Path, timeout: Duration, file: &File) -> StoreError {
        // The holder line, read from the lock file as opened (never through the path).
        let mut f = file;
        let mut bytes = Vec::new();
        let _ = f
            .seek(io::SeekFrom::Start(0))
            .and_then(|_| f.take(200).read_to_end(&mut bytes));
        let holder = String::from_utf8_lossy(&bytes);
        let holder = match holder.trim() {
            "" => String::new(),
            h => format!(" (it names process {h})"),
        };
        StoreError::Io(format!(
            "the MSAL token cache is locked by another program: the lock file {}{holder} was not \
             released within {} s. If no program is using the cache, delete the lock file.",
            path.display(),
            timeout.as_secs_f32()
        ))
    }
}

/// The error for a lock file that is a link, directory, FIFO... (`m`: its `lstat`/`fstat`).
fn not_a_regular_file(path: &Path, m: &Metadata) -> StoreError {
    let t = m.file_type();
    let what = if t.is_symlink() {
        "a symbolic link"
    } else if t.is_dir() {
        "a directory"
    } else {
        "not a regular file"
    };
    StoreError::Io(format!(
        "refusing the lock file {}: it is {what}, and it is neither followed nor written \
         (msal-extensions only creates regular lock files). Remove it if no program is using \
         the MSAL token cache.",
        path.display()
    ))
}

impl Drop for FileLock {
    fn drop(&mut self) {
        // Delete first, then unlock: a process that was waiting in flock on this file
        // then sees it is gone (and starts over) instead of sharing the lock.
        if let Err(e) = fs::remove_file(&self.path) {
            if e.kind() != io::ErrorKind::NotFound {
                tracing::debug!(error = %e, "cannot delete the lock file");
            }
        }
        unlock(&self.file);
    }
}

/// Creates `path` exclusively, mode 0600. Never through a link: `O_EXCL` refuses any
/// existing entry, a symlink included (`O_NOFOLLOW` says so explicitly).
fn create_new(path: &Path) -> io::Result<File> {
    let mut o = OpenOptions::new();
    o.read(true).write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        o.mode(0o600).custom_flags(libc::O_NOFOLLOW);
    }
    o.open(path)
}

/// A new temporary file `.{name}.tessera-XXXXXX.tmp` in `dir` (random name, created
/// by [`create_new`]: 0600, never through a link), deleted unless persisted.
fn new_temp_file(dir: &Path, name: &str) -> io::Result<tempfile::NamedTempFile> {
    tempfile::Builder::new()
        .prefix(&format!(".{name}.tessera-"))
        .suffix(".tmp")
        .make_in(dir, create_new)
}

/// Opens an existing lock file read-only (it is not ours to write): not through a link
/// (`O_NOFOLLOW`), and without waiting for a writer if it is a FIFO (`O_NONBLOCK`). The
/// caller checks that what it opened is a regular file.
fn open_existing_lock(path: &Path) -> io::Result<File> {
    let mut o = OpenOptions::new();
    o.read(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::custom_flags(&mut o, libc::O_NOFOLLOW | libc::O_NONBLOCK);
    o.open(path)
}

/// Creates a directory and its parents, mode 0700.
fn create_dir(dir: &Path) -> io::Result<()> {
    let mut b = fs::DirBuilder::new();
    b.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut b, 0o700);
    b.create(dir)
}

/// `flock(LOCK_EX | LOCK_NB)`: std's `File::try_lock` is exactly that on Linux, macOS and
/// the BSDs, the lock portalocker takes.
#[cfg(unix)]
fn try_flock(file: &File) -> io::Result<bool> {
    match file.try_lock() {
        Ok(()) => Ok(true),
        Err(std::fs::TryLockError::WouldBlock) => Ok(false),
        Err(std::fs::TryLockError::Error(e)) if e.kind() == io::ErrorKind::Interrupted => Ok(false),
        Err(std::fs::TryLockError::Error(e)) => Err(e),
    }
}

#[cfg(unix)]
fn unlock(file: &File) {
    // Closing the file would release the lock too.
    let _ = file.unlock();
}

/// Is the opened file (`opened`: its metadata) still the one at `path`? (`lstat`: a link
/// put there since is not the same file.)
#[cfg(unix)]
fn same_file(opened: &Metadata, path: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    fs::symlink_metadata(path).is_ok_and(|m| m.dev() == opened.dev() && m.ino() == opened.ino())
}

// Elsewhere the exclusive creation of the lock file is the lock (msal-extensions without
// portalocker).
#[cfg(not(unix))]
fn try_flock(_file: &File) -> io::Result<bool> {
    Ok(true)
}

#[cfg(not(unix))]
fn unlock(_file: &File) {}

#[cfg(not(unix))]
fn same_file(_opened: &Metadata, path: &Path) -> bool {
    fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_file())
}

/// The sidecar index, `<file>.tessera-index`: what lookups need of a big MSAL cache,
/// so that a process can answer them without reading and parsing the whole file (28 MB
/// with 10,000 access tokens: about 30 ms to read, 150 ms to parse).
///
/// - It is an SQLite file holding, for every typed entry of the cache, its key, the
///   fields lookups select by (account, environment lower-cased, client, realm, target,
///   expiry, family, last modification), and the byte range of the entry in the cache
///   file; the non-secret Account and AppMetadata entries are copied whole. **No secret
///   is in it**: a lookup reads the chosen entries' bytes from the cache file itself and
///   parses them as the whole-file parse would ([`MsalEntity::from_msal_map`]).
/// - It describes one exact version of the file: the file's device, inode, length,
///   modification and change times (nanoseconds) are stored in it and compared with the
///   file's on every lookup; any difference makes it stale, and a stale index is never
///   used (the file is parsed, and a new index written). It is written only after a
///   clean parse of a file whose modification time is old enough to tell two writes
///   apart (see `Seen::racy`), so a change to the file always changes what is compared.
///   The change time cannot be set by programs, so even a writer that restores the
///   length and modification time is caught.
/// - Every entry read through it is checked against it (account, environment, client,
///   and realm and target for access tokens): a mismatch (the file changed between the
///   check and the read) abandons the index for that lookup. After reading, the open
///   file's stamp is checked again.
/// - It is written to a new temporary file (mode 0600, random name, never through a
///   link) and renamed into place, so readers see a whole index or none; it is never
///   changed after that. Writers of the cache
///   file need not know about it.
mod index {
    use std::collections::{HashMap, HashSet};
    use std::fs::File;
    use std::path::Path;

    use rusqlite::{params, Connection, OpenFlags};
    use serde_json::{Map, Value};

    use super::{stamp_of, Stamp};
    use crate::cache::msal_json::{MsalCacheDocument, MsalEntity};
    use crate::cache::sqlite::{credential_holders_in, holds_credentials_in, HolderQueries};
    use crate::cache::{
        env_rank, ext_cache_key, target_covers, AccessTokenEntry, AccountEntry, AppMetadataEntry,
        CredentialQuery, IdTokenEntry, RefreshTokenEntry,
    };
    use crate::env::UnixTime;
    use crate::error::StoreError;
    use crate::scopes::ScopeSet;

    /// Bumped when the layout changes: an index of another format is stale.
    const FORMAT: i64 = 1;

    /// Each table is clustered by what its lookups select by (`WITHOUT ROWID`), and keys
    /// are replaced by `rank`, their position in key order (lookups order by key, and
    /// never return one).
    const SCHEMA: &str = "
    CREATE TABLE meta (name TEXT PRIMARY KEY NOT NULL, value TEXT NOT NULL);
    CREATE TABLE at (home TEXT NOT NULL, client TEXT NOT NULL, rank INTEGER NOT NULL,
        realm TEXT NOT NULL, env TEXT NOT NULL, target TEXT NOT NULL,
        expires_on INTEGER NOT NULL, ext INTEGER NOT NULL, start INTEGER NOT NULL,
        len INTEGER NOT NULL, PRIMARY KEY (home, client, rank)) WITHOUT ROWID;
    CREATE TABLE rt (home TEXT NOT NULL, rank INTEGER NOT NULL, env TEXT NOT NULL,
        client TEXT NOT NULL, family TEXT, lmt INTEGER, start INTEGER NOT NULL,
        len INTEGER NOT NULL, PRIMARY KEY (home, rank)) WITHOUT ROWID;
    CREATE TABLE idt (home TEXT NOT NULL, client TEXT NOT NULL, rank INTEGER NOT NULL,
        env TEXT NOT NULL, realm TEXT NOT NULL, start INTEGER NOT NULL,
        len INTEGER NOT NULL, PRIMARY KEY (home, client, rank)) WITHOUT ROWID;
    CREATE TABLE account (rank INTEGER PRIMARY KEY NOT NULL, home TEXT NOT NULL,
        env TEXT NOT NULL, json TEXT NOT NULL) WITHOUT ROWID;
    CREATE TABLE app_metadata (rank INTEGER PRIMARY KEY NOT NULL, client TEXT NOT NULL,
        env TEXT NOT NULL, json TEXT NOT NULL) WITHOUT ROWID;
    ";

    fn db_err(e: rusqlite::Error) -> StoreError {
        StoreError::Database(format!("sidecar index: {e}"))
    }

    /// The index's tables for [`credential_holders_in`] and [`holds_credentials_in`].
    const HOLDER_QUERIES: HolderQueries = HolderQueries {
        refresh_by_client: "SELECT home, env FROM rt WHERE client = ?1",
        refresh_by_family: "SELECT home, env FROM rt WHERE family = ?1",
        id_by_client: "SELECT home, env FROM idt WHERE client = ?1",
        accounts: "SELECT home, env FROM account",
        account_refresh_by_client: "SELECT env FROM rt WHERE home = ?1 AND client = ?2",
        account_refresh_by_family: "SELECT env FROM rt WHERE home = ?1 AND family = ?2",
        account_id_by_client: "SELECT env FROM idt WHERE home = ?1 AND client = ?2",
    };

    // ---------------------------------------------------------------------------------
    // Where each entry is in the file.

    /// Section name → entry key → byte range of the entry's JSON object.
    pub(super) type Ranges = HashMap<String, HashMap<String, (usize, usize)>>;

    struct Scan<'a> {
        b: &'a [u8],
        i: usize,
    }

    impl Scan<'_> {
        fn ws(&mut self) {
            while self
                .b
                .get(self.i)
                .is_some_and(|c| matches!(c, b' ' | b'\n' | b'\r' | b'\t'))
            {
                self.i += 1;
            }
        }

        fn peek(&mut self) -> Option<u8> {
            self.ws();
            self.b.get(self.i).copied()
        }

        fn eat(&mut self, c: u8) -> Option<()> {
            (self.peek()? == c).then(|| self.i += 1)
        }

        /// A string token (with its quotes).
        fn string(&mut self) -> Option<(usize, usize)> {
            self.ws();
            let start = self.i;
            if self.b.get(self.i)? != &b'"' {
                return None;
            }
            self.i += 1;
            loop {
                match self.b.get(self.i)? {
                    b'"' => {
                        self.i += 1;
                        return Some((start, self.i));
                    }
                    b'\\' => self.i += 2,
                    _ => self.i += 1,
                }
            }
        }

        /// Any value: its range.
        fn value(&mut self) -> Option<(usize, usize)> {
            let start = match self.peek()? {
                b'"' => return self.string(),
                b'{' | b'[' => self.i,
                _ => {
                    let start = self.i;
                    while self.b.get(self.i).is_some_and(|c| {
                        !matches!(c, b',' | b'}' | b']' | b' ' | b'\n' | b'\r' | b'\t')
                    }) {
                        self.i += 1;
                    }
                    return (self.i > start).then_some((start, self.i));
                }
            };
            let mut depth = 0usize;
            loop {
                match self.b.get(self.i)? {
                    b'"' => {
                        self.string()?;
                        continue;
                    }
                    b'{' | b'[' => depth += 1,
                    b'}' | b']' => {
                        depth -= 1;
                        if depth == 0 {
                            self.i += 1;
                            return Some((start, self.i));
                        }
                    }
                    _ => {}
                }
                self.i += 1;
            }
        }

        fn text(&self, (start, end): (usize, usize)) -> Option<String> {
            let raw = &self.b[start + 1..end - 1];
            if raw.contains(&b'\\') {
                serde_json::from_slice(&self.b[start..end]).ok()
            } else {
                std::str::from_utf8(raw).ok().map(str::to_string)
            }
        }
    }

    /// The byte range of every entry of the known sections of an MSAL cache's JSON text
    /// (already parsed cleanly). `None` when it has duplicate keys or anything else
    /// the index would not describe exactly (then there is no index).
    pub(super) fn entry_ranges(text: &str) -> Option<Ranges> {
        const SECTIONS: [&str; 5] = [
            "AccessToken",
            "RefreshToken",
            "IdToken",
            "Account",
            "AppMetadata",
        ];
        let mut sc = Scan {
            b: text.as_bytes(),
            i: 0,
        };
        let mut out: Ranges = HashMap::new();
        let mut names = HashSet::new();
        sc.eat(b'{')?;
        if sc.eat(b'}').is_some() {
            return Some(out);
        }
        loop {
            let name = sc.string().and_then(|r| sc.text(r))?;
            sc.eat(b':')?;
            if !names.insert(name.clone()) {
                return None;
            }
            if SECTIONS.contains(&name.as_str()) && sc.peek()? == b'{' {
                let mut entries = HashMap::new();
                sc.eat(b'{')?;
                if sc.eat(b'}').is_none() {
                    loop {
                        let key = sc.string().and_then(|r| sc.text(r))?;
                        sc.eat(b':')?;
                        let range = sc.value()?;
                        if entries.insert(key, range).is_some() {
                            return None;
                        }
                        match sc.peek()? {
                            b',' => sc.i += 1,
                            b'}' => {
                                sc.i += 1;
                                break;
                            }
                            _ => return None,
                        }
                    }
                }
                out.insert(name, entries);
            } else {
                sc.value()?;
            }
            match sc.peek()? {
                b',' => sc.i += 1,
                b'}' => {
                    sc.i += 1;
                    break;
                }
                _ => return None,
            }
        }
        sc.ws();
        (sc.i == sc.b.len()).then_some(out)
    }

    // ---------------------------------------------------------------------------------
    // Writing an index.

    fn stamp_rows(stamp: Stamp) -> Option<[(&'static str, String); 6]> {
        let Stamp::File {
            dev,
            ino,
            len,
            mtime,
            ctime,
        } = stamp
        else {
            return None;
        };
        Some([
            ("format", FORMAT.to_string()),
            ("dev", dev.to_string()),
            ("ino", ino.to_string()),
            ("len", len.to_string()),
            ("mtime", mtime.to_string()),
            ("ctime", ctime.to_string()),
        ])
    }

    /// Writes the index of `text` (the file as read, with this `stamp`), parsed as `doc`.
    pub(super) fn build(
        index_path: &Path,
        text: &str,
        doc: &MsalCacheDocument,
        stamp: Stamp,
    ) -> Result<(), StoreError> {
        let Some(meta) = stamp_rows(stamp) else {
            return Err(StoreError::Io("no file to index".into()));
        };
        let ranges = entry_ranges(text)
            .ok_or_else(|| StoreError::Format("the file's layout is not indexable".into()))?;
        let dir = index_path
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        let name = index_path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        // Created 0600 before SQLite writes anything into it; deleted unless persisted.
        let tmp = super::new_temp_file(dir, &name)
            .map_err(|e| StoreError::Io(format!("cannot create the sidecar index: {e}")))?;
        write(tmp.path(), text, doc, &ranges, &meta)?;
        // A rename replaces whatever is at `index_path` (a link too), never writes through it.
        tmp.persist(index_path)
            .map(drop)
            .map_err(|e| StoreError::Io(format!("cannot write the sidecar index: {}", e.error)))
    }

    /// The entries of a section in key order, with their rank (position in that order).
    fn ranked<T: MsalEntity>(
        section: &crate::cache::msal_json::Section<T>,
    ) -> impl Iterator<Item = (i64, &str, &T)> {
        let mut v: Vec<(&str, &T)> = section.iter().collect();
        v.sort_unstable_by_key(|(k, _)| *k);
        v.into_iter()
            .enumerate()
            .map(|(i, (k, e))| (i as i64, k, e))
    }

    fn range_of<'a>(
        ranges: &'a Ranges,
        section: &str,
        key: &str,
    ) -> Result<&'a (usize, usize), StoreError> {
        ranges
            .get(section)
            .and_then(|s| s.get(key))
            .ok_or_else(|| StoreError::Format(format!("entry {key} not found in the text")))
    }

    fn write(
        tmp: &Path,
        text: &str,
        doc: &MsalCacheDocument,
        ranges: &Ranges,
        meta: &[(&'static str, String)],
    ) -> Result<(), StoreError> {
        // The file exists (`build` made it); SQLite must not create it, nor follow a link.
        let mut conn = Connection::open_with_flags(
            tmp,
            OpenFlags::SQLITE_OPEN_READ_WRITE
                | OpenFlags::SQLITE_OPEN_NOFOLLOW
                | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(db_err)?;
        conn.execute_batch("PRAGMA journal_mode=OFF; PRAGMA synchronous=OFF;")
            .map_err(db_err)?;
        let tx = conn.transaction().map_err(db_err)?;
        tx.execute_batch(SCHEMA).map_err(db_err)?;
        {
            let mut s = tx
                .prepare("INSERT INTO meta (name, value) VALUES (?1, ?2)")
                .map_err(db_err)?;
            for (name, value) in meta {
                s.execute(params![name, value]).map_err(db_err)?;
            }
            let mut s = tx
                .prepare(
                    "INSERT INTO at (home, client, rank, realm, env, target, expires_on, ext, start, len) \
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
                )
                .map_err(db_err)?;
            for (rank, key, e) in ranked(&doc.access_tokens) {
                let (start, end) = range_of(ranges, "AccessToken", key)?;
                s.execute(params![
                    e.home_account_id,
                    e.client_id,
                    rank,
                    e.realm,
                    e.environment.to_ascii_lowercase(),
                    e.target,
                    e.expires_on,
                    ext_cache_key(e).is_some(),
                    *start as i64,
                    (end - start) as i64
                ])
                .map_err(db_err)?;
            }
            let mut s = tx
                .prepare(
                    "INSERT INTO rt (home, rank, env, client, family, lmt, start, len) \
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                )
                .map_err(db_err)?;
            for (rank, key, e) in ranked(&doc.refresh_tokens) {
                let (start, end) = range_of(ranges, "RefreshToken", key)?;
                s.execute(params![
                    e.home_account_id,
                    rank,
                    e.environment.to_ascii_lowercase(),
                    e.client_id,
                    e.family_id,
                    e.last_modification_time,
                    *start as i64,
                    (end - start) as i64
                ])
                .map_err(db_err)?;
            }
            let mut s = tx
                .prepare(
                    "INSERT INTO idt (home, client, rank, env, realm, start, len) \
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                )
                .map_err(db_err)?;
            for (rank, key, e) in ranked(&doc.id_tokens) {
                let (start, end) = range_of(ranges, "IdToken", key)?;
                s.execute(params![
                    e.home_account_id,
                    e.client_id,
                    rank,
                    e.environment.to_ascii_lowercase(),
                    e.realm,
                    *start as i64,
                    (end - start) as i64
                ])
                .map_err(db_err)?;
            }
            let mut s = tx
                .prepare("INSERT INTO account (rank, home, env, json) VALUES (?1, ?2, ?3, ?4)")
                .map_err(db_err)?;
            for (rank, key, e) in ranked(&doc.accounts) {
                let (start, end) = range_of(ranges, "Account", key)?;
                s.execute(params![
                    rank,
                    e.home_account_id,
                    e.environment.to_ascii_lowercase(),
                    &text[*start..*end]
                ])
                .map_err(db_err)?;
            }
            let mut s = tx
                .prepare(
                    "INSERT INTO app_metadata (rank, client, env, json) VALUES (?1, ?2, ?3, ?4)",
                )
                .map_err(db_err)?;
            for (rank, key, e) in ranked(&doc.app_metadata) {
                let (start, end) = range_of(ranges, "AppMetadata", key)?;
                s.execute(params![
                    rank,
                    e.client_id,
                    e.environment.to_ascii_lowercase(),
                    &text[*start..*end]
                ])
                .map_err(db_err)?;
            }
        }
        tx.commit().map_err(db_err)?;
        conn.close().map_err(|(_, e)| db_err(e))?;
        Ok(())
    }

    // ---------------------------------------------------------------------------------
    // Reading through an index.

    /// An open, valid index and the cache file it describes (kept open: it is the
    /// version the index describes, even if the path is replaced meanwhile).
    pub(super) struct Sidecar {
        conn: Connection,
        file: File,
        stamp: Stamp,
    }

    /// `Ok(None)`: the index turned out not to describe the file.
    type Found<T> = Result<Option<T>, StoreError>;

    fn parse_object(bytes: &[u8]) -> Option<Map<String, Value>> {
        match serde_json::from_slice(bytes).ok()? {
            Value::Object(m) => Some(m),
            _ => None,
        }
    }

    impl Sidecar {
        /// The index at `index_path`, if it describes `path` as it is (`stamp`).
        pub(super) fn open(index_path: &Path, path: &Path, stamp: Stamp) -> Option<Sidecar> {
            let expected = stamp_rows(stamp)?;
            // Never changed once in place (a new index replaces it), so SQLite may skip
            // its locks: `immutable=1`.
            let uri = url::Url::from_file_path(std::path::absolute(index_path).ok()?).ok()?;
            let conn = Connection::open_with_flags(
                format!("{uri}?immutable=1"),
                OpenFlags::SQLITE_OPEN_READ_ONLY
                    | OpenFlags::SQLITE_OPEN_NO_MUTEX
                    | OpenFlags::SQLITE_OPEN_URI,
            )
            .ok()?;
            conn.set_prepared_statement_cache_capacity(16);
            let mut s = conn.prepare("SELECT name, value FROM meta").ok()?;
            let found: HashMap<String, String> = s
                .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
                .ok()?
                .collect::<Result<_, _>>()
                .ok()?;
            drop(s);
            if expected
                .iter()
                .any(|(name, value)| found.get(*name) != Some(value))
            {
                return None;
            }
            let file = File::open(path).ok()?;
            if stamp_of(&file.metadata().ok()?) != stamp {
                return None;
            }
            Some(Sidecar { conn, file, stamp })
        }

        pub(super) fn stamp(&self) -> Stamp {
            self.stamp
        }

        /// Still the file the index describes? (after reading from it)
        fn unchanged(&self) -> bool {
            self.file
                .metadata()
                .is_ok_and(|m| stamp_of(&m) == self.stamp)
        }

        fn read_at(&self, start: i64, len: i64) -> Option<Vec<u8>> {
            let (start, len) = (u64::try_from(start).ok()?, usize::try_from(len).ok()?);
            let mut buf = vec![0u8; len];
            #[cfg(unix)]
            {
                use std::os::unix::fs::FileExt;
                self.file.read_exact_at(&mut buf, start).ok()?;
            }
            #[cfg(not(unix))]
            {
                use std::io::{Read, Seek, SeekFrom};
                let mut f = &self.file;
                f.seek(SeekFrom::Start(start)).ok()?;
                f.read_exact(&mut buf).ok()?;
            }
            Some(buf)
        }

        /// The entry at a range, if it is what the index says (`matches`).
        fn entry<T: MsalEntity>(
            &self,
            start: i64,
            len: i64,
            matches: impl Fn(&T) -> bool,
        ) -> Option<T> {
            let bytes = self.read_at(start, len)?;
            T::from_msal_map(&parse_object(&bytes)?).filter(|e| matches(e))
        }

        fn done<T>(&self, v: Option<T>) -> Found<T> {
            Ok(v.filter(|_| self.unchanged()))
        }

        pub(super) fn accounts(&self) -> Found<Vec<AccountEntry>> {
            let mut s = self
                .conn
                .prepare_cached("SELECT rank, json FROM account ORDER BY rank")
                .map_err(db_err)?;
            let mut rows = s.query([]).map_err(db_err)?;
            let mut out = Vec::new();
            while let Some(r) = rows.next().map_err(db_err)? {
                let json: String = r.get(1).map_err(db_err)?;
                // The typed form reads most entries directly; the general way decides.
                let entry = match serde_json::from_str::<AccountEntry>(&json) {
                    Ok(a) => Some(a),
                    Err(_) => {
                        parse_object(json.as_bytes()).and_then(|m| AccountEntry::from_msal_map(&m))
                    }
                };
                let Some(entry) = entry else {
                    return Ok(None);
                };
                out.push(entry);
            }
            Ok(Some(out))
        }

        pub(super) fn access_tokens(
            &self,
            q: &CredentialQuery<'_>,
        ) -> Found<Vec<AccessTokenEntry>> {
            let mut s = self
                .conn
                .prepare_cached(
                    "SELECT env, start, len FROM at WHERE home = ?1 AND client = ?2 \
                     AND (?3 IS NULL OR realm = ?3) AND ext = 0 ORDER BY rank",
                )
                .map_err(db_err)?;
            let rows: Vec<(String, i64, i64)> = s
                .query_map(params![q.home_account_id, q.client_id, q.realm], |r| {
                    Ok((r.get(0)?, r.get(1)?, r.get(2)?))
                })
                .map_err(db_err)?
                .collect::<Result<_, _>>()
                .map_err(db_err)?;
            let mut out = Vec::new();
            for (env, start, len) in rows {
                if env_rank(&env, q.environments).is_none() {
                    continue;
                }
                let Some(at) = self.entry(start, len, |e: &AccessTokenEntry| {
                    e.home_account_id == q.home_account_id
                        && e.client_id == q.client_id
                        && e.environment.eq_ignore_ascii_case(&env)
                        && q.realm.is_none_or(|r| e.realm == r)
                        && ext_cache_key(e).is_none()
                }) else {
                    return Ok(None);
                };
                out.push(at);
            }
            self.done(Some(out))
        }

        pub(super) fn find_access_token(
            &self,
            q: &CredentialQuery<'_>,
            scopes: &ScopeSet,
            valid_after: UnixTime,
        ) -> Found<Option<AccessTokenEntry>> {
            let mut s = self
                .conn
                .prepare_cached(
                    "SELECT env, target, expires_on, start, len FROM at WHERE home = ?1 AND client = ?2 \
                     AND (?3 IS NULL OR realm = ?3) AND ext = 0 AND expires_on > ?4 ORDER BY rank",
                )
                .map_err(db_err)?;
            let mut rows = s
                .query(params![
                    q.home_account_id,
                    q.client_id,
                    q.realm,
                    valid_after
                ])
                .map_err(db_err)?;
            let mut best: Option<(i64, i64, i64, String, String)> = None;
            while let Some(r) = rows.next().map_err(db_err)? {
                let env: String = r.get(0).map_err(db_err)?;
                let target: String = r.get(1).map_err(db_err)?;
                let expires_on: i64 = r.get(2).map_err(db_err)?;
                if env_rank(&env, q.environments).is_some()
                    && target_covers(&target, scopes)
                    && best.as_ref().is_none_or(|b| expires_on >= b.0)
                {
                    best = Some((
                        expires_on,
                        r.get(3).map_err(db_err)?,
                        r.get(4).map_err(db_err)?,
                        env,
                        target,
                    ));
                }
            }
            let Some((expires_on, start, len, env, target)) = best else {
                return self.done(Some(None));
            };
            let at = self.entry(start, len, |e: &AccessTokenEntry| {
                e.home_account_id == q.home_account_id
                    && e.client_id == q.client_id
                    && e.environment.eq_ignore_ascii_case(&env)
                    && q.realm.is_none_or(|r| e.realm == r)
                    && e.target == target
                    && e.expires_on == expires_on
                    && ext_cache_key(e).is_none()
            });
            self.done(at.map(Some))
        }

        pub(super) fn refresh_tokens(
            &self,
            q: &CredentialQuery<'_>,
            family_id: Option<&str>,
        ) -> Found<Vec<RefreshTokenEntry>> {
            let mut s = self
                .conn
                .prepare_cached(
                    "SELECT env, client, family, start, len FROM rt WHERE home = ?1 \
                     ORDER BY coalesce(lmt, 0) DESC, rank",
                )
                .map_err(db_err)?;
            let rows: Vec<(String, String, Option<String>, i64, i64)> = s
                .query_map([q.home_account_id], |r| {
                    Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
                })
                .map_err(db_err)?
                .collect::<Result<_, _>>()
                .map_err(db_err)?;
            let mut out = Vec::new();
            for (env, client, family, start, len) in rows {
                let ours = client == q.client_id
                    || family_id.is_some_and(|f| family.as_deref() == Some(f));
                if !ours || env_rank(&env, q.environments).is_none() {
                    continue;
                }
                let Some(rt) = self.entry(start, len, |e: &RefreshTokenEntry| {
                    e.home_account_id == q.home_account_id
                        && e.client_id == client
                        && e.family_id == family
                        && e.environment.eq_ignore_ascii_case(&env)
                }) else {
                    return Ok(None);
                };
                out.push(rt);
            }
            self.done(Some(out))
        }

        pub(super) fn id_token(&self, q: &CredentialQuery<'_>) -> Found<Option<IdTokenEntry>> {
            let mut s = self
                .conn
                .prepare_cached(
                    "SELECT rank, env, start, len FROM idt WHERE home = ?1 AND client = ?2 \
                     AND (?3 IS NULL OR realm = ?3)",
                )
                .map_err(db_err)?;
            let rows: Vec<(i64, String, i64, i64)> = s
                .query_map(params![q.home_account_id, q.client_id, q.realm], |r| {
                    Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
                })
                .map_err(db_err)?
                .collect::<Result<_, _>>()
                .map_err(db_err)?;
            let best = rows
                .into_iter()
                .filter_map(|(rank, env, start, len)| {
                    Some(((env_rank(&env, q.environments)?, rank), env, start, len))
                })
                .min_by(|a, b| a.0.cmp(&b.0));
            let Some((_, env, start, len)) = best else {
                return self.done(Some(None));
            };
            let idt = self.entry(start, len, |e: &IdTokenEntry| {
                e.home_account_id == q.home_account_id
                    && e.client_id == q.client_id
                    && e.environment.eq_ignore_ascii_case(&env)
                    && q.realm.is_none_or(|r| e.realm == r)
            });
            self.done(idt.map(Some))
        }

        pub(super) fn app_metadata(
            &self,
            environments: &[String],
            client_id: &str,
        ) -> Found<Option<AppMetadataEntry>> {
            let mut s = self
                .conn
                .prepare_cached("SELECT rank, env, json FROM app_metadata WHERE client = ?1")
                .map_err(db_err)?;
            let rows: Vec<(i64, String, String)> = s
                .query_map([client_id], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
                .map_err(db_err)?
                .collect::<Result<_, _>>()
                .map_err(db_err)?;
            let best = rows
                .into_iter()
                .filter_map(|(rank, env, json)| Some(((env_rank(&env, environments)?, rank), json)))
                .min_by(|a, b| a.0.cmp(&b.0));
            Ok(match best {
                None => Some(None),
                Some((_, json)) => parse_object(json.as_bytes())
                    .and_then(|m| AppMetadataEntry::from_msal_map(&m))
                    .map(Some),
            })
        }

        pub(super) fn credential_holders(
            &self,
            environments: &[String],
            client_id: &str,
            family_id: Option<&str>,
        ) -> Found<HashSet<String>> {
            credential_holders_in(
                &self.conn,
                &HOLDER_QUERIES,
                environments,
                client_id,
                family_id,
                db_err,
            )
            .map(Some)
        }

        pub(super) fn holds_credentials(
            &self,
            q: &CredentialQuery<'_>,
            family_id: Option<&str>,
        ) -> Found<bool> {
            holds_credentials_in(&self.conn, &HOLDER_QUERIES, q, family_id, db_err).map(Some)
        }
    }

    /// Is there an index at `index_path` at all? (tests)
    #[cfg(test)]
    pub(super) fn exists(index_path: &Path) -> bool {
        use rusqlite::OptionalExtension;
        Connection::open_with_flags(index_path, OpenFlags::SQLITE_OPEN_READ_ONLY)
            .and_then(|c| {
                c.query_row("SELECT count(*) FROM meta", [], |r| r.get::<_, i64>(0))
                    .optional()
            })
            .is_ok_and(|n| n.is_some_and(|n| n > 0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::env::FixedClock;
    use crate::secret::{AccessToken, RefreshToken};
    use serde_json::Map;

    const MSAL: &str = include_str!("testdata/msal_python_cache.json");
    const FOREIGN: &str = include_str!("testdata/msal_python_cache_foreign.json");
    /// The fixtures' time: their access tokens are still valid.
    const FIXTURE_NOW: i64 = 1_700_000_100;

    fn account(home: &str) -> AccountEntry {
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

    fn access_token(home: &str, secret: &str, expires_on: i64) -> AccessTokenEntry {
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

    fn query<'a>(home: &'a str, envs: &'a [String]) -> CredentialQuery<'a> {
        CredentialQuery {
            home_account_id: home,
            environments: envs,
            client_id: "client",
            realm: None,
        }
    }

    fn envs() -> Vec<String> {
        vec!["login.example.test".into()]
    }

    fn homes(store: &dyn TokenStore) -> Vec<String> {
        store
            .accounts()
            .unwrap()
            .into_iter()
            .map(|a| a.home_account_id)
            .collect()
    }

    fn write_account(store: &MsalFileStore, home: &str) {
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

    #[cfg(unix)]
    #[test]
    fn a_held_lock_makes_writers_wait_and_then_fail_clearly() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cache.json");
        let store = MsalFileStore::open(&path)
            .unwrap()
            .with_lock_timeout(Duration::from_millis(400));
        let held = FileLock::acquire(store.lock_path(), Duration::from_secs(1)).unwrap();
        let holder = fs::read_to_string(store.lock_path()).unwrap();
        assert!(
            holder.starts_with(&format!("{} ", std::process::id())),
            "{holder}"
        );
        let started = Instant::now();
        let err = store
            .write(TokenWrite {
                account: Some(account("alice")),
                ..Default::default()
            })
            .unwrap_err()
            .to_string();
        assert!(started.elapsed() >= Duration::from_millis(400));
        assert!(
            err.contains("locked by another program") && err.contains(".lockfile"),
            "{err}"
        );
        assert!(
            err.contains(&std::process::id().to_string()),
            "names the holder: {err}"
        );
        assert!(!path.exists(), "nothing written");
        drop(held);
        assert!(!store.lock_path().exists());
        write_account(&store, "alice");
        assert_eq!(homes(&store), ["alice"]);
    }

    #[cfg(unix)]
    #[test]
    fn a_released_lock_lets_a_waiting_writer_in() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cache.json");
        let store = MsalFileStore::open(&path).unwrap();
        let held = FileLock::acquire(store.lock_path(), Duration::from_secs(1)).unwrap();
        let started = Instant::now();
        std::thread::scope(|s| {
            s.spawn(|| {
                std::thread::sleep(Duration::from_millis(300));
                drop(held);
            });
            write_account(&store, "alice");
        });
        assert!(started.elapsed() >= Duration::from_millis(300));
        assert_eq!(homes(&store), ["alice"]);
    }

    #[cfg(unix)]
    #[test]
    fn a_stale_lock_file_nobody_holds_is_taken_over() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cache.json");
        let store = MsalFileStore::open(&path)
            .unwrap()
            .with_lock_timeout(Duration::from_secs(2));
        // Left behind by a crashed process: exists, but no flock on it.
        fs::write(store.lock_path(), "99999 crashed.py").unwrap();
        let started = Instant::now();
        write_account(&store, "alice");
        // A lock file counts as stale after 5 s (msal-extensions), or the whole timeout
        // when that is shorter, as here.
        assert!(started.elapsed() >= Duration::from_secs(1));
        assert_eq!(homes(&store), ["alice"]);
        assert!(!store.lock_path().exists(), "and cleaned up");
    }

    // No lock or temporary file is followed through a link.

    /// A file outside the cache that a planted link points at, and its bytes.
    #[cfg(unix)]
    fn victim(dir: &Path) -> (PathBuf, Vec<u8>) {
        let path = dir.join("victim.txt");
        let bytes = b"precious: never to be truncated or overwritten\n".to_vec();
        fs::write(&path, &bytes).unwrap();
        (path, bytes)
    }

    fn try_write_account(store: &MsalFileStore, home: &str) -> Result<(), StoreError> {
        store.write(TokenWrite {
            account: Some(account(home)),
            ..Default::default()
        })
    }

    #[cfg(unix)]
    #[test]
    fn a_lock_file_that_is_a_link_is_refused_and_its_target_left_alone() {
        let dir = tempfile::tempdir().unwrap();
        let (victim, bytes) = victim(dir.path());
        let path = dir.path().join("cache.json");
        let store = MsalFileStore::open(&path)
            .unwrap()
            .with_lock_timeout(Duration::from_millis(300));
        std::os::unix::fs::symlink(&victim, store.lock_path()).unwrap();
        // Twice, the second time well after the stale-lock time (300 ms here).
        for _ in 0..2 {
            let started = Instant::now();
            let err = try_write_account(&store, "alice").unwrap_err().to_string();
            assert!(
                err.contains(&store.lock_path().display().to_string())
                    && err.contains("symbolic link"),
                "{err}"
            );
            assert!(
                started.elapsed() < Duration::from_millis(300),
                "refused at once"
            );
            assert_eq!(fs::read(&victim).unwrap(), bytes);
            assert!(!path.exists(), "nothing written");
            std::thread::sleep(Duration::from_millis(400));
        }
        assert!(
            fs::symlink_metadata(store.lock_path())
                .unwrap()
                .file_type()
                .is_symlink(),
            "the link is left for the user to look at"
        );
        fs::remove_file(store.lock_path()).unwrap();
        write_account(&store, "alice");
        assert_eq!(fs::read(&victim).unwrap(), bytes);
    }

    #[cfg(unix)]
    #[test]
    fn a_stale_lock_file_replaced_by_a_link_while_waiting_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let (victim, bytes) = victim(dir.path());
        let path = dir.path().join("cache.json");
        let store = MsalFileStore::open(&path)
            .unwrap()
            .with_lock_timeout(Duration::from_secs(1));
        fs::write(store.lock_path(), "99999 crashed.py").unwrap();
        let err = std::thread::scope(|s| {
            let writer = s.spawn(|| try_write_account(&store, "alice"));
            std::thread::sleep(Duration::from_millis(200));
            let link = dir.path().join("link");
            std::os::unix::fs::symlink(&victim, &link).unwrap();
            fs::rename(&link, store.lock_path()).unwrap();
            writer.join().unwrap().unwrap_err().to_string()
        });
        assert!(err.contains("symbolic link"), "{err}");
        assert_eq!(fs::read(&victim).unwrap(), bytes);
        assert!(!path.exists());
    }

    #[cfg(unix)]
    #[test]
    fn a_lock_path_that_is_a_fifo_directory_or_socket_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cache.json");
        let store = MsalFileStore::open(&path)
            .unwrap()
            .with_lock_timeout(Duration::from_millis(300));
        let lock = store.lock_path().to_path_buf();
        let fifo = std::process::Command::new("mkfifo")
            .arg(&lock)
            .status()
            .unwrap();
        assert!(fifo.success());
        let refused = |what: &str| {
            let started = Instant::now();
            let err = try_write_account(&store, "alice").unwrap_err().to_string();
            assert!(
                err.contains(&lock.display().to_string()) && err.contains(what),
                "{err}"
            );
            assert!(started.elapsed() < Duration::from_secs(2));
            assert!(!path.exists(), "nothing written");
        };
        refused("not a regular file");
        fs::remove_file(&lock).unwrap();
        fs::create_dir(&lock).unwrap();
        refused("a directory");
        fs::remove_dir(&lock).unwrap();
        let _socket = std::os::unix::net::UnixListener::bind(&lock).unwrap();
        refused("not a regular file");
    }

    /// The check made on what was opened, whatever the path looked like before.
    #[cfg(unix)]
    #[test]
    fn an_existing_lock_file_is_opened_read_only_never_through_a_link_nor_blocking() {
        let dir = tempfile::tempdir().unwrap();
        let (victim, bytes) = victim(dir.path());
        let link = dir.path().join("link.lockfile");
        std::os::unix::fs::symlink(&victim, &link).unwrap();
        let e = open_existing_lock(&link).unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::ELOOP), "{e}");
        let fifo = dir.path().join("fifo.lockfile");
        assert!(std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap()
            .success());
        // Without O_NONBLOCK this open would wait for a writer forever.
        let f = open_existing_lock(&fifo).unwrap();
        assert!(!f.metadata().unwrap().file_type().is_file());
        let m = fs::symlink_metadata(&link).unwrap();
        assert!(not_a_regular_file(&link, &m)
            .to_string()
            .contains("symbolic link"));
        // Read-only: a regular file opened this way cannot be written at all.
        let mut f = open_existing_lock(&victim).unwrap();
        assert!(f.write_all(b"x").is_err());
        assert_eq!(fs::read(&victim).unwrap(), bytes);
    }

    /// A stale lock file another process left (here a hard link to a file outside the
    /// cache) is locked and then removed, but its content is never truncated or written.
    #[cfg(unix)]
    #[test]
    fn a_stale_lock_file_of_another_process_is_taken_over_but_never_written() {
        let dir = tempfile::tempdir().unwrap();
        let (victim, bytes) = victim(dir.path());
        let path = dir.path().join("cache.json");
        let store = MsalFileStore::open(&path)
            .unwrap()
            .with_lock_timeout(Duration::from_millis(300));
        fs::hard_link(&victim, store.lock_path()).unwrap();
        write_account(&store, "alice");
        assert_eq!(homes(&store), ["alice"]);
        assert_eq!(
            fs::read(&victim).unwrap(),
            bytes,
            "not truncated or written"
        );
        assert!(
            !store.lock_path().exists(),
            "the stale lock file is removed"
        );
        assert!(victim.exists(), "(only its name at the lock path)");
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
        let e = create_new(&planted[0]).unwrap_err();
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

    // -----------------------------------------------------------------------------
    // The sidecar index.

    use super::super::conformance::{compare_queries, random_write, refresh_token_keys, Rng, NOW};

    /// Makes the file's timestamp a minute old (as a cache between sign-ins): a file
    /// modified too recently gets no index.
    fn age(path: &Path) {
        File::options()
            .write(true)
            .open(path)
            .unwrap()
            .set_modified(SystemTime::now() - Duration::from_secs(60))
            .unwrap();
    }

    /// A cache with a random history (MSAL Python's fixture plus writes), written by a
    /// store, and the same history in the reference store.
    fn history(path: &Path, seed: u64, steps: usize) -> (MemoryStore, Arc<FixedClock>) {
        fs::write(path, MSAL).unwrap();
        let clock = Arc::new(FixedClock::new(NOW));
        let reference = MemoryStore::from_document(MSAL.parse().unwrap()).with_clock(clock.clone());
        let store = MsalFileStore::open_with_index(path, None)
            .unwrap()
            .with_clock(clock.clone());
        let mut r = Rng(seed);
        for n in 0..steps {
            let w = random_write(&mut r, n, NOW, &refresh_token_keys(&reference));
            reference.write(w.clone()).unwrap();
            store.write(w).unwrap();
        }
        (reference, clock)
    }

    #[test]
    fn a_process_with_a_valid_index_answers_every_lookup_without_parsing_the_file() {
        for seed in [3u64, 4, 5] {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("cache.json");
            let (reference, clock) = history(&path, seed, 120);
            age(&path);
            // The first reader parses the file and writes the index...
            let st = MsalFileStore::open_with_index(&path, Some(0)).unwrap();
            assert_eq!(
                st.index_build_count(),
                1,
                "seed {seed}: the parse wrote an index"
            );
            assert!(index::exists(st.index_path()));
            // ...and the next one answers from it: no parse at all.
            let store = MsalFileStore::open_with_index(&path, Some(0))
                .unwrap()
                .with_clock(clock.clone());
            let mut r = Rng(seed * 7);
            for i in 0..400 {
                compare_queries(
                    &mut r,
                    &reference,
                    &store,
                    NOW,
                    &format!("seed {seed} query {i}"),
                );
            }
            assert_eq!(
                json_accounts(&reference),
                json_accounts(&store),
                "seed {seed}: accounts"
            );
            assert_eq!(store.parse_count(), 0, "seed {seed}: never parsed");
        }
    }

    fn json_accounts(s: &dyn TokenStore) -> Vec<Map<String, serde_json::Value>> {
        use super::super::msal_json::MsalEntity;
        s.accounts()
            .unwrap()
            .iter()
            .map(|a| a.to_msal_map())
            .collect()
    }

    #[test]
    fn the_index_holds_no_secret_and_is_private() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cache.json");
        fs::write(&path, FOREIGN).unwrap();
        age(&path);
        let store = MsalFileStore::open_with_index(&path, Some(0)).unwrap();
        assert_eq!(store.index_build_count(), 1);
        let bytes = fs::read(store.index_path()).unwrap();
        let doc: MsalCacheDocument = FOREIGN.parse().unwrap();
        let mut secrets: Vec<String> = Vec::new();
        secrets.extend(
            doc.access_tokens
                .iter()
                .map(|(_, e)| e.secret.secret().clone()),
        );
        secrets.extend(
            doc.refresh_tokens
                .iter()
                .map(|(_, e)| e.secret.secret().clone()),
        );
        secrets.extend(
            doc.id_tokens
                .iter()
                .map(|(_, e)| e.secret.secret().to_string()),
        );
        assert!(secrets.len() >= 3);
        for secret in &secrets {
            assert!(
                !bytes.windows(secret.len()).any(|w| w == secret.as_bytes()),
                "a secret is in the index"
            );
        }
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = fs::metadata(store.index_path())
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let leftovers: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.ends_with(".tmp"))
            .collect();
        assert!(leftovers.is_empty(), "{leftovers:?}");
    }

    #[test]
    fn a_file_changed_after_indexing_is_read_again_whatever_the_writer_did() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cache.json");
        fs::write(&path, MSAL).unwrap();
        age(&path);
        assert_eq!(
            MsalFileStore::open_with_index(&path, Some(0))
                .unwrap()
                .index_build_count(),
            1
        );
        let reader = MsalFileStore::open_with_index(&path, Some(0)).unwrap();
        assert_eq!(reader.parse_count(), 0, "served by the index");
        let before = homes(&reader);
        assert!(before.len() >= 2);

        // 1. Another writer (replaces the file): the index is stale.
        let other = MsalFileStore::open_with_index(&path, None).unwrap();
        write_account(&other, "zed");
        assert!(homes(&reader).contains(&"zed".to_string()));
        assert_eq!(reader.parse_count(), 1);

        // 2. A writer that rewrites in place, same length, and puts the old mtime back:
        //    the change time still tells.
        age(&path);
        let fresh = MsalFileStore::open_with_index(&path, Some(0)).unwrap();
        assert_eq!(fresh.index_build_count(), 1);
        let served = MsalFileStore::open_with_index(&path, Some(0)).unwrap();
        assert_eq!(served.parse_count(), 0);
        let text = fs::read_to_string(&path).unwrap();
        let mtime = fs::metadata(&path).unwrap().modified().unwrap();
        std::thread::sleep(Duration::from_millis(20));
        let changed = text.replace(
            "\"username\": \"zed@example.test\"",
            "\"username\": \"zzz@example.test\"",
        );
        assert_ne!(changed, text);
        assert_eq!(changed.len(), text.len());
        {
            let mut f = File::options().write(true).open(&path).unwrap();
            f.write_all(changed.as_bytes()).unwrap();
            f.set_modified(mtime).unwrap();
        }
        let names: Vec<String> = served
            .accounts()
            .unwrap()
            .into_iter()
            .map(|a| a.username)
            .collect();
        assert!(names.contains(&"zzz@example.test".to_string()), "{names:?}");
        assert_eq!(served.parse_count(), 1);

        // 3. A stale index of a file that is gone is not used either.
        fs::remove_file(&path).unwrap();
        assert!(served.accounts().unwrap().is_empty());
    }

    #[test]
    fn a_file_written_a_moment_ago_gets_no_index_and_small_files_none_by_default() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cache.json");
        fs::write(&path, MSAL).unwrap();
        let store = MsalFileStore::open_with_index(&path, Some(0)).unwrap();
        assert_eq!(
            store.index_build_count(),
            0,
            "its timestamp cannot be trusted yet"
        );
        assert!(!store.index_path().exists());
        age(&path);
        let store = MsalFileStore::open(&path).unwrap();
        assert_eq!(
            store.index_build_count(),
            0,
            "below DEFAULT_INDEX_MIN_BYTES"
        );
        assert!(!store.index_path().exists());
    }

    #[test]
    fn entry_ranges_find_every_entry_exactly() {
        let text = r#"{
    "Future": {"AccessToken": {"x": 1}},
    "AccessToken": {
        "k\u00e9y-\"q\"": {"secret": "a}b{c\"", "n": [1, {"d": "]"}]},
        "plain": {}
    },
    "Account": {}
}"#;
        let r = index::entry_ranges(text).unwrap();
        let at = &r["AccessToken"];
        assert_eq!(at.len(), 2);
        let (s, e) = at["kéy-\"q\""];
        assert_eq!(
            &text[s..e],
            r#"{"secret": "a}b{c\"", "n": [1, {"d": "]"}]}"#
        );
        let (s, e) = at["plain"];
        assert_eq!(&text[s..e], "{}");
        assert!(r["Account"].is_empty());
        assert!(!r.contains_key("Future"));
        // Duplicate keys or sections: not indexable.
        assert!(index::entry_ranges(r#"{"AccessToken": {"a": {}, "a": {}}}"#).is_none());
        assert!(index::entry_ranges(r#"{"Account": {}, "Account": {}}"#).is_none());
        assert!(index::entry_ranges("{}").unwrap().is_empty());
        let fixture = index::entry_ranges(MSAL).unwrap();
        let doc: MsalCacheDocument = MSAL.parse().unwrap();
        assert_eq!(
            fixture["AccessToken"].len(),
            doc.access_tokens.len() + doc.access_tokens.raw_len()
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
