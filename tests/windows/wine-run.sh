#!/usr/bin/env bash
# tests/windows/wine-run.sh EXE [ARG...] — run a Windows executable under Wine in the tests' own
# prefix: the runner of `cargo test --target x86_64-pc-windows-gnu` in the `windows` stage
# (CARGO_TARGET_X86_64_PC_WINDOWS_GNU_RUNNER) and how tests/windows/run.sh starts the helper.
#
# The environment is set here, not by the caller, because cargo may run as another user through
# scripts/common.sh's as_builder, which passes only CARGO_*/WARREN_* variables on:
#   WARREN_WINE_PREFIX  the prefix [default: $CARGO_TARGET_DIR or target/, then windows-wine/prefix];
#                       tests/windows/run.sh creates it (wineboot -i) and the stub DLLs in it
#   WARREN_WINE         the Wine loader [default: wine64 on PATH, else /usr/lib/wine/wine64]
# No display is used (DISPLAY is unset): everything run here is a console program.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
prefix="${WARREN_WINE_PREFIX:-${CARGO_TARGET_DIR:-$root/target}/windows-wine/prefix}"
wine="${WARREN_WINE:-$(command -v wine64 || echo /usr/lib/wine/wine64)}"
if [[ ! -f $prefix/system.reg ]]; then
    echo "wine-run.sh: no Wine prefix at $prefix: run tests/windows/run.sh (it creates it)" >&2
    exit 127
fi
unset DISPLAY WAYLAND_DISPLAY
# No Mono/Gecko installers (they would ask, and nothing here needs .NET or a browser engine).
export WINEPREFIX="$prefix" WINEDEBUG="${WINEDEBUG:--all}" WINEDLLOVERRIDES="mscoree,mshtml="
exec "$wine" "$@"
