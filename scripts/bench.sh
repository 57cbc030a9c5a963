#!/usr/bin/env bash
# scripts/bench.sh — Warren's data-plane benchmark, by hand (not in CI): `sudo scripts/bench.sh`.
#
# Two network namespaces joined by a veth (tests/netns/lib.sh topology). Configurations:
#   bare       iperf3 straight over the veth (198.18.0.1 -> 198.18.0.2): the ceiling
#   wggo       wireguard-go <-> wireguard-go (the reference)
#   boringtun1 boringtun-cli --threads 1 <-> the same (boringtun's fastest setting here)
#   boringtun  boringtun-cli with its default 4 threads
#   warren     warren-helper up <-> warren-helper up (target/release/warren-helper, or WARREN_BIN)
# run interleaved (bare, wggo, boringtun1, boringtun, warren, bare, ...) RUNS times, each run on
# fresh namespaces and fresh tunnel processes. boringtun-cli is BORINGTUN_BIN, else the one on
# PATH, else `cargo install boringtun-cli --locked` into target/tools (once, a few minutes). Per run:
#   tcp1  iperf3 TCP, 1 stream, BENCH_TIME s       tcp4  iperf3 TCP, 4 streams (-P 4)
#   udp   iperf3 UDP -b 0 -l 1392 (fits MTU 1420): received rate and loss
#   ping  ping -c 20 -i 0.2: average RTT
#   cpu   CPU% of the tunnel processes (both peers, summed) over the iperf3/ping part, from
#         /proc/PID/stat utime+stime deltas (100% = one core)
#   idle  RSS of the larger tunnel process once the tunnel is up, before any load (VmHWM then)
#   rss   peak RSS of the larger tunnel process over the whole run (VmHWM at the end)
# Prints a table of medians (and the spread, min-max) per configuration and the ratios of every
# configuration to each reference (wggo, boringtun1, boringtun); raw samples go to
# bench-results/bench-<timestamp>.tsv (git-ignored).
#
# Usage: sudo scripts/bench.sh [--runs N] [--time SECS] [--configs "bare wggo warren"]
# Environment: RUNS (3), BENCH_TIME (10), BENCH_CONFIGS, WARREN_BIN, BORINGTUN_BIN.
# Recorded results and the machine they ran on: README.md, "Performance".
# The machine should be otherwise idle: other load skews every number.
set -uo pipefail

SCRIPTS_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$SCRIPTS_DIR/.." && pwd)"
LIB="$ROOT/tests/netns/lib.sh"

# --- one configuration, one run (a child process, so lib.sh's EXIT trap cleans everything up) -------
if [[ ${1:-} == --one ]]; then
    config=$2 run=$3 out=$4 secs=$5
    # shellcheck source=tests/netns/lib.sh
    source "$LIB"
    wrt_begin

    # sum_ticks PID... — utime + stime (clock ticks) summed over the processes.
    sum_ticks() {
        local p stat total=0
        for p in "$@"; do
            stat="$(cat "/proc/$p/stat")" || fail "tunnel process $p is gone"
            stat="${stat##*) }"
            # Fields after "(comm) ": state is 1st, utime 12th, stime 13th.
            # shellcheck disable=SC2086
            set -- $stat
            total=$((total + ${12} + ${13}))
        done
        echo "$total"
    }
    peak_rss_kib() {
        local p v max=0
        for p in "$@"; do
            v="$(awk '/^VmHWM:/ { print $2 }' "/proc/$p/status")" || fail "tunnel process $p is gone"
            ((v > max)) && max=$v
        done
        echo "$max"
    }
    iperf() {
        local json=$1
        shift
        timeout $((secs + 30)) ip netns exec "$(ns a)" iperf3 -c "$target" -p 5201 -t "$secs" -J "$@" >"$json" ||
            fail "iperf3 $* failed: $(jq -r '.error // empty' "$json" 2>/dev/null)"
    }

    pids=()
    idle_rss=NA
    case $config in
        bare)
            underlay_pair
            target=$UNDER4_B
            ;;
        wggo | warren | boringtun | boringtun1)
            WGGO_LOG_LEVEL=error
            RUST_LOG="${RUST_LOG:-warn}"
            pair_setup "$config" "$config"
            target=$TUN4_B
            expect_ping a "$target"
            pids=("$(peer_pid "$IF_A")" "$(peer_pid "$IF_B")")
            sleep 1
            idle_rss=$(awk -v k="$(peak_rss_kib "${pids[@]}")" 'BEGIN { printf "%.1f", k / 1024 }')
            ;;
        *) fail "unknown configuration '$config'" ;;
    esac
    ip netns exec "$(ns b)" iperf3 -s -B "$target" -p 5201 >"$WRT_TMP/iperf3-server.log" 2>&1 &
    wrt_record_pid $!
    wait_until 10 "iperf3 server listening" \
        bash -c "[[ -n \$(ip netns exec '$(ns b)' ss -Hltn 'sport = :5201') ]]"

    clk=$(getconf CLK_TCK)
    ticks0=0
    ((${#pids[@]})) && ticks0=$(sum_ticks "${pids[@]}")
    t0=$(date +%s%N)
    log "$config run $run: tcp1"
    iperf "$WRT_TMP/tcp1.json"
    log "$config run $run: tcp4"
    iperf "$WRT_TMP/tcp4.json" -P 4
    log "$config run $run: udp"
    iperf "$WRT_TMP/udp.json" -u -b 0 -l 1392
    log "$config run $run: ping"
    ping_out="$(ip netns exec "$(ns a)" ping -n -q -c 20 -i 0.2 -W 2 "$target")" || fail "ping failed: $ping_out"
    t1=$(date +%s%N)
    cpu=NA rss=NA
    if ((${#pids[@]})); then
        ticks1=$(sum_ticks "${pids[@]}")
        cpu=$(awk -v d=$((ticks1 - ticks0)) -v hz="$clk" -v ns=$((t1 - t0)) 'BEGIN { printf "%.1f", d / hz / (ns / 1e9) * 100 }')
        rss=$(awk -v k="$(peak_rss_kib "${pids[@]}")" 'BEGIN { printf "%.1f", k / 1024 }')
    fi
    mbit() { jq -r "$1" "$2" | awk '{ printf "%.1f", $1 / 1e6 }'; }
    tcp1=$(mbit '.end.sum_received.bits_per_second' "$WRT_TMP/tcp1.json")
    tcp4=$(mbit '.end.sum_received.bits_per_second' "$WRT_TMP/tcp4.json")
    # UDP: the receiver's rate; iperf3 3.12 has .end.sum (sender view + loss), newer ones sum_received.
    udp=$(mbit '.end.sum_received.bits_per_second // (.end.sum.bits_per_second * (100 - .end.sum.lost_percent) / 100)' "$WRT_TMP/udp.json")
    loss=$(jq -r '.end.sum.lost_percent // .end.sum_received.lost_percent // "NA"' "$WRT_TMP/udp.json" | awk '{ printf "%.1f", $1 }')
    ping_avg=$(awk -F'/' '/^rtt|^round-trip/ { printf "%.3f", $5 }' <<<"$ping_out")
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$config" "$run" "$tcp1" "$tcp4" "$udp" "$loss" "${ping_avg:-NA}" "$cpu" "$idle_rss" "$rss" >>"$out"
    log "$config run $run: tcp1 $tcp1 tcp4 $tcp4 udp $udp Mbit/s (loss $loss%), ping $ping_avg ms, cpu $cpu%, rss idle $idle_rss / peak $rss MiB"
    exit 0
fi

# --- driver -------------------------------------------------------------------------------------------
RUNS="${RUNS:-3}"
BENCH_TIME="${BENCH_TIME:-10}"
WARREN_BIN="${WARREN_BIN:-$ROOT/target/release/warren-helper}"
BENCH_CONFIGS="${BENCH_CONFIGS:-bare wggo boringtun1 boringtun warren}"
while [[ $# -gt 0 ]]; do
    case $1 in
        --runs) RUNS=$2; shift 2 ;;
        --time) BENCH_TIME=$2; shift 2 ;;
        --configs) BENCH_CONFIGS=$2; shift 2 ;;
        -h | --help) sed -n '2,/^set -uo/p' "$0" | sed -e '$d' -e 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "bench.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
    esac
done
read -r -a CONFIGS <<<"$BENCH_CONFIGS"

[[ $EUID -eq 0 ]] || { echo "bench.sh needs root (network namespaces, TUN): sudo $0" >&2; exit 1; }
# boringtun-cli: BORINGTUN_BIN, else PATH, else our own copy (installed on first use).
if [[ " ${CONFIGS[*]} " == *" boringtun"* && -z ${BORINGTUN_BIN:-} ]]; then
    BORINGTUN_BIN="$(command -v boringtun-cli || true)"
    if [[ -z $BORINGTUN_BIN ]]; then
        BORINGTUN_BIN="$ROOT/target/tools/bin/boringtun-cli"
        if [[ ! -x $BORINGTUN_BIN ]]; then
            # shellcheck source=scripts/common.sh
            source "$SCRIPTS_DIR/common.sh"
            warren_find_cargo
            echo "bench: installing boringtun-cli into target/tools (cargo install --locked; once)" >&2
            as_builder cargo install boringtun-cli --locked --root "$ROOT/target/tools" >&2 ||
                { echo "bench.sh: cargo install boringtun-cli failed" >&2; exit 1; }
        fi
    fi
fi
BORINGTUN_BIN="${BORINGTUN_BIN:-boringtun-cli}"
export WARREN_BIN BORINGTUN_BIN
for c in ip wg iperf3 jq ping ss awk; do
    command -v "$c" >/dev/null || { echo "bench.sh: $c missing — run scripts/setup.sh" >&2; exit 1; }
done
for c in "${CONFIGS[@]}"; do
    case $c in
        wggo) command -v wireguard-go >/dev/null || { echo "bench.sh: wireguard-go missing — run scripts/setup.sh" >&2; exit 1; } ;;
        warren) [[ -x $WARREN_BIN ]] || { echo "bench.sh: $WARREN_BIN missing — cargo build --release -p warren-helper" >&2; exit 1; } ;;
        boringtun | boringtun1) command -v "$BORINGTUN_BIN" >/dev/null || { echo "bench.sh: $BORINGTUN_BIN missing (set BORINGTUN_BIN)" >&2; exit 1; } ;;
        bare) ;;
        *) echo "bench.sh: unknown configuration '$c' (bare wggo boringtun1 boringtun warren)" >&2; exit 1 ;;
    esac
done

RESULTS_DIR="$ROOT/bench-results"
mkdir -p "$RESULTS_DIR"
STAMP="$(date +%Y%m%d-%H%M%S)"
TSV="$RESULTS_DIR/bench-$STAMP.tsv"
printf 'config\trun\ttcp1_mbit\ttcp4_mbit\tudp_mbit\tudp_loss_pct\tping_ms\tcpu_pct\tidle_rss_mib\trss_mib\n' >"$TSV"
LOGDIR="$(mktemp -d /tmp/warren-bench.XXXXXX)"
CUR_PID=""
on_signal() {
    echo "!! interrupted: stopping the current run (it cleans up after itself)" >&2
    [[ -n $CUR_PID ]] && kill -TERM "$CUR_PID" 2>/dev/null && wait "$CUR_PID" 2>/dev/null
    exit 130
}
trap on_signal INT TERM HUP

echo "bench: configs ${CONFIGS[*]}, $RUNS run(s), ${BENCH_TIME}s per iperf3 test; $(nproc) CPUs; load $(cut -d' ' -f1-3 /proc/loadavg)"
echo "bench: warren $WARREN_BIN; wireguard-go $(wireguard-go --version 2>/dev/null | head -n 1 | awk '{ print $2 }'); $("$BORINGTUN_BIN" --version 2>/dev/null || echo "no boringtun-cli"); raw samples -> $TSV"
echo "bench: $(lscpu 2>/dev/null | awk -F': *' '/^Model name/ { print $2; exit }'); kernel $(uname -r)"
n=0
for ((r = 1; r <= RUNS; r++)); do
    for c in "${CONFIGS[@]}"; do
        n=$((n + 1))
        tmp="$(mktemp -d "/tmp/warren-bench.$$-$n.XXXXXX")"
        printf 'run %d/%d %-10s ' "$r" "$RUNS" "$c"
        WRT_RUN=$$ WRT_TEST_NO="b$n" WRT_TMP="$tmp" \
            timeout -k 10 $((BENCH_TIME * 3 + 120)) bash "$0" --one "$c" "$r" "$TSV" "$BENCH_TIME" \
            >"$LOGDIR/$c-$r.log" 2>&1 </dev/null &
        CUR_PID=$!
        rc=0
        wait "$CUR_PID" || rc=$?
        CUR_PID=""
        rm -rf "$tmp"
        if [[ $rc -eq 0 ]]; then
            tail -n 1 "$LOGDIR/$c-$r.log" | sed 's/^\[ *[0-9.]*s\] //'
        else
            echo "FAILED (status $rc; log: $LOGDIR/$c-$r.log)"
            grep -m1 'FAIL:' "$LOGDIR/$c-$r.log" | sed 's/^/    /'
        fi
    done
done
if [[ -n ${SUDO_USER:-} ]]; then
    chown -R "$SUDO_USER:" "$RESULTS_DIR" 2>/dev/null || true
fi

# samples CONFIG COLUMN — the numeric samples of a TSV column for one config, sorted.
samples() {
    awk -F'\t' -v c="$1" -v col="$2" 'NR > 1 && $1 == c && $col != "NA" && $col != "" { print $col }' "$TSV" | sort -g
}
# median CONFIG COLUMN — median of a TSV column for one config, NA if no samples.
median() {
    samples "$1" "$2" | awk '{ v[NR] = $1 } END { if (NR == 0) print "NA"; else if (NR % 2) print v[(NR + 1) / 2]; else printf "%.3f\n", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}
# spread CONFIG COLUMN — "min-max" of a column for one config.
spread() {
    samples "$1" "$2" | awk 'NR == 1 { lo = $1 } { hi = $1 } END { if (NR == 0) print "-"; else printf "%s-%s\n", lo, hi }'
}
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (a == "NA" || b == "NA" || b + 0 == 0) print "-"; else printf "%.2fx", a / b }'; }

COLS=(3 4 5 6 7 8 9 10)
HEAD=("tcp1 Mbit/s" "tcp4 Mbit/s" "udp Mbit/s" "udp loss%" "ping ms" "cpu%" "idle rss MiB" "rss MiB")
echo
echo "Medians over $RUNS run(s) (cpu%: both tunnel processes, 100% = one core; rss: the larger process, idle and peak):"
printf '%-12s' "config"
for h in "${HEAD[@]}"; do printf '%14s' "$h"; done
echo
declare -A MED=()
for c in "${CONFIGS[@]}"; do
    printf '%-12s' "$c"
    for col in "${COLS[@]}"; do
        MED[$c,$col]="$(median "$c" "$col")"
        printf '%14s' "${MED[$c,$col]}"
    done
    echo
done
if ((RUNS > 1)); then
    echo
    echo "Spread (min-max over the runs):"
    for c in "${CONFIGS[@]}"; do
        printf '%-12s' "$c"
        for col in "${COLS[@]}"; do printf '%17s' "$(spread "$c" "$col")"; done
        echo
    done
fi
# CPU per gigabit (single-stream TCP): cpu% / (tcp1 Gbit/s); lower is better.
echo
echo "CPU per Gbit/s (cpu% / tcp1 Gbit/s; lower is better):"
for c in "${CONFIGS[@]}"; do
    [[ $c == bare ]] && continue
    printf '%-12s%14s\n' "$c" "$(awk -v c="${MED[$c,8]}" -v t="${MED[$c,3]}" 'BEGIN { if (c == "NA" || t == "NA" || t + 0 == 0) print "-"; else printf "%.1f", c / (t / 1000) }')"
done
for ref in wggo boringtun1 boringtun; do
    [[ " ${CONFIGS[*]} " == *" $ref "* ]] || continue
    echo
    echo "Ratio to $ref (throughput: higher is better; ping, cpu, rss: lower is better):"
    for c in "${CONFIGS[@]}"; do
        [[ $c == "$ref" || $c == bare ]] && continue
        printf '%-12s' "$c/$ref"
        for col in "${COLS[@]}"; do
            printf '%14s' "$(ratio "${MED[$c,$col]}" "${MED[$ref,$col]}")"
        done
        echo
    done
done
echo
echo "raw samples: $TSV; logs: $LOGDIR"
