#!/usr/bin/env bash
# scripts/setup.sh — install what Warren's builds and tests need on a Debian 12 machine.
#
# Idempotent and quick when nothing is missing: packages already installed (dpkg -s) are skipped,
# `apt-get update` runs at most once and only when something must be installed, and rustup is asked
# only for targets/components it does not list as installed. Run as root (CI does); as another user it
# only reports what is missing.
#
# Also writes the stub include dir for the aarch64-apple-darwin `cargo check` (see
# shared/NOTES-BUILD.md, "Cross-target checks"): target/macos-stub-include/TargetConditionals.h.
set -euo pipefail

# shellcheck source=scripts/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
WARREN_SAY_PREFIX="[setup]"

# Debian packages, with why each is here.
PACKAGES=(
    build-essential pkg-config coreutils            # C toolchain for -sys/ring build scripts; env --default-signal
    clang llvm gcc-mingw-w64-x86-64-win32           # cross checks: macOS (clang, llvm-ar), Windows (mingw linker)
    iproute2 iputils-ping nftables procps psmisc    # network-namespace tests: ip, ss, ping, nft, ps, fuser
    wireguard-go wireguard-tools                    # the reference peer and `wg` (UAPI client)
    iperf3 jq                                       # scripts/bench.sh (iperf3 -J parsed with jq)
    socat                                           # checksummed bulk transfers in tests/netns
    libwebkit2gtk-4.1-dev libayatana-appindicator3-dev librsvg2-dev libxdo-dev   # the Tauri app
    xvfb xauth x11-utils imagemagick dbus keyutils gnome-keyring                 # tests/gui (window, keyring)
    webkit2gtk-driver xdotool                       # tests/gui e2e: WebKitWebDriver; answering the file chooser
    debootstrap lintian shellcheck libxml2-utils desktop-file-utils systemd util-linux   # tests/installer
)
# Cargo tools, installed with `cargo install --locked` (as the builder) when missing: NAME VERSION.
CARGO_TOOLS=(
    "cargo-deb 3.8.0"    # the .deb packages (installer/linux/build-deb.sh, tests/installer)
)
RUST_TARGETS=(x86_64-pc-windows-gnu aarch64-apple-darwin)
RUST_COMPONENTS=(clippy rustfmt)

missing_packages() {
    local p
    for p in "${PACKAGES[@]}"; do
        # dpkg -s exits 0 for packages that were removed but not purged: check the status line too.
        if ! dpkg -s "$p" 2>/dev/null | grep -q '^Status: install ok installed'; then
            printf '%s\n' "$p"
        fi
    done
}

install_packages() {
    local missing
    mapfile -t missing < <(missing_packages)
    if [[ ${#missing[@]} -eq 0 ]]; then
        say "Debian packages: all ${#PACKAGES[@]} already installed"
        return 0
    fi
    if [[ $EUID -ne 0 ]]; then
        die "missing Debian packages: ${missing[*]} — run this script as root (sudo $0)"
    fi
    say "Debian packages to install: ${missing[*]}"
    say "running: apt-get update"
    apt-get update -q
    say "running: apt-get install -y --no-install-recommends ${missing[*]}"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"
    local still
    still="$(missing_packages | tr '\n' ' ')"
    [[ -z ${still// /} ]] || die "packages still missing after apt-get install: $still"
}

install_rust_bits() {
    warren_find_cargo
    if ! as_builder sh -c 'command -v rustup' >/dev/null 2>&1; then
        die "rustup not found (for user ${SUDO_USER:-$(id -un)}): install the Rust toolchain with rustup first"
    fi
    local installed t c
    installed="$(as_builder rustup target list --installed)"
    for t in "${RUST_TARGETS[@]}"; do
        if grep -qx "$t" <<<"$installed"; then
            say "rust target $t: already installed"
        else
            say "running: rustup target add $t"
            as_builder rustup target add "$t"
        fi
    done
    installed="$(as_builder rustup component list --installed)"
    for c in "${RUST_COMPONENTS[@]}"; do
        if grep -q "^$c-" <<<"$installed"; then
            say "rust component $c: already installed"
        else
            say "running: rustup component add $c"
            as_builder rustup component add "$c"
        fi
    done
}

install_cargo_tools() {
    local entry name version have
    for entry in "${CARGO_TOOLS[@]}"; do
        read -r name version <<<"$entry"
        # `cargo deb --version` prints "cargo-deb 3.8.0".
        have="$(as_builder cargo "${name#cargo-}" --version 2>/dev/null | awk '{ print $2 }' || true)"
        if [[ $have == "$version" ]]; then
            say "$name $version: already installed"
        else
            say "running: cargo install $name --version $version --locked (a few minutes, once)"
            as_builder cargo install "$name" --version "$version" --locked
        fi
    done
}

# tauri-driver (the WebDriver server for tests/gui/e2e.sh), as the builder like the other Rust
# bits; only when missing. The 2.x line: crates.io's newest are 3.0 alphas.
install_tauri_driver() {
    warren_find_cargo
    # shellcheck disable=SC2016  # expanded by the builder's shell, not this one
    if as_builder sh -c 'command -v tauri-driver || test -x "${CARGO_HOME:-$HOME/.cargo}/bin/tauri-driver"' >/dev/null 2>&1; then
        say "tauri-driver: already installed"
        return 0
    fi
    say "running: cargo install tauri-driver --version ^2 --locked"
    as_builder cargo install tauri-driver --version '^2' --locked
}

write_macos_stub() {
    local dir file content
    dir="$(macos_stub_include_dir)"
    file="$dir/TargetConditionals.h"
    # shellcheck disable=SC2016  # backquotes in a C comment, not a command
    content='/* Stub for `cargo check --target aarch64-apple-darwin` on Linux (written by scripts/setup.sh).
 * Only for C build scripts (ring, objc2-exception-helper) that include it; nothing is linked. */
#ifndef WARREN_STUB_TARGET_CONDITIONALS_H
#define WARREN_STUB_TARGET_CONDITIONALS_H
#define TARGET_OS_MAC 1
#define TARGET_OS_OSX 1
#define TARGET_OS_IPHONE 0
#define TARGET_OS_IOS 0
#define TARGET_OS_TV 0
#define TARGET_OS_WATCH 0
#define TARGET_OS_SIMULATOR 0
#endif'
    if [[ -f $file ]] && [[ "$(cat "$file")" == "$content" ]]; then
        say "macOS stub include: $file already present"
        return 0
    fi
    say "writing macOS stub include: $file"
    # As the builder, so a sudo run never leaves a root-owned target/ behind.
    as_builder mkdir -p "$dir"
    printf '%s\n' "$content" | as_builder tee "$file" >/dev/null
}

main() {
    say "repository: $WARREN_ROOT"
    install_packages
    install_rust_bits
    install_cargo_tools
    install_tauri_driver
    write_macos_stub
    say "done"
}

main "$@"
