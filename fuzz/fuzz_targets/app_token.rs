//! The whole engine on a hostile token endpoint: `PublicClientApplication` signs in
//! (discovery, authorize, code redemption), then refreshes, with the token response
//! from the fuzzer, served in process through the `HttpClient` seam (the hostile-server
//! suite in tests/it/hostile.rs does the same over real HTTP). No panic; a failed
//! request leaves the store exactly as it was; a success is in the store.
#![no_main]

use std::sync::{Arc, OnceLock};

use arbitrary::{Arbitrary, Unstructured};
use libfuzzer_sys::fuzz_target;
use serde_json::{json, Map, Value};
use tessera_core::app::{
    ClientConfig, Deps, InteractiveParams, PublicClientApplication, SilentOptions,
};
use tessera_core::authority::Authority;
use tessera_core::cache::memory::MemoryStore;
use tessera_core::cache::TokenStore;
use tessera_core::env::{CountingEntropy, FixedClock};
use tessera_core::http::{HttpClient, HttpRequest, HttpResponse, TransportError};
use tessera_core::scopes::ScopeSet;
use tessera_fuzz::{b64url, structured, Json, Key, Status};
use url::Url;

const NOW: i64 = 1_800_000_000;
const CLIENT: &str = "cid";

#[derive(Debug, Arbitrary)]
enum Field {
    Remove,
    Json(Json),
}

#[derive(Debug, Arbitrary)]
struct Input {
    entra: bool,
    status: Status,
    /// Overrides of a valid token response's fields.
    response: Vec<(Key, Field)>,
    /// Overrides of a valid ID token's claims; `None`: no ID token.
    claims: Option<Vec<(Key, Field)>>,
    /// The second response (to the refresh), the same way.
    refresh: Vec<(Key, Field)>,
}

struct Served {
    discovery: HttpResponse,
    tokens: std::sync::Mutex<Vec<HttpResponse>>,
}

#[async_trait::async_trait]
impl HttpClient for Served {
    async fn execute(&self, request: HttpRequest) -> Result<HttpResponse, TransportError> {
        if request
            .url
            .path()
            .ends_with("/.well-known/openid-configuration")
        {
            return Ok(self.discovery.clone());
        }
        let mut tokens = self.tokens.lock().unwrap_or_else(|e| e.into_inner());
        if tokens.is_empty() {
            return Err(TransportError("no more responses".into()));
        }
        Ok(tokens.remove(0))
    }
}

fn apply(base: &mut Map<String, Value>, overrides: &[(Key, Field)]) {
    for (k, f) in overrides {
        match f {
            Field::Remove => {
                base.remove(&k.0);
            }
            Field::Json(j) => {
                base.insert(k.0.clone(), j.to_value());
            }
        }
    }
}

fn runtime() -> &'static tokio::runtime::Runtime {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime")
    })
}

fn json_response(status: u16, body: &Map<String, Value>) -> HttpResponse {
    HttpResponse {
        status,
        headers: vec![("content-type".into(), "application/json".into())],
        body: Value::Object(body.clone()).to_string().into_bytes(),
    }
}

async fn run(input: Input) {
    let (authority, issuer, base) = if input.entra {
        (
            Authority::entra("https://login.microsoftonline.com/common").expect("authority"),
            "https://login.microsoftonline.com/{tenantid}/v2.0",
            "https://login.microsoftonline.com/common/oauth2/v2.0",
        )
    } else {
        (
            Authority::oidc("https://idp.example.com/realm").expect("authority"),
            "https://idp.example.com/realm",
            "https://idp.example.com/realm",
        )
    };
    let discovery = json_response(
        200,
        json!({
            "issuer": issuer,
            "authorization_endpoint": format!("{base}/authorize"),
            "token_endpoint": format!("{base}/token"),
        })
        .as_object()
        .expect("object"),
    );
    let served = Arc::new(Served {
        discovery,
        tokens: Default::default(),
    });
    let clock = Arc::new(FixedClock::new(NOW));
    let store = Arc::new(MemoryStore::new().with_clock(clock.clone()));
    let app = PublicClientApplication::new(
        ClientConfig {
            client_id: CLIENT.into(),
            authority,
            redirect_uri: Url::parse("http://localhost/cb").expect("url"),
        },
        Deps {
            http: served.clone(),
            store: store.clone(),
            clock,
            entropy: Arc::new(CountingEntropy::default()),
        },
    );
    let flow = app
        .start_interactive(InteractiveParams {
            scopes: ScopeSet::parse("User.Read"),
            ..Default::default()
        })
        .await
        .expect("discovery");
    let param = |k: &str| {
        flow.authorize_url()
            .query_pairs()
            .find(|(n, _)| n == k)
            .map(|(_, v)| v.into_owned())
            .expect("param")
    };
    let (state, nonce) = (param("state"), param("nonce"));

    let mut response = json!({
        "token_type": "Bearer", "access_token": "at", "refresh_token": "rt", "expires_in": 3600,
        "scope": "User.Read openid profile offline_access",
        "client_info": b64url(br#"{"uid":"u","utid":"t1"}"#),
    })
    .as_object()
    .expect("object")
    .clone();
    if let Some(overrides) = &input.claims {
        let mut claims = json!({
            "iss": issuer.replace("{tenantid}", "t1"), "tid": "t1", "aud": CLIENT, "nonce": nonce,
            "exp": NOW + 3600, "sub": "s", "oid": "o", "preferred_username": "alice@example.com",
        })
        .as_object()
        .expect("object")
        .clone();
        apply(&mut claims, overrides);
        let idt = format!(
            "{}.{}.",
            b64url(br#"{"alg":"none"}"#),
            b64url(Value::Object(claims).to_string().as_bytes())
        );
        response.insert("id_token".into(), Value::String(idt));
    }
    apply(&mut response, &input.response);
    served
        .tokens
        .lock()
        .expect("lock")
        .push(json_response(input.status.0, &response));
    let mut refreshed = response.clone();
    refreshed.remove("id_token");
    apply(&mut refreshed, &input.refresh);
    served
        .tokens
        .lock()
        .expect("lock")
        .push(json_response(input.status.0, &refreshed));

    let before = store.to_msal_json();
    let redirect = Url::parse(&format!("http://localhost/cb?code=c&state={state}")).expect("url");
    let result = app.finish_interactive(flow, &redirect).await;
    let account = match result {
        Err(e) => {
            assert_eq!(
                store.to_msal_json(),
                before,
                "a failed sign-in changed the store: {e}"
            );
            let _ = (e.to_string(), e.exit_code());
            return;
        }
        Ok(r) => r.account,
    };
    assert!(
        store
            .accounts()
            .expect("accounts")
            .iter()
            .any(|a| a.home_account_id == account.home_account_id),
        "the account is cached"
    );

    let _ = app
        .acquire_token_silent(
            &ScopeSet::parse("User.Read"),
            &account,
            &SilentOptions::default(),
        )
        .await;
    let before = store.to_msal_json();
    let forced = SilentOptions {
        force_refresh: true,
        ..Default::default()
    };
    if let Err(e) = app
        .acquire_token_silent(&ScopeSet::parse("User.Read"), &account, &forced)
        .await
    {
        assert_eq!(
            store.to_msal_json(),
            before,
            "a failed refresh changed the store: {e}"
        );
    }
    let _ = app.get_accounts().await;
    let _ = app.remove_account(&account).await;
}

fuzz_target!(|data: &[u8]| {
    // Structured only: the JSON around the fuzzed fields must be valid to get this far.
    let rest = structured(data).unwrap_or(data);
    let Ok(input) = Input::arbitrary(&mut Unstructured::new(rest)) else {
        return;
    };
    runtime().block_on(run(input));
});
