//! Device authorization grant: `POST /{t}/oauth2/v2.0/devicecode` and the verification pages
//! at `/devicelogin` (enter the code, sign in, consent).

use crate::authorize::{check_credentials, error_page, html, new_session};
use crate::data::{client_display_name, user_by_oid, TenantSel};
use crate::errors::{json_response, AadError, Diag};
use crate::faults::Faults;
use crate::pages::{self, AccountEntry};
use crate::scopes::{consent_items, Scopes};
use crate::state::{AppState, DeviceFlow, DeviceStatus, Pending, PendingKind};
use crate::util::{digest_hex, now_secs, param, parse_form, random_bytes, random_token};
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::Response;
use serde_json::json;
use std::sync::Arc;

/// Path of the verification page.
pub const DEVICELOGIN_PATH: &str = "/devicelogin";

/// Letters and digits that cannot be confused with each other (no 0/O, 1/I).
const USER_CODE_ALPHABET: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZ23456789";

fn new_user_code() -> String {
    random_bytes(9)
        .iter()
        .map(|b| USER_CODE_ALPHABET[*b as usize % USER_CODE_ALPHABET.len()] as char)
        .collect()
}

pub async fn devicecode(
    State(st): State<Arc<AppState>>,
    Path(segment): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let d = Diag::from_headers(&headers);
    let form = parse_form(&body);
    match start_flow(&st, &segment, &form) {
        Ok(v) => json_response(StatusCode::OK, &v, &d),
        Err(e) => {
            tracing::info!(
                error = e.error,
                code = e.code,
                "device code request refused"
            );
            e.json_response(&st.base, &d)
        }
    }
}

fn start_flow(
    st: &AppState,
    segment: &str,
    form: &[(String, String)],
) -> Result<serde_json::Value, AadError> {
    let tenant = TenantSel::parse(segment).ok_or_else(|| AadError::unknown_tenant(segment))?;
    let client_id = param(form, "client_id").ok_or_else(|| AadError::missing("client_id"))?;
    let scope = param(form, "scope").ok_or_else(|| AadError::missing("scope"))?;
    Scopes::parse(scope, segment)?;
    let f: Faults = st.faults();
    let device_code = random_token("DAQABAAEAAAD", 96);
    let mut store = st.store();
    store.purge();
    let user_code = loop {
        let c = new_user_code();
        if store.device_by_user_code(&c).is_none() {
            break c;
        }
    };
    let expires_in = f.device_expires();
    let interval = f.device_interval();
    store.device_flows.insert(
        digest_hex(&device_code),
        DeviceFlow {
            user_code: user_code.clone(),
            client_id: client_id.to_string(),
            scope: scope.to_string(),
            tenant,
            expires_at: now_secs() + expires_in as i64,
            interval,
            last_poll: None,
            status: DeviceStatus::Pending,
        },
    );
    drop(store);
    let verification_uri = format!("{}devicelogin", st.base);
    tracing::info!(client_id, "device code issued");
    Ok(json!({
        "user_code": user_code,
        "device_code": device_code,
        "verification_uri": verification_uri,
        "expires_in": expires_in,
        "interval": interval,
        "message": format!(
            "To sign in, use a web browser to open the page {verification_uri} and enter the code {user_code} to authenticate."
        ),
    }))
}

pub async fn devicelogin_get(RawQuery(query): RawQuery) -> Response {
    let q = parse_form(query.unwrap_or_default().as_bytes());
    let prefill = param(&q, "user_code").or(param(&q, "otc")).unwrap_or("");
    html(
        StatusCode::OK,
        pages::device_code_entry(DEVICELOGIN_PATH, prefill, None),
    )
}

pub async fn devicelogin_post(
    State(st): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let form = parse_form(&body);
    let d = Diag::from_headers(&headers);
    match param(&form, "step") {
        Some("credentials") => credentials_step(&st, &form),
        Some("consent") => consent_step(&st, &form, &d),
        _ => code_step(&st, &form),
    }
}

/// A still-usable pending flow for this user code: (device code digest, client, tenant).
fn usable_flow(st: &AppState, user_code: &str) -> Result<(String, String, TenantSel), String> {
    let mut store = st.store();
    let Some((key, flow)) = store.device_by_user_code(user_code) else {
        return Err("That code didn't work. Check the code and try again.".into());
    };
    if now_secs() >= flow.expires_at {
        return Err(
            "That code has expired. Go back to your app or device and start the sign-in again. \
             (AADSTS70019: Verification code expired.)"
                .into(),
        );
    }
    if flow.status != DeviceStatus::Pending {
        return Err("That code was already used. Start the sign-in again on your device.".into());
    }
    Ok((key, flow.client_id.clone(), flow.tenant))
}

fn sign_in_page(
    user_code: &str,
    client_id: &str,
    tenant: TenantSel,
    login: &str,
    error: Option<&str>,
) -> Response {
    let app = client_display_name(client_id);
    let note = format!(
        "You are signing in to {app} on another device located near you. Only continue if you started this sign-in."
    );
    let accounts = tenant
        .users()
        .into_iter()
        .map(|u| AccountEntry {
            user: u,
            link: None,
        })
        .collect();
    html(
        StatusCode::OK,
        pages::sign_in(&pages::SignIn {
            action: DEVICELOGIN_PATH,
            hidden: vec![
                ("step".into(), "credentials".into()),
                ("user_code".into(), user_code.to_string()),
            ],
            app_name: &app,
            login,
            error,
            accounts,
            note: Some(&note),
        }),
    )
}

fn code_step(st: &AppState, form: &[(String, String)]) -> Response {
    let user_code = param(form, "user_code")
        .or(param(form, "otc"))
        .unwrap_or("");
    match usable_flow(st, user_code) {
        Ok((_, client_id, tenant)) => sign_in_page(user_code.trim(), &client_id, tenant, "", None),
        Err(msg) => html(
            StatusCode::OK,
            pages::device_code_entry(DEVICELOGIN_PATH, user_code, Some(&msg)),
        ),
    }
}

fn credentials_step(st: &AppState, form: &[(String, String)]) -> Response {
    let user_code = param(form, "user_code").unwrap_or("");
    let (key, client_id, tenant) = match usable_flow(st, user_code) {
        Ok(v) => v,
        Err(msg) => {
            return html(
                StatusCode::OK,
                pages::device_code_entry(DEVICELOGIN_PATH, user_code, Some(&msg)),
            )
        }
    };
    let login = param(form, "login").unwrap_or("");
    let password = form
        .iter()
        .find(|(k, _)| k == "password")
        .map(|(_, v)| v.as_str())
        .unwrap_or("");
    let segment = tenant.endpoint_segment();
    let user = match check_credentials(&tenant, segment, login, password) {
        Ok(u) => u,
        Err(msg) => return sign_in_page(user_code, &client_id, tenant, login.trim(), Some(&msg)),
    };
    tracing::info!(user = user.login, client_id = %client_id, "device sign-in: password accepted");
    let ticket = random_token("", 32);
    let scope = {
        let mut store = st.store();
        store.pending.insert(
            digest_hex(&ticket),
            Pending {
                user_oid: user.oid.to_string(),
                kind: PendingKind::Device(key.clone()),
                created: now_secs(),
            },
        );
        store
            .device_flows
            .get(&key)
            .map(|f| f.scope.clone())
            .unwrap_or_default()
    };
    let app = client_display_name(&client_id);
    let scopes = consent_items(&scope, segment)
        .into_iter()
        .map(|(_, desc, s)| (desc, s))
        .collect();
    let mut resp = html(
        StatusCode::OK,
        pages::consent(&pages::Consent {
            action: DEVICELOGIN_PATH,
            hidden: vec![("step".into(), "consent".into()), ("ticket".into(), ticket)],
            app_name: &app,
            user,
            scopes,
        }),
    );
    if let Ok(v) = HeaderValue::from_str(&new_session(st, user)) {
        resp.headers_mut().append(header::SET_COOKIE, v);
    }
    resp
}

fn consent_step(st: &AppState, form: &[(String, String)], d: &Diag) -> Response {
    let pending = param(form, "ticket").and_then(|t| st.store().pending.remove(&digest_hex(t)));
    let Some(Pending {
        user_oid,
        kind: PendingKind::Device(key),
        ..
    }) = pending
    else {
        return error_page(
            &AadError::malformed(
                "This sign-in page has expired or was already used. Start the sign-in again.",
            ),
            d,
        );
    };
    let decision = param(form, "decision");
    if !matches!(decision, Some("accept") | Some("cancel")) {
        return error_page(&AadError::missing("decision"), d);
    }
    let mut store = st.store();
    let Some(flow) = store.device_flows.get_mut(&key) else {
        return error_page(&AadError::malformed("Unknown device code."), d);
    };
    if now_secs() >= flow.expires_at || flow.status != DeviceStatus::Pending {
        drop(store);
        return html(
            StatusCode::OK,
            pages::device_code_entry(
                DEVICELOGIN_PATH,
                "",
                Some("That code has expired or was already used. Start the sign-in again on your device."),
            ),
        );
    }
    let app = client_display_name(&flow.client_id);
    if decision == Some("cancel") {
        flow.status = DeviceStatus::Denied;
        drop(store);
        tracing::info!("device sign-in cancelled by the user");
        return html(
            StatusCode::OK,
            pages::message(
                "Sign-in cancelled",
                "Sign-in cancelled",
                &format!("You declined to sign in to {app} on your device. You may now close this window."),
            ),
        );
    }
    flow.status = DeviceStatus::Approved(user_oid.clone());
    let client_id = flow.client_id.clone();
    let scope = flow.scope.clone();
    let segment = flow.tenant.endpoint_segment();
    for (k, _, _) in consent_items(&scope, segment) {
        if !k.is_empty() {
            store
                .consents
                .insert((user_oid.clone(), client_id.clone(), k));
        }
    }
    drop(store);
    let login = user_by_oid(&user_oid).map(|u| u.login).unwrap_or("");
    tracing::info!(user = login, client_id = %client_id, "device sign-in approved");
    html(
        StatusCode::OK,
        pages::message(
            "Signed in",
            "You're signed in",
            &format!(
                "You have signed in to the {app} application on your device as {login}. You may now close this window."
            ),
        ),
    )
}
