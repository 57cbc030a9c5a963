# shellcheck shell=bash
# Group "replysrc": Warren (A) on a multi-homed host answers from the address the peer sent to.
# A's underlay interface has two IPv4 and two IPv6 addresses; B (wireguard-go, or Warren) knows A
# only by A's *second* address of one family and starts the handshake to it. A has no endpoint
# for B. Without packet-info handling, A's replies leave from the kernel's preferred (first)
# address, B sees a new source and roams: B's `wg show endpoints` would show A's first address.
# With it, B keeps seeing the address it sent to, so it never roams.
#
# Then the fallback: A's second address is removed while the tunnel is up. A's next datagrams are
# refused from it (EINVAL/ENETUNREACH), leave from the kernel's choice instead, B roams to A's
# first address, and traffic both ways resumes within WRT_REPLYSRC_RESUME_SECS (10 s).
#
# The second IPv4 address is a secondary; of the two IPv6 addresses the first is added last, which
# Linux's source selection prefers among equals. The test checks that the kernel's own choice of
# source towards B is the first address, so the two behaviours differ.

WRT_REPLYSRC_RESUME_SECS="${WRT_REPLYSRC_RESUME_SECS:-10}"
UNDER4_SECOND=198.18.0.11
UNDER6_SECOND=fd00:1::ff11

# t_replysrc PEER_KIND FAMILY — A is Warren, B is PEER_KIND; B's endpoint for A is A's second
# address of FAMILY (4 or 6).
t_replysrc() {
    local kind=$1 fam=$2 first second endpoint_first endpoint_second ep
    need_kinds warren "$kind"
    underlay_pair v6
    addr_add a va "$UNDER4_SECOND/24"
    # Linux prefers the newest of equally good IPv6 addresses: re-add the first one after the
    # second, so that the kernel's choice is the first (checked below).
    ip -n "$(ns a)" -6 addr del "$UNDER6_A/64" dev va
    addr_add a va "$UNDER6_SECOND/64"
    addr_add a va "$UNDER6_A/64"
    wait_link_ready a va
    if [[ $fam == 6 ]]; then
        first=$UNDER6_A second=$UNDER6_SECOND
        endpoint_first="[$first]:$WG_PORT" endpoint_second="[$second]:$WG_PORT"
    else
        first=$UNDER4_A second=$UNDER4_SECOND
        endpoint_first="$first:$WG_PORT" endpoint_second="$second:$WG_PORT"
    fi
    log "A's underlay: $(ip -n "$(ns a)" -br addr show dev va)"
    # What B would see without sticky sources: the kernel's own choice of source towards B. It
    # must be the first address, or this test could not tell the two behaviours apart.
    local towards_b=$UNDER4_B kernel_src
    [[ $fam == 6 ]] && towards_b=$UNDER6_B
    kernel_src="$(ip -n "$(ns a)" route get "$towards_b" | grep -o 'src [^ ]*')"
    log "the kernel's source towards B: $kernel_src"
    [[ $kernel_src == "src $first" ]] || fail "set-up: the kernel's source towards B is '$kernel_src', expected $first"

    key_new a
    key_new b
    IF_A="$(ifname A)"
    IF_B="$(ifname B)"
    CONF_A="$WRT_TMP/$IF_A.conf"
    CONF_B="$WRT_TMP/$IF_B.conf"
    conf_interface "$CONF_A" key=a addr="$TUN4_A/24,$TUN6_A/64" port="$WG_PORT"
    conf_peer "$CONF_A" pub="$(key_pub b)" allowed="$TUN4_B/32,$TUN6_B/128"
    conf_interface "$CONF_B" key=b addr="$TUN4_B/24,$TUN6_B/64" port="$WG_PORT"
    conf_peer "$CONF_B" pub="$(key_pub a)" allowed="$TUN4_A/32,$TUN6_A/128" endpoint="$endpoint_second"
    chmod 600 "$CONF_A" "$CONF_B"
    peer_up warren a "$IF_A" "$CONF_A"
    peer_up "$kind" b "$IF_B" "$CONF_B"

    # B initiates to A's second address; A answers; traffic both ways.
    expect_ping b "$TUN4_A"
    expect_ping a "$TUN6_B"
    expect_ping b "$TUN6_A"
    ep="$(peer_endpoint "$IF_B")"
    [[ $ep == "$endpoint_second" ]] ||
        fail "B sees A at '$ep', expected the address it sent to, $endpoint_second (A answered from another address and B roamed)"
    log "B still sees A at $ep after traffic both ways"

    # The second address disappears while the tunnel is up.
    log "removing A's $second"
    if [[ $fam == 6 ]]; then
        ip -n "$(ns a)" -6 addr del "$second/64" dev va
    else
        ip -n "$(ns a)" addr del "$second/24" dev va
    fi
    local t0 t1
    t0=$(date +%s%N)
    wait_until "$WRT_REPLYSRC_RESUME_SECS" "A's traffic to B resuming from another address after $second was removed" \
        ping_ok a "$TUN4_B" 1
    t1=$(date +%s%N)
    log "A -> B resumed $(((t1 - t0) / 1000000)) ms after the removal"
    ep="$(peer_endpoint "$IF_B")"
    [[ $ep == "$endpoint_first" ]] || fail "after the removal B sees A at '$ep', expected $endpoint_first"
    expect_ping b "$TUN4_A"
    expect_ping b "$TUN6_A"
    ep="$(peer_endpoint "$IF_B")"
    [[ $ep == "$endpoint_first" ]] || fail "B's traffic moved A's endpoint to '$ep', expected $endpoint_first"
    log "B now sees A at $ep"
}

for kind in wggo warren; do
    register "replysrc/$kind-v4" t_replysrc "$kind" 4
    register "replysrc/$kind-v6" t_replysrc "$kind" 6
done
