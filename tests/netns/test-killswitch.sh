# shellcheck shell=bash
# Group "killswitch": the kill switch ("block untunneled traffic", nftables table inet warren) in a
# client namespace: with it on, traffic outside the tunnel is refused (IPv4 and IPv6) while traffic
# through it works; DNS goes only to the tunnel's DNS server; "allow LAN" lets the LAN (here: ULAs)
# through and nothing else; after down everything flows again; another program's nft table is left
# exactly as it was. With Warren (cli mode) the kill switch follows `wg set` of the fwmark and the
# listen port.
#
# Topology (all in namespaces; addresses from 198.18.0.0/15 and fd00::/8 only):
#
#   c "outside" 198.18.5.2 fd00:5::2  --vc/vo--  a client  --va/vb--  b WireGuard server (wireguard-go)
#                                                 198.18.0.1            198.18.0.2:51820
#   tunnel: a 198.19.0.1/24 fd00:2::1/64 (FwMark 0xca6c)   b 198.19.0.2/24 fd00:2::2/64, 198.19.0.4/32
#   a's DNS = 198.19.0.2; b serves TCP :53 and :8080 on all its addresses.
#
# Two modes, chosen per run:
#   cli   `warren-helper up --kill-switch on|auto [--allow-lan]` exists: a is a Warren peer and down is
#         SIGTERM. The auto tests exist only in this mode.
#   tool  until the CLI has the flag: a is wireguard-go, and the kill switch is applied and undone by
#         warren-helper's own code through an ignored unit test, platform::firewall::tests::netns_tool,
#         run inside a's namespace (binary: WARREN_TEST_BIN, else the newest warren_helper-* test
#         binary next to WARREN_BIN or in target/debug/deps; `cargo test -p warren-helper` builds it).

KS_OUT4=198.18.5.2 KS_OUT6=fd00:5::2
KS_A_OUT4=198.18.5.1 KS_A_OUT6=fd00:5::1
KS_B_EXTRA4=198.19.0.4
KS_FWMARK=0xca6c
KS_TOOL_TEST=platform::firewall::tests::netns_tool
KS_OTHER_TABLE='table inet someoneelse {
	chain output {
		type filter hook output priority 0; policy accept;
		ip daddr 198.18.99.99 counter accept
	}
}'

# ks_cli_has_flag — does WARREN_BIN's `up` take --kill-switch?
ks_cli_has_flag() {
    local help
    [[ -x $WARREN_BIN ]] || return 1
    help="$("$WARREN_BIN" up --help 2>&1)" || true
    [[ $help == *--kill-switch* ]]
}

# ks_has_tool BIN — does test binary BIN have the netns tool? (Output captured first: with pipefail,
# `BIN | grep -q` can fail when grep exits early and BIN gets SIGPIPE.)
ks_has_tool() {
    local tests
    tests="$("$1" --list --ignored 2>/dev/null)" || return 1
    grep -q "^$KS_TOOL_TEST: test" <<<"$tests"
}

# ks_find_tool — sets KS_TOOL_BIN to a warren-helper test binary that has the netns tool.
ks_find_tool() {
    local d f best="" best_t=0 t
    local -a dirs=()
    if [[ -n ${WARREN_TEST_BIN:-} ]]; then
        ks_has_tool "$WARREN_TEST_BIN" ||
            fail "WARREN_TEST_BIN=$WARREN_TEST_BIN has no test $KS_TOOL_TEST"
        KS_TOOL_BIN=$WARREN_TEST_BIN
        return 0
    fi
    dirs=("$(dirname "$WARREN_BIN")/deps" "$WRT_ROOT/target/debug/deps")
    [[ -n ${CARGO_TARGET_DIR:-} ]] && dirs+=("$CARGO_TARGET_DIR/debug/deps")
    for d in "${dirs[@]}"; do
        for f in "$d"/warren_helper-*; do
            [[ -f $f && -x $f && ${f##*/} != *.* ]] || continue
            t=$(stat -c %Y "$f")
            ((t > best_t)) || continue
            ks_has_tool "$f" || continue
            best=$f best_t=$t
        done
    done
    [[ -n $best ]] || fail "warren-helper has no --kill-switch yet, and no test binary with $KS_TOOL_TEST was found in ${dirs[*]} (build it: cargo test -p warren-helper --no-run, or set WARREN_TEST_BIN)"
    KS_TOOL_BIN=$best
}

# ks_tool ACTION [VAR=VALUE...] — run the netns tool (apply|undo) inside namespace a.
ks_tool() {
    local action=$1 rc=0
    shift
    ns_exec a env WARREN_KS_TOOL="$action" WARREN_KS_NETNS="$(ns a)" WARREN_KS_JOURNAL="$WRT_TMP/ks-journal" "$@" \
        timeout 60 "$KS_TOOL_BIN" --ignored --exact "$KS_TOOL_TEST" --nocapture --test-threads=1 \
        >>"$WRT_TMP/ks-tool.log" 2>&1 || rc=$?
    if [[ $rc -ne 0 ]]; then
        tail -n 40 "$WRT_TMP/ks-tool.log" >&2
        fail "kill switch tool '$action' failed (status $rc)"
    fi
}

# ks_etc_cleanup — remove the /etc/netns/<ns> directories this test created.
ks_etc_cleanup() {
    local dir
    [[ -f ${WRT_TMP:-}/.ks-etc ]] || return 0
    while read -r dir; do
        [[ $dir == /etc/netns/"$WRT_PREFIX"* ]] && rm -rf -- "$dir"
    done <"$WRT_TMP/.ks-etc"
}

# ks_private_resolv_conf NS — give NS its own /etc/resolv.conf (`ip netns exec` bind-mounts
# /etc/netns/<ns>/resolv.conf over /etc/resolv.conf when it exists), so a Warren peer with DNS =
# changes that file, never the host's. Removed on exit.
ks_private_resolv_conf() {
    local dir
    dir="/etc/netns/$(ns "$1")"
    [[ -e $dir ]] && fail "$dir already exists"
    if [[ ! -f $WRT_TMP/.ks-etc ]]; then
        # Chain our cleanup before lib.sh's, keeping the exit status it reports.
        # shellcheck disable=SC2154  # ks_rc is assigned inside the trap string
        trap 'ks_rc=$?; ks_etc_cleanup; (exit $ks_rc); wrt_cleanup' EXIT
    fi
    echo "$dir" >>"$WRT_TMP/.ks-etc"
    mkdir -p "$dir"
    printf '# %s: private resolv.conf of a Warren test namespace\nnameserver 198.18.0.53\n' "$dir" >"$dir/resolv.conf"
    ns_exec "$1" grep -q 198.18.0.53 /etc/resolv.conf ||
        fail "ip netns exec does not give $(ns "$1") its own /etc/resolv.conf"
}

# ks_serve NS PORT — a TCP server on PORT (IPv4 and IPv6, all addresses) answering "hello";
# bounded by the test's lifetime and a 110 s timeout.
ks_serve() {
    local n=$1 port=$2 pid
    timeout 110 ip netns exec "$(ns "$n")" \
        socat "TCP6-LISTEN:$port,ipv6only=0,reuseaddr,fork" SYSTEM:'echo hello' \
        2>>"$WRT_TMP/ks-serve.log" &
    pid=$!
    wrt_record_pid "$pid"
    wait_until 10 "a TCP server on port $port in $n" \
        bash -c "[[ -n \$(ip netns exec '$(ns "$n")' ss -Hltn 'sport = :$port') ]]"
}

# ks_tcp NS ADDR PORT — connect, expect "hello"; sets KS_TCP_MS (how long it took) and KS_TCP_OUT.
ks_tcp() {
    local n=$1 addr=$2 port=$3 target t0
    if [[ $addr == *:* ]]; then target="TCP6:[$addr]:$port"; else target="TCP4:$addr:$port"; fi
    t0=$(date +%s%N)
    KS_TCP_OUT="$(timeout 15 ip netns exec "$(ns "$n")" socat -t 2 -T 5 - "$target,connect-timeout=5" </dev/null 2>&1)" || true
    KS_TCP_MS=$((($(date +%s%N) - t0) / 1000000))
    [[ $KS_TCP_OUT == *hello* ]]
}

expect_tcp() {
    ks_tcp "$@" || fail "TCP $1 -> $2:$3 failed but should work: $KS_TCP_OUT"
    log "TCP $1 -> $2:$3 works"
}

# expect_tcp_refused NS ADDR PORT — no answer, and refused at once (a reset, not a timeout).
expect_tcp_refused() {
    if ks_tcp "$@"; then
        fail "TCP $1 -> $2:$3 got through but should have been refused"
    fi
    ((KS_TCP_MS < 3000)) || fail "TCP $1 -> $2:$3 took ${KS_TCP_MS} ms to fail: refused slowly, not at once ($KS_TCP_OUT)"
    log "TCP $1 -> $2:$3 refused in ${KS_TCP_MS} ms: ${KS_TCP_OUT//$'\n'/ }"
}

nft_in() { ns_exec "$1" nft "${@:2}"; }

has_warren_table() { nft_in a list table inet warren >/dev/null 2>&1; }

# ks_setup — namespaces, veths, keys, configs, server b (wireguard-go), TCP servers; sets IF_A, IF_B,
# CONF_A. ALLOWED_A (default: the tunnel /24 and /64) is what a routes into the tunnel.
ks_setup() {
    local allowed_a=${1:-198.19.0.0/24,fd00:2::/64}
    need_kinds wggo
    command -v nft >/dev/null || fail "nft not installed (scripts/setup.sh: nftables)"
    ns_new a
    ns_new b
    ns_new c
    veth_new a va b vb
    veth_new a vo c vc
    addr_add a va "$UNDER4_A/24"
    addr_add b vb "$UNDER4_B/24"
    addr_add a va "$UNDER6_A/64"
    addr_add b vb "$UNDER6_B/64"
    addr_add a vo "$KS_A_OUT4/24"
    addr_add c vc "$KS_OUT4/24"
    addr_add a vo "$KS_A_OUT6/64"
    addr_add c vc "$KS_OUT6/64"
    wait_link_ready a va
    wait_link_ready b vb
    wait_link_ready a vo
    wait_link_ready c vc

    key_new a
    key_new b
    IF_A="$(ifname A)"
    IF_B="$(ifname B)"
    CONF_A="$WRT_TMP/$IF_A.conf"
    local conf_b="$WRT_TMP/$IF_B.conf"
    conf_interface "$CONF_A" key=a addr="$TUN4_A/24,$TUN6_A/64" port="$WG_PORT"
    printf 'FwMark = %s\nDNS = %s\n' "$KS_FWMARK" "$TUN4_B" >>"$CONF_A"
    conf_peer "$CONF_A" pub="$(key_pub b)" allowed="$allowed_a" endpoint="$UNDER4_B:$WG_PORT"
    conf_interface "$conf_b" key=b addr="$TUN4_B/24,$TUN6_B/64,$KS_B_EXTRA4/32" port="$WG_PORT"
    conf_peer "$conf_b" pub="$(key_pub a)" allowed="$TUN4_A/32,$TUN6_A/128"
    chmod 600 "$CONF_A" "$conf_b"
    peer_up wggo b "$IF_B" "$conf_b"
    ks_serve b 53
    ks_serve b 8080
    ks_serve c 8080
}

# ks_other_table — another program's table in a; prints its listing.
ks_other_table() {
    nft_in a -f - <<<"$KS_OTHER_TABLE"
    nft_in a list table inet someoneelse
}

# ks_up MODE [on|auto] [lan] — client a up with the kill switch: in cli mode Warren with the flags, in
# tool mode wireguard-go plus the tool.
ks_up() {
    local mode=$1 ks=${2:-on} lan=${3:-}
    if [[ $mode == cli ]]; then
        ks_private_resolv_conf a
        local -a flags=(--kill-switch "$ks")
        [[ $lan == lan ]] && flags+=(--allow-lan)
        ks_warren_up "${flags[@]}"
    else
        [[ $ks == on ]] || fail "ks_up: tool mode has no kill switch mode '$ks'"
        peer_up wggo a "$IF_A" "$CONF_A"
        ks_tool apply WARREN_KS_IFNAME="$IF_A" \
            WARREN_KS_ENDPOINTS="$UNDER4_B:$WG_PORT" WARREN_KS_FWMARK="$KS_FWMARK" \
            WARREN_KS_LISTEN_PORT="$WG_PORT" WARREN_KS_DNS="$TUN4_B" \
            WARREN_KS_ADDRESSES="$TUN4_A/24,$TUN6_A/64" WARREN_KS_ALLOW_LAN="$([[ $lan == lan ]] && echo 1 || echo 0)"
    fi
}

# ks_warren_up FLAG... — like peer_up warren, with extra flags for `up`.
# The WRT_PEER_* maps are lib.sh's (associative arrays declared there):
# shellcheck disable=SC2034,SC2004
ks_warren_up() {
    local full pid logf
    full="$(ns a)"
    logf="$WRT_TMP/$IF_A.warren.log"
    WRT_IFACES+=("$IF_A")
    echo "$IF_A" >>"$WRT_TMP/.ifaces"
    rm -f "$WG_RUN_DIR/$IF_A.sock"
    mkdir -p "$WG_RUN_DIR"
    log "starting warren peer in $full: warren-helper up --foreground $(basename "$CONF_A") --interface $IF_A $*"
    RUST_LOG="${RUST_LOG:-info}" env --default-signal=INT,QUIT \
        ip netns exec "$full" "$WARREN_BIN" up --foreground "$CONF_A" --interface "$IF_A" "$@" >"$logf" 2>&1 &
    pid=$!
    wrt_record_pid "$pid"
    WRT_PEER_PID[$IF_A]=$pid
    WRT_PEER_NS[$IF_A]=a
    WRT_PEER_KIND[$IF_A]=warren
    WRT_PEER_LOG[$IF_A]=$logf
    wait_ready "$IF_A" 15
}

# ks_down MODE — take the kill switch (and in cli mode the tunnel) down.
ks_down() {
    if [[ $1 == cli ]]; then
        peer_stop "$IF_A" TERM 15 || fail "warren peer $IF_A still running 15 s after SIGTERM"
        [[ $PEER_EXIT_STATUS == 0 ]] || fail "warren peer $IF_A exited with status $PEER_EXIT_STATUS on SIGTERM"
    else
        ks_tool undo
    fi
}

# The checks with the kill switch on and "allow LAN" off.
ks_expect_blocking() {
    has_warren_table || fail "no nftables table inet warren in a while the kill switch is on"
    # Through the tunnel: works (the marked WireGuard socket reaches its endpoint).
    expect_ping a "$TUN4_B"
    wait_handshake "$IF_A" 10
    expect_ping a "$TUN6_B"
    expect_tcp a "$TUN4_B" 8080
    expect_tcp a "$TUN6_B" 8080
    # Outside the tunnel: refused, IPv4 and IPv6, including the server's own underlay address.
    expect_no_ping a "$KS_OUT4"
    expect_no_ping a "$KS_OUT6"
    expect_no_ping a "$UNDER4_B"
    expect_no_ping a "$UNDER6_B"
    expect_tcp_refused a "$KS_OUT4" 8080
    expect_tcp_refused a "$KS_OUT6" 8080
    # DNS only to the tunnel's DNS server, even through the tunnel.
    expect_tcp a "$TUN4_B" 53
    expect_tcp_refused a "$KS_B_EXTRA4" 53
    expect_tcp_refused a "$TUN6_B" 53
    expect_tcp a "$KS_B_EXTRA4" 8080
    if [[ ${mode:-} == cli ]]; then
        # Warren's kill switch follows `wg set`: unmarked, the socket is recognised by its port;
        # on another port, by that one; marked again, by the mark. The tunnel works throughout.
        timeout 5 ip netns exec "$(ns a)" wg set "$IF_A" fwmark 0
        wait_until 5 "the kill switch matching the socket by its port" \
            bash -c "ip netns exec '$(ns a)' nft list chain inet warren output | grep -q 'udp sport $WG_PORT ip daddr . udp dport @endpoints4 accept'"
        expect_ping a "$TUN4_B"
        timeout 5 ip netns exec "$(ns a)" wg set "$IF_A" listen-port 51821
        wait_until 5 "the kill switch following the new listen port" \
            bash -c "ip netns exec '$(ns a)' nft list chain inet warren output | grep -q 'udp sport 51821 ip daddr'"
        expect_ping a "$TUN4_B"
        timeout 5 ip netns exec "$(ns a)" wg set "$IF_A" fwmark "$KS_FWMARK"
        wait_until 5 "the kill switch matching the socket by its mark again" \
            bash -c "ip netns exec '$(ns a)' nft list chain inet warren output | grep -Eq 'meta mark 0x0*${KS_FWMARK#0x} ip daddr'"
        expect_ping a "$TUN4_B"
        # Still nothing else gets out.
        expect_no_ping a "$UNDER4_B"
        expect_tcp_refused a "$KS_OUT4" 8080
    else
        # The endpoint is reachable only with the WireGuard socket's mark: unmarked, the tunnel
        # stops (the tool's kill switch is fixed; Warren's follows, above).
        timeout 5 ip netns exec "$(ns a)" wg set "$IF_A" fwmark 0
        expect_no_ping a "$TUN4_B"
        timeout 5 ip netns exec "$(ns a)" wg set "$IF_A" fwmark "$KS_FWMARK"
        expect_ping a "$TUN4_B"
    fi
}

ks_expect_open() {
    has_warren_table && fail "nftables table inet warren still in a after down"
    expect_ping a "$KS_OUT4"
    expect_ping a "$KS_OUT6"
    expect_tcp a "$KS_OUT4" 8080
}

t_killswitch_block() {
    local mode=$1 other_before other_after
    [[ $mode == tool ]] && ks_find_tool && log "tool mode: kill switch applied by $KS_TOOL_BIN"
    ks_setup
    # Without the kill switch, c is reachable directly.
    expect_ping a "$KS_OUT4"
    expect_ping a "$KS_OUT6"
    other_before="$(ks_other_table)"
    ks_up "$mode" on
    ks_expect_blocking
    log "refused so far: $(nft_in a list chain inet warren refuse | grep -o 'counter packets [0-9]*')"
    ks_down "$mode"
    ks_expect_open
    if [[ $mode == tool ]]; then
        ks_tool undo # again: already gone is success
    fi
    other_after="$(nft_in a list table inet someoneelse)"
    [[ $other_after == "$other_before" ]] || fail "table inet someoneelse changed:
--- before
$other_before
--- after
$other_after"
    log "table inet someoneelse untouched"
}

t_killswitch_allow_lan() {
    local mode=$1
    [[ $mode == tool ]] && ks_find_tool && log "tool mode: kill switch applied by $KS_TOOL_BIN"
    ks_setup
    ks_up "$mode" on lan
    has_warren_table || fail "no nftables table inet warren in a while the kill switch is on"
    expect_ping a "$TUN4_B"
    # fd00::/8 is a ULA, which counts as LAN; 198.18.0.0/15 is not private, so it stays refused.
    expect_ping a "$KS_OUT6"
    expect_tcp a "$KS_OUT6" 8080
    expect_no_ping a "$KS_OUT4"
    expect_tcp_refused a "$KS_OUT4" 8080
    # DNS stays restricted to the tunnel's server, LAN or not.
    expect_tcp_refused a "$TUN6_B" 53
    ks_down "$mode"
    ks_expect_open
}

# cli only: --kill-switch auto leaves a split tunnel alone and protects a full tunnel.
t_killswitch_auto() {
    local kind=$1
    if [[ $kind == split ]]; then
        ks_setup
        ks_up cli auto
        expect_ping a "$TUN4_B"
        has_warren_table && fail "--kill-switch auto installed a kill switch for a split tunnel"
        expect_ping a "$KS_OUT4"
    else
        ks_setup "0.0.0.0/0,::/0"
        ks_up cli auto
        has_warren_table || fail "--kill-switch auto installed no kill switch for a full tunnel"
        expect_ping a "$TUN4_B"
        expect_tcp_refused a "$KS_B_EXTRA4" 53
    fi
    ks_down cli
    has_warren_table && fail "nftables table inet warren still in a after down"
    expect_ping a "$KS_OUT4"
}

if ks_cli_has_flag; then
    register killswitch/block t_killswitch_block cli
    register killswitch/allow-lan t_killswitch_allow_lan cli
    register killswitch/auto-split t_killswitch_auto split
    register killswitch/auto-full t_killswitch_auto full
else
    register killswitch/block-tool t_killswitch_block tool
    register killswitch/allow-lan-tool t_killswitch_allow_lan tool
fi
