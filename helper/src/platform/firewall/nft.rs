//! The kill switch in nftables' language: [`ruleset`] renders a [`KillSwitchPlan`] as the exact
//! script `nft -f -` loads. Pure (a string in, a string out), so it is unit-tested and compiled on
//! every OS, although only Linux loads it.
//!
//! Why it looks the way it does:
//! - One table, `inet warren` (both IP families in one place, so IPv6 cannot be forgotten). The
//!   script starts with `add table` + `delete table` and then defines the table whole: nft runs a
//!   file as one transaction, so applying again replaces the previous kill switch atomically and
//!   there is never a moment without one. No other table is named, and the script never flushes
//!   the ruleset, so other programs' tables are never touched.
//! - Base chains for input, output and forward with `policy drop`, at priority `filter - 10`:
//!   before the usual filter tables. In nftables a drop in any base chain is final and an accept
//!   only ends that chain, so another table can never let through what this one refuses; the
//!   priority only makes refused packets stop here first.
//! - Output refuses with a TCP reset or an ICMP "administratively prohibited" (chain `refuse`), so
//!   programs fail at once instead of timing out; input drops silently.
//! - Order inside a chain: loopback, then the DNS restriction (it must come before "the tunnel
//!   is allowed", because DNS through the tunnel is restricted too), the tunnel, the WireGuard
//!   socket's traffic to its endpoints, DHCP and neighbour discovery, the LAN, then refuse.
//! - The endpoints live in two named sets, `endpoints4` and `endpoints6` (`address . port`), which
//!   the output rule for the WireGuard socket looks up. When the endpoints move (roaming,
//!   re-resolution, `wg set ... endpoint`), [`endpoints_update`] flushes and refills the sets in
//!   one transaction on the same table: the rules are never absent, and in between the packet path
//!   sees either the old or the new elements. A change of the socket's mark or port reloads the
//!   whole table instead (the same atomic replacement as the first load).
//! - Inbound, datagrams to the socket's own UDP port pass from any address (see the firewall
//!   module docs: a multi-homed server's answer from another of its addresses must reach the core,
//!   which authenticates it and roams; only then is the new address added to the set and the
//!   socket may send there).
//! - Rules with an empty anonymous set are left out (nft rejects empty anonymous sets).

use super::plan::{
    KillSwitchPlan, SocketMatch, LAN_V4, LAN_V4_MULTICAST, LAN_V6, LAN_V6_MULTICAST,
};
use std::fmt::Write as _;
use std::net::{IpAddr, SocketAddr};

/// The address family of Warren's table: both IPv4 and IPv6.
pub(super) const TABLE_FAMILY: &str = "inet";
/// The name of Warren's table.
pub(super) const TABLE_NAME: &str = "warren";

/// The hook priority of every base chain: just before the usual `filter` (0) chains.
const PRIORITY: &str = "filter - 10";

/// The named set of IPv4 endpoints (address . port) the WireGuard socket may send to.
const SET4: &str = "endpoints4";
/// The named set of IPv6 endpoints.
const SET6: &str = "endpoints6";

/// The DNS port, UDP and TCP.
const DNS: &str = "meta l4proto { tcp, udp } th dport 53";

/// The nft script that installs (or atomically replaces) the kill switch described by `plan`.
pub fn ruleset(plan: &KillSwitchPlan) -> String {
    let tunnel = format!("\"{}\"", plan.ifname);
    let (dns4, dns6) = split(&plan.dns_servers);
    let (own4, own6) = split(&plan.tunnel_addresses);
    let lan4_out = [LAN_V4, LAN_V4_MULTICAST].concat();
    let lan6_out = [LAN_V6, LAN_V6_MULTICAST].concat();

    let mut s = Script::default();
    s.line(
        0,
        &format!(
            "# Warren kill switch for {}: generated; load with `nft -f -`.",
            plan.ifname
        ),
    );
    s.line(
        0,
        "# Replaces any previous kill switch in one transaction; other tables are untouched.",
    );
    s.line(0, &format!("add table {TABLE_FAMILY} {TABLE_NAME}"));
    s.line(0, &format!("delete table {TABLE_FAMILY} {TABLE_NAME}"));
    s.line(0, &format!("table {TABLE_FAMILY} {TABLE_NAME} {{"));

    // --- the endpoints: named sets, so that an update replaces their elements only ---------------
    let (endpoints4, endpoints6) = split_endpoints(&plan.endpoints);
    s.endpoint_set(SET4, "ipv4_addr", &endpoints4);
    s.endpoint_set(SET6, "ipv6_addr", &endpoints6);

    // --- input: what may reach this host -------------------------------------------------------
    s.chain_head("input", "input");
    s.rule("iif \"lo\" accept");
    // Nobody outside the tunnel may reach the host at its tunnel address.
    s.rule_if(
        !own4.is_empty(),
        format!("iifname != {tunnel} ip daddr {} drop", set(&own4)),
    );
    s.rule_if(
        !own6.is_empty(),
        format!("iifname != {tunnel} ip6 daddr {} drop", set(&own6)),
    );
    s.rule(&format!("iifname {tunnel} accept"));
    // The WireGuard socket's datagrams: to its port from anywhere when the port is known (a
    // multi-homed server may answer from an address not in the set; the socket accepts only
    // authenticated WireGuard, and its answers still go out only to the endpoint set); else,
    // without a port, from the endpoints only.
    match plan.listen_port {
        Some(port) => s.rule(&format!("udp dport {port} accept")),
        None => {
            s.rule(&format!("ip saddr . udp sport @{SET4} accept"));
            s.rule(&format!("ip6 saddr . udp sport @{SET6} accept"));
        }
    }
    // ICMP errors about allowed flows (e.g. "packet too big" for the WireGuard datagrams).
    s.rule("meta l4proto { icmp, ipv6-icmp } ct state related accept");
    // DHCPv4 and DHCPv6 replies, neighbour discovery and MLD queries.
    s.rule("udp sport 67 udp dport 68 accept");
    s.rule("ip6 saddr fe80::/10 udp sport 547 udp dport 546 accept");
    s.rule(
        "icmpv6 type { nd-router-advert, nd-neighbor-solicit, nd-neighbor-advert, nd-redirect } \
         ip6 hoplimit 255 accept",
    );
    s.rule("icmpv6 type mld-listener-query ip6 hoplimit 1 accept");
    if plan.allow_lan {
        s.rule(&format!("ip saddr {} accept", set(LAN_V4)));
        s.rule(&format!("ip6 saddr {} accept", set(LAN_V6)));
    }
    s.rule("counter drop");
    s.line(1, "}");
    s.line(0, "");

    // --- output: what may leave this host --------------------------------------------------------
    s.chain_head("output", "output");
    s.rule("oif \"lo\" accept");
    s.dns_rules(&tunnel, &dns4, &dns6);
    s.rule(&format!("oifname {tunnel} accept"));
    let socket = match plan.socket {
        SocketMatch::Mark(mark) => format!("meta mark {mark:#x} "),
        SocketMatch::SourcePort(port) => format!("udp sport {port} "),
    };
    s.rule(&format!("{socket}ip daddr . udp dport @{SET4} accept"));
    s.rule(&format!("{socket}ip6 daddr . udp dport @{SET6} accept"));
    s.rule("udp sport 68 udp dport 67 accept");
    s.rule("ip6 saddr fe80::/10 udp sport 546 udp dport 547 accept");
    s.rule(
        "icmpv6 type { nd-router-solicit, nd-neighbor-solicit, nd-neighbor-advert } \
         ip6 hoplimit 255 accept",
    );
    s.rule(
        "icmpv6 type { mld-listener-report, mld-listener-done, mld2-listener-report } \
         ip6 hoplimit 1 accept",
    );
    if plan.allow_lan {
        s.rule(&format!("ip daddr {} accept", set(&lan4_out)));
        s.rule(&format!("ip6 daddr {} accept", set(&lan6_out)));
    }
    s.rule("goto refuse");
    s.line(1, "}");
    s.line(0, "");

    // --- forward: what this host may route for others (containers, VMs) -------------------------
    s.chain_head("forward", "forward");
    s.dns_rules(&tunnel, &dns4, &dns6);
    s.rule(&format!("oifname {tunnel} accept"));
    s.rule(&format!("iifname {tunnel} accept"));
    if plan.allow_lan {
        s.rule(&format!(
            "ip saddr {} ip daddr {} accept",
            set(LAN_V4),
            set(&lan4_out)
        ));
        s.rule(&format!(
            "ip6 saddr {} ip6 daddr {} accept",
            set(LAN_V6),
            set(&lan6_out)
        ));
    }
    s.rule("goto refuse");
    s.line(1, "}");
    s.line(0, "");

    // --- refuse: fail fast --------------------------------------------------------------------------
    s.line(1, "chain refuse {");
    s.rule("counter");
    s.rule("meta l4proto tcp reject with tcp reset");
    s.rule("reject with icmpx admin-prohibited");
    s.line(1, "}");
    s.line(0, "}");
    s.text
}

/// The nft script that replaces the endpoint sets' elements with `plan`'s endpoints, as one
/// transaction on the existing table: the rules stay, so there is no moment without them. Only
/// valid over a table [`ruleset`] loaded with the same sets.
pub fn endpoints_update(plan: &KillSwitchPlan) -> String {
    let (endpoints4, endpoints6) = split_endpoints(&plan.endpoints);
    let mut s = Script::default();
    s.line(
        0,
        &format!(
            "# Warren kill switch for {}: the endpoints now; load with `nft -f -`.",
            plan.ifname
        ),
    );
    for (name, elements) in [(SET4, &endpoints4), (SET6, &endpoints6)] {
        s.line(0, &format!("flush set {TABLE_FAMILY} {TABLE_NAME} {name}"));
        if !elements.is_empty() {
            s.line(
                0,
                &format!(
                    "add element {TABLE_FAMILY} {TABLE_NAME} {name} {}",
                    endpoint_set(elements)
                ),
            );
        }
    }
    s.text
}

/// The script that removes Warren's table `family name` if it exists and succeeds if it does not:
/// `add` makes sure there is something to delete, and both run in one transaction.
pub(super) fn delete_script(family: &str, name: &str) -> String {
    format!("add table {family} {name}\ndelete table {family} {name}\n")
}

/// Whether `family name` is a table Warren may delete: `inet`, `ip` or `ip6`, named `warren` or
/// `warren_<letters, digits, _>`. Undo checks this, so a damaged journal can never make Warren
/// delete another program's table.
pub(super) fn is_warren_table(family: &str, name: &str) -> bool {
    let family_ok = matches!(family, "inet" | "ip" | "ip6");
    let name_ok = name == TABLE_NAME
        || name.strip_prefix("warren_").is_some_and(|rest| {
            !rest.is_empty() && rest.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
        });
    family_ok && name_ok
}

/// A script being written, one line at a time, indented with tabs as `nft list` does.
#[derive(Default)]
struct Script {
    text: String,
}

impl Script {
    fn line(&mut self, depth: usize, text: &str) {
        if !text.is_empty() {
            for _ in 0..depth {
                self.text.push('\t');
            }
            self.text.push_str(text);
        }
        self.text.push('\n');
    }

    /// A rule inside a chain.
    fn rule(&mut self, text: &str) {
        self.line(2, text);
    }

    fn rule_if(&mut self, condition: bool, text: String) {
        if condition {
            self.rule(&text);
        }
    }

    /// A named set of `address . port` elements (left empty when there are none).
    fn endpoint_set(&mut self, name: &str, address_type: &str, elements: &[&SocketAddr]) {
        self.line(1, &format!("set {name} {{"));
        self.line(2, &format!("type {address_type} . inet_service"));
        if !elements.is_empty() {
            self.line(2, &format!("elements = {}", endpoint_set(elements)));
        }
        self.line(1, "}");
        self.line(0, "");
    }

    fn chain_head(&mut self, name: &str, hook: &str) {
        self.line(1, &format!("chain {name} {{"));
        self.line(
            2,
            &format!("type filter hook {hook} priority {PRIORITY}; policy drop;"),
        );
    }

    /// With DNS servers: DNS only to them and only through the tunnel. Without: DNS only through
    /// the tunnel (so not to the LAN either, even when the LAN is allowed).
    fn dns_rules(&mut self, tunnel: &str, dns4: &[IpAddr], dns6: &[IpAddr]) {
        if dns4.is_empty() && dns6.is_empty() {
            self.rule(&format!("oifname != {tunnel} {DNS} goto refuse"));
            return;
        }
        self.rule_if(
            !dns4.is_empty(),
            format!("oifname {tunnel} {DNS} ip daddr {} accept", set(dns4)),
        );
        self.rule_if(
            !dns6.is_empty(),
            format!("oifname {tunnel} {DNS} ip6 daddr {} accept", set(dns6)),
        );
        self.rule(&format!("{DNS} goto refuse"));
    }
}

fn split_endpoints(endpoints: &[SocketAddr]) -> (Vec<&SocketAddr>, Vec<&SocketAddr>) {
    endpoints.iter().partition(|e| e.is_ipv4())
}

fn split(addresses: &[IpAddr]) -> (Vec<IpAddr>, Vec<IpAddr>) {
    addresses.iter().partition(|a| a.is_ipv4())
}

/// `{ a, b }`.
fn set<T: std::fmt::Display>(items: &[T]) -> String {
    let mut out = String::from("{ ");
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            out.push_str(", ");
        }
        // Writing to a String cannot fail.
        let _ = write!(out, "{item}");
    }
    out.push_str(" }");
    out
}

/// `{ 198.18.0.2 . 51820, fd00::2 . 51820 }`: address . port concatenations.
fn endpoint_set(endpoints: &[&SocketAddr]) -> String {
    let items: Vec<String> = endpoints
        .iter()
        .map(|e| format!("{} . {}", e.ip(), e.port()))
        .collect();
    set(&items)
}

#[cfg(test)]
mod tests {
    use super::super::plan::tests::{ip, net, sock};
    use super::super::{plan, KillSwitchInput};
    use super::*;

    fn client_plan(allow_lan: bool) -> KillSwitchPlan {
        plan(KillSwitchInput {
            ifname: "wg0",
            endpoints: &[sock("198.18.0.2:51820"), sock("[fd00:1::2]:51820")],
            fwmark: Some(0xca6c),
            listen_port: Some(51820),
            dns_servers: &[ip("198.19.0.53"), ip("fd00:2::53")],
            tunnel_addresses: &[net("198.19.0.1/24"), net("fd00:2::1/64")],
            allow_lan,
        })
        .unwrap()
    }

    /// The whole script for a typical dual-stack client, so any change to it is a visible diff.
    #[test]
    fn a_dual_stack_client_gets_exactly_this_ruleset() {
        let expected = "\
# Warren kill switch for wg0: generated; load with `nft -f -`.
# Replaces any previous kill switch in one transaction; other tables are untouched.
add table inet warren
delete table inet warren
table inet warren {
	set endpoints4 {
		type ipv4_addr . inet_service
		elements = { 198.18.0.2 . 51820 }
	}

	set endpoints6 {
		type ipv6_addr . inet_service
		elements = { fd00:1::2 . 51820 }
	}

	chain input {
		type filter hook input priority filter - 10; policy drop;
		iif \"lo\" accept
		iifname != \"wg0\" ip daddr { 198.19.0.1 } drop
		iifname != \"wg0\" ip6 daddr { fd00:2::1 } drop
		iifname \"wg0\" accept
		udp dport 51820 accept
		meta l4proto { icmp, ipv6-icmp } ct state related accept
		udp sport 67 udp dport 68 accept
		ip6 saddr fe80::/10 udp sport 547 udp dport 546 accept
		icmpv6 type { nd-router-advert, nd-neighbor-solicit, nd-neighbor-advert, nd-redirect } ip6 hoplimit 255 accept
		icmpv6 type mld-listener-query ip6 hoplimit 1 accept
		counter drop
	}

	chain output {
		type filter hook output priority filter - 10; policy drop;
		oif \"lo\" accept
		oifname \"wg0\" meta l4proto { tcp, udp } th dport 53 ip daddr { 198.19.0.53 } accept
		oifname \"wg0\" meta l4proto { tcp, udp } th dport 53 ip6 daddr { fd00:2::53 } accept
		meta l4proto { tcp, udp } th dport 53 goto refuse
		oifname \"wg0\" accept
		meta mark 0xca6c ip daddr . udp dport @endpoints4 accept
		meta mark 0xca6c ip6 daddr . udp dport @endpoints6 accept
		udp sport 68 udp dport 67 accept
		ip6 saddr fe80::/10 udp sport 546 udp dport 547 accept
		icmpv6 type { nd-router-solicit, nd-neighbor-solicit, nd-neighbor-advert } ip6 hoplimit 255 accept
		icmpv6 type { mld-listener-report, mld-listener-done, mld2-listener-report } ip6 hoplimit 1 accept
		goto refuse
	}

	chain forward {
		type filter hook forward priority filter - 10; policy drop;
		oifname \"wg0\" meta l4proto { tcp, udp } th dport 53 ip daddr { 198.19.0.53 } accept
		oifname \"wg0\" meta l4proto { tcp, udp } th dport 53 ip6 daddr { fd00:2::53 } accept
		meta l4proto { tcp, udp } th dport 53 goto refuse
		oifname \"wg0\" accept
		iifname \"wg0\" accept
		goto refuse
	}

	chain refuse {
		counter
		meta l4proto tcp reject with tcp reset
		reject with icmpx admin-prohibited
	}
}
";
        assert_eq!(ruleset(&client_plan(false)), expected);
    }

    #[test]
    fn allow_lan_adds_exactly_the_lan_rules() {
        let without = ruleset(&client_plan(false));
        let with = ruleset(&client_plan(true));
        let added: Vec<&str> = with
            .lines()
            .filter(|line| !without.lines().any(|l| l == *line))
            .map(str::trim)
            .collect();
        assert_eq!(
            added,
            [
                "ip saddr { 10.0.0.0/8, 172.16.0.0/12, 192.168.0.0/16, 169.254.0.0/16 } accept",
                "ip6 saddr { fe80::/10, fc00::/7 } accept",
                "ip daddr { 10.0.0.0/8, 172.16.0.0/12, 192.168.0.0/16, 169.254.0.0/16, \
                 224.0.0.0/24, 239.0.0.0/8, 255.255.255.255/32 } accept",
                "ip6 daddr { fe80::/10, fc00::/7, ff01::/16, ff02::/16, ff03::/16, ff04::/16, \
                 ff05::/16 } accept",
                "ip saddr { 10.0.0.0/8, 172.16.0.0/12, 192.168.0.0/16, 169.254.0.0/16 } ip daddr \
                 { 10.0.0.0/8, 172.16.0.0/12, 192.168.0.0/16, 169.254.0.0/16, 224.0.0.0/24, \
                 239.0.0.0/8, 255.255.255.255/32 } accept",
                "ip6 saddr { fe80::/10, fc00::/7 } ip6 daddr { fe80::/10, fc00::/7, ff01::/16, \
                 ff02::/16, ff03::/16, ff04::/16, ff05::/16 } accept",
            ]
        );
        // The LAN comes after the DNS restriction, so LAN DNS servers stay refused.
        let output = with.split("chain output").nth(1).unwrap();
        assert!(output.find("th dport 53 goto refuse") < output.find("ip daddr { 10.0.0.0/8"));
        // Nothing was removed.
        assert!(without.lines().all(|l| with.lines().any(|w| w == l)));
    }

    #[test]
    fn every_endpoint_appears_once_in_its_family_set_and_nowhere_else() {
        let endpoints = [
            sock("198.18.0.2:51820"),
            sock("198.18.0.9:4500"),
            sock("[fd00:1::2]:51820"),
            sock("[fd00:1::9]:443"),
        ];
        let plan = plan(KillSwitchInput {
            ifname: "wg0",
            endpoints: &endpoints,
            fwmark: Some(51820),
            listen_port: None,
            dns_servers: &[],
            tunnel_addresses: &[],
            allow_lan: false,
        })
        .unwrap();
        let script = ruleset(&plan);
        let mentions = |needle: &str| script.lines().filter(|l| l.contains(needle)).count();
        assert!(script.contains(
            "\tset endpoints4 {\n\t\ttype ipv4_addr . inet_service\n\t\telements = \
             { 198.18.0.2 . 51820, 198.18.0.9 . 4500 }\n\t}\n"
        ));
        assert!(script.contains(
            "\tset endpoints6 {\n\t\ttype ipv6_addr . inet_service\n\t\telements = \
             { fd00:1::2 . 51820, fd00:1::9 . 443 }\n\t}\n"
        ));
        // Without a known port, inbound is limited to the endpoints too.
        assert!(script.contains("\t\tip saddr . udp sport @endpoints4 accept\n"));
        assert!(script.contains("\t\tip6 saddr . udp sport @endpoints6 accept\n"));
        assert!(script.contains("\t\tmeta mark 0xca6c ip daddr . udp dport @endpoints4 accept\n"));
        assert!(script.contains("\t\tmeta mark 0xca6c ip6 daddr . udp dport @endpoints6 accept\n"));
        assert_eq!(mentions("198.18.0"), 1);
        assert_eq!(mentions("fd00:1::"), 1);
    }

    #[test]
    fn without_a_mark_the_socket_is_recognised_by_its_port_both_ways() {
        let plan = plan(KillSwitchInput {
            ifname: "wg0",
            endpoints: &[sock("198.18.0.2:51820")],
            fwmark: None,
            listen_port: Some(40000),
            dns_servers: &[],
            tunnel_addresses: &[],
            allow_lan: false,
        })
        .unwrap();
        let script = ruleset(&plan);
        assert!(script.contains("\t\tudp dport 40000 accept\n"));
        assert!(script.contains("\t\tudp sport 40000 ip daddr . udp dport @endpoints4 accept\n"));
        assert!(script.contains("\t\tudp sport 40000 ip6 daddr . udp dport @endpoints6 accept\n"));
        assert!(!script.contains("meta mark"));
    }

    /// A multi-homed server's first answer comes from an address the set does not hold yet: it
    /// must reach the socket (inbound, by port), while the socket may still send only to the set.
    #[test]
    fn the_socket_port_is_open_inbound_from_anywhere_and_outbound_only_to_the_set() {
        let script = ruleset(&client_plan(false));
        let input = script
            .split("chain input {")
            .nth(1)
            .and_then(|rest| rest.split("\t}").next())
            .unwrap();
        assert!(input.contains("\t\tudp dport 51820 accept\n"), "{input}");
        assert!(!input.contains("@endpoints"), "{input}");
        let output = script
            .split("chain output {")
            .nth(1)
            .and_then(|rest| rest.split("\t}").next())
            .unwrap();
        let socket_rules: Vec<&str> = output
            .lines()
            .filter(|l| l.contains("meta mark 0xca6c"))
            .map(str::trim)
            .collect();
        assert_eq!(
            socket_rules,
            [
                "meta mark 0xca6c ip daddr . udp dport @endpoints4 accept",
                "meta mark 0xca6c ip6 daddr . udp dport @endpoints6 accept"
            ]
        );
    }

    #[test]
    fn an_endpoint_update_replaces_only_the_sets_elements_in_one_script() {
        let moved = plan(KillSwitchInput {
            ifname: "wg0",
            endpoints: &[sock("198.18.3.2:51820"), sock("198.18.0.7:4500")],
            fwmark: Some(0xca6c),
            listen_port: Some(51820),
            dns_servers: &[ip("198.19.0.53"), ip("fd00:2::53")],
            tunnel_addresses: &[net("198.19.0.1/24"), net("fd00:2::1/64")],
            allow_lan: false,
        })
        .unwrap();
        assert!(client_plan(false).differs_only_in_endpoints(&moved));
        assert!(!client_plan(true).differs_only_in_endpoints(&moved));
        assert_eq!(
            endpoints_update(&moved),
            "# Warren kill switch for wg0: the endpoints now; load with `nft -f -`.
flush set inet warren endpoints4
add element inet warren endpoints4 { 198.18.0.7 . 4500, 198.18.3.2 . 51820 }
flush set inet warren endpoints6
"
        );
    }

    #[test]
    fn an_ipv4_only_tunnel_still_blocks_ipv6() {
        let plan = plan(KillSwitchInput {
            ifname: "wg0",
            endpoints: &[sock("198.18.0.2:51820")],
            fwmark: Some(1),
            listen_port: None,
            dns_servers: &[ip("198.19.0.53")],
            tunnel_addresses: &[net("198.19.0.1/24")],
            allow_lan: false,
        })
        .unwrap();
        let script = ruleset(&plan);
        // No IPv6 endpoint, DNS or address (the IPv6 endpoint set exists, empty, for updates)...
        assert!(script.contains("\tset endpoints6 {\n\t\ttype ipv6_addr . inet_service\n\t}\n"));
        assert!(!script.contains("ip6 daddr {"));
        // ...but the chains are `inet`, so IPv6 meets the same drop policy and refusal.
        assert!(script.contains("table inet warren {"));
        assert_eq!(script.matches("policy drop;").count(), 3);
        assert_eq!(script.matches("\t\tgoto refuse\n").count(), 2);
        assert!(script.contains("\t\tcounter drop\n\t}"));
    }

    #[test]
    fn without_dns_servers_dns_may_only_go_through_the_tunnel() {
        let plan = plan(KillSwitchInput {
            ifname: "wg0",
            endpoints: &[sock("198.18.0.2:51820")],
            fwmark: Some(1),
            listen_port: None,
            dns_servers: &[],
            tunnel_addresses: &[],
            allow_lan: true,
        })
        .unwrap();
        let script = ruleset(&plan);
        let rule = "oifname != \"wg0\" meta l4proto { tcp, udp } th dport 53 goto refuse";
        assert_eq!(script.matches(rule).count(), 2, "output and forward");
        assert!(!script.contains("\t\tmeta l4proto { tcp, udp } th dport 53 goto refuse"));
        assert!(!script.contains("iifname != \"wg0\" ip"));
    }

    #[test]
    fn the_delete_script_tolerates_a_missing_table() {
        assert_eq!(
            delete_script("inet", "warren"),
            "add table inet warren\ndelete table inet warren\n"
        );
    }

    #[test]
    fn only_warren_tables_may_be_deleted() {
        assert!(is_warren_table(TABLE_FAMILY, TABLE_NAME));
        assert!(is_warren_table("ip6", "warren_wg0"));
        for (family, name) in [
            ("inet", "someoneelse"),
            ("inet", "warren_"),
            ("inet", "warrenx"),
            ("inet", "warren_a b"),
            ("inet", "warren; flush ruleset"),
            ("bridge", "warren"),
            ("inet warren; delete table inet", "x"),
        ] {
            assert!(!is_warren_table(family, name), "{family} {name}");
        }
    }

    /// Runs `nft --check` on `script` inside a fresh network namespace (`unshare -rn` works
    /// without root where user namespaces are allowed), so the host's ruleset is never involved.
    /// Returns `None` when this machine cannot run the check.
    #[cfg(target_os = "linux")]
    fn nft_check(script: &str) -> Option<Result<(), String>> {
        use std::io::Write as _;
        use std::process::{Command, Stdio};
        let mut child = match Command::new("unshare")
            .args(["--net", "--map-root-user", "nft", "--check", "--file", "-"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
        {
            Ok(child) => child,
            Err(err) => {
                eprintln!("cannot run unshare: {err}");
                return None;
            }
        };
        child
            .stdin
            .take()
            .unwrap()
            .write_all(script.as_bytes())
            .unwrap();
        let output = child.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
        if output.status.success() {
            Some(Ok(()))
        } else if stderr.contains("unshare:") || stderr.contains("No such file or directory") {
            // unshare itself failed (no user namespaces here), or nft is not installed.
            eprintln!("cannot check with nft here: {stderr}");
            None
        } else {
            Some(Err(stderr))
        }
    }

    /// Every variant of the script is valid nft (when nft can be run here; in CI it must).
    /// Linux only: under Wine there is no `unshare` or `nft`, and the Linux test stage checks it.
    #[test]
    #[cfg(target_os = "linux")]
    fn generated_scripts_pass_nft_check() {
        let mut scripts = vec![ruleset(&client_plan(false)), ruleset(&client_plan(true))];
        let port_only = plan(KillSwitchInput {
            ifname: "warren.t-1",
            endpoints: &[sock("[fd00:1::2]:51820")],
            fwmark: None,
            listen_port: Some(40000),
            dns_servers: &[],
            tunnel_addresses: &[net("fd00:2::1/64")],
            allow_lan: true,
        })
        .unwrap();
        scripts.push(ruleset(&port_only));
        // An update is checked together with the table it updates (one file, one transaction).
        scripts.push(ruleset(&client_plan(false)) + &endpoints_update(&port_only));
        scripts.push(delete_script(TABLE_FAMILY, TABLE_NAME));
        for script in &scripts {
            match nft_check(script) {
                Some(Ok(())) => {}
                Some(Err(stderr)) => panic!("nft --check rejects the script:\n{script}\n{stderr}"),
                None if std::env::var_os("CI").is_some() => {
                    panic!("CI must be able to run `unshare -rn nft --check` (nftables installed?)")
                }
                None => {
                    eprintln!("SKIPPED: nft --check is not available here");
                    return;
                }
            }
        }
    }
}
