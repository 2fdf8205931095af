//! `store-writer --store PATH [--allow-plaintext] [--seconds N]`: opens a token store the
//! way Tessera does (`keystore::open_store`: key from the OS keyring) and writes to it in a
//! tight loop, for the crash test in `tests/it/storage.rs`, which kills it with SIGKILL.
//!
//! Prints `ready` once the store is open, then the sequence number of each committed
//! write, one per line (flushed), so the test knows what must have survived. Each write
//! is a whole token response (access, refresh and ID token, account, and a `progress`
//! app-metadata entry carrying the sequence number); every 7th write also signs an
//! account out, every 5th rotates a refresh token. Stops by itself after `--seconds`
//! (default 60).

use std::io::Write;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use clap::Parser;
use serde_json::{json, Map};
use tessera_core::cache::{
    refresh_token_key, AccessTokenEntry, AccountEntry, AppMetadataEntry, IdTokenEntry,
    RefreshTokenEntry, TokenStore, TokenWrite,
};
use tessera_core::keystore::{open_store, StoreOptions};
use tessera_core::secret::{AccessToken, IdTokenString, RefreshToken};

/// The environment, client and realm of everything this writer stores.
const ENVIRONMENT: &str = "login.writer.example";
const CLIENT_ID: &str = "store-writer-client";
const REALM: &str = "writer-tenant";
const ACCOUNTS: u64 = 16;

#[derive(Parser)]
struct Args {
    #[arg(long)]
    store: PathBuf,
    #[arg(long)]
    allow_plaintext: bool,
    #[arg(long, default_value_t = 60)]
    seconds: u64,
}

fn main() {
    let args = Args::parse();
    let opened = match open_store(
        &args.store,
        &StoreOptions {
            allow_plaintext: args.allow_plaintext,
            keystore: None,
        },
    ) {
        Ok(o) => o,
        Err(e) => {
            eprintln!("store-writer: {e}");
            std::process::exit(5);
        }
    };
    let store = opened.store;
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "ready {}", opened.info.protection);
    let _ = out.flush();
    let deadline = Instant::now() + Duration::from_secs(args.seconds);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    let mut seq: u64 = 0;
    while Instant::now() < deadline {
        seq += 1;
        let n = seq % ACCOUNTS;
        let hid = format!("uid{n}.{REALM}");
        let mut progress = Map::new();
        progress.insert("seq".into(), json!(seq));
        // Secrets of varying size, so pages split and the WAL grows.
        let padding = "x".repeat((seq % 13) as usize * 150);
        let rt = RefreshTokenEntry {
            home_account_id: hid.clone(),
            environment: ENVIRONMENT.into(),
            client_id: CLIENT_ID.into(),
            target: "offline_access openid profile".into(),
            secret: RefreshToken::new(format!("rt-{seq}-{padding}")),
            family_id: None,
            last_modification_time: Some(now),
            extra: Map::new(),
        };
        let rotated = seq.is_multiple_of(5).then(|| {
            (
                refresh_token_key(&rt),
                RefreshToken::new(format!("rt-rotated-{seq}")),
            )
        });
        let w = TokenWrite {
            access_token: Some(AccessTokenEntry {
                home_account_id: hid.clone(),
                environment: ENVIRONMENT.into(),
                client_id: CLIENT_ID.into(),
                realm: REALM.into(),
                target: format!("scope{} openid", seq % 4),
                secret: AccessToken::new(format!("at-{seq}-{padding}")),
                token_type: "Bearer".into(),
                cached_at: now,
                expires_on: now + 3600,
                extended_expires_on: None,
                refresh_on: None,
                extra: Map::new(),
            }),
            refresh_token: Some(rt),
            id_token: Some(IdTokenEntry {
                home_account_id: hid.clone(),
                environment: ENVIRONMENT.into(),
                realm: REALM.into(),
                client_id: CLIENT_ID.into(),
                secret: IdTokenString::new(format!("idt-{seq}")),
                extra: Map::new(),
            }),
            account: Some(AccountEntry {
                home_account_id: hid,
                environment: ENVIRONMENT.into(),
                realm: REALM.into(),
                local_account_id: format!("uid{n}"),
                username: format!("user{n}@writer.example"),
                authority_type: "MSSTS".into(),
                account_source: None,
                name: None,
                extra: Map::new(),
            }),
            app_metadata: Some(AppMetadataEntry {
                client_id: "progress".into(),
                environment: ENVIRONMENT.into(),
                family_id: None,
                extra: progress,
            }),
            rotated_refresh_token: rotated,
        };
        if let Err(e) = store.write(w) {
            eprintln!("store-writer: write {seq} failed: {e}");
            std::process::exit(5);
        }
        if seq.is_multiple_of(7) {
            let gone = format!("uid{}.{REALM}", (seq + 3) % ACCOUNTS);
            if let Err(e) = store.remove_account(&gone, &[ENVIRONMENT.to_string()]) {
                eprintln!("store-writer: sign-out at {seq} failed: {e}");
                std::process::exit(5);
            }
        }
        if writeln!(out, "{seq}").and_then(|()| out.flush()).is_err() {
            break;
        }
    }
}
