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
#   fulltunnel/two-down    two IPv4 full tunnels up at once in c (C to p:51820, then D to q:51821,
#                          both FwMark 0xca6c so neither tunnel's own packets enter the other; D's
#                          rules, added last, come first, so D carries c's traffic), strict
#                          reverse-path filtering in c, so that D's replies need src_valid_mark:
#                          C goes down first (SIGTERM) -> src_valid_mark stays 1 and D still reaches
#                          f; D goes down -> src_valid_mark is 0 again and c is exactly as before
#   fulltunnel/two-kill9   the same, but C is killed with SIGKILL and `warren-helper recover` undoes
#                          its journal while D is up
#   fulltunnel/two-together  C through the daemon (test-daemon.sh's helpers), D in the foreground;
#                          both get SIGTERM at once, so the two undos race: src_valid_mark back to
#                          0 and c exactly as before (the shared lock serialises them; without it
#                          both could see the other still holding it and leave it at 1)
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

# t_fulltunnel_two HOW — see the header (HOW: down, kill9 or together).
t_fulltunnel_two() {
    local how=$1 if_p if_q conf_p conf_q before out
    need_kinds warren wggo
    ns_new c
    ns_new p
    ns_new f
    veth_new c vc p vp
    veth_new p pf f fp
    addr_add c vc "$UNDER4_A/24"
    addr_add p vp "$UNDER4_B/24"
    addr_add p pf 198.18.3.1/24
    addr_add f fp "$FAR4/24"
    addr_add p lo "$ENDPOINT4/32"
    wait_link_ready c vc
    wait_link_ready p vp
    wait_link_ready p pf
    wait_link_ready f fp
    wait_link_local c vc
    ip -n "$(ns c)" route add default via "$UNDER4_B" dev vc
    ip -n "$(ns f)" route add 198.19.0.0/24 via 198.18.3.1
    ip -n "$(ns f)" route add 198.19.1.0/24 via 198.18.3.1
    ns_sysctl p net.ipv4.ip_forward=1 net.ipv4.conf.all.send_redirects=0 net.ipv4.conf.default.send_redirects=0
    ns_sysctl c net.ipv4.conf.all.rp_filter=1 net.ipv4.conf.vc.rp_filter=1
    [[ $(ns_exec c sysctl -n net.ipv4.conf.all.src_valid_mark) == 0 ]] || fail "a new namespace's src_valid_mark is not 0"
    export WARREN_STATE_DIR="$WRT_TMP/state"

    key_new c
    key_new d
    key_new p
    key_new q
    IF_C="$(ifname C)"
    IF_D="$(ifname D)"
    if_p="$(ifname P)"
    if_q="$(ifname Q)"
    CONF_C="$WRT_TMP/$IF_C.conf"
    CONF_D="$WRT_TMP/$IF_D.conf"
    conf_p="$WRT_TMP/$if_p.conf"
    conf_q="$WRT_TMP/$if_q.conf"
    conf_interface "$conf_p" key=p addr="198.19.0.2/24" port="$WG_PORT"
    conf_peer "$conf_p" pub="$(key_pub c)" allowed="198.19.0.1/32"
    conf_interface "$conf_q" key=q addr="198.19.1.2/24" port="$((WG_PORT + 1))"
    conf_peer "$conf_q" pub="$(key_pub d)" allowed="198.19.1.1/32"
    conf_interface "$CONF_C" key=c addr="198.19.0.1/24"
    echo "FwMark = 0xca6c" >>"$CONF_C"
    conf_peer "$CONF_C" pub="$(key_pub p)" allowed="0.0.0.0/0" endpoint="$ENDPOINT4:$WG_PORT"
    conf_interface "$CONF_D" key=d addr="198.19.1.1/24"
    echo "FwMark = 0xca6c" >>"$CONF_D"
    conf_peer "$CONF_D" pub="$(key_pub q)" allowed="0.0.0.0/0" endpoint="$ENDPOINT4:$((WG_PORT + 1))"
    chmod 600 "$conf_p" "$conf_q" "$CONF_C" "$CONF_D"

    before="$(route_state c)"
    peer_up wggo p "$if_p" "$conf_p"
    peer_up wggo p "$if_q" "$conf_q"
    if [[ $how == together ]]; then
        # The daemon runs one full tunnel per family (daemon/conflict.rs), so the second is a
        # foreground one: two processes, as after `up --foreground` next to the service.
        command -v jq >/dev/null || fail "jq not installed (scripts/setup.sh)"
        daemon_paths
        daemon_start c
        wh_expect 0 "import $IF_C" import "$CONF_C"
        # One kill switch per host; this test is about the sysctl.
        wh_expect 0 "up $IF_C" up "$IF_C" --kill-switch off
        expect_ping c "$FAR4"
        peer_up warren c "$IF_D" "$CONF_D"
        expect_ping c "$FAR4"
        [[ $(ns_exec c sysctl -n net.ipv4.conf.all.src_valid_mark) == 1 ]] || fail "src_valid_mark is not 1 with both tunnels up"
        grep -q src_valid_mark "$D_STATE/$IF_C.journal" || fail "$IF_C did not journal src_valid_mark"
        grep -q src_valid_mark "$D_STATE/$IF_D.journal" || fail "$IF_D did not journal its share of src_valid_mark"
        local d_pid i
        d_pid="$(peer_pid "$IF_D")"
        kill -TERM "$DAEMON_PID" "$d_pid"
        for ((i = 0; i < 300; i++)); do
            kill -0 "$DAEMON_PID" 2>/dev/null || kill -0 "$d_pid" 2>/dev/null || break
            sleep 0.1
        done
        ! kill -0 "$DAEMON_PID" 2>/dev/null || fail "the daemon did not exit within 30 s of SIGTERM"
        ! kill -0 "$d_pid" 2>/dev/null || fail "warren-helper ($IF_D) did not exit within 30 s of SIGTERM"
        wait "$DAEMON_PID" || fail "the daemon exited with an error after SIGTERM"
        wait "$d_pid" || fail "warren-helper ($IF_D) exited with an error after SIGTERM"
        log "both stopped at once (the daemon with $IF_C, the foreground $IF_D)"
        [[ $(ns_exec c sysctl -n net.ipv4.conf.all.src_valid_mark) == 0 ]] ||
            fail "src_valid_mark is not back to 0 after both tunnels went down at once"
        expect_same_state "two full tunnels stopped at once" "$before" "$(route_state c)"
        [[ -z $(find "$D_STATE" -mindepth 1 2>/dev/null) ]] || fail "left in $D_STATE: $(find "$D_STATE" -mindepth 1)"
        return
    fi
    peer_up warren c "$IF_C" "$CONF_C"
    expect_ping c "$FAR4"
    [[ $(ns_exec c sysctl -n net.ipv4.conf.all.src_valid_mark) == 1 ]] || fail "src_valid_mark is not 1 with $IF_C up"
    peer_up warren c "$IF_D" "$CONF_D"
    expect_ping c "$FAR4"
    wait_handshake "$IF_D" 10
    [[ $(rx_bytes "$IF_D") -gt 0 ]] || fail "$IF_D (up last, its rules first) carried nothing"
    grep -q src_valid_mark "$WARREN_STATE_DIR/$IF_D.journal" ||
        fail "$IF_D found src_valid_mark set by $IF_C and did not journal its share: $(cat "$WARREN_STATE_DIR/$IF_D.journal")"
    log "both full tunnels up; $IF_D carries c's traffic; both journals hold src_valid_mark"

    case $how in
        down)
            peer_stop "$IF_C" TERM 10 || fail "warren-helper ($IF_C) did not exit within 10 s of SIGTERM"
            [[ $PEER_EXIT_STATUS == 0 ]] || fail "warren-helper ($IF_C) exited with status $PEER_EXIT_STATUS"
            ;;
        kill9)
            kill9 "$IF_C"
            out="$(timeout 30 ip netns exec "$(ns c)" "$WARREN_BIN" recover --interface "$IF_C" 2>&1)" ||
                fail "warren-helper recover --interface $IF_C failed: $out"
            log "recover: $out"
            ;;
        *) fail "t_fulltunnel_two: $how?" ;;
    esac
    [[ ! -e $WARREN_STATE_DIR/$IF_C.journal ]] || fail "$IF_C's journal is still there after it went ($how)"
    [[ $(ns_exec c sysctl -n net.ipv4.conf.all.src_valid_mark) == 1 ]] ||
        fail "src_valid_mark was reset when $IF_C went ($how) although $IF_D still needs it"
    out="$(rx_bytes "$IF_D")"
    expect_ping c "$FAR4"
    [[ $(rx_bytes "$IF_D") -gt $out ]] || fail "$IF_D received nothing after $IF_C went ($how)"
    log "$IF_C gone ($how): src_valid_mark still 1, $IF_D still carries traffic with strict rp_filter"

    peer_stop "$IF_D" TERM 10 || fail "warren-helper ($IF_D) did not exit within 10 s of SIGTERM"
    [[ $PEER_EXIT_STATUS == 0 ]] || fail "warren-helper ($IF_D) exited with status $PEER_EXIT_STATUS"
    [[ $(ns_exec c sysctl -n net.ipv4.conf.all.src_valid_mark) == 0 ]] || fail "src_valid_mark is not back to 0 after the last tunnel went"
    expect_same_state "two full tunnels, $IF_C then $IF_D gone" "$before" "$(route_state c)"
    expect_no_journal
}

register fulltunnel/underlay4 t_fulltunnel 4
register fulltunnel/underlay6 t_fulltunnel 6
register fulltunnel/rp-strict t_fulltunnel rp-strict
register fulltunnel/two-down t_fulltunnel_two down
register fulltunnel/two-kill9 t_fulltunnel_two kill9
register fulltunnel/two-together t_fulltunnel_two together
