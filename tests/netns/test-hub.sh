# shellcheck shell=bash
# Group "hub": one interface with two peers, routed by AllowedIPs. A hub (namespace hub) has a veth
# to each spoke (198.18.0.0/24 to s1, 198.18.1.0/24 to s2); each spoke's only peer is the hub, with
# AllowedIPs = the whole tunnel subnet. The hub reaches each spoke by its tunnel address, and the
# spokes reach each other through the hub (IP forwarding on in the hub's namespace only).

t_hub() {
    local hub_kind=$1 s1_kind=$2 s2_kind=$3 if_h if_s1 if_s2 conf_h conf_s1 conf_s2 ep
    need_kinds "$hub_kind" "$s1_kind" "$s2_kind"
    ns_new hub
    ns_new s1
    ns_new s2
    veth_new hub h1 s1 v1
    veth_new hub h2 s2 v2
    addr_add hub h1 198.18.0.1/24
    addr_add s1 v1 198.18.0.2/24
    addr_add hub h2 198.18.1.1/24
    addr_add s2 v2 198.18.1.2/24
    wait_link_ready hub h1
    wait_link_ready hub h2
    ns_sysctl hub net.ipv4.ip_forward=1 net.ipv6.conf.all.forwarding=1 \
        net.ipv4.conf.all.send_redirects=0 net.ipv4.conf.default.send_redirects=0

    key_new hub
    key_new s1
    key_new s2
    if_h="$(ifname H)"
    if_s1="$(ifname S)"
    if_s2="$(ifname T)"
    conf_h="$WRT_TMP/$if_h.conf"
    conf_s1="$WRT_TMP/$if_s1.conf"
    conf_s2="$WRT_TMP/$if_s2.conf"
    conf_interface "$conf_h" key=hub addr="$TUN4_A/24,$TUN6_A/64" port="$WG_PORT"
    conf_peer "$conf_h" pub="$(key_pub s1)" allowed="$TUN4_B/32,$TUN6_B/128"
    conf_peer "$conf_h" pub="$(key_pub s2)" allowed="$TUN4_C/32,$TUN6_C/128"
    conf_interface "$conf_s1" key=s1 addr="$TUN4_B/24,$TUN6_B/64" port="$WG_PORT"
    conf_peer "$conf_s1" pub="$(key_pub hub)" allowed="198.19.0.0/24,fd00:2::/64" endpoint="198.18.0.1:$WG_PORT"
    conf_interface "$conf_s2" key=s2 addr="$TUN4_C/24,$TUN6_C/64" port="$WG_PORT"
    conf_peer "$conf_s2" pub="$(key_pub hub)" allowed="198.19.0.0/24,fd00:2::/64" endpoint="198.18.1.1:$WG_PORT"
    chmod 600 "$conf_h" "$conf_s1" "$conf_s2"

    peer_up "$hub_kind" hub "$if_h" "$conf_h"
    peer_up "$s1_kind" s1 "$if_s1" "$conf_s1"
    peer_up "$s2_kind" s2 "$if_s2" "$conf_s2"

    # The spokes know the hub's endpoint: they start the handshakes.
    expect_ping s1 "$TUN4_A"
    expect_ping s2 "$TUN4_A"
    [[ $(handshake_of "$if_h" "$(key_pub s1)") -gt 0 ]] || fail "hub has no handshake with spoke s1"
    [[ $(handshake_of "$if_h" "$(key_pub s2)") -gt 0 ]] || fail "hub has no handshake with spoke s2"
    # The hub picks the peer by AllowedIPs.
    expect_ping hub "$TUN4_B"
    expect_ping hub "$TUN4_C"
    expect_ping hub "$TUN6_B"
    expect_ping hub "$TUN6_C"
    # Spoke to spoke, through the hub.
    expect_ping s1 "$TUN4_C"
    expect_ping s2 "$TUN4_B"
    expect_ping s1 "$TUN6_C"
    ep="$(wg_show "$if_h" endpoints | awk -v k="$(key_pub s1)" '$1 == k { print $2 }')"
    [[ $ep == "198.18.0.2:$WG_PORT" ]] || fail "hub reports endpoint '$ep' for s1, expected 198.18.0.2:$WG_PORT"
    ep="$(wg_show "$if_h" endpoints | awk -v k="$(key_pub s2)" '$1 == k { print $2 }')"
    [[ $ep == "198.18.1.2:$WG_PORT" ]] || fail "hub reports endpoint '$ep' for s2, expected 198.18.1.2:$WG_PORT"
}

# hub kind, spoke 1 kind, spoke 2 kind
register hub/wggo t_hub wggo wggo wggo
register hub/warren t_hub warren wggo warren
