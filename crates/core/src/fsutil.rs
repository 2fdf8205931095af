//! File-system steps the stores and config files share: private folders and files,
//! atomic replacement, sibling paths, moving a file aside.
//!
//! **Invariants:** what is created here is private (folders 0700, files 0600 on Unix);
//! a new file is created exclusively (`O_EXCL | O_NOFOLLOW`), so it is never opened
//! through a link or over an existing entry; a replaced file is either the old one or the
//! new one, never half of either; nothing is ever overwritten by a move aside.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

/// `path` with `suffix` appended to its name: `FILE.lockfile`, `store.db-wal`.
pub fn sibling(path: &Path, suffix: &str) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(suffix);
    PathBuf::from(s)
}

/// Creates `dir` and its missing parents, mode 0700 (an existing folder is left as it is).
pub fn create_private_dir(dir: &Path) -> io::Result<()> {
    let mut b = fs::DirBuilder::new();
    b.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut b, 0o700);
    b.create(dir)
}

/// Creates the folder of `path` (0700) unless it is there or `path` has none.
pub fn create_parent_dir(path: &Path) -> io::Result<()> {
    match path.parent().filter(|d| !d.as_os_str().is_empty()) {
        Some(dir) if !dir.is_dir() => create_private_dir(dir),
        _ => Ok(()),
    }
}

/// Opens `path` read-write, creating it with mode 0600 if it does not exist (an existing
/// file keeps its mode).
pub fn open_private_file(path: &Path) -> io::Result<File> {
    let mut o = OpenOptions::new();
    o.read(true).write(true).create(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut o, 0o600);
    o.open(path)
}

/// Creates `path` exclusively, mode 0600. Never through a link: `O_EXCL` refuses any
/// existing entry, a symlink included (`O_NOFOLLOW` says so explicitly).
pub fn create_new(path: &Path) -> io::Result<File> {
    let mut o = OpenOptions::new();
    o.read(true).write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        o.mode(0o600).custom_flags(libc::O_NOFOLLOW);
    }
    o.open(path)
}

/// A new temporary file `.{name}.tessera-XXXXXX.tmp` in `dir`: random name, created by
/// [`create_new`] (0600, never through a link), deleted unless persisted.
pub fn new_temp_file(dir: &Path, name: &str) -> io::Result<tempfile::NamedTempFile> {
    tempfile::Builder::new()
        .prefix(&format!(".{name}.tessera-"))
        .suffix(".tmp")
        .make_in(dir, create_new)
}

/// Replaces `path` with `bytes` atomically: a new temporary file ([`new_temp_file`]) in
/// the same folder, mtime set to the exact current time, fsync, rename over `path`, fsync
/// of the folder. A symlink's target is replaced, not the link. The result is mode 0600
/// whatever the old file's mode was. On failure the old file is left as it was and the
/// temporary file is removed. The folder must exist. Returns the path replaced (the
/// link's target for a link).
pub fn replace_file(path: &Path, bytes: &[u8]) -> io::Result<PathBuf> {
    let target = match fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_symlink() => fs::canonicalize(path)?,
        _ => path.to_path_buf(),
    };
    let dir = match target.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let name = target
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "file".into());
    let mut tmp = new_temp_file(&dir, &name)?;
    tmp.write_all(bytes)?;
    // The exact time, not the file system's coarse clock: MSAL Python reloads a cache
    // only when its mtime is newer than its last load.
    tmp.as_file().set_modified(SystemTime::now())?;
    tmp.as_file().sync_all()?;
    // (A failed rename drops, and so deletes, the temporary file.)
    tmp.persist(&target).map_err(|e| e.error)?;
    #[cfg(unix)]
    if let Err(e) = File::open(&dir).and_then(|d| d.sync_all()) {
        tracing::debug!(error = %e, "fsync of the folder failed");
    }
    Ok(target)
}

/// Moves `from` to `to` without ever replacing an existing `to` (a hard link, then the
/// old name removed; where there are no hard links, a check and a rename).
pub fn move_no_clobber(from: &Path, to: &Path) -> io::Result<()> {
    match fs::hard_link(from, to) {
        Ok(()) => fs::remove_file(from),
        Err(e)
            if e.kind() == io::ErrorKind::AlreadyExists || e.kind() == io::ErrorKind::NotFound =>
        {
            Err(e)
        }
        Err(_) if to.exists() => Err(io::ErrorKind::AlreadyExists.into()),
        Err(_) => fs::rename(from, to),
    }
}

/// Moves `path` to `<name>.<why>-<UTC time>` (`.1`, `.2`... when that exists), and each
/// existing `<name><suffix>` of `companions` beside it to `<new name><suffix>`: never
/// deletes, never replaces a file. Returns the new path.
pub fn move_aside(path: &Path, why: &str, companions: &[&str]) -> io::Result<PathBuf> {
    let stamp = time::OffsetDateTime::now_utc()
        .format(time::macros::format_description!(
            "[year][month][day]T[hour][minute][second]Z"
        ))
        .unwrap_or_else(|_| "unknown-time".into());
    let mut n = 0;
    let target = loop {
        let candidate = if n == 0 {
            sibling(path, &format!(".{why}-{stamp}"))
        } else {
            sibling(path, &format!(".{why}-{stamp}.{n}"))
        };
        match move_no_clobber(path, &candidate) {
            Ok(()) => break candidate,
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists && n < 1000 => n += 1,
            Err(e) => return Err(e),
        }
    };
    for suffix in companions {
        let from = sibling(path, suffix);
        if from.exists() {
            move_no_clobber(&from, &sibling(&target, suffix))?;
        }
    }
    Ok(target)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(unix)]
    fn mode(p: &Path) -> u32 {
        use std::os::unix::fs::PermissionsExt;
        fs::metadata(p).unwrap().permissions().mode() & 0o777
    }

    #[cfg(unix)]
    #[test]
    fn private_files_are_replaced_atomically_through_symlinks() {
        use std::os::unix::fs::PermissionsExt;
        let tmp = tempfile::tempdir().unwrap();
        let real = tmp.path().join("real.yaml");
        fs::write(&real, b"old").unwrap();
        fs::set_permissions(&real, fs::Permissions::from_mode(0o644)).unwrap();
        let link = tmp.path().join("link.yaml");
        std::os::unix::fs::symlink(&real, &link).unwrap();
        assert_eq!(replace_file(&link, b"new").unwrap(), real);
        assert!(fs::symlink_metadata(&link)
            .unwrap()
            .file_type()
            .is_symlink());
        assert_eq!(fs::read(&real).unwrap(), b"new");
        assert_eq!(mode(&real), 0o600);
        let names: Vec<_> = fs::read_dir(tmp.path()).unwrap().collect();
        assert_eq!(names.len(), 2, "no temporary file is left behind");
        let missing_dir = tmp.path().join("nope/file");
        assert!(replace_file(&missing_dir, b"x").is_err());
    }

    #[cfg(unix)]
    #[test]
    fn private_folders_and_files_are_0700_and_0600() {
        let tmp = tempfile::tempdir().unwrap();
        let file = tmp.path().join("a/b/store.db");
        create_parent_dir(&file).unwrap();
        assert_eq!(mode(&tmp.path().join("a")), 0o700);
        assert_eq!(mode(&tmp.path().join("a/b")), 0o700);
        open_private_file(&file).unwrap();
        assert_eq!(mode(&file), 0o600);
        let e = create_new(&file).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::AlreadyExists);
    }

    #[test]
    fn moving_aside_never_replaces_a_file() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("store.db");
        let first = {
            fs::write(&path, b"one").unwrap();
            fs::write(sibling(&path, "-wal"), b"wal").unwrap();
            move_aside(&path, "reset", &["-wal", "-shm"]).unwrap()
        };
        fs::write(&path, b"two").unwrap();
        let second = move_aside(&path, "reset", &["-wal", "-shm"]).unwrap();
        assert_ne!(first, second);
        assert!(!path.exists());
        assert_eq!(fs::read(&first).unwrap(), b"one");
        assert_eq!(fs::read(sibling(&first, "-wal")).unwrap(), b"wal");
        assert_eq!(fs::read(&second).unwrap(), b"two");
        let name = first.file_name().unwrap().to_string_lossy().into_owned();
        assert!(name.starts_with("store.db.reset-20"), "{name}");
        fs::write(&path, b"three").unwrap();
        let e = move_no_clobber(&path, &second).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::AlreadyExists);
        assert_eq!(fs::read(&second).unwrap(), b"two");
    }
}
