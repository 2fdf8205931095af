//! Logout, the `/_sandbox/*` control endpoints, userinfo, the error-code page, the index page.

use crate::authorize::{html, SESSION_COOKIE};
use crate::data::{client_display_name, DEMO_PASSWORD, SANDBOX_CLIENT_ID, TENANTS, USERS};
use crate::errors::{json_response, known_code, Diag};
use crate::faults::Faults;
use crate::pages;
use crate::state::AppState;
use crate::util::{cookie, digest_hex, esc, param, parse_form, sha256_b64url};
use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Map, Value};
use std::sync::Arc;

pub async fn logout(
    State(st): State<Arc<AppState>>,
    method: Method,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let mut p = parse_form(query.unwrap_or_default().as_bytes());
    if method == Method::POST {
        p.extend(parse_form(&body));
    }
    if let Some(sid) = cookie(&headers, SESSION_COOKIE) {
        st.store().sessions.remove(&digest_hex(&sid));
    }
    tracing::info!("signed out");
    let clear = format!("{SESSION_COOKIE}=; Path=/; Max-Age=0; HttpOnly; SameSite=Lax");
    let target = param(&p, "post_logout_redirect_uri")
        .and_then(|u| url::Url::parse(u).ok())
        .filter(|u| matches!(u.scheme(), "http" | "https"));
    let mut resp = match target {
        Some(mut u) => {
            if let Some(s) = param(&p, "state") {
                u.query_pairs_mut().append_pair("state", s);
            }
            let mut r = StatusCode::FOUND.into_response();
            if let Ok(v) = HeaderValue::from_str(u.as_str()) {
                r.headers_mut().insert(header::LOCATION, v);
            }
            r
        }
        None => html(
            StatusCode::OK,
            pages::message(
                "Sign out",
                "You signed out of your account",
                "It's a good idea to close all browser windows.",
            ),
        ),
    };
    if let Ok(v) = HeaderValue::from_str(&clear) {
        resp.headers_mut().append(header::SET_COOKIE, v);
    }
    resp
}

pub async fn get_faults(State(st): State<Arc<AppState>>) -> Response {
    axum::Json(st.faults()).into_response()
}

pub async fn post_faults(State(st): State<Arc<AppState>>, body: Bytes) -> Response {
    match serde_json::from_slice::<Faults>(&body) {
        Ok(f) => {
            tracing::info!(faults = ?f, "faults replaced");
            st.set_faults(f.clone());
            axum::Json(f).into_response()
        }
        Err(e) => (
            StatusCode::BAD_REQUEST,
            axum::Json(json!({
                "error": "invalid_faults",
                "error_description": format!("The body must be a JSON object of fault switches: {e}"),
            })),
        )
            .into_response(),
    }
}

pub async fn delete_faults(State(st): State<Arc<AppState>>) -> Response {
    tracing::info!("faults reset");
    st.set_faults(Faults::default());
    axum::Json(Faults::default()).into_response()
}

/// `GET /_sandbox/probe`: what the `ipc_probe_page` and `hostile_navigation_page` reported
/// so far.
pub async fn get_probe_reports(State(st): State<Arc<AppState>>) -> Response {
    let reports = st
        .probe_reports
        .lock()
        .map(|r| r.clone())
        .unwrap_or_else(|e| e.into_inner().clone());
    axum::Json(reports).into_response()
}

/// `POST /_sandbox/probe`: a report of the `ipc_probe_page` or `hostile_navigation_page`
/// (kept, at most 100).
pub async fn post_probe_report(State(st): State<Arc<AppState>>, body: Bytes) -> Response {
    let Ok(report) = serde_json::from_slice::<serde_json::Value>(&body) else {
        return (StatusCode::BAD_REQUEST, "the report must be JSON").into_response();
    };
    tracing::info!("IPC probe report received");
    let mut reports = st.probe_reports.lock().unwrap_or_else(|e| e.into_inner());
    if reports.len() < 100 {
        reports.push(report);
    }
    StatusCode::NO_CONTENT.into_response()
}

/// The name of the file `hostile_navigation_page` offers as a download.
const DOWNLOAD_FILE_NAME: &str = "tessera-e2e-download.bin";

/// `GET /_sandbox/download`: a file offered as a download (`hostile_navigation_page`).
pub async fn download() -> Response {
    tracing::info!("download requested");
    (
        StatusCode::OK,
        [
            (header::CONTENT_TYPE, "application/octet-stream".to_string()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{DOWNLOAD_FILE_NAME}\""),
            ),
            (header::CACHE_CONTROL, "no-store".to_string()),
        ],
        "tessera e2e download\n",
    )
        .into_response()
}

/// `GET /_sandbox/second-page`: a plain page, where `hostile_navigation_page` goes last.
pub async fn second_page() -> Response {
    html(
        StatusCode::OK,
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>Second page</title>\
         </head><body><h1>Second page</h1></body></html>"
            .to_string(),
    )
}

fn bearer(headers: &HeaderMap) -> Option<&str> {
    let v = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = v.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

fn unauthorized(reason: &str) -> Response {
    let challenge = format!(
        "Bearer error=\"invalid_token\", error_description=\"{}\"",
        reason.replace('"', "'")
    );
    let mut r = (
        StatusCode::UNAUTHORIZED,
        axum::Json(json!({"error": "invalid_token", "error_description": reason})),
    )
        .into_response();
    if let Ok(v) = HeaderValue::from_str(&challenge) {
        r.headers_mut().insert(header::WWW_AUTHENTICATE, v);
    }
    r
}

/// Verifies an access token from the `Authorization` header.
fn verified_access_token(st: &AppState, headers: &HeaderMap) -> Result<Map<String, Value>, String> {
    let token = bearer(headers).ok_or("No bearer token in the Authorization header.")?;
    let claims = st.keys.verify(token)?;
    if !claims.contains_key("scp") {
        return Err("Not an access token (no scp claim).".into());
    }
    Ok(claims)
}

/// `GET /_sandbox/me`: proves an access token is genuine and current.
pub async fn me(State(st): State<Arc<AppState>>, headers: HeaderMap) -> Response {
    match verified_access_token(&st, &headers) {
        Ok(c) => {
            let mut out = json!({
                "preferred_username": c.get("preferred_username"),
                "name": c.get("name"),
                "oid": c.get("oid"),
                "tid": c.get("tid"),
                "aud": c.get("aud"),
                "scp": c.get("scp"),
                "azp": c.get("azp"),
                "exp": c.get("exp"),
            });
            if let Some(r) = c.get("roles") {
                out["roles"] = r.clone();
            }
            axum::Json(out).into_response()
        }
        Err(e) => unauthorized(&e),
    }
}

/// `GET /oidc/userinfo` (the discovery document's `userinfo_endpoint`), for Graph tokens.
pub async fn userinfo(State(st): State<Arc<AppState>>, headers: HeaderMap) -> Response {
    let c = match verified_access_token(&st, &headers) {
        Ok(c) => c,
        Err(e) => return unauthorized(&e),
    };
    if c.get("aud").and_then(Value::as_str) != Some(crate::data::GRAPH_RESOURCE_ID) {
        return unauthorized("The userinfo endpoint needs a Microsoft Graph access token.");
    }
    let oid = c.get("oid").and_then(Value::as_str).unwrap_or("");
    let azp = c.get("azp").and_then(Value::as_str).unwrap_or("");
    let name = c.get("name").and_then(Value::as_str).unwrap_or("");
    let (given, family) = name.split_once(' ').unwrap_or((name, ""));
    axum::Json(json!({
        "sub": sha256_b64url(&format!("tessera-sandbox-sub|{oid}|{azp}")),
        "name": name,
        "family_name": family,
        "given_name": given,
        "email": c.get("preferred_username"),
    }))
    .into_response()
}

/// `GET /error?code=N`: what an AADSTS code means (the `error_uri` of errors).
pub async fn error_code_page(RawQuery(query): RawQuery) -> Response {
    let q = parse_form(query.unwrap_or_default().as_bytes());
    let code = param(&q, "code").unwrap_or("");
    let text = code
        .parse::<u32>()
        .ok()
        .and_then(known_code)
        .unwrap_or("This code is not one the sandbox returns.");
    html(
        StatusCode::OK,
        pages::message(&format!("AADSTS{code}"), &format!("AADSTS{code}"), text),
    )
}

/// `GET /`: what this server is.
pub async fn index(State(st): State<Arc<AppState>>, headers: HeaderMap) -> Response {
    let d = Diag::from_headers(&headers);
    let base = st.base.as_str();
    let tenants: String = TENANTS
        .iter()
        .map(|t| {
            format!(
                "<li><b>{}</b> <code>{}</code> {}</li>",
                esc(t.display_name),
                esc(t.id),
                if t.domain.is_empty() {
                    String::new()
                } else {
                    format!("<code>{}</code>", esc(t.domain))
                }
            )
        })
        .collect();
    let users: String = USERS
        .iter()
        .map(|u| format!("<li>{} <code>{}</code></li>", esc(u.name), esc(u.login)))
        .collect();
    let content = format!(
        "<h1>Sandbox identity provider</h1>\n<p>Authority: <code>{base}common</code> \
         (or <code>organizations</code>, <code>consumers</code>, a tenant id or domain).</p>\n\
         <p>Discovery: <a href=\"{base}common/v2.0/.well-known/openid-configuration\">\
         <code>/common/v2.0/.well-known/openid-configuration</code></a></p>\n\
         <p>Device sign-in: <a href=\"{base}devicelogin\"><code>/devicelogin</code></a></p>\n\
         <h2>Tenants</h2><ul class=\"scopes\">{tenants}</ul>\n\
         <h2>Demo users</h2><p class=\"muted\">Password <code>{DEMO_PASSWORD}</code> for all.</p>\
         <ul class=\"scopes\">{users}</ul>\n\
         <h2>Clients</h2><p class=\"muted\">Any client id is accepted as a public client. \
         {sandbox}: <code>{SANDBOX_CLIENT_ID}</code>.</p>\n\
         <h2>Faults</h2><p><a href=\"{base}_sandbox/faults\"><code>/_sandbox/faults</code></a></p>\n",
        base = esc(base),
        sandbox = esc(&client_display_name(SANDBOX_CLIENT_ID)),
    );
    let mut r = html(
        StatusCode::OK,
        pages::layout("Tessera Sandbox identity provider", &content),
    );
    d.apply(&mut r);
    r
}

/// 404 in Entra's JSON shape.
pub async fn not_found(State(st): State<Arc<AppState>>, headers: HeaderMap) -> Response {
    let d = Diag::from_headers(&headers);
    let body = json!({
        "error": "not_found",
        "error_description": "The sandbox has no endpoint at this path.",
        "trace_id": d.trace_id,
        "correlation_id": d.correlation_id,
        "error_uri": format!("{}", st.base),
    });
    json_response(StatusCode::NOT_FOUND, &body, &d)
}
