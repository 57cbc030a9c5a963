# shellcheck shell=bash
# Group "moving": servers that move while a Warren client with the kill switch on (`up --foreground
# --kill-switch on`) keeps its tunnel: nothing leaves the client outside the tunnel meanwhile.
#
#   moving/server-moves  the client's Endpoint is a host name, resolved from its namespace's own
#                        hosts file (/etc/netns/<ns>/hosts, which `ip netns exec` bind-mounts over
#                        /etc/hosts). During a ping series the server (wireguard-go) moves from
#                        198.18.0.2 to 198.18.0.4 and the hosts file follows: the client re-resolves
#                        when its handshakes go unanswered, its kill switch follows, and replies
#                        resume within MV_RESUME_SECS (60 s). A counter after the kill switch (an nft
#                        table of the test's own, at a later priority) counts every packet leaving the
#                        client's underlay except WireGuard datagrams to the server's two addresses:
#                        it must stay 0, although the client tries to reach the server outside the
#                        tunnel during the move. The counter is first shown to count (before the
#                        tunnel is up).
#   moving/multihomed    the server has two addresses and answers from its second one: a stateless
#                        nft rule in its namespace rewrites the source of its WireGuard datagrams
#                        from 198.18.0.2 (where the client sends) to 198.18.0.5, and counts them.
#                        The handshake completes, pings pass, the client's endpoint becomes
#                        198.18.0.5 and its kill switch's endpoint set holds it.
#
# Without re-resolution the first test never resumes; without the kill switch following the
# endpoints (and letting the socket's port in from any address) neither test gets a reply through.

MV_NAME=wrt-server.test
MV_MOVED4=198.18.0.4
MV_SECOND4=198.18.0.5
MV_RESUME_SECS="${MV_RESUME_SECS:-60}"

# mv_setup ENDPOINT — namespaces a (client) and b (server, wireguard-go, up), a's config in CONF_A
# (ListenPort 51820, AllowedIPs the server's tunnel address, ENDPOINT); sets IF_A, IF_B.
mv_setup() {
    local endpoint=$1 conf_b
    need_kinds warren wggo
    command -v nft >/dev/null || fail "nft not installed (scripts/setup.sh: nftables)"
    underlay_pair
    key_new a
    key_new b
    IF_A="$(ifname A)"
    IF_B="$(ifname B)"
    CONF_A="$WRT_TMP/$IF_A.conf"
    conf_b="$WRT_TMP/$IF_B.conf"
    conf_interface "$CONF_A" key=a addr="$TUN4_A/24" port="$WG_PORT"
    conf_peer "$CONF_A" pub="$(key_pub b)" allowed="$TUN4_B/32" endpoint="$endpoint"
    conf_interface "$conf_b" key=b addr="$TUN4_B/24" port="$WG_PORT"
    conf_peer "$conf_b" pub="$(key_pub a)" allowed="$TUN4_A/32"
    chmod 600 "$CONF_A" "$conf_b"
    peer_up wggo b "$IF_B" "$conf_b"
}

# mv_hosts ADDR — a's hosts file maps MV_NAME to ADDR. Written in place: `ip netns exec` bind-mounted
# this very file (its inode) over the client's /etc/hosts when it started.
mv_hosts() {
    printf '127.0.0.1 localhost\n%s %s\n' "$1" "$MV_NAME" >"/etc/netns/$(ns a)/hosts"
}

# mv_leak_counter — a table of the test's own in a, after the kill switch's chains: counts every
# packet leaving a's underlay (va) except WireGuard datagrams (port to port) to the server's two
# addresses, and IPv6 neighbour discovery.
mv_leak_counter() {
    nft_in a -f - <<EOF
table inet wrtleak {
	counter leaks { }
	chain out {
		type filter hook output priority filter + 10; policy accept;
		oifname "va" ip daddr { $UNDER4_B, $MV_MOVED4 } udp sport $WG_PORT udp dport $WG_PORT accept
		oifname "va" meta l4proto ipv6-icmp accept
		oifname "va" counter name "leaks"
	}
}
EOF
}

mv_leaks() {
    nft_in a list counter inet wrtleak leaks | awk '/packets/ { for (i = 1; i < NF; i++) if ($i == "packets") print $(i + 1) }'
}

# mv_endpoint_set — the elements of the kill switch's IPv4 endpoint set in a.
mv_endpoint_set() {
    nft_in a list set inet warren endpoints4 | tr -d '\n\t' | sed -n 's/.*elements = {\([^}]*\)}.*/\1/p'
}

t_moving_server_moves() {
    local ping_log ppid t_move i resumed="" now ep set leaks
    mv_setup "$MV_NAME:$WG_PORT"
    ks_private_resolv_conf a
    mv_hosts "$UNDER4_B"
    ns_exec a getent hosts "$MV_NAME" | grep -q "^$UNDER4_B " ||
        fail "ip netns exec does not give $(ns a) its own /etc/hosts"

    # The leak counter counts: a ping outside the tunnel, before it exists.
    mv_leak_counter
    expect_ping a "$UNDER4_B"
    leaks="$(mv_leaks)"
    ((leaks > 0)) || fail "the leak counter did not count a ping on the underlay ($leaks)"
    nft_in a reset counter inet wrtleak leaks >/dev/null

    ks_warren_up --kill-switch on
    has_warren_table || fail "no nftables table inet warren in a while the kill switch is on"
    expect_ping a "$TUN4_B"
    wait_handshake "$IF_A" 10
    [[ $(mv_endpoint_set) == *"$UNDER4_B . $WG_PORT"* ]] || fail "the kill switch's endpoint set lacks $UNDER4_B: $(mv_endpoint_set)"

    ping_log="$WRT_TMP/move-ping.log"
    ip netns exec "$(ns a)" ping -D -n -i 0.5 -W 1 -w $((MV_RESUME_SECS + 15)) "$TUN4_B" >"$ping_log" 2>&1 &
    ppid=$!
    wrt_record_pid "$ppid"
    sleep 2
    [[ $(replies_after "$ping_log" 0) -gt 0 ]] || fail "no replies to the ping series before the move"

    log "the server moves: $UNDER4_B -> $MV_MOVED4 (and the hosts file follows)"
    ns_sysctl b net.ipv4.conf.vb.promote_secondaries=1
    t_move="$(date +%s.%N)"
    addr_add b vb "$MV_MOVED4/24"
    ip -n "$(ns b)" addr del "$UNDER4_B/24" dev vb
    mv_hosts "$MV_MOVED4"
    # Meanwhile the client tries to reach the server outside the tunnel: refused, not leaked.
    expect_no_ping a "$MV_MOVED4"
    timeout 5 ip netns exec "$(ns a)" socat -u - "UDP4:$MV_MOVED4:$WG_PORT,sourceport=40001" <<<"probe" 2>/dev/null || true
    for ((i = 0; i < MV_RESUME_SECS * 5; i++)); do
        sleep 0.2
        if [[ $(replies_after "$ping_log" "$(awk -v t="$t_move" 'BEGIN { printf "%.6f", t + 0.5 }')") -ge 3 ]]; then
            now="$(date +%s.%N)"
            resumed="$(awk -v a="$t_move" -v b="$now" 'BEGIN { printf "%.1f", b - a }')"
            break
        fi
    done
    kill_pid "$ppid"
    wait "$ppid" 2>/dev/null || true
    if [[ -z $resumed ]]; then
        tail -n 10 "$ping_log" >&2
        grep -iE "resolv|kill switch" "${WRT_PEER_LOG[$IF_A]}" | tail -n 20 >&2
        fail "ping replies did not resume within ${MV_RESUME_SECS}s of the server's move"
    fi
    log "ping replies resumed ${resumed}s after the move"
    ep="$(peer_endpoint "$IF_A")"
    [[ $ep == "$MV_MOVED4:$WG_PORT" ]] || fail "after the move a's endpoint is '$ep', expected $MV_MOVED4:$WG_PORT"
    set="$(mv_endpoint_set)"
    [[ $set == *"$MV_MOVED4 . $WG_PORT"* && $set != *"$UNDER4_B"* ]] ||
        fail "the kill switch's endpoint set did not follow the move: {$set}"
    log "a's endpoint and kill switch follow: $ep, {$set}"
    leaks="$(mv_leaks)"
    [[ $leaks == 0 ]] || fail "$leaks packet(s) left a's underlay outside the tunnel during the move"
    log "nothing left a outside the tunnel (leak counter 0)"
    ks_down cli
}

t_moving_multihomed() {
    local rewritten ep
    mv_setup "$UNDER4_B:$WG_PORT"
    addr_add b vb "$MV_SECOND4/24"
    # The server answers from its second address: its WireGuard datagrams' source is rewritten
    # (stateless, before conntrack) from the address the client sends to, and counted.
    ns_exec b nft -f - <<EOF
table ip wrtmh {
	counter rewritten { }
	chain out {
		type filter hook output priority raw; policy accept;
		ip saddr $UNDER4_B udp sport $WG_PORT counter name "rewritten" ip saddr set $MV_SECOND4
	}
}
EOF
    ks_warren_up --kill-switch on
    has_warren_table || fail "no nftables table inet warren in a while the kill switch is on"
    # The first ping starts the handshake; the answer comes from the second address.
    ping_ok a "$TUN4_B" 10 || fail "no ping reply through the tunnel from the multi-homed server"
    wait_handshake "$IF_A" 5
    expect_ping a "$TUN4_B"
    rewritten="$(ns_exec b nft list counter ip wrtmh rewritten | awk '/packets/ { for (i = 1; i < NF; i++) if ($i == "packets") print $(i + 1) }')"
    ((rewritten > 0)) || fail "the server never answered from its second address (counter $rewritten)"
    ep="$(peer_endpoint "$IF_A")"
    [[ $ep == "$MV_SECOND4:$WG_PORT" ]] || fail "a's endpoint is '$ep', expected the server's second address $MV_SECOND4:$WG_PORT"
    [[ $(mv_endpoint_set) == *"$MV_SECOND4 . $WG_PORT"* ]] ||
        fail "the kill switch's endpoint set lacks $MV_SECOND4: $(mv_endpoint_set)"
    log "the server answered from $MV_SECOND4 ($rewritten datagrams); a roamed there and its kill switch followed"
    expect_no_ping a "$MV_SECOND4"
    ks_down cli
}

register -t 150 moving/server-moves t_moving_server_moves
register -t 90 moving/multihomed t_moving_multihomed
