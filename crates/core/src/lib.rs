//! Tessera's engine: sign-in flows with MSAL's semantics, the token store, and token
//! decoding. No GUI, no global state: I/O ([`http::HttpClient`], [`cache::TokenStore`]),
//! the clock and randomness ([`env`](mod@env)) are injected, so every protocol rule is a plain
//! function that can be unit-tested.
//!
//! Map of the crate (see ARCHITECTURE.md for the invariants):
//! - [`authority`]: parse Entra / B2C / CIAM authorities and generic OIDC issuers.
//! - [`discovery`]: OpenID provider metadata and Entra instance discovery (aliases).
//! - [`authcode`], [`device`], [`refresh`]: one `*_request` / `process_*` pair per step.
//! - [`token`], [`id_token`]: token responses, Entra errors, ID token checks, identity.
//! - [`cache`]: MSAL's unified cache model and the [`cache::TokenStore`] seam.
//! - [`app`]: [`app::PublicClientApplication`], MSAL's API on top of all of the above.
//! - [`loopback`]: the system browser and a loopback listener (RFC 8252), a user agent.
//! - [`decode`]: human-readable token decoding.
//! - [`profile`], [`paths`]: profiles.toml and where things live.
//! - [`keystore`]: the store's key in the OS keyring and how a store is opened.
//! - [`fsutil`]: private folders and files, atomic replacement, moving a file aside.

pub mod agent;
pub mod app;
pub mod authcode;
pub mod authority;
pub mod cache;
pub mod context;
pub mod decode;
pub mod device;
pub mod discovery;
pub mod env;
pub mod error;
pub mod fsutil;
pub mod http;
pub mod id_token;
pub mod jwt;
pub mod keystore;
pub mod loopback;
pub mod paths;
pub mod profile;
pub mod refresh;
pub mod scopes;
pub mod secret;
pub mod token;
pub mod tools;

pub use error::{Error, InteractionReason, ProviderError, Result, StoreError};
