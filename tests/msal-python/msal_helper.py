"""Drives the real MSAL Python (and msal-extensions) for Tessera's interop suite
(tests/it/msal_interop.rs). Run with tests/msal-python/.venv/bin/python.

    msal_helper.py --issuer URL --client-id ID --cache FILE [--persistence plain|extensions]
                   COMMAND [options]

Commands (each prints JSON lines on stdout, one per event; the last one is the result,
also when MSAL fails: {"ok": false, "error": ...}). The exit status is 0 whenever the
result was printed and the cache saved; anything else (a traceback) is a failure.
    device-login --scopes S [S ...]
        initiate_device_flow; prints {"event": "device_flow", "user_code",
        "verification_uri", ...}, then waits in acquire_token_by_device_flow and prints
        {"event": "result", ...}.
    accounts
        get_accounts(); prints {"event": "accounts", "accounts": [...]}.
    silent --username U --scopes S [S ...] [--force-refresh]
        acquire_token_silent for that account; prints {"event": "result", ...}.
    remove --username U
        remove_account; prints {"event": "removed", "removed": N}.
    add-loop --count N --prefix P [--sleep S]
        N synthetic sign-ins (token_cache.add with a fabricated response for account
        "<P>-<i>"): each is one Account, AccessToken, IdToken, RefreshToken and
        AppMetadata write, through msal-extensions' lock when --persistence extensions.
        Prints {"event": "added", "count": N}.

A result never shows a token: access tokens appear as their SHA-256 (hex), so that the
Rust side can compare them without either side printing one.

Persistence: "plain" is MSAL's documented recipe (SerializableTokenCache, deserialize the
file before, write it back after if has_state_changed; no lock). "extensions" is
msal_extensions.PersistedTokenCache(FilePersistence(FILE)): reload when the file's mtime
is newer, CrossPlatLock on FILE.lockfile around every change.
"""

import argparse
import base64
import hashlib
import json
import os
import sys
import time

import msal


def emit(obj):
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


def sha256(s):
    return hashlib.sha256(s.encode("utf-8")).hexdigest() if s else None


def open_cache(args):
    if args.persistence == "extensions":
        import msal_extensions

        return msal_extensions.PersistedTokenCache(
            msal_extensions.FilePersistence(args.cache)
        )
    cache = msal.SerializableTokenCache()
    if os.path.exists(args.cache):
        with open(args.cache, "r") as f:
            cache.deserialize(f.read())
    return cache


def save_cache(args, cache):
    if args.persistence == "plain" and cache.has_state_changed:
        os.makedirs(os.path.dirname(os.path.abspath(args.cache)), exist_ok=True)
        with open(args.cache, "w") as f:
            f.write(cache.serialize())


def make_app(args, cache):
    return msal.PublicClientApplication(
        args.client_id, oidc_authority=args.issuer, token_cache=cache
    )


def describe_result(result):
    if "access_token" not in result:
        return {
            "event": "result",
            "ok": False,
            "error": result.get("error"),
            "error_description": result.get("error_description"),
        }
    claims = result.get("id_token_claims") or {}
    return {
        "event": "result",
        "ok": True,
        "token_source": result.get("token_source"),
        "access_token_sha256": sha256(result["access_token"]),
        "has_refresh_token": bool(result.get("refresh_token")),
        "scope": result.get("scope"),
        "expires_in": result.get("expires_in"),
        "sub": claims.get("sub"),
    }


def find_account(app, username):
    accounts = app.get_accounts(username=username)
    return accounts[0] if accounts else None


def cmd_device_login(args, app):
    flow = app.initiate_device_flow(scopes=args.scopes)
    if "user_code" not in flow:
        emit({"event": "result", "ok": False, "error": flow.get("error"),
              "error_description": flow.get("error_description")})
        return 0
    emit({
        "event": "device_flow",
        "user_code": flow["user_code"],
        "verification_uri": flow.get("verification_uri"),
        "verification_uri_complete": flow.get("verification_uri_complete"),
        "interval": flow.get("interval"),
        "expires_in": flow.get("expires_in"),
    })
    result = app.acquire_token_by_device_flow(flow)
    emit(describe_result(result))
    return 0


def cmd_accounts(args, app):
    emit({
        "event": "accounts",
        "accounts": [
            {k: a.get(k) for k in (
                "home_account_id", "environment", "realm", "username",
                "local_account_id", "authority_type", "account_source")}
            for a in app.get_accounts()
        ],
    })
    return 0


def cmd_silent(args, app):
    account = find_account(app, args.username)
    if account is None:
        emit({"event": "result", "ok": False, "error": "no_account",
              "error_description": "get_accounts found no account %r" % args.username})
        return 0
    result = app.acquire_token_silent(
        args.scopes, account=account, force_refresh=args.force_refresh)
    if result is None:
        emit({"event": "result", "ok": False, "error": "none",
              "error_description": "acquire_token_silent returned None"})
        return 0
    emit(describe_result(result))
    return 0


def cmd_remove(args, app):
    account = find_account(app, args.username)
    if account is None:
        emit({"event": "removed", "removed": 0})
        return 0
    app.remove_account(account)
    emit({"event": "removed", "removed": 1})
    return 0


def b64url(obj):
    raw = json.dumps(obj).encode("utf-8")
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def cmd_add_loop(args, cache):
    """Synthetic sign-ins straight into the cache (no provider): what an MSAL app's
    token_cache.add() does after each token response, as fast as it can."""
    environment = args.issuer.split("://", 1)[1].split("/", 1)[0].split(":")[0]
    token_endpoint = args.issuer.rstrip("/") + "/token"
    for i in range(args.count):
        sub = "%s-%d" % (args.prefix, i)
        now = int(time.time())
        id_token = "%s.%s.sig" % (
            b64url({"alg": "none", "typ": "JWT"}),
            b64url({"iss": args.issuer, "sub": sub, "aud": args.client_id,
                    "preferred_username": sub, "iat": now, "exp": now + 3600}),
        )
        cache.add({
            "client_id": args.client_id,
            "scope": ["api:read"],
            "token_endpoint": token_endpoint,
            "environment": environment,
            "grant_type": "device_code",
            "response": {
                "access_token": "at-%s" % sub,
                "refresh_token": "rt-%s" % sub,
                "id_token": id_token,
                "token_type": "Bearer",
                "expires_in": 3600,
                "scope": "api:read",
            },
            "data": {},
        })
        if args.sleep:
            time.sleep(args.sleep)
    emit({"event": "added", "count": args.count})
    return 0


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--issuer", required=True)
    p.add_argument("--client-id", required=True)
    p.add_argument("--cache", required=True)
    p.add_argument("--persistence", choices=["plain", "extensions"], default="plain")
    sub = p.add_subparsers(dest="command", required=True)
    d = sub.add_parser("device-login")
    d.add_argument("--scopes", nargs="+", required=True)
    sub.add_parser("accounts")
    s = sub.add_parser("silent")
    s.add_argument("--username", required=True)
    s.add_argument("--scopes", nargs="+", required=True)
    s.add_argument("--force-refresh", action="store_true")
    r = sub.add_parser("remove")
    r.add_argument("--username", required=True)
    a = sub.add_parser("add-loop")
    a.add_argument("--count", type=int, required=True)
    a.add_argument("--prefix", required=True)
    a.add_argument("--sleep", type=float, default=0.0)
    args = p.parse_args()

    cache = open_cache(args)
    if args.command == "add-loop":
        return cmd_add_loop(args, cache)
    app = make_app(args, cache)
    try:
        return {
            "device-login": cmd_device_login,
            "accounts": cmd_accounts,
            "silent": cmd_silent,
            "remove": cmd_remove,
        }[args.command](args, app)
    finally:
        save_cache(args, cache)


if __name__ == "__main__":
    sys.exit(main())
