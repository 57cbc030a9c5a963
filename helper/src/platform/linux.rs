//! Linux: the primitive network steps over rtnetlink — find a link by name, add and remove
//! addresses, routes (IPv4 and IPv6, in any table) and policy rules, set the MTU and set the link
//! up, look up the route to a host (for its path MTU) and list the tables in use — plus reading and
//! writing sysctls under `/proc/sys`.
//!
//! It owns one netlink socket per [`Ops`]; its connection task runs on the current tokio runtime and
//! ends when the `Ops` is dropped. Routes are added like `ip route add <prefix> dev <ifname>
//! [table <id>]` does: protocol `static`, scope `link` for IPv4 (no gateway) and `universe` for
//! IPv6, and removed with the same message, so only the route Warren added matches. Rules are
//! built like `ip rule add` builds them (table ids above 255 in the `FRA_TABLE` attribute, action
//! "to table", no priority, so the kernel puts each new rule just before the last one added) and
//! deleted with the same message: the kernel deletes the first rule matching its table, mark and
//! `suppress_prefixlength`, never the main table's own rule (which has no
//! `suppress_prefixlength`).
//!
//! Everything here acts in the network namespace of the calling thread: netlink sockets and
//! `/proc/sys/net` both belong to the namespace that opens them.
//!
//! Kernel errors come back as `io::Error`s carrying the errno (`File exists`); on removal, "no such
//! device/address/route/rule" means something (usually the interface closing) removed it already.

use super::firewall::{nft_program, run_nft};
use super::mark_guard::{self, MarkGuard};
use super::{Family, LinkInfo, NetworkOps, PolicyRule, Removal, MAIN_TABLE};
use anyhow::Context as _;
use futures_util::TryStreamExt as _;
use ipnet::IpNet;
use rtnetlink::packet_route::address::AddressMessage;
use rtnetlink::packet_route::link::LinkAttribute;
use rtnetlink::packet_route::route::{
    RouteAttribute, RouteHeader, RouteMessage, RouteMetric, RouteScope,
};
use rtnetlink::packet_route::rule::{RuleAction, RuleAttribute, RuleFlags, RuleMessage};
use rtnetlink::packet_route::AddressFamily;
use rtnetlink::{AddressMessageBuilder, Handle, IpVersion, LinkUnspec, RouteMessageBuilder};
use std::collections::BTreeSet;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::PathBuf;

/// The Linux implementation of the platform's network steps.
pub(super) struct Ops {
    handle: Handle,
}

impl NetworkOps for Ops {
    async fn connect() -> anyhow::Result<Self> {
        let (connection, handle, _messages) =
            rtnetlink::new_connection().context("failed to open a netlink socket")?;
        tokio::spawn(connection);
        Ok(Self { handle })
    }

    async fn link(&mut self, ifname: &str) -> io::Result<LinkInfo> {
        let mut links = self
            .handle
            .link()
            .get()
            .match_name(ifname.to_owned())
            .execute();
        match links.try_next().await.map_err(to_io)? {
            Some(link) => Ok(LinkInfo {
                index: link.header.index,
            }),
            None => Err(io::Error::from_raw_os_error(libc::ENODEV)),
        }
    }

    async fn add_address(&mut self, link: u32, address: IpNet) -> io::Result<()> {
        self.handle
            .address()
            .add(link, address.addr(), address.prefix_len())
            .execute()
            .await
            .map_err(to_io)
    }

    async fn remove_address(&mut self, link: u32, address: IpNet) -> io::Result<Removal> {
        let result = self
            .handle
            .address()
            .del(address_message(link, address))
            .execute()
            .await;
        removal(result)
    }

    async fn set_mtu(&mut self, link: u32, mtu: u16) -> io::Result<()> {
        let message = LinkUnspec::new_with_index(link).mtu(u32::from(mtu)).build();
        self.handle
            .link()
            .set(message)
            .execute()
            .await
            .map_err(to_io)
    }

    async fn set_up(&mut self, link: u32) -> io::Result<()> {
        let message = LinkUnspec::new_with_index(link).up().build();
        self.handle
            .link()
            .set(message)
            .execute()
            .await
            .map_err(to_io)
    }

    async fn add_route(&mut self, link: u32, route: IpNet, table: u32) -> io::Result<()> {
        self.handle
            .route()
            .add(route_message(link, route, table))
            .execute()
            .await
            .map_err(to_io)
    }

    async fn remove_route(&mut self, link: u32, route: IpNet, table: u32) -> io::Result<Removal> {
        let result = self
            .handle
            .route()
            .del(route_message(link, route, table))
            .execute()
            .await;
        removal(result)
    }

    async fn add_rule(&mut self, rule: &PolicyRule) -> io::Result<()> {
        let mut request = self.handle.rule().add();
        *request.message_mut() = rule_message(rule);
        request.execute().await.map_err(to_io)
    }

    async fn remove_rule(&mut self, rule: &PolicyRule) -> io::Result<Removal> {
        let result = self.handle.rule().del(rule_message(rule)).execute().await;
        removal(result)
    }

    async fn add_mark_guard(&mut self, guard: &MarkGuard) -> io::Result<()> {
        run_nft(&mark_guard::script(guard))
            .await
            .map_err(io::Error::other)
    }

    async fn remove_mark_guard(&mut self, table: &str) -> io::Result<Removal> {
        run_nft(&mark_guard::delete_script(table))
            .await
            .map(|()| Removal::Removed)
            .map_err(io::Error::other)
    }

    async fn read_sysctl(&mut self, name: &str) -> io::Result<String> {
        let path = sysctl_path(name)?;
        Ok(std::fs::read_to_string(path)?.trim().to_owned())
    }

    async fn write_sysctl(&mut self, name: &str, value: &str) -> io::Result<()> {
        let path = sysctl_path(name)?;
        std::fs::write(path, value)
    }

    async fn route_mtu(&mut self, destination: IpAddr) -> io::Result<Option<u32>> {
        // `ip route get <destination>`: a request with a destination is answered with one route.
        let query = match destination.to_canonical() {
            IpAddr::V4(ip) => RouteMessageBuilder::<Ipv4Addr>::new()
                .destination_prefix(ip, 32)
                .build(),
            IpAddr::V6(ip) => RouteMessageBuilder::<Ipv6Addr>::new()
                .destination_prefix(ip, 128)
                .build(),
        };
        let mut replies = self.handle.route().get(query).execute();
        let route = match replies.try_next().await.map_err(to_io) {
            Ok(Some(route)) => route,
            Ok(None) => return Ok(None),
            Err(err)
                if matches!(
                    err.raw_os_error(),
                    Some(libc::ENETUNREACH | libc::EHOSTUNREACH | libc::ENETDOWN)
                ) =>
            {
                return Ok(None)
            }
            Err(err) => return Err(err),
        };
        let route_mtu = route.attributes.iter().find_map(|a| match a {
            RouteAttribute::Metrics(metrics) => metrics.iter().find_map(|m| match m {
                RouteMetric::Mtu(mtu) if *mtu > 0 => Some(*mtu),
                _ => None,
            }),
            _ => None,
        });
        if route_mtu.is_some() {
            return Ok(route_mtu);
        }
        let Some(oif) = route.attributes.iter().find_map(|a| match a {
            RouteAttribute::Oif(index) => Some(*index),
            _ => None,
        }) else {
            return Ok(None);
        };
        let mut links = self.handle.link().get().match_index(oif).execute();
        let Some(link) = links.try_next().await.map_err(to_io)? else {
            return Ok(None);
        };
        Ok(link.attributes.iter().find_map(|a| match a {
            LinkAttribute::Mtu(mtu) => Some(*mtu),
            _ => None,
        }))
    }

    async fn tables_in_use(&mut self) -> io::Result<BTreeSet<u32>> {
        let mut tables = BTreeSet::new();
        for query in [
            RouteMessageBuilder::<Ipv4Addr>::new().build(),
            RouteMessageBuilder::<Ipv6Addr>::new().build(),
        ] {
            let mut routes = self.handle.route().get(query).execute();
            while let Some(route) = routes.try_next().await.map_err(to_io)? {
                tables.insert(route_table(&route));
            }
        }
        for version in [IpVersion::V4, IpVersion::V6] {
            let mut rules = self.handle.rule().get(version).execute();
            while let Some(rule) = rules.try_next().await.map_err(to_io)? {
                tables.insert(rule_table(&rule));
            }
        }
        Ok(tables)
    }
}

/// The message naming `address` on `link`, as `ip address add/del` sends it.
fn address_message(link: u32, address: IpNet) -> AddressMessage {
    match address.addr() {
        IpAddr::V4(ip) => AddressMessageBuilder::<Ipv4Addr>::new()
            .index(link)
            .address(ip, address.prefix_len())
            .build(),
        IpAddr::V6(ip) => AddressMessageBuilder::<Ipv6Addr>::new()
            .index(link)
            .address(ip, address.prefix_len())
            .build(),
    }
}

/// The message for `ip route add/del <route> dev <link> table <table>`.
fn route_message(link: u32, route: IpNet, table: u32) -> RouteMessage {
    match route {
        IpNet::V4(net) => RouteMessageBuilder::<Ipv4Addr>::new()
            .destination_prefix(net.network(), net.prefix_len())
            .output_interface(link)
            .table_id(table)
            // What `ip route add` picks for a route without a gateway.
            .scope(RouteScope::Link)
            .build(),
        IpNet::V6(net) => RouteMessageBuilder::<Ipv6Addr>::new()
            .destination_prefix(net.network(), net.prefix_len())
            .output_interface(link)
            .table_id(table)
            .build(),
    }
}

/// A route's table: the `RTA_TABLE` attribute, else the header's 8-bit id.
fn route_table(route: &RouteMessage) -> u32 {
    route
        .attributes
        .iter()
        .find_map(|a| match a {
            RouteAttribute::Table(table) => Some(*table),
            _ => None,
        })
        .unwrap_or(u32::from(route.header.table))
}

/// A rule's table: the `FRA_TABLE` attribute, else the header's 8-bit id.
fn rule_table(rule: &RuleMessage) -> u32 {
    rule.attributes
        .iter()
        .find_map(|a| match a {
            RuleAttribute::Table(table) => Some(*table),
            _ => None,
        })
        .unwrap_or(u32::from(rule.header.table))
}

/// The message for `ip rule add/del <rule>`, as iproute2 builds it.
fn rule_message(rule: &PolicyRule) -> RuleMessage {
    let mut message = RuleMessage::default();
    message.header.family = match rule.family() {
        Family::Ipv4 => AddressFamily::Inet,
        Family::Ipv6 => AddressFamily::Inet6,
    };
    message.header.action = RuleAction::ToTable;
    let table = match *rule {
        PolicyRule::NotFwmark { fwmark, table, .. } => {
            message.header.flags = RuleFlags::Invert;
            message.attributes.push(RuleAttribute::FwMark(fwmark));
            table
        }
        PolicyRule::SuppressMainDefault { .. } => {
            message.attributes.push(RuleAttribute::SuppressPrefixLen(0));
            MAIN_TABLE
        }
    };
    match u8::try_from(table) {
        Ok(small) => message.header.table = small,
        Err(_) => {
            message.header.table = RouteHeader::RT_TABLE_UNSPEC;
            message.attributes.push(RuleAttribute::Table(table));
        }
    }
    message
}

/// `/proc/sys/<name with dots as slashes>`, for the `net.` settings Warren changes only.
fn sysctl_path(name: &str) -> io::Result<PathBuf> {
    let valid = name.starts_with("net.")
        && name.split('.').all(|part| {
            !part.is_empty() && part.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
        });
    if !valid {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("'{name}' is not a net.* sysctl name"),
        ));
    }
    Ok(PathBuf::from("/proc/sys").join(name.replace('.', "/")))
}

/// Maps a removal's result: "not there" errors mean it is already gone.
fn removal(result: Result<(), rtnetlink::Error>) -> io::Result<Removal> {
    match result.map_err(to_io) {
        Ok(()) => Ok(Removal::Removed),
        Err(err) => match err.raw_os_error() {
            // ENODEV: the link is gone; EADDRNOTAVAIL: no such address; ESRCH: no such route;
            // ENOENT: no such rule.
            Some(libc::ENODEV | libc::EADDRNOTAVAIL | libc::ESRCH | libc::ENOENT) => {
                Ok(Removal::AlreadyGone)
            }
            _ => Err(err),
        },
    }
}

fn to_io(err: rtnetlink::Error) -> io::Error {
    match err {
        rtnetlink::Error::NetlinkError(message) => message.to_io(),
        other => io::Error::other(other.to_string()),
    }
}

/// Whether `nft` can be found (in `PATH` or where Debian installs it).
pub(super) fn nft_found() -> bool {
    nft_program().is_file()
}

/// The first interface of this network namespace whose reverse-path filtering is strict, as
/// `net.ipv4.conf.<name>.rp_filter = 1`; `None` when it is off or loose everywhere. The kernel
/// filters by the larger of `all`'s value and the interface's own (2, loose, wins over 1).
pub(super) fn strict_reverse_path_filter() -> Option<String> {
    let read = |name: &str| -> Option<u8> {
        let path = format!("/proc/sys/net/ipv4/conf/{name}/rp_filter");
        std::fs::read_to_string(path).ok()?.trim().parse().ok()
    };
    let all = read("all").unwrap_or(0);
    let mut names: Vec<String> = std::fs::read_dir("/proc/sys/net/ipv4/conf")
        .ok()?
        .filter_map(|entry| entry.ok()?.file_name().into_string().ok())
        .filter(|name| name != "all" && name != "default")
        .collect();
    names.sort();
    names.into_iter().find_map(|name| {
        let own = read(&name)?;
        let setting = if all >= own { "all" } else { name.as_str() };
        (all.max(own) == 1).then(|| format!("net.ipv4.conf.{setting}.rp_filter = 1"))
    })
}

#[cfg(test)]
mod tests {
    //! Real rtnetlink, each test in a private network namespace of its own: the test thread calls
    //! `unshare(CLONE_NEWNET)`, which moves only that thread into a fresh, empty namespace (it
    //! disappears with the thread), and runs a current-thread tokio runtime there. Nothing outside
    //! that namespace is touched. Needs root; without it the tests print "SKIPPED: needs root", or
    //! fail when `CI=true`.

    use super::super::{apply, undo, FullTunnelMethod, NetworkChange, NetworkPlan, Route};
    use super::*;
    use rtnetlink::packet_route::address::AddressAttribute;
    use rtnetlink::packet_route::link::LinkFlags;
    use rtnetlink::packet_route::route::RouteAddress;
    use std::future::Future;
    use std::io::Write as _;

    /// Runs `test` on a new thread inside a fresh network namespace, or skips when not root.
    fn in_private_netns<F, Fut>(test: F)
    where
        F: FnOnce() -> Fut + Send + 'static,
        Fut: Future<Output = ()>,
    {
        if crate::sys::euid() != 0 {
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "CI=true but not root: this netlink test needs root (it runs in a private network \
                 namespace) and must not be skipped in CI"
            );
            // Straight to stderr, past the test harness's output capture, so the skip is seen.
            let _ = writeln!(
                io::stderr(),
                "SKIPPED: needs root (netlink test in a private network namespace)"
            );
            return;
        }
        let thread = std::thread::spawn(move || {
            // SAFETY: unshare(2) with CLONE_NEWNET only changes this thread's network namespace;
            // it takes no pointers.
            let rc = unsafe { libc::unshare(libc::CLONE_NEWNET) };
            assert_eq!(
                rc,
                0,
                "unshare(CLONE_NEWNET) failed: {}",
                io::Error::last_os_error()
            );
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async move {
                assert_fresh_namespace().await;
                test().await;
            });
        });
        if let Err(panic) = thread.join() {
            std::panic::resume_unwind(panic);
        }
    }

    async fn handle() -> Handle {
        Ops::connect().await.unwrap().handle
    }

    /// A safety net: refuse to go on unless this thread really sees a new namespace (only `lo`).
    async fn assert_fresh_namespace() {
        let links: Vec<_> = handle()
            .await
            .link()
            .get()
            .execute()
            .try_collect()
            .await
            .unwrap();
        let names: Vec<String> = links.iter().filter_map(link_name).collect();
        assert_eq!(
            names,
            ["lo"],
            "not in a fresh network namespace; refusing to touch it"
        );
    }

    fn link_name(link: &rtnetlink::packet_route::link::LinkMessage) -> Option<String> {
        link.attributes.iter().find_map(|a| match a {
            LinkAttribute::IfName(name) => Some(name.clone()),
            _ => None,
        })
    }

    /// Creates a TUN device named `name` (as the tunnel does) and returns it with its index. The
    /// interface exists while the returned device is alive.
    async fn add_tun(name: &str) -> (tun_rs::SyncDevice, u32) {
        let device = tun_rs::DeviceBuilder::new()
            .name(name)
            .enable(false)
            .build_sync()
            .unwrap();
        let index = Ops::connect()
            .await
            .unwrap()
            .link(name)
            .await
            .unwrap()
            .index;
        (device, index)
    }

    /// `(address/prefix)` of every address on `link`.
    async fn dump_addresses(link: u32) -> Vec<IpNet> {
        let handle = handle().await;
        let messages: Vec<_> = handle
            .address()
            .get()
            .set_link_index_filter(link)
            .execute()
            .try_collect()
            .await
            .unwrap();
        messages
            .iter()
            .filter_map(|m| {
                let ip = m.attributes.iter().find_map(|a| match a {
                    AddressAttribute::Address(ip) => Some(*ip),
                    _ => None,
                })?;
                IpNet::new(ip, m.header.prefix_len).ok()
            })
            .filter(|net| !matches!(net.addr(), IpAddr::V6(v6) if v6.segments()[0] == 0xfe80))
            .collect()
    }

    /// `(prefix, table)` of every route through `link`, both families, all tables.
    async fn dump_routes(link: u32) -> Vec<(IpNet, u32)> {
        let handle = handle().await;
        let mut found = Vec::new();
        for query in [
            RouteMessageBuilder::<Ipv4Addr>::new().build(),
            RouteMessageBuilder::<Ipv6Addr>::new().build(),
        ] {
            let messages: Vec<_> = handle
                .route()
                .get(query)
                .execute()
                .try_collect()
                .await
                .unwrap();
            for m in messages {
                if !m.attributes.contains(&RouteAttribute::Oif(link)) {
                    continue;
                }
                let table = m
                    .attributes
                    .iter()
                    .find_map(|a| match a {
                        RouteAttribute::Table(t) => Some(*t),
                        _ => None,
                    })
                    .unwrap_or(u32::from(m.header.table));
                let destination = m.attributes.iter().find_map(|a| match a {
                    RouteAttribute::Destination(RouteAddress::Inet(ip)) => Some(IpAddr::V4(*ip)),
                    RouteAttribute::Destination(RouteAddress::Inet6(ip)) => Some(IpAddr::V6(*ip)),
                    _ => None,
                });
                // A default route has no destination attribute.
                let unspecified = match m.header.address_family {
                    AddressFamily::Inet6 => IpAddr::V6(Ipv6Addr::UNSPECIFIED),
                    _ => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
                };
                let ip = destination.unwrap_or(unspecified);
                found.push((
                    IpNet::new(ip, m.header.destination_prefix_length).unwrap(),
                    table,
                ));
            }
        }
        found
    }

    async fn link_state(link: u32) -> (u32, bool) {
        let handle = handle().await;
        let mut links = handle.link().get().match_index(link).execute();
        let message = links.try_next().await.unwrap().unwrap();
        let mtu = message
            .attributes
            .iter()
            .find_map(|a| match a {
                LinkAttribute::Mtu(mtu) => Some(*mtu),
                _ => None,
            })
            .unwrap();
        (mtu, message.header.flags.contains(LinkFlags::Up))
    }

    fn net(s: &str) -> IpNet {
        s.parse().unwrap()
    }

    fn plan(table: u32, routes: &[&str]) -> NetworkPlan {
        NetworkPlan {
            ifname: "wtest0".into(),
            addresses: vec![net("198.18.5.1/24"), net("fd00:5::1/64")],
            mtu: 1380,
            routes: routes
                .iter()
                .map(|r| Route {
                    prefix: net(r),
                    table,
                })
                .collect(),
            sysctls: vec![],
            rules: vec![],
            fwmark: None,
            method: FullTunnelMethod::PolicyRouting,
            full_tunnel_families: vec![],
            endpoint_routes: vec![],
            mark_guard: None,
            warnings: vec![],
        }
    }

    /// Undoes `journal` newest first, as the journal does, and fails on any error.
    async fn undo_all(journal: &[NetworkChange]) {
        for change in journal.iter().rev() {
            undo(change).await.unwrap();
        }
    }

    /// Every rule, as `(family, flags, table, attributes)` text, both families.
    async fn dump_rules() -> Vec<String> {
        let handle = handle().await;
        let mut found = Vec::new();
        for version in [IpVersion::V4, IpVersion::V6] {
            let rules: Vec<_> = handle
                .rule()
                .get(version)
                .execute()
                .try_collect()
                .await
                .unwrap();
            for rule in rules {
                let mut attributes: Vec<String> = rule
                    .attributes
                    .iter()
                    .filter(|a| !matches!(a, RuleAttribute::Table(_)))
                    .map(|a| format!("{a:?}"))
                    .collect();
                attributes.sort();
                found.push(format!(
                    "{:?} {:?} table {} {}",
                    rule.header.family,
                    rule.header.flags,
                    rule_table(&rule),
                    attributes.join(" ")
                ));
            }
        }
        found
    }

    fn sysctl(name: &str) -> String {
        std::fs::read_to_string(sysctl_path(name).unwrap())
            .unwrap()
            .trim()
            .to_owned()
    }

    #[test]
    fn apply_then_undo_in_the_main_table() {
        in_private_netns(|| async {
            let (_tun, link) = add_tun("wtest0").await;
            let mut journal = Vec::new();
            apply(
                &plan(
                    MAIN_TABLE,
                    &["198.18.6.0/24", "fd00:6::/64", "198.18.7.9/32"],
                ),
                &mut journal,
            )
            .await
            .unwrap();

            assert_eq!(
                dump_addresses(link).await,
                [net("198.18.5.1/24"), net("fd00:5::1/64")]
            );
            assert_eq!(link_state(link).await, (1380, true));
            let routes = dump_routes(link).await;
            for expected in ["198.18.6.0/24", "fd00:6::/64", "198.18.7.9/32"] {
                assert!(
                    routes.contains(&(net(expected), MAIN_TABLE)),
                    "{expected} missing: {routes:?}"
                );
            }

            undo_all(&journal).await;
            assert_eq!(dump_addresses(link).await, []);
            let routes = dump_routes(link).await;
            for gone in [
                "198.18.6.0/24",
                "fd00:6::/64",
                "198.18.7.9/32",
                "198.18.5.0/24",
            ] {
                assert!(
                    !routes.iter().any(|(r, _)| *r == net(gone)),
                    "{gone} left: {routes:?}"
                );
            }
            // The link itself stays.
            assert_eq!(link_state(link).await, (1380, true));
            // Undoing again changes nothing and fails on nothing.
            undo_all(&journal).await;
        });
    }

    #[test]
    fn apply_then_undo_in_another_table() {
        in_private_netns(|| async {
            let (_tun, link) = add_tun("wtest0").await;
            let mut journal = Vec::new();
            apply(&plan(1234, &["198.18.6.0/24", "fd00:6::/64"]), &mut journal)
                .await
                .unwrap();
            let routes_now = dump_routes(link).await;
            assert!(
                routes_now.contains(&(net("198.18.6.0/24"), 1234)),
                "{routes_now:?}"
            );
            assert!(
                routes_now.contains(&(net("fd00:6::/64"), 1234)),
                "{routes_now:?}"
            );
            assert!(
                !routes_now.contains(&(net("198.18.6.0/24"), MAIN_TABLE)),
                "{routes_now:?}"
            );
            undo_all(&journal).await;
            let routes_after = dump_routes(link).await;
            assert!(
                routes_after.iter().all(|(_, table)| *table != 1234),
                "{routes_after:?}"
            );
        });
    }

    #[test]
    fn a_refused_route_is_withdrawn_and_undo_keeps_what_was_there() {
        in_private_netns(|| async {
            let (_tun, link) = add_tun("wtest0").await;
            // Someone else's address and route, the route in the way of the plan's second route.
            // (The address matters: removing a link's last IPv4 address flushes its IPv4 routes.)
            let mut ops = Ops::connect().await.unwrap();
            ops.add_address(link, net("198.18.9.1/24")).await.unwrap();
            ops.set_up(link).await.unwrap();
            ops.add_route(link, net("198.18.7.0/24"), MAIN_TABLE)
                .await
                .unwrap();

            let mut journal = Vec::new();
            let err = apply(
                &plan(MAIN_TABLE, &["198.18.6.0/24", "198.18.7.0/24"]),
                &mut journal,
            )
            .await
            .unwrap_err();
            assert_eq!(
                err.to_string(),
                "failed to add route 198.18.7.0/24 dev wtest0: File exists"
            );
            assert!(
                !journal.iter().any(|c| matches!(
                    c,
                    NetworkChange::RouteAdded { route, .. } if *route == net("198.18.7.0/24")
                )),
                "the refused route is still journaled: {journal:?}"
            );

            undo_all(&journal).await;
            assert_eq!(dump_addresses(link).await, [net("198.18.9.1/24")]);
            let routes = dump_routes(link).await;
            assert!(
                !routes.iter().any(|(r, _)| *r == net("198.18.6.0/24")),
                "{routes:?}"
            );
            assert!(
                routes.contains(&(net("198.18.7.0/24"), MAIN_TABLE)),
                "{routes:?}"
            );
        });
    }

    #[test]
    fn undo_after_the_link_is_gone_succeeds() {
        in_private_netns(|| async {
            let (_tun, link) = add_tun("wtest0").await;
            let mut journal = Vec::new();
            apply(
                &plan(MAIN_TABLE, &["198.18.6.0/24", "fd00:6::/64"]),
                &mut journal,
            )
            .await
            .unwrap();
            handle().await.link().del(link).execute().await.unwrap();
            undo_all(&journal).await;
        });
    }

    #[test]
    fn undo_leaves_a_new_interface_of_the_same_name_alone() {
        in_private_netns(|| async {
            let (tun, _) = add_tun("wtest0").await;
            let mut journal = Vec::new();
            apply(&plan(MAIN_TABLE, &["198.18.6.0/24"]), &mut journal)
                .await
                .unwrap();
            drop(tun);
            // A new wtest0 (another index) with the same address, route and MTU.
            let (_tun, link) = add_tun("wtest0").await;
            let mut other = Vec::new();
            apply(&plan(MAIN_TABLE, &["198.18.6.0/24"]), &mut other)
                .await
                .unwrap();
            undo_all(&journal).await;
            assert_eq!(
                dump_addresses(link).await,
                [net("198.18.5.1/24"), net("fd00:5::1/64")]
            );
            assert!(dump_routes(link)
                .await
                .contains(&(net("198.18.6.0/24"), MAIN_TABLE)));
        });
    }

    #[test]
    fn a_missing_interface_is_named() {
        in_private_netns(|| async {
            let err = apply(&plan(MAIN_TABLE, &[]), &mut Vec::new())
                .await
                .unwrap_err();
            assert_eq!(
                err.to_string(),
                "failed to find interface wtest0: No such device"
            );
        });
    }

    #[test]
    fn full_tunnel_rules_and_sysctl_are_applied_and_undone_exactly() {
        in_private_netns(|| async {
            let (_tun, link) = add_tun("wtest0").await;
            let rules_before = dump_rules().await;
            assert_eq!(sysctl(super::super::SRC_VALID_MARK), "0");
            let mut full = plan(51820, &["0.0.0.0/0", "::/0"]);
            full.rules = vec![
                PolicyRule::NotFwmark {
                    family: Family::Ipv4,
                    fwmark: 0xca6c,
                    table: 51820,
                },
                PolicyRule::SuppressMainDefault {
                    family: Family::Ipv4,
                },
                PolicyRule::NotFwmark {
                    family: Family::Ipv6,
                    fwmark: 0xca6c,
                    table: 51820,
                },
                PolicyRule::SuppressMainDefault {
                    family: Family::Ipv6,
                },
            ];
            full.sysctls = vec![super::super::Sysctl {
                name: super::super::SRC_VALID_MARK.into(),
                value: "1".into(),
            }];
            full.mark_guard = Some(MarkGuard {
                ifname: "wtest0".into(),
                fwmark: 51820,
                families: vec![Family::Ipv4, Family::Ipv6],
                addresses: vec!["198.18.1.1".parse().unwrap()],
            });
            let mut journal = Vec::new();
            apply(&full, &mut journal).await.unwrap();
            let guard = nft_list("warren_rp_wtest0").expect("the guard's table is loaded");
            assert!(
                guard.contains("meta mark set ct mark")
                    && guard.contains("ct mark set meta mark")
                    && guard.contains("ip daddr 198.18.1.1 fib saddr type != local drop"),
                "{guard}"
            );

            assert_eq!(sysctl(super::super::SRC_VALID_MARK), "1");
            let rules = dump_rules().await;
            assert_eq!(rules.len(), rules_before.len() + 4, "{rules:#?}");
            let ours: Vec<&String> = rules.iter().filter(|r| !rules_before.contains(r)).collect();
            assert!(
                ours.iter().any(|r| r.contains("Invert")
                    && r.contains("table 51820")
                    && r.contains("FwMark(51820)")),
                "{ours:#?}"
            );
            assert!(
                ours.iter()
                    .any(|r| r.contains("table 254") && r.contains("SuppressPrefixLen(0)")),
                "{ours:#?}"
            );
            let routes = dump_routes(link).await;
            assert!(routes.contains(&(net("0.0.0.0/0"), 51820)), "{routes:?}");
            assert!(routes.contains(&(net("::/0"), 51820)), "{routes:?}");
            let in_use = Ops::connect().await.unwrap().tables_in_use().await.unwrap();
            assert!(
                in_use.contains(&51820) && in_use.contains(&MAIN_TABLE),
                "{in_use:?}"
            );

            undo_all(&journal).await;
            assert_eq!(dump_rules().await, rules_before);
            assert_eq!(sysctl(super::super::SRC_VALID_MARK), "0");
            assert_eq!(
                nft_list("warren_rp_wtest0"),
                None,
                "the guard's table is gone"
            );
            // Idempotent: the rules and the sysctl are already back.
            undo_all(&journal).await;
            assert_eq!(dump_rules().await, rules_before);
        });
    }

    /// `nft list table inet <table>` in this thread's namespace; `None` when there is no such
    /// table.
    fn nft_list(table: &str) -> Option<String> {
        let output = std::process::Command::new(nft_program())
            .args(["list", "table", "inet", table])
            .output()
            .expect("nft runs (Debian's nftables is installed by scripts/setup.sh)");
        output
            .status
            .success()
            .then(|| String::from_utf8_lossy(&output.stdout).into_owned())
    }

    #[test]
    fn route_mtu_is_the_mtu_of_the_way_out() {
        in_private_netns(|| async {
            // A veth pair (this kernel may have no dummy links), the far end up too so that the
            // near end has a carrier.
            let handle = handle().await;
            handle
                .link()
                .add(
                    rtnetlink::LinkVeth::new("wveth0", "wveth1")
                        .mtu(1400)
                        .build(),
                )
                .execute()
                .await
                .unwrap();
            let mut ops = Ops::connect().await.unwrap();
            let near = ops.link("wveth0").await.unwrap().index;
            let far = ops.link("wveth1").await.unwrap().index;
            ops.set_mtu(far, 1400).await.unwrap();
            ops.add_address(near, net("198.18.5.1/24")).await.unwrap();
            ops.add_address(near, net("fd00:5::1/64")).await.unwrap();
            ops.set_up(near).await.unwrap();
            ops.set_up(far).await.unwrap();
            assert_eq!(
                ops.route_mtu("198.18.5.9".parse().unwrap()).await.unwrap(),
                Some(1400)
            );
            assert_eq!(
                ops.route_mtu("fd00:5::9".parse().unwrap()).await.unwrap(),
                Some(1400)
            );
            // No route at all: unknown, not an error.
            assert_eq!(
                ops.route_mtu("198.19.9.9".parse().unwrap()).await.unwrap(),
                None
            );
        });
    }

    #[test]
    fn sysctl_names_outside_net_are_refused() {
        for name in [
            "kernel.hostname",
            "net..x",
            "net.ipv4/../../x",
            "net.ipv4.conf.all.src valid",
        ] {
            assert!(sysctl_path(name).is_err(), "{name}");
        }
        assert_eq!(
            sysctl_path("net.ipv4.conf.all.src_valid_mark").unwrap(),
            PathBuf::from("/proc/sys/net/ipv4/conf/all/src_valid_mark")
        );
    }
}
