"""What the MSAL Python side of Tessera's benchmarks shares: the app, built the way an
app on this cache would build it, without network.

MSAL Python fetches the tenant's OpenID configuration when a PublicClientApplication is
made (always; instance discovery is off and login.microsoftonline.com is a known host).
This machine has no internet, so the app gets an HTTP client that answers that one GET
from memory, with Entra's document for the tenant, and raises on any other request: a
cache hit never reaches it, and a benchmark that would go to the network fails loudly.
This favours MSAL (no network round trip, no TLS) and is the only difference from a
real run. Tessera needs no discovery for a cache hit on a known Microsoft host.
"""

import json

import msal


class _Response:
    def __init__(self, status_code, text):
        self.status_code = status_code
        self.text = text
        self.headers = {"Content-Type": "application/json"}

    def raise_for_status(self):
        if self.status_code >= 400:
            raise RuntimeError("HTTP %d" % self.status_code)


class DiscoveryOnlyHttpClient:
    """Answers GET .../v2.0/.well-known/openid-configuration; refuses everything else."""

    def __init__(self, authority):
        self.authority = authority.rstrip("/")
        tenant = self.authority.rsplit("/", 1)[1]
        base = self.authority
        self.document = json.dumps({
            "token_endpoint": base + "/oauth2/v2.0/token",
            "token_endpoint_auth_methods_supported": [
                "client_secret_post", "private_key_jwt", "client_secret_basic"],
            "jwks_uri": base + "/discovery/v2.0/keys",
            "response_modes_supported": ["query", "fragment", "form_post"],
            "subject_types_supported": ["pairwise"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "response_types_supported": ["code", "id_token", "code id_token", "id_token token"],
            "scopes_supported": ["openid", "profile", "email", "offline_access"],
            "issuer": "https://login.microsoftonline.com/%s/v2.0" % tenant,
            "request_uri_parameter_supported": False,
            "userinfo_endpoint": "https://graph.microsoft.com/oidc/userinfo",
            "authorization_endpoint": base + "/oauth2/v2.0/authorize",
            "device_authorization_endpoint": base + "/oauth2/v2.0/devicecode",
            "http_logout_supported": True,
            "frontchannel_logout_supported": True,
            "end_session_endpoint": base + "/oauth2/v2.0/logout",
            "claims_supported": ["sub", "iss", "aud", "exp", "iat", "nonce", "name", "tid"],
            "kerberos_endpoint": base + "/kerberos",
            "tenant_region_scope": "NA",
            "cloud_instance_name": "microsoftonline.com",
            "cloud_graph_host_name": "graph.windows.net",
            "msgraph_host": "graph.microsoft.com",
            "rbac_url": "https://pas.windows.net",
        })

    def get(self, url, params=None, headers=None, **kwargs):
        if url == self.authority + "/v2.0/.well-known/openid-configuration":
            return _Response(200, self.document)
        raise RuntimeError("benchmark: MSAL made an unexpected GET %s" % url)

    def post(self, url, params=None, data=None, headers=None, **kwargs):
        raise RuntimeError("benchmark: MSAL made an unexpected POST %s" % url)

    def close(self):
        pass


def make_app(meta, cache):
    return msal.PublicClientApplication(
        meta["client_id"],
        authority=meta["authority"],
        token_cache=cache,
        http_client=DiscoveryOnlyHttpClient(meta["authority"]),
        instance_discovery=False,
    )
