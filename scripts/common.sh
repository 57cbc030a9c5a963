# shellcheck shell=bash
# scripts/common.sh — small helpers shared by scripts/setup.sh, scripts/test.sh and scripts/bench.sh.
# Sourced, never run. Sets WARREN_ROOT (the repository root) and defines:
#   say / warn / die        — prefixed messages on stderr
#   as_builder CMD...       — run a build command as the user who owns the Rust toolchain
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
        sudo -u "$user" -H env "PATH=$home/.cargo/bin:$PATH" "$@"
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

macos_stub_include_dir() {
    printf '%s\n' "$WARREN_ROOT/target/macos-stub-include"
}
