//! The platform layer: what a tunnel changes on the host outside its own sockets — the tunnel
//! interface's addresses, MTU and link state, the routes for its peers' AllowedIPs, and for a full
//! tunnel what its OS's method needs: on Linux the policy routing rules and the `src_valid_mark`
//! sysctl, on macOS host routes to the endpoints via the default gateway (here); DNS ([`dns`]) and
//! the kill switch ([`firewall`]) in their own modules, on the same journal contract; the network
//! monitor that tells a running tunnel when the network under it changed in [`monitor`].
//!
//! It works in two halves, "plan, then apply":
//! - [`plan`] is a pure function from a [`TunnelConfig`] and a few read-only facts about the system
//!   ([`PlanInputs`], gathered by [`read_inputs`]: the path MTU to the endpoint, the routing tables
//!   in use, the default gateways; plus the OS's [`FullTunnelMethod`]) to a [`NetworkPlan`]:
//!   addresses, MTU, routes in which table, endpoint host routes, rules, sysctls, and the fwmark
//!   for the tunnel's UDP sockets. It refuses what cannot work (a routing loop, a duplicate
//!   address, a numbered table where the OS has one table) with an error that names the values.
//!   All the policy lives there (`plan.rs`), for every OS, so it is unit-tested without root.
//! - [`apply`] executes a plan against the OS, step by step, handing each step to the journal as a
//!   [`NetworkChange`] *before* making it (see [`crate::journal`]): plain, serialisable data that
//!   carries everything its undo needs (interface name and index, table, the sysctl's previous
//!   value, an endpoint route's gateway), so a later process can undo it after a crash. A step the OS refuses is withdrawn from
//!   the journal again ([`Recorder::not_made`]): it was not made, and undoing it could remove
//!   something that belongs to someone else (the route that was in the way). `apply` stops at the
//!   first failure without rolling back; the caller undoes the journal newest-first with
//!   [`undo_change`], which dispatches to [`undo`] here, `dns::undo` and `firewall::undo`.
//! - [`undo`] reverts one change and is idempotent: what is already gone — an address or route on
//!   an interface that has closed (a TUN disappears with its process, taking its addresses and
//!   routes with it), or on an interface of the same name that is not the one Warren changed (its
//!   index differs), a rule someone removed, an endpoint host route no longer there, a sysctl
//!   already back at its old value — counts as undone. A sysctl that someone else changed since
//!   Warren set it is left as they set it.
//! - Sysctls are global to the network namespace and shared between tunnels (two full tunnels
//!   both need `src_valid_mark`): the live journals are the reference count. A tunnel that finds
//!   the setting already set by another tunnel journals it with that tunnel's `previous`, and the
//!   journal's undo keeps the value while another journal still holds it, both under one lock
//!   (`crate::sys::setting_lock`); so whichever tunnel goes last restores the true original.
//!
//! Per-OS code is chosen once, below: each OS module implements the private [`NetworkOps`] trait —
//! a handful of primitive steps (find the link, add/remove an address, a route, a host route via a
//! gateway or a rule, set the MTU, set the link up, read/write a sysctl, look up the route MTU to
//! a host, the default gateway of a family, list the routing tables in use). The ordering, the journaling and the undo logic are written once, here, on top
//! of that trait, so the OS modules cannot drift and the logic is tested with an in-memory double.
//! The steps added for full tunnels have default bodies (unsupported, or "unknown" for the
//! read-only ones) so an OS module only implements what its OS does. No `#[cfg]` appears in a
//! public signature; OSes without a real module get `unsupported`, whose every step fails with
//! [`Unsupported`].
//!
//! The change of any concern as one journaled type, the [`Recorder`] contract and the undo
//! dispatcher ([`undo_change`]) are the platform's too (`change.rs`): the journal keeps them and
//! calls back, and depends on the platform, never the other way.
//!
//! What it must not do: remove the tunnel interface itself (a TUN disappears when its fd closes),
//! or touch anything it did not add.

mod change;
pub mod dns;
pub mod firewall;
#[cfg_attr(not(target_os = "linux"), allow(dead_code))]
mod mark_guard;
pub mod monitor;
mod plan;
mod replan;

pub use change::{undo_change, Change, Recorder, SharedRecorder, SysctlHolder};
pub use replan::{
    follow_endpoints, mtu_follows_path, reapply, replan, routes_follow_endpoints, Replan,
};

#[cfg(target_os = "linux")]
mod linux;
#[cfg(target_os = "linux")]
use linux as imp;

#[cfg(target_os = "macos")]
mod macos;
// Pure: compiled and tested everywhere, called only on macOS.
#[cfg_attr(not(target_os = "macos"), allow(dead_code))]
mod macos_commands;
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

// Part of the API for the CLI and the daemon; not every item has a caller in every build yet.
#[allow(unused_imports)]
pub use plan::{
    plan, EndpointRoute, Family, FullTunnelMethod, Gateway, NetworkPlan, PlanError, PlanInputs,
    PlanWarning, PolicyRule, Route, Sysctl, DEFAULT_MTU, FIRST_AUTO_TABLE, MAIN_TABLE,
    SRC_VALID_MARK, WIREGUARD_OVERHEAD,
};

use anyhow::anyhow;
use ipnet::IpNet;
#[cfg(target_os = "linux")]
use linux::{nft_found, strict_reverse_path_filter};
use mark_guard::MarkGuard;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::io;
use std::net::IpAddr;

#[cfg(doc)]
use warren_proto::config::TunnelConfig;

/// The error a step returns on an OS that has no implementation for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("{what} is not supported on {os} yet")]
pub struct Unsupported {
    /// What was attempted, e.g. "configuring tunnel addresses and routes".
    pub what: &'static str,
    /// `std::env::consts::OS`.
    pub os: &'static str,
}

/// The interface a change was made on: by name, and by index, which tells the interface Warren
/// changed from a later one that happens to get the same name.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Link {
    /// The interface name, e.g. `wg0`.
    pub name: String,
    /// The interface index when the change was made.
    pub index: u32,
}

/// One change [`apply`] makes to the system, journaled before it is made.
///
/// Plain, serialisable data with everything its undo needs, so that a process that did not make
/// the change (the next start after a crash) can undo it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NetworkChange {
    /// `ip address add <address> dev <link>`.
    AddressAdded {
        /// The interface.
        link: Link,
        /// The address with its prefix length.
        address: IpNet,
    },
    /// `ip link set <link> mtu <mtu>`. Not reverted: the link belongs to the tunnel.
    MtuSet {
        /// The interface.
        link: Link,
        /// The MTU set.
        mtu: u16,
    },
    /// `ip link set <link> up`. Not reverted: the link belongs to the tunnel.
    LinkUp {
        /// The interface.
        link: Link,
    },
    /// A Windows full tunnel's interface metric set to 0 for one family (automatic metric off),
    /// as wireguard-windows does (`tunnel/addressconfig.go`): the tunnel's `0.0.0.0/0` / `::/0`
    /// then beats the physical default route, whose route metric + interface metric is higher.
    /// Not reverted: the adapter belongs to the tunnel.
    MetricLowered {
        /// The interface.
        link: Link,
        /// The family whose interface settings changed.
        family: Family,
    },
    /// `ip route add <route> dev <link> table <table>`.
    RouteAdded {
        /// The interface the route goes through.
        link: Link,
        /// The destination prefix.
        route: IpNet,
        /// The routing table id ([`MAIN_TABLE`] for the main table).
        table: u32,
    },
    /// `route -n add -host <host> <gateway>` (a macOS full tunnel's): the endpoint's host route
    /// outside the tunnel. Not on the tunnel's interface, so it outlives the tunnel unless undone.
    EndpointRouteAdded {
        /// The endpoint's address; the route is `/32` or `/128`.
        host: IpAddr,
        /// The default gateway it goes through, as it was when the route was added.
        gateway: Gateway,
    },
    /// `ip rule add ...` (a full tunnel's policy routing).
    RuleAdded {
        /// The rule.
        rule: PolicyRule,
    },
    /// `nft -f -` of a Linux full tunnel's reverse-path guard: the table `inet <table>` (see
    /// [`mark_guard`]). Not on the tunnel's interface, so it outlives the tunnel unless undone.
    MarkGuardAdded {
        /// The table's name (`warren_rp_<interface>`).
        table: String,
    },
    /// `sysctl <name>=<value>`, which was `<previous>` before.
    SysctlSet {
        /// The dotted name, e.g. `net.ipv4.conf.all.src_valid_mark`.
        name: String,
        /// The value set.
        value: String,
        /// The value before, restored by undo.
        previous: String,
    },
}

impl NetworkChange {
    /// The verb for making it: "add" or "set".
    fn verb(&self) -> &'static str {
        match self {
            NetworkChange::AddressAdded { .. }
            | NetworkChange::RouteAdded { .. }
            | NetworkChange::EndpointRouteAdded { .. }
            | NetworkChange::MarkGuardAdded { .. }
            | NetworkChange::RuleAdded { .. } => "add",
            NetworkChange::MtuSet { .. }
            | NetworkChange::LinkUp { .. }
            | NetworkChange::MetricLowered { .. }
            | NetworkChange::SysctlSet { .. } => "set",
        }
    }

    /// The verb for undoing it: "remove" or "restore".
    fn undo_verb(&self) -> &'static str {
        match self {
            NetworkChange::SysctlSet { .. } => "restore",
            _ => "remove",
        }
    }
}

impl fmt::Display for NetworkChange {
    /// In `ip` command style: `route 0.0.0.0/0 dev wg0 table 51820`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NetworkChange::AddressAdded { link, address } => {
                write!(f, "address {address} dev {}", link.name)
            }
            NetworkChange::MtuSet { link, mtu } => write!(f, "mtu {mtu} on {}", link.name),
            NetworkChange::LinkUp { link } => write!(f, "link {} up", link.name),
            NetworkChange::MetricLowered { link, family } => {
                write!(f, "{} interface metric 0 on {}", family.name(), link.name)
            }
            NetworkChange::RouteAdded { link, route, table } if *table == MAIN_TABLE => {
                write!(f, "route {route} dev {}", link.name)
            }
            NetworkChange::RouteAdded { link, route, table } => {
                write!(f, "route {route} dev {} table {table}", link.name)
            }
            NetworkChange::EndpointRouteAdded { host, gateway } => {
                write!(f, "host route {host} via {gateway}")
            }
            NetworkChange::RuleAdded { rule } => write!(f, "{rule}"),
            NetworkChange::MarkGuardAdded { table } => {
                write!(f, "nftables table {} {table}", mark_guard::TABLE_FAMILY)
            }
            NetworkChange::SysctlSet {
                name,
                value,
                previous,
            } => write!(f, "sysctl {name} = {value} (was {previous})"),
        }
    }
}

/// Applies `plan` to the system, journaling each change in `journal` before making it: finds the
/// interface, adds each address, sets the MTU, sets the link up, adds the endpoints' host routes
/// (before any route that could draw their packets into the tunnel), adds each route in its table,
/// sets the sysctls (only those not already at the value, or already set by another live tunnel,
/// whose original value then goes into this journal too; see [`apply_sysctl`]),
/// and adds the policy rules — in that order. Stops at the first failure without rolling back (the
/// caller undoes the journal, newest first); the failed step itself is withdrawn from the journal,
/// and the error names it and its value, e.g. `failed to add route 198.18.4.0/24 dev wg0: File
/// exists`.
pub async fn apply(
    plan: &NetworkPlan,
    journal: &mut impl Recorder<NetworkChange>,
) -> anyhow::Result<()> {
    let mut ops = <imp::Ops as NetworkOps>::connect().await?;
    apply_with(&mut ops, plan, journal).await
}

/// Reverts one network change (see the module docs); idempotent. Logs what it did at debug level.
pub async fn undo(change: &NetworkChange) -> anyhow::Result<()> {
    if matches!(
        change,
        NetworkChange::MtuSet { .. }
            | NetworkChange::LinkUp { .. }
            | NetworkChange::MetricLowered { .. }
    ) {
        // Nothing to restore, and no reason to open a netlink socket.
        return Ok(());
    }
    let mut ops = <imp::Ops as NetworkOps>::connect().await?;
    undo_with(&mut ops, change).await
}

/// Reads what [`plan`] needs to know about the system, changing nothing: the MTU of the path to
/// `endpoint` (the first peer's; `None` leaves it unknown), the routing tables in use and each
/// family's default gateway (what the OS cannot tell is left unknown). The method is this OS's
/// ([`FullTunnelMethod::native`]); [`PlanInputs::resolved_endpoints`] is left for the caller.
pub async fn read_inputs(endpoint: Option<IpAddr>) -> anyhow::Result<PlanInputs> {
    let mut ops = <imp::Ops as NetworkOps>::connect().await?;
    read_inputs_with(&mut ops, endpoint).await
}

/// A network interface as the OS reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct LinkInfo {
    /// The interface index.
    index: u32,
}

/// The outcome of a removal that did not fail.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Removal {
    /// The OS removed it.
    Removed,
    /// It was not there any more (the interface is gone, or someone else removed it).
    AlreadyGone,
}

/// An `io::Error` carrying [`Unsupported`] for `what` on this OS.
fn unsupported<T>(what: &'static str) -> io::Result<T> {
    Err(io::Error::new(
        io::ErrorKind::Unsupported,
        Unsupported {
            what,
            os: std::env::consts::OS,
        },
    ))
}

/// The primitive steps each OS module implements. Private: the facade above is the only caller,
/// and the ordering, journaling and undo logic live in the facade, not here.
///
/// Errors are `io::Error`s carrying the OS error code where there is one, so messages read like
/// `File exists`. The methods with default bodies came with full tunnels; an OS module overrides
/// those its OS supports.
trait NetworkOps: Sized {
    /// Opens whatever the OS needs (on Linux, a netlink socket whose connection task is spawned on
    /// the current tokio runtime).
    async fn connect() -> anyhow::Result<Self>;
    /// Looks an interface up by name; a missing one is `ENODEV` ("No such device") or an error of
    /// kind `NotFound` (undo relies on it to know the interface is gone).
    async fn link(&mut self, ifname: &str) -> io::Result<LinkInfo>;
    /// Adds `address` (host bits kept: it is the interface's own address) to the interface.
    async fn add_address(&mut self, link: u32, address: IpNet) -> io::Result<()>;
    /// Removes an address added by [`NetworkOps::add_address`].
    async fn remove_address(&mut self, link: u32, address: IpNet) -> io::Result<Removal>;
    /// Sets the interface MTU.
    async fn set_mtu(&mut self, link: u32, mtu: u16) -> io::Result<()>;
    /// Sets the interface administratively up.
    async fn set_up(&mut self, link: u32) -> io::Result<()>;
    /// Adds a route for `route` through the interface in table `table`.
    async fn add_route(&mut self, link: u32, route: IpNet, table: u32) -> io::Result<()>;
    /// Removes a route added by [`NetworkOps::add_route`].
    async fn remove_route(&mut self, link: u32, route: IpNet, table: u32) -> io::Result<Removal>;

    /// Sets the interface's metric for `family` to 0, automatic metric off (a Windows full
    /// tunnel's, [`NetworkChange::MetricLowered`]).
    async fn lower_metric(&mut self, _link: u32, _family: Family) -> io::Result<()> {
        unsupported("interface metrics")
    }

    /// Adds a policy routing rule (a full tunnel's).
    async fn add_rule(&mut self, _rule: &PolicyRule) -> io::Result<()> {
        unsupported("policy routing rules")
    }
    /// Removes a rule added by [`NetworkOps::add_rule`].
    async fn remove_rule(&mut self, _rule: &PolicyRule) -> io::Result<Removal> {
        unsupported("policy routing rules")
    }
    /// Reads a kernel setting by its dotted name, trimmed.
    async fn read_sysctl(&mut self, _name: &str) -> io::Result<String> {
        unsupported("kernel settings (sysctl)")
    }
    /// Writes a kernel setting by its dotted name.
    async fn write_sysctl(&mut self, _name: &str, _value: &str) -> io::Result<()> {
        unsupported("kernel settings (sysctl)")
    }
    /// The MTU of the path to `destination`: the route's MTU, else its interface's. `None` when
    /// there is no route or the OS cannot tell.
    async fn route_mtu(&mut self, _destination: IpAddr) -> io::Result<Option<u32>> {
        Ok(None)
    }
    /// The ids of the routing tables that hold a route or are named by a rule. Empty when the OS
    /// has no numbered tables.
    async fn tables_in_use(&mut self) -> io::Result<BTreeSet<u32>> {
        Ok(BTreeSet::new())
    }
    /// The next hop of the system's default route of `family`. `None` when there is none (no
    /// default route, or one without a next hop), or the OS module does not read it (only the
    /// macOS plan uses it).
    async fn default_gateway(&mut self, _family: Family) -> io::Result<Option<Gateway>> {
        Ok(None)
    }
    /// Adds a host route to `host` (`/32` or `/128`) via `gateway`, outside the tunnel (a macOS
    /// full tunnel's endpoint route).
    async fn add_host_route(&mut self, _host: IpAddr, _gateway: &Gateway) -> io::Result<()> {
        unsupported("host routes to the endpoints")
    }
    /// Removes a route added by [`NetworkOps::add_host_route`].
    async fn remove_host_route(
        &mut self,
        _host: IpAddr,
        _gateway: &Gateway,
    ) -> io::Result<Removal> {
        unsupported("host routes to the endpoints")
    }
    /// Loads a Linux full tunnel's reverse-path guard (replacing a table of the same name).
    async fn add_mark_guard(&mut self, _guard: &MarkGuard) -> io::Result<()> {
        unsupported("nftables")
    }
    /// Removes the guard table `table` added by [`NetworkOps::add_mark_guard`].
    async fn remove_mark_guard(&mut self, _table: &str) -> io::Result<Removal> {
        unsupported("nftables")
    }
}

/// An OS error without the " (os error N)" suffix that `io::Error` adds: `File exists`.
fn describe(err: &io::Error) -> String {
    let text = err.to_string();
    match text.rfind(" (os error ") {
        Some(cut) if text.ends_with(')') => text[..cut].to_owned(),
        _ => text,
    }
}

/// The steps of `plan` on `link`, in order. The sysctls' previous values are filled in by
/// [`apply_with`] when it gets to them.
fn steps(plan: &NetworkPlan, link: &Link) -> Vec<NetworkChange> {
    let mut steps: Vec<NetworkChange> = plan
        .addresses
        .iter()
        .map(|&address| NetworkChange::AddressAdded {
            link: link.clone(),
            address,
        })
        .collect();
    steps.push(NetworkChange::MtuSet {
        link: link.clone(),
        mtu: plan.mtu,
    });
    steps.push(NetworkChange::LinkUp { link: link.clone() });
    // wireguard-windows lowers the metric of each family the tunnel carries a default route for.
    if plan.method == FullTunnelMethod::BoundSockets {
        steps.extend(plan.full_tunnel_families.iter().map(|&family| {
            NetworkChange::MetricLowered {
                link: link.clone(),
                family,
            }
        }));
    }
    // The endpoints' host routes before the routes through the tunnel: from the moment the halves
    // exist, the tunnel's own packets must already have their way out.
    steps.extend(
        plan.endpoint_routes
            .iter()
            .map(|route| NetworkChange::EndpointRouteAdded {
                host: route.host,
                gateway: route.gateway.clone(),
            }),
    );
    steps.extend(plan.routes.iter().map(|route| NetworkChange::RouteAdded {
        link: link.clone(),
        route: route.prefix,
        table: route.table,
    }));
    // The guard and the sysctl before the rules: once the rules steer traffic, the endpoint's
    // replies must already get their mark back, and reverse-path filtering must see it.
    steps.extend(
        plan.mark_guard
            .iter()
            .map(|guard| NetworkChange::MarkGuardAdded {
                table: guard.table(),
            }),
    );
    steps.extend(plan.sysctls.iter().map(|sysctl| NetworkChange::SysctlSet {
        name: sysctl.name.clone(),
        value: sysctl.value.clone(),
        previous: String::new(),
    }));
    steps.extend(
        plan.rules
            .iter()
            .map(|&rule| NetworkChange::RuleAdded { rule }),
    );
    steps
}

async fn apply_with<O: NetworkOps>(
    ops: &mut O,
    plan: &NetworkPlan,
    journal: &mut impl Recorder<NetworkChange>,
) -> anyhow::Result<()> {
    let info = ops.link(&plan.ifname).await.map_err(|err| {
        anyhow!(
            "failed to find interface {}: {}",
            plan.ifname,
            describe(&err)
        )
    })?;
    let link = Link {
        name: plan.ifname.clone(),
        index: info.index,
    };

    for step in steps(plan, &link) {
        let change = match step {
            NetworkChange::SysctlSet { name, value, .. } => {
                apply_sysctl(ops, journal, name, value).await?;
                continue;
            }
            other => other,
        };
        let verb = change.verb();
        journal.record(change.clone()).map_err(|err| {
            anyhow!("failed to journal {change} before making it, so it was not made: {err}")
        })?;
        let result = match &change {
            NetworkChange::AddressAdded { link, address } => {
                ops.add_address(link.index, *address).await
            }
            NetworkChange::MtuSet { link, mtu } => ops.set_mtu(link.index, *mtu).await,
            NetworkChange::LinkUp { link } => ops.set_up(link.index).await,
            NetworkChange::MetricLowered { link, family } => {
                ops.lower_metric(link.index, *family).await
            }
            NetworkChange::RouteAdded { link, route, table } => {
                ops.add_route(link.index, *route, *table).await
            }
            NetworkChange::EndpointRouteAdded { host, gateway } => {
                ops.add_host_route(*host, gateway).await
            }
            NetworkChange::RuleAdded { rule } => ops.add_rule(rule).await,
            NetworkChange::MarkGuardAdded { .. } => match &plan.mark_guard {
                Some(guard) => ops.add_mark_guard(guard).await,
                None => unreachable!("a guard step comes from the plan's guard"),
            },
            NetworkChange::SysctlSet { .. } => unreachable!("sysctls go through apply_sysctl"),
        };
        match result {
            Ok(()) => tracing::debug!("{verb} {change}"),
            Err(err) => {
                // The OS refused it, so it was not made: undoing it later could remove what is
                // in the way, which is someone else's.
                if let Err(journal_err) = journal.not_made(&change) {
                    tracing::warn!(
                        "failed to withdraw {change} from the journal after the OS refused it: \
                         {journal_err}"
                    );
                }
                return Err(anyhow!("failed to {verb} {change}: {}", describe(&err)));
            }
        }
    }
    Ok(())
}

/// Sets the sysctl `name` to `value`, shared with the other tunnels: under the shared lock, reads
/// it; when it already has `value` because another live tunnel set it, journals the change with
/// *that* tunnel's `previous` (without writing), so whichever of them goes down last restores the
/// true original (see `crate::journal` for the undo side); when it has `value` and no tunnel
/// holds it (an admin set it), neither journals nor writes; otherwise journals it with the value
/// read as `previous`, and writes it.
async fn apply_sysctl<O: NetworkOps>(
    ops: &mut O,
    journal: &mut impl Recorder<NetworkChange>,
    name: String,
    value: String,
) -> anyhow::Result<()> {
    let _lock = match journal.shared_setting_lock() {
        Some(path) => Some(
            crate::sys::setting_lock::SettingLock::acquire(&path)
                .await
                .map_err(|err| anyhow!("failed to set sysctl {name}: {err}"))?,
        ),
        None => None,
    };
    let current = ops
        .read_sysctl(&name)
        .await
        .map_err(|err| anyhow!("failed to read sysctl {name}: {}", describe(&err)))?;
    let held = (current == value)
        .then(|| journal.sysctl_held_elsewhere(&name))
        .flatten();
    if current == value && held.is_none() {
        tracing::debug!("sysctl {name} is already {value}");
        return Ok(());
    }
    let previous = held.as_ref().map_or(current, |h| h.previous.clone());
    let change = NetworkChange::SysctlSet {
        name,
        value,
        previous,
    };
    journal.record(change.clone()).map_err(|err| {
        anyhow!("failed to journal {change} before making it, so it was not made: {err}")
    })?;
    let NetworkChange::SysctlSet { name, value, .. } = &change else {
        unreachable!("built above")
    };
    if let Some(holder) = held {
        tracing::debug!(
            "sysctl {name} is already {value}, set by {}: shared with it",
            holder.ifname
        );
        return Ok(());
    }
    match ops.write_sysctl(name, value).await {
        Ok(()) => {
            tracing::debug!("set {change}");
            Ok(())
        }
        Err(err) => {
            if let Err(journal_err) = journal.not_made(&change) {
                tracing::warn!(
                    "failed to withdraw {change} from the journal after the OS refused it: \
                     {journal_err}"
                );
            }
            Err(anyhow!("failed to set {change}: {}", describe(&err)))
        }
    }
}

/// The index of `link` if the interface Warren changed still exists: `None` when no interface has
/// that name any more, or when the one that has it now is another interface (another index).
async fn live_link<O: NetworkOps>(ops: &mut O, link: &Link) -> io::Result<Option<u32>> {
    match ops.link(&link.name).await {
        Ok(info) if info.index == link.index => Ok(Some(info.index)),
        Ok(info) => {
            tracing::debug!(
                "{} is now another interface (index {}, was {}): what Warren added to the old one \
                 went with it",
                link.name,
                info.index,
                link.index
            );
            Ok(None)
        }
        Err(err)
            // ENODEV is an errno: on Windows error 19 is another error (ERROR_WRITE_PROTECT).
            if (cfg!(unix) && err.raw_os_error() == Some(libc::ENODEV))
                || err.kind() == io::ErrorKind::NotFound =>
        {
            Ok(None)
        }
        Err(err) => Err(err),
    }
}

async fn undo_with<O: NetworkOps>(ops: &mut O, change: &NetworkChange) -> anyhow::Result<()> {
    let result = match change {
        // The link is the tunnel's own and goes away with it; nothing to restore.
        NetworkChange::MtuSet { .. }
        | NetworkChange::LinkUp { .. }
        | NetworkChange::MetricLowered { .. } => return Ok(()),
        NetworkChange::AddressAdded { link, address } => match live_link(ops, link).await {
            Ok(Some(index)) => ops.remove_address(index, *address).await,
            Ok(None) => Ok(Removal::AlreadyGone),
            Err(err) => Err(err),
        },
        NetworkChange::RouteAdded { link, route, table } => match live_link(ops, link).await {
            Ok(Some(index)) => ops.remove_route(index, *route, *table).await,
            Ok(None) => Ok(Removal::AlreadyGone),
            Err(err) => Err(err),
        },
        // On the physical interface, not the tunnel's: it stays when the tunnel goes.
        NetworkChange::EndpointRouteAdded { host, gateway } => {
            ops.remove_host_route(*host, gateway).await
        }
        NetworkChange::RuleAdded { rule } => ops.remove_rule(rule).await,
        // A damaged journal must never make Warren delete another program's table.
        NetworkChange::MarkGuardAdded { table } if !mark_guard::is_guard_table(table) => {
            return Err(anyhow!(
                "refusing to remove nftables table {table}: not a name Warren gives its tables"
            ));
        }
        NetworkChange::MarkGuardAdded { table } => ops.remove_mark_guard(table).await,
        NetworkChange::SysctlSet {
            name,
            value,
            previous,
        } => restore_sysctl(ops, name, value, previous).await,
    };
    match result {
        Ok(Removal::Removed) => {
            tracing::debug!("{} {change}", change.undo_verb());
            Ok(())
        }
        Ok(Removal::AlreadyGone) => {
            tracing::debug!("{change}: already undone");
            Ok(())
        }
        Err(err) => Err(anyhow!(
            "failed to {} {change}: {}",
            change.undo_verb(),
            describe(&err)
        )),
    }
}

/// Puts `name` back to `previous` if it still has the `value` Warren set.
async fn restore_sysctl<O: NetworkOps>(
    ops: &mut O,
    name: &str,
    value: &str,
    previous: &str,
) -> io::Result<Removal> {
    let current = ops.read_sysctl(name).await?;
    if current == previous {
        Ok(Removal::AlreadyGone)
    } else if current == value {
        ops.write_sysctl(name, previous).await?;
        Ok(Removal::Removed)
    } else {
        tracing::info!(
            "sysctl {name} is {current}, not the {value} Warren set: someone changed it since, so \
             it stays {current} (it was {previous} before Warren)"
        );
        Ok(Removal::AlreadyGone)
    }
}

async fn read_inputs_with<O: NetworkOps>(
    ops: &mut O,
    endpoint: Option<IpAddr>,
) -> anyhow::Result<PlanInputs> {
    let endpoint_mtu = match endpoint {
        None => None,
        Some(ip) => ops.route_mtu(ip).await.unwrap_or_else(|err| {
            tracing::debug!("no path MTU to {ip}: {}", describe(&err));
            None
        }),
    };
    let tables_in_use = ops.tables_in_use().await.map_err(|err| {
        anyhow!(
            "failed to list the routing tables in use: {}",
            describe(&err)
        )
    })?;
    let mut default_gateways = BTreeMap::new();
    for family in Family::ALL {
        match ops.default_gateway(family).await {
            Ok(Some(gateway)) => {
                default_gateways.insert(family, gateway);
            }
            Ok(None) => {}
            Err(err) => tracing::debug!(
                "no {} default gateway known: {}",
                family.name(),
                describe(&err)
            ),
        }
    }
    Ok(PlanInputs {
        endpoint_mtu,
        tables_in_use,
        resolved_endpoints: Vec::new(),
        method: FullTunnelMethod::native(),
        default_gateways,
        nft_missing: !nft_found(),
    })
}

/// What `plan` needs of the system that cannot be found, checked before anything changes: a
/// Linux full tunnel on a host with strict reverse-path filtering needs `nft` for its guard
/// (without strict filtering it goes without, with [`PlanWarning::NoMarkGuard`]).
pub fn preflight(plan: &NetworkPlan) -> Result<(), MissingTool> {
    if plan.mark_guard.is_none() || nft_found() {
        return Ok(());
    }
    match strict_reverse_path_filter() {
        Some(setting) => Err(MissingTool {
            tool: "nft (Debian's nftables)",
            why: format!(
                "{setting} (strict reverse-path filtering) drops the endpoint's replies to a full \
                 tunnel unless nftables rules give them the tunnel's mark back"
            ),
        }),
        None => Ok(()),
    }
}

/// Whether `nft` can be found (only Linux uses nftables).
#[cfg(not(target_os = "linux"))]
fn nft_found() -> bool {
    false
}

/// The first reverse-path filter setting that is strict (only Linux's matter here).
#[cfg(not(target_os = "linux"))]
fn strict_reverse_path_filter() -> Option<String> {
    None
}

/// A program the tunnel needs that this system lacks ([`preflight`]).
#[derive(Debug, thiserror::Error)]
#[error("{tool} is needed and not installed: {why}")]
pub struct MissingTool {
    /// The program, and where it comes from.
    pub tool: &'static str,
    /// Why this tunnel needs it here.
    pub why: String,
}

#[cfg(test)]
mod tests {
    //! Apply and undo against an in-memory double of the OS, with a journal double that writes
    //! into the same log, so the tests see that each change is journaled before it is made.

    use super::*;
    use std::cell::RefCell;
    use std::collections::BTreeMap;
    use std::rc::Rc;

    type Log = Rc<RefCell<Vec<String>>>;

    /// An OS error as the real ops return it. On Unix the errno itself, so `describe` reads the
    /// system's words (`File exists`). On Windows the errno means another Win32 error and the
    /// system's wording differs (Windows vs. Wine), so the double says the Unix words itself,
    /// with the `kind` the Windows ops give (a missing interface is `NotFound` there).
    fn os_error(errno: i32, kind: io::ErrorKind, words: &str) -> io::Error {
        if cfg!(unix) {
            io::Error::from_raw_os_error(errno)
        } else {
            io::Error::new(kind, words)
        }
    }

    /// An in-memory "kernel" with one link, `wg0` (index 7), that can be told to fail one step.
    #[derive(Default)]
    struct FakeOps {
        addresses: Vec<IpNet>,
        routes: BTreeSet<(IpNet, u32)>,
        rules: Vec<PolicyRule>,
        sysctls: BTreeMap<String, String>,
        /// Host routes outside the tunnel (macOS endpoint routes), by host and gateway.
        host_routes: BTreeSet<(IpAddr, Gateway)>,
        /// The reverse-path guards' tables loaded (Linux full tunnels).
        guards: BTreeSet<String>,
        /// What `default_gateway` answers.
        gateways: BTreeMap<Family, Gateway>,
        mtu: Option<u16>,
        up: bool,
        /// The index `wg0` has; `None` when it is gone.
        wg0: Option<u32>,
        /// Every call, in order, as text (shared with the journal double).
        log: Log,
        /// Calls whose log text equals this fail with EEXIST.
        fail: Option<String>,
        /// Removals whose log text is in here fail with EBUSY.
        fail_removal: BTreeSet<String>,
    }

    impl FakeOps {
        fn new() -> Self {
            FakeOps {
                wg0: Some(7),
                sysctls: [(SRC_VALID_MARK.to_string(), "0".to_string())].into(),
                ..FakeOps::default()
            }
        }

        fn call(&mut self, what: String) -> io::Result<()> {
            let failed = self.fail.as_deref() == Some(what.as_str());
            let failed_removal = self.fail_removal.contains(&what);
            self.log.borrow_mut().push(what);
            if failed {
                Err(os_error(
                    libc::EEXIST,
                    io::ErrorKind::AlreadyExists,
                    "File exists",
                ))
            } else if failed_removal {
                Err(os_error(
                    libc::EBUSY,
                    io::ErrorKind::ResourceBusy,
                    "Device or resource busy",
                ))
            } else {
                Ok(())
            }
        }

        fn log(&self) -> Vec<String> {
            self.log.borrow().clone()
        }

        fn clear_log(&self) {
            self.log.borrow_mut().clear();
        }

        fn is_pristine(&self) -> bool {
            self.addresses.is_empty()
                && self.routes.is_empty()
                && self.rules.is_empty()
                && self.host_routes.is_empty()
                && self.guards.is_empty()
                && self.sysctls[SRC_VALID_MARK] == "0"
        }
    }

    fn gone(removed: bool) -> Removal {
        if removed {
            Removal::Removed
        } else {
            Removal::AlreadyGone
        }
    }

    impl NetworkOps for FakeOps {
        async fn connect() -> anyhow::Result<Self> {
            Ok(Self::new())
        }
        async fn link(&mut self, ifname: &str) -> io::Result<LinkInfo> {
            match self.wg0 {
                Some(index) if ifname == "wg0" => Ok(LinkInfo { index }),
                _ => Err(os_error(
                    libc::ENODEV,
                    io::ErrorKind::NotFound,
                    "No such device",
                )),
            }
        }
        async fn add_address(&mut self, link: u32, address: IpNet) -> io::Result<()> {
            self.call(format!("add address {address} link {link}"))?;
            self.addresses.push(address);
            Ok(())
        }
        async fn remove_address(&mut self, link: u32, address: IpNet) -> io::Result<Removal> {
            self.call(format!("remove address {address} link {link}"))?;
            let before = self.addresses.len();
            self.addresses.retain(|a| *a != address);
            Ok(gone(self.addresses.len() < before))
        }
        async fn set_mtu(&mut self, link: u32, mtu: u16) -> io::Result<()> {
            self.call(format!("set mtu {mtu} link {link}"))?;
            self.mtu = Some(mtu);
            Ok(())
        }
        async fn set_up(&mut self, link: u32) -> io::Result<()> {
            self.call(format!("set up link {link}"))?;
            self.up = true;
            Ok(())
        }
        async fn lower_metric(&mut self, link: u32, family: Family) -> io::Result<()> {
            self.call(format!("lower {} metric link {link}", family.name()))
        }
        async fn add_route(&mut self, link: u32, route: IpNet, table: u32) -> io::Result<()> {
            self.call(format!("add route {route} table {table} link {link}"))?;
            self.routes.insert((route, table));
            Ok(())
        }
        async fn remove_route(
            &mut self,
            link: u32,
            route: IpNet,
            table: u32,
        ) -> io::Result<Removal> {
            self.call(format!("remove route {route} table {table} link {link}"))?;
            Ok(gone(self.routes.remove(&(route, table))))
        }
        async fn add_rule(&mut self, rule: &PolicyRule) -> io::Result<()> {
            self.call(format!("add {rule}"))?;
            self.rules.push(*rule);
            Ok(())
        }
        async fn remove_rule(&mut self, rule: &PolicyRule) -> io::Result<Removal> {
            self.call(format!("remove {rule}"))?;
            let found = self.rules.iter().position(|r| r == rule);
            Ok(gone(found.map(|i| self.rules.remove(i)).is_some()))
        }
        async fn read_sysctl(&mut self, name: &str) -> io::Result<String> {
            self.sysctls
                .get(name)
                .cloned()
                .ok_or_else(|| os_error(libc::ENOENT, io::ErrorKind::NotFound, "No such file"))
        }
        async fn write_sysctl(&mut self, name: &str, value: &str) -> io::Result<()> {
            self.call(format!("sysctl {name}={value}"))?;
            self.sysctls.insert(name.into(), value.into());
            Ok(())
        }
        async fn route_mtu(&mut self, destination: IpAddr) -> io::Result<Option<u32>> {
            Ok((destination == "198.18.250.2".parse::<IpAddr>().unwrap()).then_some(1400))
        }
        async fn tables_in_use(&mut self) -> io::Result<BTreeSet<u32>> {
            Ok([254, 255, 51820].into())
        }
        async fn default_gateway(&mut self, family: Family) -> io::Result<Option<Gateway>> {
            Ok(self.gateways.get(&family).cloned())
        }
        async fn add_host_route(&mut self, host: IpAddr, gateway: &Gateway) -> io::Result<()> {
            self.call(format!("add host route {host} via {gateway}"))?;
            self.host_routes.insert((host, gateway.clone()));
            Ok(())
        }
        async fn remove_host_route(
            &mut self,
            host: IpAddr,
            gateway: &Gateway,
        ) -> io::Result<Removal> {
            self.call(format!("remove host route {host} via {gateway}"))?;
            Ok(gone(self.host_routes.remove(&(host, gateway.clone()))))
        }
        async fn add_mark_guard(&mut self, guard: &MarkGuard) -> io::Result<()> {
            let families: Vec<&str> = guard.families.iter().map(|f| f.name()).collect();
            self.call(format!(
                "load nftables table {} (mark {:#x}, {})",
                guard.table(),
                guard.fwmark,
                families.join(", ")
            ))?;
            self.guards.insert(guard.table());
            Ok(())
        }
        async fn remove_mark_guard(&mut self, table: &str) -> io::Result<Removal> {
            self.call(format!("delete nftables table {table}"))?;
            Ok(gone(self.guards.remove(table)))
        }
    }

    /// A journal double that logs into the fake kernel's log.
    struct FakeJournal {
        changes: Vec<NetworkChange>,
        log: Log,
        /// Recording fails once this many changes are recorded.
        full_after: Option<usize>,
        /// Another tunnel holding the sysctls, as the journals would say.
        holder: Option<SysctlHolder>,
    }

    impl FakeJournal {
        fn new(ops: &FakeOps) -> Self {
            FakeJournal {
                changes: Vec::new(),
                log: ops.log.clone(),
                full_after: None,
                holder: None,
            }
        }
    }

    impl Recorder<NetworkChange> for FakeJournal {
        fn record(&mut self, change: NetworkChange) -> io::Result<()> {
            if self.full_after == Some(self.changes.len()) {
                return Err(io::Error::other("disk full"));
            }
            self.log.borrow_mut().push(format!("journal {change}"));
            self.changes.push(change);
            Ok(())
        }
        fn not_made(&mut self, change: &NetworkChange) -> io::Result<()> {
            self.log.borrow_mut().push(format!("withdraw {change}"));
            let last = self.changes.pop();
            assert_eq!(
                last.as_ref(),
                Some(change),
                "not_made must name the last one"
            );
            Ok(())
        }
        fn sysctl_held_elsewhere(&self, _name: &str) -> Option<SysctlHolder> {
            self.holder.clone()
        }
    }

    fn net(s: &str) -> IpNet {
        s.parse().unwrap()
    }

    fn wg0() -> Link {
        Link {
            name: "wg0".into(),
            index: 7,
        }
    }

    fn split_plan() -> NetworkPlan {
        NetworkPlan {
            ifname: "wg0".into(),
            addresses: vec![net("198.18.1.1/24"), net("fd00:1::1/64")],
            mtu: 1420,
            routes: vec![
                Route {
                    prefix: net("198.18.4.0/24"),
                    table: MAIN_TABLE,
                },
                Route {
                    prefix: net("fd00:4::/64"),
                    table: MAIN_TABLE,
                },
            ],
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

    fn full_plan() -> NetworkPlan {
        NetworkPlan {
            ifname: "wg0".into(),
            addresses: vec![net("198.18.1.1/24")],
            mtu: 1420,
            routes: vec![Route {
                prefix: net("0.0.0.0/0"),
                table: 51820,
            }],
            sysctls: vec![Sysctl {
                name: SRC_VALID_MARK.into(),
                value: "1".into(),
            }],
            rules: vec![
                PolicyRule::NotFwmark {
                    family: Family::Ipv4,
                    fwmark: 51820,
                    table: 51820,
                },
                PolicyRule::SuppressMainDefault {
                    family: Family::Ipv4,
                },
            ],
            fwmark: Some(51820),
            method: FullTunnelMethod::PolicyRouting,
            full_tunnel_families: vec![Family::Ipv4],
            endpoint_routes: vec![],
            mark_guard: Some(MarkGuard {
                ifname: "wg0".into(),
                fwmark: 51820,
                families: vec![Family::Ipv4],
                addresses: vec!["198.18.1.1".parse().unwrap()],
            }),
            warnings: vec![],
        }
    }

    fn en0_gateway() -> Gateway {
        Gateway {
            address: "198.18.0.1".parse().unwrap(),
            interface: Some("en0".into()),
        }
    }

    /// A macOS IPv4 full tunnel, as the planner makes it: the halves and the endpoint's host
    /// route, no rule, sysctl or mark.
    fn macos_plan() -> NetworkPlan {
        NetworkPlan {
            ifname: "wg0".into(),
            addresses: vec![net("198.18.1.1/24")],
            mtu: 1420,
            routes: vec![
                Route {
                    prefix: net("0.0.0.0/1"),
                    table: MAIN_TABLE,
                },
                Route {
                    prefix: net("128.0.0.0/1"),
                    table: MAIN_TABLE,
                },
            ],
            sysctls: vec![],
            rules: vec![],
            fwmark: None,
            method: FullTunnelMethod::Halves,
            full_tunnel_families: vec![Family::Ipv4],
            endpoint_routes: vec![EndpointRoute {
                host: "198.18.250.2".parse().unwrap(),
                gateway: en0_gateway(),
            }],
            mark_guard: None,
            warnings: vec![],
        }
    }

    fn block_on<F: std::future::Future>(future: F) -> F::Output {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(future)
    }

    /// Undoes `changes` newest first, as the journal does, continuing past failures.
    fn undo_all(ops: &mut FakeOps, changes: &[NetworkChange]) -> Vec<String> {
        let mut failures = Vec::new();
        for change in changes.iter().rev() {
            if let Err(err) = block_on(undo_with(ops, change)) {
                failures.push(err.to_string());
            }
        }
        failures
    }

    fn en1_gateway() -> Gateway {
        Gateway {
            address: "198.18.2.1".parse().unwrap(),
            interface: Some("en1".into()),
        }
    }

    #[test]
    fn the_replan_leaves_the_endpoint_routes_to_follow_endpoints() {
        let current = macos_plan();
        let mut fresh = macos_plan();
        fresh.endpoint_routes[0].gateway = en1_gateway();
        assert!(replan(&current, &fresh, false).is_empty());
        fresh.endpoint_routes.clear();
        assert!(replan(&current, &fresh, false).is_empty());
    }

    #[test]
    fn endpoint_routes_follow_a_peer_that_roams() {
        let current = macos_plan();
        assert!(routes_follow_endpoints(&current));
        assert!(!routes_follow_endpoints(&split_plan()));
        let gateways = BTreeMap::from([(Family::Ipv4, en1_gateway())]);
        let ip = |text: &str| -> IpAddr { text.parse().unwrap() };

        // Still at its address (also as an IPv4-mapped one), same gateway: nothing to do.
        let same = BTreeMap::from([(Family::Ipv4, en0_gateway())]);
        assert!(follow_endpoints(&current, &[ip("198.18.250.2")], &same).is_empty());
        assert!(follow_endpoints(&current, &[ip("::ffff:198.18.250.2")], &same).is_empty());
        // At its address, but the default gateway moved: the route moves with it.
        let change = follow_endpoints(&current, &[ip("198.18.250.2")], &gateways);
        assert_eq!(change.stale_endpoint_routes, current.endpoint_routes);
        assert_eq!(change.new_endpoint_routes[0].gateway, en1_gateway());

        // Roamed: the new address gets a route via today's gateway (once, however many peers
        // share it), the old one's goes.
        let roamed = [ip("198.18.250.9"), ip("198.18.250.9")];
        let change = follow_endpoints(&current, &roamed, &gateways);
        assert_eq!(change.stale_endpoint_routes, current.endpoint_routes);
        assert_eq!(
            change.new_endpoint_routes,
            vec![EndpointRoute {
                host: ip("198.18.250.9"),
                gateway: en1_gateway(),
            }]
        );
        assert_eq!(change.mtu, None);

        // A second peer's address joins; the first keeps its route.
        let change = follow_endpoints(&current, &[ip("198.18.250.2"), ip("198.18.251.3")], &same);
        assert!(change.stale_endpoint_routes.is_empty());
        assert_eq!(change.new_endpoint_routes.len(), 1);

        // No default gateway for the family now: nothing to route by, but an address no peer
        // uses loses its route all the same, and one in use keeps it.
        let change = follow_endpoints(&current, &[ip("198.18.250.9")], &BTreeMap::new());
        assert!(change.new_endpoint_routes.is_empty());
        assert_eq!(change.stale_endpoint_routes, current.endpoint_routes);
        assert!(follow_endpoints(&current, &[ip("198.18.250.2")], &BTreeMap::new()).is_empty());

        // An IPv6 endpoint of a tunnel that is full for IPv4 only is not host-routed.
        let v6 = BTreeMap::from([(
            Family::Ipv6,
            Gateway {
                address: "fd00::1".parse().unwrap(),
                interface: Some("en0".into()),
            },
        )]);
        let change = follow_endpoints(&current, &[ip("198.18.250.2"), ip("fd00::9")], &v6);
        assert!(change.new_endpoint_routes.is_empty() && change.stale_endpoint_routes.is_empty());
    }

    #[test]
    fn a_roamed_endpoint_is_rerouted_through_the_ops_and_journaled() {
        let mut ops = FakeOps::new();
        let current = macos_plan();
        ops.host_routes
            .insert((current.endpoint_routes[0].host, en0_gateway()));
        let gateways = BTreeMap::from([(Family::Ipv4, en0_gateway())]);
        let change = follow_endpoints(&current, &["198.18.250.9".parse().unwrap()], &gateways);
        let mut journal = FakeJournal::new(&ops);
        block_on(replan::reapply_with(&mut ops, &change, "wg0", &mut journal)).unwrap();
        assert_eq!(
            ops.log(),
            [
                "remove host route 198.18.250.2 via 198.18.0.1",
                "journal host route 198.18.250.9 via 198.18.0.1",
                "add host route 198.18.250.9 via 198.18.0.1",
            ]
        );
    }

    #[test]
    fn the_mtu_follows_the_path_only_when_it_was_derived_from_it() {
        let current = split_plan();
        let mut fresh = split_plan();
        fresh.mtu = 1300;
        assert_eq!(replan(&current, &fresh, true).mtu, Some(1300));
        assert_eq!(replan(&current, &fresh, false).mtu, None);

        let config = |extra: &str, allowed: &str| {
            warren_proto::config::parse(
                &format!(
                    "[Interface]\nPrivateKey = yAnz5TF+lXXJte14tji3zlMNq+hd2rYUIgJBgB3fBmk=\n{extra}\n\
                     [Peer]\nPublicKey = xTIBA5rboUvnH4htodjb6e697QjLERt1NAB4mZqp8Dg=\n\
                     AllowedIPs = {allowed}\nEndpoint = 198.18.250.2:51820\n"
                ),
                None,
            )
            .unwrap()
        };
        let known = PlanInputs {
            endpoint_mtu: Some(1500),
            ..PlanInputs::default()
        };
        let unknown = PlanInputs::default();
        let split = config("", "198.18.7.0/24");
        assert!(mtu_follows_path(&split, &known));
        assert!(!mtu_follows_path(&split, &unknown), "no path now: keep it");
        assert!(!mtu_follows_path(
            &config("MTU = 1380", "198.18.7.0/24"),
            &known
        ));
        assert!(
            !mtu_follows_path(&config("", "0.0.0.0/0"), &known),
            "a full tunnel's lookup would go through itself"
        );
    }

    #[test]
    fn reapply_moves_the_route_before_adding_and_journals_what_it_adds() {
        let mut ops = FakeOps::new();
        let current = macos_plan();
        ops.host_routes
            .insert((current.endpoint_routes[0].host, en0_gateway()));
        let gateways = BTreeMap::from([(Family::Ipv4, en1_gateway())]);
        let mut change = follow_endpoints(&current, &[current.endpoint_routes[0].host], &gateways);
        change.mtu = Some(1380);
        let mut journal = FakeJournal::new(&ops);
        block_on(replan::reapply_with(&mut ops, &change, "wg0", &mut journal)).unwrap();
        assert_eq!(
            ops.log(),
            [
                "remove host route 198.18.250.2 via 198.18.0.1",
                "journal host route 198.18.250.2 via 198.18.2.1",
                "add host route 198.18.250.2 via 198.18.2.1",
                "journal mtu 1380 on wg0",
                "set mtu 1380 link 7",
            ]
        );
        assert_eq!(
            ops.host_routes,
            [("198.18.250.2".parse().unwrap(), en1_gateway())].into()
        );
        assert_eq!(ops.mtu, Some(1380));
    }

    #[test]
    fn apply_journals_each_change_before_making_it() {
        let mut ops = FakeOps::new();
        let mut journal = FakeJournal::new(&ops);
        block_on(apply_with(&mut ops, &split_plan(), &mut journal)).unwrap();
        assert_eq!(
            ops.log(),
            [
                "journal address 198.18.1.1/24 dev wg0",
                "add address 198.18.1.1/24 link 7",
                "journal address fd00:1::1/64 dev wg0",
                "add address fd00:1::1/64 link 7",
                "journal mtu 1420 on wg0",
                "set mtu 1420 link 7",
                "journal link wg0 up",
                "set up link 7",
                "journal route 198.18.4.0/24 dev wg0",
                "add route 198.18.4.0/24 table 254 link 7",
                "journal route fd00:4::/64 dev wg0",
                "add route fd00:4::/64 table 254 link 7",
            ]
        );
        assert_eq!(
            journal.changes,
            [
                NetworkChange::AddressAdded {
                    link: wg0(),
                    address: net("198.18.1.1/24")
                },
                NetworkChange::AddressAdded {
                    link: wg0(),
                    address: net("fd00:1::1/64")
                },
                NetworkChange::MtuSet {
                    link: wg0(),
                    mtu: 1420
                },
                NetworkChange::LinkUp { link: wg0() },
                NetworkChange::RouteAdded {
                    link: wg0(),
                    route: net("198.18.4.0/24"),
                    table: MAIN_TABLE
                },
                NetworkChange::RouteAdded {
                    link: wg0(),
                    route: net("fd00:4::/64"),
                    table: MAIN_TABLE
                },
            ]
        );
        assert_eq!(ops.mtu, Some(1420));
        assert!(ops.up);
    }

    #[test]
    fn full_tunnel_adds_routes_then_the_sysctl_then_the_rules() {
        let mut ops = FakeOps::new();
        let mut journal = FakeJournal::new(&ops);
        block_on(apply_with(&mut ops, &full_plan(), &mut journal)).unwrap();
        assert_eq!(
            ops.log()[6..],
            [
                "journal route 0.0.0.0/0 dev wg0 table 51820",
                "add route 0.0.0.0/0 table 51820 link 7",
                "journal nftables table inet warren_rp_wg0",
                "load nftables table warren_rp_wg0 (mark 0xca6c, IPv4)",
                "journal sysctl net.ipv4.conf.all.src_valid_mark = 1 (was 0)",
                "sysctl net.ipv4.conf.all.src_valid_mark=1",
                "journal IPv4 rule not fwmark 0xca6c table 51820",
                "add IPv4 rule not fwmark 0xca6c table 51820",
                "journal IPv4 rule table main suppress_prefixlength 0",
                "add IPv4 rule table main suppress_prefixlength 0",
            ]
        );
        assert_eq!(ops.rules.len(), 2);
        assert_eq!(ops.sysctls[SRC_VALID_MARK], "1");

        ops.clear_log();
        assert!(undo_all(&mut ops, &journal.changes).is_empty());
        assert_eq!(
            ops.log(),
            [
                "remove IPv4 rule table main suppress_prefixlength 0",
                "remove IPv4 rule not fwmark 0xca6c table 51820",
                "sysctl net.ipv4.conf.all.src_valid_mark=0",
                "delete nftables table warren_rp_wg0",
                "remove route 0.0.0.0/0 table 51820 link 7",
                "remove address 198.18.1.1/24 link 7",
            ]
        );
        assert!(ops.is_pristine());
    }

    #[test]
    fn a_damaged_journal_never_deletes_another_programs_table() {
        let mut ops = FakeOps::new();
        ops.guards.insert("filter".into());
        let change = NetworkChange::MarkGuardAdded {
            table: "filter".into(),
        };
        let err = block_on(undo_with(&mut ops, &change)).unwrap_err();
        assert_eq!(
            err.to_string(),
            "refusing to remove nftables table filter: not a name Warren gives its tables"
        );
        assert!(ops.log().is_empty() && ops.guards.contains("filter"));
    }

    #[test]
    fn a_sysctl_already_set_is_neither_journaled_nor_written() {
        let mut ops = FakeOps::new();
        ops.sysctls.insert(SRC_VALID_MARK.into(), "1".into());
        let mut journal = FakeJournal::new(&ops);
        block_on(apply_with(&mut ops, &full_plan(), &mut journal)).unwrap();
        assert!(!journal
            .changes
            .iter()
            .any(|c| matches!(c, NetworkChange::SysctlSet { .. })));
        assert!(!ops.log().iter().any(|l| l.contains("src_valid_mark")));
        assert!(undo_all(&mut ops, &journal.changes).is_empty());
        assert_eq!(ops.sysctls[SRC_VALID_MARK], "1");
    }

    #[test]
    fn a_sysctl_another_tunnel_set_is_journaled_with_its_original_but_not_written() {
        let mut ops = FakeOps::new();
        ops.sysctls.insert(SRC_VALID_MARK.into(), "1".into());
        let mut journal = FakeJournal::new(&ops);
        journal.holder = Some(SysctlHolder {
            ifname: "wg1".into(),
            previous: "0".into(),
        });
        block_on(apply_with(&mut ops, &full_plan(), &mut journal)).unwrap();
        let shared = NetworkChange::SysctlSet {
            name: SRC_VALID_MARK.into(),
            value: "1".into(),
            previous: "0".into(),
        };
        assert!(journal.changes.contains(&shared), "{:?}", journal.changes);
        assert!(
            ops.log()
                .contains(&format!("journal sysctl {SRC_VALID_MARK} = 1 (was 0)")),
            "{:?}",
            ops.log()
        );
        assert!(
            !ops.log().iter().any(|l| l.starts_with("sysctl ")),
            "nothing written: {:?}",
            ops.log()
        );
    }

    /// Two full tunnels with real journals in one state directory over one fake kernel: whichever
    /// goes down first leaves `src_valid_mark` at 1 for the other, and the last one restores 0 —
    /// also when the first is a leftover of a crash undone by recovery.
    #[test]
    fn two_tunnels_share_src_valid_mark_and_the_last_one_restores_it() {
        use crate::journal::Journal;
        let only_sysctl = NetworkPlan {
            addresses: vec![],
            routes: vec![],
            rules: vec![],
            mark_guard: None,
            ..full_plan()
        };
        for (case, first, crash_first) in [
            (0, "wg0", false),
            (1, "wg1", false),
            (2, "wg0", true),
            (3, "wg1", true),
        ] {
            let dir = std::env::temp_dir().join(format!(
                "warren-shared-sysctl-{}-{case}",
                std::process::id()
            ));
            let _ = std::fs::remove_dir_all(&dir);
            let kernel = Rc::new(RefCell::new(FakeOps::new()));
            let mut journals = BTreeMap::new();
            for ifname in ["wg0", "wg1"] {
                let mut journal = Journal::create(&dir, ifname).unwrap();
                let mut ops = kernel.take();
                block_on(apply_with(&mut ops, &only_sysctl, &mut journal)).unwrap();
                *kernel.borrow_mut() = ops;
                assert_eq!(kernel.borrow().sysctls[SRC_VALID_MARK], "1");
                journals.insert(ifname, journal);
            }
            let undo_on_kernel = |change: Change| {
                let kernel = kernel.clone();
                async move {
                    let Change::Network(change) = change else {
                        unreachable!("only network changes here")
                    };
                    let mut ops = kernel.take();
                    let result = undo_with(&mut ops, &change).await;
                    *kernel.borrow_mut() = ops;
                    result
                }
            };
            let second = if first == "wg0" { "wg1" } else { "wg0" };
            let mut going = journals.remove(first).unwrap();
            if crash_first {
                drop(going);
                going = Journal::leftover(&dir, first).unwrap().unwrap();
            }
            let outcome = block_on(going.undo_all_with(undo_on_kernel));
            assert!(outcome.is_complete(), "case {case}: {:?}", outcome.failed);
            going.close().unwrap();
            assert_eq!(
                kernel.borrow().sysctls[SRC_VALID_MARK],
                "1",
                "case {case}: {second} still needs src_valid_mark after {first} went"
            );
            let mut last = journals.remove(second).unwrap();
            let outcome = block_on(last.undo_all_with(undo_on_kernel));
            assert!(outcome.is_complete(), "case {case}: {:?}", outcome.failed);
            last.close().unwrap();
            assert_eq!(
                kernel.borrow().sysctls[SRC_VALID_MARK],
                "0",
                "case {case}: the last tunnel restores the original"
            );
            std::fs::remove_dir_all(&dir).unwrap();
        }
    }

    #[test]
    fn undo_of_a_sysctl_is_idempotent_and_leaves_a_later_value_alone() {
        let change = NetworkChange::SysctlSet {
            name: SRC_VALID_MARK.into(),
            value: "1".into(),
            previous: "0".into(),
        };
        let mut ops = FakeOps::new();
        ops.sysctls.insert(SRC_VALID_MARK.into(), "1".into());
        block_on(undo_with(&mut ops, &change)).unwrap();
        assert_eq!(ops.sysctls[SRC_VALID_MARK], "0");
        // Again, or journaled but never written (a crash in between): already back, nothing
        // written.
        ops.clear_log();
        block_on(undo_with(&mut ops, &change)).unwrap();
        assert!(ops.log().is_empty());
        // Someone set another value since: theirs stays.
        ops.sysctls.insert(SRC_VALID_MARK.into(), "2".into());
        block_on(undo_with(&mut ops, &change)).unwrap();
        assert_eq!(ops.sysctls[SRC_VALID_MARK], "2");
    }

    #[test]
    fn a_refused_step_is_withdrawn_and_nothing_is_rolled_back_by_apply() {
        let mut ops = FakeOps::new();
        ops.fail = Some("add route fd00:4::/64 table 254 link 7".into());
        let mut journal = FakeJournal::new(&ops);
        let err = block_on(apply_with(&mut ops, &split_plan(), &mut journal)).unwrap_err();
        assert_eq!(
            err.to_string(),
            "failed to add route fd00:4::/64 dev wg0: File exists"
        );
        assert_eq!(
            ops.log()[10..],
            [
                "journal route fd00:4::/64 dev wg0",
                "add route fd00:4::/64 table 254 link 7",
                "withdraw route fd00:4::/64 dev wg0",
            ]
        );
        // apply left its earlier changes for the caller to undo from the journal.
        assert_eq!(ops.addresses.len(), 2);
        assert_eq!(journal.changes.len(), 5);
        // The route in the way (say someone else's) stays when the journal is undone.
        ops.routes.insert((net("fd00:4::/64"), MAIN_TABLE));
        ops.clear_log();
        assert!(undo_all(&mut ops, &journal.changes).is_empty());
        assert_eq!(
            ops.log(),
            [
                "remove route 198.18.4.0/24 table 254 link 7",
                "remove address fd00:1::1/64 link 7",
                "remove address 198.18.1.1/24 link 7",
            ]
        );
        assert_eq!(
            ops.routes.iter().collect::<Vec<_>>(),
            [&(net("fd00:4::/64"), MAIN_TABLE)]
        );
        assert!(ops.addresses.is_empty());
    }

    #[test]
    fn a_change_that_cannot_be_journaled_is_not_made() {
        let mut ops = FakeOps::new();
        let mut journal = FakeJournal::new(&ops);
        journal.full_after = Some(1);
        let err = block_on(apply_with(&mut ops, &split_plan(), &mut journal)).unwrap_err();
        assert_eq!(
            err.to_string(),
            "failed to journal address fd00:1::1/64 dev wg0 before making it, so it was not \
             made: disk full"
        );
        assert_eq!(ops.addresses, [net("198.18.1.1/24")]);
    }

    #[test]
    fn a_missing_interface_is_named() {
        let mut ops = FakeOps::new();
        let mut journal = FakeJournal::new(&ops);
        let plan = NetworkPlan {
            ifname: "wg9".into(),
            ..split_plan()
        };
        let err = block_on(apply_with(&mut ops, &plan, &mut journal)).unwrap_err();
        assert_eq!(
            err.to_string(),
            "failed to find interface wg9: No such device"
        );
        assert!(ops.log().is_empty());
    }

    #[test]
    fn routes_in_another_table_and_rules_are_named_with_it() {
        let mut ops = FakeOps::new();
        ops.fail = Some("add route 0.0.0.0/0 table 51820 link 7".into());
        let mut journal = FakeJournal::new(&ops);
        let err = block_on(apply_with(&mut ops, &full_plan(), &mut journal)).unwrap_err();
        assert_eq!(
            err.to_string(),
            "failed to add route 0.0.0.0/0 dev wg0 table 51820: File exists"
        );
        let mut ops = FakeOps::new();
        ops.fail = Some("add IPv4 rule table main suppress_prefixlength 0".into());
        let mut journal = FakeJournal::new(&ops);
        let err = block_on(apply_with(&mut ops, &full_plan(), &mut journal)).unwrap_err();
        assert_eq!(
            err.to_string(),
            "failed to add IPv4 rule table main suppress_prefixlength 0: File exists"
        );
    }

    #[test]
    fn undo_continues_past_failures_and_names_them() {
        let mut ops = FakeOps::new();
        let mut journal = FakeJournal::new(&ops);
        block_on(apply_with(&mut ops, &split_plan(), &mut journal)).unwrap();
        ops.fail_removal = [
            "remove route fd00:4::/64 table 254 link 7".to_string(),
            "remove address 198.18.1.1/24 link 7".to_string(),
        ]
        .into();
        assert_eq!(
            undo_all(&mut ops, &journal.changes),
            [
                "failed to remove route fd00:4::/64 dev wg0: Device or resource busy",
                "failed to remove address 198.18.1.1/24 dev wg0: Device or resource busy",
            ]
        );
        // The ones that could be removed were.
        assert_eq!(
            ops.routes.iter().map(|(r, _)| *r).collect::<Vec<_>>(),
            [net("fd00:4::/64")]
        );
        assert_eq!(ops.addresses, [net("198.18.1.1/24")]);
    }

    #[test]
    fn undo_counts_already_gone_as_done() {
        let mut ops = FakeOps::new();
        let mut journal = FakeJournal::new(&ops);
        block_on(apply_with(&mut ops, &full_plan(), &mut journal)).unwrap();
        ops.addresses.clear();
        ops.routes.clear();
        ops.rules.clear();
        ops.sysctls.insert(SRC_VALID_MARK.into(), "0".into());
        assert!(undo_all(&mut ops, &journal.changes).is_empty());
        // Twice is fine too.
        assert!(undo_all(&mut ops, &journal.changes).is_empty());
    }

    #[test]
    fn undo_after_the_interface_is_gone_or_replaced_touches_nothing_on_it() {
        let mut ops = FakeOps::new();
        let mut journal = FakeJournal::new(&ops);
        block_on(apply_with(&mut ops, &full_plan(), &mut journal)).unwrap();
        // A crash: the TUN (index 7) closed; a new wg0 has index 9 and its own address.
        ops.wg0 = Some(9);
        ops.clear_log();
        assert!(undo_all(&mut ops, &journal.changes).is_empty());
        assert_eq!(
            ops.log(),
            [
                "remove IPv4 rule table main suppress_prefixlength 0",
                "remove IPv4 rule not fwmark 0xca6c table 51820",
                "sysctl net.ipv4.conf.all.src_valid_mark=0",
                "delete nftables table warren_rp_wg0",
            ]
        );
        // The interface is gone altogether: still nothing is removed from any interface.
        ops.wg0 = None;
        ops.clear_log();
        assert!(undo_all(&mut ops, &journal.changes).is_empty());
        assert!(
            !ops.log().iter().any(|l| l.contains("link")),
            "{:?}",
            ops.log()
        );
    }

    #[test]
    fn macos_full_tunnel_journals_the_endpoint_route_first_and_undoes_it_idempotently() {
        let mut ops = FakeOps::new();
        let mut journal = FakeJournal::new(&ops);
        block_on(apply_with(&mut ops, &macos_plan(), &mut journal)).unwrap();
        assert_eq!(
            ops.log()[6..],
            [
                "journal host route 198.18.250.2 via 198.18.0.1",
                "add host route 198.18.250.2 via 198.18.0.1",
                "journal route 0.0.0.0/1 dev wg0",
                "add route 0.0.0.0/1 table 254 link 7",
                "journal route 128.0.0.0/1 dev wg0",
                "add route 128.0.0.0/1 table 254 link 7",
            ]
        );
        assert!(!ops
            .log()
            .iter()
            .any(|l| l.contains("rule") || l.contains("sysctl")));
        assert_eq!(
            journal.changes[3],
            NetworkChange::EndpointRouteAdded {
                host: "198.18.250.2".parse().unwrap(),
                gateway: en0_gateway(),
            }
        );
        assert_eq!(ops.host_routes.len(), 1);

        ops.clear_log();
        assert!(undo_all(&mut ops, &journal.changes).is_empty());
        assert_eq!(
            ops.log(),
            [
                "remove route 128.0.0.0/1 table 254 link 7",
                "remove route 0.0.0.0/1 table 254 link 7",
                "remove host route 198.18.250.2 via 198.18.0.1",
                "remove address 198.18.1.1/24 link 7",
            ]
        );
        assert!(ops.is_pristine());
        // Again (a second undo, or a crash after undoing part): already gone counts as done.
        assert!(undo_all(&mut ops, &journal.changes).is_empty());
        assert!(ops.is_pristine());
    }

    /// A Windows full tunnel (both families), as the planner makes it: `0.0.0.0/0` and `::/0`
    /// themselves through the tunnel, no rule, sysctl, mark or host route.
    fn windows_plan() -> NetworkPlan {
        NetworkPlan {
            routes: vec![
                Route {
                    prefix: net("0.0.0.0/0"),
                    table: MAIN_TABLE,
                },
                Route {
                    prefix: net("::/0"),
                    table: MAIN_TABLE,
                },
            ],
            method: FullTunnelMethod::BoundSockets,
            full_tunnel_families: vec![Family::Ipv4, Family::Ipv6],
            endpoint_routes: vec![],
            ..macos_plan()
        }
    }

    #[test]
    fn windows_full_tunnel_lowers_the_metric_of_each_full_family_before_its_routes() {
        let mut ops = FakeOps::new();
        let mut journal = FakeJournal::new(&ops);
        block_on(apply_with(&mut ops, &windows_plan(), &mut journal)).unwrap();
        assert_eq!(
            ops.log()[6..],
            [
                "journal IPv4 interface metric 0 on wg0",
                "lower IPv4 metric link 7",
                "journal IPv6 interface metric 0 on wg0",
                "lower IPv6 metric link 7",
                "journal route 0.0.0.0/0 dev wg0",
                "add route 0.0.0.0/0 table 254 link 7",
                "journal route ::/0 dev wg0",
                "add route ::/0 table 254 link 7",
            ]
        );
        // Not reverted: the adapter goes away with the tunnel.
        ops.clear_log();
        assert!(undo_all(&mut ops, &journal.changes).is_empty());
        assert!(!ops.log().iter().any(|l| l.contains("metric")));

        // A split tunnel, or another OS's full tunnel, keeps the automatic metric.
        for plan in [split_plan(), macos_plan(), full_plan()] {
            let mut ops = FakeOps::new();
            let mut journal = FakeJournal::new(&ops);
            block_on(apply_with(&mut ops, &plan, &mut journal)).unwrap();
            assert!(!ops.log().iter().any(|l| l.contains("metric")), "{plan:?}");
        }
    }

    #[test]
    fn an_endpoint_route_is_undone_after_the_tunnel_interface_is_gone() {
        // It is on the physical interface: it outlives the TUN, so undo removes it even then.
        let mut ops = FakeOps::new();
        let mut journal = FakeJournal::new(&ops);
        block_on(apply_with(&mut ops, &macos_plan(), &mut journal)).unwrap();
        ops.wg0 = None;
        ops.routes.clear();
        ops.addresses.clear();
        ops.clear_log();
        assert!(undo_all(&mut ops, &journal.changes).is_empty());
        assert_eq!(ops.log(), ["remove host route 198.18.250.2 via 198.18.0.1"]);
        assert!(ops.is_pristine());
    }

    #[test]
    fn a_refused_endpoint_route_is_withdrawn_and_no_half_is_added() {
        let mut ops = FakeOps::new();
        ops.fail = Some("add host route 198.18.250.2 via 198.18.0.1".into());
        let mut journal = FakeJournal::new(&ops);
        let err = block_on(apply_with(&mut ops, &macos_plan(), &mut journal)).unwrap_err();
        assert_eq!(
            err.to_string(),
            "failed to add host route 198.18.250.2 via 198.18.0.1: File exists"
        );
        assert!(!journal
            .changes
            .iter()
            .any(|c| matches!(c, NetworkChange::EndpointRouteAdded { .. })));
        assert!(ops.routes.is_empty() && ops.host_routes.is_empty());
    }

    #[test]
    fn an_os_without_host_routes_refuses_the_step_by_name() {
        /// The trait's defaults for the full-tunnel steps, as Linux and Windows have them.
        struct NoHostRoutes;
        impl NetworkOps for NoHostRoutes {
            async fn connect() -> anyhow::Result<Self> {
                Ok(NoHostRoutes)
            }
            async fn link(&mut self, _ifname: &str) -> io::Result<LinkInfo> {
                Ok(LinkInfo { index: 7 })
            }
            async fn add_address(&mut self, _link: u32, _address: IpNet) -> io::Result<()> {
                Ok(())
            }
            async fn remove_address(&mut self, _: u32, _: IpNet) -> io::Result<Removal> {
                Ok(Removal::Removed)
            }
            async fn set_mtu(&mut self, _link: u32, _mtu: u16) -> io::Result<()> {
                Ok(())
            }
            async fn set_up(&mut self, _link: u32) -> io::Result<()> {
                Ok(())
            }
            async fn add_route(&mut self, _: u32, _: IpNet, _: u32) -> io::Result<()> {
                Ok(())
            }
            async fn remove_route(&mut self, _: u32, _: IpNet, _: u32) -> io::Result<Removal> {
                Ok(Removal::Removed)
            }
        }
        let mut journal: Vec<NetworkChange> = Vec::new();
        let err = block_on(apply_with(&mut NoHostRoutes, &macos_plan(), &mut journal))
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("failed to add host route 198.18.250.2 via 198.18.0.1: host routes to the endpoints is not supported on"),
            "{err}"
        );
        let inputs = block_on(read_inputs_with(&mut NoHostRoutes, None)).unwrap();
        assert!(inputs.default_gateways.is_empty());
    }

    #[test]
    fn inputs_read_the_default_gateways_and_this_oses_method() {
        let mut ops = FakeOps::new();
        ops.gateways.insert(Family::Ipv4, en0_gateway());
        let inputs = block_on(read_inputs_with(&mut ops, None)).unwrap();
        assert_eq!(
            inputs.default_gateways,
            [(Family::Ipv4, en0_gateway())].into()
        );
        assert_eq!(inputs.method, FullTunnelMethod::native());
    }

    #[test]
    fn inputs_read_the_path_mtu_and_the_tables_in_use() {
        let mut ops = FakeOps::new();
        let inputs = block_on(read_inputs_with(
            &mut ops,
            Some("198.18.250.2".parse().unwrap()),
        ))
        .unwrap();
        assert_eq!(inputs.endpoint_mtu, Some(1400));
        assert_eq!(inputs.tables_in_use, [254, 255, 51820].into());
        let inputs = block_on(read_inputs_with(&mut ops, None)).unwrap();
        assert_eq!(inputs.endpoint_mtu, None);
    }

    #[test]
    fn changes_serialise_as_plain_readable_json() {
        let changes = [
            NetworkChange::RouteAdded {
                link: wg0(),
                route: net("0.0.0.0/0"),
                table: 51820,
            },
            NetworkChange::RuleAdded {
                rule: PolicyRule::NotFwmark {
                    family: Family::Ipv6,
                    fwmark: 7,
                    table: 51820,
                },
            },
            NetworkChange::SysctlSet {
                name: SRC_VALID_MARK.into(),
                value: "1".into(),
                previous: "0".into(),
            },
            NetworkChange::EndpointRouteAdded {
                host: "198.18.250.2".parse().unwrap(),
                gateway: en0_gateway(),
            },
        ];
        let json = serde_json::to_string(&changes).unwrap();
        assert_eq!(
            json,
            r#"[{"route_added":{"link":{"name":"wg0","index":7},"route":"0.0.0.0/0","table":51820}},{"rule_added":{"rule":{"not_fwmark":{"family":"ipv6","fwmark":7,"table":51820}}}},{"sysctl_set":{"name":"net.ipv4.conf.all.src_valid_mark","value":"1","previous":"0"}},{"endpoint_route_added":{"host":"198.18.250.2","gateway":{"address":"198.18.0.1","interface":"en0"}}}]"#
        );
        let back: Vec<NetworkChange> = serde_json::from_str(&json).unwrap();
        assert_eq!(back, changes);
    }

    #[test]
    fn os_errors_read_without_the_errno_suffix() {
        // ERROR_ALREADY_EXISTS on Windows, worded by the system.
        let code = if cfg!(windows) { 183 } else { libc::EEXIST };
        let err = io::Error::from_raw_os_error(code);
        assert_eq!(
            format!("{} (os error {code})", describe(&err)),
            err.to_string()
        );
        assert!(!describe(&err).is_empty());
        if cfg!(target_os = "linux") {
            assert_eq!(describe(&err), "File exists");
        }
        assert_eq!(describe(&io::Error::other("plain")), "plain");
    }

    #[test]
    fn apply_and_undo_futures_are_send() {
        fn assert_send<T: Send>(_: T) {}
        let plan = split_plan();
        let mut journal: Vec<NetworkChange> = Vec::new();
        assert_send(apply(&plan, &mut journal));
        let change = NetworkChange::LinkUp { link: wg0() };
        assert_send(undo(&change));
        assert_send(read_inputs(None));
    }
}
