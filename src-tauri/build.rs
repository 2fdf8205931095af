//! Embeds `tauri.conf.json`, `capabilities/` and `ui/`, and declares the app's own
//! commands so that each gets an `allow-<command>` permission: the main window's
//! capability names them one by one, and nothing else can call them.

fn main() {
    let attributes = tauri_build::Attributes::new()
        .app_manifest(tauri_build::AppManifest::new().commands(tessera_commands()));
    tauri_build::try_build(attributes).expect("tauri-build failed");
}

/// Keep in step with `generate_handler!` in `src-tauri/src/lib.rs`.
fn tessera_commands() -> &'static [&'static str] {
    &[
        "app_info",
        "list_profiles",
        "save_profile",
        "remove_profile",
        "add_profile_for",
        "list_accounts",
        "token_view",
        "copy_token",
        "tool_lines",
        "copy_tool_line",
        "sign_in",
        "cancel_sign_in",
        "start_device_code",
        "cancel_device_code",
        "copy_user_code",
        "sign_out",
        "sign_out_all",
        "get_settings",
        "save_settings",
        "list_msal_caches",
        "open_msal_cache",
        "close_msal_cache",
        "agent_status",
        "agent_answer",
        "agent_activity",
        "set_confirm_first",
        "ui_ready",
    ]
}
