//! In-memory doubles of the data plane's devices, for tests that run the real driver without
//! root (as wireguard-go's `tuntest`): a TUN made of channels ([`MemTun`]) and a UDP "network"
//! ([`MemNetwork`]) whose sockets ([`MemSocket`]) deliver datagrams by address, may own several
//! addresses, and lose one when the test removes it.

use super::batch::{TunReadBatch, TunWriteBatch, UdpRecvBatch};
use super::tun::TunDevice;
use super::udp::Transport;
use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use tokio::sync::mpsc::{self, UnboundedReceiver, UnboundedSender};
use tokio::sync::Mutex as AsyncMutex;
use warren_tunnel::Endpoint;

/// A TUN device whose packets come from, and go to, channels held by the test.
pub struct MemTun {
    inbound: AsyncMutex<UnboundedReceiver<Vec<u8>>>,
    written: UnboundedSender<Vec<u8>>,
}

impl MemTun {
    /// The device, the sender of packets it "reads" (what the host's stack would send into the
    /// tunnel), and the receiver of the packets the driver writes to it.
    pub fn new() -> (Self, UnboundedSender<Vec<u8>>, UnboundedReceiver<Vec<u8>>) {
        let (to_tun, inbound) = mpsc::unbounded_channel();
        let (written, from_tun) = mpsc::unbounded_channel();
        let tun = Self {
            inbound: AsyncMutex::new(inbound),
            written,
        };
        (tun, to_tun, from_tun)
    }
}

impl TunDevice for MemTun {
    async fn recv(&self, batch: &mut TunReadBatch) -> io::Result<()> {
        let packet = self.inbound.lock().await.recv().await;
        let packet = packet.ok_or_else(|| io::Error::other("TUN closed"))?;
        batch.single_buffer()[..packet.len()].copy_from_slice(&packet);
        batch.set_single(packet.len());
        Ok(())
    }
    fn try_recv(&self, batch: &mut TunReadBatch) -> io::Result<()> {
        let packet = match self.inbound.try_lock().map(|mut rx| rx.try_recv()) {
            Ok(Ok(packet)) => packet,
            _ => return Err(io::ErrorKind::WouldBlock.into()),
        };
        batch.single_buffer()[..packet.len()].copy_from_slice(&packet);
        batch.set_single(packet.len());
        Ok(())
    }
    fn send(&self, batch: &mut TunWriteBatch) -> io::Result<()> {
        for packet in batch.drain() {
            let _ = self.written.send(packet.to_vec());
        }
        Ok(())
    }
}

/// A datagram in flight: (from, to, bytes).
type Wire = UnboundedSender<(SocketAddr, SocketAddr, Vec<u8>)>;

/// A UDP network in memory: every socket made from it reaches every other one by address. A
/// socket may own several addresses (a multi-homed host), and an address may be removed while
/// the socket is in use, as an interface address can be.
#[derive(Clone, Default)]
pub struct MemNetwork {
    wires: Arc<Mutex<HashMap<SocketAddr, Wire>>>,
    repins: Arc<AtomicUsize>,
}

impl MemNetwork {
    /// A socket bound to `addr` on this network.
    pub fn socket(&self, addr: SocketAddr) -> MemSocket {
        self.multihomed_socket(&[addr])
    }

    /// A socket that owns every address of `addrs` (the first is the one the "kernel" picks
    /// when the sender does not choose), all with the same port.
    pub fn multihomed_socket(&self, addrs: &[SocketAddr]) -> MemSocket {
        let (wire, inbound) = mpsc::unbounded_channel();
        let mut wires = self.wires.lock().unwrap();
        for addr in addrs {
            wires.insert(*addr, wire.clone());
        }
        MemSocket {
            addrs: addrs.to_vec(),
            network: self.clone(),
            inbound: AsyncMutex::new(inbound),
            fwmark: None,
        }
    }

    /// How many times its sockets were asked to re-pin ([`Transport::repin`]).
    pub fn repins(&self) -> usize {
        self.repins.load(Ordering::Relaxed)
    }

    /// Removes `addr` from the network: datagrams to it are lost, and sending from it fails
    /// with `EADDRNOTAVAIL`, as after `ip addr del`.
    pub fn remove_address(&self, addr: SocketAddr) {
        self.wires.lock().unwrap().remove(&addr);
    }
}

/// A socket of a [`MemNetwork`]. Its port cannot change; GSO sends of up to four datagrams
/// arrive as separate datagrams, as the kernel delivers them. Received datagrams report the
/// address they were sent to, and sends honour a chosen source as long as the socket still owns
/// it.
pub struct MemSocket {
    addrs: Vec<SocketAddr>,
    network: MemNetwork,
    inbound: AsyncMutex<UnboundedReceiver<(SocketAddr, SocketAddr, Vec<u8>)>>,
    fwmark: Option<u32>,
}

impl Transport for MemSocket {
    async fn recv(&self, batch: &mut UdpRecvBatch) -> io::Result<()> {
        let got = self.inbound.lock().await.recv().await;
        let (from, to, datagram) = got.ok_or_else(|| io::Error::other("network gone"))?;
        batch.single_buffer()[..datagram.len()].copy_from_slice(&datagram);
        batch.set_single(from, Some(to.ip()), datagram.len());
        Ok(())
    }
    fn try_send(&self, to: Endpoint, datagrams: &[u8], segment: usize) -> io::Result<()> {
        let wires = self.network.wires.lock().unwrap();
        let ours = |a: &&SocketAddr| wires.contains_key(a);
        let from = match to.local {
            Some(ip) => self.addrs.iter().filter(ours).find(|a| a.ip() == ip),
            None => self
                .addrs
                .iter()
                .filter(ours)
                .find(|a| a.is_ipv4() == to.remote.is_ipv4()),
        };
        let from = *from.ok_or_else(|| io::Error::from(io::ErrorKind::AddrNotAvailable))?;
        if let Some(wire) = wires.get(&to.remote) {
            for datagram in datagrams.chunks(segment) {
                let _ = wire.send((from, to.remote, datagram.to_vec()));
            }
        }
        Ok(())
    }
    fn max_segments(&self) -> usize {
        4
    }
    fn port(&self) -> u16 {
        self.addrs[0].port()
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
    fn repin(&mut self) -> io::Result<()> {
        self.network.repins.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }
}
