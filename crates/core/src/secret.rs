//! Secret newtypes. Their `Debug` never prints the value, and there is no `Display`:
//! reading a secret is always an explicit `.secret()` call that a reviewer can grep for.
//!
//! The OAuth 2.0 ones come from the `oauth2` crate (same guarantees); the ones it lacks
//! are defined here with the same shape.

pub use oauth2::{
    AccessToken, AuthorizationCode, CsrfToken, DeviceCode, PkceCodeChallenge, PkceCodeVerifier,
    RefreshToken,
};

macro_rules! secret_string {
    ($(#[$meta:meta])* $name:ident) => {
        $(#[$meta])*
        #[derive(Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            pub fn new(value: impl Into<String>) -> Self {
                Self(value.into())
            }
            /// The secret value. Never log it.
            pub fn secret(&self) -> &str {
                &self.0
            }
            pub fn into_secret(self) -> String {
                self.0
            }
        }

        impl std::fmt::Debug for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(concat!(stringify!($name), "([redacted])"))
            }
        }
    };
}

secret_string!(
    /// A raw ID token (a JWT). It identifies the user, so it is kept like a credential.
    IdTokenString
);
secret_string!(
    /// The OpenID Connect `nonce` sent with an authorization request.
    Nonce
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_prints_the_value() {
        let all = format!(
            "{:?} {:?} {:?} {:?} {:?}",
            IdTokenString::new("eyJhbGciOi.secret-id-token"),
            Nonce::new("nonce-value-123"),
            AccessToken::new("at-secret-value".into()),
            RefreshToken::new("rt-secret-value".into()),
            PkceCodeVerifier::new("verifier-secret-value".into()),
        );
        for leaked in [
            "secret-id-token",
            "nonce-value-123",
            "at-secret-value",
            "rt-secret-value",
            "verifier-secret-value",
        ] {
            assert!(
                !all.contains(leaked),
                "{leaked} leaked through Debug: {all}"
            );
        }
        assert!(all.contains("IdTokenString([redacted])"));
    }
}
