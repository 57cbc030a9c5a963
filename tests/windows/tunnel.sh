#!/usr/bin/env bash
# tests/windows/tunnel.sh WORK — the `tunnel` part of tests/windows/run.sh: Warren's Windows
# data plane moving real packets under Wine, against Debian's wireguard-go in a network namespace.
# Needs root (it creates and removes its own namespaces, with tests/netns/lib.sh); the Wine
# programs run as the owner of the prefix (the builder, when scripts/test.sh runs as root).
#
#   WORK  target/windows-wine, as run.sh's `tunnel-build` part left it: tunnel/ holds a copy of
#         warren-helper's Windows unit-test binary (with the #[ignore]d test
#         dataplane::tun::device::wine_tunnel::wine_tunnel, which this script runs) and the fake
#         wintun.dll next to it; tunbridge and iphlpprobe.exe; the Wine prefix
#
# Topology: namespace A runs the Wine side — the prefix's wineserver and Wine's services are
# restarted in A, so Wine's IP Helper sees A's interfaces — and namespace B runs wireguard-go,
# joined by a veth (198.18.0.1 <-> 198.18.0.2). In A, tests/windows/fakewintun/tunbridge owns the
# TUN device IFNAME (198.19.0.1/24, given by ip(8) here: Warren's platform layer cannot under
# Wine 8.0), and the fake wintun.dll next to a copy of TEST_EXE carries IFNAME's packets over
# UDP 127.0.0.1:PORT into the Windows process, whose driver encrypts them and sends them with
# Winsock (Linux sockets underneath) to B.
#
# The Windows side runs Warren's TUN device, driver and UDP under Wine; not the platform layer,
# DNS, the kill switch, nor quinn-udp's batched I/O (Wine lacks the calls: README, "Windows under
# Wine", and the test's own docs in helper/src/dataplane/tun/wine_tunnel.rs).
#
# Checks, each bounded: Wine's answers to the Windows `up` path's IP Helper/WFP calls are the
# ones README's table lists (tests/windows/fakewintun/wine-calls.expected, via iphlpprobe.exe);
# the Windows tunnel comes up; ping A -> B through it; the handshake, seen by `wg show` in B; a
# checksummed TCP transfer each way (socat, SHA-256 on both ends); the Windows side's own
# statistics (the test asserts a handshake and data both ways) and its clean exit.
set -uo pipefail

WORK=${1:?usage: tunnel.sh WORK}
DIR="$WORK/tunnel"
TEST_EXE="$DIR/warren-helper-tests.exe"
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
RUNNER="$HERE/wine-run.sh"
WINESERVER="$(command -v wineserver || echo /usr/lib/wine/wineserver)"
TEST_NAME=dataplane::tun::device::wine_tunnel::wine_tunnel
XFER_MIB=${WARREN_WINE_XFER_MIB:-4}
BRIDGE_PORT=47000

# shellcheck source=tests/netns/lib.sh
source "$HERE/../netns/lib.sh"

# The Wine prefix's owner runs every Wine program (Wine refuses a prefix another user owns).
WARREN_WINE_PREFIX="${WARREN_WINE_PREFIX:-$WORK/prefix}"
export WARREN_WINE_PREFIX
AS_OWNER=()
owner_uid="$(stat -c %u "$WARREN_WINE_PREFIX" 2>/dev/null || id -u)"
if [[ $owner_uid != "$(id -u)" ]]; then
    AS_OWNER=(setpriv --reuid="$owner_uid" --regid="$(stat -c %g "$WARREN_WINE_PREFIX")" --clear-groups
        env HOME="$(getent passwd "$owner_uid" | cut -d: -f6)")
fi

# winpath PATH — a path under / as Wine's drive Z: sees it.
winpath() { printf 'Z:%s' "${1//\//\\}"; }

# check_wine_calls IFNAME — each call of iphlpprobe.exe, one process per call, against
# wine-calls.expected. An unimplemented export ends its process: reported as `unimplemented`.
check_wine_calls() {
    local ifname=$1 call out line got="$WRT_TMP/wine-calls.got"
    : >"$got"
    for call in $(ip netns exec "$(ns a)" "${AS_OWNER[@]}" "$RUNNER" "$WORK/iphlpprobe.exe" | tr -d '\r'); do
        out="$(timeout 60 ip netns exec "$(ns a)" "${AS_OWNER[@]}" "$RUNNER" "$WORK/iphlpprobe.exe" "$ifname" "$call" 2>&1 </dev/null | tr -d '\r')" || true
        line="$(grep -E -m1 "^$call (ok|err=[0-9]+)$" <<<"$out")" || line=""
        if [[ -z $line ]]; then
            if grep -q "unimplemented function" <<<"$out"; then
                line="$call unimplemented"
            else
                printf '%s\n' "$out" | tail -n 20 >&2
                fail "iphlpprobe.exe $call gave no answer (output above)"
            fi
        fi
        echo "$line" >>"$got"
    done
    if ! diff -u "$HERE/fakewintun/wine-calls.expected" "$got" >&2; then
        fail "Wine's answers to the Windows up path's calls changed (diff above: expected, got); update wine-calls.expected and README's Wine table"
    fi
    log "Wine's IP Helper/Winsock/WFP answers match wine-calls.expected ($(wc -l <"$got") calls)"
}

main() {
    wrt_begin
    need_kinds wggo
    local x
    for x in "$TEST_EXE" "$DIR/wintun.dll" "$WORK/tunbridge" "$WORK/iphlpprobe.exe"; do
        [[ -f $x ]] || fail "missing $x (tests/windows/run.sh builds it)"
    done
    command -v socat >/dev/null || fail "socat not installed (scripts/setup.sh)"

    underlay_pair
    local if_a if_b conf_a conf_b stop log pid bridge
    if_a="$(ifname w)"
    if_b="$(ifname g)"
    key_new a
    key_new b

    # The bridge's TUN, configured as Warren's platform layer would configure the adapter.
    log "tunbridge $if_a $BRIDGE_PORT in $(ns a)"
    ns_exec a "$WORK/tunbridge" "$if_a" "$BRIDGE_PORT" >"$WRT_TMP/bridge.out" 2>"$WRT_TMP/bridge.log" &
    bridge=$!
    wrt_record_pid "$bridge"
    wait_until 10 "tunbridge ready" grep -q '^ready$' "$WRT_TMP/bridge.out"
    addr_add a "$if_a" "$TUN4_A/24"
    ip -n "$(ns a)" link set dev "$if_a" mtu 1420 up

    # Wine's services (winedevice.exe's nsiproxy.sys answers IP Helper) run in the namespace of
    # the program that started them: a new wineserver, and a first program, in A.
    stop_wineserver
    ns_exec a "${AS_OWNER[@]}" env WINEPREFIX="$WARREN_WINE_PREFIX" "$WINESERVER" -p ||
        fail "cannot start the wineserver in $(ns a)"
    timeout 120 ip netns exec "$(ns a)" "${AS_OWNER[@]}" "$RUNNER" cmd.exe /c exit 0 >>"$WRT_TMP/wine.log" 2>&1 </dev/null ||
        fail "Wine cannot run cmd.exe in $(ns a) ($WRT_TMP/wine.log)"

    check_wine_calls "$if_a"

    # B: wireguard-go, the responder (no endpoint for A).
    conf_b="$WRT_TMP/b.conf"
    conf_interface "$conf_b" key=b addr="$TUN4_B/24" port="$WG_PORT"
    conf_peer "$conf_b" pub="$(key_pub a)" allowed="$TUN4_A/32"
    peer_up wggo b "$if_b" "$conf_b"

    # A: the Windows tunnel, initiator. Its files are in DIR, where the prefix's owner reads them.
    conf_a="$DIR/a.conf"
    rm -f "$conf_a" "$DIR/stop"
    (umask 022 && : >"$conf_a")
    conf_interface "$conf_a" key=a addr="$TUN4_A/24" port="$WG_PORT"
    conf_peer "$conf_a" pub="$(key_pub b)" allowed="$TUN4_B/32" endpoint="$UNDER4_B:$WG_PORT"
    stop="$DIR/stop"
    log="$WRT_TMP/windows-tunnel.log"
    log "starting the Windows tunnel under Wine in $(ns a): $TEST_NAME (fake wintun.dll)"
    FAKE_WINTUN_PORT=$BRIDGE_PORT WARREN_WINE_TUNNEL_CONF="$(winpath "$conf_a")" \
        WARREN_WINE_TUNNEL_IFNAME="$if_a" WARREN_WINE_TUNNEL_STOP="$(winpath "$stop")" \
        RUST_LOG="${RUST_LOG:-info}" RUST_BACKTRACE=1 \
        timeout 300 ip netns exec "$(ns a)" "${AS_OWNER[@]}" "$RUNNER" "$TEST_EXE" "$TEST_NAME" \
        --exact --ignored --nocapture --test-threads 1 >"$log" 2>&1 </dev/null &
    pid=$!
    wrt_record_pid "$pid"
    local i
    for ((i = 0; i < 300; i++)); do
        grep -q '^warren-wine-tunnel: up ' "$log" 2>/dev/null && break
        kill -0 "$pid" 2>/dev/null || { tail -n 40 "$log" >&2; fail "the Windows tunnel exited before it was up (its output above)"; }
        sleep 0.1
    done
    grep -q '^warren-wine-tunnel: up ' "$log" || { tail -n 40 "$log" >&2; fail "the Windows tunnel was not up after 30 s"; }
    log "$(grep -m1 '^warren-wine-tunnel: up ' "$log")"

    expect_ping a "$TUN4_B" 5
    wait_handshake "$if_b" 10
    log "wireguard-go in B: handshake with the Windows peer at $(peer_endpoint "$if_b")"
    [[ $(peer_endpoint "$if_b") == "$UNDER4_A:$WG_PORT" ]] ||
        fail "wireguard-go sees the Windows peer at $(peer_endpoint "$if_b"), not $UNDER4_A:$WG_PORT"
    transfer_check a b "$TUN4_B" "$XFER_MIB" 5001
    transfer_check b a "$TUN4_A" "$XFER_MIB" 5002

    touch "$stop"
    local rc=0
    for ((i = 0; i < 300; i++)); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    kill -0 "$pid" 2>/dev/null && { tail -n 40 "$log" >&2; fail "the Windows tunnel did not stop within 30 s of the stop request"; }
    wait "$pid" || rc=$?
    grep '^warren-wine-tunnel: peer ' "$log" >&2 || true
    if [[ $rc -ne 0 ]] || ! grep -q 'test result: ok. 1 passed' "$log"; then
        tail -n 60 "$log" >&2
        fail "the Windows tunnel's test failed (status $rc; its output above)"
    fi
    log "the Windows tunnel stopped cleanly; its own statistics: handshake and data both ways"
    rm -f "$conf_a" "$stop"
    stop_wineserver
}

# The prefix's wineserver (and with it Wine's services) stops; the next Wine program starts one
# again, in its own namespace.
stop_wineserver() {
    "${AS_OWNER[@]}" env WINEPREFIX="$WARREN_WINE_PREFIX" "$WINESERVER" -k 2>/dev/null || true
}

main "$@"
