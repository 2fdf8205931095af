//! The authorize endpoint as a user agent sees it: pages, errors, SSO, prompts, logout.

use crate::common::*;
use tessera_sandbox_idp::{scripted_sign_in, ScriptedUserAgent, CONTOSO};
use url::Url;

async fn get_page(u: &Url) -> (u16, String) {
    let resp = http().get(u.clone()).send().await.unwrap();
    (resp.status().as_u16(), resp.text().await.unwrap())
}

#[tokio::test]
async fn sign_in_page_has_the_documented_hooks() {
    let idp = sandbox().await;
    let req = AuthRequest::new("common").with("login_hint", "bob@contoso.example");
    let (status, html) = get_page(&req.url(&idp)).await;
    assert_eq!(status, 200);
    let title = &html[html.find("<title>").unwrap()..html.find("</title>").unwrap()];
    assert!(title.contains("Sign in"), "{title}");
    assert!(html.contains("name=\"login\""));
    assert!(
        html.contains("value=\"bob@contoso.example\""),
        "login_hint pre-fills the login"
    );
    assert!(html.contains("name=\"password\""));
    assert!(html.contains("id=\"next\""));
    assert!(html.contains("<code>tessera</code>"), "password hint shown");
    for u in [
        "alice@contoso.example",
        "bob@contoso.example",
        "carol@fabrikam.example",
        "dave@outlook.example",
    ] {
        assert!(html.contains(u), "demo user {u} listed");
    }
    // The original parameters travel as hidden fields.
    assert!(html.contains(&format!("name=\"state\" value=\"{}\"", req.state)));
    assert!(
        !html.contains("<script"),
        "the sign-in page needs no JavaScript"
    );

    // A tenant lists only its own users.
    let (_, html) = get_page(&AuthRequest::new("fabrikam.example").url(&idp)).await;
    assert!(html.contains("carol@fabrikam.example") && !html.contains("alice@contoso.example"));
}

#[tokio::test]
async fn wrong_password_and_wrong_tenant_reshow_the_form_with_an_error() {
    let idp = sandbox().await;
    let err = scripted_sign_in(
        &AuthRequest::new("common").url(&idp),
        "alice@contoso.example",
        "nope",
    )
    .await
    .unwrap_err();
    assert!(
        err.contains("AADSTS50126") && err.contains("incorrect"),
        "{err}"
    );
    let err = scripted_sign_in(
        &AuthRequest::new("common").url(&idp),
        "mallory@contoso.example",
        "tessera",
    )
    .await
    .unwrap_err();
    assert!(err.contains("AADSTS50034"), "{err}");
    let err = scripted_sign_in(
        &AuthRequest::new("contoso.example").url(&idp),
        "carol@fabrikam.example",
        "tessera",
    )
    .await
    .unwrap_err();
    assert!(err.contains("AADSTS50020"), "{err}");
    let err = scripted_sign_in(
        &AuthRequest::new("organizations").url(&idp),
        "dave@outlook.example",
        "tessera",
    )
    .await
    .unwrap_err();
    assert!(err.contains("AADSTS50020"), "{err}");
    // consumers accepts dave only.
    let code = sign_in_code(&idp, &AuthRequest::new("consumers"), "dave@outlook.example").await;
    assert!(!code.is_empty());
}

#[tokio::test]
async fn cancel_on_consent_redirects_access_denied() {
    let idp = sandbox().await;
    let req = AuthRequest::new("common");
    let back = ScriptedUserAgent::new()
        .unwrap()
        .sign_in_with(&req.url(&idp), "alice@contoso.example", "tessera", false)
        .await
        .unwrap();
    assert!(back.as_str().starts_with(REDIRECT));
    assert_eq!(query(&back, "error").as_deref(), Some("access_denied"));
    assert!(query(&back, "error_description")
        .unwrap()
        .starts_with("AADSTS65004: User declined to consent"));
    assert_eq!(query(&back, "state").as_deref(), Some(req.state.as_str()));
    assert!(query(&back, "code").is_none());
}

#[tokio::test]
async fn session_cookie_gives_sso_and_prompts_behave() {
    let idp = sandbox().await;
    let ua = ScriptedUserAgent::new().unwrap();
    // No session yet: prompt=none fails with login_required.
    let silent = AuthRequest::new("common").with("prompt", "none");
    let back = ua
        .authorize_without_interaction(&silent.url(&idp))
        .await
        .unwrap();
    assert_eq!(query(&back, "error").as_deref(), Some("login_required"));
    assert!(query(&back, "error_description")
        .unwrap()
        .starts_with("AADSTS50058"));

    ua.sign_in(
        &AuthRequest::new("common").url(&idp),
        "alice@contoso.example",
        "tessera",
    )
    .await
    .unwrap();
    // Same scopes, no prompt: straight back with a code (302, no page).
    let sso = AuthRequest::new("common");
    let back = ua
        .authorize_without_interaction(&sso.url(&idp))
        .await
        .unwrap();
    let code = query(&back, "code").expect("SSO code");
    let (s, body) = redeem(&idp, &sso, &code).await;
    assert_eq!(s, 200);
    assert_eq!(
        claims(body["id_token"].as_str().unwrap())["preferred_username"],
        "alice@contoso.example"
    );
    // prompt=none now works too.
    let silent = AuthRequest::new("common").with("prompt", "none");
    let back = ua
        .authorize_without_interaction(&silent.url(&idp))
        .await
        .unwrap();
    assert!(query(&back, "code").is_some(), "{back}");
    // prompt=login forces the password.
    let forced = AuthRequest::new("common").with("prompt", "login");
    let err = ua
        .authorize_without_interaction(&forced.url(&idp))
        .await
        .unwrap_err();
    assert!(err.contains("password"), "{err}");
    // A login_hint for someone else needs the password too.
    let other = AuthRequest::new("common").with("login_hint", "bob@contoso.example");
    assert!(ua
        .authorize_without_interaction(&other.url(&idp))
        .await
        .is_err());
    // New scopes need consent; prompt=none then says consent_required.
    let more = AuthRequest::new("common").scope("openid api://sandbox-api/Data.Write");
    let err = ua
        .authorize_without_interaction(&more.url(&idp))
        .await
        .unwrap_err();
    assert!(err.contains("consent"), "{err}");
    let more_silent = more.with("prompt", "none");
    let back = ua
        .authorize_without_interaction(&more_silent.url(&idp))
        .await
        .unwrap();
    assert_eq!(query(&back, "error").as_deref(), Some("consent_required"));
    // Another tenant's authority does not see Alice's session.
    let fab = AuthRequest::new("fabrikam.example");
    assert!(ua
        .authorize_without_interaction(&fab.url(&idp))
        .await
        .is_err());

    // Logout clears the session and redirects back.
    let mut logout =
        Url::parse(&format!("{}/oauth2/v2.0/logout", idp.authority("common"))).unwrap();
    logout.query_pairs_mut().append_pair(
        "post_logout_redirect_uri",
        "http://localhost:53117/signed-out",
    );
    let back = ua.authorize_without_interaction(&logout).await.unwrap();
    assert_eq!(back.as_str(), "http://localhost:53117/signed-out");
    let silent = AuthRequest::new("common").with("prompt", "none");
    let back = ua
        .authorize_without_interaction(&silent.url(&idp))
        .await
        .unwrap();
    assert_eq!(query(&back, "error").as_deref(), Some("login_required"));
}

#[tokio::test]
async fn logout_without_redirect_shows_a_page() {
    let idp = sandbox().await;
    let (status, html) =
        get_page(&Url::parse(&format!("{}/oauth2/v2.0/logout", idp.authority("common"))).unwrap())
            .await;
    assert_eq!(status, 200);
    assert!(html.contains("You signed out"));
}

#[tokio::test]
async fn invalid_requests_get_an_error_page_or_an_error_redirect() {
    let idp = sandbox().await;
    // No client_id: nobody to redirect to, so an error page.
    let mut u = AuthRequest::new("common").url(&idp);
    let kept: Vec<(String, String)> = u
        .query_pairs()
        .filter(|(k, _)| k != "client_id")
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    u.query_pairs_mut().clear().extend_pairs(kept.iter());
    let (status, html) = get_page(&u).await;
    assert_eq!(status, 400);
    assert!(
        html.contains("AADSTS900144") && html.contains("client_id"),
        "{html}"
    );
    // Bad redirect URI: error page.
    let bad = AuthRequest::new("common").url(&idp).as_str().replace(
        "redirect_uri=http%3A%2F%2Flocalhost%3A53117",
        "redirect_uri=",
    );
    let (status, html) = get_page(&Url::parse(&bad).unwrap()).await;
    assert_eq!(status, 400);
    assert!(html.contains("AADSTS90102"), "{html}");
    // Unknown tenant: error page.
    let (status, html) = get_page(&AuthRequest::new("nowhere.example").url(&idp)).await;
    assert_eq!(status, 400);
    assert!(html.contains("AADSTS90002"));

    // Missing PKCE: redirected with invalid_request.
    let mut u = AuthRequest::new("common").url(&idp);
    let kept: Vec<(String, String)> = u
        .query_pairs()
        .filter(|(k, _)| !k.starts_with("code_challenge"))
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    u.query_pairs_mut().clear().extend_pairs(kept.iter());
    let resp = http().get(u).send().await.unwrap();
    assert_eq!(resp.status(), 302);
    let back = Url::parse(resp.headers()["location"].to_str().unwrap()).unwrap();
    assert_eq!(query(&back, "error").as_deref(), Some("invalid_request"));
    assert!(query(&back, "error_description")
        .unwrap()
        .contains("code_challenge"));
    // plain is refused.
    let plain = AuthRequest::new("common")
        .url(&idp)
        .as_str()
        .replace("code_challenge_method=S256", "code_challenge_method=plain");
    let resp = http().get(plain).send().await.unwrap();
    let back = Url::parse(resp.headers()["location"].to_str().unwrap()).unwrap();
    assert_eq!(query(&back, "error").as_deref(), Some("invalid_request"));
    assert!(query(&back, "error_description").unwrap().contains("plain"));
    // Unknown resource: invalid_resource.
    let resp = http()
        .get(
            AuthRequest::new("common")
                .scope("openid https://unknown.example/x")
                .url(&idp),
        )
        .send()
        .await
        .unwrap();
    let back = Url::parse(resp.headers()["location"].to_str().unwrap()).unwrap();
    assert_eq!(query(&back, "error").as_deref(), Some("invalid_resource"));
    // Implicit flow is not enabled.
    let implicit = AuthRequest::new("common")
        .url(&idp)
        .as_str()
        .replace("response_type=code", "response_type=token");
    let resp = http().get(implicit).send().await.unwrap();
    let back = Url::parse(resp.headers()["location"].to_str().unwrap()).unwrap();
    assert_eq!(
        query(&back, "error").as_deref(),
        Some("unsupported_response_type")
    );
}

#[tokio::test]
async fn fragment_and_form_post_response_modes() {
    let idp = sandbox().await;
    let frag = AuthRequest::new("common").with("response_mode", "fragment");
    let back = scripted_sign_in(&frag.url(&idp), "alice@contoso.example", "tessera")
        .await
        .unwrap();
    assert!(back.query().is_none(), "{back}");
    let f: Vec<(String, String)> = url::form_urlencoded::parse(back.fragment().unwrap().as_bytes())
        .into_owned()
        .collect();
    let code = f
        .iter()
        .find(|(k, _)| k == "code")
        .map(|(_, v)| v.clone())
        .unwrap();
    assert!(f.iter().any(|(k, v)| k == "state" && *v == frag.state));
    assert_eq!(redeem(&idp, &frag, &code).await.0, 200);

    let post = AuthRequest::new("common").with("response_mode", "form_post");
    let back = scripted_sign_in(&post.url(&idp), "alice@contoso.example", "tessera")
        .await
        .unwrap();
    assert!(back.as_str().starts_with(REDIRECT));
    let code = query(&back, "code").unwrap();
    assert_eq!(redeem(&idp, &post, &code).await.0, 200);
}

#[tokio::test]
async fn nonce_and_state_with_special_characters_round_trip() {
    let idp = sandbox().await;
    let mut req = AuthRequest::new("common");
    req.state = "a&b=c d\"<x>".into();
    req.nonce = "n&\"'<>".into();
    let code = sign_in_code(&idp, &req, "alice@contoso.example").await;
    let (_, body) = redeem(&idp, &req, &code).await;
    assert_eq!(
        claims(body["id_token"].as_str().unwrap())["nonce"],
        req.nonce.as_str()
    );
}

#[tokio::test]
async fn every_authorization_response_carries_the_answering_tenants_iss() {
    let idp = sandbox().await;
    let template = format!("{}{{tenantid}}/v2.0", idp.base_url());
    let contoso = idp.issuer(CONTOSO.id);
    // A code through `common`: the signed-in user's tenant, as in the ID token.
    let back = scripted_sign_in(
        &AuthRequest::new("common").url(&idp),
        "alice@contoso.example",
        "tessera",
    )
    .await
    .unwrap();
    assert!(query(&back, "code").is_some());
    assert_eq!(query(&back, "iss").as_deref(), Some(contoso.as_str()));
    // Declined consent: an error, from the same tenant.
    let back = ScriptedUserAgent::new()
        .unwrap()
        .sign_in_with(
            &AuthRequest::new("common").url(&idp),
            "alice@contoso.example",
            "tessera",
            false,
        )
        .await
        .unwrap();
    assert_eq!(query(&back, "error").as_deref(), Some("access_denied"));
    assert_eq!(query(&back, "iss").as_deref(), Some(contoso.as_str()));
    // No user yet on a multi-tenant authority: the discovery issuer (the template).
    let back = ScriptedUserAgent::new()
        .unwrap()
        .authorize_without_interaction(
            &AuthRequest::new("organizations")
                .with("prompt", "none")
                .url(&idp),
        )
        .await
        .unwrap();
    assert_eq!(query(&back, "error").as_deref(), Some("login_required"));
    assert_eq!(query(&back, "iss").as_deref(), Some(template.as_str()));
    // An invalid request to a tenant authority: that tenant.
    let implicit = AuthRequest::new("contoso.example")
        .url(&idp)
        .as_str()
        .replace("response_type=code", "response_type=token");
    let resp = http().get(implicit).send().await.unwrap();
    let back = Url::parse(resp.headers()["location"].to_str().unwrap()).unwrap();
    assert_eq!(
        query(&back, "error").as_deref(),
        Some("unsupported_response_type")
    );
    assert_eq!(query(&back, "iss").as_deref(), Some(contoso.as_str()));
    // In the fragment and in a form post as well.
    let frag = AuthRequest::new("common").with("response_mode", "fragment");
    let back = scripted_sign_in(&frag.url(&idp), "alice@contoso.example", "tessera")
        .await
        .unwrap();
    let f: Vec<(String, String)> = url::form_urlencoded::parse(back.fragment().unwrap().as_bytes())
        .into_owned()
        .collect();
    assert!(f.iter().any(|(k, v)| k == "iss" && *v == contoso));
    let post = AuthRequest::new("common").with("response_mode", "form_post");
    let back = scripted_sign_in(&post.url(&idp), "alice@contoso.example", "tessera")
        .await
        .unwrap();
    assert_eq!(query(&back, "iss").as_deref(), Some(contoso.as_str()));
}
