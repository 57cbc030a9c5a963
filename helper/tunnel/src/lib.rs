//! warren-tunnel: Warren's sans-IO WireGuard device core.
//!
//! It owns everything a WireGuard interface decides, and nothing it does:
//! - one [`boringtun::noise::Tunn`] per peer (the Noise handshake, sessions, rekeying and
//!   boringtun's own handshake-retry and passive-keepalive timers);
//! - cryptokey routing: the [`AllowedIps`] longest-prefix table that picks the peer for an
//!   outgoing packet and drops incoming packets whose inner source the peer may not use;
//! - demultiplexing of incoming datagrams to peers (by receiver index, or by the initiator's
//!   static key for handshake initiations), cookie replies under load, endpoint roaming,
//!   persistent keepalive, and per-peer rx/tx and last-handshake statistics.
//!
//! It must not touch sockets, TUN devices or the clock: bytes and `now` come in through
//! [`Device::handle_tun_packet`], [`Device::handle_datagram`] and [`Device::handle_timeout`];
//! what to send and what to deliver goes out through the caller's [`Output`]. The driver in
//! `warren-helper` does the I/O, and tests drive two devices against each other in memory.
//!
//! Layout: [`allowed_ips`] the routing table; [`device`] the device and its peers; [`clock`]
//! what `now` is measured on and how a resume from suspend is noticed.
//!
//! A note on time: boringtun reads its own clock inside `Tunn` (one that counts suspended time).
//! Warren's own timers (persistent keepalive, handshake bookkeeping) use the `now` passed in, on
//! [`Instant`], which also counts suspended time (see [`clock`]). With the `mock-clock` feature,
//! both are `mock_instant`'s, so tests can move them together.

#![warn(clippy::print_stdout, clippy::print_stderr)]

pub mod allowed_ips;
pub mod clock;
pub mod device;

pub use allowed_ips::AllowedIps;
pub use clock::{Instant, ResumeDetector};
pub use device::{
    Device, DeviceStats, Endpoint, Output, PeerId, PeerSettings, PeerSnapshot,
    DEFAULT_HANDSHAKE_RATE_LIMIT, MAX_DATAGRAM_LEN, TIMER_TICK,
};
/// The simulated clock tests advance (the `mock-clock` feature).
#[cfg(feature = "mock-clock")]
pub use mock_instant::MockClock;
