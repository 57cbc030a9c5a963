# shellcheck shell=bash
# Group "daemon": `warren-helper daemon` in a namespace, driven through the admin CLI over its
# socket, against a wireguard-go peer. Every path of the daemon is a temporary one (--socket,
# --state-dir, --tunnels-dir, --log-dir): nothing of the host's /etc/warren, /var/lib/warren,
# /var/log/warren or /run/warren is touched.
#
#   daemon/cli        import (0600), up --wait (a completed handshake in status --json), ping,
#                     list, conflicts refused (exit 6), down, exit codes, remove, a user tunnel from
#                     a file; the log dir made 0700; neither key appears in the logs, `logs` or
#                     status output; SIGTERM leaves the namespace as it was
#   daemon/autostart  a tunnel flagged <name>.autostart comes up when the daemon starts; SIGTERM
#                     tells a `logs -f` client, takes it down, undoes its journal, removes the socket
#   daemon/errors     each failure says what kind it is, with its exit code: an endpoint whose host
#                     name does not resolve waits for the network (state waiting_for_network with
#                     the resolver's reason, nothing on the system, `down` ends it), and fails at once
#                     with 9 in `up --foreground` ("failed to resolve", not "invalid configuration"),
#                     a kill switch on a daemon that cannot run nft is 1 naming nft, a routing loop is
#                     still 7;
#                     each leaves the tunnel in state error with that reason and the namespace as it was
#   daemon/wait-for-network  an autostart tunnel whose endpoint name is in no hosts file yet is
#                     "waiting for network" in `status` (not error); once the namespace's hosts file
#                     has the name it connects by itself, and pings
#   daemon/auth       a member of the daemon's group (a throwaway user and group) is admitted but
#                     may not install tunnels (the socket in a directory the daemon makes 0750
#                     root:group); uid 65534 without the group cannot connect; uid 65534
#                     holding the group only in its process (not the group database) is refused by
#                     the credential check, and the daemon logs its uid

# daemon_paths — per-test paths; the socket lives in a 0755 directory so other uids can reach it.
daemon_paths() {
    SOCK_DIR="/tmp/wrt-sock-${WRT_RUN}-${WRT_TEST_NO}"
    wrt_record_dir "$SOCK_DIR"
    mkdir -p "$SOCK_DIR"
    chmod 755 "$SOCK_DIR"
    SOCK="$SOCK_DIR/helper.sock"
    D_STATE="$WRT_TMP/state"
    D_TUNNELS="$WRT_TMP/tunnels"
    D_LOGS="$WRT_TMP/logs"
    D_GROUP=${D_GROUP:-root}
    D_ROUND=0
}

# daemon_start NS — start the daemon inside namespace NS; wait for its socket. With D_HIDE=FILE,
# the daemon runs in a private mount namespace where FILE is /dev/null (a tool it cannot run).
daemon_start() {
    local n=$1 full logf i
    full="$(ns "$n")"
    D_ROUND=$((D_ROUND + 1))
    logf="$WRT_TMP/daemon.$D_ROUND.log"
    log "starting the daemon in $full (round $D_ROUND)"
    local -a hide=()
    if [[ -n ${D_HIDE:-} ]]; then
        # shellcheck disable=SC2016  # for that sh
        hide=(unshare --mount --propagation private sh -c 'mount --bind /dev/null "$0" && exec "$@"' "$D_HIDE")
    fi
    RUST_LOG="${RUST_LOG:-info}" env --default-signal=INT,QUIT "${hide[@]}" \
        ip netns exec "$full" "$WARREN_BIN" --socket "$SOCK" daemon --group "$D_GROUP" \
        --state-dir "$D_STATE" --tunnels-dir "$D_TUNNELS" --log-dir "$D_LOGS" >"$logf" 2>&1 &
    DAEMON_PID=$!
    DAEMON_LOG=$logf
    wrt_record_pid "$DAEMON_PID"
    note_log "daemon-$D_ROUND" warren "$logf"
    for ((i = 0; i < 100; i++)); do
        [[ -S $SOCK ]] && return 0
        kill -0 "$DAEMON_PID" 2>/dev/null || fail "the daemon exited at start; its output:
$(tail -n 30 "$logf")"
        sleep 0.1
    done
    fail "the daemon's socket $SOCK did not appear within 10 s"
}

# daemon_stop — SIGTERM; it must exit 0 within 30 s and remove its socket.
daemon_stop() {
    local i rc=0
    kill -TERM "$DAEMON_PID"
    for ((i = 0; i < 300; i++)); do
        kill -0 "$DAEMON_PID" 2>/dev/null || break
        sleep 0.1
    done
    kill -0 "$DAEMON_PID" 2>/dev/null && fail "the daemon did not exit within 30 s of SIGTERM"
    wait "$DAEMON_PID" || rc=$?
    [[ $rc == 0 ]] || fail "the daemon exited with status $rc after SIGTERM; its output:
$(tail -n 30 "$DAEMON_LOG")"
    [[ ! -e $SOCK ]] || fail "the daemon left its socket $SOCK behind"
    log "daemon stopped (exit 0, socket removed)"
}

# wh ARGS... — the admin CLI against this test's daemon.
wh() { WARREN_HELPER_SOCKET="$SOCK" "$WARREN_BIN" "$@"; }

# wh_expect RC WHAT ARGS... — run the CLI, expect exit status RC; WH_OUT holds stdout+stderr.
wh_expect() {
    local want=$1 what=$2 rc=0
    shift 2
    WH_OUT="$(wh "$@" 2>&1)" || rc=$?
    [[ $rc == "$want" ]] || fail "$what: \`warren-helper $*\` exited $rc, expected $want; output:
$WH_OUT"
    log "$what: warren-helper $* -> $rc${WH_OUT:+: ${WH_OUT//$'\n'/ | }}"
}

# daemon_state NS — addresses, links, routes, rules: to compare before and after (without the
# IPv6 link-local ones, which the kernel adds to the veth by itself, at its own pace).
daemon_state() {
    local full
    full="$(ns "$1")"
    {
        ip -n "$full" -br link | awk '{ print $1 }'
        ip -n "$full" -br addr
        ip -n "$full" route show table all
        ip -n "$full" -6 route show table all
        ip -n "$full" rule
        ip -n "$full" -6 rule
    } 2>&1 | sed 's/ fe80::[^ ]*//g' | awk '!/^local *dev/' | sort
}

# daemon_pair — namespaces a (the daemon's) and b (a wireguard-go responder), the tunnel's config
# in $CONF_A named after the interface (so the tunnel's name is $IF_A), with a preshared key.
daemon_pair() {
    need_kinds warren wggo
    command -v jq >/dev/null || fail "jq not installed (scripts/setup.sh)"
    daemon_paths
    underlay_pair
    key_new a
    key_new b
    psk_new ab
    IF_A="$(ifname A)"
    IF_B="$(ifname B)"
    CONF_A="$WRT_TMP/$IF_A.conf"
    CONF_B="$WRT_TMP/$IF_B.conf"
    conf_interface "$CONF_A" key=a addr="$TUN4_A/24"
    conf_peer "$CONF_A" pub="$(key_pub b)" psk="$(psk ab)" allowed="$TUN4_B/32" \
        endpoint="$UNDER4_B:$WG_PORT" keepalive=5
    conf_interface "$CONF_B" key=b addr="$TUN4_B/24" port="$WG_PORT"
    conf_peer "$CONF_B" pub="$(key_pub a)" psk="$(psk ab)" allowed="$TUN4_A/32"
    chmod 600 "$CONF_A" "$CONF_B"
    peer_up wggo b "$IF_B" "$CONF_B"
    # The daemon's interface has the tunnel's name; its UAPI socket is removed if left behind.
    WRT_IFACES+=("$IF_A")
    echo "$IF_A" >>"$WRT_TMP/.ifaces"
    # (WRT_PEER_NS is lib.sh's associative array, read by wg_show.)
    # shellcheck disable=SC2034,SC2004
    WRT_PEER_NS[$IF_A]=a
}

# status_field NAME JQ — one field of `status NAME --json`.
status_field() {
    wh status "$1" --json | jq -r ".[0]$2"
}

is_connected() { [[ $(status_field "$IF_A" .state.kind 2>/dev/null) == connected ]]; }

# state_is NAME KIND — NAME's state is KIND (`status --json`); a tunnel the daemon forgot counts
# as disconnected.
state_is() {
    local kind
    kind="$(status_field "$1" .state.kind 2>/dev/null)" || kind=""
    [[ $kind == "$2" || ($2 == disconnected && -z $kind) ]]
}

# expect_no_keys WHAT TEXT-FILE... — neither private key nor the preshared key in the files.
expect_no_keys() {
    local what=$1 key f
    shift
    for key in "$(key_priv a)" "$(key_priv b)" "$(psk ab)"; do
        for f in "$@"; do
            if grep -qF -- "$key" "$f"; then
                fail "$what: a key appears in $f"
            fi
            # The hex form too (the UAPI's), in case anything printed it that way.
            if grep -qiF -- "$(base64 -d <<<"$key" | od -An -tx1 | tr -d ' \n')" "$f"; then
                fail "$what: a key (hex) appears in $f"
            fi
        done
    done
}

t_daemon_cli() {
    local before mode hs out list other
    daemon_pair
    before="$(daemon_state a)"
    [[ ! -e $D_LOGS ]] || fail "$D_LOGS exists before the daemon made it"
    daemon_start a
    # Only root reads the log files (README); others read the log through the daemon (`logs`).
    [[ $(stat -c '%a %U' "$D_LOGS") == "700 root" ]] || fail "log dir is $(stat -c '%a %U' "$D_LOGS"), expected 700 root"

    wh_expect 0 "empty list" list
    [[ -z $WH_OUT ]] || fail "list of an empty daemon printed: $WH_OUT"
    wh_expect 0 "import" import "$CONF_A"
    mode="$(stat -c %a "$D_TUNNELS/$IF_A.conf")"
    [[ $mode == 600 ]] || fail "imported file has mode $mode, expected 600"
    wh_expect 6 "import again" import "$CONF_A"
    wh_expect 5 "up an unknown tunnel" up nosuchtunnel
    wh_expect 2 "up without a target" up

    wh_expect 0 "up with --wait" up "$IF_A" --wait 20
    grep -q connected <<<"$WH_OUT" || fail "up --wait did not say connected: $WH_OUT"
    out="$(wh status "$IF_A" --json)"
    printf '%s\n' "$out" >"$WRT_TMP/status.json"
    [[ $(jq -r '.[0].state.kind' <<<"$out") == connected ]] || fail "status --json: not connected: $out"
    [[ $(jq -r '.[0].interface' <<<"$out") == "$IF_A" ]] || fail "status --json: interface: $out"
    [[ $(jq -r '.[0].kind' <<<"$out") == system ]] || fail "status --json: kind: $out"
    hs="$(jq -r '.[0].peers[0].last_handshake_unix_secs' <<<"$out")"
    [[ $hs =~ ^[0-9]+$ && $hs -gt 0 ]] || fail "status --json: no completed handshake: $out"
    [[ $(jq -r '.[0].peers[0].public_key' <<<"$out") == "$(key_pub b)" ]] || fail "status --json: peer key: $out"
    [[ $(jq -r '.[0].health.kind' <<<"$out") == healthy ]] || fail "status --json: health: $out"
    log "status --json: connected, handshake at $hs, healthy"
    expect_ping a "$TUN4_B"
    wh status >"$WRT_TMP/status.txt" 2>&1 || fail "status failed: $(cat "$WRT_TMP/status.txt")"
    grep -q "latest handshake: .* ago" "$WRT_TMP/status.txt" || fail "status: $(cat "$WRT_TMP/status.txt")"
    list="$(wh list)"
    [[ $list == "$IF_A"$'\t'system$'\t'connected$'\t'auto$'\t'no ]] || fail "list: '$list'"

    # Conflicts: the same tunnel again, and a second tunnel whose routes overlap the first's.
    wh_expect 6 "up twice" up "$IF_A"
    grep -q "already up" <<<"$WH_OUT" || fail "up twice: $WH_OUT"
    other="$WRT_TMP/wrtother.conf"
    conf_interface "$other" key=b addr="198.19.9.1/24"
    conf_peer "$other" pub="$(key_pub a)" allowed="198.19.0.0/24"
    wh_expect 6 "overlapping user tunnel" up "$other"
    grep -q "overlaps" <<<"$WH_OUT" || fail "the conflict does not say what overlaps: $WH_OUT"
    wh_expect 6 "remove while up" remove "$IF_A"

    wh_expect 0 "down" down "$IF_A"
    ! ip -n "$(ns a)" link show "$IF_A" >/dev/null 2>&1 || fail "$IF_A still exists after down"
    wh_expect 5 "down twice" down "$IF_A"
    [[ $(status_field "$IF_A" .state.kind) == disconnected ]] || fail "status after down"
    wh_expect 0 "remove" remove "$IF_A"
    [[ ! -e $D_TUNNELS/$IF_A.conf ]] || fail "remove left $D_TUNNELS/$IF_A.conf"
    wh_expect 5 "remove twice" remove "$IF_A"

    # The same file as a user tunnel, handed over by the client.
    wh_expect 0 "user tunnel up" up "$CONF_A" --wait 20
    [[ $(status_field "$IF_A" .kind) == user ]] || fail "the file did not come up as a user tunnel"
    expect_ping a "$TUN4_B"
    wh status --json >>"$WRT_TMP/status.json"
    wh_expect 0 "user tunnel down" down "$IF_A"

    wh logs -n 2000 >"$WRT_TMP/logs.txt" 2>&1 || fail "logs failed: $(cat "$WRT_TMP/logs.txt")"
    grep -q "is up" "$WRT_TMP/logs.txt" || fail "logs has no 'is up' line: $(tail -n 20 "$WRT_TMP/logs.txt")"
    daemon_stop
    [[ -n $(find "$D_LOGS" -name 'warren-helper.*log' -size +0) ]] || fail "no log file in $D_LOGS"
    expect_no_keys "logs and status" "$WRT_TMP/logs.txt" "$WRT_TMP/status.json" "$WRT_TMP/status.txt" \
        "$DAEMON_LOG" "$D_LOGS"/*
    log "no key in the log files, the daemon's stderr, \`logs\` or status output"
    [[ -z $(find "$D_STATE" -name '*.journal' 2>/dev/null) ]] || fail "a journal is left in $D_STATE"
    [[ $(daemon_state a) == "$before" ]] || fail "namespace a differs from before the daemon:
$(diff <(echo "$before") <(daemon_state a))"
}

# expect_failure_state NAME WHAT GREP — status of NAME is error, and its reason matches GREP.
expect_failure_state() {
    local out
    out="$(wh status "$1" --json)"
    [[ $(jq -r '.[0].state.kind' <<<"$out") == error ]] || fail "$2: status is not error: $out"
    jq -r '.[0].state.reason' <<<"$out" | grep -q -- "$3" || fail "$2: the error state's reason lacks '$3': $out"
}

t_daemon_errors() {
    local before dir conf
    need_kinds warren
    command -v jq >/dev/null || fail "jq not installed (scripts/setup.sh)"
    daemon_paths
    underlay_pair
    key_new a
    key_new b
    # Name resolution fails at once in namespace a: its own resolv.conf names a resolver on its
    # loopback, where nothing listens, and its own hosts file lacks the name (`ip netns exec`
    # bind-mounts /etc/netns/<ns>/* over /etc).
    dir="/etc/netns/$(ns a)"
    [[ -e $dir ]] && fail "$dir already exists"
    wrt_record_dir "$dir"
    mkdir -p "$dir"
    printf '# a Warren test namespace: no resolver answers\nnameserver 127.0.0.1\n' >"$dir/resolv.conf"
    printf '127.0.0.1 localhost\n' >"$dir/hosts"
    before="$(daemon_state a)"
    daemon_start a

    conf="$WRT_TMP/wrtname.conf"
    conf_interface "$conf" key=a addr="$TUN4_A/24"
    conf_peer "$conf" pub="$(key_pub b)" allowed="$TUN4_B/32" endpoint="nosuch.invalid:$WG_PORT"
    chmod 600 "$conf"
    # Through the daemon a name that does not resolve is not a failure: the tunnel waits for the
    # network (saying why), nothing of it is on the system, and `down` ends the wait.
    wh_expect 0 "an endpoint whose name does not resolve (yet)" up "$conf"
    grep -q "waiting for network" <<<"$WH_OUT" || fail "up does not say it waits for the network: $WH_OUT"
    wait_until 10 "wrtname in state waiting_for_network" state_is wrtname waiting_for_network
    status_field wrtname .state.reason | grep -q "failed to resolve the endpoint nosuch.invalid:$WG_PORT" ||
        fail "the waiting state does not name the name: $(wh status wrtname --json)"
    wh_expect 0 "status of a waiting tunnel" status wrtname
    grep -q "state: waiting for network: " <<<"$WH_OUT" || fail "status does not say 'waiting for network': $WH_OUT"
    ip -n "$(ns a)" link show wrtname >/dev/null 2>&1 && fail "a waiting tunnel already has its interface"
    wh_expect 0 "down while waiting for the network" down wrtname
    wait_until 10 "wrtname disconnected" state_is wrtname disconnected
    # In the foreground (inside a, with a's resolver) the same name fails at once, with the
    # network's exit code.
    local rc=0
    WH_OUT="$(timeout 20 ip netns exec "$(ns a)" "$WARREN_BIN" up --foreground "$conf" \
        --state-dir "$D_STATE" 2>&1)" || rc=$?
    [[ $rc == 9 ]] || fail "up --foreground with an unresolvable name exited $rc, expected 9: $WH_OUT"
    log "up --foreground with an unresolvable name -> 9"
    grep -q "failed to resolve the endpoint nosuch.invalid:$WG_PORT" <<<"$WH_OUT" ||
        fail "the unresolvable name is not named: $WH_OUT"
    grep -qi "invalid configuration" <<<"$WH_OUT" && fail "an unresolvable name is called an invalid configuration: $WH_OUT"

    conf="$WRT_TMP/wrtloop.conf"
    conf_interface "$conf" key=a addr="$TUN4_A/24"
    conf_peer "$conf" pub="$(key_pub b)" allowed="198.18.0.0/15" endpoint="$UNDER4_B:$WG_PORT"
    chmod 600 "$conf"
    wh_expect 7 "an endpoint inside its own AllowedIPs" up "$conf"
    grep -q "routing loop" <<<"$WH_OUT" || fail "the routing loop is not explained: $WH_OUT"
    expect_failure_state wrtloop "routing loop" "routing loop"
    daemon_stop

    # A daemon that cannot run nft (/dev/null in its place): the kill switch is a missing feature.
    local nft
    nft="$(command -v nft)" || fail "nft not installed (scripts/setup.sh)"
    nft="$(readlink -f "$nft")"
    D_HIDE=$nft daemon_start a
    conf="$WRT_TMP/wrtks.conf"
    conf_interface "$conf" key=a addr="$TUN4_A/24"
    conf_peer "$conf" pub="$(key_pub b)" allowed="$TUN4_B/32" endpoint="$UNDER4_B:$WG_PORT"
    chmod 600 "$conf"
    wh_expect 1 "a kill switch without nft" up "$conf" --kill-switch on
    grep -q "needs nft" <<<"$WH_OUT" || fail "the missing nft is not named: $WH_OUT"
    grep -qi "invalid configuration" <<<"$WH_OUT" && fail "a missing nft is called an invalid configuration: $WH_OUT"
    expect_failure_state wrtks "missing nft" "needs nft"
    daemon_stop
    [[ $(daemon_state a) == "$before" ]] || fail "namespace a differs from before the daemon:
$(diff <(echo "$before") <(daemon_state a))"
}

t_daemon_autostart() {
    local before follow_pid follow_log rc=0 i
    daemon_pair
    before="$(daemon_state a)"
    daemon_start a
    wh_expect 0 "import" import "$CONF_A"
    touch "$D_TUNNELS/$IF_A.autostart"
    daemon_stop

    daemon_start a
    wait_until 25 "autostart tunnel $IF_A connected" is_connected
    expect_ping a "$TUN4_B"
    follow_log="$WRT_TMP/follow.log"
    WARREN_HELPER_SOCKET="$SOCK" "$WARREN_BIN" logs -n 5 -f >"$follow_log" 2>&1 &
    follow_pid=$!
    wrt_record_pid "$follow_pid"
    sleep 1
    kill -0 "$follow_pid" 2>/dev/null || fail "logs -f exited early: $(cat "$follow_log")"
    daemon_stop
    for ((i = 0; i < 50; i++)); do
        kill -0 "$follow_pid" 2>/dev/null || break
        sleep 0.1
    done
    kill -0 "$follow_pid" 2>/dev/null && fail "logs -f still running 5 s after the daemon stopped"
    wait "$follow_pid" || rc=$?
    [[ $rc == 0 ]] || fail "logs -f exited $rc when the daemon stopped: $(cat "$follow_log")"
    grep -q "stopping" "$follow_log" || fail "logs -f was not told the daemon is stopping: $(cat "$follow_log")"
    grep -q "SIGTERM received" "$follow_log" || fail "logs -f did not follow new lines: $(cat "$follow_log")"
    ! ip -n "$(ns a)" link show "$IF_A" >/dev/null 2>&1 || fail "$IF_A still exists after SIGTERM"
    [[ -z $(find "$D_STATE" -name '*.journal' 2>/dev/null) ]] || fail "a journal is left in $D_STATE"
    [[ $(daemon_state a) == "$before" ]] || fail "namespace a differs after SIGTERM:
$(diff <(echo "$before") <(daemon_state a))"
    log "autostart came up; SIGTERM told the client, took it down and restored the namespace"
}

t_daemon_wait_for_network() {
    local dir hosts t0
    daemon_pair
    # a's own resolv.conf (a resolver on its loopback, where nothing listens) and hosts file
    # (`ip netns exec` bind-mounts /etc/netns/<ns>/* over /etc): the name is not there yet.
    dir="/etc/netns/$(ns a)"
    [[ -e $dir ]] && fail "$dir already exists"
    wrt_record_dir "$dir"
    mkdir -p "$dir"
    printf '# a Warren test namespace: no resolver answers\nnameserver 127.0.0.1\n' >"$dir/resolv.conf"
    hosts="$dir/hosts"
    printf '127.0.0.1 localhost\n' >"$hosts"
    sed -i "s/^Endpoint = .*/Endpoint = wrt-server.test:$WG_PORT/" "$CONF_A"
    grep -q "^Endpoint = wrt-server.test:$WG_PORT" "$CONF_A" || fail "could not point $CONF_A at a name"

    daemon_start a
    wh_expect 0 "import" import "$CONF_A"
    touch "$D_TUNNELS/$IF_A.autostart"
    daemon_stop
    daemon_start a
    wait_until 15 "autostart tunnel $IF_A waiting for network" state_is "$IF_A" waiting_for_network
    wh_expect 0 "status while the name does not resolve" status "$IF_A"
    grep -q "state: waiting for network: .*wrt-server.test" <<<"$WH_OUT" ||
        fail "status does not say 'waiting for network' with the name: $WH_OUT"
    # Still waiting a few seconds later (it retries, and does not turn into an error).
    sleep 3
    state_is "$IF_A" waiting_for_network || fail "no longer waiting, but not connected: $(wh status "$IF_A" --json)"

    log "the name appears in a's hosts file"
    printf '127.0.0.1 localhost\n%s wrt-server.test\n' "$UNDER4_B" >"$hosts"
    t0=$(date +%s)
    wait_until 40 "autostart tunnel $IF_A connected once the name resolves" is_connected
    log "connected $(($(date +%s) - t0)) s after the name appeared"
    expect_ping a "$TUN4_B"
    daemon_stop
}

t_daemon_auth() {
    local user gid bin
    need_warren_bin
    command -v setpriv >/dev/null || fail "setpriv not installed (util-linux)"
    D_GROUP="wrtg${WRT_RUN}n${WRT_TEST_NO}"
    user="wrtu${WRT_RUN}n${WRT_TEST_NO}"
    daemon_paths
    # A socket directory the daemon makes, as it makes /run/warren when tmpfiles.d has not.
    SOCK="$SOCK_DIR/run/helper.sock"
    ns_new a
    wrt_record_group "$D_GROUP"
    groupadd "$D_GROUP"
    wrt_record_user "$user"
    useradd -M -N -G "$D_GROUP" -s /usr/sbin/nologin "$user"
    gid="$(getent group "$D_GROUP" | cut -d: -f3)"
    # A copy every uid can execute, next to the socket.
    bin="$SOCK_DIR/warren-helper"
    cp "$WARREN_BIN" "$bin"
    chmod 755 "$bin"
    daemon_start a
    [[ $(stat -c '%a %G' "$SOCK") == "660 $D_GROUP" ]] || fail "socket is $(stat -c '%a %U:%G' "$SOCK"), expected 660 root:$D_GROUP"
    [[ $(stat -c '%a %U %G' "${SOCK%/*}") == "750 root $D_GROUP" ]] ||
        fail "socket dir is $(stat -c '%a %U:%G' "${SOCK%/*}"), expected 750 root:$D_GROUP"

    as() {
        local rc=0
        AS_OUT="$(setpriv "$@" env WARREN_HELPER_SOCKET="$SOCK" "$bin" list 2>&1)" || rc=$?
        AS_RC=$rc
    }
    # A member (by the group database) is admitted, but only root installs system tunnels.
    as --reuid "$user" --regid "$(id -g "$user")" --init-groups
    [[ $AS_RC == 0 ]] || fail "a member of $D_GROUP was refused ($AS_RC): $AS_OUT"
    log "member $user: admitted"
    local rc=0 out
    key_new a
    conf_interface "$WRT_TMP/member.conf" key=a addr="198.19.7.1/24"
    chmod 644 "$WRT_TMP/member.conf"
    cp "$WRT_TMP/member.conf" "$SOCK_DIR/member.conf"
    chmod 644 "$SOCK_DIR/member.conf"
    rc=0
    out="$(setpriv --reuid "$user" --regid "$(id -g "$user")" --init-groups \
        env WARREN_HELPER_SOCKET="$SOCK" "$bin" import "$SOCK_DIR/member.conf" 2>&1)" || rc=$?
    [[ $rc == 4 ]] || fail "import by a member exited $rc, expected 4: $out"
    grep -q "only root" <<<"$out" || fail "import refusal does not say why: $out"
    log "member $user: import refused: $out"

    # Not a member at all: the socket's mode keeps it out.
    as --reuid 65534 --regid 65534 --clear-groups
    [[ $AS_RC == 4 ]] || fail "uid 65534 without the group: exit $AS_RC, expected 4: $AS_OUT"
    grep -qi "permission denied" <<<"$AS_OUT" || fail "uid 65534: no clear refusal: $AS_OUT"
    log "uid 65534 without the group: refused by the socket's (and its directory's) mode: $AS_OUT"

    # The group in the process only (not in the database): past the mode, refused by the check.
    as --reuid 65534 --regid 65534 --groups "$gid"
    [[ $AS_RC == 4 ]] || fail "uid 65534 with a stray group: exit $AS_RC, expected 4: $AS_OUT"
    grep -q "uid 65534" <<<"$AS_OUT" || fail "the refusal does not name the uid: $AS_OUT"
    grep -q "not a member of group '$D_GROUP'" <<<"$AS_OUT" || fail "the refusal does not say why: $AS_OUT"
    grep -q "uid 65534.*refused" "$DAEMON_LOG" || fail "the daemon did not log the refused uid: $(tail -n 20 "$DAEMON_LOG")"
    log "uid 65534 with the group only in its process: refused by SO_PEERCRED: $AS_OUT"

    # Root still gets in, and the daemon served everyone else meanwhile.
    wh_expect 0 "root list" list
    daemon_stop
}

register daemon/cli t_daemon_cli
register daemon/autostart t_daemon_autostart
register daemon/errors t_daemon_errors
register daemon/wait-for-network t_daemon_wait_for_network
register daemon/auth t_daemon_auth
