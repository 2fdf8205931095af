//! The sandbox's integration tests: one binary, a module per area. `common` is a plain
//! OAuth client written against the wire format, not against the sandbox's internals.
//! Run one area with `cargo test -p tessera-sandbox-idp --test it -- flows::`.

mod cli;
mod common;
mod faults;
mod flows;
mod pages;
