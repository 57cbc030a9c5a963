# shellcheck shell=bash
# Group "netchange": the network under a running client changes, and the client's network
# monitor (rtnetlink) makes it reconnect at once instead of waiting for WireGuard's timers.
#
#   netchange/client-moves  `warren-helper daemon` in namespace a runs a user tunnel to a
#                        wireguard-go server in b, with NO persistent keepalive, reaching the server's
#                        address 198.18.20.2 through a's default route (via b's 198.18.0.2 on va).
#                        After a first handshake (one ping) nothing is sent through the tunnel.
#                        1. a loses its network: its address on va goes, and with it the default
#                           route. The daemon's `status --json` says "reconnecting" (the handshake
#                           it started cannot complete), and the server's latest handshake stays.
#                        2. a gets a new network: a second veth pair (va2 198.18.10.1 <-> vb2
#                           198.18.10.2, MTU 1400 on a's side) and the default route via it.
#                           With no traffic sent, the server's `wg show latest-handshakes` advances
#                           within NC_HANDSHAKE_SECS (3 s), its endpoint for a becomes 198.18.10.1,
#                           the client's status is "connected" again, the tunnel's MTU follows the
#                           new path (1400 - 80 = 1320: derived, as no MTU = is set), and the
#                           daemon's log shows connected → reconnecting (network changed) →
#                           connected.
#
# Without the monitor the client sends nothing after the change (no keepalive, no traffic): the
# status never says "reconnecting" and the server's handshake does not advance.

NC_SERVER4=198.18.20.2
NC_NEW4_A=198.18.10.1
NC_NEW4_B=198.18.10.2
NC_HANDSHAKE_SECS="${NC_HANDSHAKE_SECS:-3}"

t_netchange_client_moves() {
    local conf_b h1 h2 t_change elapsed mtu ep
    need_kinds warren wggo
    command -v jq >/dev/null || fail "jq not installed (scripts/setup.sh)"
    daemon_paths
    underlay_pair
    # The server's address is off-link for a: reached through a's default route via b.
    addr_add b vb "$NC_SERVER4/32"
    ip -n "$(ns a)" route add default via "$UNDER4_B" dev va
    key_new a
    key_new b
    IF_A="$(ifname A)"
    IF_B="$(ifname B)"
    CONF_A="$WRT_TMP/$IF_A.conf"
    conf_b="$WRT_TMP/$IF_B.conf"
    conf_interface "$CONF_A" key=a addr="$TUN4_A/24"
    conf_peer "$CONF_A" pub="$(key_pub b)" allowed="$TUN4_B/32" endpoint="$NC_SERVER4:$WG_PORT"
    conf_interface "$conf_b" key=b addr="$TUN4_B/24" port="$WG_PORT"
    conf_peer "$conf_b" pub="$(key_pub a)" allowed="$TUN4_A/32"
    chmod 600 "$CONF_A" "$conf_b"
    grep -qi keepalive "$CONF_A" && fail "the client's configuration has a keepalive"
    peer_up wggo b "$IF_B" "$conf_b"
    WRT_IFACES+=("$IF_A")
    echo "$IF_A" >>"$WRT_TMP/.ifaces"

    daemon_start a
    wh_expect 0 "a user tunnel without keepalive" up "$CONF_A"
    # One ping makes the first handshake; nothing goes through the tunnel after it.
    expect_ping a "$TUN4_B"
    wait_until 10 "$IF_A connected" state_is "$IF_A" connected
    wait_handshake "$IF_B" 5
    h1="$(latest_handshake "$IF_B")"
    log "first handshake at the server: $h1; endpoint $(peer_endpoint "$IF_B")"
    sleep 1

    log "1. a loses its network: $UNDER4_A goes from va (and the default route with it)"
    ip -n "$(ns a)" addr del "$UNDER4_A/24" dev va
    wait_until 5 "$IF_A reconnecting after its network went (status --json)" \
        state_is "$IF_A" reconnecting
    [[ $(status_field "$IF_A" .health) == null ]] || fail "a health verdict while reconnecting"
    wh status "$IF_A" | grep -q "state: reconnecting (network changed)" ||
        fail "status does not say 'reconnecting (network changed)': $(wh status "$IF_A")"
    h2="$(latest_handshake "$IF_B")"
    [[ $h2 == "$h1" ]] || fail "the server saw a handshake while a had no network ($h1 -> $h2)"
    sleep 1

    log "2. a gets a new network: va2 $NC_NEW4_A (MTU 1400) <-> vb2 $NC_NEW4_B, default route via it"
    veth_new a va2 b vb2
    addr_add b vb2 "$NC_NEW4_B/24"
    ip -n "$(ns a)" link set va2 mtu 1400
    addr_add a va2 "$NC_NEW4_A/24"
    wait_link_ready a va2
    wait_link_ready b vb2
    t_change="$(date +%s%N)"
    ip -n "$(ns a)" route add default via "$NC_NEW4_B" dev va2
    wait_until "$NC_HANDSHAKE_SECS" "a new handshake at the server within ${NC_HANDSHAKE_SECS}s, with no traffic sent" \
        nc_handshake_after "$h1"
    elapsed=$((($(date +%s%N) - t_change) / 1000000))
    log "the server's latest handshake advanced $elapsed ms after the new default route"
    ep="$(peer_endpoint "$IF_B")"
    [[ $ep == "$NC_NEW4_A":* ]] || fail "the server's endpoint for a is $ep, not at $NC_NEW4_A"
    wait_until 3 "$IF_A connected again" state_is "$IF_A" connected
    mtu="$(ip -n "$(ns a)" -o link show "$IF_A" | sed -n 's/.* mtu \([0-9]*\) .*/\1/p')"
    [[ $mtu == 1320 ]] || fail "the tunnel's MTU is $mtu, not 1320 (the new path's 1400 - 80)"
    grep -q "tunnel '$IF_A': connected → reconnecting (network changed)" "$DAEMON_LOG" ||
        fail "the daemon's log lacks connected → reconnecting"
    grep -q "tunnel '$IF_A': reconnecting (network changed) → connected" "$DAEMON_LOG" ||
        fail "the daemon's log lacks reconnecting → connected"
    expect_ping a "$TUN4_B"

    wh_expect 0 "down" down "$IF_A"
    daemon_stop
}

# nc_handshake_after T — the server's latest handshake is newer than T.
nc_handshake_after() { [[ $(latest_handshake "$IF_B") -gt $1 ]]; }

register netchange/client-moves t_netchange_client_moves
