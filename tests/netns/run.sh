#!/usr/bin/env bash
# tests/netns/run.sh — Warren's root end-to-end tests in network namespaces.
#
# Usage: sudo tests/netns/run.sh [NAME|GROUP|GLOB ...]    run all tests, or those matching
#        tests/netns/run.sh --list [NAME|GROUP|GLOB ...]  list test names
#   e.g. sudo tests/netns/run.sh basic                    the group "basic"
#        sudo tests/netns/run.sh 'basic/wggo-*' hub/warren
# Environment:
#   WARREN_BIN=path     the warren-helper binary (default target/release/warren-helper)
#   WRT_PAIRS="..."     peer pairs INIT-RESP to run pair tests for (default: all of
#                       "wggo-wggo warren-wggo wggo-warren warren-warren")
#   WRT_VERBOSE=1       print every test's log, not only failing ones
#   WRT_KEEP=1          keep per-test temp dirs (logs, configs) under /tmp/wrt-netns.*
#   WRT_TIMEOUT=SECS    default per-test timeout (120; some tests register longer ones)
#
# Each test runs as its own process under `timeout`, in fresh namespaces wrt-<this pid>-<test no>-*.
# Its EXIT trap removes what it made; run.sh then undoes anything recorded but still left (if the
# test was killed). The last line printed is exactly "N passed, N failed" (", N skipped" if any).
# Exit status: 0 if none failed.
set -uo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# Group files, in the order they run; any other test-*.sh found is appended.
GROUP_ORDER=(cli lifecycle basic underlay6 keepalive transfer interop roaming replysrc mismatch hub demo)

declare -a T_NAMES=() T_FUNCS=() T_ARGS=() T_TIMEOUTS=()

# register [-t SECS] NAME FUNC [ARG...] — called by the group files.
register() {
    local t=${WRT_TIMEOUT:-120}
    if [[ $1 == -t ]]; then
        t=$2
        shift 2
    fi
    T_NAMES+=("$1")
    T_FUNCS+=("$2")
    shift 2
    T_ARGS+=("$*")
    T_TIMEOUTS+=("$t")
}

load_groups() {
    local g f
    local -a files=()
    for g in "${GROUP_ORDER[@]}"; do
        [[ -f $HERE/test-$g.sh ]] && files+=("$HERE/test-$g.sh")
    done
    for f in "$HERE"/test-*.sh; do
        [[ " ${files[*]} " == *" $f "* ]] || files+=("$f")
    done
    for f in "${files[@]}"; do
        # shellcheck source=/dev/null
        source "$f"
    done
}

# shellcheck source=tests/netns/lib.sh
source "$HERE/lib.sh"
load_groups

# --- child mode: run one test (called by the parent under `timeout`) ---------------------------------
if [[ ${1:-} == --one ]]; then
    name=$2
    for i in "${!T_NAMES[@]}"; do
        if [[ ${T_NAMES[$i]} == "$name" ]]; then
            wrt_begin
            log "test $name (#$WRT_TEST_NO): ${T_FUNCS[$i]} ${T_ARGS[$i]}"
            # shellcheck disable=SC2086  # registered args never contain spaces
            "${T_FUNCS[$i]}" ${T_ARGS[$i]}
            log "test $name passed"
            exit 0
        fi
    done
    echo "no test named '$name'" >&2
    exit 2
fi

# --- parent mode --------------------------------------------------------------------------------------
matches() {
    local name=$1 pat
    shift
    [[ $# -eq 0 ]] && return 0
    for pat in "$@"; do
        # shellcheck disable=SC2053  # glob match on purpose
        if [[ $name == "$pat" || $name == "$pat"/* || $name == $pat ]]; then
            return 0
        fi
    done
    return 1
}

LIST=0
if [[ ${1:-} == --list ]]; then
    LIST=1
    shift
elif [[ ${1:-} == -h || ${1:-} == --help ]]; then
    sed -n '2,/^set -uo/p' "$0" | sed -e '$d' -e 's/^# \{0,1\}//'
    exit 0
fi

SELECTED=()
for i in "${!T_NAMES[@]}"; do
    matches "${T_NAMES[$i]}" "$@" && SELECTED+=("$i")
done
if [[ $LIST == 1 ]]; then
    for i in "${SELECTED[@]}"; do
        printf '%-36s %4ss  %s %s\n' "${T_NAMES[$i]}" "${T_TIMEOUTS[$i]}" "${T_FUNCS[$i]}" "${T_ARGS[$i]}"
    done
    exit 0
fi
if [[ ${#SELECTED[@]} -eq 0 ]]; then
    echo "run.sh: no test matches: $*" >&2
    echo "0 passed, 1 failed"
    exit 1
fi

banner_fail_all() {
    echo "!! $*" >&2
    echo "${#SELECTED[@]} test(s) not run."
    echo "0 passed, ${#SELECTED[@]} failed"
    exit 1
}

# Preconditions: fail loudly, never skip silently.
if [[ $EUID -ne 0 ]]; then
    banner_fail_all "tests/netns needs root (network namespaces, veth, TUN): run with sudo"
fi
missing=()
for c in ip wg wireguard-go ping socat ss nsenter sha256sum timeout tac awk head stat ps comm; do
    command -v "$c" >/dev/null 2>&1 || missing+=("$c")
done
env --default-signal=INT true 2>/dev/null || missing+=("env --default-signal (coreutils >= 8.31)")
[[ -c /dev/net/tun ]] || missing+=("/dev/net/tun")
if [[ ${#missing[@]} -gt 0 ]]; then
    banner_fail_all "missing tools: ${missing[*]} — run scripts/setup.sh"
fi

echo "tests/netns: ${#SELECTED[@]} test(s), run id $$, warren binary: $WARREN_BIN$([[ -x $WARREN_BIN ]] || echo ' (MISSING: warren tests will fail)')"

PASSED=0 FAILED=0 SKIPPED=0
FAILED_NAMES=() SKIPPED_NAMES=()
CUR_PID="" CUR_TMP="" CUR_NO=0

cleanup_after_test() {
    local tmp=$1 no=$2 n
    [[ -n $tmp && -d $tmp ]] && wrt_cleanup_state "$tmp"
    # Anything with this test's prefix still there (e.g. created just before a kill) goes too.
    for n in $(ip netns list 2>/dev/null | awk '{ print $1 }'); do
        if [[ $n == "wrt-$$-$no-"* ]]; then
            for p in $(ip netns pids "$n" 2>/dev/null); do kill_pid "$p"; done
            ip netns del "$n" 2>/dev/null || true
        fi
    done
}

on_parent_signal() {
    echo
    echo "!! interrupted: stopping the running test and cleaning up" >&2
    if [[ -n $CUR_PID ]]; then
        kill -TERM "$CUR_PID" 2>/dev/null
        wait "$CUR_PID" 2>/dev/null
    fi
    cleanup_after_test "$CUR_TMP" "$CUR_NO"
    [[ -n $CUR_TMP && ${WRT_KEEP:-0} != 1 ]] && rm -rf "$CUR_TMP"
    echo "$PASSED passed, $((FAILED + 1)) failed"
    exit 130
}
trap on_parent_signal INT TERM HUP

total=${#SELECTED[@]}
k=0
for i in "${SELECTED[@]}"; do
    k=$((k + 1))
    name=${T_NAMES[$i]}
    CUR_NO=$k
    CUR_TMP="$(mktemp -d "/tmp/wrt-netns.$$-$k.XXXXXX")"
    start=$SECONDS
    printf '[%2d/%d] %-40s ' "$k" "$total" "$name"
    WRT_RUN=$$ WRT_TEST_NO=$k WRT_TMP=$CUR_TMP \
        timeout -k 10 "${T_TIMEOUTS[$i]}" bash "$HERE/run.sh" --one "$name" >"$CUR_TMP/test.log" 2>&1 </dev/null &
    CUR_PID=$!
    rc=0
    wait "$CUR_PID" || rc=$?
    CUR_PID=""
    cleanup_after_test "$CUR_TMP" "$k"
    dur=$((SECONDS - start))
    show_log=${WRT_VERBOSE:-0}
    case $rc in
        0)
            PASSED=$((PASSED + 1))
            echo "PASS (${dur}s)"
            ;;
        77)
            SKIPPED=$((SKIPPED + 1))
            SKIPPED_NAMES+=("$name")
            echo "SKIP (${dur}s): $(grep -m1 'SKIP:' "$CUR_TMP/test.log" | sed 's/.*SKIP: //')"
            ;;
        124 | 137)
            FAILED=$((FAILED + 1))
            FAILED_NAMES+=("$name")
            if [[ $rc == 124 ]]; then echo "FAIL (${dur}s): timed out after ${T_TIMEOUTS[$i]}s"; else echo "FAIL (${dur}s): killed (SIGKILL; after a timeout it did not stop within 10 s)"; fi
            show_log=1
            ;;
        *)
            FAILED=$((FAILED + 1))
            FAILED_NAMES+=("$name")
            echo "FAIL (${dur}s): $(grep -m1 'FAIL:' "$CUR_TMP/test.log" | sed 's/.*FAIL: //' | cut -c1-160)"
            show_log=1
            ;;
    esac
    if [[ $show_log == 1 ]]; then
        sed 's/^/    | /' "$CUR_TMP/test.log"
    fi
    if [[ ${WRT_KEEP:-0} == 1 ]]; then
        echo "    (kept $CUR_TMP)"
    else
        rm -rf "$CUR_TMP"
    fi
    CUR_TMP=""
done

echo
if [[ ${#FAILED_NAMES[@]} -gt 0 ]]; then
    echo "failed: ${FAILED_NAMES[*]}"
fi
if [[ ${#SKIPPED_NAMES[@]} -gt 0 ]]; then
    echo "skipped: ${SKIPPED_NAMES[*]}"
fi
if [[ $SKIPPED -gt 0 ]]; then
    echo "$PASSED passed, $FAILED failed, $SKIPPED skipped"
else
    echo "$PASSED passed, $FAILED failed"
fi
[[ $FAILED -eq 0 ]]
