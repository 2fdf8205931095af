"""The whole-process MSAL Python side of `bench/run`: what `tessera-cli token` does, as an
MSAL Python program: load the MSAL cache file (MSAL's documented SerializableTokenCache
recipe), find the account by username, acquire_token_silent, print the token.

    python bench/msal_token.py META_JSON CACHE_FILE exact|subset
"""

import json
import sys

import msal

from msal_common import make_app

meta = json.load(open(sys.argv[1]))
cache = msal.SerializableTokenCache()
with open(sys.argv[2]) as f:
    cache.deserialize(f.read())
app = make_app(meta, cache)
account = app.get_accounts(username=meta["username"])[0]
result = app.acquire_token_silent(meta["scopes_" + sys.argv[3]], account=account)
assert result and result.get("token_source") == "cache", result and result.get("error")
print(result["access_token"])
