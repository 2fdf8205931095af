//! `POST /{t}/oauth2/v2.0/token`: authorization code, refresh token and device code grants,
//! token issuance, and the token-endpoint faults.

use crate::data::{user_by_oid, TenantSel, User};
use crate::errors::{json_response, AadError, Diag};
use crate::faults::FaultCtx;
use crate::scopes::{Resource, Scopes};
use crate::state::{consented, AppState, DeviceStatus, RefreshRecord, CODE_LIFETIME_SECS};
use crate::util::{
    b64url, digest_hex, iso_date, now_secs, param, parse_form, random_token, sha256_b64url,
};
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::Instant;

/// Refresh tokens expire after 90 days, as in Entra.
pub const REFRESH_TOKEN_LIFETIME_SECS: i64 = 90 * 24 * 3600;

pub const GRANT_CODE: &str = "authorization_code";
pub const GRANT_REFRESH: &str = "refresh_token";
pub const GRANT_DEVICE: &str = "urn:ietf:params:oauth:grant-type:device_code";

/// A stable conditional-access policy id used in the `interaction_required` claims challenge.
pub const CLAIMS_CHALLENGE_POLICY: &str = "c1e3f5a7-2b4d-4f6a-8c9e-0a1b2c3d4e5f";

pub async fn token(
    State(st): State<Arc<AppState>>,
    Path(segment): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    st.token_requests
        .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    let d = Diag::from_headers(&headers);
    let fx = FaultCtx::new(&st.faults);
    if let Some(resp) = transport_fault(&st, &fx, &d) {
        return resp;
    }
    let form = parse_form(&body);
    let grant = param(&form, "grant_type").unwrap_or("").to_string();
    let client = param(&form, "client_id").unwrap_or("").to_string();
    match handle(&st, &fx, &segment, &form) {
        Ok(v) => {
            tracing::info!(grant_type = %grant, client_id = %client, "tokens issued");
            json_response(StatusCode::OK, &v, &d)
        }
        Err(e) => {
            tracing::info!(
                grant_type = %grant,
                client_id = %client,
                error = e.error,
                code = e.code,
                "token request refused"
            );
            e.json_response(&st.base, &d)
        }
    }
}

/// Faults that replace the whole response: a proxy's HTML page, a 5xx, truncated JSON.
fn transport_fault(st: &AppState, fx: &FaultCtx, d: &Diag) -> Option<Response> {
    if fx.fire(fx.snapshot.html_error_page) {
        tracing::warn!("fault: html_error_page");
        let html = "<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n\
                    <center><h1>502 Bad Gateway</h1></center>\r\n<hr><center>nginx</center>\r\n\
                    </body>\r\n</html>\r\n";
        return Some(
            (
                StatusCode::BAD_GATEWAY,
                [("content-type", "text/html")],
                html,
            )
                .into_response(),
        );
    }
    if let Some(code) = fx.snapshot.http_status {
        if fx.fire(true) {
            tracing::warn!(status = code, "fault: http_status");
            let status = StatusCode::from_u16(code).unwrap_or(StatusCode::SERVICE_UNAVAILABLE);
            let error = if status == StatusCode::SERVICE_UNAVAILABLE {
                "temporarily_unavailable"
            } else {
                "server_error"
            };
            let e = AadError::new(
                error,
                90033,
                "A transient error has occurred. Please try again.",
            )
            .status(status);
            let mut resp = e.json_response(&st.base, d);
            let retry = fx.snapshot.retry_after_secs.unwrap_or(1).to_string();
            if let Ok(v) = HeaderValue::from_str(&retry) {
                resp.headers_mut().insert("retry-after", v);
            }
            return Some(resp);
        }
    }
    if fx.fire(fx.snapshot.malformed_json) {
        tracing::warn!("fault: malformed_json");
        let truncated = r#"{"token_type":"Bearer","scope":"User.Read openid profile","expires_in":3599,"ext_expires_in":3599,"access_token":"eyJ0eXAiOiJKV1QiLCJhbGciOiJSUzI1NiIs"#;
        let mut resp = json_response(StatusCode::OK, &Value::Null, d);
        *resp.body_mut() = axum::body::Body::from(truncated);
        return Some(resp);
    }
    None
}

fn handle(
    st: &AppState,
    fx: &FaultCtx,
    segment: &str,
    form: &[(String, String)],
) -> Result<Value, AadError> {
    let tenant = TenantSel::parse(segment).ok_or_else(|| AadError::unknown_tenant(segment))?;
    if param(form, "client_secret").is_some() || param(form, "client_assertion").is_some() {
        return Err(AadError::new(
            "invalid_client",
            700025,
            "Client is public so neither 'client_assertion' nor 'client_secret' should be presented.",
        )
        .status(StatusCode::UNAUTHORIZED));
    }
    let grant = param(form, "grant_type").ok_or_else(|| AadError::missing("grant_type"))?;
    let client_id = param(form, "client_id").ok_or_else(|| AadError::missing("client_id"))?;
    match grant {
        GRANT_CODE => grant_code(st, fx, tenant, segment, form, client_id),
        GRANT_REFRESH => grant_refresh(st, fx, tenant, segment, form, client_id),
        GRANT_DEVICE => grant_device(st, fx, segment, form, client_id),
        other => Err(AadError::new(
            "unsupported_grant_type",
            70003,
            format!("The app requested an unsupported grant type '{other}'."),
        )),
    }
}

fn invalid_grant(code: u32, msg: impl Into<String>) -> AadError {
    AadError::new("invalid_grant", code, msg)
}

fn expired_grant(extra: &str) -> AadError {
    invalid_grant(
        70008,
        format!(
            "The provided authorization code or refresh token has expired due to inactivity. Send a new \
             interactive authorization request for this user and resource.{extra}"
        ),
    )
}

fn not_in_tenant(user: &User, segment: &str) -> AadError {
    invalid_grant(
        50020,
        format!(
            "User account '{}' from identity provider does not exist in tenant '{segment}' and cannot \
             access the application in that tenant.",
            user.login
        ),
    )
}

fn grant_code(
    st: &AppState,
    fx: &FaultCtx,
    tenant: TenantSel,
    segment: &str,
    form: &[(String, String)],
    client_id: &str,
) -> Result<Value, AadError> {
    let code = param(form, "code").ok_or_else(|| AadError::missing("code"))?;
    let redirect_uri = param(form, "redirect_uri");
    let verifier = param(form, "code_verifier");
    let mut guard = st.store();
    let store = &mut *guard;
    let Some(rec) = store.codes.get_mut(&digest_hex(code)) else {
        return Err(invalid_grant(
            9002313,
            "Invalid request. Request is malformed or invalid. The authorization code is not valid.",
        ));
    };
    if rec.client_id != client_id {
        return Err(invalid_grant(
            70000,
            "Provided grant is invalid or malformed. The authorization code was issued to another client.",
        ));
    }
    if rec.redeemed {
        return Err(invalid_grant(
            54005,
            "OAuth2 Authorization code was already redeemed, please retry with a new valid code or use \
             an existing refresh token.",
        ));
    }
    if now_secs() - rec.issued_at > CODE_LIFETIME_SECS {
        return Err(expired_grant(""));
    }
    let Some(redirect_uri) = redirect_uri else {
        return Err(AadError::missing("redirect_uri"));
    };
    if redirect_uri != rec.redirect_uri {
        return Err(invalid_grant(
            500112,
            format!(
                "The reply address '{redirect_uri}' does not match the reply address '{}' provided when \
                 requesting Authorization code.",
                rec.redirect_uri
            ),
        ));
    }
    let Some(verifier) = verifier else {
        return Err(AadError::missing("code_verifier"));
    };
    if sha256_b64url(verifier) != rec.code_challenge {
        return Err(invalid_grant(
            50148,
            "The code_verifier does not match the code_challenge supplied in the authorization request \
             for PKCE.",
        ));
    }
    let user = user_by_oid(&rec.user_oid).ok_or_else(|| AadError::malformed("Unknown user."))?;
    if !tenant.allows(user) {
        return Err(invalid_grant(
            700005,
            "Provided Authorization Code is intended to use against other tenant, thus rejected.",
        ));
    }
    let raw_scope = param(form, "scope").unwrap_or(&rec.scope).to_string();
    let scopes = Scopes::parse(&raw_scope, segment)?;
    let authorized = Scopes::parse(&rec.scope, segment)?;
    let (resource, perms) = scopes.single_resource(&raw_scope)?;
    if !scopes.uses_default && !st.is_family(client_id) {
        check_consent(&store.consents, user, client_id, resource, &perms)?;
    }
    let nonce = rec.nonce.clone();
    rec.redeemed = true;
    drop(guard);
    Ok(issue(
        st,
        fx,
        Grant {
            client_id,
            user,
            resource,
            perms: &perms,
            oidc_scopes: &scopes,
            nonce: nonce.as_deref(),
            want_refresh: scopes.has("offline_access") || authorized.has("offline_access"),
            want_id_token: scopes.has("openid") || authorized.has("openid"),
            raw_scope: &raw_scope,
        },
    ))
}

fn check_consent(
    consents: &crate::state::Consents,
    user: &User,
    client_id: &str,
    resource: Resource,
    perms: &[String],
) -> Result<(), AadError> {
    if let Some(p) = perms
        .iter()
        .find(|p| !consented(consents, user.oid, client_id, &resource.consent_key(p)))
    {
        return Err(invalid_grant(
            65001,
            format!(
                "The user or administrator has not consented to use the application with ID '{client_id}'. \
                 Send an interactive authorization request for this user and resource. Missing scope: {}.",
                resource.scope_string(p)
            ),
        )
        .suberror("consent_required"));
    }
    Ok(())
}

fn grant_refresh(
    st: &AppState,
    fx: &FaultCtx,
    tenant: TenantSel,
    segment: &str,
    form: &[(String, String)],
    client_id: &str,
) -> Result<Value, AadError> {
    if fx.fire(fx.snapshot.refresh_invalid_grant) {
        tracing::warn!("fault: refresh_invalid_grant");
        let issued = now_secs() - 90 * 24 * 3600;
        return Err(invalid_grant(
            700082,
            format!(
                "The refresh token has expired due to inactivity. The token was issued on {} and was \
                 inactive for 90.00:00:00.",
                iso_date(issued)
            ),
        ));
    }
    if fx.fire(fx.snapshot.interaction_required) {
        tracing::warn!("fault: interaction_required");
        let claims = json!({"access_token": {"capolids": {"essential": true, "values": [CLAIMS_CHALLENGE_POLICY]}}});
        return Err(AadError::new(
            "interaction_required",
            50076,
            "Due to a configuration change made by your administrator, or because you moved to a new \
             location, you must use multi-factor authentication to access '00000003-0000-0000-c000-000000000000'.",
        )
        .suberror("basic_action")
        .claims(claims.to_string()));
    }
    let rt = param(form, "refresh_token").ok_or_else(|| AadError::missing("refresh_token"))?;
    let mut guard = st.store();
    let store = &mut *guard;
    let Some(rec) = store.refresh_tokens.get_mut(&digest_hex(rt)) else {
        return Err(invalid_grant(
            9002313,
            "Invalid request. Request is malformed or invalid. The refresh token is not valid.",
        ));
    };
    if rec.used && fx.snapshot.strict_rotation {
        return Err(expired_grant(
            " (Sandbox: this refresh token was already redeemed and strict rotation is on.)",
        ));
    }
    if now_secs() - rec.issued_at > REFRESH_TOKEN_LIFETIME_SECS {
        return Err(invalid_grant(
            700082,
            format!(
                "The refresh token has expired due to inactivity. The token was issued on {} and was \
                 inactive for 90.00:00:00.",
                iso_date(rec.issued_at)
            ),
        ));
    }
    if rec.client_id != client_id && !(st.is_family(&rec.client_id) && st.is_family(client_id)) {
        return Err(invalid_grant(
            70000,
            "Provided grant is invalid or malformed. The refresh token was issued to a different client \
             and the requesting client is not in its family.",
        )
        .suberror("client_mismatch"));
    }
    let user = user_by_oid(&rec.user_oid).ok_or_else(|| AadError::malformed("Unknown user."))?;
    if !tenant.allows(user) {
        return Err(not_in_tenant(user, segment));
    }
    let raw_scope = param(form, "scope").unwrap_or(&rec.scope).to_string();
    let scopes = Scopes::parse(&raw_scope, segment)?;
    let (resource, perms) = scopes.single_resource(&raw_scope)?;
    let family_redemption = st.is_family(client_id);
    if !scopes.uses_default && !family_redemption {
        check_consent(&store.consents, user, client_id, resource, &perms)?;
    }
    rec.used = true;
    drop(guard);
    Ok(issue(
        st,
        fx,
        Grant {
            client_id,
            user,
            resource,
            perms: &perms,
            oidc_scopes: &scopes,
            nonce: None,
            want_refresh: true,
            want_id_token: scopes.has("openid"),
            raw_scope: &raw_scope,
        },
    ))
}

fn grant_device(
    st: &AppState,
    fx: &FaultCtx,
    segment: &str,
    form: &[(String, String)],
    client_id: &str,
) -> Result<Value, AadError> {
    let device_code = param(form, "device_code").ok_or_else(|| AadError::missing("device_code"))?;
    let mut store = st.store();
    let flow = store
        .device_flows
        .get_mut(&digest_hex(device_code))
        .filter(|f| f.client_id == client_id);
    let Some(flow) = flow else {
        return Err(AadError::new(
            "bad_verification_code",
            70000,
            "Provided grant is invalid or malformed. The device code was not recognized.",
        ));
    };
    if now_secs() >= flow.expires_at && !matches!(flow.status, DeviceStatus::Redeemed) {
        return Err(AadError::new(
            "expired_token",
            70019,
            "Verification code expired.",
        ));
    }
    let interval = flow.interval;
    let user_oid = match &flow.status {
        DeviceStatus::Pending => {
            let too_fast = interval > 0
                && flow
                    .last_poll
                    .is_some_and(|t| t.elapsed().as_millis() < u128::from(interval) * 1000);
            flow.last_poll = Some(Instant::now());
            return Err(if too_fast {
                AadError::new(
                    "slow_down",
                    70016,
                    format!(
                        "OAuth 2.0 device flow error. Polling too fast: wait at least {interval} seconds \
                         between requests, then continue polling."
                    ),
                )
            } else {
                AadError::new(
                    "authorization_pending",
                    70016,
                    "OAuth 2.0 device flow error. Authorization is pending. Continue polling.",
                )
            });
        }
        DeviceStatus::Denied => {
            return Err(AadError::new(
                "access_denied",
                65004,
                "User declined to consent to access the app.",
            ))
        }
        DeviceStatus::Redeemed => {
            return Err(invalid_grant(
                54005,
                "The device code was already redeemed; start a new device code flow.",
            ))
        }
        DeviceStatus::Approved(oid) => oid.clone(),
    };
    let raw_scope = flow.scope.clone();
    let user = user_by_oid(&user_oid).ok_or_else(|| AadError::malformed("Unknown user."))?;
    let scopes = Scopes::parse(&raw_scope, segment)?;
    let (resource, perms) = scopes.single_resource(&raw_scope)?;
    flow.status = DeviceStatus::Redeemed;
    drop(store);
    Ok(issue(
        st,
        fx,
        Grant {
            client_id,
            user,
            resource,
            perms: &perms,
            oidc_scopes: &scopes,
            nonce: None,
            want_refresh: scopes.has("offline_access"),
            want_id_token: scopes.has("openid"),
            raw_scope: &raw_scope,
        },
    ))
}

/// What one successful grant issues.
pub struct Grant<'a> {
    pub client_id: &'a str,
    pub user: &'static User,
    pub resource: Resource,
    pub perms: &'a [String],
    pub oidc_scopes: &'a Scopes,
    pub nonce: Option<&'a str>,
    pub want_refresh: bool,
    pub want_id_token: bool,
    pub raw_scope: &'a str,
}

/// Pairwise subject: differs per client (and per resource for access tokens), stable per user.
fn pairwise_sub(oid: &str, salt: &str) -> String {
    sha256_b64url(&format!("tessera-sandbox-sub|{oid}|{salt}"))
}

/// The `extra_claims` switch: its claims are added to the token's, replacing same names.
fn add_extra_claims(claims: &mut Value, f: &crate::faults::Faults) {
    if let (Some(extra), Some(obj)) = (&f.extra_claims, claims.as_object_mut()) {
        obj.extend(extra.iter().map(|(k, v)| (k.clone(), v.clone())));
    }
}

/// Builds the token response and records the new refresh token.
pub fn issue(st: &AppState, fx: &FaultCtx, g: Grant<'_>) -> Value {
    let f = &fx.snapshot;
    let lifetime = f.token_lifetime() as i64;
    let now = now_secs();
    let (iat, exp) = if fx.fire(f.expired_tokens) {
        (now - lifetime - 300, now - 300)
    } else {
        (now, now + lifetime)
    };
    let user = g.user;
    let iss = st.issuer(user.tenant_id);
    let rh = random_token("0.A", 48);

    let mut at = json!({
        "aud": g.resource.audience(),
        "iss": iss,
        "iat": iat,
        "nbf": iat,
        "exp": exp,
        "aio": random_token("", 60),
        "azp": g.client_id,
        "azpacr": "0",
        "idtyp": "user",
        "name": user.name,
        "oid": user.oid,
        "preferred_username": user.login,
        "rh": rh,
    });
    if g.resource == Resource::SandboxApi && !user.roles.is_empty() {
        at["roles"] = json!(user.roles);
    }
    at["scp"] = json!(g.perms.join(" "));
    at["sub"] = json!(pairwise_sub(
        user.oid,
        &format!("{}|{}", g.client_id, g.resource.audience())
    ));
    at["tid"] = json!(user.tenant_id);
    at["uti"] = json!(random_token("", 16));
    at["ver"] = json!("2.0");
    add_extra_claims(&mut at, f);
    let access_token = st.keys.sign(&at);

    let mut scope_words: Vec<String> = g.perms.iter().map(|p| g.resource.scope_string(p)).collect();
    // Entra echoes a `.default` request after the permissions it stands for (MSAL's cache
    // then finds the token by the scope it was asked for).
    scope_words.extend(g.oidc_scopes.defaults.iter().cloned());
    if g.resource == Resource::Graph {
        // Entra lists the OIDC scopes only for Microsoft Graph tokens, and never offline_access.
        for o in ["openid", "profile", "email"] {
            if g.oidc_scopes.has(o) {
                scope_words.push(o.to_string());
            }
        }
    }
    let mut resp = json!({
        "token_type": "Bearer",
        "scope": scope_words.join(" "),
        "expires_in": lifetime,
        "ext_expires_in": lifetime,
        "access_token": access_token,
    });
    if let Some(r) = f.refresh_in_secs {
        resp["refresh_in"] = json!(r);
    }
    if g.want_refresh {
        let rt = random_token("1.A", 96);
        let mut store = st.store();
        store.refresh_tokens.insert(
            digest_hex(&rt),
            RefreshRecord {
                client_id: g.client_id.to_string(),
                user_oid: user.oid.to_string(),
                scope: g.raw_scope.to_string(),
                issued_at: now,
                used: false,
            },
        );
        resp["refresh_token"] = json!(rt);
    }
    if g.want_id_token {
        let issuer = if fx.fire(f.wrong_issuer) {
            format!("https://sts.sandbox.invalid/{}/v2.0", user.tenant_id)
        } else {
            iss.clone()
        };
        let mut id = json!({
            "aud": g.client_id,
            "iss": issuer,
            "iat": iat,
            "nbf": iat,
            "exp": exp,
            "aio": random_token("", 60),
        });
        if g.oidc_scopes.has("email") {
            id["email"] = json!(user.login);
        }
        if g.oidc_scopes.has("profile") {
            id["name"] = json!(user.name);
        }
        if let Some(n) = g.nonce {
            let nonce = if fx.fire(f.wrong_nonce) {
                format!("{n}-not-the-one-you-sent")
            } else {
                n.to_string()
            };
            id["nonce"] = json!(nonce);
        } else if fx.fire(f.wrong_nonce) {
            id["nonce"] = json!("unexpected-nonce");
        }
        id["oid"] = json!(user.oid);
        if g.oidc_scopes.has("profile") {
            id["preferred_username"] = json!(user.login);
        }
        id["rh"] = json!(rh);
        id["sub"] = json!(pairwise_sub(user.oid, g.client_id));
        id["tid"] = json!(user.tenant_id);
        id["uti"] = json!(random_token("", 16));
        id["ver"] = json!("2.0");
        add_extra_claims(&mut id, f);
        resp["id_token"] = json!(st.keys.sign(&id));
    }
    let client_info = json!({"uid": user.oid, "utid": user.tenant_id});
    resp["client_info"] = json!(b64url(client_info.to_string().as_bytes()));
    if st.is_family(g.client_id) {
        resp["foci"] = json!("1");
    }
    resp
}
