# shellcheck shell=bash
# Group "dns": the tunnel's DNS with the `file` method (WARREN_DNS_METHOD=file) inside a namespace.
#
# `ip netns exec NS` bind-mounts /etc/netns/NS/resolv.conf over /etc/resolv.conf for the command it
# runs, so a warren-helper started that way rewrites the namespace's file, never the host's. Each
# test writes a known /etc/netns/NS/resolv.conf first (odd bytes and no final newline, so "restored"
# means byte for byte), brings a split tunnel up with `DNS = <resolver>, example.test`, checks the
# namespace's resolv.conf names the tunnel's resolver while the tunnel is up, and checks it is
# restored exactly after SIGINT, after SIGTERM, and after kill -9 followed by `warren-helper up`
# again or by `warren-helper recover`. Bad input (a Warren leftover in resolv.conf, search domains
# without a resolver) must fail before anything changes. The host's /etc/resolv.conf is compared
# before and after every test, and while the tunnel is up.
#
# While the tunnel is up, another program (a DHCP client renewing its lease) rewrites the file with
# new content; within 5 s the tunnel's resolver must be back in it, the backup must be byte for byte
# what the other program wrote, and after SIGINT the file must be byte for byte that content:
#   dns/rewrite-inplace  the file is rewritten in place (/etc/netns/NS/resolv.conf, which is what
#                        the helper sees through ip netns exec's bind mount: a bind-mounted file can
#                        only be written in place, so that is what a DHCP client in a namespace or
#                        container does)
#   dns/rewrite-rename   a temp file renamed over /etc/resolv.conf, the usual way. A rename over a
#                        bind mount fails (EBUSY), and one over /etc/netns/NS/resolv.conf would not
#                        reach the helper (its bind mount keeps the old inode), so here the helper
#                        runs in a private mount namespace whose /etc is an overlay on the host's
#                        /etc with its writes in $WRT_TMP (the namespace's resolv.conf is the
#                        overlay's upper file, seeded from /etc/netns/NS/resolv.conf); the rename
#                        runs inside that mount namespace (nsenter), never on the host's /etc.
#
# systemd-resolved and resolvconf are host-wide (D-Bus, /run/resolvconf), so they are never used
# here; their logic is covered by the unit tests (a fake resolved on a private D-Bus connection).

DNS_SERVER=198.19.0.53
DNS_SEARCH=example.test

# The namespace's resolv.conf before the tunnel: a comment, two resolvers, an options line, a byte
# that is not UTF-8, and no newline at the end.
dns_original() {
    printf '# the namespace resolver, written by test-dns.sh\nnameserver 198.18.77.1\nnameserver fd00:77::1\noptions ndots:2\n# \xfe\xff end without newline'
}

# dns_host_state — what the host's /etc/resolv.conf is: type, mode, link target, SHA-256.
dns_host_state() {
    local f=/etc/resolv.conf
    if [[ -L $f ]]; then
        printf 'symlink -> %s; ' "$(readlink "$f")"
    fi
    if [[ -e $f ]]; then
        printf '%s %s %s\n' "$(stat -L -c '%F %a %u:%g' "$f")" "$(sha256sum <"$f" | cut -d' ' -f1)" "$(stat -c '%i' "$f")"
    else
        echo missing
    fi
}

dns_check_host() {
    local now
    now="$(dns_host_state)"
    [[ $now == "$DNS_HOST_BEFORE" ]] || fail "the HOST's /etc/resolv.conf changed ($1): was '$DNS_HOST_BEFORE', now '$now'"
}

# The EXIT trap: remove /etc/netns/NS (ip netns del leaves it), check the host file, then the usual.
dns_cleanup() {
    local rc=$?
    set +eE
    trap - ERR
    if [[ -n ${DNS_ETC_NETNS:-} && -d $DNS_ETC_NETNS ]]; then
        rm -rf -- "$DNS_ETC_NETNS"
    fi
    if [[ -n ${DNS_HOST_BEFORE:-} && $(dns_host_state) != "$DNS_HOST_BEFORE" ]]; then
        printf '[%6ss] FAIL: the HOST'\''s /etc/resolv.conf changed during the test: was %s, now %s\n' \
            "$(wrt_elapsed)" "$DNS_HOST_BEFORE" "$(dns_host_state)" >&2
        [[ $rc -eq 0 ]] && rc=1
    fi
    (exit "$rc")
    wrt_cleanup
}

# dns_setup [dns=LIST] — namespace a with the known resolv.conf, keys, and $DNS_CONF for interface
# $DNS_IF (a split tunnel; its peer need not exist: DNS does not wait for a handshake).
dns_setup() {
    local dns="$DNS_SERVER, $DNS_SEARCH" kv
    for kv in "$@"; do
        case $kv in
            dns=*) dns=${kv#dns=} ;;
            *) fail "dns_setup: unknown argument $kv" ;;
        esac
    done
    need_warren_bin
    DNS_HOST_BEFORE="$(dns_host_state)"
    trap dns_cleanup EXIT
    export WARREN_DNS_METHOD=file
    export WARREN_STATE_DIR="$WRT_TMP/state"
    ns_new a
    DNS_NS="$(ns a)"
    DNS_ETC_NETNS="/etc/netns/$DNS_NS"
    [[ ! -e $DNS_ETC_NETNS ]] || fail "$DNS_ETC_NETNS already exists"
    mkdir -p "$DNS_ETC_NETNS"
    DNS_FILE="$DNS_ETC_NETNS/resolv.conf"
    DNS_ORIG="$WRT_TMP/resolv.conf.orig"
    dns_original >"$DNS_ORIG"
    cp "$DNS_ORIG" "$DNS_FILE"
    chmod 644 "$DNS_FILE"
    # Safety first: inside the namespace /etc/resolv.conf must be the bind-mounted namespace file,
    # or the helper would be writing the host's.
    local inside
    inside="$(ip netns exec "$DNS_NS" sha256sum /etc/resolv.conf | cut -d' ' -f1)"
    [[ $inside == "$(sha256sum <"$DNS_ORIG" | cut -d' ' -f1)" ]] ||
        fail "inside $DNS_NS /etc/resolv.conf is not $DNS_FILE (ip netns exec did not bind-mount it): not running the helper"
    # shellcheck disable=SC2016  # $5 is awk's
    [[ -n $(ip netns exec "$DNS_NS" awk '$5 == "/etc/resolv.conf"' /proc/self/mountinfo) ]] ||
        fail "inside $DNS_NS /etc/resolv.conf is not a mount point: not running the helper"

    key_new a
    key_new p
    DNS_IF="$(ifname A)"
    DNS_CONF="$WRT_TMP/$DNS_IF.conf"
    conf_interface "$DNS_CONF" key=a addr="$TUN4_A/24" port="$WG_PORT"
    echo "DNS = $dns" >>"$DNS_CONF"
    conf_peer "$DNS_CONF" pub="$(key_pub p)" allowed="198.19.0.0/24" endpoint="198.18.0.9:$WG_PORT"
    chmod 600 "$DNS_CONF"
}

# The namespace's resolv.conf names the tunnel's resolver and search domain, under Warren's marker.
dns_is_tunnel() {
    local text
    text="$(cat "$DNS_FILE")"
    [[ $(head -n 1 <<<"$text") == "# Generated by Warren for $DNS_IF;"* ]] &&
        grep -qx "nameserver $DNS_SERVER" <<<"$text" &&
        grep -qx "search $DNS_SEARCH" <<<"$text" &&
        ! grep -q 198.18.77.1 <<<"$text"
}

dns_is_original() { cmp -s "$DNS_ORIG" "$DNS_FILE"; }

dns_expect_tunnel() {
    wait_until 10 "$DNS_FILE to name the tunnel's resolver $DNS_SERVER" dns_is_tunnel
    local inside
    inside="$(ip netns exec "$DNS_NS" cat /etc/resolv.conf)"
    grep -qx "nameserver $DNS_SERVER" <<<"$inside" || fail "inside $DNS_NS /etc/resolv.conf lacks nameserver $DNS_SERVER: $inside"
    dns_check_host "while the tunnel is up"
    log "resolv.conf of $DNS_NS during the tunnel: $(tr '\n' '|' <"$DNS_FILE")"
}

dns_expect_original() {
    if ! dns_is_original; then
        log "expected (hex):"
        od -c "$DNS_ORIG" | head -n 20 >&2
        log "found (hex):"
        od -c "$DNS_FILE" | head -n 20 >&2
        fail "$DNS_FILE is not byte-for-byte the original $1"
    fi
    [[ $(stat -c %a "$DNS_FILE") == 644 ]] || fail "$DNS_FILE mode is $(stat -c %a "$DNS_FILE") after $1, not 644"
    dns_check_host "$1"
    log "resolv.conf of $DNS_NS restored byte for byte $1"
}

# No backup may be left once the original is back.
dns_expect_no_backup() {
    local left
    left="$(find "$WARREN_STATE_DIR" -path '*/dns/*' -type f 2>/dev/null || true)"
    [[ -z $left ]] || fail "DNS backup(s) left behind $1: $left"
}

# t_dns_stop SIG — up, DNS set; SIG; exit 0 and the original back.
t_dns_stop() {
    local sig=$1
    dns_setup
    peer_up warren a "$DNS_IF" "$DNS_CONF"
    dns_expect_tunnel
    peer_stop "$DNS_IF" "$sig" 10 || fail "warren-helper did not exit within 10 s of SIG$sig"
    [[ $PEER_EXIT_STATUS == 0 ]] || fail "warren-helper exited with status $PEER_EXIT_STATUS after SIG$sig (expected 0)"
    dns_expect_original "after SIG$sig"
    dns_expect_no_backup "after SIG$sig"
}

# t_dns_crash HOW — up, DNS set; kill -9 (the file keeps the tunnel's DNS); then HOW=up: start
# again (recovery at start, DNS set again, then SIGINT) or HOW=recover: `warren-helper recover`.
t_dns_crash() {
    local how=$1 out rc
    dns_setup
    peer_up warren a "$DNS_IF" "$DNS_CONF"
    dns_expect_tunnel
    peer_stop "$DNS_IF" KILL 10 || fail "warren-helper survived SIGKILL for 10 s"
    dns_is_tunnel || fail "after kill -9 $DNS_FILE no longer holds the tunnel's DNS (nothing to recover?)"
    dns_check_host "after kill -9"
    case $how in
        up)
            peer_up warren a "$DNS_IF" "$DNS_CONF"
            dns_expect_tunnel
            peer_stop "$DNS_IF" INT 10 || fail "the second warren-helper did not exit within 10 s of SIGINT"
            [[ $PEER_EXIT_STATUS == 0 ]] || fail "the second warren-helper exited with status $PEER_EXIT_STATUS"
            dns_expect_original "after kill -9, up again, SIGINT"
            ;;
        recover)
            rc=0
            out="$(timeout 30 ip netns exec "$DNS_NS" "$WARREN_BIN" recover --interface "$DNS_IF" 2>&1)" || rc=$?
            log "warren-helper recover (status $rc): $out"
            [[ $rc -eq 0 ]] || fail "warren-helper recover failed (status $rc): $out"
            dns_expect_original "after kill -9 and warren-helper recover"
            rc=0
            out="$(timeout 30 ip netns exec "$DNS_NS" "$WARREN_BIN" recover --interface "$DNS_IF" 2>&1)" || rc=$?
            [[ $rc -eq 0 ]] || fail "a second warren-helper recover failed (status $rc): $out"
            dns_expect_original "after a second warren-helper recover"
            ;;
        *) fail "t_dns_crash: $how?" ;;
    esac
    dns_expect_no_backup "after recovery"
}

# t_dns_refused CASE — `up` must fail with a clear message and change nothing: no interface, the
# namespace's resolv.conf as it was.
#   leftover: resolv.conf carries a Warren marker the journal does not know (another tunnel's DNS)
#   search-only: DNS lists only a search domain
t_dns_refused() {
    local what=$1 expect rc out
    case $what in
        leftover)
            dns_setup
            printf '# Generated by Warren for wrtother0; the original is restored when the tunnel goes down\nnameserver 198.18.99.1\n' >"$DNS_ORIG"
            cp "$DNS_ORIG" "$DNS_FILE"
            expect="was written by Warren for wrtother0 and not restored yet"
            ;;
        search-only)
            dns_setup dns="$DNS_SEARCH"
            expect="DNS lists search domains ($DNS_SEARCH) but no DNS server address"
            ;;
        *) fail "t_dns_refused: $what?" ;;
    esac
    rc=0
    out="$(RUST_LOG=info timeout 30 ip netns exec "$DNS_NS" "$WARREN_BIN" up --foreground "$DNS_CONF" --interface "$DNS_IF" 2>&1)" || rc=$?
    [[ $rc -ne 0 ]] || fail "warren-helper up succeeded with bad DNS input ($what); output: $out"
    [[ $rc -ne 124 ]] || fail "warren-helper up with bad DNS input ($what) did not exit within 30 s"
    grep -qF -- "$expect" <<<"$out" || fail "warren-helper up ($what) failed without saying '$expect'; output: $out"
    log "refused as expected: $(grep -F -- "$expect" <<<"$out" | head -n 1)"
    ! ip -n "$DNS_NS" link show "$DNS_IF" >/dev/null 2>&1 || fail "$DNS_IF exists after a refused start"
    cmp -s "$DNS_ORIG" "$DNS_FILE" || fail "$DNS_FILE changed although the start was refused"
    dns_expect_no_backup "after a refused start"
    dns_check_host "after a refused start"
}

# The content the "DHCP client" writes: not the original, not UTF-8 at the end, no final newline.
dns_foreign() {
    printf '# written by a DHCP client at lease renewal (test-dns.sh)\nnameserver 198.18.88.1\nsearch lease.test\n# \xfd end without newline'
}

# t_dns_rewrite HOW — see the header (HOW: inplace or rename).
t_dns_rewrite() {
    local how=$1 new ovl wrapper pid backups real_bin
    dns_setup
    new="$WRT_TMP/resolv.conf.dhcp"
    dns_foreign >"$new"
    case $how in
        inplace)
            peer_up warren a "$DNS_IF" "$DNS_CONF"
            dns_expect_tunnel
            cat "$new" >"$DNS_FILE"
            ;;
        rename)
            ovl="$WRT_TMP/etc-overlay"
            mkdir -p "$ovl/upper" "$ovl/work" "$ovl/probe"
            # Can this machine mount an overlay over /etc in a private mount namespace at all?
            unshare -m --propagation private mount -t overlay overlay \
                -o "lowerdir=/etc,upperdir=$ovl/upper,workdir=$ovl/work" "$ovl/probe" 2>"$WRT_TMP/overlay.err" ||
                skip "cannot mount an overlayfs here ($(cat "$WRT_TMP/overlay.err")): the rename test needs one"
            cp -p "$DNS_FILE" "$ovl/upper/resolv.conf"
            DNS_FILE="$ovl/upper/resolv.conf"
            real_bin=$WARREN_BIN
            wrapper="$WRT_TMP/warren-in-overlay.sh"
            # One process all along (ip netns exec, unshare and sh all exec), so the pid that
            # peer_up records and signals is the helper's.
            # shellcheck disable=SC2016  # $0 and $@ are the inner sh's
            printf '#!/bin/sh\nexec unshare -m --propagation private sh -c %s %s "$@"\n' \
                "'mount -t overlay overlay -o \"lowerdir=/etc,upperdir=$ovl/upper,workdir=$ovl/work\" /etc && exec \"\$0\" \"\$@\"'" \
                "$real_bin" >"$wrapper"
            chmod 755 "$wrapper"
            WARREN_BIN=$wrapper peer_up warren a "$DNS_IF" "$DNS_CONF"
            wait_until 10 "$DNS_FILE to name the tunnel's resolver $DNS_SERVER" dns_is_tunnel
            dns_check_host "while the tunnel is up"
            pid="$(peer_pid "$DNS_IF")"
            [[ $(readlink "/proc/$pid/exe") == "$(readlink -f "${WARREN_REAL_BIN:-$real_bin}")" ]] ||
                fail "pid $pid is $(readlink "/proc/$pid/exe"), not the helper"
            # The DHCP client's way: a temp file beside it, renamed over it.
            nsenter -t "$pid" -m sh -c 'cat >/etc/resolv.conf.dhcp-new && chmod 644 /etc/resolv.conf.dhcp-new && mv -f /etc/resolv.conf.dhcp-new /etc/resolv.conf' <"$new" ||
                fail "the rename inside the helper's mount namespace failed"
            ;;
        *) fail "t_dns_rewrite: $how?" ;;
    esac
    log "rewrote the namespace's resolv.conf ($how) with $(tr '\n' '|' <"$new")"
    dns_check_host "after the rewrite"
    wait_until 5 "the tunnel's resolver back in $DNS_FILE after the rewrite ($how)" dns_is_tunnel
    backups="$(find "$WARREN_STATE_DIR" -path '*/dns/*' -type f)"
    [[ $(wc -l <<<"$backups") == 1 ]] || fail "expected one DNS backup, found: $backups"
    cmp -s "$new" "$backups" || fail "the backup $backups is not byte for byte what the DHCP client wrote"
    grep -q "was rewritten by another program" "${WRT_PEER_LOG[$DNS_IF]}" || fail "the helper's log does not say the file was rewritten"
    log "the tunnel's DNS is back; the backup is the DHCP client's file"
    peer_stop "$DNS_IF" INT 10 || fail "warren-helper did not exit within 10 s of SIGINT"
    [[ $PEER_EXIT_STATUS == 0 ]] || fail "warren-helper exited with status $PEER_EXIT_STATUS after SIGINT"
    DNS_ORIG=$new
    dns_expect_original "after the rewrite ($how) and SIGINT: the DHCP client's content"
    dns_expect_no_backup "after the rewrite ($how) and SIGINT"
}

register dns/sigint t_dns_stop INT
register dns/sigterm t_dns_stop TERM
register dns/kill9-up t_dns_crash up
register dns/kill9-recover t_dns_crash recover
register dns/refused-leftover t_dns_refused leftover
register dns/refused-search-only t_dns_refused search-only
register dns/rewrite-inplace t_dns_rewrite inplace
register dns/rewrite-rename t_dns_rewrite rename
