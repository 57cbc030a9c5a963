//! The Windows kill switch as a pure description: the Windows Filtering Platform (WFP) filters a
//! [`KillSwitchPlan`] becomes — layer, weight, verdict and conditions of each — with no Windows
//! call, so it is built and tested on every OS. `windows.rs` only translates each [`Filter`] into
//! an `FWPM_FILTER0` in its dynamic session. `verdict` (tests only) is WFP's arbitration inside one sublayer
//! (the highest weight whose conditions all match decides), for the tests to ask "would this
//! connection pass?" of the filter set itself.
//!
//! All filters sit in one sublayer, at the ALE connect and receive/accept layers (WFP judges a
//! connection when it is authorised, not each packet):
//!
//! | weight | verdict | what | anchor |
//! |---|---|---|---|
//! | 15 | permit | loopback | wireguard-windows `permitLoopback` (its weight 13) |
//! | 14 | permit | this executable's UDP to and from each peer endpoint, and to its own listen port from anywhere (inbound) | wireguard-windows `permitWireGuardService` (which permits the whole service process; Warren only its WireGuard socket's flows, as on Linux) |
//! | 13 | permit | DHCPv4 (68 ↔ 67, any server address), DHCPv6 (546 ↔ 547, link-local source, the DHCP multicast groups or a link-local server) | wireguard-windows `permitDHCPIPv4` (which allows the outbound request to 255.255.255.255 only, so a unicast renewal waits for the rebinding broadcast; Warren allows unicast) and `permitDHCPIPv6` |
//! | 12 | permit | DNS (port 53) through the tunnel interface, to the tunnel's DNS servers if any | wireguard-windows `blockDNS`' allow list (which permits its servers on any interface; Warren only through the tunnel) |
//! | 11 | block | all other DNS, either direction, on every interface | wireguard-windows `blockDNS` |
//! | 10 | permit | anything through the tunnel interface | wireguard-windows `permitTunInterface` |
//! |  9 | permit | neighbour discovery: ICMPv6 133 (to link scope), 134 and 137 (from link-local), 135 and 136 (any address); MLD: 131, 132, 143 (to link scope), 130 (from link-local) | wireguard-windows `permitNdp` (MLD is Warren's, as its nftables rules allow it) |
//! |  8 | permit | the LAN ranges (`plan.rs`), when "allow LAN" is on | Warren's (wireguard-windows has no "allow LAN") |
//! |  0 | block | everything else | wireguard-windows `blockAll` |
//!
//! DNS to a loopback resolver passes (weight 15 over 11), as any loopback traffic: what such a
//! resolver forwards outside the tunnel is blocked like any other program's DNS. wireguard-windows
//! blocks port 53 over loopback too; Warren lets local resolvers (and their caches) work.

use super::plan::{LAN_V4, LAN_V4_MULTICAST, LAN_V6, LAN_V6_MULTICAST};
use super::KillSwitchPlan;
use ipnet::IpNet;
use std::net::{IpAddr, Ipv6Addr};

/// IP protocol numbers the filters name.
pub const UDP: u8 = 17;
/// ICMPv6's protocol number.
pub const ICMPV6: u8 = 58;
/// DNS's port.
pub const DNS_PORT: u16 = 53;

/// A WFP layer the kill switch filters at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layer {
    /// `FWPM_LAYER_ALE_AUTH_CONNECT_V4`: outbound IPv4 connections (and UDP flows).
    ConnectV4,
    /// `FWPM_LAYER_ALE_AUTH_CONNECT_V6`.
    ConnectV6,
    /// `FWPM_LAYER_ALE_AUTH_RECV_ACCEPT_V4`: inbound IPv4 connections (and UDP flows).
    AcceptV4,
    /// `FWPM_LAYER_ALE_AUTH_RECV_ACCEPT_V6`.
    AcceptV6,
}

impl Layer {
    /// Every layer the kill switch uses.
    pub const ALL: [Layer; 4] = [
        Layer::ConnectV4,
        Layer::ConnectV6,
        Layer::AcceptV4,
        Layer::AcceptV6,
    ];

    /// Both directions of one family.
    pub fn both(v6: bool) -> [Layer; 2] {
        if v6 {
            [Layer::ConnectV6, Layer::AcceptV6]
        } else {
            [Layer::ConnectV4, Layer::AcceptV4]
        }
    }

    /// Whether it is an IPv6 layer.
    #[cfg(test)]
    pub fn is_v6(self) -> bool {
        matches!(self, Layer::ConnectV6 | Layer::AcceptV6)
    }

    /// Whether it is an inbound (receive/accept) layer.
    #[cfg(test)]
    pub fn is_inbound(self) -> bool {
        matches!(self, Layer::AcceptV4 | Layer::AcceptV6)
    }
}

/// One filter condition. In a filter, conditions on the same field are ORed, conditions on
/// different fields ANDed (WFP's rule).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Condition {
    /// `FWPM_CONDITION_FLAGS` has `FWP_CONDITION_FLAG_IS_LOOPBACK`.
    Loopback,
    /// `FWPM_CONDITION_IP_LOCAL_INTERFACE` is the tunnel's (its LUID, filled in by `windows.rs`).
    TunnelInterface,
    /// `FWPM_CONDITION_ALE_APP_ID` is this executable's.
    ThisProgram,
    /// `FWPM_CONDITION_IP_PROTOCOL`.
    Protocol(u8),
    /// `FWPM_CONDITION_IP_LOCAL_PORT`.
    LocalPort(u16),
    /// `FWPM_CONDITION_IP_REMOTE_PORT`.
    RemotePort(u16),
    /// `FWPM_CONDITION_ICMP_TYPE` (the same field as the local port, for ICMP).
    IcmpType(u16),
    /// `FWPM_CONDITION_ICMP_CODE` (the same field as the remote port, for ICMP).
    IcmpCode(u16),
    /// `FWPM_CONDITION_IP_REMOTE_ADDRESS` is this address.
    RemoteAddress(IpAddr),
    /// `FWPM_CONDITION_IP_REMOTE_ADDRESS` is in this prefix.
    RemoteNet(IpNet),
    /// `FWPM_CONDITION_IP_LOCAL_ADDRESS` is in this prefix.
    LocalNet(IpNet),
}

/// The fields conditions are on, for WFP's OR-within-a-field rule.
#[cfg(test)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Field {
    Flags,
    Interface,
    App,
    Protocol,
    LocalPort,
    RemotePort,
    RemoteAddress,
    LocalAddress,
}

#[cfg(test)]
impl Condition {
    fn field(self) -> Field {
        match self {
            Condition::Loopback => Field::Flags,
            Condition::TunnelInterface => Field::Interface,
            Condition::ThisProgram => Field::App,
            Condition::Protocol(_) => Field::Protocol,
            Condition::LocalPort(_) | Condition::IcmpType(_) => Field::LocalPort,
            Condition::RemotePort(_) | Condition::IcmpCode(_) => Field::RemotePort,
            Condition::RemoteAddress(_) | Condition::RemoteNet(_) => Field::RemoteAddress,
            Condition::LocalNet(_) => Field::LocalAddress,
        }
    }

    fn matches(self, flow: &Flow) -> bool {
        match self {
            Condition::Loopback => flow.loopback,
            Condition::TunnelInterface => flow.through_tunnel,
            Condition::ThisProgram => flow.this_program,
            Condition::Protocol(protocol) => flow.protocol == protocol,
            Condition::LocalPort(port) | Condition::IcmpType(port) => flow.local_port == port,
            Condition::RemotePort(port) | Condition::IcmpCode(port) => flow.remote_port == port,
            Condition::RemoteAddress(ip) => flow.remote == ip,
            Condition::RemoteNet(net) => net.contains(&flow.remote),
            Condition::LocalNet(net) => net.contains(&flow.local),
        }
    }
}

/// One WFP filter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Filter {
    /// Where it applies.
    pub layer: Layer,
    /// Its weight in the sublayer (the highest matching one decides).
    pub weight: u8,
    /// Permit, or block.
    pub permit: bool,
    /// What it is for: the filter's display name, after "Warren kill switch: ".
    pub what: &'static str,
    /// Its conditions (none: every connection at the layer).
    pub conditions: Vec<Condition>,
}

#[cfg(test)]
impl Filter {
    /// Whether every field's conditions match `flow` (at least one condition per field).
    fn matches(&self, flow: &Flow) -> bool {
        self.conditions.iter().all(|condition| {
            let field = condition.field();
            self.conditions
                .iter()
                .filter(|other| other.field() == field)
                .any(|other| other.matches(flow))
        })
    }
}

/// A connection (or UDP flow) as the ALE layers see it, for [`verdict`].
#[cfg(test)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Flow {
    /// Inbound (receive/accept) rather than outbound (connect).
    pub inbound: bool,
    /// Through the tunnel interface.
    pub through_tunnel: bool,
    /// Over loopback.
    pub loopback: bool,
    /// From or to this executable.
    pub this_program: bool,
    /// The IP protocol.
    pub protocol: u8,
    /// The local address.
    pub local: IpAddr,
    /// The local port (ICMP: the type).
    pub local_port: u16,
    /// The remote address.
    pub remote: IpAddr,
    /// The remote port (ICMP: the code).
    pub remote_port: u16,
}

/// Whether `filters` permit `flow`: WFP's arbitration within one sublayer — the matching filter
/// of the highest weight at the flow's layer decides; with none, the flow passes (as it does when
/// no filter of the sublayer matches). The tests' model of WFP, not used to install anything.
#[cfg(test)]
pub fn verdict(filters: &[Filter], flow: &Flow) -> bool {
    let v6 = flow.remote.to_canonical().is_ipv6();
    filters
        .iter()
        .filter(|filter| filter.layer.is_v6() == v6 && filter.layer.is_inbound() == flow.inbound)
        .filter(|filter| filter.matches(flow))
        .max_by_key(|filter| filter.weight)
        .is_none_or(|filter| filter.permit)
}

/// The DHCPv6 multicast groups a client sends to (All_DHCP_Relay_Agents_and_Servers, All_DHCP_Servers).
const DHCPV6_GROUPS: [Ipv6Addr; 2] = [
    Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 1, 2),
    Ipv6Addr::new(0xff05, 0, 0, 0, 0, 0, 1, 3),
];

fn net(text: &str) -> IpNet {
    // Only called with the literals below and `plan.rs`'s constants, all valid prefixes.
    text.parse()
        .unwrap_or_else(|_| unreachable!("{text} is a valid prefix"))
}

/// The filters of `plan`, in the order they are added (see the module docs).
pub fn filters(plan: &KillSwitchPlan) -> Vec<Filter> {
    let mut out = Vec::new();
    let mut add = |layer: Layer, weight: u8, permit: bool, what, conditions: Vec<Condition>| {
        out.push(Filter {
            layer,
            weight,
            permit,
            what,
            conditions,
        });
    };
    let link_local = net("fe80::/10");

    for layer in Layer::ALL {
        add(
            layer,
            15,
            true,
            "permit loopback",
            vec![Condition::Loopback],
        );
    }
    for endpoint in &plan.endpoints {
        for layer in Layer::both(endpoint.is_ipv6()) {
            add(
                layer,
                14,
                true,
                "permit the WireGuard socket to its endpoint",
                vec![
                    Condition::ThisProgram,
                    Condition::Protocol(UDP),
                    Condition::RemoteAddress(endpoint.ip()),
                    Condition::RemotePort(endpoint.port()),
                ],
            );
        }
    }
    if let Some(port) = plan.listen_port {
        for layer in [Layer::AcceptV4, Layer::AcceptV6] {
            add(
                layer,
                14,
                true,
                "permit datagrams to the WireGuard socket's port",
                vec![
                    Condition::ThisProgram,
                    Condition::Protocol(UDP),
                    Condition::LocalPort(port),
                ],
            );
        }
    }
    for layer in Layer::both(false) {
        add(
            layer,
            13,
            true,
            "permit DHCPv4",
            vec![
                Condition::Protocol(UDP),
                Condition::LocalPort(68),
                Condition::RemotePort(67),
            ],
        );
    }
    for layer in Layer::both(true) {
        let mut conditions = vec![
            Condition::Protocol(UDP),
            Condition::LocalPort(546),
            Condition::RemotePort(547),
            Condition::LocalNet(link_local),
            Condition::RemoteNet(link_local),
        ];
        conditions.extend(
            DHCPV6_GROUPS
                .iter()
                .map(|&group| Condition::RemoteAddress(IpAddr::V6(group))),
        );
        add(layer, 13, true, "permit DHCPv6", conditions);
    }
    for v6 in [false, true] {
        let servers: Vec<Condition> = plan
            .dns_servers
            .iter()
            .filter(|ip| ip.is_ipv6() == v6)
            .map(|&ip| Condition::RemoteAddress(ip))
            .collect();
        // With servers of the other family only, this family has no DNS at all.
        if plan.dns_servers.is_empty() || !servers.is_empty() {
            let mut conditions = vec![Condition::TunnelInterface, Condition::RemotePort(DNS_PORT)];
            conditions.extend(servers);
            let layer = if v6 {
                Layer::ConnectV6
            } else {
                Layer::ConnectV4
            };
            add(layer, 12, true, "permit DNS through the tunnel", conditions);
        }
        for layer in Layer::both(v6) {
            add(
                layer,
                11,
                false,
                "block other DNS",
                vec![Condition::RemotePort(DNS_PORT)],
            );
        }
    }
    for layer in Layer::ALL {
        add(
            layer,
            10,
            true,
            "permit the tunnel",
            vec![Condition::TunnelInterface],
        );
    }
    let ndp = |types: &[u16], remotes: &[IpNet]| {
        let mut conditions = vec![Condition::Protocol(ICMPV6), Condition::IcmpCode(0)];
        conditions.extend(types.iter().map(|&t| Condition::IcmpType(t)));
        conditions.extend(remotes.iter().map(|&r| Condition::RemoteNet(r)));
        conditions
    };
    // Router solicitation and MLD reports and done, to link-scope groups.
    add(
        Layer::ConnectV6,
        9,
        true,
        "permit neighbour discovery",
        ndp(&[133, 131, 132, 143], &[net("ff02::/16")]),
    );
    // Router advertisement, redirect and MLD queries, from a router's link-local address.
    add(
        Layer::AcceptV6,
        9,
        true,
        "permit neighbour discovery",
        ndp(&[134, 137, 130], &[link_local]),
    );
    // Neighbour solicitation and advertisement, to and from any address (unreachability
    // detection uses the neighbour's own address, global ones included).
    for layer in Layer::both(true) {
        add(
            layer,
            9,
            true,
            "permit neighbour discovery",
            ndp(&[135, 136], &[]),
        );
    }
    if plan.allow_lan {
        let nets = |ranges: &[&str]| -> Vec<Condition> {
            ranges
                .iter()
                .map(|range| Condition::RemoteNet(net(range)))
                .collect()
        };
        let lan4_out = [LAN_V4, LAN_V4_MULTICAST].concat();
        let lan6_out = [LAN_V6, LAN_V6_MULTICAST].concat();
        add(Layer::ConnectV4, 8, true, "permit the LAN", nets(&lan4_out));
        add(Layer::AcceptV4, 8, true, "permit the LAN", nets(LAN_V4));
        add(Layer::ConnectV6, 8, true, "permit the LAN", nets(&lan6_out));
        add(Layer::AcceptV6, 8, true, "permit the LAN", nets(LAN_V6));
    }
    for layer in Layer::ALL {
        add(layer, 0, false, "block everything else", vec![]);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::super::plan::{plan, KillSwitchInput};
    use super::*;
    use std::net::SocketAddr;

    const ENDPOINT: &str = "198.18.9.1:51820";
    const ENDPOINT6: &str = "[fd00:9::1]:51820";

    fn kill_switch(dns: &[&str], allow_lan: bool) -> KillSwitchPlan {
        let endpoints: Vec<SocketAddr> = [ENDPOINT, ENDPOINT6]
            .iter()
            .map(|e| e.parse().unwrap())
            .collect();
        let dns: Vec<IpAddr> = dns.iter().map(|ip| ip.parse().unwrap()).collect();
        let addresses: Vec<IpNet> = vec!["198.18.0.2/32".parse().unwrap()];
        plan(KillSwitchInput {
            ifname: "office",
            endpoints: &endpoints,
            fwmark: None,
            listen_port: Some(51000),
            dns_servers: &dns,
            tunnel_addresses: &addresses,
            allow_lan,
        })
        .unwrap()
    }

    /// An outbound UDP flow from another program on the physical interface.
    fn out(remote: &str, port: u16) -> Flow {
        let remote: IpAddr = remote.parse().unwrap();
        Flow {
            inbound: false,
            through_tunnel: false,
            loopback: false,
            this_program: false,
            protocol: UDP,
            local: if remote.is_ipv6() {
                "fd00:1::2".parse().unwrap()
            } else {
                "198.18.1.2".parse().unwrap()
            },
            local_port: 40000,
            remote,
            remote_port: port,
        }
    }

    fn tunnel(flow: Flow) -> Flow {
        Flow {
            through_tunnel: true,
            ..flow
        }
    }

    fn mine(flow: Flow) -> Flow {
        Flow {
            this_program: true,
            ..flow
        }
    }

    fn inbound(flow: Flow) -> Flow {
        Flow {
            inbound: true,
            ..flow
        }
    }

    #[test]
    fn only_the_wireguard_socket_reaches_the_endpoints_outside_the_tunnel() {
        let filters = filters(&kill_switch(&[], false));
        assert!(verdict(&filters, &mine(out("198.18.9.1", 51820))));
        assert!(verdict(&filters, &mine(out("fd00:9::1", 51820))));
        assert!(
            !verdict(&filters, &out("198.18.9.1", 51820)),
            "another program"
        );
        assert!(
            !verdict(&filters, &mine(out("198.18.9.1", 443))),
            "another port"
        );
        assert!(
            !verdict(&filters, &mine(out("198.18.9.2", 51820))),
            "another host"
        );
        // Inbound to the socket's own port from any address (a multi-homed server), only to it.
        let mut reply = inbound(mine(out("198.18.9.7", 51820)));
        reply.local_port = 51000;
        assert!(verdict(&filters, &reply));
        reply.this_program = false;
        assert!(!verdict(&filters, &reply), "another program on that port");
    }

    #[test]
    fn everything_else_off_the_tunnel_is_blocked_and_the_tunnel_is_open() {
        let filters = filters(&kill_switch(&[], false));
        for remote in ["198.19.77.5", "2001:db8::5", "192.168.1.10", "fe80::1"] {
            let mut flow = out(remote, 443);
            flow.protocol = 6;
            assert!(!verdict(&filters, &flow), "{remote} off the tunnel");
            assert!(!verdict(&filters, &inbound(flow)), "{remote} inbound");
            assert!(
                verdict(&filters, &tunnel(flow)),
                "{remote} through the tunnel"
            );
        }
        let mut local = out("127.0.0.1", 8080);
        local.loopback = true;
        assert!(verdict(&filters, &local));
    }

    #[test]
    fn dns_goes_only_to_the_tunnels_servers_through_the_tunnel() {
        let filters = filters(&kill_switch(&["198.18.0.53"], true));
        assert!(verdict(&filters, &tunnel(out("198.18.0.53", 53))));
        assert!(
            !verdict(&filters, &tunnel(out("198.18.0.54", 53))),
            "another server"
        );
        assert!(
            !verdict(&filters, &out("198.18.0.53", 53)),
            "off the tunnel"
        );
        assert!(
            !verdict(&filters, &out("192.168.1.1", 53)),
            "the LAN's resolver, allow LAN on"
        );
        assert!(
            !verdict(&filters, &tunnel(out("fd00::53", 53))),
            "no IPv6 server: no IPv6 DNS"
        );
        assert!(
            !verdict(&filters, &inbound(out("192.168.1.1", 53))),
            "inbound DNS"
        );
        let mut tcp = tunnel(out("198.18.0.53", 53));
        tcp.protocol = 6;
        assert!(verdict(&filters, &tcp), "DNS over TCP to the server");
        // A local resolver is loopback (what it forwards is judged on its own).
        let mut local = out("127.0.0.1", 53);
        local.loopback = true;
        assert!(verdict(&filters, &local));

        let anywhere = filters_without_servers();
        assert!(verdict(&anywhere, &tunnel(out("9.9.9.9", 53))));
        assert!(verdict(&anywhere, &tunnel(out("2001:db8::53", 53))));
        assert!(!verdict(&anywhere, &out("9.9.9.9", 53)));
    }

    fn filters_without_servers() -> Vec<Filter> {
        filters(&kill_switch(&[], false))
    }

    #[test]
    fn the_lan_only_with_allow_lan_and_dhcp_always() {
        let closed = filters(&kill_switch(&[], false));
        let open = filters(&kill_switch(&[], true));
        let printer = out("192.168.1.20", 631);
        assert!(!verdict(&closed, &printer));
        assert!(verdict(&open, &printer));
        assert!(verdict(&open, &inbound(printer)));
        assert!(verdict(&open, &out("fd12::20", 631)));
        assert!(verdict(&open, &out("239.255.255.250", 1900)), "SSDP");
        assert!(!verdict(&open, &inbound(out("239.255.255.250", 1900))));
        assert!(
            !verdict(&open, &out("198.19.77.5", 443)),
            "the internet stays closed"
        );

        let mut dhcp = out("255.255.255.255", 67);
        dhcp.local_port = 68;
        assert!(verdict(&closed, &dhcp));
        dhcp.remote = "198.18.1.1".parse().unwrap();
        assert!(verdict(&closed, &dhcp), "a unicast renewal");
        let mut dhcp6 = out("ff02::1:2", 547);
        dhcp6.local = "fe80::2".parse().unwrap();
        dhcp6.local_port = 546;
        assert!(verdict(&closed, &dhcp6));
        dhcp6.remote = "2001:db8::547".parse().unwrap();
        assert!(!verdict(&closed, &dhcp6), "DHCPv6 to a global address");
    }

    #[test]
    fn neighbour_discovery_passes_and_other_icmpv6_does_not() {
        let filters = filters(&kill_switch(&[], false));
        let icmp = |remote: &str, kind: u16, inbound: bool| Flow {
            inbound,
            through_tunnel: false,
            loopback: false,
            this_program: false,
            protocol: ICMPV6,
            local: "fe80::2".parse().unwrap(),
            local_port: kind,
            remote: remote.parse().unwrap(),
            remote_port: 0,
        };
        assert!(verdict(&filters, &icmp("ff02::2", 133, false)));
        assert!(
            verdict(&filters, &icmp("ff02::16", 143, false)),
            "an MLDv2 report"
        );
        assert!(verdict(&filters, &icmp("fe80::1", 134, true)));
        assert!(
            !verdict(&filters, &icmp("2001:db8::1", 134, true)),
            "RA from a global address"
        );
        assert!(verdict(&filters, &icmp("ff02::1:ff00:1", 135, false)));
        assert!(
            verdict(&filters, &icmp("2001:db8::1", 135, false)),
            "NUD to a global address"
        );
        assert!(verdict(&filters, &icmp("2001:db8::1", 136, true)));
        assert!(
            !verdict(&filters, &icmp("fe80::1", 128, false)),
            "echo request"
        );
        assert!(!verdict(&filters, &icmp("2001:db8::1", 128, false)));
    }

    #[test]
    fn every_layer_ends_in_a_block_and_weights_fit_the_table() {
        let filters = filters(&kill_switch(&["198.18.0.53", "fd00::53"], true));
        for layer in Layer::ALL {
            assert!(filters.iter().any(|f| f.layer == layer
                && f.weight == 0
                && !f.permit
                && f.conditions.is_empty()));
        }
        assert!(filters.iter().all(|f| f.weight <= 15));
        // The DNS block outranks everything that could let DNS out but the socket and loopback.
        let dns_block = filters
            .iter()
            .find(|f| f.what == "block other DNS")
            .unwrap();
        for filter in filters.iter().filter(|f| f.permit) {
            if !matches!(
                filter.what,
                "permit loopback"
                    | "permit the WireGuard socket to its endpoint"
                    | "permit datagrams to the WireGuard socket's port"
                    | "permit DHCPv4"
                    | "permit DHCPv6"
                    | "permit DNS through the tunnel"
            ) {
                assert!(filter.weight < dns_block.weight, "{}", filter.what);
            }
        }
    }
}
