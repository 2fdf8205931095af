"""MSAL Python's counterpart of `tessera-cli import-msal` / `export-msal` for bench/run:
load an MSAL cache file (SerializableTokenCache.deserialize) and write it to another
file (serialize), as a program moving a cache with MSAL would.

    python bench/msal_copy.py FROM TO
"""

import sys

import msal

cache = msal.SerializableTokenCache()
with open(sys.argv[1]) as f:
    cache.deserialize(f.read())
with open(sys.argv[2], "w") as f:
    f.write(cache.serialize())
