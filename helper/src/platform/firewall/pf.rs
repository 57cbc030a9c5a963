//! The kill switch in pf's language (macOS): [`ruleset`] renders a [`KillSwitchPlan`] as the rules
//! `pfctl -a com.apple/warren -f -` loads into Warren's anchor. Pure, so it is unit-tested and
//! compiled on every OS, although only macOS loads it (`macos.rs`).
//!
//! Why it looks the way it does:
//! - The anchor is `com.apple/warren`: macOS's stock `/etc/pf.conf` evaluates every anchor under
//!   `com.apple/*`, so the rules take effect without rewriting the main ruleset (an anchor nobody
//!   references is never evaluated). `macos.rs` checks that reference before anything changes.
//! - Every rule is `quick` (pf otherwise lets the *last* matching rule win) and in the nftables
//!   ruleset's order: loopback, the tunnel's own addresses (only through the tunnel), the DNS
//!   restriction (before "the tunnel is allowed": DNS through the tunnel is restricted too), the
//!   tunnel, the WireGuard socket's datagrams to and from its endpoints, ICMP errors, DHCP and
//!   neighbour discovery, the LAN, then refuse — outgoing with a TCP reset or ICMP unreachable
//!   (`block return`), incoming silently (`block drop`). A `quick` match inside an anchor ends the
//!   evaluation of the whole ruleset, so rules after the anchor cannot undo a refusal.
//! - Stateless (`no state`), with explicit rules for both directions: the kill switch's verdict
//!   never depends on a state created before it was loaded or by another anchor's rule. (States
//!   pf already holds from before — only when pf was enabled before — still pass their packets.)
//! - pf cannot see socket marks: the WireGuard socket is recognised by its UDP source port (a
//!   [`SocketMatch::Mark`] plan only restricts the endpoints' addresses and ports; `macos.rs`
//!   refuses it, since macOS sockets carry no marks anyway).
//! - ICMP "destination unreachable" / "packet too big" are let in from anywhere (stateless rules
//!   cannot relate them to a flow); they carry no payload a program could use to talk out.

// Compiled everywhere so its tests run on every OS; only macOS loads the rules.
#![cfg_attr(not(target_os = "macos"), allow(dead_code))]

use super::plan::{
    KillSwitchPlan, SocketMatch, LAN_V4, LAN_V4_MULTICAST, LAN_V6, LAN_V6_MULTICAST,
};
use std::fmt::Write as _;
use std::net::IpAddr;

/// Warren's anchor, under the `com.apple/*` anchor of macOS's stock `/etc/pf.conf`.
pub(super) const ANCHOR: &str = "com.apple/warren";

/// The rules for [`ANCHOR`] that implement `plan`.
pub fn ruleset(plan: &KillSwitchPlan) -> String {
    let tunnel = &plan.ifname;
    let (own4, own6) = split(&plan.tunnel_addresses);
    let (dns4, dns6) = split(&plan.dns_servers);
    let mut out = String::new();
    let mut rule = |text: String| {
        out.push_str(&text);
        out.push('\n');
    };
    rule(format!(
        "# Warren kill switch for {tunnel}: generated; load with `pfctl -a {ANCHOR} -f -`."
    ));
    rule("pass quick on lo0 all no state".into());

    // Nobody outside the tunnel may reach the host at its tunnel address.
    if !own4.is_empty() {
        rule(format!(
            "block drop in quick on ! {tunnel} inet from any to {}",
            list(&own4)
        ));
    }
    if !own6.is_empty() {
        rule(format!(
            "block drop in quick on ! {tunnel} inet6 from any to {}",
            list(&own6)
        ));
    }

    // DNS: with servers, only to them and only through the tunnel; without, only through the
    // tunnel.
    if dns4.is_empty() && dns6.is_empty() {
        rule(format!(
            "block return out quick on ! {tunnel} proto {{ udp, tcp }} from any to any port 53"
        ));
    } else {
        for (family, servers) in [("inet", &dns4), ("inet6", &dns6)] {
            if !servers.is_empty() {
                rule(format!(
                    "pass out quick on {tunnel} {family} proto {{ udp, tcp }} from any to {} \
                     port 53 no state",
                    list(servers)
                ));
            }
        }
        rule("block return out quick proto { udp, tcp } from any to any port 53".into());
    }

    rule(format!("pass quick on {tunnel} all no state"));

    // The WireGuard socket's datagrams to and from the endpoints.
    for endpoint in &plan.endpoints {
        let family = if endpoint.is_ipv4() { "inet" } else { "inet6" };
        let (ip, port) = (endpoint.ip(), endpoint.port());
        let local = match plan.socket {
            SocketMatch::SourcePort(local) => format!(" port {local}"),
            SocketMatch::Mark(_) => String::new(),
        };
        rule(format!(
            "pass out quick {family} proto udp from any{local} to {ip} port {port} no state"
        ));
        rule(format!(
            "pass in quick {family} proto udp from {ip} port {port} to any{local} no state"
        ));
    }

    // ICMP errors (unreachable, and IPv6's packet too big), for path MTU discovery.
    rule("pass in quick inet proto icmp all icmp-type unreach no state".into());
    rule("pass in quick inet6 proto ipv6-icmp all icmp6-type { 1, 2 } no state".into());
    // DHCPv4, DHCPv6, neighbour discovery (133-137) and MLD (130-132, 143).
    rule("pass out quick inet proto udp from any port 68 to any port 67 no state".into());
    rule("pass in quick inet proto udp from any port 67 to any port 68 no state".into());
    rule("pass out quick inet6 proto udp from fe80::/10 port 546 to any port 547 no state".into());
    rule("pass in quick inet6 proto udp from fe80::/10 port 547 to any port 546 no state".into());
    rule(
        "pass quick inet6 proto ipv6-icmp all icmp6-type { 130, 131, 132, 133, 134, 135, 136, \
         137, 143 } no state"
            .into(),
    );

    if plan.allow_lan {
        rule(format!(
            "pass out quick inet from any to {} no state",
            list(&[LAN_V4, LAN_V4_MULTICAST].concat())
        ));
        rule(format!(
            "pass in quick inet from {} to any no state",
            list(LAN_V4)
        ));
        rule(format!(
            "pass out quick inet6 from any to {} no state",
            list(&[LAN_V6, LAN_V6_MULTICAST].concat())
        ));
        rule(format!(
            "pass in quick inet6 from {} to any no state",
            list(LAN_V6)
        ));
    }

    rule("block return out quick all".into());
    rule("block drop in quick all".into());
    out
}

/// Whether `anchor` is one Warren may flush: [`ANCHOR`] only. Undo checks this, so a damaged
/// journal can never make Warren flush another program's rules.
pub(super) fn is_warren_anchor(anchor: &str) -> bool {
    anchor == ANCHOR
}

/// The reference token in `pfctl -E`'s output (`Token : 1234567890`).
pub(super) fn enable_token(output: &str) -> Option<String> {
    output.lines().find_map(|line| {
        let (key, value) = line.split_once(':')?;
        let value = value.trim();
        (key.trim() == "Token" && !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()))
            .then(|| value.to_owned())
    })
}

/// Whether the main ruleset (`pfctl -s rules` output) evaluates [`ANCHOR`].
pub(super) fn main_ruleset_evaluates_anchor(rules: &str) -> bool {
    rules.lines().any(|line| {
        let line = line.trim();
        line.starts_with("anchor \"com.apple/*\"")
            || line.starts_with("anchor \"com.apple/warren\"")
    })
}

fn split(addresses: &[IpAddr]) -> (Vec<IpAddr>, Vec<IpAddr>) {
    addresses.iter().partition(|a| a.is_ipv4())
}

/// `{ a, b }`.
fn list<T: std::fmt::Display>(items: &[T]) -> String {
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

#[cfg(test)]
mod tests {
    use super::super::plan::tests::{ip, net, sock};
    use super::super::{plan, KillSwitchInput};
    use super::*;

    fn client_plan(allow_lan: bool, dns: &[IpAddr]) -> KillSwitchPlan {
        plan(KillSwitchInput {
            ifname: "utun5",
            endpoints: &[sock("198.18.0.2:51820"), sock("[fd00:1::2]:51820")],
            fwmark: None,
            listen_port: Some(40000),
            dns_servers: dns,
            tunnel_addresses: &[net("198.19.0.1/24"), net("fd00:9::1/64")],
            allow_lan,
        })
        .unwrap()
    }

    #[test]
    fn the_ruleset_allows_the_tunnel_its_socket_and_dns_through_it_then_refuses() {
        let rules = ruleset(&client_plan(false, &[ip("198.19.0.53")]));
        let lines: Vec<&str> = rules.lines().skip(1).collect();
        assert_eq!(
            lines,
            [
                "pass quick on lo0 all no state",
                "block drop in quick on ! utun5 inet from any to { 198.19.0.1 }",
                "block drop in quick on ! utun5 inet6 from any to { fd00:9::1 }",
                "pass out quick on utun5 inet proto { udp, tcp } from any to { 198.19.0.53 } port \
                 53 no state",
                "block return out quick proto { udp, tcp } from any to any port 53",
                "pass quick on utun5 all no state",
                "pass out quick inet proto udp from any port 40000 to 198.18.0.2 port 51820 no \
                 state",
                "pass in quick inet proto udp from 198.18.0.2 port 51820 to any port 40000 no \
                 state",
                "pass out quick inet6 proto udp from any port 40000 to fd00:1::2 port 51820 no \
                 state",
                "pass in quick inet6 proto udp from fd00:1::2 port 51820 to any port 40000 no \
                 state",
                "pass in quick inet proto icmp all icmp-type unreach no state",
                "pass in quick inet6 proto ipv6-icmp all icmp6-type { 1, 2 } no state",
                "pass out quick inet proto udp from any port 68 to any port 67 no state",
                "pass in quick inet proto udp from any port 67 to any port 68 no state",
                "pass out quick inet6 proto udp from fe80::/10 port 546 to any port 547 no state",
                "pass in quick inet6 proto udp from fe80::/10 port 547 to any port 546 no state",
                "pass quick inet6 proto ipv6-icmp all icmp6-type { 130, 131, 132, 133, 134, 135, \
                 136, 137, 143 } no state",
                "block return out quick all",
                "block drop in quick all",
            ]
        );
    }

    #[test]
    fn without_dns_servers_dns_may_only_use_the_tunnel() {
        let rules = ruleset(&client_plan(false, &[]));
        assert!(rules.contains(
            "block return out quick on ! utun5 proto { udp, tcp } from any to any port 53\n\
             pass quick on utun5 all no state\n"
        ));
    }

    #[test]
    fn allow_lan_passes_the_private_ranges_before_the_refusal() {
        let rules = ruleset(&client_plan(true, &[]));
        let lan = rules
            .find("pass out quick inet from any to { 10.0.0.0/8,")
            .unwrap();
        assert!(lan < rules.find("block return out quick all").unwrap());
        assert!(rules.contains("pass in quick inet6 from { fe80::/10, fc00::/7 } to any no state"));
        assert!(!ruleset(&client_plan(false, &[])).contains("10.0.0.0/8"));
    }

    #[test]
    fn enable_tokens_and_the_anchor_reference_are_recognised() {
        assert_eq!(
            enable_token("No ALTQ support in kernel\npf enabled\nToken : 9826514733\n").as_deref(),
            Some("9826514733")
        );
        assert_eq!(enable_token("pf already enabled\n"), None);
        assert!(main_ruleset_evaluates_anchor(
            "scrub-anchor \"com.apple/*\" all fragment reassemble\nanchor \"com.apple/*\" all\n"
        ));
        assert!(!main_ruleset_evaluates_anchor("pass all\n"));
        assert!(is_warren_anchor("com.apple/warren"));
        assert!(!is_warren_anchor("com.apple/250.ApplicationFirewall"));
    }
}
