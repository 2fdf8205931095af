//! The token stores against each other and against MSAL's rules: `MemoryStore` (the
//! reference, on MSAL's own cache document) and `SqliteStore` (the real backend).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use serde_json::{Map, Value};
use tessera_core::cache::msal_json::MsalEntity;
use tessera_core::cache::{
    access_token_key, refresh_token_key, AccessTokenEntry, AccountEntry, AesGcmCipher,
    AppMetadataEntry, Cipher, CredentialQuery, IdTokenEntry, MemoryStore, MsalCacheDocument,
    PlaintextCipher, RefreshTokenEntry, SqliteStore, StoreKey, TokenStore, TokenWrite,
};
use tessera_core::env::FixedClock;
use tessera_core::secret::{AccessToken, IdTokenString, RefreshToken};
use tessera_core::StoreError;

const NOW: i64 = 1_700_000_000;
/// An expiry for stores on the system clock (year 2100).
const FAR: i64 = 4_102_444_800;
const ENV: &str = "login.microsoftonline.com";

fn envs(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

fn aes() -> Arc<dyn Cipher> {
    Arc::new(AesGcmCipher::new(&StoreKey::from_bytes([42; 32])))
}

fn sqlite(dir: &Path, clock: &Arc<FixedClock>) -> SqliteStore {
    SqliteStore::open(&dir.join("store.db"), aes())
        .unwrap()
        .with_clock(clock.clone())
}

fn at(
    home: &str,
    client: &str,
    realm: &str,
    target: &str,
    secret: &str,
    expires_on: i64,
) -> AccessTokenEntry {
    AccessTokenEntry {
        home_account_id: home.into(),
        environment: ENV.into(),
        client_id: client.into(),
        realm: realm.into(),
        target: target.into(),
        secret: AccessToken::new(secret.into()),
        token_type: "Bearer".into(),
        cached_at: NOW,
        expires_on,
        extended_expires_on: Some(expires_on),
        refresh_on: None,
        extra: Map::new(),
    }
}

fn rt(
    home: &str,
    client: &str,
    target: &str,
    secret: &str,
    family: Option<&str>,
    lmt: Option<i64>,
) -> RefreshTokenEntry {
    RefreshTokenEntry {
        home_account_id: home.into(),
        environment: ENV.into(),
        client_id: client.into(),
        target: target.into(),
        secret: RefreshToken::new(secret.into()),
        family_id: family.map(Into::into),
        last_modification_time: lmt,
        extra: Map::new(),
    }
}

fn idt(home: &str, client: &str, realm: &str, secret: &str) -> IdTokenEntry {
    IdTokenEntry {
        home_account_id: home.into(),
        environment: ENV.into(),
        realm: realm.into(),
        client_id: client.into(),
        secret: IdTokenString::new(secret),
        extra: Map::new(),
    }
}

fn account(home: &str, realm: &str, username: &str) -> AccountEntry {
    AccountEntry {
        home_account_id: home.into(),
        environment: ENV.into(),
        realm: realm.into(),
        local_account_id: home.split('.').next().unwrap_or_default().into(),
        username: username.into(),
        authority_type: "MSSTS".into(),
        account_source: Some("authorization_code".into()),
        name: None,
        extra: Map::new(),
    }
}

fn q<'a>(
    home: &'a str,
    environments: &'a [String],
    client: &'a str,
    realm: Option<&'a str>,
) -> CredentialQuery<'a> {
    CredentialQuery {
        home_account_id: home,
        environments,
        client_id: client,
        realm,
    }
}

fn secrets_of_ats(v: &[AccessTokenEntry]) -> Vec<String> {
    v.iter().map(|e| e.secret.secret().clone()).collect()
}

fn secrets_of_rts(v: &[RefreshTokenEntry]) -> Vec<String> {
    v.iter().map(|e| e.secret.secret().clone()).collect()
}

fn json<T: MsalEntity>(v: &[T]) -> Vec<Map<String, Value>> {
    v.iter().map(MsalEntity::to_msal_map).collect()
}

type Named = (&'static str, Box<dyn TokenStore>);

/// Both stores, with the same clock.
fn both(dir: &Path) -> (Arc<FixedClock>, Vec<Named>) {
    let clock = Arc::new(FixedClock::new(NOW));
    let mem = MemoryStore::new().with_clock(clock.clone());
    let sql = sqlite(dir, &clock);
    (
        clock,
        vec![("memory", Box::new(mem)), ("sqlite", Box::new(sql))],
    )
}

// ---------------------------------------------------------------------------------------
// MSAL's rules, checked on both stores.

#[test]
fn access_token_replacement_rule() {
    let dir = tempfile::tempdir().unwrap();
    let (_clock, stores) = both(dir.path());
    let e = envs(&[ENV]);
    for (name, s) in &stores {
        let w = |a: AccessTokenEntry| {
            s.write(TokenWrite {
                access_token: Some(a),
                ..Default::default()
            })
            .unwrap()
        };
        w(at(
            "h",
            "c",
            "r",
            "Mail.Read User.Read openid profile",
            "old-mail-user",
            NOW + 3600,
        ));
        w(at(
            "h",
            "c",
            "r",
            "Calendars.Read openid profile",
            "calendar-shares-only-oidc",
            NOW + 3600,
        ));
        w(at(
            "h",
            "c",
            "other-realm",
            "User.Read",
            "other-realm",
            NOW + 3600,
        ));
        w(at(
            "h",
            "other-client",
            "r",
            "User.Read",
            "other-client",
            NOW + 3600,
        ));
        w(at(
            "other-home",
            "c",
            "r",
            "User.Read",
            "other-home",
            NOW + 3600,
        ));
        w(at("h", "c", "r", "Files.Read", "expired", NOW - 1));
        let mut with_ext = at("h", "c", "r", "Fmi.Read", "with-ext-cache-key", NOW + 3600);
        with_ext.extra.insert("ext_cache_key".into(), "abc".into());
        w(with_ext);
        // Expired ATs are purged on the next AT write ("expired" went just now, when
        // with_ext was written).
        let all = secrets_of_ats(&s.access_tokens(&q("h", &e, "c", None)).unwrap());
        assert_eq!(all.len(), 3, "{name}: {all:?}");
        assert!(!all.contains(&"expired".to_string()), "{name}");
        assert!(
            !all.contains(&"with-ext-cache-key".to_string()),
            "{name}: ATs with an ext_cache_key are not for plain lookups"
        );

        // A new token whose scopes intersect (User.Read) replaces the old one; one that
        // shares only openid/profile stays; other realms, clients, accounts stay.
        w(at(
            "h",
            "c",
            "r",
            "User.Read openid profile",
            "new-user",
            NOW + 3600,
        ));
        let realm_r = secrets_of_ats(&s.access_tokens(&q("h", &e, "c", Some("r"))).unwrap());
        assert_eq!(realm_r, ["calendar-shares-only-oidc", "new-user"], "{name}");
        assert_eq!(
            secrets_of_ats(
                &s.access_tokens(&q("h", &e, "c", Some("other-realm")))
                    .unwrap()
            ),
            ["other-realm"]
        );
        assert_eq!(
            secrets_of_ats(&s.access_tokens(&q("h", &e, "other-client", None)).unwrap()),
            ["other-client"]
        );
        assert_eq!(
            secrets_of_ats(&s.access_tokens(&q("other-home", &e, "c", None)).unwrap()),
            ["other-home"]
        );

        // The same key (same sorted target, any case) is replaced in place.
        w(at(
            "h",
            "c",
            "r",
            "user.read OPENID profile",
            "same-key",
            NOW + 3600,
        ));
        assert_eq!(
            secrets_of_ats(&s.access_tokens(&q("h", &e, "c", Some("r"))).unwrap()),
            ["calendar-shares-only-oidc", "same-key"],
            "{name}"
        );
        // Same key without intersecting scopes: replaced by the key alone (MSAL Python).
        w(at(
            "h",
            "c",
            "r2",
            "openid profile",
            "oidc-only-1",
            NOW + 3600,
        ));
        w(at(
            "h",
            "c",
            "r2",
            "OPENID profile",
            "oidc-only-2",
            NOW + 3600,
        ));
        assert_eq!(
            secrets_of_ats(&s.access_tokens(&q("h", &e, "c", Some("r2"))).unwrap()),
            ["oidc-only-2"],
            "{name}"
        );
    }
}

#[test]
fn family_refresh_tokens_and_their_order() {
    let dir = tempfile::tempdir().unwrap();
    let (_clock, stores) = both(dir.path());
    let e = envs(&[ENV, "login.windows.net"]);
    for (name, s) in &stores {
        for r in [
            rt(
                "h",
                "cli",
                "User.Read",
                "frt-cli-old",
                Some("1"),
                Some(NOW - 100),
            ),
            rt("h", "cli", "Arm", "frt-cli-new", Some("1"), Some(NOW)),
            rt("h", "ps", "Arm", "frt-ps", Some("1"), None),
            rt("h", "own", "Mail.Read", "rt-own", None, Some(NOW - 50)),
            rt(
                "h",
                "other-family",
                "x",
                "rt-other-family",
                Some("2"),
                Some(NOW),
            ),
            rt(
                "other-home",
                "cli",
                "User.Read",
                "frt-other-home",
                Some("1"),
                Some(NOW),
            ),
        ] {
            s.write(TokenWrite {
                refresh_token: Some(r),
                ..Default::default()
            })
            .unwrap();
        }
        let got = |client: &str, family: Option<&str>| {
            secrets_of_rts(&s.refresh_tokens(&q("h", &e, client, None), family).unwrap())
        };
        // A family member that has no RT of its own finds the family's, newest first.
        assert_eq!(
            got("new-member", Some("1")),
            ["frt-cli-new", "frt-cli-old", "frt-ps"],
            "{name}"
        );
        assert!(got("new-member", None).is_empty(), "{name}");
        assert_eq!(got("own", None), ["rt-own"], "{name}");
        assert_eq!(
            got("own", Some("1")),
            ["frt-cli-new", "rt-own", "frt-cli-old", "frt-ps"],
            "{name}"
        );
        // Environments are matched case-insensitively, and only the listed ones.
        let upper = envs(&["LOGIN.MICROSOFTONLINE.COM"]);
        assert_eq!(
            s.refresh_tokens(&q("h", &upper, "ps", None), None)
                .unwrap()
                .len(),
            1,
            "{name}"
        );
        assert!(s
            .refresh_tokens(&q("h", &envs(&["login.windows.net"]), "ps", None), None)
            .unwrap()
            .is_empty());
    }
}

#[test]
fn rotated_refresh_token_updates_the_redeemed_entry() {
    let dir = tempfile::tempdir().unwrap();
    let (clock, stores) = both(dir.path());
    let e = envs(&[ENV]);
    for (name, s) in &stores {
        let frt = rt(
            "h",
            "cli",
            "User.Read",
            "frt-1",
            Some("1"),
            Some(NOW - 1000),
        );
        let key = refresh_token_key(&frt);
        s.write(TokenWrite {
            refresh_token: Some(frt),
            ..Default::default()
        })
        .unwrap();
        clock.advance(7);
        // Another family member ("ps") redeemed cli's FRT: its response's AT is written
        // and the FRT entry gets the new secret.
        s.write(TokenWrite {
            access_token: Some(at("h", "ps", "r", "Arm", "at-ps", NOW + 3600)),
            rotated_refresh_token: Some((key.clone(), RefreshToken::new("frt-2".into()))),
            ..Default::default()
        })
        .unwrap();
        let got = s
            .refresh_tokens(&q("h", &e, "ps", None), Some("1"))
            .unwrap();
        assert_eq!(secrets_of_rts(&got), ["frt-2"], "{name}");
        assert_eq!(got[0].client_id, "cli");
        assert_eq!(got[0].family_id.as_deref(), Some("1"));
        assert_eq!(
            got[0].last_modification_time,
            Some(clock_now(&clock)),
            "{name}"
        );
        // A rotation of an entry that is gone (signed out meanwhile) does not bring it back.
        assert_eq!(s.remove_account("h", &e).unwrap(), 2, "{name}");
        s.write(TokenWrite {
            rotated_refresh_token: Some((key.clone(), RefreshToken::new("frt-3".into()))),
            ..Default::default()
        })
        .unwrap();
        assert!(
            s.refresh_tokens(&q("h", &e, "cli", None), Some("1"))
                .unwrap()
                .is_empty(),
            "{name}"
        );
        clock.set(NOW);
    }
}

fn clock_now(c: &FixedClock) -> i64 {
    use tessera_core::env::Clock;
    c.now()
}

#[test]
fn remove_account_removes_every_token_of_the_account_in_those_environments() {
    let dir = tempfile::tempdir().unwrap();
    let (_clock, stores) = both(dir.path());
    for (name, s) in &stores {
        for client in ["a", "b"] {
            s.write(TokenWrite {
                access_token: Some(at(
                    "h",
                    client,
                    "r",
                    "User.Read",
                    &format!("at-{client}"),
                    NOW + 3600,
                )),
                refresh_token: Some(rt(
                    "h",
                    client,
                    "User.Read",
                    &format!("rt-{client}"),
                    None,
                    Some(NOW),
                )),
                id_token: Some(idt("h", client, "r", &format!("idt-{client}"))),
                account: Some(account("h", "r", "alice@contoso.example")),
                app_metadata: Some(AppMetadataEntry {
                    client_id: client.into(),
                    environment: ENV.into(),
                    family_id: None,
                    extra: Map::new(),
                }),
                ..Default::default()
            })
            .unwrap();
        }
        let mut elsewhere = at("h", "a", "r", "User.Read", "at-elsewhere", NOW + 3600);
        elsewhere.environment = "login.partner.microsoftonline.cn".into();
        s.write(TokenWrite {
            access_token: Some(elsewhere),
            account: Some(account("bob.t", "r", "bob")),
            ..Default::default()
        })
        .unwrap();

        // 2 ATs + 2 RTs + 2 ID tokens + 1 account.
        assert_eq!(
            s.remove_account(
                "h",
                &envs(&["login.windows.net", "LOGIN.microsoftonline.com"])
            )
            .unwrap(),
            7,
            "{name}"
        );
        let e = envs(&[ENV]);
        assert!(s.access_tokens(&q("h", &e, "a", None)).unwrap().is_empty());
        assert!(s
            .refresh_tokens(&q("h", &e, "b", None), None)
            .unwrap()
            .is_empty());
        assert!(s.id_token(&q("h", &e, "a", None)).unwrap().is_none());
        let cn = envs(&["login.partner.microsoftonline.cn"]);
        assert_eq!(
            secrets_of_ats(&s.access_tokens(&q("h", &cn, "a", None)).unwrap()),
            ["at-elsewhere"],
            "{name}"
        );
        let accounts: Vec<String> = s
            .accounts()
            .unwrap()
            .into_iter()
            .map(|a| a.home_account_id)
            .collect();
        assert_eq!(accounts, ["bob.t"], "{name}");
        assert!(
            s.app_metadata(&e, "a").unwrap().is_some(),
            "{name}: app metadata stays (as MSAL)"
        );
        assert_eq!(s.remove_account("h", &e).unwrap(), 0);
    }
}

#[test]
fn id_token_and_app_metadata_prefer_the_first_environment() {
    let dir = tempfile::tempdir().unwrap();
    let (_clock, stores) = both(dir.path());
    for (name, s) in &stores {
        let mut other_env = idt("h", "c", "r", "idt-windows-net");
        other_env.environment = "login.windows.net".into();
        s.write(TokenWrite {
            id_token: Some(idt("h", "c", "r", "idt-main")),
            ..Default::default()
        })
        .unwrap();
        s.write(TokenWrite {
            id_token: Some(other_env),
            ..Default::default()
        })
        .unwrap();
        let first = |list: &[&str]| {
            s.id_token(&q("h", &envs(list), "c", Some("r")))
                .unwrap()
                .map(|t| t.secret.secret().to_string())
        };
        assert_eq!(
            first(&["login.windows.net", ENV]).as_deref(),
            Some("idt-windows-net"),
            "{name}"
        );
        assert_eq!(
            first(&[ENV, "login.windows.net"]).as_deref(),
            Some("idt-main"),
            "{name}"
        );
        assert_eq!(first(&["login.microsoft.com"]), None);
        assert_eq!(
            s.id_token(&q("h", &envs(&[ENV]), "c", Some("other")))
                .unwrap()
                .map(|_| ()),
            None
        );
    }
}

#[test]
fn an_msal_python_cache_gives_the_same_answers_from_both_stores() {
    let doc: MsalCacheDocument = include_str!("../src/cache/testdata/msal_python_cache.json")
        .parse()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(FixedClock::new(NOW));
    let mem = MemoryStore::from_document(doc.clone()).with_clock(clock.clone());
    let sql = sqlite(dir.path(), &clock);
    for (_, e) in doc.access_tokens.iter() {
        sql.write(TokenWrite {
            access_token: Some(e.clone()),
            ..Default::default()
        })
        .unwrap();
    }
    for (_, e) in doc.refresh_tokens.iter() {
        sql.write(TokenWrite {
            refresh_token: Some(e.clone()),
            ..Default::default()
        })
        .unwrap();
    }
    for (_, e) in doc.id_tokens.iter() {
        sql.write(TokenWrite {
            id_token: Some(e.clone()),
            ..Default::default()
        })
        .unwrap();
    }
    for (_, e) in doc.accounts.iter() {
        sql.write(TokenWrite {
            account: Some(e.clone()),
            ..Default::default()
        })
        .unwrap();
    }
    for (_, e) in doc.app_metadata.iter() {
        sql.write(TokenWrite {
            app_metadata: Some(e.clone()),
            ..Default::default()
        })
        .unwrap();
    }
    assert_eq!(
        json(&mem.accounts().unwrap()),
        json(&sql.accounts().unwrap())
    );
    let alice = "a11ce000-0000-4000-8000-00000000a11c.11111111-aaaa-4aaa-aaaa-111111111111";
    let e = envs(&["login.windows.net", ENV]);
    // Azure PowerShell finds Alice's family refresh tokens, Azure CLI's first (newest).
    for s in [&mem as &dyn TokenStore, &sql] {
        let frts = s
            .refresh_tokens(
                &q(alice, &e, "1950a258-227b-4e31-a9cf-717495945fc2", None),
                Some("1"),
            )
            .unwrap();
        assert_eq!(
            secrets_of_rts(&frts),
            [
                "rt-alice-ps-secret",
                "rt-alice-cli-secret-2",
                "rt-alice-cli-secret-1"
            ]
        );
        let meta = s
            .app_metadata(&e, "04b07795-8ddb-461a-bbee-02f9e1bf7b46")
            .unwrap()
            .unwrap();
        assert_eq!(meta.family_id.as_deref(), Some("1"));
    }
    for client in [
        "04b07795-8ddb-461a-bbee-02f9e1bf7b46",
        "1950a258-227b-4e31-a9cf-717495945fc2",
    ] {
        for realm in [None, Some("22222222-bbbb-4bbb-bbbb-222222222222")] {
            let qq = q(alice, &e, client, realm);
            assert_eq!(
                json(&mem.access_tokens(&qq).unwrap()),
                json(&sql.access_tokens(&qq).unwrap())
            );
            assert_eq!(
                json(&mem.id_token(&qq).unwrap().into_iter().collect::<Vec<_>>()),
                json(&sql.id_token(&qq).unwrap().into_iter().collect::<Vec<_>>())
            );
        }
    }
    // Writing an entry read from MSAL's file gives back exactly MSAL's JSON.
    let stored = sql
        .access_tokens(&q(alice, &e, "04b07795-8ddb-461a-bbee-02f9e1bf7b46", None))
        .unwrap();
    assert_eq!(stored.len(), 2);
    let msal_json = doc.to_value();
    for s in &stored {
        assert_eq!(
            msal_json["AccessToken"][access_token_key(s)],
            Value::Object(s.to_msal_map())
        );
    }
}

// ---------------------------------------------------------------------------------------
// The SQLite file.

fn write_sample(s: &dyn TokenStore, home: &str, tag: &str) {
    s.write(TokenWrite {
        access_token: Some(at(
            home,
            "c",
            "r",
            "User.Read",
            &format!("SECRET-AT-{tag}-9f3b1c"),
            FAR,
        )),
        refresh_token: Some(rt(
            home,
            "c",
            "User.Read",
            &format!("SECRET-RT-{tag}-7a2d4e"),
            Some("1"),
            Some(NOW),
        )),
        id_token: Some(idt(home, "c", "r", &format!("SECRET-IDT-{tag}-5c8e0a"))),
        account: Some(account(home, "r", &format!("{home}@contoso.example"))),
        ..Default::default()
    })
    .unwrap();
}

fn files_of(db: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    ["", "-wal", "-shm"]
        .iter()
        .filter_map(|s| {
            let p = PathBuf::from(format!("{}{s}", db.display()));
            std::fs::read(&p).ok().map(|b| (p, b))
        })
        .collect()
}

fn contains(hay: &[u8], needle: &str) -> bool {
    hay.windows(needle.len()).any(|w| w == needle.as_bytes())
}

#[test]
fn with_aes_gcm_the_files_hold_no_token() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("enc.db");
    let store = SqliteStore::open(&db, aes()).unwrap();
    for i in 0..20 {
        write_sample(&store, &format!("user{i}.tenant"), &i.to_string());
    }
    let check = |when: &str| {
        let files = files_of(&db);
        assert!(
            files.iter().map(|(_, b)| b.len()).sum::<usize>() > 10_000,
            "{when}: the data is somewhere"
        );
        for (p, bytes) in &files {
            for i in 0..20 {
                for kind in ["AT", "RT", "IDT"] {
                    assert!(
                        !contains(bytes, &format!("SECRET-{kind}-{i}-")),
                        "{when}: {kind} {i} in {}",
                        p.display()
                    );
                }
            }
            assert!(!contains(bytes, "SECRET-"), "{when}: {}", p.display());
        }
    };
    assert!(files_of(&db)
        .iter()
        .any(|(p, b)| p.to_string_lossy().ends_with("-wal") && !b.is_empty()));
    check("with the WAL in use");
    let e = envs(&[ENV]);
    assert_eq!(
        secrets_of_ats(
            &store
                .access_tokens(&q("user3.tenant", &e, "c", None))
                .unwrap()
        ),
        ["SECRET-AT-3-9f3b1c"]
    );
    drop(store);
    check("after close (checkpointed)");
    assert!(SqliteStore::open(&db, aes())
        .unwrap()
        .describe()
        .ends_with(", encrypted"));

    // The same check finds the tokens of a plaintext store, so it can fail.
    let plain_db = dir.path().join("plain.db");
    let plain = SqliteStore::open(&plain_db, Arc::new(PlaintextCipher)).unwrap();
    write_sample(&plain, "user1.tenant", "1");
    assert!(files_of(&plain_db)
        .iter()
        .any(|(_, b)| contains(b, "SECRET-RT-1-")));
    assert_eq!(
        plain.describe(),
        format!("SQLite at {}, not encrypted", plain_db.display())
    );
}

#[test]
fn a_ciphertext_moved_to_another_entry_does_not_open() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("store.db");
    let store = SqliteStore::open(&db, aes()).unwrap();
    write_sample(&store, "alice.t", "alice");
    write_sample(&store, "mallory.t", "mallory");
    drop(store);
    let conn = rusqlite::Connection::open(&db).unwrap();
    conn.execute(
        "UPDATE refresh_token SET secret = (SELECT secret FROM refresh_token WHERE home_account_id = 'alice.t') \
         WHERE home_account_id = 'mallory.t'",
        [],
    )
    .unwrap();
    drop(conn);
    let store = SqliteStore::open(&db, aes()).unwrap();
    let err = store
        .refresh_tokens(&q("mallory.t", &envs(&[ENV]), "c", None), None)
        .unwrap_err();
    assert!(matches!(err, StoreError::Crypto(_)), "{err}");
    assert!(!err.to_string().contains("SECRET"), "{err}");
    assert_eq!(
        store
            .refresh_tokens(&q("alice.t", &envs(&[ENV]), "c", None), None)
            .unwrap()
            .len(),
        1
    );
}

#[test]
fn the_wrong_key_or_no_key_is_refused_at_open() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("store.db");
    write_sample(&SqliteStore::open(&db, aes()).unwrap(), "alice.t", "a");
    let other_key = Arc::new(AesGcmCipher::new(&StoreKey::from_bytes([1; 32])));
    let err = SqliteStore::open(&db, other_key).unwrap_err();
    assert!(
        matches!(err, StoreError::Crypto(_)) && err.to_string().contains("another encryption key"),
        "{err}"
    );
    let err = SqliteStore::open(&db, Arc::new(PlaintextCipher)).unwrap_err();
    assert!(err.to_string().contains("without its key"), "{err}");
    let plain_db = dir.path().join("plain.db");
    drop(SqliteStore::open(&plain_db, Arc::new(PlaintextCipher)).unwrap());
    let err = SqliteStore::open(&plain_db, aes()).unwrap_err();
    assert!(err.to_string().contains("not encrypted"), "{err}");
    // Nothing was moved or lost.
    assert!(db.exists() && plain_db.exists());
    assert_eq!(
        SqliteStore::open(&db, aes())
            .unwrap()
            .accounts()
            .unwrap()
            .len(),
        1
    );
}

#[cfg(unix)]
#[test]
fn the_store_is_private_to_the_user() {
    use std::os::unix::fs::PermissionsExt;
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("new/deeper/store.db");
    let store = SqliteStore::open(&db, aes()).unwrap();
    write_sample(&store, "alice.t", "a");
    assert_eq!(mode(&db), 0o600);
    assert_eq!(mode(&PathBuf::from(format!("{}-wal", db.display()))), 0o600);
    assert_eq!(mode(&PathBuf::from(format!("{}-shm", db.display()))), 0o600);
    assert_eq!(mode(db.parent().unwrap()), 0o700);
    assert_eq!(mode(&dir.path().join("new")), 0o700);
    drop(store);

    // A store someone made world-readable is tightened when opened.
    std::fs::set_permissions(&db, std::fs::Permissions::from_mode(0o644)).unwrap();
    let store = SqliteStore::open(&db, aes()).unwrap();
    assert_eq!(mode(&db), 0o600);
    assert_eq!(store.accounts().unwrap().len(), 1);
}

fn moved_files(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.to_string_lossy().contains(".corrupt-"))
        .collect();
    v.sort();
    v
}

#[test]
fn a_file_that_is_not_a_store_is_moved_aside_never_lost() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("store.db");
    let garbage: Vec<u8> = (0..8192u32).map(|i| (i * 7 % 251) as u8).collect();
    for (n, bytes) in [b"this is not a database\n".to_vec(), garbage]
        .into_iter()
        .enumerate()
    {
        std::fs::write(&db, &bytes).unwrap();
        let err = SqliteStore::open(&db, aes()).unwrap_err();
        let StoreError::Corrupt { path, moved_to } = &err else {
            panic!("not Corrupt: {err}")
        };
        assert_eq!(path, &db.display().to_string());
        assert!(err.to_string().contains("moved aside"), "{err}");
        let moved = PathBuf::from(moved_to);
        let name = moved.file_name().unwrap().to_string_lossy().to_string();
        assert!(
            name.starts_with("store.db.corrupt-20") && name.contains('T'),
            "{name}"
        );
        assert_eq!(
            std::fs::read(&moved).unwrap(),
            bytes,
            "the original bytes are kept"
        );
        assert!(!db.exists());
        // Two moves in the same second get distinct names; nothing is overwritten.
        assert_eq!(moved_files(dir.path()).len(), n + 1);
    }
    // The next open starts a fresh store.
    let store = SqliteStore::open(&db, aes()).unwrap();
    write_sample(&store, "alice.t", "a");
    assert_eq!(store.accounts().unwrap().len(), 1);
}

#[test]
fn another_applications_database_is_moved_aside() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("store.db");
    let conn = rusqlite::Connection::open(&db).unwrap();
    conn.execute_batch("CREATE TABLE notes (body TEXT); INSERT INTO notes VALUES ('keep me');")
        .unwrap();
    drop(conn);
    let err = SqliteStore::open(&db, aes()).unwrap_err();
    let StoreError::Corrupt { moved_to, .. } = &err else {
        panic!("{err}")
    };
    let conn = rusqlite::Connection::open(moved_to).unwrap();
    let body: String = conn
        .query_row("SELECT body FROM notes", [], |r| r.get(0))
        .unwrap();
    assert_eq!(body, "keep me");
}

#[test]
fn a_store_from_a_newer_version_is_left_alone() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("store.db");
    write_sample(&SqliteStore::open(&db, aes()).unwrap(), "alice.t", "a");
    rusqlite::Connection::open(&db)
        .unwrap()
        .execute_batch("PRAGMA user_version = 2;")
        .unwrap();
    let err = SqliteStore::open(&db, aes()).unwrap_err();
    assert!(matches!(err, StoreError::Open { .. }), "{err}");
    assert!(err.to_string().contains("newer Tessera"), "{err}");
    assert!(db.exists() && moved_files(dir.path()).is_empty());
}

#[test]
fn concurrent_writers_on_one_file_lose_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("store.db");
    let stores: Vec<Arc<SqliteStore>> = (0..2)
        .map(|_| Arc::new(SqliteStore::open(&db, aes()).unwrap()))
        .collect();
    const THREADS: usize = 6;
    const PER_THREAD: usize = 40;
    std::thread::scope(|scope| {
        for t in 0..THREADS {
            let store = stores[t % 2].clone();
            scope.spawn(move || {
                let e = envs(&[ENV]);
                for i in 0..PER_THREAD {
                    let home = format!("user-{t}-{i}.tenant");
                    write_sample(store.as_ref(), &home, &format!("{t}-{i}"));
                    // Read while the others write.
                    assert_eq!(
                        store.access_tokens(&q(&home, &e, "c", None)).unwrap().len(),
                        1
                    );
                    if i % 10 == 0 {
                        store.remove_account(&format!("nobody-{t}"), &e).unwrap();
                    }
                }
            });
        }
    });
    let fresh = SqliteStore::open(&db, aes()).unwrap();
    assert_eq!(fresh.accounts().unwrap().len(), THREADS * PER_THREAD);
    let e = envs(&[ENV]);
    for t in 0..THREADS {
        for i in 0..PER_THREAD {
            let home = format!("user-{t}-{i}.tenant");
            let rts = fresh
                .refresh_tokens(&q(&home, &e, "c", None), None)
                .unwrap();
            assert_eq!(secrets_of_rts(&rts), [format!("SECRET-RT-{t}-{i}-7a2d4e")]);
        }
    }
}

// ---------------------------------------------------------------------------------------
// Timing: cargo test -p tessera-core --release --test store -- --ignored --nocapture

#[test]
#[ignore = "timing; run in release mode"]
fn lookup_and_write_timing_with_10000_access_tokens() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(FixedClock::new(NOW));
    let store = sqlite(dir.path(), &clock);
    let token = |a: usize, t: usize| format!("eyJ{}-{a}-{t}", "x".repeat(1500));
    let t0 = Instant::now();
    for a in 0..1000 {
        let home = format!("user-{a}.tenant");
        for t in 0..10 {
            // Ten ATs per account: disjoint scopes, so none replaces another.
            let w = TokenWrite {
                access_token: Some(at(
                    &home,
                    "c",
                    "r",
                    &format!("Scope{t}.Read"),
                    &token(a, t),
                    NOW + 3600,
                )),
                ..Default::default()
            };
            store.write(w).unwrap();
        }
    }
    let fill = t0.elapsed();
    let e = envs(&[ENV, "login.windows.net"]);
    // Accounts in a scattered order (7919 is prime to 1000): every one, none twice in a row.
    let scattered = |i: u32| format!("user-{}.tenant", (i as usize * 7919 + 13) % 1000);
    let n: u32 = 2000;
    let t0 = Instant::now();
    for i in 0..n {
        let home = scattered(i);
        let got = store.access_tokens(&q(&home, &e, "c", Some("r"))).unwrap();
        assert_eq!(got.len(), 10);
    }
    let lookup = t0.elapsed() / n;
    let t0 = Instant::now();
    for i in 0..n {
        // Every account gets a refresh token.
        let home = format!("user-{}.tenant", i % 1000);
        let w = TokenWrite {
            access_token: Some(at(
                &home,
                "c",
                "r",
                &format!("Scope{}.Read", i % 10),
                &token(i as usize, 0),
                NOW + 3600,
            )),
            refresh_token: Some(rt(
                &home,
                "c",
                "Scope.Read",
                &token(i as usize, 1),
                Some("1"),
                Some(NOW),
            )),
            ..Default::default()
        };
        store.write(w).unwrap();
    }
    let write = t0.elapsed() / n;
    let t0 = Instant::now();
    for i in 0..n {
        let home = scattered(i);
        assert_eq!(
            store
                .refresh_tokens(&q(&home, &e, "c", None), Some("1"))
                .unwrap()
                .len(),
            1
        );
    }
    let rt_lookup = t0.elapsed() / n;
    // The same lookup in a store holding only those ten tokens.
    let small_dir = tempfile::tempdir().unwrap();
    let small = sqlite(small_dir.path(), &clock);
    for t in 0..10 {
        let a = at(
            "user-0.tenant",
            "c",
            "r",
            &format!("Scope{t}.Read"),
            &token(0, t),
            NOW + 3600,
        );
        small
            .write(TokenWrite {
                access_token: Some(a),
                ..Default::default()
            })
            .unwrap();
    }
    let t0 = Instant::now();
    for _ in 0..n {
        assert_eq!(
            small
                .access_tokens(&q("user-0.tenant", &e, "c", Some("r")))
                .unwrap()
                .len(),
            10
        );
    }
    let small_lookup = t0.elapsed() / n;
    let total: usize = (0..1000)
        .map(|a| {
            store
                .access_tokens(&q(&format!("user-{a}.tenant"), &e, "c", None))
                .unwrap()
                .len()
        })
        .sum();
    assert_eq!(total, 10_000);
    println!(
        "SqliteStore (AES-256-GCM, 1.5 kB tokens), 10,000 ATs over 1,000 accounts: fill {fill:?} \
         ({:?}/write), access_tokens (10 hits) {lookup:?} (in a 10-token store: {small_lookup:?}), \
         refresh_tokens (1 hit) {rt_lookup:?}, write (AT replace + RT) {write:?}",
        fill / 10_000
    );
}
