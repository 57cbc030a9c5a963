# shellcheck shell=bash
# scripts/common.sh — small helpers shared by scripts/setup.sh, scripts/test.sh and scripts/bench.sh.
# Sourced, never run. Sets WARREN_ROOT (the repository root) and defines:
#   say / warn / die        — prefixed messages on stderr
#   as_builder CMD...       — run a build command as the user who owns the Rust toolchain
#   warren_build_release    — the release binaries (helper; with --with-app the UI and the app)
#   warren_target_dir       — where cargo puts them ($CARGO_TARGET_DIR, else target/)
#   macos_stub_include_dir  — path of the stub include dir for the aarch64-apple-darwin check

WARREN_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export WARREN_ROOT

say()  { printf '%s\n' "${WARREN_SAY_PREFIX:-[warren]} $*" >&2; }
warn() { printf '%s\n' "${WARREN_SAY_PREFIX:-[warren]} warning: $*" >&2; }
die()  { printf '%s\n' "${WARREN_SAY_PREFIX:-[warren]} error: $*" >&2; exit 1; }

# When the scripts run under `sudo` from a developer's account, cargo/rustup live in that user's
# ~/.cargo and target/ belongs to them: build as that user so root never writes into their tree.
# In CI (root, no SUDO_USER) and for a plain root shell this simply runs the command.
warren_builder_user() {
    if [[ ${EUID} -eq 0 && -n ${SUDO_USER:-} && ${SUDO_USER} != root ]]; then
        printf '%s\n' "$SUDO_USER"
    fi
}

as_builder() {
    local user
    user="$(warren_builder_user)"
    if [[ -n $user ]]; then
        local home
        home="$(getent passwd "$user" | cut -d: -f6)"
        # sudo resets the environment: pass CARGO_TARGET_DIR on, so root and the builder agree
        # where the binaries are.
        sudo -u "$user" -H env "PATH=$home/.cargo/bin:$PATH" \
            ${CARGO_TARGET_DIR:+"CARGO_TARGET_DIR=$CARGO_TARGET_DIR"} "$@"
    else
        "$@"
    fi
}

# Make cargo/rustup findable for root shells whose PATH lacks ~/.cargo/bin (sudo's secure_path).
warren_find_cargo() {
    if ! command -v cargo >/dev/null 2>&1 && [[ -z $(warren_builder_user) && -x ${HOME:-/root}/.cargo/bin/cargo ]]; then
        PATH="${HOME:-/root}/.cargo/bin:$PATH"
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
        as_builder sh -c 'command -v npm' >/dev/null 2>&1 ||
            die "npm (Node.js) is needed to build the app's UI: install Node.js 18 or newer with npm"
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
