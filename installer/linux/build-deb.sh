#!/usr/bin/env bash
# installer/linux/build-deb.sh — build Warren's two Debian packages (installer/README.md):
#   warren          the desktop app + the helper + its service, one package (src-tauri/Cargo.toml)
#   warren-helper   the helper + its service alone, headless (helper/Cargo.toml)
# Needs: cargo-deb (scripts/setup.sh installs it), Node.js/npm for the UI, the app's -dev packages.
#
# Usage: installer/linux/build-deb.sh [--fast]     --fast: quicker, larger compression (tests)
# Prints the path of each package built, one per line, on stdout; progress goes to stderr.
# Output directory: $CARGO_TARGET_DIR/debian (default target/debian).
set -euo pipefail

# shellcheck source=scripts/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/../../scripts/common.sh"
# shellcheck disable=SC2034  # read by say/die in common.sh
WARREN_SAY_PREFIX="[build-deb]"
warren_find_cargo
cd "$WARREN_ROOT"

FAST=()
case "${1:-}" in
    --fast) FAST=(--fast) ;;
    "") ;;
    *) die "unknown argument '$1' (usage: $0 [--fast])" ;;
esac
OUT="${CARGO_TARGET_DIR:-$WARREN_ROOT/target}/debian"

as_builder cargo deb --version >/dev/null 2>&1 || die "cargo-deb is missing: run scripts/setup.sh (or cargo install cargo-deb --locked)"

# The helper, the UI and the app (which embeds ui/dist at compile time), as scripts/run.sh builds
# them (scripts/common.sh).
warren_build_release --with-app

as_builder mkdir -p "$OUT"
for pkg in warren-app warren-helper; do
    say "cargo deb -p $pkg"
    out="$(as_builder cargo deb -p "$pkg" --no-build "${FAST[@]}" --output "$OUT/" 2>&1)" || {
        printf '%s\n' "$out" >&2
        die "cargo deb -p $pkg failed"
    }
    deb="$(grep -E '\.deb$' <<<"$out" | tail -n 1)"
    [[ -f $deb ]] || { printf '%s\n' "$out" >&2; die "cargo deb -p $pkg did not print the path of a .deb"; }
    printf '%s\n' "$deb"
done
