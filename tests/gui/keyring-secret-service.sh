#!/usr/bin/env bash
# tests/gui/keyring-secret-service.sh CMD... — run CMD inside a private D-Bus session with a
# throwaway, unlocked gnome-keyring (Secret Service), and every XDG dir in a temp dir, so the
# user's real keyring is never touched. Used by tests/gui/run.sh for the keyring round trip.
# Re-executes itself under dbus-run-session (with tests/gui/dbus-daemon-quiet as the bus daemon).
set -euo pipefail

if [[ -z ${WARREN_IN_DBUS_SESSION:-} ]]; then
    exec env WARREN_IN_DBUS_SESSION=1 \
        dbus-run-session --dbus-daemon="$(cd "$(dirname "$0")" && pwd)/dbus-daemon-quiet" -- "$0" "$@"
fi

tmp="$(mktemp -d /tmp/warren-keyring.XXXXXX)"
trap 'rm -rf "$tmp"' EXIT
export HOME="$tmp/home" XDG_CONFIG_HOME="$tmp/config" XDG_DATA_HOME="$tmp/data" \
    XDG_CACHE_HOME="$tmp/cache" XDG_RUNTIME_DIR="$tmp/run"
mkdir -p "$HOME" "$XDG_CONFIG_HOME" "$XDG_DATA_HOME" "$XDG_CACHE_HOME" "$XDG_RUNTIME_DIR"
chmod 700 "$XDG_RUNTIME_DIR"

# --unlock reads the new keyring's password from stdin; it may print variables to export
# (older releases) or nothing (it registers on the session bus either way).
out="$(printf 'warren-test-password' | gnome-keyring-daemon --unlock --components=secrets)"
while IFS= read -r line; do
    [[ $line == *=* ]] && export "${line?}"
done <<<"$out"
registered() {
    dbus-send --session --print-reply --dest=org.freedesktop.DBus /org/freedesktop/DBus \
        org.freedesktop.DBus.ListNames | grep -q '"org.freedesktop.secrets"'
}
for _ in $(seq 50); do
    registered && break
    sleep 0.1
done
if ! registered; then
    echo "gnome-keyring-daemon did not register org.freedesktop.secrets within 5 s" >&2
    exit 1
fi
"$@"
