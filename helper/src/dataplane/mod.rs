//! The data plane: everything that moves a tunnel's packets once it is up. The [`driver`] loop
//! carries packets between the TUN device ([`tun`]: the trait, the per-OS device, GRO), the UDP
//! sockets ([`udp`]: the trait, the sockets, egress pinning) and the sans-IO core
//! (`warren-tunnel`), in the batches of [`batch`]. `testing` holds the in-memory devices the
//! tests run the real driver on.
//!
//! What it does not own: addresses, routes, DNS and the firewall ([`crate::platform`]), and the
//! order a tunnel is brought up and down in ([`crate::session`]).

pub mod batch;
pub mod driver;
#[cfg(test)]
pub mod testing;
pub mod tun;
pub mod udp;

pub use driver::{Control, DeviceSnapshot, Driver, NetworkChangeHandled, PeerStats};
pub use udp::Transport;
