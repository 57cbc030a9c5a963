#!/usr/bin/env bash
# scripts/run.sh — THE main-job command, run as root from a terminal in your desktop session:
# `sudo scripts/run.sh`, or without sudo `su -c 'scripts/run.sh'` (su asks for root's password), or
# from anywhere as root `scripts/run.sh --user NAME`. It shows Warren working on this machine,
# without a VPN server:
#
#   1. installs what it needs (scripts/setup.sh --run) and builds, as you, the release helper, the UI
#      and the desktop app (scripts/common.sh's warren_build_release, as the .deb build does);
#   2. starts `warren-helper daemon` (root) unless one already answers on /run/warren/helper.sock —
#      with --group warren if you are in it, else with your own primary group, so that you (and
#      root) may use it; a running daemon you may not use is reported with the fix; its log goes to
#      the run directory (--log-dir), not /var/log/warren;
#   3. starts the demo peer, `warren-helper demo --peer-only` (root): a Warren peer in the network
#      namespace `warren-demo`, joined to this machine by a veth pair, which writes the matching
#      client file warren-demo.conf (0600, yours) into a private run directory;
#   4. starts the app as you (runuser, with your session's DISPLAY/WAYLAND_DISPLAY, XAUTHORITY,
#      DBUS_SESSION_BUS_ADDRESS and XDG_RUNTIME_DIR, read from the nearest process above this
#      script that runs as you — the shell that ran sudo or su — or, started elsewhere with --user,
#      from a process of yours that has a display, such as your session's shell or compositor) with
#      `--offer-demo <that file>`: with no tunnel yet, the window offers "Try the local demo";
#      one click imports it (the key goes to your keyring) and connects it. If your session bus has
#      no Secret Service (no keyring), it says in one line what to do first;
#   5. when the app quits (tray → Quit, where closing the window only hides it; without a tray,
#      closing the window) or on ctrl-c: stops, by PID, only what it started — the app, the
#      daemon (which takes the tunnel down), the demo (which removes its namespace, veth and
#      file) — and removes the run directory and the
#      directories the daemon made that were not there before (/run/warren, /run/wireguard, if empty).
#
# You are: --user NAME, else sudo's SUDO_USER, else the user of the nearest non-root process above
# this script (the terminal's user who ran `su -c`). Without a graphical session (no DISPLAY or
# WAYLAND_DISPLAY — a server, ssh, CI), without a desktop user (a root login without --user), or
# with --cli, it says so and runs the command-line demo instead (`warren-helper demo`: the peer, a
# tunnel from this machine, a ping and `wg show`, until ctrl-c).
#
# The demo keeps its two throwaway keys in /var/lib/warren/demo.keys so that the tunnel the app
# imported keeps working on the next run. Everything else it adds (one veth pair, the namespace
# warren-demo, the tunnel's interface while connected) uses addresses from 198.18.0.0/15 and
# fd00::/8 only, and no existing route, DNS setting or firewall rule is changed.
#
# Usage: sudo scripts/run.sh [--cli] [--user NAME]
set -euo pipefail

# shellcheck source=scripts/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
WARREN_SAY_PREFIX="[run]"
cd "$WARREN_ROOT"

USAGE="usage: sudo $0 [--cli] [--user NAME] (without sudo: su -c '$0 [--cli]')"
CLI_ONLY=0
USER_ARG=""
while [[ $# -gt 0 ]]; do
    case $1 in
        --cli) CLI_ONLY=1 ;;
        --user)
            [[ -n ${2:-} ]] || die "--user needs a user name ($USAGE)"
            USER_ARG=$2
            shift
            ;;
        --user=*) USER_ARG=${1#--user=} ;;
        -h | --help)
            sed -n '2,/^set -euo/p' "$0" | sed -e '$d' -e 's/^# \{0,1\}//'
            exit 0
            ;;
        *) die "unknown argument '$1' ($USAGE)" ;;
    esac
    shift
done
[[ $EUID -eq 0 ]] || die "the demo creates a network namespace and a TUN device: run as root (sudo $0, or su -c '$0')"
if [[ -n $USER_ARG ]]; then
    getent passwd "$USER_ARG" >/dev/null || die "--user $USER_ARG: no such user"
    [[ $(id -u "$USER_ARG") != 0 ]] || die "--user $USER_ARG: the app runs as a desktop user, not root"
fi

SOCKET=/run/warren/helper.sock
DEMO_NAME=warren-demo
DAEMON_WAIT_SECS=20
DEMO_WAIT_SECS=60
STOP_WAIT_SECS=15

# ------------------------------------------------------------------------------------------------
# The desktop user and their session

# session_env PID VAR — VAR from process PID's environment (empty if unset or unreadable).
session_env() {
    tr '\0' '\n' <"/proc/$1/environ" 2>/dev/null | sed -n "s/^$2=//p" | head -n 1
}

# session_pid UID — the nearest ancestor of this script running as UID: the shell (or terminal)
# that ran sudo or su, whose environment is the user's session's. Empty if there is none.
session_pid() {
    local pid=$$ uid
    while [[ $pid -gt 1 ]]; do
        pid="$(awk '/^PPid:/ { print $2 }' "/proc/$pid/status" 2>/dev/null)" || return 0
        [[ -n $pid ]] || return 0
        uid="$(awk '/^Uid:/ { print $2 }' "/proc/$pid/status" 2>/dev/null)" || return 0
        if [[ $uid == "$1" ]]; then
            echo "$pid"
            return 0
        fi
    done
}

# ancestor_user — the user of the nearest non-root ancestor (who ran `su -c` in their terminal).
ancestor_user() {
    local pid=$$ uid
    while [[ $pid -gt 1 ]]; do
        pid="$(awk '/^PPid:/ { print $2 }' "/proc/$pid/status" 2>/dev/null)" || return 0
        [[ -n $pid ]] || return 0
        uid="$(awk '/^Uid:/ { print $2 }' "/proc/$pid/status" 2>/dev/null)" || return 0
        if [[ -n $uid && $uid != 0 ]]; then
            getent passwd "$uid" | cut -d: -f1
            return 0
        fi
    done
}

# display_pid UID — a process of UID whose environment names a display (its session's shell,
# terminal or compositor), for a run started outside that session (a root login, --user).
display_pid() {
    local pid
    for pid in $(pgrep -u "$1" 2>/dev/null | sort -n); do
        if tr '\0' '\n' <"/proc/$pid/environ" 2>/dev/null | grep -qE '^(WAYLAND_DISPLAY|DISPLAY)=.'; then
            echo "$pid"
            return 0
        fi
    done
}

DESKTOP_USER=""
GUI_WHY=""
declare -A SESSION=()
if [[ -n $USER_ARG ]]; then
    DESKTOP_USER=$USER_ARG
    USER_FROM="--user"
elif [[ -n ${SUDO_USER:-} && ${SUDO_USER} != root ]]; then
    DESKTOP_USER=$SUDO_USER
    USER_FROM="sudo"
else
    DESKTOP_USER="$(ancestor_user)"
    USER_FROM="the terminal's user (su)"
fi
if [[ $CLI_ONLY == 1 ]]; then
    GUI_WHY="--cli was given"
elif [[ -z $DESKTOP_USER ]]; then
    GUI_WHY="there is no desktop user to start the app as (run this with sudo or su -c from a terminal in your desktop session, or give --user NAME)"
else
    DESKTOP_UID="$(id -u "$DESKTOP_USER")"
    SPID="$(session_pid "$DESKTOP_UID")"
    SPID_FROM="the terminal that started this"
    if [[ -z $SPID ]] || ! tr '\0' '\n' <"/proc/$SPID/environ" 2>/dev/null | grep -qE '^(WAYLAND_DISPLAY|DISPLAY)=.'; then
        # Not started from a terminal of that session (a root login, a text console, ssh).
        other="$(display_pid "$DESKTOP_UID")"
        if [[ -n $other ]]; then
            SPID=$other
            SPID_FROM="process $other ($(cat "/proc/$other/comm" 2>/dev/null || echo '?'))"
        fi
    fi
    for var in DISPLAY WAYLAND_DISPLAY XAUTHORITY DBUS_SESSION_BUS_ADDRESS XDG_RUNTIME_DIR \
        XDG_SESSION_TYPE XDG_CURRENT_DESKTOP XDG_DATA_DIRS LANG; do
        value=""
        [[ -n $SPID ]] && value="$(session_env "$SPID" "$var")"
        # sudo keeps DISPLAY and XAUTHORITY by default (only when it is that user's sudo).
        [[ -z $value && $USER_FROM == sudo ]] && value="${!var:-}"
        SESSION[$var]=$value
    done
    runtime="/run/user/$DESKTOP_UID"
    [[ -z ${SESSION[XDG_RUNTIME_DIR]} && -d $runtime ]] && SESSION[XDG_RUNTIME_DIR]=$runtime
    [[ -z ${SESSION[DBUS_SESSION_BUS_ADDRESS]} && -S $runtime/bus ]] &&
        SESSION[DBUS_SESSION_BUS_ADDRESS]="unix:path=$runtime/bus"
    if [[ -z ${SESSION[DISPLAY]} && -z ${SESSION[WAYLAND_DISPLAY]} ]]; then
        GUI_WHY="$DESKTOP_USER's session has no display (no process of theirs has DISPLAY or WAYLAND_DISPLAY: a server, ssh or CI?)"
    fi
fi
# The builder (scripts/common.sh): the desktop user builds, with their toolchain or root's.
if [[ -n $DESKTOP_USER ]]; then
    export WARREN_BUILDER_USER=$DESKTOP_USER
fi

# secret_service_line — empty when the session bus has a Secret Service (org.freedesktop.secrets
# owned or activatable), else one line saying what to do.
secret_service_line() {
    local bus=${SESSION[DBUS_SESSION_BUS_ADDRESS]:-} out
    if [[ -z $bus ]]; then
        echo "$DESKTOP_USER's session has no D-Bus session bus, so Warren finds no keyring: log in to a desktop session (or, in the app, use Settings → Keep keys in files)"
        return 0
    fi
    command -v dbus-send >/dev/null 2>&1 || return 0
    out="$(runuser -u "$DESKTOP_USER" -- env -i DBUS_SESSION_BUS_ADDRESS="$bus" timeout 5 \
        dbus-send --session --print-reply --dest=org.freedesktop.DBus /org/freedesktop/DBus \
        org.freedesktop.DBus.ListNames 2>/dev/null;
        runuser -u "$DESKTOP_USER" -- env -i DBUS_SESSION_BUS_ADDRESS="$bus" timeout 5 \
        dbus-send --session --print-reply --dest=org.freedesktop.DBus /org/freedesktop/DBus \
        org.freedesktop.DBus.ListActivatableNames 2>/dev/null)" || true
    [[ -z $out ]] && return 0 # the bus did not answer us: say nothing rather than guess
    grep -q '"org.freedesktop.secrets"' <<<"$out" && return 0
    echo "no keyring (Secret Service) answers in $DESKTOP_USER's session, so the app will say \"No keyring is available\": start one first — in your session run: gnome-keyring-daemon --start --components=secrets (scripts/setup.sh installed it; a new login starts it) — or choose \"Keep keys in files…\" in the app"
}

BIN="$(warren_target_dir)/release/warren-helper"
APP="$(warren_target_dir)/release/warren-app"

"$WARREN_ROOT/scripts/setup.sh" --run
warren_find_cargo

if [[ -n $GUI_WHY ]]; then
    say "not starting the desktop app: $GUI_WHY."
    say "running the command-line demo instead (the peer, a tunnel from this machine, a ping, wg show)"
    warren_build_release
    say "starting the demo; press ctrl-c to stop it and remove everything it added"
    exec "$BIN" demo
fi

say "desktop user: $DESKTOP_USER (from $USER_FROM); session (from $SPID_FROM): ${SESSION[WAYLAND_DISPLAY]:+WAYLAND_DISPLAY=${SESSION[WAYLAND_DISPLAY]} }${SESSION[DISPLAY]:+DISPLAY=${SESSION[DISPLAY]}}"
KEYRING_LINE="$(secret_service_line)"
[[ -n $KEYRING_LINE ]] && warn "$KEYRING_LINE"
warren_build_release --with-app
[[ -x $BIN && -x $APP ]] || die "the build did not leave $BIN and $APP"

# ------------------------------------------------------------------------------------------------
# Everything below is undone by stop_all, by PID, newest first.

RUN_DIR="$(mktemp -d /tmp/warren-run.XXXXXX)"
# Root's logs in RUN_DIR (traversable, not listable); the client file in a directory of the user's.
chmod 711 "$RUN_DIR"
OFFER_DIR="$RUN_DIR/offer"
install -d -m 700 -o "$DESKTOP_USER" -g "$(id -g "$DESKTOP_USER")" "$OFFER_DIR"
DEMO_CONF="$OFFER_DIR/$DEMO_NAME.conf"
APP_PID="" DAEMON_PID="" DEMO_PID="" STOPPING=0
# Directories the daemon (or a tunnel) may create; those absent now are removed again at the end
# when empty. /var/lib/warren stays: the demo's keys live there (see the header).
SYSTEM_DIRS=(/run/warren /run/wireguard /etc/warren/tunnels /etc/warren /var/log/warren)
NEW_DIRS=()
for d in "${SYSTEM_DIRS[@]}"; do
    [[ -e $d ]] || NEW_DIRS+=("$d")
done

# (Both called from the traps; shellcheck cannot see that.)
# shellcheck disable=SC2317
# stop_pid PID WHAT — SIGTERM, wait up to STOP_WAIT_SECS, then SIGKILL; only our own children.
stop_pid() {
    local pid=$1 what=$2 i
    [[ -n $pid ]] && kill -0 "$pid" 2>/dev/null || return 0
    say "stopping $what (pid $pid)"
    kill -TERM "$pid" 2>/dev/null || return 0
    for ((i = 0; i < STOP_WAIT_SECS * 10; i++)); do
        kill -0 "$pid" 2>/dev/null || { wait "$pid" 2>/dev/null || true; return 0; }
        sleep 0.1
    done
    warn "$what (pid $pid) did not stop within $STOP_WAIT_SECS s of SIGTERM: SIGKILL"
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
}

# shellcheck disable=SC2317
stop_all() {
    [[ $STOPPING == 1 ]] && return 0
    STOPPING=1
    trap '' INT TERM
    stop_pid "$APP_PID" "the app"
    if [[ -n $DAEMON_PID ]]; then
        # Our daemon takes every tunnel down (the demo's too) and undoes its changes as it stops.
        stop_pid "$DAEMON_PID" "warren-helper daemon"
    elif [[ -n $DEMO_PID ]] && "$BIN" status "$DEMO_NAME" >/dev/null 2>&1; then
        # Someone else's daemon: take the demo tunnel down, as its peer is going away.
        say "taking the tunnel $DEMO_NAME down in the running daemon"
        "$BIN" down "$DEMO_NAME" >/dev/null 2>&1 || warn "could not take $DEMO_NAME down: warren-helper down $DEMO_NAME"
    fi
    stop_pid "$DEMO_PID" "the demo peer"
    rm -rf "$RUN_DIR"
    local d
    for d in "${NEW_DIRS[@]}"; do
        # Only if empty: anything in it is someone else's (another daemon's socket, a config).
        [[ -d $d ]] && rmdir "$d" 2>/dev/null && say "removed $d (it was not there before)"
    done
    say "stopped; the demo's namespace, veth and file are removed"
}
trap stop_all EXIT
trap 'say "interrupted"; exit 130' INT TERM

# tail_log FILE — its last lines, indented, for a failure message.
tail_log() { tail -n 20 "$1" 2>/dev/null | sed 's/^/    /' >&2 || true; }

# The daemon: use a running one if this user may; else start one for this session.
daemon_rc=0
"$BIN" list >/dev/null 2>&1 || daemon_rc=$?
if [[ $daemon_rc == 3 ]]; then
    if id -nG "$DESKTOP_USER" | tr ' ' '\n' | grep -qx warren; then
        group=warren
        why="you are in group warren"
    else
        group="$(id -gn "$DESKTOP_USER")"
        why="your own primary group: $DESKTOP_USER and root may use it, and any other member of $group"
    fi
    say "starting warren-helper daemon for this session: $SOCKET, group $group ($why); log: $RUN_DIR/daemon.log"
    # setsid: its own session, so ctrl-c here reaches only this script, which stops it in order.
    # --log-dir: its daily log file in the run directory too, not in /var/log/warren.
    setsid "$BIN" daemon --group "$group" --log-dir "$RUN_DIR/daemon-logs" \
        >"$RUN_DIR/daemon.log" 2>&1 </dev/null &
    DAEMON_PID=$!
    for ((i = 0; i < DAEMON_WAIT_SECS * 10; i++)); do
        kill -0 "$DAEMON_PID" 2>/dev/null || { tail_log "$RUN_DIR/daemon.log"; die "warren-helper daemon exited at start (its log above)"; }
        "$BIN" list >/dev/null 2>&1 && break
        sleep 0.1
    done
    "$BIN" list >/dev/null 2>&1 || { tail_log "$RUN_DIR/daemon.log"; die "warren-helper daemon did not answer on $SOCKET within $DAEMON_WAIT_SECS s"; }
elif [[ $daemon_rc == 0 ]]; then
    say "using the warren-helper daemon already running on $SOCKET"
else
    die "warren-helper list failed (exit $daemon_rc) on $SOCKET: $("$BIN" list 2>&1 || true)"
fi
user_rc=0
runuser -u "$DESKTOP_USER" -- "$BIN" --socket "$SOCKET" list >/dev/null 2>&1 || user_rc=$?
if [[ $user_rc == 4 ]]; then
    sock_group="$(stat -c %G "$SOCKET")"
    die "$DESKTOP_USER may not use the running daemon (its socket is for group $sock_group): add yourself with
    sudo usermod -aG $sock_group $DESKTOP_USER
then run this again (the app started from here picks the group up at once; elsewhere, log in again)"
elif [[ $user_rc != 0 ]]; then
    die "$DESKTOP_USER cannot reach the daemon on $SOCKET (warren-helper list exited $user_rc)"
fi

# The demo peer, in its own namespace; it writes $DEMO_CONF last, once the peer answers.
say "starting the demo peer (warren-helper demo --peer-only): namespace warren-demo, veth wdemo-host; log: $RUN_DIR/demo.log"
setsid "$BIN" demo --peer-only --client-conf "$DEMO_CONF" --owner "$DESKTOP_USER" \
    >"$RUN_DIR/demo.log" 2>&1 </dev/null &
DEMO_PID=$!
for ((i = 0; i < DEMO_WAIT_SECS * 10; i++)); do
    [[ -f $DEMO_CONF ]] && break
    kill -0 "$DEMO_PID" 2>/dev/null || { tail_log "$RUN_DIR/demo.log"; die "the demo peer failed (its output above)"; }
    sleep 0.1
done
[[ -f $DEMO_CONF ]] || { tail_log "$RUN_DIR/demo.log"; die "the demo peer was not ready within $DEMO_WAIT_SECS s"; }

# The app, as the desktop user, in their session.
if pgrep -u "$DESKTOP_UID" -x 'warren(-app)?' >/dev/null 2>&1; then
    ALREADY_RUNNING=1
    say "Warren is already running for $DESKTOP_USER: it gets the demo offer (single instance)"
else
    ALREADY_RUNNING=0
fi
home="$(getent passwd "$DESKTOP_USER" | cut -d: -f6)"
app_env=(HOME="$home" USER="$DESKTOP_USER" LOGNAME="$DESKTOP_USER" PATH=/usr/local/bin:/usr/bin:/bin
         RUST_LOG="${RUST_LOG:-info}")
for var in "${!SESSION[@]}"; do
    [[ -n ${SESSION[$var]} ]] && app_env+=("$var=${SESSION[$var]}")
done
say "starting the app as $DESKTOP_USER: $APP --offer-demo $DEMO_CONF; log: $RUN_DIR/app.log"
setsid runuser -u "$DESKTOP_USER" -- env -i "${app_env[@]}" "$APP" --offer-demo "$DEMO_CONF" \
    >"$RUN_DIR/app.log" 2>&1 </dev/null &
APP_PID=$!

cat >&2 <<EOF

  Warren is running. With no tunnel yet, its window offers "Try the local demo": press
  "Import and connect", and the tunnel $DEMO_NAME comes up to a peer in the network namespace
  warren-demo on this machine (if you already have tunnels, import $DEMO_CONF yourself —
  or connect the $DEMO_NAME tunnel from an earlier run). Then, in any terminal:
      ping 198.18.251.2
  Quit Warren from its tray menu (without a tray icon: close its window), or press ctrl-c here:
  this stops what it started and removes the demo.

EOF
[[ -n $KEYRING_LINE ]] && warn "$KEYRING_LINE"

# Until the app quits (or hands over to the running one: then until ctrl-c) or the demo dies.
started=$SECONDS
while kill -0 "$DEMO_PID" 2>/dev/null; do
    if [[ -n $APP_PID ]] && ! kill -0 "$APP_PID" 2>/dev/null; then
        rc=0
        wait "$APP_PID" || rc=$?
        APP_PID=""
        if [[ $ALREADY_RUNNING == 1 && $rc == 0 ]]; then
            say "the running Warren has the offer; press ctrl-c to stop the demo"
            continue
        fi
        # 0: Quit from the tray; above 128: stopped by a signal (a logout, a kill). Else it failed.
        if [[ $rc != 0 && $rc -le 128 ]] || [[ $((SECONDS - started)) -lt 5 ]]; then
            tail_log "$RUN_DIR/app.log"
            [[ $rc != 0 && $rc -le 128 ]] && die "the app exited with status $rc (its log above)"
        fi
        say "the app has quit (status $rc)"
        exit 0
    fi
    sleep 1
done
tail_log "$RUN_DIR/demo.log"
die "the demo peer stopped unexpectedly (its output above)"
