# shellcheck shell=bash
# Group "cli": `warren-helper genkey | pubkey | genpsk` behave like `wg genkey | pubkey | genpsk`
# (base64 of 32 bytes, keys interchangeable with wg's). No namespaces needed.

is_key() { [[ $1 =~ ^[A-Za-z0-9+/]{42}[AEIMQUYcgkosw048]=$ ]]; }

t_cli_keys() {
    need_warren_bin
    local k1 k2 p_w p_wg psk wgkey bad_rc
    k1="$("$WARREN_BIN" genkey)" || fail "warren-helper genkey failed"
    k2="$("$WARREN_BIN" genkey)"
    is_key "$k1" || fail "genkey printed '$k1', not a base64 32-byte key"
    [[ $k1 != "$k2" ]] || fail "two genkey calls printed the same key"
    p_w="$("$WARREN_BIN" pubkey <<<"$k1")" || fail "warren-helper pubkey failed"
    p_wg="$(wg pubkey <<<"$k1")" || fail "wg pubkey rejects warren-helper genkey's output"
    [[ $p_w == "$p_wg" ]] || fail "pubkey mismatch for a warren key: warren '$p_w', wg '$p_wg'"
    wgkey="$(wg genkey)"
    p_w="$("$WARREN_BIN" pubkey <<<"$wgkey")"
    p_wg="$(wg pubkey <<<"$wgkey")"
    [[ $p_w == "$p_wg" ]] || fail "pubkey mismatch for a wg key: warren '$p_w', wg '$p_wg'"
    psk="$("$WARREN_BIN" genpsk)" || fail "warren-helper genpsk failed"
    is_key "$psk" || fail "genpsk printed '$psk', not a base64 32-byte key"
    bad_rc=0
    "$WARREN_BIN" pubkey <<<"not a key" >/dev/null 2>&1 || bad_rc=$?
    [[ $bad_rc -ne 0 ]] || fail "warren-helper pubkey accepted 'not a key'"
    log "genkey/pubkey/genpsk agree with wg"
}

register cli/keys t_cli_keys
