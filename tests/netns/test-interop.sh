# shellcheck shell=bash
# Group "interop": Warren against the two modern reference implementations, both directions (INIT
# has the Endpoint and starts the handshake): wireguard-go 0.0.20250522 with TUN offloads and UDP
# GSO/GRO ("wggo25") and Mullvad's gotatun 0.10.2 ("gotatun"), both prebuilt in ../shared/anchors.
# Each pair runs the basic test with a PresharedKey (handshake, ping both ways over inner IPv4 and
# IPv6, the responder sees the initiator's endpoint) and a checksummed TCP transfer each way.
# (Debian's wireguard-go is the "wggo" kind of every other group.)

WRT_INTEROP_MIB="${WRT_INTEROP_MIB:-32}"

t_interop_transfer() {
    local init=$1 resp=$2
    pair_setup "$init" "$resp" psk=yes
    expect_ping a "$TUN4_B"
    transfer_check a b "$TUN4_B" "$WRT_INTEROP_MIB" 5001
    transfer_check b a "$TUN6_A" "$WRT_INTEROP_MIB" 5002
}

for pair in warren-wggo25 wggo25-warren warren-gotatun gotatun-warren; do
    register "interop/$pair" t_basic "${pair%-*}" "${pair#*-}" yes
    register -t 300 "interop/$pair-transfer" t_interop_transfer "${pair%-*}" "${pair#*-}"
done
