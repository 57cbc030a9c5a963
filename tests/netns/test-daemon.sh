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
#   daemon/notify     sd_notify as under systemd's Type=notify: READY=1 only once the socket serves
#                     (list --json run the moment it arrives answers) and both autostart tunnels
#                     have settled (one up, one failed, as STATUS= says and the log's order shows);
#                     WATCHDOG=1 every half WATCHDOG_USEC, none for another WATCHDOG_PID; STOPPING=1
#                     on SIGTERM; abstract and path sockets; with JOURNAL_STREAM every stderr line
#                     has its syslog priority (the failure <3>), without it none
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
    D_ENV=()
}

# daemon_start NS — start the daemon inside namespace NS; wait for its socket. With D_HIDE=FILE,
# the daemon runs in a private mount namespace where FILE is /dev/null (a tool it cannot run).
# D_ENV=(NAME=VALUE ...) adds to its environment (e.g. NOTIFY_SOCKET).
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
    local -a extra_env=("${D_ENV[@]}")
    RUST_LOG="${RUST_LOG:-info}" env --default-signal=INT,QUIT "${extra_env[@]}" "${hide[@]}" \
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
    list="$(wh list --json)"
    [[ $(jq -r '.[] | [.name, .kind, .state.kind, .options.kill_switch, .options.allow_lan] | @tsv' <<<"$list") == \
        "$IF_A"$'\t'system$'\t'connected$'\t'auto$'\t'false ]] || fail "list --json: $list"
    [[ $(jq -r '.[0].state.since_unix_secs' <<<"$list") =~ ^[0-9]+$ ]] || fail "list --json: no since_unix_secs: $list"
    log "list --json: $(jq -c . <<<"$list")"

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

# notify_times FILE KEY — the times of FILE's "<time> KEY" lines (sd-notify-listen's output).
notify_times() { awk -v k="$2" '$2 == k { print $1 }' "$1"; }

# notify_listen ADDRESS OUT [CMD...] — sd-notify-listen in namespace a (abstract sockets belong to a
# network namespace); waits until it listens.
notify_listen() {
    local i
    ip netns exec "$(ns a)" python3 "$WRT_ROOT/tests/netns/tools/sd-notify-listen" "$@" >"$2.stderr" 2>&1 &
    wrt_record_pid "$!"
    for ((i = 0; i < 50; i++)); do
        grep -qx listening "$2" 2>/dev/null && return 0
        kill -0 "$!" 2>/dev/null || fail "sd-notify-listen exited: $(cat "$2.stderr")"
        sleep 0.1
    done
    fail "sd-notify-listen did not bind $1 within 5 s: $(cat "$2.stderr")"
}

t_daemon_notify() {
    local notes check bad next_log stream ready_at pings gaps n
    daemon_pair
    command -v python3 >/dev/null || fail "python3 not installed"
    # A second autostart tunnel that fails before changing anything: its endpoint is inside its
    # own AllowedIPs (a routing loop).
    bad="$WRT_TMP/wrtbad.conf"
    conf_interface "$bad" key=a addr="198.19.5.1/24"
    conf_peer "$bad" pub="$(key_pub b)" allowed="198.18.0.0/24" endpoint="$UNDER4_B:$WG_PORT"
    chmod 600 "$bad"
    daemon_start a
    wh_expect 0 "import" import "$CONF_A"
    wh_expect 0 "import the failing one" import "$bad"
    touch "$D_TUNNELS/$IF_A.autostart" "$D_TUNNELS/wrtbad.autostart"
    daemon_stop

    # Round 1: systemd's way — an abstract notification socket, the watchdog at 1 s (a ping every
    # 0.5 s), stderr as the journal's stream (JOURNAL_STREAM names its device and inode). The
    # moment READY=1 arrives, the listener runs `list --json` against the daemon's socket.
    notes="$WRT_TMP/notify.1"
    check=(env WARREN_HELPER_SOCKET="$SOCK" "$WARREN_BIN" list --json)
    notify_listen "@wrt-notify-$WRT_RUN-$WRT_TEST_NO" "$notes" "${check[@]}"
    next_log="$WRT_TMP/daemon.$((D_ROUND + 1)).log"
    : >"$next_log"
    stream="$(stat -c '%d:%i' "$next_log")"
    D_ENV=(NOTIFY_SOCKET="@wrt-notify-$WRT_RUN-$WRT_TEST_NO" WATCHDOG_USEC=1000000 JOURNAL_STREAM="$stream")
    daemon_start a
    [[ $(stat -c '%d:%i' "$DAEMON_LOG") == "$stream" ]] || fail "the daemon's log is not the file JOURNAL_STREAM names"
    wait_until 30 "READY=1" grep -q ' READY=1$' "$notes"
    wait_until 10 "the check run at READY=1" test -s "$notes.ready"
    log "at READY=1, list --json said: $(tr '\n' ' ' <"$notes.ready")"
    head -n 1 "$notes.ready" | grep -qx 'exit 0' || fail "at READY=1 the daemon's socket did not serve list: $(cat "$notes.ready")"
    n="$(tail -n +2 "$notes.ready" | jq -r --arg a "$IF_A" '.[] | select(.name == $a) | .state.kind')"
    [[ $n == connecting || $n == connected ]] || fail "at READY=1 autostart tunnel $IF_A was '$n', not up: $(cat "$notes.ready")"
    n="$(tail -n +2 "$notes.ready" | jq -r '.[] | select(.name == "wrtbad") | .state.kind')"
    [[ $n == error ]] || fail "at READY=1 the failing autostart tunnel was '$n', not error: $(cat "$notes.ready")"
    grep -qx '[0-9.]* STATUS=serving .*; autostart tunnels: 1 up, 1 failed' "$notes" ||
        fail "READY=1 came without the autostart outcome in STATUS=: $(cat "$notes")"
    # The order in the daemon's own log: the tunnel was up (TUN, addresses, routes) before "ready".
    grep -n "$IF_A is up\|: ready: serving" "$DAEMON_LOG" | head -n 1 | grep -q "$IF_A is up" ||
        fail "the daemon said ready before $IF_A was up: $(grep -n "is up\|ready:" "$DAEMON_LOG")"
    log "READY=1 after the socket served list and both autostart tunnels settled (1 up, 1 failed)"

    # Journal priorities: every line of stderr starts with <N>; the autostart failure is an error.
    grep -q '^<3>ERROR .*wrtbad.*routing loop' "$DAEMON_LOG" ||
        fail "no <3>ERROR line for the failing autostart tunnel: $(head -n 30 "$DAEMON_LOG")"
    grep -q '^<6>INFO .*ready: serving' "$DAEMON_LOG" || fail "no <6>INFO ready line: $(head -n 30 "$DAEMON_LOG")"
    n="$(grep -cv '^<[0-7]>' "$DAEMON_LOG" || true)"
    [[ $n == 0 ]] || fail "$n line(s) of the daemon's journal stream lack a priority: $(grep -v '^<[0-7]>' "$DAEMON_LOG" | head -n 5)"
    log "stderr as the journal: priorities on every line, the failure at <3>"

    # The watchdog: at least 5 pings in 3.5 s after READY, none more than 0.9 s apart.
    sleep 3.5
    ready_at="$(notify_times "$notes" READY=1 | head -n 1)"
    pings="$(notify_times "$notes" WATCHDOG=1 | awk -v r="$ready_at" '$1 >= r')"
    n="$(grep -c . <<<"$pings" || true)"
    [[ $n -ge 5 ]] || fail "only $n WATCHDOG=1 in 3.5 s after READY=1 (WATCHDOG_USEC=1000000): $(cat "$notes")"
    gaps="$(awk 'NR > 1 { print $1 - prev } { prev = $1 }' <<<"$pings" | sort -g | tail -n 1)"
    awk -v g="$gaps" 'BEGIN { exit !(g < 0.9) }' || fail "WATCHDOG=1 pings $gaps s apart (at most 0.9 expected): $(cat "$notes")"
    log "$n WATCHDOG=1 pings after READY=1, at most $gaps s apart"
    daemon_stop
    grep -q ' STOPPING=1$' "$notes" || fail "no STOPPING=1 on SIGTERM: $(cat "$notes")"
    log "STOPPING=1 on SIGTERM"

    # Round 2: a path socket; WATCHDOG_PID names another process, so no pings; no autostart.
    rm -f "$D_TUNNELS/$IF_A.autostart" "$D_TUNNELS/wrtbad.autostart"
    notes="$WRT_TMP/notify.2"
    notify_listen "$WRT_TMP/notify.sock" "$notes"
    D_ENV=(NOTIFY_SOCKET="$WRT_TMP/notify.sock" WATCHDOG_USEC=1000000 WATCHDOG_PID=1)
    daemon_start a
    wait_until 30 "READY=1 on the path socket" grep -q ' READY=1$' "$notes"
    grep -qx '[0-9.]* STATUS=serving .*; autostart tunnels: 0 up, 0 failed' "$notes" || fail "STATUS: $(cat "$notes")"
    sleep 2
    grep -q WATCHDOG "$notes" && fail "WATCHDOG=1 sent although WATCHDOG_PID names another process: $(cat "$notes")"
    grep -q '^<' "$DAEMON_LOG" && fail "priority prefixes without JOURNAL_STREAM: $(head -n 3 "$DAEMON_LOG")"
    daemon_stop
    log "a path socket works; WATCHDOG_PID of another process: no pings; no JOURNAL_STREAM: plain lines"
}

register daemon/cli t_daemon_cli
register daemon/autostart t_daemon_autostart
register daemon/errors t_daemon_errors
register daemon/wait-for-network t_daemon_wait_for_network
register daemon/auth t_daemon_auth
register daemon/notify t_daemon_notify
