//! A secret goes only to the cloud that issued it. The attacker and the victim's MSAL
//! cache are `tessera_tests::attacker`'s (a host on 127.0.0.1 claiming Microsoft's hosts as
//! its aliases; a Microsoft work account with Azure CLI's family refresh token). The real
//! `tessera-cli`, pointed at the attacker with `--authority` and any client id, must
//! neither list the victim's account nor show its access token, and the attacker must
//! receive none of its secrets: through Tessera's own store after `import-msal`, and
//! through `--msal-cache FILE`.

use serde_json::json;
use tessera_tests::attacker::{
    victim_secrets, write_victim_cache, Attacker, ACCESS_TOKEN, AZURE_CLI, GRAPH, OTHER_CLIENT,
    TENANT, VICTIM,
};

use crate::cli::{Machine, Run};

/// Everything the attacker might try with `client`, on the store `store_args` selects.
async fn attack(m: &Machine, attacker: &Attacker, client: &str, store_args: &[&str]) {
    let target = |tenant: &str, rest: &[&str]| -> Vec<String> {
        let mut v: Vec<String> = store_args.iter().map(|s| s.to_string()).collect();
        v.extend(
            [
                "--allow-plaintext",
                "--authority",
                &attacker.authority(tenant),
                "--client-id",
                client,
            ]
            .map(String::from),
        );
        v.extend(rest.iter().map(|s| s.to_string()));
        v
    };
    let run = |args: Vec<String>| async move {
        m.run(&args.iter().map(String::as_str).collect::<Vec<_>>())
            .await
    };

    // Ask for a token: by name, as the only account, and forcing a refresh; at the
    // victim's tenant too, where the cached access token's realm matches.
    let mut runs = Vec::new();
    for tenant in ["common", TENANT] {
        for rest in [
            &["token", "--account", VICTIM, "--scope", GRAPH][..],
            &["token", "--scope", GRAPH, "--json"],
            &[
                "token",
                "--account",
                VICTIM,
                "--scope",
                GRAPH,
                "--force-refresh",
            ],
        ] {
            runs.push((
                format!("{tenant} {rest:?}"),
                run(target(tenant, rest)).await,
            ));
        }
    }
    let listed = run(target("common", &["accounts", "--json"])).await;

    let seen = attacker.log();
    for (what, secret) in victim_secrets() {
        assert!(
            !seen.contains(&secret),
            "{client}: the attacker received the victim's {what}:\n{seen}"
        );
    }
    for (what, run) in runs {
        assert!(
            !run.stdout.contains(ACCESS_TOKEN),
            "{client} {what}: the victim's access token was shown"
        );
        let run: Run = run.exit(3);
        assert!(
            run.stderr.contains("No signed-in account") || run.stderr.contains("No account"),
            "{client} {what}: a clear error\n{}",
            run.stderr
        );
    }
    assert_eq!(
        listed.ok().json(),
        json!([]),
        "{client}: the attacker's target lists no account of Microsoft's cloud"
    );
}

/// (a) Tessera's own store, after `import-msal`.
async fn attack_the_own_store(client: &str) {
    let attacker = Attacker::start().await;
    let m = Machine::new();
    let file = write_victim_cache(m.home.path());
    let import = m
        .run(&["--allow-plaintext", "import-msal", file.to_str().unwrap()])
        .await
        .ok();
    assert!(
        import
            .stderr
            .contains("copied 1 accounts, 1 refresh tokens"),
        "{}",
        import.stderr
    );
    attack(&m, &attacker, client, &[]).await;
    // The victim's own cloud still sees the account.
    let mine = m
        .run(&[
            "--allow-plaintext",
            "--profile",
            "Microsoft",
            "accounts",
            "--json",
        ])
        .await
        .ok()
        .json();
    assert_eq!(mine[0]["username"], VICTIM, "{mine}");
}

/// (b) The MSAL cache file in place (`--msal-cache FILE`).
async fn attack_the_msal_cache_file(client: &str) {
    let attacker = Attacker::start().await;
    let m = Machine::new();
    let file = write_victim_cache(m.home.path());
    let before = std::fs::read_to_string(&file).unwrap();
    attack(
        &m,
        &attacker,
        client,
        &["--msal-cache", file.to_str().unwrap()],
    )
    .await;
    assert_eq!(
        std::fs::read_to_string(&file).unwrap(),
        before,
        "{client}: the victim's cache file is unchanged"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn own_store_with_the_refresh_tokens_own_client() {
    attack_the_own_store(AZURE_CLI).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn own_store_with_another_client_of_the_family() {
    attack_the_own_store(OTHER_CLIENT).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn msal_cache_file_with_the_refresh_tokens_own_client() {
    attack_the_msal_cache_file(AZURE_CLI).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn msal_cache_file_with_another_client_of_the_family() {
    attack_the_msal_cache_file(OTHER_CLIENT).await;
}
