# shellcheck shell=bash
# Group "demo": `warren-helper demo`, run inside a throwaway namespace (wrt-<run>-<n>-host, lo up)
# so that its "current namespace" side is ours too. The demo creates the global namespace
# `warren-demo` with a Warren peer, brings a tunnel up, pings through it and waits for ctrl-c.
#
# What these tests rely on (kept loose on purpose):
#   - the demo peer's tunnel address is 198.18.251.2 and it answers ping from the host side;
#   - the demo's output mentions 198.18.251.2, and says "ctrl-c" (any case, also "Ctrl+C") once it
#     is set up and waiting (no other wording);
#   - SIGINT makes it exit (status 0 after a full run; any status when interrupted half-way) within
#     20 s, leaving no namespace warren-demo, no links but lo in our namespace, no child processes
#     and no new UAPI socket in /var/run/wireguard.
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

t_demo() {
    local mode=$1 full socks_before socks_after kids ns_pids p i rc
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
    kids="$(descendants "$DEMO_PID" | tr '\n' ' ')"
    ns_pids="$(ip netns pids warren-demo 2>/dev/null | tr '\n' ' ' || true)"
    log "demo pid $DEMO_PID; descendants: ${kids:-none}; pids in warren-demo: ${ns_pids:-none}"

    kill -INT "$DEMO_PID" 2>/dev/null || true
    for ((i = 0; i < 200; i++)); do
        kill -0 "$DEMO_PID" 2>/dev/null || break
        sleep 0.1
    done
    kill -0 "$DEMO_PID" 2>/dev/null && fail "warren-helper demo still running 20 s after SIGINT"
    rc=0
    wait "$DEMO_PID" || rc=$?
    log "demo exited with status $rc"
    if [[ $mode == full && $rc -ne 0 ]]; then
        tail -n 20 "$DEMO_LOG" >&2
        fail "warren-helper demo exited with status $rc after SIGINT (expected 0)"
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
    log "demo ($mode) cleaned up: no warren-demo, no links, no children, no sockets"
}

register -t 150 demo/full t_demo full
register -t 90 demo/interrupted t_demo interrupted
