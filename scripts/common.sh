# shellcheck shell=bash
# scripts/common.sh — small helpers shared by scripts/setup.sh, scripts/test.sh and scripts/bench.sh.
# Sourced, never run. Sets WARREN_ROOT (the repository root) and defines:
#   say / warn / die        — prefixed messages on stderr
#   as_builder CMD...       — run a build command as the builder, with the chosen toolchain (below)
#   warren_rust_toolchain   — own | root | system | none: which Rust toolchain builds (below)
#   warren_build_release    — the release binaries (helper; with --with-app the UI and the app)
#   warren_target_dir       — where cargo puts them ($CARGO_TARGET_DIR, else target/)
#   macos_stub_include_dir  — path of the stub include dir for the aarch64-apple-darwin check

WARREN_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export WARREN_ROOT

say()  { printf '%s\n' "${WARREN_SAY_PREFIX:-[warren]} $*" >&2; }
warn() { printf '%s\n' "${WARREN_SAY_PREFIX:-[warren]} warning: $*" >&2; }
die()  { printf '%s\n' "${WARREN_SAY_PREFIX:-[warren]} error: $*" >&2; exit 1; }

# ------------------------------------------------------------------------------------------------
# Who builds, with which Rust toolchain
#
# The builder is the user who owns the build: WARREN_BUILDER_USER (scripts/run.sh --user NAME sets
# it), else sudo's SUDO_USER, when this runs as root for someone; nobody (this process's own user)
# otherwise, as in CI. The Rust toolchain, first match wins (warren_rust_toolchain):
#   own     the builder's own rustup toolchain (~/.cargo/bin/cargo): cargo runs as the builder;
#   root    the builder has none but root has one (root's ~/.cargo/bin/cargo): build commands run as
#           root with it, and whatever they create in the checkout is handed back to the checkout's
#           owner afterwards (warren_hand_back), so target/ never stays root's;
#   system  a cargo on the system PATH (Debian's cargo-web/rustc-web, /usr/bin): as the builder;
#   none    nothing yet: scripts/setup.sh installs Debian's rustc-web, cargo-web, rust-web-clippy
#           and rustfmt-web.
# Only rustup has the Windows and macOS standard libraries the cross-target stages need: with
# another toolchain as_builder stops such a build at once, saying what to install (warren_need_target).
# Node.js for the UI is the system's `node` when it is new enough (WARREN_NODE_MIN), else the copy
# scripts/setup.sh puts in target/tools/node; as_builder puts that first on PATH.

# Vite 7 (ui/package.json) needs Node.js ^20.19.0 || >=22.12.0 (its "engines"); Debian 12 has 18.
WARREN_NODE_MIN="^20.19.0 || >=22.12.0"

warren_builder_user() {
    local user=${WARREN_BUILDER_USER:-${SUDO_USER:-}}
    if [[ ${EUID} -eq 0 && -n $user && $user != root ]]; then
        printf '%s\n' "$user"
    fi
}

# warren_home USER — the user's home directory, from the passwd database.
warren_home() {
    getent passwd "$1" | cut -d: -f6
}

warren_rust_toolchain() {
    local user home
    user="$(warren_builder_user)"
    if [[ -n $user ]]; then
        home="$(warren_home "$user")"
    else
        home="${HOME:-$(warren_home "$(id -un)")}"
    fi
    if [[ -x $home/.cargo/bin/cargo ]]; then
        echo own
    elif [[ -n $user && -x $(warren_home root)/.cargo/bin/cargo ]]; then
        echo root
    elif PATH=/usr/local/bin:/usr/bin:/bin command -v cargo >/dev/null 2>&1; then
        echo system
    else
        echo none
    fi
}

# The private Node.js that scripts/setup.sh installs when the system's is too old.
warren_node_dir() {
    printf '%s\n' "$WARREN_ROOT/target/tools/node"
}

# warren_node_version_ok VERSION — "v22.23.5" or "22.23.5" satisfies Vite's ^20.19.0 || >=22.12.0.
warren_node_version_ok() {
    local v=${1#v} major minor
    IFS=. read -r major minor _ <<<"$v"
    [[ $major =~ ^[0-9]+$ && $minor =~ ^[0-9]+$ ]] || return 1
    ((major == 20 && minor >= 19)) || ((major == 22 && minor >= 12)) || ((major >= 23))
}

# as_builder CMD... — run a build command as the builder (see above), with the chosen toolchain and
# Node.js first on PATH. Under runuser the environment is reset as sudo would: HOME, USER, LOGNAME,
# PATH, the locale, TERM, CI, RUST_*, CARGO_* (CARGO_TARGET_DIR: root and the builder must agree
# where the binaries are), WARREN_* and the CA settings (NODE_EXTRA_CA_CERTS, SSL_CERT_*: a proxy's
# own CA) pass; nothing else of root's.
as_builder() {
    local toolchain rc=0
    toolchain="$(warren_rust_toolchain)"
    warren_need_target "$toolchain" "$@"
    _warren_exec "$toolchain" "$@" || rc=$?
    [[ $toolchain == root ]] && warren_hand_back
    return "$rc"
}

# _warren_exec TOOLCHAIN CMD... — as_builder without the target check and the hand-back.
_warren_exec() {
    local toolchain=$1 user home path node_bin
    shift
    user="$(warren_builder_user)"
    [[ $toolchain == root ]] && user=""
    node_bin="$(warren_node_dir)/bin"
    if [[ -n $user ]]; then
        home="$(warren_home "$user")"
        path=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
        [[ -x $node_bin/node ]] && path="$node_bin:$path"
        local -a keep=()
        local var
        while IFS= read -r var; do
            case $var in
                LANG | LC_* | TERM | CI | RUST_* | CARGO_* | WARREN_* | NODE_EXTRA_CA_CERTS | SSL_CERT_*) keep+=("$var=${!var}") ;;
            esac
        done < <(compgen -e)
        runuser -u "$user" -- env -i HOME="$home" USER="$user" LOGNAME="$user" SHELL=/bin/sh \
            PATH="$home/.cargo/bin:$path" "${keep[@]}" "$@"
    else
        home="${HOME:-$(warren_home "$(id -un)")}"
        [[ $toolchain == root ]] && home="$(warren_home root)"
        path="$PATH"
        [[ -x $node_bin/node ]] && path="$node_bin:$path"
        [[ -x $home/.cargo/bin/cargo && :$path: != *":$home/.cargo/bin:"* ]] && path="$home/.cargo/bin:$path"
        HOME="$home" PATH="$path" "$@"
    fi
}

# warren_hand_back — after root built in someone's checkout (toolchain "root"): what root created
# in target/ and ui/ goes back to the checkout's owner, so their own builds can write there.
warren_hand_back() {
    local owner p
    owner="$(stat -c %u:%g "$WARREN_ROOT")"
    [[ $owner == 0:* ]] && return 0
    for p in "$WARREN_ROOT/target" "$WARREN_ROOT/ui/node_modules" "$WARREN_ROOT/ui/dist" \
        "$WARREN_ROOT/fuzz/target"; do
        [[ -e $p ]] && chown -R --from=0:0 "$owner" "$p"
    done
    return 0
}

# warren_need_target TOOLCHAIN CMD... — for a command with `--target T`: stop at once, saying what
# to install, when the toolchain has no standard library for T (Debian's Rust has only the host's;
# rustup adds the others).
warren_need_target() {
    local toolchain=$1 target="" libdir who
    shift
    while [[ $# -gt 0 ]]; do
        case $1 in
            --target) target=${2:-} && break ;;
            --target=*) target=${1#--target=} && break ;;
        esac
        shift
    done
    [[ -n $target ]] || return 0
    libdir="$(_warren_exec "$toolchain" rustc --print target-libdir --target "$target" 2>/dev/null || true)"
    [[ -n $libdir && -d $libdir ]] && return 0
    if [[ $toolchain == own || $toolchain == root ]]; then
        die "the Rust target $target is not installed in the rustup toolchain: run scripts/setup.sh (it runs: rustup target add $target)"
    fi
    who="$(warren_builder_user)"
    who=${who:-$(id -un)}
    die "the Rust target $target is not installed: this build uses Debian's Rust ($(rustc --version 2>/dev/null || echo 'no rustc found')), which has only this machine's own standard library, and the Windows/macOS stages need rustup's. As $who, install rustup from https://rustup.rs (curl --proto '=https' --tlsv1.2 -sSf https://sh.rustup.rs | sh -s -- -y), then run scripts/setup.sh again (it adds $target); or leave these stages out (scripts/test.sh --list names them)"
}

# Make cargo/rustup findable for root shells whose PATH lacks ~/.cargo/bin (sudo's secure_path),
# and the private Node.js (target/tools/node) when there is one.
warren_find_cargo() {
    if ! command -v cargo >/dev/null 2>&1 && [[ -z $(warren_builder_user) && -x ${HOME:-/root}/.cargo/bin/cargo ]]; then
        PATH="${HOME:-/root}/.cargo/bin:$PATH"
        export PATH
    fi
    if [[ -x $(warren_node_dir)/bin/node && :$PATH: != *":$(warren_node_dir)/bin:"* ]]; then
        PATH="$(warren_node_dir)/bin:$PATH"
        export PATH
    fi
}

warren_target_dir() {
    printf '%s\n' "${CARGO_TARGET_DIR:-$WARREN_ROOT/target}"
}

# warren_build_release [--with-app] — build, as the builder, the release warren-helper; with
# --with-app also the UI (npm ci only when ui/node_modules is absent, then vite → ui/dist) and
# warren-app, which embeds ui/dist at compile time. One package per cargo invocation: built
# together, their shared dependencies' features would be unified, rebuilding everything and
# giving a helper binary unlike `cargo build -p warren-helper`'s. Progress goes to stderr.
# Used by scripts/run.sh and installer/linux/build-deb.sh.
warren_build_release() {
    local with_app=0
    [[ ${1:-} == --with-app ]] && with_app=1
    if [[ $with_app == 1 ]]; then
        local node_version
        node_version="$(as_builder sh -c 'command -v npm >/dev/null && node --version' 2>/dev/null || true)"
        warren_node_version_ok "$node_version" ||
            die "the UI's build needs Node.js $WARREN_NODE_MIN with npm (found: ${node_version:-none}): run scripts/setup.sh"
        if [[ ! -d $WARREN_ROOT/ui/node_modules ]]; then
            say "npm ci (ui)"
            as_builder npm --prefix "$WARREN_ROOT/ui" ci --no-audit --no-fund >&2
        fi
        say "npm run build (ui → ui/dist)"
        as_builder npm --prefix "$WARREN_ROOT/ui" run build >&2
    fi
    say "cargo build --release -p warren-helper"
    as_builder cargo build --manifest-path "$WARREN_ROOT/Cargo.toml" --release -p warren-helper >&2
    if [[ $with_app == 1 ]]; then
        # The release profile's whole-program LTO pays off in the helper (its resident memory,
        # its data plane) but would add minutes to the app's link for nothing a user notices.
        say "cargo build --release -p warren-app (without LTO)"
        as_builder cargo build --manifest-path "$WARREN_ROOT/Cargo.toml" --release -p warren-app \
            --config 'profile.release.lto=false' --config 'profile.release.codegen-units=16' >&2
    fi
}

macos_stub_include_dir() {
    printf '%s\n' "$WARREN_ROOT/target/macos-stub-include"
}
