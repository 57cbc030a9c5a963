# shellcheck shell=bash
# tests/netns/lib.sh — helpers for Warren's root network-namespace tests (sourced, never run).
#
# What it owns: creating and *always* removing the namespaces, veths, processes, sockets and temp
# files of one test. Everything a test changes lives inside namespaces named "${WRT_PREFIX}*"
# (wrt-<run pid>-<test no>-<name>); the host's own interfaces, routes and firewall are never touched.
# Only addresses from 198.18.0.0/15 and fd00::/8 are used.
#
# Layout of the helpers:
#   logging      log, fail, skip, wrt_elapsed
#   bookkeeping  wrt_record_pid, wrt_cleanup (the EXIT trap), wrt_dump_diagnostics
#   namespaces   ns_new, ns_exec, veth_new, addr_add, wait_link_ready
#   keys/config  key_new, key_priv, key_pub, psk_new, conf_interface, conf_peer
#   peers        need_kinds, peer_up (warren | wggo | wggo25 | gotatun | boringtun | boringtun1), peer_stop,
#                peer_pid, note_log,
#                uapi_sockets, ifname
#   checks       wait_until, wg_show, latest_handshake, handshake_of, wait_handshake, peer_endpoint,
#                rx_bytes, ping_ok, expect_ping, expect_no_ping, transfer_check
#   topologies   pair_setup (two peers over one veth: initiator A, responder B)
#
# Conventions: peer kinds are "wggo" (wireguard-go + wg), "warren" (warren-helper up --foreground,
# override with WARREN_BIN), "boringtun" (boringtun-cli with its default 4 threads) and "boringtun1"
# (boringtun-cli --threads 1); the boringtun kinds are for scripts/bench.sh. "wggo25" (wireguard-go
# 0.0.20250522, with offloads) and "gotatun" (Mullvad's gotatun 0.10.2) are the modern references,
# prebuilt in ../shared/anchors beside the checkout (override with WARREN_ANCHORS=DIR). Interface names are
# unique across namespaces because /var/run/wireguard/<iface>.sock is shared by all of them.

# Variables set here are used by the test-*.sh files and scripts/bench.sh:
# shellcheck disable=SC2034

WRT_LIB_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
WRT_ROOT="$(cd "$WRT_LIB_DIR/../.." && pwd)"
WARREN_BIN="${WARREN_BIN:-$WRT_ROOT/target/release/warren-helper}"
BORINGTUN_BIN="${BORINGTUN_BIN:-boringtun-cli}"
WARREN_ANCHORS="${WARREN_ANCHORS:-$WRT_ROOT/../shared/anchors}"
WGGO25_BIN="$WARREN_ANCHORS/wireguard-go-0.0.20250522"
GOTATUN_BIN="$WARREN_ANCHORS/gotatun-0.10.2"
WG_RUN_DIR=/var/run/wireguard
WRT_RUN="${WRT_RUN:-$$}"
WRT_TEST_NO="${WRT_TEST_NO:-0}"
WRT_PREFIX="wrt-${WRT_RUN}-${WRT_TEST_NO}-"
WRT_START_NS=$(date +%s%N)

# Fixed addressing plan (RFC 2544 benchmarking range and ULA only).
UNDER4_A=198.18.0.1 UNDER4_B=198.18.0.2 UNDER4_ROAM=198.18.0.3
UNDER6_A=fd00:1::1  UNDER6_B=fd00:1::2
TUN4_A=198.19.0.1   TUN4_B=198.19.0.2   TUN4_C=198.19.0.3
TUN6_A=fd00:2::1    TUN6_B=fd00:2::2    TUN6_C=fd00:2::3
WG_PORT=51820

declare -a WRT_NAMESPACES=() WRT_PIDS=() WRT_IFACES=()
declare -A WRT_PEER_PID=() WRT_PEER_NS=() WRT_PEER_KIND=() WRT_PEER_LOG=()

# ---------------------------------------------------------------------------------------------------
# logging

wrt_elapsed() {
    local now
    now=$(date +%s%N)
    printf '%d.%01d' $(((now - WRT_START_NS) / 1000000000)) $((((now - WRT_START_NS) / 100000000) % 10))
}

log() { printf '[%6ss] %s\n' "$(wrt_elapsed)" "$*" >&2; }

# fail MSG — the test failed: say why and stop (the EXIT trap dumps diagnostics and cleans up).
fail() {
    printf '[%6ss] FAIL: %s\n' "$(wrt_elapsed)" "$*" >&2
    exit 1
}

# skip MSG — the test cannot run here (exit status 77, reported as skipped; CI should see none).
skip() {
    printf '[%6ss] SKIP: %s\n' "$(wrt_elapsed)" "$*" >&2
    exit 77
}

# ---------------------------------------------------------------------------------------------------
# bookkeeping — everything started or created is recorded in memory and in $WRT_TMP, so that both
# this process's EXIT trap and run.sh (if this process is killed outright) can undo it.

wrt_need_tmp() {
    if [[ -z ${WRT_TMP:-} ]]; then
        WRT_TMP="$(mktemp -d /tmp/wrt-netns.XXXXXX)"
        WRT_OWN_TMP=1
    fi
    mkdir -p "$WRT_TMP/keys"
}

# proc_starttime PID — field 22 of /proc/PID/stat, to tell a PID from a later process reusing it.
proc_starttime() {
    local stat
    stat="$(cat "/proc/$1/stat" 2>/dev/null)" || return 1
    stat="${stat##*) }"
    # shellcheck disable=SC2086
    set -- $stat
    printf '%s\n' "${20}"
}

wrt_record_pid() {
    local pid=$1 st
    WRT_PIDS+=("$pid")
    st="$(proc_starttime "$pid" || echo 0)"
    echo "$pid $st" >>"$WRT_TMP/.pids"
}

# pid_alive PID [STARTTIME]
pid_alive() {
    local st
    kill -0 "$1" 2>/dev/null || return 1
    [[ -z ${2:-} || $2 == 0 ]] && return 0
    st="$(proc_starttime "$1")" || return 1
    [[ $st == "$2" ]]
}

# kill_pid PID [STARTTIME] — TERM, wait up to 5 s, then KILL. Only ever one PID we recorded.
kill_pid() {
    local pid=$1 st=${2:-} i
    pid_alive "$pid" "$st" || return 0
    kill -TERM "$pid" 2>/dev/null || return 0
    for ((i = 0; i < 50; i++)); do
        pid_alive "$pid" "$st" || return 0
        sleep 0.1
    done
    log "pid $pid ignored SIGTERM for 5 s: SIGKILL"
    kill -KILL "$pid" 2>/dev/null || true
}

wrt_dump_diagnostics() {
    local ns iface p seen=" "
    echo "------------------------------------------------------------------ diagnostics" >&2
    for iface in "${WRT_IFACES[@]}"; do
        [[ $seen == *" $iface "* ]] && continue
        seen+="$iface "
        if [[ -S $WG_RUN_DIR/$iface.sock ]]; then
            echo "--- wg show $iface" >&2
            timeout 5 wg show "$iface" >&2 2>&1 || true
        fi
    done
    for ns in "${WRT_NAMESPACES[@]}"; do
        [[ -e /run/netns/$ns ]] || continue
        echo "--- $ns: ip addr / route / -6 route" >&2
        ip -n "$ns" -br addr >&2 2>&1 || true
        ip -n "$ns" route >&2 2>&1 || true
        ip -n "$ns" -6 route >&2 2>&1 || true
    done
    for p in "${!WRT_PEER_LOG[@]}"; do
        echo "--- last lines of $p (${WRT_PEER_KIND[$p]}) log: ${WRT_PEER_LOG[$p]}" >&2
        tail -n 40 "${WRT_PEER_LOG[$p]}" >&2 2>/dev/null || true
    done
    echo "------------------------------------------------------------------ end diagnostics" >&2
}

# wrt_record_user NAME / wrt_record_group NAME / wrt_record_dir PATH — a throwaway user, group
# or directory (outside $WRT_TMP) this test created; removed by the cleanup below. Record BEFORE
# creating, so a kill in between still cleans up.
wrt_record_user() { echo "$1" >>"$WRT_TMP/.users"; }
wrt_record_group() { echo "$1" >>"$WRT_TMP/.groups"; }
wrt_record_dir() { echo "$1" >>"$WRT_TMP/.dirs"; }

# wrt_cleanup_state DIR — undo what DIR/.pids, .namespaces, .ifaces, .demo, .users, .groups and
# .dirs record. Used by the EXIT trap and, as a safety net, by run.sh after each test.
wrt_cleanup_state() {
    local dir=$1 pid st ns iface p name
    if [[ -f $dir/.pids ]]; then
        while read -r pid st; do
            kill_pid "$pid" "$st"
        done < <(tac "$dir/.pids")
    fi
    if [[ -f $dir/.namespaces ]]; then
        while read -r ns; do
            [[ -e /run/netns/$ns ]] || continue
            # Anything still running inside one of our namespaces is ours too: stop it by PID.
            for p in $(ip netns pids "$ns" 2>/dev/null); do
                kill_pid "$p"
            done
            ip netns del "$ns" 2>/dev/null || true
        done < <(tac "$dir/.namespaces")
    fi
    if [[ -f $dir/.ifaces ]]; then
        while read -r iface; do
            [[ -n $iface ]] && rm -f "$WG_RUN_DIR/$iface.sock"
        done <"$dir/.ifaces"
    fi
    if [[ -f $dir/.demo ]]; then
        # The demo test started `warren-helper demo`, which makes the global namespace warren-demo;
        # it did not exist before the test (checked), so if it is still there it is our leftover.
        if [[ -e /run/netns/warren-demo ]]; then
            for p in $(ip netns pids warren-demo 2>/dev/null); do
                kill_pid "$p"
            done
            ip netns del warren-demo 2>/dev/null || true
        fi
    fi
    # Throwaway accounts carry the wrt prefix; nothing else is ever removed.
    if [[ -f $dir/.users ]]; then
        while read -r name; do
            [[ $name == wrt* ]] && id "$name" >/dev/null 2>&1 && userdel "$name" 2>/dev/null
        done <"$dir/.users"
    fi
    if [[ -f $dir/.groups ]]; then
        while read -r name; do
            [[ $name == wrt* ]] && getent group "$name" >/dev/null && groupdel "$name" 2>/dev/null
        done <"$dir/.groups"
    fi
    if [[ -f $dir/.dirs ]]; then
        while read -r name; do
            [[ ($name == /tmp/wrt-* || $name == /etc/netns/wrt-*) && -d $name ]] && rm -rf "$name"
        done <"$dir/.dirs"
    fi
    true
}

wrt_cleanup() {
    local rc=$?
    trap - EXIT
    set +eu
    if [[ $rc -ne 0 && $rc -ne 77 && -n ${WRT_TMP:-} ]]; then
        wrt_dump_diagnostics
    fi
    [[ -n ${WRT_TMP:-} ]] && wrt_cleanup_state "$WRT_TMP"
    if [[ ${WRT_OWN_TMP:-0} == 1 && -n ${WRT_TMP:-} ]]; then
        rm -rf "$WRT_TMP"
    fi
    exit "$rc"
}

wrt_on_err() {
    local rc=$? line=$1 cmd=$2
    # In a subshell (background job, command substitution) just pass the status on: the main shell
    # reports the failure where it matters.
    [[ $BASHPID == "$$" ]] || exit "$rc"
    printf '[%6ss] FAIL: command failed (exit %s) at %s: %s\n' "$(wrt_elapsed)" "$rc" "$line" "$cmd" >&2
    exit 1
}

# wrt_begin — call once before a test body: strict mode and traps.
wrt_begin() {
    wrt_need_tmp
    umask 077
    set -eEuo pipefail
    trap wrt_cleanup EXIT
    trap 'log "FAIL: interrupted (SIGINT)"; exit 130' INT
    trap 'log "FAIL: terminated (SIGTERM: the per-test timeout, or run.sh was stopped)"; exit 143' TERM
    trap 'log "FAIL: hung up (SIGHUP)"; exit 129' HUP
    trap 'wrt_on_err "${BASH_SOURCE[0]##*/}:$LINENO" "$BASH_COMMAND"' ERR
}

# ---------------------------------------------------------------------------------------------------
# namespaces and links

# ns NAME — the full namespace name for a short name.
ns() { printf '%s\n' "${WRT_PREFIX}$1"; }

# ns_new NAME — create namespace ${WRT_PREFIX}NAME with lo up; prints nothing.
ns_new() {
    local full
    full="$(ns "$1")"
    [[ -e /run/netns/$full ]] && fail "namespace $full already exists"
    ip netns add "$full"
    WRT_NAMESPACES+=("$full")
    echo "$full" >>"$WRT_TMP/.namespaces"
    ip -n "$full" link set lo up
}

ns_exec() {
    local n=$1
    shift
    ip netns exec "$(ns "$n")" "$@"
}

# ns_sysctl NAME KEY=VALUE... — per-namespace sysctls only (net.*).
ns_sysctl() {
    local n=$1
    shift
    ns_exec "$n" sysctl -q -w "$@" >/dev/null
}

# veth_new NS1 IF1 NS2 IF2 — a veth pair created directly inside the two namespaces (never in the host).
veth_new() {
    ip -n "$(ns "$1")" link add "$2" type veth peer name "$4" netns "$(ns "$3")"
    ip -n "$(ns "$1")" link set "$2" up
    ip -n "$(ns "$3")" link set "$4" up
}

# addr_add NS IFACE CIDR — IPv6 addresses get nodad so they are usable at once.
addr_add() {
    local n=$1 dev=$2 cidr=$3
    if [[ $cidr == *:* ]]; then
        ip -n "$(ns "$n")" -6 addr add "$cidr" dev "$dev" nodad
    else
        ip -n "$(ns "$n")" addr add "$cidr" dev "$dev"
    fi
}

# wait_link_ready NS IFACE — carrier up and no tentative global IPv6 address (bounded: 5 s). Our
# addresses are added with nodad; this only guards against a kernel that still runs DAD on them.
wait_link_ready() {
    local full i
    full="$(ns "$1")"
    for ((i = 0; i < 50; i++)); do
        if [[ $(ip -n "$full" link show "$2") == *LOWER_UP* ]] &&
            [[ -z $(ip -n "$full" -6 addr show dev "$2" scope global tentative) ]]; then
            return 0
        fi
        sleep 0.1
    done
    fail "link $2 in $full not ready after 5 s"
}

# ifname LETTER — an interface name unique to this run and test, at most 15 characters.
ifname() {
    local name="wrt$1${WRT_RUN}n${WRT_TEST_NO}"
    if ((${#name} > 15)); then
        name="wrt$1${WRT_RUN: -4}n${WRT_TEST_NO: -3}"
    fi
    printf '%s\n' "${name:0:15}"
}

# ---------------------------------------------------------------------------------------------------
# keys and wg-quick style configuration files

key_new() {
    wg genkey >"$WRT_TMP/keys/$1.key"
    wg pubkey <"$WRT_TMP/keys/$1.key" >"$WRT_TMP/keys/$1.pub"
}
key_priv() { cat "$WRT_TMP/keys/$1.key"; }
key_pub() { cat "$WRT_TMP/keys/$1.pub"; }
psk_new() { wg genpsk >"$WRT_TMP/keys/$1.psk"; }
psk() { cat "$WRT_TMP/keys/$1.psk"; }

# conf_interface FILE key=NAME [addr=A,B] [port=N] [mtu=N] — start a config file.
conf_interface() {
    local file=$1 kv key="" addr="" port="" mtu=""
    shift
    for kv in "$@"; do
        case $kv in
            key=*) key=${kv#key=} ;;
            addr=*) addr=${kv#addr=} ;;
            port=*) port=${kv#port=} ;;
            mtu=*) mtu=${kv#mtu=} ;;
            *) fail "conf_interface: unknown argument $kv" ;;
        esac
    done
    {
        echo "[Interface]"
        echo "PrivateKey = $(key_priv "$key")"
        [[ -n $addr ]] && echo "Address = ${addr//,/, }"
        [[ -n $port ]] && echo "ListenPort = $port"
        [[ -n $mtu ]] && echo "MTU = $mtu"
        true
    } >"$file"
}

# conf_peer FILE pub=BASE64 allowed=P,Q [endpoint=H:P] [psk=BASE64] [keepalive=N] — append a peer.
conf_peer() {
    local file=$1 kv pub="" allowed="" endpoint="" psk="" keepalive=""
    shift
    for kv in "$@"; do
        case $kv in
            pub=*) pub=${kv#pub=} ;;
            allowed=*) allowed=${kv#allowed=} ;;
            endpoint=*) endpoint=${kv#endpoint=} ;;
            psk=*) psk=${kv#psk=} ;;
            keepalive=*) keepalive=${kv#keepalive=} ;;
            *) fail "conf_peer: unknown argument $kv" ;;
        esac
    done
    {
        echo
        echo "[Peer]"
        echo "PublicKey = $pub"
        [[ -n $psk ]] && echo "PresharedKey = $psk"
        echo "AllowedIPs = ${allowed//,/, }"
        [[ -n $endpoint ]] && echo "Endpoint = $endpoint"
        [[ -n $keepalive ]] && echo "PersistentKeepalive = $keepalive"
        true
    } >>"$file"
}

# conf_values FILE KEY — every value of KEY (case-insensitive), comma lists split, one per line.
conf_values() {
    local file=$1 want=$2 line k v
    while IFS= read -r line || [[ -n $line ]]; do
        line="${line%%#*}"
        [[ $line == *=* ]] || continue
        k="${line%%=*}"
        v="${line#*=}"
        k="${k//[[:space:]]/}"
        [[ ${k,,} == "${want,,}" ]] || continue
        v="${v//[[:space:]]/}"
        tr ',' '\n' <<<"$v" | grep -v '^$' || true
    done <"$file"
}

# conf_strip FILE — what `wg setconf` accepts (wg-quick's `strip`: drop Address, DNS, MTU, ...).
conf_strip() {
    grep -viE '^[[:space:]]*(Address|DNS|MTU|Table|PreUp|PostUp|PreDown|PostDown|SaveConfig)[[:space:]]*=' "$1"
}

# ---------------------------------------------------------------------------------------------------
# peers

need_warren_bin() {
    [[ -e $WARREN_BIN ]] || fail "warren-helper binary not found at $WARREN_BIN (build it: cargo build --release -p warren-helper, or set WARREN_BIN)"
    [[ -x $WARREN_BIN ]] || fail "warren-helper at $WARREN_BIN is not executable"
}

# need_kinds KIND... — fail early (before any namespace exists) if a peer kind cannot run here.
need_kinds() {
    local k
    for k in "$@"; do
        case $k in
            warren) need_warren_bin ;;
            wggo) command -v wireguard-go >/dev/null || fail "wireguard-go not installed (scripts/setup.sh)" ;;
            boringtun | boringtun1) command -v "$BORINGTUN_BIN" >/dev/null || fail "$BORINGTUN_BIN not installed (set BORINGTUN_BIN)" ;;
            wggo25) [[ -x $WGGO25_BIN ]] || fail "the reference wireguard-go is not at $WGGO25_BIN (../shared/anchors beside the checkout; set WARREN_ANCHORS)" ;;
            gotatun) [[ -x $GOTATUN_BIN ]] || fail "the reference gotatun is not at $GOTATUN_BIN (../shared/anchors beside the checkout; set WARREN_ANCHORS)" ;;
            *) fail "unknown peer kind '$k'" ;;
        esac
    done
}

# peer_up KIND NS IFACE CONF — start a WireGuard peer of KIND inside namespace NS, wait until ready.
# For warren: `warren-helper up --foreground CONF --interface IFACE` does everything; ready = the
# UAPI socket.
# For wggo/boringtun: start the daemon, wait for the socket, then do what wg-quick would: wg setconf,
# addresses, MTU (default 1420), link up, a route per AllowedIPs prefix not already covered.
peer_up() {
    local kind=$1 n=$2 iface=$3 conf=$4 full pid sock logf
    full="$(ns "$n")"
    sock="$WG_RUN_DIR/$iface.sock"
    logf="$WRT_TMP/$iface.$kind.log"
    WRT_IFACES+=("$iface")
    echo "$iface" >>"$WRT_TMP/.ifaces"
    # Names are unique to this run, so a socket already there is a leftover of a killed process.
    rm -f "$sock"
    mkdir -p "$WG_RUN_DIR"
    case $kind in
        warren)
            need_warren_bin
            log "starting warren peer in $full: warren-helper up --foreground $(basename "$conf") --interface $iface"
            RUST_LOG="${RUST_LOG:-info}" env --default-signal=INT,QUIT \
                ip netns exec "$full" "$WARREN_BIN" up --foreground "$conf" --interface "$iface" >"$logf" 2>&1 &
            pid=$!
            ;;
        wggo)
            need_kinds wggo
            log "starting wireguard-go peer in $full: wireguard-go -f $iface"
            LOG_LEVEL="${WGGO_LOG_LEVEL:-verbose}" WG_PROCESS_FOREGROUND=1 env --default-signal=INT,QUIT \
                ip netns exec "$full" wireguard-go -f "$iface" >"$logf" 2>&1 &
            pid=$!
            ;;
        wggo25)
            need_kinds wggo25
            log "starting wireguard-go 0.0.20250522 peer in $full: $(basename "$WGGO25_BIN") -f $iface"
            LOG_LEVEL="${WGGO_LOG_LEVEL:-verbose}" WG_PROCESS_FOREGROUND=1 WG_I_PREFER_BUGGY_USERSPACE_TO_POLISHED_KMOD=1 \
                env --default-signal=INT,QUIT ip netns exec "$full" "$WGGO25_BIN" -f "$iface" >"$logf" 2>&1 &
            pid=$!
            ;;
        gotatun)
            need_kinds gotatun
            log "starting gotatun peer in $full: $(basename "$GOTATUN_BIN") -f --disable-drop-privileges $iface"
            WG_LOG_LEVEL=info env --default-signal=INT,QUIT \
                ip netns exec "$full" "$GOTATUN_BIN" -f --disable-drop-privileges "$iface" >"$logf" 2>&1 &
            pid=$!
            ;;
        boringtun | boringtun1)
            need_kinds "$kind"
            local threads=()
            [[ $kind == boringtun1 ]] && threads=(--threads 1)
            log "starting boringtun peer in $full: $BORINGTUN_BIN -f ${threads[*]} $iface"
            WG_LOG_LEVEL=info env --default-signal=INT,QUIT \
                ip netns exec "$full" "$BORINGTUN_BIN" --foreground --disable-drop-privileges "${threads[@]}" "$iface" >"$logf" 2>&1 &
            pid=$!
            ;;
        *) fail "peer_up: unknown peer kind '$kind'" ;;
    esac
    wrt_record_pid "$pid"
    WRT_PEER_PID[$iface]=$pid
    WRT_PEER_NS[$iface]=$n
    WRT_PEER_KIND[$iface]=$kind
    WRT_PEER_LOG[$iface]=$logf
    wait_ready "$iface" 15
    if [[ $kind != warren ]]; then
        wg_quick_like_up "$n" "$iface" "$conf"
    fi
    log "$kind peer $iface up (pid $pid)"
}

# wait_ready IFACE SECS — the UAPI socket exists and answers, while the process stays alive.
wait_ready() {
    local iface=$1 secs=$2 pid i
    pid=${WRT_PEER_PID[$iface]}
    for ((i = 0; i < secs * 10; i++)); do
        if [[ -S $WG_RUN_DIR/$iface.sock ]] && timeout 5 wg show "$iface" >/dev/null 2>&1; then
            return 0
        fi
        if ! kill -0 "$pid" 2>/dev/null; then
            local rc=0
            wait "$pid" || rc=$?
            fail "${WRT_PEER_KIND[$iface]} peer $iface exited (status $rc) before its UAPI socket $WG_RUN_DIR/$iface.sock was ready; its output:
$(tail -n 30 "${WRT_PEER_LOG[$iface]}")"
        fi
        sleep 0.1
    done
    fail "${WRT_PEER_KIND[$iface]} peer $iface: no answering UAPI socket $WG_RUN_DIR/$iface.sock after ${secs}s"
}

wg_quick_like_up() {
    local n=$1 iface=$2 conf=$3 full a p mtu fam stripped
    full="$(ns "$n")"
    stripped="$WRT_TMP/$iface.setconf"
    conf_strip "$conf" >"$stripped"
    ns_exec "$n" wg setconf "$iface" "$stripped"
    while read -r a; do
        addr_add "$n" "$iface" "$a"
    done < <(conf_values "$conf" Address)
    mtu="$(conf_values "$conf" MTU | head -n 1)"
    ip -n "$full" link set dev "$iface" mtu "${mtu:-1420}" up
    while read -r p; do
        fam=-4
        [[ $p == *:* ]] && fam=-6
        # Like wg-quick: skip prefixes a route on this interface already covers (e.g. the /24).
        if [[ -z $(ip -n "$full" "$fam" route show dev "$iface" match "$p" 2>/dev/null) ]]; then
            ip -n "$full" "$fam" route add "$p" dev "$iface"
        fi
    done < <(conf_values "$conf" AllowedIPs)
}

peer_pid() { printf '%s\n' "${WRT_PEER_PID[$1]}"; }

# note_log NAME KIND FILE — show FILE's tail in the diagnostics if the test fails.
note_log() {
    WRT_PEER_KIND[$1]=$2
    WRT_PEER_LOG[$1]=$3
}

# uapi_sockets — the sockets in /var/run/wireguard, sorted, one per line (none if it is absent).
uapi_sockets() {
    [[ -d $WG_RUN_DIR ]] || return 0 # a bare machine: nobody made it yet
    find "$WG_RUN_DIR" -maxdepth 1 -name '*.sock' -printf '%f\n' 2>/dev/null | sort
}

# peer_stop IFACE [SIGNAL] [SECS] — signal the peer, wait for it to exit; sets PEER_EXIT_STATUS.
# Returns 1 if it is still running after SECS (default 10) seconds (it is then left for cleanup).
peer_stop() {
    local iface=$1 sig=${2:-TERM} secs=${3:-10} pid i
    pid=${WRT_PEER_PID[$iface]}
    PEER_EXIT_STATUS=""
    kill -s "$sig" "$pid" 2>/dev/null || true
    for ((i = 0; i < secs * 10; i++)); do
        if ! kill -0 "$pid" 2>/dev/null; then
            PEER_EXIT_STATUS=0
            wait "$pid" || PEER_EXIT_STATUS=$?
            return 0
        fi
        sleep 0.1
    done
    return 1
}

# ---------------------------------------------------------------------------------------------------
# checks

# wait_until SECS DESCRIPTION CMD... — poll CMD every 0.2 s; fail with DESCRIPTION after SECS.
wait_until() {
    local secs=$1 what=$2 i
    shift 2
    for ((i = 0; i < secs * 5; i++)); do
        "$@" && return 0
        sleep 0.2
    done
    fail "timed out after ${secs}s waiting for: $what"
}

# wg_show IFACE [FIELD] — `wg show IFACE FIELD` run in the peer's namespace (bounded: 5 s).
wg_show() {
    local iface=$1
    shift
    timeout 5 ip netns exec "$(ns "${WRT_PEER_NS[$iface]}")" wg show "$iface" "$@"
}

# latest_handshake IFACE — the newest latest-handshake timestamp over its peers (0 = never).
latest_handshake() {
    local out
    out="$(wg_show "$1" latest-handshakes)" || { echo 0; return 0; }
    awk 'BEGIN { m = 0 } { if ($2 + 0 > m) m = $2 + 0 } END { print m }' <<<"$out"
}

# handshake_of IFACE PUBKEY — the latest-handshake timestamp of one peer.
handshake_of() {
    wg_show "$1" latest-handshakes | awk -v k="$2" '$1 == k { print $2 + 0; f = 1 } END { if (!f) print 0 }'
}

has_handshake() { [[ $(latest_handshake "$1") -gt 0 ]]; }

wait_handshake() {
    wait_until "${2:-10}" "a completed handshake on $1 (wg show $1 latest-handshakes non-zero)" has_handshake "$1"
}

# peer_endpoint IFACE — the endpoint(s) `wg show IFACE endpoints` reports.
peer_endpoint() {
    wg_show "$1" endpoints | awk '{ print $2 }'
}

# rx_bytes IFACE — total bytes received from all peers.
rx_bytes() {
    wg_show "$1" transfer | awk '{ s += $2 } END { print s + 0 }'
}

# ping_ok NS ADDR [COUNT] — at least one reply from ADDR (bounded: COUNT probes, 2 s wait each).
ping_ok() {
    local n=$1 addr=$2 count=${3:-3} out
    if out="$(ns_exec "$n" ping -n -c "$count" -i 0.5 -W 2 -w $((count + 5)) "$addr" 2>&1)"; then
        log "ping $n -> $addr: $(grep -E 'packets transmitted' <<<"$out")"
        return 0
    fi
    log "ping $n -> $addr FAILED:"
    printf '%s\n' "$out" >&2
    return 1
}

expect_ping() { ping_ok "$@" || fail "no ping reply: $1 -> $2"; }

# expect_no_ping NS ADDR — no reply at all (bounded: 3 probes).
expect_no_ping() {
    local out
    if out="$(ns_exec "$1" ping -n -c 3 -i 0.5 -W 1 -w 4 "$2" 2>&1)"; then
        printf '%s\n' "$out" >&2
        fail "ping $1 -> $2 got replies but should not have"
    fi
    log "ping $1 -> $2 fails as expected"
}

# transfer_check FROM_NS TO_NS TO_ADDR SIZE_MIB [PORT] — send SIZE_MIB random bytes over TCP with socat
# (bounded by timeouts) and compare SHA-256 on both ends.
transfer_check() {
    local from=$1 to=$2 addr=$3 mib=$4 port=${5:-5001} src dst listen connect rpid i t0 t1 rc
    command -v socat >/dev/null || fail "socat not installed (scripts/setup.sh)"
    src="$WRT_TMP/xfer-$from-$to.src"
    dst="$WRT_TMP/xfer-$from-$to.dst"
    head -c "${mib}M" /dev/urandom >"$src"
    if [[ $addr == *:* ]]; then
        listen="TCP6-LISTEN:$port,bind=[$addr],reuseaddr"
        connect="TCP6:[$addr]:$port,connect-timeout=10"
    else
        listen="TCP4-LISTEN:$port,bind=$addr,reuseaddr"
        connect="TCP4:$addr:$port,connect-timeout=10"
    fi
    timeout 150 ip netns exec "$(ns "$to")" socat -u "$listen" "CREATE:$dst" 2>"$WRT_TMP/socat-rx.log" &
    rpid=$!
    wrt_record_pid "$rpid"
    wait_until 10 "socat listening on $addr:$port in $to" \
        bash -c "[[ -n \$(ip netns exec '$(ns "$to")' ss -Hltn 'sport = :$port') ]]"
    t0=$(date +%s%N)
    rc=0
    timeout 120 ip netns exec "$(ns "$from")" socat -u "OPEN:$src,rdonly" "$connect" 2>"$WRT_TMP/socat-tx.log" || rc=$?
    if [[ $rc -ne 0 ]]; then
        cat "$WRT_TMP/socat-tx.log" >&2
        fail "sending ${mib} MiB $from -> $addr:$port failed (socat/timeout status $rc)"
    fi
    for ((i = 0; i < 300; i++)); do
        kill -0 "$rpid" 2>/dev/null || break
        sleep 0.1
    done
    kill -0 "$rpid" 2>/dev/null && fail "receiver in $to still running 30 s after the sender finished"
    rc=0
    wait "$rpid" || rc=$?
    [[ $rc -eq 0 ]] || { cat "$WRT_TMP/socat-rx.log" >&2; fail "receiver in $to exited with status $rc"; }
    t1=$(date +%s%N)
    local hs hd
    hs="$(sha256sum <"$src" | cut -d' ' -f1)"
    hd="$(sha256sum <"$dst" | cut -d' ' -f1)"
    if [[ $hs != "$hd" ]]; then
        fail "SHA-256 mismatch for ${mib} MiB $from -> $to ($addr): sent $hs ($(stat -c %s "$src") B), received $hd ($(stat -c %s "$dst") B)"
    fi
    log "transfer ${mib} MiB $from -> $to ($addr) ok, sha256 $hs, $(awk -v b=$((mib * 1048576)) -v ns=$((t1 - t0)) 'BEGIN { printf "%.1f MiB/s", b / 1048576 / (ns / 1e9) }')"
    rm -f "$src" "$dst"
}

# ---------------------------------------------------------------------------------------------------
# topologies

# underlay_pair [v6] — namespaces a and b joined by veth va<->vb with the IPv4 underlay addresses
# (and the IPv6 ones with v6), both ends up and ready.
underlay_pair() {
    ns_new a
    ns_new b
    veth_new a va b vb
    addr_add a va "$UNDER4_A/24"
    addr_add b vb "$UNDER4_B/24"
    if [[ ${1:-} == v6 ]]; then
        addr_add a va "$UNDER6_A/64"
        addr_add b vb "$UNDER6_B/64"
    fi
    wait_link_ready a va
    wait_link_ready b vb
}

# pair_setup INIT_KIND RESP_KIND [psk=yes|no|mismatch] [underlay=4|6] [keepalive=N] [keys=ok|mismatch]
# Two namespaces a and b joined by veth va<->vb; A (kind INIT_KIND) is the initiator: its peer entry for
# B has an Endpoint; B (RESP_KIND) has none for A and can only answer. Sets IF_A, IF_B.
pair_setup() {
    local init=$1 resp=$2 kv psk=no underlay=4 keepalive="" keys=ok
    shift 2
    for kv in "$@"; do
        case $kv in
            psk=*) psk=${kv#psk=} ;;
            underlay=*) underlay=${kv#underlay=} ;;
            keepalive=*) keepalive=${kv#keepalive=} ;;
            keys=*) keys=${kv#keys=} ;;
            *) fail "pair_setup: unknown argument $kv" ;;
        esac
    done
    need_kinds "$init" "$resp"
    underlay_pair v6

    key_new a
    key_new b
    local pub_b_for_a psk_a="" psk_b="" endpoint
    pub_b_for_a="$(key_pub b)"
    if [[ $keys == mismatch ]]; then
        key_new stranger
        pub_b_for_a="$(key_pub stranger)"
    fi
    case $psk in
        yes) psk_new ab; psk_a="$(psk ab)"; psk_b="$psk_a" ;;
        mismatch) psk_new ab1; psk_new ab2; psk_a="$(psk ab1)"; psk_b="$(psk ab2)" ;;
        no) ;;
        *) fail "pair_setup: psk=$psk?" ;;
    esac
    if [[ $underlay == 6 ]]; then
        endpoint="[$UNDER6_B]:$WG_PORT"
    else
        endpoint="$UNDER4_B:$WG_PORT"
    fi
    IF_A="$(ifname A)"
    IF_B="$(ifname B)"
    CONF_A="$WRT_TMP/$IF_A.conf"
    CONF_B="$WRT_TMP/$IF_B.conf"
    conf_interface "$CONF_A" key=a addr="$TUN4_A/24,$TUN6_A/64" port="$WG_PORT"
    conf_peer "$CONF_A" pub="$pub_b_for_a" allowed="$TUN4_B/32,$TUN6_B/128" endpoint="$endpoint" \
        ${psk_a:+psk="$psk_a"} ${keepalive:+keepalive="$keepalive"}
    conf_interface "$CONF_B" key=b addr="$TUN4_B/24,$TUN6_B/64" port="$WG_PORT"
    conf_peer "$CONF_B" pub="$(key_pub a)" allowed="$TUN4_A/32,$TUN6_A/128" ${psk_b:+psk="$psk_b"}
    chmod 600 "$CONF_A" "$CONF_B"

    peer_up "$resp" b "$IF_B" "$CONF_B"
    peer_up "$init" a "$IF_A" "$CONF_A"
}

# The peer-kind pairs every pair test runs for, as INIT-RESP. wggo-wggo is the harness baseline.
WRT_ALL_PAIRS="wggo-wggo warren-wggo wggo-warren warren-warren"
WRT_PAIRS="${WRT_PAIRS:-$WRT_ALL_PAIRS}"
