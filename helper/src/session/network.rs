//! What a running tunnel does when the network under it changes: the one place that re-checks
//! what depends on the network, fed by the network monitor ([`crate::platform::monitor`]).
//!
//! On each (debounced) change, in this order — what to do is [`react`], a plain function:
//! 1. **Handshakes at once** with every peer that has an endpoint ([`Control::NetworkChanged`]),
//!    instead of waiting for WireGuard's timers: a peer without persistent keepalive would
//!    otherwise not learn where we are now until we next send it something, and a dead path
//!    would not be noticed for up to two minutes. The owner hears the change's number (the
//!    daemon shows "reconnecting (network changed)" until a handshake completes after it).
//! 2. **Host names resolved again** (the endpoint watcher, [`super::endpoints`]), for peers
//!    whose endpoint is a name: the new network may resolve it differently. As for any
//!    re-resolution, a new address is used only while the peer has not answered.
//! 3. **The network plan re-checked** ([`crate::platform::replan`]) when a default route or an
//!    address changed and something in the plan follows the network: the MTU where it was
//!    derived from the path to the endpoint (split tunnels without `MTU =`), or, for a macOS
//!    full tunnel, its endpoint host routes, matched to the new default gateway and the
//!    endpoints in use ([`crate::platform::follow_endpoints`]). Each new change is journaled
//!    before it is made, like the first plan's.
//!
//! And when the **endpoints in use** change (a peer roamed, or `wg set` moved it; published by
//! the endpoint watcher), a macOS full tunnel's endpoint host routes follow them
//! ([`crate::platform::follow_endpoints`]): a route for the new address via the current default
//! gateway, journaled first, and the old address's route removed.
//!
//! Without a monitor (the OS refused one) the tunnel runs as before, on WireGuard's timers; the
//! log says so once (the endpoint host routes still follow the endpoints).
//!
//! Next to it, [`follow_sleep`]: logind's resume signal (Linux) starts the same fresh handshakes
//! as the data plane's own clock-jump detection.

use crate::dataplane::{Control, NetworkChangeHandled};
use crate::platform::monitor::{ChangeKind, ChangeSet, Monitor, Scope};
use crate::platform::{self, NetworkChange, NetworkPlan, Recorder};
use std::net::{IpAddr, SocketAddr};
use tokio::sync::{mpsc, oneshot, watch};
use warren_proto::config::TunnelConfig;
use warren_proto::key::PublicKey;

/// What a tunnel has that follows the network, for [`react`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Dependents {
    /// Some peer's endpoint is a host name.
    pub host_names: bool,
    /// The plan has something that follows the network: an MTU derived from the endpoint's
    /// path, or endpoint host routes (macOS full tunnels).
    pub plan_follows_network: bool,
}

/// What to do about one burst of changes (see the module docs).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Reaction {
    /// Start handshakes with every peer that has an endpoint.
    pub handshakes: bool,
    /// Resolve the peers' host names again.
    pub reresolve: bool,
    /// Read the network again and re-check the plan.
    pub replan: bool,
}

/// What to do about `changes`, for a tunnel with `dependents`. Every relevant change may have
/// moved us (a new address or way out), so it always means handshakes, and names resolved
/// again when there are names; the plan only depends on the default route's gateway and the
/// path to the endpoint, which a link's state alone does not change (a link that goes down
/// takes its routes with it, and that is seen as a route change).
pub fn react(changes: &ChangeSet, dependents: Dependents) -> Reaction {
    if changes.kinds.is_empty() {
        return Reaction::default();
    }
    let routing = changes
        .kinds
        .iter()
        .any(|kind| matches!(kind, ChangeKind::DefaultRoute | ChangeKind::Address));
    Reaction {
        handshakes: true,
        reresolve: dependents.host_names,
        replan: routing && dependents.plan_follows_network,
    }
}

/// Everything [`follow`] works with.
pub struct Follower<'a> {
    /// The tunnel's configuration.
    pub config: &'a TunnelConfig,
    /// The plan in force (updated as re-plans are applied).
    pub plan: NetworkPlan,
    /// The first peer's endpoint, whose path the MTU is derived from.
    pub first_endpoint: Option<IpAddr>,
    /// The addresses host-name endpoints resolved to at start, for the planner (which would
    /// otherwise plan no endpoint route for them).
    pub resolved_endpoints: Vec<(PublicKey, SocketAddr)>,
    /// What follows the network.
    pub dependents: Dependents,
    /// The driver.
    pub control: mpsc::Sender<Control>,
    /// Asks the endpoint watcher to resolve the host names now.
    pub resolve_now: mpsc::Sender<()>,
    /// Tells the session's owner each change's number once its handshakes started.
    pub changes: mpsc::UnboundedSender<u64>,
    /// The endpoint addresses in use, from the endpoint watcher, when the plan's endpoint host
    /// routes follow them ([`platform::routes_follow_endpoints`]).
    pub endpoints: Option<watch::Receiver<Vec<IpAddr>>>,
}

/// Follows the network until the driver goes away (then it waits forever: the session's other
/// branches end it). See the module docs.
pub async fn follow(mut follower: Follower<'_>, journal: &mut impl Recorder<NetworkChange>) {
    let ifname = follower.plan.ifname.clone();
    let scope = Scope {
        ifname: ifname.clone(),
        index: None,
        own_tables: follower.plan.full_tunnel_table().into_iter().collect(),
    };
    let mut monitor = match Monitor::open(scope).await {
        Ok(monitor) => Some(monitor),
        Err(e) => {
            tracing::warn!(
                "{ifname}: no network monitor ({e}); a network change is noticed only by \
                 WireGuard's timers"
            );
            None
        }
    };
    loop {
        let changes = tokio::select! {
            result = next_change(&mut monitor) => match result {
                Ok(changes) => changes,
                Err(e) => {
                    tracing::warn!("{ifname}: the network monitor stopped: {e}");
                    monitor = None;
                    continue;
                }
            },
            Some(in_use) = next_endpoints(&mut follower.endpoints) => {
                follow_endpoints(&mut follower, &in_use, journal).await;
                continue;
            }
        };
        let reaction = react(&changes, follower.dependents);
        tracing::info!("{ifname}: the network changed ({changes})");
        if reaction.handshakes {
            let (tx, rx) = oneshot::channel();
            if follower
                .control
                .send(Control::NetworkChanged(tx))
                .await
                .is_err()
            {
                return std::future::pending().await;
            }
            if let Ok(NetworkChangeHandled { handshakes, number }) = rx.await {
                if handshakes > 0 {
                    let _ = follower.changes.send(number);
                }
            }
        }
        if reaction.reresolve {
            let _ = follower.resolve_now.try_send(());
        }
        if reaction.replan {
            match &follower.endpoints {
                // A macOS full tunnel: its only network-dependent part is the endpoint host
                // routes (a full tunnel's MTU stays), and they follow the endpoints in use — a
                // peer may have roamed since the start — not the configured ones.
                Some(endpoints) => {
                    let in_use = endpoints.borrow().clone();
                    follow_endpoints(&mut follower, &in_use, journal).await;
                }
                None => replan(&mut follower, journal).await,
            }
        }
    }
}

/// The monitor's next changes; never, without a monitor.
async fn next_change(monitor: &mut Option<Monitor>) -> std::io::Result<ChangeSet> {
    match monitor {
        Some(monitor) => monitor.changed().await,
        None => std::future::pending().await,
    }
}

/// The next endpoint addresses in use; never, when they are not followed, and `None` once the
/// watcher is gone (then never again).
async fn next_endpoints(
    endpoints: &mut Option<watch::Receiver<Vec<IpAddr>>>,
) -> Option<Vec<IpAddr>> {
    let Some(receiver) = endpoints else {
        return std::future::pending().await;
    };
    if receiver.changed().await.is_err() {
        *endpoints = None;
        return None;
    }
    let in_use = receiver.borrow_and_update().clone();
    Some(in_use)
}

/// The endpoint host routes made to match the endpoints in use; a failure is logged and the
/// routes in force stay (the next change tries again).
async fn follow_endpoints(
    follower: &mut Follower<'_>,
    in_use: &[IpAddr],
    journal: &mut impl Recorder<NetworkChange>,
) {
    let ifname = follower.plan.ifname.clone();
    let result = async {
        let inputs = platform::read_inputs(None).await?;
        let change = platform::follow_endpoints(&follower.plan, in_use, &inputs.default_gateways);
        if change.is_empty() {
            return anyhow::Ok(());
        }
        platform::reapply(&change, &ifname, journal).await?;
        apply_routes(follower, &change);
        Ok(())
    }
    .await;
    if let Err(e) = result {
        tracing::warn!("{ifname}: failed to route the endpoints in use outside the tunnel: {e:#}");
    }
}

/// Records in the plan in force the endpoint routes `change` removed and added.
fn apply_routes(follower: &mut Follower<'_>, change: &platform::Replan) {
    let ifname = &follower.plan.ifname;
    for route in &change.stale_endpoint_routes {
        tracing::info!(
            "{ifname}: no peer uses {} now; its host route is removed",
            route.host
        );
    }
    for route in &change.new_endpoint_routes {
        tracing::info!(
            "{ifname}: endpoint {} now routed via {}",
            route.host,
            route.gateway
        );
    }
    follower
        .plan
        .endpoint_routes
        .retain(|route| !change.stale_endpoint_routes.contains(route));
    follower
        .plan
        .endpoint_routes
        .extend(change.new_endpoint_routes.iter().cloned());
}

/// Step 3 of the module docs; a failure is logged and the plan in force stays.
async fn replan(follower: &mut Follower<'_>, journal: &mut impl Recorder<NetworkChange>) {
    let ifname = follower.plan.ifname.clone();
    let result = async {
        let mut inputs = platform::read_inputs(follower.first_endpoint).await?;
        inputs.resolved_endpoints = follower.resolved_endpoints.clone();
        // The tables in use now include the tunnel's own, which the plan in force keeps (and
        // the re-check compares only the MTU and the endpoint routes).
        inputs.tables_in_use.clear();
        let fresh = platform::plan(follower.config, &ifname, &inputs)?;
        let follows = platform::mtu_follows_path(follower.config, &inputs);
        let change = platform::replan(&follower.plan, &fresh, follows);
        if change.is_empty() {
            tracing::debug!("{ifname}: the network plan still holds");
            return anyhow::Ok(());
        }
        platform::reapply(&change, &ifname, journal).await?;
        if let Some(mtu) = change.mtu {
            tracing::info!("{ifname}: MTU now {mtu} (the path to the endpoint changed)");
            follower.plan.mtu = mtu;
        }
        Ok(())
    }
    .await;
    if let Err(e) = result {
        tracing::warn!("{ifname}: failed to follow the network change: {e:#}");
    }
}

/// What of `plan` (for `config`) follows the network (see [`Dependents`]).
pub fn plan_follows_network(config: &TunnelConfig, plan: &NetworkPlan) -> bool {
    let mtu_from_path = config.interface.mtu.is_none() && !config.is_full_tunnel();
    mtu_from_path || platform::routes_follow_endpoints(plan)
}

/// Tells the driver of every resume the OS announces (Linux: logind's `PrepareForSleep(false)`
/// on the system bus, see [`crate::sys::logind`]); waits forever where there is no such signal
/// (no system bus, another OS), and once the driver goes away.
pub async fn follow_sleep(ifname: &str, control: mpsc::Sender<Control>) {
    #[cfg(target_os = "linux")]
    if let Some(bus) = crate::sys::logind::system_bus().await {
        let result = crate::sys::logind::watch(&bus, || {
            tracing::info!("{ifname}: logind says the system resumed");
            // A full queue means the driver is busy with earlier requests; its own clock
            // comparison sees the same resume.
            let _ = control.try_send(Control::Resumed);
        })
        .await;
        if let Err(e) = result {
            tracing::debug!("{ifname}: logind's sleep signals stopped: {e}");
        }
    }
    let _ = (ifname, control);
    std::future::pending().await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn changes(kinds: &[ChangeKind]) -> ChangeSet {
        ChangeSet {
            kinds: kinds.to_vec(),
        }
    }

    #[test]
    fn every_change_means_handshakes_and_names_only_when_there_are_names() {
        let plain = Dependents::default();
        let named = Dependents {
            host_names: true,
            ..Dependents::default()
        };
        for kind in [
            ChangeKind::DefaultRoute,
            ChangeKind::Address,
            ChangeKind::Link,
        ] {
            let reaction = react(&changes(&[kind]), plain);
            assert!(reaction.handshakes && !reaction.reresolve && !reaction.replan);
            let reaction = react(&changes(&[kind]), named);
            assert!(reaction.handshakes && reaction.reresolve, "{kind}");
        }
        assert_eq!(react(&changes(&[]), named), Reaction::default());
    }

    #[test]
    fn the_plan_is_rechecked_when_the_way_out_changed_and_something_follows_it() {
        let follows = Dependents {
            plan_follows_network: true,
            ..Dependents::default()
        };
        assert!(react(&changes(&[ChangeKind::DefaultRoute]), follows).replan);
        assert!(react(&changes(&[ChangeKind::Address]), follows).replan);
        assert!(
            !react(&changes(&[ChangeKind::Link]), follows).replan,
            "a link's state alone"
        );
        assert!(
            react(
                &changes(&[ChangeKind::Link, ChangeKind::DefaultRoute]),
                follows
            )
            .replan
        );
        assert!(
            !react(&changes(&[ChangeKind::DefaultRoute]), Dependents::default()).replan,
            "nothing in the plan follows the network"
        );
    }
}
