//! The network planner: a pure function from a tunnel configuration to the addresses, MTU and
//! routes the tunnel interface needs, and the refusals for what Warren cannot do safely yet.
//!
//! Routes follow wg-quick for split tunnels: one route through the interface per distinct
//! AllowedIPs prefix of every peer, in the main table (`Table = auto`), in table `<id>`
//! (`Table = <id>`), or none at all (`Table = off`).
//!
//! Why the refusals:
//! - A full tunnel (`0.0.0.0/0` or `::/0`) needs policy routing (a fwmark on the tunnel's own UDP
//!   socket, a private table and `ip rule`s) so that the encrypted packets to the endpoint do not
//!   themselves enter the tunnel. That arrives with the system-integration work; a plain default
//!   route through the tunnel would loop.
//! - For the same reason a peer endpoint (an IP literal) inside the AllowedIPs whose routes go into
//!   the main table would send the tunnel's own packets into the tunnel.
//! - Two `Address` entries with the same IP would make the OS refuse the second one half-way.
//!
//! With `Table = off` or a table id other than main, no route Warren adds reaches the main table,
//! so none of the routing refusals apply (wg-quick adds such routes as they are, too).

use ipnet::IpNet;
use std::net::{IpAddr, SocketAddr};
use warren_proto::config::{Endpoint, Table, TunnelConfig};
use warren_proto::key::PublicKey;

/// The MTU when the configuration sets none: WireGuard's classic 1420 (1500 minus 80 bytes for the
/// IPv6 + UDP + WireGuard overhead). Deriving it from the route to the endpoint comes later.
pub const DEFAULT_MTU: u16 = 1420;

/// The id of the kernel's main routing table (`RT_TABLE_MAIN`).
pub const MAIN_TABLE: u32 = 254;

/// The smallest MTU an interface carrying IPv6 may have (RFC 8200); below it Linux removes IPv6
/// from the interface.
const IPV6_MIN_MTU: u16 = 1280;

/// What the tunnel interface needs: computed by [`plan`], executed by [`super::apply`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetworkPlan {
    /// The tunnel interface's name.
    pub ifname: String,
    /// The interface's own addresses, with their prefix length (host bits kept), in config order.
    pub addresses: Vec<IpNet>,
    /// The interface MTU.
    pub mtu: u16,
    /// The routes to add through the interface, deduplicated, in config order. Empty with
    /// `Table = off`.
    pub routes: Vec<IpNet>,
    /// The routing table for [`NetworkPlan::routes`]: [`MAIN_TABLE`] unless the configuration says
    /// `Table = <id>`.
    pub table: u32,
}

/// Why a configuration cannot be brought up (yet).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlanError {
    /// Some peer's AllowedIPs contain a default route.
    #[error(
        "peer {peer} has AllowedIPs = {allowed_ip}, a full tunnel (all {family} traffic): full-tunnel \
         routing is not supported yet; it arrives with the system-integration work"
    )]
    FullTunnel {
        /// The peer's public key.
        peer: PublicKey,
        /// `0.0.0.0/0` or `::/0`.
        allowed_ip: IpNet,
        /// "IPv4" or "IPv6".
        family: &'static str,
    },
    /// The same IP appears in two `Address` entries.
    #[error("Address {address} is listed twice ({first} and {second})")]
    DuplicateAddress {
        /// The repeated IP.
        address: IpAddr,
        /// The first entry.
        first: IpNet,
        /// The later entry.
        second: IpNet,
    },
    /// A peer's endpoint lies inside AllowedIPs that would be routed through the tunnel.
    #[error(
        "peer {peer} has Endpoint = {endpoint}, which lies inside AllowedIPs {allowed_ip}: the \
         route for {allowed_ip} would send the tunnel's own packets into the tunnel (a routing loop)"
    )]
    EndpointInsideAllowedIps {
        /// The peer whose endpoint it is.
        peer: PublicKey,
        /// The endpoint.
        endpoint: SocketAddr,
        /// The AllowedIPs prefix containing it.
        allowed_ip: IpNet,
    },
    /// The MTU is too small for the IPv6 the tunnel carries.
    #[error(
        "MTU = {mtu} is below {IPV6_MIN_MTU}, the minimum for IPv6, but the tunnel carries IPv6 \
         ({ipv6})"
    )]
    MtuTooSmallForIpv6 {
        /// The configured MTU.
        mtu: u16,
        /// An IPv6 address or AllowedIPs prefix of the tunnel.
        ipv6: IpNet,
    },
}

/// Computes what `config` needs on the interface `ifname`. Pure: reads nothing from the system.
///
/// - addresses: `Address`, in order; an IP listed twice is refused;
/// - MTU: `MTU`, else [`DEFAULT_MTU`]; below 1280 is refused when the tunnel carries IPv6;
/// - routes: every distinct AllowedIPs prefix of every peer, in order (the parser already cleared
///   host bits), in the table `Table` names; none with `Table = off`. In the main table, a prefix
///   equal to the connected prefix of one of the interface's own addresses is left out, because the
///   kernel adds that route itself when the address is added (adding it again would fail with
///   `File exists`);
/// - refused while routes go to the main table: a full tunnel, and an endpoint IP inside AllowedIPs.
pub fn plan(config: &TunnelConfig, ifname: &str) -> Result<NetworkPlan, PlanError> {
    let interface = &config.interface;

    for (i, &second) in interface.addresses.iter().enumerate() {
        if let Some(&first) = interface.addresses[..i]
            .iter()
            .find(|a| a.addr() == second.addr())
        {
            return Err(PlanError::DuplicateAddress {
                address: second.addr(),
                first,
                second,
            });
        }
    }

    let table = match interface.table {
        Table::Off => None,
        Table::Auto | Table::Id(0) => Some(MAIN_TABLE),
        Table::Id(id) => Some(id),
    };

    if table == Some(MAIN_TABLE) {
        refuse_routing_loops(config)?;
    }

    let mtu = interface.mtu.unwrap_or(DEFAULT_MTU);
    if mtu < IPV6_MIN_MTU {
        let allowed_ips = config.peers.iter().flat_map(|p| &p.allowed_ips);
        if let Some(&ipv6) = interface
            .addresses
            .iter()
            .chain(allowed_ips)
            .find(|n| is_v6(n))
        {
            return Err(PlanError::MtuTooSmallForIpv6 { mtu, ipv6 });
        }
    }

    let mut routes: Vec<IpNet> = Vec::new();
    if let Some(table) = table {
        let connected: Vec<IpNet> = interface
            .addresses
            .iter()
            .filter(|a| a.prefix_len() < a.max_prefix_len())
            .map(IpNet::trunc)
            .collect();
        for &route in config.peers.iter().flat_map(|p| &p.allowed_ips) {
            let route = route.trunc();
            let kernel_adds_it = table == MAIN_TABLE && connected.contains(&route);
            if !kernel_adds_it && !routes.contains(&route) {
                routes.push(route);
            }
        }
    }

    Ok(NetworkPlan {
        ifname: ifname.to_owned(),
        addresses: interface.addresses.clone(),
        mtu,
        routes,
        table: table.unwrap_or(MAIN_TABLE),
    })
}

/// The refusals that apply while routes go into the main table.
fn refuse_routing_loops(config: &TunnelConfig) -> Result<(), PlanError> {
    for peer in &config.peers {
        if let Some(&allowed_ip) = peer.allowed_ips.iter().find(|n| n.prefix_len() == 0) {
            let family = if is_v6(&allowed_ip) { "IPv6" } else { "IPv4" };
            return Err(PlanError::FullTunnel {
                peer: peer.public_key,
                allowed_ip,
                family,
            });
        }
    }
    for peer in &config.peers {
        let Some(Endpoint::Addr(endpoint)) = peer.endpoint else {
            continue;
        };
        let ip = endpoint.ip().to_canonical();
        let mut all_allowed_ips = config.peers.iter().flat_map(|p| &p.allowed_ips);
        if let Some(&allowed_ip) = all_allowed_ips.find(|n| n.contains(&ip)) {
            return Err(PlanError::EndpointInsideAllowedIps {
                peer: peer.public_key,
                endpoint,
                allowed_ip,
            });
        }
    }
    Ok(())
}

fn is_v6(net: &IpNet) -> bool {
    matches!(net, IpNet::V6(_))
}

#[cfg(test)]
mod tests {
    use super::*;
    use warren_proto::config::{Hooks, InterfaceConfig, PeerConfig};
    use warren_proto::key::PrivateKey;

    fn nets(list: &[&str]) -> Vec<IpNet> {
        list.iter().map(|s| s.parse().unwrap()).collect()
    }

    fn peer(allowed_ips: &[&str], endpoint: Option<&str>) -> PeerConfig {
        PeerConfig {
            public_key: PrivateKey::generate().public_key(),
            preshared_key: None,
            allowed_ips: nets(allowed_ips),
            endpoint: endpoint.map(|e| Endpoint::Addr(e.parse().unwrap())),
            persistent_keepalive: None,
        }
    }

    fn config(addresses: &[&str], peers: Vec<PeerConfig>) -> TunnelConfig {
        TunnelConfig {
            interface: InterfaceConfig {
                private_key: PrivateKey::generate(),
                addresses: nets(addresses),
                listen_port: None,
                dns_servers: vec![],
                dns_search: vec![],
                mtu: None,
                table: Table::Auto,
                fwmark: None,
                hooks: Hooks::default(),
                save_config: false,
            },
            peers,
        }
    }

    fn with_table(mut config: TunnelConfig, table: Table) -> TunnelConfig {
        config.interface.table = table;
        config
    }

    #[test]
    fn split_tunnel_gets_addresses_default_mtu_and_a_route_per_prefix_in_main() {
        let config = config(
            &["198.18.1.1/24", "fd00:1::1/64"],
            vec![
                peer(
                    &["198.18.4.0/24", "fd00:4::/64"],
                    Some("198.18.250.2:51820"),
                ),
                peer(&["198.18.5.7/32"], None),
            ],
        );
        let plan = plan(&config, "wg0").unwrap();
        assert_eq!(
            plan,
            NetworkPlan {
                ifname: "wg0".into(),
                addresses: nets(&["198.18.1.1/24", "fd00:1::1/64"]),
                mtu: DEFAULT_MTU,
                routes: nets(&["198.18.4.0/24", "fd00:4::/64", "198.18.5.7/32"]),
                table: MAIN_TABLE,
            }
        );
    }

    #[test]
    fn configured_mtu_wins() {
        let mut config = config(&["198.18.1.1/24"], vec![]);
        config.interface.mtu = Some(1380);
        assert_eq!(plan(&config, "wg0").unwrap().mtu, 1380);
    }

    #[test]
    fn routes_are_deduplicated_across_peers_keeping_first_order() {
        let config = config(
            &["198.18.1.1/32"],
            vec![
                peer(&["198.18.4.0/24", "fd00:4::/64", "198.18.4.0/24"], None),
                peer(&["fd00:4::/64", "198.18.6.0/24"], None),
            ],
        );
        assert_eq!(
            plan(&config, "wg0").unwrap().routes,
            nets(&["198.18.4.0/24", "fd00:4::/64", "198.18.6.0/24"])
        );
    }

    #[test]
    fn a_prefix_the_kernel_adds_for_an_own_address_is_left_out_in_main() {
        let config = config(
            &["198.18.1.1/24", "fd00:1::1/64", "198.18.2.1/32"],
            vec![peer(
                &[
                    "198.18.1.0/24",
                    "fd00:1::/64",
                    "198.18.2.1/32",
                    "198.18.3.0/24",
                ],
                None,
            )],
        );
        // 198.18.2.1/32 stays: the kernel adds no prefix route for a /32 address.
        assert_eq!(
            plan(&config, "wg0").unwrap().routes,
            nets(&["198.18.2.1/32", "198.18.3.0/24"])
        );
        // In another table nothing is there yet, so every prefix is routed.
        let config = with_table(config, Table::Id(1234));
        assert_eq!(
            plan(&config, "wg0").unwrap().routes,
            nets(&[
                "198.18.1.0/24",
                "fd00:1::/64",
                "198.18.2.1/32",
                "198.18.3.0/24"
            ])
        );
    }

    #[test]
    fn table_off_adds_no_routes() {
        let config = with_table(
            config(&["198.18.1.1/24"], vec![peer(&["198.18.4.0/24"], None)]),
            Table::Off,
        );
        let plan = plan(&config, "wg0").unwrap();
        assert!(plan.routes.is_empty());
        assert_eq!(plan.addresses, nets(&["198.18.1.1/24"]));
    }

    #[test]
    fn table_id_puts_routes_in_that_table() {
        let config = with_table(
            config(&["198.18.1.1/24"], vec![peer(&["198.18.4.0/24"], None)]),
            Table::Id(1234),
        );
        let plan = plan(&config, "wg0").unwrap();
        assert_eq!(plan.table, 1234);
        assert_eq!(plan.routes, nets(&["198.18.4.0/24"]));
        let main = with_table(config.clone(), Table::Id(0));
        assert_eq!(super::plan(&main, "wg0").unwrap().table, MAIN_TABLE);
    }

    #[test]
    fn full_tunnel_is_refused_with_a_clear_message() {
        for default in ["0.0.0.0/0", "::/0"] {
            let config = config(
                &["198.18.1.1/24"],
                vec![peer(&["198.18.4.0/24", default], None)],
            );
            let peer_key = config.peers[0].public_key;
            let err = plan(&config, "wg0").unwrap_err();
            let family = if default == "::/0" { "IPv6" } else { "IPv4" };
            assert_eq!(
                err,
                PlanError::FullTunnel {
                    peer: peer_key,
                    allowed_ip: default.parse().unwrap(),
                    family
                }
            );
            let message = err.to_string();
            assert!(
                message.contains(&format!("AllowedIPs = {default}")),
                "{message}"
            );
            assert!(message.contains(&peer_key.to_string()), "{message}");
            assert!(message.contains("not supported yet"), "{message}");
            assert!(message.contains("system-integration work"), "{message}");
        }
        // The explicit main table is the main table.
        let config = with_table(
            config(&[], vec![peer(&["0.0.0.0/0"], None)]),
            Table::Id(MAIN_TABLE),
        );
        assert!(matches!(
            plan(&config, "wg0"),
            Err(PlanError::FullTunnel { .. })
        ));
    }

    #[test]
    fn full_tunnel_allowed_ips_without_main_table_routes_are_accepted() {
        let off = with_table(
            config(&["198.18.1.1/24"], vec![peer(&["0.0.0.0/0"], None)]),
            Table::Off,
        );
        assert!(plan(&off, "wg0").unwrap().routes.is_empty());
        let table = with_table(off, Table::Id(1234));
        assert_eq!(plan(&table, "wg0").unwrap().routes, nets(&["0.0.0.0/0"]));
    }

    #[test]
    fn duplicate_addresses_are_refused_naming_both() {
        let config = config(&["198.18.1.1/24", "fd00:1::1/64", "198.18.1.1/32"], vec![]);
        let err = plan(&config, "wg0").unwrap_err();
        assert_eq!(
            err.to_string(),
            "Address 198.18.1.1 is listed twice (198.18.1.1/24 and 198.18.1.1/32)"
        );
        let config = super::tests::config(&["fd00:1::1/64", "fd00:1::1/64"], vec![]);
        assert!(matches!(
            plan(&config, "wg0"),
            Err(PlanError::DuplicateAddress { .. })
        ));
    }

    #[test]
    fn endpoint_inside_allowed_ips_is_refused_naming_both() {
        let config = config(
            &["198.18.1.1/24"],
            vec![peer(&["198.18.250.0/24"], Some("198.18.250.2:51820"))],
        );
        let err = plan(&config, "wg0").unwrap_err();
        let peer_key = config.peers[0].public_key;
        assert_eq!(
            err.to_string(),
            format!(
                "peer {peer_key} has Endpoint = 198.18.250.2:51820, which lies inside AllowedIPs \
                 198.18.250.0/24: the route for 198.18.250.0/24 would send the tunnel's own packets \
                 into the tunnel (a routing loop)"
            )
        );
    }

    #[test]
    fn endpoint_inside_another_peers_allowed_ips_is_refused_too() {
        let config = config(
            &["198.18.1.1/24"],
            vec![
                peer(&["198.18.4.0/24"], Some("[fd00:9::2]:51820")),
                peer(&["fd00:9::/64"], None),
            ],
        );
        let err = plan(&config, "wg0").unwrap_err();
        assert!(matches!(
            err,
            PlanError::EndpointInsideAllowedIps { allowed_ip, .. } if allowed_ip == "fd00:9::/64".parse().unwrap()
        ));
    }

    #[test]
    fn ipv4_mapped_endpoint_is_checked_as_ipv4() {
        let config = config(
            &[],
            vec![peer(
                &["198.18.250.0/24"],
                Some("[::ffff:198.18.250.2]:51820"),
            )],
        );
        assert!(matches!(
            plan(&config, "wg0"),
            Err(PlanError::EndpointInsideAllowedIps { .. })
        ));
    }

    #[test]
    fn endpoint_outside_allowed_ips_is_fine() {
        let config = config(
            &["198.18.1.1/24"],
            vec![peer(&["198.18.4.0/24"], Some("198.18.250.2:51820"))],
        );
        assert!(plan(&config, "wg0").is_ok());
    }

    #[test]
    fn endpoint_inside_allowed_ips_is_fine_when_routes_skip_main() {
        let config = config(
            &["198.18.1.1/24"],
            vec![peer(&["198.18.250.0/24"], Some("198.18.250.2:51820"))],
        );
        assert!(plan(&with_table(config.clone(), Table::Off), "wg0").is_ok());
        assert!(plan(&with_table(config, Table::Id(1234)), "wg0").is_ok());
    }

    #[test]
    fn host_name_endpoints_are_not_checked_here() {
        let mut config = config(&["198.18.1.1/24"], vec![peer(&["198.18.4.0/24"], None)]);
        config.peers[0].endpoint = Some(Endpoint::Host {
            host: "vpn.example.com".into(),
            port: 51820,
        });
        assert!(plan(&config, "wg0").is_ok());
    }

    #[test]
    fn mtu_below_ipv6_minimum_is_refused_only_when_carrying_ipv6() {
        let mut v6 = config(&["198.18.1.1/24", "fd00:1::1/64"], vec![]);
        v6.interface.mtu = Some(1200);
        assert_eq!(
            plan(&v6, "wg0").unwrap_err().to_string(),
            "MTU = 1200 is below 1280, the minimum for IPv6, but the tunnel carries IPv6 (fd00:1::1/64)"
        );
        let mut v4 = config(&["198.18.1.1/24"], vec![peer(&["198.18.4.0/24"], None)]);
        v4.interface.mtu = Some(1200);
        assert_eq!(plan(&v4, "wg0").unwrap().mtu, 1200);
    }

    #[test]
    fn no_addresses_and_no_peers_is_an_empty_plan() {
        let plan = plan(&config(&[], vec![]), "wg7").unwrap();
        assert_eq!(plan.ifname, "wg7");
        assert!(plan.addresses.is_empty() && plan.routes.is_empty());
    }
}
