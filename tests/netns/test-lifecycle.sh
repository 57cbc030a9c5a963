# shellcheck shell=bash
# Group "lifecycle": `warren-helper up` alone in a namespace: the interface gets the config's
# addresses, MTU and a route per AllowedIPs prefix; `wg show`/`wg set` work over its UAPI socket; on
# SIGINT or SIGTERM it exits 0 and removes the interface, routes and socket; it can be started again.

t_lifecycle() {
    local sig=$1 iface conf full new round link addrs
    need_warren_bin
    ns_new a
    full="$(ns a)"
    key_new a
    key_new p
    key_new q
    iface="$(ifname A)"
    conf="$WRT_TMP/$iface.conf"
    conf_interface "$conf" key=a addr="$TUN4_A/24,$TUN6_A/64" port="$WG_PORT" mtu=1380
    conf_peer "$conf" pub="$(key_pub p)" allowed="198.19.5.0/24,fd00:2:5::/64" endpoint="198.18.0.9:$WG_PORT" keepalive=25
    chmod 600 "$conf"
    for round in 1 2; do
        peer_up warren a "$iface" "$conf"
        # (Outputs are captured first: `cmd | grep -q` fails under pipefail when grep exits early.)
        link="$(ip -n "$full" link show "$iface")" || fail "no interface $iface in $full"
        addrs="$(ip -n "$full" addr show dev "$iface")"
        grep -Eq '[<,]UP[,>]' <<<"$link" || fail "$iface is not UP: $link"
        grep -q 'mtu 1380' <<<"$link" || fail "$iface MTU is not 1380: $link"
        grep -q "inet $TUN4_A/24" <<<"$addrs" || fail "$iface lacks $TUN4_A/24: $addrs"
        grep -q "inet6 $TUN6_A/64" <<<"$addrs" || fail "$iface lacks $TUN6_A/64: $addrs"
        [[ -n $(ip -n "$full" route show 198.19.5.0/24 dev "$iface") ]] || fail "no route 198.19.5.0/24 dev $iface"
        [[ -n $(ip -n "$full" -6 route show fd00:2:5::/64 dev "$iface") ]] || fail "no route fd00:2:5::/64 dev $iface"
        [[ $(wg_show "$iface" listen-port) == "$WG_PORT" ]] || fail "wg show listen-port: '$(wg_show "$iface" listen-port)'"
        [[ $(wg_show "$iface" public-key) == "$(key_pub a)" ]] || fail "wg show public-key differs from the config's"
        grep -q "198.19.5.0/24" <<<"$(wg_show "$iface" allowed-ips)" || fail "wg show allowed-ips lacks 198.19.5.0/24"
        grep -q "25" <<<"$(wg_show "$iface" persistent-keepalive)" || fail "wg show persistent-keepalive lacks 25"
        new="$(key_pub q)"
        ns_exec a wg set "$iface" peer "$new" allowed-ips 198.19.6.1/32
        grep -qx "$new" <<<"$(wg_show "$iface" peers)" || fail "peer added by wg set is not listed"
        ns_exec a wg set "$iface" peer "$new" remove
        ! grep -qx "$new" <<<"$(wg_show "$iface" peers)" || fail "peer removed by wg set is still listed"

        peer_stop "$iface" "$sig" 10 || fail "warren-helper did not exit within 10 s of SIG$sig"
        [[ $PEER_EXIT_STATUS == 0 ]] || fail "warren-helper exited with status $PEER_EXIT_STATUS after SIG$sig (expected 0)"
        ! ip -n "$full" link show "$iface" >/dev/null 2>&1 || fail "$iface still exists after SIG$sig"
        [[ ! -e $WG_RUN_DIR/$iface.sock ]] || fail "$WG_RUN_DIR/$iface.sock still exists after SIG$sig"
        [[ -z $(ip -n "$full" route show 198.19.5.0/24) ]] || fail "route 198.19.5.0/24 still there after SIG$sig"
        log "round $round: up, checked, SIG$sig -> exit 0, everything removed"
    done
}

register lifecycle/sigint t_lifecycle INT
register lifecycle/sigterm t_lifecycle TERM
