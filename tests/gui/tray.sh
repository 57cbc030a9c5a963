#!/usr/bin/env bash
# tests/gui/tray.sh CASE [--autostart] — the real app with and without a tray, under Xvfb in a
# private D-Bus session with throwaway HOME and XDG dirs (no helper running: not needed here).
#
# Cases (src-tauri/src/tray_support.rs decides; src-tauri/src/app.rs acts):
#   hidden-library  the tray library is hidden: in a private mount namespace (`unshare -m` as root,
#                   `unshare -rm` otherwise) /dev/null is bind-mounted over every
#                   libayatana-appindicator3.so.1 and libappindicator3.so.1 the loader knows
#                   (ldconfig -p). Before issue 12 the app panicked here (exit 101).
#   no-host         the library is there, but nothing runs a StatusNotifier host (a plain
#                   dbus-run-session has no org.kde.StatusNotifierWatcher).
#   host            a stand-in watcher with a host registered (cargo build -p warren-app
#                   --example sni_watcher) owns org.kde.StatusNotifierWatcher.
# What is asserted:
#   hidden-library, no-host: no panic; the window is shown (also with --autostart, which otherwise
#     stays in the tray); the log says "no tray icon: " and why (the case's own reason); asking
#     the window to close (WM_DELETE_WINDOW, tests/gui/wm-delete.c — there is no window manager)
#     ends the process, with status 0, within $CLOSE_WAIT s.
#   host: the app's icon registers with the watcher; no "no tray icon" line; the window is shown
#     (with --autostart: it is not, the app stays in the tray); closing it hides it and the app
#     keeps running (then it is stopped with SIGTERM).
# A screenshot of each shown window goes to $WARREN_TRAY_SCREENSHOTS/tray-CASE[-autostart].png
# (default $CARGO_TARGET_DIR/tray-screenshots) and must not be blank (more than 50 colours).
#
# Environment: WARREN_APP (default $CARGO_TARGET_DIR/debug/warren-app), WARREN_SNI_WATCHER
#   (default $CARGO_TARGET_DIR/debug/examples/sni_watcher), CI=true (a case that cannot run here
#   is a failure, not a skip).
# Exit status: 0 passed; 1 failed; 77 could not run (only without CI=true).
# Needs: xvfb-run, dbus-run-session, xdotool, cc + libX11 headers (libx11-dev, pulled in by
#   libgtk-3-dev), ImageMagick (import, convert), unshare (util-linux).
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
TARGET="${CARGO_TARGET_DIR:-$ROOT/target}"
APP="${WARREN_APP:-$TARGET/debug/warren-app}"
WATCHER="${WARREN_SNI_WATCHER:-$TARGET/debug/examples/sni_watcher}"
SHOTS="${WARREN_TRAY_SCREENSHOTS:-$TARGET/tray-screenshots}"
LIBRARIES=(libayatana-appindicator3.so.1 libappindicator3.so.1)
WINDOW_WAIT=60 # s until the window must be mapped
CLOSE_WAIT=15  # s from the close request until the process must be gone
SETTLE=4       # s to let the page render, and to see that nothing else happens

cannot_run() {
    echo "## TRAY TEST NOT RUN: $*" >&2
    [[ ${CI:-} == true ]] && { echo "CI=true: a test that cannot run is a failure" >&2; exit 1; }
    exit 77
}

fail() {
    echo "FAILED: $*" >&2
    if [[ -n ${LOG:-} && -f $LOG ]]; then
        echo "--- app log ---" >&2
        cat "$LOG" >&2
    fi
    exit 1
}

# ------------------------------------------------------------------------------------------------
# innermost: under Xvfb and a private D-Bus session

# app_windows — ids of the app's mapped windows titled "Warren" (none: empty).
app_windows() { xdotool search --onlyvisible --name '^Warren$' 2>/dev/null || true; }

# wait_for SECONDS CMD... — poll CMD every 0.25 s until it succeeds; fails after SECONDS.
wait_for() {
    local deadline=$((SECONDS + $1))
    shift
    until "$@"; do
        [[ $SECONDS -lt $deadline ]] || return 1
        sleep 0.25
    done
}

alive() { kill -0 "$APP_PID" 2>/dev/null; }
shown() { [[ -n $(app_windows) ]]; }
hidden() { [[ -z $(app_windows) ]]; }
gone() { ! alive; }
watcher_got_icon() { grep -q '^registered ' "$TMP/watcher.out"; }

screenshot() {
    local out colours
    out="$SHOTS/tray-$CASE${AUTOSTART:+-autostart}.png"
    mkdir -p "$SHOTS"
    import -window root "$out"
    colours="$(convert "$out" -format %k info:)"
    [[ $colours -gt 50 ]] || fail "the screenshot $out has $colours colours: the window did not render"
    echo "ok: the window rendered ($colours colours): $out"
}

close_window() {
    local ids
    mapfile -t ids < <(app_windows)
    "$TMP/wm-delete" "${ids[@]}" || fail "could not ask the window to close"
}

inside() {
    LOG="$TMP/app.log"
    local args=() status
    WATCHER_PID=""
    [[ -n $AUTOSTART ]] && args+=(--autostart)
    if [[ $CASE == host ]]; then
        "$WATCHER" >"$TMP/watcher.out" 2>&1 &
        WATCHER_PID=$!
        wait_for 10 grep -q '^ready$' "$TMP/watcher.out" || fail "the stand-in watcher did not start: $(cat "$TMP/watcher.out")"
        echo "ok: a StatusNotifier watcher with a host runs (stand-in)"
    fi
    "$APP" "${args[@]}" >"$LOG" 2>&1 &
    APP_PID=$!
    # What this started, by PID (already gone is fine: set -e applies in traps too).
    trap 'kill "$APP_PID" ${WATCHER_PID:+"$WATCHER_PID"} 2>/dev/null || true; wait 2>/dev/null || true' EXIT
    echo "started: ${APP##*/} ${args[*]} (pid $APP_PID)"

    if [[ $CASE == host ]]; then
        wait_for "$WINDOW_WAIT" watcher_got_icon || fail "the app's icon never registered with the watcher"
        echo "ok: the tray icon registered: $(grep '^registered ' "$TMP/watcher.out" | head -n 1)"
        if [[ -n $AUTOSTART ]]; then
            sleep "$SETTLE"
            alive || fail "the app exited"
            hidden || fail "started at login with a tray, the window was shown"
            echo "ok: --autostart with a tray: no window, the app stays in the tray"
        else
            wait_for "$WINDOW_WAIT" shown || fail "the window was never shown"
            sleep "$SETTLE"
            screenshot
            close_window
            wait_for "$CLOSE_WAIT" hidden || fail "the window is still shown after the close request"
            sleep "$SETTLE"
            alive || fail "closing the window ended the app although it has a tray"
            echo "ok: closing the window hid it; the app runs on in the tray"
        fi
        ! grep -q 'no tray icon' "$LOG" || fail "a tray exists, yet the app says there is none"
        grep -q 'panicked' "$LOG" && fail "the app panicked"
        kill -TERM "$APP_PID"
        echo "ok: with a tray, the app behaves as before"
        return 0
    fi

    if ! wait_for "$WINDOW_WAIT" shown; then
        if ! alive; then
            status=0
            wait "$APP_PID" || status=$?
            fail "the app exited (status $status) without showing its window"
        fi
        fail "the window was not shown within $WINDOW_WAIT s"
    fi
    echo "ok: the window is shown${AUTOSTART:+ although started with --autostart}"
    sleep "$SETTLE"
    alive || fail "the app exited after showing its window"
    grep -q 'panicked' "$LOG" && fail "the app panicked"
    local line
    line="$(grep -m1 'no tray icon: ' "$LOG")" || fail "the log does not say why there is no tray icon"
    echo "ok: the log says: ${line#*no tray icon: }"
    case $CASE in
        hidden-library)
            [[ $line == *"none of ${LIBRARIES[0]}, ${LIBRARIES[1]} could be loaded"* ]] ||
                fail "the reason is not the missing library" ;;
        no-host)
            [[ $line == *"nothing owns org.kde.StatusNotifierWatcher"* ]] ||
                fail "the reason is not the missing StatusNotifier host" ;;
    esac
    [[ -n $AUTOSTART ]] || screenshot
    close_window
    wait_for "$CLOSE_WAIT" gone || fail "the app still runs $CLOSE_WAIT s after its window was asked to close"
    status=0
    wait "$APP_PID" || status=$?
    [[ $status -eq 0 ]] || fail "the app exited with status $status after its window closed"
    echo "ok: closing the window quit the app (status 0)"
}

# ------------------------------------------------------------------------------------------------
# hidden-library: in a private mount namespace, hide the tray libraries, then run the session

hide_libraries() {
    local name path real ldconfig
    local -A hidden=()
    ldconfig="$(command -v ldconfig || echo /sbin/ldconfig)"
    for name in "${LIBRARIES[@]}"; do
        # Where the loader looks: its cache, and the default directories (a compat symlink such as
        # Debian's libappindicator3.so.1 is not in the cache by that name).
        while read -r path; do
            real="$(readlink -f "$path")"
            [[ -f $real && -z ${hidden[$real]:-} ]] || continue
            mount --bind /dev/null "$real" || fail "could not bind-mount /dev/null over $real"
            hidden[$real]=1
        done < <({
            "$ldconfig" -p | awk -v n="$name" '$1 == n { print $NF }'
            compgen -G "/usr/lib/*/$name" || true
            compgen -G "/lib/*/$name" || true
            compgen -G "/usr/local/lib/$name" || true
            compgen -G "/usr/lib/$name" || true
        })
    done
    if [[ ${#hidden[@]} -eq 0 ]]; then
        echo "note: no appindicator library is installed here: nothing to hide"
    else
        echo "ok: hidden (/dev/null bind-mounted over them, in this mount namespace only): ${!hidden[*]}"
    fi
}

session() {
    xvfb-run -a -s "-screen 0 1280x800x24" dbus-run-session -- "$0" --inside
}

# ------------------------------------------------------------------------------------------------
# outer

case "${1:-}" in
    --inside)
        inside
        exit 0 ;;
    --hidden)
        hide_libraries
        session
        exit $? ;;
esac

CASE=${1:?usage: tray.sh hidden-library|no-host|host [--autostart]}
AUTOSTART=""
case "${2:-}" in
    --autostart) AUTOSTART=1 ;;
    "") ;;
    *) echo "unknown argument '$2' (usage: tray.sh CASE [--autostart])" >&2; exit 2 ;;
esac
case $CASE in hidden-library | no-host | host) ;; *) echo "unknown case '$CASE'" >&2; exit 2 ;; esac

for tool in xvfb-run dbus-run-session xdotool cc import convert unshare; do
    command -v "$tool" >/dev/null 2>&1 || cannot_run "$tool is missing (scripts/setup.sh)"
done
[[ -x $APP ]] || { echo "no app binary at $APP: build it first (tests/gui/run.sh tray does)" >&2; exit 1; }
if [[ $CASE == host && ! -x $WATCHER ]]; then
    echo "no stand-in watcher at $WATCHER: cargo build -p warren-app --example sni_watcher" >&2
    exit 1
fi

TMP="$(mktemp -d /tmp/warren-tray.XXXXXX)"
trap 'rm -rf "$TMP"' EXIT
cc -O2 -o "$TMP/wm-delete" "$HERE/wm-delete.c" -lX11 || cannot_run "cannot build wm-delete.c (cc, libx11-dev)"
# A throwaway home, made before the D-Bus session so what it activates lands there too.
export HOME="$TMP/home" XDG_CONFIG_HOME="$TMP/config" XDG_DATA_HOME="$TMP/data" \
    XDG_CACHE_HOME="$TMP/cache" XDG_RUNTIME_DIR="$TMP/run"
mkdir -p "$HOME" "$XDG_CONFIG_HOME" "$XDG_DATA_HOME" "$XDG_CACHE_HOME" "$XDG_RUNTIME_DIR"
chmod 700 "$XDG_RUNTIME_DIR"
export WARREN_HELPER_SOCKET="$TMP/no-helper.sock"
export TMP CASE AUTOSTART APP WATCHER SHOTS

echo "=== tray: $CASE${AUTOSTART:+ (--autostart)}"
if [[ $CASE == hidden-library ]]; then
    if [[ $EUID -eq 0 ]]; then
        unshare=(unshare --mount --propagation private)
    else
        unshare=(unshare --map-root-user --mount --propagation private)
    fi
    "${unshare[@]}" true 2>/dev/null || cannot_run "cannot make a private mount namespace (${unshare[*]}): run as root"
    "${unshare[@]}" "$0" --hidden
else
    session
fi
