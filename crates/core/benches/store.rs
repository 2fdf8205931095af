//! Tessera's side of the benchmarks against MSAL Python (see `docs/benchmarks.md`):
//! silent acquisition end to end, `get_accounts`, storing one token, reading and writing
//! whole MSAL caches, and the keyring lookup, on the stores Tessera has:
//!
//! - `sqlite-aes`: [`SqliteStore`] with [`AesGcmCipher`] (the default store; the key is
//!   given here, the keyring lookup is benchmarked on its own as `keyring/load`),
//! - `msal-file`: [`MsalFileStore`] on a copy of the MSAL file (used in place),
//! - `memory`: [`MemoryStore`] on the parsed file.
//!
//! The data is MSAL Python's own (`bench/gen_cache.py`, through `TokenCache.add()`): the
//! folder `TESSERA_BENCH_DATA` (default `bench/data` in the workspace) with
//! `msal-N.json` and `meta.json`. Sizes: `TESSERA_BENCH_SIZES` (default `100,1000,10000`).
//! `bench/run` generates the data, runs this and MSAL Python's side on it, and writes the
//! table. By hand:
//!
//! ```text
//! tests/msal-python/.venv/bin/python bench/gen_cache.py bench/data
//! cargo bench -p tessera-core --bench store
//! ```

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use serde_json::Value;
use tessera_core::app::{Account, ClientConfig, Deps, PublicClientApplication, SilentOptions};
use tessera_core::authority::Authority;
use tessera_core::cache::msal_file::MsalFileStore;
use tessera_core::cache::transfer;
use tessera_core::cache::{
    AccessTokenEntry, AesGcmCipher, CredentialQuery, MemoryStore, MsalCacheDocument, SqliteStore,
    StoreKey, TokenStore, TokenWrite,
};
use tessera_core::env::{Clock, OsEntropy, SystemClock};
use tessera_core::http::{HttpConfig, ReqwestClient};
use tessera_core::scopes::ScopeSet;
use tessera_core::secret::AccessToken;

struct Meta {
    authority: String,
    client_id: String,
    username: String,
    exact: ScopeSet,
    subset: ScopeSet,
    generated_at: i64,
}

fn data_dir() -> PathBuf {
    std::env::var_os("TESSERA_BENCH_DATA")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../bench/data"))
}

fn sizes() -> Vec<usize> {
    std::env::var("TESSERA_BENCH_SIZES")
        .unwrap_or_else(|_| "100,1000,10000".into())
        .split(',')
        .filter_map(|s| s.trim().parse().ok())
        .collect()
}

fn load_meta(dir: &Path) -> Option<Meta> {
    let text = std::fs::read_to_string(dir.join("meta.json")).ok()?;
    let v: Value = serde_json::from_str(&text).expect("meta.json is JSON");
    let scopes = |k: &str| {
        ScopeSet::parse(
            &v[k]
                .as_array()
                .expect("scopes")
                .iter()
                .filter_map(Value::as_str)
                .collect::<Vec<_>>()
                .join(" "),
        )
    };
    Some(Meta {
        authority: v["authority"].as_str()?.to_string(),
        client_id: v["client_id"].as_str()?.to_string(),
        username: v["username"].as_str()?.to_string(),
        exact: scopes("scopes_exact"),
        subset: scopes("scopes_subset"),
        generated_at: v["generated_at"].as_i64()?,
    })
}

fn app(meta: &Meta, store: Arc<dyn TokenStore>) -> PublicClientApplication {
    let config = ClientConfig {
        client_id: meta.client_id.clone(),
        authority: Authority::entra(&meta.authority)
            .expect("authority")
            .without_instance_discovery(),
        redirect_uri: "http://localhost".parse().expect("url"),
    };
    // A real HTTP client: a cache hit never uses it (a miss would fail the assertion).
    let http = ReqwestClient::new(&HttpConfig::default());
    PublicClientApplication::new(
        config,
        Deps {
            http: Arc::new(http),
            store,
            clock: Arc::new(SystemClock),
            entropy: Arc::new(OsEntropy),
        },
    )
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
}

/// Copies `from` into `dir` with an mtime a minute back (as a cache between sign-ins:
/// its timestamp is trustworthy, so [`MsalFileStore`] does not hash it on every read).
fn copy_aged(from: &Path, dir: &Path, name: &str) -> PathBuf {
    let to = dir.join(name);
    std::fs::copy(from, &to).expect("copy");
    std::fs::File::options()
        .write(true)
        .open(&to)
        .and_then(|f| f.set_modified(SystemTime::now() - Duration::from_secs(60)))
        .expect("set mtime");
    to
}

fn sqlite_aes(path: &Path) -> SqliteStore {
    let cipher = AesGcmCipher::new(&StoreKey::generate());
    SqliteStore::open(path, Arc::new(cipher)).expect("sqlite store")
}

/// The stores of one size, all holding the same cache.
struct Stores {
    _dir: tempfile::TempDir,
    /// The generated MSAL file.
    source: PathBuf,

    list: Vec<(&'static str, Arc<dyn TokenStore>)>,
}

fn stores(data: &Path, n: usize) -> Stores {
    let dir = tempfile::tempdir().expect("tempdir");
    let source = data.join(format!("msal-{n}.json"));
    let file = copy_aged(&source, dir.path(), "msal.json");
    let sqlite = sqlite_aes(&dir.path().join("store.db"));
    let started = std::time::Instant::now();
    let report = transfer::import_msal(&source, &sqlite).expect("import");
    eprintln!(
        "sqlite-aes/{n}: imported in {:?}: {report}",
        started.elapsed()
    );
    let doc: MsalCacheDocument = std::fs::read_to_string(&source)
        .expect("read")
        .parse()
        .expect("MSAL cache");
    let list: Vec<(&'static str, Arc<dyn TokenStore>)> = vec![
        ("sqlite-aes", Arc::new(sqlite)),
        (
            "msal-file",
            Arc::new(MsalFileStore::open(&file).expect("msal file")),
        ),
        ("memory", Arc::new(MemoryStore::from_document(doc))),
    ];
    Stores {
        _dir: dir,
        source,
        list,
    }
}

fn find_account(
    rt: &tokio::runtime::Runtime,
    app: &PublicClientApplication,
    meta: &Meta,
) -> Account {
    rt.block_on(app.find_account(&meta.username))
        .expect("get_accounts")
        .expect("the benchmark account is in the cache")
}

fn benches(c: &mut Criterion) {
    let data = data_dir();
    let Some(meta) = load_meta(&data) else {
        eprintln!(
            "no benchmark data in {} (make it with: tests/msal-python/.venv/bin/python \
             bench/gen_cache.py {}); skipping",
            data.display(),
            data.display()
        );
        return;
    };
    let rt = runtime();
    let sizes = sizes();
    let largest = sizes.iter().copied().max().unwrap_or(0);
    for &n in &sizes {
        let s = stores(&data, n);
        for (name, store) in &s.list {
            let app = app(&meta, Arc::clone(store));
            let account = find_account(&rt, &app, &meta);
            for (kind, scopes) in [("exact", &meta.exact), ("subset", &meta.subset)] {
                let options = SilentOptions::default();
                let hit = rt
                    .block_on(app.acquire_token_silent(scopes, &account, &options))
                    .expect("a cache hit");
                assert_eq!(
                    hit.token_source,
                    tessera_core::app::TokenSource::Cache,
                    "{name}/{kind}/{n}"
                );
                let mut g = c.benchmark_group(format!("silent_{kind}"));
                g.bench_with_input(BenchmarkId::new(*name, n), &n, |b, _| {
                    b.iter(|| {
                        rt.block_on(app.acquire_token_silent(scopes, &account, &options))
                            .expect("hit")
                    })
                });
                g.finish();
            }
            if n == largest {
                silent_parts(c, &rt, &app, name, store.as_ref(), &account, &meta);
                let accounts = rt.block_on(app.get_accounts()).expect("accounts");
                let mut g = c.benchmark_group("get_accounts");
                g.bench_with_input(BenchmarkId::new(*name, accounts.len()), &n, |b, _| {
                    b.iter(|| rt.block_on(app.get_accounts()).expect("accounts"))
                });
                g.finish();
            }
        }
        store_one(c, &meta, &s, n);
        whole_file(c, &s, n);
    }
    keyring(c);
}

/// What one silent hit is made of: the access token lookup (with its decryption), the ID
/// token lookup (its claims go into the result), and decoding those claims.
fn silent_parts(
    c: &mut Criterion,
    rt: &tokio::runtime::Runtime,
    app: &PublicClientApplication,
    name: &str,
    store: &dyn TokenStore,
    account: &Account,
    meta: &Meta,
) {
    let envs = rt.block_on(app.aliases());
    let realm = app.config().authority.realm();
    let q = CredentialQuery {
        home_account_id: &account.home_account_id,
        environments: &envs,
        client_id: &meta.client_id,
        realm: Some(&realm),
    };
    let now = SystemClock.now();
    let mut g = c.benchmark_group("silent_parts");
    g.bench_function(BenchmarkId::new("find_access_token", name), |b| {
        b.iter(|| {
            store
                .find_access_token(&q, &meta.exact, now + 300)
                .expect("lookup")
                .expect("found")
        })
    });
    let q_any_realm = CredentialQuery {
        realm: None,
        ..q.clone()
    };
    g.bench_function(BenchmarkId::new("id_token", name), |b| {
        b.iter(|| {
            store
                .id_token(&q_any_realm)
                .expect("lookup")
                .expect("found")
        })
    });
    let idt = store
        .id_token(&q_any_realm)
        .expect("lookup")
        .expect("found");
    g.bench_function(BenchmarkId::new("id_token_claims", name), |b| {
        b.iter(|| tessera_core::id_token::claims(idt.secret.secret()).expect("claims"))
    });
    g.finish();
    // And what get_accounts is made of.
    let mut g = c.benchmark_group("get_accounts_parts");
    g.bench_function(BenchmarkId::new("accounts", name), |b| {
        b.iter(|| store.accounts().expect("accounts"))
    });
    g.bench_function(BenchmarkId::new("credential_holders", name), |b| {
        b.iter(|| {
            store
                .credential_holders(&envs, &meta.client_id, Some("1"))
                .expect("holders")
        })
    });
    g.finish();
}

/// One token response (a new scope for the benchmark account) into a store of `n`
/// tokens: what a sign-in or refresh writes. The same key each time, so the store
/// keeps its size.
fn store_one(c: &mut Criterion, meta: &Meta, s: &Stores, n: usize) {
    let home = s.list[2]
        .1
        .accounts()
        .expect("accounts")
        .into_iter()
        .find(|a| a.username == meta.username)
        .expect("account")
        .home_account_id;
    let write = || {
        let tenant = meta.authority.rsplit('/').next().unwrap_or_default();
        TokenWrite {
            access_token: Some(AccessTokenEntry {
                home_account_id: home.clone(),
                environment: "login.microsoftonline.com".into(),
                client_id: meta.client_id.clone(),
                realm: tenant.into(),
                target: "https://storage.azure.com/Bench.Write".into(),
                secret: AccessToken::new("eyJ0eXAiOiJKV1QiLCJhbGciOiJSUzI1NiJ9.".repeat(40)),
                token_type: "Bearer".into(),
                cached_at: meta.generated_at,
                expires_on: meta.generated_at + 86_400,
                extended_expires_on: Some(meta.generated_at + 86_400),
                refresh_on: None,
                extra: Default::default(),
            }),
            ..Default::default()
        }
    };
    let mut g = c.benchmark_group("store_one");
    for (name, store) in &s.list {
        if *name == "msal-file" {
            g.sample_size(10);
        } else {
            g.sample_size(50);
        }
        g.bench_with_input(BenchmarkId::new(*name, n), &n, |b, _| {
            b.iter(|| store.write(write()).expect("write"))
        });
    }
    g.finish();
}

/// Whole caches: parse an MSAL file, write one, import one into SQLite, export to one.
fn whole_file(c: &mut Criterion, s: &Stores, n: usize) {
    let text = std::fs::read_to_string(&s.source).expect("read");
    let doc: MsalCacheDocument = text.parse().expect("parse");
    let mut g = c.benchmark_group("msal_json");
    g.sample_size(10);
    g.bench_with_input(BenchmarkId::new("parse", n), &n, |b, _| {
        b.iter(|| text.parse::<MsalCacheDocument>().expect("parse"))
    });
    g.bench_with_input(BenchmarkId::new("serialize", n), &n, |b, _| {
        b.iter(|| doc.to_string_pretty())
    });
    g.finish();

    // Opening the MSAL file as a store (what each `--msal-cache` process does): with a
    // valid sidecar index, without one (parse), and parsing and writing the index.
    let mut g = c.benchmark_group("msal_file_open");
    g.sample_size(10);
    // A fresh copy: the store_one benches changed the other one a moment ago.
    let dir = tempfile::tempdir().expect("tempdir");
    let file = copy_aged(&s.source, dir.path(), "msal.json");
    let index = file.with_file_name("msal.json.tessera-index");
    drop(MsalFileStore::open(&file).expect("open"));
    assert!(index.exists(), "the first open wrote the index");
    g.bench_with_input(BenchmarkId::new("indexed", n), &n, |b, _| {
        b.iter(|| MsalFileStore::open(&file).expect("open"))
    });
    g.bench_with_input(BenchmarkId::new("parse", n), &n, |b, _| {
        b.iter(|| MsalFileStore::open_with_index(&file, None).expect("open"))
    });
    g.bench_with_input(BenchmarkId::new("parse_and_index", n), &n, |b, _| {
        b.iter_batched(
            || std::fs::remove_file(&index).expect("remove the index"),
            |()| MsalFileStore::open(&file).expect("open"),
            criterion::BatchSize::PerIteration,
        )
    });
    g.finish();
}

/// The keyring lookup a process makes to open the encrypted store: a fresh Secret
/// Service connection each time, as in a new process. Needs a D-Bus session with an
/// unlocked keyring (bench/run provides one); skipped without.
fn keyring(c: &mut Criterion) {
    use tessera_core::keystore::{KeyStore, OsKeyring};
    if std::env::var_os("DBUS_SESSION_BUS_ADDRESS").is_none() {
        eprintln!("keyring/load: no D-Bus session; skipped");
        return;
    }
    let id = format!("store:/tmp/tessera-bench-{}", std::process::id());
    if let Err(e) = OsKeyring.save(&id, &StoreKey::generate()) {
        eprintln!("keyring/load: the keyring is not usable ({e}); skipped");
        return;
    }
    let mut g = c.benchmark_group("keyring");
    g.sample_size(20);
    g.bench_function("load", |b| {
        b.iter(|| OsKeyring.load(&id).expect("load").expect("key"))
    });
    g.finish();
    let _ = OsKeyring.forget(&id);
}

criterion_group! {
    name = store;
    config = Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .without_plots();
    targets = benches
}
criterion_main!(store);
