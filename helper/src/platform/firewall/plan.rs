//! The pure kill-switch planner: from what a tunnel is (its interface, its peers' endpoints, how
//! its WireGuard socket is recognised, its DNS servers and addresses, "allow LAN") to a
//! [`KillSwitchPlan`] that every OS's firewall renders in its own language.
//!
//! All validation happens here, so bad input is refused before anything on the system changes:
//! an interface name that could not be quoted safely into a firewall rule, a tunnel without any
//! endpoint, an endpoint with port 0, a WireGuard socket that can be recognised by neither a mark
//! nor a port. What passes is normalised (IPv4-mapped IPv6 addresses become IPv4; lists sorted and
//! deduplicated), so the same tunnel always yields the same plan and the same ruleset.
//!
//! The "LAN" address ranges used when "allow LAN" is on are defined here too, once for every OS.

use super::KillSwitchError;
use ipnet::IpNet;
use std::net::{IpAddr, SocketAddr};

/// Longest Linux interface name (IFNAMSIZ - 1).
const MAX_IFNAME_LEN: usize = 15;

/// Private IPv4 unicast ranges that count as "the LAN": RFC 1918 and link-local (RFC 3927).
/// Traffic to or from them is allowed when "allow LAN" is on. 100.64.0.0/10 (carrier-grade NAT)
/// is deliberately absent: it is usually the provider's network, not the user's.
pub(super) const LAN_V4: &[&str] = &[
    "10.0.0.0/8",
    "172.16.0.0/12",
    "192.168.0.0/16",
    "169.254.0.0/16",
];

/// IPv4 destinations that stay on the local network and are allowed out when "allow LAN" is on:
/// link-local multicast (224.0.0.0/24, e.g. mDNS), administratively scoped multicast
/// (239.0.0.0/8, e.g. SSDP) and the limited broadcast address.
pub(super) const LAN_V4_MULTICAST: &[&str] = &["224.0.0.0/24", "239.0.0.0/8", "255.255.255.255/32"];

/// IPv6 unicast ranges that count as "the LAN": link-local (fe80::/10) and unique local
/// addresses (fc00::/7, RFC 4193 — in practice fd00::/8), as Mullvad's app counts them. ULAs are
/// private by definition (never routed on the internet), so allowing them cannot leak to it.
pub(super) const LAN_V6: &[&str] = &["fe80::/10", "fc00::/7"];

/// IPv6 multicast scopes up to site-local (interface-, link-, realm-, admin- and site-local),
/// allowed out when "allow LAN" is on. Organisation- and global-scope multicast are not.
pub(super) const LAN_V6_MULTICAST: &[&str] = &[
    "ff01::/16",
    "ff02::/16",
    "ff03::/16",
    "ff04::/16",
    "ff05::/16",
];

/// What the kill switch is built from. Borrowed, so the caller can pass slices of its config.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KillSwitchInput<'a> {
    /// The tunnel interface (`wg0`): all traffic through it is allowed (DNS aside, see
    /// `dns_servers`).
    pub ifname: &'a str,
    /// Every peer's endpoint as the data plane has it now (resolved, or roamed to): the only
    /// places the WireGuard socket may send to outside the tunnel. At least one is required.
    pub endpoints: &'a [SocketAddr],
    /// The mark the WireGuard socket puts on its packets (`FwMark`, or the one the routing layer
    /// chose for a full tunnel). When set (and not 0), it is how the socket's packets are
    /// recognised: only root can mark packets, so other programs cannot reach the endpoints.
    pub fwmark: Option<u32>,
    /// The WireGuard socket's actual UDP port. Datagrams to it are let in from any address (the
    /// socket accepts only authenticated WireGuard), and it recognises the socket's own packets
    /// (by source port) when there is no fwmark. Pass the bound port, not the configured one:
    /// `ListenPort` may be absent (a random port).
    pub listen_port: Option<u16>,
    /// The tunnel's DNS servers (`DNS =`). When there are any, DNS (port 53, UDP and TCP) is
    /// allowed only to them and only through the tunnel; any other DNS is rejected, even through
    /// the tunnel. When there are none, DNS through the tunnel goes anywhere, and off-tunnel DNS
    /// is rejected (also to the LAN when "allow LAN" is on).
    pub dns_servers: &'a [IpAddr],
    /// The tunnel's own addresses (`Address =`; only the address part is used): packets for them
    /// arriving on any other interface are dropped, so nobody on the LAN can reach the host
    /// through its tunnel address.
    pub tunnel_addresses: &'a [IpNet],
    /// Allow traffic to and from the local network ([`LAN_V4`], [`LAN_V6`] and the local
    /// multicast ranges) outside the tunnel.
    pub allow_lan: bool,
}

/// How the WireGuard socket's own packets are told apart from everything else's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum SocketMatch {
    /// Packets carrying this mark (SO_MARK), to the endpoints.
    Mark(u32),
    /// UDP packets from this local port, to the endpoints.
    SourcePort(u16),
}

/// A validated, normalised kill switch, ready to be rendered (per OS: `nft::ruleset`, `pf`) and
/// applied ([`super::apply`]). Built only by [`plan`], so its contents are always safe to put in a
/// rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KillSwitchPlan {
    pub(super) ifname: String,
    pub(super) endpoints: Vec<SocketAddr>,
    pub(super) socket: SocketMatch,
    /// The WireGuard socket's UDP port, when known: datagrams to it are let in from any address
    /// (see the module docs of `super` on multi-homed servers).
    #[cfg_attr(not(any(target_os = "linux", windows)), allow(dead_code))] // nftables, WFP.
    pub(super) listen_port: Option<u16>,
    pub(super) dns_servers: Vec<IpAddr>,
    pub(super) tunnel_addresses: Vec<IpAddr>,
    pub(super) allow_lan: bool,
}

impl KillSwitchPlan {
    /// The tunnel interface the kill switch lets traffic through.
    #[allow(dead_code)] // For the CLI and the daemon's messages.
    pub fn ifname(&self) -> &str {
        &self.ifname
    }

    /// Whether `other` differs from this plan in its endpoints only (so updating the firewall
    /// from one to the other only replaces the endpoint set's elements).
    #[cfg_attr(not(target_os = "linux"), allow(dead_code))] // nftables' update only.
    pub fn differs_only_in_endpoints(&self, other: &KillSwitchPlan) -> bool {
        KillSwitchPlan {
            endpoints: other.endpoints.clone(),
            ..self.clone()
        } == *other
    }

    /// Whether the local network stays reachable.
    #[allow(dead_code)] // For the CLI and the daemon's messages.
    pub fn allow_lan(&self) -> bool {
        self.allow_lan
    }
}

/// Validates and normalises `input` into a [`KillSwitchPlan`]. Pure: reads nothing, changes
/// nothing.
pub fn plan(input: KillSwitchInput<'_>) -> Result<KillSwitchPlan, KillSwitchError> {
    check_ifname(input.ifname)?;
    let ifname = input.ifname.to_owned();

    if input.endpoints.is_empty() {
        return Err(KillSwitchError::NoEndpoints { ifname });
    }
    let mut endpoints = Vec::with_capacity(input.endpoints.len());
    for &endpoint in input.endpoints {
        if endpoint.port() == 0 {
            return Err(KillSwitchError::EndpointPort { ifname, endpoint });
        }
        endpoints.push(SocketAddr::new(
            endpoint.ip().to_canonical(),
            endpoint.port(),
        ));
    }
    endpoints.sort_unstable();
    endpoints.dedup();

    let socket = match (input.fwmark, input.listen_port) {
        (Some(mark), _) if mark != 0 => SocketMatch::Mark(mark),
        (_, Some(port)) if port != 0 => SocketMatch::SourcePort(port),
        _ => return Err(KillSwitchError::UnidentifiableSocket { ifname }),
    };

    Ok(KillSwitchPlan {
        ifname,
        endpoints,
        socket,
        listen_port: input.listen_port.filter(|&port| port != 0),
        dns_servers: canonical(input.dns_servers.iter().copied()),
        tunnel_addresses: canonical(input.tunnel_addresses.iter().map(IpNet::addr)),
        allow_lan: input.allow_lan,
    })
}

/// Sorted, deduplicated, IPv4-mapped addresses as IPv4.
fn canonical(addresses: impl Iterator<Item = IpAddr>) -> Vec<IpAddr> {
    let mut out: Vec<IpAddr> = addresses.map(|a| a.to_canonical()).collect();
    out.sort_unstable();
    out.dedup();
    out
}

/// Interface names as wg-quick accepts them (`[a-zA-Z0-9_=+.-]{1,15}`): nothing that needs
/// quoting or could act as a wildcard in a firewall rule.
fn check_ifname(name: &str) -> Result<(), KillSwitchError> {
    let reason = if name.is_empty() {
        "it is empty"
    } else if name.len() > MAX_IFNAME_LEN {
        "it is longer than 15 bytes"
    } else if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"_=+.-".contains(&b))
    {
        "only letters, digits and _=+.- are allowed"
    } else {
        return Ok(());
    };
    Err(KillSwitchError::InterfaceName {
        name: name.to_owned(),
        reason,
    })
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    pub(in super::super) fn sock(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }
    pub(in super::super) fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }
    pub(in super::super) fn net(s: &str) -> IpNet {
        s.parse().unwrap()
    }

    fn input<'a>(endpoints: &'a [SocketAddr]) -> KillSwitchInput<'a> {
        KillSwitchInput {
            ifname: "wg0",
            endpoints,
            fwmark: Some(0xca6c),
            listen_port: Some(51820),
            dns_servers: &[],
            tunnel_addresses: &[],
            allow_lan: false,
        }
    }

    #[test]
    fn endpoints_and_addresses_are_normalised_sorted_and_deduplicated() {
        let endpoints = [
            sock("[fd00:1::2]:51820"),
            sock("198.18.0.9:4500"),
            sock("[::ffff:198.18.0.2]:51820"),
            sock("198.18.0.2:51820"),
        ];
        let dns = [
            ip("fd00:2::53"),
            ip("::ffff:198.19.0.53"),
            ip("198.19.0.53"),
        ];
        let addresses = [
            net("198.19.0.1/24"),
            net("fd00:2::1/64"),
            net("198.19.0.1/32"),
        ];
        let plan = plan(KillSwitchInput {
            dns_servers: &dns,
            tunnel_addresses: &addresses,
            ..input(&endpoints)
        })
        .unwrap();
        assert_eq!(
            plan.endpoints,
            [
                sock("198.18.0.2:51820"),
                sock("198.18.0.9:4500"),
                sock("[fd00:1::2]:51820"),
            ]
        );
        assert_eq!(plan.dns_servers, [ip("198.19.0.53"), ip("fd00:2::53")]);
        assert_eq!(plan.tunnel_addresses, [ip("198.19.0.1"), ip("fd00:2::1")]);
        assert_eq!(plan.ifname(), "wg0");
        assert!(!plan.allow_lan());
    }

    #[test]
    fn the_socket_is_recognised_by_its_mark_when_it_has_one_else_by_its_port() {
        let endpoints = [sock("198.18.0.2:51820")];
        let with = |fwmark, listen_port| {
            plan(KillSwitchInput {
                fwmark,
                listen_port,
                ..input(&endpoints)
            })
        };
        assert_eq!(
            with(Some(7), Some(51820)).unwrap().socket,
            SocketMatch::Mark(7)
        );
        assert_eq!(with(Some(7), None).unwrap().socket, SocketMatch::Mark(7));
        // A mark of 0 means "no mark", as in `wg set wg0 fwmark 0`.
        assert_eq!(
            with(Some(0), Some(51820)).unwrap().socket,
            SocketMatch::SourcePort(51820)
        );
        assert_eq!(
            with(None, Some(51820)).unwrap().socket,
            SocketMatch::SourcePort(51820)
        );
        for (mark, port) in [(None, None), (Some(0), None), (None, Some(0))] {
            assert_eq!(
                with(mark, port),
                Err(KillSwitchError::UnidentifiableSocket {
                    ifname: "wg0".into()
                })
            );
        }
    }

    #[test]
    fn a_tunnel_without_endpoints_is_refused() {
        let err = plan(input(&[])).unwrap_err();
        assert_eq!(
            err.to_string(),
            "cannot build a kill switch for wg0: no peer has an endpoint, so the WireGuard socket \
             would have nowhere to send to"
        );
    }

    #[test]
    fn an_endpoint_with_port_zero_is_refused_and_named() {
        let endpoints = [sock("198.18.0.2:51820"), sock("198.18.0.3:0")];
        let err = plan(input(&endpoints)).unwrap_err();
        assert_eq!(
            err.to_string(),
            "cannot build a kill switch for wg0: endpoint 198.18.0.3:0 has port 0"
        );
    }

    #[test]
    fn interface_names_that_could_not_be_quoted_safely_are_refused() {
        let endpoints = [sock("198.18.0.2:51820")];
        for ok in ["wg0", "warren-home", "a.b_c=d+e", "fifteen-chars15"] {
            plan(KillSwitchInput {
                ifname: ok,
                ..input(&endpoints)
            })
            .unwrap();
        }
        for (bad, reason) in [
            ("", "it is empty"),
            ("sixteen-chars-16", "it is longer than 15 bytes"),
            ("wg\"0", "only letters, digits and _=+.- are allowed"),
            ("wg*", "only letters, digits and _=+.- are allowed"),
            ("wg 0", "only letters, digits and _=+.- are allowed"),
            ("wg\\0", "only letters, digits and _=+.- are allowed"),
            ("wgé", "only letters, digits and _=+.- are allowed"),
        ] {
            let err = plan(KillSwitchInput {
                ifname: bad,
                ..input(&endpoints)
            })
            .unwrap_err();
            assert_eq!(
                err.to_string(),
                format!("cannot build a kill switch for interface {bad:?}: {reason}")
            );
        }
    }

    #[test]
    fn the_lan_ranges_are_valid_prefixes_of_the_right_family() {
        for (list, v4) in [
            (LAN_V4, true),
            (LAN_V4_MULTICAST, true),
            (LAN_V6, false),
            (LAN_V6_MULTICAST, false),
        ] {
            for text in list {
                let prefix = net(text);
                assert_eq!(prefix.to_string(), *text, "not canonical: {text}");
                assert_eq!(matches!(prefix, IpNet::V4(_)), v4, "wrong family: {text}");
            }
        }
        // The addresses Warren's tests use are not LAN, except the ULAs (fd00::/8).
        let lan = |a: IpAddr| LAN_V4.iter().chain(LAN_V6).any(|p| net(p).contains(&a));
        assert!(!lan(ip("198.18.0.1")));
        assert!(!lan(ip("198.19.255.255")));
        assert!(lan(ip("fd00:1::1")));
        assert!(lan(ip("fe80::1")));
        assert!(!lan(ip("2001:db8::1")));
    }
}
