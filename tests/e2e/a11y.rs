//! The accessibility check: axe-core (pinned in the root package.json, installed by
//! scripts/setup) is injected into the main window through WebDriver and run on what the
//! window shows now; any violation of WCAG 2.1 A/AA or axe's best practices fails the
//! step, listing each rule, its impact and the elements.

use std::path::Path;
use std::sync::OnceLock;

use serde_json::{json, Value};

use crate::webdriver::Session;
use crate::Step;

fn axe_source() -> &'static str {
    static SOURCE: OnceLock<String> = OnceLock::new();
    SOURCE.get_or_init(|| {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
        let file = root.join("node_modules/axe-core/axe.min.js");
        std::fs::read_to_string(&file)
            .unwrap_or_else(|e| panic!("{}: {e} (scripts/setup installs it)", file.display()))
    })
}

/// Run axe on the main window as it is; panics with the violations, if any.
pub async fn check(s: &Session, what: &str) {
    let injected = s
        .script(
            &format!("{}\n;return typeof window.axe === 'object';", axe_source()),
            json!([]),
        )
        .await
        .step(&format!("inject axe-core ({what})"));
    assert_eq!(injected, Value::Bool(true), "axe-core is loaded ({what})");
    let result = s
        .script_async(
            "const done = arguments[arguments.length - 1];\
             axe.run(document, { runOnly: { type: 'tag', values: \
               ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa', 'best-practice'] } })\
               .then((r) => done(JSON.stringify({ passes: r.passes.length,\
                 violations: r.violations.map((v) => ({\
                 id: v.id, impact: v.impact, help: v.help,\
                 nodes: v.nodes.map((n) => n.target.join(' ')) })) })))\
               .catch((e) => done('axe failed: ' + e));",
            json!([]),
        )
        .await
        .step(&format!("run axe-core ({what})"));
    let text = result.as_str().unwrap_or_default();
    let report: Value =
        serde_json::from_str(text).unwrap_or_else(|_| panic!("axe-core on {what}: {text}"));
    let passes = report["passes"].as_u64().unwrap_or(0);
    assert!(passes > 10, "axe-core checked little on {what}: {text}");
    let list = report["violations"].as_array().cloned().unwrap_or_default();
    if !list.is_empty() {
        let lines: Vec<String> = list
            .iter()
            .map(|v| {
                format!(
                    "  {} ({}): {} — {}",
                    v["id"].as_str().unwrap_or_default(),
                    v["impact"].as_str().unwrap_or_default(),
                    v["help"].as_str().unwrap_or_default(),
                    v["nodes"]
                )
            })
            .collect();
        panic!("accessibility violations on {what}:\n{}", lines.join("\n"));
    }
    eprintln!("e2e: axe-core: no violation on {what} ({passes} rules passed)");
}
