"""Generates MSAL Python token caches for Tessera's benchmarks, with MSAL Python's own
TokenCache.add() (msal 1.39), so keys, fields and layout are exactly what MSAL writes.

    tests/msal-python/.venv/bin/python bench/gen_cache.py OUT_DIR [--sizes 100 1000 10000]

For each size N it writes OUT_DIR/msal-N.json: 1,000 accounts (`--accounts`) (Account, IdToken,
RefreshToken with family_id "1", AppMetadata) of one tenant and one client (Azure CLI's
public client id), and N access tokens spread over them: account i has
max(1, N // 1000) tokens when i < N (so 100 tokens: accounts 0-99 one each; 10,000: every
account ten), for resource (i + k) % 10 of ten Azure resources, two scopes each.
Tokens look real: access and ID tokens are RS256-shaped JWTs (header.claims.signature,
about 1.5 kB and 1.2 kB), refresh tokens are 1 kB opaque strings like Entra's, every
one distinct. Access tokens are valid for 24 hours from generation (a benchmark run must
not see them expire; Entra's last 60-90 minutes, which changes nothing measured here).

OUT_DIR/meta.json names the data: authority, client id, the account the benchmarks use
(account 42, which owns at least one token at every size), the requested scopes for an
exact hit (both scopes of a cached target) and a subset hit (one of them).
"""

import argparse
import base64
import json
import os
import random
import time

import msal

TENANT = "72f988bf-86f1-41af-91ab-2d7cd011db47"
CLIENT_ID = "04b07795-8ddb-461a-bbee-02f9e1bf7b46"  # Azure CLI's public client
ENVIRONMENT = "login.microsoftonline.com"
AUTHORITY = "https://%s/%s" % (ENVIRONMENT, TENANT)
TOKEN_ENDPOINT = AUTHORITY + "/oauth2/v2.0/token"
ACCOUNTS = 1000
BENCH_ACCOUNT = 42
BENCH_RESOURCE = 2  # account 42 holds a token for resource (42 + 0) % 10 == 2 at every size
LIFETIME = 24 * 3600

RESOURCES = [
    ("https://graph.microsoft.com", ["User.Read", "Mail.Read"]),
    ("https://management.core.windows.net/", ["user_impersonation", "Reader"]),
    ("https://vault.azure.net", ["user_impersonation", "Keys.Read"]),
    ("https://storage.azure.com", ["user_impersonation", "Blob.Read"]),
    ("https://database.windows.net", ["user_impersonation", "Data.Read"]),
    ("https://outlook.office.com", ["Mail.Send", "Mail.ReadWrite"]),
    ("https://analysis.windows.net/powerbi/api", ["Dataset.Read.All", "Report.Read.All"]),
    ("https://api.loganalytics.io", ["Data.Read", "user_impersonation"]),
    ("https://batch.core.windows.net", ["user_impersonation", "Jobs.Read"]),
    ("https://cognitiveservices.azure.com", ["user_impersonation", "Models.Read"]),
]


def scopes_of(resource):
    base, names = RESOURCES[resource]
    return ["%s/%s" % (base, n) for n in names]


def b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def jwt(rng, claims, header=None):
    header = header or {"typ": "JWT", "alg": "RS256", "kid": "L1KfKFI_jnXbwWc22xZxw1sUHH0"}
    signature = bytes(rng.getrandbits(8) for _ in range(256))  # RS256: 2048-bit signature
    return ".".join([
        b64url(json.dumps(header, separators=(",", ":")).encode()),
        b64url(json.dumps(claims, separators=(",", ":")).encode()),
        b64url(signature),
    ])


def user(i):
    uid = "%08x-%04x-4%03x-8%03x-%012x" % (0x10000000 + i, i % 0xFFFF, i % 0xFFF, (i * 7) % 0xFFF, i)
    return {
        "uid": uid,
        "username": "user%04d@contoso.example" % i,
        "name": "Bench User %04d" % i,
    }


def access_token(rng, u, resource, now):
    base, names = RESOURCES[resource]
    claims = {
        "aud": base, "iss": "https://sts.windows.net/%s/" % TENANT,
        "iat": now, "nbf": now, "exp": now + LIFETIME,
        "acr": "1", "aio": b64url(os.urandom(30)),
        "amr": ["pwd", "mfa"], "appid": CLIENT_ID, "appidacr": "0",
        "idtyp": "user",
        "name": u["name"],
        "oid": u["uid"], "puid": "%016X" % rng.getrandbits(64),
        "rh": "0." + b64url(os.urandom(30)) + ".", "scp": " ".join(names),
        "sub": b64url(os.urandom(32)), "tid": TENANT, "unique_name": u["username"],
        "upn": u["username"], "uti": b64url(os.urandom(16)), "ver": "1.0",
        "wids": ["b79fbf4d-3ef9-4689-8143-76b194e85509"],
        "xms_tcdt": 1289241547,
    }
    return jwt(rng, claims, {"typ": "JWT", "alg": "RS256", "x5t": "L1KfKFI_jnXbwWc22xZxw1sUHH0",
                             "kid": "L1KfKFI_jnXbwWc22xZxw1sUHH0"})


def id_token(rng, u, now):
    claims = {
        "aud": CLIENT_ID, "iss": "https://login.microsoftonline.com/%s/v2.0" % TENANT,
        "iat": now, "nbf": now, "exp": now + 3600,
        "aio": b64url(os.urandom(60)), "name": u["name"], "oid": u["uid"],
        "preferred_username": u["username"], "rh": "0." + b64url(os.urandom(48)) + ".",
        "sid": b64url(os.urandom(18)), "sub": b64url(os.urandom(32)), "tid": TENANT,
        "uti": b64url(os.urandom(16)), "ver": "2.0",
    }
    return jwt(rng, claims)


def refresh_token():
    return "1.AXEA" + b64url(os.urandom(740))  # about 1 kB, opaque like Entra's


def client_info(u):
    return b64url(json.dumps({"uid": u["uid"], "utid": TENANT}).encode())


def event(rng, u, resource, now, first):
    response = {
        "token_type": "Bearer",
        "scope": " ".join(scopes_of(resource)),
        "expires_in": LIFETIME,
        "ext_expires_in": LIFETIME,
        "access_token": access_token(rng, u, resource, now),
        "client_info": client_info(u),
    }
    # Entra returns an ID token on sign-in and on refresh (openid is always requested).
    response["id_token"] = id_token(rng, u, now)
    if first:  # the sign-in: refresh token (family), account
        response["refresh_token"] = refresh_token()
        response["foci"] = "1"
    return {
        "client_id": CLIENT_ID,
        "scope": scopes_of(resource),
        "token_endpoint": TOKEN_ENDPOINT,
        "environment": ENVIRONMENT,
        "grant_type": "device_code" if first else "refresh_token",
        "response": response,
        "params": {},
        "data": {"scope": scopes_of(resource) + ["openid", "profile", "offline_access"]},
        # MSAL's refresh path adds the response this way: the account stays as signed in.
        "skip_account_creation": not first,
    }


def generate(n, now, accounts=ACCOUNTS, seed=1):
    rng = random.Random(seed)
    cache = msal.SerializableTokenCache()
    per_account = max(1, n // accounts)
    for i in range(accounts):
        u = user(i)
        count = per_account if i < n else 0
        # The sign-in: one token response with ID and refresh token (and an access token
        # when this account holds any); then one response per further access token.
        first = event(rng, u, i % 10, now, True)
        if count == 0:
            del first["response"]["access_token"]
        cache.add(first, now=now)
        for k in range(1, count):
            cache.add(event(rng, u, (i + k) % 10, now, False), now=now)
    return cache


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("--sizes", type=int, nargs="+", default=[100, 1000, 10000])
    ap.add_argument("--accounts", type=int, default=ACCOUNTS, help="accounts (default 1,000)")
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    now = int(time.time())
    files = {}
    for n in args.sizes:
        cache = generate(n, now, args.accounts)
        text = cache.serialize()
        path = os.path.join(args.out, "msal-%d.json" % n)
        with open(path, "w") as f:
            f.write(text)
        state = json.loads(text)
        counts = {k: len(v) for k, v in state.items()}
        assert counts["AccessToken"] == n, counts
        assert counts["Account"] == args.accounts, counts
        files[str(n)] = {"file": os.path.basename(path), "bytes": len(text), "counts": counts}
        print("msal-%d.json: %.1f MB %s" % (n, len(text) / 1e6, counts))
    u = user(BENCH_ACCOUNT)
    meta = {
        "generated_at": now,
        "expires_at": now + LIFETIME,
        "msal_version": msal.__version__,
        "authority": AUTHORITY,
        "environment": ENVIRONMENT,
        "tenant": TENANT,
        "client_id": CLIENT_ID,
        "username": u["username"],
        "home_account_id": "%s.%s" % (u["uid"], TENANT),
        "scopes_exact": scopes_of(BENCH_RESOURCE),
        "scopes_subset": [scopes_of(BENCH_RESOURCE)[1]],
        "files": files,
    }
    with open(os.path.join(args.out, "meta.json"), "w") as f:
        json.dump(meta, f, indent=2)


if __name__ == "__main__":
    main()
