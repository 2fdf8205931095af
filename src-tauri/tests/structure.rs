//! The shell's structure, checked from its sources. Its modules form a stack (each uses
//! only those below it). The names the window and Rust share are defined once on each
//! side and must agree: the commands (`build.rs`'s permissions, `generate_handler!` in
//! `lib.rs`, the main window's capability, and what `ui/js` invokes), the events and the
//! enum values (`views.rs` and `ui/js/ipc.js`), and the vendored `@tauri-apps/api` against
//! the `tauri` crate.

use std::collections::BTreeSet;
use std::path::Path;

use regex::Regex;
use serde::Serialize;
use tessera_lib::views::{
    ActivityOutcome, AgentAnswer, AgentAskKind, CopyFormat, ProfileKind, SignInStage, SignInStatus,
    ToolKind, EVENT_ACCOUNTS_CHANGED, EVENT_AGENT_ACTIVITY, EVENT_AGENT_ASK,
    EVENT_AGENT_ASK_CLOSED, EVENT_CLIPBOARD_CLEARED, EVENT_SIGNIN_FINISHED, EVENT_SIGNIN_ORIGIN,
    EVENT_SIGNIN_PROGRESS, EVENT_STORE_OPENED,
};

fn read(rel: &str) -> String {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(root.join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

fn set(items: impl IntoIterator<Item = String>) -> BTreeSet<String> {
    items.into_iter().collect()
}

/// The text between `start` and the next `end`.
fn between<'a>(text: &'a str, start: &str, end: &str) -> &'a str {
    let from = text
        .find(start)
        .unwrap_or_else(|| panic!("{start} not found"))
        + start.len();
    let to = text[from..]
        .find(end)
        .unwrap_or_else(|| panic!("{end} not found"))
        + from;
    &text[from..to]
}

/// The shell's stack, bottom first; modules on one level do not use each other.
const STACK: &[&[&str]] = &[
    &["base", "error"],
    &["views"],
    &["state"],
    &["clipboard", "signin"],
    &["agent"],
    &["commands"],
    &["tray"],
    &["lib"],
    &["main"],
];

fn level(module: &str) -> usize {
    STACK
        .iter()
        .position(|l| l.contains(&module))
        .unwrap_or_else(|| panic!("src-tauri/src/{module}.rs is not in the stack: add it"))
}

#[test]
fn every_use_of_crate_in_the_shell_points_down_the_stack() {
    let uses = Regex::new(r"crate::([a-z_]+)").unwrap();
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("src-tauri/src");
    let mut checked = 0;
    for file in std::fs::read_dir(dir).unwrap() {
        let path = file.unwrap().path();
        let module = path.file_stem().unwrap().to_str().unwrap().to_string();
        let own = level(&module);
        let text = std::fs::read_to_string(&path).unwrap();
        for line in text.lines().filter(|l| !l.trim_start().starts_with("//")) {
            for c in uses.captures_iter(line) {
                let used = &c[1];
                // `crate::foo()` of lib.rs itself is not a module.
                if module == "lib" && !STACK.iter().any(|l| l.contains(&used)) {
                    continue;
                }
                assert!(
                    level(used) < own,
                    "{module}.rs uses crate::{used}, which is not below it: {line}"
                );
                checked += 1;
            }
        }
    }
    assert!(checked > 10, "only {checked} uses found");
}

#[test]
fn build_rs_generate_handler_the_capability_and_the_page_name_the_same_commands() {
    let quoted = Regex::new(r#""([a-z_]+)""#).unwrap();
    let build = read("src-tauri/build.rs");
    let declared = set(quoted
        .captures_iter(between(&build, "fn tessera_commands()", "}"))
        .map(|c| c[1].to_string()));
    assert!(declared.len() >= 20, "{declared:?}");

    let lib = read("src-tauri/src/lib.rs");
    let handled = set(Regex::new(r"commands::([a-z_]+)")
        .unwrap()
        .captures_iter(between(&lib, "generate_handler![", "]"))
        .map(|c| c[1].to_string()));
    assert_eq!(handled, declared, "generate_handler! and build.rs");

    let capability: serde_json::Value =
        serde_json::from_str(&read("capabilities/main.json")).unwrap();
    let allowed = set(capability["permissions"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|p| p.as_str()?.strip_prefix("allow-"))
        .map(|p| p.replace('-', "_")));
    assert_eq!(allowed, declared, "capabilities/main.json and build.rs");

    let invoke = Regex::new(r#"invoke\("([a-z_]+)""#).unwrap();
    let mut invoked = BTreeSet::new();
    for file in std::fs::read_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join("ui/js")).unwrap() {
        let path = file.unwrap().path();
        let text = std::fs::read_to_string(&path).unwrap();
        invoked.extend(invoke.captures_iter(&text).map(|c| c[1].to_string()));
    }
    let unknown: Vec<_> = invoked.difference(&declared).collect();
    assert!(
        unknown.is_empty(),
        "the page invokes unknown commands {unknown:?}"
    );
    let unused: Vec<_> = declared.difference(&invoked).collect();
    assert!(
        unused.is_empty(),
        "commands the page never calls {unused:?}"
    );
}

/// `export const NAME = Object.freeze({ key: "value", ... })` of ui/js/ipc.js, as values.
fn js_values(name: &str) -> BTreeSet<String> {
    let ipc = read("ui/js/ipc.js");
    let body = between(
        &ipc,
        &format!("export const {name} = Object.freeze({{"),
        "})",
    );
    set(Regex::new(r#":\s*"([^"]+)""#)
        .unwrap()
        .captures_iter(body)
        .map(|c| c[1].to_string()))
}

fn serde_names<T: Serialize>(all: &[T]) -> BTreeSet<String> {
    set(all.iter().map(|v| {
        serde_json::to_value(v)
            .unwrap()
            .as_str()
            .unwrap()
            .to_string()
    }))
}

#[test]
fn the_page_uses_the_event_names_and_enum_values_rust_defines() {
    let events = [
        EVENT_SIGNIN_FINISHED,
        EVENT_SIGNIN_PROGRESS,
        EVENT_SIGNIN_ORIGIN,
        EVENT_CLIPBOARD_CLEARED,
        EVENT_ACCOUNTS_CHANGED,
        EVENT_STORE_OPENED,
        EVENT_AGENT_ASK,
        EVENT_AGENT_ASK_CLOSED,
        EVENT_AGENT_ACTIVITY,
    ];
    assert_eq!(js_values("EVENT"), set(events.map(String::from)));

    // Each list names every variant: adding one without adding it here fails to compile.
    let formats = [CopyFormat::Raw, CopyFormat::Header];
    match formats[0] {
        CopyFormat::Raw | CopyFormat::Header => {}
    }
    assert_eq!(js_values("COPY_FORMAT"), serde_names(&formats));

    let statuses = [
        SignInStatus::Added,
        SignInStatus::Cancelled,
        SignInStatus::Failed,
    ];
    match statuses[0] {
        SignInStatus::Added | SignInStatus::Cancelled | SignInStatus::Failed => {}
    }
    assert_eq!(js_values("SIGNIN_STATUS"), serde_names(&statuses));

    let stages = [
        SignInStage::Opened,
        SignInStage::Page,
        SignInStage::Finishing,
    ];
    match stages[0] {
        SignInStage::Opened | SignInStage::Page | SignInStage::Finishing => {}
    }
    assert_eq!(js_values("SIGNIN_STAGE"), serde_names(&stages));

    let kinds = [ProfileKind::Entra, ProfileKind::Oidc];
    match kinds[0] {
        ProfileKind::Entra | ProfileKind::Oidc => {}
    }
    assert_eq!(js_values("PROFILE_KIND"), serde_names(&kinds));

    use tessera_core::profile::SignInMethod;
    let methods = [
        SignInMethod::Embedded,
        SignInMethod::Browser,
        SignInMethod::DeviceCode,
    ];
    match methods[0] {
        SignInMethod::Embedded | SignInMethod::Browser | SignInMethod::DeviceCode => {}
    }
    assert_eq!(js_values("SIGN_IN_METHOD"), serde_names(&methods));

    let tools = [ToolKind::Kubectl, ToolKind::Git, ToolKind::Run];
    match tools[0] {
        ToolKind::Kubectl | ToolKind::Git | ToolKind::Run => {}
    }
    assert_eq!(js_values("TOOL"), serde_names(&tools));

    let answers = [AgentAnswer::Allow, AgentAnswer::Deny];
    match answers[0] {
        AgentAnswer::Allow | AgentAnswer::Deny => {}
    }
    assert_eq!(js_values("AGENT_ANSWER"), serde_names(&answers));
    let asks = [AgentAskKind::SignIn, AgentAskKind::Confirm];
    match asks[0] {
        AgentAskKind::SignIn | AgentAskKind::Confirm => {}
    }
    assert_eq!(js_values("AGENT_ASK"), serde_names(&asks));
    let outcomes = [
        ActivityOutcome::Cache,
        ActivityOutcome::Refreshed,
        ActivityOutcome::SignedIn,
        ActivityOutcome::Denied,
        ActivityOutcome::InteractionRequired,
        ActivityOutcome::Failed,
    ];
    match outcomes[0] {
        ActivityOutcome::Cache
        | ActivityOutcome::Refreshed
        | ActivityOutcome::SignedIn
        | ActivityOutcome::Denied
        | ActivityOutcome::InteractionRequired
        | ActivityOutcome::Failed => {}
    }
    assert_eq!(js_values("ACTIVITY_OUTCOME"), serde_names(&outcomes));
}

#[test]
fn the_page_talks_to_tauri_only_through_the_vendored_api_of_the_same_minor_version() {
    let vendored: serde_json::Value =
        serde_json::from_str(&read("ui/vendor/tauri-api/package.json")).unwrap();
    assert_eq!(vendored["name"], "@tauri-apps/api");
    let api = vendored["version"].as_str().unwrap();
    let lock = read("Cargo.lock");
    let tauri = between(&lock, "name = \"tauri\"\nversion = \"", "\"");
    let minor = |v: &str| v.split('.').take(2).collect::<Vec<_>>().join(".");
    assert_eq!(
        minor(api),
        minor(tauri),
        "ui/vendor/tauri-api is @tauri-apps/api {api}, the app is built with tauri {tauri}: \
         vendor the matching version (see ui/vendor/tauri-api/README.md)"
    );
    for file in std::fs::read_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join("ui/js")).unwrap() {
        let path = file.unwrap().path();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(
            !text.contains("__TAURI_INTERNALS__") && !text.contains("__TAURI_EVENT_PLUGIN"),
            "{} reaches into Tauri's internals",
            path.display()
        );
    }
}
