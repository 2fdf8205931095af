"""Writes bench/run's side-by-side table (Markdown) from one run's output folder:
criterion's estimates (OUT/criterion), MSAL Python's (OUT/msal.json), hyperfine's
(OUT/hf-*.json), the machine (OUT/machine.txt) and the load (OUT/load-*.txt). Also
writes OUT/results.json with every figure.

    python bench/report.py OUT > OUT/results.md

Figures are medians: criterion's median per-iteration estimate, the median of MSAL
Python's batch means, hyperfine's median over runs. Ratio = MSAL Python / Tessera
(how many times faster Tessera is).
"""

import json
import os
import sys

OUT = sys.argv[1]
figures = {}


def crit(group, fn, param=None):
    parts = [OUT, "criterion", group, fn] + ([str(param)] if param is not None else [])
    path = os.path.join(*parts, "new", "estimates.json")
    try:
        with open(path) as f:
            ns = json.load(f)["median"]["point_estimate"]
    except (OSError, KeyError, ValueError):
        return None
    s = ns / 1e9
    figures["tessera/%s/%s%s" % (group, fn, "/%s" % param if param is not None else "")] = s
    return s


try:
    with open(os.path.join(OUT, "msal.json")) as f:
        msal_doc = json.load(f)
except (OSError, ValueError):
    msal_doc = {"results": {}}
MSAL = msal_doc.get("results", {})


def msal(name):
    r = MSAL.get(name)
    if r is None:
        return None
    figures["msal/" + name] = r["median_s"]
    return r["median_s"]


def hyperfine(name):
    try:
        with open(os.path.join(OUT, name)) as f:
            doc = json.load(f)
    except (OSError, ValueError):
        return []
    rows = []
    for r in doc["results"]:
        figures["process/" + r["command"]] = r["median"]
        rows.append(r)
    return rows


def fmt(s, unit):
    if s is None:
        return "—"
    v = s * {"us": 1e6, "ms": 1e3, "s": 1}[unit]
    if v >= 100:
        return "%.0f %s" % (v, "µs" if unit == "us" else unit)
    if v >= 10:
        return "%.1f %s" % (v, "µs" if unit == "us" else unit)
    return "%.2f %s" % (v, "µs" if unit == "us" else unit)


def ratio(msal_s, tessera_s):
    if not msal_s or not tessera_s:
        return "—"
    r = msal_s / tessera_s
    return ("%.0f×" if r >= 10 else "%.1f×") % r


def read(name):
    try:
        with open(os.path.join(OUT, name)) as f:
            return f.read().strip()
    except OSError:
        return "?"


sizes = sorted(
    int(k.split("/")[1]) for k in MSAL if k.startswith("silent_exact/")
) or [100, 1000, 10000]
largest = max(sizes)
p = print

p("## Results of `bench/run` (%s)" % os.path.basename(OUT.rstrip("/")))
p()
p("```")
p(read("machine.txt"))
p("load average (1, 5, 15 min): %s at the start, %s at the end" % (read("load-start.txt"), read("load-end.txt")))
p("```")
p()
p("Medians. Ratio = MSAL Python's time / Tessera's (SQLite + AES-GCM) time: how many times faster Tessera is.")
p()

p("### 1. Silent acquisition, cache hit (`acquire_token_silent` end to end)")
p()
p("| access tokens | requested | Tessera SQLite+AES | Tessera MSAL file (indexed) | Tessera memory | MSAL Python | ratio |")
p("|---:|---|---:|---:|---:|---:|---:|")
for n in sizes:
    for kind in ("exact", "subset"):
        t = crit("silent_%s" % kind, "sqlite-aes", n)
        p("| %s | %s | %s | %s | %s | %s | %s |" % (
            "{:,}".format(n), "= a cached target" if kind == "exact" else "a subset of one",
            fmt(t, "us"), fmt(crit("silent_%s" % kind, "msal-file", n), "us"),
            fmt(crit("silent_%s" % kind, "memory", n), "us"),
            fmt(msal("silent_%s/%d" % (kind, n)), "us"), ratio(msal("silent_%s/%d" % (kind, n)), t)))
p()
parts = [(name, crit("silent_parts", name, "sqlite-aes"), crit("silent_parts", name, "msal-file"))
         for name in ("find_access_token", "id_token", "id_token_claims")]
if any(a for _, a, _ in parts):
    p("Where a hit's time goes at %s tokens (SQLite+AES / MSAL file): %s." % ("{:,}".format(largest), "; ".join(
        "%s %s / %s" % (name, fmt(a, "us"), fmt(b, "us")) for name, a, b in parts)))
    p()

p("### 2. `get_accounts` with 1,000 accounts")
p()
p("| Tessera SQLite+AES | Tessera MSAL file (indexed) | Tessera memory | MSAL Python | ratio |")
p("|---:|---:|---:|---:|---:|")
t = crit("get_accounts", "sqlite-aes", 1000)
m = msal("get_accounts/1000")
p("| %s | %s | %s | %s | %s |" % (fmt(t, "ms"), fmt(crit("get_accounts", "msal-file", 1000), "ms"),
                                  fmt(crit("get_accounts", "memory", 1000), "ms"), fmt(m, "ms"), ratio(m, t)))
p()

p("### 3. Storing one new token")
p()
p("| access tokens | Tessera SQLite+AES | Tessera MSAL file (whole file rewritten) | MSAL Python (add + serialize + write) | ratio | MSAL serialize alone |")
p("|---:|---:|---:|---:|---:|---:|")
for n in sizes:
    t = crit("store_one", "sqlite-aes", n)
    m = msal("store_one/%d" % n)
    p("| %s | %s | %s | %s | %s | %s |" % ("{:,}".format(n), fmt(t, "ms"), fmt(crit("store_one", "msal-file", n), "ms"),
                                         fmt(m, "ms"), ratio(m, t), fmt(msal("serialize/%d" % n), "ms")))
p()

p("### MSAL cache files in process")
p()
p("| access tokens | Tessera parse | MSAL deserialize | Tessera serialize | MSAL serialize | Tessera open, indexed | open, parse | open, parse + write index |")
p("|---:|---:|---:|---:|---:|---:|---:|---:|")
for n in sizes:
    p("| %s | %s | %s | %s | %s | %s | %s | %s |" % (
        "{:,}".format(n), fmt(crit("msal_json", "parse", n), "ms"), fmt(msal("deserialize/%d" % n), "ms"),
        fmt(crit("msal_json", "serialize", n), "ms"), fmt(msal("serialize/%d" % n), "ms"),
        fmt(crit("msal_file_open", "indexed", n), "ms"), fmt(crit("msal_file_open", "parse", n), "ms"),
        fmt(crit("msal_file_open", "parse_and_index", n), "ms")))
p()
k = crit("keyring", "load")
if k:
    p("Keyring lookup (Secret Service, a new connection as in a new process), in process: %s." % fmt(k, "ms"))
    p()

rows = hyperfine("hf-token.json") + hyperfine("hf-cold.json")
if rows:
    p("### 4. Whole processes (hyperfine, %s-token file, %s accounts)" % ("{:,}".format(largest), "1,000"))
    p()
    py = next((r["median"] for r in rows if r["command"].startswith("MSAL Python acquire_token_silent (")), None)
    py_subset = next((r["median"] for r in rows if r["command"] == "MSAL Python acquire_token_silent, subset"), None)
    p("| command | median | mean ± σ | min | user + sys | MSAL Python / this |")
    p("|---|---:|---:|---:|---:|---:|")
    for r in rows:
        ref = py_subset if "subset" in r["command"] else py
        rel = ratio(ref, r["median"]) if r["command"].startswith("tessera-cli token") else ""
        p("| %s | %s | %s ± %s | %s | %s | %s |" % (
            r["command"], fmt(r["median"], "ms"), fmt(r["mean"], "ms"), fmt(r["stddev"], "ms"),
            fmt(r["min"], "ms"), fmt(r["user"] + r["system"], "ms"), rel))
    p()
rows = hyperfine("hf-transfer.json")
if rows:
    p("### 5. Importing and exporting the %s-token MSAL cache (whole processes)" % "{:,}".format(largest))
    p()
    p("| command | median | mean ± σ | user + sys |")
    p("|---|---:|---:|---:|")
    for r in rows:
        p("| %s | %s | %s ± %s | %s |" % (r["command"], fmt(r["median"], "ms"), fmt(r["mean"], "ms"),
                                         fmt(r["stddev"], "ms"), fmt(r["user"] + r["system"], "ms")))
    p()

with open(os.path.join(OUT, "results.json"), "w") as f:
    json.dump({"seconds": figures, "msal": {k: v for k, v in msal_doc.items() if k != "results"}}, f, indent=2)
