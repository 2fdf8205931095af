//! The one seam every stored secret goes through. A backend hands each secret to
//! [`Cipher::seal`] with the entry's cache key as associated data, and stores the result;
//! reading it back needs the same key, so a sealed value cannot be moved to another entry.
//!
//! Sealed format: one version byte, then
//! - `0x00` ([`PlaintextCipher`]): the plaintext as is;
//! - `0x01` ([`AesGcmCipher`]): a fresh random 96-bit nonce, then AES-256-GCM
//!   ciphertext and 16-byte tag.
//!
//! Each cipher opens only its own version, so a store written with a key is not readable
//! without it, and a plaintext value planted in an encrypted store is rejected.

use aes_gcm::aead::{Aead, AeadCore, KeyInit, OsRng, Payload};
use aes_gcm::{Aes256Gcm, Key, Nonce};
use zeroize::Zeroize;

use crate::error::StoreError;

const V_PLAINTEXT: u8 = 0x00;
const V_AES_256_GCM: u8 = 0x01;
const NONCE_LEN: usize = 12;
const TAG_LEN: usize = 16;

pub trait Cipher: Send + Sync {
    fn seal(&self, aad: &[u8], plaintext: &[u8]) -> Result<Vec<u8>, StoreError>;
    fn open(&self, aad: &[u8], sealed: &[u8]) -> Result<Vec<u8>, StoreError>;
    /// Does this cipher keep secrets confidential (for `describe`)?
    fn is_encrypting(&self) -> bool;
}

/// Stores secrets unencrypted (the store file's 0600 mode is the only protection), for
/// systems without a keyring and for MSAL-compatible plaintext caches.
#[derive(Debug, Default, Clone, Copy)]
pub struct PlaintextCipher;

impl Cipher for PlaintextCipher {
    fn seal(&self, _aad: &[u8], plaintext: &[u8]) -> Result<Vec<u8>, StoreError> {
        let mut out = Vec::with_capacity(1 + plaintext.len());
        out.push(V_PLAINTEXT);
        out.extend_from_slice(plaintext);
        Ok(out)
    }

    fn open(&self, _aad: &[u8], sealed: &[u8]) -> Result<Vec<u8>, StoreError> {
        match sealed.split_first() {
            Some((&V_PLAINTEXT, rest)) => Ok(rest.to_vec()),
            Some((&V_AES_256_GCM, _)) => Err(StoreError::Crypto(
                "the stored secret is encrypted, but the store was opened without its key".into(),
            )),
            _ => Err(StoreError::Crypto(
                "the stored secret has an unknown format".into(),
            )),
        }
    }

    fn is_encrypting(&self) -> bool {
        false
    }
}

/// A 256-bit store key. `Debug` prints nothing of it; it is zeroed when dropped.
#[derive(Clone)]
pub struct StoreKey([u8; 32]);

impl StoreKey {
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        StoreKey(bytes)
    }

    /// A key from a byte slice (from a keyring), which must be exactly 32 bytes long.
    pub fn from_slice(bytes: &[u8]) -> Result<Self, StoreError> {
        let arr: [u8; 32] = bytes.try_into().map_err(|_| {
            StoreError::Crypto(format!(
                "a store key is 32 bytes long, this one is {}",
                bytes.len()
            ))
        })?;
        Ok(StoreKey(arr))
    }

    /// A new random key from the operating system's generator.
    pub fn generate() -> Self {
        StoreKey(Aes256Gcm::generate_key(&mut OsRng).into())
    }

    /// The key bytes, to put in a keyring. Never log them.
    pub fn secret_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

impl std::fmt::Debug for StoreKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("StoreKey([redacted])")
    }
}

impl Drop for StoreKey {
    fn drop(&mut self) {
        self.0.zeroize();
    }
}

/// AES-256-GCM with a fresh random nonce per value and the caller's AAD (the entry key).
pub struct AesGcmCipher {
    aead: Aes256Gcm,
}

impl AesGcmCipher {
    pub fn new(key: &StoreKey) -> Self {
        AesGcmCipher {
            aead: Aes256Gcm::new(Key::<Aes256Gcm>::from_slice(&key.0)),
        }
    }
}

impl std::fmt::Debug for AesGcmCipher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AesGcmCipher([redacted])")
    }
}

impl Cipher for AesGcmCipher {
    fn seal(&self, aad: &[u8], plaintext: &[u8]) -> Result<Vec<u8>, StoreError> {
        let nonce = Aes256Gcm::generate_nonce(&mut OsRng);
        let ct = self
            .aead
            .encrypt(
                &nonce,
                Payload {
                    msg: plaintext,
                    aad,
                },
            )
            .map_err(|_| StoreError::Crypto("encryption failed".into()))?;
        let mut out = Vec::with_capacity(1 + NONCE_LEN + ct.len());
        out.push(V_AES_256_GCM);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&ct);
        Ok(out)
    }

    fn open(&self, aad: &[u8], sealed: &[u8]) -> Result<Vec<u8>, StoreError> {
        match sealed.first() {
            Some(&V_AES_256_GCM) => {}
            Some(&V_PLAINTEXT) => {
                return Err(StoreError::Crypto(
                    "the stored secret is not encrypted, but this store requires encryption".into(),
                ))
            }
            _ => {
                return Err(StoreError::Crypto(
                    "the stored secret has an unknown format".into(),
                ))
            }
        }
        if sealed.len() < 1 + NONCE_LEN + TAG_LEN {
            return Err(StoreError::Crypto("the stored secret is truncated".into()));
        }
        let (nonce, ct) = sealed[1..].split_at(NONCE_LEN);
        self.aead
            .decrypt(Nonce::from_slice(nonce), Payload { msg: ct, aad })
            .map_err(|_| {
                StoreError::Crypto(
                    "a stored secret does not match its key: it was written with another \
                 encryption key, or altered"
                        .into(),
                )
            })
    }

    fn is_encrypting(&self) -> bool {
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cipher() -> AesGcmCipher {
        AesGcmCipher::new(&StoreKey::from_bytes([7u8; 32]))
    }

    #[test]
    fn aes_gcm_round_trip_and_format() {
        let c = cipher();
        let sealed = c.seal(b"key-a", b"refresh-token-value").unwrap();
        assert_eq!(sealed[0], 0x01);
        assert_eq!(sealed.len(), 1 + 12 + b"refresh-token-value".len() + 16);
        assert!(
            !sealed.windows(7).any(|w| w == b"refresh"),
            "plaintext visible in the sealed value"
        );
        assert_eq!(c.open(b"key-a", &sealed).unwrap(), b"refresh-token-value");
        assert_eq!(
            c.open(b"key-a", &c.seal(b"key-a", b"").unwrap()).unwrap(),
            b""
        );
    }

    #[test]
    fn a_value_sealed_for_one_entry_does_not_open_for_another() {
        let c = cipher();
        let sealed = c
            .seal(b"alice-login.microsoftonline.com-refreshtoken-app--", b"rt")
            .unwrap();
        let err = c
            .open(
                b"mallory-login.microsoftonline.com-refreshtoken-app--",
                &sealed,
            )
            .unwrap_err();
        assert!(matches!(err, StoreError::Crypto(_)), "{err:?}");
    }

    #[test]
    fn every_tampered_byte_is_detected() {
        let c = cipher();
        let sealed = c.seal(b"k", b"access-token").unwrap();
        for i in 0..sealed.len() {
            let mut t = sealed.clone();
            t[i] ^= 0x01;
            assert!(
                c.open(b"k", &t).is_err(),
                "flipping byte {i} went unnoticed"
            );
        }
        assert!(c.open(b"k", &sealed[..sealed.len() - 1]).is_err());
        assert!(c.open(b"k", &sealed[..10]).is_err());
        assert!(c.open(b"k", &[]).is_err());
    }

    #[test]
    fn two_seals_of_the_same_value_differ() {
        let c = cipher();
        let a = c.seal(b"k", b"same").unwrap();
        let b = c.seal(b"k", b"same").unwrap();
        assert_ne!(a, b);
        assert_ne!(a[1..13], b[1..13], "nonce reused");
    }

    #[test]
    fn another_key_cannot_open() {
        let sealed = cipher().seal(b"k", b"secret").unwrap();
        let other = AesGcmCipher::new(&StoreKey::generate());
        assert!(matches!(
            other.open(b"k", &sealed),
            Err(StoreError::Crypto(_))
        ));
    }

    #[test]
    fn plaintext_and_encrypted_values_are_not_confused() {
        let plain = PlaintextCipher.seal(b"k", b"token").unwrap();
        assert_eq!(plain, b"\x00token");
        assert_eq!(PlaintextCipher.open(b"k", &plain).unwrap(), b"token");
        let err = cipher().open(b"k", &plain).unwrap_err();
        assert!(err.to_string().contains("not encrypted"), "{err}");
        let sealed = cipher().seal(b"k", b"token").unwrap();
        let err = PlaintextCipher.open(b"k", &sealed).unwrap_err();
        assert!(err.to_string().contains("without its key"), "{err}");
        assert!(!PlaintextCipher.is_encrypting());
        assert!(cipher().is_encrypting());
    }

    #[test]
    fn keys_are_redacted_and_checked() {
        let k = StoreKey::from_bytes([0xAB; 32]);
        let shown = format!("{k:?} {:?}", AesGcmCipher::new(&k));
        assert_eq!(shown, "StoreKey([redacted]) AesGcmCipher([redacted])");
        assert!(StoreKey::from_slice(&[1; 31]).is_err());
        assert_eq!(
            StoreKey::from_slice(&[1; 32]).unwrap().secret_bytes(),
            &[1; 32]
        );
        assert_ne!(
            StoreKey::generate().secret_bytes(),
            StoreKey::generate().secret_bytes()
        );
    }
}
