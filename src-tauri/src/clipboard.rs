//! Copying tokens. The token goes from the engine to the system clipboard in Rust (it
//! never enters the webview), marked as a secret for clipboard managers. After the
//! configured delay, and when the app exits, the clipboard is cleared, but only if it
//! still holds the last token Tessera put there; the UI then hears `clipboard:cleared`.
//!
//! Tessera remembers a keyed hash of what it copied, not the text. A copy writes the
//! clipboard and records its hash under one lock, so the record always names what is on
//! the clipboard, however copies interleave.

use std::hash::{BuildHasher, RandomState};
use std::sync::Mutex;
use std::time::Duration;

use tauri::{AppHandle, Emitter, Manager, Runtime};
use tauri_plugin_clipboard_manager::ClipboardExt;

use crate::base::lock;
use crate::error::{AppError, AppResult};
use crate::views::EVENT_CLIPBOARD_CLEARED;

/// The clipboard feature's state (managed by Tauri as its own value).
#[derive(Debug, Default)]
pub struct ClipboardState {
    mark: Mutex<ClipboardMark>,
}

/// The system clipboard as copying and clearing use it: the clipboard plugin in the app,
/// an in-memory one in unit tests.
pub trait SystemClipboard {
    /// Write `text`; `secret` asks clipboard managers to keep it out of their history.
    fn write(&self, text: &str, secret: bool) -> Result<(), String>;
    /// The clipboard's text, if it holds text.
    fn read(&self) -> Option<String>;
    fn clear(&self) -> Result<(), String>;
}

impl<R: Runtime> SystemClipboard for tauri_plugin_clipboard_manager::Clipboard<R> {
    fn write(&self, text: &str, secret: bool) -> Result<(), String> {
        let written = if secret {
            self.write_secret(text)
        } else {
            self.write_text(text)
        };
        written.map_err(|e| e.to_string())
    }

    fn read(&self) -> Option<String> {
        self.read_text().ok()
    }

    fn clear(&self) -> Result<(), String> {
        tauri_plugin_clipboard_manager::Clipboard::clear(self).map_err(|e| e.to_string())
    }
}

/// What Tessera last put on the clipboard.
#[derive(Debug, Default)]
pub struct ClipboardMark {
    /// Bumped on every copy: a pending clear of an older copy does nothing.
    generation: u64,
    /// Keyed hash of the last copied secret while it is to be cleared.
    digest: Option<u64>,
    hasher: RandomState,
}

/// Write `text` and record it, both under `mark`'s lock. Returns the copy's generation
/// when it is a secret to clear later (`clear_after` is `Some`); other text is not cleared.
pub fn copy_with(
    mark: &Mutex<ClipboardMark>,
    clipboard: &dyn SystemClipboard,
    text: &str,
    secret: bool,
    clear_after: Option<Duration>,
) -> AppResult<Option<u64>> {
    let mut mark = lock(mark);
    clipboard
        .write(text, secret)
        .map_err(|e| AppError::desktop("Cannot write to the clipboard", e))?;
    mark.generation += 1;
    mark.digest = (secret && clear_after.is_some()).then(|| mark.hasher.hash_one(text));
    Ok(mark.digest.map(|_| mark.generation))
}

/// Clear the clipboard if it still holds the last secret Tessera copied and, when
/// `generation` is given, that copy is still the last one. Returns whether it cleared.
pub fn clear_with(
    mark: &Mutex<ClipboardMark>,
    clipboard: &dyn SystemClipboard,
    generation: Option<u64>,
) -> bool {
    let mut mark = lock(mark);
    if generation.is_some_and(|g| g != mark.generation) {
        return false;
    }
    let Some(digest) = mark.digest.take() else {
        return false;
    };
    let current = clipboard.read();
    if current.is_none_or(|c| mark.hasher.hash_one(c.as_str()) != digest) {
        tracing::debug!("the clipboard changed since the copy; left as is");
        return false;
    }
    match clipboard.clear() {
        Ok(()) => true,
        Err(e) => {
            tracing::warn!(error = %e, "could not clear the clipboard");
            false
        }
    }
}

/// Put `text` on the clipboard as a secret and schedule the clearing (`0`: never).
pub fn copy_secret<R: Runtime>(
    app: &AppHandle<R>,
    text: &str,
    clear_after_secs: u64,
) -> AppResult<()> {
    let state = app.state::<ClipboardState>();
    let delay = (clear_after_secs > 0).then(|| Duration::from_secs(clear_after_secs));
    let generation = copy_with(&state.mark, app.clipboard(), text, true, delay)?;
    if let (Some(generation), Some(delay)) = (generation, delay) {
        let app = app.clone();
        tauri::async_runtime::spawn(async move {
            tokio::time::sleep(delay).await;
            clear_if_ours(&app, generation);
        });
    }
    Ok(())
}

/// Put non-secret text (a device code) on the clipboard; it is not cleared, and a token
/// copied earlier is no longer there to clear.
pub fn copy_plain<R: Runtime>(app: &AppHandle<R>, text: &str) -> AppResult<()> {
    let state = app.state::<ClipboardState>();
    copy_with(&state.mark, app.clipboard(), text, false, None).map(|_| ())
}

/// Clear the clipboard if copy `generation` is still the last one and its text is still
/// there. Returns whether it cleared.
pub fn clear_if_ours<R: Runtime>(app: &AppHandle<R>, generation: u64) -> bool {
    let state = app.state::<ClipboardState>();
    let cleared = clear_with(&state.mark, app.clipboard(), Some(generation));
    if cleared {
        tracing::info!("clipboard cleared");
        let _ = app.emit(EVENT_CLIPBOARD_CLEARED, ());
    }
    cleared
}

/// How long the app's exit waits for the clipboard.
const EXIT_WAIT: Duration = Duration::from_secs(2);

/// On exit: clear the clipboard if it still holds the last token copied to be cleared
/// (on Windows and macOS, and under a clipboard manager, it would outlive the app and its
/// timer). Runs before the clipboard plugin lets go of the clipboard, on its own thread
/// (reading the clipboard on the main thread can deadlock when this app's webview owns
/// it), waiting at most [`EXIT_WAIT`].
pub fn clear_on_exit<R: Runtime>(app: &AppHandle<R>) {
    let app = app.clone();
    let (tx, rx) = std::sync::mpsc::channel();
    let spawned = std::thread::Builder::new()
        .name("clipboard-exit".into())
        .spawn(move || {
            let state = app.state::<ClipboardState>();
            let _ = tx.send(clear_with(&state.mark, app.clipboard(), None));
        });
    match spawned.map(|_| rx.recv_timeout(EXIT_WAIT)) {
        Ok(Ok(true)) => tracing::info!("clipboard cleared on exit"),
        Ok(Ok(false)) => {}
        _ => tracing::warn!("could not clear the clipboard on exit"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Barrier};

    /// A clipboard that keeps what was last written, as Windows and macOS do after the
    /// app exits and a clipboard manager does on Linux.
    #[derive(Default)]
    struct Persistent {
        text: Mutex<Option<String>>,
        /// Written before the write of the given text returns (to interleave copies).
        pause_on: Option<(String, Arc<Barrier>)>,
    }

    impl SystemClipboard for Persistent {
        fn write(&self, text: &str, _secret: bool) -> Result<(), String> {
            *lock(&self.text) = Some(text.to_string());
            if let Some((on, barrier)) = &self.pause_on {
                if on == text {
                    barrier.wait();
                    std::thread::sleep(Duration::from_millis(200));
                }
            }
            Ok(())
        }
        fn read(&self) -> Option<String> {
            lock(&self.text).clone()
        }
        fn clear(&self) -> Result<(), String> {
            *lock(&self.text) = None;
            Ok(())
        }
    }

    const T30: Option<Duration> = Some(Duration::from_secs(30));

    #[test]
    fn the_clear_of_an_older_copy_does_nothing_and_the_last_one_clears() {
        let mark = Mutex::new(ClipboardMark::default());
        let cb = Persistent::default();
        let a = copy_with(&mark, &cb, "token-A", true, T30)
            .unwrap()
            .unwrap();
        let b = copy_with(&mark, &cb, "token-B", true, T30)
            .unwrap()
            .unwrap();
        // A's timer fires first: B stays (its own 30 s have not passed).
        assert!(!clear_with(&mark, &cb, Some(a)));
        assert_eq!(cb.read().as_deref(), Some("token-B"));
        // B's timer clears it.
        assert!(clear_with(&mark, &cb, Some(b)));
        assert_eq!(cb.read(), None);
    }

    #[test]
    fn a_clipboard_changed_by_the_user_is_left_alone() {
        let mark = Mutex::new(ClipboardMark::default());
        let cb = Persistent::default();
        let a = copy_with(&mark, &cb, "token-A", true, T30)
            .unwrap()
            .unwrap();
        cb.write("the user's text", false).unwrap();
        assert!(!clear_with(&mark, &cb, Some(a)));
        assert!(!clear_with(&mark, &cb, None), "nor on exit");
        assert_eq!(cb.read().as_deref(), Some("the user's text"));
    }

    #[test]
    fn exit_clears_the_last_token_still_there() {
        let mark = Mutex::new(ClipboardMark::default());
        let cb = Persistent::default();
        copy_with(&mark, &cb, "token-A", true, T30).unwrap();
        copy_with(&mark, &cb, "token-B", true, T30).unwrap();
        assert!(
            clear_with(&mark, &cb, None),
            "the app quits before the timer"
        );
        assert_eq!(cb.read(), None);
    }

    #[test]
    fn exit_leaves_what_is_not_to_be_cleared() {
        // A device code, and a token copied with clearing turned off (0 s).
        for (text, secret, clear_after) in [("ABCD-EFGH", false, T30), ("token", true, None)] {
            let mark = Mutex::new(ClipboardMark::default());
            let cb = Persistent::default();
            copy_with(&mark, &cb, "token-A", true, T30).unwrap();
            assert_eq!(
                copy_with(&mark, &cb, text, secret, clear_after).unwrap(),
                None
            );
            assert!(!clear_with(&mark, &cb, None));
            assert_eq!(cb.read().as_deref(), Some(text));
        }
    }

    /// Two copies at once (say "Copy access token" and "Copy as header", each after its
    /// own token request): whichever text ends on the clipboard is the one recorded, so
    /// its clear finds it.
    #[test]
    fn interleaved_copies_leave_the_clipboard_with_a_pending_clear() {
        let barrier = Arc::new(Barrier::new(2));
        let cb = Arc::new(Persistent {
            text: Mutex::new(None),
            pause_on: Some(("token-A".into(), Arc::clone(&barrier))),
        });
        let mark = Arc::new(Mutex::new(ClipboardMark::default()));
        let first = {
            let (cb, mark) = (Arc::clone(&cb), Arc::clone(&mark));
            std::thread::spawn(move || copy_with(&mark, &*cb, "token-A", true, T30).unwrap())
        };
        // A is written (and its copy is not finished) when B's copy starts.
        barrier.wait();
        let b = copy_with(&mark, &*cb, "token-B", true, T30).unwrap();
        let a = first.join().unwrap();
        let last = a.max(b);
        assert!(
            clear_with(&mark, &*cb, last),
            "the last copy's clear finds its text on the clipboard"
        );
        assert_eq!(cb.read(), None, "no token left behind");
    }
}
