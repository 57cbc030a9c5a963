#!/usr/bin/env bash
# scripts/test.sh — THE test command: `sudo scripts/test.sh` (CI runs it as root with CI=true).
#
# Stages, in order; the first failing stage stops the run with a banner naming it, and a summary of all
# stages is printed at the end either way:
#   setup          scripts/setup.sh (packages, rust targets/components, macOS stub include)
#   fmt            cargo fmt --all -- --check
#   clippy         cargo clippy --workspace --all-targets -- -D warnings
#   test           cargo test --workspace
#   test-mockclock cargo test -p warren-tunnel --features mock-clock   (simulated-time tests)
#   gui            tests/gui/run.sh (the desktop app: UI tests, controller, keyring, Xvfb screenshot)
#   cross-windows  cargo build -p warren-proto -p warren-tunnel --target x86_64-pc-windows-gnu
#   cross-macos    cargo check -p warren-proto -p warren-tunnel --target aarch64-apple-darwin
#   cross-helper-windows / cross-helper-macos   the same for -p warren-helper (see WARREN_CROSS_HELPER)
#   cross-app-windows / cross-app-macos         the same for the desktop app, -p warren-app (the
#                  Windows build links a real warren-app.exe; ~12 min cold)
#   release        cargo build --release -p warren-helper
#   installer      tests/installer/run.sh (service files, the .deb via cargo-deb, lintian, install/purge
#                  in Debian 12 chroots; root; the first run caches debootstrap roots, ~3 min)
#   netns          tests/netns/run.sh (root network-namespace end-to-end tests)
#
# Usage: scripts/test.sh [STAGE...]     run only the named stages (in the order above)
#        scripts/test.sh --list         list the stages
# Environment:
#   WARREN_CROSS_HELPER=1 (default)  run the helper cross builds as ordinary stages (a failure
#                                    stops the run)
#                       0            skip them
#                       warn         run them, report failure, but carry on
#   WARREN_NETNS_ARGS="basic hub"    test names/groups passed to tests/netns/run.sh
#   CI=true                          the netns stage fails (instead of saying "needs root") without root
set -uo pipefail

# shellcheck source=scripts/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
WARREN_SAY_PREFIX="[test]"
cd "$WARREN_ROOT" || exit 1
warren_find_cargo
# The netns tests use the binary the release stage builds.
if [[ -z ${WARREN_BIN:-} && -n ${CARGO_TARGET_DIR:-} ]]; then
    export WARREN_BIN="$CARGO_TARGET_DIR/release/warren-helper"
fi

ALL_STAGES=(setup fmt clippy test test-mockclock gui cross-windows cross-macos
            cross-helper-windows cross-helper-macos cross-app-windows cross-app-macos
            release installer netns)
CROSS_HELPER="${WARREN_CROSS_HELPER:-1}"
MACOS_STUB="$(macos_stub_include_dir)"
MACOS_ENV=(
    CC_aarch64_apple_darwin=clang
    AR_aarch64_apple_darwin=llvm-ar
    "CFLAGS_aarch64_apple_darwin=-nostdlibinc -DRING_CORE_NOSTDLIBINC=1 -isystem $MACOS_STUB"
)

declare -A RESULT=() DURATION=()
NETNS_COUNT_LINE=""
RUN_START=$SECONDS

rule() { printf '%*s\n' 78 '' | tr ' ' "$1"; }

print_summary() {
    local s
    echo
    rule '='
    echo "Stage summary ($((SECONDS - RUN_START))s total):"
    for s in "${SELECTED[@]}"; do
        printf '  %-22s %-28s %s\n' "$s" "${RESULT[$s]:-not run}" "${DURATION[$s]:+${DURATION[$s]}s}"
    done
    rule '='
    # The netns harness's own closing line, repeated last so the run ends with the test count.
    if [[ -n $NETNS_COUNT_LINE ]]; then
        echo "$NETNS_COUNT_LINE"
    fi
}

fail_banner() {
    local stage=$1 rc=$2
    echo
    rule '#'
    echo "## FAILED at stage '$stage' (exit status $rc)"
    echo "## Re-run just this stage with: scripts/test.sh $stage"
    rule '#'
}

# stage NAME CMD... — run one stage with a banner; stop the whole run if it fails.
stage() {
    local name=$1 rc start
    shift
    echo
    rule '='
    echo "== STAGE: $name — $*"
    rule '='
    start=$SECONDS
    "$@"
    rc=$?
    DURATION[$name]=$((SECONDS - start))
    if [[ $rc -eq 0 ]]; then
        RESULT[$name]="ok"
        return 0
    fi
    RESULT[$name]="FAILED (exit $rc)"
    fail_banner "$name" "$rc"
    print_summary
    exit 1
}

# soft_stage NAME CMD... — like stage, but a failure is reported and the run carries on.
soft_stage() {
    local name=$1 rc start
    shift
    echo
    rule '='
    echo "== STAGE (report only): $name — $*"
    rule '='
    start=$SECONDS
    "$@"
    rc=$?
    DURATION[$name]=$((SECONDS - start))
    if [[ $rc -eq 0 ]]; then
        RESULT[$name]="ok"
    else
        RESULT[$name]="FAILED (exit $rc, not fatal)"
        echo "!! stage '$name' failed (exit $rc); carrying on because WARREN_CROSS_HELPER=warn"
    fi
}

cargo_b() { as_builder cargo "$@"; }
cargo_macos() { as_builder env "${MACOS_ENV[@]}" cargo "$@"; }
# The app's check also has Objective-C build scripts; scripts/macos-check-cc stubs those out.
cargo_macos_app() {
    as_builder env "${MACOS_ENV[@]}" "CC_aarch64_apple_darwin=$WARREN_ROOT/scripts/macos-check-cc" cargo "$@"
}

run_netns() {
    local -a args=()
    if [[ -n ${WARREN_NETNS_ARGS:-} ]]; then
        read -r -a args <<<"$WARREN_NETNS_ARGS"
    fi
    local out rc
    out="$(mktemp)"
    # tee so the output streams live; keep a copy to pick up the closing count line.
    "$WARREN_ROOT/tests/netns/run.sh" "${args[@]}" 2>&1 | tee "$out"
    rc=${PIPESTATUS[0]}
    NETNS_COUNT_LINE="$(grep -E '^[0-9]+ passed, [0-9]+ failed' "$out" | tail -n 1)"
    [[ -n $NETNS_COUNT_LINE ]] && NETNS_COUNT_LINE="netns: $NETNS_COUNT_LINE"
    rm -f "$out"
    return "$rc"
}

run_stage() {
    local s=$1
    case $s in
        setup)          stage setup "$WARREN_ROOT/scripts/setup.sh" ;;
        fmt)            stage fmt cargo_b fmt --all -- --check ;;
        clippy)         stage clippy cargo_b clippy --workspace --all-targets -- -D warnings ;;
        test)           stage test cargo_b test --workspace ;;
        test-mockclock) stage test-mockclock cargo_b test -p warren-tunnel --features mock-clock ;;
        gui)            stage gui as_builder "$WARREN_ROOT/tests/gui/run.sh" ;;
        cross-windows)  stage cross-windows cargo_b build -p warren-proto -p warren-tunnel --target x86_64-pc-windows-gnu ;;
        cross-macos)    stage cross-macos cargo_macos check -p warren-proto -p warren-tunnel --target aarch64-apple-darwin ;;
        cross-helper-windows|cross-helper-macos)
            local -a cmd
            if [[ $s == cross-helper-windows ]]; then
                cmd=(cargo_b build -p warren-helper --target x86_64-pc-windows-gnu)
            else
                cmd=(cargo_macos check -p warren-helper --target aarch64-apple-darwin)
            fi
            case $CROSS_HELPER in
                1)    stage "$s" "${cmd[@]}" ;;
                warn) soft_stage "$s" "${cmd[@]}" ;;
                *)    RESULT[$s]="skipped (WARREN_CROSS_HELPER=1 to run)" ;;
            esac
            ;;
        cross-app-windows) stage "$s" cargo_b build -p warren-app --target x86_64-pc-windows-gnu ;;
        cross-app-macos)   stage "$s" cargo_macos_app check -p warren-app --target aarch64-apple-darwin ;;
        release)        stage release cargo_b build --release -p warren-helper ;;
        installer)      stage installer "$WARREN_ROOT/tests/installer/run.sh" ;;
        netns)
            if [[ $EUID -ne 0 ]]; then
                if [[ ${CI:-} == true ]]; then
                    RESULT[netns]="FAILED (needs root)"
                    echo "!! the netns stage needs root (network namespaces, TUN); CI=true so this is a failure"
                    fail_banner netns 1
                    print_summary
                    exit 1
                fi
                RESULT[netns]="NOT RUN: needs root (sudo scripts/test.sh netns)"
                echo "!! netns stage needs root: run 'sudo scripts/test.sh netns'"
                return 0
            fi
            stage netns run_netns
            ;;
        *) die "unknown stage '$s' (stages: ${ALL_STAGES[*]})" ;;
    esac
}

main() {
    local s a
    if [[ ${1:-} == --list ]]; then
        printf '%s\n' "${ALL_STAGES[@]}"
        return 0
    fi
    if [[ ${1:-} == -h || ${1:-} == --help ]]; then
        sed -n '2,/^set -uo/p' "$0" | sed -e '$d' -e 's/^# \{0,1\}//'
        return 0
    fi
    SELECTED=()
    if [[ $# -eq 0 ]]; then
        SELECTED=("${ALL_STAGES[@]}")
    else
        for a in "$@"; do
            [[ " ${ALL_STAGES[*]} " == *" $a "* ]] || die "unknown stage '$a' (stages: ${ALL_STAGES[*]})"
        done
        for s in "${ALL_STAGES[@]}"; do
            for a in "$@"; do
                [[ $a == "$s" ]] && SELECTED+=("$s")
            done
        done
    fi
    say "repository: $WARREN_ROOT; stages: ${SELECTED[*]}; user: $(id -un); CI=${CI:-}"
    for s in "${SELECTED[@]}"; do
        run_stage "$s"
    done
    print_summary
}

main "$@"
