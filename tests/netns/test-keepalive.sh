# shellcheck shell=bash
# Group "keepalive": with PersistentKeepalive = 1 on the initiator and no traffic at all, the
# handshake happens by itself (as with the kernel and wireguard-go, a keepalive is sent as soon as
# the option is set on an up interface) and the responder keeps receiving 32-byte keepalives.

t_keepalive() {
    local init=$1 resp=$2 rx0 rx1
    pair_setup "$init" "$resp" keepalive=1
    wait_handshake "$IF_A" 15
    wait_handshake "$IF_B" 15
    rx0="$(rx_bytes "$IF_B")"
    sleep 4
    rx1="$(rx_bytes "$IF_B")"
    log "responder rx bytes: $rx0 -> $rx1 over 4 s"
    ((rx1 - rx0 >= 64)) || fail "responder received $((rx1 - rx0)) bytes in 4 s; expected >= 2 keepalives (64 bytes)"
}

for pair in $WRT_PAIRS; do
    register "keepalive/$pair" t_keepalive "${pair%-*}" "${pair#*-}"
done
