//! The built `tessera-cli` binary's usage contract: what a script sees before any store or
//! provider is involved. (The command-by-command contract against the sandbox provider is in
//! `tests/it/cli.rs`.) Having an integration test here also makes `cargo test --workspace`
//! build the real binary, which `scripts/test` hands to those suites.

use std::process::{Command, Output};

fn run(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_tessera-cli"))
        .args(args)
        .env("TESSERA_HOME", "/nonexistent/tessera-usage-test")
        .output()
        .expect("tessera-cli starts")
}

#[test]
fn version_names_the_program_and_its_version() {
    let out = run(&["--version"]);
    assert!(out.status.success());
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        format!("tessera-cli {}", env!("CARGO_PKG_VERSION"))
    );
}

#[test]
fn an_unknown_command_is_a_usage_error_on_stderr() {
    let out = run(&["nonsense"]);
    assert_eq!(out.status.code(), Some(2), "usage errors exit 2");
    assert!(
        out.stdout.is_empty(),
        "nothing on stdout for a script to mistake for output"
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("unrecognized subcommand 'nonsense'"), "{err}");
    assert!(err.contains("--help"), "points at --help: {err}");
}

#[test]
fn help_lists_the_commands_and_exit_codes() {
    let out = run(&["--help"]);
    assert!(out.status.success());
    let help = String::from_utf8_lossy(&out.stdout);
    for command in ["accounts", "login", "token", "logout", "status"] {
        assert!(help.contains(command), "--help lists {command}: {help}");
    }
    assert!(help.contains("Exit codes"), "{help}");
}
