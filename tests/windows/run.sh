#!/usr/bin/env bash
# tests/windows/run.sh — the `windows` stage of scripts/test.sh: Warren's Windows build run under
# Wine (Debian's wine64 8.0; `scripts/setup.sh --wine` installs it, and scripts/test.sh does so
# when this stage is selected).
#
#   1. prepare: the stub bcryptprimitives.dll (tests/windows/stub/: Wine 8 lacks ProcessPrng,
#      which every Rust program for Windows imports) and tests/windows/pipeprobe.exe, built with
#      x86_64-w64-mingw32-gcc into target/windows-wine/; a private Wine prefix
#      (target/windows-wine/prefix, `wineboot -i`, no display) with the stub in its system32, so
#      every Windows program run in it — test binaries, doctests, the helper — finds ProcessPrng.
#   2. unit: `cargo test --target x86_64-pc-windows-gnu -p warren-proto -p warren-tunnel
#      -p warren-helper`, each test binary run by tests/windows/wine-run.sh (the cargo runner).
#      Tests that cannot work under Wine are skipped here BY NAME, each with its reason printed
#      (WINE_SKIPS below; the README lists them).
#   3. e2e: tests/windows/e2e.sh — the Windows daemon and CLI over \\.\pipe\warren-helper.
#   4. msi: tests/windows/msi.sh — the MSI (installer/windows/build-msi.sh, wixl) read back, then
#      installed and removed by Wine's msiexec (also builds warren-app.exe, as build-windows does).
#   5. tunnel-build: warren-helper's Windows unit-test binary copied to target/windows-wine/tunnel/
#      with the FAKE wintun.dll (tests/windows/fakewintun/, test-only, never shipped) next to it.
#   6. tunnel (root): tests/windows/tunnel.sh — the Windows data plane under Wine against
#      wireguard-go in network namespaces (handshake, ping, checksummed transfers), and Wine's
#      answers to the `up` path's IP Helper/Winsock/WFP calls checked against the README's table.
#      Without root it is not run: said loudly, and a failure when CI=true. scripts/test.sh runs
#      parts 1-5 as the builder and then this one as root.
#   Finally the prefix's wineserver is stopped (`wineserver -k`, this prefix only).
#
# Usage: tests/windows/run.sh [unit] [e2e] [msi] [tunnel-build] [tunnel]   (default: all five)
# Uses the debug build in target/x86_64-pc-windows-gnu, shared with the clippy-windows and
# build-windows stages. Never touches the host's network: Wine here only runs console programs,
# and the e2e's `up` fails before any change (no wintun.dll), which is what it checks.
set -uo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
TARGET=x86_64-pc-windows-gnu
TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"
WORK="$TARGET_DIR/windows-wine"
export WARREN_WINE_PREFIX="$WORK/prefix"
WINE="${WARREN_WINE:-$(command -v wine64 || echo /usr/lib/wine/wine64)}"
WINESERVER="$(command -v wineserver || echo /usr/lib/wine/wineserver)"
export WARREN_WINE="$WINE"
CC=x86_64-w64-mingw32-gcc
RUNNER="$ROOT/tests/windows/wine-run.sh"

# Tests that cannot work under Wine: "NAME|reason" (NAME as `cargo test -- --skip` takes it, exact).
WINE_SKIPS=()

say() { printf '[windows] %s\n' "$*" >&2; }
die() {
    printf '[windows] FAILED: %s\n' "$*" >&2
    stop_wineserver
    exit 1
}

stop_wineserver() {
    if [[ -x $WINESERVER && -d $WARREN_WINE_PREFIX ]]; then
        WINEPREFIX="$WARREN_WINE_PREFIX" "$WINESERVER" -k 2>/dev/null || true
    fi
}

check_tools() {
    local missing=()
    [[ -x $WINE ]] || missing+=("wine64 (Debian package wine64)")
    [[ -x $WINESERVER ]] || missing+=("wineserver (Debian package wine64)")
    command -v "$CC" >/dev/null 2>&1 || missing+=("$CC (Debian package gcc-mingw-w64-x86-64-win32)")
    command -v cargo >/dev/null 2>&1 || missing+=(cargo)
    if [[ ${#missing[@]} -gt 0 ]]; then
        die "missing: ${missing[*]} — run: sudo scripts/setup.sh --wine"
    fi
}

# build OUT SRC... -- FLAGS...: compile with mingw (or $BUILD_CC) when OUT is older than a source.
build_c() {
    local out=$1 src=() s stale=0 cc=${BUILD_CC:-$CC}
    shift
    while [[ $1 != -- ]]; do
        src+=("$1")
        shift
    done
    shift
    for s in "${src[@]}"; do
        [[ $s -nt $out ]] && stale=1
    done
    [[ -f $out && $stale == 0 ]] && return 0
    say "building $(basename "$out") ($cc)"
    "$cc" -O2 -Wall -Wextra -Werror -o "$out" "${src[@]}" "$@" || die "building $out failed"
}

prepare() {
    mkdir -p "$WORK"
    local stub="$ROOT/tests/windows/stub"
    build_c "$WORK/bcryptprimitives.dll" "$stub/bcryptprimitives.c" "$stub/bcryptprimitives.def" \
        -- -shared -ladvapi32
    build_c "$WORK/pipeprobe.exe" "$ROOT/tests/windows/pipeprobe.c" -- -ladvapi32
    local fake="$ROOT/tests/windows/fakewintun"
    mkdir -p "$WORK/fake-wintun"
    build_c "$WORK/fake-wintun/wintun.dll" "$fake/fakewintun.c" -- -shared -liphlpapi -lws2_32
    build_c "$WORK/iphlpprobe.exe" "$fake/iphlpprobe.c" -- -liphlpapi -lws2_32 -lfwpuclnt
    BUILD_CC=gcc build_c "$WORK/tunbridge" "$fake/tunbridge.c" --
    # Wine refuses a prefix another user owns (a root run after a user's, or the reverse).
    if [[ -d $WARREN_WINE_PREFIX && $(stat -c %u "$WARREN_WINE_PREFIX") != "$(id -u)" ]]; then
        say "the prefix belongs to uid $(stat -c %u "$WARREN_WINE_PREFIX"), not $(id -u): creating it anew"
        rm -rf "$WARREN_WINE_PREFIX" || die "cannot remove $WARREN_WINE_PREFIX"
    fi
    if [[ ! -f $WARREN_WINE_PREFIX/system.reg ]]; then
        say "creating the Wine prefix $WARREN_WINE_PREFIX (wineboot -i)"
        rm -rf "$WARREN_WINE_PREFIX"
        local start=$SECONDS
        env -u DISPLAY -u WAYLAND_DISPLAY WINEPREFIX="$WARREN_WINE_PREFIX" WINEDEBUG=-all \
            WINEDLLOVERRIDES="mscoree,mshtml=" timeout 300 "$WINE" wineboot -i >"$WORK/wineboot.log" 2>&1 ||
            { cat "$WORK/wineboot.log" >&2; die "wineboot -i failed (log above)"; }
        # wineboot returns before the prefix is complete; its wineserver finishing is the end.
        WINEPREFIX="$WARREN_WINE_PREFIX" timeout 120 "$WINESERVER" -w ||
            die "wineboot's wineserver did not finish within 120 s"
        [[ -f $WARREN_WINE_PREFIX/system.reg ]] || die "wineboot -i left no system.reg in $WARREN_WINE_PREFIX"
        say "prefix ready in $((SECONDS - start)) s"
    fi
    local sys32="$WARREN_WINE_PREFIX/drive_c/windows/system32"
    [[ -d $sys32 ]] || die "no system32 in $WARREN_WINE_PREFIX"
    cmp -s "$WORK/bcryptprimitives.dll" "$sys32/bcryptprimitives.dll" ||
        cp "$WORK/bcryptprimitives.dll" "$sys32/bcryptprimitives.dll" || die "cannot install the stub DLL"
    say "Wine: $("$WINE" --version 2>/dev/null); prefix: $WARREN_WINE_PREFIX"
}

# A persistent wineserver for this prefix, and Wine's own service processes (services.exe,
# winedevice.exe, ...) started once here with their output in a log: started by a test program
# instead, they would keep that program's stdout open for as long as they live.
start_wineserver() {
    WINEPREFIX="$WARREN_WINE_PREFIX" "$WINESERVER" -p >>"$WORK/wine.log" 2>&1 ||
        die "cannot start the wineserver ($WORK/wine.log)"
    timeout 120 "$RUNNER" cmd.exe /c exit 0 >>"$WORK/wine.log" 2>&1 </dev/null ||
        die "Wine cannot run cmd.exe in $WARREN_WINE_PREFIX ($WORK/wine.log)"
}

unit() {
    local skip_args=() entry name reason
    for entry in "${WINE_SKIPS[@]}"; do
        name=${entry%%|*}
        reason=${entry#*|}
        say "NOT RUN under Wine: $name — $reason"
        skip_args+=(--skip "$name" --exact)
    done
    say "cargo test --target $TARGET -p warren-proto -p warren-tunnel -p warren-helper (runner: Wine)"
    CARGO_TARGET_X86_64_PC_WINDOWS_GNU_RUNNER="$RUNNER" \
        cargo test --manifest-path "$ROOT/Cargo.toml" --target "$TARGET" --no-fail-fast \
        -p warren-proto -p warren-tunnel -p warren-helper -- "${skip_args[@]}" ||
        die "the Windows unit tests failed under Wine"
}

e2e() {
    say "cargo build --target $TARGET -p warren-helper"
    cargo build --manifest-path "$ROOT/Cargo.toml" --target "$TARGET" -p warren-helper ||
        die "building warren-helper.exe failed"
    "$ROOT/tests/windows/e2e.sh" "$TARGET_DIR/$TARGET/debug/warren-helper.exe" "$WORK" ||
        die "the Windows daemon/CLI end-to-end check failed"
}

msi() {
    local p
    for p in warren-helper warren-app; do
        say "cargo build --target $TARGET -p $p"
        cargo build --manifest-path "$ROOT/Cargo.toml" --target "$TARGET" -p "$p" || die "building $p.exe failed"
    done
    "$ROOT/tests/windows/msi.sh" "$TARGET_DIR/$TARGET/debug/warren-helper.exe" \
        "$TARGET_DIR/$TARGET/debug/warren-app.exe" "$WORK" || die "the MSI check failed"
}

# The unit-test binary of warren-helper (built by `unit` already, else now) and the fake
# wintun.dll, side by side in $WORK/tunnel for tunnel.sh.
tunnel-build() {
    local exe
    # The same packages as `unit`, so that cargo reuses its build instead of resolving features anew.
    exe="$(cargo test --manifest-path "$ROOT/Cargo.toml" --target "$TARGET" --no-run \
        -p warren-proto -p warren-tunnel -p warren-helper 2>&1 | tee "$WORK/tunnel-build.log" |
        sed -n 's/.*Executable unittests src\/lib.rs (\(.*\/warren_helper-[0-9a-f]*\.exe\))$/\1/p')"
    [[ -n $exe ]] || { cat "$WORK/tunnel-build.log" >&2; die "no warren-helper unit-test binary from cargo"; }
    [[ $exe == /* ]] || exe="$ROOT/$exe"
    mkdir -p "$WORK/tunnel"
    cp "$exe" "$WORK/tunnel/warren-helper-tests.exe" || die "cannot copy $exe"
    cp "$WORK/fake-wintun/wintun.dll" "$WORK/tunnel/wintun.dll" || die "cannot copy the fake wintun.dll"
}

tunnel() {
    if [[ $EUID -ne 0 ]]; then
        if [[ ${CI:-} == true ]]; then
            die "the tunnel part needs root (network namespaces): run scripts/test.sh windows as root"
        fi
        say "NOT RUN: the tunnel part (Windows data plane under Wine against wireguard-go) needs root; sudo $0 tunnel"
        return 0
    fi
    "$ROOT/tests/windows/tunnel.sh" "$WORK" || die "the Windows data plane end-to-end test under Wine failed"
}

main() {
    local parts=("$@") p start
    [[ ${#parts[@]} -gt 0 ]] || parts=(unit e2e msi tunnel-build tunnel)
    for p in "${parts[@]}"; do
        [[ $p == unit || $p == e2e || $p == msi || $p == tunnel-build || $p == tunnel ]] ||
            { echo "usage: $0 [unit] [e2e] [msi] [tunnel-build] [tunnel]" >&2; exit 2; }
    done
    check_tools
    if [[ ${parts[*]} == tunnel ]]; then
        # Root, after the builder's parts: the prefix and the binaries are the builder's.
        tunnel
        return
    fi
    prepare
    start_wineserver
    for p in "${parts[@]}"; do
        start=$SECONDS
        "$p"
        say "$p: ok ($((SECONDS - start)) s)"
    done
    stop_wineserver
}

main "$@"
