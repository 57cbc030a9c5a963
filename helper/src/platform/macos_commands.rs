//! The pure half of the macOS network layer ([`super::macos`]): the `ifconfig(8)` and `route(8)`
//! arguments wg-quick's `darwin.bash` uses, and the reading of their output and error messages.
//! No system call, so it is compiled and unit-tested on every OS (only macOS calls it).

use super::{Family, Gateway};
use ipnet::IpNet;
use std::io;
use std::net::IpAddr;

/// A route as `route -n get` reports it: for the default route, the gateway the tunnel's host
/// routes to its endpoints go through, and the interface it leaves by.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(super) struct RouteGet {
    /// `gateway:` when it is an address (an interface route has none), without its `%scope`.
    pub(super) gateway: Option<IpAddr>,
    /// `interface:`.
    pub(super) interface: Option<String>,
    /// The `mtu` column of the metrics table, when not 0.
    pub(super) mtu: Option<u32>,
}

impl RouteGet {
    /// The default route's next hop, with its interface; `None` for a route without one.
    pub(super) fn default_gateway(self) -> Option<Gateway> {
        Some(Gateway {
            address: self.gateway?,
            interface: self.interface,
        })
    }
}

pub(super) fn add_address_args(ifname: &str, address: IpNet) -> Vec<String> {
    match address {
        IpNet::V4(net) => vec![
            ifname.into(),
            "inet".into(),
            net.to_string(),
            net.addr().to_string(),
            "alias".into(),
        ],
        IpNet::V6(net) => vec![
            ifname.into(),
            "inet6".into(),
            net.to_string(),
            "alias".into(),
        ],
    }
}

pub(super) fn remove_address_args(ifname: &str, address: IpNet) -> Vec<String> {
    let family = if address.addr().is_ipv4() {
        "inet"
    } else {
        "inet6"
    };
    vec![
        ifname.into(),
        family.into(),
        address.addr().to_string(),
        "-alias".into(),
    ]
}

/// `-n add|delete -inet|-inet6 <prefix> -interface <if>`.
pub(super) fn route_args(verb: &str, route: IpNet, ifname: &str) -> Vec<String> {
    vec![
        "-n".into(),
        verb.into(),
        family_flag(Family::of(&route)).into(),
        route.trunc().to_string(),
        "-interface".into(),
        ifname.into(),
    ]
}

/// `-n add|delete -inet|-inet6 -host <host> <gateway>`: the host route that keeps the tunnel's
/// own packets to an endpoint off the tunnel's `/1` routes. The gateway is written as
/// [`Gateway`]'s `Display` gives it (`fe80::1%en0` for a link-local next hop).
pub(super) fn host_route_args(verb: &str, host: IpAddr, gateway: &Gateway) -> Vec<String> {
    let host = host.to_canonical();
    vec![
        "-n".into(),
        verb.into(),
        family_flag(Family::of_ip(&host)).into(),
        "-host".into(),
        host.to_string(),
        gateway.to_string(),
    ]
}

/// `-n get -inet|-inet6 <what>`.
pub(super) fn route_get_args(what: &str, family: Family) -> Vec<String> {
    vec![
        "-n".into(),
        "get".into(),
        family_flag(family).into(),
        what.into(),
    ]
}

pub(super) fn family_flag(family: Family) -> &'static str {
    match family {
        Family::Ipv4 => "-inet",
        Family::Ipv6 => "-inet6",
    }
}

/// Parses `route -n get` output:
/// ```text
///    route to: 198.18.0.2
/// destination: default
///     gateway: 198.18.0.1
///   interface: en0
///  recvpipe  sendpipe  ssthresh  rtt,msec    rttvar  hopcount      mtu     expire
///        0         0         0         0         0         0      1500         0
/// ```
pub(super) fn parse_route_get(output: &str) -> RouteGet {
    let mut parsed = RouteGet::default();
    let mut lines = output.lines();
    while let Some(line) = lines.next() {
        let line = line.trim();
        if let Some(value) = line.strip_prefix("gateway:") {
            // A link-local IPv6 next hop comes with its scope, `fe80::1%en0`.
            let address = value.trim().split('%').next().unwrap_or_default();
            parsed.gateway = address.parse().ok();
        } else if let Some(value) = line.strip_prefix("interface:") {
            parsed.interface = Some(value.trim().to_owned());
        } else if let Some(column) = line.split_whitespace().position(|word| word == "mtu") {
            parsed.mtu = lines
                .next()
                .and_then(|values| values.split_whitespace().nth(column))
                .and_then(|value| value.parse().ok())
                .filter(|&mtu| mtu > 0);
        }
    }
    parsed
}

/// What a failed command's output means, as an `io::ErrorKind`.
pub(super) fn classify(output: &str) -> io::ErrorKind {
    if output.contains("File exists") {
        io::ErrorKind::AlreadyExists
    } else if output.contains("not in table")
        || output.contains("Can't assign requested address")
        || output.contains("does not exist")
    {
        io::ErrorKind::NotFound
    } else if output.contains("Operation not permitted") || output.contains("Permission denied") {
        io::ErrorKind::PermissionDenied
    } else {
        io::ErrorKind::Other
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(s: &str) -> IpNet {
        s.parse().unwrap()
    }

    #[test]
    fn commands_are_wg_quicks() {
        assert_eq!(
            add_address_args("utun5", net("198.18.1.1/24")).join(" "),
            "utun5 inet 198.18.1.1/24 198.18.1.1 alias"
        );
        assert_eq!(
            add_address_args("utun5", net("fd00:1::1/64")).join(" "),
            "utun5 inet6 fd00:1::1/64 alias"
        );
        assert_eq!(
            remove_address_args("utun5", net("198.18.1.1/24")).join(" "),
            "utun5 inet 198.18.1.1 -alias"
        );
        assert_eq!(
            route_args("add", net("198.18.4.7/24"), "utun5").join(" "),
            "-n add -inet 198.18.4.0/24 -interface utun5"
        );
        assert_eq!(
            route_args("delete", net("8000::/1"), "utun5").join(" "),
            "-n delete -inet6 8000::/1 -interface utun5"
        );
        let gateway = Gateway {
            address: "198.18.0.1".parse().unwrap(),
            interface: Some("en0".into()),
        };
        assert_eq!(
            host_route_args("add", "198.18.0.2".parse().unwrap(), &gateway).join(" "),
            "-n add -inet -host 198.18.0.2 198.18.0.1"
        );
        let link_local = Gateway {
            address: "fe80::1".parse().unwrap(),
            interface: Some("en0".into()),
        };
        assert_eq!(
            host_route_args("delete", "fd00:9::2".parse().unwrap(), &link_local).join(" "),
            "-n delete -inet6 -host fd00:9::2 fe80::1%en0"
        );
        assert_eq!(
            route_get_args("default", Family::Ipv6).join(" "),
            "-n get -inet6 default"
        );
    }

    #[test]
    fn route_get_output_is_parsed() {
        let output = "   route to: 198.18.0.2\n\
                      destination: default\n       mask: default\n    gateway: 198.18.0.1\n  \
                      interface: en0\n      flags: <UP,GATEWAY,DONE,STATIC,PRCLONING>\n \
                      recvpipe  sendpipe  ssthresh  rtt,msec    rttvar  hopcount      mtu     expire\n \
                      \x20     0         0         0         0         0         0      1500         0\n";
        assert_eq!(
            parse_route_get(output),
            RouteGet {
                gateway: Some("198.18.0.1".parse().unwrap()),
                interface: Some("en0".into()),
                mtu: Some(1500),
            }
        );
        assert_eq!(
            parse_route_get(output).default_gateway(),
            Some(Gateway {
                address: "198.18.0.1".parse().unwrap(),
                interface: Some("en0".into()),
            })
        );
        assert_eq!(
            parse_route_get("    gateway: link#4\n"),
            RouteGet::default()
        );
        assert_eq!(
            parse_route_get("    gateway: link#4\n").default_gateway(),
            None
        );
        let v6 =
            "   route to: ::\ndestination: default\n    gateway: fe80::1%en0\n  interface: en0\n";
        assert_eq!(
            parse_route_get(v6).default_gateway(),
            Some(Gateway {
                address: "fe80::1".parse().unwrap(),
                interface: Some("en0".into()),
            })
        );
    }

    #[test]
    fn outputs_that_mean_present_or_gone_are_recognised() {
        assert_eq!(
            classify("route: writing to routing socket: File exists"),
            io::ErrorKind::AlreadyExists
        );
        assert_eq!(
            classify("route: writing to routing socket: not in table"),
            io::ErrorKind::NotFound
        );
        assert_eq!(
            classify("ifconfig: ioctl (SIOCDIFADDR): Can't assign requested address"),
            io::ErrorKind::NotFound
        );
        assert_eq!(
            classify("ifconfig: interface utun5 does not exist"),
            io::ErrorKind::NotFound
        );
        assert_eq!(classify("something else"), io::ErrorKind::Other);
    }
}
