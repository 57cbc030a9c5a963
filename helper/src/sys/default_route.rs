//! Which interface holds the best default route outside the tunnel, as wireguard-windows chooses
//! it (`tunnel/defaultroutemonitor.go`: lowest route metric + interface metric, connected
//! interfaces only, the tunnel's own excluded). Pure, so it is tested on every OS; on Windows
//! `sys::windows::net::best_default_interface` feeds it the rows of `GetIpForwardTable2` and
//! answers its interface questions with `GetIpInterfaceEntry` — the call Wine 8.0 lacks, which
//! is why the choice itself is tested here and not under Wine (README, "Windows under Wine").

/// One row of the routing table, as far as the choice needs it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RouteRow {
    /// The interface the route leaves by.
    pub interface: u32,
    /// The destination's prefix length (0: a default route).
    pub prefix_len: u8,
    /// The route's own metric.
    pub metric: u32,
}

/// An interface, as far as the choice needs it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InterfaceState {
    /// Whether it is connected (media connected, operationally up).
    pub connected: bool,
    /// Its interface metric, added to the route's.
    pub metric: u32,
}

/// The interface of the best default route among `routes` that does not leave by `exclude`:
/// the lowest route metric + interface metric, among interfaces `interface` says are connected
/// (`None` from it: an interface that cannot be read, skipped). The first of equal ones wins.
/// `None` when there is no such route (offline).
#[cfg_attr(not(windows), allow(dead_code))]
pub fn best_default_interface(
    routes: impl IntoIterator<Item = RouteRow>,
    exclude: u32,
    mut interface: impl FnMut(u32) -> Option<InterfaceState>,
) -> Option<u32> {
    let mut best: Option<(u64, u32)> = None;
    for row in routes {
        if row.prefix_len != 0 || row.interface == exclude {
            continue;
        }
        let Some(state) = interface(row.interface) else {
            continue;
        };
        if !state.connected {
            continue;
        }
        let metric = u64::from(row.metric) + u64::from(state.metric);
        if best.is_none_or(|(lowest, _)| metric < lowest) {
            best = Some((metric, row.interface));
        }
    }
    best.map(|(_, index)| index)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn route(interface: u32, prefix_len: u8, metric: u32) -> RouteRow {
        RouteRow {
            interface,
            prefix_len,
            metric,
        }
    }

    fn up(metric: u32) -> Option<InterfaceState> {
        Some(InterfaceState {
            connected: true,
            metric,
        })
    }

    /// The choice over `routes`, with interface states from `interfaces` (absent: unreadable),
    /// and the interfaces it asked about.
    fn choose(
        routes: &[RouteRow],
        exclude: u32,
        interfaces: &[(u32, Option<InterfaceState>)],
    ) -> (Option<u32>, Vec<u32>) {
        let states: HashMap<_, _> = interfaces.iter().copied().collect();
        let mut asked = Vec::new();
        let best = best_default_interface(routes.iter().copied(), exclude, |index| {
            asked.push(index);
            states.get(&index).copied().flatten()
        });
        (best, asked)
    }

    #[test]
    fn the_lowest_sum_of_route_and_interface_metric_wins() {
        // Route metric alone would pick 7, interface metric alone 8: the sum picks 9.
        let routes = [route(7, 0, 0), route(8, 0, 30), route(9, 0, 10)];
        let interfaces = [(7, up(50)), (8, up(0)), (9, up(15))];
        assert_eq!(choose(&routes, 0, &interfaces).0, Some(9));
    }

    #[test]
    fn the_tunnel_and_non_default_routes_are_never_chosen_nor_read() {
        // The tunnel (3) holds the best default route (a full tunnel's 0.0.0.0/0), and 5 a
        // better but more specific route: neither counts, and neither interface is read.
        let routes = [route(3, 0, 0), route(5, 24, 0), route(4, 0, 100)];
        let interfaces = [(3, up(0)), (5, up(0)), (4, up(25))];
        assert_eq!(choose(&routes, 3, &interfaces), (Some(4), vec![4]));
    }

    #[test]
    fn disconnected_and_unreadable_interfaces_are_skipped() {
        let down = Some(InterfaceState {
            connected: false,
            metric: 0,
        });
        let routes = [route(1, 0, 0), route(2, 0, 0), route(6, 0, 500)];
        let interfaces = [(1, down), (2, None), (6, up(500))];
        assert_eq!(choose(&routes, 0, &interfaces).0, Some(6));
    }

    #[test]
    fn offline_is_none() {
        assert_eq!(choose(&[], 3, &[]).0, None);
        // Only the tunnel's own default route, or only disconnected interfaces: offline too.
        assert_eq!(choose(&[route(3, 0, 0)], 3, &[(3, up(0))]).0, None);
        let down = Some(InterfaceState {
            connected: false,
            metric: 0,
        });
        assert_eq!(choose(&[route(2, 0, 0)], 3, &[(2, down)]).0, None);
    }

    #[test]
    fn ties_keep_the_first_and_metrics_do_not_overflow() {
        let routes = [route(11, 0, 10), route(12, 0, 10)];
        assert_eq!(choose(&routes, 0, &[(11, up(5)), (12, up(5))]).0, Some(11));
        // u32::MAX + u32::MAX still compares correctly (summed as u64).
        let routes = [route(13, 0, u32::MAX), route(14, 0, u32::MAX - 1)];
        let interfaces = [(13, up(u32::MAX)), (14, up(u32::MAX))];
        assert_eq!(choose(&routes, 0, &interfaces).0, Some(14));
    }
}
