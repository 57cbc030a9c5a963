#!/usr/bin/env bash
# tests/installer/run.sh — Warren's Linux package and service files, checked end to end.
#
# Usage: sudo tests/installer/run.sh [CHECK...]     run all checks, or the named ones (in order)
#        tests/installer/run.sh --list              list the checks
#
# Two packages (installer/README.md): `warren` (the desktop app + the helper, what desktops install)
# and `warren-helper` (the helper alone, headless). Checks, in order (later ones use the packages
# that `deb-build` makes):
#   service-files    the systemd unit passes `systemd-analyze verify` (in a temp root with the host's
#                    units and an executable at /usr/bin/warren-helper) with no output at all, and
#                    `systemd-analyze security --offline` rates it at most $MAX_EXPOSURE; sysusers and
#                    tmpfiles applied to a temp root make exactly the group and directories intended;
#                    the launchd plist parses and names the label the IPC client's hint uses; the
#                    maintainer and macOS scripts pass shellcheck; the WiX/productbuild XML parses;
#                    installer/macos/build-pkg.sh --stage-only: the .pkg's exact payload tree with
#                    its modes, the plist, the filled-in distribution.xml, the scripts
#   chroot-setup     scripts/setup.sh --no-cargo-tools, run as root (as `sudo` from user dana) in a
#                    fresh Debian 12 minbase root (no sudo, no Rust, no Node.js) with a copy of the
#                    repository owned by dana: afterwards sudo, every Debian package of its lists,
#                    Debian's rustc/cargo at least the workspace's rust-version with clippy and
#                    rustfmt, Node.js for Vite with npm; nothing in the checkout is root's; a second
#                    run installs nothing; `scripts/test.sh build-windows` stops at once naming the
#                    missing target and rustup; and, as dana, `cargo build -p warren-proto` and
#                    `npm ci` + `npm run build` of the UI. apt needs the network, so this root has
#                    the host's network namespace, but runs without CAP_NET_ADMIN/CAP_SYS_ADMIN (it
#                    cannot change routes, addresses, firewall or net sysctls), starts no service
#                    (policy-rc.d) and has its own mount and pid namespaces. Downloaded .debs are
#                    kept in $WARREN_INSTALLER_CACHE/apt-archives for the next run.
#   deb-build        installer/linux/build-deb.sh --fast: both packages (reuses current builds)
#   deb-contents     dpkg-deb -I/-c of each: name, version, architecture, dependencies (the app's
#                    WebKitGTK and the dlopen()ed tray library libayatana-appindicator3-1;
#                    conflicts/replaces/provides warren-helper), the exact file list (with one
#                    man page per subcommand), maintainer scripts present and executable;
#                    desktop-file-validate on the entry; the man pages and bash/zsh/fish
#                    completions (warren-helper's and warren-wg's) are byte for byte what the
#                    packaged binary's generate-docs writes, each page renders with `man -l`
#                    without warnings, the top page lists every subcommand, warren-wg(8)
#                    documents its options and environment, the completions load (bash, `zsh -n`, `fish -n`) and
#                    bash and fish complete a subcommand
#   deb-lintian      lintian reports no error on either package, and nothing about their manual
#                    pages (no-manual-page, groff warnings, uncompressed pages)
#   chroot-plain     into a fresh Debian 12 minbase root WITHOUT systemd (containers): dpkg -i as if
#                    `sudo` from user alice; the files, the group (alice added), the directories with
#                    their modes, the unit enabled (offline), `warren-helper --version`; dpkg -r keeps
#                    /etc/warren, dpkg -P leaves no path behind that was not there before
#   chroot-systemd   the same in a root WITH systemd (the systemd-sysusers/systemd-tmpfiles path), plus
#                    `systemd-analyze verify` and `security --offline` there, against the real binary
#                    at /usr/bin/warren-helper; and the installed daemon started there, under the
#                    unit's capability bounding set: its socket is 0660 root:warren, alice (added by
#                    postinst) may use it, bob may not, SIGTERM stops it and removes the socket;
#                    then a copy of that root booted with systemd-nspawn (service_boot): the unit
#                    starts at boot as Type=notify with the daemon's STATUS=, an autostart failure
#                    is in `journalctl -p err -u warren-helper`, WATCHDOG=1 keeps it up under
#                    WatchdogSec=2s, `systemctl stop` stops it
#   chroot-desktop   `warren` into a root WITH systemd and the app's libraries (what apt would pull;
#                    cached): first `warren-helper` as on a server, then `warren` over it as
#                    alice: it replaces warren-helper, the service stays enabled (not masked),
#                    /usr/bin/warren resolves every library, so does the tray library it dlopen()s
#                    (libayatana-appindicator3.so.1, which ldd on the app cannot show), the menu entry
#                    and icons are there, the daemon smoke test again; remove and purge leave no path
#                    behind
#   service-caps     the root network-namespace tests that change the system (full tunnels, kill
#                    switch, DNS, crash recovery, the daemon) run with warren-helper confined to the
#                    unit's CapabilityBoundingSet + NoNewPrivileges (capped-warren-helper): proof that
#                    the three capabilities are enough. Groups: $WARREN_CAPS_NETNS
#
# The chroot checks need root. Every command of the package (maintainer scripts, warren-helper) runs
# chrooted inside fresh network, mount and pid namespaces (`unshare --net --mount --pid`): nothing
# it does can reach the host's network, DNS or firewall, and its /proc mount vanishes with it.
# The Debian roots come from `debootstrap --variant=minbase bookworm` (deb.debian.org) once, then
# are cached in $WARREN_INSTALLER_CACHE (default /var/cache/warren-installer-test; ~450 MB) and
# copied for each run; delete that directory to rebuild them.
#
# Environment:
#   WARREN_DEB=path.deb          test this warren-helper package instead of building one; with
#   WARREN_DESKTOP_DEB=path.deb  this warren package (both needed: then deb-build builds nothing)
#   WARREN_INSTALLER_CACHE=DIR   where the Debian roots are cached
#   WARREN_DEBIAN_MIRROR=URL     debootstrap's mirror (default http://deb.debian.org/debian)
#   WARREN_BIN=path              the release binary service-caps runs (default target/release/…)
#   WARREN_CAPS_NETNS="..."      tests/netns groups for service-caps (default
#                                "fulltunnel killswitch dns crash daemon")
#   WIT_KEEP=1                   keep the temp dir (logs, chroots) and print its path
#   WIT_VERBOSE=1                print every check's log, not only failing ones
#   CI=true                      a check that cannot run (no root, a missing tool) is a failure
#
# The last line printed is exactly "N passed, N failed". Exit status: 0 if none failed.
set -uo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=scripts/common.sh
source "$HERE/../../scripts/common.sh"
# shellcheck disable=SC2034  # read by say/die in common.sh
WARREN_SAY_PREFIX="[installer]"
ROOT=$WARREN_ROOT
warren_find_cargo

LINUX_DIR="$ROOT/installer/linux"
UNIT_NAME=warren-helper.service
MAX_EXPOSURE=3.0
# The tray library the app dlopen()s (src-tauri/src/tray_support.rs) and its Debian package.
TRAY_LIBRARY=libayatana-appindicator3.so.1
TRAY_PACKAGE=libayatana-appindicator3-1
CACHE="${WARREN_INSTALLER_CACHE:-/var/cache/warren-installer-test}"
MIRROR="${WARREN_DEBIAN_MIRROR:-http://deb.debian.org/debian}"
TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"
PKG_VERSION="$(sed -n 's/^version = "\(.*\)"/\1/p' "$ROOT/Cargo.toml" | head -n 1)"
CHROOT_PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin

ALL_CHECKS=(service-files chroot-setup deb-build deb-contents deb-lintian chroot-plain chroot-systemd
            chroot-desktop service-caps)

WORK="$(mktemp -d /tmp/warren-installer-test.XXXXXX)"
DEB="${WARREN_DEB:-}"
DESKTOP_DEB="${WARREN_DESKTOP_DEB:-}"

cleanup() {
    if [[ ${WIT_KEEP:-0} == 1 ]]; then
        echo "kept: $WORK"
    else
        rm -rf --one-file-system "$WORK"
    fi
}
trap cleanup EXIT

# A check that cannot run: fails in CI, otherwise is reported and counted as skipped.
cannot_run() {
    echo "CANNOT RUN: $*"
    if [[ ${CI:-} == true ]]; then
        return 1
    fi
    return 77
}

# ----------------------------------------------------------------------------------------------------
# service-files

# A root for `systemd-analyze verify --root`: the host's unit files (so targets and dependencies
# resolve), our unit, and an executable at the path ExecStart names.
verify_root() {
    local r=$1
    mkdir -p "$r/usr/lib/systemd/system" "$r/usr/bin" "$r/etc/systemd/system"
    cp -a /usr/lib/systemd/system/. "$r/usr/lib/systemd/system/"
    if [[ -d /lib/systemd/system && ! -L /lib ]]; then
        cp -an /lib/systemd/system/. "$r/usr/lib/systemd/system/"
    fi
    cp "$LINUX_DIR/$UNIT_NAME" "$r/usr/lib/systemd/system/$UNIT_NAME"
    printf '#!/bin/sh\nexit 0\n' >"$r/usr/bin/warren-helper"
    chmod 755 "$r/usr/bin/warren-helper"
}

# expect_quiet_verify CMD... — systemd-analyze verify prints warnings (an unknown key, a bad
# capability name) yet exits 0: any output at all is a failure.
expect_quiet_verify() {
    local out rc=0
    out="$("$@" 2>&1)" || rc=$?
    if [[ $rc -ne 0 || -n $out ]]; then
        echo "$* (exit $rc):"
        echo "$out"
        return 1
    fi
    echo "ok: $*"
}

# expect_exposure CMD... — runs `systemd-analyze security --offline ...`, requires the overall
# exposure to be at most MAX_EXPOSURE.
expect_exposure() {
    local out level
    out="$("$@" 2>&1)" || true
    level="$(sed -n 's/.*Overall exposure level for [^:]*: \([0-9.]*\).*/\1/p' <<<"$out")"
    if [[ -z $level ]]; then
        echo "$out"
        echo "no exposure level in the output of: $*"
        return 1
    fi
    if ! awk -v l="$level" -v m="$MAX_EXPOSURE" 'BEGIN { exit !(l <= m) }'; then
        echo "$out"
        echo "exposure $level is above $MAX_EXPOSURE"
        return 1
    fi
    echo "ok: exposure $level (at most $MAX_EXPOSURE)"
}

# expect_stat ROOT PATH "MODE USER GROUP" — names resolved in ROOT's own passwd/group.
expect_stat() {
    local r=$1 path=$2 want=$3 mode uid gid user group got
    if [[ ! -e $r$path ]]; then
        echo "missing: $path"
        return 1
    fi
    mode="$(stat -c %a "$r$path")"
    uid="$(stat -c %u "$r$path")"
    gid="$(stat -c %g "$r$path")"
    user="$(awk -F: -v id="$uid" '$3 == id { print $1; exit }' "$r/etc/passwd" 2>/dev/null || true)"
    group="$(awk -F: -v id="$gid" '$3 == id { print $1; exit }' "$r/etc/group" 2>/dev/null || true)"
    [[ -z $user && $uid == 0 ]] && user=root
    [[ -z $group && $gid == 0 ]] && group=root
    got="$mode ${user:-$uid} ${group:-$gid}"
    if [[ $got != "$want" ]]; then
        echo "$path: $got, expected $want"
        return 1
    fi
    echo "ok: $path $got"
}

# The directories warren.tmpfiles makes, as "PATH MODE USER GROUP".
EXPECTED_DIRS=(
    "/run/warren 750 root warren"
    "/run/wireguard 755 root root"
    "/var/lib/warren 700 root root"
    "/var/log/warren 700 root root"
    "/etc/warren 755 root root"
    "/etc/warren/tunnels 700 root root"
)

expect_dirs() {
    local r=$1 line
    for line in "${EXPECTED_DIRS[@]}"; do
        # shellcheck disable=SC2086  # "PATH MODE USER GROUP"
        set -- $line
        expect_stat "$r" "$1" "$2 $3 $4"
    done
}

check_service_files() {
    local need c
    for need in systemd-analyze systemd-sysusers systemd-tmpfiles python3 shellcheck xmllint; do
        command -v "$need" >/dev/null 2>&1 || { cannot_run "$need is missing (scripts/setup.sh)"; return; }
    done

    local vroot="$WORK/verify-root"
    verify_root "$vroot"
    # --man=no: verify would run this machine's man(1) for Documentation=man:warren-helper(8), a
    # page only the package installs; deb-contents checks that page.
    expect_quiet_verify systemd-analyze verify --man=no --root="$vroot" "/usr/lib/systemd/system/$UNIT_NAME"
    expect_exposure systemd-analyze security --offline=true --root="$vroot" \
        "/usr/lib/systemd/system/$UNIT_NAME"

    # What the unit promises, so an edit cannot silently drop it.
    for c in 'Type=notify' 'WatchdogSec=30s' \
        'ExecStart=/usr/bin/warren-helper daemon' 'ExecStartPre=-/usr/bin/warren-helper recover' \
        'Restart=always' 'KillMode=mixed' 'ProtectSystem=strict' 'ProtectHome=yes' \
        'DevicePolicy=closed' 'DeviceAllow=/dev/net/tun rw' 'NoNewPrivileges=yes' \
        'ProtectKernelTunables=no' 'StateDirectory=warren' 'LogsDirectory=warren' \
        'ConfigurationDirectory=warren' \
        'RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6 AF_NETLINK' \
        'CapabilityBoundingSet=CAP_NET_ADMIN CAP_NET_BIND_SERVICE CAP_CHOWN'; do
        grep -qxF "$c" "$LINUX_DIR/$UNIT_NAME" || { echo "the unit lacks: $c"; return 1; }
    done
    echo "ok: the unit's key settings are present"

    # launchd: the label the IPC client's hint names, the daemon subcommand, kept alive.
    python3 - "$ROOT/installer/macos/net.warren.helper.plist" <<'EOF'
import plistlib, sys
with open(sys.argv[1], "rb") as f:
    p = plistlib.load(f)
assert p["Label"] == "net.warren.helper", p["Label"]
assert p["ProgramArguments"] == ["/usr/local/bin/warren-helper", "daemon"], p["ProgramArguments"]
assert p["KeepAlive"] is True and p["RunAtLoad"] is True, p
print("ok: launchd plist")
EOF
    grep -q 'system/net.warren.helper' "$ROOT/helper/proto/src/ipc/client/unix.rs" ||
        { echo "the IPC client's hint no longer names system/net.warren.helper"; return 1; }
    grep -q 'systemctl start warren-helper' "$ROOT/helper/proto/src/ipc/client/unix.rs" ||
        { echo "the IPC client's hint no longer names warren-helper (systemd)"; return 1; }

    shellcheck "$LINUX_DIR"/debian/{postinst,prerm,postrm} \
        "$ROOT"/installer/macos/{build-pkg.sh,uninstall.sh} "$ROOT"/installer/macos/scripts/* \
        "$ROOT"/installer/windows/build-msi.sh
    echo "ok: shellcheck"
    # The macOS .pkg as far as Linux goes: build-pkg.sh --stage-only (the Apple tools come after).
    local pstage="$WORK/pkg-stage" want got
    printf '#!/bin/sh\n' >"$WORK/fake-helper" && chmod 0755 "$WORK/fake-helper"
    "$ROOT/installer/macos/build-pkg.sh" --helper "$WORK/fake-helper" --version 9.8.7 --stage-only "$pstage"
    want=$'-rw-r--r-- distribution.xml\n-rw-r--r-- root/Library/LaunchDaemons/net.warren.helper.plist\n-rwxr-xr-x root/usr/local/bin/warren-helper\n-rwxr-xr-x scripts/postinstall\n-rwxr-xr-x scripts/preinstall'
    got="$(cd "$pstage" && find . -type f -printf '%M %P\n' | sort -k2)"
    [[ $got == "$want" ]] || { printf 'the staged .pkg tree is:\n%s\nnot:\n%s\n' "$got" "$want"; return 1; }
    cmp -s "$pstage/root/Library/LaunchDaemons/net.warren.helper.plist" "$ROOT/installer/macos/net.warren.helper.plist" ||
        { echo "the staged plist differs from installer/macos/net.warren.helper.plist"; return 1; }
    python3 -c 'import plistlib,sys; plistlib.load(open(sys.argv[1],"rb"))' \
        "$pstage/root/Library/LaunchDaemons/net.warren.helper.plist" || return 1
    xmllint --noout "$pstage/distribution.xml" || return 1
    if ! grep -q 'version="9.8.7"' "$pstage/distribution.xml" ||
        grep -q '@VERSION@\|APP_CHOICE' "$pstage/distribution.xml"; then
        echo "distribution.xml not filled in: $(cat "$pstage/distribution.xml")"
        return 1
    fi
    shellcheck "$pstage"/scripts/* || return 1
    echo "ok: the .pkg staged (--stage-only): payload tree and modes, plist, distribution.xml, scripts"
    xmllint --noout "$ROOT/installer/windows/warren.wxs" "$ROOT/installer/macos/distribution.xml"
    echo "ok: warren.wxs, distribution.xml parse (the MSI itself: tests/windows/msi.sh)"

    # Last, because it needs root (the directories' owners).
    if [[ $EUID -ne 0 ]]; then
        cannot_run "applying sysusers/tmpfiles to a temp root needs root (the rest passed)"
        return
    fi
    # sysusers + tmpfiles in an empty root: the group, then the directories with their owners.
    local troot="$WORK/tmpfiles-root"
    mkdir -p "$troot/etc"
    systemd-sysusers --root="$troot" "$LINUX_DIR/warren.sysusers"
    grep -q '^warren:x:[0-9]*:$' "$troot/etc/group" || { echo "no group warren in $troot/etc/group"; return 1; }
    echo "ok: sysusers makes the group warren"
    systemd-tmpfiles --root="$troot" --create "$LINUX_DIR/warren.tmpfiles"
    expect_dirs "$troot"
}

# ----------------------------------------------------------------------------------------------------
# deb-build, deb-contents, deb-lintian

check_deb_build() {
    if [[ -n ${WARREN_DEB:-} || -n ${WARREN_DESKTOP_DEB:-} ]]; then
        local f
        for f in "${WARREN_DEB:-}" "${WARREN_DESKTOP_DEB:-}"; do
            [[ -f $f ]] || { echo "WARREN_DEB and WARREN_DESKTOP_DEB must both name packages ('$f')"; return 1; }
        done
        echo "using WARREN_DEB=$WARREN_DEB WARREN_DESKTOP_DEB=$WARREN_DESKTOP_DEB"
        return 0
    fi
    if ! as_builder cargo deb --version >/dev/null 2>&1; then
        cannot_run "cargo-deb is not installed (scripts/setup.sh installs it)"
        return
    fi
    local out
    out="$("$ROOT/installer/linux/build-deb.sh" --fast)" || return 1
    echo "$out"
    DESKTOP_DEB="$(grep -E '/warren_[^/]*\.deb$' <<<"$out" || true)"
    DEB="$(grep -E '/warren-helper_[^/]*\.deb$' <<<"$out" || true)"
    [[ -f $DEB && -f $DESKTOP_DEB ]] || { echo "build-deb.sh did not print both packages' paths"; return 1; }
    echo "$DEB" >"$WORK/deb-path"
    echo "$DESKTOP_DEB" >"$WORK/desktop-deb-path"
}

need_deb() {
    [[ -z $DEB && -f $WORK/deb-path ]] && DEB="$(cat "$WORK/deb-path")"
    [[ -z $DESKTOP_DEB && -f $WORK/desktop-deb-path ]] && DESKTOP_DEB="$(cat "$WORK/desktop-deb-path")"
    if [[ -z $DEB || ! -f $DEB || -z $DESKTOP_DEB || ! -f $DESKTOP_DEB ]]; then
        echo "no packages: deb-build did not run or failed"
        return 1
    fi
}

# The files (not directories) each package must hold, exactly. Both carry the helper's part.
HELPER_PART=(
    ./lib/systemd/system/warren-helper.service
    ./usr/bin/warren-helper
    ./usr/bin/warren-wg
    ./usr/lib/sysusers.d/warren.conf
    ./usr/lib/tmpfiles.d/warren.conf
)
EXPECTED_FILES=(
    "${HELPER_PART[@]}"
    ./usr/share/doc/warren-helper/README.md
    ./usr/share/doc/warren-helper/changelog.Debian.gz
    ./usr/share/doc/warren-helper/copyright
    "./usr/share/doc/warren-helper/examples/wg-quick@.service.d/warren-wg.conf"
    ./usr/share/lintian/overrides/warren-helper
)
DESKTOP_PART=(
    ./usr/bin/warren
    ./usr/share/applications/warren.desktop
    ./usr/share/icons/hicolor/32x32/apps/warren.png
    ./usr/share/icons/hicolor/128x128/apps/warren.png
    ./usr/share/icons/hicolor/512x512/apps/warren.png
)
EXPECTED_DESKTOP_FILES=(
    "${HELPER_PART[@]}"
    "${DESKTOP_PART[@]}"
    ./usr/share/doc/warren/README.md
    ./usr/share/doc/warren/changelog.Debian.gz
    ./usr/share/doc/warren/copyright
    "./usr/share/doc/warren/examples/wg-quick@.service.d/warren-wg.conf"
    ./usr/share/lintian/overrides/warren
)

# expect_package DEB NAME EXPECTED_FILE... — control fields, maintainer scripts, the exact file list.
expect_package() {
    local deb=$1 name=$2 info field files expected control listing s bin
    shift 2
    info="$(dpkg-deb -I "$deb")"
    echo "$info"
    for field in "Package: $name" "Version: $PKG_VERSION-1" "Architecture: amd64" \
        "Section: net" "Priority: optional"; do
        grep -qF " $field" <<<"$info" || { echo "$name: control lacks '$field'"; return 1; }
    done
    grep -Eq '^ Depends: .*libc6' <<<"$info" || { echo "$name: Depends lacks libc6"; return 1; }
    grep -Eq '^ Recommends: .*nftables' <<<"$info" || { echo "$name: Recommends lacks nftables"; return 1; }
    # Listings are captured first: `... | grep -q` under pipefail fails when grep stops reading early.
    control="$(dpkg-deb --ctrl-tarfile "$deb" | tar -tvf -)"
    for s in postinst prerm postrm; do
        grep -Eq "^-rwxr-xr-x .* \./$s$" <<<"$control" ||
            { echo "$name: maintainer script $s missing or not 0755"; return 1; }
    done
    listing="$(dpkg-deb -c "$deb")"
    files="$(awk '$1 !~ /^d/ { print $6 }' <<<"$listing" | sort)"
    expected="$(printf '%s\n' "$@" | sort)"
    if [[ $files != "$expected" ]]; then
        echo "$name: file list differs (< package, > expected):"
        diff <(echo "$files") <(echo "$expected")
        return 1
    fi
    for bin in "$@"; do
        [[ $bin == ./usr/bin/* ]] || continue
        grep -Eq "^-rwxr-xr-x (root/root|0/0) .* ${bin//./\\.}$" <<<"$listing" ||
            { echo "$name: $bin is not 0755 root:root"; return 1; }
    done
    echo "ok: $name: control fields, scripts and the exact file list"
}

# Where the packages install the manual pages and completions (helper/src/cli/docs.rs writes them
# in this layout; installer/linux/build-deb.sh gzips the pages).
MAN_DIR=/usr/share/man/man8
BASH_COMPLETION=/usr/share/bash-completion/completions/warren-helper
ZSH_COMPLETION=/usr/share/zsh/vendor-completions/_warren-helper
FISH_COMPLETION=/usr/share/fish/vendor_completions.d/warren-helper.fish
# warren-wg's, from the same generate-docs run (helper/src/wg/).
WG_COMPLETIONS=(
    /usr/share/bash-completion/completions/warren-wg
    /usr/share/zsh/vendor-completions/_warren-wg
    /usr/share/fish/vendor_completions.d/warren-wg.fish
)

# package_docs DEB NAME — extracts DEB into $WORK/x-NAME and runs ITS warren-helper's
# generate-docs into $WORK/docs-NAME; prints the package paths those files must have (so the exact
# file list below also covers one page per subcommand the packaged binary has).
package_docs() {
    local deb=$1 name=$2 x="$WORK/x-$2" docs="$WORK/docs-$2" f
    rm -rf "$x" "$docs"
    dpkg-deb -x "$deb" "$x"
    "$x/usr/bin/warren-helper" generate-docs "$docs" >/dev/null
    for f in "$docs"/man8/*.8; do
        printf '.%s/%s.gz\n' "$MAN_DIR" "${f##*/}"
    done
    printf '.%s\n' "$BASH_COMPLETION" "$ZSH_COMPLETION" "$FISH_COMPLETION" "${WG_COMPLETIONS[@]}"
}

# expect_docs NAME — the pages and completions in the package extracted by package_docs are
# exactly what its binary generates; each page renders with man(1) without a warning; the top page
# names every subcommand `--help` lists; the completions load in bash, zsh and fish, and bash and
# fish complete a subcommand.
expect_docs() {
    local name=$1 x="$WORK/x-$1" docs="$WORK/docs-$1" f page out subs sub
    for f in "$docs"/man8/*.8; do
        page="$x$MAN_DIR/${f##*/}.gz"
        cmp <(gzip -dc "$page") "$f" || { echo "$name: ${page#"$x"} is not what the binary generates"; return 1; }
        out="$(LC_ALL=C.UTF-8 MANWIDTH=100 man --warnings -E UTF-8 -l "$page" 2>"$WORK/man.err")"
        if [[ -s $WORK/man.err || $(wc -l <<<"$out") -lt 8 ]]; then
            cat "$WORK/man.err"
            echo "$name: man -l ${page#"$x"} warned or rendered almost nothing:"
            echo "$out"
            return 1
        fi
    done
    echo "ok: $name: $(find "$docs/man8" -name '*.8' | wc -l) pages in $MAN_DIR, as the packaged binary generates them; man -l renders each without warnings"
    out="$(LC_ALL=C.UTF-8 MANWIDTH=200 man -l "$x$MAN_DIR/warren-helper.8.gz")"
    subs="$("$x/usr/bin/warren-helper" --help | sed -n '/^Commands:/,/^$/p' | awk 'NR > 1 && $1 != "help" { print $1 }')"
    [[ $(wc -w <<<"$subs") -ge 10 ]] || { echo "$name: --help lists only: $subs"; return 1; }
    for sub in $subs; do
        grep -qF "warren-helper-$sub(8)" <<<"$out" || { echo "$name: warren-helper(8) does not list $sub"; return 1; }
    done
    echo "ok: $name: warren-helper(8) lists every subcommand: ${subs//$'\n'/ }"
    # warren-wg(8): its options and environment, as `warren-wg --help` has them.
    out="$(LC_ALL=C.UTF-8 MANWIDTH=200 man -l "$x$MAN_DIR/warren-wg.8.gz")"
    for f in --foreground IFNAME WG_PROCESS_FOREGROUND LOG_LEVEL; do
        grep -qF -- "$f" <<<"$out" || { echo "$name: warren-wg(8) does not mention $f"; return 1; }
        "$x/usr/bin/warren-wg" --help | grep -qF -- "$f" || { echo "$name: warren-wg --help does not mention $f"; return 1; }
    done
    [[ $("$x/usr/bin/warren-wg" --version) == "warren-wg $PKG_VERSION" ]] ||
        { echo "$name: warren-wg --version said '$("$x/usr/bin/warren-wg" --version)'"; return 1; }
    echo "ok: $name: warren-wg(8) documents --foreground, IFNAME, WG_PROCESS_FOREGROUND and LOG_LEVEL; --version"
    for f in "$BASH_COMPLETION" "$ZSH_COMPLETION" "$FISH_COMPLETION" "${WG_COMPLETIONS[@]}"; do
        cmp "$x$f" "$docs/$(case $f in *bash*) echo bash-completion ;; *zsh*) echo zsh ;; *) echo fish ;; esac)/${f##*/}" ||
            { echo "$name: $f is not what the binary generates"; return 1; }
    done
    # bash: the script registers a completion function, and that function completes `warren-helper l`.
    # shellcheck disable=SC2016  # for that bash
    out="$(bash -c 'source "$1" && complete -p warren-helper &&
        COMP_WORDS=(warren-helper l) COMP_CWORD=1 COMP_LINE="warren-helper l" COMP_POINT=15 &&
        _warren__helper warren-helper l warren-helper && echo "replies: ${COMPREPLY[*]}"' bash "$x$BASH_COMPLETION" 2>&1)" ||
        { echo "$out"; echo "$name: the bash completion does not load"; return 1; }
    echo "$out"
    grep -q '^complete .* warren-helper$' <<<"$out" || { echo "$name: bash: no completion registered"; return 1; }
    grep -qx 'replies: list logs' <<<"$out" || { echo "$name: bash does not complete 'warren-helper l' to list logs"; return 1; }
    echo "ok: $name: bash completion loads and completes"
    for sh in zsh fish; do
        command -v "$sh" >/dev/null 2>&1 || { cannot_run "$sh is missing (scripts/setup.sh)"; return; }
    done
    zsh -n "$x$ZSH_COMPLETION" || { echo "$name: zsh -n fails on $ZSH_COMPLETION"; return 1; }
    fish -n "$x$FISH_COMPLETION" || { echo "$name: fish -n fails on $FISH_COMPLETION"; return 1; }
    zsh -n "$x${WG_COMPLETIONS[1]}" || { echo "$name: zsh -n fails on ${WG_COMPLETIONS[1]}"; return 1; }
    fish -n "$x${WG_COMPLETIONS[2]}" || { echo "$name: fish -n fails on ${WG_COMPLETIONS[2]}"; return 1; }
    bash -n "$x${WG_COMPLETIONS[0]}" || { echo "$name: bash -n fails on ${WG_COMPLETIONS[0]}"; return 1; }
    # shellcheck disable=SC2016  # for fish
    out="$(fish --no-config -c 'source $argv[1]; complete -C "warren-helper sta"' "$x$FISH_COMPLETION" 2>&1)"
    grep -q '^status' <<<"$out" || { echo "$out"; echo "$name: fish does not complete 'warren-helper sta'"; return 1; }
    echo "ok: $name: zsh -n and fish -n accept the completions; fish completes a subcommand"
}

check_deb_contents() {
    need_deb || return 1
    local -a docs
    mapfile -t docs < <(package_docs "$DEB" warren-helper)
    expect_package "$DEB" warren-helper "${EXPECTED_FILES[@]}" "${docs[@]}"
    expect_docs warren-helper
    mapfile -t docs < <(package_docs "$DESKTOP_DEB" warren)
    expect_package "$DESKTOP_DEB" warren "${EXPECTED_DESKTOP_FILES[@]}" "${docs[@]}"
    expect_docs warren
    local info
    info="$(dpkg-deb -I "$DESKTOP_DEB")"
    grep -Eq '^ Depends: .*libwebkit2gtk-4\.1-0' <<<"$info" || { echo "warren: Depends lacks WebKitGTK"; return 1; }
    # The tray library is dlopen()ed, so dpkg-shlibdeps cannot find it: it is listed by hand.
    grep -Eq "^ Depends: (.*, )?$TRAY_PACKAGE(,|$| )" <<<"$info" ||
        { echo "warren: Depends lacks the tray library $TRAY_PACKAGE"; return 1; }
    for field in Conflicts Replaces Provides; do
        grep -Eq "^ $field: warren-helper$" <<<"$info" || { echo "warren: no '$field: warren-helper'"; return 1; }
    done
    echo "ok: warren depends on WebKitGTK and the tray library, and takes warren-helper's place"
    command -v desktop-file-validate >/dev/null 2>&1 ||
        { cannot_run "desktop-file-validate is missing (desktop-file-utils; scripts/setup.sh)"; return; }
    desktop-file-validate "$ROOT/installer/linux/warren.desktop"
    echo "ok: desktop-file-validate warren.desktop"
}

check_deb_lintian() {
    need_deb || return 1
    command -v lintian >/dev/null 2>&1 || { cannot_run "lintian is missing (scripts/setup.sh)"; return; }
    local out rc deb
    for deb in "$DEB" "$DESKTOP_DEB"; do
        rc=0
        # --fail-on error: warnings and info are printed but do not fail.
        out="$(lintian --fail-on error --info "$deb" 2>&1)" || rc=$?
        echo "$out"
        if [[ $rc -ne 0 ]] || grep -q '^E: ' <<<"$out"; then
            echo "lintian reports errors on $(basename "$deb") (exit $rc)"
            return 1
        fi
        echo "ok: no lintian errors in $(basename "$deb")"
        # The man pages and completions must stay in the package (docs.rs, build-deb.sh).
        if grep -Eq 'no-manual-page|manpage-not-compressed|groff-message|bad-whatis-entry' <<<"$out"; then
            echo "lintian finds the manual pages of $(basename "$deb") missing or faulty"
            return 1
        fi
        echo "ok: lintian is content with the manual pages of $(basename "$deb")"
    done
}

# ----------------------------------------------------------------------------------------------------
# chroot-plain, chroot-systemd

# in_root ROOT CMD... — CMD chrooted in ROOT, in new network, mount and pid namespaces (with their own
# /proc), with a clean environment plus any VAR=value given before CMD via `env`.
in_root() {
    local r=$1
    shift
    unshare --net --mount --pid --fork --mount-proc="$r/proc" \
        chroot "$r" /usr/bin/env -i PATH="$CHROOT_PATH" HOME=/root LANG=C.UTF-8 \
        DEBIAN_FRONTEND=noninteractive "$@"
}

# The libraries `warren` depends on, as apt package names (its Depends without versions, first
# alternatives), minus what the package's own scripts need and minbase has.
desktop_libraries() {
    dpkg-deb -f "$DESKTOP_DEB" Depends | tr ',' '\n' | sed -e 's/|.*//' -e 's/(.*)//' -e 's/ //g' |
        grep -vxE 'passwd|adduser|' | sort -u | tr '\n' ' '
}

# The cached Debian roots: minbase; minbase + systemd; that + the app's libraries (rebuilt when the
# list changes). Made once (network), then reused.
ensure_cached_root() {
    local kind=$1 dir="$CACHE/bookworm-$1" want=""
    if [[ $kind == desktop ]]; then
        want="$(desktop_libraries)"
        [[ -f $dir/.warren-complete && $(cat "$dir/.warren-libraries" 2>/dev/null) == "$want" ]] && return 0
    fi
    [[ $kind != desktop && -f $dir/.warren-complete ]] && return 0
    mkdir -p "$CACHE"
    rm -rf --one-file-system "$dir" "$dir.partial"
    if [[ $kind == minbase ]]; then
        echo "debootstrap --variant=minbase bookworm from $MIRROR (once; cached in $CACHE)"
        if ! debootstrap --variant=minbase bookworm "$dir.partial" "$MIRROR" >"$WORK/debootstrap.log" 2>&1; then
            tail -n 20 "$WORK/debootstrap.log"
            echo "debootstrap could not build a Debian 12 root from $MIRROR (is the mirror reachable?)"
            return 1
        fi
    else
        local base=minbase packages=systemd
        if [[ $kind == desktop ]]; then
            base=systemd packages=$want
        fi
        ensure_cached_root "$base" || return 1
        cp -a "$CACHE/bookworm-$base" "$dir.partial"
        rm -f "$dir.partial/.warren-complete"
        echo "installing into a copy of the $base root (once): $packages"
        # Network on purpose (apt), but still a private mount and pid namespace for /proc.
        # shellcheck disable=SC2016  # $PACKAGES is expanded by the chroot's sh
        if ! unshare --mount --pid --fork --mount-proc="$dir.partial/proc" chroot "$dir.partial" \
            /usr/bin/env -i PATH="$CHROOT_PATH" DEBIAN_FRONTEND=noninteractive PACKAGES="$packages" sh -c \
            'apt-get -q update && apt-get install -y -q --no-install-recommends $PACKAGES && apt-get clean' \
            >"$WORK/apt.log" 2>&1; then
            tail -n 20 "$WORK/apt.log"
            echo "could not install $packages into the Debian root (is the mirror reachable?)"
            return 1
        fi
        [[ $kind == desktop ]] && echo "$want" >"$dir.partial/.warren-libraries"
    fi
    touch "$dir.partial/.warren-complete"
    mv "$dir.partial" "$dir"
}

# Every path in ROOT, for the before/after comparison. Left out: what dpkg and apt keep about
# packages, and the runtime state that tools (not the package) leave on what is a tmpfs on a real
# machine — adduser's lock /run/adduser, systemd-analyze's /run/systemd/systemd-units-load. The
# package's own /run/warren and /run/wireguard are checked by name.
snapshot() {
    (cd "$1" && find . -xdev \
        \( -path ./proc -o -path ./var/lib/dpkg -o -path ./var/cache -o -path ./var/log/apt \
        -o -path ./tmp \) -prune -o -print |
        grep -vxE '\./var/log/(dpkg|alternatives)\.log|\./run/adduser|\./run/systemd/systemd-units-load' |
        sort)
}

expect_absent() {
    local r=$1 p
    shift
    for p in "$@"; do
        if [[ -e $r$p || -L $r$p ]]; then
            echo "still there: $p"
            return 1
        fi
    done
    echo "ok: gone: $*"
}

# dpkg_status ROOT PACKAGE — "install ok installed 0.1.0-1", or what dpkg-query says.
dpkg_status() {
    # shellcheck disable=SC2016  # dpkg-query's own ${Field} syntax
    in_root "$1" dpkg-query -W -f '${Status} ${Version}' "$2" 2>&1 || true
}

# chroot_cycle KIND — install, check, remove, check, purge, check, in a copy of the cached root KIND.
# minbase and systemd: the warren-helper package. desktop: warren-helper, then warren over it.
chroot_cycle() {
    local kind=$1 r="$WORK/root-$1" out pkg=warren-helper doc=warren-helper
    if [[ $EUID -ne 0 ]]; then
        cannot_run "needs root (chroot, namespaces): sudo $0"
        return
    fi
    for need in debootstrap unshare chroot; do
        command -v "$need" >/dev/null 2>&1 || { cannot_run "$need is missing (scripts/setup.sh)"; return; }
    done
    need_deb || return 1
    ensure_cached_root "$kind" || return 1
    cp -a "$CACHE/bookworm-$kind" "$r"
    cp "$DEB" "$r/tmp/warren-helper.deb"
    cp "$DESKTOP_DEB" "$r/tmp/warren.deb"

    # A desktop user who runs `sudo apt install ./warren-helper.deb`.
    in_root "$r" useradd --create-home alice
    snapshot "$r" >"$WORK/before-$kind"

    echo "--- dpkg -i warren-helper (SUDO_USER=alice)"
    in_root "$r" SUDO_USER=alice dpkg -i /tmp/warren-helper.deb
    if [[ $kind == desktop ]]; then
        # A server's headless helper, then the desktop package over it (Conflicts + Replaces).
        pkg=warren doc=warren
        echo "--- dpkg -i warren over warren-helper (SUDO_USER=alice)"
        in_root "$r" SUDO_USER=alice dpkg -i /tmp/warren.deb
        out="$(dpkg_status "$r" warren-helper)"
        [[ $out != "install ok installed"* ]] || { echo "warren-helper is still installed next to warren"; return 1; }
        echo "ok: warren replaced warren-helper ($out)"
        [[ $(readlink "$r/etc/systemd/system/$UNIT_NAME" || true) != /dev/null ]] ||
            { echo "$UNIT_NAME is left masked after the switch"; return 1; }
        echo "ok: $UNIT_NAME not masked"
    fi
    out="$(dpkg_status "$r" "$pkg")"
    [[ $out == "install ok installed $PKG_VERSION-1" ]] ||
        { echo "dpkg-query says: '$out', expected $pkg installed $PKG_VERSION-1"; return 1; }
    out="$(in_root "$r" warren-helper --version)"
    [[ $out == "warren-helper $PKG_VERSION" ]] || { echo "warren-helper --version said: '$out'"; return 1; }
    echo "ok: warren-helper --version: $out"
    grep -q '^warren:' "$r/etc/group" || { echo "no group warren"; return 1; }
    out="$(in_root "$r" id -nG alice)"
    [[ " $out " == *" warren "* ]] || { echo "alice was not added to warren (her groups: $out)"; return 1; }
    echo "ok: group warren exists and alice is in it"
    expect_dirs "$r"
    [[ -L $r/etc/systemd/system/multi-user.target.wants/$UNIT_NAME ]] ||
        { echo "the unit is not enabled (no multi-user.target.wants link)"; return 1; }
    echo "ok: $UNIT_NAME enabled"
    if [[ $kind == desktop ]]; then
        local p
        for p in "${DESKTOP_PART[@]}"; do
            [[ -f $r/${p#./} ]] || { echo "missing: ${p#.}"; return 1; }
        done
        out="$(in_root "$r" ldd /usr/bin/warren)"
        if grep -q 'not found' <<<"$out"; then
            echo "$out"
            echo "/usr/bin/warren lacks libraries its Depends should have pulled in"
            return 1
        fi
        echo "ok: the app, its menu entry and icons; ldd finds all $(wc -l <<<"$out") libraries"
        tray_library_loadable "$r" || return 1
    fi

    if [[ $kind != minbase ]]; then
        # --man=no: the root has no man(1) (the page itself is checked by deb-contents).
        expect_quiet_verify in_root "$r" systemd-analyze verify --man=no "/lib/systemd/system/$UNIT_NAME"
        expect_exposure in_root "$r" systemd-analyze security --offline=true "/lib/systemd/system/$UNIT_NAME"
        daemon_smoke "$r"
    fi
    if [[ $kind == systemd ]]; then
        service_boot "$r"
    fi

    echo "--- dpkg -r $pkg"
    in_root "$r" dpkg -r "$pkg"
    expect_absent "$r" /usr/bin/warren-helper "/lib/systemd/system/$UNIT_NAME" /usr/lib/sysusers.d/warren.conf \
        /usr/lib/tmpfiles.d/warren.conf /run/warren /usr/bin/warren /usr/share/applications/warren.desktop
    [[ -d $r/etc/warren/tunnels ]] || { echo "remove (not purge) deleted /etc/warren/tunnels"; return 1; }
    echo "ok: remove keeps /etc/warren"
    # As dh_installsystemd does: removal masks the unit; the enablement link goes on purge.
    [[ $(readlink "$r/etc/systemd/system/$UNIT_NAME") == /dev/null ]] ||
        { echo "remove did not mask $UNIT_NAME"; return 1; }
    echo "ok: remove masks $UNIT_NAME"

    echo "--- dpkg -P $pkg"
    in_root "$r" dpkg -P "$pkg"
    [[ $kind == desktop ]] && in_root "$r" dpkg -P warren-helper
    expect_absent "$r" /etc/warren /var/lib/warren /var/log/warren /run/wireguard "/etc/systemd/system/$UNIT_NAME" \
        "/etc/systemd/system/multi-user.target.wants/$UNIT_NAME" "/usr/share/doc/$doc"
    snapshot "$r" >"$WORK/after-$kind"
    if ! diff "$WORK/before-$kind" "$WORK/after-$kind"; then
        echo "paths differ before install and after purge (< before, > after)"
        return 1
    fi
    echo "ok: after purge no path is left that was not there before"
    grep -q '^warren:' "$r/etc/group" || { echo "purge removed the group warren (it should stay)"; return 1; }
    echo "ok: the group warren stays, as Debian leaves system groups"
    rm -rf --one-file-system "$r"
}

# tray_library_loadable ROOT — the tray library the app dlopen()s (so `ldd /usr/bin/warren` does not
# show it) is there, under the name the app loads, and every library it needs resolves.
tray_library_loadable() {
    local r=$1 path out
    path="$(in_root "$r" ldconfig -p | awk -v n="$TRAY_LIBRARY" '$1 == n { print $NF; exit }')"
    [[ -n $path && -e $r$path ]] ||
        { echo "$TRAY_LIBRARY is not installed (ldconfig -p knows no such library)"; return 1; }
    out="$(in_root "$r" ldd "$path")"
    if grep -q 'not found' <<<"$out"; then
        echo "$out"
        echo "$path lacks libraries: the app would have no tray icon"
        return 1
    fi
    echo "ok: the tray library $path is there and ldd finds all $(wc -l <<<"$out") of its libraries"
}

# The unit's CapabilityBoundingSet as setpriv's --bounding-set argument: -all,+net_admin,...
unit_bounding_set() {
    local caps
    caps="$(sed -n 's/^CapabilityBoundingSet=//p' "$LINUX_DIR/$UNIT_NAME" | tr '[:upper:]' '[:lower:]' |
        sed -e 's/cap_//g' -e 's/ \{1,\}/,+/g')"
    [[ -n $caps ]] || { echo "no CapabilityBoundingSet= in $UNIT_NAME" >&2; return 1; }
    printf -- '-all,+%s\n' "$caps"
}

# daemon_smoke ROOT — the installed daemon, with the package's paths, group and users, confined as
# the unit confines it. bob is a user outside group warren.
daemon_smoke() {
    local r=$1 caps out
    caps="$(unit_bounding_set)"
    in_root "$r" useradd --create-home bob
    echo "--- warren-helper daemon under setpriv --bounding-set $caps --no-new-privs"
    # shellcheck disable=SC2016  # the script is for the chroot's sh
    out="$(in_root "$r" CAPS="$caps" sh -c '
        setpriv --bounding-set "$CAPS" --no-new-privs warren-helper daemon >/tmp/daemon.log 2>&1 &
        pid=$!
        i=0
        while [ $i -lt 100 ] && [ ! -S /run/warren/helper.sock ] && kill -0 $pid 2>/dev/null; do
            sleep 0.1; i=$((i + 1))
        done
        echo "socket: $(stat -c "%a %U %G %F" /run/warren/helper.sock 2>&1)"
        runuser -u alice -- warren-helper list >/dev/null 2>&1; echo "alice: $?"
        runuser -u bob -- warren-helper list >/dev/null 2>&1; echo "bob: $?"
        kill -TERM $pid; wait $pid; echo "daemon: $?"
        [ -e /run/warren/helper.sock ] && echo "socket left behind"
        sed "s/^/  log: /" /tmp/daemon.log; rm -f /tmp/daemon.log
        true')"
    echo "$out"
    grep -qx 'socket: 660 root warren socket' <<<"$out" || { echo "the socket is not 0660 root:warren"; return 1; }
    grep -qx 'alice: 0' <<<"$out" || { echo "alice (group warren) could not use the daemon"; return 1; }
    grep -qx 'bob: 0' <<<"$out" && { echo "bob (not in group warren) could use the daemon"; return 1; }
    grep -qx 'daemon: 0' <<<"$out" || { echo "the daemon did not stop cleanly on SIGTERM"; return 1; }
    grep -q 'socket left behind' <<<"$out" && { echo "the daemon left its socket behind"; return 1; }
    in_root "$r" userdel --remove bob
    echo "ok: the daemon runs with the unit's capabilities; members only; clean stop"
}

# service_boot ROOT — a copy of ROOT (with the package installed) booted with its own systemd in a
# container (systemd-nspawn --boot: a loopback-only network, not registered with any machined), so
# the real unit runs under the real service manager: enabled, it starts at boot as Type=notify and
# is active (running) with the daemon's STATUS= (its socket served, the autostart outcome); a
# system tunnel that fails at autostart is in `journalctl -u warren-helper -p err`, an info line
# is not; with WatchdogSec=2s (a drop-in) it stays up, pinging, past several watchdog periods;
# `systemctl stop` leaves it inactive with its socket gone. The copy goes afterwards.
service_boot() {
    local r="$1-boot" machine="warren-test-$$" nspawn pid="" i out key
    if ! command -v systemd-nspawn >/dev/null 2>&1 || ! command -v nsenter >/dev/null 2>&1; then
        cannot_run "systemd-nspawn or nsenter is missing (systemd-container, util-linux; scripts/setup.sh)"
        return
    fi
    cp -a "$1" "$r"
    # An autostart tunnel that fails before changing anything: its endpoint is inside its own
    # AllowedIPs (a routing loop).
    key="$(in_root "$r" warren-helper genkey)"
    printf '[Interface]\nPrivateKey = %s\nAddress = 198.19.5.1/24\n\n[Peer]\nPublicKey = %s\nAllowedIPs = 198.18.0.0/15\nEndpoint = 198.18.0.2:51820\n' \
        "$key" "$(in_root "$r" sh -c "echo $key | warren-helper pubkey")" >"$r/etc/warren/tunnels/wrtbad.conf"
    chmod 600 "$r/etc/warren/tunnels/wrtbad.conf"
    touch "$r/etc/warren/tunnels/wrtbad.autostart"
    mkdir -p "$r/etc/systemd/system/$UNIT_NAME.d"
    printf '[Service]\nWatchdogSec=2s\n' >"$r/etc/systemd/system/$UNIT_NAME.d/watchdog.conf"

    echo "--- systemd-nspawn --boot (machine $machine)"
    systemd-nspawn -D "$r" --machine="$machine" --register=no --keep-unit --private-network \
        --boot --console=pipe -q </dev/null >"$WORK/nspawn.log" 2>&1 &
    nspawn=$!
    for ((i = 0; i < 100; i++)); do
        pid="$(pgrep -P "$nspawn" -x systemd | head -n 1 || true)"
        [[ -n $pid ]] && break
        sleep 0.1
    done
    [[ -n $pid ]] || { cat "$WORK/nspawn.log"; echo "the container's systemd did not start"; return 1; }
    local rc=0
    CONTAINER_PID=$pid
    service_boot_checks || rc=$?
    in_container systemctl poweroff >/dev/null 2>&1 || true
    for ((i = 0; i < 600; i++)); do
        kill -0 "$nspawn" 2>/dev/null || break
        sleep 0.1
    done
    if kill -0 "$nspawn" 2>/dev/null; then
        echo "the container did not power off within 60 s: killing it"
        # Its init first: that ends every process of its pid namespace.
        kill -KILL "$pid" "$nspawn" 2>/dev/null || true
    fi
    wait "$nspawn" 2>/dev/null || true
    # What nspawn leaves on a host whose /run is not a tmpfs: its propagation directory.
    rm -rf --one-file-system "/run/systemd/nspawn/propagate/$machine"
    rm -rf --one-file-system "$r"
    return "$rc"
}

# in_container CMD... — CMD in the booted container's namespaces (service_boot).
in_container() { nsenter -t "$CONTAINER_PID" -a env -i PATH="$CHROOT_PATH" LANG=C.UTF-8 "$@"; }

# service_boot_checks — service_boot's checks, in the booted container.
service_boot_checks() {
    local out before_pid after i
    # The manager's bus comes a moment after its process.
    for ((i = 0; i < 600; i++)); do
        out="$(in_container systemctl is-system-running 2>&1 || true)"
        [[ $out == *"connect to bus"* || -z $out ]] || break
        sleep 0.1
    done
    out="$(in_container timeout 60 systemctl is-system-running --wait 2>&1 || true)"
    echo "system: $out"
    out="$(in_container systemctl show "$UNIT_NAME" -p Type -p ActiveState -p SubState -p StatusText -p NRestarts -p MainPID -p WatchdogUSec)"
    echo "$out"
    grep -qx 'Type=notify' <<<"$out" || { echo "the unit is not Type=notify"; return 1; }
    if ! grep -qx 'ActiveState=active' <<<"$out" || ! grep -qx 'SubState=running' <<<"$out"; then
        in_container journalctl -b --no-pager -u "$UNIT_NAME" | tail -n 30
        echo "warren-helper did not come up at boot"
        return 1
    fi
    grep -qx 'StatusText=serving /run/warren/helper.sock; autostart tunnels: 0 up, 1 failed' <<<"$out" ||
        { echo "no STATUS= from the daemon's READY=1"; return 1; }
    grep -qx 'WatchdogUSec=2s' <<<"$out" || { echo "the watchdog drop-in is not in effect"; return 1; }
    in_container test -S /run/warren/helper.sock || { echo "no socket /run/warren/helper.sock"; return 1; }
    echo "ok: started at boot as Type=notify: active (running) after READY=1, STATUS= shown"

    out="$(in_container journalctl -b --no-pager -o cat -u "$UNIT_NAME" -p err)"
    echo "journalctl -u $UNIT_NAME -p err:"
    echo "$out"
    grep -q "wrtbad.*routing loop" <<<"$out" || { echo "the failing autostart tunnel is not among the errors"; return 1; }
    grep -q "ready: serving" <<<"$out" && { echo "an info line is among the errors: no priorities"; return 1; }
    out="$(in_container journalctl -b --no-pager -o cat -u "$UNIT_NAME" -p info)"
    grep -q "ready: serving" <<<"$out" || { echo "the info line is not in the journal: $out"; return 1; }
    echo "ok: journalctl -p err shows the error and not the info lines"

    before_pid="$(in_container systemctl show "$UNIT_NAME" -p MainPID --value)"
    sleep 6
    after="$(in_container systemctl show "$UNIT_NAME" -p ActiveState -p NRestarts -p MainPID -p WatchdogTimestampMonotonic)"
    echo "$after"
    if ! grep -qx 'ActiveState=active' <<<"$after" || ! grep -qx 'NRestarts=0' <<<"$after" ||
        ! grep -qx "MainPID=$before_pid" <<<"$after"; then
        in_container journalctl -b --no-pager -u "$UNIT_NAME" | tail -n 20
        echo "warren-helper did not survive 6 s with WatchdogSec=2s"
        return 1
    fi
    grep -qx 'WatchdogTimestampMonotonic=0' <<<"$after" && { echo "systemd never got WATCHDOG=1"; return 1; }
    echo "ok: WATCHDOG=1 kept it running through three watchdog periods"

    in_container systemctl stop "$UNIT_NAME" || { echo "systemctl stop failed"; return 1; }
    out="$(in_container systemctl show "$UNIT_NAME" -p ActiveState -p Result)"
    echo "$out"
    if ! grep -qx 'ActiveState=inactive' <<<"$out" || ! grep -qx 'Result=success' <<<"$out"; then
        echo "systemctl stop did not leave it inactive and successful"
        return 1
    fi
    in_container test -e /run/warren/helper.sock && { echo "the socket is left after stop"; return 1; }
    echo "ok: systemctl stop: inactive, socket gone"
}

# ----------------------------------------------------------------------------------------------------
# chroot-setup

# The capabilities the set-up root runs without: nothing in it can change the host's network (it
# shares the host's network namespace, for apt), mount, load modules or set the clock.
SETUP_DROPPED_CAPS=-net_admin,-net_raw,-sys_admin,-sys_module,-sys_time,-sys_boot

# net_root ROOT CMD... — like in_root, but with the host's network (apt, crates.io, npm), the apt
# archive cache bind-mounted, and SETUP_DROPPED_CAPS out of the bounding set.
net_root() {
    local r=$1
    shift
    # shellcheck disable=SC2016  # for that sh
    unshare --mount --pid --fork --mount-proc="$r/proc" \
        sh -c 'mount --bind "$1" "$2/var/cache/apt/archives" && shift 2 && exec "$@"' sh \
        "$CACHE/apt-archives" "$r" \
        setpriv --bounding-set "$SETUP_DROPPED_CAPS" -- \
        chroot "$r" /usr/bin/env -i PATH="$CHROOT_PATH" HOME=/root LANG=C.UTF-8 \
        DEBIAN_FRONTEND=noninteractive ${NODE_EXTRA_CA_CERTS:+NODE_EXTRA_CA_CERTS=/etc/ssl/certs/ca-certificates.crt} "$@"
}

# The package lists of scripts/setup.sh, as words.
setup_package_lists() {
    # shellcheck disable=SC1090  # the arrays only, cut out of setup.sh
    (eval "$(sed -n -e '/^RUN_PACKAGES=(/,/^)/p' -e '/^TEST_PACKAGES=(/,/^)/p' -e '/^RUST_DEBIAN=(/p' \
        "$ROOT/scripts/setup.sh")" && echo "${RUN_PACKAGES[*]} ${TEST_PACKAGES[*]} ${RUST_DEBIAN[*]}")
}

check_chroot_setup() {
    if [[ $EUID -ne 0 ]]; then
        cannot_run "needs root (chroot, namespaces): sudo $0"
        return
    fi
    for need in debootstrap unshare chroot setpriv git; do
        command -v "$need" >/dev/null 2>&1 || { cannot_run "$need is missing (scripts/setup.sh)"; return; }
    done
    ensure_cached_root minbase || return 1
    local r="$WORK/root-setup" home=/home/dana src=/home/dana/warren out start need have p
    cp -a "$CACHE/bookworm-minbase" "$r"
    mkdir -p "$CACHE/apt-archives/partial"
    printf '#!/bin/sh\n# chroot-setup: no service starts in this root\nexit 101\n' >"$r/usr/sbin/policy-rc.d"
    chmod 755 "$r/usr/sbin/policy-rc.d"
    # As the Debian installer sets it up: security updates on (where the current rustc-web is).
    echo "deb ${MIRROR%/debian}/debian-security bookworm-security main" >"$r/etc/apt/sources.list.d/security.list"
    # A TLS-intercepting proxy's CA, as the host trusts it (installed when setup.sh installs
    # ca-certificates), and Node.js told to use the system's store as the host's is.
    if compgen -G '/usr/local/share/ca-certificates/*.crt' >/dev/null; then
        mkdir -p "$r/usr/local/share/ca-certificates"
        cp /usr/local/share/ca-certificates/*.crt "$r/usr/local/share/ca-certificates/"
    fi
    in_root "$r" useradd --create-home --shell /bin/bash dana
    # The repository as a fresh clone has it (tracked and new files, no target/ or node_modules).
    mkdir -p "$r$src"
    git -C "$ROOT" ls-files -z --cached --others --exclude-standard |
        (cd "$ROOT" && xargs -0 tar -cf - --no-recursion --ignore-failed-read) | tar -xf - -C "$r$src"
    in_root "$r" chown -R dana:dana "$src"
    for p in sudo cargo rustc node npm; do
        if in_root "$r" sh -c "command -v $p" >/dev/null 2>&1; then
            echo "the minbase root already has $p: not a bare machine"
            return 1
        fi
    done
    echo "ok: the bare root has no sudo, cargo, rustc, node or npm"

    echo "--- scripts/setup.sh --no-cargo-tools (root, SUDO_USER=dana)"
    start=$SECONDS
    net_root "$r" SUDO_USER=dana "$src/scripts/setup.sh" --no-cargo-tools
    echo "ok: set-up finished in $((SECONDS - start)) s"

    in_root "$r" sudo --version | head -n 1
    local -a pkgs
    read -r -a pkgs <<<"$(setup_package_lists)"
    for p in "${pkgs[@]}"; do
        in_root "$r" dpkg -s "$p" 2>/dev/null | grep -q '^Status: install ok installed' ||
            { echo "not installed: $p"; return 1; }
    done
    echo "ok: all ${#pkgs[@]} Debian packages of setup.sh's lists are installed (sudo, rustc-web, cargo-web, ...)"
    # What dana's builds get: as_builder's PATH (Debian's cargo in /usr/bin, the private Node.js).
    local dana_path="$src/target/tools/node/bin:$home/.cargo/bin:/usr/local/bin:/usr/bin:/bin"
    need="$(sed -n 's/^rust-version = "\([0-9.]*\)"/\1/p' "$ROOT"/Cargo.toml "$ROOT"/*/Cargo.toml \
        "$ROOT"/helper/*/Cargo.toml | sort -V | tail -n 1)"
    have="$(in_root "$r" runuser -u dana -- env PATH="$dana_path" rustc --version | awk '{ print $2 }')"
    [[ "$(printf '%s\n%s\n' "$need" "${have%%-*}" | sort -V | head -n 1)" == "$need" ]] ||
        { echo "rustc $have is older than the workspace's rust-version $need"; return 1; }
    echo "ok: rustc $have (rust-version $need); $(in_root "$r" runuser -u dana -- env PATH="$dana_path" cargo --version)"
    in_root "$r" runuser -u dana -- env PATH="$dana_path" HOME="$home" cargo clippy --version
    in_root "$r" runuser -u dana -- env PATH="$dana_path" HOME="$home" cargo fmt --version
    echo "ok: cargo clippy and cargo fmt"
    have="$(in_root "$r" runuser -u dana -- env PATH="$dana_path" node --version)"
    warren_node_version_ok "$have" || { echo "node $have does not satisfy Vite's $WARREN_NODE_MIN"; return 1; }
    echo "ok: node $have ($WARREN_NODE_MIN), npm $(in_root "$r" runuser -u dana -- env PATH="$dana_path" HOME="$home" npm --version)"
    out="$(find "$r$src" "$r$home" ! -user "$(stat -c %u "$r$home")" -printf '%P\n' | head -n 5)"
    [[ -z $out ]] || { echo "owned by someone other than dana after set-up: $out"; return 1; }
    echo "ok: everything in dana's home and checkout is still dana's"

    echo "--- scripts/setup.sh again: nothing to do"
    out="$(net_root "$r" SUDO_USER=dana "$src/scripts/setup.sh" --no-cargo-tools 2>&1)" ||
        { echo "$out"; echo "the second set-up failed"; return 1; }
    grep -q 'Debian packages: all [0-9]* already installed' <<<"$out" ||
        { echo "$out"; echo "the second set-up installed packages again"; return 1; }
    grep -q 'apt-get\|npm pack' <<<"$out" && { echo "$out"; echo "the second set-up fetched again"; return 1; }
    echo "ok: a second run installs nothing"

    echo "--- scripts/test.sh build-windows with Debian's Rust: must stop, naming the target and rustup"
    local rc=0
    out="$(net_root "$r" SUDO_USER=dana timeout 120 "$src/scripts/test.sh" build-windows 2>&1)" || rc=$?
    echo "$out" | tail -n 8
    [[ $rc -ne 0 ]] || { echo "the build-windows stage passed without rustup's target"; return 1; }
    if ! grep -q 'the Rust target x86_64-pc-windows-gnu is not installed' <<<"$out" ||
        ! grep -q 'install rustup' <<<"$out"; then
        echo "the build-windows stage did not say which target is missing and to install rustup"
        return 1
    fi
    echo "ok: build-windows stops at once and says what to install"

    echo "--- as dana: cargo build -p warren-proto; npm ci and npm run build (ui)"
    start=$SECONDS
    # shellcheck disable=SC2016  # for dana's sh
    net_root "$r" runuser -u dana -- env PATH="$dana_path" HOME="$home" SRC="$src" \
        ${NODE_EXTRA_CA_CERTS:+NODE_EXTRA_CA_CERTS=/etc/ssl/certs/ca-certificates.crt} sh -euc '
        cd "$SRC"
        cargo build --locked -q -p warren-proto
        npm --prefix ui ci --no-audit --no-fund --loglevel=error
        npm --prefix ui run build --silent >/dev/null'
    [[ -f $r$src/ui/dist/index.html ]] || { echo "npm run build left no ui/dist/index.html"; return 1; }
    echo "ok: warren-proto builds with Debian's Rust and the UI with that Node.js ($((SECONDS - start)) s)"
    rm -rf --one-file-system "$r"
}

check_chroot_plain() { chroot_cycle minbase; }
check_chroot_systemd() { chroot_cycle systemd; }
check_chroot_desktop() { chroot_cycle desktop; }

check_service_caps() {
    if [[ $EUID -ne 0 ]]; then
        cannot_run "needs root (network namespaces): sudo $0"
        return
    fi
    command -v setpriv >/dev/null 2>&1 || { cannot_run "setpriv is missing (util-linux)"; return; }
    local real="${WARREN_BIN:-$TARGET_DIR/release/warren-helper}" groups
    [[ -x $real ]] || { echo "no warren-helper at $real (cargo build --release -p warren-helper)"; return 1; }
    read -r -a groups <<<"${WARREN_CAPS_NETNS:-fulltunnel killswitch dns crash daemon}"
    echo "tests/netns ${groups[*]} with $real confined to $(unit_bounding_set) + no_new_privs"
    WARREN_REAL_BIN="$real" WARREN_BIN="$HERE/capped-warren-helper" "$ROOT/tests/netns/run.sh" "${groups[@]}"
}

# ----------------------------------------------------------------------------------------------------

if [[ ${1:-} == --list ]]; then
    printf '%s\n' "${ALL_CHECKS[@]}"
    exit 0
elif [[ ${1:-} == -h || ${1:-} == --help ]]; then
    sed -n '2,/^set -uo/p' "$0" | sed -e '$d' -e 's/^# \{0,1\}//'
    exit 0
fi
SELECTED=()
if [[ $# -eq 0 ]]; then
    SELECTED=("${ALL_CHECKS[@]}")
else
    for a in "$@"; do
        [[ " ${ALL_CHECKS[*]} " == *" $a "* ]] || die "unknown check '$a' (checks: ${ALL_CHECKS[*]})"
    done
    for c in "${ALL_CHECKS[@]}"; do
        [[ " $* " == *" $c "* ]] && SELECTED+=("$c")
    done
fi

PASSED=0 FAILED=0 SKIPPED=0
FAILED_NAMES=()
echo "tests/installer: ${#SELECTED[@]} check(s); work dir $WORK"
k=0
for c in "${SELECTED[@]}"; do
    k=$((k + 1))
    log="$WORK/$c.log"
    start=$SECONDS
    printf '[%d/%d] %-16s ' "$k" "${#SELECTED[@]}" "$c"
    # A subshell with errexit, so the first failing command fails the check; its variables stay
    # there, hence deb-build leaves the package's path in $WORK/deb-path.
    (
        set -e
        "check_${c//-/_}"
    ) >"$log" 2>&1 </dev/null
    rc=$?
    dur=$((SECONDS - start))
    case $rc in
        0)
            PASSED=$((PASSED + 1))
            echo "PASS (${dur}s)"
            [[ ${WIT_VERBOSE:-0} == 1 ]] && sed 's/^/    /' "$log"
            ;;
        77)
            SKIPPED=$((SKIPPED + 1))
            echo "SKIP (${dur}s): $(grep -m1 'CANNOT RUN:' "$log" | sed 's/.*CANNOT RUN: //')"
            ;;
        *)
            FAILED=$((FAILED + 1))
            FAILED_NAMES+=("$c")
            echo "FAIL (${dur}s, exit $rc)"
            sed 's/^/    /' "$log"
            ;;
    esac
done

[[ $FAILED -gt 0 ]] && echo "failed: ${FAILED_NAMES[*]}"
if [[ $SKIPPED -gt 0 ]]; then
    echo "$PASSED passed, $FAILED failed, $SKIPPED skipped"
else
    echo "$PASSED passed, $FAILED failed"
fi
[[ $FAILED -eq 0 ]]
