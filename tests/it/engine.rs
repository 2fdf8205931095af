//! The engine against the sandbox provider: every flow end to end over real HTTP, and
//! every fault switch giving a clear typed error with the store unchanged.

use std::sync::Arc;

use tessera_core::app::{
    Account, ClientConfig, Deps, InteractiveParams, PublicClientApplication, SilentOptions,
    TokenSource,
};
use tessera_core::authority::Authority;
use tessera_core::cache::cipher::PlaintextCipher;
use tessera_core::cache::sqlite::SqliteStore;
use tessera_core::cache::TokenStore;
use tessera_core::env::{OsEntropy, SystemClock};
use tessera_core::http::{HttpConfig, ReqwestClient};
use tessera_core::scopes::ScopeSet;
use tessera_core::{Error, InteractionReason};
use tessera_sandbox_idp::{Faults, ResponseIss, SandboxConfig, SandboxHandle, ScriptedUserAgent};
use tokio_util::sync::CancellationToken;
use url::Url;

pub const SANDBOX_CLIENT: &str = "7a1c0de5-7e55-4a11-9c0d-5a4db0c11e01";
pub const AZURE_CLI: &str = "04b07795-8ddb-461a-bbee-02f9e1bf7b46";
pub const AZURE_POWERSHELL: &str = "1950a258-227b-4e31-a9cf-717495945fc2";
const REDIRECT: &str = "http://localhost/tessera-redirect";

pub struct World {
    pub idp: SandboxHandle,
    pub store: Arc<dyn TokenStore>,
    pub _home: tempfile::TempDir,
}

impl World {
    pub async fn new() -> World {
        let idp = tessera_sandbox_idp::start(SandboxConfig::default())
            .await
            .expect("sandbox starts");
        let home = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&home.path().join("store.db"), Arc::new(PlaintextCipher))
            .expect("store opens");
        World {
            idp,
            store: Arc::new(store),
            _home: home,
        }
    }

    pub fn app(&self, client_id: &str) -> PublicClientApplication {
        self.app_at(client_id, "common")
    }

    pub fn app_at(&self, client_id: &str, tenant: &str) -> PublicClientApplication {
        let authority = Authority::entra(&self.idp.authority(tenant))
            .unwrap()
            .without_instance_discovery();
        PublicClientApplication::new(
            ClientConfig {
                client_id: client_id.into(),
                authority,
                redirect_uri: Url::parse(REDIRECT).unwrap(),
            },
            Deps {
                http: Arc::new(ReqwestClient::new(&HttpConfig::default())),
                store: self.store.clone(),
                clock: Arc::new(SystemClock),
                entropy: Arc::new(OsEntropy),
            },
        )
    }

    pub fn faults(&self, f: Faults) {
        self.idp.set_faults(f);
    }

    /// A snapshot of everything in the store, to prove a failure changed nothing.
    pub fn snapshot(&self) -> String {
        let accounts = self.store.accounts().unwrap();
        let mut out = format!("{accounts:?}");
        for a in &accounts {
            let envs = vec![a.environment.clone()];
            for client in [SANDBOX_CLIENT, AZURE_CLI, AZURE_POWERSHELL] {
                let q = tessera_core::cache::CredentialQuery {
                    home_account_id: &a.home_account_id,
                    environments: &envs,
                    client_id: client,
                    realm: None,
                };
                for at in self.store.access_tokens(&q).unwrap() {
                    out.push_str(&format!(
                        "|AT {} {} {}",
                        at.target,
                        at.expires_on,
                        at.secret.secret()
                    ));
                }
                for rt in self.store.refresh_tokens(&q, Some("1")).unwrap() {
                    out.push_str(&format!("|RT {} {}", rt.client_id, rt.secret.secret()));
                }
            }
        }
        out
    }
}

pub fn scopes(s: &str) -> ScopeSet {
    ScopeSet::parse(s)
}

/// Sign in interactively through the sandbox's real pages.
pub async fn sign_in(
    app: &PublicClientApplication,
    login: &str,
) -> tessera_core::Result<tessera_core::app::AuthResult> {
    sign_in_with(app, login, true).await
}

pub async fn sign_in_with(
    app: &PublicClientApplication,
    login: &str,
    accept: bool,
) -> tessera_core::Result<tessera_core::app::AuthResult> {
    let flow = app
        .start_interactive(InteractiveParams {
            scopes: scopes("User.Read"),
            ..Default::default()
        })
        .await?;
    let ua = ScriptedUserAgent::new().unwrap();
    let redirected = ua
        .sign_in_with(flow.authorize_url(), login, "tessera", accept)
        .await
        .expect("sandbox pages work");
    app.finish_interactive(flow, &redirected).await
}

/// `acquire_token_silent` with the default options (MSAL's five-minute margin).
async fn silent(
    app: &PublicClientApplication,
    account: &Account,
    scopes: &ScopeSet,
) -> tessera_core::Result<tessera_core::app::AuthResult> {
    app.acquire_token_silent(scopes, account, &SilentOptions::default())
        .await
}

fn reason(e: &Error) -> Option<InteractionReason> {
    match e {
        Error::InteractionRequired { reason, .. } => Some(*reason),
        _ => None,
    }
}

#[tokio::test]
async fn auth_code_sign_in_then_silent_from_cache_then_refresh() {
    let w = World::new().await;
    let app = w.app(SANDBOX_CLIENT);
    let first = sign_in(&app, "alice@contoso.example").await.unwrap();
    assert_eq!(first.account.username, "alice@contoso.example");
    assert_eq!(first.account.name.as_deref(), Some("Alice Example"));
    assert_eq!(first.token_source, TokenSource::IdentityProvider);
    assert!(
        first.account.home_account_id.contains('.'),
        "Entra identity is uid.utid"
    );
    // The token is real: the provider accepts it.
    let me = w
        .idp
        .verify_token(first.access_token.secret())
        .expect("sandbox accepts the token");
    assert_eq!(me["preferred_username"], "alice@contoso.example");

    let accounts = app.get_accounts().await.unwrap();
    assert_eq!(accounts.len(), 1);
    assert_eq!(accounts[0], first.account);

    let cached = silent(&app, &accounts[0], &scopes("User.Read"))
        .await
        .unwrap();
    assert_eq!(cached.token_source, TokenSource::Cache);
    assert_eq!(cached.access_token.secret(), first.access_token.secret());
    // scopes are compared case-insensitively, and reserved ones are not required
    let cached = silent(&app, &accounts[0], &scopes("user.read openid"))
        .await
        .unwrap();
    assert_eq!(cached.token_source, TokenSource::Cache);

    let forced = app
        .acquire_token_silent(
            &scopes("User.Read"),
            &accounts[0],
            &SilentOptions {
                force_refresh: true,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(forced.token_source, TokenSource::IdentityProvider);
    assert_ne!(forced.access_token.secret(), first.access_token.secret());
    // the rotated refresh token replaced the old one: still exactly one
    let q = tessera_core::cache::CredentialQuery {
        home_account_id: &forced.account.home_account_id,
        environments: std::slice::from_ref(&forced.account.environment),
        client_id: SANDBOX_CLIENT,
        realm: None,
    };
    assert_eq!(w.store.refresh_tokens(&q, None).unwrap().len(), 1);
    // and the newest access token is what the cache serves now
    let again = silent(&app, &accounts[0], &scopes("User.Read"))
        .await
        .unwrap();
    assert_eq!(again.token_source, TokenSource::Cache);
    assert_eq!(again.access_token.secret(), forced.access_token.secret());
}

#[tokio::test]
async fn scopes_never_consented_need_interaction_then_both_resources_are_cached() {
    let w = World::new().await;
    let app = w.app(SANDBOX_CLIENT);
    let first = sign_in(&app, "alice@contoso.example").await.unwrap();
    let api = scopes("api://sandbox-api/Data.Read");
    let e = silent(&app, &first.account, &api).await.unwrap_err();
    assert_eq!(reason(&e), Some(InteractionReason::ConsentRequired), "{e}");
    assert_eq!(e.provider_error().unwrap().error_codes, vec![65001]);
    // consent interactively, as the app's "Sign in again" does
    let flow = app
        .start_interactive(InteractiveParams {
            scopes: api.clone(),
            login_hint: Some("alice@contoso.example".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    let redirected = ScriptedUserAgent::new()
        .unwrap()
        .sign_in(flow.authorize_url(), "alice@contoso.example", "tessera")
        .await
        .unwrap();
    let consented = app.finish_interactive(flow, &redirected).await.unwrap();
    assert_eq!(
        w.idp.verify_token(consented.access_token.secret()).unwrap()["aud"],
        "api://sandbox-api"
    );
    // both tokens are now served from the cache, side by side
    for s in ["User.Read", "api://sandbox-api/Data.Read"] {
        let r = silent(&app, &first.account, &scopes(s)).await.unwrap();
        assert_eq!(r.token_source, TokenSource::Cache, "{s}");
    }
    assert_eq!(
        app.get_accounts().await.unwrap().len(),
        1,
        "same account, not a second one"
    );
}

#[tokio::test]
async fn min_validity_margin_decides_between_cache_and_refresh() {
    let w = World::new().await;
    w.faults(Faults {
        token_lifetime_secs: Some(200),
        ..Default::default()
    });
    let app = w.app(SANDBOX_CLIENT);
    let first = sign_in(&app, "bob@contoso.example").await.unwrap();
    // valid for ~200 s: the default 300 s margin says refresh
    let r = silent(&app, &first.account, &scopes("User.Read"))
        .await
        .unwrap();
    assert_eq!(r.token_source, TokenSource::IdentityProvider);
    // a 60 s margin accepts the cached token
    let r = app
        .acquire_token_silent(
            &scopes("User.Read"),
            &first.account,
            &SilentOptions {
                min_validity_secs: 60,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(r.token_source, TokenSource::Cache);
}

#[tokio::test]
async fn refresh_on_triggers_a_proactive_refresh_that_falls_back_to_the_cache() {
    let w = World::new().await;
    w.faults(Faults {
        refresh_in_secs: Some(0),
        ..Default::default()
    });
    let app = w.app(SANDBOX_CLIENT);
    let first = sign_in(&app, "alice@contoso.example").await.unwrap();
    assert!(first.refresh_on.is_some());
    let r = silent(&app, &first.account, &scopes("User.Read"))
        .await
        .unwrap();
    assert_eq!(
        r.token_source,
        TokenSource::IdentityProvider,
        "refresh_on has passed: refreshed proactively"
    );
    // the provider is down now: the still-valid cached token is served
    w.faults(Faults {
        refresh_in_secs: Some(0),
        http_status: Some(503),
        ..Default::default()
    });
    let r2 = silent(&app, &first.account, &scopes("User.Read"))
        .await
        .unwrap();
    assert_eq!(r2.token_source, TokenSource::Cache);
    assert_eq!(r2.access_token.secret(), r.access_token.secret());
}

#[tokio::test]
async fn family_refresh_token_serves_another_family_client_but_not_an_outsider() {
    let w = World::new().await;
    let cli = w.app(AZURE_CLI);
    let first = sign_in(&cli, "alice@contoso.example").await.unwrap();
    let ps = w.app(AZURE_POWERSHELL);
    // the family member sees the account and gets a token without signing in
    let accounts = ps.get_accounts().await.unwrap();
    assert_eq!(accounts.len(), 1, "a family client sees the account");
    let r = silent(&ps, &first.account, &scopes("User.Read"))
        .await
        .unwrap();
    assert_eq!(r.token_source, TokenSource::IdentityProvider);
    assert_eq!(
        w.idp.verify_token(r.access_token.secret()).unwrap()["azp"],
        AZURE_POWERSHELL
    );
    // an outsider that once learned it is not in the family sees nothing
    let outsider = w.app(SANDBOX_CLIENT);
    sign_in(&outsider, "bob@contoso.example").await.unwrap();
    let seen: Vec<String> = outsider
        .get_accounts()
        .await
        .unwrap()
        .into_iter()
        .map(|a| a.username)
        .collect();
    assert_eq!(seen, vec!["bob@contoso.example".to_string()]);
    let e = silent(&outsider, &first.account, &scopes("User.Read"))
        .await
        .unwrap_err();
    assert_eq!(reason(&e), Some(InteractionReason::NoRefreshToken), "{e}");
}

#[tokio::test]
async fn device_code_flow_with_pending_then_approval() {
    let w = World::new().await;
    w.faults(Faults {
        device_code_interval_secs: Some(1),
        ..Default::default()
    });
    let app = w.app(SANDBOX_CLIENT);
    let flow = app
        .initiate_device_flow(&scopes("User.Read"))
        .await
        .unwrap();
    assert!(flow.message.contains(&flow.user_code));
    let verification = flow.verification_uri.clone();
    let code = flow.user_code.clone();
    let approver = tokio::spawn(async move {
        tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
        tessera_sandbox_idp::scripted_device_approval(
            &verification,
            &code,
            "carol@fabrikam.example",
            "tessera",
        )
        .await
    });
    let r = app
        .acquire_token_by_device_flow(flow, CancellationToken::new())
        .await
        .unwrap();
    approver.await.unwrap().unwrap();
    assert_eq!(r.account.username, "carol@fabrikam.example");
    assert_eq!(app.get_accounts().await.unwrap().len(), 1);
}

#[tokio::test]
async fn device_code_can_be_cancelled() {
    let w = World::new().await;
    w.faults(Faults {
        device_code_interval_secs: Some(1),
        ..Default::default()
    });
    let app = w.app(SANDBOX_CLIENT);
    let flow = app
        .initiate_device_flow(&scopes("User.Read"))
        .await
        .unwrap();
    let cancel = CancellationToken::new();
    let c = cancel.clone();
    tokio::spawn(async move {
        tokio::time::sleep(std::time::Duration::from_millis(1200)).await;
        c.cancel();
    });
    let e = app
        .acquire_token_by_device_flow(flow, cancel)
        .await
        .unwrap_err();
    assert!(matches!(e, Error::Cancelled), "{e}");
    assert!(app.get_accounts().await.unwrap().is_empty());
}

#[tokio::test]
async fn declining_consent_is_a_cancellation() {
    let w = World::new().await;
    let app = w.app(SANDBOX_CLIENT);
    let e = sign_in_with(&app, "alice@contoso.example", false)
        .await
        .unwrap_err();
    assert!(matches!(e, Error::Cancelled), "{e}");
    assert!(app.get_accounts().await.unwrap().is_empty());
}

#[tokio::test]
async fn sign_out_removes_the_account_and_offers_the_end_session_url() {
    let w = World::new().await;
    let app = w.app(SANDBOX_CLIENT);
    let alice = sign_in(&app, "alice@contoso.example")
        .await
        .unwrap()
        .account;
    let bob = sign_in(&app, "bob@contoso.example").await.unwrap().account;
    let out = app.remove_account(&alice).await.unwrap();
    assert!(
        out.removed >= 4,
        "AT, RT, ID token and account entry: {}",
        out.removed
    );
    let url = out
        .end_session_url
        .expect("the sandbox has an end-session endpoint");
    assert!(url.path().ends_with("/logout"), "{url}");
    let left: Vec<Account> = app.get_accounts().await.unwrap();
    assert_eq!(left, vec![bob.clone()]);
    let e = silent(&app, &alice, &scopes("User.Read"))
        .await
        .unwrap_err();
    assert_eq!(e.exit_code(), 3);
    // bob is untouched
    assert_eq!(
        silent(&app, &bob, &scopes("User.Read"))
            .await
            .unwrap()
            .token_source,
        TokenSource::Cache
    );
}

/// Refresh failures: a typed error, and nothing in the store changed.
#[tokio::test]
async fn refresh_faults_are_typed_and_leave_the_store_unchanged() {
    let w = World::new().await;
    let app = w.app(SANDBOX_CLIENT);
    let account = sign_in(&app, "alice@contoso.example")
        .await
        .unwrap()
        .account;
    let forced = SilentOptions {
        force_refresh: true,
        ..Default::default()
    };
    let before = w.snapshot();

    type Check = Box<dyn Fn(&Error) -> bool>;
    let cases: Vec<(Faults, Check)> = vec![
        (
            Faults {
                refresh_invalid_grant: true,
                ..Default::default()
            },
            Box::new(|e| reason(e) == Some(InteractionReason::InvalidGrant)),
        ),
        (
            Faults {
                interaction_required: true,
                ..Default::default()
            },
            Box::new(|e| {
                reason(e) == Some(InteractionReason::ClaimsChallenge)
                    && e.provider_error().and_then(|p| p.claims.clone()).is_some()
            }),
        ),
        (
            Faults {
                http_status: Some(503),
                retry_after_secs: Some(7),
                ..Default::default()
            },
            Box::new(|e| {
                matches!(
                    e,
                    Error::BadResponse {
                        status: Some(503),
                        retry_after: Some(7),
                        ..
                    }
                )
            }),
        ),
        (
            Faults {
                http_status: Some(500),
                ..Default::default()
            },
            Box::new(|e| {
                matches!(
                    e,
                    Error::BadResponse {
                        status: Some(500),
                        ..
                    }
                )
            }),
        ),
        (
            Faults {
                malformed_json: true,
                ..Default::default()
            },
            Box::new(|e| e.to_string().contains("malformed")),
        ),
        (
            Faults {
                html_error_page: true,
                ..Default::default()
            },
            Box::new(|e| e.to_string().contains("HTML page")),
        ),
        (
            Faults {
                wrong_issuer: true,
                ..Default::default()
            },
            Box::new(|e| matches!(e, Error::Validation(m) if m.contains("issued by"))),
        ),
        (
            Faults {
                expired_tokens: true,
                ..Default::default()
            },
            Box::new(|e| matches!(e, Error::Validation(m) if m.contains("expired"))),
        ),
    ];
    for (faults, expected) in cases {
        let label = format!("{faults:?}");
        w.faults(faults);
        let e = app
            .acquire_token_silent(&scopes("User.Read"), &account, &forced)
            .await
            .unwrap_err();
        assert!(expected(&e), "{label}: unexpected error {e:?}");
        assert_eq!(w.snapshot(), before, "{label}: the store changed");
    }
    // With the provider healthy again the kept refresh token works (MSAL keeps it).
    w.faults(Faults::default());
    assert_eq!(
        app.acquire_token_silent(&scopes("User.Read"), &account, &forced)
            .await
            .unwrap()
            .token_source,
        TokenSource::IdentityProvider
    );
}

#[tokio::test]
async fn sign_in_faults_add_no_account() {
    let w = World::new().await;
    let app = w.app(SANDBOX_CLIENT);
    for faults in [
        Faults {
            wrong_nonce: true,
            ..Default::default()
        },
        Faults {
            wrong_issuer: true,
            ..Default::default()
        },
        Faults {
            http_status: Some(500),
            ..Default::default()
        },
    ] {
        let label = format!("{faults:?}");
        w.faults(faults);
        let e = sign_in(&app, "alice@contoso.example").await.unwrap_err();
        assert_eq!(e.exit_code(), 4, "{label}: {e}");
        assert!(app.get_accounts().await.unwrap().is_empty(), "{label}");
    }
    w.faults(Faults {
        latency_ms: 300,
        ..Default::default()
    });
    let t = std::time::Instant::now();
    sign_in(&app, "alice@contoso.example").await.unwrap();
    assert!(t.elapsed().as_millis() >= 300);
}

/// RFC 9207: the sandbox advertises `iss` in authorization responses; a response with
/// another issuer's `iss`, or none, is refused before any token request (a mix-up),
/// for codes and for errors, and nothing is cached.
#[tokio::test]
async fn a_foreign_or_missing_response_iss_is_refused_and_caches_nothing() {
    for tenant in ["common", tessera_sandbox_idp::CONTOSO.id] {
        let w = World::new().await;
        let app = w.app_at(SANDBOX_CLIENT, tenant);
        for fault in [ResponseIss::Wrong, ResponseIss::Missing] {
            let label = format!("{tenant} {fault:?}");
            w.faults(Faults {
                response_iss: Some(fault),
                ..Default::default()
            });
            let before = w.snapshot();
            for accept in [true, false] {
                let e = sign_in_with(&app, "alice@contoso.example", accept)
                    .await
                    .unwrap_err();
                assert!(
                    matches!(&e, Error::Validation(m) if m.contains("mix-up")),
                    "{label} accept={accept}: {e:?}"
                );
                assert_eq!(e.exit_code(), 4, "{label}");
            }
            assert_eq!(w.snapshot(), before, "{label}: the store changed");
            assert!(app.get_accounts().await.unwrap().is_empty(), "{label}");
        }
        w.faults(Faults::default());
        sign_in(&app, "alice@contoso.example")
            .await
            .unwrap_or_else(|e| panic!("{tenant}: the provider's own iss is accepted: {e}"));
    }
}

#[tokio::test]
async fn a_tenant_authority_and_the_common_issuer_template() {
    let w = World::new().await;
    let app = w.app_at(SANDBOX_CLIENT, tessera_sandbox_idp::CONTOSO.id);
    let r = sign_in(&app, "alice@contoso.example").await.unwrap();
    assert_eq!(
        r.account.realm,
        tessera_sandbox_idp::CONTOSO.id.to_lowercase()
    );
    let common = w.app(SANDBOX_CLIENT);
    let meta = common.metadata().await.unwrap();
    assert!(meta.issuer.contains("{tenantid}"), "{}", meta.issuer);
}

#[tokio::test]
async fn unreachable_provider_is_a_network_error() {
    let authority = Authority::entra("http://127.0.0.1:9/common")
        .unwrap()
        .without_instance_discovery();
    let home = tempfile::tempdir().unwrap();
    let app = PublicClientApplication::new(
        ClientConfig {
            client_id: SANDBOX_CLIENT.into(),
            authority,
            redirect_uri: Url::parse(REDIRECT).unwrap(),
        },
        Deps {
            http: Arc::new(ReqwestClient::new(&HttpConfig::default())),
            store: Arc::new(
                SqliteStore::open(&home.path().join("s.db"), Arc::new(PlaintextCipher)).unwrap(),
            ),
            clock: Arc::new(SystemClock),
            entropy: Arc::new(OsEntropy),
        },
    );
    let e = app
        .start_interactive(InteractiveParams::default())
        .await
        .unwrap_err();
    assert!(matches!(e, Error::Transport(_)), "{e:?}");
    assert_eq!(e.exit_code(), 4);
    assert!(e.to_string().contains("127.0.0.1"), "{e}");
}

/// What the engine logs on one test's thread, at trace level.
///
/// tracing caches each callsite's interest once per process, against the subscriber of the
/// thread that reaches it first. With a scoped subscriber (`set_default`) on this test's
/// thread, a test running beside it without one could reach a callsite first and turn it
/// off for every thread: a fresh run lost "tokens received and cached" that way. So the
/// first capture installs one process-wide subscriber that is interested in everything and
/// writes an event only on a thread whose capture is on.
mod capture {
    use std::cell::RefCell;
    use std::sync::{Arc, Mutex, OnceLock};

    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::Layer;

    type Buffer = Arc<Mutex<Vec<u8>>>;

    thread_local! {
        static ON_THIS_THREAD: RefCell<Option<Buffer>> = const { RefCell::new(None) };
    }

    /// Whether this thread captures. A dynamic filter: its callsites are "sometimes"
    /// interesting and it is asked at each event (a plain `filter_fn` would cache the
    /// answer for the thread that asked first).
    fn capturing<S>(
        _: &tracing::Metadata<'_>,
        _: &tracing_subscriber::layer::Context<'_, S>,
    ) -> bool {
        ON_THIS_THREAD.with(|b| b.borrow().is_some())
    }

    /// Capturing until dropped.
    pub struct Capture(Buffer);

    impl Capture {
        pub fn start() -> Capture {
            static INSTALLED: OnceLock<()> = OnceLock::new();
            INSTALLED.get_or_init(|| {
                let layer = tracing_subscriber::fmt::layer()
                    .with_ansi(false)
                    .with_writer(|| ThreadWriter)
                    .with_filter(tracing_subscriber::filter::dynamic_filter_fn(capturing));
                tracing::subscriber::set_global_default(tracing_subscriber::registry().with(layer))
                    .expect("the only global subscriber of this test binary");
            });
            // Callsites that another thread reached before the subscriber was in place were
            // cached as uninteresting; one registering while it was put in place may even
            // store that after a rebuild made then. Each capture rebuilds the cache.
            tracing::callsite::rebuild_interest_cache();
            let buffer = Buffer::default();
            ON_THIS_THREAD.with(|b| *b.borrow_mut() = Some(Arc::clone(&buffer)));
            Capture(buffer)
        }

        pub fn text(&self) -> String {
            String::from_utf8(self.0.lock().unwrap().clone()).unwrap()
        }
    }

    impl Drop for Capture {
        fn drop(&mut self) {
            ON_THIS_THREAD.with(|b| *b.borrow_mut() = None);
        }
    }

    struct ThreadWriter;

    impl std::io::Write for ThreadWriter {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            ON_THIS_THREAD.with(|b| {
                if let Some(buffer) = b.borrow().as_ref() {
                    buffer.lock().unwrap().extend_from_slice(buf);
                }
            });
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
}

/// The capture sees an event whose callsite another thread, capturing nothing, reached
/// first. A scoped subscriber (`set_default`) misses it every time.
#[test]
fn log_capture_sees_callsites_that_another_thread_reached_first() {
    let capture = capture::Capture::start();
    let say = |who: &str| tracing::info!(who, "a callsite reached from two threads");
    std::thread::scope(|s| {
        s.spawn(|| say("the other thread"));
    });
    say("the capturing thread");
    let log = capture.text();
    assert!(log.contains("who=\"the capturing thread\""), "{log}");
    assert!(!log.contains("the other thread"), "{log}");
}

/// At trace level, through sign-in, silent, refresh, device code and sign-out, no log
/// line carries a token, code, verifier or state.
#[tokio::test(flavor = "current_thread")]
async fn no_secret_reaches_the_logs_at_trace_level() {
    // Everything below runs on this thread (a current-thread runtime).
    let capture = capture::Capture::start();

    let w = World::new().await;
    w.faults(Faults {
        device_code_interval_secs: Some(1),
        ..Default::default()
    });
    let app = w.app(SANDBOX_CLIENT);
    let flow = app
        .start_interactive(InteractiveParams {
            scopes: scopes("User.Read"),
            ..Default::default()
        })
        .await
        .unwrap();
    let auth_url = flow.authorize_url().clone();
    let q = |k: &str| {
        auth_url
            .query_pairs()
            .find(|(n, _)| n == k)
            .map(|(_, v)| v.into_owned())
            .unwrap()
    };
    let (state, nonce, challenge) = (q("state"), q("nonce"), q("code_challenge"));
    let redirected = ScriptedUserAgent::new()
        .unwrap()
        .sign_in(flow.authorize_url(), "alice@contoso.example", "tessera")
        .await
        .unwrap();
    let code = redirected
        .query_pairs()
        .find(|(n, _)| n == "code")
        .map(|(_, v)| v.into_owned())
        .unwrap();
    let signed_in = app.finish_interactive(flow, &redirected).await.unwrap();
    let refreshed = app
        .acquire_token_silent(
            &scopes("User.Read"),
            &signed_in.account,
            &SilentOptions {
                force_refresh: true,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let q2 = tessera_core::cache::CredentialQuery {
        home_account_id: &signed_in.account.home_account_id,
        environments: std::slice::from_ref(&signed_in.account.environment),
        client_id: SANDBOX_CLIENT,
        realm: None,
    };
    let rt = w.store.refresh_tokens(&q2, None).unwrap()[0]
        .secret
        .secret()
        .clone();
    let idt = w
        .store
        .id_token(&q2)
        .unwrap()
        .unwrap()
        .secret
        .secret()
        .to_string();
    let device = app
        .initiate_device_flow(&scopes("User.Read"))
        .await
        .unwrap();
    let device_code = format!("{:?}", device);
    assert!(
        !device_code.contains("device_code: DeviceCode(\""),
        "device code must be redacted in Debug"
    );
    let (uri, user_code) = (device.verification_uri.clone(), device.user_code.clone());
    let approve = tokio::spawn(async move {
        tessera_sandbox_idp::scripted_device_approval(
            &uri,
            &user_code,
            "bob@contoso.example",
            "tessera",
        )
        .await
    });
    let bob = app
        .acquire_token_by_device_flow(device, CancellationToken::new())
        .await
        .unwrap();
    let _ = approve.await;
    app.remove_account(&signed_in.account).await.unwrap();

    let log = capture.text();
    assert!(
        log.contains("TRACE") || log.contains("DEBUG"),
        "the capture works: {} bytes",
        log.len()
    );
    assert!(log.contains("tokens received and cached"));
    tessera_tests::redact::assert_no_secrets(
        &log,
        &[
            signed_in.access_token.secret(),
            refreshed.access_token.secret(),
            bob.access_token.secret(),
            &rt,
            &idt,
            &code,
            &state,
            &nonce,
            &challenge,
        ],
    );
}

/// A device code that expires ends the wait, however long an interval the provider asks for.
#[tokio::test]
async fn device_code_expiry_ends_the_wait_even_with_a_huge_interval() {
    let w = World::new().await;
    w.faults(Faults {
        device_code_interval_secs: Some(1_000_000),
        device_code_expires_secs: Some(2),
        ..Default::default()
    });
    let app = w.app(SANDBOX_CLIENT);
    let flow = app
        .initiate_device_flow(&scopes("User.Read"))
        .await
        .unwrap();
    let started = std::time::Instant::now();
    let e = tokio::time::timeout(
        std::time::Duration::from_secs(20),
        app.acquire_token_by_device_flow(flow, CancellationToken::new()),
    )
    .await
    .expect("the wait ends at the code's expiry")
    .unwrap_err();
    assert_eq!(
        reason(&e),
        Some(InteractionReason::DeviceCodeExpired),
        "{e}"
    );
    assert!(started.elapsed() < std::time::Duration::from_secs(10));
}
