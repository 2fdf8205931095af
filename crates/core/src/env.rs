//! The environment the protocol steps run in: time and randomness, injected so that
//! every rule can be tested with a fixed clock and predictable "random" values.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Mutex;

/// Seconds since the Unix epoch.
pub type UnixTime = i64;

pub trait Clock: Send + Sync {
    fn now(&self) -> UnixTime;
}

pub trait Entropy: Send + Sync {
    /// Fill `buf` with cryptographically secure random bytes.
    fn fill(&self, buf: &mut [u8]);

    /// `n` random bytes, base64url without padding (state, nonce, PKCE verifier).
    fn token(&self, n: usize) -> String {
        use base64::Engine;
        let mut bytes = vec![0u8; n];
        self.fill(&mut bytes);
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    }
}

#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> UnixTime {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs() as i64)
            .unwrap_or(0)
    }
}

#[derive(Debug, Default, Clone, Copy)]
pub struct OsEntropy;

impl Entropy for OsEntropy {
    fn fill(&self, buf: &mut [u8]) {
        use rand::RngCore;
        rand::rngs::OsRng.fill_bytes(buf);
    }
}

/// A clock for tests: starts where you say and moves only when told.
#[derive(Debug)]
pub struct FixedClock(AtomicI64);

impl FixedClock {
    pub fn new(now: UnixTime) -> Self {
        Self(AtomicI64::new(now))
    }
    pub fn advance(&self, secs: i64) {
        self.0.fetch_add(secs, Ordering::SeqCst);
    }
    pub fn set(&self, now: UnixTime) {
        self.0.store(now, Ordering::SeqCst);
    }
}

impl Clock for FixedClock {
    fn now(&self) -> UnixTime {
        self.0.load(Ordering::SeqCst)
    }
}

/// Deterministic bytes for tests: a counter, so two calls never repeat.
#[derive(Debug, Default)]
pub struct CountingEntropy(Mutex<u8>);

impl Entropy for CountingEntropy {
    fn fill(&self, buf: &mut [u8]) {
        let mut next = self.0.lock().unwrap_or_else(|e| e.into_inner());
        for b in buf.iter_mut() {
            *b = *next;
            *next = next.wrapping_add(1);
        }
    }
}
