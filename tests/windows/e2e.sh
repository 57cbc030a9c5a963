#!/usr/bin/env bash
# tests/windows/e2e.sh HELPER_EXE WORKDIR — the Windows daemon and CLI end to end under Wine,
# over the real named pipe \\.\pipe\warren-helper (private to this prefix's wineserver). Called
# by tests/windows/run.sh, which has built the helper, the stub DLL, pipeprobe.exe and the prefix.
#
# Checks, each printed as `ok: ...` (the first failure stops the run, with the daemon's log):
#   - `warren-helper.exe daemon` (console mode) serves the pipe; a second server of the pipe is
#     refused (FILE_FLAG_FIRST_PIPE_INSTANCE): a second daemon exits 1 while the first keeps
#     serving — if Wine lets a second instance be created, that is reported as Wine not enforcing
#     the flag (README, per-OS notes) and no second daemon is started;
#   - import of a .conf (198.18.x.x addresses only), list, status and status --json;
#     an invalid .conf refused with exit 7, naming the line;
#   - up without wintun.dll: exit 1 and the message naming the missing wintun.dll, and the daemon's
#     answer (read raw by pipeprobe.exe) of kind missing_feature, not "invalid configuration";
#     the same for a full tunnel, whose kill switch (WFP) is checked first; nothing is then up;
#   - down of a tunnel that is not up, remove, list empty again;
#   - raw frames (pipeprobe.exe): garbage after the hello and a frame that is not JSON answered
#     with a `closing` reason, an oversized length prefix refused on its length, a request before
#     the hello refused, a truncated frame: each closes only its own connection; the daemon still
#     answers afterwards;
#   - a client whose token has every group deny-only (not SYSTEM, not Administrators, not in
#     `Warren Users`): the pipe's DACL must refuse it — if Wine lets it in instead, that is
#     reported as Wine not enforcing pipe DACLs (README, per-OS notes) and checked no further;
#   - the daemon stops on ctrl-c (SIGINT, which Wine turns into CTRL_C_EVENT) within 20 s.
# Bounded waits throughout; only the processes started here are signalled.
set -uo pipefail

HELPER=${1:?usage: e2e.sh HELPER_EXE WORKDIR}
WORK=${2:?usage: e2e.sh HELPER_EXE WORKDIR}
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
RUN="$ROOT/tests/windows/wine-run.sh"
PROBE="$WORK/pipeprobe.exe"
PIPE='\\.\pipe\warren-helper'
DIR="$WORK/e2e"
PROTOCOL_VERSION="$(sed -n 's/^pub const PROTOCOL_VERSION: u32 = \([0-9]*\);/\1/p' \
    "$ROOT/helper/proto/src/ipc/messages.rs")"
DAEMON_PID=""
OUT="" RC=0

say() { printf '[windows/e2e] %s\n' "$*" >&2; }
ok() { printf '[windows/e2e] ok: %s\n' "$*" >&2; }
fail() {
    printf '[windows/e2e] FAILED: %s\n' "$*" >&2
    if [[ -f $DIR/daemon.log ]]; then
        echo "--- daemon log (last 40 lines)" >&2
        tail -n 40 "$DIR/daemon.log" >&2
    fi
    stop_daemon
    exit 1
}

# A path under / as Wine's drive Z: sees it.
winpath() { printf 'Z:%s' "${1//\//\\}"; }

# capture CMD... — run CMD (bounded), its stdout+stderr in OUT, its status in RC. Through a file,
# not a pipe: a Windows program can leave Wine's helper processes behind holding its stdout, so
# reading a pipe to its end could wait for as long as the wineserver lives.
capture() {
    timeout 60 "$@" >"$DIR/out" 2>&1 </dev/null
    RC=$?
    OUT="$(<"$DIR/out")"
    # Wine's console output ends lines with CR LF.
    OUT=${OUT//$'\r'/}
}

# helper ARGS... — the Windows CLI.
helper() { capture "$RUN" "$HELPER" "$@"; }

expect_rc() {
    local want=$1 what=$2
    [[ $RC == "$want" ]] || fail "$what: exit $RC, expected $want; output: $OUT"
}

expect_out() {
    local pattern=$1 what=$2
    grep -qE -- "$pattern" <<<"$OUT" || fail "$what: output does not match /$pattern/: $OUT"
}

stop_daemon() {
    [[ -n $DAEMON_PID ]] || return 0
    if kill -0 "$DAEMON_PID" 2>/dev/null; then
        kill -KILL "$DAEMON_PID" 2>/dev/null
        wait "$DAEMON_PID" 2>/dev/null
    fi
    DAEMON_PID=""
}

write_confs() {
    local key peer
    helper genkey
    expect_rc 0 "genkey"
    key=$OUT
    helper genkey
    expect_rc 0 "genkey"
    printf '%s\n' "$OUT" >"$DIR/peer.key"
    timeout 60 "$RUN" "$HELPER" pubkey <"$DIR/peer.key" >"$DIR/out" 2>&1
    RC=$?
    expect_rc 0 "pubkey"
    peer="$(tr -d '\r' <"$DIR/out")"
    rm -f "$DIR/peer.key"
    [[ $key =~ ^[A-Za-z0-9+/]{43}=$ && $peer =~ ^[A-Za-z0-9+/]{43}=$ ]] ||
        fail "genkey/pubkey under Wine gave '$key' / '$peer'"
    ok "genkey and pubkey"
    cat >"$DIR/wine0.conf" <<EOF
[Interface]
PrivateKey = $key
Address = 198.18.77.1/24

[Peer]
PublicKey = $peer
AllowedIPs = 198.18.77.0/24
Endpoint = 198.18.78.1:51820
PersistentKeepalive = 25
EOF
    # A full tunnel: the kill switch (auto) is on for it, so the WFP check runs first.
    cat >"$DIR/wine1.conf" <<EOF
[Interface]
PrivateKey = $key
Address = 198.18.79.1/24

[Peer]
PublicKey = $peer
AllowedIPs = 0.0.0.0/0
Endpoint = 198.18.78.1:51820
EOF
    cat >"$DIR/bad.conf" <<EOF
[Interface]
PrivateKey = $key
Address = 198.18.77.1/24

[Peer]
PublicKey = not-a-key
AllowedIPs = 198.18.77.0/24
EOF
}

start_daemon() {
    "$RUN" "$HELPER" daemon --state-dir "$(winpath "$DIR/state")" \
        --tunnels-dir "$(winpath "$DIR/tunnels")" --no-log-files >"$DIR/daemon.log" 2>&1 &
    DAEMON_PID=$!
    local deadline=$((SECONDS + 60))
    while ((SECONDS < deadline)); do
        kill -0 "$DAEMON_PID" 2>/dev/null || fail "the daemon exited during start-up"
        helper list
        [[ $RC == 0 ]] && break
        [[ $RC == 3 ]] || fail "list while the daemon starts: exit $RC: $OUT"
        sleep 1
    done
    [[ $RC == 0 ]] || fail "the daemon did not serve $PIPE within 60 s"
    ok "the daemon serves $PIPE (pid $DAEMON_PID)"
}

# A second server of the pipe must be refused (FILE_FLAG_FIRST_PIPE_INSTANCE), so no second daemon
# can serve or squat it. Wine 8 does not enforce the flag: probed first, and then not tried with
# a second daemon (it would take a share of the connections).
check_second_daemon() {
    probe first
    expect_rc 0 "pipeprobe first"
    if grep -qE '^created$' <<<"$OUT"; then
        say "NOTE: Wine created a second instance of $PIPE with FILE_FLAG_FIRST_PIPE_INSTANCE while the daemon serves it: Wine does not enforce the flag (README, per-OS notes); a second daemon's refusal is not testable here"
        return 0
    fi
    grep -qE '^refused 5$' <<<"$OUT" || fail "pipeprobe first: unexpected: $OUT"
    helper daemon --state-dir "$(winpath "$DIR/state2")" --tunnels-dir "$(winpath "$DIR/tunnels")" \
        --no-log-files
    expect_rc 1 "a second daemon on the same pipe"
    expect_out 'failed to create the pipe' "a second daemon on the same pipe"
    kill -0 "$DAEMON_PID" 2>/dev/null || fail "the first daemon died when a second one started"
    ok "a second daemon is refused the pipe (exit 1: ${OUT##*$'\n'})"
}

check_tunnels() {
    helper import "$(winpath "$DIR/wine0.conf")"
    expect_rc 0 "import wine0.conf"
    [[ -f $DIR/tunnels/wine0.conf ]] || fail "import wrote no $DIR/tunnels/wine0.conf"
    ok "import"

    helper import "$(winpath "$DIR/bad.conf")"
    expect_rc 7 "import bad.conf"
    expect_out 'bad\.conf:6: PublicKey: not a valid WireGuard key' "import bad.conf"
    [[ ! -e $DIR/tunnels/bad.conf ]] || fail "the invalid bad.conf was installed"
    ok "an invalid .conf is refused with exit 7 (${OUT##*$'\n'})"

    helper list
    expect_rc 0 "list"
    expect_out 'wine0' "list"
    ok "list names wine0"

    helper status
    expect_rc 0 "status"
    helper status --json
    expect_rc 0 "status --json"
    jq -e 'type == "array" or type == "object"' >/dev/null <<<"$OUT" ||
        fail "status --json is not JSON: $OUT"
    ok "status and status --json ($(jq -c . <<<"$OUT" | head -c 200))"

    helper up wine0
    expect_rc 1 "up wine0 without wintun.dll"
    expect_out 'wintun\.dll is missing; download Wintun from https://www\.wintun\.net/' \
        "up wine0 without wintun.dll"
    ok "up without Wintun: exit 1, ${OUT##*$'\n'}"
    probe connect wine0
    expect_out '^frame \{"response":\{"id":1,"result":\{"error":\{"kind":"missing_feature"' \
        "the daemon's answer to connecting wine0"
    ok "the daemon's answer is a missing feature: ${OUT##*$'\n'}"
    kill -0 "$DAEMON_PID" 2>/dev/null || fail "the daemon died on a failed up"

    # The full tunnel: WFP (the kill switch) is checked before the TUN driver.
    helper import "$(winpath "$DIR/wine1.conf")"
    expect_rc 0 "import wine1.conf"
    helper up wine1
    expect_rc 1 "up wine1 (full tunnel, kill switch on)"
    # Wine 8's FwpmEngineOpen0 fails (1764, RPC_S_CANNOT_SUPPORT): the kill switch's check says so.
    expect_out "kill switch cannot work here: .FwpmEngineOpen0 \\(Windows Filtering Platform\\). failed" \
        "up wine1 (full tunnel, kill switch on)"
    ok "up of a full tunnel: exit 1, ${OUT##*$'\n'}"
    probe connect wine1
    expect_out '^frame \{"response":\{"id":1,"result":\{"error":\{"kind":"missing_feature"' \
        "the daemon's answer to connecting wine1"
    ok "the daemon's answer is a missing feature"
    helper remove wine1
    expect_rc 0 "remove wine1"

    helper status --json
    expect_rc 0 "status --json after the failed up"
    if jq -e '.. | objects | select(.state? == "up" or .state? == "connecting")' >/dev/null <<<"$OUT"; then
        fail "a tunnel is up or connecting after the failed up: $OUT"
    fi
    ok "nothing is up after the failed up"

    helper down wine0
    say "down wine0 (not up): exit $RC: ${OUT##*$'\n'}"
    [[ $RC == 0 || $RC == 5 ]] || fail "down wine0: exit $RC: $OUT"
    ok "down"

    helper remove wine0
    expect_rc 0 "remove wine0"
    [[ ! -e $DIR/tunnels/wine0.conf ]] || fail "remove left $DIR/tunnels/wine0.conf"
    helper list
    expect_rc 0 "list after remove"
    if grep -q wine0 <<<"$OUT"; then fail "list still names wine0: $OUT"; fi
    ok "remove, and list no longer names wine0"
}

# probe MODE — run pipeprobe.exe, output in OUT.
probe() { capture "$RUN" "$PROBE" "$1" "$PIPE" "$PROTOCOL_VERSION" "${@:2}"; }

check_frames() {
    probe garbage
    expect_rc 0 "pipeprobe garbage"
    expect_out '^frame \{"hello"' "garbage: the helper's hello"
    expect_out '^frame \{"closing".*invalid_request.*malformed' "garbage: closing, malformed"
    expect_out '^eof$' "garbage: the connection closes"
    ok "a frame that is not JSON: closing (invalid_request, malformed), then closed"

    probe oversized
    expect_rc 0 "pipeprobe oversized"
    expect_out '^frame \{"closing".*refused a frame' "oversized: refused on its length"
    expect_out '^eof$' "oversized: the connection closes"
    ok "an oversized length prefix: refused on its length, then closed"

    probe early
    expect_rc 0 "pipeprobe early"
    expect_out '^frame \{"closing"' "a request before the hello: closing"
    expect_out '^eof$' "a request before the hello: the connection closes"
    ok "a request before the hello: closing, then closed"

    probe truncated
    expect_rc 0 "pipeprobe truncated"
    ok "a truncated frame, the client gone mid-frame"

    kill -0 "$DAEMON_PID" 2>/dev/null || fail "the daemon died on malformed frames"
    helper list
    expect_rc 0 "list after the malformed frames"
    ok "the daemon still answers after every malformed frame"
}

check_restricted_client() {
    probe restricted
    expect_rc 0 "pipeprobe restricted"
    if grep -qE '^denied 5$' <<<"$OUT"; then
        ok "a client outside SYSTEM/Administrators/Warren Users is refused by the pipe's DACL (ERROR_ACCESS_DENIED)"
    elif grep -qE '^opened$' <<<"$OUT"; then
        say "NOTE: Wine let a restricted token (every group deny-only) open the pipe: Wine does not enforce the pipe's DACL (README, per-OS notes); the refusal is not testable here"
    else
        fail "pipeprobe restricted: unexpected: $OUT"
    fi
}

check_stop() {
    kill -INT "$DAEMON_PID" 2>/dev/null
    local deadline=$((SECONDS + 20))
    while ((SECONDS < deadline)) && kill -0 "$DAEMON_PID" 2>/dev/null; do
        sleep 0.5
    done
    if kill -0 "$DAEMON_PID" 2>/dev/null; then
        fail "the daemon did not stop within 20 s of ctrl-c (SIGINT)"
    fi
    wait "$DAEMON_PID"
    RC=$?
    DAEMON_PID=""
    [[ $RC == 0 ]] || fail "the daemon exited $RC after ctrl-c"
    ok "ctrl-c stops the daemon (exit 0)"
}

main() {
    [[ -x $PROBE && -f $HELPER ]] || fail "missing $PROBE or $HELPER (tests/windows/run.sh builds them)"
    [[ -n $PROTOCOL_VERSION ]] || fail "cannot read PROTOCOL_VERSION from helper/proto/src/ipc/messages.rs"
    command -v jq >/dev/null 2>&1 || fail "jq is missing (scripts/setup.sh)"
    rm -rf "$DIR"
    mkdir -p "$DIR/state" "$DIR/tunnels"
    trap stop_daemon EXIT
    write_confs
    start_daemon
    check_second_daemon
    check_tunnels
    check_frames
    check_restricted_client
    check_stop
}

main "$@"
