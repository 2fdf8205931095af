"""Start-up and memory of Tessera's desktop app (release build), run by bench/app.

    python3 bench/app_bench.py APP OUT_DIR [--runs 6] [--rest 8]

Launches APP (with the environment it is given: DISPLAY, TESSERA_HOME, a D-Bus session)
RUNS times, one after the other. For each launch:

- start-up: wall time from just before the process is spawned to the app's log line
  "main window ready: account list painted" (the main window logs it, through the
  `ui_ready` command, two animation frames after it rendered the account list);
- memory at rest: after REST seconds, PSS (proportional set size, from
  /proc/PID/smaps_rollup) of the app and every process it started (WebKit's web and
  network processes), and their summed RSS for comparison;
- then SIGTERM, and a wait until every one of those processes is gone.

The first launch after a build or a boot is "cold"; the others are "warm". Writes
OUT_DIR/app.json and prints a summary.
"""

import argparse
import json
import os
import re
import signal
import statistics
import subprocess
import sys
import time

READY = "main window ready: account list painted"
ANSI = re.compile(r"\x1b\[[0-9;]*m")


def children(pid):
    out = []
    try:
        for task in os.listdir("/proc/%d/task" % pid):
            with open("/proc/%d/task/%s/children" % (pid, task)) as f:
                out += [int(c) for c in f.read().split()]
    except OSError:
        pass
    return out


def tree(pid):
    """pid and all its descendants."""
    seen, todo = [], [pid]
    while todo:
        p = todo.pop()
        if p in seen:
            continue
        seen.append(p)
        todo += children(p)
    return seen


def comm(pid):
    try:
        with open("/proc/%d/comm" % pid) as f:
            return f.read().strip()
    except OSError:
        return "?"


def rollup(pid):
    """(PSS, RSS) in kB."""
    pss = rss = 0
    try:
        with open("/proc/%d/smaps_rollup" % pid) as f:
            for line in f:
                if line.startswith("Pss:"):
                    pss = int(line.split()[1])
                elif line.startswith("Rss:"):
                    rss = int(line.split()[1])
    except OSError:
        pass
    return pss, rss


def switches(pid):
    """Context switches of all the threads of `pid` so far (each one a wake-up)."""
    n = 0
    try:
        for t in os.listdir("/proc/%d/task" % pid):
            with open("/proc/%d/task/%s/status" % (pid, t)) as f:
                for line in f:
                    if line.startswith(("voluntary_ctxt_switches", "nonvoluntary_ctxt_switches")):
                        n += int(line.split()[1])
    except OSError:
        pass
    return n


def launch(app, rest, log_path, agent_socket=None, timeout=60):
    env = dict(os.environ)
    # The agent on its own socket, or off.
    if agent_socket:
        env["TESSERA_AGENT_SOCKET"] = agent_socket
        env.pop("TESSERA_AGENT", None)
    else:
        env["TESSERA_AGENT"] = "0"
    # TESSERA_BENCH_LOG: a more detailed filter, to see where a launch's time goes.
    env["TESSERA_LOG"] = os.environ.get("TESSERA_BENCH_LOG", "warn,tessera_lib=info")
    t0 = time.monotonic()
    proc = subprocess.Popen(
        [app], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    )
    painted = None
    accounts = None
    lines = []
    deadline = t0 + timeout
    while time.monotonic() < deadline:
        line = proc.stderr.readline()
        if not line:
            break
        line = ANSI.sub("", line)
        lines.append(line.rstrip())
        if READY in line:
            painted = time.monotonic() - t0
            for word in line.split():
                if word.startswith("accounts="):
                    accounts = int(word.split("=", 1)[1])
            break
    if painted is None:
        proc.kill()
        sys.exit("the app did not report a painted list; its log:\n" + "\n".join(lines[-30:]))
    # Keep its log (in the background, so that the pipe never fills).
    log = open(log_path, "w")
    log.write("\n".join(lines) + "\n")
    log.flush()
    drain = subprocess.Popen(["cat"], stdin=proc.stderr, stdout=log)
    # Wake-ups of the app's own process at rest: over the second half of the rest.
    time.sleep(rest / 2)
    before = switches(proc.pid)
    time.sleep(rest / 2)
    wakeups = (switches(proc.pid) - before) / (rest / 2)
    serving = bool(agent_socket) and os.path.exists(agent_socket)
    procs = []
    for p in tree(proc.pid):
        pss, rss = rollup(p)
        procs.append({"pid": p, "name": comm(p), "pss_kb": pss, "rss_kb": rss})
    pids = [p["pid"] for p in procs]
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    drain.wait()
    log.close()
    # WebKit's helpers end with the app; wait for them, so the next launch starts alone.
    end = time.monotonic() + 20
    while time.monotonic() < end and any(os.path.exists("/proc/%d" % p) for p in pids[1:]):
        time.sleep(0.05)
    return {
        "painted_s": painted,
        "accounts": accounts,
        "pss_mb": sum(p["pss_kb"] for p in procs) / 1024,
        "rss_mb": sum(p["rss_kb"] for p in procs) / 1024,
        "app_wakeups_per_s": wakeups,
        "agent": serving,
        "processes": procs,
    }


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("app")
    ap.add_argument("out")
    ap.add_argument("--runs", type=int, default=6)
    ap.add_argument("--rest", type=float, default=8.0)
    ap.add_argument(
        "--agent",
        action="store_true",
        help="each warm launch twice, the agent off and on: the PSS and wake-ups it adds",
    )
    a = ap.parse_args()
    os.makedirs(a.out, exist_ok=True)
    socket = os.path.join(a.out, "agent.sock")
    runs = []
    for i in range(a.runs):
        r = launch(a.app, a.rest, os.path.join(a.out, "launch-%d.log" % (i + 1)))
        runs.append(r)
        print(
            "launch %d (%s): list of %s accounts painted after %.3f s; at rest PSS %.0f MB (%s; RSS summed %.0f MB)"
            % (
                i + 1,
                "cold" if i == 0 else "warm",
                r["accounts"],
                r["painted_s"],
                r["pss_mb"],
                ", ".join("%s %.0f" % (p["name"], p["pss_kb"] / 1024) for p in r["processes"]),
                r["rss_mb"],
            ),
            flush=True,
        )
        time.sleep(1)
    with_agent = []
    if a.agent:
        for i in range(1, a.runs):
            r = launch(a.app, a.rest, os.path.join(a.out, "agent-%d.log" % (i + 1)), socket)
            if not r["agent"]:
                sys.exit("the app did not serve as the agent on %s" % socket)
            with_agent.append(r)
            print(
                "launch %d with the agent: PSS %.0f MB, the app's process woke %.1f times/s at rest"
                % (i + 1, r["pss_mb"], r["app_wakeups_per_s"]),
                flush=True,
            )
            time.sleep(1)
    warm = runs[1:] or runs
    by_name = {}
    for r in warm:
        for p in r["processes"]:
            by_name.setdefault(p["name"], []).append(p["pss_kb"] / 1024)
    summary = {
        "binary": a.app,
        "binary_bytes": os.path.getsize(a.app),
        "accounts": runs[0]["accounts"],
        "cold_painted_s": runs[0]["painted_s"],
        "warm_painted_s": [r["painted_s"] for r in warm],
        "warm_painted_median_s": statistics.median(r["painted_s"] for r in warm),
        "warm_pss_median_mb": statistics.median(r["pss_mb"] for r in warm),
        "warm_rss_median_mb": statistics.median(r["rss_mb"] for r in warm),
        "pss_by_process_median_mb": {k: statistics.median(v) for k, v in by_name.items()},
        "rest_s": a.rest,
        "warm_app_wakeups_per_s_median": statistics.median(r["app_wakeups_per_s"] for r in warm),
        "runs": runs,
    }
    if with_agent:
        summary["agent_pss_median_mb"] = statistics.median(r["pss_mb"] for r in with_agent)
        summary["agent_app_wakeups_per_s_median"] = statistics.median(
            r["app_wakeups_per_s"] for r in with_agent
        )
        summary["agent_runs"] = with_agent
    os.makedirs(a.out, exist_ok=True)
    with open(os.path.join(a.out, "app.json"), "w") as f:
        json.dump(summary, f, indent=1)
    print(
        "summary: %d accounts; painted after %.3f s warm (median of %d; cold %.3f s); PSS at rest %.0f MB (%s); RSS summed %.0f MB; binary %.1f MB"
        % (
            summary["accounts"],
            summary["warm_painted_median_s"],
            len(warm),
            summary["cold_painted_s"],
            summary["warm_pss_median_mb"],
            ", ".join("%s %.0f" % kv for kv in sorted(summary["pss_by_process_median_mb"].items())),
            summary["warm_rss_median_mb"],
            summary["binary_bytes"] / 1e6,
        )
    )
    if with_agent:
        print(
            "agent: PSS at rest %.0f MB without it, %.0f MB with it (%+.1f MB); the app's process woke %.1f times/s without, %.1f with"
            % (
                summary["warm_pss_median_mb"],
                summary["agent_pss_median_mb"],
                summary["agent_pss_median_mb"] - summary["warm_pss_median_mb"],
                summary["warm_app_wakeups_per_s_median"],
                summary["agent_app_wakeups_per_s_median"],
            )
        )


if __name__ == "__main__":
    main()
