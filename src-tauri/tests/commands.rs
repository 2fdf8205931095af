//! The app's commands through Tauri's IPC, on Tauri's mock runtime, with the app's own
//! configuration and capabilities (`tauri.conf.json`, `capabilities/`), against an
//! in-process sandbox identity provider. Accounts are signed in through the engine with
//! the sandbox's scripted user agent (plain HTTP through its real pages).

use std::path::Path;
use std::sync::Arc;

use serde_json::{json, Value};
use tauri::ipc::{CallbackFn, InvokeBody};
use tauri::test::{get_ipc_response, mock_builder, MockRuntime, INVOKE_KEY};
use tauri::webview::InvokeRequest;
use tauri::{App, Manager, WebviewUrl, WebviewWindow, WebviewWindowBuilder};
use tessera_core::app::{InteractiveParams, SilentOptions};
use tessera_core::cache::msal_file::MsalFileStore;
use tessera_core::cache::StoreKey;
use tessera_core::cache::{PlaintextCipher, SqliteStore};
use tessera_core::context::Tessera;
use tessera_core::http::{HttpConfig, ReqwestClient};
use tessera_core::keystore::{KeyStore, KeyringError, StoreOptions};
use tessera_core::paths::Paths;
use tessera_core::profile::Profiles;
use tessera_core::scopes::ScopeSet;
use tessera_lib::AppState;
use tessera_sandbox_idp::{Faults, SandboxConfig, SandboxHandle};
use tessera_tests::attacker::{self, Attacker};

const PASSWORD: &str = "tessera";

fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tauri::async_runtime::block_on(f)
}

/// The engine on `home`, with the built-in Sandbox profile pointing at `sandbox`.
fn tessera(home: &Path, sandbox: &SandboxHandle) -> Tessera {
    let paths = Paths::resolve(Some(home)).unwrap();
    paths.ensure().unwrap();
    let base = sandbox.base_url().to_string();
    let profiles = Profiles::builtin_with_sandbox_url(Some(base.trim_end_matches('/'))).unwrap();
    let store = SqliteStore::open(&paths.store_file(), Arc::new(PlaintextCipher)).unwrap();
    let http = ReqwestClient::new(&HttpConfig::default());
    Tessera::with_parts(paths, profiles, Arc::new(store), Arc::new(http))
}

/// Sign `login` in with the Sandbox profile through the engine (interactive flow, the
/// sandbox's pages filled in over HTTP).
fn sign_in(t: &Tessera, login: &str) {
    block_on(async {
        let profile = t.profile("Sandbox").unwrap().clone();
        let app = t.app(&profile).unwrap();
        let flow = app
            .start_interactive(InteractiveParams {
                scopes: ScopeSet::parse("User.Read"),
                ..Default::default()
            })
            .await
            .unwrap();
        let redirected =
            tessera_sandbox_idp::scripted_sign_in(flow.authorize_url(), login, PASSWORD)
                .await
                .unwrap();
        app.finish_interactive(flow, &redirected).await.unwrap();
    });
}

/// The raw access token the engine holds for `login` (to check it never reaches a view).
fn raw_access_token(t: &Tessera, login: &str) -> String {
    block_on(async {
        let profile = t.profile("Sandbox").unwrap().clone();
        let app = t.app(&profile).unwrap();
        let account = app.find_account(login).await.unwrap().unwrap();
        let r = app
            .acquire_token_silent(
                &ScopeSet::parse("User.Read"),
                &account,
                &SilentOptions::default(),
            )
            .await
            .unwrap();
        r.access_token.secret().to_string()
    })
}

struct Harness {
    _home: tempfile::TempDir,
    home_path: std::path::PathBuf,
    sandbox: SandboxHandle,
    app: App<MockRuntime>,
    main: WebviewWindow<MockRuntime>,
}

/// The app on the mock runtime with `state`, and its main window.
fn mock_app(state: AppState) -> (App<MockRuntime>, WebviewWindow<MockRuntime>) {
    let app = tessera_lib::configure(mock_builder(), state)
        .build(tauri::generate_context!())
        .expect("the app builds on the mock runtime");
    // The mock runtime has no event loop, so no setup: create the main window as it does.
    tessera_lib::create_main_window(app.handle()).unwrap();
    let main = app.get_webview_window("main").expect("the main window");
    (app, main)
}

/// A sandbox, a home with `logins` signed in, and the app on the mock runtime.
fn harness(logins: &[&str]) -> Harness {
    let home = tempfile::tempdir().unwrap();
    let sandbox = block_on(tessera_sandbox_idp::start(SandboxConfig::default())).unwrap();
    let t = tessera(home.path(), &sandbox);
    for login in logins {
        sign_in(&t, login);
    }
    let (app, main) = mock_app(AppState::new(Ok(t)));
    let home_path = home.path().to_path_buf();
    Harness {
        _home: home,
        home_path,
        sandbox,
        app,
        main,
    }
}

fn request(cmd: &str, args: Value, url: &str) -> InvokeRequest {
    InvokeRequest {
        cmd: cmd.into(),
        callback: CallbackFn(0),
        error: CallbackFn(1),
        url: url.parse().unwrap(),
        body: InvokeBody::Json(args),
        headers: Default::default(),
        invoke_key: INVOKE_KEY.to_string(),
    }
}

/// Invoke a command as the main window's page does.
fn invoke(w: &WebviewWindow<MockRuntime>, cmd: &str, args: Value) -> Result<Value, Value> {
    get_ipc_response(w, request(cmd, args, "tauri://localhost"))
        .map(|b| b.deserialize::<Value>().unwrap())
}

/// The entry of `list_accounts`' answer for `username`.
fn listed<'a>(list: &'a Value, username: &str) -> &'a Value {
    list.as_array()
        .unwrap()
        .iter()
        .find(|a| a["username"] == username)
        .unwrap_or_else(|| panic!("{username} not listed in {list}"))
}

/// The usernames in `list_accounts`' answer, sorted.
fn usernames(list: &Value) -> Vec<&str> {
    let mut names: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["username"].as_str().unwrap())
        .collect();
    names.sort();
    names
}

fn account_ref(list: &Value, username: &str) -> Value {
    let a = listed(list, username);
    json!({ "profile": a["profile"], "home_account_id": a["home_account_id"] })
}

#[test]
fn lists_the_accounts_of_a_home_with_their_token_state() {
    let h = harness(&["alice@contoso.example", "carol@fabrikam.example"]);
    let list = invoke(&h.main, "list_accounts", json!({})).unwrap();
    assert_eq!(
        usernames(&list),
        ["alice@contoso.example", "carol@fabrikam.example"]
    );
    let alice = listed(&list, "alice@contoso.example");
    assert_eq!(alice["profile"], "Sandbox");
    assert_eq!(alice["name"], "Alice Example");
    assert_eq!(
        alice["id"],
        format!("Sandbox|{}", alice["home_account_id"].as_str().unwrap())
    );
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let exp = alice["token"]["expires_on"]
        .as_i64()
        .expect("a cached access token's expiry");
    assert!(
        exp > now + 3000 && exp <= now + 3700,
        "expires_on {exp}, now {now}"
    );
    assert_eq!(alice["token"]["has_refresh_token"], true);
    assert_eq!(alice["token"]["needs_sign_in"], Value::Null);
}

#[test]
fn an_empty_home_lists_no_accounts_and_the_profiles() {
    let h = harness(&[]);
    assert_eq!(
        invoke(&h.main, "list_accounts", json!({})).unwrap(),
        json!([])
    );
    let profiles = invoke(&h.main, "list_profiles", json!({})).unwrap();
    let sandbox = profiles
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "Sandbox")
        .unwrap();
    assert_eq!(sandbox["builtin"], true);
    assert_eq!(sandbox["sign_in"], "embedded");
    assert_eq!(sandbox["default_scopes"], json!(["User.Read"]));
    assert_eq!(
        sandbox["authority"],
        format!("{}common", h.sandbox.base_url())
    );
}

#[test]
fn the_token_view_has_decoded_claims_and_never_the_token() {
    let h = harness(&["alice@contoso.example"]);
    let list = invoke(&h.main, "list_accounts", json!({})).unwrap();
    let alice = account_ref(&list, "alice@contoso.example");
    let view = invoke(
        &h.main,
        "token_view",
        json!({ "account": alice, "scopes": null }),
    )
    .unwrap();

    assert_eq!(view["decoded"]["kind"], "jws");
    assert_eq!(view["source"], "cache");
    assert_eq!(view["scopes"], json!(["User.Read"]));
    assert_eq!(view["decoded"]["scp"], json!(["User.Read"]));
    let claim = |name: &str| {
        view["decoded"]["claims"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["name"] == name)
            .cloned()
    };
    assert_eq!(
        claim("preferred_username").unwrap()["value"],
        "alice@contoso.example"
    );
    let exp = claim("exp").unwrap();
    assert_eq!(
        exp["time"], exp["value"],
        "exp carries its Unix time for the countdown"
    );
    assert_eq!(view["expires_on"], exp["value"]);
    assert!(claim("aud").unwrap()["meaning"]
        .as_str()
        .unwrap()
        .contains("Audience"));

    // The token, and each of its parts, is nowhere in what the webview receives.
    let raw = raw_access_token(&tessera(&h.home_path, &h.sandbox), "alice@contoso.example");
    h.sandbox
        .verify_token(&raw)
        .expect("the engine holds a real token");
    let serialized = serde_json::to_string(&view).unwrap();
    assert!(
        !serialized.contains(&raw),
        "the raw token leaked into the view"
    );
    for (i, part) in raw.split('.').enumerate() {
        assert!(
            part.len() > 10 && !serialized.contains(part),
            "part {i} of the token leaked into the view"
        );
    }
}

#[test]
fn other_scopes_need_interaction_when_the_provider_requires_it() {
    let h = harness(&["alice@contoso.example"]);
    let list = invoke(&h.main, "list_accounts", json!({})).unwrap();
    let alice = account_ref(&list, "alice@contoso.example");
    h.sandbox.set_faults(Faults {
        interaction_required: true,
        ..Faults::default()
    });
    // Not cached for these scopes: the refresh token is redeemed, and the provider refuses.
    let err = invoke(
        &h.main,
        "token_view",
        json!({ "account": alice, "scopes": "Mail.Read" }),
    )
    .unwrap_err();
    assert_eq!(err["kind"], "interaction_required", "{err}");
    // The sandbox sends a claims challenge with AADSTS50076 (MFA), as Entra does.
    assert_eq!(err["reason"], "claims_challenge");
    let message = err["message"].as_str().unwrap();
    assert!(message.starts_with("Sign-in needed: "), "{message}");
    assert!(
        message.contains("AADSTS50076"),
        "the provider's description is shown: {message}"
    );
    let list = invoke(&h.main, "list_accounts", json!({})).unwrap();
    assert_eq!(
        list[0]["token"]["needs_sign_in"],
        Value::Null,
        "only Mail.Read needs a sign-in: the account's default token is still valid"
    );
    // The default scopes, refreshed by force, are refused too: now the list marks it.
    let err = invoke(
        &h.main,
        "token_view",
        json!({ "account": alice, "force_refresh": true }),
    )
    .unwrap_err();
    let list = invoke(&h.main, "list_accounts", json!({})).unwrap();
    assert_eq!(list[0]["token"]["needs_sign_in"], err["message"]);
    // The cached token for the default scopes still serves, and clears the mark.
    h.sandbox.set_faults(Faults::default());
    invoke(&h.main, "token_view", json!({ "account": alice })).unwrap();
    let list = invoke(&h.main, "list_accounts", json!({})).unwrap();
    assert_eq!(list[0]["token"]["needs_sign_in"], Value::Null);
}

#[test]
fn errors_serialize_to_a_kind_and_a_message() {
    let h = harness(&[]);
    let err = invoke(
        &h.main,
        "token_view",
        json!({ "account": { "profile": "Sandbox", "home_account_id": "nobody.nowhere" } }),
    )
    .unwrap_err();
    assert_eq!(
        err,
        json!({ "kind": "not_found", "message": "That account is no longer signed in with Sandbox." })
    );
    let err = invoke(
        &h.main,
        "token_view",
        json!({ "account": { "profile": "Nope", "home_account_id": "x" } }),
    )
    .unwrap_err();
    assert_eq!(err["kind"], "invalid");
    assert!(
        err["message"]
            .as_str()
            .unwrap()
            .contains("no profile named \"Nope\""),
        "{err}"
    );
    let err = invoke(
        &h.main,
        "copy_token",
        json!({ "account": { "profile": "Sandbox", "home_account_id": "x" }, "format": "pdf" }),
    )
    .unwrap_err();
    // The format is an enum: Tauri refuses an unknown one before the command runs, naming
    // the value and the ones it accepts.
    let err = err.as_str().unwrap_or_default();
    assert!(
        err.contains("unknown variant `pdf`, expected `raw` or `header`"),
        "{err}"
    );
    let err = invoke(
        &h.main,
        "save_settings",
        json!({ "settings": { "clipboard_clear_secs": 86400 } }),
    )
    .unwrap_err();
    assert_eq!(err["kind"], "invalid");
}

fn profile_input(name: &str, authority: &str) -> Value {
    json!({
        "name": name,
        "kind": "entra",
        "authority": authority,
        "client_id": tessera_sandbox_idp::SANDBOX_CLIENT_ID,
        "redirect_uri": "http://localhost/tessera-redirect",
        "default_scopes": "User.Read Mail.Read",
        "sign_in": "browser",
        "instance_discovery": false,
    })
}

#[test]
fn profiles_are_validated_checked_against_the_provider_and_saved() {
    let h = harness(&[]);
    let err = invoke(
        &h.main,
        "save_profile",
        json!({ "profile": profile_input("Broken", "not a url") }),
    )
    .unwrap_err();
    assert_eq!(err["kind"], "invalid");
    assert!(
        err["message"].as_str().unwrap().contains("authority"),
        "{err}"
    );

    // A free port: nothing answers there.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let err = invoke(
        &h.main,
        "save_profile",
        json!({ "profile": profile_input("Gone", &format!("http://127.0.0.1:{closed}/common")) }),
    )
    .unwrap_err();
    assert!(
        err["message"]
            .as_str()
            .unwrap()
            .starts_with("Could not reach the identity provider of Gone"),
        "{err}"
    );

    let err = invoke(
        &h.main,
        "save_profile",
        json!({ "profile": profile_input("Sandbox", &h.sandbox.authority("common")) }),
    )
    .unwrap_err();
    assert!(
        err["message"].as_str().unwrap().contains("already exists")
            || err["message"].as_str().unwrap().contains("built in"),
        "{err}"
    );

    let saved = invoke(&h.main, "save_profile", json!({ "profile": profile_input("Contoso (sandbox)", &h.sandbox.authority("contoso.example")) })).unwrap();
    assert_eq!(saved["sign_in"], "browser");
    assert_eq!(saved["default_scopes"], json!(["User.Read", "Mail.Read"]));
    let file = std::fs::read_to_string(h.home_path.join("profiles.toml")).unwrap();
    assert!(file.contains("name = \"Contoso (sandbox)\""), "{file}");

    // Rename it.
    invoke(&h.main, "save_profile", json!({ "original_name": "Contoso (sandbox)", "profile": profile_input("Contoso", &h.sandbox.authority("contoso.example")) })).unwrap();
    let names: Vec<String> = invoke(&h.main, "list_profiles", json!({}))
        .unwrap()
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(names, ["Microsoft", "Sandbox", "Contoso"]);

    let err = invoke(&h.main, "remove_profile", json!({ "name": "Sandbox" })).unwrap_err();
    assert!(
        err["message"].as_str().unwrap().contains("built in"),
        "{err}"
    );
    invoke(&h.main, "remove_profile", json!({ "name": "contoso" })).unwrap();
    let file = std::fs::read_to_string(h.home_path.join("profiles.toml")).unwrap();
    assert!(!file.contains("Contoso"), "{file}");
}

#[test]
fn sign_out_removes_the_tokens() {
    let h = harness(&["alice@contoso.example", "bob@contoso.example"]);

    let list = invoke(&h.main, "list_accounts", json!({})).unwrap();
    let bob = account_ref(&list, "bob@contoso.example");
    let out = invoke(&h.main, "sign_out", json!({ "account": bob })).unwrap();
    assert_eq!(out["accounts"], 1);
    assert!(out["removed"].as_u64().unwrap() >= 3, "{out}");

    let list = invoke(&h.main, "list_accounts", json!({})).unwrap();
    assert_eq!(usernames(&list), ["alice@contoso.example"]);
    let err = invoke(&h.main, "token_view", json!({ "account": bob })).unwrap_err();
    assert_eq!(err["kind"], "not_found");

    let out = invoke(&h.main, "sign_out_all", json!({})).unwrap();
    assert_eq!(out["accounts"], 1);
    assert_eq!(
        invoke(&h.main, "list_accounts", json!({})).unwrap(),
        json!([])
    );
}

#[test]
fn settings_are_saved_in_the_home() {
    let h = harness(&[]);
    let s = invoke(&h.main, "get_settings", json!({})).unwrap();
    assert_eq!(s["clipboard_clear_secs"], 30);
    invoke(
        &h.main,
        "save_settings",
        json!({ "settings": { "clipboard_clear_secs": 5 } }),
    )
    .unwrap();
    let file: Value =
        serde_json::from_slice(&std::fs::read(h.home_path.join("app-settings.json")).unwrap())
            .unwrap();
    assert_eq!(file["clipboard_clear_secs"], 5);
    assert_eq!(
        invoke(&h.main, "get_settings", json!({})).unwrap()["clipboard_clear_secs"],
        5
    );
}

#[test]
fn only_the_main_window_may_call_commands() {
    let h = harness(&["alice@contoso.example"]);
    assert!(invoke(&h.main, "list_accounts", json!({})).is_ok());
    // The sign-in window has no capability: its page (the provider's) is refused.
    let signin =
        WebviewWindowBuilder::new(&h.app, "signin", WebviewUrl::External(h.sandbox.base_url()))
            .build()
            .unwrap();
    let page = format!("{}common/oauth2/v2.0/authorize", h.sandbox.base_url());
    for cmd in [
        "list_accounts",
        "copy_token",
        "token_view",
        "plugin:clipboard-manager|read_text",
    ] {
        let err = get_ipc_response(&signin, request(cmd, json!({}), &page)).unwrap_err();
        assert!(err.to_string().contains("not allowed"), "{cmd}: {err}");
    }
    // The main window cannot use the clipboard plugin directly either.
    let err = get_ipc_response(
        &h.main,
        request(
            "plugin:clipboard-manager|read_text",
            json!({}),
            "tauri://localhost",
        ),
    )
    .unwrap_err();
    assert!(err.to_string().contains("not allowed"), "{err}");
    // Nor can a remote page loaded in the main window.
    let err = get_ipc_response(&h.main, request("list_accounts", json!({}), &page)).unwrap_err();
    assert!(err.to_string().contains("not allowed"), "{err}");
}

#[test]
fn a_sign_in_opens_one_window_and_closing_it_cancels() {
    use std::sync::mpsc;
    use tauri::Listener;

    let h = harness(&[]);
    let (tx, rx) = mpsc::channel::<String>();
    h.app.listen_any("signin:finished", move |event| {
        let _ = tx.send(event.payload().to_string());
    });
    let started = invoke(
        &h.main,
        "sign_in",
        json!({ "profile": "Sandbox", "method": "embedded" }),
    )
    .unwrap();
    assert_eq!(started["method"], "embedded");
    assert_eq!(
        started["message"],
        "Sign in to Sandbox in the sign-in window…"
    );
    let window = h
        .app
        .get_webview_window("signin")
        .expect("the sign-in window is open");
    let url = window.url().unwrap();
    assert!(
        url.as_str().starts_with(&format!(
            "{}common/oauth2/v2.0/authorize?",
            h.sandbox.base_url()
        )),
        "{url}"
    );
    let query: std::collections::HashMap<String, String> = url.query_pairs().into_owned().collect();
    assert_eq!(query["prompt"], "select_account");
    assert_eq!(query["redirect_uri"], "http://localhost/tessera-redirect");
    assert_eq!(query["code_challenge_method"], "S256");
    assert!(
        !h.home_path.join("webview").exists(),
        "no web data folder: the window's context is a throwaway one"
    );

    // One sign-in at a time.
    let err = invoke(&h.main, "sign_in", json!({ "profile": "Sandbox" })).unwrap_err();
    assert_eq!(err["kind"], "busy");

    // Cancelling closes the window; the UI hears "cancelled".
    assert_eq!(invoke(&h.main, "cancel_sign_in", json!({})).unwrap(), true);
    let outcome: Value =
        serde_json::from_str(&rx.recv_timeout(std::time::Duration::from_secs(10)).unwrap())
            .unwrap();
    assert_eq!(
        outcome,
        json!({ "status": "cancelled", "account": null, "message": "Sign-in cancelled." })
    );
    assert_eq!(
        invoke(&h.main, "cancel_sign_in", json!({})).unwrap(),
        false,
        "nothing left to cancel"
    );
    assert_eq!(
        invoke(&h.main, "list_accounts", json!({})).unwrap(),
        json!([])
    );
}

#[test]
fn a_device_code_sign_in_adds_the_account() {
    use std::sync::mpsc;
    use tauri::Listener;

    let h = harness(&[]);
    h.sandbox.set_faults(Faults {
        device_code_interval_secs: Some(0),
        ..Faults::default()
    });
    let (tx, rx) = mpsc::channel::<String>();
    h.app.listen_any("signin:finished", move |event| {
        let _ = tx.send(event.payload().to_string());
    });
    let flow = invoke(
        &h.main,
        "start_device_code",
        json!({ "profile": "Sandbox" }),
    )
    .unwrap();
    let code = flow["user_code"].as_str().unwrap().to_string();
    assert!(
        flow["verification_uri"]
            .as_str()
            .unwrap()
            .starts_with(h.sandbox.base_url().as_str()),
        "{flow}"
    );
    let err = invoke(&h.main, "sign_in", json!({ "profile": "Sandbox" })).unwrap_err();
    assert_eq!(err["kind"], "busy", "no second sign-in meanwhile");

    block_on(tessera_sandbox_idp::scripted_device_approval(
        &h.sandbox.base_url(),
        &code,
        "dave@outlook.example",
        PASSWORD,
    ))
    .unwrap();
    let outcome: Value =
        serde_json::from_str(&rx.recv_timeout(std::time::Duration::from_secs(30)).unwrap())
            .unwrap();
    assert_eq!(outcome["status"], "added", "{outcome}");
    assert_eq!(outcome["account"]["username"], "dave@outlook.example");
    let list = invoke(&h.main, "list_accounts", json!({})).unwrap();
    assert_eq!(list.as_array().unwrap().len(), 1);
    assert_eq!(list[0]["id"], outcome["account"]["id"]);
}

#[test]
fn a_home_that_cannot_be_opened_is_reported_not_a_crash() {
    let broken = AppState::new(Err(tessera_core::Error::Config(
        "/nowhere/profiles.toml, line 3 is not a valid profiles file".into(),
    )));
    let app = tessera_lib::configure(mock_builder(), broken)
        .build(tauri::generate_context!())
        .unwrap();
    // The mock runtime has no event loop, so no setup: create the main window as it does.
    tessera_lib::create_main_window(app.handle()).unwrap();
    let main = app.get_webview_window("main").expect("the main window");
    for cmd in ["app_info", "list_accounts", "list_profiles"] {
        let err = invoke(&main, cmd, json!({})).unwrap_err();
        assert_eq!(err["kind"], "store", "{cmd}: {err}");
        assert_eq!(
            err["message"],
            "Tessera could not open its data: /nowhere/profiles.toml, line 3 is not a valid profiles file"
        );
    }
}

/// A keyring in memory (or one that cannot be reached), for opening a store as the app does.
struct TestKeys {
    reachable: bool,
    keys: std::sync::Mutex<std::collections::HashMap<String, [u8; 32]>>,
}

impl KeyStore for TestKeys {
    fn location(&self) -> String {
        "test keyring".into()
    }
    fn load(&self, id: &str) -> Result<Option<StoreKey>, KeyringError> {
        if !self.reachable {
            return Err(KeyringError::Unavailable("no keyring in this test".into()));
        }
        Ok(self
            .keys
            .lock()
            .unwrap()
            .get(id)
            .map(|b| StoreKey::from_bytes(*b)))
    }
    fn save(&self, id: &str, key: &StoreKey) -> Result<(), KeyringError> {
        if !self.reachable {
            return Err(KeyringError::Unavailable("no keyring in this test".into()));
        }
        self.keys
            .lock()
            .unwrap()
            .insert(id.into(), *key.secret_bytes());
        Ok(())
    }
    fn forget(&self, id: &str) -> Result<bool, KeyringError> {
        Ok(self.keys.lock().unwrap().remove(id).is_some())
    }
}

/// `app_info` for a home opened as the app opens it, with or without a keyring.
fn app_info_with_keyring(reachable: bool) -> Value {
    let home = tempfile::tempdir().unwrap();
    let options = StoreOptions {
        allow_plaintext: !reachable,
        keystore: Some(Arc::new(TestKeys {
            reachable,
            keys: Default::default(),
        })),
    };
    let t = Tessera::open_with(Some(home.path()), &options).unwrap();
    let (_app, main) = mock_app(AppState::new(Ok(t)));
    invoke(&main, "app_info", json!({})).unwrap()
}

#[test]
fn app_info_says_whether_the_store_is_encrypted() {
    let info = app_info_with_keyring(true);
    let p = &info["protection"];
    assert_eq!(p["protection"], "encrypted", "{info}");
    assert_eq!(p["key_location"], "test keyring");
    let label = p["label"].as_str().unwrap();
    assert!(label.contains("AES-256-GCM"), "{label}");
    assert!(label.contains("test keyring"), "{label}");
    assert!(p["path"].as_str().unwrap().ends_with(".db"), "{info}");

    let info = app_info_with_keyring(false);
    let p = &info["protection"];
    assert_eq!(p["protection"], "plaintext", "{info}");
    assert_eq!(p["key_location"], Value::Null);
    assert!(
        p["label"].as_str().unwrap().contains("Not encrypted"),
        "{info}"
    );
}

/// The engine on an MSAL cache file, with the same Sandbox profile (as the CLI's
/// `--msal-cache FILE` uses it).
fn msal_engine(home: &Path, file: &Path, sandbox: &SandboxHandle) -> Tessera {
    let paths = Paths::resolve(Some(home)).unwrap();
    paths.ensure().unwrap();
    let base = sandbox.base_url().to_string();
    let profiles = Profiles::builtin_with_sandbox_url(Some(base.trim_end_matches('/'))).unwrap();
    let store = MsalFileStore::open(file).unwrap();
    let http = ReqwestClient::new(&HttpConfig::default());
    Tessera::with_parts(paths, profiles, Arc::new(store), Arc::new(http))
}

/// Usernames in an MSAL cache file, read afresh.
fn msal_usernames(file: &Path) -> Vec<String> {
    let doc: Value = serde_json::from_slice(&std::fs::read(file).unwrap()).unwrap();
    let mut names: Vec<String> = doc["Account"]
        .as_object()
        .map(|m| {
            m.values()
                .map(|a| a["username"].as_str().unwrap().to_string())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

#[test]
fn an_msal_cache_file_is_listed_as_its_own_group_and_used_in_place() {
    let h = harness(&["carol@fabrikam.example"]);
    let other = tempfile::tempdir().unwrap();
    let file = other.path().join("msal_token_cache.json");
    {
        let t = msal_engine(&other.path().join("home"), &file, &h.sandbox);
        sign_in(&t, "alice@contoso.example");
        sign_in(&t, "bob@contoso.example");
    }
    let bob_token = {
        let t = msal_engine(&other.path().join("home"), &file, &h.sandbox);
        raw_access_token(&t, "bob@contoso.example")
    };
    assert_eq!(
        msal_usernames(&file),
        ["alice@contoso.example", "bob@contoso.example"]
    );

    let opened = invoke(
        &h.main,
        "open_msal_cache",
        json!({ "path": file.display().to_string(), "label": "Work tools" }),
    )
    .unwrap();
    assert_eq!(opened["label"], "Work tools");
    let source = opened["id"].as_str().unwrap().to_string();
    assert!(source.starts_with("msal-"), "{opened}");
    let caches = invoke(&h.main, "list_msal_caches", json!({})).unwrap();
    assert_eq!(caches["caches"].as_array().unwrap().len(), 1, "{caches}");

    // Tessera's own account, then the file's two, in their group.
    let list = invoke(&h.main, "list_accounts", json!({})).unwrap();
    let rows: Vec<(String, Value, String)> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            (
                a["source"].as_str().unwrap().to_string(),
                a["group"].clone(),
                a["username"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(rows.len(), 3, "{list}");
    assert_eq!(
        rows[0],
        (
            "tessera".to_string(),
            Value::Null,
            "carol@fabrikam.example".to_string()
        )
    );
    let mut in_file: Vec<&str> = rows[1..]
        .iter()
        .map(|(s, g, u)| {
            assert_eq!(s, &source);
            assert_eq!(g, "Work tools");
            u.as_str()
        })
        .collect();
    in_file.sort();
    assert_eq!(in_file, ["alice@contoso.example", "bob@contoso.example"]);
    let bob_row = listed(&list, "bob@contoso.example");
    assert_eq!(bob_row["token"]["has_refresh_token"], true, "{bob_row}");
    let bob = json!({
        "source": source,
        "profile": bob_row["profile"],
        "home_account_id": bob_row["home_account_id"],
    });

    // A decoded token from the file (cached, then with the file's refresh token), no raw
    // token in the view.
    let view = invoke(&h.main, "token_view", json!({ "account": bob })).unwrap();
    assert_eq!(view["account"]["username"], "bob@contoso.example");
    assert_eq!(view["account"]["group"], "Work tools");
    assert!(
        !view.to_string().contains(&bob_token),
        "no raw token in the view"
    );
    let refreshed = invoke(
        &h.main,
        "token_view",
        json!({ "account": bob, "force_refresh": true }),
    )
    .unwrap();
    assert_eq!(refreshed["source"], "identity_provider", "{refreshed}");
    assert!(!refreshed.to_string().contains(&bob_token));
    // The account ref without a source is Tessera's store: bob is not there.
    let err = invoke(
        &h.main,
        "token_view",
        json!({ "account": { "profile": bob["profile"], "home_account_id": bob["home_account_id"] } }),
    )
    .unwrap_err();
    assert_eq!(err["kind"], "not_found", "{err}");

    // Sign-out removes the account from the file, and only from it.
    invoke(&h.main, "sign_out", json!({ "account": bob })).unwrap();
    assert_eq!(msal_usernames(&file), ["alice@contoso.example"]);
    let list = invoke(&h.main, "list_accounts", json!({})).unwrap();
    assert_eq!(list.as_array().unwrap().len(), 2, "{list}");

    // Remembered: the app opened again on the same home lists the file's group.
    let config_dir = Paths::resolve(Some(&h.home_path)).unwrap().config_dir;
    let remembered: Value =
        serde_json::from_slice(&std::fs::read(config_dir.join("msal_caches.json")).unwrap())
            .unwrap();
    assert_eq!(remembered[0]["label"], "Work tools", "{remembered}");
    let again = AppState::new(Ok(tessera(&h.home_path, &h.sandbox)));
    let caches = block_on(again.msal_caches());
    assert_eq!(caches.len(), 1);
    assert_eq!(caches[0].id, source);
    assert_eq!(caches[0].error, None);

    // Closing forgets it and leaves the file alone.
    let before = std::fs::read(&file).unwrap();
    invoke(&h.main, "close_msal_cache", json!({ "id": source })).unwrap();
    let list = invoke(&h.main, "list_accounts", json!({})).unwrap();
    assert_eq!(list.as_array().unwrap().len(), 1, "{list}");
    assert_eq!(std::fs::read(&file).unwrap(), before);
    let caches = invoke(&h.main, "list_msal_caches", json!({})).unwrap();
    assert_eq!(caches["caches"], json!([]));
    let err = invoke(&h.main, "token_view", json!({ "account": bob })).unwrap_err();
    assert_eq!(err["kind"], "not_found", "{err}");
}

#[test]
fn a_bad_msal_cache_path_or_file_is_refused_and_nothing_is_written() {
    let h = harness(&[]);
    let dir = tempfile::tempdir().unwrap();
    let listing = |d: &Path| {
        let mut names: Vec<String> = std::fs::read_dir(d)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    };
    let config_before = listing(&Paths::resolve(Some(&h.home_path)).unwrap().config_dir);

    let missing = dir.path().join("nope.json");
    let err = invoke(
        &h.main,
        "open_msal_cache",
        json!({ "path": missing.display().to_string() }),
    )
    .unwrap_err();
    assert_eq!(err["kind"], "not_found", "{err}");
    assert!(
        err["message"].as_str().unwrap().contains("nope.json"),
        "{err}"
    );
    assert!(!missing.exists(), "a missing file is not created");

    let junk = dir.path().join("notes.json");
    std::fs::write(&junk, "these are my notes, not a token cache").unwrap();
    let err = invoke(
        &h.main,
        "open_msal_cache",
        json!({ "path": junk.display().to_string(), "label": "Notes" }),
    )
    .unwrap_err();
    assert_eq!(err["kind"], "invalid", "{err}");
    let message = err["message"].as_str().unwrap();
    assert!(message.contains("notes.json"), "{message}");
    assert!(message.contains("MSAL token cache"), "{message}");
    assert_eq!(
        std::fs::read_to_string(&junk).unwrap(),
        "these are my notes, not a token cache"
    );
    assert_eq!(
        listing(dir.path()),
        ["notes.json"],
        "nothing written beside it"
    );

    let err = invoke(
        &h.main,
        "open_msal_cache",
        json!({ "path": dir.path().display().to_string() }),
    )
    .unwrap_err();
    assert_eq!(err["kind"], "invalid", "{err}");

    assert_eq!(
        invoke(&h.main, "list_msal_caches", json!({})).unwrap()["caches"],
        json!([])
    );
    assert_eq!(
        listing(&Paths::resolve(Some(&h.home_path)).unwrap().config_dir),
        config_before,
        "nothing remembered"
    );
}

#[test]
fn an_msal_cache_account_no_profile_matches_is_listed_and_can_be_signed_out() {
    let h = harness(&[]);
    let other = tempfile::tempdir().unwrap();
    let file = other.path().join("msal_token_cache.json");
    {
        let t = msal_engine(&other.path().join("home"), &file, &h.sandbox);
        sign_in(&t, "alice@contoso.example");
    }
    // An account of another provider (as another app left it): no profile matches it.
    let mut doc: Value = serde_json::from_slice(&std::fs::read(&file).unwrap()).unwrap();
    doc["Account"].as_object_mut().unwrap().insert(
        "uid.utid-login.elsewhere.example-utid".into(),
        json!({
            "home_account_id": "uid.utid",
            "environment": "login.elsewhere.example",
            "realm": "utid",
            "local_account_id": "uid",
            "username": "erin@elsewhere.example",
            "authority_type": "MSSTS",
        }),
    );
    std::fs::write(&file, serde_json::to_vec_pretty(&doc).unwrap()).unwrap();

    let opened = invoke(
        &h.main,
        "open_msal_cache",
        json!({ "path": file.display().to_string() }),
    )
    .unwrap();
    assert_eq!(opened["label"], "msal_token_cache.json", "the file name");
    let list = invoke(&h.main, "list_accounts", json!({})).unwrap();
    assert_eq!(
        usernames(&list),
        ["alice@contoso.example", "erin@elsewhere.example"]
    );
    let erin = listed(&list, "erin@elsewhere.example");
    assert_eq!(erin["profile"], "");
    assert_eq!(erin["group"], "msal_token_cache.json");
    assert!(
        erin["provider"]
            .as_str()
            .unwrap()
            .starts_with("No matching profile"),
        "{erin}"
    );
    let r = json!({ "source": erin["source"], "profile": "", "home_account_id": "uid.utid" });
    let err = invoke(&h.main, "token_view", json!({ "account": r })).unwrap_err();
    assert_eq!(err["kind"], "not_found", "{err}");
    assert!(
        err["message"]
            .as_str()
            .unwrap()
            .contains("No profile matches"),
        "{err}"
    );
    invoke(&h.main, "sign_out", json!({ "account": r })).unwrap();
    assert_eq!(msal_usernames(&file), ["alice@contoso.example"]);
}

#[test]
fn a_remembered_msal_cache_that_is_gone_is_reported_and_can_be_closed() {
    let h = harness(&["carol@fabrikam.example"]);
    let other = tempfile::tempdir().unwrap();
    let file = other.path().join("cache.json");
    {
        let t = msal_engine(&other.path().join("home"), &file, &h.sandbox);
        sign_in(&t, "alice@contoso.example");
    }
    let opened = invoke(
        &h.main,
        "open_msal_cache",
        json!({ "path": file.display().to_string(), "label": "Gone soon" }),
    )
    .unwrap();
    std::fs::remove_file(&file).unwrap();

    // Relaunch: the file is gone; the app says so, and lists its own accounts.
    let (_app, main) = mock_app(AppState::new(Ok(tessera(&h.home_path, &h.sandbox))));
    let caches = invoke(&main, "list_msal_caches", json!({})).unwrap();
    let cache = &caches["caches"][0];
    assert_eq!(cache["id"], opened["id"]);
    assert!(
        cache["error"].as_str().unwrap().contains("cache.json"),
        "{caches}"
    );
    let list = invoke(&main, "list_accounts", json!({})).unwrap();
    assert_eq!(list.as_array().unwrap().len(), 1, "{list}");
    assert_eq!(list[0]["username"], "carol@fabrikam.example");
    invoke(&main, "close_msal_cache", json!({ "id": opened["id"] })).unwrap();
    assert_eq!(
        invoke(&main, "list_msal_caches", json!({})).unwrap()["caches"],
        json!([])
    );
    assert!(!file.exists(), "closing does not create the file");
}

/// A custom profile on a host that claims Microsoft's cloud (its instance discovery names
/// Microsoft's hosts as aliases): the victim's Microsoft account, in Tessera's store and
/// in an opened MSAL cache, is never listed under that profile, and asking for its token
/// through it (selecting the account does that) sends the host nothing.
#[test]
fn a_profile_on_a_host_claiming_microsofts_cloud_gets_no_account_and_no_secret() {
    let h = harness(&[]);
    let thief = block_on(Attacker::start());
    let dir = tempfile::tempdir().unwrap();
    let file = attacker::write_victim_cache(dir.path());
    let paths = Paths::resolve(Some(&h.home_path)).unwrap();
    let store = SqliteStore::open(&paths.store_file(), Arc::new(PlaintextCipher)).unwrap();
    tessera_core::cache::transfer::import_msal(&file, &store).unwrap();
    let opened = invoke(
        &h.main,
        "open_msal_cache",
        json!({ "path": file.display().to_string(), "label": "Azure CLI" }),
    )
    .unwrap();
    let cache_source = opened["id"].as_str().unwrap().to_string();
    let profiles = [
        ("Thief (own client)", attacker::AZURE_CLI),
        ("Thief (family)", attacker::OTHER_CLIENT),
    ];
    for (name, client_id) in profiles {
        let mut input = profile_input(name, &thief.authority("common"));
        input["client_id"] = json!(client_id);
        input["default_scopes"] = json!(attacker::GRAPH);
        input["instance_discovery"] = json!(true);
        invoke(&h.main, "save_profile", json!({ "profile": input })).unwrap();
    }

    let list = invoke(&h.main, "list_accounts", json!({})).unwrap();
    let mut answers = Vec::new();
    for (name, _) in profiles {
        for source in ["tessera", cache_source.as_str()] {
            for force_refresh in [false, true] {
                let account = json!({
                    "source": source,
                    "profile": name,
                    "home_account_id": attacker::home_account_id(),
                });
                let answer = invoke(
                    &h.main,
                    "token_view",
                    json!({ "account": account, "force_refresh": force_refresh }),
                );
                answers.push((format!("{name} {source} {force_refresh}"), answer));
            }
        }
    }

    let seen = thief.log();
    for (what, secret) in attacker::victim_secrets() {
        assert!(
            !seen.contains(&secret),
            "the host received the victim's {what}:\n{seen}"
        );
    }
    for (what, answer) in answers {
        let err = answer.expect_err(&what);
        assert!(err["message"].is_string(), "{what}: {err}");
    }
    let victim_rows: Vec<&Value> = list
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["username"] == attacker::VICTIM)
        .collect();
    assert!(!victim_rows.is_empty(), "{list}");
    for row in &victim_rows {
        assert_eq!(row["profile"], "Microsoft", "{list}");
    }
}

#[test]
fn the_window_answers_while_the_store_waits_on_the_keyring() {
    let home = tempfile::tempdir().unwrap();
    let sandbox = block_on(tessera_sandbox_idp::start(SandboxConfig::default())).unwrap();
    let t = tessera(home.path(), &sandbox);
    // The store "waits on the keyring" until the test lets it go.
    let (release, keyring) = std::sync::mpsc::channel::<()>();
    let state = AppState::opening_with(move || {
        keyring.recv().ok();
        Ok(t)
    });
    let (app, main) = mock_app(state);

    let info = invoke(&main, "app_info", json!({})).unwrap();
    assert_eq!(info["opening"], true, "app_info answers at once: {info}");
    let waiting = main.clone();
    let listing = std::thread::spawn(move || invoke(&waiting, "list_profiles", json!({})));
    let handle = app.handle().clone();
    let opening =
        std::thread::spawn(move || block_on(handle.state::<AppState>().open_in_background()));
    std::thread::sleep(std::time::Duration::from_millis(300));
    assert!(
        !listing.is_finished(),
        "a command that needs the store waits for it"
    );
    release.send(()).unwrap();
    assert!(
        opening.join().unwrap(),
        "the store was opened in the background"
    );
    let profiles = listing.join().unwrap().unwrap();
    assert!(
        profiles
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["name"] == "Sandbox"),
        "{profiles}"
    );
    let info = invoke(&main, "app_info", json!({})).unwrap();
    assert_eq!(info["opening"], false, "{info}");
    assert!(!info["store"].as_str().unwrap().is_empty(), "{info}");
}

#[test]
fn the_use_with_tools_lines_name_the_account_and_hold_no_secret() {
    let h = harness(&["alice@contoso.example"]);
    let list = invoke(&h.main, "list_accounts", json!({})).unwrap();
    let alice = account_ref(&list, "alice@contoso.example");
    let lines = invoke(
        &h.main,
        "tool_lines",
        json!({ "account": alice, "scopes": "aks" }),
    )
    .unwrap();
    let home = h.home_path.display().to_string();
    for tool in ["kubectl", "git", "run"] {
        let line = lines[tool].as_str().unwrap();
        assert!(
            line.contains("--profile Sandbox") && line.contains("alice@contoso.example"),
            "{tool}: {line}"
        );
        assert!(line.contains(&home), "{tool} names the app's home: {line}");
    }
    assert!(lines["kubectl"]
        .as_str()
        .unwrap()
        .contains("kubeconfig --account alice@contoso.example --scope 6dae42f8-4368-4678-94ff-3960e28e3630/.default"));
    let token = raw_access_token(&tessera(&h.home_path, &h.sandbox), "alice@contoso.example");
    assert!(!lines.to_string().contains(&token));
    let err = invoke(
        &h.main,
        "tool_lines",
        json!({ "account": alice, "scopes": "<bad>" }),
    )
    .unwrap_err();
    assert_eq!(err["kind"], "invalid", "{err}");
}
