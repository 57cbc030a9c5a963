# shellcheck shell=bash
# Group "roaming": during a ping series from A (the initiator), A's underlay address changes from
# 198.18.0.1 to 198.18.0.3 (the new address is added, then the old one deleted). Replies must resume
# within WRT_ROAM_RESUME_SECS (25 s), B must report A's new endpoint, and B must reach A at it.
#
# Why 25 s: the reference implementations keep a "sticky" source address per peer and only forget it
# when a handshake times out (KEEPALIVE_TIMEOUT + REKEY_TIMEOUT = 15 s without a reply), so
# wireguard-go as the initiator resumes after ~15 s. An implementation that lets the kernel choose
# the source resumes at once; the delay is logged either way.

WRT_ROAM_RESUME_SECS="${WRT_ROAM_RESUME_SECS:-25}"

# replies_after LOG EPOCH — number of ping replies (ping -D timestamps) received after EPOCH.
replies_after() {
    awk -v t="$2" -F'[][]' '/bytes from/ && $2 + 0 > t { n++ } END { print n + 0 }' "$1"
}

t_roaming() {
    local init=$1 resp=$2 ping_log ppid ep t_roam now i resumed=""
    pair_setup "$init" "$resp"
    expect_ping a "$TUN4_B"
    wait_handshake "$IF_B" 10
    ep="$(peer_endpoint "$IF_B")"
    [[ $ep == "$UNDER4_A:$WG_PORT" ]] || fail "before roaming B reports endpoint '$ep', expected $UNDER4_A:$WG_PORT"

    # Keep the new address when the old (primary) one is deleted.
    ns_sysctl a net.ipv4.conf.va.promote_secondaries=1
    ping_log="$WRT_TMP/roam-ping.log"
    # A ping series across the change: one probe every 0.2 s, at most 35 s.
    ip netns exec "$(ns a)" ping -D -n -i 0.2 -W 1 -w 35 "$TUN4_B" >"$ping_log" 2>&1 &
    ppid=$!
    wrt_record_pid "$ppid"
    sleep 2
    [[ $(replies_after "$ping_log" 0) -gt 0 ]] || fail "no replies to the ping series even before roaming"
    log "roaming: A's underlay $UNDER4_A -> $UNDER4_ROAM"
    t_roam="$(date +%s.%N)"
    addr_add a va "$UNDER4_ROAM/24"
    ip -n "$(ns a)" addr del "$UNDER4_A/24" dev va
    for ((i = 0; i < WRT_ROAM_RESUME_SECS * 5; i++)); do
        sleep 0.2
        # Resumed = 3 replies that arrived more than 0.5 s after the change.
        if [[ $(replies_after "$ping_log" "$(awk -v t="$t_roam" 'BEGIN { printf "%.6f", t + 0.5 }')") -ge 3 ]]; then
            now="$(date +%s.%N)"
            resumed="$(awk -v a="$t_roam" -v b="$now" 'BEGIN { printf "%.1f", b - a }')"
            break
        fi
    done
    kill_pid "$ppid"
    wait "$ppid" 2>/dev/null || true
    if [[ -z $resumed ]]; then
        tail -n 20 "$ping_log" >&2
        fail "ping replies did not resume within ${WRT_ROAM_RESUME_SECS}s of A's address change"
    fi
    log "ping replies resumed ${resumed}s after the address change"
    ep="$(peer_endpoint "$IF_B")"
    [[ $ep == "$UNDER4_ROAM:"* ]] || fail "after roaming B reports endpoint '$ep', expected $UNDER4_ROAM:<port>"
    log "B now reports endpoint $ep"
    expect_ping b "$TUN4_A"
    expect_ping b "$TUN6_A"
}

for pair in $WRT_PAIRS; do
    register "roaming/$pair" t_roaming "${pair%-*}" "${pair#*-}"
done
