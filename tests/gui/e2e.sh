#!/usr/bin/env bash
# tests/gui/e2e.sh — the desktop app end to end: the real app, driven through WebDriver
# (tauri-driver + Debian's WebKitWebDriver) under Xvfb, against the real helper daemon whose
# tunnel lives in a network namespace, with a wireguard-go peer in a second one.
#
#   host namespace: Xvfb, a private D-Bus session with a throwaway unlocked gnome-keyring,
#                   tauri-driver → WebKitWebDriver → warren-app (WARREN_HELPER_SOCKET=$SOCK)
#   namespace a:    warren-helper daemon --socket $SOCK (a file, so the app reaches it) — the
#                   tunnel's interface, addresses and routes exist only here
#   namespace b:    wireguard-go, the peer; a and b joined by veth (198.18.0.0/24)
#   warren-demo:    `warren-helper demo --peer-only`, started in namespace a (its veth lives
#                   there), writing the client file the app is started to offer (--offer-demo)
#
# The story, each step asserting something that could fail:
#   1. helper missing  the app starts (with --offer-demo FILE) with nothing on its socket: the
#                      "helper is not running" screen names the socket, no demo card
#                                                                          → e2e-helper-missing.png
#   2. helper back     the daemon starts; "Try again" (unless the app's own retry was quicker)
#                      → the screen goes, the empty "No tunnels yet" view shows, with the
#                      "Try the local demo" card                         → e2e-demo-offer.png
#   3. invalid .conf   importing a .conf with a bad AllowedIPs line (through the real GTK file
#                      chooser, typed with xdotool) reports file:line and what is wrong; the
#                      tunnel list, the app's config dir and the daemon's tunnel list are
#                      unchanged                                          → e2e-invalid-conf.png
#   4. import          the good .conf: the tunnel appears, "Disconnected"; no demo card
#   5. connect         "Connected", "latest handshake N s ago" (a real handshake: the daemon's
#                      status agrees), then a bounded ping burst inside namespace a makes the
#                      peer's rx and tx shown in the window grow by at least the burst's
#                      payload                                            → e2e-connected.png
#   6. disconnect      "Disconnected"; the daemon reports no tunnel up; namespace a is exactly
#                      as before (no interface, address, route or rule left) → e2e-disconnected.png
#   7. demo            delete the tunnel: the empty view offers the demo again; "Import and
#                      connect" imports the demo's file (no private key in the config dir),
#                      selects it and connects it ("Connected", the daemon agrees), a ping
#                      from namespace a reaches the demo peer; disconnect; stopping the demo
#                      removes its file, its namespace and its veth  → e2e-demo-connected.png
#   8. helper gone     SIGTERM to the daemon (exits 0): the app shows the helper screen again
#
# Usage: tests/gui/e2e.sh          (as root; tests/gui/run.sh e2e builds what it needs first)
#        tests/gui/e2e.sh --check  only check that this machine can run it
# Environment: WARREN_APP (default $CARGO_TARGET_DIR/debug/warren-app), WARREN_E2E_HELPER
#   (default $CARGO_TARGET_DIR/debug/warren-helper), TAURI_DRIVER (default: from PATH, else
#   $CARGO_HOME/bin), WARREN_E2E_SCREENSHOTS (default $CARGO_TARGET_DIR/e2e-screenshots),
#   WARREN_E2E_TIMEOUT (whole run, default 300 s), WARREN_E2E_KEEP=1 (keep the temp dir),
#   CI=true (a run that cannot happen here — not root, a tool missing — is a failure, not a skip).
# Exit status: 0 passed; 1 failed; 77 could not run (only without CI=true).
#
# Only namespaces this script creates (wrt-<pid>-0-a/b) are changed, with 198.18.0.0/15
# addresses only; processes are stopped by PID; tests/netns/lib.sh's bookkeeping removes
# everything on every exit path, and the outer process repeats that as a safety net.
set -uo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
TARGET="${CARGO_TARGET_DIR:-$ROOT/target}"
export WARREN_APP="${WARREN_APP:-$TARGET/debug/warren-app}"
# Not $WARREN_BIN: scripts/test.sh points that at the release build, which its later `release`
# stage makes; this suite tests the helper built from this tree, next to the app.
export WARREN_E2E_HELPER="${WARREN_E2E_HELPER:-$TARGET/debug/warren-helper}"
export WARREN_E2E_SCREENSHOTS="${WARREN_E2E_SCREENSHOTS:-$TARGET/e2e-screenshots}"
# `cargo install` puts tauri-driver in the builder's ~/.cargo/bin, which root's PATH may lack.
TAURI_DRIVER="${TAURI_DRIVER:-$(command -v tauri-driver || echo "${CARGO_HOME:-$HOME/.cargo}/bin/tauri-driver")}"
export TAURI_DRIVER

# cannot_run MSG — say so loudly; a failure under CI, "not run" (77) otherwise.
cannot_run() {
    {
        echo "################################################################################"
        echo "## GUI END-TO-END TESTS NOT RUN: $*"
        echo "################################################################################"
    } >&2
    if [[ ${CI:-} == true ]]; then
        echo "CI=true: a test that cannot run is a failure" >&2
        exit 1
    fi
    exit 77
}

# ------------------------------------------------------------------------------------------------
# outer: check what the run needs, then run the inner part under a private D-Bus session with a
# throwaway keyring and an Xvfb display, bounded in time; clean up after it whatever happens.

if [[ ${1:-} != --inside ]]; then
    [[ $EUID -eq 0 ]] || cannot_run "needs root (network namespaces, TUN): sudo $0"
    missing=()
    [[ -x $TAURI_DRIVER ]] || missing+=("tauri-driver (cargo install tauri-driver --locked)")
    for c in WebKitWebDriver xvfb-run xdotool dbus-run-session gnome-keyring-daemon \
        node ip wireguard-go wg jq ping ss timeout; do
        command -v "$c" >/dev/null 2>&1 || missing+=("$c")
    done
    [[ ${#missing[@]} -eq 0 ]] || cannot_run "missing commands: ${missing[*]} (scripts/setup.sh installs them)"
    [[ -c /dev/net/tun ]] || cannot_run "no /dev/net/tun"
    # --check: only whether this machine can run the suite (tests/gui/run.sh asks before building).
    [[ ${1:-} == --check ]] && exit 0
    [[ -x $WARREN_APP ]] || cannot_run "no app binary at $WARREN_APP (cargo build -p warren-app)"
    [[ -x $WARREN_E2E_HELPER ]] || cannot_run "no helper binary at $WARREN_E2E_HELPER (cargo build -p warren-helper)"

    WRT_TMP="$(mktemp -d /tmp/wrt-e2e.XXXXXX)"
    chmod 700 "$WRT_TMP"
    export WRT_TMP WRT_RUN=$$ WRT_TEST_NO=0
    rc=0
    timeout -k 10 "${WARREN_E2E_TIMEOUT:-300}" "$HERE/keyring-secret-service.sh" \
        xvfb-run -a -s "-screen 0 1280x800x24" "$0" --inside || rc=$?
    [[ $rc == 124 ]] && echo "FAIL: the end-to-end run did not finish within ${WARREN_E2E_TIMEOUT:-300} s" >&2
    # Safety net: undo anything the inner part recorded but could not remove (e.g. it was killed).
    # shellcheck source=tests/netns/lib.sh
    source "$ROOT/tests/netns/lib.sh"
    wrt_cleanup_state "$WRT_TMP"
    if [[ -n ${WARREN_E2E_KEEP:-} ]]; then
        echo "kept $WRT_TMP" >&2
    else
        rm -rf "$WRT_TMP"
    fi
    exit "$rc"
fi

# ------------------------------------------------------------------------------------------------
# inner: the test itself (HOME, XDG dirs, D-Bus session, keyring and DISPLAY are throwaway ones).

WARREN_BIN="$WARREN_E2E_HELPER"
# shellcheck source=tests/netns/lib.sh
source "$ROOT/tests/netns/lib.sh"
# The daemon helpers (daemon_paths, daemon_start, daemon_stop, wh, daemon_state) of the netns
# suite's daemon group; its `register` calls are not needed here.
register() { :; }
# shellcheck source=tests/netns/test-daemon.sh
source "$ROOT/tests/netns/test-daemon.sh"
wrt_begin

APP_ID=net.warren.desktop
APP_CONFIG="$XDG_CONFIG_HOME/$APP_ID"
SHOTS="$WARREN_E2E_SCREENSHOTS"
BURST_COUNT=30
BURST_SIZE=1000
mkdir -p "$SHOTS"
chmod 755 "$SHOTS"
rm -f "$SHOTS"/e2e-*.png

export WD_STATE="$WRT_TMP/wd.session"
wd() { node "$HERE/e2e/wd.mjs" "$@"; }

step() { log "--- $*"; }

# free_port — a TCP port nothing listens on in this namespace (bounded: 50 tries).
free_port() {
    local p i
    for ((i = 0; i < 50; i++)); do
        p=$((20000 + RANDOM % 20000))
        [[ -z $(ss -Hltn "sport = :$p") && -z $(ss -Hltn "sport = :$((p + 1))") ]] && { echo "$p"; return 0; }
    done
    fail "no free TCP port found"
}

# children PID — the direct children of PID.
children() { ps -o pid= --ppid "$1" 2>/dev/null | tr -d ' ' || true; }

# descendants PID — every process below PID, depth first (ours: we started PID).
descendants() {
    local c
    for c in $(children "$1"); do
        echo "$c"
        descendants "$c"
    done
}

shot() {
    wd shot "$SHOTS/e2e-$1.png" >/dev/null || fail "screenshot $1"
    chmod 644 "$SHOTS/e2e-$1.png" # an artifact, readable by whoever collects it
    log "screenshot: $SHOTS/e2e-$1.png"
}

# pick_file PATH — answer the app's GTK file chooser ("Import WireGuard configurations"), as a
# user would: type the path into its location field and press Enter. Bounded: 20 s to appear,
# 10 s to close.
pick_file() {
    local path=$1 wid i
    wid="$(timeout 20 xdotool search --sync --onlyvisible --name '^Import WireGuard configurations$' | head -n 1)" ||
        fail "the file chooser did not open within 20 s"
    [[ -n $wid ]] || fail "the file chooser did not open within 20 s"
    xdotool windowfocus --sync "$wid" || fail "could not focus the file chooser"
    xdotool key --window "$wid" --clearmodifiers ctrl+l
    xdotool type --window "$wid" --delay 15 "$path"
    sleep 0.3 # let GTK's location completion settle before Enter (not an assertion)
    xdotool key --window "$wid" Return
    for ((i = 0; i < 100; i++)); do
        xdotool search --onlyvisible --name '^Import WireGuard configurations$' >/dev/null 2>&1 || return 0
        sleep 0.1
    done
    fail "the file chooser was still open 10 s after choosing $path"
}

# peer_bytes rx|tx — the exact counter the window shows for the peer.
peer_bytes() { wd attr "[data-test=peer-$1]" data-bytes; }

# app_files — the app's stored tunnels and settings, with checksums (to prove "unchanged").
app_files() {
    if [[ -d $APP_CONFIG ]]; then
        (cd "$APP_CONFIG" && find . -type f -print0 | sort -z | xargs -0r sha256sum)
    fi
}

# ------------------------------------------------------------------------------------------------
step "topology: namespace a (the daemon's) and b (wireguard-go), joined by veth"
need_kinds wggo
daemon_paths
underlay_pair
key_new a
key_new b
psk_new ab
# The tunnel's name = the file's name = the interface's name in namespace a; unique to this run
# because /var/run/wireguard/<name>.sock is shared by every namespace.
TUNNEL="e2e-$WRT_RUN"
TUNNEL="${TUNNEL:0:15}"
IF_B="$(ifname B)"
mkdir -p "$WRT_TMP/import"
CONF="$WRT_TMP/import/$TUNNEL.conf"
BAD="$WRT_TMP/import/broken.conf"
conf_interface "$CONF" key=a addr="$TUN4_A/24"
conf_peer "$CONF" pub="$(key_pub b)" psk="$(psk ab)" allowed="$TUN4_B/32" \
    endpoint="$UNDER4_B:$WG_PORT" keepalive=5
conf_interface "$WRT_TMP/$IF_B.conf" key=b addr="$TUN4_B/24" port="$WG_PORT"
conf_peer "$WRT_TMP/$IF_B.conf" pub="$(key_pub a)" psk="$(psk ab)" allowed="$TUN4_A/32"
# The invalid file: the good one with a /33 in AllowedIPs.
sed "s|^AllowedIPs = $TUN4_B/32|AllowedIPs = $TUN4_B/33|" "$CONF" >"$BAD"
BAD_LINE="$(grep -n "^AllowedIPs = $TUN4_B/33$" "$BAD" | cut -d: -f1)"
[[ $BAD_LINE =~ ^[0-9]+$ ]] || fail "could not build the invalid fixture"
chmod 600 "$CONF" "$BAD" "$WRT_TMP/$IF_B.conf"
peer_up wggo b "$IF_B" "$WRT_TMP/$IF_B.conf"
WRT_IFACES+=("$TUNNEL")
echo "$TUNNEL" >>"$WRT_TMP/.ifaces"
# shellcheck disable=SC2034  # lib.sh's map, read by wg_show and the diagnostics
WRT_PEER_NS[$TUNNEL]=a

step "the demo peer: warren-helper demo --peer-only in namespace a (scripts/run.sh's demo)"
[[ ! -e /run/netns/warren-demo ]] || fail "namespace warren-demo exists before the test (a running demo? a leftover: ip netns del warren-demo)"
# From here on a warren-demo namespace is ours (lib.sh's cleanup removes it if the demo does not).
touch "$WRT_TMP/.demo"
NS_BEFORE_DEMO="$(daemon_state a)"
# The demo tunnel is named after the file: unique to this run, like $TUNNEL.
DEMO_NAME="d-$WRT_RUN"
DEMO_NAME="${DEMO_NAME:0:15}"
WRT_IFACES+=("$DEMO_NAME")
echo "$DEMO_NAME" >>"$WRT_TMP/.ifaces"
mkdir -p "$WRT_TMP/offer"
DEMO_CONF="$WRT_TMP/offer/$DEMO_NAME.conf"
DEMO_PEER=198.18.251.2
# nsenter --net (not `ip netns exec`, which adds a private mount namespace hiding the demo's own
# `ip netns add warren-demo` from everyone else).
RUST_LOG=info env --default-signal=INT,QUIT nsenter --net="/run/netns/$(ns a)" "$WARREN_BIN" demo \
    --peer-only --client-conf "$DEMO_CONF" --key-file "$WRT_TMP/demo.keys" >"$WRT_TMP/demo.log" 2>&1 </dev/null &
DEMO_PID=$!
wrt_record_pid "$DEMO_PID"
note_log demo "warren-helper demo --peer-only" "$WRT_TMP/demo.log"
demo_ready() {
    kill -0 "$DEMO_PID" 2>/dev/null || fail "the demo exited early: $(tail -n 30 "$WRT_TMP/demo.log")"
    [[ -f $DEMO_CONF ]]
}
wait_until 60 "the demo to write $DEMO_CONF" demo_ready
log "demo peer ready; its client file: $DEMO_CONF"
NS_BEFORE="$(daemon_state a)"

step "start tauri-driver (WebKitWebDriver) on this display ($DISPLAY)"
# The app inherits this environment through tauri-driver and WebKitWebDriver. No accessibility
# bus: nothing here reads it, and it only adds noise to the log.
export WARREN_HELPER_SOCKET="$SOCK" RUST_LOG="${RUST_LOG:-info}" NO_AT_BRIDGE=1
PORT="$(free_port)"
export WD_URL="http://127.0.0.1:$PORT"
"$TAURI_DRIVER" --port "$PORT" --native-port "$((PORT + 1))" >"$WRT_TMP/driver.log" 2>&1 &
DRIVER_PID=$!
wrt_record_pid "$DRIVER_PID"
note_log app+driver "tauri-driver, WebKitWebDriver, warren-app" "$WRT_TMP/driver.log"
wait_until 20 "tauri-driver answering on port $PORT" wd status

# ------------------------------------------------------------------------------------------------
step "1. helper missing: start the app with nothing listening on $SOCK"
[[ ! -e $SOCK ]] || fail "$SOCK exists before the daemon started"
wd start "$WARREN_APP" --offer-demo "$DEMO_CONF" --timeout 60 >/dev/null || fail "WebDriver could not start the app"
for p in $(descendants "$DRIVER_PID"); do
    [[ $(readlink "/proc/$p/exe" 2>/dev/null) == "$(readlink -f "$WARREN_APP")" ]] && APP_PID=$p
done
[[ -n ${APP_PID:-} ]] || fail "no warren-app process below tauri-driver"
wrt_record_pid "$APP_PID"
log "app running (pid $APP_PID)"
title="$(wd wait '[data-test=helper-screen] h1' --timeout 30)" || fail "no helper screen"
[[ $title == "Warren’s helper is not running" ]] || fail "helper screen title: '$title'"
text="$(wd text '[data-test=helper-screen]')"
[[ $text == *"Nothing answers on $SOCK"* ]] || fail "the helper screen does not name the socket: $text"
[[ $(wd count '[data-test=demo-card]') == 0 ]] || fail "the demo is offered while the helper is missing"
shot helper-missing

step "2. helper back: start the daemon in namespace a, press 'Try again'"
daemon_start a
# The app also retries by itself (backoff 0.5-5 s), so it may be back before the click.
wd click '[data-test=retry]' --timeout 2 2>/dev/null || log "the app reconnected before 'Try again' was pressed"
wd wait '[data-test=helper-screen]' --gone --timeout 15 || fail "the helper screen stayed after the daemon started"
wd wait '[data-key=empty] h1' --text '^No tunnels yet$' --timeout 10 >/dev/null || fail "no empty view"
[[ $(wd count '[data-test=tunnel-list] li') == 0 ]] || fail "the tunnel list is not empty at start"
card="$(wd wait '[data-test=demo-card]' --timeout 10)" || fail "no demo card in the empty view"
# (Lower-cased: WebDriver returns the rendered text, and the heading is upper-cased by CSS.)
[[ ${card,,} == *"try the local demo"* && $card == *"network namespace"* && $card == *"$DEMO_NAME"* ]] ||
    fail "the demo card does not say what it is: $card"
shot demo-offer

step "3. invalid .conf: import $(basename "$BAD") (line $BAD_LINE has a /33)"
files_before="$(app_files)"
daemon_list_before="$(wh list)" || fail "warren-helper list failed"
wd click '[data-test=import]'
pick_file "$BAD"
report="$(wd wait '[data-test=import-report] li.error' --timeout 15)" || fail "no import report"
log "import report: $report"
[[ $report == *"broken.conf:$BAD_LINE: AllowedIPs"* ]] || fail "the error does not name broken.conf:$BAD_LINE and the key: $report"
[[ $report == *"$TUN4_B/33"* && $report == *"prefix length 33"* ]] || fail "the error does not say what is wrong: $report"
shot invalid-conf
wd click '[data-test=close]'
wd wait '[data-test=dialog]' --gone --timeout 5 || fail "the report did not close"
[[ $(wd count '[data-test=tunnel-list] li') == 0 ]] || fail "a tunnel appeared in the list after the invalid import"
wd wait '[data-key=empty]' --timeout 2 >/dev/null || fail "the empty view went away after the invalid import"
[[ $(app_files) == "$files_before" ]] || fail "the app's config dir changed after the invalid import:
$(diff <(echo "$files_before") <(app_files))"
[[ $(wh list) == "$daemon_list_before" ]] || fail "the daemon's tunnel list changed after the invalid import"
log "unchanged: tunnel list (empty), $APP_CONFIG, the daemon's list"

step "4. import $(basename "$CONF")"
wd click '[data-test=import]'
pick_file "$CONF"
wd wait ".toast" --text "^Imported $TUNNEL\\.\$" --timeout 15 >/dev/null || fail "no 'Imported' toast"
wd wait "[data-test=tunnel-list] li[data-key='$TUNNEL']" --timeout 10 >/dev/null || fail "$TUNNEL not in the list"
[[ $(wd count '[data-test=secrets-banner]') == 0 ]] || fail "the app says it has no keyring: $(wd text '[data-test=secrets-banner]')"
wd wait '[data-test=state]' --text '^Disconnected$' --timeout 10 >/dev/null || fail "the imported tunnel is not shown disconnected"
[[ $(wd count '[data-test=demo-card]') == 0 ]] || fail "the demo is still offered with a tunnel in the list"
[[ -f $APP_CONFIG/tunnels/$TUNNEL.conf || -n $(find "$APP_CONFIG" -name "$TUNNEL.conf") ]] ||
    fail "the app did not store $TUNNEL.conf under $APP_CONFIG"
if grep -rqF -- "$(key_priv a)" "$APP_CONFIG"; then
    fail "the private key was written to the app's config dir (it belongs in the keyring)"
fi

step "5. connect"
wd click '[data-test=primary]' --text '^Connect$'
wd wait '[data-test=state]' --text '^Connected$' --timeout 30 >/dev/null || fail "not connected within 30 s"
detail="$(wd wait '[data-test=detail]' --text 'latest handshake [0-9]+ s ago' --timeout 10)" ||
    fail "no handshake age shown"
log "detail: $detail"
age="$(wd text '[data-test=peer-handshake]')"
[[ $age =~ ^[0-9]+\ s\ ago$ ]] || fail "the peer's handshake age: '$age'"
hs_ui="$(wd attr '[data-test=peer-handshake]' data-unix-secs)"
status="$(wh status "$TUNNEL" --json)" || fail "warren-helper status failed"
[[ $(jq -r '.[0].state.kind' <<<"$status") == connected ]] || fail "the daemon does not say connected: $status"
[[ $(jq -r '.[0].kind' <<<"$status") == user ]] || fail "not a user tunnel: $status"
hs_daemon="$(jq -r '.[0].peers[0].last_handshake_unix_secs' <<<"$status")"
[[ $hs_ui == "$hs_daemon" && $hs_ui -gt 0 ]] || fail "handshake: the window says $hs_ui, the daemon $hs_daemon"
ip -n "$(ns a)" link show "$TUNNEL" >/dev/null || fail "no interface $TUNNEL in namespace a"
rx0="$(peer_bytes rx)"
tx0="$(peer_bytes tx)"
log "connected; handshake at $hs_ui ($age); window shows rx $rx0 B, tx $tx0 B"
# The burst runs in the background (bounded: $BURST_COUNT probes, 20 s deadline; ping exits
# non-zero unless every probe is answered) so the screenshot can catch traffic flowing.
log "ping burst: $BURST_COUNT x $BURST_SIZE B from namespace a to $TUN4_B through the tunnel"
ns_exec a ping -n -q -c "$BURST_COUNT" -i 0.2 -s "$BURST_SIZE" -W 2 -w 20 "$TUN4_B" >"$WRT_TMP/ping.log" 2>&1 &
PING_PID=$!
wrt_record_pid "$PING_PID"
# grows BYTES — the window's rx and tx both grew by at least BYTES since the burst began.
grows() {
    local rx tx
    rx="$(peer_bytes rx)" && tx="$(peer_bytes tx)" || return 1
    [[ $rx -ge $((rx0 + $1)) && $tx -ge $((tx0 + $1)) ]]
}
wait_until 15 "the window's rx and tx to grow while the burst runs" grows $((BURST_COUNT * BURST_SIZE / 4))
shot connected
rc=0
wait "$PING_PID" || rc=$?
[[ $rc == 0 ]] || fail "the ping burst lost replies (exit $rc): $(cat "$WRT_TMP/ping.log")"
log "$(grep 'packets transmitted' "$WRT_TMP/ping.log")"
wait_until 15 "the window's rx and tx to grow by >= $((BURST_COUNT * BURST_SIZE)) B each (the burst's payload)" \
    grows $((BURST_COUNT * BURST_SIZE))
rx1="$(peer_bytes rx)"
tx1="$(peer_bytes tx)"
log "rx $rx0 -> $rx1 B, tx $tx0 -> $tx1 B; shown as $(wd text '[data-test=peer-rx]') / $(wd text '[data-test=peer-tx]')"
[[ $(wd text '[data-test=peer-rx]') =~ ^[0-9.]+\ (B|kB|MB)$ ]] || fail "rx is not shown as a size"

step "6. disconnect"
wd click '[data-test=primary]' --text '^Disconnect$'
wd wait '[data-test=state]' --text '^Disconnected$' --timeout 20 >/dev/null || fail "not disconnected within 20 s"
status="$(wh status --json)" || fail "warren-helper status failed"
[[ $(jq 'length' <<<"$status") == 0 ]] || fail "the daemon still reports a tunnel up: $status"
! ip -n "$(ns a)" link show "$TUNNEL" >/dev/null 2>&1 || fail "$TUNNEL still exists in namespace a"
[[ ! -e $WG_RUN_DIR/$TUNNEL.sock ]] || fail "the UAPI socket $WG_RUN_DIR/$TUNNEL.sock is left"
[[ $(daemon_state a) == "$NS_BEFORE" ]] || fail "namespace a differs from before the tunnel:
$(diff <(echo "$NS_BEFORE") <(daemon_state a))"
log "the daemon reports nothing up; namespace a is as before"
shot disconnected

step "7. demo: delete $TUNNEL, take the offered demo"
wd click '[data-test=delete]'
wd click '[data-test=confirm]' --text '^Delete$'
wd wait '[data-test=demo-card]' --timeout 10 >/dev/null || fail "no demo card once the list is empty again"
wd click '[data-test=demo-accept]' --text '^Import and connect$'
wd wait ".toast" --text "^Imported $DEMO_NAME\\. Connecting" --timeout 15 >/dev/null || fail "no 'Imported … Connecting' toast"
wd wait "[data-test=tunnel-list] li[data-key='$DEMO_NAME']" --timeout 10 >/dev/null || fail "$DEMO_NAME not in the list"
wd wait '.tunnel-view h1' --text "^$DEMO_NAME\$" --timeout 5 >/dev/null || fail "the demo tunnel is not selected"
wd wait '[data-test=state]' --text '^Connected$' --timeout 30 >/dev/null || fail "the demo tunnel did not connect within 30 s"
[[ $(wd count '[data-test=demo-card]') == 0 ]] || fail "the demo is still offered after it was taken"
status="$(wh status "$DEMO_NAME" --json)" || fail "warren-helper status failed"
[[ $(jq -r '.[0].state.kind' <<<"$status") == connected && $(jq -r '.[0].kind' <<<"$status") == user ]] ||
    fail "the daemon does not report the demo as a connected user tunnel: $status"
[[ -n $(find "$APP_CONFIG" -name "$DEMO_NAME.conf") ]] || fail "the app did not store $DEMO_NAME.conf"
if grep -rqF -- "$(grep '^PrivateKey' "$DEMO_CONF" | cut -d' ' -f3)" "$APP_CONFIG"; then
    fail "the demo's private key was written to the app's config dir (it belongs in the keyring)"
fi
ns_exec a ping -n -q -c 3 -i 0.3 -W 2 -w 10 "$DEMO_PEER" >"$WRT_TMP/ping-demo.log" 2>&1 ||
    fail "no ping reply from the demo peer $DEMO_PEER through $DEMO_NAME: $(cat "$WRT_TMP/ping-demo.log")"
log "the demo peer answers through $DEMO_NAME: $(grep 'packets transmitted' "$WRT_TMP/ping-demo.log")"
shot demo-connected
wd click '[data-test=primary]' --text '^Disconnect$'
wd wait '[data-test=state]' --text '^Disconnected$' --timeout 20 >/dev/null || fail "the demo tunnel did not disconnect"
[[ $(daemon_state a) == "$NS_BEFORE" ]] || fail "namespace a differs after the demo tunnel went down:
$(diff <(echo "$NS_BEFORE") <(daemon_state a))"
kill -TERM "$DEMO_PID"
wait_until 20 "the demo (pid $DEMO_PID) to exit after SIGTERM" bash -c "! kill -0 $DEMO_PID 2>/dev/null"
rc=0
wait "$DEMO_PID" || rc=$?
[[ $rc == 0 ]] || fail "the demo exited with status $rc after SIGTERM: $(tail -n 20 "$WRT_TMP/demo.log")"
[[ ! -e $DEMO_CONF ]] || fail "the demo left its client file $DEMO_CONF"
[[ ! -e /run/netns/warren-demo ]] || fail "the demo left namespace warren-demo"
[[ $(daemon_state a) == "$NS_BEFORE_DEMO" ]] || fail "namespace a differs from before the demo:
$(diff <(echo "$NS_BEFORE_DEMO") <(daemon_state a))"
log "demo stopped: its file, namespace and veth are gone"

step "8. helper gone: stop the daemon"
daemon_stop
wd wait '[data-test=helper-screen] h1' --text 'helper is not running' --timeout 20 >/dev/null ||
    fail "the app did not show the helper screen after the daemon stopped"
[[ $(wd count "[data-test=tunnel-list] li[data-key='$DEMO_NAME']") == 1 ]] || fail "the stored tunnel left the list"

step "close the app"
wd stop --timeout 20 || fail "could not end the WebDriver session"
wait_until 10 "the app (pid $APP_PID) to exit" bash -c "! kill -0 $APP_PID 2>/dev/null"
expect_no_keys "the app's files and logs" "$WRT_TMP/driver.log" "$WRT_TMP"/daemon.*.log
log "e2e passed; screenshots in $SHOTS"
