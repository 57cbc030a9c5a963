//! The UDP side of the data plane: the [`Transport`] trait the driver sends and receives
//! through, and its real implementation, the tunnel's IPv4 and IPv6 sockets on one port, with
//! batched I/O through the `quinn-udp` crate (`recvmmsg` and UDP GRO on receive, UDP GSO on send
//! where the OS has them), the fwmark, and the re-bind a UAPI `listen_port` change asks for.
//!
//! **The source address of replies.** `quinn-udp` turns on the packet-info control messages
//! (`IP_PKTINFO`, `IPV6_RECVPKTINFO`), so every received datagram says which of our addresses it
//! was sent to ([`Received::local`]); the core keeps it with the peer's endpoint
//! (`warren_tunnel::Endpoint`, see its docs for why) and every datagram to the peer carries it
//! back here, where it becomes the source (`IP_PKTINFO`/`IPV6_PKTINFO` on send, as
//! wireguard-go's sticky `StdNetEndpoint` and the kernel module do). One GSO send has one
//! source. On Linux only: elsewhere the OS picks the source, as before. An IPv6 link-local
//! destination is not kept (it would need its interface too). When the OS refuses the source
//! (the address was removed: `EINVAL`, `EADDRNOTAVAIL`, or `ENETUNREACH` for IPv4), the send fails
//! with that error and the driver resends without it ([`source_refused`]).
//!
//! `quinn-udp` tunes its sockets for QUIC, which sets "don't fragment" to probe the path MTU;
//! WireGuard keeps the OS's default (learn the path MTU, fragment locally above it), as
//! wireguard-go and the kernel module do. [`fragmentation`] puts that default back. [`egress`]
//! keeps the sockets' datagrams off the tunnel where the OS needs the socket told (Windows).

pub mod egress;

use super::batch::{Received, UdpRecvBatch, UDP_RECV_BUFFERS};
use anyhow::Context;
use socket2::{Domain, Protocol, Socket, Type};
use std::future::Future;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, UdpSocket as StdUdpSocket};
use tokio::net::UdpSocket;
use warren_tunnel::Endpoint;

/// The UDP side as the driver sees it.
pub trait Transport {
    /// Waits for datagrams and puts them, with their sources and the local addresses they were
    /// sent to, into `batch`.
    fn recv(&self, batch: &mut UdpRecvBatch) -> impl Future<Output = io::Result<()>>;
    /// Sends `datagrams` to `to.remote`, from `to.local` where the transport can choose the
    /// source, now: one datagram, or several of `segment` bytes each (the last may be shorter),
    /// at most [`Self::max_segments`]. Fails with `WouldBlock` when the queue is full, and with
    /// an error that [`source_refused`] recognises when `to.local` is not ours (any more).
    fn try_send(&self, to: Endpoint, datagrams: &[u8], segment: usize) -> io::Result<()>;
    /// How many datagrams one [`Self::try_send`] may carry (1 without UDP GSO).
    fn max_segments(&self) -> usize;
    /// The local UDP port.
    fn port(&self) -> u16;
    /// Moves to another port (0 = any), keeping the fwmark. On error nothing changed.
    fn set_port(&mut self, port: u16) -> anyhow::Result<()>;
    /// The mark on outgoing datagrams.
    fn fwmark(&self) -> Option<u32>;
    /// Marks outgoing datagrams (`None` clears the mark).
    fn set_fwmark(&mut self, mark: Option<u32>) -> io::Result<()>;
    /// The network under the tunnel changed: keeps the datagrams off the tunnel on the new
    /// network where the OS needs the sockets pinned to an interface (Windows; see [`egress`]:
    /// the best non-tunnel default route may now be another interface). Nothing elsewhere.
    fn repin(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Socket buffer size asked of the kernel: bursts of a fast tunnel overflow the 212 KB default.
const SOCKET_BUFFER_BYTES: usize = 4 << 20;

/// The UDP side: an IPv4 and (when the host has IPv6) an IPv6 socket on the same port.
pub struct Sockets {
    v4: Socket4or6,
    v6: Option<Socket4or6>,
    port: u16,
    fwmark: Option<u32>,
    /// The tunnel interface the sockets are kept off (see [`egress`]), once pinned, and which
    /// families the tunnel routes by default (IPv4, IPv6).
    pinned_off: Option<(String, [bool; 2])>,
    /// Drop the datagrams of a family (IPv4, IPv6): its socket has no way out but the tunnel
    /// ([`egress::Pin::Blackhole`]).
    blackhole: [bool; 2],
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
            v4: Socket4or6::new(v4)?,
            v6: v6.map(Socket4or6::new).transpose()?,
            port,
            fwmark,
            pinned_off: None,
            blackhole: [false; 2],
        })
    }

    /// Keeps both sockets' datagrams off the tunnel interface `tunnel` where the OS needs it
    /// (Windows; see [`egress`]); remembered, so a re-bind pins again. `full`: whether the tunnel
    /// routes IPv4, IPv6 by default (a family without a way out is then blackholed).
    pub fn pin_off(&mut self, tunnel: &str, full: [bool; 2]) -> io::Result<()> {
        let v4 = egress::pin(
            socket2::SockRef::from(&self.v4.socket),
            false,
            tunnel,
            full[0],
        )?;
        let v6 = match &self.v6 {
            Some(v6) => egress::pin(socket2::SockRef::from(&v6.socket), true, tunnel, full[1])?,
            None => egress::Pin::NotNeeded,
        };
        self.blackhole = [v4 == egress::Pin::Blackhole, v6 == egress::Pin::Blackhole];
        self.pinned_off = Some((tunnel.to_owned(), full));
        Ok(())
    }
}

/// One bound socket with `quinn-udp`'s state for batched I/O on it.
struct Socket4or6 {
    socket: UdpSocket,
    state: quinn_udp::UdpSocketState,
}

impl Socket4or6 {
    fn new(socket: StdUdpSocket) -> io::Result<Self> {
        let kept = fragmentation::Saved::read(&socket);
        let state = quinn_udp::UdpSocketState::new((&socket).into())?;
        // quinn-udp sets "don't fragment" for QUIC's path-MTU probing. WireGuard relies on the
        // kernel's default instead (learn the path MTU, fragment locally above it), as
        // wireguard-go and the kernel module do, so a tunnel over a smaller-MTU path keeps
        // working: put the defaults back.
        kept.restore(&socket);
        Ok(Self {
            socket: UdpSocket::from_std(socket)?,
            state,
        })
    }

    fn try_recv(&self, batch: &mut UdpRecvBatch) -> io::Result<()> {
        let mut meta = [quinn_udp::RecvMeta::default(); UDP_RECV_BUFFERS];
        let mut slices = batch.io_slices();
        let count = self.socket.try_io(tokio::io::Interest::READABLE, || {
            self.state
                .recv((&self.socket).into(), &mut slices, &mut meta)
        })?;
        batch.set_received(meta[..count].iter().map(|m| Received {
            from: unmap(m.addr),
            local: m.dst_ip.filter(is_sticky_source),
            len: m.len,
            // 0 where the OS does not coalesce: one datagram.
            stride: if m.stride == 0 { m.len } else { m.stride },
        }));
        Ok(())
    }
}

impl Transport for Sockets {
    async fn recv(&self, batch: &mut UdpRecvBatch) -> io::Result<()> {
        // Wait on both families; whichever is readable is read without blocking.
        loop {
            let socket = match &self.v6 {
                Some(v6) => tokio::select! {
                    ready = self.v4.socket.readable() => { ready?; &self.v4 }
                    ready = v6.socket.readable() => { ready?; v6 }
                },
                None => {
                    self.v4.socket.readable().await?;
                    &self.v4
                }
            };
            match socket.try_recv(batch) {
                Ok(()) => return Ok(()),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                Err(e) => return Err(e),
            }
        }
    }

    fn try_send(&self, to: Endpoint, datagrams: &[u8], segment: usize) -> io::Result<()> {
        // Dropped, as wireguard-go's bind drops them: sent, they would loop into the tunnel.
        if self.blackhole[usize::from(to.remote.is_ipv6())] {
            return Ok(());
        }
        let socket = match (to.remote, &self.v6) {
            (SocketAddr::V4(_), _) => &self.v4,
            (SocketAddr::V6(_), Some(v6)) => v6,
            (SocketAddr::V6(_), None) => {
                return Err(io::Error::new(
                    io::ErrorKind::AddrNotAvailable,
                    "no IPv6 socket (IPv6 is unavailable on this host)",
                ))
            }
        };
        let transmit = quinn_udp::Transmit {
            destination: to.remote,
            ecn: None,
            contents: datagrams,
            segment_size: (datagrams.len() > segment).then_some(segment),
            // Only where it is tested (see the module docs); elsewhere the OS chooses.
            src_ip: to.local.filter(|_| cfg!(target_os = "linux")),
        };
        socket.socket.try_io(tokio::io::Interest::WRITABLE, || {
            socket.state.try_send((&socket.socket).into(), &transmit)
        })
    }

    fn max_segments(&self) -> usize {
        self.v4.state.max_gso_segments().max(1)
    }

    fn port(&self) -> u16 {
        self.port
    }

    fn set_port(&mut self, port: u16) -> anyhow::Result<()> {
        if port != 0 && port == self.port {
            return Ok(());
        }
        let mut sockets = Sockets::bind(port, self.fwmark)?;
        if let Some((tunnel, full)) = &self.pinned_off {
            sockets.pin_off(tunnel, *full)?;
        }
        *self = sockets;
        Ok(())
    }

    fn fwmark(&self) -> Option<u32> {
        self.fwmark
    }

    fn set_fwmark(&mut self, mark: Option<u32>) -> io::Result<()> {
        set_mark(&socket2::SockRef::from(&self.v4.socket), mark)?;
        if let Some(v6) = &self.v6 {
            set_mark(&socket2::SockRef::from(&v6.socket), mark)?;
        }
        self.fwmark = mark;
        Ok(())
    }

    fn repin(&mut self) -> io::Result<()> {
        match self.pinned_off.clone() {
            Some((tunnel, full)) => self.pin_off(&tunnel, full),
            None => Ok(()),
        }
    }
}

/// Whether a send that named a local source failed because that source is not usable (any
/// more): Linux says `EINVAL` (IPv6; also a source of the wrong family) or `ENETUNREACH` (IPv4)
/// for an address the host no longer has, others `EADDRNOTAVAIL`. The caller resends with the
/// OS's choice; if the network really is unreachable, that resend fails too and says so.
pub fn source_refused(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::AddrNotAvailable
            | io::ErrorKind::InvalidInput
            | io::ErrorKind::NetworkUnreachable
    )
}

/// Whether replies may be pinned to this local address: not to IPv6 link-local ones, which
/// need their interface as well (the OS chooses for those, as it always did).
fn is_sticky_source(local: &IpAddr) -> bool {
    match local {
        IpAddr::V4(v4) => !v4.is_unspecified(),
        IpAddr::V6(v6) => !v6.is_unspecified() && (v6.segments()[0] & 0xffc0) != 0xfe80,
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

/// The socket options that say whether outgoing datagrams may be fragmented, saved and put back
/// around `quinn_udp::UdpSocketState::new` (see [`Socket4or6::new`]).
mod fragmentation {
    use std::net::UdpSocket;

    /// (level, option) pairs that decide fragmentation on this OS.
    #[cfg(any(target_os = "linux", target_os = "android"))]
    const OPTIONS: &[(i32, i32)] = &[
        (libc::IPPROTO_IP, libc::IP_MTU_DISCOVER),
        (libc::IPPROTO_IPV6, libc::IPV6_MTU_DISCOVER),
        (libc::IPPROTO_IPV6, libc::IPV6_DONTFRAG),
    ];
    #[cfg(target_os = "macos")]
    const OPTIONS: &[(i32, i32)] = &[
        (libc::IPPROTO_IP, libc::IP_DONTFRAG),
        (libc::IPPROTO_IPV6, libc::IPV6_DONTFRAG),
    ];
    #[cfg(windows)]
    const OPTIONS: &[(i32, i32)] = {
        use windows_sys::Win32::Networking::WinSock as ws;
        &[
            (ws::IPPROTO_IP, ws::IP_DONTFRAGMENT),
            (ws::IPPROTO_IPV6, ws::IPV6_DONTFRAG),
        ]
    };
    #[cfg(not(any(
        target_os = "linux",
        target_os = "android",
        target_os = "macos",
        windows
    )))]
    const OPTIONS: &[(i32, i32)] = &[];

    /// The values the socket had; options the socket does not have (IPv6 ones on an IPv4
    /// socket) are left out.
    pub(super) struct Saved(Vec<(i32, i32, i32)>);

    impl Saved {
        pub(super) fn read(socket: &UdpSocket) -> Self {
            Self(
                OPTIONS
                    .iter()
                    .filter_map(|&(level, name)| Some((level, name, get(socket, level, name)?)))
                    .collect(),
            )
        }

        pub(super) fn restore(&self, socket: &UdpSocket) {
            for &(level, name, value) in &self.0 {
                if !set(socket, level, name, value) {
                    tracing::debug!("could not restore socket option {level}/{name} to {value}");
                }
            }
        }
    }

    #[cfg(unix)]
    fn get(socket: &UdpSocket, level: i32, name: i32) -> Option<i32> {
        use std::os::fd::AsRawFd;
        let mut value: libc::c_int = 0;
        let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
        // SAFETY: the descriptor is open for the borrow's lifetime; `value` and `len` are valid
        // for writes and `len` holds the size of `value`.
        let rc = unsafe {
            libc::getsockopt(
                socket.as_raw_fd(),
                level,
                name,
                (&mut value as *mut libc::c_int).cast(),
                &mut len,
            )
        };
        (rc == 0).then_some(value)
    }

    #[cfg(unix)]
    fn set(socket: &UdpSocket, level: i32, name: i32, value: i32) -> bool {
        use std::os::fd::AsRawFd;
        // SAFETY: the descriptor is open for the borrow's lifetime; `value` is a live c_int and
        // the length passed is its size.
        let rc = unsafe {
            libc::setsockopt(
                socket.as_raw_fd(),
                level,
                name,
                (&value as *const libc::c_int).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            )
        };
        rc == 0
    }

    #[cfg(windows)]
    fn get(socket: &UdpSocket, level: i32, name: i32) -> Option<i32> {
        use std::os::windows::io::AsRawSocket;
        use windows_sys::Win32::Networking::WinSock as ws;
        let mut value: i32 = 0;
        let mut len = std::mem::size_of::<i32>() as i32;
        // SAFETY: the socket is open for the borrow's lifetime; `value` and `len` are valid for
        // writes and `len` holds the size of `value`.
        let rc = unsafe {
            ws::getsockopt(
                socket.as_raw_socket() as ws::SOCKET,
                level,
                name,
                (&mut value as *mut i32).cast(),
                &mut len,
            )
        };
        (rc == 0).then_some(value)
    }

    #[cfg(windows)]
    fn set(socket: &UdpSocket, level: i32, name: i32, value: i32) -> bool {
        use std::os::windows::io::AsRawSocket;
        use windows_sys::Win32::Networking::WinSock as ws;
        // SAFETY: the socket is open for the borrow's lifetime; `value` is a live i32 and the
        // length passed is its size.
        let rc = unsafe {
            ws::setsockopt(
                socket.as_raw_socket() as ws::SOCKET,
                level,
                name,
                (&value as *const i32).cast(),
                std::mem::size_of::<i32>() as i32,
            )
        };
        rc == 0
    }

    #[cfg(not(any(unix, windows)))]
    fn get(_: &UdpSocket, _: i32, _: i32) -> Option<i32> {
        None
    }

    #[cfg(not(any(unix, windows)))]
    fn set(_: &UdpSocket, _: i32, _: i32, _: i32) -> bool {
        true
    }
}
