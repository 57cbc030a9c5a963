# shellcheck shell=bash
# Group "uapi": Warren's UAPI answers what wireguard-tools' `wg` sends, as wireguard-go does. Each
# test brings up a Warren interface (A, the initiator) against wireguard-go (B) with pair_setup,
# then drives A's socket /var/run/wireguard/<A>.sock with the real `wg` (run inside A's namespace;
# the interface names are unique to the run, so the shared socket directory is safe) or, for what
# Debian's older `wg` cannot send, with raw protocol text over socat:
#   uapi/large     setconf, syncconf, addconf with 130 000 AllowedIPs on one peer and with
#                  40 peers x 50, read back exactly by `wg showconf` and `wg show allowed-ips`,
#                  each applied in bounded time; the tunnel to B keeps working
#   uapi/nokey     a configuration without PrivateKey is accepted, no handshake (no ping) until a
#                  key is set again
#   uapi/raw       allowed_ip=-PREFIX, and errno on refusals (-EINVAL, -EPROTO, -EADDRINUSE),
#                  nothing applied by a refused set
#   uapi/port      listen-port change while a ping flows (B follows A to the new port), fwmark
#                  set, read back and cleared
# Prefixes generated here are in 198.18.0.0/15 and fd00::/8 only.
#
# Under the harness self-check (WARREN_BIN=tests/netns/tools/fake-warren-helper, i.e. wireguard-go)
# the checks where Warren deliberately differs from wireguard-go are logged and left out: a refused
# set applies nothing (wireguard-go applies the lines before the bad one; after a port it cannot
# bind it reports that port), and nothing is sent without a private key (wireguard-go still sends
# initiations); so is allowed_ip=- unless the fake
# runs a wireguard-go that has it (FAKE_WIREGUARD_GO=../shared/anchors/wireguard-go-0.0.20250522).
# The errno values are checked in both: they are wireguard-go's.

# uapi_raw IFACE TEXT — send TEXT (a request, `\n` escapes expanded) to IFACE's UAPI socket from its
# namespace; prints the answer.
uapi_raw() {
    local iface=$1 text=$2
    # shellcheck disable=SC2059  # the request text carries the \n escapes on purpose
    printf "$text" | timeout 10 ip netns exec "$(ns "${WRT_PEER_NS[$iface]}")" \
        socat -t 5 - "UNIX-CONNECT:$WG_RUN_DIR/$iface.sock"
}

# uapi_is_fake — WARREN_BIN is the harness's wireguard-go stand-in, not Warren.
uapi_is_fake() { [[ $(basename "$WARREN_BIN") == fake-warren-helper ]]; }

# key_hex BASE64 — a key in the UAPI's hex form.
key_hex() { base64 -d <<<"$1" | od -An -v -tx1 | tr -d ' \n'; }

# allowed_of IFACE PUBKEY — that peer's AllowedIPs from `wg show IFACE allowed-ips`, one per line,
# sorted.
allowed_of() {
    wg_show "$1" allowed-ips | awk -v k="$2" '$1 == k { for (i = 2; i <= NF; i++) if ($i != "(none)") print $i }' | sort
}

# showconf_allowed_of IFACE PUBKEY — the same from `wg showconf`, sorted.
showconf_allowed_of() {
    timeout 20 ip netns exec "$(ns "${WRT_PEER_NS[$1]}")" wg showconf "$1" | awk -v k="$2" '
        /^\[Peer\]/ { cur = 0 }
        $1 == "PublicKey" && $3 == k { cur = 1 }
        cur && $1 == "AllowedIPs" { print substr($0, index($0, "=") + 1) }' |
        tr -d ' ' | tr ',' '\n' | sed '/^$/d' | sort
}

# expect_same_list WHAT EXPECTED_FILE ACTUAL_FILE — equal line sets, or fail showing the difference.
expect_same_list() {
    if ! cmp -s "$2" "$3"; then
        diff "$2" "$3" | head -20 >&2 || true
        fail "$1: read back $(wc -l <"$3") lines, expected $(wc -l <"$2") (diff above)"
    fi
    log "$1: $(wc -l <"$3") entries read back exactly"
}

# wg_timed SECS IFACE ARGS... — `wg ARGS` in IFACE's namespace; fails if it fails or takes > SECS.
wg_timed() {
    local secs=$1 iface=$2 t0 t1 ms
    shift 2
    t0=$(date +%s%N)
    timeout 60 ip netns exec "$(ns "${WRT_PEER_NS[$iface]}")" wg "$@" || fail "wg $* failed"
    t1=$(date +%s%N)
    ms=$(((t1 - t0) / 1000000))
    log "wg $1 took ${ms} ms"
    ((ms <= secs * 1000)) || fail "wg $1 took ${ms} ms (limit ${secs} s)"
}

# The interface part and B's peer section of A's configuration (what wg-quick's strip keeps).
uapi_base_conf() {
    {
        echo "[Interface]"
        echo "PrivateKey = $(key_priv a)"
        echo "ListenPort = $WG_PORT"
        echo
        echo "[Peer]"
        echo "PublicKey = $(key_pub b)"
        echo "AllowedIPs = $TUN4_B/32, $TUN6_B/128"
        echo "Endpoint = $UNDER4_B:$WG_PORT"
    } >"$1"
}

t_uapi_large() {
    pair_setup warren wggo
    expect_ping a "$TUN4_B"
    local big conf expected got k
    key_new big
    big="$(key_pub big)"
    # 130 000 AllowedIPs: 65 536 IPv4 /32s in 198.18.0.0/16 and 64 464 IPv6 /64s in
    # fd00:1000:0:N::/64 (N from 1, so `wg` prints them in exactly this form).
    awk 'BEGIN {
        for (i = 0; i < 65536; i++) printf "198.18.%d.%d/32\n", int(i / 256), i % 256
        for (i = 1; i <= 64464; i++) printf "fd00:1000:0:%x::/64\n", i
    }' | sort >"$WRT_TMP/big.expected"
    [[ $(wc -l <"$WRT_TMP/big.expected") -eq 130000 ]] || fail "generated $(wc -l <"$WRT_TMP/big.expected") prefixes, not 130000"
    conf="$WRT_TMP/big.conf"
    uapi_base_conf "$conf"
    {
        echo
        echo "[Peer]"
        echo "PublicKey = $big"
        printf 'AllowedIPs = %s\n' "$(paste -sd, "$WRT_TMP/big.expected" | sed 's/,/, /g')"
    } >>"$conf"

    wg_timed 10 "$IF_A" setconf "$IF_A" "$conf"
    allowed_of "$IF_A" "$big" >"$WRT_TMP/big.show"
    expect_same_list "setconf 130000: wg show allowed-ips" "$WRT_TMP/big.expected" "$WRT_TMP/big.show"
    showconf_allowed_of "$IF_A" "$big" >"$WRT_TMP/big.showconf"
    expect_same_list "setconf 130000: wg showconf" "$WRT_TMP/big.expected" "$WRT_TMP/big.showconf"
    expect_ping a "$TUN4_B"

    # syncconf to 40 peers x 50 AllowedIPs: the big peer goes, B stays, the 40 come.
    conf="$WRT_TMP/forty.conf"
    uapi_base_conf "$conf"
    for ((k = 1; k <= 40; k++)); do
        key_new "p$k"
        awk -v k="$k" 'BEGIN { for (j = 1; j <= 50; j++) printf "198.18.%d.%d/32\n", k, j }' | sort >"$WRT_TMP/p$k.expected"
        {
            echo
            echo "[Peer]"
            echo "PublicKey = $(key_pub "p$k")"
            printf 'AllowedIPs = %s\n' "$(paste -sd, "$WRT_TMP/p$k.expected" | sed 's/,/, /g')"
        } >>"$conf"
    done
    wg_timed 10 "$IF_A" syncconf "$IF_A" "$conf"
    expected="$(printf '%s\n' "$(key_pub b)" "$(for ((k = 1; k <= 40; k++)); do key_pub "p$k"; done)" | sort)"
    got="$(wg_show "$IF_A" peers | sort)"
    [[ $got == "$expected" ]] || fail "after syncconf the peers are not B and the 40 (big peer still there: $(grep -c "$big" <<<"$got"))"
    for ((k = 1; k <= 40; k++)); do
        allowed_of "$IF_A" "$(key_pub "p$k")" >"$WRT_TMP/p$k.show"
        cmp -s "$WRT_TMP/p$k.expected" "$WRT_TMP/p$k.show" || {
            diff "$WRT_TMP/p$k.expected" "$WRT_TMP/p$k.show" | head >&2 || true
            fail "syncconf 40x50: peer p$k's AllowedIPs differ"
        }
    done
    log "syncconf 40x50: every peer's 50 AllowedIPs read back exactly"
    showconf_allowed_of "$IF_A" "$(key_pub p17)" >"$WRT_TMP/p17.showconf"
    expect_same_list "syncconf 40x50: wg showconf of p17" "$WRT_TMP/p17.expected" "$WRT_TMP/p17.showconf"
    expect_ping a "$TUN4_B"

    # addconf of the big peer again: added beside the 41 (nothing replaced).
    conf="$WRT_TMP/add.conf"
    {
        echo "[Interface]"
        echo
        echo "[Peer]"
        echo "PublicKey = $big"
        printf 'AllowedIPs = %s\n' "$(paste -sd, "$WRT_TMP/big.expected" | sed 's/,/, /g')"
    } >"$conf"
    wg_timed 10 "$IF_A" addconf "$IF_A" "$conf"
    [[ $(wg_show "$IF_A" peers | wc -l) -eq 42 ]] || fail "after addconf: $(wg_show "$IF_A" peers | wc -l) peers, expected 42"
    allowed_of "$IF_A" "$big" >"$WRT_TMP/big.show2"
    expect_same_list "addconf 130000: wg show allowed-ips" "$WRT_TMP/big.expected" "$WRT_TMP/big.show2"
    # The big peer claimed all of 198.18.0.0/16's /32s, p40's among them: as in wireguard-go, a
    # prefix belongs to the peer that claimed it last, so p40 is left with none.
    [[ -z $(allowed_of "$IF_A" "$(key_pub p40)") ]] || fail "p40 kept AllowedIPs that addconf gave to the big peer: $(allowed_of "$IF_A" "$(key_pub p40)" | head -3 | tr '\n' ' ')"
    showconf_allowed_of "$IF_A" "$big" >"$WRT_TMP/big.showconf2"
    expect_same_list "addconf 130000: wg showconf" "$WRT_TMP/big.expected" "$WRT_TMP/big.showconf2"
    expect_ping a "$TUN4_B"
}

t_uapi_nokey() {
    pair_setup warren wggo
    expect_ping a "$TUN4_B"
    local conf tx0 tx1
    conf="$WRT_TMP/nokey.conf"
    uapi_base_conf "$conf"
    sed -i '/^PrivateKey/d' "$conf"
    # wg setconf sends private_key=000...0 for it: accepted, and the key is gone.
    ns_exec a wg setconf "$IF_A" "$conf" || fail "wg setconf of a configuration without PrivateKey was refused"
    [[ $(wg_show "$IF_A" private-key) == "(none)" ]] || fail "wg show private-key: '$(wg_show "$IF_A" private-key)', expected (none)"
    [[ $(wg_show "$IF_A" peers) == "$(key_pub b)" ]] || fail "peer B is not configured after the setconf"
    tx0="$(wg_show "$IF_A" transfer | awk '{ print $3 }')"
    expect_no_ping a "$TUN4_B"
    sleep 2
    tx1="$(wg_show "$IF_A" transfer | awk '{ print $3 }')"
    if uapi_is_fake; then
        log "fake (wireguard-go): sent $((tx1 - tx0)) bytes without a key; the nothing-sent check is Warren's only"
    else
        [[ $tx0 == "$tx1" ]] || fail "A sent $((tx1 - tx0)) bytes to B without a private key"
        log "no private key: nothing sent ($tx1 bytes before and after)"
    fi

    ns_exec a wg set "$IF_A" private-key "$WRT_TMP/keys/a.key" || fail "wg set private-key failed"
    [[ $(wg_show "$IF_A" public-key) == "$(key_pub a)" ]] || fail "public key after wg set private-key is not A's"
    expect_ping a "$TUN4_B"
    # And the raw protocol's all-zero key removes it again.
    [[ $(uapi_raw "$IF_A" "set=1\nprivate_key=$(printf '0%.0s' {1..64})\n\n") == errno=0 ]] || fail "private_key=0... refused"
    [[ $(wg_show "$IF_A" private-key) == "(none)" ]] || fail "private_key=0... did not remove the key"
}

t_uapi_raw() {
    pair_setup warren wggo
    expect_ping a "$TUN4_B"
    local b_hex answer before
    b_hex="$(key_hex "$(key_pub b)")"
    answer="$(uapi_raw "$IF_A" "set=1\npublic_key=$b_hex\nallowed_ip=198.19.5.0/24\nallowed_ip=fd00:5::/64\n\n")"
    [[ $answer == errno=0 ]] || fail "adding AllowedIPs over raw UAPI: $answer"
    if uapi_is_fake && [[ -z ${FAKE_WIREGUARD_GO:-} ]]; then
        log "fake (Debian's wireguard-go): it predates allowed_ip=-, not checked"
    else
        answer="$(uapi_raw "$IF_A" "set=1\npublic_key=$b_hex\nallowed_ip=-$TUN4_B/32\nallowed_ip=-fd00:5::/64\nallowed_ip=-198.18.77.0/24\n\n")"
        [[ $answer == errno=0 ]] || fail "allowed_ip=-PREFIX refused: $answer"
        printf '%s\n' 198.19.5.0/24 "$TUN6_B/128" | sort >"$WRT_TMP/raw.expected"
        allowed_of "$IF_A" "$(key_pub b)" >"$WRT_TMP/raw.show"
        expect_same_list "allowed_ip=- removal" "$WRT_TMP/raw.expected" "$WRT_TMP/raw.show"
        expect_no_ping a "$TUN4_B"
        expect_ping a "$TUN6_B"
    fi

    # Refusals: the errno wireguard-go sends, and nothing of the request applied.
    before="$(wg_show "$IF_A" allowed-ips)"
    answer="$(uapi_raw "$IF_A" "set=1\npublic_key=$b_hex\nallowed_ip=$TUN4_B/32\nallowed_ip=-nonsense\n\n")"
    [[ $answer == "errno=-$(errno_of EINVAL)" ]] || fail "bad allowed_ip=-: answer '$answer', expected errno=-EINVAL"
    answer="$(uapi_raw "$IF_A" "set=1\nlisten_port=70000\n\n")"
    [[ $answer == "errno=-$(errno_of EINVAL)" ]] || fail "listen_port=70000: answer '$answer'"
    answer="$(uapi_raw "$IF_A" "set=1\npublic_key=$b_hex\nprotocol_version=2\n\n")"
    [[ $answer == "errno=-$(errno_of EINVAL)" ]] || fail "protocol_version=2: answer '$answer'"
    answer="$(uapi_raw "$IF_A" "set=1\npublic_key=$b_hex\nallowed_ip\n\n")"
    [[ $answer == "errno=-$(errno_of EPROTO)" ]] || fail "a line without '=': answer '$answer', expected errno=-EPROTO"
    if uapi_is_fake; then
        log "fake (wireguard-go): applies a refused set's first lines; the nothing-applied check is Warren's only"
    else
        [[ $(wg_show "$IF_A" allowed-ips) == "$before" ]] || fail "a refused set changed the AllowedIPs"
    fi
    # A port that is taken: -EADDRINUSE, and the old port still serves.
    timeout 30 ip netns exec "$(ns a)" socat -u UDP4-RECV:40123 /dev/null &
    wrt_record_pid $!
    wait_until 5 "socat bound to UDP 40123 in a" \
        bash -c "[[ -n \$(ip netns exec '$(ns a)' ss -Hlun 'sport = :40123') ]]"
    answer="$(uapi_raw "$IF_A" "set=1\nlisten_port=40123\n\n")"
    [[ $answer == "errno=-$(errno_of EADDRINUSE)" ]] || fail "listen_port taken: answer '$answer', expected errno=-EADDRINUSE"
    if uapi_is_fake; then
        log "fake (wireguard-go): reports the refused port $(wg_show "$IF_A" listen-port); the old-port check is Warren's only"
        ns_exec a wg set "$IF_A" listen-port "$WG_PORT"
    else
        [[ $(wg_show "$IF_A" listen-port) == "$WG_PORT" ]] || fail "a refused listen_port moved the port"
    fi
    ns_exec a wg set "$IF_A" peer "$(key_pub b)" allowed-ips "$TUN4_B/32,$TUN6_B/128" || fail "wg set allowed-ips failed"
    expect_ping a "$TUN4_B"
}

# errno_of NAME — the number of an errno name on this system.
errno_of() {
    case $1 in
        EINVAL) echo 22 ;;
        EPROTO) echo 71 ;;
        EADDRINUSE) echo 98 ;;
        *) fail "errno_of: $1?" ;;
    esac
}

t_uapi_port() {
    pair_setup warren wggo
    expect_ping a "$TUN4_B"
    local out ppid replies
    # A ping series from A while A moves its port: A's next datagram comes from the new port and
    # B, authenticating it, follows (roaming), so the replies keep coming.
    ns_exec a ping -n -c 40 -i 0.25 -W 2 "$TUN4_B" >"$WRT_TMP/port-ping.log" 2>&1 &
    ppid=$!
    wrt_record_pid "$ppid"
    sleep 3
    ns_exec a wg set "$IF_A" listen-port 41000 || fail "wg set listen-port 41000 failed"
    [[ $(wg_show "$IF_A" listen-port) == 41000 ]] || fail "listen-port is $(wg_show "$IF_A" listen-port), not 41000"
    [[ -n $(ns_exec a ss -Hlun 'sport = :41000') ]] || fail "nothing listens on UDP 41000 in A's namespace"
    [[ -z $(ns_exec a ss -Hlun "sport = :$WG_PORT") ]] || fail "the old port $WG_PORT is still bound"
    wait "$ppid" || true
    replies="$(grep -c 'bytes from' "$WRT_TMP/port-ping.log" || true)"
    log "ping A -> B across the port change: $replies of 40 replies"
    ((replies >= 36)) || { cat "$WRT_TMP/port-ping.log" >&2; fail "only $replies of 40 pings answered across the port change"; }
    out="$(peer_endpoint "$IF_B")"
    [[ $out == "$UNDER4_A:41000" ]] || fail "B sees A at '$out', expected $UNDER4_A:41000"
    expect_ping a "$TUN4_B"
    # fwmark: set, read back, cleared; the tunnel keeps working.
    ns_exec a wg set "$IF_A" fwmark 0x1234 || fail "wg set fwmark failed"
    [[ $(wg_show "$IF_A" fwmark) == 0x1234 ]] || fail "fwmark is '$(wg_show "$IF_A" fwmark)', not 0x1234"
    expect_ping a "$TUN4_B"
    ns_exec a wg set "$IF_A" fwmark 0 || fail "wg set fwmark 0 failed"
    [[ $(wg_show "$IF_A" fwmark) == off ]] || fail "fwmark is '$(wg_show "$IF_A" fwmark)' after clearing it"
}

register -t 300 uapi/large t_uapi_large
register uapi/nokey t_uapi_nokey
register uapi/raw t_uapi_raw
register uapi/port t_uapi_port
