//! The packet driver: the only place that moves bytes between the TUN device ([`super::tun`]),
//! the UDP sockets ([`super::udp`]) and the sans-IO core (`warren_tunnel::Device`), and the only
//! reader of the clock. The batches the bytes travel in are [`super::batch`]'s; the devices are
//! reached through the [`TunDevice`] and [`Transport`] traits, which the real devices and the
//! in-memory ones of `super::testing` implement.
//!
//! Pipeline, in the order the loop in [`Driver::run`] serves it:
//! 1. **TUN → core → UDP**: an IP packet read from the TUN goes to `Device::handle_tun_packet`,
//!    which routes it by AllowedIPs and encrypts it; the datagram leaves on the IPv4 or IPv6
//!    socket, whichever matches the peer's endpoint.
//! 2. **UDP → core → TUN/UDP**: a datagram from either socket goes to `Device::handle_datagram`;
//!    decrypted packets are written to the TUN, handshake replies go back out over UDP.
//! 3. **Timer**: every `TIMER_TICK`, `Device::handle_timeout` runs retries, rekeys and keepalives.
//!    Every event first reads the clocks ([`Driver::now`]): when the host has been suspended
//!    since the last event, `Device::handle_resume` starts new handshakes before anything else
//!    is sent (see `warren_tunnel::clock`).
//! 4. **Control**: UAPI requests (`wg show`, `wg set`) read or change the device between packets,
//!    so they never race the data path; so do the owner's [`Control`] requests (per-peer
//!    statistics for the daemon's status and liveness; a re-resolved endpoint; a network change,
//!    which starts handshakes at once), on a channel of their own.
//!
//! **Batching.** Every step moves as many packets per system call as the OS allows, and the core
//! still sees one packet at a time (batching lives here and in the platform layer, never in the
//! sans-IO core):
//! - a TUN read may return many packets: on Linux the device has a virtio-net header and TCP/UDP
//!   segmentation offload, so the kernel hands over a 64 KiB super-packet that the `tun-rs`
//!   crate splits ([`super::tun::device`]); after a wake-up the loop keeps reading without waiting,
//!   up to [`MAX_READS_PER_WAKE`] reads;
//! - datagrams for the same endpoint leave in one `sendmsg` with UDP GSO (`UDP_SEGMENT`) where the
//!   kernel has it ([`GsoBatch`]); datagrams arrive by `recvmmsg`, coalesced by UDP GRO (both
//!   through the `quinn-udp` crate, in [`super::udp`]);
//! - decrypted packets are collected and written at the end of the batch; on Linux consecutive
//!   segments of one TCP or UDP flow are coalesced back into one super-packet per write (GRO).
//!
//! **Source addresses.** Each datagram carries the local address the peer last reached us at
//! (`warren_tunnel::Endpoint`); a GSO batch is for one endpoint, so one source. When the OS
//! refuses a source (the address was removed), the batch is resent with the OS's choice, later
//! datagrams of the same event drop that source, and after the event the core forgets it
//! (`Device::forget_local_address`): nothing sticks to a dead address.
//!
//! Batches are flushed at the end of every event, so nothing waits for a batch to fill: a lone
//! ping or handshake leaves as soon as it was processed.
//!
//! Writes are non-blocking: when the kernel's queue is full the packet is dropped, as a router
//! would, and the peers' congestion control backs off. Buffers are allocated once; the large
//! ones are mapped lazily by the OS, so an idle tunnel does not hold them in memory.

use super::batch::{TunReadBatch, TunWriteBatch, UdpRecvBatch, MAX_GSO_BYTES, MAX_READS_PER_WAKE};
use super::tun::{gro, TunDevice};
use super::udp::{self, Transport};
use crate::uapi::{self, Request, SetRequest};
use anyhow::Context;
use std::future::Future;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::time::SystemTime;
use tokio::sync::{mpsc, oneshot};
use warren_tunnel::{clock, Device, Endpoint, Instant, Output, ResumeDetector, TIMER_TICK};

/// A request from the driver's owner (the session), answered between packets like UAPI requests.
pub enum Control {
    /// Reply with a snapshot of every peer's statistics.
    Stats(oneshot::Sender<DeviceSnapshot>),
    /// A peer's host name resolved to `endpoint`: use it, but only while the peer's handshake
    /// initiation is still unanswered (so an endpoint the peer roamed to by authenticated
    /// packets in the meantime is kept). Replies whether the endpoint was changed.
    Reresolved {
        /// The peer.
        peer: warren_proto::key::PublicKey,
        /// Its new address.
        endpoint: SocketAddr,
        /// Whether it was applied.
        reply: oneshot::Sender<bool>,
    },
    /// The host's network changed (the session's network monitor saw it): start a handshake
    /// with every peer that has an endpoint now (`Device::handle_network_change`). Until one of
    /// them completes, [`DeviceSnapshot::reconnecting`] says so.
    NetworkChanged(oneshot::Sender<NetworkChangeHandled>),
    /// The OS said the host resumed from sleep (logind's `PrepareForSleep(false)`): the same
    /// fresh handshakes as when the clocks show the jump (`Device::handle_resume`), unless the
    /// clocks already showed it for this resume.
    #[cfg_attr(not(target_os = "linux"), allow(dead_code))]
    Resumed,
}

/// What [`Control::NetworkChanged`] answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NetworkChangeHandled {
    /// How many handshakes started (none: no peer has an endpoint, or each is already in one).
    pub handshakes: usize,
    /// This change's number ([`DeviceSnapshot::network_changes`] from now on).
    pub number: u64,
}

/// What [`Control::Stats`] answers: the device's peers as the daemon reports them. Holds no
/// secret (public keys only).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeviceSnapshot {
    /// The UDP port the device listens on.
    pub listen_port: u16,
    /// The mark on the socket's packets, if any.
    pub fwmark: Option<u32>,
    /// One entry per peer, in configuration order.
    pub peers: Vec<PeerStats>,
    /// How many [`Control::NetworkChanged`] the driver has handled, so that the owner can tell
    /// a snapshot taken before a change from one taken after it.
    pub network_changes: u64,
    /// Handshakes were started because the network changed ([`Control::NetworkChanged`]) and
    /// none has completed since.
    pub reconnecting: bool,
}

/// One peer's counters in a [`DeviceSnapshot`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerStats {
    /// The peer's public key.
    pub public_key: warren_proto::key::PublicKey,
    /// Its current endpoint (after roaming).
    pub endpoint: Option<SocketAddr>,
    /// Its AllowedIPs.
    pub allowed_ips: Vec<ipnet::IpNet>,
    /// When its newest handshake completed, as wall-clock time; `None` if never.
    pub last_handshake: Option<SystemTime>,
    /// How long a handshake initiation to it has waited for a response (since the first try of
    /// the current round); `None` when none is pending.
    pub initiation_unanswered_for: Option<std::time::Duration>,
    /// Bytes received from it.
    pub rx_bytes: u64,
    /// Bytes sent to it.
    pub tx_bytes: u64,
}

/// Runs one tunnel's data plane until `shutdown` completes.
pub struct Driver<T: TunDevice, S: Transport> {
    device: Device,
    tun: T,
    transport: S,
    requests: mpsc::Receiver<Request>,
    control: Option<mpsc::Receiver<Control>>,
    resume: ResumeDetector,
    /// When handshakes were started for a network change, until one completes after it.
    network_changed_at: Option<Instant>,
    /// How many network changes were handled.
    network_changes: u64,
}

/// Datagrams for one endpoint (and so one source address) collected for one GSO send: all of
/// `segment` bytes, except that the last may be shorter (which closes the batch), as the
/// kernel's `UDP_SEGMENT` requires.
struct GsoBatch {
    buf: Vec<u8>,
    to: Option<Endpoint>,
    segment: usize,
    count: usize,
    closed: bool,
    /// Local addresses the OS refused as a source during this event; the driver makes the core
    /// forget them once the event is done. Empty (and unallocated) almost always.
    refused: Vec<IpAddr>,
}

impl GsoBatch {
    fn new() -> Self {
        Self {
            buf: Vec::with_capacity(MAX_GSO_BYTES),
            to: None,
            segment: 0,
            count: 0,
            closed: false,
            refused: Vec::new(),
        }
    }

    /// Adds `datagram` for `to`, sending the batch first when `datagram` cannot join it.
    fn push(&mut self, transport: &impl Transport, mut to: Endpoint, datagram: &[u8]) {
        if !self.refused.is_empty() && to.local.is_some_and(|ip| self.refused.contains(&ip)) {
            to.local = None;
        }
        let joins = self.to == Some(to)
            && !self.closed
            && datagram.len() <= self.segment
            && self.count < transport.max_segments()
            && self.buf.len() + datagram.len() <= MAX_GSO_BYTES;
        if self.count > 0 && !joins {
            self.flush(transport);
        }
        if self.count == 0 {
            self.to = Some(to);
            self.segment = datagram.len();
        } else if datagram.len() < self.segment {
            self.closed = true;
        }
        self.buf.extend_from_slice(datagram);
        self.count += 1;
    }

    fn flush(&mut self, transport: &impl Transport) {
        if let (Some(to), true) = (self.to, self.count > 0) {
            let mut sent = transport.try_send(to, &self.buf, self.segment);
            if let (Err(e), Some(local)) = (&sent, to.local) {
                if udp::source_refused(e) {
                    // The address the peer used is gone: let the OS choose, now and from now on.
                    tracing::debug!(%local, "source address refused ({e}); sending without it");
                    self.refused.push(local);
                    sent = transport.try_send(to.remote.into(), &self.buf, self.segment);
                }
            }
            if let Err(e) = sent {
                if e.kind() != io::ErrorKind::WouldBlock {
                    let to = to.remote;
                    tracing::debug!(%to, "failed to send {} datagram(s): {e}", self.count);
                }
            }
        }
        self.buf.clear();
        self.to = None;
        self.count = 0;
        self.closed = false;
    }
}

/// What the core produced during one event, on its way to the kernel.
struct Outbox {
    udp: GsoBatch,
    tun: TunWriteBatch,
}

impl Outbox {
    fn new(coalescing: gro::Coalescing) -> Self {
        Self {
            udp: GsoBatch::new(),
            tun: TunWriteBatch::new(coalescing),
        }
    }

    /// Sends everything collected, without waiting.
    fn flush(&mut self, tun: &impl TunDevice, transport: &impl Transport) {
        self.udp.flush(transport);
        self.flush_tun(tun);
    }

    fn flush_tun(&mut self, tun: &impl TunDevice) {
        if let Err(e) = tun.send(&mut self.tun) {
            if e.kind() != io::ErrorKind::WouldBlock {
                tracing::debug!("failed to write packets to the TUN: {e}");
            }
        }
    }
}

/// The core's [`Output`] during one event: collects into the [`Outbox`], sending early only when
/// a batch is full.
struct Sink<'a, T, S> {
    tun: &'a T,
    transport: &'a S,
    out: &'a mut Outbox,
}

impl<T: TunDevice, S: Transport> Output for Sink<'_, T, S> {
    fn send_datagram(&mut self, to: Endpoint, datagram: &[u8]) {
        self.out.udp.push(self.transport, to, datagram);
    }

    fn write_packet(&mut self, packet: &[u8]) {
        if self.out.tun.is_full() {
            self.out.flush_tun(self.tun);
        }
        self.out.tun.push(packet);
    }
}

impl<T: TunDevice, S: Transport> Driver<T, S> {
    /// A driver over an existing device, TUN and transport. UAPI requests arrive on `requests`.
    pub fn new(device: Device, tun: T, transport: S, requests: mpsc::Receiver<Request>) -> Self {
        Self {
            device,
            tun,
            transport,
            requests,
            control: None,
            resume: ResumeDetector::new(),
            network_changed_at: None,
            network_changes: 0,
        }
    }

    /// Also serves [`Control`] requests from `control` (the session's channel).
    pub fn with_control(mut self, control: mpsc::Receiver<Control>) -> Self {
        self.control = Some(control);
        self
    }

    /// The pipeline loop (see the module docs). Returns when `shutdown` completes, or with an
    /// error when the TUN device fails. The TUN stays open until the driver is dropped, so the
    /// caller can undo its routes and addresses first.
    pub async fn run(&mut self, shutdown: impl Future<Output = ()>) -> anyhow::Result<()> {
        let mut tun_in = TunReadBatch::new();
        let mut udp_in = UdpRecvBatch::new();
        let mut out = Outbox::new(self.tun.coalescing());
        let mut tick = tokio::time::interval(TIMER_TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                () = &mut shutdown => return Ok(()),
                read = self.tun.recv(&mut tun_in) => {
                    read.context("failed to read from the TUN device")?;
                    self.on_tun_reads(&mut tun_in, &mut out)?;
                }
                received = self.transport.recv(&mut udp_in) => match received {
                    Ok(()) => {
                        let now = self.now(&mut out);
                        let mut sink = Sink { tun: &self.tun, transport: &self.transport, out: &mut out };
                        for (from, datagram) in udp_in.datagrams() {
                            self.device.handle_datagram(now, from, datagram, &mut sink);
                        }
                    }
                    // E.g. ICMP errors reported on the socket; the next datagram is unaffected.
                    Err(e) => tracing::debug!("failed to receive a datagram: {e}"),
                },
                _ = tick.tick() => {
                    let now = self.now(&mut out);
                    let mut sink = Sink { tun: &self.tun, transport: &self.transport, out: &mut out };
                    self.device.handle_timeout(now, &mut sink);
                }
                Some(request) = self.requests.recv() => self.on_request(request),
                Some(control) = recv_control(&mut self.control) => self.on_control(control, &mut out),
            }
            out.flush(&self.tun, &self.transport);
            for local in out.udp.refused.drain(..) {
                let peers = self.device.forget_local_address(local);
                tracing::info!(
                    "address {local} can no longer be sent from; {peers} peer(s) answered from the system's choice"
                );
            }
        }
    }

    /// Reads the clocks for an event. When the host was suspended since the previous event,
    /// the core starts new handshakes first (their initiations go out with this event).
    fn now(&mut self, out: &mut Outbox) -> Instant {
        self.now_and_resume(out).0
    }

    /// [`Driver::now`], and whether the clocks showed a resume (handled already).
    fn now_and_resume(&mut self, out: &mut Outbox) -> (Instant, bool) {
        let (now, monotonic) = (Instant::now(), clock::monotonic());
        let Some(slept) = self.resume.observe(now, monotonic) else {
            return (now, false);
        };
        let mut sink = Sink {
            tun: &self.tun,
            transport: &self.transport,
            out,
        };
        let peers = self.device.handle_resume(now, &mut sink);
        tracing::info!(
            "the system resumed after {}s asleep; new handshake with {peers} peer(s)",
            slept.as_secs()
        );
        (now, true)
    }

    /// Encrypts the packets of the read in `batch`, then keeps reading without waiting (up to
    /// [`MAX_READS_PER_WAKE`] reads) so that a burst leaves in few, large sends.
    fn on_tun_reads(&mut self, batch: &mut TunReadBatch, out: &mut Outbox) -> anyhow::Result<()> {
        let now = self.now(out);
        for read in 1..=MAX_READS_PER_WAKE {
            let mut sink = Sink {
                tun: &self.tun,
                transport: &self.transport,
                out,
            };
            for packet in batch.packets() {
                self.device.handle_tun_packet(now, packet, &mut sink);
            }
            if read == MAX_READS_PER_WAKE {
                break;
            }
            match self.tun.try_recv(batch) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) => return Err(e).context("failed to read from the TUN device"),
            }
        }
        Ok(())
    }

    fn on_control(&mut self, control: Control, out: &mut Outbox) {
        match control {
            Control::Stats(reply) => {
                let (now, wall) = (Instant::now(), SystemTime::now());
                let snapshots = self.device.peers();
                if let Some(changed_at) = self.network_changed_at {
                    if snapshots
                        .iter()
                        .any(|p| p.last_handshake.is_some_and(|t| t >= changed_at))
                    {
                        self.network_changed_at = None;
                    }
                }
                let peers = snapshots
                    .into_iter()
                    .map(|peer| PeerStats {
                        public_key: peer.public_key,
                        endpoint: peer.endpoint,
                        allowed_ips: peer.allowed_ips,
                        last_handshake: peer
                            .last_handshake
                            .and_then(|t| wall.checked_sub(now.duration_since(t))),
                        initiation_unanswered_for: peer
                            .initiation_unanswered
                            .map(|t| now.duration_since(t)),
                        rx_bytes: peer.rx_bytes,
                        tx_bytes: peer.tx_bytes,
                    })
                    .collect();
                let _ = reply.send(DeviceSnapshot {
                    listen_port: self.transport.port(),
                    fwmark: self.transport.fwmark(),
                    peers,
                    network_changes: self.network_changes,
                    reconnecting: self.network_changed_at.is_some(),
                });
            }
            Control::Resumed => {
                let (now, seen) = self.now_and_resume(out);
                if !seen {
                    let mut sink = Sink {
                        tun: &self.tun,
                        transport: &self.transport,
                        out,
                    };
                    let peers = self.device.handle_resume(now, &mut sink);
                    tracing::info!(
                        "the system resumed (logind); new handshake with {peers} peer(s)"
                    );
                }
            }
            Control::NetworkChanged(reply) => {
                // First the sockets (Windows: pinned to the new best interface), so that the
                // handshakes below leave by the new network.
                if let Err(e) = self.transport.repin() {
                    tracing::warn!("cannot keep the tunnel's datagrams off the tunnel: {e}");
                }
                let now = self.now(out);
                let mut sink = Sink {
                    tun: &self.tun,
                    transport: &self.transport,
                    out,
                };
                let handshakes = self.device.handle_network_change(now, &mut sink);
                if handshakes > 0 {
                    self.network_changed_at = Some(now);
                }
                self.network_changes += 1;
                tracing::info!("the network changed; new handshake with {handshakes} peer(s)");
                let _ = reply.send(NetworkChangeHandled {
                    handshakes,
                    number: self.network_changes,
                });
            }
            Control::Reresolved {
                peer,
                endpoint,
                reply,
            } => {
                let id = self.device.peer_id(&peer);
                let stale = id
                    .and_then(|id| self.device.peer_snapshot(id))
                    .is_some_and(|p| {
                        p.initiation_unanswered.is_some() && p.endpoint != Some(endpoint)
                    });
                if let (Some(id), true) = (id, stale) {
                    self.device.set_endpoint(id, endpoint);
                }
                let _ = reply.send(stale);
            }
        }
    }

    fn on_request(&mut self, request: Request) {
        match request {
            Request::Get(reply) => {
                let fwmark = self.transport.fwmark();
                let text = uapi::format_get(&self.device, self.transport.port(), fwmark);
                let _ = reply.send(text);
            }
            Request::Set(set, reply) => {
                let _ = reply.send(self.apply(set));
            }
        }
    }

    /// Applies a validated `set` request. Socket changes come first, so a port that cannot be
    /// bound fails the request before any peer was touched.
    fn apply(&mut self, set: SetRequest) -> Result<(), uapi::Errno> {
        if let Some(port) = set.listen_port {
            if let Err(e) = self.transport.set_port(port) {
                tracing::warn!("UAPI: {e:#}");
                return Err(uapi::Errno::ADDRINUSE);
            }
        }
        if let Some(mark) = set.fwmark {
            if let Err(e) = self.transport.set_fwmark((mark != 0).then_some(mark)) {
                tracing::warn!("UAPI: failed to set fwmark: {e}");
                // wireguard-go's code for a failed re-mark, which `wg` users already know.
                return Err(uapi::Errno::ADDRINUSE);
            }
        }
        uapi::apply_to_device(set, &mut self.device);
        Ok(())
    }
}

/// The next control request, or never when there is no control channel (or it closed).
async fn recv_control(control: &mut Option<mpsc::Receiver<Control>>) -> Option<Control> {
    match control {
        Some(rx) => match rx.recv().await {
            Some(request) => Some(request),
            None => {
                // The owner dropped its sender: stop polling a closed channel.
                *control = None;
                std::future::pending().await
            }
        },
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    //! Two drivers wired together in memory (the doubles of [`crate::dataplane::testing`]): they
    //! exercise the real loop, timer and UAPI path without root.

    use super::*;
    use crate::dataplane::testing::{MemNetwork, MemTun};
    use std::time::Duration;
    use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender};
    use warren_proto::key::PrivateKey;
    use warren_tunnel::PeerSettings;

    struct Host {
        key: PrivateKey,
        addr: SocketAddr,
        to_tun: UnboundedSender<Vec<u8>>,
        from_tun: UnboundedReceiver<Vec<u8>>,
        uapi: mpsc::Sender<Request>,
        control: mpsc::Sender<Control>,
    }

    fn start(addr: &str, key: PrivateKey, peer: PeerSettings, network: &MemNetwork) -> Host {
        let addr: SocketAddr = addr.parse().unwrap();
        let (tun, to_tun, from_tun) = MemTun::new();
        let socket = network.socket(addr);
        let mut device = Device::new(key.clone());
        device.upsert_peer(peer);
        let (uapi, requests) = mpsc::channel(4);
        let (control, control_rx) = mpsc::channel(4);
        let mut driver = Driver::new(device, tun, socket, requests).with_control(control_rx);
        tokio::spawn(async move { driver.run(std::future::pending()).await });
        Host {
            key,
            addr,
            to_tun,
            from_tun,
            uapi,
            control,
        }
    }

    fn ipv4(src: [u8; 4], dst: [u8; 4], payload: &[u8]) -> Vec<u8> {
        let mut p = vec![0x45, 0, 0, 0, 0, 0, 0, 0, 64, 17, 0, 0];
        p.extend_from_slice(&src);
        p.extend_from_slice(&dst);
        p.extend_from_slice(payload);
        let len = (p.len() as u16).to_be_bytes();
        p[2..4].copy_from_slice(&len);
        p
    }

    async fn get(host: &Host) -> String {
        let (tx, rx) = oneshot::channel();
        host.uapi.send(Request::Get(tx)).await.unwrap();
        rx.await.unwrap()
    }

    /// Two drivers on one in-memory network: a (198.18.0.1, tunnel 198.19.0.1) knows b at
    /// `b_endpoint` (b is at 198.18.0.2, tunnel 198.19.0.2); b knows no endpoint for a.
    fn pair(network: &MemNetwork, b_endpoint: &str) -> (Host, Host) {
        let (ka, kb) = (PrivateKey::generate(), PrivateKey::generate());
        let mut to_b = PeerSettings::new(kb.public_key());
        to_b.endpoint = Some(b_endpoint.parse().unwrap());
        to_b.allowed_ips = vec!["198.19.0.2/32".parse().unwrap()];
        let mut to_a = PeerSettings::new(ka.public_key());
        to_a.allowed_ips = vec!["198.19.0.1/32".parse().unwrap()];
        let a = start("198.18.0.1:51820", ka, to_b, network);
        let b = start("198.18.0.2:51820", kb, to_a, network);
        (a, b)
    }

    /// a pings b through the tunnel (so they have a session), and b gets the ping.
    async fn first_ping(a: &Host, b: &mut Host) {
        let ping = ipv4([198, 19, 0, 1], [198, 19, 0, 2], b"ping");
        a.to_tun.send(ping.clone()).unwrap();
        expect_delivered(b, &ping).await;
    }

    /// Waits up to 5 s for `host`'s first peer to complete a handshake newer than `before`.
    async fn expect_new_handshake(host: &Host, before: std::time::SystemTime, after_what: &str) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        while stats(host).await.peers[0].last_handshake.unwrap() <= before {
            assert!(
                tokio::time::Instant::now() < deadline,
                "no new handshake within 5 s of {after_what}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    #[tokio::test]
    async fn a_network_change_starts_a_handshake_at_once_and_reports_reconnecting_until_it_completes(
    ) {
        let network = MemNetwork::default();
        let (a, mut b) = pair(&network, "198.18.0.2:51820");
        first_ping(&a, &mut b).await;
        let before = stats(&b).await.peers[0].last_handshake.unwrap();
        let quiet = stats(&a).await;
        assert!(!quiet.reconnecting && quiet.network_changes == 0);

        // No traffic, no keepalive: only the change makes a handshake.
        tokio::time::sleep(Duration::from_millis(100)).await;
        let (tx, rx) = oneshot::channel();
        a.control.send(Control::NetworkChanged(tx)).await.unwrap();
        let handled = rx.await.unwrap();
        assert_eq!(
            handled,
            NetworkChangeHandled {
                handshakes: 1,
                number: 1
            }
        );
        expect_new_handshake(&b, before, "the change").await;
        let after = stats(&a).await;
        assert!(!after.reconnecting, "the handshake completed");
        assert_eq!(after.network_changes, 1);
        assert_eq!(network.repins(), 1, "the sockets were re-pinned first");
    }

    #[tokio::test]
    async fn a_resume_the_os_announces_starts_a_fresh_handshake_at_once() {
        let network = MemNetwork::default();
        let (a, mut b) = pair(&network, "198.18.0.2:51820");
        first_ping(&a, &mut b).await;
        let before = stats(&b).await.peers[0].last_handshake.unwrap();
        tokio::time::sleep(Duration::from_millis(100)).await;

        a.control.send(Control::Resumed).await.unwrap();
        expect_new_handshake(&b, before, "the resume").await;
    }

    #[tokio::test]
    async fn two_drivers_carry_packets_both_ways_and_answer_uapi() {
        let network = MemNetwork::default();
        let (mut a, mut b) = pair(&network, "198.18.0.2:51820");
        first_ping(&a, &mut b).await;
        let pong = ipv4([198, 19, 0, 2], [198, 19, 0, 1], b"pong");
        b.to_tun.send(pong.clone()).unwrap();
        expect_delivered(&mut a, &pong).await;

        let text = get(&b).await;
        assert!(text.contains(&format!("public_key={}", a.key.public_key().to_hex())));
        assert!(
            text.contains(&format!("endpoint={}", a.addr)),
            "b learned a's endpoint: {text}"
        );
        assert!(!text.contains("last_handshake_time_sec=0\n"), "{text}");

        // The owner's statistics: the same facts, no secrets.
        let (tx, rx) = oneshot::channel();
        b.control.send(Control::Stats(tx)).await.unwrap();
        let snapshot = rx.await.unwrap();
        assert_eq!(snapshot.listen_port, 51820);
        assert_eq!(snapshot.peers.len(), 1);
        let peer = &snapshot.peers[0];
        assert_eq!(peer.public_key, a.key.public_key());
        assert_eq!(peer.endpoint, Some(a.addr));
        assert!(peer.last_handshake.is_some() && peer.rx_bytes > 0 && peer.tx_bytes > 0);

        // A bad port change is refused and changes nothing.
        let (tx, rx) = oneshot::channel();
        let set = uapi::parse_set(["listen_port=4000", "fwmark=7"]).unwrap();
        b.uapi.send(Request::Set(set, tx)).await.unwrap();
        assert_eq!(rx.await.unwrap(), Err(uapi::Errno::ADDRINUSE));
        assert!(!get(&b).await.contains("fwmark="));
    }

    async fn reresolved(host: &Host, peer: &PrivateKey, endpoint: &str) -> bool {
        let (reply, applied) = oneshot::channel();
        let request = Control::Reresolved {
            peer: peer.public_key(),
            endpoint: endpoint.parse().unwrap(),
            reply,
        };
        host.control.send(request).await.unwrap();
        applied.await.unwrap()
    }

    async fn endpoint_of(host: &Host) -> Option<SocketAddr> {
        let (tx, rx) = oneshot::channel();
        host.control.send(Control::Stats(tx)).await.unwrap();
        rx.await.unwrap().peers[0].endpoint
    }

    /// A re-resolved address replaces the endpoint only while the peer's initiation goes
    /// unanswered: a peer that answers keeps the endpoint it was authenticated at.
    #[tokio::test]
    async fn a_reresolved_endpoint_is_used_only_while_the_peer_does_not_answer() {
        let network = MemNetwork::default();
        // a believes b is where nobody listens (b "moved" before a started).
        let (a, mut b) = pair(&network, "198.18.0.99:51820");

        // Nothing is pending yet: the new address is refused.
        assert!(!reresolved(&a, &b.key, "198.18.0.2:51820").await);
        let ping = ipv4([198, 19, 0, 1], [198, 19, 0, 2], b"ping");
        a.to_tun.send(ping.clone()).unwrap();
        // The initiation went to the old address and is unanswered: the new one is taken.
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert!(reresolved(&a, &b.key, "198.18.0.2:51820").await);
        assert_eq!(
            endpoint_of(&a).await,
            Some("198.18.0.2:51820".parse().unwrap())
        );
        // The retry (REKEY_TIMEOUT, 5 s) reaches b at the new address; the queued ping arrives.
        let got = tokio::time::timeout(Duration::from_secs(10), b.from_tun.recv()).await;
        assert_eq!(got.unwrap(), Some(ping));

        // b answered: a later (say, round-robin) address does not move a working peer.
        assert!(!reresolved(&a, &b.key, "198.18.0.7:51820").await);
        assert_eq!(
            endpoint_of(&a).await,
            Some("198.18.0.2:51820".parse().unwrap())
        );
    }

    /// A transport that records what it was asked to send, and refuses sources it lacks.
    #[derive(Default)]
    struct Recorder {
        sent: std::cell::RefCell<Vec<(Endpoint, Vec<u8>, usize)>>,
        max_segments: usize,
        /// Local addresses it no longer has: sending from them fails (EINVAL, as on Linux).
        gone: Vec<IpAddr>,
    }

    impl Transport for Recorder {
        async fn recv(&self, _batch: &mut UdpRecvBatch) -> io::Result<()> {
            std::future::pending().await
        }
        fn try_send(&self, to: Endpoint, datagrams: &[u8], segment: usize) -> io::Result<()> {
            if to.local.is_some_and(|ip| self.gone.contains(&ip)) {
                return Err(io::ErrorKind::InvalidInput.into());
            }
            self.sent
                .borrow_mut()
                .push((to, datagrams.to_vec(), segment));
            Ok(())
        }
        fn max_segments(&self) -> usize {
            self.max_segments
        }
        fn port(&self) -> u16 {
            0
        }
        fn set_port(&mut self, _port: u16) -> anyhow::Result<()> {
            Ok(())
        }
        fn fwmark(&self) -> Option<u32> {
            None
        }
        fn set_fwmark(&mut self, _mark: Option<u32>) -> io::Result<()> {
            Ok(())
        }
    }

    /// (destination, number of datagrams, segment size) of each send.
    fn sends(recorder: &Recorder) -> Vec<(Endpoint, usize, usize)> {
        recorder
            .sent
            .borrow()
            .iter()
            .map(|(to, bytes, segment)| (*to, bytes.len().div_ceil(*segment), *segment))
            .collect()
    }

    fn endpoint(remote: &str, local: Option<&str>) -> Endpoint {
        Endpoint {
            remote: remote.parse().unwrap(),
            local: local.map(|l| l.parse().unwrap()),
        }
    }

    #[test]
    fn gso_batch_joins_equal_datagrams_for_one_endpoint_and_keeps_order() {
        let recorder = Recorder {
            max_segments: 64,
            ..Recorder::default()
        };
        let (a, b) = (
            endpoint("198.18.0.2:51820", None),
            endpoint("198.18.0.3:51820", None),
        );
        let mut batch = GsoBatch::new();
        for i in 0..5u8 {
            batch.push(&recorder, a, &[i; 100]);
        }
        // Shorter: joins as the last segment and closes the batch.
        batch.push(&recorder, a, &[9; 40]);
        // Anything after a short one starts a new send.
        batch.push(&recorder, a, &[7; 40]);
        // Another endpoint, then a larger datagram: each starts a new send.
        batch.push(&recorder, b, &[1; 40]);
        batch.push(&recorder, b, &[2; 80]);
        batch.flush(&recorder);
        batch.flush(&recorder); // nothing left: no empty send
        assert_eq!(
            sends(&recorder),
            vec![(a, 6, 100), (a, 1, 40), (b, 1, 40), (b, 1, 80)]
        );
        let first = &recorder.sent.borrow()[0].1;
        assert_eq!(first.len(), 5 * 100 + 40);
        assert!(first[..100].iter().all(|&x| x == 0) && first[400..500].iter().all(|&x| x == 4));
        assert!(first[500..].iter().all(|&x| x == 9));
    }

    #[test]
    fn gso_batch_respects_the_segment_and_byte_limits() {
        let recorder = Recorder {
            max_segments: 3,
            ..Recorder::default()
        };
        let to = endpoint("[fd00:1::2]:51820", None);
        let mut batch = GsoBatch::new();
        for _ in 0..7 {
            batch.push(&recorder, to, &[0; 1452]);
        }
        batch.flush(&recorder);
        assert_eq!(
            sends(&recorder),
            vec![(to, 3, 1452), (to, 3, 1452), (to, 1, 1452)]
        );

        let recorder = Recorder {
            max_segments: 1000,
            ..Recorder::default()
        };
        let mut batch = GsoBatch::new();
        for _ in 0..100 {
            batch.push(&recorder, to, &[0; 1452]);
        }
        batch.flush(&recorder);
        let sent = recorder.sent.borrow();
        assert!(sent
            .iter()
            .all(|(_, bytes, _)| bytes.len() <= MAX_GSO_BYTES));
        assert_eq!(
            sent.iter().map(|(_, b, _)| b.len()).sum::<usize>(),
            100 * 1452
        );
    }

    #[test]
    fn gso_batch_has_one_source_and_drops_a_refused_one() {
        let second: IpAddr = "fd00:1::12".parse().unwrap();
        let recorder = Recorder {
            max_segments: 64,
            gone: vec![second],
            ..Recorder::default()
        };
        let sticky = endpoint("[fd00:1::2]:51820", Some("fd00:1::12"));
        let other_source = endpoint("[fd00:1::2]:51820", Some("fd00:1::1"));
        let mut batch = GsoBatch::new();
        // The same peer from another local address: a new send, as one GSO send has one source.
        batch.push(&recorder, other_source, &[1; 100]);
        batch.push(&recorder, sticky, &[2; 100]);
        batch.push(&recorder, sticky, &[3; 100]);
        // The second address is gone: the batch is resent with the OS's choice, and later
        // datagrams of the event do not try it again.
        batch.push(&recorder, endpoint("198.18.0.9:1", None), &[4; 10]);
        batch.push(&recorder, sticky, &[5; 100]);
        batch.flush(&recorder);
        let plain = endpoint("[fd00:1::2]:51820", None);
        assert_eq!(
            sends(&recorder),
            vec![
                (other_source, 1, 100),
                (plain, 2, 100),
                (endpoint("198.18.0.9:1", None), 1, 10),
                (plain, 1, 100),
            ]
        );
        assert_eq!(batch.refused, vec![second]);
    }

    async fn stats(host: &Host) -> DeviceSnapshot {
        let (tx, rx) = oneshot::channel();
        host.control.send(Control::Stats(tx)).await.unwrap();
        rx.await.unwrap()
    }

    async fn expect_delivered(host: &mut Host, packet: &[u8]) {
        let got = tokio::time::timeout(Duration::from_secs(5), host.from_tun.recv()).await;
        assert_eq!(got.expect("delivered in time").as_deref(), Some(packet));
    }

    /// Warren (`w`) has two addresses; its peer (`p`) knows it by the second. Replies must come
    /// from that second address, so the peer never sees a new source and never roams; when the
    /// address goes away, Warren sends from its first one and the peer follows.
    #[tokio::test]
    async fn replies_leave_from_the_address_the_peer_sent_to_and_fall_back_when_it_goes() {
        let network = MemNetwork::default();
        let (kw, kp) = (PrivateKey::generate(), PrivateKey::generate());
        let (first, second): (SocketAddr, SocketAddr) = (
            "198.18.0.2:51820".parse().unwrap(),
            "198.18.0.12:51820".parse().unwrap(),
        );

        let (tun, to_tun, from_tun) = MemTun::new();
        let mut device = Device::new(kw.clone());
        let mut to_p = PeerSettings::new(kp.public_key());
        to_p.allowed_ips = vec!["198.19.0.1/32".parse().unwrap()];
        device.upsert_peer(to_p);
        let (uapi, requests) = mpsc::channel(4);
        let (control, control_rx) = mpsc::channel(4);
        let socket = network.multihomed_socket(&[first, second]);
        let mut driver = Driver::new(device, tun, socket, requests).with_control(control_rx);
        tokio::spawn(async move { driver.run(std::future::pending()).await });
        let mut w = Host {
            key: kw.clone(),
            addr: second,
            to_tun,
            from_tun,
            uapi,
            control,
        };

        let mut to_w = PeerSettings::new(kw.public_key());
        to_w.endpoint = Some(second);
        to_w.allowed_ips = vec!["198.19.0.2/32".parse().unwrap()];
        let mut p = start("198.18.0.1:51820", kp, to_w, &network);

        let ping = ipv4([198, 19, 0, 1], [198, 19, 0, 2], b"ping");
        p.to_tun.send(ping.clone()).unwrap();
        expect_delivered(&mut w, &ping).await;
        let pong = ipv4([198, 19, 0, 2], [198, 19, 0, 1], b"pong");
        w.to_tun.send(pong.clone()).unwrap();
        expect_delivered(&mut p, &pong).await;
        let seen = stats(&p).await.peers[0].endpoint;
        assert_eq!(seen, Some(second), "the peer sees the address it sent to");
        assert!(get(&w).await.contains(&format!("endpoint={}", p.addr)));

        // The second address is removed while the tunnel is up: Warren's next datagram is
        // refused from it, leaves from the first address, and the peer roams there.
        network.remove_address(second);
        let later = ipv4([198, 19, 0, 2], [198, 19, 0, 1], b"after the address went");
        w.to_tun.send(later.clone()).unwrap();
        expect_delivered(&mut p, &later).await;
        assert_eq!(stats(&p).await.peers[0].endpoint, Some(first));
        let back = ipv4([198, 19, 0, 1], [198, 19, 0, 2], b"back");
        p.to_tun.send(back.clone()).unwrap();
        expect_delivered(&mut w, &back).await;
        // And Warren keeps sending from there (the dead source was forgotten, not retried).
        let again = ipv4([198, 19, 0, 2], [198, 19, 0, 1], b"again");
        w.to_tun.send(again.clone()).unwrap();
        expect_delivered(&mut p, &again).await;
        assert_eq!(stats(&p).await.peers[0].endpoint, Some(first));
    }
}
