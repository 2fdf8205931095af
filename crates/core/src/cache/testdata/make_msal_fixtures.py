"""Regenerates the MSAL Python token cache fixtures in this directory.

Run with MSAL Python installed (the fixtures were made with msal 1.39.0):

    python3 -m venv /tmp/msalvenv && /tmp/msalvenv/bin/pip install msal==1.39.0
    /tmp/msalvenv/bin/python make_msal_fixtures.py

It feeds crafted token responses (fake, unsigned tokens; fake tenant and user ids) to
MSAL's own TokenCache.add() / update_rt() and writes SerializableTokenCache.serialize().
"""
import base64
import json
import os
from unittest import mock

import msal
from msal.token_cache import SerializableTokenCache

NOW = 1700000000
HERE = os.path.dirname(os.path.abspath(__file__))

TENANT_A = "11111111-aaaa-4aaa-aaaa-111111111111"
TENANT_B = "22222222-bbbb-4bbb-bbbb-222222222222"
ALICE_OID = "a11ce000-0000-4000-8000-00000000a11c"
BOB_OID = "b0b00000-0000-4000-8000-000000000b0b"
AZ_CLI = "04b07795-8ddb-461a-bbee-02f9e1bf7b46"  # a family (FOCI) client
AZ_PS = "1950a258-227b-4e31-a9cf-717495945fc2"  # another family client
OWN_APP = "c3c3c3c3-0000-4000-8000-0000000000c3"  # not in the family
ENV = "login.microsoftonline.com"


def b64(obj):
    return base64.urlsafe_b64encode(json.dumps(obj).encode()).rstrip(b"=").decode()


def id_token(claims):
    return ".".join([b64({"alg": "none", "typ": "JWT"}), b64(claims), "sig"])


def client_info(uid, utid):
    return b64({"uid": uid, "utid": utid})


def user_claims(oid, tid, username, name, aud):
    return {
        "aud": aud, "iss": "https://login.microsoftonline.com/%s/v2.0" % tid,
        "iat": NOW, "nbf": NOW, "exp": NOW + 3600, "oid": oid, "sub": "sub-" + oid,
        "tid": tid, "preferred_username": username, "name": name, "ver": "2.0",
    }


def event(client_id, tenant, scope, response, grant_type, data=None, **extra):
    e = {
        "client_id": client_id,
        "scope": scope,
        "token_endpoint": "https://%s/%s/oauth2/v2.0/token" % (ENV, tenant),
        "environment": ENV,
        "grant_type": grant_type,
        "response": response,
        "params": {},
        "data": data or {},
    }
    e.update(extra)
    return e


def build():
    cache = SerializableTokenCache()
    # Alice signs in to Azure CLI (a family client) in her home tenant.
    cache.add(event(AZ_CLI, TENANT_A, ["User.Read", "profile", "openid", "email"], {
        "token_type": "Bearer", "scope": "User.Read profile openid email",
        "expires_in": 4493, "ext_expires_in": 4493, "refresh_in": 2246,
        "access_token": "at-alice-cli-graph-secret",
        "refresh_token": "rt-alice-cli-secret-1",
        "id_token": id_token(user_claims(ALICE_OID, TENANT_A, "alice@contoso.example", "Alice Example", AZ_CLI)),
        "client_info": client_info(ALICE_OID, TENANT_A),
        "foci": "1",
    }, "authorization_code"), now=NOW)
    # ...then in a second tenant (a guest account): another realm, another RT key (MSAL
    # Python keys RTs by target too), an expires_in given as a string (AAD v1 style).
    cache.add(event(AZ_CLI, TENANT_B, ["https://management.core.windows.net//user_impersonation"], {
        "token_type": "Bearer",
        "expires_in": "3599", "ext_expires_in": "3599",
        "access_token": "at-alice-cli-arm-tenant-b-secret",
        "refresh_token": "rt-alice-cli-secret-2",
        "id_token": id_token(user_claims(ALICE_OID, TENANT_B, "alice@contoso.example", "Alice Example", AZ_CLI)),
        "client_info": client_info(ALICE_OID, TENANT_A),
        "foci": "1",
    }, "authorization_code"), now=NOW + 10)
    # Alice uses Azure PowerShell through the device code flow.
    cache.add(event(AZ_PS, TENANT_A, ["https://management.core.windows.net//.default"], {
        "token_type": "Bearer", "scope": "https://management.core.windows.net//.default",
        "expires_in": 3600,
        "access_token": "at-alice-ps-arm-secret",
        "refresh_token": "rt-alice-ps-secret",
        "id_token": id_token(user_claims(ALICE_OID, TENANT_A, "alice@contoso.example", "Alice Example", AZ_PS)),
        "client_info": client_info(ALICE_OID, TENANT_A),
        "foci": "1",
    }, "urn:ietf:params:oauth:grant-type:device_code"), now=NOW + 20)
    # Bob (a name with non-ASCII letters) signs in to a non-family app; the token is
    # bound to a key (key_id is the one request field MSAL copies into the AT).
    cache.add(event(OWN_APP, TENANT_A, ["Mail.Read", "openid", "profile", "offline_access"], {
        "token_type": "Bearer", "scope": "Mail.Read openid profile offline_access",
        "expires_in": 3600,
        "access_token": "at-bob-own-mail-secret",
        "refresh_token": "rt-bob-own-secret-1",
        "id_token": id_token(user_claims(BOB_OID, TENANT_A, "zo\u00eb@contoso.example", "Zo\u00eb \u00dcnicode \u2603", OWN_APP)),
        "client_info": client_info(BOB_OID, TENANT_A),
    }, "authorization_code", data={"key_id": "kid-0001"}), now=NOW + 30)
    # Bob's app refreshes: the refresh grant writes a new AT (no account, no RT) and
    # MSAL's update_rt() rotates the redeemed RT in place.
    cache.add(event(OWN_APP, TENANT_A, ["Calendars.Read"], {
        "token_type": "Bearer", "scope": "Calendars.Read",
        "expires_in": 3600,
        "access_token": "at-bob-own-calendar-secret",
        "id_token": id_token(user_claims(BOB_OID, TENANT_A, "zo\u00eb@contoso.example", "Zo\u00eb \u00dcnicode \u2603", OWN_APP)),
        "client_info": client_info(BOB_OID, TENANT_A),
    }, "refresh_token", skip_account_creation=True), now=NOW + 40)
    bobs_rt = next(iter(cache.search(
        SerializableTokenCache.CredentialType.REFRESH_TOKEN,
        query={"home_account_id": "%s.%s" % (BOB_OID, TENANT_A)})))
    with mock.patch("msal.token_cache.time.time", return_value=NOW + 41):
        cache.update_rt(bobs_rt, "rt-bob-own-secret-2")
    # A token requested with an extra body parameter (fmi_path) gets an extended cache
    # key ("atext" in the key, ext_cache_key in the entry).
    cache.add(event(OWN_APP, TENANT_A, ["api://fmi/.default"], {
        "token_type": "Bearer", "scope": "api://fmi/.default",
        "expires_in": 3600,
        "access_token": "at-bob-own-fmi-secret",
        "client_info": client_info(BOB_OID, TENANT_A),
    }, "refresh_token", data={"fmi_path": "SomeFmiPath/FmiCredentialPath"},
        skip_account_creation=True), now=NOW + 50)
    # An app-only token (client credentials): no client_info, no ID token, so MSAL
    # writes home_account_id null.
    cache.add(event(OWN_APP, TENANT_A, ["https://graph.microsoft.com/.default"], {
        "token_type": "Bearer", "expires_in": 3599,
        "access_token": "at-app-only-secret",
    }, "client_credentials"), now=NOW + 60)
    # ADFS: no client_info, so the home account id is the ID token's sub, realm "adfs".
    cache.add({
        "client_id": "adfs-client", "scope": ["openid", "profile"],
        "token_endpoint": "https://fs.contoso.example/adfs/oauth2/token",
        "environment": "fs.contoso.example",
        "grant_type": "authorization_code",
        "response": {
            "token_type": "Bearer", "expires_in": 3600,
            "access_token": "at-adfs-secret", "refresh_token": "rt-adfs-secret",
            "id_token": id_token({"sub": "adfs-sub-1", "upn": "carol@contoso.example",
                                  "aud": "adfs-client", "iss": "https://fs.contoso.example/adfs",
                                  "iat": NOW, "exp": NOW + 3600}),
        },
        "params": {}, "data": {},
    }, now=NOW + 70)
    return cache


def main():
    cache = build()
    with open(os.path.join(HERE, "msal_python_cache.json"), "w") as f:
        f.write(cache.serialize())
    # The same cache with what other MSAL SDKs or future versions may add: an unknown
    # top-level section, unknown fields, a time written as a number, a field absent.
    data = json.loads(cache.serialize())
    data["FutureSection"] = {"k": {"anything": [1, 2, {"x": None}]}}
    at_key = next(k for k in data["AccessToken"] if "at-alice-cli-graph" in data["AccessToken"][k]["secret"])
    data["AccessToken"][at_key]["future_field"] = {"nested": True}
    data["AccessToken"][at_key]["cached_at"] = NOW  # a number instead of a string
    rt_key = next(k for k in data["RefreshToken"] if data["RefreshToken"][k]["client_id"] == AZ_PS)
    del data["RefreshToken"][rt_key]["target"]  # other SDKs may omit it
    data["RefreshToken"][rt_key]["family_id"] = "1"
    acct_key = next(iter(data["Account"]))
    data["Account"][acct_key]["client_info"] = client_info(ALICE_OID, TENANT_A)
    data["IdToken"]["not-an-entry"] = "just a string"
    with open(os.path.join(HERE, "msal_python_cache_foreign.json"), "w") as f:
        f.write(json.dumps(data, indent=4))


if __name__ == "__main__":
    main()
