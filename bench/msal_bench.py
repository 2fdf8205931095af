"""The in-process MSAL Python side of `bench/run` (msal 1.39): the same operations as
Tessera's criterion benches (crates/core/benches/store.rs) on the same files.

    python bench/msal_bench.py DATA_DIR [--sizes 100 1000 10000] [--quick] > results.json

Each figure is the median, over several batches, of a batch's mean time per call
(criterion's way, roughly); every batch runs long enough to dwarf the timer.
  silent_exact/N, silent_subset/N  acquire_token_silent, cache hit (N access tokens)
  get_accounts/1000                get_accounts() with 1,000 accounts (the 10,000 file)
  deserialize/N, serialize/N       SerializableTokenCache.deserialize / .serialize
  store_one/N                      add() one new token response, serialize, write the
                                   file (MSAL's documented recipe for a file cache)
"""

import argparse
import json
import os
import statistics
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import msal  # noqa: E402

from gen_cache import event, user, BENCH_ACCOUNT, ACCOUNTS  # noqa: E402
from msal_common import make_app  # noqa: E402
import random  # noqa: E402


def measure(fn, min_batch_s=0.05, batches=15, max_total_s=20.0):
    """Median over batches of the mean seconds per call."""
    fn()  # warm up
    t = time.perf_counter()
    fn()
    one = max(time.perf_counter() - t, 1e-7)
    per_batch = max(1, int(min_batch_s / one))
    batches = max(5, min(batches, int(max_total_s / (one * per_batch))))
    samples = []
    for _ in range(batches):
        t = time.perf_counter()
        for _ in range(per_batch):
            fn()
        samples.append((time.perf_counter() - t) / per_batch)
    return {
        "median_s": statistics.median(samples),
        "min_s": min(samples),
        "max_s": max(samples),
        "batches": batches,
        "calls_per_batch": per_batch,
    }


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("data")
    ap.add_argument("--sizes", type=int, nargs="+", default=[100, 1000, 10000])
    ap.add_argument("--quick", action="store_true", help="fewer batches")
    args = ap.parse_args()
    batches = 7 if args.quick else 15
    meta = json.load(open(os.path.join(args.data, "meta.json")))
    out = {"msal_version": msal.__version__, "python": sys.version.split()[0], "results": {}}
    res = out["results"]

    def log(name, r):
        res[name] = r
        print("%-24s %10.1f us" % (name, r["median_s"] * 1e6), file=sys.stderr)

    for n in args.sizes:
        path = os.path.join(args.data, "msal-%d.json" % n)
        text = open(path).read()
        cache = msal.SerializableTokenCache()
        log("deserialize/%d" % n, measure(lambda: msal.SerializableTokenCache().deserialize(text),
                                          batches=batches))
        cache.deserialize(text)
        app = make_app(meta, cache)
        account = app.get_accounts(username=meta["username"])[0]
        for kind in ("exact", "subset"):
            scopes = meta["scopes_" + kind]
            r = app.acquire_token_silent(scopes, account=account)
            assert r and r.get("token_source") == "cache", r
            log("silent_%s/%d" % (kind, n),
                measure(lambda: app.acquire_token_silent(scopes, account=account), batches=batches))
        if n == max(args.sizes):
            accounts = app.get_accounts()
            assert len(accounts) == ACCOUNTS, len(accounts)
            log("get_accounts/%d" % len(accounts), measure(app.get_accounts, batches=batches))
        log("serialize/%d" % n, measure(cache.serialize, batches=batches))

        # Store one new token: one token response (a new scope for account 42), then the
        # whole file is written, as MSAL's file-cache recipe (and msal-extensions) do.
        rng = random.Random(7)
        u = user(BENCH_ACCOUNT)
        ev = event(rng, u, 3, meta["generated_at"], False)
        ev["scope"] = ev["scope"] + ["https://storage.azure.com/Bench.Write"]
        with tempfile.TemporaryDirectory() as d:
            target = os.path.join(d, "cache.json")

            def store_one():
                cache.add(ev, now=meta["generated_at"])
                with open(target, "w") as f:
                    f.write(cache.serialize())
            log("store_one/%d" % n, measure(store_one, batches=batches))
    json.dump(out, sys.stdout, indent=2)
    print()


if __name__ == "__main__":
    main()
