# shellcheck shell=bash
# Group "underlay6": the tunnel runs over an IPv6 underlay (Endpoint = [fd00:1::2]:51820); inner
# IPv4 and IPv6 both ways; the responder learns A's IPv6 endpoint.

t_underlay6() {
    local init=$1 resp=$2
    pair_setup "$init" "$resp" underlay=6
    expect_ping a "$TUN4_B"
    wait_handshake "$IF_A" 10
    wait_handshake "$IF_B" 10
    expect_ping b "$TUN4_A"
    expect_ping a "$TUN6_B"
    expect_ping b "$TUN6_A"
    local ep
    ep="$(peer_endpoint "$IF_B")"
    [[ $ep == "[$UNDER6_A]:$WG_PORT" ]] || fail "responder B reports endpoint '$ep' for A, expected [$UNDER6_A]:$WG_PORT"
}

for pair in $WRT_PAIRS; do
    register "underlay6/$pair" t_underlay6 "${pair%-*}" "${pair#*-}"
done
