//! The sidecar index, `FILE.tessera-index`: what lookups need of a big MSAL cache, so
//! that a process can answer them without reading and parsing the whole file (its design
//! and figures: `docs/msal-cache-files.md`).
//!
//! **Invariants:** it holds no secret (keys, the fields lookups select by, and each
//! entry's byte range in the cache file; Account and AppMetadata entries whole); it is
//! used only while the file's dev/inode/length/mtime/ctime equal those stored in it, and
//! written only after a clean parse of a file old enough for those to tell two writes
//! apart (`Seen::racy`); every entry read through it is checked against it, and the open
//! file's stamp again after reading; it is written once to a temporary file
//! ([`crate::fsutil::new_temp_file`]) and renamed into place, never changed after.

use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::path::Path;

use rusqlite::{params, Connection, OpenFlags};
use serde_json::{Map, Value};

use super::scan::{entry_ranges, Ranges};
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
    let tmp = crate::fsutil::new_temp_file(dir, &name)
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
            .prepare("INSERT INTO app_metadata (rank, client, env, json) VALUES (?1, ?2, ?3, ?4)")
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

    pub(super) fn access_tokens(&self, q: &CredentialQuery<'_>) -> Found<Vec<AccessTokenEntry>> {
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
            let ours =
                client == q.client_id || family_id.is_some_and(|f| family.as_deref() == Some(f));
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

#[cfg(test)]
mod tests {
    use std::fs::{self, File};
    use std::io::Write;
    use std::path::Path;
    use std::sync::Arc;
    use std::time::Duration;

    use serde_json::Map;

    use super::super::tests::{age, homes, write_account, FOREIGN, MSAL};
    use super::super::MsalFileStore;
    use super::*;
    use crate::cache::memory::MemoryStore;
    use crate::cache::TokenStore;
    use crate::env::FixedClock;

    // -----------------------------------------------------------------------------
    // The sidecar index.

    use rand::rngs::StdRng;
    use rand::SeedableRng;

    use crate::cache::conformance::{compare_queries, random_write, refresh_token_keys, NOW};

    /// A cache with a random history (MSAL Python's fixture plus writes), written by a
    /// store, and the same history in the reference store.
    fn history(path: &Path, seed: u64, steps: usize) -> (MemoryStore, Arc<FixedClock>) {
        fs::write(path, MSAL).unwrap();
        let clock = Arc::new(FixedClock::new(NOW));
        let reference = MemoryStore::from_document(MSAL.parse().unwrap()).with_clock(clock.clone());
        let store = MsalFileStore::open_with_index(path, None)
            .unwrap()
            .with_clock(clock.clone());
        let mut r = StdRng::seed_from_u64(seed);
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
            assert!(exists(st.index_path()));
            // ...and the next one answers from it: no parse at all.
            let store = MsalFileStore::open_with_index(&path, Some(0))
                .unwrap()
                .with_clock(clock.clone());
            let mut r = StdRng::seed_from_u64(seed * 7);
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
}
