//! msal-extensions' `CrossPlatLock` on `FILE.lockfile` (the protocol and how this one
//! differs: `docs/msal-cache-files.md`).
//!
//! **Invariants:** the lock file is created `O_EXCL | O_NOFOLLOW`, or, when stale, opened
//! read-only with `O_NOFOLLOW`; whatever was opened must be a regular file (anything else
//! is refused with an error naming it); only a lock file this process created is written
//! (the holder line); the lock file is deleted before it is unlocked, and a waiter whose
//! file is no longer the one at the path starts over.

use std::fs::{self, File, Metadata, OpenOptions};
use std::io::{self, Read, Seek, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::error::StoreError;
use crate::fsutil;

/// After this long, an existing lock file is taken over with `flock` (msal-extensions' 5 s).
const STALE_LOCK_FILE_AFTER: Duration = Duration::from_secs(5);
const POLL_MIN: Duration = Duration::from_millis(5);
const POLL_MAX: Duration = Duration::from_millis(100);

/// msal-extensions' `CrossPlatLock` on `<file>.lockfile`, held until dropped.
///
/// The lock file is never followed through a link and must be a regular file. Only a
/// lock file this process created is written (the holder line); a stale one left by
/// another process is opened read-only, locked and deleted, never truncated or written.
pub(super) struct FileLock {
    file: File,
    path: PathBuf,
}

impl FileLock {
    pub(super) fn acquire(path: &Path, timeout: Duration) -> Result<FileLock, StoreError> {
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
                match fsutil::create_new(path) {
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
                        fsutil::create_private_dir(dir)
                            .map_err(|e| err("create the directory of", e))?;
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

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use super::super::tests::{account, homes, try_write_account, victim, write_account};
    use super::super::MsalFileStore;
    use super::*;
    use crate::cache::{TokenStore, TokenWrite};

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
}
