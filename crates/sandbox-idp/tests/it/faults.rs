//! Every fault switch, observed from the outside.

use crate::common::*;
use serde_json::{json, Value};
use std::time::{Duration, Instant};
use tessera_sandbox_idp::{Faults, ResponseIss, ScriptedUserAgent, SANDBOX_CLIENT_ID};

/// A refresh token for alice, obtained before faults are switched on.
async fn refresh_token(idp: &tessera_sandbox_idp::SandboxHandle) -> String {
    let body = tokens_for(idp, &AuthRequest::new("common"), "alice@contoso.example").await;
    body["refresh_token"].as_str().unwrap().to_string()
}

#[tokio::test]
async fn http_status_sends_retry_after_and_json() {
    let idp = sandbox().await;
    let rt = refresh_token(&idp).await;
    idp.set_faults(Faults {
        http_status: Some(503),
        retry_after_secs: Some(7),
        ..Faults::default()
    });
    let form = [
        ("grant_type", "refresh_token"),
        ("client_id", SANDBOX_CLIENT_ID),
        ("refresh_token", rt.as_str()),
        ("scope", DEFAULT_SCOPE),
    ];
    let (status, headers, body) = token_raw(&idp, "common", &form).await;
    assert_eq!(status, 503);
    assert_eq!(headers["retry-after"], "7");
    let e: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(e["error"], "temporarily_unavailable");
    idp.set_faults(Faults {
        http_status: Some(500),
        ..Faults::default()
    });
    let (status, headers, _) = token_raw(&idp, "common", &form).await;
    assert_eq!(status, 500);
    assert_eq!(headers["retry-after"], "1");
    idp.set_faults(Faults::default());
    assert_eq!(token_raw(&idp, "common", &form).await.0, 200);
}

#[tokio::test]
async fn malformed_json_and_html_error_page() {
    let idp = sandbox().await;
    let rt = refresh_token(&idp).await;
    let form = [
        ("grant_type", "refresh_token"),
        ("client_id", SANDBOX_CLIENT_ID),
        ("refresh_token", rt.as_str()),
        ("scope", DEFAULT_SCOPE),
    ];
    idp.set_faults(Faults {
        malformed_json: true,
        ..Faults::default()
    });
    let (status, headers, body) = token_raw(&idp, "common", &form).await;
    assert_eq!(status, 200);
    assert!(headers["content-type"]
        .to_str()
        .unwrap()
        .starts_with("application/json"));
    assert!(body.starts_with("{\"token_type\""));
    assert!(
        serde_json::from_str::<Value>(&body).is_err(),
        "body must be truncated JSON"
    );

    idp.set_faults(Faults {
        html_error_page: true,
        ..Faults::default()
    });
    let (status, headers, body) = token_raw(&idp, "common", &form).await;
    assert_eq!(status, 502);
    assert!(headers["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/html"));
    assert!(body.contains("502 Bad Gateway"));
}

#[tokio::test]
async fn refresh_faults_invalid_grant_and_interaction_required() {
    let idp = sandbox().await;
    let rt = refresh_token(&idp).await;
    idp.set_faults(Faults {
        refresh_invalid_grant: true,
        ..Faults::default()
    });
    let (s, e) = refresh(&idp, SANDBOX_CLIENT_ID, &rt, DEFAULT_SCOPE).await;
    assert_aad_error(s, &e, 400, "invalid_grant", 700082);

    idp.set_faults(Faults {
        interaction_required: true,
        ..Faults::default()
    });
    let (s, e) = refresh(&idp, SANDBOX_CLIENT_ID, &rt, DEFAULT_SCOPE).await;
    assert_aad_error(s, &e, 400, "interaction_required", 50076);
    assert_eq!(e["suberror"], "basic_action");
    let challenge: Value = serde_json::from_str(e["claims"].as_str().unwrap()).unwrap();
    assert_eq!(challenge["access_token"]["capolids"]["essential"], true);

    // The code grant is not affected by refresh faults.
    let body = tokens_for(&idp, &AuthRequest::new("common"), "bob@contoso.example").await;
    assert!(body["access_token"].is_string());
}

#[tokio::test]
async fn id_token_faults_wrong_issuer_and_wrong_nonce() {
    let idp = sandbox_with(Faults {
        wrong_issuer: true,
        ..Faults::default()
    })
    .await;
    let req = AuthRequest::new("common");
    let body = tokens_for(&idp, &req, "carol@fabrikam.example").await;
    let id = claims(body["id_token"].as_str().unwrap());
    assert_ne!(id["iss"], idp.issuer(id["tid"].as_str().unwrap()));
    assert_eq!(id["nonce"], req.nonce.as_str());
    // The signature is still genuine: only the claim is wrong.
    assert!(idp.verify_token(body["id_token"].as_str().unwrap()).is_ok());

    idp.set_faults(Faults {
        wrong_nonce: true,
        ..Faults::default()
    });
    let req = AuthRequest::new("common");
    let body = tokens_for(&idp, &req, "carol@fabrikam.example").await;
    let id = claims(body["id_token"].as_str().unwrap());
    assert_ne!(id["nonce"], req.nonce.as_str());
    assert_eq!(
        id["iss"],
        idp.issuer("2b1e7c9a-6f4d-4e8b-b1a3-5d9c0e7f3a02")
    );
}

#[tokio::test]
async fn response_iss_wrong_or_missing_on_codes_and_errors() {
    let idp = sandbox_with(Faults {
        response_iss: Some(ResponseIss::Wrong),
        ..Faults::default()
    })
    .await;
    let back = tessera_sandbox_idp::scripted_sign_in(
        &AuthRequest::new("common").url(&idp),
        "carol@fabrikam.example",
        "tessera",
    )
    .await
    .unwrap();
    assert!(query(&back, "code").is_some());
    assert_eq!(
        query(&back, "iss").as_deref(),
        Some("https://sts.sandbox.invalid/2b1e7c9a-6f4d-4e8b-b1a3-5d9c0e7f3a02/v2.0")
    );
    idp.set_faults(Faults {
        response_iss: Some(ResponseIss::Missing),
        ..Faults::default()
    });
    let back = ScriptedUserAgent::new()
        .unwrap()
        .sign_in_with(
            &AuthRequest::new("common").url(&idp),
            "carol@fabrikam.example",
            "tessera",
            false,
        )
        .await
        .unwrap();
    assert_eq!(query(&back, "error").as_deref(), Some("access_denied"));
    assert_eq!(query(&back, "iss"), None);
    // Discovery still advertises the parameter.
    let doc: Value = http()
        .get(format!(
            "{}/v2.0/.well-known/openid-configuration",
            idp.authority("common")
        ))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(doc["authorization_response_iss_parameter_supported"], true);
    idp.set_faults(Faults::default());
    let back = tessera_sandbox_idp::scripted_sign_in(
        &AuthRequest::new("common").url(&idp),
        "carol@fabrikam.example",
        "tessera",
    )
    .await
    .unwrap();
    assert_eq!(
        query(&back, "iss"),
        Some(idp.issuer("2b1e7c9a-6f4d-4e8b-b1a3-5d9c0e7f3a02"))
    );
}

#[tokio::test]
async fn expired_tokens_lifetime_and_refresh_in() {
    let idp = sandbox_with(Faults {
        expired_tokens: true,
        ..Faults::default()
    })
    .await;
    let body = tokens_for(&idp, &AuthRequest::new("common"), "alice@contoso.example").await;
    for t in ["access_token", "id_token"] {
        assert!(
            claims(body[t].as_str().unwrap())["exp"].as_i64().unwrap() < now(),
            "{t} expired"
        );
    }
    let me = http()
        .get(idp.base_url().join("_sandbox/me").unwrap())
        .bearer_auth(body["access_token"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(me.status(), 401);

    idp.set_faults(Faults {
        token_lifetime_secs: Some(120),
        refresh_in_secs: Some(60),
        ..Faults::default()
    });
    let body = tokens_for(&idp, &AuthRequest::new("common"), "alice@contoso.example").await;
    assert_eq!(body["expires_in"], 120);
    assert_eq!(body["refresh_in"], 60);
    let at = claims(body["access_token"].as_str().unwrap());
    assert_eq!(
        at["exp"].as_i64().unwrap() - at["iat"].as_i64().unwrap(),
        120
    );
    idp.set_faults(Faults::default());
    let body = tokens_for(&idp, &AuthRequest::new("common"), "alice@contoso.example").await;
    assert!(body.get("refresh_in").is_none());
}

#[tokio::test]
async fn latency_delays_responses() {
    // A second: an undelayed answer stays well under it even on a loaded machine.
    const LATENCY_MS: u64 = 1000;
    let idp = sandbox_with(Faults {
        latency_ms: LATENCY_MS,
        ..Faults::default()
    })
    .await;
    let url = format!(
        "{}/v2.0/.well-known/openid-configuration",
        idp.authority("common")
    );
    let t = Instant::now();
    assert_eq!(http().get(&url).send().await.unwrap().status(), 200);
    assert!(
        t.elapsed() >= Duration::from_millis(LATENCY_MS),
        "{:?}",
        t.elapsed()
    );
    idp.set_faults(Faults::default());
    let t = Instant::now();
    http().get(&url).send().await.unwrap();
    assert!(
        t.elapsed() < Duration::from_millis(LATENCY_MS),
        "{:?}",
        t.elapsed()
    );
}

#[tokio::test]
async fn fail_count_limits_a_fault_to_n_responses() {
    let idp = sandbox().await;
    let rt = refresh_token(&idp).await;
    idp.set_faults(Faults {
        http_status: Some(503),
        fail_count: Some(2),
        ..Faults::default()
    });
    let form = [
        ("grant_type", "refresh_token"),
        ("client_id", SANDBOX_CLIENT_ID),
        ("refresh_token", rt.as_str()),
        ("scope", DEFAULT_SCOPE),
    ];
    assert_eq!(token_raw(&idp, "common", &form).await.0, 503);
    assert_eq!(idp.faults().fail_count, Some(1));
    assert_eq!(token_raw(&idp, "common", &form).await.0, 503);
    assert_eq!(
        token_raw(&idp, "common", &form).await.0,
        200,
        "third request goes through"
    );
    assert_eq!(idp.faults().fail_count, Some(0));
}

#[tokio::test]
async fn faults_are_controlled_over_http() {
    let idp = sandbox().await;
    let url = idp.base_url().join("_sandbox/faults").unwrap();
    let got: Value = http()
        .get(url.clone())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(got, serde_json::to_value(Faults::default()).unwrap());

    let resp = http()
        .post(url.clone())
        .json(&json!({"http_status": 500, "latency_ms": 5}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(
        idp.faults(),
        Faults {
            http_status: Some(500),
            latency_ms: 5,
            ..Faults::default()
        }
    );
    // POST replaces everything.
    http()
        .post(url.clone())
        .json(&json!({"wrong_nonce": true}))
        .send()
        .await
        .unwrap();
    assert_eq!(
        idp.faults(),
        Faults {
            wrong_nonce: true,
            ..Faults::default()
        }
    );

    let resp = http()
        .post(url.clone())
        .body("{\"no_such_switch\": true}")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    let e: Value = resp.json().await.unwrap();
    assert!(e["error_description"]
        .as_str()
        .unwrap()
        .contains("no_such_switch"));
    assert_eq!(
        idp.faults(),
        Faults {
            wrong_nonce: true,
            ..Faults::default()
        },
        "unchanged by a bad body"
    );

    assert_eq!(
        http().delete(url.clone()).send().await.unwrap().status(),
        200
    );
    assert_eq!(idp.faults(), Faults::default());
}
