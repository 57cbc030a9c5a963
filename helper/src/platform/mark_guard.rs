//! A Linux full tunnel's reverse-path guard: the nftables rules wg-quick adds next to its policy
//! routing, so that a full tunnel works on hosts with strict reverse-path filtering
//! (`rp_filter=1`, the RHEL family's default) and the tunnel's addresses cannot be spoofed from
//! outside. Pure: [`script`] renders a [`MarkGuard`] as the exact `nft -f -` script, so it is
//! unit-tested (and checked by `nft --check` where nft exists) without root; the platform layer
//! journals and loads it like any other change ([`super::NetworkChange::MarkGuardAdded`]).
//!
//! Why it is needed. The tunnel's own UDP packets carry the fwmark, which sends them past the
//! `not fwmark` rule to the main table and out of the physical interface. A reply from the
//! endpoint arrives unmarked; strict reverse-path filtering then looks up the route *back* to the
//! endpoint without a mark, finds table *T*'s default route through the tunnel, which is not the
//! interface the reply came in on, and drops it: the tunnel never completes a handshake.
//! `src_valid_mark=1` makes that lookup use the packet's mark, but an incoming packet has none —
//! so, as wg-quick does:
//! - `postmangle` (output, after routing): a UDP packet leaving with the tunnel's mark stores the
//!   mark in its connection's conntrack entry (`ct mark set meta mark`);
//! - `premangle` (input, before routing): every UDP packet gets its connection's mark back
//!   (`meta mark set ct mark`), so the endpoint's replies carry the tunnel's mark when the kernel
//!   checks their reverse path, and pass;
//! - `preraw` (before conntrack): a packet for one of the tunnel's own addresses that arrives on
//!   another interface, from a source that is not local, is dropped — with the private table
//!   steering everything into the tunnel, reverse-path filtering can no longer tell such a
//!   spoofed packet apart. Loopback is exempt (unlike wg-quick): only this host sends there, and
//!   the kill switch's TCP resets for refused connections come back that way, from the refused
//!   (remote) address to the tunnel's.
//!
//! One table per tunnel, `inet warren_rp_<interface>`, holding both families' rules (only for the
//! families routed as full tunnels). The script adds, deletes and defines the table in one nft
//! transaction, so loading it again replaces it whole; undo deletes exactly that table, whose name
//! is checked to be Warren's before any delete.

use super::plan::Family;
use std::fmt::Write as _;
use std::net::IpAddr;

/// The nftables family of the guard's table (both IP families in one table).
pub const TABLE_FAMILY: &str = "inet";
/// The prefix of the guard's table names; the rest is the interface name.
const TABLE_PREFIX: &str = "warren_rp_";

/// What a Linux full tunnel's guard needs: computed by the planner, rendered by [`script`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MarkGuard {
    /// The tunnel interface.
    pub ifname: String,
    /// The mark on the tunnel's own UDP packets.
    pub fwmark: u32,
    /// The families routed as full tunnels (the only ones guarded), IPv4 first.
    pub families: Vec<Family>,
    /// The tunnel interface's own addresses of those families (protected from spoofing).
    pub addresses: Vec<IpAddr>,
}

impl MarkGuard {
    /// The name of its table: `warren_rp_` and the interface name, with every character nft does
    /// not take in a bare name (`-`, `.`, `=`, `+`) as `_`.
    pub fn table(&self) -> String {
        table_name(&self.ifname)
    }
}

/// The guard table's name for interface `ifname` (see [`MarkGuard::table`]).
pub fn table_name(ifname: &str) -> String {
    let tail: String = ifname
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    format!("{TABLE_PREFIX}{tail}")
}

/// Whether `table` is a guard table's name (undo deletes nothing else).
pub fn is_guard_table(table: &str) -> bool {
    table.strip_prefix(TABLE_PREFIX).is_some_and(|tail| {
        !tail.is_empty() && tail.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
    })
}

/// The nft script that installs (or atomically replaces) `guard`'s table.
pub fn script(guard: &MarkGuard) -> String {
    let table = guard.table();
    let mut s = String::new();
    let _ = writeln!(s, "add table {TABLE_FAMILY} {table}");
    let _ = writeln!(s, "delete table {TABLE_FAMILY} {table}");
    let _ = writeln!(s, "table {TABLE_FAMILY} {table} {{");
    s.push_str("  chain preraw {\n    type filter hook prerouting priority raw; policy accept;\n");
    for address in &guard.addresses {
        let (proto, addr) = match address {
            IpAddr::V4(a) => ("ip", a.to_string()),
            IpAddr::V6(a) => ("ip6", a.to_string()),
        };
        if guard.families.contains(&Family::of_addr(address)) {
            let _ = writeln!(
                s,
                "    iifname != {{ \"lo\", \"{}\" }} {proto} daddr {addr} fib saddr type != local \
                 drop",
                guard.ifname
            );
        }
    }
    s.push_str("  }\n");
    s.push_str(
        "  chain premangle {\n    type filter hook prerouting priority mangle; policy accept;\n",
    );
    for family in &guard.families {
        let _ = writeln!(
            s,
            "    meta nfproto {} meta l4proto udp meta mark set ct mark",
            nfproto(*family)
        );
    }
    s.push_str("  }\n");
    s.push_str(
        "  chain postmangle {\n    type filter hook postrouting priority mangle; policy accept;\n",
    );
    for family in &guard.families {
        let _ = writeln!(
            s,
            "    meta nfproto {} meta l4proto udp meta mark {:#x} ct mark set meta mark",
            nfproto(*family),
            guard.fwmark
        );
    }
    s.push_str("  }\n}\n");
    s
}

/// The script that removes guard table `table` if it exists, and succeeds if it does not.
pub fn delete_script(table: &str) -> String {
    format!("add table {TABLE_FAMILY} {table}\ndelete table {TABLE_FAMILY} {table}\n")
}

fn nfproto(family: Family) -> &'static str {
    match family {
        Family::Ipv4 => "ipv4",
        Family::Ipv6 => "ipv6",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn guard(families: &[Family]) -> MarkGuard {
        MarkGuard {
            ifname: "wg-home.1".into(),
            fwmark: 0xca6c,
            families: families.to_vec(),
            addresses: vec!["198.18.7.2".parse().unwrap(), "fd00:7::2".parse().unwrap()],
        }
    }

    #[test]
    fn the_script_restores_and_saves_the_mark_and_drops_spoofed_packets() {
        let script = script(&guard(&[Family::Ipv4, Family::Ipv6]));
        assert_eq!(
            script,
            "add table inet warren_rp_wg_home_1\n\
             delete table inet warren_rp_wg_home_1\n\
             table inet warren_rp_wg_home_1 {\n\
             \x20 chain preraw {\n\
             \x20   type filter hook prerouting priority raw; policy accept;\n\
             \x20   iifname != { \"lo\", \"wg-home.1\" } ip daddr 198.18.7.2 fib saddr type != local drop\n\
             \x20   iifname != { \"lo\", \"wg-home.1\" } ip6 daddr fd00:7::2 fib saddr type != local drop\n\
             \x20 }\n\
             \x20 chain premangle {\n\
             \x20   type filter hook prerouting priority mangle; policy accept;\n\
             \x20   meta nfproto ipv4 meta l4proto udp meta mark set ct mark\n\
             \x20   meta nfproto ipv6 meta l4proto udp meta mark set ct mark\n\
             \x20 }\n\
             \x20 chain postmangle {\n\
             \x20   type filter hook postrouting priority mangle; policy accept;\n\
             \x20   meta nfproto ipv4 meta l4proto udp meta mark 0xca6c ct mark set meta mark\n\
             \x20   meta nfproto ipv6 meta l4proto udp meta mark 0xca6c ct mark set meta mark\n\
             \x20 }\n\
             }\n"
        );
    }

    #[test]
    fn only_the_full_tunnel_families_are_guarded() {
        let script = script(&guard(&[Family::Ipv6]));
        assert!(
            !script.contains("ipv4") && !script.contains("ip daddr"),
            "{script}"
        );
        assert!(script.contains("ip6 daddr fd00:7::2") && script.contains("nfproto ipv6"));
    }

    #[test]
    fn only_guard_tables_count_as_ours() {
        assert!(is_guard_table(&table_name("wg0")));
        assert!(is_guard_table(&table_name("wg-x.y")));
        for other in [
            "warren",
            "warren_rp_",
            "filter",
            "warren_rp_a;b",
            "warren_rp_a b",
        ] {
            assert!(!is_guard_table(other), "{other}");
        }
    }

    #[test]
    #[cfg(target_os = "linux")]
    fn nft_accepts_the_script_where_it_is_installed() {
        // `nft --check` parses and validates without loading; it still needs CAP_NET_ADMIN to
        // open its netlink socket, so it runs where the tests run as root (CI).
        let Ok(mut child) = std::process::Command::new("nft")
            .args(["--check", "--file", "-"])
            .stdin(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
        else {
            eprintln!("nft is not installed: the script was not checked by nft");
            assert!(std::env::var_os("CI").is_none(), "CI must have nft");
            return;
        };
        use std::io::Write as _;
        let text = script(&guard(&[Family::Ipv4, Family::Ipv6]));
        child
            .stdin
            .take()
            .unwrap()
            .write_all(text.as_bytes())
            .unwrap();
        let output = child.wait_with_output().unwrap();
        if crate::sys::euid() != 0 {
            eprintln!("not root: nft --check cannot run");
            return;
        }
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
}
