//! Windows: the primitive network steps through the IP Helper API (wrapped in
//! `crate::sys::windows::net`) — the calls wireguard-windows makes, without a `netsh` process per
//! step.
//!
//! - link: the Wintun adapter's alias (its name) → LUID → index;
//! - address: `CreateUnicastIpAddressEntry` / `DeleteUnicastIpAddressEntry` (DAD skipped:
//!   the address is preferred at once, as on a point-to-point link nobody else can hold it);
//! - MTU: `SetIpInterfaceEntry` with `NlMtu`, for IPv4 and for IPv6 (skipped when IPv6 is not
//!   enabled on the adapter);
//! - up: nothing to do — a Wintun adapter is up while its session is open;
//! - a full tunnel's interface metric: 0, automatic metric off, per family it carries a default
//!   route for (`SetIpInterfaceEntry`), as wireguard-windows' `configureInterface` does — so the
//!   tunnel's `0.0.0.0/0` wins over the physical one whatever its route metric;
//! - route: `CreateIpForwardEntry2` / `DeleteIpForwardEntry2`, on-link (next hop unspecified),
//!   protocol "network management" (static), metric 0 on top of the interface metric;
//! - route MTU: `GetBestRoute2`, then the MTU of the interface it leaves by.
//!
//! Windows has one routing table per compartment, not Linux's numbered tables, and no policy
//! rules or fwmarks: a route in any table but [`MAIN_TABLE`] is refused (the planner already
//! refuses a numbered `Table`), and the rule, sysctl and host-route steps keep the trait's
//! "unsupported" defaults. A full tunnel on Windows is wireguard-windows' (`tunnel/`) instead,
//! planned by the planner ([`super::FullTunnelMethod::BoundSockets`]): every AllowedIPs prefix,
//! `0.0.0.0/0` and `::/0` themselves included, is a route through the tunnel, and the tunnel's own
//! UDP sockets are pinned with `IP_UNICAST_IF` to the interface of the best default route that is
//! not the tunnel's (`crate::dataplane::udp::egress`, called by the session for every tunnel), so
//! their datagrams cannot loop into the tunnel.
//!
//! Where Warren differs from wireguard-windows' `configureInterface`: it does not also turn off
//! router discovery, DAD transmits and the managed/other-stateful flags on the adapter (nothing
//! on a Wintun adapter answers them), nor retry a step that fails with `ERROR_NOT_FOUND` for
//! 15 s after boot (the service starts tunnels after the network stack is up).
//!
//! Removals treat "not found" (`ERROR_NOT_FOUND`, `ERROR_FILE_NOT_FOUND`) and a vanished interface
//! as [`Removal::AlreadyGone`]. A missing interface is reported as `io::ErrorKind::NotFound`.

use super::{LinkInfo, NetworkOps, Removal, MAIN_TABLE};
use crate::sys::windows::net::{self as winnet, Family};
use ipnet::IpNet;
use std::io;
use std::net::IpAddr;

/// The Windows implementation of the platform's network steps. Stateless: each step is one call.
pub(super) struct Ops;

impl NetworkOps for Ops {
    async fn connect() -> anyhow::Result<Self> {
        Ok(Ops)
    }

    async fn link(&mut self, ifname: &str) -> io::Result<LinkInfo> {
        match winnet::index_from_alias(ifname) {
            Ok(index) => Ok(LinkInfo { index }),
            Err(err) if winnet::is_not_found(&err) => Err(io::Error::new(
                io::ErrorKind::NotFound,
                format!("no network adapter is named {ifname}"),
            )),
            Err(err) => Err(err),
        }
    }

    async fn add_address(&mut self, link: u32, address: IpNet) -> io::Result<()> {
        winnet::add_address(link, address)
    }

    async fn remove_address(&mut self, link: u32, address: IpNet) -> io::Result<Removal> {
        removal(link, winnet::delete_address(link, address))
    }

    async fn set_mtu(&mut self, link: u32, mtu: u16) -> io::Result<()> {
        winnet::set_mtu(link, Family::V4, u32::from(mtu))?;
        match winnet::set_mtu(link, Family::V6, u32::from(mtu)) {
            Err(err) if winnet::is_not_found(&err) => {
                tracing::debug!("IPv6 is not enabled on interface {link}; its MTU is left alone");
                Ok(())
            }
            other => other,
        }
    }

    async fn set_up(&mut self, _link: u32) -> io::Result<()> {
        // A Wintun adapter is up while a session is open on it.
        Ok(())
    }

    async fn lower_metric(&mut self, link: u32, family: super::Family) -> io::Result<()> {
        winnet::lower_metric(
            link,
            match family {
                super::Family::Ipv4 => Family::V4,
                super::Family::Ipv6 => Family::V6,
            },
        )
    }

    async fn add_route(&mut self, link: u32, route: IpNet, table: u32) -> io::Result<()> {
        check_table(table)?;
        winnet::add_route(link, route)
    }

    async fn remove_route(&mut self, link: u32, route: IpNet, table: u32) -> io::Result<Removal> {
        check_table(table)?;
        removal(link, winnet::delete_route(link, route))
    }

    async fn route_mtu(&mut self, destination: IpAddr) -> io::Result<Option<u32>> {
        winnet::route_mtu(destination)
    }
}

fn check_table(table: u32) -> io::Result<()> {
    if table == MAIN_TABLE {
        Ok(())
    } else {
        Err(io::Error::new(
            io::ErrorKind::Unsupported,
            format!("Windows has no routing table {table}: only the main table is supported"),
        ))
    }
}

/// A removal's outcome: "not found", or an interface that no longer exists, is "already gone".
fn removal(link: u32, result: io::Result<()>) -> io::Result<Removal> {
    match result {
        Ok(()) => Ok(Removal::Removed),
        Err(err) if winnet::is_not_found(&err) => Ok(Removal::AlreadyGone),
        Err(err) => match winnet::interface_exists(link) {
            Ok(false) => Ok(Removal::AlreadyGone),
            _ => Err(err),
        },
    }
}
