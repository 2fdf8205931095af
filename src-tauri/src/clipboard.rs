//! Copying tokens. The token goes from the engine to the system clipboard in Rust (it
//! never enters the webview), marked as a secret for clipboard managers. After the
//! configured delay the clipboard is cleared, but only if it still holds what Tessera put
//! there; the UI then hears `clipboard:cleared`.
//!
//! Tessera remembers a keyed hash of what it copied, not the text.

use std::hash::{BuildHasher, RandomState};
use std::time::Duration;

use tauri::{AppHandle, Emitter, Manager, Runtime};
use tauri_plugin_clipboard_manager::ClipboardExt;

use crate::error::{AppError, AppResult};
use crate::state::{lock, AppState};
use crate::views::EVENT_CLIPBOARD_CLEARED;

/// What Tessera last put on the clipboard.
#[derive(Debug, Default)]
pub struct ClipboardMark {
    /// Bumped on every copy: a pending clear of an older copy does nothing.
    generation: u64,
    /// Keyed hash of the copied text while a clear is pending.
    digest: Option<u64>,
    hasher: RandomState,
}

/// Put `text` on the clipboard as a secret and schedule the clearing.
pub fn copy_secret<R: Runtime>(
    app: &AppHandle<R>,
    text: &str,
    clear_after_secs: u64,
) -> AppResult<()> {
    app.clipboard()
        .write_secret(text)
        .map_err(|e| AppError::desktop("Cannot write to the clipboard", e))?;
    schedule_clear(app, text, clear_after_secs);
    Ok(())
}

/// Put non-secret text (a device code) on the clipboard; it is not cleared.
pub fn copy_plain<R: Runtime>(app: &AppHandle<R>, text: &str) -> AppResult<()> {
    app.clipboard()
        .write_text(text)
        .map_err(|e| AppError::desktop("Cannot write to the clipboard", e))?;
    // A token copied earlier is no longer on the clipboard: forget it.
    let state = app.state::<AppState>();
    let mut mark = lock(&state.clipboard);
    mark.generation += 1;
    mark.digest = None;
    Ok(())
}

fn schedule_clear<R: Runtime>(app: &AppHandle<R>, text: &str, clear_after_secs: u64) {
    let state = app.state::<AppState>();
    let generation = {
        let mut mark = lock(&state.clipboard);
        mark.generation += 1;
        mark.digest = (clear_after_secs > 0).then(|| mark.hasher.hash_one(text));
        mark.generation
    };
    if clear_after_secs == 0 {
        return;
    }
    let app = app.clone();
    tauri::async_runtime::spawn(async move {
        tokio::time::sleep(Duration::from_secs(clear_after_secs)).await;
        clear_if_ours(&app, generation);
    });
}

/// Clear the clipboard if copy `generation` is still the last one and its text is still
/// there. Returns whether it cleared.
pub fn clear_if_ours<R: Runtime>(app: &AppHandle<R>, generation: u64) -> bool {
    let state = app.state::<AppState>();
    let mut mark = lock(&state.clipboard);
    if mark.generation != generation {
        return false;
    }
    let Some(digest) = mark.digest.take() else {
        return false;
    };
    let current = app.clipboard().read_text().ok();
    if current.is_some_and(|c| mark.hasher.hash_one(c.as_str()) == digest) {
        match app.clipboard().clear() {
            Ok(()) => {
                tracing::info!("clipboard cleared");
                let _ = app.emit(EVENT_CLIPBOARD_CLEARED, ());
                return true;
            }
            Err(e) => tracing::warn!(error = %e, "could not clear the clipboard"),
        }
    } else {
        tracing::debug!("the clipboard changed since the copy; left as is");
    }
    false
}
