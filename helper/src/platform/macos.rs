//! macOS: the primitive network steps with `ifconfig(8)` and `route(8)` — the same commands, with
//! the same arguments, that wg-quick's `darwin.bash` runs, so a Warren tunnel looks to the system
//! exactly like a wg-quick one.
//!
//! Why commands and not the routing socket and ioctls: the two tools are the stable, documented
//! interface (`SIOCAIFADDR_IN6` and the `rt_msghdr` layouts are partly private headers), their
//! behaviour on utun interfaces is what macOS users and wg-quick already rely on, and their
//! messages name the failure. The cost, a process per step, is paid only when a tunnel goes up or
//! down. Each command runs with an absolute path (`/sbin/...`), no shell and no input; on failure
//! its own output becomes the error, and the output that means "already there" (`File exists`) or
//! "already gone" (`not in table`, `Can't assign requested address`, `does not exist`) is mapped to
//! `io::ErrorKind::AlreadyExists` / `NotFound`, which the removals report as
//! [`Removal::AlreadyGone`].
//!
//! The steps, in wg-quick's words (`<if>` is the `utunN` name of the link's index):
//! - address: `ifconfig <if> inet <addr>/<len> <addr> alias` (IPv4: a point-to-point interface
//!   needs a destination, and wg-quick gives its own address), `ifconfig <if> inet6 <addr>/<len>
//!   alias`; removed with `ifconfig <if> inet|inet6 <addr> -alias`;
//! - MTU: `ifconfig <if> mtu <mtu>`; up: `ifconfig <if> up`;
//! - route: `route -n add -inet|-inet6 <prefix> -interface <if>`; removed with `route -n delete`
//!   and the same arguments;
//! - default gateway: `route -n get -inet|-inet6 default`'s `gateway:` (with its `interface:` as
//!   the scope of a link-local IPv6 next hop); none when it answers `not in table` or names no
//!   address (an interface route);
//! - endpoint host route: `route -n add -inet|-inet6 -host <endpoint> <gateway>` (wg-quick's
//!   `-gateway`, spelled as `route(8)` documents it); removed with `route -n delete` and the same
//!   arguments.
//!
//! macOS has no numbered routing tables like Linux's, no policy rules and no sysctl this layer
//! needs: a route in any table but [`MAIN_TABLE`] is refused (the planner already refuses a
//! numbered `Table`), and the rule and sysctl steps keep the trait's "unsupported" defaults. A full
//! tunnel on macOS is wg-quick's instead, planned by the planner
//! ([`super::FullTunnelMethod::Halves`]): routes for the two halves `0.0.0.0/1` + `128.0.0.0/1`
//! (and `::/1` + `8000::/1`), which win over the default route by being more specific, plus a host
//! route to each endpoint via the default gateway so the tunnel's own packets do not loop. Keeping
//! that host route current when the network changes is the network monitor's job (not yet built).
//! [`NetworkOps::route_mtu`] is `route -n get <host>`'s `mtu` column.

use super::{Family, Gateway, LinkInfo, NetworkOps, Removal, MAIN_TABLE};
use ipnet::IpNet;
use std::ffi::{CStr, CString};
use std::io;
use std::net::IpAddr;
use std::process::Stdio;

const IFCONFIG: &str = "/sbin/ifconfig";
const ROUTE: &str = "/sbin/route";

/// The macOS implementation of the platform's network steps. Stateless: each step is a command.
pub(super) struct Ops;

impl NetworkOps for Ops {
    async fn connect() -> anyhow::Result<Self> {
        Ok(Ops)
    }

    async fn link(&mut self, ifname: &str) -> io::Result<LinkInfo> {
        Ok(LinkInfo {
            index: index_of(ifname)?,
        })
    }

    async fn add_address(&mut self, link: u32, address: IpNet) -> io::Result<()> {
        let ifname = name_of(link)?;
        run(IFCONFIG, &add_address_args(&ifname, address)).await
    }

    async fn remove_address(&mut self, link: u32, address: IpNet) -> io::Result<Removal> {
        let Some(ifname) = live_name_of(link)? else {
            return Ok(Removal::AlreadyGone);
        };
        removal(run(IFCONFIG, &remove_address_args(&ifname, address)).await)
    }

    async fn set_mtu(&mut self, link: u32, mtu: u16) -> io::Result<()> {
        let ifname = name_of(link)?;
        run(IFCONFIG, &[ifname, "mtu".into(), mtu.to_string()]).await
    }

    async fn set_up(&mut self, link: u32) -> io::Result<()> {
        let ifname = name_of(link)?;
        run(IFCONFIG, &[ifname, "up".into()]).await
    }

    async fn add_route(&mut self, link: u32, route: IpNet, table: u32) -> io::Result<()> {
        check_table(table)?;
        let ifname = name_of(link)?;
        run(ROUTE, &route_args("add", route, &ifname)).await
    }

    async fn remove_route(&mut self, link: u32, route: IpNet, table: u32) -> io::Result<Removal> {
        check_table(table)?;
        let Some(ifname) = live_name_of(link)? else {
            return Ok(Removal::AlreadyGone);
        };
        removal(run(ROUTE, &route_args("delete", route, &ifname)).await)
    }

    async fn route_mtu(&mut self, destination: IpAddr) -> io::Result<Option<u32>> {
        let destination = destination.to_canonical();
        let output = capture(
            ROUTE,
            &route_get_args(&destination.to_string(), Family::of_ip(&destination)),
        )
        .await?;
        Ok(parse_route_get(&output).mtu)
    }

    async fn default_gateway(&mut self, family: Family) -> io::Result<Option<Gateway>> {
        match capture(ROUTE, &route_get_args("default", family)).await {
            Ok(output) => Ok(parse_route_get(&output).default_gateway()),
            Err(err) if err.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(err) => Err(err),
        }
    }

    async fn add_host_route(&mut self, host: IpAddr, gateway: &Gateway) -> io::Result<()> {
        run(ROUTE, &host_route_args("add", host, gateway)).await
    }

    async fn remove_host_route(&mut self, host: IpAddr, gateway: &Gateway) -> io::Result<Removal> {
        removal(run(ROUTE, &host_route_args("delete", host, gateway)).await)
    }
}

/// A route as `route -n get` reports it: for the default route, the gateway the tunnel's host
/// routes to its endpoints go through, and the interface it leaves by.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct RouteGet {
    /// `gateway:` when it is an address (an interface route has none), without its `%scope`.
    gateway: Option<IpAddr>,
    /// `interface:`.
    interface: Option<String>,
    /// The `mtu` column of the metrics table, when not 0.
    mtu: Option<u32>,
}

impl RouteGet {
    /// The default route's next hop, with its interface; `None` for a route without one.
    fn default_gateway(self) -> Option<Gateway> {
        Some(Gateway {
            address: self.gateway?,
            interface: self.interface,
        })
    }
}

fn check_table(table: u32) -> io::Result<()> {
    if table == MAIN_TABLE {
        Ok(())
    } else {
        Err(io::Error::new(
            io::ErrorKind::Unsupported,
            format!("macOS has no routing table {table}: only the main table is supported"),
        ))
    }
}

/// The index of interface `ifname`; a missing one is `NotFound` ("no such interface").
fn index_of(ifname: &str) -> io::Result<u32> {
    let name = CString::new(ifname)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "interface name contains NUL"))?;
    // SAFETY: `name` is a valid NUL-terminated string that outlives the call.
    let index = unsafe { libc::if_nametoindex(name.as_ptr()) };
    if index == 0 {
        return Err(no_such_interface());
    }
    Ok(index)
}

/// The name of the interface with index `index`; `None` when there is none any more.
fn live_name_of(index: u32) -> io::Result<Option<String>> {
    let mut buffer = [0 as libc::c_char; libc::IF_NAMESIZE];
    // SAFETY: `buffer` has the IF_NAMESIZE bytes if_indextoname may write, NUL included.
    let name = unsafe { libc::if_indextoname(index, buffer.as_mut_ptr()) };
    if name.is_null() {
        let err = io::Error::last_os_error();
        return match err.raw_os_error() {
            Some(libc::ENXIO) | Some(libc::ENODEV) => Ok(None),
            _ => Err(err),
        };
    }
    // SAFETY: on success if_indextoname wrote a NUL-terminated name into `buffer`.
    let name = unsafe { CStr::from_ptr(buffer.as_ptr()) };
    Ok(Some(name.to_string_lossy().into_owned()))
}

fn name_of(index: u32) -> io::Result<String> {
    live_name_of(index)?.ok_or_else(no_such_interface)
}

fn no_such_interface() -> io::Error {
    io::Error::new(io::ErrorKind::NotFound, "no such interface")
}

/// A removal's outcome: "already gone" (`NotFound`) is not an error.
fn removal(result: io::Result<()>) -> io::Result<Removal> {
    match result {
        Ok(()) => Ok(Removal::Removed),
        Err(err) if err.kind() == io::ErrorKind::NotFound => Ok(Removal::AlreadyGone),
        Err(err) => Err(err),
    }
}

fn add_address_args(ifname: &str, address: IpNet) -> Vec<String> {
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

fn remove_address_args(ifname: &str, address: IpNet) -> Vec<String> {
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
fn route_args(verb: &str, route: IpNet, ifname: &str) -> Vec<String> {
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
fn host_route_args(verb: &str, host: IpAddr, gateway: &Gateway) -> Vec<String> {
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
fn route_get_args(what: &str, family: Family) -> Vec<String> {
    vec![
        "-n".into(),
        "get".into(),
        family_flag(family).into(),
        what.into(),
    ]
}

fn family_flag(family: Family) -> &'static str {
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
fn parse_route_get(output: &str) -> RouteGet {
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
fn classify(output: &str) -> io::ErrorKind {
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

/// Runs `program args...`; on failure the error carries the command and its output.
async fn run(program: &str, args: &[String]) -> io::Result<()> {
    capture(program, args).await.map(drop)
}

/// Runs `program args...` and returns its standard output.
async fn capture(program: &str, args: &[String]) -> io::Result<String> {
    let command_line = format!("{program} {}", args.join(" "));
    tracing::debug!("running {command_line}");
    let output = tokio::process::Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .await
        .map_err(|err| io::Error::new(err.kind(), format!("failed to run {program}: {err}")))?;
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    if output.status.success() {
        return Ok(stdout);
    }
    let stderr = String::from_utf8_lossy(&output.stderr);
    let text = [stderr.trim(), stdout.trim()]
        .into_iter()
        .filter(|part| !part.is_empty())
        .collect::<Vec<_>>()
        .join("; ");
    Err(io::Error::new(
        classify(&text),
        format!("`{command_line}` failed ({}): {text}", output.status),
    ))
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
