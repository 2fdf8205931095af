#!/usr/bin/env bash
# End-to-end tests of Tessera's desktop app: the real app (debug build) on WebKitGTK under
# Xvfb, inside its own D-Bus session with an unlocked gnome-keyring, driven through
# tauri-driver + WebKitWebDriver, against the sandbox identity provider on a free port,
# with a throwaway TESSERA_HOME and HOME.
#
#   tests/e2e/run.sh              # screenshots go to docs/screenshots/
#   KEEP_E2E_WORK=1 tests/e2e/run.sh   # keep the work folder (logs, home) for a look
#   tests/e2e/run.sh security::       # only the tests whose names contain a filter
#
# Everything it starts (Xvfb, keyring, sandbox, tauri-driver) is stopped by PID at the end.
# Needs: scripts/setup (Xvfb, dbus, gnome-keyring, webkit2gtk-driver, xdotool, xclip,
# ImageMagick, tauri-driver).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT"

say() { echo "e2e: $*" >&2; }

show_log() { # show_log FILE LINES WHAT: the last LINES lines of FILE, if it has any
  [[ -s "$1" ]] || return 0
  say "$3 (last lines):"
  tail -n "$2" "$1" | sed 's/^/  | /' >&2
}

wait_for() { # wait_for SECONDS DESCRIPTION COMMAND...
  local secs="$1" what="$2"
  shift 2
  local deadline=$((SECONDS + secs))
  until "$@" >/dev/null 2>&1; do
    if ((SECONDS > deadline)); then
      say "timed out waiting for $what"
      return 1
    fi
    sleep 0.2
  done
}

listening() { # listening PORT: something accepts connections on 127.0.0.1:PORT
  (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

free_port() {
  local port
  for _ in $(seq 1 100); do
    port=$((20000 + RANDOM % 40000))
    if ! listening "$port"; then
      echo "$port"
      return 0
    fi
  done
  return 1
}

if [[ "${1:-}" != "--inside" ]]; then
  # ---------------------------------------------------------------- outside: build, Xvfb
  missing=()
  for tool in Xvfb dbus-run-session gnome-keyring-daemon tauri-driver WebKitWebDriver xdotool xclip import gdbus; do
    command -v "$tool" >/dev/null 2>&1 || missing+=("$tool")
  done
  if ((${#missing[@]})); then
    say "missing: ${missing[*]} (run scripts/setup)"
    exit 1
  fi

  started=$SECONDS
  say "building the app, the sandbox and the suite (debug)..."
  # The same selection as scripts/test's build, so after it nothing is compiled again (a
  # per-package build resolves features differently and compiles tauri and the rest anew).
  # It builds the real binaries too: cargo builds a package's bins for its integration tests.
  cargo test -q --workspace --tests --test e2e --no-run
  say "built in $((SECONDS - started)) s"

  WORK="$(mktemp -d "${TMPDIR:-/tmp}/tessera-e2e.XXXXXX")"
  display=""
  for n in $(seq 90 199); do
    if [[ ! -e "/tmp/.X$n-lock" && ! -e "/tmp/.X11-unix/X$n" ]]; then
      display="$n"
      break
    fi
  done
  [[ -n "$display" ]] || { say "no free X display number"; exit 1; }

  Xvfb ":$display" -screen 0 1280x860x24 -nolisten tcp >"$WORK/xvfb.log" 2>&1 &
  XVFB_PID=$!
  cleanup_outside() {
    set +e # everything below runs, whatever fails
    kill "$XVFB_PID" 2>/dev/null || true
    wait "$XVFB_PID" 2>/dev/null || true
    if [[ -n "${KEEP_E2E_WORK:-}" ]]; then
      say "work folder kept: $WORK"
    else
      rm -rf "$WORK"
    fi
  }
  trap cleanup_outside EXIT
  wait_for 20 "Xvfb" test -e "/tmp/.X11-unix/X$display"

  export DISPLAY=":$display" TESSERA_E2E_WORK="$WORK"
  status=0
  # The session bus (and the services it starts) log to dbus.log; the script keeps
  # this terminal's stderr as fd 3.
  dbus-run-session -- "$0" --inside "$@" 3>&2 2>"$WORK/dbus.log" || status=$?
  if ((status != 0)); then
    show_log "$WORK/dbus.log" 20 "the D-Bus session's log"
  fi
  say "finished in $((SECONDS - started)) s (status $status)"
  exit "$status"
fi

# ------------------------------------------------------------------ inside the D-Bus session
exec 2>&3 3>&-
shift # --inside; what follows are test filters
WORK="$TESSERA_E2E_WORK"
pids=()
reported=0 # the suite's failure prints its own logs
# tauri-driver and the WebKitWebDriver it started (see start_driver).
driver_pid=""
native_port=""
stop_driver() {
  if [[ -n "$driver_pid" ]]; then
    kill "$driver_pid" 2>/dev/null || true # on SIGTERM it stops its WebKitWebDriver too
    wait "$driver_pid" 2>/dev/null || true
    driver_pid=""
  fi
  if [[ -n "$native_port" ]]; then
    pkill -f "WebKitWebDriver --port=$native_port( |\$)" 2>/dev/null || true
  fi
}
cleanup_inside() {
  local i log code=$?
  set +e # everything below runs, whatever fails
  if ((code != 0 && reported == 0)); then
    # Stopped before the suite (set -e): show what the services printed.
    for log in keyring.log sandbox.log tauri-driver.log; do
      show_log "$WORK/$log" 20 "$log"
    done
  fi
  stop_driver
  for ((i = ${#pids[@]} - 1; i >= 0; i--)); do
    kill -CONT "${pids[$i]}" 2>/dev/null || true # (a keyring the suite stopped)
    kill "${pids[$i]}" 2>/dev/null || true
    wait "${pids[$i]}" 2>/dev/null || true
  done
}
trap cleanup_inside EXIT

# The app's world: its own HOME (webview data, keyring) and TESSERA_HOME. Only the
# processes that start the app get this HOME; cargo keeps the real one.
APP_HOME="$WORK/home"
export TESSERA_HOME="$WORK/tessera"
export XDG_RUNTIME_DIR="$WORK/run"
mkdir -p "$APP_HOME" "$TESSERA_HOME" "$XDG_RUNTIME_DIR"
chmod 700 "$XDG_RUNTIME_DIR"
unset XDG_CONFIG_HOME XDG_DATA_HOME XDG_CACHE_HOME

# An unlocked Secret Service.
printf pw | HOME="$APP_HOME" gnome-keyring-daemon --foreground --unlock --components=secrets >"$WORK/keyring.log" 2>&1 &
pids+=($!)
# The suite stops and continues it (a keyring that does not answer).
export TESSERA_E2E_KEYRING_PID=$!

# The sandbox identity provider on a free port.
"$ROOT/target/debug/tessera-sandbox-idp" --port 0 >"$WORK/sandbox.out" 2>"$WORK/sandbox.log" &
pids+=($!)
wait_for 30 "the sandbox" grep -q "listening on" "$WORK/sandbox.out"
TESSERA_SANDBOX_URL="$(grep -o 'http://127.0.0.1:[0-9]*' "$WORK/sandbox.out" | head -n1)"
export TESSERA_SANDBOX_URL
say "sandbox at $TESSERA_SANDBOX_URL"

# The "system browser" of the browser sign-in: signs in as carol through the sandbox's
# pages and delivers the redirect to the app's loopback listener.
# (Through a link the suite removes for a while: a machine without a browser.)
ln -s "$ROOT/target/debug/scripted-browser" "$WORK/browser"
export TESSERA_E2E_BROWSER_LINK="$WORK/browser"
export TESSERA_BROWSER="$WORK/browser --provider sandbox --login carol@fabrikam.example"

# tauri-driver (it starts WebKitWebDriver on the native port, which starts the app with this
# environment). The app logs at trace level: the suites check that no secret reaches that
# log. The ports are only free when picked. A tauri-driver that cannot bind its port prints
# "can not listen" and exits, leaving its WebKitWebDriver behind; a WebKitWebDriver that
# cannot bind exits while tauri-driver goes on. So an attempt counts when both listen and
# tauri-driver still runs; otherwise what it printed is shown, both are stopped, and another
# attempt is made on other ports.
start_driver() { # start_driver ATTEMPT: 0 when tauri-driver and its WebKitWebDriver listen
  local deadline log="$WORK/tauri-driver.attempt$1.log"
  driver_port="$(free_port)"
  native_port="$(free_port)"
  [[ "$native_port" != "$driver_port" ]] || native_port=$((driver_port + 1))
  HOME="$APP_HOME" NO_AT_BRIDGE=1 TESSERA_LOG=trace tauri-driver --port "$driver_port" --native-port "$native_port" >"$log" 2>&1 &
  driver_pid=$!
  deadline=$((SECONDS + 30))
  until listening "$driver_port" && listening "$native_port"; do
    if ! kill -0 "$driver_pid" 2>/dev/null || ((SECONDS > deadline)); then
      break
    fi
    sleep 0.2
  done
  # Something else listening on a port would pass the check above; tauri-driver that
  # failed to bind exits within moments of starting.
  sleep 0.5
  if kill -0 "$driver_pid" 2>/dev/null && ! grep -q "can not listen" "$log" &&
    listening "$driver_port" && listening "$native_port"; then
    mv "$log" "$WORK/tauri-driver.log" # it goes on writing there
    return 0
  fi
  say "tauri-driver (attempt $1, ports $driver_port and $native_port) did not start; it printed:"
  sed 's/^/  | /' "$log" >&2
  stop_driver
  return 1
}
started_driver=0
for attempt in 1 2 3; do
  if start_driver "$attempt"; then
    started_driver=1
    break
  fi
done
if ((started_driver == 0)); then
  say "tauri-driver did not start: $(command -v tauri-driver), WebKitWebDriver at $(command -v WebKitWebDriver)"
  exit 1
fi

export TESSERA_E2E_WEBDRIVER="http://127.0.0.1:$driver_port"
export TESSERA_E2E_APP="$ROOT/target/debug/tessera"
export TESSERA_E2E_APP_HOME="$APP_HOME"
export TESSERA_E2E_SCREENSHOTS="${TESSERA_E2E_SCREENSHOTS:-$ROOT/docs/screenshots}"
say "running the suite (logs in $WORK)"
status=0
cargo test -q --workspace --test e2e -- --include-ignored --nocapture --test-threads=1 "$@" || status=$?
if ((status != 0)); then
  reported=1
  say "failed"
  show_log "$WORK/tauri-driver.log" 40 "the app's and the driver's log" || true
  show_log "$WORK/sandbox.log" 20 "the sandbox's log" || true
fi
exit "$status"
