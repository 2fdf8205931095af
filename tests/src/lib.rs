//! Support library for Tessera's integration suites (`tests/it/`).
//!
//! - [`oidc_provider`]: a real, generic OpenID Connect provider (panva's
//!   `oidc-provider`, run by Node from `tests/oidc-provider/`) plus a scripted
//!   plain-HTTP user agent that signs in through its pages.
//! - [`cli_bin`]: the `tessera-cli` binary under test.
//! - [`home`]: a fresh `TESSERA_HOME` per test.
//! - [`redact`]: assertions that logs carry no secrets.
//! - [`tls`]: a throwaway test CA and a certificate for 127.0.0.1 (https providers), and
//!   an https listener for axum.
//! - [`jwks`]: token checks as a resource server makes them (signature by the JWKS,
//!   audience, expiry).
//! - [`raw_http`]: a raw HTTP/1.1 server's request reader and answer writer.
//! - [`attacker`]: a host claiming Microsoft's cloud, and a victim's MSAL cache.
//! - [`second_user`]: another user knocking at an agent's socket.

pub mod attacker;
pub mod cli_bin;
pub mod home;
mod html;
pub mod jwks;
pub mod oidc_provider;
pub mod raw_http;
pub mod redact;
pub mod second_user;
pub mod tls;
