# shellcheck shell=bash
# Group "mismatch": a wrong public key (A's entry for B names a stranger's key) or different
# PresharedKeys on the two sides must never produce a handshake: `wg show latest-handshakes` stays 0
# on both sides for ~6 s of attempts, and no ping gets through.

t_mismatch() {
    local init=$1 resp=$2 what=$3 ping_log ppid i ha hb
    if [[ $what == key ]]; then
        pair_setup "$init" "$resp" keys=mismatch
    else
        pair_setup "$init" "$resp" psk=mismatch
    fi
    ping_log="$WRT_TMP/mismatch-ping.log"
    # 6 probes, 1 s apart: handshake attempts for ~6 s.
    ip netns exec "$(ns a)" ping -n -c 6 -i 1 -W 1 -w 8 "$TUN4_B" >"$ping_log" 2>&1 &
    ppid=$!
    wrt_record_pid "$ppid"
    for ((i = 0; i < 13; i++)); do
        ha="$(latest_handshake "$IF_A")"
        hb="$(latest_handshake "$IF_B")"
        if [[ $ha != 0 || $hb != 0 ]]; then
            if [[ $ha == 0 ]]; then
                fail "responder B ($resp) reports a handshake (latest-handshakes $hb) though initiator A never completed one with mismatched ${what}s: B must not count a handshake before the initiator confirms it (first transport packet), as wireguard-go and the kernel do"
            fi
            fail "a handshake completed despite mismatched ${what}s: A=$ha B=$hb"
        fi
        sleep 0.5
    done
    local rc=0
    wait "$ppid" || rc=$?
    if [[ $rc -eq 0 ]] || grep -q 'bytes from' "$ping_log"; then
        cat "$ping_log" >&2
        fail "ping got through despite mismatched ${what}s"
    fi
    log "no handshake and no ping for ~6 s with mismatched ${what}s: ok"
}

for pair in $WRT_PAIRS; do
    register "mismatch/$pair-key" t_mismatch "${pair%-*}" "${pair#*-}" key
    register "mismatch/$pair-psk" t_mismatch "${pair%-*}" "${pair#*-}" psk
done
