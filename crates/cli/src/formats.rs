//! The shapes `token --output` prints for other programs: Azure CLI's
//! `get-access-token` JSON, a kubectl exec plugin's `ExecCredential`, and shell `export`
//! lines. Each carries the access token: stdout only.

use clap::{Args, ValueEnum};
use serde_json::{json, Value};
use tessera_core::app::AuthResult;
use tessera_core::env::UnixTime;

/// What `token` prints.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    /// Token, expiry, scopes, source and account as JSON.
    Json,
    /// Azure CLI's `az account get-access-token --output json` shape.
    Az,
    /// A kubectl exec plugin's answer (reads KUBERNETES_EXEC_INFO).
    ExecCredential,
    /// Shell `export` lines: TESSERA_ACCESS_TOKEN, TESSERA_TOKEN_EXPIRES_ON (for eval).
    Env,
}

/// `token`'s output format and Azure CLI's flags.
#[derive(Debug, Clone, Default, Args)]
pub struct TokenOutput {
    /// How to print the token: json, az (Azure CLI's get-access-token JSON),
    /// exec-credential (a kubectl exec plugin's answer), env (shell export lines for
    /// eval). Default: the bare token.
    #[arg(long, short = 'o', value_enum, value_name = "FORMAT")]
    pub output: Option<OutputFormat>,

    /// As Azure CLI's --resource: the scope RESOURCE/.default.
    #[arg(long, value_name = "RESOURCE", conflicts_with = "scopes")]
    pub resource: Option<String>,

    /// As Azure CLI's --tenant: a token issued by this tenant (id or domain) instead of
    /// the profile's authority's (Entra ID authorities only).
    #[arg(long, value_name = "TENANT")]
    pub tenant: Option<String>,
}

pub const EXEC_INFO_ENV: &str = "KUBERNETES_EXEC_INFO";
const EXEC_API_V1: &str = "client.authentication.k8s.io/v1";
const EXEC_API_V1BETA1: &str = "client.authentication.k8s.io/v1beta1";

/// What kubectl tells an exec plugin in `KUBERNETES_EXEC_INFO`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecInfo {
    /// The apiVersion the answer must carry (the kubeconfig's `exec.apiVersion`).
    pub api_version: String,
    /// Whether the plugin may interact with the user (kubectl's stdin is a terminal).
    pub interactive: bool,
}

impl ExecInfo {
    /// From `KUBERNETES_EXEC_INFO`; without it (run by hand) v1, interactive when stdin
    /// is a terminal.
    pub fn from_env() -> Result<ExecInfo, String> {
        match std::env::var(EXEC_INFO_ENV) {
            Ok(raw) if !raw.trim().is_empty() => Self::parse(&raw),
            _ => Ok(ExecInfo {
                api_version: EXEC_API_V1.into(),
                interactive: std::io::IsTerminal::is_terminal(&std::io::stdin()),
            }),
        }
    }

    pub fn parse(raw: &str) -> Result<ExecInfo, String> {
        let bad = |why: &str| format!("{EXEC_INFO_ENV} is not a kubectl ExecCredential: {why}");
        let v: Value = serde_json::from_str(raw).map_err(|e| bad(&e.to_string()))?;
        if v["kind"] != "ExecCredential" {
            return Err(bad("kind is not ExecCredential"));
        }
        let api_version = match v["apiVersion"].as_str() {
            Some(a @ (EXEC_API_V1 | EXEC_API_V1BETA1)) => a.to_string(),
            Some(other) => {
                return Err(bad(&format!(
                    "apiVersion {other:?} is not {EXEC_API_V1} or {EXEC_API_V1BETA1}"
                )))
            }
            None => return Err(bad("apiVersion is missing")),
        };
        let interactive = match &v["spec"]["interactive"] {
            Value::Bool(b) => *b,
            Value::Null => false,
            _ => return Err(bad("spec.interactive is not true or false")),
        };
        Ok(ExecInfo {
            api_version,
            interactive,
        })
    }
}

/// The `ExecCredential` kubectl reads from an exec plugin's stdout.
pub fn exec_credential_json(api_version: &str, r: &AuthResult) -> Value {
    json!({
        "apiVersion": api_version,
        "kind": "ExecCredential",
        "status": {
            "token": r.access_token.secret(),
            "expirationTimestamp": rfc3339(r.expires_on),
        },
    })
}

/// Azure CLI's `az account get-access-token --output json`, field for field.
pub fn az_json(r: &AuthResult, tenant: &str, subscription: Option<&str>) -> Value {
    let mut v = json!({
        "accessToken": r.access_token.secret(),
        "expiresOn": local_time(r.expires_on),
        "expires_on": r.expires_on,
    });
    if let Some(s) = subscription {
        v["subscription"] = Value::String(s.to_string());
    }
    v["tenant"] = Value::String(tenant.to_string());
    v["tokenType"] = Value::String(r.token_type.clone());
    v
}

/// `export` lines for a POSIX shell's `eval`.
pub fn env_lines(r: &AuthResult) -> String {
    format!(
        "export TESSERA_ACCESS_TOKEN={}\nexport TESSERA_TOKEN_EXPIRES_ON={}\n",
        shell_quote(r.access_token.secret()),
        shell_quote(&r.expires_on.to_string())
    )
}

/// One word for a POSIX shell: single-quoted unless made only of safe characters.
pub fn shell_quote(s: &str) -> String {
    let safe = !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./:=@%+,".contains(c));
    if safe {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

/// The tenant a token was issued by, as Azure CLI reports it: the access token's `tid`,
/// else the ID token's, else the account's home tenant.
pub fn tenant_of(r: &AuthResult) -> String {
    let from_access_token = tessera_core::jwt::decode_jws(r.access_token.secret())
        .ok()
        .and_then(|(_, claims)| {
            claims
                .get("tid")
                .and_then(Value::as_str)
                .map(str::to_string)
        });
    from_access_token
        .or_else(|| {
            r.id_token_claims
                .as_ref()
                .and_then(|c| c.get("tid").and_then(Value::as_str).map(str::to_string))
        })
        .or_else(|| {
            r.account
                .home_account_id
                .split_once('.')
                .map(|(_, utid)| utid.to_string())
        })
        .unwrap_or_else(|| r.account.realm.clone())
}

/// RFC 3339 in UTC, e.g. `2026-01-02T03:04:05Z`.
pub fn rfc3339(t: UnixTime) -> String {
    let dt =
        time::OffsetDateTime::from_unix_timestamp(t).unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    dt.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|_| "1970-01-01T00:00:00Z".into())
}

/// Local time as Azure CLI prints `expiresOn`: `YYYY-MM-DD HH:MM:SS.ffffff` (Python's
/// `datetime.fromtimestamp`, so the zone's offset at that instant).
pub fn local_time(t: UnixTime) -> String {
    let (y, mo, d, h, mi, s) = local_fields(t);
    format!("{y:04}-{mo:02}-{d:02} {h:02}:{mi:02}:{s:02}.000000")
}

#[cfg(unix)]
fn local_fields(t: UnixTime) -> (i64, u32, u32, u32, u32, u32) {
    let tt = t as libc::time_t;
    // SAFETY: localtime_r writes only into `tm`, which lives on this stack frame.
    let mut tm: libc::tm = unsafe { std::mem::zeroed() };
    let ok = unsafe { !libc::localtime_r(&tt, &mut tm).is_null() };
    if !ok {
        return utc_fields(t);
    }
    (
        i64::from(tm.tm_year) + 1900,
        (tm.tm_mon + 1) as u32,
        tm.tm_mday as u32,
        tm.tm_hour as u32,
        tm.tm_min as u32,
        tm.tm_sec as u32,
    )
}

#[cfg(not(unix))]
fn local_fields(t: UnixTime) -> (i64, u32, u32, u32, u32, u32) {
    let offset = time::UtcOffset::current_local_offset().unwrap_or(time::UtcOffset::UTC);
    let shifted = t.saturating_add(i64::from(offset.whole_seconds()));
    utc_fields(shifted)
}

fn utc_fields(t: UnixTime) -> (i64, u32, u32, u32, u32, u32) {
    let dt =
        time::OffsetDateTime::from_unix_timestamp(t).unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    (
        i64::from(dt.year()),
        u8::from(dt.month()).into(),
        dt.day().into(),
        dt.hour().into(),
        dt.minute().into(),
        dt.second().into(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use tessera_core::app::{Account, TokenSource};
    use tessera_core::scopes::ScopeSet;
    use tessera_core::secret::AccessToken;

    fn result(token: &str) -> AuthResult {
        AuthResult {
            access_token: AccessToken::new(token.into()),
            token_type: "Bearer".into(),
            expires_on: 1_767_323_045,
            refresh_on: None,
            scopes: ScopeSet::parse("User.Read"),
            token_source: TokenSource::Cache,
            account: Account {
                home_account_id: "uid.7f8d8c66-3b8e-4d3a-9a55-2c0d1c6b7a01".into(),
                environment: "login.microsoftonline.com".into(),
                realm: "common".into(),
                local_account_id: "uid".into(),
                username: "alice@contoso.example".into(),
                name: None,
                authority_type: "MSSTS".into(),
            },
            id_token_claims: None,
        }
    }

    #[test]
    fn exec_credential_has_kubectls_shape() {
        let v = exec_credential_json(EXEC_API_V1, &result("tok"));
        assert_eq!(
            v,
            json!({
                "apiVersion": "client.authentication.k8s.io/v1",
                "kind": "ExecCredential",
                "status": {"token": "tok", "expirationTimestamp": "2026-01-02T03:04:05Z"}
            })
        );
    }

    #[test]
    fn exec_info_is_read_strictly() {
        let info = ExecInfo::parse(
            r#"{"kind":"ExecCredential","apiVersion":"client.authentication.k8s.io/v1","spec":{"interactive":true}}"#,
        )
        .unwrap();
        assert!(info.interactive);
        let old = ExecInfo::parse(
            r#"{"kind":"ExecCredential","apiVersion":"client.authentication.k8s.io/v1beta1","spec":{}}"#,
        )
        .unwrap();
        assert_eq!(old.api_version, EXEC_API_V1BETA1);
        assert!(!old.interactive);
        for bad in [
            "not json",
            r#"{"kind":"Pod","apiVersion":"client.authentication.k8s.io/v1"}"#,
            r#"{"kind":"ExecCredential","apiVersion":"v2"}"#,
            r#"{"kind":"ExecCredential"}"#,
            r#"{"kind":"ExecCredential","apiVersion":"client.authentication.k8s.io/v1","spec":{"interactive":"yes"}}"#,
        ] {
            let e = ExecInfo::parse(bad).unwrap_err();
            assert!(e.starts_with(EXEC_INFO_ENV), "{e}");
        }
    }

    #[test]
    fn az_shape_and_tenant() {
        let r = result("opaque");
        let v = az_json(&r, &tenant_of(&r), Some("sub-1"));
        let keys: Vec<&String> = v.as_object().unwrap().keys().collect();
        assert_eq!(
            keys,
            [
                "accessToken",
                "expiresOn",
                "expires_on",
                "subscription",
                "tenant",
                "tokenType"
            ]
        );
        assert_eq!(v["tenant"], "7f8d8c66-3b8e-4d3a-9a55-2c0d1c6b7a01");
        assert_eq!(v["expires_on"], 1_767_323_045);
        let s = v["expiresOn"].as_str().unwrap();
        assert_eq!(s.len(), "2026-01-02 03:04:05.000000".len(), "{s}");
        assert!(s.ends_with(":05.000000"), "{s}");
        assert!(az_json(&r, "t", None).get("subscription").is_none());
    }

    #[test]
    fn env_lines_survive_the_shell() {
        assert_eq!(shell_quote("abc.DEF-_"), "abc.DEF-_");
        assert_eq!(shell_quote(""), "''");
        assert_eq!(shell_quote("a'b $(x)"), r"'a'\''b $(x)'");
        let text = env_lines(&result("e'vil;$(touch x)"));
        assert_eq!(
            text,
            "export TESSERA_ACCESS_TOKEN='e'\\''vil;$(touch x)'\nexport TESSERA_TOKEN_EXPIRES_ON=1767323045\n"
        );
    }
}
