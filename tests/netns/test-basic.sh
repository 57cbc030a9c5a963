# shellcheck shell=bash
# Group "basic": handshake and ping over IPv4 and IPv6 inner addresses, both ways, with and without a
# PresharedKey, for each peer pair INIT-RESP (INIT has the Endpoint and starts the handshake).

t_basic() {
    local init=$1 resp=$2 psk=$3
    pair_setup "$init" "$resp" psk="$psk"
    # A's first ping triggers the handshake (B has no endpoint for A and cannot start it).
    expect_ping a "$TUN4_B"
    wait_handshake "$IF_A" 10
    wait_handshake "$IF_B" 10
    log "latest handshakes: A=$(latest_handshake "$IF_A") B=$(latest_handshake "$IF_B")"
    expect_ping b "$TUN4_A"
    expect_ping a "$TUN6_B"
    expect_ping b "$TUN6_A"
    local ep
    ep="$(peer_endpoint "$IF_B")"
    [[ $ep == "$UNDER4_A:$WG_PORT" ]] || fail "responder B reports endpoint '$ep' for A, expected $UNDER4_A:$WG_PORT"
}

for pair in $WRT_PAIRS; do
    register "basic/$pair" t_basic "${pair%-*}" "${pair#*-}" no
    register "basic/$pair-psk" t_basic "${pair%-*}" "${pair#*-}" yes
done
