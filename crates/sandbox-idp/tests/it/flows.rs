//! Protocol flows: discovery, authorization code + PKCE, refresh, FOCI, device code.

use crate::common::*;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use rsa::pkcs1v15::{Signature, VerifyingKey};
use rsa::signature::Verifier;
use rsa::{BigUint, RsaPublicKey};
use serde_json::Value;
use sha2::Sha256;
use std::time::Duration;
use tessera_sandbox_idp::{
    scripted_device_approval, Faults, ScriptedUserAgent, CONSUMERS, CONTOSO, SANDBOX_CLIENT_ID,
};

async fn get_json(url: &str) -> (u16, Value) {
    let resp = http().get(url).send().await.unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn discovery_for_common_uses_the_tenantid_template() {
    let idp = sandbox().await;
    let base = idp.base_url();
    let (status, doc) = get_json(&format!(
        "{base}common/v2.0/.well-known/openid-configuration"
    ))
    .await;
    assert_eq!(status, 200);
    assert_eq!(doc["issuer"], format!("{base}{{tenantid}}/v2.0"));
    assert_eq!(
        doc["authorization_endpoint"],
        format!("{base}common/oauth2/v2.0/authorize")
    );
    assert_eq!(
        doc["token_endpoint"],
        format!("{base}common/oauth2/v2.0/token")
    );
    assert_eq!(
        doc["device_authorization_endpoint"],
        format!("{base}common/oauth2/v2.0/devicecode")
    );
    assert_eq!(
        doc["end_session_endpoint"],
        format!("{base}common/oauth2/v2.0/logout")
    );
    assert_eq!(doc["jwks_uri"], format!("{base}common/discovery/v2.0/keys"));
    assert_eq!(
        doc["id_token_signing_alg_values_supported"],
        serde_json::json!(["RS256"])
    );
    assert_eq!(
        doc["response_modes_supported"],
        serde_json::json!(["query", "fragment", "form_post"])
    );
    let (_, org) = get_json(&format!(
        "{base}organizations/v2.0/.well-known/openid-configuration"
    ))
    .await;
    assert_eq!(org["issuer"], format!("{base}{{tenantid}}/v2.0"));
    for d in [&doc, &org] {
        assert_eq!(d["authorization_response_iss_parameter_supported"], true);
    }
}

#[tokio::test]
async fn discovery_for_a_tenant_names_its_id_and_consumers_is_concrete() {
    let idp = sandbox().await;
    let base = idp.base_url();
    // By domain: endpoints and issuer use the tenant id, as Entra does.
    let (status, doc) = get_json(&format!(
        "{base}contoso.example/v2.0/.well-known/openid-configuration"
    ))
    .await;
    assert_eq!(status, 200);
    assert_eq!(doc["issuer"], format!("{base}{}/v2.0", CONTOSO.id));
    assert_eq!(
        doc["token_endpoint"],
        format!("{base}{}/oauth2/v2.0/token", CONTOSO.id)
    );
    let (_, c) = get_json(&format!(
        "{base}consumers/v2.0/.well-known/openid-configuration"
    ))
    .await;
    assert_eq!(c["issuer"], format!("{base}{}/v2.0", CONSUMERS.id));
    assert_eq!(
        c["token_endpoint"],
        format!("{base}consumers/oauth2/v2.0/token")
    );

    let (status, err) = get_json(&format!(
        "{base}nowhere.example/v2.0/.well-known/openid-configuration"
    ))
    .await;
    assert_aad_error(status, &err, 400, "invalid_tenant", 90002);
}

#[tokio::test]
async fn instance_discovery_lists_the_sandbox_host_only() {
    let idp = sandbox().await;
    let base = idp.base_url();
    let host = format!("127.0.0.1:{}", idp.port());
    let mut u = base.join("common/discovery/instance").unwrap();
    u.query_pairs_mut()
        .append_pair("api-version", "1.1")
        .append_pair(
            "authorization_endpoint",
            &format!("{base}contoso.example/oauth2/v2.0/authorize"),
        );
    let (status, doc) = get_json(u.as_str()).await;
    assert_eq!(status, 200, "{doc}");
    assert_eq!(doc["api-version"], "1.1");
    assert_eq!(
        doc["tenant_discovery_endpoint"],
        format!("{base}contoso.example/v2.0/.well-known/openid-configuration")
    );
    assert_eq!(doc["metadata"][0]["preferred_network"], host.as_str());
    assert_eq!(doc["metadata"][0]["aliases"], serde_json::json!([host]));

    let mut bad = base.join("common/discovery/instance").unwrap();
    bad.query_pairs_mut()
        .append_pair("api-version", "1.1")
        .append_pair(
            "authorization_endpoint",
            "https://login.example.org/common/oauth2/v2.0/authorize",
        );
    let (status, err) = get_json(bad.as_str()).await;
    assert_aad_error(status, &err, 400, "invalid_instance", 50049);
}

fn b64d(s: &str) -> Vec<u8> {
    URL_SAFE_NO_PAD.decode(s).unwrap()
}

/// Verifies an RS256 JWT against a JWKS document, independently of the sandbox's code.
fn verify_with_jwks(jwt: &str, jwks: &Value) -> Result<(), String> {
    let header: Value = serde_json::from_slice(&b64d(jwt.split('.').next().unwrap())).unwrap();
    let kid = header["kid"].as_str().ok_or("no kid")?;
    assert_eq!(header["alg"], "RS256");
    let jwk = jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["kid"] == kid)
        .ok_or("kid not in JWKS")?;
    let key = RsaPublicKey::new(
        BigUint::from_bytes_be(&b64d(jwk["n"].as_str().unwrap())),
        BigUint::from_bytes_be(&b64d(jwk["e"].as_str().unwrap())),
    )
    .unwrap();
    let (input, sig) = jwt.rsplit_once('.').unwrap();
    let sig = Signature::try_from(b64d(sig).as_slice()).map_err(|e| e.to_string())?;
    VerifyingKey::<Sha256>::new(key)
        .verify(input.as_bytes(), &sig)
        .map_err(|e| e.to_string())
}

#[tokio::test]
async fn auth_code_with_pkce_round_trip_yields_verifiable_tokens() {
    let idp = sandbox().await;
    let req = AuthRequest::new("common").scope("openid profile email offline_access User.Read");
    let body = tokens_for(&idp, &req, "alice@contoso.example").await;

    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["scope"], "User.Read openid profile email");
    assert_eq!(body["expires_in"], 3600);
    assert_eq!(body["ext_expires_in"], 3600);
    assert!(body["refresh_token"].as_str().unwrap().len() > 40);
    assert!(
        body.get("foci").is_none(),
        "the sandbox profile is not a family client"
    );
    let ci: Value = serde_json::from_slice(&b64d(body["client_info"].as_str().unwrap())).unwrap();
    assert_eq!(ci["uid"], "3c5e2f1a-7b4d-4c6e-9f8a-a11ce0000001");
    assert_eq!(ci["utid"], CONTOSO.id);

    // The ID token verifies against the published JWKS, found through discovery.
    let (_, doc) = get_json(&format!(
        "{}/v2.0/.well-known/openid-configuration",
        idp.authority("common")
    ))
    .await;
    let (_, jwks) = get_json(doc["jwks_uri"].as_str().unwrap()).await;
    let id_token = body["id_token"].as_str().unwrap();
    verify_with_jwks(id_token, &jwks).expect("ID token signature verifies");
    verify_with_jwks(body["access_token"].as_str().unwrap(), &jwks).expect("access token verifies");
    let mut forged = id_token.to_string();
    forged.replace_range(forged.len() - 6.., "AAAAAA");
    assert!(verify_with_jwks(&forged, &jwks).is_err());

    let id = claims(id_token);
    assert_eq!(id["ver"], "2.0");
    assert_eq!(id["iss"], idp.issuer(CONTOSO.id));
    assert_eq!(id["aud"], SANDBOX_CLIENT_ID);
    assert_eq!(id["nonce"], req.nonce.as_str());
    assert_eq!(id["tid"], CONTOSO.id);
    assert_eq!(id["oid"], "3c5e2f1a-7b4d-4c6e-9f8a-a11ce0000001");
    assert_eq!(id["preferred_username"], "alice@contoso.example");
    assert_eq!(id["name"], "Alice Example");
    assert_eq!(id["email"], "alice@contoso.example");
    let (iat, exp) = (id["iat"].as_i64().unwrap(), id["exp"].as_i64().unwrap());
    assert!((iat - now()).abs() < 30 && exp - iat == 3600);
    for k in ["sub", "aio", "uti", "rh", "nbf"] {
        assert!(!id[k].is_null(), "missing {k}");
    }

    let at = claims(body["access_token"].as_str().unwrap());
    assert_eq!(at["aud"], "00000003-0000-0000-c000-000000000000");
    assert_eq!(at["scp"], "User.Read");
    assert_eq!(at["azp"], SANDBOX_CLIENT_ID);
    assert_eq!(at["ver"], "2.0");
    assert_eq!(at["idtyp"], "user");

    // The access token is accepted by the sandbox's checker; a tampered one is not.
    let me = http()
        .get(idp.base_url().join("_sandbox/me").unwrap())
        .bearer_auth(body["access_token"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(me.status(), 200);
    let me: Value = me.json().await.unwrap();
    assert_eq!(me["preferred_username"], "alice@contoso.example");
    assert_eq!(me["scp"], "User.Read");
    let bad = http()
        .get(idp.base_url().join("_sandbox/me").unwrap())
        .bearer_auth(&forged)
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 401);
    assert!(bad.headers().contains_key("www-authenticate"));
}

#[tokio::test]
async fn subjects_are_pairwise_per_client() {
    let idp = sandbox().await;
    let a = tokens_for(&idp, &AuthRequest::new("common"), "bob@contoso.example").await;
    let b = tokens_for(
        &idp,
        &AuthRequest::new("common").client(AZURE_CLI),
        "bob@contoso.example",
    )
    .await;
    let (ia, ib) = (
        claims(a["id_token"].as_str().unwrap()),
        claims(b["id_token"].as_str().unwrap()),
    );
    assert_eq!(ia["oid"], ib["oid"]);
    assert_ne!(ia["sub"], ib["sub"]);
    let again = tokens_for(&idp, &AuthRequest::new("common"), "bob@contoso.example").await;
    assert_eq!(
        claims(again["id_token"].as_str().unwrap())["sub"],
        ia["sub"]
    );
}

#[tokio::test]
async fn pkce_mismatch_code_reuse_and_redirect_mismatch_are_rejected() {
    let idp = sandbox().await;
    let req = AuthRequest::new("organizations");
    let code = sign_in_code(&idp, &req, "carol@fabrikam.example").await;
    let wrong = pkce();
    let form = |verifier: &str, redirect: &str| {
        vec![
            ("grant_type".to_string(), "authorization_code".to_string()),
            ("client_id".into(), SANDBOX_CLIENT_ID.into()),
            ("code".into(), code.clone()),
            ("redirect_uri".into(), redirect.into()),
            ("code_verifier".into(), verifier.into()),
            ("scope".into(), DEFAULT_SCOPE.into()),
        ]
    };
    let send = |f: Vec<(String, String)>| {
        let idp = &idp;
        async move {
            let pairs: Vec<(&str, &str)> =
                f.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
            token(idp, "organizations", &pairs).await
        }
    };
    let (s, e) = send(form(&wrong.verifier, REDIRECT)).await;
    assert_aad_error(s, &e, 400, "invalid_grant", 50148);
    let (s, e) = send(form(&req.pkce.verifier, "http://localhost:53117/other")).await;
    assert_aad_error(s, &e, 400, "invalid_grant", 500112);
    let (s, ok) = send(form(&req.pkce.verifier, REDIRECT)).await;
    assert_eq!(s, 200, "{ok}");
    let (s, e) = send(form(&req.pkce.verifier, REDIRECT)).await;
    assert_aad_error(s, &e, 400, "invalid_grant", 54005);
    let (s, e) = token(
        &idp,
        "common",
        &[
            ("grant_type", "authorization_code"),
            ("client_id", SANDBOX_CLIENT_ID),
            ("code", "0.AnotARealCode"),
            ("redirect_uri", REDIRECT),
            ("code_verifier", &req.pkce.verifier),
        ],
    )
    .await;
    assert_aad_error(s, &e, 400, "invalid_grant", 9002313);
}

#[tokio::test]
async fn token_endpoint_request_errors_have_entra_codes() {
    let idp = sandbox().await;
    let (s, e) = token(&idp, "common", &[("client_id", SANDBOX_CLIENT_ID)]).await;
    assert_aad_error(s, &e, 400, "invalid_request", 900144);
    assert!(e["error_description"]
        .as_str()
        .unwrap()
        .contains("'grant_type'"));
    let (s, e) = token(
        &idp,
        "common",
        &[("grant_type", "password"), ("client_id", SANDBOX_CLIENT_ID)],
    )
    .await;
    assert_aad_error(s, &e, 400, "unsupported_grant_type", 70003);
    let (s, e) = token(
        &idp,
        "common",
        &[
            ("grant_type", "refresh_token"),
            ("client_id", SANDBOX_CLIENT_ID),
            ("refresh_token", "x"),
            ("client_secret", "s3cret"),
        ],
    )
    .await;
    assert_aad_error(s, &e, 401, "invalid_client", 700025);
    let (s, e) = token(
        &idp,
        "nowhere.example",
        &[("grant_type", "refresh_token"), ("client_id", "x")],
    )
    .await;
    assert_aad_error(s, &e, 400, "invalid_request", 90002);

    // The client's client-request-id comes back as the correlation id.
    let corr = "0f1e2d3c-4b5a-4978-8695-a4b3c2d1e0f9";
    let resp = http()
        .post(format!("{}/oauth2/v2.0/token", idp.authority("common")))
        .header("client-request-id", corr)
        .form(&[
            ("grant_type", "refresh_token"),
            ("client_id", SANDBOX_CLIENT_ID),
            ("refresh_token", "nope"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.headers()["client-request-id"], corr);
    let e: Value = resp.json().await.unwrap();
    assert_eq!(e["correlation_id"], corr);
}

#[tokio::test]
async fn scopes_select_one_resource_and_two_are_refused() {
    let idp = sandbox().await;
    let req = AuthRequest::new("contoso.example")
        .scope("openid profile offline_access User.Read api://sandbox-api/Data.Read");
    let code = sign_in_code(&idp, &req, "alice@contoso.example").await;
    let (s, e) = redeem(&idp, &req, &code).await;
    assert_aad_error(s, &e, 400, "invalid_scope", 28000);

    // Consent covered both resources, so each can be had on its own.
    let code = sign_in_code(&idp, &req, "alice@contoso.example").await;
    let (s, api) = token(
        &idp,
        "contoso.example",
        &[
            ("grant_type", "authorization_code"),
            ("client_id", SANDBOX_CLIENT_ID),
            ("code", &code),
            ("redirect_uri", REDIRECT),
            ("code_verifier", &req.pkce.verifier),
            (
                "scope",
                "api://sandbox-api/Data.Read offline_access openid profile",
            ),
        ],
    )
    .await;
    assert_eq!(s, 200, "{api}");
    assert_eq!(api["scope"], "api://sandbox-api/Data.Read");
    let at = claims(api["access_token"].as_str().unwrap());
    assert_eq!(at["aud"], "api://sandbox-api");
    assert_eq!(at["roles"], serde_json::json!(["Data.Admin"]));
    let (s, graph) = refresh(
        &idp,
        SANDBOX_CLIENT_ID,
        api["refresh_token"].as_str().unwrap(),
        "https://graph.microsoft.com/User.Read openid",
    )
    .await;
    assert_eq!(s, 200, "{graph}");
    assert_eq!(graph["scope"], "User.Read openid");

    // Not consented: Data.Write.
    let (s, e) = refresh(
        &idp,
        SANDBOX_CLIENT_ID,
        api["refresh_token"].as_str().unwrap(),
        "api://sandbox-api/Data.Write",
    )
    .await;
    assert_aad_error(s, &e, 400, "invalid_grant", 65001);
    assert_eq!(e["suberror"], "consent_required");
    // `.default` needs no consent record; Entra echoes it after the permissions it grants.
    let (s, default) = refresh(
        &idp,
        SANDBOX_CLIENT_ID,
        api["refresh_token"].as_str().unwrap(),
        "api://sandbox-api/.default offline_access",
    )
    .await;
    assert_eq!(s, 200, "{default}");
    assert_eq!(
        default["scope"],
        "api://sandbox-api/Data.Read api://sandbox-api/.default"
    );

    // Only OIDC scopes: Microsoft Graph User.Read, as Entra does.
    let only_oidc = AuthRequest::new("common").scope("openid profile offline_access");
    let body = tokens_for(&idp, &only_oidc, "dave@outlook.example").await;
    assert_eq!(
        claims(body["access_token"].as_str().unwrap())["aud"],
        "00000003-0000-0000-c000-000000000000"
    );
    assert_eq!(body["scope"], "User.Read openid profile");
    assert_eq!(
        claims(body["id_token"].as_str().unwrap())["tid"],
        CONSUMERS.id
    );
}

#[tokio::test]
async fn refresh_rotates_and_strict_rotation_rejects_reuse() {
    let idp = sandbox().await;
    let first = tokens_for(&idp, &AuthRequest::new("common"), "alice@contoso.example").await;
    let rt1 = first["refresh_token"].as_str().unwrap().to_string();
    let (s, second) = refresh(&idp, SANDBOX_CLIENT_ID, &rt1, DEFAULT_SCOPE).await;
    assert_eq!(s, 200, "{second}");
    let rt2 = second["refresh_token"].as_str().unwrap().to_string();
    assert_ne!(rt1, rt2, "every use returns a new refresh token");
    assert_ne!(first["access_token"], second["access_token"]);
    assert!(second["id_token"].is_string());
    assert!(claims(second["id_token"].as_str().unwrap())
        .get("nonce")
        .is_none());
    // Without strict rotation the old one still works, as in Entra.
    let (s, _) = refresh(&idp, SANDBOX_CLIENT_ID, &rt1, DEFAULT_SCOPE).await;
    assert_eq!(s, 200);

    idp.set_faults(Faults {
        strict_rotation: true,
        ..Faults::default()
    });
    let (s, e) = refresh(&idp, SANDBOX_CLIENT_ID, &rt1, DEFAULT_SCOPE).await;
    assert_aad_error(s, &e, 400, "invalid_grant", 70008);
    let (s, third) = refresh(&idp, SANDBOX_CLIENT_ID, &rt2, DEFAULT_SCOPE).await;
    assert_eq!(s, 200, "an unused refresh token still works: {third}");
    let (s, e) = refresh(&idp, SANDBOX_CLIENT_ID, "1.Agarbage", DEFAULT_SCOPE).await;
    assert_aad_error(s, &e, 400, "invalid_grant", 9002313);
}

#[tokio::test]
async fn family_clients_share_refresh_tokens_and_others_cannot() {
    let idp = sandbox().await;
    let cli = tokens_for(
        &idp,
        &AuthRequest::new("common").client(AZURE_CLI),
        "alice@contoso.example",
    )
    .await;
    assert_eq!(cli["foci"], "1");
    let rt = cli["refresh_token"].as_str().unwrap();
    let (s, ps) = refresh(&idp, AZURE_PS, rt, DEFAULT_SCOPE).await;
    assert_eq!(s, 200, "{ps}");
    assert_eq!(ps["foci"], "1");
    assert_eq!(
        claims(ps["access_token"].as_str().unwrap())["azp"],
        AZURE_PS
    );
    assert_eq!(claims(ps["id_token"].as_str().unwrap())["aud"], AZURE_PS);

    let (s, e) = refresh(&idp, SANDBOX_CLIENT_ID, rt, DEFAULT_SCOPE).await;
    assert_aad_error(s, &e, 400, "invalid_grant", 70000);
    assert_eq!(e["suberror"], "client_mismatch");
    // Nor may a family client use a non-family client's token.
    let own = tokens_for(&idp, &AuthRequest::new("common"), "alice@contoso.example").await;
    let (s, e) = refresh(
        &idp,
        AZURE_CLI,
        own["refresh_token"].as_str().unwrap(),
        DEFAULT_SCOPE,
    )
    .await;
    assert_aad_error(s, &e, 400, "invalid_grant", 70000);
}

async fn device_code(idp: &tessera_sandbox_idp::SandboxHandle, tenant: &str, scope: &str) -> Value {
    let resp = http()
        .post(format!("{}/oauth2/v2.0/devicecode", idp.authority(tenant)))
        .form(&[("client_id", SANDBOX_CLIENT_ID), ("scope", scope)])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    resp.json().await.unwrap()
}

async fn poll(idp: &tessera_sandbox_idp::SandboxHandle, tenant: &str, dc: &str) -> (u16, Value) {
    token(
        idp,
        tenant,
        &[
            ("grant_type", "urn:ietf:params:oauth:grant-type:device_code"),
            ("client_id", SANDBOX_CLIENT_ID),
            ("device_code", dc),
        ],
    )
    .await
}

#[tokio::test]
async fn device_code_goes_pending_then_slow_down_then_approved() {
    let idp = sandbox_with(Faults {
        device_code_interval_secs: Some(1),
        ..Faults::default()
    })
    .await;
    let dc = device_code(&idp, "common", DEFAULT_SCOPE).await;
    let user_code = dc["user_code"].as_str().unwrap();
    assert_eq!(user_code.len(), 9);
    assert_eq!(dc["interval"], 1);
    assert_eq!(dc["expires_in"], 900);
    let vuri = dc["verification_uri"].as_str().unwrap();
    assert_eq!(vuri, format!("{}devicelogin", idp.base_url()));
    assert_eq!(
        dc["message"],
        format!("To sign in, use a web browser to open the page {vuri} and enter the code {user_code} to authenticate.")
    );
    let device = dc["device_code"].as_str().unwrap();

    let (s, e) = poll(&idp, "common", device).await;
    assert_aad_error(s, &e, 400, "authorization_pending", 70016);
    let (s, e) = poll(&idp, "common", device).await;
    assert_eq!((s, e["error"].as_str()), (400, Some("slow_down")), "{e}");

    // Codes are matched without regard to case or dashes.
    let typed = format!("{}-{}", &user_code[..4], &user_code[4..]).to_lowercase();
    scripted_device_approval(
        &url::Url::parse(vuri).unwrap(),
        &typed,
        "bob@contoso.example",
        "tessera",
    )
    .await
    .expect("approval succeeds");
    tokio::time::sleep(Duration::from_millis(1050)).await;
    let (s, body) = poll(&idp, "common", device).await;
    assert_eq!(s, 200, "{body}");
    assert_eq!(
        claims(body["id_token"].as_str().unwrap())["preferred_username"],
        "bob@contoso.example"
    );
    assert!(body["refresh_token"].is_string());
    tokio::time::sleep(Duration::from_millis(1050)).await;
    let (s, e) = poll(&idp, "common", device).await;
    assert_aad_error(s, &e, 400, "invalid_grant", 54005);
}

#[tokio::test]
async fn device_code_denied_expired_and_wrong_tenant() {
    let idp = sandbox_with(Faults {
        device_code_interval_secs: Some(0),
        ..Faults::default()
    })
    .await;
    let dc = device_code(&idp, "consumers", DEFAULT_SCOPE).await;
    let ua = ScriptedUserAgent::new().unwrap();
    let base = idp.base_url();
    // Work accounts cannot sign in through a consumers code.
    let err = ua
        .device_login(
            &base,
            dc["user_code"].as_str().unwrap(),
            "alice@contoso.example",
            "tessera",
            true,
        )
        .await
        .unwrap_err();
    assert!(err.contains("AADSTS50020"), "{err}");
    ua.device_login(
        &base,
        dc["user_code"].as_str().unwrap(),
        "dave@outlook.example",
        "tessera",
        false,
    )
    .await
    .expect("cancel works");
    let (s, e) = poll(&idp, "consumers", dc["device_code"].as_str().unwrap()).await;
    assert_aad_error(s, &e, 400, "access_denied", 65004);

    let err = ua
        .device_login(&base, "ZZZZZZZZZ", "dave@outlook.example", "tessera", true)
        .await
        .unwrap_err();
    assert!(err.contains("didn't work"), "{err}");

    idp.set_faults(Faults {
        device_code_expires_secs: Some(0),
        ..Faults::default()
    });
    let dc = device_code(&idp, "common", DEFAULT_SCOPE).await;
    assert_eq!(dc["expires_in"], 0);
    let (s, e) = poll(&idp, "common", dc["device_code"].as_str().unwrap()).await;
    assert_aad_error(s, &e, 400, "expired_token", 70019);
    let (s, e) = poll(&idp, "common", "DAQABAAEAAADnotacode").await;
    assert_eq!(
        (s, e["error"].as_str()),
        (400, Some("bad_verification_code"))
    );
}
