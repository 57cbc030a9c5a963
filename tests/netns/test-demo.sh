# shellcheck shell=bash
# Group "demo": `warren-helper demo`, run inside a throwaway namespace (wrt-<run>-<n>-host, lo up)
# so that its "current namespace" side is ours too. The demo creates the global namespace
# `warren-demo` with a Warren peer, brings a tunnel up, pings through it and waits for ctrl-c.
# `demo --peer-only` (the app's demo) does the same without the tunnel, writing the client's
# .conf instead; the test brings that file up with `warren-helper up` in the same namespace.
#
# What these tests rely on (kept loose on purpose):
#   - the demo peer's tunnel address is 198.18.251.2 and it answers ping from the host side;
#   - the demo's output mentions 198.18.251.2, and says "ctrl-c" (any case, also "Ctrl+C") once it
#     is set up and waiting (no other wording);
#   - SIGINT makes it exit (status 0 after a full run; any status when interrupted half-way) within
#     20 s, leaving no namespace warren-demo, no links but lo in our namespace, no child processes
#     and no new UAPI socket in /var/run/wireguard.
#   - while it runs, the peer's UAPI socket is not in /var/run/wireguard: `wg show interfaces` lists
#     no interface that our namespace's `ip link` lacks; the peer answers the command the demo
#     prints for it (`nsenter --target PID --mount --net wg show wdemo1`).
#   - "half-way": SIGINT right after namespace warren-demo appears (or after 10 s if it never does).

DEMO_PEER=198.18.251.2

# descendants PID — all live descendants of PID, one per line.
descendants() {
    local pid=$1 c
    for c in $(ps -o pid= --ppid "$pid" 2>/dev/null); do
        echo "$c"
        descendants "$c"
    done
}

demo_output_ready() {
    kill -0 "$DEMO_PID" 2>/dev/null || fail "warren-helper demo exited early; its output:
$(tail -n 40 "$DEMO_LOG")"
    grep -q "$DEMO_PEER" "$DEMO_LOG" && grep -Eiq 'ctrl[-+ ]?c' "$DEMO_LOG"
}

demo_ns_exists() { [[ -e /run/netns/warren-demo ]]; }

# demo_check_wg_show FULL_NS — while the demo runs: every interface the host's `wg show interfaces`
# lists is a link in FULL_NS (the namespace the demo runs in), apart from other tests' wrt*
# interfaces in their own namespaces, so the peer (wdemo1, in warren-demo) is not listed; and the
# peer answers the `wg show` the demo prints for it, through its private UAPI directory.
demo_check_wg_show() {
    local full=$1 listed links i cmd pid out
    listed="$(wg show interfaces)" || fail "wg show interfaces failed"
    links="$(ip -n "$full" -o link show | awk -F': ' '{ sub(/@.*/, "", $2); print $2 }')"
    for i in $listed; do
        [[ $i == wrt* ]] && continue
        grep -qx -- "$i" <<<"$links" ||
            fail "the host's wg show lists $i, which is not a link in $full (wg show: $listed)"
    done
    log "wg show interfaces: ${listed:-none}; all but other tests' wrt* are links in $full"
    wait_until 10 "the demo to print the command that shows its peer" \
        grep -Eq 'nsenter --target [0-9]+ --mount --net wg show wdemo1' "$DEMO_LOG"
    cmd="$(grep -Eo 'nsenter --target [0-9]+ --mount --net wg show wdemo1' "$DEMO_LOG" | tail -n 1)"
    [[ -n $cmd ]] || fail "the demo printed no command to show its peer; its output:
$(tail -n 20 "$DEMO_LOG")"
    pid="$(awk '{ print $3 }' <<<"$cmd")"
    out="$(nsenter --target "$pid" --mount --net wg show wdemo1 2>&1)" || fail "$cmd failed: $out"
    grep -q "listening port: 51820" <<<"$out" || fail "$cmd does not show the peer: $out"
    log "$cmd: the peer answers (listening port 51820)"
}

# demo_stop_check MODE FULL_NS SOCKETS_BEFORE SIGNAL — send SIGNAL to the demo ($DEMO_PID) and
# check it exits (status 0 unless MODE is "interrupted") within 20 s, leaving no namespace
# warren-demo, no child processes, no links but lo in FULL_NS and no new UAPI socket.
demo_stop_check() {
    local mode=$1 full=$2 socks_before=$3 sig=$4 kids ns_pids p i rc socks_after
    kids="$(descendants "$DEMO_PID" | tr '\n' ' ')"
    ns_pids="$(ip netns pids warren-demo 2>/dev/null | tr '\n' ' ' || true)"
    log "demo pid $DEMO_PID; descendants: ${kids:-none}; pids in warren-demo: ${ns_pids:-none}"

    kill -"$sig" "$DEMO_PID" 2>/dev/null || true
    for ((i = 0; i < 200; i++)); do
        kill -0 "$DEMO_PID" 2>/dev/null || break
        sleep 0.1
    done
    kill -0 "$DEMO_PID" 2>/dev/null && fail "warren-helper demo still running 20 s after SIG$sig"
    rc=0
    wait "$DEMO_PID" || rc=$?
    log "demo exited with status $rc"
    if [[ $mode != interrupted && $rc -ne 0 ]]; then
        tail -n 20 "$DEMO_LOG" >&2
        fail "warren-helper demo exited with status $rc after SIG$sig (expected 0)"
    fi

    ! demo_ns_exists || fail "namespace warren-demo still exists after the demo exited"
    # Its children (and anything in warren-demo) must be gone too; allow 3 s for them to exit.
    for ((i = 0; i < 30; i++)); do
        local alive=""
        for p in $kids $ns_pids; do
            kill -0 "$p" 2>/dev/null && alive+=" $p"
        done
        [[ -z $alive ]] && break
        sleep 0.1
    done
    for p in $alive; do
        fail "process $p ($(tr '\0' ' ' <"/proc/$p/cmdline" 2>/dev/null)) outlived the demo by 3 s"
    done
    local links
    links="$(ip -n "$full" -o link show | awk -F': ' '{ print $2 }' | grep -vx lo || true)"
    [[ -z $links ]] || fail "links left in the demo's host namespace: $links"
    socks_after="$(uapi_sockets)"
    local new_socks
    new_socks="$(comm -13 <(echo "$socks_before") <(echo "$socks_after") | grep -v "^wrt" || true)"
    [[ -z $new_socks ]] || fail "UAPI sockets left in $WG_RUN_DIR: $new_socks"
    [[ ! -e /run/warren-demo ]] || fail "the demo left its peer's UAPI directory /run/warren-demo: $(ls -A /run/warren-demo)"
}

# demo_begin — the start of every demo test: no warren-demo namespace yet (the test may then
# remove the one the demo makes), a fresh "host" namespace for the demo to run in. Sets the
# caller's `full` (that namespace) and `socks_before` (the UAPI sockets before), and DEMO_LOG.
demo_begin() {
    need_warren_bin
    if demo_ns_exists; then
        fail "namespace warren-demo already exists before the test (a leftover? remove it with: ip netns del warren-demo)"
    fi
    # From here on, a warren-demo namespace is ours to remove if the demo leaves it behind.
    touch "$WRT_TMP/.demo"
    ns_new host
    full="$(ns host)"
    socks_before="$(uapi_sockets)"
    DEMO_LOG="$WRT_TMP/demo.log"
}

t_demo() {
    local mode=$1 full socks_before i
    demo_begin
    # nsenter --net, not `ip netns exec`: the latter also gives the demo a private mount namespace,
    # and the demo's own `ip netns add warren-demo` mount would then be invisible outside it.
    log "starting: nsenter --net=/run/netns/$full warren-helper demo"
    RUST_LOG="${RUST_LOG:-info}" env --default-signal=INT,QUIT \
        nsenter --net="/run/netns/$full" "$WARREN_BIN" demo >"$DEMO_LOG" 2>&1 </dev/null &
    DEMO_PID=$!
    wrt_record_pid "$DEMO_PID"
    note_log demo demo "$DEMO_LOG"

    if [[ $mode == full ]]; then
        wait_until 60 "demo output mentioning $DEMO_PEER and ctrl-c (set up and waiting)" demo_output_ready
        wait_until 30 "a ping reply from $DEMO_PEER in $full" ping_ok host "$DEMO_PEER" 1
        expect_ping host "$DEMO_PEER"
        demo_ns_exists || fail "the demo is up but namespace warren-demo does not exist"
        demo_check_wg_show "$full"
        wg show interfaces | grep -qx wdemo0 || fail "the host's wg show does not list wdemo0"
        log "demo output so far:"
        sed 's/^/    demo| /' "$DEMO_LOG" >&2
    else
        for ((i = 0; i < 100; i++)); do
            demo_ns_exists && break
            kill -0 "$DEMO_PID" 2>/dev/null || break
            sleep 0.1
        done
        log "interrupting half-way (warren-demo $(demo_ns_exists && echo exists || echo 'not there yet'))"
    fi
    demo_stop_check "$mode" "$full" "$socks_before" INT
    log "demo ($mode) cleaned up: no warren-demo, no links, no children, no sockets"
}

# demo_start_peer_only FULL_NS CONF KEYS — `demo --peer-only` in FULL_NS, writing CONF for the user
# nobody; returns once CONF exists (the demo writes it last, when its peer answers).
demo_start_peer_only() {
    local full=$1 conf=$2 keys=$3
    log "starting: nsenter --net=/run/netns/$full warren-helper demo --peer-only --client-conf $conf --owner nobody"
    RUST_LOG="${RUST_LOG:-info}" env --default-signal=INT,QUIT \
        nsenter --net="/run/netns/$full" "$WARREN_BIN" demo --peer-only --client-conf "$conf" \
        --owner nobody --key-file "$keys" >>"$DEMO_LOG" 2>&1 </dev/null &
    DEMO_PID=$!
    wrt_record_pid "$DEMO_PID"
    wait_until 60 "the demo to write $conf" demo_conf_ready "$conf"
    demo_ns_exists || fail "the client file is there but namespace warren-demo does not exist"
}

demo_conf_ready() {
    kill -0 "$DEMO_PID" 2>/dev/null || fail "warren-helper demo --peer-only exited early; its output:
$(tail -n 40 "$DEMO_LOG")"
    [[ -f $1 ]]
}

# The desktop app's half of the demo (scripts/run.sh): `demo --peer-only` sets up only the peer
# and writes the client's .conf; a real `warren-helper up --foreground` of that file, in our
# namespace, pings the peer. Checked too: the file is 0600 and belongs to --owner; a second run
# with the same key file writes the same configuration (so a tunnel imported earlier still
# works); SIGTERM removes the file, the namespace, the veth and the peer.
t_demo_peer_only() {
    local full socks_before conf keys iface first
    demo_begin
    note_log demo demo "$DEMO_LOG"
    mkdir -p "$WRT_TMP/offer"
    conf="$WRT_TMP/offer/warren-demo.conf"
    keys="$WRT_TMP/state/demo.keys"

    demo_start_peer_only "$full" "$conf" "$keys"
    [[ $(stat -c '%a %U' "$conf") == "600 nobody" ]] || fail "client file: $(stat -c '%a %U' "$conf") (want 600 nobody)"
    [[ $(stat -c '%a %U' "$keys") == "600 root" ]] || fail "key file: $(stat -c '%a %U' "$keys") (want 600 root)"
    first="$(cat "$conf")"
    grep -q "^Endpoint = 198.18.250.2:51820$" "$conf" || fail "no demo endpoint in $conf"
    ! ip -n "$full" link show wdemo0 >/dev/null 2>&1 || fail "--peer-only made this side's tunnel too"
    demo_check_wg_show "$full"
    demo_stop_check peer-only "$full" "$socks_before" TERM
    [[ ! -e $conf ]] || fail "the demo left its client file $conf"
    log "first run cleaned up; running again with the same key file"

    demo_start_peer_only "$full" "$conf" "$keys"
    [[ $(cat "$conf") == "$first" ]] || fail "the second run wrote a different configuration (keys not kept)"
    iface="$(ifname d)"
    cp "$conf" "$WRT_TMP/$iface.conf"
    chmod 600 "$WRT_TMP/$iface.conf"
    peer_up warren host "$iface" "$WRT_TMP/$iface.conf"
    wait_until 30 "a ping reply from $DEMO_PEER through $iface" ping_ok host "$DEMO_PEER" 1
    expect_ping host "$DEMO_PEER"
    peer_stop "$iface" TERM 10 || fail "warren-helper up (the client) did not stop within 10 s"
    log "the client from the demo's file pinged $DEMO_PEER"
    demo_stop_check peer-only "$full" "$socks_before" TERM
    [[ ! -e $conf ]] || fail "the demo left its client file $conf"
    log "demo (peer-only) cleaned up: no file, no warren-demo, no links, no children, no sockets"
}

register -t 150 demo/full t_demo full
register -t 150 demo/peer-only t_demo_peer_only
register -t 90 demo/interrupted t_demo interrupted
