//! The packet driver: the only place that moves bytes between the TUN device, the UDP sockets
//! and the sans-IO core (`warren_tunnel::Device`), and the only reader of the clock.
//!
//! Pipeline, in the order the loop in [`Driver::run`] serves it:
//! 1. **TUN → core → UDP**: an IP packet read from the TUN goes to `Device::handle_tun_packet`,
//!    which routes it by AllowedIPs and encrypts it; the datagram leaves on the IPv4 or IPv6
//!    socket, whichever matches the peer's endpoint.
//! 2. **UDP → core → TUN/UDP**: a datagram from either socket goes to `Device::handle_datagram`;
//!    decrypted packets are written to the TUN, handshake replies go back out over UDP.
//! 3. **Timer**: every `TIMER_TICK`, `Device::handle_timeout` runs retries, rekeys and keepalives.
//! 4. **Control**: UAPI requests (`wg show`, `wg set`) read or change the device between packets,
//!    so they never race the data path; so do the owner's [`Control`] requests (per-peer
//!    statistics for the daemon's status and liveness), on a channel of their own.
//!
//! Writes are non-blocking: when the kernel's queue is full the packet is dropped, as a router
//! would, and the peers' congestion control backs off. Buffers are allocated once.

use crate::uapi::{self, Request, SetRequest};
use anyhow::Context;
use socket2::{Domain, Protocol, Socket, Type};
use std::future::Future;
use std::io;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, UdpSocket as StdUdpSocket};
use std::time::SystemTime;
use tokio::net::UdpSocket;
use tokio::sync::{mpsc, oneshot};
use warren_tunnel::{Device, Instant, Output, MAX_DATAGRAM_LEN, TIMER_TICK};

/// Socket buffer size asked of the kernel: bursts of a fast tunnel overflow the 212 KB default.
const SOCKET_BUFFER_BYTES: usize = 4 << 20;
/// The largest IP packet a TUN read returns.
const MAX_PACKET_LEN: usize = 65_535;

/// The TUN side as the driver sees it: read a packet, write a packet without waiting.
pub trait TunDevice {
    /// Waits for the next IP packet.
    fn recv(&self, buf: &mut [u8]) -> impl Future<Output = io::Result<usize>>;
    /// Writes one IP packet now, or fails with `WouldBlock` when the queue is full.
    fn try_send(&self, packet: &[u8]) -> io::Result<usize>;
}

/// The UDP side as the driver sees it.
pub trait Transport {
    /// Waits for the next datagram and its source.
    fn recv_from(&self, buf: &mut [u8]) -> impl Future<Output = io::Result<(usize, SocketAddr)>>;
    /// Sends one datagram now, or fails with `WouldBlock` when the queue is full.
    fn try_send_to(&self, datagram: &[u8], to: SocketAddr) -> io::Result<usize>;
    /// The local UDP port.
    fn port(&self) -> u16;
    /// Moves to another port (0 = any), keeping the fwmark. On error nothing changed.
    fn set_port(&mut self, port: u16) -> anyhow::Result<()>;
    /// The mark on outgoing datagrams.
    fn fwmark(&self) -> Option<u32>;
    /// Marks outgoing datagrams (`None` clears the mark).
    fn set_fwmark(&mut self, mark: Option<u32>) -> io::Result<()>;
}

impl TunDevice for tun::AsyncDevice {
    async fn recv(&self, buf: &mut [u8]) -> io::Result<usize> {
        tun::AsyncDevice::recv(self, buf).await
    }

    fn try_send(&self, packet: &[u8]) -> io::Result<usize> {
        // `AsyncDevice` derefs to the non-blocking device; a direct write never waits.
        std::ops::Deref::deref(self).send(packet)
    }
}

/// The UDP side: an IPv4 and (when the host has IPv6) an IPv6 socket on the same port.
pub struct Sockets {
    v4: UdpSocket,
    v6: Option<UdpSocket>,
    port: u16,
    fwmark: Option<u32>,
    /// The tunnel interface the sockets are kept off (see [`crate::egress`]), once pinned.
    pinned_off: Option<String>,
}

impl Sockets {
    /// Binds both families on `port` (0 = pick one free for both), marking packets with
    /// `fwmark` where the OS supports it.
    pub fn bind(port: u16, fwmark: Option<u32>) -> anyhow::Result<Self> {
        // With a random port the IPv6 bind can lose a race for it; try a few ports.
        let attempts = if port == 0 { 8 } else { 1 };
        let mut last_error = None;
        for _ in 0..attempts {
            let v4 = bind_one(SocketAddr::from((Ipv4Addr::UNSPECIFIED, port)), fwmark)
                .with_context(|| format!("failed to bind UDP port {port} on IPv4"))?;
            let bound = v4.local_addr()?.port();
            match bind_one(SocketAddr::from((Ipv6Addr::UNSPECIFIED, bound)), fwmark) {
                Ok(v6) => return Self::from_std(v4, Some(v6), bound, fwmark),
                Err(e) if is_ipv6_unavailable(&e) => {
                    tracing::warn!("IPv6 is not available ({e}); using IPv4 only");
                    return Self::from_std(v4, None, bound, fwmark);
                }
                Err(e) => last_error = Some(e),
            }
        }
        let e = last_error.unwrap_or_else(|| io::Error::other("no attempt made"));
        Err(e).with_context(|| format!("failed to bind UDP port {port} on IPv6"))
    }

    fn from_std(
        v4: StdUdpSocket,
        v6: Option<StdUdpSocket>,
        port: u16,
        fwmark: Option<u32>,
    ) -> anyhow::Result<Self> {
        Ok(Self {
            v4: UdpSocket::from_std(v4)?,
            v6: v6.map(UdpSocket::from_std).transpose()?,
            port,
            fwmark,
            pinned_off: None,
        })
    }

    /// Keeps both sockets' datagrams off the tunnel interface `tunnel` where the OS needs it
    /// (Windows; see [`crate::egress`]); remembered, so a re-bind pins again.
    pub fn pin_off(&mut self, tunnel: &str) -> io::Result<()> {
        crate::egress::pin(socket2::SockRef::from(&self.v4), false, tunnel)?;
        if let Some(v6) = &self.v6 {
            crate::egress::pin(socket2::SockRef::from(v6), true, tunnel)?;
        }
        self.pinned_off = Some(tunnel.to_owned());
        Ok(())
    }
}

impl Transport for Sockets {
    async fn recv_from(&self, buf: &mut [u8]) -> io::Result<(usize, SocketAddr)> {
        // Wait on both families; whichever is readable is read without blocking.
        loop {
            let socket = match &self.v6 {
                Some(v6) => tokio::select! {
                    ready = self.v4.readable() => { ready?; &self.v4 }
                    ready = v6.readable() => { ready?; v6 }
                },
                None => {
                    self.v4.readable().await?;
                    &self.v4
                }
            };
            match socket.try_recv_from(buf) {
                Ok((n, from)) => return Ok((n, unmap(from))),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                Err(e) => return Err(e),
            }
        }
    }

    fn try_send_to(&self, datagram: &[u8], to: SocketAddr) -> io::Result<usize> {
        let socket = match (to, &self.v6) {
            (SocketAddr::V4(_), _) => &self.v4,
            (SocketAddr::V6(_), Some(v6)) => v6,
            (SocketAddr::V6(_), None) => {
                return Err(io::Error::new(
                    io::ErrorKind::AddrNotAvailable,
                    "no IPv6 socket (IPv6 is unavailable on this host)",
                ))
            }
        };
        socket.try_send_to(datagram, to)
    }

    fn port(&self) -> u16 {
        self.port
    }

    fn set_port(&mut self, port: u16) -> anyhow::Result<()> {
        if port != 0 && port == self.port {
            return Ok(());
        }
        let mut sockets = Sockets::bind(port, self.fwmark)?;
        if let Some(tunnel) = &self.pinned_off {
            sockets.pin_off(tunnel)?;
        }
        *self = sockets;
        Ok(())
    }

    fn fwmark(&self) -> Option<u32> {
        self.fwmark
    }

    fn set_fwmark(&mut self, mark: Option<u32>) -> io::Result<()> {
        set_mark(&socket2::SockRef::from(&self.v4), mark)?;
        if let Some(v6) = &self.v6 {
            set_mark(&socket2::SockRef::from(v6), mark)?;
        }
        self.fwmark = mark;
        Ok(())
    }
}

/// Binding `[::]` failed because the host has no IPv6 (disabled, or not compiled in).
fn is_ipv6_unavailable(e: &io::Error) -> bool {
    /// WSAEAFNOSUPPORT: Windows' own code, which `io::Error` does not map to a kind.
    const WSAEAFNOSUPPORT: i32 = 10047;
    e.kind() == io::ErrorKind::AddrNotAvailable
        || matches!(
            e.raw_os_error(),
            Some(libc::EAFNOSUPPORT) | Some(libc::EADDRNOTAVAIL) | Some(WSAEAFNOSUPPORT)
        )
}

fn bind_one(addr: SocketAddr, fwmark: Option<u32>) -> io::Result<StdUdpSocket> {
    let socket = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
    if addr.is_ipv6() {
        socket.set_only_v6(true)?;
    }
    // Best effort: the kernel caps these at net.core.[rw]mem_max unless we are root.
    let _ = socket.set_recv_buffer_size(SOCKET_BUFFER_BYTES);
    let _ = socket.set_send_buffer_size(SOCKET_BUFFER_BYTES);
    set_mark(&socket2::SockRef::from(&socket), fwmark)?;
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    Ok(socket.into())
}

#[cfg(any(target_os = "linux", target_os = "android"))]
fn set_mark(socket: &socket2::SockRef<'_>, mark: Option<u32>) -> io::Result<()> {
    match mark {
        Some(mark) => socket.set_mark(mark),
        // Only clear a mark that might be set; a fresh socket has none.
        None => socket.set_mark(0),
    }
}

#[cfg(not(any(target_os = "linux", target_os = "android")))]
fn set_mark(_socket: &socket2::SockRef<'_>, mark: Option<u32>) -> io::Result<()> {
    match mark {
        Some(m) if m != 0 => Err(io::Error::new(
            io::ErrorKind::Unsupported,
            "FwMark is only supported on Linux",
        )),
        _ => Ok(()),
    }
}

/// A request from the driver's owner (the session), answered between packets like UAPI requests.
pub enum Control {
    /// Reply with a snapshot of every peer's statistics.
    Stats(oneshot::Sender<DeviceSnapshot>),
}

/// What [`Control::Stats`] answers: the device's peers as the daemon reports them. Holds no
/// secret (public keys only).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeviceSnapshot {
    /// The UDP port the device listens on.
    pub listen_port: u16,
    /// One entry per peer, in configuration order.
    pub peers: Vec<PeerStats>,
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
}

/// Sends the core's output straight to the kernel, without waiting.
struct Sink<'a, T, S> {
    tun: &'a T,
    transport: &'a S,
}

impl<T: TunDevice, S: Transport> Output for Sink<'_, T, S> {
    fn send_datagram(&mut self, to: SocketAddr, datagram: &[u8]) {
        if let Err(e) = self.transport.try_send_to(datagram, to) {
            if e.kind() != io::ErrorKind::WouldBlock {
                tracing::debug!(%to, "failed to send datagram: {e}");
            }
        }
    }

    fn write_packet(&mut self, packet: &[u8]) {
        if let Err(e) = self.tun.try_send(packet) {
            if e.kind() != io::ErrorKind::WouldBlock {
                tracing::debug!("failed to write packet to the TUN: {e}");
            }
        }
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
        let mut tun_buf = vec![0u8; MAX_PACKET_LEN];
        let mut udp_buf = vec![0u8; MAX_DATAGRAM_LEN];
        let mut tick = tokio::time::interval(TIMER_TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                () = &mut shutdown => return Ok(()),
                read = self.tun.recv(&mut tun_buf) => {
                    let n = read.context("failed to read from the TUN device")?;
                    let mut out = Sink { tun: &self.tun, transport: &self.transport };
                    self.device.handle_tun_packet(Instant::now(), &tun_buf[..n], &mut out);
                }
                received = self.transport.recv_from(&mut udp_buf) => match received {
                    Ok((n, from)) => {
                        let mut out = Sink { tun: &self.tun, transport: &self.transport };
                        self.device.handle_datagram(Instant::now(), from, &udp_buf[..n], &mut out);
                    }
                    // E.g. ICMP errors reported on the socket; the next datagram is unaffected.
                    Err(e) => tracing::debug!("failed to receive a datagram: {e}"),
                },
                _ = tick.tick() => {
                    let mut out = Sink { tun: &self.tun, transport: &self.transport };
                    self.device.handle_timeout(Instant::now(), &mut out);
                }
                Some(request) = self.requests.recv() => self.on_request(request),
                Some(control) = recv_control(&mut self.control) => self.on_control(control),
            }
        }
    }

    fn on_control(&mut self, control: Control) {
        match control {
            Control::Stats(reply) => {
                let (now, wall) = (Instant::now(), SystemTime::now());
                let peers = self
                    .device
                    .peers()
                    .into_iter()
                    .map(|peer| PeerStats {
                        public_key: peer.public_key,
                        endpoint: peer.endpoint,
                        allowed_ips: peer.allowed_ips,
                        last_handshake: peer
                            .last_handshake
                            .and_then(|t| wall.checked_sub(now.duration_since(t))),
                        rx_bytes: peer.rx_bytes,
                        tx_bytes: peer.tx_bytes,
                    })
                    .collect();
                let _ = reply.send(DeviceSnapshot {
                    listen_port: self.transport.port(),
                    peers,
                });
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
                return Err(uapi::Errno::INVALID);
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

/// IPv4-mapped IPv6 source addresses (from a dual-stack peer) are stored as plain IPv4.
fn unmap(addr: SocketAddr) -> SocketAddr {
    match addr {
        SocketAddr::V6(v6) => match v6.ip().to_ipv4_mapped() {
            Some(v4) => SocketAddr::from((v4, v6.port())),
            None => addr,
        },
        SocketAddr::V4(_) => addr,
    }
}

#[cfg(test)]
mod tests {
    //! Two drivers wired together in memory: a TUN made of channels and a UDP "network" that
    //! delivers by address. They exercise the real loop, timer and UAPI path without root.

    use super::*;
    use std::collections::HashMap;
    use std::sync::{Arc, Mutex};
    use std::time::Duration;
    use tokio::sync::{
        mpsc::UnboundedReceiver, mpsc::UnboundedSender, oneshot, Mutex as AsyncMutex,
    };
    use warren_proto::key::PrivateKey;
    use warren_tunnel::PeerSettings;

    struct MemTun {
        inbound: AsyncMutex<UnboundedReceiver<Vec<u8>>>,
        written: UnboundedSender<Vec<u8>>,
    }

    impl TunDevice for MemTun {
        async fn recv(&self, buf: &mut [u8]) -> io::Result<usize> {
            let packet = self.inbound.lock().await.recv().await;
            let packet = packet.ok_or_else(|| io::Error::other("TUN closed"))?;
            buf[..packet.len()].copy_from_slice(&packet);
            Ok(packet.len())
        }
        fn try_send(&self, packet: &[u8]) -> io::Result<usize> {
            let _ = self.written.send(packet.to_vec());
            Ok(packet.len())
        }
    }

    type Wires = Arc<Mutex<HashMap<SocketAddr, UnboundedSender<(SocketAddr, Vec<u8>)>>>>;

    struct MemSocket {
        addr: SocketAddr,
        wires: Wires,
        inbound: AsyncMutex<UnboundedReceiver<(SocketAddr, Vec<u8>)>>,
        fwmark: Option<u32>,
    }

    impl Transport for MemSocket {
        async fn recv_from(&self, buf: &mut [u8]) -> io::Result<(usize, SocketAddr)> {
            let got = self.inbound.lock().await.recv().await;
            let (from, datagram) = got.ok_or_else(|| io::Error::other("network gone"))?;
            buf[..datagram.len()].copy_from_slice(&datagram);
            Ok((datagram.len(), from))
        }
        fn try_send_to(&self, datagram: &[u8], to: SocketAddr) -> io::Result<usize> {
            if let Some(wire) = self.wires.lock().unwrap().get(&to) {
                let _ = wire.send((self.addr, datagram.to_vec()));
            }
            Ok(datagram.len())
        }
        fn port(&self) -> u16 {
            self.addr.port()
        }
        fn set_port(&mut self, _port: u16) -> anyhow::Result<()> {
            anyhow::bail!("fixed in memory")
        }
        fn fwmark(&self) -> Option<u32> {
            self.fwmark
        }
        fn set_fwmark(&mut self, mark: Option<u32>) -> io::Result<()> {
            self.fwmark = mark;
            Ok(())
        }
    }

    struct Host {
        key: PrivateKey,
        addr: SocketAddr,
        to_tun: UnboundedSender<Vec<u8>>,
        from_tun: UnboundedReceiver<Vec<u8>>,
        uapi: mpsc::Sender<Request>,
        control: mpsc::Sender<Control>,
    }

    fn start(addr: &str, key: PrivateKey, peer: PeerSettings, wires: &Wires) -> Host {
        let addr: SocketAddr = addr.parse().unwrap();
        let (to_tun, tun_in) = mpsc::unbounded_channel();
        let (tun_out, from_tun) = mpsc::unbounded_channel();
        let (wire, net_in) = mpsc::unbounded_channel();
        wires.lock().unwrap().insert(addr, wire);
        let mut device = Device::new(key.clone());
        device.upsert_peer(peer);
        let (uapi, requests) = mpsc::channel(4);
        let tun = MemTun {
            inbound: AsyncMutex::new(tun_in),
            written: tun_out,
        };
        let socket = MemSocket {
            addr,
            wires: wires.clone(),
            inbound: AsyncMutex::new(net_in),
            fwmark: None,
        };
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

    #[tokio::test]
    async fn two_drivers_carry_packets_both_ways_and_answer_uapi() {
        let wires = Wires::default();
        let (ka, kb) = (PrivateKey::generate(), PrivateKey::generate());
        let mut to_b = PeerSettings::new(kb.public_key());
        to_b.endpoint = Some("198.18.0.2:51820".parse().unwrap());
        to_b.allowed_ips = vec!["198.19.0.2/32".parse().unwrap()];
        let mut to_a = PeerSettings::new(ka.public_key());
        to_a.allowed_ips = vec!["198.19.0.1/32".parse().unwrap()];
        let a = start("198.18.0.1:51820", ka, to_b, &wires);
        let mut b = start("198.18.0.2:51820", kb, to_a, &wires);
        let mut a = a;

        let ping = ipv4([198, 19, 0, 1], [198, 19, 0, 2], b"ping");
        a.to_tun.send(ping.clone()).unwrap();
        let got = tokio::time::timeout(Duration::from_secs(5), b.from_tun.recv()).await;
        assert_eq!(got.unwrap(), Some(ping));

        let pong = ipv4([198, 19, 0, 2], [198, 19, 0, 1], b"pong");
        b.to_tun.send(pong.clone()).unwrap();
        let got = tokio::time::timeout(Duration::from_secs(5), a.from_tun.recv()).await;
        assert_eq!(got.unwrap(), Some(pong));

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
}
