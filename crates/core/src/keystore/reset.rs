//! [`reset_store`]: `tessera-cli store reset`. The store is moved aside, never deleted.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::keys::{store_id, KeyStore, OsKeyring};
use super::open::open_existing;
use crate::error::{Error, Result, StoreError};

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

#[cfg(test)]
mod tests {
    use super::super::open::tests::{account, opts};
    use super::*;
    use crate::cache::TokenStore;
    use crate::keystore::{open_store, MemoryKeys};

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
}
