//! What a running tunnel's network plan needs after the network under it changed (the network
//! monitor said so): the same planner run again on fresh facts, compared with the plan in force
//! ([`replan`], a plain function), and the difference applied ([`reapply`]) on the same journal
//! contract as the first plan — each new change journaled before it is made.
//!
//! Two things follow the network:
//! - **The MTU** ([`replan`]), where it was derived from the path to the first endpoint (no
//!   `MTU =`): the path's MTU may differ on the new network. Only for tunnels whose endpoints are
//!   routed outside the tunnel by the main table (split tunnels): a full tunnel's own route lookup
//!   would go through the tunnel itself, so its MTU stays what it was at start. And only when
//!   the fresh path MTU is known: an unknown path (no route at this moment) changes nothing.
//! - **macOS's endpoint host routes** (a full tunnel's `route add -host <endpoint> <gateway>`,
//!   [`follow_endpoints`]): they follow the default gateway *and* the endpoints the data plane
//!   uses. When the default gateway changed, each route moves to the new one; an endpoint with
//!   no gateway now keeps its route until one appears (a route via a gateway that is gone carries
//!   nothing, and one that comes back is right again). A peer that roams (its authenticated
//!   packets now come from another address), or an endpoint set with `wg set`, would otherwise be
//!   answered through the `/1` halves, into the tunnel itself: the session hears the endpoints in
//!   use from the endpoint watcher; each one of a full-tunnel family that has no host route gets
//!   one via its family's current default gateway, and the route of an address no peer uses any
//!   more is removed — wg-quick's `darwin.bash` (its `monitor_daemon` re-runs
//!   `set_endpoint_direct_route` from `wg show endpoints`) does the same; Mullvad's talpid-routing
//!   instead routes its one relay, which does not roam.

use super::{
    describe, EndpointRoute, Family, FullTunnelMethod, Gateway, Link, NetworkChange, NetworkOps,
    NetworkPlan, PlanInputs, Recorder,
};
use anyhow::anyhow;
use std::collections::BTreeMap;
use std::net::IpAddr;
use warren_proto::config::TunnelConfig;

/// The difference between the plan in force and a fresh one; empty when nothing is to change.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Replan {
    /// The interface's new MTU.
    pub mtu: Option<u16>,
    /// Endpoint host routes to remove (their gateway is no longer the default one).
    pub stale_endpoint_routes: Vec<EndpointRoute>,
    /// Endpoint host routes to add in their place, or for endpoints that had none.
    pub new_endpoint_routes: Vec<EndpointRoute>,
}

impl Replan {
    /// Whether nothing is to change.
    pub fn is_empty(&self) -> bool {
        self.mtu.is_none()
            && self.stale_endpoint_routes.is_empty()
            && self.new_endpoint_routes.is_empty()
    }
}

/// Whether the MTU of `config`'s tunnel follows the path to its endpoint when the network
/// changes, given the facts just read (see the module docs).
pub fn mtu_follows_path(config: &TunnelConfig, fresh: &PlanInputs) -> bool {
    config.interface.mtu.is_none() && !config.is_full_tunnel() && fresh.endpoint_mtu.is_some()
}

/// What changes from `current` to `fresh` (both plans of the same tunnel; `fresh` made from
/// facts read after the network changed): the MTU, when `mtu_follows_path` (see
/// [`mtu_follows_path`]). The endpoint host routes are [`follow_endpoints`]'s.
pub fn replan(current: &NetworkPlan, fresh: &NetworkPlan, mtu_follows_path: bool) -> Replan {
    Replan {
        mtu: (mtu_follows_path && fresh.mtu != current.mtu).then_some(fresh.mtu),
        ..Replan::default()
    }
}

/// Whether `plan`'s endpoint host routes follow the endpoints in use: a macOS full tunnel
/// ([`FullTunnelMethod::Halves`] with a full-tunnel family).
pub fn routes_follow_endpoints(plan: &NetworkPlan) -> bool {
    plan.method == FullTunnelMethod::Halves && !plan.full_tunnel_families.is_empty()
}

/// The endpoint host routes of `plan` (one that [`routes_follow_endpoints`]) made to match the
/// endpoints the data plane uses now, `in_use`, and the default gateways now, `gateways`: each
/// address of a full-tunnel family gets a route via its family's gateway (a route via another
/// gateway is moved; without a gateway now, a route in force is kept, and none
/// is added: there is nothing to route by), and the routes of addresses no peer uses any more
/// are removed. The MTU is left alone.
pub fn follow_endpoints(
    plan: &NetworkPlan,
    in_use: &[IpAddr],
    gateways: &BTreeMap<Family, Gateway>,
) -> Replan {
    let in_use: Vec<IpAddr> = in_use.iter().map(|ip| ip.to_canonical()).collect();
    let mut new_endpoint_routes: Vec<EndpointRoute> = Vec::new();
    for host in &in_use {
        let family = Family::of_ip(host);
        if !plan.full_tunnel_families.contains(&family)
            || new_endpoint_routes.iter().any(|route| route.host == *host)
        {
            continue;
        }
        let Some(gateway) = gateways.get(&family) else {
            continue;
        };
        let route = EndpointRoute {
            host: *host,
            gateway: gateway.clone(),
        };
        if !plan.endpoint_routes.contains(&route) {
            new_endpoint_routes.push(route);
        }
    }
    let stale_endpoint_routes = plan
        .endpoint_routes
        .iter()
        .filter(|route| {
            !in_use.contains(&route.host)
                || new_endpoint_routes.iter().any(|new| new.host == route.host)
        })
        .cloned()
        .collect();
    Replan {
        mtu: None,
        stale_endpoint_routes,
        new_endpoint_routes,
    }
}

/// Applies `replan` to the tunnel interface `ifname`: the stale endpoint routes removed (their
/// journal entries stay; undoing a route that is gone is a no-op), the new ones journaled and
/// added (the host's old route must be gone first, or the OS refuses the new one), then the MTU
/// journaled and set. Stops at the first failure, naming it.
pub async fn reapply(
    replan: &Replan,
    ifname: &str,
    journal: &mut impl Recorder<NetworkChange>,
) -> anyhow::Result<()> {
    let mut ops = <super::imp::Ops as NetworkOps>::connect().await?;
    reapply_with(&mut ops, replan, ifname, journal).await
}

pub(super) async fn reapply_with<O: NetworkOps>(
    ops: &mut O,
    replan: &Replan,
    ifname: &str,
    journal: &mut impl Recorder<NetworkChange>,
) -> anyhow::Result<()> {
    for route in &replan.stale_endpoint_routes {
        ops.remove_host_route(route.host, &route.gateway)
            .await
            .map_err(|err| {
                anyhow!(
                    "failed to remove host route {} via {}: {}",
                    route.host,
                    route.gateway,
                    describe(&err)
                )
            })?;
    }
    let mut changes: Vec<NetworkChange> = replan
        .new_endpoint_routes
        .iter()
        .map(|route| NetworkChange::EndpointRouteAdded {
            host: route.host,
            gateway: route.gateway.clone(),
        })
        .collect();
    if let Some(mtu) = replan.mtu {
        let info = ops
            .link(ifname)
            .await
            .map_err(|err| anyhow!("failed to find interface {ifname}: {}", describe(&err)))?;
        let link = Link {
            name: ifname.to_owned(),
            index: info.index,
        };
        changes.push(NetworkChange::MtuSet { link, mtu });
    }
    for change in changes {
        let verb = change.verb();
        journal.record(change.clone()).map_err(|err| {
            anyhow!("failed to journal {change} before making it, so it was not made: {err}")
        })?;
        let result = match &change {
            NetworkChange::EndpointRouteAdded { host, gateway } => {
                ops.add_host_route(*host, gateway).await
            }
            NetworkChange::MtuSet { link, mtu } => ops.set_mtu(link.index, *mtu).await,
            _ => unreachable!("a replan only adds endpoint routes and sets the MTU"),
        };
        if let Err(err) = result {
            if let Err(journal_err) = journal.not_made(&change) {
                tracing::warn!(
                    "failed to withdraw {change} from the journal after the OS refused it: \
                     {journal_err}"
                );
            }
            return Err(anyhow!("failed to {verb} {change}: {}", describe(&err)));
        }
        tracing::debug!("{verb} {change}");
    }
    Ok(())
}
