//! Conformance against a real, independent OpenID provider: panva's oidc-provider
//! (npm, pinned), started on a free loopback port. Auth code with PKCE through its own
//! login and consent pages, device code, refresh with rotation, silent from the cache,
//! sign-out; with JWT and with opaque access tokens.

use std::sync::Arc;

use tessera_core::app::{
    ClientConfig, Deps, InteractiveParams, PublicClientApplication, SilentOptions, TokenSource,
};
use tessera_core::authority::Authority;
use tessera_core::cache::cipher::PlaintextCipher;
use tessera_core::cache::sqlite::SqliteStore;
use tessera_core::env::{OsEntropy, SystemClock};
use tessera_core::http::{HttpConfig, ReqwestClient};
use tessera_core::jwt::{self, TokenShape};
use tessera_core::scopes::ScopeSet;
use tessera_core::{Error, InteractionReason};
use tessera_tests::oidc_provider::{self, OidcProvider, ScriptedBrowser};
use tokio_util::sync::CancellationToken;
use url::Url;

struct Op {
    provider: OidcProvider,
    home: tempfile::TempDir,
}

impl Op {
    async fn start() -> Op {
        let provider = OidcProvider::start()
            .await
            .expect("oidc-provider starts (run scripts/setup if node_modules is missing)");
        Op {
            provider,
            home: tempfile::tempdir().unwrap(),
        }
    }

    fn app(&self, client_id: &str) -> PublicClientApplication {
        let authority = Authority::oidc(&self.provider.issuer_str()).unwrap();
        let store = SqliteStore::open(
            &self.home.path().join("store.db"),
            Arc::new(PlaintextCipher),
        )
        .unwrap();
        PublicClientApplication::new(
            ClientConfig {
                client_id: client_id.into(),
                authority,
                redirect_uri: Url::parse(oidc_provider::REDIRECT_URI).unwrap(),
            },
            Deps {
                http: Arc::new(ReqwestClient::new(&HttpConfig::default())),
                store: Arc::new(store),
                clock: Arc::new(SystemClock),
                entropy: Arc::new(OsEntropy),
            },
        )
    }
}

fn api() -> ScopeSet {
    ScopeSet::parse("api:read")
}

async fn sign_in(
    app: &PublicClientApplication,
    browser: &ScriptedBrowser,
    login: &str,
) -> tessera_core::Result<tessera_core::app::AuthResult> {
    let flow = app
        .start_interactive(InteractiveParams {
            scopes: api(),
            ..Default::default()
        })
        .await?;
    let redirected = browser
        .sign_in(flow.authorize_url(), login)
        .await
        .expect("oidc-provider pages work");
    app.finish_interactive(flow, &redirected).await
}

#[tokio::test]
async fn auth_code_pkce_jwt_access_token_silent_refresh_rotation_and_sign_out() {
    let op = Op::start().await;
    let app = op.app(oidc_provider::JWT_CLIENT_ID);
    let browser = ScriptedBrowser::new().unwrap();

    // RFC 9207: oidc-provider advertises and sends `iss`; another issuer's is refused.
    let meta = app.metadata().await.unwrap();
    assert_eq!(
        meta.authorization_response_iss_parameter_supported,
        Some(true)
    );
    let flow = app
        .start_interactive(InteractiveParams {
            scopes: api(),
            ..Default::default()
        })
        .await
        .unwrap();
    let redirected = browser
        .sign_in(flow.authorize_url(), "alice")
        .await
        .expect("oidc-provider pages work");
    let iss = redirected
        .query_pairs()
        .find(|(k, _)| k == "iss")
        .map(|(_, v)| v.into_owned());
    assert_eq!(iss.as_deref(), Some(meta.issuer.as_str()));
    let mut foreign = redirected.clone();
    let pairs: Vec<(String, String)> = redirected
        .query_pairs()
        .map(|(k, v)| match k.as_ref() {
            "iss" => (k.into_owned(), "https://evil.example".to_string()),
            _ => (k.into_owned(), v.into_owned()),
        })
        .collect();
    foreign.query_pairs_mut().clear().extend_pairs(pairs);
    let e = app.finish_interactive(flow, &foreign).await.unwrap_err();
    assert!(
        matches!(&e, tessera_core::Error::Validation(m) if m.contains("mix-up")),
        "{e:?}"
    );
    assert!(app.get_accounts().await.unwrap().is_empty());

    let first = sign_in(&app, &browser, "alice").await.unwrap();
    assert_eq!(first.account.username, "alice");
    assert_eq!(
        first.account.home_account_id, "alice",
        "generic providers: sub"
    );
    assert_eq!(jwt::shape(first.access_token.secret()), TokenShape::Jws);
    let (_, claims) = jwt::decode_jws(first.access_token.secret()).unwrap();
    assert_eq!(claims["aud"], oidc_provider::API_RESOURCE);
    assert!(first.scopes.contains("api:read"));

    let accounts = app.get_accounts().await.unwrap();
    assert_eq!(accounts, vec![first.account.clone()]);
    let cached = app
        .acquire_token_silent(&api(), &first.account, &SilentOptions::default())
        .await
        .unwrap();
    assert_eq!(cached.token_source, TokenSource::Cache);
    assert_eq!(cached.access_token.secret(), first.access_token.secret());

    // oidc-provider rotates refresh tokens and refuses a used one: two refreshes in a
    // row only work if the rotated token was stored.
    let forced = SilentOptions {
        force_refresh: true,
        ..Default::default()
    };
    let r1 = app
        .acquire_token_silent(&api(), &first.account, &forced)
        .await
        .unwrap();
    let r2 = app
        .acquire_token_silent(&api(), &first.account, &forced)
        .await
        .unwrap();
    assert_eq!(r2.token_source, TokenSource::IdentityProvider);
    assert_ne!(r1.access_token.secret(), r2.access_token.secret());

    let out = app.remove_account(&first.account).await.unwrap();
    assert!(out.removed >= 3);
    let end = out
        .end_session_url
        .expect("oidc-provider has an end_session_endpoint");
    assert!(end.as_str().starts_with(&op.provider.issuer_str()), "{end}");
    assert!(app.get_accounts().await.unwrap().is_empty());
    let e = app
        .acquire_token_silent(&api(), &first.account, &SilentOptions::default())
        .await
        .unwrap_err();
    assert!(
        matches!(
            e,
            Error::InteractionRequired {
                reason: InteractionReason::NoRefreshToken,
                ..
            }
        ),
        "{e}"
    );
}

#[tokio::test]
async fn opaque_access_tokens_are_cached_and_refreshed_too() {
    let op = Op::start().await;
    let app = op.app(oidc_provider::OPAQUE_CLIENT_ID);
    let browser = ScriptedBrowser::new().unwrap();
    let first = sign_in(&app, &browser, "bob@example.test").await.unwrap();
    assert_eq!(jwt::shape(first.access_token.secret()), TokenShape::Opaque);
    assert_eq!(first.account.username, "bob@example.test");
    let cached = app
        .acquire_token_silent(&api(), &first.account, &SilentOptions::default())
        .await
        .unwrap();
    assert_eq!(cached.token_source, TokenSource::Cache);
    let refreshed = app
        .acquire_token_silent(
            &api(),
            &first.account,
            &SilentOptions {
                force_refresh: true,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(refreshed.token_source, TokenSource::IdentityProvider);
}

#[tokio::test]
async fn device_code_through_the_providers_pages() {
    let op = Op::start().await;
    let app = op.app(oidc_provider::JWT_CLIENT_ID);
    let flow = app.initiate_device_flow(&api()).await.unwrap();
    let (uri, code) = (flow.verification_uri.clone(), flow.user_code.clone());
    let approve =
        tokio::spawn(
            async move { oidc_provider::scripted_device_approval(&uri, &code, "carol").await },
        );
    let r = app
        .acquire_token_by_device_flow(flow, CancellationToken::new())
        .await
        .unwrap();
    approve.await.unwrap().unwrap();
    assert_eq!(r.account.username, "carol");
    assert_eq!(
        app.acquire_token_silent(&api(), &r.account, &SilentOptions::default())
            .await
            .unwrap()
            .token_source,
        TokenSource::Cache
    );
}

#[tokio::test]
async fn a_provider_whose_issuer_differs_is_refused() {
    let op = Op::start().await;
    // Same server, but named with a trailing path: the discovered issuer does not match.
    let other = format!("{}/tenant", op.provider.issuer_str());
    let authority = Authority::oidc(&other).unwrap();
    let app = PublicClientApplication::new(
        ClientConfig {
            client_id: "tessera-jwt".into(),
            authority,
            redirect_uri: Url::parse(oidc_provider::REDIRECT_URI).unwrap(),
        },
        Deps {
            http: Arc::new(ReqwestClient::new(&HttpConfig::default())),
            store: Arc::new(
                SqliteStore::open(&op.home.path().join("x.db"), Arc::new(PlaintextCipher)).unwrap(),
            ),
            clock: Arc::new(SystemClock),
            entropy: Arc::new(OsEntropy),
        },
    );
    let e = app
        .start_interactive(InteractiveParams::default())
        .await
        .unwrap_err();
    assert_eq!(e.exit_code(), 4, "{e}");
}
