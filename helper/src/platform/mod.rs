//! The platform layer: what a tunnel changes on the host outside its own sockets — today the tunnel
//! interface's addresses, its MTU, its link state and the routes for its peers' AllowedIPs.
//!
//! It works in two halves, "plan, then apply":
//! - [`plan`] is a pure function from a [`TunnelConfig`] to a [`NetworkPlan`]: which addresses, which
//!   MTU, which routes in which table. It refuses what Warren cannot do safely yet (a full tunnel, a
//!   peer endpoint inside the tunnel's own AllowedIPs) with an error that names the values. All the
//!   policy lives here, so it is unit-tested without root.
//! - [`apply`] executes a plan against the OS and returns an [`AppliedNetwork`]: the exact list of
//!   changes made, in order, as plain [`NetworkChange`] values (so a later journal can persist them).
//!   If a step fails, the changes already made are rolled back in reverse order before the error is
//!   returned. [`AppliedNetwork::undo`] removes exactly what was added.
//!
//! Per-OS code is chosen once, below: each OS module implements the private [`NetworkOps`] trait —
//! a handful of primitive steps (find the link, add/remove an address or a route, set the MTU, set
//! the link up). The ordering, the bookkeeping and the rollback are written once, here, on top of
//! that trait, so the OS modules cannot drift and the rollback logic is tested with an in-memory
//! double. No `#[cfg]` appears in a public signature; OSes without a real module get `unsupported`,
//! whose every step fails with [`Unsupported`].
//!
//! What it must not do: remove the tunnel interface itself (a TUN disappears when its fd closes),
//! or touch anything it did not add.
//!
//! Layout: `mod.rs` the facade, the trait and the apply/undo bookkeeping; `plan.rs` the pure
//! planner; `linux.rs` rtnetlink; `unsupported.rs` the stub for every other OS.

pub mod dns;
pub mod firewall;
mod plan;

#[cfg(target_os = "linux")]
mod linux;
#[cfg(target_os = "linux")]
use linux as imp;

#[cfg(not(target_os = "linux"))]
mod unsupported;
#[cfg(not(target_os = "linux"))]
use unsupported as imp;

// Part of the API for the CLI and the daemon; not every item has a caller in every build yet.
#[allow(unused_imports)]
pub use plan::{plan, NetworkPlan, PlanError, DEFAULT_MTU, MAIN_TABLE};

use ipnet::IpNet;
use std::fmt;
use std::io;

#[cfg(doc)]
use warren_proto::config::TunnelConfig;

/// The error every step returns on an OS that has no implementation yet.
// Only the stub constructs it, and Linux builds no stub.
#[cfg_attr(target_os = "linux", allow(dead_code))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("{what} is not supported on {os} yet")]
pub struct Unsupported {
    /// What was attempted, e.g. "configuring tunnel addresses and routes".
    pub what: &'static str,
    /// `std::env::consts::OS`.
    pub os: &'static str,
}

/// One change [`apply`] made to the system, recorded the moment it succeeded.
///
/// Deliberately plain data (no handles, no serde), so a crash-recovery journal can persist the list
/// as it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NetworkChange {
    /// `ip address add <address> dev <ifname>`.
    AddressAdded(IpNet),
    /// `ip link set <ifname> mtu <mtu>`. Not reverted: the link belongs to the tunnel.
    MtuSet(u16),
    /// `ip link set <ifname> up`. Not reverted: the link belongs to the tunnel.
    LinkUp,
    /// `ip route add <route> dev <ifname> table <table>`.
    RouteAdded {
        /// The destination prefix.
        route: IpNet,
        /// The routing table id ([`MAIN_TABLE`] for the main table).
        table: u32,
    },
}

/// What [`apply`] changed on one interface; hand it back to [`AppliedNetwork::undo`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[must_use = "dropping an AppliedNetwork leaves its routes and addresses in place; call undo()"]
pub struct AppliedNetwork {
    ifname: String,
    ifindex: u32,
    changes: Vec<NetworkChange>,
}

impl AppliedNetwork {
    /// The interface the changes were made on.
    #[allow(dead_code)] // For the journal and the daemon (a later issue).
    pub fn ifname(&self) -> &str {
        &self.ifname
    }

    /// The changes made, in the order they were made.
    #[allow(dead_code)] // For the journal and the daemon (a later issue).
    pub fn changes(&self) -> &[NetworkChange] {
        &self.changes
    }

    /// Removes exactly the routes and addresses that [`apply`] added, newest first. A failure to
    /// remove one is logged and the rest are still attempted; the returned error lists every
    /// failure. Something that is already gone (for example because the interface was closed)
    /// counts as removed. The MTU and the link state are left alone, and so is the link.
    pub async fn undo(self) -> anyhow::Result<()> {
        let mut ops = <imp::Ops as NetworkOps>::connect().await?;
        undo_with(&mut ops, self).await
    }
}

/// Applies `plan` to the system: finds the interface, adds each address, sets the MTU, sets the
/// link up, and adds each route (IPv4 and IPv6) on the interface in the plan's table — in that
/// order, recording each change as it is made. If a step fails, the changes already made are undone
/// in reverse order and the error names the failed step and its value, e.g.
/// `failed to add route 198.18.4.0/24 dev wg0: File exists`.
pub async fn apply(plan: &NetworkPlan) -> anyhow::Result<AppliedNetwork> {
    let mut ops = <imp::Ops as NetworkOps>::connect().await?;
    apply_with(&mut ops, plan).await
}

/// A network interface as the OS reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct LinkInfo {
    /// The interface index.
    index: u32,
}

/// The outcome of a removal that did not fail.
// The stub never removes anything, so on other OSes nothing constructs it.
#[cfg_attr(not(target_os = "linux"), allow(dead_code))]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Removal {
    /// The OS removed it.
    Removed,
    /// It was not there any more (the interface is gone, or someone else removed it).
    AlreadyGone,
}

/// The primitive steps each OS module implements. Private: the facade above is the only caller,
/// and the ordering, bookkeeping and rollback live in the facade, not here.
///
/// Errors are `io::Error`s carrying the OS error code where there is one, so messages read like
/// `File exists`.
trait NetworkOps: Sized {
    /// Opens whatever the OS needs (on Linux, a netlink socket whose connection task is spawned on
    /// the current tokio runtime).
    async fn connect() -> anyhow::Result<Self>;
    /// Looks an interface up by name.
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
}

/// An OS error without the " (os error N)" suffix that `io::Error` adds: `File exists`.
fn describe(err: &io::Error) -> String {
    let text = err.to_string();
    match text.rfind(" (os error ") {
        Some(cut) if text.ends_with(')') => text[..cut].to_owned(),
        _ => text,
    }
}

/// How a change is written in messages, in `ip` command style.
struct Step<'a> {
    change: &'a NetworkChange,
    ifname: &'a str,
}

impl fmt::Display for Step<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ifname = self.ifname;
        match self.change {
            NetworkChange::AddressAdded(address) => write!(f, "address {address} dev {ifname}"),
            NetworkChange::MtuSet(mtu) => write!(f, "mtu {mtu} on {ifname}"),
            NetworkChange::LinkUp => write!(f, "link {ifname} up"),
            NetworkChange::RouteAdded { route, table } if *table == MAIN_TABLE => {
                write!(f, "route {route} dev {ifname}")
            }
            NetworkChange::RouteAdded { route, table } => {
                write!(f, "route {route} dev {ifname} table {table}")
            }
        }
    }
}

async fn apply_with<O: NetworkOps>(
    ops: &mut O,
    plan: &NetworkPlan,
) -> anyhow::Result<AppliedNetwork> {
    let link = ops.link(&plan.ifname).await.map_err(|err| {
        anyhow::anyhow!(
            "failed to find interface {}: {}",
            plan.ifname,
            describe(&err)
        )
    })?;
    let mut applied = AppliedNetwork {
        ifname: plan.ifname.clone(),
        ifindex: link.index,
        changes: Vec::new(),
    };

    let steps = plan
        .addresses
        .iter()
        .map(|&address| NetworkChange::AddressAdded(address))
        .chain([NetworkChange::MtuSet(plan.mtu), NetworkChange::LinkUp])
        .chain(plan.routes.iter().map(|&route| NetworkChange::RouteAdded {
            route,
            table: plan.table,
        }));

    for change in steps {
        let result = match change {
            NetworkChange::AddressAdded(address) => ops.add_address(link.index, address).await,
            NetworkChange::MtuSet(mtu) => ops.set_mtu(link.index, mtu).await,
            NetworkChange::LinkUp => ops.set_up(link.index).await,
            NetworkChange::RouteAdded { route, table } => {
                ops.add_route(link.index, route, table).await
            }
        };
        let verb = match change {
            NetworkChange::MtuSet(_) | NetworkChange::LinkUp => "set",
            NetworkChange::AddressAdded(_) | NetworkChange::RouteAdded { .. } => "add",
        };
        match result {
            Ok(()) => {
                tracing::debug!(
                    "{verb} {}",
                    Step {
                        change: &change,
                        ifname: &plan.ifname
                    }
                );
                applied.changes.push(change);
            }
            Err(err) => {
                let step = Step {
                    change: &change,
                    ifname: &plan.ifname,
                };
                let mut message = format!("failed to {verb} {step}: {}", describe(&err));
                if let Err(failures) = revert(ops, &applied).await {
                    message.push_str(&format!(
                        " (and rolling back the earlier changes failed: {failures})"
                    ));
                }
                return Err(anyhow::anyhow!(message));
            }
        }
    }
    Ok(applied)
}

async fn undo_with<O: NetworkOps>(ops: &mut O, applied: AppliedNetwork) -> anyhow::Result<()> {
    revert(ops, &applied).await.map_err(|failures| {
        anyhow::anyhow!(
            "failed to undo the network changes on {}: {failures}",
            applied.ifname
        )
    })
}

/// Reverts `applied.changes` newest first, continuing past failures; on failure returns them
/// joined into one line.
async fn revert<O: NetworkOps>(ops: &mut O, applied: &AppliedNetwork) -> Result<(), String> {
    let mut failures = Vec::new();
    for change in applied.changes.iter().rev() {
        let step = Step {
            change,
            ifname: &applied.ifname,
        };
        let result = match *change {
            NetworkChange::AddressAdded(address) => {
                ops.remove_address(applied.ifindex, address).await
            }
            NetworkChange::RouteAdded { route, table } => {
                ops.remove_route(applied.ifindex, route, table).await
            }
            // The link is the tunnel's own and goes away with it; nothing to restore.
            NetworkChange::MtuSet(_) | NetworkChange::LinkUp => continue,
        };
        match result {
            Ok(Removal::Removed) => tracing::debug!("removed {step}"),
            Ok(Removal::AlreadyGone) => tracing::debug!("{step} was already gone"),
            Err(err) => {
                let failure = format!("failed to remove {step}: {}", describe(&err));
                tracing::warn!("{failure}");
                failures.push(failure);
            }
        }
    }
    if failures.is_empty() {
        Ok(())
    } else {
        Err(failures.join("; "))
    }
}

#[cfg(test)]
mod tests {
    //! The apply/undo bookkeeping against an in-memory double of the OS.

    use super::*;
    use std::collections::BTreeSet;

    /// An in-memory "kernel" with one link, `wg0`, that can be told to fail one step.
    #[derive(Default)]
    struct FakeOps {
        addresses: Vec<IpNet>,
        routes: BTreeSet<(IpNet, u32)>,
        mtu: Option<u16>,
        up: bool,
        /// Every call, in order, as text.
        log: Vec<String>,
        /// Calls whose log text equals this fail with EEXIST.
        fail: Option<String>,
        /// Removals whose log text is in here fail with EBUSY.
        fail_removal: BTreeSet<String>,
    }

    impl FakeOps {
        fn call(&mut self, what: String) -> io::Result<()> {
            let failed = self.fail.as_deref() == Some(what.as_str());
            let failed_removal = self.fail_removal.contains(&what);
            self.log.push(what);
            if failed {
                Err(io::Error::from_raw_os_error(libc::EEXIST))
            } else if failed_removal {
                Err(io::Error::from_raw_os_error(libc::EBUSY))
            } else {
                Ok(())
            }
        }
    }

    impl NetworkOps for FakeOps {
        async fn connect() -> anyhow::Result<Self> {
            Ok(Self::default())
        }
        async fn link(&mut self, ifname: &str) -> io::Result<LinkInfo> {
            if ifname == "wg0" {
                Ok(LinkInfo { index: 7 })
            } else {
                Err(io::Error::from_raw_os_error(libc::ENODEV))
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
            Ok(if self.addresses.len() < before {
                Removal::Removed
            } else {
                Removal::AlreadyGone
            })
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
            Ok(if self.routes.remove(&(route, table)) {
                Removal::Removed
            } else {
                Removal::AlreadyGone
            })
        }
    }

    fn net(s: &str) -> IpNet {
        s.parse().unwrap()
    }

    fn sample_plan() -> NetworkPlan {
        NetworkPlan {
            ifname: "wg0".into(),
            addresses: vec![net("198.18.1.1/24"), net("fd00:1::1/64")],
            mtu: 1420,
            routes: vec![net("198.18.4.0/24"), net("fd00:4::/64")],
            table: MAIN_TABLE,
        }
    }

    fn block_on<F: std::future::Future>(future: F) -> F::Output {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(future)
    }

    #[test]
    fn apply_makes_each_change_in_order_and_records_it() {
        let mut ops = FakeOps::default();
        let applied = block_on(apply_with(&mut ops, &sample_plan())).unwrap();
        assert_eq!(
            ops.log,
            [
                "add address 198.18.1.1/24 link 7",
                "add address fd00:1::1/64 link 7",
                "set mtu 1420 link 7",
                "set up link 7",
                "add route 198.18.4.0/24 table 254 link 7",
                "add route fd00:4::/64 table 254 link 7",
            ]
        );
        assert_eq!(applied.ifname(), "wg0");
        assert_eq!(
            applied.changes(),
            [
                NetworkChange::AddressAdded(net("198.18.1.1/24")),
                NetworkChange::AddressAdded(net("fd00:1::1/64")),
                NetworkChange::MtuSet(1420),
                NetworkChange::LinkUp,
                NetworkChange::RouteAdded {
                    route: net("198.18.4.0/24"),
                    table: MAIN_TABLE
                },
                NetworkChange::RouteAdded {
                    route: net("fd00:4::/64"),
                    table: MAIN_TABLE
                },
            ]
        );
    }

    #[test]
    fn undo_removes_routes_then_addresses_newest_first() {
        let mut ops = FakeOps::default();
        let applied = block_on(apply_with(&mut ops, &sample_plan())).unwrap();
        ops.log.clear();
        block_on(undo_with(&mut ops, applied)).unwrap();
        assert_eq!(
            ops.log,
            [
                "remove route fd00:4::/64 table 254 link 7",
                "remove route 198.18.4.0/24 table 254 link 7",
                "remove address fd00:1::1/64 link 7",
                "remove address 198.18.1.1/24 link 7",
            ]
        );
        assert!(ops.addresses.is_empty());
        assert!(ops.routes.is_empty());
    }

    #[test]
    fn a_failed_step_rolls_back_what_was_done_and_names_the_step() {
        let mut ops = FakeOps {
            fail: Some("add route fd00:4::/64 table 254 link 7".into()),
            ..FakeOps::default()
        };
        let err = block_on(apply_with(&mut ops, &sample_plan())).unwrap_err();
        assert_eq!(
            err.to_string(),
            "failed to add route fd00:4::/64 dev wg0: File exists"
        );
        assert!(
            ops.addresses.is_empty(),
            "addresses left behind: {:?}",
            ops.addresses
        );
        assert!(
            ops.routes.is_empty(),
            "routes left behind: {:?}",
            ops.routes
        );
        assert_eq!(
            ops.log[6..],
            [
                "remove route 198.18.4.0/24 table 254 link 7",
                "remove address fd00:1::1/64 link 7",
                "remove address 198.18.1.1/24 link 7",
            ]
        );
    }

    #[test]
    fn a_failed_first_step_needs_no_rollback() {
        let mut ops = FakeOps {
            fail: Some("add address 198.18.1.1/24 link 7".into()),
            ..FakeOps::default()
        };
        let err = block_on(apply_with(&mut ops, &sample_plan())).unwrap_err();
        assert_eq!(
            err.to_string(),
            "failed to add address 198.18.1.1/24 dev wg0: File exists"
        );
        assert_eq!(ops.log, ["add address 198.18.1.1/24 link 7"]);
    }

    #[test]
    fn routes_in_another_table_are_named_with_it() {
        let mut ops = FakeOps {
            fail: Some("add route 198.18.4.0/24 table 1234 link 7".into()),
            ..FakeOps::default()
        };
        let plan = NetworkPlan {
            table: 1234,
            ..sample_plan()
        };
        let err = block_on(apply_with(&mut ops, &plan)).unwrap_err();
        assert_eq!(
            err.to_string(),
            "failed to add route 198.18.4.0/24 dev wg0 table 1234: File exists"
        );
    }

    #[test]
    fn a_missing_interface_is_named() {
        let mut ops = FakeOps::default();
        let plan = NetworkPlan {
            ifname: "wg9".into(),
            ..sample_plan()
        };
        let err = block_on(apply_with(&mut ops, &plan)).unwrap_err();
        assert_eq!(
            err.to_string(),
            "failed to find interface wg9: No such device"
        );
        assert!(ops.log.is_empty());
    }

    #[test]
    fn a_failed_rollback_is_reported_too() {
        let mut ops = FakeOps {
            fail: Some("add route fd00:4::/64 table 254 link 7".into()),
            fail_removal: ["remove address 198.18.1.1/24 link 7".to_string()].into(),
            ..FakeOps::default()
        };
        let err = block_on(apply_with(&mut ops, &sample_plan())).unwrap_err();
        assert_eq!(
            err.to_string(),
            "failed to add route fd00:4::/64 dev wg0: File exists (and rolling back the earlier \
             changes failed: failed to remove address 198.18.1.1/24 dev wg0: Device or resource busy)"
        );
    }

    #[test]
    fn undo_continues_past_failures_and_lists_them() {
        let mut ops = FakeOps::default();
        let applied = block_on(apply_with(&mut ops, &sample_plan())).unwrap();
        ops.fail_removal = [
            "remove route fd00:4::/64 table 254 link 7".to_string(),
            "remove address 198.18.1.1/24 link 7".to_string(),
        ]
        .into();
        let err = block_on(undo_with(&mut ops, applied)).unwrap_err();
        assert_eq!(
            err.to_string(),
            "failed to undo the network changes on wg0: failed to remove route fd00:4::/64 dev wg0: \
             Device or resource busy; failed to remove address 198.18.1.1/24 dev wg0: Device or \
             resource busy"
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
        let mut ops = FakeOps::default();
        let applied = block_on(apply_with(&mut ops, &sample_plan())).unwrap();
        ops.addresses.clear();
        ops.routes.clear();
        block_on(undo_with(&mut ops, applied)).unwrap();
    }

    #[test]
    fn os_errors_read_without_the_errno_suffix() {
        assert_eq!(
            describe(&io::Error::from_raw_os_error(libc::EEXIST)),
            "File exists"
        );
        assert_eq!(describe(&io::Error::other("plain")), "plain");
    }

    #[test]
    fn apply_and_undo_futures_are_send() {
        fn assert_send<T: Send>(_: T) {}
        let plan = sample_plan();
        assert_send(apply(&plan));
        assert_send(
            AppliedNetwork {
                ifname: "wg0".into(),
                ifindex: 1,
                changes: vec![],
            }
            .undo(),
        );
    }
}
