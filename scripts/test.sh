#!/usr/bin/env bash
# scripts/test.sh — THE test command: `sudo scripts/test.sh` (CI runs it as root with CI=true).
#
# Stages, in order; the first failing stage stops the run with a banner naming it, and a summary of all
# stages is printed at the end either way:
#   setup          scripts/setup.sh (packages, rust targets/components, macOS stub include; with
#                  --wine when the windows stage is selected)
#   fmt            cargo fmt --all -- --check
#   clippy         cargo clippy --workspace --all-targets -- -D warnings
#   test           cargo test --workspace
#   test-mockclock cargo test -p warren-tunnel --features mock-clock   (simulated-time tests)
#   gui            tests/gui/run.sh (the desktop app: UI tests, controller, keyring, Xvfb screenshot)
#   clippy-windows cargo clippy --workspace --all-targets --target x86_64-pc-windows-gnu
#                  -- -D warnings   (the Windows code and its tests, as the host's clippy stage)
#   build-windows  cargo build -p warren-helper, then -p warren-app, --target x86_64-pc-windows-gnu:
#                  real warren-helper.exe and warren-app.exe (linked with MinGW)
#   windows        tests/windows/run.sh: under Wine, the Windows unit tests of warren-proto,
#                  warren-tunnel and warren-helper, and the Windows daemon and CLI over the named
#                  pipe, the MSI (wixl) installed and removed by Wine's msiexec, and (as root)
#                  the Windows data plane under Wine with a fake wintun.dll against wireguard-go
#                  in network namespaces (installs Wine through scripts/setup.sh --wine first
#                  when it is missing)
#   clippy-macos   cargo clippy --workspace --all-targets --target aarch64-apple-darwin -- -D warnings
#                  (check only, nothing links: no macOS SDK here; C build scripts get clang with a
#                  stub include dir, Objective-C ones scripts/macos-check-cc)
#   release        cargo build --release -p warren-helper
#   installer      tests/installer/run.sh (service files, the .deb via cargo-deb, lintian, install/purge
#                  in Debian 12 chroots; root; the first run caches debootstrap roots, ~3 min)
#   netns          tests/netns/run.sh (root network-namespace end-to-end tests)
#
# Usage: scripts/test.sh [STAGE...]     run only the named stages (in the order above)
#        scripts/test.sh --list         list the stages
# The clippy and test stages run with WARREN_UI_PLACEHOLDER=1: they may run before the gui stage
# builds the UI (ui/dist) and never show the app's window, so the placeholder page the app's build
# script embeds instead is intended there (src-tauri/build.rs; anywhere else it warns).
# Environment:
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

ALL_STAGES=(setup fmt clippy test test-mockclock gui clippy-windows build-windows windows
            clippy-macos release installer netns)
WINDOWS_TARGET=x86_64-pc-windows-gnu
MACOS_TARGET=aarch64-apple-darwin
MACOS_STUB="$(macos_stub_include_dir)"
# clang for the C build scripts (ring's, with a stub TargetConditionals.h); scripts/macos-check-cc
# passes C to clang and stubs out the Objective-C ones (the app's notification plugin), which
# cannot compile without Apple's SDK.
MACOS_ENV=(
    "CC_aarch64_apple_darwin=$WARREN_ROOT/scripts/macos-check-cc"
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

cargo_b() { as_builder cargo "$@"; }
# For the stages that may run before the gui stage builds the UI and never show the app's window
# (clippy, test): the placeholder page the app's build script embeds then is intended.
cargo_before_ui() { as_builder env WARREN_UI_PLACEHOLDER=1 cargo "$@"; }
cargo_before_ui_macos() { as_builder env WARREN_UI_PLACEHOLDER=1 "${MACOS_ENV[@]}" cargo "$@"; }
# cargo_per_package PKG... -- ARGS... — `cargo ARGS -p PKG` for one package at a time, as the
# release builds do (scripts/common.sh): shared dependencies keep the features each binary needs.
cargo_per_package() {
    local -a pkgs=()
    while [[ $# -gt 0 && $1 != -- ]]; do
        pkgs+=("$1")
        shift
    done
    shift
    local p
    for p in "${pkgs[@]}"; do
        cargo_b "$@" -p "$p" || return
    done
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

# The windows stage: Wine (scripts/setup.sh --wine) when it is missing, then tests/windows/run.sh
# as the builder.
run_windows() {
    if ! command -v wine64 >/dev/null 2>&1 && [[ ! -x /usr/lib/wine/wine64 ]]; then
        if [[ $EUID -ne 0 ]]; then
            echo "!! the windows stage needs Wine: run 'sudo scripts/setup.sh --wine' (or sudo scripts/test.sh windows)"
            return 1
        fi
        "$WARREN_ROOT/scripts/setup.sh" --wine --no-cargo-tools || return
    fi
    warren_need_target "$(warren_rust_toolchain)" --target "$WINDOWS_TARGET"
    as_builder "$WARREN_ROOT/tests/windows/run.sh" unit e2e msi tunnel-build || return
    # The data plane against wireguard-go needs network namespaces: root (Wine runs as the builder).
    "$WARREN_ROOT/tests/windows/run.sh" tunnel
}

run_stage() {
    local s=$1
    case $s in
        setup)
            if [[ " ${SELECTED[*]} " == *" windows "* ]]; then
                stage setup "$WARREN_ROOT/scripts/setup.sh" --wine
            else
                stage setup "$WARREN_ROOT/scripts/setup.sh"
            fi
            ;;
        fmt)            stage fmt cargo_b fmt --all -- --check ;;
        clippy)         stage clippy cargo_before_ui clippy --workspace --all-targets -- -D warnings ;;
        test)           stage test cargo_before_ui test --workspace ;;
        test-mockclock) stage test-mockclock cargo_b test -p warren-tunnel --features mock-clock ;;
        gui)            stage gui as_builder "$WARREN_ROOT/tests/gui/run.sh" ;;
        clippy-windows) stage clippy-windows cargo_before_ui clippy --workspace --all-targets --target "$WINDOWS_TARGET" -- -D warnings ;;
        build-windows)  stage build-windows cargo_per_package warren-helper warren-app -- build --target "$WINDOWS_TARGET" ;;
        windows)        stage windows run_windows ;;
        clippy-macos)   stage clippy-macos cargo_before_ui_macos clippy --workspace --all-targets --target "$MACOS_TARGET" -- -D warnings ;;
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
