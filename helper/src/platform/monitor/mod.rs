//! The network monitor: tells a running tunnel that the host's network changed under it — a
//! default route came, went or moved, an address was added or removed, a link went up or down —
//! so that the session can re-check what depends on the network (see
//! `crate::session::network`) instead of waiting for WireGuard's timers.
//!
//! Three layers, so that the decisions are tested on any OS without touching the network:
//! 1. **The OS's notifications** ([`imp`], one module per OS behind the private [`Source`]
//!    trait): Linux, an rtnetlink socket subscribed to `RTNLGRP_LINK`, `RTNLGRP_IPV4_IFADDR`,
//!    `RTNLGRP_IPV6_IFADDR`, `RTNLGRP_IPV4_ROUTE` and `RTNLGRP_IPV6_ROUTE`; macOS, a `PF_ROUTE`
//!    socket; Windows, `NotifyRouteChange2`, `NotifyIpInterfaceChange` and
//!    `NotifyUnicastIpAddressChange`. Each turns what it hears into [`Observation`]s and
//!    nothing more. (Only the Linux one has run; macOS and Windows are compiled and linted.)
//! 2. **What matters** ([`classify`], a plain function): a default route in the main table
//!    (or a macOS/Windows gateway route), an address, or a link's up/down state — except on the
//!    tunnel's own interface, and except routes in tables of the tunnel's own (Warren's full
//!    tunnel puts its routes in a private table; its own rules are not subscribed to at all).
//!    Routes that are not default routes (a LAN prefix, a host route) change nothing the tunnel
//!    depends on, and neither does an address's lifetime refresh or a link's statistics.
//! 3. **When to say so** ([`Debouncer`], a plain state machine on the caller's clock): a change
//!    rarely comes alone (DHCP adds an address, then a route; Wi-Fi drops a link and brings it
//!    back), so a burst is reported once, [`QUIET`] after its last relevant observation, and
//!    never later than [`MAX_DELAY`] after its first.
//!
//! [`Monitor`] puts the three together for the session; it owns the OS resources and frees them
//! when dropped.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::io;
use std::net::IpAddr;
use std::time::Duration;
use tokio::time::Instant;

#[cfg(target_os = "linux")]
mod linux;
#[cfg(target_os = "linux")]
use linux as imp;

#[cfg(target_os = "macos")]
mod macos;
// Pure: compiled and tested everywhere, called only on macOS.
#[cfg_attr(not(target_os = "macos"), allow(dead_code))]
mod macos_messages;
#[cfg(target_os = "macos")]
use macos as imp;

#[cfg(windows)]
mod windows;
#[cfg(windows)]
use windows as imp;

#[cfg(not(any(target_os = "linux", target_os = "macos", windows)))]
mod unsupported;
#[cfg(not(any(target_os = "linux", target_os = "macos", windows)))]
use unsupported as imp;

/// How long a burst of observations must stay quiet before it is reported.
pub const QUIET: Duration = Duration::from_millis(300);

/// The longest a relevant observation waits to be reported, however long its burst goes on.
pub const MAX_DELAY: Duration = Duration::from_secs(1);

/// The main routing table's id (`RT_TABLE_MAIN`); macOS and Windows have only this one.
pub const MAIN_TABLE: u32 = 254;

/// One thing the OS said about the network, reduced to what [`classify`] needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Observation {
    /// A link appeared, changed or disappeared.
    Link {
        /// Its interface index.
        index: u32,
        /// Its name, when the OS said.
        name: Option<String>,
        /// Whether it is up and running (has a carrier); `false` when removed.
        running: bool,
    },
    /// An address was added to or removed from an interface.
    Address {
        /// The interface's index.
        index: u32,
        /// The address.
        address: Option<IpAddr>,
        /// Added (`true`) or removed.
        added: bool,
    },
    /// A route was added, changed or removed.
    Route {
        /// Its table ([`MAIN_TABLE`] where the OS has only one).
        table: u32,
        /// Its destination's prefix length (`0`: a default route).
        prefix_len: u8,
        /// The interface it goes out of, when the OS said.
        index: Option<u32>,
        /// Added or changed (`true`), or removed.
        added: bool,
    },
}

/// What the tunnel depends on changed, as [`classify`] sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ChangeKind {
    /// A default route (the way out to the endpoints) came, went or moved.
    DefaultRoute,
    /// An address on another interface came or went.
    Address,
    /// Another interface went up or down.
    Link,
}

impl fmt::Display for ChangeKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ChangeKind::DefaultRoute => "default route",
            ChangeKind::Address => "address",
            ChangeKind::Link => "link",
        })
    }
}

/// What is the tunnel's own, and so never a reason to react: its interface, and the routing
/// tables only it uses.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Scope {
    /// The tunnel's interface name.
    pub ifname: String,
    /// Its index, once known (the OS may report a link by index only).
    pub index: Option<u32>,
    /// Routing tables of the tunnel's own (a Linux full tunnel's private table).
    pub own_tables: Vec<u32>,
}

/// What the monitor has heard so far of links and addresses, so that a message repeating what
/// is known (a link's statistics or an unimportant flag, an address's lifetime refreshed by
/// DHCP or a router advertisement, an IPv6 address finishing duplicate detection) is not taken
/// for a change.
#[derive(Debug, Default)]
pub struct Known {
    links: HashMap<u32, bool>,
    addresses: HashSet<(u32, IpAddr)>,
}

/// Whether `observation` is a change the tunnel depends on, and of which kind, judged against
/// what is already `known` (which it updates).
pub fn classify(observation: &Observation, scope: &Scope, known: &mut Known) -> Option<ChangeKind> {
    let own = |index: u32| scope.index == Some(index);
    match observation {
        Observation::Link {
            index,
            name,
            running,
        } => {
            if own(*index) || name.as_deref() == Some(scope.ifname.as_str()) {
                return None;
            }
            let before = known.links.insert(*index, *running);
            (before != Some(*running)).then_some(ChangeKind::Link)
        }
        Observation::Address {
            index,
            address,
            added,
        } => {
            // Loopback, and IPv6 link-local addresses (every link gets one when it comes up;
            // no endpoint is reached through one), are not the tunnel's way out.
            let local_only = |a: &IpAddr| match a {
                IpAddr::V4(v4) => v4.is_loopback(),
                IpAddr::V6(v6) => v6.is_loopback() || (v6.segments()[0] & 0xffc0) == 0xfe80,
            };
            if own(*index) || address.as_ref().is_some_and(local_only) {
                return None;
            }
            let new = match (address, added) {
                (Some(address), true) => known.addresses.insert((*index, *address)),
                (Some(address), false) => {
                    known.addresses.remove(&(*index, *address));
                    true
                }
                (None, _) => true,
            };
            new.then_some(ChangeKind::Address)
        }
        Observation::Route {
            table,
            prefix_len,
            index,
            ..
        } => {
            if *prefix_len != 0
                || scope.own_tables.contains(table)
                || *table != MAIN_TABLE
                || index.is_some_and(own)
            {
                return None;
            }
            Some(ChangeKind::DefaultRoute)
        }
    }
}

/// A burst of relevant changes, reported once (see the module docs).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ChangeSet {
    /// The kinds of change in the burst, each once, in [`ChangeKind`] order.
    pub kinds: Vec<ChangeKind>,
}

impl fmt::Display for ChangeSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<String> = self.kinds.iter().map(ToString::to_string).collect();
        f.write_str(&names.join(", "))
    }
}

/// Collects relevant changes into bursts on the caller's clock (see the module docs).
#[derive(Debug, Default)]
pub struct Debouncer {
    pending: Option<Pending>,
}

#[derive(Debug)]
struct Pending {
    first: Instant,
    last: Instant,
    kinds: Vec<ChangeKind>,
}

impl Debouncer {
    /// A relevant change was observed at `now`.
    pub fn observe(&mut self, kind: ChangeKind, now: Instant) {
        let pending = self.pending.get_or_insert(Pending {
            first: now,
            last: now,
            kinds: Vec::new(),
        });
        pending.last = now;
        if !pending.kinds.contains(&kind) {
            pending.kinds.push(kind);
            pending.kinds.sort();
        }
    }

    /// When the pending burst is due, if there is one.
    pub fn deadline(&self) -> Option<Instant> {
        self.pending
            .as_ref()
            .map(|p| (p.last + QUIET).min(p.first + MAX_DELAY))
    }

    /// The pending burst, if it is due at `now` (and then it is no longer pending).
    pub fn take_due(&mut self, now: Instant) -> Option<ChangeSet> {
        if self.deadline()? > now {
            return None;
        }
        self.pending.take().map(|p| ChangeSet { kinds: p.kinds })
    }
}

/// What each OS's notifications implement (see the module docs, layer 1).
trait Source: Sized {
    /// Subscribes to the OS's notifications. Fails when the OS refuses (no permission, no
    /// such facility).
    async fn open() -> io::Result<Self>;
    /// The next observations, waiting for them. An error means no more will come.
    async fn next(&mut self) -> io::Result<Vec<Observation>>;
}

/// The network monitor of one running tunnel.
pub struct Monitor {
    source: imp::Source,
    scope: Scope,
    known: Known,
    debouncer: Debouncer,
}

impl Monitor {
    /// Subscribes to the OS's notifications for a tunnel whose own interface and tables are
    /// `scope`.
    pub async fn open(mut scope: Scope) -> io::Result<Monitor> {
        if scope.index.is_none() {
            scope.index = imp::index_of(&scope.ifname);
        }
        Ok(Monitor {
            source: <imp::Source as Source>::open().await?,
            scope,
            known: Known::default(),
            debouncer: Debouncer::default(),
        })
    }

    /// The next burst of relevant changes, debounced. An error means the OS's notifications
    /// stopped (the caller logs it and carries on without a monitor).
    pub async fn changed(&mut self) -> io::Result<ChangeSet> {
        loop {
            let deadline = self.debouncer.deadline();
            let sleep = async {
                match deadline {
                    Some(deadline) => tokio::time::sleep_until(deadline).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                observations = self.source.next() => {
                    for observation in observations? {
                        if let Some(kind) = classify(&observation, &self.scope, &mut self.known) {
                            tracing::debug!("network monitor: {kind} change: {observation:?}");
                            self.debouncer.observe(kind, Instant::now());
                        }
                    }
                }
                () = sleep => {
                    if let Some(changes) = self.debouncer.take_due(Instant::now()) {
                        return Ok(changes);
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scope() -> Scope {
        Scope {
            ifname: "wg0".into(),
            index: Some(7),
            own_tables: vec![51820],
        }
    }

    fn route(table: u32, prefix_len: u8, index: Option<u32>) -> Observation {
        Observation::Route {
            table,
            prefix_len,
            index,
            added: true,
        }
    }

    #[test]
    fn default_routes_in_the_main_table_matter_and_the_tunnels_own_do_not() {
        let mut known = Known::default();
        let mut judge = |o: Observation| classify(&o, &scope(), &mut known);
        assert_eq!(
            judge(route(MAIN_TABLE, 0, Some(2))),
            Some(ChangeKind::DefaultRoute)
        );
        assert_eq!(
            judge(Observation::Route {
                table: MAIN_TABLE,
                prefix_len: 0,
                index: None,
                added: false
            }),
            Some(ChangeKind::DefaultRoute),
            "a default route removed"
        );
        // The full tunnel's own default route, in its own table and through its interface.
        assert_eq!(judge(route(51820, 0, Some(7))), None);
        assert_eq!(judge(route(MAIN_TABLE, 0, Some(7))), None);
        // Someone else's policy table, and routes that are not default routes.
        assert_eq!(judge(route(100, 0, Some(2))), None);
        assert_eq!(judge(route(MAIN_TABLE, 24, Some(2))), None);
        assert_eq!(judge(route(MAIN_TABLE, 32, Some(2))), None);
    }

    #[test]
    fn addresses_matter_except_on_the_tunnel_and_loopback() {
        let mut known = Known::default();
        let mut judge = |o: Observation| classify(&o, &scope(), &mut known);
        let address = |index, address: &str, added| Observation::Address {
            index,
            address: Some(address.parse().unwrap()),
            added,
        };
        assert_eq!(
            judge(address(2, "198.18.3.2", true)),
            Some(ChangeKind::Address)
        );
        assert_eq!(
            judge(address(2, "fd00:3::2", false)),
            Some(ChangeKind::Address)
        );
        assert_eq!(
            judge(address(2, "198.18.3.2", true)),
            None,
            "the same address again (a lifetime refresh)"
        );
        assert_eq!(
            judge(address(2, "198.18.3.2", false)),
            Some(ChangeKind::Address)
        );
        assert_eq!(
            judge(address(2, "198.18.3.2", true)),
            Some(ChangeKind::Address),
            "back again"
        );
        assert_eq!(
            judge(address(7, "198.18.100.2", true)),
            None,
            "the tunnel's"
        );
        assert_eq!(judge(address(1, "127.0.0.2", true)), None, "loopback");
        assert_eq!(judge(address(2, "fe80::1", true)), None, "IPv6 link-local");
    }

    #[test]
    fn a_link_matters_when_its_state_changes_and_never_the_tunnels() {
        let mut known = Known::default();
        let mut judge = |o: Observation| classify(&o, &scope(), &mut known);
        let link = |index, name: &str, running| Observation::Link {
            index,
            name: Some(name.into()),
            running,
        };
        assert_eq!(judge(link(3, "eth1", true)), Some(ChangeKind::Link));
        assert_eq!(judge(link(3, "eth1", true)), None, "same state again");
        assert_eq!(judge(link(3, "eth1", false)), Some(ChangeKind::Link));
        assert_eq!(judge(link(7, "wg0", false)), None, "by index");
        assert_eq!(judge(link(9, "wg0", true)), None, "by name");
    }

    #[test]
    fn a_burst_is_reported_once_after_it_goes_quiet() {
        let start = Instant::now();
        let at = |ms| start + Duration::from_millis(ms);
        let mut debouncer = Debouncer::default();
        assert_eq!(debouncer.deadline(), None);
        assert_eq!(debouncer.take_due(at(10_000)), None, "nothing pending");
        debouncer.observe(ChangeKind::Address, at(0));
        debouncer.observe(ChangeKind::DefaultRoute, at(100));
        debouncer.observe(ChangeKind::Address, at(200));
        assert_eq!(debouncer.deadline(), Some(at(500)));
        assert_eq!(debouncer.take_due(at(499)), None);
        let burst = debouncer.take_due(at(500)).expect("due once quiet");
        assert_eq!(
            burst.kinds,
            vec![ChangeKind::DefaultRoute, ChangeKind::Address]
        );
        assert_eq!(burst.to_string(), "default route, address");
        assert_eq!(debouncer.take_due(at(600)), None, "reported once");
    }

    #[test]
    fn a_burst_that_never_goes_quiet_is_reported_after_the_longest_delay() {
        let start = Instant::now();
        let mut debouncer = Debouncer::default();
        let mut now = start;
        while now < start + Duration::from_secs(5) {
            debouncer.observe(ChangeKind::Link, now);
            if debouncer.take_due(now).is_some() {
                break;
            }
            now += Duration::from_millis(100);
        }
        assert_eq!(now - start, MAX_DELAY, "reported at the longest delay");
    }
}
