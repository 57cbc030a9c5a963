# shellcheck shell=bash
# Group "transfer": 64 MiB of random bytes each way over TCP (socat) through the tunnel, with a
# PresharedKey; A->B over inner IPv4, B->A over inner IPv6; SHA-256 must match on both ends.

WRT_TRANSFER_MIB="${WRT_TRANSFER_MIB:-64}"

t_transfer() {
    local init=$1 resp=$2
    pair_setup "$init" "$resp" psk=yes
    expect_ping a "$TUN4_B"
    transfer_check a b "$TUN4_B" "$WRT_TRANSFER_MIB" 5001
    transfer_check b a "$TUN6_A" "$WRT_TRANSFER_MIB" 5002
}

for pair in $WRT_PAIRS; do
    register -t 300 "transfer/$pair" t_transfer "${pair%-*}" "${pair#*-}"
done
