# shellcheck shell=bash
# Group "fulltunnel": Warren as a full-tunnel client (AllowedIPs = 0.0.0.0/0, ::/0) without a loop.
#
#   c (Warren) --veth vc/vp (MTU 1400)-- p (wireguard-go, forwards) --veth pf/fp-- f (far host)
#
# c's only default routes go through p's veth address; p's endpoint address (198.18.2.1, fd00:9::1 on
# p's loopback) is reachable from c only through those default routes, exactly where a plain default
# route through the tunnel would loop. f (198.18.3.2, fd00:3::2) answers the tunnel's addresses only:
# it has no route back to c's underlay, so a reply from f proves the packet came through the tunnel.
# Checked: the handshake completes and p sees c at its underlay address; ping to f over IPv4 and IPv6
# works; `ip route get <f>` in c picks the tunnel interface (table 51820) while
# `ip route get <endpoint> mark 0xca6c` picks the veth; the MTU is the path MTU minus 80 (1320); the
# rules, fwmark and src_valid_mark are in place; SIGTERM puts c back exactly as it was.
#   fulltunnel/underlay4   endpoint 198.18.2.1:51820
#   fulltunnel/underlay6   endpoint [fd00:9::1]:51820
#   fulltunnel/rp-strict   endpoint 198.18.2.1:51820 with strict reverse-path filtering in c
#                          (net.ipv4.conf.{all,vc}.rp_filter=1, RHEL's default): works because the
#                          guard gives the endpoint's replies the tunnel's mark back; with the guard's
#                          table deleted while up, the replies are dropped (the proof that it is
#                          the guard, not luck)
# Uses route_state/expect_same_state/expect_no_journal from test-crash.sh (run.sh sources every
# group file).

FAR4=198.18.3.2 FAR6=fd00:3::2
ENDPOINT4=198.18.2.1 ENDPOINT6=fd00:9::1

t_fulltunnel() {
    local underlay=$1 if_p conf_p endpoint before out fam far ep_ip
    need_kinds warren wggo
    ns_new c
    ns_new p
    ns_new f
    veth_new c vc p vp
    veth_new p pf f fp
    ip -n "$(ns c)" link set vc mtu 1400
    ip -n "$(ns p)" link set vp mtu 1400
    addr_add c vc "$UNDER4_A/24"
    addr_add c vc "$UNDER6_A/64"
    addr_add p vp "$UNDER4_B/24"
    addr_add p vp "$UNDER6_B/64"
    addr_add p pf 198.18.3.1/24
    addr_add p pf fd00:3::1/64
    addr_add f fp "$FAR4/24"
    addr_add f fp "$FAR6/64"
    addr_add p lo "$ENDPOINT4/32"
    addr_add p lo "$ENDPOINT6/128"
    wait_link_ready c vc
    wait_link_ready p vp
    wait_link_ready p pf
    wait_link_ready f fp
    wait_link_local c vc
    ip -n "$(ns c)" route add default via "$UNDER4_B" dev vc
    ip -n "$(ns c)" -6 route add default via "$UNDER6_B" dev vc
    ip -n "$(ns f)" route add 198.19.0.0/24 via 198.18.3.1
    ip -n "$(ns f)" -6 route add fd00:2::/64 via fd00:3::1
    ns_sysctl p net.ipv4.ip_forward=1 net.ipv6.conf.all.forwarding=1 \
        net.ipv4.conf.all.send_redirects=0 net.ipv4.conf.default.send_redirects=0
    export WARREN_STATE_DIR="$WRT_TMP/state"
    if [[ $underlay == rp-strict ]]; then
        ns_sysctl c net.ipv4.conf.all.rp_filter=1 net.ipv4.conf.vc.rp_filter=1
    fi

    key_new c
    key_new p
    IF_C="$(ifname C)"
    if_p="$(ifname P)"
    CONF_C="$WRT_TMP/$IF_C.conf"
    conf_p="$WRT_TMP/$if_p.conf"
    if [[ $underlay == 6 ]]; then
        endpoint="[$ENDPOINT6]:$WG_PORT"
        ep_ip=$ENDPOINT6
    else
        endpoint="$ENDPOINT4:$WG_PORT"
        ep_ip=$ENDPOINT4
    fi
    conf_interface "$conf_p" key=p addr="$TUN4_B/24,$TUN6_B/64" port="$WG_PORT"
    conf_peer "$conf_p" pub="$(key_pub c)" allowed="$TUN4_A/32,$TUN6_A/128"
    conf_interface "$CONF_C" key=c addr="$TUN4_A/24,$TUN6_A/64"
    conf_peer "$CONF_C" pub="$(key_pub p)" allowed="0.0.0.0/0,::/0" endpoint="$endpoint"
    chmod 600 "$conf_p" "$CONF_C"

    # Without the tunnel, f is out of reach (it has no route back to c's underlay).
    if ns_exec c ping -n -c 1 -W 1 "$FAR4" >/dev/null 2>&1; then
        fail "f answers c without the tunnel: the test would prove nothing"
    fi

    before="$(route_state c)"
    peer_up wggo p "$if_p" "$conf_p"
    peer_up warren c "$IF_C" "$CONF_C"

    # The plan: MTU from the path to the endpoint, policy routing for both families.
    out="$(ip -n "$(ns c)" link show "$IF_C")"
    grep -q 'mtu 1320' <<<"$out" || fail "$IF_C MTU is not 1400 - 80 = 1320: $out"
    expect_full_tunnel_applied "4 6"
    [[ $(wg_show "$IF_C" fwmark) == 0xca6c ]] || fail "wg show fwmark: '$(wg_show "$IF_C" fwmark)', expected 0xca6c"

    # The traffic works through the tunnel...
    expect_ping c "$FAR4"
    expect_ping c "$FAR6"
    expect_ping c "$TUN4_B"
    wait_handshake "$IF_C" 10
    # ...and the tunnel's own packets go around it: p sees c at c's underlay address.
    out="$(wg_show "$if_p" endpoints)"
    if [[ $underlay == 6 ]]; then
        grep -qF "[$UNDER6_A]:" <<<"$out" || fail "p sees c at '$out', expected [$UNDER6_A]:port"
    else
        grep -qF "$UNDER4_A:" <<<"$out" || fail "p sees c at '$out', expected $UNDER4_A:port"
    fi
    [[ $(rx_bytes "$IF_C") -gt 0 ]] || fail "$IF_C received nothing from p"
    if [[ $underlay == rp-strict ]]; then
        # Without the guard, strict filtering drops the endpoint's (unmarked) replies.
        ns_exec c nft delete table inet "warren_rp_${IF_C//[^A-Za-z0-9]/_}"
        expect_no_ping c "$FAR4"
        log "with the guard's table deleted, strict rp_filter drops the tunnel's replies"
        peer_stop "$IF_C" TERM 10 || fail "warren-helper did not exit within 10 s of SIGTERM"
        expect_same_state "full tunnel, guard deleted by hand, SIGTERM" "$before" "$(route_state c)"
        expect_no_journal
        return
    fi

    # The routing decisions behind it.
    for far in "$FAR4" "$FAR6"; do
        out="$(ip -n "$(ns c)" route get "$far")"
        grep -q "dev $IF_C table 51820" <<<"$out" || fail "ip route get $far does not pick $IF_C in table 51820: $out"
        log "ip route get $far: $out"
    done
    out="$(ip -n "$(ns c)" route get "$ep_ip" mark 0xca6c)"
    grep -q "dev vc" <<<"$out" || fail "ip route get $ep_ip mark 0xca6c (the tunnel's own packets) does not pick vc: $out"
    log "ip route get $ep_ip mark 0xca6c: $out"
    # Unmarked packets to the endpoint go through the tunnel, like everything else.
    out="$(ip -n "$(ns c)" route get "$ep_ip")"
    grep -q "dev $IF_C" <<<"$out" || fail "ip route get $ep_ip (unmarked) does not pick $IF_C: $out"
    # The on-link underlay stays reachable outside the tunnel (the main table's specific routes win).
    for fam in 4 6; do
        if [[ $fam == 4 ]]; then out="$(ip -n "$(ns c)" route get "$UNDER4_B")"; else out="$(ip -n "$(ns c)" -6 route get "$UNDER6_B")"; fi
        grep -q "dev vc" <<<"$out" || fail "ip route get to the on-link gateway does not pick vc: $out"
    done

    peer_stop "$IF_C" TERM 10 || fail "warren-helper did not exit within 10 s of SIGTERM"
    [[ $PEER_EXIT_STATUS == 0 ]] || fail "warren-helper exited with status $PEER_EXIT_STATUS after SIGTERM"
    expect_same_state "full tunnel, SIGTERM" "$before" "$(route_state c)"
    expect_no_journal
}

register fulltunnel/underlay4 t_fulltunnel 4
register fulltunnel/underlay6 t_fulltunnel 6
register fulltunnel/rp-strict t_fulltunnel rp-strict
