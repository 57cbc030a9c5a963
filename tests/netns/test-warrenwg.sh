# shellcheck shell=bash
# Group "warrenwg": `warren-wg IFNAME`, wireguard-go's command line over Warren's data plane, driven
# the way admins drive wireguard-go, always against a wireguard-go peer (B, the responder):
#   wg-quick     `WG_QUICK_USERSPACE_IMPLEMENTATION=warren-wg wg-quick up /full/path/IF.conf` inside
#                namespace a (a full path, so the host's /etc/wireguard is never read): warren-wg
#                detached (own session, stdio on /dev/null), handshake, ping both ways over inner
#                IPv4 and IPv6, `wg show` as configured; `wg-quick down`: process, socket and
#                interface gone
#   foreground   `-f`: the started process itself serves (no fork), traffic flows once configured,
#                `ip link del` ends it with status 0 and removes its socket; then
#                WG_PROCESS_FOREGROUND=1 without -f: foreground too, SIGTERM → 0, socket and link
#                gone; a second `warren-wg IF` while the first runs: the starting process exits 1
#                with the daemon's reason
#   netns-move   created in a (which has the underlay), moved into a namespace c with no other
#                link (`ip link set IF netns c`): still running, configured and pinged from c (the
#                UDP socket stays in a), `wg` works on it from c; `ip link del` inside c ends it
#   systemd      `systemd-analyze verify` of wireguard-tools' wg-quick@.service with the drop-in the
#                packages ship (installer/linux/wg-quick/warren-wg.conf) setting the variable
# The binary: WARREN_WG_BIN, else warren-wg next to WARREN_BIN (cargo builds both).

# The WRT_PEER_* maps are lib.sh's associative arrays (keyed by interface name), read by its
# helpers (wait_ready, wg_show, peer_stop, the diagnostics): shellcheck sees neither.
# shellcheck disable=SC2004,SC2034

WARREN_WG_BIN="${WARREN_WG_BIN:-$(dirname "$WARREN_BIN")/warren-wg}"

need_warren_wg() {
    [[ -x $WARREN_WG_BIN ]] || fail "warren-wg not found at $WARREN_WG_BIN (build it: cargo build --release -p warren-helper, or set WARREN_WG_BIN)"
    command -v wireguard-go >/dev/null || fail "wireguard-go not installed (scripts/setup.sh)"
}

# wwg_pids IFACE — the PIDs of warren-wg processes serving IFACE (exact command line match).
wwg_pids() {
    pgrep -f -x -- "$WARREN_WG_BIN( -f)? $1" || true
}

# wwg_gone IFACE — no warren-wg process for IFACE and no UAPI socket.
wwg_gone() {
    [[ -z $(wwg_pids "$1") && ! -e $WG_RUN_DIR/$1.sock ]]
}

# wwg_setup — namespaces a and b over veth, a wireguard-go responder B, A's wg-quick file. Sets
# IF_A, IF_B, CONF_A.
wwg_setup() {
    need_warren_wg
    underlay_pair v6
    key_new a
    key_new b
    IF_A="$(ifname A)"
    IF_B="$(ifname B)"
    CONF_A="$WRT_TMP/$IF_A.conf"
    local conf_b="$WRT_TMP/$IF_B.conf"
    conf_interface "$CONF_A" key=a addr="$TUN4_A/24,$TUN6_A/64" port="$WG_PORT"
    conf_peer "$CONF_A" pub="$(key_pub b)" allowed="$TUN4_B/32,$TUN6_B/128" endpoint="$UNDER4_B:$WG_PORT"
    conf_interface "$conf_b" key=b addr="$TUN4_B/24,$TUN6_B/64" port="$WG_PORT"
    conf_peer "$conf_b" pub="$(key_pub a)" allowed="$TUN4_A/32,$TUN6_A/128"
    chmod 600 "$CONF_A" "$conf_b"
    peer_up wggo b "$IF_B" "$conf_b"
    WRT_IFACES+=("$IF_A")
    echo "$IF_A" >>"$WRT_TMP/.ifaces"
    WRT_PEER_KIND[$IF_A]=warren-wg
    WRT_PEER_LOG[$IF_A]="$WRT_TMP/$IF_A.warren-wg.log"
}

# wwg_record IFACE NS — find the one warren-wg for IFACE, record it for cleanup; sets WWG_PID.
wwg_record() {
    local pids
    pids="$(wwg_pids "$1")"
    [[ $(wc -w <<<"$pids") -eq 1 ]] || fail "expected one warren-wg process for $1, found: '${pids//$'\n'/ }'"
    WWG_PID=$pids
    wrt_record_pid "$WWG_PID"
    WRT_PEER_PID[$1]=$WWG_PID
    WRT_PEER_NS[$1]=$2
}

# wwg_traffic NS — handshake, then ping both ways over inner IPv4 and IPv6 between A (in NS) and B.
wwg_traffic() {
    expect_ping "$1" "$TUN4_B"
    wait_handshake "$IF_A" 10
    expect_ping "$1" "$TUN6_B"
    expect_ping b "$TUN4_A"
    expect_ping b "$TUN6_A"
}

t_wwg_wg_quick() {
    local full out fd target
    wwg_setup
    full="$(ns a)"
    log "wg-quick up $CONF_A with WG_QUICK_USERSPACE_IMPLEMENTATION=$WARREN_WG_BIN"
    out="$(ip netns exec "$full" env WG_QUICK_USERSPACE_IMPLEMENTATION="$WARREN_WG_BIN" \
        wg-quick up "$CONF_A" 2>&1)" || { printf '%s\n' "$out" >&2; fail "wg-quick up failed"; }
    printf '%s\n' "$out" >&2
    grep -qF "$WARREN_WG_BIN $IF_A" <<<"$out" || fail "wg-quick did not run warren-wg (kernel WireGuard?)"
    wwg_record "$IF_A" a
    # Detached properly: its own session, stdio on /dev/null (LOG_LEVEL unset), socket 0600 root.
    [[ $(ps -o sid= -p "$WWG_PID" | tr -d ' ') == "$WWG_PID" ]] || fail "warren-wg (pid $WWG_PID) is not a session leader"
    for fd in 0 1 2; do
        target="$(readlink "/proc/$WWG_PID/fd/$fd")"
        [[ $target == /dev/null ]] || fail "warren-wg's fd $fd is $target, not /dev/null"
    done
    [[ $(stat -c '%a %U' "$WG_RUN_DIR/$IF_A.sock") == "600 root" ]] ||
        fail "UAPI socket mode/owner: $(stat -c '%a %U' "$WG_RUN_DIR/$IF_A.sock")"
    wwg_traffic a
    [[ $(wg_show "$IF_A" public-key) == "$(key_pub a)" ]] || fail "wg show public-key is not the config's"
    [[ $(wg_show "$IF_A" listen-port) == "$WG_PORT" ]] || fail "wg show listen-port: $(wg_show "$IF_A" listen-port)"
    [[ $(wg_show "$IF_A" peers) == "$(key_pub b)" ]] || fail "wg show peers: $(wg_show "$IF_A" peers)"
    [[ $(peer_endpoint "$IF_A") == "$UNDER4_B:$WG_PORT" ]] || fail "wg show endpoints: $(peer_endpoint "$IF_A")"
    out="$(wg_show "$IF_A" allowed-ips)"
    [[ $out == "$(key_pub b)"$'\t'"$TUN4_B/32 $TUN6_B/128" ]] || fail "wg show allowed-ips: '$out'"
    # wg-quick's own job was done by wg-quick: addresses, MTU (1500 - 80), routes.
    grep -q 'mtu 1420' <<<"$(ip -n "$full" link show "$IF_A")" || fail "MTU is not wg-quick's 1420"
    [[ $(ip -n "$full" route get "$TUN4_B") == *" dev $IF_A "* ]] || fail "$TUN4_B is not routed through $IF_A"

    log "wg-quick down $CONF_A"
    ip netns exec "$full" wg-quick down "$CONF_A"
    wait_until 10 "warren-wg and $WG_RUN_DIR/$IF_A.sock gone after wg-quick down" wwg_gone "$IF_A"
    ! ip -n "$full" link show "$IF_A" >/dev/null 2>&1 || fail "$IF_A still exists after wg-quick down"
    log "wg-quick down: process, socket and interface gone"
}

# wwg_start_fg IFACE NS [ENV...] — start warren-wg in the foreground (the started PID is the server).
wwg_start_fg() {
    local iface=$1 n=$2 pid
    shift 2
    LOG_LEVEL=verbose env --default-signal=INT,QUIT "$@" ip netns exec "$(ns "$n")" \
        "$WARREN_WG_BIN" "${WWG_FG_ARGS[@]}" "$iface" >>"${WRT_PEER_LOG[$iface]}" 2>&1 &
    pid=$!
    wrt_record_pid "$pid"
    WRT_PEER_PID[$iface]=$pid
    WRT_PEER_NS[$iface]=$n
    wait_ready "$iface" 15
    [[ $(wwg_pids "$iface") == "$pid" ]] || fail "the foreground warren-wg is not the process started (pid $pid): $(wwg_pids "$iface")"
}

t_wwg_foreground() {
    local full pid out rc
    wwg_setup
    full="$(ns a)"
    WWG_FG_ARGS=(-f)
    wwg_start_fg "$IF_A" a
    pid=${WRT_PEER_PID[$IF_A]}
    # A fresh interface has no key, as with wireguard-go: `wg` shows none until one is set.
    out="$(wg_show "$IF_A" private-key)"
    [[ $out == "(none)" ]] || fail "a fresh $IF_A has a private key: '$out' (expected '(none)')"
    # While it runs, a second one for the same name fails, and says why, in the starting process.
    rc=0
    out="$(ip netns exec "$full" "$WARREN_WG_BIN" "$IF_A" 2>&1)" || rc=$?
    [[ $rc -eq 1 ]] || fail "a second warren-wg $IF_A exited $rc (expected 1): $out"
    grep -q "^warren-wg: failed to create TUN interface $IF_A" <<<"$out" || fail "a second warren-wg $IF_A said: $out"
    log "a second warren-wg $IF_A: exit 1, '$out'"
    [[ $(wwg_pids "$IF_A") == "$pid" ]] || fail "the first warren-wg did not survive the second's attempt"
    wg_quick_like_up a "$IF_A" "$CONF_A"
    wwg_traffic a
    log "ip link del $IF_A"
    ip -n "$full" link del "$IF_A"
    peer_stop "$IF_A" 0 10 || fail "warren-wg -f did not exit within 10 s of ip link del"
    [[ $PEER_EXIT_STATUS == 0 ]] || fail "warren-wg -f exited $PEER_EXIT_STATUS after ip link del (expected 0)"
    [[ ! -e $WG_RUN_DIR/$IF_A.sock ]] || fail "$WG_RUN_DIR/$IF_A.sock left after ip link del"
    log "-f: ip link del -> exit 0, socket removed"

    WWG_FG_ARGS=()
    wwg_start_fg "$IF_A" a WG_PROCESS_FOREGROUND=1
    [[ -n $(ip -n "$full" link show "$IF_A") ]] || fail "no $IF_A in $full"
    peer_stop "$IF_A" TERM 10 || fail "warren-wg did not exit within 10 s of SIGTERM"
    [[ $PEER_EXIT_STATUS == 0 ]] || fail "warren-wg exited $PEER_EXIT_STATUS after SIGTERM (expected 0)"
    [[ ! -e $WG_RUN_DIR/$IF_A.sock ]] || fail "$WG_RUN_DIR/$IF_A.sock left after SIGTERM"
    ! ip -n "$full" link show "$IF_A" >/dev/null 2>&1 || fail "$IF_A still exists after SIGTERM"
    log "WG_PROCESS_FOREGROUND=1: foreground; SIGTERM -> exit 0, socket and interface gone"
}

t_wwg_netns_move() {
    local full_a full_c udp
    wwg_setup
    full_a="$(ns a)"
    ns_new c
    full_c="$(ns c)"
    # Detached, with LOG_LEVEL set: it keeps stdout and stderr (its log file).
    LOG_LEVEL=verbose ip netns exec "$full_a" "$WARREN_WG_BIN" "$IF_A" >>"${WRT_PEER_LOG[$IF_A]}" 2>&1 ||
        fail "warren-wg $IF_A failed to start"
    wwg_record "$IF_A" c
    ip -n "$full_a" link set "$IF_A" netns "$full_c"
    sleep 1
    kill -0 "$WWG_PID" 2>/dev/null || fail "warren-wg exited when $IF_A was moved to another namespace"
    [[ -S $WG_RUN_DIR/$IF_A.sock ]] || fail "the UAPI socket went away with the move"
    ! ip -n "$full_a" link show "$IF_A" >/dev/null 2>&1 || fail "$IF_A is still in $full_a"
    # c has nothing but lo and the tunnel: everything to B goes through a's UDP socket.
    wg_quick_like_up c "$IF_A" "$CONF_A"
    ! ip -n "$full_c" route get "$UNDER4_B" >/dev/null 2>&1 ||
        fail "c can reach the underlay directly; the test would prove nothing"
    wwg_traffic c
    udp="$(ip netns exec "$full_a" ss -Huanp "sport = :$WG_PORT")"
    grep -q "pid=$WWG_PID," <<<"$udp" || fail "warren-wg's UDP socket is not in $full_a: '$udp'"
    log "moved to c: traffic flows, UDP port $WG_PORT stays in a"
    ip -n "$full_c" link del "$IF_A"
    wait_until 10 "warren-wg and its socket gone after ip link del in c" wwg_gone "$IF_A"
    log "ip link del in c: process and socket gone"
}

t_wwg_systemd() {
    local dir out
    command -v systemd-analyze >/dev/null || fail "systemd-analyze missing (systemd)"
    [[ -f /lib/systemd/system/wg-quick@.service ]] || fail "wg-quick@.service missing (wireguard-tools)"
    need_warren_wg
    dir="$WRT_TMP/units"
    mkdir -p "$dir/wg-quick@.service.d"
    cp /lib/systemd/system/wg-quick@.service "$dir/"
    cp "$WRT_ROOT/installer/linux/wg-quick/warren-wg.conf" "$dir/wg-quick@.service.d/"
    ln -s wg-quick@.service "$dir/wg-quick@wwg0.service"
    out="$(SYSTEMD_UNIT_PATH="$dir:" systemd-analyze verify "$dir/wg-quick@wwg0.service" 2>&1)" ||
        { printf '%s\n' "$out" >&2; fail "systemd-analyze verify failed"; }
    [[ -z $out ]] || { printf '%s\n' "$out" >&2; fail "systemd-analyze verify warned"; }
    grep -qx 'Environment=WG_QUICK_USERSPACE_IMPLEMENTATION=warren-wg' "$dir/wg-quick@.service.d/warren-wg.conf" ||
        fail "the drop-in does not set WG_QUICK_USERSPACE_IMPLEMENTATION=warren-wg"
    log "systemd-analyze verify: wg-quick@wwg0.service with the warren-wg drop-in is clean"
}

register warrenwg/wg-quick t_wwg_wg_quick
register warrenwg/foreground t_wwg_foreground
register warrenwg/netns-move t_wwg_netns_move
register warrenwg/systemd t_wwg_systemd
