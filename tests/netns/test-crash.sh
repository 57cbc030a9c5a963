# shellcheck shell=bash
# Group "crash": the journal puts a namespace back exactly as it was. Warren runs a full tunnel
# (policy rules, a private table, src_valid_mark) in namespace c, whose underlay is a veth to an
# otherwise empty namespace p, with a default route and a user rule of its own. The namespace's rules,
# routes (all tables, both families), links, addresses and src_valid_mark are compared before and after:
#   crash/kill9-up       kill -9, then `warren-helper up` again recovers first (and comes up once,
#                        without duplicate rules); SIGTERM then restores everything
#   crash/kill9-recover  kill -9, then `warren-helper recover` restores everything; run in another
#                        namespace first, it leaves the journal alone
#   crash/sigterm        SIGTERM restores everything, twice (src_valid_mark 0 -> 1 -> 0, and left at 1
#                        when it was 1 already)
#   crash/bad-input      an endpoint inside AllowedIPs, a duplicate address, a full tunnel in the main
#                        table: refused as an invalid configuration (exit 7) with a clear message, nothing changed, no
#                        journal written
# Each test has its own state directory (WARREN_STATE_DIR) in its temp dir.
#
# route_state is also used by test-fulltunnel.sh (run.sh sources every group file).

# route_state NS — what the tunnel may change in NS, as text: rules, routes in every table, links,
# addresses, src_valid_mark.
route_state() {
    local full
    full="$(ns "$1")"
    echo "== ip -4 rule"
    ip -n "$full" -4 rule show
    echo "== ip -6 rule"
    ip -n "$full" -6 rule show
    echo "== ip -4 route show table all"
    ip -n "$full" -4 route show table all
    echo "== ip -6 route show table all"
    ip -n "$full" -6 route show table all
    echo "== links"
    ip -n "$full" -o link show | awk -F': ' '{ print $2 }'
    echo "== addresses"
    ip -n "$full" -br addr show
    echo "== net.ipv4.conf.all.src_valid_mark"
    ip netns exec "$full" sysctl -n net.ipv4.conf.all.src_valid_mark
    echo "== nft list ruleset"
    ip netns exec "$full" nft list ruleset
}

# expect_same_state WHAT BEFORE AFTER — fail with a diff unless the two route_state outputs match.
expect_same_state() {
    local what=$1 before=$2 after=$3
    if [[ $before != "$after" ]]; then
        diff -u <(printf '%s\n' "$before") <(printf '%s\n' "$after") >&2 || true
        fail "$what: the namespace is not as it was before (diff above: - before, + after)"
    fi
    log "$what: rules, routes, links, addresses, src_valid_mark and nftables are exactly as before"
}

# wait_link_local NS DEV — DEV has its (non-tentative) IPv6 link-local address, which the kernel adds
# a moment after the link comes up, with a route in the local table (bounded: 5 s). Before that, a
# snapshot of the namespace is not its settled state.
wait_link_local() {
    local full i
    full="$(ns "$1")"
    for ((i = 0; i < 50; i++)); do
        if [[ -n $(ip -n "$full" -6 addr show dev "$2" scope link) ]] &&
            [[ -z $(ip -n "$full" -6 addr show dev "$2" scope link tentative) ]] &&
            grep -q '^local fe80' <<<"$(ip -n "$full" -6 route show table local dev "$2")"; then
            return 0
        fi
        sleep 0.1
    done
    fail "$2 in $full has no usable IPv6 link-local address after 5 s"
}

# expect_no_journal — the state directory holds no journal and no lock.
expect_no_journal() {
    local left
    left="$(find "$WARREN_STATE_DIR" -mindepth 1 2>/dev/null || true)"
    [[ -z $left ]] || fail "left in the state directory $WARREN_STATE_DIR: $left"
}

# crash_setup — namespaces c and p joined by veth vc/vp (MTU 1400); c has a default route via p for
# both families and a rule and table of its own; a key pair. Sets IF_C, CONF_C (not yet written) and
# WARREN_STATE_DIR (exported, so every warren-helper this test starts uses it).
crash_setup() {
    need_warren_bin
    ns_new c
    ns_new p
    veth_new c vc p vp
    ip -n "$(ns c)" link set vc mtu 1400
    ip -n "$(ns p)" link set vp mtu 1400
    addr_add c vc "$UNDER4_A/24"
    addr_add c vc "$UNDER6_A/64"
    addr_add p vp "$UNDER4_B/24"
    addr_add p vp "$UNDER6_B/64"
    wait_link_ready c vc
    wait_link_local c vc
    ip -n "$(ns c)" route add default via "$UNDER4_B" dev vc
    ip -n "$(ns c)" -6 route add default via "$UNDER6_B" dev vc
    # Someone else's policy routing, which must survive everything.
    ip -n "$(ns c)" route add 198.18.7.0/24 dev vc table 100
    ip -n "$(ns c)" rule add from 198.18.7.0/24 table 100 pref 1000
    key_new c
    key_new p
    IF_C="$(ifname C)"
    CONF_C="$WRT_TMP/$IF_C.conf"
    export WARREN_STATE_DIR="$WRT_TMP/state"
}

# crash_conf ALLOWED [EXTRA_INTERFACE_LINE] — write CONF_C: addresses, one peer (p's key) with
# AllowedIPs ALLOWED and an endpoint reached through c's default route.
crash_conf() {
    local allowed=$1 extra=${2:-}
    conf_interface "$CONF_C" key=c addr="$TUN4_A/24,$TUN6_A/64"
    [[ -n $extra ]] && echo "$extra" >>"$CONF_C"
    conf_peer "$CONF_C" pub="$(key_pub p)" allowed="$allowed" endpoint="198.18.2.1:$WG_PORT"
    chmod 600 "$CONF_C"
}

# expect_full_tunnel_applied FAMILIES — the rules of a full tunnel for each of FAMILIES ("4", "6" or
# "4 6"), exactly once each, and src_valid_mark=1 when 4 is among them.
expect_full_tunnel_applied() {
    local fam rules n
    for fam in $1; do
        rules="$(ip -n "$(ns c)" "-$fam" rule show)"
        n="$(grep -c 'not from all fwmark 0xca6c lookup 51820' <<<"$rules" || true)"
        [[ $n == 1 ]] || fail "IPv$fam: expected one 'not from all fwmark 0xca6c lookup 51820' rule, found $n:
$rules"
        n="$(grep -c 'from all lookup main suppress_prefixlength 0' <<<"$rules" || true)"
        [[ $n == 1 ]] || fail "IPv$fam: expected one 'lookup main suppress_prefixlength 0' rule, found $n:
$rules"
    done
    if [[ " $1 " == *" 4 "* ]]; then
        [[ $(ns_exec c sysctl -n net.ipv4.conf.all.src_valid_mark) == 1 ]] || fail "src_valid_mark is not 1"
    fi
    # The reverse-path guard (wg-quick's connmark rules), one table for the tunnel.
    rules="$(ns_exec c nft list table inet "warren_rp_${IF_C//[^A-Za-z0-9]/_}" 2>&1)" ||
        fail "no reverse-path guard table for $IF_C: $rules"
    grep -q 'meta mark set ct mark' <<<"$rules" || fail "the guard does not restore the mark: $rules"
    [[ -f $WARREN_STATE_DIR/$IF_C.journal ]] || fail "no journal at $WARREN_STATE_DIR/$IF_C.journal"
}

# kill9 IFACE — SIGKILL the warren peer on IFACE; wait until it and its TUN are gone (bounded: 5 s).
kill9() {
    local iface=$1 pid i
    pid="$(peer_pid "$iface")"
    kill -KILL "$pid"
    for ((i = 0; i < 50; i++)); do
        if ! kill -0 "$pid" 2>/dev/null && ! ip -n "$(ns c)" link show "$iface" >/dev/null 2>&1; then
            wait "$pid" 2>/dev/null || true
            log "warren-helper (pid $pid) killed with SIGKILL; $iface is gone"
            return 0
        fi
        sleep 0.1
    done
    fail "warren-helper pid $pid or its interface $iface still there 5 s after SIGKILL"
}

# expect_leftovers — after a kill -9, the rules and the journal are still there (so recovery has work).
expect_leftovers() {
    grep -q 'lookup 51820' <<<"$(ip -n "$(ns c)" rule show)" || fail "no leftover rule after kill -9 (nothing to recover?)"
    [[ -f $WARREN_STATE_DIR/$IF_C.journal ]] || fail "no journal left after kill -9"
    # (The dead process's UAPI socket file stays too; the next `up` replaces it.)
}

t_crash_kill9_up() {
    local before log
    crash_setup
    crash_conf "0.0.0.0/0,::/0"
    before="$(route_state c)"
    peer_up warren c "$IF_C" "$CONF_C"
    expect_full_tunnel_applied "4 6"
    kill9 "$IF_C"
    expect_leftovers

    peer_up warren c "$IF_C" "$CONF_C"
    log="$(cat "$WRT_TMP/$IF_C.warren.log")"
    grep -q "$IF_C: restored: warren-helper pid [0-9]* did not finish" <<<"$log" || fail "the second warren-helper up did not report a recovery; its log:
$log"
    grep -q "undone: IPv4 rule not fwmark 0xca6c table 51820" <<<"$log" || fail "the recovery did not list the IPv4 rule; log:
$log"
    expect_full_tunnel_applied "4 6"
    peer_stop "$IF_C" TERM 10 || fail "warren-helper did not exit within 10 s of SIGTERM"
    [[ $PEER_EXIT_STATUS == 0 ]] || fail "warren-helper exited with status $PEER_EXIT_STATUS after SIGTERM"
    expect_same_state "kill -9, up again, SIGTERM" "$before" "$(route_state c)"
    expect_no_journal
}

t_crash_kill9_recover() {
    local before out
    crash_setup
    # IPv4 full tunnel, IPv6 split: rules for IPv4 only, an IPv6 route in the main table.
    crash_conf "0.0.0.0/0,fd00:5::/64"
    before="$(route_state c)"
    peer_up warren c "$IF_C" "$CONF_C"
    expect_full_tunnel_applied "4"
    [[ -n $(ip -n "$(ns c)" -6 route show fd00:5::/64 dev "$IF_C") ]] || fail "no route fd00:5::/64 dev $IF_C in main"
    ! grep -q 51820 <<<"$(ip -n "$(ns c)" -6 rule show)" || fail "IPv6 rules for an IPv4-only full tunnel"
    kill9 "$IF_C"
    expect_leftovers

    # In another namespace the journal is not this namespace's business.
    ns_new d
    out="$(ns_exec d "$WARREN_BIN" recover 2>&1)" || fail "recover in another namespace failed: $out"
    grep -q "left alone: .*written in network namespace" <<<"$out" || fail "recover in another namespace did not leave the journal alone:
$out"
    [[ -f $WARREN_STATE_DIR/$IF_C.journal ]] || fail "recover in another namespace removed the journal"
    grep -q 'lookup 51820' <<<"$(ip -n "$(ns c)" rule show)" || fail "recover in another namespace changed c"

    out="$(ns_exec c "$WARREN_BIN" recover 2>&1)" || fail "warren-helper recover failed: $out"
    log "warren-helper recover said:
$out"
    grep -q "^$IF_C: restored: " <<<"$out" || fail "recover did not report $IF_C restored"
    grep -q "undone: IPv4 rule table main suppress_prefixlength 0" <<<"$out" || fail "recover did not list the suppress rule"
    grep -q "undone: sysctl net.ipv4.conf.all.src_valid_mark = 1 (was 0)" <<<"$out" || fail "recover did not list the sysctl"
    expect_same_state "kill -9, recover" "$before" "$(route_state c)"
    expect_no_journal
    out="$(ns_exec c "$WARREN_BIN" recover 2>&1)" || fail "a second recover failed: $out"
    grep -q "nothing to recover" <<<"$out" || fail "a second recover found something: $out"
}

t_crash_sigterm() {
    local before round
    crash_setup
    crash_conf "0.0.0.0/0,::/0"
    for round in 1 2; do
        if [[ $round == 2 ]]; then
            # Already 1: Warren must neither record nor reset it.
            ns_sysctl c net.ipv4.conf.all.src_valid_mark=1
        fi
        before="$(route_state c)"
        peer_up warren c "$IF_C" "$CONF_C"
        expect_full_tunnel_applied "4 6"
        peer_stop "$IF_C" TERM 10 || fail "warren-helper did not exit within 10 s of SIGTERM"
        [[ $PEER_EXIT_STATUS == 0 ]] || fail "warren-helper exited with status $PEER_EXIT_STATUS after SIGTERM"
        expect_same_state "round $round: SIGTERM (src_valid_mark $(ns_exec c sysctl -n net.ipv4.conf.all.src_valid_mark))" \
            "$before" "$(route_state c)"
        expect_no_journal
    done
}

# bad_input_case NAME EXPECTED_MESSAGE — `up` with CONF_C must fail as an invalid configuration
# (exit 7) with EXPECTED_MESSAGE and change nothing.
bad_input_case() {
    local name=$1 expected=$2 before out rc=0
    before="$(route_state c)"
    out="$(timeout 20 ip netns exec "$(ns c)" "$WARREN_BIN" up --foreground "$CONF_C" --interface "$IF_C" 2>&1)" || rc=$?
    [[ $rc == 7 ]] || fail "$name: warren-helper up exited with $rc, expected 7 (invalid configuration); output:
$out"
    grep -qF -- "$expected" <<<"$out" || fail "$name: the error does not say '$expected':
$out"
    log "$name: refused: $out"
    ! ip -n "$(ns c)" link show "$IF_C" >/dev/null 2>&1 || fail "$name: $IF_C exists after a refused config"
    expect_same_state "$name" "$before" "$(route_state c)"
    expect_no_journal
}

t_crash_bad_input() {
    crash_setup
    conf_interface "$CONF_C" key=c addr="$TUN4_A/24,$TUN6_A/64"
    conf_peer "$CONF_C" pub="$(key_pub p)" allowed="198.18.2.0/24" endpoint="198.18.2.1:$WG_PORT"
    bad_input_case "endpoint inside AllowedIPs" "which lies inside AllowedIPs 198.18.2.0/24"

    conf_interface "$CONF_C" key=c addr="$TUN4_A/24,$TUN6_A/64,$TUN4_A/32"
    conf_peer "$CONF_C" pub="$(key_pub p)" allowed="198.18.5.0/24" endpoint="198.18.2.1:$WG_PORT"
    bad_input_case "duplicate address" "Address $TUN4_A is listed twice"

    crash_conf "0.0.0.0/0" "Table = 254"
    bad_input_case "full tunnel in the main table" "Table = 254 puts its routes in the main table"
}

register crash/kill9-up t_crash_kill9_up
register crash/kill9-recover t_crash_kill9_recover
register crash/sigterm t_crash_sigterm
register crash/bad-input t_crash_bad_input
