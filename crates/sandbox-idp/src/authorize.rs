//! `GET|POST /{t}/oauth2/v2.0/authorize`: sign-in and consent pages, SSO session, codes.

use crate::data::{
    client_display_name, user_by_login, user_by_oid, TenantSel, User, DEMO_PASSWORD,
};
use crate::discovery::issuer_template;
use crate::errors::{AadError, Diag};
use crate::faults::ResponseIss;
use crate::pages::{self, AccountEntry};
use crate::scopes::Scopes;
use crate::state::{
    AppState, AuthCode, AuthRequest, Pending, PendingKind, ResponseMode, Session,
    SESSION_LIFETIME_SECS,
};
use crate::util::{cookie, digest_hex, now_secs, param, parse_form, random_token};
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use std::sync::Arc;

/// The SSO session cookie.
pub const SESSION_COOKIE: &str = "ESTSAUTH";

pub async fn authorize_get(
    State(st): State<Arc<AppState>>,
    Path(segment): Path<String>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Response {
    let pairs = parse_form(query.unwrap_or_default().as_bytes());
    start(&st, &segment, &pairs, &headers)
}

pub async fn authorize_post(
    State(st): State<Arc<AppState>>,
    Path(segment): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let form = parse_form(&body);
    match param(&form, "step") {
        Some("credentials") => credentials_step(&st, &segment, &form, &headers),
        Some("consent") => consent_step(&st, &form, &headers),
        // A POSTed authorization request (allowed by OIDC) starts like a GET.
        _ => start(&st, &segment, &form, &headers),
    }
}

/// Where and how to send the authorization response.
struct ReplyTo {
    redirect_uri: url::Url,
    mode: ResponseMode,
    state: Option<String>,
    tenant: TenantSel,
}

enum Invalid {
    /// Cannot be sent to the client: show an error page.
    Page(AadError),
    /// Sent to the redirect URI.
    Redirect(Box<(AadError, ReplyTo)>),
}

pub fn html(status: StatusCode, body: String) -> Response {
    (
        status,
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "no-store, no-cache"),
        ],
        body,
    )
        .into_response()
}

pub fn error_page(e: &AadError, d: &Diag) -> Response {
    let mut r = html(StatusCode::BAD_REQUEST, pages::error(e, d));
    d.apply(&mut r);
    r
}

fn validate(segment: &str, p: &[(String, String)]) -> Result<AuthRequest, Invalid> {
    let tenant = TenantSel::parse(segment)
        .ok_or_else(|| Invalid::Page(AadError::unknown_tenant(segment)))?;
    let client_id = param(p, "client_id")
        .ok_or_else(|| Invalid::Page(AadError::missing("client_id")))?
        .to_string();
    let raw_redirect =
        param(p, "redirect_uri").ok_or_else(|| Invalid::Page(AadError::missing("redirect_uri")))?;
    let redirect_uri = url::Url::parse(raw_redirect)
        .ok()
        .filter(|u| u.fragment().is_none())
        .ok_or_else(|| {
            Invalid::Page(AadError::new(
                "invalid_request",
                90102,
                format!("'redirect_uri' value must be a valid absolute URI. Got '{raw_redirect}'."),
            ))
        })?;
    let mode = match param(p, "response_mode") {
        None | Some("query") => ResponseMode::Query,
        Some("fragment") => ResponseMode::Fragment,
        Some("form_post") => ResponseMode::FormPost,
        Some(other) => {
            return Err(Invalid::Page(AadError::malformed(&format!(
                "The response_mode '{other}' is not supported; use query, fragment or form_post."
            ))))
        }
    };
    let state = param(p, "state").map(str::to_string);
    let reply = || ReplyTo {
        redirect_uri: redirect_uri.clone(),
        mode,
        state: state.clone(),
        tenant,
    };
    let redirect_err = |e: AadError| Invalid::Redirect(Box::new((e, reply())));
    match param(p, "response_type") {
        None => return Err(redirect_err(AadError::missing("response_type"))),
        Some("code") => {}
        Some(other) => {
            return Err(redirect_err(AadError::new(
                "unsupported_response_type",
                700054,
                format!("response_type '{other}' is not enabled for the application."),
            )))
        }
    }
    let scope = param(p, "scope").ok_or_else(|| redirect_err(AadError::missing("scope")))?;
    Scopes::parse(scope, segment).map_err(redirect_err)?;
    let challenge = param(p, "code_challenge").ok_or_else(|| {
        redirect_err(AadError::new(
            "invalid_request",
            900144,
            "The request body must contain the following parameter: 'code_challenge'. \
             (The sandbox requires PKCE with S256 for every authorization request.)",
        ))
    })?;
    match param(p, "code_challenge_method") {
        Some("S256") => {}
        other => {
            return Err(redirect_err(AadError::malformed(&format!(
                "The code_challenge_method '{}' is not supported: the sandbox accepts only S256.",
                other.unwrap_or("plain")
            ))))
        }
    }
    let well_formed = challenge.len() == 43
        && challenge
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_');
    if !well_formed {
        return Err(redirect_err(AadError::new(
            "invalid_request",
            501491,
            "Invalid size of Code_Challenge parameter.",
        )));
    }
    let prompt = param(p, "prompt").map(str::to_string);
    if let Some(pr) = &prompt {
        if !["login", "select_account", "consent", "none"].contains(&pr.as_str()) {
            return Err(redirect_err(AadError::malformed(&format!(
                "The prompt value '{pr}' is not supported; use login, select_account, consent or none."
            ))));
        }
    }
    let claims = param(p, "claims").map(str::to_string);
    if let Some(c) = &claims {
        if !matches!(
            serde_json::from_str::<serde_json::Value>(c),
            Ok(serde_json::Value::Object(_))
        ) {
            return Err(redirect_err(AadError::malformed(
                "The claims parameter is not a valid JSON object.",
            )));
        }
    }
    Ok(AuthRequest {
        tenant_segment: segment.to_string(),
        tenant,
        client_id,
        redirect_uri,
        redirect_uri_raw: raw_redirect.to_string(),
        response_mode: mode,
        scope: scope.to_string(),
        state,
        nonce: param(p, "nonce").map(str::to_string),
        code_challenge: challenge.to_string(),
        prompt,
        login_hint: param(p, "login_hint").map(str::to_string),
        domain_hint: param(p, "domain_hint").map(str::to_string),
        claims,
    })
}

/// The request's parameters as (name, value) pairs, for hidden fields and links.
fn request_pairs(r: &AuthRequest) -> Vec<(String, String)> {
    let mut v: Vec<(String, String)> = vec![
        ("client_id".into(), r.client_id.clone()),
        ("redirect_uri".into(), r.redirect_uri_raw.clone()),
        ("response_type".into(), "code".into()),
        ("scope".into(), r.scope.clone()),
        ("code_challenge".into(), r.code_challenge.clone()),
        ("code_challenge_method".into(), "S256".into()),
    ];
    let mode = match r.response_mode {
        ResponseMode::Query => None,
        ResponseMode::Fragment => Some("fragment"),
        ResponseMode::FormPost => Some("form_post"),
    };
    let optional = [
        ("response_mode", mode.map(str::to_string)),
        ("state", r.state.clone()),
        ("nonce", r.nonce.clone()),
        ("prompt", r.prompt.clone()),
        ("login_hint", r.login_hint.clone()),
        ("domain_hint", r.domain_hint.clone()),
        ("claims", r.claims.clone()),
    ];
    for (k, val) in optional {
        if let Some(val) = val {
            v.push((k.to_string(), val));
        }
    }
    v
}

fn reply_to(r: &AuthRequest) -> ReplyTo {
    ReplyTo {
        redirect_uri: r.redirect_uri.clone(),
        mode: r.response_mode,
        state: r.state.clone(),
        tenant: r.tenant,
    }
}

/// The authorization response's `iss` (RFC 9207): the issuer of the tenant that answers,
/// as in its ID tokens; a multi-tenant authority that knows no user yet answers with its
/// discovery issuer (the `{tenantid}` template). `None`: no `iss` (a fault).
fn response_issuer(st: &AppState, tenant: TenantSel, user: Option<&User>) -> Option<String> {
    let tid = tenant.issuer_tenant_id().or(user.map(|u| u.tenant_id));
    match st.faults().response_iss {
        None => Some(match tid {
            Some(t) => st.issuer(t),
            None => issuer_template(st),
        }),
        Some(ResponseIss::Missing) => None,
        Some(ResponseIss::Wrong) => Some(format!(
            "https://sts.sandbox.invalid/{}/v2.0",
            tid.unwrap_or("{tenantid}")
        )),
    }
}

/// Sends the authorization response (code or error) the way `response_mode` asks, with
/// `state` and `iss`; `user` is who signed in, when known.
fn reply(
    st: &AppState,
    to: &ReplyTo,
    user: Option<&User>,
    mut fields: Vec<(String, String)>,
) -> Response {
    if let Some(s) = &to.state {
        fields.push(("state".into(), s.clone()));
    }
    if let Some(iss) = response_issuer(st, to.tenant, user) {
        fields.push(("iss".into(), iss));
    }
    let mut target = to.redirect_uri.clone();
    match to.mode {
        ResponseMode::FormPost => {
            return html(StatusCode::OK, pages::form_post(target.as_str(), &fields))
        }
        ResponseMode::Query => {
            target.query_pairs_mut().extend_pairs(fields.iter());
        }
        ResponseMode::Fragment => {
            let frag = url::form_urlencoded::Serializer::new(String::new())
                .extend_pairs(fields.iter())
                .finish();
            target.set_fragment(Some(&frag));
        }
    }
    let mut resp = StatusCode::FOUND.into_response();
    if let Ok(v) = HeaderValue::from_str(target.as_str()) {
        resp.headers_mut().insert(header::LOCATION, v);
    }
    resp.headers_mut().insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("no-store, no-cache"),
    );
    resp
}

fn reply_error(
    st: &AppState,
    to: &ReplyTo,
    user: Option<&User>,
    e: &AadError,
    d: &Diag,
) -> Response {
    tracing::info!(
        error = e.error,
        code = e.code,
        "authorization error sent to the client"
    );
    let mut fields = vec![
        ("error".to_string(), e.error.to_string()),
        ("error_description".to_string(), e.description(d)),
        (
            "error_uri".to_string(),
            format!("{}error?code={}", st.base, e.code),
        ),
    ];
    if let Some(s) = e.suberror {
        fields.insert(1, ("error_subcode".to_string(), s.to_string()));
    }
    let mut r = reply(st, to, user, fields);
    d.apply(&mut r);
    r
}

fn invalid_response(st: &AppState, inv: Invalid, d: &Diag) -> Response {
    match inv {
        Invalid::Page(e) => {
            tracing::info!(
                error = e.error,
                code = e.code,
                "invalid authorization request"
            );
            error_page(&e, d)
        }
        Invalid::Redirect(b) => reply_error(st, &b.1, None, &b.0, d),
    }
}

fn session_user(st: &AppState, headers: &HeaderMap) -> Option<&'static User> {
    let sid = cookie(headers, SESSION_COOKIE)?;
    let store = st.store();
    store
        .sessions
        .get(&digest_hex(&sid))
        .filter(|s| now_secs() - s.created < SESSION_LIFETIME_SECS)
        .and_then(|s| user_by_oid(&s.user_oid))
}

fn consent_items(r: &AuthRequest) -> Vec<(String, String, String)> {
    crate::scopes::consent_items(&r.scope, &r.tenant_segment)
}

fn all_consented(st: &AppState, r: &AuthRequest, user: &User) -> bool {
    if st.is_family(&r.client_id) {
        return true;
    }
    let store = st.store();
    consent_items(r)
        .iter()
        .filter(|(key, _, _)| !key.is_empty())
        .all(|(key, _, _)| store.consented(user.oid, &r.client_id, key))
}

fn start(
    st: &AppState,
    segment: &str,
    pairs: &[(String, String)],
    headers: &HeaderMap,
) -> Response {
    let d = Diag::from_headers(headers);
    let req = match validate(segment, pairs) {
        Ok(r) => r,
        Err(inv) => return invalid_response(st, inv, &d),
    };
    if st.faults().ipc_probe_page {
        return html(
            StatusCode::OK,
            include_str!("assets/ipc_probe.html").to_string(),
        );
    }
    if st.faults().hostile_navigation_page {
        return html(
            StatusCode::OK,
            include_str!("assets/hostile_navigation.html").to_string(),
        );
    }
    let session = session_user(st, headers).filter(|u| req.tenant.allows(u));
    let hint_matches = |u: &User| {
        req.login_hint
            .as_deref()
            .is_none_or(|h| h.trim().eq_ignore_ascii_case(u.login))
    };
    match req.prompt.as_deref() {
        Some("login") | Some("select_account") => {
            let prefill = req
                .login_hint
                .clone()
                .or_else(|| session.map(|u| u.login.to_string()))
                .unwrap_or_default();
            sign_in_response(&req, &prefill, None)
        }
        Some("none") => match session {
            Some(u) if hint_matches(u) => {
                if all_consented(st, &req, u) {
                    issue_code(st, &req, u, &d)
                } else {
                    let e = AadError::new(
                        "consent_required",
                        65001,
                        format!(
                            "The user or administrator has not consented to use the application with ID \
                             '{}'. Send an interactive authorization request for this user and resource.",
                            req.client_id
                        ),
                    );
                    reply_error(st, &reply_to(&req), Some(u), &e, &d)
                }
            }
            _ => {
                let e = AadError::new(
                    "login_required",
                    50058,
                    "A silent sign-in request was sent but no user is signed in.",
                );
                reply_error(st, &reply_to(&req), None, &e, &d)
            }
        },
        Some("consent") => match session {
            Some(u) if hint_matches(u) => consent_response(st, &req, u, None),
            _ => sign_in_response(&req, req.login_hint.as_deref().unwrap_or(""), None),
        },
        _ => match session {
            Some(u) if hint_matches(u) => {
                if all_consented(st, &req, u) {
                    tracing::info!(user = u.login, client_id = %req.client_id, "single sign-on");
                    issue_code(st, &req, u, &d)
                } else {
                    consent_response(st, &req, u, None)
                }
            }
            _ => sign_in_response(&req, req.login_hint.as_deref().unwrap_or(""), None),
        },
    }
}

fn authorize_path(r: &AuthRequest) -> String {
    format!("/{}/oauth2/v2.0/authorize", r.tenant_segment)
}

fn sign_in_response(r: &AuthRequest, login: &str, error: Option<&str>) -> Response {
    let action = authorize_path(r);
    let mut users = r.tenant.users();
    if let Some(dh) = r.domain_hint.as_deref() {
        let hinted: Vec<&'static User> = users
            .iter()
            .copied()
            .filter(|u| {
                u.login
                    .rsplit_once('@')
                    .is_some_and(|(_, dom)| dom.eq_ignore_ascii_case(dh))
            })
            .collect();
        if !hinted.is_empty() {
            users = hinted;
        }
    }
    let accounts = users
        .into_iter()
        .map(|u| {
            let mut pairs: Vec<(String, String)> = request_pairs(r)
                .into_iter()
                .filter(|(k, _)| k != "login_hint")
                .collect();
            pairs.push(("login_hint".into(), u.login.to_string()));
            let q = url::form_urlencoded::Serializer::new(String::new())
                .extend_pairs(pairs.iter())
                .finish();
            AccountEntry {
                user: u,
                link: Some(format!("{action}?{q}")),
            }
        })
        .collect();
    let mut hidden = request_pairs(r);
    hidden.insert(0, ("step".into(), "credentials".into()));
    let app = client_display_name(&r.client_id);
    let note = format!("Signing in through the '{}' authority.", r.tenant_segment);
    let page = pages::sign_in(&pages::SignIn {
        action: &action,
        hidden,
        app_name: &app,
        login,
        error,
        accounts,
        note: Some(&note),
    });
    html(StatusCode::OK, page)
}

fn consent_response(
    st: &AppState,
    r: &AuthRequest,
    user: &'static User,
    cookie: Option<String>,
) -> Response {
    let ticket = random_token("", 32);
    {
        let mut store = st.store();
        store.purge();
        store.pending.insert(
            digest_hex(&ticket),
            Pending {
                user_oid: user.oid.to_string(),
                kind: PendingKind::Authorize(Box::new(r.clone())),
                created: now_secs(),
            },
        );
    }
    let app = client_display_name(&r.client_id);
    let scopes = consent_items(r)
        .into_iter()
        .map(|(_, desc, s)| (desc, s))
        .collect();
    let page = pages::consent(&pages::Consent {
        action: &authorize_path(r),
        hidden: vec![("step".into(), "consent".into()), ("ticket".into(), ticket)],
        app_name: &app,
        user,
        scopes,
    });
    let mut resp = html(StatusCode::OK, page);
    if let Some(c) = cookie {
        if let Ok(v) = HeaderValue::from_str(&c) {
            resp.headers_mut().append(header::SET_COOKIE, v);
        }
    }
    resp
}

/// Checks a typed login and password against the directory and the authority.
pub fn check_credentials(
    tenant: &TenantSel,
    segment: &str,
    login: &str,
    password: &str,
) -> Result<&'static User, String> {
    if login.trim().is_empty() {
        return Err("Enter a valid email address or username.".into());
    }
    let Some(user) = user_by_login(login) else {
        return Err(format!(
            "We couldn't find an account with that username. Try another, or use one of the demo \
             accounts below. (AADSTS50034: The user account {} does not exist in the directory.)",
            login.trim()
        ));
    };
    if !tenant.allows(user) {
        return Err(format!(
            "AADSTS50020: User account '{}' from identity provider does not exist in tenant '{segment}' \
             and cannot access the application in that tenant.",
            user.login
        ));
    }
    if password != DEMO_PASSWORD {
        return Err(
            "Your account or password is incorrect. (AADSTS50126: Error validating credentials due to \
             invalid username or password.)"
                .into(),
        );
    }
    Ok(user)
}

/// Creates an SSO session and returns its `Set-Cookie` value: a cookie that lasts as long as
/// the session (12 h), so a browser keeps it on disk, as Entra's `ESTSAUTHPERSISTENT` after
/// "Stay signed in".
pub fn new_session(st: &AppState, user: &User) -> String {
    let sid = random_token("", 32);
    st.store().sessions.insert(
        digest_hex(&sid),
        Session {
            user_oid: user.oid.to_string(),
            created: now_secs(),
        },
    );
    format!(
        "{SESSION_COOKIE}={sid}; Path=/; Max-Age={SESSION_LIFETIME_SECS}; HttpOnly; SameSite=Lax"
    )
}

fn credentials_step(
    st: &AppState,
    segment: &str,
    form: &[(String, String)],
    headers: &HeaderMap,
) -> Response {
    let d = Diag::from_headers(headers);
    let req = match validate(segment, form) {
        Ok(r) => r,
        Err(inv) => return invalid_response(st, inv, &d),
    };
    let login = param(form, "login").unwrap_or("");
    let password = form
        .iter()
        .find(|(k, _)| k == "password")
        .map(|(_, v)| v.as_str())
        .unwrap_or("");
    match check_credentials(&req.tenant, &req.tenant_segment, login, password) {
        Ok(user) => {
            tracing::info!(user = user.login, client_id = %req.client_id, "password accepted");
            let cookie = new_session(st, user);
            consent_response(st, &req, user, Some(cookie))
        }
        Err(msg) => {
            tracing::info!("sign-in refused: {}", msg.split(" (").next().unwrap_or(""));
            sign_in_response(&req, login.trim(), Some(&msg))
        }
    }
}

fn consent_step(st: &AppState, form: &[(String, String)], headers: &HeaderMap) -> Response {
    let d = Diag::from_headers(headers);
    let pending = param(form, "ticket").and_then(|t| st.store().pending.remove(&digest_hex(t)));
    let Some(Pending {
        user_oid,
        kind: PendingKind::Authorize(req),
        ..
    }) = pending
    else {
        return error_page(
            &AadError::malformed(
                "This sign-in page has expired or was already used. Start the sign-in again.",
            ),
            &d,
        );
    };
    let Some(user) = user_by_oid(&user_oid) else {
        return error_page(&AadError::malformed("Unknown user."), &d);
    };
    match param(form, "decision") {
        Some("accept") => {
            {
                let mut store = st.store();
                for (key, _, _) in consent_items(&req) {
                    if !key.is_empty() {
                        store
                            .consents
                            .insert((user.oid.to_string(), req.client_id.clone(), key));
                    }
                }
            }
            tracing::info!(user = user.login, client_id = %req.client_id, "consent granted");
            issue_code(st, &req, user, &d)
        }
        Some("cancel") => {
            let e = AadError::new(
                "access_denied",
                65004,
                "User declined to consent to access the app.",
            )
            .suberror("cancel");
            reply_error(st, &reply_to(&req), Some(user), &e, &d)
        }
        _ => error_page(&AadError::missing("decision"), &d),
    }
}

fn issue_code(st: &AppState, r: &AuthRequest, user: &User, d: &Diag) -> Response {
    let code = random_token("0.A", 96);
    {
        let mut store = st.store();
        store.purge();
        store.codes.insert(
            digest_hex(&code),
            AuthCode {
                client_id: r.client_id.clone(),
                redirect_uri: r.redirect_uri_raw.clone(),
                user_oid: user.oid.to_string(),
                scope: r.scope.clone(),
                nonce: r.nonce.clone(),
                code_challenge: r.code_challenge.clone(),
                issued_at: now_secs(),
                redeemed: false,
            },
        );
    }
    tracing::info!(user = user.login, client_id = %r.client_id, "authorization code issued");
    let mut resp = reply(st, &reply_to(r), Some(user), vec![("code".into(), code)]);
    d.apply(&mut resp);
    resp
}
