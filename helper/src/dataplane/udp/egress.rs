//! Keeping the tunnel's own encrypted UDP datagrams off the tunnel: when the tunnel carries the
//! default route, the datagrams to the peers' endpoints must still leave by the physical network,
//! or they would loop into the tunnel. Each OS does this its own way:
//!
//! - Linux: the sockets carry a fwmark, and the full tunnel's policy rules send marked packets to
//!   the main table (the platform layer's plan) — nothing to do here.
//! - macOS: a host route to each endpoint via the default gateway, in the platform layer's plan
//!   (its full tunnel routes the `/1` halves, which the host routes are more specific than) —
//!   nothing to do here.
//! - Windows: the sockets are pinned with `IP_UNICAST_IF` / `IPV6_UNICAST_IF` to the interface of
//!   the best default route that is not the tunnel's, as wireguard-windows does. [`pin`] does it
//!   for one socket. The plan relies on it: a Windows full tunnel routes `0.0.0.0/0` / `::/0`
//!   themselves through the tunnel (`FullTunnelMethod::BoundSockets`), and is not refused as a
//!   routing loop, because a pinned socket never takes the tunnel's routes.
//!
//! Where to call [`pin`]: for each of the driver's sockets (IPv4 and IPv6) right after they are
//! bound — at start and again whenever they are re-bound to another port (`wg set listen-port`) —
//! once the tunnel interface exists, and again when the network changes (the session's network
//! monitor makes the driver call [`super::Transport::repin`] before its handshakes). Until it is
//! called, a Windows full tunnel loops. Never run on Windows yet.
//!
//! When there is no default route outside the tunnel (offline, or between two networks), what
//! to do is [`decide`], a plain function, following wireguard-windows' `bindSocketRoute`
//! (`tunnel/defaultroutemonitor.go` before its move to the WireGuardNT driver): the pin is cleared
//! (index 0, the routing table chooses again), and for a family the tunnel routes by default the
//! socket is a *blackhole* — its datagrams are dropped, as wireguard-go's bind drops them — since
//! the routing table would send them into the tunnel itself. The next network change pins again.

use std::io;

/// What [`pin`] did to a socket.
#[cfg_attr(not(windows), allow(dead_code))] // Only Windows pins.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pin {
    /// This OS keeps the datagrams off the tunnel another way (Linux, macOS).
    NotNeeded,
    /// Pinned to this interface index.
    Interface(u32),
    /// Not pinned (no default route outside the tunnel); the routing table chooses.
    Unpinned,
    /// Not pinned, and its datagrams must be dropped: the family's default route is the tunnel.
    Blackhole,
}

/// What to do with a socket of a family, given the best default route's interface outside the
/// tunnel (`None`: there is none) and whether the tunnel carries that family's default route.
#[cfg_attr(not(windows), allow(dead_code))] // Only Windows pins.
pub fn decide(best: Option<u32>, family_is_full_tunnel: bool) -> Pin {
    match best {
        Some(index) => Pin::Interface(index),
        None if family_is_full_tunnel => Pin::Blackhole,
        None => Pin::Unpinned,
    }
}

/// Pins `socket` (an IPv6 socket when `ipv6`) to the interface of the best default route other
/// than through `tunnel` (the tunnel interface's name), or clears its pin when there is none (see
/// [`decide`]; `full_tunnel`: the tunnel routes this family by default).
pub fn pin(
    socket: socket2::SockRef<'_>,
    ipv6: bool,
    tunnel: &str,
    full_tunnel: bool,
) -> io::Result<Pin> {
    imp::pin(socket, ipv6, tunnel, full_tunnel)
}

#[cfg(not(windows))]
mod imp {
    use std::io;

    pub(super) fn pin(
        _socket: socket2::SockRef<'_>,
        _ipv6: bool,
        _tunnel: &str,
        _full_tunnel: bool,
    ) -> io::Result<super::Pin> {
        Ok(super::Pin::NotNeeded)
    }
}

#[cfg(windows)]
mod imp {
    use crate::sys::windows::net::{self as winnet, Family};
    use std::io;
    use std::os::windows::io::AsRawSocket as _;

    pub(super) fn pin(
        socket: socket2::SockRef<'_>,
        ipv6: bool,
        tunnel: &str,
        full_tunnel: bool,
    ) -> io::Result<super::Pin> {
        let family = if ipv6 { Family::V6 } else { Family::V4 };
        let tunnel_index = winnet::index_from_alias(tunnel)?;
        let best = winnet::best_default_interface(family, tunnel_index)?;
        let decision = super::decide(best, full_tunnel);
        // A SOCKET is a pointer-sized handle; `as_raw_socket` gives it as u64.
        let raw = socket.as_raw_socket() as windows_sys::Win32::Networking::WinSock::SOCKET;
        // Index 0 clears the pin.
        let index = match decision {
            super::Pin::Interface(index) => index,
            _ => 0,
        };
        winnet::set_unicast_interface(raw, family, index)?;
        match decision {
            super::Pin::Interface(index) => {
                tracing::debug!("the tunnel's {family:?} socket leaves by interface {index}")
            }
            super::Pin::Blackhole => tracing::warn!(
                "no {family:?} default route outside {tunnel}: the tunnel's datagrams are dropped \
                 until there is one"
            ),
            _ => tracing::warn!(
                "no {family:?} default route outside {tunnel}: the tunnel's socket is not pinned"
            ),
        }
        Ok(decision)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn without_a_way_out_a_full_tunnels_family_is_blackholed_and_a_split_ones_unpinned() {
        assert_eq!(decide(Some(12), true), Pin::Interface(12));
        assert_eq!(decide(Some(12), false), Pin::Interface(12));
        assert_eq!(decide(None, true), Pin::Blackhole);
        assert_eq!(decide(None, false), Pin::Unpinned);
    }
}
