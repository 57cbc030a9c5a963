//! Whether a tunnel can come up next to the ones already up. Pure: the manager keeps a
//! [`Footprint`] (what a tunnel claims on the host, no secrets) of every active tunnel and asks
//! [`check`] before starting another.
//!
//! Two tunnels conflict when:
//! - their routes overlap: any AllowedIPs prefix or interface-address network of one overlaps
//!   one of the other's (same prefix, or one inside the other). Routing would then depend on
//!   which came up first; a full tunnel (`0.0.0.0/0` or `::/0`) therefore runs alone in its
//!   address family;
//! - they listen on the same fixed UDP port;
//! - both would install the kill switch: there is one per host (applying it for a second tunnel
//!   would replace the first's rules).
//!
//! DNS is not checked here: systemd-resolved and resolvconf keep one record per interface, and the
//! plain-file method's own preflight refuses a second tunnel while the file carries Warren's
//! marker.

use ipnet::IpNet;
use warren_proto::config::TunnelConfig;
use warren_proto::ipc::{IpcError, TunnelName, TunnelOptions};

/// What an active tunnel claims on the host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Footprint {
    /// Every AllowedIPs prefix and the network of every interface address.
    pub routes: Vec<IpNet>,
    /// `ListenPort`, when fixed.
    pub listen_port: Option<u16>,
    /// Whether it installs the kill switch.
    pub kill_switch: bool,
}

impl Footprint {
    /// What `config` with `options` would claim.
    pub fn of(config: &TunnelConfig, options: &TunnelOptions) -> Self {
        let mut routes: Vec<IpNet> = config
            .peers
            .iter()
            .flat_map(|peer| peer.allowed_ips.iter().map(IpNet::trunc))
            .collect();
        routes.extend(config.interface.addresses.iter().map(IpNet::trunc));
        routes.sort();
        routes.dedup();
        Footprint {
            routes,
            listen_port: config.interface.listen_port.filter(|&port| port != 0),
            kill_switch: options.kill_switch.is_active(config.is_full_tunnel()),
        }
    }
}

/// Whether two prefixes share any address.
pub fn overlaps(a: &IpNet, b: &IpNet) -> bool {
    a.contains(&b.network()) || b.contains(&a.network())
}

/// `Ok` if `name` with `new` can come up next to every `(name, footprint)` in `active`; else a
/// [`Conflict`](warren_proto::ipc::ErrorKind::Conflict) error naming the other tunnel and what
/// clashes.
pub fn check<'a>(
    name: &TunnelName,
    new: &Footprint,
    active: impl IntoIterator<Item = (&'a TunnelName, &'a Footprint)>,
) -> Result<(), IpcError> {
    for (other, theirs) in active {
        if other == name {
            continue;
        }
        for ours in &new.routes {
            if let Some(clash) = theirs.routes.iter().find(|t| overlaps(ours, t)) {
                return Err(IpcError::conflict(
                    Some(other.clone()),
                    format!(
                        "tunnel '{name}' conflicts with tunnel '{other}', which is up: its route \
                         {ours} overlaps {clash} of '{other}' (AllowedIPs or Address); take \
                         '{other}' down first"
                    ),
                ));
            }
        }
        if let (Some(port), Some(theirs_port)) = (new.listen_port, theirs.listen_port) {
            if port == theirs_port {
                return Err(IpcError::conflict(
                    Some(other.clone()),
                    format!(
                        "tunnel '{name}' conflicts with tunnel '{other}', which is up: both \
                         listen on UDP port {port}"
                    ),
                ));
            }
        }
        if new.kill_switch && theirs.kill_switch {
            return Err(IpcError::conflict(
                Some(other.clone()),
                format!(
                    "tunnel '{name}' conflicts with tunnel '{other}', which is up: both use the \
                     kill switch, and there is one per host; take '{other}' down first or turn \
                     one kill switch off"
                ),
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use warren_proto::ipc::{ErrorKind, KillSwitch};

    fn name(s: &str) -> TunnelName {
        TunnelName::new(s).unwrap()
    }

    fn footprint(routes: &[&str], port: Option<u16>, kill_switch: bool) -> Footprint {
        Footprint {
            routes: routes.iter().map(|r| r.parse().unwrap()).collect(),
            listen_port: port,
            kill_switch,
        }
    }

    #[test]
    fn disjoint_tunnels_coexist() {
        let a = footprint(&["198.19.1.0/24", "fd00:1::/64"], Some(51820), false);
        let b = footprint(&["198.19.2.0/24", "fd00:2::/64"], Some(51821), true);
        assert_eq!(check(&name("b"), &b, [(&name("a"), &a)]), Ok(()));
        // A tunnel never conflicts with itself (a restart).
        assert_eq!(check(&name("a"), &a, [(&name("a"), &a)]), Ok(()));
    }

    #[test]
    fn overlapping_routes_conflict_and_name_both_sides() {
        let a = footprint(&["198.19.0.0/16"], None, false);
        let b = footprint(&["198.19.7.0/24"], None, false);
        let error = check(&name("b"), &b, [(&name("a"), &a)]).unwrap_err();
        assert_eq!(
            error.kind,
            ErrorKind::Conflict {
                with: Some(name("a"))
            }
        );
        assert!(
            error
                .message
                .contains("198.19.7.0/24 overlaps 198.19.0.0/16"),
            "{error}"
        );
        // A full tunnel overlaps everything of its family, and nothing of the other.
        let full4 = footprint(&["0.0.0.0/0"], None, false);
        assert!(check(&name("f"), &full4, [(&name("b"), &b)]).is_err());
        let v6 = footprint(&["fd00:9::/64"], None, false);
        assert!(check(&name("f"), &full4, [(&name("v"), &v6)]).is_ok());
    }

    #[test]
    fn same_port_and_two_kill_switches_conflict() {
        let a = footprint(&["198.19.1.0/24"], Some(51820), true);
        let b = footprint(&["198.19.2.0/24"], Some(51820), false);
        let error = check(&name("b"), &b, [(&name("a"), &a)]).unwrap_err();
        assert!(error.message.contains("UDP port 51820"), "{error}");
        let c = footprint(&["198.19.3.0/24"], None, true);
        let error = check(&name("c"), &c, [(&name("a"), &a)]).unwrap_err();
        assert!(error.message.contains("kill switch"), "{error}");
    }

    #[test]
    fn a_footprint_comes_from_the_config_and_options() {
        let config = warren_proto::config::parse(
            "[Interface]\nPrivateKey = yAnz5TF+lXXJte14tji3zlMNq+hd2rYUIgJBgB3fBmk=\n\
             Address = 198.19.0.1/24\nListenPort = 51820\n\n[Peer]\n\
             PublicKey = xTIBA5rboUvnH4htodjb6e697QjLERt1NAB4mZqp8Dg=\n\
             AllowedIPs = 0.0.0.0/0, 198.19.5.7/24\n",
            None,
        )
        .unwrap();
        let auto = Footprint::of(&config, &TunnelOptions::default());
        assert_eq!(
            auto.routes,
            vec![
                "0.0.0.0/0".parse::<IpNet>().unwrap(),
                "198.19.0.0/24".parse().unwrap(),
                "198.19.5.0/24".parse().unwrap()
            ]
        );
        assert_eq!(auto.listen_port, Some(51820));
        assert!(auto.kill_switch, "auto is on for a full tunnel");
        let off = TunnelOptions {
            kill_switch: KillSwitch::Off,
            allow_lan: false,
        };
        assert!(!Footprint::of(&config, &off).kill_switch);
    }
}
