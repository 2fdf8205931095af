//! Where the `tessera-cli` binary under test is.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::OnceLock;

/// The `tessera-cli` to run: `$TESSERA_CLI_BIN` when it names a file (`scripts/test` builds
/// the binary first and points it there), else built once with the same cargo and target
/// directory, taking the executable path cargo reports.
pub fn cli_bin() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        if let Some(p) = std::env::var_os("TESSERA_CLI_BIN").map(PathBuf::from) {
            if p.is_file() {
                return p;
            }
            eprintln!(
                "TESSERA_CLI_BIN={} does not exist; building tessera-cli",
                p.display()
            );
        }
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| env!("CARGO").to_owned());
        let out = std::process::Command::new(cargo)
            .args([
                "build",
                "-p",
                "tessera-cli",
                "--bin",
                "tessera-cli",
                "--message-format=json-render-diagnostics",
            ])
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .stderr(Stdio::inherit())
            .output()
            .expect("cargo runs");
        assert!(out.status.success(), "cargo build -p tessera-cli failed");
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .filter(|m| m["reason"] == "compiler-artifact" && m["target"]["name"] == "tessera-cli")
            .find_map(|m| m["executable"].as_str().map(PathBuf::from))
            .expect("cargo reports the tessera-cli executable")
    })
}
