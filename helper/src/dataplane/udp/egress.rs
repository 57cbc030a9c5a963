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

use std::io;

/// Pins `socket` (an IPv6 socket when `ipv6`) to the interface of the best default route other
/// than through `tunnel` (the tunnel interface's name). Returns that interface's index where the OS
/// needs the pin, `None` where it does not (Linux, macOS) or when there is no other default route
/// (offline: the socket is left as it is).
pub fn pin(socket: socket2::SockRef<'_>, ipv6: bool, tunnel: &str) -> io::Result<Option<u32>> {
    imp::pin(socket, ipv6, tunnel)
}

#[cfg(not(windows))]
mod imp {
    use std::io;

    pub(super) fn pin(
        _socket: socket2::SockRef<'_>,
        _ipv6: bool,
        _tunnel: &str,
    ) -> io::Result<Option<u32>> {
        Ok(None)
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
    ) -> io::Result<Option<u32>> {
        let family = if ipv6 { Family::V6 } else { Family::V4 };
        let tunnel_index = winnet::index_from_alias(tunnel)?;
        let Some(index) = winnet::best_default_interface(family, tunnel_index)? else {
            tracing::warn!(
                "no {family:?} default route outside {tunnel}: the tunnel's socket is not pinned"
            );
            return Ok(None);
        };
        // A SOCKET is a pointer-sized handle; `as_raw_socket` gives it as u64.
        let raw = socket.as_raw_socket() as windows_sys::Win32::Networking::WinSock::SOCKET;
        winnet::set_unicast_interface(raw, family, index)?;
        tracing::debug!("the tunnel's {family:?} socket leaves by interface {index}");
        Ok(Some(index))
    }
}
