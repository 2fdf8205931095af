//! Reading the pages the scripted user agents meet: the sandbox's one HTML reader
//! (`tessera_sandbox_idp::html`, on `scraper`).

pub(crate) use tessera_sandbox_idp::html::{forms, text, texts, title};
