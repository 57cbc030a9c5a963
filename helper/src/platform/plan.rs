//! The network planner: a pure function from a tunnel configuration (and a few read-only facts
//! about the system, [`PlanInputs`]) to everything the tunnel changes in the OS's routing — the
//! interface's addresses and MTU, the routes for the AllowedIPs, and for a full tunnel whatever
//! keeps the tunnel's own encrypted packets out of the tunnel (per OS, see below) — plus the
//! refusals for what cannot work. All the routing policy lives here, so it is unit-tested without
//! root, for every OS on any OS: the OS is an input ([`PlanInputs::method`]), not a `#[cfg]`.
//!
//! Routes, per address family (IPv4 and IPv6 are decided separately):
//! - **split tunnel** (no peer has `0.0.0.0/0` for IPv4, `::/0` for IPv6): one route through the
//!   interface per distinct AllowedIPs prefix, in the main table (`Table = auto`), in table `<id>`
//!   (`Table = <id>`, Linux only), or none at all (`Table = off`) — as wg-quick does.
//! - **full tunnel** (some peer has the family's default route): the OS's
//!   [`FullTunnelMethod`], chosen once by [`FullTunnelMethod::native`]:
//!   - **Linux, [`FullTunnelMethod::PolicyRouting`]** — wg-quick's policy routing. Every route of
//!     that family goes into a private table *T* (`Table = <id>`, or with `Table = auto` the first
//!     id from 51820 that no route or rule uses yet), the tunnel's UDP sockets carry the mark *M*
//!     (`FwMark`, else *T*), and two rules are added for the family: `ip rule add not fwmark M
//!     table T` (everything except the tunnel's own packets looks in T, where the default route
//!     is the tunnel) and `ip rule add table main suppress_prefixlength 0` (added second, so the
//!     kernel gives it the higher priority: the main table still decides for its more specific
//!     routes, such as the LAN, but its default route is ignored). For IPv4,
//!     `net.ipv4.conf.all.src_valid_mark=1` as well, so that reverse-path filtering sees the mark,
//!     and for every full-tunnel family wg-quick's nftables rules that put the mark back on the
//!     endpoint's replies and drop spoofed packets for the tunnel's addresses
//!     ([`NetworkPlan::mark_guard`], see [`super::mark_guard`]); without them a host with strict
//!     reverse-path filtering drops every reply.
//!   - **macOS, [`FullTunnelMethod::Halves`]** — wg-quick's `darwin.bash` and wireguard-apple:
//!     macOS has one routing table and no policy rules, so the default route is taken over by
//!     being *more specific* than it: `0.0.0.0/1` + `128.0.0.0/1` (`::/1` + `8000::/1`) through
//!     the tunnel, in that one table, while the system's default route stays. The family's other
//!     AllowedIPs are plain routes. Each peer endpoint of the family gets a host route (`/32`,
//!     `/128`) via the family's current default gateway ([`PlanInputs::default_gateways`]), which
//!     is more specific still, so the tunnel's own packets leave by the physical network. When no
//!     gateway is known, there is no host route and the plan says so
//!     ([`PlanWarning::NoDefaultGateway`]); wg-quick adds a blackhole route instead, which only
//!     trades a loop for a drop.
//!   - **Windows, [`FullTunnelMethod::BoundSockets`]** — wireguard-windows' `tunnel/` method:
//!     every AllowedIPs prefix, `0.0.0.0/0` / `::/0` included, is a route through the tunnel in
//!     the one table. The tunnel's own packets stay off it because its UDP sockets are bound
//!     (`IP_UNICAST_IF`) to the best default-route interface that is not the tunnel's
//!     (`crate::dataplane::udp::egress`, called by the session for every tunnel): a bound socket
//!     never takes the tunnel's route. No step of the plan is needed for that.
//!
//!   Neither macOS nor Windows gets a fwmark, a rule or a sysctl; a configured `FwMark` is
//!   ignored there with a warning ([`PlanWarning::FwMarkIgnored`]), as wireguard-go ignores it.
//!   `Table = off` adds no routes and no rules on any OS (the administrator routes), and no
//!   endpoint host routes either (as wg-quick on macOS); on Linux the sockets still get `FwMark`
//!   when it is set.
//!
//! Unlike wg-quick, a Linux full tunnel with an explicit `Table = <id>` also gets the rules
//! (wg-quick adds them only with `auto`): a default route in a table no rule consults would make
//! the full tunnel silently carry nothing. A Linux full tunnel whose routes would go into the main
//! table itself (`Table = 254` or `0`) is refused: a plain default route through the tunnel loops.
//! On macOS and Windows, `Table = main` (254 or 0) is the one table, the same as `auto`; any other
//! numbered table is refused before anything changes ([`PlanError::NoNumberedTables`]), as
//! wg-quick on macOS refuses it ("only supports TABLE=auto|main|off") — ignoring it would route
//! differently from what the file asks.
//!
//! Why the other refusals:
//! - A peer endpoint inside AllowedIPs of its family whose routes go into the **main** table as a
//!   split tunnel: the route for that prefix would send the tunnel's own encrypted packets into
//!   the tunnel — a routing loop. It cannot loop in a full-tunnel family (where every endpoint is
//!   inside `0.0.0.0/0`): on Linux the tunnel's packets carry the mark, skip the `not fwmark` rule
//!   and never see table T, whose routes are the only ones through the tunnel; on macOS the
//!   endpoint's host route is more specific than any AllowedIPs route; on Windows the bound
//!   sockets never take the tunnel's routes. Nor with `Table = off` or a table other than main,
//!   which only the administrator's own rules would consult. So the check applies to split-tunnel
//!   families in the main table only, on every OS.
//! - Two `Address` entries with the same IP would make the OS refuse the second one half-way.
//! - An `MTU` below 1280 while the tunnel carries IPv6: Linux would remove IPv6 from the interface.
//!
//! No refusal depends on the facts in [`PlanInputs`] other than the method (validation plans with
//! nothing known): what depends on them, like a missing default gateway, is a warning.
//!
//! The MTU, when the configuration sets none, is the MTU of the path to the first peer endpoint
//! (the route's MTU, else its interface's) minus 80 bytes of IPv6 + UDP + WireGuard overhead, as
//! wg-quick computes it; [`DEFAULT_MTU`] (1420 = 1500 - 80) when that is unknown. A derived MTU is
//! kept at or above 1280 when the tunnel carries IPv6 (the outer packets are then fragmented rather
//! than IPv6 disabled).

use super::mark_guard::MarkGuard;
use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use warren_proto::config::{Endpoint, Table, TunnelConfig};
use warren_proto::key::PublicKey;

/// The MTU when the configuration sets none and the path MTU to the endpoint is unknown:
/// WireGuard's classic 1420 (1500 minus [`WIREGUARD_OVERHEAD`]).
pub const DEFAULT_MTU: u16 = 1420;

/// Bytes WireGuard adds around an inner packet in the worst case: IPv6 header (40) + UDP (8) +
/// WireGuard data header and tag (32).
pub const WIREGUARD_OVERHEAD: u32 = 80;

/// The id of the kernel's main routing table (`RT_TABLE_MAIN`).
pub const MAIN_TABLE: u32 = 254;

/// Where `Table = auto` starts looking for a free private table for a full tunnel (wg-quick's
/// choice, which is also WireGuard's default port).
pub const FIRST_AUTO_TABLE: u32 = 51820;

/// The sysctl that makes reverse-path filtering honour the fwmark (set for IPv4 full tunnels).
pub const SRC_VALID_MARK: &str = "net.ipv4.conf.all.src_valid_mark";

/// The smallest MTU an interface carrying IPv6 may have (RFC 8200); below it Linux removes IPv6
/// from the interface.
const IPV6_MIN_MTU: u16 = 1280;

/// The smallest MTU derived for an IPv4-only tunnel (RFC 791's minimum datagram every host takes).
const IPV4_MIN_MTU: u16 = 576;

/// The prefix length of each half of an address space: a `/1` route is more specific than the
/// default route (`/0`), so the two halves take all traffic from it without replacing it.
const HALF_PREFIX_LEN: u8 = 1;

/// `0.0.0.0/1` and `128.0.0.0/1`: the IPv4 space in two halves.
const IPV4_HALVES: [IpNet; 2] = [
    IpNet::V4(Ipv4Net::new_assert(Ipv4Addr::UNSPECIFIED, HALF_PREFIX_LEN)),
    IpNet::V4(Ipv4Net::new_assert(
        Ipv4Addr::new(128, 0, 0, 0),
        HALF_PREFIX_LEN,
    )),
];

/// `::/1` and `8000::/1`: the IPv6 space in two halves.
const IPV6_HALVES: [IpNet; 2] = [
    IpNet::V6(Ipv6Net::new_assert(Ipv6Addr::UNSPECIFIED, HALF_PREFIX_LEN)),
    IpNet::V6(Ipv6Net::new_assert(
        Ipv6Addr::new(0x8000, 0, 0, 0, 0, 0, 0, 0),
        HALF_PREFIX_LEN,
    )),
];

/// `fe80::/10`, where a link-local IPv6 next hop lies (it needs its interface as its scope).
const IPV6_LINK_LOCAL: Ipv6Net =
    Ipv6Net::new_assert(Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 0), 10);

/// How a full-tunnel family keeps the tunnel's own encrypted packets out of the tunnel — each
/// OS's own way, because only Linux has policy routing (see the module docs). An input of the
/// planner ([`PlanInputs::method`]) rather than a `#[cfg]` in it, so that the plans for all three
/// OSes are unit-tested on any one of them; [`FullTunnelMethod::native`] chooses it for the OS
/// the helper runs on, in this one place.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FullTunnelMethod {
    /// Linux (wg-quick): a private table reached through `ip rule`s, the sockets' fwmark, and
    /// `src_valid_mark`.
    PolicyRouting,
    /// macOS (wg-quick's `darwin.bash`, wireguard-apple): the default route's two `/1` halves
    /// through the tunnel in the one table, plus a host route to each endpoint via the default
    /// gateway.
    Halves,
    /// Windows (wireguard-windows' `tunnel/`): every AllowedIPs prefix, the default route
    /// included, through the tunnel in the one table; the tunnel's sockets bound to the best
    /// other interface (`crate::dataplane::udp::egress`).
    BoundSockets,
}

impl FullTunnelMethod {
    /// The method of the OS this helper is built for (Linux's for any OS without its own).
    pub fn native() -> FullTunnelMethod {
        if cfg!(target_os = "macos") {
            FullTunnelMethod::Halves
        } else if cfg!(windows) {
            FullTunnelMethod::BoundSockets
        } else {
            FullTunnelMethod::PolicyRouting
        }
    }

    /// The OS whose method it is, for messages.
    pub fn os(self) -> &'static str {
        match self {
            FullTunnelMethod::PolicyRouting => "Linux",
            FullTunnelMethod::Halves => "macOS",
            FullTunnelMethod::BoundSockets => "Windows",
        }
    }
}

impl Default for FullTunnelMethod {
    /// [`FullTunnelMethod::native`]: what validation and the session plan with.
    fn default() -> Self {
        FullTunnelMethod::native()
    }
}

/// A family's default gateway: the next hop of the system's default route (macOS's endpoint host
/// routes go through it). Plain data, journaled with the routes that use it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Gateway {
    /// The next hop's address.
    pub address: IpAddr,
    /// The interface the default route leaves by (`en0`), when known: it names the scope of a
    /// link-local IPv6 next hop (`fe80::1%en0`).
    pub interface: Option<String>,
}

impl fmt::Display for Gateway {
    /// `198.18.0.1`, or `fe80::1%en0` for a link-local IPv6 next hop, as `route(8)` takes it.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (&self.address, &self.interface) {
            (IpAddr::V6(v6), Some(interface)) if IPV6_LINK_LOCAL.contains(v6) => {
                write!(f, "{v6}%{interface}")
            }
            (address, _) => write!(f, "{address}"),
        }
    }
}

/// A host route to a peer endpoint via the default gateway, outside the tunnel (a macOS full
/// tunnel's; see the module docs).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct EndpointRoute {
    /// The endpoint's address (IPv4-mapped addresses as IPv4); the route is `/32` or `/128`.
    pub host: IpAddr,
    /// The gateway the route goes through.
    pub gateway: Gateway,
}

/// Something the plan cannot do as well as it should, said when the tunnel comes up (the session
/// logs each). Unlike a [`PlanError`], it does not stop the tunnel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PlanWarning {
    /// A macOS full-tunnel family whose endpoints get no host route, because no default gateway
    /// of that family is known (offline, or a default route without a next hop).
    NoDefaultGateway {
        /// The family.
        family: Family,
        /// The endpoints left without a host route.
        endpoints: Vec<IpAddr>,
    },
    /// `FwMark` on an OS without packet marks: the tunnel's own packets are kept off the tunnel
    /// by the OS's [`FullTunnelMethod`] instead.
    FwMarkIgnored {
        /// The configured mark.
        fwmark: u32,
        /// The method in use.
        method: FullTunnelMethod,
    },
    /// A Linux full tunnel without its reverse-path guard, because `nft` is not installed: it
    /// works where reverse-path filtering is off or loose, not where it is strict.
    NoMarkGuard,
}

impl fmt::Display for PlanWarning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PlanWarning::NoDefaultGateway { family, endpoints } => {
                let endpoints: Vec<String> = endpoints.iter().map(IpAddr::to_string).collect();
                write!(
                    f,
                    "no {} default gateway is known, so endpoint {} gets no host route: until the \
                     network has a default route, the tunnel's own packets to it would be routed \
                     into the tunnel",
                    family.name(),
                    endpoints.join(", ")
                )
            }
            PlanWarning::FwMarkIgnored { fwmark, method } => write!(
                f,
                "FwMark = {fwmark:#x} is ignored: {} has no packet marks, and a full tunnel keeps \
                 its own packets off the tunnel {} instead",
                method.os(),
                match method {
                    FullTunnelMethod::PolicyRouting => "by policy rules",
                    FullTunnelMethod::Halves => "by host routes to the endpoints",
                    FullTunnelMethod::BoundSockets => "by binding its sockets to another interface",
                }
            ),
            PlanWarning::NoMarkGuard => f.write_str(
                "nft (Debian's nftables) is not installed, so the full tunnel has no \
                 reverse-path guard: replies from the endpoint would be dropped if reverse-path \
                 filtering became strict (rp_filter=1)",
            ),
        }
    }
}

/// Read-only facts about the system that the planner needs, gathered before planning (see
/// [`super::read_inputs`]), and the full-tunnel method to plan for. `PlanInputs::default()` means
/// "nothing known" on this OS (its [`FullTunnelMethod::native`]), which is what validating a
/// configuration needs: no refusal depends on the facts, only on the method.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PlanInputs {
    /// The MTU of the path to the first peer endpoint: the route's MTU, else the MTU of the
    /// interface the route leaves by. `None` when unknown (no endpoint, no route).
    pub endpoint_mtu: Option<u32>,
    /// Routing tables that hold a route or are named by a rule right now; `Table = auto` for a full
    /// tunnel picks the first id from [`FIRST_AUTO_TABLE`] not in here.
    pub tables_in_use: BTreeSet<u32>,
    /// Endpoints that the configuration gives as host names, resolved by the caller, so that they
    /// are checked (and, on macOS, host-routed) like literal addresses.
    pub resolved_endpoints: Vec<(PublicKey, SocketAddr)>,
    /// The full-tunnel method to plan for: [`FullTunnelMethod::native`] by default; tests plan
    /// for the other OSes with theirs.
    pub method: FullTunnelMethod,
    /// The current default gateway of each family that has one, read before the tunnel's routes
    /// exist. Only [`FullTunnelMethod::Halves`] uses it (for the endpoints' host routes).
    pub default_gateways: BTreeMap<Family, Gateway>,
    /// `nft` cannot be found (Linux): a full tunnel then goes without its reverse-path guard
    /// ([`NetworkPlan::mark_guard`]), with a warning. `false` (the default) plans the guard.
    pub nft_missing: bool,
}

/// An address family.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Family {
    /// IPv4.
    Ipv4,
    /// IPv6.
    Ipv6,
}

impl Family {
    /// The family of `net`.
    pub fn of(net: &IpNet) -> Family {
        match net {
            IpNet::V4(_) => Family::Ipv4,
            IpNet::V6(_) => Family::Ipv6,
        }
    }

    /// The family of `addr`.
    pub fn of_addr(addr: &IpAddr) -> Family {
        match addr {
            IpAddr::V4(_) => Family::Ipv4,
            IpAddr::V6(_) => Family::Ipv6,
        }
    }

    /// The family of `ip`, an IPv4-mapped IPv6 address counting as IPv4.
    pub fn of_ip(ip: &IpAddr) -> Family {
        match ip.to_canonical() {
            IpAddr::V4(_) => Family::Ipv4,
            IpAddr::V6(_) => Family::Ipv6,
        }
    }

    /// "IPv4" or "IPv6", for messages.
    pub fn name(self) -> &'static str {
        match self {
            Family::Ipv4 => "IPv4",
            Family::Ipv6 => "IPv6",
        }
    }

    /// Both families, IPv4 first.
    pub const ALL: [Family; 2] = [Family::Ipv4, Family::Ipv6];

    /// The two `/1` halves of the family's address space, low then high.
    pub fn halves(self) -> [IpNet; 2] {
        match self {
            Family::Ipv4 => IPV4_HALVES,
            Family::Ipv6 => IPV6_HALVES,
        }
    }
}

/// A route through the tunnel interface.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Route {
    /// The destination prefix (host bits cleared).
    pub prefix: IpNet,
    /// The routing table id ([`MAIN_TABLE`] for the main table).
    pub table: u32,
}

/// A policy routing rule of a full tunnel. Plain data (serialised into the journal), complete
/// enough to delete exactly this rule again.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PolicyRule {
    /// `ip rule add not fwmark <fwmark> table <table>`: everything but the tunnel's own packets
    /// looks in the tunnel's table.
    NotFwmark {
        /// The family the rule is for.
        family: Family,
        /// The mark on the tunnel's own UDP packets.
        fwmark: u32,
        /// The tunnel's private table.
        table: u32,
    },
    /// `ip rule add table main suppress_prefixlength 0`: the main table decides, except by its
    /// default route.
    SuppressMainDefault {
        /// The family the rule is for.
        family: Family,
    },
}

impl PolicyRule {
    /// The family the rule is for.
    pub fn family(&self) -> Family {
        match *self {
            PolicyRule::NotFwmark { family, .. } | PolicyRule::SuppressMainDefault { family } => {
                family
            }
        }
    }
}

impl fmt::Display for PolicyRule {
    /// `IPv4 rule not fwmark 0xca6c table 51820`, in `ip rule`'s words.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let family = self.family().name();
        match *self {
            PolicyRule::NotFwmark { fwmark, table, .. } => {
                write!(f, "{family} rule not fwmark {fwmark:#x} table {table}")
            }
            PolicyRule::SuppressMainDefault { .. } => {
                write!(f, "{family} rule table main suppress_prefixlength 0")
            }
        }
    }
}

/// A kernel setting to change while the tunnel is up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sysctl {
    /// The dotted name, e.g. [`SRC_VALID_MARK`].
    pub name: String,
    /// The value to set.
    pub value: String,
}

/// What the tunnel needs: computed by [`plan`], executed by [`super::apply`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetworkPlan {
    /// The tunnel interface's name.
    pub ifname: String,
    /// The interface's own addresses, with their prefix length (host bits kept), in config order.
    pub addresses: Vec<IpNet>,
    /// The interface MTU.
    pub mtu: u16,
    /// The routes to add through the interface, deduplicated, in config order (a macOS full
    /// tunnel's default route as its two halves). Empty with `Table = off`.
    pub routes: Vec<Route>,
    /// Kernel settings to change (a full IPv4 tunnel's `src_valid_mark`).
    pub sysctls: Vec<Sysctl>,
    /// Policy routing rules to add, in this order (a full tunnel's; empty otherwise).
    pub rules: Vec<PolicyRule>,
    /// The mark for the tunnel's own UDP sockets (`FwMark`, else a full tunnel's table id).
    /// Linux only: `None` on the other OSes.
    pub fwmark: Option<u32>,
    /// The full-tunnel method the plan was made for.
    pub method: FullTunnelMethod,
    /// The families routed as full tunnels (IPv4 first), whatever the method; empty with
    /// `Table = off`.
    pub full_tunnel_families: Vec<Family>,
    /// Host routes to the peer endpoints via the default gateway, outside the tunnel (macOS full
    /// tunnels; empty otherwise). Added before the routes through the tunnel.
    pub endpoint_routes: Vec<EndpointRoute>,
    /// The reverse-path guard of a Linux full tunnel (wg-quick's connmark and anti-spoofing
    /// rules; see [`super::mark_guard`]); `None` otherwise, or when `nft` is missing.
    pub mark_guard: Option<MarkGuard>,
    /// What the plan cannot do as well as it should (see [`PlanWarning`]), for the session to log.
    pub warnings: Vec<PlanWarning>,
}

impl NetworkPlan {
    /// One line for the log: "split tunnel", "no routes", or how the full tunnel routes, e.g.
    /// "full tunnel (IPv4, IPv6) through table 51820, fwmark 0xca6c".
    pub fn routing_summary(&self) -> String {
        if self.full_tunnel_families.is_empty() {
            return if self.routes.is_empty() {
                "no routes".to_owned()
            } else {
                "split tunnel".to_owned()
            };
        }
        let families: Vec<&str> = self.full_tunnel_families.iter().map(|f| f.name()).collect();
        let families = families.join(", ");
        match self.method {
            FullTunnelMethod::PolicyRouting => {
                let table = self
                    .full_tunnel_table()
                    .map_or_else(|| "?".to_owned(), |t| t.to_string());
                let fwmark = self
                    .fwmark
                    .map_or_else(|| "none".to_owned(), |m| format!("{m:#x}"));
                format!("full tunnel ({families}) through table {table}, fwmark {fwmark}")
            }
            FullTunnelMethod::Halves => {
                let halves: Vec<String> = self
                    .full_tunnel_families
                    .iter()
                    .map(|f| {
                        let [low, high] = f.halves();
                        format!("{low} + {high}")
                    })
                    .collect();
                format!(
                    "full tunnel ({families}) by the halves {} over the default route, {} \
                     endpoint host route(s) via the default gateway",
                    halves.join(" and "),
                    self.endpoint_routes.len()
                )
            }
            FullTunnelMethod::BoundSockets => format!(
                "full tunnel ({families}) by default routes through {}, the tunnel's own sockets \
                 bound to the best other interface",
                self.ifname
            ),
        }
    }

    /// The private table of a full tunnel, if there is one.
    pub fn full_tunnel_table(&self) -> Option<u32> {
        self.rules.iter().find_map(|rule| match *rule {
            PolicyRule::NotFwmark { table, .. } => Some(table),
            PolicyRule::SuppressMainDefault { .. } => None,
        })
    }
}

/// Why a configuration cannot be brought up.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlanError {
    /// A full tunnel whose routes would go into the main table.
    #[error(
        "peer {peer} has AllowedIPs = {allowed_ip}, a full tunnel (all {family} traffic), but \
         Table = {table} puts its routes in the main table, where a default route through the \
         tunnel would carry the tunnel's own packets too (a routing loop): use Table = auto (a \
         private table with policy rules), another table id, or off"
    )]
    FullTunnelInMainTable {
        /// The peer's public key.
        peer: PublicKey,
        /// `0.0.0.0/0` or `::/0`.
        allowed_ip: IpNet,
        /// "IPv4" or "IPv6".
        family: &'static str,
        /// The configured table id (254 or 0).
        table: u32,
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
    /// A numbered routing table on an OS that has only one.
    #[error(
        "Table = {table} names a routing table, but {os} has only one: use Table = auto (or main) \
         for routes in it, or Table = off for no routes"
    )]
    NoNumberedTables {
        /// The configured table id.
        table: u32,
        /// "macOS" or "Windows".
        os: &'static str,
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

/// Where a family's routes go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Routing {
    /// `Table = off`: nowhere.
    Off,
    /// Plain routes in this table, no rules.
    Table(u32),
    /// A Linux full tunnel: routes in this private table, reached through policy rules.
    Policy(u32),
    /// A macOS full tunnel: routes in the main table, the default route as its two halves, and
    /// host routes to the endpoints.
    Halves,
    /// A Windows full tunnel: routes in the main table, the default route itself included.
    Bound,
}

impl Routing {
    /// Whether this is one of the full-tunnel kinds.
    fn is_full(self) -> bool {
        matches!(self, Routing::Policy(_) | Routing::Halves | Routing::Bound)
    }
}

/// Computes what `config` needs on the interface `ifname`. Pure: reads nothing from the system;
/// what it needs to know about it comes in `inputs` (see [`PlanInputs`]).
///
/// - addresses: `Address`, in order; an IP listed twice is refused;
/// - MTU: `MTU`, else the endpoint's path MTU minus 80, else [`DEFAULT_MTU`]; a configured MTU
///   below 1280 is refused when the tunnel carries IPv6;
/// - routes: every distinct AllowedIPs prefix of every peer, in order (the parser already cleared
///   host bits), in its family's table (see the module docs), a macOS full tunnel's default route
///   as its two halves in its place; none with `Table = off`. In the main table, a prefix equal to
///   the connected prefix of one of the interface's own addresses is left out, because the kernel
///   adds that route itself when the address is added (adding it again would fail with `File
///   exists`);
/// - full tunnels, per [`PlanInputs::method`]: on Linux the rules, the sockets' fwmark and
///   `src_valid_mark`; on macOS the endpoints' host routes (or a warning); on Windows nothing more
///   (see the module docs);
/// - refused: a Linux full tunnel in the main table, a numbered table on macOS or Windows, an
///   endpoint inside AllowedIPs routed in the main table as a split tunnel.
pub fn plan(
    config: &TunnelConfig,
    ifname: &str,
    inputs: &PlanInputs,
) -> Result<NetworkPlan, PlanError> {
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

    let allowed_ips = || config.peers.iter().flat_map(|p| &p.allowed_ips);
    let full_tunnel = |family: Family| {
        config.peers.iter().find_map(|peer| {
            peer.allowed_ips
                .iter()
                .find(|n| n.prefix_len() == 0 && Family::of(n) == family)
                .map(|&n| (peer.public_key, n))
        })
    };

    let method = inputs.method;
    // Only Linux has numbered tables; `main` is the one table elsewhere.
    if method != FullTunnelMethod::PolicyRouting {
        if let Table::Id(table) = interface.table {
            if table != 0 && table != MAIN_TABLE {
                return Err(PlanError::NoNumberedTables {
                    table,
                    os: method.os(),
                });
            }
        }
    }
    // Where each family's routes go.
    let configured = match interface.table {
        Table::Off => None,
        Table::Auto => Some(None),
        Table::Id(0) => Some(Some(MAIN_TABLE)),
        Table::Id(id) => Some(Some(id)),
    };
    let mut private_table = None;
    let mut routing = [Routing::Off; 2];
    for (slot, family) in routing.iter_mut().zip(Family::ALL) {
        let Some(configured) = configured else {
            continue;
        };
        *slot = match (full_tunnel(family), method) {
            (None, _) => Routing::Table(configured.unwrap_or(MAIN_TABLE)),
            (Some(_), FullTunnelMethod::Halves) => Routing::Halves,
            (Some(_), FullTunnelMethod::BoundSockets) => Routing::Bound,
            (Some((peer, allowed_ip)), FullTunnelMethod::PolicyRouting) => {
                if configured == Some(MAIN_TABLE) {
                    return Err(PlanError::FullTunnelInMainTable {
                        peer,
                        allowed_ip,
                        family: family.name(),
                        table: match interface.table {
                            Table::Id(id) => id,
                            _ => MAIN_TABLE,
                        },
                    });
                }
                let table = *private_table.get_or_insert_with(|| {
                    configured.unwrap_or_else(|| first_free_table(&inputs.tables_in_use))
                });
                Routing::Policy(table)
            }
        };
    }
    let routing_of = |family: Family| routing[family as usize];

    refuse_routing_loops(config, inputs, routing_of)?;

    let carries_ipv6 = interface
        .addresses
        .iter()
        .chain(allowed_ips())
        .find(|n| Family::of(n) == Family::Ipv6);
    let mtu = match interface.mtu {
        Some(mtu) => {
            if let (true, Some(&ipv6)) = (mtu < IPV6_MIN_MTU, carries_ipv6) {
                return Err(PlanError::MtuTooSmallForIpv6 { mtu, ipv6 });
            }
            mtu
        }
        None => derived_mtu(inputs.endpoint_mtu, carries_ipv6.is_some()),
    };

    let connected: Vec<IpNet> = interface
        .addresses
        .iter()
        .filter(|a| a.prefix_len() < a.max_prefix_len())
        .map(IpNet::trunc)
        .collect();
    let mut routes: Vec<Route> = Vec::new();
    for &prefix in allowed_ips() {
        let prefix = prefix.trunc();
        let family = Family::of(&prefix);
        let (table, prefixes) = match routing_of(family) {
            Routing::Off => continue,
            Routing::Table(table) | Routing::Policy(table) => (table, vec![prefix]),
            Routing::Halves if prefix.prefix_len() == 0 => (MAIN_TABLE, family.halves().to_vec()),
            Routing::Halves | Routing::Bound => (MAIN_TABLE, vec![prefix]),
        };
        for prefix in prefixes {
            let kernel_adds_it = table == MAIN_TABLE && connected.contains(&prefix);
            let route = Route { prefix, table };
            if !kernel_adds_it && !routes.contains(&route) {
                routes.push(route);
            }
        }
    }

    let mut warnings = Vec::new();
    let fwmark = match (method, interface.fwmark) {
        (FullTunnelMethod::PolicyRouting, configured) => configured.or(private_table),
        (_, Some(fwmark)) => {
            warnings.push(PlanWarning::FwMarkIgnored { fwmark, method });
            None
        }
        (_, None) => None,
    };
    let endpoint_routes = endpoint_routes(config, inputs, routing_of, &mut warnings);
    let full_tunnel_families = Family::ALL
        .into_iter()
        .filter(|&family| routing_of(family).is_full())
        .collect();
    let mut rules = Vec::new();
    let mut sysctls = Vec::new();
    let mut guarded = Vec::new();
    for family in Family::ALL {
        if let (Routing::Policy(table), Some(fwmark)) = (routing_of(family), fwmark) {
            guarded.push(family);
            rules.push(PolicyRule::NotFwmark {
                family,
                fwmark,
                table,
            });
            rules.push(PolicyRule::SuppressMainDefault { family });
            if family == Family::Ipv4 {
                sysctls.push(Sysctl {
                    name: SRC_VALID_MARK.to_owned(),
                    value: "1".to_owned(),
                });
            }
        }
    }

    let mark_guard = match (fwmark, guarded.is_empty(), inputs.nft_missing) {
        (Some(fwmark), false, false) => Some(MarkGuard {
            ifname: ifname.to_owned(),
            fwmark,
            addresses: interface
                .addresses
                .iter()
                .map(IpNet::addr)
                .filter(|a| guarded.contains(&Family::of_addr(a)))
                .collect(),
            families: guarded,
        }),
        (Some(_), false, true) => {
            warnings.push(PlanWarning::NoMarkGuard);
            None
        }
        _ => None,
    };

    Ok(NetworkPlan {
        ifname: ifname.to_owned(),
        addresses: interface.addresses.clone(),
        mtu,
        routes,
        sysctls,
        rules,
        fwmark,
        method,
        full_tunnel_families,
        endpoint_routes,
        mark_guard,
        warnings,
    })
}

/// Every peer endpoint known as an address: the literal ones, then the host names the caller
/// resolved.
fn endpoints<'a>(
    config: &'a TunnelConfig,
    inputs: &'a PlanInputs,
) -> impl Iterator<Item = (PublicKey, SocketAddr)> + 'a {
    let literal = config.peers.iter().filter_map(|peer| match peer.endpoint {
        Some(Endpoint::Addr(endpoint)) => Some((peer.public_key, endpoint)),
        _ => None,
    });
    literal.chain(inputs.resolved_endpoints.iter().copied())
}

/// A macOS full tunnel's host routes: one per distinct endpoint address of each [`Routing::Halves`]
/// family via that family's default gateway; a warning for a family without one.
fn endpoint_routes(
    config: &TunnelConfig,
    inputs: &PlanInputs,
    routing_of: impl Fn(Family) -> Routing,
    warnings: &mut Vec<PlanWarning>,
) -> Vec<EndpointRoute> {
    let mut routes = Vec::new();
    for family in Family::ALL {
        if routing_of(family) != Routing::Halves {
            continue;
        }
        let mut hosts: Vec<IpAddr> = Vec::new();
        for (_, endpoint) in endpoints(config, inputs) {
            let host = endpoint.ip().to_canonical();
            if Family::of_ip(&host) == family && !hosts.contains(&host) {
                hosts.push(host);
            }
        }
        if hosts.is_empty() {
            continue;
        }
        match inputs.default_gateways.get(&family) {
            Some(gateway) => routes.extend(hosts.into_iter().map(|host| EndpointRoute {
                host,
                gateway: gateway.clone(),
            })),
            None => warnings.push(PlanWarning::NoDefaultGateway {
                family,
                endpoints: hosts,
            }),
        }
    }
    routes
}

/// The first table id from [`FIRST_AUTO_TABLE`] that nothing uses.
fn first_free_table(in_use: &BTreeSet<u32>) -> u32 {
    (FIRST_AUTO_TABLE..=u32::MAX)
        .find(|id| !in_use.contains(id))
        .unwrap_or(FIRST_AUTO_TABLE)
}

/// The MTU when the configuration sets none.
fn derived_mtu(endpoint_mtu: Option<u32>, carries_ipv6: bool) -> u16 {
    let Some(path) = endpoint_mtu else {
        return DEFAULT_MTU;
    };
    let floor = if carries_ipv6 {
        IPV6_MIN_MTU
    } else {
        IPV4_MIN_MTU
    };
    let mtu = path.saturating_sub(WIREGUARD_OVERHEAD);
    u16::try_from(mtu).unwrap_or(u16::MAX).max(floor)
}

/// Refuses an endpoint inside AllowedIPs of its family when that family's routes go into the main
/// table as a split tunnel (see the module docs for why only then: a full-tunnel family of any
/// method keeps the tunnel's own packets out of the tunnel).
fn refuse_routing_loops(
    config: &TunnelConfig,
    inputs: &PlanInputs,
    routing_of: impl Fn(Family) -> Routing,
) -> Result<(), PlanError> {
    for (peer, endpoint) in endpoints(config, inputs) {
        let ip = endpoint.ip().to_canonical();
        let family = Family::of_ip(&ip);
        if routing_of(family) != Routing::Table(MAIN_TABLE) {
            continue;
        }
        let mut all_allowed_ips = config.peers.iter().flat_map(|p| &p.allowed_ips);
        if let Some(&allowed_ip) = all_allowed_ips.find(|n| n.contains(&ip)) {
            return Err(PlanError::EndpointInsideAllowedIps {
                peer,
                endpoint,
                allowed_ip,
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use warren_proto::config::{Hooks, InterfaceConfig, PeerConfig};
    use warren_proto::key::PrivateKey;

    fn nets(list: &[&str]) -> Vec<IpNet> {
        list.iter().map(|s| s.parse().unwrap()).collect()
    }

    fn routes(list: &[&str], table: u32) -> Vec<Route> {
        nets(list)
            .into_iter()
            .map(|prefix| Route { prefix, table })
            .collect()
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

    /// Nothing known about the system, planning for Linux (whatever OS the tests run on).
    fn linux() -> PlanInputs {
        PlanInputs {
            method: FullTunnelMethod::PolicyRouting,
            ..PlanInputs::default()
        }
    }

    /// Plans for Linux with nothing known.
    fn plan(config: &TunnelConfig, ifname: &str) -> Result<NetworkPlan, PlanError> {
        super::plan(config, ifname, &linux())
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
                routes: routes(
                    &["198.18.4.0/24", "fd00:4::/64", "198.18.5.7/32"],
                    MAIN_TABLE
                ),
                sysctls: vec![],
                rules: vec![],
                fwmark: None,
                method: FullTunnelMethod::PolicyRouting,
                full_tunnel_families: vec![],
                endpoint_routes: vec![],
                mark_guard: None,
                warnings: vec![],
            }
        );
        assert!(plan.full_tunnel_families.is_empty());
        assert_eq!(plan.full_tunnel_table(), None);
    }

    #[test]
    fn configured_mtu_wins() {
        let mut config = config(&["198.18.1.1/24"], vec![]);
        config.interface.mtu = Some(1380);
        let inputs = PlanInputs {
            endpoint_mtu: Some(9000),
            ..linux()
        };
        assert_eq!(super::plan(&config, "wg0", &inputs).unwrap().mtu, 1380);
    }

    #[test]
    fn mtu_is_derived_from_the_endpoint_path() {
        let v6 = config(&["198.18.1.1/24", "fd00:1::1/64"], vec![]);
        let v4 = config(&["198.18.1.1/24"], vec![]);
        let mtu = |config: &TunnelConfig, endpoint_mtu| {
            let inputs = PlanInputs {
                endpoint_mtu,
                ..linux()
            };
            super::plan(config, "wg0", &inputs).unwrap().mtu
        };
        assert_eq!(mtu(&v6, Some(1500)), 1420);
        assert_eq!(mtu(&v6, Some(1400)), 1320);
        assert_eq!(mtu(&v6, Some(9000)), 8920);
        assert_eq!(mtu(&v6, None), DEFAULT_MTU);
        // Never below what IPv6 needs when the tunnel carries IPv6...
        assert_eq!(mtu(&v6, Some(1300)), 1280);
        // ...or below 576 for IPv4 alone; and never above what an MTU can be.
        assert_eq!(mtu(&v4, Some(1300)), 1220);
        assert_eq!(mtu(&v4, Some(100)), 576);
        assert_eq!(mtu(&v4, Some(65536)), 65456);
        assert_eq!(mtu(&v4, Some(u32::MAX)), u16::MAX);
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
            routes(
                &["198.18.4.0/24", "fd00:4::/64", "198.18.6.0/24"],
                MAIN_TABLE
            )
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
            routes(&["198.18.2.1/32", "198.18.3.0/24"], MAIN_TABLE)
        );
        // In another table nothing is there yet, so every prefix is routed.
        let config = with_table(config, Table::Id(1234));
        assert_eq!(
            plan(&config, "wg0").unwrap().routes,
            routes(
                &[
                    "198.18.1.0/24",
                    "fd00:1::/64",
                    "198.18.2.1/32",
                    "198.18.3.0/24"
                ],
                1234
            )
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
        assert_eq!(plan.routes, routes(&["198.18.4.0/24"], 1234));
        assert!(plan.rules.is_empty());
        let main = with_table(config.clone(), Table::Id(0));
        assert_eq!(
            super::tests::plan(&main, "wg0").unwrap().routes,
            routes(&["198.18.4.0/24"], MAIN_TABLE)
        );
    }

    fn full_rules(family: Family, fwmark: u32, table: u32) -> [PolicyRule; 2] {
        [
            PolicyRule::NotFwmark {
                family,
                fwmark,
                table,
            },
            PolicyRule::SuppressMainDefault { family },
        ]
    }

    fn src_valid_mark() -> Sysctl {
        Sysctl {
            name: SRC_VALID_MARK.into(),
            value: "1".into(),
        }
    }

    #[test]
    fn full_tunnel_both_families_uses_policy_routing_in_the_first_free_table() {
        let config = config(
            &["198.18.1.1/24", "fd00:1::1/64"],
            vec![peer(&["0.0.0.0/0", "::/0"], Some("198.18.250.2:51820"))],
        );
        let inputs = PlanInputs {
            // 51820 holds someone's routes and 51821 is named by someone's rule.
            tables_in_use: [254, 255, 51820, 51821].into(),
            ..linux()
        };
        let plan = super::plan(&config, "wg0", &inputs).unwrap();
        assert_eq!(plan.routes, routes(&["0.0.0.0/0", "::/0"], 51822));
        let mut rules = full_rules(Family::Ipv4, 51822, 51822).to_vec();
        rules.extend(full_rules(Family::Ipv6, 51822, 51822));
        assert_eq!(plan.rules, rules);
        assert_eq!(plan.sysctls, [src_valid_mark()]);
        assert_eq!(plan.fwmark, Some(51822));
        assert_eq!(plan.full_tunnel_families, [Family::Ipv4, Family::Ipv6]);
        assert_eq!(plan.full_tunnel_table(), Some(51822));
        // Nothing in use: 51820, as wg-quick picks it.
        let plan = super::plan(&config, "wg0", &linux()).unwrap();
        assert_eq!(plan.fwmark, Some(FIRST_AUTO_TABLE));
    }

    #[test]
    fn linux_full_tunnel_gets_the_reverse_path_guard_for_its_full_families_only() {
        // IPv4 full, IPv6 split: only IPv4 is guarded, and only the IPv4 address.
        let config = config(
            &["198.18.1.1/24", "fd00:1::1/64"],
            vec![peer(
                &["0.0.0.0/0", "fd00:4::/64"],
                Some("198.18.250.2:51820"),
            )],
        );
        let plan = super::plan(&config, "wg0", &linux()).unwrap();
        assert_eq!(
            plan.mark_guard,
            Some(MarkGuard {
                ifname: "wg0".into(),
                fwmark: FIRST_AUTO_TABLE,
                families: vec![Family::Ipv4],
                addresses: vec!["198.18.1.1".parse().unwrap()],
            })
        );
        assert!(plan.warnings.is_empty(), "{:?}", plan.warnings);

        // Split tunnels, macOS and Windows have none.
        let split = config_split();
        assert_eq!(
            super::plan(&split, "wg0", &linux()).unwrap().mark_guard,
            None
        );
        for inputs in [macos(), windows()] {
            let plan = super::plan(&config, "wg0", &inputs).unwrap();
            assert_eq!(plan.mark_guard, None, "{:?}", inputs.method);
        }

        // Without nft: no guard, and a warning that says what it costs.
        let inputs = PlanInputs {
            nft_missing: true,
            ..linux()
        };
        let plan = super::plan(&config, "wg0", &inputs).unwrap();
        assert_eq!(plan.mark_guard, None);
        assert_eq!(plan.warnings, [PlanWarning::NoMarkGuard]);
        assert!(plan.warnings[0].to_string().contains("rp_filter=1"));
    }

    fn config_split() -> TunnelConfig {
        config(
            &["198.18.1.1/24"],
            vec![peer(&["198.18.4.0/24"], Some("198.18.250.2:51820"))],
        )
    }

    #[test]
    fn full_tunnel_puts_every_route_of_its_family_in_the_private_table_only() {
        // IPv4 is a full tunnel, IPv6 a split one.
        let config = config(
            &["198.18.1.1/24", "fd00:1::1/64"],
            vec![
                peer(&["198.18.4.0/24", "0.0.0.0/0", "fd00:4::/64"], None),
                peer(&["198.18.1.0/24", "fd00:1::/64", "fd00:5::/64"], None),
            ],
        );
        let plan = plan(&config, "wg0").unwrap();
        assert_eq!(
            plan.routes,
            [
                Route {
                    prefix: "198.18.4.0/24".parse().unwrap(),
                    table: 51820
                },
                Route {
                    prefix: "0.0.0.0/0".parse().unwrap(),
                    table: 51820
                },
                Route {
                    prefix: "fd00:4::/64".parse().unwrap(),
                    table: MAIN_TABLE
                },
                // The private table has no connected route, so this one is needed there.
                Route {
                    prefix: "198.18.1.0/24".parse().unwrap(),
                    table: 51820
                },
                Route {
                    prefix: "fd00:5::/64".parse().unwrap(),
                    table: MAIN_TABLE
                },
            ]
        );
        assert_eq!(plan.rules, full_rules(Family::Ipv4, 51820, 51820));
        assert_eq!(plan.sysctls, [src_valid_mark()]);
    }

    #[test]
    fn ipv6_only_full_tunnel_needs_no_src_valid_mark() {
        let config = config(&["fd00:1::1/64"], vec![peer(&["::/0"], None)]);
        let plan = plan(&config, "wg0").unwrap();
        assert_eq!(plan.rules, full_rules(Family::Ipv6, 51820, 51820));
        assert!(plan.sysctls.is_empty());
    }

    #[test]
    fn full_tunnel_honours_fwmark_and_table() {
        let mut config = config(&["198.18.1.1/24"], vec![peer(&["0.0.0.0/0"], None)]);
        config.interface.fwmark = Some(0x1234);
        let plan = plan(&config, "wg0").unwrap();
        assert_eq!(plan.fwmark, Some(0x1234));
        assert_eq!(plan.rules, full_rules(Family::Ipv4, 0x1234, 51820));

        let config = with_table(config, Table::Id(1000));
        let plan = super::tests::plan(&config, "wg0").unwrap();
        assert_eq!(plan.routes, routes(&["0.0.0.0/0"], 1000));
        assert_eq!(plan.rules, full_rules(Family::Ipv4, 0x1234, 1000));
        assert_eq!(plan.fwmark, Some(0x1234));
    }

    #[test]
    fn full_tunnel_with_table_off_adds_nothing_but_keeps_fwmark() {
        let mut off = with_table(
            config(&["198.18.1.1/24"], vec![peer(&["0.0.0.0/0", "::/0"], None)]),
            Table::Off,
        );
        let plan = plan(&off, "wg0").unwrap();
        assert!(plan.routes.is_empty() && plan.rules.is_empty() && plan.sysctls.is_empty());
        assert_eq!(plan.fwmark, None);
        off.interface.fwmark = Some(7);
        assert_eq!(super::tests::plan(&off, "wg0").unwrap().fwmark, Some(7));
    }

    #[test]
    fn fwmark_alone_marks_a_split_tunnel_without_rules() {
        let mut config = config(&["198.18.1.1/24"], vec![peer(&["198.18.4.0/24"], None)]);
        config.interface.fwmark = Some(7);
        let plan = plan(&config, "wg0").unwrap();
        assert_eq!(plan.fwmark, Some(7));
        assert!(plan.rules.is_empty());
        assert_eq!(plan.routes, routes(&["198.18.4.0/24"], MAIN_TABLE));
    }

    #[test]
    fn full_tunnel_in_the_main_table_is_refused_with_a_clear_message() {
        for (default, table) in [("0.0.0.0/0", 254), ("::/0", 0)] {
            let config = with_table(
                config(
                    &["198.18.1.1/24"],
                    vec![peer(&["198.18.4.0/24", default], None)],
                ),
                Table::Id(table),
            );
            let peer_key = config.peers[0].public_key;
            let err = plan(&config, "wg0").unwrap_err();
            let family = if default == "::/0" { "IPv6" } else { "IPv4" };
            assert_eq!(
                err,
                PlanError::FullTunnelInMainTable {
                    peer: peer_key,
                    allowed_ip: default.parse().unwrap(),
                    family,
                    table,
                }
            );
            let message = err.to_string();
            assert!(
                message.contains(&format!("AllowedIPs = {default}")),
                "{message}"
            );
            assert!(message.contains(&format!("Table = {table}")), "{message}");
            assert!(message.contains(&peer_key.to_string()), "{message}");
            assert!(message.contains("routing loop"), "{message}");
        }
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
    fn resolved_host_name_endpoints_are_checked_too() {
        let mut config = config(&["198.18.1.1/24"], vec![peer(&["198.18.4.0/24"], None)]);
        config.peers[0].endpoint = Some(Endpoint::Host {
            host: "vpn.example.com".into(),
            port: 51820,
        });
        // Unresolved, a name cannot be checked.
        assert!(plan(&config, "wg0").is_ok());
        let peer_key = config.peers[0].public_key;
        let inputs = PlanInputs {
            resolved_endpoints: vec![(peer_key, "198.18.4.9:51820".parse().unwrap())],
            ..linux()
        };
        assert_eq!(
            super::plan(&config, "wg0", &inputs),
            Err(PlanError::EndpointInsideAllowedIps {
                peer: peer_key,
                endpoint: "198.18.4.9:51820".parse().unwrap(),
                allowed_ip: "198.18.4.0/24".parse().unwrap(),
            })
        );
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
    fn endpoint_inside_a_full_tunnel_does_not_loop() {
        // The endpoint is inside 0.0.0.0/0 and inside the more specific 198.18.250.0/24: both
        // routes go into the private table, which the marked packets never consult.
        let config = config(
            &["198.18.1.1/24"],
            vec![peer(
                &["0.0.0.0/0", "198.18.250.0/24"],
                Some("198.18.250.2:51820"),
            )],
        );
        let plan = plan(&config, "wg0").unwrap();
        assert!(plan.routes.iter().all(|r| r.table == 51820));
        // But an IPv6 endpoint inside a split IPv6 prefix routed in main still loops.
        let config = super::tests::config(
            &["198.18.1.1/24"],
            vec![peer(
                &["0.0.0.0/0", "fd00:9::/64"],
                Some("[fd00:9::2]:51820"),
            )],
        );
        assert!(matches!(
            super::tests::plan(&config, "wg0"),
            Err(PlanError::EndpointInsideAllowedIps { .. })
        ));
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
        assert!(plan.addresses.is_empty() && plan.routes.is_empty() && plan.rules.is_empty());
    }

    #[test]
    fn refusals_do_not_depend_on_the_inputs() {
        // What `up` relies on to validate before touching the system.
        let bad = config(
            &["198.18.1.1/24"],
            vec![peer(&["198.18.250.0/24"], Some("198.18.250.2:51820"))],
        );
        let inputs = PlanInputs {
            endpoint_mtu: Some(1400),
            tables_in_use: (51820..51900).collect(),
            resolved_endpoints: vec![],
            method: FullTunnelMethod::PolicyRouting,
            default_gateways: [(
                Family::Ipv4,
                Gateway {
                    address: "198.18.0.1".parse().unwrap(),
                    interface: None,
                },
            )]
            .into(),
            nft_missing: true,
        };
        assert_eq!(
            plan(&bad, "wg0").unwrap_err(),
            super::plan(&bad, "wg0", &inputs).unwrap_err()
        );
    }

    #[test]
    fn rules_read_like_ip_commands() {
        let [not_fwmark, suppress] = full_rules(Family::Ipv6, 0xca6c, 51820);
        assert_eq!(
            not_fwmark.to_string(),
            "IPv6 rule not fwmark 0xca6c table 51820"
        );
        assert_eq!(
            suppress.to_string(),
            "IPv6 rule table main suppress_prefixlength 0"
        );
    }

    // The other OSes' full tunnels, planned here on Linux.

    fn macos() -> PlanInputs {
        PlanInputs {
            method: FullTunnelMethod::Halves,
            default_gateways: gateways(),
            ..PlanInputs::default()
        }
    }

    fn windows() -> PlanInputs {
        PlanInputs {
            method: FullTunnelMethod::BoundSockets,
            default_gateways: gateways(),
            ..PlanInputs::default()
        }
    }

    fn gateway4() -> Gateway {
        Gateway {
            address: "198.18.0.1".parse().unwrap(),
            interface: Some("en0".into()),
        }
    }

    fn gateway6() -> Gateway {
        Gateway {
            address: "fe80::1".parse().unwrap(),
            interface: Some("en0".into()),
        }
    }

    fn gateways() -> BTreeMap<Family, Gateway> {
        [(Family::Ipv4, gateway4()), (Family::Ipv6, gateway6())].into()
    }

    fn endpoint_route(host: &str, gateway: Gateway) -> EndpointRoute {
        EndpointRoute {
            host: host.parse().unwrap(),
            gateway,
        }
    }

    /// What only Linux's policy routing has: none of it on macOS or Windows.
    fn assert_no_policy_routing(plan: &NetworkPlan) {
        assert!(plan.rules.is_empty(), "{:?}", plan.rules);
        assert!(plan.sysctls.is_empty(), "{:?}", plan.sysctls);
        assert_eq!(plan.fwmark, None);
        assert_eq!(plan.full_tunnel_table(), None);
        assert!(plan.routes.iter().all(|r| r.table == MAIN_TABLE));
    }

    #[test]
    fn the_native_method_is_this_oses() {
        let expected = if cfg!(target_os = "macos") {
            FullTunnelMethod::Halves
        } else if cfg!(windows) {
            FullTunnelMethod::BoundSockets
        } else {
            FullTunnelMethod::PolicyRouting
        };
        assert_eq!(FullTunnelMethod::native(), expected);
        assert_eq!(PlanInputs::default().method, expected);
    }

    #[test]
    fn macos_ipv4_full_tunnel_routes_the_halves_and_the_endpoint_via_the_gateway() {
        let config = config(
            &["198.18.1.1/24"],
            vec![peer(
                &["0.0.0.0/0", "198.18.7.0/24"],
                Some("198.18.250.2:51820"),
            )],
        );
        let plan = super::plan(&config, "utun5", &macos()).unwrap();
        assert_no_policy_routing(&plan);
        assert_eq!(
            plan.routes,
            routes(&["0.0.0.0/1", "128.0.0.0/1", "198.18.7.0/24"], MAIN_TABLE)
        );
        assert_eq!(
            plan.endpoint_routes,
            [endpoint_route("198.18.250.2", gateway4())]
        );
        assert_eq!(plan.method, FullTunnelMethod::Halves);
        assert_eq!(plan.full_tunnel_families, [Family::Ipv4]);
        assert!(plan.warnings.is_empty(), "{:?}", plan.warnings);
        assert_eq!(
            plan.routing_summary(),
            "full tunnel (IPv4) by the halves 0.0.0.0/1 + 128.0.0.0/1 over the default route, 1 \
             endpoint host route(s) via the default gateway"
        );
    }

    #[test]
    fn macos_ipv6_full_tunnel_routes_the_halves_and_the_endpoint_via_the_link_local_gateway() {
        let config = config(
            &["fd00:1::1/64"],
            vec![peer(&["::/0"], Some("[fd00:9::2]:51820"))],
        );
        let plan = super::plan(&config, "utun5", &macos()).unwrap();
        assert_no_policy_routing(&plan);
        assert_eq!(plan.routes, routes(&["::/1", "8000::/1"], MAIN_TABLE));
        assert_eq!(
            plan.endpoint_routes,
            [endpoint_route("fd00:9::2", gateway6())]
        );
        assert_eq!(plan.full_tunnel_families, [Family::Ipv6]);
        assert_eq!(plan.endpoint_routes[0].gateway.to_string(), "fe80::1%en0");
    }

    #[test]
    fn macos_dual_stack_full_tunnel_routes_both_families_and_each_endpoint_once() {
        let config = config(
            &["198.18.1.1/24", "fd00:1::1/64"],
            vec![
                peer(&["0.0.0.0/0", "::/0"], Some("198.18.250.2:51820")),
                peer(&["198.18.8.0/24"], Some("[fd00:9::2]:51820")),
                // The same host on another port, and as an IPv4-mapped address: one route.
                peer(&["198.18.9.0/24"], Some("[::ffff:198.18.250.2]:51821")),
            ],
        );
        let plan = super::plan(&config, "utun5", &macos()).unwrap();
        assert_no_policy_routing(&plan);
        assert_eq!(
            plan.routes,
            routes(
                &[
                    "0.0.0.0/1",
                    "128.0.0.0/1",
                    "::/1",
                    "8000::/1",
                    "198.18.8.0/24",
                    "198.18.9.0/24"
                ],
                MAIN_TABLE
            )
        );
        assert_eq!(
            plan.endpoint_routes,
            [
                endpoint_route("198.18.250.2", gateway4()),
                endpoint_route("fd00:9::2", gateway6()),
            ]
        );
        assert_eq!(plan.full_tunnel_families, [Family::Ipv4, Family::Ipv6]);
        assert!(plan.routing_summary().contains(
            "by the halves 0.0.0.0/1 + 128.0.0.0/1 and ::/1 + 8000::/1 over the default route, 2 \
             endpoint host route(s)"
        ));
    }

    #[test]
    fn macos_full_tunnel_host_routes_a_resolved_host_name_endpoint() {
        let mut config = config(&["198.18.1.1/24"], vec![peer(&["0.0.0.0/0"], None)]);
        config.peers[0].endpoint = Some(Endpoint::Host {
            host: "vpn.example.com".into(),
            port: 51820,
        });
        let inputs = PlanInputs {
            resolved_endpoints: vec![(
                config.peers[0].public_key,
                "198.18.250.7:51820".parse().unwrap(),
            )],
            ..macos()
        };
        let plan = super::plan(&config, "utun5", &inputs).unwrap();
        assert_eq!(
            plan.endpoint_routes,
            [endpoint_route("198.18.250.7", gateway4())]
        );
        // Unresolved, there is nothing to route.
        let plan = super::plan(&config, "utun5", &macos()).unwrap();
        assert!(plan.endpoint_routes.is_empty() && plan.warnings.is_empty());
    }

    #[test]
    fn macos_full_tunnel_without_a_default_gateway_has_no_endpoint_route_and_says_so() {
        let config = config(
            &["198.18.1.1/24", "fd00:1::1/64"],
            vec![peer(
                &["0.0.0.0/0", "::/0", "198.18.250.0/24"],
                Some("198.18.250.2:51820"),
            )],
        );
        // Only an IPv6 gateway is known; the endpoint is IPv4 (and inside a more specific
        // AllowedIPs prefix, which the host route would have beaten: still not refused).
        let inputs = PlanInputs {
            default_gateways: [(Family::Ipv6, gateway6())].into(),
            ..macos()
        };
        let plan = super::plan(&config, "utun5", &inputs).unwrap();
        assert!(plan.endpoint_routes.is_empty());
        assert_eq!(
            plan.warnings,
            [PlanWarning::NoDefaultGateway {
                family: Family::Ipv4,
                endpoints: vec!["198.18.250.2".parse().unwrap()],
            }]
        );
        assert_eq!(
            plan.warnings[0].to_string(),
            "no IPv4 default gateway is known, so endpoint 198.18.250.2 gets no host route: until \
             the network has a default route, the tunnel's own packets to it would be routed into \
             the tunnel"
        );
        assert!(plan
            .routing_summary()
            .ends_with("0 endpoint host route(s) via the default gateway"));
        // Validation knows no gateway either, and must not refuse.
        let validation = PlanInputs {
            method: FullTunnelMethod::Halves,
            ..PlanInputs::default()
        };
        assert!(super::plan(&config, "utun5", &validation).is_ok());
    }

    #[test]
    fn macos_and_windows_with_table_off_add_no_routes_at_all() {
        let config = with_table(
            config(
                &["198.18.1.1/24", "fd00:1::1/64"],
                vec![peer(&["0.0.0.0/0", "::/0"], Some("198.18.250.2:51820"))],
            ),
            Table::Off,
        );
        for inputs in [macos(), windows()] {
            let plan = super::plan(&config, "tun0", &inputs).unwrap();
            assert_no_policy_routing(&plan);
            assert!(plan.routes.is_empty() && plan.endpoint_routes.is_empty());
            assert!(plan.full_tunnel_families.is_empty() && plan.warnings.is_empty());
            assert_eq!(plan.routing_summary(), "no routes");
            assert_eq!(plan.addresses, nets(&["198.18.1.1/24", "fd00:1::1/64"]));
        }
    }

    #[test]
    fn macos_and_windows_refuse_a_numbered_table_and_take_main_as_their_one_table() {
        for (inputs, os) in [(macos(), "macOS"), (windows(), "Windows")] {
            let split = config(&["198.18.1.1/24"], vec![peer(&["198.18.4.0/24"], None)]);
            let err = super::plan(&with_table(split.clone(), Table::Id(1234)), "tun0", &inputs)
                .unwrap_err();
            assert_eq!(err, PlanError::NoNumberedTables { table: 1234, os });
            assert_eq!(
                err.to_string(),
                format!(
                    "Table = 1234 names a routing table, but {os} has only one: use Table = auto \
                     (or main) for routes in it, or Table = off for no routes"
                )
            );
            let full = config(&["198.18.1.1/24"], vec![peer(&["0.0.0.0/0"], None)]);
            let auto = super::plan(&full, "tun0", &inputs).unwrap();
            for main in [0, MAIN_TABLE] {
                let plan = super::plan(&with_table(full.clone(), Table::Id(main)), "tun0", &inputs);
                assert_eq!(plan.unwrap(), auto, "Table = {main} on {os}");
            }
        }
    }

    #[test]
    fn windows_full_tunnel_routes_the_default_routes_themselves_in_the_one_table() {
        let v4 = config(
            &["198.18.1.1/24"],
            vec![peer(
                &["0.0.0.0/0", "198.18.7.0/24"],
                Some("198.18.250.2:51820"),
            )],
        );
        let plan = super::plan(&v4, "wg0", &windows()).unwrap();
        assert_no_policy_routing(&plan);
        assert_eq!(
            plan.routes,
            routes(&["0.0.0.0/0", "198.18.7.0/24"], MAIN_TABLE)
        );
        // The bound sockets keep the tunnel's packets off it: no endpoint route, no warning.
        assert!(plan.endpoint_routes.is_empty() && plan.warnings.is_empty());
        assert_eq!(plan.full_tunnel_families, [Family::Ipv4]);
        assert_eq!(
            plan.routing_summary(),
            "full tunnel (IPv4) by default routes through wg0, the tunnel's own sockets bound to \
             the best other interface"
        );

        let v6 = config(
            &["fd00:1::1/64"],
            vec![peer(&["::/0"], Some("[fd00:9::2]:51820"))],
        );
        let plan = super::plan(&v6, "wg0", &windows()).unwrap();
        assert_no_policy_routing(&plan);
        assert_eq!(plan.routes, routes(&["::/0"], MAIN_TABLE));
        assert_eq!(plan.full_tunnel_families, [Family::Ipv6]);

        let dual = config(
            &["198.18.1.1/24", "fd00:1::1/64"],
            vec![peer(&["0.0.0.0/0", "::/0"], Some("[fd00:9::2]:51820"))],
        );
        let plan = super::plan(&dual, "wg0", &windows()).unwrap();
        assert_no_policy_routing(&plan);
        assert_eq!(plan.routes, routes(&["0.0.0.0/0", "::/0"], MAIN_TABLE));
        assert_eq!(plan.full_tunnel_families, [Family::Ipv4, Family::Ipv6]);
        assert!(plan
            .routing_summary()
            .starts_with("full tunnel (IPv4, IPv6) by default routes"));
    }

    #[test]
    fn windows_full_tunnel_with_the_endpoint_inside_is_not_a_routing_loop() {
        // Today's Linux refusal for the main table would fire here; the bound sockets never take
        // the tunnel's routes, so Windows plans it.
        let config = config(
            &["198.18.1.1/24"],
            vec![peer(
                &["0.0.0.0/0", "198.18.250.0/24"],
                Some("198.18.250.2:51820"),
            )],
        );
        let plan = super::plan(&config, "wg0", &windows()).unwrap();
        assert!(plan.routes.contains(&Route {
            prefix: "198.18.250.0/24".parse().unwrap(),
            table: MAIN_TABLE
        }));
        let inputs = PlanInputs {
            method: FullTunnelMethod::BoundSockets,
            ..PlanInputs::default()
        };
        assert!(super::plan(&config, "wg0", &inputs).is_ok());
    }

    #[test]
    fn a_split_tunnel_plans_the_same_on_every_os_and_still_refuses_loops() {
        let split = config(
            &["198.18.1.1/24", "fd00:1::1/64"],
            vec![peer(
                &["198.18.4.0/24", "fd00:4::/64"],
                Some("198.18.250.2:51820"),
            )],
        );
        let linux_plan = plan(&split, "tun0").unwrap();
        for inputs in [macos(), windows()] {
            let plan = super::plan(&split, "tun0", &inputs).unwrap();
            assert_eq!(plan.routes, linux_plan.routes);
            assert_no_policy_routing(&plan);
            assert!(plan.endpoint_routes.is_empty() && plan.warnings.is_empty());
            assert_eq!(plan.routing_summary(), "split tunnel");
        }
        // An endpoint inside a split family's AllowedIPs loops on every OS...
        let looping = config(
            &["198.18.1.1/24"],
            vec![peer(&["198.18.250.0/24"], Some("198.18.250.2:51820"))],
        );
        // ...and in a split IPv6 family next to a full IPv4 one.
        let mixed = config(
            &["198.18.1.1/24"],
            vec![peer(
                &["0.0.0.0/0", "fd00:9::/64"],
                Some("[fd00:9::2]:51820"),
            )],
        );
        for inputs in [linux(), macos(), windows()] {
            for config in [&looping, &mixed] {
                assert!(
                    matches!(
                        super::plan(config, "tun0", &inputs),
                        Err(PlanError::EndpointInsideAllowedIps { .. })
                    ),
                    "{:?}",
                    inputs.method
                );
            }
        }
    }

    #[test]
    fn fwmark_is_ignored_with_a_warning_where_there_are_no_marks() {
        let mut config = config(&["198.18.1.1/24"], vec![peer(&["0.0.0.0/0"], None)]);
        config.interface.fwmark = Some(0x1234);
        for (inputs, text) in [
            (macos(), "macOS has no packet marks, and a full tunnel keeps its own packets off the tunnel by host routes to the endpoints instead"),
            (windows(), "Windows has no packet marks, and a full tunnel keeps its own packets off the tunnel by binding its sockets to another interface instead"),
        ] {
            let plan = super::plan(&config, "tun0", &inputs).unwrap();
            assert_no_policy_routing(&plan);
            assert_eq!(
                plan.warnings,
                [PlanWarning::FwMarkIgnored {
                    fwmark: 0x1234,
                    method: inputs.method
                }]
            );
            assert_eq!(
                plan.warnings[0].to_string(),
                format!("FwMark = 0x1234 is ignored: {text}")
            );
        }
        // Linux uses it, and says nothing.
        let plan = plan(&config, "wg0").unwrap();
        assert_eq!(plan.fwmark, Some(0x1234));
        assert!(plan.warnings.is_empty());
    }

    #[test]
    fn the_linux_summary_names_table_and_mark() {
        let config = config(
            &["198.18.1.1/24", "fd00:1::1/64"],
            vec![peer(&["0.0.0.0/0", "::/0"], None)],
        );
        assert_eq!(
            plan(&config, "wg0").unwrap().routing_summary(),
            "full tunnel (IPv4, IPv6) through table 51820, fwmark 0xca6c"
        );
        let split = super::tests::config(&["198.18.1.1/24"], vec![peer(&["198.18.4.0/24"], None)]);
        assert_eq!(
            plan(&split, "wg0").unwrap().routing_summary(),
            "split tunnel"
        );
        assert_eq!(
            plan(&with_table(split, Table::Off), "wg0")
                .unwrap()
                .routing_summary(),
            "no routes"
        );
    }

    #[test]
    fn gateways_read_as_route_takes_them() {
        assert_eq!(gateway4().to_string(), "198.18.0.1");
        assert_eq!(gateway6().to_string(), "fe80::1%en0");
        let global = Gateway {
            address: "fd00::1".parse().unwrap(),
            interface: Some("en0".into()),
        };
        assert_eq!(global.to_string(), "fd00::1");
        assert_eq!(Family::Ipv6.halves(), *nets(&["::/1", "8000::/1"]));
        assert_eq!(Family::Ipv4.halves(), *nets(&["0.0.0.0/1", "128.0.0.0/1"]));
    }
}
