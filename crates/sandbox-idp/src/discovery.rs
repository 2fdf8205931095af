//! OpenID Connect discovery, instance discovery and JWKS.

use crate::data::{TenantSel, CONSUMERS};
use crate::errors::{json_response, AadError, Diag};
use crate::state::AppState;
use crate::util::{param, parse_form};
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use serde_json::{json, Value};
use std::sync::Arc;

fn invalid_tenant(st: &AppState, segment: &str, d: &Diag) -> Response {
    let mut e = AadError::unknown_tenant(segment);
    e.error = "invalid_tenant";
    e.json_response(&st.base, d)
}

/// The `{tenantid}` issuer template Entra uses for multi-tenant authorities.
pub(crate) fn issuer_template(st: &AppState) -> String {
    format!("{}{{tenantid}}/v2.0", st.base)
}

pub fn openid_configuration_json(st: &AppState, tenant: TenantSel) -> Value {
    let seg = tenant.endpoint_segment();
    let base = format!("{}{seg}", st.base);
    let issuer = match tenant.issuer_tenant_id() {
        Some(id) => st.issuer(id),
        None => issuer_template(st),
    };
    let region = match tenant {
        TenantSel::Tenant(t) if t.id != CONSUMERS.id => json!("NA"),
        _ => Value::Null,
    };
    json!({
        "token_endpoint": format!("{base}/oauth2/v2.0/token"),
        "token_endpoint_auth_methods_supported": ["client_secret_post", "private_key_jwt", "client_secret_basic"],
        "jwks_uri": format!("{base}/discovery/v2.0/keys"),
        "response_modes_supported": ["query", "fragment", "form_post"],
        "subject_types_supported": ["pairwise"],
        "id_token_signing_alg_values_supported": ["RS256"],
        "response_types_supported": ["code", "id_token", "code id_token", "id_token token"],
        "scopes_supported": ["openid", "profile", "email", "offline_access"],
        "issuer": issuer,
        "authorization_response_iss_parameter_supported": true,
        "request_uri_parameter_supported": false,
        "userinfo_endpoint": format!("{}oidc/userinfo", st.base),
        "authorization_endpoint": format!("{base}/oauth2/v2.0/authorize"),
        "device_authorization_endpoint": format!("{base}/oauth2/v2.0/devicecode"),
        "http_logout_supported": true,
        "frontchannel_logout_supported": true,
        "end_session_endpoint": format!("{base}/oauth2/v2.0/logout"),
        "claims_supported": [
            "sub", "iss", "cloud_instance_name", "cloud_instance_host_name", "cloud_graph_host_name",
            "msgraph_host", "aud", "exp", "iat", "auth_time", "acr", "nonce", "preferred_username",
            "name", "tid", "ver", "at_hash", "c_hash", "email"
        ],
        "kerberos_endpoint": format!("{base}/kerberos"),
        "tenant_region_scope": region,
        "cloud_instance_name": "sandbox.invalid",
        "cloud_graph_host_name": "graph.windows.net",
        "msgraph_host": "graph.microsoft.com",
        "rbac_url": "https://pas.windows.net",
    })
}

pub async fn openid_configuration(
    State(st): State<Arc<AppState>>,
    Path(segment): Path<String>,
    headers: HeaderMap,
) -> Response {
    let d = Diag::from_headers(&headers);
    match TenantSel::parse(&segment) {
        Some(t) => json_response(StatusCode::OK, &openid_configuration_json(&st, t), &d),
        None => invalid_tenant(&st, &segment, &d),
    }
}

pub async fn instance_discovery(
    State(st): State<Arc<AppState>>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Response {
    let d = Diag::from_headers(&headers);
    let q = parse_form(query.unwrap_or_default().as_bytes());
    let Some(endpoint) = param(&q, "authorization_endpoint") else {
        return AadError::missing("authorization_endpoint").json_response(&st.base, &d);
    };
    let parsed = url::Url::parse(endpoint).ok();
    let host = parsed.as_ref().and_then(|u| {
        let h = u.host_str()?;
        Some(match u.port() {
            Some(p) => format!("{h}:{p}"),
            None => h.to_string(),
        })
    });
    if host.as_deref().map(str::to_ascii_lowercase).as_deref() != Some(st.host.as_str()) {
        let e = AadError::new("invalid_instance", 50049, "Unknown or invalid instance.");
        return e.json_response(&st.base, &d);
    }
    let tenant = parsed
        .as_ref()
        .and_then(|u| {
            u.path_segments()?
                .find(|s| !s.is_empty())
                .map(str::to_string)
        })
        .unwrap_or_else(|| "common".to_string());
    let body = json!({
        "tenant_discovery_endpoint": format!("{}{tenant}/v2.0/.well-known/openid-configuration", st.base),
        "api-version": "1.1",
        "metadata": [{
            "preferred_network": st.host,
            "preferred_cache": st.host,
            "aliases": [st.host],
        }],
    });
    json_response(StatusCode::OK, &body, &d)
}

pub async fn keys_for_tenant(
    State(st): State<Arc<AppState>>,
    Path(segment): Path<String>,
    headers: HeaderMap,
) -> Response {
    let d = Diag::from_headers(&headers);
    if TenantSel::parse(&segment).is_none() {
        return invalid_tenant(&st, &segment, &d);
    }
    json_response(StatusCode::OK, &st.keys.jwks(&issuer_template(&st)), &d)
}

pub async fn keys(State(st): State<Arc<AppState>>, headers: HeaderMap) -> Response {
    let d = Diag::from_headers(&headers);
    json_response(StatusCode::OK, &st.keys.jwks(&issuer_template(&st)), &d)
}
