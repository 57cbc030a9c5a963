//! Linux: the network monitor's notifications from an rtnetlink socket bound to the multicast
//! groups of links, IPv4/IPv6 addresses and IPv4/IPv6 routes (`ip monitor link address route`).
//! Policy rules are not subscribed to: the only rules a tunnel changes while it runs are none,
//! and a full tunnel's own are added before its monitor starts. Each message becomes one
//! [`Observation`]; deciding what matters is [`super::classify`]'s.
//!
//! Everything here acts in the network namespace of the thread that opens it.

use super::Observation;
use futures_util::stream::BoxStream;
use futures_util::StreamExt;
use rtnetlink::constants::{
    RTMGRP_IPV4_IFADDR, RTMGRP_IPV4_ROUTE, RTMGRP_IPV6_IFADDR, RTMGRP_IPV6_ROUTE, RTMGRP_LINK,
};
use rtnetlink::packet_core::{NetlinkMessage, NetlinkPayload};
use rtnetlink::packet_route::address::{AddressAttribute, AddressMessage};
use rtnetlink::packet_route::link::{LinkAttribute, LinkFlags, LinkMessage};
use rtnetlink::packet_route::route::{RouteAttribute, RouteMessage};
use rtnetlink::packet_route::RouteNetlinkMessage;
use rtnetlink::sys::{AsyncSocket, SocketAddr};
use std::io;

type Messages = BoxStream<'static, (NetlinkMessage<RouteNetlinkMessage>, SocketAddr)>;

/// The subscribed netlink socket; its connection task ends when this is dropped.
pub struct Source {
    messages: Messages,
    connection: tokio::task::JoinHandle<()>,
}

impl Drop for Source {
    fn drop(&mut self) {
        self.connection.abort();
    }
}

impl super::Source for Source {
    async fn open() -> io::Result<Self> {
        let (mut connection, _handle, messages) = rtnetlink::new_connection()?;
        let groups = RTMGRP_LINK
            | RTMGRP_IPV4_IFADDR
            | RTMGRP_IPV6_IFADDR
            | RTMGRP_IPV4_ROUTE
            | RTMGRP_IPV6_ROUTE;
        connection
            .socket_mut()
            .socket_mut()
            .bind(&SocketAddr::new(0, groups))?;
        Ok(Source {
            messages: messages.boxed(),
            connection: tokio::spawn(connection),
        })
    }

    async fn next(&mut self) -> io::Result<Vec<Observation>> {
        loop {
            let Some((message, _)) = self.messages.next().await else {
                return Err(io::Error::new(
                    io::ErrorKind::BrokenPipe,
                    "the netlink socket closed",
                ));
            };
            if let NetlinkPayload::InnerMessage(message) = message.payload {
                if let Some(observation) = observe(message) {
                    return Ok(vec![observation]);
                }
            }
        }
    }
}

/// The tunnel interface's index, if it exists.
pub fn index_of(ifname: &str) -> Option<u32> {
    let name = std::ffi::CString::new(ifname).ok()?;
    // SAFETY: `name` is a valid NUL-terminated string that outlives the call.
    let index = unsafe { libc::if_nametoindex(name.as_ptr()) };
    (index != 0).then_some(index)
}

/// One netlink message as an [`Observation`] (`None` for messages of no interest).
fn observe(message: RouteNetlinkMessage) -> Option<Observation> {
    match message {
        RouteNetlinkMessage::NewLink(link) => Some(link_observation(&link, true)),
        RouteNetlinkMessage::DelLink(link) => Some(link_observation(&link, false)),
        RouteNetlinkMessage::NewAddress(address) => Some(address_observation(&address, true)),
        RouteNetlinkMessage::DelAddress(address) => Some(address_observation(&address, false)),
        RouteNetlinkMessage::NewRoute(route) => Some(route_observation(&route, true)),
        RouteNetlinkMessage::DelRoute(route) => Some(route_observation(&route, false)),
        _ => None,
    }
}

fn link_observation(link: &LinkMessage, exists: bool) -> Observation {
    let flags = link.header.flags;
    let name = link.attributes.iter().find_map(|a| match a {
        LinkAttribute::IfName(name) => Some(name.clone()),
        _ => None,
    });
    Observation::Link {
        index: link.header.index,
        name,
        running: exists && flags.contains(LinkFlags::Up) && flags.contains(LinkFlags::Running),
    }
}

fn address_observation(message: &AddressMessage, added: bool) -> Observation {
    // IFA_LOCAL is the interface's own address where the two differ (point-to-point links).
    let local = message.attributes.iter().find_map(|a| match a {
        AddressAttribute::Local(ip) => Some(*ip),
        _ => None,
    });
    let address = local.or_else(|| {
        message.attributes.iter().find_map(|a| match a {
            AddressAttribute::Address(ip) => Some(*ip),
            _ => None,
        })
    });
    Observation::Address {
        index: message.header.index,
        address,
        added,
    }
}

fn route_observation(route: &RouteMessage, added: bool) -> Observation {
    // Tables above 255 are only in the RTA_TABLE attribute; the header then says RT_TABLE_UNSPEC.
    let table = route
        .attributes
        .iter()
        .find_map(|a| match a {
            RouteAttribute::Table(table) => Some(*table),
            _ => None,
        })
        .unwrap_or(u32::from(route.header.table));
    let index = route.attributes.iter().find_map(|a| match a {
        RouteAttribute::Oif(index) => Some(*index),
        _ => None,
    });
    Observation::Route {
        table,
        prefix_len: route.header.destination_prefix_length,
        index,
        added,
    }
}

#[cfg(test)]
mod tests {
    //! The real socket, in a private network namespace of the test thread's own (root only; says
    //! so loudly, and fails under `CI=true`, without it).

    use super::super::{ChangeKind, ChangeSet, Monitor, Scope};
    use std::process::Command;
    use std::time::Duration;

    fn ip(args: &str) {
        let status = Command::new("ip")
            .args(args.split_whitespace())
            .status()
            .expect("failed to run ip");
        assert!(status.success(), "ip {args} failed");
    }

    /// What is reported within 1.5 s, if anything.
    async fn reported(monitor: &mut Monitor) -> Option<ChangeSet> {
        tokio::time::timeout(Duration::from_millis(1500), monitor.changed())
            .await
            .ok()
            .map(|r| r.expect("the monitor failed"))
    }

    #[test]
    fn a_moved_default_route_is_reported_once_and_the_tunnels_own_changes_are_not() {
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } != 0 {
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "CI=true but not root: this netlink test needs root (it runs in a private \
                 network namespace)"
            );
            eprintln!("SKIPPED: needs root (netlink monitor test in a private network namespace)");
            return;
        }
        // This thread only: a network namespace of its own, gone when the thread ends.
        std::thread::spawn(|| {
            // SAFETY: unshare(CLONE_NEWNET) affects only this thread, which owns nothing else.
            assert_eq!(unsafe { libc::unshare(libc::CLONE_NEWNET) }, 0);
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async {
                ip("link set lo up");
                // Veth pairs (no dummy module on every kernel); the tunnel's far end stays down.
                for link in ["wmon0", "wmon1", "wmtun"] {
                    ip(&format!("link add {link} type veth peer name {link}p"));
                    ip(&format!("link set {link} up"));
                }
                ip("link set wmon0p up");
                ip("link set wmon1p up");
                ip("address add 198.18.60.2/24 dev wmon0");
                ip("route add default via 198.18.60.1");
                let scope = Scope {
                    ifname: "wmtun".into(),
                    index: None,
                    own_tables: vec![51999],
                };
                let mut monitor = Monitor::open(scope)
                    .await
                    .expect("failed to open the monitor");

                // The tunnel's own: its address, its private table's default route.
                ip("address add 198.18.61.2/24 dev wmtun");
                ip("route add default dev wmtun table 51999");
                ip("route add 198.18.62.0/24 dev wmon0");
                let burst = reported(&mut monitor).await;
                assert_eq!(
                    burst, None,
                    "the tunnel's own changes or a LAN route were taken for a network change"
                );

                // The default route moves to another link with another address: one burst.
                ip("address add 198.18.63.2/24 dev wmon1");
                ip("route replace default via 198.18.63.1");
                ip("address del 198.18.60.2/24 dev wmon0");
                let burst = tokio::time::timeout(Duration::from_secs(3), monitor.changed())
                    .await
                    .expect("no change reported within 3 s")
                    .expect("the monitor failed");
                assert!(
                    burst.kinds.contains(&ChangeKind::DefaultRoute)
                        && burst.kinds.contains(&ChangeKind::Address),
                    "{burst:?}"
                );
                assert_eq!(reported(&mut monitor).await, None, "reported twice");
            });
        })
        .join()
        .unwrap();
    }
}
