#!/usr/bin/env bash
# tests/gui/screenshot.sh OUT.png [APP] — start the app under Xvfb (1280x800) in a private D-Bus
# session with throwaway HOME and XDG dirs, wait until its window is mapped, and save a
# screenshot of the whole screen to OUT.png (ImageMagick `import`), then stop the app.
# Environment: WARREN_HELPER_SOCKET (default: a path where nothing listens, so the app shows its
# "helper is not running" screen); WARREN_SCREENSHOT_FAKE_HELPER=PATH runs that fake helper binary
# (cargo build -p warren-app --features fake-helper --example fake_helper) and points the app at it;
# WARREN_SCREENSHOT_WAIT (seconds to let the page render, default 5).
set -euo pipefail

out=${1:?usage: screenshot.sh OUT.png [APP]}
app=${2:-${CARGO_TARGET_DIR:-$(cd "$(dirname "$0")/../.." && pwd)/target}/debug/warren-app}
[[ -x $app ]] || { echo "no app binary at $app: build it first" >&2; exit 1; }
out="$(realpath -m "$out")"

if [[ ${1:-} != --inside ]] && [[ -z ${WARREN_SHOT_INSIDE:-} ]]; then
    # Outside: make the throwaway home first, so D-Bus-activated services (the a11y bus,
    # gnome-keyring) inherit it too and nothing lands in the real home.
    tmp="$(mktemp -d /tmp/warren-shot.XXXXXX)"
    trap 'rm -rf "$tmp"' EXIT
    export HOME="$tmp/home" XDG_CONFIG_HOME="$tmp/config" XDG_DATA_HOME="$tmp/data" \
        XDG_CACHE_HOME="$tmp/cache" XDG_RUNTIME_DIR="$tmp/run"
    mkdir -p "$HOME" "$XDG_CONFIG_HOME" "$XDG_DATA_HOME" "$XDG_CACHE_HOME" "$XDG_RUNTIME_DIR"
    chmod 700 "$XDG_RUNTIME_DIR"
    export WARREN_HELPER_SOCKET=${WARREN_HELPER_SOCKET:-$tmp/no-helper.sock}
    fake_pid=""
    if [[ -n ${WARREN_SCREENSHOT_FAKE_HELPER:-} ]]; then
        # The fake helper (src-tauri/examples/fake_helper.rs): a connected tunnel to show.
        export WARREN_HELPER_SOCKET="$tmp/fake-helper.sock"
        "$WARREN_SCREENSHOT_FAKE_HELPER" "$WARREN_HELPER_SOCKET" 2>"$tmp/fake-helper.log" &
        fake_pid=$!
        trap '[[ -n $fake_pid ]] && kill "$fake_pid" 2>/dev/null; rm -rf "$tmp"' EXIT
        for _ in $(seq 50); do [[ -S $WARREN_HELPER_SOCKET ]] && break; sleep 0.1; done
    fi
    WARREN_SHOT_INSIDE=1 WARREN_SHOT_TMP="$tmp" xvfb-run -a -s "-screen 0 1280x800x24" \
        dbus-run-session --dbus-daemon="$(cd "$(dirname "$0")" && pwd)/dbus-daemon-quiet" -- "$0" "$out" "$app"
    exit $?
fi

app_pid=""
log="$WARREN_SHOT_TMP/app.log"
trap '[[ -n $app_pid ]] && kill "$app_pid" 2>/dev/null; wait 2>/dev/null' EXIT
"$app" >"$log" 2>&1 &
app_pid=$!
# Wait for the mapped window titled Warren (at most 60 s), then let the page render.
for _ in $(seq 120); do
    if xwininfo -root -tree 2>/dev/null | grep -q '"Warren"'; then break; fi
    if ! kill -0 "$app_pid" 2>/dev/null; then
        echo "the app exited early; its log:" >&2
        cat "$log" >&2
        exit 1
    fi
    sleep 0.5
done
sleep "${WARREN_SCREENSHOT_WAIT:-5}"
import -window root "$out"
echo "screenshot: $out"
echo "--- app log ---"
cat "$log"
